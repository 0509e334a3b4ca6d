// SPDX-License-Identifier: MIT OR Apache-2.0
//! More pending interrupts than list registers.

use std::vec::Vec;

use super::{Rig, p, v};
use crate::fake::GuestExit;
use crate::host_irq::HostIrq;
use crate::regs::LrState;
use crate::vgic::{Forward, FwdMode, Trigger, VirqConfig};

/// fwd_lr_overflow, host side: 9 interrupts pending (some forwarded with HW = 1), 4 list
/// registers. Populate lists the 4 most urgent and sets UIE; once the guest has retired all
/// but one, the underflow maintenance interrupt exits, fold keeps the one it has not taken,
/// and the next populate lists the rest. Everything is delivered once, in priority order.
#[test]
fn overflow_sets_uie_then_repopulates_and_delivers_in_priority_order() {
    let mut rig = Rig::new(4);
    let set: [(u32, u8); 9] = [
        (70, 0x60),
        (71, 0x20),
        (72, 0x40),
        (73, 0x20),
        (74, 0x80),
        (75, 0x10),
        (76, 0x30),
        (77, 0x50),
        (78, 0x20),
    ];
    for &(n, prio) in &set {
        if n % 3 == 0 {
            rig.vgic
                .map(
                    v(n),
                    VirqConfig::edge(prio),
                    Forward {
                        pintid: p(n),
                        mode: FwdMode::Hw,
                    },
                )
                .unwrap();
            rig.gic.configure(n, Trigger::Edge, prio);
            rig.gic.pulse(n);
            rig.host_irq(None);
        } else {
            rig.vgic.configure(v(n), VirqConfig::edge(prio)).unwrap();
            rig.vgic.inject(v(n)).unwrap();
        }
    }

    let plan = rig.enter();
    assert!(plan.hcr().uie() && !plan.hcr().npie());
    let listed: Vec<u32> = plan.lrs().iter().map(|lr| lr.vintid()).collect();
    assert_eq!(listed, [75, 71, 73, 78]);
    assert_eq!(rig.run(), GuestExit::Maintenance);
    assert!(rig.ich.misr_value().u());
    assert_eq!(
        rig.ich.delivered(),
        [75, 71, 73],
        "UIE fired with one entry left"
    );
    let report = rig.exit();
    assert!(report.maintenance.u());
    assert_eq!(report.still_pending, 1);

    let mut rounds = 1;
    loop {
        rig.enter();
        let why = rig.run();
        rig.exit();
        rounds += 1;
        if why == GuestExit::Idle && !rig.vgic.has_pending() {
            break;
        }
        assert_eq!(why, GuestExit::Maintenance);
        assert!(rounds < 10);
    }

    let mut expected = set;
    expected.sort_unstable_by_key(|&(n, prio)| (prio, n));
    let expected: Vec<u32> = expected.iter().map(|&(n, _)| n).collect();
    assert_eq!(rig.ich.delivered(), expected);
    assert!(rig.vgic.stats().overflows >= 2);
    assert!(rig.vgic.stats().maintenance_exits >= 2);
    for n in [72, 75, 78] {
        assert!(!rig.gic.active(n), "pINTID {n} deactivated through HW = 1");
    }
    rig.assert_clean();
}

/// With a single list register UIE would fire at once (one valid entry is already "at most
/// one"), so overflow uses NPIE: the exit comes once the guest has acknowledged the listed
/// interrupt.
#[test]
fn overflow_with_one_list_register_uses_npie() {
    let mut rig = Rig::new(1);
    for (n, prio) in [(80, 0x30), (81, 0x10), (82, 0x20)] {
        rig.vgic.configure(v(n), VirqConfig::edge(prio)).unwrap();
        rig.vgic.inject(v(n)).unwrap();
    }
    let plan = rig.enter();
    assert!(plan.hcr().npie() && !plan.hcr().uie());
    assert_eq!(plan.lrs()[0].vintid(), 81);
    assert!(!rig.ich.maintenance_asserted(), "no immediate exit");
    assert_eq!(rig.run(), GuestExit::Maintenance);
    assert!(rig.ich.misr_value().np());
    rig.exit();
    rig.run_to_idle();
    assert_eq!(rig.ich.delivered(), [81, 82, 80]);
    rig.assert_clean();
}

