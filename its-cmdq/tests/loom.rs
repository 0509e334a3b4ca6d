// SPDX-License-Identifier: MIT OR Apache-2.0
//! Model check of the command queue's multi-CPU posting with loom: two CPUs each post two
//! batches and wait for their tickets, in every interleaving loom explores (preemption bound
//! 2), going round the ring's end. The ITS consumes at most two commands per step: on its own
//! thread (a few steps, at any point between the CPUs' operations, as a real ITS reads the
//! ring whenever it likes) and whenever a CPU reads GITS_CREADR (so every wait ends); batches
//! complete in pieces and the second batches wait for room.
//!
//! Only built with `--cfg loom` (the queue's lock is then loom's):
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p its-cmdq --test loom --release
//! ```
//!
//! Checked in every interleaving: every command reaches the ITS exactly once, each CPU's in
//! order, each batch contiguous (never interleaved with another CPU's); `wait` returns only
//! once the ITS has consumed the whole batch; no call fails.
#![cfg(loom)]
// The ITS thread reads the ring's memory as the ITS does, through its physical address; the
// allocator hands out host memory. Every block says whose promise it relies on.
#![allow(unsafe_code)]

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::AtomicU64 as StdAtomicU64;
use core::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};

use its_cmdq::{CmdQueue, QueueConfig};
use its_core::addr::PhysAddr;
use its_core::caps::ItsCaps;
use its_core::cmd::{Command, ItsVersion};
use its_core::ids::{DeviceId, EventId, RdBase};
use its_core::mmio::ItsRegisters;
use its_core::platform::{AllocError, CacheMaint, Clock, DmaAlloc, DmaRegion, Instant};
use its_core::regs::{GitsBaser, GitsCbaser, GitsCreadr, GitsCtlr, GitsCwriter, GitsTyper};

/// QEMU's GITS_TYPER.
const TYPER: u64 = 0x0000_003f_0001_efb3;
/// 4 slots, 3 usable (a ring this small exists only under `--cfg loom`).
const RING: usize = 4 * 32;
/// Per CPU, the batch sizes it posts: 6 commands in all, so the ring wraps, and batches wait
/// for room.
const BATCHES: [[u32; 2]; 2] = [[2, 1], [2, 1]];
/// Slots the ITS consumes at most per step.
const CHUNK: usize = 2;
/// Steps the ITS takes on its own thread.
const ITS_STEPS: usize = 3;
/// Interleavings explored.
static RUNS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Host memory as DMA memory (physical = host address); no cache; a clock that only counts,
/// so the bounded waits never time out inside the model, and yields between polls.
#[derive(Clone)]
struct Plat {
    now: Arc<StdAtomicU64Wrapper>,
    /// Counts the CPU's writes of command slots: a loom operation after each, so the ITS
    /// thread may run between two of them (between writing a slot and publishing it, say),
    /// which plain memory writes alone would not give loom a chance to schedule.
    writes: Arc<AtomicUsize>,
}

/// A clock counter loom does not branch on (a plain std atomic).
struct StdAtomicU64Wrapper(StdAtomicU64);

// SAFETY: fresh zeroed host memory of the layout, exclusively the caller's until `dealloc`,
// which frees exactly that; physical address = host address, aligned as asked.
unsafe impl DmaAlloc for Plat {
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError> {
        let err = AllocError {
            size: layout.size(),
            align: layout.align(),
        };
        if layout.size() == 0 {
            return Err(err);
        }
        // SAFETY: not zero-sized (checked above).
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let va = NonNull::new(p).ok_or(err)?;
        Ok(DmaRegion {
            va,
            pa: PhysAddr::new(p as u64),
            layout,
        })
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        // SAFETY: our caller promised the region came from `alloc_zeroed` above and is freed
        // once.
        unsafe { std::alloc::dealloc(region.va.as_ptr(), region.layout) };
    }

    fn virt_to_phys(&self, va: NonNull<u8>) -> Option<PhysAddr> {
        Some(PhysAddr::new(va.as_ptr() as u64))
    }

