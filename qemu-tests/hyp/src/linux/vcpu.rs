// SPDX-License-Identifier: MIT OR Apache-2.0
//! One vCPU of the Linux guest and its run loop, on the CPU that runs it.
//!
//! A [`LinuxVcpu`] puts together what the crates provide for one vCPU:
//!
//! - `hyp::vcpu::Vcpu`: the guest's registers, and `run()`, which enters EL1 and returns at
//!   the next exit;
//! - `fwd_irq::VgicCpu`: this vCPU's virtual interrupts and list registers;
//! - `fwd_irq::VtimerFwd`: the EL1 virtual timer, forwarded with the HW bit (the guest's
//!   deactivation of vINTID 27 deactivates PPI 27: no exit at EOI);
//! - its place in the VM's `vgic::Vgic` (attached once, on its first CPU);
//! - with the guest's ITS over GICv4 ([`super::its`]): its vPE (vPE `i` of the VM for vCPU
//!   `i`) and the `doorbell::Waiter` that sleeps on the vPE's doorbell.
//!
//! The loop, per entry (`fwd-irq`, `vgic` and `vpe-sched` give the order):
//!
//! ```text
//! kicked, or the Vgic has work for us  ->  lock; Vgic::sync until done; apply its effects
//! vPE not resident here                ->  GicV4::make_resident (VMOVP if it moved) + commit
//! VgicCpu::populate_lrs                ->  list registers for what is pending
//! Vcpu::run                            ->  the guest runs until an exit
//! VgicCpu::fold_lrs                    ->  what the guest did with the list registers
//! handle the exit:
//!   IRQ        kick SGI: deactivate (the sync above does the work)
//!              a doorbell: Doorbells::handle (lock-free; wakes the vPE's waiter)
//!              a host LPI of a guest event (software injection): list its vINTID
//!              else fwd_irq::handle_acked_irq: the timer, forwarded SPIs, maintenance;
//!              an SPI forwarded to another vCPU: Vgic::phys_irq
//!   data abort vgic::trap::DataAbort::decode; in GICD/GICR: Vgic::emulate; in the ITS
//!              control frame: Vits::read / write; the phase marker; anything else: inject
//!              an external abort
//!   MSR trap   ICC_SGI*R_EL1: Vgic::sgi (kicks the targets); anything else: UNDEFINED
//!   WFI        (trapped only with Options::trap_wfi) block at EL2, see below
//!   SMC        PSCI (`linux::psci`): answer, start a vCPU, stop this one, stop the VM
//!   HVC        NOT_SUPPORTED in x0
//! ```
//!
//! # Blocking in WFI
//! With HCR_EL2.TWI the guest's WFI traps when nothing is pending for it. If nothing is
//! pending for the vCPU in software either (its `VgicCpu`, a kick), it blocks: with GICv4
//! its waiter is armed and its vPE made non-resident with the doorbell enabled
//! (`make_non_resident(.., true)`; PendingLast: a vLPI is already pending, re-enter at once).
//! The CPU then sleeps in WFI at EL2 (IRQs masked) until an interrupt is pending at its CPU
//! interface: a doorbell (the vPE is woken: `GicV4::doorbell_rang`), a host LPI of a guest
//! event, the virtual timer, a forwarded SPI or a kick, each handled as at an IRQ exit, or
//! the EL2 timer armed as a watchdog ([`BLOCK_LIMIT`]: the guest then simply executes its WFI
//! again). The vPE becomes resident again at the next entry.
//!
//! The VM-wide state (the `Vgic`, the guest's ITS, PSCI, kicks, the stop flag) is
//! [`Vm`](super::Vm), shared by every CPU under its locks; everything in a `LinuxVcpu`
//! belongs to the CPU that runs it, and moves with it ([`super::migrate`]).

#![allow(
    clippy::result_large_err,
    reason = "the driver errors carry the last ITS commands by value: no allocation"
)]

use alloc::format;
use core::time::Duration;

