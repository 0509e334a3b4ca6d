// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `log` events of guest-fdt (the `log` feature, turned on by the test kit): the guest
//! tree at info, each subtree removed at debug, a tree that cannot be derived at warn.

use guest_fdt::{GuestPolicy, MemRegion, derive, guest_memory};
use its_testkit::logcap::{self, assert_has};
use log::Level;

const HOST: &[u8] = include_bytes!("../../fixtures/dtb/virt-gicv4-smp4-qemu7.2.22.dtb");

#[test]
fn the_guest_tree_is_logged_and_a_refusal_warned() {
    let memory = guest_memory(HOST, &[MemRegion::new(0x4000_0000, 0x400_0000)]).unwrap();
    let policy = GuestPolicy::new(&memory, 2).with_its(false);
    let (dtb, records) = logcap::capture(|| derive(HOST, &policy));
    let dtb = dtb.unwrap();
    assert_has(
        &records,
        Level::Info,
        &format!("guest tree of {} bytes from the host's", dtb.len()),
    );
    assert_has(
        &records,
        Level::Info,
        "2 vCPUs, 1 memory ranges, ITS removed",
    );
    assert_has(&records, Level::Debug, "/platform-bus@c000000 removed");
    assert!(records.iter().all(|r| r.level > Level::Warn), "{records:?}");
    // More vCPUs than the host has CPUs: refused, and said so.
    let policy = GuestPolicy::new(&memory, 9);
    let (e, records) = logcap::capture(|| derive(HOST, &policy));
    assert!(e.is_err());
    assert_has(&records, Level::Warn, "guest-fdt: no guest tree:");
}
