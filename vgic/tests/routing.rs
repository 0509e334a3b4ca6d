// SPDX-License-Identifier: MIT OR Apache-2.0
//! SPIs owned by the vCPU their GICD_IROUTER names: moves between vCPUs, cross-vCPU
//! changes through mail and kicks, forwarded SPIs' physical enable, route and active state,
//! and the effects buffer's bound.

mod common;

use common::*;
use fwd_irq::host_irq::enable_split_eoi;
use fwd_irq::hw::HostCpuIf;
use fwd_irq::{FwdError, Trigger};
use vgic::{AccessSize, Effect, Effects, IrqRef, VgicConfig, VgicError};

const D: AccessSize = AccessSize::Dword;

fn irouter(intid: u64) -> u64 {
    GICD + 0x6000 + 8 * intid
}

/// SPI `intid`'s bit in `GICD_<base><n>`, read by vCPU `by`.
fn bit(rig: &mut Rig, by: usize, base: u64, intid: u32) -> bool {
    rig.r32(by, GICD + base + 4 * u64::from(intid / 32)) & (1 << (intid % 32)) != 0
}

#[test]
fn an_spi_moves_with_its_pending_state() {
    let mut rig = Rig::new(2);
    rig.boot();
    rig.enable(0, 40, 0x80);
    assert_eq!(rig.vgic.spi_holder(v(40)).unwrap(), Some(vc(0)));
    rig.w32(0, GICD + 0x204, 1 << 8);
    // vCPU 0 routes it to vCPU 1 (0.0.0.1): it leaves vCPU 0 at once (its own sync), vCPU
    // 1 is kicked and adopts it at its next sync.
    rig.write(0, irouter(40), D, 1);
    assert_eq!(rig.kicks, set(&[1]));
    assert!(rig.cpus[0].virq(v(40)).is_none());
    assert_eq!(rig.vgic.spi_holder(v(40)).unwrap(), None);
    assert_eq!(rig.vgic.spi_target(v(40)).unwrap(), Some(vc(1)));
    assert!(bit(&mut rig, 0, 0x200, 40), "pending while in transit");
    assert!(rig.run(0).is_empty());
    assert_eq!(rig.run(1), [40]);
    assert_eq!(rig.vgic.spi_holder(v(40)).unwrap(), Some(vc(1)));
    assert_eq!(rig.vgic.stats().spi_moves, 1);
    let x = rig.cpus[1].virq(v(40)).unwrap().config();
    assert!(
        x.enabled && x.group1 && x.priority == 0x80,
        "configuration travels too"
    );
}

#[test]
fn an_active_spi_moves_once_the_guest_deactivates_it() {
    let mut rig = Rig::new(2);
    rig.boot();
    rig.enable(0, 41, 0x80);
    rig.w32(0, GICD + 0x204, 1 << 9);
    assert_eq!(rig.ack_and_exit(0), 41);
    // vCPU 1 re-routes it to itself while vCPU 0's guest handles it.
    rig.write(1, irouter(41), D, 1);
    assert_eq!(rig.kicks, set(&[0]));
    rig.sync(0);
    assert_eq!(
        rig.vgic.spi_holder(v(41)).unwrap(),
        Some(vc(0)),
        "still active"
    );
    assert!(rig.vgic.needs_sync(vc(0)), "the move waits");
    assert_eq!(rig.vgic.stats().spi_moves_deferred, 1);
    rig.eoi(0, 41);
    // The guest deactivated it; the move happens at vCPU 0's next sync (before entry).
    assert!(rig.vgic.needs_sync(vc(0)));
    rig.sync(0);
    assert!(rig.cpus[0].virq(v(41)).is_none());
    assert_eq!(rig.kicks, set(&[1]));
    assert!(!rig.vgic.needs_sync(vc(0)));
    rig.sync(1);
    assert_eq!(rig.vgic.spi_holder(v(41)).unwrap(), Some(vc(1)));
    // A new instance is delivered on vCPU 1.
    rig.w32(0, GICD + 0x204, 1 << 9);
    assert_eq!(rig.run(1), [41]);
    rig.assert_clean();
}

