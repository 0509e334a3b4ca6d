// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask bench [--list] [SECTION...]`: run the benchmarks and print their figures.
//!
//! Each entry of [`SECTIONS`] measures one thing and prints its own figures with a header
//! saying what was measured and how. Later sections (the command queue against the fake ITS,
//! QEMU round trips) are added to that list.
//!
//! Host micro-benchmarks live in the `bench/` crate (package `its-bench`), a release-built
//! binary with a hand-rolled harness (warm-up, 101 samples, median and minimum); xtask itself
//! is a debug build, so it never measures anything in-process.

use std::process::ExitCode;

use crate::test::{cargo, workspace_root};

const USAGE: &str = "\
usage: cargo xtask bench [--list] [SECTION...]

Runs the benchmark sections (default: all) and prints their figures.

  --list    name the sections and what each measures
";

/// One benchmark section.
struct Section {
    /// The name given on the command line.
    name: &'static str,
    /// What it measures, for `--list`.
    about: &'static str,
    /// Runs it, printing its figures.
    run: fn() -> Result<(), String>,
}

const SECTIONS: &[Section] = &[Section {
    name: "cmd-encode",
    about: "Command::encode_block of 2048 commands (a 64 KiB queue) vs a plain 32-byte store \
            loop over the same buffer",
    run: || host_bench("cmd-encode"),
}];

/// Builds `bench/` in release mode and runs one of its sections.
fn host_bench(section: &str) -> Result<(), String> {
    let root = workspace_root();
    let manifest = root.join("bench/Cargo.toml");
    let target_dir = root.join("target/bench");
    let status = cargo(None)
        .args(["run", "--quiet", "--release", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--", section])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("its-bench {section} failed ({status})"))
    }
}

/// `cargo xtask bench`.
pub fn run(args: &[String]) -> ExitCode {
    let mut chosen = Vec::new();
    for arg in args {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--list" => {
                for s in SECTIONS {
                    println!("{:<12} {}", s.name, s.about);
                }
                return ExitCode::SUCCESS;
            }
            name => match SECTIONS.iter().find(|s| s.name == name) {
                Some(s) => chosen.push(s),
                None => {
                    eprintln!("error: unknown section `{name}` (--list names them)\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
        }
    }
    if chosen.is_empty() {
        chosen = SECTIONS.iter().collect();
    }
    println!(
        "cargo xtask bench: {} section(s); host figures from a release build \
         (bench/, target/bench), on {}",
        chosen.len(),
        host_description()
    );
    let mut failed = 0;
    for s in chosen {
        println!();
        if let Err(e) = (s.run)() {
            eprintln!("error: section {}: {e}", s.name);
            failed += 1;
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The CPU model and count, so figures are read against the machine that produced them.
fn host_description() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{model} ({cpus} CPUs available)")
}
