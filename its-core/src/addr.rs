// SPDX-License-Identifier: MIT OR Apache-2.0
//! Physical addresses, with the alignment each GIC use needs.
//!
//! The GIC takes physical addresses up to 52 bits wide. Each structure has its own alignment:
//! an ITT 256 bytes, a virtual pending table 64 KiB, a vLPI configuration table (GICv4.1
//! VCONF_addr) 64 KiB, an ITS table one ITS page (4, 16 or 64 KiB). [`Aligned`] carries the
//! alignment in its type, so a misaligned address is refused once, when it is built.

use core::fmt;

/// The widest physical address the GIC registers and commands can hold (52 bits).
pub const PA_BITS: u32 = 52;

/// A physical address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct PhysAddr(u64);

impl PhysAddr {
    /// Wraps a raw physical address.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw address.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// This address plus `offset` bytes, or `None` on overflow.
    pub const fn checked_add(self, offset: u64) -> Option<Self> {
        match self.0.checked_add(offset) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// Whether the address is a multiple of `align` (a power of two).
    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & (align.wrapping_sub(1)) == 0
    }
}

impl fmt::Display for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A physical address the GIC cannot take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AddrError {
    /// Not a multiple of the alignment the use requires.
    #[error("address {addr:#x} is not {align:#x}-byte aligned")]
    Misaligned {
        /// The address.
        addr: u64,
        /// The required alignment in bytes.
        align: u64,
    },
    /// Wider than the 52 bits a GIC address field holds.
    #[error("address {addr:#x} is wider than 52 bits")]
    TooWide {
        /// The address.
        addr: u64,
    },
}

/// A physical address aligned to `1 << SHIFT` bytes and below 2^52.
///
/// GIC fields hold such an address as bits \[51:SHIFT\]; [`Aligned::field`] gives that value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct Aligned<const SHIFT: u32>(u64);

impl<const SHIFT: u32> Aligned<SHIFT> {
    /// The alignment in bytes.
    pub const ALIGN: u64 = 1 << SHIFT;
    /// Mask of the field holding bits \[51:SHIFT\].
    const FIELD_MASK: u64 = (1 << (PA_BITS - SHIFT)) - 1;

    /// Checks alignment and width.
    ///
    /// # Errors
    /// [`AddrError::Misaligned`] or [`AddrError::TooWide`].
    pub const fn new(pa: PhysAddr) -> Result<Self, AddrError> {
        if !pa.is_aligned(Self::ALIGN) {
            Err(AddrError::Misaligned {
                addr: pa.0,
                align: Self::ALIGN,
            })
        } else if pa.0 >> PA_BITS != 0 {
            Err(AddrError::TooWide { addr: pa.0 })
        } else {
            Ok(Self(pa.0))
        }
    }

    /// Builds from a field holding bits \[51:SHIFT\], keeping only the bits the field has.
    pub const fn from_field(bits: u64) -> Self {
        Self((bits & Self::FIELD_MASK) << SHIFT)
    }

    /// The field value: bits \[51:SHIFT\] of the address.
    pub const fn field(self) -> u64 {
        self.0 >> SHIFT
    }

    /// The address.
    pub const fn addr(self) -> PhysAddr {
        PhysAddr(self.0)
    }

    /// The raw address.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl<const SHIFT: u32> TryFrom<PhysAddr> for Aligned<SHIFT> {
    type Error = AddrError;
    fn try_from(pa: PhysAddr) -> Result<Self, AddrError> {
        Self::new(pa)
    }
}

impl<const SHIFT: u32> From<Aligned<SHIFT>> for PhysAddr {
    fn from(a: Aligned<SHIFT>) -> Self {
        a.addr()
    }
}

impl<const SHIFT: u32> fmt::Display for Aligned<SHIFT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a, const SHIFT: u32> arbitrary::Arbitrary<'a> for Aligned<SHIFT> {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self::from_field(u.arbitrary()?))
    }
}

