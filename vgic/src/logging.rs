// SPDX-License-Identifier: MIT OR Apache-2.0
//! Log events: through the `log` crate with the `log` feature, nothing without it.
//!
//! Each macro takes `log`'s format arguments. Without the feature the arguments are still
//! type-checked (in a branch that never runs, so a message cannot rot), and nothing is
//! emitted or linked.

// Each crate uses the levels it needs.
#![allow(unused_macros)]

/// Emits one event at `$level` (a `log` macro name).
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "log")]
        {
            ::log::$level!($($arg)+);
        }
        #[cfg(not(feature = "log"))]
        {
            if false {
                let _ = ::core::format_args!($($arg)+);
            }
        }
    }};
}

/// A failure the caller gets as an error and that leaves hardware in doubt.
macro_rules! error {
    ($($arg:tt)+) => { $crate::logging::event!(error, $($arg)+) };
}

/// Something went wrong and was handled (a stall skipped, a command refused).
/// (Not `warn`: that name is a built-in attribute.)
macro_rules! warning {
    ($($arg:tt)+) => { $crate::logging::event!(warn, $($arg)+) };
}

/// Bring-up, shut-down, objects created and destroyed.
macro_rules! info {
    ($($arg:tt)+) => { $crate::logging::event!(info, $($arg)+) };
}

/// State changes worth following while debugging.
macro_rules! debug {
    ($($arg:tt)+) => { $crate::logging::event!(debug, $($arg)+) };
}

/// Every batch, every interrupt: the fast paths.
macro_rules! trace {
    ($($arg:tt)+) => { $crate::logging::event!(trace, $($arg)+) };
}

#[allow(unused_imports, reason = "each crate uses the levels it needs")]
pub(crate) use {debug, error, event, info, trace, warning};
