// SPDX-License-Identifier: MIT OR Apache-2.0
//! GICv4 doorbells: one doorbell LPI per vPE, doorbell-to-vPE lookup, waking a blocked vCPU.
//!
//! When a vLPI arrives for a vPE that is not resident on its redistributor, the ITS makes the
//! vPE's doorbell, an ordinary physical LPI, pending (Arm IHI 0069, "Doorbell interrupts"): the
//! hypervisor takes it and schedules the vCPU. Following the design of Linux's GICv4 support,
//! every vPE has exactly one doorbell, whatever number of vLPIs target it, so the doorbell is
//! a handle for the vPE.
//!
//! - [`Doorbells`] reserves a contiguous range of LPIs for all doorbells, hands out one block
//!   per VM ([`DoorbellBlock`], doorbell `i` for the VM's vPE `i`), and finds the vPE of a
//!   doorbell INTID in O(1) ([`Doorbells::vpe_of`]).
//! - Enabling and disabling a doorbell writes its property byte and invalidates it: with
//!   GICR_TYPER.DirectLPI through GICR_INVLPIR and GICR_SYNCR; otherwise (GICv4.0 without
//!   DirectLPI, QEMU included) through a *proxy device* of the ITS whose event `i` is mapped to
//!   doorbell `i`, so an INV of that event reaches the right redistributor.
//! - [`Doorbells::handle`] is the interrupt path: O(1) lookup, the doorbell disabled in the
//!   property table (lock-free) so it rings once per wake-up, and every [`Waiter`] of that vPE
//!   woken. Waiters live in an intrusive list: nothing is allocated in the interrupt path. The
//!   invalidation that makes the disable take effect on GICs that cache LPI configuration is
//!   issued later, outside the interrupt, by [`Doorbells::settle`].
//!
//! ```no_run
//! # use its_cmdq::{Its, Lpis};
//! # use its_core::mmio::ItsRegisters;
//! # use its_core::platform::Platform;
//! use doorbell::{DoorbellConfig, Doorbells, Waiter};
//! use its_core::ids::{DeviceId, VpeId};
//!
//! # fn f<R: ItsRegisters, P: Platform + Clone>(its: &Its<R, P>, lpis: &Lpis<P>) -> Result<(), doorbell::DoorbellError> {
//! static WAITER: Waiter = Waiter::new(VpeId::new(0));
//! let waiter = &WAITER;
//! let dbs = Doorbells::new(its, lpis, DoorbellConfig::proxy(DeviceId::new(0xffff), 64))?;
//! let block = dbs.alloc_block(&[(VpeId::new(0), 0)])?;
//! dbs.wait_on(&waiter);
//! // ... in the IRQ handler, for an LPI taken at EL2:
//! let intid = block.lpi(0).map(|l| l.get()).unwrap_or(0);
//! if let Some(vpe) = dbs.handle(intid) {
//!     assert!(waiter.is_woken());
//! }
//! # Ok(()) }
//! ```
#![no_std]
#![allow(
    clippy::result_large_err,
    clippy::large_enum_variant,
    reason = "ItsError carries a command trace by value"
)]

#[cfg(test)]
extern crate std;

use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use intrusive_collections::{LinkedList, LinkedListAtomicLink, intrusive_adapter};
use its_cmdq::{Device, Its, ItsError, LpiRange, Lpis, SyncTarget};
use its_core::cmd::Command;
use its_core::ids::{DeviceId, EventId, Lpi, VpeId};
use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_core::platform::{DmaBuf, Platform, poll_until};
use its_core::regs::{GicrInvlpir, GicrLpir};
use spin::Mutex;

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DoorbellError {
    /// The ITS or LPI layer failed.
    #[error(transparent)]
    Its(#[from] ItsError),
    /// No free run of doorbells long enough.
    #[error("no {0} contiguous doorbells free")]
    Exhausted(u32),
    /// The LPI is not one of these doorbells, or not allocated.
    #[error("LPI {0} is not an allocated doorbell")]
    NotADoorbell(u32),
    /// DirectLPI mode needs the target redistributor's registers for an invalidation.
    #[error("DirectLPI invalidation needs the target redistributor")]
    NeedRedistributor,
    /// Doorbells are still allocated to VMs (shut-down needs every block freed).
    #[error("{0} doorbells still allocated")]
    InUse(u32),
    /// GICR_SYNCR stayed busy.
    #[error("GICR_SYNCR busy after {waited_ns} ns")]
    SyncTimeout {
        /// How long it waited.
        waited_ns: u64,
    },
}

/// How doorbells are invalidated, and how many there can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoorbellConfig {
    /// Doorbells in total (the LPI range reserved, and the proxy device's events).
    pub capacity: u32,
    /// `Some(id)`: invalidate through a proxy device with this DeviceID (GICv4.0 without
    /// DirectLPI; Linux uses the last DeviceID). `None`: GICR_INVLPIR (DirectLPI).
    pub proxy: Option<DeviceId>,
    /// Priority of every doorbell LPI.
    pub priority: u8,
    /// How long to wait for GICR_SYNCR.
    pub sync_timeout: Duration,
}

