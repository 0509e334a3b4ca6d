// SPDX-License-Identifier: MIT OR Apache-2.0
//! Three findings of a review against IHI 0069 and Linux's GICv4 driver, each reproduced on
//! the host model:
//! 1. the doorbell interrupt path racing an enable on another CPU left the records enabled
//!    over a disabled property byte: a blocked vCPU that nothing wakes again;
//! 5. GICv4.1 doorbells were invalidated on one redistributor (GICR_INVLPIR, proxy INV), not
//!    with INVDB, which every redistributor sees;
//! 6. with DirectLPI, a moved vPE's doorbell stayed pending on the old redistributor.

use core::time::Duration;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::ThreadId;

use doorbell::{DoorbellConfig, Doorbells};
use its_cmdq::{Its, Lpis};
use its_core::cmd::Command;
use its_core::ids::{DeviceId, VLpi, VpeId};
use its_core::mmio::RedistRegisters;
use its_model::{Event, FakePlatform, GicModel, ModelConfig};
use its_testkit::rig::{dist_caps, its_config, redists};
use its_testkit::{Rig, Settings, with_v4};
use vpe_sched::{V4Config, VlpiConfig, VmConfig};

/// A pause in one thread's next 4-byte write to driver memory (a word of the doorbells'
/// state, not a byte of the LPI property table): the thread stops there, says so, and goes
/// on when told. Run by the platform's observer ([`FakePlatform::set_observer`]).
struct Pause {
    /// The thread to stop, while the pause is still to come.
    thread: Mutex<Option<ThreadId>>,
    /// Met when the thread stopped, then to let it go.
    stopped: Barrier,
    go: Barrier,
}

/// Finding 1. A stale doorbell is taken on one CPU (the old CPU of a vPE that moved) while
/// another CPU makes the vPE non-resident with its doorbell armed, which enables the doorbell
/// because the records already say disabled. The interrupt thread is stopped at its first
/// write to the doorbells' state (outside the property table), and the enable runs whole
/// right there. Afterwards the records and the property byte must agree, and the doorbell of
/// the now blocked vCPU must be able to ring.
#[test]
fn an_enable_inside_the_interrupt_paths_window_is_not_undone() {
    // QEMU's model, and the hardware-like one whose redistributors cache LPI configuration
    // until it is invalidated.
    for (proxy, hard) in [(true, false), (false, false), (true, true), (false, true)] {
        let mut cfg = ModelConfig::qemu(2);
        cfg.direct_lpi = !proxy;
        if hard {
            cfg = cfg.harden();
        }
        let settings = Settings::default();
        let plat = FakePlatform::new();
        let model = GicModel::new(cfg.clone(), plat.clone());
        let pause = Arc::new(Pause {
            thread: Mutex::new(None),
            stopped: Barrier::new(2),
            go: Barrier::new(2),
        });
        let pz = pause.clone();
        plat.set_observer(Some(Arc::new(move |e: &Event| {
            if !matches!(e, Event::Write { len: 4, .. }) {
                return;
            }
            let me = std::thread::current().id();
            let mut t = pz.thread.lock().unwrap();
            if *t == Some(me) {
                *t = None;
                drop(t);
                pz.stopped.wait();
                pz.go.wait();
            }
        })));
        let lpis = Lpis::new(&dist_caps(&cfg), plat.clone()).unwrap();
        let _pending: Vec<_> = (0..cfg.cpus)
            .map(|c| {
                lpis.init_redistributor(&mut model.redist(c), Duration::from_millis(5))
                    .unwrap()
            })
            .collect();
        let its = Its::new(
            model.its(0),
            plat.clone(),
            &redists(&model),
            its_config(&cfg, &settings, 0),
        )
        .unwrap();
        let dbcfg = if proxy {
            DoorbellConfig::proxy(DeviceId::new(0xffff), 4)
        } else {
            DoorbellConfig::direct(4)
        };
        let dbs = Doorbells::new(&its, &lpis, dbcfg).unwrap();
        let block = dbs.alloc_block(&[(VpeId::new(5), 1)]).unwrap();
        let db = block.lpi(0).unwrap();
        let mut rd1 = model.redist(1);
        // Armed on CPU 1 (the vPE blocked there once).
        dbs.set_enabled(db, true, Some(&mut rd1)).unwrap();
        let ringing = AtomicBool::new(false);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                *pause.thread.lock().unwrap() = Some(std::thread::current().id());
                ringing.store(true, Ordering::SeqCst);
                dbs.handle(db.get())
            });
            pause.stopped.wait();
            // The other CPU: `make_non_resident(.., true)` enables the doorbell when the
            // records say disabled.
            if !dbs.is_enabled(db) {
                dbs.set_enabled(db, true, Some(&mut rd1)).unwrap();
            }
            pause.go.wait();
            assert_eq!(h.join().unwrap(), Some(VpeId::new(5)));
        });
        assert!(ringing.load(Ordering::SeqCst));
        let byte = lpis.property(db).unwrap() & 1 != 0;
        assert_eq!(
            (dbs.is_enabled(db), byte),
            (byte, byte),
            "proxy={proxy} hard={hard}: the records say enabled={}, the property byte enabled={byte}",
            dbs.is_enabled(db)
        );
        // The vCPU now blocks: a vLPI for its vPE must ring its doorbell.
        dbs.settle(db, Some(&mut rd1)).unwrap();
        if !dbs.is_enabled(db) {
            dbs.set_enabled(db, true, Some(&mut rd1)).unwrap();
        }
        model.set_lpi_pending(1, db.get());
        assert_eq!(
            model.take_lpi(1),
            Some(db.get()),
            "proxy={proxy} hard={hard}: the blocked vCPU's doorbell cannot ring"
        );
        model.assert_no_errors();
    }
}

