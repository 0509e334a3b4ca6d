// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a hypervisor provides to the drivers: DMA memory, cache maintenance and a clock.
//!
//! The GIC reads its tables and command queue from memory, so the drivers need memory that is
//! zeroed, physically contiguous and aligned, with known physical addresses ([`DmaAlloc`]);
//! cache maintenance to the point of coherency for GICs that do not snoop CPU caches
//! ([`CacheMaint`]); and a monotonic clock, because every wait is bounded ([`Clock`]).
//!
//! [`DmaBuf`] owns one allocation and frees it when dropped. Its accessors check bounds and
//! alignment and never panic; every write is reported to [`DmaAlloc::note_write`] so a host
//! fake can record the order of memory writes, cache maintenance and register writes.
//!
//! ```no_run
//! use core::alloc::Layout;
//! use its_core::platform::{DmaBuf, Platform};
//!
//! fn make_table<P: Platform + Clone>(p: P) -> Option<DmaBuf<P>> {
//!     let mut t = DmaBuf::new(p, Layout::from_size_align(4096, 4096).ok()?).ok()?;
//!     t.write_u64(0, 0x8000_0000_0000_0000).ok()?;
//!     t.clean(0, 8);
//!     Some(t)
//! }
//! ```
#![allow(unsafe_code)]

use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;
use core::time::Duration;

use crate::addr::PhysAddr;

/// A block of DMA memory as the allocator hands it out: its CPU address, its physical
/// address and its layout. Owning it does not free it; [`DmaBuf`] does.
#[derive(Debug, PartialEq, Eq)]
pub struct DmaRegion {
    /// Where the CPU reads and writes it.
    pub va: NonNull<u8>,
    /// Where the GIC reads and writes it.
    pub pa: PhysAddr,
    /// Size and alignment, as requested.
    pub layout: Layout,
}

/// The allocator could not satisfy a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[error("out of DMA memory ({size:#x} bytes, {align:#x}-aligned)")]
pub struct AllocError {
    /// Bytes requested.
    pub size: usize,
    /// Alignment requested.
    pub align: usize,
}

/// DMA memory for GIC tables and queues.
///
/// # Safety
/// Implementations must meet each method's "Implementation safety" section.
pub unsafe trait DmaAlloc {
    /// Allocates zeroed memory.
    ///
    /// # Implementation safety
    /// On success, `region.va` is valid for reads and writes of `layout.size()` bytes and not
    /// aliased until it is passed to [`DmaAlloc::dealloc`]; the memory is physically
    /// contiguous, starts at `region.pa`, is aligned to `layout.align()` in both address
    /// spaces, reads as zero, and the zeros are visible at the point of coherency (a GIC that
    /// does not snoop caches reads zeros too). `region.layout == layout`.
    ///
    /// # Errors
    /// [`AllocError`] when the request cannot be met.
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError>;

    /// Frees memory.
    ///
    /// # Safety
    /// `region` came from [`DmaAlloc::alloc_zeroed`] on this allocator, has not been freed,
    /// is not used by the CPU afterwards, and the GIC no longer references it.
    unsafe fn dealloc(&self, region: DmaRegion);

    /// The physical address of a CPU address in memory this allocator handed out, if known.
    fn virt_to_phys(&self, va: NonNull<u8>) -> Option<PhysAddr>;

    /// Told after the driver writes `len` bytes at `pa`. Real platforms keep this default (it
    /// compiles to nothing); the host fake records it to check write ordering.
    fn note_write(&self, pa: PhysAddr, len: usize) {
        let _ = (pa, len);
    }
}

/// Cache maintenance and barriers for memory the GIC reads.
pub trait CacheMaint {
    /// Cleans `len` bytes from `va` to the point of coherency (`DC CVAC` per line).
    fn clean_to_poc(&self, va: NonNull<u8>, len: usize);
    /// Cleans and invalidates `len` bytes from `va` to the point of coherency (`DC CIVAC`).
    fn clean_inval_to_poc(&self, va: NonNull<u8>, len: usize);
    /// Orders earlier stores before later ones, including the MMIO write that hands memory to
    /// the GIC (`DSB ISHST`).
    fn dsb_ishst(&self);
    /// A full barrier (`DSB SY`): earlier memory accesses and cache maintenance complete.
    fn dsb_sy(&self);
}

