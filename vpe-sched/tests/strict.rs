// SPDX-License-Identifier: MIT OR Apache-2.0
//! The GICv4 layer on the model as strict as the architecture (`ModelConfig::harden`): what
//! QEMU lets pass and hardware does not.

use core::time::Duration;

use doorbell::Doorbells;
use its_cmdq::{Its, ItsConfig};
use its_core::cmd::Command;
use its_core::ids::{DeviceId, VLpi};
use its_core::mmio::RedistRegisters;
use its_core::regs::GicrVpendbaserV41;
use its_model::{ModelConfig, Strict};
use its_testkit::rig::{dist_caps, redists};
use its_testkit::{Rig, Settings, V4};
use vpe_sched::{GicV4, V4Config, VlpiConfig, VlpiProp, VmConfig, VpeError};

fn v4cfg() -> V4Config {
    V4Config {
        dirty_timeout: Duration::from_millis(1),
        commit_timeout: Duration::from_millis(1),
        ..V4Config::default()
    }
}

fn leak(cfg: ModelConfig) -> V4<'static> {
    let gic = Rig::new(cfg);
    let dbs = gic.doorbell_config(64);
    V4::leak(gic, dbs, v4cfg())
}

fn vcfg(v: u32, enabled: bool) -> VlpiConfig {
    VlpiConfig {
        vintid: VLpi::new(v).unwrap(),
        priority: 0xa0,
        enabled,
        doorbell: true,
    }
}

fn commands(r: &Rig, n: usize) -> Vec<Command> {
    r.model.commands(n).into_iter().map(|(_, c)| c).collect()
}

/// Finding 2: two ITSs with GITS_TYPER.VMOVP = 0, each brought up with `ItsConfig::new`'s
/// defaults, keep their reset GITS_CTLR.ITS_Number (0 on both): VMOVP then names "ITS 0" to
/// both, and the move is not synchronised. The GICv4 layer must refuse such a system rather
/// than move vPEs on it.
#[test]
fn duplicate_its_numbers_are_refused() {
    let mut cfg = ModelConfig::hardware(2);
    cfg.its_count = 2;
    let rig = Rig::lpis_only(cfg.clone(), Settings::default()).unwrap();
    let its: Vec<Its<_, _>> = (0..2)
        .map(|n| {
            let mut c = ItsConfig::new(dist_caps(&cfg));
            c.queue.completion_timeout = Duration::from_millis(5);
            Its::new(rig.model.its(n), rig.plat.clone(), &redists(&rig.model), c).unwrap()
        })
        .collect();
    let dbs = Doorbells::new(&its[0], &rig.lpis, rig.doorbell_config(16)).unwrap();
    let redist = its_core::caps::RedistCaps::from_typer(rig.model.redist(0).typer());
    match GicV4::new(&its, &rig.lpis, &dbs, redist, v4cfg()) {
        Err(e) => assert!(
            matches!(e, VpeError::Config(m) if m.contains("ITS_Number")),
            "refused, but for another reason: {e:?}"
        ),
        Ok(g) => {
            for c in 0..2 {
                g.init_redistributor(&mut rig.model.redist(c)).unwrap();
            }
            let vm = g
                .create_vm(VmConfig {
                    vintid_bits: 16,
                    vpes: &[0],
                })
                .unwrap();
            g.make_resident(&vm, 0, 1, &mut rig.model.redist(1))
                .unwrap();
            rig.model.assert_no_errors();
            panic!(
                "accepted two ITSs numbered {:?}",
                its.iter().map(|i| i.its_number()).collect::<Vec<_>>()
            );
        }
    }
    rig.model.clear_errors();
}

