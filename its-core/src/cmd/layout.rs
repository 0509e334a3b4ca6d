// SPDX-License-Identifier: MIT OR Apache-2.0
//! Field layouts of the ITS commands: the one place that knows where every field sits.
//!
//! Positions are those of Arm IHI 0069 ("ITS commands"): each command is four little-endian
//! 64-bit doublewords (DW0..DW3), the opcode in DW0\[7:0\], and every bit that is not a field of
//! that command is RES0. Encode, decode, the reserved-bit check and the text format are all
//! derived from these tables, so a field position is written down exactly once.

use super::ItsVersion;

/// One field of a command: `width` bits at `dw[lo + width - 1 : lo]`.
///
/// The value a user sees is the field shifted left by `shift`: 8 for an ITT address (the field
/// holds bits \[51:8\]), 16 for VPT and VCONF addresses, 4 for the VSGI priority (the field holds
/// priority bits \[7:4\]), 0 otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// The key in the text format (`device`, `itt`, ...).
    pub key: &'static str,
    /// Which doubleword (0..=3).
    pub dw: u8,
    /// Lowest bit within the doubleword.
    pub lo: u8,
    /// Width in bits (1..=44).
    pub width: u8,
    /// Left shift from field to value.
    pub shift: u8,
}

/// Why a value does not fit a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FieldError {
    /// The value has bits above the field's width (after the shift).
    #[error("value {value:#x} does not fit field `{key}` ({width} bits)")]
    TooLarge {
        /// The field's key.
        key: &'static str,
        /// The value given.
        value: u64,
        /// The field's width in bits.
        width: u8,
    },
    /// The value has bits below the shift: a misaligned address, or a VSGI priority with low
    /// bits set.
    #[error("value {value:#x} of field `{key}` must be a multiple of {align:#x}")]
    Misaligned {
        /// The field's key.
        key: &'static str,
        /// The value given.
        value: u64,
        /// The alignment required.
        align: u64,
    },
}

impl FieldSpec {
    const fn new(key: &'static str, dw: u8, lo: u8, width: u8, shift: u8) -> Self {
        Self {
            key,
            dw,
            lo,
            width,
            shift,
        }
    }

    /// Mask of the field's bits within its doubleword.
    pub const fn mask(&self) -> u64 {
        let ones = if self.width >= 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        };
        ones << self.lo
    }

    /// Extracts the user-visible value from a raw command.
    pub const fn extract(&self, raw: &[u64; 4]) -> u64 {
        ((raw[self.dw as usize] & self.mask()) >> self.lo) << self.shift
    }

    /// Checks that a user-visible value fits, and returns the field bits.
    ///
    /// # Errors
    /// [`FieldError`] when the value is misaligned or too wide.
    pub const fn check(&self, value: u64) -> Result<u64, FieldError> {
        let align = 1u64 << self.shift;
        if value & (align - 1) != 0 {
            return Err(FieldError::Misaligned {
                key: self.key,
                value,
                align,
            });
        }
        let bits = value >> self.shift;
        if self.width < 64 && bits >> self.width != 0 {
            return Err(FieldError::TooLarge {
                key: self.key,
                value,
                width: self.width,
            });
        }
        Ok(bits)
    }

    /// ORs field bits (already checked) into a raw command.
    pub const fn insert(&self, raw: &mut [u64; 4], bits: u64) {
        raw[self.dw as usize] |= (bits << self.lo) & self.mask();
    }
}

/// The layout of one command in one architecture version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The opcode, DW0\[7:0\].
    pub opcode: u8,
    /// The mnemonic in the text format.
    pub mnemonic: &'static str,
    /// The fields, in text-format order.
    pub fields: &'static [FieldSpec],
}

impl Layout {
    /// Mask of every defined bit (opcode and fields) per doubleword.
    pub const fn defined_bits(&self) -> [u64; 4] {
        let mut m = [0xff, 0, 0, 0];
        let mut i = 0;
        while i < self.fields.len() {
            let f = &self.fields[i];
            m[f.dw as usize] |= f.mask();
            i += 1;
        }
        m
    }

    /// The reserved (RES0) bits that are set in `raw`, per doubleword.
    pub const fn reserved_set(&self, raw: &[u64; 4]) -> [u64; 4] {
        let d = self.defined_bits();
        [
            raw[0] & !d[0],
            raw[1] & !d[1],
            raw[2] & !d[2],
            raw[3] & !d[3],
        ]
    }

    /// The field with this key.
    pub fn field(&self, key: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// The index of the field with this key.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.key == key)
    }
}

