// SPDX-License-Identifier: MIT OR Apache-2.0
//! Cache maintenance by virtual address and barriers.
//!
//! QEMU models no caches, so these cannot be checked there; they exist so the drivers can be
//! given a real `CacheMaint` implementation. None of the `asm!` blocks are `nomem`: they order
//! memory accesses, which is their whole point.
//!
//! # Why hand-written
//! A handful of `dc`/`dsb` instructions over a range; the driver crates' `CacheMaint` trait is
//! implemented over them.

/// Smallest data cache line size in bytes (CTR_EL0.DminLine, log2 of words).
pub fn dcache_line_size() -> usize {
    4 << ((crate::read_sysreg!(ctr_el0) >> 16) & 0xf)
}

fn for_each_line(start: usize, len: usize, mut op: impl FnMut(usize)) {
    if len == 0 {
        return;
    }
    let line = dcache_line_size();
    let mut addr = start & !(line - 1);
    let end = start + len;
    while addr < end {
        op(addr);
        addr += line;
    }
}

/// `dc cvac` (clean to the point of coherency) over `[start, start + len)`, then `dsb sy`.
pub fn clean_to_poc(start: usize, len: usize) {
    for_each_line(start, len, |a| {
        // SAFETY: cleaning a line writes back data; it never changes what the program reads.
        // An unmapped address would fault, which the exception handler reports.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) a, options(nostack, preserves_flags)) };
    });
    dsb_sy();
}

/// `dc civac` (clean and invalidate to the point of coherency) over the range, then `dsb sy`.
pub fn clean_inval_to_poc(start: usize, len: usize) {
    for_each_line(start, len, |a| {
        // SAFETY: clean+invalidate writes back dirty data before dropping the line, so the
        // program's view of memory is unchanged.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
    });
    dsb_sy();
}

/// `dc ivac` (invalidate to the point of coherency) over the range, then `dsb sy`.
///
/// # Safety
///
/// Discards dirty lines: the caller must know the cached copy of the range is stale or clean
/// (e.g. memory written with the MMU off, before any cacheable access).
pub unsafe fn inval_to_poc(start: usize, len: usize) {
    for_each_line(start, len, |a| {
        // SAFETY: the caller promised no dirty data in the range needs keeping.
        unsafe { core::arch::asm!("dc ivac, {}", in(reg) a, options(nostack, preserves_flags)) };
    });
    dsb_sy();
}

/// `dsb ishst`: earlier stores complete (inner shareable) before later memory accesses.
#[inline(always)]
pub fn dsb_ishst() {
    // SAFETY: a barrier cannot break memory safety.
    unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
}

/// `dsb sy`.
#[inline(always)]
pub fn dsb_sy() {
    // SAFETY: a barrier cannot break memory safety.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}
