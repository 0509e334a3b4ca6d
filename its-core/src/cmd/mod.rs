// SPDX-License-Identifier: MIT OR Apache-2.0
//! ITS commands as typed values, with exact encode and decode (Arm IHI 0069, "ITS commands").
//!
//! A [`Command`] is an exact image of the 32-byte block the ITS reads: every field of every
//! command, with a type that holds exactly the field's width. So every block that a queue can
//! contain decodes to a `Command` (unless its opcode is unknown or a reserved bit is set), and
//! `decode(encode(c)) == c` for every `c`. Whether the values make sense (an LPI INTID at least
//! 8192, IDs within the probed capabilities) is a separate question, answered by
//! [`Command::validate`] before a driver posts a command.
//!
//! GICv4.1 changes the layout of VMAPP and VMOVP; those have their own variants
//! ([`Command::VmappV41`], [`Command::VmovpV41`]), chosen by the [`ItsVersion`] given to
//! [`Command::decode`].
//!
//! ```
//! use its_core::cmd::{Command, ItsVersion};
//! use its_core::ids::{DeviceId, EventId};
//!
//! let int = Command::Int { device: DeviceId::new(8), event: EventId::new(1) };
//! let raw = int.encode();
//! assert_eq!(raw, [0x0000_0008_0000_0003, 1, 0, 0]);
//! assert_eq!(Command::decode(&raw, ItsVersion::V4_0), Ok(int));
//! assert_eq!(int.to_string(), "INT device=0x8 event=0x1");
//! ```

mod layout;
#[cfg(feature = "arbitrary")]
pub mod props;
mod text;
mod validate;

use core::fmt;

pub use layout::{
    FieldError, FieldSpec, Layout, MAX_FIELDS, layout_by_mnemonic, layout_for, layouts,
    mnemonic_of, opcode,
};
pub use text::{ParseError, parse_line};
pub use validate::CommandError;

use crate::addr::{IttAddr, VconfAddr, VptAddr};
use crate::ids::{
    CollectionId, DeviceId, EventId, IdError, IdKind, IntId, RdBase, SgiId, SgiPriority, VpeId,
};

/// Which command set and layouts to decode with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ItsVersion {
    /// GICv3: physical commands only.
    V3,
    /// GICv4.0: physical commands and the GICv4.0 virtual commands.
    V4_0,
    /// GICv4.1: the GICv4.1 layouts of VMAPP and VMOVP, plus VSGI and INVDB.
    V4_1,
}

/// A number of ID bits, held as a 5-bit field holds it: bits minus one (MAPD Size, GICv4.0
/// VMAPP VPT_size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct IdBits(u8);

impl IdBits {
    /// `bits` ID bits, 1 to 32.
    ///
    /// # Errors
    /// [`IdError`] when `bits` is 0 or above 32.
    pub const fn new(bits: u8) -> Result<Self, IdError> {
        if bits == 0 {
            Err(IdError::TooSmall {
                kind: IdKind::IdBits,
                value: 0,
                min: 1,
            })
        } else if bits > 32 {
            Err(IdError::TooLarge {
                kind: IdKind::IdBits,
                value: bits as u64,
                limit: 33,
            })
        } else {
            Ok(Self(bits - 1))
        }
    }

    /// Builds from the field value, keeping its low 5 bits.
    pub const fn from_field(bits: u64) -> Self {
        Self((bits & 0x1f) as u8)
    }

    /// The number of ID bits (field + 1).
    pub const fn bits(self) -> u8 {
        self.0 + 1
    }

    /// The field value (bits - 1).
    pub const fn field(self) -> u8 {
        self.0
    }

    /// The number of IDs this covers, 2^bits.
    pub const fn count(self) -> u64 {
        1u64 << self.bits()
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for IdBits {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self::from_field(u.arbitrary()?))
    }
}

