// SPDX-License-Identifier: MIT OR Apache-2.0
//! The runner's scenario table: how to boot each hyp scenario.
//!
//! Every entry names a scenario of `qemu-tests/hyp/src/scenarios/mod.rs` (the hyp owns what a
//! scenario does; this table owns how QEMU is started for it and what its log may contain).
//! Adding a scenario is one line here plus one line there.

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

    /// Runs only when `--filter` names it exactly (a self-check or a benchmark).
    pub const fn by_exact_name_only(&self) -> bool {
        self.hidden || self.bench
    }
}

/// Deadline of the runner self-checks (they stop at once).
const SELF_CHECK_DEADLINE: Duration = Duration::from_secs(20);

/// Every scenario, in the order the suite lists them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario::new("boot_smoke").smp(1),
    Scenario::new("smp_smoke").smp(2),
    Scenario::new("guest_smoke").smp(1),
    Scenario::new("demo").smp(2).edu(),
    // Physical LPIs through the ITS (qemu-tests/hyp/src/scenarios/{its,lpi}.rs).
    Scenario::new("its_probe").smp(2),
    Scenario::new("lpi_int").smp(1),
    Scenario::new("lpi_translater").smp(2),
    Scenario::new("lpi_edu_msi").smp(1).edu(),
    Scenario::new("lpi_movi_smp").smp(2),
    Scenario::new("lpi_discard").smp(1),
    Scenario::new("lpi_disable_inv").smp(1),
    Scenario::new("cmdq_wrap").smp(1),
    Scenario::new("cmdq_batch_many").smp(1),
    // A raw MAPTI with pINTID 5 pushed past the driver: QEMU 7.2 skips it (no stall) and logs
    // exactly this line.
    Scenario::new("its_bad_command")
        .smp(1)
        .expects_guest_errors(&["process_mapti: invalid interrupt ID 0x5"]),
    // Forwarded physical interrupts through list registers (qemu-tests/hyp/src/scenarios/fwd.rs).
    Scenario::new("fwd_vtimer").smp(1),
    Scenario::new("fwd_vtimer_wfi").smp(1),
    Scenario::new("fwd_level_lowered").smp(1),
    Scenario::new("fwd_level_reassert").smp(1),
    Scenario::new("fwd_lr_overflow").smp(1),
    Scenario::new("fwd_vtimer_migrate").smp(2),
    // GICv4 direct injection: vLPIs, doorbells, vPEs (qemu-tests/hyp/src/scenarios/vlpi.rs).
    Scenario::new("vlpi_direct").smp(2),
    Scenario::new("vlpi_pending_then_resident").smp(1),
    Scenario::new("vlpi_doorbell_wake").smp(2).edu(),
    Scenario::new("vlpi_vmovp_smp").smp(2),
    Scenario::new("vlpi_unmap").smp(1),
    Scenario::new("vlpi_prop_inv").smp(1),
    Scenario::new("vlpi_edu_passthrough").smp(1).edu(),
    Scenario::new("vlpi_two_vms").smp(1),
    Scenario::new("vlpi_many").smp(1),
    Scenario::new("vpe_many").smp(2),
    // Four CPUs at once (qemu-tests/hyp/src/scenarios/stress.rs): 10 000 map / unmap / MOVI /
    // INT operations on physical LPIs, and 64 vPEs rescheduled while vLPIs arrive. 5 to 25 s
    // each on a loaded 2-core host; the deadline leaves room.
    Scenario::new("stress_smp_map")
        .smp(4)
        .deadline(Duration::from_secs(120)),
    Scenario::new("stress_vpe_switch")
        .smp(4)
        .deadline(Duration::from_secs(120)),
    // Benchmarks for `cargo xtask bench` (qemu-tests/hyp/src/scenarios/bench.rs).
    Scenario::new("bench_vlpi_latency").smp(1).bench(),
    Scenario::new("bench_vpe_counts").smp(1).bench(),
    // Runner self-checks: each must be reported FAILED.
    Scenario::new("panic_check")
        .smp(1)
        .deadline(SELF_CHECK_DEADLINE)
        .hidden(),
    Scenario::new("exception_check")
        .smp(1)
        .deadline(SELF_CHECK_DEADLINE)
        .hidden(),
    Scenario::new("guest_error_check")
        .smp(1)
        .deadline(SELF_CHECK_DEADLINE)
        .hidden(),
];

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
            ]
        );
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
