// SPDX-License-Identifier: MIT OR Apache-2.0
//! ITS register values (Arm IHI 0069, "The ITS control register map").

use bitfield_struct::bitfield;

use super::{Cacheability, MemAttrs, Shareability};
use crate::addr::{Addr4K, PageSize, PhysAddr};

/// GITS_CTLR, the ITS control register (offset 0x0000, 32 bits).
#[bitfield(u32, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GitsCtlr {
    /// (Enabled) The ITS processes commands and translations.
    pub enabled: bool,
    /// (ImDe) GICv4.1: the ITS is in the same power domain as the redistributors.
    pub imde: bool,
    #[bits(2)]
    __: u8,
    /// (ITS_Number) GICv4.0 with GITS_TYPER.VMOVP = 0: this ITS's number in VMOVP ITSList.
    #[bits(4)]
    pub its_number: u8,
    /// (UMSIirq) Unmapped-MSI interrupt enable.
    pub umsi_irq: bool,
    #[bits(22)]
    __: u32,
    /// (Quiescent) Read-only: the ITS has no transactions in flight and is disabled.
    pub quiescent: bool,
}

/// GITS_TYPER, the ITS type register (offset 0x0008, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GitsTyper {
    /// (Physical) Physical LPIs supported.
    pub physical: bool,
    /// (Virtual) Virtual LPIs and direct injection supported (GICv4).
    pub virtual_lpis: bool,
    /// (CCT) Cumulative collection tables.
    pub cct: bool,
    #[bits(1)]
    __: u8,
    /// (ITT_entry_size) Bytes per ITT entry, minus one.
    #[bits(4)]
    pub itt_entry_size: u8,
    /// (IDbits) EventID bits supported, minus one.
    #[bits(5)]
    pub id_bits: u8,
    /// (Devbits) DeviceID bits supported, minus one.
    #[bits(5)]
    pub dev_bits: u8,
    /// (SEIS) Locally generated system errors supported.
    pub seis: bool,
    /// (PTA) 1: RDbase fields hold physical addresses; 0: processor numbers.
    pub pta: bool,
    #[bits(4)]
    __: u8,
    /// (HCC) Hardware collection count: collections held in the ITS without a table.
    #[bits(8)]
    pub hcc: u8,
    /// (CIDbits) Collection ID bits, minus one (valid when CIL = 1).
    #[bits(4)]
    pub cid_bits: u8,
    /// (CIL) CIDbits is valid; otherwise collection IDs are 16 bits.
    pub cil: bool,
    /// (VMOVP) 1: one VMOVP to one ITS suffices; 0: VMOVP must go to every ITS with ITSList.
    pub vmovp: bool,
    /// (MPAM) MPAM supported.
    pub mpam: bool,
    /// (VSGI) GICv4.1 direct injection of virtual SGIs.
    pub vsgi: bool,
    /// (VMAPP) GICv4.1 layout of VMAPP (and the GICv4.1 command set).
    pub vmapp: bool,
    /// (SVPET) GICv4.1 vPE table sharing with the redistributors.
    #[bits(2)]
    pub svpet: u8,
    /// (nID) Individual doorbells not supported (GICv4.1).
    pub nid: bool,
    /// (UMSI) Reporting of unmapped MSIs supported.
    pub umsi: bool,
    /// (UMSIirq) Unmapped-MSI interrupt supported.
    pub umsi_irq: bool,
    /// (INV) INV/INVALL guaranteed to have no effect on other state (GICv4.1).
    pub inv: bool,
    #[bits(17)]
    __: u32,
}

impl GitsTyper {
    /// Bytes per ITT entry (ITT_entry_size + 1).
    pub const fn itt_entry_bytes(&self) -> usize {
        self.itt_entry_size() as usize + 1
    }
}

/// GITS_CBASER, the command queue base register (offset 0x0080, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GitsCbaser {
    /// (Size) Number of 4 KiB pages of the queue, minus one.
    #[bits(8)]
    pub size: u8,
    #[bits(2)]
    __: u8,
    /// (Shareability)
    #[bits(2)]
    pub shareability: Shareability,
    /// (Physical_Address) Bits \[51:12\] of the queue's base address.
    #[bits(40)]
    pub physical_address: u64,
    #[bits(1)]
    __: u8,
    /// (OuterCache)
    #[bits(3)]
    pub outer_cache: Cacheability,
    #[bits(3)]
    __: u8,
    /// (InnerCache)
    #[bits(3)]
    pub inner_cache: Cacheability,
    #[bits(1)]
    __: u8,
    /// (Valid)
    pub valid: bool,
}

