// SPDX-License-Identifier: MIT OR Apache-2.0
//! A fake ICH_*_EL2 register file that can play the guest.

use std::cell::RefCell;
use std::format;
use std::string::String;
use std::vec::Vec;

use super::{FakePhysGic, Sequencer};
use crate::hw::IchRegs;
use crate::ids::{ApIndex, LrIndex, MAX_APRS, MAX_LRS, SPURIOUS};
use crate::regs::{IchApr, IchEisr, IchElrsr, IchHcr, IchLr, IchMisr, IchVmcr, IchVtr, LrState};

/// One hypervisor access through [`IchRegs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IchOp {
    /// `ICH_LR<n>_EL2` read.
    ReadLr(u8),
    /// `ICH_LR<n>_EL2` written with this value.
    WriteLr(u8, u64),
    /// ICH_HCR_EL2 read.
    ReadHcr,
    /// ICH_HCR_EL2 written.
    WriteHcr(u64),
    /// ICH_VMCR_EL2 read.
    ReadVmcr,
    /// ICH_VMCR_EL2 written.
    WriteVmcr(u64),
    /// ICH_VTR_EL2 read.
    ReadVtr,
    /// ICH_ELRSR_EL2 read.
    ReadElrsr,
    /// ICH_EISR_EL2 read.
    ReadEisr,
    /// ICH_MISR_EL2 read.
    ReadMisr,
    /// `ICH_AP0R<n>_EL2` read.
    ReadAp0r(u8),
    /// `ICH_AP0R<n>_EL2` written.
    WriteAp0r(u8, u64),
    /// `ICH_AP1R<n>_EL2` read.
    ReadAp1r(u8),
    /// `ICH_AP1R<n>_EL2` written.
    WriteAp1r(u8, u64),
}

/// Why [`FakeIch::guest_run`] stopped: the guest would exit to EL2 (or idle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// The maintenance interrupt is asserted (ICH_HCR_EL2.En and ICH_MISR_EL2 non-zero).
    Maintenance,
    /// A physical interrupt is signalled to the host.
    PhysIrq,
    /// Nothing the guest can acknowledge: it would execute WFI.
    Idle,
    /// The step budget ran out.
    Budget,
}

/// A fake ICH register file with `nr_lrs` list registers, 5 priority and preemption bits
/// (list-register priorities keep their top 5 bits, as on QEMU), GICv4 capable. The guest
/// side models one vCPU's ICV_IAR1/EOIR1/DIR accesses.
#[derive(Debug)]
pub struct FakeIch {
    lrs: [IchLr; MAX_LRS],
    vtr: IchVtr,
    hcr: IchHcr,
    vmcr: IchVmcr,
    ap0r: [IchApr; MAX_APRS],
    ap1r: [IchApr; MAX_APRS],
    running: Vec<(u8, bool)>,
    delivered: Vec<u32>,
    log: RefCell<Vec<(u64, IchOp)>>,
    violations: RefCell<Vec<String>>,
    seq: Sequencer,
}

impl FakeIch {
    /// A register file with `nr_lrs` list registers (clamped to 1..=16), all registers 0.
    pub fn new(nr_lrs: usize) -> Self {
        let listregs = nr_lrs.clamp(1, MAX_LRS) as u8 - 1;
        Self {
            lrs: [IchLr::new(); MAX_LRS],
            vtr: IchVtr::new()
                .with_listregs(listregs)
                .with_prebits(4)
                .with_pribits(4),
            hcr: IchHcr::new(),
            vmcr: IchVmcr::new(),
            ap0r: [IchApr::new(); MAX_APRS],
            ap1r: [IchApr::new(); MAX_APRS],
            running: Vec::new(),
            delivered: Vec::new(),
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

    /// Sets ICH_VMCR_EL2 as the guest's ICC_PMR/IGRPEN writes would, without logging a
    /// hypervisor access.
    pub fn guest_set_vmcr(&mut self, vmcr: IchVmcr) {
        self.vmcr = vmcr;
    }

    fn nr_lrs(&self) -> usize {
        self.vtr.nr_lrs()
    }

    fn record(&self, op: IchOp) {
        self.log.borrow_mut().push((self.seq.next(), op));
    }

    fn violation(&self, what: String) {
        self.violations.borrow_mut().push(what);
    }

    fn check_lr(&self, n: LrIndex) -> bool {
        if n.get() < self.nr_lrs() {
            true
        } else {
            self.violation(format!(
                "ICH_LR{}_EL2 accessed; only {} implemented",
                n.get(),
                self.nr_lrs()
            ));
            false
        }
    }

    /// `ICH_LR<n>_EL2` without logging an access.
    pub fn lr(&self, n: usize) -> IchLr {
        self.lrs.get(n).copied().unwrap_or(IchLr::new())
    }

    /// The implemented list registers, without logging an access.
    pub fn lrs(&self) -> &[IchLr] {
        &self.lrs[..self.nr_lrs()]
    }

    /// ICH_HCR_EL2 without logging an access.
    pub fn hcr_value(&self) -> IchHcr {
        self.hcr
    }

    /// Every logged hypervisor access, with sequence numbers.
    pub fn log(&self) -> Vec<(u64, IchOp)> {
        self.log.borrow().clone()
    }

    /// Clears the log.
    pub fn clear_log(&self) {
        self.log.borrow_mut().clear();
    }

    /// Architecture rules broken so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.borrow().clone()
    }

    /// The vINTIDs the guest acknowledged through [`Self::guest_run`], in order.
    pub fn delivered(&self) -> &[u32] {
        &self.delivered
    }

    /// Takes the delivered list.
    pub fn take_delivered(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.delivered)
    }

