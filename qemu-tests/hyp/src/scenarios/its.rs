// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ITS and its command queue on QEMU's model: what bring-up programmed and what the ITS
//! reports, a small ring wrapped many times, a thousand events in batches, and bad commands
//! (refused by the driver before they reach the ITS, or pushed raw and logged by QEMU).

use core::time::Duration;

use common::palloc::PALLOC;
use common::{check, println, report, require};
use its_cmdq::{ItsError, LpiRange, QueueConfig, QueueStats, SyncTarget};
use its_core::addr::PageSize;
use its_core::cmd::{Command, ItsVersion};
use its_core::ids::{CollectionId, DeviceId, EventId, IntId, Lpi};
use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_core::regs::{BaserType, MemAttrs};
use safe_mmio::field_shared;

use super::Ctx;
use super::support::{
    LPI_TIMEOUT, MemMark, check_taken, check_total, need, queue_delta, up, up_default,
};
use crate::gic::{self, Gic, HwDevice};

fn page_bytes(p: Option<PageSize>) -> u64 {
    p.map_or(0, |p| p.bytes() as u64)
}

/// In the RAM the allocator manages, and aligned.
fn in_ram(pa: u64, align: u64) -> bool {
    (common::platform::RAM_BASE as u64..common::platform::RAM_END as u64).contains(&pa)
        && pa.is_multiple_of(align)
}

/// The capabilities match what the ITS reports, and the tables and queue the driver
/// programmed read back as programmed: GITS_TYPER vs `ItsCaps`, GITS_BASER<n> vs the driver's
/// tables, GITS_CBASER, GICR_TYPER / PROPBASER / PENDBASER of every CPU, GICD_TYPER. Then the
/// GIC is shut down and every byte of DMA memory comes back, and it comes up a second time.
pub fn its_probe(_ctx: &mut Ctx) {
    let base = PALLOC.outstanding();
    let Some(gic) = up_default() else { return };
    probe_its(&gic);
    probe_tables(&gic);
    probe_redists(&gic);
    let s = gic.its().queue().stats();
    report::metrics(&[
        ("bringup_commands", s.commands),
        ("bringup_cwriter_writes", s.cwriter_writes),
        ("dma_bytes", (PALLOC.outstanding() - base) as u64),
    ]);
    // Bring-up posted a MAPC per CPU (one CWRITER write), then, once the ITS did them all,
    // an INVALL and a SYNC per CPU (a second).
    let n = gic.cpus as u64;
    check!(
        s.commands == 3 * n && s.cwriter_writes == 2,
        "bring-up: {} commands in {} CWRITER writes, expected {} in 2",
        s.commands,
        s.cwriter_writes,
        3 * n
    );

    drop(gic);
    check!(
        PALLOC.outstanding() == base,
        "after shut-down {} bytes outstanding, {base} before bring-up",
        PALLOC.outstanding()
    );
    // Disabled and quiescent, the ITS takes new tables: a second bring-up works.
    let Some(gic) = up_default() else { return };
    check!(
        gic.with_its_regs(|r| r.ctlr().enabled()),
        "ITS not re-enabled"
    );
    drop(gic);
    check!(PALLOC.outstanding() == base, "second shut-down leaked");
}

