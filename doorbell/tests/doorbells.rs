// SPDX-License-Identifier: MIT OR Apache-2.0
//! Doorbells against the host model: allocation, lookup, invalidation, waiters.

use doorbell::{DoorbellConfig, DoorbellError, Doorbells, Waiter};
use its_core::cmd::Command;
use its_core::ids::{DeviceId, Lpi, VpeId};
use its_core::mmio::RedistRegisters;
use its_model::{Event, ModelConfig};
use its_testkit::Rig;

#[test]
fn blocks_are_contiguous_and_looked_up_in_constant_time() {
    let r = Rig::new(ModelConfig::qemu(2));
    let dbs = Doorbells::new(
        r.its(),
        &r.lpis,
        DoorbellConfig::proxy(DeviceId::new(0xffff), 8),
    )
    .unwrap();
    let a = dbs
        .alloc_block(&[
            (VpeId::new(10), 0),
            (VpeId::new(11), 1),
            (VpeId::new(12), 0),
        ])
        .unwrap();
    let b = dbs.alloc_block(&[(VpeId::new(20), 1)]).unwrap();
    assert_eq!(a.len(), 3);
    let base = dbs.range().base.get();
    assert_eq!(a.lpi(0).map(Lpi::get), Some(base));
    assert_eq!(a.lpi(2).map(Lpi::get), Some(base + 2));
    assert_eq!(a.lpi(3), None);
    assert_eq!(b.lpi(0).map(Lpi::get), Some(base + 3));
    assert_eq!(dbs.vpe_of(base + 1), Some(VpeId::new(11)));
    assert_eq!(dbs.vpe_of(base + 3), Some(VpeId::new(20)));
    assert_eq!(dbs.vpe_of(base + 4), None, "free");
    assert_eq!(dbs.vpe_of(base + 8), None, "outside the range");
    assert_eq!(dbs.vpe_of(100), None);
    // Each doorbell is mapped through the proxy device to its vPE's CPU, and disabled.
    for (i, cpu) in [(0u32, 0u16), (1, 1), (2, 0), (3, 1)] {
        let ite = r.model.ite(0, 0xffff, i).expect("proxy event mapped");
        assert_eq!((ite.intid, ite.icid), (base + i, cpu));
        assert_eq!(r.lpis.property(Lpi::new(base + i).unwrap()).unwrap() & 1, 0);
    }
    // Exhaustion, then reuse after free.
    assert_eq!(
        dbs.alloc_block(&[(VpeId::new(1), 0); 5]),
        Err(DoorbellError::Exhausted(5))
    );
    dbs.free_block(a).unwrap();
    assert!(r.model.ite(0, 0xffff, 0).is_none());
    let c = dbs.alloc_block(&[(VpeId::new(1), 0); 4]).unwrap();
    assert_eq!(
        c.lpi(0).map(Lpi::get),
        Some(base + 4),
        "first fit after the live block"
    );
    let d = dbs.alloc_block(&[(VpeId::new(2), 0); 3]).unwrap();
    assert_eq!(d.lpi(0).map(Lpi::get), Some(base));
    assert!(matches!(
        dbs.alloc_block(&[(VpeId::new(2), 9)]),
        Err(DoorbellError::Its(its_cmdq::ItsError::NoSuchCpu(9)))
    ));
    r.model.assert_no_errors();
}

#[test]
fn enable_goes_through_the_proxy_device_without_direct_lpi() {
    let r = Rig::new(ModelConfig::qemu(1));
    let dbs = Doorbells::new(
        r.its(),
        &r.lpis,
        DoorbellConfig::proxy(DeviceId::new(0xffff), 4),
    )
    .unwrap();
    let b = dbs.alloc_block(&[(VpeId::new(0), 0)]).unwrap();
    let db = b.lpi(0).unwrap();
    r.model.clear_commands(0);
    dbs.set_enabled(db, true, None).unwrap();
    assert!(dbs.is_enabled(db));
    assert_eq!(r.lpis.property(db).unwrap() & 1, 1);
    let cmds: Vec<Command> = r.model.commands(0).into_iter().map(|(_, c)| c).collect();
    assert!(
        matches!(cmds[0], Command::Inv { device, event } if device.get() == 0xffff && event.get() == 0),
        "{cmds:?}"
    );
    assert!(matches!(cmds[1], Command::Sync { .. }));
    // No GICR_INVLPIR on a GIC without DirectLPI.
    assert!(!r.plat.events().iter().any(|e| matches!(
        e,
        Event::Reg {
            reg: "GICR_INVLPIR",
            ..
        }
    )));
    r.model.assert_no_errors();
}

