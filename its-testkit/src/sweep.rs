// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fault sweeps: one entry point of a driver, on a fresh rig each run, with a fault injected
//! at every place the call can meet one.
//!
//! - [`allocation_failures`]: the k-th allocation of the call fails, k = 0, 1, 2, ... until
//!   the call makes no more (a loop, so allocations added later are covered with no change);
//! - [`stalls`]: the ITS stalls (GITS_CREADR.Stalled) at each command the call sends, one
//!   index per run, until it sends no more;
//! - [`deaths`]: the ITS dies (GITS_CREADR never moves again) at each command the call sends;
//! - [`slow_its`]: GITS_CREADR moves only after N polls.
//!
//! After each fault: a typed error, no panic; DMA memory and LPIs back to what they were
//! before the call (but for second-level table pages, which belong to the tables, and memory
//! the driver keeps on purpose because the GIC may still use it); no model error but the
//! injected one; the driver's records equal the GIC's; and the driver still works: with the
//! fault cleared, the call or what it left undone succeeds, or after a timeout every later
//! call that needs the ITS reports it dead, sending nothing.
//!
//! A crate's tests say what their calls see and work on, and what "records equal the GIC's"
//! and "reports it dead" mean for them, as a [`Subject`]; each entry point is an [`Op`]; the
//! sweeps run over [`grid`]'s ops-by-GIC-shapes, and [`total`] checks what they injected.

use core::fmt::Debug;

use its_cmdq::ItsError;
use its_core::cmd::Command;
use its_model::{AllocFaults, Delay, GicModel, ModelConfig};

use crate::rig::{P, Rig};

/// The entry points of one layer under test, as the sweeps see them.
pub trait Subject: Sized {
    /// What a call sees on one run: the rig, or a layer built on it ([`crate::V4`]). Faults
    /// are injected in ITS 0 of its rig.
    type World<'r>: AsRef<Rig>;
    /// What the calls work on (devices, VMs, ...); it may borrow the world.
    type State<'r>;
    /// The records [`Subject::confirmed_only`] compares with, taken when a case is prepared.
    type Records;
    /// The calls' error.
    type Error: Debug;

    /// Runs `f` on a fresh world on a GIC of `cfg`.
    fn with_world<T>(cfg: &ModelConfig, f: impl for<'r> FnOnce(&'r Self::World<'r>) -> T) -> T;
    /// The ITS error in `e`, if it is one.
    fn its_error(e: &Self::Error) -> Option<&ItsError>;
    /// Panics unless the driver's records equal the GIC's.
    fn consistent<'r>(w: &'r Self::World<'r>, st: &Self::State<'r>, what: &str);
    /// After the ITS died during a call: panics unless every later call that needs the ITS
    /// reports it dead (that they send nothing is the sweep's to check).
    fn all_dead<'r>(w: &'r Self::World<'r>, st: &mut Self::State<'r>, what: &str);
    /// The records of `st`, for [`Subject::confirmed_only`].
    fn records(st: &Self::State<'_>) -> Self::Records;
    /// After the ITS died during a call: panics unless the driver recorded nothing the ITS did
    /// not confirm, compared with the records `before` the call. By default, no such check.
    fn confirmed_only<'r>(
        w: &'r Self::World<'r>,
        st: &Self::State<'r>,
        before: &Self::Records,
        what: &str,
    ) {
        let _ = (w, st, before, what);
    }
    /// Whether a model error besides the injected stall is one the skipped `cmd` provokes
    /// (later commands of its batch naming what it should have mapped).
    fn provoked(cmd: Command, message: &str) -> bool {
        let _ = (cmd, message);
        false
    }
}

/// An [`Op`]'s call (and retry): on the world, with the state.
pub type Call<S> = for<'r> fn(
    &'r <S as Subject>::World<'r>,
    &mut <S as Subject>::State<'r>,
) -> Result<(), <S as Subject>::Error>;

/// What an [`Op`]'s call keeps when its ITS dies, given the commands it sent.
pub type Kept<S> =
    for<'r> fn(&'r <S as Subject>::World<'r>, &<S as Subject>::State<'r>, &[Command]) -> usize;