impl DoorbellConfig {
    /// Proxy-device invalidation (required on QEMU: no DirectLPI).
    pub fn proxy(device: DeviceId, capacity: u32) -> Self {
        Self {
            capacity,
            proxy: Some(device),
            priority: 0x80,
            sync_timeout: Duration::from_secs(1),
        }
    }

    /// GICR_INVLPIR invalidation (GICR_TYPER.DirectLPI = 1).
    pub fn direct(capacity: u32) -> Self {
        Self {
            capacity,
            proxy: None,
            priority: 0x80,
            sync_timeout: Duration::from_secs(1),
        }
    }
}

/// A vCPU waiting for its vPE's doorbell: link it with [`Doorbells::wait_on`]; the doorbell
/// interrupt unlinks it and sets [`Waiter::is_woken`]. Waiters are per-vCPU objects that live
/// as long as the hypervisor (`&'static`: a `static`, or leaked at vCPU creation), so the
/// interrupt path never touches freed memory.
#[derive(Debug)]
pub struct Waiter {
    link: LinkedListAtomicLink,
    vpe: VpeId,
    woken: AtomicBool,
}

intrusive_adapter!(WaiterAdapter = &'static Waiter: Waiter { link => LinkedListAtomicLink });

impl Waiter {
    /// A waiter for `vpe`.
    pub const fn new(vpe: VpeId) -> Self {
        Self {
            link: LinkedListAtomicLink::new(),
            vpe,
            woken: AtomicBool::new(false),
        }
    }

    /// The vPE it waits for.
    pub fn vpe(&self) -> VpeId {
        self.vpe
    }

    /// Whether a doorbell woke it since it was linked.
    pub fn is_woken(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }

    /// Whether it is linked (waiting).
    pub fn is_waiting(&self) -> bool {
        self.link.is_linked()
    }
}

/// The doorbells of one VM: doorbell `i` belongs to the VM's vPE `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoorbellBlock {
    first: u32,
    count: u32,
    base: Lpi,
}

