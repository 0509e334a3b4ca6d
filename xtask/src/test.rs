// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask test`: every test layer, in order, with a one-line verdict per stage.
//!
//! Stages, each run even if an earlier one failed:
//! 1. `host`: `cargo test --workspace`, the host unit, integration and doc tests of every
//!    crate with default features (the xtask CLI contract tests included);
//! 2. `all-features`: `cargo test -p its-core --all-features`, its-core with its fakes,
//!    `arbitrary`, `defmt` and `log` code compiled in; then the API docs of every crate with
//!    every feature (`cargo doc --workspace --no-deps --all-features` with rustdoc warnings
//!    denied: a broken intra-doc link or an unnameable public type fails);
//! 3. `fuzz-corpus`: the replay of the committed fuzz corpora: `cargo test -p its-core
//!    --features arbitrary --test fuzz_corpus` (targets `decode`, `encode`) and `cargo test -p
//!    vpe-sched --features fuzzing --test fuzz_corpus` (the stateful target `driver`, plus its
//!    scripted sequences). It checks from their output that every corpus was actually
//!    replayed (a stage that passes because nothing ran is a failure);
//! 4. `qemu`: the QEMU suite (`cargo xtask qemu-test`).
//!
//! Then a summary, one `stage NAME ... ok|FAILED` line per stage, and a closing line
//! `N passed, N failed` that counts stages (not individual tests: each stage prints its own
//! test counts above). The exit status is 0 only when every stage passed. Everything it needs
//! is built by cargo, so it works on a fresh clone.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};

use crate::workspace::{CargoEnv, cargo};

const USAGE: &str = "\
usage: cargo xtask test

Runs, in order: host tests (cargo test --workspace), its-core with all features, the fuzz-corpus
replays (its-core and vpe-sched), the QEMU suite. Prints `stage NAME ... ok|FAILED` per stage
and ends with `N passed, N failed` (N counts stages). Exits non-zero if any stage failed.
";

/// One stage of `cargo xtask test`.
struct Stage {
    name: &'static str,
    run: fn() -> Result<(), String>,
}

const STAGES: [Stage; 4] = [
    Stage {
        name: "host",
        run: host,
    },
    Stage {
        name: "all-features",
        run: all_features,
    },
    Stage {
        name: "fuzz-corpus",
        run: fuzz_corpus,
    },
    Stage {
        name: "qemu",
        run: qemu,
    },
];

/// `cargo xtask test`.
pub fn run(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("error: unknown argument `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let mut results = Vec::new();
    for stage in &STAGES {
        println!("\n=== stage {} ===", stage.name);
        let result = (stage.run)();
        if let Err(e) = &result {
            println!("stage {} failed: {e}", stage.name);
        }
        results.push((stage.name, result.is_ok()));
    }
    println!();
    for (name, ok) in &results {
        println!("stage {name} ... {}", if *ok { "ok" } else { "FAILED" });
    }
    let passed = results.iter().filter(|(_, ok)| *ok).count();
    let failed = results.len() - passed;
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs `cmd`, echoing the command line and its output; returns its stdout lines.
fn run_cargo(cmd: &mut Command) -> Result<Vec<String>, String> {
    let shown: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    println!("+ cargo {}", shown.join(" "));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut lines = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            lines.push(line);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(lines)
    } else {
        Err(format!("cargo exited with {status}"))
    }
}

fn host() -> Result<(), String> {
    run_cargo(cargo(None, CargoEnv::Host).args(["test", "--workspace"])).map(drop)
}

fn all_features() -> Result<(), String> {
    run_cargo(cargo(None, CargoEnv::Host).args(["test", "-p", "its-core", "--all-features"]))?;
    run_cargo(
        cargo(None, CargoEnv::Host)
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )
    .map(drop)
}

fn fuzz_corpus() -> Result<(), String> {
    let mut lines = run_cargo(cargo(None, CargoEnv::Host).args([
        "test",
        "-p",
        "its-core",
        "--features",
        "arbitrary",
        "--test",
        "fuzz_corpus",
        "--",
        "--nocapture",
        "--exact",
        // Only the replays: the test's self-check of its failure paths panics on purpose,
        // which is noise without capture (stage all-features runs it).
        "decode_corpus",
        "encode_corpus",
    ]))?;
    lines.extend(run_cargo(cargo(None, CargoEnv::Host).args([
        "test",
        "-p",
        "vpe-sched",
        "--features",
        "fuzzing",
        "--test",
        "fuzz_corpus",
        "--",
        "--nocapture",
    ]))?);
    check_replayed(&lines)
}

/// Checks that the replay test reported a non-zero number of inputs for every fuzz target.
fn check_replayed(lines: &[String]) -> Result<(), String> {
    for target in crate::fuzz::TARGETS {
        let prefix = format!("{target}: ");
        let count = lines
            .iter()
            .filter_map(|l| {
                l.strip_prefix(&prefix)?
                    .strip_suffix(" corpus inputs replayed")
            })
            .find_map(|n| n.parse::<usize>().ok());
        match count {
            Some(n) if n > 0 => println!("fuzz corpus {target}: {n} inputs replayed"),
            _ => return Err(format!("the {target} corpus was not replayed")),
        }
    }
    Ok(())
}

fn qemu() -> Result<(), String> {
    if crate::qemu::qemu_test(&[]) == ExitCode::SUCCESS {
        Ok(())
    } else {
        Err("the QEMU suite failed".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_counts_are_checked() {
        let lines = |s: &[&str]| s.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let both = lines(&[
            "decode: 12 corpus inputs replayed",
            "test decode_corpus ... ok",
            "encode: 3 corpus inputs replayed",
            "driver: 40 corpus inputs replayed",
        ]);
        assert_eq!(check_replayed(&both), Ok(()));
        assert!(check_replayed(&lines(&["decode: 12 corpus inputs replayed"])).is_err());
        assert!(
            check_replayed(&lines(&[
                "decode: 12 corpus inputs replayed",
                "encode: 3 corpus inputs replayed"
            ]))
            .is_err(),
            "a missing driver replay must fail"
        );
        assert!(
            check_replayed(&lines(&[
                "decode: 0 corpus inputs replayed",
                "encode: 3 corpus inputs replayed",
                "driver: 40 corpus inputs replayed"
            ]))
            .is_err()
        );
    }
}