/// A point on a monotonic clock, in nanoseconds from an arbitrary origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(pub u64);

impl Instant {
    /// Time elapsed from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// A monotonic clock, used to bound every wait.
pub trait Clock {
    /// Now.
    fn now(&self) -> Instant;
    /// Called between polls of a register: a spin hint, or a short delay.
    fn relax(&self) {
        core::hint::spin_loop();
    }
}

/// Everything the drivers need from the platform.
pub trait Platform: DmaAlloc + CacheMaint + Clock {}
impl<T: DmaAlloc + CacheMaint + Clock + ?Sized> Platform for T {}

// SAFETY: forwards to `T`, which meets the requirements.
unsafe impl<T: DmaAlloc + ?Sized> DmaAlloc for &T {
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError> {
        (**self).alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, region: DmaRegion) {
        // SAFETY: our caller promised `dealloc`'s contract, which is `T::dealloc`'s.
        unsafe { (**self).dealloc(region) }
    }
    fn virt_to_phys(&self, va: NonNull<u8>) -> Option<PhysAddr> {
        (**self).virt_to_phys(va)
    }
    fn note_write(&self, pa: PhysAddr, len: usize) {
        (**self).note_write(pa, len);
    }
}

impl<T: CacheMaint + ?Sized> CacheMaint for &T {
    fn clean_to_poc(&self, va: NonNull<u8>, len: usize) {
        (**self).clean_to_poc(va, len);
    }
    fn clean_inval_to_poc(&self, va: NonNull<u8>, len: usize) {
        (**self).clean_inval_to_poc(va, len);
    }
    fn dsb_ishst(&self) {
        (**self).dsb_ishst();
    }
    fn dsb_sy(&self) {
        (**self).dsb_sy();
    }
}

impl<T: Clock + ?Sized> Clock for &T {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn relax(&self) {
        (**self).relax();
    }
}

/// A bounded wait ran out of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[error("timed out after {waited_ns} ns")]
pub struct Timeout {
    /// How long the wait lasted, in nanoseconds.
    pub waited_ns: u64,
}

/// Polls `done` until it returns true, or `timeout` passes on `clock`.
///
/// `done` is always called at least once, and once more after the deadline, so a condition
/// that became true just in time is not reported as a timeout.
///
/// # Errors
/// [`Timeout`] when the deadline passes first.
pub fn poll_until<C: Clock + ?Sized>(
    clock: &C,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), Timeout> {
    let start = clock.now();
    loop {
        if done() {
            return Ok(());
        }
        let now = clock.now();
        if now.since(start) >= timeout {
            return if done() {
                Ok(())
            } else {
                let waited_ns = now.0.saturating_sub(start.0);
                crate::logging::warning!("its-core: bounded wait gave up after {} ns", waited_ns);
                Err(Timeout { waited_ns })
            };
        }
        clock.relax();
    }
}

/// An access outside a [`DmaBuf`], or misaligned for its width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[error(
    "access of {len} bytes at offset {offset:#x} outside a {size:#x}-byte buffer or misaligned"
)]
pub struct OutOfBounds {
    /// The offset.
    pub offset: usize,
    /// The access width.
    pub len: usize,
    /// The buffer size.
    pub size: usize,
}

/// One DMA allocation, freed when dropped.
///
/// # Why dropping is safe
/// The drivers keep a `DmaBuf` exactly as long as the GIC may reference the memory (a table
/// lives as long as its `Its`, an ITT as long as its device mapping), so `Drop` meets
/// [`DmaAlloc::dealloc`]'s contract. A `DmaBuf` handed to the GIC outside those rules must be
/// kept alive by its owner.
pub struct DmaBuf<P: DmaAlloc> {
    platform: P,
    va: NonNull<u8>,
    pa: PhysAddr,
    layout: Layout,
    leak: bool,
}

// SAFETY: a DmaBuf exclusively owns its memory, like a `Box<[u8]>`; moving it to another
// thread moves that ownership. The platform handle travels with it, so it must be Send too.
unsafe impl<P: DmaAlloc + Send> Send for DmaBuf<P> {}
// SAFETY: through a shared reference the memory is only accessed with atomic loads and
// stores (`read_u8`, `read_u64`, `load_u32`, `store_u8`, `store_u32`, `update_u32`), so
// threads sharing a `DmaBuf` cannot race; plain writes need `&mut`.
unsafe impl<P: DmaAlloc + Sync> Sync for DmaBuf<P> {}

