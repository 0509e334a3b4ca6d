// SPDX-License-Identifier: MIT OR Apache-2.0
//! Forwarding the EL1 virtual timer without saving and restoring it on every entry and exit.
//!
//! The guest programs CNTV_CTL_EL0 / CNTV_CVAL_EL0 directly. While its vCPU is loaded on a PE
//! the hardware timer is live, and the timer tells the hypervisor when it fires:
//!
//! 1. The virtual timer's physical PPI ([`PIntId::VTIMER`], 27 on a BSA system) fires while
//!    the guest runs: an IRQ exit.
//! 2. The host acknowledges it and drops its priority only (ICC_CTLR_EL1.EOImode = 1, see
//!    [`crate::regs::IccCtlr`]): the PPI stays active, so the still-asserted timer output
//!    cannot fire again. [`VtimerFwd::on_host_irq`] signals the forwarded vINTID.
//! 3. Populate lists it with HW = 1, pINTID = 27. The guest acknowledges it, quiets the timer
//!    and deactivates it; that deactivates the physical PPI too. No exit at EOI: one exit per
//!    timer interrupt.
//!
//! Timer state is saved and restored only when the vCPU leaves or joins the PE
//! ([`VtimerFwd::vcpu_put`], [`VtimerFwd::vcpu_load`]: switching vCPUs, migrating, blocking),
//! never on entry and exit.
//!
//! # Blocking in WFI
//! [`VtimerFwd::vcpu_block`] puts the timer and arms a host timer for the guest's deadline
//! (CVAL + CNTVOFF on the physical count). When it expires, [`VtimerFwd::on_host_timer`]
//! signals the forwarded interrupt without the PPI having fired, and
//! [`VtimerFwd::vcpu_unblock`] loads the timer: it marks the PPI active first, because the
//! active state is part of the timer context the guest now owns, and only then restores the
//! expired timer, whose output therefore cannot reach the host.
//!
//! # Invariant
//! While no vCPU's timer is loaded on a PE, that PE's virtual-timer PPI is inactive and the
//! timer is disabled. Load sets the PPI active exactly when the vCPU has the forwarded
//! interrupt pending or active; put clears it.
//!
//! # Software comparison flow
//! With [`FwdMode::EoiMaintenance`] the same flow lists the interrupt with HW = 0, EOI = 1:
//! the guest's deactivation raises a maintenance interrupt, an exit whose fold deactivates
//! the PPI. Two exits per timer interrupt instead of one.

use crate::error::FwdError;
use crate::hw::{HostTimer, PhysIrqState, VtimerRegs};
use crate::ids::{PIntId, VIntId};
use crate::regs::CntCtl;
use crate::vgic::{Forward, FwdMode, VgicCpu, VirqConfig};

/// Which interrupts the forwarded virtual timer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtimerConfig {
    /// The vINTID the guest sees (27 for a BSA guest).
    pub vintid: VIntId,
    /// The physical PPI of the EL1 virtual timer (27 on a BSA system).
    pub pintid: PIntId,
    /// The virtual priority.
    pub priority: u8,
    /// HW = 1 forwarding, or the EOI-maintenance software flow.
    pub mode: FwdMode,
    /// CNTVOFF_EL2 for this vCPU's VM.
    pub cntvoff: u64,
}

impl VtimerConfig {
    /// vINTID 27 forwarded from PPI 27 at priority 0xA0, CNTVOFF 0.
    pub const fn bsa(mode: FwdMode) -> Self {
        Self {
            vintid: VIntId::VTIMER,
            pintid: PIntId::VTIMER,
            priority: 0xA0,
            mode,
            cntvoff: 0,
        }
    }
}

/// Where the vCPU's timer context is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// In the hardware timer of the current PE.
    Loaded,
    /// Saved in [`VtimerFwd`]; the hardware timer is disabled.
    Put,
    /// Saved, with the vCPU blocked in WFI; `deadline` is the armed host timer's physical
    /// count, if any.
    Blocked {
        /// The armed host timer's deadline on the physical count.
        deadline: Option<u64>,
    },
}

