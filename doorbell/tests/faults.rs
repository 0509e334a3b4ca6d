// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fault injection at every allocation and every wait of the doorbells' entry points.
//!
//! For each entry point of `Doorbells` that allocates or waits, on a fresh host GIC each time
//! (proxy-device invalidation as on QEMU, the same read back non-shareable, and DirectLPI),
//! the sweeps of `its_testkit::sweep`:
//! - the k-th allocation of the call fails, k = 0, 1, 2, ... until the call makes no more;
//! - the ITS stalls at, or dies at, each command the call sends, one index per run;
//! - the ITS is slow; and here, GICR_SYNCR stays busy for a while, or for ever (DirectLPI).
//!
//! After each fault: a typed error; DMA memory and the LPI allocator back to their state
//! before the call (but for second-level table pages, and the ITT of a proxy device whose
//! MAPD timed out, which the ITS may still write: checked too); no model error but the
//! injected one; the doorbells' records equal the GIC's (lookup, the proxy events' ITEs and
//! targets, the enable bits in the property table); and the doorbells still work: with the
//! fault cleared, the call or what it left undone succeeds, or after a timeout every later
//! call that needs the ITS reports it dead.

use core::time::Duration;

use doorbell::{DoorbellBlock, DoorbellConfig, DoorbellError, Doorbells};
use its_cmdq::ItsError;
use its_core::cmd::Command;
use its_core::ids::{DeviceId, Lpi, VpeId};
use its_core::mmio::RedistRegisters;
use its_model::ModelConfig;
use its_testkit::sweep::{self, On, Subject};
use its_testkit::{ModelDoorbells as Dbs, Rig, Settings};

const PROXY: u32 = 0x77;
const CAPACITY: u32 = 16;

/// Proxy invalidation (QEMU), the same non-shareable, and DirectLPI.
fn configs() -> [ModelConfig; 3] {
    let mut ns = ModelConfig::qemu(2);
    ns.non_shareable = true;
    let mut direct = ModelConfig::qemu(2);
    direct.direct_lpi = true;
    [ModelConfig::qemu(2), ns, direct]
}

/// Each run's GIC: 2 ms waits, so that a dead ITS is given up quickly.
fn base(cfg: &ModelConfig) -> Rig {
    let settings = Settings {
        timeout: Some(Duration::from_millis(2)),
        ..Settings::default()
    };
    Rig::with(cfg.clone(), settings)
}

/// The doorbells under test: proxy invalidation through DeviceID [`PROXY`], or DirectLPI.
fn dbcfg(b: &Rig) -> DoorbellConfig {
    let mut c = if b.cfg.direct_lpi {
        DoorbellConfig::direct(CAPACITY)
    } else {
        DoorbellConfig::proxy(DeviceId::new(PROXY), CAPACITY)
    };
    c.sync_timeout = Duration::from_millis(1);
    c
}

fn new_doorbells(b: &Rig) -> Result<Dbs<'_>, DoorbellError> {
    b.doorbells(dbcfg(b))
}

fn proxy(b: &Rig) -> bool {
    !b.cfg.direct_lpi
}

/// The VM-like blocks the tests allocate: (vPE, CPU) per doorbell.
const VPES: [(u16, usize); 3] = [(5, 0), (6, 1), (7, 1)];

fn vpes() -> Vec<(VpeId, usize)> {
    VPES.iter().map(|&(v, c)| (VpeId::new(v), c)).collect()
}

/// What the calls under test work on.
#[derive(Default)]
struct St<'a> {
    dbs: Option<Dbs<'a>>,
    /// Allocated blocks, with the vPE and CPU of each doorbell.
    blocks: Vec<(DoorbellBlock, Vec<(VpeId, usize)>)>,
    /// Doorbell LPIs freed by the call.
    freed: Vec<Lpi>,
    /// Whether shutdown completed.
    shut: bool,
}

impl<'a> St<'a> {
    fn dbs(&self) -> &Dbs<'a> {
        self.dbs.as_ref().expect("doorbells")
    }

    fn db(&self, i: u32) -> Lpi {
        self.blocks[0].0.lpi(i).unwrap()
    }
}

