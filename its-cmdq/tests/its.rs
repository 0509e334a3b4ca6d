// SPDX-License-Identifier: MIT OR Apache-2.0
//! ITS bring-up and physical LPIs against the host model.

use its_cmdq::{Its, ItsError};
use its_core::addr::PageSize;
use its_core::cmd::Command;
use its_core::ids::{DeviceId, Lpi};
use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_model::{AllocFaults, Delay, Event, FakePlatform, GicModel, ModelConfig, PageSizes};
use its_testkit::rig::{dist_caps, its_config, redists};
use its_testkit::{Rig, Settings};

fn lpi(n: u32) -> Lpi {
    Lpi::new(n).unwrap()
}

#[test]
fn bring_up_on_qemus_its() {
    let r = Rig::new(ModelConfig::qemu(2));
    r.model.assert_no_errors();
    let its = r.its();
    // 16-bit DeviceIDs with 8-byte entries make 512 KiB flat: more than two 64 KiB pages, so
    // two-level, as Linux would choose.
    assert!(its.device_table().is_indirect());
    assert_eq!(its.device_table().page_size(), PageSize::Size64K);
    assert_eq!(its.device_table().l2_pages(), 0);
    assert!(its.vpe_table().is_some());
    // One collection per CPU, mapped to its redistributor; then, once every MAPC is done,
    // INVALL and SYNC.
    for cpu in 0..2u16 {
        let cte = r.model.cte(0, cpu).expect("collection mapped");
        assert!(cte.valid);
        assert_eq!(cte.rd, cpu);
    }
    let cmds: Vec<Command> = r.model.commands(0).into_iter().map(|(_, c)| c).collect();
    assert_eq!(cmds.len(), 6, "{cmds:?}");
    assert!(matches!(cmds[0], Command::Mapc { .. }));
    assert!(matches!(cmds[1], Command::Mapc { .. }));
    assert!(matches!(cmds[2], Command::Invall { .. }));
    assert!(matches!(cmds[4], Command::Sync { .. }));
    assert_eq!(r.its().queue().stats().cwriter_writes, 2);
}

#[test]
fn page_size_falls_back_to_what_the_its_accepts() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.page_sizes = PageSizes {
        k4: false,
        k16: true,
        k64: false,
    };
    let r = Rig::new(cfg.clone());
    assert_eq!(r.its().device_table().page_size(), PageSize::Size16K);
    cfg.page_sizes = PageSizes {
        k4: true,
        k16: false,
        k64: false,
    };
    let r = Rig::new(cfg);
    assert_eq!(r.its().device_table().page_size(), PageSize::Size4K);
    let mut dev = r.its().map_device(DeviceId::new(0xfffe), 2).unwrap();
    r.its().map_event(&mut dev, 1, lpi(8192), 0).unwrap();
    r.model.assert_no_errors();
}

#[test]
fn without_two_level_tables_the_table_is_flat() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.indirect = false;
    let r = Rig::new(cfg);
    assert!(!r.its().device_table().is_indirect());
    let _dev = r.its().map_device(DeviceId::new(0xffff), 2).unwrap();
    r.model.assert_no_errors();
}

#[test]
fn second_level_pages_are_allocated_on_first_use() {
    let r = Rig::new(ModelConfig::qemu(1));
    let t = r.its().device_table();
    // 64 KiB pages of 8-byte entries: 8192 devices per second-level page.
    let a = r.its().map_device(DeviceId::new(5), 2).unwrap();
    let b = r.its().map_device(DeviceId::new(6), 2).unwrap();
    assert_eq!(t.l2_pages(), 1);
    let c = r.its().map_device(DeviceId::new(60000), 2).unwrap();
    assert_eq!(t.l2_pages(), 2);
    for d in [5, 6, 60000] {
        assert!(r.model.dte(0, d).is_some_and(|e| e.valid), "device {d}");
    }
    r.model.assert_no_errors();
    for mut d in [a, b, c] {
        r.its().unmap_device(&mut d).unwrap();
        assert!(!d.is_mapped());
    }
    assert!(r.model.dte(0, 60000).is_some_and(|e| !e.valid));
}

