// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hyp side of the fwd-irq scenarios: a vCPU whose interrupts go through `fwd-irq`.
//!
//! [`FwdVcpu`] wraps [`Vcpu`] with the crate's per-vCPU state ([`VgicCpu`], [`VtimerFwd`])
//! and runs it the way the crate documents:
//!
//! ```text
//! boot, per PE:  pe_setup           ICC_CTLR_EL1.EOImode = 1; PPIs 25, 26, 27 enabled
//!                                   (HCR_EL2.IMO/FMO and TWI come from hyp::vcpu)
//! vCPU load:     FwdVcpu::load      EL1 context, VMCR/APRs, timer (+ PPI 27 active if owed)
//! every entry:   populate_lrs
//! every exit:    fold_lrs           first, before anything else
//! IRQ exit:      handle_acked_irq   hyp::exits already acknowledged and priority-dropped it
//! WFI exit:      has_pending -> re-enter; else vcpu_block -> wait for the EL2 timer (PPI 26)
//!                -> vcpu_unblock
//! vCPU put:      FwdVcpu::put       VMCR/APRs, timer (PPI 27 inactive), EL1 context
//! ```
//!
//! What the guest is asked to do and what is checked lives in `scenarios/fwd.rs`; what each
//! step cost is counted in [`FwdStats`] and in `hyp::exits`.

pub mod el1;

use core::time::Duration;

use common::hvc_abi::{HVC_FWD_STEP, fwd_step};
use common::platform::{MAX_CPUS, cpu_index};
use common::timer::{self, Deadline};
use fwd_irq::arch::aarch64::{HypTimer, IccSysRegs, IchSysRegs, VtimerSysRegs};
use fwd_irq::host_irq::{enable_split_eoi, handle_acked_irq, handle_host_irq};
use fwd_irq::hw::{HostCpuIf, IchRegs, PhysIrqState};
use fwd_irq::ids::LrIndex;
use fwd_irq::regs::{IchHcr, IchLr, LrState};
use fwd_irq::timer::BlockOutcome;
use fwd_irq::vgic::{FoldReport, LrPlan};
use fwd_irq::{FwdError, FwdMode, HostIrq, HostPpis, PIntId, VgicCpu, VtimerConfig, VtimerFwd};

use self::el1::El1Context;
use crate::gic_hw::{self, GicError};
use crate::vcpu::{Exit, Flow, Vcpu};

/// Virtual interrupts a vCPU of these scenarios can have configured.
pub const NR_VIRQS: usize = 32;
/// The virtual timer's PPI (and vINTID).
pub const VTIMER_PPI: u32 = 27;
/// How long a blocked vCPU waits for the host timer past its deadline.
const WAKE_TIMEOUT: Duration = Duration::from_millis(500);

/// This PE's ICH_*_EL2 registers.
pub fn ich() -> IchSysRegs {
    // SAFETY: the hyp runs at EL2 with ICC_SRE_EL2.SRE = 1 (gic_hw::GicHw::init_cpu), E2H = 0, and
    // while a fwd scenario runs it is the only code using the virtual CPU interface.
    unsafe { IchSysRegs::new() }
}

/// This PE's Group 1 physical CPU interface.
pub fn icc() -> IccSysRegs {
    // SAFETY: at EL2 with ICC_SRE_EL2.SRE = 1. The fwd scenarios own interrupt handling on this
    // PE while they run: hyp::exits acknowledges in the vector, these deactivate afterwards.
    unsafe { IccSysRegs::new() }
}

/// This PE's EL1 virtual timer, as EL2 context-switches it.
pub fn vtimer_regs() -> VtimerSysRegs {
    // SAFETY: at EL2 with HCR_EL2.E2H = 0; only the fwd scenarios touch CNTV_* and CNTVOFF_EL2
    // from EL2.
    unsafe { VtimerSysRegs::new() }
}

