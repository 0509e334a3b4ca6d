// SPDX-License-Identifier: MIT OR Apache-2.0
//! The redistributors: RD_base (CTLR, TYPER, WAKER, the LPI registers) and SGI_base (SGIs
//! and PPIs), per vCPU, including accesses to another vCPU's frames.

mod common;

use common::*;
use fwd_irq::{FwdMode, Trigger, VtimerConfig, VtimerFwd};
use vgic::{AccessSize, Affinity, Effect, Frame, Outcome, RazWi, VgicConfig, VgicError};

const B: AccessSize = AccessSize::Byte;
const H: AccessSize = AccessSize::Half;
const W: AccessSize = AccessSize::Word;
const D: AccessSize = AccessSize::Dword;

fn lpi_rig(n: usize) -> Rig {
    Rig::with(VgicConfig::new(GICD, GICR, n).with_lpis(16), |_, _| {})
}

#[test]
fn typer_per_vcpu() {
    let cfg = VgicConfig::new(GICD, GICR, 3)
        .with_affinity(1, Affinity::new(0, 0, 1, 0))
        .with_affinity(2, Affinity::new(1, 2, 3, 4));
    let mut rig = Rig::with(cfg, |_, _| {});
    // Affinity [63:32], Processor_Number [23:8], Last (bit 4) on the last one only;
    // PLPIS = VLPIS = DirectLPI = 0.
    assert_eq!(rig.read(0, rd(0) + 8, D).value, 0x0000_0000_0000_0000);
    assert_eq!(rig.read(0, rd(1) + 8, D).value, 0x0000_0100_0000_0100);
    assert_eq!(rig.read(0, rd(2) + 8, D).value, 0x0102_0304_0000_0210);
    assert_eq!(rig.read(2, rd(2) + 8, W).value, 0x0000_0210);
    assert_eq!(rig.read(2, rd(2) + 0xC, W).value, 0x0102_0304);
    assert_eq!(rig.write(0, rd(2) + 8, D, 0).outcome, Outcome::ReadOnly);
    assert_eq!(rig.read(0, rd(2) + 8, D).value, 0x0102_0304_0000_0210);
    assert_eq!(
        rig.read(0, rd(2) + 8, B).outcome,
        Outcome::RazWi(RazWi::BadSize)
    );
    assert_eq!(
        rig.read(0, rd(2) + 0xC, D).outcome,
        Outcome::RazWi(RazWi::Misaligned)
    );
    // With LPIs: PLPIS.
    let mut rig = lpi_rig(1);
    assert_eq!(rig.read(0, rd(0) + 8, D).value, 0x11);
}

#[test]
fn iidr_pidr2_and_address_decoding() {
    let mut rig = Rig::new(2);
    assert_eq!(rig.r32(0, rd(1) + 4), 0);
    assert_eq!(rig.r32(0, rd(1) + 0xFFE8), 0x30);
    let a = rig.read(0, sgi(1) + 0x100, W);
    assert_eq!((a.frame, a.offset), (Frame::SgiBase(vc(1)), 0x100));
    let a = rig.read(1, rd(0) + 0x14, W);
    assert_eq!((a.frame, a.offset), (Frame::RdBase(vc(0)), 0x14));
    // The third redistributor does not exist in a 2-vCPU VM.
    assert_eq!(
        rig.vgic
            .read(vc(0), &mut rig.cpus[0], rd(2), W, &mut rig.fx),
        Err(VgicError::NotVgicAddress { ipa: rd(2) })
    );
    assert!(rig.vgic.contains(sgi(1) + 0xFFFC) && !rig.vgic.contains(GICD - 4));
}

#[test]
fn waker_handshake() {
    let mut rig = Rig::new(2);
    // Reset: ProcessorSleep and ChildrenAsleep.
    assert_eq!(rig.r32(0, rd(0) + 0x14), 0b110);
    rig.w32(0, rd(0) + 0x14, 0);
    assert_eq!(rig.r32(0, rd(0) + 0x14), 0, "ChildrenAsleep clears at once");
    assert_eq!(rig.r32(0, rd(1) + 0x14), 0b110, "per redistributor");
    rig.w32(0, rd(0) + 0x14, 0b010);
    assert_eq!(rig.r32(0, rd(0) + 0x14), 0b110);
    // The IMPDEF bits 0 and 31 are RAZ/WI.
    rig.w32(0, rd(0) + 0x14, 0x8000_0001);
    assert_eq!(rig.r32(0, rd(0) + 0x14), 0);
    // vCPU 0 waking vCPU 1's redistributor kicks vCPU 1.
    rig.w32(0, rd(1) + 0x14, 0);
    assert_eq!(rig.kicks, set(&[1]));
}

