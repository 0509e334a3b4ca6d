// SPDX-License-Identifier: MIT OR Apache-2.0
//! aarch64 system-register implementations of [`IchRegs`], [`HostCpuIf`], [`VtimerRegs`] and
//! [`HostTimer`].
//!
//! Every access is one `mrs` or `msr` with `options(nostack)`. None uses `nomem`: these
//! registers change GIC or timer state that memory-mapped GIC registers and the guest observe,
//! so the compiler must not move memory accesses across them.
//!
//! The types are zero-sized tokens. Creating one is `unsafe` because the registers exist only
//! at EL2 with system-register access to the GIC CPU interface enabled, and because whoever
//! holds the token controls which physical interrupts the guest can deactivate (HW = 1 list
//! registers) and how the host acknowledges its own interrupts.
#![allow(unsafe_code)]

use core::arch::asm;

use crate::hw::{HostCpuIf, HostTimer, IchRegs, VtimerRegs};
use crate::ids::{ApIndex, LrIndex};
use crate::regs::{
    CntCtl, IccCtlr, IchApr, IchEisr, IchElrsr, IchHcr, IchLr, IchMisr, IchVmcr, IchVtr,
};

/// Reads a system register by name.
macro_rules! mrs {
    ($reg:literal) => {{
        let value: u64;
        // SAFETY: the token's constructor's caller promised we run at EL2 with the register
        // accessible (see the `new` functions' `# Safety`). MRS writes only `value`.
        unsafe {
            asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nostack));
        }
        value
    }};
}

/// Writes a system register by name.
macro_rules! msr {
    ($reg:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: the token's constructor's caller promised we run at EL2 with the register
        // accessible (see the `new` functions' `# Safety`). The write changes GIC or timer
        // state only, never memory the compiler tracks; no `nomem`, so memory accesses are not
        // reordered across it.
        unsafe {
            asm!(concat!("msr ", $reg, ", {}"), in(reg) value, options(nostack));
        }
    }};
}

/// An instruction synchronization barrier.
fn isb() {
    // SAFETY: ISB has no operands and no effect on memory or registers.
    unsafe {
        asm!("isb", options(nostack));
    }
}

/// A full-system data synchronization barrier.
fn dsb_sy() {
    // SAFETY: DSB has no operands; it only orders memory accesses.
    unsafe {
        asm!("dsb sy", options(nostack));
    }
}

/// The ICH_*_EL2 registers of the current PE.
#[derive(Debug)]
pub struct IchSysRegs(());

impl IchSysRegs {
    /// A token for this PE's virtualization control registers.
    ///
    /// # Safety
    /// The caller runs at EL2 on a PE with a GICv3 CPU interface, ICC_SRE_EL2.SRE = 1, and it
    /// is the only code on this PE that accesses ICH_*_EL2 while the token lives.
    pub const unsafe fn new() -> Self {
        Self(())
    }
}

macro_rules! by_lr_index {
    ($n:expr, $mac:ident $(, $arg:expr)?) => {
        match $n.get() {
            0 => $mac!("ich_lr0_el2" $(, $arg)?),
            1 => $mac!("ich_lr1_el2" $(, $arg)?),
            2 => $mac!("ich_lr2_el2" $(, $arg)?),
            3 => $mac!("ich_lr3_el2" $(, $arg)?),
            4 => $mac!("ich_lr4_el2" $(, $arg)?),
            5 => $mac!("ich_lr5_el2" $(, $arg)?),
            6 => $mac!("ich_lr6_el2" $(, $arg)?),
            7 => $mac!("ich_lr7_el2" $(, $arg)?),
            8 => $mac!("ich_lr8_el2" $(, $arg)?),
            9 => $mac!("ich_lr9_el2" $(, $arg)?),
            10 => $mac!("ich_lr10_el2" $(, $arg)?),
            11 => $mac!("ich_lr11_el2" $(, $arg)?),
            12 => $mac!("ich_lr12_el2" $(, $arg)?),
            13 => $mac!("ich_lr13_el2" $(, $arg)?),
            14 => $mac!("ich_lr14_el2" $(, $arg)?),
            // LrIndex is below 16 by construction.
            _ => $mac!("ich_lr15_el2" $(, $arg)?),
        }
    };
}