impl DoorbellBlock {
    /// Doorbells in the block.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether the block is empty (never: blocks have at least one doorbell).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Doorbell `i`'s LPI.
    pub fn lpi(&self, i: u32) -> Option<Lpi> {
        (i < self.count)
            .then(|| Lpi::new(self.base.get() + i).ok())
            .flatten()
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DoorbellStats {
    /// Doorbell interrupts handled for a known vPE.
    pub rings: u64,
    /// Doorbell interrupts for a doorbell that was already disabled (rang again before the
    /// disable took effect).
    pub late: u64,
    /// Waiters woken.
    pub woken: u64,
}

// Per-doorbell state word: [15:0] vPE ID + 1 (0 = free), bit 16 enabled in the property
// table, bit 17 disabled by the interrupt path but not yet invalidated, [47:32] target CPU.
const ENABLED: u64 = 1 << 16;
const NEEDS_INV: u64 = 1 << 17;

/// All doorbells of the system, on one ITS.
pub struct Doorbells<'a, R: ItsRegisters, P: Platform> {
    its: &'a Its<R, P>,
    lpis: &'a Lpis<P>,
    range: LpiRange,
    state: DmaBuf<P>,
    used: Mutex<()>,
    proxy: Option<Mutex<Device<P>>>,
    waiters: Mutex<LinkedList<WaiterAdapter>>,
    cfg: DoorbellConfig,
    rings: AtomicU64,
    late: AtomicU64,
    woken: AtomicU64,
}

impl<'a, R: ItsRegisters, P: Platform + Clone> Doorbells<'a, R, P> {
    /// Reserves `cfg.capacity` LPIs for doorbells (all disabled) and, in proxy mode, maps the
    /// proxy device with that many events.
    ///
    /// # Errors
    /// LPI or ITS errors ([`ItsError::Exhausted`], [`ItsError::DeviceMapped`], ...).
    pub fn new(
        its: &'a Its<R, P>,
        lpis: &'a Lpis<P>,
        cfg: DoorbellConfig,
    ) -> Result<Self, DoorbellError> {
        let range = lpis.alloc(cfg.capacity)?;
        let undo = |e: DoorbellError| {
            let _ = lpis.free(range);
            e
        };
        let layout = Layout::from_size_align(cfg.capacity as usize * 8, 8)
            .map_err(|_| ItsError::Config("layout"))?;
        let state =
            DmaBuf::new(lpis_platform(its), layout).map_err(|e| undo(ItsError::from(e).into()))?;
        let proxy = match cfg.proxy {
            Some(id) => Some(Mutex::new(
                its.map_device(id, cfg.capacity)
                    .map_err(|e| undo(e.into()))?,
            )),
            None => None,
        };
        for l in range.iter() {
            lpis.configure(l, cfg.priority, false)?;
        }
        Ok(Self {
            its,
            lpis,
            range,
            state,
            used: Mutex::new(()),
            proxy,
            waiters: Mutex::new(LinkedList::new(WaiterAdapter::new())),
            cfg,
            rings: AtomicU64::new(0),
            late: AtomicU64::new(0),
            woken: AtomicU64::new(0),
        })
    }

    /// Allocates one doorbell per vPE, contiguous, each disabled and (in proxy mode) mapped
    /// through the proxy device to the vPE's CPU. `vpes[i]` = (vPE, the CPU its VTE targets).
    ///
    /// # Errors
    /// [`DoorbellError::Exhausted`], ITS errors (nothing is left allocated).
    pub fn alloc_block(&self, vpes: &[(VpeId, usize)]) -> Result<DoorbellBlock, DoorbellError> {
        let count = vpes.len() as u32;
        if count == 0 {
            return Err(DoorbellError::Exhausted(0));
        }
        for &(_, cpu) in vpes {
            self.its.cpu(cpu)?;
        }
        let _g = self.used.lock();
        let cap = self.range.count;
        let mut first = 0;
        let found = loop {
            if first + count > cap {
                break None;
            }
            match (first..first + count).find(|&i| self.word(i) & 0xffff != 0) {
                Some(busy) => first = busy + 1,
                None => break Some(first),
            }
        };
        let first = found.ok_or(DoorbellError::Exhausted(count))?;
        for (k, &(vpe, cpu)) in vpes.iter().enumerate() {
            self.set_word(
                first + k as u32,
                (u64::from(vpe.get()) + 1) | ((cpu as u64) << 32),
            )?;
        }
        let block = DoorbellBlock {
            first,
            count,
            base: self.lpi_at(first)?,
        };
        if let Some(proxy) = &self.proxy {
            let mut dev = proxy.lock();
            let mut items: heapless::Vec<(u32, Lpi, usize), 64> = heapless::Vec::new();
            let mut result = Ok(());
            for (k, &(_, cpu)) in vpes.iter().enumerate() {
                let i = first + k as u32;
                let _ = items.push((i, self.lpi_at(i)?, cpu));
                if items.is_full() || k + 1 == vpes.len() {
                    result = self.its.map_events(&mut dev, &items);
                    items.clear();
                    if result.is_err() {
                        break;
                    }
                }
            }
            if let Err(e) = result {
                // Undo: unmap what was mapped, free the words.
                for k in 0..count {
                    let i = first + k;
                    if dev.event(i).is_ok_and(|s| s.is_mapped()) {
                        let _ = self.its.unmap_event(&mut dev, i);
                    }
                    let _ = self.set_word(i, 0);
                }
                return Err(e.into());
            }
        }
        Ok(block)
    }