#[test]
fn enable_uses_invlpir_with_direct_lpi() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.direct_lpi = true;
    let r = Rig::new(cfg);
    let dbs = Doorbells::new(r.its(), &r.lpis, DoorbellConfig::direct(4)).unwrap();
    let b = dbs.alloc_block(&[(VpeId::new(0), 0)]).unwrap();
    let db = b.lpi(0).unwrap();
    assert_eq!(
        dbs.set_enabled(db, true, None),
        Err(DoorbellError::NeedRedistributor)
    );
    let mut rd = r.model.redist(0);
    dbs.set_enabled(db, true, Some(&mut rd as &mut dyn RedistRegisters))
        .unwrap();
    let ev = r.plat.events();
    let inv = ev.iter().position(|e| matches!(e, Event::Reg { reg: "GICR_INVLPIR", value, .. } if *value as u32 == db.get())).expect("INVLPIR");
    let write = ev
        .iter()
        .rposition(|e| matches!(e, Event::Write { len: 1, .. }))
        .expect("property byte written");
    assert!(write < inv, "property byte before the invalidation");
    r.model.assert_no_errors();
}

/// The hypervisor's vCPU, as an adopter writes it: the waiter is a plain field.
struct Vcpu {
    waiter: Waiter,
}

#[test]
fn handle_wakes_the_waiters_of_that_vpe() {
    let r = Rig::new(ModelConfig::qemu(1));
    let dbs = Doorbells::new(
        r.its(),
        &r.lpis,
        DoorbellConfig::proxy(DeviceId::new(0xffff), 4),
    )
    .unwrap();
    let b = dbs
        .alloc_block(&[(VpeId::new(7), 0), (VpeId::new(8), 0)])
        .unwrap();
    let (db7, db8) = (b.lpi(0).unwrap(), b.lpi(1).unwrap());
    // Waiters made after the VM, in vCPU structures on the stack, attached then.
    let vcpus: Vec<Vcpu> = (0..3)
        .map(|_| Vcpu {
            waiter: Waiter::new(),
        })
        .collect();
    assert_eq!(vcpus[0].waiter.doorbell(), None);
    assert!(dbs.is_woken(&vcpus[0].waiter), "nothing to wait for");
    assert_eq!(dbs.arm(&vcpus[0].waiter), Err(DoorbellError::Detached));
    dbs.attach(&vcpus[0].waiter, db7).unwrap();
    dbs.attach(&vcpus[1].waiter, db7).unwrap();
    dbs.attach(&vcpus[2].waiter, db8).unwrap();
    assert_eq!(vcpus[0].waiter.doorbell(), Some(db7));
    assert!(vcpus.iter().all(|v| !dbs.is_woken(&v.waiter)));
    dbs.set_enabled(db7, true, None).unwrap();
    assert_eq!(dbs.handle(db7.get()), Some(VpeId::new(7)));
    assert!(dbs.is_woken(&vcpus[0].waiter) && dbs.is_woken(&vcpus[1].waiter));
    assert!(!dbs.is_woken(&vcpus[2].waiter), "another vPE's doorbell");
    // Disabled by the interrupt path, the invalidation deferred to settle().
    assert!(!dbs.is_enabled(db7));
    assert_eq!(r.lpis.property(db7).unwrap() & 1, 0);
    r.model.clear_commands(0);
    dbs.settle(db7, None).unwrap();
    assert!(matches!(r.model.commands(0)[0].1, Command::Inv { .. }));
    dbs.settle(db7, None).unwrap();
    assert_eq!(r.model.commands(0).len(), 2, "settle is idempotent");
    // Armed again: woken only by a later ring, which here comes late (already disabled).
    dbs.arm(&vcpus[0].waiter).unwrap();
    assert!(!dbs.is_woken(&vcpus[0].waiter));
    assert!(dbs.is_woken(&vcpus[1].waiter), "not re-armed");
    assert_eq!(dbs.handle(db7.get()), Some(VpeId::new(7)));
    assert!(dbs.is_woken(&vcpus[0].waiter));
    assert_eq!(dbs.stats().rings, 1);
    assert_eq!(dbs.stats().late, 1);
    // Not a doorbell.
    assert_eq!(dbs.handle(8192 - 1), None);
    // A detached waiter follows nothing; the doorbell rings on without it.
    vcpus[2].waiter.detach();
    assert_eq!(vcpus[2].waiter.doorbell(), None);
    assert_eq!(dbs.handle(db8.get()), Some(VpeId::new(8)));
    assert_eq!(dbs.arm(&vcpus[2].waiter), Err(DoorbellError::Detached));
    // A vCPU structure can be dropped while attached: nothing refers to it.
    drop(vcpus);
    assert_eq!(dbs.handle(db7.get()), Some(VpeId::new(7)));
    r.model.assert_no_errors();
}

