// SPDX-License-Identifier: MIT OR Apache-2.0
//! PSCI calls over the SMC conduit, on the `smccc` crate.
//!
//! With `virtualization=on`, QEMU `virt` implements PSCI itself and its DTB gives
//! `method = "smc"` (an HVC from EL2 would only trap to our own vectors). Only CPU_ON is used:
//! tests end through semihosting, never SYSTEM_OFF (which makes QEMU exit 0 whatever
//! happened). `smccc` issues the SMC64 call with the SMC Calling Convention's register use
//! (x0-x17 as arguments and results) and decodes PSCI's error codes; it touches no memory and
//! keeps no state, so it would also work before the MMU is on (the images call it after).

use smccc::Smc;

/// A PSCI error return (`smccc`'s).
pub use smccc::psci::Error as PsciError;

/// CPU_ON (SMC64): starts the CPU with affinity `mpidr` at `entry` (a physical address) with
/// `context` in x0.
///
/// # Safety
///
/// `entry` must be code that can start a CPU in its reset state (MMU off, at EL2), such as
/// the image's secondary entry (use [`start_secondary`](crate::entry::start_secondary)): the
/// new CPU runs it with whatever it finds in memory.
pub unsafe fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), PsciError> {
    smccc::psci::cpu_on::<Smc>(mpidr, entry, context)
}
