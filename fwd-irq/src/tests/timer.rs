// SPDX-License-Identifier: MIT OR Apache-2.0
//! The arch-timer flow: EOImode = 1, HW forwarding, put/load only, WFI with a host timer,
//! migration, and the software comparison flow.

use std::vec::Vec;

use super::{Rig, v};
use crate::fake::{GuestExit, PhysOp, TimerOp};
use crate::host_irq::HostIrq;
use crate::regs::LrState;
use crate::timer::{BlockOutcome, Residency, VtimerConfig, VtimerFwd};
use crate::vgic::{FwdMode, Trigger};

fn timer_rig(cfg: VtimerConfig) -> (Rig, VtimerFwd) {
    let mut rig = Rig::new(4);
    let mut vt = VtimerFwd::new(&mut rig.vgic, cfg).unwrap();
    rig.gic.configure(27, Trigger::Level, 0x20);
    rig.gic.configure(26, Trigger::Level, 0x20);
    vt.vcpu_load(&mut rig.timer, &mut rig.gic, &mut rig.vgic);
    (rig, vt)
}

/// Runs the guest until it idles; its timer handler disables the timer before EOI. Handles
/// exits on the way. Returns the exits taken.
fn guest_handles_timer(rig: &mut Rig, vt: &mut VtimerFwd) -> u64 {
    let start = rig.exits;
    for _ in 0..8 {
        rig.enter();
        let timer = &mut rig.timer;
        let why = rig.ich.guest_run(&mut rig.gic, 8, |vintid, gic| {
            if vintid == 27 {
                timer.guest_program(0, false, false);
                timer.drive(gic);
            }
        });
        if why == GuestExit::Idle {
            return rig.exits - start;
        }
        rig.exit();
        let irq = rig.host_irq(Some(vt));
        assert!(
            matches!(irq, HostIrq::Spurious | HostIrq::Vtimer(_)),
            "{irq:?}"
        );
    }
    panic!("guest never idled");
}

/// One timer interrupt while the guest is busy (no WFI; it is running when this starts and
/// when it returns). Returns the exits it cost.
fn busy_guest_timer_interrupt(rig: &mut Rig, vt: &mut VtimerFwd) -> u64 {
    let start = rig.exits;
    let deadline = rig.timer.virtual_now() + 100;
    rig.timer.guest_program(deadline, true, false);
    assert_eq!(rig.run(), GuestExit::Idle, "nothing to take yet");
    rig.timer.advance(100);
    rig.timer.drive(&mut rig.gic);
    assert_eq!(
        rig.gic.next_host_irq(),
        Some(27),
        "the timer fires while the guest runs"
    );
    rig.exit();
    assert_eq!(rig.host_irq(Some(vt)), HostIrq::Vtimer(v(27)));
    assert!(rig.gic.active(27), "priority drop only: left active");
    rig.timer.drive(&mut rig.gic);
    assert_eq!(
        rig.gic.next_host_irq(),
        None,
        "still asserted, but active: silent"
    );
    guest_handles_timer(rig, vt);
    assert!(!rig.gic.active(27), "deactivated");
    rig.exits - start
}

/// fwd_vtimer, host side: the physical PPI arrives, is left active, is injected through an
/// HW = 1 list register, and the guest's EOI deactivates it. One exit per timer interrupt,
/// no maintenance interrupt, and no timer register touched on entry or exit.
#[test]
fn vtimer_hw_forwarding_costs_one_exit_per_interrupt() {
    let (mut rig, mut vt) = timer_rig(VtimerConfig::bsa(FwdMode::Hw));
    rig.timer.clear_log();
    rig.enter();
    for _ in 0..5 {
        assert_eq!(busy_guest_timer_interrupt(&mut rig, &mut vt), 1);
    }
    assert_eq!(rig.ich.delivered(), [27; 5]);
    assert_eq!(rig.vgic.stats().maintenance_exits, 0);
    assert_eq!(vt.stats().host_irqs, 5);
    assert_eq!(
        rig.timer.hyp_accesses(),
        0,
        "no timer save/restore on entry/exit"
    );
    let hw_deactivations = rig
        .gic
        .log()
        .iter()
        .filter(|(_, op)| *op == PhysOp::HwDeactivate(27))
        .count();
    assert_eq!(hw_deactivations, 5, "each by the guest's EOI");
    assert!(
        !rig.gic
            .log()
            .iter()
            .any(|(_, op)| *op == PhysOp::Deactivate(27))
    );
    rig.assert_clean();
}

/// The same flow without the HW bit, for comparison: the guest's EOI raises an EOI
/// maintenance interrupt and the hypervisor deactivates the PPI. Two exits per interrupt.
#[test]
fn vtimer_software_flow_costs_two_exits_per_interrupt() {
    let (mut rig, mut vt) = timer_rig(VtimerConfig::bsa(FwdMode::EoiMaintenance));
    rig.enter();
    for _ in 0..5 {
        assert_eq!(busy_guest_timer_interrupt(&mut rig, &mut vt), 2);
    }
    assert_eq!(rig.ich.delivered(), [27; 5]);
    assert_eq!(rig.vgic.stats().maintenance_exits, 5);
    assert_eq!(rig.vgic.stats().eoi_deactivations, 5);
    assert!(
        !rig.gic
            .log()
            .iter()
            .any(|(_, op)| *op == PhysOp::HwDeactivate(27))
    );
    rig.assert_clean();
}