/// An Interrupt Translation Table address (MAPD ITT_addr): 256-byte aligned.
pub type IttAddr = Aligned<8>;
/// A virtual LPI pending table address (VMAPP VPT_addr, GICR_VPENDBASER): 64 KiB aligned.
pub type VptAddr = Aligned<16>;
/// A GICv4.1 vLPI configuration table address (VMAPP VCONF_addr): 64 KiB aligned.
pub type VconfAddr = Aligned<16>;
/// A 4 KiB-aligned address (GITS_CBASER, GICR_PROPBASER, GICR_VPROPBASER).
pub type Addr4K = Aligned<12>;
/// A 64 KiB-aligned address (GICR_PENDBASER, RD_base in the PTA = 1 form).
pub type Addr64K = Aligned<16>;

/// An ITS table page size (`GITS_BASER<n>.Page_Size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PageSize {
    /// 4 KiB (encoding 0b00).
    Size4K,
    /// 16 KiB (encoding 0b01).
    Size16K,
    /// 64 KiB (encoding 0b10).
    Size64K,
}

impl PageSize {
    /// Largest first: the order in which a driver should probe them.
    pub const PROBE_ORDER: [Self; 3] = [Self::Size64K, Self::Size16K, Self::Size4K];

    /// The size in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            Self::Size4K => 0x1000,
            Self::Size16K => 0x4000,
            Self::Size64K => 0x1_0000,
        }
    }

    /// The GITS_BASER.Page_Size encoding.
    pub const fn encoding(self) -> u8 {
        match self {
            Self::Size4K => 0,
            Self::Size16K => 1,
            Self::Size64K => 2,
        }
    }

    /// Decodes GITS_BASER.Page_Size. Encoding 0b11 is reserved: `None`.
    pub const fn from_encoding(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Size4K),
            1 => Some(Self::Size16K),
            2 => Some(Self::Size64K),
            _ => None,
        }
    }

    /// Checks that `pa` is aligned to this page size and fits 52 bits.
    ///
    /// # Errors
    /// [`AddrError`] as for [`Aligned::new`].
    pub const fn check(self, pa: PhysAddr) -> Result<PhysAddr, AddrError> {
        let align = self.bytes() as u64;
        if !pa.is_aligned(align) {
            Err(AddrError::Misaligned {
                addr: pa.get(),
                align,
            })
        } else if pa.get() >> PA_BITS != 0 {
            Err(AddrError::TooWide { addr: pa.get() })
        } else {
            Ok(pa)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itt_alignment() {
        assert!(IttAddr::new(PhysAddr::new(0x4000_0100)).is_ok());
        assert_eq!(
            IttAddr::new(PhysAddr::new(0x4000_0180)),
            Err(AddrError::Misaligned {
                addr: 0x4000_0180,
                align: 256
            })
        );
    }

    #[test]
    fn vpt_alignment_and_width() {
        assert!(VptAddr::new(PhysAddr::new(0x4001_0000)).is_ok());
        assert!(VptAddr::new(PhysAddr::new(0x4000_8000)).is_err());
        assert_eq!(
            VptAddr::new(PhysAddr::new(1 << 52)),
            Err(AddrError::TooWide { addr: 1 << 52 })
        );
        let top = (1u64 << 52) - 0x1_0000;
        assert_eq!(
            VptAddr::new(PhysAddr::new(top)).map(|a| a.field()),
            Ok(top >> 16)
        );
    }

    #[test]
    fn field_round_trip_masks_to_width() {
        let a = IttAddr::from_field(u64::MAX);
        assert_eq!(a.get(), ((1u64 << 52) - 1) & !0xff);
        assert_eq!(IttAddr::from_field(a.field()), a);
    }

    #[test]
    fn page_sizes() {
        assert_eq!(PageSize::from_encoding(3), None);
        for p in PageSize::PROBE_ORDER {
            assert_eq!(PageSize::from_encoding(p.encoding()), Some(p));
        }
        assert!(PageSize::Size64K.check(PhysAddr::new(0x1_0000)).is_ok());
        assert!(PageSize::Size64K.check(PhysAddr::new(0x4000)).is_err());
        assert!(PageSize::Size4K.check(PhysAddr::new(0x4000)).is_ok());
    }
}
