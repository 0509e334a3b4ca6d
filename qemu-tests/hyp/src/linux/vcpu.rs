// SPDX-License-Identifier: MIT OR Apache-2.0
//! One vCPU of the Linux guest and its run loop, on the CPU it is pinned to.
//!
//! A [`LinuxVcpu`] puts together what the crates provide for one vCPU:
//!
//! - `hyp::vcpu::Vcpu`: the guest's registers, and `run()`, which enters EL1 and returns at
//!   the next exit;
//! - `fwd_irq::VgicCpu`: this vCPU's virtual interrupts and list registers;
//! - `fwd_irq::VtimerFwd`: the EL1 virtual timer, forwarded with the HW bit (the guest's
//!   deactivation of vINTID 27 deactivates PPI 27: no exit at EOI);
//! - its place in the VM's `vgic::Vgic` (attached once, on this CPU).
//!
//! The loop, per entry (`fwd-irq` and `vgic` give the order):
//!
//! ```text
//! kicked, or the Vgic has work for us  ->  lock; Vgic::sync until done; apply its effects
//! VgicCpu::populate_lrs                ->  list registers for what is pending
//! Vcpu::run                            ->  the guest runs until an exit
//! VgicCpu::fold_lrs                    ->  what the guest did with the list registers
//! handle the exit:
//!   IRQ        kick SGI: deactivate (the sync above does the work)
//!              else fwd_irq::handle_acked_irq: the timer, forwarded SPIs, maintenance;
//!              an SPI forwarded to another vCPU: Vgic::phys_irq
//!   data abort vgic::trap::DataAbort::decode; in GICD/GICR: Vgic::emulate, skip the
//!              instruction; anywhere else: inject an external abort
//!   MSR trap   ICC_SGI*R_EL1: Vgic::sgi (kicks the targets); anything else: UNDEFINED
//!   SMC        PSCI (`linux::psci`): answer, start a vCPU, stop this one, stop the VM
//!   HVC        NOT_SUPPORTED in x0
//! ```
//!
//! The VM-wide state (the `Vgic`, PSCI, kicks, the stop flag) is [`Vm`](super::Vm), shared
//! by every CPU under its locks; everything in a `LinuxVcpu` belongs to its CPU alone.

use fwd_irq::host_irq::handle_acked_irq;
use fwd_irq::hw::HostCpuIf;
use fwd_irq::{FwdMode, HostIrq, HostPpis, PIntId, VgicCpu, VtimerConfig, VtimerFwd};
use vgic::trap::{DataAbort, SysRegAccess};
use vgic::{Effect, Effects, Frame as GicFrame, SgiRegister, VcpuId};

use super::psci::Action;
use super::stats::ExitStats;
use super::{KICK_SGI, LinuxError, Refused, Stop, Vm, el2, inject};
use crate::fwd::{host_timer, icc, ich, vtimer_regs};
use crate::gic_hw;
use crate::vcpu::{Exit, Vcpu};

/// Virtual interrupts one vCPU can hold: its 32 SGIs and PPIs plus every SPI of the VM.
pub const NR_VIRQS: usize = 32 + super::SPIS;

/// ESR_EL2.EC values the loop handles itself (the rest come as `Exit` variants).
const EC_SMC64: u64 = 0x17;
const EC_SYSREG: u64 = 0x18;

/// Why a vCPU stopped running.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum End {
    /// PSCI CPU_OFF: it waits for a CPU_ON.
    CpuOff,
    /// The VM stopped (SYSTEM_OFF, SYSTEM_RESET, or a failure).
    VmStopped,
}

/// What to do after an exit.
enum Next {
    Resume,
    End(End),
}

/// One vCPU, on its CPU.
pub struct LinuxVcpu {
    cpu: usize,
    id: VcpuId,
    vcpu: Vcpu,
    gic: VgicCpu<NR_VIRQS>,
    vtimer: VtimerFwd,
    timer_loaded: bool,
    fx: Effects,
    /// This vCPU's exits by cause.
    pub stats: ExitStats,
}

impl LinuxVcpu {
    /// vCPU `cpu` on CPU `cpu`: its interrupt table sized from this CPU's ICH_VTR_EL2, the
    /// virtual timer forwarded (HW), attached to the VM's `Vgic`. Call on CPU `cpu`, after
    /// the VM declared its forwarded SPIs.
    pub fn new(vm: &Vm, cpu: usize) -> Result<Self, LinuxError> {
        let mut gic = VgicCpu::<NR_VIRQS>::from_vtr(fwd_irq::hw::IchRegs::vtr(&ich()))
            .map_err(LinuxError::Fwd)?;
        let vtimer =
            VtimerFwd::new(&mut gic, VtimerConfig::bsa(FwdMode::Hw)).map_err(LinuxError::Fwd)?;
        let id = VcpuId::new(cpu as u8);
        let mut v = Self {
            cpu,
            id,
            vcpu: Vcpu::at(0, 0),
            gic,
            vtimer,
            timer_loaded: false,
            fx: Effects::new(),
            stats: ExitStats::default(),
        };
        let mut vgic = vm.vgic.lock();
        vgic.attach(id, &mut v.gic, &mut v.fx)
            .map_err(LinuxError::Vgic)?;
        v.apply_effects(vm);
        Ok(v)
    }

