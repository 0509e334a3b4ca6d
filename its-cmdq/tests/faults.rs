// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fault injection at every allocation and every wait of the ITS driver's entry points.
//!
//! For each entry point that allocates or waits, on a fresh host GIC each time, the sweeps of
//! `its_testkit::sweep`: the k-th allocation of the call fails, for every k it reaches; the
//! ITS stalls at, or dies at, each command the call sends; the ITS is slow, or slower than
//! the deadline. The same again with every base register read back non-shareable.
//!
//! After each fault: a typed error, no panic; DMA memory back to its value before the call
//! (second-level table pages excepted, they belong to the table, and memory the driver keeps
//! on purpose because the GIC may still use it, which is checked too); no error in the
//! model other than the injected one; the driver's records equal the ITS's tables (DTEs,
//! ITEs); and the driver still works: once the fault is cleared, the call (or what it left
//! undone) succeeds, or, after a timeout, every later call reports the dead ITS.

use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use its_cmdq::{CmdQueue, Device, Its, ItsError, Lpis, QueueConfig, RedistInfo};
use its_core::caps::DistCaps;
use its_core::cmd::Command;
use its_core::ids::{DeviceId, Lpi};
use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_core::regs::{
    GicdTyper, GitsBaser, GitsCbaser, GitsCreadr, GitsCtlr, GitsCwriter, GitsTyper,
};
use its_model::{Delay, Event, FakePlatform, GicModel, ItsHandle, ModelConfig};
use its_testkit::rig::{dist_caps, its_config, redists};
use its_testkit::sweep::{self, On, Subject, with_allocation_failing};
use its_testkit::{Rig, Settings};

type P = FakePlatform;

/// A redistributor wait that never ends in these tests (1 ms on the fake clock).
const T: Duration = Duration::from_millis(1);

/// The GIC shapes every fault loop runs on: QEMU's, and the same with every base register
/// read back non-shareable (so a missing clean on an error path shows up as stale data).
fn configs() -> [ModelConfig; 2] {
    let mut ns = ModelConfig::qemu(2);
    ns.non_shareable = true;
    [ModelConfig::qemu(2), ns]
}

fn lpi(n: u32) -> Lpi {
    Lpi::new(n).unwrap()
}

/// What the calls under test work on.
#[derive(Default)]
struct St {
    /// Devices the driver holds (mapped).
    devs: Vec<Device<P>>,
    /// DeviceIDs unmapped by the call.
    gone: Vec<u32>,
}

impl St {
    fn dev(&mut self) -> &mut Device<P> {
        &mut self.devs[0]
    }
}

/// Whether the driver's record of an event agrees with the ITE the ITS has for it.
fn agrees(rec: its_cmdq::EventState, ite: Option<its_model::IteView>) -> bool {
    match (rec.phys, rec.virt, ite) {
        (None, None, None) => true,
        (Some(p), None, Some(i)) => i.physical && i.intid == p.lpi.get() && i.icid == p.cpu,
        (_, Some(v), Some(i)) => !i.physical && i.vpe == v.vpe.get() && i.intid == v.vintid.get(),
        _ => false,
    }
}

/// The driver's records equal the ITS's tables.
#[track_caller]
fn consistent(r: &Rig, st: &St, what: &str) {
    for d in &st.devs {
        let id = d.id().get();
        let dte = r.model.dte(0, id);
        assert!(
            dte.is_some_and(|t| t.valid && t.size == d.itt_size().field()),
            "{what}: device {id:#x} is held but its DTE is {dte:?}"
        );
        let mut mapped = 0;
        for e in 0..d.events() {
            let rec = d.event(e).unwrap();
            let ite = r.model.ite(0, id, e);
            assert!(
                agrees(rec, ite),
                "{what}: device {id:#x} event {e}: driver {rec:?}, ITS {ite:?}"
            );
            mapped += u32::from(rec.is_mapped());
        }
        assert_eq!(d.mapped_events(), mapped, "{what}: mapped-event count");
    }
    for &id in &st.gone {
        let dte = r.model.dte(0, id);
        assert!(
            dte.is_none_or(|t| !t.valid),
            "{what}: device {id:#x} unmapped but its DTE is {dte:?}"
        );
    }
}

/// After a timeout: each event's record is either what it was before the call (the driver
/// did not see the ITS confirm a change) or what the ITS has (it did).
#[track_caller]
fn confirmed_only(r: &Rig, st: &St, before: &[Vec<its_cmdq::EventState>], what: &str) {
    for (d, old) in st.devs.iter().zip(before) {
        for e in 0..d.events() {
            let rec = d.event(e).unwrap();
            let ite = r.model.ite(0, d.id().get(), e);
            assert!(
                rec == old[e as usize] || agrees(rec, ite),
                "{what}: device {:#x} event {e}: driver {rec:?} (before {:?}), ITS {ite:?}",
                d.id().get(),
                old[e as usize]
            );
        }
    }
}

/// The one error the model recorded is the injected stall.
#[track_caller]
fn only_the_injected_stall(model: &GicModel, what: &str) {
    sweep::only_the_injected_stall(model, what, |_| false);
}

/// The ITS driver's entry points, for the sweeps: each run on a fresh rig.
struct ItsCalls;

type Op = sweep::Op<ItsCalls>;

impl Subject for ItsCalls {
    type World<'r> = Rig;
    type State<'r> = St;
    /// The event records, and the number of devices held.
    type Records = (Vec<Vec<its_cmdq::EventState>>, usize);
    type Error = ItsError;

    fn with_world<T>(cfg: &ModelConfig, f: impl for<'r> FnOnce(&'r Rig) -> T) -> T {
        f(&Rig::new(cfg.clone()))
    }
    fn its_error(e: &ItsError) -> Option<&ItsError> {
        Some(e)
    }
    fn consistent(w: &Rig, st: &St, what: &str) {
        consistent(w, st, what)
    }
    fn all_dead(w: &Rig, st: &mut St, what: &str) {
        all_dead(w, st, what)
    }
    fn records(st: &St) -> Self::Records {
        (records(st), st.devs.len())
    }
    fn confirmed_only(w: &Rig, st: &St, before: &Self::Records, what: &str) {
        assert_eq!(st.devs.len(), before.1, "{what}: devices");
        confirmed_only(w, st, &before.0, what)
    }
}

/// Every entry point on every GIC shape.
fn cases() -> Vec<On<ItsCalls>> {
    sweep::grid(configs(), ops)
}

/// A device with `events` events, the first `mapped` of them mapped to LPIs 8192 + e on
/// CPU e % 2 and enabled.
fn device(r: &Rig, id: u32, events: u32, mapped: u32) -> Device<P> {
    let mut d = r.its().map_device(DeviceId::new(id), events).unwrap();
    let items: Vec<(u32, Lpi, usize)> = (0..mapped)
        .map(|e| (e, lpi(8192 + e), e as usize % 2))
        .collect();
    for &(_, l, _) in &items {
        r.lpis.configure(l, 0xa0, true).unwrap();
    }
    r.its().map_events(&mut d, &items).unwrap();
    d
}