fn rd(b: &Rig, cpu: usize) -> its_model::RedistHandle {
    b.model.redist(cpu)
}

/// The doorbells' records equal the GIC's.
#[track_caller]
fn consistent(b: &Rig, st: &St, what: &str) {
    let m = &b.model;
    let Some(dbs) = st.dbs.as_ref() else {
        // Shut down, or never made: no proxy device left behind.
        assert!(
            m.dte(0, PROXY).is_none_or(|d| !d.valid),
            "{what}: proxy still mapped"
        );
        return;
    };
    let base = dbs.range().base.get();
    if dbs.uses_proxy() {
        assert!(
            m.dte(0, PROXY).is_some_and(|d| d.valid),
            "{what}: proxy device"
        );
    }
    for l in dbs.range().iter() {
        assert!(
            b.lpis.is_allocated(l),
            "{what}: LPI {} of the range",
            l.get()
        );
    }
    let mut held = vec![None; CAPACITY as usize];
    for (blk, v) in &st.blocks {
        for (k, &(vpe, cpu)) in v.iter().enumerate() {
            let l = blk.lpi(k as u32).unwrap();
            held[(l.get() - base) as usize] = Some((vpe, cpu));
        }
    }
    for (i, h) in held.iter().enumerate() {
        let intid = base + i as u32;
        let l = Lpi::new(intid).unwrap();
        assert_eq!(
            dbs.vpe_of(intid),
            h.map(|x| x.0),
            "{what}: doorbell {intid}"
        );
        assert_eq!(
            dbs.is_enabled(l),
            b.lpis.property(l).unwrap() & 1 != 0,
            "{what}: doorbell {intid}'s enable bit"
        );
        if h.is_none() {
            assert!(!dbs.is_enabled(l), "{what}: free doorbell {intid} enabled");
        }
        if dbs.uses_proxy() {
            let ite = m.ite(0, PROXY, i as u32);
            match h {
                Some((_, cpu)) => assert!(
                    ite.is_some_and(|t| t.physical
                        && t.intid == intid
                        && usize::from(t.icid) == *cpu),
                    "{what}: doorbell {intid} on CPU {cpu}: proxy ITE {ite:?}"
                ),
                None => assert!(ite.is_none(), "{what}: free doorbell {intid}: {ite:?}"),
            }
        }
    }
    for l in &st.freed {
        assert_eq!(
            dbs.vpe_of(l.get()),
            None,
            "{what}: freed doorbell {}",
            l.get()
        );
    }
}

fn its_err(e: &DoorbellError) -> Option<&ItsError> {
    match e {
        DoorbellError::Its(e) => Some(e),
        _ => None,
    }
}

/// The doorbells' entry points, for the sweeps: each run on a fresh rig.
struct DoorbellCalls;

type Op = sweep::Op<DoorbellCalls>;

impl Subject for DoorbellCalls {
    type World<'r> = Rig;
    type State<'r> = St<'r>;
    type Records = ();
    type Error = DoorbellError;

    fn with_world<T>(cfg: &ModelConfig, f: impl for<'r> FnOnce(&'r Rig) -> T) -> T {
        f(&base(cfg))
    }
    fn its_error(e: &DoorbellError) -> Option<&ItsError> {
        its_err(e)
    }
    fn consistent<'r>(w: &'r Rig, st: &St<'r>, what: &str) {
        consistent(w, st, what)
    }
    fn all_dead<'r>(w: &'r Rig, st: &mut St<'r>, what: &str) {
        all_dead(w, st, what)
    }
    fn records(_: &St<'_>) {}
}

/// Every entry point on every GIC shape.
fn cases() -> Vec<On<DoorbellCalls>> {
    sweep::grid(configs(), ops)
}

fn with_dbs(b: &Rig) -> St<'_> {
    St {
        dbs: Some(new_doorbells(b).unwrap()),
        ..St::default()
    }
}

fn with_block(b: &Rig) -> St<'_> {
    let mut st = with_dbs(b);
    alloc_block_call(b, &mut st).unwrap();
    st
}

