// SPDX-License-Identifier: MIT OR Apache-2.0
//! The devices the guest programs touch directly, as `safe-mmio` register blocks.
//!
//! There is no stage 2, so the guest reaches the physical devices at their physical
//! addresses: the GIC's pending/active banks (`its-core`'s [`GicdRegs`] and [`GicrSgiRegs`],
//! read to check, without an exit, what the HW bit of a list register did), the ITS
//! translation frame (MSIs by CPU store), the PL031 RTC and the `edu` PCI device (interrupt
//! sources the fwd and vLPI programs drive). This is the only module of the guest that makes
//! MMIO pointers. The guest runs on one vCPU at a time and keeps no pointer between calls, so
//! each function makes the pointer for its own accesses; the hyp, which owns these devices,
//! does not touch them while the guest runs them.

use core::mem::offset_of;
use core::ptr::NonNull;

use common::platform::{GICD_BASE, GITS_TRANSLATER};
use its_core::mmio::{GicdRegs, GicrSgiRegs, GitsTranslationRegs};
use safe_mmio::fields::{ReadPure, ReadPureWrite, WriteOnly};
use safe_mmio::{UniqueMmioPointer, field, field_shared};

/// The PL031 on QEMU `virt`.
const RTC_BASE: usize = 0x0901_0000;

/// A pointer to the block at `addr`, or `None` for address 0.
///
/// # Safety
/// A non-zero `addr` is a device frame holding a `T`, mapped as Device memory in the guest's
/// identity map, and the pointer is used only within the caller's call (see the module docs).
unsafe fn block<T>(addr: usize) -> Option<UniqueMmioPointer<'static, T>> {
    let p = NonNull::new(addr as *mut T)?;
    // SAFETY: our caller's promise.
    Some(unsafe { UniqueMmioPointer::new(p) })
}

/// Whether physical SPI `intid` is active (`active`) or pending (`!active`) in the
/// distributor.
pub fn spi_state(intid: u32, active: bool) -> bool {
    // SAFETY: QEMU `virt`'s distributor; reads only.
    let Some(d) = (unsafe { block::<GicdRegs>(GICD_BASE) }) else {
        return false;
    };
    let (n, bit) = ((intid / 32) as usize, 1u32 << (intid % 32));
    let bank = if active {
        field_shared!(d, isactiver)
    } else {
        field_shared!(d, ispendr)
    };
    bank.get(n).is_some_and(|r| r.read() & bit != 0)
}

/// Whether physical PPI `intid` (< 32) is active in the redistributor whose SGI_base frame
/// the hyp says is at `sgi` (`fwd_step::PHYS_GICR`).
pub fn ppi_active(sgi: usize, intid: u32) -> bool {
    // SAFETY: the hyp gives the SGI_base frame of a redistributor of QEMU `virt`'s GIC (0 if
    // it has none, refused by `block`); reads only.
    let Some(r) = (unsafe { block::<GicrSgiRegs>(sgi) }) else {
        return false;
    };
    intid < 32 && field_shared!(r, isactiver0).read() & (1 << intid) != 0
}

/// A store of `event` to GITS_TRANSLATER: an MSI from this vCPU (DeviceID 0 on QEMU 7.2).
#[inline(always)]
pub fn translater_write(event: u32) {
    let base = GITS_TRANSLATER - offset_of!(GitsTranslationRegs, translater);
    // SAFETY: QEMU `virt`'s ITS translation frame; a write only asks the ITS to translate.
    if let Some(mut t) = unsafe { block::<GitsTranslationRegs>(base) } {
        field!(t, translater).write(event);
    }
}

/// The PL031 registers the fwd programs use.
#[repr(C, align(4))]
struct Pl031Regs {
    /// 0x00 RTCDR: the seconds counter.
    dr: ReadPure<u32>,
    /// 0x04 RTCMR: the match register.
    mr: ReadPureWrite<u32>,
    _reserved0: [u32; 2],
    /// 0x10 RTCIMSC: interrupt mask (1 = the line follows the raw status).
    imsc: ReadPureWrite<u32>,
    /// 0x14 RTCRIS: raw interrupt status.
    ris: ReadPure<u32>,
    /// 0x18 RTCMIS: masked interrupt status.
    mis: ReadPure<u32>,
    /// 0x1c RTCICR: interrupt clear.
    icr: WriteOnly<u32>,
}

const _: () = {
    assert!(offset_of!(Pl031Regs, mr) == 0x04);
    assert!(offset_of!(Pl031Regs, imsc) == 0x10);
    assert!(offset_of!(Pl031Regs, ris) == 0x14);
    assert!(offset_of!(Pl031Regs, mis) == 0x18);
    assert!(offset_of!(Pl031Regs, icr) == 0x1c);
};

fn rtc() -> UniqueMmioPointer<'static, Pl031Regs> {
    // SAFETY: QEMU `virt`'s PL031, which only the fwd guest programs drive, one call at a time.
    unsafe { block(RTC_BASE) }.expect("RTC_BASE is not 0")
}

/// Latches the PL031's raw interrupt status: a match register equal to the current count
/// raises it at once. Retries if the seconds counter ticked between the read and the write.
pub fn rtc_latch() -> bool {
    let mut r = rtc();
    for _ in 0..4 {
        let now = field!(r, dr).read();
        field!(r, mr).write(now);
        if field!(r, ris).read() & 1 != 0 {
            return true;
        }
    }
    false
}

/// Drives the PL031's interrupt line: it is RTCRIS & RTCIMSC.
pub fn rtc_line(high: bool) {
    let mut r = rtc();
    field!(r, imsc).write(u32::from(high));
}

/// Quiets the PL031: line masked and raw status cleared.
pub fn rtc_quiet() {
    let mut r = rtc();
    field!(r, imsc).write(0);
    field!(r, icr).write(1);
}

/// The PL031's masked interrupt status (its line).
pub fn rtc_masked_status() -> u32 {
    let mut r = rtc();
    field!(r, mis).read()
}

/// The `edu` registers the vLPI program writes, at the start of its BAR0.
#[repr(C, align(4))]
struct EduRegs {
    _reserved0: [u32; 0x18],
    /// 0x60 interrupt raise.
    irq_raise: WriteOnly<u32>,
    /// 0x64 interrupt acknowledge.
    irq_ack: WriteOnly<u32>,
}

const _: () =
    assert!(offset_of!(EduRegs, irq_raise) == 0x60 && offset_of!(EduRegs, irq_ack) == 0x64);

/// Raises (`raise`) or acknowledges (`!raise`) `edu`'s interrupt status bits `bits`, with its
/// BAR0 where the hyp put it (0: nothing happens).
pub fn edu_irq(bar0: usize, raise: bool, bits: u32) {
    // SAFETY: the hyp gives `edu`'s BAR0, which it assigned in the PCIe MMIO window (Device
    // memory in the guest's identity map); the writes only change edu's interrupt state.
    if let Some(mut e) = unsafe { block::<EduRegs>(bar0) } {
        if raise {
            field!(e, irq_raise).write(bits);
        } else {
            field!(e, irq_ack).write(bits);
        }
    }
}