#[test]
fn non_shareable_gic_works_with_cleans() {
    let mut cfg = ModelConfig::qemu(2);
    cfg.non_shareable = true;
    let r = Rig::new(cfg);
    assert!(r.its().device_table().cleans_to_poc());
    assert!(r.lpis.cleans_to_poc());
    let range = r.lpis.alloc(2).unwrap();
    for l in range.iter() {
        r.lpis.configure(l, 0x80, true).unwrap();
    }
    let mut dev = r.its().map_device(DeviceId::new(9000), 2).unwrap();
    r.its()
        .map_events(
            &mut dev,
            &[(0, range.base, 0), (1, range.get(1).unwrap(), 1)],
        )
        .unwrap();
    // The redistributor may hold the property bytes from before `configure`: invalidate.
    r.its().inv_event(&dev, 1).unwrap();
    r.its().int_event(&dev, 1).unwrap();
    assert_eq!(r.model.take_lpi(1), Some(8193));
    r.model.assert_no_errors();
}

#[test]
fn lpis_are_delivered_to_the_right_cpu() {
    let r = Rig::new(ModelConfig::qemu(2));
    let range = r.lpis.alloc(4).unwrap();
    for l in range.iter() {
        r.lpis.configure(l, 0xa0, true).unwrap();
    }
    let mut dev = r.its().map_device(DeviceId::new(8), 4).unwrap();
    let items: Vec<(u32, Lpi, usize)> = (0..4)
        .map(|e| (e, range.get(e).unwrap(), e as usize % 2))
        .collect();
    r.its().map_events(&mut dev, &items).unwrap();
    for e in 0..4 {
        // The redistributor may hold the property bytes from before `configure`.
        r.its().inv_event(&dev, e).unwrap();
        r.its().int_event(&dev, e).unwrap();
    }
    assert_eq!(r.model.pending_lpis(0), [8192, 8194]);
    assert_eq!(r.model.pending_lpis(1), [8193, 8195]);
    // Same priority: lowest INTID first.
    assert_eq!(r.model.take_lpi(1), Some(8193));
    // CLEAR removes a pending LPI.
    r.its().clear_event(&dev, 3).unwrap();
    assert_eq!(r.model.take_lpi(1), None);
    // MOVI: the event now fires on CPU 0.
    r.its().move_event(&mut dev, 1, 0).unwrap();
    r.its().int_event(&dev, 1).unwrap();
    assert!(r.model.pending_lpis(1).is_empty());
    assert!(r.model.pending_lpis(0).contains(&8193));
    assert_eq!(r.model.ite(0, 8, 1).map(|i| i.icid), Some(0));
    // DISCARD: unmapped, and INT is refused before reaching the ITS.
    r.its().unmap_event(&mut dev, 2).unwrap();
    assert!(r.model.ite(0, 8, 2).is_none());
    assert_eq!(
        r.its().int_event(&dev, 2),
        Err(ItsError::EventNotMapped {
            device: 8,
            event: 2
        })
    );
    r.model.assert_no_errors();
}

#[test]
fn disabled_then_enabled_with_inv() {
    let r = Rig::new(ModelConfig::qemu(1));
    let l = r.lpis.alloc(1).unwrap().base;
    let mut dev = r.its().map_device(DeviceId::new(1), 1).unwrap();
    r.its().map_event(&mut dev, 0, l, 0).unwrap();
    r.its().int_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_lpi(0), None, "disabled by default");
    r.lpis.configure(l, 0xa0, true).unwrap();
    r.its().inv_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_lpi(0), Some(l.get()));
    assert_eq!(r.model.take_lpi(0), None, "delivered once");
    r.its().invall(0).unwrap();
    r.model.assert_no_errors();
}

