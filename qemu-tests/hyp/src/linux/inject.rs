// SPDX-License-Identifier: MIT OR Apache-2.0
//! Exceptions the hypervisor makes the guest take: an external abort for an access it refuses,
//! an undefined instruction for a register it does not emulate.
//!
//! Taking an exception to EL1 is what the hardware would have done had the fault been the
//! guest's own: the hypervisor writes the EL1 syndrome registers (ESR_EL1, FAR_EL1), saves the
//! interrupted state in ELR_EL1 and SPSR_EL1, and resumes the guest at its vector
//! (VBAR_EL1 + 0x000 / 0x200 / 0x400 for EL1 with SP_EL0, EL1 with SP_EL1, or EL0) in EL1h
//! with D, A, I and F masked, PSTATE.PAN set unless SCTLR_EL1.SPAN says to keep it, and
//! PSTATE.SSBS from SCTLR_EL1.DSSBS (Arm ARM, "Exception entry"). The vCPU runs on this CPU,
//! so its EL1 registers are live here.
//!
//! A user process of the guest that touches memory the hypervisor keeps (`devmem` on the
//! hypervisor's RAM) gets a synchronous external abort, which Linux turns into SIGBUS for that
//! process: the access fails, the guest and the hypervisor go on.

use common::exceptions::Frame;
use common::{read_sysreg, write_sysreg};

/// ESR_ELx.EC: data abort from a lower exception level / from the same level.
const EC_DABT_LOWER: u64 = 0x24;
const EC_DABT_CUR: u64 = 0x25;
/// ESR_ELx.EC: unknown reason (an UNDEFINED instruction).
const EC_UNKNOWN: u64 = 0x00;
/// ESR_ELx.IL: a 32-bit instruction.
const ESR_IL: u64 = 1 << 25;
/// DFSC: synchronous external abort, not on a translation table walk.
const DFSC_SEA: u64 = 0x10;
/// ISS.WnR of a data abort.
const ISS_WNR: u64 = 1 << 6;

/// PSTATE/SPSR bits.
const SPSR_MODE_MASK: u64 = 0xf;
const SPSR_EL1H: u64 = 0b0101;
const SPSR_DAIF: u64 = 0xf << 6;
const SPSR_PAN: u64 = 1 << 22;
const SPSR_SSBS: u64 = 1 << 12;
/// SCTLR_EL1.SPAN: 0 = set PSTATE.PAN on taking an exception to EL1.
const SCTLR_SPAN: u64 = 1 << 23;
/// SCTLR_EL1.DSSBS: the PSTATE.SSBS value on taking an exception to EL1.
const SCTLR_DSSBS: u64 = 1 << 44;

/// Where the exception comes from, relative to EL1.
fn vector_offset(spsr: u64) -> (u64, bool) {
    match spsr & SPSR_MODE_MASK {
        0b0100 => (0x000, true), // EL1t
        0b0101 => (0x200, true), // EL1h
        _ => (0x400, false),     // EL0 (AArch64)
    }
}

/// Enters the guest's synchronous exception vector with `esr` (its EC is adjusted for the
/// level the guest was at) and `far`.
fn take_sync(regs: &mut Frame, esr_lower: u64, esr_current: u64, far: u64) {
    let (offset, from_el1) = vector_offset(regs.spsr);
    let esr = if from_el1 { esr_current } else { esr_lower };
    let sctlr = read_sysreg!(sctlr_el1);
    let vbar = read_sysreg!(vbar_el1);
    // SAFETY: the guest's EL1 registers on the CPU it runs on, while it does not run: this is
    // the state the architecture itself writes when an exception is taken to EL1.
    unsafe {
        write_sysreg!(elr_el1, regs.elr);
        write_sysreg!(spsr_el1, regs.spsr);
        write_sysreg!(esr_el1, esr);
        write_sysreg!(far_el1, far);
    }
    let mut pstate = SPSR_EL1H | SPSR_DAIF;
    if sctlr & SCTLR_SPAN == 0 {
        pstate |= SPSR_PAN;
    }
    if sctlr & SCTLR_DSSBS != 0 {
        pstate |= SPSR_SSBS;
    }
    regs.spsr = pstate;
    regs.elr = vbar + offset;
}

/// Makes the guest take a synchronous external abort on the data access at `far` that
/// trapped with `esr` (ESR_EL2 of the stage 2 fault: only its WnR bit is kept).
pub fn data_abort(regs: &mut Frame, esr: u64, far: u64) {
    let iss = DFSC_SEA | (esr & ISS_WNR);
    take_sync(
        regs,
        (EC_DABT_LOWER << 26) | ESR_IL | iss,
        (EC_DABT_CUR << 26) | ESR_IL | iss,
        far,
    );
}

/// Makes the guest take an UNDEFINED instruction exception at its current instruction.
pub fn undefined(regs: &mut Frame) {
    let esr = (EC_UNKNOWN << 26) | ESR_IL;
    take_sync(regs, esr, esr, 0);
}