fn with(devs: Vec<Device<P>>) -> St {
    St {
        devs,
        gone: Vec::new(),
    }
}

/// Maps the events of `items` that are not mapped yet.
fn map_missing(r: &Rig, st: &mut St, items: &[(u32, Lpi, usize)]) -> Result<(), ItsError> {
    let d = st.dev();
    let todo: Vec<(u32, Lpi, usize)> = items
        .iter()
        .copied()
        .filter(|&(e, _, _)| !d.event(e).unwrap().is_mapped())
        .collect();
    r.its().map_events(d, &todo)
}

const MAP_ITEMS: [(u32, u32, usize); 4] = [(0, 8200, 0), (1, 8201, 1), (5, 8202, 1), (7, 8203, 0)];

fn map_items() -> Vec<(u32, Lpi, usize)> {
    MAP_ITEMS.iter().map(|&(e, l, c)| (e, lpi(l), c)).collect()
}

fn unmap_device_call(r: &Rig, st: &mut St) -> Result<(), ItsError> {
    let mut d = st.devs.pop().expect("a device to unmap");
    let id = d.id().get();
    match r.its().unmap_device(&mut d) {
        Ok(()) => {
            assert!(!d.is_mapped());
            st.gone.push(id);
            Ok(())
        }
        Err(e) => {
            st.devs.push(d);
            Err(e)
        }
    }
}

/// Every entry point of `Its` that sends commands (and so waits), with its fault-free goal.
fn ops() -> Vec<Op> {
    vec![
        Op {
            name: "Its::map_device",
            // DeviceID 20000 needs a second-level page of the device table of its own.
            prepare: |_| St::default(),
            call: |r, st| {
                st.devs.push(r.its().map_device(DeviceId::new(20000), 8)?);
                Ok(())
            },
            retry: |r, st| {
                st.devs.push(r.its().map_device(DeviceId::new(20000), 8)?);
                Ok(())
            },
            goal: |r, st| {
                assert_eq!(st.devs.len(), 1);
                assert!(r.model.dte(0, 20000).is_some_and(|d| d.valid));
            },
            heals: false,
            // The ITT the ITS may still act on (MAPD was sent, never confirmed).
            kept_on_timeout: Some(|r, _, _| {
                (8 * usize::from(r.its().caps().itt_entry_bytes)).next_multiple_of(256)
            }),
        },
        Op {
            name: "Its::map_events",
            prepare: |r| with(vec![device(r, 5, 8, 0)]),
            call: |r, st| r.its().map_events(st.dev(), &map_items()),
            retry: |r, st| map_missing(r, st, &map_items()),
            goal: |_, st| {
                for (e, l, c) in MAP_ITEMS {
                    let p = st.devs[0].event(e).unwrap().phys.expect("mapped");
                    assert_eq!((p.lpi.get(), usize::from(p.cpu)), (l, c));
                }
            },
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Its::unmap_event",
            prepare: |r| with(vec![device(r, 5, 4, 2)]),
            call: |r, st| r.its().unmap_event(st.dev(), 1),
            retry: |r, st| {
                if st.dev().event(1).unwrap().is_mapped() {
                    r.its().unmap_event(st.dev(), 1)
                } else {
                    Ok(())
                }
            },
            goal: |_, st| assert!(!st.devs[0].event(1).unwrap().is_mapped()),
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Its::move_event",
            prepare: |r| with(vec![device(r, 5, 4, 2)]),
            call: |r, st| r.its().move_event(st.dev(), 0, 1),
            retry: |r, st| {
                if st.dev().event(0).unwrap().phys.is_some_and(|p| p.cpu == 1) {
                    Ok(())
                } else {
                    r.its().move_event(st.dev(), 0, 1)
                }
            },
            goal: |r, st| {
                assert_eq!(st.devs[0].event(0).unwrap().phys.map(|p| p.cpu), Some(1));
                r.its().int_event(&st.devs[0], 0).unwrap();
                assert!(r.model.pending_lpis(1).contains(&8192));
            },
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Its::int_event",
            prepare: |r| with(vec![device(r, 5, 4, 2)]),
            call: |r, st| r.its().int_event(&st.devs[0], 1),
            retry: |r, st| r.its().int_event(&st.devs[0], 1),
            goal: |r, _| assert!(r.model.pending_lpis(1).contains(&8193)),
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Its::clear_event",
            prepare: |r| {
                let d = device(r, 5, 4, 2);
                r.its().int_event(&d, 1).unwrap();
                with(vec![d])
            },
            call: |r, st| r.its().clear_event(&st.devs[0], 1),
            retry: |r, st| r.its().clear_event(&st.devs[0], 1),
            goal: |r, _| assert!(!r.model.pending_lpis(1).contains(&8193)),
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Its::inv_event",
            prepare: |r| with(vec![device(r, 5, 4, 2)]),
            call: |r, st| r.its().inv_event(&st.devs[0], 0),
            retry: |r, st| r.its().inv_event(&st.devs[0], 0),
            goal: |_, _| {},
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Its::invall",
            prepare: |_| St::default(),
            call: |r, _| r.its().invall(1),
            retry: |r, _| r.its().invall(1),
            goal: |_, _| {},
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Its::unmap_device",
            prepare: |r| with(vec![device(r, 9, 8, 3)]),
            call: unmap_device_call,
            retry: unmap_device_call,
            goal: |r, st| {
                assert!(st.devs.is_empty());
                assert!(r.model.dte(0, 9).is_some_and(|d| !d.valid));
            },
            heals: false,
            kept_on_timeout: None,
        },
    ]
}

/// Every call on a dead ITS reports it, before sending anything.
#[track_caller]
fn all_dead(r: &Rig, st: &mut St, what: &str) {
    let before = r.model.counters(0);
    let d = r.its().map_device(DeviceId::new(100), 2);
    assert_eq!(
        d.as_ref().err(),
        Some(&ItsError::Dead),
        "{what}: map_device"
    );
    if let Some(d) = st.devs.first_mut() {
        let e = (0..d.events())
            .find(|&e| !d.event(e).unwrap().is_mapped())
            .unwrap_or(0);
        assert_eq!(
            r.its().map_event(d, e, lpi(9000), 0),
            Err(ItsError::Dead),
            "{what}: map_event"
        );
        assert_eq!(r.its().unmap_event(d, 0), Err(ItsError::Dead), "{what}");
        assert_eq!(r.its().move_event(d, 0, 1), Err(ItsError::Dead), "{what}");
        assert_eq!(r.its().int_event(d, 0), Err(ItsError::Dead), "{what}");
        assert_eq!(r.its().clear_event(d, 0), Err(ItsError::Dead), "{what}");
        assert_eq!(r.its().inv_event(d, 0), Err(ItsError::Dead), "{what}");
    }
    assert_eq!(r.its().invall(0), Err(ItsError::Dead), "{what}: invall");
    if let Some(mut d) = st.devs.pop() {
        let e = r.its().unmap_device(&mut d).unwrap_err();
        assert_eq!(e, ItsError::Dead, "{what}: unmap_device");
        st.devs.push(d);
    }
    if let Ok(d) = d {
        st.devs.push(d);
    }
    assert_eq!(
        r.model.counters(0).1,
        before.1,
        "{what}: a command was written"
    );
}

