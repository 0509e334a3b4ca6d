// SPDX-License-Identifier: MIT OR Apache-2.0
//! Queues a hostile guest could build: wrapping, out of range, unreadable, endless, garbage.
//! The vITS must not panic, must do bounded work per trap, and must keep the backend's
//! contract.

mod common;

use common::*;
use its_core::cmd::Command;
use vits::{
    AssignedDevice, CommandError, DevicePool, LpiConfigTable, Op, Recorder, RecorderError, Vits,
    VitsConfig,
};

type V = Vits<Recorder<1024>, 8, 256, 8>;

fn vits(work: u32) -> V {
    let assigned = [AssignedDevice::identity(dev(0x8))];
    let mut cfg = VitsConfig::new(
        2,
        16,
        &assigned,
        DevicePool {
            first: dev(0xf000),
            count: 4,
        },
    );
    cfg.event_bits = 8;
    cfg.work_per_trap = work;
    Vits::new(cfg, Recorder::new()).unwrap()
}

/// Device and collection tables, a queue of `pages` 4 KiB pages at `queue`, enabled.
fn enable(its: &mut V, ram: &Ram, queue: u64, pages: u64) {
    its.write(ram, BASER0, 8, 1 << 63 | 1 << 62 | DEVICE_TABLE | 2 << 8)
        .unwrap();
    its.write(ram, BASER0 + 8, 8, 1 << 63 | COLLECTION_TABLE)
        .unwrap();
    its.write(ram, CBASER, 8, 1 << 63 | queue | (pages - 1))
        .unwrap();
    its.write(ram, CTLR, 4, 1).unwrap();
}

fn no_contract_break(its: &V) {
    for e in its.errors() {
        assert!(
            !matches!(
                e.error,
                CommandError::Backend(RecorderError::Contract { .. })
            ),
            "{e:?}"
        );
    }
}

#[test]
fn the_queue_wraps_around() {
    let mut its = vits(1024);
    let mut ram = Ram::new();
    enable(&mut its, &ram, QUEUE, 1);
    let mut g = GuestDriver::new(QUEUE, 4096);
    // 126 SYNCs move the write offset to the last two slots.
    let syncs: Vec<_> = (0..126).map(|i| sync(i % 2)).collect();
    g.send(&mut its, &mut ram, &syncs);
    assert_eq!(its.read(&ram, CREADR, 8).unwrap(), 126 * 32);
    // MAPC and MAPD in the last slots, MAPTI and INT after the wrap.
    let creadr = g.send(
        &mut its,
        &mut ram,
        &[
            mapc(0, 0, true),
            mapd(0x8, 2, true),
            mapti(0x8, 3, 8200, 0),
            int(0x8, 3),
        ],
    );
    assert_eq!(creadr, 64);
    assert_eq!(its.stats().commands, 130);
    assert_eq!(
        its.backend().log().last(),
        Some(&Op::Int {
            ev: vits::PhysEvent {
                device: dev(0x8),
                event: ev(3)
            }
        })
    );
    // A full lap: CWRITER back where CREADR is means no commands, not 128.
    its.write(&ram, CWRITER, 8, 64).unwrap();
    assert_eq!(its.stats().commands, 130);
}

#[test]
fn cwriter_left_beyond_a_shrunk_queue_runs_nothing() {
    let mut its = vits(1024);
    let mut ram = Ram::new();
    enable(&mut its, &ram, QUEUE, 16);
    let mut g = GuestDriver::new(QUEUE, 16 * 4096);
    let syncs: Vec<_> = (0..200).map(|_| sync(0)).collect();
    g.send(&mut its, &mut ram, &syncs);
    // Disabled, the queue shrinks to one page: CWRITER (6400) is now beyond it.
    its.write(&ram, CTLR, 4, 0).unwrap();
    its.write(&ram, CBASER, 8, 1 << 63 | QUEUE).unwrap();
    its.write(&ram, CTLR, 4, 1).unwrap();
    for _ in 0..3 {
        assert_eq!(its.read(&ram, CREADR, 8).unwrap(), 0);
    }
    assert_eq!(its.stats().commands, 200);
    // A CWRITER within the queue gets it going again.
    its.write(&ram, CWRITER, 8, 32).unwrap();
    assert_eq!(its.read(&ram, CREADR, 8).unwrap(), 32);
}

