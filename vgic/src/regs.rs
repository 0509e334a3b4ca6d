// SPDX-License-Identifier: MIT OR Apache-2.0
//! Register offsets and field values of the emulated distributor and redistributors.
//!
//! Offsets and fields follow Arm IHI 0069, "The GIC Distributor register map", "The GIC
//! Redistributor register map" and the register descriptions they point to (GICD_CTLR with
//! GICD_CTLR.DS = 1, GICD_TYPER, GICD_IROUTER, GICR_CTLR, GICR_TYPER, GICR_WAKER,
//! GICR_PROPBASER, GICR_PENDBASER, GICD_PIDR2 / GICR_PIDR2).

/// Distributor register offsets.
pub mod gicd {
    /// GICD_CTLR.
    pub const CTLR: u32 = 0x0000;
    /// GICD_TYPER.
    pub const TYPER: u32 = 0x0004;
    /// GICD_IIDR.
    pub const IIDR: u32 = 0x0008;
    /// GICD_TYPER2 (GICv3.1; not implemented).
    pub const TYPER2: u32 = 0x000C;
    /// GICD_STATUSR (optional; not implemented).
    pub const STATUSR: u32 = 0x0010;
    /// `GICD_IGROUPR<n>`.
    pub const IGROUPR: u32 = 0x0080;
    /// `GICD_ISENABLER<n>`.
    pub const ISENABLER: u32 = 0x0100;
    /// `GICD_ICENABLER<n>`.
    pub const ICENABLER: u32 = 0x0180;
    /// `GICD_ISPENDR<n>`.
    pub const ISPENDR: u32 = 0x0200;
    /// `GICD_ICPENDR<n>`.
    pub const ICPENDR: u32 = 0x0280;
    /// `GICD_ISACTIVER<n>`.
    pub const ISACTIVER: u32 = 0x0300;
    /// `GICD_ICACTIVER<n>`.
    pub const ICACTIVER: u32 = 0x0380;
    /// `GICD_IPRIORITYR<n>`.
    pub const IPRIORITYR: u32 = 0x0400;
    /// `GICD_ITARGETSR<n>` (RES0 with affinity routing).
    pub const ITARGETSR: u32 = 0x0800;
    /// `GICD_ICFGR<n>`.
    pub const ICFGR: u32 = 0x0C00;
    /// `GICD_IGRPMODR<n>` (RES0 with one Security state).
    pub const IGRPMODR: u32 = 0x0D00;
    /// `GICD_NSACR<n>` (RES0 with one Security state).
    pub const NSACR: u32 = 0x0E00;
    /// GICD_SGIR (RES0 with affinity routing).
    pub const SGIR: u32 = 0x0F00;
    /// `GICD_CPENDSGIR<n>` (RES0 with affinity routing).
    pub const CPENDSGIR: u32 = 0x0F10;
    /// `GICD_SPENDSGIR<n>` (RES0 with affinity routing).
    pub const SPENDSGIR: u32 = 0x0F20;
    /// `GICD_IROUTER<n>`, at `IROUTER + 8 * n` for n = 32..=1019.
    pub const IROUTER: u32 = 0x6000;
    /// GICD_PIDR2.
    pub const PIDR2: u32 = 0xFFE8;
}

/// Redistributor register offsets: RD_base frame.
pub mod gicr {
    /// GICR_CTLR.
    pub const CTLR: u32 = 0x0000;
    /// GICR_IIDR.
    pub const IIDR: u32 = 0x0004;
    /// GICR_TYPER (64-bit).
    pub const TYPER: u32 = 0x0008;
    /// GICR_WAKER.
    pub const WAKER: u32 = 0x0014;
    /// GICR_PROPBASER (64-bit).
    pub const PROPBASER: u32 = 0x0070;
    /// GICR_PENDBASER (64-bit).
    pub const PENDBASER: u32 = 0x0078;
    /// GICR_SYNCR (not implemented: no direct LPI registers).
    pub const SYNCR: u32 = 0x00C0;
    /// GICR_PIDR2.
    pub const PIDR2: u32 = 0xFFE8;
}

