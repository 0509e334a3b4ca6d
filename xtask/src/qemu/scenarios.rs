// SPDX-License-Identifier: MIT OR Apache-2.0
//! The runner's scenario table: how to boot each hyp scenario.
//!
//! The table is built from the list the hyp builds its own dispatch table from,
//! `qemu-tests/hyp/src/scenarios/list.rs`: the hyp takes each entry's name and body, this
//! module its name and runner options (how QEMU is started for it and what its log may
//! contain). Adding a scenario is one line there. The tests below also read the hyp's scenario
//! sources and fail on a scenario function the list does not name, or on a hyp that stops
//! building its table from the list.

use std::time::Duration;

/// How to run one scenario.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Scenario {
    /// The hyp's scenario name (passed on the semihosting command line).
    pub name: &'static str,
    /// `-smp`: number of CPUs.
    pub smp: u32,
    /// Add `-device edu` (a PCI device that can raise MSIs, DeviceID 0x8).
    pub edu: bool,
    /// QEMU is killed if the scenario has not finished by then.
    pub deadline: Duration,
    /// Substrings of QEMU `-d guest_errors` lines this scenario provokes on purpose. Each one
    /// must appear (case-insensitive), and the lines they match are not failures.
    pub expected_guest_errors: &'static [&'static str],
    /// A runner self-check that must FAIL (panic, exception, unexpected guest error): not in the
    /// default suite; it runs only when `--filter` names it exactly.
    pub hidden: bool,
    /// Boot with `-icount shift=0`: one instruction per nanosecond of virtual time, and the
    /// PMU's INST_RETIRED event implemented, so instruction counts are exact and repeatable.
    pub icount: bool,
    /// A benchmark (`cargo xtask bench` runs it and reads its `@@M` lines): not in the default
    /// suite; it runs only when `--filter` names it exactly. Unlike a self-check it must pass.
    pub bench: bool,
    /// Not in the default suite; runs only when named exactly (by `--filter` or a command such
    /// as `cargo xtask linux`), and must pass.
    pub on_demand: bool,
    /// Boots the Linux guest this describes on the hypervisor (`hyp::linux`): the runner
    /// provisions the kernel, initramfs and disk, loads them with the boot parameter block,
    /// and judges the guest's console as well.
    pub linux: Option<LinuxGuest>,
    /// Trace the physical ITS's commands (`-d trace:gicv3_its_process_command`, into the
    /// `-D` log): every command any software issued, counted by QEMU itself
    /// ([`crate::qemu::trace`]). The trace lines are not guest errors; the judge checks their
    /// count against the hypervisor's own (`@@M its_commands=N`) and against
    /// [`Scenario::its_window_at_least`]; the benchmarks report them.
    pub its_trace: bool,
    /// Commands QEMU's ITS must have processed at least during the guest's I/O window
    /// (lower-case mnemonic, count), from the trace; implies [`Scenario::its_trace`].
    pub its_window_at_least: &'static [(&'static str, u64)],
}

/// A Linux guest: what its `/init` does (`vgt.mode`) and what the machine has.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct LinuxGuest {
    /// `/init`'s workload (`vgt.mode=`): one of `crate::linux::initramfs::MODES`.
    pub mode: &'static str,
    /// An NVMe device backed by the test disk image (and `vgt.reads=` on the command line).
    pub nvme: bool,
    /// The guest has its own ITS (the hypervisor's `vits`): its NVMe interrupts are MSIs
    /// (`ITS-MSI` in `/proc/interrupts`), not PCIe INTx.
    pub msi: bool,
    /// The NVMe device has one MSI-X vector (`msix_qsize=1`): Linux then shares it between
    /// its admin and I/O queues and does not manage its affinity, so `/proc/irq/N/smp_affinity`
    /// can move it.
    pub single_vector: bool,
    /// More kernel command line.
    pub append: &'static str,
}

impl LinuxGuest {
    /// `/init` in mode `mode`, no NVMe, nothing appended.
    pub const fn mode(mode: &'static str) -> Self {
        Self {
            mode,
            nvme: false,
            msi: false,
            single_vector: false,
            append: "",
        }
    }

    /// With the NVMe disk.
    pub const fn nvme(mut self) -> Self {
        self.nvme = true;
        self
    }

    /// With the guest's own ITS (see [`LinuxGuest::msi`]).
    pub const fn msi(mut self) -> Self {
        self.msi = true;
        self
    }

    /// With one MSI-X vector on the NVMe device (see [`LinuxGuest::single_vector`]).
    pub const fn single_vector(mut self) -> Self {
        self.single_vector = true;
        self
    }

