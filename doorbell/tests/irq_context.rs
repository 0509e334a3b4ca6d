// SPDX-License-Identifier: MIT OR Apache-2.0
//! The interrupt-context story, enforced: a doorbell interrupt taken on a CPU while that CPU
//! holds the ITS command queue's lock is handled at once. The test platform runs the
//! doorbell interrupt path from inside the barrier the queue issues before its GITS_CWRITER
//! write, which the queue does with its lock held, as an interrupt would preempt the CPU
//! there. Were `Doorbells::handle` to take the queue lock (or any lock the posting CPU
//! holds), it would spin for ever: the scenario runs on its own thread, and a deadlock fails
//! the test after a bounded wait.
// The test platform forwards `DmaAlloc`, an unsafe trait, to the model's platform.
#![allow(unsafe_code)]

use core::ptr::NonNull;
use core::time::Duration;
use std::alloc::Layout;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use doorbell::{DoorbellConfig, Doorbells};
use its_cmdq::{Its, Lpis};
use its_core::addr::PhysAddr;
use its_core::ids::{DeviceId, VpeId};
use its_core::platform::{AllocError, CacheMaint, Clock, DmaAlloc, DmaRegion, Instant};
use its_model::{FakePlatform, GicModel, ModelConfig};
use its_testkit::Settings;
use its_testkit::rig::{dist_caps, its_config, redists};

type Hook = Box<dyn FnOnce() + Send>;

/// The model's platform, running a one-shot hook at the next `DSB ISHST` (the barrier the
/// command queue issues, lock held, before it writes GITS_CWRITER).
#[derive(Clone)]
struct Hooked {
    inner: FakePlatform,
    hook: Arc<Mutex<Option<Hook>>>,
}

// SAFETY: every method forwards to `FakePlatform`, which meets `DmaAlloc`'s contract.
unsafe impl DmaAlloc for Hooked {
    fn alloc_zeroed(&self, layout: Layout) -> Result<DmaRegion, AllocError> {
        self.inner.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, region: DmaRegion) {
        // SAFETY: our caller's promise is `FakePlatform::dealloc`'s.
        unsafe { self.inner.dealloc(region) }
    }
    fn virt_to_phys(&self, va: NonNull<u8>) -> Option<PhysAddr> {
        self.inner.virt_to_phys(va)
    }
    fn note_write(&self, pa: PhysAddr, len: usize) {
        self.inner.note_write(pa, len);
    }
}

impl CacheMaint for Hooked {
    fn clean_to_poc(&self, va: NonNull<u8>, len: usize) {
        self.inner.clean_to_poc(va, len);
    }
    fn clean_inval_to_poc(&self, va: NonNull<u8>, len: usize) {
        self.inner.clean_inval_to_poc(va, len);
    }
    fn dsb_ishst(&self) {
        self.inner.dsb_ishst();
        // Taken out first: the hook's own barriers do not run it again.
        let hook = self.hook.lock().unwrap().take();
        if let Some(h) = hook {
            h();
        }
    }
    fn dsb_sy(&self) {
        self.inner.dsb_sy();
    }
}

impl Clock for Hooked {
    fn now(&self) -> Instant {
        self.inner.now()
    }
    fn relax(&self) {
        self.inner.relax();
    }
}

#[test]
fn a_doorbell_taken_while_the_queue_lock_is_held_is_handled() {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let cfg = ModelConfig::qemu(1);
        let plat = Hooked {
            inner: FakePlatform::new(),
            hook: Arc::new(Mutex::new(None)),
        };
        let model = GicModel::new(cfg.clone(), plat.inner.clone());
        let lpis: &'static Lpis<Hooked> =
            Box::leak(Box::new(Lpis::new(&dist_caps(&cfg), plat.clone()).unwrap()));
        let pending = lpis
            .init_redistributor(&mut model.redist(0), Duration::from_secs(1))
            .unwrap();
        let its = Box::leak(Box::new(
            Its::new(
                model.its(0),
                plat.clone(),
                &redists(&model),
                its_config(&cfg, &Settings::default(), 0),
            )
            .unwrap(),
        ));
        let dbs: &'static Doorbells<'static, _, _> = Box::leak(Box::new(
            Doorbells::new(its, lpis, DoorbellConfig::proxy(DeviceId::new(0xffff), 4)).unwrap(),
        ));
        let block = dbs.alloc_block(&[(VpeId::new(9), 0)]).unwrap();
        let db = block.lpi(0).unwrap();
        dbs.set_enabled(db, true, None).unwrap();
        // The doorbell "interrupt", inside the next command batch's barrier.
        let taken = Arc::new(Mutex::new(None));
        let t = taken.clone();
        *plat.hook.lock().unwrap() = Some(Box::new(move || {
            *t.lock().unwrap() = Some(dbs.handle(db.get()));
        }));
        its.invall(0).unwrap();
        let got = *taken.lock().unwrap();
        done.send((got, dbs.is_enabled(db), dbs.stats().rings))
            .unwrap();
        model.assert_no_errors();
        drop(pending);
    });
    let (got, enabled, rings) = result
        .recv_timeout(Duration::from_secs(30))
        .expect("the doorbell path deadlocked against the queue lock");
    assert_eq!(got, Some(Some(VpeId::new(9))), "handled, inside the batch");
    assert!(!enabled, "the interrupt path disabled the doorbell");
    assert_eq!(rings, 1);
}
