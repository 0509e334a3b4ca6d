// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask bench [--list] [--publish] [SECTION...]`: run the benchmarks, print their
//! figures, and write the report with its plots.
//!
//! Each entry of [`SECTIONS`] measures one thing. Host sections run the `bench/` crate
//! (package `its-bench`), a release-built binary: a hand-rolled timing harness for
//! `cmd-encode`, and counts on the host GIC model for the others (xtask itself is a debug
//! build, so it never measures anything in-process). QEMU sections boot scenarios of
//! `qemu-tests/`, each named exactly, with the `cargo xtask qemu-test` runner's own pieces:
//! QEMU found and the images built once per bench run ([`qemu::prepare`]), one boot per
//! scenario ([`run_scenario`], which also writes `target/qemu-test/<scenario>.log`), the
//! suite's verdict ([`qemu::verdict_of`]: a scenario that does not pass fails the section), and
//! the `@@M` lines of its serial output (a Linux guest's, with its console and QEMU's trace of the
//! ITS's commands, in one record per scenario: [`guest_io`]). The benchmark scenarios boot with
//! `-icount shift=0`.
//!
//! Every section's output goes to the terminal. Then the report ([`report`]) is written to
//! `target/bench/report.md`, its plots ([`svg`]) next to it as `target/bench/*.svg`. With
//! `--publish` (all sections must run) the same report is also written as
//! `docs/benchmarks.md`, linking to its plots in `docs/bench/`.

mod guest_io;
mod linux;
pub(crate) mod metrics;
mod report;
mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::qemu::launch::{self, Qemu, run_scenario};
use crate::qemu::{self, images::Images, scenarios};
use crate::workspace::{CargoEnv, cargo, workspace_root};
use metrics::Metric;

/// How a section measures.
enum Kind {
    /// A section of the `its-bench` binary.
    Host(&'static str),
    /// QEMU scenarios, by exact name, booted in this order; their `@@M` lines.
    Qemu(&'static [&'static str]),
}

/// One benchmark section.
struct Section {
    /// The name given on the command line.
    name: &'static str,
    /// What it measures, for `--list`.
    about: &'static str,
    kind: Kind,
}

const SECTIONS: &[Section] = &[
    Section {
        name: "cmd-encode",
        about: "ns per command: Command::encode_block of a 64 KiB queue vs a plain 32-byte \
                store loop (host, release build)",
        kind: Kind::Host("cmd-encode"),
    },
    Section {
        name: "cmdq-batch",
        about: "commands, GITS_CWRITER writes and waits to map N = 1..4096 events: \
                Its::map_events vs Linux's MAPTI + SYNC one at a time (host model)",
        kind: Kind::Host("cmdq-batch"),
    },
    Section {
        name: "vlpi-map",
        about: "commands and GITS_CWRITER writes per vLPI: GicV4::map_vlpis vs Linux's \
                VMAPTI + VSYNC per vLPI (host model)",
        kind: Kind::Host("vlpi-map"),
    },
    Section {
        name: "table-memory",
        about: "bytes per VM, per vPE and for the vPE table, from FakePlatform's accounting, \
                beside Linux's sizes (host model)",
        kind: Kind::Host("table-memory"),
    },
    Section {
        name: "qemu-latency",
        about: "instructions from MSI to guest handler and EL2 exits: direct vLPI, doorbell \
                wake-up, software injection (QEMU, -icount shift=0)",
        kind: Kind::Qemu(&["bench_vlpi_latency"]),
    },
    Section {
        name: "qemu-vpe",
        about: "GICR accesses and ITS commands per vPE schedule/deschedule; vLPI map costs \
                on QEMU's ITS (QEMU, -icount shift=0)",
        kind: Kind::Qemu(&["bench_vpe_counts"]),
    },
    Section {
        name: "qemu-exits",
        about: "EL2 exits per vLPI, per doorbell wake-up and per timer interrupt (HW bit or \
                not), vLPI map commands, from the suite's scenarios (QEMU)",
        kind: Kind::Qemu(&[
            "vlpi_direct",
            "vlpi_edu_passthrough",
            "vlpi_doorbell_wake",
            "vlpi_many",
            "fwd_vtimer",
            "fwd_vtimer_wfi",
        ]),
    },
    Section {
        name: "qemu-linux",
        about: "Debian's Linux reading its NVMe disk through its own ITS: EL2 exits per disk \
                interrupt by cause, instructions per 4 KiB read, ITS commands (QEMU's trace) \
                vs the guest's; GICv4 resident, GICv4 with doorbells, software injection \
                (QEMU, -icount shift=0)",
        kind: Kind::Qemu(&[
            "bench_linux_vlpi",
            "bench_linux_doorbell",
            "bench_linux_soft",
        ]),
    },
];

