// SPDX-License-Identifier: MIT OR Apache-2.0
//! The GICv4 layer against the host model: VMs, residency, doorbells, vLPIs, VMOVP, GICv4.1.

use core::time::Duration;

use doorbell::Waiter;
use its_cmdq::Device;
use its_core::cmd::{Command, ItsVersion};
use its_core::ids::{DeviceId, SgiId, SgiPriority, VLpi};
use its_model::{FakePlatform, ModelConfig, RedistHandle};
use its_testkit::V4;
use its_testkit::sweep::with_allocation_failing;
use vpe_sched::{Residency, V4Config, VlpiConfig, VlpiProp, Vm, VmConfig, VpeError, VsgiConfig};

type P = FakePlatform;

/// The GICv4 layer on a leaked rig (5 ms waits, 256 doorbells), with the helpers these tests
/// share.
struct Rig(V4<'static>);

impl core::ops::Deref for Rig {
    type Target = V4<'static>;

    fn deref(&self) -> &V4<'static> {
        &self.0
    }
}

fn rig(cfg: ModelConfig) -> Rig {
    let gic = its_testkit::Rig::new(cfg);
    let dbs = gic.doorbell_config(256);
    let v4 = V4Config {
        dirty_timeout: Duration::from_millis(1),
        ..V4Config::default()
    };
    Rig(V4::leak(gic, dbs, v4))
}

impl Rig {
    fn rd(&self, cpu: usize) -> RedistHandle {
        self.model.redist(cpu)
    }

    fn vm(&self, vpes: &[usize]) -> Vm<P> {
        self.g
            .create_vm(VmConfig {
                vintid_bits: 16,
                vpes,
            })
            .unwrap()
    }

    fn device(&self, id: u32, events: u32) -> Device<P> {
        self.its[0].map_device(DeviceId::new(id), events).unwrap()
    }
}

fn cfg(v: u32, enabled: bool) -> VlpiConfig {
    VlpiConfig {
        vintid: VLpi::new(v).unwrap(),
        priority: 0xa0,
        enabled,
        doorbell: true,
    }
}

#[test]
fn vm_creation_maps_every_vpe_and_teardown_frees_everything() {
    let r = rig(ModelConfig::qemu(2));
    let live = r.plat.live_bytes();
    let mut vm = r.vm(&[0, 1, 1]);
    for (i, v) in vm.vpes().iter().enumerate() {
        let vte = r.model.vte(0, v.id().get()).expect("VTE");
        assert!(vte.valid);
        assert_eq!(vte.vpt, v.vpt().get());
        assert_eq!(vte.vpt_size, 15);
        assert_eq!(usize::from(vte.rd), [0, 1, 1][i]);
        assert_eq!(r.dbs.vpe_of(v.doorbell().get()), Some(v.id()));
    }
    let cmds: Vec<Command> = r.model.commands(0).into_iter().map(|(_, c)| c).collect();
    assert_eq!(
        cmds.iter()
            .filter(|c| matches!(c, Command::Vinvall { .. }))
            .count(),
        3
    );
    let ids: Vec<u16> = vm.vpes().iter().map(|v| v.id().get()).collect();
    r.g.destroy_vm(&mut vm).unwrap();
    for id in ids {
        assert!(r.model.vte(0, id).is_some_and(|v| !v.valid));
        assert_eq!(r.dbs.vpe_of(8192), None);
    }
    // Everything is freed but the vPE table's second-level page, which belongs to the table.
    let l2 = r.its[0].vpe_table().unwrap();
    let l2_bytes = if l2.is_indirect() {
        l2.l2_pages() * l2.page_size().bytes()
    } else {
        0
    };
    assert_eq!(r.plat.live_bytes(), live + l2_bytes);
    r.model.assert_no_errors();
}

#[test]
fn resident_vpe_receives_vlpis_directly() {
    let r = rig(ModelConfig::qemu(2));
    let vm = r.vm(&[0]);
    let mut dev = r.device(1, 4);
    r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, cfg(8192, true))
        .unwrap();
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    r.g.commit(&mut r.rd(0)).unwrap();
    assert_eq!(r.model.resident(0), Some(vm.vpe(0).unwrap().vpt().get()));
    r.its[0].int_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_vlpi(0), Some(8192));
    assert_eq!(r.model.take_lpi(0), None, "no doorbell while resident");
    r.model.assert_no_errors();
}

#[test]
fn pending_while_non_resident_is_delivered_at_residency() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    let mut dev = r.device(1, 4);
    r.g.map_vlpi(&r.its[0], &mut dev, 2, &vm, 0, cfg(8300, true))
        .unwrap();
    r.its[0].int_event(&dev, 2).unwrap();
    assert!(vm.vpe(0).unwrap().vpt_pending(8300));
    // The doorbell was never armed: nothing for the hypervisor.
    assert_eq!(r.model.take_lpi(0), None);
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    assert_eq!(r.model.take_vlpi(0), Some(8300));
    r.model.assert_no_errors();
}

