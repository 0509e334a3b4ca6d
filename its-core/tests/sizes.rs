// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every public error type is small enough to return by value: at most 64 bytes, most far
//! less (the ITS driver wraps some of them in its own error, which the doorbells and the
//! GICv4 layer wrap in turn).

use core::mem::size_of;

use its_core::addr::AddrError;
use its_core::cmd::{CommandError, DecodeError, FieldError, ParseError};
use its_core::ids::IdError;
use its_core::platform::{AllocError, OutOfBounds, SlotError, Timeout};

#[test]
fn errors_are_small() {
    let sizes = [
        ("AddrError", size_of::<AddrError>(), 24),
        ("CommandError", size_of::<CommandError>(), 32),
        ("DecodeError", size_of::<DecodeError>(), 40),
        ("FieldError", size_of::<FieldError>(), 40),
        ("ParseError", size_of::<ParseError<'static>>(), 64),
        ("IdError", size_of::<IdError>(), 24),
        ("AllocError", size_of::<AllocError>(), 16),
        ("OutOfBounds", size_of::<OutOfBounds>(), 24),
        ("SlotError", size_of::<SlotError>(), 24),
        ("Timeout", size_of::<Timeout>(), 8),
        #[cfg(feature = "fdt")]
        (
            "DiscoverError",
            size_of::<its_core::discover::DiscoverError>(),
            64,
        ),
    ];
    for (name, size, max) in sizes {
        println!("{name}: {size} bytes");
        assert!(size <= max, "{name} is {size} bytes, more than {max}");
    }
}