fn probe_its(gic: &Gic) {
    let caps = *gic.its().caps();
    let (typer, ctlr, iidr, pidr2) = gic.with_its_regs(|r| {
        (
            r.typer(),
            r.ctlr(),
            r.iidr(),
            field_shared!(*r, pidr2).read(),
        )
    });
    println!(
        "its_probe: GITS_TYPER={:#018x} GITS_CTLR={:#x} GITS_IIDR={iidr:#x} GITS_PIDR2={pidr2:#x}",
        u64::from(typer),
        u32::from(ctlr)
    );
    println!("its_probe: {caps:?}");
    report::metrics(&[
        ("gits_typer", typer.into()),
        ("gits_iidr", iidr.into()),
        ("arch_rev", ((pidr2 >> 4) & 0xf).into()),
        ("physical", caps.physical.into()),
        ("virtual", caps.is_v4().into()),
        ("itt_entry_bytes", caps.itt_entry_bytes.into()),
        ("event_id_bits", caps.event_id_bits.into()),
        ("device_id_bits", caps.device_id_bits.into()),
        ("collection_id_bits", caps.collection_id_bits.into()),
        ("pta", caps.pta.into()),
        ("hcc", caps.hcc.into()),
        ("vmovp", caps.single_vmovp.into()),
    ]);
    // ItsCaps is GITS_TYPER, field for field.
    check!(
        caps.physical == typer.physical() && caps.physical,
        "Physical"
    );
    check!(caps.is_v4() == typer.virtual_lpis(), "Virtual");
    check!(
        usize::from(caps.itt_entry_bytes) == typer.itt_entry_bytes(),
        "ITT_entry_size"
    );
    check!(caps.event_id_bits == typer.id_bits() + 1, "IDbits");
    check!(caps.device_id_bits == typer.dev_bits() + 1, "Devbits");
    let cid = if typer.cil() {
        typer.cid_bits() + 1
    } else {
        16
    };
    check!(caps.collection_id_bits == cid, "CIDbits");
    check!(
        caps.pta == typer.pta() && caps.hcc == typer.hcc(),
        "PTA/HCC"
    );
    check!(
        caps.single_vmovp == typer.vmovp() && caps.vsgi == typer.vsgi(),
        "VMOVP/VSGI"
    );
    // QEMU 7.2's model, as `gicv3_arm_its_realize` sets it.
    check!(
        caps.version == ItsVersion::V4_0,
        "version {:?}",
        caps.version
    );
    check!(
        caps.itt_entry_bytes == 12 && caps.event_id_bits == 16 && caps.device_id_bits == 16,
        "ITT entry / IDbits / Devbits: {caps:?}"
    );
    check!(
        !caps.pta && caps.hcc == 0 && caps.single_vmovp,
        "PTA / HCC / VMOVP: {caps:?}"
    );
    check!(
        (pidr2 >> 4) & 0xf == 4,
        "GITS_PIDR2 ArchRev {}",
        (pidr2 >> 4) & 0xf
    );
    check!(ctlr.enabled(), "GITS_CTLR.Enabled clear after bring-up");
}

fn probe_tables(gic: &Gic) {
    let its = gic.its();
    let tables = [
        (Some(its.device_table()), BaserType::Devices, "device"),
        (its.collection_table(), BaserType::Collections, "collection"),
        (its.vpe_table(), BaserType::Vpes, "vpe"),
    ];
    let mut used = [false; 8];
    for (t, kind, name) in tables {
        let Some(t) = t else {
            check!(false, "no {name} table (QEMU has HCC = 0 and a vPE table)");
            continue;
        };
        let i = t.baser_index();
        used[i] = true;
        let b = gic.with_its_regs(|r| r.baser(i));
        let page = page_bytes(b.page());
        println!(
            "its_probe: GITS_BASER{i}={:#018x} {name}: page {} KiB, {} pages, indirect {}, \
             {} IDs, entry {} B",
            u64::from(b),
            page >> 10,
            u64::from(b.size()) + 1,
            b.indirect(),
            t.ids(),
            b.entry_bytes()
        );
        report::metrics(&[
            ("baser", i as u64),
            ("page_kib", page >> 10),
            ("pages", u64::from(b.size()) + 1),
            ("indirect", b.indirect().into()),
            ("ids", t.ids()),
        ]);
        check!(b.valid() && b.table_type() == kind, "BASER{i} {b:?}");
        check!(
            b.page() == Some(t.page_size()),
            "BASER{i} page {:?} vs {:?}",
            b.page(),
            t.page_size()
        );
        check!(b.indirect() == t.is_indirect(), "BASER{i} Indirect");
        check!(b.entry_bytes() == 8, "BASER{i} Entry_Size");
        check!(
            b.attrs() == MemAttrs::CACHED && !t.cleans_to_poc(),
            "BASER{i} attributes"
        );
        check!(
            in_ram(b.addr().get(), page),
            "BASER{i} address {:#x}",
            b.addr().get()
        );
        // Before any device is mapped, a table's memory is its first level only.
        if t.l2_pages() == 0 {
            check!(
                (u64::from(b.size()) + 1) * page == t.bytes() as u64,
                "BASER{i}: {} pages of {page} B, driver holds {} B",
                u64::from(b.size()) + 1,
                t.bytes()
            );
        }
    }
    let devs = its.device_table().ids();
    check!(devs == 1 << 16, "device table covers {devs:#x} DeviceIDs");
    check!(
        its.collection_table()
            .is_some_and(|t| t.ids() >= gic.cpus as u64),
        "collection table too small"
    );
    for (i, used) in used.iter().enumerate() {
        let b = gic.with_its_regs(|r| r.baser(i));
        if !used {
            check!(
                u64::from(b) == 0,
                "unused GITS_BASER{i} = {:#x}",
                u64::from(b)
            );
        }
    }
    // The command queue.
    let (cb, cw, cr) = gic.with_its_regs(|r| (r.cbaser(), r.cwriter(), r.creadr()));
    println!(
        "its_probe: GITS_CBASER={:#018x} ({} KiB) CWRITER={:#x} CREADR={:#x}",
        u64::from(cb),
        cb.bytes() >> 10,
        cw.byte_offset(),
        cr.byte_offset()
    );
    report::metrics(&[("cmdq_kib", (cb.bytes() >> 10) as u64)]);
    check!(
        cb.valid() && cb.bytes() == QueueConfig::default().bytes,
        "CBASER {cb:?}"
    );
    check!(cb.attrs() == MemAttrs::CACHED, "CBASER attributes");
    check!(in_ram(cb.addr().get(), 0x1000), "CBASER address");
    check!(
        !its.queue().cleans_to_poc(),
        "queue cleans to PoC on a coherent ITS"
    );
    check!(
        cw.byte_offset() == cr.byte_offset() && !cr.stalled(),
        "queue not idle: {cw:?} {cr:?}"
    );
}

