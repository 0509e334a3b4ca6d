// SPDX-License-Identifier: MIT OR Apache-2.0
//! MMIO register blocks and the narrow register traits the drivers are written against.
//!
//! The blocks are `#[repr(C)]` structs of `safe-mmio` fields. `safe-mmio` performs each access
//! with exactly one load or store instruction of the register's width (inline assembly on
//! aarch64), so a hypervisor that traps these accesses can decode them from the syndrome.
//! Every register offset is checked at compile time against Arm IHI 0069.
//!
//! The drivers do not use the blocks directly: they use [`ItsRegisters`] and
//! [`RedistRegisters`], narrow non-generic traits implemented here for the MMIO blocks and by
//! the host model (crate `its-model`).
//!
//! ```no_run
//! use core::ptr::NonNull;
//! use its_core::mmio::{GitsRegs, ItsRegisters};
//! use safe_mmio::UniqueMmioPointer;
//!
//! // SAFETY: 0x0808_0000 is the ITS control frame on QEMU's virt board, mapped as device
//! // memory, and nothing else accesses it while `its` lives.
//! let its = unsafe { UniqueMmioPointer::<GitsRegs>::new(NonNull::new(0x0808_0000 as *mut _).unwrap()) };
//! let typer = its.typer();
//! assert!(typer.physical());
//! ```

use core::mem::offset_of;

use safe_mmio::fields::{ReadPure, ReadPureWrite, WriteOnly};
use safe_mmio::{UniqueMmioPointer, field, field_shared};

use crate::regs::{
    GicdCtlr, GicdTyper, GicdTyper2, GicrCtlr, GicrInvallr, GicrInvlpir, GicrLpir, GicrPendbaser,
    GicrPropbaser, GicrSyncr, GicrTyper, GicrWaker, GitsBaser, GitsCbaser, GitsCreadr, GitsCtlr,
    GitsCwriter, GitsTyper,
};

/// `Debug` for register blocks: the name only. Formatting never reads a register (a read can
/// have side effects, and the block is only ever reached through an MMIO pointer).
macro_rules! register_block_debug {
    ($($t:ident),* $(,)?) => {
        $(impl core::fmt::Debug for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        })*
    };
}

register_block_debug!(
    GitsRegs,
    GitsTranslationRegs,
    GicrRdRegs,
    GicrSgiRegs,
    GicrVlpiRegs,
    GicrRegs,
    GicdRegs,
);

/// The ITS control frame (ITS_base, 64 KiB).
#[repr(C, align(8))]
pub struct GitsRegs {
    /// 0x0000 GITS_CTLR.
    pub ctlr: ReadPureWrite<GitsCtlr>,
    /// 0x0004 GITS_IIDR.
    pub iidr: ReadPure<u32>,
    /// 0x0008 GITS_TYPER.
    pub typer: ReadPure<GitsTyper>,
    /// 0x0010 GITS_MPAMIDR.
    pub mpamidr: ReadPure<u32>,
    /// 0x0014 GITS_PARTIDR.
    pub partidr: ReadPureWrite<u32>,
    /// 0x0018 GITS_MPIDR (GICv4.1).
    pub mpidr: ReadPure<u32>,
    _reserved0: [u32; 9],
    /// 0x0040 GITS_STATUSR.
    pub statusr: ReadPureWrite<u32>,
    _reserved1: u32,
    /// 0x0048 GITS_UMSIR.
    pub umsir: ReadPure<u64>,
    _reserved2: [u64; 6],
    /// 0x0080 GITS_CBASER.
    pub cbaser: ReadPureWrite<GitsCbaser>,
    /// 0x0088 GITS_CWRITER.
    pub cwriter: ReadPureWrite<GitsCwriter>,
    /// 0x0090 GITS_CREADR (writable only with GICD_CTLR.DS = 1; the driver never writes it).
    pub creadr: ReadPure<GitsCreadr>,
    _reserved3: [u64; 13],
    /// 0x0100 `GITS_BASER<n>`.
    pub baser: [ReadPureWrite<GitsBaser>; 8],
    _reserved4: [u32; 0x3faa],
    /// 0xffe8 GITS_PIDR2 (ArchRev in bits \[7:4\]).
    pub pidr2: ReadPure<u32>,
    _reserved5: [u32; 5],
}