impl<P: DmaAlloc> fmt::Debug for DmaBuf<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaBuf")
            .field("pa", &self.pa())
            .field("len", &self.len())
            .finish()
    }
}

impl<P: DmaAlloc> DmaBuf<P> {
    /// Allocates zeroed memory from `platform`.
    ///
    /// # Errors
    /// [`AllocError`] from the platform, or for a zero-sized layout.
    pub fn new(platform: P, layout: Layout) -> Result<Self, AllocError> {
        if layout.size() == 0 {
            return Err(AllocError {
                size: 0,
                align: layout.align(),
            });
        }
        let DmaRegion { va, pa, layout } = platform.alloc_zeroed(layout).inspect_err(|e| {
            crate::logging::warning!("its-core: DMA allocation failed: {}", e);
        })?;
        Ok(Self {
            platform,
            va,
            pa,
            layout,
            leak: false,
        })
    }

    /// Makes dropping this buffer keep its memory instead of freeing it: for memory the GIC
    /// may still use (a table of an ITS that could not be disabled).
    pub fn leak_on_drop(&mut self) {
        self.leak = true;
    }

    /// Gives up ownership without freeing: returns the region, which the caller must later
    /// free with [`DmaBuf::from_region`] (or `dealloc`). For tables that keep many buffers as
    /// raw records in DMA memory rather than as `DmaBuf`s on the stack.
    pub fn into_region(self) -> DmaRegion {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again, so the platform handle is moved out of
        // it exactly once (and dropped normally at the end of this function).
        let _platform = unsafe { core::ptr::read(&me.platform) };
        DmaRegion {
            va: me.va,
            pa: me.pa,
            layout: me.layout,
        }
    }

    /// Takes back ownership of a region.
    ///
    /// # Safety
    /// `region` came from [`DmaBuf::into_region`] of a buffer allocated from `platform` (or
    /// from `platform.alloc_zeroed`), is not owned by anything else, and is freed only through
    /// the returned buffer.
    pub unsafe fn from_region(platform: P, region: DmaRegion) -> Self {
        let DmaRegion { va, pa, layout } = region;
        Self {
            platform,
            va,
            pa,
            layout,
            leak: false,
        }
    }

    /// The physical address.
    pub fn pa(&self) -> PhysAddr {
        self.pa
    }

