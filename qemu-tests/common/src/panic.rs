// SPDX-License-Identifier: MIT OR Apache-2.0
//! Panic handler: prints `@@T panic <location>: <message>` and exits with status 101.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::semihosting;

/// QEMU exit status after a panic (the same as a failed Rust test binary).
pub const PANIC_EXIT_STATUS: u32 = 101;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        // A panic while printing a panic: just stop with the status.
        semihosting::exit(PANIC_EXIT_STATUS);
    }
    match info.location() {
        Some(loc) => crate::println!(
            "@@T panic {}:{}:{}: {}",
            loc.file(),
            loc.line(),
            loc.column(),
            info.message()
        ),
        None => crate::println!("@@T panic <unknown>: {}", info.message()),
    }
    semihosting::exit(PANIC_EXIT_STATUS)
}