/// One entry point under test.
pub struct Op<S: Subject> {
    /// What the call is, for messages.
    pub name: &'static str,
    /// The state before the call, built on a fresh world.
    pub prepare: for<'r> fn(&'r S::World<'r>) -> S::State<'r>,
    /// The call.
    pub call: Call<S>,
    /// What a failed call left undone, once the fault is cleared: the call again, or the part
    /// of it that did not happen.
    pub retry: Call<S>,
    /// Panics unless the state is the one a successful call leads to (and still works).
    pub goal: for<'r> fn(&'r S::World<'r>, &S::State<'r>),
    /// Whether the call sends a command the ITS stalled on again itself, and so succeeds.
    pub heals: bool,
    /// Bytes a call whose ITS died keeps on purpose (the GIC may still use them), given the
    /// commands sent up to the one it died at; `None`: nothing.
    pub kept_on_timeout: Option<Kept<S>>,
}

/// An entry point on one GIC shape: what each sweep runs, on a fresh world every run.
pub struct On<S: Subject> {
    /// The GIC's shape.
    pub cfg: ModelConfig,
    /// The entry point.
    pub op: Op<S>,
}

/// Every op of `ops()` on every GIC shape of `cfgs`.
pub fn grid<S: Subject>(
    cfgs: impl IntoIterator<Item = ModelConfig>,
    ops: fn() -> Vec<Op<S>>,
) -> Vec<On<S>> {
    let each = |cfg: ModelConfig| {
        ops().into_iter().map(move |op| On {
            cfg: cfg.clone(),
            op,
        })
    };
    cfgs.into_iter().flat_map(each).collect()
}

/// Runs `sweep` on each of `cases` and checks that it injected at least `at_least` faults of
/// the kind `what` in all (a sweep that reaches nothing tests nothing). Prints and returns
/// the total.
pub fn total<S: Subject>(
    cases: &[On<S>],
    sweep: fn(&On<S>) -> u64,
    what: &str,
    at_least: u64,
) -> u64 {
    let n = cases.iter().map(sweep).sum();
    assert!(
        n >= at_least,
        "{n} {what} injected, expected {at_least} or more"
    );
    println!("{what} injected: {n}");
    n
}

/// One run: the op, its world, its state as prepared and then as the call left it.
struct Run<'r, 'o, S: Subject> {
    op: &'o Op<S>,
    w: &'r S::World<'r>,
    st: S::State<'r>,
    before: S::Records,
}

impl<'r, S: Subject> Run<'r, '_, S> {
    fn name(&self) -> &'static str {
        self.op.name
    }
    fn rig(&self) -> &'r Rig {
        self.w.as_ref()
    }
    fn call(&mut self) -> Result<(), S::Error> {
        (self.op.call)(self.w, &mut self.st)
    }
    fn retry(&mut self) -> Result<(), S::Error> {
        (self.op.retry)(self.w, &mut self.st)
    }
    fn goal(&self) {
        (self.op.goal)(self.w, &self.st)
    }
    fn consistent(&self, what: &str) {
        S::consistent(self.w, &self.st, what)
    }
}

/// Runs `f` on a fresh run of `on`.
fn fresh<'o, S: Subject, T>(on: &'o On<S>, f: impl for<'r> FnOnce(&mut Run<'r, 'o, S>) -> T) -> T {
    S::with_world(&on.cfg, |w| {
        let st = (on.op.prepare)(w);
        let before = S::records(&st);
        f(&mut Run {
            op: &on.op,
            w,
            st,
            before,
        })
    })
}

/// Runs `f` with the `k`-th allocation from now on `plat` failing. Returns its result and
/// whether `f` got that far (made more than `k` allocations).
pub fn with_allocation_failing<T>(plat: &P, k: u64, f: impl FnOnce() -> T) -> (T, bool) {
    let base = plat.allocations();
    plat.set_faults(AllocFaults {
        fail_at: Some(base + k),
        ..AllocFaults::default()
    });
    let out = f();
    let reached = plat.allocations() > base + k;
    plat.set_faults(AllocFaults::default());
    (out, reached)
}

