// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask fuzz [--target T] [--time SECS] [--no-cmin]`: run the cargo-fuzz targets.
//!
//! For each target (default: all of [`TARGETS`], one after the other) this runs
//! `cargo +nightly fuzz run T -- -max_total_time=SECS -print_final_stats=1`, which adds new
//! inputs to `fuzz/corpus/T/`, then `cargo +nightly fuzz cmin T`, which minimizes that
//! directory in place so the committed corpus stays small. It installs cargo-fuzz
//! (`cargo install cargo-fuzz --locked`) when `cargo fuzz` is missing, and stops with a hint
//! when the nightly toolchain is. The summary gives, per target, executions, exec/s (from
//! libFuzzer's final stats) and the corpus size before the run, after it and after cmin.
//!
//! A crash leaves its input in `fuzz/artifacts/T/`; replay it with
//! `cargo +nightly fuzz run T fuzz/artifacts/T/<file>`. See docs/fuzzing.md.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use crate::workspace::{CargoEnv, cargo, workspace_root};

/// The fuzz targets, as named in `fuzz/Cargo.toml`.
pub const TARGETS: [&str; 4] = ["decode", "encode", "driver", "vits"];

/// Run the cargo-fuzz targets (nightly)
///
/// Runs each cargo-fuzz target for SECS seconds, adding new inputs to fuzz/corpus/T/,
/// then minimizes the corpus with `cargo fuzz cmin` (unless --no-cmin). Needs the
/// nightly toolchain; installs cargo-fuzz when it is missing. A crash leaves its input in
/// fuzz/artifacts/T/.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run only this target (default: all, one after the other)
    #[arg(long, value_name = "T", value_parser = TARGETS)]
    target: Option<String>,
    /// libFuzzer's -max_total_time per target, in seconds
    #[arg(long = "time", value_name = "SECS", default_value_t = 60, value_parser = seconds)]
    secs: u64,
    /// Keep every new input (do not minimize the corpus)
    #[arg(long)]
    no_cmin: bool,
}

/// A `--time` value: a whole number of seconds, at least 1.
fn seconds(s: &str) -> Result<u64, String> {
    s.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| "not a positive whole number of seconds".to_owned())
}

impl Args {
    /// The targets to run, in order.
    fn targets(&self) -> Vec<&'static str> {
        TARGETS
            .into_iter()
            .filter(|t| self.target.as_deref().is_none_or(|chosen| chosen == *t))
            .collect()
    }
}

