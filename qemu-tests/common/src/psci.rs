// SPDX-License-Identifier: MIT OR Apache-2.0
//! PSCI calls over the SMC conduit.
//!
//! With `virtualization=on`, QEMU `virt` implements PSCI itself and advertises the SMC conduit
//! (an HVC from EL2 would only trap to our own vectors). Only CPU_ON is used: tests end through
//! semihosting, never SYSTEM_OFF (which makes QEMU exit 0 whatever happened).

/// PSCI CPU_ON, SMC64 calling convention.
pub const CPU_ON_64: u64 = 0xC400_0003;

/// A PSCI error return.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PsciError {
    /// NOT_SUPPORTED (-1).
    NotSupported,
    /// INVALID_PARAMETERS (-2).
    InvalidParameters,
    /// DENIED (-3).
    Denied,
    /// ALREADY_ON (-4).
    AlreadyOn,
    /// ON_PENDING (-5).
    OnPending,
    /// Any other value.
    Other(i64),
}

/// Issues an SMC with PSCI arguments.
///
/// # Safety
///
/// The call must be one whose effects the caller is prepared for (e.g. CPU_ON with an entry
/// point that is valid code).
pub unsafe fn smc(function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: u64;
    // SAFETY: the caller vouches for the call's effects; QEMU's PSCI clobbers only x0-x3.
    unsafe {
        core::arch::asm!(
            "smc #0",
            inout("x0") function => ret,
            inout("x1") a1 => _,
            inout("x2") a2 => _,
            inout("x3") a3 => _,
            options(nostack),
        );
    }
    ret as i64
}

/// CPU_ON: starts the CPU with affinity `mpidr` at `entry` (a physical address) with
/// `context` in x0.
///
/// # Safety
///
/// `entry` must be code that can start a CPU in its reset state (MMU off, at EL2), such as
/// the image's secondary entry (use [`start_secondary`](crate::entry::start_secondary)).
pub unsafe fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), PsciError> {
    // SAFETY: the caller promised `entry` is a valid reset-state entry point.
    let r = unsafe { smc(CPU_ON_64, mpidr, entry, context) };
    match r {
        0 => Ok(()),
        -1 => Err(PsciError::NotSupported),
        -2 => Err(PsciError::InvalidParameters),
        -3 => Err(PsciError::Denied),
        -4 => Err(PsciError::AlreadyOn),
        -5 => Err(PsciError::OnPending),
        other => Err(PsciError::Other(other)),
    }
}
