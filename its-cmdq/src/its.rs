// SPDX-License-Identifier: MIT OR Apache-2.0
//! ITS bring-up and physical LPI management.
//!
//! [`Its::new`] follows the order the architecture and QEMU require: force the ITS quiescent
//! (bounded), set up every GITS_BASER table (page-size probing, flat or two-level, the
//! shareability read-back rule), program the command queue, enable the ITS (QEMU latches the
//! tables at enable), then map one collection per CPU (MAPC with the RDbase form
//! GITS_TYPER.PTA asks for) followed by INVALL and SYNC.
//!
//! # Errors leave state consistent
//! - Everything is checked before a command is written: IDs against the capabilities, events
//!   against the device's ITT, double maps, unmapped events, unknown CPUs. A refused request
//!   changes nothing and allocates nothing.
//! - An allocation failure undoes what the request allocated.
//! - A command the ITS stalls on is skipped ([`Recovery::Skip`]), so the ITS did not do it,
//!   and the driver records only what the ITS did; the caller gets [`ItsError::Stalled`].
//! - A timeout leaves the ITS in an unknown state: the driver marks it dead
//!   ([`ItsError::Dead`] from then on) and keeps, rather than frees, any memory the ITS might
//!   still reference.

use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use its_core::addr::{IttAddr, PhysAddr};
use its_core::caps::{DistCaps, ItsCaps, RedistCaps};
use its_core::cmd::{Command, IdBits};
use its_core::ids::{CollectionId, DeviceId, EventId, Lpi, RdBase, VpeId};
use its_core::mmio::ItsRegisters;
use its_core::platform::{DmaBuf, Platform, poll_until};
use its_core::regs::{BaserType, GicrTyper, GitsBaser};

/// A batch's command at an index.
type CommandAt<'a> = dyn Fn(usize) -> Command + 'a;

/// GITS_BASER.Size can describe 256 pages, GICR_VPROPBASER.Size (GICv4.1) only 128: a vPE
/// table the redistributors may share is kept to what they can describe.
const V41_VPE_TABLE_PAGES: u64 = 128;
use spin::Mutex;

use crate::device::{Device, EventState, PhysMapping};
use crate::error::ItsError;
use crate::queue::{CmdQueue, MAX_SYNCS, QueueConfig, Recovery, SkippedCmd, SyncTarget};
use crate::tables::ItsTable;

/// CPUs (redistributors) one ITS can target.
pub const MAX_CPUS: usize = 64;
/// Devices one ITS can have mapped at once.
pub const MAX_DEVICES: usize = 1024;

/// A redistributor the ITS will target, as the hypervisor found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedistInfo {
    /// Its RD_base physical address.
    pub rd_base: PhysAddr,
    /// Its GICR_TYPER.
    pub typer: GicrTyper,
}

/// Bring-up parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItsConfig {
    /// The command queue.
    pub queue: QueueConfig,
    /// How long to wait for GITS_CTLR.Quiescent.
    pub quiescent_timeout: Duration,
    /// What the distributor reported (LPI INTID space, GICv4.1 vPE ID width).
    pub dist: DistCaps,
    /// GITS_CTLR.ITS_Number to program when GITS_TYPER.VMOVP = 0 (VMOVP needs an ITSList).
    /// `None`: the first number not in `its_numbers_taken` (Linux's rule).
    pub its_number: Option<u8>,
    /// The ITS_Numbers of the ITSs brought up before this one (bit n: number n), see
    /// [`its_numbers_in_use`]. With GITS_TYPER.VMOVP = 0 the ITS gets a number outside this
    /// set, or bring-up fails: two ITSs with one number cannot be told apart in a VMOVP's
    /// ITSList. Left at 0 for every ITS, the GICv4 layer refuses the duplicates later.
    pub its_numbers_taken: u16,
    /// GICv4.1: the vPE table of a sibling ITS to share (its GITS_BASER value,
    /// [`Its::vpe_baser`]), for ITSs whose GITS_TYPER.SVPET shares their tables with the
    /// same redistributors: a redistributor has one GICR_VPROPBASER, so they must use one
    /// table. `None`: a table of its own.
    pub shared_vpe_table: Option<GitsBaser>,
}

/// The ITS_Numbers `its` use (for [`ItsConfig::its_numbers_taken`]).
pub fn its_numbers_in_use<R: ItsRegisters, P: Platform>(its: &[Its<R, P>]) -> u16 {
    its.iter()
        .filter(|i| i.caps().is_v4() && !i.caps().single_vmovp)
        .fold(0, |m, i| m | 1 << (i.its_number() & 0xf))
}

