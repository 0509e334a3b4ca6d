// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `log` events of the vITS (the `log` feature, turned on by the test kit): the vITS made
//! and torn down at info, each guest command at trace, a guest's bad command at warn.

mod common;

use common::*;
use its_testkit::logcap::{self, assert_has};
use log::Level;
use vits::{AssignedDevice, DevicePool, Recorder, Vits, VitsConfig};

type V = Vits<Recorder<256>, 4, 8, 8>;

#[test]
fn guest_commands_are_traced_and_bad_ones_warned() {
    let assigned = [AssignedDevice::identity(dev(0x8))];
    let cfg = VitsConfig::new(
        2,
        16,
        &assigned,
        DevicePool {
            first: dev(0xf000),
            count: 2,
        },
    );
    let (its, records) = logcap::capture(|| V::new(cfg, Recorder::new()).unwrap());
    assert_has(
        &records,
        Level::Info,
        "vits: vITS for 2 vCPUs, 1 assigned devices",
    );
    let mut its = its;
    let mut ram = Ram::new();
    let mut g = linux_probe(&mut its, &mut ram);
    let (_, records) =
        logcap::capture(|| g.send(&mut its, &mut ram, &[mapc(0, 0, true), mapd(0x8, 4, true)]));
    assert_has(&records, Level::Trace, "guest command MAPC at offset");
    assert_has(&records, Level::Trace, "guest command MAPD at offset");
    assert!(records.iter().all(|r| r.level > Level::Warn), "{records:?}");
    // An INT for a device the guest never mapped: the guest's error.
    let (_, records) = logcap::capture(|| g.send(&mut its, &mut ram, &[int(0x77, 0)]));
    assert_has(&records, Level::Warn, "vits: guest command error");
    assert_has(&records, Level::Warn, "opcode 0x03");
    assert_has(&records, Level::Trace, "guest command INT at offset");
    let (r, records) = logcap::capture(|| its.teardown());
    r.unwrap();
    assert_has(&records, Level::Info, "vits: torn down");
}