/// What [`VtimerFwd::vcpu_block`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// The timer had already expired: the interrupt is signalled; do not wait, unblock.
    Expired,
    /// The host timer is armed for `deadline` (physical count).
    Armed {
        /// The physical count at which the host timer fires.
        deadline: u64,
    },
    /// The guest's timer is disabled or masked: wait for another wake-up.
    NoDeadline,
}

/// Counters of EL2 involvement in the timer flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerStats {
    /// Physical virtual-timer interrupts the host took while the vCPU was loaded.
    pub host_irqs: u64,
    /// Times the forwarded interrupt was signalled (any path).
    pub injections: u64,
    /// Host-timer expiries that woke a blocked vCPU.
    pub wakeups: u64,
    /// WFI blocks.
    pub blocks: u64,
    /// Timer context loads.
    pub loads: u64,
    /// Timer context puts.
    pub puts: u64,
}

/// One vCPU's forwarded virtual timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtimerFwd {
    cfg: VtimerConfig,
    ctl: CntCtl,
    cval: u64,
    phys_active_at_put: bool,
    residency: Residency,
    stats: TimerStats,
}

impl VtimerFwd {
    /// Forwards the timer: maps `cfg.vintid` to `cfg.pintid` (level-sensitive) in `vgic`.
    /// The timer starts put, disabled.
    ///
    /// # Errors
    /// As [`VgicCpu::map`].
    pub fn new<const N: usize>(vgic: &mut VgicCpu<N>, cfg: VtimerConfig) -> Result<Self, FwdError> {
        vgic.map(
            cfg.vintid,
            VirqConfig::level(cfg.priority),
            Forward {
                pintid: cfg.pintid,
                mode: cfg.mode,
            },
        )?;
        Ok(Self {
            cfg,
            ctl: CntCtl::new(),
            cval: 0,
            phys_active_at_put: false,
            residency: Residency::Put,
            stats: TimerStats::default(),
        })
    }

    /// The configuration.
    pub const fn config(&self) -> VtimerConfig {
        self.cfg
    }

    /// Where the timer context is.
    pub const fn residency(&self) -> Residency {
        self.residency
    }

    /// The counters.
    pub const fn stats(&self) -> TimerStats {
        self.stats
    }

    /// The saved CNTV_CTL_EL0 and CNTV_CVAL_EL0 (meaningful while put or blocked).
    pub const fn saved(&self) -> (CntCtl, u64) {
        (self.ctl, self.cval)
    }

    /// Whether the PPI was active when the context was last put.
    pub const fn phys_active_at_put(&self) -> bool {
        self.phys_active_at_put
    }

    /// Whether `intid` is this timer's physical PPI.
    pub const fn owns(&self, intid: u32) -> bool {
        intid == self.cfg.pintid.get()
    }

    /// Whether the saved timer condition is met at physical count `now`.
    fn expired(&self, now: u64) -> bool {
        self.ctl.can_fire() && now.wrapping_sub(self.cfg.cntvoff) >= self.cval
    }

    fn signal<const N: usize>(&mut self, vgic: &mut VgicCpu<N>) {
        if !vgic.needs_phys_active(self.cfg.vintid) && vgic.inject(self.cfg.vintid).is_ok() {
            self.stats.injections += 1;
        }
    }

    /// Loads the timer context onto this PE (vCPU scheduled in, or migrated here): CNTVOFF,
    /// the PPI's active state (active iff the forwarded interrupt is pending or active in
    /// `vgic`, after signalling it if the saved timer already expired), then CVAL and CTL.
    /// Does nothing if already loaded.
    pub fn vcpu_load<const N: usize>(
        &mut self,
        timer: &mut impl VtimerRegs,
        phys: &mut impl PhysIrqState,
        vgic: &mut VgicCpu<N>,
    ) {
        if self.residency == Residency::Loaded {
            return;
        }
        timer.set_cntvoff(self.cfg.cntvoff);
        if self.expired(timer.cntpct()) {
            self.signal(vgic);
        }
        if vgic.needs_phys_active(self.cfg.vintid) {
            phys.set_active(self.cfg.pintid, true);
        }
        timer.set_cntv_cval(self.cval);
        timer.set_cntv_ctl(self.ctl.with_istatus(false));
        self.residency = Residency::Loaded;
        self.stats.loads += 1;
    }

