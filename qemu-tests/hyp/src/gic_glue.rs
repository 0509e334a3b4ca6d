// SPDX-License-Identifier: MIT OR Apache-2.0
//! Minimal GIC set-up for the hyp: distributor on, redistributor awake, CPU interface on, and
//! IRQ acknowledge / EOI at EL2.
//!
//! Deliberately small: LPIs, the ITS and the virtual interface belong to the project's crates.
//! Every wait is bounded.

use core::time::Duration;

use common::platform::{GICD_BASE, GICR_BASE, GICR_REGION_SIZE, GICR_STRIDE};
use common::timer::poll_until;
use common::{read_sysreg, write_sysreg};

const GICD_CTLR: usize = 0x0000;
/// GICD_CTLR.RWP: register write pending.
const GICD_CTLR_RWP: u32 = 1 << 31;
/// GICD_CTLR with one security state (DS = 1, as on QEMU without EL3): ARE (bit 4),
/// EnableGrp1 (bit 1), EnableGrp0 (bit 0).
const GICD_CTLR_ENABLE: u32 = (1 << 4) | (1 << 1) | 1;

const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
/// GICR_WAKER.ProcessorSleep.
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// GICR_WAKER.ChildrenAsleep.
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// GICR_TYPER.Last.
const TYPER_LAST: u64 = 1 << 4;

/// SGI_base frame offset within a redistributor.
const SGI_FRAME: usize = 0x1_0000;
const GICR_IGROUPR0: usize = SGI_FRAME + 0x0080;
const GICR_ISENABLER0: usize = SGI_FRAME + 0x0100;
const GICR_IPRIORITYR: usize = SGI_FRAME + 0x0400;

/// ICC_SRE_EL2: SRE | DFB | DIB | Enable (EL1 may use ICC_SRE_EL1).
const ICC_SRE_EL2_VALUE: u64 = 0b1111;

/// INTIDs 1020-1023 are special; 1023 = spurious.
pub const SPURIOUS: u32 = 1023;

/// A GIC set-up step that did not complete.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum GicError {
    /// GICD_CTLR.RWP stayed set.
    DistributorRwpTimeout,
    /// No redistributor has this CPU's affinity.
    NoRedistributor {
        /// The CPU index looked for.
        cpu: usize,
    },
    /// GICR_WAKER.ChildrenAsleep stayed set.
    WakeTimeout,
}

fn read32(addr: usize) -> u32 {
    // SAFETY: callers pass addresses inside the GICD or GICR frames of QEMU `virt`, which the
    // identity map covers as Device memory; 32-bit aligned registers.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write32(addr: usize, value: u32) {
    // SAFETY: as for `read32`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

fn read64(addr: usize) -> u64 {
    // SAFETY: as for `read32`; GICR_TYPER is a 64-bit register.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// Enables the distributor (affinity routing, both groups).
pub fn init_distributor() -> Result<(), GicError> {
    write32(GICD_BASE + GICD_CTLR, GICD_CTLR_ENABLE);
    if poll_until(Duration::from_millis(100), || {
        read32(GICD_BASE + GICD_CTLR) & GICD_CTLR_RWP == 0
    }) {
        Ok(())
    } else {
        Err(GicError::DistributorRwpTimeout)
    }
}

/// The RD_base of the redistributor whose GICR_TYPER.Affinity matches CPU `cpu` (Aff0).
pub fn redistributor(cpu: usize) -> Option<usize> {
    let mut base = GICR_BASE;
    while base < GICR_BASE + GICR_REGION_SIZE {
        let typer = read64(base + GICR_TYPER);
        let aff = typer >> 32;
        if aff & 0xff == cpu as u64 && aff >> 8 == 0 {
            return Some(base);
        }
        if typer & TYPER_LAST != 0 {
            break;
        }
        base += GICR_STRIDE;
    }
    None
}

/// Wakes this CPU's redistributor and enables its CPU interface (system registers, PMR = 0xff,
/// Group 1 on, EOImode = 0: EOI drops priority and deactivates).
pub fn init_cpu(cpu: usize) -> Result<(), GicError> {
    let rd = redistributor(cpu).ok_or(GicError::NoRedistributor { cpu })?;
    let waker = read32(rd + GICR_WAKER);
    write32(rd + GICR_WAKER, waker & !WAKER_PROCESSOR_SLEEP);
    if !poll_until(Duration::from_millis(100), || {
        read32(rd + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0
    }) {
        return Err(GicError::WakeTimeout);
    }
    // SAFETY: enabling the system-register interface and unmasking priorities only lets the GIC
    // signal interrupts; PSTATE.I still masks them until a scenario unmasks, and the vectors
    // are installed.
    unsafe {
        write_sysreg!(icc_sre_el2, ICC_SRE_EL2_VALUE);
        core::arch::asm!("isb", options(nostack));
        write_sysreg!(icc_pmr_el1, 0xff);
        write_sysreg!(icc_ctlr_el1, 0);
        write_sysreg!(icc_igrpen1_el1, 1);
        core::arch::asm!("isb", options(nostack));
    }
    Ok(())
}

/// Makes SGI/PPI `intid` (< 32) of CPU `cpu` Group 1, priority 0x80, enabled.
pub fn enable_private_irq(cpu: usize, intid: u32) -> Result<(), GicError> {
    assert!(intid < 32, "not a private interrupt");
    let rd = redistributor(cpu).ok_or(GicError::NoRedistributor { cpu })?;
    let bit = 1u32 << intid;
    write32(rd + GICR_IGROUPR0, read32(rd + GICR_IGROUPR0) | bit);
    let prio_reg = rd + GICR_IPRIORITYR + (intid as usize & !3);
    let shift = (intid % 4) * 8;
    let prio = (read32(prio_reg) & !(0xff << shift)) | (0x80 << shift);
    write32(prio_reg, prio);
    write32(rd + GICR_ISENABLER0, bit);
    Ok(())
}

/// Sends SGI `intid` (< 16) to the calling CPU (ICC_SGI1R_EL1, Aff0 target list).
pub fn send_sgi_to_self(intid: u32) {
    let aff0 = common::platform::cpu_index() as u64;
    let value = (u64::from(intid & 0xf) << 24) | (1 << (aff0 & 0xf));
    // SAFETY: generating an SGI only makes an interrupt pending; the handlers are installed.
    unsafe {
        write_sysreg!(icc_sgi1r_el1, value);
        core::arch::asm!("isb", options(nostack));
    }
}

/// Acknowledges the highest-priority pending Group 1 interrupt (ICC_IAR1_EL1).
pub fn ack() -> u32 {
    (read_sysreg!(icc_iar1_el1) & 0xff_ffff) as u32
}

/// Ends an interrupt (ICC_EOIR1_EL1; with EOImode = 0 this also deactivates it).
pub fn eoi(intid: u32) {
    // SAFETY: EOI of an interrupt this CPU acknowledged only changes GIC state.
    unsafe {
        write_sysreg!(icc_eoir1_el1, intid);
        core::arch::asm!("isb", options(nostack));
    }
}
