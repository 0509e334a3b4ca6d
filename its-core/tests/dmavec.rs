// SPDX-License-Identifier: MIT OR Apache-2.0
//! `DmaVec`: a fixed-capacity vector in memory from the platform's allocator. Its elements
//! are dropped exactly once (on pop, release or drop), its memory is freed once, and a full
//! vector hands a value back rather than losing it.
// The test allocator hands out host memory; every block says whose promise it relies on.
#![allow(unsafe_code)]

use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::NonNull;
use std::rc::Rc;

use its_core::addr::PhysAddr;
use its_core::platform::{AllocError, DmaAlloc, DmaRegion, DmaVec};

/// Host memory, counted; refuses everything while `full` is set.
#[derive(Clone, Default)]
struct Heap {
    live: Rc<Cell<usize>>,
    full: Rc<Cell<bool>>,
}

// SAFETY: `alloc_zeroed` returns fresh zeroed host memory of the layout, exclusively the
// caller's until `dealloc`, which frees exactly that; the "physical" address is the host
// address, aligned as the layout asks.
unsafe impl DmaAlloc for Heap {
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError> {
        let err = AllocError {
            size: layout.size(),
            align: layout.align(),
        };
        if layout.size() == 0 || self.full.get() {
            return Err(err);
        }
        // SAFETY: the layout is not zero-sized (checked above).
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let va = NonNull::new(p).ok_or(err)?;
        self.live.set(self.live.get() + 1);
        Ok(DmaRegion {
            va,
            pa: PhysAddr::new(p as u64),
            layout,
        })
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        self.live.set(self.live.get() - 1);
        // SAFETY: our caller promised the region came from `alloc_zeroed` above (so from
        // `std::alloc::alloc_zeroed` with this layout) and is freed once.
        unsafe { std::alloc::dealloc(region.va.as_ptr(), region.layout) };
    }

    fn virt_to_phys(&self, va: NonNull<u8>) -> Option<PhysAddr> {
        Some(PhysAddr::new(va.as_ptr() as u64))
    }
}

/// Counts its drops.
#[derive(Debug)]
struct Noisy(u32, Rc<Cell<u32>>);

impl Drop for Noisy {
    fn drop(&mut self) {
        self.1.set(self.1.get() + 1);
    }
}

#[test]
fn push_pop_full_and_drop() {
    let heap = Heap::default();
    let drops = Rc::new(Cell::new(0));
    let mut v = DmaVec::<Noisy, _>::with_capacity(heap.clone(), 3).unwrap();
    assert_eq!(heap.live.get(), 1);
    assert_eq!((v.len(), v.capacity()), (0, 3));
    for i in 0..3 {
        v.push(Noisy(i, drops.clone())).unwrap();
    }
    // Full: the value comes back, nothing is dropped or overwritten.
    let back = v.push(Noisy(9, drops.clone())).unwrap_err();
    assert_eq!(back.0, 9);
    drop(back);
    assert_eq!(drops.get(), 1);
    assert_eq!(v.iter().map(|n| n.0).collect::<Vec<_>>(), [0, 1, 2]);
    v[1].0 = 7;
    assert_eq!(v.pop().map(|n| n.0), Some(2));
    assert_eq!(drops.get(), 2, "the popped value dropped by its new owner");
    assert_eq!(v.as_slice().iter().map(|n| n.0).collect::<Vec<_>>(), [0, 7]);
    drop(v);
    assert_eq!(drops.get(), 4, "each element dropped once");
    assert_eq!(heap.live.get(), 0, "the memory freed");
}

#[test]
fn release_drops_the_elements_and_frees_the_memory() {
    let heap = Heap::default();
    let drops = Rc::new(Cell::new(0));
    let mut v = DmaVec::with_capacity(heap.clone(), 2).unwrap();
    v.push(Noisy(1, drops.clone())).unwrap();
    v.release();
    assert_eq!((drops.get(), heap.live.get()), (1, 0));
    assert!(v.is_empty() && v.capacity() == 0 && v.platform().is_none());
    // Released: no room, no memory; dropping it again frees nothing twice.
    assert_eq!(v.push(Noisy(2, drops.clone())).unwrap_err().0, 2);
    assert_eq!(v.pop().map(|n| n.0), None);
    drop(v);
    assert_eq!((drops.get(), heap.live.get()), (2, 0));
}

#[test]
fn zero_capacity_zero_sized_elements_and_no_memory() {
    let heap = Heap::default();
    let mut v = DmaVec::<(), _>::with_capacity(heap.clone(), 0).unwrap();
    assert_eq!(v.capacity(), 1, "room for one at least");
    v.push(()).unwrap();
    assert_eq!(v.push(()), Err(()));
    drop(v);
    assert_eq!(heap.live.get(), 0);
    heap.full.set(true);
    assert!(DmaVec::<u64, _>::with_capacity(heap.clone(), 4).is_err());
    assert_eq!(heap.live.get(), 0);
}