    /// ICH_EISR_EL2 as the hardware computes it.
    pub fn eisr_value(&self) -> IchEisr {
        let mut status = 0u16;
        for (i, lr) in self.lrs().iter().enumerate() {
            if lr.signals_eoi() {
                status |= 1 << i;
            }
        }
        IchEisr::new().with_status(status)
    }

    /// ICH_ELRSR_EL2 as the hardware computes it.
    pub fn elrsr_value(&self) -> IchElrsr {
        let mut status = 0u16;
        for (i, lr) in self.lrs().iter().enumerate() {
            if lr.is_empty() {
                status |= 1 << i;
            }
        }
        IchElrsr::new().with_status(status)
    }

    /// ICH_MISR_EL2 as the hardware computes it.
    pub fn misr_value(&self) -> IchMisr {
        let lrs = self.lrs();
        let valid = lrs.iter().filter(|lr| lr.state().is_valid()).count();
        let pending = lrs.iter().any(|lr| lr.state() == LrState::Pending);
        let h = self.hcr;
        let v = self.vmcr;
        IchMisr::new()
            .with_eoi(self.eisr_value().status() != 0)
            .with_u(h.uie() && valid < 2)
            .with_lrenp(h.lrenpie() && h.eoicount() != 0)
            .with_np(h.npie() && !pending)
            .with_vgrp0e(h.vgrp0eie() && v.veng0())
            .with_vgrp0d(h.vgrp0die() && !v.veng0())
            .with_vgrp1e(h.vgrp1eie() && v.veng1())
            .with_vgrp1d(h.vgrp1die() && !v.veng1())
    }

    /// Whether the maintenance interrupt is asserted: En and some ICH_MISR_EL2 condition.
    pub fn maintenance_asserted(&self) -> bool {
        self.hcr.en() && self.misr_value().any()
    }

    fn running_priority(&self) -> u16 {
        self.running
            .iter()
            .map(|&(p, _)| u16::from(p))
            .min()
            .unwrap_or(0x100)
    }

    /// The list register the virtual CPU interface would signal: State = pending (not
    /// pending+active), group enabled, priority below VPMR and the running priority; lowest
    /// priority value, then lowest list register.
    pub fn highest_pending(&self) -> Option<usize> {
        if !self.hcr.en() {
            return None;
        }
        let running = self.running_priority();
        let vpmr = u16::from(self.vmcr.vpmr());
        self.lrs()
            .iter()
            .enumerate()
            .filter(|(_, lr)| lr.state() == LrState::Pending)
            .filter(|(_, lr)| {
                if lr.group() {
                    self.vmcr.veng1()
                } else {
                    self.vmcr.veng0()
                }
            })
            .filter(|(_, lr)| u16::from(lr.priority()) < vpmr.min(running))
            .min_by_key(|(i, lr)| (lr.priority(), *i))
            .map(|(i, _)| i)
    }

    /// The guest reads ICV_IAR1_EL1: the highest-priority pending list register becomes
    /// active and its vINTID is returned (1023 if none).
    pub fn guest_ack(&mut self) -> u32 {
        let Some(i) = self.highest_pending() else {
            return SPURIOUS;
        };
        let lr = self.lrs[i];
        self.lrs[i] = lr.with_state(LrState::Active);
        self.running.push((lr.priority(), lr.group()));
        let bit = 1u32 << (lr.priority() >> 3);
        if lr.group() {
            self.ap1r[0] = self.ap1r[0].with_p(self.ap1r[0].p() | bit);
        } else {
            self.ap0r[0] = self.ap0r[0].with_p(self.ap0r[0].p() | bit);
        }
        lr.vintid()
    }

    /// The guest writes ICV_EOIR1_EL1: drops the running priority and, unless
    /// ICH_VMCR_EL2.VEOIM, deactivates `vintid`.
    pub fn guest_eoi(&mut self, vintid: u32, phys: &mut FakePhysGic) {
        let top = self
            .running
            .iter()
            .enumerate()
            .min_by_key(|&(_, &(p, _))| p)
            .map(|(i, _)| i);
        if let Some(i) = top {
            let (prio, group1) = self.running.remove(i);
            if !self
                .running
                .iter()
                .any(|&(p, g)| p >> 3 == prio >> 3 && g == group1)
            {
                let bit = !(1u32 << (prio >> 3));
                if group1 {
                    self.ap1r[0] = self.ap1r[0].with_p(self.ap1r[0].p() & bit);
                } else {
                    self.ap0r[0] = self.ap0r[0].with_p(self.ap0r[0].p() & bit);
                }
            }
        }
        if !self.vmcr.veoim() {
            self.guest_deactivate(vintid, phys);
        }
    }