fn new_call<'a>(b: &'a Rig, st: &mut St<'a>) -> Result<(), DoorbellError> {
    st.dbs = Some(new_doorbells(b)?);
    Ok(())
}

fn alloc_block_call<'a>(_: &'a Rig, st: &mut St<'a>) -> Result<(), DoorbellError> {
    let v = vpes();
    let blk = st.dbs().alloc_block(&v)?;
    st.blocks.push((blk, v));
    Ok(())
}

fn free_block_call<'a>(_: &'a Rig, st: &mut St<'a>) -> Result<(), DoorbellError> {
    let (blk, v) = st.blocks.pop().expect("a block");
    match st.dbs().free_block(blk) {
        Ok(()) => {
            st.freed.extend(blk.lpi(0).iter());
            st.freed
                .extend((1..v.len() as u32).filter_map(|i| blk.lpi(i)));
            Ok(())
        }
        Err(e) => {
            st.blocks.push((blk, v));
            Err(e)
        }
    }
}

fn set_enabled_call<'a>(b: &'a Rig, st: &mut St<'a>) -> Result<(), DoorbellError> {
    let mut rd = rd(b, 1);
    st.dbs()
        .set_enabled(st.db(1), true, Some(&mut rd as &mut dyn RedistRegisters))
}

/// Doorbell 1 enabled, then rung: disabled by the interrupt path, its invalidation deferred.
fn rung(b: &Rig) -> St<'_> {
    let mut st = with_block(b);
    set_enabled_call(b, &mut st).unwrap();
    let db = st.db(1);
    b.model.set_lpi_pending(1, db.get());
    assert_eq!(b.model.take_lpi(1), Some(db.get()));
    assert_eq!(st.dbs().handle(db.get()), Some(VpeId::new(6)));
    // Pending again while disabled (a second vLPI for the absent vPE).
    b.model.set_lpi_pending(1, db.get());
    st
}

fn settle_and_clear_call<'a>(b: &'a Rig, st: &mut St<'a>) -> Result<(), DoorbellError> {
    let mut rd = rd(b, 1);
    st.dbs()
        .settle_and_clear(st.db(1), true, Some(&mut rd as &mut dyn RedistRegisters))
}

fn settled_and_cleared(b: &Rig, st: &St) {
    let db = st.db(1);
    assert!(!b.model.pending_lpis(1).contains(&db.get()), "cleared");
    // Nothing left to settle.
    let before = b.model.counters(0).1;
    st.dbs()
        .settle(db, Some(&mut rd(b, 1) as &mut dyn RedistRegisters))
        .unwrap();
    assert_eq!(b.model.counters(0).1, before);
}

fn move_to_call<'a>(_: &'a Rig, st: &mut St<'a>) -> Result<(), DoorbellError> {
    st.dbs().move_to(st.db(0), 1)?;
    st.blocks[0].1[0].1 = 1;
    Ok(())
}

fn shutdown_call<'a>(_: &'a Rig, st: &mut St<'a>) -> Result<(), DoorbellError> {
    st.dbs().shutdown()?;
    st.dbs = None;
    st.shut = true;
    Ok(())
}

/// The proxy device's ITT, kept when its MAPD timed out (the ITS may still write it).
fn proxy_itt(b: &Rig, _: &St, _: &[Command]) -> usize {
    if proxy(b) {
        (CAPACITY as usize * usize::from(b.its().caps().itt_entry_bytes)).next_multiple_of(256)
    } else {
        0
    }
}