/// Finding 5. On GICv4.1 a vPE's doorbell is its default doorbell, which every
/// redistributor may cache: each enable (`make_non_resident(.., true)`) and each settle of a
/// disable by the interrupt path (`make_resident`) must be invalidated with INVDB for the
/// vPE, then VSYNC.
#[test]
fn gicv41_doorbells_are_invalidated_with_invdb() {
    let r = Rig::new(ModelConfig::gicv41(2));
    with_v4(&r, r.doorbell_config(8), V4Config::default(), |v| {
        let mut vm =
            v.g.create_vm(VmConfig {
                vintid_bits: 16,
                vpes: &[0],
            })
            .unwrap();
        let vpe = vm.vpe(0).unwrap();
        let (id, db) = (vpe.id(), vpe.doorbell());
        let invdb_then_vsync = |what: &str| {
            let cmds: Vec<Command> = r.model.commands(0).into_iter().map(|(_, c)| c).collect();
            let at = cmds
                .iter()
                .position(|c| matches!(c, Command::Invdb { vpe } if *vpe == id));
            assert!(
                at.is_some_and(|k| cmds[k + 1..]
                    .iter()
                    .any(|c| matches!(c, Command::Vsync { vpe } if *vpe == id))),
                "{what}: no INVDB + VSYNC for vPE {}: {cmds:?}",
                id.get()
            );
            r.model.clear_commands(0);
        };
        v.g.make_resident(&vm, 0, 0, &mut r.model.redist(0))
            .unwrap();
        r.model.clear_commands(0);
        v.g.make_non_resident(&vm, 0, &mut r.model.redist(0), true)
            .unwrap();
        assert!(v.dbs.is_enabled(db));
        invdb_then_vsync("the enable");
        assert_eq!(v.dbs.handle(db.get()), Some(id));
        v.g.make_resident(&vm, 0, 1, &mut r.model.redist(1))
            .unwrap();
        invdb_then_vsync("the settle of the interrupt path's disable");
        v.g.make_non_resident(&vm, 0, &mut r.model.redist(1), false)
            .unwrap();
        v.g.destroy_vm(&mut vm).unwrap();
    });
    r.model.assert_no_errors();
}

