// SPDX-License-Identifier: MIT OR Apache-2.0
//! A host platform: DMA memory with fake physical addresses, recorded cache maintenance, a
//! stepping clock, and fault injection.
//!
//! Physical addresses are handed out from 0x4000_0000 upwards and never reused, and they are
//! unrelated to the host pointers, so a driver that gives the GIC a CPU address, or uses
//! memory after freeing it, is caught by the model ([`crate::GicModel`]) as a memory fault.
//!
//! The fake keeps two views of each allocation: the live bytes the CPU writes, and the bytes
//! visible at the point of coherency, which only [`CacheMaint::clean_to_poc`] (and the GIC's
//! own writes) update. The model reads non-shareable tables and queues through the second
//! view, so a missing clean shows up as stale data, exactly as on a GIC that does not snoop.
// The fake allocates host memory and reads and writes it through raw pointers, as a DMA
// allocator does; every block says whose promise it relies on.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use core::alloc::Layout;

use its_core::addr::PhysAddr;
use its_core::platform::{AllocError, CacheMaint, Clock, DmaAlloc, DmaRegion, Instant};

/// One thing that happened, in order: allocations, CPU writes, cache maintenance, barriers,
/// and (recorded by the model) register writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Memory allocated.
    Alloc {
        /// Physical address.
        pa: u64,
        /// Size in bytes.
        size: usize,
        /// Alignment in bytes.
        align: usize,
    },
    /// Memory freed.
    Free {
        /// Physical address.
        pa: u64,
        /// Size in bytes.
        size: usize,
    },
    /// The CPU wrote memory (through a `DmaBuf`).
    Write {
        /// Physical address.
        pa: u64,
        /// Length in bytes.
        len: usize,
    },
    /// Clean to the point of coherency.
    Clean {
        /// Physical address.
        pa: u64,
        /// Length in bytes.
        len: usize,
    },
    /// Clean and invalidate to the point of coherency.
    CleanInval {
        /// Physical address.
        pa: u64,
        /// Length in bytes.
        len: usize,
    },
    /// `DSB ISHST`.
    DsbIshst,
    /// `DSB SY`.
    DsbSy,
    /// A register write.
    Reg {
        /// Which block: "its0", "rd1", ...
        block: String,
        /// The register's name, e.g. "GITS_CWRITER".
        reg: &'static str,
        /// The value written.
        value: u64,
    },
}

struct Alloc {
    va: NonNull<u8>,
    layout: Layout,
    /// Bytes visible at the point of coherency; `None` until first cleaned or written by the
    /// device (until then it is all zeros, as allocated).
    poc: Option<Vec<u8>>,
}

/// How allocations fail on purpose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocFaults {
    /// The allocation with this index (counting every allocation since the platform was made)
    /// fails, once.
    pub fail_at: Option<u64>,
    /// Every allocation with an index at or above this fails.
    pub fail_from: Option<u64>,
    /// Allocations fail when they would bring live bytes above this.
    pub capacity: Option<usize>,
}

struct State {
    next_pa: u64,
    allocs: BTreeMap<u64, Alloc>,
    events: Vec<Event>,
    recording: bool,
    faults: AllocFaults,
    allocations: u64,
    live_bytes: usize,
    peak_bytes: usize,
}

// SAFETY: the raw pointers in `allocs` point at heap blocks this state owns exclusively; they
// are only dereferenced while the mutex is held (or by a `DmaBuf` that owns the block).
unsafe impl Send for State {}

/// The fake platform: a cloneable handle to shared state. Implements [`DmaAlloc`],
/// [`CacheMaint`] and [`Clock`].
#[derive(Clone)]
pub struct FakePlatform {
    state: Arc<Mutex<State>>,
    clock: FakeClock,
    observer: Arc<Mutex<Option<Observer>>>,
}

/// What a test runs at the driver's CPU writes and barriers (see
/// [`FakePlatform::set_observer`]).
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

impl core::fmt::Debug for FakePlatform {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakePlatform").finish_non_exhaustive()
    }
}

/// A fault the device side hit reading or writing memory: no live allocation covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemFault {
    /// The faulting physical address.
    pub pa: u64,
    /// The access length.
    pub len: usize,
}

