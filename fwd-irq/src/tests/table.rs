// SPDX-License-Identifier: MIT OR Apache-2.0
//! The forwarding table, typed errors, and CPU-interface save/restore.

use super::{Rig, p, v};
use crate::error::FwdError;
use crate::fake::{FakeIch, FakePhysGic};
use crate::hw::IchRegs;
use crate::ids::ApIndex;
use crate::regs::{IchApr, IchHcr, IchLr, IchVmcr, IchVtr};
use crate::vgic::{Forward, FwdMode, VgicCpu, VirqConfig};

const HW: FwdMode = FwdMode::Hw;

#[test]
fn forwarding_table_lookups_both_ways() {
    let mut vgic = VgicCpu::<8>::new(4).unwrap();
    vgic.map(
        v(40),
        VirqConfig::edge(0x80),
        Forward {
            pintid: p(33),
            mode: HW,
        },
    )
    .unwrap();
    vgic.map(
        v(27),
        VirqConfig::level(0xA0),
        Forward {
            pintid: p(27),
            mode: HW,
        },
    )
    .unwrap();
    vgic.configure(v(5), VirqConfig::edge(0x80)).unwrap();

    assert_eq!(vgic.by_pintid(p(33)).unwrap().vintid(), v(40));
    assert_eq!(vgic.virq(v(40)).unwrap().forward().unwrap().pintid, p(33));
    assert!(vgic.virq(v(27)).unwrap().is_mapped_level());
    assert!(vgic.by_pintid(p(34)).is_none());
    assert!(vgic.virq(v(5)).unwrap().forward().is_none());
    let order: std::vec::Vec<u32> = vgic.iter().map(|x| x.vintid().get()).collect();
    assert_eq!(order, [5, 27, 40]);

    let removed = vgic.remove(v(40)).unwrap();
    assert_eq!(removed.vintid(), v(40));
    assert!(vgic.by_pintid(p(33)).is_none());
}

#[test]
fn typed_errors_instead_of_panics() {
    let mut vgic = VgicCpu::<2>::new(4).unwrap();
    vgic.configure(v(1), VirqConfig::edge(0)).unwrap();
    assert_eq!(
        vgic.configure(v(1), VirqConfig::edge(0)),
        Err(FwdError::AlreadyConfigured { vintid: 1 })
    );
    vgic.map(
        v(2),
        VirqConfig::edge(0),
        Forward {
            pintid: p(40),
            mode: HW,
        },
    )
    .unwrap();
    assert_eq!(
        vgic.map(
            v(3),
            VirqConfig::edge(0),
            Forward {
                pintid: p(41),
                mode: HW
            }
        ),
        Err(FwdError::TableFull { capacity: 2 })
    );
    assert_eq!(
        vgic.map(
            v(3),
            VirqConfig::edge(0),
            Forward {
                pintid: p(40),
                mode: HW
            }
        ),
        Err(FwdError::PIntIdInUse {
            pintid: 40,
            vintid: 2
        })
    );
    assert_eq!(
        vgic.inject(v(9)),
        Err(FwdError::NotConfigured { vintid: 9 })
    );
    assert_eq!(
        vgic.remove(v(9)),
        Err(FwdError::NotConfigured { vintid: 9 })
    );
    assert_eq!(
        vgic.on_phys_irq(p(41)),
        Err(FwdError::NotForwarded { pintid: 41 })
    );
    assert_eq!(vgic.on_phys_irq(p(40)), Ok(v(2)));

    assert!(matches!(
        VgicCpu::<2>::new(0),
        Err(FwdError::LrIndexOutOfRange { index: 0, .. })
    ));
    assert!(matches!(
        VgicCpu::<2>::new(17),
        Err(FwdError::LrIndexOutOfRange { index: 17, .. })
    ));
    assert_eq!(
        VgicCpu::<2>::from_vtr(IchVtr::new().with_listregs(16)).map(|c| c.nr_lrs()),
        Err(FwdError::TooManyListRegs { reported: 17 })
    );
    assert_eq!(
        VgicCpu::<2>::from_vtr(IchVtr::new().with_listregs(15))
            .unwrap()
            .nr_lrs(),
        16
    );
    assert!(crate::ids::VIntId::new(5000).is_err());
    assert!(crate::ids::LrIndex::new(16).is_err());
}

/// A fold of values saved by the world switch itself (no IchRegs) behaves like fold_lrs,
/// and extra or missing values are harmless.
#[test]
fn fold_saved_values_without_register_access() {
    let mut vgic = VgicCpu::<8>::new(2).unwrap();
    vgic.configure(v(50), VirqConfig::edge(0x80)).unwrap();
    vgic.configure(v(51), VirqConfig::edge(0x80)).unwrap();
    vgic.inject(v(50)).unwrap();
    vgic.inject(v(51)).unwrap();
    let plan = vgic.plan_populate();
    assert_eq!(plan.writes().count(), 2);
    let mut saved = [plan.lrs()[0], plan.lrs()[1], IchLr::new()];
    saved[0] = saved[0].with_state(crate::regs::LrState::Active);
    let mut phys = FakePhysGic::new();
    let report = vgic.fold_saved(&saved, &mut phys);
    assert_eq!((report.acknowledged, report.still_pending), (1, 1));
    assert!(vgic.virq(v(50)).unwrap().is_active());
    assert!(vgic.virq(v(51)).unwrap().is_pending());

    let _ = vgic.plan_populate();
    let report = vgic.fold_saved(&[], &mut phys);
    assert_eq!(report.completed, 2, "missing values count as invalid");
}

