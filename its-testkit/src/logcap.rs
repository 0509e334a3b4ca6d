// SPDX-License-Identifier: MIT OR Apache-2.0
//! A test logger: captures the `log` records emitted on the calling thread while a closure
//! runs, so a test can assert which events a call logs (each test thread sees only its own).
//!
//! ```
//! let (n, records) = its_testkit::logcap::capture(|| {
//!     log::info!("hello");
//!     3
//! });
//! assert_eq!(n, 3);
//! assert!(records.iter().any(|r| r.level == log::Level::Info && r.message == "hello"));
//! ```

use std::cell::RefCell;
use std::sync::Once;

use log::{Level, Log, Metadata, Record as LogRecord};

/// One captured record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its level.
    pub level: Level,
    /// Its target (the module path of the call, by default).
    pub target: String,
    /// The formatted message.
    pub message: String,
}

thread_local! {
    static CAPTURED: RefCell<Option<Vec<Record>>> = const { RefCell::new(None) };
}

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        CAPTURED.with(|c| c.borrow().is_some())
    }

    fn log(&self, record: &LogRecord<'_>) {
        CAPTURED.with(|c| {
            if let Some(v) = c.borrow_mut().as_mut() {
                v.push(Record {
                    level: record.level(),
                    target: record.target().to_owned(),
                    message: record.args().to_string(),
                });
            }
        });
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture;
static INSTALL: Once = Once::new();

/// Runs `f` and returns its result with every record logged on this thread meanwhile, at
/// every level. Installs the capturing logger on first use (a test binary that installed
/// another logger gets nothing captured).
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<Record>) {
    INSTALL.call_once(|| {
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = f();
    let records = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, records)
}

/// Whether `records` hold one at `level` whose message contains `text`.
pub fn has(records: &[Record], level: Level, text: &str) -> bool {
    records
        .iter()
        .any(|r| r.level == level && r.message.contains(text))
}

/// Asserts [`has`], listing the records when it fails.
#[track_caller]
pub fn assert_has(records: &[Record], level: Level, text: &str) {
    assert!(
        has(records, level, text),
        "no {level} record containing {text:?} in:\n{}",
        records
            .iter()
            .map(|r| format!("  {} {}: {}", r.level, r.target, r.message))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
