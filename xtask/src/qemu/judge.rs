// SPDX-License-Identifier: MIT OR Apache-2.0
//! The verdict on one QEMU run: a pure function of its outputs, tested on recorded logs.
//!
//! # Rules
//!
//! A scenario passes only if **all** of these hold:
//!
//! 1. QEMU finished before the deadline (`timed_out` is false);
//! 2. the serial output has `@@T ok <scenario>`;
//! 3. it has `@@T done passed=N failed=0` with `N >= 1`;
//! 4. it has no `@@T fail`, `@@T panic` or `@@T exception` line (from the hyp or the guest);
//! 5. QEMU's exit status is 0 (the image exits through semihosting with its verdict; a panic
//!    exits 101, an unexpected exception 102, failed checks 1);
//! 6. QEMU's `-d guest_errors,unimp` log has no line other than those matching one of the
//!    scenario's declared `expected_guest_errors` substrings (case-insensitive). Every line
//!    counts, not only GIC/ITS ones: a bad ITS command does not stall the queue and is visible
//!    only there, and any other guest error (UART, PCI, ...) or access to something QEMU does
//!    not implement is a bug in our images too. Lines
//!    that mention the GIC or ITS are labelled as such in the reason. [`UNRELATED_GUEST_ERRORS`]
//!    lists the exceptions (none so far); a scenario that traces the ITS's commands
//!    ([`Scenario::its_trace`]) shares that log with the trace, whose lines are not errors;
//! 7. every declared expected guest-error substring appears in that log;
//! 8. for a scenario that traces the ITS's commands (rules in [`judge_its_trace`]): QEMU
//!    processed as many as the hypervisor says it wrote, and during the guest's I/O window at
//!    least the scenario's expected number of each kind it names;
//! 9. for a Linux scenario ([`Scenario::linux`], rules in [`judge_linux`]): no guest kernel
//!    panic, Oops, `WARNING:`, `BUG:` or RCU stall on the console, no `@@L FAIL` line, and
//!    `/init` reported what its mode must show.
//!
//! Parsing strips ANSI escapes and `\r`, and finds the `@@` marker anywhere in a line (output
//! of two CPUs can share a line). The reasons name every rule broken, quoting the `@@T panic`
//! / `@@T exception` / `@@T fail` lines.

use super::scenarios::{LinuxGuest, Scenario};
use super::trace;
use crate::bench::metrics;
use crate::linux::machine::InitReport;

/// Console words that mean the guest kernel went wrong (case-sensitive, as the kernel prints
/// them).
pub const KERNEL_TROUBLE: &[&str] = &[
    "Kernel panic",
    "Oops",
    "WARNING:",
    "BUG:",
    "Unable to handle kernel",
    "detected stall",
];

/// Guest-error lines known to be unrelated to our images (substrings, case-insensitive).
/// Empty: add one only with a comment saying why it is harmless.
pub const UNRELATED_GUEST_ERRORS: &[&str] = &[];

/// Words that mark a guest-error line as a GIC/ITS one (case-insensitive).
const GIC_ITS_WORDS: &[&str] = &[
    "gic",
    "its",
    "gits",
    "gicr",
    "gicd",
    "redist",
    "invalid command attributes",
    "cmd processing failed",
    "invalid guest read",
    "invalid guest write",
    "unpredictable",
    "invalid doorbell",
    "invalid vte",
    "vpeid",
    "vintid",
    "doorbell",
    "mapd",
    "mapc",
    "mapti",
    "vmapp",
    "vmovp",
    "lpi",
];

/// What the serial output says, parsed.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Report {
    /// Scenarios with `@@T ok`.
    pub ok: Vec<String>,
    /// `@@T fail` lines (from `fail`).
    pub fails: Vec<String>,
    /// `@@T panic` lines (from `panic`).
    pub panics: Vec<String>,
    /// `@@T exception` lines (from `exception`).
    pub exceptions: Vec<String>,
    /// `(passed, failed)` of the last `@@T done` line.
    pub done: Option<(u64, u64)>,
    /// `@@N` narration texts.
    pub narration: Vec<String>,
}