/// Timer state is saved and restored only on vCPU put and load, never on entry and exit.
#[test]
fn vtimer_state_moves_only_on_put_and_load() {
    let cfg = VtimerConfig {
        cntvoff: 1000,
        ..VtimerConfig::bsa(FwdMode::Hw)
    };
    let (mut rig, mut vt) = timer_rig(cfg);
    rig.timer.advance(5000);
    rig.timer.guest_program(9000, true, false);
    rig.timer.clear_log();
    for _ in 0..100 {
        rig.enter();
        rig.exit();
    }
    assert_eq!(rig.timer.hyp_accesses(), 0);

    vt.vcpu_put(&mut rig.timer, &mut rig.gic);
    let ops: Vec<TimerOp> = rig.timer.log().into_iter().map(|(_, op)| op).collect();
    assert_eq!(
        ops,
        [TimerOp::ReadCtl, TimerOp::ReadCval, TimerOp::WriteCtl(0)]
    );
    assert_eq!(vt.residency(), Residency::Put);
    assert!(
        !rig.timer.guest_view().0.enable(),
        "hardware timer disabled while put"
    );
    let (ctl, cval) = vt.saved();
    assert!(ctl.enable() && cval == 9000);
    vt.vcpu_put(&mut rig.timer, &mut rig.gic);
    assert_eq!(rig.timer.hyp_accesses(), 3, "a second put does nothing");

    rig.timer.clear_log();
    vt.vcpu_load(&mut rig.timer, &mut rig.gic, &mut rig.vgic);
    let ops: Vec<TimerOp> = rig.timer.log().into_iter().map(|(_, op)| op).collect();
    assert_eq!(
        ops,
        [
            TimerOp::WriteCntvoff(1000),
            TimerOp::ReadCntpct,
            TimerOp::WriteCval(9000),
            TimerOp::WriteCtl(1)
        ]
    );
    assert_eq!(rig.timer.guest_view().1, 9000);
    assert!(
        !rig.gic.active(27),
        "nothing pending: the PPI stays inactive"
    );
    assert_eq!((vt.stats().loads, vt.stats().puts), (2, 1));
    rig.assert_clean();
}

/// fwd_vtimer_wfi, host side: the guest idles in WFI with its timer armed. The hypervisor
/// puts the timer and arms the host timer for CVAL + CNTVOFF. When that fires, the PPI is
/// marked active before the expired timer is restored (so it cannot fire at the host), and
/// the forwarded interrupt is injected with HW = 1; the guest's EOI deactivates the PPI.
#[test]
fn vtimer_wfi_arms_host_timer_and_expiry_injects_with_physical_active() {
    let cfg = VtimerConfig {
        cntvoff: 5000,
        ..VtimerConfig::bsa(FwdMode::Hw)
    };
    let (mut rig, mut vt) = timer_rig(cfg);
    rig.timer.advance(10_000);
    assert_eq!(rig.timer.virtual_now(), 5000);
    rig.timer.guest_program(6000, true, false);

    rig.enter();
    assert_eq!(rig.run(), GuestExit::Idle);
    rig.exit(); // WFI trap
    assert!(!rig.vgic.has_pending());
    let outcome = vt.vcpu_block(
        &mut rig.timer,
        &mut rig.gic,
        &mut rig.host_timer,
        &mut rig.vgic,
    );
    assert_eq!(outcome, BlockOutcome::Armed { deadline: 11_000 });
    assert_eq!(rig.host_timer.deadline(), Some(11_000));
    assert_eq!(
        vt.residency(),
        Residency::Blocked {
            deadline: Some(11_000)
        }
    );
    assert!(!rig.timer.guest_view().0.enable());

    rig.timer.advance(999);
    rig.host_timer.drive(&mut rig.gic);
    assert_eq!(rig.gic.next_host_irq(), None, "not yet");
    rig.timer.advance(1);
    rig.host_timer.drive(&mut rig.gic);
    rig.timer.drive(&mut rig.gic);
    assert_eq!(
        rig.gic.next_host_irq(),
        Some(26),
        "the host timer, not the (disabled) vtimer"
    );
    assert_eq!(
        rig.host_irq(Some(&mut vt)),
        HostIrq::HostTimer { woke: true }
    );
    assert!(
        !rig.gic.active(26),
        "the host's own interrupt is deactivated"
    );
    assert_eq!(rig.host_timer.deadline(), None);
    rig.host_timer.drive(&mut rig.gic);
    assert!(!rig.gic.pending(26), "disarmed: its line dropped");
    assert!(rig.vgic.virq(v(27)).unwrap().is_pending());

    vt.vcpu_unblock(
        &mut rig.timer,
        &mut rig.gic,
        &mut rig.host_timer,
        &mut rig.vgic,
    );
    let set_active = rig
        .gic
        .log()
        .iter()
        .find(|(_, op)| *op == PhysOp::SetActive(27, true))
        .map(|&(seq, _)| seq)
        .expect("PPI 27 marked active");
    let ctl_restored = rig
        .timer
        .log()
        .iter()
        .find(|(_, op)| *op == TimerOp::WriteCtl(1))
        .map(|&(seq, _)| seq)
        .expect("CNTV_CTL_EL0 restored");
    assert!(
        set_active < ctl_restored,
        "active before the expired timer is restored"
    );
    rig.timer.drive(&mut rig.gic);
    assert!(rig.gic.pending(27) && rig.gic.active(27));
    assert_eq!(
        rig.gic.next_host_irq(),
        None,
        "the expired timer cannot fire at the host"
    );

    rig.enter();
    let lr = rig.ich.lr(0);
    assert_eq!(
        (lr.vintid(), lr.pintid(), lr.state()),
        (27, Some(27), LrState::Pending)
    );
    assert_eq!(guest_handles_timer(&mut rig, &mut vt), 0);
    assert_eq!(rig.ich.delivered(), [27]);
    assert!(!rig.gic.active(27));
    assert_eq!((vt.stats().wakeups, vt.stats().host_irqs), (1, 0));
    rig.assert_clean();
}