    /// Runs the vCPU from `entry` with `context` in x0 (a fresh register state, MMU off) until
    /// it powers itself off or the VM stops.
    pub fn run_from(&mut self, vm: &Vm, entry: u64, context: u64) -> End {
        self.vcpu = Vcpu::at(entry, context);
        self.vcpu.hcr = el2::HCR_EL2_LINUX;
        if !self.timer_loaded
            && let Some(mut phys) = gic_hw::get().irq_state(self.cpu)
        {
            self.vtimer
                .vcpu_load(&mut vtimer_regs(), &mut phys, &mut self.gic);
            self.timer_loaded = true;
        }
        loop {
            if vm.stopped() {
                return End::VmStopped;
            }
            self.sync(vm);
            self.gic.populate_lrs(&mut ich());
            let exit = self.vcpu.run();
            if let Some(mut phys) = gic_hw::get().irq_state(self.cpu) {
                self.gic.fold_lrs(&mut ich(), &mut phys);
            }
            if let Next::End(end) = self.handle(vm, exit) {
                return end;
            }
        }
    }

    /// Puts the timer away (off, PPI 27 inactive) once the vCPU will not run again.
    pub fn finish(&mut self) {
        if self.timer_loaded
            && let Some(mut phys) = gic_hw::get().irq_state(self.cpu)
        {
            self.vtimer.vcpu_put(&mut vtimer_regs(), &mut phys);
            self.timer_loaded = false;
        }
    }

    /// Applies the `Vgic`'s pending work for this vCPU if it was kicked or has some.
    fn sync(&mut self, vm: &Vm) {
        let kicked = vm.take_kick(self.cpu);
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
                Effect::RoutePhys { pintid, vcpu } => hw.route_spi(pintid.get(), vcpu.index()),
                Effect::SetPhysActive { pintid, active } => {
                    if let Some(mut phys) = hw.irq_state(self.cpu) {
                        fwd_irq::hw::PhysIrqState::set_active(&mut phys, pintid, active);
                    }
                    Ok(())
                }
                // No virtual ITS yet: the guest sees no LPIs.
                _ => Ok(()),
            };
            if let Err(e) = done {
                vm.fail(LinuxError::Gic(e));
            }
        }
        self.fx.clear();
    }

    fn handle(&mut self, vm: &Vm, exit: Exit) -> Next {
        match exit {
            Exit::Irq { intid } => {
                self.stats.irq += 1;
                self.irq(vm, intid);
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
            Exit::Wfx { .. } => {
                // Not trapped (TWI = TWE = 0); should one come, it has already waited.
                self.stats.wfx += 1;
                self.vcpu.regs.elr += 4;
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

    /// A physical IRQ, acknowledged and priority-dropped by `hyp::exits` (EOImode = 1).
    fn irq(&mut self, vm: &Vm, intid: u32) {
        if intid == KICK_SGI {
            self.stats.irq_kick += 1;
            icc().deactivate(intid);
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

    /// A stage 2 data abort: an emulated GIC register, or an access the guest may not make.
    fn data_abort(&mut self, vm: &Vm, esr: u64, far: u64, hpfar: u64) {
        let abort = match DataAbort::decode(esr, far, hpfar) {
            Ok(a) => a,
            Err(_) => {
                self.refuse(vm, esr, far, None);
                return;
            }
        };
        let mut vgic = vm.vgic.lock();
        let Some((frame, _)) = vgic.frame(abort.ipa()) else {
            drop(vgic);
            self.refuse(vm, esr, far, Some(abort.ipa()));
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
                self.vcpu.regs.elr += u64::from(abort.insn_len());
            }
            Err(e) => {
                self.fx.clear();
                vm.fail(LinuxError::Vgic(e));
            }
        }
    }

    /// Refuses a data access: the guest takes an external abort.
    fn refuse(&mut self, vm: &Vm, esr: u64, far: u64, ipa: Option<u64>) {
        self.stats.dabt_refused += 1;
        vm.note_refused(Refused {
            vcpu: self.cpu,
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
        let action = vm.psci.lock().call(self.cpu, [x[0], x[1], x[2], x[3]]);
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
