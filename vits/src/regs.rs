// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guest-visible ITS control frame: offsets, access rules, register values.
//!
//! Pure: which register an access hits, and the values the guest reads back (Arm IHI 0069,
//! "The ITS control register map"). The effects of writes (processing the queue, dropping
//! mappings when a table changes) are [`crate::Vits`]'s.

use its_core::regs::{BaserType, GitsBaser, GitsCbaser, GitsCreadr, GitsCtlr, GitsTyper};

use crate::error::AccessError;

/// Size of the ITS control frame (the GITS_TRANSLATER frame follows it and is not trapped).
pub const FRAME_SIZE: u64 = 0x1_0000;
/// GITS_CTLR (32-bit).
pub const GITS_CTLR: u64 = 0x0000;
/// GITS_IIDR (32-bit).
pub const GITS_IIDR: u64 = 0x0004;
/// GITS_TYPER (64-bit).
pub const GITS_TYPER: u64 = 0x0008;
/// GITS_CBASER (64-bit).
pub const GITS_CBASER: u64 = 0x0080;
/// GITS_CWRITER (64-bit).
pub const GITS_CWRITER: u64 = 0x0088;
/// GITS_CREADR (64-bit, read-only).
pub const GITS_CREADR: u64 = 0x0090;
/// GITS_BASER0 (64-bit); `GITS_BASER<n>` is at `GITS_BASER0 + 8 * n`, n from 0 to 7.
pub const GITS_BASER0: u64 = 0x0100;
/// GITS_PIDR2 (32-bit).
pub const GITS_PIDR2: u64 = 0xffe8;

/// GITS_PIDR2: ArchRev 3 (GICv3) in bits \[7:4\], JEDEC-assigned bit 3, JEP106 ID bits
/// \[6:4\] of Arm (0b011) in bits \[2:0\].
pub const PIDR2: u32 = 0x3b;

/// Bytes per device table entry (GITS_BASER0.Entry_Size + 1).
pub const DEVICE_ENTRY_BYTES: u8 = 8;
/// Bytes per collection table entry (GITS_BASER1.Entry_Size + 1).
pub const COLLECTION_ENTRY_BYTES: u8 = 8;
/// Bytes per ITT entry (GITS_TYPER.ITT_entry_size + 1). The guest allocates ITTs of this
/// size; the vITS never reads them (its own records stand in for the ITT).
pub const ITT_ENTRY_BYTES: u8 = 8;

/// Which register an access hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reg {
    Ctlr,
    Iidr,
    Typer,
    Cbaser,
    Cwriter,
    Creadr,
    /// `GITS_BASER<n>`.
    Baser(u8),
    Pidr2,
    /// RAZ/WI.
    Reserved,
}

/// A checked access: the register, and for a 32-bit access to a 64-bit register which half
/// (the bit shift, 0 or 32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Access {
    pub(crate) reg: Reg,
    pub(crate) shift: u32,
    pub(crate) size: usize,
}

impl Access {
    /// Checks an access of `size` bytes at `offset` into the control frame.
    pub(crate) fn decode(offset: u64, size: usize) -> Result<Self, AccessError> {
        if offset >= FRAME_SIZE {
            return Err(AccessError::OutsideFrame { offset });
        }
        if size != 4 && size != 8 {
            return Err(AccessError::Size { offset, size });
        }
        if !offset.is_multiple_of(size as u64) {
            return Err(AccessError::Misaligned { offset, size });
        }
        let base = offset & !7;
        let shift = ((offset & 4) * 8) as u32;
        let wide = |reg| Ok(Self { reg, shift, size });
        match offset {
            GITS_CTLR | GITS_IIDR | GITS_PIDR2 if size == 8 => Err(AccessError::Width { offset }),
            GITS_CTLR => Ok(Self {
                reg: Reg::Ctlr,
                shift: 0,
                size,
            }),
            GITS_IIDR => Ok(Self {
                reg: Reg::Iidr,
                shift: 0,
                size,
            }),
            GITS_PIDR2 => Ok(Self {
                reg: Reg::Pidr2,
                shift: 0,
                size,
            }),
            _ => match base {
                GITS_TYPER => wide(Reg::Typer),
                GITS_CBASER => wide(Reg::Cbaser),
                GITS_CWRITER => wide(Reg::Cwriter),
                GITS_CREADR => wide(Reg::Creadr),
                b if (GITS_BASER0..GITS_BASER0 + 64).contains(&b) => {
                    wide(Reg::Baser(((b - GITS_BASER0) / 8) as u8))
                }
                _ => Ok(Self {
                    reg: Reg::Reserved,
                    shift: 0,
                    size,
                }),
            },
        }
    }

