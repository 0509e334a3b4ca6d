// SPDX-License-Identifier: MIT OR Apache-2.0
//! The data-abort and MSR decoders on syndromes of real instructions.
//!
//! Each ESR_EL2 value is the one the architecture defines (and QEMU's TCG reports) for the
//! named instruction trapping on a stage-2 fault: EC 0x24, IL = 1, ISV = 1, SAS, SSE, SRT,
//! SF, AR, WnR, DFSC. They were assembled field by field and are checked here field by field.

use vgic::AccessSize;
use vgic::trap::{AbortError, DataAbort, Direction, Gpr, SysRegAccess};

/// HPFAR_EL2 for an IPA: FIPA (bits [47:4]) = IPA[55:12].
fn hpfar(ipa: u64) -> u64 {
    (ipa >> 12) << 4
}

/// FAR_EL2 with a kernel VA whose page offset is the IPA's.
fn far(ipa: u64) -> u64 {
    0xFFFF_8000_1234_5000 | (ipa & 0xFFF)
}

fn decode(esr: u64, ipa: u64) -> Result<DataAbort, AbortError> {
    DataAbort::decode(esr, far(ipa), hpfar(ipa))
}

#[test]
fn str_w1_x0_is_a_word_store_from_x1() {
    // writel(val, gicd + GICD_CTLR): `str w1, [x0]`, translation fault level 3.
    let a = decode(0x9381_0047, 0x0800_0000).unwrap();
    assert_eq!(a.ipa(), 0x0800_0000);
    assert_eq!(a.size(), AccessSize::Word);
    assert_eq!(a.direction(), Direction::Write { rt: Gpr::new(1) });
    assert!(a.is_write() && !a.acquire_release());
    assert_eq!(a.insn_len(), 4);
    let mut x = [0u64; 31];
    x[1] = 0xDEAD_BEEF_0000_0012;
    assert_eq!(a.write_value(&x), 0x12, "truncated to 32 bits");
    assert_eq!(a.load_value(5), None);
}

#[test]
fn ldr_w0_x1_is_a_zero_extended_word_load() {
    // readl(gicd + GICD_TYPER): `ldr w0, [x1]`, translation fault level 2.
    let a = decode(0x9380_0006, 0x0800_0004).unwrap();
    assert_eq!(a.ipa(), 0x0800_0004);
    assert_eq!(
        a.direction(),
        Direction::Read {
            rt: Gpr::new(0),
            sign_extend: false,
            sixty_four: false
        }
    );
    let mut x = [u64::MAX; 31];
    a.complete_read(&mut x, 0x8000_0001);
    assert_eq!(
        x[0], 0x8000_0001,
        "a W register write clears the upper half"
    );
    assert_eq!(x[1], u64::MAX, "nothing else is touched");
    assert_eq!(a.write_value(&x), 0, "a load stores nothing");
}

#[test]
fn ldr_x3_is_a_doubleword_load() {
    // readq(gicr + GICR_TYPER): `ldr x3, [x0, #8]`.
    let a = decode(0x93C3_8007, 0x080A_0008).unwrap();
    assert_eq!(a.size(), AccessSize::Dword);
    assert_eq!(
        a.direction(),
        Direction::Read {
            rt: Gpr::new(3),
            sign_extend: false,
            sixty_four: true
        }
    );
    assert_eq!(
        a.load_value(0x0000_0001_0000_0110),
        Some(0x0000_0001_0000_0110)
    );
}

#[test]
fn strb_is_a_byte_store() {
    // writeb_relaxed(prio, gicd + GICD_IPRIORITYR + 33): `strb w2, [x0]`.
    let a = decode(0x9302_0047, 0x0800_0421).unwrap();
    assert_eq!(a.ipa(), 0x0800_0421);
    assert_eq!(a.size(), AccessSize::Byte);
    let mut x = [0u64; 31];
    x[2] = 0x1A0;
    assert_eq!(a.write_value(&x), 0xA0);
}

#[test]
fn sign_extending_loads() {
    // `ldrsb x5, [x0]`: SAS = 0, SSE, SF.
    let a = decode(0x9325_8007, 0x0800_0400).unwrap();
    assert_eq!(a.size(), AccessSize::Byte);
    assert_eq!(a.load_value(0x80), Some(0xFFFF_FFFF_FFFF_FF80));
    assert_eq!(a.load_value(0x7F), Some(0x7F));
    // `ldrsh w6, [x0]`: SAS = 1, SSE, SF = 0: extended to 32 bits only.
    let a = decode(0x9366_0007, 0x0800_0400).unwrap();
    assert_eq!(a.size(), AccessSize::Half);
    assert_eq!(a.load_value(0x1_8001), Some(0xFFFF_8001));
    let mut x = [0u64; 31];
    a.complete_read(&mut x, 0x8001);
    assert_eq!(x[6], 0xFFFF_8001);
    // `ldrsw x7, [x0]`: SAS = 2, SSE, SF.
    let a = decode(0x93A7_8007, 0x0800_0400).unwrap();
    assert_eq!(a.load_value(0x8000_0000), Some(0xFFFF_FFFF_8000_0000));
}