/// `cargo xtask fuzz`.
pub fn run(opts: &Args) -> ExitCode {
    if let Err(e) = ensure_tools() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let root = workspace_root();
    let mut summaries = Vec::new();
    let mut ok = true;
    for target in opts.targets() {
        match fuzz_target(&root, target, opts) {
            Ok(s) => summaries.push(s),
            Err(e) => {
                eprintln!("error: {target}: {e}");
                ok = false;
            }
        }
    }
    println!("\nfuzz summary ({} s per target):", opts.secs);
    for s in &summaries {
        println!("{s}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Checks for the nightly toolchain and installs cargo-fuzz when it is missing.
fn ensure_tools() -> Result<(), String> {
    if !quiet_ok(cargo(Some("nightly"), CargoEnv::Host).arg("--version")) {
        return Err("the nightly toolchain is needed: rustup toolchain install nightly".into());
    }
    if quiet_ok(cargo(Some("nightly"), CargoEnv::Host).args(["fuzz", "--version"])) {
        return Ok(());
    }
    eprintln!("cargo-fuzz not found: cargo install cargo-fuzz --locked");
    let status = cargo(None, CargoEnv::Host)
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if status.success()
        && quiet_ok(cargo(Some("nightly"), CargoEnv::Host).args(["fuzz", "--version"]))
    {
        Ok(())
    } else {
        Err("installing cargo-fuzz failed".into())
    }
}

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Files and bytes in a corpus directory (0, 0 when it does not exist).
fn corpus_size(dir: &Path) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
}

/// libFuzzer's final statistics (`-print_final_stats=1`).
#[derive(Default)]
struct Stats {
    execs: Option<u64>,
    exec_per_sec: Option<u64>,
}

impl Stats {
    /// Reads `stat::number_of_executed_units: N` and `stat::average_exec_per_sec: N`.
    fn take_line(&mut self, line: &str) {
        let Some((key, value)) = line.trim().rsplit_once(':') else {
            return;
        };
        let value = value.trim().parse().ok();
        match key {
            "stat::number_of_executed_units" => self.execs = value,
            "stat::average_exec_per_sec" => self.exec_per_sec = value,
            _ => {}
        }
    }
}

fn fuzz_target(root: &Path, target: &str, opts: &Args) -> Result<String, String> {
    let dir = root.join("fuzz/corpus").join(target);
    let before = corpus_size(&dir);
    let time = format!("-max_total_time={}", opts.secs);
    let mut cmd = cargo(Some("nightly"), CargoEnv::Host);
    cmd.current_dir(root)
        .args(["fuzz", "run", target, "--", &time, "-print_final_stats=1"])
        .stderr(Stdio::piped());
    eprintln!("+ cargo +nightly fuzz run {target} -- {time} -print_final_stats=1");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    // libFuzzer reports on stderr: echo it, and keep the final statistics.
    let mut stats = Stats::default();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            stats.take_line(&line);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!(
            "cargo fuzz run failed ({status}); a crashing input is in fuzz/artifacts/{target}/"
        ));
    }
    let after_run = corpus_size(&dir);
    let mut line = format!(
        "{target}: {} executions, {} exec/s; corpus {} files / {} bytes before, {} / {} after \
         the run",
        stats.execs.map_or("?".into(), |n| n.to_string()),
        stats.exec_per_sec.map_or("?".into(), |n| n.to_string()),
        before.0,
        before.1,
        after_run.0,
        after_run.1,
    );
    if !opts.no_cmin {
        eprintln!("+ cargo +nightly fuzz cmin {target}");
        let status = cargo(Some("nightly"), CargoEnv::Host)
            .current_dir(root)
            .args(["fuzz", "cmin", target])
            .status()
            .map_err(|e| format!("cannot run cargo fuzz cmin: {e}"))?;
        if !status.success() {
            return Err(format!("cargo fuzz cmin failed ({status})"));
        }
        let after_cmin = corpus_size(&dir);
        line += &format!(", {} / {} after cmin", after_cmin.0, after_cmin.1);
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_are_read() {
        let mut s = Stats::default();
        for line in [
            "#123\tNEW    cov: 1 ft: 2 corp: 3/4b exec/s: 5",
            "stat::number_of_executed_units: 4106113",
            "stat::average_exec_per_sec:     6823",
            "stat::new_units_added:          1011",
        ] {
            s.take_line(line);
        }
        assert_eq!(s.execs, Some(4_106_113));
        assert_eq!(s.exec_per_sec, Some(6823));
    }

    #[test]
    fn arguments() {
        let fuzz = |a: &[&str]| match crate::parse(&[&["fuzz"], a].concat()) {
            Ok(crate::Command::Fuzz(o)) => Ok(o),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let o = fuzz(&["--target", "encode", "--time", "5"]).unwrap();
        assert_eq!((o.targets(), o.secs, o.no_cmin), (vec!["encode"], 5, false));
        let o = fuzz(&["--no-cmin"]).unwrap();
        assert_eq!(
            (o.targets(), o.secs, o.no_cmin),
            (TARGETS.to_vec(), 60, true)
        );
        assert!(fuzz(&["--target", "nope"]).is_err());
        assert!(fuzz(&["--time", "0"]).is_err());
        assert!(fuzz(&["--time", "x"]).is_err());
    }
}
