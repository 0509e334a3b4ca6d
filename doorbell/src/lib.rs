// SPDX-License-Identifier: MIT OR Apache-2.0
//! GICv4 doorbells: one doorbell LPI per vPE, doorbell-to-vPE lookup, waking a blocked vCPU.
//!
//! When a vLPI arrives for a vPE that is not resident on its redistributor, the GIC makes the
//! vPE's doorbell, an ordinary physical LPI, pending (Arm IHI 0069, "Doorbell interrupts"): the
//! hypervisor takes it and schedules the vCPU. As in Linux's GICv4 support, every vPE has
//! exactly one doorbell, whatever number of vLPIs target it, so the doorbell stands for the vPE.
//!
//! - [`Doorbells`] reserves a contiguous range of LPIs for all doorbells, hands out one block
//!   per VM ([`DoorbellBlock`], doorbell `i` for the VM's vPE `i`), and finds the vPE of a
//!   doorbell INTID in O(1) ([`Doorbells::vpe_of`]).
//! - Enabling and disabling a doorbell writes its property byte and invalidates it: on
//!   GICv4.1 with INVDB for the vPE (every redistributor may cache a vPE's default doorbell);
//!   on GICv4.0 with GICR_TYPER.DirectLPI through GICR_INVLPIR and GICR_SYNCR; otherwise
//!   (GICv4.0 without DirectLPI, QEMU included) through a *proxy device* of the ITS whose
//!   event `i` is mapped to doorbell `i`, so an INV of that event reaches the right
//!   redistributor.
//! - [`Doorbells::handle`] is the interrupt path: O(1) and lock-free (two atomic updates,
//!   retried only while another CPU changes the same word; it never waits for one). It disables
//!   the doorbell in the property table, so it rings once per wake-up, and wakes the vPE's
//!   [`Waiter`]s. The invalidation that makes the disable take effect on GICs that cache LPI
//!   configuration is issued later, outside the interrupt, by [`Doorbells::settle`].
//!
//! # Where to start
//!
//! With the GICv4 layer, `vpe-sched` makes every call here but two: your EL2 interrupt
//! handler gives each LPI it acknowledges to [`Doorbells::handle`], and a vCPU that blocks
//! sleeps on its [`Waiter`]. Without it, the calls are: [`Doorbells::new`] once, after the
//! ITS and LPIs are up; [`Doorbells::alloc_block`] per VM; per vCPU a [`Waiter`],
//! [`Doorbells::attach`], then around each block [`Doorbells::arm`],
//! [`Doorbells::set_enabled`] and [`Doorbells::is_woken`]. The embedding guide's section on
//! the doorbell interrupt ([`vpe_sched::guide::embedding`][guide]) shows the hypervisor's
//! side.
//!
//! This runs on the host against `its-model` (a dev-dependency), as QEMU's GICv4.0 (no
//! DirectLPI, so a proxy device invalidates the doorbells):
//!
//! ```
//! # use core::time::Duration;
//! use doorbell::{DoorbellConfig, DoorbellError, Doorbells, Waiter};
//! use its_core::ids::{DeviceId, VpeId};
//! # use its_cmdq::{Its, ItsConfig, Lpis, RedistInfo};
//! # use its_core::addr::PhysAddr;
//! # use its_core::caps::DistCaps;
//! # use its_core::mmio::RedistRegisters;
//! # use its_core::regs::GicdTyper;
//! use its_model::{FakePlatform, GicModel, ModelConfig};
//!
//! /// The hypervisor's vCPU: the waiter lives in it.
//! struct Vcpu {
//!     waiter: Waiter,
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let plat = FakePlatform::new();
//! let model = GicModel::new(ModelConfig::qemu(1), plat.clone());
//! // `its` and `lpis`: the ITS and LPIs brought up by its-cmdq, as on its front page.
//! # let cfg = model.config();
//! # let bits = cfg.dist_id_bits - 1;
//! # let typer = GicdTyper::new().with_lpis(true).with_dvis(true).with_id_bits(bits);
//! # let dist = DistCaps::from_typer(typer, None);
//! # let lpis = Lpis::new(&dist, plat.clone())?;
//! # let _pending = lpis.init_redistributor(&mut model.redist(0), Duration::from_secs(1))?;
//! # let rd_base = PhysAddr::new(cfg.rd_base(0));
//! # let rd = [RedistInfo { rd_base, typer: model.redist(0).typer() }];
//! # let its = Its::new(model.its(0), plat.clone(), &rd, ItsConfig::new(dist))?;
//!
//! // Bring-up, once (QEMU: no DirectLPI, so a proxy device with the last DeviceID).
//! let db_cfg = DoorbellConfig::proxy(DeviceId::new(0xffff), 64);
//! let dbs = Doorbells::new(&its, &lpis, db_cfg)?;
//! // A VM of one vPE on CPU 0 (the GICv4 layer's `create_vm` does this).
//! let block = dbs.alloc_block(&[(VpeId::new(0), 0)])?;
//! let db = block.lpi(0).ok_or(DoorbellError::Exhausted(1))?;
//! // The vCPU is created after the VM: its waiter is attached then.
//! let vcpu = Vcpu { waiter: Waiter::new() };
//! dbs.attach(&vcpu.waiter, db)?;
//! // The vCPU blocks (WFI): arm its waiter, then enable the doorbell (the GICv4 layer's
//! // `make_non_resident(.., true)`), then sleep until `is_woken`.
//! dbs.arm(&vcpu.waiter)?;
//! dbs.set_enabled(db, true, None)?;
//! assert!(!dbs.is_woken(&vcpu.waiter));
//! // A vLPI for the vPE finds it away: the ITS rings the doorbell, a physical LPI.
//! model.set_lpi_pending(0, db.get());
//! // The EL2 interrupt handler, on whichever CPU took it, acknowledges it (ICC_IAR1_EL1)
//! // and hands it over: the doorbell is disabled, the vPE's waiters are woken.
//! let intid = model.take_lpi(0).ok_or("no LPI")?;
//! assert_eq!(dbs.handle(intid), Some(VpeId::new(0)));
//! assert!(dbs.is_woken(&vcpu.waiter));
//! // Back in process context, before the vPE runs again (`make_resident`).
//! dbs.settle_and_clear(db, true, None)?;
//! // Teardown (`destroy_vm`), then shut down: `&self`, so the doorbells may be a static.
//! dbs.free_block(block)?;
//! dbs.shutdown()?;
//! model.assert_no_errors();
//! # Ok(())
//! # }
//! ```
//!
//! # What the hypervisor provides
//! - The ITS and the LPI property table, brought up by `its-cmdq` ([`Its`], [`Lpis`]) on
//!   its `Platform` (DMA memory, cache maintenance, a clock).
//! - With DirectLPI on GICv4.0: the target CPU's redistributor registers for the calls that
//!   take an `rd`, and every redistributor through [`Redistributors`]
//!   ([`Doorbells::with_redistributors`]), for [`Doorbells::move_to`] to clear a doorbell left
//!   pending on the CPU the vPE leaves.
//! - An interrupt hook that passes every LPI it takes at EL2 to [`Doorbells::handle`].
//! - One [`Waiter`] per vCPU, anywhere (in the vCPU's own structure): attached once the vPE
//!   has its doorbell ([`Doorbells::attach`]), armed before each block.
//!
//! # Interrupt context
//! [`Doorbells::handle`], the lookups ([`Doorbells::vpe_of`], [`Doorbells::is_doorbell`],
//! [`Doorbells::is_enabled`], [`Doorbells::target_cpu`], [`Doorbells::stats`]) and the waiter
//! calls ([`Doorbells::attach`], [`Doorbells::arm`], [`Doorbells::is_woken`],
//! [`Waiter::detach`]) take no lock and never wait: call them from any context, including an
//! interrupt that preempted any other doorbell call on the same CPU.
//!
//! Every other call ([`Doorbells::new`], [`Doorbells::alloc_block`],
//! [`Doorbells::free_block`], [`Doorbells::set_enabled`], [`Doorbells::settle`],
//! [`Doorbells::settle_and_clear`], [`Doorbells::clear_pending`], [`Doorbells::move_to`],
//! [`Doorbells::shutdown`]) runs in process context only: it takes spinlocks (the doorbells'
//! allocation lock, the proxy device, the ITS command queue) and waits for the GIC. None of
//! those locks is taken by the interrupt path, so a doorbell taken on a CPU that holds one of
//! them, the queue lock included, is handled at once and cannot deadlock; the call that was
//! interrupted notices the disable when it commits. These calls need IRQs masked only if the
//! hypervisor's own interrupt handlers take the same locks (for instance by issuing ITS
//! commands), which `its-cmdq`'s rules cover.
//!
//! # Calls for one doorbell
//! [`Doorbells::set_enabled`], [`Doorbells::settle`], [`Doorbells::settle_and_clear`],
//! [`Doorbells::clear_pending`] and [`Doorbells::move_to`] for one doorbell must not overlap
//! (the GICv4 layer makes them under the vPE's lock); each may overlap
//! [`Doorbells::handle`] of that doorbell on any CPU. The state protocol that makes that
//! safe, and the argument for it, are in `src/protocol.rs`; `tests/loom.rs` model-checks it.
//!
//! [guide]: https://docs.rs/vpe-sched/latest/vpe_sched/guide/embedding/index.html
#![no_std]
#![allow(
    clippy::result_large_err,
    clippy::large_enum_variant,
    reason = "ItsError carries a command trace by value"
)]