    /// The guest writes ICV_DIR_EL1 (or EOIR with VEOIM = 0): the active list register for
    /// `vintid` becomes invalid (pending+active becomes pending). With HW = 1 the physical
    /// interrupt is deactivated; with no matching list register EOIcount increments.
    pub fn guest_deactivate(&mut self, vintid: u32, phys: &mut FakePhysGic) {
        let nr = self.nr_lrs();
        let found = self.lrs[..nr]
            .iter()
            .position(|lr| lr.vintid() == vintid && lr.state().is_active());
        match found {
            Some(i) => {
                let lr = self.lrs[i];
                let next = if lr.state() == LrState::PendingActive {
                    LrState::Pending
                } else {
                    LrState::Invalid
                };
                self.lrs[i] = lr.with_state(next);
                if let Some(pintid) = lr.pintid() {
                    phys.hw_deactivate(u32::from(pintid));
                }
            }
            None => self.hcr = self.hcr.with_eoicount((self.hcr.eoicount() + 1) & 0x1F),
        }
    }

    /// Runs the guest: while no maintenance interrupt and no physical interrupt is signalled,
    /// acknowledges the highest-priority pending interrupt, calls `handler` (which may change
    /// device lines in `phys`), and EOIs it. Acknowledged vINTIDs are appended to
    /// [`Self::delivered`]. At most `budget` interrupts are taken.
    pub fn guest_run(
        &mut self,
        phys: &mut FakePhysGic,
        budget: usize,
        mut handler: impl FnMut(u32, &mut FakePhysGic),
    ) -> GuestExit {
        for _ in 0..budget {
            if self.maintenance_asserted() {
                return GuestExit::Maintenance;
            }
            if phys.next_host_irq().is_some() {
                return GuestExit::PhysIrq;
            }
            let vintid = self.guest_ack();
            if vintid == SPURIOUS {
                return GuestExit::Idle;
            }
            self.delivered.push(vintid);
            handler(vintid, phys);
            self.guest_eoi(vintid, phys);
        }
        if self.maintenance_asserted() {
            GuestExit::Maintenance
        } else if phys.next_host_irq().is_some() {
            GuestExit::PhysIrq
        } else {
            GuestExit::Budget
        }
    }
}

impl IchRegs for FakeIch {
    fn read_lr(&self, n: LrIndex) -> IchLr {
        self.record(IchOp::ReadLr(n.get() as u8));
        if self.check_lr(n) {
            self.lrs[n.get()]
        } else {
            IchLr::new()
        }
    }

    fn write_lr(&mut self, n: LrIndex, value: IchLr) {
        self.record(IchOp::WriteLr(n.get() as u8, value.into_bits()));
        if value.hw() && value.state() == LrState::PendingActive {
            self.violation(format!(
                "ICH_LR{}_EL2 written pending+active with HW = 1",
                n.get()
            ));
        }
        if self.check_lr(n) {
            // Only the top PRIbits + 1 priority bits are implemented.
            let mask = 0xFFu8 << (7 - self.vtr.pribits().min(7));
            self.lrs[n.get()] = value.with_priority(value.priority() & mask);
        }
    }

    fn hcr(&self) -> IchHcr {
        self.record(IchOp::ReadHcr);
        self.hcr
    }

    fn set_hcr(&mut self, value: IchHcr) {
        self.record(IchOp::WriteHcr(value.into_bits()));
        self.hcr = value;
    }

    fn vmcr(&self) -> IchVmcr {
        self.record(IchOp::ReadVmcr);
        self.vmcr
    }

    fn set_vmcr(&mut self, value: IchVmcr) {
        self.record(IchOp::WriteVmcr(value.into_bits()));
        self.vmcr = value;
    }

    fn vtr(&self) -> IchVtr {
        self.record(IchOp::ReadVtr);
        self.vtr
    }

    fn elrsr(&self) -> IchElrsr {
        self.record(IchOp::ReadElrsr);
        self.elrsr_value()
    }

    fn eisr(&self) -> IchEisr {
        self.record(IchOp::ReadEisr);
        self.eisr_value()
    }

    fn misr(&self) -> IchMisr {
        self.record(IchOp::ReadMisr);
        self.misr_value()
    }

    fn ap0r(&self, n: ApIndex) -> IchApr {
        self.record(IchOp::ReadAp0r(n.get() as u8));
        self.ap0r[n.get()]
    }

    fn set_ap0r(&mut self, n: ApIndex, value: IchApr) {
        self.record(IchOp::WriteAp0r(n.get() as u8, value.into_bits()));
        self.ap0r[n.get()] = value;
    }

    fn ap1r(&self, n: ApIndex) -> IchApr {
        self.record(IchOp::ReadAp1r(n.get() as u8));
        self.ap1r[n.get()]
    }

    fn set_ap1r(&mut self, n: ApIndex, value: IchApr) {
        self.record(IchOp::WriteAp1r(n.get() as u8, value.into_bits()));
        self.ap1r[n.get()] = value;
    }
}
