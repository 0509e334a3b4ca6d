// SPDX-License-Identifier: MIT OR Apache-2.0
//! The memory the model reads and writes: any allocator's, through [`GicMemory`].
//!
//! The model walks the driver's tables and queue by physical address, so it needs a way from
//! a physical address to the bytes. [`GicMemory`] is that way. Two implementations:
//! - [`crate::FakePlatform`], the fake platform with fake physical addresses, a
//!   point-of-coherency view and an event log;
//! - [`TrackedDma`], a wrapper around any [`DmaAlloc`]: it forwards every call and remembers
//!   the regions it handed out, so the model can read them (as coherent memory: a wrapped
//!   allocator has no point-of-coherency view to model).
// Reading another allocator's memory by physical address needs the CPU pointers it gave out;
// every block says whose promise it relies on.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};

use core::alloc::Layout;

use its_core::addr::PhysAddr;
use its_core::platform::{AllocError, CacheMaint, Clock, DmaAlloc, DmaRegion, Instant};

use crate::platform::{Event, MemFault, View};

/// Guest-physical memory as the GIC sees it: what the model reads its tables, queue and
/// pending tables from, and writes its table entries to.
///
/// # Implementation
/// A read or write of a range that no live allocation covers must fail with [`MemFault`]
/// (the model then stalls the queue, as QEMU does on a memory transaction error); a range
/// that one allocation covers must read the bytes the CPU wrote (with [`View::Coherent`]), or
/// the bytes cleaned to the point of coherency (with [`View::PointOfCoherency`], where the
/// implementation models it).
pub trait GicMemory: Send + Sync {
    /// Reads `buf.len()` bytes at `pa`.
    ///
    /// # Errors
    /// [`MemFault`] when no live allocation covers the range.
    fn read(&self, pa: u64, buf: &mut [u8], view: View) -> Result<(), MemFault>;

    /// A device write of `data` at `pa` (visible to the CPU and at the point of coherency).
    ///
    /// # Errors
    /// [`MemFault`] when no live allocation covers the range.
    fn device_write(&self, pa: u64, data: &[u8]) -> Result<(), MemFault>;

    /// Whether one live allocation covers `pa .. pa + len`.
    fn is_live(&self, pa: u64, len: usize) -> bool;

    /// Records an event (the model's register writes); the default drops it.
    fn record(&self, e: Event) {
        let _ = e;
    }

    /// Reads a little-endian u64.
    ///
    /// # Errors
    /// [`MemFault`].
    fn read_u64(&self, pa: u64, view: View) -> Result<u64, MemFault> {
        let mut b = [0u8; 8];
        self.read(pa, &mut b, view)?;
        Ok(u64::from_le_bytes(b))
    }
}

struct Region {
    va: NonNull<u8>,
    len: usize,
}

struct Regions {
    by_pa: BTreeMap<u64, Region>,
}

// SAFETY: the pointers are only dereferenced under the mutex, while the region is live (the
// allocator promised it valid until `dealloc`, and `dealloc` removes it first).
unsafe impl Send for Regions {}

/// Any [`DmaAlloc`] (with its [`CacheMaint`] and [`Clock`], when it has them), wrapped so the
/// model can read the memory it hands out: give a clone to the driver as its platform and one
/// to [`crate::GicModel::with_memory`].
///
/// ```
/// use its_model::{FakePlatform, GicModel, ModelConfig, TrackedDma};
///
/// // Any allocator works; FakePlatform stands in for a hypervisor's own here.
/// let dma = TrackedDma::new(FakePlatform::new());
/// let model = GicModel::with_memory(ModelConfig::qemu(1), dma.clone());
/// # let _ = model;
/// ```
pub struct TrackedDma<A> {
    inner: A,
    regions: Arc<Mutex<Regions>>,
}

impl<A: Clone> Clone for TrackedDma<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            regions: self.regions.clone(),
        }
    }
}

impl<A> core::fmt::Debug for TrackedDma<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TrackedDma").finish_non_exhaustive()
    }
}

impl<A> TrackedDma<A> {
    /// Wraps `inner`.
    pub fn new(inner: A) -> Self {
        Self {
            inner,
            regions: Arc::new(Mutex::new(Regions {
                by_pa: BTreeMap::new(),
            })),
        }
    }

    /// The wrapped allocator.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    fn lock(&self) -> MutexGuard<'_, Regions> {
        self.regions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The CPU pointer to `pa .. pa + len`, if one live region covers it.
    fn find(r: &Regions, pa: u64, len: usize) -> Option<*mut u8> {
        let (&base, reg) = r.by_pa.range(..=pa).next_back()?;
        let off = usize::try_from(pa - base).ok()?;
        (off.checked_add(len)? <= reg.len).then(|| reg.va.as_ptr().wrapping_add(off))
    }
}

impl<A: Send + Sync> GicMemory for TrackedDma<A> {
    fn read(&self, pa: u64, buf: &mut [u8], _view: View) -> Result<(), MemFault> {
        let r = self.lock();
        let p = Self::find(&r, pa, buf.len()).ok_or(MemFault { pa, len: buf.len() })?;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `find` proved the range lies in a region the allocator handed out and
            // has not taken back (its `alloc_zeroed` contract: valid until `dealloc`); the
            // lock keeps `dealloc` from removing it meanwhile.
            *b = unsafe { p.wrapping_add(i).read_volatile() };
        }
        Ok(())
    }

    fn device_write(&self, pa: u64, data: &[u8]) -> Result<(), MemFault> {
        let r = self.lock();
        let p = Self::find(&r, pa, data.len()).ok_or(MemFault {
            pa,
            len: data.len(),
        })?;
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as in `read`; the GIC writing its own tables is the device write the
            // allocator's memory is for.
            unsafe { p.wrapping_add(i).write_volatile(b) };
        }
        Ok(())
    }

    fn is_live(&self, pa: u64, len: usize) -> bool {
        Self::find(&self.lock(), pa, len).is_some()
    }
}

// SAFETY: every call is forwarded to `inner`, which meets the contract; the bookkeeping only
// records what `inner` handed out and forgets it before handing it back.
unsafe impl<A: DmaAlloc> DmaAlloc for TrackedDma<A> {
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError> {
        let region = self.inner.alloc_zeroed(layout)?;
        self.lock().by_pa.insert(
            region.pa.get(),
            Region {
                va: region.va,
                len: layout.size(),
            },
        );
        Ok(region)
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        self.lock().by_pa.remove(&region.pa.get());
        // SAFETY: our caller promised `dealloc`'s contract, which is `inner`'s (the region
        // came from `inner.alloc_zeroed`, through us).
        unsafe { self.inner.dealloc(region) }
    }

    fn virt_to_phys(&self, va: NonNull<u8>) -> Option<PhysAddr> {
        self.inner.virt_to_phys(va)
    }

    fn note_write(&self, pa: PhysAddr, len: usize) {
        self.inner.note_write(pa, len);
    }
}

impl<A: CacheMaint> CacheMaint for TrackedDma<A> {
    fn clean_to_poc(&self, va: NonNull<u8>, len: usize) {
        self.inner.clean_to_poc(va, len);
    }
    fn clean_inval_to_poc(&self, va: NonNull<u8>, len: usize) {
        self.inner.clean_inval_to_poc(va, len);
    }
    fn dsb_ishst(&self) {
        self.inner.dsb_ishst();
    }
    fn dsb_sy(&self) {
        self.inner.dsb_sy();
    }
}

impl<A: Clock> Clock for TrackedDma<A> {
    fn now(&self) -> Instant {
        self.inner.now()
    }
    fn relax(&self) {
        self.inner.relax();
    }
}
