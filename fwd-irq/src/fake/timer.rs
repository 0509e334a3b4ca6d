// SPDX-License-Identifier: MIT OR Apache-2.0
//! A fake generic timer: the EL1 virtual timer and the physical count ([`FakeTimer`]), and an
//! EL2 host timer on the same count ([`FakeHostTimer`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::vec::Vec;

use super::{FakePhysGic, Sequencer};
use crate::hw::{HostTimer, VtimerRegs};
use crate::ids::PIntId;
use crate::regs::CntCtl;

/// One hypervisor access through [`VtimerRegs`] or [`HostTimer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerOp {
    /// CNTV_CTL_EL0 read.
    ReadCtl,
    /// CNTV_CTL_EL0 written.
    WriteCtl(u64),
    /// CNTV_CVAL_EL0 read.
    ReadCval,
    /// CNTV_CVAL_EL0 written.
    WriteCval(u64),
    /// CNTVOFF_EL2 written.
    WriteCntvoff(u64),
    /// CNTPCT_EL0 read.
    ReadCntpct,
    /// Host timer armed for this physical count.
    Arm(u64),
    /// Host timer disarmed.
    Disarm,
}

/// A fake EL1 virtual timer and system counter for one PE. Time only moves when the test
/// calls [`Self::advance`].
#[derive(Debug)]
pub struct FakeTimer {
    clock: Rc<Cell<u64>>,
    cntvoff: u64,
    ctl: CntCtl,
    cval: u64,
    vtimer_ppi: PIntId,
    log: RefCell<Vec<(u64, TimerOp)>>,
    seq: Sequencer,
}

impl Default for FakeTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeTimer {
    /// Count 0, timer disabled, driving PPI 27.
    pub fn new() -> Self {
        Self {
            clock: Rc::new(Cell::new(0)),
            cntvoff: 0,
            ctl: CntCtl::new(),
            cval: 0,
            vtimer_ppi: PIntId::VTIMER,
            log: RefCell::new(Vec::new()),
            seq: Sequencer::new(),
        }
    }

    /// An EL2 host timer on the same system counter, driving PPI 26, sharing the sequencer.
    pub fn host_timer(&self) -> FakeHostTimer {
        FakeHostTimer {
            clock: Rc::clone(&self.clock),
            deadline: None,
            ppi: PIntId::HYP_TIMER,
            log: RefCell::new(Vec::new()),
            seq: self.seq.clone(),
        }
    }

    /// Shares `seq` with other fakes.
    pub fn with_sequencer(mut self, seq: &Sequencer) -> Self {
        self.seq = seq.clone();
        self
    }

    fn record(&self, op: TimerOp) {
        self.log.borrow_mut().push((self.seq.next(), op));
    }

    /// The physical count.
    pub fn now(&self) -> u64 {
        self.clock.get()
    }

    /// The virtual count the guest sees (physical count - CNTVOFF).
    pub fn virtual_now(&self) -> u64 {
        self.now().wrapping_sub(self.cntvoff)
    }

    /// Moves time forward (for every fake sharing this counter).
    pub fn advance(&mut self, ticks: u64) {
        self.clock.set(self.now().wrapping_add(ticks));
    }

    /// The guest programs its timer (CNTV_CVAL_EL0, then CNTV_CTL_EL0), not a hypervisor
    /// access.
    pub fn guest_program(&mut self, cval: u64, enable: bool, imask: bool) {
        self.cval = cval;
        self.ctl = CntCtl::new().with_enable(enable).with_imask(imask);
    }

    /// The guest's view of CNTV_CTL_EL0 and CNTV_CVAL_EL0 (not a hypervisor access).
    pub fn guest_view(&self) -> (CntCtl, u64) {
        (self.ctl.with_istatus(self.condition_met()), self.cval)
    }

    fn condition_met(&self) -> bool {
        self.ctl.enable() && self.virtual_now() >= self.cval
    }

    /// Whether the virtual timer's output is asserted (enabled, unmasked, condition met).
    pub fn vtimer_asserted(&self) -> bool {
        self.condition_met() && !self.ctl.imask()
    }

    /// Feeds the virtual timer's output into `gic` as the level of its PPI.
    pub fn drive(&self, gic: &mut FakePhysGic) {
        gic.set_line(self.vtimer_ppi.get(), self.vtimer_asserted());
    }

    /// Every logged hypervisor access, with sequence numbers.
    pub fn log(&self) -> Vec<(u64, TimerOp)> {
        self.log.borrow().clone()
    }

    /// How many hypervisor accesses were made (the cost the put/load design keeps off the
    /// entry/exit path).
    pub fn hyp_accesses(&self) -> usize {
        self.log.borrow().len()
    }

    /// Clears the log.
    pub fn clear_log(&self) {
        self.log.borrow_mut().clear();
    }
}

impl VtimerRegs for FakeTimer {
    fn cntv_ctl(&self) -> CntCtl {
        self.record(TimerOp::ReadCtl);
        self.ctl.with_istatus(self.condition_met())
    }

    fn set_cntv_ctl(&mut self, value: CntCtl) {
        self.record(TimerOp::WriteCtl(value.into_bits()));
        self.ctl = value.with_istatus(false);
    }

    fn cntv_cval(&self) -> u64 {
        self.record(TimerOp::ReadCval);
        self.cval
    }

    fn set_cntv_cval(&mut self, value: u64) {
        self.record(TimerOp::WriteCval(value));
        self.cval = value;
    }

    fn set_cntvoff(&mut self, value: u64) {
        self.record(TimerOp::WriteCntvoff(value));
        self.cntvoff = value;
    }

    fn cntpct(&self) -> u64 {
        self.record(TimerOp::ReadCntpct);
        self.now()
    }
}

/// A fake EL2 host timer (CNTHP) on a [`FakeTimer`]'s system counter.
#[derive(Debug)]
pub struct FakeHostTimer {
    clock: Rc<Cell<u64>>,
    deadline: Option<u64>,
    ppi: PIntId,
    log: RefCell<Vec<(u64, TimerOp)>>,
    seq: Sequencer,
}

impl FakeHostTimer {
    /// The armed deadline, if any.
    pub fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// Whether the output is asserted (armed and the count reached the deadline).
    pub fn asserted(&self) -> bool {
        self.deadline.is_some_and(|d| self.clock.get() >= d)
    }

    /// Feeds the output into `gic` as the level of its PPI (26).
    pub fn drive(&self, gic: &mut FakePhysGic) {
        gic.set_line(self.ppi.get(), self.asserted());
    }

    /// Every logged hypervisor access ([`TimerOp::Arm`], [`TimerOp::Disarm`]).
    pub fn log(&self) -> Vec<(u64, TimerOp)> {
        self.log.borrow().clone()
    }
}

impl HostTimer for FakeHostTimer {
    fn arm(&mut self, deadline: u64) {
        self.log
            .borrow_mut()
            .push((self.seq.next(), TimerOp::Arm(deadline)));
        self.deadline = Some(deadline);
    }

    fn disarm(&mut self) {
        self.log
            .borrow_mut()
            .push((self.seq.next(), TimerOp::Disarm));
        self.deadline = None;
    }
}
