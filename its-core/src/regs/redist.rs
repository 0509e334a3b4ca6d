// SPDX-License-Identifier: MIT OR Apache-2.0
//! Redistributor register values (Arm IHI 0069, "The GIC Redistributor register map").

use bitfield_struct::bitfield;

use super::{Cacheability, MemAttrs, Shareability};
use crate::addr::{Addr4K, Addr64K, PhysAddr, VptAddr};
use crate::ids::{ProcessorNumber, VpeId};

/// GICR_CTLR, the redistributor control register (RD_base + 0x0000, 32 bits).
#[bitfield(u32, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrCtlr {
    /// (EnableLPIs) LPIs are enabled on this redistributor.
    pub enable_lpis: bool,
    /// (CES) Clear Enable Supported: EnableLPIs can be cleared once set.
    pub ces: bool,
    /// (IR) LPI invalidate registers supported (GICv4.1).
    pub ir: bool,
    /// (RWP) Register write pending.
    pub rwp: bool,
    #[bits(20)]
    __: u32,
    /// (DPG0) Disable processor selection for group 0.
    pub dpg0: bool,
    /// (DPG1NS)
    pub dpg1ns: bool,
    /// (DPG1S)
    pub dpg1s: bool,
    #[bits(4)]
    __: u8,
    /// (UWP) Upstream write pending.
    pub uwp: bool,
}

/// GICR_TYPER, the redistributor type register (RD_base + 0x0008, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrTyper {
    /// (PLPIS) Physical LPIs supported.
    pub plpis: bool,
    /// (VLPIS) Virtual LPIs supported (GICv4).
    pub vlpis: bool,
    /// (Dirty) GICR_VPENDBASER.Dirty is implemented.
    pub dirty: bool,
    /// (DirectLPI) GICR_SETLPIR, CLRLPIR, INVLPIR, INVALLR and SYNCR are implemented.
    pub direct_lpi: bool,
    /// (Last) The last redistributor of a contiguous region.
    pub last: bool,
    /// (DPGS) GICR_CTLR.DPG* supported.
    pub dpgs: bool,
    /// (MPAM)
    pub mpam: bool,
    /// (RVPEID) GICv4.1: GICR_VPENDBASER records vPE IDs, not addresses.
    pub rvpeid: bool,
    /// (Processor_Number) The number RDbase fields use when GITS_TYPER.PTA = 0.
    #[bits(16)]
    pub processor_number: u16,
    /// (CommonLPIAff) Which redistributors share LPI configuration tables.
    #[bits(2)]
    pub common_lpi_aff: u8,
    /// (VSGI) GICv4.1 direct vSGI injection supported.
    pub vsgi: bool,
    /// (PPInum) Extended PPIs implemented.
    #[bits(5)]
    pub ppi_num: u8,
    /// (Affinity_Value) Aff3.Aff2.Aff1.Aff0 of the PE.
    #[bits(32)]
    pub affinity: u32,
}

impl GicrTyper {
    /// The processor number.
    pub const fn processor(&self) -> ProcessorNumber {
        ProcessorNumber::new(self.processor_number())
    }
}

/// GICR_WAKER, the power management control (RD_base + 0x0014, 32 bits).
#[bitfield(u32, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrWaker {
    /// IMPLEMENTATION DEFINED bit 0.
    pub impdef0: bool,
    /// (ProcessorSleep) Clear to wake the redistributor.
    pub processor_sleep: bool,
    /// (ChildrenAsleep) Read-only: the interface to the PE is quiescent.
    pub children_asleep: bool,
    #[bits(28)]
    __: u32,
    /// IMPLEMENTATION DEFINED bit 31.
    pub impdef31: bool,
}

macro_rules! attrs_helpers {
    ($t:ty) => {
        impl $t {
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
    };
}

/// GICR_PROPBASER, the LPI configuration table (RD_base + 0x0070, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrPropbaser {
    /// (IDbits) INTID bits supported, minus one (at least 13).
    #[bits(5)]
    pub id_bits: u8,
    #[bits(2)]
    __: u8,
    /// (InnerCache)
    #[bits(3)]
    pub inner_cache: Cacheability,
    /// (Shareability)
    #[bits(2)]
    pub shareability: Shareability,
    /// (Physical_Address) Bits \[51:12\] of the table address.
    #[bits(40)]
    pub physical_address: u64,
    #[bits(4)]
    __: u8,
    /// (OuterCache)
    #[bits(3)]
    pub outer_cache: Cacheability,
    #[bits(5)]
    __: u8,
}

