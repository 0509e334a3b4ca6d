// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guest-visible register frame: reset values, read-back rules, access checks.

mod common;

use common::*;
use vits::{AccessError, AssignedDevice, CommandError, DevicePool, Recorder, Vits, VitsConfig};

type V = Vits<Recorder<64>, 8, 64, 16>;

fn vits() -> V {
    let assigned = [AssignedDevice::identity(dev(0x8))];
    let mut cfg = VitsConfig::new(4, 16, &assigned, DevicePool::default());
    cfg.device_bits = 12;
    cfg.event_bits = 5;
    cfg.iidr = 0x0100_043b;
    Vits::new(cfg, Recorder::new()).unwrap()
}

#[test]
fn reset_values() {
    let mut its = vits();
    let ram = Ram::new();
    let r = |its: &mut V, off, size| its.read(&ram, off, size).unwrap();
    assert_eq!(r(&mut its, CTLR, 4), 1 << 31, "disabled and quiescent");
    assert_eq!(r(&mut its, IIDR, 4), 0x0100_043b);
    assert_eq!(r(&mut its, PIDR2, 4), 0x3b);
    let typer = r(&mut its, TYPER, 8);
    assert_eq!(typer & 1, 1, "Physical");
    assert_eq!(typer >> 1 & 1, 0, "Virtual");
    assert_eq!(typer >> 4 & 0xf, 7, "ITT_entry_size: 8 bytes");
    assert_eq!(typer >> 8 & 0x1f, 4, "IDbits");
    assert_eq!(typer >> 13 & 0x1f, 11, "Devbits");
    assert_eq!(typer >> 19 & 1, 0, "PTA");
    assert_eq!(typer >> 24 & 0xff, 0, "HCC");
    assert_eq!(typer >> 32 & 0xf, 3, "CIDbits: 16 collections");
    assert_eq!(typer >> 36 & 1, 1, "CIL");
    assert_eq!(typer >> 37, 0, "nothing above CIL");
    assert_eq!(r(&mut its, TYPER + 4, 4), typer >> 32);
    assert_eq!(r(&mut its, CBASER, 8), 0);
    assert_eq!(r(&mut its, CWRITER, 8), 0);
    assert_eq!(r(&mut its, CREADR, 8), 0);
    let b0 = r(&mut its, BASER0, 8);
    assert_eq!(
        (b0 >> 56 & 7, b0 >> 48 & 0x1f, b0 >> 63),
        (1, 7, 0),
        "device table"
    );
    let b1 = r(&mut its, BASER0 + 8, 8);
    assert_eq!(
        (b1 >> 56 & 7, b1 >> 48 & 0x1f, b1 >> 63),
        (4, 7, 0),
        "collections"
    );
    for n in 2..8 {
        assert_eq!(r(&mut its, BASER0 + 8 * n, 8), 0, "BASER{n} unimplemented");
    }
}

#[test]
fn baser_read_back_follows_the_architecture() {
    let mut its = vits();
    let ram = Ram::new();
    // Type and Entry_Size are read-only; everything else sticks, page sizes included.
    for page in 0..3u64 {
        let w = 1u64 << 63
            | 1 << 62
            | 3 << 59
            | 5 << 56
            | 0x1f << 48
            | 2 << 53
            | 0x4002_0000
            | 2 << 10
            | page << 8
            | 3;
        its.write(&ram, BASER0, 8, w).unwrap();
        let want = (w & !(7 << 56 | 0x1f << 48)) | 1 << 56 | 7 << 48;
        assert_eq!(its.read(&ram, BASER0, 8).unwrap(), want);
    }
    // 32-bit halves.
    its.write(&ram, BASER0 + 8 + 4, 4, 0x8000_0000).unwrap();
    its.write(&ram, BASER0 + 8, 4, 0x4003_0000 | 2 << 8)
        .unwrap();
    let b1 = its.read(&ram, BASER0 + 8, 8).unwrap();
    assert_eq!(b1, 1 << 63 | 4 << 56 | 7 << 48 | 0x4003_0000 | 2 << 8);
    assert_eq!(its.read(&ram, BASER0 + 12, 4).unwrap(), b1 >> 32);
    // BASER2..7: RAZ/WI.
    its.write(&ram, BASER0 + 16, 8, u64::MAX).unwrap();
    assert_eq!(its.read(&ram, BASER0 + 16, 8).unwrap(), 0);
}

#[test]
fn tables_and_queue_are_read_only_while_enabled() {
    let mut its = vits();
    let mut ram = Ram::new();
    let _ = linux_probe(&mut its, &mut ram);
    let b0 = its.read(&ram, BASER0, 8).unwrap();
    let cb = its.read(&ram, CBASER, 8).unwrap();
    its.write(&ram, BASER0, 8, 0).unwrap();
    its.write(&ram, CBASER, 8, 0).unwrap();
    assert_eq!(its.read(&ram, BASER0, 8).unwrap(), b0);
    assert_eq!(its.read(&ram, CBASER, 8).unwrap(), cb);
    // Disabled again, they are writable.
    its.write(&ram, CTLR, 4, 0).unwrap();
    assert_eq!(its.read(&ram, CTLR, 4).unwrap(), 1 << 31);
    its.write(&ram, CBASER, 8, 0).unwrap();
    assert_eq!(its.read(&ram, CBASER, 8).unwrap(), 0);
}

