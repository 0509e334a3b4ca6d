// SPDX-License-Identifier: MIT OR Apache-2.0
//! Test helpers: guest RAM, and a guest ITS driver that writes commands and polls as Linux
//! does.
#![allow(dead_code, reason = "each test file uses a different part")]

use its_core::cmd::Command;
use its_core::ids::{CollectionId, DeviceId, EventId, IntId, RdBase};
use vits::{Backend, GuestMemory, GuestMemoryError, LpiConfigTable, Vits};

/// Guest RAM: `bytes` at guest-physical `base`; anything else is not the VM's.
pub struct Ram {
    pub base: u64,
    pub bytes: Vec<u8>,
}

/// Where the tests put things in guest RAM.
pub const RAM_BASE: u64 = 0x4000_0000;
pub const QUEUE: u64 = RAM_BASE;
/// 64 KiB queue (Linux's).
pub const QUEUE_BYTES: u32 = 0x1_0000;
pub const PROP: u64 = RAM_BASE + 0x1_0000;
pub const DEVICE_TABLE: u64 = RAM_BASE + 0x2_0000;
pub const COLLECTION_TABLE: u64 = RAM_BASE + 0x3_0000;
pub const ITT: u64 = RAM_BASE + 0x4_0000;

impl Ram {
    pub fn new() -> Self {
        Self {
            base: RAM_BASE,
            bytes: vec![0; 0x10_0000],
        }
    }

    pub fn write(&mut self, gpa: u64, data: &[u8]) {
        let off = (gpa - self.base) as usize;
        self.bytes[off..off + data.len()].copy_from_slice(data);
    }

    /// Sets LPI `intid`'s configuration byte in the table at [`PROP`].
    pub fn set_prop(&mut self, intid: u32, byte: u8) {
        self.write(PROP + u64::from(intid - 8192), &[byte]);
    }
}

impl GuestMemory for Ram {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        let off = gpa.checked_sub(self.base).ok_or(GuestMemoryError)? as usize;
        let end = off.checked_add(buf.len()).ok_or(GuestMemoryError)?;
        let src = self.bytes.get(off..end).ok_or(GuestMemoryError)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

pub const CTLR: u64 = 0x0;
pub const IIDR: u64 = 0x4;
pub const TYPER: u64 = 0x8;
pub const CBASER: u64 = 0x80;
pub const CWRITER: u64 = 0x88;
pub const CREADR: u64 = 0x90;
pub const BASER0: u64 = 0x100;
pub const PIDR2: u64 = 0xffe8;

/// Linux's LPI default configuration byte: priority 0xa0, group 1 (bit 1), disabled.
pub const PROP_OFF: u8 = 0xa0 | 2;
/// The same, enabled.
pub const PROP_ON: u8 = 0xa0 | 2 | 1;

/// A guest's ITS driver: writes commands at its write offset, then GITS_CWRITER, then polls
/// GITS_CREADR (bounded) until the ITS caught up or stalled.
pub struct GuestDriver {
    pub queue: u64,
    pub bytes: u32,
    pub wr: u32,
    /// GITS_CWRITER writes made.
    pub cwriter_writes: u32,
    /// GITS_CREADR reads made.
    pub creadr_reads: u32,
    /// Commands sent.
    pub sent: u32,
}

impl GuestDriver {
    pub fn new(queue: u64, bytes: u32) -> Self {
        Self {
            queue,
            bytes,
            wr: 0,
            cwriter_writes: 0,
            creadr_reads: 0,
            sent: 0,
        }
    }

    /// Writes raw commands to the queue (no CWRITER write).
    pub fn put_raw(&mut self, ram: &mut Ram, raw: &[[u64; 4]]) {
        for r in raw {
            let mut b = [0u8; 32];
            for (i, d) in r.iter().enumerate() {
                b[i * 8..i * 8 + 8].copy_from_slice(&d.to_le_bytes());
            }
            ram.write(self.queue + u64::from(self.wr), &b);
            self.wr = (self.wr + 32) % self.bytes;
            self.sent += 1;
        }
    }