/// One ITS command (Arm IHI 0069, "ITS commands"). Field names follow the specification; the
/// text format ([`fmt::Display`], [`parse_line`]) uses the same names as keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum Command {
    /// MOVI: retarget an event's physical interrupt to another collection.
    Movi {
        /// DeviceID.
        device: DeviceId,
        /// EventID.
        event: EventId,
        /// The new collection (ICID).
        icid: CollectionId,
    },
    /// INT: make an event's interrupt pending (physical or virtual).
    Int {
        /// DeviceID.
        device: DeviceId,
        /// EventID.
        event: EventId,
    },
    /// CLEAR: clear an event's pending interrupt.
    Clear {
        /// DeviceID.
        device: DeviceId,
        /// EventID.
        event: EventId,
    },
    /// SYNC: wait until earlier commands' effects are visible at a redistributor.
    Sync {
        /// The redistributor (RDbase).
        rdbase: RdBase,
    },
    /// MAPD: map a DeviceID to an ITT (or unmap it, `valid = false`).
    Mapd {
        /// DeviceID.
        device: DeviceId,
        /// Size: the number of EventID bits the ITT covers.
        size: IdBits,
        /// ITT_addr: the ITT's physical address (256-byte aligned).
        itt: IttAddr,
        /// V.
        valid: bool,
    },
    /// MAPC: map a collection to a redistributor (or unmap it).
    Mapc {
        /// ICID.
        icid: CollectionId,
        /// RDbase.
        rdbase: RdBase,
        /// V.
        valid: bool,
    },
    /// MAPTI: map an event to a physical LPI in a collection.
    Mapti {
        /// DeviceID.
        device: DeviceId,
        /// EventID.
        event: EventId,
        /// pINTID (must be an LPI).
        pintid: IntId,
        /// ICID.
        icid: CollectionId,
    },
    /// MAPI: as MAPTI with pINTID = EventID.
    Mapi {
        /// DeviceID.
        device: DeviceId,
        /// EventID (also the LPI INTID).
        event: EventId,
        /// ICID.
        icid: CollectionId,
    },
    /// INV: reload an event's configuration (priority, enable) from the property table.
    Inv {
        /// DeviceID.
        device: DeviceId,
        /// EventID.
        event: EventId,
    },
    /// INVALL: reload the configuration of every LPI of a collection.
    Invall {
        /// ICID.
        icid: CollectionId,
    },
    /// MOVALL: move every pending LPI from one redistributor to another.
    Movall {
        /// RDbase1 (source).
        rdbase1: RdBase,
        /// RDbase2 (destination).
        rdbase2: RdBase,
    },
    /// DISCARD: remove an event's mapping and clear its pending interrupt.
    Discard {
        /// DeviceID.
        device: DeviceId,
        /// EventID.
        event: EventId,
    },
    /// VMOVI: move an event's virtual interrupt to another vPE, optionally changing its
    /// doorbell.
    Vmovi {
        /// DeviceID.
        device: DeviceId,
        /// EventID.
        event: EventId,
        /// vPEID of the new vPE.
        vpe: VpeId,
        /// D: whether `db` replaces the doorbell.
        d: bool,
        /// Dbell_pINTID (1023: none).
        db: IntId,
    },
    /// VMOVP (GICv4.0 layout): move a vPE to another redistributor.
    Vmovp {
        /// SequenceNumber (used when GITS_TYPER.VMOVP = 0).
        seq: u16,
        /// ITSList (used when GITS_TYPER.VMOVP = 0).
        its_list: u16,
        /// vPEID.
        vpe: VpeId,
        /// RDbase of the new redistributor.
        rdbase: RdBase,
    },
    /// VMOVP (GICv4.1 layout).
    VmovpV41 {
        /// SequenceNumber.
        seq: u16,
        /// ITSList.
        its_list: u16,
        /// vPEID.
        vpe: VpeId,
        /// RDbase of the new redistributor.
        rdbase: RdBase,
        /// DB: whether `default_db` is valid.
        db_valid: bool,
        /// Default_Doorbell pINTID.
        default_db: IntId,
    },
    /// VSGI (GICv4.1): configure or clear a virtual SGI.
    Vsgi {
        /// vPEID.
        vpe: VpeId,
        /// vINTID (the SGI number).
        sgi: SgiId,
        /// Priority (the field holds bits \[7:4\]).
        priority: SgiPriority,
        /// G: group.
        group: bool,
        /// C: clear the pending state.
        clear: bool,
        /// E: enable.
        enable: bool,
    },
    /// VSYNC: wait until earlier commands for a vPE are complete.
    Vsync {
        /// vPEID.
        vpe: VpeId,
    },
    /// VMAPP (GICv4.0 layout): map a vPE to a redistributor and a virtual pending table.
    Vmapp {
        /// vPEID.
        vpe: VpeId,
        /// RDbase.
        rdbase: RdBase,
        /// V.
        valid: bool,
        /// VPT_addr (64 KiB aligned).
        vpt: VptAddr,
        /// VPT_size: the number of vINTID bits the VPT covers.
        vpt_size: IdBits,
    },
    /// VMAPP (GICv4.1 layout).
    VmappV41 {
        /// vPEID.
        vpe: VpeId,
        /// RDbase.
        rdbase: RdBase,
        /// V.
        valid: bool,
        /// VPT_addr (64 KiB aligned).
        vpt: VptAddr,
        /// VPT_size: the raw 8-bit field (number of vINTID bits minus one).
        vpt_size: u8,
        /// Alloc.
        alloc: bool,
        /// PTZ: the VPT is known to be zero.
        ptz: bool,
        /// VCONF_addr: the vLPI configuration table (64 KiB aligned).
        vconf: VconfAddr,
        /// Default_Doorbell pINTID (1023: none).
        default_db: IntId,
    },
    /// VMAPTI: map an event to a virtual LPI of a vPE.
    Vmapti {
        /// DeviceID.
        device: DeviceId,
        /// EventID.
        event: EventId,
        /// vPEID.
        vpe: VpeId,
        /// vINTID (must be an LPI).
        vintid: IntId,
        /// Dbell_pINTID (1023: none).
        db: IntId,
    },
    /// VMAPI: as VMAPTI with vINTID = EventID.
    Vmapi {
        /// DeviceID.
        device: DeviceId,
        /// EventID (also the vINTID).
        event: EventId,
        /// vPEID.
        vpe: VpeId,
        /// Dbell_pINTID (1023: none).
        db: IntId,
    },
    /// VINVALL: reload the configuration of every vLPI of a vPE.
    Vinvall {
        /// vPEID.
        vpe: VpeId,
    },
    /// INVDB (GICv4.1): reload a vPE's default doorbell configuration.
    Invdb {
        /// vPEID.
        vpe: VpeId,
    },
}