impl GicrPropbaser {
    /// The table address.
    pub const fn addr(&self) -> PhysAddr {
        PhysAddr::new(self.physical_address() << 12)
    }

    /// With the table address set.
    pub const fn with_addr(self, a: Addr4K) -> Self {
        self.with_physical_address(a.field())
    }
}
attrs_helpers!(GicrPropbaser);

/// GICR_PENDBASER, the LPI pending table (RD_base + 0x0078, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrPendbaser {
    #[bits(7)]
    __: u8,
    /// (InnerCache)
    #[bits(3)]
    pub inner_cache: Cacheability,
    /// (Shareability)
    #[bits(2)]
    pub shareability: Shareability,
    #[bits(4)]
    __: u8,
    /// (Physical_Address) Bits \[51:16\] of the table address.
    #[bits(36)]
    pub physical_address: u64,
    #[bits(4)]
    __: u8,
    /// (OuterCache)
    #[bits(3)]
    pub outer_cache: Cacheability,
    #[bits(3)]
    __: u8,
    /// (PTZ) The pending table is known to be all zeros.
    pub ptz: bool,
    #[bits(1)]
    __: u8,
}

impl GicrPendbaser {
    /// The table address.
    pub const fn addr(&self) -> PhysAddr {
        PhysAddr::new(self.physical_address() << 16)
    }

    /// With the table address set.
    pub const fn with_addr(self, a: Addr64K) -> Self {
        self.with_physical_address(a.field())
    }
}
attrs_helpers!(GicrPendbaser);

/// GICR_VPROPBASER in the GICv4.0 layout: the VM's vLPI configuration table (VLPI_base +
/// 0x0070, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrVpropbaser {
    /// (IDbits) vINTID bits, minus one. vLPIs at or above 2^(IDbits+1) are dropped.
    #[bits(5)]
    pub id_bits: u8,
    #[bits(2)]
    __: u8,
    /// (InnerCache)
    #[bits(3)]
    pub inner_cache: Cacheability,
    /// (Shareability)
    #[bits(2)]
    pub shareability: Shareability,
    /// (Physical_Address) Bits \[51:12\] of the table address.
    #[bits(40)]
    pub physical_address: u64,
    #[bits(4)]
    __: u8,
    /// (OuterCache)
    #[bits(3)]
    pub outer_cache: Cacheability,
    #[bits(5)]
    __: u8,
}

impl GicrVpropbaser {
    /// The table address.
    pub const fn addr(&self) -> PhysAddr {
        PhysAddr::new(self.physical_address() << 12)
    }

    /// With the table address set.
    pub const fn with_addr(self, a: Addr4K) -> Self {
        self.with_physical_address(a.field())
    }
}
attrs_helpers!(GicrVpropbaser);

/// GICR_VPROPBASER in the GICv4.1 layout: a vPE table descriptor shared with the ITSs
/// (VLPI_base + 0x0070, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrVpropbaserV41 {
    /// (Size) Pages of the table, minus one.
    #[bits(7)]
    pub size: u8,
    /// (InnerCache)
    #[bits(3)]
    pub inner_cache: Cacheability,
    /// (Shareability)
    #[bits(2)]
    pub shareability: Shareability,
    /// (Physical_Address) Bits \[51:12\] of the table address.
    #[bits(40)]
    pub physical_address: u64,
    /// (Z) The table is zeroed.
    pub z: bool,
    /// (Page_Size)
    #[bits(2)]
    pub page_size: u8,
    /// (Indirect)
    pub indirect: bool,
    /// (OuterCache)
    #[bits(3)]
    pub outer_cache: Cacheability,
    /// (Entry_Size) Bytes per entry, minus one (read-only in some implementations).
    #[bits(3)]
    pub entry_size: u8,
    #[bits(1)]
    __: u8,
    /// (Valid)
    pub valid: bool,
}
attrs_helpers!(GicrVpropbaserV41);

