// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ITS side of the model: registers, tables, command processing.

use std::collections::HashMap;

use its_core::cmd::{Command, DecodeError, ItsVersion};
use its_core::regs::{
    BaserType, GitsBaser, GitsCbaser, GitsCreadr, GitsCtlr, GitsCwriter, Shareability,
};

use super::redist;
use super::tables::{
    CteView, DteView, IteView, Table, VteView, ite_addr, read_cte, read_entry, read_ite, read_vte,
    write_entry,
};
use super::{Delay, ModelConfig, World, view_for};
use crate::platform::{MemFault, View};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Queue {
    base: u64,
    size: usize,
    view: View,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct V41Vpe {
    pub(crate) default_db: u32,
    pub(crate) vconf: u64,
}

pub(crate) struct ItsState {
    pub(crate) name: String,
    pub(crate) ctlr: GitsCtlr,
    pub(crate) cbaser: GitsCbaser,
    pub(crate) cwriter: u64,
    pub(crate) creadr: usize,
    pub(crate) stalled: bool,
    pub(crate) basers: [GitsBaser; 8],
    pub(crate) dev: Option<Table>,
    pub(crate) coll: Option<Table>,
    pub(crate) vpe: Option<Table>,
    pub(crate) queue: Option<Queue>,
    pub(crate) stall_at: Option<u64>,
    pub(crate) die_at: Option<u64>,
    pub(crate) processed: u64,
    pub(crate) delay: Delay,
    pub(crate) polls_left: u32,
    pub(crate) quiescent_left: u32,
    pub(crate) log: Vec<(usize, Command)>,
    pub(crate) cwriter_writes: u64,
    pub(crate) creadr_reads: u64,
    pub(crate) vmovp_seqs: Vec<u16>,
    pub(crate) v41: HashMap<u16, V41Vpe>,
}

fn largest_page(cfg: &ModelConfig) -> u8 {
    if cfg.page_sizes.k64 {
        2
    } else if cfg.page_sizes.k16 {
        1
    } else {
        0
    }
}

impl ItsState {
    pub(crate) fn new(index: usize, cfg: &ModelConfig) -> Self {
        let page = largest_page(cfg);
        let b = |t: BaserType| {
            GitsBaser::new()
                .with_table_type(t)
                .with_entry_size(7)
                .with_page_size(page)
        };
        let mut basers = [GitsBaser::new(); 8];
        basers[0] = b(BaserType::Devices);
        basers[1] = b(BaserType::Collections);
        if cfg.version != ItsVersion::V3 {
            basers[2] = b(BaserType::Vpes);
        }
        Self {
            name: format!("its{index}"),
            ctlr: GitsCtlr::new().with_quiescent(true),
            cbaser: GitsCbaser::new(),
            cwriter: 0,
            creadr: 0,
            stalled: false,
            basers,
            dev: None,
            coll: None,
            vpe: None,
            queue: None,
            stall_at: None,
            die_at: None,
            processed: 0,
            delay: Delay::Immediate,
            polls_left: 0,
            quiescent_left: 0,
            log: Vec::new(),
            cwriter_writes: 0,
            creadr_reads: 0,
            vmovp_seqs: Vec::new(),
            v41: HashMap::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Registers

pub(crate) fn read_ctlr(w: &mut World, n: usize) -> GitsCtlr {
    let its = &mut w.its[n];
    if !its.ctlr.enabled() && its.quiescent_left > 0 {
        its.quiescent_left -= 1;
        return its.ctlr.with_quiescent(false);
    }
    its.ctlr.with_quiescent(!its.ctlr.enabled())
}

pub(crate) fn write_ctlr(w: &mut World, n: usize, v: GitsCtlr) {
    let name = w.its[n].name.clone();
    w.reg_event(name, "GITS_CTLR", u32::from(v).into());
    let was = w.its[n].ctlr.enabled();
    let q = w.cfg.quiescent_reads;
    let its = &mut w.its[n];
    its.ctlr = its
        .ctlr
        .with_enabled(v.enabled())
        .with_its_number(v.its_number());
    if was && !v.enabled() {
        its.quiescent_left = q;
    }
    if !was && v.enabled() {
        latch(w, n);
        process(w, n);
    }
}

pub(crate) fn write_cbaser(w: &mut World, n: usize, v: GitsCbaser) {
    let name = w.its[n].name.clone();
    w.reg_event(name.clone(), "GITS_CBASER", v.into());
    if w.its[n].ctlr.enabled() {
        w.error(
            name,
            "invalid guest write to RO register at offset 0x80 (GITS_CBASER while enabled)",
        );
        return;
    }
    let v = if w.cfg.non_shareable {
        v.with_shareability(Shareability::NonShareable)
    } else {
        v
    };
    let its = &mut w.its[n];
    its.cbaser = v;
    its.creadr = 0;
    its.stalled = false;
}

pub(crate) fn write_cwriter(w: &mut World, n: usize, v: GitsCwriter) {
    let name = w.its[n].name.clone();
    w.reg_event(name.clone(), "GITS_CWRITER", v.into());
    let its = &mut w.its[n];
    its.cwriter_writes += 1;
    let size = its
        .queue
        .map(|q| q.size)
        .unwrap_or_else(|| its.cbaser.bytes());
    if v.byte_offset() >= size {
        w.error(name, format!("invalid write offset {:#x}", v.byte_offset()));
        return;
    }
    its.cwriter = u64::from(v) & !1;
    if its.stalled && v.retry() {
        its.stalled = false;
    }
    match its.delay {
        Delay::Immediate => process(w, n),
        Delay::AfterPolls(k) => its.polls_left = k,
        Delay::Never => {}
    }
}

pub(crate) fn read_creadr(w: &mut World, n: usize) -> GitsCreadr {
    let its = &mut w.its[n];
    its.creadr_reads += 1;
    if let Delay::AfterPolls(_) = its.delay
        && its.polls_left > 0
    {
        its.polls_left -= 1;
        if its.polls_left == 0 {
            process(w, n);
        }
    }
    let its = &w.its[n];
    GitsCreadr::at(its.creadr, its.stalled)
}

pub(crate) fn write_baser(w: &mut World, n: usize, index: usize, v: GitsBaser) {
    let name = w.its[n].name.clone();
    w.reg_event(name.clone(), "GITS_BASER", v.into());
    if index >= 8 {
        return;
    }
    if w.its[n].ctlr.enabled() {
        w.error(name, format!("invalid guest write to RO register at offset {:#x} (GITS_BASER{index} while enabled)", 0x100 + 8 * index));
        return;
    }
    let old = w.its[n].basers[index];
    if old.table_type() == BaserType::Unimplemented {
        return;
    }
    let ps = w.cfg.page_sizes;
    let page = match v.page_size() {
        0 if ps.k4 => 0,
        1 if ps.k16 => 1,
        2 | 3 if ps.k64 => v.page_size(),
        _ => largest_page(&w.cfg),
    };
    let mut nv = v
        .with_table_type(old.table_type())
        .with_entry_size(old.entry_size())
        .with_page_size(page);
    if !w.cfg.indirect {
        nv = nv.with_indirect(false);
    }
    if w.cfg.non_shareable || w.cfg.non_shareable_tables {
        nv = nv.with_shareability(Shareability::NonShareable);
    }
    w.its[n].basers[index] = nv;
}

/// Latches tables and queue at enable, as QEMU does.
fn latch(w: &mut World, n: usize) {
    let cfg = w.cfg.clone();
    let name = w.its[n].name.clone();
    let mut dev = None;
    let mut coll = None;
    let mut vpe = None;
    for (i, b) in w.its[n].basers.into_iter().enumerate() {
        if !b.valid() {
            continue;
        }
        let page = match b.page_size() {
            0 => 0x1000u64,
            1 => 0x4000,
            _ => 0x1_0000,
        };
        let pages = u64::from(b.size()) + 1;
        let esz = b.entry_bytes() as u64;
        let (bits, slot) = match b.table_type() {
            BaserType::Devices => (cfg.device_bits, &mut dev),
            BaserType::Collections => (cfg.collection_bits, &mut coll),
            BaserType::Vpes => (16, &mut vpe),
            _ => continue,
        };
        let entries = if b.indirect() {
            (pages * page / 8) * (page / esz)
        } else {
            pages * page / esz
        };
        let t = Table {
            base: b.addr().get(),
            indirect: b.indirect(),
            page,
            esz,
            entries: entries.min(1u64 << bits),
            view: view_for(b.shareability()),
        };
        if !w.mem.is_live(t.base, (pages * page) as usize) {
            w.error(name.clone(), format!(
                "GITS_BASER{i} points at {:#x} (+{:#x} bytes), which is not allocated memory (model check)",
                t.base, pages * page
            ));
        }
        *slot = Some(t);
    }
    let cb = w.its[n].cbaser;
    let queue = cb.valid().then(|| Queue {
        base: cb.addr().get(),
        size: cb.bytes(),
        view: view_for(cb.shareability()),
    });
    if cfg.hcc == 0 && coll.is_none() {
        w.error(
            name.clone(),
            "enabled without a collection table and HCC = 0 (model check)",
        );
    }
    if cfg.strict.vpe_table_sharing
        && cfg.its_share_group().is_some()
        && let Some(t) = vpe
    {
        // Every ITS shares its vPE table with the same redistributors (one GITS_MPIDR in
        // this model), and a redistributor has one GICR_VPROPBASER: the ITSs must share one
        // table too.
        for m in 0..w.its.len() {
            if let Some(o) = w.its[m].vpe.filter(|_| m != n && w.its[m].ctlr.enabled())
                && o.base != t.base
            {
                w.error(name.clone(), format!(
                    "vPE table {:#x} differs from its{m}'s {:#x}, though both ITSs share theirs with the same redistributors (GITS_TYPER.SVPET = {}) (model check)",
                    t.base, o.base, cfg.svpet
                ));
            }
        }
    }
    let its = &mut w.its[n];
    its.dev = dev;
    its.coll = coll;
    its.vpe = vpe;
    its.queue = queue;
}

// ---------------------------------------------------------------------------------------------
// Command processing

/// The queue stops at the current command.
struct Stall;

impl From<MemFault> for Stall {
    fn from(_: MemFault) -> Self {
        Stall
    }
}

pub(crate) fn process(w: &mut World, n: usize) {
    loop {
        let its = &w.its[n];
        if !its.ctlr.enabled() || its.stalled {
            return;
        }
        let Some(q) = its.queue else { return };
        let cw = GitsCwriter::from(its.cwriter).byte_offset();
        if cw >= q.size || its.creadr == cw {
            return;
        }
        let offset = its.creadr;
        let name = its.name.clone();
        if its.die_at == Some(its.processed) {
            // Dead from here on: GITS_CREADR stays at this command.
            let its = &mut w.its[n];
            its.die_at = None;
            its.delay = Delay::Never;
            return;
        }
        if its.stall_at == Some(its.processed) {
            let its = &mut w.its[n];
            its.stall_at = None;
            its.stalled = true;
            w.error(
                name,
                format!("process_cmdq: {offset:#x} cmd processing failed, stalling (injected)"),
            );
            return;
        }
        let mut raw = [0u8; 32];
        if w.mem
            .read(q.base + offset as u64, &mut raw, q.view)
            .is_err()
        {
            w.its[n].stalled = true;
            w.error(
                name,
                format!(
                    "process_cmdq: could not read command at {:#x}",
                    q.base + offset as u64
                ),
            );
            return;
        }
        let mut dw = [0u64; 4];
        for (i, d) in dw.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
            *d = u64::from_le_bytes(b);
        }
        let ok = match Command::decode_lenient(&dw, w.cfg.version) {
            Err(DecodeError::UnknownOpcode { opcode }) => {
                w.error(name.clone(), format!("unknown command opcode {opcode:#x} at {offset:#x} (QEMU traces and skips it)"));
                true
            }
            Err(_) => true,
            Ok((cmd, reserved)) => {
                if !reserved.is_empty() {
                    w.error(
                        name.clone(),
                        format!(
                            "{cmd}: reserved bits set: {reserved} (model check; QEMU ignores them)"
                        ),
                    );
                }
                w.its[n].log.push((offset, cmd));
                #[cfg(feature = "log")]
                log::trace!("its-model: {name} runs {cmd} at {offset:#x}");
                apply(w, n, &cmd).is_ok()
            }
        };
        if !ok {
            w.its[n].stalled = true;
            w.error(
                name,
                format!("process_cmdq: {offset:#x} cmd processing failed, stalling"),
            );
            return;
        }
        let its = &mut w.its[n];
        its.creadr = (offset + 32) % q.size;
        its.processed += 1;
    }
}

fn apply(w: &mut World, n: usize, cmd: &Command) -> Result<(), Stall> {
    let name = w.its[n].name.clone();
    let virt = w.cfg.version != ItsVersion::V3;
    match *cmd {
        Command::Mapd {
            device,
            size,
            itt,
            valid,
        } => {
            let Some(t) = w.its[n].dev else {
                w.error(name, "ITS MAPD: no device table");
                return Ok(());
            };
            let d = u64::from(device.get());
            if d >= t.entries {
                w.error(
                    name,
                    format!(
                        "ITS MAPD: invalid device ID field {d:#x} >= {:#x}",
                        t.entries
                    ),
                );
                return Ok(());
            }
            if valid && size.bits() > w.cfg.event_bits {
                w.error(name, format!("ITS MAPD: invalid size {}", size.field()));
                return Ok(());
            }
            if valid && !w.mem.is_live(itt.get(), 256) {
                w.error(
                    name.clone(),
                    format!(
                        "MAPD: ITT {:#x} is not allocated memory (model check)",
                        itt.get()
                    ),
                );
            }
            let dte = DteView {
                valid,
                size: size.field(),
                itt: itt.get(),
            };
            if !write_entry(w, &t, d, dte.encode())? {
                w.error(
                    name,
                    format!(
                        "MAPD: DeviceID {d:#x} has no second-level table page (write discarded)"
                    ),
                );
            }
        }
        Command::Mapc {
            icid,
            rdbase,
            valid,
        } => {
            let Some(t) = w.its[n].coll else {
                w.error(name, format!("ITS MAPC: invalid ICID {:#x}", icid.get()));
                return Ok(());
            };
            if u64::from(icid.get()) >= t.entries {
                w.error(name, format!("ITS MAPC: invalid ICID {:#x}", icid.get()));
                return Ok(());
            }
            let rd = if valid {
                match w.rd_index(rdbase.raw()) {
                    Some(rd) => rd as u16,
                    None => {
                        w.error(name, format!("ITS MAPC: invalid RDBASE {}", rdbase.raw()));
                        return Ok(());
                    }
                }
            } else {
                0
            };
            let cte = CteView { valid, rd };
            if !write_entry(w, &t, icid.get().into(), cte.encode())? {
                w.error(
                    name,
                    format!(
                        "MAPC: ICID {:#x} has no second-level table page (write discarded)",
                        icid.get()
                    ),
                );
            }
        }
        Command::Mapti {
            device,
            event,
            pintid,
            icid,
        } => {
            map_physical(
                w,
                n,
                "process_mapti",
                device.get(),
                event.get(),
                pintid.get(),
                icid.get(),
            )?;
        }
        Command::Mapi {
            device,
            event,
            icid,
        } => {
            map_physical(
                w,
                n,
                "process_mapti",
                device.get(),
                event.get(),
                event.get(),
                icid.get(),
            )?;
        }
        Command::Movi {
            device,
            event,
            icid,
        } => {
            let Some((pa, mut ite)) = lookup_ite(w, n, "process_movi", device.get(), event.get())?
            else {
                return Ok(());
            };
            if !ite.physical {
                w.error(
                    name,
                    "process_movi: invalid command attributes: invalid ITE",
                );
                return Ok(());
            }
            let Some(old_rd) = lookup_cte(w, n, "process_movi", ite.icid)? else {
                return Ok(());
            };
            let Some(new_rd) = lookup_cte(w, n, "process_movi", icid.get())? else {
                return Ok(());
            };
            if old_rd != new_rd {
                redist::move_lpi(w, old_rd, new_rd, ite.intid);
            }
            ite.icid = icid.get();
            w.mem.device_write(pa, &ite.encode())?;
        }
        Command::Int { device, event } => its_cmd(w, n, device.get(), event.get(), Action::Int)?,
        Command::Clear { device, event } => {
            its_cmd(w, n, device.get(), event.get(), Action::Clear)?
        }
        Command::Discard { device, event } => {
            its_cmd(w, n, device.get(), event.get(), Action::Discard)?;
        }
        Command::Inv { device, event } => {
            let Some((_, ite)) = lookup_ite(w, n, "process_inv", device.get(), event.get())? else {
                return Ok(());
            };
            if ite.physical {
                if let Some(rd) = lookup_cte(w, n, "process_inv", ite.icid)? {
                    redist::reload_lpi_config(w, rd, Some(ite.intid));
                }
            } else if let Some(vte) = lookup_vte(w, n, "process_inv", ite.vpe)? {
                if u64::from(ite.intid) >= 1u64 << (vte.vpt_size + 1) {
                    w.error(
                        name,
                        format!("process_inv: intid {:#x} out of range", ite.intid),
                    );
                } else {
                    let key = vkey(w, ite.vpe, &vte);
                    redist::invalidate_vlpi_config(w, key, Some(ite.intid));
                }
            }
        }
        Command::Invall { icid } => {
            if w.its[n]
                .coll
                .is_some_and(|t| u64::from(icid.get()) >= t.entries)
            {
                w.error(
                    name,
                    format!(
                        "INVALL: ICID {:#x} out of range (model check; QEMU ignores the ICID)",
                        icid.get()
                    ),
                );
            } else if w.cfg.strict.config_cache
                && let Some(rd) = lookup_cte(w, n, "process_invall", icid.get())?
            {
                redist::reload_lpi_config(w, rd, None);
            }
        }
        Command::Movall { rdbase1, rdbase2 } => {
            match (w.rd_index(rdbase1.raw()), w.rd_index(rdbase2.raw())) {
                (Some(a), Some(b)) => {
                    if a != b {
                        redist::move_all(w, a, b);
                    }
                }
                _ => w.error(
                    name,
                    format!(
                        "process_movall: RDBASE1/RDBASE2 {}/{} out of range (must be less than {})",
                        rdbase1.raw(),
                        rdbase2.raw(),
                        w.cfg.cpus
                    ),
                ),
            }
        }
        Command::Sync { rdbase } => {
            if w.rd_index(rdbase.raw()).is_none() {
                w.error(
                    name,
                    format!(
                        "SYNC: RDbase {:#x} names no redistributor (model check)",
                        rdbase.raw()
                    ),
                );
            }
        }
        _ if !virt => {
            // QEMU returns early for every V* command on a GICv3 ITS.
            w.error(
                name,
                format!(
                    "{}: virtual command on a GICv3 ITS (model check; QEMU ignores it)",
                    cmd.mnemonic()
                ),
            );
        }
        Command::Vsync { vpe } => {
            if w.its[n]
                .vpe
                .is_none_or(|t| u64::from(vpe.get()) >= t.entries)
            {
                w.error(
                    name,
                    format!("VSYNC: VPEID {:#x} out of range (model check)", vpe.get()),
                );
            }
        }
        Command::Vmapp {
            vpe,
            rdbase,
            valid,
            vpt,
            vpt_size,
        } => {
            vmapp(
                w,
                n,
                vpe.get(),
                rdbase.raw(),
                valid,
                vpt.get(),
                vpt_size.field(),
                None,
            )?;
        }
        Command::VmappV41 {
            vpe,
            rdbase,
            valid,
            vpt,
            vpt_size,
            default_db,
            vconf,
            alloc,
            ptz,
        } => {
            if !valid
                && w.cfg.strict.res0_by_form
                && (rdbase.raw() != 0
                    || vpt.get() != 0
                    || vpt_size != 0
                    || ptz
                    || vconf.get() != 0
                    || default_db.get() != 0)
            {
                w.error(name.clone(), format!(
                    "{cmd}: with V = 0 only vPEID, V and Alloc may be non-zero; the rest is RES0 (model check)"
                ));
            }
            if w.cfg.strict.vmapp_alloc {
                check_alloc(w, n, vpe.get(), valid, alloc);
            }
            vmapp(
                w,
                n,
                vpe.get(),
                rdbase.raw(),
                valid,
                vpt.get(),
                vpt_size,
                Some((default_db.get(), vconf.get())),
            )?;
        }
        Command::Vmapti {
            device,
            event,
            vpe,
            vintid,
            db,
        } => {
            map_virtual(
                w,
                n,
                device.get(),
                event.get(),
                vpe.get(),
                vintid.get(),
                db.get(),
            )?;
        }
        Command::Vmapi {
            device,
            event,
            vpe,
            db,
        } => {
            map_virtual(
                w,
                n,
                device.get(),
                event.get(),
                vpe.get(),
                event.get(),
                db.get(),
            )?;
        }
        Command::Vmovi {
            device,
            event,
            vpe,
            d,
            db,
        } => vmovi(w, n, device.get(), event.get(), vpe.get(), d, db.get())?,
        Command::Vmovp {
            seq,
            its_list,
            vpe,
            rdbase,
        }
        | Command::VmovpV41 {
            seq,
            its_list,
            vpe,
            rdbase,
            ..
        } => {
            vmovp(w, n, seq, its_list, vpe.get(), rdbase.raw())?;
        }
        Command::Vinvall { vpe } => {
            if let Some(vte) = lookup_vte(w, n, "process_vinvall", vpe.get())? {
                let key = vkey(w, vpe.get(), &vte);
                redist::invalidate_vlpi_config(w, key, None);
            }
        }
        Command::Invdb { vpe } => {
            if lookup_vte(w, n, cmd.mnemonic(), vpe.get())?.is_some()
                && let Some(db) = w.its[n].v41.get(&vpe.get()).map(|v| v.default_db)
                && (8192..1 << 24).contains(&db)
            {
                // Every redistributor may hold the default doorbell's property byte; INVDB
                // reaches them all.
                for cpu in 0..w.rds.len() {
                    redist::reload_lpi_config(w, cpu, Some(db));
                }
            }
        }
        Command::Vsgi { vpe, .. } => {
            lookup_vte(w, n, cmd.mnemonic(), vpe.get())?;
        }
        // A command its-core gained after this model: said, and skipped as QEMU skips a
        // command it does not handle.
        _ => w.error(name, format!("{cmd}: not modelled (model check)")),
    }
    Ok(())
}

fn map_physical(
    w: &mut World,
    n: usize,
    who: &str,
    device: u32,
    event: u32,
    pintid: u32,
    icid: u16,
) -> Result<(), Stall> {
    let name = w.its[n].name.clone();
    let Some(t) = w.its[n].dev else {
        w.error(
            name,
            format!("{who}: invalid command attributes: no device table"),
        );
        return Ok(());
    };
    if u64::from(device) >= t.entries {
        w.error(
            name,
            format!(
                "{who}: invalid command attributes: devid {device}>={}",
                t.entries
            ),
        );
        return Ok(());
    }
    if w.its[n].coll.is_none_or(|c| u64::from(icid) >= c.entries) {
        let lim = w.its[n].coll.map_or(0, |c| c.entries);
        w.error(name, format!("{who}: invalid ICID {icid:#x} >= {lim:#x}"));
        return Ok(());
    }
    let Some(dte) = read_entry(w, &t, device.into())?
        .map(DteView::decode)
        .filter(|d| d.valid)
    else {
        w.error(name, format!("{who}: no valid DTE for devid {device:#x}"));
        return Ok(());
    };
    let num_events = 1u64 << (dte.size + 1);
    if u64::from(event) >= num_events {
        w.error(
            name,
            format!("{who}: invalid event ID {event:#x} >= {num_events:#x}"),
        );
        return Ok(());
    }
    if pintid < 8192 || u64::from(pintid) >= 1u64 << w.cfg.dist_id_bits {
        w.error(name, format!("{who}: invalid interrupt ID {pintid:#x}"));
        return Ok(());
    }
    let pa = ite_addr(w, &dte, event);
    let old = read_ite(w, pa)?;
    if old.valid {
        w.error(name.clone(), format!("{who}: MAPTI over a valid ITE (device {device:#x} event {event:#x}) is UNPREDICTABLE (model check)"));
    }
    let ite = IteView {
        valid: true,
        physical: true,
        intid: pintid,
        icid,
        vpe: 0,
        doorbell: 0,
    };
    w.mem.device_write(pa, &ite.encode())?;
    Ok(())
}

fn map_virtual(
    w: &mut World,
    n: usize,
    device: u32,
    event: u32,
    vpe: u16,
    vintid: u32,
    db: u32,
) -> Result<(), Stall> {
    let name = w.its[n].name.clone();
    let Some(t) = w.its[n].dev else {
        w.error(name, "process_vmapti: no device table");
        return Ok(());
    };
    if u64::from(device) >= t.entries {
        w.error(
            name,
            format!(
                "process_vmapti: invalid DeviceID {device:#x} (must be less than {:#x})",
                t.entries
            ),
        );
        return Ok(());
    }
    let Some(dte) = read_entry(w, &t, device.into())?
        .map(DteView::decode)
        .filter(|d| d.valid)
    else {
        w.error(
            name,
            format!("process_vmapti: no entry in device table for DeviceID {device:#x}"),
        );
        return Ok(());
    };
    let num_events = 1u64 << (dte.size + 1);
    if u64::from(event) >= num_events {
        w.error(name, format!("process_vmapti: EventID {event:#x} too large for DeviceID {device:#x} (must be less than {num_events:#x})"));
        return Ok(());
    }
    if vintid < 8192 || u64::from(vintid) >= 1u64 << w.cfg.dist_id_bits {
        w.error(
            name,
            format!("process_vmapti: VIntID {vintid:#x} not a valid LPI"),
        );
        return Ok(());
    }
    if db != 1023 && !(8192..1u32 << w.cfg.dist_id_bits.min(31)).contains(&db) {
        w.error(
            name,
            format!("process_vmapti: Doorbell {db} not 1023 and not a valid LPI"),
        );
        return Ok(());
    }
    if w.its[n].vpe.is_none_or(|v| u64::from(vpe) >= v.entries) {
        let lim = w.its[n].vpe.map_or(0, |v| v.entries);
        w.error(
            name,
            format!("process_vmapti: VPEID {vpe:#x} out of range (must be less than {lim:#x})"),
        );
        return Ok(());
    }
    let pa = ite_addr(w, &dte, event);
    if read_ite(w, pa)?.valid {
        w.error(name.clone(), format!("process_vmapti: VMAPTI over a valid ITE (device {device:#x} event {event:#x}) is UNPREDICTABLE (model check)"));
    }
    let ite = IteView {
        valid: true,
        physical: false,
        intid: vintid,
        icid: 0,
        vpe,
        doorbell: db,
    };
    w.mem.device_write(pa, &ite.encode())?;
    Ok(())
}

/// Looks an event up, logging QEMU's messages. `Ok(None)`: a parameter error (logged).
fn lookup_ite(
    w: &mut World,
    n: usize,
    who: &str,
    device: u32,
    event: u32,
) -> Result<Option<(u64, IteView)>, Stall> {
    let name = w.its[n].name.clone();
    let Some(t) = w.its[n].dev else {
        w.error(
            name,
            format!("{who}: invalid command attributes: no device table"),
        );
        return Ok(None);
    };
    if u64::from(device) >= t.entries {
        w.error(
            name,
            format!(
                "{who}: invalid command attributes: devid {device}>={}",
                t.entries
            ),
        );
        return Ok(None);
    }
    let Some(dte) = read_entry(w, &t, device.into())?
        .map(DteView::decode)
        .filter(|d| d.valid)
    else {
        w.error(
            name,
            format!("{who}: invalid command attributes: invalid dte for {device}"),
        );
        return Ok(None);
    };
    let num_events = 1u64 << (dte.size + 1);
    if u64::from(event) >= num_events {
        w.error(
            name,
            format!("{who}: invalid command attributes: eventid {event} >= {num_events}"),
        );
        return Ok(None);
    }
    let pa = ite_addr(w, &dte, event);
    let ite = read_ite(w, pa)?;
    if !ite.valid {
        w.error(
            name,
            format!("{who}: invalid command attributes: invalid ITE"),
        );
        return Ok(None);
    }
    Ok(Some((pa, ite)))
}

/// The redistributor a collection targets. `Ok(None)`: logged error, or a target QEMU skips.
fn lookup_cte(w: &mut World, n: usize, who: &str, icid: u16) -> Result<Option<usize>, Stall> {
    let name = w.its[n].name.clone();
    if w.its[n].coll.is_none_or(|c| u64::from(icid) >= c.entries) {
        w.error(name, format!("{who}: invalid ICID 0x{icid:x}"));
        return Ok(None);
    }
    let cte = read_cte(w, n, icid)?;
    match cte {
        Some(c) if c.valid => Ok((usize::from(c.rd) < w.cfg.cpus).then_some(c.rd.into())),
        _ => {
            w.error(name, format!("{who}: invalid CTE"));
            Ok(None)
        }
    }
}

fn lookup_vte(w: &mut World, n: usize, who: &str, vpe: u16) -> Result<Option<VteView>, Stall> {
    let name = w.its[n].name.clone();
    if w.its[n].vpe.is_none_or(|t| u64::from(vpe) >= t.entries) {
        w.error(name, format!("{who}: invalid VPEID 0x{vpe:x}"));
        return Ok(None);
    }
    match read_vte(w, n, vpe)? {
        Some(v) if v.valid => Ok((usize::from(v.rd) < w.cfg.cpus).then_some(v)),
        _ => {
            w.error(name, format!("{who}: invalid VTE for VPEID 0x{vpe:x}"));
            Ok(None)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Int,
    Clear,
    Discard,
    Translate,
}

fn its_cmd(w: &mut World, n: usize, device: u32, event: u32, action: Action) -> Result<(), Stall> {
    let who = match action {
        Action::Translate => "gicv3_its_translation_write",
        _ => "do_process_its_cmd",
    };
    let Some((pa, ite)) = lookup_ite(w, n, who, device, event)? else {
        return Ok(());
    };
    let level = matches!(action, Action::Int | Action::Translate);
    if ite.physical {
        if let Some(rd) = lookup_cte(w, n, who, ite.icid)? {
            redist::set_lpi_pending(w, rd, ite.intid, level);
        }
    } else if let Some(vte) = lookup_vte(w, n, who, ite.vpe)? {
        if u64::from(ite.intid) >= 1u64 << (vte.vpt_size + 1) {
            let name = w.its[n].name.clone();
            w.error(
                name,
                format!("process_its_cmd_virt: intid 0x{:x} out of range", ite.intid),
            );
            return Ok(());
        }
        let default_db = w.its[n].v41.get(&ite.vpe).map(|v| v.default_db);
        redist::process_vlpi(w, &vte, ite.vpe, ite.intid, ite.doorbell, default_db, level);
    }
    if action == Action::Discard {
        w.mem.device_write(
            pa,
            &IteView {
                valid: false,
                physical: false,
                intid: 0,
                icid: 0,
                vpe: 0,
                doorbell: 0,
            }
            .encode(),
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "mirrors the command's fields")]
fn vmapp(
    w: &mut World,
    n: usize,
    vpe: u16,
    rdbase: u64,
    valid: bool,
    vpt: u64,
    vpt_size: u8,
    v41: Option<(u32, u64)>,
) -> Result<(), Stall> {
    let name = w.its[n].name.clone();
    if valid && u32::from(vpt_size) + 1 > u32::from(w.cfg.event_bits) {
        w.error(
            name,
            format!("process_vmapp: invalid VPT_size 0x{vpt_size:x}"),
        );
        return Ok(());
    }
    let rd = if valid {
        match w.rd_index(rdbase) {
            Some(rd) => rd as u16,
            None => {
                w.error(name, format!("process_vmapp: invalid rdbase 0x{rdbase:x}"));
                return Ok(());
            }
        }
    } else {
        0
    };
    let Some(t) = w.its[n].vpe.filter(|t| u64::from(vpe) < t.entries) else {
        let lim = w.its[n].vpe.map_or(0, |t| t.entries);
        w.error(
            name,
            format!("process_vmapp: VPEID 0x{vpe:x} out of range (must be less than 0x{lim:x})"),
        );
        return Ok(());
    };
    let vpt_bytes = ((1u64 << (u32::from(vpt_size) + 1).min(40)) / 8) as usize;
    if valid && !w.mem.is_live(vpt, vpt_bytes) {
        w.error(
            name.clone(),
            format!("VMAPP: VPT {vpt:#x} is not allocated memory (model check)"),
        );
    }
    let vte = VteView {
        valid,
        vpt_size: vpt_size.min(31),
        vpt,
        rd,
    };
    let mask = w.vmapp_on.get(&vpe).copied().unwrap_or(0);
    let others = mask & !(1 << n);
    // GICv4.1 sibling ITSs share one vPE table: an unmap on one (Alloc = 0) leaves the entry
    // for the others.
    let shared_with_other = !valid
        && (0..w.its.len()).any(|m| {
            m != n && others & (1 << m) != 0 && w.its[m].vpe.is_some_and(|o| o.base == t.base)
        });
    if valid {
        w.vmapp_on.insert(vpe, mask | 1 << n);
    } else if others == 0 {
        w.vmapp_on.remove(&vpe);
    } else {
        w.vmapp_on.insert(vpe, others);
    }
    if shared_with_other {
        return Ok(());
    }
    if !write_entry(w, &t, vpe.into(), vte.encode())? {
        w.error(
            name,
            format!("VMAPP: VPEID {vpe:#x} has no second-level table page (write discarded)"),
        );
        return Ok(());
    }
    match (valid, v41) {
        (true, Some((default_db, vconf))) => {
            w.its[n].v41.insert(vpe, V41Vpe { default_db, vconf });
        }
        (false, _) => {
            w.its[n].v41.remove(&vpe);
        }
        _ => {}
    }
    if valid {
        // A new mapping: what the redistributor held for this vPE is gone; GICv4.1 loads
        // the configuration from VCONF_addr now, GICv4.0 at the next residency.
        let key = vkey(w, vpe, &vte);
        w.vcache.remove(&key);
        redist::invalidate_vlpi_config(w, key, None);
    }
    Ok(())
}

/// The vLPI configuration cache key of `vpe`, whose VTE is `vte`.
fn vkey(w: &World, vpe: u16, vte: &VteView) -> u64 {
    if w.cfg.version == ItsVersion::V4_1 {
        redist::vkey_v41(vpe)
    } else {
        redist::vkey_v40(vte.vpt)
    }
}

/// Strict `vmapp_alloc` (GICv4.1): Alloc is 1 exactly on the first VMAPP V = 1 of a vPE
/// across the ITSs and on the last VMAPP V = 0; V = 0 only where it is mapped.
fn check_alloc(w: &mut World, n: usize, vpe: u16, valid: bool, alloc: bool) {
    let name = w.its[n].name.clone();
    let mask = w.vmapp_on.get(&vpe).copied().unwrap_or(0);
    let here = mask & (1 << n) != 0;
    let others = (mask & !(1 << n)).count_ones();
    if valid && here {
        w.error(name, format!(
            "VMAPP V = 1 of vPE {vpe:#x}, already mapped on this ITS, is UNPREDICTABLE (model check)"
        ));
        return;
    }
    if !valid && !here {
        w.error(
            name,
            format!("VMAPP V = 0 of vPE {vpe:#x}, not mapped on this ITS (model check)"),
        );
        return;
    }
    let want = others == 0;
    if alloc != want {
        let why = match (valid, want) {
            (true, true) => "the first mapping of the vPE in the system must allocate it",
            (true, false) => "the vPE is already mapped on another ITS, which allocated it",
            (false, true) => "this is the vPE's last mapping: it must be deallocated",
            (false, false) => "the vPE stays mapped on another ITS",
        };
        w.error(
            name,
            format!(
                "VMAPP V = {} of vPE {vpe:#x} with Alloc = {}: {why} (model check)",
                u8::from(valid),
                u8::from(alloc)
            ),
        );
    }
}

fn vmovi(
    w: &mut World,
    n: usize,
    device: u32,
    event: u32,
    vpe: u16,
    d: bool,
    db: u32,
) -> Result<(), Stall> {
    let name = w.its[n].name.clone();
    if d && db != 1023 && !(8192..1u32 << w.cfg.dist_id_bits.min(31)).contains(&db) {
        w.error(name, format!("process_vmovi: invalid doorbell 0x{db:x}"));
        return Ok(());
    }
    let Some((pa, mut ite)) = lookup_ite(w, n, "process_vmovi", device, event)? else {
        return Ok(());
    };
    if ite.physical {
        w.error(name, "process_vmovi: ITE is not for virtual interrupt");
        return Ok(());
    }
    let Some(old) = lookup_vte(w, n, "process_vmovi", ite.vpe)? else {
        return Ok(());
    };
    let Some(new) = lookup_vte(w, n, "process_vmovi", vpe)? else {
        return Ok(());
    };
    if u64::from(ite.intid) >= 1u64 << (old.vpt_size + 1)
        || u64::from(ite.intid) >= 1u64 << (new.vpt_size + 1)
    {
        w.error(
            name,
            format!("process_vmovi: ITE intid 0x{:x} out of range", ite.intid),
        );
        return Ok(());
    }
    if d {
        ite.doorbell = db;
    }
    if old.vpt != new.vpt {
        let default_db = w.its[n].v41.get(&vpe).map(|v| v.default_db);
        redist::move_vlpi(w, &old, &new, vpe, ite.intid, ite.doorbell, default_db);
    }
    ite.vpe = vpe;
    w.mem.device_write(pa, &ite.encode())?;
    Ok(())
}

fn vmovp(
    w: &mut World,
    n: usize,
    seq: u16,
    its_list: u16,
    vpe: u16,
    rdbase: u64,
) -> Result<(), Stall> {
    let Some(rd) = w.rd_index(rdbase) else {
        // QEMU: silently ignored.
        return Ok(());
    };
    if w.cfg.single_vmovp {
        for i in 0..w.its.len() {
            // QEMU's vmovp_callback: every ITS updates its own entry.
            if let Some(mut vte) = lookup_vte(w, i, "vmovp_callback", vpe)? {
                vte.rd = rd as u16;
                let t = w.its[i].vpe.ok_or(Stall)?;
                write_entry(w, &t, vpe.into(), vte.encode())?;
            }
        }
        return Ok(());
    }
    // GITS_TYPER.VMOVP = 0: each ITS in ITSList must get the same VMOVP, in the same order.
    let name = w.its[n].name.clone();
    let number = w.its[n].ctlr.its_number();
    if its_list & (1 << number) == 0 {
        w.error(name.clone(), format!("VMOVP: ITSList {its_list:#x} does not include this ITS (number {number}) (model check)"));
    }
    for other in 0..w.its.len() {
        if other != n
            && w.cfg.version != ItsVersion::V3
            && w.its[other].ctlr.enabled()
            && w.its[other].ctlr.its_number() == number
        {
            w.error(name.clone(), format!(
                "VMOVP: its{other} has the same GITS_CTLR.ITS_Number {number}: the ITSList cannot tell them apart and the move is not synchronised (UNPREDICTABLE) (model check)"
            ));
        }
    }
    let mapped = w.vmapp_on.get(&vpe).copied().unwrap_or(0);
    for m in 0..w.its.len() {
        let k = w.its[m].ctlr.its_number();
        if mapped & (1 << m) != 0 && its_list & (1 << k) == 0 {
            w.error(name.clone(), format!(
                "VMOVP of vPE {vpe:#x}: ITSList {its_list:#x} leaves out its{m} (ITS_Number {k}), where the vPE is mapped (model check)"
            ));
        }
    }
    let k = w.its[n].vmovp_seqs.len();
    for other in 0..w.its.len() {
        if other != n
            && let Some(&s) = w.its[other].vmovp_seqs.get(k)
            && s != seq
        {
            w.error(name.clone(), format!("VMOVP: sequence number {seq} differs from {s} seen by its{other} at the same position (model check)"));
        }
    }
    w.its[n].vmovp_seqs.push(seq);
    if let Some(mut vte) = lookup_vte(w, n, "process_vmovp", vpe)? {
        vte.rd = rd as u16;
        let t = w.its[n].vpe.ok_or(Stall)?;
        write_entry(w, &t, vpe.into(), vte.encode())?;
    }
    Ok(())
}

pub(crate) fn translate(w: &mut World, n: usize, device: u32, event: u32) {
    if !w.its[n].ctlr.enabled() {
        return;
    }
    let _ = its_cmd(w, n, device, event, Action::Translate);
}
