// SPDX-License-Identifier: MIT OR Apache-2.0
//! The distributor: every register's read-back, access sizes, RAZ/WI areas, and what each
//! write changes in the vCPUs' interrupt tables.

mod common;

use common::*;
use fwd_irq::Trigger;
use vgic::{AccessSize, Frame, Outcome, RazWi, VgicConfig};

const B: AccessSize = AccessSize::Byte;
const H: AccessSize = AccessSize::Half;
const W: AccessSize = AccessSize::Word;
const D: AccessSize = AccessSize::Dword;

#[test]
fn ctlr_enables_groups_and_keeps_are_and_ds() {
    let mut rig = Rig::new(2);
    // Reset: ARE (bit 4) and DS (bit 6) read as one, groups off, RWP 0.
    assert_eq!(rig.r32(0, GICD), 0x50);
    rig.w32(0, GICD, 0b11);
    assert_eq!(rig.r32(0, GICD), 0x53);
    // ARE, DS: writes ignored; RWP and reserved bits read 0.
    rig.w32(0, GICD, 0x8000_00A2);
    // vCPU 1 must push its configuration again; vCPU 0 (the writer) did it already.
    assert_eq!(rig.kicks, set(&[1]));
    assert!(rig.vgic.needs_sync(vc(1)) && !rig.vgic.needs_sync(vc(0)));
    assert_eq!(rig.r32(1, GICD), 0x52);
    assert!(
        !rig.vgic.needs_sync(vc(1)),
        "its own access synced it first"
    );
}

#[test]
fn typer_iidr_pidr2() {
    let mut rig = Rig::new(2);
    // ITLinesNumber 2 (64 SPIs), CPUNumber 1, IDbits 9, A3V, No1N, RSS.
    assert_eq!(rig.r32(0, GICD + 0x4), 0x0748_0022);
    assert_eq!(rig.write(0, GICD + 0x4, W, 0).outcome, Outcome::ReadOnly);
    assert_eq!(rig.r32(0, GICD + 0x4), 0x0748_0022);
    assert_eq!(rig.r32(0, GICD + 0x8), 0, "IIDR: no implementer claimed");
    assert_eq!(rig.r32(0, GICD + 0xFFE8), 0x30, "PIDR2.ArchRev = 3");
    assert_eq!(
        rig.write(0, GICD + 0xFFE8, W, 0x40).outcome,
        Outcome::ReadOnly
    );

    // Four vCPUs, LPIs with 16 ID bits, an IIDR.
    let mut cfg = VgicConfig::new(GICD, GICR, 4).with_lpis(16);
    cfg.iidr = 0x0102_0304;
    let mut rig = Rig::with(cfg, |_, _| {});
    assert_eq!(rig.r32(3, GICD + 0x4), 0x077A_0062);
    assert_eq!(rig.r32(3, GICD + 0x8), 0x0102_0304);
}

#[test]
fn igroupr_read_back_and_table_group() {
    let mut rig = Rig::new(1);
    rig.w32(0, GICD + 0x84, 0xF0F0_F0F1);
    assert_eq!(rig.r32(0, GICD + 0x84), 0xF0F0_F0F1);
    assert!(rig.cpus[0].virq(v(32)).unwrap().config().group1);
    assert!(!rig.cpus[0].virq(v(33)).unwrap().config().group1);
    rig.w32(0, GICD + 0x84, 0);
    assert!(!rig.cpus[0].virq(v(32)).unwrap().config().group1);
}