/// The largest number of fields any command has (GICv4.1 VMAPP).
pub const MAX_FIELDS: usize = 9;

// Fields shared by many commands (Arm IHI 0069, the ITS command descriptions).
const DEVICE: FieldSpec = FieldSpec::new("device", 0, 32, 32, 0); // DeviceID, DW0[63:32]
const EVENT: FieldSpec = FieldSpec::new("event", 1, 0, 32, 0); // EventID, DW1[31:0]
const ICID: FieldSpec = FieldSpec::new("icid", 2, 0, 16, 0); // ICID, DW2[15:0]
const RDBASE: FieldSpec = FieldSpec::new("rdbase", 2, 16, 36, 0); // RDbase, DW2[51:16]
const VALID: FieldSpec = FieldSpec::new("valid", 2, 63, 1, 0); // V, DW2[63]
const VPE: FieldSpec = FieldSpec::new("vpe", 1, 32, 16, 0); // vPEID, DW1[47:32]
const DB: FieldSpec = FieldSpec::new("db", 2, 32, 32, 0); // Dbell_pINTID, DW2[63:32]

/// Opcode values (DW0\[7:0\]).
pub mod opcode {
    /// MOVI.
    pub const MOVI: u8 = 0x01;
    /// INT.
    pub const INT: u8 = 0x03;
    /// CLEAR.
    pub const CLEAR: u8 = 0x04;
    /// SYNC.
    pub const SYNC: u8 = 0x05;
    /// MAPD.
    pub const MAPD: u8 = 0x08;
    /// MAPC.
    pub const MAPC: u8 = 0x09;
    /// MAPTI.
    pub const MAPTI: u8 = 0x0a;
    /// MAPI.
    pub const MAPI: u8 = 0x0b;
    /// INV.
    pub const INV: u8 = 0x0c;
    /// INVALL.
    pub const INVALL: u8 = 0x0d;
    /// MOVALL.
    pub const MOVALL: u8 = 0x0e;
    /// DISCARD.
    pub const DISCARD: u8 = 0x0f;
    /// VMOVI (GICv4).
    pub const VMOVI: u8 = 0x21;
    /// VMOVP (GICv4).
    pub const VMOVP: u8 = 0x22;
    /// VSGI (GICv4.1).
    pub const VSGI: u8 = 0x23;
    /// VSYNC (GICv4).
    pub const VSYNC: u8 = 0x25;
    /// VMAPP (GICv4).
    pub const VMAPP: u8 = 0x29;
    /// VMAPTI (GICv4).
    pub const VMAPTI: u8 = 0x2a;
    /// VMAPI (GICv4).
    pub const VMAPI: u8 = 0x2b;
    /// VINVALL (GICv4).
    pub const VINVALL: u8 = 0x2d;
    /// INVDB (GICv4.1).
    pub const INVDB: u8 = 0x2e;
}

use opcode as op;

const fn l(opcode: u8, mnemonic: &'static str, fields: &'static [FieldSpec]) -> Layout {
    Layout {
        opcode,
        mnemonic,
        fields,
    }
}

// GICv3 (physical) commands.
pub(crate) const MOVI: Layout = l(op::MOVI, "MOVI", &[DEVICE, EVENT, ICID]);
pub(crate) const INT: Layout = l(op::INT, "INT", &[DEVICE, EVENT]);
pub(crate) const CLEAR: Layout = l(op::CLEAR, "CLEAR", &[DEVICE, EVENT]);
pub(crate) const SYNC: Layout = l(op::SYNC, "SYNC", &[RDBASE]);
pub(crate) const MAPD: Layout = l(
    op::MAPD,
    "MAPD",
    &[
        DEVICE,
        FieldSpec::new("size", 1, 0, 5, 0), // Size, DW1[4:0]
        FieldSpec::new("itt", 2, 8, 44, 8), // ITT_addr, DW2[51:8]
        VALID,
    ],
);
pub(crate) const MAPC: Layout = l(op::MAPC, "MAPC", &[ICID, RDBASE, VALID]);
pub(crate) const MAPTI: Layout = l(
    op::MAPTI,
    "MAPTI",
    &[DEVICE, EVENT, FieldSpec::new("pintid", 1, 32, 32, 0), ICID], // pINTID, DW1[63:32]
);
pub(crate) const MAPI: Layout = l(op::MAPI, "MAPI", &[DEVICE, EVENT, ICID]);
pub(crate) const INV: Layout = l(op::INV, "INV", &[DEVICE, EVENT]);
pub(crate) const INVALL: Layout = l(op::INVALL, "INVALL", &[ICID]);
pub(crate) const MOVALL: Layout = l(
    op::MOVALL,
    "MOVALL",
    &[
        FieldSpec::new("rdbase1", 2, 16, 36, 0), // RDbase1, DW2[51:16]
        FieldSpec::new("rdbase2", 3, 16, 36, 0), // RDbase2, DW3[51:16]
    ],
);
pub(crate) const DISCARD: Layout = l(op::DISCARD, "DISCARD", &[DEVICE, EVENT]);

