// SPDX-License-Identifier: MIT OR Apache-2.0
//! Tests of the model itself, driven with raw register writes and commands, the way a driver
//! would drive it.

use core::alloc::Layout;

use its_core::addr::{Addr4K, Addr64K, IttAddr, PageSize, VptAddr};
use its_core::cmd::IdBits;
use its_core::ids::{CollectionId, DeviceId, EventId, IntId, ProcessorNumber, RdBase, VpeId};
use its_core::platform::DmaBuf;
use its_core::regs::{BaserType, GicrLpir, GicrVpendbaser, GicrVpropbaser, MemAttrs};

use super::*;
use crate::platform::Event;

type Buf = DmaBuf<FakePlatform>;

struct Rig {
    model: GicModel,
    plat: FakePlatform,
    its: ItsHandle,
    queue: Buf,
    wr: usize,
    _tables: Vec<Buf>,
    prop: Buf,
    _pend: Vec<Buf>,
}

fn buf(p: &FakePlatform, size: usize, align: usize) -> Buf {
    DmaBuf::new(p.clone(), Layout::from_size_align(size, align).unwrap()).unwrap()
}

impl Rig {
    fn new(cfg: ModelConfig) -> Self {
        Self::with_queue(cfg, 0x1_0000)
    }

    fn with_queue(cfg: ModelConfig, qsize: usize) -> Self {
        let plat = FakePlatform::new();
        let cpus = cfg.cpus;
        let model = GicModel::new(cfg, plat.clone());
        let mut its = model.its(0);
        let mut tables = Vec::new();
        for n in 0..3 {
            let b = its.baser(n);
            if b.table_type() == BaserType::Unimplemented {
                continue;
            }
            let t = buf(&plat, 0x1_0000, 0x1_0000);
            let v = b
                .with_page(PageSize::Size64K)
                .with_addr(t.pa())
                .unwrap()
                .with_attrs(MemAttrs::CACHED)
                .with_size(0)
                .with_valid(true);
            its.set_baser(n, v);
            tables.push(t);
        }
        let queue = buf(&plat, qsize, 0x1_0000);
        its.set_cbaser(
            GitsCbaser::new()
                .with_addr(Addr4K::new(queue.pa()).unwrap())
                .with_attrs(MemAttrs::CACHED)
                .with_size((qsize / 4096 - 1) as u8)
                .with_valid(true),
        );
        its.set_ctlr(GitsCtlr::new().with_enabled(true));
        // LPI tables: 16 bits of INTID, one shared property table, a pending table per CPU.
        let mut prop = buf(&plat, 0x1_0000, 0x1_0000);
        prop.fill(0, 0x1_0000, 0xa1).unwrap(); // priority 0xa0, enabled
        let mut pend = Vec::new();
        for cpu in 0..cpus {
            let p = buf(&plat, 0x2000, 0x1_0000);
            let mut rd = model.redist(cpu);
            rd.set_propbaser(
                GicrPropbaser::new()
                    .with_addr(Addr4K::new(prop.pa()).unwrap())
                    .with_id_bits(15)
                    .with_attrs(MemAttrs::CACHED),
            );
            rd.set_pendbaser(
                GicrPendbaser::new()
                    .with_addr(Addr64K::new(p.pa()).unwrap())
                    .with_attrs(MemAttrs::CACHED),
            );
            rd.set_ctlr(GicrCtlr::new().with_enable_lpis(true));
            pend.push(p);
        }
        Self {
            model,
            plat,
            its,
            queue,
            wr: 0,
            _tables: tables,
            prop,
            _pend: pend,
        }
    }

    fn write_cmds(&mut self, cmds: &[Command]) {
        for c in cmds {
            for (i, d) in c.encode().into_iter().enumerate() {
                self.queue.write_u64(self.wr + 8 * i, d).unwrap();
            }
            self.wr = (self.wr + 32) % self.queue.len();
        }
    }

    fn post(&mut self, cmds: &[Command]) {
        self.write_cmds(cmds);
        self.its.set_cwriter(GitsCwriter::at(self.wr));
    }