macro_rules! by_ap_index {
    ($n:expr, $mac:ident, $r0:literal, $r1:literal, $r2:literal, $r3:literal $(, $arg:expr)?) => {
        match $n.get() {
            0 => $mac!($r0 $(, $arg)?),
            1 => $mac!($r1 $(, $arg)?),
            2 => $mac!($r2 $(, $arg)?),
            // ApIndex is below 4 by construction.
            _ => $mac!($r3 $(, $arg)?),
        }
    };
}

impl IchRegs for IchSysRegs {
    fn read_lr(&self, n: LrIndex) -> IchLr {
        IchLr::from_bits(by_lr_index!(n, mrs))
    }

    fn write_lr(&mut self, n: LrIndex, value: IchLr) {
        by_lr_index!(n, msr, value.into_bits())
    }

    fn hcr(&self) -> IchHcr {
        IchHcr::from_bits(mrs!("ich_hcr_el2"))
    }

    fn set_hcr(&mut self, value: IchHcr) {
        msr!("ich_hcr_el2", value.into_bits())
    }

    fn vmcr(&self) -> IchVmcr {
        IchVmcr::from_bits(mrs!("ich_vmcr_el2"))
    }

    fn set_vmcr(&mut self, value: IchVmcr) {
        msr!("ich_vmcr_el2", value.into_bits())
    }

    fn vtr(&self) -> IchVtr {
        IchVtr::from_bits(mrs!("ich_vtr_el2"))
    }

    fn elrsr(&self) -> IchElrsr {
        IchElrsr::from_bits(mrs!("ich_elrsr_el2"))
    }

    fn eisr(&self) -> IchEisr {
        IchEisr::from_bits(mrs!("ich_eisr_el2"))
    }

    fn misr(&self) -> IchMisr {
        IchMisr::from_bits(mrs!("ich_misr_el2"))
    }

    fn ap0r(&self, n: ApIndex) -> IchApr {
        IchApr::from_bits(by_ap_index!(
            n,
            mrs,
            "ich_ap0r0_el2",
            "ich_ap0r1_el2",
            "ich_ap0r2_el2",
            "ich_ap0r3_el2"
        ))
    }

    fn set_ap0r(&mut self, n: ApIndex, value: IchApr) {
        by_ap_index!(
            n,
            msr,
            "ich_ap0r0_el2",
            "ich_ap0r1_el2",
            "ich_ap0r2_el2",
            "ich_ap0r3_el2",
            value.into_bits()
        )
    }

    fn ap1r(&self, n: ApIndex) -> IchApr {
        IchApr::from_bits(by_ap_index!(
            n,
            mrs,
            "ich_ap1r0_el2",
            "ich_ap1r1_el2",
            "ich_ap1r2_el2",
            "ich_ap1r3_el2"
        ))
    }

    fn set_ap1r(&mut self, n: ApIndex, value: IchApr) {
        by_ap_index!(
            n,
            msr,
            "ich_ap1r0_el2",
            "ich_ap1r1_el2",
            "ich_ap1r2_el2",
            "ich_ap1r3_el2",
            value.into_bits()
        )
    }
}

/// The host's ICC_* Group 1 CPU interface registers.
///
/// # Why the barriers
/// A DSB follows the acknowledge so that it completes before the handler touches the device
/// that raised the interrupt. An ISB follows EOIR, DIR and CTLR writes so that the priority
/// drop, deactivation or mode change is in effect before the next instruction (Linux's GICv3
/// driver orders these the same way).
#[derive(Debug)]
pub struct IccSysRegs(());

