// SPDX-License-Identifier: MIT OR Apache-2.0
//! Trapped SGI generation: ICC_SGI1R_EL1 decoded field by field, targets resolved by
//! affinity, group filtering for ICC_SGI0R_EL1 / ICC_ASGI1R_EL1, delivery and kicks.

mod common;

use common::*;
use fwd_irq::VgicCpu;
use vgic::trap::SysRegAccess;
use vgic::{Affinity, Effects, SgiRegister, SgiRequest, SgiTargets, VgicConfig, VgicError};

/// An ICC_SGI1R_EL1 value from its fields.
fn sgi1r(aff3: u8, rs: u8, irm: bool, aff2: u8, intid: u8, aff1: u8, list: u16) -> u64 {
    (u64::from(aff3) << 48)
        | (u64::from(rs) << 44)
        | (u64::from(irm) << 40)
        | (u64::from(aff2) << 32)
        | (u64::from(intid) << 24)
        | (u64::from(aff1) << 16)
        | u64::from(list)
}

#[test]
fn every_field_decodes() {
    // Aff3 0xA3, RS 0x9, IRM 0, Aff2 0xB2, INTID 0xE, Aff1 0xC1, TargetList 0x8421, and
    // every RES0 bit set ([63:56], [43:41], [31:28]).
    let raw = 0xFFA3_9EB2_FEC1_8421;
    let r = SgiRequest::new(raw);
    assert_eq!(r.raw(), raw);
    assert_eq!(r.aff3(), 0xA3);
    assert_eq!(r.rs(), 0x9);
    assert!(!r.irm());
    assert_eq!(r.aff2(), 0xB2);
    assert_eq!(r.intid(), 0xE);
    assert_eq!(r.aff1(), 0xC1);
    assert_eq!(r.target_list(), 0x8421);
    assert_eq!(
        r.targets(),
        SgiTargets::List {
            aff3: 0xA3,
            aff2: 0xB2,
            aff1: 0xC1,
            rs: 9,
            target_list: 0x8421
        }
    );
    assert_eq!(
        raw & 0x00FF_F1FF_0FFF_FFFF,
        sgi1r(0xA3, 9, false, 0xB2, 0xE, 0xC1, 0x8421)
    );
    // IRM = 1: all but self, whatever the affinity fields say.
    let r = SgiRequest::new(sgi1r(1, 2, true, 3, 4, 5, 6));
    assert!(r.irm());
    assert_eq!(r.targets(), SgiTargets::AllButSelf);
    assert!(r.targets().includes(Affinity::new(9, 9, 9, 9), false));
    assert!(!r.targets().includes(Affinity::new(9, 9, 9, 9), true));
}

#[test]
fn target_list_and_range_selector() {
    let t = SgiRequest::new(sgi1r(1, 2, false, 3, 0, 4, 0b1010)).targets();
    // TargetList bit n is Aff0 = RS * 16 + n = 32 + n.
    assert!(t.includes(Affinity::new(1, 3, 4, 33), false));
    assert!(
        t.includes(Affinity::new(1, 3, 4, 35), true),
        "the sender if listed"
    );
    assert!(!t.includes(Affinity::new(1, 3, 4, 34), false));
    assert!(!t.includes(Affinity::new(1, 3, 4, 1), false), "RS 0 range");
    assert!(!t.includes(Affinity::new(1, 3, 4, 49), false), "RS 3 range");
    assert!(!t.includes(Affinity::new(0, 3, 4, 33), false), "Aff3");
    assert!(!t.includes(Affinity::new(1, 2, 4, 33), false), "Aff2");
    assert!(!t.includes(Affinity::new(1, 3, 5, 33), false), "Aff1");
}

#[test]
fn registers_from_trapped_msr() {
    let msr = |op2: u64| 0x6230_3000 | (op2 << 17) | (11 << 1) | (2 << 5);
    let reg = |esr| SgiRegister::from_trap(&SysRegAccess::decode(esr).unwrap());
    assert_eq!(reg(msr(5)), Some(SgiRegister::Sgi1r));
    assert_eq!(reg(msr(6)), Some(SgiRegister::Asgi1r));
    assert_eq!(reg(msr(7)), Some(SgiRegister::Sgi0r));
    assert_eq!(reg(msr(4)), None, "ICC_DIR_EL1 is not one");
    assert_eq!(reg(msr(5) | 1), None, "an MRS");
    assert_eq!(reg(msr(5) & !(0xF << 1)), None, "CRm 0");
    assert!(SgiRegister::Sgi1r.reaches(true) && SgiRegister::Sgi1r.reaches(false));
    for r in [SgiRegister::Sgi0r, SgiRegister::Asgi1r] {
        assert!(r.reaches(false) && !r.reaches(true));
    }
}

