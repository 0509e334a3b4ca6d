// SPDX-License-Identifier: MIT OR Apache-2.0
//! Identifier newtypes: DeviceID, EventID, INTIDs, collection and vPE IDs, RDbase.
//!
//! Each type holds exactly what its ITS command field can hold, so every command read from a
//! queue can be represented. Narrower limits come from two places:
//! - the architecture (an LPI INTID is at least 8192, an SGI number is below 16): checked
//!   constructors such as [`Lpi::new`];
//! - the probed hardware (GITS_TYPER.Devbits, IDbits, CIDbits): [`crate::caps::ItsCaps`]
//!   checks IDs against them before any command is written.

use core::fmt;

/// The kind of identifier or field an [`IdError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum IdKind {
    /// A DeviceID.
    Device,
    /// An EventID.
    Event,
    /// A physical LPI INTID.
    Lpi,
    /// A virtual LPI INTID.
    VLpi,
    /// A doorbell INTID (an LPI, or 1023 for none).
    Doorbell,
    /// An interrupt collection ID (ICID).
    Collection,
    /// A vPE ID.
    Vpe,
    /// A virtual SGI number.
    Sgi,
    /// A VSGI priority.
    Priority,
    /// A processor number (GICR_TYPER.Processor_Number).
    Processor,
    /// An RDbase field.
    RdBase,
    /// An ID width in bits.
    IdBits,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Device => "DeviceID",
            Self::Event => "EventID",
            Self::Lpi => "LPI INTID",
            Self::VLpi => "vLPI INTID",
            Self::Doorbell => "doorbell INTID",
            Self::Collection => "collection ID",
            Self::Vpe => "vPE ID",
            Self::Sgi => "vSGI number",
            Self::Priority => "priority",
            Self::Processor => "processor number",
            Self::RdBase => "RDbase",
            Self::IdBits => "ID width",
        })
    }
}

/// An identifier outside the range the architecture or the probed hardware allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum IdError {
    /// `value` is not below `limit` (the number of IDs the hardware or field supports).
    #[error("{kind} {value:#x} out of range (must be below {limit:#x})")]
    TooLarge {
        /// Which identifier.
        kind: IdKind,
        /// The value given.
        value: u64,
        /// The exclusive upper bound.
        limit: u64,
    },
    /// `value` is below the architectural minimum `min` (an LPI INTID below 8192).
    #[error("{kind} {value:#x} out of range (must be at least {min:#x})")]
    TooSmall {
        /// Which identifier.
        kind: IdKind,
        /// The value given.
        value: u64,
        /// The inclusive lower bound.
        min: u64,
    },
    /// The value is not a valid encoding (a priority with low-order bits the field cannot hold).
    #[error("{kind} {value:#x} cannot be encoded")]
    NotEncodable {
        /// Which identifier.
        kind: IdKind,
        /// The value given.
        value: u64,
    },
}