/// After `Doorbells::handle` disabled a doorbell, a second vLPI while the vPE is away: QEMU
/// reads the property byte at each use, so nothing is delivered. A redistributor that caches
/// it (the hardware-like model) still has it enabled, because the doorbell crate leaves the
/// invalidation to the next `settle` (the next residency): the doorbell is delivered once
/// more, and `handle` must count it late, not wake anyone again. Returns whether it came.
fn late_doorbell(r: &Rig, db: Option<u32>) -> bool {
    let late = r.dbs.stats().late;
    match r.model.take_lpi(1) {
        None => false,
        Some(got) => {
            assert!(
                r.model.config().strict.config_cache,
                "a disabled doorbell delivered: {got}"
            );
            if let Some(db) = db {
                assert_eq!(got, db);
            }
            r.dbs.handle(got);
            assert_eq!(r.dbs.stats().late, late + 1, "counted late");
            true
        }
    }
}

#[test]
fn doorbell_wakes_the_vcpu_exactly_once() {
    let r = rig(ModelConfig::qemu(2));
    let vm = r.vm(&[1]);
    let vpe = vm.vpe(0).unwrap();
    let waiter = Waiter::new();
    r.dbs.attach(&waiter, vpe.doorbell()).unwrap();
    let mut dev = r.device(1, 4);
    r.g.map_vlpis(
        &r.its[0],
        &mut dev,
        &vm,
        &[(0, 0, cfg(8192, true)), (1, 0, cfg(8193, true))],
    )
    .unwrap();
    r.g.make_resident(&vm, 0, 1, &mut r.rd(1)).unwrap();
    // The guest blocks in WFI: the hypervisor arms the vCPU's waiter, then deschedules it
    // with the doorbell armed.
    r.dbs.arm(&waiter).unwrap();
    let d = r.g.make_non_resident(&vm, 0, &mut r.rd(1), true).unwrap();
    assert!(!d.pending_last);
    assert!(r.dbs.is_enabled(vpe.doorbell()));
    assert!(!r.dbs.is_woken(&waiter));
    r.its[0].int_event(&dev, 0).unwrap();
    let db = r
        .model
        .take_lpi(1)
        .expect("the doorbell rings on the VTE's CPU");
    assert_eq!(db, vpe.doorbell().get());
    assert_eq!(r.dbs.handle(db), Some(vpe.id()));
    r.g.doorbell_rang(&vm, 0);
    assert!(r.dbs.is_woken(&waiter));
    // A second vLPI before the vCPU runs does not ring again: one doorbell per wake-up.
    r.its[0].int_event(&dev, 1).unwrap();
    late_doorbell(&r, None);
    assert_eq!(
        vpe.residency(),
        Residency::NonResident {
            pending_last: true,
            idai: false
        }
    );
    r.g.make_resident(&vm, 0, 1, &mut r.rd(1)).unwrap();
    let mut got = vec![r.model.take_vlpi(1), r.model.take_vlpi(1)];
    got.sort();
    assert_eq!(got, [Some(8192), Some(8193)]);
    assert_eq!(r.dbs.stats().rings, 1);
    r.model.assert_no_errors();
}

#[test]
fn masked_vlpi_does_not_ring_the_doorbell() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    let mut dev = r.device(1, 2);
    r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, cfg(8192, false))
        .unwrap();
    assert_eq!(
        r.model.ite(0, 1, 0).map(|i| i.doorbell),
        Some(1023),
        "masked: no doorbell in the ITE"
    );
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    r.g.make_non_resident(&vm, 0, &mut r.rd(0), true).unwrap();
    r.its[0].int_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_lpi(0), None);
    // Unmasked: VMOVI puts the doorbell back.
    r.g.update_vlpi(
        &r.its[0],
        &dev,
        0,
        &vm,
        VlpiProp {
            priority: 0xa0,
            enabled: true,
            inv: true,
        },
    )
    .unwrap();
    assert_eq!(
        r.model.ite(0, 1, 0).map(|i| i.doorbell),
        Some(vm.vpe(0).unwrap().doorbell().get())
    );
    r.model.assert_no_errors();
}

#[test]
fn moving_to_another_cpu_issues_vmovp_first() {
    let r = rig(ModelConfig::qemu(2));
    let vm = r.vm(&[0]);
    let mut dev = r.device(1, 2);
    r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, cfg(8192, true))
        .unwrap();
    let id = vm.vpe(0).unwrap().id();
    for cpu in [1usize, 0, 1] {
        r.model.clear_commands(0);
        r.g.make_resident(&vm, 0, cpu, &mut r.rd(cpu)).unwrap();
        let cmds: Vec<Command> = r.model.commands(0).into_iter().map(|(_, c)| c).collect();
        assert!(
            matches!(cmds[0], Command::Vmovp { vpe, .. } if vpe == id),
            "{cmds:?}"
        );
        assert_eq!(
            r.model.vte(0, id.get()).map(|v| usize::from(v.rd)),
            Some(cpu)
        );
        // The doorbell's proxy event followed the vPE.
        let db = vm.vpe(0).unwrap().doorbell();
        let slot = db.get() - r.dbs.range().base.get();
        assert_eq!(
            r.model.ite(0, 0xffff, slot).map(|i| usize::from(i.icid)),
            Some(cpu)
        );
        r.its[0].int_event(&dev, 0).unwrap();
        assert_eq!(
            r.model.take_vlpi(cpu),
            Some(8192),
            "the vLPI follows to CPU {cpu}"
        );
        r.g.make_non_resident(&vm, 0, &mut r.rd(cpu), false)
            .unwrap();
    }
    r.model.assert_no_errors();
}

