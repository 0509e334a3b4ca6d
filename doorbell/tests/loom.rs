// SPDX-License-Identifier: MIT OR Apache-2.0
//! Model-checked: the doorbell state protocol (`src/protocol.rs`) under every interleaving,
//! and every outcome its atomic orderings allow, that `loom` explores.
//!
//! Run with (a separate target directory keeps the normal build's cache):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p doorbell --test loom --release
//! ```
//!
//! Each model runs the protocol's own code (`doorbell::protocol`, public only under
//! `--cfg loom`) on loom's atomics. The GIC's side of one doorbell is two cells: the property
//! byte, written with a relaxed byte store as `Lpis::configure` does, and what the GIC last
//! read of it (`cache`), read again by every invalidation. A thread stands for a CPU: the
//! interrupt path ([`protocol::ring`]) on one or two CPUs, the vCPU's CPU making the calls
//! the GICv4 layer makes under the vPE's lock.
//!
//! What is checked once every call has returned:
//! - the records never say enabled over a disabled property byte (the lost wake-up of
//!   finding 1), nor enabled with no invalidation owed over a GIC that read "disabled";
//! - records that say disabled over an enabled byte owe an invalidation (the next settle
//!   writes the byte again);
//! - no lost wake-up: a waiter armed before the doorbell was enabled is woken, or the
//!   doorbell is armed in the property table and in the GIC, so the next vLPI wakes it;
//! - no update of the target CPU, the vPE field or a waiter's attachment is lost.
#![cfg(loom)]

use std::sync::atomic::AtomicUsize;

use doorbell::protocol::{self, ENABLED, NEEDS_INV, VPE_MASK, Word};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use loom::thread;

/// How the models read the protocol's words.
///
/// (The protocol writes a word with a plain store only where no read-modify-write of it can
/// run at the same time, which also keeps clear of loom 0.7's issue #254, a store slipping
/// between the read and the write of a concurrent read-modify-write.)
///
/// loom 0.7 misses some schedules when a thread reads a location and then writes it: the
/// write is only checked against the last access, its own read, so an earlier read by another
/// thread is never moved after it (a two-thread "load; store" against "load" runs once). Every
/// model therefore runs twice: with the words' loads as loads (acquire: loom may also
/// have them read older values), and with them as read-modify-writes that store the value
/// back (`fetch_add(0)`), which loom orders against every other access, so every schedule of
/// the words is explored; the property byte and the GIC's copy stay plain relaxed and
/// release accesses in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loads {
    Plain,
    Rmw,
}

/// A loom atomic as the protocol's word.
struct W(AtomicU32, Loads);

impl Word for W {
    fn load(&self) -> u32 {
        match self.1 {
            Loads::Plain => self.0.load(Ordering::Acquire),
            Loads::Rmw => self.0.fetch_add(0, Ordering::AcqRel),
        }
    }
    fn store(&self, v: u32) {
        self.0.store(v, Ordering::Release);
    }
    fn update(&self, mut f: impl FnMut(u32) -> u32) -> u32 {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |x| Some(f(x)))
            .unwrap_or_else(|x| x)
    }
}

/// vPE 4's field in the flags (ID + 1).
const VPE: u32 = 5;

/// One doorbell: its state words, and the GIC's side.
struct Db {
    flags: W,
    cpu: W,
    rings: W,
    generation: W,
    /// The property byte's enable bit.
    byte: AtomicU8,
    /// The enable bit the GIC read at the last invalidation.
    cache: AtomicU8,
    /// Invalidations the next one of which fails (`set_enabled`'s error path).
    fail_invs: AtomicU32,
}

impl Db {
    /// Allocated to vPE 4 on CPU 0, enabled or not, in step with the GIC.
    fn new(enabled: bool, loads: Loads) -> Arc<Self> {
        let on = u8::from(enabled);
        let w = |v| W(AtomicU32::new(v), loads);
        Arc::new(Self {
            flags: w(VPE | if enabled { ENABLED } else { 0 }),
            cpu: w(0),
            rings: w(0),
            generation: w(0),
            byte: AtomicU8::new(on),
            cache: AtomicU8::new(on),
            fail_invs: AtomicU32::new(0),
        })
    }

    fn write(&self, on: bool) -> Result<(), ()> {
        self.byte.store(u8::from(on), Ordering::Relaxed);
        Ok(())
    }

