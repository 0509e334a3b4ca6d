// SPDX-License-Identifier: MIT OR Apache-2.0
//! ITS tables (`GITS_BASER<n>`): page-size probing, flat or two-level layout, second-level
//! pages on first use, and the shareability read-back rule.
//!
//! # Probing
//! For each table the driver tries 64 KiB pages, then 16 KiB, then 4 KiB: it writes
//! `GITS_BASER<n>` and reads it back; an ITS that does not support a page size shows a different
//! Page_Size. A table larger than two pages is made two-level (Indirect) when the ITS keeps the
//! Indirect bit, as Linux does; second-level pages are then allocated when an ID in their range
//! is first used ([`ItsTable::ensure`]). If the ITS reads the table back as non-shareable, the
//! driver reprograms it non-cacheable and cleans every first-level entry it writes.

use core::alloc::Layout;

use its_core::addr::{Addr4K, PageSize};
use its_core::mmio::ItsRegisters;
use its_core::platform::{DmaBuf, DmaSlots, Platform, SlotError};
use its_core::regs::{BaserType, GitsBaser, ItsL1Entry, MemAttrs, Shareability};
use spin::Mutex;

use crate::error::ItsError;

/// One ITS table and the memory behind it.
pub struct ItsTable<P: Platform> {
    kind: BaserType,
    index: usize,
    page: PageSize,
    esz: usize,
    indirect: bool,
    flush: bool,
    ids: u64,
    baser: GitsBaser,
    /// The (first-level) table; `None` once released ([`ItsTable::release`]).
    l1: Mutex<Option<DmaBuf<P>>>,
    /// Second-level pages, one slot per first-level entry (empty for flat tables).
    l2: Mutex<Option<DmaSlots<P>>>,
}

impl<P: Platform> core::fmt::Debug for ItsTable<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ItsTable")
            .field("kind", &self.kind)
            .field("baser", &self.index)
            .field("page", &self.page)
            .field("entry_size", &self.esz)
            .field("indirect", &self.indirect)
            .field("ids", &self.ids)
            .finish()
    }
}

fn name(kind: BaserType) -> &'static str {
    match kind {
        BaserType::Devices => "device",
        BaserType::Collections => "collection",
        BaserType::Vpes => "vPE",
        _ => "ITS",
    }
}

impl<P: Platform + Clone> ItsTable<P> {
    /// Sets up GITS_BASER<`index`> for `id_bits` bits of IDs. The ITS must be disabled.
    ///
    /// # Errors
    /// [`ItsError::Alloc`], [`ItsError::Unsupported`] when no page size is accepted,
    /// [`ItsError::DidNotStick`] when the address or size does not read back.
    pub fn setup<R: ItsRegisters>(
        regs: &mut R,
        index: usize,
        id_bits: u8,
        platform: &P,
    ) -> Result<Self, ItsError> {
        Self::setup_capped(regs, index, id_bits, platform, 256)
    }