/// A waiter of a doorbell that is freed stops waiting, and cannot be armed on it again, even
/// once the doorbell is handed to another VM.
#[test]
fn waiters_of_a_freed_doorbell_stop_waiting() {
    let r = Rig::new(ModelConfig::qemu(1));
    let dbs = Doorbells::new(r.its(), &r.lpis, DoorbellConfig::direct(2)).unwrap();
    let b = dbs.alloc_block(&[(VpeId::new(1), 0)]).unwrap();
    let db = b.lpi(0).unwrap();
    let v = Vcpu {
        waiter: Waiter::new(),
    };
    dbs.attach(&v.waiter, db).unwrap();
    assert!(!dbs.is_woken(&v.waiter));
    dbs.free_block(b).unwrap();
    assert!(dbs.is_woken(&v.waiter), "freed: nothing to wait for");
    assert_eq!(dbs.arm(&v.waiter), Err(DoorbellError::Detached));
    assert_eq!(
        dbs.attach(&v.waiter, db),
        Err(DoorbellError::NotADoorbell(db.get()))
    );
    let again = dbs.alloc_block(&[(VpeId::new(2), 0)]).unwrap();
    assert_eq!(again.lpi(0), Some(db), "the same INTID, another VM");
    assert_eq!(dbs.arm(&v.waiter), Err(DoorbellError::Detached));
    assert!(dbs.is_woken(&v.waiter));
    dbs.attach(&v.waiter, db).unwrap();
    assert!(!dbs.is_woken(&v.waiter));
}

#[test]
fn doorbell_follows_the_vpe_to_another_cpu() {
    let r = Rig::new(ModelConfig::qemu(2));
    let dbs = Doorbells::new(
        r.its(),
        &r.lpis,
        DoorbellConfig::proxy(DeviceId::new(0xffff), 4),
    )
    .unwrap();
    let b = dbs.alloc_block(&[(VpeId::new(3), 0)]).unwrap();
    let db = b.lpi(0).unwrap();
    dbs.move_to(db, 1).unwrap();
    assert_eq!(r.model.ite(0, 0xffff, 0).map(|i| i.icid), Some(1));
    assert_eq!(
        dbs.move_to(Lpi::new(9999).unwrap(), 1),
        Err(DoorbellError::NotADoorbell(9999))
    );
    r.model.assert_no_errors();
}