/// Finding 5, by delivery: on the hardware-like GICv4.1 model every redistributor holds the
/// default doorbell's property byte as of the last INVDB for its vPE. A blocked vPE's
/// doorbell (`make_non_resident(.., true)`, then a vLPI) must ring, on the CPU it blocked on
/// first and again after it moved to the other CPU, which an invalidation of one
/// redistributor (GICR_INVLPIR, proxy INV) would not reach.
#[test]
fn gicv41_blocked_vpe_doorbell_rings_on_hardware() {
    let r = Rig::new(ModelConfig::gicv41(2).harden());
    with_v4(&r, r.doorbell_config(8), V4Config::default(), |v| {
        let mut vm =
            v.g.create_vm(VmConfig {
                vintid_bits: 16,
                vpes: &[0],
            })
            .unwrap();
        let vpe = vm.vpe(0).unwrap();
        let (id, db) = (vpe.id(), vpe.doorbell());
        let mut dev = r.its[0].map_device(DeviceId::new(3), 2).unwrap();
        let vlpi = VlpiConfig {
            vintid: VLpi::new(8200).unwrap(),
            priority: 0xa0,
            enabled: true,
            doorbell: true,
        };
        v.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, vlpi).unwrap();
        for cpu in [0, 1] {
            v.g.make_resident(&vm, 0, cpu, &mut r.model.redist(cpu))
                .unwrap();
            if cpu == 1 {
                // The vLPI that rang the doorbell on CPU 0, delivered by the residency
                // (left pending, it would make the next deschedule report PendingLast and
                // arm no doorbell).
                assert_eq!(r.model.take_vlpi(1), Some(8200));
            }
            v.g.make_non_resident(&vm, 0, &mut r.model.redist(cpu), true)
                .unwrap();
            r.its[0].int_event(&dev, 0).unwrap();
            assert_eq!(
                r.model.take_lpi(cpu),
                Some(db.get()),
                "CPU {cpu}: the blocked vPE's doorbell did not ring (pending: {:?})",
                r.model.pending_lpis(cpu)
            );
            assert_eq!(v.dbs.handle(db.get()), Some(id));
        }
        v.g.make_resident(&vm, 0, 1, &mut r.model.redist(1))
            .unwrap();
        assert_eq!(
            r.model.take_vlpi(1),
            Some(8200),
            "the vLPI behind the doorbell"
        );
        v.g.make_non_resident(&vm, 0, &mut r.model.redist(1), false)
            .unwrap();
        v.g.unmap_vlpi(&r.its[0], &mut dev, 0, &vm, false).unwrap();
        r.its[0].unmap_device(&mut dev).unwrap();
        v.g.destroy_vm(&mut vm).unwrap();
    });
    r.model.assert_no_errors();
}

/// Finding 6. With DirectLPI, a doorbell made pending on its redistributor while disabled
/// (a vLPI after the interrupt path's disable) stays there when the vPE moves: at the next
/// enable it fires on the old CPU, for a vPE that is elsewhere. `move_to` must clear it on
/// the old redistributor.
#[test]
fn direct_lpi_move_clears_the_doorbell_on_the_old_redistributor() {
    for hard in [false, true] {
        let mut cfg = ModelConfig::qemu(2);
        cfg.direct_lpi = true;
        if hard {
            cfg = cfg.harden();
        }
        direct_lpi_move_on(cfg);
    }
}

fn direct_lpi_move_on(cfg: ModelConfig) {
    let r = Rig::new(cfg);
    let dbs = r.doorbells(DoorbellConfig::direct(4)).unwrap();
    let block = dbs.alloc_block(&[(VpeId::new(3), 0)]).unwrap();
    let db = block.lpi(0).unwrap();
    let mut rd0 = r.model.redist(0);
    let mut rd1 = r.model.redist(1);
    dbs.set_enabled(db, true, Some(&mut rd0 as &mut dyn RedistRegisters))
        .unwrap();
    // It rang on CPU 0 and was disabled; a second vLPI made it pending again there.
    r.model.set_lpi_pending(0, db.get());
    assert_eq!(r.model.take_lpi(0), Some(db.get()));
    assert_eq!(dbs.handle(db.get()), Some(VpeId::new(3)));
    r.model.set_lpi_pending(0, db.get());
    // The vPE moves to CPU 1 (VMOVP, then the doorbell follows).
    dbs.move_to(db, 1).unwrap();
    assert!(
        !r.model.pending_lpis(0).contains(&db.get()),
        "the doorbell is still pending on CPU 0's redistributor after the move"
    );
    // Armed again on CPU 1: nothing fires on CPU 0.
    dbs.settle(db, Some(&mut rd1 as &mut dyn RedistRegisters))
        .unwrap();
    dbs.set_enabled(db, true, Some(&mut rd1 as &mut dyn RedistRegisters))
        .unwrap();
    assert_eq!(r.model.take_lpi(0), None, "a stale doorbell on the old CPU");
    r.model.assert_no_errors();
}
