// SPDX-License-Identifier: MIT OR Apache-2.0
//! PL011 console, on the `arm-pl011-uart` crate, and the `print!` / `println!` macros.
//!
//! Usable from any CPU once the MMU is on. The lock remembers its owner: if a CPU re-enters
//! while it holds the lock (an exception or a panic in the middle of a print), it writes without
//! waiting rather than deadlocking, so the `@@T exception` / `@@T panic` line always gets out.
//!
//! # Before the MMU is on
//! [`init`] and [`write_raw`] also run with the MMU off (the wrong-exception-level path of the
//! entry code), where every data access is Device memory: alignment is strict and exclusives
//! are not guaranteed. The crate is fine there: each register access is one aligned 32-bit
//! load or store through `safe-mmio`, and it keeps no atomics or locks. The owner lock below is
//! this module's, and only [`print_fmt`] takes it.
//!
//! The crate's `fmt::Write` waits for room in the FIFO without bound; this module writes byte by
//! byte with a bounded wait instead.

use core::fmt::{self, Write};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use arm_pl011_uart::{DataBits, LineConfig, PL011Registers, Parity, StopBits, Uart};
use safe_mmio::UniqueMmioPointer;

use crate::platform::{UART_BASE, cpu_index};

/// 0 when free, otherwise 1 + index of the owning CPU.
static OWNER: AtomicUsize = AtomicUsize::new(0);

/// The UART's reference clock on QEMU `virt` (the DTB's `apb-pclk`, 24 MHz). QEMU ignores the
/// baud rate; it is set for the form of it.
const UART_CLOCK: u32 = 24_000_000;

/// The UART driver, for the caller's writes.
///
/// The driver keeps nothing but its pointer, so one is made for each use: the owner lock
/// serialises the printing CPUs; a CPU that re-enters (panic or exception mid-print) abandons
/// the interrupted use, which never resumes its write once the run ends.
fn uart() -> Uart<'static> {
    // SAFETY: UART_BASE is QEMU `virt`'s PL011, mapped as Device memory (or the MMU is off); no
    // Rust object lives there, and the pointer serves one caller at a time (see above).
    Uart::new(unsafe {
        UniqueMmioPointer::new(NonNull::new_unchecked(UART_BASE as *mut PL011Registers))
    })
}

/// Enables the UART (8N1, transmit and receive). Called by the entry code on the boot CPU;
/// calling it again is harmless. Without it, QEMU logs a guest error for every character.
pub fn init() {
    let config = LineConfig {
        data_bits: DataBits::Bits8,
        parity: Parity::None,
        stop_bits: StopBits::One,
    };
    // Cannot fail for these constants (the divisor is in range).
    let _ = uart().enable(config, 115_200, UART_CLOCK);
}

fn put_byte(uart: &mut Uart<'_>, byte: u8) {
    // Bounded wait: QEMU's FIFO never fills, and real hardware drains a byte in well under the
    // 100k polls allowed here; past that, drop the wait rather than hang the test.
    for _ in 0..100_000 {
        if !uart.is_tx_fifo_full() {
            break;
        }
        core::hint::spin_loop();
    }
    uart.write_word(byte);
}

/// Writes bytes without taking the lock and without `core::fmt`: for the paths that run before
/// the MMU is on or at the wrong exception level.
pub fn write_raw(s: &[u8]) {
    let mut uart = uart();
    for &b in s {
        put_byte(&mut uart, b);
    }
}

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_raw(s.as_bytes());
        Ok(())
    }
}

/// Prints formatted text under the console lock. Used by the macros.
pub fn print_fmt(args: fmt::Arguments<'_>) {
    let me = cpu_index() + 1;
    let reentered = OWNER.load(Ordering::Relaxed) == me;
    if !reentered {
        while OWNER
            .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            crate::sync::relax();
        }
    }
    let _ = Console.write_fmt(args);
    if !reentered {
        OWNER.store(0, Ordering::Release);
    }
}

/// Prints to the PL011 console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the PL011 console (one lock hold per line, so lines from different CPUs
/// do not interleave).
#[macro_export]
macro_rules! println {
    () => { $crate::console::print_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
