// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `log` events of the ITS driver (the `log` feature, turned on by the test kit): a
//! bring-up summary at info, each batch at trace, devices at debug, a stall at warn, a
//! timeout at error, shut-down at info (refused: warn).

use core::time::Duration;

use its_cmdq::SyncTarget;
use its_core::cmd::Command;
use its_core::ids::{CollectionId, DeviceId, Lpi, ProcessorNumber, RdBase};
use its_model::{Delay, ModelConfig};
use its_testkit::logcap::{self, assert_has};
use its_testkit::{Rig, Settings};
use log::Level;

#[test]
fn bring_up_is_summed_up_at_info_and_batches_at_trace() {
    let (r, records) = logcap::capture(|| Rig::new(ModelConfig::qemu(2)));
    assert_has(&records, Level::Info, "up: 2 CPUs, device table");
    assert_has(
        &records,
        Level::Info,
        "LPI property table for 16 INTID bits",
    );
    assert_has(
        &records,
        Level::Debug,
        "LPIs on at redistributor of processor 1",
    );
    assert_has(&records, Level::Debug, "command queue of 64 KiB");
    assert_has(&records, Level::Trace, "posted commands #0..#");
    assert!(
        records.iter().all(|r| r.level > Level::Warn),
        "a clean bring-up warns of nothing: {records:?}"
    );
    // A device: mapped and unmapped at debug.
    let (_, records) = logcap::capture(|| {
        let mut dev = r.its().map_device(DeviceId::new(0x42), 4).unwrap();
        r.its().unmap_device(&mut dev).unwrap();
    });
    assert_has(&records, Level::Debug, "device 0x42 mapped, 4 events");
    assert_has(&records, Level::Debug, "device 0x42 unmapped");
    r.model.assert_no_errors();
}

#[test]
fn a_timeout_is_an_error_with_the_last_commands() {
    let r = Rig::with(ModelConfig::qemu(1), Settings::default().queue(0x1000));
    r.model.set_delay(0, Delay::Never);
    let q = r.its().queue();
    let rd = RdBase::from_processor(ProcessorNumber::new(0));
    let invall = Command::Invall {
        icid: CollectionId::new(0),
    };
    let (e, records) = logcap::capture(|| {
        let t = q.post(&[invall], &[SyncTarget::Redist(rd)]).unwrap();
        q.wait(t).unwrap_err()
    });
    assert!(matches!(e, its_cmdq::ItsError::Timeout { .. }), "{e:?}");
    assert_has(&records, Level::Error, "ITS command queue timeout after");
    assert_has(&records, Level::Error, "last commands:");
    assert_has(&records, Level::Error, "INVALL icid=0x0");
}

#[test]
fn a_stall_is_a_warning() {
    let r = Rig::new(ModelConfig::qemu(1));
    let mut dev = r.its().map_device(DeviceId::new(2), 4).unwrap();
    r.model.stall_at(0, Some(r.model.counters(0).0));
    let (e, records) =
        logcap::capture(|| r.its().map_event(&mut dev, 0, Lpi::new(8192).unwrap(), 0));
    assert!(
        matches!(e, Err(its_cmdq::ItsError::Stalled { .. })),
        "{e:?}"
    );
    assert_has(&records, Level::Warn, "ITS stalled at offset");
    assert_has(&records, Level::Warn, "MAPTI");
    assert_has(&records, Level::Warn, "recovered by Skip");
    assert!(
        records.iter().all(|r| r.level != Level::Error),
        "a stall is not an error of the driver: {records:?}"
    );
    r.its().unmap_device(&mut dev).unwrap();
}

#[test]
fn shutdown_is_logged_and_a_refusal_warned() {
    let r = Rig::new(ModelConfig::qemu(1));
    let t = Duration::from_millis(5);
    let mut dev = r.its().map_device(DeviceId::new(7), 2).unwrap();
    let (e, records) = logcap::capture(|| r.its().shutdown(t));
    assert_eq!(e, Err(its_cmdq::ItsError::InUse(1)));
    assert_has(
        &records,
        Level::Warn,
        "shut-down refused: 1 devices still mapped",
    );
    r.its().unmap_device(&mut dev).unwrap();
    let (ok, records) = logcap::capture(|| r.its().shutdown(t));
    ok.unwrap();
    assert_has(
        &records,
        Level::Info,
        "ITS shut down, queue and tables freed",
    );
}
