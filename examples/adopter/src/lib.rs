// SPDX-License-Identifier: MIT OR Apache-2.0
//! The crates embedded as an outside hypervisor would, on the host model.
//!
//! The glue a hypervisor writes is [`platform`] (its DMA allocator over a static arena,
//! cache maintenance, a clock) and [`hyp`] (the drivers in statics, bring-up, a guest whose
//! vCPU structs hold their doorbell waiters, vCPU load and block, the IRQ hook, teardown and
//! shutdown through shared references). [`scenario`] plays the machine around it: a device's
//! MSIs, the CPUs taking interrupts, and what the GIC model saw.
//!
//! It uses the library crates through their public API only, as a crate outside this
//! repository would; the GIC is `its-model`'s host model, reading the arena through
//! `its_model::TrackedDma` (on a machine: the GIC's MMIO frames, and `ArenaDma` itself).

pub mod hyp;
pub mod platform;
pub mod scenario;
