// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every refusal is a typed error and leaves the state as it was.

mod common;

use common::*;
use fwd_irq::{VgicCpu, VirqConfig};
use vgic::{AccessSize, Affinity, Effects, SgiRegister, Vgic, VgicConfig, VgicError};

#[test]
fn bad_configurations() {
    let new = |cfg: VgicConfig<4>| TestVgic::new(cfg).map(drop);
    let ok = VgicConfig::<4>::new(GICD, GICR, 4);
    assert_eq!(new(ok), Ok(()));
    assert_eq!(
        new(VgicConfig::new(GICD, GICR, 0)),
        Err(VgicError::VcpuCount {
            requested: 0,
            capacity: 4
        })
    );
    assert_eq!(
        new(VgicConfig::new(GICD, GICR, 5)),
        Err(VgicError::VcpuCount {
            requested: 5,
            capacity: 4
        })
    );
    assert_eq!(
        new(VgicConfig::new(GICD + 0x1000, GICR, 1)),
        Err(VgicError::FrameLayout {
            base: GICD + 0x1000
        })
    );
    // The distributor inside the redistributor region of 4 vCPUs.
    assert_eq!(
        new(VgicConfig::new(GICR + 0x6_0000, GICR, 4)),
        Err(VgicError::FrameLayout { base: GICR })
    );
    assert_eq!(
        new(VgicConfig::new(GICD, u64::MAX - 0xFFFF, 4)),
        Err(VgicError::FrameLayout {
            base: u64::MAX - 0xFFFF
        })
    );
    assert_eq!(
        new(ok.with_affinity(3, Affinity::new(0, 0, 0, 1))),
        Err(VgicError::DuplicateAffinity {
            first: 1,
            second: 3
        })
    );
    // A duplicate beyond nr_vcpus does not count.
    let two = VgicConfig::<4>::new(GICD, GICR, 2).with_affinity(3, Affinity::new(0, 0, 0, 1));
    assert_eq!(new(two), Ok(()));
    for bits in [0, 3, 9] {
        assert_eq!(
            new(ok.with_priority_bits(bits)),
            Err(VgicError::PriorityBits { bits })
        );
    }
    for bits in [13, 25] {
        assert_eq!(new(ok.with_lpis(bits)), Err(VgicError::LpiIdBits { bits }));
    }
    assert_eq!(new(ok.with_lpis(14)), Ok(()));
    assert_eq!(new(ok.with_lpis(24)), Ok(()));
    // More vCPUs than sets of vCPUs can name.
    assert_eq!(
        Vgic::<65, 32>::new(VgicConfig::new(GICD, GICR, 1)).map(drop),
        Err(VgicError::VcpuCount {
            requested: 1,
            capacity: 64
        })
    );
}

#[test]
fn attach_refusals_change_nothing() {
    let mut g = TestVgic::new(VgicConfig::new(GICD, GICR, 2)).unwrap();
    let mut fx = Effects::new();
    // Too small for 32 + 64 interrupts.
    let mut small = VgicCpu::<95>::new(4).unwrap();
    assert_eq!(
        g.attach(vc(0), &mut small, &mut fx),
        Err(VgicError::VcpuTableTooSmall {
            capacity: 95,
            needed: 96
        })
    );
    assert_eq!(small.iter().count(), 0);
    assert!(!g.is_attached(vc(0)));
    // An SPI of the VM's range already in the table.
    let mut cpu = VgicCpu::<TABLE>::new(4).unwrap();
    cpu.configure(v(40), VirqConfig::edge(0)).unwrap();
    assert_eq!(
        g.attach(vc(0), &mut cpu, &mut fx),
        Err(VgicError::SpiInVcpuTable { intid: 40 })
    );
    assert_eq!(cpu.iter().count(), 1);
    // No such vCPU; effects not drained.
    let mut cpu = VgicCpu::<TABLE>::new(4).unwrap();
    assert_eq!(
        g.attach(vc(2), &mut cpu, &mut fx),
        Err(VgicError::NoSuchVcpu { vcpu: 2 })
    );
    g.pulse(vgic::IrqRef::Private(vc(1), v(3)), &mut fx)
        .unwrap();
    assert!(fx.is_empty(), "vCPU 1 holds nothing yet: no kick");
    g.attach(vc(0), &mut cpu, &mut fx).unwrap();
    assert_eq!(cpu.iter().count(), 96);
    assert_eq!(
        g.attach(vc(0), &mut cpu, &mut fx),
        Err(VgicError::AlreadyAttached { vcpu: 0 })
    );
}

#[test]
fn call_refusals() {
    let mut rig = Rig::new(2);
    let w = AccessSize::Word;
    let g = &mut rig.vgic;
    let cpu = &mut rig.cpus[0];
    let mut fx = Effects::new();
    assert_eq!(
        g.read(vc(3), cpu, GICD, w, &mut fx),
        Err(VgicError::NoSuchVcpu { vcpu: 3 })
    );
    assert_eq!(
        g.write(vc(0), cpu, GICD + 0x1_0000, w, 0, &mut fx),
        Err(VgicError::NotVgicAddress {
            ipa: GICD + 0x1_0000
        })
    );
    assert_eq!(
        g.sync(vc(2), cpu, &mut fx),
        Err(VgicError::NoSuchVcpu { vcpu: 2 })
    );
    assert_eq!(g.lpi_regs(vc(2)), Err(VgicError::NoSuchVcpu { vcpu: 2 }));
    assert_eq!(g.spi_target(v(96)), Err(VgicError::NotAnSpi { intid: 96 }));
    assert_eq!(g.spi_holder(v(31)), Err(VgicError::NotAnSpi { intid: 31 }));
    // An undrained buffer is refused before anything changes.
    g.write(vc(0), cpu, GICD, w, 0b10, &mut fx).unwrap();
    assert!(!fx.is_empty());
    let before = g.stats();
    assert_eq!(
        g.write(vc(0), cpu, GICD, w, 0, &mut fx),
        Err(VgicError::EffectsNotDrained { pending: 1 })
    );
    assert_eq!(
        g.read(vc(0), cpu, GICD, w, &mut fx),
        Err(VgicError::EffectsNotDrained { pending: 1 })
    );
    assert_eq!(
        g.sgi(vc(0), cpu, SgiRegister::Sgi1r, 1, &mut fx),
        Err(VgicError::EffectsNotDrained { pending: 1 })
    );
    assert_eq!(g.stats(), before);
    fx.clear();
    assert_eq!(
        g.read(vc(0), cpu, GICD, w, &mut fx).unwrap().value,
        0x52,
        "the refused write did not happen"
    );
}

/// Every public error type is small enough to return by value (at most 64 bytes).
#[test]
fn errors_are_small() {
    use core::mem::size_of;
    for (name, size) in [
        ("VgicError", size_of::<VgicError>()),
        ("AbortError", size_of::<vgic::trap::AbortError>()),
    ] {
        println!("{name}: {size} bytes");
        assert!(size <= 64, "{name} is {size} bytes");
    }
}
