// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`PhysIrqState`] over the physical GIC's MMIO pending/active registers.
//!
//! The distributor (GICD) and each redistributor's SGI_base frame (GICR base + 0x10000) share
//! one layout for the set/clear-pending and set/clear-active registers, at the same offsets
//! (Arm IHI 0069, "The GIC Distributor register map", "The GIC Redistributor register map"):
//!
//! | Offset | GICD | GICR SGI_base |
//! |---|---|---|
//! | 0x200 | `GICD_ISPENDR<n>` | GICR_ISPENDR0 |
//! | 0x280 | `GICD_ICPENDR<n>` | GICR_ICPENDR0 |
//! | 0x300 | `GICD_ISACTIVER<n>` | GICR_ISACTIVER0 |
//! | 0x380 | `GICD_ICACTIVER<n>` | GICR_ICACTIVER0 |
//!
//! [`IrqStateRegs`] covers 0x000..0x400 of either frame. PPIs (16..=31) are answered from the
//! redistributor of the PE the hypervisor runs on, SPIs from the distributor. Writes to these
//! registers need no GICD_CTLR.RWP / GICR_CTLR.RWP wait (that is for enables and group
//! changes).

use safe_mmio::fields::ReadPureWrite;
use safe_mmio::{UniqueMmioPointer, field, field_shared};

use crate::hw::PhysIrqState;
use crate::ids::PIntId;

/// The pending and active set/clear registers at 0x200..0x400 of GICD or of a redistributor's
/// SGI_base frame. Only register 0 exists in the redistributor.
#[repr(C, align(4))]
pub struct IrqStateRegs {
    _reserved: [u32; 0x200 / 4],
    /// (`GICD_ISPENDR<n>` / GICR_ISPENDR0) Read: pending bits. Write 1: set pending.
    pub ispendr: [ReadPureWrite<u32>; 32],
    /// (`GICD_ICPENDR<n>` / GICR_ICPENDR0) Read: pending bits. Write 1: clear pending.
    pub icpendr: [ReadPureWrite<u32>; 32],
    /// (`GICD_ISACTIVER<n>` / GICR_ISACTIVER0) Read: active bits. Write 1: set active.
    pub isactiver: [ReadPureWrite<u32>; 32],
    /// (`GICD_ICACTIVER<n>` / GICR_ICACTIVER0) Read: active bits. Write 1: clear active.
    pub icactiver: [ReadPureWrite<u32>; 32],
}

impl core::fmt::Debug for IrqStateRegs {
    /// The name only: formatting never reads a register.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IrqStateRegs").finish_non_exhaustive()
    }
}

const _: () = assert!(core::mem::offset_of!(IrqStateRegs, ispendr) == 0x200);
const _: () = assert!(core::mem::offset_of!(IrqStateRegs, icpendr) == 0x280);
const _: () = assert!(core::mem::offset_of!(IrqStateRegs, isactiver) == 0x300);
const _: () = assert!(core::mem::offset_of!(IrqStateRegs, icactiver) == 0x380);
const _: () = assert!(core::mem::size_of::<IrqStateRegs>() == 0x400);

/// The physical GIC state of PPIs (this PE's redistributor) and SPIs (the distributor).
#[derive(Debug)]
pub struct GicIrqState<'a> {
    gicd: UniqueMmioPointer<'a, IrqStateRegs>,
    gicr_sgi: UniqueMmioPointer<'a, IrqStateRegs>,
}

impl<'a> GicIrqState<'a> {
    /// Wraps the distributor (GICD base) and the current PE's redistributor SGI_base frame
    /// (GICR RD_base + 0x10000). The caller's `UniqueMmioPointer::new` carries the proof that
    /// the frames are mapped as Device memory and not aliased.
    pub fn new(
        gicd: UniqueMmioPointer<'a, IrqStateRegs>,
        gicr_sgi: UniqueMmioPointer<'a, IrqStateRegs>,
    ) -> Self {
        Self { gicd, gicr_sgi }
    }

    /// Register index and bit mask for `pintid` in a 32-bit-per-register bank.
    const fn split(pintid: PIntId) -> (usize, u32) {
        ((pintid.get() / 32) as usize, 1 << (pintid.get() % 32))
    }

    fn frame(&self, pintid: PIntId) -> &UniqueMmioPointer<'a, IrqStateRegs> {
        if pintid.is_ppi() {
            &self.gicr_sgi
        } else {
            &self.gicd
        }
    }

    fn frame_mut(&mut self, pintid: PIntId) -> &mut UniqueMmioPointer<'a, IrqStateRegs> {
        if pintid.is_ppi() {
            &mut self.gicr_sgi
        } else {
            &mut self.gicd
        }
    }
}

impl PhysIrqState for GicIrqState<'_> {
    fn is_pending(&self, pintid: PIntId) -> bool {
        let (n, bit) = Self::split(pintid);
        field_shared!(**self.frame(pintid), ispendr)
            .get(n)
            .is_some_and(|r| r.read() & bit != 0)
    }

    fn is_active(&self, pintid: PIntId) -> bool {
        let (n, bit) = Self::split(pintid);
        field_shared!(**self.frame(pintid), isactiver)
            .get(n)
            .is_some_and(|r| r.read() & bit != 0)
    }

    fn set_active(&mut self, pintid: PIntId, active: bool) {
        let (n, bit) = Self::split(pintid);
        let frame = self.frame_mut(pintid);
        let mut bank = if active {
            field!(*frame, isactiver)
        } else {
            field!(*frame, icactiver)
        };
        if let Some(mut reg) = bank.get(n) {
            reg.write(bit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    fn zeroed() -> Box<IrqStateRegs> {
        Box::new(IrqStateRegs {
            _reserved: [0; 0x80],
            ispendr: core::array::from_fn(|_| ReadPureWrite(0)),
            icpendr: core::array::from_fn(|_| ReadPureWrite(0)),
            isactiver: core::array::from_fn(|_| ReadPureWrite(0)),
            icactiver: core::array::from_fn(|_| ReadPureWrite(0)),
        })
    }

    #[test]
    fn ppis_go_to_the_redistributor_spis_to_the_distributor() {
        let mut gicd = zeroed();
        let mut gicr = zeroed();
        gicd.ispendr[1] = ReadPureWrite(1 << 8); // SPI 40 pending
        gicr.isactiver[0] = ReadPureWrite(1 << 27); // PPI 27 active
        {
            let mut state = GicIrqState::new(
                UniqueMmioPointer::from(&mut *gicd),
                UniqueMmioPointer::from(&mut *gicr),
            );
            let spi = PIntId::new(40).unwrap();
            assert!(state.is_pending(spi));
            assert!(!state.is_active(spi));
            assert!(state.is_active(PIntId::VTIMER));
            assert!(!state.is_pending(PIntId::VTIMER));
            state.set_active(PIntId::VTIMER, false);
            state.set_active(spi, true);
        }
        // Plain RAM records the writes: the clear went to GICR_ICACTIVER0, the set to
        // GICD_ISACTIVER1.
        assert_eq!(gicr.icactiver[0].0, 1 << 27);
        assert_eq!(gicd.isactiver[1].0, 1 << 8);
        assert_eq!(gicd.icactiver[1].0, 0);
    }
}
