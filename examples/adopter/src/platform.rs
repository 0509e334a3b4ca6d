// SPDX-License-Identifier: MIT OR Apache-2.0
//! The platform: DMA memory from a static arena, cache maintenance, a clock.
//!
//! The arena is ordinary memory whose physical address is its address (an identity-mapped
//! hypervisor); the allocator hands out whole 4 KiB pages, first fit, aligned up to 64 KiB.
//! The GIC here is coherent (QEMU's, and the host model's), so cache maintenance is nothing
//! and the barriers are fences; on a machine they would be `DC CVAC` and `DSB`s.
// The arena hands out raw memory: this module is where the hypervisor's unsafe code lives.
#![allow(unsafe_code)]

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering, fence};

use its_core::addr::PhysAddr;
use its_core::platform::{AllocError, CacheMaint, Clock, DmaAlloc, DmaRegion, Instant};
use spin::Mutex;

const PAGE: usize = 0x1000;
/// 4 MiB.
const PAGES: usize = 1024;
/// The largest alignment the drivers ask for (64 KiB: VPTs, 64 KiB table pages).
const MAX_ALIGN: usize = 0x1_0000;

#[repr(C, align(65536))]
struct Arena(UnsafeCell<[u8; PAGE * PAGES]>);

// SAFETY: the bytes are reached only through `ArenaDma`, which gives each page to one owner
// at a time (the `USED` bitmap, under its lock).
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; PAGE * PAGES]));
/// One bit per page of the arena, set while the page is allocated.
static USED: Mutex<[u64; PAGES / 64]> = Mutex::new([0; PAGES / 64]);
/// The most pages allocated at once.
static PEAK: AtomicU64 = AtomicU64::new(0);
/// Regions allocated and not freed.
static LIVE: AtomicU64 = AtomicU64::new(0);
/// The clock: nanoseconds, a microsecond per reading (on a machine, CNTPCT_EL0 scaled).
static TICKS: AtomicU64 = AtomicU64::new(0);

fn is_used(map: &[u64], page: usize) -> bool {
    map[page / 64] & (1 << (page % 64)) != 0
}

fn mark(map: &mut [u64], pages: core::ops::Range<usize>, used: bool) {
    for p in pages {
        if used {
            map[p / 64] |= 1 << (p % 64);
        } else {
            map[p / 64] &= !(1 << (p % 64));
        }
    }
}

/// The hypervisor's DMA allocator, and its platform for the drivers.
#[derive(Clone, Copy, Debug, Default)]
pub struct ArenaDma;

impl ArenaDma {
    /// Pages allocated now.
    pub fn pages_in_use() -> usize {
        USED.lock().iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The most pages allocated at once so far.
    pub fn peak_pages() -> usize {
        PEAK.load(Ordering::Relaxed) as usize
    }

    /// Regions allocated and not freed.
    pub fn live_regions() -> usize {
        LIVE.load(Ordering::Relaxed) as usize
    }
}

// SAFETY: `alloc_zeroed` hands out free pages of the static arena, marked used under the
// lock before they are touched, so no two live regions overlap; it zeroes them before
// returning them; runs start on multiples of the alignment asked (at most 64 KiB, the
// arena's own), and the physical address is the address, so both are aligned; the memory is
// coherent RAM, so the GIC sees the zeros. `dealloc` marks exactly the region's pages free.
unsafe impl DmaAlloc for ArenaDma {
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError> {
        let err = AllocError {
            size: layout.size(),
            align: layout.align(),
        };
        if layout.size() == 0 || layout.align() > MAX_ALIGN {
            return Err(err);
        }
        let n = layout.size().div_ceil(PAGE);
        let step = (layout.align() / PAGE).max(1);
        let mut used = USED.lock();
        let first = (0..PAGES)
            .step_by(step)
            .find(|&p| p + n <= PAGES && (p..p + n).all(|q| !is_used(&*used, q)))
            .ok_or(err)?;
        mark(&mut *used, first..first + n, true);
        let in_use = used.iter().map(|w| w.count_ones() as u64).sum();
        drop(used);
        PEAK.fetch_max(in_use, Ordering::Relaxed);
        LIVE.fetch_add(1, Ordering::Relaxed);
        let va = ARENA.0.get().cast::<u8>().wrapping_add(first * PAGE);
        // SAFETY: pages `first .. first + n` lie inside the arena and are ours alone from the
        // mark above until `dealloc`.
        unsafe { va.write_bytes(0, n * PAGE) };
        let va = NonNull::new(va).ok_or(err)?;
        Ok(DmaRegion {
            va,
            pa: PhysAddr::new(va.as_ptr() as u64),
            layout,
        })
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        let base = ARENA.0.get() as usize;
        let first = (region.va.as_ptr() as usize).wrapping_sub(base) / PAGE;
        let n = region.layout.size().div_ceil(PAGE);
        if first + n <= PAGES {
            mark(&mut *USED.lock(), first..first + n, false);
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn virt_to_phys(&self, va: NonNull<u8>) -> Option<PhysAddr> {
        let base = ARENA.0.get() as usize;
        let a = va.as_ptr() as usize;
        (base..base + PAGE * PAGES)
            .contains(&a)
            .then(|| PhysAddr::new(a as u64))
    }
}

impl CacheMaint for ArenaDma {
    fn clean_to_poc(&self, _: NonNull<u8>, _: usize) {}
    fn clean_inval_to_poc(&self, _: NonNull<u8>, _: usize) {}
    fn dsb_ishst(&self) {
        fence(Ordering::Release);
    }
    fn dsb_sy(&self) {
        fence(Ordering::SeqCst);
    }
}

impl Clock for ArenaDma {
    fn now(&self) -> Instant {
        Instant(TICKS.fetch_add(1_000, Ordering::Relaxed))
    }
}