/// GICR_VPENDBASER in the GICv4.0 layout: the resident vPE's pending table (VLPI_base +
/// 0x0078, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrVpendbaser {
    #[bits(7)]
    __: u8,
    /// (InnerCache)
    #[bits(3)]
    pub inner_cache: Cacheability,
    /// (Shareability)
    #[bits(2)]
    pub shareability: Shareability,
    #[bits(4)]
    __: u8,
    /// (Physical_Address) Bits \[51:16\] of the VPT address.
    #[bits(36)]
    pub physical_address: u64,
    #[bits(4)]
    __: u8,
    /// (OuterCache)
    #[bits(3)]
    pub outer_cache: Cacheability,
    #[bits(1)]
    __: u8,
    /// (Dirty) Read-only: the redistributor is still reading or writing the VPT.
    pub dirty: bool,
    /// (PendingLast) On schedule: the VPT may hold pending vLPIs. After deschedule: a pending,
    /// enabled vLPI was seen.
    pub pending_last: bool,
    /// (IDAI) Implementation-defined area of the VPT is invalid.
    pub idai: bool,
    /// (Valid) The vPE is resident.
    pub valid: bool,
}

impl GicrVpendbaser {
    /// The VPT address.
    pub const fn addr(&self) -> PhysAddr {
        PhysAddr::new(self.physical_address() << 16)
    }

    /// With the VPT address set.
    pub const fn with_addr(self, a: VptAddr) -> Self {
        self.with_physical_address(a.field())
    }
}
attrs_helpers!(GicrVpendbaser);

/// GICR_VPENDBASER in the GICv4.1 layout (VLPI_base + 0x0078, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrVpendbaserV41 {
    /// (vPEID) The resident vPE.
    #[bits(16)]
    pub vpe_id: u16,
    #[bits(42)]
    __: u64,
    /// (vGrp1En) Virtual group 1 interrupts enabled.
    pub vgrp1en: bool,
    /// (vGrp0En) Virtual group 0 interrupts enabled.
    pub vgrp0en: bool,
    /// (Dirty) Read-only: the redistributor is still processing the change.
    pub dirty: bool,
    /// (PendingLast) After deschedule: a pending vLPI exists.
    pub pending_last: bool,
    /// (Doorbell) On deschedule: request the vPE's default doorbell.
    pub doorbell: bool,
    /// (Valid) The vPE is resident.
    pub valid: bool,
}

impl GicrVpendbaserV41 {
    /// The vPE ID.
    pub const fn vpe(&self) -> VpeId {
        VpeId::new(self.vpe_id())
    }
}

/// GICR_INVLPIR, invalidate one LPI or vLPI (RD_base + 0x00a0, 64 bits; DirectLPI or
/// GICv4.1).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrInvlpir {
    /// (INTID) The LPI or vLPI.
    #[bits(32)]
    pub intid: u32,
    /// (vPEID) The vPE, when V = 1.
    #[bits(16)]
    pub vpe_id: u16,
    #[bits(15)]
    __: u16,
    /// (V) `intid` is a vLPI of `vpe_id`.
    pub virtual_lpi: bool,
}

/// GICR_SETLPIR / GICR_CLRLPIR, make one physical LPI pending / not pending (RD_base +
/// 0x0040 / 0x0048, 64 bits; only when GICR_TYPER.DirectLPI).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrLpir {
    /// (pINTID) The physical LPI.
    #[bits(32)]
    pub intid: u32,
    #[bits(32)]
    __: u32,
}

/// GICR_INVALLR, invalidate all LPIs or all vLPIs of a vPE (RD_base + 0x00b0, 64 bits).
#[bitfield(u64, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrInvallr {
    #[bits(32)]
    __: u32,
    /// (vPEID) The vPE, when V = 1.
    #[bits(16)]
    pub vpe_id: u16,
    #[bits(15)]
    __: u16,
    /// (V) Invalidate the vLPIs of `vpe_id` rather than physical LPIs.
    pub virtual_lpi: bool,
}