const _: () = {
    assert!(offset_of!(GitsRegs, ctlr) == 0x0000);
    assert!(offset_of!(GitsRegs, iidr) == 0x0004);
    assert!(offset_of!(GitsRegs, typer) == 0x0008);
    assert!(offset_of!(GitsRegs, mpidr) == 0x0018);
    assert!(offset_of!(GitsRegs, statusr) == 0x0040);
    assert!(offset_of!(GitsRegs, umsir) == 0x0048);
    assert!(offset_of!(GitsRegs, cbaser) == 0x0080);
    assert!(offset_of!(GitsRegs, cwriter) == 0x0088);
    assert!(offset_of!(GitsRegs, creadr) == 0x0090);
    assert!(offset_of!(GitsRegs, baser) == 0x0100);
    assert!(offset_of!(GitsRegs, pidr2) == 0xffe8);
    assert!(size_of::<GitsRegs>() == 0x1_0000);
};

/// The ITS translation frame (ITS_base + 64 KiB): where devices write MSIs.
#[repr(C, align(8))]
pub struct GitsTranslationRegs {
    _reserved0: [u32; 0x10],
    /// 0x0040 GITS_TRANSLATER: a 32-bit write of an EventID from a device.
    pub translater: WriteOnly<u32>,
    _reserved1: [u32; 0x3fef],
}

const _: () = {
    assert!(offset_of!(GitsTranslationRegs, translater) == 0x40);
    assert!(size_of::<GitsTranslationRegs>() == 0x1_0000);
};

/// The offset of GITS_TRANSLATER from ITS_base: the MSI address devices are given.
pub const GITS_TRANSLATER_OFFSET: u64 = 0x1_0040;

/// A redistributor's RD_base frame (64 KiB).
#[repr(C, align(8))]
pub struct GicrRdRegs {
    /// 0x0000 GICR_CTLR.
    pub ctlr: ReadPureWrite<GicrCtlr>,
    /// 0x0004 GICR_IIDR.
    pub iidr: ReadPure<u32>,
    /// 0x0008 GICR_TYPER.
    pub typer: ReadPure<GicrTyper>,
    /// 0x0010 GICR_STATUSR.
    pub statusr: ReadPureWrite<u32>,
    /// 0x0014 GICR_WAKER.
    pub waker: ReadPureWrite<GicrWaker>,
    _reserved0: [u32; 10],
    /// 0x0040 GICR_SETLPIR (DirectLPI).
    pub setlpir: WriteOnly<GicrLpir>,
    /// 0x0048 GICR_CLRLPIR (DirectLPI).
    pub clrlpir: WriteOnly<GicrLpir>,
    _reserved1: [u64; 4],
    /// 0x0070 GICR_PROPBASER.
    pub propbaser: ReadPureWrite<GicrPropbaser>,
    /// 0x0078 GICR_PENDBASER.
    pub pendbaser: ReadPureWrite<GicrPendbaser>,
    _reserved2: [u64; 4],
    /// 0x00a0 GICR_INVLPIR.
    pub invlpir: WriteOnly<GicrInvlpir>,
    _reserved3: u64,
    /// 0x00b0 GICR_INVALLR.
    pub invallr: WriteOnly<GicrInvallr>,
    _reserved4: u64,
    /// 0x00c0 GICR_SYNCR.
    pub syncr: ReadPure<GicrSyncr>,
    _reserved5: [u32; 0x3fc9],
    /// 0xffe8 GICR_PIDR2.
    pub pidr2: ReadPure<u32>,
    _reserved6: [u32; 5],
}