/// One list register holding an active interrupt while others are pending: NPIE and UIE would
/// both fire at once, so the list register asks for an EOI maintenance interrupt instead.
#[test]
fn overflow_with_one_active_list_register_asks_for_eoi_maintenance() {
    let mut rig = Rig::new(1);
    rig.vgic.configure(v(90), VirqConfig::edge(0x80)).unwrap();
    rig.vgic.configure(v(91), VirqConfig::edge(0x90)).unwrap();
    rig.vgic.inject(v(90)).unwrap();
    rig.enter();
    assert_eq!(rig.ich.guest_ack(), 90);
    rig.exit();
    rig.vgic.inject(v(91)).unwrap();
    let plan = rig.enter();
    let lr = plan.lrs()[0];
    assert_eq!((lr.vintid(), lr.state()), (90, LrState::Active));
    assert!(lr.eoi());
    assert!(plan.overflowed() && !plan.hcr().uie() && !plan.hcr().npie());
    assert!(!rig.ich.maintenance_asserted());
    rig.ich.guest_eoi(90, &mut rig.gic);
    assert!(rig.ich.maintenance_asserted());
    rig.exit();
    rig.run_to_idle();
    assert_eq!(rig.ich.delivered(), [91]);
    rig.assert_clean();
}

/// fwd_lr_overflow with one list register and HW = 1 forwarding, host side. NPIE fires as
/// soon as the guest acknowledges the listed interrupt, so the exit finds it active while
/// others still pend. An active HW = 1 entry cannot ask for an EOI maintenance interrupt (bit
/// 41 is pINTID then), and without one nothing would exit when the guest deactivates it: the
/// others would wait for an unrelated exit. Populate therefore lists that one instance with
/// HW = 0, EOI = 1; the guest's EOI exits and fold deactivates the physical interrupt.
#[test]
fn overflow_with_one_list_register_and_an_active_hw_entry_still_makes_progress() {
    let mut rig = Rig::new(1);
    for (n, prio) in [(100, 0x30), (101, 0x10), (102, 0x20)] {
        rig.vgic
            .map(
                v(n),
                VirqConfig::edge(prio),
                Forward {
                    pintid: p(n),
                    mode: FwdMode::Hw,
                },
            )
            .unwrap();
        rig.gic.configure(n, Trigger::Edge, prio);
        rig.gic.pulse(n);
        assert!(matches!(rig.host_irq(None), HostIrq::Forwarded { .. }));
    }

    let plan = rig.enter();
    assert!(plan.hcr().npie());
    assert!(
        plan.lrs()[0].hw(),
        "the pending entry is listed with HW = 1"
    );
    assert_eq!(rig.ich.guest_ack(), 101);
    assert!(
        rig.ich.maintenance_asserted(),
        "NP: nothing pending any more"
    );
    rig.exit();

    // The guest is inside its handler for 101; two more wait.
    let plan = rig.enter();
    let lr = plan.lrs()[0];
    assert_eq!((lr.vintid(), lr.state()), (101, LrState::Active));
    assert!(!lr.hw() && lr.eoi(), "listed as HW = 0, EOI = 1: {lr:?}");
    assert!(!rig.ich.maintenance_asserted());
    assert!(rig.gic.active(101), "still active at the physical GIC");
    rig.ich.guest_eoi(101, &mut rig.gic);
    assert!(rig.ich.maintenance_asserted(), "the EOI exits");
    let report = rig.exit();
    assert_eq!(report.eoi_deactivations, 1);
    assert!(!rig.gic.active(101), "fold deactivated it");

    rig.run_to_idle();
    // 101 was acknowledged by hand above; `delivered` records only what `guest_run` took.
    assert_eq!(rig.ich.delivered(), [102, 100]);
    for n in [100, 101, 102] {
        assert!(!rig.gic.active(n), "pINTID {n} left active");
    }
    rig.assert_clean();
}
