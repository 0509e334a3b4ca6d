// SPDX-License-Identifier: MIT OR Apache-2.0
//! Log events for the driver crates: through the `log` crate when the *calling* crate's
//! `log` feature is on, nothing otherwise.
//!
//! One definition serves every crate of the project. A `#[cfg(feature = "log")]` in a
//! macro's expansion is evaluated in the crate the macro expands in, so each crate keeps its
//! own `log` feature (and its own optional `log` dependency) and these macros follow it.
//! Without the feature the arguments are still type-checked (in a branch that never runs,
//! so a message cannot rot), and nothing is emitted or linked.
//!
//! A crate imports the module as its own `logging` (`use its_core::log_events as logging;`)
//! and calls `crate::logging::info!(..)`. Not part of the public API: the names may change
//! in any release.

/// Emits one event at `$level` (a `log` macro name), if the expanding crate's `log` feature
/// is on.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_event {
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
#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)+) => { $crate::__log_event!(error, $($arg)+) };
}

/// Something went wrong and was handled (a stall skipped, a command refused).
/// (Not `warn`: that name is a built-in attribute.)
#[doc(hidden)]
#[macro_export]
macro_rules! __log_warning {
    ($($arg:tt)+) => { $crate::__log_event!(warn, $($arg)+) };
}

/// Bring-up, shut-down, objects created and destroyed.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)+) => { $crate::__log_event!(info, $($arg)+) };
}

/// State changes worth following while debugging.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)+) => { $crate::__log_event!(debug, $($arg)+) };
}

/// Every batch, every interrupt: the fast paths.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace {
    ($($arg:tt)+) => { $crate::__log_event!(trace, $($arg)+) };
}

pub use crate::{
    __log_debug as debug, __log_error as error, __log_info as info, __log_trace as trace,
    __log_warning as warning,
};