const _: () = {
    assert!(offset_of!(GicrRdRegs, ctlr) == 0x0000);
    assert!(offset_of!(GicrRdRegs, typer) == 0x0008);
    assert!(offset_of!(GicrRdRegs, waker) == 0x0014);
    assert!(offset_of!(GicrRdRegs, setlpir) == 0x0040);
    assert!(offset_of!(GicrRdRegs, clrlpir) == 0x0048);
    assert!(offset_of!(GicrRdRegs, propbaser) == 0x0070);
    assert!(offset_of!(GicrRdRegs, pendbaser) == 0x0078);
    assert!(offset_of!(GicrRdRegs, invlpir) == 0x00a0);
    assert!(offset_of!(GicrRdRegs, invallr) == 0x00b0);
    assert!(offset_of!(GicrRdRegs, syncr) == 0x00c0);
    assert!(offset_of!(GicrRdRegs, pidr2) == 0xffe8);
    assert!(size_of::<GicrRdRegs>() == 0x1_0000);
};

/// A redistributor's SGI_base frame (RD_base + 64 KiB): SGIs and PPIs.
#[repr(C, align(8))]
pub struct GicrSgiRegs {
    _reserved0: [u32; 0x20],
    /// 0x0080 GICR_IGROUPR0.
    pub igroupr0: ReadPureWrite<u32>,
    _reserved1: [u32; 0x1f],
    /// 0x0100 GICR_ISENABLER0.
    pub isenabler0: ReadPureWrite<u32>,
    _reserved2: [u32; 0x1f],
    /// 0x0180 GICR_ICENABLER0.
    pub icenabler0: ReadPureWrite<u32>,
    _reserved3: [u32; 0x1f],
    /// 0x0200 GICR_ISPENDR0.
    pub ispendr0: ReadPureWrite<u32>,
    _reserved4: [u32; 0x1f],
    /// 0x0280 GICR_ICPENDR0.
    pub icpendr0: ReadPureWrite<u32>,
    _reserved5: [u32; 0x1f],
    /// 0x0300 GICR_ISACTIVER0.
    pub isactiver0: ReadPureWrite<u32>,
    _reserved6: [u32; 0x1f],
    /// 0x0380 GICR_ICACTIVER0.
    pub icactiver0: ReadPureWrite<u32>,
    _reserved7: [u32; 0x1f],
    /// 0x0400 `GICR_IPRIORITYR<n>`: one byte per SGI/PPI.
    pub ipriorityr: [ReadPureWrite<u8>; 32],
    _reserved8: [u32; 0x1f8],
    /// 0x0c00 GICR_ICFGR0 (SGIs).
    pub icfgr0: ReadPureWrite<u32>,
    /// 0x0c04 GICR_ICFGR1 (PPIs).
    pub icfgr1: ReadPureWrite<u32>,
    _reserved9: [u32; 0x3e],
    /// 0x0d00 GICR_IGRPMODR0.
    pub igrpmodr0: ReadPureWrite<u32>,
    _reserved10: [u32; 0x3cbf],
}

const _: () = {
    assert!(offset_of!(GicrSgiRegs, igroupr0) == 0x0080);
    assert!(offset_of!(GicrSgiRegs, isenabler0) == 0x0100);
    assert!(offset_of!(GicrSgiRegs, icenabler0) == 0x0180);
    assert!(offset_of!(GicrSgiRegs, ispendr0) == 0x0200);
    assert!(offset_of!(GicrSgiRegs, icpendr0) == 0x0280);
    assert!(offset_of!(GicrSgiRegs, isactiver0) == 0x0300);
    assert!(offset_of!(GicrSgiRegs, icactiver0) == 0x0380);
    assert!(offset_of!(GicrSgiRegs, ipriorityr) == 0x0400);
    assert!(offset_of!(GicrSgiRegs, icfgr0) == 0x0c00);
    assert!(offset_of!(GicrSgiRegs, icfgr1) == 0x0c04);
    assert!(offset_of!(GicrSgiRegs, igrpmodr0) == 0x0d00);
    assert!(size_of::<GicrSgiRegs>() == 0x1_0000);
};