#[test]
fn unmap_restores_the_host_lpi() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    let host = r.lpis.alloc(1).unwrap().base;
    r.lpis.configure(host, 0xa0, true).unwrap();
    let mut dev = r.device(1, 2);
    r.its[0].map_event(&mut dev, 0, host, 0).unwrap();
    // The redistributor may hold the property byte from before `configure`: invalidate.
    r.its[0].inv_event(&dev, 0).unwrap();
    r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, cfg(8192, true))
        .unwrap();
    assert!(r.model.ite(0, 1, 0).is_some_and(|i| !i.physical));
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    r.g.unmap_vlpi(&r.its[0], &mut dev, 0, &vm, true).unwrap();
    r.its[0].int_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_vlpi(0), None, "nothing delivered after unmap");
    assert_eq!(r.model.take_lpi(0), Some(host.get()));
    assert_eq!(vm.vpe(0).unwrap().vlpis(), 0);
    r.model.assert_no_errors();
}

#[test]
fn vlpi_moves_between_vpes_of_the_vm() {
    let r = rig(ModelConfig::qemu(2));
    let vm = r.vm(&[0, 1]);
    let mut dev = r.device(1, 2);
    r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, cfg(8192, true))
        .unwrap();
    r.g.move_vlpi(&r.its[0], &mut dev, 0, &vm, 1).unwrap();
    r.its[0].int_event(&dev, 0).unwrap();
    assert!(vm.vpe(1).unwrap().vpt_pending(8192));
    assert!(!vm.vpe(0).unwrap().vpt_pending(8192));
    assert_eq!(vm.vpe(1).unwrap().vlpis(), 1);
    r.model.assert_no_errors();
}

#[test]
fn property_update_with_invalidation() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    let mut dev = r.device(1, 2);
    r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, cfg(8192, true))
        .unwrap();
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    r.g.update_vlpi(
        &r.its[0],
        &dev,
        0,
        &vm,
        VlpiProp {
            priority: 0xa0,
            enabled: false,
            inv: true,
        },
    )
    .unwrap();
    r.its[0].int_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_vlpi(0), None, "disabled: not delivered");
    r.g.update_vlpi(
        &r.its[0],
        &dev,
        0,
        &vm,
        VlpiProp {
            priority: 0xa0,
            enabled: true,
            inv: true,
        },
    )
    .unwrap();
    assert_eq!(r.model.take_vlpi(0), Some(8192), "enabled: delivered");
    assert_eq!(r.model.take_vlpi(0), None, "once");
    r.g.invall_vpe::<RedistHandle>(&vm, 0, None).unwrap();
    r.model.assert_no_errors();
}

#[test]
fn bad_requests_are_typed_errors() {
    let r = rig(ModelConfig::qemu(2));
    let mut vm = r.vm(&[0]);
    let mut other = r.vm(&[1]);
    let mut dev = r.device(1, 4);
    let before = r.model.counters(0);
    assert_eq!(
        r.g.create_vm(VmConfig {
            vintid_bits: 17,
            vpes: &[0]
        })
        .err(),
        Some(VpeError::Config(
            "vINTID bits must be from 14 to the GIC's maximum"
        ))
    );
    assert!(matches!(
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[]
        }),
        Err(VpeError::Config(_))
    ));
    assert!(matches!(
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[5]
        }),
        Err(VpeError::NoSuchCpu(5))
    ));
    assert!(matches!(
        r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 3, cfg(8192, true)),
        Err(VpeError::NoSuchVpe(3))
    ));
    assert!(matches!(
        r.g.map_vlpi(&r.its[0], &mut dev, 9, &vm, 0, cfg(8192, true)),
        Err(VpeError::Its(_))
    ));
    assert_eq!(
        r.model.counters(0),
        before,
        "refused requests reach nothing"
    );
    let mut vm14 =
        r.g.create_vm(VmConfig {
            vintid_bits: 14,
            vpes: &[0],
        })
        .unwrap();
    let before = r.model.counters(0);
    assert_eq!(
        r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm14, 0, cfg(16384, true)),
        Err(VpeError::VintidOutOfRange {
            vintid: 16384,
            bits: 14
        })
    );
    assert_eq!(r.model.counters(0), before, "nothing reached the ITS");
    r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, cfg(8192, true))
        .unwrap();
    assert_eq!(
        r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, cfg(8193, true)),
        Err(VpeError::AlreadyForwarded {
            device: 1,
            event: 0
        })
    );
    assert_eq!(
        r.g.unmap_vlpi(&r.its[0], &mut dev, 0, &other, false),
        Err(VpeError::WrongVm {
            device: 1,
            event: 0
        })
    );
    assert_eq!(
        r.g.unmap_vlpi(&r.its[0], &mut dev, 1, &vm, false),
        Err(VpeError::NotForwarded {
            device: 1,
            event: 1
        })
    );
    // Residency rules.
    assert!(matches!(
        r.g.make_non_resident(&vm, 0, &mut r.rd(0), false),
        Err(VpeError::Residency(_))
    ));
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    assert!(matches!(
        r.g.make_resident(&vm, 0, 1, &mut r.rd(1)),
        Err(VpeError::Residency(_))
    ));
    assert!(matches!(
        r.g.make_resident(&vm14, 0, 0, &mut r.rd(0)),
        Err(VpeError::RedistBusy { cpu: 0, .. })
    ));
    assert!(matches!(
        r.g.make_resident(&vm14, 0, 7, &mut r.rd(0)),
        Err(VpeError::NoSuchCpu(7))
    ));
    // A VM in use cannot be destroyed, and comes back whole.
    let e = r.g.destroy_vm(&mut vm).unwrap_err();
    assert_eq!(e, VpeError::InUse("a vPE is resident"));
    assert!(!vm.is_destroyed());
    r.g.make_non_resident(&vm, 0, &mut r.rd(0), false).unwrap();
    let e = r.g.destroy_vm(&mut vm).unwrap_err();
    assert_eq!(e, VpeError::InUse("vLPIs are still mapped"));
    r.g.unmap_vlpi(&r.its[0], &mut dev, 0, &vm, false).unwrap();
    r.g.destroy_vm(&mut vm).unwrap();
    // Destroyed: empty, and refused a second time.
    assert!(vm.is_destroyed() && vm.vpes().is_empty() && vm.table_bytes() == 0);
    assert_eq!(r.g.destroy_vm(&mut vm), Err(VpeError::VmDestroyed));
    assert_eq!(vm.property(8192), Err(VpeError::VmDestroyed));
    r.g.destroy_vm(&mut vm14).unwrap();
    r.g.destroy_vm(&mut other).unwrap();
    r.model.assert_no_errors();
}