#[test]
fn cbaser_keeps_architected_fields_and_resets_creadr() {
    let mut its = vits();
    let mut ram = Ram::new();
    let mut g = linux_probe(&mut its, &mut ram);
    g.send(&mut its, &mut ram, &[sync(0), sync(1)]);
    assert_eq!(its.read(&ram, CREADR, 8).unwrap(), 64);
    its.write(&ram, CTLR, 4, 0).unwrap();
    // Reserved bits (9:8, 52, 58:56, 62) are dropped.
    let w = 1u64 << 63
        | 1 << 62
        | 7 << 59
        | 7 << 56
        | 5 << 53
        | 1 << 52
        | QUEUE
        | 3 << 8
        | 1 << 10
        | 15;
    its.write(&ram, CBASER, 8, w).unwrap();
    let want = 1u64 << 63 | 7 << 59 | 5 << 53 | QUEUE | 1 << 10 | 15;
    assert_eq!(its.read(&ram, CBASER, 8).unwrap(), want);
    assert_eq!(its.read(&ram, CREADR, 8).unwrap(), 0, "CREADR reset");
    // CWRITER was not reset.
    assert_eq!(its.read(&ram, CWRITER, 8).unwrap(), 64);
}

#[test]
fn cwriter_and_creadr_rules() {
    let mut its = vits();
    let mut ram = Ram::new();
    let mut g = linux_probe(&mut its, &mut ram);
    // Retry and reserved bits do not read back; CREADR is read-only.
    g.put_raw(&mut ram, &[sync(0).encode()]);
    its.write(&ram, CWRITER, 8, 0xffff_0000_0000_0000 | 32 | 1)
        .unwrap();
    assert_eq!(its.read(&ram, CWRITER, 8).unwrap(), 32);
    its.write(&ram, CREADR, 8, 0).unwrap();
    assert_eq!(its.read(&ram, CREADR, 8).unwrap(), 32);
    // A write to the upper half alone changes nothing and runs nothing.
    g.put_raw(&mut ram, &[sync(0).encode()]);
    its.write(&ram, CWRITER + 4, 4, 0xffff_ffff).unwrap();
    assert_eq!(its.read(&ram, CWRITER, 8).unwrap(), 32);
    assert_eq!(its.stats().commands, 1);
    // The low half alone does.
    its.write(&ram, CWRITER, 4, 64).unwrap();
    assert_eq!(its.stats().commands, 2);
    assert_eq!(its.read(&ram, CREADR, 4).unwrap(), 64);
    // Beyond the 64 KiB queue: ignored and reported.
    its.write(&ram, CWRITER, 8, u64::from(QUEUE_BYTES)).unwrap();
    assert_eq!(its.read(&ram, CWRITER, 8).unwrap(), 64);
    let e = its.errors().last().unwrap();
    assert_eq!(
        e.error,
        CommandError::CwriterOutOfRange {
            offset: QUEUE_BYTES,
            size: QUEUE_BYTES
        }
    );
    assert!(!e.stalled && !its.is_stalled());
}

#[test]
fn accesses_the_architecture_rules_out_are_refused() {
    let mut its = vits();
    let ram = Ram::new();
    assert_eq!(
        its.read(&ram, CTLR, 8),
        Err(AccessError::Width { offset: CTLR })
    );
    assert_eq!(
        its.write(&ram, PIDR2, 8, 0),
        Err(AccessError::Width { offset: PIDR2 })
    );
    assert_eq!(
        its.read(&ram, CWRITER, 2),
        Err(AccessError::Size {
            offset: CWRITER,
            size: 2
        })
    );
    assert_eq!(
        its.write(&ram, CBASER + 4, 8, 0),
        Err(AccessError::Misaligned {
            offset: CBASER + 4,
            size: 8
        })
    );
    assert_eq!(
        its.read(&ram, 0x1_0040, 4),
        Err(AccessError::OutsideFrame { offset: 0x1_0040 })
    );
    // A refused write changed nothing.
    assert_eq!(its.read(&ram, CTLR, 4).unwrap(), 1 << 31);
}

#[test]
fn other_offsets_are_raz_wi() {
    let mut its = vits();
    let ram = Ram::new();
    for off in [
        0x10u64, 0x14, 0x20, 0x40, 0x98, 0x140, 0x1000, 0xc000, 0xffd0, 0xffec, 0xfffc,
    ] {
        its.write(&ram, off, 4, 0xffff_ffff).unwrap();
        assert_eq!(its.read(&ram, off, 4).unwrap(), 0, "{off:#x}");
    }
    its.write(&ram, 0x98, 8, u64::MAX).unwrap();
    assert_eq!(its.read(&ram, 0x98, 8).unwrap(), 0);
    // Nothing else changed.
    assert_eq!(its.read(&ram, CTLR, 4).unwrap(), 1 << 31);
    assert_eq!(its.read(&ram, CBASER, 8).unwrap(), 0);
}