impl GitsCbaser {
    /// The queue's base address.
    pub const fn addr(&self) -> PhysAddr {
        PhysAddr::new(self.physical_address() << 12)
    }

    /// With the base address set.
    pub const fn with_addr(self, a: Addr4K) -> Self {
        self.with_physical_address(a.field())
    }

    /// The memory attributes.
    pub const fn attrs(&self) -> MemAttrs {
        MemAttrs {
            shareability: self.shareability(),
            inner: self.inner_cache(),
            outer: self.outer_cache(),
        }
    }

    /// With the memory attributes set.
    pub const fn with_attrs(self, a: MemAttrs) -> Self {
        self.with_shareability(a.shareability)
            .with_inner_cache(a.inner)
            .with_outer_cache(a.outer)
    }

    /// Queue size in bytes.
    pub const fn bytes(&self) -> usize {
        (self.size() as usize + 1) * 4096
    }
}

/// GITS_CWRITER, the command queue write offset (offset 0x0088, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GitsCwriter {
    /// (Retry) Write 1 to restart a stalled queue at the stalled command.
    pub retry: bool,
    #[bits(4)]
    __: u8,
    /// (Offset) Offset of the next command to write, in 32-byte units.
    #[bits(15)]
    pub offset: u16,
    #[bits(44)]
    __: u64,
}

impl GitsCwriter {
    /// The write offset in bytes.
    pub const fn byte_offset(&self) -> usize {
        self.offset() as usize * 32
    }

    /// A CWRITER value for a byte offset (a multiple of 32 below 1 MiB; higher bits dropped).
    pub const fn at(byte_offset: usize) -> Self {
        Self::new().with_offset(((byte_offset >> 5) & 0x7fff) as u16)
    }
}

/// GITS_CREADR, the command queue read offset (offset 0x0090, 64 bits, read-only).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GitsCreadr {
    /// (Stalled) Processing stopped at `offset` because of a command error.
    pub stalled: bool,
    #[bits(4)]
    __: u8,
    /// (Offset) Offset of the next command the ITS reads, in 32-byte units.
    #[bits(15)]
    pub offset: u16,
    #[bits(44)]
    __: u64,
}

impl GitsCreadr {
    /// The read offset in bytes.
    pub const fn byte_offset(&self) -> usize {
        self.offset() as usize * 32
    }

    /// A CREADR value for a byte offset (for models and tests).
    pub const fn at(byte_offset: usize, stalled: bool) -> Self {
        Self::new()
            .with_offset(((byte_offset >> 5) & 0x7fff) as u16)
            .with_stalled(stalled)
    }
}

/// The table type of a `GITS_BASER<n>` (the Type field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BaserType {
    /// 0b000: no table.
    Unimplemented,
    /// 0b001: device table.
    Devices,
    /// 0b010: vPE table.
    Vpes,
    /// 0b100: interrupt collection table.
    Collections,
    /// Reserved encodings.
    Reserved(u8),
}

impl BaserType {
    /// Field encoding.
    pub const fn into_bits(self) -> u8 {
        match self {
            Self::Unimplemented => 0,
            Self::Devices => 1,
            Self::Vpes => 2,
            Self::Collections => 4,
            Self::Reserved(v) => v & 7,
        }
    }

    /// Decodes the 3-bit field.
    pub const fn from_bits(v: u8) -> Self {
        match v & 7 {
            0 => Self::Unimplemented,
            1 => Self::Devices,
            2 => Self::Vpes,
            4 => Self::Collections,
            r => Self::Reserved(r),
        }
    }
}

