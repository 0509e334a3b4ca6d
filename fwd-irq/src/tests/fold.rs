// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fold: folding list-register state back after an exit.

use super::{Rig, p, v};
use crate::fake::{GuestExit, PhysOp};
use crate::host_irq::HostIrq;
use crate::regs::LrState;
use crate::vgic::{Forward, FwdMode, Trigger, VirqConfig};

/// The guest did not acknowledge (it ran with interrupts masked): every kind of edge
/// interrupt stays pending across the exit and is listed again, and a forwarded one keeps
/// its physical interrupt active.
#[test]
fn fold_keeps_pending_the_guest_did_not_acknowledge() {
    let mut rig = Rig::new(4);
    rig.vgic
        .map(
            v(40),
            VirqConfig::edge(0x80),
            Forward {
                pintid: p(40),
                mode: FwdMode::Hw,
            },
        )
        .unwrap();
    rig.vgic
        .map(
            v(44),
            VirqConfig::edge(0x80),
            Forward {
                pintid: p(44),
                mode: FwdMode::EoiMaintenance,
            },
        )
        .unwrap();
    rig.vgic.configure(v(50), VirqConfig::edge(0x80)).unwrap();
    rig.vgic.configure(v(51), VirqConfig::level(0x80)).unwrap();
    for n in [40, 44] {
        rig.gic.configure(n, Trigger::Edge, 0x80);
        rig.gic.pulse(n);
        assert!(matches!(rig.host_irq(None), HostIrq::Forwarded { .. }));
    }
    rig.vgic.inject(v(50)).unwrap();
    rig.vgic.set_pending_latch(v(51), true).unwrap(); // software-pended level interrupt

    for _ in 0..3 {
        rig.enter();
        assert_eq!(
            rig.ich
                .lrs()
                .iter()
                .filter(|lr| lr.state() == LrState::Pending)
                .count(),
            4
        );
        // Guest masked: no acknowledge. Some unrelated exit happens.
        let report = rig.exit();
        assert_eq!(report.still_pending, 4);
        assert_eq!(report.acknowledged, 0);
        for n in [40, 44, 50, 51] {
            let virq = rig.vgic.virq(v(n)).unwrap();
            assert!(virq.is_pending(), "vINTID {n} lost its pending state");
            assert!(!virq.is_active());
        }
        assert!(
            rig.gic.active(40) && rig.gic.active(44),
            "still owned by the guest"
        );
    }

    // Once the guest unmasks, each is delivered exactly once. Deactivating 44 raises its EOI
    // maintenance interrupt, so that takes two round trips.
    assert_eq!(rig.run_to_idle(), 2);
    let mut got = rig.ich.take_delivered();
    got.sort_unstable();
    assert_eq!(got, [40, 44, 50, 51]);
    assert!(
        !rig.gic.active(40),
        "HW = 1: deactivated by the guest's EOI"
    );
    assert!(!rig.gic.active(44), "EOI maintenance: deactivated at fold");
    rig.assert_clean();
}

fn level_rig() -> Rig {
    let mut rig = Rig::new(4);
    rig.vgic
        .map(
            v(41),
            VirqConfig::level(0x80),
            Forward {
                pintid: p(41),
                mode: FwdMode::Hw,
            },
        )
        .unwrap();
    rig.gic.configure(41, Trigger::Level, 0x80);
    rig.gic.set_line(41, true);
    assert_eq!(
        rig.host_irq(None),
        HostIrq::Forwarded {
            pintid: p(41),
            vintid: v(41)
        }
    );
    assert!(rig.gic.active(41));
    rig
}

/// Mapped level interrupt, not acknowledged, line still high at the exit: fold samples the
/// physical line, keeps the interrupt pending and the physical interrupt active.
#[test]
fn fold_samples_mapped_level_line_still_high_stays_pending() {
    let mut rig = level_rig();
    rig.enter();
    rig.gic.clear_log();
    let report = rig.exit();
    assert_eq!(report.still_pending, 1);
    assert_eq!(report.lines_dropped, 0);
    assert!(
        rig.gic
            .log()
            .iter()
            .any(|(_, op)| *op == PhysOp::ReadPending(41)),
        "sampled"
    );
    let virq = rig.vgic.virq(v(41)).unwrap();
    assert!(virq.line_level() && virq.is_pending());
    assert!(rig.gic.active(41), "not deactivated");
    assert!(
        !rig.gic
            .log()
            .iter()
            .any(|(_, op)| matches!(op, PhysOp::SetActive(41, _)))
    );

    // Listed again; the guest handles it, quieting the device before EOI.
    rig.enter();
    assert_eq!(rig.ich.lr(0).state(), LrState::Pending);
    let why = rig
        .ich
        .guest_run(&mut rig.gic, 8, |_, gic| gic.set_line(41, false));
    assert_eq!(why, GuestExit::Idle);
    assert_eq!(rig.ich.delivered(), [41]);
    assert!(!rig.gic.active(41));
    rig.exit();
    assert!(!rig.vgic.has_pending());
    rig.assert_clean();
}