/// This PE's EL2 physical timer, the host timer of blocked vCPUs.
pub fn host_timer() -> HypTimer {
    // SAFETY: at EL2; nothing else in the hyp uses CNTHP_*_EL2.
    unsafe { HypTimer::new() }
}

/// Once per PE, before a vCPU is loaded on it: EOImode = 1 (priority drop and deactivation
/// split), and the maintenance (25), EL2 timer (26) and virtual timer (27) PPIs enabled.
pub fn pe_setup(cpu: usize) -> Result<(), GicError> {
    enable_split_eoi(&mut icc());
    for ppi in [25, 26, VTIMER_PPI] {
        gic_hw::get().enable_private_irq(cpu, ppi)?;
    }
    Ok(())
}

/// Undoes [`pe_setup`]'s EOImode and leaves the virtual interface and both timers off.
pub fn pe_teardown() {
    let mut icc = icc();
    let ctlr = icc.ctlr();
    icc.set_ctlr(ctlr.with_eoimode(false));
    let mut ich = ich();
    ich.set_hcr(IchHcr::new());
    for lr in LrIndex::first(ich.vtr().nr_lrs()) {
        ich.write_lr(lr, IchLr::new());
    }
    fwd_irq::hw::HostTimer::disarm(&mut host_timer());
}

/// What the run loop saw, beyond `hyp::exits`' counts by exception class.
#[derive(Clone, Copy, Debug)]
pub struct FwdStats {
    /// Physical virtual-timer PPIs taken at an IRQ exit, per CPU.
    pub vtimer_irqs: [u64; MAX_CPUS],
    /// Forwarded PPIs/SPIs (other than the timer) taken, by pINTID.
    pub forwarded: [u32; 1020],
    /// Maintenance interrupts taken.
    pub maintenance: u64,
    /// Host-timer PPIs taken while blocked that woke the vCPU.
    pub wakeups: u64,
    /// Host-timer wake-ups that came before the deadline they were armed for.
    pub early_wakeups: u64,
    /// Blocked vCPUs whose host timer never fired within [`WAKE_TIMEOUT`].
    pub wake_timeouts: u64,
    /// Spurious acknowledges (1023).
    pub spurious: u64,
    /// Interrupts nobody forwards (deactivated and counted).
    pub other: u64,
    /// The last such INTID.
    pub last_other: u32,
    /// WFI exits that found an interrupt pending (re-entered at once).
    pub wfi_pending: u64,
    /// `vcpu_block` outcomes.
    pub block_armed: u64,
    /// `vcpu_block` found the timer already expired.
    pub block_expired: u64,
    /// `vcpu_block` found no deadline (timer off or masked).
    pub block_no_deadline: u64,
    /// While blocked: PPI 27 still active or the hardware timer still enabled (must be 0).
    pub block_leaks: u64,
    /// After `vcpu_unblock`: PPI 27 active at the physical GIC (the timer context owns it).
    pub active_at_unblock: u64,
    /// List registers written pending with HW = 1, any pINTID.
    pub hw_pending_listed: u64,
    /// ... of them, with pINTID 27.
    pub hw_pending_vtimer: u64,
    /// List registers written with HW = 0 and EOI = 1.
    pub eoi_listed: u64,
    /// Populates that set ICH_HCR_EL2.UIE.
    pub uie: u64,
    /// Populates that set ICH_HCR_EL2.NPIE.
    pub npie: u64,
}

impl Default for FwdStats {
    fn default() -> Self {
        Self {
            vtimer_irqs: [0; MAX_CPUS],
            forwarded: [0; 1020],
            maintenance: 0,
            wakeups: 0,
            early_wakeups: 0,
            wake_timeouts: 0,
            spurious: 0,
            other: 0,
            last_other: gic_hw::SPURIOUS,
            wfi_pending: 0,
            block_armed: 0,
            block_expired: 0,
            block_no_deadline: 0,
            block_leaks: 0,
            active_at_unblock: 0,
            hw_pending_listed: 0,
            hw_pending_vtimer: 0,
            eoi_listed: 0,
            uie: 0,
            npie: 0,
        }
    }
}

