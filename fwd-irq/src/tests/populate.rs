// SPDX-License-Identifier: MIT OR Apache-2.0
//! Populate: what goes into the list registers, in which order, and what it does to the
//! software state.

use std::vec::Vec;

use super::{Rig, p, v};
use crate::fake::{GuestExit, IchOp, PhysOp};
use crate::host_irq::HostIrq;
use crate::hw::PhysIrqState;
use crate::regs::{IchHcr, LrState};
use crate::vgic::{Forward, FwdMode, Trigger, VirqConfig};

const HW: FwdMode = FwdMode::Hw;

/// A forwarded edge interrupt is listed pending with HW = 1 and its pINTID; while the guest
/// has it active, a second (software) pending state is NOT written as pending+active: the
/// list register says active only, and the pending state waits in software until the guest
/// deactivates the first instance. A purely virtual interrupt may be pending+active.
#[test]
fn hw_interrupt_is_listed_pending_only_never_pending_and_active() {
    let mut rig = Rig::new(4);
    rig.vgic
        .map(
            v(40),
            VirqConfig::edge(0x80),
            Forward {
                pintid: p(40),
                mode: HW,
            },
        )
        .unwrap();
    // More urgent than 40, so the guest can take it while 40 is active.
    rig.vgic.configure(v(42), VirqConfig::edge(0x40)).unwrap();
    rig.gic.configure(40, Trigger::Edge, 0x80);

    // The device fires; the host acknowledges and drops priority only.
    rig.gic.pulse(40);
    assert_eq!(
        rig.host_irq(None),
        HostIrq::Forwarded {
            pintid: p(40),
            vintid: v(40)
        }
    );
    assert!(
        rig.gic.active(40),
        "EOImode = 1 leaves the physical interrupt active"
    );

    rig.enter();
    let lr = rig.ich.lr(0);
    assert_eq!(lr.state(), LrState::Pending);
    assert!(lr.hw());
    assert_eq!(lr.pintid(), Some(40));
    assert_eq!(lr.vintid(), 40);
    assert_eq!(lr.priority(), 0x80);
    assert!(lr.group());
    assert!(
        !rig.vgic.virq(v(40)).unwrap().pending_latch(),
        "the LR carries the pending state"
    );

    // The guest acknowledges but does not EOI yet; an exit happens.
    assert_eq!(rig.ich.guest_ack(), 40);
    rig.exit();
    assert!(rig.vgic.virq(v(40)).unwrap().is_active());

    // Software makes both interrupts pending again while they are active.
    rig.vgic.set_pending_latch(v(40), true).unwrap();
    rig.vgic.inject(v(42)).unwrap();
    rig.enter();
    assert_eq!(rig.ich.guest_ack(), 42);
    rig.exit();
    rig.vgic.inject(v(42)).unwrap();
    rig.enter();
    let lrs: Vec<_> = rig.ich.lrs().to_vec();
    let lr40 = lrs.iter().find(|lr| lr.vintid() == 40).unwrap();
    let lr42 = lrs.iter().find(|lr| lr.vintid() == 42).unwrap();
    assert_eq!(lr40.state(), LrState::Active, "HW = 1: active only");
    assert!(lr40.hw());
    assert_eq!(
        lr42.state(),
        LrState::PendingActive,
        "HW = 0 may be pending+active"
    );
    assert!(
        rig.vgic.virq(v(40)).unwrap().pending_latch(),
        "the second instance waits"
    );

    // The guest finishes the first instance of 40: the physical interrupt is deactivated by
    // the virtual CPU interface, without an exit.
    rig.ich.guest_eoi(42, &mut rig.gic);
    rig.ich.guest_eoi(40, &mut rig.gic);
    assert!(!rig.gic.active(40));
    assert!(
        rig.gic
            .log()
            .iter()
            .any(|(_, op)| *op == PhysOp::HwDeactivate(40))
    );
    rig.exit();
    // Now the pending state is listed (the next host acknowledge would have made it active
    // again in a real system; the latch is a software-set pending state).
    rig.gic.set_active(p(40), true);
    rig.enter();
    let lr40 = rig
        .ich
        .lrs()
        .iter()
        .copied()
        .find(|lr| lr.vintid() == 40)
        .unwrap();
    assert_eq!(lr40.state(), LrState::Pending);
    assert!(
        rig.ich.log().iter().all(|(_, op)| match op {
            IchOp::WriteLr(_, bits) => {
                let lr = crate::regs::IchLr::from_bits(*bits);
                !(lr.hw() && lr.state() == LrState::PendingActive)
            }
            _ => true,
        }),
        "never pending+active with HW = 1"
    );
    rig.assert_clean();
}