    fn itt(&self, size: usize) -> Buf {
        buf(&self.plat, size, 256)
    }
}

fn rd(n: u16) -> RdBase {
    RdBase::from_processor(ProcessorNumber::new(n))
}
fn mapd(dev: u32, itt: &Buf, bits: u8) -> Command {
    Command::Mapd {
        device: DeviceId::new(dev),
        size: IdBits::new(bits).unwrap(),
        itt: IttAddr::new(itt.pa()).unwrap(),
        valid: true,
    }
}
fn mapc(icid: u16, cpu: u16) -> Command {
    Command::Mapc {
        icid: CollectionId::new(icid),
        rdbase: rd(cpu),
        valid: true,
    }
}
fn mapti(dev: u32, ev: u32, lpi: u32, icid: u16) -> Command {
    Command::Mapti {
        device: DeviceId::new(dev),
        event: EventId::new(ev),
        pintid: IntId::new(lpi),
        icid: CollectionId::new(icid),
    }
}
fn int(dev: u32, ev: u32) -> Command {
    Command::Int {
        device: DeviceId::new(dev),
        event: EventId::new(ev),
    }
}

#[test]
fn reset_state_is_qemus() {
    let m = GicModel::new(ModelConfig::qemu(2), FakePlatform::new());
    let its = m.its(0);
    assert_eq!(u64::from(its.typer()), 0x0000_003f_0001_efb3);
    assert!(its.ctlr().quiescent());
    assert_eq!(its.baser(0).table_type(), BaserType::Devices);
    assert_eq!(its.baser(0).entry_bytes(), 8);
    assert_eq!(its.baser(2).table_type(), BaserType::Vpes);
    assert_eq!(its.baser(3).table_type(), BaserType::Unimplemented);
    let rd1 = m.redist(1);
    assert_eq!(u64::from(rd1.typer()), 0x0000_0001_0100_0113);
    assert_eq!(u32::from(rd1.waker()), 0x6);
}

#[test]
fn physical_lpi_flow() {
    let mut r = Rig::new(ModelConfig::qemu(2));
    let itt = r.itt(256);
    r.post(&[
        mapd(1, &itt, 4),
        mapc(0, 0),
        mapc(1, 1),
        mapti(1, 3, 8200, 1),
        int(1, 3),
    ]);
    r.model.assert_no_errors();
    assert_eq!(r.model.pending_lpis(1), [8200]);
    assert_eq!(r.model.take_lpi(0), None);
    assert_eq!(r.model.take_lpi(1), Some(8200));
    assert_eq!(r.model.take_lpi(1), None);
    assert_eq!(
        r.model.ite(0, 1, 3).map(|i| (i.intid, i.icid)),
        Some((8200, 1))
    );
    // MOVI moves the pending state too.
    r.post(&[
        int(1, 3),
        Command::Movi {
            device: DeviceId::new(1),
            event: EventId::new(3),
            icid: CollectionId::new(0),
        },
    ]);
    assert_eq!(r.model.pending_lpis(1), Vec::<u32>::new());
    assert_eq!(r.model.take_lpi(0), Some(8200));
    // DISCARD: INT afterwards finds no ITE.
    r.post(&[
        Command::Discard {
            device: DeviceId::new(1),
            event: EventId::new(3),
        },
        int(1, 3),
    ]);
    let e = r.model.errors();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message
            .contains("invalid command attributes: invalid ITE"),
        "{e:?}"
    );
}

#[test]
fn disabled_lpi_is_not_taken_until_enabled() {
    let mut r = Rig::new(ModelConfig::qemu(1));
    let itt = r.itt(256);
    r.prop.write_u8(8200 - 8192, 0xa0).unwrap(); // disabled
    r.post(&[
        mapd(1, &itt, 4),
        mapc(0, 0),
        mapti(1, 0, 8200, 0),
        int(1, 0),
    ]);
    assert_eq!(r.model.take_lpi(0), None);
    r.prop.write_u8(8200 - 8192, 0xa1).unwrap();
    assert_eq!(r.model.take_lpi(0), Some(8200));
    r.model.assert_no_errors();
}