    /// Frees a block: its doorbells are unmapped from the proxy device, then disabled.
    ///
    /// # Errors
    /// [`DoorbellError::NotADoorbell`] for a block already freed (nothing done); ITS errors:
    /// the block is then still allocated and whole (the doorbells this call unmapped are
    /// mapped again), unless the ITS died.
    pub fn free_block(&self, block: DoorbellBlock) -> Result<(), DoorbellError> {
        let _g = self.used.lock();
        let end = block.first + block.count;
        if let Some(i) = (block.first..end).find(|&i| self.word(i) & 0xffff == 0) {
            return Err(DoorbellError::NotADoorbell(self.range.base.get() + i));
        }
        if let Some(proxy) = &self.proxy {
            let mut dev = proxy.lock();
            for i in block.first..end {
                if !dev.event(i)?.is_mapped() {
                    continue;
                }
                if let Err(e) = self.its.unmap_event(&mut dev, i) {
                    self.remap(&mut dev, block.first..i);
                    return Err(e.into());
                }
            }
        }
        for i in block.first..end {
            self.lpis
                .configure(self.lpi_at(i)?, self.cfg.priority, false)?;
            self.set_word(i, 0)?;
        }
        Ok(())
    }

    /// Maps the unmapped proxy events of `range` back to their doorbells' CPUs (best effort:
    /// the records show what the ITS did).
    fn remap(&self, dev: &mut Device<P>, range: core::ops::Range<u32>) {
        let mut items: heapless::Vec<(u32, Lpi, usize), 64> = heapless::Vec::new();
        for i in range.clone() {
            if dev.event(i).is_ok_and(|s| !s.is_mapped())
                && let Ok(lpi) = self.lpi_at(i)
            {
                let _ = items.push((i, lpi, (self.word(i) >> 32) as usize));
            }
            if items.is_full() || (i + 1 == range.end && !items.is_empty()) {
                let _ = self.its.map_events(dev, &items);
                items.clear();
            }
        }
    }

    /// Moves a doorbell to another CPU (after the vPE moved with VMOVP, the ITS rings the
    /// doorbell on the new CPU's redistributor; the proxy event must follow for INV to reach
    /// it).
    ///
    /// # Errors
    /// [`DoorbellError::NotADoorbell`], ITS errors.
    pub fn move_to(&self, doorbell: Lpi, cpu: usize) -> Result<(), DoorbellError> {
        let i = self.index(doorbell)?;
        let w = self.word(i);
        if (w >> 32) as usize == cpu {
            return Ok(());
        }
        self.its.cpu(cpu)?;
        if let Some(proxy) = &self.proxy {
            self.its.move_event(&mut proxy.lock(), i, cpu)?;
        }
        // Only the CPU half: the flags half may be changed at the same time by `handle`.
        self.state
            .store_u32(i as usize * 8 + 4, cpu as u32)
            .map_err(ItsError::from)?;
        Ok(())
    }

    /// Enables or disables a doorbell: property byte, then invalidation (proxy INV + SYNC, or
    /// GICR_INVLPIR + GICR_SYNCR on `rd`, the target CPU's redistributor, in DirectLPI mode).
    ///
    /// # Errors
    /// [`DoorbellError::NotADoorbell`], [`DoorbellError::NeedRedistributor`] (nothing
    /// written), [`DoorbellError::SyncTimeout`] and ITS errors: the property byte is then put
    /// back as it was, and the next [`Doorbells::settle`] invalidates it again.
    pub fn set_enabled(
        &self,
        doorbell: Lpi,
        enabled: bool,
        rd: Option<&mut dyn RedistRegisters>,
    ) -> Result<(), DoorbellError> {
        let i = self.index(doorbell)?;
        if self.proxy.is_none() && rd.is_none() {
            return Err(DoorbellError::NeedRedistributor);
        }
        let was = self.word(i) & ENABLED != 0;
        self.lpis.configure(doorbell, self.cfg.priority, enabled)?;
        if let Err(e) = self.invalidate(i, doorbell, rd) {
            // Put the property byte back so it agrees with the records and the same call can
            // be made again; the redistributor may have read the new one, so the next settle
            // invalidates again.
            self.lpis.configure(doorbell, self.cfg.priority, was)?;
            self.update_flags(i, |w| w | NEEDS_INV)?;
            return Err(e);
        }
        self.update_flags(i, |w| {
            let w = w & !(ENABLED | NEEDS_INV);
            if enabled { w | ENABLED } else { w }
        })?;
        Ok(())
    }