/// One raw 32-byte command block, four little-endian doublewords, as it sits in the queue.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct CmdBlock(pub [zerocopy::little_endian::U64; 4]);

impl CmdBlock {
    /// The size of a command, 32 bytes.
    pub const SIZE: usize = 32;

    /// The block holding these doublewords.
    #[inline]
    pub fn from_dwords(raw: [u64; 4]) -> Self {
        Self(raw.map(zerocopy::little_endian::U64::new))
    }

    /// The doublewords.
    pub fn dwords(&self) -> [u64; 4] {
        self.0.map(|d| d.get())
    }
}

/// Why a block is not a command of the requested version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// No command of this version has this opcode.
    #[error("unknown opcode {opcode:#04x}")]
    UnknownOpcode {
        /// DW0\[7:0\].
        opcode: u8,
    },
    /// The opcode is known but reserved (RES0) bits are set. [`Command::decode_lenient`]
    /// gives the command with its fields.
    #[error("{}: reserved bits set: {bits}", mnemonic_of(*opcode))]
    ReservedBits {
        /// DW0\[7:0\].
        opcode: u8,
        /// The reserved bits that are set.
        bits: ReservedBits,
    },
}

/// Reserved bits found set in a command, as a mask per doubleword.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReservedBits(pub [u64; 4]);

