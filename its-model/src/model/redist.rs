// SPDX-License-Identifier: MIT OR Apache-2.0
//! The redistributor side of the model: registers, LPI pending state, vPE residency.

use its_core::cmd::ItsVersion;
use its_core::regs::{
    GicrCtlr, GicrInvallr, GicrInvlpir, GicrLpir, GicrPendbaser, GicrPropbaser, GicrSyncr,
    GicrTyper, GicrVpendbaser, GicrVpendbaserV41, GicrVpropbaser, GicrWaker, Shareability,
};

use super::tables::{self, VteView};
use super::{ModelConfig, World, view_for};
use crate::platform::View;

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
                .with_common_lpi_aff(1)
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
            w.error(name, format!(
                "GICR_VPENDBASER.Valid set with GICR_VPROPBASER.IDbits = {}: vLPIs above {} are dropped (model check)",
                prop.id_bits(),
                (1u64 << (prop.id_bits() + 1)) - 1
            ));
        }
        Resident {
            vpt: GicrVpendbaser::from(v).addr().get(),
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
}

fn make_non_resident(w: &mut World, cpu: usize, v: u64, dirty_reads: u32) {
    let pending = w.rds[cpu]
        .resident
        .is_some_and(|r| !enabled_pending_vlpis(w, &r).is_empty());
    let rd = &mut w.rds[cpu];
    let vpe = rd.resident.and_then(|r| r.vpe);
    rd.resident = None;
    let mut nv = v & !(1 << 61);
    if pending {
        nv |= 1 << 61;
    }
    if rd.v41 {
        let db = GicrVpendbaserV41::from(v).doorbell();
        rd.db_armed = if db && !pending { vpe } else { None };
        if let Some(id) = vpe {
            nv = (nv & !0xffff) | u64::from(id);
        }
    }
    rd.vpendbaser = nv;
    rd.dirty_left = dirty_reads;
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
    }
}

pub(crate) fn write_invallr(w: &mut World, cpu: usize, v: GicrInvallr) {
    let name = w.rds[cpu].name.clone();
    w.reg_event(name, "GICR_INVALLR", v.into());
    if direct_lpi_check(w, cpu, 0xb0, "GICR_INVALLR") {
        w.rds[cpu].syncr_left = w.knobs.syncr_reads;
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
    if w.plat.read(pa, &mut b, View::Coherent).is_err() {
        return false;
    }
    let mask = 1u8 << (intid % 8);
    let was = b[0] & mask != 0;
    if let Some(on) = set {
        let nb = if on { b[0] | mask } else { b[0] & !mask };
        if nb != b[0] {
            let _ = w.plat.device_write(pa, &[nb]);
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
    if !w.plat.is_live(base + u64::from(intid / 8), 1) {
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
    if w.plat
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
    w.plat
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
    let best = pending_lpis(w, cpu)
        .into_iter()
        .filter_map(|i| {
            prop_byte(w, prop, view, i)
                .filter(|b| b & 1 != 0)
                .map(|b| (b & 0xfc, i))
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
    vpt_pending(w, r.vpt, limit)
        .into_iter()
        .filter_map(|i| {
            prop_byte(w, r.prop, View::Coherent, i)
                .filter(|b| b & 1 != 0)
                .map(|b| (b & 0xfc, i))
        })
        .collect()
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
    if !w.plat.is_live(vte.vpt + u64::from(vintid / 8), 1) {
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