impl FwdStats {
    fn note_plan(&mut self, plan: &LrPlan) {
        for lr in plan.lrs() {
            if lr.hw() && lr.state() == LrState::Pending {
                self.hw_pending_listed += 1;
                if lr.pintid() == Some(VTIMER_PPI as u16) {
                    self.hw_pending_vtimer += 1;
                }
            }
            if lr.eoi() {
                self.eoi_listed += 1;
            }
        }
        self.uie += u64::from(plan.hcr().uie());
        self.npie += u64::from(plan.hcr().npie());
    }

    /// All virtual-timer PPIs taken, all CPUs.
    pub fn vtimer_irqs_total(&self) -> u64 {
        self.vtimer_irqs.iter().sum()
    }

    /// Times pINTID `intid` was taken and forwarded.
    pub fn forwarded_of(&self, intid: u32) -> u32 {
        self.forwarded.get(intid as usize).copied().unwrap_or(0)
    }
}

/// A vCPU whose interrupts go through `fwd-irq`.
pub struct FwdVcpu {
    /// The guest's register state and run loop.
    pub vcpu: Vcpu,
    /// Its virtual interrupts and list-register bookkeeping.
    pub vgic: VgicCpu<NR_VIRQS>,
    /// Its forwarded virtual timer, if it has one.
    pub vtimer: Option<VtimerFwd>,
    /// What the run loop saw.
    pub stats: FwdStats,
    /// What the fold of the last exit found.
    pub last_fold: FoldReport,
    el1: Option<El1Context>,
    loaded_on: Option<usize>,
}

impl FwdVcpu {
    /// A vCPU running guest program `program`, sized from this PE's ICH_VTR_EL2, with the
    /// virtual timer forwarded in `timer` mode (or not at all). Not loaded yet.
    pub fn new(program: u64, timer: Option<FwdMode>) -> Result<Self, FwdError> {
        let mut vgic = VgicCpu::from_vtr(ich().vtr())?;
        let vtimer = match timer {
            Some(mode) => Some(VtimerFwd::new(&mut vgic, VtimerConfig::bsa(mode))?),
            None => None,
        };
        Ok(Self {
            vcpu: Vcpu::new(program),
            vgic,
            vtimer,
            stats: FwdStats::default(),
            last_fold: FoldReport::default(),
            el1: None,
            loaded_on: None,
        })
    }

    /// Loads the vCPU on the calling CPU: its EL1 context (if it ran elsewhere before), its
    /// CPU-interface state (and every list register marked for zeroing), then its timer, which
    /// sets PPI 27 active here if the forwarded interrupt is pending or active.
    pub fn load(&mut self) {
        let cpu = cpu_index();
        if let Some(ctx) = self.el1.take() {
            ctx.restore();
        }
        self.vgic.restore_cpuif(&mut ich());
        if let (Some(vt), Some(mut phys)) = (self.vtimer.as_mut(), gic_hw::get().irq_state(cpu)) {
            vt.vcpu_load(&mut vtimer_regs(), &mut phys, &mut self.vgic);
        }
        self.loaded_on = Some(cpu);
    }

    /// Puts the vCPU: saves its CPU-interface state, puts its timer (disabled, PPI 27 inactive
    /// on this CPU) and saves its EL1 context. Call after the fold of its last exit.
    pub fn put(&mut self) {
        let cpu = cpu_index();
        self.vgic.save_cpuif(&ich());
        if let (Some(vt), Some(mut phys)) = (self.vtimer.as_mut(), gic_hw::get().irq_state(cpu)) {
            vt.vcpu_put(&mut vtimer_regs(), &mut phys);
        }
        self.el1 = Some(El1Context::save());
        self.loaded_on = None;
    }

