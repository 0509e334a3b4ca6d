// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared steps of the scenarios: bring-up with failures reported, leak checks, "exactly these
//! LPIs, each exactly once" checks, device mapping, queue-statistics deltas, and [`need!`] for
//! a step without which a scenario cannot go on. [`v4`] holds the shared steps of the GICv4
//! scenarios.

use core::time::Duration;

use common::check;
use common::palloc::PALLOC;
use its_cmdq::{QueueConfig, QueueStats};
use its_core::ids::{DeviceId, Lpi};

use crate::gic::{self, Gic, GicHandle, HwDevice};

/// Unwraps an `Option`, or records a failure (`@@T fail`, like `check!`) and returns from the
/// enclosing function or closure, which must return `()`: a scenario that cannot go on fails
/// rather than passing silently.
///
/// ```text
/// let vpe = need!(vm.vpe(0).ok(), "vPE 0 of the VM");
/// ```
macro_rules! need {
    ($opt:expr, $($fmt:tt)+) => {
        match $opt {
            Some(v) => v,
            None => {
                common::check!(false, "cannot go on without {}", format_args!($($fmt)+));
                return;
            }
        }
    };
}
pub(crate) use need;

pub mod v4;

/// How long a scenario waits for LPIs it expects.
pub const LPI_TIMEOUT: Duration = Duration::from_millis(500);

/// Brings the GIC up (see [`Gic::bring_up_with`]), recording a failure if it does not come up.
pub fn up(queue: QueueConfig) -> Option<GicHandle> {
    match Gic::bring_up_with(queue) {
        Ok(g) => Some(g),
        Err(e) => {
            check!(false, "GIC bring-up failed: {e}");
            None
        }
    }
}

/// Brings the GIC up with the default queue.
pub fn up_default() -> Option<GicHandle> {
    up(QueueConfig::default())
}

/// MAPD of DeviceID `id` with room for `events` events, recording a failure if refused.
pub fn map_device(gic: &Gic, id: u32, events: u32) -> Option<HwDevice> {
    match gic.its().map_device(DeviceId::new(id), events) {
        Ok(d) => Some(d),
        Err(e) => {
            check!(false, "map_device({id:#x}, {events}): {e}");
            None
        }
    }
}

/// What the command queue did between two snapshots of its statistics (`b` taken after `a`).
pub fn queue_delta(a: QueueStats, b: QueueStats) -> QueueStats {
    QueueStats {
        commands: b.commands - a.commands,
        cwriter_writes: b.cwriter_writes - a.cwriter_writes,
        waits: b.waits - a.waits,
        full_waits: b.full_waits - a.full_waits,
        creadr_reads: b.creadr_reads - a.creadr_reads,
        batches: b.batches - a.batches,
    }
}

/// Work for CPU1 (`smp::run_on`): waits up to [`LPI_TIMEOUT`] for one IRQ at EL2 there;
/// returns how many it took.
pub fn cpu1_take_one(_cpu: usize) -> u64 {
    let before = gic::total_taken();
    gic::take_irqs(before + 1, LPI_TIMEOUT) - before
}

/// DMA memory in use at some point, and how much of it the ITS tables held (their second-level
/// pages stay allocated once a DeviceID needs them, by design).
#[derive(Clone, Copy, Debug)]
pub struct MemMark {
    outstanding: usize,
    tables: usize,
}

fn table_bytes(gic: &Gic) -> usize {
    let its = gic.its();
    its.device_table().bytes()
        + its.collection_table().map_or(0, |t| t.bytes())
        + its.vpe_table().map_or(0, |t| t.bytes())
}

impl MemMark {
    /// Now.
    pub fn now(gic: &Gic) -> Self {
        Self {
            outstanding: PALLOC.outstanding(),
            tables: table_bytes(gic),
        }
    }

    /// Checks that everything allocated since `self` was freed, except second-level ITS table
    /// pages the driver keeps.
    pub fn check_no_leak(&self, gic: &Gic) {
        let now = PALLOC.outstanding();
        let tables = table_bytes(gic) - self.tables;
        check!(
            now == self.outstanding + tables,
            "DMA memory leaked: {} bytes outstanding before, {now} after ({tables} of them new \
             ITS table pages)",
            self.outstanding
        );
    }
}

/// Checks that `lpi` was taken on `cpu` exactly `n` times since the last reset.
pub fn check_taken(cpu: usize, lpi: Lpi, n: u32) -> bool {
    let got = gic::taken(cpu, lpi);
    check!(
        got == n,
        "LPI {} taken {got} times on cpu{cpu}, expected {n}",
        lpi.get()
    )
}

/// Checks that exactly `n` IRQs were taken in total since the last reset, none of them an
/// unexpected INTID.
pub fn check_total(n: u64) -> bool {
    let total = gic::total_taken();
    let (others, last) = gic::others();
    check!(
        total == n && others == 0,
        "{total} IRQs taken at EL2, expected {n}; {others} unexpected (last INTID {last})"
    )
}