fn ops() -> Vec<Op> {
    vec![
        Op {
            name: "Doorbells::new",
            prepare: |_| St::default(),
            call: new_call,
            retry: new_call,
            goal: |b, st| {
                let dbs = st.dbs();
                assert_eq!(dbs.range().count, CAPACITY);
                assert_eq!(dbs.uses_proxy(), proxy(b));
            },
            heals: false,
            kept_on_timeout: Some(proxy_itt),
        },
        Op {
            name: "Doorbells::alloc_block",
            prepare: with_dbs,
            call: alloc_block_call,
            retry: alloc_block_call,
            goal: |_, st| assert_eq!(st.blocks.len(), 1),
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Doorbells::free_block",
            prepare: with_block,
            call: free_block_call,
            retry: free_block_call,
            goal: |_, st| {
                assert!(st.blocks.is_empty());
                assert_eq!(st.freed.len(), VPES.len());
            },
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Doorbells::set_enabled",
            prepare: with_block,
            call: set_enabled_call,
            retry: set_enabled_call,
            goal: |b, st| {
                assert!(st.dbs().is_enabled(st.db(1)));
                b.model.set_lpi_pending(1, st.db(1).get());
                assert_eq!(b.model.take_lpi(1), Some(st.db(1).get()));
            },
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Doorbells::settle",
            prepare: rung,
            call: |b, st| {
                st.dbs()
                    .settle(st.db(1), Some(&mut rd(b, 1) as &mut dyn RedistRegisters))
            },
            retry: |b, st| {
                st.dbs()
                    .settle(st.db(1), Some(&mut rd(b, 1) as &mut dyn RedistRegisters))
            },
            goal: |b, st| {
                let before = b.model.counters(0).1;
                st.dbs()
                    .settle(st.db(1), Some(&mut rd(b, 1) as &mut dyn RedistRegisters))
                    .unwrap();
                assert_eq!(b.model.counters(0).1, before, "settled once");
            },
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Doorbells::settle_and_clear",
            prepare: rung,
            call: settle_and_clear_call,
            retry: settle_and_clear_call,
            goal: settled_and_cleared,
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Doorbells::clear_pending",
            prepare: rung,
            call: |b, st| {
                st.dbs()
                    .clear_pending(st.db(1), Some(&mut rd(b, 1) as &mut dyn RedistRegisters))
            },
            retry: |b, st| {
                st.dbs()
                    .clear_pending(st.db(1), Some(&mut rd(b, 1) as &mut dyn RedistRegisters))
            },
            goal: |b, st| assert!(!b.model.pending_lpis(1).contains(&st.db(1).get())),
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Doorbells::move_to",
            prepare: with_block,
            call: move_to_call,
            retry: move_to_call,
            goal: |_, st| assert_eq!(st.blocks[0].1[0].1, 1),
            heals: false,
            kept_on_timeout: None,
        },
        Op {
            name: "Doorbells::shutdown",
            prepare: |b| {
                let mut st = with_block(b);
                free_block_call(b, &mut st).unwrap();
                st.freed.clear();
                st
            },
            call: shutdown_call,
            retry: shutdown_call,
            goal: |b, st| {
                assert!(st.shut);
                assert_eq!(b.lpis.free_count(), (1 << 16) - 8192, "the range is back");
            },
            heals: false,
            kept_on_timeout: None,
        },
    ]
}

/// Every call that needs the ITS reports it dead (sending nothing: checked by the sweep).
#[track_caller]
fn all_dead<'a>(b: &'a Rig, st: &mut St<'a>, what: &str) {
    let dead = |e: &DoorbellError| matches!(its_err(e), Some(ItsError::Dead));
    if st.dbs.is_none() && !st.shut {
        let e = new_doorbells(b).err();
        assert!(e.as_ref().is_some_and(dead), "{what}: new {e:?}");
        return;
    }
    let Some(dbs) = st.dbs.as_ref() else {
        return;
    };
    if dbs.uses_proxy() {
        let e = dbs.alloc_block(&vpes());
        assert!(e.as_ref().is_err_and(dead), "{what}: alloc_block {e:?}");
        if let Some((blk, v)) = st.blocks.first() {
            // The last doorbell: a free_block that died part-way has not unmapped it.
            let last = v.len() - 1;
            let db = blk.lpi(last as u32).unwrap();
            let e = dbs.set_enabled(db, !dbs.is_enabled(db), None);
            assert!(e.as_ref().is_err_and(dead), "{what}: set_enabled {e:?}");
            let e = dbs.clear_pending(db, None);
            assert!(e.as_ref().is_err_and(dead), "{what}: clear_pending {e:?}");
            let e = dbs.settle_and_clear(db, true, None);
            assert!(
                e.as_ref().is_err_and(dead),
                "{what}: settle_and_clear {e:?}"
            );
            let e = dbs.move_to(db, 1 - v[last].1);
            assert!(e.as_ref().is_err_and(dead), "{what}: move_to {e:?}");
            let e = dbs.free_block(*blk);
            assert!(e.as_ref().is_err_and(dead), "{what}: free_block {e:?}");
        } else {
            let e = dbs.shutdown().expect_err("shutdown on a dead ITS");
            assert!(dead(&e), "{what}: shutdown {e:?}");
        }
    }
}