#[test]
fn vmovp_is_serialised_across_itses_without_single_vmovp() {
    let mut c = ModelConfig::qemu(2);
    c.its_count = 2;
    c.single_vmovp = false;
    let r = rig(c);
    let vm = r.vm(&[0, 0]);
    for round in 0..3 {
        for i in 0..2 {
            let cpu = (round + i + 1) % 2;
            r.g.make_resident(&vm, i, cpu, &mut r.rd(cpu)).unwrap();
            r.g.make_non_resident(&vm, i, &mut r.rd(cpu), false)
                .unwrap();
        }
    }
    let seqs = |n: usize| -> Vec<(u16, u16)> {
        r.model
            .commands(n)
            .into_iter()
            .filter_map(|(_, c)| match c {
                Command::Vmovp { seq, its_list, .. } => Some((seq, its_list)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        seqs(0),
        seqs(1),
        "both ITSs saw the same VMOVPs in the same order"
    );
    assert!(seqs(0).iter().all(|&(_, list)| list == 0b11));
    assert!(seqs(0).windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(1)));
    assert!(!seqs(0).is_empty());
    for n in 0..2 {
        for v in vm.vpes() {
            assert_eq!(
                r.model.vte(n, v.id().get()).map(|t| t.rd),
                Some(v.affinity() as u16)
            );
        }
    }
    r.model.assert_no_errors();
}

#[test]
fn gicv41_paths() {
    let r = rig(ModelConfig::gicv41(2));
    assert_eq!(r.g.version(), ItsVersion::V4_1);
    let vm = r.vm(&[0]);
    let v = vm.vpe(0).unwrap();
    let vmapp = r.model.commands(0).into_iter().find_map(|(_, c)| match c {
        Command::VmappV41 {
            vpe,
            vconf,
            default_db,
            alloc,
            ptz,
            ..
        } if vpe == v.id() => Some((vconf, default_db, alloc, ptz)),
        _ => None,
    });
    let (vconf, default_db, alloc, ptz) = vmapp.expect("a GICv4.1 VMAPP");
    assert_eq!(default_db, v.doorbell().intid());
    assert!(
        alloc && !ptz,
        "Alloc on first map; PTZ never set (as Linux)"
    );
    assert_ne!(vconf.get(), 0);
    let mut dev = r.device(1, 2);
    r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, cfg(8192, true))
        .unwrap();
    assert_eq!(
        r.model.ite(0, 1, 0).map(|i| i.doorbell),
        Some(1023),
        "GICv4.1: no individual doorbell"
    );
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    r.g.commit(&mut r.rd(0)).unwrap();
    assert_eq!(
        r.model.resident(0),
        Some(u64::from(v.id().get())),
        "GICR_VPENDBASER names the vPE by ID"
    );
    r.its[0].int_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_vlpi(0), Some(8192));
    // Deschedule with the doorbell requested: the default doorbell rings.
    r.g.make_non_resident(&vm, 0, &mut r.rd(0), true).unwrap();
    r.lpis.configure(v.doorbell(), 0x80, true).unwrap();
    r.its[0].int_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_lpi(0), Some(v.doorbell().get()));
    r.g.update_vsgi(
        &vm,
        0,
        VsgiConfig {
            sgi: SgiId::new(3).unwrap(),
            priority: SgiPriority::new(0xa0).unwrap(),
            group: true,
            enable: true,
            clear: false,
        },
    )
    .unwrap();
    r.g.invdb(&vm, 0).unwrap();
    r.g.invall_vpe(&vm, 0, Some(&mut r.rd(0))).unwrap();
    let cmds: Vec<Command> = r.model.commands(0).into_iter().map(|(_, c)| c).collect();
    assert!(cmds.iter().any(|c| matches!(c, Command::Vsgi { .. })));
    assert!(cmds.iter().any(|c| matches!(c, Command::Invdb { .. })));
    assert!(r.plat.events().iter().any(|e| matches!(
        e,
        its_model::Event::Reg {
            reg: "GICR_INVALLR",
            ..
        }
    )));
    r.model.assert_no_errors();
}