fn probe_redists(gic: &Gic) {
    let dist = gic.dist;
    println!("its_probe: {dist:?}");
    check!(
        dist.lpis && dist.dvis && dist.id_bits == 16,
        "GICD_TYPER {dist:?}"
    );
    let lpi_bits = gic.lpis().id_bits();
    for cpu in 0..gic.cpus {
        let Some((typer, ctlr, prop, pend)) = gic.with_redist(cpu, |rd| {
            (rd.typer(), rd.ctlr(), rd.propbaser(), rd.pendbaser())
        }) else {
            check!(false, "no redistributor for cpu{cpu}");
            continue;
        };
        println!(
            "its_probe: cpu{cpu} GICR_TYPER={:#018x} PROPBASER={:#x} PENDBASER={:#x}",
            u64::from(typer),
            u64::from(prop),
            u64::from(pend)
        );
        report::metrics(&[
            ("cpu", cpu as u64),
            ("gicr_typer", typer.into()),
            ("processor", typer.processor_number().into()),
            ("propbaser_idbits", u64::from(prop.id_bits()) + 1),
        ]);
        check!(typer.plpis() && typer.vlpis(), "cpu{cpu}: PLPIS/VLPIS");
        check!(
            !typer.direct_lpi() && !typer.dirty() && !typer.rvpeid(),
            "cpu{cpu}: {typer:?}"
        );
        check!(
            usize::from(typer.processor_number()) == cpu,
            "cpu{cpu}: Processor_Number"
        );
        check!(typer.last() == (cpu + 1 == gic.cpus), "cpu{cpu}: Last");
        check!(ctlr.enable_lpis(), "cpu{cpu}: EnableLPIs clear");
        check!(prop.id_bits() + 1 == lpi_bits, "cpu{cpu}: PROPBASER.IDbits");
        check!(
            in_ram(prop.addr().get(), 0x1_0000),
            "cpu{cpu}: PROPBASER address"
        );
        check!(
            in_ram(pend.addr().get(), 0x1_0000),
            "cpu{cpu}: PENDBASER address"
        );
        check!(
            prop.attrs() == MemAttrs::CACHED && pend.attrs() == MemAttrs::CACHED,
            "cpu{cpu}: attrs"
        );
        let found = gic.redists[cpu].map(|r| r.rd_base.get());
        let expect = (common::platform::GICR_BASE + cpu * common::platform::GICR_STRIDE) as u64;
        check!(
            found == Some(expect),
            "cpu{cpu}: RD_base {found:x?}, expected {expect:#x}"
        );
        // The ITS names this redistributor by processor number (PTA = 0).
        let t = gic.its().cpu(cpu).map(|t| (t.rdbase.raw(), t.icid.get()));
        check!(
            t == Ok((cpu as u64, cpu as u16)),
            "cpu{cpu}: collection {t:?}"
        );
    }
    check!(
        !gic.lpis().cleans_to_poc(),
        "property table cleaned on a coherent GIC"
    );
}