impl ItsConfig {
    /// Defaults (64 KiB queue, 1 s timeouts) for a GIC whose distributor reports `dist`.
    pub fn new(dist: DistCaps) -> Self {
        Self {
            queue: QueueConfig::default(),
            quiescent_timeout: Duration::from_secs(1),
            dist,
            its_number: None,
            its_numbers_taken: 0,
            shared_vpe_table: None,
        }
    }
}

/// A CPU's collection: ICID = CPU index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTarget {
    /// The redistributor, as this ITS names it.
    pub rdbase: RdBase,
    /// Its redistributor's capabilities.
    pub redist: RedistCaps,
    /// The collection mapped to it.
    pub icid: CollectionId,
}

/// What happened to a batch: which of its commands, if any, the ITS stalled on and the driver
/// skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// (index in the batch, the command), in order.
    pub skipped: heapless::Vec<(usize, SkippedCmd), 8>,
}

impl Outcome {
    /// Whether the command at `index` was skipped.
    pub fn was_skipped(&self, index: usize) -> bool {
        self.skipped.iter().any(|(i, _)| *i == index)
    }

    /// The error to report for the first skipped command, if any.
    pub fn error(&self) -> Option<ItsError> {
        self.skipped.first().map(|(_, s)| ItsError::Stalled {
            offset: s.offset,
            seq: s.seq,
            raw: s.raw,
            command: s.command,
        })
    }

    /// `Err` with [`Outcome::error`] if a command was skipped, `Ok` otherwise.
    ///
    /// # Errors
    /// [`ItsError::Stalled`] for the first skipped command.
    pub fn into_result(&self) -> Result<(), ItsError> {
        self.error().map_or(Ok(()), Err)
    }
}

/// The DeviceIDs mapped, kept in platform memory (4 KiB for [`MAX_DEVICES`]).
struct DeviceSet<P: Platform> {
    ids: DmaBuf<P>,
    len: usize,
}

impl<P: Platform> DeviceSet<P> {
    fn get(&self, i: usize) -> u32 {
        self.ids.load_u32(i * 4).unwrap_or(u32::MAX)
    }

    fn contains(&self, id: u32) -> bool {
        (0..self.len).any(|i| self.get(i) == id)
    }

    fn insert(&mut self, id: u32) -> Result<(), ItsError> {
        if self.len >= MAX_DEVICES {
            return Err(ItsError::Exhausted("mapped devices"));
        }
        self.ids.store_u32(self.len * 4, id)?;
        self.len += 1;
        Ok(())
    }

    fn remove(&mut self, id: u32) {
        if let Some(i) = (0..self.len).find(|&i| self.get(i) == id) {
            let last = self.get(self.len - 1);
            let _ = self.ids.store_u32(i * 4, last);
            self.len -= 1;
        }
    }
}

/// An ITS, brought up and ready to map devices.
///
/// # Shutting down
/// Call [`Its::disable`] before dropping it: while the ITS is enabled it may read its tables
/// and queue, so dropping an enabled `Its` keeps (leaks) their memory rather than free it.
pub struct Its<R: ItsRegisters, P: Platform> {
    queue: CmdQueue<R, P>,
    caps: ItsCaps,
    lpi_id_bits: u8,
    devices: ItsTable<P>,
    collections: Option<ItsTable<P>>,
    vpes: Option<ItsTable<P>>,
    cpus: heapless::Vec<CpuTarget, MAX_CPUS>,
    mapped: Mutex<DeviceSet<P>>,
    dead: AtomicBool,
    enabled: AtomicBool,
    its_number: u8,
    /// GICv4.1: the vPE table shared with a sibling ITS, as programmed.
    shared_vpe: Option<GitsBaser>,
    /// GITS_MPIDR (GICv4.1).
    affinity: u32,
    platform: P,
}

