// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo xtask cli` (stub).

use std::process::ExitCode;

/// `cargo xtask decode`.
pub fn decode(_args: &[String]) -> ExitCode {
    eprintln!("not implemented yet");
    ExitCode::from(2)
}

/// `cargo xtask encode`.
pub fn encode(_args: &[String]) -> ExitCode {
    eprintln!("not implemented yet");
    ExitCode::from(2)
}
