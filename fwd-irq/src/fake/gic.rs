// SPDX-License-Identifier: MIT OR Apache-2.0
//! A fake physical GIC: PPI/SPI state and the host's Group 1 CPU interface.

use std::cell::RefCell;
use std::format;
use std::string::String;
use std::vec::Vec;

use super::Sequencer;
use crate::hw::{HostCpuIf, PhysIrqState};
use crate::ids::{MAX_SPI, PIntId, SPURIOUS};
use crate::regs::IccCtlr;
use crate::vgic::Trigger;

/// One access through [`PhysIrqState`] or [`HostCpuIf`], or a guest deactivation through an
/// HW = 1 list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysOp {
    /// `is_pending(pintid)`.
    ReadPending(u32),
    /// `is_active(pintid)`.
    ReadActive(u32),
    /// `set_active(pintid, active)`.
    SetActive(u32, bool),
    /// ICC_IAR1_EL1 returned this INTID.
    Ack(u32),
    /// ICC_EOIR1_EL1 written.
    Eoi(u32),
    /// ICC_DIR_EL1 written.
    Deactivate(u32),
    /// ICC_CTLR_EL1 read.
    ReadCtlr,
    /// ICC_CTLR_EL1 written.
    WriteCtlr(u64),
    /// The guest deactivated a virtual interrupt with HW = 1 and this pINTID.
    HwDeactivate(u32),
}

#[derive(Clone, Copy, Debug)]
struct Line {
    trigger: Trigger,
    enabled: bool,
    priority: u8,
    line: bool,
    latch: bool,
    active: bool,
}

impl Line {
    const fn pending(&self) -> bool {
        self.latch || (matches!(self.trigger, Trigger::Level) && self.line)
    }
}

/// A fake distributor + redistributor (one PE) + host CPU interface.
///
/// Every interrupt starts level-sensitive, disabled, priority 0x80, line low, inactive.
#[derive(Debug)]
pub struct FakePhysGic {
    lines: Vec<Line>,
    running: Vec<(u8, u32)>,
    ctlr: IccCtlr,
    log: RefCell<Vec<(u64, PhysOp)>>,
    violations: RefCell<Vec<String>>,
    seq: Sequencer,
}

impl Default for FakePhysGic {
    fn default() -> Self {
        Self::new()
    }
}

impl FakePhysGic {
    /// A GIC with INTIDs 0..=1019 and ICC_CTLR_EL1 = 0 (EOImode 0).
    pub fn new() -> Self {
        let line = Line {
            trigger: Trigger::Level,
            enabled: false,
            priority: 0x80,
            line: false,
            latch: false,
            active: false,
        };
        Self {
            lines: std::vec![line; MAX_SPI as usize + 1],
            running: Vec::new(),
            ctlr: IccCtlr::new(),
            log: RefCell::new(Vec::new()),
            violations: RefCell::new(Vec::new()),
            seq: Sequencer::new(),
        }
    }

    /// Shares `seq` with other fakes.
    pub fn with_sequencer(mut self, seq: &Sequencer) -> Self {
        self.seq = seq.clone();
        self
    }

    fn record(&self, op: PhysOp) {
        self.log.borrow_mut().push((self.seq.next(), op));
    }

    fn violation(&self, what: String) {
        self.violations.borrow_mut().push(what);
    }

    fn line(&self, intid: u32) -> Option<&Line> {
        self.lines.get(intid as usize)
    }

    fn line_mut(&mut self, intid: u32) -> Option<&mut Line> {
        self.lines.get_mut(intid as usize)
    }

    /// Configures and enables `intid`.
    pub fn configure(&mut self, intid: u32, trigger: Trigger, priority: u8) {
        if let Some(l) = self.line_mut(intid) {
            l.trigger = trigger;
            l.priority = priority;
            l.enabled = true;
        }
    }

    /// Drives the device's interrupt line. For an edge-triggered interrupt a rising edge
    /// latches it pending; for a level-sensitive one the line is the pending state.
    pub fn set_line(&mut self, intid: u32, high: bool) {
        if let Some(l) = self.line_mut(intid) {
            if matches!(l.trigger, Trigger::Edge) && high && !l.line {
                l.latch = true;
            }
            l.line = high;
        }
    }

    /// One edge on an edge-triggered interrupt (line pulsed high then low).
    pub fn pulse(&mut self, intid: u32) {
        self.set_line(intid, true);
        self.set_line(intid, false);
    }