#[test]
fn the_zero_register() {
    // `str xzr, [x0]` stores 0 whatever the register file holds.
    let a = decode(0x93DF_8047, 0x080A_0070).unwrap();
    assert_eq!(a.rt(), Gpr::ZR);
    assert_eq!(a.rt().index(), None);
    assert_eq!(a.write_value(&[u64::MAX; 31]), 0);
    // `ldr wzr, [x0]` discards the value.
    let a = decode(0x939F_0007, 0x0800_0000).unwrap();
    let mut x = [7u64; 31];
    a.complete_read(&mut x, 0x1234);
    assert_eq!(x, [7u64; 31]);
}

#[test]
fn store_release_reports_ar() {
    // `stlr w1, [x0]`.
    let a = decode(0x9381_4047, 0x0800_0000).unwrap();
    assert!(a.acquire_release() && a.is_write());
}

#[test]
fn ipa_from_hpfar_and_far() {
    // A 52-bit IPA; HPFAR_EL2.NS (bit 63) and FAR's upper bits do not leak in.
    let ipa = 0x000F_8765_4321_0ABC;
    let a = DataAbort::decode(0x9381_0047, 0xFFFF_0000_0000_0ABC, (1 << 63) | hpfar(ipa));
    assert_eq!(a.unwrap().ipa(), ipa);
    // A 16-bit T32 instruction: IL = 0.
    let a = decode(0x9181_0047, 0x0800_0000).unwrap();
    assert_eq!(a.insn_len(), 2);
}

#[test]
fn every_stage2_fault_kind_is_accepted() {
    for dfsc in [0x04, 0x05, 0x06, 0x07, 0x2B, 0x09, 0x0B, 0x0D, 0x0F] {
        let esr = 0x9381_0040 | dfsc;
        assert!(decode(esr, 0x0800_0000).is_ok(), "DFSC {dfsc:#x}");
    }
}

#[test]
fn refusals() {
    let ipa = 0x0800_0000;
    // `stp w1, w2, [x0]`: no syndrome.
    assert_eq!(decode(0x9200_0047, ipa), Err(AbortError::NoSyndrome));
    // A data abort taken from EL2 itself.
    assert_eq!(
        decode(0x9781_0047, ipa),
        Err(AbortError::NotDataAbort { ec: 0x25 })
    );
    // An HVC.
    assert_eq!(
        decode(0x5A00_0000, ipa),
        Err(AbortError::NotDataAbort { ec: 0x16 })
    );
    // A stage-2 fault on the guest's stage-1 table walk.
    assert_eq!(decode(0x9200_0087, ipa), Err(AbortError::StageOneWalk));
    // `dc civac` on an unmapped page.
    assert_eq!(decode(0x9200_0147, ipa), Err(AbortError::CacheMaintenance));
    // Alignment fault, synchronous external abort.
    assert_eq!(
        decode(0x9381_0061, ipa),
        Err(AbortError::NotStage2Fault { dfsc: 0x21 })
    );
    assert_eq!(
        decode(0x9381_0050, ipa),
        Err(AbortError::NotStage2Fault { dfsc: 0x10 })
    );
    // An external abort flag on a translation fault.
    assert_eq!(
        decode(0x9381_0247, ipa),
        Err(AbortError::NotStage2Fault { dfsc: 0x07 })
    );
    // FAR not valid.
    assert_eq!(decode(0x9381_0447, ipa), Err(AbortError::FarNotValid));
    // 64-bit access into a W register; sign-extended 64-bit load; sign-extending store.
    assert_eq!(
        decode(0x93C0_0007, ipa),
        Err(AbortError::Malformed { iss: 0x01C0_0007 })
    );
    assert_eq!(
        decode(0x93E0_8007, ipa),
        Err(AbortError::Malformed { iss: 0x01E0_8007 })
    );
    assert_eq!(
        decode(0x93A1_0047, ipa),
        Err(AbortError::Malformed { iss: 0x01A1_0047 })
    );
}

#[test]
fn msr_icc_sgi1r_el1() {
    // `msr ICC_SGI1R_EL1, x2`: EC 0x18, Op0 3, Op2 5, Op1 0, CRn 12, Rt 2, CRm 11, write.
    let t = SysRegAccess::decode(0x623A_3056).unwrap();
    assert_eq!(
        (t.op0, t.op1, t.crn, t.crm, t.op2),
        (3, 0, 12, 11, 5),
        "S3_0_C12_C11_5"
    );
    assert_eq!(t.rt, Gpr::new(2));
    assert!(!t.read && t.insn_len == 4);
    assert!(t.is(3, 0, 12, 11, 5));
    // `mrs x0, CNTVCT_EL0` (S3_3_C14_C0_2), a read.
    let t = SysRegAccess::decode(0x6234_F801).unwrap();
    assert_eq!((t.op0, t.op1, t.crn, t.crm, t.op2), (3, 3, 14, 0, 2));
    assert!(t.read && t.rt == Gpr::new(0));
    assert_eq!(SysRegAccess::decode(0x9381_0047), None);
}