    fn invalidate(
        &self,
        i: u32,
        doorbell: Lpi,
        rd: Option<&mut dyn RedistRegisters>,
    ) -> Result<(), DoorbellError> {
        match (&self.proxy, rd) {
            (Some(proxy), _) => self.its.inv_event(&proxy.lock(), i)?,
            (None, Some(rd)) => {
                rd.set_invlpir(GicrInvlpir::new().with_intid(doorbell.get()));
                self.wait_syncr(rd)?;
            }
            (None, None) => return Err(DoorbellError::NeedRedistributor),
        }
        Ok(())
    }

    /// Clears a doorbell's pending state (proxy CLEAR + SYNC, or GICR_CLRLPIR + GICR_SYNCR on
    /// `rd`, the target CPU's redistributor, in DirectLPI mode).
    ///
    /// On GICv4.0 the ITS makes a doorbell pending for every vLPI that finds its vPE away,
    /// also while the doorbell is disabled (after [`Doorbells::handle`] disabled it, a second
    /// vLPI before the vPE is back): that pending state would fire at the next enable, a
    /// wake-up with nothing to take. Call it once the vPE is resident again (the GICv4 layer
    /// does, in `make_resident`): any vLPI it stood for is in the VPT and is delivered by the
    /// residency. Not needed on GICv4.1, where the redistributor owns the doorbell.
    ///
    /// # Errors
    /// [`DoorbellError::NotADoorbell`], [`DoorbellError::NeedRedistributor`],
    /// [`DoorbellError::SyncTimeout`], ITS errors.
    pub fn clear_pending(
        &self,
        doorbell: Lpi,
        rd: Option<&mut dyn RedistRegisters>,
    ) -> Result<(), DoorbellError> {
        let i = self.index(doorbell)?;
        match (&self.proxy, rd) {
            (Some(proxy), _) => self.its.clear_event(&proxy.lock(), i)?,
            (None, Some(rd)) => {
                rd.set_clrlpir(GicrLpir::new().with_intid(doorbell.get()));
                self.wait_syncr(rd)?;
            }
            (None, None) => return Err(DoorbellError::NeedRedistributor),
        }
        Ok(())
    }

    fn wait_syncr(&self, rd: &mut dyn RedistRegisters) -> Result<(), DoorbellError> {
        poll_until(&lpis_platform(self.its), self.cfg.sync_timeout, || {
            !rd.syncr().busy()
        })
        .map_err(|t| DoorbellError::SyncTimeout {
            waited_ns: t.waited_ns,
        })
    }

    /// Shuts the doorbells down: unmaps the proxy device and frees the reserved LPI range.
    /// Every block must have been freed ([`Doorbells::free_block`]) and no doorbell may ring
    /// any more.
    ///
    /// # Errors
    /// The doorbells handed back with [`DoorbellError::InUse`] (nothing done) or the ITS error
    /// that stopped the proxy's unmap (the doorbells stay usable).
    pub fn shutdown(self) -> Result<(), (Self, DoorbellError)> {
        let used = (0..self.range.count)
            .filter(|&i| self.word(i) & 0xffff != 0)
            .count() as u32;
        if used != 0 {
            return Err((self, DoorbellError::InUse(used)));
        }
        let mut this = self;
        if let Some(proxy) = this.proxy.take()
            && let Err(e) = this.its.unmap_device(proxy.into_inner())
        {
            this.proxy = Some(Mutex::new(e.device));
            return Err((this, e.error.into()));
        }
        // The doorbells are disabled in the property table (free_block) and no longer mapped:
        // the range can go back to the allocator.
        if let Err(e) = this.lpis.free(this.range) {
            return Err((this, e.into()));
        }
        Ok(())
    }