#[test]
fn bad_requests_are_refused_before_any_command() {
    let r = Rig::new(ModelConfig::qemu(2));
    let its = r.its();
    let before = r.model.counters(0);
    let live = r.plat.live_bytes();
    assert!(matches!(
        its.map_device(DeviceId::new(0x1_0000), 2),
        Err(ItsError::Id(_))
    ));
    assert!(matches!(
        its.map_device(DeviceId::new(1), 0x1_0001),
        Err(ItsError::Id(_))
    ));
    assert!(matches!(
        its.map_device(DeviceId::new(1), 0),
        Err(ItsError::Config(_))
    ));
    assert_eq!(r.model.counters(0), before);
    assert_eq!(r.plat.live_bytes(), live);
    let mut dev = its.map_device(DeviceId::new(1), 4).unwrap();
    assert_eq!(
        its.map_device(DeviceId::new(1), 4).unwrap_err(),
        ItsError::DeviceMapped(1)
    );
    let before = r.model.counters(0);
    assert!(matches!(
        its.map_event(&mut dev, 4, lpi(8192), 0),
        Err(ItsError::EventOutOfRange { event: 4, .. })
    ));
    assert_eq!(
        its.map_event(&mut dev, 0, lpi(0x1_0000), 0),
        Err(ItsError::BadLpi(0x1_0000))
    );
    assert_eq!(
        its.map_event(&mut dev, 0, lpi(8192), 2),
        Err(ItsError::NoSuchCpu(2))
    );
    assert_eq!(
        its.map_events(&mut dev, &[(1, lpi(8192), 0), (1, lpi(8193), 0)]),
        Err(ItsError::EventMapped {
            device: 1,
            event: 1
        })
    );
    assert_eq!(
        its.unmap_event(&mut dev, 0),
        Err(ItsError::EventNotMapped {
            device: 1,
            event: 0
        })
    );
    assert_eq!(
        its.move_event(&mut dev, 0, 1),
        Err(ItsError::EventNotMapped {
            device: 1,
            event: 0
        })
    );
    assert_eq!(r.model.counters(0), before, "nothing reached the ITS");
    its.map_event(&mut dev, 0, lpi(8192), 0).unwrap();
    assert_eq!(
        its.map_event(&mut dev, 0, lpi(8193), 0),
        Err(ItsError::EventMapped {
            device: 1,
            event: 0
        })
    );
    assert_eq!(dev.mapped_events(), 1);
    r.model.assert_no_errors();
}

