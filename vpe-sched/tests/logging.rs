// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `log` events of the GICv4 layer (the `log` feature, turned on by the test kit):
//! bring-up, VMs and shut-down at info, residency changes and VMOVP at debug, a Dirty that
//! does not clear and a refused shut-down at warn.

use core::time::Duration;

use its_model::ModelConfig;
use its_testkit::Rig;
use its_testkit::logcap::{self, assert_has};
use log::Level;
use vpe_sched::{V4Config, VmConfig, VpeError};

#[test]
fn a_vms_life_is_logged_at_info_and_residency_at_debug() {
    let r = Rig::new(ModelConfig::qemu(2));
    let dbs = r.doorbells(r.doorbell_config(8)).unwrap();
    let (g, records) = logcap::capture(|| r.gicv4(&dbs, V4Config::default()).unwrap());
    assert_has(&records, Level::Info, "GICv4 layer up");
    let (vm, records) = logcap::capture(|| {
        g.create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0, 1],
        })
        .unwrap()
    });
    assert_has(&records, Level::Info, "VM created: 2 vPEs");
    let vpe0 = vm.vpe(0).unwrap().id().get();
    // vPE 0 was made for CPU 0: running it on CPU 1 moves it first.
    let mut rd = r.model.redist(1);
    let (_, records) = logcap::capture(|| g.make_resident(&vm, 0, 1, &mut rd).unwrap());
    assert_has(
        &records,
        Level::Debug,
        &format!("VMOVP of vPE {vpe0} to CPU 1"),
    );
    assert_has(
        &records,
        Level::Debug,
        &format!("vPE {vpe0} resident on CPU 1"),
    );
    let (_, records) = logcap::capture(|| g.make_non_resident(&vm, 0, &mut rd, true).unwrap());
    assert_has(
        &records,
        Level::Debug,
        &format!("vPE {vpe0} left CPU 1 (doorbell on"),
    );
    assert!(records.iter().all(|r| r.level > Level::Warn), "{records:?}");
    // Shut-down: refused while the VM exists, then done.
    let (e, records) = logcap::capture(|| g.shutdown());
    assert!(matches!(e, Err(VpeError::InUse(_))), "{e:?}");
    assert_has(
        &records,
        Level::Warn,
        "shut-down refused: 2 vPEs still exist",
    );
    let mut vm = vm;
    let (_, records) = logcap::capture(|| g.destroy_vm(&mut vm).unwrap());
    assert_has(&records, Level::Info, "VM destroyed: 2 vPEs freed");
    let (ok, records) = logcap::capture(|| g.shutdown());
    ok.unwrap();
    assert_has(&records, Level::Info, "GICv4 layer shut down");
    r.model.assert_no_errors();
}

#[test]
fn a_dirty_that_does_not_clear_is_a_warning() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.dirty_reads = Some(2);
    let r = Rig::new(cfg);
    let dbs = r.doorbells(r.doorbell_config(8)).unwrap();
    let v4 = V4Config {
        dirty_timeout: Duration::from_millis(1),
        commit_timeout: Duration::from_millis(1),
        ..V4Config::default()
    };
    let g = r.gicv4(&dbs, v4).unwrap();
    let mut vm = g
        .create_vm(VmConfig {
            vintid_bits: 16,
            vpes: &[0],
        })
        .unwrap();
    let mut rd = r.model.redist(0);
    r.model.set_dirty_reads(u32::MAX);
    g.make_resident(&vm, 0, 0, &mut rd).unwrap();
    let (e, records) = logcap::capture(|| g.commit(&mut rd));
    assert!(matches!(e, Err(VpeError::DirtyTimeout { .. })), "{e:?}");
    assert_has(&records, Level::Warn, "still parses the VPT");
    let (d, records) = logcap::capture(|| g.make_non_resident(&vm, 0, &mut rd, false).unwrap());
    assert!(d.dirty_timeout);
    assert_has(&records, Level::Warn, "Dirty did not clear within 1ms");
    r.model.set_dirty_reads(0);
    g.destroy_vm(&mut vm).unwrap();
    r.model.assert_no_errors();
}