/// 4 vCPUs: 0.0.0.0, 0.0.0.1, 0.0.1.0, 1.0.0.17.
fn cluster() -> Rig {
    let cfg = VgicConfig::new(GICD, GICR, 4)
        .with_affinity(2, Affinity::new(0, 0, 1, 0))
        .with_affinity(3, Affinity::new(1, 0, 0, 17));
    let mut rig = Rig::with(cfg, |_, _| {});
    rig.boot();
    for k in 0..4 {
        for sgi_id in [1, 2] {
            rig.enable(k, sgi_id, 0x80);
        }
    }
    rig.effects.clear();
    rig
}

fn send(rig: &mut Rig, from: usize, reg: SgiRegister, value: u64) -> vgic::VcpuSet {
    let d = rig
        .vgic
        .sgi(vc(from as u8), &mut rig.cpus[from], reg, value, &mut rig.fx)
        .unwrap();
    rig.drain();
    d
}

/// SGI `intid`'s pending bit in vCPU k's GICR_ISPENDR0, read by vCPU k.
fn pending(rig: &mut Rig, k: usize, intid: u32) -> bool {
    rig.r32(k, sgi(k as u64) + 0x200) & (1 << intid) != 0
}

#[test]
fn targets_by_affinity() {
    let mut rig = cluster();
    let s1 = SgiRegister::Sgi1r;
    // Aff 0.0.0.{0,1}: vCPUs 0 (the sender) and 1. The sender's own SGI is in its table at
    // once; vCPU 1 is kicked.
    assert_eq!(
        send(&mut rig, 0, s1, sgi1r(0, 0, false, 0, 1, 0, 0b11)),
        set(&[0, 1])
    );
    assert_eq!(rig.kicks, set(&[1]));
    assert!(rig.cpus[0].virq(v(1)).unwrap().pending_latch());
    assert!(!rig.cpus[1].virq(v(1)).unwrap().pending_latch());
    assert!(pending(&mut rig, 1, 1), "applied by vCPU 1's own access");
    // Aff1 = 1: vCPU 2.
    assert_eq!(
        send(&mut rig, 0, s1, sgi1r(0, 0, false, 0, 2, 1, 1)),
        set(&[2])
    );
    // Aff3 = 1, RS = 1, TargetList bit 1: Aff0 17, vCPU 3.
    assert_eq!(
        send(&mut rig, 0, s1, sgi1r(1, 1, false, 0, 2, 0, 0b10)),
        set(&[3])
    );
    assert_eq!(rig.kicks, set(&[3]));
    assert!(pending(&mut rig, 3, 2) && !pending(&mut rig, 3, 1));
    // Nobody at 0.0.0.5 or 2.0.0.0.
    assert_eq!(
        send(&mut rig, 0, s1, sgi1r(0, 0, false, 0, 1, 0, 1 << 5)),
        set(&[])
    );
    assert_eq!(
        send(&mut rig, 0, s1, sgi1r(2, 0, false, 0, 1, 0, 1)),
        set(&[])
    );
    assert!(rig.kicks.is_empty());
    // IRM = 1 from vCPU 2: everyone else.
    assert_eq!(
        send(&mut rig, 2, s1, sgi1r(0, 0, true, 0, 2, 0, 0)),
        set(&[0, 1, 3])
    );
    assert_eq!(rig.kicks, set(&[0, 1, 3]));
    let st = rig.vgic.stats();
    assert_eq!(
        (st.sgi_writes, st.sgis_delivered, st.sgis_filtered),
        (6, 7, 0)
    );
}

