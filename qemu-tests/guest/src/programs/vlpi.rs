// SPDX-License-Identifier: MIT OR Apache-2.0
//! Program VLPI: the receiver of the vLPI scenarios (`hyp/src/scenarios/vlpi.rs`).
//!
//! The guest turns its virtual CPU interface on (`crate::irq`), counts every interrupt it
//! takes per vINTID, and tells the hyp where those counters are (HELLO): with no stage 2 the
//! hyp reads them in place. Then it carries out the hyp's orders, each answered by the hyp
//! after the guest reports the previous one done (NEXT):
//!
//! - WAIT: spin with IRQs unmasked, with no exit, until N interrupts arrived, then watch a while
//!   longer for extras. A vLPI the GICv4 redistributor makes pending for the resident vPE is
//!   taken here directly at EL1 (ICV_IAR1_EL1 returns its vINTID);
//! - WFI: execute WFI until N interrupts arrived. With nothing pending it traps (HCR_EL2.TWI):
//!   the hyp deschedules the vPE with its doorbell armed and sleeps until the doorbell rings;
//! - EDU: program the `edu` PCI device directly (its BAR is identity mapped): raise its
//!   interrupt, whose MSI the ITS turns into a vLPI, take it, acknowledge the device.

use core::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use core::time::Duration;

use common::hvc_abi::{HVC_VLPI_STEP, vlpi_order, vlpi_step};
use common::{check, println, sysreg, timer};

use crate::irq;

/// vINTIDs counted individually: 8192 .. 8192 + RECV_LEN.
const RECV_LEN: usize = 2048;
/// The first counted vINTID.
const VLPI_BASE: u32 = 8192;
/// How long the guest waits for interrupts it was told to expect.
const WAIT_TIMEOUT: Duration = Duration::from_secs(1);
/// WFIs one order may execute (each one is a trap to the hyp).
const MAX_WFI: u32 = 10_000;

static RECV: [AtomicU16; RECV_LEN] = [const { AtomicU16::new(0) }; RECV_LEN];
static TOTAL: AtomicU64 = AtomicU64::new(0);
/// Interrupts outside the counters.
static OTHER: AtomicU64 = AtomicU64::new(0);
/// Waits that ended without what was expected.
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// The IRQ hook (between acknowledge and EOI).
fn on_irq(intid: u32) {
    match RECV.get(intid.wrapping_sub(VLPI_BASE) as usize) {
        Some(c) => {
            c.fetch_add(1, Ordering::AcqRel);
        }
        None => {
            OTHER.fetch_add(1, Ordering::AcqRel);
            println!("guest: interrupt {intid} outside the counted vLPIs");
        }
    }
    TOTAL.fetch_add(1, Ordering::AcqRel);
}

fn total() -> u64 {
    TOTAL.load(Ordering::Acquire)
}

fn anomalies() -> u64 {
    OTHER.load(Ordering::Acquire) + TIMEOUTS.load(Ordering::Acquire)
}

/// `HVC_VLPI_STEP` (x1 = step, x2, x3): returns the hyp's order (x0, x1, x2).
fn step(step: u64, a: u64, b: u64) -> [u64; 3] {
    let (what, x1, x2): (u64, u64, u64);
    // SAFETY: the hyp handles the call and returns here with only x0-x2 changed (it restores
    // the full context otherwise); it reads the counters `HELLO` points at, never writes.
    unsafe {
        core::arch::asm!(
            "hvc #0",
            inout("x0") HVC_VLPI_STEP => what,
            inout("x1") step => x1,
            inout("x2") a => x2,
            in("x3") b,
            options(nostack),
        );
    }
    [what, x1, x2]
}

/// Spins until `target` interrupts arrived in all (counting a timeout otherwise).
fn wait_total(target: u64) -> bool {
    let ok = timer::poll_until(WAIT_TIMEOUT, || total() >= target);
    if !ok {
        TIMEOUTS.fetch_add(1, Ordering::AcqRel);
        println!("guest: {} interrupts, expected {target}", total());
    }
    ok
}

/// Carries out the hyp's orders until STOP.
pub fn vlpi() {
    irq::init();
    irq::set_hook(Some(&(on_irq as fn(u32))));
    let mut order = step(vlpi_step::HELLO, RECV.as_ptr() as u64, RECV_LEN as u64);
    sysreg::unmask_irqs();
    loop {
        let [what, a, b] = order;
        match what {
            vlpi_order::STOP => break,
            vlpi_order::WAIT => {
                wait_total(a);
                timer::delay(Duration::from_micros(b));
            }
            vlpi_order::WFI => {
                let mut n = 0;
                while total() < a && n < MAX_WFI {
                    // SAFETY: `wfi` only waits; with nothing pending it traps to the hyp, which
                    // resumes after it.
                    unsafe { core::arch::asm!("wfi", options(nostack)) };
                    n += 1;
                }
                if total() < a {
                    TIMEOUTS.fetch_add(1, Ordering::AcqRel);
                }
            }
            vlpi_order::EDU => {
                for _ in 0..b {
                    let t = total();
                    crate::devices::edu_irq(a as usize, true, 1);
                    wait_total(t + 1);
                    crate::devices::edu_irq(a as usize, false, 1);
                }
            }
            _ => {
                check!(false, "unknown order {what}");
                break;
            }
        }
        order = step(vlpi_step::NEXT, total(), anomalies());
    }
    sysreg::mask_irqs();
    irq::set_hook(None);
    check!(
        OTHER.load(Ordering::Acquire) == 0,
        "{} interrupts outside the counted vLPIs",
        OTHER.load(Ordering::Acquire)
    );
    check!(
        TIMEOUTS.load(Ordering::Acquire) == 0,
        "{} waits timed out",
        TIMEOUTS.load(Ordering::Acquire)
    );
    println!("guest: {} vLPIs taken at EL1", total());
}