macro_rules! plain_id {
    ($(#[$meta:meta])* $name:ident($repr:ty)) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(transparent)]
        pub struct $name($repr);

        impl $name {
            /// Wraps a raw value. Every value of the command field is representable; check it
            /// against the probed capabilities before use (see [`crate::caps::ItsCaps`]).
            pub const fn new(raw: $repr) -> Self {
                Self(raw)
            }

            /// The raw value.
            pub const fn get(self) -> $repr {
                self.0
            }
        }

        impl From<$repr> for $name {
            fn from(raw: $repr) -> Self {
                Self(raw)
            }
        }

        impl From<$name> for $repr {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        #[cfg(feature = "arbitrary")]
        impl<'a> arbitrary::Arbitrary<'a> for $name {
            fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
                Ok(Self(u.arbitrary()?))
            }
        }
    };
}

plain_id!(
    /// A DeviceID: identifies the device that sends an MSI (GITS_TYPER.Devbits wide).
    DeviceId(u32)
);
plain_id!(
    /// An EventID: identifies one interrupt of a device (GITS_TYPER.IDbits wide, and bounded by
    /// the device's ITT size).
    EventId(u32)
);
plain_id!(
    /// An interrupt collection ID, ICID (GITS_TYPER.CIDbits wide, or 16 bits when CIL = 0).
    CollectionId(u16)
);
plain_id!(
    /// A vPE ID (16 bits in GICv4.0; GICD_TYPER2.VID + 1 bits in GICv4.1).
    VpeId(u16)
);
plain_id!(
    /// A processor number, as GICR_TYPER.Processor_Number reports it.
    ProcessorNumber(u16)
);

/// The first LPI INTID.
pub const LPI_BASE: u32 = 8192;
/// The INTID that means "no interrupt": a doorbell field of 1023 means no doorbell.
pub const SPURIOUS_INTID: u32 = 1023;

/// Any INTID, as held by a 32-bit command field (pINTID, vINTID, Dbell_pINTID,
/// Default_Doorbell). Use [`Lpi`] and [`VLpi`] for values that must be LPIs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct IntId(u32);

impl IntId {
    /// 1023: no interrupt. In a doorbell field it means "no doorbell".
    pub const NONE: Self = Self(SPURIOUS_INTID);

    /// Wraps a raw INTID.
    pub const fn new(raw: u32) -> Self {
        Self(raw)
    }

    /// The raw INTID.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Whether this INTID is in the LPI range (at least 8192).
    pub const fn is_lpi(self) -> bool {
        self.0 >= LPI_BASE
    }

    /// Whether this is a valid doorbell field value: 1023 (none) or an LPI.
    pub const fn is_valid_doorbell(self) -> bool {
        self.0 == SPURIOUS_INTID || self.is_lpi()
    }
}

impl From<u32> for IntId {
    fn from(raw: u32) -> Self {
        Self(raw)
    }
}

impl fmt::Display for IntId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for IntId {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self(u.arbitrary()?))
    }
}

