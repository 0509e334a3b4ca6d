// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every public error type is small enough to return by value (at most 64 bytes).

use core::mem::size_of;

#[test]
fn errors_are_small() {
    for (name, size) in [
        ("Error", size_of::<guest_fdt::Error>()),
        ("WriteError", size_of::<guest_fdt::WriteError>()),
    ] {
        println!("{name}: {size} bytes");
        assert!(size <= 64, "{name} is {size} bytes");
    }
}
