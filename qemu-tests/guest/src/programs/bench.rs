// SPDX-License-Identifier: MIT OR Apache-2.0
//! Program BENCH: the guest side of `bench_vlpi_latency` (`hyp/src/scenarios/bench.rs`).
//!
//! The hyp has PMU event counter 0 counting INST_RETIRED (event 0x08) at EL1 and EL2, exact
//! under QEMU's `-icount shift=0`, and left it readable at EL1 (MDCR_EL2.TPM = 0). This program
//! installs its own IRQ handler, whose first action is to read that counter, and carries out
//! the hyp's orders:
//!
//! - MSI: N times, read the counter, store an EventID to GITS_TRANSLATER (an MSI from DeviceID
//!   0, as a CPU store carries on QEMU 7.2), spin until the interrupt it causes was taken;
//! - WFI: N times, WFI until one more interrupt was taken (the hyp makes the MSI while the vCPU
//!   is blocked, and records the counter itself).
//!
//! Sample `k` of the table given at HELLO is `[counter before trigger k, counter in handler k]`;
//! the hyp reads the table in place (no stage 2) and computes the figures.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use common::exceptions::{self, Frame, VectorKind};
use common::hvc_abi::{HVC_BENCH_STEP, bench_order, bench_step};
use common::{check, read_sysreg, sysreg, timer};

use crate::irq;

/// Samples one order may take.
const SAMPLES: usize = 256;
/// How long the guest waits for an interrupt it caused.
const WAIT_TIMEOUT: Duration = Duration::from_millis(100);
/// WFIs one order may execute.
const MAX_WFI: u32 = 10_000;

/// `[before trigger, at handler entry]` per sample.
static TABLE: [[AtomicU64; 2]; SAMPLES] = [const { [const { AtomicU64::new(0) }; 2] }; SAMPLES];
/// Interrupts taken (any INTID but the special ones).
static TAKEN: AtomicU64 = AtomicU64::new(0);
/// Samples of the current order.
static SAMPLE: AtomicU64 = AtomicU64::new(0);
/// Waits that timed out and interrupts beyond the table.
static ANOMALIES: AtomicU64 = AtomicU64::new(0);

/// PMEVCNTR0_EL0: instructions retired so far (32 bits wide without PMUv3p5's long counters;
/// differences are taken modulo 2^32).
#[inline(always)]
fn counter() -> u64 {
    read_sysreg!(pmevcntr0_el0)
}

/// The IRQ handler: the counter first, then acknowledge, record, EOI.
fn on_irq(_frame: &mut Frame, _kind: VectorKind) {
    let now = counter();
    let intid = irq::ack();
    if (1020..1024).contains(&intid) {
        return;
    }
    let k = SAMPLE.load(Ordering::Acquire) as usize;
    match TABLE.get(k) {
        Some(slot) => slot[1].store(now, Ordering::Release),
        None => {
            ANOMALIES.fetch_add(1, Ordering::AcqRel);
        }
    }
    TAKEN.fetch_add(1, Ordering::AcqRel);
    irq::eoi(intid);
}

/// `HVC_BENCH_STEP` (x1 = step, x2, x3): returns the hyp's order (x0, x1, x2).
fn step(step: u64, a: u64, b: u64) -> [u64; 3] {
    let (what, x1, x2): (u64, u64, u64);
    // SAFETY: the hyp handles the call and returns here with only x0-x2 changed (it restores
    // the full context otherwise); it reads the table HELLO points at, never writes it.
    unsafe {
        core::arch::asm!(
            "hvc #0",
            inout("x0") HVC_BENCH_STEP => what,
            inout("x1") step => x1,
            inout("x2") a => x2,
            in("x3") b,
            options(nostack),
        );
    }
    [what, x1, x2]
}

fn taken() -> u64 {
    TAKEN.load(Ordering::Acquire)
}

/// Waits (spinning, IRQs unmasked) until more than `before` interrupts were taken.
fn wait_past(before: u64) {
    if !timer::poll_until(WAIT_TIMEOUT, || taken() > before) {
        ANOMALIES.fetch_add(1, Ordering::AcqRel);
    }
}

/// One MSI from this vCPU: counter, then the store, as close together as the compiler allows
/// (the `mrs` and the store are both ordered with memory, so neither moves across the other).
fn msi(event: u32) -> u64 {
    let before = counter();
    // DeviceID 0, EventID `event`, which the hyp mapped for this order.
    crate::devices::translater_write(event);
    before
}

/// Carries out the hyp's orders until STOP.
pub fn bench() {
    irq::init();
    exceptions::set_handler(
        VectorKind::IrqCurrentSpx,
        Some(&(on_irq as exceptions::Handler)),
    );
    let mut order = step(bench_step::HELLO, TABLE.as_ptr() as u64, SAMPLES as u64);
    sysreg::unmask_irqs();
    loop {
        let [what, a, b] = order;
        match what {
            bench_order::STOP => break,
            bench_order::MSI => {
                for (k, slot) in TABLE.iter().enumerate().take(b as usize) {
                    SAMPLE.store(k as u64, Ordering::Release);
                    let t = taken();
                    let before = msi(a as u32);
                    slot[0].store(before, Ordering::Release);
                    wait_past(t);
                }
            }
            bench_order::WFI => {
                for k in 0..(a as usize).min(SAMPLES) {
                    SAMPLE.store(k as u64, Ordering::Release);
                    let t = taken();
                    let mut n = 0;
                    while taken() == t && n < MAX_WFI {
                        // SAFETY: `wfi` only waits; with nothing pending it traps to the hyp,
                        // which resumes after it.
                        unsafe { core::arch::asm!("wfi", options(nostack)) };
                        n += 1;
                    }
                    if taken() == t {
                        ANOMALIES.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
            _ => {
                check!(false, "unknown order {what}");
                break;
            }
        }
        order = step(bench_step::NEXT, taken(), ANOMALIES.load(Ordering::Acquire));
    }
    sysreg::mask_irqs();
    check!(
        ANOMALIES.load(Ordering::Acquire) == 0,
        "{} waits timed out or samples overflowed",
        ANOMALIES.load(Ordering::Acquire)
    );
}
