// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guides: embedding the crates in a hypervisor, and Linux's GICv4 entry points and ours.
//!
//! - [`embedding`]: what your hypervisor implements, the bring-up order, a device's MSI as a
//!   vLPI, the vCPU run loop, the doorbell interrupt, teardown, the concurrency rules, and
//!   host tests of your integration on `its-model`;
//! - [`linux_api`]: each entry point of Linux's `irq-gic-v4.c` and the call of `vpe-sched`,
//!   `its-cmdq` or `doorbell` that does the same, and what differs from Linux.
//!
//! The excerpts in the guides are shortened from the project's QEMU test hypervisor; the
//! paths they name (`qemu-tests/hyp/src/gic.rs` and so on) are files of the project's
//! repository, not of the published crates.

/// Embedding `its-cmdq`, `vpe-sched` and `doorbell` in your hypervisor.
///
#[doc = include_str!("guide/embedding.md")]
pub mod embedding {}

/// Linux's irq-gic-v4 entry points, and this project's.
///
#[doc = include_str!("guide/linux-api.md")]
pub mod linux_api {}