use common::platform::cpu_index;
use doorbell::Waiter;
use fwd_irq::host_irq::handle_acked_irq;
use fwd_irq::hw::{HostCpuIf, HostTimer};
use fwd_irq::{FwdMode, HostIrq, HostPpis, PIntId, VgicCpu, VtimerConfig, VtimerFwd};
use vgic::trap::{DataAbort, Direction, SysRegAccess};
use vgic::{Effect, Effects, Frame as GicFrame, SgiRegister, VcpuId};
use vits::LpiConfigTable;
use vpe_sched::Descheduled;

use super::its::{Host, VINTID_BITS};
use super::layout::PHASE_MARKER;
use super::migrate::El1State;
use super::psci::Action;
use super::stats::ExitStats;
use super::{
    FORWARDED_SPIS, ITS_CONTROL_SIZE, KICK_SGI, LinuxError, Refused, Stop, Vm, el2, inject,
};
use crate::fwd::{host_timer, icc, ich, vtimer_regs};
use crate::gic_hw;
use crate::vcpu::{Exit, Vcpu};

/// Virtual interrupts one vCPU can hold: its 32 SGIs and PPIs plus every SPI of the VM.
pub const NR_VIRQS: usize = 32 + super::SPIS;
/// The longest a blocked vCPU sleeps before it is re-entered anyway.
pub const BLOCK_LIMIT: Duration = Duration::from_millis(50);

/// ESR_EL2.EC values the loop handles itself (the rest come as `Exit` variants).
const EC_SMC64: u64 = 0x17;
const EC_SYSREG: u64 = 0x18;
/// HCR_EL2.TWI: WFI traps.
const HCR_TWI: u64 = 1 << 13;
/// The first LPI INTID.
const LPI_BASE: u32 = 8192;

/// Why a vCPU stopped running.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum End {
    /// PSCI CPU_OFF: it waits for a CPU_ON.
    CpuOff,
    /// The VM stopped (SYSTEM_OFF, SYSTEM_RESET, or a failure).
    VmStopped,
    /// It is to trade CPUs with another vCPU ([`super::migrate`]); it was put for the move.
    Swap,
}

/// What to do after an exit.
enum Next {
    Resume,
    End(End),
}

/// Where an interrupt was taken.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Taken {
    /// At an IRQ exit.
    Exit,
    /// While the vCPU was blocked at EL2 (no exit).
    Blocked,
}

/// One vCPU, on the CPU that runs it.
pub struct LinuxVcpu {
    index: usize,
    id: VcpuId,
    vcpu: Vcpu,
    gic: VgicCpu<NR_VIRQS>,
    vtimer: VtimerFwd,
    timer_loaded: bool,
    fx: Effects,
    /// This vCPU's exits by cause.
    pub stats: ExitStats,
    /// Sleeps on the vPE's doorbell (GICv4 only).
    waiter: Waiter,
    /// Its vPE is resident on this CPU's redistributor.
    resident: bool,
    /// The last phase it recorded its counts for.
    seen_phase: u32,
    /// A redistributor's GICR_CTLR.EnableLPIs changed: the guest's ITS must learn the table.
    lpi_change: Option<VcpuId>,
    /// Its EL1 state, saved on the CPU it left (between put and load for a swap).
    el1: Option<El1State>,
}

// SAFETY: a `LinuxVcpu` is used by one CPU at a time: the one that runs it, or, between the
// put and the load of a swap, nobody (it sits in a slot under a lock). Its `Vcpu` holds the
// host context of the last `run` on this CPU's stack, meaningful only during that `run`, which
// has returned before the vCPU can move.
unsafe impl Send for LinuxVcpu {}