/// Finding 3: GICv4.1 VMAPP Alloc = 1 only on the first VMAPP V = 1 of a vPE across the ITSs
/// and on the last VMAPP V = 0.
#[test]
fn vmapp_alloc_only_on_first_map_and_last_unmap() {
    let mut cfg = ModelConfig::gicv41(2).harden();
    cfg.its_count = 2;
    // This test is about Alloc alone.
    cfg.strict = Strict {
        vmapp_alloc: true,
        ..Strict::qemu()
    };
    let r = leak(cfg);
    let mut vm =
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0, 1],
        })
        .unwrap();
    let allocs = |n: usize, valid: bool| -> Vec<bool> {
        commands(&r, n)
            .into_iter()
            .filter_map(|c| match c {
                Command::VmappV41 {
                    valid: v, alloc, ..
                } if v == valid => Some(alloc),
                _ => None,
            })
            .collect()
    };
    r.model.assert_no_errors();
    assert_eq!(allocs(0, true), [true, true], "ITS 0 maps first");
    assert_eq!(
        allocs(1, true),
        [false, false],
        "ITS 1 finds them allocated"
    );
    r.g.destroy_vm(&mut vm).unwrap();
    r.model.assert_no_errors();
    assert_eq!(
        allocs(0, false),
        [false, false],
        "unmapped first, still on ITS 1"
    );
    assert_eq!(allocs(1, false), [true, true], "the last unmap deallocates");
}

/// Finding 7: GICv4.1 VMAPP with V = 0 carries only vPEID, V and Alloc.
#[test]
fn vmapp_unmap_sets_no_res0_field() {
    let mut cfg = ModelConfig::gicv41(2);
    cfg.strict = Strict {
        res0_by_form: true,
        ..Strict::qemu()
    };
    let r = leak(cfg);
    let mut vm =
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[1],
        })
        .unwrap();
    r.g.destroy_vm(&mut vm).unwrap();
    r.model.assert_no_errors();
    let unmap = commands(&r, 0)
        .into_iter()
        .find(|c| matches!(c, Command::VmappV41 { valid: false, .. }))
        .expect("a VMAPP V = 0");
    let raw = unmap.encode();
    // vPEID [47:32] of DW1, V [63] of DW2, Alloc [8] of DW0: nothing else but the opcode.
    assert_eq!(raw[0] & !0x1ff, 0, "{unmap}");
    assert_eq!(raw[1] & !(0xffff << 32), 0, "{unmap}");
    assert_eq!(raw[2], 0, "{unmap}");
    assert_eq!(raw[3], 0, "{unmap}");
}

/// Finding 4: GICv4.1 without vPE table sharing (GITS_TYPER.SVPET = 0): the redistributors
/// must not point GICR_VPROPBASER at the ITS's vPE table, and those of one CommonLPIAff group
/// share one of their own.
#[test]
fn redistributors_get_their_own_vpe_table_without_svpet() {
    let mut cfg = ModelConfig::gicv41(2).harden();
    cfg.svpet = 0;
    let r = leak(cfg);
    r.model.assert_no_errors();
    let its_table = r.its[0].vpe_table().unwrap().base().get();
    let rd0 = r.model.redist(0).vpropbaser();
    let rd1 = r.model.redist(1).vpropbaser();
    assert_eq!(rd0, rd1, "one CommonLPIAff group, one table");
    assert_ne!((rd0 >> 12) & ((1 << 40) - 1), its_table >> 12);
    // And vPEs still run.
    let mut vm =
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[1],
        })
        .unwrap();
    r.g.make_resident(&vm, 0, 1, &mut r.model.redist(1))
        .unwrap();
    r.g.make_non_resident(&vm, 0, &mut r.model.redist(1), false)
        .unwrap();
    r.g.destroy_vm(&mut vm).unwrap();
    r.model.assert_no_errors();
}

