// SPDX-License-Identifier: MIT OR Apache-2.0
//! The narrow hardware traits the algorithms run against.
//!
//! Each trait names only the registers a flow needs, so that a host fake can implement it in a
//! few lines and record every access:
//! - [`IchRegs`]: the GICv3 virtualization control registers (ICH_*_EL2) of this PE;
//! - [`PhysIrqState`]: pending/active state of a physical PPI or SPI at the physical GIC
//!   (`GICD_ISPENDR<n>`, `GICD_I[SC]ACTIVER<n>`, `GICR_ISPENDR0`, `GICR_I[SC]ACTIVER0`);
//! - [`HostCpuIf`]: the host's own CPU interface (ICC_IAR1_EL1, ICC_EOIR1_EL1, ICC_DIR_EL1,
//!   ICC_CTLR_EL1);
//! - [`VtimerRegs`]: the EL1 virtual timer registers a hypervisor context-switches
//!   (CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTVOFF_EL2) and the physical count (CNTPCT_EL0);
//! - [`HostTimer`]: a host timer the hypervisor arms for a blocked vCPU (CNTHP_*_EL2 on
//!   aarch64).
//!
//! The traits are not generic and have no associated types, so each implementation is
//! monomorphised once. The aarch64 implementations live in [`crate::arch`] (system registers)
//! and [`crate::mmio`] (physical GIC state); the host fakes in `fake` (feature `fakes`).

use crate::ids::{ApIndex, LrIndex, PIntId};
use crate::regs::{
    CntCtl, IccCtlr, IchApr, IchEisr, IchElrsr, IchHcr, IchLr, IchMisr, IchVmcr, IchVtr,
};

/// The GICv3 virtualization control registers of the current PE (ICH_*_EL2).
///
/// Indices are checked types, so no method can fail. An implementation must not be asked for
/// a list register at or beyond ICH_VTR_EL2.ListRegs + 1 (UNDEFINED on hardware);
/// [`crate::vgic::VgicCpu`] never does.
pub trait IchRegs {
    /// Reads `ICH_LR<n>_EL2`.
    fn read_lr(&self, n: LrIndex) -> IchLr;
    /// Writes `ICH_LR<n>_EL2`.
    fn write_lr(&mut self, n: LrIndex, value: IchLr);
    /// Reads ICH_HCR_EL2.
    fn hcr(&self) -> IchHcr;
    /// Writes ICH_HCR_EL2.
    fn set_hcr(&mut self, value: IchHcr);
    /// Reads ICH_VMCR_EL2.
    fn vmcr(&self) -> IchVmcr;
    /// Writes ICH_VMCR_EL2.
    fn set_vmcr(&mut self, value: IchVmcr);
    /// Reads ICH_VTR_EL2.
    fn vtr(&self) -> IchVtr;
    /// Reads ICH_ELRSR_EL2.
    fn elrsr(&self) -> IchElrsr;
    /// Reads ICH_EISR_EL2.
    fn eisr(&self) -> IchEisr;
    /// Reads ICH_MISR_EL2.
    fn misr(&self) -> IchMisr;
    /// Reads `ICH_AP0R<n>_EL2`.
    fn ap0r(&self, n: ApIndex) -> IchApr;
    /// Writes `ICH_AP0R<n>_EL2`.
    fn set_ap0r(&mut self, n: ApIndex, value: IchApr);
    /// Reads `ICH_AP1R<n>_EL2`.
    fn ap1r(&self, n: ApIndex) -> IchApr;
    /// Writes `ICH_AP1R<n>_EL2`.
    fn set_ap1r(&mut self, n: ApIndex, value: IchApr);
}

/// The state of one physical PPI or SPI at the physical GIC, as a hypervisor needs it to
/// forward the interrupt.
///
/// PPIs are per PE: an implementation answers for the PE it runs on (its redistributor).
pub trait PhysIrqState {
    /// Whether the interrupt is pending at the physical GIC (`GICD_ISPENDR<n>` / GICR_ISPENDR0).
    ///
    /// For a level-sensitive interrupt this is the sampled input line (unless software made
    /// it pending), which is what folding a mapped level interrupt needs.
    fn is_pending(&self, pintid: PIntId) -> bool;
    /// Whether the interrupt is active at the physical GIC (`GICD_ISACTIVER<n>` /
    /// GICR_ISACTIVER0).
    fn is_active(&self, pintid: PIntId) -> bool;
    /// Sets (`GICD_ISACTIVER<n>` / GICR_ISACTIVER0) or clears (`GICD_ICACTIVER<n>` /
    /// GICR_ICACTIVER0) the active state.
    fn set_active(&mut self, pintid: PIntId, active: bool);
}

/// The host's physical CPU interface for Group 1 interrupts.
pub trait HostCpuIf {
    /// Reads ICC_IAR1_EL1: acknowledges the highest-priority pending interrupt and returns its
    /// INTID, or 1023 ([`crate::ids::SPURIOUS`]) if none.
    fn ack(&mut self) -> u32;
    /// Writes ICC_EOIR1_EL1. With ICC_CTLR_EL1.EOImode = 1 this only drops the running
    /// priority; the interrupt stays active.
    fn eoi(&mut self, intid: u32);
    /// Writes ICC_DIR_EL1: deactivates the interrupt (EOImode = 1 only).
    fn deactivate(&mut self, intid: u32);
    /// Reads ICC_CTLR_EL1.
    fn ctlr(&self) -> IccCtlr;
    /// Writes ICC_CTLR_EL1.
    fn set_ctlr(&mut self, value: IccCtlr);
}

/// The EL1 virtual timer, as the hypervisor context-switches it, and the physical count.
pub trait VtimerRegs {
    /// Reads CNTV_CTL_EL0.
    fn cntv_ctl(&self) -> CntCtl;
    /// Writes CNTV_CTL_EL0.
    fn set_cntv_ctl(&mut self, value: CntCtl);
    /// Reads CNTV_CVAL_EL0 (compared against the virtual count, CNTPCT - CNTVOFF).
    fn cntv_cval(&self) -> u64;
    /// Writes CNTV_CVAL_EL0.
    fn set_cntv_cval(&mut self, value: u64);
    /// Writes CNTVOFF_EL2.
    fn set_cntvoff(&mut self, value: u64);
    /// Reads the physical count (CNTPCT_EL0).
    fn cntpct(&self) -> u64;
}

/// A host timer the hypervisor arms to wake a vCPU blocked in WFI at its timer deadline.
///
/// On aarch64 this is the EL2 physical timer (CNTHP_CTL_EL2 / CNTHP_CVAL_EL2), whose PPI
/// ([`PIntId::HYP_TIMER`], 26 on a BSA system) the host must enable.
pub trait HostTimer {
    /// Fires the host timer when the physical count reaches `deadline`.
    fn arm(&mut self, deadline: u64);
    /// Stops the host timer (and drops its interrupt line).
    fn disarm(&mut self);
}