#[test]
fn clrlpir_clears_a_pending_lpi_only_with_direct_lpi() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.direct_lpi = true;
    let r = Rig::new(cfg);
    let mut rd = r.model.redist(0);
    r.model.set_lpi_pending(0, 8300);
    assert_eq!(r.model.pending_lpis(0), [8300]);
    rd.set_clrlpir(GicrLpir::new().with_intid(8300));
    assert!(r.model.pending_lpis(0).is_empty());
    r.model.assert_no_errors();

    // QEMU's redistributor has no DirectLPI: the write is an error (and does nothing).
    let r = Rig::new(ModelConfig::qemu(1));
    let mut rd = r.model.redist(0);
    r.model.set_lpi_pending(0, 8300);
    rd.set_clrlpir(GicrLpir::new().with_intid(8300));
    assert_eq!(r.model.pending_lpis(0), [8300]);
    let errors = r.model.errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("GICR_CLRLPIR"), "{errors:?}");
}

#[test]
fn qemu_parameter_errors_are_logged_and_skipped() {
    let mut r = Rig::new(ModelConfig::qemu(2));
    let itt = r.itt(256);
    r.post(&[
        mapti(7, 0, 8200, 0), // device not mapped
        Command::Mapc {
            icid: CollectionId::new(0),
            rdbase: rd(5),
            valid: true,
        }, // no CPU 5
        mapd(1, &itt, 4),
        mapti(1, 16, 8200, 0), // event beyond 2^4
        mapti(1, 0, 100, 0),   // not an LPI
        int(2, 0),             // device 2 unmapped
    ]);
    let msgs: Vec<String> = r.model.errors().into_iter().map(|e| e.message).collect();
    assert_eq!(msgs.len(), 5, "{msgs:?}");
    assert!(msgs[0].contains("no valid DTE for devid 0x7"));
    assert!(msgs[1].contains("ITS MAPC: invalid RDBASE 5"));
    assert!(msgs[2].contains("invalid event ID 0x10 >= 0x10"));
    assert!(msgs[3].contains("invalid interrupt ID 0x64"));
    assert!(msgs[4].contains("invalid dte for 2"));
    // Parameter errors do not stall.
    assert!(!r.its.creadr().stalled());
    assert_eq!(r.its.creadr().byte_offset(), r.wr);
}

#[test]
fn stall_and_retry() {
    let mut r = Rig::new(ModelConfig::qemu(1));
    let itt = r.itt(256);
    r.model.stall_at(0, Some(1));
    r.post(&[mapd(1, &itt, 4), mapc(0, 0), mapti(1, 0, 8200, 0)]);
    let c = r.its.creadr();
    assert!(c.stalled());
    assert_eq!(c.byte_offset(), 32);
    // A plain CWRITER write does not restart a stalled queue; Retry does.
    r.its.set_cwriter(GitsCwriter::at(r.wr));
    assert!(r.its.creadr().stalled());
    r.its.set_cwriter(GitsCwriter::at(r.wr).with_retry(true));
    let c = r.its.creadr();
    assert!(!c.stalled());
    assert_eq!(c.byte_offset(), 96);
    assert!(r.model.ite(0, 1, 0).is_some());
    assert_eq!(r.model.errors().len(), 1);
}

#[test]
fn delayed_and_dead_its() {
    let mut r = Rig::new(ModelConfig::qemu(1));
    r.model.set_delay(0, Delay::AfterPolls(3));
    r.post(&[mapc(0, 0)]);
    assert_eq!(r.its.creadr().byte_offset(), 0);
    assert_eq!(r.its.creadr().byte_offset(), 0);
    assert_eq!(r.its.creadr().byte_offset(), 32);
    r.model.set_delay(0, Delay::Never);
    r.post(&[mapc(0, 0)]);
    for _ in 0..100 {
        assert_eq!(r.its.creadr().byte_offset(), 32);
    }
    r.model.process_now(0);
    assert_eq!(r.its.creadr().byte_offset(), 64);
}

