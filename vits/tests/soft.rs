// SPDX-License-Identifier: MIT OR Apache-2.0
//! The software-injection backend on the host model of QEMU's ITS: the guest's commands must
//! leave physical ITEs of host LPIs on the collection of the event's vCPU (vCPU `i` on CPU
//! `i`), routes that name the vCPU and vINTID, host LPIs enabled exactly when the guest's are,
//! and nothing behind after teardown.

mod common;

use common::*;
use its_model::{ItsHandle, ModelConfig};
use its_testkit::{P, Rig};
use vits::{
    AssignedDevice, DevicePool, HOST_PRIORITY, LpiConfigTable, SoftBackend, SoftRoutes, Vits,
    VitsConfig,
};

const N: usize = 16;
type B<'a> = SoftBackend<'a, ItsHandle, P, 8, N>;
type V<'a> = Vits<B<'a>, 8, 64, 8>;

const NVME: u32 = 0x8;

fn vits<'a>(rig: &'a Rig, routes: &'a SoftRoutes<N>, assigned: &[AssignedDevice]) -> V<'a> {
    let mut cfg = VitsConfig::new(
        2,
        16,
        assigned,
        DevicePool {
            first: dev(0xf000),
            count: 4,
        },
    );
    cfg.event_bits = 5;
    let backend = SoftBackend::new(rig.its(), &rig.lpis, routes).unwrap();
    Vits::new(cfg, backend).unwrap()
}

/// Linux's boot on the vITS ([`linux_boot`]) with the NVMe.
fn boot(its: &mut V<'_>, ram: &mut Ram) -> GuestDriver {
    linux_boot(its, ram, NVME)
}

/// The host LPI of event `e` of the NVMe.
fn host_lpi(its: &V<'_>, e: u32) -> u32 {
    its.backend()
        .host_lpi(vits::PhysEvent {
            device: dev(NVME),
            event: ev(e),
        })
        .expect("mapped")
        .get()
}

#[test]
fn a_device_msi_is_a_host_lpi_on_the_vcpus_cpu_routed_to_its_vintid() {
    let rig = Rig::new(ModelConfig::qemu(2));
    let routes = SoftRoutes::<N>::new();
    let mut its = vits(&rig, &routes, &[AssignedDevice::identity(dev(NVME))]);
    let mut ram = Ram::new();
    let _g = boot(&mut its, &mut ram);
    for (e, cpu) in [(0u32, 0usize), (1, 0), (2, 1)] {
        let lpi = host_lpi(&its, e);
        let ite = rig.model.ite(0, NVME, e).expect("ITE");
        assert!(ite.valid && ite.physical, "{ite:?}");
        assert_eq!((ite.intid, ite.icid), (lpi, cpu as u16), "event {e}");
        assert!(routes.owns(lpi));
        let r = routes.route(lpi).expect("routed");
        assert_eq!((r.vcpu.index(), r.vintid.get()), (cpu, 8193 + e));
        assert_eq!((r.priority, r.enabled), (0xa0, true));
        assert_eq!(
            rig.lpis
                .property(its_core::ids::Lpi::new(lpi).unwrap())
                .unwrap()
                & 0xfd,
            HOST_PRIORITY | 1,
            "enabled at the host priority"
        );
    }
    // The MSI of vector 2 (GITS_TRANSLATER mapped through) is host LPI on CPU 1.
    rig.model.translate(0, NVME, 2);
    assert_eq!(rig.model.take_lpi(1), Some(host_lpi(&its, 2)));
    assert_eq!(rig.model.take_lpi(0), None);
    assert_eq!(routes.routed(), 3);
    rig.model.assert_no_errors();
}

#[test]
fn movi_masking_int_clear_and_discard_follow_the_guest() {
    let rig = Rig::new(ModelConfig::qemu(2));
    let routes = SoftRoutes::<N>::new();
    let mut its = vits(&rig, &routes, &[AssignedDevice::identity(dev(NVME))]);
    let mut ram = Ram::new();
    let mut g = boot(&mut its, &mut ram);
    let lpi = host_lpi(&its, 2);
    // The guest moves vector 2 to vCPU 0: the host LPI follows, and so does the route.
    g.send(&mut its, &mut ram, &[movi(NVME, 2, 0), sync(1), sync(0)]);
    assert_eq!(rig.model.ite(0, NVME, 2).unwrap().icid, 0);
    assert_eq!(routes.route(lpi).unwrap().vcpu.index(), 0);
    rig.model.translate(0, NVME, 2);
    assert_eq!(rig.model.take_lpi(0), Some(lpi));
    // Masked by the guest (its table + INV): the host LPI is disabled, the MSI stays pending.
    ram.set_prop(8195, PROP_OFF);
    g.send(&mut its, &mut ram, &[inv(NVME, 2), sync(0)]);
    assert!(!routes.route(lpi).unwrap().enabled);
    rig.model.translate(0, NVME, 2);
    assert_eq!(rig.model.take_lpi(0), None, "masked");
    assert_eq!(rig.model.pending_lpis(0), [lpi]);
    // Unmasked: it comes.
    ram.set_prop(8195, PROP_ON);
    g.send(&mut its, &mut ram, &[inv(NVME, 2), sync(0)]);
    assert_eq!(rig.model.take_lpi(0), Some(lpi));
    // INT makes it pending as a device would; CLEAR takes it back.
    g.send(&mut its, &mut ram, &[int(NVME, 0), sync(0)]);
    assert_eq!(rig.model.pending_lpis(0), [host_lpi(&its, 0)]);
    g.send(&mut its, &mut ram, &[clear(NVME, 0), sync(0)]);
    assert!(rig.model.pending_lpis(0).is_empty());
    // DISCARD: no ITE, no route, host LPI disabled and free for the next MAPTI.
    g.send(&mut its, &mut ram, &[discard(NVME, 2), sync(0)]);
    assert!(rig.model.ite(0, NVME, 2).is_none_or(|i| !i.valid));
    assert!(routes.route(lpi).is_none());
    assert_eq!(routes.routed(), 2);
    g.send(&mut its, &mut ram, &[mapti(NVME, 2, 8300, 1), sync(1)]);
    assert_eq!(routes.routed(), 3);
    assert!(!its.is_stalled(), "{:?}", its.errors().last());
    rig.model.assert_no_errors();
}