impl ReservedBits {
    /// Whether no reserved bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&m| m == 0)
    }
}

impl fmt::Display for ReservedBits {
    /// Lists the runs of set bits, e.g. `dw1[7:5], dw2[62]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (dw, &mask) in self.0.iter().enumerate() {
            let mut bit = 0u32;
            while bit < 64 {
                if mask & (1 << bit) == 0 {
                    bit += 1;
                    continue;
                }
                let lo = bit;
                while bit < 64 && mask & (1 << bit) != 0 {
                    bit += 1;
                }
                let hi = bit - 1;
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                if hi == lo {
                    write!(f, "dw{dw}[{lo}]")?;
                } else {
                    write!(f, "dw{dw}[{hi}:{lo}]")?;
                }
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Field values of one command, in the order of its [`Layout`].
type Values = [u64; MAX_FIELDS];

impl Command {
    /// The layout this command encodes with.
    pub fn layout(&self) -> &'static Layout {
        use layout as l;
        match self {
            Self::Movi { .. } => &l::MOVI,
            Self::Int { .. } => &l::INT,
            Self::Clear { .. } => &l::CLEAR,
            Self::Sync { .. } => &l::SYNC,
            Self::Mapd { .. } => &l::MAPD,
            Self::Mapc { .. } => &l::MAPC,
            Self::Mapti { .. } => &l::MAPTI,
            Self::Mapi { .. } => &l::MAPI,
            Self::Inv { .. } => &l::INV,
            Self::Invall { .. } => &l::INVALL,
            Self::Movall { .. } => &l::MOVALL,
            Self::Discard { .. } => &l::DISCARD,
            Self::Vmovi { .. } => &l::VMOVI,
            Self::Vmovp { .. } => &l::VMOVP,
            Self::VmovpV41 { .. } => &l::VMOVP_V41,
            Self::Vsgi { .. } => &l::VSGI,
            Self::Vsync { .. } => &l::VSYNC,
            Self::Vmapp { .. } => &l::VMAPP,
            Self::VmappV41 { .. } => &l::VMAPP_V41,
            Self::Vmapti { .. } => &l::VMAPTI,
            Self::Vmapi { .. } => &l::VMAPI,
            Self::Vinvall { .. } => &l::VINVALL,
            Self::Invdb { .. } => &l::INVDB,
        }
    }

    /// The opcode, DW0\[7:0\].
    pub fn opcode(&self) -> u8 {
        self.layout().opcode
    }

    /// The mnemonic (`MAPD`, `VMAPTI`, ...).
    pub fn mnemonic(&self) -> &'static str {
        self.layout().mnemonic
    }

    /// The oldest architecture version that has this command in this layout.
    pub fn min_version(&self) -> ItsVersion {
        match self {
            Self::VmovpV41 { .. }
            | Self::Vsgi { .. }
            | Self::VmappV41 { .. }
            | Self::Invdb { .. } => ItsVersion::V4_1,
            Self::Vmovi { .. }
            | Self::Vmovp { .. }
            | Self::Vsync { .. }
            | Self::Vmapp { .. }
            | Self::Vmapti { .. }
            | Self::Vmapi { .. }
            | Self::Vinvall { .. } => ItsVersion::V4_0,
            _ => ItsVersion::V3,
        }
    }

    /// Whether this is one of the virtual (GICv4) commands.
    pub fn is_virtual(&self) -> bool {
        self.min_version() != ItsVersion::V3
    }

