// SPDX-License-Identifier: MIT OR Apache-2.0
//! Linux 6.1's probe and boot, replayed against the vITS over the recording backend: the
//! register read-backs Linux checks, and the backend operations its commands become, counted.

mod common;

use common::*;
use its_core::ids::VLpi;
use vits::{
    AssignedDevice, DevicePool, LpiConfigTable, LpiProp, Op, PhysEvent, Recorder, VcpuId, Vits,
    VitsConfig,
};

type V = Vits<Recorder<256>, 16, 256, 16>;

const NVME: u32 = 0x8;

fn vits() -> V {
    let assigned = [AssignedDevice::identity(dev(NVME))];
    let cfg = VitsConfig::new(
        2,
        16,
        &assigned,
        DevicePool {
            first: dev(0xf000),
            count: 8,
        },
    );
    Vits::new(cfg, Recorder::new()).unwrap()
}

fn pe(e: u32) -> PhysEvent {
    PhysEvent {
        device: dev(NVME),
        event: ev(e),
    }
}

fn v(n: u32) -> VLpi {
    VLpi::new(n).unwrap()
}

#[test]
fn probe_reads_back_what_linux_checks() {
    let mut its = vits();
    let mut ram = Ram::new();
    let _ = linux_probe(&mut its, &mut ram);
    // Enabled, not quiescent; nothing reached the backend.
    assert_eq!(its.read(&ram, CTLR, 4).unwrap(), 1);
    assert!(its.backend().log().is_empty());
    // The device table went two-level (16-bit DeviceIDs of 8 bytes exceed two 64 KiB pages).
    let baser0 = its.read(&ram, BASER0, 8).unwrap();
    assert!(baser0 & 1 << 62 != 0);
}

/// The boot Linux does on 2 CPUs with an NVMe drive (measured on QEMU): per CPU MAPC + SYNC
/// and INVALL + SYNC; NVMe maps one vector, unmasks it, tears it down, then maps three;
/// an affinity change moves one.
#[test]
fn linux_boot_becomes_these_backend_operations() {
    let mut its = vits();
    let mut ram = Ram::new();
    let mut g = linux_probe(&mut its, &mut ram);
    // Linux fills its LPI configuration table with the default byte, then each CPU sets
    // GICR_CTLR.EnableLPIs: the hypervisor hands the table over.
    for intid in 8192..8192 + 64 {
        ram.set_prop(intid, PROP_OFF);
    }
    its.set_lpi_config(
        &ram,
        Some(LpiConfigTable {
            base: PROP,
            id_bits: 16,
        }),
    )
    .unwrap();
    for cpu in 0..2u16 {
        g.send(
            &mut its,
            &mut ram,
            &[mapc(cpu, cpu.into(), true), sync(cpu.into())],
        );
        g.send(&mut its, &mut ram, &[invall(cpu), sync(cpu.into())]);
    }
    assert_eq!(its.collection(icid(1)), Some(VcpuId::new(1)));
    // NVMe: one vector (2 ITEs), unmasked, then torn down.
    g.send(&mut its, &mut ram, &[mapd(NVME, 1, true)]);
    g.send(&mut its, &mut ram, &[mapti(NVME, 0, 8192, 0), sync(0)]);
    ram.set_prop(8192, PROP_ON);
    g.send(&mut its, &mut ram, &[inv(NVME, 0), sync(0)]);
    ram.set_prop(8192, PROP_OFF);
    g.send(&mut its, &mut ram, &[inv(NVME, 0), sync(0)]);
    g.send(&mut its, &mut ram, &[discard(NVME, 0), sync(0)]);
    g.send(&mut its, &mut ram, &[mapd(NVME, 1, false), sync(0)]);
    // Three vectors (4 ITEs), spread over both CPUs, unmasked.
    g.send(&mut its, &mut ram, &[mapd(NVME, 2, true)]);
    for (e, cpu) in [(0u32, 0u16), (1, 0), (2, 1)] {
        g.send(
            &mut its,
            &mut ram,
            &[mapti(NVME, e, 8193 + e, cpu), sync(cpu.into())],
        );
    }
    for (e, cpu) in [(0u32, 0u64), (1, 0), (2, 1)] {
        ram.set_prop(8193 + e, PROP_ON);
        g.send(&mut its, &mut ram, &[inv(NVME, e), sync(cpu)]);
    }
    // An affinity change: vector 2 to CPU 0.
    g.send(&mut its, &mut ram, &[movi(NVME, 2, 0), sync(1), sync(0)]);

    let off = LpiProp::from_byte(PROP_OFF);
    let on = LpiProp::from_byte(PROP_ON);
    let vc = VcpuId::new;
    let expected = [
        Op::MapDevice {
            device: dev(NVME),
            event_bits: 1,
        },
        Op::MapVlpi {
            ev: pe(0),
            vcpu: vc(0),
            vintid: v(8192),
            prop: off,
        },
        Op::UpdateVlpi {
            ev: pe(0),
            prop: on,
            inv: true,
        },
        Op::UpdateVlpi {
            ev: pe(0),
            prop: off,
            inv: true,
        },
        Op::UnmapVlpi { ev: pe(0) },
        Op::UnmapDevice { device: dev(NVME) },
        Op::MapDevice {
            device: dev(NVME),
            event_bits: 2,
        },
        Op::MapVlpi {
            ev: pe(0),
            vcpu: vc(0),
            vintid: v(8193),
            prop: off,
        },
        Op::MapVlpi {
            ev: pe(1),
            vcpu: vc(0),
            vintid: v(8194),
            prop: off,
        },
        Op::MapVlpi {
            ev: pe(2),
            vcpu: vc(1),
            vintid: v(8195),
            prop: off,
        },
        Op::UpdateVlpi {
            ev: pe(0),
            prop: on,
            inv: true,
        },
        Op::UpdateVlpi {
            ev: pe(1),
            prop: on,
            inv: true,
        },
        Op::UpdateVlpi {
            ev: pe(2),
            prop: on,
            inv: true,
        },
        Op::MoveVlpi {
            ev: pe(2),
            vcpu: vc(0),
        },
    ];
    assert_eq!(its.backend().log(), expected);
    // Every command ran, none was refused, and each CWRITER write completed within the
    // trap: one CREADR read per write.
    let s = its.stats();
    assert_eq!(s.commands, u64::from(g.sent));
    assert_eq!(g.sent, 35);
    assert_eq!(g.cwriter_writes, 18);
    assert_eq!(g.creadr_reads, g.cwriter_writes);
    assert_eq!((s.ignored, s.stalls, s.deferred), (0, 0, 0));
    assert_eq!(s.backend_ops, expected.len() as u64);
    assert_eq!(its.errors().count(), 0);
    // The vITS's records and the backend's agree.
    for e in its.events() {
        let m = its.backend().vlpi(e.phys).expect("live");
        assert_eq!(Some((m.vcpu, m.prop)), e.live);
        assert_eq!(m.vintid, e.vintid);
    }
    assert_eq!(its.events().count(), 3);
    // Teardown leaves the backend empty.
    its.teardown().unwrap();
    assert_eq!(its.backend().vlpis().count(), 0);
    assert_eq!(its.backend().devices().count(), 0);
    assert_eq!(its.read(&ram, CTLR, 4).unwrap(), 1 << 31);
}