impl LinuxVcpu {
    /// vCPU `index`, made on CPU `index`: its interrupt table sized from this CPU's
    /// ICH_VTR_EL2, the virtual timer forwarded (HW), attached to the VM's `Vgic`, its
    /// waiter attached to its vPE's doorbell (GICv4). Call on CPU `index`, after the VM
    /// declared its forwarded SPIs.
    pub fn new(vm: &Vm, index: usize) -> Result<Self, LinuxError> {
        let mut gic = VgicCpu::<NR_VIRQS>::from_vtr(fwd_irq::hw::IchRegs::vtr(&ich()))
            .map_err(LinuxError::Fwd)?;
        let vtimer =
            VtimerFwd::new(&mut gic, VtimerConfig::bsa(FwdMode::Hw)).map_err(LinuxError::Fwd)?;
        let id = VcpuId::new(index as u8);
        let mut v = Self {
            index,
            id,
            vcpu: Vcpu::at(0, 0),
            gic,
            vtimer,
            timer_loaded: false,
            fx: Effects::new(),
            stats: ExitStats::default(),
            waiter: Waiter::new(),
            resident: false,
            seen_phase: 0,
            lpi_change: None,
            el1: None,
        };
        if let Host::Direct(h) = vm.host {
            let db =
                h.vm.vpe(index)
                    .map_err(|e| LinuxError::Its(format!("vPE {index}: {e}")))?
                    .doorbell();
            h.dbs
                .attach(&v.waiter, db)
                .map_err(|e| LinuxError::Its(format!("waiter of vPE {index}: {e}")))?;
        }
        let mut vgic = vm.vgic.lock();
        vgic.attach(id, &mut v.gic, &mut v.fx)
            .map_err(LinuxError::Vgic)?;
        v.apply_effects(vm);
        Ok(v)
    }

    /// The vCPU's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Runs the vCPU from `entry` with `context` in x0 (a fresh register state, MMU off) until
    /// it powers itself off, the VM stops, or it is to move.
    pub fn run_from(&mut self, vm: &Vm, entry: u64, context: u64) -> End {
        self.vcpu = Vcpu::at(entry, context);
        self.vcpu.hcr = el2::HCR_EL2_LINUX | if vm.opts().trap_wfi { HCR_TWI } else { 0 };
        self.load_timer();
        self.run(vm)
    }

    fn load_timer(&mut self) {
        if !self.timer_loaded
            && let Some(mut phys) = gic_hw::get().irq_state(cpu_index())
        {
            self.vtimer
                .vcpu_load(&mut vtimer_regs(), &mut phys, &mut self.gic);
            self.timer_loaded = true;
        }
    }

    fn put_timer(&mut self) {
        if self.timer_loaded
            && let Some(mut phys) = gic_hw::get().irq_state(cpu_index())
        {
            self.vtimer.vcpu_put(&mut vtimer_regs(), &mut phys);
            self.timer_loaded = false;
        }
    }

    /// Runs the vCPU where it stopped (after a swap brought it to this CPU), as
    /// [`Self::run_from`].
    pub fn run(&mut self, vm: &Vm) -> End {
        loop {
            if vm.stopped() {
                self.vpe_put(vm, false);
                return End::VmStopped;
            }
            vm.swap.maybe_request(vm, self.index);
            if vm.swap.pending_for(self.index) {
                self.put_for_swap(vm);
                return End::Swap;
            }
            self.sync(vm);
            if !self.resident && !self.vpe_load(vm) {
                return End::VmStopped;
            }
            self.gic.populate_lrs(&mut ich());
            let exit = self.vcpu.run();
            if let Some(mut phys) = gic_hw::get().irq_state(cpu_index()) {
                self.gic.fold_lrs(&mut ich(), &mut phys);
            }
            if let Next::End(end) = self.handle(vm, exit) {
                self.vpe_put(vm, false);
                return end;
            }
        }
    }

    /// Puts the timer away (off, PPI 27 inactive) once the vCPU will not run again, and
    /// records the last phase.
    pub fn finish(&mut self, vm: &Vm) {
        self.observe_phase(vm);
        self.put_timer();
    }

    // ---- vPE residency (GICv4) ----------------------------------------------------------

    /// Makes the vCPU's vPE resident on this CPU (VMOVP first if it was elsewhere). Returns
    /// false (the VM failed) if it could not be.
    fn vpe_load(&mut self, vm: &Vm) -> bool {
        let Host::Direct(h) = vm.host else {
            self.resident = true;
            return true;
        };
        let cpu = cpu_index();
        let r = h.gic.with_redist(cpu, |rd| {
            h.g4.make_resident(h.vm, self.index, cpu, rd)?;
            h.g4.commit(rd)
        });
        match r {
            Some(Ok(())) => {
                self.resident = true;
                true
            }
            other => {
                vm.fail(LinuxError::Its(format!(
                    "vPE {} resident on cpu{cpu}: {other:?}",
                    self.index
                )));
                false
            }
        }
    }

