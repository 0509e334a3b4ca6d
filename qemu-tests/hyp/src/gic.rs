// SPDX-License-Identifier: MIT OR Apache-2.0
//! GIC bring-up on the driver crates, and physical LPIs taken at EL2.
//!
//! Glue only: every GIC decision (table sizes, page-size probing, the shareability read-back
//! rule, redistributor wake-up, MAPC/INVALL per CPU) is `its-cmdq`'s. This module borrows the
//! MMIO blocks from the GIC's owner ([`crate::gic_hw`]: the ITS control frame for as long as
//! the ITS lives, a redistributor for each call), hands them and the [`HwPlatform`] to the
//! crates, and counts the LPIs taken at EL2 per INTID per CPU through the infrastructure's IRQ
//! hook ([`exits::set_irq_hook`]).
//!
//! ```text
//! Gic::bring_up_with(QueueConfig) -> GicHandle   (the Gic itself lives in a static slot)
//!   GICD_TYPER            -> DistCaps          (GICD_CTLR: ARE + Group 1 already on at boot)
//!   Lpis::new             -> property table (one for all redistributors)
//!   init_redistributor    -> per CPU: wake, PROPBASER, PENDBASER, EnableLPIs (all from CPU0)
//!   Its::new              -> BASERs, CBASER, Enabled, MAPC + INVALL per CPU, SYNC
//!   set_irq_hook          -> LPIs counted per INTID per CPU
//! drop(GicHandle)         -> GITS_CTLR.Enabled = 0, EnableLPIs = 0, then the memory is freed
//! ```
//!
//! # Why `Gic` disables the ITS before dropping it
//! Dropping an enabled `Its` (or `Lpis` while redistributors still use its property table)
//! keeps the memory the GIC may still use, on purpose. [`Gic`]'s `Drop` therefore disables the
//! ITS (`Its::disable`, waiting for Quiescent) and each redistributor's LPIs
//! (`Lpis::disable_redistributor`, waiting for RWP) first, so everything is freed; whatever
//! could not be disabled stays allocated, and an ITS that would not go quiescent is never
//! brought up again ([`BringUpError::AlreadyUp`]).

use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use common::gic_platform::HwPlatform;
use common::platform::MAX_CPUS;
use common::sync::{SpinLock, SpinLockGuard};
use common::timer;
use its_cmdq::{Its, ItsConfig, ItsError, Lpis, PendingTable, QueueConfig, RedistInfo};
use its_core::addr::PhysAddr;
use its_core::caps::DistCaps;
use its_core::ids::{LPI_BASE, Lpi};
use its_core::platform::CacheMaint;
use its_core::regs::{GicdCtlr, GicrTyper};

use crate::exits;
use crate::gic_hw::{self, Gicr, ItsFrame};

/// The ITS as the scenarios hold it: the driver over the ITS control frame lent by
/// [`gic_hw`].
pub type HwIts = Its<ItsFrame, HwPlatform>;
/// A device mapped in [`HwIts`].
pub type HwDevice = its_cmdq::Device<HwPlatform>;

/// How long bring-up waits for a redistributor or the ITS.
const REG_TIMEOUT: Duration = Duration::from_millis(100);

/// Set when an ITS would not go quiescent at shut-down: it may still use its tables, so it is
/// never brought up again.
static ITS_WEDGED: AtomicBool = AtomicBool::new(false);

/// Where the brought-up [`Gic`] lives while a [`GicHandle`] holds it.
///
/// # Why a static rather than a value on the scenario's stack
/// The driver holds its state inline (no heap): a `Gic` is about 25 KiB, and every `Result` /
/// `Option` it travels through costs another copy in the caller's frame. Built here, in place,
/// the scenarios' frames stay small.
static SLOT: SpinLock<Option<Gic>> = SpinLock::new(None);