#[test]
fn gicv40_refuses_gicv41_operations() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    assert_eq!(r.g.invdb(&vm, 0), Err(VpeError::NeedsV41("INVDB")));
    assert!(matches!(
        r.g.update_vsgi(
            &vm,
            0,
            VsgiConfig {
                sgi: SgiId::new(0).unwrap(),
                priority: SgiPriority::new(0).unwrap(),
                group: false,
                enable: false,
                clear: false
            }
        ),
        Err(VpeError::NeedsV41("VSGI"))
    ));
}

#[test]
fn dirty_is_polled_and_bounded() {
    let mut c = ModelConfig::qemu(1);
    c.dirty_reads = Some(3);
    let r = rig(c.clone());
    let vm = r.vm(&[0]);
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    r.g.commit(&mut r.rd(0)).unwrap();
    let d = r.g.make_non_resident(&vm, 0, &mut r.rd(0), false).unwrap();
    assert!(!d.dirty_timeout);
    // A redistributor that stays dirty: bounded wait, PendingLast assumed.
    c.dirty_reads = Some(u32::MAX);
    let r = rig(c);
    let vm = r.vm(&[0]);
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    assert!(matches!(
        r.g.commit(&mut r.rd(0)),
        Err(VpeError::DirtyTimeout { .. })
    ));
    let d = r.g.make_non_resident(&vm, 0, &mut r.rd(0), false).unwrap();
    assert!(d.dirty_timeout && d.pending_last);
}

#[test]
fn vm_creation_allocation_failures_leak_nothing() {
    // Count the allocations of a VM creation, then fail each in turn. A first VM is made and
    // destroyed so the vPE table's second-level page (allocated once) is already there.
    let r = rig(ModelConfig::qemu(2));
    let mut warm = r.vm(&[0, 1]);
    r.g.destroy_vm(&mut warm).unwrap();
    let base = r.plat.allocations();
    let mut vm = r.vm(&[0, 1]);
    let n = r.plat.allocations() - base;
    r.g.destroy_vm(&mut vm).unwrap();
    let live = r.plat.live_bytes();
    for k in 0..n {
        let (res, reached) = with_allocation_failing(&r.plat, k, || {
            r.g.create_vm(VmConfig {
                vintid_bits: 16,
                vpes: &[0, 1],
            })
        });
        assert!(reached, "allocation {k}");
        let e = res.unwrap_err();
        assert!(
            matches!(e, VpeError::Its(its_cmdq::ItsError::Alloc(_))),
            "allocation {k}: {e:?}"
        );
        assert_eq!(
            r.plat.live_bytes(),
            live,
            "allocation {k} failing leaked memory"
        );
    }
    // IDs and doorbells were released too: a VM can still be made.
    let mut vm = r.vm(&[0, 1]);
    r.g.destroy_vm(&mut vm).unwrap();
    r.model.assert_no_errors();
}

#[test]
fn many_vpes_rescheduled_lose_nothing() {
    let r = rig(ModelConfig::qemu(2));
    let cpus: Vec<usize> = (0..32).map(|i| i % 2).collect();
    let vm = r.vm(&cpus);
    let mut dev = r.device(2, 64);
    let items: Vec<(u32, usize, VlpiConfig)> = (0..64)
        .map(|e| (e, e as usize % 32, cfg(8192 + e, true)))
        .collect();
    r.g.map_vlpis(&r.its[0], &mut dev, &vm, &items).unwrap();
    let mut seen = vec![0u32; 64];
    for round in 0..4 {
        // Fire every event while all vPEs are away, then schedule each vPE in turn.
        for e in 0..64 {
            r.its[0].int_event(&dev, e).unwrap();
        }
        for i in 0..32 {
            let cpu = (i + round) % 2;
            r.g.make_resident(&vm, i, cpu, &mut r.rd(cpu)).unwrap();
            while let Some(v) = r.model.take_vlpi(cpu) {
                seen[(v - 8192) as usize] += 1;
            }
            r.g.make_non_resident(&vm, i, &mut r.rd(cpu), false)
                .unwrap();
        }
    }
    assert!(seen.iter().all(|&n| n == 4), "{seen:?}");
    r.model.assert_no_errors();
}

#[test]
fn batched_vlpi_map_costs_one_cwriter_write() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    let mut dev = r.device(3, 256);
    let before = r.its[0].queue().stats();
    let items: Vec<(u32, usize, VlpiConfig)> =
        (0..256).map(|e| (e, 0, cfg(8192 + e, true))).collect();
    r.g.map_vlpis(&r.its[0], &mut dev, &vm, &items).unwrap();
    let s = r.its[0].queue().stats();
    assert_eq!(
        s.commands - before.commands,
        258,
        "256 VMAPTI + 1 VINVALL + 1 VSYNC"
    );
    assert_eq!(s.cwriter_writes - before.cwriter_writes, 1);
    r.model.assert_no_errors();
}

