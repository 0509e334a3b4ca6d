// SPDX-License-Identifier: MIT OR Apache-2.0
//! Interrupts at EL1: the guest's GIC CPU interface and IRQ handler.
//!
//! With HCR_EL2.IMO set by the hyp, the guest's ICC_* accesses reach the virtual CPU interface
//! (ICV_*): acknowledging returns vINTIDs the hyp or the GICv4 redistributor made pending.
//! [`init`] turns the interface on and installs the handler, which acknowledges, counts, calls
//! the optional hook and EOIs each interrupt.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use common::exceptions::{self, Frame, VectorKind};
use common::sync::FnSlot;
use common::{read_sysreg, write_sysreg};

/// INTIDs 1020-1023 are special (1023 = spurious: nothing pending).
pub const SPURIOUS: u32 = 1023;

static COUNT: AtomicU64 = AtomicU64::new(0);
static LAST: AtomicU32 = AtomicU32::new(SPURIOUS);
/// Optional hook called with each acknowledged INTID.
static HOOK: FnSlot<fn(u32)> = FnSlot::new();

/// Enables the (virtual) CPU interface for Group 1 with every priority unmasked, and installs
/// the IRQ handler. PSTATE.I stays as it is: unmask with `common::sysreg::unmask_irqs`.
pub fn init() {
    // SAFETY: these only configure the (virtual) GIC CPU interface of this vCPU; no interrupt
    // is taken until PSTATE.I is cleared, and the handler is installed first.
    unsafe {
        exceptions::set_handler(
            VectorKind::IrqCurrentSpx,
            Some(&(handle as exceptions::Handler)),
        );
        write_sysreg!(icc_sre_el1, 0b111);
        core::arch::asm!("isb", options(nostack));
        write_sysreg!(icc_pmr_el1, 0xff);
        write_sysreg!(icc_bpr1_el1, 0);
        write_sysreg!(icc_ctlr_el1, 0);
        write_sysreg!(icc_igrpen1_el1, 1);
        core::arch::asm!("isb", options(nostack));
    }
}

/// Acknowledges the highest-priority pending interrupt (ICC_IAR1_EL1, i.e. ICV_IAR1_EL1).
pub fn ack() -> u32 {
    (read_sysreg!(icc_iar1_el1) & 0xff_ffff) as u32
}

/// Ends an interrupt (ICC_EOIR1_EL1).
pub fn eoi(intid: u32) {
    // SAFETY: EOI of an acknowledged interrupt only changes (virtual) GIC state.
    unsafe {
        write_sysreg!(icc_eoir1_el1, intid);
        core::arch::asm!("isb", options(nostack));
    }
}

/// Interrupts handled so far.
#[allow(dead_code, reason = "for the vLPI guest programs")]
pub fn count() -> u64 {
    COUNT.load(Ordering::Acquire)
}

/// The last INTID handled.
#[allow(dead_code, reason = "for the vLPI guest programs")]
pub fn last() -> u32 {
    LAST.load(Ordering::Acquire)
}

/// Sets (or clears) the hook called with each INTID before its EOI.
#[allow(dead_code, reason = "for the vLPI guest programs")]
pub fn set_hook(hook: Option<&'static fn(u32)>) {
    HOOK.set(hook);
}

fn handle(_frame: &mut Frame, _kind: VectorKind) {
    let intid = ack();
    if (1020..1024).contains(&intid) {
        return;
    }
    COUNT.fetch_add(1, Ordering::AcqRel);
    LAST.store(intid, Ordering::Release);
    if let Some(hook) = HOOK.get() {
        hook(intid);
    }
    eoi(intid);
}