/// Which view of memory the GIC reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Shareable memory: the GIC sees the CPU's writes (ordering is checked separately through
    /// the event log).
    Coherent,
    /// Non-shareable memory: the GIC sees only what was cleaned to the point of coherency.
    PointOfCoherency,
}

impl Default for FakePlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl FakePlatform {
    /// A platform with its own clock stepping 1 µs per reading.
    pub fn new() -> Self {
        Self::with_clock(FakeClock::new(1_000))
    }

    /// A platform using `clock`.
    pub fn with_clock(clock: FakeClock) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                next_pa: 0x4000_0000,
                allocs: BTreeMap::new(),
                events: Vec::new(),
                recording: true,
                faults: AllocFaults::default(),
                allocations: 0,
                live_bytes: 0,
                peak_bytes: 0,
            })),
            clock,
            observer: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `observer` on the calling thread at each [`Event::Write`] (a CPU write through a
    /// `DmaBuf`), [`Event::DsbIshst`] and [`Event::DsbSy`], after the platform's own work and
    /// whether or not events are being recorded; `None` removes it. This is where a test
    /// interposes on the driver: pause a thread at a write, or take an "interrupt" inside the
    /// barrier before a GITS_CWRITER write. The observer may call back into the platform,
    /// and it runs for the barriers of its own calls too.
    pub fn set_observer(&self, observer: Option<Observer>) {
        *self.observer.lock().unwrap_or_else(|e| e.into_inner()) = observer;
    }

    /// Runs the observer, if any, on `e`, holding no lock of ours.
    fn observe(&self, e: &Event) {
        let observer = self
            .observer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(o) = observer {
            o(e);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has already failed; keep going so its
        // report is not hidden behind a poisoned-lock panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The clock.
    pub fn clock(&self) -> &FakeClock {
        &self.clock
    }

    /// Sets allocation fault injection.
    pub fn set_faults(&self, faults: AllocFaults) {
        self.lock().faults = faults;
    }

    /// Makes the next allocation fail, once.
    pub fn fail_next_alloc(&self) {
        let mut s = self.lock();
        s.faults.fail_at = Some(s.allocations);
    }

    /// How many allocations were attempted so far.
    pub fn allocations(&self) -> u64 {
        self.lock().allocations
    }

    /// Bytes currently allocated.
    pub fn live_bytes(&self) -> usize {
        self.lock().live_bytes
    }

    /// The largest `live_bytes` seen.
    pub fn peak_bytes(&self) -> usize {
        self.lock().peak_bytes
    }

    /// Number of live allocations.
    pub fn live_allocations(&self) -> usize {
        self.lock().allocs.len()
    }

    /// The recorded events.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// Forgets the recorded events.
    pub fn clear_events(&self) {
        self.lock().events.clear();
    }

    /// Turns event recording on or off (off for long benchmarks).
    pub fn set_recording(&self, on: bool) {
        self.lock().recording = on;
    }

    /// Records an event (the model records register writes through this).
    pub fn record(&self, e: Event) {
        let mut s = self.lock();
        if s.recording {
            s.events.push(e);
        }
    }

    fn find(s: &State, pa: u64, len: usize) -> Option<(u64, usize)> {
        let (&base, a) = s.allocs.range(..=pa).next_back()?;
        let off = (pa - base) as usize;
        (off.checked_add(len)? <= a.layout.size()).then_some((base, off))
    }

    fn find_va(s: &State, va: NonNull<u8>, len: usize) -> Option<(u64, usize)> {
        let v = va.as_ptr() as usize;
        s.allocs.iter().find_map(|(&pa, a)| {
            let start = a.va.as_ptr() as usize;
            (v >= start && v.checked_add(len)? <= start + a.layout.size()).then(|| (pa, v - start))
        })
    }

    /// Reads GIC-visible memory. `view` selects what a GIC with that shareability sees.
    ///
    /// # Errors
    /// [`MemFault`] when no live allocation covers the range.
    pub fn read(&self, pa: u64, buf: &mut [u8], view: View) -> Result<(), MemFault> {
        let s = self.lock();
        let (base, off) = Self::find(&s, pa, buf.len()).ok_or(MemFault { pa, len: buf.len() })?;
        let a = &s.allocs[&base];
        match (view, &a.poc) {
            (View::PointOfCoherency, Some(poc)) => {
                buf.copy_from_slice(&poc[off..off + buf.len()]);
            }
            (View::PointOfCoherency, None) => buf.fill(0),
            (View::Coherent, _) => {
                for (i, b) in buf.iter_mut().enumerate() {
                    let p = a.va.as_ptr().wrapping_add(off + i);
                    // SAFETY: `find` proved off + i < the allocation's size; the block is live
                    // while it is in `allocs`, which we hold locked.
                    *b = unsafe { p.read_volatile() };
                }
            }
        }
        Ok(())
    }

    /// Reads a little-endian u64 of GIC-visible memory.
    ///
    /// # Errors
    /// [`MemFault`].
    pub fn read_u64(&self, pa: u64, view: View) -> Result<u64, MemFault> {
        let mut b = [0u8; 8];
        self.read(pa, &mut b, view)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A device write: updates both the live bytes and the point-of-coherency view.
    ///
    /// # Errors
    /// [`MemFault`] when no live allocation covers the range.
    pub fn device_write(&self, pa: u64, data: &[u8]) -> Result<(), MemFault> {
        let mut s = self.lock();
        let (base, off) = Self::find(&s, pa, data.len()).ok_or(MemFault {
            pa,
            len: data.len(),
        })?;
        let a = s.allocs.get_mut(&base).ok_or(MemFault {
            pa,
            len: data.len(),
        })?;
        for (i, &b) in data.iter().enumerate() {
            let p = a.va.as_ptr().wrapping_add(off + i);
            // SAFETY: in bounds as `find` proved; the block is live while locked in `allocs`.
            unsafe { p.write_volatile(b) };
        }
        let size = a.layout.size();
        let poc = a.poc.get_or_insert_with(|| vec![0; size]);
        poc[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Whether a physical range lies inside one live allocation.
    pub fn is_live(&self, pa: u64, len: usize) -> bool {
        Self::find(&self.lock(), pa, len).is_some()
    }

    fn clean(&self, va: NonNull<u8>, len: usize, inval: bool) {
        let mut s = self.lock();
        let Some((base, off)) = Self::find_va(&s, va, len) else {
            // Cleaning memory that is not DMA memory is harmless on hardware: record it with
            // an impossible address so a test can see it.
            if s.recording {
                let pa = u64::MAX;
                s.events.push(if inval {
                    Event::CleanInval { pa, len }
                } else {
                    Event::Clean { pa, len }
                });
            }
            return;
        };
        let recording = s.recording;
        let Some(a) = s.allocs.get_mut(&base) else {
            return;
        };
        let size = a.layout.size();
        let poc = a.poc.get_or_insert_with(|| vec![0; size]);
        for (i, p) in poc[off..off + len].iter_mut().enumerate() {
            let src = a.va.as_ptr().wrapping_add(off + i);
            // SAFETY: in bounds as `find_va` proved; the block is live while locked.
            *p = unsafe { src.read_volatile() };
        }
        if recording {
            let pa = base + off as u64;
            s.events.push(if inval {
                Event::CleanInval { pa, len }
            } else {
                Event::Clean { pa, len }
            });
        }
    }
}

// SAFETY: `alloc_zeroed` returns fresh, zeroed, exclusively owned host memory of the requested
// size and alignment (both host and fake physical addresses are aligned to the layout), and the
// point-of-coherency view starts as zeros; `dealloc` frees exactly what was allocated.
unsafe impl DmaAlloc for FakePlatform {
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError> {
        let err = AllocError {
            size: layout.size(),
            align: layout.align(),
        };
        let mut s = self.lock();
        let index = s.allocations;
        s.allocations += 1;
        let f = s.faults;
        if f.fail_at == Some(index)
            || f.fail_from.is_some_and(|n| index >= n)
            || f.capacity.is_some_and(|c| s.live_bytes + layout.size() > c)
            || layout.size() == 0
        {
            return Err(err);
        }
        // SAFETY: the layout is non-zero-sized (checked above).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let va = NonNull::new(ptr).ok_or(err)?;
        let align = layout.align() as u64;
        let pa = s.next_pa.next_multiple_of(align);
        // Leave a guard gap so an access just past an allocation faults.
        s.next_pa = pa + layout.size() as u64 + 0x1000;
        s.allocs.insert(
            pa,
            Alloc {
                va,
                layout,
                poc: None,
            },
        );
        s.live_bytes += layout.size();
        s.peak_bytes = s.peak_bytes.max(s.live_bytes);
        if s.recording {
            s.events.push(Event::Alloc {
                pa,
                size: layout.size(),
                align: layout.align(),
            });
        }
        Ok(DmaRegion {
            va,
            pa: PhysAddr::new(pa),
            layout,
        })
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        let mut s = self.lock();
        let Some(a) = s.allocs.remove(&region.pa.get()) else {
            // Not ours: freeing it would be undefined behaviour; leak it and make the test
            // see it.
            s.events.push(Event::Free {
                pa: u64::MAX,
                size: region.layout.size(),
            });
            return;
        };
        s.live_bytes -= a.layout.size();
        if s.recording {
            s.events.push(Event::Free {
                pa: region.pa.get(),
                size: a.layout.size(),
            });
        }
        // SAFETY: `a.va` came from `std::alloc::alloc_zeroed(a.layout)` and is removed from
        // `allocs`, so it is freed once.
        unsafe { std::alloc::dealloc(a.va.as_ptr(), a.layout) };
    }

    fn virt_to_phys(&self, va: NonNull<u8>) -> Option<PhysAddr> {
        let s = self.lock();
        Self::find_va(&s, va, 1).map(|(pa, off)| PhysAddr::new(pa + off as u64))
    }

    fn note_write(&self, pa: PhysAddr, len: usize) {
        let e = Event::Write { pa: pa.get(), len };
        self.record(e.clone());
        self.observe(&e);
    }
}

impl crate::memory::GicMemory for FakePlatform {
    fn read(&self, pa: u64, buf: &mut [u8], view: View) -> Result<(), MemFault> {
        FakePlatform::read(self, pa, buf, view)
    }
    fn device_write(&self, pa: u64, data: &[u8]) -> Result<(), MemFault> {
        FakePlatform::device_write(self, pa, data)
    }
    fn is_live(&self, pa: u64, len: usize) -> bool {
        FakePlatform::is_live(self, pa, len)
    }
    fn record(&self, e: Event) {
        FakePlatform::record(self, e);
    }
}

impl CacheMaint for FakePlatform {
    fn clean_to_poc(&self, va: NonNull<u8>, len: usize) {
        self.clean(va, len, false);
    }
    fn clean_inval_to_poc(&self, va: NonNull<u8>, len: usize) {
        self.clean(va, len, true);
    }
    fn dsb_ishst(&self) {
        self.record(Event::DsbIshst);
        self.observe(&Event::DsbIshst);
    }
    fn dsb_sy(&self) {
        self.record(Event::DsbSy);
        self.observe(&Event::DsbSy);
    }
}

impl Clock for FakePlatform {
    fn now(&self) -> Instant {
        self.clock.now()
    }
    fn relax(&self) {
        self.clock.relax();
    }
}

impl Drop for State {
    fn drop(&mut self) {
        for (_, a) in core::mem::take(&mut self.allocs) {
            // SAFETY: every entry still in `allocs` is a live block from `alloc_zeroed`; the
            // last handle is going away, so nothing can use it any more.
            unsafe { std::alloc::dealloc(a.va.as_ptr(), a.layout) };
        }
    }
}

/// A clock that advances by a fixed step every time it is read, so bounded waits end
/// deterministically, plus explicit [`FakeClock::advance`].
#[derive(Clone, Debug)]
pub struct FakeClock {
    now: Arc<AtomicU64>,
    step: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
}

impl FakeClock {
    /// A clock at 0 that steps `step_ns` per reading.
    pub fn new(step_ns: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(0)),
            step: Arc::new(AtomicU64::new(step_ns)),
            reads: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, ns: u64) {
        self.now.fetch_add(ns, Ordering::SeqCst);
    }

    /// Changes the step per reading.
    pub fn set_step(&self, ns: u64) {
        self.step.store(ns, Ordering::SeqCst);
    }

    /// How many times the clock was read.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// The time without advancing it.
    pub fn peek(&self) -> Instant {
        Instant(self.now.load(Ordering::SeqCst))
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let step = self.step.load(Ordering::SeqCst);
        Instant(self.now.fetch_add(step, Ordering::SeqCst))
    }
    fn relax(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use its_core::platform::{DmaBuf, poll_until};

    #[test]
    fn alloc_is_zeroed_aligned_and_tracked() {
        let p = FakePlatform::new();
        let b = DmaBuf::new(
            p.clone(),
            Layout::from_size_align(0x1_0000, 0x1_0000).unwrap(),
        )
        .unwrap();
        assert!(b.pa().is_aligned(0x1_0000));
        assert_eq!(b.read_u64(0x100).unwrap(), 0);
        assert_eq!(p.live_bytes(), 0x1_0000);
        assert_eq!(p.virt_to_phys(b.va()), Some(b.pa()));
        drop(b);
        assert_eq!(p.live_bytes(), 0);
        assert_eq!(p.live_allocations(), 0);
    }

    #[test]
    fn physical_addresses_are_not_reused() {
        let p = FakePlatform::new();
        let l = Layout::from_size_align(4096, 4096).unwrap();
        let a = DmaBuf::new(p.clone(), l).unwrap();
        let pa = a.pa().get();
        drop(a);
        assert!(!p.is_live(pa, 8));
        let b = DmaBuf::new(p.clone(), l).unwrap();
        assert_ne!(b.pa().get(), pa);
        assert_eq!(p.read_u64(pa, View::Coherent), Err(MemFault { pa, len: 8 }));
    }

    #[test]
    fn poc_view_needs_a_clean() {
        let p = FakePlatform::new();
        let mut b = DmaBuf::new(p.clone(), Layout::from_size_align(64, 64).unwrap()).unwrap();
        b.write_u64(8, 0xdead).unwrap();
        let pa = b.pa().get();
        assert_eq!(p.read_u64(pa + 8, View::Coherent), Ok(0xdead));
        assert_eq!(p.read_u64(pa + 8, View::PointOfCoherency), Ok(0));
        b.clean(8, 8);
        assert_eq!(p.read_u64(pa + 8, View::PointOfCoherency), Ok(0xdead));
        let ev = p.events();
        assert!(matches!(
            ev[..],
            [
                Event::Alloc { .. },
                Event::Write { len: 8, .. },
                Event::Clean { len: 8, .. },
            ]
        ));
    }

    #[test]
    fn device_writes_are_visible_to_the_cpu() {
        let p = FakePlatform::new();
        let b = DmaBuf::new(p.clone(), Layout::from_size_align(64, 8).unwrap()).unwrap();
        p.device_write(b.pa().get() + 16, &7u64.to_le_bytes())
            .unwrap();
        assert_eq!(b.read_u64(16).unwrap(), 7);
        assert!(p.device_write(b.pa().get() + 60, &[0; 8]).is_err());
    }

    #[test]
    fn alloc_faults() {
        let p = FakePlatform::new();
        let l = Layout::from_size_align(4096, 4096).unwrap();
        p.fail_next_alloc();
        assert!(DmaBuf::new(p.clone(), l).is_err());
        assert!(DmaBuf::new(p.clone(), l).is_ok());
        p.set_faults(AllocFaults {
            capacity: Some(8192),
            ..Default::default()
        });
        let _a = DmaBuf::new(p.clone(), l).unwrap();
        let _b = DmaBuf::new(p.clone(), l).unwrap();
        assert!(DmaBuf::new(p.clone(), l).is_err());
    }

    #[test]
    fn bounded_poll_times_out_on_the_fake_clock() {
        let c = FakeClock::new(1_000_000);
        assert_eq!(
            poll_until(&c, Duration::from_millis(10), || false).map_err(|_| ()),
            Err(())
        );
        assert!(c.reads() >= 10);
        let mut n = 0;
        assert!(
            poll_until(&c, Duration::from_millis(10), || {
                n += 1;
                n == 3
            })
            .is_ok()
        );
    }

    #[test]
    fn dma_buf_bounds() {
        let p = FakePlatform::new();
        let mut b = DmaBuf::new(p, Layout::from_size_align(16, 8).unwrap()).unwrap();
        assert!(b.write_u64(8, 1).is_ok());
        assert!(b.write_u64(12, 1).is_err());
        assert!(b.write_u64(16, 1).is_err());
        assert!(b.write_u64(usize::MAX - 3, 1).is_err());
        assert!(b.write_u8(15, 1).is_ok());
        assert!(b.write_bytes(10, &[0; 7]).is_err());
        assert!(b.fill(0, 16, 0xff).is_ok());
        assert_eq!(b.read_u64(0).unwrap(), u64::MAX);
    }
}
