// SPDX-License-Identifier: MIT OR Apache-2.0
//! The scenario table: one QEMU boot runs one entry.
//!
//! # Adding a scenario
//!
//! 1. Write `pub fn my_scenario(ctx: &mut Ctx)` in a module of this directory (one file per
//!    group; add `mod group;` below if the file is new). Use `common::check!` / `require!` for
//!    assertions, `common::narrate!` for demo narration, `common::report::metrics` for numbers.
//! 2. Add one line to [`SCENARIOS`].
//! 3. Add one line to the runner's table in `xtask/src/qemu/scenarios.rs` (CPU count, `edu`
//!    device, deadline, and any QEMU guest-error lines the scenario provokes on purpose).
//!
//! The driver [`run`] prints `@@T start`, then `@@T ok` if no check failed (boot steps that
//! failed count as failed checks), then `@@T done passed=N failed=M`, and exits with status 0
//! only if everything passed.

mod bench;
mod demo;
mod fwd;
mod infra;
mod its;
mod lpi;
mod selfcheck;
mod stress;
mod support;
mod vlpi;

use common::report;

use crate::gic_glue::GicError;

/// What a scenario gets.
pub struct Ctx {
    /// The CPU running the scenario (the boot CPU, 0).
    pub cpu: usize,
    /// The scenario's name.
    pub name: &'static str,
}

/// A scenario body.
pub type Scenario = fn(&mut Ctx);

/// A boot step (what it set up) and how it went.
pub type BootStep = (&'static str, Result<(), GicError>);

/// Every scenario the hyp knows, by name.
pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("boot_smoke", infra::boot_smoke),
    ("smp_smoke", infra::smp_smoke),
    ("guest_smoke", infra::guest_smoke),
    ("demo", demo::demo),
    // Physical LPIs through the ITS, on the driver crates.
    ("its_probe", its::its_probe),
    ("lpi_int", lpi::lpi_int),
    ("lpi_translater", lpi::lpi_translater),
    ("lpi_edu_msi", lpi::lpi_edu_msi),
    ("lpi_movi_smp", lpi::lpi_movi_smp),
    ("lpi_discard", lpi::lpi_discard),
    ("lpi_disable_inv", lpi::lpi_disable_inv),
    ("cmdq_wrap", its::cmdq_wrap),
    ("cmdq_batch_many", its::cmdq_batch_many),
    ("its_bad_command", its::its_bad_command),
    // Forwarded physical interrupts through list registers, on fwd-irq.
    ("fwd_vtimer", fwd::fwd_vtimer),
    ("fwd_vtimer_wfi", fwd::fwd_vtimer_wfi),
    ("fwd_level_lowered", fwd::fwd_level_lowered),
    ("fwd_level_reassert", fwd::fwd_level_reassert),
    ("fwd_lr_overflow", fwd::fwd_lr_overflow),
    ("fwd_vtimer_migrate", fwd::fwd_vtimer_migrate),
    // GICv4 direct injection, on vpe-sched and doorbell.
    ("vlpi_direct", vlpi::vlpi_direct),
    (
        "vlpi_pending_then_resident",
        vlpi::vlpi_pending_then_resident,
    ),
    ("vlpi_doorbell_wake", vlpi::vlpi_doorbell_wake),
    ("vlpi_vmovp_smp", vlpi::vlpi_vmovp_smp),
    ("vlpi_unmap", vlpi::vlpi_unmap),
    ("vlpi_prop_inv", vlpi::vlpi_prop_inv),
    ("vlpi_edu_passthrough", vlpi::vlpi_edu_passthrough),
    ("vlpi_two_vms", vlpi::vlpi_two_vms),
    ("vlpi_many", vlpi::vlpi_many),
    ("vpe_many", vlpi::vpe_many),
    // Four CPUs at once: physical LPIs, and vPEs rescheduled while vLPIs arrive.
    ("stress_smp_map", stress::stress_smp_map),
    ("stress_vpe_switch", stress::stress_vpe_switch),
    // Benchmarks, run by `cargo xtask bench` with -icount shift=0 (not in the default suite).
    ("bench_vlpi_latency", bench::bench_vlpi_latency),
    ("bench_vpe_counts", bench::bench_vpe_counts),
    // Runner self-checks: these must FAIL (see xtask/src/qemu/scenarios.rs).
    ("panic_check", selfcheck::panic_check),
    ("exception_check", selfcheck::exception_check),
    ("guest_error_check", selfcheck::guest_error_check),
];

/// Runs the scenario called `name` and exits QEMU with the verdict. A failed `boot` step is a
/// failure of the scenario.
pub fn run(name: &str, cpu: usize, boot: &[BootStep]) -> ! {
    let Some(&(name, scenario)) = SCENARIOS.iter().find(|(n, _)| *n == name) else {
        common::println!("@@T fail {name}: unknown scenario");
        common::println!("@@T done passed=0 failed=1");
        common::semihosting::exit(1);
    };
    report::start(name);
    for (what, r) in boot {
        if let Err(e) = r {
            common::check!(false, "boot on cpu{cpu}: {what}: {e:?}");
        }
    }
    let mut ctx = Ctx { cpu, name };
    scenario(&mut ctx);
    check_stacks();
    report::finish(name);
    report::done()
}

/// Fails the run if a CPU used more than [`crate::stack::LIMIT`] of its stack, and reports the
/// deepest use.
fn check_stacks() {
    let mut deepest = 0;
    for cpu in 0..common::platform::MAX_CPUS {
        if let Some(used) = crate::stack::peak(cpu) {
            deepest = deepest.max(used);
            common::check!(
                used <= crate::stack::LIMIT,
                "cpu{cpu} used {used} of {} stack bytes",
                common::platform::STACK_SIZE
            );
        }
    }
    report::metrics(&[("stack_peak", deepest as u64)]);
}