/// Fails each allocation of a whole bring-up-and-map sequence in turn: every failure is a
/// typed error, and once everything is dropped no memory is left allocated.
#[test]
fn allocation_failure_at_each_step_leaks_nothing() {
    // First count the allocations of a successful run.
    // A hypervisor's whole lifetime: bring-up, maps, teardown, shutdown. Whatever fails, the
    // shutdown still runs (as a hypervisor's error path would), so nothing may stay allocated.
    let run = |plat: &FakePlatform| -> Result<(), ItsError> {
        let model = GicModel::new(ModelConfig::qemu(2), plat.clone());
        let cfg = model.config();
        let t = core::time::Duration::from_millis(1);
        let lpis = its_cmdq::Lpis::new(&dist_caps(&cfg), plat.clone())?;
        let mut pend = Vec::new();
        let mut result = Ok(());
        for c in 0..2 {
            match lpis.init_redistributor(&mut model.redist(c), t) {
                Ok(p) => pend.push(p),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            result = (|| {
                let its = Its::new(
                    model.its(0),
                    plat.clone(),
                    &redists(&model),
                    its_config(&cfg, &Settings::default(), 0),
                )?;
                let maps = (|| {
                    let mut dev = its.map_device(DeviceId::new(70), 8)?;
                    let rest = (|| {
                        its.map_event(&mut dev, 3, lpi(8200), 1)?;
                        let mut dev2 = its.map_device(DeviceId::new(40000), 2)?;
                        let mapped = its.map_event(&mut dev2, 0, lpi(8201), 0);
                        its.unmap_device(&mut dev2)?;
                        mapped
                    })();
                    its.unmap_device(&mut dev)?;
                    rest
                })();
                its.disable(t)?;
                maps
            })();
        }
        for (c, p) in pend.into_iter().enumerate() {
            if let Err((_, e)) = lpis.disable_redistributor(&mut model.redist(c), p, t) {
                result = result.and(Err(e));
            }
        }
        model.assert_no_errors();
        result
    };
    let plat = FakePlatform::new();
    run(&plat).unwrap();
    assert_eq!(plat.live_bytes(), 0);
    let total = plat.allocations();
    assert!(total >= 10, "{total} allocations");
    for k in 0..total {
        let plat = FakePlatform::new();
        plat.set_faults(AllocFaults {
            fail_at: Some(k),
            ..Default::default()
        });
        let e = run(&plat).expect_err("the failed allocation must surface");
        assert!(matches!(e, ItsError::Alloc(_)), "allocation {k}: {e:?}");
        assert_eq!(plat.live_bytes(), 0, "allocation {k} failing leaked memory");
    }
}

#[test]
fn stalled_map_leaves_the_event_unmapped() {
    let r = Rig::new(ModelConfig::qemu(1));
    let mut dev = r.its().map_device(DeviceId::new(2), 4).unwrap();
    let done = r.model.counters(0).0;
    r.model.stall_at(0, Some(done));
    let e = r.its().map_event(&mut dev, 0, lpi(8192), 0).unwrap_err();
    let ItsError::Stalled { seq, opcode, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(seq, done, "{e:?}");
    assert_eq!(opcode, its_core::cmd::opcode::MAPTI, "{e:?}");
    // The queue remembers the command, doublewords and all.
    let c = r.its().queue().command(seq).unwrap();
    assert!(
        matches!(
            c.command(r.its().caps().version),
            Some(Command::Mapti { .. })
        ),
        "{c:?}"
    );
    assert!(e.to_string().contains("MAPTI"), "{e}");
    assert!(!dev.event(0).unwrap().is_mapped());
    assert!(r.model.ite(0, 2, 0).is_none(), "the ITS skipped it");
    // The queue goes on: the same mapping now works.
    r.its().map_event(&mut dev, 0, lpi(8192), 0).unwrap();
    assert!(r.model.ite(0, 2, 0).is_some());
    assert_eq!(r.model.errors().len(), 1, "only the injected stall");
}

#[test]
fn stalled_batch_maps_every_other_event() {
    let r = Rig::new(ModelConfig::qemu(1));
    let mut dev = r.its().map_device(DeviceId::new(2), 8).unwrap();
    let done = r.model.counters(0).0;
    r.model.stall_at(0, Some(done + 3));
    let items: Vec<(u32, Lpi, usize)> = (0..8).map(|e| (e, lpi(8192 + e), 0)).collect();
    assert!(matches!(
        r.its().map_events(&mut dev, &items),
        Err(ItsError::Stalled { .. })
    ));
    for e in 0..8 {
        assert_eq!(dev.event(e).unwrap().is_mapped(), e != 3, "event {e}");
        assert_eq!(r.model.ite(0, 2, e).is_some(), e != 3, "event {e}");
    }
    assert_eq!(dev.mapped_events(), 7);
}

#[test]
fn a_dead_its_is_given_up_and_its_memory_kept() {
    let r = Rig::new(ModelConfig::qemu(1));
    let live = r.plat.live_bytes();
    r.model.set_delay(0, Delay::Never);
    let e = r.its().map_device(DeviceId::new(3), 4).unwrap_err();
    assert!(matches!(e, ItsError::Timeout { .. }), "{e:?}");
    assert!(r.its().is_dead());
    // The ITT the ITS might still write is not freed (nor reused).
    assert!(r.plat.live_bytes() > live);
    assert_eq!(
        r.its().map_device(DeviceId::new(4), 4).unwrap_err(),
        ItsError::Dead
    );
    assert_eq!(r.its().invall(0), Err(ItsError::Dead));
}

#[test]
fn unmapping_a_device_frees_its_memory() {
    let r = Rig::new(ModelConfig::qemu(1));
    let live = r.plat.live_bytes();
    let mut dev = r.its().map_device(DeviceId::new(3), 32).unwrap();
    let items: Vec<(u32, Lpi, usize)> = (0..32).map(|e| (e, lpi(8192 + e), 0)).collect();
    r.its().map_events(&mut dev, &items).unwrap();
    r.its().unmap_device(&mut dev).unwrap();
    assert_eq!(
        r.plat.live_bytes(),
        live + r.its().device_table().l2_pages() * 0x1_0000
    );
    assert!(r.model.dte(0, 3).is_some_and(|d| !d.valid));
    // The DeviceID can be mapped again.
    let mut d = r.its().map_device(DeviceId::new(3), 2).unwrap();
    r.its().unmap_device(&mut d).unwrap();
    // Unmapped: the device is empty, and a second unmap is refused.
    assert_eq!(
        r.its().unmap_device(&mut d),
        Err(ItsError::DeviceNotMapped(3))
    );
    assert_eq!(d.event(0), Err(ItsError::DeviceNotMapped(3)));
    r.model.assert_no_errors();
}

#[test]
fn mapping_1024_events_costs_one_cwriter_write_and_one_wait() {
    let r = Rig::new(ModelConfig::qemu(1));
    let range = r.lpis.alloc(1024).unwrap();
    let mut dev = r.its().map_device(DeviceId::new(7), 1024).unwrap();
    let before = r.its().queue().stats();
    let items: Vec<(u32, Lpi, usize)> = (0..1024).map(|e| (e, range.get(e).unwrap(), 0)).collect();
    r.its().map_events(&mut dev, &items).unwrap();
    let s = r.its().queue().stats();
    assert_eq!(s.commands - before.commands, 1025, "1024 MAPTI + 1 SYNC");
    assert_eq!(s.cwriter_writes - before.cwriter_writes, 1);
    assert_eq!(s.waits - before.waits, 1);
    r.model.assert_no_errors();
}

#[test]
fn its_that_never_goes_quiescent_is_a_timeout() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.quiescent_reads = u32::MAX;
    let plat = FakePlatform::new();
    let model = GicModel::new(cfg.clone(), plat.clone());
    let its = model.its(0);
    // Enable it first so that disabling has to wait.
    {
        use its_core::mmio::ItsRegisters;
        let mut h = its.clone();
        let c = h.ctlr();
        h.set_ctlr(c.with_enabled(true));
    }
    // Enabled with no table: the model says so, and that is this test's doing.
    assert_eq!(model.errors().len(), 1);
    let e = Its::new(
        its,
        plat.clone(),
        &redists(&model),
        its_config(&cfg, &Settings::default(), 0),
    )
    .err()
    .unwrap();
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
    assert_eq!(plat.live_bytes(), 0);
}

#[test]
fn redistributor_that_does_not_wake_is_a_timeout() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.waker_reads = u32::MAX;
    let plat = FakePlatform::new();
    let model = GicModel::new(cfg.clone(), plat.clone());
    let lpis = its_cmdq::Lpis::new(&dist_caps(&cfg), plat.clone()).unwrap();
    let e = lpis
        .init_redistributor(&mut model.redist(0), core::time::Duration::from_millis(1))
        .unwrap_err();
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
}