#[test]
fn its_dies_at_a_given_command() {
    let mut r = Rig::new(ModelConfig::qemu(1));
    let done = r.model.counters(0).0;
    r.model.die_at(0, Some(done + 1));
    r.post(&[mapc(0, 0), mapc(0, 0), mapc(0, 0)]);
    let at = r.its.creadr().byte_offset();
    r.post(&[mapc(0, 0)]);
    for _ in 0..10 {
        assert_eq!(r.its.creadr().byte_offset(), at, "dead after one command");
    }
    assert_eq!(r.model.counters(0).0, done + 1);
    r.model.process_now(0);
    assert_eq!(r.model.counters(0).0, done + 4);
    r.model.assert_no_errors();
}

#[test]
fn non_shareable_queue_needs_clean() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.non_shareable = true;
    let mut r = Rig::new(cfg);
    assert_eq!(r.its.cbaser().shareability(), Shareability::NonShareable);
    // Written but not cleaned: the ITS reads zeros (opcode 0 is not a command).
    r.post(&[mapc(0, 0)]);
    assert!(
        r.model.errors()[0]
            .message
            .contains("unknown command opcode 0x0")
    );
    assert!(r.model.cte(0, 0).is_none_or(|c| !c.valid));
    r.model.clear_errors();
    // Cleaned: processed.
    r.write_cmds(&[mapc(0, 0)]);
    r.queue.clean(r.wr - 32, 32);
    r.its.set_cwriter(GitsCwriter::at(r.wr));
    r.model.assert_no_errors();
    assert_eq!(r.model.cte(0, 0), Some(CteView { valid: true, rd: 0 }));
    // The register write is in the event log after the clean.
    let ev = r.plat.events();
    let clean = ev
        .iter()
        .rposition(|e| matches!(e, Event::Clean { .. }))
        .unwrap();
    let cw = ev
        .iter()
        .rposition(|e| {
            matches!(
                e,
                Event::Reg {
                    reg: "GITS_CWRITER",
                    ..
                }
            )
        })
        .unwrap();
    assert!(clean < cw);
}

#[test]
fn refused_page_sizes_read_back_differently() {
    let mut cfg = ModelConfig::qemu(1);
    cfg.page_sizes = PageSizes {
        k4: true,
        k16: false,
        k64: false,
    };
    cfg.indirect = false;
    let m = GicModel::new(cfg, FakePlatform::new());
    let mut its = m.its(0);
    assert_eq!(its.baser(0).page(), Some(PageSize::Size4K));
    its.set_baser(
        0,
        its.baser(0)
            .with_page(PageSize::Size64K)
            .with_indirect(true),
    );
    assert_eq!(its.baser(0).page(), Some(PageSize::Size4K));
    assert!(!its.baser(0).indirect());
}

#[test]
fn registers_are_read_only_while_enabled() {
    let mut r = Rig::new(ModelConfig::qemu(1));
    let before = r.its.baser(0);
    r.its.set_baser(0, GitsBaser::new());
    assert_eq!(r.its.baser(0), before);
    r.its.set_cbaser(GitsCbaser::new());
    assert_eq!(r.model.errors().len(), 2);
}