/// Finding 4, the ITS side: GICv4.1 ITSs that share their vPE table with the same
/// redistributors (SVPET != 0, one affinity) must share one table, since each redistributor
/// has one GICR_VPROPBASER.
#[test]
fn sibling_itses_share_one_vpe_table() {
    let mut cfg = ModelConfig::gicv41(2).harden();
    cfg.its_count = 2;
    let r = leak(cfg);
    r.model.assert_no_errors();
    let mut vm =
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0, 1],
        })
        .unwrap();
    for (i, cpu) in [(0, 1), (1, 0)] {
        r.g.make_resident(&vm, i, cpu, &mut r.model.redist(cpu))
            .unwrap();
        r.g.make_non_resident(&vm, i, &mut r.model.redist(cpu), true)
            .unwrap();
    }
    // GITS_TYPER.VMOVP = 0 on GICv4.1 too: each move went to both ITSs with both in the
    // ITSList (not one VMOVP to the first ITS, as if VMOVP were 1).
    for n in 0..2 {
        let lists: Vec<u16> = commands(&r, n)
            .into_iter()
            .filter_map(|c| match c {
                Command::VmovpV41 { its_list, .. } => Some(its_list),
                _ => None,
            })
            .collect();
        assert_eq!(lists, [0b11, 0b11], "ITS {n}");
    }
    r.g.destroy_vm(&mut vm).unwrap();
    r.model.assert_no_errors();
}

/// The adopter's finding: `make_resident` for CPU 1 given CPU 0's redistributor frame must
/// be refused (GICR_TYPER.Processor_Number says which CPU a frame is), not leave the
/// driver's records and the GIC disagreeing.
#[test]
fn make_resident_refuses_another_cpus_redistributor() {
    let r = leak(ModelConfig::qemu(2));
    let mut vm =
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0],
        })
        .unwrap();
    let e = r.g.make_resident(&vm, 0, 1, &mut r.model.redist(0));
    assert!(
        matches!(
            e,
            Err(VpeError::WrongRedistributor {
                cpu: 1,
                processor: 0
            })
        ),
        "{e:?}"
    );
    assert!(!vm.vpe(0).unwrap().residency().is_resident());
    assert_eq!(r.model.resident(0), None);
    assert_eq!(r.model.resident(1), None);
    r.g.make_resident(&vm, 0, 1, &mut r.model.redist(1))
        .unwrap();
    let e = r.g.make_non_resident(&vm, 0, &mut r.model.redist(0), false);
    assert!(
        matches!(
            e,
            Err(VpeError::WrongRedistributor {
                cpu: 1,
                processor: 0
            })
        ),
        "{e:?}"
    );
    r.g.make_non_resident(&vm, 0, &mut r.model.redist(1), false)
        .unwrap();
    r.g.destroy_vm(&mut vm).unwrap();
    r.model.assert_no_errors();
}

/// Hardware caches vLPI configuration: a vLPI mapped after its vPE's configuration was
/// loaded must be invalidated, or it is never delivered. QEMU rereads the table at each use.
#[test]
fn a_vlpi_mapped_on_a_vpe_that_ran_before_is_delivered() {
    let r = leak(ModelConfig::hardware(1));
    let mut vm =
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0],
        })
        .unwrap();
    // The vPE runs once: its redistributor loads the VM's configuration (all disabled).
    r.g.make_resident(&vm, 0, 0, &mut r.model.redist(0))
        .unwrap();
    r.g.make_non_resident(&vm, 0, &mut r.model.redist(0), false)
        .unwrap();
    let mut dev = r.its[0].map_device(DeviceId::new(3), 2).unwrap();
    r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, vcfg(8200, true))
        .unwrap();
    r.g.make_resident(&vm, 0, 0, &mut r.model.redist(0))
        .unwrap();
    r.its[0].int_event(&dev, 0).unwrap();
    assert_eq!(
        r.model.take_vlpi(0),
        Some(8200),
        "lost: configuration not invalidated"
    );
    // And a priority/enable update without `inv` is not seen, with it it is.
    let off = VlpiProp {
        priority: 0xa0,
        enabled: false,
        inv: true,
    };
    r.g.update_vlpi(&r.its[0], &dev, 0, &vm, off).unwrap();
    r.its[0].int_event(&dev, 0).unwrap();
    assert_eq!(r.model.take_vlpi(0), None, "disabled");
    r.g.make_non_resident(&vm, 0, &mut r.model.redist(0), false)
        .unwrap();
    r.g.unmap_vlpi(&r.its[0], &mut dev, 0, &vm, false).unwrap();
    r.its[0].unmap_device(&mut dev).unwrap();
    r.g.destroy_vm(&mut vm).unwrap();
    r.model.assert_no_errors();
}

