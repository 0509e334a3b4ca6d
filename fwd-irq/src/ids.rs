// SPDX-License-Identifier: MIT OR Apache-2.0
//! Interrupt identifiers and register indices, checked on construction.
//!
//! INTID ranges follow Arm IHI 0069, "INTIDs": 0-15 SGIs, 16-31 PPIs, 32-1019 SPIs,
//! 1020-1023 special. The extended PPI/SPI ranges (GICv3.1) and LPIs (8192+) are not
//! forwarded through this crate: LPIs have no active state and never use the HW bit.

use core::fmt;

use crate::error::FwdError;

/// The last SPI INTID.
pub const MAX_SPI: u32 = 1019;
/// The first PPI INTID.
pub const FIRST_PPI: u32 = 16;
/// The first SPI INTID.
pub const FIRST_SPI: u32 = 32;
/// The first LPI INTID (LPIs are injected by software through [`crate::VgicCpu::inject_lpi`],
/// never forwarded).
pub const FIRST_LPI: u32 = 8192;
/// The INTID an interrupt acknowledge returns when nothing is pending.
pub const SPURIOUS: u32 = 1023;
/// The architecture allows at most 16 list registers (ICH_VTR_EL2.ListRegs is at most 15).
pub const MAX_LRS: usize = 16;
/// At most 4 `ICH_AP0R<n>_EL2` / `ICH_AP1R<n>_EL2` registers exist (7 preemption bits).
pub const MAX_APRS: usize = 4;

/// A virtual INTID held by the virtual CPU interface: an SGI, PPI or SPI (0..=1019).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct VIntId(u16);

impl VIntId {
    /// The virtual timer's vINTID for a BSA guest (the same INTID as the physical PPI).
    pub const VTIMER: Self = Self(27);

    /// Checks `raw` is 0..=1019.
    ///
    /// # Errors
    /// [`FwdError::VIntIdOutOfRange`] otherwise.
    pub const fn new(raw: u32) -> Result<Self, FwdError> {
        if raw <= MAX_SPI {
            Ok(Self(raw as u16))
        } else {
            Err(FwdError::VIntIdOutOfRange { raw })
        }
    }

    /// The raw INTID.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    /// Whether this is a private interrupt of the vCPU (SGI or PPI, below 32).
    pub const fn is_private(self) -> bool {
        self.0 < FIRST_SPI as u16
    }
}

impl fmt::Display for VIntId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A physical INTID that can be forwarded with the HW bit: a PPI or SPI (16..=1019).
///
/// SGIs are excluded (they are not device interrupts) and so are LPIs (no active state, so
/// `ICH_LR<n>_EL2`.HW has nothing to deactivate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct PIntId(u16);

impl PIntId {
    /// The EL2 physical timer (CNTHP) PPI on a BSA system such as QEMU `virt`.
    pub const HYP_TIMER: Self = Self(26);
    /// The EL1 virtual timer (CNTV) PPI on a BSA system such as QEMU `virt`.
    pub const VTIMER: Self = Self(27);
    /// The GIC virtual CPU interface maintenance interrupt PPI on a BSA system.
    pub const MAINTENANCE: Self = Self(25);

    /// Checks `raw` is 16..=1019.
    ///
    /// # Errors
    /// [`FwdError::PIntIdOutOfRange`] otherwise.
    pub const fn new(raw: u32) -> Result<Self, FwdError> {
        if raw >= FIRST_PPI && raw <= MAX_SPI {
            Ok(Self(raw as u16))
        } else {
            Err(FwdError::PIntIdOutOfRange { raw })
        }
    }

    /// The raw INTID.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    /// Whether this is a PPI (16..=31): its state lives in this CPU's redistributor.
    pub const fn is_ppi(self) -> bool {
        self.0 < FIRST_SPI as u16
    }
}

impl fmt::Display for PIntId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// The index `<n>` of a list register `ICH_LR<n>_EL2`, 0..=15.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct LrIndex(u8);

impl LrIndex {
    /// Checks `index` is below 16.
    ///
    /// # Errors
    /// [`FwdError::LrIndexOutOfRange`] otherwise.
    pub const fn new(index: usize) -> Result<Self, FwdError> {
        if index < MAX_LRS {
            Ok(Self(index as u8))
        } else {
            Err(FwdError::LrIndexOutOfRange {
                index: if index > u32::MAX as usize {
                    u32::MAX
                } else {
                    index as u32
                },
                nr_lrs: MAX_LRS as u32,
            })
        }
    }

    /// All 16 architectural indices, in order.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..MAX_LRS as u8).map(Self)
    }

    /// The first `n` indices (clamped to 16).
    pub fn first(n: usize) -> impl Iterator<Item = Self> {
        (0..n.min(MAX_LRS) as u8).map(Self)
    }

    /// The index as a `usize`.
    pub const fn get(self) -> usize {
        self.0 as usize
    }

    /// The index's bit in ICH_ELRSR_EL2 / ICH_EISR_EL2.
    pub const fn bit(self) -> u16 {
        1 << self.0
    }
}

/// The index `<n>` of an active-priorities register `ICH_AP0R<n>_EL2` / `ICH_AP1R<n>_EL2`, 0..=3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct ApIndex(u8);

impl ApIndex {
    /// Checks `index` is below 4.
    ///
    /// # Errors
    /// [`FwdError::ApIndexOutOfRange`] otherwise.
    pub const fn new(index: usize) -> Result<Self, FwdError> {
        if index < MAX_APRS {
            Ok(Self(index as u8))
        } else {
            Err(FwdError::ApIndexOutOfRange {
                index: if index > u32::MAX as usize {
                    u32::MAX
                } else {
                    index as u32
                },
            })
        }
    }

    /// The first `n` indices (clamped to 4).
    pub fn first(n: usize) -> impl Iterator<Item = Self> {
        (0..n.min(MAX_APRS) as u8).map(Self)
    }

    /// The index as a `usize`.
    pub const fn get(self) -> usize {
        self.0 as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(VIntId::new(0).unwrap().get(), 0);
        assert_eq!(VIntId::new(1019).unwrap().get(), 1019);
        assert_eq!(
            VIntId::new(1020),
            Err(FwdError::VIntIdOutOfRange { raw: 1020 })
        );
        assert!(VIntId::new(27).unwrap().is_private());
        assert!(!VIntId::new(32).unwrap().is_private());
        assert_eq!(PIntId::new(15), Err(FwdError::PIntIdOutOfRange { raw: 15 }));
        assert_eq!(
            PIntId::new(8192),
            Err(FwdError::PIntIdOutOfRange { raw: 8192 })
        );
        assert!(PIntId::new(31).unwrap().is_ppi());
        assert!(!PIntId::new(32).unwrap().is_ppi());
        assert_eq!(PIntId::VTIMER.get(), 27);
        assert_eq!(LrIndex::new(15).unwrap().bit(), 1 << 15);
        assert_eq!(
            LrIndex::new(16),
            Err(FwdError::LrIndexOutOfRange {
                index: 16,
                nr_lrs: 16
            })
        );
        assert_eq!(
            ApIndex::new(4),
            Err(FwdError::ApIndexOutOfRange { index: 4 })
        );
        assert_eq!(LrIndex::first(40).count(), 16);
        assert_eq!(ApIndex::first(2).count(), 2);
    }
}