// GICv4.0 virtual commands.
pub(crate) const VMOVI: Layout = l(
    op::VMOVI,
    "VMOVI",
    &[DEVICE, EVENT, VPE, FieldSpec::new("d", 2, 0, 1, 0), DB], // D, DW2[0]
);
pub(crate) const VMOVP: Layout = l(
    op::VMOVP,
    "VMOVP",
    &[
        FieldSpec::new("seq", 0, 32, 16, 0), // SequenceNumber, DW0[47:32]
        FieldSpec::new("its_list", 1, 0, 16, 0), // ITSList, DW1[15:0]
        VPE,
        RDBASE,
    ],
);
pub(crate) const VSYNC: Layout = l(op::VSYNC, "VSYNC", &[VPE]);
pub(crate) const VMAPP: Layout = l(
    op::VMAPP,
    "VMAPP",
    &[
        VPE,
        RDBASE,
        VALID,
        FieldSpec::new("vpt", 3, 16, 36, 16), // VPT_addr, DW3[51:16]
        FieldSpec::new("vpt_size", 3, 0, 5, 0), // VPT_size, DW3[4:0]
    ],
);
pub(crate) const VMAPTI: Layout = l(
    op::VMAPTI,
    "VMAPTI",
    &[
        DEVICE,
        EVENT,
        VPE,
        FieldSpec::new("vintid", 2, 0, 32, 0),
        DB,
    ], // vINTID, DW2[31:0]
);
pub(crate) const VMAPI: Layout = l(op::VMAPI, "VMAPI", &[DEVICE, EVENT, VPE, DB]);
pub(crate) const VINVALL: Layout = l(op::VINVALL, "VINVALL", &[VPE]);

// GICv4.1 forms.
pub(crate) const VMOVP_V41: Layout = l(
    op::VMOVP,
    "VMOVP",
    &[
        FieldSpec::new("seq", 0, 32, 16, 0),
        FieldSpec::new("its_list", 1, 0, 16, 0),
        VPE,
        RDBASE,
        FieldSpec::new("db_valid", 2, 63, 1, 0), // DB, DW2[63]
        FieldSpec::new("default_db", 3, 0, 32, 0), // Default_Doorbell, DW3[31:0]
    ],
);
pub(crate) const VMAPP_V41: Layout = l(
    op::VMAPP,
    "VMAPP",
    &[
        VPE,
        RDBASE,
        VALID,
        FieldSpec::new("vpt", 3, 16, 36, 16),
        FieldSpec::new("vpt_size", 3, 0, 8, 0), // VPT_size, DW3[7:0]
        FieldSpec::new("alloc", 0, 8, 1, 0),    // Alloc, DW0[8]
        FieldSpec::new("ptz", 0, 9, 1, 0),      // PTZ, DW0[9]
        FieldSpec::new("vconf", 0, 16, 36, 16), // VCONF_addr, DW0[51:16]
        FieldSpec::new("default_db", 1, 0, 32, 0), // Default_Doorbell, DW1[31:0]
    ],
);
pub(crate) const VSGI: Layout = l(
    op::VSGI,
    "VSGI",
    &[
        VPE,
        FieldSpec::new("sgi", 0, 32, 4, 0), // vINTID, DW0[35:32]
        FieldSpec::new("priority", 0, 20, 4, 4), // Priority, DW0[23:20]
        FieldSpec::new("group", 0, 10, 1, 0), // G, DW0[10]
        FieldSpec::new("clear", 0, 9, 1, 0), // C, DW0[9]
        FieldSpec::new("enable", 0, 8, 1, 0), // E, DW0[8]
    ],
);
pub(crate) const INVDB: Layout = l(op::INVDB, "INVDB", &[VPE]);

const PHYSICAL: [&Layout; 12] = [
    &MOVI, &INT, &CLEAR, &SYNC, &MAPD, &MAPC, &MAPTI, &MAPI, &INV, &INVALL, &MOVALL, &DISCARD,
];
const VIRTUAL_V40: [&Layout; 7] = [&VMOVI, &VMOVP, &VSYNC, &VMAPP, &VMAPTI, &VMAPI, &VINVALL];
const VIRTUAL_V41: [&Layout; 9] = [
    &VMOVI, &VMOVP_V41, &VSGI, &VSYNC, &VMAPP_V41, &VMAPTI, &VMAPI, &VINVALL, &INVDB,
];