#[test]
fn a_sleeping_redistributor_delivers_nothing() {
    let mut rig = Rig::new(1);
    rig.boot();
    rig.enable(0, 5, 0x80);
    rig.w32(0, rd(0) + 0x14, 0b010);
    rig.w32(0, sgi(0) + 0x200, 1 << 5);
    assert!(rig.run(0).is_empty());
    assert_eq!(rig.r32(0, sgi(0) + 0x200), 1 << 5, "still pending");
    rig.w32(0, rd(0) + 0x14, 0);
    assert_eq!(rig.run(0), [5]);
}

#[test]
fn ctlr_enable_lpis() {
    // Without LPIs EnableLPIs is RES0.
    let mut rig = Rig::new(1);
    rig.w32(0, rd(0), 1);
    assert_eq!(rig.r32(0, rd(0)), 0);
    assert!(rig.effects.is_empty());

    let mut rig = lpi_rig(2);
    assert_eq!(rig.r32(0, rd(1)), 0b10, "CES: EnableLPIs can be cleared");
    rig.w32(0, rd(1), 0xFFFF_FFFF);
    assert_eq!(rig.r32(0, rd(1)), 0b11, "RWP, UWP, DPG* read 0");
    assert_eq!(
        rig.effects,
        [Effect::LpisEnabled {
            vcpu: vc(1),
            enabled: true
        }]
    );
    rig.w32(1, rd(1), 1);
    assert_eq!(rig.effects.len(), 1, "no change, no effect");
    rig.w32(1, rd(1), 0);
    assert_eq!(rig.r32(0, rd(1)), 0b10);
    assert_eq!(
        rig.effects[1],
        Effect::LpisEnabled {
            vcpu: vc(1),
            enabled: false
        }
    );
    assert!(!rig.vgic.lpi_regs(vc(1)).unwrap().enabled);
}

#[test]
fn propbaser_pendbaser_read_back() {
    let mut rig = Rig::new(1);
    assert_eq!(
        rig.read(0, rd(0) + 0x70, D).outcome,
        Outcome::RazWi(RazWi::NotImplemented),
        "no LPIs: RES0"
    );

    let mut rig = lpi_rig(1);
    // PROPBASER: every bit written; RES0 [63:59], [55:52], [6:5] read 0.
    rig.write(0, rd(0) + 0x70, D, u64::MAX);
    assert_eq!(rig.read(0, rd(0) + 0x70, D).value, 0x070F_FFFF_FFFF_FF9F);
    // A real value (inner shareable, RaWaWb, 16 ID bits) reads back as written.
    rig.write(0, rd(0) + 0x70, D, 0x4_0000_0000 | 0x400 | 0x380 | 15);
    assert_eq!(rig.read(0, rd(0) + 0x70, D).value, 0x4_0000_078F);
    // 32-bit halves.
    rig.write(0, rd(0) + 0x74, W, 0x5);
    assert_eq!(rig.read(0, rd(0) + 0x70, D).value, 0x5_0000_078F);
    rig.write(0, rd(0) + 0x70, W, 0x1000_0000);
    assert_eq!(rig.read(0, rd(0) + 0x74, W).value, 0x5);
    assert_eq!(rig.read(0, rd(0) + 0x70, W).value, 0x1000_0000);

    // PENDBASER: PTZ (bit 62) is write-only; RES0 [63], [61:59], [55:52], [15:12], [6:0].
    rig.write(0, rd(0) + 0x78, D, u64::MAX);
    assert_eq!(rig.read(0, rd(0) + 0x78, D).value, 0x070F_FFFF_FFFF_0F80);
    assert!(rig.vgic.lpi_regs(vc(0)).unwrap().ptz);
    rig.write(0, rd(0) + 0x7C, W, 0);
    assert!(!rig.vgic.lpi_regs(vc(0)).unwrap().ptz);
    assert_eq!(rig.read(0, rd(0) + 0x78, D).value, 0xFFFF_0F80);

    // Writes while EnableLPIs = 1 are ignored.
    rig.w32(0, rd(0), 1);
    let a = rig.write(0, rd(0) + 0x70, D, 0);
    assert_eq!(a.outcome, Outcome::WriteIgnored);
    assert_eq!(
        rig.write(0, rd(0) + 0x7C, W, 0).outcome,
        Outcome::WriteIgnored
    );
    assert_eq!(rig.read(0, rd(0) + 0x70, D).value, 0x5_1000_0000);
    assert_eq!(rig.vgic.stats().ignored_writes, 2);
    rig.w32(0, rd(0), 0);
    rig.write(0, rd(0) + 0x70, D, 0);
    assert_eq!(rig.read(0, rd(0) + 0x70, D).value, 0);
    let regs = rig.vgic.lpi_regs(vc(0)).unwrap();
    assert_eq!((regs.propbaser, regs.pendbaser), (0, 0xFFFF_0F80));
    assert_eq!(
        rig.read(0, rd(0) + 0x70, H).outcome,
        Outcome::RazWi(RazWi::BadSize)
    );
}