/// `GITS_BASER<n>`, an ITS table descriptor (offset 0x0100 + 8n, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GitsBaser {
    /// (Size) Number of pages of the (first-level) table, minus one.
    #[bits(8)]
    pub size: u8,
    /// (Page_Size) 0: 4 KiB, 1: 16 KiB, 2: 64 KiB.
    #[bits(2)]
    pub page_size: u8,
    /// (Shareability)
    #[bits(2)]
    pub shareability: Shareability,
    /// (Physical_Address) Bits \[47:12\] of the table address; with 64 KiB pages, bits \[15:12\]
    /// of this field hold address bits \[51:48\].
    #[bits(36)]
    pub physical_address: u64,
    /// (Entry_Size) Read-only: bytes per entry, minus one.
    #[bits(5)]
    pub entry_size: u8,
    /// (OuterCache)
    #[bits(3)]
    pub outer_cache: Cacheability,
    /// (Type) Read-only: what the table holds.
    #[bits(3)]
    pub table_type: BaserType,
    /// (InnerCache)
    #[bits(3)]
    pub inner_cache: Cacheability,
    /// (Indirect) Two-level table: the first level holds 8-byte descriptors of second-level
    /// pages.
    pub indirect: bool,
    /// (Valid)
    pub valid: bool,
}

impl GitsBaser {
    /// The page size, or `None` for the reserved encoding.
    pub const fn page(&self) -> Option<PageSize> {
        PageSize::from_encoding(self.page_size())
    }

    /// With the page size set.
    pub const fn with_page(self, p: PageSize) -> Self {
        self.with_page_size(p.encoding())
    }

    /// Bytes per entry.
    pub const fn entry_bytes(&self) -> usize {
        self.entry_size() as usize + 1
    }

    /// The table address, decoding the 64 KiB-page form of bits \[51:48\].
    pub const fn addr(&self) -> PhysAddr {
        let f = self.physical_address();
        if self.page_size() == 2 {
            let low = (f << 12) & 0x0000_ffff_ffff_0000;
            let high = (f & 0xf) << 48;
            PhysAddr::new(low | high)
        } else {
            PhysAddr::new(f << 12)
        }
    }

    /// With the table address set, in the form the current page size needs. The address must
    /// already be aligned to the page size (see [`PageSize::check`]).
    ///
    /// With 4 KiB and 16 KiB pages the field holds only bits \[47:12\]: wider addresses do not
    /// fit and give `None`.
    pub const fn with_addr(self, pa: PhysAddr) -> Option<Self> {
        let a = pa.get();
        if a >> 52 != 0 || a & 0xfff != 0 {
            return None;
        }
        let field = if self.page_size() == 2 {
            ((a & 0x0000_ffff_ffff_0000) >> 12) | ((a >> 48) & 0xf)
        } else {
            if a >> 48 != 0 {
                return None;
            }
            a >> 12
        };
        Some(self.with_physical_address(field))
    }

    /// The memory attributes.
    pub const fn attrs(&self) -> MemAttrs {
        MemAttrs {
            shareability: self.shareability(),
            inner: self.inner_cache(),
            outer: self.outer_cache(),
        }
    }

    /// With the memory attributes set.
    pub const fn with_attrs(self, a: MemAttrs) -> Self {
        self.with_shareability(a.shareability)
            .with_inner_cache(a.inner)
            .with_outer_cache(a.outer)
    }
}

/// One first-level entry of an indirect (two-level) ITS table: bit 63 Valid, the second-level
/// page's address in bits \[51:12\] (aligned to the table's page size).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct ItsL1Entry {
    #[bits(12)]
    __: u16,
    /// Bits \[51:12\] of the second-level page's address.
    #[bits(40)]
    pub physical_address: u64,
    #[bits(11)]
    __: u16,
    /// (Valid)
    pub valid: bool,
}

impl ItsL1Entry {
    /// A valid entry pointing at a 4 KiB-aligned second-level page.
    pub const fn pointing_at(a: Addr4K) -> Self {
        Self::new()
            .with_physical_address(a.field())
            .with_valid(true)
    }

