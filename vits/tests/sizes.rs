// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every public error type is small enough to return by value (at most 64 bytes), the
//! command error included with the workspace backend's error inside.

use core::mem::size_of;

use vits::{AccessError, CommandError, ConfigError, GuestMemoryError, RecorderError, SoftError};

#[test]
fn errors_are_small() {
    for (name, size) in [
        ("AccessError", size_of::<AccessError>()),
        (
            "CommandError<VpeError>",
            size_of::<CommandError<vpe_sched::VpeError>>(),
        ),
        (
            "CommandError<RecorderError>",
            size_of::<CommandError<RecorderError>>(),
        ),
        (
            "CommandError<SoftError>",
            size_of::<CommandError<SoftError>>(),
        ),
        ("ConfigError", size_of::<ConfigError>()),
        ("SoftError", size_of::<SoftError>()),
        ("RecorderError", size_of::<RecorderError>()),
        ("GuestMemoryError", size_of::<GuestMemoryError>()),
    ] {
        println!("{name}: {size} bytes");
        assert!(size <= 64, "{name} is {size} bytes");
    }
}