#[test]
fn every_doorbell_call_under_allocation_failure() {
    // Doorbells::new: the state words, and in proxy mode the proxy device's second-level
    // page, ITT and event records.
    sweep::total(&cases(), sweep::allocation_failures, "allocation faults", 9);
}

#[test]
fn every_doorbell_call_stalled_at_each_command() {
    sweep::total(&cases(), sweep::stalls, "stalls", 40);
}

#[test]
fn every_doorbell_call_on_an_its_dying_at_each_command() {
    sweep::total(&cases(), sweep::deaths, "deaths", 40);
}

#[test]
fn every_doorbell_call_on_a_slow_its() {
    for c in &cases() {
        sweep::slow_its(c, &[1, 30, 800], None);
    }
}

/// DirectLPI: GICR_SYNCR busy for a while is waited for; busy for ever is a typed timeout
/// that leaves the records right, and the same calls work once it idles.
#[test]
fn direct_lpi_syncr_slow_or_stuck() {
    let mut cfg = ModelConfig::qemu(2);
    cfg.direct_lpi = true;
    let b = base(&cfg);
    let mut st = with_block(&b);
    let db = st.db(1);
    let mut r1 = rd(&b, 1);
    let r1 = &mut r1 as &mut dyn RedistRegisters;
    b.model.set_syncr_busy_reads(100);
    set_enabled_call(&b, &mut st).unwrap();
    consistent(&b, &st, "slow SYNCR");
    b.model.set_syncr_busy_reads(u32::MAX);
    let timeout =
        |e: DoorbellError| assert!(matches!(e, DoorbellError::SyncTimeout { .. }), "{e:?}");
    timeout(st.dbs().set_enabled(db, false, Some(&mut *r1)).unwrap_err());
    assert!(st.dbs().is_enabled(db), "unchanged");
    consistent(&b, &st, "set_enabled, SYNCR stuck");
    b.model.set_lpi_pending(1, db.get());
    timeout(st.dbs().clear_pending(db, Some(&mut *r1)).unwrap_err());
    timeout(
        st.dbs()
            .settle_and_clear(db, true, Some(&mut *r1))
            .unwrap_err(),
    );
    consistent(&b, &st, "clear, SYNCR stuck");
    // move_to clears the doorbell on the redistributor it leaves: stuck there, the records
    // keep the old CPU and the same call can be made again.
    timeout(st.dbs().move_to(st.db(0), 1).unwrap_err());
    assert_eq!(st.dbs().target_cpu(st.db(0)), Some(0));
    consistent(&b, &st, "move, SYNCR stuck");
    b.model.set_syncr_busy_reads(0);
    st.dbs().set_enabled(db, false, Some(&mut *r1)).unwrap();
    st.dbs().settle_and_clear(db, true, Some(&mut *r1)).unwrap();
    assert!(!b.model.pending_lpis(1).contains(&db.get()));
    move_to_call(&b, &mut st).unwrap();
    assert_eq!(st.dbs().target_cpu(st.db(0)), Some(1));
    consistent(&b, &st, "revived");
    b.model.assert_no_errors();
}