    /// INV (or INVDB, or GICR_INVLPIR) then SYNC: the GIC reads the byte again. It sees at
    /// least this CPU's last write of it.
    fn invalidate(&self) -> Result<(), ()> {
        if self
            .fail_invs
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(());
        }
        let b = self.byte.load(Ordering::Relaxed);
        self.cache.store(b, Ordering::Release);
        Ok(())
    }

    /// The interrupt path on some CPU.
    fn handle(&self) -> Option<protocol::Rang> {
        protocol::ring(&self.flags, &self.rings, || {
            self.byte.store(0, Ordering::Relaxed);
        })
    }

    fn set_enabled(&self, on: bool) -> Result<(), ()> {
        protocol::set_enabled(&self.flags, on, |b| self.write(b), || self.invalidate())
    }

    /// `make_resident`'s settle and clear.
    fn settle(&self, clear: bool) -> Result<bool, ()> {
        protocol::settle(
            &self.flags,
            clear,
            |b| self.write(b),
            |inv, _clear| if inv { self.invalidate() } else { Ok(()) },
        )
    }

    /// `make_non_resident(.., true)`: the doorbell is enabled if the records say disabled.
    fn arm_doorbell(&self) {
        if self.flags.load() & ENABLED == 0 {
            self.set_enabled(true).unwrap();
        }
    }

    fn enabled(&self) -> bool {
        self.flags.load() & ENABLED != 0
    }

    /// The invariants that hold once every call has returned.
    fn check(&self) {
        let f = self.flags.load();
        let byte = self.byte.load(Ordering::Relaxed) != 0;
        let cache = self.cache.load(Ordering::Relaxed) != 0;
        assert_eq!(f & VPE_MASK, VPE, "the vPE field was lost: {f:#x}");
        if f & ENABLED != 0 {
            assert!(
                byte,
                "the records say enabled, the property byte disabled: {f:#x}"
            );
            if f & NEEDS_INV == 0 {
                assert!(
                    cache,
                    "the records say enabled with nothing owed, the GIC read disabled: {f:#x}"
                );
            }
        } else if byte {
            assert!(
                f & NEEDS_INV != 0,
                "the records say disabled over an enabled byte and owe nothing: {f:#x}"
            );
        }
    }

    /// Armed for the next vLPI: the byte and what the GIC read both enable it.
    fn can_ring(&self) -> bool {
        self.byte.load(Ordering::Relaxed) != 0 && self.cache.load(Ordering::Relaxed) != 0
    }
}

/// Runs `f` under loom with each way of reading the words ([`Loads`]), with a bound on
/// preemptions when given, and reports how many executions loom explored and how long it
/// took.
fn model(name: &str, preemptions: Option<usize>, f: impl Fn(Loads) + Sync + Send + 'static) {
    let f = std::sync::Arc::new(f);
    for loads in [Loads::Plain, Loads::Rmw] {
        let runs = std::sync::Arc::new(AtomicUsize::new(0));
        let start = std::time::Instant::now();
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = preemptions;
        }
        let (f, n) = (f.clone(), runs.clone());
        b.check(move || {
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            f(loads);
        });
        println!(
            "loom {name} ({loads:?} loads): {} executions in {:.2?}",
            runs.load(std::sync::atomic::Ordering::Relaxed),
            start.elapsed()
        );
    }
}

/// Finding 1: a stale doorbell is handled on the old CPU of a vPE while the vPE blocks on
/// another: arm the waiter, enable the doorbell if the records say disabled.
#[test]
fn a_stale_doorbell_racing_the_block_of_its_vcpu() {
    model("stale doorbell vs block", None, |loads| {
        let db = Db::new(true, loads);
        let a = protocol::attach(&db.flags, &db.rings, &db.generation).unwrap();
        let h = {
            let db = db.clone();
            thread::spawn(move || db.handle())
        };
        let armed = protocol::arm(&db.rings, &db.generation, a.generation).unwrap();
        db.arm_doorbell();
        assert!(h.join().unwrap().is_some_and(|r| r.disabled));
        db.check();
        assert!(
            protocol::woken(&db.rings, &db.generation, armed) || db.can_ring(),
            "lost wake-up: not woken, and the doorbell cannot ring"
        );
    });
}

/// The vPE comes back (`make_resident`: settle and clear) and blocks again while a handler of
/// its doorbell runs late on another CPU.
#[test]
fn a_late_handler_racing_settle_then_block() {
    model("late handler vs settle + block", None, |loads| {
        let db = Db::new(true, loads);
        let a = protocol::attach(&db.flags, &db.rings, &db.generation).unwrap();
        let h = {
            let db = db.clone();
            thread::spawn(move || db.handle())
        };
        db.settle(true).unwrap();
        let armed = protocol::arm(&db.rings, &db.generation, a.generation).unwrap();
        db.arm_doorbell();
        h.join().unwrap();
        db.check();
        assert!(protocol::woken(&db.rings, &db.generation, armed) || db.can_ring());
    });
}

