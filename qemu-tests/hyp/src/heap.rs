// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hyp's heap: Rust's global allocator over the physical allocator.
//!
//! Only `hyp::linux` allocates, once per boot: `guest-fdt` writes the guest's device tree with
//! rust-vmm's `vm-fdt`, which grows `Vec`s. Everything else in the hyp keeps its state inline.
//! Each allocation is a zeroed range from [`PALLOC`] (rounded up to its 64-byte granule, any
//! power-of-two alignment) and goes back to it when freed; an allocation that does not fit
//! returns null, which Rust turns into an allocation-failure panic (the run fails, reported).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use common::palloc::PALLOC;

/// The allocator; see the module documentation.
struct PallocHeap;

// SAFETY: `alloc` returns a range of `layout.size()` bytes (at least one) aligned to
// `layout.align()` that PALLOC hands to no one else until `dealloc` gives it back with the
// same size; PALLOC is a lock-protected allocator usable from any CPU.
unsafe impl GlobalAlloc for PallocHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        PALLOC
            .alloc_zeroed(layout.size().max(1), layout.align())
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: our caller (the `GlobalAlloc` contract) passes a pointer `alloc` returned
            // for this same layout, no longer in use: a live PALLOC allocation of that size.
            unsafe { PALLOC.free(p, layout.size().max(1)) };
        }
    }
}

#[global_allocator]
static HEAP: PallocHeap = PallocHeap;