/// The brought-up GIC, held by one scenario. Dereferences to [`Gic`]; dropping it shuts the GIC
/// down (see [`Gic`]'s `Drop`) and frees its memory.
pub struct GicHandle(SpinLockGuard<'static, Option<Gic>>);

impl Deref for GicHandle {
    type Target = Gic;
    fn deref(&self) -> &Gic {
        // `bring_up_with` returns a handle only after filling the slot, and only `Drop` empties it.
        self.0.as_ref().expect("GicHandle over an empty slot")
    }
}

impl Drop for GicHandle {
    fn drop(&mut self) {
        // Dropped in place (`take()` would first move the 25 KiB out onto this frame).
        *self.0 = None;
    }
}

/// GICD_TYPER as `DistCaps`. GICD_TYPER2 is not read: it exists only in GICv4.1 (QEMU is
/// GICv4.0 and would log the access).
pub fn dist_caps() -> DistCaps {
    DistCaps::from_typer(gic_hw::gicd_typer(gic_hw::get()), None)
}

/// The GIC brought up on the crates: distributor capabilities, LPI tables on every
/// redistributor, the ITS with one collection per CPU.
pub struct Gic {
    /// What GICD_TYPER reported.
    pub dist: DistCaps,
    /// The redistributors, CPU `i` at index `i`.
    pub redists: [Option<RedistInfo>; MAX_CPUS],
    /// Number of CPUs (redistributors) in use.
    pub cpus: usize,
    lpis: Lpis<HwPlatform>,
    its: HwIts,
    pending: [Option<PendingTable<HwPlatform>>; MAX_CPUS],
}

/// Why bring-up failed.
#[derive(Debug)]
pub enum BringUpError {
    /// Another `Gic` owns the ITS.
    AlreadyUp,
    /// No redistributor found for CPU 0.
    NoRedistributor,
    /// GICD_CTLR lacks ARE or EnableGrp1 (`gic_hw::GicHw::init_distributor` sets them at boot).
    DistributorOff(GicdCtlr),
    /// A driver error.
    Driver(ItsError),
}

impl core::fmt::Display for BringUpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::AlreadyUp => f.write_str("the GIC is already brought up"),
            Self::NoRedistributor => f.write_str("no redistributor for cpu0"),
            Self::DistributorOff(c) => {
                write!(f, "GICD_CTLR {:#x} lacks ARE or EnableGrp1", u32::from(*c))
            }
            Self::Driver(e) => write!(f, "driver: {e}"),
        }
    }
}

impl From<ItsError> for BringUpError {
    fn from(e: ItsError) -> Self {
        Self::Driver(e)
    }
}

impl Gic {
    /// Brings the GIC up with the default 64 KiB command queue.
    pub fn bring_up() -> Result<GicHandle, BringUpError> {
        Self::bring_up_with(QueueConfig::default())
    }

    /// Brings the GIC up with the given command queue (see the module documentation) and
    /// installs the LPI-counting IRQ hook.
    pub fn bring_up_with(queue: QueueConfig) -> Result<GicHandle, BringUpError> {
        if ITS_WEDGED.load(Ordering::Acquire) {
            return Err(BringUpError::AlreadyUp);
        }
        // Held by a live handle: the GIC is up already.
        let mut slot = SLOT.try_lock().ok_or(BringUpError::AlreadyUp)?;
        Self::bring_up_claimed(queue, &mut slot)?;
        Ok(GicHandle(slot))
    }

    #[inline(never)]
    fn bring_up_claimed(queue: QueueConfig, slot: &mut Option<Gic>) -> Result<(), BringUpError> {
        let hw = gic_hw::get();
        let ctlr = gic_hw::gicd_ctlr(hw);
        if !(ctlr.are() && ctlr.enable_grp1()) {
            return Err(BringUpError::DistributorOff(ctlr));
        }
        let dist = dist_caps();
        let redists: [Option<RedistInfo>; MAX_CPUS] = core::array::from_fn(|i| hw.redist_info(i));
        let cpus = hw.cpus();
        if cpus == 0 {
            return Err(BringUpError::NoRedistributor);
        }
        let lpis = Lpis::new(&dist, HwPlatform)?;
        let mut pending: [Option<PendingTable<HwPlatform>>; MAX_CPUS] = [const { None }; MAX_CPUS];
        // On failure past this point, redistributors may already use the property table and
        // their pending tables: dropping them keeps that memory (the driver's rule), so the
        // error paths just drop them.
        let leak = |lpis: Lpis<HwPlatform>, pending| {
            drop::<[Option<PendingTable<HwPlatform>>; MAX_CPUS]>(pending);
            drop(lpis);
        };
        for cpu in 0..cpus {
            let r = match hw.redistributor(cpu) {
                Some(mut rd) => lpis.init_redistributor(&mut *rd, REG_TIMEOUT),
                None => Err(ItsError::NoSuchCpu(cpu)),
            };
            match r {
                Ok(t) => pending[cpu] = Some(t),
                Err(e) => {
                    leak(lpis, pending);
                    return Err(e.into());
                }
            }
        }
        let infos: [RedistInfo; MAX_CPUS] = core::array::from_fn(|i| {
            redists[i].unwrap_or(RedistInfo {
                rd_base: PhysAddr::new(0),
                typer: GicrTyper::new(),
            })
        });
        let Some(regs) = hw.its_frame() else {
            leak(lpis, pending);
            return Err(BringUpError::AlreadyUp);
        };
        let cfg = ItsConfig {
            queue,
            ..ItsConfig::new(dist)
        };
        let its = match Its::new(regs, HwPlatform, &infos[..cpus], cfg) {
            Ok(its) => its,
            Err(e) => {
                leak(lpis, pending);
                return Err(e.into());
            }
        };
        reset_counts();
        exits::set_irq_hook(Some(&(count_irq as fn(u32))));
        *slot = Some(Self {
            dist,
            redists,
            cpus,
            lpis,
            its,
            pending,
        });
        Ok(())
    }

