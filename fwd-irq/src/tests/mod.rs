// SPDX-License-Identifier: MIT OR Apache-2.0
//! Host tests that drive the algorithms through the fakes: the hypervisor side calls the
//! crate, the fakes play the guest, the physical GIC, the devices and the timer.

mod fold;
mod host_irq;
mod load;
mod logging;
mod lpi;
mod overflow;
mod populate;
mod props;
mod table;
mod timer;

use std::vec::Vec;

use crate::fake::{FakeHostTimer, FakeIch, FakePhysGic, FakeTimer, GuestExit, Sequencer};
use crate::host_irq::{HostIrq, HostPpis, enable_split_eoi, handle_host_irq};
use crate::ids::{PIntId, VIntId};
use crate::regs::IchVmcr;
use crate::timer::VtimerFwd;
use crate::vgic::{FoldReport, LrPlan, VgicCpu};

pub(crate) fn v(n: u32) -> VIntId {
    VIntId::new(n).unwrap()
}

pub(crate) fn p(n: u32) -> PIntId {
    PIntId::new(n).unwrap()
}

/// One PE running one vCPU: the hypervisor's state plus the fakes.
pub(crate) struct Rig {
    /// The sequencer every fake of this PE logs with.
    #[allow(dead_code, reason = "kept so tests can add fakes to the same order")]
    pub seq: Sequencer,
    pub ich: FakeIch,
    pub gic: FakePhysGic,
    pub timer: FakeTimer,
    pub host_timer: FakeHostTimer,
    pub vgic: VgicCpu<64>,
    /// Guest exits so far (each one a fold).
    pub exits: u64,
}

impl Rig {
    /// A PE with `nr_lrs` list registers, the host in EOImode = 1, and a guest that enabled
    /// Group 1 with priority mask 0xFF.
    pub fn new(nr_lrs: usize) -> Self {
        let seq = Sequencer::new();
        let mut ich = FakeIch::new(nr_lrs).with_sequencer(&seq);
        ich.guest_set_vmcr(IchVmcr::group1_all());
        let mut gic = FakePhysGic::new().with_sequencer(&seq);
        enable_split_eoi(&mut gic);
        let timer = FakeTimer::new().with_sequencer(&seq);
        let host_timer = timer.host_timer();
        let vgic = VgicCpu::from_vtr(crate::hw::IchRegs::vtr(&ich)).unwrap();
        Self {
            seq,
            ich,
            gic,
            timer,
            host_timer,
            vgic,
            exits: 0,
        }
    }

    /// Guest entry.
    pub fn enter(&mut self) -> LrPlan {
        self.vgic.populate_lrs(&mut self.ich)
    }

    /// Guest exit.
    pub fn exit(&mut self) -> FoldReport {
        self.exits += 1;
        self.vgic.fold_lrs(&mut self.ich, &mut self.gic)
    }

    /// The physical IRQ path after an IRQ exit.
    pub fn host_irq(&mut self, vtimer: Option<&mut VtimerFwd>) -> HostIrq {
        handle_host_irq(
            &mut self.gic,
            &mut self.vgic,
            vtimer,
            &mut self.host_timer,
            HostPpis::BSA,
        )
    }

    /// Runs the guest, which handles every interrupt it can take without touching devices.
    pub fn run(&mut self) -> GuestExit {
        self.ich.guest_run(&mut self.gic, 64, |_, _| {})
    }

    /// Enter, run the guest, exit, and handle a physical IRQ if that is why it exited, until
    /// the guest idles with nothing pending. Returns the number of round trips.
    pub fn run_to_idle(&mut self) -> usize {
        self.run_to_idle_with(|_, _| {})
    }

    /// [`Self::run_to_idle`] with a guest interrupt handler that may change device lines.
    pub fn run_to_idle_with(&mut self, mut handler: impl FnMut(u32, &mut FakePhysGic)) -> usize {
        for round in 1..=64 {
            self.enter();
            let why = self.ich.guest_run(&mut self.gic, 64, &mut handler);
            self.exit();
            if why == GuestExit::PhysIrq {
                self.host_irq(None);
            }
            if why == GuestExit::Idle && !self.vgic.has_pending() {
                return round;
            }
        }
        panic!("guest never went idle");
    }

    /// No fake saw an architecture rule broken.
    pub fn assert_clean(&self) {
        let mut all: Vec<_> = self.ich.violations();
        all.extend(self.gic.violations());
        assert!(all.is_empty(), "violations: {all:?}");
    }
}