#[test]
fn a_route_to_no_vcpu_parks_the_spi() {
    let mut rig = Rig::new(2);
    rig.boot();
    rig.enable(0, 50, 0x80);
    rig.write(0, irouter(50), D, 0x0007_0000); // 0.7.0.0: nobody
    assert_eq!(
        rig.read(1, irouter(50), D).value,
        0x0007_0000,
        "reads the route"
    );
    assert_eq!(rig.vgic.spi_target(v(50)).unwrap(), None);
    rig.w32(1, GICD + 0x204, 1 << 18);
    assert!(rig.kicks.is_empty(), "nobody to kick");
    assert!(bit(&mut rig, 1, 0x200, 50), "pending");
    assert!(rig.run(0).is_empty() && rig.run(1).is_empty());
    // Routed to vCPU 1 again: delivered there.
    rig.write(0, irouter(50), D, 1);
    assert_eq!(rig.kicks, set(&[1]));
    assert_eq!(rig.run(1), [50]);
}

#[test]
fn cross_vcpu_pending_waits_as_mail() {
    let mut rig = Rig::new(2);
    rig.boot();
    rig.enable(0, 60, 0x80);
    // vCPU 1 makes SPI 60 (held by vCPU 0) pending.
    rig.w32(1, GICD + 0x204, 1 << 28);
    assert_eq!(rig.kicks, set(&[0]));
    assert!(
        !rig.cpus[0].virq(v(60)).unwrap().is_pending(),
        "vCPU 0's table untouched"
    );
    assert!(bit(&mut rig, 1, 0x200, 60), "vCPU 1 reads its own write");
    // Reading another vCPU's pending/active state kicks it to publish; group/enable no.
    rig.r32(1, GICD + 0x304);
    assert_eq!(rig.kicks, set(&[0]));
    rig.r32(1, GICD + 0x84);
    assert!(rig.kicks.is_empty());
    assert_eq!(rig.run(0), [60]);
    // vCPU 1 sees vCPU 0's state as of vCPU 0's last sync, and its read kicks vCPU 0,
    // whose sync before its next entry publishes the fresh state.
    assert!(bit(&mut rig, 1, 0x200, 60), "stale until vCPU 0 syncs");
    assert_eq!(rig.kicks, set(&[0]));
    rig.sync(0);
    assert!(!bit(&mut rig, 1, 0x200, 60));
    // ICPENDR from vCPU 1 after an ISPENDR from vCPU 1: the last one wins.
    rig.w32(1, GICD + 0x204, 1 << 28);
    rig.w32(1, GICD + 0x284, 1 << 28);
    assert!(rig.run(0).is_empty());
}

#[test]
fn disabling_a_group_holds_interrupts_back_on_every_vcpu() {
    let mut rig = Rig::new(2);
    rig.boot();
    rig.enable(0, 70, 0x80);
    rig.write(0, irouter(70), D, 1);
    rig.sync(1);
    rig.w32(0, GICD, 0); // both groups off
    assert_eq!(rig.kicks, set(&[1]));
    rig.w32(0, GICD + 0x208, 1 << 6);
    assert!(rig.run(1).is_empty());
    assert!(bit(&mut rig, 0, 0x200, 70));
    rig.w32(0, GICD, 0b10);
    assert_eq!(rig.run(1), [70]);
}

#[test]
fn emulated_device_lines() {
    let mut rig = Rig::new(2);
    rig.boot();
    rig.enable(1, 23, 0x80); // an emulated PPI of vCPU 1 (e.g. a PMU)
    rig.enable(0, 80, 0x80);
    rig.vgic
        .pulse(IrqRef::Private(vc(1), v(23)), &mut rig.fx)
        .unwrap();
    rig.drain();
    assert_eq!(rig.kicks, set(&[1]));
    assert_eq!(rig.run(1), [23]);
    // A level line: pending while high.
    rig.vgic
        .set_level(IrqRef::Spi(v(80)), true, &mut rig.fx)
        .unwrap();
    rig.drain();
    assert_eq!(rig.kicks, set(&[0]));
    assert_eq!(rig.run_with(0, |_, _| {}).first(), Some(&80));
    assert!(bit(&mut rig, 0, 0x200, 80), "still high: pending again");
    rig.vgic
        .set_level(IrqRef::Spi(v(80)), false, &mut rig.fx)
        .unwrap();
    rig.drain();
    rig.sync(0);
    assert!(!bit(&mut rig, 0, 0x200, 80));
    // Refusals.
    let fx = &mut rig.fx;
    assert_eq!(
        rig.vgic.pulse(IrqRef::Private(vc(0), v(40)), fx),
        Err(VgicError::NotPrivate { intid: 40 })
    );
    assert_eq!(
        rig.vgic.pulse(IrqRef::Spi(v(96)), fx),
        Err(VgicError::NotAnSpi { intid: 96 })
    );
    assert_eq!(
        rig.vgic.pulse(IrqRef::Spi(v(5)), fx),
        Err(VgicError::NotAnSpi { intid: 5 })
    );
    assert_eq!(
        rig.vgic.set_level(IrqRef::Private(vc(2), v(5)), true, fx),
        Err(VgicError::NoSuchVcpu { vcpu: 2 })
    );
}