#[test]
fn stalled_vmapti_gives_the_event_its_host_lpi_back() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    let host = r.lpis.alloc(2).unwrap();
    for l in host.iter() {
        r.lpis.configure(l, 0xa0, true).unwrap();
    }
    let mut dev = r.device(1, 2);
    r.its[0]
        .map_events(&mut dev, &[(0, host.base, 0), (1, host.get(1).unwrap(), 0)])
        .unwrap();
    // The redistributor may hold the property bytes from before `configure`: invalidate.
    r.its[0].invall(0).unwrap();
    // DISCARD, DISCARD, SYNC, then VMAPTI(0) stalls.
    let done = r.model.counters(0).0;
    r.model.stall_at(0, Some(done + 3));
    let e =
        r.g.map_vlpis(
            &r.its[0],
            &mut dev,
            &vm,
            &[(0, 0, cfg(8192, true)), (1, 0, cfg(8193, true))],
        )
        .unwrap_err();
    assert!(
        matches!(e, VpeError::Its(its_cmdq::ItsError::Stalled { .. })),
        "{e:?}"
    );
    // Event 0 is a host LPI again, on the ITS and in the records; event 1 is forwarded.
    assert!(dev.event(0).unwrap().virt.is_none());
    assert!(
        r.model
            .ite(0, 1, 0)
            .is_some_and(|i| i.physical && i.intid == host.base.get())
    );
    assert!(dev.event(1).unwrap().virt.is_some());
    r.its[0].int_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_lpi(0), Some(host.base.get()));
    assert_eq!(
        r.model.errors().len(),
        1,
        "only the injected stall: {:?}",
        r.model.errors()
    );
}

#[test]
fn stalled_discard_maps_nothing_and_restores_the_batch() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    let host = r.lpis.alloc(2).unwrap();
    let mut dev = r.device(1, 2);
    r.its[0]
        .map_events(&mut dev, &[(0, host.base, 0), (1, host.get(1).unwrap(), 0)])
        .unwrap();
    let done = r.model.counters(0).0;
    r.model.stall_at(0, Some(done + 1)); // the second DISCARD
    let e =
        r.g.map_vlpis(
            &r.its[0],
            &mut dev,
            &vm,
            &[(0, 0, cfg(8192, true)), (1, 0, cfg(8193, true))],
        )
        .unwrap_err();
    assert!(
        matches!(e, VpeError::Its(its_cmdq::ItsError::Stalled { .. })),
        "{e:?}"
    );
    for ev in 0..2 {
        assert!(dev.event(ev).unwrap().virt.is_none());
        let ite = r.model.ite(0, 1, ev).expect("host mapping in place");
        assert!(ite.physical && ite.intid == host.base.get() + ev);
    }
    assert_eq!(vm.vpe(0).unwrap().vlpis(), 0);
}

/// GICv4.0: a second vLPI during one absence leaves the (disabled) doorbell pending; the
/// residency clears it, so the next armed deschedule does not wake the vCPU for nothing.
fn stale_doorbell_is_cleared_at_residency(cfg_model: ModelConfig) {
    let r = rig(cfg_model);
    let vm = r.vm(&[1]);
    let vpe = vm.vpe(0).unwrap();
    let mut dev = r.device(1, 4);
    r.g.map_vlpis(
        &r.its[0],
        &mut dev,
        &vm,
        &[(0, 0, cfg(8192, true)), (1, 0, cfg(8193, true))],
    )
    .unwrap();
    r.g.make_resident(&vm, 0, 1, &mut r.rd(1)).unwrap();
    r.g.make_non_resident(&vm, 0, &mut r.rd(1), true).unwrap();
    r.its[0].int_event(&dev, 0).unwrap();
    let db = r.model.take_lpi(1).expect("doorbell");
    assert_eq!(r.dbs.handle(db), Some(vpe.id()));
    r.g.doorbell_rang(&vm, 0);
    // Disabled now, but the ITS still makes it pending.
    r.its[0].int_event(&dev, 1).unwrap();
    if !late_doorbell(&r, Some(db)) {
        assert!(
            r.model.pending_lpis(1).contains(&db),
            "pending while disabled"
        );
    }
    let q0 = r.its[0].queue().stats();
    r.g.make_resident(&vm, 0, 1, &mut r.rd(1)).unwrap();
    let q1 = r.its[0].queue().stats();
    if r.dbs.uses_proxy() {
        // INV (the deferred disable) + CLEAR + SYNC, in one write.
        assert_eq!(
            (
                q1.commands - q0.commands,
                q1.cwriter_writes - q0.cwriter_writes
            ),
            (3, 1)
        );
    } else {
        assert_eq!(q1.commands, q0.commands, "DirectLPI: no ITS command");
    }
    assert!(
        !r.model.pending_lpis(1).contains(&db),
        "cleared at residency"
    );
    let mut got = vec![r.model.take_vlpi(1), r.model.take_vlpi(1)];
    got.sort();
    assert_eq!(got, [Some(8192), Some(8193)]);
    // The vCPU blocks again with nothing pending: the armed doorbell must stay silent.
    let d = r.g.make_non_resident(&vm, 0, &mut r.rd(1), true).unwrap();
    assert!(!d.pending_last);
    assert_eq!(r.model.take_lpi(1), None, "spurious doorbell");
    // And it still works for the next vLPI.
    r.its[0].int_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_lpi(1), Some(db));
    assert_eq!(r.dbs.handle(db), Some(vpe.id()));
    assert_eq!(r.dbs.stats().rings, 2);
    r.model.assert_no_errors();
}

