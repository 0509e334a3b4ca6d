// SPDX-License-Identifier: MIT OR Apache-2.0
//! Generic timer: the physical counter, conversions and bounded waits.
//!
//! These are the pieces the project's `Clock` trait will be implemented with. At EL1 the guest
//! reads CNTPCT_EL0 too: the hyp sets CNTHCTL_EL2.EL1PCTEN so it does not trap.

use core::time::Duration;

/// CNTPCT_EL0, after an ISB so the read is not speculated ahead of earlier instructions.
pub fn ticks() -> u64 {
    crate::sysreg::isb();
    crate::read_sysreg!(cntpct_el0)
}

/// CNTFRQ_EL0 in Hz (62.5 MHz on QEMU `virt`).
pub fn frequency() -> u64 {
    crate::read_sysreg!(cntfrq_el0).max(1)
}

/// Converts counter ticks to nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(frequency())) as u64
}

/// Converts a duration to counter ticks (rounded up).
pub fn duration_to_ticks(d: Duration) -> u64 {
    let f = u128::from(frequency());
    (d.as_nanos() * f).div_ceil(1_000_000_000) as u64
}

/// Time since the counter started (QEMU starts it at 0 at reset).
pub fn now() -> Duration {
    Duration::from_nanos(ticks_to_ns(ticks()))
}

/// A point in time to poll against.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    end: u64,
}

impl Deadline {
    /// The deadline `d` from now.
    pub fn after(d: Duration) -> Self {
        Self {
            end: ticks().saturating_add(duration_to_ticks(d)),
        }
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        ticks() >= self.end
    }
}

/// Busy-waits for `d`.
pub fn delay(d: Duration) {
    let deadline = Deadline::after(d);
    while !deadline.expired() {
        crate::sync::relax();
    }
}

/// Polls `done` until it returns true or `timeout` passes. Returns whether `done` succeeded.
pub fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Deadline::after(timeout);
    loop {
        if done() {
            return true;
        }
        if deadline.expired() {
            return done();
        }
        crate::sync::relax();
    }
}