    /// Makes the vCPU's vPE non-resident (its doorbell enabled or not), if it is resident.
    fn vpe_put(&mut self, vm: &Vm, doorbell: bool) -> Option<Descheduled> {
        if !self.resident {
            return None;
        }
        self.resident = false;
        let Host::Direct(h) = vm.host else {
            return None;
        };
        let cpu = cpu_index();
        let r = h.gic.with_redist(cpu, |rd| {
            h.g4.make_non_resident(h.vm, self.index, rd, doorbell)
        });
        match r {
            Some(Ok(d)) => Some(d),
            other => {
                vm.fail(LinuxError::Its(format!(
                    "vPE {} non-resident from cpu{cpu}: {other:?}",
                    self.index
                )));
                None
            }
        }
    }

    // ---- swaps ----------------------------------------------------------------------------

    /// Puts the vCPU for a move to another CPU (see [`super::migrate`]).
    fn put_for_swap(&mut self, vm: &Vm) {
        self.observe_phase(vm);
        self.vpe_put(vm, false);
        self.put_timer();
        self.gic.save_cpuif(&ich());
        // SAFETY: at EL2 with the guest not running; the list registers were folded at the
        // exit, so disabling the virtual CPU interface here loses nothing.
        unsafe { common::write_sysreg!(ich_hcr_el2, 0u64) };
        self.el1 = Some(El1State::save());
    }

    /// Loads the vCPU on this CPU after a move: its EL1 state, its virtual CPU interface, its
    /// timer; kicks and its SPIs now go to this CPU. The vPE becomes resident at the next
    /// entry.
    pub fn load_after_swap(&mut self, vm: &Vm) {
        let cpu = cpu_index();
        vm.set_cpu_of(self.index, cpu);
        if let Some(el1) = self.el1.take() {
            el1.restore();
        }
        self.gic.restore_cpuif(&mut ich());
        self.load_timer();
        self.stats.swaps += 1;
        let hw = gic_hw::get();
        let targets: heapless::Vec<u32, { FORWARDED_SPIS.len() }> = {
            let vgic = vm.vgic.lock();
            FORWARDED_SPIS
                .iter()
                .copied()
                .filter(|&i| {
                    fwd_irq::VIntId::new(i)
                        .ok()
                        .and_then(|v| vgic.spi_target(v).ok().flatten())
                        == Some(self.id)
                })
                .collect()
        };
        for intid in targets {
            if let Err(e) = hw.route_spi(intid, cpu) {
                vm.fail(LinuxError::Gic(e));
            }
        }
        // Whatever was signalled for it meanwhile is looked at before it enters.
        vm.kick_self(self.index);
    }

    // ---- phases ---------------------------------------------------------------------------

    /// Records the counts at the start of every phase the guest marked since the last look
    /// (counts change only at exits, so this is exact if called at every exit).
    fn observe_phase(&mut self, vm: &Vm) {
        let p = vm.phase();
        while self.seen_phase < p {
            self.seen_phase += 1;
            if vm.opts().pmu {
                let (g, h) = super::pmu::read();
                self.stats.inst_guest = g;
                self.stats.inst_hyp = h;
            }
            vm.record_phase(self.index, self.seen_phase, &self.stats);
        }
    }

    // ---- the vGIC ---------------------------------------------------------------------------

    /// Applies the `Vgic`'s pending work for this vCPU if it was kicked or has some.
    fn sync(&mut self, vm: &Vm) {
        let kicked = vm.take_kick(self.index);
        let mut vgic = vm.vgic.lock();
        if !kicked && !vgic.needs_sync(self.id) {
            return;
        }
        // Each round either finishes or fills the effects buffer; the Vgic's work is bounded
        // by its interrupts, so a few rounds do.
        for _ in 0..64 {
            match vgic.sync(self.id, &mut self.gic, &mut self.fx) {
                Ok(done) => {
                    self.apply_effects(vm);
                    if done {
                        return;
                    }
                }
                Err(e) => {
                    vm.fail(LinuxError::Vgic(e));
                    return;
                }
            }
        }
    }