#[test]
fn enable_reaches_the_vcpu_only_with_the_group_enabled_and_the_vcpu_awake() {
    let mut rig = Rig::new(1);
    rig.w32(0, GICD + 0x84, 1 << 8); // INTID 40 in Group 1
    rig.w32(0, GICD + 0x104, 1 << 8); // ISENABLER1
    assert_eq!(rig.r32(0, GICD + 0x104), 1 << 8);
    assert_eq!(rig.r32(0, GICD + 0x184), 1 << 8, "ICENABLER reads the same");
    let enabled = |rig: &Rig| rig.cpus[0].virq(v(40)).unwrap().config().enabled;
    assert!(!enabled(&rig), "Group 1 is off at the distributor");
    rig.w32(0, GICD, 0b10);
    assert!(!enabled(&rig), "the redistributor is asleep");
    rig.w32(0, rd(0) + 0x14, 0);
    assert!(enabled(&rig));
    rig.w32(0, GICD, 0b01);
    assert!(!enabled(&rig), "Group 1 off again");
    rig.w32(0, GICD, 0b10);
    rig.w32(0, GICD + 0x184, 1 << 8);
    assert_eq!(rig.r32(0, GICD + 0x104), 0);
    assert!(!enabled(&rig));
    // Writing zeros changes nothing.
    rig.w32(0, GICD + 0x104, 1 << 8);
    rig.w32(0, GICD + 0x184, 0);
    rig.w32(0, GICD + 0x104, 0);
    assert!(enabled(&rig));
}

#[test]
fn pending_read_back_and_table_latch() {
    let mut rig = Rig::new(1);
    rig.boot();
    rig.w32(0, GICD + 0x204, 0b101); // ISPENDR1: INTIDs 32 and 34
    assert_eq!(rig.r32(0, GICD + 0x204), 0b101);
    assert_eq!(rig.r32(0, GICD + 0x284), 0b101, "ICPENDR reads the same");
    assert!(rig.cpus[0].virq(v(34)).unwrap().pending_latch());
    rig.w32(0, GICD + 0x284, 0b001);
    assert_eq!(rig.r32(0, GICD + 0x204), 0b100);
    assert!(!rig.cpus[0].virq(v(32)).unwrap().is_pending());
}

#[test]
fn icpendr_leaves_a_high_level_line_pending() {
    let mut rig = Rig::new(1);
    rig.boot();
    rig.vgic
        .set_level(vgic::IrqRef::Spi(v(50)), true, &mut rig.fx)
        .unwrap();
    rig.drain();
    rig.sync(0);
    assert_eq!(rig.r32(0, GICD + 0x204) >> 18 & 1, 1);
    rig.w32(0, GICD + 0x284, 1 << 18);
    assert_eq!(
        rig.r32(0, GICD + 0x204) >> 18 & 1,
        1,
        "the line is still high"
    );
    rig.vgic
        .set_level(vgic::IrqRef::Spi(v(50)), false, &mut rig.fx)
        .unwrap();
    rig.drain();
    rig.sync(0);
    assert_eq!(rig.r32(0, GICD + 0x204) >> 18 & 1, 0);
}

#[test]
fn pending_in_a_list_register_reads_as_pending() {
    let mut rig = Rig::new(1);
    rig.boot();
    rig.enable(0, 45, 0x80);
    rig.w32(0, GICD + 0x204, 1 << 13);
    // Listed pending, the guest runs with interrupts masked, exit: still pending.
    rig.enter_exit(0);
    assert_eq!(rig.r32(0, GICD + 0x204), 1 << 13);
    // The guest acknowledges it: active, not pending.
    assert_eq!(rig.ack_and_exit(0), 45);
    assert_eq!(rig.r32(0, GICD + 0x204), 0);
    assert_eq!(rig.r32(0, GICD + 0x304), 1 << 13);
    rig.eoi(0, 45);
    assert_eq!(rig.r32(0, GICD + 0x304), 0);
    rig.assert_clean();
}

