// SPDX-License-Identifier: MIT OR Apache-2.0
//! EL2 exception handlers: guest exits (counted by cause) and IRQs at EL2.
//!
//! Every exception taken from the guest is an *EL2 exit*. It is counted by cause (HVC, trapped
//! WFI/WFE, IRQ, data abort, other) and handed to the host side of [`vcpu`](crate::vcpu), which
//! returns it from `Vcpu::run`. Scenarios assert on the counts through [`snapshot`] (e.g.
//! "direct vLPI injection caused no exit").
//!
//! IRQs taken while the hyp itself runs (IRQ unmasked at EL2) are acknowledged, counted and
//! EOIed here; an optional hook sees each INTID first.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use common::exceptions::{self, Frame, VectorKind};
use common::sync::FnSlot;

use crate::gic_hw;
use crate::vcpu::{self, Exit};

static HVC: AtomicU64 = AtomicU64::new(0);
static WFI: AtomicU64 = AtomicU64::new(0);
static IRQ: AtomicU64 = AtomicU64::new(0);
static DABT: AtomicU64 = AtomicU64::new(0);
static OTHER: AtomicU64 = AtomicU64::new(0);
/// IRQs taken at EL2 while the hyp ran (not exits).
static EL2_IRQS: AtomicU64 = AtomicU64::new(0);
static LAST_INTID: AtomicU32 = AtomicU32::new(gic_hw::SPURIOUS);
/// Optional hook called with each INTID acknowledged at EL2.
static IRQ_HOOK: FnSlot<fn(u32)> = FnSlot::new();

/// Counts of EL2 exits (and of IRQs taken at EL2), all CPUs.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct ExitCounts {
    /// HVC from the guest.
    pub hvc: u64,
    /// Trapped WFI/WFE.
    pub wfi: u64,
    /// Physical IRQs taken while the guest ran.
    pub irq: u64,
    /// Data aborts from the guest.
    pub dabt: u64,
    /// Anything else from the guest.
    pub other: u64,
    /// IRQs taken at EL2 while the hyp ran (not exits).
    pub el2_irqs: u64,
}

impl ExitCounts {
    /// All EL2 exits (guest to hyp transitions).
    pub fn exits(&self) -> u64 {
        self.hvc + self.wfi + self.irq + self.dabt + self.other
    }

    /// The counts since `before`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            hvc: self.hvc - before.hvc,
            wfi: self.wfi - before.wfi,
            irq: self.irq - before.irq,
            dabt: self.dabt - before.dabt,
            other: self.other - before.other,
            el2_irqs: self.el2_irqs - before.el2_irqs,
        }
    }

    /// Prints them as an `@@M` metrics line.
    pub fn report(&self) {
        common::report::metrics(&[
            ("el2_exits", self.exits()),
            ("hvc", self.hvc),
            ("wfi", self.wfi),
            ("irq", self.irq),
            ("dabt", self.dabt),
            ("other", self.other),
            ("el2_irqs", self.el2_irqs),
        ]);
    }
}

/// The current counts.
pub fn snapshot() -> ExitCounts {
    ExitCounts {
        hvc: HVC.load(Ordering::Acquire),
        wfi: WFI.load(Ordering::Acquire),
        irq: IRQ.load(Ordering::Acquire),
        dabt: DABT.load(Ordering::Acquire),
        other: OTHER.load(Ordering::Acquire),
        el2_irqs: EL2_IRQS.load(Ordering::Acquire),
    }
}

/// The last INTID acknowledged at EL2 (1023 if none).
pub fn last_intid() -> u32 {
    LAST_INTID.load(Ordering::Acquire)
}

/// Sets (or clears) the hook called with each INTID acknowledged at EL2, before its EOI:
/// `set_irq_hook(Some(&(my_hook as fn(u32))))`.
pub fn set_irq_hook(hook: Option<&'static fn(u32)>) {
    IRQ_HOOK.set(hook);
}

/// Installs the EL2 handlers. Called once at boot by the boot CPU.
pub fn install() {
    exceptions::set_handler(
        VectorKind::SyncLowerA64,
        Some(&(lower_sync as exceptions::Handler)),
    );
    exceptions::set_handler(
        VectorKind::IrqLowerA64,
        Some(&(lower_irq as exceptions::Handler)),
    );
    exceptions::set_handler(
        VectorKind::IrqCurrentSpx,
        Some(&(el2_irq as exceptions::Handler)),
    );
}

/// Exception classes (ESR_EL2.EC).
const EC_WFX: u64 = 0x01;
const EC_HVC64: u64 = 0x16;
const EC_DABT_LOWER: u64 = 0x24;

fn lower_sync(frame: &mut Frame, _kind: VectorKind) {
    let exit = match frame.ec() {
        EC_HVC64 => {
            HVC.fetch_add(1, Ordering::AcqRel);
            Exit::Hvc {
                nr: frame.x[0],
                args: [frame.x[1], frame.x[2], frame.x[3]],
            }
        }
        EC_WFX => {
            WFI.fetch_add(1, Ordering::AcqRel);
            // ESR.ISS.TI bit 0: 0 = WFI, 1 = WFE.
            Exit::Wfx {
                wfe: frame.esr & 1 != 0,
            }
        }
        EC_DABT_LOWER => {
            DABT.fetch_add(1, Ordering::AcqRel);
            Exit::DataAbort {
                esr: frame.esr,
                far: frame.far,
                hpfar: common::read_sysreg!(hpfar_el2),
                elr: frame.elr,
            }
        }
        _ => {
            OTHER.fetch_add(1, Ordering::AcqRel);
            Exit::Other {
                esr: frame.esr,
                elr: frame.elr,
            }
        }
    };
    vcpu::exit_to_host(frame, exit)
}

/// Acknowledges, counts and EOIs one IRQ; returns its INTID (1023 if spurious).
fn handle_irq() -> u32 {
    let intid = gic_hw::ack();
    if (1020..1024).contains(&intid) {
        return intid;
    }
    LAST_INTID.store(intid, Ordering::Release);
    if let Some(hook) = IRQ_HOOK.get() {
        hook(intid);
    }
    gic_hw::eoi(intid);
    intid
}

fn lower_irq(frame: &mut Frame, _kind: VectorKind) {
    IRQ.fetch_add(1, Ordering::AcqRel);
    let intid = handle_irq();
    vcpu::exit_to_host(frame, Exit::Irq { intid })
}

fn el2_irq(_frame: &mut Frame, _kind: VectorKind) {
    EL2_IRQS.fetch_add(1, Ordering::AcqRel);
    handle_irq();
}
