// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `log` events of its-core (the `log` feature, turned on by the test kit): a bounded
//! wait that gives up and a refused DMA allocation at warn, the GIC found in a device tree at
//! info.

// The refusing allocator implements `DmaAlloc`, an unsafe trait.
#![allow(unsafe_code)]

use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::NonNull;
use core::time::Duration;

use its_core::addr::PhysAddr;
use its_core::platform::{AllocError, Clock, DmaAlloc, DmaBuf, DmaRegion, Instant, poll_until};
use its_testkit::logcap::{self, assert_has};
use log::Level;

/// A clock that advances 1 ms at every reading.
struct Ticks(Cell<u64>);

impl Clock for Ticks {
    fn now(&self) -> Instant {
        let t = self.0.get() + 1_000_000;
        self.0.set(t);
        Instant(t)
    }
}

#[test]
fn a_bounded_wait_that_gives_up_is_a_warning() {
    let clock = Ticks(Cell::new(0));
    let (r, records) = logcap::capture(|| poll_until(&clock, Duration::from_millis(5), || false));
    let e = r.unwrap_err();
    assert!(e.waited_ns >= 5_000_000);
    assert_has(&records, Level::Warn, "bounded wait gave up after");
    // A wait that succeeds says nothing.
    let (r, records) = logcap::capture(|| poll_until(&clock, Duration::from_millis(5), || true));
    assert!(r.is_ok());
    assert!(records.is_empty(), "{records:?}");
}

/// An allocator with no memory.
struct Empty;

// SAFETY: it never hands out memory, so no region can be misused or freed twice.
unsafe impl DmaAlloc for Empty {
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError> {
        Err(AllocError {
            size: layout.size(),
            align: layout.align(),
        })
    }

    unsafe fn dealloc(&self, _: DmaRegion) {
        unreachable!("nothing was allocated")
    }

    fn virt_to_phys(&self, _: NonNull<u8>) -> Option<PhysAddr> {
        None
    }
}

#[test]
fn a_refused_allocation_is_a_warning() {
    let layout = Layout::from_size_align(0x1000, 0x1000).unwrap();
    let (r, records) = logcap::capture(|| DmaBuf::new(Empty, layout));
    assert_eq!(
        r.err(),
        Some(AllocError {
            size: 0x1000,
            align: 0x1000
        })
    );
    assert_has(&records, Level::Warn, "DMA allocation failed");
}

#[cfg(feature = "fdt")]
#[test]
fn the_gic_found_in_a_device_tree_is_logged_at_info() {
    use its_core::discover::GicDescription;
    let dtb = include_bytes!("../../fixtures/dtb/virt-gicv4-smp4-qemu7.2.22.dtb");
    let (gic, records) = logcap::capture(|| GicDescription::from_fdt(dtb));
    let gic = gic.unwrap();
    assert_eq!(gic.its().len(), 1);
    assert_has(&records, Level::Info, "GICv3 in the device tree");
    assert_has(&records, Level::Info, "1 ITSs");
}