/// Redistributor register offsets: SGI_base frame.
pub mod sgi_base {
    /// GICR_IGROUPR0.
    pub const IGROUPR0: u32 = 0x0080;
    /// GICR_ISENABLER0.
    pub const ISENABLER0: u32 = 0x0100;
    /// GICR_ICENABLER0.
    pub const ICENABLER0: u32 = 0x0180;
    /// GICR_ISPENDR0.
    pub const ISPENDR0: u32 = 0x0200;
    /// GICR_ICPENDR0.
    pub const ICPENDR0: u32 = 0x0280;
    /// GICR_ISACTIVER0.
    pub const ISACTIVER0: u32 = 0x0300;
    /// GICR_ICACTIVER0.
    pub const ICACTIVER0: u32 = 0x0380;
    /// `GICR_IPRIORITYR<n>`, n = 0..=7.
    pub const IPRIORITYR: u32 = 0x0400;
    /// GICR_ICFGR0 (SGIs: read-only, edge).
    pub const ICFGR0: u32 = 0x0C00;
    /// GICR_ICFGR1 (PPIs).
    pub const ICFGR1: u32 = 0x0C04;
    /// GICR_IGRPMODR0 (RES0 with one Security state).
    pub const IGRPMODR0: u32 = 0x0D00;
    /// GICR_NSACR (RES0 with one Security state).
    pub const NSACR: u32 = 0x0E00;
}

/// GICD_CTLR.EnableGrp0.
pub const CTLR_ENABLE_GRP0: u32 = 1 << 0;
/// GICD_CTLR.EnableGrp1 (with DS = 1).
pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;
/// GICD_CTLR.ARE (RAO/WI: affinity routing always enabled).
pub const CTLR_ARE: u32 = 1 << 4;
/// GICD_CTLR.DS (RAO/WI: one Security state).
pub const CTLR_DS: u32 = 1 << 6;

/// GICD_TYPER.LPIS.
pub const TYPER_LPIS: u32 = 1 << 17;
/// GICD_TYPER.A3V: Aff3 values other than 0 are supported.
pub const TYPER_A3V: u32 = 1 << 24;
/// GICD_TYPER.No1N: 1 of N SPI distribution is not supported.
pub const TYPER_NO1N: u32 = 1 << 25;
/// GICD_TYPER.RSS: targeted SGIs reach Aff0 values 0-255 (ICC_SGI1R_EL1.RS honoured).
pub const TYPER_RSS: u32 = 1 << 26;

/// The implemented bits of `GICD_IROUTER<n>`: Aff3 \[39:32\], Aff2, Aff1, Aff0 \[23:0\];
/// Interrupt_Routing_Mode (bit 31) is RAZ/WI because GICD_TYPER.No1N = 1.
pub const IROUTER_MASK: u64 = 0xFF_00FF_FFFF;

/// GICR_CTLR.EnableLPIs.
pub const GICR_CTLR_ENABLE_LPIS: u32 = 1 << 0;
/// GICR_CTLR.CES: EnableLPIs can be cleared once set.
pub const GICR_CTLR_CES: u32 = 1 << 1;

/// GICR_TYPER.PLPIS.
pub const GICR_TYPER_PLPIS: u64 = 1 << 0;
/// GICR_TYPER.Last.
pub const GICR_TYPER_LAST: u64 = 1 << 4;

/// GICR_WAKER.ProcessorSleep.
pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// GICR_WAKER.ChildrenAsleep.
pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

/// GICR_PROPBASER fields kept: OuterCache \[58:56\], Physical_Address \[51:12\],
/// Shareability \[11:10\], InnerCache \[9:7\], IDbits \[4:0\].
pub const PROPBASER_MASK: u64 =
    (0b111 << 56) | (((1 << 40) - 1) << 12) | (0b1_1111 << 7) | 0b1_1111;
/// GICR_PENDBASER fields kept: OuterCache \[58:56\], Physical_Address \[51:16\],
/// Shareability \[11:10\], InnerCache \[9:7\].
pub const PENDBASER_MASK: u64 = (0b111 << 56) | (((1 << 36) - 1) << 16) | (0b1_1111 << 7);
/// GICR_PENDBASER.PTZ (write-only, reads as 0).
pub const PENDBASER_PTZ: u64 = 1 << 62;

/// PIDR2 of the distributor and redistributors: ArchRev \[7:4\] = 3 (GICv3).
pub const PIDR2_GICV3: u32 = 0x3 << 4;

/// GICD_ICFGR / GICR_ICFGR0 value for 16 edge-triggered interrupts.
pub const ICFGR_ALL_EDGE: u32 = 0xAAAA_AAAA;
