// SPDX-License-Identifier: MIT OR Apache-2.0
//! The physical-IRQ path when the exception vector acknowledged the interrupt itself.

use super::{Rig, p, v};
use crate::fake::PhysOp;
use crate::host_irq::{HostIrq, HostPpis, handle_acked_irq};
use crate::hw::{HostCpuIf, PhysIrqState};
use crate::timer::{BlockOutcome, VtimerConfig, VtimerFwd};
use crate::vgic::{Forward, FwdMode, Trigger, VirqConfig};

/// What the exception vector of such a hypervisor does before the run loop sees the exit.
fn vector_ack(rig: &mut Rig) -> u32 {
    let intid = rig.gic.ack();
    if intid < 1020 {
        rig.gic.eoi(intid);
    }
    intid
}

fn acked(rig: &mut Rig, vt: Option<&mut VtimerFwd>, intid: u32) -> HostIrq {
    handle_acked_irq(
        &mut rig.gic,
        &mut rig.vgic,
        vt,
        &mut rig.host_timer,
        HostPpis::BSA,
        intid,
    )
}

/// Every kind of interrupt ends up where [`crate::handle_host_irq`] would send it, and
/// `handle_acked_irq` itself never acknowledges or EOIs: forwarded ones stay active, the
/// maintenance and host-timer PPIs and nothing else are deactivated.
#[test]
fn acked_interrupts_are_dispatched_without_a_second_acknowledge() {
    let mut rig = Rig::new(4);
    let mut vt = VtimerFwd::new(&mut rig.vgic, VtimerConfig::bsa(FwdMode::Hw)).unwrap();
    vt.vcpu_load(&mut rig.timer, &mut rig.gic, &mut rig.vgic);
    rig.vgic
        .map(
            v(40),
            VirqConfig::level(0x80),
            Forward {
                pintid: p(40),
                mode: FwdMode::Hw,
            },
        )
        .unwrap();
    for (n, trigger) in [
        (25, Trigger::Level),
        (26, Trigger::Level),
        (27, Trigger::Level),
        (40, Trigger::Level),
        (41, Trigger::Edge),
    ] {
        rig.gic.configure(n, trigger, 0x80);
    }

    // The virtual timer's PPI: forwarded, left active.
    rig.gic.set_line(27, true);
    let intid = vector_ack(&mut rig);
    rig.gic.clear_log();
    assert_eq!(
        acked(&mut rig, Some(&mut vt), intid),
        HostIrq::Vtimer(v(27))
    );
    assert!(rig.gic.active(27));
    assert!(
        rig.gic.log().is_empty(),
        "no GIC access: {:?}",
        rig.gic.log()
    );
    assert!(rig.vgic.has_pending());
    rig.gic.set_line(27, false);
    rig.gic.set_active(p(27), false);

    // A mapped SPI: forwarded, left active.
    rig.gic.set_line(40, true);
    let intid = vector_ack(&mut rig);
    assert_eq!(
        acked(&mut rig, None, intid),
        HostIrq::Forwarded {
            pintid: p(40),
            vintid: v(40)
        }
    );
    assert!(rig.gic.active(40));

    // Maintenance: deactivated with DIR, and only that.
    rig.gic.set_line(25, true);
    let intid = vector_ack(&mut rig);
    rig.gic.clear_log();
    assert_eq!(acked(&mut rig, None, intid), HostIrq::Maintenance);
    assert_eq!(
        rig.gic
            .log()
            .iter()
            .map(|(_, op)| *op)
            .collect::<std::vec::Vec<_>>(),
        [PhysOp::Deactivate(25)]
    );
    rig.gic.set_line(25, false);

    // The host timer of a blocked vCPU: wakes it and is deactivated.
    let deadline = rig.timer.virtual_now() + 50;
    rig.timer.guest_program(deadline, true, false);
    assert!(matches!(
        vt.vcpu_block(
            &mut rig.timer,
            &mut rig.gic,
            &mut rig.host_timer,
            &mut rig.vgic
        ),
        BlockOutcome::Armed { .. }
    ));
    rig.timer.advance(50);
    rig.host_timer.drive(&mut rig.gic);
    let intid = vector_ack(&mut rig);
    assert_eq!(intid, 26);
    assert_eq!(
        acked(&mut rig, Some(&mut vt), intid),
        HostIrq::HostTimer { woke: true }
    );
    assert!(!rig.gic.active(26));
    assert_eq!(rig.host_timer.deadline(), None, "disarmed");
    rig.host_timer.drive(&mut rig.gic);

    // Anything else: handed back still active for the caller to deactivate.
    rig.gic.pulse(41);
    let intid = vector_ack(&mut rig);
    assert_eq!(acked(&mut rig, None, intid), HostIrq::Other(41));
    assert!(rig.gic.active(41));

    // Special INTIDs touch nothing.
    rig.gic.clear_log();
    for special in 1020..=1023 {
        assert_eq!(acked(&mut rig, Some(&mut vt), special), HostIrq::Spurious);
    }
    assert!(rig.gic.log().is_empty());
    rig.assert_clean();
}