#[test]
fn rd_base_raz_wi() {
    let mut rig = lpi_rig(1);
    for (off, size, why) in [
        (0x10, W, RazWi::NotImplemented),   // GICR_STATUSR
        (0x18, W, RazWi::NotImplemented),   // GICR_MPAMIDR
        (0x1C, W, RazWi::NotImplemented),   // GICR_PARTIDR
        (0x40, D, RazWi::NotImplemented),   // GICR_SETLPIR
        (0x48, D, RazWi::NotImplemented),   // GICR_CLRLPIR
        (0xA0, D, RazWi::NotImplemented),   // GICR_INVLPIR
        (0xB0, D, RazWi::NotImplemented),   // GICR_INVALLR
        (0xC0, W, RazWi::NotImplemented),   // GICR_SYNCR: never busy
        (0xFFE0, W, RazWi::NotImplemented), // GICR_PIDR0
        (0x80, W, RazWi::Reserved),
        (0x8000, W, RazWi::Reserved),
        (0xFFFC, W, RazWi::NotImplemented), // GICR_CIDR3
        (0x2, H, RazWi::BadSize),
        (0x15, B, RazWi::BadSize),
    ] {
        let a = rig.read(0, rd(0) + off, size);
        assert_eq!((a.value, a.outcome), (0, Outcome::RazWi(why)), "{off:#x}");
        assert_eq!(
            rig.write(0, rd(0) + off, size, u64::MAX).outcome,
            Outcome::RazWi(why)
        );
    }
    assert_eq!(
        rig.r32(0, rd(0) + 0x14),
        0b110,
        "the bad-size WAKER write did nothing"
    );
}

#[test]
fn sgi_frame_registers_round_trip_into_the_table() {
    let mut rig = Rig::new(1);
    rig.boot();
    let s = sgi(0);
    rig.w32(0, s + 0x80, 0x8000_0002);
    assert_eq!(rig.r32(0, s + 0x80), 0x8000_0002);
    rig.w32(0, s + 0x100, 0x8000_0002);
    assert_eq!(rig.r32(0, s + 0x180), 0x8000_0002);
    rig.w32(0, s + 0x180, 0x8000_0000);
    assert_eq!(rig.r32(0, s + 0x100), 0x2);
    // IPRIORITYR0-7: word and byte.
    rig.w32(0, s + 0x400, 0x4030_2010);
    assert_eq!(rig.read(0, s + 0x401, B).value, 0x20);
    rig.write(0, s + 0x41F, B, 0xF0);
    assert_eq!(rig.r32(0, s + 0x41C), 0xF000_0000);
    let x = rig.cpus[0].virq(v(1)).unwrap().config();
    assert!(x.group1 && x.enabled && x.priority == 0x20);
    let x = rig.cpus[0].virq(v(31)).unwrap().config();
    assert!(x.group1 && !x.enabled && x.priority == 0xF0);
    // Pending and active.
    rig.w32(0, s + 0x200, 0x0001_0002);
    assert_eq!(rig.r32(0, s + 0x280), 0x0001_0002);
    rig.w32(0, s + 0x280, 0x0001_0000);
    rig.w32(0, s + 0x300, 1 << 20);
    assert_eq!(rig.r32(0, s + 0x380), 1 << 20);
    assert!(rig.cpus[0].virq(v(20)).unwrap().is_active());
    rig.w32(0, s + 0x380, 1 << 20);
    assert_eq!(rig.r32(0, s + 0x300), 0);
    // SGI 1 is enabled, Group 1, pending: the guest takes it.
    assert_eq!(rig.run(0), [1]);
    assert_eq!(rig.r32(0, s + 0x200), 0);
}