#[test]
fn two_level_device_table() {
    let plat = FakePlatform::new();
    let model = GicModel::new(ModelConfig::qemu(1), plat.clone());
    let mut its = model.its(0);
    // Device table: one 4 KiB first-level page of 512 entries, each covering 512 devices.
    let mut l1 = buf(&plat, 0x1000, 0x1000);
    let b = its
        .baser(0)
        .with_page(PageSize::Size4K)
        .with_addr(l1.pa())
        .unwrap()
        .with_attrs(MemAttrs::CACHED)
        .with_indirect(true)
        .with_valid(true);
    its.set_baser(0, b);
    let coll = buf(&plat, 0x1_0000, 0x1_0000);
    its.set_baser(
        1,
        its.baser(1)
            .with_page(PageSize::Size64K)
            .with_addr(coll.pa())
            .unwrap()
            .with_attrs(MemAttrs::CACHED)
            .with_valid(true),
    );
    let mut q = buf(&plat, 0x1000, 0x1000);
    its.set_cbaser(
        GitsCbaser::new()
            .with_addr(Addr4K::new(q.pa()).unwrap())
            .with_attrs(MemAttrs::CACHED)
            .with_valid(true),
    );
    its.set_ctlr(GitsCtlr::new().with_enabled(true));
    let itt = buf(&plat, 256, 256);
    let put = |q: &mut Buf, slot: usize, c: Command| {
        for (i, d) in c.encode().into_iter().enumerate() {
            q.write_u64(slot * 32 + i * 8, d).unwrap();
        }
    };
    // Device 1000 lives in the second first-level entry, which is not valid yet.
    put(&mut q, 0, mapd(1000, &itt, 4));
    its.set_cwriter(GitsCwriter::at(32));
    assert!(
        model.errors()[0]
            .message
            .contains("no second-level table page")
    );
    model.clear_errors();
    let l2 = buf(&plat, 0x1000, 0x1000);
    l1.write_u64(
        8,
        u64::from(its_core::regs::ItsL1Entry::pointing_at(
            Addr4K::new(l2.pa()).unwrap(),
        )),
    )
    .unwrap();
    put(&mut q, 1, mapd(1000, &itt, 4));
    its.set_cwriter(GitsCwriter::at(64));
    model.assert_no_errors();
    assert_eq!(model.dte(0, 1000).map(|d| d.valid), Some(true));
    // It landed in the second-level page: entry 1000 - 512 = 488.
    assert_ne!(l2.read_u64(488 * 8).unwrap(), 0);
}

#[test]
fn memory_fault_stalls() {
    let mut r = Rig::new(ModelConfig::qemu(1));
    let itt = r.itt(256);
    let pa = itt.pa();
    r.post(&[mapd(1, &itt, 4), mapc(0, 0)]);
    drop(itt);
    let _ = pa;
    r.post(&[mapti(1, 0, 8200, 0)]);
    assert!(r.its.creadr().stalled());
    assert!(
        r.model
            .errors()
            .iter()
            .any(|e| e.message.contains("cmd processing failed, stalling"))
    );
}

fn vmapp(vpe: u16, cpu: u16, vpt: &Buf) -> Command {
    Command::Vmapp {
        vpe: VpeId::new(vpe),
        rdbase: rd(cpu),
        valid: true,
        vpt: VptAddr::new(vpt.pa()).unwrap(),
        vpt_size: IdBits::new(16).unwrap(),
    }
}
fn vmapti(dev: u32, ev: u32, vpe: u16, vintid: u32, db: u32) -> Command {
    Command::Vmapti {
        device: DeviceId::new(dev),
        event: EventId::new(ev),
        vpe: VpeId::new(vpe),
        vintid: IntId::new(vintid),
        db: IntId::new(db),
    }
}

fn schedule(m: &GicModel, cpu: usize, vprop: &Buf, vpt: &Buf) {
    let mut rd = m.redist(cpu);
    rd.set_vpropbaser(
        GicrVpropbaser::new()
            .with_addr(Addr4K::new(vprop.pa()).unwrap())
            .with_id_bits(15)
            .into(),
    );
    rd.set_vpendbaser(
        GicrVpendbaser::new()
            .with_addr(VptAddr::new(vpt.pa()).unwrap())
            .with_pending_last(true)
            .with_valid(true)
            .into(),
    );
}

fn deschedule(m: &GicModel, cpu: usize) -> GicrVpendbaser {
    let mut rd = m.redist(cpu);
    let v = GicrVpendbaser::from(rd.vpendbaser())
        .with_valid(false)
        .with_pending_last(false);
    rd.set_vpendbaser(v.into());
    GicrVpendbaser::from(rd.vpendbaser())
}

