// SPDX-License-Identifier: MIT OR Apache-2.0
//! Stress on four CPUs at once: physical LPIs mapped, moved, unmapped and raised through the
//! shared ITS, and 64 vPEs rescheduled across the CPUs while vLPIs arrive.
//!
//! Both scenarios run the same worker on CPUs 0 to 3 at the same time ([`on_every_cpu`]), each
//! with its own deterministic pseudo-random sequence ([`Rng`]), and keep a ledger of what must
//! be delivered where. Every wait is bounded. A worker runs with IRQs masked and opens short
//! IRQ windows ([`irq_window`]) between operations, so the driver is never re-entered from its
//! own interrupt path on a CPU that holds one of its locks; a counter per CPU tells the others
//! whether that CPU is inside a window (odd) or not (even).
//!
//! - `stress_smp_map`: 10 000 operations in all. Each CPU owns one device of 16 events: map
//!   (a fresh LPI on a random CPU's collection), unmap (DISCARD, LPI freed), MOVI to another
//!   CPU's collection, or INT. The ledger counts, per CPU per LPI, the deliveries each INT owes;
//!   before touching an event with an INT outstanding, its owner waits for that delivery, and
//!   every delivery must be on the CPU the ledger names, exactly once.
//! - `stress_vpe_switch`: 64 vPEs (4 VMs of 16), two vLPIs each. Each CPU claims a free vPE,
//!   makes it resident on itself (VMOVP when it moved), lets the guest vCPU run it for a slice
//!   if no other CPU has the guest, makes it non-resident (doorbell armed 7 times in 8), and
//!   takes whatever its VPT holds; meanwhile every CPU issues INTs to random vLPIs. A vLPI has
//!   at most one INT outstanding, so each INT must be observed exactly once: taken by the guest
//!   or found in the VPT (then CLEARed). Doorbells are accounted per away period.
//!
//! The guest image is single-instance, so one CPU at a time runs the guest vCPU (whichever
//! holds it when its vPE is resident); the other CPUs' resident vPEs keep their vLPIs pending
//! in the VPT, where QEMU keeps them in memory (the scenario reads them there, as the physical
//! scenarios read LPI pending tables).
//!
//! # Doorbells that come late
//! `Doorbells::handle` disables a doorbell in the property table and leaves the invalidation
//! to the next residency, so a vLPI that made it pending again before the disable was seen is
//! still delivered once, disabled (the crate counts these as `late`). Per away period the
//! scenario allows one ring and, after it, late ones ([`v4::late`] tells them apart).
//!
//! # A doorbell handled while its vPE moves
//! This scenario found a race in `doorbell` (about one failing run in twenty on a loaded
//! host, "no doorbell taken"): `Doorbells::handle` (the interrupt path, on the CPU the
//! doorbell targets) and `Doorbells::move_to` (called by `make_resident` on the CPU the vPE
//! moves to) both read-modify-wrote the doorbell's state word with no common lock. When the
//! handler ran between `move_to`'s read and its write, `move_to` put ENABLED back (and dropped
//! NEEDS_INV) while the property byte said disabled, so the next armed `make_non_resident`
//! skipped `set_enabled` and the doorbell stayed silent: a lost wake-up. The flags are now
//! updated with a compare-and-swap and `move_to` writes only the CPU half of the word
//! (`doorbell/tests/doorbells.rs`, `concurrent_handle_and_move_lose_no_update`, checks it on
//! the host). The scenario still reports the doorbell's state if a wake-up is ever lost.

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use common::platform::MAX_CPUS;
use common::sync::SpinLock;
use common::sysreg::{mask_irqs, unmask_irqs};
use common::{check, println, report, require, timer};
use its_cmdq::{LpiRange, QueueStats};
use its_core::ids::{LPI_BASE, Lpi};
use its_core::mmio::ItsRegisters;
use vpe_sched::VlpiConfig;

use super::Ctx;
use super::support::v4::{
    cfg, create_vm, deschedule, destroy_vm, finish_guest, order, schedule, start_guest,
    unmap_device, unmap_vlpis,
};
use super::support::{MemMark, map_device, queue_delta, up_default};
use crate::gic::{self, COUNTED_LPIS, Gic, HwDevice};
use crate::smp::{self, SmpError};
use crate::v4::guest::{GuestLink, Order};
use crate::v4::{self, HwVm, V4};

/// CPUs both scenarios run on.
const CPUS: usize = 4;
/// How long an IRQ window stays open.
const WINDOW: Duration = Duration::from_micros(2);
/// How long a worker waits for a delivery or a doorbell it is owed.
const OWED_TIMEOUT: Duration = Duration::from_secs(2);
/// How long every CPU together may take for one scenario's work.
const WORK_TIMEOUT: Duration = Duration::from_secs(100);
/// How long a worker that finished waits for the others (taking their interrupts meanwhile).
const BARRIER_TIMEOUT: Duration = Duration::from_secs(60);
/// Metric names of per-CPU counts.
const PER_CPU: [&str; CPUS] = ["lpis_cpu0", "lpis_cpu1", "lpis_cpu2", "lpis_cpu3"];

// ---------------------------------------------------------------------------------------------
// Every CPU at once.

/// The closure every CPU runs, type-erased: the function that calls it (a fn pointer stored as
/// such) and where it is.
#[derive(Clone, Copy)]
struct Task {
    call: unsafe fn(*const (), usize),
    data: *const (),
}

// SAFETY: `data` is a `&F` with `F: Sync` (see `on_every_cpu`), which may be used from any CPU.
unsafe impl Send for Task {}

/// The posted task, and a bit per secondary CPU still inside it.
static TASK: SpinLock<Option<Task>> = SpinLock::new(None);
static TASK_LEFT: AtomicUsize = AtomicUsize::new(0);

/// Calls the closure of type `F` at `data` for `cpu`.
///
/// # Safety
/// `data` points to a live `F`.
unsafe fn call_task<F: Fn(usize) + Sync>(data: *const (), cpu: usize) {
    // SAFETY: our caller promised `data` is a live `F`; `F: Sync`, so a shared reference may
    // be used on this CPU while others use theirs.
    let f = unsafe { &*data.cast::<F>() };
    f(cpu);
}