#[test]
fn gicv41_capabilities_are_probed() {
    let r = Rig::new(ModelConfig::gicv41(2));
    assert_eq!(r.its().caps().version, its_core::cmd::ItsVersion::V4_1);
    assert!(r.model.redist(0).typer().rvpeid());
    assert!(r.model.redist(0).typer().direct_lpi());
    r.model.assert_no_errors();
}

#[test]
fn shutdown_frees_memory_only_once_the_gic_stops_using_it() {
    let plat = FakePlatform::new();
    let model = GicModel::new(ModelConfig::qemu(1), plat.clone());
    let cfg = model.config();
    let t = core::time::Duration::from_millis(1);
    let lpis = its_cmdq::Lpis::new(&dist_caps(&cfg), plat.clone()).unwrap();
    let pend = lpis.init_redistributor(&mut model.redist(0), t).unwrap();
    let before_its = plat.live_bytes();
    // An ITS dropped while enabled keeps its tables and queue: the ITS may still read them.
    let its = Its::new(
        model.its(0),
        plat.clone(),
        &redists(&model),
        its_config(&cfg, &Settings::default(), 0),
    )
    .unwrap();
    let its_bytes = plat.live_bytes() - before_its;
    drop(its);
    // Only the driver's own bookkeeping (the mapped-device list) is freed.
    assert_eq!(
        plat.live_bytes(),
        before_its + its_bytes - its_cmdq::MAX_DEVICES * 4
    );
    // A disabled one frees everything.
    let model2 = GicModel::new(ModelConfig::qemu(1), plat.clone());
    let before = plat.live_bytes();
    let its = Its::new(
        model2.its(0),
        plat.clone(),
        &redists(&model2),
        its_config(&cfg, &Settings::default(), 0),
    )
    .unwrap();
    its.disable(t).unwrap();
    assert!(its.is_dead(), "a disabled ITS takes no more work");
    assert!(model2.its(0).ctlr().quiescent());
    drop(its);
    assert_eq!(plat.live_bytes(), before);
    // A pending table dropped while its redistributor has LPIs on is kept; disabling frees it.
    let pend_bytes = pend.len();
    let live = plat.live_bytes();
    lpis.disable_redistributor(&mut model.redist(0), pend, t)
        .unwrap();
    assert_eq!(plat.live_bytes(), live - pend_bytes);
    assert!(!model.redist(0).ctlr().enable_lpis());
    let prop = plat.live_bytes();
    drop(lpis);
    assert!(
        plat.live_bytes() < prop,
        "no redistributor uses the property table any more"
    );
    model.assert_no_errors();
}

#[test]
fn lpis_dropped_while_a_redistributor_uses_them_keep_the_table() {
    let plat = FakePlatform::new();
    let model = GicModel::new(ModelConfig::qemu(1), plat.clone());
    let lpis = its_cmdq::Lpis::new(&dist_caps(&model.config()), plat.clone()).unwrap();
    let pend = lpis
        .init_redistributor(&mut model.redist(0), core::time::Duration::from_millis(1))
        .unwrap();
    let live = plat.live_bytes();
    drop(pend);
    drop(lpis);
    // Only the allocator's bitmap (2^16 bits) is freed: the redistributor still reads the
    // property and pending tables.
    assert_eq!(
        plat.live_bytes(),
        live - 0x2000,
        "the redistributor still reads both tables"
    );
}

