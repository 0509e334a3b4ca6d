// SPDX-License-Identifier: MIT OR Apache-2.0
//! Physical memory allocator for DMA-style allocations (ITS tables, command queues, ...).
//!
//! First fit over an address-ordered list of free ranges kept outside the managed memory, with
//! coalescing on free. Sizes are rounded up to [`GRANULE`] (a cache line, so no two allocations
//! share a line) and alignments to at least [`GRANULE`]; any power-of-two alignment works
//! (64 KiB, 2 MiB, ...). Memory is identity mapped, so the returned address is both the
//! physical and the virtual address. Every allocation is zeroed. [`PhysAllocator::outstanding`]
//! reports bytes allocated and not freed, so a test can check that nothing leaks.

use core::ptr::NonNull;

use crate::sync::SpinLock;

/// Allocation granule in bytes.
pub const GRANULE: usize = 64;
/// Most free ranges tracked at once (fragmentation limit).
const MAX_RANGES: usize = 256;

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum AllocError {
    /// No free range can hold the request.
    OutOfMemory,
    /// The free list is full: the request would split a range and there is no slot left.
    TooFragmented,
    /// The alignment is not a power of two, or the size overflows.
    BadLayout,
}

#[derive(Clone, Copy)]
struct Range {
    start: usize,
    end: usize,
}

struct Inner {
    free: [Range; MAX_RANGES],
    len: usize,
    outstanding: usize,
    peak: usize,
    total: usize,
}

/// A physical memory allocator; the images use the global [`PALLOC`].
pub struct PhysAllocator {
    inner: SpinLock<Inner>,
}

/// The image's allocator. The hyp gives it RAM outside its image and the guest's region.
pub static PALLOC: PhysAllocator = PhysAllocator::new();

const fn round_up(x: usize, align: usize) -> Option<usize> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

impl Inner {
    fn insert(&mut self, at: usize, r: Range) -> Result<(), AllocError> {
        if self.len == MAX_RANGES {
            return Err(AllocError::TooFragmented);
        }
        self.free.copy_within(at..self.len, at + 1);
        self.free[at] = r;
        self.len += 1;
        Ok(())
    }

    fn remove(&mut self, at: usize) {
        self.free.copy_within(at + 1..self.len, at);
        self.len -= 1;
    }

    /// Returns `r` to the free list, merging with neighbours. Fails only if `r` touches no free
    /// range and the list is full: that memory is then lost.
    fn release(&mut self, r: Range) -> Result<(), AllocError> {
        let at = self.free[..self.len].partition_point(|f| f.start < r.start);
        if at > 0 {
            assert!(
                self.free[at - 1].end <= r.start,
                "palloc: double free or overlap"
            );
        }
        if at < self.len {
            assert!(
                r.end <= self.free[at].start,
                "palloc: double free or overlap"
            );
        }
        let merge_prev = at > 0 && self.free[at - 1].end == r.start;
        let merge_next = at < self.len && self.free[at].start == r.end;
        match (merge_prev, merge_next) {
            (true, true) => {
                self.free[at - 1].end = self.free[at].end;
                self.remove(at);
            }
            (true, false) => self.free[at - 1].end = r.end,
            (false, true) => self.free[at].start = r.start,
            (false, false) => return self.insert(at, r),
        }
        Ok(())
    }
}

impl PhysAllocator {
    /// An allocator with no memory.
    pub const fn new() -> Self {
        Self {
            inner: SpinLock::new(Inner {
                free: [Range { start: 0, end: 0 }; MAX_RANGES],
                len: 0,
                outstanding: 0,
                peak: 0,
                total: 0,
            }),
        }
    }

    /// Gives `[start, end)` to the allocator (trimmed to [`GRANULE`] alignment).
    ///
    /// # Safety
    ///
    /// The range must be RAM mapped as Normal memory, unused by anything else from now on, and
    /// not overlap a range given before.
    pub unsafe fn add_region(&self, start: usize, end: usize) {
        let Some(start) = round_up(start, GRANULE) else {
            return;
        };
        let end = end & !(GRANULE - 1);
        if start >= end {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.release(Range { start, end }).is_ok() {
            inner.total += end - start;
        }
    }

    /// Allocates `size` bytes aligned to `align` (a power of two), zeroed.
    pub fn alloc_zeroed(&self, size: usize, align: usize) -> Result<NonNull<u8>, AllocError> {
        if !align.is_power_of_two() {
            return Err(AllocError::BadLayout);
        }
        let align = align.max(GRANULE);
        let size = round_up(size.max(1), GRANULE).ok_or(AllocError::BadLayout)?;
        let addr = {
            let mut inner = self.inner.lock();
            let mut found = Err(AllocError::OutOfMemory);
            for i in 0..inner.len {
                let r = inner.free[i];
                let Some(a) = round_up(r.start, align) else {
                    continue;
                };
                let Some(a_end) = a.checked_add(size) else {
                    continue;
                };
                if a_end > r.end {
                    continue;
                }
                let (head, tail) = (a > r.start, a_end < r.end);
                match (head, tail) {
                    (false, false) => inner.remove(i),
                    (true, false) => inner.free[i].end = a,
                    (false, true) => inner.free[i].start = a_end,
                    (true, true) => {
                        if inner
                            .insert(
                                i + 1,
                                Range {
                                    start: a_end,
                                    end: r.end,
                                },
                            )
                            .is_err()
                        {
                            found = Err(AllocError::TooFragmented);
                            continue;
                        }
                        inner.free[i].end = a;
                    }
                }
                inner.outstanding += size;
                inner.peak = inner.peak.max(inner.outstanding);
                found = Ok(a);
                break;
            }
            found?
        };
        // SAFETY: `[addr, addr + size)` was just carved out of a free range, which the caller
        // of `add_region` promised is mapped RAM used by nothing else.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, size) };
        // `addr` is at least GRANULE-aligned, hence non-zero.
        NonNull::new(addr as *mut u8).ok_or(AllocError::OutOfMemory)
    }

    /// Frees an allocation.
    ///
    /// # Safety
    ///
    /// `ptr` and `size` are those of a live allocation from this allocator, and nothing (CPU
    /// or device) uses the memory any more.
    ///
    /// # Panics
    ///
    /// If the range overlaps free memory (a double free).
    pub unsafe fn free(&self, ptr: NonNull<u8>, size: usize) {
        let size = round_up(size.max(1), GRANULE).unwrap_or(usize::MAX & !(GRANULE - 1));
        let start = ptr.as_ptr() as usize;
        let mut inner = self.inner.lock();
        // If the free list is full the range is lost and stays counted as outstanding, so a
        // leak check notices.
        let range = Range {
            start,
            end: start + size,
        };
        if inner.release(range).is_ok() {
            inner.outstanding = inner.outstanding.saturating_sub(size);
        }
    }

    /// Bytes allocated and not yet freed.
    pub fn outstanding(&self) -> usize {
        self.inner.lock().outstanding
    }

    /// Highest [`outstanding`](Self::outstanding) seen.
    pub fn peak(&self) -> usize {
        self.inner.lock().peak
    }

    /// Bytes managed in total, and bytes currently free.
    pub fn capacity(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        let free = inner.free[..inner.len]
            .iter()
            .map(|r| r.end - r.start)
            .sum();
        (inner.total, free)
    }
}

impl Default for PhysAllocator {
    fn default() -> Self {
        Self::new()
    }
}