/// The layout of `opcode` in `version`, or `None` if that version has no such command.
pub fn layout_for(opcode: u8, version: ItsVersion) -> Option<&'static Layout> {
    let virt: &[&'static Layout] = match version {
        ItsVersion::V3 => &[],
        ItsVersion::V4_0 => &VIRTUAL_V40,
        ItsVersion::V4_1 => &VIRTUAL_V41,
    };
    PHYSICAL
        .iter()
        .chain(virt)
        .copied()
        .find(|l| l.opcode == opcode)
}

/// The mnemonic of `opcode` (the same in every version that has it), `"?"` for an opcode no
/// ITS command has.
pub fn mnemonic_of(opcode: u8) -> &'static str {
    layout_for(opcode, ItsVersion::V4_1).map_or("?", |l| l.mnemonic)
}

/// The layout with this mnemonic (case-insensitive) in `version`.
pub fn layout_by_mnemonic(mnemonic: &str, version: ItsVersion) -> Option<&'static Layout> {
    let virt: &[&'static Layout] = match version {
        ItsVersion::V3 => &[],
        ItsVersion::V4_0 => &VIRTUAL_V40,
        ItsVersion::V4_1 => &VIRTUAL_V41,
    };
    PHYSICAL
        .iter()
        .chain(virt)
        .copied()
        .find(|l| l.mnemonic.eq_ignore_ascii_case(mnemonic))
}

/// Every layout of `version`.
pub fn layouts(version: ItsVersion) -> impl Iterator<Item = &'static Layout> {
    let virt: &[&'static Layout] = match version {
        ItsVersion::V3 => &[],
        ItsVersion::V4_0 => &VIRTUAL_V40,
        ItsVersion::V4_1 => &VIRTUAL_V41,
    };
    PHYSICAL.iter().chain(virt).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No two fields of a layout overlap, and none overlaps the opcode byte.
    #[test]
    fn fields_do_not_overlap() {
        for v in [ItsVersion::V3, ItsVersion::V4_0, ItsVersion::V4_1] {
            for l in layouts(v) {
                let mut used = [0xffu64, 0, 0, 0];
                for f in l.fields {
                    assert!(f.width >= 1 && u32::from(f.lo) + u32::from(f.width) <= 64);
                    assert_eq!(
                        used[f.dw as usize] & f.mask(),
                        0,
                        "{} {}",
                        l.mnemonic,
                        f.key
                    );
                    used[f.dw as usize] |= f.mask();
                }
                assert!(l.fields.len() <= MAX_FIELDS);
            }
        }
    }

    #[test]
    fn mnemonics_are_unique_per_version() {
        for v in [ItsVersion::V3, ItsVersion::V4_0, ItsVersion::V4_1] {
            let all: std::vec::Vec<_> = layouts(v).collect();
            for (i, a) in all.iter().enumerate() {
                for b in &all[i + 1..] {
                    assert_ne!(a.mnemonic, b.mnemonic);
                    assert_ne!(a.opcode, b.opcode);
                }
            }
        }
    }

    #[test]
    fn version_sets() {
        assert!(layout_for(op::VMAPP, ItsVersion::V3).is_none());
        assert_eq!(layout_for(op::VMAPP, ItsVersion::V4_0), Some(&VMAPP));
        assert_eq!(layout_for(op::VMAPP, ItsVersion::V4_1), Some(&VMAPP_V41));
        assert!(layout_for(op::VSGI, ItsVersion::V4_0).is_none());
        assert!(layout_for(op::INVDB, ItsVersion::V4_1).is_some());
        assert!(layout_for(0x00, ItsVersion::V4_1).is_none());
        assert_eq!(layout_by_mnemonic("mapti", ItsVersion::V3), Some(&MAPTI));
    }

    #[test]
    fn check_rejects_misaligned_and_wide() {
        let itt = MAPD.field("itt").unwrap();
        assert_eq!(itt.check(0x4000_0100), Ok(0x40_0001));
        assert_eq!(
            itt.check(0x4000_0180),
            Err(FieldError::Misaligned {
                key: "itt",
                value: 0x4000_0180,
                align: 0x100
            })
        );
        assert!(matches!(
            itt.check(1 << 52),
            Err(FieldError::TooLarge { .. })
        ));
        let size = MAPD.field("size").unwrap();
        assert_eq!(size.check(31), Ok(31));
        assert!(size.check(32).is_err());
    }
}