impl IccSysRegs {
    /// A token for this PE's Group 1 physical CPU interface.
    ///
    /// # Safety
    /// The caller runs at EL1 or EL2 with ICC_SRE_ELx.SRE = 1, and it is the code that owns
    /// this PE's interrupt handling (acknowledging or deactivating an interrupt behind the
    /// owner's back loses it).
    pub const unsafe fn new() -> Self {
        Self(())
    }
}

impl HostCpuIf for IccSysRegs {
    fn ack(&mut self) -> u32 {
        let intid = mrs!("icc_iar1_el1");
        dsb_sy();
        // INTID is bits [23:0]; the upper bits are RES0.
        (intid & 0xFF_FFFF) as u32
    }

    fn eoi(&mut self, intid: u32) {
        msr!("icc_eoir1_el1", u64::from(intid));
        isb();
    }

    fn deactivate(&mut self, intid: u32) {
        msr!("icc_dir_el1", u64::from(intid));
        isb();
    }

    fn ctlr(&self) -> IccCtlr {
        IccCtlr::from_bits(mrs!("icc_ctlr_el1"))
    }

    fn set_ctlr(&mut self, value: IccCtlr) {
        msr!("icc_ctlr_el1", value.into_bits());
        isb();
    }
}

/// The EL1 virtual timer registers (CNTV_*_EL0, CNTVOFF_EL2) and the physical count, as seen
/// from EL2 with HCR_EL2.E2H = 0.
///
/// # Why an ISB after CNTV_CTL_EL0 writes
/// `vcpu_put` disables the timer and then clears the PPI's active state at the GIC. The ISB
/// makes the disable take effect first, so the timer output is already low when the active
/// state goes away.
#[derive(Debug)]
pub struct VtimerSysRegs(());

impl VtimerSysRegs {
    /// A token for this PE's EL1 virtual timer.
    ///
    /// # Safety
    /// The caller runs at EL2 with HCR_EL2.E2H = 0 (so CNTV_*_EL0 are the guest's timer) and
    /// it is the only code on this PE context-switching the virtual timer.
    pub const unsafe fn new() -> Self {
        Self(())
    }
}

impl VtimerRegs for VtimerSysRegs {
    fn cntv_ctl(&self) -> CntCtl {
        CntCtl::from_bits(mrs!("cntv_ctl_el0"))
    }

    fn set_cntv_ctl(&mut self, value: CntCtl) {
        msr!("cntv_ctl_el0", value.into_bits());
        isb();
    }

    fn cntv_cval(&self) -> u64 {
        mrs!("cntv_cval_el0")
    }

    fn set_cntv_cval(&mut self, value: u64) {
        msr!("cntv_cval_el0", value)
    }

    fn set_cntvoff(&mut self, value: u64) {
        msr!("cntvoff_el2", value)
    }

    fn cntpct(&self) -> u64 {
        // The ISB keeps the counter read from being performed early.
        isb();
        mrs!("cntpct_el0")
    }
}

/// The EL2 physical timer (CNTHP_CTL_EL2, CNTHP_CVAL_EL2) used as the host timer for blocked
/// vCPUs. Its PPI is [`crate::ids::PIntId::HYP_TIMER`] (26) on a BSA system.
#[derive(Debug)]
pub struct HypTimer(());

impl HypTimer {
    /// A token for this PE's EL2 physical timer.
    ///
    /// # Safety
    /// The caller runs at EL2 and no other code on this PE uses the EL2 physical timer.
    pub const unsafe fn new() -> Self {
        Self(())
    }
}

impl HostTimer for HypTimer {
    fn arm(&mut self, deadline: u64) {
        msr!("cnthp_cval_el2", deadline);
        msr!("cnthp_ctl_el2", CntCtl::new().with_enable(true).into_bits());
        isb();
    }

    fn disarm(&mut self) {
        msr!("cnthp_ctl_el2", CntCtl::new().into_bits());
        isb();
    }
}