    /// The field values in layout order (addresses as full addresses, the VSGI priority as an
    /// 8-bit priority, booleans as 0 or 1).
    #[inline]
    pub fn values(&self) -> (&'static Layout, Values) {
        let mut v = [0u64; MAX_FIELDS];
        let b = |x: bool| u64::from(x);
        match *self {
            Self::Movi {
                device,
                event,
                icid,
            }
            | Self::Mapi {
                device,
                event,
                icid,
            } => {
                v[0] = device.get().into();
                v[1] = event.get().into();
                v[2] = icid.get().into();
            }
            Self::Int { device, event }
            | Self::Clear { device, event }
            | Self::Inv { device, event }
            | Self::Discard { device, event } => {
                v[0] = device.get().into();
                v[1] = event.get().into();
            }
            Self::Sync { rdbase } => v[0] = rdbase.raw(),
            Self::Mapd {
                device,
                size,
                itt,
                valid,
            } => {
                v[..4].copy_from_slice(&[
                    device.get().into(),
                    size.field().into(),
                    itt.get(),
                    b(valid),
                ]);
            }
            Self::Mapc {
                icid,
                rdbase,
                valid,
            } => {
                v[..3].copy_from_slice(&[icid.get().into(), rdbase.raw(), b(valid)]);
            }
            Self::Mapti {
                device,
                event,
                pintid,
                icid,
            } => {
                v[..4].copy_from_slice(&[
                    device.get().into(),
                    event.get().into(),
                    pintid.get().into(),
                    icid.get().into(),
                ]);
            }
            Self::Invall { icid } => v[0] = icid.get().into(),
            Self::Movall { rdbase1, rdbase2 } => {
                v[0] = rdbase1.raw();
                v[1] = rdbase2.raw();
            }
            Self::Vmovi {
                device,
                event,
                vpe,
                d,
                db,
            } => {
                v[..5].copy_from_slice(&[
                    device.get().into(),
                    event.get().into(),
                    vpe.get().into(),
                    b(d),
                    db.get().into(),
                ]);
            }
            Self::Vmovp {
                seq,
                its_list,
                vpe,
                rdbase,
            } => {
                v[..4].copy_from_slice(&[
                    seq.into(),
                    its_list.into(),
                    vpe.get().into(),
                    rdbase.raw(),
                ]);
            }
            Self::VmovpV41 {
                seq,
                its_list,
                vpe,
                rdbase,
                db_valid,
                default_db,
            } => {
                v[..6].copy_from_slice(&[
                    seq.into(),
                    its_list.into(),
                    vpe.get().into(),
                    rdbase.raw(),
                    b(db_valid),
                    default_db.get().into(),
                ]);
            }
            Self::Vsgi {
                vpe,
                sgi,
                priority,
                group,
                clear,
                enable,
            } => {
                v[..6].copy_from_slice(&[
                    vpe.get().into(),
                    sgi.get().into(),
                    priority.get().into(),
                    b(group),
                    b(clear),
                    b(enable),
                ]);
            }
            Self::Vsync { vpe } | Self::Vinvall { vpe } | Self::Invdb { vpe } => {
                v[0] = vpe.get().into();
            }
            Self::Vmapp {
                vpe,
                rdbase,
                valid,
                vpt,
                vpt_size,
            } => {
                v[..5].copy_from_slice(&[
                    vpe.get().into(),
                    rdbase.raw(),
                    b(valid),
                    vpt.get(),
                    vpt_size.field().into(),
                ]);
            }
            Self::VmappV41 {
                vpe,
                rdbase,
                valid,
                vpt,
                vpt_size,
                alloc,
                ptz,
                vconf,
                default_db,
            } => {
                v = [
                    vpe.get().into(),
                    rdbase.raw(),
                    b(valid),
                    vpt.get(),
                    vpt_size.into(),
                    b(alloc),
                    b(ptz),
                    vconf.get(),
                    default_db.get().into(),
                ];
            }
            Self::Vmapti {
                device,
                event,
                vpe,
                vintid,
                db,
            } => {
                v[..5].copy_from_slice(&[
                    device.get().into(),
                    event.get().into(),
                    vpe.get().into(),
                    vintid.get().into(),
                    db.get().into(),
                ]);
            }
            Self::Vmapi {
                device,
                event,
                vpe,
                db,
            } => {
                v[..4].copy_from_slice(&[
                    device.get().into(),
                    event.get().into(),
                    vpe.get().into(),
                    db.get().into(),
                ]);
            }
        }
        (self.layout(), v)
    }