    /// The CPU address.
    pub fn va(&self) -> NonNull<u8> {
        self.va
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Whether the buffer is empty (never: zero-sized buffers are refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The platform this buffer came from.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> Result<(), OutOfBounds> {
        let size = self.len();
        let ok =
            offset.is_multiple_of(align) && offset.checked_add(len).is_some_and(|end| end <= size);
        if ok {
            Ok(())
        } else {
            Err(OutOfBounds { offset, len, size })
        }
    }

    /// The CPU address `offset` bytes in. Computing it is safe; dereferencing it is only
    /// sound after `check`.
    fn at(&self, offset: usize) -> *mut u8 {
        self.va.as_ptr().wrapping_add(offset)
    }

    /// Writes a u64 at an 8-byte aligned offset, with one store.
    ///
    /// # Errors
    /// [`OutOfBounds`].
    pub fn write_u64(&mut self, offset: usize, value: u64) -> Result<(), OutOfBounds> {
        self.check(offset, 8, 8)?;
        let p = self.at(offset).cast::<u64>();
        if p.is_aligned() {
            // SAFETY: `check` proved offset..offset+8 lies inside the region, which the
            // allocator promised is valid for writes; aligned (just checked); exclusively ours
            // through `&mut self`.
            unsafe { p.write_volatile(value) };
        } else {
            // The region's own alignment is below 8: write it bytewise.
            for (i, b) in value.to_le_bytes().into_iter().enumerate() {
                let q = self.at(offset + i);
                // SAFETY: in bounds (above); byte accesses need no alignment.
                unsafe { q.write_volatile(b) };
            }
        }
        self.platform
            .note_write(PhysAddr::new(self.pa().get() + offset as u64), 8);
        Ok(())
    }

    /// Reads a u64 at an 8-byte aligned offset.
    ///
    /// # Errors
    /// [`OutOfBounds`].
    pub fn read_u64(&self, offset: usize) -> Result<u64, OutOfBounds> {
        self.check(offset, 8, 8)?;
        let p = self.at(offset).cast::<u64>();
        if p.is_aligned() {
            // SAFETY: in bounds, as `check` proved, and aligned; the region is valid for reads
            // and every access through `&self` is atomic (see `Sync`).
            let a = unsafe { core::sync::atomic::AtomicU64::from_ptr(p) };
            Ok(a.load(core::sync::atomic::Ordering::Relaxed))
        } else {
            let mut b = [0u8; 8];
            for (i, out) in b.iter_mut().enumerate() {
                *out = self.load_u8(offset + i);
            }
            Ok(u64::from_le_bytes(b))
        }
    }

    /// One byte, atomically; `offset` must be in bounds (checked by the caller).
    fn load_u8(&self, offset: usize) -> u8 {
        let p = self.at(offset);
        // SAFETY: in bounds (the caller checked); bytes need no alignment; every access
        // through `&self` is atomic (see `Sync`).
        let a = unsafe { core::sync::atomic::AtomicU8::from_ptr(p) };
        a.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// Writes one byte.
    ///
    /// # Errors
    /// [`OutOfBounds`].
    pub fn write_u8(&mut self, offset: usize, value: u8) -> Result<(), OutOfBounds> {
        self.check(offset, 1, 1)?;
        let p = self.at(offset);
        // SAFETY: in bounds, as `check` proved; exclusively ours through `&mut self`.
        unsafe { p.write_volatile(value) };
        self.platform
            .note_write(PhysAddr::new(self.pa().get() + offset as u64), 1);
        Ok(())
    }

    /// Writes one byte through a shared reference, as one atomic byte store. For tables that
    /// several CPUs, or an interrupt handler, update byte by byte (LPI property tables): no
    /// lock is needed, so it cannot deadlock against the code it interrupts.
    ///
    /// # Errors
    /// [`OutOfBounds`].
    pub fn store_u8(&self, offset: usize, value: u8) -> Result<(), OutOfBounds> {
        self.check(offset, 1, 1)?;
        let p = self.at(offset);
        // SAFETY: in bounds, as `check` proved; the region is valid for writes for the
        // buffer's lifetime, and every concurrent access of this byte through a `DmaBuf` is an
        // atomic byte access or a volatile read of an aligned byte, which do not tear.
        let a = unsafe { core::sync::atomic::AtomicU8::from_ptr(p) };
        a.store(value, core::sync::atomic::Ordering::Relaxed);
        self.platform
            .note_write(PhysAddr::new(self.pa().get() + offset as u64), 1);
        Ok(())
    }

    /// Stores a u32 at a 4-byte aligned offset through a shared reference, atomically (for
    /// lookup tables read from interrupt handlers).
    ///
    /// # Errors
    /// [`OutOfBounds`] (also when the address is not 4-byte aligned).
    pub fn store_u32(&self, offset: usize, value: u32) -> Result<(), OutOfBounds> {
        let a = self.atomic_u32(offset)?;
        a.store(value, core::sync::atomic::Ordering::Release);
        self.platform
            .note_write(PhysAddr::new(self.pa().get() + offset as u64), 4);
        Ok(())
    }

    /// Atomically replaces the u32 at a 4-byte aligned offset with `f(old)` (a
    /// compare-and-swap loop, so `f` may run more than once) and returns the old value: a
    /// read-modify-write that concurrent updates of the same word, from other CPUs or an
    /// interrupt handler, cannot lose.
    ///
    /// # Errors
    /// [`OutOfBounds`] (also when the address is not 4-byte aligned).
    pub fn update_u32(
        &self,
        offset: usize,
        mut f: impl FnMut(u32) -> u32,
    ) -> Result<u32, OutOfBounds> {
        let a = self.atomic_u32(offset)?;
        let old = a
            .fetch_update(
                core::sync::atomic::Ordering::AcqRel,
                core::sync::atomic::Ordering::Acquire,
                |x| Some(f(x)),
            )
            .unwrap_or_else(|x| x);
        self.platform
            .note_write(PhysAddr::new(self.pa().get() + offset as u64), 4);
        Ok(old)
    }

    /// Loads a u32 at a 4-byte aligned offset, atomically.
    ///
    /// # Errors
    /// [`OutOfBounds`] (also when the address is not 4-byte aligned).
    pub fn load_u32(&self, offset: usize) -> Result<u32, OutOfBounds> {
        Ok(self
            .atomic_u32(offset)?
            .load(core::sync::atomic::Ordering::Acquire))
    }

    fn atomic_u32(&self, offset: usize) -> Result<&core::sync::atomic::AtomicU32, OutOfBounds> {
        self.check(offset, 4, 4)?;
        let p = self.at(offset).cast::<u32>();
        if !p.is_aligned() {
            return Err(OutOfBounds {
                offset,
                len: 4,
                size: self.len(),
            });
        }
        // SAFETY: in bounds (checked) and 4-byte aligned (checked); the memory stays valid for
        // as long as `self` is borrowed, and all accesses to it through a shared `DmaBuf` are
        // atomic.
        Ok(unsafe { core::sync::atomic::AtomicU32::from_ptr(p) })
    }

    /// Reads one byte.
    ///
    /// # Errors
    /// [`OutOfBounds`].
    pub fn read_u8(&self, offset: usize) -> Result<u8, OutOfBounds> {
        self.check(offset, 1, 1)?;
        Ok(self.load_u8(offset))
    }

    /// Writes `value` to `len` bytes from `offset`.
    ///
    /// # Errors
    /// [`OutOfBounds`].
    pub fn fill(&mut self, offset: usize, len: usize, value: u8) -> Result<(), OutOfBounds> {
        self.check(offset, len, 1)?;
        for i in 0..len {
            let p = self.at(offset + i);
            // SAFETY: offset + i < offset + len <= size, as `check` proved.
            unsafe { p.write_volatile(value) };
        }
        self.platform
            .note_write(PhysAddr::new(self.pa().get() + offset as u64), len);
        Ok(())
    }

    /// Copies `data` in from `offset`.
    ///
    /// # Errors
    /// [`OutOfBounds`].
    pub fn write_bytes(&mut self, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, data.len(), 1)?;
        for (i, &b) in data.iter().enumerate() {
            let p = self.at(offset + i);
            // SAFETY: offset + i < offset + data.len() <= size, as `check` proved.
            unsafe { p.write_volatile(b) };
        }
        self.platform
            .note_write(PhysAddr::new(self.pa().get() + offset as u64), data.len());
        Ok(())
    }
}

impl<P: DmaAlloc + CacheMaint> DmaBuf<P> {
    /// Cleans `len` bytes from `offset` to the point of coherency. Out-of-range parts are
    /// clipped.
    pub fn clean(&self, offset: usize, len: usize) {
        let size = self.len();
        if offset >= size {
            return;
        }
        let len = len.min(size - offset);
        let Some(va) = NonNull::new(self.at(offset)) else {
            return;
        };
        self.platform.clean_to_poc(va, len);
    }

    /// Cleans the whole buffer to the point of coherency.
    pub fn clean_all(&self) {
        self.clean(0, self.len());
    }
}

impl<P: DmaAlloc> Drop for DmaBuf<P> {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        let region = DmaRegion {
            va: self.va,
            pa: self.pa,
            layout: self.layout,
        };
        // SAFETY: this region came from `alloc_zeroed` on `self.platform` in `new`, is freed
        // only here, once, and the owner guarantees the GIC no longer references it (see
        // "Why dropping is safe").
        unsafe { self.platform.dealloc(region) };
    }
}

/// A vector of fixed capacity whose elements live in memory from the platform's
/// [`DmaAlloc`], not inline: how a driver object keeps a per-item array (a VM's vPEs) out of
/// the structure that owns it, so the structure stays small enough to move, return and keep
/// in a static, and the array costs only what it holds. No `alloc`: the memory is one
/// [`DmaBuf`], freed when the vector is dropped (after its elements).
///
/// The GIC never sees this memory; it only has to be ordinary RAM that atomics work on, as
/// for the other records the drivers keep in DMA memory (the doorbells' state, the vPE ID
/// bitmap).
pub struct DmaVec<T, P: DmaAlloc> {
    /// The memory; `None` once released ([`DmaVec::release`]).
    buf: Option<DmaBuf<P>>,
    cap: usize,
    len: usize,
    _owns: core::marker::PhantomData<T>,
}

// SAFETY: a DmaVec owns its elements like a `Vec<T>`: moving it to another thread moves them
// (and the platform handle, which must be Send too).
unsafe impl<T: Send, P: DmaAlloc + Send> Send for DmaVec<T, P> {}
// SAFETY: through `&DmaVec` only `&T` is reachable (the slice), as for `Vec<T>`.
unsafe impl<T: Sync, P: DmaAlloc + Sync> Sync for DmaVec<T, P> {}

impl<T, P: DmaAlloc> DmaVec<T, P> {
    /// An empty vector with room for `cap` elements (at least one), allocated from
    /// `platform`.
    ///
    /// # Errors
    /// [`AllocError`] from the platform, or when `cap` elements do not fit a layout.
    pub fn with_capacity(platform: P, cap: usize) -> Result<Self, AllocError> {
        let cap = cap.max(1);
        let layout = Layout::array::<T>(cap)
            .and_then(|l| l.align_to(8))
            .map_err(|_| AllocError {
                size: cap.saturating_mul(core::mem::size_of::<T>()),
                align: core::mem::align_of::<T>(),
            })?;
        // Zero-sized elements still get one byte: DmaBuf refuses empty layouts.
        let layout = if layout.size() == 0 {
            Layout::from_size_align(8, layout.align()).map_err(|_| AllocError {
                size: 8,
                align: layout.align(),
            })?
        } else {
            layout
        };
        Ok(Self {
            buf: Some(DmaBuf::new(platform, layout)?),
            cap,
            len: 0,
            _owns: core::marker::PhantomData,
        })
    }

