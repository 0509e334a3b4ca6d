// SPDX-License-Identifier: MIT OR Apache-2.0
//! The model with a hypervisor's own allocator: its memory reaches the model through
//! `its_model::TrackedDma`, and when it does not, the model's own error (the cause) fails the
//! test rather than a driver error that hides it.
// The stand-in allocator hands out host memory, as a DMA allocator does; every block says
// whose promise it relies on.
#![allow(unsafe_code)]

use core::alloc::Layout;
use core::ptr::NonNull;
use core::time::Duration;

use its_cmdq::{Its, ItsConfig, ItsError, Lpis};
use its_core::addr::PhysAddr;
use its_core::ids::DeviceId;
use its_core::platform::{AllocError, CacheMaint, Clock, DmaAlloc, DmaRegion, Instant};
use its_model::{FakeClock, FakePlatform, GicModel, ModelConfig, TrackedDma};
use its_testkit::rig::{dist_caps, redists};

/// A hypervisor's allocator, unrelated to the model's fake platform: host memory whose
/// physical address is its host address, no cache to maintain, a stepping clock.
#[derive(Clone)]
struct HeapDma {
    clock: FakeClock,
}

// SAFETY: `alloc_zeroed` returns fresh zeroed host memory of the layout, exclusively the
// caller's until `dealloc`, which frees exactly that; the "physical" address is the host
// address, aligned as the layout asks.
unsafe impl DmaAlloc for HeapDma {
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError> {
        let err = AllocError {
            size: layout.size(),
            align: layout.align(),
        };
        if layout.size() == 0 {
            return Err(err);
        }
        // SAFETY: the layout is not zero-sized (checked above).
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let va = NonNull::new(p).ok_or(err)?;
        Ok(DmaRegion {
            va,
            pa: PhysAddr::new(p as u64),
            layout,
        })
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        // SAFETY: our caller promised the region came from `alloc_zeroed` above (so from
        // `std::alloc::alloc_zeroed` with this layout) and is freed once.
        unsafe { std::alloc::dealloc(region.va.as_ptr(), region.layout) };
    }

    fn virt_to_phys(&self, va: NonNull<u8>) -> Option<PhysAddr> {
        Some(PhysAddr::new(va.as_ptr() as u64))
    }
}

impl CacheMaint for HeapDma {
    fn clean_to_poc(&self, _: NonNull<u8>, _: usize) {}
    fn clean_inval_to_poc(&self, _: NonNull<u8>, _: usize) {}
    fn dsb_ishst(&self) {}
    fn dsb_sy(&self) {}
}

impl Clock for HeapDma {
    fn now(&self) -> Instant {
        self.clock.now()
    }
}

fn config(cfg: &ModelConfig) -> ItsConfig {
    let mut c = ItsConfig::new(dist_caps(cfg));
    c.queue.completion_timeout = Duration::from_millis(5);
    c.queue.full_timeout = Duration::from_millis(5);
    c.quiescent_timeout = Duration::from_millis(5);
    c
}

/// The model reads the driver's memory through `TrackedDma`, whatever the allocator: bring-up,
/// a device, an LPI delivered.
#[test]
fn any_allocator_works_through_tracked_dma() {
    let cfg = ModelConfig::hardware(1);
    let dma = TrackedDma::new(HeapDma {
        clock: FakeClock::new(1_000),
    });
    let model = GicModel::with_memory(cfg.clone(), dma.clone());
    let lpis = Lpis::new(&dist_caps(&cfg), dma.clone()).unwrap();
    let _pending = lpis
        .init_redistributor(&mut model.redist(0), Duration::from_millis(5))
        .unwrap();
    let its = Its::new(model.its(0), dma.clone(), &redists(&model), config(&cfg)).unwrap();
    let lpi = lpis.alloc(1).unwrap().base;
    lpis.configure(lpi, 0xa0, true).unwrap();
    let mut dev = its.map_device(DeviceId::new(7), 2).unwrap();
    its.map_event(&mut dev, 1, lpi, 0).unwrap();
    its.inv_event(&dev, 1).unwrap();
    its.int_event(&dev, 1).unwrap();
    assert_eq!(model.take_lpi(0), Some(lpi.get()));
    its.unmap_device(&mut dev).unwrap();
    its.disable(Duration::from_millis(5)).unwrap();
    model.assert_no_errors();
}

/// The adopter's report: a model given other memory than the driver's (here a fresh fake
/// platform) cannot read the driver's tables. The driver sees only a stalled queue; the
/// model's own error, which names the cause, must fail the test too, not stay in its log.
#[test]
fn the_models_error_reaches_the_test_that_ignores_it() {
    let cfg = ModelConfig::qemu(1);
    let dma = HeapDma {
        clock: FakeClock::new(1_000),
    };
    let model = GicModel::new(cfg.clone(), FakePlatform::new());
    let lpis = Lpis::new(&dist_caps(&cfg), dma.clone()).unwrap();
    let _pending = lpis.init_redistributor(&mut model.redist(0), Duration::from_millis(5));
    let e = Its::new(model.its(0), dma, &redists(&model), config(&cfg)).err();
    assert!(
        matches!(e, Some(ItsError::Stalled { .. })),
        "the driver sees a stall: {e:?}"
    );
    // A test that goes no further than the driver's error: the model's goes with it.
    let dropped = std::panic::catch_unwind(move || drop(model));
    let msg = dropped
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("dropping the model with unchecked errors panics");
    assert!(msg.contains("which is not allocated memory"), "{msg}");
}