    /// With `args` added to the kernel command line.
    pub const fn append(mut self, args: &'static str) -> Self {
        self.append = args;
        self
    }

    /// The kernel command line: the console on the PL011, the mode, the reads for NVMe, and
    /// what [`LinuxGuest::append`] added.
    pub fn bootargs(&self) -> String {
        let mut s = format!("console=ttyAMA0 vgt.mode={}", self.mode);
        if self.nvme {
            s.push_str(&format!(
                " vgt.reads={}",
                crate::linux::initramfs::DEFAULT_READS
            ));
        }
        if !self.append.is_empty() {
            s.push(' ');
            s.push_str(self.append);
        }
        s
    }
}

/// Default total deadline of a scenario.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

impl Scenario {
    /// A scenario with the defaults: 2 CPUs, no edu, 60 s, no expected guest errors.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            smp: 2,
            edu: false,
            deadline: DEFAULT_DEADLINE,
            expected_guest_errors: &[],
            hidden: false,
            icount: false,
            bench: false,
            on_demand: false,
            linux: None,
            its_trace: false,
            its_window_at_least: &[],
        }
    }

    /// With `n` CPUs.
    pub const fn smp(mut self, n: u32) -> Self {
        self.smp = n;
        self
    }

    /// With the `edu` PCI device.
    pub const fn edu(mut self) -> Self {
        self.edu = true;
        self
    }

    /// With another deadline.
    pub const fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Declares QEMU guest-error lines the scenario provokes on purpose.
    pub const fn expects_guest_errors(mut self, substrings: &'static [&'static str]) -> Self {
        self.expected_guest_errors = substrings;
        self
    }

    /// Marks a runner self-check (see [`Scenario::hidden`]).
    pub const fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    /// Marks a benchmark (see [`Scenario::bench`]); benchmarks run under `-icount shift=0`.
    pub const fn bench(mut self) -> Self {
        self.bench = true;
        self.icount = true;
        self
    }

    /// Boots the Linux guest `guest` (see [`Scenario::linux`]).
    pub const fn linux(mut self, guest: LinuxGuest) -> Self {
        self.linux = Some(guest);
        self
    }

    /// With the physical ITS's commands traced (see [`Scenario::its_trace`]).
    pub const fn its_trace(mut self) -> Self {
        self.its_trace = true;
        self
    }

    /// With the physical ITS's commands traced, and at least these processed during the
    /// guest's I/O window (see [`Scenario::its_window_at_least`]).
    pub const fn expects_its_commands_in_window(
        mut self,
        at_least: &'static [(&'static str, u64)],
    ) -> Self {
        self.its_trace = true;
        self.its_window_at_least = at_least;
        self
    }

    /// Marks a scenario run only by exact name (see [`Scenario::on_demand`]).
    pub const fn on_demand(mut self) -> Self {
        self.on_demand = true;
        self
    }

    /// Runs only when `--filter` names it exactly (a self-check, a benchmark, or on demand).
    pub const fn by_exact_name_only(&self) -> bool {
        self.hidden || self.bench || self.on_demand
    }
}

/// Deadline of the runner self-checks (they stop at once).
const SELF_CHECK_DEADLINE: Duration = Duration::from_secs(20);

/// Builds [`SCENARIOS`] from the shared list: each entry's name and runner options (the body,
/// `group::function`, is the hyp's and is not used here).
macro_rules! scenario_list {
    ($($name:ident : $body:path, $($opt:ident ( $($arg:expr),* )).+ ;)*) => {
        /// Every scenario, in the order the shared list gives them.
        pub const SCENARIOS: &[Scenario] = &[$(Scenario::new(stringify!($name)) $(.$opt($($arg),*))+),*];
    };
}
include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../qemu-tests/hyp/src/scenarios/list.rs"
));

/// The scenarios to run: without a filter, every one but the self-checks and benchmarks; with
/// one, those whose name contains it, plus a self-check or benchmark if the filter is exactly
/// its name.
pub fn select(filter: Option<&str>) -> Vec<&'static Scenario> {
    SCENARIOS
        .iter()
        .filter(|s| match filter {
            None => !s.by_exact_name_only(),
            Some(f) if s.by_exact_name_only() => s.name == f,
            Some(f) => s.name.contains(f),
        })
        .collect()
}