    /// The line level.
    pub fn line_level(&self, intid: u32) -> bool {
        self.line(intid).is_some_and(|l| l.line)
    }

    /// Pending (level: line high or latched; edge: latched).
    pub fn pending(&self, intid: u32) -> bool {
        self.line(intid).is_some_and(Line::pending)
    }

    /// Active.
    pub fn active(&self, intid: u32) -> bool {
        self.line(intid).is_some_and(|l| l.active)
    }

    /// The running priority: the priority of the most recent acknowledged interrupt whose
    /// priority has not been dropped, or 0x100 (idle).
    pub fn running_priority(&self) -> u16 {
        self.running.last().map_or(0x100, |&(p, _)| u16::from(p))
    }

    /// The interrupt the CPU interface would signal to the host now: enabled, pending, not
    /// active, more urgent than the running priority; lowest priority value, then lowest
    /// INTID.
    pub fn next_host_irq(&self) -> Option<u32> {
        let running = self.running_priority();
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.enabled && l.pending() && !l.active)
            .filter(|(_, l)| u16::from(l.priority) < running)
            .min_by_key(|(i, l)| (l.priority, *i))
            .map(|(i, _)| i as u32)
    }

    /// Every logged access, with sequence numbers.
    pub fn log(&self) -> Vec<(u64, PhysOp)> {
        self.log.borrow().clone()
    }

    /// Clears the log.
    pub fn clear_log(&self) {
        self.log.borrow_mut().clear();
    }

    /// Logged accesses other than the guest's HW deactivations: what the hypervisor did.
    pub fn hyp_accesses(&self) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|(_, op)| !matches!(op, PhysOp::HwDeactivate(_)))
            .count()
    }

    /// Architecture rules broken so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.borrow().clone()
    }

    /// The guest deactivated a virtual interrupt whose list register had HW = 1 and this
    /// pINTID: deactivate the physical interrupt, as the virtual CPU interface does.
    pub fn hw_deactivate(&mut self, pintid: u32) {
        self.record(PhysOp::HwDeactivate(pintid));
        match self.line_mut(pintid) {
            Some(l) if l.active => l.active = false,
            _ => self.violation(format!(
                "guest deactivated pINTID {pintid} through HW = 1 but it was not active"
            )),
        }
    }
}

impl PhysIrqState for FakePhysGic {
    fn is_pending(&self, pintid: PIntId) -> bool {
        self.record(PhysOp::ReadPending(pintid.get()));
        self.pending(pintid.get())
    }

    fn is_active(&self, pintid: PIntId) -> bool {
        self.record(PhysOp::ReadActive(pintid.get()));
        self.active(pintid.get())
    }

    fn set_active(&mut self, pintid: PIntId, active: bool) {
        self.record(PhysOp::SetActive(pintid.get(), active));
        if let Some(l) = self.line_mut(pintid.get()) {
            l.active = active;
        }
    }
}

impl HostCpuIf for FakePhysGic {
    fn ack(&mut self) -> u32 {
        let Some(intid) = self.next_host_irq() else {
            self.record(PhysOp::Ack(SPURIOUS));
            return SPURIOUS;
        };
        self.record(PhysOp::Ack(intid));
        let mut prio = 0;
        if let Some(l) = self.line_mut(intid) {
            l.active = true;
            l.latch = false;
            prio = l.priority;
        }
        self.running.push((prio, intid));
        intid
    }

    fn eoi(&mut self, intid: u32) {
        self.record(PhysOp::Eoi(intid));
        match self.running.last() {
            Some(&(_, top)) if top == intid => {
                self.running.pop();
            }
            _ => self.violation(format!("EOIR {intid} is not the running interrupt")),
        }
        if !self.ctlr.eoimode()
            && let Some(l) = self.line_mut(intid)
        {
            l.active = false;
        }
    }

    fn deactivate(&mut self, intid: u32) {
        self.record(PhysOp::Deactivate(intid));
        if !self.ctlr.eoimode() {
            self.violation(format!("DIR {intid} with EOImode = 0"));
        }
        if let Some(l) = self.line_mut(intid) {
            l.active = false;
        }
    }

    fn ctlr(&self) -> IccCtlr {
        self.record(PhysOp::ReadCtlr);
        self.ctlr
    }

    fn set_ctlr(&mut self, value: IccCtlr) {
        self.record(PhysOp::WriteCtlr(value.into_bits()));
        self.ctlr = value;
    }
}
