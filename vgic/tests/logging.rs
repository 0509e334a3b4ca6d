// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `log` events of the vGICv3 (the `log` feature, turned on by the test kit): the VM's
//! distributor at info, vCPUs attached and SPIs forwarded at debug, a guest access to a
//! RAZ/WI register at debug, every trapped access at trace.

mod common;

use common::*;
use fwd_irq::Trigger;
use its_testkit::logcap::{self, assert_has};
use log::Level;
use vgic::{AccessSize, Outcome, RazWi, VgicConfig};

#[test]
fn bring_up_and_trapped_accesses_are_logged() {
    let (mut rig, records) = logcap::capture(|| {
        Rig::with(VgicConfig::new(GICD, GICR, 2), |vgic, _| {
            vgic.forward_spi(v(40), hw(72), Trigger::Level, &mut vgic::Effects::new())
                .unwrap();
        })
    });
    assert_has(
        &records,
        Level::Info,
        "vgic: vGICv3 with 2 vCPUs and 64 SPIs",
    );
    assert_has(
        &records,
        Level::Debug,
        "SPI 40 forwarded from pINTID 72 (Level)",
    );
    assert_has(&records, Level::Debug, "vCPU 0 attached");
    assert_has(&records, Level::Debug, "vCPU 1 attached");
    // GICD_CTLR written, then read back.
    let (_, records) = logcap::capture(|| {
        rig.w32(1, GICD, 0b11);
        rig.r32(1, GICD)
    });
    assert_has(
        &records,
        Level::Trace,
        "vCPU 1 wrote Distributor+0x0 (Word): 0x3",
    );
    assert_has(
        &records,
        Level::Trace,
        "vCPU 1 read Distributor+0x0 (Word): 0x53",
    );
    // A halfword access to GICD_IPRIORITYR: RAZ/WI, and said so at debug.
    let (a, records) = logcap::capture(|| rig.write(0, GICD + 0x420, AccessSize::Half, 0));
    assert_eq!(a.outcome, Outcome::RazWi(RazWi::BadSize));
    assert_has(&records, Level::Debug, "RAZ/WI register (BadSize)");
    assert!(
        records.iter().all(|r| r.level > Level::Warn),
        "a guest's odd access is not the hypervisor's warning: {records:?}"
    );
}