    fn note_write(&self, pa: PhysAddr, _: usize) {
        // Once per 32-byte slot, after its last doubleword: enough for the ITS to see a
        // slot published before it was written, and few enough interleavings.
        if pa.get() % 32 == 24 {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl CacheMaint for Plat {
    fn clean_to_poc(&self, _: NonNull<u8>, _: usize) {}
    fn clean_inval_to_poc(&self, _: NonNull<u8>, _: usize) {}
    fn dsb_ishst(&self) {}
    fn dsb_sy(&self) {}
}

impl Clock for Plat {
    fn now(&self) -> Instant {
        Instant(
            self.now
                .0
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed),
        )
    }
    fn relax(&self) {
        loom::thread::yield_now();
    }
}

/// The ITS's registers: GITS_CWRITER and GITS_CREADR are loom atomics, so every access is an
/// interleaving point; the ITS consumes at most [`CHUNK`] commands at each GITS_CREADR read
/// and logs (cpu, seq) of each.
struct Shared {
    cbaser: AtomicUsize,
    cwriter: AtomicUsize,
    creadr: AtomicUsize,
    log: std::sync::Mutex<Vec<(u32, u32)>>,
    /// One ITS: its steps (from its own thread or a GITS_CREADR read) do not overlap.
    its: loom::sync::Mutex<()>,
    /// The platform's count of the CPUs' memory writes ([`Plat::writes`]): the ITS reads it
    /// at each step, which makes its steps depend on those writes, so loom (which skips
    /// reorderings of independent operations) also tries each step between two of them.
    writes: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Regs(Arc<Shared>);

impl Regs {
    /// The ITS's step: up to [`CHUNK`] commands from GITS_CREADR towards GITS_CWRITER.
    fn step(&self) {
        let regs = &self.0;
        let _one = regs.its.lock().unwrap();
        let _ = regs.writes.load(Ordering::Acquire);
        let w = regs.cwriter.load(Ordering::Acquire);
        let mut at = regs.creadr.load(Ordering::Relaxed);
        let base = (regs.cbaser.load(Ordering::Acquire) as u64 & 0x000f_ffff_ffff_f000) as usize;
        let mut n = 0;
        while at != w && n < CHUNK {
            let mut dw = [0u64; 4];
            for (i, d) in dw.iter_mut().enumerate() {
                let p = (base + at + 8 * i) as *const u64;
                // SAFETY: `base` is the ring the queue allocated (physical = host address) and
                // `at` an offset inside it; the queue keeps it alive while it has a ring; the
                // slot was written before GITS_CWRITER moved past it (Release/Acquire).
                *d = unsafe { p.read_volatile() };
            }
            let c = Command::decode(&dw, ItsVersion::V4_0).expect("a well-formed command");
            let Command::Int { device, event } = c else {
                panic!("unexpected command {c}");
            };
            regs.log.lock().unwrap().push((device.get(), event.get()));
            at = (at + 32) % RING;
            n += 1;
        }
        regs.creadr.store(at, Ordering::Release);
    }
}

impl ItsRegisters for Regs {
    fn ctlr(&self) -> GitsCtlr {
        GitsCtlr::new().with_quiescent(true)
    }
    fn set_ctlr(&mut self, _: GitsCtlr) {}
    fn iidr(&self) -> u32 {
        0x43b
    }
    fn typer(&self) -> GitsTyper {
        GitsTyper::from(TYPER)
    }
    fn cbaser(&self) -> GitsCbaser {
        GitsCbaser::from(self.0.cbaser.load(Ordering::Acquire) as u64)
    }
    fn set_cbaser(&mut self, v: GitsCbaser) {
        self.0
            .cbaser
            .store(u64::from(v) as usize, Ordering::Release);
        self.0.creadr.store(0, Ordering::Release);
    }
    fn cwriter(&self) -> GitsCwriter {
        GitsCwriter::at(self.0.cwriter.load(Ordering::Acquire))
    }
    fn set_cwriter(&mut self, v: GitsCwriter) {
        // Release: the slots written before are visible to the ITS that sees this value.
        self.0.cwriter.store(v.byte_offset(), Ordering::Release);
    }
    fn creadr(&self) -> GitsCreadr {
        self.step();
        GitsCreadr::at(self.0.creadr.load(Ordering::Acquire), false)
    }
    fn baser(&self, _: usize) -> GitsBaser {
        GitsBaser::new()
    }
    fn set_baser(&mut self, _: usize, _: GitsBaser) {}
}

/// The command CPU `cpu` posts as its `seq`-th.
fn cmd(cpu: u32, seq: u32) -> Command {
    Command::Int {
        device: DeviceId::new(cpu),
        event: EventId::new(seq),
    }
}

#[test]
fn two_cpus_post_and_wait_round_the_ring() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let writes = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            cbaser: AtomicUsize::new(0),
            cwriter: AtomicUsize::new(0),
            creadr: AtomicUsize::new(0),
            log: std::sync::Mutex::new(Vec::new()),
            its: loom::sync::Mutex::new(()),
            writes: writes.clone(),
        });
        RUNS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        let plat = Plat {
            now: Arc::new(StdAtomicU64Wrapper(StdAtomicU64::new(0))),
            writes,
        };
        let cfg = QueueConfig {
            bytes: RING,
            full_timeout: Duration::from_secs(3600),
            completion_timeout: Duration::from_secs(3600),
        };
        let caps = ItsCaps::from_typer(GitsTyper::from(TYPER));
        let q = Arc::new(
            CmdQueue::new(Regs(shared.clone()), plat, caps, cfg, RdBase::default()).unwrap(),
        );
        let total: u32 = BATCHES.iter().flatten().sum();
        let its = {
            let r = Regs(shared.clone());
            loom::thread::spawn(move || {
                for _ in 0..ITS_STEPS {
                    r.step();
                }
            })
        };
        let cpus: Vec<_> = (0..2u32)
            .map(|cpu| {
                let (q, log) = (q.clone(), shared.clone());
                loom::thread::spawn(move || {
                    let mut seq = 0;
                    for &n in &BATCHES[cpu as usize] {
                        let first = seq;
                        let t = q.post_with(n as usize, |i| cmd(cpu, first + i as u32), &[]);
                        let t = t.expect("posted").ticket;
                        q.wait(t).expect("completed");
                        seq += n;
                        // The whole batch was consumed before `wait` returned.
                        let mine = log
                            .log
                            .lock()
                            .unwrap()
                            .iter()
                            .filter(|e| e.0 == cpu)
                            .count();
                        assert!(
                            mine >= seq as usize,
                            "CPU {cpu}: wait returned at {mine} < {seq}"
                        );
                    }
                })
            })
            .collect();
        for c in cpus {
            c.join().unwrap();
        }
        its.join().unwrap();
        let log = shared.log.lock().unwrap().clone();
        assert_eq!(log.len(), total as usize);
        for cpu in 0..2u32 {
            let mine: Vec<u32> = log.iter().filter(|e| e.0 == cpu).map(|e| e.1).collect();
            let want: Vec<u32> = (0..BATCHES[cpu as usize].iter().sum()).collect();
            assert_eq!(mine, want, "CPU {cpu}: each command once, in order");
            // Each batch is contiguous in the ITS's stream.
            let mut first = 0;
            for &n in &BATCHES[cpu as usize] {
                let at = log.iter().position(|&e| e == (cpu, first)).unwrap();
                assert!(
                    (0..n).all(|i| log[at + i as usize] == (cpu, first + i)),
                    "CPU {cpu}'s batch at {first} interleaved"
                );
                first += n;
            }
        }
    });
    let runs = RUNS.load(core::sync::atomic::Ordering::Relaxed);
    println!("loom: {runs} interleavings explored");
    assert!(runs > 100, "too few interleavings to mean anything: {runs}");
}