#[test]
fn stale_doorbell_is_cleared_at_residency_proxy() {
    stale_doorbell_is_cleared_at_residency(ModelConfig::qemu(2));
}

#[test]
fn stale_doorbell_is_cleared_at_residency_direct_lpi() {
    let mut c = ModelConfig::qemu(2);
    c.direct_lpi = true;
    stale_doorbell_is_cleared_at_residency(c);
}

#[test]
fn a_vpe_without_vlpis_costs_no_doorbell_clear() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    r.model.clear_commands(0);
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    r.g.make_non_resident(&vm, 0, &mut r.rd(0), true).unwrap();
    r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
    let cmds: Vec<Command> = r.model.commands(0).into_iter().map(|(_, c)| c).collect();
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Clear { .. })),
        "{cmds:?}"
    );
    r.model.assert_no_errors();
}

#[test]
fn unmap_device_refuses_forwarded_events() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    let mut dev = r.device(7, 4);
    r.g.map_vlpi(&r.its[0], &mut dev, 3, &vm, 0, cfg(8200, true))
        .unwrap();
    r.model.clear_commands(0);
    let e = r.its[0].unmap_device(&mut dev).unwrap_err();
    assert_eq!(
        e,
        its_cmdq::ItsError::EventForwarded {
            device: 7,
            event: 3
        }
    );
    assert!(r.model.commands(0).is_empty(), "nothing sent");
    assert!(dev.is_mapped());
    assert_eq!(vm.vpe(0).unwrap().vlpis(), 1);
    // Through the GICv4 layer, then the device goes.
    r.g.unmap_vlpi(&r.its[0], &mut dev, 3, &vm, false).unwrap();
    assert_eq!(vm.vpe(0).unwrap().vlpis(), 0);
    r.its[0].unmap_device(&mut dev).unwrap();
    assert!(r.model.dte(0, 7).is_none_or(|d| !d.valid));
    r.model.assert_no_errors();
}

/// GICv4.0: only a vLPI that can carry the vPE's doorbell (`doorbell: true`, enabled) can make
/// it pending while the vPE is away, so only such a vPE pays the doorbell clear (CLEAR + SYNC)
/// at `make_resident`.
#[test]
fn only_a_vlpi_with_a_doorbell_costs_a_doorbell_clear() {
    let r = rig(ModelConfig::qemu(1));
    let vm = r.vm(&[0]);
    let mut dev = r.device(1, 4);
    let clears = |r: &Rig| {
        r.model
            .commands(0)
            .into_iter()
            .filter(|(_, c)| matches!(c, Command::Clear { .. }))
            .count()
    };
    let round = |r: &Rig| {
        r.model.clear_commands(0);
        r.g.make_resident(&vm, 0, 0, &mut r.rd(0)).unwrap();
        let n = clears(r);
        r.g.make_non_resident(&vm, 0, &mut r.rd(0), true).unwrap();
        n
    };
    // The only vLPI rings no doorbell (1023 in its ITE): no clear.
    let quiet = VlpiConfig {
        doorbell: false,
        ..cfg(8192, true)
    };
    r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, quiet).unwrap();
    assert_eq!(r.model.ite(0, 1, 0).map(|i| i.doorbell), Some(1023));
    assert_eq!(round(&r), 0);
    assert_eq!(round(&r), 0);
    // One with a doorbell, but disabled: its ITE has none yet either.
    r.g.map_vlpi(&r.its[0], &mut dev, 1, &vm, 0, cfg(8193, false))
        .unwrap();
    assert_eq!(r.model.ite(0, 1, 1).map(|i| i.doorbell), Some(1023));
    assert_eq!(round(&r), 0);
    // Enabled: the ITE now names the doorbell, and every residency clears it.
    let on = VlpiProp {
        priority: 0xa0,
        enabled: true,
        inv: false,
    };
    r.g.update_vlpi(&r.its[0], &dev, 1, &vm, on).unwrap();
    let db = vm.vpe(0).unwrap().doorbell().get();
    assert_eq!(r.model.ite(0, 1, 1).map(|i| i.doorbell), Some(db));
    assert_eq!(round(&r), 1);
    assert_eq!(round(&r), 1);
    // A vLPI mapped with its doorbell from the start, on a fresh vPE, costs the clear too.
    let vm2 = r.vm(&[0]);
    r.g.map_vlpi(&r.its[0], &mut dev, 2, &vm2, 0, cfg(8194, true))
        .unwrap();
    r.model.clear_commands(0);
    r.g.make_resident(&vm2, 0, 0, &mut r.rd(0)).unwrap();
    assert_eq!(clears(&r), 1);
    r.g.make_non_resident(&vm2, 0, &mut r.rd(0), false).unwrap();
    r.model.assert_no_errors();
}

/// Counts the accesses to GICR_VPENDBASER.
struct Counting {
    rd: RedistHandle,
    reads: core::cell::Cell<u32>,
    writes: u32,
}