#[test]
fn groups_filter_sgis() {
    let mut rig = cluster();
    // SGI 3 of vCPU 1 stays in Group 0 and is enabled; SGI 1 is Group 1.
    rig.w32(1, sgi(1) + 0x100, 1 << 3);
    let g0 = sgi1r(0, 0, false, 0, 3, 0, 0b10);
    for reg in [SgiRegister::Sgi0r, SgiRegister::Asgi1r, SgiRegister::Sgi1r] {
        assert_eq!(send(&mut rig, 0, reg, g0), set(&[1]), "{reg:?}");
        assert!(pending(&mut rig, 1, 3));
        rig.w32(1, sgi(1) + 0x280, 1 << 3);
    }
    // Group 1 SGI 1: ICC_SGI0R_EL1 and ICC_ASGI1R_EL1 do not reach it.
    let g1 = sgi1r(0, 0, false, 0, 1, 0, 0b10);
    assert_eq!(send(&mut rig, 0, SgiRegister::Sgi0r, g1), set(&[]));
    assert_eq!(send(&mut rig, 0, SgiRegister::Asgi1r, g1), set(&[]));
    assert!(rig.kicks.is_empty());
    assert!(!pending(&mut rig, 1, 1));
    assert_eq!(rig.vgic.stats().sgis_filtered, 2);
    // A broadcast of SGI 1 after vCPU 2 moved its SGI 1 to Group 0: ICC_SGI0R_EL1 reaches
    // vCPU 2 only, ICC_SGI1R_EL1 everyone but the sender.
    let igroupr0 = rig.r32(2, sgi(2) + 0x80);
    rig.w32(2, sgi(2) + 0x80, igroupr0 & !(1 << 1));
    let all1 = sgi1r(0, 0, true, 0, 1, 0, 0);
    assert_eq!(send(&mut rig, 0, SgiRegister::Sgi0r, all1), set(&[2]));
    assert_eq!(rig.vgic.stats().sgis_filtered, 4);
    // With Group 0 enabled at the distributor it reaches vCPU 2's list registers as a
    // Group 0 interrupt.
    rig.sync(2);
    assert!(
        rig.cpus[2].plan_populate().lrs().is_empty(),
        "Group 0 is off"
    );
    rig.w32(0, GICD, 0b11);
    rig.sync(2);
    let plan = rig.cpus[2].plan_populate();
    assert_eq!(plan.lrs().len(), 1);
    assert_eq!((plan.lrs()[0].vintid(), plan.lrs()[0].group()), (1, false));
    assert_eq!(send(&mut rig, 0, SgiRegister::Sgi1r, all1), set(&[1, 2, 3]));
}

#[test]
fn sgis_are_delivered_and_coalesce() {
    let mut rig = cluster();
    let to1 = sgi1r(0, 0, false, 0, 2, 0, 0b10);
    send(&mut rig, 0, SgiRegister::Sgi1r, to1);
    send(&mut rig, 3, SgiRegister::Sgi1r, to1);
    assert!(rig.vgic.needs_sync(vc(1)));
    assert_eq!(
        rig.run(1),
        [2],
        "two SGIs with the same INTID before it ran: one"
    );
    assert!(!rig.vgic.needs_sync(vc(1)));
    send(&mut rig, 0, SgiRegister::Sgi1r, to1);
    assert_eq!(rig.run(1), [2], "a new one after the first completed");
    rig.assert_clean();
}

/// An SGI to a vCPU that is not attached yet waits in its redistributor.
#[test]
fn sgi_to_a_vcpu_not_yet_started() {
    let mut vgic = TestVgic::new(VgicConfig::new(GICD, GICR, 2)).unwrap();
    let mut fx = Effects::new();
    let mut cpu0 = VgicCpu::<TABLE>::new(4).unwrap();
    let mut cpu1 = VgicCpu::<TABLE>::new(4).unwrap();
    vgic.attach(vc(0), &mut cpu0, &mut fx).unwrap();
    // Group 0 SGI 7 (reset group) from ICC_SGI0R_EL1.
    let d = vgic
        .sgi(
            vc(0),
            &mut cpu0,
            SgiRegister::Sgi0r,
            sgi1r(0, 0, false, 0, 7, 0, 0b10),
            &mut fx,
        )
        .unwrap();
    assert_eq!(d, set(&[1]));
    fx.clear();
    assert_eq!(
        vgic.sgi(vc(1), &mut cpu1, SgiRegister::Sgi1r, 0, &mut fx),
        Err(VgicError::NotAttached { vcpu: 1 })
    );
    vgic.attach(vc(1), &mut cpu1, &mut fx).unwrap();
    assert!(cpu1.virq(v(7)).unwrap().pending_latch());
}
