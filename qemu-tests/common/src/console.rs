// SPDX-License-Identifier: MIT OR Apache-2.0
//! PL011 console and the `print!` / `println!` macros.
//!
//! Usable from any CPU once the MMU is on. The lock remembers its owner: if a CPU re-enters
//! while it holds the lock (an exception or a panic in the middle of a print), it writes without
//! waiting rather than deadlocking, so the `@@T exception` / `@@T panic` line always gets out.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::platform::{UART_BASE, cpu_index};

const UARTDR: usize = 0x00;
const UARTFR: usize = 0x18;
const UARTCR: usize = 0x30;
/// UARTFR.TXFF: transmit FIFO full.
const FR_TXFF: u32 = 1 << 5;
/// UARTCR: UARTEN | TXE | RXE. Without it, QEMU logs a guest error for every character.
const CR_ENABLE: u32 = 0x301;

/// 0 when free, otherwise 1 + index of the owning CPU.
static OWNER: AtomicUsize = AtomicUsize::new(0);

/// Enables the UART. Called by the entry code on the boot CPU; calling it again is harmless.
pub fn init() {
    // SAFETY: UART_BASE is the PL011 of QEMU `virt`, mapped as Device memory (or the MMU is
    // off); UARTCR is a 32-bit register at +0x30.
    unsafe { core::ptr::write_volatile((UART_BASE + UARTCR) as *mut u32, CR_ENABLE) };
}

fn put_byte(byte: u8) {
    // Bounded wait: QEMU's FIFO never fills, and real hardware drains a byte in well under the
    // 100k polls allowed here; past that, drop the wait rather than hang the test.
    for _ in 0..100_000 {
        // SAFETY: PL011 UARTFR, a read-only 32-bit register of the mapped UART.
        let fr = unsafe { core::ptr::read_volatile((UART_BASE + UARTFR) as *const u32) };
        if fr & FR_TXFF == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: PL011 UARTDR; writing a byte transmits it.
    unsafe { core::ptr::write_volatile((UART_BASE + UARTDR) as *mut u32, u32::from(byte)) };
}

/// Writes bytes without taking the lock and without `core::fmt`: for the paths that run before
/// the MMU is on or at the wrong exception level.
pub fn write_raw(s: &[u8]) {
    for &b in s {
        put_byte(b);
    }
}

struct Uart;

impl Write for Uart {
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
            core::hint::spin_loop();
        }
    }
    let _ = Uart.write_fmt(args);
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
