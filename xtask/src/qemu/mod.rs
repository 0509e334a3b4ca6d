// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask qemu-test` and `cargo xtask demo`: build the aarch64 images and boot them on
//! QEMU's GICv4 model.
//!
//! ```text
//! cargo xtask qemu-test [--filter S] [--qemu PATH] [--keep-logs] [--jobs N]
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
//! - [`trace`]: the ITS commands QEMU processed, from its own trace (scenarios that ask for it).
//!
//! Logs: `target/qemu-test/<scenario>.log` (serial, then QEMU's stderr) and
//! `<scenario>.qemu.log` (`-d guest_errors,unimp`), for every scenario run, passing or failing. At
//! the start of a run the logs of earlier runs are deleted, so the directory holds this run's
//! logs only, unless `--keep-logs` is given (logs of scenarios not run this time then stay).
//! Exit status: 0 all passed, 1 a scenario failed, 2 usage or set-up error.

pub(crate) mod images;
pub(crate) mod judge;
pub(crate) mod launch;
pub(crate) mod scenarios;
pub(crate) mod trace;

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

/// `--qemu PATH`, for every command that boots QEMU (flattened into its `Args`).
#[derive(Debug, Default, clap::Args)]
pub struct QemuArg {
    /// The QEMU binary (default: qemu-system-aarch64 on PATH)
    ///
    /// When it is not given and none is on PATH, xtask installs QEMU with apt-get if it
    /// runs as root. QEMU 7.1 or later is needed (GICv4 in the `virt` machine).
    #[arg(long = "qemu", value_name = "PATH", verbatim_doc_comment)]
    pub path: Option<PathBuf>,
}

/// Build the QEMU images and run the scenarios
///
/// Builds the qemu-tests images (hyp, guest) and boots each scenario on QEMU's GICv4
/// model, as many at a time as there are CPUs (or --jobs), each judged from its output.
///
/// Logs: target/qemu-test/SCENARIO.log (serial, then QEMU's stderr) and
/// SCENARIO.qemu.log (-d guest_errors,unimp), for every scenario run.
///
/// Exit status: 0 all passed, 1 a scenario failed, 2 usage or set-up error.
#[derive(Debug, Default, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct QemuTestArgs {
    /// Run only the scenarios whose name contains S
    ///
    /// A runner self-check (panic_check, exception_check, guest_error_check) runs
    /// only when S is its exact name; those are expected to FAIL.
    #[arg(long, value_name = "S", verbatim_doc_comment)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub qemu: QemuArg,
    /// Keep the logs of earlier runs (by default a run deletes them first)
    #[arg(long)]
    pub keep_logs: bool,
    /// How many scenarios run at once (default: as many as there are CPUs)
    #[arg(long, short, value_name = "N")]
    pub jobs: Option<std::num::NonZeroUsize>,
}

/// Boot the demo hypervisor on QEMU and narrate each step
///
/// Builds the images and boots the `demo` scenario: an EL2 hypervisor and an EL1 guest
/// on QEMU `virt` (gic-version=4), with a line of narration per step the driver takes.
/// With --linux: the `linux_boot` scenario instead, Debian's arm64 Linux booted on the
/// hypervisor, its console shown as it comes.
#[derive(Debug, Default, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct DemoArgs {
    #[command(flatten)]
    pub qemu: QemuArg,
    /// Narrate an unmodified Linux booting on the hypervisor (`linux_boot`)
    #[arg(long)]
    pub linux: bool,
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
        Ok((out, v)) if v.passed && scenario.linux.is_some() => {
            format!("test {} ... ok\n{}", scenario.name, linux_figures(out))
        }
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

/// A Linux run's figures: wall time, time to `/init`, and the hypervisor's `@@M` lines on
/// exits, interrupts and PSCI (indented, one per line).
pub(crate) fn linux_figures(out: &RunOutput) -> String {
    let mut s = format!(
        "    wall {:.1} s, /init after {}",
        out.elapsed.as_secs_f64(),
        out.to_init
            .map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()))
    );
    for m in crate::bench::metrics::parse(&out.serial) {
        let keep = [
            "exits",
            "irq_vtimer",
            "psci_version",
            "el2_intx",
            "isolation_refused",
        ]
        .iter()
        .any(|k| m.get(k).is_some())
            || m.fields.iter().any(|(k, _)| k.starts_with("el2_spi"));
        if keep {
            let pairs: Vec<String> = m.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("\n    {}", pairs.join(" ")));
        }
    }
    s
}