impl<R: ItsRegisters, P: Platform + Clone> Its<R, P> {
    /// Brings the ITS up (see the module documentation). `redists` lists the CPUs'
    /// redistributors; CPU `i` gets collection `i`.
    ///
    /// # Several ITSs
    /// This disables and clears the `GITS_BASER<n>` of this ITS only. Another ITS left
    /// enabled by firmware keeps reading the tables its `GITS_BASER<n>` name, which may be
    /// memory this bring-up hands out: disable every ITS (GITS_CTLR.Enabled = 0, then
    /// Quiescent) and clear its `GITS_BASER<n>` before bringing any up, as Linux's
    /// `its_reset_one` does for all of them first. `GITS_BASER<n>` may only be written while
    /// the ITS is disabled and quiescent. With GITS_TYPER.VMOVP = 0, give each ITS the
    /// numbers of those before it ([`ItsConfig::its_numbers_taken`]).
    ///
    /// # Errors
    /// [`ItsError::RegisterTimeout`] when the ITS does not become quiescent,
    /// [`ItsError::Unsupported`] without physical LPIs or a device table, table and queue
    /// errors, and errors of the collection mapping.
    pub fn new(
        mut regs: R,
        platform: P,
        redists: &[RedistInfo],
        cfg: ItsConfig,
    ) -> Result<Self, ItsError> {
        if redists.is_empty() || redists.len() > MAX_CPUS {
            return Err(ItsError::Config("between 1 and 64 redistributors"));
        }
        // Quiescent: clear Enabled, wait for Quiescent.
        let ctlr = regs.ctlr();
        if ctlr.enabled() {
            regs.set_ctlr(ctlr.with_enabled(false));
        }
        poll_until(&platform, cfg.quiescent_timeout, || regs.ctlr().quiescent()).map_err(|t| {
            ItsError::RegisterTimeout {
                what: "GITS_CTLR.Quiescent",
                waited_ns: t.waited_ns,
            }
        })?;
        let caps = ItsCaps::from_typer(regs.typer()).with_dist(&cfg.dist);
        if !caps.physical {
            return Err(ItsError::Unsupported(
                "physical LPIs (GITS_TYPER.Physical = 0)",
            ));
        }
        // Collections: one per CPU.
        let mut cpus = heapless::Vec::new();
        for (i, r) in redists.iter().enumerate() {
            let redist = RedistCaps::from_typer(r.typer);
            let icid = CollectionId::new(i as u16);
            caps.check_collection(icid)?;
            let rdbase = caps.rdbase(r.rd_base, &redist)?;
            let _ = cpus.push(CpuTarget {
                rdbase,
                redist,
                icid,
            });
        }
        // GITS_TYPER.VMOVP = 0: a number of its own for VMOVP's ITSList, programmed while the
        // ITS is disabled (first free, as Linux; the hardware's if the write does not stick).
        let its_number = if caps.is_v4() && !caps.single_vmovp {
            let want = match cfg.its_number {
                Some(n) => n & 0xf,
                None => (0..16u8)
                    .find(|n| cfg.its_numbers_taken & (1 << n) == 0)
                    .ok_or(ItsError::Exhausted("ITS numbers (GITS_TYPER.VMOVP = 0)"))?,
            };
            let c = regs.ctlr();
            regs.set_ctlr(c.with_its_number(want));
            let got = regs.ctlr().its_number();
            if cfg.its_numbers_taken & (1 << got) != 0 {
                return Err(ItsError::Config(
                    "GITS_CTLR.ITS_Number is another ITS's (duplicate ITSList entry)",
                ));
            }
            got
        } else {
            regs.ctlr().its_number()
        };
        let affinity = if caps.version == its_core::cmd::ItsVersion::V4_1 {
            regs.mpidr()
        } else {
            0
        };
        // Clear every table before probing any (as Linux does for all ITSs).
        for n in 0..8 {
            if regs.baser(n).table_type() != BaserType::Unimplemented {
                regs.set_baser(n, GitsBaser::from(0));
            }
        }
        let mut devices = None;
        let mut collections = None;
        let mut vpes = None;
        let mut shared_vpe = None;
        let coll_bits = (usize::BITS - (redists.len() - 1).leading_zeros()).max(1) as u8;
        for n in 0..8 {
            match regs.baser(n).table_type() {
                BaserType::Devices => {
                    devices = Some(ItsTable::setup(
                        &mut regs,
                        n,
                        caps.device_id_bits,
                        &platform,
                    )?)
                }
                BaserType::Collections
                    if caps.hcc == 0 || usize::from(caps.hcc) < redists.len() =>
                {
                    collections = Some(ItsTable::setup(
                        &mut regs,
                        n,
                        coll_bits.min(caps.collection_id_bits),
                        &platform,
                    )?);
                }
                BaserType::Vpes if caps.is_v4() => match cfg.shared_vpe_table {
                    Some(b) => {
                        regs.set_baser(n, b);
                        let got = regs.baser(n);
                        if got.addr() != b.addr()
                            || got.size() != b.size()
                            || got.page() != b.page()
                            || got.indirect() != b.indirect()
                            || got.entry_bytes() != b.entry_bytes()
                            || !got.valid()
                        {
                            regs.set_baser(n, GitsBaser::from(0));
                            return Err(ItsError::DidNotStick {
                                register: "GITS_BASER (shared vPE table)",
                                wrote: b.into(),
                                read: got.into(),
                            });
                        }
                        shared_vpe = Some(got);
                    }
                    None => {
                        let pages = if caps.version == its_core::cmd::ItsVersion::V4_1 {
                            V41_VPE_TABLE_PAGES
                        } else {
                            256
                        };
                        vpes = Some(ItsTable::setup_capped(
                            &mut regs,
                            n,
                            caps.vpe_id_bits,
                            &platform,
                            pages,
                        )?)
                    }
                },
                _ => {}
            }
        }
        let devices = devices.ok_or(ItsError::Unsupported(
            "a device table (no GITS_BASER of type Devices)",
        ))?;
        let noop = cpus
            .first()
            .map(|c: &CpuTarget| c.rdbase)
            .unwrap_or_default();
        let ids = DmaBuf::new(
            platform.clone(),
            Layout::from_size_align(MAX_DEVICES * 4, 8).map_err(|_| ItsError::Config("layout"))?,
        )?;
        let queue = CmdQueue::new(regs, platform.clone(), caps, cfg.queue, noop)?;
        queue.with_regs(|r| {
            let c = r.ctlr();
            r.set_ctlr(c.with_enabled(true));
        });
        let its = Self {
            queue,
            caps,
            lpi_id_bits: cfg.dist.lpi_id_bits(crate::lpi::MAX_LPI_ID_BITS),
            devices,
            collections,
            vpes,
            cpus,
            mapped: Mutex::new(DeviceSet { ids, len: 0 }),
            dead: AtomicBool::new(false),
            enabled: AtomicBool::new(true),
            its_number,
            shared_vpe,
            affinity,
            platform,
        };
        // MAPC for every CPU, then INVALL for every CPU and a SYNC to each.
        for c in &its.cpus {
            if let Some(t) = &its.collections
                && let Err(e) = t.ensure(c.icid.get().into())
            {
                let _ = its.disable(cfg.quiescent_timeout);
                return Err(e);
            }
        }
        let n = its.cpus.len();
        let syncs: heapless::Vec<SyncTarget, MAX_SYNCS> = its
            .cpus
            .iter()
            .map(|c| SyncTarget::Redist(c.rdbase))
            .collect();
        let cpus = &its.cpus;
        // The MAPCs first, then (once the ITS did every one) an INVALL per collection and
        // the SYNCs: an INVALL of a collection whose MAPC was skipped would be a command
        // error of its own.
        let mapc = |i: usize| Command::Mapc {
            icid: cpus[i].icid,
            rdbase: cpus[i].rdbase,
            valid: true,
        };
        let invall = |i: usize| Command::Invall { icid: cpus[i].icid };
        let steps: [(&CommandAt<'_>, &[SyncTarget]); 2] = [(&mapc, &[]), (&invall, &syncs)];
        for (command, syncs) in steps {
            let out = match its.execute(n, command, syncs) {
                Ok(o) => o,
                Err(e) => {
                    let _ = its.disable(cfg.quiescent_timeout);
                    return Err(e);
                }
            };
            if let Some(e) = out.error() {
                // Disable again so the tables can be freed (they are kept if that fails too).
                let _ = its.disable(cfg.quiescent_timeout);
                return Err(e);
            }
        }
        Ok(its)
    }
}

impl<R: ItsRegisters, P: Platform> Its<R, P> {
    /// The capabilities.
    pub fn caps(&self) -> &ItsCaps {
        &self.caps
    }

    /// The command queue (for layers that post their own commands, such as GICv4 vPE
    /// management; prefer [`Its::execute`], which handles stalls).
    pub fn queue(&self) -> &CmdQueue<R, P> {
        &self.queue
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The CPUs this ITS targets.
    pub fn cpus(&self) -> &[CpuTarget] {
        &self.cpus
    }

    /// CPU `cpu`'s target.
    ///
    /// # Errors
    /// [`ItsError::NoSuchCpu`].
    pub fn cpu(&self, cpu: usize) -> Result<&CpuTarget, ItsError> {
        self.cpus.get(cpu).ok_or(ItsError::NoSuchCpu(cpu))
    }

    /// This ITS's number in VMOVP ITSLists (GITS_CTLR.ITS_Number).
    pub fn its_number(&self) -> u8 {
        self.its_number
    }

    /// The device table.
    pub fn device_table(&self) -> &ItsTable<P> {
        &self.devices
    }

    /// The collection table, if the ITS needs one.
    pub fn collection_table(&self) -> Option<&ItsTable<P>> {
        self.collections.as_ref()
    }

    /// The vPE table (GICv4), if this ITS owns it (see [`Its::vpe_baser`] for one shared
    /// with a sibling).
    pub fn vpe_table(&self) -> Option<&ItsTable<P>> {
        self.vpes.as_ref()
    }

    /// The GITS_BASER value of the vPE table this ITS uses, its own or a sibling's: what a
    /// sibling ITS or a GICv4.1 redistributor sharing it is programmed with.
    pub fn vpe_baser(&self) -> Option<GitsBaser> {
        self.vpes.as_ref().map(ItsTable::baser).or(self.shared_vpe)
    }

    /// Whether the vPE table is a sibling's ([`ItsConfig::shared_vpe_table`]).
    pub fn shares_vpe_table(&self) -> bool {
        self.shared_vpe.is_some()
    }

    /// GITS_MPIDR (GICv4.1; 0 otherwise): the affinity GITS_TYPER.SVPET is compared at.
    pub fn affinity(&self) -> u32 {
        self.affinity
    }

    /// LPI INTID bits the GIC has (capped at 16).
    pub fn lpi_id_bits(&self) -> u8 {
        self.lpi_id_bits
    }

    /// Whether an earlier timeout made the driver stop using this ITS.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    fn alive(&self) -> Result<(), ItsError> {
        if self.is_dead() {
            Err(ItsError::Dead)
        } else {
            Ok(())
        }
    }

    /// Posts a batch of `n` commands (`command(i)`) plus the given syncs, and waits for it.
    /// A command the ITS stalls on is skipped and reported in the [`Outcome`]; the rest of
    /// the batch runs.
    ///
    /// # Errors
    /// Validation errors (nothing written), [`ItsError::Dead`], and [`ItsError::Timeout`],
    /// [`ItsError::QueueFull`] or [`ItsError::BadCreadr`], after which the ITS is marked dead.
    pub fn execute(
        &self,
        n: usize,
        command: impl Fn(usize) -> Command,
        syncs: &[SyncTarget],
    ) -> Result<Outcome, ItsError> {
        self.alive()?;
        // Stalls on earlier batches while waiting for room are skipped (their owners see
        // them in their outcome), so a large batch is never left half-posted.
        let posted = match self.queue.post_skipping(n, command, syncs) {
            Ok(p) => p,
            Err(e @ (ItsError::QueueFull { .. } | ItsError::BadCreadr { .. })) => {
                self.dead.store(true, Ordering::Release);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let mut stalls = 0;
        loop {
            match self.queue.wait(posted.ticket) {
                Ok(()) => break,
                Err(ItsError::Stalled { .. }) if stalls < 64 => {
                    stalls += 1;
                    self.queue.recover(Recovery::Skip)?;
                }
                Err(e) => {
                    self.dead.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        Ok(Outcome {
            skipped: self.queue.skipped_in(&posted),
        })
    }

    fn target(&self, cpu: u16) -> Result<&CpuTarget, ItsError> {
        self.cpu(cpu.into())
    }

    fn sync_for(&self, s: &EventState) -> Result<SyncTarget, ItsError> {
        match (s.virt, s.phys) {
            (Some(v), _) => Ok(SyncTarget::Vpe(v.vpe)),
            (None, Some(p)) => Ok(SyncTarget::Redist(self.target(p.cpu)?.rdbase)),
            (None, None) => Err(ItsError::Config("event not mapped")),
        }
    }

    fn check_lpi(&self, lpi: Lpi) -> Result<(), ItsError> {
        Lpi::new_within(lpi.get(), self.lpi_id_bits)
            .map(|_| ())
            .map_err(|_| ItsError::BadLpi(lpi.get()))
    }
}

impl<R: ItsRegisters, P: Platform + Clone> Its<R, P> {
    /// Makes sure the vPE table has an entry for `vpe` (allocating its second-level page on
    /// first use).
    ///
    /// # Errors
    /// [`ItsError::Unsupported`] without a vPE table, table errors.
    pub fn ensure_vpe(&self, vpe: VpeId) -> Result<(), ItsError> {
        self.caps.check_vpe(vpe)?;
        if self.shared_vpe.is_some() {
            // The sibling that owns the table allocates its pages.
            return Ok(());
        }
        self.vpes
            .as_ref()
            .ok_or(ItsError::Unsupported("GICv4 (no vPE table)"))?
            .ensure(vpe.get().into())
    }

    /// Maps a device with room for `events` events (MAPD). The ITT holds
    /// `max(2, events.next_power_of_two())` entries of GITS_TYPER.ITT_entry_size bytes, at
    /// least 256 bytes, 256-byte aligned.
    ///
    /// # Errors
    /// [`ItsError::Id`] for a DeviceID beyond Devbits or more events than IDbits allows,
    /// [`ItsError::DeviceMapped`], [`ItsError::Exhausted`], [`ItsError::Alloc`], table
    /// errors, and queue errors (a stalled MAPD is skipped and its memory freed).
    pub fn map_device(&self, id: DeviceId, events: u32) -> Result<Device<P>, ItsError> {
        self.alive()?;
        self.caps.check_device(id)?;
        if events == 0 {
            return Err(ItsError::Config("a device needs at least one event"));
        }
        let nr = events
            .max(2)
            .checked_next_power_of_two()
            .ok_or(ItsError::Config("too many events"))?;
        let bits = nr.trailing_zeros() as u8;
        if bits > self.caps.event_id_bits {
            return Err(ItsError::Id(its_core::ids::IdError::TooLarge {
                kind: its_core::ids::IdKind::Event,
                value: u64::from(events),
                limit: 1u64 << self.caps.event_id_bits,
            }));
        }
        let size = IdBits::new(bits)?;
        // Reserve the DeviceID first, so a concurrent map of the same ID is refused.
        {
            let mut m = self.mapped.lock();
            if m.contains(id.get()) {
                return Err(ItsError::DeviceMapped(id.get()));
            }
            m.insert(id.get())?;
        }
        let release = || self.mapped.lock().remove(id.get());
        let build = || -> Result<(DmaBuf<P>, DmaBuf<P>), ItsError> {
            self.devices.ensure(id.get().into())?;
            let itt_bytes =
                (nr as usize * usize::from(self.caps.itt_entry_bytes)).next_multiple_of(256);
            let itt = DmaBuf::new(
                self.platform.clone(),
                Layout::from_size_align(itt_bytes, 256).map_err(|_| ItsError::Config("layout"))?,
            )?;
            // No clean: `DmaAlloc::alloc_zeroed` hands out memory whose zeros are already
            // visible at the point of coherency, and only the ITS writes the ITT.
            let state = DmaBuf::new(
                self.platform.clone(),
                Layout::from_size_align(nr as usize * 16, 8)
                    .map_err(|_| ItsError::Config("layout"))?,
            )?;
            Ok((itt, state))
        };
        let (itt, state) = match build() {
            Ok(v) => v,
            Err(e) => {
                release();
                return Err(e);
            }
        };
        let cmd = Command::Mapd {
            device: id,
            size,
            itt: IttAddr::new(itt.pa())?,
            valid: true,
        };
        match self.execute(1, |_| cmd, &[]) {
            Ok(out) if out.was_skipped(0) => {
                release();
                Err(out.error().unwrap_or(ItsError::Dead))
            }
            Ok(_) => Ok(Device {
                id,
                size,
                events: nr,
                itt: Some(itt),
                state: Some(state),
                mapped: 0,
            }),
            Err(e) => {
                release();
                if self.is_dead() {
                    // The ITS may still act on the MAPD: never reuse the ITT.
                    let mut itt = itt;
                    itt.leak_on_drop();
                }
                Err(e)
            }
        }
    }

    /// Unmaps a device: DISCARDs its mapped events, then MAPD with V = 0, and frees its
    /// memory. On failure the device is handed back, still owning its memory.
    ///
    /// # Errors
    /// [`UnmapError`] with the device and the reason; [`ItsError::EventForwarded`] (before any
    /// command) if an event is still forwarded to a vPE: unmap its vLPIs through the GICv4
    /// layer first.
    pub fn unmap_device(&self, mut dev: Device<P>) -> Result<(), UnmapError<P>> {
        let fail = |dev, error| Err(UnmapError { device: dev, error });
        if let Err(e) = self.alive() {
            return fail(dev, e);
        }
        for e in 0..dev.events {
            match dev.event(e) {
                Ok(s) if s.virt.is_some() => {
                    let error = ItsError::EventForwarded {
                        device: dev.id.get(),
                        event: e,
                    };
                    return fail(dev, error);
                }
                Ok(_) => {}
                Err(err) => return fail(dev, err),
            }
        }
        let mut events: heapless::Vec<u32, 256> = heapless::Vec::new();
        loop {
            events.clear();
            for e in 0..dev.events {
                match dev.event(e) {
                    Ok(s) if s.is_mapped() => {
                        if events.push(e).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => return fail(dev, err),
                }
            }
            if events.is_empty() {
                break;
            }
            let ev = &events;
            let id = dev.id;
            match self.execute(
                ev.len(),
                |i| Command::Discard {
                    device: id,
                    event: EventId::new(ev[i]),
                },
                &[],
            ) {
                Ok(out) => {
                    for (i, &e) in ev.iter().enumerate() {
                        if !out.was_skipped(i)
                            && let Err(err) = dev.set_event(e, EventState::default())
                        {
                            return fail(dev, err);
                        }
                    }
                    if let Some(err) = out.error() {
                        return fail(dev, err);
                    }
                }
                Err(err) => return fail(dev, err),
            }
        }
        let Some(itt) = dev.itt.as_ref() else {
            return fail(dev, ItsError::Dead);
        };
        let itt_addr = match IttAddr::new(itt.pa()) {
            Ok(a) => a,
            Err(e) => return fail(dev, e.into()),
        };
        let cmd = Command::Mapd {
            device: dev.id,
            size: dev.size,
            itt: itt_addr,
            valid: false,
        };
        match self.execute(1, |_| cmd, &[]) {
            Ok(out) if out.was_skipped(0) => {
                let e = out.error().unwrap_or(ItsError::Dead);
                fail(dev, e)
            }
            Ok(_) => {
                self.mapped.lock().remove(dev.id.get());
                // The ITS no longer references the ITT: it may be freed.
                drop(dev.itt.take());
                Ok(())
            }
            Err(e) => fail(dev, e),
        }
    }

    /// Maps events to LPIs on CPUs' collections (MAPTI), as one batch followed by one SYNC per
    /// target redistributor. Every item is checked before anything is written.
    ///
    /// # Errors
    /// [`ItsError::EventOutOfRange`], [`ItsError::EventMapped`] (also for an event listed
    /// twice), [`ItsError::BadLpi`], [`ItsError::NoSuchCpu`], queue errors; events whose
    /// MAPTI the ITS stalled on stay unmapped and the first is reported as
    /// [`ItsError::Stalled`].
    pub fn map_events(
        &self,
        dev: &mut Device<P>,
        items: &[(u32, Lpi, usize)],
    ) -> Result<(), ItsError> {
        self.alive()?;
        let mut syncs: heapless::Vec<SyncTarget, MAX_SYNCS> = heapless::Vec::new();
        for (k, &(event, lpi, cpu)) in items.iter().enumerate() {
            dev.check_event(event)?;
            if dev.event(event)?.is_mapped() || items[..k].iter().any(|it| it.0 == event) {
                return Err(ItsError::EventMapped {
                    device: dev.id.get(),
                    event,
                });
            }
            self.check_lpi(lpi)?;
            let t = SyncTarget::Redist(self.cpu(cpu)?.rdbase);
            if !syncs.contains(&t) {
                syncs
                    .push(t)
                    .map_err(|_| ItsError::Exhausted("sync targets"))?;
            }
        }
        let id = dev.id;
        let cpus = &self.cpus;
        let out = self.execute(
            items.len(),
            |i| {
                let (event, lpi, cpu) = items[i];
                Command::Mapti {
                    device: id,
                    event: EventId::new(event),
                    pintid: lpi.intid(),
                    icid: cpus[cpu].icid,
                }
            },
            &syncs,
        )?;
        for (i, &(event, lpi, cpu)) in items.iter().enumerate() {
            if !out.was_skipped(i) {
                dev.set_event(
                    event,
                    EventState {
                        phys: Some(PhysMapping {
                            lpi,
                            cpu: cpu as u16,
                        }),
                        virt: None,
                    },
                )?;
            }
        }
        out.into_result()
    }

    /// Maps one event (see [`Its::map_events`]).
    ///
    /// # Errors
    /// As [`Its::map_events`].
    pub fn map_event(
        &self,
        dev: &mut Device<P>,
        event: u32,
        lpi: Lpi,
        cpu: usize,
    ) -> Result<(), ItsError> {
        self.map_events(dev, &[(event, lpi, cpu)])
    }

    fn phys_of(&self, dev: &Device<P>, event: u32) -> Result<PhysMapping, ItsError> {
        let s = dev.event(event)?;
        match (s.phys, s.virt) {
            (Some(p), None) => Ok(p),
            (_, Some(_)) => Err(ItsError::EventForwarded {
                device: dev.id.get(),
                event,
            }),
            (None, None) => Err(ItsError::EventNotMapped {
                device: dev.id.get(),
                event,
            }),
        }
    }

    /// Removes an event's mapping (DISCARD, then SYNC).
    ///
    /// # Errors
    /// [`ItsError::EventNotMapped`], queue errors.
    pub fn unmap_event(&self, dev: &mut Device<P>, event: u32) -> Result<(), ItsError> {
        self.alive()?;
        let p = self.phys_of(dev, event)?;
        let sync = [SyncTarget::Redist(self.target(p.cpu)?.rdbase)];
        let out = self.execute(
            1,
            |_| Command::Discard {
                device: dev.id,
                event: EventId::new(event),
            },
            &sync,
        )?;
        if out.was_skipped(0) {
            return Err(out.error().unwrap_or(ItsError::Dead));
        }
        dev.set_event(event, EventState::default())
    }

    /// Moves an event to another CPU's collection (MOVI, then SYNC to both redistributors).
    ///
    /// # Errors
    /// [`ItsError::EventNotMapped`], [`ItsError::NoSuchCpu`], queue errors.
    pub fn move_event(&self, dev: &mut Device<P>, event: u32, cpu: usize) -> Result<(), ItsError> {
        self.alive()?;
        let p = self.phys_of(dev, event)?;
        let to = *self.cpu(cpu)?;
        let syncs = [
            SyncTarget::Redist(self.target(p.cpu)?.rdbase),
            SyncTarget::Redist(to.rdbase),
        ];
        let out = self.execute(
            1,
            |_| Command::Movi {
                device: dev.id,
                event: EventId::new(event),
                icid: to.icid,
            },
            &syncs,
        )?;
        if out.was_skipped(0) {
            return Err(out.error().unwrap_or(ItsError::Dead));
        }
        dev.set_event(
            event,
            EventState {
                phys: Some(PhysMapping {
                    lpi: p.lpi,
                    cpu: cpu as u16,
                }),
                virt: None,
            },
        )
    }

    fn event_cmd(&self, dev: &Device<P>, event: u32, cmd: Command) -> Result<(), ItsError> {
        self.alive()?;
        let s = dev.event(event)?;
        if !s.is_mapped() {
            return Err(ItsError::EventNotMapped {
                device: dev.id.get(),
                event,
            });
        }
        let sync = [self.sync_for(&s)?];
        let out = self.execute(1, |_| cmd, &sync)?;
        out.into_result()
    }

    /// Makes an event's interrupt pending (INT, then SYNC or VSYNC).
    ///
    /// # Errors
    /// [`ItsError::EventNotMapped`], queue errors.
    pub fn int_event(&self, dev: &Device<P>, event: u32) -> Result<(), ItsError> {
        self.event_cmd(
            dev,
            event,
            Command::Int {
                device: dev.id,
                event: EventId::new(event),
            },
        )
    }

    /// Clears an event's pending interrupt (CLEAR, then SYNC or VSYNC).
    ///
    /// # Errors
    /// [`ItsError::EventNotMapped`], queue errors.
    pub fn clear_event(&self, dev: &Device<P>, event: u32) -> Result<(), ItsError> {
        self.event_cmd(
            dev,
            event,
            Command::Clear {
                device: dev.id,
                event: EventId::new(event),
            },
        )
    }

    /// Makes the redistributor reload an event's configuration after a property-table change
    /// (INV, then SYNC or VSYNC).
    ///
    /// # Errors
    /// [`ItsError::EventNotMapped`], queue errors.
    pub fn inv_event(&self, dev: &Device<P>, event: u32) -> Result<(), ItsError> {
        self.event_cmd(
            dev,
            event,
            Command::Inv {
                device: dev.id,
                event: EventId::new(event),
            },
        )
    }

    /// Makes CPU `cpu`'s redistributor reload every LPI's configuration (INVALL, then SYNC).
    ///
    /// # Errors
    /// [`ItsError::NoSuchCpu`], queue errors.
    pub fn invall(&self, cpu: usize) -> Result<(), ItsError> {
        self.alive()?;
        let t = *self.cpu(cpu)?;
        let out = self.execute(
            1,
            |_| Command::Invall { icid: t.icid },
            &[SyncTarget::Redist(t.rdbase)],
        )?;
        out.into_result()
    }
}

impl<R: ItsRegisters, P: Platform> Its<R, P> {
    /// Disables the ITS (GITS_CTLR.Enabled = 0) and waits for GITS_CTLR.Quiescent, so it no
    /// longer reads its tables or queue: afterwards dropping the `Its` frees them. Devices
    /// should be unmapped first (a `Device` dropped while mapped keeps its ITT).
    ///
    /// Whether or not it succeeds, the driver takes no more work afterwards ([`ItsError::Dead`]):
    /// an ITS whose GITS_CTLR.Enabled was cleared processes no more commands.
    ///
    /// # Errors
    /// [`ItsError::RegisterTimeout`] when the ITS does not become quiescent (it stays marked
    /// enabled, and its memory is kept on drop; calling `disable` again waits again).
    pub fn disable(&self, timeout: Duration) -> Result<(), ItsError> {
        self.dead.store(true, Ordering::Release);
        self.queue.with_regs(|r| {
            let c = r.ctlr();
            r.set_ctlr(c.with_enabled(false));
            poll_until(&self.platform, timeout, || r.ctlr().quiescent()).map_err(|t| {
                ItsError::RegisterTimeout {
                    what: "GITS_CTLR.Quiescent",
                    waited_ns: t.waited_ns,
                }
            })
        })?;
        self.enabled.store(false, Ordering::Release);
        Ok(())
    }
}

impl<R: ItsRegisters, P: Platform> Drop for Its<R, P> {
    fn drop(&mut self) {
        if self.enabled.load(Ordering::Acquire) {
            // Still enabled: the ITS may read these tables and the queue at any time, so their
            // memory must never be reused. Keep it.
            self.queue.keep_memory();
            self.devices.keep_memory();
            for t in [&mut self.collections, &mut self.vpes]
                .into_iter()
                .flatten()
            {
                t.keep_memory();
            }
        }
    }
}

/// A device that could not be unmapped, handed back with the reason.
pub struct UnmapError<P: Platform> {
    /// The device, still owning its memory.
    pub device: Device<P>,
    /// Why.
    pub error: ItsError,
}

impl<P: Platform> core::fmt::Debug for UnmapError<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UnmapError")
            .field("device", &self.device)
            .field("error", &self.error)
            .finish()
    }
}
