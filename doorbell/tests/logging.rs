// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `log` events of the doorbells (the `log` feature, turned on by the test kit): bring-up
//! and shut-down at info, blocks at debug, each doorbell taken at trace (the only level the
//! interrupt path uses), a refused shut-down at warn.

use doorbell::{DoorbellConfig, Doorbells};
use its_core::ids::{DeviceId, VpeId};
use its_model::ModelConfig;
use its_testkit::Rig;
use its_testkit::logcap::{self, assert_has};
use log::Level;

#[test]
fn doorbells_log_their_life_and_the_interrupt_path_only_at_trace() {
    let r = Rig::new(ModelConfig::qemu(2));
    let (dbs, records) = logcap::capture(|| {
        Doorbells::new(
            r.its(),
            &r.lpis,
            DoorbellConfig::proxy(DeviceId::new(0xffff), 8),
        )
        .unwrap()
    });
    assert_has(&records, Level::Info, "doorbell: 8 doorbells at LPIs");
    assert_has(&records, Level::Info, "through a proxy device");
    let (b, records) = logcap::capture(|| {
        dbs.alloc_block(&[(VpeId::new(3), 0), (VpeId::new(4), 1)])
            .unwrap()
    });
    assert_has(&records, Level::Debug, " allocated");
    let db = b.lpi(1).unwrap();
    dbs.set_enabled(db, true, None).unwrap();
    let (vpe, records) = logcap::capture(|| dbs.handle(db.get()));
    assert_eq!(vpe, Some(VpeId::new(4)));
    assert_has(
        &records,
        Level::Trace,
        &format!("LPI {} rang for vPE 4", db.get()),
    );
    assert!(
        records.iter().all(|r| r.level == Level::Trace),
        "the interrupt path logs at trace only: {records:?}"
    );
    // Refused while a block is allocated, then done.
    let (e, records) = logcap::capture(|| dbs.shutdown());
    assert_eq!(e, Err(doorbell::DoorbellError::InUse(2)));
    assert_has(
        &records,
        Level::Warn,
        "shut-down refused: 2 doorbells still allocated",
    );
    let (_, records) = logcap::capture(|| dbs.free_block(b).unwrap());
    assert_has(&records, Level::Debug, " freed");
    let (ok, records) = logcap::capture(|| dbs.shutdown());
    ok.unwrap();
    assert_has(&records, Level::Info, "doorbell: shut down, LPIs");
    r.model.assert_no_errors();
}