/// GICR_SYNCR, redistributor synchronization (RD_base + 0x00c0, 32 bits).
#[bitfield(u32, defmt = cfg(feature = "defmt"))]
#[derive(
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
pub struct GicrSyncr {
    /// (Busy) Direct LPI register writes or invalidations are still in progress.
    pub busy: bool,
    #[bits(31)]
    __: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 10.0's GICR0_TYPER (read at reset): PLPIS, VLPIS, CommonLPIAff = 1.
    #[test]
    fn qemu_typer() {
        let t = GicrTyper::from(0x0000_0000_0100_0003);
        assert!(t.plpis());
        assert!(t.vlpis());
        assert!(!t.dirty());
        assert!(!t.direct_lpi());
        assert!(!t.rvpeid());
        assert_eq!(t.processor_number(), 0);
        assert_eq!(t.common_lpi_aff(), 1);
        let cpu1 = GicrTyper::from(0x0000_0001_0100_0113);
        assert_eq!(cpu1.processor_number(), 1);
        assert!(cpu1.last());
        assert_eq!(cpu1.affinity(), 1);
    }

    #[test]
    fn field_positions() {
        assert_eq!(GicrTyper::DIRECT_LPI_OFFSET, 3);
        assert_eq!(GicrTyper::RVPEID_OFFSET, 7);
        assert_eq!(GicrTyper::PROCESSOR_NUMBER_OFFSET, 8);
        assert_eq!(GicrTyper::AFFINITY_OFFSET, 32);
        assert_eq!(GicrWaker::CHILDREN_ASLEEP_OFFSET, 2);
        assert_eq!(GicrPropbaser::OUTER_CACHE_OFFSET, 56);
        assert_eq!(GicrPendbaser::PHYSICAL_ADDRESS_OFFSET, 16);
        assert_eq!(GicrPendbaser::PTZ_OFFSET, 62);
        assert_eq!(GicrVpendbaser::DIRTY_OFFSET, 60);
        assert_eq!(GicrVpendbaser::PENDING_LAST_OFFSET, 61);
        assert_eq!(GicrVpendbaser::IDAI_OFFSET, 62);
        assert_eq!(GicrVpendbaser::VALID_OFFSET, 63);
        assert_eq!(GicrVpendbaserV41::VGRP1EN_OFFSET, 58);
        assert_eq!(GicrVpendbaserV41::VGRP0EN_OFFSET, 59);
        assert_eq!(GicrVpendbaserV41::DOORBELL_OFFSET, 62);
        assert_eq!(GicrVpropbaserV41::Z_OFFSET, 52);
        assert_eq!(GicrVpropbaserV41::PAGE_SIZE_OFFSET, 53);
        assert_eq!(GicrVpropbaserV41::INDIRECT_OFFSET, 55);
        assert_eq!(GicrVpropbaserV41::OUTER_CACHE_OFFSET, 56);
        assert_eq!(GicrVpropbaserV41::ENTRY_SIZE_OFFSET, 59);
        assert_eq!(GicrInvlpir::VPE_ID_OFFSET, 32);
        assert_eq!(GicrInvlpir::VIRTUAL_LPI_OFFSET, 63);
    }

    /// Linux's v4.0 schedule: VPROPBASER = PA | (bits-1) | RaWb inner (3 << 7) | inner
    /// shareable (1 << 10); VPENDBASER = PA | RaWaWb (7 << 7) | inner shareable | PendingLast |
    /// Valid.
    #[test]
    fn schedule_values() {
        let prop = GicrVpropbaser::new()
            .with_addr(Addr4K::new(PhysAddr::new(0x4100_0000)).unwrap())
            .with_id_bits(15)
            .with_inner_cache(Cacheability::RaWb)
            .with_shareability(Shareability::Inner);
        assert_eq!(u64::from(prop), 0x4100_0000 | 15 | (3 << 7) | (1 << 10));
        let pend = GicrVpendbaser::new()
            .with_addr(VptAddr::new(PhysAddr::new(0x4101_0000)).unwrap())
            .with_attrs(MemAttrs::CACHED)
            .with_pending_last(true)
            .with_valid(true);
        assert_eq!(
            u64::from(pend),
            0xa000_0000_4101_0000 | (7 << 7) | (1 << 10)
        );
        assert_eq!(pend.addr().get(), 0x4101_0000);
    }

    #[test]
    fn invalidate_registers() {
        let inv = GicrInvlpir::new()
            .with_intid(8200)
            .with_vpe_id(3)
            .with_virtual_lpi(true);
        assert_eq!(u64::from(inv), 0x8000_0003_0000_2008);
        let all = GicrInvallr::new().with_vpe_id(3).with_virtual_lpi(true);
        assert_eq!(u64::from(all), 0x8000_0003_0000_0000);
    }
}
