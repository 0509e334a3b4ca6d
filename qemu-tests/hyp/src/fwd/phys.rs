// SPDX-License-Identifier: MIT OR Apache-2.0
//! The physical GIC as the fwd scenarios see it: SPI set-up in the distributor, the
//! pending/active bits of PPIs and SPIs, and [`GicIrqState`] (the crate's [`PhysIrqState`])
//! for the CPU the caller runs on.
//!
//! PPI state lives in each CPU's redistributor (SGI_base frame), SPI state in the
//! distributor. Every access is a 32-bit volatile access to QEMU `virt`'s GIC frames, which
//! the identity map covers as Device memory.

use core::ptr::NonNull;
use core::time::Duration;

use common::platform::GICD_BASE;
use common::read_sysreg;
use common::timer::poll_until;
use fwd_irq::PIntId;
use fwd_irq::hw::PhysIrqState;
use fwd_irq::mmio::{GicIrqState, IrqStateRegs};
use safe_mmio::UniqueMmioPointer;

use crate::gic_glue;

/// The SGI_base frame of a redistributor, 64 KiB above its RD_base.
const SGI_FRAME: usize = 0x1_0000;
const GICD_CTLR: usize = 0x0000;
const GICD_CTLR_RWP: u32 = 1 << 31;
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_ICENABLER: usize = 0x0180;
const GICD_ISPENDR: usize = 0x0200;
const GICD_ICPENDR: usize = 0x0280;
const GICD_ICACTIVER: usize = 0x0380;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_ICFGR: usize = 0x0C00;
const GICD_IROUTER: usize = 0x6000;
/// INTIDs 1020..=1023 are special; 1023: nothing pending.
pub const SPURIOUS: u32 = 1023;

fn read32(addr: usize) -> u32 {
    // SAFETY: callers pass 32-bit aligned register addresses inside QEMU `virt`'s GICD or GICR
    // frames, identity mapped as Device memory; reading them has no effect on Rust memory.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write32(addr: usize, value: u32) {
    // SAFETY: as for `read32`; the writes only change GIC state.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// The SGI_base frame of CPU `cpu`'s redistributor.
pub fn gicr_sgi(cpu: usize) -> Option<usize> {
    gic_glue::redistributor(cpu).map(|rd| rd + SGI_FRAME)
}

/// The crate's view of PPI (CPU `cpu`'s redistributor) and SPI (distributor) state.
///
/// Build it on the CPU it describes: `fwd-irq` asks it about "this PE's" PPIs.
pub fn irq_state(cpu: usize) -> Option<GicIrqState<'static>> {
    let sgi = gicr_sgi(cpu)?;
    let gicd = NonNull::new(GICD_BASE as *mut IrqStateRegs)?;
    let gicr = NonNull::new(sgi as *mut IrqStateRegs)?;
    // SAFETY: both are QEMU `virt` GIC frames (the distributor and a redistributor's SGI_base
    // frame), identity mapped as Device memory for the hyp's lifetime. `IrqStateRegs` covers
    // their first 0x400 bytes, whose pending/active registers only the fwd scenarios use
    // while they run; no Rust reference to that MMIO exists.
    unsafe {
        Some(GicIrqState::new(
            UniqueMmioPointer::new(gicd),
            UniqueMmioPointer::new(gicr),
        ))
    }
}

/// Whether `intid` (PPI of CPU `cpu`, or SPI) is active at the physical GIC.
pub fn is_active(cpu: usize, intid: u32) -> bool {
    match (irq_state(cpu), PIntId::new(intid)) {
        (Some(s), Ok(p)) => s.is_active(p),
        _ => false,
    }
}

/// Whether `intid` (PPI of CPU `cpu`, or SPI) is pending at the physical GIC (for a level
/// interrupt: latched, or its line is high).
pub fn is_pending(cpu: usize, intid: u32) -> bool {
    match (irq_state(cpu), PIntId::new(intid)) {
        (Some(s), Ok(p)) => s.is_pending(p),
        _ => false,
    }
}

fn spi_bit(base: usize, intid: u32) -> (usize, u32) {
    (base + (intid as usize / 32) * 4, 1 << (intid % 32))
}

fn wait_rwp() -> bool {
    poll_until(Duration::from_millis(100), || {
        read32(GICD_BASE + GICD_CTLR) & GICD_CTLR_RWP == 0
    })
}

/// Configures SPI `intid` (32..=1019): Group 1, `priority`, edge or level, routed to CPU 0,
/// inactive, not pending, enabled. Returns false if the distributor did not settle.
pub fn configure_spi(intid: u32, edge: bool, priority: u8) -> bool {
    if !(32..=1019).contains(&intid) {
        return false;
    }
    let n = intid as usize;
    let (enable, bit) = spi_bit(GICD_BASE + GICD_ICENABLER, intid);
    write32(enable, bit);
    if !wait_rwp() {
        return false;
    }
    let (group, _) = spi_bit(GICD_BASE + GICD_IGROUPR, intid);
    write32(group, read32(group) | bit);
    let prio = GICD_BASE + GICD_IPRIORITYR + (n & !3);
    let shift = (n % 4) * 8;
    write32(
        prio,
        (read32(prio) & !(0xff << shift)) | (u32::from(priority) << shift),
    );
    // Int_config is bit 1 of each 2-bit field: 1 = edge-triggered.
    let cfg = GICD_BASE + GICD_ICFGR + (n / 16) * 4;
    let field = 2 << ((n % 16) * 2);
    let value = read32(cfg);
    write32(cfg, if edge { value | field } else { value & !field });
    // GICD_IROUTER<n> = 0: Aff3.Aff2.Aff1.Aff0 = 0.0.0.0, Interrupt_Routing_Mode 0: CPU 0.
    let router = GICD_BASE + GICD_IROUTER + n * 8;
    write32(router, 0);
    write32(router + 4, 0);
    let (icpend, _) = spi_bit(GICD_BASE + GICD_ICPENDR, intid);
    write32(icpend, bit);
    let (icactive, _) = spi_bit(GICD_BASE + GICD_ICACTIVER, intid);
    write32(icactive, bit);
    let (isenable, _) = spi_bit(GICD_BASE + GICD_ISENABLER, intid);
    write32(isenable, bit);
    wait_rwp()
}

/// Disables SPI `intid` and clears its pending and active state.
pub fn reset_spi(intid: u32) {
    if !(32..=1019).contains(&intid) {
        return;
    }
    let (enable, bit) = spi_bit(GICD_BASE + GICD_ICENABLER, intid);
    write32(enable, bit);
    wait_rwp();
    let (icpend, _) = spi_bit(GICD_BASE + GICD_ICPENDR, intid);
    write32(icpend, bit);
    let (icactive, _) = spi_bit(GICD_BASE + GICD_ICACTIVER, intid);
    write32(icactive, bit);
}

/// Makes SPI `intid` pending by software (GICD_ISPENDR): a physical interrupt with no device
/// behind it.
pub fn set_spi_pending(intid: u32) {
    if (32..=1019).contains(&intid) {
        let (ispend, bit) = spi_bit(GICD_BASE + GICD_ISPENDR, intid);
        write32(ispend, bit);
    }
}

/// ICC_HPPIR1_EL1: the highest-priority pending Group 1 interrupt at this CPU's physical CPU
/// interface (1023 if none), without acknowledging it.
pub fn hppir() -> u32 {
    (read_sysreg!(icc_hppir1_el1) & 0xff_ffff) as u32
}
