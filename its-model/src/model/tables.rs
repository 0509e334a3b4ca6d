// SPDX-License-Identifier: MIT OR Apache-2.0
//! The tables in the driver's memory, as the ITS side writes them and both sides read them:
//! the walk of a flat or two-level table, and QEMU's entry formats (device, collection and vPE
//! table entries, ITEs).
//!
//! The redistributor side reads vPE table entries when a vPE becomes resident (GICv4.1), so
//! this module is shared: `its` and `redist` both use it, and it uses neither.

use super::World;
use crate::platform::{MemFault, View};

/// A latched ITS table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Table {
    /// The (first-level) table's address.
    pub(crate) base: u64,
    /// Two-level.
    pub(crate) indirect: bool,
    /// Page size in bytes.
    pub(crate) page: u64,
    /// Entry size in bytes.
    pub(crate) esz: u64,
    /// How many IDs the table covers.
    pub(crate) entries: u64,
    /// How the GIC sees the table's memory.
    pub(crate) view: View,
}

enum Slot {
    /// The ID is at or beyond the table's entries.
    OutOfRange,
    /// Two-level table whose first-level entry is not valid.
    NoL2,
    /// The entry's address.
    At(u64),
}

fn slot(w: &World, t: &Table, id: u64) -> Result<Slot, MemFault> {
    if id >= t.entries {
        return Ok(Slot::OutOfRange);
    }
    if !t.indirect {
        return Ok(Slot::At(t.base + id * t.esz));
    }
    let per_page = t.page / t.esz;
    let l1 = w.mem.read_u64(t.base + (id / per_page) * 8, t.view)?;
    if l1 >> 63 == 0 {
        return Ok(Slot::NoL2);
    }
    let l2 = l1 & ((1u64 << 52) - 1) & !0xfff;
    Ok(Slot::At(l2 + (id % per_page) * t.esz))
}

pub(crate) fn read_entry(w: &World, t: &Table, id: u64) -> Result<Option<u64>, MemFault> {
    match slot(w, t, id)? {
        Slot::At(pa) => w.mem.read_u64(pa, t.view).map(Some),
        _ => Ok(None),
    }
}

/// Writes an entry. Errors: memory fault (stall), or Ok(false) when the slot does not exist.
pub(crate) fn write_entry(w: &World, t: &Table, id: u64, v: u64) -> Result<bool, MemFault> {
    match slot(w, t, id)? {
        Slot::At(pa) => w.mem.device_write(pa, &v.to_le_bytes()).map(|()| true),
        _ => Ok(false),
    }
}

/// A device table entry as the model stores it (QEMU's format: Valid\[0\], Size\[5:1\],
/// ITT_addr >> 8 in \[49:6\]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DteView {
    /// Valid.
    pub valid: bool,
    /// EventID bits minus one.
    pub size: u8,
    /// ITT address.
    pub itt: u64,
}

impl DteView {
    pub(crate) fn encode(&self) -> u64 {
        u64::from(self.valid)
            | (u64::from(self.size) & 0x1f) << 1
            | ((self.itt >> 8) & ((1 << 44) - 1)) << 6
    }
    pub(crate) fn decode(v: u64) -> Self {
        Self {
            valid: v & 1 != 0,
            size: ((v >> 1) & 0x1f) as u8,
            itt: ((v >> 6) & ((1 << 44) - 1)) << 8,
        }
    }
}

/// A collection table entry: Valid\[0\], the redistributor index in \[16:1\].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CteView {
    /// Valid.
    pub valid: bool,
    /// Target redistributor index.
    pub rd: u16,
}

impl CteView {
    pub(crate) fn encode(&self) -> u64 {
        u64::from(self.valid) | u64::from(self.rd) << 1
    }
    pub(crate) fn decode(v: u64) -> Self {
        Self {
            valid: v & 1 != 0,
            rd: ((v >> 1) & 0xffff) as u16,
        }
    }
}

/// A vPE table entry: Valid\[0\], VPT_size\[5:1\], VPT_addr >> 16 in \[41:6\], redistributor index
/// in \[57:42\].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VteView {
    /// Valid.
    pub valid: bool,
    /// vINTID bits minus one.
    pub vpt_size: u8,
    /// VPT address.
    pub vpt: u64,
    /// Target redistributor index.
    pub rd: u16,
}