    /// [`ItsTable::setup`], with the (first-level) table kept to `max_pages` pages (at most
    /// 256, what GITS_BASER.Size holds), covering fewer IDs if it must.
    ///
    /// # Errors
    /// As [`ItsTable::setup`].
    pub fn setup_capped<R: ItsRegisters>(
        regs: &mut R,
        index: usize,
        id_bits: u8,
        platform: &P,
        max_pages: u64,
    ) -> Result<Self, ItsError> {
        let max_pages = max_pages.clamp(1, 256);
        let baser = regs.baser(index);
        let kind = baser.table_type();
        let esz = baser.entry_bytes();
        let ids = 1u64 << id_bits.min(32);
        for page in PageSize::PROBE_ORDER {
            let psz = page.bytes() as u64;
            let flat_bytes = ids.saturating_mul(esz as u64);
            let mut indirect = flat_bytes > 2 * psz;
            loop {
                let per_page = psz / esz as u64;
                let bytes = if indirect {
                    (ids.div_ceil(per_page) * 8).next_multiple_of(psz)
                } else {
                    flat_bytes.next_multiple_of(psz)
                };
                // GITS_BASER.Size holds at most 256 pages: cover fewer IDs rather than fail.
                let bytes = bytes.min(max_pages * psz);
                let covered = if indirect {
                    bytes / 8 * per_page
                } else {
                    bytes / esz as u64
                };
                let layout = Layout::from_size_align(bytes as usize, psz as usize)
                    .map_err(|_| ItsError::Config("table layout"))?;
                let l1 = DmaBuf::new(platform.clone(), layout)?;
                let pages = (bytes / psz - 1) as u8;
                let want = GitsBaser::from(0)
                    .with_table_type(kind)
                    .with_page(page)
                    .with_size(pages)
                    .with_indirect(indirect)
                    .with_valid(true)
                    .with_addr(l1.pa())
                    .ok_or(ItsError::Config(
                        "table address too wide for this page size",
                    ))?;
                regs.set_baser(index, want.with_attrs(MemAttrs::CACHED));
                let mut got = regs.baser(index);
                if got.page() != Some(page) {
                    // This page size is not supported: free and try the next smaller one.
                    break;
                }
                if indirect && !got.indirect() {
                    // No two-level tables: fall back to flat (covering fewer IDs if needed).
                    indirect = false;
                    continue;
                }
                let mut flush = false;
                if got.shareability() == Shareability::NonShareable {
                    regs.set_baser(index, want.with_attrs(MemAttrs::NON_CACHEABLE));
                    got = regs.baser(index);
                    flush = true;
                }
                if got.addr() != want.addr() || got.size() != pages || !got.valid() {
                    regs.set_baser(index, GitsBaser::from(0));
                    return Err(ItsError::DidNotStick {
                        register: "GITS_BASER",
                        wrote: want.into(),
                        read: got.into(),
                    });
                }
                // Later CPU writes (level-1 entries) are cleaned when the ITS does not snoop;
                // the zeros already are visible (`DmaAlloc::alloc_zeroed`).
                flush |= got.attrs().needs_clean_to_poc();
                let psz = page.bytes();
                let l2_layout = Layout::from_size_align(psz, psz)
                    .map_err(|_| ItsError::Config("table layout"))?;
                // One slot per first-level entry that can be used: the level-1 table is a
                // whole number of pages, but IDs beyond `ids` are refused by `ensure`.
                let l2_slots = if indirect {
                    covered.min(ids).div_ceil(per_page) as usize
                } else {
                    0
                };
                let l2 = DmaSlots::new(platform.clone(), l2_slots, l2_layout)?;
                return Ok(Self {
                    kind,
                    index,
                    page,
                    esz,
                    indirect,
                    flush,
                    ids: covered.min(ids),
                    baser: got,
                    l1: Mutex::new(Some(l1)),
                    l2: Mutex::new(Some(l2)),
                });
            }
        }
        regs.set_baser(index, GitsBaser::from(0));
        Err(ItsError::Unsupported("any page size for an ITS table"))
    }