    /// Builds a command from field bits extracted with `layout` (each already within its
    /// field's width). Never fails: every field value is representable.
    fn from_field_bits(layout: &'static Layout, f: &Values) -> Self {
        use layout::opcode as op;
        let device = || DeviceId::new(f[0] as u32);
        let event = || EventId::new(f[1] as u32);
        let intid = |x: u64| IntId::new(x as u32);
        let vpe = |x: u64| VpeId::new(x as u16);
        let icid = |x: u64| CollectionId::new(x as u16);
        let flag = |x: u64| x != 0;
        // The GICv4.1 forms of VMAPP and VMOVP share their opcodes with the GICv4.0 forms.
        let v41 = *layout == layout::VMAPP_V41 || *layout == layout::VMOVP_V41;
        match layout.opcode {
            op::MOVI => Self::Movi {
                device: device(),
                event: event(),
                icid: icid(f[2]),
            },
            op::INT => Self::Int {
                device: device(),
                event: event(),
            },
            op::CLEAR => Self::Clear {
                device: device(),
                event: event(),
            },
            op::SYNC => Self::Sync {
                rdbase: RdBase::from_field(f[0]),
            },
            op::MAPD => Self::Mapd {
                device: device(),
                size: IdBits::from_field(f[1]),
                itt: IttAddr::from_field(f[2]),
                valid: flag(f[3]),
            },
            op::MAPC => Self::Mapc {
                icid: icid(f[0]),
                rdbase: RdBase::from_field(f[1]),
                valid: flag(f[2]),
            },
            op::MAPTI => Self::Mapti {
                device: device(),
                event: event(),
                pintid: intid(f[2]),
                icid: icid(f[3]),
            },
            op::MAPI => Self::Mapi {
                device: device(),
                event: event(),
                icid: icid(f[2]),
            },
            op::INV => Self::Inv {
                device: device(),
                event: event(),
            },
            op::INVALL => Self::Invall { icid: icid(f[0]) },
            op::MOVALL => Self::Movall {
                rdbase1: RdBase::from_field(f[0]),
                rdbase2: RdBase::from_field(f[1]),
            },
            op::DISCARD => Self::Discard {
                device: device(),
                event: event(),
            },
            op::VMOVI => Self::Vmovi {
                device: device(),
                event: event(),
                vpe: vpe(f[2]),
                d: flag(f[3]),
                db: intid(f[4]),
            },
            op::VMOVP if v41 => Self::VmovpV41 {
                seq: f[0] as u16,
                its_list: f[1] as u16,
                vpe: vpe(f[2]),
                rdbase: RdBase::from_field(f[3]),
                db_valid: flag(f[4]),
                default_db: intid(f[5]),
            },
            op::VMOVP => Self::Vmovp {
                seq: f[0] as u16,
                its_list: f[1] as u16,
                vpe: vpe(f[2]),
                rdbase: RdBase::from_field(f[3]),
            },
            op::VSGI => Self::Vsgi {
                vpe: vpe(f[0]),
                sgi: SgiId::from_field(f[1]),
                priority: SgiPriority::from_field(f[2]),
                group: flag(f[3]),
                clear: flag(f[4]),
                enable: flag(f[5]),
            },
            op::VSYNC => Self::Vsync { vpe: vpe(f[0]) },
            op::VMAPP if v41 => Self::VmappV41 {
                vpe: vpe(f[0]),
                rdbase: RdBase::from_field(f[1]),
                valid: flag(f[2]),
                vpt: VptAddr::from_field(f[3]),
                vpt_size: f[4] as u8,
                alloc: flag(f[5]),
                ptz: flag(f[6]),
                vconf: VconfAddr::from_field(f[7]),
                default_db: intid(f[8]),
            },
            op::VMAPP => Self::Vmapp {
                vpe: vpe(f[0]),
                rdbase: RdBase::from_field(f[1]),
                valid: flag(f[2]),
                vpt: VptAddr::from_field(f[3]),
                vpt_size: IdBits::from_field(f[4]),
            },
            op::VMAPTI => Self::Vmapti {
                device: device(),
                event: event(),
                vpe: vpe(f[2]),
                vintid: intid(f[3]),
                db: intid(f[4]),
            },
            op::VMAPI => Self::Vmapi {
                device: device(),
                event: event(),
                vpe: vpe(f[2]),
                db: intid(f[3]),
            },
            op::VINVALL => Self::Vinvall { vpe: vpe(f[0]) },
            // The only layout left is INVDB: `layout` always comes from the tables.
            _ => Self::Invdb { vpe: vpe(f[0]) },
        }
    }