    /// What the GICv4 layer does when a vPE becomes resident: [`Doorbells::settle`], and with
    /// `clear` also [`Doorbells::clear_pending`], in one go: in proxy mode a single batch (INV
    /// and/or CLEAR, then one SYNC: one GITS_CWRITER write), with DirectLPI GICR_INVLPIR and/or
    /// GICR_CLRLPIR, then one GICR_SYNCR wait. Nothing at all when neither is needed.
    ///
    /// # Errors
    /// As [`Doorbells::set_enabled`] and [`Doorbells::clear_pending`].
    pub fn settle_and_clear(
        &self,
        doorbell: Lpi,
        clear: bool,
        rd: Option<&mut dyn RedistRegisters>,
    ) -> Result<(), DoorbellError> {
        let i = self.index(doorbell)?;
        let inv = self.word(i) & NEEDS_INV != 0;
        if !inv && !clear {
            return Ok(());
        }
        match (&self.proxy, rd) {
            (Some(proxy), _) => {
                let dev = proxy.lock();
                let cpu = match dev.event(i)?.phys {
                    Some(p) => usize::from(p.cpu),
                    None => {
                        return Err(ItsError::EventNotMapped {
                            device: dev.id().get(),
                            event: i,
                        }
                        .into());
                    }
                };
                let rdbase = self.its.cpu(cpu)?.rdbase;
                let device = dev.id();
                let event = EventId::new(i);
                let mut cmds: heapless::Vec<Command, 2> = heapless::Vec::new();
                if inv {
                    let _ = cmds.push(Command::Inv { device, event });
                }
                if clear {
                    let _ = cmds.push(Command::Clear { device, event });
                }
                let out =
                    self.its
                        .execute(cmds.len(), |k| cmds[k], &[SyncTarget::Redist(rdbase)])?;
                if let Some(e) = out.error() {
                    return Err(e.into());
                }
            }
            (None, Some(rd)) => {
                if inv {
                    rd.set_invlpir(GicrInvlpir::new().with_intid(doorbell.get()));
                }
                if clear {
                    rd.set_clrlpir(GicrLpir::new().with_intid(doorbell.get()));
                }
                self.wait_syncr(rd)?;
            }
            (None, None) => return Err(DoorbellError::NeedRedistributor),
        }
        if inv {
            self.update_flags(i, |w| w & !NEEDS_INV)?;
        }
        Ok(())
    }

