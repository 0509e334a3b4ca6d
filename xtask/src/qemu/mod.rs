// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask qemu-test` and `cargo xtask demo`: build the aarch64 images and boot them on
//! QEMU's GICv4 model.
//!
//! ```text
//! cargo xtask qemu-test [--filter S] [--qemu PATH] [--keep-logs]
//! cargo xtask demo [--qemu PATH]
//! ```
//!
//! - [`images`]: builds `qemu-tests` (hyp, then guest) with a sanitized environment, adding the
//!   rust target first if it is missing.
//! - [`launch`]: finds QEMU (`--qemu`, `PATH`, or `apt-get install` when root), checks it is at
//!   least 7.1 (`--version` and apt-get run under generous deadlines, killed past them), boots
//!   one scenario per QEMU process with a total and a no-output deadline. `cargo xtask bench`
//!   boots its scenarios through the same [`prepare`], [`launch::run_scenario`] and
//!   [`verdict_of`].
//! - [`scenarios`]: the table of scenarios (CPUs, devices, deadline, expected guest errors).
//! - [`judge`](mod@judge): the verdict, a pure function of the run's outputs (rules in its docs).
//!
//! Logs: `target/qemu-test/<scenario>.log` (serial, then QEMU's stderr) and
//! `<scenario>.qemu.log` (`-d guest_errors,unimp`), for every scenario run, passing or failing. At
//! the start of a run the logs of earlier runs are deleted, so the directory holds this run's
//! logs only, unless `--keep-logs` is given (logs of scenarios not run this time then stay).
//! Exit status: 0 all passed, 1 a scenario failed, 2 usage or set-up error.

pub(crate) mod images;
mod judge;
pub(crate) mod launch;
pub(crate) mod scenarios;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use images::Images;
use judge::{Line, Verdict, judge, parse_line, strip_ansi};
use launch::{Qemu, RunOutput};
use scenarios::Scenario;

use crate::workspace::workspace_root;

const QEMU_TEST_USAGE: &str = "\
usage: cargo xtask qemu-test [--filter S] [--qemu PATH] [--keep-logs]

  --filter S     run the scenarios whose name contains S (a runner self-check such as
                 panic_check, exception_check or guest_error_check runs only if S is its
                 exact name; those are expected to FAIL)
  --qemu PATH    QEMU binary to use (default: qemu-system-aarch64 on PATH, installed with
                 apt-get when missing and running as root)
  --keep-logs    keep the logs of earlier runs (by default they are deleted when a run starts)

logs: target/qemu-test/<scenario>.log and <scenario>.qemu.log, kept for every scenario run
";

const DEMO_USAGE: &str = "usage: cargo xtask demo [--qemu PATH]\n";

/// Parsed `qemu-test` / `demo` options.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    filter: Option<String>,
    qemu: Option<PathBuf>,
    keep_logs: bool,
    help: bool,
}

fn parse_args(args: &[String], allow_suite_options: bool) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a.as_str() {
            "--qemu" => o.qemu = Some(PathBuf::from(value("--qemu")?)),
            "--filter" if allow_suite_options => o.filter = Some(value("--filter")?),
            "--keep-logs" if allow_suite_options => o.keep_logs = true,
            "-h" | "--help" => o.help = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(o)
}

/// Finds QEMU and builds the images, printing what it uses; returns them with the log
/// directory (`target/qemu-test`, created). `root` is the repository root.
pub(crate) fn prepare(qemu: Option<&Path>, root: &Path) -> Result<(Qemu, Images, PathBuf), String> {
    let qemu = launch::find_qemu(qemu)?;
    println!("QEMU: {} ({})", qemu.version_line, qemu.path.display());
    println!("building the qemu-tests images (hyp, guest)");
    let images = images::build(root)?;
    let logdir = root.join("target").join("qemu-test");
    std::fs::create_dir_all(&logdir)
        .map_err(|e| format!("cannot create {}: {e}", logdir.display()))?;
    Ok((qemu, images, logdir))
}