    /// The bits of the register this access covers.
    pub(crate) fn mask(&self) -> u64 {
        if self.size == 8 {
            u64::MAX
        } else {
            0xffff_ffff << self.shift
        }
    }

    /// The value read, from the register's whole value.
    pub(crate) fn extract(&self, reg: u64) -> u64 {
        (reg & self.mask()) >> self.shift
    }

    /// The register's new value after writing `value` through this access.
    pub(crate) fn merge(&self, old: u64, value: u64) -> u64 {
        (old & !self.mask()) | ((value << self.shift) & self.mask())
    }

    /// Whether the access writes bits \[31:0\] (a GITS_CWRITER write that does not touch them,
    /// the upper half alone, changes no offset and starts no processing).
    pub(crate) fn covers_low_half(&self) -> bool {
        self.shift == 0
    }
}

/// GITS_TYPER for the guest: physical LPIs only (Virtual = 0), PTA = 0 (RDbase is a vCPU
/// number), no hardware collections (HCC = 0: the guest provides a collection table) and
/// CIL = 1 with CIDbits.
pub(crate) fn typer(device_bits: u8, event_bits: u8, collection_bits: u8) -> GitsTyper {
    GitsTyper::new()
        .with_physical(true)
        .with_itt_entry_size(ITT_ENTRY_BYTES - 1)
        .with_id_bits(event_bits - 1)
        .with_dev_bits(device_bits - 1)
        .with_cid_bits(collection_bits - 1)
        .with_cil(true)
}

/// GITS_CTLR as read: Enabled, and Quiescent whenever the ITS is disabled (commands run to
/// completion inside the trapped access, so nothing is ever in flight).
pub(crate) fn ctlr(enabled: bool) -> GitsCtlr {
    GitsCtlr::new()
        .with_enabled(enabled)
        .with_quiescent(!enabled)
}

/// GITS_CBASER keeps the architected fields and drops reserved bits.
pub(crate) fn cbaser(written: u64) -> GitsCbaser {
    let w = GitsCbaser::from(written);
    GitsCbaser::new()
        .with_size(w.size())
        .with_shareability(w.shareability())
        .with_physical_address(w.physical_address())
        .with_outer_cache(w.outer_cache())
        .with_inner_cache(w.inner_cache())
        .with_valid(w.valid())
}

/// GITS_CREADR as read.
pub(crate) fn creadr(offset: u32, stalled: bool) -> GitsCreadr {
    GitsCreadr::at(offset as usize, stalled)
}

/// The two tables the guest provides: GITS_BASER0 holds devices, GITS_BASER1 collections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    Devices,
    Collections,
}

impl Table {
    /// The table `GITS_BASER<n>` describes, if any (the others are RAZ/WI).
    pub(crate) fn of(n: u8) -> Option<Self> {
        match n {
            0 => Some(Self::Devices),
            1 => Some(Self::Collections),
            _ => None,
        }
    }

    fn entry_bytes(self) -> u8 {
        match self {
            Self::Devices => DEVICE_ENTRY_BYTES,
            Self::Collections => COLLECTION_ENTRY_BYTES,
        }
    }

    fn kind(self) -> BaserType {
        match self {
            Self::Devices => BaserType::Devices,
            Self::Collections => BaserType::Collections,
        }
    }

    /// The value at reset: not valid, 64 KiB pages.
    pub(crate) fn reset(self) -> GitsBaser {
        self.written(GitsBaser::new().with_page_size(2).into())
    }

    /// The value after the guest writes `v`: Type and Entry_Size are read-only; every other
    /// field is kept as written (4, 16 and 64 KiB pages and two-level tables are all
    /// supported, and the memory attributes are not used: the vITS keeps its own records
    /// instead of reading the tables).
    pub(crate) fn written(self, v: u64) -> GitsBaser {
        GitsBaser::from(v)
            .with_table_type(self.kind())
            .with_entry_size(self.entry_bytes() - 1)
    }

