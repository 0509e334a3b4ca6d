// SPDX-License-Identifier: MIT OR Apache-2.0
//! The scenario table: one QEMU boot runs one entry.
//!
//! # Adding a scenario
//!
//! 1. Write `pub fn my_scenario(ctx: &mut Ctx)` in a module of this directory (one file per
//!    group; add `mod group;` below if the file is new). Use `common::check!` / `require!` for
//!    assertions, `common::narrate!` for demo narration, `common::report::metrics` for numbers.
//! 2. Add one line to the shared list, `list.rs`: its name, its body, and how the runner boots
//!    it (CPU count, `edu` device, deadline, and any QEMU guest-error lines the scenario
//!    provokes on purpose). The hyp and the runner both read that file, so a scenario cannot
//!    exist for one and not the other; a runner test also fails on a scenario function of this
//!    directory that the list does not name.
//!
//! The driver [`run`] prints `@@T start`, then the run's EL2 exits by cause and its deepest
//! stack use (`@@M`), then `@@T ok` if no check failed (boot steps that failed count as failed
//! checks), then `@@T done passed=N failed=M`, and exits with status 0 only if everything
//! passed.

mod bench;
mod demo;
mod fwd;
mod infra;
mod its;
mod linux;
mod lpi;
mod selfcheck;
mod stress;
mod support;
mod vlpi;

use common::report;

use crate::gic_hw::GicError;

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

/// Builds [`SCENARIOS`] from the shared list (`list.rs`): each entry's name and body; the
/// runner options are the runner's (`xtask/src/qemu/scenarios.rs` reads the same file).
macro_rules! scenario_list {
    ($($name:ident : $body:path, $($opt:ident ( $($arg:expr),* )).+ ;)*) => {
        /// Every scenario the hyp knows, by name, in the order of the shared list.
        pub const SCENARIOS: &[(&str, Scenario)] = &[$((stringify!($name), $body)),*];
    };
}
include!("list.rs");

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
    // Every scenario's EL2 exits by cause (`@@M el2_exits=...`).
    crate::exits::snapshot().report();
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