#[test]
fn active_set_and_clear() {
    let mut rig = Rig::new(1);
    rig.boot();
    rig.w32(0, GICD + 0x308, 1 << 1); // ISACTIVER2: INTID 65
    assert_eq!(rig.r32(0, GICD + 0x308), 2);
    assert_eq!(rig.r32(0, GICD + 0x388), 2, "ICACTIVER reads the same");
    assert!(rig.cpus[0].virq(v(65)).unwrap().is_active());
    let plan = rig.cpus[0].plan_populate();
    assert_eq!(plan.lrs()[0].vintid(), 65);
    assert_eq!(plan.lrs()[0].state(), fwd_irq::LrState::Active);
    rig.cpus[0].fold_saved(plan.lrs(), &mut rig.phys);
    rig.w32(0, GICD + 0x388, 1 << 1);
    assert_eq!(rig.r32(0, GICD + 0x308), 0);
    assert!(!rig.cpus[0].virq(v(65)).unwrap().is_active());
}

#[test]
fn ipriorityr_bytes_words_and_implemented_bits() {
    let mut rig = Rig::new(1);
    // IPRIORITYR8: INTIDs 32-35; 5 implemented bits keep 0xF8.
    rig.w32(0, GICD + 0x420, 0x1234_567F);
    assert_eq!(rig.r32(0, GICD + 0x420), 0x1030_5078);
    assert_eq!(rig.cpus[0].virq(v(33)).unwrap().config().priority, 0x50);
    // Byte access to INTID 34 alone.
    let a = rig.write(0, GICD + 0x422, B, 0xA7);
    assert_eq!(a.outcome, Outcome::Register);
    assert_eq!(rig.read(0, GICD + 0x422, B).value, 0xA0);
    assert_eq!(rig.r32(0, GICD + 0x420), 0x10A0_5078);
    assert_eq!(rig.cpus[0].virq(v(34)).unwrap().config().priority, 0xA0);
    // Halfword and doubleword: not allowed.
    assert_eq!(
        rig.write(0, GICD + 0x420, H, 0).outcome,
        Outcome::RazWi(RazWi::BadSize)
    );
    assert_eq!(
        rig.read(0, GICD + 0x420, D).outcome,
        Outcome::RazWi(RazWi::BadSize)
    );
    assert_eq!(rig.r32(0, GICD + 0x420), 0x10A0_5078);
    // SGI/PPI priorities live in the redistributor; INTIDs past the VM's are absent.
    assert_eq!(
        rig.read(0, GICD + 0x41C, W).outcome,
        Outcome::RazWi(RazWi::AffinityRouting)
    );
    assert_eq!(
        rig.write(0, GICD + 0x460, B, 0x80).outcome,
        Outcome::RazWi(RazWi::NoSuchInterrupt)
    );
    assert_eq!(
        rig.read(0, GICD + 0x7FC, W).outcome,
        Outcome::RazWi(RazWi::NoSuchInterrupt)
    );

    // Eight priority bits keep everything; four keep 0xF0.
    let mut rig = Rig::with(
        VgicConfig::new(GICD, GICR, 1).with_priority_bits(8),
        |_, _| {},
    );
    rig.w32(0, GICD + 0x420, 0x1234_567F);
    assert_eq!(rig.r32(0, GICD + 0x420), 0x1234_567F);
    let mut rig = Rig::with(
        VgicConfig::new(GICD, GICR, 1).with_priority_bits(4),
        |_, _| {},
    );
    rig.w32(0, GICD + 0x420, 0x1234_567F);
    assert_eq!(rig.r32(0, GICD + 0x420), 0x1030_5070);
}