#[test]
fn vlpi_direct_and_doorbell() {
    let mut r = Rig::new(ModelConfig::qemu(2));
    let itt = r.itt(256);
    let vpt = buf(&r.plat, 0x2000, 0x1_0000);
    let mut vprop = buf(&r.plat, 0x1_0000, 0x1000);
    vprop.fill(0, 0x1_0000, 0x81).unwrap();
    r.post(&[
        mapd(1, &itt, 4),
        mapc(0, 0),
        mapc(1, 1),
        vmapp(5, 1, &vpt),
        vmapti(1, 0, 5, 8192, 8300),
    ]);
    r.model.assert_no_errors();
    // Resident on CPU 1: the vLPI goes straight to the vPE, no doorbell.
    schedule(&r.model, 1, &vprop, &vpt);
    r.post(&[int(1, 0)]);
    assert_eq!(r.model.take_lpi(1), None);
    assert_eq!(r.model.take_vlpi(1), Some(8192));
    assert_eq!(r.model.take_vlpi(1), None);
    // Not resident: the VPT bit is set and the doorbell rings on the VTE's redistributor.
    let v = deschedule(&r.model, 1);
    assert!(!v.pending_last());
    r.post(&[int(1, 0)]);
    assert_eq!(r.model.vpt_pending(vpt.pa().get()), [8192]);
    assert_eq!(r.model.take_lpi(1), Some(8300));
    // Made resident again, the pending vLPI is delivered.
    schedule(&r.model, 1, &vprop, &vpt);
    assert_eq!(r.model.take_vlpi(1), Some(8192));
    // A vLPI pending at deschedule shows as PendingLast.
    r.post(&[int(1, 0)]);
    assert!(deschedule(&r.model, 1).pending_last());
    r.model.assert_no_errors();
}

#[test]
fn vpendbaser_rules() {
    let r = Rig::new(ModelConfig::qemu(1));
    let vpt = buf(&r.plat, 0x2000, 0x1_0000);
    let vpt2 = buf(&r.plat, 0x2000, 0x1_0000);
    let vprop = buf(&r.plat, 0x1_0000, 0x1000);
    schedule(&r.model, 0, &vprop, &vpt);
    assert_eq!(r.model.resident(0), Some(vpt.pa().get()));
    // PendingLast reads 1 while Valid.
    assert!(GicrVpendbaser::from(r.model.redist(0).vpendbaser()).pending_last());
    schedule(&r.model, 0, &vprop, &vpt2);
    let e = r.model.errors();
    assert!(
        e[0].message
            .contains("GICR_VPROPBASER written while GICR_VPENDBASER.Valid = 1"),
        "{e:?}"
    );
    assert!(
        e[1].message
            .contains("Changing GICR_VPENDBASER when VALID=1 is UNPREDICTABLE"),
        "{e:?}"
    );
    assert_eq!(r.model.resident(0), Some(vpt.pa().get()));
}

#[test]
fn vpropbaser_idbits_must_be_set_before_valid() {
    let r = Rig::new(ModelConfig::qemu(1));
    let vpt = buf(&r.plat, 0x2000, 0x1_0000);
    let mut rd = r.model.redist(0);
    rd.set_vpendbaser(
        GicrVpendbaser::new()
            .with_addr(VptAddr::new(vpt.pa()).unwrap())
            .with_valid(true)
            .into(),
    );
    assert!(
        r.model.errors()[0]
            .message
            .contains("VPROPBASER.IDbits = 0")
    );
}

#[test]
fn vmovp_needs_matching_sequence_numbers_without_single_vmovp() {
    let mut cfg = ModelConfig::qemu(2);
    cfg.its_count = 2;
    cfg.single_vmovp = false;
    let m = GicModel::new(cfg, FakePlatform::new());
    let p = m.platform().expect("a fake platform");
    let mut keep = Vec::new();
    let mut queues = Vec::new();
    for n in 0..2 {
        let mut its = m.its(n);
        for b in 0..3 {
            let t = buf(&p, 0x1_0000, 0x1_0000);
            its.set_baser(
                b,
                its.baser(b)
                    .with_page(PageSize::Size64K)
                    .with_addr(t.pa())
                    .unwrap()
                    .with_valid(true),
            );
            keep.push(t);
        }
        let q = buf(&p, 0x1000, 0x1000);
        its.set_cbaser(
            GitsCbaser::new()
                .with_addr(Addr4K::new(q.pa()).unwrap())
                .with_attrs(MemAttrs::CACHED)
                .with_valid(true),
        );
        its.set_ctlr(GitsCtlr::new().with_its_number(n as u8).with_enabled(true));
        queues.push(q);
    }
    let vpt = buf(&p, 0x2000, 0x1_0000);
    let vmovp = |seq: u16| Command::Vmovp {
        seq,
        its_list: 0b11,
        vpe: VpeId::new(1),
        rdbase: rd(1),
    };
    for (n, seq) in [(0usize, 7u16), (1, 8)] {
        for (slot, c) in [vmapp(1, 0, &vpt), vmovp(seq)].into_iter().enumerate() {
            for (i, d) in c.encode().into_iter().enumerate() {
                queues[n].write_u64(slot * 32 + i * 8, d).unwrap();
            }
        }
        m.its(n).set_cwriter(GitsCwriter::at(64));
    }
    let e = m.errors();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].message.contains("sequence number 8 differs from 7"));
    assert_eq!(m.vte(0, 1).map(|v| v.rd), Some(1));
}