    /// Where the elements are (dangling, but aligned, once released: no element is there).
    fn base(&self) -> *mut T {
        self.buf.as_ref().map_or(NonNull::dangling().as_ptr(), |b| {
            b.va().as_ptr().cast::<T>()
        })
    }

    /// Drops every element and frees the memory: the vector is then empty, with no room.
    pub fn release(&mut self) {
        while self.pop().is_some() {}
        self.cap = 0;
        drop(self.buf.take());
    }

    /// Appends `value`; hands it back when the vector is full.
    ///
    /// # Errors
    /// The value, when there is no room.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.len == self.cap {
            return Err(value);
        }
        let slot = self.base().wrapping_add(self.len);
        // SAFETY: `len < cap`, so `slot` lies inside the allocation of `cap` elements, which is
        // aligned for `T` (the layout came from `Layout::array::<T>`) and exclusively ours
        // through `&mut self`; it holds no live value, so nothing is overwritten.
        unsafe { slot.write(value) };
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the last element.
    pub fn pop(&mut self) -> Option<T> {
        self.len = self.len.checked_sub(1)?;
        let slot = self.base().wrapping_add(self.len);
        // SAFETY: `slot`, at the old `len - 1`, holds a value written by `push`; `len` was
        // lowered first, so it is read out exactly once and never dropped in place.
        Some(unsafe { slot.read() })
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the first `len` slots hold values written by `push`, in an allocation that
        // lives as long as `self` and is aligned for `T`.
        unsafe { core::slice::from_raw_parts(self.base(), self.len) }
    }

