// SPDX-License-Identifier: MIT OR Apache-2.0
//! The workspace's test kit: what the crates' tests, the fuzz target and the benchmarks share,
//! on the host GIC model of `its-model`.
//!
//! - [`rig`]: the bring-up rig, a model GIC with LPIs, every ITS, and on request the doorbells
//!   and the GICv4 layer up, shaped by the model's configuration and a few settings;
//! - [`sweep`]: the fault sweeps (an allocation failure at every allocation of a call, a stall
//!   and a dead ITS at every command it sends, a slow ITS), generic over the entry point;
//! - [`fuzz`]: the stateful fuzz harness over the whole stack, run by the cargo-fuzz target
//!   `driver` and, on stable, by the replay of its committed corpus (`tests/fuzz_corpus.rs`);
//! - [`fuzz_vits`]: the stateful fuzz harness of the guest-facing ITS (`vits`) over that
//!   stack, run by the cargo-fuzz target `vits` and by the replay of its corpus (same test);
//! - [`logcap`]: a test logger capturing the `log` records of the calling thread. The kit
//!   turns on every library crate's `log` feature, so their tests see the events.
//!
//! Not published: it is how this workspace tests itself. A hypervisor's own tests want
//! `its-model`, the model and platform fakes.

pub mod fuzz;
pub mod fuzz_vits;
pub mod logcap;
pub mod rig;
pub mod sweep;

pub use rig::{
    Memory, ModelDoorbells, ModelGicV4, ModelIts, P, PROXY_DEVICE, Rig, Settings, V4, with_v4,
};