/// The PL011's level SPI, forwarded with the HW bit: the physical SPI follows the guest's
/// enable and route, and the guest's deactivation deactivates it.
#[test]
fn forwarded_level_spi_end_to_end() {
    let mut at_forward = Vec::new();
    let mut rig = Rig::with(VgicConfig::new(GICD, GICR, 2), |g, _| {
        at_forward = forward_level(g, 33, 33);
    });
    assert_eq!(
        at_forward,
        [
            Effect::SetPhysEnabled {
                pintid: p(33),
                enabled: false
            },
            Effect::RoutePhys {
                pintid: p(33),
                vcpu: vc(0)
            }
        ]
    );
    enable_split_eoi(&mut rig.phys);
    rig.phys.configure(33, Trigger::Level, 0x80);
    rig.boot();
    rig.enable(0, 33, 0x80);
    assert_eq!(
        rig.effects,
        [Effect::SetPhysEnabled {
            pintid: p(33),
            enabled: true
        }]
    );
    assert!(rig.cpus[0].virq(v(33)).unwrap().is_mapped_level());

    // The UART raises its line; the host (on vCPU 0's PE) takes it and forwards it.
    rig.phys.set_line(33, true);
    let intid = rig.phys.ack();
    rig.phys.eoi(intid);
    assert_eq!(rig.cpus[0].on_phys_irq(p(intid)).unwrap(), v(33));
    let got = rig.run_with(0, |i, gic| {
        if i == 33 {
            gic.set_line(33, false); // the driver drains the FIFO
        }
    });
    assert_eq!(got, [33]);
    assert!(
        !rig.phys.active(33),
        "the guest's EOI deactivated the physical SPI"
    );

    // Routed to vCPU 1: the physical SPI follows when the SPI leaves vCPU 0.
    rig.effects.clear();
    rig.write(0, irouter(33), D, 1);
    assert_eq!(
        rig.effects,
        [Effect::RoutePhys {
            pintid: p(33),
            vcpu: vc(1)
        }]
    );
    // Before the hypervisor re-routed it, the SPI fires on vCPU 0's PE: not held there.
    rig.phys.set_line(33, true);
    let intid = rig.phys.ack();
    rig.phys.eoi(intid);
    assert_eq!(
        rig.cpus[0].on_phys_irq(p(33)),
        Err(FwdError::NotForwarded { pintid: 33 })
    );
    assert_eq!(rig.vgic.phys_irq(p(33), &mut rig.fx).unwrap(), v(33));
    rig.drain();
    assert!(rig.kicks.is_empty(), "nobody holds it yet");
    let got = rig.run_with(1, |i, gic| {
        if i == 33 {
            gic.set_line(33, false);
        }
    });
    assert_eq!(got, [33]);
    assert!(!rig.phys.active(33));

    // Disabled by the guest: the physical SPI too.
    rig.effects.clear();
    rig.w32(1, GICD + 0x184, 1 << 1);
    assert_eq!(
        rig.effects,
        [Effect::SetPhysEnabled {
            pintid: p(33),
            enabled: false
        }]
    );
    rig.assert_clean();
}