#[test]
fn a_queue_in_memory_that_is_not_the_vms_stalls() {
    for base in [0u64, 0x3fff_f000, 0x4010_0000, 0xf_ffff_ffff_f000] {
        let mut its = vits(1024);
        let ram = Ram::new();
        enable(&mut its, &ram, base, 256);
        its.write(&ram, CWRITER, 8, 0xfffe0).unwrap();
        // Stalled at the first command (for 0x3fff_f000: its first page is not RAM).
        assert_eq!(its.read(&ram, CREADR, 8).unwrap(), 1, "{base:#x}");
        let e = its.errors().last().copied().unwrap();
        assert_eq!(e.error, CommandError::CommandRead { gpa: base });
        assert!(e.stalled && its.is_stalled());
        assert!(its.backend().log().is_empty());
        // Commands are queued, none can run: a hypervisor looping on process() stops.
        assert!(its.pending() && !its.process(&ram));
        // Retrying reads it again, and stalls again.
        its.write(&ram, CWRITER, 8, 0xfffe0 | 1).unwrap();
        assert_eq!(its.read(&ram, CREADR, 8).unwrap(), 1);
        assert_eq!(its.stats().stalls, 2);
    }
}

#[test]
fn a_queue_running_off_the_end_of_ram_stalls_there() {
    let mut its = vits(1024);
    let ram = Ram::new();
    // The last 4 KiB of RAM, then 12 KiB beyond: zeros (ignored), then a stall.
    let end = RAM_BASE + ram.bytes.len() as u64;
    enable(&mut its, &ram, end - 0x1000, 4);
    its.write(&ram, CWRITER, 8, 0x3000).unwrap();
    assert_eq!(its.read(&ram, CREADR, 8).unwrap(), 0x1000 | 1);
    assert_eq!(its.stats().ignored, 128);
    assert_eq!(
        its.errors().last().unwrap().error,
        CommandError::CommandRead { gpa: end }
    );
}

#[test]
fn a_huge_queue_is_processed_a_budget_per_trap() {
    let budget = 100;
    let mut its = vits(budget);
    let mut ram = Ram::new();
    enable(&mut its, &ram, QUEUE, 256);
    // A full 1 MiB queue: 32767 commands (one slot stays empty).
    let mut g = GuestDriver::new(QUEUE, 256 * 4096);
    let cmds: Vec<_> = (0..32767).map(|i| sync(i % 2)).collect();
    let raw: Vec<_> = cmds.iter().map(Command::encode).collect();
    g.put_raw(&mut ram, &raw);
    its.write(&ram, CWRITER, 8, u64::from(g.wr)).unwrap();
    assert_eq!(its.stats().commands, u64::from(budget));
    assert!(its.pending());
    // Each poll of GITS_CREADR is a trap that does one more budget.
    let mut traps = 1;
    loop {
        traps += 1;
        if its.read(&ram, CREADR, 8).unwrap() == u64::from(g.wr) {
            break;
        }
        assert!(traps < 1000, "does not finish");
    }
    assert_eq!(its.stats().commands, 32767);
    assert_eq!(traps, 32767u32.div_ceil(budget));
    assert!(its.stats().deferred > 0);
    assert!(!its.process(&ram));
}