    /// The elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as `as_slice`; `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.base(), self.len) }
    }

    /// Room, in elements.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The platform the memory came from, until it is released.
    pub fn platform(&self) -> Option<&P> {
        self.buf.as_ref().map(DmaBuf::platform)
    }
}

impl<T, P: DmaAlloc> core::ops::Deref for DmaVec<T, P> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T, P: DmaAlloc> core::ops::DerefMut for DmaVec<T, P> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<'v, T, P: DmaAlloc> IntoIterator for &'v DmaVec<T, P> {
    type Item = &'v T;
    type IntoIter = core::slice::Iter<'v, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<'v, T, P: DmaAlloc> IntoIterator for &'v mut DmaVec<T, P> {
    type Item = &'v mut T;
    type IntoIter = core::slice::IterMut<'v, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_mut_slice().iter_mut()
    }
}

impl<T: fmt::Debug, P: DmaAlloc> fmt::Debug for DmaVec<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T, P: DmaAlloc> Drop for DmaVec<T, P> {
    fn drop(&mut self) {
        while self.pop().is_some() {}
        // The buffer frees the memory when it is dropped, after this.
    }
}

/// Why a [`DmaSlots`] operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SlotError {
    /// No such slot.
    #[error("slot {0} out of range")]
    OutOfRange(usize),
    /// Out of memory.
    #[error(transparent)]
    Alloc(#[from] AllocError),
}