/// Every refusal of bad input by `Doorbells`: the exact error, nothing sent, nothing
/// allocated, the records unchanged.
#[test]
fn bad_inputs_to_doorbell_calls_are_refused_before_anything_is_sent() {
    for cfg in [configs()[0].clone(), configs()[2].clone()] {
        let b = base(&cfg);
        // new: more doorbells than LPIs, zero, a proxy DeviceID already in use.
        let free = b.lpis.free_count();
        let mut big = dbcfg(&b);
        big.capacity = free + 1;
        assert_eq!(
            Doorbells::new(b.its(), &b.lpis, big).err(),
            Some(DoorbellError::Its(ItsError::Exhausted("LPI INTIDs")))
        );
        let mut zero = dbcfg(&b);
        zero.capacity = 0;
        assert_eq!(
            Doorbells::new(b.its(), &b.lpis, zero).err(),
            Some(DoorbellError::Its(ItsError::Config("allocating zero LPIs")))
        );
        if proxy(&b) {
            let mut taken = b.its().map_device(DeviceId::new(PROXY), 2).unwrap();
            let live = b.plat.live_bytes();
            assert_eq!(
                new_doorbells(&b).err(),
                Some(DoorbellError::Its(ItsError::DeviceMapped(PROXY)))
            );
            assert_eq!(b.lpis.free_count(), free, "the LPI range went back");
            assert_eq!(b.plat.live_bytes(), live);
            b.its().unmap_device(&mut taken).unwrap();
        }
        let mut st = with_block(&b);
        let dbs = st.dbs();
        let blk = st.blocks[0].0;
        let snap = || {
            (
                b.model.counters(0).1,
                b.plat.live_bytes(),
                b.lpis.free_count(),
            )
        };
        let before = snap();
        let stranger = Lpi::new(dbs.range().base.get() + CAPACITY).unwrap();
        let unallocated = Lpi::new(dbs.range().base.get() + 10).unwrap();
        let mut r1 = rd(&b, 1);
        let r1 = &mut r1 as &mut dyn RedistRegisters;
        // alloc_block
        assert_eq!(dbs.alloc_block(&[]), Err(DoorbellError::Exhausted(0)));
        assert_eq!(
            dbs.alloc_block(&[(VpeId::new(1), 0); 14]),
            Err(DoorbellError::Exhausted(14))
        );
        assert_eq!(
            dbs.alloc_block(&[(VpeId::new(1), 2)]),
            Err(DoorbellError::Its(ItsError::NoSuchCpu(2)))
        );
        // Calls on LPIs that are not allocated doorbells.
        for l in [stranger, unallocated] {
            let not = Err(DoorbellError::NotADoorbell(l.get()));
            assert_eq!(dbs.set_enabled(l, true, Some(&mut *r1)), not);
            assert_eq!(dbs.clear_pending(l, Some(&mut *r1)), not);
            assert_eq!(dbs.settle(l, Some(&mut *r1)), not);
            assert_eq!(dbs.settle_and_clear(l, true, Some(&mut *r1)), not);
            assert_eq!(dbs.move_to(l, 1), not);
        }
        assert_eq!(
            dbs.move_to(st.db(0), 2),
            Err(DoorbellError::Its(ItsError::NoSuchCpu(2)))
        );
        if !proxy(&b) {
            // DirectLPI without the redistributor's registers.
            let need = Err(DoorbellError::NeedRedistributor);
            assert_eq!(dbs.set_enabled(st.db(0), true, None), need);
            assert_eq!(dbs.clear_pending(st.db(0), None), need);
            assert_eq!(dbs.settle_and_clear(st.db(0), true, None), need);
        }
        assert_eq!(snap(), before, "a refused call sent or allocated something");
        consistent(&b, &st, "after the refusals");
        // A block freed twice; shutdown with a block in use.
        dbs.free_block(blk).unwrap();
        assert_eq!(
            dbs.free_block(blk),
            Err(DoorbellError::NotADoorbell(blk.lpi(0).unwrap().get()))
        );
        let other = dbs.alloc_block(&vpes()[..2]).unwrap();
        st.blocks = vec![(other, vpes()[..2].to_vec())];
        assert_eq!(
            st.dbs().shutdown(),
            Err(DoorbellError::InUse(2)),
            "a block is in use"
        );
        consistent(&b, &st, "shutdown refused");
        b.model.assert_no_errors();
    }
}