/// What `smp::run_on` runs on a secondary CPU: its share of the posted closure.
fn task_trampoline(cpu: usize) -> u64 {
    let task = *TASK.lock();
    if let Some(Task { call, data }) = task {
        // SAFETY: `on_every_cpu` stored `call_task::<F>` with `data` for that same `F`, and does
        // not return (so the closure on its stack stays alive) until this CPU's TASK_LEFT bit
        // is cleared below.
        unsafe { call(data, cpu) };
    }
    TASK_LEFT.fetch_and(!(1 << cpu), Ordering::AcqRel);
    0
}

/// Runs `f(cpu)` on CPUs `0..n` at the same time (this CPU is 0; the others must be online)
/// and waits, up to `timeout`, for every one of them to return.
///
/// # Panics
/// If a CPU is still inside `f` after `timeout`: `f` lives on this CPU's stack, which must not
/// be reused while another CPU may still use it.
fn on_every_cpu<F: Fn(usize) + Sync>(n: usize, timeout: Duration, f: &F) -> Result<(), SmpError> {
    if n == 0 || n > MAX_CPUS || (1..n).any(|c| !smp::is_online(c)) {
        return Err(SmpError::BadCpu);
    }
    let others = ((1usize << n) - 1) & !1;
    if TASK_LEFT
        .compare_exchange(0, others, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(SmpError::BadCpu);
    }
    *TASK.lock() = Some(Task {
        call: call_task::<F>,
        data: ptr::from_ref(f).cast(),
    });
    let mut posted = Ok(());
    for cpu in 1..n {
        match smp::run_on(cpu, task_trampoline, Duration::ZERO) {
            // A timeout only means it is running.
            Ok(_) | Err(SmpError::Timeout) => {}
            Err(e) => {
                TASK_LEFT.fetch_and(!(1 << cpu), Ordering::AcqRel);
                posted = Err(e);
            }
        }
    }
    f(0);
    if !timer::poll_until(timeout, || TASK_LEFT.load(Ordering::Acquire) == 0) {
        panic!("a CPU did not finish its share in {timeout:?}");
    }
    *TASK.lock() = None;
    posted
}

/// Starts CPUs 1 to 3.
fn start_cpus() -> bool {
    (1..CPUS).all(|cpu| {
        let r = smp::start(cpu, Duration::from_secs(1));
        check!(r.is_ok(), "cpu{cpu} did not start: {r:?}")
    })
}

/// Per CPU: bumped when an IRQ window opens (odd) and when it closes (even). The guest slices
/// of `stress_vpe_switch` count as windows (physical IRQs are taken while the guest runs).
static WINDOWS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Marks this CPU as able to take IRQs until [`close_window`].
fn open_window(cpu: usize) {
    WINDOWS[cpu].fetch_add(1, Ordering::AcqRel);
}

/// Ends what [`open_window`] began: every IRQ taken meanwhile has been handled.
fn close_window(cpu: usize) {
    WINDOWS[cpu].fetch_add(1, Ordering::AcqRel);
}

/// Unmasks IRQs on this CPU for [`WINDOW`], so pending LPIs (and doorbells) are taken.
fn irq_window(cpu: usize) {
    open_window(cpu);
    unmask_irqs();
    timer::delay(WINDOW);
    mask_irqs();
    close_window(cpu);
}

/// Waits until CPU `cpu` is outside any IRQ window it was in when called, so every IRQ it took
/// so far has been handled; `me` opens windows of its own meanwhile.
fn wait_window_closed(me: usize, cpu: usize) -> bool {
    let w = WINDOWS[cpu].load(Ordering::Acquire);
    w.is_multiple_of(2)
        || timer::poll_until(OWED_TIMEOUT, || {
            irq_window(me);
            WINDOWS[cpu].load(Ordering::Acquire) != w
        })
}

/// Marks this CPU's work done, then takes IRQs until every CPU's is (their LPIs and doorbells
/// may target this one).
fn barrier(cpu: usize, done: &AtomicUsize) -> bool {
    done.fetch_add(1, Ordering::AcqRel);
    let all = timer::poll_until(BARRIER_TIMEOUT, || {
        irq_window(cpu);
        done.load(Ordering::Acquire) >= CPUS
    });
    check!(
        all,
        "cpu{cpu}: the other CPUs did not finish in {BARRIER_TIMEOUT:?}"
    )
}

/// xorshift64*: a deterministic sequence per CPU.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 32) % n as u64) as usize
    }
}

/// Checks that the command queue is drained, not stalled, and the ITS alive.
fn check_queue_drained(gic: &Gic) -> bool {
    let (cw, cr) = gic.with_its_regs(|r| (r.cwriter(), r.creadr()));
    check!(
        cw.byte_offset() == cr.byte_offset() && !cr.stalled() && !gic.its().is_dead(),
        "queue not drained: CWRITER {:#x}, CREADR {:#x} (stalled {}), ITS dead {}",
        cw.byte_offset(),
        cr.byte_offset(),
        cr.stalled(),
        gic.its().is_dead()
    )
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

// ---------------------------------------------------------------------------------------------
// stress_smp_map

/// Operations of `stress_smp_map`, all CPUs together.
const MAP_OPS: usize = 10_000;
/// Events of each CPU's device.
const MAP_EVENTS: usize = 16;
/// DeviceID of CPU 0's device (CPU n has this + n).
const MAP_DEVICE_BASE: u32 = 0x60;

/// Per CPU per LPI (INTID 8192 + index): how many times the LPI must have been taken there.
static LEDGER: [[AtomicU32; COUNTED_LPIS]; CPUS] =
    [const { [const { AtomicU32::new(0) }; COUNTED_LPIS] }; CPUS];

/// What one CPU did in `stress_smp_map`.
#[derive(Clone, Copy, Debug, Default)]
struct MapTally {
    ops: u64,
    maps: u64,
    unmaps: u64,
    moves: u64,
    ints: u64,
    /// Unmaps after the measured operations, to leave nothing mapped.
    cleanup: u64,
    /// Commands the calls above post (SYNCs included), and their batches.
    commands: u64,
    batches: u64,
}

/// One event of a CPU's device.
#[derive(Clone, Copy, Debug, Default)]
struct MapEvent {
    lpi: Option<Lpi>,
    cpu: usize,
    /// An INT whose delivery is still owed.
    owed: bool,
}

/// What the workers of `stress_smp_map` share.
struct MapRun<'g> {
    gic: &'g Gic,
    devs: [SpinLock<Option<HwDevice>>; CPUS],
    tally: [SpinLock<MapTally>; CPUS],
    done: AtomicUsize,
}