#[test]
fn slow_register_knobs() {
    use its_core::regs::{GicrCtlr, GicrInvlpir, GitsCtlr};
    let mut cfg = ModelConfig::qemu(1);
    cfg.dirty_reads = Some(0);
    cfg.direct_lpi = true;
    let m = GicModel::new(cfg, FakePlatform::new());
    // GITS_CTLR.Quiescent: never, then revived while the disable is in progress.
    let mut its = m.its(0);
    its.set_ctlr(GitsCtlr::new().with_enabled(true));
    m.set_quiescent_reads(u32::MAX);
    its.set_ctlr(GitsCtlr::new());
    assert!((0..100).all(|_| !its.ctlr().quiescent()));
    m.set_quiescent_reads(0);
    assert!(its.ctlr().quiescent());
    // GICR_WAKER: two reads with ChildrenAsleep, then awake.
    let mut rd = m.redist(0);
    m.set_waker_reads(2);
    rd.set_waker(rd.waker().with_processor_sleep(false));
    assert!(rd.waker().children_asleep());
    assert!(rd.waker().children_asleep());
    assert!(!rd.waker().children_asleep());
    // GICR_CTLR.RWP after EnableLPIs is cleared.
    m.set_rwp_reads(1);
    rd.set_ctlr(GicrCtlr::new().with_enable_lpis(true));
    assert!(!rd.ctlr().rwp(), "only a clear takes time");
    rd.set_ctlr(GicrCtlr::new());
    assert!(rd.ctlr().rwp());
    assert!(!rd.ctlr().rwp());
    // Without CES, EnableLPIs sticks.
    m.set_ces(false);
    rd.set_ctlr(GicrCtlr::new().with_enable_lpis(true));
    rd.set_ctlr(GicrCtlr::new());
    assert!(rd.ctlr().enable_lpis() && !rd.ctlr().ces());
    // GICR_SYNCR.Busy after an invalidation.
    m.set_syncr_busy_reads(1);
    rd.set_invlpir(GicrInvlpir::new().with_intid(8192));
    assert!(rd.syncr().busy());
    assert!(!rd.syncr().busy());
    // GICR_VPENDBASER.Dirty.
    m.set_dirty_reads(2);
    rd.set_vpropbaser(GicrVpropbaser::new().with_id_bits(15).into());
    rd.set_vpendbaser(1 << 63 | 0x4000_0000);
    assert_ne!(rd.vpendbaser() & 1 << 60, 0);
    assert_ne!(rd.vpendbaser() & 1 << 60, 0);
    assert_eq!(rd.vpendbaser() & 1 << 60, 0);
    // The registers were poked without the tables a driver sets up first: the model says so.
    let e: Vec<String> = m.errors().into_iter().map(|e| e.to_string()).collect();
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].contains("without a collection table"));
    assert!(e[1..].iter().all(|e| e.contains("EnableLPIs set before")));
}

/// The model's error is returned by value: it stays small.
#[test]
fn error_is_small() {
    let size = core::mem::size_of::<crate::ModelError>();
    assert!(size <= 64, "ModelError is {size} bytes");
}
