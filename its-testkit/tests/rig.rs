// SPDX-License-Identifier: MIT OR Apache-2.0
//! The rig brings up what it says it does, with the settings it is given.

use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_model::ModelConfig;
use its_testkit::{Memory, Rig, Settings, with_v4};
use vpe_sched::{V4Config, VmConfig};

/// Every ITS enabled, one collection per CPU on its redistributor, LPIs on everywhere.
#[track_caller]
fn brought_up(r: &Rig) {
    assert_eq!(r.its.len(), r.cfg.its_count);
    for n in 0..r.cfg.its_count {
        assert!(r.model.its(n).ctlr().enabled(), "ITS {n}");
        for cpu in 0..r.cfg.cpus as u16 {
            let cte = r.model.cte(n, cpu);
            assert!(
                cte.is_some_and(|c| c.valid && c.rd == cpu),
                "ITS {n} CTE {cpu}: {cte:?}"
            );
        }
    }
    for cpu in 0..r.cfg.cpus {
        assert!(r.model.redist(cpu).ctlr().enable_lpis(), "CPU {cpu}");
    }
    assert_eq!(r.pending.len(), r.cfg.cpus);
    r.model.assert_no_errors();
}

#[test]
fn brings_up_every_its_and_redistributor() {
    brought_up(&Rig::new(ModelConfig::qemu(2)));
    let mut two = ModelConfig::qemu(3);
    two.its_count = 2;
    two.single_vmovp = false;
    let r = Rig::new(two);
    brought_up(&r);
    // Without GITS_TYPER.VMOVP each ITS needs its number, for VMOVP's ITSList.
    assert_eq!(r.its[1].its_number(), 1);
    brought_up(&Rig::new(ModelConfig::gicv41(4)));
}

#[test]
fn settings_reach_the_drivers() {
    let r = Rig::with(ModelConfig::qemu(1), Settings::default().queue(0x2000));
    assert_eq!(r.model.its(0).cbaser().bytes(), 0x2000);
    // A 5 ms deadline on the stepping clock: an ITS that never moves is given up.
    r.model.set_delay(0, its_model::Delay::Never);
    assert!(r.its().invall(0).is_err());
    assert!(r.its().is_dead());
    // Without a timeout, the drivers' defaults.
    let d = Rig::with(
        ModelConfig::qemu(1),
        Settings {
            timeout: None,
            ..Settings::default()
        },
    );
    assert_eq!(d.model.its(0).cbaser().bytes(), 0x1_0000);
    brought_up(&d);
}

#[test]
fn lpis_only_leaves_the_its_to_the_test() {
    let r = Rig::lpis_only(ModelConfig::qemu(2), Settings::default()).unwrap();
    assert!(r.its.is_empty());
    assert!(!r.model.its(0).ctlr().enabled());
    for cpu in 0..2 {
        assert!(r.model.redist(cpu).ctlr().enable_lpis());
    }
    let its = r.bring_up_its(0).unwrap();
    assert!(!its.is_dead());
    assert!(r.model.its(0).ctlr().enabled());
    r.model.assert_no_errors();
}

#[test]
fn bring_up_errors_are_returned() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.quiescent_reads = u32::MAX;
    // Enabled and never quiescent: the ITS driver refuses it.
    let r = Rig::lpis_only(cfg.clone(), Settings::default()).unwrap();
    let mut h = r.model.its(0);
    h.set_ctlr(h.ctlr().with_enabled(true));
    // Enabled with no table: the model says so, and that is this test's doing.
    assert_eq!(r.model.errors().len(), 1);
    assert!(r.bring_up_its(0).is_err());
    cfg.waker_reads = u32::MAX;
    assert!(Rig::try_with(cfg, Settings::default()).is_err());
}

#[test]
fn the_gicv4_layer_comes_up_on_the_rig() {
    for cfg in [ModelConfig::qemu(2), ModelConfig::gicv41(2)] {
        let r = Rig::new(cfg);
        let dbs = r.doorbell_config(8);
        assert_eq!(dbs.proxy.is_none(), r.cfg.direct_lpi);
        with_v4(&r, dbs, V4Config::default(), |v| {
            for cpu in 0..2 {
                assert_ne!(v.model.redist(cpu).vpropbaser(), 0, "CPU {cpu}");
            }
            let mut vm =
                v.g.create_vm(VmConfig {
                    vintid_bits: 16,
                    vpes: &[0, 1],
                })
                .unwrap();
            assert_eq!(vm.vpes().len(), 2);
            v.g.destroy_vm(&mut vm).unwrap();
            v.model.assert_no_errors();
        });
    }
}

#[test]
fn memory_counts_bytes_second_level_pages_and_lpis() {
    let r = Rig::new(ModelConfig::qemu(1));
    let before = r.memory();
    // A device on a second-level page of its own: its page stays, the rest goes back.
    let mut d = r
        .its()
        .map_device(its_core::ids::DeviceId::new(20000), 4)
        .unwrap();
    r.its().unmap_device(&mut d).unwrap();
    let after = r.memory();
    assert!(after.l2 > before.l2);
    before.assert_back(after, 0, "map and unmap");
    let range = r.lpis.alloc(2).unwrap();
    let taken = r.memory();
    assert_eq!(taken.free_lpis, before.free_lpis - 2);
    r.lpis.free(range).unwrap();
    before.assert_back(r.memory(), 0, "LPIs freed");
}

#[test]
#[should_panic(expected = "not back to its value")]
fn memory_not_given_back_is_caught() {
    let before = Memory {
        live: 100,
        l2: 0,
        free_lpis: 8,
    };
    let now = Memory {
        live: 164,
        ..before
    };
    before.assert_back(now, 0, "leak");
}

#[test]
#[should_panic(expected = "LPIs")]
fn lpis_not_given_back_are_caught() {
    let before = Memory {
        live: 100,
        l2: 0,
        free_lpis: 8,
    };
    before.assert_back(
        Memory {
            free_lpis: 7,
            ..before
        },
        0,
        "leak",
    );
}