#[test]
fn icfgr_edge_bits_and_forwarded_read_only() {
    let mut rig = Rig::with(VgicConfig::new(GICD, GICR, 1), |g, _| {
        forward_level(g, 33, 33);
    });
    // ICFGR2: INTIDs 32-47. Int_config[0] is RES0; the forwarded INTID 33 stays level.
    rig.w32(0, GICD + 0xC08, 0xFFFF_FFFF);
    assert_eq!(rig.r32(0, GICD + 0xC08), 0xAAAA_AAA2);
    assert_eq!(
        rig.cpus[0].virq(v(32)).unwrap().config().trigger,
        Trigger::Edge
    );
    assert_eq!(
        rig.cpus[0].virq(v(33)).unwrap().config().trigger,
        Trigger::Level
    );
    rig.w32(0, GICD + 0xC08, 0);
    assert_eq!(rig.r32(0, GICD + 0xC08), 0);
    assert_eq!(
        rig.cpus[0].virq(v(32)).unwrap().config().trigger,
        Trigger::Level
    );
    // ICFGR0/1 (SGIs, PPIs) live in the redistributor.
    assert_eq!(
        rig.read(0, GICD + 0xC04, W).outcome,
        Outcome::RazWi(RazWi::AffinityRouting)
    );
    // ICFGR6 covers INTIDs 96-111: past the VM's.
    assert_eq!(
        rig.read(0, GICD + 0xC18, W).outcome,
        Outcome::RazWi(RazWi::NoSuchInterrupt)
    );
}

#[test]
fn irouter_64_bit_halves_and_masks() {
    let mut rig = Rig::new(2);
    let r40 = GICD + 0x6000 + 8 * 40;
    assert_eq!(rig.read(0, r40, D).value, 0, "reset route: 0.0.0.0");
    // Aff3 = 0xAB, IRM (bit 31), Aff2.Aff1.Aff0 = 1.2.3, RES0 bits set.
    let a = rig.write(0, r40, D, 0xFFFF_FFAB_FF01_0203);
    assert_eq!(a.outcome, Outcome::Register);
    assert_eq!(rig.read(0, r40, D).value, 0xAB_0001_0203);
    assert_eq!(rig.read(0, r40, W).value, 0x0001_0203);
    assert_eq!(rig.read(0, r40 + 4, W).value, 0xAB);
    // 32-bit writes to each half.
    rig.write(0, r40 + 4, W, 0);
    rig.write(0, r40, W, 0x8000_0001);
    assert_eq!(rig.read(0, r40, D).value, 0x1, "IRM is RAZ/WI (No1N)");
    assert_eq!(rig.vgic.spi_target(v(40)).unwrap(), Some(vc(1)));
    // Sizes and alignment.
    assert_eq!(rig.read(0, r40, B).outcome, Outcome::RazWi(RazWi::BadSize));
    assert_eq!(
        rig.read(0, r40 + 4, D).outcome,
        Outcome::RazWi(RazWi::Misaligned)
    );
    // GICD_IROUTER<n> for n < 32 and for 1020-1023 are reserved; past 95, no SPI.
    assert_eq!(
        rig.read(0, GICD + 0x6000 + 8 * 31, D).outcome,
        Outcome::RazWi(RazWi::Reserved)
    );
    assert_eq!(
        rig.read(0, GICD + 0x6000 + 8 * 1020, D).outcome,
        Outcome::RazWi(RazWi::Reserved)
    );
    assert_eq!(
        rig.write(0, GICD + 0x6000 + 8 * 96, D, 1).outcome,
        Outcome::RazWi(RazWi::NoSuchInterrupt)
    );
}

