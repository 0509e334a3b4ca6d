// SPDX-License-Identifier: MIT OR Apache-2.0
//! Host fakes of the [`crate::hw`] traits, for tests in this crate and downstream (feature
//! `fakes`).
//!
//! - [`FakeIch`]: an ICH_*_EL2 register file that can also play the guest: acknowledge the
//!   highest-priority pending list register (pending -> active), EOI and deactivate it
//!   (active -> invalid; with HW = 1 this deactivates the physical interrupt in a
//!   [`FakePhysGic`]; with HW = 0 and EOI = 1 it raises the EOI maintenance condition), and
//!   compute ICH_MISR_EL2, ICH_EISR_EL2 and ICH_ELRSR_EL2 from the list registers the way the
//!   architecture defines them.
//! - [`FakePhysGic`]: the physical GIC's view of PPIs and SPIs (line level, pending latch,
//!   active, priority, enable) with edge and level semantics (a level interrupt whose line is
//!   high is pending; if it is also inactive it is signalled to the host), and the host's CPU
//!   interface ([`crate::hw::HostCpuIf`]) with EOImode.
//! - [`FakeTimer`]: the EL1 virtual timer and the system counter, and [`FakeHostTimer`], an
//!   EL2 host timer on the same counter; `drive` feeds their outputs into a [`FakePhysGic`]
//!   as PPI 27 and PPI 26 line levels.
//!
//! Every access a hypervisor makes through a trait is logged with a sequence number from a
//! [`Sequencer`] that the fakes can share, so a test can assert the order of accesses across
//! fakes (say, "PPI 27 set active before CNTV_CTL_EL0 is written"). Architecture rules the
//! code under test breaks (a list register beyond ListRegs, a guest deactivation of an
//! inactive physical interrupt, ...) are collected as violations rather than panics.

mod gic;
mod ich;
mod timer;

use std::cell::Cell;
use std::rc::Rc;

pub use gic::{FakePhysGic, PhysOp};
pub use ich::{FakeIch, GuestExit, IchOp};
pub use timer::{FakeHostTimer, FakeTimer, TimerOp};

/// A sequence counter shared by fakes so that their logs interleave in one order.
#[derive(Clone, Debug, Default)]
pub struct Sequencer(Rc<Cell<u64>>);

impl Sequencer {
    /// A counter starting at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next sequence number.
    pub fn next(&self) -> u64 {
        let n = self.0.get();
        self.0.set(n + 1);
        n
    }
}