#[test]
fn shutdown_needs_every_block_freed_then_returns_everything() {
    let r = Rig::new(ModelConfig::qemu(1));
    let l2 = |r: &Rig| {
        let t = r.its().device_table();
        t.l2_pages() * t.page_size().bytes()
    };
    let live = r.plat.live_bytes() - l2(&r);
    let dbs = Doorbells::new(
        r.its(),
        &r.lpis,
        DoorbellConfig::proxy(DeviceId::new(0x77), 16),
    )
    .unwrap();
    let range = dbs.range();
    let block = dbs
        .alloc_block(&[(VpeId::new(1), 0), (VpeId::new(2), 0)])
        .unwrap();
    assert_eq!(dbs.shutdown(), Err(DoorbellError::InUse(2)));
    // Still fully usable after the refusal.
    assert_eq!(dbs.vpe_of(block.lpi(1).unwrap().get()), Some(VpeId::new(2)));
    let db = block.lpi(0).unwrap();
    dbs.free_block(block).unwrap();
    dbs.shutdown().unwrap();
    // Dead: through `&self`, as doorbells in a static are.
    assert_eq!(dbs.shutdown(), Err(DoorbellError::ShutDown));
    assert_eq!(
        dbs.alloc_block(&[(VpeId::new(1), 0)]),
        Err(DoorbellError::ShutDown)
    );
    assert_eq!(
        dbs.set_enabled(db, true, None),
        Err(DoorbellError::ShutDown)
    );
    assert_eq!(dbs.handle(db.get()), None);
    assert!(!dbs.is_doorbell(db.get()));
    assert!(
        r.model.dte(0, 0x77).is_none_or(|d| !d.valid),
        "proxy unmapped"
    );
    // The LPI range is back in the allocator: the same INTIDs can be had again.
    let again = r.lpis.alloc(range.count).unwrap();
    assert_eq!(again.base, range.base);
    r.lpis.free(again).unwrap();
    // Dropped, the doorbells free their state too: everything is back but the device
    // table's second-level page, which belongs to the table.
    drop(dbs);
    assert_eq!(r.plat.live_bytes() - l2(&r), live, "nothing leaked");
    r.model.assert_no_errors();
}

#[test]
fn clear_pending_drops_a_disabled_doorbell_pending_state() {
    for direct in [false, true] {
        let mut cfg = ModelConfig::qemu(1);
        cfg.direct_lpi = direct;
        let r = Rig::new(cfg);
        let dbcfg = if direct {
            DoorbellConfig::direct(4)
        } else {
            DoorbellConfig::proxy(DeviceId::new(0x77), 4)
        };
        let dbs = Doorbells::new(r.its(), &r.lpis, dbcfg).unwrap();
        let block = dbs.alloc_block(&[(VpeId::new(1), 0)]).unwrap();
        let db = block.lpi(0).unwrap();
        let mut rd = r.model.redist(0);
        // Made pending while disabled (what a GICv4.0 ITS does for a vPE that is away).
        r.model.set_lpi_pending(0, db.get());
        assert!(r.model.pending_lpis(0).contains(&db.get()));
        dbs.clear_pending(db, Some(&mut rd)).unwrap();
        assert!(
            !r.model.pending_lpis(0).contains(&db.get()),
            "direct={direct}"
        );
        dbs.set_enabled(db, true, Some(&mut rd)).unwrap();
        assert_eq!(r.model.take_lpi(0), None, "nothing fires at enable");
        assert_eq!(
            dbs.clear_pending(Lpi::new(8191 + 9000).unwrap(), Some(&mut rd)),
            Err(DoorbellError::NotADoorbell(8191 + 9000))
        );
        if direct {
            assert_eq!(
                dbs.clear_pending(db, None),
                Err(DoorbellError::NeedRedistributor)
            );
        }
        r.model.assert_no_errors();
    }
}

