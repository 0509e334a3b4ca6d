// SPDX-License-Identifier: MIT OR Apache-2.0
//! Replays the committed corpora of the stateful fuzz targets through the same harnesses, on
//! stable, as part of `cargo xtask test`: `driver` (`fuzz/corpus/driver/`,
//! `its_testkit::fuzz::run`) and `vits` (`fuzz/corpus/vits/`, `its_testkit::fuzz_vits::run`).
//! A missing or empty corpus directory fails: a wrong path must not pass. Also scripted
//! driver sequences, and the vits harness's built-in seeds, which its corpus was seeded with
//! (a minimised corpus may have dropped them).
//!
//! `cargo test -p its-testkit --test fuzz_corpus -- --nocapture` prints the number replayed
//! per target. `VITS_WRITE_SEEDS=1` first writes the vits seeds into `fuzz/corpus/vits/` as
//! `seed-<name>`.

use std::fs;
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Runs every file of `target`'s corpus through `run`, and prints how many.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = corpus_dir(target);
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
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(
            r.is_ok(),
            "corpus input {} violates a property",
            p.display()
        );
    }
    println!("{target}: {} corpus inputs replayed", paths.len());
}

#[test]
fn replay_driver_corpus() {
    replay("driver", its_testkit::fuzz::run);
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

// ---- vits -----------------------------------------------------------------------------------

use its_testkit::fuzz_vits::{decode, encode, run_steps, seeds};

#[test]
fn replay_vits_corpus() {
    if std::env::var_os("VITS_WRITE_SEEDS").is_some() {
        let dir = corpus_dir("vits");
        fs::create_dir_all(&dir).expect("corpus directory");
        for (name, data) in seeds() {
            fs::write(dir.join(format!("seed-{name}")), data).expect("seed written");
        }
    }
    replay("vits", its_testkit::fuzz_vits::run);
}

#[test]
fn vits_seeds_pass_and_round_trip() {
    for (name, data) in seeds() {
        let (setup, steps) = decode(&data);
        assert_eq!(encode(setup, &steps), data, "{name} round-trips");
        assert!(steps.len() > 10, "{name}");
        let r = std::panic::catch_unwind(|| its_testkit::fuzz_vits::run(&data));
        assert!(r.is_ok(), "seed {name} violates a property");
    }
}

/// The vits seeds reach deep state: Linux's maps vectors and checks device MSIs; the made-up
/// device's runs INT and CLEAR; the hostile one stalls on a queue that is not RAM.
#[test]
fn vits_seeds_reach_deep_state() {
    let all = seeds();
    let summary = |name: &str| {
        let (_, data) = all.iter().find(|s| s.0 == name).expect(name);
        let (setup, steps) = decode(data);
        run_steps(setup, &steps)
    };
    let linux = summary("linux-boot");
    assert_eq!(linux.msis, 2);
    assert_eq!(linux.max_live, 3);
    assert_eq!((linux.stats.ignored, linux.stats.stalls), (0, 0));
    assert_eq!(linux.stats.commands, 35);
    let made_up = summary("made-up-int");
    assert_eq!(made_up.max_live, 1);
    assert_eq!(made_up.stats.ignored, 0);
    let moves = summary("collection-moves");
    assert!(moves.stats.backend_ops >= 10, "{moves:?}");
    let hostile = summary("hostile");
    assert_eq!(hostile.stats.stalls, 2, "{hostile:?}");
}

/// The vits byte code is total: arbitrary bytes decode and run without a finding.
#[test]
fn vits_arbitrary_bytes_decode_and_run() {
    let mut x: u64 = 0x1234_5678_9abc_def0;
    for len in [0usize, 1, 7, 64, 512, 4096] {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (setup, steps) = decode(&data);
        assert!(steps.len() <= 256);
        let _ = run_steps(setup, &steps);
    }
}