/// A redistributor's VLPI_base frame (RD_base + 128 KiB), GICv4.
#[repr(C, align(8))]
pub struct GicrVlpiRegs {
    _reserved0: [u64; 14],
    /// 0x0070 GICR_VPROPBASER (GICv4.0 or GICv4.1 layout: see [`crate::regs`]).
    pub vpropbaser: ReadPureWrite<u64>,
    /// 0x0078 GICR_VPENDBASER (GICv4.0 or GICv4.1 layout).
    pub vpendbaser: ReadPureWrite<u64>,
    /// 0x0080 GICR_VSGIR (GICv4.1).
    pub vsgir: ReadPureWrite<u32>,
    _reserved1: u32,
    /// 0x0088 GICR_VSGIPENDR (GICv4.1).
    pub vsgipendr: ReadPure<u32>,
    _reserved2: [u32; 0x3fdd],
}

const _: () = {
    assert!(offset_of!(GicrVlpiRegs, vpropbaser) == 0x0070);
    assert!(offset_of!(GicrVlpiRegs, vpendbaser) == 0x0078);
    assert!(offset_of!(GicrVlpiRegs, vsgir) == 0x0080);
    assert!(offset_of!(GicrVlpiRegs, vsgipendr) == 0x0088);
    assert!(size_of::<GicrVlpiRegs>() == 0x1_0000);
};

/// One GICv4 redistributor: RD_base, SGI_base, VLPI_base and a reserved frame (a stride of
/// 256 KiB).
#[repr(C, align(8))]
pub struct GicrRegs {
    /// RD_base.
    pub rd: GicrRdRegs,
    /// SGI_base.
    pub sgi: GicrSgiRegs,
    /// VLPI_base.
    pub vlpi: GicrVlpiRegs,
    _reserved: [u64; 0x2000],
}

const _: () = {
    assert!(offset_of!(GicrRegs, sgi) == 0x1_0000);
    assert!(offset_of!(GicrRegs, vlpi) == 0x2_0000);
    assert!(size_of::<GicrRegs>() == 0x4_0000);
};

/// The distributor registers needed for LPIs, GICv4 and forwarded SPIs (GICD_base, 64 KiB).
#[repr(C, align(8))]
pub struct GicdRegs {
    /// 0x0000 GICD_CTLR.
    pub ctlr: ReadPureWrite<GicdCtlr>,
    /// 0x0004 GICD_TYPER.
    pub typer: ReadPure<GicdTyper>,
    /// 0x0008 GICD_IIDR.
    pub iidr: ReadPure<u32>,
    /// 0x000c GICD_TYPER2 (GICv4.1).
    pub typer2: ReadPure<GicdTyper2>,
    _reserved0: [u32; 0x1c],
    /// 0x0080 `GICD_IGROUPR<n>`.
    pub igroupr: [ReadPureWrite<u32>; 32],
    /// 0x0100 `GICD_ISENABLER<n>`.
    pub isenabler: [ReadPureWrite<u32>; 32],
    /// 0x0180 `GICD_ICENABLER<n>`.
    pub icenabler: [ReadPureWrite<u32>; 32],
    /// 0x0200 `GICD_ISPENDR<n>`.
    pub ispendr: [ReadPureWrite<u32>; 32],
    /// 0x0280 `GICD_ICPENDR<n>`.
    pub icpendr: [ReadPureWrite<u32>; 32],
    /// 0x0300 `GICD_ISACTIVER<n>`.
    pub isactiver: [ReadPureWrite<u32>; 32],
    /// 0x0380 `GICD_ICACTIVER<n>`.
    pub icactiver: [ReadPureWrite<u32>; 32],
    /// 0x0400 `GICD_IPRIORITYR<n>`: one byte per interrupt.
    pub ipriorityr: [ReadPureWrite<u8>; 1020],
    _reserved1: [u32; 0x101],
    /// 0x0c00 `GICD_ICFGR<n>`.
    pub icfgr: [ReadPureWrite<u32>; 64],
    /// 0x0d00 `GICD_IGRPMODR<n>`.
    pub igrpmodr: [ReadPureWrite<u32>; 32],
    _reserved2: [u32; 0x14a0],
    /// 0x6000 `GICD_IROUTER<n>` (index n = INTID; SPIs start at 32).
    pub irouter: [ReadPureWrite<u64>; 1020],
    _reserved3: [u32; 0x2002],
    /// 0xffe8 GICD_PIDR2.
    pub pidr2: ReadPure<u32>,
    _reserved5: [u32; 5],
}