fn ledger(cpu: usize, lpi: Lpi) -> u32 {
    let i = (lpi.get() - LPI_BASE) as usize;
    LEDGER[cpu][i].load(Ordering::Acquire)
}

/// Waits (opening IRQ windows) until `lpi` has been taken on `target` as many times as the
/// ledger says, then checks it was taken exactly that often there and on every other CPU.
fn wait_delivered(me: usize, target: usize, lpi: Lpi) -> bool {
    let want = ledger(target, lpi);
    timer::poll_until(OWED_TIMEOUT, || {
        irq_window(me);
        gic::taken(target, lpi) >= want
    });
    let got = gic::taken(target, lpi);
    let mut ok = check!(
        got == want,
        "cpu{me}: LPI {} taken {got} times on cpu{target}, its collection; the ledger says \
         {want} (waited up to {} s)",
        lpi.get(),
        OWED_TIMEOUT.as_secs()
    );
    for other in (0..CPUS).filter(|&c| c != target) {
        let (got, want) = (gic::taken(other, lpi), ledger(other, lpi));
        ok &= check!(
            got == want,
            "cpu{me}: LPI {} taken {got} times on cpu{other}, the ledger says {want}",
            lpi.get()
        );
    }
    ok
}

/// One CPU's share of `stress_smp_map`: `ops` operations on its own device, then the
/// deliveries it still owes, then its events unmapped.
fn map_worker(run: &MapRun<'_>, cpu: usize, ops: usize) {
    let gic = run.gic;
    let its = gic.its();
    let mut t = MapTally::default();
    let mut slot = run.devs[cpu].lock();
    let mut events = [MapEvent::default(); MAP_EVENTS];
    if let Some(dev) = slot.as_mut() {
        let mut rng = Rng::new(0x5eed_0000 + cpu as u64);
        'ops: for _ in 0..ops {
            let e = rng.below(MAP_EVENTS);
            let ev = &mut events[e];
            if ev.owed {
                let Some(lpi) = ev.lpi else { break };
                if !wait_delivered(cpu, ev.cpu, lpi) {
                    break;
                }
                ev.owed = false;
            }
            t.ops += 1;
            let ev32 = e as u32;
            match ev.lpi {
                None => {
                    let to = rng.below(CPUS);
                    match gic.map_new_lpi(dev, ev32, to) {
                        Ok(lpi) if ((lpi.get() - LPI_BASE) as usize) < COUNTED_LPIS => {
                            *ev = MapEvent {
                                lpi: Some(lpi),
                                cpu: to,
                                owed: false,
                            };
                        }
                        r => {
                            check!(false, "cpu{cpu}: mapping event {e} on cpu{to}: {r:?}");
                            break 'ops;
                        }
                    }
                    // MAPTI + SYNC, then INV + SYNC.
                    (t.maps, t.commands, t.batches) = (t.maps + 1, t.commands + 4, t.batches + 2);
                }
                Some(lpi) => match rng.below(4) {
                    0 | 1 => {
                        LEDGER[ev.cpu][(lpi.get() - LPI_BASE) as usize]
                            .fetch_add(1, Ordering::AcqRel);
                        ev.owed = true;
                        let r = its.int_event(dev, ev32);
                        if !check!(r.is_ok(), "cpu{cpu}: INT on event {e}: {r:?}") {
                            break 'ops;
                        }
                        (t.ints, t.commands, t.batches) =
                            (t.ints + 1, t.commands + 2, t.batches + 1);
                    }
                    2 => {
                        let to = (ev.cpu + 1 + rng.below(CPUS - 1)) % CPUS;
                        let r = its.move_event(dev, ev32, to);
                        if !check!(r.is_ok(), "cpu{cpu}: MOVI of event {e} to cpu{to}: {r:?}") {
                            break 'ops;
                        }
                        ev.cpu = to;
                        // MOVI, then a SYNC to each redistributor.
                        (t.moves, t.commands, t.batches) =
                            (t.moves + 1, t.commands + 3, t.batches + 1);
                    }
                    _ => {
                        if !unmap(gic, dev, cpu, e, lpi) {
                            break 'ops;
                        }
                        ev.lpi = None;
                        (t.unmaps, t.commands, t.batches) =
                            (t.unmaps + 1, t.commands + 2, t.batches + 1);
                    }
                },
            }
            irq_window(cpu);
        }
        // What is still owed, then nothing left mapped.
        for (e, ev) in events.iter_mut().enumerate() {
            let Some(lpi) = ev.lpi else { continue };
            if ev.owed && !wait_delivered(cpu, ev.cpu, lpi) {
                continue;
            }
            ev.owed = false;
            if unmap(gic, dev, cpu, e, lpi) {
                ev.lpi = None;
                (t.cleanup, t.commands, t.batches) = (t.cleanup + 1, t.commands + 2, t.batches + 1);
            }
        }
    } else {
        check!(false, "cpu{cpu}: no device");
    }
    drop(slot);
    *run.tally[cpu].lock() = t;
    barrier(cpu, &run.done);
}

/// DISCARD of event `e`, then its LPI freed.
fn unmap(gic: &Gic, dev: &mut HwDevice, cpu: usize, e: usize, lpi: Lpi) -> bool {
    let r = gic.its().unmap_event(dev, e as u32);
    check!(r.is_ok(), "cpu{cpu}: DISCARD of event {e}: {r:?}")
        && check!(
            gic.lpis()
                .free(LpiRange {
                    base: lpi,
                    count: 1
                })
                .is_ok(),
            "cpu{cpu}: LPI {} not freed",
            lpi.get()
        )
}