/// The verdict.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Verdict {
    /// Whether the scenario passed.
    pub passed: bool,
    /// Why not (one line each); empty if it passed.
    pub reasons: Vec<String>,
    /// The parsed serial output.
    pub report: Report,
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ESC \`, and
/// two-byte `ESC x`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' {
                        chars.next();
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Splits text into clean lines: ANSI escapes and `\r` removed.
pub fn clean_lines(text: &str) -> Vec<String> {
    strip_ansi(text)
        .lines()
        .map(|l| l.replace('\r', ""))
        .collect()
}

/// One protocol line, parsed.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Line<'a> {
    /// `@@T start <name>`.
    Start(&'a str),
    /// `@@T ok <name>`.
    Ok(&'a str),
    /// `@@T fail ...` (the text after `fail `).
    Fail(&'a str),
    /// `@@T panic ...` (the whole `@@T` line).
    Panic(&'a str),
    /// `@@T exception ...` (the whole `@@T` line).
    Exception(&'a str),
    /// `@@T done passed=N failed=M`.
    Done(u64, u64),
    /// `@@N <text>`.
    Narration(&'a str),
    /// `@@M k=v ...` (the text after `@@M `).
    Metrics(&'a str),
    /// Anything else (including malformed `@@` lines).
    Other(&'a str),
}

/// Parses one clean line.
pub fn parse_line(line: &str) -> Line<'_> {
    let Some(at) = line.find("@@") else {
        return Line::Other(line);
    };
    let tagged = line[at..].trim_end();
    if let Some(rest) = tagged.strip_prefix("@@N") {
        return Line::Narration(rest.strip_prefix(' ').unwrap_or(rest));
    }
    if let Some(rest) = tagged.strip_prefix("@@M") {
        return Line::Metrics(rest.trim_start());
    }
    let Some(rest) = tagged.strip_prefix("@@T ") else {
        return Line::Other(line);
    };
    let (word, arg) = rest.split_once(' ').unwrap_or((rest, ""));
    match word {
        "start" => Line::Start(arg.trim()),
        "ok" => Line::Ok(arg.trim()),
        "fail" => Line::Fail(arg),
        "panic" => Line::Panic(tagged),
        "exception" => Line::Exception(tagged),
        "done" => {
            let field = |key: &str| {
                arg.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            match (field("passed="), field("failed=")) {
                (Some(p), Some(f)) => Line::Done(p, f),
                _ => Line::Other(line),
            }
        }
        _ => Line::Other(line),
    }
}

/// Parses the serial output.
pub fn parse(serial: &str) -> Report {
    let mut r = Report::default();
    for line in clean_lines(serial) {
        match parse_line(&line) {
            Line::Ok(n) => r.ok.push(n.to_owned()),
            Line::Fail(m) => r.fails.push(m.to_owned()),
            Line::Panic(l) => r.panics.push(l.to_owned()),
            Line::Exception(l) => r.exceptions.push(l.to_owned()),
            Line::Done(p, f) => r.done = Some((p, f)),
            Line::Narration(t) => r.narration.push(t.to_owned()),
            Line::Start(_) | Line::Metrics(_) | Line::Other(_) => {}
        }
    }
    r
}

/// Whether a guest-error line is about the GIC or the ITS.
pub fn is_gic_its_line(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    GIC_ITS_WORDS.iter().any(|w| {
        // Short words must start a token ("gic" in "magic" is not the GIC), and "its" must be
        // a whole token ("itself", "bits").
        if w.len() <= 4 {
            lower
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|token| token.starts_with(w) && (*w != "its" || token == "its"))
        } else {
            lower.contains(w)
        }
    })
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

fn describe_status(code: i32) -> &'static str {
    match code {
        1 => " (failed checks)",
        101 => " (panic)",
        102 => " (unexpected exception)",
        3 => " (wrong exception level at entry)",
        _ => "",
    }
}

/// Judges one run. `serial` is QEMU's stdout (and stderr), `qemu_log` the `-D` file,
/// `exit` QEMU's exit status (`None` if it was killed by a signal), `timed_out` whether the
/// runner killed it at a deadline. See the module docs for the rules.
pub fn judge(
    scenario: &Scenario,
    serial: &str,
    qemu_log: &str,
    exit: Option<i32>,
    timed_out: bool,
) -> Verdict {
    let report = parse(serial);
    let mut reasons = Vec::new();
    let name = scenario.name;

    if timed_out {
        reasons.push("timed out: QEMU was killed at the deadline".to_owned());
    }
    for p in &report.panics {
        reasons.push(p.clone());
    }
    for e in &report.exceptions {
        reasons.push(e.clone());
    }
    for f in &report.fails {
        reasons.push(format!("@@T fail {f}"));
    }
    if !report.ok.iter().any(|n| n == name) {
        reasons.push(format!("no `@@T ok {name}` line"));
    }
    match report.done {
        None => reasons.push("no `@@T done` line".to_owned()),
        Some((passed, failed)) => {
            if failed != 0 {
                reasons.push(format!("`@@T done` reports failed={failed}"));
            }
            if passed == 0 {
                reasons.push("`@@T done` reports passed=0".to_owned());
            }
        }
    }
    match (exit, timed_out) {
        (Some(0), _) | (None, true) => {}
        (Some(code), _) => {
            reasons.push(format!("QEMU exit status {code}{}", describe_status(code)));
        }
        (None, false) => reasons.push("QEMU was killed by a signal".to_owned()),
    }

    for line in clean_lines(qemu_log) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let expected = scenario
            .expected_guest_errors
            .iter()
            .any(|e| contains_ci(line, e));
        let unrelated = UNRELATED_GUEST_ERRORS.iter().any(|e| contains_ci(line, e));
        // The ITS command trace a scenario asked for shares the log; it is not an error.
        let traced = scenario.its_trace && trace::is_trace_line(line);
        if expected || unrelated || traced {
            continue;
        }
        if is_gic_its_line(line) {
            reasons.push(format!("unexpected GIC/ITS guest error: {line}"));
        } else {
            reasons.push(format!("unexpected guest error: {line}"));
        }
    }
    for e in scenario.expected_guest_errors {
        if !qemu_log.lines().any(|l| contains_ci(l, e)) {
            reasons.push(format!("expected guest error not seen: {e:?}"));
        }
    }
    if scenario.its_trace {
        reasons.extend(judge_its_trace(scenario, serial, qemu_log));
    }
    if let Some(guest) = &scenario.linux {
        reasons.extend(judge_linux(scenario, guest, serial));
    }

    Verdict {
        passed: reasons.is_empty(),
        reasons,
        report,
    }
}

/// The ITS trace rules ([`Scenario::its_trace`]): QEMU's ITS processed exactly the commands
/// the hypervisor says it wrote (`@@M its_commands=N`, which it must print), and during the
/// guest's I/O window (`@@M window_its_first=F window_its_commands=W`: the trace's commands F
/// to F + W - 1, since the ITS processes them in the order they are written) at least
/// [`Scenario::its_window_at_least`] of each kind named there.
pub fn judge_its_trace(scenario: &Scenario, serial: &str, qemu_log: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    let traced = trace::total(&trace::count(qemu_log));
    let figures = metrics::parse(&clean_lines(serial).join("\n"));
    let num = |k: &str| figures.iter().find_map(|m| m.num(k)).map(|v| v as u64);
    match num("its_commands") {
        Some(n) if n == traced => {}
        Some(n) => reasons.push(format!(
            "ITS trace: QEMU processed {traced} commands, the hypervisor counted {n} written"
        )),
        None => reasons.push(
            "ITS trace: no `@@M its_commands=N` from the hypervisor to check the trace against"
                .to_owned(),
        ),
    }
    if scenario.its_window_at_least.is_empty() {
        return reasons;
    }
    let (Some(first), Some(len)) = (num("window_its_first"), num("window_its_commands")) else {
        reasons.push("ITS trace: no `@@M window_its_first/window_its_commands`".to_owned());
        return reasons;
    };
    let window = trace::count_range(qemu_log, first, len);
    for &(op, at_least) in scenario.its_window_at_least {
        let n = window.get(op).copied().unwrap_or(0);
        if n < at_least {
            reasons.push(format!(
                "ITS trace: QEMU processed {n} {} during the I/O window, at least {at_least} \
                 expected",
                op.to_uppercase()
            ));
        }
    }
    reasons
}

/// The online CPUs `/init` must see on `smp` CPUs: `0`, or `0-N`.
fn all_cpus(smp: u32) -> String {
    if smp <= 1 {
        "0".to_owned()
    } else {
        format!("0-{}", smp - 1)
    }
}

/// The Linux rules: the [`KERNEL_TROUBLE`] words and `@@L FAIL` lines fail any Linux
/// scenario; one run on demand (any kernel) needs nothing more. The others need `/init`'s
/// verdict for their mode ([`InitReport::verdict`]), every CPU online, and for NVMe at least
/// as many PCIe INTx interrupts taken at EL2 (`@@M el2_intx`) as the guest counted on the
/// disk's line, or, when the guest has its own ITS ([`LinuxGuest::msi`]), NVMe vectors
/// labelled `ITS-MSI` and no INTx at EL2.
pub fn judge_linux(scenario: &Scenario, guest: &LinuxGuest, serial: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    let lines = clean_lines(serial);
    for line in &lines {
        if KERNEL_TROUBLE.iter().any(|w| line.contains(w)) {
            reasons.push(format!("guest kernel: {}", line.trim()));
        }
    }
    let report = InitReport::parse(&lines.join("\n"));
    for f in &report.failures {
        reasons.push(format!("/init: @@L FAIL {f}"));
    }
    if scenario.on_demand {
        return reasons;
    }
    if let Err(e) = report.verdict(guest.mode) {
        reasons.push(format!("/init: {e}"));
    }
    let want = all_cpus(scenario.smp);
    if report.cpus_online.as_deref() != Some(want.as_str()) {
        reasons.push(format!(
            "/init saw CPUs {:?} online, not {want}",
            report.cpus_online
        ));
    }
    if guest.nvme && guest.msi {
        // The guest's own ITS: its NVMe vectors are ITS MSIs, and no INTx reached EL2.
        let nvme = report.irq_lines("after", "nvme0q");
        if nvme.is_empty() || !nvme.iter().all(|l| l.desc.contains("ITS-MSI")) {
            reasons.push(format!(
                "NVMe interrupts are not ITS MSIs: {:?}",
                nvme.iter().map(|l| &l.desc).collect::<Vec<_>>()
            ));
        }
        let figures = metrics::parse(&lines.join("\n"));
        let num = |k: &str| figures.iter().find_map(|m| m.num(k)).map(|v| v as u64);
        let el2 = num("el2_intx");
        if el2.is_some_and(|n| n != 0) {
            reasons.push(format!("NVMe with MSIs, yet EL2 took {el2:?} PCIe INTx"));
        }
        // Software injection (host LPIs routed): every interrupt the guest took during the
        // reads was a host LPI taken at EL2 first, at an exit or while its vCPU was blocked.
        if num("window_lpis_injected").is_some_and(|n| n > 0) {
            let io = |when| -> u64 {
                report
                    .irq_lines(when, "nvme0q")
                    .iter()
                    .map(|l| l.total)
                    .sum()
            };
            let guest = io("after").saturating_sub(io("before"));
            let taken =
                num("window_disk_exits").unwrap_or(0) + num("window_lpi_wakeups").unwrap_or(0);
            if taken < guest.saturating_sub(2) || guest == 0 {
                reasons.push(format!(
                    "software injection: the guest took {guest} NVMe interrupts during the \
                     reads, EL2 took {taken} host LPIs"
                ));
            }
        }
    } else if guest.nvme {
        let guest_irqs: u64 = report
            .irq_lines("after", "nvme0q")
            .iter()
            .map(|l| l.total)
            .sum();
        let el2 = metrics::parse(&lines.join("\n"))
            .iter()
            .find_map(|m| m.num("el2_intx"))
            .map(|v| v as u64);
        match el2 {
            Some(n) if n >= guest_irqs && guest_irqs > 0 => {}
            other => reasons.push(format!(
                "NVMe interrupts: the guest counted {guest_irqs}, EL2 took {other:?}"
            )),
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::scenarios::{Scenario, by_name};

    /// Recorded from real runs of `cargo xtask qemu-test` (target/qemu-test/*.log).
    const BOOT_SMOKE_PASS: &str = include_str!("fixtures/boot_smoke.pass.log");
    const GUEST_SMOKE_PASS: &str = include_str!("fixtures/guest_smoke.pass.log");
    const DEMO_PASS: &str = include_str!("fixtures/demo.pass.log");
    const BOOT_SMOKE_BROKEN: &str = include_str!("fixtures/boot_smoke.broken-check.log");
    const PANIC: &str = include_str!("fixtures/panic_check.log");
    const EXCEPTION: &str = include_str!("fixtures/exception_check.log");
    const GUEST_ERROR_SERIAL: &str = include_str!("fixtures/guest_error_check.log");
    const GUEST_ERROR_QEMU: &str = include_str!("fixtures/guest_error_check.qemu.log");
    const SMP_SMOKE_TIMEOUT: &str = include_str!("fixtures/smp_smoke.timeout.log");

    fn scenario(name: &str) -> Scenario {
        *by_name(name).expect("scenario in the table")
    }

    fn assert_fails_with(v: &Verdict, needle: &str) {
        assert!(!v.passed, "expected a failure");
        assert!(
            v.reasons.iter().any(|r| r.contains(needle)),
            "no reason contains {needle:?}: {:#?}",
            v.reasons
        );
    }

    const LINUX_BOOT_PASS: &str = include_str!("fixtures/linux_boot.pass.log");
    const LINUX_NVME_PASS: &str = include_str!("fixtures/linux_nvme_intx.pass.log");

    fn linux(name: &str, serial: &str) -> Verdict {
        judge(by_name(name).unwrap(), serial, "", Some(0), false)
    }

    #[test]
    fn recorded_linux_runs_pass() {
        for (name, log) in [
            ("linux_boot", LINUX_BOOT_PASS),
            ("linux_nvme_intx", LINUX_NVME_PASS),
        ] {
            let v = linux(name, log);
            assert!(v.passed, "{name}: {:?}", v.reasons);
        }
    }

    const LINUX_VLPI_PASS: &str = include_str!("fixtures/linux_nvme_vlpi.pass.log");
    const LINUX_AFFINITY_PASS: &str = include_str!("fixtures/linux_irq_affinity.pass.log");
    const LINUX_SOFT_PASS: &str = include_str!("fixtures/linux_nvme_soft.pass.log");
    const LINUX_MIGRATE_PASS: &str = include_str!("fixtures/linux_vcpu_migrate.pass.log");
    /// Their `-D` logs: QEMU's trace of the ITS's commands.
    const LINUX_VLPI_TRACE: &str = include_str!("fixtures/linux_nvme_vlpi.pass.qemu.log");
    const LINUX_AFFINITY_TRACE: &str = include_str!("fixtures/linux_irq_affinity.pass.qemu.log");
    const LINUX_SOFT_TRACE: &str = include_str!("fixtures/linux_nvme_soft.pass.qemu.log");
    const LINUX_MIGRATE_TRACE: &str = include_str!("fixtures/linux_vcpu_migrate.pass.qemu.log");

    /// The guest-ITS scenarios' recorded runs: (name, serial, `-D` log).
    const GUEST_ITS_RUNS: [(&str, &str, &str); 4] = [
        ("linux_nvme_vlpi", LINUX_VLPI_PASS, LINUX_VLPI_TRACE),
        (
            "linux_irq_affinity",
            LINUX_AFFINITY_PASS,
            LINUX_AFFINITY_TRACE,
        ),
        ("linux_nvme_soft", LINUX_SOFT_PASS, LINUX_SOFT_TRACE),
        (
            "linux_vcpu_migrate",
            LINUX_MIGRATE_PASS,
            LINUX_MIGRATE_TRACE,
        ),
    ];

    /// Judges a guest-ITS scenario's run: the serial output and QEMU's trace.
    fn traced(name: &str, serial: &str, qemu_log: &str) -> Verdict {
        judge(by_name(name).unwrap(), serial, qemu_log, Some(0), false)
    }

    /// Judges a recorded guest-ITS run with its serial output edited by `edit`.
    fn guest_its(name: &str, edit: impl Fn(&str) -> String) -> Verdict {
        let (_, serial, trace) = GUEST_ITS_RUNS
            .iter()
            .find(|r| r.0 == name)
            .expect("a recorded run");
        let edited = edit(serial);
        assert_ne!(
            &edited, serial,
            "{name}: the fixture has what the edit changes"
        );
        traced(name, &edited, trace)
    }

    #[test]
    fn recorded_guest_its_runs_pass() {
        for (name, serial, trace) in GUEST_ITS_RUNS {
            let v = traced(name, serial, trace);
            assert!(v.passed, "{name}: {:?}", v.reasons);
            // Without the trace they asked for, they fail.
            let v = traced(name, serial, "");
            assert_fails_with(&v, "ITS trace: QEMU processed 0 commands");
        }
    }

    #[test]
    fn the_trace_must_hold_every_command_the_hypervisor_wrote() {
        // One command fewer in QEMU's trace than the hypervisor counted.
        let trace: Vec<&str> = LINUX_VLPI_TRACE.lines().skip(1).collect();
        let v = traced("linux_nvme_vlpi", LINUX_VLPI_PASS, &trace.join("\n"));
        assert_fails_with(&v, "QEMU processed 64 commands, the hypervisor counted 65");
        // No count from the hypervisor.
        let v = guest_its("linux_nvme_soft", |s| {
            s.replace("@@M its_commands=", "@@M its_cmds=")
        });
        assert_fails_with(&v, "no `@@M its_commands=N`");
        // The trace's lines are no guest errors; any other line still is.
        let v = traced(
            "linux_nvme_soft",
            LINUX_SOFT_PASS,
            &format!("{LINUX_SOFT_TRACE}gicv3_its_process_mapti: invalid interrupt ID 0x5\n"),
        );
        assert_fails_with(
            &v,
            "unexpected GIC/ITS guest error: gicv3_its_process_mapti",
        );
    }

    #[test]
    fn the_moves_must_reach_the_its_during_the_reads() {
        // The window put where the recorded VMOVPs and VMOVIs are not.
        let v = guest_its("linux_vcpu_migrate", |s| {
            s.replace("window_its_first=49 ", "window_its_first=0 ")
        });
        fails_only_with(&v, "VMOVP during the I/O window, at least 8 expected");
        let v = guest_its("linux_irq_affinity", |s| {
            s.replace("window_its_commands=6 ", "window_its_commands=1 ")
        });
        fails_only_with(
            &v,
            "QEMU processed 1 VMOVI during the I/O window, at least 2 expected",
        );
        let v = guest_its("linux_irq_affinity", |s| {
            s.replace("@@M window_its_first=", "@@M window_first=")
        });
        fails_only_with(&v, "no `@@M window_its_first/window_its_commands`");
    }

    #[test]
    fn kernel_trouble_fails_the_guest_its_runs_too() {
        for (name, _, _) in GUEST_ITS_RUNS {
            for line in [
                "[    3.000000] WARNING: CPU: 1 PID: 0 at drivers/irqchip/x.c:1 y+0x1/0x2",
                "[    3.000000] Internal error: Oops: 0000000096000004 [#1] SMP",
                "[    3.000000] Kernel panic - not syncing: Fatal exception in interrupt",
            ] {
                let v = guest_its(name, |s| {
                    s.replace("@@L poweroff", &format!("{line}\r\n@@L poweroff"))
                });
                assert!(
                    v.reasons
                        .iter()
                        .any(|r| r == &format!("guest kernel: {line}")),
                    "{name}: {line}: {:?}",
                    v.reasons
                );
            }
        }
    }

    /// `v` failed for `needle` and nothing else.
    fn fails_only_with(v: &Verdict, needle: &str) {
        assert_fails_with(v, needle);
        assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
    }

    #[test]
    fn guest_its_nvme_vectors_must_be_its_msis_and_no_intx_at_el2() {
        let v = guest_its("linux_nvme_vlpi", |s| {
            s.replace("ITS-MSI 16386 Edge", "GICv3  36 Level")
        });
        fails_only_with(&v, "NVMe interrupts are not ITS MSIs");
        let v = guest_its("linux_nvme_vlpi", |s| {
            s.replace("@@M vits_commands", "@@M el2_intx=5\n@@M vits_commands")
        });
        fails_only_with(&v, "EL2 took Some(5) PCIe INTx");
    }

    #[test]
    fn affinity_fails_when_the_interrupts_stay_behind() {
        // The second batch's interrupts came on CPU 1, where the first batch sent them.
        let v = guest_its("linux_irq_affinity", |s| {
            s.replace(
                "cpu=0 before=11,1024 after=1035,1024",
                "cpu=0 before=11,1024 after=11,2047",
            )
        });
        fails_only_with(&v, "did not follow to CPU 0");
        // A batch missing.
        let v = guest_its("linux_irq_affinity", |s| {
            s.replace("@@L affinity irq=16 cpu=1", "@@L other irq=16 cpu=1")
        });
        fails_only_with(&v, "batches on CPUs [0]");
    }

    #[test]
    fn software_injection_needs_a_host_lpi_per_guest_interrupt() {
        let v = guest_its("linux_nvme_soft", |s| {
            s.replace("window_disk_exits=2048", "window_disk_exits=1000")
        });
        fails_only_with(&v, "EL2 took 1000 host LPIs");
    }

    #[test]
    fn kernel_trouble_on_the_console_fails_a_linux_run() {
        for line in [
            "[    1.234567] Kernel panic - not syncing: Attempted to kill init!",
            "[    1.234567] Internal error: Oops: 0000000096000004 [#1] SMP",
            "[    1.234567] WARNING: CPU: 0 PID: 1 at kernel/irq/manage.c:1234 x+0x10/0x20",
            "[    1.234567] BUG: scheduling while atomic: swapper/0/0x00000002",
            "[   22.000000] rcu: INFO: rcu_sched self-detected stall on CPU",
        ] {
            let log = LINUX_BOOT_PASS.replace("@@L poweroff", &format!("{line}\r\n@@L poweroff"));
            let v = linux("linux_boot", &log);
            assert!(!v.passed, "{line}");
            assert!(
                v.reasons
                    .iter()
                    .any(|r| r.starts_with("guest kernel: ") && r.contains(line.trim())),
                "{line}: {:?}",
                v.reasons
            );
        }
        // The same words fail the on-demand run of any kernel.
        let log = LINUX_BOOT_PASS.replace("linux_boot", "linux_any").replace(
            "@@L poweroff",
            "[ 1.0] Unable to handle kernel paging request",
        );
        let v = linux("linux_any", &log);
        assert!(!v.passed && v.reasons.iter().any(|r| r.contains("Unable to handle")));
    }

    #[test]
    fn what_init_reports_is_judged_per_mode() {
        // No poweroff line from /init.
        let v = linux("linux_boot", &LINUX_BOOT_PASS.replace("@@L poweroff", ""));
        assert!(
            v.reasons.iter().any(|r| r == "/init: no poweroff line"),
            "{:?}",
            v.reasons
        );
        // A failure line.
        let failed = LINUX_BOOT_PASS.replace("@@L poweroff", "@@L FAIL it broke\r\n@@L poweroff");
        let v = linux("linux_boot", &failed);
        assert!(
            v.reasons.iter().any(|r| r == "/init: @@L FAIL it broke"),
            "{:?}",
            v.reasons
        );
        // The boot log judged as the 4-CPU hotplug scenario: wrong mode, one CPU online.
        let v = judge(
            by_name("linux_smp").unwrap(),
            &LINUX_BOOT_PASS.replace("linux_boot", "linux_smp"),
            "",
            Some(0),
            false,
        );
        assert!(
            v.reasons.iter().any(|r| r.contains("did not run mode smp")),
            "{:?}",
            v.reasons
        );
        assert!(
            v.reasons.iter().any(|r| r.contains("not 0-3")),
            "{:?}",
            v.reasons
        );
        // The on-demand scenario needs no /init at all.
        let bare = "@@T start linux_any\n[ 0.0] Booting Linux\n@@T ok linux_any\n\
                    @@T done passed=1 failed=0\n";
        assert!(linux("linux_any", bare).passed);
    }

    #[test]
    fn nvme_interrupts_must_reach_el2_at_least_as_often_as_the_guest_counts_them() {
        let short = LINUX_NVME_PASS.replace("@@M el2_intx=2065", "@@M el2_intx=2000");
        let v = linux("linux_nvme_intx", &short);
        assert!(
            v.reasons
                .iter()
                .any(|r| r == "NVMe interrupts: the guest counted 2062, EL2 took Some(2000)"),
            "{:?}",
            v.reasons
        );
        let missing = LINUX_NVME_PASS.replace("@@M el2_intx=2065", "@@M other=1");
        assert!(!linux("linux_nvme_intx", &missing).passed);
    }

    #[test]
    fn recorded_passing_logs_pass() {
        for (name, log) in [
            ("boot_smoke", BOOT_SMOKE_PASS),
            ("guest_smoke", GUEST_SMOKE_PASS),
            ("demo", DEMO_PASS),
        ] {
            let v = judge(&scenario(name), log, "", Some(0), false);
            assert!(v.passed, "{name}: {:#?}", v.reasons);
            assert_eq!(v.report.done, Some((1, 0)));
        }
    }

    #[test]
    fn demo_log_carries_narration_and_metrics() {
        let v = judge(&scenario("demo"), DEMO_PASS, "", Some(0), false);
        assert!(v.report.narration.len() >= 5, "{:?}", v.report.narration);
        // The demo prints the `@@M` lines as they come (`Line::Metrics`).
        let lines = clean_lines(DEMO_PASS);
        assert!(lines.iter().any(|l| matches!(
            parse_line(l),
            Line::Metrics(m) if m.split_whitespace().any(|kv| kv == "el2_exits=3")
        )));
    }

    #[test]
    fn a_broken_assertion_fails_with_its_location() {
        let v = judge(
            &scenario("boot_smoke"),
            BOOT_SMOKE_BROKEN,
            "",
            Some(1),
            false,
        );
        assert_fails_with(&v, "@@T fail boot_smoke: hyp/src/scenarios/infra.rs:");
        assert_fails_with(&v, "no `@@T ok boot_smoke` line");
        assert_fails_with(&v, "failed=1");
        assert_fails_with(&v, "QEMU exit status 1 (failed checks)");
    }

    #[test]
    fn a_panic_fails_and_is_quoted() {
        let v = judge(&scenario("panic_check"), PANIC, "", Some(101), false);
        assert_fails_with(&v, "@@T panic hyp/src/scenarios/selfcheck.rs:");
        assert_fails_with(&v, "deliberate panic");
        assert_fails_with(&v, "QEMU exit status 101 (panic)");
    }

    #[test]
    fn an_exception_fails_and_is_quoted() {
        let v = judge(
            &scenario("exception_check"),
            EXCEPTION,
            "",
            Some(102),
            false,
        );
        assert_fails_with(&v, "@@T exception el2-sync-current-spx ESR=0x");
        assert_fails_with(&v, "FAR=0x8000000000000");
        assert_fails_with(&v, "QEMU exit status 102 (unexpected exception)");
    }

    #[test]
    fn an_unexpected_gic_guest_error_fails_an_otherwise_passing_run() {
        let v = judge(
            &scenario("guest_error_check"),
            GUEST_ERROR_SERIAL,
            GUEST_ERROR_QEMU,
            Some(0),
            false,
        );
        assert_fails_with(&v, "unexpected GIC/ITS guest error:");
        assert_eq!(
            v.reasons.len(),
            GUEST_ERROR_QEMU
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
        );
    }

    #[test]
    fn a_declared_expected_guest_error_that_appears_passes() {
        let mut s = scenario("guest_error_check");
        // QEMU 7.2's wording; newer releases say "invalid guest read/write at offset".
        s.expected_guest_errors = &["gicv3_redist_read: invalid guest read at offset"];
        let v = judge(&s, GUEST_ERROR_SERIAL, GUEST_ERROR_QEMU, Some(0), false);
        assert!(v.passed, "{:#?}", v.reasons);
    }

    #[test]
    fn a_declared_expected_guest_error_that_is_absent_fails() {
        let mut s = scenario("boot_smoke");
        s.expected_guest_errors = &["ITS MAPD: invalid device ID"];
        let v = judge(&s, BOOT_SMOKE_PASS, "", Some(0), false);
        assert_fails_with(
            &v,
            "expected guest error not seen: \"ITS MAPD: invalid device ID\"",
        );
    }

    #[test]
    fn any_unexpected_guest_error_fails_even_if_not_gic() {
        let log = "pl011_write: Bad offset 0x1000\n";
        let v = judge(
            &scenario("boot_smoke"),
            BOOT_SMOKE_PASS,
            log,
            Some(0),
            false,
        );
        assert_fails_with(&v, "unexpected guest error: pl011_write: Bad offset 0x1000");
        assert!(!v.reasons[0].contains("GIC/ITS"));
    }

    #[test]
    fn a_timeout_fails() {
        let v = judge(&scenario("smp_smoke"), SMP_SMOKE_TIMEOUT, "", None, true);
        assert_fails_with(&v, "timed out");
        assert_fails_with(&v, "no `@@T done` line");
        // Killed at the deadline: no extra "killed by a signal" reason.
        assert!(!v.reasons.iter().any(|r| r.contains("signal")));
    }

    #[test]
    fn a_passing_log_with_a_timeout_still_fails() {
        let v = judge(&scenario("boot_smoke"), BOOT_SMOKE_PASS, "", None, true);
        assert_eq!(v.reasons, ["timed out: QEMU was killed at the deadline"]);
    }

    #[test]
    fn non_zero_exit_without_fail_lines_fails() {
        let v = judge(&scenario("boot_smoke"), BOOT_SMOKE_PASS, "", Some(3), false);
        assert_eq!(
            v.reasons,
            ["QEMU exit status 3 (wrong exception level at entry)"]
        );
        let v = judge(&scenario("boot_smoke"), BOOT_SMOKE_PASS, "", None, false);
        assert_eq!(v.reasons, ["QEMU was killed by a signal"]);
    }

    #[test]
    fn ok_for_another_scenario_does_not_count() {
        let v = judge(&scenario("smp_smoke"), BOOT_SMOKE_PASS, "", Some(0), false);
        assert_fails_with(&v, "no `@@T ok smp_smoke` line");
    }

    #[test]
    fn done_with_zero_passed_fails() {
        let log = "@@T start boot_smoke\n@@T ok boot_smoke\n@@T done passed=0 failed=0\n";
        let v = judge(&scenario("boot_smoke"), log, "", Some(0), false);
        assert_fails_with(&v, "passed=0");
    }

    #[test]
    fn ansi_escapes_and_carriage_returns_are_ignored() {
        let log =
            "\x1b[32m@@T ok boot_smoke\x1b[0m\r\n\x1b]0;title\x07@@T done passed=1 failed=0\r\n";
        let v = judge(
            &scenario("boot_smoke"),
            log,
            "\x1b[1m\x1b[0m\n",
            Some(0),
            false,
        );
        assert!(v.passed, "{:#?}", v.reasons);
        assert_eq!(strip_ansi("a\x1b[1;31mb\x1b[0mc\x1bMd"), "abcd");
    }

    #[test]
    fn markers_are_found_mid_line() {
        assert_eq!(
            parse_line("guest: hi@@T ok boot_smoke"),
            Line::Ok("boot_smoke")
        );
        assert_eq!(parse_line("@@T done passed=2 failed=1"), Line::Done(2, 1));
        assert_eq!(
            parse_line("@@T done passed=x"),
            Line::Other("@@T done passed=x")
        );
        assert_eq!(
            parse_line("@@N hello there"),
            Line::Narration("hello there")
        );
        assert_eq!(parse_line("@@M a=1 b=2"), Line::Metrics("a=1 b=2"));
    }

    #[test]
    fn gic_its_lines_are_recognised() {
        for line in [
            "process_its_cmd: invalid command attributes: invalid dte for 153",
            "gicv3_its_translation_write: ...",
            "ITS MAPD: invalid device ID field 0x20000 >= 0x10000",
            "Changing GICR_VPENDBASER when VALID=1 is UNPREDICTABLE",
            "process_vmapti: Doorbell 8000 not 1023 and not a valid LPI",
            "gicr_readl: invalid guest read at offset 0xc0",
        ] {
            assert!(is_gic_its_line(line), "{line}");
        }
        for line in ["pl011_read: Bad offset 0x1000", "some bits were set"] {
            assert!(!is_gic_its_line(line), "{line}");
        }
    }
}