/// Every RAZ/WI area answers reads with 0, ignores writes, and says why.
#[test]
fn raz_wi_areas_are_classified() {
    let mut rig = Rig::new(1);
    rig.boot();
    let cases: &[(u32, AccessSize, RazWi)] = &[
        (0x000C, W, RazWi::NotImplemented), // GICD_TYPER2
        (0x0010, W, RazWi::NotImplemented), // GICD_STATUSR
        (0x0040, W, RazWi::NotImplemented), // GICD_SETSPI_NSR
        (0x0058, W, RazWi::NotImplemented), // GICD_CLRSPI_SR
        (0x0020, W, RazWi::Reserved),
        (0x0080, W, RazWi::AffinityRouting),     // GICD_IGROUPR0
        (0x0100, W, RazWi::AffinityRouting),     // GICD_ISENABLER0
        (0x0380, W, RazWi::AffinityRouting),     // GICD_ICACTIVER0
        (0x0800, B, RazWi::AffinityRouting),     // GICD_ITARGETSR0
        (0x0820, W, RazWi::AffinityRouting),     // GICD_ITARGETSR8
        (0x0D04, W, RazWi::SingleSecurityState), // GICD_IGRPMODR1
        (0x0E08, W, RazWi::SingleSecurityState), // GICD_NSACR2
        (0x0F00, W, RazWi::AffinityRouting),     // GICD_SGIR
        (0x0F10, B, RazWi::AffinityRouting),     // GICD_CPENDSGIR0
        (0x0F2C, W, RazWi::AffinityRouting),     // GICD_SPENDSGIR3
        (0x0F80, W, RazWi::NotImplemented),      // GICD_INMIR0
        (0x1000, W, RazWi::NotImplemented),      // GICD_IGROUPR0E
        (0x2000, B, RazWi::NotImplemented),      // GICD_IPRIORITYR0E
        (0x8000, D, RazWi::NotImplemented),      // GICD_IROUTER0E
        (0x0090, W, RazWi::NoSuchInterrupt),     // GICD_IGROUPR4 (INTIDs 128-159)
        (0xA000, W, RazWi::Reserved),
        (0xFFD0, W, RazWi::NotImplemented), // GICD_PIDR4
        (0xFFFC, W, RazWi::NotImplemented), // GICD_CIDR3
        (0x0002, H, RazWi::BadSize),
        (0x0001, B, RazWi::BadSize),
        (0x0000, D, RazWi::BadSize),
        (0x0104, B, RazWi::BadSize),
        (0x0006, W, RazWi::Misaligned),
        (0x6104, D, RazWi::Misaligned),
    ];
    let before = rig.vgic.stats();
    for &(off, size, why) in cases {
        let ipa = GICD + u64::from(off);
        let r = rig.read(0, ipa, size);
        assert_eq!(
            (r.value, r.outcome),
            (0, Outcome::RazWi(why)),
            "read {off:#x}"
        );
        assert_eq!((r.frame, r.offset), (Frame::Distributor, off));
        let w = rig.write(0, ipa, size, u64::MAX);
        assert_eq!(w.outcome, Outcome::RazWi(why), "write {off:#x}");
        assert!(rig.effects.is_empty() && rig.kicks.is_empty());
    }
    let after = rig.vgic.stats();
    for why in [
        RazWi::Reserved,
        RazWi::NotImplemented,
        RazWi::AffinityRouting,
        RazWi::SingleSecurityState,
        RazWi::NoSuchInterrupt,
        RazWi::BadSize,
        RazWi::Misaligned,
    ] {
        let n = cases.iter().filter(|c| c.2 == why).count() as u64 * 2;
        assert_eq!(
            after.raz_wi[why as usize] - before.raz_wi[why as usize],
            n,
            "{why:?}"
        );
    }
    assert_eq!(after.reads - before.reads, cases.len() as u64);
    // Nothing a RAZ/WI write touched changed the guest-visible state.
    assert_eq!(rig.r32(0, GICD), 0x52);
    assert_eq!(rig.r32(0, GICD + 0x104), 0);
    assert_eq!(rig.read(0, GICD + 0x6100, D).value, 0);
}

#[test]
fn word_only_registers_refuse_other_sizes() {
    let mut rig = Rig::new(1);
    for off in [
        0x0u64, 0x4, 0x8, 0x84, 0x104, 0x184, 0x204, 0x284, 0x304, 0x384, 0xC08, 0xFFE8,
    ] {
        for size in [B, H, D] {
            if size == D && off % 8 != 0 {
                continue;
            }
            if size == H && off % 2 != 0 {
                continue;
            }
            assert_eq!(
                rig.read(0, GICD + off, size).outcome,
                Outcome::RazWi(RazWi::BadSize),
                "{off:#x} {size:?}"
            );
        }
    }
}