/// `stress_smp_map` (4 CPUs): 10 000 operations on physical LPIs through the one `Its`, 2 500
/// per CPU, all CPUs at once. CPU n owns DeviceID 0x60 + n (16 events) and runs a seeded
/// pseudo-random sequence of MAPTI (a freshly allocated LPI on a random CPU's collection, then
/// INV), DISCARD (the LPI freed), MOVI to another CPU's collection, and INT (the ledger counts
/// a delivery owed on the collection's CPU). Before touching an event with a delivery owed, its
/// owner waits for it (2 s at most). Checked: every LPI taken on each CPU exactly as often as
/// the ledger says (so none missing, none duplicated, none on the wrong CPU), no other IRQ; the
/// queue's statistics count exactly the commands and batches the calls post, one CWRITER write
/// per batch, and the queue ends drained and not stalled (the runner fails any ITS guest
/// error); every byte of DMA memory back.
pub fn stress_smp_map(_ctx: &mut Ctx) {
    let Some(gic) = up_default() else { return };
    require!(gic.cpus >= CPUS, "needs {CPUS} CPUs, have {}", gic.cpus);
    require!(start_cpus());
    let mark = MemMark::now(&gic);
    for row in &LEDGER {
        for c in row {
            c.store(0, Ordering::Relaxed);
        }
    }
    let run = MapRun {
        gic: &gic,
        devs: core::array::from_fn(|_| SpinLock::new(None)),
        tally: core::array::from_fn(|_| SpinLock::new(MapTally::default())),
        done: AtomicUsize::new(0),
    };
    for (cpu, d) in run.devs.iter().enumerate() {
        let id = MAP_DEVICE_BASE + cpu as u32;
        match gic
            .its()
            .map_device(its_core::ids::DeviceId::new(id), MAP_EVENTS as u32)
        {
            Ok(dev) => *d.lock() = Some(dev),
            Err(e) => {
                check!(false, "map_device({id:#x}): {e}");
                return;
            }
        }
    }
    gic::reset_counts();
    let s0 = gic.its().queue().stats();
    let t0 = timer::now();
    let r = on_every_cpu(CPUS, WORK_TIMEOUT, &|cpu| {
        map_worker(&run, cpu, MAP_OPS / CPUS)
    });
    let elapsed = timer::now() - t0;
    check!(r.is_ok(), "starting the workers: {r:?}");
    let s1 = gic.its().queue().stats();

    let mut sum = MapTally::default();
    for t in &run.tally {
        let t = *t.lock();
        sum.ops += t.ops;
        sum.maps += t.maps;
        sum.unmaps += t.unmaps;
        sum.moves += t.moves;
        sum.ints += t.ints;
        sum.cleanup += t.cleanup;
        sum.commands += t.commands;
        sum.batches += t.batches;
    }
    check!(
        sum.ops == MAP_OPS as u64,
        "{} operations done, {MAP_OPS} planned",
        sum.ops
    );

    // Every LPI taken exactly as the ledger says, on every CPU.
    let mut per_cpu = [0u64; CPUS];
    let mut wrong = 0;
    for (cpu, row) in LEDGER.iter().enumerate() {
        for (i, want) in row.iter().enumerate() {
            let lpi = Lpi::new(LPI_BASE + i as u32).unwrap_or(Lpi::MIN);
            let (got, want) = (gic::taken(cpu, lpi), want.load(Ordering::Acquire));
            per_cpu[cpu] += u64::from(got);
            if got != want {
                wrong += 1;
                if wrong <= 4 {
                    check!(
                        false,
                        "LPI {} taken {got} times on cpu{cpu}, the ledger says {want}",
                        lpi.get()
                    );
                }
            }
        }
    }
    check!(
        wrong == 0,
        "{wrong} (CPU, LPI) pairs differ from the ledger"
    );
    let (others, last) = gic::others();
    check!(
        others == 0,
        "{others} IRQs that are not counted LPIs (last INTID {last})"
    );
    let taken: u64 = per_cpu.iter().sum();
    check!(
        taken == sum.ints && gic::total_taken() == sum.ints,
        "{taken} LPIs taken ({} IRQs in all) for {} INTs",
        gic::total_taken(),
        sum.ints
    );

    // No command lost: the queue wrote exactly what the calls post, and the ITS read it all.
    let QueueStats {
        commands: cmds,
        batches,
        cwriter_writes: writes,
        waits,
        ..
    } = queue_delta(s0, s1);
    check!(
        cmds == sum.commands && batches == sum.batches,
        "the queue counts {cmds} commands in {batches} batches; the calls post {} in {}",
        sum.commands,
        sum.batches
    );
    check!(
        writes == batches && waits == batches,
        "{writes} CWRITER writes and {waits} completion waits for {batches} batches"
    );
    check_queue_drained(&gic);

    println!(
        "stress_smp_map: {} ops ({} MAPTI, {} DISCARD, {} MOVI, {} INT) on {CPUS} CPUs in {} \
         ms; LPIs taken per CPU {per_cpu:?}",
        sum.ops,
        sum.maps,
        sum.unmaps,
        sum.moves,
        sum.ints,
        ms(elapsed)
    );
    report::metrics(&[
        ("ops", sum.ops),
        ("maps", sum.maps),
        ("unmaps", sum.unmaps),
        ("movis", sum.moves),
        ("ints", sum.ints),
        ("commands", cmds),
        ("cwriter_writes", writes),
        ("elapsed_ms", ms(elapsed)),
        ("ops_per_s", sum.ops * 1000 / ms(elapsed).max(1)),
    ]);
    let lpis: [(&str, u64); CPUS] = core::array::from_fn(|c| (PER_CPU[c], per_cpu[c]));
    report::metrics(&lpis);

    for d in &run.devs {
        if let Some(dev) = d.lock().take() {
            check!(
                dev.mapped_events() == 0,
                "{} events left mapped",
                dev.mapped_events()
            );
            unmap_device(&gic, dev);
        }
    }
    mark.check_no_leak(&gic);
}

// ---------------------------------------------------------------------------------------------
// stress_vpe_switch

/// VMs, vPEs per VM, vPEs in all, and vLPIs per vPE of `stress_vpe_switch`.
const VMS: usize = 4;
const VPES_PER_VM: usize = 16;
const NV: usize = VMS * VPES_PER_VM;
const EV: usize = 2;
/// Reschedules per CPU.
const SWITCH_ITERS: usize = 500;
/// INTs each CPU tries per reschedule.
const INTS_PER_ITER: usize = 3;
/// How long the guest runs a resident vPE when it gets the guest.
const SLICE: Duration = Duration::from_micros(100);
/// DeviceID of VM 0's device (VM j has this + j).
const SWITCH_DEVICE_BASE: u32 = 0x80;