fn records(st: &St) -> Vec<Vec<its_cmdq::EventState>> {
    st.devs
        .iter()
        .map(|d| (0..d.events()).map(|e| d.event(e).unwrap()).collect())
        .collect()
}

#[test]
fn every_its_call_under_allocation_failure() {
    // map_device allocates a second-level page, an ITT and its event records.
    sweep::total(&cases(), sweep::allocation_failures, "allocation faults", 6);
}

#[test]
fn every_its_call_stalled_at_each_command() {
    sweep::total(&cases(), sweep::stalls, "stalls", 40);
}

#[test]
fn every_its_call_on_an_its_dying_at_each_command() {
    sweep::total(&cases(), sweep::deaths, "deaths", 40);
}

/// A slow ITS (GITS_CREADR moves only after N reads): within the deadline the call succeeds
/// as without faults; beyond it, it is a dead ITS.
#[test]
fn every_its_call_on_a_slow_its() {
    for c in &cases() {
        sweep::slow_its(c, &[1, 40, 2000], Some(1_000_000));
    }
}

// ---------------------------------------------------------------------------------------------
// Bring-up and shutdown: Its::new, Its::disable, Lpis.

/// A model with LPIs up on every redistributor, and the ITS not brought up yet
/// ([`Rig::bring_up_its`] brings it up).
fn bare(cfg: &ModelConfig) -> Rig {
    Rig::lpis_only(cfg.clone(), Settings::default()).unwrap()
}

/// A brought-up ITS: enabled, one collection per CPU mapped to its redistributor.
#[track_caller]
fn brought_up(b: &Rig, its: &Its<ItsHandle, P>, what: &str) {
    assert!(b.model.its(0).ctlr().enabled(), "{what}");
    for cpu in 0..b.cfg.cpus as u16 {
        let cte = b.model.cte(0, cpu);
        assert!(
            cte.is_some_and(|c| c.valid && c.rd == cpu),
            "{what}: CTE {cpu}: {cte:?}"
        );
    }
    assert!(!its.is_dead());
}

/// Bytes allocated and freed since event `from` of the platform's log.
fn alloc_free_since(plat: &P, from: usize) -> (usize, usize) {
    plat.events()[from..]
        .iter()
        .fold((0, 0), |(a, f), e| match e {
            Event::Alloc { size, .. } => (a + size, f),
            Event::Free { size, .. } => (a, f + size),
            _ => (a, f),
        })
}

#[test]
fn its_new_under_allocation_failure() {
    let mut injected = 0;
    for cfg in configs() {
        for k in 0..64 {
            let b = bare(&cfg);
            let what = format!("Its::new (allocation {k} fails)");
            let live = b.plat.live_bytes();
            let (res, reached) = with_allocation_failing(&b.plat, k, || b.bring_up_its(0));
            if !reached {
                brought_up(&b, &res.expect(&what), &what);
                b.model.assert_no_errors();
                break;
            }
            injected += 1;
            let e = res.expect_err(&what);
            assert!(matches!(e, ItsError::Alloc(_)), "{what}: {e:?}");
            assert_eq!(b.plat.live_bytes(), live, "{what}: leaked");
            assert!(!b.model.its(0).ctlr().enabled(), "{what}: left enabled");
            b.model.assert_no_errors();
            let its = b.bring_up_its(0).expect(&what);
            brought_up(&b, &its, &what);
            b.model.assert_no_errors();
        }
    }
    // Tables (device, collection, vPE: first level and slot records), device list, queue.
    assert!(injected >= 16, "{injected}");
    println!("allocation faults injected: {injected}");
}

#[test]
fn its_new_stalled_at_each_command() {
    let mut injected = 0;
    for cfg in configs() {
        let b = bare(&cfg);
        let _its = b.bring_up_its(0).unwrap();
        let cmds: Vec<Command> = b.model.commands(0).into_iter().map(|(_, c)| c).collect();
        assert_eq!(cmds.len(), 3 * cfg.cpus);
        for (i, &cmd) in cmds.iter().enumerate() {
            let b = bare(&cfg);
            let what = format!("Its::new (stall at {i}: {cmd})");
            let live = b.plat.live_bytes();
            b.model.stall_at(0, Some(i as u64));
            let res = b.bring_up_its(0);
            injected += 1;
            sweep::stalled_on(res.map(drop), |e| Some(e), cmd, i as u64, false, &what);
            // Disabled again, and everything freed.
            assert!(!b.model.its(0).ctlr().enabled(), "{what}");
            assert_eq!(b.plat.live_bytes(), live, "{what}: leaked");
            only_the_injected_stall(&b.model, &what);
            let its = b.bring_up_its(0).expect(&what);
            brought_up(&b, &its, &what);
        }
    }
    println!("stalls injected: {injected}");
}

#[test]
fn its_new_on_a_dead_or_slow_its() {
    for cfg in configs() {
        // Dead: the MAPC batch times out; the ITS disables, so everything is freed.
        let b = bare(&cfg);
        let live = b.plat.live_bytes();
        b.model.set_delay(0, Delay::Never);
        let e = b.bring_up_its(0).err().unwrap();
        assert!(matches!(e, ItsError::Timeout { .. }), "{e:?}");
        assert_eq!(b.plat.live_bytes(), live);
        assert!(!b.model.its(0).ctlr().enabled());
        b.model.assert_no_errors();
        b.model.set_delay(0, Delay::Immediate);
        brought_up(&b, &b.bring_up_its(0).unwrap(), "revived");
        // Dead and never quiescent: the tables and the queue are kept (the ITS may read
        // them), only the driver's own device list is freed.
        let b = bare(&cfg);
        let live = b.plat.live_bytes();
        let mark = b.plat.events().len();
        b.model.set_delay(0, Delay::Never);
        b.model.set_quiescent_reads(u32::MAX);
        let e = b.bring_up_its(0).err().unwrap();
        assert!(matches!(e, ItsError::Timeout { .. }), "{e:?}");
        let (alloc, freed) = alloc_free_since(&b.plat, mark);
        assert_eq!(freed, its_cmdq::MAX_DEVICES * 4, "only the device list");
        assert_eq!(b.plat.live_bytes(), live + alloc - freed);
        // Slow: fine within the deadline.
        for polls in [1, 100, 2000] {
            let b = bare(&cfg);
            b.model.set_delay(0, Delay::AfterPolls(polls));
            brought_up(&b, &b.bring_up_its(0).unwrap(), "slow");
            b.model.assert_no_errors();
        }
    }
}