/// WFI with the deadline already passed: no host timer, the interrupt is signalled at once.
/// WFI with the timer disabled or masked: nothing to arm.
#[test]
fn vtimer_wfi_expired_or_disabled() {
    let (mut rig, mut vt) = timer_rig(VtimerConfig::bsa(FwdMode::Hw));
    rig.timer.advance(500);
    rig.timer.guest_program(400, true, false);
    let outcome = vt.vcpu_block(
        &mut rig.timer,
        &mut rig.gic,
        &mut rig.host_timer,
        &mut rig.vgic,
    );
    assert_eq!(outcome, BlockOutcome::Expired);
    assert!(rig.host_timer.log().is_empty(), "nothing armed");
    assert!(rig.vgic.has_pending());
    vt.vcpu_unblock(
        &mut rig.timer,
        &mut rig.gic,
        &mut rig.host_timer,
        &mut rig.vgic,
    );
    assert!(rig.gic.active(27));
    assert_eq!(guest_handles_timer(&mut rig, &mut vt), 0);
    assert_eq!(rig.ich.delivered(), [27]);

    rig.timer.guest_program(10_000, true, true); // masked
    let outcome = vt.vcpu_block(
        &mut rig.timer,
        &mut rig.gic,
        &mut rig.host_timer,
        &mut rig.vgic,
    );
    assert_eq!(outcome, BlockOutcome::NoDeadline);
    assert!(
        !vt.on_host_timer(&mut rig.host_timer, &mut rig.vgic),
        "a stray host timer wakes nothing"
    );
    vt.vcpu_unblock(
        &mut rig.timer,
        &mut rig.gic,
        &mut rig.host_timer,
        &mut rig.vgic,
    );
    assert_eq!(vt.residency(), Residency::Loaded);
    rig.assert_clean();
}

/// fwd_vtimer_migrate, host side: the timer fired on PE A and the host left PPI 27 active
/// there; before the guest ran, the vCPU moved to PE B. Put clears A's PPI active state, load
/// sets B's (the interrupt is pending), and the guest's EOI on B deactivates B's PPI.
#[test]
fn vtimer_migrates_with_its_active_state() {
    let (mut a, mut vt) = timer_rig(VtimerConfig::bsa(FwdMode::Hw));
    let mut b = Rig::new(4);
    b.gic.configure(27, Trigger::Level, 0x20);

    a.timer.guest_program(100, true, false);
    a.timer.advance(100);
    b.timer.advance(100);
    a.timer.drive(&mut a.gic);
    a.enter();
    assert_eq!(a.run(), GuestExit::PhysIrq);
    a.exit();
    assert_eq!(a.host_irq(Some(&mut vt)), HostIrq::Vtimer(v(27)));
    assert!(a.gic.active(27));

    // Migrate A -> B.
    a.vgic.save_cpuif(&a.ich);
    vt.vcpu_put(&mut a.timer, &mut a.gic);
    assert!(vt.phys_active_at_put());
    a.timer.drive(&mut a.gic);
    assert!(!a.gic.active(27) && !a.gic.pending(27), "A is left clean");
    let mut vgic = core::mem::replace(&mut a.vgic, b.vgic.clone());
    vgic.restore_cpuif(&mut b.ich);
    vt.vcpu_load(&mut b.timer, &mut b.gic, &mut vgic);
    b.vgic = vgic;
    b.timer.drive(&mut b.gic);
    assert!(b.gic.active(27) && b.gic.pending(27));
    assert_eq!(b.gic.next_host_irq(), None);

    assert_eq!(guest_handles_timer(&mut b, &mut vt), 0);
    assert_eq!(b.ich.delivered(), [27]);
    assert!(!b.gic.active(27));
    assert_eq!(a.gic.next_host_irq(), None);
    a.assert_clean();
    b.assert_clean();
}