/// The most allocations one call may make before a sweep gives up on it.
const MAX_ALLOCATIONS: u64 = 64;

/// Fails the k-th allocation of the call, for every k it reaches. Returns the number of
/// faults injected.
pub fn allocation_failures<S: Subject>(on: &On<S>) -> u64 {
    let name = on.op.name;
    for k in 0..MAX_ALLOCATIONS {
        let done = fresh(on, |c| {
            let rig = c.rig();
            let what = format!("{name} (allocation {k} fails)");
            let mem = rig.memory();
            let (res, reached) = with_allocation_failing(&rig.plat, k, || c.call());
            if !reached {
                res.unwrap_or_else(|e| panic!("{name}: no allocation failed, yet {e:?}"));
                c.consistent(name);
                c.goal();
                rig.model.assert_no_errors();
                return true;
            }
            let e = res.expect_err(&what);
            assert!(
                matches!(S::its_error(&e), Some(ItsError::Alloc(_))),
                "{what}: {e:?}"
            );
            mem.assert_back(rig.memory(), 0, &what);
            rig.model.assert_no_errors();
            assert!(!rig.its().is_dead(), "{what}: the ITS was given up");
            c.consistent(&what);
            c.retry()
                .unwrap_or_else(|e| panic!("{what}, retried: {e:?}"));
            c.consistent(&what);
            c.goal();
            rig.model.assert_no_errors();
            false
        });
        if done {
            return k;
        }
    }
    panic!("{name}: more than {MAX_ALLOCATIONS} allocations");
}

/// The commands the call sends on ITS 0, from a fault-free run (which must succeed, reach its
/// goal and leave no model error).
pub fn commands<S: Subject>(on: &On<S>) -> Vec<Command> {
    fresh(on, |c| {
        let m = &c.rig().model;
        let before = m.commands(0).len();
        c.call().unwrap_or_else(|e| panic!("{}: {e:?}", c.name()));
        let cmds = m.commands(0)[before..].iter().map(|&(_, c)| c).collect();
        c.consistent(c.name());
        c.goal();
        m.assert_no_errors();
        cmds
    })
}

/// Whether the model recorded an injected stall.
pub fn stall_was_injected(model: &GicModel) -> bool {
    model
        .errors()
        .iter()
        .any(|e| e.message.contains("(injected)"))
}

/// Panics unless the model recorded exactly one injected stall and nothing else but what a
/// skipped command provokes (`provoked`).
#[track_caller]
pub fn only_the_injected_stall(model: &GicModel, what: &str, provoked: impl Fn(&str) -> bool) {
    let e = model.errors();
    let injected = |m: &str| m.contains("(injected)");
    assert!(
        e.iter().filter(|e| injected(&e.message)).count() == 1
            && e.iter()
                .all(|e| injected(&e.message) || provoked(&e.message)),
        "{what}: model errors {e:?}"
    );
}

/// Checks a call's result for a stall on `cmd`: `Stalled` naming it (`its_error` finds the ITS
/// error in the call's error), or success when the command was a SYNC or VSYNC (what it
/// synchronised did happen) or the call `heals`. Returns whether it was an error.
#[track_caller]
pub fn stalled_on<E: Debug>(
    res: Result<(), E>,
    its_error: fn(&E) -> Option<&ItsError>,
    cmd: Command,
    seq: u64,
    heals: bool,
    what: &str,
) -> bool {
    match res {
        Ok(()) => {
            assert!(
                heals || matches!(cmd, Command::Sync { .. } | Command::Vsync { .. }),
                "{what}: the skipped {cmd} was not reported"
            );
            false
        }
        Err(e) => match its_error(&e) {
            Some(&ItsError::Stalled {
                seq: got, opcode, ..
            }) => {
                assert_eq!(
                    (got, opcode),
                    (seq, cmd.opcode()),
                    "{what}: the error names another command"
                );
                true
            }
            _ => panic!("{what}: {e:?}"),
        },
    }
}

