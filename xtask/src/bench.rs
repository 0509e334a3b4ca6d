// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask bench` (stub).

use std::process::ExitCode;

/// `cargo xtask run`.
pub fn run(_args: &[String]) -> ExitCode {
    eprintln!("not implemented yet");
    ExitCode::from(2)
}
