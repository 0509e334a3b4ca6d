// SPDX-License-Identifier: MIT OR Apache-2.0
//! Stack high-water marks, so a stack that grows too deep fails a run instead of silently
//! overwriting BSS (the stacks sit right above it, and the page tables live there).
//!
//! Each CPU paints the unused part of its stack with a pattern when it starts
//! ([`paint_current`]); [`peak`] counts how much of the pattern was overwritten since. The
//! scenario runner reports the peak and fails a run that used more than [`LIMIT`].

use core::sync::atomic::{AtomicUsize, Ordering};

use common::platform::{MAX_CPUS, STACK_SIZE};

/// Bit n: CPU n painted its stack.
static PAINTED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" {
    /// The per-CPU stacks: `MAX_CPUS` regions of `STACK_SIZE` bytes, CPU n's at offset n * size
    /// (`common::entry`).
    static common_stacks: u8;
}

const PAINT: u64 = 0x4b43_4154_535f_4e55; // "UN_STACK"
/// Bytes below the current stack pointer left unpainted (this function's own frame).
const MARGIN: usize = 1024;
/// A run using more of a stack than this fails.
pub const LIMIT: usize = STACK_SIZE / 8 * 7;

fn bottom(cpu: usize) -> usize {
    &raw const common_stacks as usize + cpu * STACK_SIZE
}

/// Paints the unused part of the calling CPU's stack. Call early, with IRQs masked.
pub fn paint_current() {
    let cpu = common::platform::cpu_index();
    if cpu >= MAX_CPUS {
        return;
    }
    let sp: usize;
    // SAFETY: reads the stack pointer into a register; no memory is accessed.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack)) };
    let lo = bottom(cpu);
    // SAFETY: [lo, sp - MARGIN) is this CPU's own stack below everything live on it (the stack
    // grows down, and IRQs are masked, so nothing else uses it meanwhile).
    unsafe { crate::rawmem::paint(lo, sp.saturating_sub(MARGIN), PAINT) };
    PAINTED.fetch_or(1 << cpu, Ordering::AcqRel);
}

/// Bytes of CPU `cpu`'s stack used at most since it was painted (`None` if never painted).
pub fn peak(cpu: usize) -> Option<usize> {
    if cpu >= MAX_CPUS || PAINTED.load(Ordering::Acquire) & (1 << cpu) == 0 {
        return None;
    }
    // SAFETY: CPU `cpu`'s stack region, mapped RAM (it may be in use: `painted_words` says what
    // that costs).
    let untouched = unsafe { crate::rawmem::painted_words(bottom(cpu), STACK_SIZE, PAINT) } * 8;
    Some(STACK_SIZE - untouched)
}