/// Stalls the ITS at each command of the call in turn. Returns the number of stalls.
pub fn stalls<S: Subject>(on: &On<S>) -> u64 {
    let name = on.op.name;
    let cmds = commands(on);
    for i in 0..=cmds.len() {
        let done = fresh(on, |c| {
            let rig = c.rig();
            let m = &rig.model;
            let mem = rig.memory();
            let seq = m.counters(0).0 + i as u64;
            m.stall_at(0, Some(seq));
            let res = c.call();
            m.stall_at(0, None);
            if !stall_was_injected(m) {
                assert_eq!(i, cmds.len(), "{name}: fewer commands than without faults");
                res.unwrap_or_else(|e| panic!("{name}: {e:?}"));
                c.consistent(name);
                c.goal();
                return true;
            }
            let cmd = cmds[i];
            let what = format!("{name} (stall at {i}: {cmd})");
            assert!(!rig.its().is_dead(), "{what}: a stall is not a dead ITS");
            if stalled_on(res, S::its_error, cmd, seq, c.op.heals, &what) {
                mem.assert_back(rig.memory(), 0, &what);
                c.consistent(&what);
                c.retry()
                    .unwrap_or_else(|e| panic!("{what}, retried: {e:?}"));
            }
            c.consistent(&what);
            c.goal();
            only_the_injected_stall(m, &what, |e| S::provoked(cmd, e));
            false
        });
        if done {
            return i as u64;
        }
    }
    panic!("{name}: the ITS stalled past the end of the call");
}

/// The ITS dies at each command of the call in turn: a timeout, the driver gives the ITS up,
/// keeps what the GIC may still use, records nothing the ITS did not confirm, and refuses
/// every later call that needs the ITS, sending nothing. Returns the number of deaths.
pub fn deaths<S: Subject>(on: &On<S>) -> u64 {
    let cmds = commands(on);
    for (i, cmd) in cmds.iter().enumerate() {
        fresh(on, |c| {
            let rig = c.rig();
            let m = &rig.model;
            let what = format!("{} (dead at {i}: {cmd})", c.name());
            let mem = rig.memory();
            m.die_at(0, Some(m.counters(0).0 + i as u64));
            let e = c.call().expect_err(&what);
            assert!(
                matches!(S::its_error(&e), Some(ItsError::Timeout { .. })),
                "{what}: {e:?}"
            );
            assert!(rig.its().is_dead(), "{what}: not given up");
            let kept =
                c.op.kept_on_timeout
                    .map_or(0, |k| k(c.w, &c.st, &cmds[..=i]));
            mem.assert_back(rig.memory(), kept, &what);
            m.assert_no_errors();
            S::confirmed_only(c.w, &c.st, &c.before, &what);
            let writes = m.counters(0).1;
            S::all_dead(c.w, &mut c.st, &what);
            assert_eq!(m.counters(0).1, writes, "{what}: a command was written");
            let e = c.retry();
            assert!(
                matches!(e.as_ref().map_err(S::its_error), Err(Some(ItsError::Dead))),
                "{what}: retried: {e:?}"
            );
        });
    }
    cmds.len() as u64
}

/// A slow ITS, GITS_CREADR moving only after each of `within` polls: the call succeeds as
/// without faults. With `beyond` polls, past the deadline: a timeout, and the ITS given up.
pub fn slow_its<S: Subject>(on: &On<S>, within: &[u32], beyond: Option<u32>) {
    let name = on.op.name;
    for &polls in within {
        fresh(on, |c| {
            let rig = c.rig();
            rig.model.set_delay(0, Delay::AfterPolls(polls));
            c.call()
                .unwrap_or_else(|e| panic!("{name} ({polls} polls): {e:?}"));
            c.consistent(name);
            c.goal();
            rig.model.assert_no_errors();
        });
    }
    if let Some(polls) = beyond {
        fresh(on, |c| {
            let rig = c.rig();
            rig.model.set_delay(0, Delay::AfterPolls(polls));
            let e = c.call().expect_err(name);
            assert!(
                matches!(S::its_error(&e), Some(ItsError::Timeout { .. })),
                "{name} ({polls} polls): {e:?}"
            );
            assert!(rig.its().is_dead(), "{name}");
        });
    }
}