/// `handle` (an interrupt on one CPU) and `move_to` / `set_enabled` (another CPU moving or
/// re-arming the vPE) update the same per-doorbell state word: no update may be lost.
#[test]
fn concurrent_handle_and_move_lose_no_update() {
    let mut cfg = ModelConfig::qemu(2);
    cfg.direct_lpi = true;
    let r = Rig::new(cfg);
    let dbs = r.doorbells(DoorbellConfig::direct(4)).unwrap();
    let block = dbs.alloc_block(&[(VpeId::new(5), 0)]).unwrap();
    let db = block.lpi(0).unwrap();
    const ROUNDS: usize = 20_000;
    let done = std::sync::atomic::AtomicBool::new(false);
    let start = std::sync::Barrier::new(2);
    let last = std::thread::scope(|s| {
        let mover = s.spawn(|| {
            start.wait();
            let mut k = 0usize;
            // Until the other thread is done, so the two really overlap.
            while !done.load(std::sync::atomic::Ordering::Acquire) || k < 1000 {
                let cpu = (k + 1) % 2;
                dbs.move_to(db, cpu).unwrap();
                assert_eq!(dbs.target_cpu(db), Some(cpu), "move {k} was lost");
                k += 1;
            }
            // Move k - 1, the last, went to CPU k % 2.
            k % 2
        });
        s.spawn(|| {
            let mut rd = r.model.redist(0);
            start.wait();
            for _ in 0..ROUNDS {
                dbs.set_enabled(db, true, Some(&mut rd)).unwrap();
                dbs.handle(db.get());
            }
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        mover.join().unwrap()
    });
    assert_eq!(dbs.target_cpu(db), Some(last));
    assert_eq!(dbs.vpe_of(db.get()), Some(VpeId::new(5)));
    assert!(!dbs.is_enabled(db), "the last handle disabled it");
    assert_eq!(
        dbs.stats().rings,
        ROUNDS as u64,
        "every enabled doorbell rang once"
    );
}

/// `handle` (the doorbell's interrupt on one CPU) races `make_non_resident(.., true)` (the
/// records read, and the doorbell enabled if they say disabled) on another, with real threads
/// and the starts swept across each other: once both have returned, the records never say
/// enabled over a disabled property byte. (`tests/findings.rs` forces the worst interleaving;
/// `tests/loom.rs` checks them all on the protocol.)
#[test]
fn concurrent_handle_and_enable_leave_records_and_byte_in_step() {
    for direct in [false, true] {
        let mut cfg = ModelConfig::qemu(2);
        cfg.direct_lpi = direct;
        let r = Rig::new(cfg);
        let dbs = r.doorbells(r.doorbell_config(4)).unwrap();
        let block = dbs.alloc_block(&[(VpeId::new(5), 0)]).unwrap();
        let db = block.lpi(0).unwrap();
        const ROUNDS: usize = 3_000;
        let start = std::sync::Barrier::new(2);
        let end = std::sync::Barrier::new(2);
        let spin = |n: usize| {
            for _ in 0..n {
                core::hint::spin_loop();
            }
        };
        // Failures are collected, not asserted in the loop: a thread that stopped early would
        // leave the other waiting at a barrier.
        let bad = std::thread::scope(|s| {
            s.spawn(|| {
                for k in 0..ROUNDS {
                    start.wait();
                    spin(k % 7 * 16);
                    dbs.handle(db.get());
                    end.wait();
                }
            });
            let mut rd = r.model.redist(0);
            let mut bad = Vec::new();
            for k in 0..ROUNDS {
                let armed = dbs.set_enabled(db, true, Some(&mut rd as &mut dyn RedistRegisters));
                start.wait();
                spin(k % 11 * 16);
                let again = if dbs.is_enabled(db) {
                    Ok(())
                } else {
                    dbs.set_enabled(db, true, Some(&mut rd as &mut dyn RedistRegisters))
                };
                end.wait();
                let byte = r.lpis.property(db).is_ok_and(|b| b & 1 != 0);
                if armed.is_err() || again.is_err() || (dbs.is_enabled(db) && !byte) {
                    bad.push((k, armed, again));
                }
            }
            bad
        });
        assert_eq!(
            bad.first(),
            None,
            "direct={direct}: {} of {ROUNDS} rounds ended enabled in the records over a \
             disabled byte (or failed)",
            bad.len()
        );
        assert_eq!(
            dbs.stats().rings,
            ROUNDS as u64,
            "each handle found it enabled"
        );
        r.model.assert_no_errors();
    }
}
