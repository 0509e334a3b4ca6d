// SPDX-License-Identifier: MIT OR Apache-2.0
//! Guest programs: what the guest does, chosen by the hyp (x0 at entry).
//!
//! # Adding a guest program
//!
//! 1. Add a number to `common::hvc_abi::program` (the hyp passes it to `Vcpu::new`).
//! 2. Write `pub fn my_program()` in a file of this directory, using `common::check!` for its
//!    assertions (they print `@@T fail guest.<name>: ...` lines, which fail the run).
//! 3. Add one line to [`PROGRAMS`].
//!
//! [`run`] prints `@@T start guest.<name>`, runs it, prints `@@T ok guest.<name>` if no check
//! failed, and reports the number of failures to the hyp with the DONE hypercall.

mod bench;
mod fwd;
mod smoke;
mod vlpi;

use common::hvc_abi::program;
use common::report;

use crate::hvc;

/// Every guest program: (number, name, body).
pub const PROGRAMS: &[(u64, &str, fn())] = &[
    (program::SMOKE, "guest.smoke", smoke::smoke),
    (program::FWD_VTIMER, "guest.fwd_vtimer", fwd::vtimer),
    (
        program::FWD_VTIMER_WFI,
        "guest.fwd_vtimer_wfi",
        fwd::vtimer_wfi,
    ),
    (
        program::FWD_LEVEL_LOWERED,
        "guest.fwd_level_lowered",
        fwd::level_lowered,
    ),
    (
        program::FWD_LEVEL_REASSERT,
        "guest.fwd_level_reassert",
        fwd::level_reassert,
    ),
    (
        program::FWD_LR_OVERFLOW,
        "guest.fwd_lr_overflow",
        fwd::lr_overflow,
    ),
    (
        program::FWD_VTIMER_MIGRATE,
        "guest.fwd_vtimer_migrate",
        fwd::vtimer_migrate,
    ),
    (program::VLPI, "guest.vlpi", vlpi::vlpi),
    (program::BENCH, "guest.bench", bench::bench),
];

/// Runs program `number`, then reports to the hyp. Never returns.
pub fn run(number: u64) -> ! {
    let Some(&(_, name, body)) = PROGRAMS.iter().find(|(n, _, _)| *n == number) else {
        common::println!("@@T fail guest: unknown guest program {number}");
        hvc::done(1);
    };
    report::start(name);
    body();
    let failures = report::current_failures();
    report::finish(name);
    hvc::done(u64::from(failures))
}