/// A set of DMA allocations of one layout, indexed by slot and allocated on demand: the
/// second-level pages of a two-level table. Its bookkeeping (CPU and physical address of each
/// slot) lives in DMA memory too, so a large table costs nothing on the stack. Every page is
/// freed when the set is dropped.
pub struct DmaSlots<P: DmaAlloc> {
    records: DmaBuf<P>,
    layout: Layout,
    slots: usize,
    used: usize,
}

impl<P: DmaAlloc + Clone> DmaSlots<P> {
    /// `slots` empty slots for allocations of `layout`.
    ///
    /// # Errors
    /// [`AllocError`] for the bookkeeping.
    pub fn new(platform: P, slots: usize, layout: Layout) -> Result<Self, AllocError> {
        let bytes = slots.max(1).saturating_mul(16);
        let rl = Layout::from_size_align(bytes, 8).map_err(|_| AllocError {
            size: bytes,
            align: 8,
        })?;
        let records = DmaBuf::new(platform, rl)?;
        Ok(Self {
            records,
            layout,
            slots,
            used: 0,
        })
    }

    /// Allocates slot `slot` (zeroed) if it is empty; returns its physical address and whether
    /// it was just allocated.
    ///
    /// # Errors
    /// [`SlotError::OutOfRange`], [`SlotError::Alloc`].
    pub fn alloc(&mut self, slot: usize) -> Result<(PhysAddr, bool), SlotError> {
        if let Some((_, pa)) = self.get(slot)? {
            return Ok((pa, false));
        }
        let buf = DmaBuf::new(self.records.platform().clone(), self.layout)?;
        let region = buf.into_region();
        // The CPU address is kept as an integer in DMA memory (so the bookkeeping of a large
        // table needs no stack or heap): expose its provenance, to take it back in `get`.
        let (va, pa) = (
            region.va.as_ptr().expose_provenance() as u64,
            region.pa.get(),
        );
        let stored = self
            .records
            .write_u64(slot * 16, va)
            .and_then(|()| self.records.write_u64(slot * 16 + 8, pa));
        if stored.is_err() {
            // SAFETY: `region` came from `into_region` of a buffer from this platform and is
            // owned by nothing else.
            drop(unsafe { DmaBuf::from_region(self.records.platform().clone(), region) });
            return Err(SlotError::OutOfRange(slot));
        }
        self.used += 1;
        Ok((PhysAddr::new(pa), true))
    }
}

impl<P: DmaAlloc> DmaSlots<P> {
    /// Makes dropping the set keep every allocation (see [`DmaBuf::leak_on_drop`]).
    pub fn leak_on_drop(&mut self) {
        self.records.leak_on_drop();
    }

    /// Slot `slot`'s CPU and physical address, if allocated.
    ///
    /// # Errors
    /// [`SlotError::OutOfRange`].
    pub fn get(&self, slot: usize) -> Result<Option<(NonNull<u8>, PhysAddr)>, SlotError> {
        if slot >= self.slots {
            return Err(SlotError::OutOfRange(slot));
        }
        let va = self
            .records
            .read_u64(slot * 16)
            .map_err(|_| SlotError::OutOfRange(slot))?;
        let pa = self
            .records
            .read_u64(slot * 16 + 8)
            .map_err(|_| SlotError::OutOfRange(slot))?;
        let va = core::ptr::with_exposed_provenance_mut::<u8>(va as usize);
        Ok(NonNull::new(va).map(|v| (v, PhysAddr::new(pa))))
    }

    /// Slots allocated.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Slots in the set.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The layout of each allocation.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

impl<P: DmaAlloc> fmt::Debug for DmaSlots<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaSlots")
            .field("slots", &self.slots)
            .field("used", &self.used)
            .field("layout", &self.layout)
            .finish()
    }
}

impl<P: DmaAlloc> Drop for DmaSlots<P> {
    fn drop(&mut self) {
        if self.records.leak {
            return;
        }
        for slot in 0..self.slots {
            let Ok(Some((va, pa))) = self.get(slot) else {
                continue;
            };
            let region = DmaRegion {
                va,
                pa,
                layout: self.layout,
            };
            // SAFETY: the record was written by `alloc` from a region of `into_region` of a
            // buffer from this platform with this layout; this set owns it alone and frees it
            // only here, once. The owner guarantees the GIC no longer uses it (as for DmaBuf).
            unsafe { self.records.platform().dealloc(region) };
        }
    }
}