/// Per vLPI (vPE, k): an INT whose observation is owed.
static OWED: [[AtomicBool; EV]; NV] = [const { [const { AtomicBool::new(false) }; EV] }; NV];
/// Per vLPI: INTs issued, vLPIs the guest took, vLPIs found in the VPT.
static SENT: [[AtomicU32; EV]; NV] = [const { [const { AtomicU32::new(0) }; EV] }; NV];
static BY_GUEST: [[AtomicU32; EV]; NV] = [const { [const { AtomicU32::new(0) }; EV] }; NV];
static BY_VPT: [[AtomicU32; EV]; NV] = [const { [const { AtomicU32::new(0) }; EV] }; NV];
/// Per vLPI: the guest's counter when last read.
static SEEN: [[AtomicU32; EV]; NV] = [const { [const { AtomicU32::new(0) }; EV] }; NV];
/// Per vPE: claimed by a CPU (only the claimer changes its residency or reads its VPT).
static CLAIMED: [AtomicBool; NV] = [const { AtomicBool::new(false) }; NV];
/// Per vPE, about its current away period: doorbell armed, doorbells handled for it (and late
/// ones) when it began, vLPIs taken from its VPT right after it began.
static ARMED: [AtomicBool; NV] = [const { AtomicBool::new(false) }; NV];
static RANG_AT_EXIT: [AtomicU32; NV] = [const { AtomicU32::new(0) }; NV];
static LATE_AT_EXIT: [AtomicU32; NV] = [const { AtomicU32::new(0) }; NV];
static AT_EXIT: [AtomicU32; NV] = [const { AtomicU32::new(0) }; NV];
/// The guest vCPU, which one CPU at a time may run ([`GUEST_BUSY`] held).
static GUEST: SpinLock<Option<GuestLink>> = SpinLock::new(None);
static GUEST_BUSY: AtomicBool = AtomicBool::new(false);
/// The guest's vLPI total when last read.
static GUEST_TOTAL: AtomicU64 = AtomicU64::new(0);
/// The VMs (64 vPEs' state is too big for a stack frame).
static SWITCH_VMS: SpinLock<[Option<HwVm>; VMS]> = SpinLock::new([const { None }; VMS]);

/// What one CPU did in `stress_vpe_switch`.
#[derive(Clone, Copy, Debug, Default)]
struct SwitchTally {
    reschedules: u64,
    vmovps: u64,
    ints: u64,
    /// INTs not issued because the vLPI still had one outstanding.
    ints_busy: u64,
    slices: u64,
    /// vLPIs left in the VPT for the residency to deliver.
    kept: u64,
    /// Away periods with vLPIs that arrived after the vPE left, doorbell armed.
    doorbells_owed: u64,
    /// Away periods whose doorbell was cleared (or had not rung) when the vPE came back.
    doorbells_moot: u64,
    /// Doorbells handled while already disabled (see [`v4::late`]).
    doorbells_late: u64,
}

/// What the workers of `stress_vpe_switch` share.
struct SwitchRun<'a, 'g> {
    v: &'a V4<'g>,
    vms: [&'a HwVm; VMS],
    devs: [&'a HwDevice; VMS],
    tally: [SpinLock<SwitchTally>; CPUS],
    done: AtomicUsize,
}

/// A vPE's doorbell as the driver and the GIC see it.
#[derive(Clone, Copy, Debug, Default)]
struct DoorbellState {
    lpi: u32,
    affinity: usize,
    driver_enabled: bool,
    property: u8,
    pending: [bool; CPUS],
    taken: [u32; CPUS],
}

impl core::fmt::Display for DoorbellState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "doorbell LPI {}: VTE on cpu{}, enabled for the driver {}, property byte {:#x} \
             (enabled {}), pending per CPU {:?}, taken per CPU {:?}",
            self.lpi,
            self.affinity,
            self.driver_enabled,
            self.property,
            self.property & 1 != 0,
            self.pending,
            self.taken
        )
    }
}

/// How a vLPI was observed.
#[derive(Clone, Copy, Debug)]
enum Via {
    Guest,
    Vpt,
}

/// The vINTID of vLPI `k` of vPE `g` (distinct across VMs, so the guest's counters tell every
/// vPE apart).
fn vintid(g: usize, k: usize) -> u32 {
    8192 + (g * EV + k) as u32
}

impl SwitchRun<'_, '_> {
    /// VM and index of vPE `g`.
    fn vpe(&self, g: usize) -> (&HwVm, usize) {
        (self.vms[g / VPES_PER_VM], g % VPES_PER_VM)
    }

    /// Device and EventID of vLPI `k` of vPE `g`.
    fn event(&self, g: usize, k: usize) -> (&HwDevice, u32) {
        (
            self.devs[g / VPES_PER_VM],
            ((g % VPES_PER_VM) * EV + k) as u32,
        )
    }

    fn vpe_id(&self, g: usize) -> Option<its_core::ids::VpeId> {
        let (vm, i) = self.vpe(g);
        vm.vpe(i).ok().map(|p| p.id())
    }

    /// Doorbells handled for vPE `g`, and how many of them late (see [`v4::late`]).
    fn rang(&self, g: usize) -> u32 {
        self.vpe_id(g).map_or(0, v4::rang)
    }

    fn late(&self, g: usize) -> u32 {
        self.vpe_id(g).map_or(0, v4::late)
    }

    /// What the driver and the GIC say about vPE `g`'s doorbell, for failure messages.
    fn doorbell_state(&self, g: usize) -> DoorbellState {
        let (vm, i) = self.vpe(g);
        let Ok(vpe) = vm.vpe(i) else {
            return DoorbellState::default();
        };
        let db = vpe.doorbell();
        DoorbellState {
            lpi: db.get(),
            affinity: vpe.affinity(),
            driver_enabled: self.v.dbs.is_enabled(db),
            property: self.v.gic.lpis().property(db).unwrap_or(0xff),
            pending: core::array::from_fn(|c| self.v.gic.lpi_pending_in_table(c, db) == Some(true)),
            taken: core::array::from_fn(|c| gic::taken(c, db)),
        }
    }

    /// Records one observation of vLPI `k` of vPE `g`: there must be an INT owed for it.
    fn observe(&self, cpu: usize, g: usize, k: usize, via: Via) -> bool {
        let owed = OWED[g][k].swap(false, Ordering::AcqRel);
        let counter = match via {
            Via::Guest => &BY_GUEST[g][k],
            Via::Vpt => &BY_VPT[g][k],
        };
        counter.fetch_add(1, Ordering::AcqRel);
        check!(
            owed,
            "cpu{cpu}: vINTID {} of vPE {g} observed ({via:?}) with no INT outstanding: \
             duplicated (sent {}, taken by the guest {}, found in the VPT {})",
            vintid(g, k),
            SENT[g][k].load(Ordering::Acquire),
            BY_GUEST[g][k].load(Ordering::Acquire),
            BY_VPT[g][k].load(Ordering::Acquire)
        )
    }

