// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `log` events (the `log` feature, turned on by the test kit): the vCPU interface and
//! its forwarding table at debug, an overflow of the list registers at debug, every entry,
//! exit and forwarded interrupt at trace.

use its_testkit::logcap::{self, assert_has};
use log::Level;

use super::{Rig, p, v};
use crate::vgic::{Forward, FwdMode, Trigger, VirqConfig};

#[test]
fn forwarding_and_the_list_registers_are_logged() {
    let (mut rig, records) = logcap::capture(|| Rig::new(2));
    assert_has(
        &records,
        Level::Debug,
        "vCPU interface with 2 list registers",
    );
    let fwd = Forward {
        pintid: p(40),
        mode: FwdMode::Hw,
    };
    let (_, records) = logcap::capture(|| rig.vgic.map(v(50), VirqConfig::edge(0x20), fwd));
    assert_has(&records, Level::Debug, "vINTID 50 forwarded from pINTID 40");
    rig.gic.configure(40, Trigger::Edge, 0x20);
    rig.gic.pulse(40);
    let (_, records) = logcap::capture(|| rig.host_irq(None));
    assert_has(&records, Level::Trace, "pINTID 40 injected as vINTID 50");
    // Three more pending than the two list registers hold.
    for n in 60..63 {
        rig.vgic.configure(v(n), VirqConfig::edge(0x40)).unwrap();
        rig.vgic.inject(v(n)).unwrap();
    }
    let (plan, records) = logcap::capture(|| rig.enter());
    assert!(plan.hcr().uie());
    assert_has(
        &records,
        Level::Debug,
        "4 interrupts for 2 list registers: maintenance interrupt requested",
    );
    assert_has(
        &records,
        Level::Trace,
        "populate: 2 list registers written, 2 listed",
    );
    rig.run();
    let (_, records) = logcap::capture(|| rig.exit());
    assert_has(&records, Level::Trace, "fold: ");
    assert!(records.iter().all(|r| r.level > Level::Warn), "{records:?}");
    // An interrupt nobody forwards is the host's.
    rig.gic.configure(33, Trigger::Edge, 0x20);
    rig.gic.pulse(33);
    let (_, records) = logcap::capture(|| rig.host_irq(None));
    assert_has(&records, Level::Trace, "host IRQ 33 is not forwarded");
    let (_, records) = logcap::capture(|| rig.vgic.remove(v(50)));
    assert_has(&records, Level::Debug, "vINTID 50 removed");
}
