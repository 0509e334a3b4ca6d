// SPDX-License-Identifier: MIT OR Apache-2.0
//! Secondary CPUs: start them and give them work.
//!
//! A started CPU initialises its GIC CPU interface, checks in, then waits (WFE) on a mailbox:
//! [`run_on`] posts a `fn(usize) -> u64` to it and waits, bounded, for the result.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use common::sync::SpinLock;
use core::time::Duration;

use common::platform::MAX_CPUS;
use common::psci::PsciError;
use common::timer::poll_until;

use crate::gic_hw;

/// Bit n set = CPU n checked in.
static ONLINE: AtomicUsize = AtomicUsize::new(0);
/// MPIDR_EL1 each CPU read when it checked in.
static MPIDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// SCTLR_EL2 each CPU read when it checked in.
static SCTLR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Work for a CPU: called with the CPU's index, returns a result for the poster.
type Work = fn(usize) -> u64;

/// Posted work, per CPU.
static WORK: [SpinLock<Option<Work>>; MAX_CPUS] = [const { SpinLock::new(None) }; MAX_CPUS];
/// Result of the last work item, and a sequence number bumped when it is stored.
static RESULT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static DONE_SEQ: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// What went wrong starting or using a CPU.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum SmpError {
    /// CPU_ON failed.
    Psci(PsciError),
    /// The CPU did not check in / finish in time.
    Timeout,
    /// Not a secondary CPU index, or the CPU is not online.
    BadCpu,
}

/// Whether CPU `cpu` has checked in.
pub fn is_online(cpu: usize) -> bool {
    cpu < MAX_CPUS && ONLINE.load(Ordering::Acquire) & (1 << cpu) != 0
}

/// MPIDR_EL1 and SCTLR_EL2 that CPU `cpu` read when it checked in.
pub fn checkin_regs(cpu: usize) -> (u64, u64) {
    (
        MPIDR[cpu].load(Ordering::Acquire),
        SCTLR[cpu].load(Ordering::Acquire),
    )
}

/// Starts CPU `cpu` with PSCI CPU_ON and waits (up to `timeout`) for it to check in.
pub fn start(cpu: usize, timeout: Duration) -> Result<(), SmpError> {
    if is_online(cpu) {
        return Ok(());
    }
    common::entry::start_secondary(cpu, secondary_main).map_err(SmpError::Psci)?;
    if poll_until(timeout, || is_online(cpu)) {
        Ok(())
    } else {
        Err(SmpError::Timeout)
    }
}

/// Runs `work(cpu)` on online CPU `cpu` and waits (up to `timeout`) for its result.
pub fn run_on(cpu: usize, work: fn(usize) -> u64, timeout: Duration) -> Result<u64, SmpError> {
    if !is_online(cpu) || cpu == common::platform::cpu_index() {
        return Err(SmpError::BadCpu);
    }
    let seq = DONE_SEQ[cpu].load(Ordering::Acquire);
    *WORK[cpu].lock() = Some(work);
    // SAFETY: `sev` only wakes CPUs waiting in WFE.
    unsafe { core::arch::asm!("dsb ish", "sev", options(nostack)) };
    if poll_until(timeout, || DONE_SEQ[cpu].load(Ordering::Acquire) != seq) {
        Ok(RESULT[cpu].load(Ordering::Acquire))
    } else {
        Err(SmpError::Timeout)
    }
}

/// Posts `work(cpu)` to online CPU `cpu` without waiting for it: for work that runs as long as
/// something else decides (a vCPU's run loop, which says itself when it is done). Refused
/// while the CPU has work posted or running.
pub fn post(cpu: usize, work: fn(usize) -> u64) -> Result<(), SmpError> {
    if !is_online(cpu) || cpu == common::platform::cpu_index() {
        return Err(SmpError::BadCpu);
    }
    let mut slot = WORK[cpu].lock();
    if slot.is_some() || BUSY.load(Ordering::Acquire) & (1 << cpu) != 0 {
        return Err(SmpError::BadCpu);
    }
    *slot = Some(work);
    drop(slot);
    // SAFETY: `sev` only wakes CPUs waiting in WFE.
    unsafe { core::arch::asm!("dsb ish", "sev", options(nostack)) };
    Ok(())
}

/// Bit n set = CPU n is running posted work.
static BUSY: AtomicUsize = AtomicUsize::new(0);

fn secondary_main(cpu: usize) -> ! {
    crate::stack::paint_current();
    if let Err(e) = gic_hw::get().init_cpu(cpu) {
        // A failure of the scenario that started this CPU (counted before it checks in).
        common::check!(false, "cpu{cpu} GIC init: {e:?}");
    }
    let mpidr = common::read_sysreg!(mpidr_el1);
    let sctlr = common::read_sysreg!(sctlr_el2);
    common::println!(
        "cpu{cpu}: up at EL{}, MPIDR={mpidr:#x}, SCTLR_EL2={sctlr:#x}",
        common::sysreg::current_el()
    );
    MPIDR[cpu].store(mpidr, Ordering::Release);
    SCTLR[cpu].store(sctlr, Ordering::Release);
    ONLINE.fetch_or(1 << cpu, Ordering::AcqRel);
    loop {
        let posted = {
            let mut slot = WORK[cpu].lock();
            let work = slot.take();
            if work.is_some() {
                BUSY.fetch_or(1 << cpu, Ordering::AcqRel);
            }
            work
        };
        let Some(work) = posted else {
            // SAFETY: `wfe` only waits for an event (`sev` from `run_on`, or any interrupt).
            unsafe { core::arch::asm!("wfe", options(nostack)) };
            continue;
        };
        RESULT[cpu].store(work(cpu), Ordering::Release);
        BUSY.fetch_and(!(1 << cpu), Ordering::AcqRel);
        DONE_SEQ[cpu].fetch_add(1, Ordering::AcqRel);
    }
}