#[test]
fn teardown_leaves_no_mapping_and_no_route() {
    let rig = Rig::new(ModelConfig::qemu(2));
    let routes = SoftRoutes::<N>::new();
    let mut its = vits(&rig, &routes, &[AssignedDevice::identity(dev(NVME))]);
    let mut ram = Ram::new();
    let _g = boot(&mut its, &mut ram);
    its.teardown().unwrap();
    assert_eq!(routes.routed(), 0);
    assert!(its.backend().devices().is_empty());
    assert!(rig.model.dte(0, NVME).is_none_or(|d| !d.valid));
    for l in its.backend().block().iter() {
        assert_eq!(
            rig.lpis.property(l).unwrap() & 1,
            0,
            "LPI {} disabled",
            l.get()
        );
    }
    rig.model.assert_no_errors();
}

#[test]
fn routes_serve_one_backend_and_run_out_politely() {
    let rig = Rig::new(ModelConfig::qemu(2));
    let routes = SoftRoutes::<2>::new();
    assert!(routes.route(8192).is_none(), "no block yet");
    let backend: SoftBackend<'_, ItsHandle, P, 8, 2> =
        SoftBackend::new(rig.its(), &rig.lpis, &routes).unwrap();
    assert!(matches!(
        SoftBackend::<ItsHandle, P, 8, 2>::new(rig.its(), &rig.lpis, &routes),
        Err(vits::SoftError::RoutesInUse)
    ));
    let mut cfg = VitsConfig::new(2, 16, &[], DevicePool::default());
    cfg.event_bits = 5;
    let assigned = [AssignedDevice::identity(dev(NVME))];
    cfg.assigned = &assigned;
    let mut its: Vits<SoftBackend<'_, ItsHandle, P, 8, 2>, 8, 64, 8> =
        Vits::new(cfg, backend).unwrap();
    let mut ram = Ram::new();
    let mut g = linux_probe(&mut its, &mut ram);
    its.set_lpi_config(
        &ram,
        Some(LpiConfigTable {
            base: PROP,
            id_bits: 16,
        }),
    )
    .unwrap();
    g.send(&mut its, &mut ram, &[mapc(0, 0, true), mapd(NVME, 2, true)]);
    // Two host LPIs: the third MAPTI fails in the backend and stalls the guest's queue.
    g.send(
        &mut its,
        &mut ram,
        &[mapti(NVME, 0, 8192, 0), mapti(NVME, 1, 8193, 0), sync(0)],
    );
    assert!(!its.is_stalled());
    let creadr = g.send(&mut its, &mut ram, &[mapti(NVME, 2, 8194, 0), sync(0)]);
    assert_eq!(creadr & 1, 1, "stalled");
    assert!(matches!(
        its.errors().last().unwrap().error,
        vits::CommandError::Backend(vits::SoftError::Exhausted(2))
    ));
    rig.model.assert_no_errors();
}

/// A physical stall at any command of the teardown leaves the backend's device records equal
/// to the physical DTEs, and a retry finishes the job.
#[test]
fn a_teardown_stalled_anywhere_keeps_records_true_and_a_retry_finishes() {
    let booted = || {
        let rig = Rig::new(ModelConfig::qemu(2));
        let routes = SoftRoutes::<N>::new();
        (rig, routes)
    };
    // How many commands an undisturbed teardown issues.
    let commands = {
        let (rig, routes) = booted();
        let mut its = vits(&rig, &routes, &[AssignedDevice::identity(dev(NVME))]);
        let mut ram = Ram::new();
        let _g = boot(&mut its, &mut ram);
        let before = rig.model.counters(0).0;
        its.teardown().unwrap();
        rig.model.counters(0).0 - before
    };
    assert!(commands >= 4, "DISCARDs, SYNCs and the MAPD: {commands}");
    let mut failed = 0;
    for k in 0..commands {
        let (rig, routes) = booted();
        let mut its = vits(&rig, &routes, &[AssignedDevice::identity(dev(NVME))]);
        let mut ram = Ram::new();
        let _g = boot(&mut its, &mut ram);
        rig.model.stall_at(0, Some(rig.model.counters(0).0 + k));
        let first = its.teardown();
        let recorded = its.backend().devices().iter().any(|d| d.id() == dev(NVME));
        let valid = rig.model.dte(0, NVME).is_some_and(|d| d.valid);
        assert_eq!(
            recorded, valid,
            "stall at command {k}: record and DTE agree"
        );
        rig.model.stall_at(0, None);
        rig.model.clear_errors();
        if first.is_err() {
            failed += 1;
            its.teardown().unwrap();
        }
        assert!(its.backend().devices().is_empty(), "stall at command {k}");
        assert!(rig.model.dte(0, NVME).is_none_or(|d| !d.valid));
        assert_eq!(routes.routed(), 0);
        rig.model.assert_no_errors();
    }
    assert!(
        failed >= 2,
        "a stall fails the teardown ({failed} of {commands})"
    );
}