#[test]
fn icfgr0_read_only_icfgr1_for_emulated_ppis() {
    let mut rig = Rig::with(VgicConfig::new(GICD, GICR, 1), |_, cpus| {
        VtimerFwd::new(&mut cpus[0], VtimerConfig::bsa(FwdMode::Hw)).unwrap();
    });
    let s = sgi(0);
    assert_eq!(rig.r32(0, s + 0xC00), 0xAAAA_AAAA, "SGIs are edge");
    assert_eq!(rig.write(0, s + 0xC00, W, 0).outcome, Outcome::ReadOnly);
    assert_eq!(rig.r32(0, s + 0xC00), 0xAAAA_AAAA);
    // PPIs reset level; PPI 23 made edge; PPI 27 (the forwarded timer) stays level.
    assert_eq!(rig.r32(0, s + 0xC04), 0);
    rig.w32(0, s + 0xC04, (2 << 14) | (2 << 22));
    assert_eq!(rig.r32(0, s + 0xC04), 2 << 14);
    assert_eq!(
        rig.cpus[0].virq(v(23)).unwrap().config().trigger,
        Trigger::Edge
    );
    assert_eq!(
        rig.cpus[0].virq(v(27)).unwrap().config().trigger,
        Trigger::Level
    );
}

#[test]
fn sgi_frame_raz_wi() {
    let mut rig = Rig::new(1);
    let s = sgi(0);
    for (off, size, why) in [
        (0x84, W, RazWi::NotImplemented),  // GICR_IGROUPR1E
        (0x104, W, RazWi::NotImplemented), // GICR_ISENABLER1E
        (0x110, W, RazWi::Reserved),
        (0x420, B, RazWi::NotImplemented),      // GICR_IPRIORITYR0E
        (0xC08, W, RazWi::NotImplemented),      // GICR_ICFGR2E
        (0xD00, W, RazWi::SingleSecurityState), // GICR_IGRPMODR0
        (0xE00, W, RazWi::SingleSecurityState), // GICR_NSACR
        (0xF80, W, RazWi::NotImplemented),      // GICR_INMIR0
        (0xFFE8, W, RazWi::Reserved),           // no ID registers in SGI_base
        (0x0, W, RazWi::Reserved),
        (0x80, B, RazWi::BadSize),
        (0x400, H, RazWi::BadSize),
        (0x400, D, RazWi::BadSize),
        (0xC04, B, RazWi::BadSize),
        (0x102, H, RazWi::BadSize),
        (0x402, W, RazWi::Misaligned),
    ] {
        let a = rig.read(0, s + off, size);
        assert_eq!((a.value, a.outcome), (0, Outcome::RazWi(why)), "{off:#x}");
        assert_eq!(
            rig.write(0, s + off, size, u64::MAX).outcome,
            Outcome::RazWi(why)
        );
    }
    assert_eq!(rig.r32(0, s + 0x100), 0);
    assert_eq!(rig.r32(0, s + 0x400), 0);
}