#[cfg(test)]
extern crate std;

#[cfg(loom)]
pub mod protocol;
#[cfg(not(loom))]
mod protocol;

use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use its_cmdq::{Device, Its, ItsError, LpiRange, Lpis, SyncTarget};
use its_core::cmd::{Command, ItsVersion};
use its_core::ids::{DeviceId, EventId, Lpi, VpeId};
use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_core::platform::{DmaAlloc, DmaBuf, Platform, poll_until};
use its_core::regs::{GicrInvlpir, GicrLpir};
use protocol::{ENABLED, NEEDS_INV, VPE_MASK, Word};
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
    /// DirectLPI mode needs a redistributor's registers: the target CPU's, passed to the
    /// call, or for [`Doorbells::move_to`] every redistributor
    /// ([`Doorbells::with_redistributors`]).
    #[error("DirectLPI needs the redistributor's registers")]
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
    /// The doorbells were shut down ([`Doorbells::shutdown`]).
    #[error("the doorbells are shut down")]
    ShutDown,
    /// The waiter is not attached, or its doorbell was freed since ([`Doorbells::attach`]).
    #[error("the waiter is not attached to a live doorbell")]
    Detached,
}

/// How doorbells are invalidated, and how many there can be.
///
/// On a GICv4.1 ITS the invalidation is always INVDB for the vPE, whatever this says: the
/// proxy device or the redistributor are then used only to clear a doorbell's pending state.
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