const _: () = {
    assert!(offset_of!(GicdRegs, typer) == 0x0004);
    assert!(offset_of!(GicdRegs, typer2) == 0x000c);
    assert!(offset_of!(GicdRegs, igroupr) == 0x0080);
    assert!(offset_of!(GicdRegs, isenabler) == 0x0100);
    assert!(offset_of!(GicdRegs, icenabler) == 0x0180);
    assert!(offset_of!(GicdRegs, ispendr) == 0x0200);
    assert!(offset_of!(GicdRegs, icpendr) == 0x0280);
    assert!(offset_of!(GicdRegs, isactiver) == 0x0300);
    assert!(offset_of!(GicdRegs, icactiver) == 0x0380);
    assert!(offset_of!(GicdRegs, ipriorityr) == 0x0400);
    assert!(offset_of!(GicdRegs, icfgr) == 0x0c00);
    assert!(offset_of!(GicdRegs, igrpmodr) == 0x0d00);
    assert!(offset_of!(GicdRegs, irouter) == 0x6000);
    assert!(offset_of!(GicdRegs, pidr2) == 0xffe8);
    assert!(size_of::<GicdRegs>() == 0x1_0000);
};

/// The ITS registers a driver uses, one method per access. Implemented for the MMIO block
/// and by the host model (crate `its-model`).
///
/// Reads take `&self`: none of these registers has read side effects.
pub trait ItsRegisters {
    /// GITS_CTLR.
    fn ctlr(&self) -> GitsCtlr;
    /// Writes GITS_CTLR.
    fn set_ctlr(&mut self, v: GitsCtlr);
    /// GITS_IIDR.
    fn iidr(&self) -> u32;
    /// GITS_MPIDR (GICv4.1: the affinity the ITS's SVPET is compared at; RES0 otherwise, so
    /// the default reads 0).
    fn mpidr(&self) -> u32 {
        0
    }
    /// GITS_TYPER.
    fn typer(&self) -> GitsTyper;
    /// GITS_CBASER.
    fn cbaser(&self) -> GitsCbaser;
    /// Writes GITS_CBASER.
    fn set_cbaser(&mut self, v: GitsCbaser);
    /// GITS_CWRITER.
    fn cwriter(&self) -> GitsCwriter;
    /// Writes GITS_CWRITER: the ITS starts reading commands up to the new offset.
    fn set_cwriter(&mut self, v: GitsCwriter);
    /// GITS_CREADR.
    fn creadr(&self) -> GitsCreadr;
    /// `GITS_BASER<n>`; 0 for `n` of 8 or more.
    fn baser(&self, n: usize) -> GitsBaser;
    /// Writes `GITS_BASER<n>`; ignored for `n` of 8 or more.
    fn set_baser(&mut self, n: usize, v: GitsBaser);
}

impl ItsRegisters for UniqueMmioPointer<'_, GitsRegs> {
    fn ctlr(&self) -> GitsCtlr {
        field_shared!(*self, ctlr).read()
    }
    fn set_ctlr(&mut self, v: GitsCtlr) {
        field!(*self, ctlr).write(v);
    }
    fn iidr(&self) -> u32 {
        field_shared!(*self, iidr).read()
    }
    fn mpidr(&self) -> u32 {
        field_shared!(*self, mpidr).read()
    }
    fn typer(&self) -> GitsTyper {
        field_shared!(*self, typer).read()
    }
    fn cbaser(&self) -> GitsCbaser {
        field_shared!(*self, cbaser).read()
    }
    fn set_cbaser(&mut self, v: GitsCbaser) {
        field!(*self, cbaser).write(v);
    }
    fn cwriter(&self) -> GitsCwriter {
        field_shared!(*self, cwriter).read()
    }
    fn set_cwriter(&mut self, v: GitsCwriter) {
        field!(*self, cwriter).write(v);
    }
    fn creadr(&self) -> GitsCreadr {
        field_shared!(*self, creadr).read()
    }
    fn baser(&self, n: usize) -> GitsBaser {
        field_shared!(*self, baser)
            .get(n)
            .map_or(GitsBaser::new(), |r| r.read())
    }
    fn set_baser(&mut self, n: usize, v: GitsBaser) {
        if let Some(mut r) = field!(*self, baser).get(n) {
            r.write(v);
        }
    }
}