/// GICv4.1 deschedule without a doorbell writes PendingLast = 1 ("the vPE will be back", as
/// Linux does): the redistributor neither scans the VPT nor arms the default doorbell, and
/// the vPE is recorded with PendingLast.
#[test]
fn gicv41_deschedule_without_doorbell_writes_pending_last() {
    let r = leak(ModelConfig::gicv41(1).harden());
    let mut vm =
        r.g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0],
        })
        .unwrap();
    r.g.make_resident(&vm, 0, 0, &mut r.model.redist(0))
        .unwrap();
    r.plat.clear_events();
    let d =
        r.g.make_non_resident(&vm, 0, &mut r.model.redist(0), false)
            .unwrap();
    let written: Vec<u64> = r
        .plat
        .events()
        .into_iter()
        .filter_map(|e| match e {
            its_model::Event::Reg {
                reg: "GICR_VPENDBASER",
                value,
                ..
            } => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(written.len(), 1);
    assert_ne!(
        written[0] & 1 << 61,
        0,
        "PendingLast written 1: {:#x}",
        written[0]
    );
    assert_eq!(written[0] & 1 << 62, 0, "no doorbell requested");
    assert!(d.pending_last);
    r.g.destroy_vm(&mut vm).unwrap();
    r.model.assert_no_errors();
}

/// GICv4.1: every redistributor may cache a vPE's default doorbell configuration (its LPI
/// property byte) until INVDB for the vPE. A doorbell enabled in the property table but not
/// invalidated stays pending without firing on the hardware-like model, and fires once INVDB
/// reaches the redistributor; QEMU-like, the table is read at each use.
#[test]
fn gicv41_default_doorbell_fires_only_after_invdb() {
    for hard in [false, true] {
        let mut cfg = ModelConfig::gicv41(1);
        if hard {
            cfg = cfg.harden();
        }
        let r = leak(cfg);
        let vm =
            r.g.create_vm(VmConfig {
                vintid_bits: 16,
                vpes: &[0],
            })
            .unwrap();
        let (id, db) = {
            let vpe = vm.vpe(0).unwrap();
            (vpe.id(), vpe.doorbell())
        };
        let mut dev = r.its[0].map_device(DeviceId::new(3), 2).unwrap();
        r.g.map_vlpi(&r.its[0], &mut dev, 0, &vm, 0, vcfg(8200, true))
            .unwrap();
        r.g.make_resident(&vm, 0, 0, &mut r.model.redist(0))
            .unwrap();
        // Behind the doorbell layer's back: the byte says enabled, nothing invalidates it.
        r.lpis.configure(db, 0xa0, true).unwrap();
        // Deschedule by hand with the default doorbell requested (GICR_VPENDBASER.DB), and
        // wait for the VPT parse.
        let mut rd = r.model.redist(0);
        rd.set_vpendbaser(
            GicrVpendbaserV41::new()
                .with_vpe_id(id.get())
                .with_doorbell(true)
                .into(),
        );
        let mut reads = 0;
        while GicrVpendbaserV41::from(rd.vpendbaser()).dirty() {
            reads += 1;
            assert!(reads < 100, "Dirty never clears");
        }
        r.its[0].int_event(&dev, 0).unwrap();
        assert!(
            r.model.pending_lpis(0).contains(&db.get()),
            "hard={hard}: the vLPI did not make the default doorbell pending"
        );
        if hard {
            assert_eq!(
                r.model.take_lpi(0),
                None,
                "the redistributor used a doorbell configuration nobody invalidated"
            );
            r.g.invdb(&vm, 0).unwrap();
        }
        assert_eq!(
            r.model.take_lpi(0),
            Some(db.get()),
            "hard={hard}: the enabled default doorbell does not fire"
        );
        r.model.assert_no_errors();
    }
}