    /// Issues the invalidation the interrupt path deferred, if any, so a doorbell disabled by
    /// [`Doorbells::handle`] stays silent on GICs that cache LPI configuration. Call it
    /// outside interrupt context, before making the vPE resident.
    ///
    /// # Errors
    /// As [`Doorbells::set_enabled`].
    pub fn settle(
        &self,
        doorbell: Lpi,
        rd: Option<&mut dyn RedistRegisters>,
    ) -> Result<(), DoorbellError> {
        let i = self.index(doorbell)?;
        if self.word(i) & NEEDS_INV != 0 {
            self.invalidate(i, doorbell, rd)?;
            self.update_flags(i, |w| w & !NEEDS_INV)?;
        }
        Ok(())
    }
}

impl<R: ItsRegisters, P: Platform> core::fmt::Debug for Doorbells<'_, R, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Doorbells")
            .field("range", &self.range)
            .field("cfg", &self.cfg)
            .field("rings", &self.rings.load(Ordering::Relaxed))
            .field("late", &self.late.load(Ordering::Relaxed))
            .field("woken", &self.woken.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn lpis_platform<R: ItsRegisters, P: Platform + Clone>(its: &Its<R, P>) -> P {
    its.platform().clone()
}

impl<'a, R: ItsRegisters, P: Platform> Doorbells<'a, R, P> {
    fn word(&self, i: u32) -> u64 {
        let off = i as usize * 8;
        let lo = self.state.load_u32(off).unwrap_or(0);
        let hi = self.state.load_u32(off + 4).unwrap_or(0);
        u64::from(lo) | u64::from(hi) << 32
    }

    fn set_word(&self, i: u32, w: u64) -> Result<(), ItsError> {
        let off = i as usize * 8;
        self.state.store_u32(off + 4, (w >> 32) as u32)?;
        self.state.store_u32(off, w as u32)?;
        Ok(())
    }

    /// Atomically updates the flags half of doorbell `i`'s state word (vPE, ENABLED,
    /// NEEDS_INV) and returns its old value; the CPU half is left alone.
    fn update_flags(&self, i: u32, f: impl Fn(u64) -> u64) -> Result<u32, ItsError> {
        Ok(self
            .state
            .update_u32(i as usize * 8, |w| f(u64::from(w)) as u32)?)
    }

    fn lpi_at(&self, i: u32) -> Result<Lpi, ItsError> {
        self.range
            .get(i)
            .ok_or(ItsError::BadLpi(self.range.base.get() + i))
    }

    fn index(&self, doorbell: Lpi) -> Result<u32, DoorbellError> {
        let i = doorbell.get().wrapping_sub(self.range.base.get());
        if i < self.range.count && self.word(i) & 0xffff != 0 {
            Ok(i)
        } else {
            Err(DoorbellError::NotADoorbell(doorbell.get()))
        }
    }

    /// The vPE whose doorbell `intid` is, in O(1).
    pub fn vpe_of(&self, intid: u32) -> Option<VpeId> {
        let i = intid.wrapping_sub(self.range.base.get());
        if i >= self.range.count {
            return None;
        }
        match self.word(i) & 0xffff {
            0 => None,
            v => Some(VpeId::new((v - 1) as u16)),
        }
    }

    /// The CPU whose redistributor doorbell `doorbell` targets (set by
    /// [`Doorbells::alloc_block`] and [`Doorbells::move_to`]), or `None` if it is not an
    /// allocated doorbell.
    pub fn target_cpu(&self, doorbell: Lpi) -> Option<usize> {
        let i = self.index(doorbell).ok()?;
        Some((self.word(i) >> 32) as usize)
    }

    /// Whether `intid` is one of these doorbells (allocated or not).
    pub fn is_doorbell(&self, intid: u32) -> bool {
        intid.wrapping_sub(self.range.base.get()) < self.range.count
    }

    /// Whether the doorbell is currently enabled.
    pub fn is_enabled(&self, doorbell: Lpi) -> bool {
        let i = doorbell.get().wrapping_sub(self.range.base.get());
        i < self.range.count && self.word(i) & ENABLED != 0
    }

    /// The interrupt path, for an LPI the hypervisor took: if it is a doorbell, disables it in
    /// the property table (no lock, no command), wakes every waiter of its vPE, and returns
    /// the vPE. The invalidation is left to [`Doorbells::settle`].
    pub fn handle(&self, intid: u32) -> Option<VpeId> {
        let vpe = self.vpe_of(intid)?;
        let i = intid.wrapping_sub(self.range.base.get());
        // Test and clear ENABLED in one atomic step: a concurrent `move_to` or `settle` on
        // another CPU updates the same word and neither update may be lost.
        let was = self
            .update_flags(i, |w| {
                if w & ENABLED != 0 {
                    (w & !ENABLED) | NEEDS_INV
                } else {
                    w
                }
            })
            .unwrap_or(0);
        if u64::from(was) & ENABLED != 0 {
            if let Ok(l) = Lpi::new(intid) {
                let _ = self.lpis.configure(l, self.cfg.priority, false);
            }
            self.rings.fetch_add(1, Ordering::Relaxed);
        } else {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        let mut list = self.waiters.lock();
        let mut c = list.front_mut();
        while let Some(w) = c.get() {
            if w.vpe == vpe {
                if let Some(w) = c.remove() {
                    w.woken.store(true, Ordering::Release);
                    self.woken.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                c.move_next();
            }
        }
        Some(vpe)
    }

    /// Links a waiter: the next doorbell of its vPE wakes it. Relinking a woken waiter resets
    /// it. Call with interrupts masked on this CPU (the list's lock is also taken by
    /// [`Doorbells::handle`]).
    pub fn wait_on(&self, w: &'static Waiter) {
        let mut list = self.waiters.lock();
        w.woken.store(false, Ordering::Release);
        if !w.link.is_linked() {
            list.push_back(w);
        }
    }

    /// Unlinks a waiter that was not woken (a vCPU that woke for another reason).
    pub fn cancel(&self, w: &'static Waiter) {
        let mut list = self.waiters.lock();
        let mut c = list.front_mut();
        while let Some(x) = c.get() {
            if core::ptr::eq(x, w) {
                c.remove();
                return;
            }
            c.move_next();
        }
    }

    /// The counters.
    pub fn stats(&self) -> DoorbellStats {
        DoorbellStats {
            rings: self.rings.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            woken: self.woken.load(Ordering::Relaxed),
        }
    }

    /// The LPI range reserved for doorbells.
    pub fn range(&self) -> LpiRange {
        self.range
    }

    /// Whether invalidation goes through the proxy device.
    pub fn uses_proxy(&self) -> bool {
        self.proxy.is_some()
    }
}