/// Placing a forwarded level interrupt lowers its software line level: the hypervisor only
/// sees rising edges, so the next edge must be able to raise it again. A purely virtual level
/// interrupt keeps the level its emulated device set.
#[test]
fn placing_a_mapped_level_interrupt_lowers_its_line_level() {
    let mut rig = Rig::new(4);
    rig.vgic
        .map(
            v(41),
            VirqConfig::level(0x80),
            Forward {
                pintid: p(41),
                mode: HW,
            },
        )
        .unwrap();
    rig.vgic.configure(v(43), VirqConfig::level(0x80)).unwrap();
    rig.gic.configure(41, Trigger::Level, 0x80);

    rig.gic.set_line(41, true);
    assert_eq!(
        rig.host_irq(None),
        HostIrq::Forwarded {
            pintid: p(41),
            vintid: v(41)
        }
    );
    rig.vgic.set_line_level(v(43), true).unwrap();
    assert!(rig.vgic.virq(v(41)).unwrap().line_level());

    rig.enter();
    assert_eq!(rig.ich.lr(0).vintid(), 41);
    assert_eq!(rig.ich.lr(0).state(), LrState::Pending);
    assert_eq!(rig.ich.lr(1).vintid(), 43);
    assert!(
        !rig.vgic.virq(v(41)).unwrap().line_level(),
        "mapped level: lowered when placed"
    );
    assert!(
        rig.vgic.virq(v(43)).unwrap().line_level(),
        "virtual level: device-owned"
    );

    // The guest handles 41 (quiets the device, then EOIs): the physical interrupt is
    // deactivated, the line is low, nothing fires again.
    let why = rig.ich.guest_run(&mut rig.gic, 8, |vintid, gic| {
        if vintid == 41 {
            gic.set_line(41, false);
        }
    });
    assert_eq!(why, GuestExit::Idle);
    assert!(!rig.gic.active(41));
    assert_eq!(rig.gic.next_host_irq(), None);
    rig.assert_clean();
}

/// Populate writes the listed interrupts in index order, zeroes list registers that may hold
/// stale values (all of them the first time), then writes ICH_HCR_EL2 with En = 1 last. Fold
/// reads ICH_ELRSR_EL2, reads back only non-empty list registers, then parks ICH_HCR_EL2
/// with En = 0.
#[test]
fn register_access_order_on_entry_and_exit() {
    let mut rig = Rig::new(4);
    for n in [50, 51] {
        rig.vgic.configure(v(n), VirqConfig::edge(0x80)).unwrap();
        rig.vgic.inject(v(n)).unwrap();
    }
    rig.ich.clear_log();
    rig.enter();
    let ops: Vec<IchOp> = rig.ich.log().into_iter().map(|(_, op)| op).collect();
    assert_eq!(ops.len(), 5);
    assert!(matches!(ops[0], IchOp::WriteLr(0, bits) if bits & 0xFFFF_FFFF == 50));
    assert!(matches!(ops[1], IchOp::WriteLr(1, bits) if bits & 0xFFFF_FFFF == 51));
    assert_eq!(
        ops[2],
        IchOp::WriteLr(2, 0),
        "first populate zeroes every other LR"
    );
    assert_eq!(ops[3], IchOp::WriteLr(3, 0));
    assert_eq!(
        ops[4],
        IchOp::WriteHcr(IchHcr::new().with_en(true).into_bits())
    );

    // The guest takes 50 only; 51 stays pending.
    assert_eq!(rig.ich.guest_ack(), 50);
    rig.ich.guest_eoi(50, &mut rig.gic);
    rig.ich.clear_log();
    let report = rig.exit();
    let ops: Vec<IchOp> = rig.ich.log().into_iter().map(|(_, op)| op).collect();
    assert_eq!(
        ops,
        [IchOp::ReadElrsr, IchOp::ReadLr(1), IchOp::WriteHcr(0)],
        "LR0 is empty per ICH_ELRSR_EL2 and is not read"
    );
    assert_eq!(report.acknowledged, 1);
    assert_eq!(report.completed, 1);
    assert_eq!(report.still_pending, 1);

    // Next entry: one interrupt listed, the previously used LR1 is zeroed, nothing else.
    rig.ich.clear_log();
    rig.enter();
    let ops: Vec<IchOp> = rig.ich.log().into_iter().map(|(_, op)| op).collect();
    assert_eq!(ops.len(), 3);
    assert!(matches!(ops[0], IchOp::WriteLr(0, bits) if bits & 0xFFFF_FFFF == 51));
    assert_eq!(ops[1], IchOp::WriteLr(1, 0));
    rig.assert_clean();
}

