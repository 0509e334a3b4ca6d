// SPDX-License-Identifier: MIT OR Apache-2.0
//! The interrupt-context story, enforced: a doorbell interrupt taken on a CPU while that CPU
//! holds the ITS command queue's lock is handled at once. The test platform runs the
//! doorbell interrupt path from inside the barrier the queue issues before its GITS_CWRITER
//! write, which the queue does with its lock held, as an interrupt would preempt the CPU
//! there. Were `Doorbells::handle` to take the queue lock (or any lock the posting CPU
//! holds), it would spin for ever: the scenario runs on its own thread, and a deadlock fails
//! the test after a bounded wait.

use core::time::Duration;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use doorbell::{DoorbellConfig, Doorbells};
use its_cmdq::{Its, Lpis};
use its_core::ids::{DeviceId, VpeId};
use its_model::{Event, FakePlatform, GicModel, ModelConfig};
use its_testkit::Settings;
use its_testkit::rig::{dist_caps, its_config, redists};

type Hook = Box<dyn FnOnce() + Send>;

#[test]
fn a_doorbell_taken_while_the_queue_lock_is_held_is_handled() {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let cfg = ModelConfig::qemu(1);
        let plat = FakePlatform::new();
        // A one-shot hook run at the next `DSB ISHST` (the barrier the command queue issues,
        // lock held, before it writes GITS_CWRITER); taken out first, so the hook's own
        // barriers do not run it again.
        let hook: Arc<Mutex<Option<Hook>>> = Arc::new(Mutex::new(None));
        let h = hook.clone();
        plat.set_observer(Some(Arc::new(move |e: &Event| {
            if *e == Event::DsbIshst {
                let once = h.lock().unwrap().take();
                if let Some(f) = once {
                    f();
                }
            }
        })));
        let model = GicModel::new(cfg.clone(), plat.clone());
        let lpis: &'static Lpis<FakePlatform> =
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
        *hook.lock().unwrap() = Some(Box::new(move || {
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