    /// Takes every pending vLPI out of vPE `g`'s VPT (non-resident, claimed by this CPU):
    /// CLEAR, then the observation recorded. Returns how many.
    fn collect(&self, cpu: usize, g: usize) -> u32 {
        let (vm, i) = self.vpe(g);
        let Ok(vpe) = vm.vpe(i) else { return 0 };
        let mut n = 0;
        for k in 0..EV {
            if !vpe.vpt_pending(vintid(g, k)) {
                continue;
            }
            let (dev, event) = self.event(g, k);
            let r = self.v.gic.its().clear_event(dev, event);
            check!(r.is_ok(), "cpu{cpu}: CLEAR of vPE {g}'s vLPI {k}: {r:?}");
            self.observe(cpu, g, k, Via::Vpt);
            n += 1;
        }
        n
    }

    /// Issues INT for vLPI `k` of vPE `g` unless it has one outstanding already.
    fn inject(&self, cpu: usize, g: usize, k: usize, t: &mut SwitchTally) {
        if OWED[g][k]
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            t.ints_busy += 1;
            return;
        }
        SENT[g][k].fetch_add(1, Ordering::AcqRel);
        let (dev, event) = self.event(g, k);
        let r = self.v.gic.its().int_event(dev, event);
        if check!(r.is_ok(), "cpu{cpu}: INT for vPE {g}'s vLPI {k}: {r:?}") {
            t.ints += 1;
        } else {
            SENT[g][k].fetch_sub(1, Ordering::AcqRel);
            OWED[g][k].store(false, Ordering::Release);
        }
    }

    /// Claims a free vPE (it is non-resident), or `None` after a few tries.
    fn claim(&self, rng: &mut Rng) -> Option<usize> {
        (0..16).find_map(|_| {
            let g = rng.below(NV);
            CLAIMED[g]
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
                .then_some(g)
        })
    }

    /// Ends vPE `g`'s away period and makes it resident on this CPU: takes what its VPT holds
    /// (or, with `keep`, leaves it there for the residency to deliver), waits for the doorbell
    /// owed if vLPIs arrived after it left with its doorbell armed, then VMOVP (if it moved)
    /// and residency, and checks the doorbells of the period. Returns whether the vPE is
    /// resident, and whether every check passed.
    fn come_back(&self, cpu: usize, g: usize, keep: bool, t: &mut SwitchTally) -> (bool, bool) {
        let (vm, i) = self.vpe(g);
        let Ok(vpe) = vm.vpe(i) else {
            check!(false, "cpu{cpu}: vPE {g} not found in its VM");
            return (false, false);
        };
        let mut ok = true;
        let armed = ARMED[g].load(Ordering::Acquire);
        let rang0 = RANG_AT_EXIT[g].load(Ordering::Acquire);
        let late0 = LATE_AT_EXIT[g].load(Ordering::Acquire);
        let from = vpe.affinity();
        // These arrived after the VPT was emptied, so after the vPE left: with the doorbell
        // armed, the first of them rang it on `from`, which takes it in its next IRQ window.
        let late = if keep {
            let n = (0..EV).filter(|&k| vpe.vpt_pending(vintid(g, k))).count() as u32;
            t.kept += u64::from(n);
            n
        } else {
            self.collect(cpu, g)
        };
        if armed && late > 0 {
            t.doorbells_owed += 1;
            let rang = timer::poll_until(OWED_TIMEOUT, || {
                irq_window(cpu);
                self.rang(g) > rang0
            });
            ok &= check!(
                rang,
                "cpu{cpu}: vPE {g} got {late} vLPIs while away with its doorbell armed; no \
                 doorbell taken on cpu{from} within {} s ({})",
                OWED_TIMEOUT.as_secs(),
                self.doorbell_state(g)
            );
        }
        if !schedule(self.v, vm, i, cpu) {
            return (false, false);
        }
        if from != cpu {
            t.vmovps += 1;
            // A doorbell `from` took before the move is handled by the time its window closes.
            ok &= check!(
                wait_window_closed(cpu, from),
                "cpu{cpu}: cpu{from} stayed in an IRQ window"
            );
        }
        // QEMU keeps the VPT in memory also while resident: what arrived since `collect` (and
        // what it kept).
        let fresh = (0..EV).filter(|&k| vpe.vpt_pending(vintid(g, k))).count() as u32;
        let rang = self.rang(g) - rang0;
        let late_db = self.late(g) - late0;
        let rings = rang - late_db;
        let at_exit = AT_EXIT[g].load(Ordering::Acquire);
        t.doorbells_late += u64::from(late_db);
        if armed {
            // One ring at most (the handler disables it); a late one only after a ring.
            ok &= check!(
                rings <= 1 && late_db <= rings,
                "cpu{cpu}: vPE {g}'s doorbell rang {rings} times in one away period, and came \
                 {late_db} times more while disabled ({})",
                self.doorbell_state(g)
            );
            ok &= check!(
                rang == 0 || at_exit + late + fresh > 0,
                "cpu{cpu}: vPE {g}'s doorbell rang with no vLPI in its away period"
            );
            t.doorbells_moot += u64::from(rang == 0);
        } else {
            ok &= check!(
                rang == 0,
                "cpu{cpu}: vPE {g}'s doorbell rang {rang} times while not armed"
            );
        }
        (true, ok)
    }

    /// Lets the guest run resident vPE `g` for a [`SLICE`], if no other CPU has the guest,
    /// and records the vLPIs it took: only `g`'s.
    fn guest_slice(&self, cpu: usize, g: usize, t: &mut SwitchTally) {
        if GUEST_BUSY
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let mut slot = GUEST.lock();
        if let Some(link) = slot.as_mut() {
            open_window(cpu);
            link.load();
            let r = order(
                link,
                Order::Wait {
                    total: 0,
                    quiet: SLICE,
                },
            );
            link.put();
            close_window(cpu);
            t.slices += 1;
            if let Some(r) = r {
                let mut mine = 0;
                for (k, seen) in SEEN[g].iter().enumerate() {
                    let now = link.received(vintid(g, k));
                    let before = seen.swap(now, Ordering::AcqRel);
                    for _ in before..now {
                        self.observe(cpu, g, k, Via::Guest);
                    }
                    mine += u64::from(now.saturating_sub(before));
                }
                let before = GUEST_TOTAL.swap(r.total, Ordering::AcqRel);
                check!(
                    r.total - before == mine,
                    "cpu{cpu}: the guest took {} vLPIs while vPE {g} was resident, {mine} of \
                     them its own",
                    r.total - before
                );
            }
        }
        drop(slot);
        GUEST_BUSY.store(false, Ordering::Release);
    }

    /// Makes resident vPE `g` non-resident (doorbell armed or not) and takes what its VPT
    /// holds; then it is free for any CPU.
    fn leave(&self, cpu: usize, g: usize, armed: bool) -> bool {
        let (vm, i) = self.vpe(g);
        RANG_AT_EXIT[g].store(self.rang(g), Ordering::Release);
        LATE_AT_EXIT[g].store(self.late(g), Ordering::Release);
        let ok = deschedule(self.v, vm, i, armed).is_some();
        ARMED[g].store(armed, Ordering::Release);
        AT_EXIT[g].store(self.collect(cpu, g), Ordering::Release);
        ok
    }

    /// One reschedule: claim a vPE, bring it here, some INTs, maybe run the guest, away again.
    /// Returns whether every check passed.
    fn reschedule(&self, cpu: usize, rng: &mut Rng, t: &mut SwitchTally) -> bool {
        let Some(g) = self.claim(rng) else {
            return true;
        };
        let (resident, mut ok) = self.come_back(cpu, g, rng.below(2) == 0, t);
        if resident {
            t.reschedules += 1;
            let rang = self.rang(g);
            // One INT for the resident vPE, the others for any.
            self.inject(cpu, g, rng.below(EV), t);
            for _ in 1..INTS_PER_ITER {
                self.inject(cpu, rng.below(NV), rng.below(EV), t);
            }
            self.guest_slice(cpu, g, t);
            ok &= check!(
                self.rang(g) == rang,
                "cpu{cpu}: vPE {g}'s doorbell rang while it was resident"
            );
            ok &= self.leave(cpu, g, rng.below(8) != 0);
        }
        CLAIMED[g].store(false, Ordering::Release);
        ok
    }

    /// One CPU's share: [`SWITCH_ITERS`] reschedules, each followed by an IRQ window; it stops
    /// at the first failed check (the state is then suspect, and the log stays short).
    fn worker(&self, cpu: usize) {
        let mut t = SwitchTally::default();
        let mut rng = Rng::new(0x00c0_ffee + cpu as u64);
        for _ in 0..SWITCH_ITERS {
            if !self.reschedule(cpu, &mut rng, &mut t) {
                break;
            }
            irq_window(cpu);
        }
        *self.tally[cpu].lock() = t;
        barrier(cpu, &self.done);
    }

    /// The end, no INT any more: each CPU brings the vPEs whose VTE names it back once (so the
    /// doorbells they owe are checked) and sends them away unarmed, VPT emptied.
    fn drain(&self, cpu: usize) {
        let mut t = SwitchTally::default();
        for (g, claimed) in CLAIMED.iter().enumerate() {
            let (vm, i) = self.vpe(g);
            if !vm.vpe(i).is_ok_and(|p| p.affinity() == cpu) {
                continue;
            }
            if claimed.swap(true, Ordering::AcqRel) {
                check!(false, "cpu{cpu}: vPE {g} still claimed");
                continue;
            }
            if self.come_back(cpu, g, false, &mut t).0 {
                self.leave(cpu, g, false);
            }
            claimed.store(false, Ordering::Release);
        }
        let mut sum = self.tally[cpu].lock();
        sum.doorbells_owed += t.doorbells_owed;
        sum.doorbells_moot += t.doorbells_moot;
        sum.doorbells_late += t.doorbells_late;
        drop(sum);
        barrier(cpu, &self.done);
    }
}

