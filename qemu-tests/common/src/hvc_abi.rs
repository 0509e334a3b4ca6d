// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hypercall ABI between the guest and the hyp.
//!
//! `hvc #0` with x0 = call number, x1..x3 = arguments; the hyp returns a value in x0.
//! Add new calls here, with the hyp side in `hyp/src/vcpu.rs` (or a scenario's own exit
//! handler) and the guest side in `guest/src/hvc.rs`.

/// The guest program is finished: x1 = number of failed checks (0 = success). Does not return.
pub const HVC_DONE: u64 = 0;
/// Print x1 as a number on the hyp's console; returns x1 + 1 (so the guest can check the
/// round trip).
pub const HVC_PRINT_NUM: u64 = 1;
/// First call number free for scenario-specific hypercalls.
pub const HVC_SCENARIO_BASE: u64 = 0x100;

/// Guest program numbers: what the guest does after it boots (x0 at guest entry).
pub mod program {
    /// Boot, print, one hypercall round trip, one trapped WFI, done.
    pub const SMOKE: u64 = 0;
}