/// Every CPU's redistributor registers, for DirectLPI doorbells: [`Doorbells::move_to`]
/// clears a doorbell left pending on the redistributor of the CPU the vPE leaves
/// (GICR_CLRLPIR, then GICR_SYNCR), as Linux does.
///
/// It is only ever asked for the CPU the doorbell leaves, never for the caller's own: an
/// implementation that locks each redistributor while `f` runs cannot deadlock against a
/// caller holding its own.
pub trait Redistributors: Sync {
    /// Runs `f` on CPU `cpu`'s redistributor registers; `false` if there is no such CPU.
    fn with_redist(&self, cpu: usize, f: &mut dyn FnMut(&mut dyn RedistRegisters)) -> bool;
}

/// A vCPU's hold on its vPE's doorbell: woken when the doorbell rings after it was armed.
///
/// A plain value, kept anywhere (in the hypervisor's vCPU structure, moved, dropped at any
/// time): it only records which doorbell it follows and the doorbell's ring count when it was
/// armed. [`Doorbells::handle`] never reads or writes a waiter; it counts the ring in the
/// doorbells' own memory, and [`Doorbells::is_woken`] compares. So no waiter has to outlive
/// anything, and no detach has to be synchronised with the interrupt path.
///
/// Use: [`Doorbells::attach`] once the vPE has its doorbell (after `create_vm`); before each
/// block, [`Doorbells::arm`] and only then enable the doorbell (`make_non_resident(.., true)`);
/// sleep until [`Doorbells::is_woken`].
#[derive(Debug, Default)]
pub struct Waiter {
    /// The doorbell's INTID, 0 when detached.
    intid: AtomicU32,
    /// The doorbell's generation when attached.
    generation: AtomicU32,
    /// The doorbell's ring count when armed.
    seen: AtomicU32,
}

impl Waiter {
    /// A waiter attached to nothing.
    pub const fn new() -> Self {
        Self {
            intid: AtomicU32::new(0),
            generation: AtomicU32::new(0),
            seen: AtomicU32::new(0),
        }
    }

    /// The doorbell it is attached to, if any.
    pub fn doorbell(&self) -> Option<Lpi> {
        Lpi::new(self.intid.load(Ordering::Acquire)).ok()
    }

    /// Detaches it (it then follows no doorbell). Nothing to synchronise with: the interrupt
    /// path never touches a waiter.
    pub fn detach(&self) {
        self.intid.store(0, Ordering::Release);
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
    /// Doorbell interrupts handled that found the doorbell enabled (and disabled it).
    pub rings: u64,
    /// Doorbell interrupts for a doorbell that was already disabled (made pending before the
    /// disable took effect, or left pending from before).
    pub late: u64,
}

/// Per doorbell, four 32-bit words (see `protocol`): flags, target CPU, ring count,
/// generation.
const SLOT: usize = 16;
const FLAGS: usize = 0;
const CPU: usize = 4;
const RINGS: usize = 8;
const GENERATION: usize = 12;

/// One word of the state buffer.
struct Cell<'b, P: DmaAlloc> {
    buf: &'b DmaBuf<P>,
    off: usize,
}

impl<P: DmaAlloc> Word for Cell<'_, P> {
    // Offsets are those of allocated slots (the index is checked before a cell is made), so
    // the buffer's bounds checks cannot fail; a failure would read as a free doorbell.
    fn load(&self) -> u32 {
        self.buf.load_u32(self.off).unwrap_or(0)
    }
    fn store(&self, v: u32) {
        let _ = self.buf.store_u32(self.off, v);
    }
    fn update(&self, f: impl FnMut(u32) -> u32) -> u32 {
        self.buf.update_u32(self.off, f).unwrap_or(0)
    }
}