/// The redistributor registers the drivers use (RD_base and VLPI_base frames).
///
/// GICR_VPROPBASER and GICR_VPENDBASER are passed as raw `u64`: their layout differs between
/// GICv4.0 and GICv4.1 ([`crate::regs::GicrVpendbaser`], [`crate::regs::GicrVpendbaserV41`]).
pub trait RedistRegisters {
    /// GICR_CTLR.
    fn ctlr(&self) -> GicrCtlr;
    /// Writes GICR_CTLR.
    fn set_ctlr(&mut self, v: GicrCtlr);
    /// GICR_TYPER.
    fn typer(&self) -> GicrTyper;
    /// GICR_WAKER.
    fn waker(&self) -> GicrWaker;
    /// Writes GICR_WAKER.
    fn set_waker(&mut self, v: GicrWaker);
    /// GICR_PROPBASER.
    fn propbaser(&self) -> GicrPropbaser;
    /// Writes GICR_PROPBASER.
    fn set_propbaser(&mut self, v: GicrPropbaser);
    /// GICR_PENDBASER.
    fn pendbaser(&self) -> GicrPendbaser;
    /// Writes GICR_PENDBASER.
    fn set_pendbaser(&mut self, v: GicrPendbaser);
    /// GICR_VPROPBASER (raw).
    fn vpropbaser(&self) -> u64;
    /// Writes GICR_VPROPBASER (raw, one 64-bit store).
    fn set_vpropbaser(&mut self, v: u64);
    /// GICR_VPENDBASER (raw).
    fn vpendbaser(&self) -> u64;
    /// Writes GICR_VPENDBASER (raw, one 64-bit store).
    fn set_vpendbaser(&mut self, v: u64);
    /// Writes GICR_INVLPIR (only when GICR_TYPER.DirectLPI or GICv4.1 says it exists).
    fn set_invlpir(&mut self, v: GicrInvlpir);
    /// Writes GICR_INVALLR (likewise).
    fn set_invallr(&mut self, v: GicrInvallr);
    /// Writes GICR_CLRLPIR: the physical LPI is no longer pending (only when
    /// GICR_TYPER.DirectLPI says it exists).
    fn set_clrlpir(&mut self, v: GicrLpir);
    /// GICR_SYNCR (likewise).
    fn syncr(&self) -> GicrSyncr;
}