    /// Puts the timer context (vCPU scheduled out, migrating away, or blocking): saves CTL and
    /// CVAL, disables the hardware timer, then clears the PPI's active state (remembering it).
    /// Does nothing unless loaded.
    pub fn vcpu_put(&mut self, timer: &mut impl VtimerRegs, phys: &mut impl PhysIrqState) {
        if self.residency != Residency::Loaded {
            return;
        }
        self.ctl = timer.cntv_ctl().with_istatus(false);
        self.cval = timer.cntv_cval();
        timer.set_cntv_ctl(CntCtl::new());
        self.phys_active_at_put = phys.is_active(self.cfg.pintid);
        if self.phys_active_at_put {
            phys.set_active(self.cfg.pintid, false);
        }
        self.residency = Residency::Put;
        self.stats.puts += 1;
    }

    /// The host took the timer's physical PPI (acknowledged, priority dropped, still active)
    /// while the context was loaded: signals the forwarded vINTID. No timer register is
    /// touched.
    pub fn on_host_irq<const N: usize>(&mut self, vgic: &mut VgicCpu<N>) -> VIntId {
        self.stats.host_irqs += 1;
        self.signal(vgic);
        self.cfg.vintid
    }

    /// The guest executed WFI: puts the context and, if the guest's timer can fire, either
    /// signals it (already expired) or arms `host` for its deadline on the physical count.
    pub fn vcpu_block<const N: usize>(
        &mut self,
        timer: &mut impl VtimerRegs,
        phys: &mut impl PhysIrqState,
        host: &mut impl HostTimer,
        vgic: &mut VgicCpu<N>,
    ) -> BlockOutcome {
        self.vcpu_put(timer, phys);
        self.stats.blocks += 1;
        if !self.ctl.can_fire() {
            self.residency = Residency::Blocked { deadline: None };
            return BlockOutcome::NoDeadline;
        }
        if self.expired(timer.cntpct()) {
            self.signal(vgic);
            self.residency = Residency::Blocked { deadline: None };
            return BlockOutcome::Expired;
        }
        let deadline = self.cval.wrapping_add(self.cfg.cntvoff);
        host.arm(deadline);
        self.residency = Residency::Blocked {
            deadline: Some(deadline),
        };
        BlockOutcome::Armed { deadline }
    }

    /// The host timer armed by [`Self::vcpu_block`] expired: disarms it and signals the
    /// forwarded interrupt. Returns whether this vCPU was waiting for it; the caller then
    /// wakes the vCPU and calls [`Self::vcpu_unblock`], which marks the PPI active.
    pub fn on_host_timer<const N: usize>(
        &mut self,
        host: &mut impl HostTimer,
        vgic: &mut VgicCpu<N>,
    ) -> bool {
        host.disarm();
        if let Residency::Blocked { deadline: Some(_) } = self.residency {
            self.residency = Residency::Blocked { deadline: None };
            self.stats.wakeups += 1;
            self.signal(vgic);
            true
        } else {
            false
        }
    }

    /// The vCPU leaves WFI (woken by the host timer or anything else): disarms the host timer
    /// if still armed, then loads the context ([`Self::vcpu_load`]).
    pub fn vcpu_unblock<const N: usize>(
        &mut self,
        timer: &mut impl VtimerRegs,
        phys: &mut impl PhysIrqState,
        host: &mut impl HostTimer,
        vgic: &mut VgicCpu<N>,
    ) {
        if let Residency::Blocked { deadline } = self.residency {
            if deadline.is_some() {
                host.disarm();
            }
            self.residency = Residency::Put;
        }
        self.vcpu_load(timer, phys, vgic);
    }
}