/// Run the benchmarks, print the figures, write the report
///
/// Runs the benchmark sections (default: all), prints their figures, and writes
/// target/bench/report.md with its plots (target/bench/*.svg).
#[derive(Debug, Default, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Name the sections and what each measures
    #[arg(long)]
    list: bool,
    /// Also write docs/benchmarks.md and docs/bench/*.svg (needs every section)
    #[arg(long)]
    publish: bool,
    /// The sections to run (default: all)
    #[arg(value_name = "SECTION", value_parser = section_names())]
    sections: Vec<String>,
}

/// The names of [`SECTIONS`], for the parser to accept and `--help` to list.
fn section_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(SECTIONS.iter().map(|s| s.name))
}

impl Args {
    /// The chosen sections in [`SECTIONS`] order, each once; an error for `--publish` with
    /// only some of them.
    fn chosen(&self) -> Result<Vec<&'static Section>, String> {
        let chosen: Vec<&Section> = SECTIONS
            .iter()
            .filter(|s| self.sections.is_empty() || self.sections.iter().any(|n| n == s.name))
            .collect();
        if self.publish && chosen.len() != SECTIONS.len() {
            return Err("--publish writes docs/benchmarks.md: it needs every section".to_owned());
        }
        Ok(chosen)
    }

    /// The command line, as the report records it.
    fn command_line(&self) -> String {
        let mut command = String::from("cargo xtask bench");
        if self.publish {
            command.push_str(" --publish");
        }
        for s in &self.sections {
            command.push(' ');
            command.push_str(s);
        }
        command
    }
}

/// Runs one section of the `its-bench` binary (a member of the root workspace, built in
/// release mode), echoes its output and returns its `@@M` figures.
fn host_bench(section: &str) -> Result<Vec<Metric>, String> {
    let out = cargo(None, CargoEnv::Host)
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "its-bench",
            "--",
            section,
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    if !out.status.success() {
        return Err(format!("its-bench {section} failed ({})", out.status));
    }
    Ok(metrics::parse(&text))
}

/// What the QEMU sections boot with: QEMU, the images and the log directory, from
/// [`qemu::prepare`] once per bench run (or why they could not be had).
type QemuSetup = Result<(Qemu, Images, PathBuf), String>;

/// Boots each scenario of `names` once, echoes its result and its `@@M` lines, and returns
/// those figures. A scenario that does not pass the suite's verdict fails the section.
fn qemu_bench(setup: &QemuSetup, names: &[&str]) -> Result<Vec<Metric>, String> {
    let (qemu, images, logdir) = setup.as_ref().map_err(Clone::clone)?;
    let mut figures = Vec::new();
    for name in names {
        let scenario = scenarios::by_name(name).ok_or_else(|| format!("no scenario `{name}`"))?;
        let out = run_scenario(qemu, images, scenario, logdir, &mut |_| {})
            .map_err(|e| format!("{name}: could not run QEMU: {e}"))?;
        let verdict = qemu::verdict_of(scenario, &out);
        let passed = verdict.passed;
        let serial = out.serial.clone();
        let qemu_log = out.qemu_log.clone();
        println!("{}", qemu::format_result(scenario, &Ok((out, verdict))));
        if !passed {
            return Err(format!("scenario {name} failed"));
        }
        for line in serial.lines().filter(|l| l.contains("@@M")) {
            println!("  {name}: {}", line.trim_end());
        }
        if scenario.linux.is_some() {
            // The Linux guest's figures, from its console and QEMU's trace, in one record
            // per scenario (their `@@M` lines carry no name to tell the scenarios apart).
            let r = guest_io::record(name, &serial, &qemu_log);
            println!("  {name}: {}", format_metric(&r));
            figures.push(r);
        } else {
            figures.extend(metrics::parse(&serial));
        }
    }
    Ok(figures)
}