/// All doorbells of the system, on one ITS.
pub struct Doorbells<'a, R: ItsRegisters, P: Platform> {
    its: &'a Its<R, P>,
    lpis: &'a Lpis<P>,
    range: LpiRange,
    /// [`SLOT`] bytes per doorbell.
    state: DmaBuf<P>,
    /// Taken by allocation, free and shut-down (before `proxy`).
    used: Mutex<()>,
    /// The proxy device in proxy mode, until shut down.
    proxy: Mutex<Option<Device<P>>>,
    /// GICv4.1 ITS: doorbells are invalidated with INVDB.
    v41: bool,
    redists: Option<&'a dyn Redistributors>,
    cfg: DoorbellConfig,
    dead: AtomicBool,
    rings: AtomicU64,
    late: AtomicU64,
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
        let layout = Layout::from_size_align(cfg.capacity as usize * SLOT, 8)
            .map_err(|_| undo(ItsError::Config("layout").into()))?;
        let state = DmaBuf::new(its.platform().clone(), layout)
            .map_err(|e| undo(ItsError::from(e).into()))?;
        let proxy = match cfg.proxy {
            Some(id) => Some(
                its.map_device(id, cfg.capacity)
                    .map_err(|e| undo(e.into()))?,
            ),
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
            proxy: Mutex::new(proxy),
            v41: its.caps().version == ItsVersion::V4_1,
            redists: None,
            cfg,
            dead: AtomicBool::new(false),
            rings: AtomicU64::new(0),
            late: AtomicU64::new(0),
        })
    }

    /// Gives the doorbells every CPU's redistributor registers: needed with DirectLPI (no
    /// proxy device, GICv4.0) for [`Doorbells::move_to`].
    pub fn with_redistributors(mut self, redists: &'a dyn Redistributors) -> Self {
        self.redists = Some(redists);
        self
    }

    /// Allocates one doorbell per vPE, contiguous, each disabled and (in proxy mode) mapped
    /// through the proxy device to the vPE's CPU. `vpes[i]` = (vPE, the CPU its VTE targets).
    ///
    /// # Errors
    /// [`DoorbellError::Exhausted`], [`DoorbellError::ShutDown`], ITS errors (nothing is left
    /// allocated).
    pub fn alloc_block(&self, vpes: &[(VpeId, usize)]) -> Result<DoorbellBlock, DoorbellError> {
        let count = vpes.len() as u32;
        if count == 0 {
            return Err(DoorbellError::Exhausted(0));
        }
        for &(_, cpu) in vpes {
            self.its.cpu(cpu)?;
        }
        let _g = self.used.lock();
        self.alive()?;
        let cap = self.range.count;
        let mut first = 0;
        let found = loop {
            if first + count > cap {
                break None;
            }
            match (first..first + count).find(|&i| self.vpe_field(i) != 0) {
                Some(busy) => first = busy + 1,
                None => break Some(first),
            }
        };
        let first = found.ok_or(DoorbellError::Exhausted(count))?;
        for (k, &(vpe, cpu)) in vpes.iter().enumerate() {
            let i = first + k as u32;
            self.cell(i, CPU).store(cpu as u32);
            self.cell(i, FLAGS).store(u32::from(vpe.get()) + 1);
        }
        let block = DoorbellBlock {
            first,
            count,
            base: self.lpi_at(first)?,
        };
        if self.cfg.proxy.is_some() {
            let mut slot = self.proxy.lock();
            let Some(dev) = slot.as_mut() else {
                return Err(DoorbellError::ShutDown);
            };
            let mut items: heapless::Vec<(u32, Lpi, usize), 64> = heapless::Vec::new();
            let mut result = Ok(());
            for (k, &(_, cpu)) in vpes.iter().enumerate() {
                let i = first + k as u32;
                let _ = items.push((i, self.lpi_at(i)?, cpu));
                if items.is_full() || k + 1 == vpes.len() {
                    result = self.its.map_events(dev, &items);
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
                        let _ = self.its.unmap_event(dev, i);
                    }
                    self.release(i);
                }
                return Err(e.into());
            }
        }
        Ok(block)
    }

    /// Frees a block: its doorbells are unmapped from the proxy device, then disabled. Their
    /// waiters stop waiting ([`Doorbells::is_woken`] says so).
    ///
    /// # Errors
    /// [`DoorbellError::NotADoorbell`] for a block already freed (nothing done); ITS errors:
    /// the block is then still allocated and whole (the doorbells this call unmapped are
    /// mapped again), unless the ITS died.
    pub fn free_block(&self, block: DoorbellBlock) -> Result<(), DoorbellError> {
        let _g = self.used.lock();
        self.alive()?;
        let end = block.first + block.count;
        if let Some(i) =
            (block.first..end).find(|&i| i >= self.range.count || self.vpe_field(i) == 0)
        {
            return Err(DoorbellError::NotADoorbell(self.range.base.get() + i));
        }
        if self.cfg.proxy.is_some() {
            let mut slot = self.proxy.lock();
            let Some(dev) = slot.as_mut() else {
                return Err(DoorbellError::ShutDown);
            };
            for i in block.first..end {
                if !dev.event(i)?.is_mapped() {
                    continue;
                }
                if let Err(e) = self.its.unmap_event(dev, i) {
                    self.remap(dev, block.first..i);
                    return Err(e.into());
                }
            }
        }
        for i in block.first..end {
            self.lpis
                .configure(self.lpi_at(i)?, self.cfg.priority, false)?;
            self.release(i);
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
                let _ = items.push((i, lpi, self.cell(i, CPU).load() as usize));
            }
            if items.is_full() || (i + 1 == range.end && !items.is_empty()) {
                let _ = self.its.map_events(dev, &items);
                items.clear();
            }
        }
    }

    /// Moves a doorbell to another CPU, after the vPE moved there with VMOVP: the GIC rings
    /// it on the new CPU's redistributor from then on. In proxy mode the proxy event follows
    /// (MOVI, which carries a pending state along); with DirectLPI a doorbell left pending on
    /// the old CPU's redistributor is cleared there (GICR_CLRLPIR, then GICR_SYNCR, through
    /// [`Redistributors`]), or it would fire on the old CPU at its next enable.
    ///
    /// # Errors
    /// [`DoorbellError::NotADoorbell`], [`DoorbellError::NeedRedistributor`] (DirectLPI
    /// without [`Doorbells::with_redistributors`]), [`DoorbellError::SyncTimeout`], ITS
    /// errors: the records then still name the old CPU, and the same call can be made again.
    pub fn move_to(&self, doorbell: Lpi, cpu: usize) -> Result<(), DoorbellError> {
        self.alive()?;
        let i = self.index(doorbell)?;
        let old = self.cell(i, CPU).load() as usize;
        if old == cpu {
            return Ok(());
        }
        self.its.cpu(cpu)?;
        if self.cfg.proxy.is_some() {
            let mut slot = self.proxy.lock();
            let dev = slot.as_mut().ok_or(DoorbellError::ShutDown)?;
            self.its.move_event(dev, i, cpu)?;
        } else {
            let redists = self.redists.ok_or(DoorbellError::NeedRedistributor)?;
            let mut res = Err(DoorbellError::Its(ItsError::NoSuchCpu(old)));
            redists.with_redist(old, &mut |rd| {
                rd.set_clrlpir(GicrLpir::new().with_intid(doorbell.get()));
                res = self.wait_syncr(rd);
            });
            res?;
        }
        protocol::move_cpu(&self.cell(i, CPU), cpu as u32);
        Ok(())
    }

    /// Enables or disables a doorbell: property byte, then invalidation (GICv4.1: INVDB +
    /// VSYNC; proxy INV + SYNC; or GICR_INVLPIR + GICR_SYNCR on `rd`, the target CPU's
    /// redistributor, in DirectLPI mode).
    ///
    /// Safe against [`Doorbells::handle`] on any CPU: if the doorbell rings while this call
    /// runs, the call ends either with the doorbell enabled in the records, the property
    /// byte and the GIC (it enables again after the interrupt path's disable), or with it
    /// disabled in all three; never enabled in the records over a disabled byte, which no
    /// later `make_non_resident(.., true)` would repair.
    ///
    /// # Errors
    /// [`DoorbellError::NotADoorbell`], [`DoorbellError::NeedRedistributor`] (nothing
    /// written), [`DoorbellError::SyncTimeout`] and ITS errors: the property byte is then put
    /// back as the records say, and the next [`Doorbells::settle`] invalidates it again.
    pub fn set_enabled(
        &self,
        doorbell: Lpi,
        enabled: bool,
        rd: Option<&mut dyn RedistRegisters>,
    ) -> Result<(), DoorbellError> {
        self.alive()?;
        let i = self.index(doorbell)?;
        if !self.v41 && self.cfg.proxy.is_none() && rd.is_none() {
            return Err(DoorbellError::NeedRedistributor);
        }
        let vpe = self.vpe_at(i);
        let mut rd = rd;
        protocol::set_enabled(
            &self.cell(i, FLAGS),
            enabled,
            |on| self.write(doorbell, on),
            || self.invalidate(i, doorbell, vpe, rd.as_deref_mut()),
        )
    }

    fn invalidate(
        &self,
        i: u32,
        doorbell: Lpi,
        vpe: VpeId,
        rd: Option<&mut (dyn RedistRegisters + '_)>,
    ) -> Result<(), DoorbellError> {
        if self.v41 {
            return self.invdb(vpe);
        }
        match (self.cfg.proxy, rd) {
            (Some(_), _) => {
                let slot = self.proxy.lock();
                let dev = slot.as_ref().ok_or(DoorbellError::ShutDown)?;
                self.its.inv_event(dev, i)?;
            }
            (None, Some(rd)) => {
                rd.set_invlpir(GicrInvlpir::new().with_intid(doorbell.get()));
                self.wait_syncr(rd)?;
            }
            (None, None) => return Err(DoorbellError::NeedRedistributor),
        }
        Ok(())
    }

    /// GICv4.1: the doorbell is the vPE's default doorbell, whose configuration any
    /// redistributor may cache (the one the vPE's VTE names now, the ones it named before):
    /// INVDB reaches them all, where GICR_INVLPIR or a proxy INV reaches one.
    fn invdb(&self, vpe: VpeId) -> Result<(), DoorbellError> {
        let out = self
            .its
            .execute(1, |_| Command::Invdb { vpe }, &[SyncTarget::Vpe(vpe)])?;
        match out.error() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
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
        self.alive()?;
        let i = self.index(doorbell)?;
        match (self.cfg.proxy, rd) {
            (Some(_), _) => {
                let slot = self.proxy.lock();
                let dev = slot.as_ref().ok_or(DoorbellError::ShutDown)?;
                self.its.clear_event(dev, i)?;
            }
            (None, Some(rd)) => {
                rd.set_clrlpir(GicrLpir::new().with_intid(doorbell.get()));
                self.wait_syncr(rd)?;
            }
            (None, None) => return Err(DoorbellError::NeedRedistributor),
        }
        Ok(())
    }

    fn wait_syncr(&self, rd: &mut dyn RedistRegisters) -> Result<(), DoorbellError> {
        poll_until(self.its.platform(), self.cfg.sync_timeout, || {
            !rd.syncr().busy()
        })
        .map_err(|t| DoorbellError::SyncTimeout {
            waited_ns: t.waited_ns,
        })
    }

    /// Shuts the doorbells down: unmaps the proxy device and frees the reserved LPI range.
    /// Every block must have been freed ([`Doorbells::free_block`]). Takes `&self`, so
    /// doorbells kept in a static can be shut down too: on success they are dead, every call
    /// but the lookups fails with [`DoorbellError::ShutDown`], and [`Doorbells::handle`]
    /// claims no INTID any more (the range may be handed out again).
    ///
    /// # Errors
    /// [`DoorbellError::InUse`] (nothing done), [`DoorbellError::ShutDown`] (already), or the
    /// ITS error that stopped the proxy's unmap (the doorbells stay usable).
    pub fn shutdown(&self) -> Result<(), DoorbellError> {
        let _g = self.used.lock();
        self.alive()?;
        let used = (0..self.range.count)
            .filter(|&i| self.vpe_field(i) != 0)
            .count() as u32;
        if used != 0 {
            return Err(DoorbellError::InUse(used));
        }
        {
            let mut slot = self.proxy.lock();
            if let Some(dev) = slot.take()
                && let Err(e) = self.its.unmap_device(dev)
            {
                *slot = Some(e.device);
                return Err(e.error.into());
            }
        }
        // Dead from here on: the interrupt path stops claiming the range before the range
        // can be handed out again.
        self.dead.store(true, Ordering::Release);
        // The doorbells are disabled in the property table (free_block) and no longer
        // mapped: the range can go back to the allocator.
        self.lpis.free(self.range)?;
        Ok(())
    }

    /// What the GICv4 layer does when a vPE becomes resident: [`Doorbells::settle`], and with
    /// `clear` also [`Doorbells::clear_pending`], in one go: in proxy mode a single batch (INV
    /// or INVDB and/or CLEAR, then the syncs: one GITS_CWRITER write), with DirectLPI
    /// GICR_INVLPIR (or INVDB) and/or GICR_CLRLPIR, then one GICR_SYNCR wait. Nothing at all
    /// when neither is needed.
    ///
    /// # Errors
    /// As [`Doorbells::set_enabled`] and [`Doorbells::clear_pending`].
    pub fn settle_and_clear(
        &self,
        doorbell: Lpi,
        clear: bool,
        rd: Option<&mut dyn RedistRegisters>,
    ) -> Result<(), DoorbellError> {
        self.alive()?;
        let i = self.index(doorbell)?;
        let flags = self.cell(i, FLAGS);
        let inv = flags.load() & NEEDS_INV != 0;
        if !inv && !clear {
            return Ok(());
        }
        if self.cfg.proxy.is_none() && rd.is_none() && (clear || !self.v41) {
            return Err(DoorbellError::NeedRedistributor);
        }
        let vpe = self.vpe_at(i);
        let mut rd = rd;
        protocol::settle(
            &flags,
            clear,
            |on| self.write(doorbell, on),
            |inv, clear| self.settle_batch(i, doorbell, vpe, inv, clear, rd.as_deref_mut()),
        )?;
        Ok(())
    }

    /// The invalidation (`inv`) and the clear (`clear`) of [`Doorbells::settle_and_clear`].
    fn settle_batch(
        &self,
        i: u32,
        doorbell: Lpi,
        vpe: VpeId,
        inv: bool,
        clear: bool,
        rd: Option<&mut (dyn RedistRegisters + '_)>,
    ) -> Result<(), DoorbellError> {
        let invdb = inv && self.v41;
        let inv = inv && !self.v41;
        if self.cfg.proxy.is_some() {
            let slot = self.proxy.lock();
            let dev = slot.as_ref().ok_or(DoorbellError::ShutDown)?;
            let mut cmds: heapless::Vec<Command, 3> = heapless::Vec::new();
            let mut syncs: heapless::Vec<SyncTarget, 2> = heapless::Vec::new();
            if invdb {
                let _ = cmds.push(Command::Invdb { vpe });
                let _ = syncs.push(SyncTarget::Vpe(vpe));
            }
            if inv || clear {
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
                let (device, event) = (dev.id(), EventId::new(i));
                if inv {
                    let _ = cmds.push(Command::Inv { device, event });
                }
                if clear {
                    let _ = cmds.push(Command::Clear { device, event });
                }
                let _ = syncs.push(SyncTarget::Redist(rdbase));
            }
            let out = self.its.execute(cmds.len(), |k| cmds[k], &syncs)?;
            if let Some(e) = out.error() {
                return Err(e.into());
            }
            return Ok(());
        }
        if invdb {
            self.invdb(vpe)?;
        }
        if inv || clear {
            let rd = rd.ok_or(DoorbellError::NeedRedistributor)?;
            if inv {
                rd.set_invlpir(GicrInvlpir::new().with_intid(doorbell.get()));
            }
            if clear {
                rd.set_clrlpir(GicrLpir::new().with_intid(doorbell.get()));
            }
            self.wait_syncr(rd)?;
        }
        Ok(())
    }

    /// Issues the invalidation the interrupt path deferred, if any, so a doorbell disabled by
    /// [`Doorbells::handle`] stays silent on GICs that cache LPI configuration (the property
    /// byte is written again from the records first). Call it outside interrupt context,
    /// before making the vPE resident.
    ///
    /// # Errors
    /// As [`Doorbells::set_enabled`].
    pub fn settle(
        &self,
        doorbell: Lpi,
        rd: Option<&mut dyn RedistRegisters>,
    ) -> Result<(), DoorbellError> {
        self.settle_and_clear(doorbell, false, rd)
    }
}

impl<R: ItsRegisters, P: Platform> core::fmt::Debug for Doorbells<'_, R, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Doorbells")
            .field("range", &self.range)
            .field("cfg", &self.cfg)
            .field("v41", &self.v41)
            .field("dead", &self.dead.load(Ordering::Relaxed))
            .field("rings", &self.rings.load(Ordering::Relaxed))
            .field("late", &self.late.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<R: ItsRegisters, P: Platform> Doorbells<'_, R, P> {
    fn cell(&self, i: u32, word: usize) -> Cell<'_, P> {
        Cell {
            buf: &self.state,
            off: i as usize * SLOT + word,
        }
    }

    fn alive(&self) -> Result<(), DoorbellError> {
        if self.dead.load(Ordering::Acquire) {
            Err(DoorbellError::ShutDown)
        } else {
            Ok(())
        }
    }

    fn vpe_field(&self, i: u32) -> u32 {
        self.cell(i, FLAGS).load() & VPE_MASK
    }

    fn vpe_at(&self, i: u32) -> VpeId {
        VpeId::new(self.vpe_field(i).saturating_sub(1) as u16)
    }

    fn release(&self, i: u32) {
        protocol::release(&self.cell(i, FLAGS), &self.cell(i, GENERATION));
    }

    fn write(&self, doorbell: Lpi, on: bool) -> Result<(), DoorbellError> {
        Ok(self.lpis.configure(doorbell, self.cfg.priority, on)?)
    }

    fn lpi_at(&self, i: u32) -> Result<Lpi, ItsError> {
        self.range
            .get(i)
            .ok_or(ItsError::BadLpi(self.range.base.get() + i))
    }

    /// The slot of an INTID in the range, allocated or not.
    fn slot_of(&self, intid: u32) -> Option<u32> {
        let i = intid.wrapping_sub(self.range.base.get());
        (i < self.range.count && !self.dead.load(Ordering::Acquire)).then_some(i)
    }

    fn index(&self, doorbell: Lpi) -> Result<u32, DoorbellError> {
        match self.slot_of(doorbell.get()) {
            Some(i) if self.vpe_field(i) != 0 => Ok(i),
            _ => Err(DoorbellError::NotADoorbell(doorbell.get())),
        }
    }

    /// The vPE whose doorbell `intid` is, in O(1).
    pub fn vpe_of(&self, intid: u32) -> Option<VpeId> {
        let i = self.slot_of(intid)?;
        match self.vpe_field(i) {
            0 => None,
            v => Some(VpeId::new((v - 1) as u16)),
        }
    }

    /// The CPU whose redistributor doorbell `doorbell` targets (set by
    /// [`Doorbells::alloc_block`] and [`Doorbells::move_to`]), or `None` if it is not an
    /// allocated doorbell.
    pub fn target_cpu(&self, doorbell: Lpi) -> Option<usize> {
        let i = self.index(doorbell).ok()?;
        Some(self.cell(i, CPU).load() as usize)
    }

    /// Whether `intid` is one of these doorbells (allocated or not; none after shut-down).
    pub fn is_doorbell(&self, intid: u32) -> bool {
        self.slot_of(intid).is_some()
    }

    /// Whether the records say the doorbell is enabled.
    pub fn is_enabled(&self, doorbell: Lpi) -> bool {
        self.slot_of(doorbell.get())
            .is_some_and(|i| self.cell(i, FLAGS).load() & ENABLED != 0)
    }

    /// The interrupt path, for an LPI the hypervisor took: if it is an allocated doorbell,
    /// disables it in the property table (if enabled), counts the ring, which wakes every
    /// [`Waiter`] armed on it, and returns its vPE. O(1): no lock, no wait, no ITS command
    /// (the invalidation is left to [`Doorbells::settle`]); safe on any CPU, at any time.
    pub fn handle(&self, intid: u32) -> Option<VpeId> {
        let i = self.slot_of(intid)?;
        let lpi = Lpi::new(intid).ok()?;
        let r = protocol::ring(&self.cell(i, FLAGS), &self.cell(i, RINGS), || {
            let _ = self.lpis.configure(lpi, self.cfg.priority, false);
        })?;
        if r.disabled {
            self.rings.fetch_add(1, Ordering::Relaxed);
        } else {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        Some(VpeId::new((r.vpe_field - 1) as u16))
    }

    /// Attaches `waiter` to `doorbell` (its vPE's: after `create_vm`), armed. A waiter
    /// follows one doorbell at a time; attaching again moves it.
    ///
    /// # Errors
    /// [`DoorbellError::NotADoorbell`], [`DoorbellError::ShutDown`].
    pub fn attach(&self, waiter: &Waiter, doorbell: Lpi) -> Result<(), DoorbellError> {
        self.alive()?;
        let not = DoorbellError::NotADoorbell(doorbell.get());
        let i = self.slot_of(doorbell.get()).ok_or(not)?;
        let a = protocol::attach(
            &self.cell(i, FLAGS),
            &self.cell(i, RINGS),
            &self.cell(i, GENERATION),
        )
        .ok_or(not)?;
        waiter.generation.store(a.generation, Ordering::Release);
        waiter.seen.store(a.seen, Ordering::Release);
        waiter.intid.store(doorbell.get(), Ordering::Release);
        Ok(())
    }

    /// Arms `waiter`: rings so far are forgotten, the next one wakes it. Arm *before*
    /// enabling the doorbell for a block (`make_non_resident(.., true)`): a ring between the
    /// enable and a later arm would be lost.
    ///
    /// # Errors
    /// [`DoorbellError::Detached`]: not attached, or its doorbell was freed since.
    pub fn arm(&self, waiter: &Waiter) -> Result<(), DoorbellError> {
        let i = self.waiter_slot(waiter).ok_or(DoorbellError::Detached)?;
        let a = protocol::arm(
            &self.cell(i, RINGS),
            &self.cell(i, GENERATION),
            waiter.generation.load(Ordering::Acquire),
        )
        .ok_or(DoorbellError::Detached)?;
        waiter.seen.store(a.seen, Ordering::Release);
        Ok(())
    }

    /// Whether `waiter` is woken: its doorbell rang since it was armed; or there is nothing
    /// to wait for (not attached, doorbell freed, doorbells shut down), so a vCPU never
    /// sleeps on a doorbell that cannot ring.
    pub fn is_woken(&self, waiter: &Waiter) -> bool {
        let Some(i) = self.waiter_slot(waiter) else {
            return true;
        };
        protocol::woken(
            &self.cell(i, RINGS),
            &self.cell(i, GENERATION),
            protocol::Armed {
                generation: waiter.generation.load(Ordering::Acquire),
                seen: waiter.seen.load(Ordering::Acquire),
            },
        )
    }

    fn waiter_slot(&self, waiter: &Waiter) -> Option<u32> {
        self.slot_of(waiter.intid.load(Ordering::Acquire))
    }

    /// The counters.
    pub fn stats(&self) -> DoorbellStats {
        DoorbellStats {
            rings: self.rings.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
        }
    }

    /// The LPI range reserved for doorbells.
    pub fn range(&self) -> LpiRange {
        self.range
    }

    /// Whether invalidation goes through the proxy device.
    pub fn uses_proxy(&self) -> bool {
        self.cfg.proxy.is_some()
    }
}