    /// Does what the `Vgic` asked (see its "Applying effects"), then empties the buffer.
    fn apply_effects(&mut self, vm: &Vm) {
        for target in self.fx.kicks().iter() {
            if target != self.id {
                vm.kick(target.index());
            }
        }
        let hw = gic_hw::get();
        for effect in self.fx.effects() {
            let done = match *effect {
                Effect::SetPhysEnabled { pintid, enabled } => {
                    hw.set_spi_enabled(pintid.get(), enabled)
                }
                Effect::RoutePhys { pintid, vcpu } => {
                    hw.route_spi(pintid.get(), vm.cpu_of(vcpu.index()))
                }
                Effect::SetPhysActive { pintid, active } => {
                    if let Some(mut phys) = hw.irq_state(cpu_index()) {
                        fwd_irq::hw::PhysIrqState::set_active(&mut phys, pintid, active);
                    }
                    Ok(())
                }
                Effect::LpisEnabled { vcpu, .. } => {
                    // The Vgic is locked here: the guest's ITS learns the table afterwards.
                    self.lpi_change = Some(vcpu);
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = done {
                vm.fail(LinuxError::Gic(e));
            }
        }
        self.fx.clear();
    }

    /// Hands the guest's ITS the LPI configuration table of a redistributor whose
    /// EnableLPIs changed (every vCPU of Linux points at the same table). Call without the
    /// `Vgic` locked.
    fn lpi_table_changed(&mut self, vm: &Vm) {
        let Some(vcpu) = self.lpi_change.take() else {
            return;
        };
        let table = {
            let vgic = vm.vgic.lock();
            let regs = vgic.lpi_regs(vcpu).ok();
            regs.filter(|r| r.enabled).map(|r| LpiConfigTable {
                base: r.propbaser & 0x000f_ffff_ffff_f000,
                id_bits: ((r.propbaser & 0x1f) as u8 + 1).min(VINTID_BITS),
            })
        };
        if table.is_none() {
            // LPIs off on this redistributor: keep the table while another has them on.
            let vgic = vm.vgic.lock();
            let any =
                (0..vm.vcpus).any(|v| vgic.lpi_regs(VcpuId::new(v as u8)).is_ok_and(|r| r.enabled));
            if any {
                return;
            }
        }
        if let Some(its) = vm.its.lock().as_mut() {
            its.set_lpi_config(table);
        }
    }

    // ---- exits ------------------------------------------------------------------------------

    fn handle(&mut self, vm: &Vm, exit: Exit) -> Next {
        self.observe_phase(vm);
        match exit {
            Exit::Irq { intid } => {
                self.stats.irq += 1;
                self.irq(vm, intid, Taken::Exit);
                Next::Resume
            }
            Exit::DataAbort {
                esr, far, hpfar, ..
            } => {
                self.data_abort(vm, esr, far, hpfar);
                Next::Resume
            }
            Exit::Hvc { .. } => {
                self.stats.hvc += 1;
                self.vcpu.regs.x[0] = i64::from(smccc::psci::error::NOT_SUPPORTED) as u64;
                Next::Resume
            }
            Exit::Wfx { wfe } => {
                self.stats.wfx += 1;
                self.vcpu.regs.elr += 4;
                if !wfe {
                    self.wfi(vm);
                }
                Next::Resume
            }
            Exit::Other { esr, .. } => match (esr >> 26) & 0x3f {
                EC_SMC64 => {
                    self.stats.smc += 1;
                    self.smc(vm)
                }
                EC_SYSREG => {
                    self.sysreg(vm, esr);
                    Next::Resume
                }
                _ => {
                    self.stats.other += 1;
                    vm.note_unexpected(esr, self.vcpu.regs.elr);
                    inject::undefined(&mut self.vcpu.regs);
                    Next::Resume
                }
            },
        }
    }

    /// A physical IRQ, acknowledged and priority-dropped (EOImode = 1), taken at an exit or
    /// while the vCPU was blocked.
    fn irq(&mut self, vm: &Vm, intid: u32, taken: Taken) {
        let exit = taken == Taken::Exit;
        if intid == KICK_SGI {
            if exit {
                self.stats.irq_kick += 1;
            }
            icc().deactivate(intid);
            return;
        }
        if intid >= LPI_BASE && self.guest_lpi(vm, intid, exit) {
            // LPIs have no active state: nothing to deactivate.
            return;
        }
        let irq = handle_acked_irq(
            &mut icc(),
            &mut self.gic,
            Some(&mut self.vtimer),
            &mut host_timer(),
            HostPpis::BSA,
            intid,
        );
        if !exit {
            // Woken by something of its own; not an exit. (A forwarded SPI held by another
            // vCPU is handled below as at an exit.)
            if !matches!(irq, HostIrq::Other(_)) {
                return;
            }
        }
        match irq {
            HostIrq::Vtimer(_) => self.stats.irq_vtimer += 1,
            HostIrq::Forwarded { pintid, .. } => {
                self.stats.irq_spi += 1;
                self.stats.count_spi(pintid.get());
            }
            HostIrq::Maintenance => self.stats.irq_maint += 1,
            HostIrq::Spurious => self.stats.irq_spurious += 1,
            HostIrq::HostTimer { .. } => self.stats.irq_other += 1,
            HostIrq::Other(i) => {
                // An SPI the VM forwards but another vCPU holds (it is moving): the Vgic
                // signals it there; it stays active for the guest.
                let moved = PIntId::new(i).ok().and_then(|p| {
                    let mut vgic = vm.vgic.lock();
                    vgic.phys_irq(p, &mut self.fx).ok()
                });
                if moved.is_some() {
                    self.stats.irq_spi += 1;
                    self.stats.count_spi(i);
                    self.apply_effects(vm);
                } else {
                    self.stats.irq_other += 1;
                    icc().deactivate(i);
                }
            }
        }
    }

    /// An LPI: a vPE's doorbell, or a host LPI standing for a guest event. Returns false if
    /// it is neither.
    fn guest_lpi(&mut self, vm: &Vm, intid: u32, exit: bool) -> bool {
        match vm.host {
            Host::Direct(h) => {
                let Some(vpe) = h.dbs.handle(intid) else {
                    return false;
                };
                if exit {
                    self.stats.irq_doorbell += 1;
                } else {
                    self.stats.doorbell_wakeups += 1;
                }
                // The doorbell targets the CPU its vPE was last resident on, which runs that
                // vCPU: only a vCPU in the middle of a move can have it rung elsewhere.
                if let Some(i) = h.vm.owns(vpe)
                    && i != self.index
                {
                    vm.kick(i);
                }
                true
            }
            Host::Soft(h) => {
                if !h.routes.owns(intid) {
                    return false;
                }
                if exit {
                    self.stats.irq_lpi += 1;
                } else {
                    self.stats.lpi_wakeups += 1;
                }
                match h.routes.route(intid) {
                    Some(r) if r.vcpu.index() == self.index && r.enabled => {
                        match self.gic.inject_lpi(r.vintid.get(), r.priority) {
                            Ok(()) => self.stats.lpis_injected += 1,
                            Err(e) => vm.fail(LinuxError::Fwd(e)),
                        }
                    }
                    // Unmapped or masked meanwhile, or moving to another vCPU's CPU: the
                    // guest's MOVI moved the event, and a MSI already on its way landed here.
                    // Dropped (an edge the guest's driver recovers from, as Linux does after
                    // set_affinity), and counted.
                    _ => self.stats.irq_other += 1,
                }
                true
            }
            Host::None => false,
        }
    }

    /// A trapped WFI (with Options::trap_wfi): block unless something is pending for the
    /// vCPU (see the module documentation).
    fn wfi(&mut self, vm: &Vm) {
        if vm.stopped() || vm.is_kicked(self.index) || self.gic.has_pending() || {
            vm.vgic.lock().needs_sync(self.id)
        } {
            self.stats.wfi_pending += 1;
            return;
        }
        let mut waiting = false;
        if let Host::Direct(h) = vm.host {
            // Armed before the doorbell is enabled, so no ring can come between.
            if h.dbs.arm(&self.waiter).is_err() {
                self.stats.wfi_pending += 1;
                return;
            }
            match self.vpe_put(vm, true) {
                Some(d) if !d.pending_last => waiting = true,
                _ => {
                    self.stats.wfi_pending += 1;
                    return;
                }
            }
        }
        self.stats.wfi_blocks += 1;
        let deadline =
            common::timer::ticks().saturating_add(common::timer::duration_to_ticks(BLOCK_LIMIT));
        let mut watchdog = host_timer();
        watchdog.arm(deadline);
        loop {
            if let Host::Direct(h) = vm.host
                && waiting
                && h.dbs.is_woken(&self.waiter)
            {
                h.g4.doorbell_rang(h.vm, self.index);
                break;
            }
            if vm.stopped() || vm.is_kicked(self.index) {
                break;
            }
            // SAFETY: `wfi` only waits for an interrupt; IRQs are masked at EL2, so a pending
            // one ends the wait without being taken, and is acknowledged just below.
            unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack)) };
            if gic_hw::hppir() == gic_hw::SPURIOUS {
                continue;
            }
            let intid = gic_hw::ack();
            if (1020..1024).contains(&intid) {
                continue;
            }
            gic_hw::eoi(intid);
            if intid == PIntId::HYP_TIMER.get() {
                // The watchdog: re-enter; the guest runs its WFI again if it still waits.
                watchdog.disarm();
                icc().deactivate(intid);
                break;
            }
            let doorbell = matches!(vm.host, Host::Direct(h) if h.dbs.vpe_of(intid).is_some());
            self.irq(vm, intid, Taken::Blocked);
            if !doorbell {
                // Its timer, an SPI, a host LPI of its own, a kick: it has work.
                break;
            }
        }
        watchdog.disarm();
    }

    /// A stage 2 data abort: an emulated GIC or ITS register, the phase marker, or an access
    /// the guest may not make.
    fn data_abort(&mut self, vm: &Vm, esr: u64, far: u64, hpfar: u64) {
        let abort = match DataAbort::decode(esr, far, hpfar) {
            Ok(a) => a,
            Err(_) => {
                self.refuse(vm, esr, far, None);
                return;
            }
        };
        let ipa = abort.ipa();
        let its_base = crate::gic_hw::get().its_base();
        if (its_base..its_base + ITS_CONTROL_SIZE).contains(&ipa) && vm.its.lock().is_some() {
            self.its_access(vm, &abort, ipa - its_base, esr, far);
            return;
        }
        if (PHASE_MARKER..PHASE_MARKER + 0x1000).contains(&ipa) {
            self.marker(vm, &abort);
            return;
        }
        let mut vgic = vm.vgic.lock();
        let Some((frame, _)) = vgic.frame(ipa) else {
            drop(vgic);
            self.refuse(vm, esr, far, Some(ipa));
            return;
        };
        match frame {
            GicFrame::Distributor => self.stats.dabt_gicd += 1,
            _ => self.stats.dabt_gicr += 1,
        }
        let done = vgic.emulate(
            self.id,
            &mut self.gic,
            &abort,
            &mut self.vcpu.regs.x,
            &mut self.fx,
        );
        drop(vgic);
        match done {
            Ok(_) => {
                self.apply_effects(vm);
                self.lpi_table_changed(vm);
                self.vcpu.regs.elr += u64::from(abort.insn_len());
            }
            Err(e) => {
                self.fx.clear();
                vm.fail(LinuxError::Vgic(e));
            }
        }
    }

    /// An access to the ITS control frame: the guest's ITS.
    fn its_access(&mut self, vm: &Vm, abort: &DataAbort, offset: u64, esr: u64, far: u64) {
        let size = abort.size().bytes() as usize;
        let mut guard = vm.its.lock();
        let Some(its) = guard.as_mut() else {
            drop(guard);
            self.refuse(vm, esr, far, Some(abort.ipa()));
            return;
        };
        let done = match abort.direction() {
            Direction::Read { .. } => its.read(offset, size).map(|v| {
                abort.complete_read(&mut self.vcpu.regs.x, v);
            }),
            Direction::Write { .. } => {
                its.write(offset, size, abort.write_value(&self.vcpu.regs.x))
            }
        };
        drop(guard);
        match done {
            Ok(()) => {
                self.stats.dabt_its += 1;
                self.vcpu.regs.elr += u64::from(abort.insn_len());
            }
            Err(_) => self.refuse(vm, esr, far, Some(abort.ipa())),
        }
    }

    /// The phase marker: a write of 1 or 2 marks that phase (each vCPU records its counts at
    /// its next exit; this one at once); a read returns the phase. The start mark's exit is
    /// counted before the snapshot and the end mark's after it, so the window between them
    /// holds neither.
    fn marker(&mut self, vm: &Vm, abort: &DataAbort) {
        match abort.direction() {
            Direction::Read { .. } => {
                self.stats.dabt_marker += 1;
                abort.complete_read(&mut self.vcpu.regs.x, u64::from(vm.phase()));
            }
            Direction::Write { .. } => {
                let p = abort.write_value(&self.vcpu.regs.x) as u32;
                if p == 1 {
                    self.stats.dabt_marker += 1;
                }
                if vm.mark_phase(p) && vm.opts().pmu {
                    // The instruction counters run without exits: make the others look now.
                    for v in 0..vm.vcpus {
                        if v != self.index {
                            vm.kick(v);
                        }
                    }
                }
                self.observe_phase(vm);
                if p != 1 {
                    self.stats.dabt_marker += 1;
                }
            }
        }
        self.vcpu.regs.elr += u64::from(abort.insn_len());
    }

    /// Refuses a data access: the guest takes an external abort.
    fn refuse(&mut self, vm: &Vm, esr: u64, far: u64, ipa: Option<u64>) {
        self.stats.dabt_refused += 1;
        vm.note_refused(Refused {
            vcpu: self.index,
            va: far,
            ipa,
            esr,
        });
        inject::data_abort(&mut self.vcpu.regs, esr, far);
    }

    /// A trapped MSR/MRS: the SGI generation registers go to the `Vgic`.
    fn sysreg(&mut self, vm: &Vm, esr: u64) {
        let access = SysRegAccess::decode(esr);
        let reg = access.as_ref().and_then(SgiRegister::from_trap);
        let (Some(access), Some(reg)) = (access, reg) else {
            self.stats.sysreg_other += 1;
            vm.note_unexpected(esr, self.vcpu.regs.elr);
            inject::undefined(&mut self.vcpu.regs);
            return;
        };
        if access.read {
            self.stats.sysreg_other += 1;
            inject::undefined(&mut self.vcpu.regs);
            return;
        }
        self.stats.sysreg_sgi += 1;
        let value = access.rt.index().map_or(0, |i| self.vcpu.regs.x[i]);
        let sent = vm
            .vgic
            .lock()
            .sgi(self.id, &mut self.gic, reg, value, &mut self.fx);
        match sent {
            Ok(targets) => {
                self.stats.sgis += targets.len() as u64;
                self.apply_effects(vm);
            }
            Err(e) => {
                self.fx.clear();
                vm.fail(LinuxError::Vgic(e));
            }
        }
        self.vcpu.regs.elr += u64::from(access.insn_len);
    }

    /// A trapped SMC: PSCI. ELR points at the SMC; the guest resumes after it.
    fn smc(&mut self, vm: &Vm) -> Next {
        let x = &self.vcpu.regs.x;
        let action = vm.psci.lock().call(self.index, [x[0], x[1], x[2], x[3]]);
        self.vcpu.regs.elr += 4;
        match action {
            Action::Return(value) => {
                self.vcpu.regs.x[0] = value as u64;
                Next::Resume
            }
            Action::Started { target } => {
                self.vcpu.regs.x[0] = 0;
                vm.kick(target);
                Next::Resume
            }
            Action::CpuOff => Next::End(End::CpuOff),
            Action::SystemOff => {
                vm.stop(Stop::PowerOff);
                Next::End(End::VmStopped)
            }
            Action::SystemReset => {
                vm.stop(Stop::Reset);
                Next::End(End::VmStopped)
            }
        }
    }
}