#[test]
fn its_new_waits_for_quiescence_bounded() {
    let cfg = ModelConfig::qemu(2);
    // Left enabled (by firmware, or an earlier boot), and slow to quiesce: waited for.
    let enabled = |b: &Rig| {
        let mut h = b.model.its(0);
        h.set_ctlr(GitsCtlr::new().with_enabled(true));
        // The model notes the ITS was enabled without tables: not the driver's doing.
        b.model.clear_errors();
    };
    let b = bare(&cfg);
    enabled(&b);
    b.model.set_quiescent_reads(300);
    brought_up(&b, &b.bring_up_its(0).unwrap(), "slow quiescence");
    // Never quiescent: a typed timeout before anything is allocated; fine once it is.
    let b = bare(&cfg);
    enabled(&b);
    b.model.set_quiescent_reads(u32::MAX);
    let (live, n) = (b.plat.live_bytes(), b.plat.allocations());
    let e = b.bring_up_its(0).err().unwrap();
    assert!(
        matches!(
            e,
            ItsError::RegisterTimeout {
                what: "GITS_CTLR.Quiescent",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!((b.plat.live_bytes(), b.plat.allocations()), (live, n));
    b.model.set_quiescent_reads(0);
    brought_up(&b, &b.bring_up_its(0).unwrap(), "revived");
    b.model.assert_no_errors();
}

#[test]
fn its_disable_that_never_quiesces_gives_the_its_up_and_keeps_its_memory() {
    for cfg in configs() {
        let r = Rig::new(cfg.clone());
        let mut st = with(vec![device(&r, 5, 4, 2)]);
        let live = r.plat.live_bytes();
        // Slow: waited for.
        let r2 = Rig::new(cfg.clone());
        r2.model.set_quiescent_reads(100);
        r2.its().disable(T).unwrap();
        assert!(!r2.model.its(0).ctlr().enabled());
        // Never: a typed timeout; the ITS is no longer used (Enabled was cleared) ...
        r.model.set_quiescent_reads(u32::MAX);
        let e = r.its().disable(T).unwrap_err();
        assert!(
            matches!(
                e,
                ItsError::RegisterTimeout {
                    what: "GITS_CTLR.Quiescent",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(r.its().is_dead());
        all_dead(&r, &mut st, "after a failed disable");
        assert_eq!(r.plat.live_bytes(), live);
        // ... and disabling again once it quiesces works.
        r.model.set_quiescent_reads(0);
        r.its().disable(T).unwrap();
        r.model.assert_no_errors();
        // An ITS dropped while it may still read its tables keeps them.
        let r = Rig::new(cfg.clone());
        let live = r.plat.live_bytes();
        r.model.set_quiescent_reads(u32::MAX);
        assert!(r.its().disable(T).is_err());
        let Rig { plat, its, .. } = r;
        drop(its);
        assert_eq!(plat.live_bytes(), live - its_cmdq::MAX_DEVICES * 4);
    }
}

#[test]
fn lpis_new_under_allocation_failure() {
    let cfg = ModelConfig::qemu(1);
    let mut injected = 0;
    for k in 0..16 {
        let plat = FakePlatform::new();
        let (res, reached) =
            with_allocation_failing(&plat, k, || Lpis::new(&dist_caps(&cfg), plat.clone()));
        if !reached {
            assert!(res.is_ok());
            break;
        }
        injected += 1;
        assert!(matches!(res, Err(ItsError::Alloc(_))), "allocation {k}");
        assert_eq!(plat.live_bytes(), 0, "allocation {k}: leaked");
    }
    assert_eq!(injected, 2, "the property table and the allocator's bitmap");
}

#[test]
fn init_redistributor_under_allocation_failure_and_slow_wake() {
    let mut injected = 0;
    for cfg in configs() {
        for k in 0..16 {
            let plat = FakePlatform::new();
            let model = GicModel::new(cfg.clone(), plat.clone());
            let lpis = Lpis::new(&dist_caps(&cfg), plat.clone()).unwrap();
            let mut rd = model.redist(0);
            let live = plat.live_bytes();
            let (res, reached) =
                with_allocation_failing(&plat, k, || lpis.init_redistributor(&mut rd, T));
            if !reached {
                assert!(res.is_ok() && rd.ctlr().enable_lpis());
                break;
            }
            injected += 1;
            assert!(matches!(res, Err(ItsError::Alloc(_))), "allocation {k}");
            assert_eq!(plat.live_bytes(), live, "allocation {k}: leaked");
            assert!(!rd.ctlr().enable_lpis(), "LPIs on without a pending table");
            let pend = lpis.init_redistributor(&mut rd, T).expect("retried");
            assert!(rd.ctlr().enable_lpis());
            lpis.disable_redistributor(&mut rd, pend, T).unwrap();
            model.assert_no_errors();
        }
        // GICR_WAKER: slow, then never.
        let plat = FakePlatform::new();
        let model = GicModel::new(cfg.clone(), plat.clone());
        let lpis = Lpis::new(&dist_caps(&cfg), plat.clone()).unwrap();
        model.set_waker_reads(200);
        let p = lpis.init_redistributor(&mut model.redist(0), T).unwrap();
        lpis.disable_redistributor(&mut model.redist(0), p, T)
            .unwrap();
        model.set_waker_reads(u32::MAX);
        let live = plat.live_bytes();
        let mut rd = model.redist(1);
        for _ in 0..2 {
            let e = lpis.init_redistributor(&mut rd, T).unwrap_err();
            assert!(
                matches!(
                    e,
                    ItsError::RegisterTimeout {
                        what: "GICR_WAKER.ChildrenAsleep",
                        ..
                    }
                ),
                "{e:?}"
            );
            assert_eq!(plat.live_bytes(), live);
        }
        model.set_waker_reads(0);
        let p = lpis.init_redistributor(&mut rd, T).unwrap();
        lpis.disable_redistributor(&mut rd, p, T).unwrap();
        model.assert_no_errors();
    }
    assert_eq!(injected, 2, "one pending table per configuration");
}

#[test]
fn init_redistributor_with_lpis_left_enabled() {
    let cfg = ModelConfig::qemu(1);
    let plat = FakePlatform::new();
    let model = GicModel::new(cfg.clone(), plat.clone());
    let lpis = Lpis::new(&dist_caps(&cfg), plat.clone()).unwrap();
    let mut rd = model.redist(0);
    let first = lpis.init_redistributor(&mut rd, T).unwrap();
    // Enabled, and the redistributor is slow to clear EnableLPIs: waited for, then reprogrammed.
    model.set_rwp_reads(50);
    let second = lpis.init_redistributor(&mut rd, T).unwrap();
    assert_eq!(rd.pendbaser().addr(), second.pa());
    // RWP never clears: a typed timeout, nothing allocated.
    model.set_rwp_reads(u32::MAX);
    let live = plat.live_bytes();
    let e = lpis.init_redistributor(&mut rd, T).unwrap_err();
    assert!(
        matches!(
            e,
            ItsError::RegisterTimeout {
                what: "GICR_CTLR.RWP",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(plat.live_bytes(), live);
    model.set_rwp_reads(0);
    // Without CES the LPIs cannot be turned off to reprogram them.
    let third = lpis.init_redistributor(&mut rd, T).unwrap();
    model.set_ces(false);
    assert_eq!(
        lpis.init_redistributor(&mut rd, T).unwrap_err(),
        ItsError::Unsupported("disabling LPIs left enabled (GICR_CTLR.CES = 0)")
    );
    drop((first, second, third));
    model.assert_no_errors();
}

#[test]
fn disable_redistributor_bounded_and_handing_the_table_back() {
    for cfg in configs() {
        let plat = FakePlatform::new();
        let model = GicModel::new(cfg.clone(), plat.clone());
        let lpis = Lpis::new(&dist_caps(&cfg), plat.clone()).unwrap();
        let mut rd = model.redist(0);
        // Slow: waited for.
        model.set_rwp_reads(100);
        let p = lpis.init_redistributor(&mut rd, T).unwrap();
        let live = plat.live_bytes();
        lpis.disable_redistributor(&mut rd, p, T).unwrap();
        assert!(plat.live_bytes() < live, "pending table freed");
        // Never: the table comes back, kept; disabling again once RWP clears frees it.
        let p = lpis.init_redistributor(&mut rd, T).unwrap();
        let (live, bytes) = (plat.live_bytes(), p.len());
        model.set_rwp_reads(u32::MAX);
        let (p, e) = lpis.disable_redistributor(&mut rd, p, T).unwrap_err();
        assert!(
            matches!(
                e,
                ItsError::RegisterTimeout {
                    what: "GICR_CTLR.RWP",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(plat.live_bytes(), live);
        model.set_rwp_reads(0);
        lpis.disable_redistributor(&mut rd, p, T).unwrap();
        assert_eq!(plat.live_bytes(), live - bytes);
        // Without CES: refused before anything is written.
        let p = lpis.init_redistributor(&mut rd, T).unwrap();
        model.set_ces(false);
        let (p, e) = lpis.disable_redistributor(&mut rd, p, T).unwrap_err();
        assert_eq!(
            e,
            ItsError::Unsupported("disabling LPIs (GICR_CTLR.CES = 0)")
        );
        assert!(rd.ctlr().enable_lpis());
        drop(p);
        model.assert_no_errors();
    }
}

// ---------------------------------------------------------------------------------------------
// The queue itself: waits on a slow ITS, and a GITS_CREADR that cannot be right.

/// What a broken ITS (or bus) gets wrong, on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Lie {
    Nothing,
    /// GITS_CREADR beyond what was written.
    Creadr,
    /// GITS_CBASER does not keep the queue's address.
    Cbaser,
    /// GITS_BASER<n> does not keep the table's address.
    Baser,
    /// GITS_TYPER.Physical = 0.
    NotPhysical,
}

/// ITS registers that lie as told.
#[derive(Clone, Debug)]
struct Garbled {
    its: ItsHandle,
    lie: Arc<AtomicU8>,
}

impl Garbled {
    fn new(its: ItsHandle) -> (Self, Arc<AtomicU8>) {
        let lie = Arc::new(AtomicU8::new(Lie::Nothing as u8));
        (
            Self {
                its,
                lie: lie.clone(),
            },
            lie,
        )
    }

    fn lies(&self, l: Lie) -> bool {
        self.lie.load(Ordering::SeqCst) == l as u8
    }
}

impl ItsRegisters for Garbled {
    fn ctlr(&self) -> GitsCtlr {
        self.its.ctlr()
    }
    fn set_ctlr(&mut self, v: GitsCtlr) {
        self.its.set_ctlr(v);
    }
    fn iidr(&self) -> u32 {
        self.its.iidr()
    }
    fn typer(&self) -> GitsTyper {
        let t = self.its.typer();
        if self.lies(Lie::NotPhysical) {
            t.with_physical(false)
        } else {
            t
        }
    }
    fn cbaser(&self) -> GitsCbaser {
        let c = self.its.cbaser();
        if self.lies(Lie::Cbaser) {
            GitsCbaser::from(u64::from(c) ^ 0x1000)
        } else {
            c
        }
    }
    fn set_cbaser(&mut self, v: GitsCbaser) {
        self.its.set_cbaser(v);
    }
    fn cwriter(&self) -> GitsCwriter {
        self.its.cwriter()
    }
    fn set_cwriter(&mut self, v: GitsCwriter) {
        self.its.set_cwriter(v);
    }
    fn creadr(&self) -> GitsCreadr {
        let c = self.its.creadr();
        if self.lies(Lie::Creadr) {
            // Beyond what was written, inside the ring.
            GitsCreadr::at(c.byte_offset() + 0x800, false)
        } else {
            c
        }
    }
    fn baser(&self, n: usize) -> GitsBaser {
        let b = self.its.baser(n);
        if self.lies(Lie::Baser) {
            GitsBaser::from(u64::from(b) ^ 0x1_0000_0000)
        } else {
            b
        }
    }
    fn set_baser(&mut self, n: usize, v: GitsBaser) {
        self.its.set_baser(n, v);
    }
}

#[test]
fn impossible_creadr_is_a_typed_error_and_gives_the_its_up() {
    let cfg = ModelConfig::qemu(2);
    let b = bare(&cfg);
    let (plat, model) = (&b.plat, &b.model);
    let (regs, lie) = Garbled::new(model.its(0));
    let rds: Vec<RedistInfo> = redists(model);
    let its = Its::new(
        regs,
        plat.clone(),
        &rds,
        its_config(&cfg, &Settings::default(), 0),
    )
    .unwrap();
    let mut dev = its.map_device(DeviceId::new(3), 4).unwrap();
    let live = plat.live_bytes();
    // The queue alone: wait reports it.
    lie.store(Lie::Creadr as u8, Ordering::SeqCst);
    let invall = Command::Invall {
        icid: its_core::ids::CollectionId::new(0),
    };
    let t = its.queue().post(&[invall], &[]).unwrap();
    let e = its.queue().wait(t).unwrap_err();
    assert!(matches!(e, ItsError::BadCreadr { .. }), "{e:?}");
    // Through the driver: the ITS is given up.
    let e = its.map_event(&mut dev, 0, lpi(8192), 0).unwrap_err();
    assert!(matches!(e, ItsError::BadCreadr { .. }), "{e:?}");
    assert!(its.is_dead());
    assert!(
        !dev.event(0).unwrap().is_mapped(),
        "not confirmed: not recorded"
    );
    assert_eq!(its.invall(0), Err(ItsError::Dead));
    assert_eq!(plat.live_bytes(), live);
    model.assert_no_errors();
}

#[test]
fn its_registers_that_do_not_keep_their_values() {
    let cfg = ModelConfig::qemu(2);
    for (l, want) in [
        (Lie::Baser, Some("GITS_BASER")),
        (Lie::Cbaser, Some("GITS_CBASER")),
        (Lie::NotPhysical, None),
    ] {
        let b = bare(&cfg);
        let (plat, model) = (&b.plat, &b.model);
        let (regs, lie) = Garbled::new(model.its(0));
        lie.store(l as u8, Ordering::SeqCst);
        let live = plat.live_bytes();
        let e = Its::new(
            regs,
            plat.clone(),
            &redists(model),
            its_config(&cfg, &Settings::default(), 0),
        )
        .err()
        .unwrap();
        match want {
            Some(reg) => assert!(
                matches!(e, ItsError::DidNotStick { register, .. } if register == reg),
                "{l:?}: {e:?}"
            ),
            None => assert_eq!(
                e,
                ItsError::Unsupported("physical LPIs (GITS_TYPER.Physical = 0)")
            ),
        }
        assert_eq!(plat.live_bytes(), live, "{l:?}: leaked");
        assert!(!model.its(0).ctlr().enabled());
        // The same ITS, telling the truth, comes up.
        lie.store(Lie::Nothing as u8, Ordering::SeqCst);
        let (regs, _) = Garbled::new(model.its(0));
        Its::new(
            regs,
            plat.clone(),
            &redists(model),
            its_config(&cfg, &Settings::default(), 0),
        )
        .unwrap();
        model.assert_no_errors();
    }
}

/// Every refusal of bad input by `Its`: the exact error, nothing sent, nothing allocated.
#[test]
fn bad_inputs_to_its_calls_are_refused_before_anything_is_sent() {
    let r = Rig::new(ModelConfig::qemu(2));
    let its = r.its();
    let mut d = device(&r, 5, 4, 2);
    let snap = || {
        (
            r.model.counters(0).1,
            r.plat.live_bytes(),
            r.plat.allocations(),
        )
    };
    let before = snap();
    let ev = |event, events| ItsError::EventOutOfRange {
        device: 5,
        event,
        events,
    };
    let unmapped = |event| ItsError::EventNotMapped { device: 5, event };
    // Its::new
    let e = Its::new(
        r.model.its(0),
        r.plat.clone(),
        &[],
        its_config(&r.cfg, &Settings::default(), 0),
    );
    assert_eq!(
        e.err(),
        Some(ItsError::Config("between 1 and 64 redistributors"))
    );
    let many = vec![redists(&r.model)[0]; 65];
    let e = Its::new(
        r.model.its(0),
        r.plat.clone(),
        &many,
        its_config(&r.cfg, &Settings::default(), 0),
    );
    assert_eq!(
        e.err(),
        Some(ItsError::Config("between 1 and 64 redistributors"))
    );
    // map_device
    assert!(matches!(
        its.map_device(DeviceId::new(0x1_0000), 2),
        Err(ItsError::Id(_))
    ));
    assert!(matches!(
        its.map_device(DeviceId::new(6), 0x1_0001),
        Err(ItsError::Id(_))
    ));
    assert_eq!(
        its.map_device(DeviceId::new(6), 0).err(),
        Some(ItsError::Config("a device needs at least one event"))
    );
    assert_eq!(
        its.map_device(DeviceId::new(5), 2).err(),
        Some(ItsError::DeviceMapped(5))
    );
    // map_event / map_events
    assert_eq!(its.map_event(&mut d, 4, lpi(9000), 0), Err(ev(4, 4)));
    assert_eq!(
        its.map_event(&mut d, u32::MAX, lpi(9000), 0),
        Err(ev(u32::MAX, 4))
    );
    assert_eq!(
        its.map_event(&mut d, 0, lpi(9000), 0),
        Err(ItsError::EventMapped {
            device: 5,
            event: 0
        })
    );
    assert_eq!(
        its.map_events(&mut d, &[(2, lpi(9000), 0), (2, lpi(9001), 0)]),
        Err(ItsError::EventMapped {
            device: 5,
            event: 2
        })
    );
    assert_eq!(
        its.map_event(&mut d, 2, lpi(0x1_0000), 0),
        Err(ItsError::BadLpi(0x1_0000))
    );
    assert_eq!(
        its.map_event(&mut d, 2, lpi(9000), 2),
        Err(ItsError::NoSuchCpu(2))
    );
    assert_eq!(
        its.map_event(&mut d, 2, lpi(9000), usize::MAX),
        Err(ItsError::NoSuchCpu(usize::MAX))
    );
    // unmap_event, move_event, int/clear/inv_event
    assert_eq!(its.unmap_event(&mut d, 2), Err(unmapped(2)));
    assert_eq!(its.unmap_event(&mut d, 9), Err(ev(9, 4)));
    assert_eq!(its.move_event(&mut d, 2, 1), Err(unmapped(2)));
    assert_eq!(its.move_event(&mut d, 0, 2), Err(ItsError::NoSuchCpu(2)));
    assert_eq!(its.move_event(&mut d, 9, 1), Err(ev(9, 4)));
    assert_eq!(its.int_event(&d, 2), Err(unmapped(2)));
    assert_eq!(its.int_event(&d, 9), Err(ev(9, 4)));
    assert_eq!(its.clear_event(&d, 3), Err(unmapped(3)));
    assert_eq!(its.clear_event(&d, 4), Err(ev(4, 4)));
    assert_eq!(its.inv_event(&d, 3), Err(unmapped(3)));
    assert_eq!(its.inv_event(&d, 4), Err(ev(4, 4)));
    // invall, cpu
    assert_eq!(its.invall(2), Err(ItsError::NoSuchCpu(2)));
    assert_eq!(its.cpu(64).err(), Some(ItsError::NoSuchCpu(64)));
    // execute: a command the ITS could not take (DeviceID beyond Devbits).
    let bad = Command::Int {
        device: DeviceId::new(0x1_0000),
        event: its_core::ids::EventId::new(0),
    };
    assert!(matches!(
        its.execute(1, |_| bad, &[]),
        Err(ItsError::InvalidCommand { index: 0, .. })
    ));
    // Device records
    assert_eq!(d.event(4).err(), Some(ev(4, 4)));
    assert_eq!(
        d.set_event(4, its_cmdq::EventState::default()),
        Err(ev(4, 4))
    );
    assert_eq!(snap(), before, "a refused call sent or allocated something");
    consistent(&r, &with(vec![d]), "after the refusals");
    r.model.assert_no_errors();
}

#[test]
fn exhausted_tables_and_ids() {
    let r = Rig::new(ModelConfig::qemu(1));
    // Mapped devices: MAX_DEVICES, then a typed refusal with nothing allocated.
    let devs: Vec<Device<P>> = (0..its_cmdq::MAX_DEVICES as u32)
        .map(|i| r.its().map_device(DeviceId::new(i), 2).unwrap())
        .collect();
    let live = r.plat.live_bytes();
    assert_eq!(
        r.its().map_device(DeviceId::new(5000), 2).err(),
        Some(ItsError::Exhausted("mapped devices"))
    );
    assert_eq!(r.plat.live_bytes(), live);
    for mut d in devs {
        r.its().unmap_device(&mut d).unwrap();
    }
    r.its().map_device(DeviceId::new(5000), 2).unwrap();
    // LPIs: exhausted, zero, freeing what is not allocated, LPIs beyond the table.
    let all = r.lpis.free_count();
    let range = r.lpis.alloc(all).unwrap();
    assert_eq!(r.lpis.alloc(1), Err(ItsError::Exhausted("LPI INTIDs")));
    assert_eq!(
        r.lpis.alloc(0),
        Err(ItsError::Config("allocating zero LPIs"))
    );
    r.lpis.free(range).unwrap();
    assert_eq!(r.lpis.free(range), Err(ItsError::BadLpi(8192)));
    let beyond = lpi(0x1_0000);
    assert_eq!(
        r.lpis.configure(beyond, 0xa0, true),
        Err(ItsError::BadLpi(0x1_0000))
    );
    assert_eq!(r.lpis.property(beyond), Err(ItsError::BadLpi(0x1_0000)));
    assert!(matches!(r.lpis.check(beyond), Err(ItsError::Id(_))));
    // The collection table covers the CPUs only.
    let t = r.its().collection_table().unwrap();
    assert_eq!(
        t.ensure(t.ids()),
        Err(ItsError::TableTooSmall {
            table: "collection",
            id: t.ids()
        })
    );
    r.model.assert_no_errors();
}

#[test]
fn lpis_and_gicv4_need_what_the_gic_has() {
    let mut cfg = ModelConfig::qemu(1);
    let no_lpis = DistCaps::from_typer(GicdTyper::new().with_id_bits(15), None);
    assert_eq!(
        Lpis::new(&no_lpis, FakePlatform::new()).err(),
        Some(ItsError::Unsupported("LPIs (GICD_TYPER.LPIS = 0)"))
    );
    let narrow = DistCaps::from_typer(GicdTyper::new().with_lpis(true).with_id_bits(12), None);
    assert_eq!(
        Lpis::new(&narrow, FakePlatform::new()).err(),
        Some(ItsError::Unsupported("LPIs: fewer than 14 INTID bits"))
    );
    // A GICv3 ITS has no vPE table.
    cfg.version = its_core::cmd::ItsVersion::V3;
    let r = Rig::new(cfg);
    assert_eq!(
        r.its().ensure_vpe(its_core::ids::VpeId::new(0)),
        Err(ItsError::Unsupported("GICv4 (no vPE table)"))
    );
}

#[test]
fn bad_inputs_to_the_queue() {
    let r = Rig::with(ModelConfig::qemu(2), Settings::default().queue(0x1000));
    let q = r.its().queue();
    let caps = *r.its().caps();
    let noop = r.its().cpu(0).unwrap().rdbase;
    let qcfg = |bytes| QueueConfig {
        bytes,
        ..QueueConfig::default()
    };
    // CmdQueue::new: sizes, an enabled ITS, no memory, a GITS_CBASER that does not stick.
    for bytes in [0, 0x800, 0x1800, 0x20_0000] {
        assert!(matches!(
            CmdQueue::new(r.model.its(0), r.plat.clone(), caps, qcfg(bytes), noop),
            Err(ItsError::Config(_))
        ));
    }
    assert_eq!(
        CmdQueue::new(r.model.its(0), r.plat.clone(), caps, qcfg(0x1000), noop).err(),
        Some(ItsError::Config(
            "GITS_CBASER cannot be programmed while the ITS is enabled"
        ))
    );
    let plat = FakePlatform::new();
    let model = GicModel::new(ModelConfig::qemu(1), plat.clone());
    plat.fail_next_alloc();
    assert!(matches!(
        CmdQueue::new(model.its(0), plat.clone(), caps, qcfg(0x1000), noop),
        Err(ItsError::Alloc(_))
    ));
    let (regs, lie) = Garbled::new(model.its(0));
    lie.store(Lie::Cbaser as u8, Ordering::SeqCst);
    assert!(matches!(
        CmdQueue::new(regs, plat.clone(), caps, qcfg(0x1000), noop),
        Err(ItsError::DidNotStick {
            register: "GITS_CBASER",
            ..
        })
    ));
    assert_eq!(plat.live_bytes(), 0);
    // post: an invalid command, too many sync targets; nothing written.
    let writes = r.model.counters(0).1;
    let bad = Command::Int {
        device: DeviceId::new(0x1_0000),
        event: its_core::ids::EventId::new(0),
    };
    assert!(matches!(
        q.post(&[bad], &[]),
        Err(ItsError::InvalidCommand { index: 0, .. })
    ));
    let syncs: Vec<its_cmdq::SyncTarget> = (0..65)
        .map(|v| its_cmdq::SyncTarget::Vpe(its_core::ids::VpeId::new(v)))
        .collect();
    assert_eq!(
        q.post(&[], &syncs),
        Err(ItsError::Exhausted("sync targets per batch"))
    );
    assert_eq!(r.model.counters(0).1, writes);
    // post: the ITS stalls on an earlier batch while this one waits for room.
    let invall = Command::Invall {
        icid: its_core::ids::CollectionId::new(0),
    };
    r.model.stall_at(0, Some(r.model.counters(0).0));
    let _ = q.post(&vec![invall; 100], &[]).unwrap();
    let e = q.post(&vec![invall; 100], &[]).unwrap_err();
    assert!(
        matches!(e, ItsError::Stalled { opcode, seq, .. }
            if opcode == invall.opcode() && q.command(seq).is_some_and(|c| c.command(q.version()) == Some(invall))),
        "{e:?}"
    );
    q.recover(its_cmdq::Recovery::Skip).unwrap();
    q.submit(&vec![invall; 100], &[]).unwrap();
    only_the_injected_stall(&r.model, "queue");
}

/// Redistributor registers that lie as told.
#[derive(Clone, Debug)]
struct LyingRedist {
    rd: its_model::RedistHandle,
    lie: RdLie,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RdLie {
    NoPlpis,
    Propbaser,
    Pendbaser,
    EnableLpisStuckOff,
    EnableLpisStuckOn,
}

impl RedistRegisters for LyingRedist {
    fn ctlr(&self) -> its_core::regs::GicrCtlr {
        let c = self.rd.ctlr();
        match self.lie {
            RdLie::EnableLpisStuckOff => c.with_enable_lpis(false),
            RdLie::EnableLpisStuckOn => c.with_enable_lpis(true),
            _ => c,
        }
    }
    fn set_ctlr(&mut self, v: its_core::regs::GicrCtlr) {
        self.rd.set_ctlr(v);
    }
    fn typer(&self) -> its_core::regs::GicrTyper {
        let t = self.rd.typer();
        if self.lie == RdLie::NoPlpis {
            t.with_plpis(false)
        } else {
            t
        }
    }
    fn waker(&self) -> its_core::regs::GicrWaker {
        self.rd.waker()
    }
    fn set_waker(&mut self, v: its_core::regs::GicrWaker) {
        self.rd.set_waker(v);
    }
    fn propbaser(&self) -> its_core::regs::GicrPropbaser {
        let p = self.rd.propbaser();
        if self.lie == RdLie::Propbaser {
            p.with_id_bits(p.id_bits() - 1)
        } else {
            p
        }
    }
    fn set_propbaser(&mut self, v: its_core::regs::GicrPropbaser) {
        self.rd.set_propbaser(v);
    }
    fn pendbaser(&self) -> its_core::regs::GicrPendbaser {
        let p = self.rd.pendbaser();
        if self.lie == RdLie::Pendbaser {
            its_core::regs::GicrPendbaser::from(u64::from(p) ^ 0x1_0000)
        } else {
            p
        }
    }
    fn set_pendbaser(&mut self, v: its_core::regs::GicrPendbaser) {
        self.rd.set_pendbaser(v);
    }
    fn vpropbaser(&self) -> u64 {
        self.rd.vpropbaser()
    }
    fn set_vpropbaser(&mut self, v: u64) {
        self.rd.set_vpropbaser(v);
    }
    fn vpendbaser(&self) -> u64 {
        self.rd.vpendbaser()
    }
    fn set_vpendbaser(&mut self, v: u64) {
        self.rd.set_vpendbaser(v);
    }
    fn set_invlpir(&mut self, v: its_core::regs::GicrInvlpir) {
        self.rd.set_invlpir(v);
    }
    fn set_invallr(&mut self, v: its_core::regs::GicrInvallr) {
        self.rd.set_invallr(v);
    }
    fn set_clrlpir(&mut self, v: its_core::regs::GicrLpir) {
        self.rd.set_clrlpir(v);
    }
    fn syncr(&self) -> its_core::regs::GicrSyncr {
        self.rd.syncr()
    }
}

#[test]
fn redistributor_registers_that_do_not_keep_their_values() {
    let cfg = ModelConfig::qemu(1);
    for (lie, want) in [
        (
            RdLie::NoPlpis,
            ItsError::Unsupported("physical LPIs on this redistributor"),
        ),
        (RdLie::Propbaser, ItsError::Config("GICR_PROPBASER")),
        (RdLie::Pendbaser, ItsError::Config("GICR_PENDBASER")),
        (RdLie::EnableLpisStuckOff, ItsError::Config("GICR_CTLR")),
    ] {
        let plat = FakePlatform::new();
        let model = GicModel::new(cfg.clone(), plat.clone());
        let lpis = Lpis::new(&dist_caps(&cfg), plat.clone()).unwrap();
        let live = plat.live_bytes();
        let mut rd = LyingRedist {
            rd: model.redist(0),
            lie,
        };
        let e = lpis.init_redistributor(&mut rd, T).unwrap_err();
        match (e, want) {
            (ItsError::DidNotStick { register, .. }, ItsError::Config(reg)) => {
                assert_eq!(register, reg, "{lie:?}")
            }
            (e, want) => assert_eq!(e, want, "{lie:?}"),
        }
        assert_eq!(plat.live_bytes(), live, "{lie:?}: leaked");
        let p = lpis.init_redistributor(&mut model.redist(0), T).unwrap();
        // EnableLPIs that reads back set after it was cleared.
        let mut stuck = LyingRedist {
            rd: model.redist(0),
            lie: RdLie::EnableLpisStuckOn,
        };
        let (p, e) = lpis.disable_redistributor(&mut stuck, p, T).unwrap_err();
        assert_eq!(
            e,
            ItsError::Unsupported("disabling LPIs (EnableLPIs stayed set)")
        );
        lpis.disable_redistributor(&mut model.redist(0), p, T)
            .unwrap();
        model.assert_no_errors();
    }
}

#[test]
fn queue_wait_on_a_slow_then_dead_its() {
    let r = Rig::with(ModelConfig::qemu(1), Settings::default().queue(0x1000));
    let q = r.its().queue();
    let cmd = Command::Invall {
        icid: its_core::ids::CollectionId::new(0),
    };
    for polls in [1, 10, 1000] {
        r.model.set_delay(0, Delay::AfterPolls(polls));
        q.submit(&[cmd; 3], &[]).unwrap();
    }
    // A batch larger than the ring on a slow ITS: pieces, waiting for room in between.
    r.model.set_delay(0, Delay::AfterPolls(5));
    q.submit(&vec![cmd; 300], &[]).unwrap();
    // Dead: the wait ends; the queue keeps working once the ITS runs again.
    r.model.set_delay(0, Delay::Never);
    let t = q.post(&[cmd], &[]).unwrap();
    assert!(matches!(q.wait(t), Err(ItsError::Timeout { .. })));
    r.model.process_now(0);
    q.wait(t).unwrap();
    r.model.assert_no_errors();
}

/// A command the ITS stalled on is reported as it was sent: a GICv4.0 VMAPP is not decoded
/// with the GICv4.1 layout (it used to come back as a VMAPP with GICv4.1 fields).
#[test]
fn a_skipped_gicv40_command_is_reported_as_sent() {
    let r = Rig::new(ModelConfig::qemu(1));
    let vpe = its_core::ids::VpeId::new(3);
    r.its().ensure_vpe(vpe).unwrap();
    let buf = its_core::platform::DmaBuf::new(
        r.plat.clone(),
        core::alloc::Layout::from_size_align(0x2000, 0x1_0000).unwrap(),
    )
    .unwrap();
    let cmd = Command::Vmapp {
        vpe,
        rdbase: r.its().cpu(0).unwrap().rdbase,
        valid: true,
        vpt: its_core::addr::VptAddr::new(buf.pa()).unwrap(),
        vpt_size: its_core::cmd::IdBits::new(16).unwrap(),
    };
    r.model.stall_at(0, Some(r.model.counters(0).0));
    let out = r.its().execute(1, |_| cmd, &[]).unwrap();
    assert!(out.was_skipped(0));
    assert_eq!(out.skipped[0].1.command, Some(cmd));
    match out.error() {
        Some(ItsError::Stalled { seq, opcode, .. }) => {
            assert_eq!(opcode, cmd.opcode());
            let c = r.its().queue().command(seq).unwrap();
            assert_eq!(c.command(r.its().caps().version), Some(cmd));
        }
        e => panic!("{e:?}"),
    }
    only_the_injected_stall(&r.model, "VMAPP");
}

/// A batch larger than the free ring space on an ITS that stopped: a bounded wait for room,
/// `QueueFull`, and the ITS given up; nothing of the refused part recorded.
#[test]
fn a_batch_that_never_finds_room_is_queue_full() {
    let r = Rig::with(ModelConfig::qemu(1), Settings::default().queue(0x1000));
    let mut d = r.its().map_device(DeviceId::new(1), 256).unwrap();
    let items: Vec<(u32, Lpi, usize)> = (0..200).map(|e| (e, lpi(8192 + e), 0)).collect();
    r.model.set_delay(0, Delay::Never);
    let e = r.its().map_events(&mut d, &items).unwrap_err();
    assert!(matches!(e, ItsError::QueueFull { .. }), "{e:?}");
    assert!(r.its().is_dead());
    assert_eq!(d.mapped_events(), 0);
    assert_eq!(r.its().invall(0), Err(ItsError::Dead));
    r.model.assert_no_errors();
}
