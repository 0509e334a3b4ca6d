// SPDX-License-Identifier: MIT OR Apache-2.0
//! Virtual LPIs injected by software: listed pending with HW = 0, taken once, merged while
//! pending, ordered by priority with the other interrupts, kept when they do not fit.

use super::{Rig, v};
use crate::error::FwdError;
use crate::fake::GuestExit;
use crate::regs::LrState;
use crate::vgic::{MAX_PENDING_LPIS, VirqConfig};

#[test]
fn an_injected_lpi_is_listed_pending_without_hw_and_taken_once() {
    let mut rig = Rig::new(4);
    rig.vgic.inject_lpi(8200, 0x80).unwrap();
    assert!(rig.vgic.has_pending());
    rig.enter();
    let lr = rig.ich.lr(0);
    assert_eq!(lr.vintid(), 8200);
    assert_eq!(lr.state(), LrState::Pending);
    assert!(!lr.hw() && !lr.eoi() && lr.group());
    assert_eq!(lr.priority(), 0x80);
    assert!(
        rig.vgic.pending_lpis().is_empty(),
        "the list register carries it"
    );
    assert_eq!(
        rig.ich.guest_run(&mut rig.gic, 8, |_, _| {}),
        GuestExit::Idle
    );
    assert_eq!(rig.ich.delivered(), [8200]);
    let report = rig.exit();
    assert_eq!((report.acknowledged, report.still_pending), (1, 0));
    assert!(!rig.vgic.has_pending());
    rig.enter();
    assert_eq!(
        rig.ich.lr(0).state(),
        LrState::Invalid,
        "nothing listed again"
    );
}

#[test]
fn a_second_injection_while_pending_merges_into_one() {
    let mut rig = Rig::new(4);
    rig.vgic.inject_lpi(8192, 0xa0).unwrap();
    rig.vgic.inject_lpi(8192, 0x40).unwrap();
    assert_eq!(rig.vgic.pending_lpis().len(), 1);
    assert_eq!(
        rig.vgic.pending_lpis()[0].priority,
        0x40,
        "the last priority wins"
    );
    rig.enter();
    rig.ich.guest_run(&mut rig.gic, 8, |_, _| {});
    rig.exit();
    assert_eq!(rig.ich.delivered(), [8192]);
}

#[test]
fn lpis_take_their_turn_by_priority_and_wait_when_the_list_registers_are_full() {
    // One list register: every interrupt needs an entry (and an NPIE exit) of its own.
    let mut rig = Rig::new(1);
    rig.vgic.configure(v(40), VirqConfig::edge(0x80)).unwrap();
    rig.vgic.inject(v(40)).unwrap();
    rig.vgic.inject_lpi(8193, 0x40).unwrap();
    rig.vgic.inject_lpi(8194, 0xa0).unwrap();
    for _ in 0..6 {
        let plan = rig.enter();
        if plan.lrs().is_empty() {
            break;
        }
        rig.ich.guest_run(&mut rig.gic, 1, |_, _| {});
        rig.exit();
    }
    assert_eq!(
        rig.ich.delivered(),
        [8193, 40, 8194],
        "by priority, across both kinds"
    );
    assert!(!rig.vgic.has_pending());
}

#[test]
fn an_lpi_the_guest_did_not_take_stays_pending_for_the_next_entry() {
    let mut rig = Rig::new(2);
    rig.vgic.inject_lpi(9000, 0x80).unwrap();
    rig.enter();
    // The guest exits before taking it (say a physical IRQ came first).
    let report = rig.exit();
    assert_eq!((report.acknowledged, report.still_pending), (0, 1));
    assert_eq!(rig.vgic.pending_lpis().len(), 1);
    rig.enter();
    assert_eq!(rig.ich.lr(0).vintid(), 9000);
    // Populating again without a fold gives it back too, not twice.
    rig.enter();
    assert_eq!(rig.ich.lr(0).vintid(), 9000);
    assert_eq!(rig.ich.lr(1).state(), LrState::Invalid);
    rig.ich.guest_run(&mut rig.gic, 8, |_, _| {});
    rig.exit();
    assert_eq!(rig.ich.delivered(), [9000]);
    assert!(!rig.vgic.has_pending());
}

#[test]
fn only_lpis_and_only_so_many_can_wait() {
    let mut rig = Rig::new(4);
    assert_eq!(
        rig.vgic.inject_lpi(8191, 0x80),
        Err(FwdError::NotAnLpi { raw: 8191 })
    );
    for i in 0..MAX_PENDING_LPIS as u32 {
        rig.vgic.inject_lpi(8192 + i, 0x80).unwrap();
    }
    assert_eq!(
        rig.vgic.inject_lpi(9999, 0x80),
        Err(FwdError::TableFull {
            capacity: MAX_PENDING_LPIS as u32
        })
    );
    // One already waiting still merges.
    rig.vgic.inject_lpi(8192, 0x80).unwrap();
    assert!(rig.vgic.clear_lpi(8192));
    assert!(!rig.vgic.clear_lpi(8192));
    rig.vgic.inject_lpi(9999, 0x80).unwrap();
    assert_eq!(rig.vgic.pending_lpis().len(), MAX_PENDING_LPIS);
}
