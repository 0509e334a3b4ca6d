// SPDX-License-Identifier: MIT OR Apache-2.0
//! Replays the committed corpus of the stateful fuzz target `driver` (`fuzz/corpus/driver/`)
//! through the same harness (`its_testkit::fuzz::run`), on stable, as part of
//! `cargo xtask test`. A missing or empty corpus directory fails: a wrong path must not pass.
//!
//! `cargo test -p its-testkit --test fuzz_corpus -- --nocapture` prints the number replayed.

use std::fs;
use std::path::Path;

#[test]
fn replay_driver_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/driver");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} unreadable: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "corpus directory {} is empty",
        dir.display()
    );
    for p in &paths {
        let data = fs::read(p).expect("corpus input");
        let r = std::panic::catch_unwind(|| its_testkit::fuzz::run(&data));
        assert!(
            r.is_ok(),
            "corpus input {} violates a property",
            p.display()
        );
    }
    println!("driver: {} corpus inputs replayed", paths.len());
}

use its_testkit::fuzz::{Op, Setup, run_ops};

/// A script through every operation, succeeding most of the time, with faults injected along
/// the way: it reaches the deep states (events mapped on several CPUs, vLPIs on resident and
/// descheduled vPEs, VMOVP) that random inputs reach only slowly.
fn script() -> Vec<Op> {
    use Op::*;
    let mut ops = vec![
        MapDevice { id: 8, events: 15 },
        MapDevice {
            id: 0x1234,
            events: 3,
        },
        CreateVm { vpes: 2, bits: 2 }, // 3 vPEs, 16-bit vINTIDs
    ];
    for e in 0..8 {
        ops.push(MapEvent {
            slot: 0,
            event: e,
            cpu: (e % 2) as u8,
            enabled: e != 3,
        });
    }
    for e in 0..8 {
        ops.push(Int { slot: 0, event: e });
    }
    ops.extend([
        InvClear {
            slot: 0,
            event: 3,
            clear: false,
        },
        InvClear {
            slot: 0,
            event: 2,
            clear: true,
        },
        MoveEvent {
            slot: 0,
            event: 1,
            cpu: 0,
        },
        Int { slot: 0, event: 1 },
        UnmapEvent { slot: 0, event: 5 },
        MapVlpi {
            dev: 0,
            event: 10,
            vm: 0,
            vpe: 1,
            vintid: 5,
            enabled: true,
            doorbell: true,
        },
        MapVlpi {
            dev: 0,
            event: 4,
            vm: 0,
            vpe: 2,
            vintid: 6,
            enabled: true,
            doorbell: true,
        },
        MapVlpi {
            dev: 1,
            event: 0,
            vm: 0,
            vpe: 0,
            vintid: 7,
            enabled: false,
            doorbell: true,
        },
        Schedule {
            vm: 0,
            vpe: 1,
            cpu: 1,
        },
        Int { slot: 0, event: 10 },
        Deschedule {
            vm: 0,
            vpe: 1,
            doorbell: true,
        },
        Int { slot: 0, event: 10 },
        Schedule {
            vm: 0,
            vpe: 1,
            cpu: 0,
        },
        MoveVlpi {
            dev: 0,
            event: 10,
            vm: 0,
            to: 2,
        },
        UpdateVlpi {
            dev: 1,
            event: 0,
            vm: 0,
            enabled: true,
        },
        Deschedule {
            vm: 0,
            vpe: 1,
            doorbell: false,
        },
        UnmapVlpi {
            dev: 0,
            event: 4,
            vm: 0,
            restore: true,
        },
        Int { slot: 0, event: 4 },
        InjectStall(0),
        MapEvent {
            slot: 1,
            event: 1,
            cpu: 1,
            enabled: true,
        },
        MapEvent {
            slot: 1,
            event: 1,
            cpu: 1,
            enabled: true,
        },
        InjectDelay(3),
        MoveEvent {
            slot: 0,
            event: 0,
            cpu: 1,
        },
        InjectStall(0),
        MapVlpi {
            dev: 1,
            event: 2,
            vm: 0,
            vpe: 1,
            vintid: 9,
            enabled: true,
            doorbell: false,
        },
        InjectDelay(0),
        InjectAllocFailure,
        MapDevice { id: 77, events: 7 },
        InjectAllocFailure,
        CreateVm { vpes: 0, bits: 0 },
        CreateVm { vpes: 1, bits: 1 },
        Schedule {
            vm: 1,
            vpe: 0,
            cpu: 1,
        },
        DestroyVm { slot: 1 },
        // A stall inside a VM's creation (past the doorbells' proxy commands, at a VMAPP;
        // tests/faults.rs stalls every command of create_vm in turn) and while one is
        // destroyed.
        InjectStall(4),
        CreateVm { vpes: 2, bits: 1 },
        InjectStall(1),
        DestroyVm { slot: 1 },
        UnmapDevice { slot: 1 },
        // Bad input, refused: raw (top bit) IDs and indices.
        MapEvent {
            slot: 0,
            event: 0x8000_ffff,
            cpu: 0x85,
            enabled: true,
        },
        MapDevice {
            id: 0x8001_0000,
            events: 0x8000_0000,
        },
        CreateVm {
            vpes: 0xc8,
            bits: 0x99,
        },
        Schedule {
            vm: 0,
            vpe: 0x9f,
            cpu: 0x9f,
        },
    ]);
    ops
}

#[test]
fn scripted_sequences_on_every_kind_of_gic() {
    let setups = [
        Setup {
            two_its: false,
            cpus: 1,
            v41: false,
            non_shareable: false,
            flat: false,
            small_pages: false,
            queue_pages: 15,
        },
        Setup {
            two_its: true,
            cpus: 3,
            v41: true,
            non_shareable: false,
            flat: false,
            small_pages: false,
            queue_pages: 15,
        },
        Setup {
            two_its: true,
            cpus: 3,
            v41: false,
            non_shareable: true,
            flat: true,
            small_pages: true,
            queue_pages: 15,
        },
        Setup {
            two_its: false,
            cpus: 1,
            v41: false,
            non_shareable: false,
            flat: false,
            small_pages: true,
            queue_pages: 0,
        },
    ];
    for s in setups {
        run_ops(s, &script());
    }
}