/// Maps `count` events of `dev` to `lpis` on CPU0 in batches of `batch`.
fn map_in_batches(gic: &Gic, dev: &mut HwDevice, lpis: LpiRange, count: u32, batch: usize) -> bool {
    let mut items = [(0u32, Lpi::MIN, 0usize); 256];
    let mut e = 0;
    while e < count {
        let n = batch.min((count - e) as usize).min(items.len());
        for (k, item) in items[..n].iter_mut().enumerate() {
            let ev = e + k as u32;
            let Some(l) = lpis.get(ev) else { return false };
            *item = (ev, l, 0);
        }
        if let Err(err) = gic.its().map_events(dev, &items[..n]) {
            check!(false, "map_events at event {e}: {err}");
            return false;
        }
        e += n as u32;
    }
    true
}

fn alloc_enabled(gic: &Gic, n: u32) -> Option<LpiRange> {
    let r = match gic.lpis().alloc(n) {
        Ok(r) => r,
        Err(e) => {
            check!(false, "alloc({n}) LPIs: {e}");
            return None;
        }
    };
    for l in r.iter() {
        if gic
            .lpis()
            .configure(l, its_cmdq::lpi::DEFAULT_PRIORITY, true)
            .is_err()
        {
            check!(false, "configure LPI {}", l.get());
            return None;
        }
    }
    Some(r)
}

fn report_stats(prefix: &str, s: QueueStats) {
    println!("{prefix}: {s:?}");
    report::metrics(&[
        ("commands", s.commands),
        ("cwriter_writes", s.cwriter_writes),
        ("waits", s.waits),
        ("full_waits", s.full_waits),
        ("creadr_reads", s.creadr_reads),
        ("batches", s.batches),
    ]);
}

/// Checks that every LPI of `r` was taken on CPU0 exactly `n` times.
fn check_each_taken(r: LpiRange, n: u32) -> bool {
    let bad = r.iter().filter(|&l| gic::taken(0, l) != n).count();
    let first = r.iter().find(|&l| gic::taken(0, l) != n);
    check!(
        bad == 0,
        "{bad} of {} LPIs not taken exactly {n} times (first: {:?} taken {:?})",
        r.count,
        first.map(Lpi::get),
        first.map(|l| gic::taken(0, l))
    )
}

/// A 4 KiB ring (127 usable slots): 300 events mapped (one batch of 200, larger than the ring,
/// then batches of 37), 300 INTs, the unmap: about 1000 commands through the ring, wrapping
/// it again and again mid-batch. Every LPI is taken exactly once.
pub fn cmdq_wrap(_ctx: &mut Ctx) {
    const EVENTS: u32 = 300;
    let q = QueueConfig {
        bytes: 0x1000,
        ..QueueConfig::default()
    };
    let Some(gic) = up(q) else { return };
    let its = gic.its();
    let cb = gic.with_its_regs(|r| r.cbaser());
    check!(cb.bytes() == 0x1000, "CBASER size {} B", cb.bytes());
    let mark = MemMark::now(&gic);
    let s0 = its.queue().stats();
    let Ok(mut dev) = its.map_device(DeviceId::new(0x30), 512) else {
        check!(false, "map_device");
        return;
    };
    let Some(lpis) = alloc_enabled(&gic, EVENTS) else {
        return;
    };
    // One batch of 200 MAPTIs + SYNC: more than the ring holds, posted in ring-sized pieces.
    let first = need!(LpiRange::get(&lpis, 0), "LPI 0 of {lpis:?}");
    let r200 = LpiRange {
        base: first,
        count: 200,
    };
    require!(map_in_batches(&gic, &mut dev, r200, 200, 200));
    let writes = queue_delta(s0, its.queue().stats()).cwriter_writes;
    check!(
        writes >= 3,
        "a 201-command batch took {writes} CWRITER writes"
    );
    // The other 100 in batches of 37.
    let l200 = need!(lpis.get(200), "LPI 200 of {lpis:?}");
    let rest = LpiRange {
        base: l200,
        count: 100,
    };
    let mut items = [(0u32, Lpi::MIN, 0usize); 37];
    let mut e = 0;
    while e < 100 {
        let n = 37.min(100 - e);
        for (k, it) in items[..n as usize].iter_mut().enumerate() {
            *it = (
                200 + e + k as u32,
                rest.get(e + k as u32).unwrap_or(Lpi::MIN),
                0,
            );
        }
        require!(
            its.map_events(&mut dev, &items[..n as usize]).is_ok(),
            "batch at {e}"
        );
        e += n;
    }
    check!(
        dev.mapped_events() == EVENTS,
        "{} events mapped",
        dev.mapped_events()
    );
    require!(its.invall(0).is_ok());
    for ev in 0..EVENTS {
        require!(its.int_event(&dev, ev).is_ok(), "INT {ev}");
    }
    gic::take_irqs(u64::from(EVENTS), LPI_TIMEOUT);
    check_each_taken(lpis, 1);
    check_total(u64::from(EVENTS));
    require!(its.unmap_device(&mut dev).is_ok(), "unmap_device");
    check!(gic.lpis().free(lpis).is_ok());

    let s = queue_delta(s0, its.queue().stats());
    report_stats("cmdq_wrap", s);
    let (cw, cr) = gic.with_its_regs(|r| (r.cwriter(), r.creadr()));
    check!(
        cw.byte_offset() == cr.byte_offset() && !cr.stalled(),
        "queue not drained"
    );
    // 127 slots: this many commands wrapped the ring at least s.commands / 128 times.
    check!(
        s.commands > 6 * 128,
        "only {} commands: the ring did not wrap enough",
        s.commands
    );
    report::metrics(&[("ring_wraps", s.commands / 128)]);
    mark.check_no_leak(&gic);
}

