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
//! A crate's tests describe their entry points as [`Case`]s and how to make a fresh one as
//! [`Cases`]; what "records equal the GIC's" and "reports it dead" mean is theirs to say.

use core::fmt::Debug;

use its_cmdq::ItsError;
use its_core::cmd::Command;
use its_model::{AllocFaults, Delay, GicModel};

use crate::rig::{P, Rig};

/// One call under test, on a fresh rig (`'r`), with the state it works on prepared.
pub trait Case<'r> {
    /// The error the call returns.
    type Error: Debug;

    /// What the call is, for messages.
    fn name(&self) -> &'static str;
    /// The rig the call runs on. Faults are injected in ITS 0.
    fn rig(&self) -> &'r Rig;
    /// The call.
    fn call(&mut self) -> Result<(), Self::Error>;
    /// What a failed call left undone, once the fault is cleared: the call again, or the part
    /// of it that did not happen.
    fn retry(&mut self) -> Result<(), Self::Error>;
    /// Panics unless the state is the one a successful call leads to (and still works).
    fn goal(&self);
    /// Panics unless the driver's records equal the GIC's.
    fn consistent(&self, what: &str);
    /// After the ITS died during the call: panics unless every later call that needs the ITS
    /// reports it dead (sending nothing; checked by the sweep).
    fn all_dead(&mut self, what: &str);
    /// After the ITS died during the call: panics unless the driver recorded nothing the ITS
    /// did not confirm (compared with the state the case was prepared with).
    fn confirmed_only(&self, what: &str) {
        let _ = what;
    }
    /// Bytes a call whose ITS died keeps on purpose (the GIC may still use them), given the
    /// commands sent up to the one it died at.
    fn kept_on_timeout(&self, sent: &[Command]) -> usize {
        let _ = sent;
        0
    }
    /// Whether the call sends a command the ITS stalled on again itself, and so succeeds.
    fn heals(&self) -> bool {
        false
    }
    /// Whether a model error besides the injected stall is one the skipped `cmd` provokes
    /// (later commands of its batch naming what it should have mapped).
    fn provoked(&self, cmd: Command, message: &str) -> bool {
        let _ = (cmd, message);
        false
    }
}

/// Fresh [`Case`]s of one entry point on one GIC shape: a new rig and state for every run.
pub trait Cases {
    /// The error the call returns.
    type Error: Debug;

    /// The ITS error in `e`, if it is one.
    fn its_error(e: &Self::Error) -> Option<&ItsError>;

    /// Runs `f` on a fresh case.
    fn fresh<T>(&self, f: impl for<'r> FnOnce(&mut dyn Case<'r, Error = Self::Error>) -> T) -> T;
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
pub fn allocation_failures<C: Cases>(cases: &C) -> u64 {
    let mut name = "";
    for k in 0..MAX_ALLOCATIONS {
        let done = cases.fresh(|c| {
            name = c.name();
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
                matches!(C::its_error(&e), Some(ItsError::Alloc(_))),
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
pub fn commands<C: Cases>(cases: &C) -> Vec<Command> {
    cases.fresh(|c| {
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
/// skipped `cmd` provokes (`provoked`).
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
            Some(ItsError::Stalled { command, .. }) => {
                assert_eq!(
                    *command,
                    Some(cmd),
                    "{what}: the error names another command"
                );
                true
            }
            _ => panic!("{what}: {e:?}"),
        },
    }
}

/// Stalls the ITS at each command of the call in turn. Returns the number of stalls.
pub fn stalls<C: Cases>(cases: &C) -> u64 {
    let cmds = commands(cases);
    let mut name = "";
    for i in 0..=cmds.len() {
        let done = cases.fresh(|c| {
            name = c.name();
            let rig = c.rig();
            let m = &rig.model;
            let mem = rig.memory();
            m.stall_at(0, Some(m.counters(0).0 + i as u64));
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
            if stalled_on(res, C::its_error, cmd, c.heals(), &what) {
                mem.assert_back(rig.memory(), 0, &what);
                c.consistent(&what);
                c.retry()
                    .unwrap_or_else(|e| panic!("{what}, retried: {e:?}"));
            }
            c.consistent(&what);
            c.goal();
            only_the_injected_stall(m, &what, |e| c.provoked(cmd, e));
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
/// every later call that needs the ITS. Returns the number of deaths.
pub fn deaths<C: Cases>(cases: &C) -> u64 {
    let cmds = commands(cases);
    for (i, cmd) in cmds.iter().enumerate() {
        cases.fresh(|c| {
            let rig = c.rig();
            let m = &rig.model;
            let what = format!("{} (dead at {i}: {cmd})", c.name());
            let mem = rig.memory();
            m.die_at(0, Some(m.counters(0).0 + i as u64));
            let e = c.call().expect_err(&what);
            assert!(
                matches!(C::its_error(&e), Some(ItsError::Timeout { .. })),
                "{what}: {e:?}"
            );
            assert!(rig.its().is_dead(), "{what}: not given up");
            mem.assert_back(rig.memory(), c.kept_on_timeout(&cmds[..=i]), &what);
            m.assert_no_errors();
            c.confirmed_only(&what);
            let writes = m.counters(0).1;
            c.all_dead(&what);
            assert_eq!(m.counters(0).1, writes, "{what}: a command was written");
            let e = c.retry();
            assert!(
                matches!(e.as_ref().map_err(C::its_error), Err(Some(ItsError::Dead))),
                "{what}: retried: {e:?}"
            );
        });
    }
    cmds.len() as u64
}

/// A slow ITS, GITS_CREADR moving only after each of `within` polls: the call succeeds as
/// without faults. With `beyond` polls, past the deadline: a timeout, and the ITS given up.
pub fn slow_its<C: Cases>(cases: &C, within: &[u32], beyond: Option<u32>) {
    for &polls in within {
        cases.fresh(|c| {
            let rig = c.rig();
            rig.model.set_delay(0, Delay::AfterPolls(polls));
            c.call()
                .unwrap_or_else(|e| panic!("{} ({polls} polls): {e:?}", c.name()));
            c.consistent(c.name());
            c.goal();
            rig.model.assert_no_errors();
        });
    }
    if let Some(polls) = beyond {
        cases.fresh(|c| {
            let rig = c.rig();
            rig.model.set_delay(0, Delay::AfterPolls(polls));
            let e = c.call().expect_err(c.name());
            assert!(
                matches!(C::its_error(&e), Some(ItsError::Timeout { .. })),
                "{} ({polls} polls): {e:?}",
                c.name()
            );
            assert!(rig.its().is_dead(), "{}", c.name());
        });
    }
}