    /// Replaces the forwarded timer with one in `mode` (put, unmap, map, load if loaded).
    pub fn set_vtimer_mode(&mut self, mode: FwdMode) -> Result<(), FwdError> {
        let cpu = cpu_index();
        if let Some(mut vt) = self.vtimer.take() {
            if let Some(mut phys) = gic_hw::get().irq_state(cpu) {
                vt.vcpu_put(&mut vtimer_regs(), &mut phys);
            }
            self.vgic.remove(vt.config().vintid)?;
        }
        let mut vt = VtimerFwd::new(&mut self.vgic, VtimerConfig::bsa(mode))?;
        if self.loaded_on.is_some()
            && let Some(mut phys) = gic_hw::get().irq_state(cpu)
        {
            vt.vcpu_load(&mut vtimer_regs(), &mut phys, &mut self.vgic);
        }
        self.vtimer = Some(vt);
        Ok(())
    }

    /// Replaces the interrupt table (say, with fewer list registers), keeping the guest's
    /// CPU-interface state. Zeroes every implemented list register: a `VgicCpu` with fewer
    /// list registers than the PE has never looks at the others. Between exits only.
    pub fn replace_vgic(&mut self, mut vgic: VgicCpu<NR_VIRQS>) {
        let mut ich = ich();
        self.vgic.save_cpuif(&ich);
        vgic.set_cpuif(self.vgic.cpuif());
        for lr in LrIndex::first(ich.vtr().nr_lrs()) {
            ich.write_lr(lr, IchLr::new());
        }
        vgic.restore_cpuif(&mut ich);
        self.vgic = vgic;
    }

    /// One entry and exit: populate, run, fold.
    pub fn run_once(&mut self) -> Exit {
        let plan = self.vgic.populate_lrs(&mut ich());
        self.stats.note_plan(&plan);
        let exit = self.vcpu.run();
        let cpu = cpu_index();
        if let Some(mut phys) = gic_hw::get().irq_state(cpu) {
            self.last_fold = self.vgic.fold_lrs(&mut ich(), &mut phys);
        }
        exit
    }

    /// Runs the guest until `hook` or the default handling ([`Self::default_exit`]) says
    /// stop, at most [`MAX_EXITS`](crate::vcpu::MAX_EXITS) exits (see
    /// [`run_bounded`](crate::vcpu::run_bounded)). `hook` sees every exit first (after the
    /// fold) and returns `None` for the default.
    pub fn run_until(
        &mut self,
        mut hook: impl FnMut(&mut Self, &Exit) -> Option<Flow>,
    ) -> Result<u64, Exit> {
        crate::vcpu::run_bounded(
            self,
            |f| {
                let exit = f.run_once();
                match hook(f, &exit) {
                    Some(flow) => flow,
                    None => f.default_exit(&exit),
                }
            },
            |f| f.vcpu.regs.elr,
        )
    }

    /// The default handling of an exit: physical IRQs through `handle_acked_irq`, WFI through
    /// the block flow, `fwd_step::PHYS_GICR`, and `Vcpu::default_exit` for the rest.
    pub fn default_exit(&mut self, exit: &Exit) -> Flow {
        match *exit {
            Exit::Irq { intid } => {
                self.on_irq(intid);
                Flow::Continue
            }
            Exit::Wfx { .. } => {
                self.vcpu.regs.elr += 4;
                self.on_wfi();
                Flow::Continue
            }
            Exit::Hvc {
                nr: HVC_FWD_STEP,
                args: [fwd_step::PHYS_GICR, ..],
            } => {
                self.vcpu.regs.x[0] = gic_hw::get().sgi_frame_addr(cpu_index()).unwrap_or(0);
                Flow::Continue
            }
            _ => self.vcpu.default_exit(exit),
        }
    }