/// 1024 events mapped in batches of 128, each INT'd once (one INT + SYNC per call), then all
/// 1024 INTs again in one batch (one CWRITER write): each LPI taken exactly once per round.
/// Queue statistics are reported as metrics.
pub fn cmdq_batch_many(_ctx: &mut Ctx) {
    const EVENTS: u32 = 1024;
    let Some(gic) = up_default() else { return };
    let its = gic.its();
    let mark = MemMark::now(&gic);
    let Ok(mut dev) = its.map_device(DeviceId::new(0x40), EVENTS) else {
        check!(false, "map_device");
        return;
    };
    let Some(lpis) = alloc_enabled(&gic, EVENTS) else {
        return;
    };
    let t0 = common::timer::now();
    let s0 = its.queue().stats();
    require!(map_in_batches(&gic, &mut dev, lpis, EVENTS, 128));
    require!(its.invall(0).is_ok());
    let s_map = its.queue().stats();
    let t_map = common::timer::now();
    for ev in 0..EVENTS {
        require!(its.int_event(&dev, ev).is_ok(), "INT {ev}");
    }
    let s_int = its.queue().stats();
    let t_int = common::timer::now();
    gic::take_irqs(u64::from(EVENTS), Duration::from_secs(2));
    let t_drain = common::timer::now();
    check_each_taken(lpis, 1);
    check_total(u64::from(EVENTS));

    // All the INTs again, as one batch.
    let id = dev.id();
    let rdbase = its.cpu(0).map(|c| c.rdbase);
    require!(rdbase.is_ok());
    let sync = [SyncTarget::Redist(rdbase.unwrap_or_default())];
    let out = its.execute(
        EVENTS as usize,
        |i| Command::Int {
            device: id,
            event: EventId::new(i as u32),
        },
        &sync,
    );
    check!(
        out.as_ref().is_ok_and(|o| o.skipped.is_empty()),
        "batched INT: {out:?}"
    );
    let s_batch = its.queue().stats();
    gic::take_irqs(2 * u64::from(EVENTS), Duration::from_secs(2));
    check_each_taken(lpis, 2);
    check_total(2 * u64::from(EVENTS));

    let map = queue_delta(s0, s_map);
    let ints = queue_delta(s_map, s_int);
    let batch = queue_delta(s_int, s_batch);
    report_stats("cmdq_batch_many map", map);
    report_stats("cmdq_batch_many int", ints);
    report_stats("cmdq_batch_many batched int", batch);
    report::metrics(&[
        ("map_us", (t_map - t0).as_micros() as u64),
        ("int_us", (t_int - t_map).as_micros() as u64),
        ("drain_us", (t_drain - t_int).as_micros() as u64),
    ]);
    // 8 batches of 128 MAPTI + SYNC, and INVALL + SYNC.
    check!(
        map.commands == 8 * 129 + 2 && map.cwriter_writes == 9,
        "map: {map:?}"
    );
    check!(
        ints.commands == 2 * 1024 && ints.cwriter_writes == 1024,
        "int: {ints:?}"
    );
    check!(
        batch.commands == 1025 && batch.cwriter_writes == 1,
        "batched int: {batch:?}"
    );

    require!(its.unmap_device(&mut dev).is_ok(), "unmap_device");
    check!(gic.lpis().free(lpis).is_ok());
    mark.check_no_leak(&gic);
}