/// `stress_vpe_switch` (4 CPUs): 64 vPEs (4 VMs of 16), two vLPIs each (doorbell in the
/// ITE), rescheduled by four CPUs at once, 500 times per CPU: a CPU claims a free vPE, empties
/// its VPT (CLEAR; half the time it leaves the vLPIs there for the residency to deliver),
/// waits for its doorbell if vLPIs arrived after it left with the doorbell armed, makes it
/// resident on itself (VMOVP first when it last ran elsewhere), issues 3 INTs (one to the
/// resident vPE, two to random vLPIs of any vPE), lets the guest vCPU run it for 100 us if no
/// other CPU has the guest, makes it non-resident (doorbell armed 7 times in 8) and empties its
/// VPT again. At the end each CPU brings back once the vPEs whose VTE names it. A vLPI gets a
/// new INT only once the last one was observed. Checked: each INT observed exactly once,
/// by the guest (only the resident vPE's vINTIDs) or in the VPT; per away period, a doorbell
/// armed rang at most once (late ones after it allowed), at least once if vLPIs came after the
/// vPE left, never with no vLPI, never while the vPE was resident or with the doorbell not
/// armed; every doorbell taken on a CPU counted; no other IRQ; the queue drained; every byte
/// of DMA memory back.
pub fn stress_vpe_switch(_ctx: &mut Ctx) {
    let Some(gic) = up_default() else { return };
    require!(gic.cpus >= CPUS, "needs {CPUS} CPUs, have {}", gic.cpus);
    require!(start_cpus());
    let r = v4::with_v4(&gic, switch_body);
    check!(r.is_ok(), "GICv4 layer: {r:?}");
}