    fn count(&mut self, irq: HostIrq, cpu: usize) {
        match irq {
            HostIrq::Vtimer(_) => {
                if let Some(n) = self.stats.vtimer_irqs.get_mut(cpu) {
                    *n += 1;
                }
            }
            HostIrq::Forwarded { pintid, .. } => {
                if let Some(n) = self.stats.forwarded.get_mut(pintid.get() as usize) {
                    *n += 1;
                }
            }
            HostIrq::Maintenance => self.stats.maintenance += 1,
            HostIrq::HostTimer { woke } => self.stats.wakeups += u64::from(woke),
            HostIrq::Spurious => self.stats.spurious += 1,
            HostIrq::Other(intid) => {
                icc().deactivate(intid);
                self.stats.other += 1;
                self.stats.last_other = intid;
            }
        }
    }

    /// A physical IRQ exit: `hyp::exits` acknowledged the interrupt and dropped its priority
    /// (EOImode = 1 leaves it active); forward it, or deactivate it.
    fn on_irq(&mut self, intid: u32) {
        let irq = handle_acked_irq(
            &mut icc(),
            &mut self.vgic,
            self.vtimer.as_mut(),
            &mut host_timer(),
            HostPpis::BSA,
            intid,
        );
        self.count(irq, cpu_index());
    }

    /// A trapped WFI (ELR already past it): re-enter if something is pending; otherwise block
    /// the vCPU on its timer's deadline and wake it when the EL2 timer fires.
    fn on_wfi(&mut self) {
        if self.vgic.has_pending() {
            self.stats.wfi_pending += 1;
            return;
        }
        let cpu = cpu_index();
        let (Some(vt), Some(mut phys)) = (self.vtimer.as_mut(), gic_hw::get().irq_state(cpu))
        else {
            return;
        };
        let mut timer = vtimer_regs();
        let mut host = host_timer();
        match vt.vcpu_block(&mut timer, &mut phys, &mut host, &mut self.vgic) {
            BlockOutcome::Expired => self.stats.block_expired += 1,
            BlockOutcome::NoDeadline => self.stats.block_no_deadline += 1,
            BlockOutcome::Armed { deadline } => {
                self.stats.block_armed += 1;
                let ppi = PIntId::VTIMER;
                let hw_enabled = fwd_irq::hw::VtimerRegs::cntv_ctl(&timer).enable();
                if phys.is_active(ppi) || hw_enabled {
                    self.stats.block_leaks += 1;
                }
                // The PE would idle here; the hyp polls its CPU interface instead (bounded).
                let wait = Deadline::after(WAKE_TIMEOUT);
                loop {
                    if wait.expired() {
                        self.stats.wake_timeouts += 1;
                        break;
                    }
                    if gic_hw::hppir() == gic_hw::SPURIOUS {
                        core::hint::spin_loop();
                        continue;
                    }
                    let irq = handle_host_irq(
                        &mut icc(),
                        &mut self.vgic,
                        Some(&mut *vt),
                        &mut host,
                        HostPpis::BSA,
                    );
                    if irq == (HostIrq::HostTimer { woke: true }) {
                        self.stats.wakeups += 1;
                        if timer::ticks() < deadline {
                            self.stats.early_wakeups += 1;
                        }
                        break;
                    }
                    if let HostIrq::Other(intid) = irq {
                        icc().deactivate(intid);
                        self.stats.other += 1;
                        self.stats.last_other = intid;
                    }
                }
            }
        }
        vt.vcpu_unblock(&mut timer, &mut phys, &mut host, &mut self.vgic);
        if phys.is_active(PIntId::VTIMER) {
            self.stats.active_at_unblock += 1;
        }
    }

    /// Leaves this PE clean after the guest is done: timer put (off, PPI 27 inactive), virtual
    /// interface off, list registers zeroed, EOImode back to 0.
    pub fn finish(&mut self) {
        if self.loaded_on.is_some() {
            self.put();
        }
        pe_teardown();
    }
}