impl VteView {
    pub(crate) fn encode(&self) -> u64 {
        u64::from(self.valid)
            | (u64::from(self.vpt_size) & 0x1f) << 1
            | ((self.vpt >> 16) & ((1 << 36) - 1)) << 6
            | u64::from(self.rd) << 42
    }
    pub(crate) fn decode(v: u64) -> Self {
        Self {
            valid: v & 1 != 0,
            vpt_size: ((v >> 1) & 0x1f) as u8,
            vpt: ((v >> 6) & ((1 << 36) - 1)) << 16,
            rd: ((v >> 42) & 0xffff) as u16,
        }
    }
}

/// An interrupt translation entry (12 bytes): Valid\[0\], physical\[1\], INTID\[25:2\],
/// ICID\[47:32\], vPEID\[63:48\]; doorbell in the next word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IteView {
    /// Valid.
    pub valid: bool,
    /// Physical (true) or virtual (false).
    pub physical: bool,
    /// pINTID or vINTID.
    pub intid: u32,
    /// ICID (physical).
    pub icid: u16,
    /// vPE ID (virtual).
    pub vpe: u16,
    /// Doorbell pINTID (virtual; 1023 = none).
    pub doorbell: u32,
}

impl IteView {
    pub(crate) fn encode(&self) -> [u8; 12] {
        let lo = u64::from(self.valid)
            | u64::from(self.physical) << 1
            | (u64::from(self.intid) & 0xff_ffff) << 2
            | u64::from(self.icid) << 32
            | u64::from(self.vpe) << 48;
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&lo.to_le_bytes());
        b[8..].copy_from_slice(&(self.doorbell & 0x1ff_ffff).to_le_bytes());
        b
    }
    pub(crate) fn decode(b: &[u8; 12]) -> Self {
        let mut lo = [0u8; 8];
        lo.copy_from_slice(&b[..8]);
        let lo = u64::from_le_bytes(lo);
        let mut hi = [0u8; 4];
        hi.copy_from_slice(&b[8..]);
        Self {
            valid: lo & 1 != 0,
            physical: lo & 2 != 0,
            intid: ((lo >> 2) & 0xff_ffff) as u32,
            icid: (lo >> 32) as u16,
            vpe: (lo >> 48) as u16,
            doorbell: u32::from_le_bytes(hi) & 0x1ff_ffff,
        }
    }
}

pub(crate) fn read_dte(w: &World, n: usize, device: u32) -> Result<Option<DteView>, MemFault> {
    let Some(t) = w.its[n].dev else {
        return Ok(None);
    };
    Ok(read_entry(w, &t, device.into())?.map(DteView::decode))
}

pub(crate) fn read_cte(w: &World, n: usize, icid: u16) -> Result<Option<CteView>, MemFault> {
    let Some(t) = w.its[n].coll else {
        return Ok(None);
    };
    Ok(read_entry(w, &t, icid.into())?.map(CteView::decode))
}

pub(crate) fn read_vte(w: &World, n: usize, vpe: u16) -> Result<Option<VteView>, MemFault> {
    let Some(t) = w.its[n].vpe else {
        return Ok(None);
    };
    Ok(read_entry(w, &t, vpe.into())?.map(VteView::decode))
}

/// The valid vPE table entry of `vpe` on the first ITS that has one (the redistributor's view
/// when a vPE is made resident by ID, GICv4.1).
pub(crate) fn find_vte(w: &World, vpe: u16) -> Option<VteView> {
    (0..w.its.len())
        .find_map(|n| read_vte(w, n, vpe).ok().flatten())
        .filter(|t| t.valid)
}

pub(crate) fn ite_addr(w: &World, dte: &DteView, event: u32) -> u64 {
    dte.itt + u64::from(event) * u64::from(w.cfg.itt_entry_bytes)
}

pub(crate) fn read_ite(w: &World, pa: u64) -> Result<IteView, MemFault> {
    let mut b = [0u8; 12];
    w.mem.read(pa, &mut b, View::Coherent)?;
    Ok(IteView::decode(&b))
}

pub(crate) fn read_ite_of(w: &World, n: usize, device: u32, event: u32) -> Option<IteView> {
    let dte = read_dte(w, n, device).ok()??;
    if !dte.valid || u64::from(event) >= 1u64 << (dte.size + 1) {
        return None;
    }
    read_ite(w, ite_addr(w, &dte, event))
        .ok()
        .filter(|i| i.valid)
}
