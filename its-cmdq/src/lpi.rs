// SPDX-License-Identifier: MIT OR Apache-2.0
//! Physical LPIs: the property table, the INTID allocator, and redistributor bring-up
//! (GICR_WAKER, GICR_PROPBASER, GICR_PENDBASER, GICR_CTLR.EnableLPIs).
//!
//! One property table serves every redistributor (as CommonLPIAff allows and Linux does);
//! each redistributor has its own pending table. LPI INTIDs are capped at 16 bits, as Linux
//! caps them: 57 344 LPIs, an 8 KiB allocator bitmap kept inline.

use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::time::Duration;

use its_core::addr::{Addr4K, Addr64K};
use its_core::caps::DistCaps;
use its_core::ids::{LPI_BASE, Lpi};
use its_core::mmio::RedistRegisters;
use its_core::platform::{DmaBuf, Platform, poll_until};
use its_core::regs::{GicrCtlr, GicrPendbaser, GicrPropbaser, MemAttrs, Shareability};
use spin::Mutex;

use crate::error::ItsError;

/// The widest LPI INTID space this driver manages (bits).
pub const MAX_LPI_ID_BITS: u8 = 16;

/// Property byte: Group 1 (bit 1, RES1 in GICv3 for LPIs).
const PROP_GROUP1: u8 = 1 << 1;
/// Property byte: enable (bit 0).
const PROP_ENABLE: u8 = 1;
/// Priority for new LPIs, as Linux's default.
pub const DEFAULT_PRIORITY: u8 = 0xa0;

/// A contiguous range of allocated LPI INTIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LpiRange {
    /// The first LPI.
    pub base: Lpi,
    /// How many.
    pub count: u32,
}

impl LpiRange {
    /// The `i`th LPI of the range.
    pub fn get(&self, i: u32) -> Option<Lpi> {
        (i < self.count)
            .then(|| Lpi::new(self.base.get().checked_add(i)?).ok())
            .flatten()
    }

    /// The LPIs in order.
    pub fn iter(&self) -> impl Iterator<Item = Lpi> + '_ {
        (0..self.count).filter_map(|i| self.get(i))
    }
}

/// A first-fit allocator of contiguous LPI INTID ranges over a bitmap kept in platform memory
/// (8 KiB for 16-bit INTIDs), so it costs nothing on the stack.
pub struct LpiAllocator<P: Platform> {
    used: DmaBuf<P>,
    limit: u32,
}

impl<P: Platform> core::fmt::Debug for LpiAllocator<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LpiAllocator")
            .field("limit", &self.limit)
            .field("free", &self.free_count())
            .finish()
    }
}

impl<P: Platform> LpiAllocator<P> {
    /// An allocator of INTIDs 8192 up to 2^`id_bits` (at most 2^16).
    ///
    /// # Errors
    /// [`ItsError::Unsupported`] for fewer than 14 bits (no LPI above 8191),
    /// [`ItsError::Alloc`] for the bitmap.
    pub fn new(platform: P, id_bits: u8) -> Result<Self, ItsError> {
        if id_bits < 14 {
            return Err(ItsError::Unsupported("LPIs: fewer than 14 INTID bits"));
        }
        let bits = id_bits.min(MAX_LPI_ID_BITS);
        let limit = 1u32 << bits;
        let layout = Layout::from_size_align((limit / 8) as usize, 8)
            .map_err(|_| ItsError::Config("layout"))?;
        Ok(Self {
            used: DmaBuf::new(platform, layout)?,
            limit,
        })
    }

    fn word(&self, intid: u32) -> u64 {
        self.used
            .read_u64((intid / 64) as usize * 8)
            .unwrap_or(u64::MAX)
    }

    fn is_used(&self, intid: u32) -> bool {
        self.word(intid) & (1 << (intid % 64)) != 0
    }

    fn set(&mut self, intid: u32, on: bool) -> Result<(), ItsError> {
        let w = self.word(intid);
        let w = if on {
            w | 1 << (intid % 64)
        } else {
            w & !(1 << (intid % 64))
        };
        self.used.write_u64((intid / 64) as usize * 8, w)?;
        Ok(())
    }