    /// The ITS driver.
    pub fn its(&self) -> &HwIts {
        &self.its
    }

    /// The LPI tables and allocator.
    pub fn lpis(&self) -> &Lpis<HwPlatform> {
        &self.lpis
    }

    /// Runs `f` with the ITS registers (shared with the command queue, under its lock).
    pub fn with_its_regs<T>(&self, f: impl FnOnce(&mut ItsFrame) -> T) -> T {
        self.its.queue().with_regs(f)
    }

    /// Runs `f` with CPU `cpu`'s redistributor registers (borrowed from [`gic_hw`], locked
    /// while `f` runs). `None` for an unknown CPU.
    pub fn with_redist<T>(&self, cpu: usize, f: impl FnOnce(&mut Gicr) -> T) -> Option<T> {
        if cpu >= self.cpus {
            return None;
        }
        let mut rd = gic_hw::get().redistributor(cpu)?;
        Some(f(&mut rd))
    }

    /// Whether `lpi` is pending in CPU `cpu`'s pending table in memory.
    ///
    /// QEMU keeps LPI pending state in the table itself, so this is exact there; real
    /// hardware may cache it (the table is only guaranteed up to date with EnableLPIs = 0).
    pub fn lpi_pending_in_table(&self, cpu: usize, lpi: Lpi) -> Option<bool> {
        let t = self.pending.get(cpu)?.as_ref()?.buffer();
        let off = (lpi.get() / 8) as usize;
        let line = NonNull::new(t.va().as_ptr().wrapping_add(off))?;
        // Drop any stale cached copy: the redistributor, not the CPU, writes this byte.
        HwPlatform.clean_inval_to_poc(line, 1);
        t.read_u8(off).ok().map(|b| b & (1 << (lpi.get() % 8)) != 0)
    }

    /// Allocates one LPI, enables it at the default priority, and maps `event` of `dev` to it
    /// on CPU `cpu`'s collection (MAPTI + SYNC), then INV so the redistributor reads its
    /// configuration.
    pub fn map_new_lpi(&self, dev: &mut HwDevice, event: u32, cpu: usize) -> Result<Lpi, ItsError> {
        let range = self.lpis.alloc(1)?;
        let lpi = range.base;
        let mapped = self
            .lpis
            .configure(lpi, its_cmdq::lpi::DEFAULT_PRIORITY, true)
            .and_then(|()| self.its.map_event(dev, event, lpi, cpu));
        if let Err(e) = mapped {
            // Not mapped: the LPI goes back (disabled again by `free`).
            let _ = self.lpis.free(range);
            return Err(e);
        }
        self.its.inv_event(dev, event)?;
        Ok(lpi)
    }
}

impl Drop for Gic {
    fn drop(&mut self) {
        exits::set_irq_hook(None);
        // The driver's shutdown: the ITS disabled and quiescent, then each redistributor's
        // LPIs off. Whatever could not be stopped keeps its memory (the drivers' rule).
        let its_off = self.its.disable(REG_TIMEOUT).is_ok();
        if !its_off {
            common::println!("gic: ITS did not go quiescent: its memory is kept, not freed");
        }
        for cpu in 0..self.cpus {
            let Some(table) = self.pending[cpu].take() else {
                continue;
            };
            let lpis = &self.lpis;
            let done =
                self.with_redist(cpu, |rd| lpis.disable_redistributor(rd, table, REG_TIMEOUT));
            if let Some(Err((_kept, e))) = done {
                common::println!("gic: cpu{cpu} LPIs stay enabled ({e}): pending table kept");
            }
        }
        if !its_off {
            ITS_WEDGED.store(true, Ordering::Release);
        }
        // `its` and `lpis` drop after this: each frees its memory only if the GIC no longer
        // uses it.
    }
}