/// A level-1 table entry the ITS reads non-shareable, behind a shareable command queue: its
/// clean to the point of coherency is completed by a DSB SY of its own before GITS_CWRITER
/// (the queue's DSB ISHST orders stores, not the clean's completion).
#[test]
fn level_one_entry_clean_completes_before_cwriter() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.non_shareable_tables = true;
    let r = Rig::new(cfg);
    assert!(r.its().device_table().is_indirect());
    assert!(r.its().device_table().cleans_to_poc());
    assert!(!r.its().queue().cleans_to_poc());
    let l1 = r.its().device_table().base().get();
    r.plat.clear_events();
    let mut dev = r.its().map_device(DeviceId::new(300), 2).unwrap();
    let ev = r.plat.events();
    let clean = ev
        .iter()
        .position(|e| matches!(e, Event::Clean { pa, .. } if *pa == l1))
        .expect("the level-1 entry is cleaned");
    let cwriter = ev[clean..]
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::Reg {
                    reg: "GITS_CWRITER",
                    ..
                }
            )
        })
        .expect("then the MAPD is posted")
        + clean;
    assert!(
        ev[clean..cwriter].contains(&Event::DsbSy),
        "no DSB SY between the clean and GITS_CWRITER: {:?}",
        &ev[clean..=cwriter]
    );
    r.its().unmap_device(&mut dev).unwrap();
    r.model.assert_no_errors();
}

/// `Its::shutdown` takes `&self`, as for an ITS kept in a static: refused while a device is
/// mapped (nothing changes), then the ITS disabled and quiescent, its queue and tables freed,
/// and every later call refused. On GICv4.1 the vPE table stays: the redistributors still
/// name it.
#[test]
fn shutdown_through_a_shared_reference_frees_the_queue_and_tables() {
    for cfg in [ModelConfig::qemu(2), ModelConfig::gicv41(2)] {
        let mut r = Rig::lpis_only(cfg.clone(), Settings::default()).unwrap();
        let base = r.plat.live_bytes();
        let its = r.bring_up_its(0).unwrap();
        r.its.push(its);
        let its = r.its();
        let t = core::time::Duration::from_millis(5);
        let mut dev = its.map_device(DeviceId::new(40000), 4).unwrap();
        let what = format!("{:?}", cfg.version);
        assert_eq!(its.shutdown(t), Err(ItsError::InUse(1)), "{what}");
        assert!(!its.is_dead() && r.model.its(0).ctlr().enabled(), "{what}");
        its.unmap_device(&mut dev).unwrap();
        let kept = if its.caps().version == its_core::cmd::ItsVersion::V4_1 {
            its.vpe_table().map_or(0, |t| t.bytes())
        } else {
            0
        };
        r.model.clear_commands(0);
        its.shutdown(t).unwrap();
        assert!(
            r.model.commands(0).is_empty(),
            "{what}: no command at shutdown"
        );
        assert!(its.is_shut_down() && its.is_dead(), "{what}");
        let ctlr = r.model.its(0).ctlr();
        assert!(!ctlr.enabled() && ctlr.quiescent(), "{what}");
        assert!(its.queue().is_released(), "{what}");
        assert!(its.device_table().is_released(), "{what}");
        assert_eq!(its.device_table().bytes(), 0, "{what}");
        // Freed, but a GICv4.1 vPE table (with the small record of its second-level pages).
        let left = r.plat.live_bytes() - base;
        assert!(
            left >= kept && left < kept + 0x1000,
            "{what}: {left} bytes left"
        );
        if kept == 0 {
            assert_eq!(left, 0, "{what}: everything freed");
        } else {
            assert!(!its.vpe_table().unwrap().is_released(), "{what}");
        }
        // Refused from now on; the getters still answer.
        assert_eq!(
            its.map_device(DeviceId::new(1), 2).err(),
            Some(ItsError::ShutDown),
            "{what}"
        );
        assert_eq!(its.invall(0), Err(ItsError::ShutDown), "{what}");
        assert_eq!(its.shutdown(t), Err(ItsError::ShutDown), "{what}");
        assert_eq!(its.cpu(1).map(|c| c.icid.get()), Ok(1), "{what}");
        drop(r.its.pop());
        assert_eq!(r.plat.live_bytes() - base, left, "{what}: dropped");
        r.model.assert_no_errors();
    }
}