    /// Builds a command from user-visible field values (as [`Command::values`] gives them),
    /// checking that each fits its field.
    ///
    /// # Errors
    /// [`FieldError`] naming the first value that does not fit or is misaligned.
    pub fn from_values(layout: &'static Layout, values: &[u64]) -> Result<Self, FieldError> {
        let mut bits = [0u64; MAX_FIELDS];
        for ((spec, &value), slot) in layout.fields.iter().zip(values).zip(bits.iter_mut()) {
            *slot = spec.check(value)?;
        }
        Ok(Self::from_field_bits(layout, &bits))
    }

    /// The four doublewords of this command.
    #[inline]
    pub fn encode(&self) -> [u64; 4] {
        let (layout, values) = self.values();
        let mut raw = [u64::from(layout.opcode), 0, 0, 0];
        for (spec, value) in layout.fields.iter().zip(values) {
            // Every typed field fits its spec by construction, so the shift loses nothing.
            spec.insert(&mut raw, value >> spec.shift);
        }
        raw
    }

    /// The 32-byte little-endian block of this command.
    #[inline]
    pub fn encode_block(&self) -> CmdBlock {
        CmdBlock::from_dwords(self.encode())
    }

    /// Decodes a block, also when reserved bits are set: returns the command and the reserved
    /// bits found set (empty when none).
    ///
    /// # Errors
    /// [`DecodeError::UnknownOpcode`] when `version` has no command with this opcode.
    pub fn decode_lenient(
        raw: &[u64; 4],
        version: ItsVersion,
    ) -> Result<(Self, ReservedBits), DecodeError> {
        let opcode = raw[0] as u8;
        let layout = layout_for(opcode, version).ok_or(DecodeError::UnknownOpcode { opcode })?;
        let mut bits = [0u64; MAX_FIELDS];
        for (spec, slot) in layout.fields.iter().zip(bits.iter_mut()) {
            *slot = spec.extract(raw) >> spec.shift;
        }
        Ok((
            Self::from_field_bits(layout, &bits),
            ReservedBits(layout.reserved_set(raw)),
        ))
    }

    /// Decodes a block strictly.
    ///
    /// # Errors
    /// [`DecodeError::UnknownOpcode`], or [`DecodeError::ReservedBits`] when any RES0 bit of
    /// this command is set.
    pub fn decode(raw: &[u64; 4], version: ItsVersion) -> Result<Self, DecodeError> {
        let (command, bits) = Self::decode_lenient(raw, version)?;
        if bits.is_empty() {
            Ok(command)
        } else {
            Err(DecodeError::ReservedBits {
                opcode: command.opcode(),
                bits,
            })
        }
    }

    /// Decodes a 32-byte little-endian block strictly.
    ///
    /// # Errors
    /// As [`Command::decode`].
    pub fn decode_block(block: &CmdBlock, version: ItsVersion) -> Result<Self, DecodeError> {
        Self::decode(&block.dwords(), version)
    }
}

impl fmt::Display for Command {
    /// `MNEMONIC key=value ...`, values in hexadecimal: the format `cargo xtask decode` prints
    /// and [`parse_line`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (layout, values) = self.values();
        f.write_str(layout.mnemonic)?;
        for (spec, value) in layout.fields.iter().zip(values) {
            write!(f, " {}={:#x}", spec.key, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod golden;