    /// Writes commands, then GITS_CWRITER; returns the CREADR value the polling ended on.
    pub fn send<B: Backend, const D: usize, const E: usize, const C: usize>(
        &mut self,
        its: &mut Vits<B, D, E, C>,
        ram: &mut Ram,
        cmds: &[Command],
    ) -> u64 {
        let raw: Vec<[u64; 4]> = cmds.iter().map(|c| c.encode()).collect();
        self.send_raw(its, ram, &raw)
    }

    /// As [`GuestDriver::send`], with raw blocks.
    pub fn send_raw<B: Backend, const D: usize, const E: usize, const C: usize>(
        &mut self,
        its: &mut Vits<B, D, E, C>,
        ram: &mut Ram,
        raw: &[[u64; 4]],
    ) -> u64 {
        self.put_raw(ram, raw);
        its.write(ram, CWRITER, 8, u64::from(self.wr)).unwrap();
        self.cwriter_writes += 1;
        self.poll(its, ram)
    }

    /// Polls GITS_CREADR until it equals the write offset or Stalled (at most 1000 reads).
    pub fn poll<B: Backend, const D: usize, const E: usize, const C: usize>(
        &mut self,
        its: &mut Vits<B, D, E, C>,
        ram: &Ram,
    ) -> u64 {
        let mut r = 0;
        for _ in 0..1000 {
            r = its.read(ram, CREADR, 8).unwrap();
            self.creadr_reads += 1;
            if r & 1 != 0 || r == u64::from(self.wr) {
                break;
            }
        }
        r
    }
}

pub fn dev(id: u32) -> DeviceId {
    DeviceId::new(id)
}

pub fn ev(e: u32) -> EventId {
    EventId::new(e)
}

pub fn icid(c: u16) -> CollectionId {
    CollectionId::new(c)
}

pub fn rd(cpu: u64) -> RdBase {
    RdBase::from_field(cpu)
}

pub fn mapd(d: u32, bits: u8, valid: bool) -> Command {
    Command::Mapd {
        device: dev(d),
        size: its_core::cmd::IdBits::new(bits).unwrap(),
        itt: its_core::addr::IttAddr::new(its_core::addr::PhysAddr::new(ITT)).unwrap(),
        valid,
    }
}

pub fn mapc(c: u16, cpu: u64, valid: bool) -> Command {
    Command::Mapc {
        icid: icid(c),
        rdbase: rd(cpu),
        valid,
    }
}

pub fn mapti(d: u32, e: u32, intid: u32, c: u16) -> Command {
    Command::Mapti {
        device: dev(d),
        event: ev(e),
        pintid: IntId::new(intid),
        icid: icid(c),
    }
}

pub fn sync(cpu: u64) -> Command {
    Command::Sync { rdbase: rd(cpu) }
}

pub fn inv(d: u32, e: u32) -> Command {
    Command::Inv {
        device: dev(d),
        event: ev(e),
    }
}

pub fn int(d: u32, e: u32) -> Command {
    Command::Int {
        device: dev(d),
        event: ev(e),
    }
}

pub fn clear(d: u32, e: u32) -> Command {
    Command::Clear {
        device: dev(d),
        event: ev(e),
    }
}

pub fn discard(d: u32, e: u32) -> Command {
    Command::Discard {
        device: dev(d),
        event: ev(e),
    }
}

pub fn movi(d: u32, e: u32, c: u16) -> Command {
    Command::Movi {
        device: dev(d),
        event: ev(e),
        icid: icid(c),
    }
}

pub fn invall(c: u16) -> Command {
    Command::Invall { icid: icid(c) }
}

/// Linux 6.1's probe of an ITS, as measured: PIDR2, CTLR (Quiescent), TYPER, IIDR; each
/// GITS_BASER<n> read, written and read back (the device table two-level when it would be
/// larger than two pages, 64 KiB pages); CBASER written (64 KiB queue at [`QUEUE`]) and read
/// back; CWRITER = 0; CTLR.Enabled. Returns the driver for the queue. Panics (test failure)
/// where Linux would give up.
pub fn linux_probe<B: Backend, const D: usize, const E: usize, const C: usize>(
    its: &mut Vits<B, D, E, C>,
    ram: &mut Ram,
) -> GuestDriver {
    let pidr2 = its.read(ram, PIDR2, 4).unwrap();
    assert_eq!((pidr2 >> 4) & 0xf, 3, "GICv3 ITS");
    let ctlr = its.read(ram, CTLR, 4).unwrap();
    assert!(
        ctlr & 1 << 31 != 0 && ctlr & 1 == 0,
        "quiescent and disabled"
    );
    let typer = its.read(ram, TYPER, 8).unwrap();
    assert_eq!(typer & 1, 1, "Physical");
    let _iidr = its.read(ram, IIDR, 4).unwrap();
    let dev_bits = ((typer >> 13) & 0x1f) + 1;
    for n in 0..8u64 {
        let off = BASER0 + 8 * n;
        let v = its.read(ram, off, 8).unwrap();
        let ty = (v >> 56) & 7;
        if ty == 0 {
            continue;
        }
        let esz = ((v >> 48) & 0x1f) + 1;
        let (base, ids) = if ty == 1 {
            (DEVICE_TABLE, dev_bits)
        } else {
            (COLLECTION_TABLE, 16)
        };
        let page = 0x1_0000u64;
        let indirect = ty == 1 && (esz << ids) > 2 * page;
        let bytes = if indirect {
            ((1u64 << ids) * esz / page).max(1) * 8
        } else {
            esz << ids
        };
        let pages = bytes.div_ceil(page).max(1);
        let want = 1u64 << 63
            | u64::from(indirect) << 62
            | 7 << 59 // InnerCache RaWaWb
            | ty << 56
            | (esz - 1) << 48
            | base
            | 1 << 10 // Inner Shareable
            | 2 << 8 // 64 KiB pages
            | (pages - 1);
        its.write(ram, off, 8, want).unwrap();
        assert_eq!(its.read(ram, off, 8).unwrap(), want, "BASER{n} sticks");
    }
    let cbaser = 1u64 << 63 | 7 << 59 | QUEUE | 1 << 10 | u64::from(QUEUE_BYTES / 4096 - 1);
    its.write(ram, CBASER, 8, cbaser).unwrap();
    assert_eq!(its.read(ram, CBASER, 8).unwrap(), cbaser);
    its.write(ram, CWRITER, 8, 0).unwrap();
    let ctlr = its.read(ram, CTLR, 4).unwrap();
    its.write(ram, CTLR, 4, ctlr | 1).unwrap();
    GuestDriver::new(QUEUE, QUEUE_BYTES)
}

/// Linux's boot on the vITS: [`linux_probe`], LPIs on (64 property bytes from 8192 off), a
/// collection per vCPU, device `nvme` with 3 vectors spread over both vCPUs (vINTIDs 8193 to
/// 8195) and unmasked. Panics (test failure) on a stall or an ignored command.
pub fn linux_boot<B: Backend, const D: usize, const E: usize, const C: usize>(
    its: &mut Vits<B, D, E, C>,
    ram: &mut Ram,
    nvme: u32,
) -> GuestDriver {
    let mut g = linux_probe(its, ram);
    for intid in 8192..8192 + 64 {
        ram.set_prop(intid, PROP_OFF);
    }
    its.set_lpi_config(
        ram,
        Some(LpiConfigTable {
            base: PROP,
            id_bits: 16,
        }),
    )
    .unwrap();
    for cpu in 0..2u16 {
        g.send(its, ram, &[mapc(cpu, cpu.into(), true), sync(cpu.into())]);
        g.send(its, ram, &[invall(cpu), sync(cpu.into())]);
    }
    g.send(its, ram, &[mapd(nvme, 2, true)]);
    for (e, cpu) in [(0u32, 0u16), (1, 0), (2, 1)] {
        g.send(its, ram, &[mapti(nvme, e, 8193 + e, cpu), sync(cpu.into())]);
        ram.set_prop(8193 + e, PROP_ON);
        g.send(its, ram, &[inv(nvme, e), sync(cpu.into())]);
    }
    assert!(!its.is_stalled(), "{:?}", its.errors().last());
    assert_eq!(its.stats().ignored, 0);
    g
}
