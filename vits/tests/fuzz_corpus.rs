// SPDX-License-Identifier: MIT OR Apache-2.0
//! Replays the committed corpus of the fuzz target `vits` (`fuzz/corpus/vits/`) through the
//! same harness (`vits::fuzzing::run`), on stable, as part of `cargo xtask test`; and the
//! harness's built-in seeds, which the corpus was seeded with (a minimised corpus may have
//! dropped them). A missing or empty corpus directory fails: a wrong path must not pass.
//!
//! `VITS_WRITE_SEEDS=1` first writes the seeds into the corpus directory as `seed-<name>`.
//!
//! Needs the `fuzzing` feature: `cargo test -p vits --features fuzzing --test fuzz_corpus`.

use std::fs;
use std::path::{Path, PathBuf};

use vits::fuzzing::{decode, encode, run, run_steps, seeds};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/vits")
}

#[test]
fn replay_vits_corpus() {
    let dir = corpus_dir();
    if std::env::var_os("VITS_WRITE_SEEDS").is_some() {
        fs::create_dir_all(&dir).expect("corpus directory");
        for (name, data) in seeds() {
            fs::write(dir.join(format!("seed-{name}")), data).expect("seed written");
        }
    }
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
    println!("vits: {} corpus inputs replayed", paths.len());
}

#[test]
fn seeds_pass_and_round_trip() {
    for (name, data) in seeds() {
        let (setup, steps) = decode(&data);
        assert_eq!(encode(setup, &steps), data, "{name} round-trips");
        assert!(steps.len() > 10, "{name}");
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(r.is_ok(), "seed {name} violates a property");
    }
}

/// The seeds reach deep state: Linux's maps vectors and checks device MSIs; the made-up
/// device's runs INT and CLEAR; the hostile one stalls on a queue that is not RAM.
#[test]
fn seeds_reach_deep_state() {
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

/// The byte code is total: arbitrary bytes decode and run without a finding.
#[test]
fn arbitrary_bytes_decode_and_run() {
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
