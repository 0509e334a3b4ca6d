// SPDX-License-Identifier: MIT OR Apache-2.0
//! The driver crates' platform traits, implemented for real on the test images.
//!
//! [`HwPlatform`] is what a hypervisor gives `its-core` / `its-cmdq`:
//!
//! - [`DmaAlloc`] over [`PALLOC`]: memory is identity mapped (PA == VA), Normal write-back
//!   inner-shareable; every allocation is zeroed by the allocator and then cleaned and
//!   invalidated to the point of coherency, so a GIC that does not snoop the CPU caches reads
//!   zeros too (the `DmaAlloc` contract). Freed memory goes back to [`PALLOC`], so
//!   [`PALLOC.outstanding()`](crate::palloc::PhysAllocator::outstanding) catches leaks;
//! - [`CacheMaint`] with `DC CVAC` / `DC CIVAC` per cache line and `DSB` ([`crate::cache`]):
//!   the MMU and caches are on, so this maintenance really runs (QEMU models no caches, so it
//!   cannot be *checked* here; host tests with the fake platform check the ordering);
//! - [`Clock`] from the generic timer (CNTPCT_EL0 scaled by CNTFRQ_EL0 to nanoseconds).
//!
//! ```no_run
//! use common::gic_platform::HwPlatform;
//! use its_core::platform::{Clock, DmaBuf};
//!
//! let t0 = HwPlatform.now();
//! let buf = DmaBuf::new(HwPlatform, core::alloc::Layout::from_size_align(4096, 4096).unwrap());
//! assert!(buf.is_ok());
//! let _elapsed = HwPlatform.now().since(t0);
//! ```

use core::alloc::Layout;
use core::ptr::NonNull;

use its_core::addr::PhysAddr;
use its_core::platform::{AllocError, CacheMaint, Clock, DmaAlloc, DmaRegion, Instant};

use crate::palloc::PALLOC;
use crate::platform::{RAM_BASE, RAM_END};

/// The test images' platform: DMA memory from [`PALLOC`], cache maintenance by VA, the generic
/// timer. Zero-sized: copy it freely.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct HwPlatform;

// SAFETY: `alloc_zeroed` hands out a fresh PALLOC range (RAM given to the allocator once, used
// by nothing else until freed, so valid and unaliased), physically contiguous because PALLOC
// manages identity-mapped physical RAM (PA == VA, so `pa` is its physical address and the
// alignment holds in both address spaces), zeroed by PALLOC and then cleaned and invalidated
// to the PoC so the zeros are visible there; `layout` is returned unchanged.
unsafe impl DmaAlloc for HwPlatform {
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError> {
        let err = AllocError {
            size: layout.size(),
            align: layout.align(),
        };
        let va = PALLOC
            .alloc_zeroed(layout.size(), layout.align())
            .map_err(|_| err)?;
        // PALLOC zeroed the range through the cache: push the zeros to the point of coherency
        // and drop the lines, so a non-snooping GIC reads zeros and the CPU later re-reads what
        // the GIC wrote.
        crate::cache::clean_inval_to_poc(va.as_ptr() as usize, layout.size());
        Ok(DmaRegion {
            va,
            pa: PhysAddr::new(va.as_ptr() as u64),
            layout,
        })
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        // SAFETY: our caller promised the region came from `alloc_zeroed` (so from PALLOC with
        // this size), is freed once, and neither the CPU nor the GIC uses it any more.
        unsafe { PALLOC.free(region.va, region.layout.size()) };
    }

    fn virt_to_phys(&self, va: NonNull<u8>) -> Option<PhysAddr> {
        let a = va.as_ptr() as usize;
        (RAM_BASE..RAM_END)
            .contains(&a)
            .then(|| PhysAddr::new(a as u64))
    }
}

impl CacheMaint for HwPlatform {
    fn clean_to_poc(&self, va: NonNull<u8>, len: usize) {
        crate::cache::clean_to_poc(va.as_ptr() as usize, len);
    }

    fn clean_inval_to_poc(&self, va: NonNull<u8>, len: usize) {
        crate::cache::clean_inval_to_poc(va.as_ptr() as usize, len);
    }

    fn dsb_ishst(&self) {
        crate::cache::dsb_ishst();
    }

    fn dsb_sy(&self) {
        crate::cache::dsb_sy();
    }
}

impl Clock for HwPlatform {
    fn now(&self) -> Instant {
        Instant(crate::timer::ticks_to_ns(crate::timer::ticks()))
    }

    fn relax(&self) {
        crate::sync::relax();
    }
}