    /// Makes sure the entry for `id` exists: allocates and installs its second-level page on
    /// first use (two-level tables). Idempotent.
    ///
    /// # Errors
    /// [`ItsError::TableTooSmall`] beyond the table, [`ItsError::Alloc`].
    pub fn ensure(&self, id: u64) -> Result<(), ItsError> {
        if id >= self.ids {
            return Err(ItsError::TableTooSmall {
                table: name(self.kind),
                id,
            });
        }
        if !self.indirect {
            return Ok(());
        }
        let per_page = self.page.bytes() as u64 / self.esz as u64;
        let l1_index = (id / per_page) as usize;
        let mut l2 = self.l2.lock();
        let l2 = l2.as_mut().ok_or(ItsError::ShutDown)?;
        let (pa, new) = l2.alloc(l1_index).map_err(|e| match e {
            SlotError::OutOfRange(_) => ItsError::TableTooSmall {
                table: name(self.kind),
                id,
            },
            SlotError::Alloc(a) => ItsError::Alloc(a),
        })?;
        if !new {
            return Ok(());
        }
        // The new page's zeros are already visible at the point of coherency
        // (`DmaAlloc::alloc_zeroed`): only the level-1 entry needs a clean.
        let entry = ItsL1Entry::pointing_at(Addr4K::new(pa)?);
        let mut l1 = self.l1.lock();
        let l1 = l1.as_mut().ok_or(ItsError::ShutDown)?;
        l1.write_u64(l1_index * 8, entry.into())?;
        if self.flush {
            // Its own DSB SY, as Linux's its_alloc_table_entry: the queue's barrier before
            // GITS_CWRITER is only a DSB ISHST when the queue is shareable, and that orders
            // stores, not the completion of this clean to the point of coherency.
            l1.clean(l1_index * 8, 8);
            l1.platform().dsb_sy();
        }
        // The entry is ordered before any later command that uses it: the queue's barrier or
        // clean comes before GITS_CWRITER, and the ITS reads the entry only for such commands.
        Ok(())
    }
}

impl<P: Platform> ItsTable<P> {
    /// The (first-level) table's physical address (as programmed, also once released).
    pub fn base(&self) -> its_core::addr::PhysAddr {
        self.baser.addr()
    }

    /// Pages of the (first-level) table (0 once released).
    pub fn pages(&self) -> usize {
        self.l1.lock().as_ref().map_or(0, |b| b.len()) / self.page.bytes()
    }

    /// Bytes per entry.
    pub fn entry_bytes(&self) -> usize {
        self.esz
    }

    /// Makes dropping the table keep its memory (the ITS may still use it).
    pub fn keep_memory(&mut self) {
        if let Some(l1) = self.l1.get_mut() {
            l1.leak_on_drop();
        }
        if let Some(l2) = self.l2.get_mut() {
            l2.leak_on_drop();
        }
    }

    /// Frees the table's memory through a shared reference, for an ITS that no longer reads
    /// it (disabled and quiescent: the caller's promise, which [`crate::Its::shutdown`]
    /// keeps). Entries can no longer be added ([`ItsError::ShutDown`]). Crate-private, as
    /// [`crate::CmdQueue`]'s.
    pub(crate) fn release(&self) {
        let l2 = self.l2.lock().take();
        drop(l2);
        let l1 = self.l1.lock().take();
        drop(l1);
    }

    /// Whether the memory was freed (by [`crate::Its::shutdown`]).
    pub fn is_released(&self) -> bool {
        self.l1.lock().is_none()
    }

    /// IDs the table covers.
    pub fn ids(&self) -> u64 {
        self.ids
    }

    /// Whether the table is two-level.
    pub fn is_indirect(&self) -> bool {
        self.indirect
    }

    /// The page size the ITS accepted.
    pub fn page_size(&self) -> PageSize {
        self.page
    }

    /// Whether entries written by the CPU are cleaned to the point of coherency.
    pub fn cleans_to_poc(&self) -> bool {
        self.flush
    }

    /// The `GITS_BASER<n>` value as the ITS kept it.
    pub fn baser(&self) -> GitsBaser {
        self.baser
    }

    /// Which `GITS_BASER<n>` it is.
    pub fn baser_index(&self) -> usize {
        self.index
    }

    /// Second-level pages allocated so far.
    pub fn l2_pages(&self) -> usize {
        self.l2.lock().as_ref().map_or(0, DmaSlots::used)
    }

    /// Bytes of memory the table uses now (0 once released).
    pub fn bytes(&self) -> usize {
        self.l1.lock().as_ref().map_or(0, |b| b.len()) + self.l2_pages() * self.page.bytes()
    }
}