// ---------------------------------------------------------------------------------------------
// LPIs taken at EL2, per INTID per CPU.

/// CPUs whose LPIs are counted individually.
pub const COUNTED_CPUS: usize = 4;
/// LPIs counted individually: INTIDs 8192 .. 8192 + COUNTED_LPIS.
pub const COUNTED_LPIS: usize = 4096;

static COUNTS: [[AtomicU16; COUNTED_LPIS]; COUNTED_CPUS] =
    [const { [const { AtomicU16::new(0) }; COUNTED_LPIS] }; COUNTED_CPUS];
/// Every IRQ the hook saw (counted or not).
static TOTAL: AtomicU64 = AtomicU64::new(0);
/// IRQs that are not a counted LPI (another INTID, or an LPI / CPU beyond the counters).
static OTHER: AtomicU64 = AtomicU64::new(0);
static LAST_OTHER: AtomicU32 = AtomicU32::new(0);

/// The IRQ hook: runs at EL2 between acknowledge and EOI. Public so that a hook of its own
/// (the GICv4 doorbell dispatch, `crate::v4`) can chain to it.
pub fn count_irq(intid: u32) {
    TOTAL.fetch_add(1, Ordering::AcqRel);
    let cpu = common::platform::cpu_index();
    let idx = intid.wrapping_sub(LPI_BASE) as usize;
    if intid >= LPI_BASE && idx < COUNTED_LPIS && cpu < COUNTED_CPUS {
        COUNTS[cpu][idx].fetch_add(1, Ordering::AcqRel);
    } else {
        OTHER.fetch_add(1, Ordering::AcqRel);
        LAST_OTHER.store(intid, Ordering::Release);
    }
}

/// Zeroes every counter. Call with IRQs masked.
pub fn reset_counts() {
    for cpu in &COUNTS {
        for c in cpu {
            c.store(0, Ordering::Relaxed);
        }
    }
    TOTAL.store(0, Ordering::Release);
    OTHER.store(0, Ordering::Release);
}

/// Times `lpi` was taken on `cpu` since the last reset (`u32::MAX` if not counted).
pub fn taken(cpu: usize, lpi: Lpi) -> u32 {
    let idx = (lpi.get() - LPI_BASE) as usize;
    match COUNTS.get(cpu).and_then(|c| c.get(idx)) {
        Some(c) => c.load(Ordering::Acquire).into(),
        None => u32::MAX,
    }
}

/// IRQs taken at EL2 since the last reset, all CPUs.
pub fn total_taken() -> u64 {
    TOTAL.load(Ordering::Acquire)
}

/// IRQs taken that are not a counted LPI, and the last such INTID.
pub fn others() -> (u64, u32) {
    (
        OTHER.load(Ordering::Acquire),
        LAST_OTHER.load(Ordering::Acquire),
    )
}

/// How long to keep IRQs unmasked after the expected ones arrived, to catch extras.
pub const SETTLE: Duration = Duration::from_millis(5);
/// How long to wait when checking that nothing arrives.
pub const QUIET: Duration = Duration::from_millis(20);

/// Unmasks IRQs on this CPU until `total_taken()` reaches `until` (or `timeout` passes),
/// then for [`SETTLE`] more, and masks them again. Returns `total_taken()`.
pub fn take_irqs(until: u64, timeout: Duration) -> u64 {
    common::sysreg::unmask_irqs();
    timer::poll_until(timeout, || total_taken() >= until);
    timer::delay(SETTLE);
    common::sysreg::mask_irqs();
    total_taken()
}

/// Unmasks IRQs for `d` and masks them again; returns how many IRQs were taken meanwhile.
pub fn irqs_during(d: Duration) -> u64 {
    let before = total_taken();
    common::sysreg::unmask_irqs();
    timer::delay(d);
    common::sysreg::mask_irqs();
    total_taken() - before
}

/// A CPU store of `event` to GITS_TRANSLATER (the MSI doorbell), as a device's MSI would be
/// (see [`gic_hw::GicHw::translater_write`]).
pub fn translater_write(event: u32) {
    gic_hw::get().translater_write(event);
}