/// vCPU 0 programs vCPU 1's SGI frame: the change waits as mail for vCPU 1, which is kicked
/// and applies it at its next sync; reads see the write at once.
#[test]
fn another_vcpus_sgi_frame() {
    let mut rig = Rig::new(2);
    rig.boot();
    rig.w32(0, sgi(1) + 0x80, 1 << 9);
    assert_eq!(rig.kicks, set(&[1]));
    rig.w32(0, sgi(1) + 0x100, 1 << 9);
    rig.w32(0, sgi(1) + 0x200, 1 << 9);
    assert_eq!(rig.r32(0, sgi(1) + 0x200), 1 << 9, "reads see the write");
    assert!(rig.vgic.needs_sync(vc(1)));
    let x = rig.cpus[1].virq(v(9)).unwrap();
    assert!(
        !x.config().enabled && !x.is_pending(),
        "vCPU 1's table untouched"
    );
    assert!(!rig.cpus[0].virq(v(9)).unwrap().config().group1);
    rig.sync(1);
    assert!(!rig.vgic.needs_sync(vc(1)));
    let x = rig.cpus[1].virq(v(9)).unwrap();
    assert!(x.config().enabled && x.config().group1 && x.pending_latch());
    assert_eq!(rig.run(1), [9]);
}

/// The virtual timer mapped by VtimerFwd before attach keeps its forwarding; the guest
/// programs it like any PPI, and pending writes keep the physical PPI's active state in
/// step, on the vCPU's own PE.
#[test]
fn adopted_virtual_timer() {
    let mut rig = Rig::with(VgicConfig::new(GICD, GICR, 1), |_, cpus| {
        VtimerFwd::new(&mut cpus[0], VtimerConfig::bsa(FwdMode::Hw)).unwrap();
    });
    rig.boot();
    let x = rig.cpus[0].virq(v(27)).unwrap();
    assert_eq!(x.forward().unwrap().pintid, p(27));
    assert!(
        !x.config().enabled && x.config().priority == 0,
        "reset config"
    );
    rig.enable(0, 27, 0xA0);
    let x = rig.cpus[0].virq(v(27)).unwrap().config();
    assert!(x.enabled && x.group1 && x.priority == 0xA0);
    rig.effects.clear();
    rig.w32(0, sgi(0) + 0x200, 1 << 27);
    assert_eq!(
        rig.effects,
        [Effect::SetPhysActive {
            pintid: p(27),
            active: true
        }]
    );
    rig.w32(0, sgi(0) + 0x200, 1 << 27);
    assert_eq!(rig.effects.len(), 1, "already active: no second effect");
    rig.w32(0, sgi(0) + 0x280, 1 << 27);
    assert_eq!(
        rig.effects[1],
        Effect::SetPhysActive {
            pintid: p(27),
            active: false
        }
    );
}

/// A trapped `ldr x3, [x0]` of vCPU 1's GICR_TYPER and `strb w2, [x0]` to a GICR priority
/// byte, emulated from their syndromes: the load lands in X3, the store takes W2.
#[test]
fn emulated_accesses_from_syndromes() {
    let mut rig = Rig::new(2);
    let hpfar = |ipa: u64| (ipa >> 12) << 4;
    let far = |ipa: u64| 0xFFFF_8000_0000_0000 | (ipa & 0xFFF);
    let ipa = rd(1) + 8;
    let ldr = vgic::trap::DataAbort::decode(0x93C3_8007, far(ipa), hpfar(ipa)).unwrap();
    let mut x = [0u64; 31];
    let a = rig
        .vgic
        .emulate(vc(0), &mut rig.cpus[0], &ldr, &mut x, &mut rig.fx)
        .unwrap();
    assert_eq!(a.frame, Frame::RdBase(vc(1)));
    assert_eq!(x[3], 0x0000_0001_0000_0110);
    let ipa = sgi(0) + 0x405;
    let strb = vgic::trap::DataAbort::decode(0x9302_0047, far(ipa), hpfar(ipa)).unwrap();
    x[2] = 0x1_60;
    rig.vgic
        .emulate(vc(0), &mut rig.cpus[0], &strb, &mut x, &mut rig.fx)
        .unwrap();
    assert_eq!(rig.r32(0, sgi(0) + 0x404), 0x6000);
    assert_eq!(rig.cpus[0].virq(v(5)).unwrap().config().priority, 0x60);
    let st = rig.vgic.stats();
    assert_eq!((st.reads, st.writes), (2, 1));
}