    /// Allocates `count` contiguous LPIs.
    ///
    /// # Errors
    /// [`ItsError::Exhausted`] when no run is free, [`ItsError::Config`] for `count == 0`.
    pub fn alloc(&mut self, count: u32) -> Result<LpiRange, ItsError> {
        if count == 0 {
            return Err(ItsError::Config("allocating zero LPIs"));
        }
        let mut start = LPI_BASE;
        while start
            .checked_add(count)
            .is_some_and(|end| end <= self.limit)
        {
            match (start..start + count).find(|&i| self.is_used(i)) {
                Some(used) => start = used + 1,
                None => {
                    for i in start..start + count {
                        self.set(i, true)?;
                    }
                    let base = Lpi::new(start)?;
                    return Ok(LpiRange { base, count });
                }
            }
        }
        Err(ItsError::Exhausted("LPI INTIDs"))
    }

    /// Frees a range. Every LPI of it must be allocated.
    ///
    /// # Errors
    /// [`ItsError::BadLpi`] naming the first LPI that is not allocated (nothing is freed).
    pub fn free(&mut self, r: LpiRange) -> Result<(), ItsError> {
        let end = r
            .base
            .get()
            .checked_add(r.count)
            .ok_or(ItsError::BadLpi(r.base.get()))?;
        if end > self.limit {
            return Err(ItsError::BadLpi(r.base.get()));
        }
        if let Some(i) = (r.base.get()..end).find(|&i| !self.is_used(i)) {
            return Err(ItsError::BadLpi(i));
        }
        for i in r.base.get()..end {
            self.set(i, false)?;
        }
        Ok(())
    }

    /// Whether `lpi` is allocated.
    pub fn is_allocated(&self, lpi: Lpi) -> bool {
        lpi.get() < self.limit && self.is_used(lpi.get())
    }

    /// LPIs free.
    pub fn free_count(&self) -> u32 {
        let used: u32 = (0..self.limit / 64)
            .map(|w| self.word(w * 64).count_ones())
            .sum();
        self.limit - LPI_BASE - used.min(self.limit - LPI_BASE)
    }
}

/// A redistributor's LPI pending table. The redistributor writes it while its LPIs are
/// enabled, so dropping it keeps (leaks) its memory; [`Lpis::disable_redistributor`] frees it
/// once the redistributor's LPIs are off.
pub struct PendingTable<P: Platform> {
    buf: DmaBuf<P>,
    /// The redistributor's LPIs are off: the memory may be freed.
    released: bool,
}

impl<P: Platform> PendingTable<P> {
    /// The table's memory, to inspect (the redistributor owns its contents).
    pub fn buffer(&self) -> &DmaBuf<P> {
        &self.buf
    }

    /// Its physical address.
    pub fn pa(&self) -> its_core::addr::PhysAddr {
        self.buf.pa()
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether it is empty (never).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

impl<P: Platform> Drop for PendingTable<P> {
    fn drop(&mut self) {
        if !self.released {
            self.buf.leak_on_drop();
        }
    }
}

impl<P: Platform> core::fmt::Debug for PendingTable<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingTable")
            .field("pa", &self.buf.pa())
            .finish()
    }
}

/// The LPI property table shared by all redistributors, and the INTID allocator.
///
/// # Shutting down
/// Each redistributor brought up with [`Lpis::init_redistributor`] reads the property table
/// until [`Lpis::disable_redistributor`] turns its LPIs off; dropping `Lpis` while any still
/// has LPIs on keeps (leaks) the table rather than free memory the GIC may read.
pub struct Lpis<P: Platform> {
    prop: DmaBuf<P>,
    users: AtomicUsize,
    id_bits: u8,
    flush: AtomicBool,
    alloc: Mutex<LpiAllocator<P>>,
    platform: P,
}

impl<P: Platform + Clone> Lpis<P> {
    /// Allocates the property table for the distributor's LPI INTID space (capped at 16 bits),
    /// every LPI disabled at [`DEFAULT_PRIORITY`].
    ///
    /// # Errors
    /// [`ItsError::Unsupported`] when the GIC has no LPIs, [`ItsError::Alloc`].
    pub fn new(dist: &DistCaps, platform: P) -> Result<Self, ItsError> {
        if !dist.lpis {
            return Err(ItsError::Unsupported("LPIs (GICD_TYPER.LPIS = 0)"));
        }
        let id_bits = dist.lpi_id_bits(MAX_LPI_ID_BITS);
        if id_bits < 14 {
            return Err(ItsError::Unsupported("LPIs: fewer than 14 INTID bits"));
        }
        let bytes = 1usize << id_bits;
        let layout =
            Layout::from_size_align(bytes, 0x1_0000).map_err(|_| ItsError::Config("layout"))?;
        let mut prop = DmaBuf::new(platform.clone(), layout)?;
        prop.fill(0, bytes, DEFAULT_PRIORITY | PROP_GROUP1)?;
        prop.clean_all();
        platform.dsb_sy();
        crate::logging::info!(
            "its-cmdq: LPI property table for {} INTID bits ({} KiB) at {:#x}",
            id_bits,
            bytes / 1024,
            prop.pa().get()
        );
        Ok(Self {
            prop,
            users: AtomicUsize::new(0),
            id_bits,
            flush: AtomicBool::new(false),
            alloc: Mutex::new(LpiAllocator::new(platform.clone(), id_bits)?),
            platform,
        })
    }
}