/// fwd_level_lowered, host side: the device drops the line while the guest has interrupts
/// masked. Fold clears the pending state AND the physical active state; nothing spurious is
/// delivered afterwards. fwd_level_reassert: the next assertion reaches the host as a fresh
/// physical interrupt and is delivered exactly once.
#[test]
fn fold_samples_mapped_level_line_dropped_clears_pending_and_physical_active() {
    let mut rig = level_rig();
    rig.enter();
    assert_eq!(rig.ich.lr(0).state(), LrState::Pending);
    // Guest masked; it quiets the device by polling, then exits (say, a hypercall).
    rig.gic.set_line(41, false);
    rig.gic.clear_log();
    let report = rig.exit();
    assert_eq!(report.lines_dropped, 1);
    assert!(
        rig.gic
            .log()
            .iter()
            .any(|(_, op)| *op == PhysOp::SetActive(41, false))
    );
    assert!(
        !rig.gic.active(41),
        "physical active cleared so the next edge is seen"
    );
    let virq = rig.vgic.virq(v(41)).unwrap();
    assert!(!virq.is_pending() && !virq.is_active());
    assert_eq!(rig.vgic.stats().lines_dropped, 1);

    // No spurious interrupt: nothing listed, nothing for the guest, nothing for the host.
    let plan = rig.enter();
    assert!(plan.lrs().is_empty());
    assert_eq!(rig.run(), GuestExit::Idle);
    assert!(rig.ich.delivered().is_empty());
    assert_eq!(rig.gic.next_host_irq(), None);
    rig.exit();

    // Re-assertion: a new physical interrupt, forwarded and delivered once.
    rig.enter();
    rig.gic.set_line(41, true);
    assert_eq!(rig.run(), GuestExit::PhysIrq);
    rig.exit();
    assert_eq!(
        rig.host_irq(None),
        HostIrq::Forwarded {
            pintid: p(41),
            vintid: v(41)
        }
    );
    rig.enter();
    let why = rig
        .ich
        .guest_run(&mut rig.gic, 8, |_, gic| gic.set_line(41, false));
    assert_eq!(why, GuestExit::Idle);
    assert_eq!(rig.ich.delivered(), [41]);
    assert!(!rig.gic.active(41));
    rig.assert_clean();
}

/// An edge interrupt acknowledged and EOIed by the guest: with HW = 1 the physical interrupt
/// is deactivated by the guest's EOI, with no exit; the fold that follows the next exit just
/// retires the list register.
#[test]
fn edge_interrupt_acknowledged_and_eoied_without_exit() {
    let mut rig = Rig::new(4);
    rig.vgic
        .map(
            v(40),
            VirqConfig::edge(0x80),
            Forward {
                pintid: p(40),
                mode: FwdMode::Hw,
            },
        )
        .unwrap();
    rig.gic.configure(40, Trigger::Edge, 0x80);
    rig.gic.pulse(40);
    rig.host_irq(None);
    rig.enter();
    assert_eq!(
        rig.run(),
        GuestExit::Idle,
        "no maintenance interrupt, no exit at EOI"
    );
    assert_eq!(rig.ich.delivered(), [40]);
    assert!(!rig.gic.active(40));
    assert_eq!(rig.ich.lr(0).state(), LrState::Invalid);
    let report = rig.exit();
    assert_eq!(
        (report.acknowledged, report.completed, report.still_pending),
        (1, 1, 0)
    );
    assert!(!report.maintenance.any());
    assert_eq!(rig.vgic.stats().maintenance_exits, 0);
    let virq = rig.vgic.virq(v(40)).unwrap();
    assert!(!virq.is_pending() && !virq.is_active());

    // A second edge while the guest still has the first one active stays pending at the
    // physical distributor and reaches the host only after the guest's deactivation.
    rig.gic.pulse(40);
    rig.host_irq(None);
    rig.enter();
    assert_eq!(rig.ich.guest_ack(), 40);
    rig.gic.pulse(40);
    assert_eq!(rig.gic.next_host_irq(), None, "physical still active");
    rig.ich.guest_eoi(40, &mut rig.gic);
    assert_eq!(rig.gic.next_host_irq(), Some(40));
    rig.exit();
    assert_eq!(
        rig.host_irq(None),
        HostIrq::Forwarded {
            pintid: p(40),
            vintid: v(40)
        }
    );
    rig.enter();
    assert_eq!(rig.run(), GuestExit::Idle);
    assert_eq!(rig.ich.delivered(), [40, 40]);
    rig.assert_clean();
}

/// The software flow kept for comparison: HW = 0 with EOI = 1. The guest's deactivation
/// raises an EOI maintenance interrupt (an exit); fold then deactivates the physical
/// interrupt.
#[test]
fn eoi_maintenance_mode_deactivates_the_physical_interrupt_at_fold() {
    let mut rig = Rig::new(4);
    rig.vgic
        .map(
            v(44),
            VirqConfig::level(0x80),
            Forward {
                pintid: p(44),
                mode: FwdMode::EoiMaintenance,
            },
        )
        .unwrap();
    rig.gic.configure(44, Trigger::Level, 0x80);
    rig.gic.set_line(44, true);
    rig.host_irq(None);
    rig.enter();
    let lr = rig.ich.lr(0);
    assert!(!lr.hw() && lr.eoi() && lr.pintid().is_none());
    let why = rig
        .ich
        .guest_run(&mut rig.gic, 8, |_, gic| gic.set_line(44, false));
    assert_eq!(why, GuestExit::Maintenance);
    assert!(rig.ich.misr_value().eoi());
    assert!(
        rig.gic.active(44),
        "HW = 0: the guest's EOI does not reach the physical GIC"
    );
    let report = rig.exit();
    assert!(report.maintenance.eoi());
    assert_eq!(report.eoi_deactivations, 1);
    assert!(!rig.gic.active(44));
    assert!(
        !rig.ich.maintenance_asserted(),
        "parked: the maintenance PPI drops"
    );
    assert_eq!(rig.vgic.stats().maintenance_exits, 1);
    assert_eq!(
        rig.host_irq(None),
        HostIrq::Spurious,
        "nothing left for the host"
    );
    rig.assert_clean();
}