/// Whether section `s` boots the Linux guest.
fn boots_linux(s: &Section) -> bool {
    match s.kind {
        Kind::Qemu(names) => names
            .iter()
            .any(|n| scenarios::by_name(n).is_some_and(|sc| sc.linux.is_some())),
        Kind::Host(_) => false,
    }
}

/// `m` as an `@@M` line's text (without the marker).
fn format_metric(m: &Metric) -> String {
    let pairs: Vec<String> = m.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} {}", m.name, pairs.join(" "))
}

/// `cargo xtask bench`.
pub fn run(opts: &Args) -> ExitCode {
    let chosen = match opts.chosen() {
        Ok(chosen) => chosen,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if opts.list {
        for s in SECTIONS {
            println!("{:<13} {}", s.name, s.about);
        }
        return ExitCode::SUCCESS;
    }
    let start = Instant::now();
    // QEMU and the images, once for all the QEMU sections (none chosen: not looked for).
    let setup: QemuSetup = if chosen.iter().any(|s| matches!(s.kind, Kind::Qemu(_))) {
        qemu::prepare(None, &workspace_root()).and_then(|(q, mut images, logdir)| {
            // The Linux guest (kernel, initramfs, disk) when a section boots it.
            if chosen.iter().any(|s| boots_linux(s)) {
                let guest = crate::linux::provision(&workspace_root())
                    .map_err(|e| format!("provisioning the Linux guest: {e}"))?;
                images.linux = Some(guest);
            }
            Ok((q, images, logdir))
        })
    } else {
        Err("no QEMU section chosen".to_owned())
    };
    let qemu_version = match &setup {
        Ok((q, _, _)) => Some(q.version_line.clone()),
        Err(_) => installed_qemu_version(),
    };
    let env = environment(opts.command_line(), qemu_version);
    println!(
        "cargo xtask bench: {} section(s) on {}; QEMU: {}",
        chosen.len(),
        env.host_cpu,
        env.qemu.as_deref().unwrap_or("not found")
    );
    let mut figures = report::Figures::new();
    let mut times = BTreeMap::new();
    let mut failed = 0;
    for s in &chosen {
        println!("\n== {}: {}", s.name, s.about);
        let t = Instant::now();
        let r = match s.kind {
            Kind::Host(section) => host_bench(section),
            Kind::Qemu(names) => qemu_bench(&setup, names),
        };
        times.insert(s.name.to_owned(), t.elapsed().as_secs_f64());
        match r {
            Ok(ms) => {
                figures.insert(s.name.to_owned(), ms);
            }
            Err(e) => {
                eprintln!("error: section {}: {e}", s.name);
                failed += 1;
            }
        }
    }
    let total = start.elapsed().as_secs_f64();
    let root = workspace_root();
    let mut outputs = vec![(root.join("target/bench"), "report.md", "")];
    if opts.publish && failed == 0 {
        outputs.push((root.join("docs"), "benchmarks.md", "bench/"));
    }
    for (dir, file, prefix) in outputs {
        let r = report::build(&env, &figures, &times, Some(total), prefix);
        match write_report(&dir, file, prefix, &r) {
            Ok(path) => println!("\nreport: {} ({} plots)", path.display(), r.plots.len()),
            Err(e) => {
                eprintln!("error: writing the report: {e}");
                failed += 1;
            }
        }
    }
    if opts.publish && failed != 0 {
        eprintln!("error: docs/benchmarks.md not written: a section failed");
    }
    println!("cargo xtask bench: {total:.1} s, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes `dir/file` and the plots into `dir/prefix`; returns the report's path.
fn write_report(
    dir: &Path,
    file: &str,
    prefix: &str,
    r: &report::Report,
) -> Result<PathBuf, String> {
    let plots = dir.join(prefix);
    std::fs::create_dir_all(&plots).map_err(|e| format!("{}: {e}", plots.display()))?;
    for p in &r.plots {
        let path = plots.join(&p.file);
        std::fs::write(&path, &p.svg).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let path = dir.join(file);
    std::fs::write(&path, &r.markdown).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The first line of a command's standard output, if it ran.
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
}

/// The version line of the QEMU on `PATH`, for a report whose runs did not set QEMU up.
fn installed_qemu_version() -> Option<String> {
    let path = launch::which(launch::QEMU)?;
    launch::version_line(&path).ok().filter(|l| !l.is_empty())
}

/// Where and when: host CPU, QEMU (`qemu`: its version line), Rust, commit, date, command
/// line.
fn environment(command: String, qemu: Option<String>) -> report::Env {
    let commit = match first_line("git", &["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => {
            let changed: Vec<String> = Command::new("git")
                .args(["status", "--porcelain", "--untracked-files=no"])
                .current_dir(workspace_root())
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter_map(|l| l.get(3..))
                        // The report's own output (a previous --publish) is not an input.
                        .filter(|p| *p != "docs/benchmarks.md" && !p.starts_with("docs/bench/"))
                        .map(|p| format!("`{p}`"))
                        .collect()
                })
                .unwrap_or_default();
            match changed.len() {
                0 => format!("`{c}`"),
                k if k <= 6 => format!("`{c}`, with uncommitted changes to {}", changed.join(", ")),
                k => format!("`{c}`, with uncommitted changes to {k} files"),
            }
        }
        None => "unknown".to_owned(),
    };
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    report::Env {
        host_cpu: host_description(),
        qemu,
        rustc: first_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned()),
        commit,
        date: utc_date(secs),
        command,
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

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM UTC` (proleptic Gregorian calendar).
fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 0000-03-01 in 400-year eras of 146097 days; March-based years put the leap
    // day last.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(
            utc_date(1_735_689_600 + 3_600 + 120),
            "2025-01-01 01:02 UTC"
        );
        assert_eq!(utc_date(4_107_542_399), "2100-02-28 23:59 UTC");
    }

    fn bench(a: &[&str]) -> Result<Args, clap::Error> {
        match crate::parse(&[&["bench"], a].concat()) {
            Ok(crate::Command::Bench(o)) => Ok(o),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        }
    }

    /// The names of the sections `args` choose, or the error.
    fn chosen(a: &[&str]) -> Result<Vec<&'static str>, String> {
        let o = bench(a).map_err(|e| e.to_string())?;
        Ok(o.chosen()?.iter().map(|s| s.name).collect())
    }

    #[test]
    fn options_parse_and_publish_needs_every_section() {
        // In table order, each once.
        assert_eq!(
            chosen(&["qemu-vpe", "cmd-encode", "cmd-encode"]),
            Ok(vec!["cmd-encode", "qemu-vpe"])
        );
        let every: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
        assert_eq!(chosen(&[]), Ok(every.clone()));
        assert!(bench(&["--list"]).unwrap().list);
        assert!(bench(&["nope"]).is_err());
        assert_eq!(chosen(&["--publish"]), Ok(every.clone()));
        assert_eq!(chosen(&[&["--publish"], &every[..]].concat()), Ok(every));
        assert!(chosen(&["--publish", "cmd-encode"]).is_err());
    }

    #[test]
    fn the_report_records_the_command_line() {
        let line = |a: &[&str]| bench(a).unwrap().command_line();
        assert_eq!(line(&["--publish"]), "cargo xtask bench --publish");
        assert_eq!(line(&[]), "cargo xtask bench");
        assert_eq!(
            line(&["qemu-vpe", "cmd-encode"]),
            "cargo xtask bench qemu-vpe cmd-encode"
        );
    }

    #[test]
    fn sections_have_unique_names_and_qemu_sections_name_their_scenarios() {
        for (i, s) in SECTIONS.iter().enumerate() {
            assert!(
                SECTIONS[i + 1..].iter().all(|t| t.name != s.name),
                "{}",
                s.name
            );
            if let Kind::Qemu(names) = s.kind {
                assert!(!names.is_empty(), "{}", s.name);
                for name in names {
                    let scenario = scenarios::by_name(name);
                    assert!(scenario.is_some(), "{}: no scenario {name}", s.name);
                    // Only scenarios that must pass: never a runner self-check.
                    assert!(scenario.is_some_and(|sc| !sc.hidden), "{name}");
                }
            }
        }
    }

    #[test]
    fn qemu_exits_boots_the_timer_scenarios_it_reads_and_no_other() {
        let Some(Kind::Qemu(names)) = SECTIONS
            .iter()
            .find(|s| s.name == "qemu-exits")
            .map(|s| &s.kind)
        else {
            panic!("no qemu-exits section");
        };
        assert!(names.contains(&"fwd_vtimer") && names.contains(&"fwd_vtimer_wfi"));
        assert!(!names.contains(&"fwd_vtimer_migrate"));
    }
}
