// SPDX-License-Identifier: MIT OR Apache-2.0
//! End to end: the vITS over the vpe-sched backend on the host model of QEMU's GICv4. The
//! guest's commands must leave virtual ITEs in the physical ITS with the guest's INTID as
//! vINTID and the vPE of the collection's vCPU; device MSIs and the guest's INT must reach
//! the vPE; teardown must leave nothing behind.

mod common;

use core::time::Duration;

use common::*;
use its_core::cmd::Command;
use its_model::{ItsHandle, ModelConfig};
use its_testkit::{P, PROXY_DEVICE as PROXY, Rig, V4};
use vits::{AssignedDevice, DevicePool, Vits, VitsConfig, VpeSchedBackend};
use vpe_sched::{V4Config, Vm, VmConfig};

type B<'a> = VpeSchedBackend<'a, 'static, ItsHandle, P, 8>;
type V<'a> = Vits<B<'a>, 8, 64, 8>;
/// The physical side: the test kit's rig with doorbells and the GICv4 layer up.
type Host = V4<'static>;

/// QEMU's GICv4.0 with `cpus` CPUs, its-cmdq, doorbells (64, through the proxy device) and
/// vpe-sched brought up on it.
fn host(cpus: usize) -> Host {
    let rig = Rig::new(ModelConfig::qemu(cpus));
    let dbs = rig.doorbell_config(64);
    V4::leak(
        rig,
        dbs,
        V4Config {
            dirty_timeout: Duration::from_millis(1),
            ..V4Config::default()
        },
    )
}

const NVME: u32 = 0x8;
/// A made-up device's physical DeviceIDs start here.
const POOL: u32 = 0xf000;

fn vm(h: &Host) -> Vm<P> {
    h.g.create_vm(VmConfig {
        vintid_bits: 16,
        vpes: &[0, 1],
    })
    .unwrap()
}

fn vits<'a>(h: &'a Host, vm: &'a Vm<P>, assigned: &[AssignedDevice]) -> V<'a> {
    let mut cfg = VitsConfig::new(
        2,
        16,
        assigned,
        DevicePool {
            first: dev(POOL),
            count: 4,
        },
    );
    cfg.event_bits = 5;
    Vits::new(cfg, VpeSchedBackend::new(&h.g, &h.its[0], vm)).unwrap()
}

/// Every ITE the vITS has live is a virtual ITE in the physical ITS with the guest's INTID
/// and the vPE of its vCPU; every parked one has no ITE.
fn check_ites(h: &Host, vm: &Vm<P>, its: &V<'_>) {
    for e in its.events() {
        let ite = h.model.ite(0, e.phys.device.get(), e.phys.event.get());
        match e.live {
            Some((vcpu, prop)) => {
                let ite = ite.expect("a live event has an ITE");
                let vpe = vm.vpe(vcpu.index()).unwrap();
                assert!(ite.valid && !ite.physical, "{e:?}: {ite:?}");
                assert_eq!(ite.intid, e.vintid.get());
                assert_eq!(ite.vpe, vpe.id().get());
                // Enabled vLPIs carry the doorbell, disabled ones none (GICv4.0).
                let db = if prop.enabled() {
                    vpe.doorbell().get()
                } else {
                    1023
                };
                assert_eq!(ite.doorbell, db, "{e:?}");
            }
            None => assert!(ite.is_none_or(|i| !i.valid), "{e:?}: {ite:?}"),
        }
    }
}

/// Linux's boot on the vITS ([`linux_boot`]) with the NVMe.
fn boot(its: &mut V<'_>, ram: &mut Ram) -> GuestDriver {
    linux_boot(its, ram, NVME)
}