/// Looks a scenario up by exact name.
pub fn by_name(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_suite_is_infrastructure_then_physical_lpis() {
        let names: Vec<_> = select(None).iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "boot_smoke",
                "smp_smoke",
                "guest_smoke",
                "demo",
                "its_probe",
                "lpi_int",
                "lpi_translater",
                "lpi_edu_msi",
                "lpi_movi_smp",
                "lpi_discard",
                "lpi_disable_inv",
                "cmdq_wrap",
                "cmdq_batch_many",
                "its_bad_command",
                "fwd_vtimer",
                "fwd_vtimer_wfi",
                "fwd_level_lowered",
                "fwd_level_reassert",
                "fwd_lr_overflow",
                "fwd_vtimer_migrate",
                "vlpi_direct",
                "vlpi_pending_then_resident",
                "vlpi_doorbell_wake",
                "vlpi_vmovp_smp",
                "vlpi_unmap",
                "vlpi_prop_inv",
                "vlpi_edu_passthrough",
                "vlpi_two_vms",
                "vlpi_many",
                "vpe_many",
                "stress_smp_map",
                "stress_vpe_switch",
                "linux_boot",
                "linux_smp",
                "linux_nvme_intx",
                "linux_isolation",
                "linux_nvme_vlpi",
                "linux_nvme_doorbell",
                "linux_vcpu_migrate",
                "linux_irq_affinity",
                "linux_nvme_soft",
            ]
        );
    }

    #[test]
    fn the_guest_its_scenarios_have_msis_and_the_affinity_one_a_single_vector() {
        for name in [
            "linux_nvme_vlpi",
            "linux_nvme_doorbell",
            "linux_vcpu_migrate",
            "linux_irq_affinity",
            "linux_nvme_soft",
        ] {
            let g = by_name(name).and_then(|s| s.linux).unwrap();
            assert!(g.nvme && g.msi, "{name}");
            assert_eq!(g.single_vector, name == "linux_irq_affinity", "{name}");
            assert!(by_name(name).is_some_and(|s| s.smp == 2), "{name}");
            // QEMU's trace of the ITS's commands is checked against the hyp's count.
            assert!(by_name(name).is_some_and(|s| s.its_trace), "{name}");
        }
        assert!(by_name("linux_nvme_intx").is_some_and(|s| !s.linux.unwrap().msi));
        let window = |name| by_name(name).map(|s| s.its_window_at_least);
        assert_eq!(window("linux_vcpu_migrate"), Some(&[("vmovp", 8)][..]));
        assert_eq!(window("linux_irq_affinity"), Some(&[("vmovi", 2)][..]));
        assert_eq!(window("linux_nvme_vlpi"), Some(&[][..]));
    }

    #[test]
    fn the_linux_benchmarks_run_the_same_reads_on_one_cpu_in_three_modes() {
        for name in [
            "bench_linux_vlpi",
            "bench_linux_doorbell",
            "bench_linux_soft",
        ] {
            let s = by_name(name).unwrap();
            let g = s.linux.unwrap();
            assert_eq!((g.mode, g.nvme, g.msi), ("nvme", true, true), "{name}");
            // One CPU: QEMU's instruction event counts the whole machine.
            assert!(s.smp == 1 && s.bench && s.icount && s.its_trace, "{name}");
        }
    }

    #[test]
    fn smp_and_edu_where_the_scenarios_need_them() {
        for name in ["lpi_translater", "lpi_movi_smp", "its_probe"] {
            assert!(by_name(name).is_some_and(|s| s.smp >= 2), "{name}");
        }
        assert!(by_name("lpi_edu_msi").is_some_and(|s| s.edu));
        for name in [
            "vlpi_direct",
            "vlpi_doorbell_wake",
            "vlpi_vmovp_smp",
            "vpe_many",
        ] {
            assert!(by_name(name).is_some_and(|s| s.smp >= 2), "{name}");
        }
        for name in ["stress_smp_map", "stress_vpe_switch"] {
            assert!(by_name(name).is_some_and(|s| s.smp == 4), "{name}");
        }
        for name in ["vlpi_doorbell_wake", "vlpi_edu_passthrough"] {
            assert!(by_name(name).is_some_and(|s| s.edu), "{name}");
        }
        assert!(by_name("its_bad_command").is_some_and(|s| !s.expected_guest_errors.is_empty()));
    }

    #[test]
    fn hidden_self_checks_need_their_exact_name() {
        assert!(select(Some("check")).is_empty());
        let names: Vec<_> = select(Some("panic_check")).iter().map(|s| s.name).collect();
        assert_eq!(names, ["panic_check"]);
        let names: Vec<_> = select(Some("smoke")).iter().map(|s| s.name).collect();
        assert_eq!(names, ["boot_smoke", "smp_smoke", "guest_smoke"]);
    }

    #[test]
    fn the_linux_scenarios_boot_the_guest_their_names_say() {
        let linux: Vec<_> = SCENARIOS.iter().filter(|s| s.linux.is_some()).collect();
        assert_eq!(linux.len(), 13);
        for s in &linux {
            let g = s.linux.unwrap();
            assert!(
                crate::linux::initramfs::MODES.contains(&g.mode),
                "{}: mode {}",
                s.name,
                g.mode
            );
            assert!(g.bootargs().starts_with("console=ttyAMA0 vgt.mode="));
        }
        assert_eq!(by_name("linux_smp").map(|s| s.smp), Some(4));
        assert_eq!(by_name("linux_boot").map(|s| s.smp), Some(1));
        let nvme = by_name("linux_nvme_intx").and_then(|s| s.linux).unwrap();
        assert!(nvme.nvme && nvme.bootargs().contains("vgt.reads=2048"));
        let iso = by_name("linux_isolation").and_then(|s| s.linux).unwrap();
        assert!(iso.bootargs().ends_with(" vgt.target=0x40200000"));
        // `cargo xtask linux`'s scenario runs only when named.
        let names: Vec<_> = select(Some("linux")).iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "linux_boot",
                "linux_smp",
                "linux_nvme_intx",
                "linux_isolation",
                "linux_nvme_vlpi",
                "linux_nvme_doorbell",
                "linux_vcpu_migrate",
                "linux_irq_affinity",
                "linux_nvme_soft",
            ]
        );
        let any: Vec<_> = select(Some("linux_any")).iter().map(|s| s.name).collect();
        assert_eq!(any, ["linux_any"]);
        assert!(by_name("linux_any").is_some_and(|s| s.on_demand && s.linux.is_some()));
    }

    #[test]
    fn benchmarks_run_under_icount_and_only_by_name() {
        let benches: Vec<_> = SCENARIOS.iter().filter(|s| s.bench).collect();
        assert!(!benches.is_empty());
        for b in benches {
            assert!(b.icount, "{}", b.name);
            assert!(!select(None).iter().any(|s| s.name == b.name), "{}", b.name);
            let names: Vec<_> = select(Some(b.name)).iter().map(|s| s.name).collect();
            assert_eq!(names, [b.name]);
        }
        assert!(select(Some("bench")).is_empty());
        assert!(SCENARIOS.iter().filter(|s| s.icount).all(|s| s.bench));
    }

    /// The hyp's scenario sources, as (file name, text).
    fn hyp_scenario_sources() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../qemu-tests/hyp/src/scenarios");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("hyp scenario directory") {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("readable source");
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                out.push((name, text));
            }
        }
        assert!(
            out.len() > 5,
            "found only {} files in {}",
            out.len(),
            dir.display()
        );
        out
    }

    /// The `pub fn name(ctx: &mut Ctx)` scenario bodies declared in `text`.
    fn scenario_fns(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("pub fn ") else {
                continue;
            };
            let Some((name, params)) = rest.split_once('(') else {
                continue;
            };
            let params = params.split(')').next().unwrap_or("");
            if params.trim().ends_with("&mut Ctx") && params.matches(':').count() == 1 {
                out.push(name.trim().to_string());
            }
        }
        out
    }

    #[test]
    fn scenario_fns_are_found_in_source() {
        let text = "pub fn a(ctx: &mut Ctx) {\n    pub fn b(_ctx: &mut Ctx) {\n\
                    pub fn helper(gic: &Gic, ctx: &mut Ctx) {}\npub fn c(x: u32) {}";
        assert_eq!(scenario_fns(text), ["a", "b"]);
    }

    #[test]
    fn every_hyp_scenario_is_in_the_runner_table() {
        let mut found = 0;
        for (file, text) in hyp_scenario_sources() {
            for name in scenario_fns(&text) {
                found += 1;
                assert!(
                    by_name(&name).is_some(),
                    "hyp scenario `{name}` ({file}) is missing from the shared list \
                     qemu-tests/hyp/src/scenarios/list.rs, so the runner would never run it"
                );
            }
        }
        assert_eq!(found, SCENARIOS.len(), "scenario functions found vs listed");
    }

    #[test]
    fn the_hyp_builds_its_table_from_the_shared_list() {
        let sources = hyp_scenario_sources();
        let (_, module) = sources
            .iter()
            .find(|(f, _)| f == "mod.rs")
            .expect("scenarios/mod.rs");
        assert!(
            module.contains("include!(\"list.rs\")")
                && module.contains("macro_rules! scenario_list"),
            "hyp/src/scenarios/mod.rs must build SCENARIOS from list.rs"
        );
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in SCENARIOS.iter().enumerate() {
            assert!(
                SCENARIOS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
        }
    }
}
