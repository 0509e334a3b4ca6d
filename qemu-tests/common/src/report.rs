// SPDX-License-Identifier: MIT OR Apache-2.0
//! The test-report line protocol parsed by `cargo xtask qemu-test`.
//!
//! Every line the runner parses starts with `@@`:
//!
//! ```text
//! @@T start <scenario>
//! @@T ok <scenario>
//! @@T fail <scenario>: <message>
//! @@T done passed=<N> failed=<M>
//! @@T panic <location>: <message>             (panic handler)
//! @@T exception <kind> ESR=.. ELR=.. FAR=.. SPSR=..   (unexpected exception)
//! @@N <narration>                             (demo narration)
//! @@M <key>=<value> ...                       (metrics)
//! ```
//!
//! A scenario calls [`start`], records failures with [`check!`](crate::check) /
//! [`require!`](crate::require) / [`fail`], and ends with [`finish`] (prints `ok` if nothing
//! failed since `start`). [`done`] prints the totals and exits through semihosting with status 0
//! only if nothing failed.

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::println;

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);
/// Failures recorded since the last `start` (all CPUs).
static CURRENT_FAILURES: AtomicU32 = AtomicU32::new(0);
/// The current scenario name as (pointer, length); 0 length = none.
static CURRENT_PTR: AtomicUsize = AtomicUsize::new(0);
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);

/// The scenario being run, or `"?"`.
pub fn current() -> &'static str {
    let len = CURRENT_LEN.load(Ordering::Acquire);
    let ptr = CURRENT_PTR.load(Ordering::Acquire);
    if len == 0 || ptr == 0 {
        return "?";
    }
    // SAFETY: `start` stores the pointer and length of a `&'static str` (pointer first, length
    // last with Release; read here length first with Acquire), so they describe valid UTF-8 that
    // lives forever.
    unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(ptr as *const u8, len)) }
}

/// Prints `@@T start <name>` and makes `name` the current scenario.
pub fn start(name: &'static str) {
    CURRENT_LEN.store(0, Ordering::Release);
    CURRENT_PTR.store(name.as_ptr() as usize, Ordering::Release);
    CURRENT_LEN.store(name.len(), Ordering::Release);
    CURRENT_FAILURES.store(0, Ordering::Release);
    println!("@@T start {name}");
}

/// Prints `@@T ok <name>` and counts a pass, unconditionally. Prefer [`finish`].
pub fn ok(name: &str) {
    PASSED.fetch_add(1, Ordering::AcqRel);
    println!("@@T ok {name}");
}

/// Prints `@@T fail <name>: <message>` and counts a failure of the current scenario.
pub fn fail(name: &str, message: fmt::Arguments<'_>) {
    CURRENT_FAILURES.fetch_add(1, Ordering::AcqRel);
    println!("@@T fail {name}: {message}");
}

/// Ends the current scenario: `@@T ok` if nothing failed since [`start`], else counts it as
/// failed (its `@@T fail` lines are already out). Returns whether it passed.
pub fn finish(name: &str) -> bool {
    if CURRENT_FAILURES.swap(0, Ordering::AcqRel) == 0 {
        ok(name);
        true
    } else {
        FAILED.fetch_add(1, Ordering::AcqRel);
        false
    }
}

/// Failures recorded since the last [`start`].
pub fn current_failures() -> u32 {
    CURRENT_FAILURES.load(Ordering::Acquire)
}

/// Prints `@@N <text>`: a narration line for `cargo xtask demo`.
pub fn narrate(text: &str) {
    println!("@@N {text}");
}

/// Prints `@@M key=value ...`.
pub fn metrics(pairs: &[(&str, u64)]) {
    metrics_prefixed("", pairs);
}

/// Prints `@@M <prefix>key=value ...`: [`metrics`] with `prefix` in front of every key.
pub fn metrics_prefixed(prefix: &str, pairs: &[(&str, u64)]) {
    struct Pairs<'a>(&'a str, &'a [(&'a str, u64)]);
    impl fmt::Display for Pairs<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for (k, v) in self.1 {
                write!(f, " {}{k}={v}", self.0)?;
            }
            Ok(())
        }
    }
    println!("@@M{}", Pairs(prefix, pairs));
}

/// Prints `@@T done passed=N failed=M` and exits: status 0 if nothing failed (and something
/// passed), else 1.
pub fn done() -> ! {
    let passed = PASSED.load(Ordering::Acquire);
    let failed = FAILED.load(Ordering::Acquire) + CURRENT_FAILURES.load(Ordering::Acquire).min(1);
    println!("@@T done passed={passed} failed={failed}");
    crate::semihosting::exit(if failed == 0 && passed > 0 { 0 } else { 1 })
}

/// Checks a condition; on failure prints `@@T fail <scenario>: <file>:<line>: <message>` and
/// counts it. Evaluates to the condition, so callers can bail out: `if !check!(..) { return }`.
#[macro_export]
macro_rules! check {
    ($cond:expr $(,)?) => {
        $crate::check!($cond, "{}", stringify!($cond))
    };
    ($cond:expr, $($fmt:tt)+) => {{
        let ok: bool = $cond;
        if !ok {
            $crate::report::fail(
                $crate::report::current(),
                format_args!("{}:{}: {}", file!(), line!(), format_args!($($fmt)+)),
            );
        }
        ok
    }};
}

/// Like [`check!`], but returns from the enclosing function (which returns `()`) on failure.
#[macro_export]
macro_rules! require {
    ($($args:tt)+) => {
        if !$crate::check!($($args)+) {
            return;
        }
    };
}

/// Prints `@@N <formatted text>`.
#[macro_export]
macro_rules! narrate {
    ($($arg:tt)*) => { $crate::println!("@@N {}", format_args!($($arg)*)) };
}