#[test]
fn linux_boot_maps_real_vlpis() {
    let h = host(2);
    let vm = vm(&h);
    let assigned = [AssignedDevice::identity(dev(NVME))];
    let mut its = vits(&h, &vm, &assigned);
    let mut ram = Ram::new();
    let mut g = boot(&mut its, &mut ram);
    check_ites(&h, &vm, &its);
    assert_eq!(its.events().count(), 3);
    let dte = h.model.dte(0, NVME).expect("DTE");
    assert!(dte.valid);
    assert_eq!(dte.size, 1, "the guest's 2 EventID bits");
    // A device MSI (GITS_TRANSLATER mapped through) lands in the vPE of vector 2's vCPU.
    h.model.translate(0, NVME, 2);
    let vpt1 = vm.vpe(1).unwrap().vpt().get();
    assert_eq!(h.model.vpt_pending(vpt1), [8195]);
    // Resident on CPU 1, vCPU 1 takes it.
    h.g.make_resident(&vm, 1, 1, &mut h.model.redist(1))
        .unwrap();
    assert_eq!(h.model.take_vlpi(1), Some(8195));
    // An affinity change moves vector 2 to vCPU 0 (VMOVI): MSIs follow.
    g.send(&mut its, &mut ram, &[movi(NVME, 2, 0), sync(1), sync(0)]);
    check_ites(&h, &vm, &its);
    h.model.translate(0, NVME, 2);
    let vpt0 = vm.vpe(0).unwrap().vpt().get();
    assert_eq!(h.model.vpt_pending(vpt0), [8195]);
    assert_eq!(h.model.take_vlpi(1), None);
    // Masking through the guest's table + INV takes the doorbell out of the ITE.
    ram.set_prop(8193, PROP_OFF);
    g.send(&mut its, &mut ram, &[inv(NVME, 0), sync(0)]);
    check_ites(&h, &vm, &its);
    assert_eq!(vm.property(8193).unwrap() & 1, 0, "the VM's table follows");
    h.g.make_non_resident(&vm, 1, &mut h.model.redist(1), false)
        .unwrap();
    h.model.assert_no_errors();
}

#[test]
fn guest_int_and_clear_are_real_vlpi_operations_also_on_made_up_devices() {
    let h = host(2);
    let vm = vm(&h);
    let mut its = vits(&h, &vm, &[]);
    let mut ram = Ram::new();
    let mut g = boot(&mut its, &mut ram);
    // NVME is not assigned here: a made-up device, backed by the pool's first DeviceID.
    assert_eq!(
        its.devices().next().map(|d| (d.phys, d.made_up)),
        Some((dev(POOL), true))
    );
    assert!(
        h.model.dte(0, NVME).is_none_or(|d| !d.valid),
        "never the guest's ID"
    );
    check_ites(&h, &vm, &its);
    // INT on vCPU 0's vector while it is resident: delivered at once.
    h.g.make_resident(&vm, 0, 0, &mut h.model.redist(0))
        .unwrap();
    g.send(&mut its, &mut ram, &[int(NVME, 1), sync(0)]);
    assert_eq!(h.model.take_vlpi(0), Some(8194));
    // INT then CLEAR on vCPU 1's vector (not resident): pending in its VPT, then not.
    g.send(&mut its, &mut ram, &[int(NVME, 2), sync(1)]);
    let vpt1 = vm.vpe(1).unwrap().vpt().get();
    assert_eq!(h.model.vpt_pending(vpt1), [8195]);
    g.send(&mut its, &mut ram, &[clear(NVME, 2), sync(1)]);
    assert_eq!(h.model.vpt_pending(vpt1), Vec::<u32>::new());
    h.g.make_non_resident(&vm, 0, &mut h.model.redist(0), false)
        .unwrap();
    h.model.assert_no_errors();
}