/// The raw MAPTI pushed past the driver: pINTID 5 is an SGI, not an LPI.
const BAD_PINTID: u32 = 5;

/// A bad command is refused by the driver with a typed error before it reaches the ITS (the
/// queue statistics do not move, no memory is allocated); pushed raw through the test hook, it
/// reaches the ITS, which skips it without stalling and logs it (the runner expects that exact
/// line); the queue then works on.
pub fn its_bad_command(_ctx: &mut Ctx) {
    let Some(gic) = up_default() else { return };
    let its = gic.its();
    let mark = MemMark::now(&gic);
    let Ok(mut dev) = its.map_device(DeviceId::new(0x50), 2) else {
        check!(false, "map_device");
        return;
    };
    let before = its.queue().stats();
    let mem = common::palloc::PALLOC.outstanding();

    // MAPTI with pINTID 5: Lpi refuses to exist, and the queue refuses the raw Command.
    check!(
        Lpi::new(BAD_PINTID).is_err(),
        "Lpi::new({BAD_PINTID}) accepted"
    );
    let bad = Command::Mapti {
        device: dev.id(),
        event: EventId::new(0),
        pintid: IntId::new(BAD_PINTID),
        icid: CollectionId::new(0),
    };
    let r = its.queue().submit(&[bad], &[]);
    println!("its_bad_command: MAPTI pINTID 5 -> {r:?}");
    check!(
        matches!(r, Err(ItsError::InvalidCommand { index: 0, .. })),
        "MAPTI pINTID 5: {r:?}"
    );
    // A DeviceID beyond Devbits (16 bits on QEMU).
    let r = its.map_device(DeviceId::new(1 << 16), 2);
    check!(
        matches!(r, Err(ItsError::Id(_))),
        "map_device(0x10000): {:?}",
        r.as_ref().err()
    );
    let r = its.queue().submit(
        &[Command::Int {
            device: DeviceId::new(1 << 16),
            event: EventId::new(0),
        }],
        &[],
    );
    check!(
        matches!(r, Err(ItsError::InvalidCommand { .. })),
        "INT DeviceID 0x10000: {r:?}"
    );
    // An event beyond the device's ITT, an unmapped event.
    let r = its.map_event(&mut dev, 2, Lpi::MIN, 0);
    check!(
        matches!(r, Err(ItsError::EventOutOfRange { .. })),
        "event 2: {r:?}"
    );
    let r = its.int_event(&dev, 1);
    check!(
        matches!(r, Err(ItsError::EventNotMapped { .. })),
        "INT unmapped: {r:?}"
    );
    check!(
        its.queue().stats() == before,
        "a refused command reached the queue"
    );
    check!(
        common::palloc::PALLOC.outstanding() == mem,
        "a refused request kept memory"
    );

    // Now past the driver: the ITS gets it, logs it, skips it, and does not stall.
    let raw = bad.encode();
    println!("its_bad_command: posting raw {raw:#018x?}");
    let ticket = match its.queue().post_raw_unchecked(&[raw]) {
        Ok(t) => t,
        Err(e) => {
            check!(false, "post_raw_unchecked: {e}");
            return;
        }
    };
    let w = its.queue().wait(ticket);
    check!(w.is_ok(), "the raw command did not complete: {w:?}");
    let after = its.queue().stats();
    check!(
        after.commands == before.commands + 1 && after.cwriter_writes == before.cwriter_writes + 1,
        "raw post: {after:?}"
    );
    let cr = gic.with_its_regs(|r| r.creadr());
    check!(!cr.stalled(), "the ITS stalled on the bad command");
    check!(
        gic::irqs_during(gic::QUIET) == 0,
        "the bad MAPTI raised an interrupt"
    );

    // The queue and the event still work: map event 0 properly, INT, one LPI.
    let Ok(lpi) = gic.map_new_lpi(&mut dev, 0, 0) else {
        check!(false, "mapping after the bad command");
        return;
    };
    require!(its.int_event(&dev, 0).is_ok());
    gic::take_irqs(1, LPI_TIMEOUT);
    check_taken(0, lpi, 1);
    check_total(1);

    require!(its.unmap_device(&mut dev).is_ok(), "unmap_device");
    check!(
        gic.lpis()
            .free(LpiRange {
                base: lpi,
                count: 1
            })
            .is_ok()
    );
    mark.check_no_leak(&gic);
}
