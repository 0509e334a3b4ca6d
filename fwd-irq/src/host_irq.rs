// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hypervisor's physical-IRQ path: acknowledge, priority drop, and hand forwarded
//! interrupts to the vCPU while they stay active.
//!
//! With ICC_CTLR_EL1.EOImode = 1 ([`enable_split_eoi`]) the host splits each interrupt's end
//! into a priority drop (ICC_EOIR1_EL1) and a deactivation (ICC_DIR_EL1). A forwarded
//! interrupt gets only the drop: it stays active at the physical GIC until the guest
//! deactivates it (HW = 1) or fold does ([`crate::vgic::FwdMode::EoiMaintenance`]).
//! Everything else is deactivated here or by the caller.

use crate::hw::{HostCpuIf, HostTimer};
use crate::ids::{MAX_SPI, PIntId, SPURIOUS, VIntId};
use crate::timer::VtimerFwd;
use crate::vgic::VgicCpu;

/// Sets ICC_CTLR_EL1.EOImode = 1 (priority drop and deactivation split), keeping the other
/// writable bits. A precondition of every flow in this crate; call it once per PE at boot.
pub fn enable_split_eoi(icc: &mut impl HostCpuIf) {
    let ctlr = icc.ctlr();
    if !ctlr.eoimode() {
        icc.set_ctlr(ctlr.with_eoimode(true));
    }
}

/// The PPIs the host itself uses in these flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPpis {
    /// The virtual CPU interface maintenance interrupt.
    pub maintenance: PIntId,
    /// The host timer armed for blocked vCPUs (the EL2 physical timer).
    pub host_timer: PIntId,
}

impl HostPpis {
    /// PPI 25 (maintenance) and 26 (EL2 physical timer), as on QEMU `virt` and any BSA
    /// system.
    pub const BSA: Self = Self {
        maintenance: PIntId::MAINTENANCE,
        host_timer: PIntId::HYP_TIMER,
    };
}

/// What [`handle_host_irq`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostIrq {
    /// Nothing was pending (1023), e.g. a level interrupt that fold already deasserted.
    Spurious,
    /// The virtual timer's PPI: signalled to the vCPU, left active.
    Vtimer(VIntId),
    /// A forwarded PPI or SPI: signalled to the vCPU, left active.
    Forwarded {
        /// The physical interrupt.
        pintid: PIntId,
        /// The vINTID it was signalled as.
        vintid: VIntId,
    },
    /// The maintenance interrupt: deactivated; fold did the work.
    Maintenance,
    /// The host timer of a blocked vCPU: deactivated; `woke` says whether the vCPU's timer
    /// was signalled (then call [`VtimerFwd::vcpu_unblock`]).
    HostTimer {
        /// Whether the blocked vCPU's timer interrupt was signalled.
        woke: bool,
    },
    /// Any other interrupt: acknowledged and priority-dropped but still active. The caller
    /// handles it and then deactivates it with [`HostCpuIf::deactivate`].
    Other(u32),
}

/// Handles one physical IRQ taken at EL2 (after [`VgicCpu::fold_lrs`] on a guest exit).
///
/// Acknowledges the interrupt, drops its priority, and then: forwards the vtimer PPI through
/// `vtimer`, forwards any PPI/SPI mapped in `vgic`, deactivates the maintenance and host-timer
/// PPIs (waking a blocked vtimer), and returns anything else to the caller still active.
pub fn handle_host_irq<const N: usize>(
    icc: &mut impl HostCpuIf,
    vgic: &mut VgicCpu<N>,
    vtimer: Option<&mut VtimerFwd>,
    host_timer: &mut impl HostTimer,
    ppis: HostPpis,
) -> HostIrq {
    let intid = icc.ack();
    if is_special(intid) {
        // 1020..=1023 are special INTIDs: nothing was acknowledged, nothing to end.
        return HostIrq::Spurious;
    }
    icc.eoi(intid);
    handle_acked_irq(icc, vgic, vtimer, host_timer, ppis, intid)
}

/// The second half of [`handle_host_irq`], for a hypervisor whose exception vector already
/// acknowledged the interrupt (ICC_IAR1_EL1) and dropped its priority (ICC_EOIR1_EL1 with
/// EOImode = 1), say to count or trace it before the run loop sees the exit.
///
/// `intid` is what the acknowledge returned. A special INTID (1020..=1023) is
/// [`HostIrq::Spurious`] and touches nothing; otherwise the interrupt is forwarded, deactivated
/// or handed back exactly as [`handle_host_irq`] does, and `icc` is used only for
/// deactivations (ICC_DIR_EL1).
pub fn handle_acked_irq<const N: usize>(
    icc: &mut impl HostCpuIf,
    vgic: &mut VgicCpu<N>,
    vtimer: Option<&mut VtimerFwd>,
    host_timer: &mut impl HostTimer,
    ppis: HostPpis,
    intid: u32,
) -> HostIrq {
    if is_special(intid) {
        return HostIrq::Spurious;
    }
    if let Some(vt) = vtimer {
        if vt.owns(intid) {
            return HostIrq::Vtimer(vt.on_host_irq(vgic));
        }
        if intid == ppis.host_timer.get() {
            let woke = vt.on_host_timer(host_timer, vgic);
            icc.deactivate(intid);
            return HostIrq::HostTimer { woke };
        }
    }
    if intid == ppis.maintenance.get() {
        icc.deactivate(intid);
        return HostIrq::Maintenance;
    }
    if let Ok(pintid) = PIntId::new(intid)
        && let Ok(vintid) = vgic.on_phys_irq(pintid)
    {
        return HostIrq::Forwarded { pintid, vintid };
    }
    crate::logging::trace!("fwd-irq: host IRQ {} is not forwarded: the host's", intid);
    HostIrq::Other(intid)
}

/// INTIDs 1020..=1023: an acknowledge that acknowledged nothing.
const fn is_special(intid: u32) -> bool {
    intid > MAX_SPI && intid <= SPURIOUS
}