/// A guest ISPENDR on a forwarded SPI makes the physical SPI active (so the guest's
/// deactivation through HW = 1 is valid); an ICPENDR before it is taken undoes it.
#[test]
fn forwarded_spi_software_pending() {
    let mut rig = Rig::with(VgicConfig::new(GICD, GICR, 2), |g, _| {
        forward_level(g, 35, 35);
    });
    enable_split_eoi(&mut rig.phys);
    rig.phys.configure(35, Trigger::Level, 0x80);
    rig.boot();
    rig.enable(0, 35, 0x80);
    rig.effects.clear();
    // From vCPU 1: the physical change is made by the holder's sync, on vCPU 0.
    rig.w32(1, GICD + 0x204, 1 << 3);
    assert!(rig.effects.is_empty());
    let fx = rig.sync(0);
    assert_eq!(
        fx,
        [Effect::SetPhysActive {
            pintid: p(35),
            active: true
        }]
    );
    rig.w32(1, GICD + 0x284, 1 << 3);
    let fx = rig.sync(0);
    assert_eq!(
        fx,
        [Effect::SetPhysActive {
            pintid: p(35),
            active: false
        }]
    );
    // Again, and this time the guest takes it: its EOI deactivates an active SPI.
    rig.w32(0, GICD + 0x204, 1 << 3);
    assert_eq!(
        rig.effects.last(),
        Some(&Effect::SetPhysActive {
            pintid: p(35),
            active: true
        })
    );
    assert!(
        rig.phys.active(35),
        "applied by the rig, as a hypervisor would"
    );
    assert_eq!(rig.run(0), [35]);
    assert!(!rig.phys.active(35));
    rig.assert_clean();
}

/// A sync never overflows the effects buffer: with 64 forwarded SPIs made pending at once
/// it stops, and a second call finishes.
#[test]
fn sync_stops_before_the_buffer_overflows() {
    let mut rig = Rig::with(VgicConfig::new(GICD, GICR, 2), |g, _| {
        for i in 32..96 {
            forward_level(g, i, i);
        }
    });
    rig.boot();
    rig.w32(1, GICD + 0x204, u32::MAX);
    rig.w32(1, GICD + 0x208, u32::MAX);
    let done = rig.vgic.sync(vc(0), &mut rig.cpus[0], &mut rig.fx).unwrap();
    assert!(!done);
    // It stops once fewer than two slots are free (one interrupt makes at most two).
    assert_eq!(rig.fx.effects().len(), 63);
    assert!(rig.vgic.needs_sync(vc(0)));
    let first = rig.drain();
    let rest = rig.sync(0);
    assert_eq!(first.len() + rest.len(), 64);
    assert!(
        first
            .iter()
            .chain(&rest)
            .all(|e| matches!(e, Effect::SetPhysActive { active: true, .. }))
    );
    assert!(!rig.vgic.needs_sync(vc(0)));
    for i in 32..96 {
        assert!(rig.cpus[0].virq(v(i)).unwrap().pending_latch(), "{i}");
    }
}

#[test]
fn forwarding_refusals() {
    let mut rig = Rig::with(VgicConfig::new(GICD, GICR, 1), |g, _| {
        forward_level(g, 33, 33);
    });
    let mut fx = Effects::new();
    let g = &mut rig.vgic;
    assert_eq!(
        g.forward_spi(v(34), hw(40), Trigger::Level, &mut fx),
        Err(VgicError::SpiHeld { intid: 34 }),
        "vCPU 0 holds it already"
    );
    assert_eq!(
        g.forward_spi(v(33), hw(41), Trigger::Level, &mut fx),
        Err(VgicError::Forwarded { intid: 33 })
    );
    assert_eq!(
        g.forward_spi(v(20), hw(41), Trigger::Level, &mut fx),
        Err(VgicError::NotAnSpi { intid: 20 })
    );
    assert_eq!(
        g.forward_spi(v(33), hw(27), Trigger::Level, &mut fx),
        Err(VgicError::NotAnSpi { intid: 27 }),
        "a PPI cannot back an SPI"
    );
    assert!(fx.is_empty());
    assert_eq!(
        g.set_level(IrqRef::Spi(v(33)), true, &mut fx),
        Err(VgicError::Forwarded { intid: 33 })
    );
    assert_eq!(
        g.phys_irq(p(40), &mut fx),
        Err(VgicError::NotForwarded { pintid: 40 })
    );
    // Before attach: the same pINTID twice.
    let mut g2 = TestVgic::new(VgicConfig::new(GICD, GICR, 1)).unwrap();
    g2.forward_spi(v(40), hw(40), Trigger::Edge, &mut fx)
        .unwrap();
    fx.clear();
    assert_eq!(
        g2.forward_spi(v(41), hw(40), Trigger::Edge, &mut fx),
        Err(VgicError::PIntIdInUse {
            pintid: 40,
            intid: 40
        })
    );
}