impl RedistRegisters for UniqueMmioPointer<'_, GicrRegs> {
    fn ctlr(&self) -> GicrCtlr {
        let rd = field_shared!(*self, rd);
        field_shared!(rd, ctlr).read()
    }
    fn set_ctlr(&mut self, v: GicrCtlr) {
        let mut rd = field!(*self, rd);
        field!(rd, ctlr).write(v);
    }
    fn typer(&self) -> GicrTyper {
        let rd = field_shared!(*self, rd);
        field_shared!(rd, typer).read()
    }
    fn waker(&self) -> GicrWaker {
        let rd = field_shared!(*self, rd);
        field_shared!(rd, waker).read()
    }
    fn set_waker(&mut self, v: GicrWaker) {
        let mut rd = field!(*self, rd);
        field!(rd, waker).write(v);
    }
    fn propbaser(&self) -> GicrPropbaser {
        let rd = field_shared!(*self, rd);
        field_shared!(rd, propbaser).read()
    }
    fn set_propbaser(&mut self, v: GicrPropbaser) {
        let mut rd = field!(*self, rd);
        field!(rd, propbaser).write(v);
    }
    fn pendbaser(&self) -> GicrPendbaser {
        let rd = field_shared!(*self, rd);
        field_shared!(rd, pendbaser).read()
    }
    fn set_pendbaser(&mut self, v: GicrPendbaser) {
        let mut rd = field!(*self, rd);
        field!(rd, pendbaser).write(v);
    }
    fn vpropbaser(&self) -> u64 {
        let vlpi = field_shared!(*self, vlpi);
        field_shared!(vlpi, vpropbaser).read()
    }
    fn set_vpropbaser(&mut self, v: u64) {
        let mut vlpi = field!(*self, vlpi);
        field!(vlpi, vpropbaser).write(v);
    }
    fn vpendbaser(&self) -> u64 {
        let vlpi = field_shared!(*self, vlpi);
        field_shared!(vlpi, vpendbaser).read()
    }
    fn set_vpendbaser(&mut self, v: u64) {
        let mut vlpi = field!(*self, vlpi);
        field!(vlpi, vpendbaser).write(v);
    }
    fn set_invlpir(&mut self, v: GicrInvlpir) {
        let mut rd = field!(*self, rd);
        field!(rd, invlpir).write(v);
    }
    fn set_invallr(&mut self, v: GicrInvallr) {
        let mut rd = field!(*self, rd);
        field!(rd, invallr).write(v);
    }
    fn set_clrlpir(&mut self, v: GicrLpir) {
        let mut rd = field!(*self, rd);
        field!(rd, clrlpir).write(v);
    }
    fn syncr(&self) -> GicrSyncr {
        let rd = field_shared!(*self, rd);
        field_shared!(rd, syncr).read()
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::boxed::Box;

    /// The MMIO implementations touch the right offsets: run them over registers in RAM.
    #[test]
    fn its_registers_in_ram() {
        let mut regs: Box<GitsRegs> = zerocopy_box();
        {
            let mut its = UniqueMmioPointer::from(&mut *regs);
            its.set_cwriter(GitsCwriter::at(0x40));
            its.set_baser(3, GitsBaser::from(0x1234_5000));
            its.set_baser(8, GitsBaser::from(u64::MAX));
            assert_eq!(its.baser(8), GitsBaser::new());
            assert_eq!(its.cwriter().byte_offset(), 0x40);
        }
        let raw = as_u64s(&*regs);
        assert_eq!(raw[0x88 / 8], 0x40);
        assert_eq!(raw[(0x100 + 3 * 8) / 8], 0x1234_5000);
    }

    #[test]
    fn redist_registers_in_ram() {
        let mut regs: Box<GicrRegs> = zerocopy_box();
        {
            let mut rd = UniqueMmioPointer::from(&mut *regs);
            rd.set_vpendbaser(0x8000_0000_4001_0000);
            rd.set_propbaser(GicrPropbaser::from(0x4000_000f));
        }
        let raw = as_u64s(&*regs);
        assert_eq!(raw[(0x2_0000 + 0x78) / 8], 0x8000_0000_4001_0000);
        assert_eq!(raw[0x70 / 8], 0x4000_000f);
    }

    fn zerocopy_box<T>() -> Box<T> {
        let layout = core::alloc::Layout::new::<T>();
        // SAFETY: the layout is non-zero-sized.
        #[allow(unsafe_code, reason = "test helper allocating register blocks in RAM")]
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) }.cast::<T>();
        assert!(!p.is_null());
        // SAFETY: `p` is a fresh allocation of T's layout; the register blocks are plain
        // integers, for which all-zero is a valid value.
        #[allow(unsafe_code, reason = "test helper allocating register blocks in RAM")]
        unsafe {
            Box::from_raw(p)
        }
    }

    #[allow(
        unsafe_code,
        reason = "test helper reading register blocks as raw words"
    )]
    fn as_u64s<T>(r: &T) -> &[u64] {
        let p = (r as *const T).cast::<u64>();
        // SAFETY: the blocks are 8-byte aligned and a multiple of 8 bytes long, and every bit
        // pattern is a valid u64.
        unsafe { core::slice::from_raw_parts(p, size_of::<T>() / 8) }
    }
}