/// Deletes the scenario logs (`*.log`) an earlier run left in `logdir`.
fn remove_old_logs(logdir: &Path) {
    let Ok(entries) = std::fs::read_dir(logdir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "log") && p.is_file() {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// The verdict on a run (the judge, plus the runner's own timeout detail).
pub(crate) fn verdict_of(scenario: &Scenario, out: &RunOutput) -> Verdict {
    let mut v = judge(
        scenario,
        &out.serial,
        &out.qemu_log,
        out.exit,
        out.timeout.is_some(),
    );
    if let Some(why) = &out.timeout {
        v.reasons.push(format!("killed: {why}"));
        let tail: Vec<_> = out.serial.lines().rev().take(5).collect();
        for line in tail.into_iter().rev() {
            v.reasons.push(format!("last output: {}", strip_ansi(line)));
        }
    }
    v
}

/// Formats one scenario's result the way the suite prints it.
pub(crate) fn format_result(
    scenario: &Scenario,
    result: &Result<(RunOutput, Verdict), String>,
) -> String {
    match result {
        Ok((_, v)) if v.passed => format!("test {} ... ok", scenario.name),
        Ok((out, v)) => {
            let mut s = format!("test {} ... FAILED", scenario.name);
            for r in &v.reasons {
                s.push_str(&format!("\n    {r}"));
            }
            s.push_str(&format!("\n    log: {}", out.log_path.display()));
            if !out.qemu_log.trim().is_empty() {
                s.push_str(&format!(
                    "\n    guest errors: {}",
                    out.qemu_log_path.display()
                ));
            }
            s.push_str(&format!("\n    command: {}", out.command));
            s
        }
        Err(e) => format!(
            "test {} ... FAILED\n    could not run QEMU: {e}",
            scenario.name
        ),
    }
}

/// `cargo xtask qemu-test`.
pub fn qemu_test(args: &[String]) -> ExitCode {
    let opts = match parse_args(args, true) {
        Ok(o) if o.help => {
            print!("{QEMU_TEST_USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(o) => o,
        Err(e) => {
            eprint!("qemu-test: {e}\n{QEMU_TEST_USAGE}");
            return ExitCode::from(2);
        }
    };
    let selected = scenarios::select(opts.filter.as_deref());
    if selected.is_empty() {
        let names: Vec<_> = scenarios::SCENARIOS.iter().map(|s| s.name).collect();
        eprintln!(
            "qemu-test: no scenario matches `{}`; scenarios: {}",
            opts.filter.unwrap_or_default(),
            names.join(", ")
        );
        return ExitCode::from(2);
    }

    let suite_start = Instant::now();
    let root = workspace_root();
    let (qemu, images, logdir) = match prepare(opts.qemu.as_deref(), &root) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("qemu-test: {e}");
            return ExitCode::from(2);
        }
    };
    let build_time = suite_start.elapsed();
    if !opts.keep_logs {
        remove_old_logs(&logdir);
    }

    let workers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(selected.len());
    println!(
        "\nrunning {} QEMU scenarios ({workers} at a time)",
        selected.len()
    );
    let run_start = Instant::now();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let mut passed = 0;
    let mut failed = 0;
    thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, selected, qemu, images, logdir) =
                (&next, &selected, &qemu, &images, &logdir);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&scenario) = selected.get(i) else {
                        break;
                    };
                    let result = launch::run_scenario(qemu, images, scenario, logdir, &mut |_| {})
                        .map(|out| {
                            let v = verdict_of(scenario, &out);
                            (out, v)
                        })
                        .map_err(|e| e.to_string());
                    if tx.send((scenario, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (scenario, result) in rx {
            println!("{}", format_result(scenario, &result));
            match &result {
                Ok((_, v)) if v.passed => passed += 1,
                _ => failed += 1,
            }
        }
    });
    println!(
        "\nwall time: {:.2} s (images {:.2} s, QEMU runs {:.2} s)",
        suite_start.elapsed().as_secs_f64(),
        build_time.as_secs_f64(),
        run_start.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `cargo xtask demo`: boots the `demo` scenario and narrates it.
pub fn demo(args: &[String]) -> ExitCode {
    let opts = match parse_args(args, false) {
        Ok(o) if o.help => {
            print!("{DEMO_USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(o) => o,
        Err(e) => {
            eprint!("demo: {e}\n{DEMO_USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(scenario) = scenarios::by_name("demo") else {
        eprintln!("demo: no `demo` scenario in the table");
        return ExitCode::from(2);
    };
    let root = workspace_root();
    let (qemu, images, logdir) = match prepare(opts.qemu.as_deref(), &root) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let tty = std::io::stdout().is_terminal();
    let (bold, dim, reset) = if tty {
        ("\x1b[1m", "\x1b[2m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    println!(
        "\n{bold}GICv4 demo{reset}: an EL2 hypervisor and an EL1 guest on QEMU `virt` \
         (gic-version=4, {} CPUs{})\n",
        scenario.smp,
        if scenario.edu { ", edu PCI device" } else { "" }
    );
    let mut print_line = |raw: &str| {
        let line = strip_ansi(raw);
        match parse_line(&line) {
            Line::Narration(text) => println!("  {bold}[demo]{reset} {text}"),
            Line::Metrics(m) => println!("  {dim}       metrics: {m}{reset}"),
            _ if line.trim().is_empty() => {}
            _ => println!("  {dim}       | {}{reset}", line.trim_end()),
        }
    };
    let out = match launch::run_scenario(&qemu, &images, scenario, &logdir, &mut print_line) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("demo: could not run QEMU: {e}");
            return ExitCode::FAILURE;
        }
    };
    let v = verdict_of(scenario, &out);
    println!();
    if v.passed {
        println!(
            "demo passed: {} narrated steps in {:.2} s; log {}",
            v.report.narration.len(),
            out.elapsed.as_secs_f64(),
            out.log_path.display()
        );
        ExitCode::SUCCESS
    } else {
        println!("{}", format_result(scenario, &Ok((out, v))));
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse() {
        let o = parse_args(
            &args(&["--filter", "smp", "--keep-logs", "--qemu", "/q"]),
            true,
        );
        assert_eq!(
            o,
            Ok(Options {
                filter: Some("smp".into()),
                qemu: Some("/q".into()),
                keep_logs: true,
                help: false
            })
        );
        assert!(parse_args(&args(&["--filter"]), true).is_err());
        assert!(parse_args(&args(&["--bogus"]), true).is_err());
        assert!(parse_args(&args(&["--filter", "x"]), false).is_err());
        assert!(parse_args(&args(&["--help"]), false).unwrap().help);
    }
}