/// Candidates are ordered active first, then by priority, then by INTID; disabled interrupts
/// stay pending but are not listed.
#[test]
fn priority_ordering_active_first_then_priority_then_intid() {
    let mut rig = Rig::new(3);
    for (n, prio) in [(60, 0x80), (61, 0x10), (62, 0x10), (63, 0x20), (64, 0x00)] {
        rig.vgic.configure(v(n), VirqConfig::edge(prio)).unwrap();
    }
    // 60 (low urgency) is acknowledged and still active at the next entry.
    rig.vgic.inject(v(60)).unwrap();
    rig.enter();
    assert_eq!(rig.ich.guest_ack(), 60);
    rig.exit();
    for n in [63, 62, 61, 64] {
        rig.vgic.inject(v(n)).unwrap();
    }
    rig.vgic.set_enabled(v(64), false).unwrap();

    let plan = rig.enter();
    let listed: Vec<(u32, LrState)> = plan
        .lrs()
        .iter()
        .map(|lr| (lr.vintid(), lr.state()))
        .collect();
    assert_eq!(
        listed,
        [
            (60, LrState::Active),
            (61, LrState::Pending),
            (62, LrState::Pending)
        ],
        "active first, then priority 0x10 by INTID; 63 does not fit, disabled 64 is skipped"
    );
    assert!(plan.hcr().uie(), "63 did not fit");
    assert!(rig.vgic.virq(v(64)).unwrap().is_pending());
    rig.assert_clean();
}

/// Populating twice without an exit in between (the hypervisor injected something more before
/// entering) re-plans from scratch: nothing the first plan consumed is lost.
#[test]
fn repopulating_before_entry_loses_nothing() {
    let mut rig = Rig::new(2);
    rig.vgic
        .map(
            v(41),
            VirqConfig::level(0x80),
            Forward {
                pintid: p(41),
                mode: HW,
            },
        )
        .unwrap();
    rig.vgic.configure(v(50), VirqConfig::edge(0x90)).unwrap();
    rig.vgic.configure(v(51), VirqConfig::edge(0x10)).unwrap();
    rig.gic.configure(41, Trigger::Level, 0x80);
    rig.gic.set_line(41, true);
    rig.host_irq(None);
    rig.vgic.inject(v(50)).unwrap();
    let first: Vec<u32> = rig.enter().lrs().iter().map(|lr| lr.vintid()).collect();
    assert_eq!(first, [41, 50]);

    rig.vgic.inject(v(51)).unwrap();
    let second: Vec<u32> = rig.enter().lrs().iter().map(|lr| lr.vintid()).collect();
    assert_eq!(second, [51, 41], "50 no longer fits; 41 is still pending");
    assert!(rig.vgic.virq(v(50)).unwrap().is_pending());

    let quiet_41 = |vintid: u32, gic: &mut crate::fake::FakePhysGic| {
        if vintid == 41 {
            gic.set_line(41, false);
        }
    };
    let why = rig.ich.guest_run(&mut rig.gic, 8, quiet_41);
    assert_eq!(why, GuestExit::Maintenance, "UIE: 50 is waiting");
    rig.exit();
    rig.run_to_idle_with(quiet_41);
    assert_eq!(rig.ich.delivered(), [51, 41, 50]);
    rig.assert_clean();
}

/// The host IRQ path: interrupts that are not forwarded come back to the caller still active;
/// the maintenance PPI is deactivated; a special INTID means nothing was acknowledged.
#[test]
fn host_irq_path_dispatch() {
    let mut rig = Rig::new(4);
    rig.gic.configure(33, Trigger::Level, 0x80);
    rig.gic.configure(25, Trigger::Level, 0x80);
    rig.gic.set_line(33, true);
    assert_eq!(rig.host_irq(None), HostIrq::Other(33));
    assert!(rig.gic.active(33), "the caller deactivates it");
    crate::hw::HostCpuIf::deactivate(&mut rig.gic, 33);
    rig.gic.set_line(33, false);

    rig.gic.set_line(25, true);
    assert_eq!(rig.host_irq(None), HostIrq::Maintenance);
    assert!(!rig.gic.active(25));
    rig.gic.set_line(25, false);
    assert_eq!(rig.host_irq(None), HostIrq::Spurious);
    rig.assert_clean();
}