impl<P: Platform> core::fmt::Debug for Lpis<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Lpis")
            .field("id_bits", &self.id_bits)
            .field("table", &self.prop)
            .field("redistributors", &self.users.load(Ordering::Relaxed))
            .field("cleans_to_poc", &self.flush.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<P: Platform> Drop for Lpis<P> {
    fn drop(&mut self) {
        if self.users.load(Ordering::Acquire) != 0 {
            // A redistributor still has LPIs on and may read the table: keep it.
            self.prop.leak_on_drop();
        }
    }
}

impl<P: Platform> Lpis<P> {
    /// INTID bits covered.
    pub fn id_bits(&self) -> u8 {
        self.id_bits
    }

    /// Checks that `lpi` is inside this GIC's LPI space.
    ///
    /// # Errors
    /// [`ItsError::Id`] when it is beyond the property table.
    pub fn check(&self, lpi: Lpi) -> Result<(), ItsError> {
        Lpi::new_within(lpi.get(), self.id_bits)
            .map(|_| ())
            .map_err(ItsError::from)
    }

    /// Allocates `count` contiguous LPIs.
    ///
    /// # Errors
    /// As [`LpiAllocator::alloc`].
    pub fn alloc(&self, count: u32) -> Result<LpiRange, ItsError> {
        self.alloc.lock().alloc(count)
    }

    /// Frees a range, after disabling its LPIs in the property table.
    ///
    /// # Errors
    /// As [`LpiAllocator::free`].
    pub fn free(&self, r: LpiRange) -> Result<(), ItsError> {
        let mut a = self.alloc.lock();
        if let Some(bad) = r.iter().find(|&l| !a.is_allocated(l)) {
            return Err(ItsError::BadLpi(bad.get()));
        }
        for l in r.iter() {
            self.write_prop(l, DEFAULT_PRIORITY | PROP_GROUP1)?;
        }
        a.free(r)
    }

    /// Whether `lpi` is allocated.
    pub fn is_allocated(&self, lpi: Lpi) -> bool {
        self.alloc.lock().is_allocated(lpi)
    }

    /// LPIs still free.
    pub fn free_count(&self) -> u32 {
        self.alloc.lock().free_count()
    }

    /// Sets an LPI's priority and enable bit in the property table. The redistributor reads
    /// it again only after an INV or INVALL for the LPI (see `Its::inv_event`). Takes no lock:
    /// safe to call from an interrupt handler.
    ///
    /// # Errors
    /// [`ItsError::BadLpi`] for an LPI outside the table.
    pub fn configure(&self, lpi: Lpi, priority: u8, enabled: bool) -> Result<(), ItsError> {
        self.write_prop(
            lpi,
            (priority & 0xfc) | PROP_GROUP1 | if enabled { PROP_ENABLE } else { 0 },
        )
    }

    /// The property byte of `lpi`.
    ///
    /// # Errors
    /// [`ItsError::BadLpi`] for an LPI outside the table.
    pub fn property(&self, lpi: Lpi) -> Result<u8, ItsError> {
        self.check(lpi).map_err(|_| ItsError::BadLpi(lpi.get()))?;
        Ok(self.prop.read_u8(lpi.index() as usize)?)
    }

    /// Lock-free, so an interrupt handler may call it (see [`Lpis::configure`]).
    fn write_prop(&self, lpi: Lpi, byte: u8) -> Result<(), ItsError> {
        self.check(lpi).map_err(|_| ItsError::BadLpi(lpi.get()))?;
        let offset = lpi.index() as usize;
        self.prop.store_u8(offset, byte)?;
        if self.flush.load(Ordering::Relaxed) {
            self.prop.clean(offset, 1);
            self.platform.dsb_sy();
        } else {
            self.platform.dsb_ishst();
        }
        Ok(())
    }

    /// Whether property writes are cleaned to the point of coherency.
    pub fn cleans_to_poc(&self) -> bool {
        self.flush.load(Ordering::Relaxed)
    }

    /// Brings one redistributor's LPIs up: wakes it (GICR_WAKER), programs GICR_PROPBASER and
    /// a new pending table in GICR_PENDBASER (each with the shareability read-back rule), then
    /// sets GICR_CTLR.EnableLPIs. Returns the pending table, which must outlive the LPIs'
    /// use (keep it as long as the redistributor has LPIs enabled).
    ///
    /// # Errors
    /// [`ItsError::RegisterTimeout`] when the redistributor does not wake,
    /// [`ItsError::Unsupported`] when it has no physical LPIs or booted with LPIs enabled and
    /// cannot disable them, [`ItsError::DidNotStick`], [`ItsError::Alloc`].
    pub fn init_redistributor<R: RedistRegisters>(
        &self,
        rd: &mut R,
        timeout: Duration,
    ) -> Result<PendingTable<P>, ItsError>
    where
        P: Clone,
    {
        if !rd.typer().plpis() {
            return Err(ItsError::Unsupported("physical LPIs on this redistributor"));
        }
        // Wake the redistributor.
        let waker = rd.waker();
        rd.set_waker(waker.with_processor_sleep(false));
        poll_until(&self.platform, timeout, || !rd.waker().children_asleep()).map_err(|t| {
            ItsError::RegisterTimeout {
                what: "GICR_WAKER.ChildrenAsleep",
                waited_ns: t.waited_ns,
            }
        })?;
        let ctlr = rd.ctlr();
        if ctlr.enable_lpis() {
            // Left enabled by firmware or an earlier boot: the tables it uses are unknown.
            if !ctlr.ces() {
                return Err(ItsError::Unsupported(
                    "disabling LPIs left enabled (GICR_CTLR.CES = 0)",
                ));
            }
            rd.set_ctlr(ctlr.with_enable_lpis(false));
            poll_until(&self.platform, timeout, || !rd.ctlr().rwp()).map_err(|t| {
                ItsError::RegisterTimeout {
                    what: "GICR_CTLR.RWP",
                    waited_ns: t.waited_ns,
                }
            })?;
        }
        // Property table.
        let prop_pa = Addr4K::new(self.prop.pa())?;
        let want = GicrPropbaser::new()
            .with_addr(prop_pa)
            .with_id_bits(self.id_bits - 1);
        rd.set_propbaser(want.with_attrs(MemAttrs::CACHED));
        let mut got = rd.propbaser();
        if got.shareability() == Shareability::NonShareable {
            rd.set_propbaser(want.with_attrs(MemAttrs::NON_CACHEABLE));
            got = rd.propbaser();
        }
        if got.addr() != want.addr() || got.id_bits() != want.id_bits() {
            return Err(ItsError::DidNotStick {
                register: "GICR_PROPBASER",
                wrote: want.into(),
                read: got.into(),
            });
        }
        if got.attrs().needs_clean_to_poc() && !self.flush.swap(true, Ordering::Relaxed) {
            // The GIC reads the table uncached from now on: what `configure` wrote so far
            // (with a barrier only) must reach the point of coherency too.
            self.prop.clean_all();
        }
        // Pending table: one bit per INTID, 64 KiB aligned, zeroed.
        let bytes = ((1usize << self.id_bits) / 8).max(0x1000);
        let layout =
            Layout::from_size_align(bytes, 0x1_0000).map_err(|_| ItsError::Config("layout"))?;
        let pend = DmaBuf::new(self.platform.clone(), layout)?;
        let want = GicrPendbaser::new().with_addr(Addr64K::new(pend.pa())?);
        rd.set_pendbaser(want.with_attrs(MemAttrs::CACHED));
        let got = rd.pendbaser();
        if got.shareability() == Shareability::NonShareable {
            rd.set_pendbaser(want.with_attrs(MemAttrs::NON_CACHEABLE));
        }
        if rd.pendbaser().addr() != want.addr() {
            return Err(ItsError::DidNotStick {
                register: "GICR_PENDBASER",
                wrote: want.into(),
                read: rd.pendbaser().into(),
            });
        }
        self.platform.dsb_sy();
        rd.set_ctlr(rd.ctlr().with_enable_lpis(true));
        if !rd.ctlr().enable_lpis() {
            return Err(ItsError::DidNotStick {
                register: "GICR_CTLR",
                wrote: u32::from(GicrCtlr::new().with_enable_lpis(true)).into(),
                read: u32::from(rd.ctlr()).into(),
            });
        }
        self.users.fetch_add(1, Ordering::AcqRel);
        crate::logging::debug!(
            "its-cmdq: LPIs on at redistributor of processor {}, pending table at {:#x}",
            rd.typer().processor_number(),
            pend.pa().get()
        );
        Ok(PendingTable {
            buf: pend,
            released: false,
        })
    }

    /// Turns a redistributor's LPIs off (GICR_CTLR.EnableLPIs = 0, then GICR_CTLR.RWP) and
    /// frees its pending table.
    ///
    /// # Errors
    /// The table is handed back with [`ItsError::RegisterTimeout`] when RWP does not clear, or
    /// [`ItsError::Unsupported`] when EnableLPIs cannot be cleared (GICR_CTLR.CES = 0).
    pub fn disable_redistributor<R: RedistRegisters>(
        &self,
        rd: &mut R,
        table: PendingTable<P>,
        timeout: Duration,
    ) -> Result<(), (PendingTable<P>, ItsError)> {
        let c = rd.ctlr();
        if !c.ces() && c.enable_lpis() {
            return Err((
                table,
                ItsError::Unsupported("disabling LPIs (GICR_CTLR.CES = 0)"),
            ));
        }
        rd.set_ctlr(c.with_enable_lpis(false));
        if let Err(t) = poll_until(&self.platform, timeout, || !rd.ctlr().rwp()) {
            return Err((
                table,
                ItsError::RegisterTimeout {
                    what: "GICR_CTLR.RWP",
                    waited_ns: t.waited_ns,
                },
            ));
        }
        if rd.ctlr().enable_lpis() {
            return Err((
                table,
                ItsError::Unsupported("disabling LPIs (EnableLPIs stayed set)"),
            ));
        }
        let mut table = table;
        table.released = true;
        drop(table);
        self.users.fetch_sub(1, Ordering::AcqRel);
        crate::logging::debug!(
            "its-cmdq: LPIs off at redistributor of processor {}",
            rd.typer().processor_number()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use its_model::FakePlatform;

    fn alloc(bits: u8) -> LpiAllocator<FakePlatform> {
        LpiAllocator::new(FakePlatform::new(), bits).unwrap()
    }

    #[test]
    fn caller_built_ranges_and_widths_give_errors_not_panics() {
        assert!(matches!(
            LpiAllocator::new(FakePlatform::new(), 13),
            Err(ItsError::Unsupported(_))
        ));
        let top = LpiRange {
            base: Lpi::new(u32::MAX).unwrap(),
            count: 3,
        };
        assert_eq!(top.get(0), Some(top.base));
        assert_eq!(top.get(1), None, "past u32::MAX");
        assert_eq!(top.iter().count(), 1);
        let mut a = alloc(14);
        assert_eq!(a.free(top), Err(ItsError::BadLpi(u32::MAX)));
    }

    #[test]
    fn allocator_first_fit_and_free() {
        let mut a = alloc(14); // INTIDs 8192..16383: 8192 LPIs
        assert_eq!(a.free_count(), 8192);
        let r1 = a.alloc(10).unwrap();
        assert_eq!(r1.base.get(), 8192);
        let r2 = a.alloc(5).unwrap();
        assert_eq!(r2.base.get(), 8202);
        a.free(r1).unwrap();
        let r3 = a.alloc(4).unwrap();
        assert_eq!(r3.base.get(), 8192);
        let r4 = a.alloc(7).unwrap();
        assert_eq!(r4.base.get(), 8207, "does not fit in the 6-slot hole");
        assert_eq!(
            a.free(r1),
            Err(ItsError::BadLpi(8196)),
            "partially free: nothing freed"
        );
        assert!(a.is_allocated(r3.base));
    }

    #[test]
    fn allocator_exhaustion() {
        let mut a = alloc(14);
        assert!(a.alloc(8192).is_ok());
        assert_eq!(a.alloc(1), Err(ItsError::Exhausted("LPI INTIDs")));
        assert_eq!(a.alloc(0), Err(ItsError::Config("allocating zero LPIs")));
        let mut b = alloc(14);
        assert!(b.alloc(8193).is_err());
        assert!(b.alloc(u32::MAX).is_err());
    }

    #[test]
    fn allocator_caps_id_bits() {
        let mut a = alloc(32);
        assert_eq!(a.free_count(), 65536 - 8192);
        let r = a.alloc(65536 - 8192).unwrap();
        assert_eq!(r.iter().last().map(Lpi::get), Some(65535));
    }
}