impl its_core::mmio::RedistRegisters for Counting {
    fn ctlr(&self) -> its_core::regs::GicrCtlr {
        self.rd.ctlr()
    }
    fn set_ctlr(&mut self, v: its_core::regs::GicrCtlr) {
        self.rd.set_ctlr(v);
    }
    fn typer(&self) -> its_core::regs::GicrTyper {
        self.rd.typer()
    }
    fn waker(&self) -> its_core::regs::GicrWaker {
        self.rd.waker()
    }
    fn set_waker(&mut self, v: its_core::regs::GicrWaker) {
        self.rd.set_waker(v);
    }
    fn propbaser(&self) -> its_core::regs::GicrPropbaser {
        self.rd.propbaser()
    }
    fn set_propbaser(&mut self, v: its_core::regs::GicrPropbaser) {
        self.rd.set_propbaser(v);
    }
    fn pendbaser(&self) -> its_core::regs::GicrPendbaser {
        self.rd.pendbaser()
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
        self.reads.set(self.reads.get() + 1);
        self.rd.vpendbaser()
    }
    fn set_vpendbaser(&mut self, v: u64) {
        self.writes += 1;
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

/// The deschedule polls Dirty before clearing Valid and after (as Linux's
/// its_clear_vpend_valid), takes PendingLast from the last poll's read, and reads the
/// register once more only without GICR_TYPER.Dirty; `commit` reads neither the register nor
/// the clock without Dirty.
#[test]
fn deschedule_and_commit_access_only_what_they_need() {
    for dirty in [None, Some(2)] {
        let mut c = ModelConfig::qemu(1);
        c.dirty_reads = dirty;
        let r = rig(c);
        let vm = r.vm(&[0]);
        let mut rd = Counting {
            rd: r.rd(0),
            reads: core::cell::Cell::new(0),
            writes: 0,
        };
        r.g.make_resident(&vm, 0, 0, &mut rd).unwrap();
        let clock = r.plat.clock().reads();
        r.g.commit(&mut rd).unwrap();
        let commit_reads = rd.reads.replace(0);
        let d = r.g.make_non_resident(&vm, 0, &mut rd, false).unwrap();
        assert!(!d.dirty_timeout && !d.pending_last);
        match dirty {
            None => {
                assert_eq!(commit_reads, 0);
                assert_eq!(r.plat.clock().reads(), clock, "commit read the clock");
                // Read, write, read PendingLast.
                assert_eq!((rd.reads.get(), rd.writes), (2, 2));
            }
            Some(n) => {
                assert_eq!(commit_reads, n + 1, "Dirty n times, then clean");
                // Poll (clean at once), read, write, Dirty n times, then clean (PendingLast
                // from that read).
                assert_eq!((rd.reads.get(), rd.writes), (1 + 1 + n + 1, 2));
            }
        }
    }
}

/// The whole stack shuts down through shared references, as a hypervisor that keeps its
/// drivers in statics does: the GICv4 layer (refused while a VM exists), the doorbells, the
/// ITS. What they took is freed, and every later call is refused.
#[test]
fn the_stack_shuts_down_through_shared_references() {
    for cfg in [ModelConfig::qemu(2), ModelConfig::gicv41(2)] {
        let what = format!("{:?}", cfg.version);
        let mut gic = its_testkit::Rig::lpis_only(cfg, its_testkit::Settings::default()).unwrap();
        let base = gic.plat.live_bytes();
        let free_lpis = gic.lpis.free_count();
        let its = gic.bring_up_its(0).unwrap();
        gic.its.push(its);
        let dbs = gic.doorbells(gic.doorbell_config(16)).unwrap();
        let g = gic.gicv4(&dbs, V4Config::default()).unwrap();
        let mut vm = g
            .create_vm(VmConfig {
                vintid_bits: 16,
                vpes: &[0, 1],
            })
            .unwrap();
        assert!(
            matches!(g.shutdown(), Err(VpeError::InUse(_))),
            "{what}: a VM exists"
        );
        assert!(!g.is_shut_down());
        g.destroy_vm(&mut vm).unwrap();
        assert!(vm.is_destroyed() && vm.vpes().is_empty(), "{what}");
        gic.model.clear_commands(0);
        g.shutdown().unwrap();
        assert!(g.is_shut_down(), "{what}");
        assert!(gic.model.commands(0).is_empty(), "{what}: nothing to send");
        assert_eq!(g.shutdown(), Err(VpeError::ShutDown), "{what}");
        assert_eq!(
            g.create_vm(VmConfig {
                vintid_bits: 16,
                vpes: &[0],
            })
            .err(),
            Some(VpeError::ShutDown),
            "{what}"
        );
        dbs.shutdown().unwrap();
        assert_eq!(
            gic.lpis.free_count(),
            free_lpis,
            "{what}: doorbell LPIs back"
        );
        gic.its().shutdown(Duration::from_millis(5)).unwrap();
        assert!(
            !its_core::mmio::ItsRegisters::ctlr(&gic.model.its(0)).enabled(),
            "{what}"
        );
        gic.model.assert_no_errors();
        drop(g);
        drop(dbs);
        // Freed: all but what the redistributors still name on GICv4.1 (the vPE tables).
        let left = gic.plat.live_bytes() - base;
        if what == "V4_0" {
            assert_eq!(left, 0, "{what}");
        } else {
            assert!(left > 0, "{what}: GICR_VPROPBASER still names a vPE table");
        }
    }
}