/// vCPU put/load of the CPU-interface state: VMCR and the implemented active-priorities
/// registers only, and the trap bits of the base ICH_HCR_EL2 survive populate.
#[test]
fn cpu_interface_state_save_and_restore() {
    let mut rig = Rig::new(4);
    let vmcr = IchVmcr::group1_all().with_vbpr1(3).with_veoim(true);
    rig.ich.guest_set_vmcr(vmcr);
    rig.ich
        .set_ap1r(ApIndex::new(0).unwrap(), IchApr::new().with_p(1 << 4));
    rig.vgic.save_cpuif(&rig.ich);
    assert_eq!(rig.vgic.cpuif().vmcr, vmcr);
    assert_eq!(rig.vgic.cpuif().ap1r[0].p(), 1 << 4);

    let mut other = FakeIch::new(4);
    rig.vgic.restore_cpuif(&mut other);
    assert_eq!(other.vmcr(), vmcr);
    assert_eq!(other.ap1r(ApIndex::new(0).unwrap()).p(), 1 << 4);
    let aprs_touched = other
        .log()
        .iter()
        .filter(|(_, op)| matches!(op, crate::fake::IchOp::WriteAp1r(..)))
        .count();
    assert_eq!(aprs_touched, 1, "5 preemption bits: one AP1R");

    rig.vgic
        .set_hcr_base(IchHcr::new().with_tdir(true).with_en(true).with_uie(true));
    let plan = rig.enter();
    assert!(plan.hcr().tdir() && plan.hcr().en() && !plan.hcr().uie());
    rig.exit();
    assert_eq!(
        rig.ich.hcr_value(),
        IchHcr::new().with_tdir(true),
        "parked keeps trap bits"
    );
}

/// An emulated distributor rewrites priority, group and enable without losing the state the
/// guest is in the middle of: pending, line level, active, forwarding.
#[test]
fn set_config_keeps_state_and_forwarding() {
    let mut vgic = VgicCpu::<8>::new(4).unwrap();
    vgic.map(
        v(33),
        VirqConfig::level(0x80),
        Forward {
            pintid: p(33),
            mode: HW,
        },
    )
    .unwrap();
    vgic.inject(v(33)).unwrap();
    vgic.set_active(v(33), true).unwrap();
    let cfg = VirqConfig {
        priority: 0x20,
        group1: false,
        trigger: crate::vgic::Trigger::Level,
        enabled: false,
    };
    vgic.set_config(v(33), cfg).unwrap();
    let irq = vgic.virq(v(33)).unwrap();
    assert_eq!(irq.config(), cfg);
    assert!(irq.line_level() && irq.is_active());
    assert_eq!(irq.forward().unwrap().pintid, p(33));

    // The new priority and group reach the list register; disabled, only the active
    // instance is listed.
    let plan = vgic.plan_populate();
    assert_eq!(plan.lrs().len(), 1);
    let lr = plan.lrs()[0];
    assert_eq!((lr.priority(), lr.group()), (0x20, false));
    assert_eq!(lr.state(), crate::regs::LrState::Active);

    assert_eq!(
        vgic.set_config(v(34), cfg),
        Err(FwdError::NotConfigured { vintid: 34 })
    );
}

/// The emulated ISACTIVER / ICACTIVER: an interrupt made active is listed active, and
/// clearing it again leaves nothing to list.
#[test]
fn set_active_is_listed_and_cleared() {
    let mut vgic = VgicCpu::<8>::new(4).unwrap();
    vgic.configure(v(40), VirqConfig::edge(0x80)).unwrap();
    assert!(!vgic.needs_phys_active(v(40)));
    vgic.set_active(v(40), true).unwrap();
    assert!(vgic.virq(v(40)).unwrap().is_active());
    assert!(vgic.needs_phys_active(v(40)));
    let plan = vgic.plan_populate();
    assert_eq!(plan.lrs()[0].state(), crate::regs::LrState::Active);
    let mut phys = FakePhysGic::new();
    vgic.fold_saved(plan.lrs(), &mut phys);
    vgic.set_active(v(40), false).unwrap();
    assert!(!vgic.needs_phys_active(v(40)));
    assert_eq!(vgic.plan_populate().lrs().len(), 0);
    assert_eq!(
        vgic.set_active(v(41), true),
        Err(FwdError::NotConfigured { vintid: 41 })
    );
}