macro_rules! lpi_id {
    ($(#[$meta:meta])* $name:ident, $kind:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(transparent)]
        pub struct $name(u32);

        impl $name {
            /// The first LPI INTID, 8192.
            pub const MIN: Self = Self(LPI_BASE);

            /// An LPI INTID: at least 8192.
            ///
            /// # Errors
            /// [`IdError::TooSmall`] below 8192.
            pub const fn new(raw: u32) -> Result<Self, IdError> {
                if raw < LPI_BASE {
                    Err(IdError::TooSmall { kind: $kind, value: raw as u64, min: LPI_BASE as u64 })
                } else {
                    Ok(Self(raw))
                }
            }

            /// An LPI INTID that also fits an ID space of `id_bits` bits (INTIDs below
            /// 2^id_bits), as GICR_PROPBASER.IDbits + 1 or GICD_TYPER.IDbits + 1 describe.
            ///
            /// # Errors
            /// [`IdError::TooSmall`] below 8192, [`IdError::TooLarge`] at or above 2^id_bits.
            pub const fn new_within(raw: u32, id_bits: u8) -> Result<Self, IdError> {
                match Self::new(raw) {
                    Err(e) => Err(e),
                    Ok(v) => {
                        if id_bits < 32 && (raw as u64) >= (1u64 << id_bits) {
                            Err(IdError::TooLarge {
                                kind: $kind,
                                value: raw as u64,
                                limit: 1u64 << id_bits,
                            })
                        } else {
                            Ok(v)
                        }
                    }
                }
            }

            /// The raw INTID.
            pub const fn get(self) -> u32 {
                self.0
            }

            /// The index of this LPI from 8192 (its byte in a property table).
            pub const fn index(self) -> u32 {
                self.0 - LPI_BASE
            }

            /// The INTID as a command field value.
            pub const fn intid(self) -> IntId {
                IntId(self.0)
            }
        }

        impl TryFrom<u32> for $name {
            type Error = IdError;
            fn try_from(raw: u32) -> Result<Self, IdError> {
                Self::new(raw)
            }
        }

        impl TryFrom<IntId> for $name {
            type Error = IdError;
            fn try_from(id: IntId) -> Result<Self, IdError> {
                Self::new(id.0)
            }
        }

        impl From<$name> for IntId {
            fn from(id: $name) -> Self {
                IntId(id.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

lpi_id!(
    /// A physical LPI INTID (at least 8192).
    Lpi,
    IdKind::Lpi
);
lpi_id!(
    /// A virtual LPI INTID, a vINTID (at least 8192).
    VLpi,
    IdKind::VLpi
);

/// The doorbell of a virtual interrupt: a physical LPI, or none (encoded as 1023).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Doorbell {
    /// No doorbell (field value 1023).
    #[default]
    None,
    /// Ring this physical LPI when the vPE is not resident.
    Lpi(Lpi),
}

impl Doorbell {
    /// The command field value.
    pub const fn intid(self) -> IntId {
        match self {
            Self::None => IntId::NONE,
            Self::Lpi(l) => l.intid(),
        }
    }
}

impl From<Doorbell> for IntId {
    fn from(db: Doorbell) -> Self {
        db.intid()
    }
}

impl TryFrom<IntId> for Doorbell {
    type Error = IdError;
    fn try_from(id: IntId) -> Result<Self, IdError> {
        if id == IntId::NONE {
            Ok(Self::None)
        } else {
            Lpi::new(id.get())
                .map(Self::Lpi)
                .map_err(|_| IdError::TooSmall {
                    kind: IdKind::Doorbell,
                    value: id.get() as u64,
                    min: LPI_BASE as u64,
                })
        }
    }
}

/// A virtual SGI number, 0 to 15 (the 4-bit vINTID field of VSGI).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct SgiId(u8);

impl SgiId {
    /// An SGI number below 16.
    ///
    /// # Errors
    /// [`IdError::TooLarge`] at 16 or above.
    pub const fn new(raw: u8) -> Result<Self, IdError> {
        if raw < 16 {
            Ok(Self(raw))
        } else {
            Err(IdError::TooLarge {
                kind: IdKind::Sgi,
                value: raw as u64,
                limit: 16,
            })
        }
    }

    /// Builds from the low 4 bits of a field value.
    pub const fn from_field(bits: u64) -> Self {
        Self((bits & 0xf) as u8)
    }

    /// The SGI number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// A VSGI priority: an 8-bit priority whose low 4 bits are zero (the field holds bits \[7:4\]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct SgiPriority(u8);

impl SgiPriority {
    /// A priority the 4-bit field can hold (a multiple of 16).
    ///
    /// # Errors
    /// [`IdError::NotEncodable`] when any of bits \[3:0\] is set.
    pub const fn new(priority: u8) -> Result<Self, IdError> {
        if priority & 0xf == 0 {
            Ok(Self(priority))
        } else {
            Err(IdError::NotEncodable {
                kind: IdKind::Priority,
                value: priority as u64,
            })
        }
    }

    /// Builds from the 4-bit field value (priority bits \[7:4\]).
    pub const fn from_field(bits: u64) -> Self {
        Self(((bits & 0xf) as u8) << 4)
    }

    /// The 8-bit priority.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// The RDbase field of MAPC, SYNC, MOVALL, VMAPP and VMOVP: bits \[51:16\] of the command's
/// third dword.
///
/// What it means depends on GITS_TYPER.PTA: with PTA = 1 it is bits \[51:16\] of the target
/// redistributor's physical address; with PTA = 0 it is the target's processor number
/// (GICR_TYPER.Processor_Number). [`crate::caps::ItsCaps::rdbase`] picks the right form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct RdBase(u64);

impl RdBase {
    /// The field is 36 bits wide.
    pub const FIELD_MASK: u64 = (1 << 36) - 1;

    /// The processor-number form (GITS_TYPER.PTA = 0).
    pub const fn from_processor(n: ProcessorNumber) -> Self {
        Self(n.get() as u64)
    }

    /// The physical-address form (GITS_TYPER.PTA = 1): the redistributor's RD_base, which is
    /// 64 KiB aligned.
    ///
    /// # Errors
    /// [`crate::addr::AddrError`] if `pa` is not 64 KiB aligned or wider than 52 bits.
    pub const fn from_address(pa: crate::addr::PhysAddr) -> Result<Self, crate::addr::AddrError> {
        match crate::addr::Aligned::<16>::new(pa) {
            Ok(a) => Ok(Self(a.field())),
            Err(e) => Err(e),
        }
    }

    /// A raw field value.
    ///
    /// # Errors
    /// [`IdError::TooLarge`] when it does not fit 36 bits.
    pub const fn from_raw(raw: u64) -> Result<Self, IdError> {
        if raw <= Self::FIELD_MASK {
            Ok(Self(raw))
        } else {
            Err(IdError::TooLarge {
                kind: IdKind::RdBase,
                value: raw,
                limit: 1 << 36,
            })
        }
    }

    /// Builds from a field value, keeping its low 36 bits.
    pub const fn from_field(bits: u64) -> Self {
        Self(bits & Self::FIELD_MASK)
    }

    /// The raw field value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Interpreted as a processor number (PTA = 0). `None` if the value has bits above 15.
    pub const fn processor(self) -> Option<ProcessorNumber> {
        if self.0 <= u16::MAX as u64 {
            Some(ProcessorNumber::new(self.0 as u16))
        } else {
            None
        }
    }

    /// Interpreted as a physical address (PTA = 1).
    pub const fn address(self) -> crate::addr::PhysAddr {
        crate::addr::PhysAddr::new(self.0 << 16)
    }
}

impl fmt::Display for RdBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for RdBase {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self::from_field(u.arbitrary()?))
    }
}
#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for SgiId {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self::from_field(u.arbitrary()?))
    }
}
#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for SgiPriority {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self::from_field(u.arbitrary()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpi_lower_bound() {
        assert_eq!(
            Lpi::new(8191),
            Err(IdError::TooSmall {
                kind: IdKind::Lpi,
                value: 8191,
                min: 8192
            })
        );
        assert_eq!(Lpi::new(8192).map(Lpi::get), Ok(8192));
        assert_eq!(Lpi::new(8192).map(Lpi::index), Ok(0));
        assert!(VLpi::new(0).is_err());
    }

    #[test]
    fn lpi_within_id_bits() {
        assert!(Lpi::new_within(65535, 16).is_ok());
        assert_eq!(
            Lpi::new_within(65536, 16),
            Err(IdError::TooLarge {
                kind: IdKind::Lpi,
                value: 65536,
                limit: 65536
            })
        );
        assert!(Lpi::new_within(u32::MAX, 32).is_ok());
        // 14 bits covers INTIDs up to 16383: 8192..16383 are LPIs.
        assert!(Lpi::new_within(16383, 14).is_ok());
        assert!(Lpi::new_within(16384, 14).is_err());
    }

    #[test]
    fn doorbell_conversions() {
        assert_eq!(Doorbell::None.intid().get(), 1023);
        let l = Lpi::new(9000).unwrap();
        assert_eq!(Doorbell::Lpi(l).intid().get(), 9000);
        assert_eq!(Doorbell::try_from(IntId::new(1023)), Ok(Doorbell::None));
        assert_eq!(Doorbell::try_from(IntId::new(9000)), Ok(Doorbell::Lpi(l)));
        assert!(Doorbell::try_from(IntId::new(5)).is_err());
        assert!(IntId::new(1023).is_valid_doorbell());
        assert!(!IntId::new(1022).is_valid_doorbell());
        assert!(IntId::new(8192).is_valid_doorbell());
    }

    #[test]
    fn sgi_and_priority() {
        assert!(SgiId::new(15).is_ok());
        assert!(SgiId::new(16).is_err());
        assert_eq!(SgiPriority::new(0xa0).map(SgiPriority::get), Ok(0xa0));
        assert_eq!(
            SgiPriority::new(0xa8),
            Err(IdError::NotEncodable {
                kind: IdKind::Priority,
                value: 0xa8
            })
        );
        assert_eq!(SgiPriority::from_field(0xa).get(), 0xa0);
    }

    #[test]
    fn rdbase_forms() {
        let p = RdBase::from_processor(ProcessorNumber::new(3));
        assert_eq!(p.raw(), 3);
        assert_eq!(p.processor(), Some(ProcessorNumber::new(3)));
        let a = RdBase::from_address(crate::addr::PhysAddr::new(0x080a_0000)).unwrap();
        assert_eq!(a.raw(), 0x080a);
        assert_eq!(a.address().get(), 0x080a_0000);
        assert!(RdBase::from_address(crate::addr::PhysAddr::new(0x080a_1000)).is_err());
        assert!(RdBase::from_raw(1 << 36).is_err());
        assert_eq!(
            RdBase::from_raw((1 << 36) - 1).map(RdBase::raw),
            Ok((1 << 36) - 1)
        );
    }
}