#[test]
fn the_physical_its_sees_only_assigned_and_pool_deviceids_and_vm_vintids() {
    let h = host(2);
    let vm = vm(&h);
    let assigned = [AssignedDevice {
        guest: dev(0x20),
        phys: dev(0x120),
    }];
    let mut its = vits(&h, &vm, &assigned);
    let mut ram = Ram::new();
    let mut g = boot(&mut its, &mut ram);
    h.model.clear_commands(0);
    g.send(
        &mut its,
        &mut ram,
        &[
            mapd(0x20, 3, true),
            mapti(0x20, 0, 9000, 1),
            // Bad: beyond the VM's vINTIDs, beyond the ITT, unmapped device.
            mapti(0x20, 1, 0x1_0000, 1),
            mapti(0x20, 9, 9001, 1),
            mapti(0x21, 0, 9002, 1),
            int(0x20, 0),
            sync(1),
        ],
    );
    assert_eq!(its.stats().ignored, 3);
    let vpes: Vec<u16> = vm.vpes().iter().map(|v| v.id().get()).collect();
    for (_, c) in h.model.commands(0) {
        let device = match c {
            Command::Mapd { device, .. }
            | Command::Mapti { device, .. }
            | Command::Discard { device, .. }
            | Command::Int { device, .. }
            | Command::Inv { device, .. }
            | Command::Vmapti { device, .. }
            | Command::Vmovi { device, .. } => Some(device.get()),
            _ => None,
        };
        if let Some(d) = device {
            assert!([0x120, POOL, PROXY].contains(&d), "{c}");
        }
        if let Command::Vmapti { vintid, vpe, .. } = c {
            assert!((8192..0x1_0000).contains(&vintid.get()), "{c}");
            assert!(vpes.contains(&vpe.get()), "{c}");
        }
    }
    let ite = h.model.ite(0, 0x120, 0).unwrap();
    assert_eq!((ite.physical, ite.intid), (false, 9000));
    h.model.assert_no_errors();
}

#[test]
fn teardown_leaves_nothing_behind() {
    let h = host(2);
    let live = h.plat.live_bytes();
    let l2 = h.l2_bytes();
    let mut vm = vm(&h);
    let assigned = [AssignedDevice::identity(dev(NVME))];
    let mut its = vits(&h, &vm, &assigned);
    let mut ram = Ram::new();
    let mut g = boot(&mut its, &mut ram);
    g.send(
        &mut its,
        &mut ram,
        &[mapd(0x30, 1, true), mapti(0x30, 0, 8300, 1)],
    );
    assert_eq!(its.backend().devices().len(), 2);
    its.teardown().unwrap();
    assert_eq!(its.backend().devices().len(), 0);
    assert_eq!(its.events().count(), 0);
    for d in [NVME, POOL] {
        assert!(h.model.dte(0, d).is_none_or(|t| !t.valid), "{d:#x}");
    }
    assert!(vm.vpes().iter().all(|v| v.vlpis() == 0));
    drop(its);
    h.g.destroy_vm(&mut vm).unwrap();
    // Everything the VM and its devices took is back, but new second-level table pages.
    assert_eq!(h.plat.live_bytes(), live + h.l2_bytes() - l2);
    h.model.assert_no_errors();
}

#[test]
fn a_physical_stall_stalls_the_guest_queue_and_retry_completes() {
    let h = host(2);
    let vm = vm(&h);
    let assigned = [AssignedDevice::identity(dev(NVME))];
    let mut its = vits(&h, &vm, &assigned);
    let mut ram = Ram::new();
    let mut g = boot(&mut its, &mut ram);
    // The physical ITS stalls on the next command (the DISCARD of the vLPI's unmap).
    let done = h.model.counters(0).0;
    h.model.stall_at(0, Some(done));
    let at = g.wr;
    let creadr = g.send(&mut its, &mut ram, &[discard(NVME, 0), sync(0)]);
    assert_eq!(
        creadr,
        u64::from(at) | 1,
        "the guest's queue stalls on the DISCARD"
    );
    assert!(matches!(
        its.errors().last().unwrap().error,
        vits::CommandError::Backend(_)
    ));
    check_ites(&h, &vm, &its);
    h.model.stall_at(0, None);
    h.model.clear_errors();
    its.write(&ram, CWRITER, 8, u64::from(g.wr) | 1).unwrap();
    assert_eq!(its.read(&ram, CREADR, 8).unwrap(), u64::from(g.wr));
    assert!(h.model.ite(0, NVME, 0).is_none_or(|i| !i.valid));
    assert_eq!(its.events().count(), 2);
    check_ites(&h, &vm, &its);
    h.model.assert_no_errors();
}