    /// How many IDs a table described by `b` holds: none when not valid; pages × page size /
    /// entry size when flat; with Indirect, the first-level pages hold 8-byte descriptors of
    /// one page each.
    pub(crate) fn capacity(self, b: GitsBaser) -> u64 {
        if !b.valid() {
            return 0;
        }
        let page: u64 = match b.page_size() {
            0 => 0x1000,
            1 => 0x4000,
            _ => 0x1_0000,
        };
        let pages = u64::from(b.size()) + 1;
        let esz = u64::from(self.entry_bytes());
        if b.indirect() {
            pages * page / 8 * (page / esz)
        } else {
            pages * page / esz
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_checked() {
        assert_eq!(
            Access::decode(FRAME_SIZE, 4),
            Err(AccessError::OutsideFrame { offset: FRAME_SIZE })
        );
        assert_eq!(
            Access::decode(0x88, 2),
            Err(AccessError::Size {
                offset: 0x88,
                size: 2
            })
        );
        assert_eq!(
            Access::decode(0x8c, 8),
            Err(AccessError::Misaligned {
                offset: 0x8c,
                size: 8
            })
        );
        assert_eq!(
            Access::decode(0x0, 8),
            Err(AccessError::Width { offset: 0 })
        );
        assert_eq!(
            Access::decode(GITS_PIDR2, 8),
            Err(AccessError::Width { offset: GITS_PIDR2 })
        );
        assert_eq!(
            Access::decode(0xc, 4).map(|a| (a.reg, a.shift)),
            Ok((Reg::Typer, 32))
        );
        assert_eq!(Access::decode(0x138, 8).map(|a| a.reg), Ok(Reg::Baser(7)));
        assert_eq!(Access::decode(0x140, 8).map(|a| a.reg), Ok(Reg::Reserved));
        assert_eq!(Access::decode(0xfffc, 4).map(|a| a.reg), Ok(Reg::Reserved));
    }

    #[test]
    fn halves_merge_and_extract() {
        let hi = Access::decode(0x8c, 4).unwrap();
        let lo = Access::decode(0x88, 4).unwrap();
        assert_eq!(
            hi.merge(0x1111_2222_3333_4444, 0xaaaa_bbbb),
            0xaaaa_bbbb_3333_4444
        );
        assert_eq!(
            lo.merge(0x1111_2222_3333_4444, 0xaaaa_bbbb),
            0x1111_2222_aaaa_bbbb
        );
        assert_eq!(hi.extract(0x1111_2222_3333_4444), 0x1111_2222);
        assert!(!hi.covers_low_half() && lo.covers_low_half());
    }

    #[test]
    fn baser_keeps_type_and_entry_size() {
        let v = Table::Devices.written(u64::MAX);
        assert_eq!(v.table_type(), BaserType::Devices);
        assert_eq!(v.entry_size(), DEVICE_ENTRY_BYTES - 1);
        assert!(v.valid() && v.indirect());
        let c = Table::Collections.written(0);
        assert_eq!(c.table_type(), BaserType::Collections);
        assert_eq!(Table::Collections.capacity(c), 0);
    }

    #[test]
    fn table_capacity() {
        let flat = GitsBaser::new()
            .with_valid(true)
            .with_page_size(0)
            .with_size(1);
        assert_eq!(
            Table::Devices.capacity(flat.into_bits().into()),
            2 * 4096 / 8
        );
        let ind = GitsBaser::new()
            .with_valid(true)
            .with_page_size(2)
            .with_size(0)
            .with_indirect(true);
        assert_eq!(
            Table::Devices.capacity(ind),
            (0x1_0000 / 8) * (0x1_0000 / 8)
        );
        let p16 = GitsBaser::new()
            .with_valid(true)
            .with_page_size(1)
            .with_size(255);
        assert_eq!(Table::Collections.capacity(p16), 256 * 0x4000 / 8);
    }

    #[test]
    fn typer_fields() {
        let t = typer(16, 5, 3);
        assert!(t.physical() && !t.virtual_lpis() && !t.pta() && t.cil());
        assert_eq!(
            (t.dev_bits(), t.id_bits(), t.cid_bits(), t.hcc()),
            (15, 4, 2, 0)
        );
        assert_eq!(t.itt_entry_bytes(), usize::from(ITT_ENTRY_BYTES));
    }
}