#[test]
fn commands_with_many_operations_end_the_trap() {
    let budget = 16;
    let mut its = vits(budget);
    let mut ram = Ram::new();
    enable(&mut its, &ram, QUEUE, 16);
    for i in 0..64 {
        ram.set_prop(8192 + i, PROP_OFF);
    }
    its.set_lpi_config(
        &ram,
        Some(LpiConfigTable {
            base: PROP,
            id_bits: 16,
        }),
    )
    .unwrap();
    let mut g = GuestDriver::new(QUEUE, 16 * 4096);
    let mut setup = vec![mapd(0x8, 6, true), mapc(0, 0, true)];
    setup.extend((0..64).map(|e| mapti(0x8, e, 8192 + e, 0)));
    g.send(&mut its, &mut ram, &setup);
    assert_eq!(its.events().count(), 64);
    // A queue toggling the collection: each MAPC moves, unmaps or maps 64 vLPIs.
    let toggles: Vec<_> = (0..40)
        .map(|i| mapc(0, (i % 2) as u64, i % 3 != 2))
        .collect();
    let raw: Vec<_> = toggles.iter().map(Command::encode).collect();
    g.put_raw(&mut ram, &raw);
    let mut traps = 0;
    let mut last_ops = its.stats().backend_ops;
    its.write(&ram, CWRITER, 8, u64::from(g.wr)).unwrap();
    loop {
        traps += 1;
        let ops = its.stats().backend_ops - last_ops;
        last_ops = its.stats().backend_ops;
        // One command at most past the budget: 64 operations.
        assert!(
            ops <= u64::from(budget) + 64,
            "{ops} operations in one trap"
        );
        if !its.pending() {
            break;
        }
        assert!(traps < 100);
        let _ = its.read(&ram, CREADR, 8).unwrap();
    }
    assert!(traps > 10, "{traps} traps");
    no_contract_break(&its);
    // The last MAPC (i = 39: V = 1, vCPU 1) holds.
    assert!(
        its.backend()
            .vlpis()
            .all(|(_, m)| m.vcpu == vits::VcpuId::new(1))
    );
    assert_eq!(its.backend().vlpis().count(), 64);
}

/// xorshift64*: a fixed-seed source of garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn garbage_commands_break_nothing() {
    let mut its = vits(64);
    let mut ram = Ram::new();
    enable(&mut its, &ram, QUEUE, 16);
    its.set_lpi_config(
        &ram,
        Some(LpiConfigTable {
            base: PROP,
            id_bits: 16,
        }),
    )
    .unwrap();
    let mut g = GuestDriver::new(QUEUE, 16 * 4096);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200 {
        // Physical opcodes with small IDs most of the time, so commands hit live state.
        let raw: Vec<[u64; 4]> = (0..16)
            .map(|_| {
                let op =
                    [1u64, 3, 4, 5, 8, 9, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf][(rng.next() % 12) as usize];
                let small = !rng.next().is_multiple_of(4);
                let m = |x: u64, s: u64| if small { x % s } else { x };
                let devid = m(rng.next(), 0x10) << 32;
                let event = m(rng.next(), 16);
                let intid = 8192 + m(rng.next(), 64);
                let icid = m(rng.next(), 8);
                let rdb = m(rng.next(), 3) << 16;
                let v = (rng.next() & 1) << 63;
                [
                    op | devid,
                    event | intid << 32 | (rng.next() % 8),
                    icid | rdb | v,
                    rng.next(),
                ]
            })
            .collect();
        g.send_raw(&mut its, &mut ram, &raw);
        while its.process(&ram) {}
        assert!(!its.is_stalled(), "{:?}", its.errors().last());
        no_contract_break(&its);
        // The records match the backend's.
        for e in its.events() {
            let m = its.backend().vlpi(e.phys);
            assert_eq!(m.map(|m| (m.vcpu, m.prop)), e.live, "{e:?}");
            let c = its.collection(e.icid);
            assert_eq!(
                e.live.map(|l| l.0),
                c,
                "live exactly when the collection is mapped"
            );
        }
        assert_eq!(
            its.backend().vlpis().count(),
            its.events().filter(|e| e.live.is_some()).count()
        );
    }
    assert!(its.stats().backend_ops > 100, "{:?}", its.stats());
    its.teardown().unwrap();
    assert_eq!(its.backend().vlpis().count(), 0);
    assert_eq!(its.backend().devices().count(), 0);
}