    /// The second-level page address.
    pub const fn addr(&self) -> PhysAddr {
        PhysAddr::new(self.physical_address() << 12)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's GITS_TYPER (`gicv3_arm_its_realize`): 0x0000_003f_0001_efb3.
    #[test]
    fn qemu_typer() {
        let t = GitsTyper::from(0x0000_003f_0001_efb3);
        assert!(t.physical());
        assert!(t.virtual_lpis());
        assert_eq!(t.itt_entry_bytes(), 12);
        assert_eq!(t.id_bits(), 15);
        assert_eq!(t.dev_bits(), 15);
        assert!(!t.seis());
        assert!(!t.pta());
        assert_eq!(t.hcc(), 0);
        assert_eq!(t.cid_bits(), 15);
        assert!(t.cil());
        assert!(t.vmovp());
        assert!(!t.vmapp());
        assert!(!t.vsgi());
    }

    #[test]
    fn field_positions() {
        assert_eq!(GitsTyper::PTA_OFFSET, 19);
        assert_eq!(GitsTyper::HCC_OFFSET, 24);
        assert_eq!(GitsTyper::CID_BITS_OFFSET, 32);
        assert_eq!(GitsTyper::VMOVP_OFFSET, 37);
        assert_eq!(GitsTyper::VMAPP_OFFSET, 40);
        assert_eq!(GitsTyper::SVPET_OFFSET, 41);
        assert_eq!(GitsTyper::INV_OFFSET, 46);
        assert_eq!(GitsCtlr::QUIESCENT_OFFSET, 31);
        assert_eq!(GitsCtlr::ITS_NUMBER_OFFSET, 4);
        assert_eq!(GitsCbaser::PHYSICAL_ADDRESS_OFFSET, 12);
        assert_eq!(GitsCbaser::OUTER_CACHE_OFFSET, 53);
        assert_eq!(GitsCbaser::INNER_CACHE_OFFSET, 59);
        assert_eq!(GitsBaser::ENTRY_SIZE_OFFSET, 48);
        assert_eq!(GitsBaser::OUTER_CACHE_OFFSET, 53);
        assert_eq!(GitsBaser::TABLE_TYPE_OFFSET, 56);
        assert_eq!(GitsBaser::INNER_CACHE_OFFSET, 59);
        assert_eq!(GitsBaser::INDIRECT_OFFSET, 62);
        assert_eq!(GitsCwriter::OFFSET_OFFSET, 5);
    }

    /// What Linux writes to CBASER for a 64 KiB queue at 0x4010_0000: PA | RaWaWb (inner,
    /// bits \[61:59\] = 7) | inner shareable (bits \[11:10\] = 1) | 15 pages - 1 | Valid.
    #[test]
    fn cbaser_value() {
        let v = GitsCbaser::new()
            .with_addr(Addr4K::new(PhysAddr::new(0x4010_0000)).unwrap())
            .with_attrs(MemAttrs::CACHED)
            .with_size(15)
            .with_valid(true);
        assert_eq!(u64::from(v), 0xb800_0000_4010_040f);
        assert_eq!(v.bytes(), 0x1_0000);
        assert_eq!(v.addr().get(), 0x4010_0000);
    }

    #[test]
    fn baser_64k_address_form() {
        let b = GitsBaser::new().with_page(PageSize::Size64K);
        let pa = PhysAddr::new(0x000a_1234_5678_0000);
        let b = b.with_addr(pa).unwrap();
        assert_eq!(b.addr(), pa);
        // Address bits [51:48] = 0xa sit in register bits [15:12].
        assert_eq!(u64::from(b) & 0xf000, 0xa000);
        let b4 = GitsBaser::new().with_page(PageSize::Size4K);
        assert!(b4.with_addr(pa).is_none());
        let low = PhysAddr::new(0x4123_4000);
        assert_eq!(b4.with_addr(low).unwrap().addr(), low);
    }

    /// QEMU's reset value of GITS_BASER0: type Devices, entry size 8, page size 64 KiB.
    #[test]
    fn baser_type_and_entry() {
        let b = GitsBaser::from((1u64 << 56) | (7u64 << 48) | (2u64 << 8));
        assert_eq!(b.table_type(), BaserType::Devices);
        assert_eq!(b.entry_bytes(), 8);
        assert_eq!(b.page(), Some(PageSize::Size64K));
        assert_eq!(
            GitsBaser::from(4u64 << 56).table_type(),
            BaserType::Collections
        );
        assert_eq!(
            GitsBaser::from(3u64 << 56).table_type(),
            BaserType::Reserved(3)
        );
    }

    #[test]
    fn queue_offsets() {
        let w = GitsCwriter::at(0xffe0);
        assert_eq!(u64::from(w), 0xffe0);
        assert_eq!(w.byte_offset(), 0xffe0);
        let r = GitsCreadr::from(0x0000_0000_0000_0041);
        assert!(r.stalled());
        assert_eq!(r.byte_offset(), 0x40);
    }

    #[test]
    fn l1_entry() {
        let e = ItsL1Entry::pointing_at(Addr4K::new(PhysAddr::new(0x4567_8000)).unwrap());
        assert_eq!(u64::from(e), 0x8000_0000_4567_8000);
        assert_eq!(e.addr().get(), 0x4567_8000);
    }
}
