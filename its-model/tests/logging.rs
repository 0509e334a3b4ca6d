// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `log` events of the model (the `log` feature, turned on by the test kit): each ITS
//! command it runs at trace, each error it records at warn.

use its_core::ids::DeviceId;
use its_model::ModelConfig;
use its_testkit::Rig;
use its_testkit::logcap::{self, assert_has};
use log::Level;

#[test]
fn commands_are_traced_and_errors_warned() {
    let r = Rig::new(ModelConfig::qemu(1));
    let (dev, records) = logcap::capture(|| r.its().map_device(DeviceId::new(5), 2).unwrap());
    assert_has(&records, Level::Trace, "its-model: its0 runs MAPD");
    assert!(records.iter().all(|r| r.level > Level::Warn), "{records:?}");
    r.model.stall_at(0, Some(r.model.counters(0).0));
    let (e, records) = logcap::capture(|| r.its().invall(0));
    assert!(e.is_err());
    assert_has(&records, Level::Warn, "its-model: its0: process_cmdq:");
    assert_has(&records, Level::Warn, "(injected)");
    r.model.clear_errors();
    let mut dev = dev;
    r.its().unmap_device(&mut dev).unwrap();
}