/// `cargo xtask qemu-test`.
pub fn qemu_test(opts: &QemuTestArgs) -> ExitCode {
    let selected = scenarios::select(opts.filter.as_deref());
    if selected.is_empty() {
        let names: Vec<_> = scenarios::SCENARIOS.iter().map(|s| s.name).collect();
        eprintln!(
            "qemu-test: no scenario matches `{}`; scenarios: {}",
            opts.filter.as_deref().unwrap_or_default(),
            names.join(", ")
        );
        return ExitCode::from(2);
    }

    let suite_start = Instant::now();
    let root = workspace_root();
    let (qemu, images, logdir) = match prepare(opts.qemu.path.as_deref(), &root) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("qemu-test: {e}");
            return ExitCode::from(2);
        }
    };
    let mut images = images;
    if selected.iter().any(|s| s.linux.is_some()) {
        println!("provisioning the Linux guest (target/linux)");
        // Without it the Linux scenarios fail (not provisioned); the others still run.
        match crate::linux::provision(&root) {
            Ok(g) => images.linux = Some(g),
            Err(e) => eprintln!("qemu-test: provisioning the Linux guest failed: {e}"),
        }
    }
    let build_time = suite_start.elapsed();
    if !opts.keep_logs {
        remove_old_logs(&logdir);
    }

    let workers = opts
        .jobs
        .or_else(|| thread::available_parallelism().ok())
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
pub fn demo(opts: &DemoArgs) -> ExitCode {
    let name = if opts.linux { "linux_boot" } else { "demo" };
    let Some(scenario) = scenarios::by_name(name) else {
        eprintln!("demo: no `{name}` scenario in the table");
        return ExitCode::from(2);
    };
    let root = workspace_root();
    let (qemu, mut images, logdir) = match prepare(opts.qemu.path.as_deref(), &root) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    if scenario.linux.is_some() {
        match crate::linux::provision(&root) {
            Ok(g) => images.linux = Some(g),
            Err(e) => {
                eprintln!("demo: provisioning the Linux guest: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let tty = std::io::stdout().is_terminal();
    let (bold, dim, reset) = if tty {
        ("\x1b[1m", "\x1b[2m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    if opts.linux {
        println!(
            "\n{bold}Linux demo{reset}: Debian's arm64 kernel at EL1 on the project's \
             hypervisor at EL2, QEMU `virt` (gic-version=4, {} CPU)\n",
            scenario.smp
        );
    } else {
        println!(
            "\n{bold}GICv4 demo{reset}: an EL2 hypervisor and an EL1 guest on QEMU `virt` \
             (gic-version=4, {} CPUs{})\n",
            scenario.smp,
            if scenario.edu { ", edu PCI device" } else { "" }
        );
    }
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
    use crate::{Command, parse};

    #[test]
    fn options_parse() {
        let Ok(Command::QemuTest(o)) = parse(&[
            "qemu-test",
            "--filter",
            "smp",
            "--keep-logs",
            "--qemu",
            "/q",
        ]) else {
            panic!("qemu-test options");
        };
        assert_eq!(o.filter.as_deref(), Some("smp"));
        assert_eq!(o.qemu.path.as_deref(), Some("/q".as_ref()));
        assert!(o.keep_logs);
        let Ok(Command::QemuTest(o)) = parse(&["qemu-test"]) else {
            panic!("qemu-test without options");
        };
        assert_eq!((o.filter, o.qemu.path, o.keep_logs), (None, None, false));
        let Ok(Command::Demo(o)) = parse(&["demo", "--qemu", "/q"]) else {
            panic!("demo options");
        };
        assert_eq!(o.qemu.path.as_deref(), Some("/q".as_ref()));
        assert!(!o.linux);
        let Ok(Command::Demo(o)) = parse(&["demo", "--linux"]) else {
            panic!("demo --linux");
        };
        assert!(o.linux);
        assert!(parse(&["qemu-test", "--filter"]).is_err());
        assert!(parse(&["qemu-test", "--bogus"]).is_err());
        // The suite's options are not the demo's.
        assert!(parse(&["demo", "--filter", "x"]).is_err());
        assert!(parse(&["demo", "--keep-logs"]).is_err());
    }
}