fn switch_body(v: &V4<'_>) {
    let its = v.gic.its();
    let mark = MemMark::now(v.gic);
    let mut vms = SWITCH_VMS.lock();
    let cpus: [usize; VPES_PER_VM] = core::array::from_fn(|i| i % CPUS);
    for vm in vms.iter_mut() {
        *vm = create_vm(v, &cpus);
    }
    require!(vms.iter().all(Option::is_some));
    let vm_refs: [&HwVm; VMS] = core::array::from_fn(|j| vms[j].as_ref().expect("created"));
    let mut dev_slot: [Option<HwDevice>; VMS] = [const { None }; VMS];
    for (j, vm) in vm_refs.iter().enumerate() {
        let Some(mut dev) = map_device(
            v.gic,
            SWITCH_DEVICE_BASE + j as u32,
            (VPES_PER_VM * EV) as u32,
        ) else {
            return;
        };
        let items: [(u32, usize, VlpiConfig); VPES_PER_VM * EV] = core::array::from_fn(|e| {
            let g = j * VPES_PER_VM + e / EV;
            (e as u32, e / EV, cfg(vintid(g, e % EV), true))
        });
        let r = v.g4.map_vlpis(its, &mut dev, vm, &items);
        dev_slot[j] = Some(dev);
        require!(r.is_ok(), "map_vlpis: {r:?}");
    }
    let devs: [&HwDevice; VMS] = core::array::from_fn(|j| dev_slot[j].as_ref().expect("mapped"));
    let Some(mut link) = start_guest() else {
        return;
    };
    link.put();
    *GUEST.lock() = Some(link);
    gic::reset_counts();

    let run = SwitchRun {
        v,
        vms: vm_refs,
        devs,
        tally: core::array::from_fn(|_| SpinLock::new(SwitchTally::default())),
        done: AtomicUsize::new(0),
    };
    let t0 = timer::now();
    let r = on_every_cpu(CPUS, WORK_TIMEOUT, &|cpu| run.worker(cpu));
    let elapsed = timer::now() - t0;
    check!(r.is_ok(), "starting the workers: {r:?}");
    run.done.store(0, Ordering::Release);
    let r = on_every_cpu(CPUS, WORK_TIMEOUT, &|cpu| run.drain(cpu));
    check!(r.is_ok(), "starting the drain: {r:?}");

    let mut sum = SwitchTally::default();
    for t in &run.tally {
        let t = *t.lock();
        sum.reschedules += t.reschedules;
        sum.vmovps += t.vmovps;
        sum.ints += t.ints;
        sum.ints_busy += t.ints_busy;
        sum.slices += t.slices;
        sum.kept += t.kept;
        sum.doorbells_owed += t.doorbells_owed;
        sum.doorbells_moot += t.doorbells_moot;
        sum.doorbells_late += t.doorbells_late;
    }

    // Each INT observed exactly once.
    let (mut sent, mut by_guest, mut by_vpt, mut wrong) = (0u64, 0u64, 0u64, 0u32);
    for g in 0..NV {
        for k in 0..EV {
            let s = SENT[g][k].load(Ordering::Acquire);
            let bg = BY_GUEST[g][k].load(Ordering::Acquire);
            let bv = BY_VPT[g][k].load(Ordering::Acquire);
            (sent, by_guest, by_vpt) = (
                sent + u64::from(s),
                by_guest + u64::from(bg),
                by_vpt + u64::from(bv),
            );
            if s != bg + bv || OWED[g][k].load(Ordering::Acquire) {
                wrong += 1;
                if wrong <= 4 {
                    check!(
                        false,
                        "vPE {g} vINTID {}: {s} INTs, taken by the guest {bg} times, found in \
                         the VPT {bv} times",
                        vintid(g, k)
                    );
                }
            }
        }
    }
    check!(
        wrong == 0,
        "{wrong} vLPIs not observed exactly once per INT"
    );
    check!(
        sent == sum.ints,
        "{sent} INTs in the ledger, {} issued",
        sum.ints
    );

    // Doorbells: each one handled was taken at EL2 on some CPU, and nothing else came.
    let mut db_taken = 0u64;
    for g in 0..NV {
        let (vm, i) = run.vpe(g);
        let Ok(p) = vm.vpe(i) else { continue };
        let taken: u32 = (0..CPUS).map(|c| gic::taken(c, p.doorbell())).sum();
        db_taken += u64::from(taken);
        check!(
            taken == v4::rang(p.id()),
            "vPE {g}: doorbell taken {taken} times, handled {}",
            v4::rang(p.id())
        );
    }
    let (others, last) = gic::others();
    check!(
        others == 0 && gic::total_taken() == db_taken,
        "{} IRQs taken, {db_taken} of them doorbells; {others} not counted LPIs (last {last})",
        gic::total_taken()
    );
    check_queue_drained(v.gic);
    // The paths this is about were taken.
    check!(
        sum.vmovps > 0 && by_guest > 0 && by_vpt > 0 && sum.doorbells_owed > 0,
        "not exercised: {} VMOVPs, {by_guest} vLPIs taken by the guest, {by_vpt} found in a \
         VPT, {} doorbells owed",
        sum.vmovps,
        sum.doorbells_owed
    );

    println!(
        "stress_vpe_switch: {} reschedules of {NV} vPEs on {CPUS} CPUs ({} VMOVPs) in {} ms; {} \
         INTs: {by_guest} taken by the guest in {} slices, {by_vpt} found in a VPT; {} doorbells \
         ({} owed, {} late, {} away periods armed without one)",
        sum.reschedules,
        sum.vmovps,
        ms(elapsed),
        sum.ints,
        sum.slices,
        db_taken,
        sum.doorbells_owed,
        sum.doorbells_late,
        sum.doorbells_moot
    );
    report::metrics(&[
        ("reschedules", sum.reschedules),
        ("vmovps", sum.vmovps),
        ("ints", sum.ints),
        ("ints_busy", sum.ints_busy),
        ("vlpis_guest", by_guest),
        ("vlpis_vpt", by_vpt),
        ("guest_slices", sum.slices),
        ("vlpis_kept_for_residency", sum.kept),
        ("doorbells", db_taken),
        ("doorbells_owed", sum.doorbells_owed),
        ("doorbells_late", sum.doorbells_late),
        ("commands", its.queue().stats().commands),
        ("elapsed_ms", ms(elapsed)),
    ]);

    // Teardown: vLPIs, devices, VMs, the guest.
    let Some(mut link) = GUEST.lock().take() else {
        check!(false, "the guest is gone");
        return;
    };
    link.load();
    for (j, dev) in dev_slot.iter_mut().enumerate() {
        if let Some(mut dev) = dev.take() {
            unmap_vlpis(v, &mut dev, vm_refs[j], (VPES_PER_VM * EV) as u32);
            unmap_device(v.gic, dev);
        }
    }
    for vm in vms.iter_mut() {
        if let Some(vm) = vm.take() {
            destroy_vm(v, vm);
        }
    }
    drop(vms);
    finish_guest(link);
    mark.check_no_leak(v.gic);
}
