// SPDX-License-Identifier: MIT OR Apache-2.0
//! The redistributor side of the model: registers, LPI pending state, vPE residency.

use its_core::cmd::ItsVersion;
use its_core::regs::{
    GicrCtlr, GicrInvallr, GicrInvlpir, GicrLpir, GicrPendbaser, GicrPropbaser, GicrSyncr,
    GicrTyper, GicrVpendbaser, GicrVpendbaserV41, GicrVpropbaser, GicrVpropbaserV41, GicrWaker,
    Shareability,
};

use std::collections::HashSet;

use super::tables::{self, VteView};
use super::{ModelConfig, World, view_for};
use crate::platform::View;

/// First LPI INTID.
const LPI_BASE: u32 = 8192;

/// The vLPI configuration one vPE's redistributor holds (strict `config_cache`).
#[derive(Clone, Debug)]
pub(crate) enum VCache {
    /// Nothing held: the redistributor loads the configuration when it next can (GICv4.0: at
    /// the next residency, when it learns GICR_VPROPBASER).
    Reload,
    /// The property bytes from INTID 8192 up, as they were read from `table`.
    Loaded {
        /// The configuration table they were read from.
        table: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

/// What is resident on a redistributor, resolved when VPENDBASER.Valid went to 1.
#[derive(Clone, Copy, Debug)]
struct Resident {
    vpt: u64,
    prop: u64,
    id_bits: u8,
    vpe: Option<u16>,
}

pub(crate) struct RdState {
    pub(crate) name: String,
    pub(crate) ctlr: GicrCtlr,
    pub(crate) typer: GicrTyper,
    waker: GicrWaker,
    waker_left: u32,
    pub(crate) propbaser: GicrPropbaser,
    pub(crate) pendbaser: GicrPendbaser,
    pub(crate) vpropbaser: u64,
    vpendbaser: u64,
    dirty_left: u32,
    rwp_left: u32,
    syncr_left: u32,
    v41: bool,
    direct_lpi: bool,
    resident: Option<Resident>,
    /// GICv4.1: the vPE whose default doorbell was requested at its last deschedule.
    db_armed: Option<u16>,
    /// Strict `config_cache`: the LPI property bytes from INTID 8192 up, as at the last
    /// invalidation (loaded when EnableLPIs goes to 1).
    lpi_cache: Option<Vec<u8>>,
    /// Strict `residency`: the VPTs whose IMPLEMENTATION DEFINED area this redistributor
    /// wrote (at a deschedule).
    idai_written: HashSet<u64>,
}

impl RdState {
    pub(crate) fn new(cpu: usize, cfg: &ModelConfig) -> Self {
        let v4 = cfg.version != ItsVersion::V3;
        Self {
            name: format!("rd{cpu}"),
            ctlr: GicrCtlr::new().with_ces(true),
            typer: GicrTyper::new()
                .with_plpis(true)
                .with_vlpis(v4)
                .with_dirty(cfg.dirty_reads.is_some())
                .with_direct_lpi(cfg.direct_lpi)
                .with_last(cpu + 1 == cfg.cpus)
                .with_rvpeid(cfg.version == ItsVersion::V4_1)
                .with_processor_number(cpu as u16)
                .with_common_lpi_aff(cfg.common_lpi_aff & 3)
                .with_affinity(cpu as u32),
            waker: GicrWaker::new()
                .with_processor_sleep(true)
                .with_children_asleep(true),
            waker_left: 0,
            propbaser: GicrPropbaser::new(),
            pendbaser: GicrPendbaser::new(),
            vpropbaser: 0,
            vpendbaser: 0,
            dirty_left: 0,
            rwp_left: 0,
            syncr_left: 0,
            v41: cfg.version == ItsVersion::V4_1,
            direct_lpi: cfg.direct_lpi,
            resident: None,
            db_armed: None,
            lpi_cache: None,
            idai_written: HashSet::new(),
        }
    }

    /// A wake-up in progress now takes `reads` more GICR_WAKER reads.
    pub(crate) fn set_waker_left(&mut self, reads: u32) {
        if self.waker_left > 0 {
            self.waker_left = reads;
        }
    }

    /// A pending GICR_CTLR write now takes `reads` more reads.
    pub(crate) fn set_rwp_left(&mut self, reads: u32) {
        if self.rwp_left > 0 {
            self.rwp_left = reads;
        }
    }

    /// A pending invalidation now takes `reads` more GICR_SYNCR reads.
    pub(crate) fn set_syncr_left(&mut self, reads: u32) {
        if self.syncr_left > 0 {
            self.syncr_left = reads;
        }
    }

    /// A VPT parse in progress now takes `reads` more GICR_VPENDBASER reads.
    pub(crate) fn set_dirty_left(&mut self, reads: u32) {
        if self.dirty_left > 0 {
            self.dirty_left = reads;
        }
    }

    /// The resident vPE's VPT address (GICv4.0) or vPE ID (GICv4.1).
    pub(crate) fn resident(&self) -> Option<u64> {
        self.resident.map(|r| r.vpe.map_or(r.vpt, u64::from))
    }

    fn is_resident(&self, vte: &VteView, vpe: u16) -> bool {
        match self.resident {
            Some(Resident { vpe: Some(id), .. }) => id == vpe,
            Some(r) => r.vpt == vte.vpt,
            None => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Registers

pub(crate) fn write_ctlr(w: &mut World, cpu: usize, v: GicrCtlr) {
    let name = w.rds[cpu].name.clone();
    w.reg_event(name.clone(), "GICR_CTLR", u32::from(v).into());
    let rd = &w.rds[cpu];
    if v.enable_lpis()
        && !rd.ctlr.enable_lpis()
        && (rd.propbaser.addr().get() == 0 || rd.pendbaser.addr().get() == 0)
    {
        w.error(
            name,
            "EnableLPIs set before GICR_PROPBASER and GICR_PENDBASER were programmed (model check)",
        );
    }
    let rwp = w.knobs.rwp_reads;
    let rd = &mut w.rds[cpu];
    let was = rd.ctlr.enable_lpis();
    // Without CES, EnableLPIs cannot be cleared once set.
    let on = v.enable_lpis() || (was && !rd.ctlr.ces());
    rd.ctlr = rd.ctlr.with_enable_lpis(on);
    if was && !on {
        rd.rwp_left = rwp;
        rd.lpi_cache = None;
    }
    if !was && on {
        // The redistributor may cache the property table from now on.
        reload_lpi_config(w, cpu, None);
    }
}

/// Strict `config_cache`: the redistributor rereads the property byte of `intid` (or of
/// every LPI) from the table. Nothing without the strict cache (the table is read at use).
pub(crate) fn reload_lpi_config(w: &mut World, cpu: usize, intid: Option<u32>) {
    if !w.cfg.strict.config_cache || !w.rds[cpu].ctlr.enable_lpis() {
        return;
    }
    let rd = &w.rds[cpu];
    let prop = rd.propbaser.addr().get();
    let view = view_for(rd.propbaser.shareability());
    let limit = lpi_limit(rd).min(1 << 24);
    let n = limit.saturating_sub(u64::from(LPI_BASE)) as usize;
    match (intid, &w.rds[cpu].lpi_cache) {
        (Some(i), Some(_)) => {
            if let Some(b) = prop_byte(w, prop, view, i)
                && let Some(c) = w.rds[cpu].lpi_cache.as_mut()
                && let Some(slot) = c.get_mut((i - LPI_BASE) as usize)
            {
                *slot = b;
            }
        }
        _ => {
            let mut bytes = vec![0u8; n];
            if w.mem.read(prop, &mut bytes, view).is_err() {
                // A table that is not memory: nothing enabled.
                bytes.fill(0);
            }
            w.rds[cpu].lpi_cache = Some(bytes);
        }
    }
}

pub(crate) fn read_ctlr(w: &mut World, cpu: usize) -> GicrCtlr {
    let rd = &mut w.rds[cpu];
    let rwp = rd.rwp_left > 0;
    if rwp {
        rd.rwp_left -= 1;
    }
    rd.ctlr.with_rwp(rwp)
}

pub(crate) fn read_waker(w: &mut World, cpu: usize) -> GicrWaker {
    let rd = &mut w.rds[cpu];
    if rd.waker_left > 0 && !rd.waker.processor_sleep() {
        rd.waker_left -= 1;
        return rd.waker.with_children_asleep(true);
    }
    rd.waker.with_children_asleep(rd.waker.processor_sleep())
}

pub(crate) fn write_waker(w: &mut World, cpu: usize, v: GicrWaker) {
    let name = w.rds[cpu].name.clone();
    w.reg_event(name, "GICR_WAKER", u32::from(v).into());
    let left = w.cfg.waker_reads;
    let rd = &mut w.rds[cpu];
    if rd.waker.processor_sleep() && !v.processor_sleep() {
        rd.waker_left = left;
    }
    rd.waker = rd.waker.with_processor_sleep(v.processor_sleep());
}

pub(crate) fn write_propbaser(w: &mut World, cpu: usize, v: GicrPropbaser) {
    let name = w.rds[cpu].name.clone();
    w.reg_event(name.clone(), "GICR_PROPBASER", v.into());
    if w.rds[cpu].ctlr.enable_lpis() {
        w.error(
            name,
            "GICR_PROPBASER written while EnableLPIs = 1 is UNPREDICTABLE (model check)",
        );
        return;
    }
    if v.id_bits() < 13 {
        w.error(
            name.clone(),
            format!(
                "GICR_PROPBASER.IDbits {} covers no LPI (model check)",
                v.id_bits()
            ),
        );
    }
    let v = if w.cfg.non_shareable {
        v.with_shareability(Shareability::NonShareable)
    } else {
        v
    };
    w.rds[cpu].propbaser = v;
}

pub(crate) fn write_pendbaser(w: &mut World, cpu: usize, v: GicrPendbaser) {
    let name = w.rds[cpu].name.clone();
    w.reg_event(name.clone(), "GICR_PENDBASER", v.into());
    if w.rds[cpu].ctlr.enable_lpis() {
        w.error(
            name,
            "GICR_PENDBASER written while EnableLPIs = 1 is UNPREDICTABLE (model check)",
        );
        return;
    }
    let v = if w.cfg.non_shareable {
        v.with_shareability(Shareability::NonShareable)
    } else {
        v
    };
    w.rds[cpu].pendbaser = v;
}

pub(crate) fn write_vpropbaser(w: &mut World, cpu: usize, v: u64) {
    let name = w.rds[cpu].name.clone();
    w.reg_event(name.clone(), "GICR_VPROPBASER", v);
    if !w.rds[cpu].v41 && w.rds[cpu].resident.is_some() {
        w.error(
            name,
            "GICR_VPROPBASER written while GICR_VPENDBASER.Valid = 1 (model check)",
        );
    }
    if w.rds[cpu].v41 && w.cfg.strict.vpe_table_sharing {
        check_vpropbaser_v41(w, cpu, v);
    }
    w.rds[cpu].vpropbaser = v;
}

pub(crate) fn read_vpendbaser(w: &mut World, cpu: usize) -> u64 {
    let rd = &mut w.rds[cpu];
    let dirty = rd.dirty_left > 0;
    if dirty {
        rd.dirty_left -= 1;
    }
    let dirty_bit = 1u64 << 60;
    if dirty {
        rd.vpendbaser | dirty_bit
    } else {
        rd.vpendbaser & !dirty_bit
    }
}

pub(crate) fn write_vpendbaser(w: &mut World, cpu: usize, v: u64) {
    let name = w.rds[cpu].name.clone();
    w.reg_event(name.clone(), "GICR_VPENDBASER", v);
    let old_valid = w.rds[cpu].vpendbaser >> 63 != 0;
    let new_valid = v >> 63 != 0;
    let dirty_reads = w.cfg.dirty_reads.unwrap_or(0);
    match (old_valid, new_valid) {
        (true, true) => {
            if v & !(1 << 60) != w.rds[cpu].vpendbaser & !(1 << 60) {
                w.error(
                    name,
                    "gicr_write_vpendbaser: Changing GICR_VPENDBASER when VALID=1 is UNPREDICTABLE",
                );
            }
        }
        (false, false) => w.rds[cpu].vpendbaser = v,
        (false, true) => make_resident(w, cpu, v, dirty_reads),
        (true, false) => make_non_resident(w, cpu, v, dirty_reads),
    }
}

fn make_resident(w: &mut World, cpu: usize, v: u64, dirty_reads: u32) {
    let name = w.rds[cpu].name.clone();
    let resident = if w.rds[cpu].v41 {
        let vpe = GicrVpendbaserV41::from(v).vpe_id();
        let Some(vte) = tables::find_vte(w, vpe) else {
            w.error(
                name,
                format!("GICR_VPENDBASER: vPE {vpe:#x} made resident but not mapped (model check)"),
            );
            w.rds[cpu].vpendbaser = v;
            w.rds[cpu].dirty_left = dirty_reads;
            return;
        };
        if w.cfg.strict.vpe_table_sharing {
            check_vpe_in_rd_table(w, cpu, vpe);
        }
        let vconf = w.vconf(vpe).unwrap_or(0);
        Resident {
            vpt: vte.vpt,
            prop: vconf,
            id_bits: vte.vpt_size,
            vpe: Some(vpe),
        }
    } else {
        let prop = GicrVpropbaser::from(w.rds[cpu].vpropbaser);
        if prop.id_bits() < 13 {
            w.error(name.clone(), format!(
                "GICR_VPENDBASER.Valid set with GICR_VPROPBASER.IDbits = {}: vLPIs above {} are dropped (model check)",
                prop.id_bits(),
                (1u64 << (prop.id_bits() + 1)) - 1
            ));
        }
        let pend = GicrVpendbaser::from(v);
        let vpt = pend.addr().get();
        if w.cfg.strict.residency && !pend.idai() && !w.rds.iter().any(|r| r.idai_written.contains(&vpt)) {
            w.error(name, format!(
                "GICR_VPENDBASER.Valid set with IDAI = 0 for VPT {vpt:#x}, whose IMPLEMENTATION DEFINED area no redistributor wrote: it would be trusted as valid (model check)"
            ));
        }
        Resident {
            vpt,
            prop: prop.addr().get(),
            id_bits: prop.id_bits(),
            vpe: None,
        }
    };
    let rd = &mut w.rds[cpu];
    rd.resident = Some(resident);
    // QEMU: PendingLast is RES1 on this transition.
    rd.vpendbaser = if rd.v41 { v } else { v | 1 << 61 };
    rd.dirty_left = dirty_reads;
    if rd.db_armed == resident.vpe {
        rd.db_armed = None;
    }
    load_on_residency(w, &resident);
}

fn make_non_resident(w: &mut World, cpu: usize, v: u64, dirty_reads: u32) {
    let pending = w.rds[cpu]
        .resident
        .is_some_and(|r| !enabled_pending_vlpis(w, &r).is_empty());
    let strict = w.cfg.strict.residency;
    let rd = &mut w.rds[cpu];
    let left = rd.resident;
    let vpe = left.and_then(|r| r.vpe);
    rd.resident = None;
    let mut nv = v & !(1 << 61);
    if rd.v41 {
        let written = GicrVpendbaserV41::from(v);
        // PendingLast written 1: "the vPE will be back"; the redistributor neither scans
        // nor arms the default doorbell, and PendingLast reads 1 (strict). QEMU has no
        // GICv4.1; the lenient model always computes it.
        let told = strict && written.pending_last();
        if pending || told {
            nv |= 1 << 61;
        }
        rd.db_armed = if written.doorbell() && !pending && !told {
            vpe
        } else {
            None
        };
        if let Some(id) = vpe {
            nv = (nv & !0xffff) | u64::from(id);
        }
    } else {
        if pending {
            nv |= 1 << 61;
        }
        if strict {
            // IDAI is the redistributor's to report: 0, it wrote the VPT's IMPLEMENTATION
            // DEFINED area on the way out (whatever was written).
            nv &= !(1 << 62);
            if let Some(r) = left {
                rd.idai_written.insert(r.vpt);
            }
        }
    }
    rd.vpendbaser = nv;
    rd.dirty_left = dirty_reads;
}

/// Strict `vpe_table_sharing`: the vPE a GICv4.1 redistributor makes resident must be
/// inside the vPE table its GICR_VPROPBASER describes.
fn check_vpe_in_rd_table(w: &mut World, cpu: usize, vpe: u16) {
    let p = GicrVpropbaserV41::from(w.rds[cpu].vpropbaser);
    let name = w.rds[cpu].name.clone();
    if !p.valid() {
        w.error(
            name,
            format!("GICv4.1 vPE {vpe:#x} made resident with GICR_VPROPBASER.Valid = 0 (model check)"),
        );
        return;
    }
    let covered = vprop_ids(p);
    if u64::from(vpe) >= covered {
        w.error(name, format!(
            "GICv4.1 vPE {vpe:#x} made resident beyond the vPE table GICR_VPROPBASER describes ({covered:#x} IDs): the redistributor cannot find it (model check)"
        ));
    }
}

/// The page size a GICv4.1 GICR_VPROPBASER.Page_Size names.
fn vprop_page(p: GicrVpropbaserV41) -> u64 {
    match p.page_size() {
        0 => 0x1000,
        1 => 0x4000,
        _ => 0x1_0000,
    }
}

/// How many vPE IDs a GICv4.1 GICR_VPROPBASER's table covers.
fn vprop_ids(p: GicrVpropbaserV41) -> u64 {
    let page = vprop_page(p);
    let bytes = (u64::from(p.size()) + 1) * page;
    let esz = (u64::from(p.entry_size()) + 1) * 8;
    if p.indirect() {
        bytes / 8 * (page / esz)
    } else {
        bytes / esz
    }
}

/// Strict `vpe_table_sharing`: checks a GICv4.1 GICR_VPROPBASER as written, against the ITSs
/// (SVPET) and the redistributor's CommonLPIAff group.
fn check_vpropbaser_v41(w: &mut World, cpu: usize, v: u64) {
    let p = GicrVpropbaserV41::from(v);
    if !p.valid() {
        return;
    }
    let name = w.rds[cpu].name.clone();
    let addr = p.physical_address() << 12;
    let bytes = (u64::from(p.size()) + 1) * vprop_page(p);
    if !w.mem.is_live(addr, bytes as usize) {
        w.error(
            name.clone(),
            format!("GICR_VPROPBASER: vPE table {addr:#x} (+{bytes:#x}) is not allocated memory (model check)"),
        );
    }
    let group = w.cfg.rd_group(cpu);
    let shared = w.cfg.its_share_group() == Some(common_aff_of_rd(w, cpu));
    for n in 0..w.its.len() {
        let b = w.its[n].basers[2];
        if !b.valid() {
            continue;
        }
        let its_table = b.addr().get();
        if shared && its_table != addr {
            w.error(name.clone(), format!(
                "GICR_VPROPBASER points at {addr:#x}, but its{n} shares its vPE table {its_table:#x} with this redistributor (GITS_TYPER.SVPET = {}) (model check)",
                w.cfg.svpet
            ));
        }
        if !shared && its_table == addr {
            w.error(name.clone(), format!(
                "GICR_VPROPBASER points at its{n}'s vPE table {addr:#x}, which that ITS does not share with this redistributor (GITS_TYPER.SVPET = {}): both would own its entries (model check)",
                w.cfg.svpet
            ));
        }
    }
    for other in 0..w.rds.len() {
        if other == cpu || w.cfg.rd_group(other) != group {
            continue;
        }
        let o = GicrVpropbaserV41::from(w.rds[other].vpropbaser);
        if o.valid() && o.physical_address() != p.physical_address() {
            w.error(name.clone(), format!(
                "GICR_VPROPBASER points at {addr:#x}, rd{other} of the same CommonLPIAff group at {:#x}: the group shares one vPE table (model check)",
                o.physical_address() << 12
            ));
        }
    }
}

/// The affinity of redistributor `cpu` at the ITSs' SVPET level.
fn common_aff_of_rd(w: &World, cpu: usize) -> u32 {
    super::common_aff(cpu as u32, w.cfg.svpet)
}

fn direct_lpi_check(w: &mut World, cpu: usize, offset: u32, reg: &'static str) -> bool {
    if w.rds[cpu].direct_lpi || w.rds[cpu].v41 {
        return true;
    }
    let name = w.rds[cpu].name.clone();
    w.error(
        name,
        format!(
            "gicr_writell: invalid guest read/write at offset {offset:#x} ({reg} needs DirectLPI)"
        ),
    );
    false
}

pub(crate) fn write_invlpir(w: &mut World, cpu: usize, v: GicrInvlpir) {
    let name = w.rds[cpu].name.clone();
    w.reg_event(name, "GICR_INVLPIR", v.into());
    if direct_lpi_check(w, cpu, 0xa0, "GICR_INVLPIR") {
        w.rds[cpu].syncr_left = w.knobs.syncr_reads;
        if v.virtual_lpi() {
            invalidate_vlpi_config(w, vkey_v41(v.vpe_id()), Some(v.intid()));
        } else if v.intid() >= LPI_BASE {
            reload_lpi_config(w, cpu, Some(v.intid()));
        }
    }
}

pub(crate) fn write_invallr(w: &mut World, cpu: usize, v: GicrInvallr) {
    let name = w.rds[cpu].name.clone();
    w.reg_event(name, "GICR_INVALLR", v.into());
    if direct_lpi_check(w, cpu, 0xb0, "GICR_INVALLR") {
        w.rds[cpu].syncr_left = w.knobs.syncr_reads;
        if v.virtual_lpi() {
            invalidate_vlpi_config(w, vkey_v41(v.vpe_id()), None);
        } else {
            reload_lpi_config(w, cpu, None);
        }
    }
}

pub(crate) fn write_clrlpir(w: &mut World, cpu: usize, v: GicrLpir) {
    let name = w.rds[cpu].name.clone();
    w.reg_event(name.clone(), "GICR_CLRLPIR", v.into());
    // SETLPIR/CLRLPIR exist only with DirectLPI (GICv4.1 alone does not imply them).
    if !w.rds[cpu].direct_lpi {
        w.error(
            name,
            "gicr_writell: invalid guest read/write at offset 0x48 (GICR_CLRLPIR needs DirectLPI)",
        );
        return;
    }
    w.rds[cpu].syncr_left = w.knobs.syncr_reads;
    let intid = v.intid();
    let rd = &w.rds[cpu];
    if intid >= 8192 && rd.ctlr.enable_lpis() && u64::from(intid) < lpi_limit(rd) {
        let base = rd.pendbaser.addr().get();
        bit_rw(w, base, intid, Some(false));
    }
}

pub(crate) fn read_syncr(w: &mut World, cpu: usize) -> GicrSyncr {
    direct_lpi_check(w, cpu, 0xc0, "GICR_SYNCR");
    let rd = &mut w.rds[cpu];
    let busy = rd.syncr_left > 0;
    if busy {
        rd.syncr_left -= 1;
    }
    GicrSyncr::new().with_busy(busy)
}

// ---------------------------------------------------------------------------------------------
// Physical LPIs

fn lpi_limit(rd: &RdState) -> u64 {
    1u64 << (rd.propbaser.id_bits() + 1).min(32)
}

fn bit_rw(w: &World, table: u64, intid: u32, set: Option<bool>) -> bool {
    let pa = table + u64::from(intid / 8);
    let mut b = [0u8; 1];
    if w.mem.read(pa, &mut b, View::Coherent).is_err() {
        return false;
    }
    let mask = 1u8 << (intid % 8);
    let was = b[0] & mask != 0;
    if let Some(on) = set {
        let nb = if on { b[0] | mask } else { b[0] & !mask };
        if nb != b[0] {
            let _ = w.mem.device_write(pa, &[nb]);
        }
    }
    was
}

pub(crate) fn set_lpi_pending(w: &mut World, cpu: usize, intid: u32, level: bool) {
    let rd = &w.rds[cpu];
    let name = rd.name.clone();
    if !rd.ctlr.enable_lpis() {
        if level {
            w.error(name, format!("LPI {intid} dropped: GICR_CTLR.EnableLPIs = 0 (model check; QEMU drops it silently)"));
        }
        return;
    }
    if u64::from(intid) >= lpi_limit(rd) {
        w.error(name, format!("LPI {intid} dropped: beyond GICR_PROPBASER.IDbits (model check; QEMU drops it silently)"));
        return;
    }
    let base = rd.pendbaser.addr().get();
    if !w.mem.is_live(base + u64::from(intid / 8), 1) {
        w.error(
            name,
            format!("LPI {intid}: pending table {base:#x} is not allocated memory (model check)"),
        );
        return;
    }
    bit_rw(w, base, intid, Some(level));
}

/// The set bits of a bitmap table, from INTID 8192 up to `limit`, read in one access.
fn set_bits(w: &World, table: u64, limit: u64) -> Vec<u32> {
    let limit = limit.min(1 << 24);
    if limit <= 8192 {
        return Vec::new();
    }
    let first = 8192 / 8;
    let mut bytes = vec![0u8; (limit / 8) as usize - first];
    if w.mem
        .read(table + first as u64, &mut bytes, View::Coherent)
        .is_err()
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (k, &b) in bytes.iter().enumerate() {
        for bit in 0..8 {
            if b & 1 << bit != 0 {
                out.push(((first + k) * 8 + bit) as u32);
            }
        }
    }
    out
}

pub(crate) fn pending_lpis(w: &World, cpu: usize) -> Vec<u32> {
    let Some(rd) = w.rds.get(cpu) else {
        return Vec::new();
    };
    set_bits(w, rd.pendbaser.addr().get(), lpi_limit(rd))
}

fn prop_byte(w: &World, prop: u64, view: View, intid: u32) -> Option<u8> {
    let mut b = [0u8; 1];
    w.mem
        .read(prop + u64::from(intid - 8192), &mut b, view)
        .ok()?;
    Some(b[0])
}

pub(crate) fn take_lpi(w: &mut World, cpu: usize) -> Option<u32> {
    let rd = w.rds.get(cpu)?;
    if !rd.ctlr.enable_lpis() {
        return None;
    }
    let prop = rd.propbaser.addr().get();
    let view = view_for(rd.propbaser.shareability());
    let base = rd.pendbaser.addr().get();
    let cache = rd.lpi_cache.as_ref();
    let best = pending_lpis(w, cpu)
        .into_iter()
        .filter_map(|i| {
            let b = match cache {
                Some(c) => c.get((i - LPI_BASE) as usize).copied(),
                None => prop_byte(w, prop, view, i),
            };
            b.filter(|b| b & 1 != 0).map(|b| (b & 0xfc, i))
        })
        .min()?;
    bit_rw(w, base, best.1, Some(false));
    Some(best.1)
}

pub(crate) fn move_lpi(w: &mut World, from: usize, to: usize, intid: u32) {
    let base = w.rds[from].pendbaser.addr().get();
    if w.rds[from].ctlr.enable_lpis()
        && u64::from(intid) < lpi_limit(&w.rds[from])
        && bit_rw(w, base, intid, Some(false))
    {
        set_lpi_pending(w, to, intid, true);
    }
}

pub(crate) fn move_all(w: &mut World, from: usize, to: usize) {
    for i in pending_lpis(w, from) {
        move_lpi(w, from, to, i);
    }
}

// ---------------------------------------------------------------------------------------------
// Virtual LPIs

pub(crate) fn vpt_pending(w: &World, vpt: u64, limit: u64) -> Vec<u32> {
    set_bits(w, vpt, limit)
}

fn enabled_pending_vlpis(w: &World, r: &Resident) -> Vec<(u8, u32)> {
    let limit = 1u64 << (r.id_bits + 1);
    let cache = match w.vcache.get(&resident_key(r)) {
        Some(VCache::Loaded { table, bytes }) if *table == r.prop => Some(bytes),
        _ => None,
    };
    vpt_pending(w, r.vpt, limit)
        .into_iter()
        .filter_map(|i| {
            let b = match cache {
                Some(c) => c.get((i - LPI_BASE) as usize).copied(),
                None => prop_byte(w, r.prop, View::Coherent, i),
            };
            b.filter(|b| b & 1 != 0).map(|b| (b & 0xfc, i))
        })
        .collect()
}

/// The vLPI configuration cache key of a vPE: its VPT address (GICv4.0, where the
/// redistributor knows a vPE by it) or its ID (GICv4.1).
pub(crate) fn vkey_v40(vpt: u64) -> u64 {
    vpt
}

/// See [`vkey_v40`].
pub(crate) fn vkey_v41(vpe: u16) -> u64 {
    1 << 63 | u64::from(vpe)
}

fn resident_key(r: &Resident) -> u64 {
    match r.vpe {
        Some(id) => vkey_v41(id),
        None => vkey_v40(r.vpt),
    }
}

/// The configuration table of the vPE `key` names, if the GIC knows it now: GICv4.1 from
/// its VMAPP (VCONF_addr); GICv4.0 only while it is resident (GICR_VPROPBASER).
fn vconfig_table(w: &World, key: u64) -> Option<(u64, u64)> {
    if key >> 63 != 0 {
        let vpe = key as u16;
        let t = w.vconf(vpe)?;
        let bits = tables::find_vte(w, vpe).map_or(16, |v| v.vpt_size + 1);
        return Some((t, 1u64 << bits.min(24)));
    }
    w.rds
        .iter()
        .filter_map(|rd| rd.resident)
        .find(|r| r.vpe.is_none() && r.vpt == key)
        .map(|r| (r.prop, 1u64 << (r.id_bits + 1).min(24)))
}

fn load_vconfig(w: &World, table: u64, limit: u64) -> Vec<u8> {
    let n = limit.saturating_sub(u64::from(LPI_BASE)) as usize;
    let mut bytes = vec![0u8; n];
    if w.mem.read(table, &mut bytes, View::Coherent).is_err() {
        bytes.fill(0);
    }
    bytes
}

/// Strict `config_cache`: an invalidation of vPE `key`'s vLPI `vintid` (or of all its
/// vLPIs) reaches its redistributor, which rereads the configuration now if it knows where
/// it is, or at the next residency otherwise.
pub(crate) fn invalidate_vlpi_config(w: &mut World, key: u64, vintid: Option<u32>) {
    if !w.cfg.strict.config_cache {
        return;
    }
    let Some((table, limit)) = vconfig_table(w, key) else {
        w.vcache.insert(key, VCache::Reload);
        return;
    };
    let whole = match (vintid, w.vcache.get(&key)) {
        (Some(_), Some(VCache::Loaded { table: t, .. })) => *t != table,
        _ => true,
    };
    if whole {
        let bytes = load_vconfig(w, table, limit);
        w.vcache.insert(key, VCache::Loaded { table, bytes });
        return;
    }
    if let Some(i) = vintid
        && i >= LPI_BASE
        && let Some(b) = prop_byte(w, table, View::Coherent, i)
        && let Some(VCache::Loaded { bytes, .. }) = w.vcache.get_mut(&key)
        && let Some(slot) = bytes.get_mut((i - LPI_BASE) as usize)
    {
        *slot = b;
    }
}

/// Strict `config_cache`: a vPE became resident; a redistributor that holds nothing for it
/// (or held another table's bytes) loads its configuration now.
fn load_on_residency(w: &mut World, r: &Resident) {
    if !w.cfg.strict.config_cache {
        return;
    }
    let key = resident_key(r);
    let fresh = match w.vcache.get(&key) {
        Some(VCache::Loaded { table, .. }) => *table != r.prop,
        _ => true,
    };
    if fresh {
        let bytes = load_vconfig(w, r.prop, 1u64 << (r.id_bits + 1).min(24));
        w.vcache.insert(
            key,
            VCache::Loaded {
                table: r.prop,
                bytes,
            },
        );
    }
}

pub(crate) fn take_vlpi(w: &mut World, cpu: usize) -> Option<u32> {
    let r = w.rds.get(cpu)?.resident?;
    let best = enabled_pending_vlpis(w, &r).into_iter().min()?;
    bit_rw(w, r.vpt, best.1, Some(false));
    Some(best.1)
}

/// A vLPI made pending (level) or cleared, per QEMU's gicv3_redist_process_vlpi.
#[allow(clippy::too_many_arguments, reason = "mirrors the ITE and VTE fields")]
pub(crate) fn process_vlpi(
    w: &mut World,
    vte: &VteView,
    vpe: u16,
    vintid: u32,
    db: u32,
    default_db: Option<u32>,
    level: bool,
) {
    let cpu = usize::from(vte.rd);
    let Some(rd) = w.rds.get(cpu) else { return };
    let resident = rd.is_resident(vte, vpe);
    if resident
        && let Some(r) = rd.resident
        && u64::from(vintid) >= 1u64 << (r.id_bits + 1)
    {
        let name = rd.name.clone();
        w.error(name, format!("vLPI {vintid} dropped: beyond the resident vPE's IDbits (model check; QEMU drops it silently)"));
        return;
    }
    if !w.mem.is_live(vte.vpt + u64::from(vintid / 8), 1) {
        let name = w.rds[cpu].name.clone();
        w.error(
            name,
            format!(
                "vLPI {vintid}: VPT {:#x} is not allocated memory (model check)",
                vte.vpt
            ),
        );
        return;
    }
    bit_rw(w, vte.vpt, vintid, Some(level));
    if !resident && level {
        if db != 1023 {
            set_lpi_pending(w, cpu, db, true);
        } else if w.rds[cpu].db_armed == Some(vpe)
            && let Some(d) = default_db.filter(|&d| d != 1023)
        {
            w.rds[cpu].db_armed = None;
            set_lpi_pending(w, cpu, d, true);
        }
    }
}

pub(crate) fn move_vlpi(
    w: &mut World,
    old: &VteView,
    new: &VteView,
    vpe: u16,
    vintid: u32,
    db: u32,
    default_db: Option<u32>,
) {
    if bit_rw(w, old.vpt, vintid, Some(false)) {
        process_vlpi(w, new, vpe, vintid, db, default_db, true);
    }
}
