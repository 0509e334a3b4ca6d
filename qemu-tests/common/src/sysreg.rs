// SPDX-License-Identifier: MIT OR Apache-2.0
//! `mrs` / `msr` helpers and barriers.
//!
//! Reads are safe: no system register read can break Rust's memory model (some, such as
//! ICC_IAR1_EL1, change GIC state, which is why none of these use `nomem`: the compiler must
//! not move them across memory accesses). Writes are `unsafe`: SCTLR, TTBR, VBAR and friends can
//! break everything, so each caller states why its write is sound.
//!
//! # Why hand-written
//! `aarch64-cpu` covers the architectural registers, but not most of the GIC CPU-interface ones
//! the images use (ICC_IAR1_EL1, ICC_EOIR1_EL1, ICC_PMR_EL1, ICC_IGRPEN1_EL1, ICC_SGI1R_EL1,
//! ICC_HPPIR1_EL1), nor the PMU's; two small macros over `mrs`/`msr` serve every register alike.

/// Reads a system register by name: `read_sysreg!(mpidr_el1)`.
#[macro_export]
macro_rules! read_sysreg {
    ($name:ident) => {{
        let value: u64;
        // SAFETY: `mrs` only reads a system register into a general register; it cannot
        // break memory safety. Not `nomem`: some reads (ICC_IAR1_EL1) have side effects.
        unsafe {
            core::arch::asm!(
                concat!("mrs {}, ", stringify!($name)),
                out(reg) value,
                options(nostack, preserves_flags),
            )
        };
        value
    }};
}

/// Writes a system register by name: `unsafe { write_sysreg!(vbar_el2, v) }`.
///
/// The expansion is an `asm!` statement, so the caller needs an `unsafe` block and a `SAFETY`
/// comment saying why this write is sound.
#[macro_export]
macro_rules! write_sysreg {
    ($name:ident, $value:expr) => {
        core::arch::asm!(
            concat!("msr ", stringify!($name), ", {}"),
            in(reg) ($value) as u64,
            options(nostack, preserves_flags),
        )
    };
}

/// Instruction synchronization barrier.
#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier has no operands and cannot break memory safety.
    unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
}

/// The current exception level (CurrentEL.EL).
pub fn current_el() -> u64 {
    (crate::read_sysreg!(CurrentEL) >> 2) & 3
}

/// Masks IRQs (PSTATE.I = 1).
#[inline(always)]
pub fn mask_irqs() {
    // SAFETY: masking interrupts cannot break memory safety. Not `nomem`: it orders with the
    // memory accesses around it.
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack, preserves_flags)) };
}

/// Unmasks IRQs (PSTATE.I = 0). Pending interrupts are taken at the next instruction boundary
/// after the write.
#[inline(always)]
pub fn unmask_irqs() {
    // SAFETY: unmasking only lets the installed handlers run; they save and restore the full
    // context. Not `nomem`: handlers may change memory the caller reads afterwards.
    unsafe { core::arch::asm!("msr daifclr, #2", "isb", options(nostack, preserves_flags)) };
}