/// A disable and an enable (preemption, then a block) while one handler runs.
#[test]
fn disable_then_enable_racing_a_handler() {
    model("disable + enable vs handler", None, |loads| {
        let db = Db::new(true, loads);
        let h = {
            let db = db.clone();
            thread::spawn(move || db.handle())
        };
        db.set_enabled(false).unwrap();
        db.set_enabled(true).unwrap();
        h.join().unwrap();
        db.check();
        // The handler's disable either came last (disabled in the records) or was redone.
        assert!(!db.enabled() || db.can_ring());
    });
}

/// Two handlers (the doorbell taken on the CPU it left and on the new one) while the vCPU
/// blocks; then the settle of `make_resident` and another block put everything in step.
#[test]
fn two_handlers_racing_an_enable() {
    model("two handlers vs enable", Some(3), |loads| {
        let db = Db::new(true, loads);
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let db = db.clone();
                thread::spawn(move || db.handle())
            })
            .collect();
        db.arm_doorbell();
        for h in hs {
            h.join().unwrap();
        }
        db.check();
        db.settle(false).unwrap();
        db.arm_doorbell();
        db.check();
        assert!(
            db.enabled() && db.can_ring(),
            "not armed after settle + block"
        );
    });
}

/// An enable whose invalidation fails (the ITS stalls), while a handler runs: the byte is
/// put back, an invalidation is owed, and a retry arms the doorbell.
#[test]
fn a_failed_enable_racing_a_handler() {
    model("failed enable vs handler", None, |loads| {
        let db = Db::new(false, loads);
        db.set_enabled(true).unwrap();
        db.fail_invs.store(1, Ordering::Relaxed);
        let h = {
            let db = db.clone();
            thread::spawn(move || db.handle())
        };
        let r = db.set_enabled(false);
        h.join().unwrap();
        assert_eq!(r, Err(()));
        db.check();
        assert!(
            db.flags.load() & NEEDS_INV != 0,
            "the failed call owes nothing"
        );
        db.settle(false).unwrap();
        db.set_enabled(true).unwrap();
        db.check();
        assert!(db.can_ring());
    });
}

/// `move_to` and an enable (one after the other, under the vPE's lock) while a handler
/// runs: neither the CPU nor the flags lose an update.
#[test]
fn move_and_enable_racing_a_handler() {
    model("move + enable vs handler", None, |loads| {
        let db = Db::new(true, loads);
        let h = {
            let db = db.clone();
            thread::spawn(move || db.handle())
        };
        protocol::move_cpu(&db.cpu, 1);
        db.arm_doorbell();
        h.join().unwrap();
        assert_eq!(db.cpu.load(), 1, "the move was lost");
        db.check();
    });
}

/// A waiter armed before the doorbell is enabled, and a GIC that rings it as soon as it has
/// read "enabled": the ring wakes the waiter; if it did not ring yet, it still can.
#[test]
fn a_waiter_armed_before_the_enable_is_woken() {
    model("arm + enable vs ring", None, |loads| {
        let db = Db::new(false, loads);
        let a = protocol::attach(&db.flags, &db.rings, &db.generation).unwrap();
        let gic = {
            let db = db.clone();
            thread::spawn(move || {
                // A vLPI arrives: the doorbell rings if the GIC read it enabled.
                (db.cache.load(Ordering::Acquire) != 0).then(|| db.handle())
            })
        };
        let armed = protocol::arm(&db.rings, &db.generation, a.generation).unwrap();
        db.arm_doorbell();
        let rang = gic.join().unwrap().is_some();
        db.check();
        let woken = protocol::woken(&db.rings, &db.generation, armed);
        assert!(
            !rang || woken,
            "the doorbell rang after the arm: lost wake-up"
        );
        assert!(woken || db.can_ring());
    });
}

/// A waiter attached while its doorbell is freed (and rung): it is either refused, or it
/// learns that the doorbell is gone.
#[test]
fn attach_racing_free_and_ring() {
    model("attach vs free + ring", Some(2), |loads| {
        let db = Db::new(true, loads);
        let f = {
            let db = db.clone();
            thread::spawn(move || protocol::release(&db.flags, &db.generation))
        };
        let h = {
            let db = db.clone();
            thread::spawn(move || db.handle())
        };
        let a = protocol::attach(&db.flags, &db.rings, &db.generation);
        f.join().unwrap();
        h.join().unwrap();
        if let Some(a) = a {
            assert!(
                protocol::woken(&db.rings, &db.generation, a),
                "attached to a freed doorbell and still waiting: {a:?}, generation {}, rings {}, flags {:#x}",
                db.generation.load(),
                db.rings.load(),
                db.flags.load()
            );
            assert!(protocol::arm(&db.rings, &db.generation, a.generation).is_none());
        }
    });
}
