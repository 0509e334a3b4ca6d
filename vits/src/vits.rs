// SPDX-License-Identifier: MIT OR Apache-2.0
//! The vITS: register frame, command queue, and the VM's devices, events and collections.

use heapless::index_map::FnvIndexMap;
use heapless::{Deque, Vec};
use its_core::cmd::{Command, DecodeError, ItsVersion, layout_for};
use its_core::ids::{CollectionId, DeviceId, EventId, RdBase, VLpi};
use its_core::regs::{GitsBaser, GitsCbaser, GitsCwriter};

use crate::backend::{Backend, LpiProp, PhysEvent};
use crate::config::{AssignedDevice, ConfigError, LpiConfigTable, VcpuId, VitsConfig};
use crate::error::{AccessError, CommandError, ErrorRecord};
use crate::memory::GuestMemory;
use crate::regs::{self, Access, Reg, Table};

/// How many recent errors [`Vits::errors`] keeps.
pub const ERROR_LOG: usize = 8;

/// Counters of what the vITS did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commands executed (including ignored ones; a stalled command counts at each attempt).
    pub commands: u64,
    /// Commands ignored because of an error.
    pub ignored: u64,
    /// Times the queue stalled.
    pub stalls: u64,
    /// Backend operations made.
    pub backend_ops: u64,
    /// Traps that ended with commands left to process (the work budget was spent).
    pub deferred: u64,
}

/// A device the guest mapped, as [`Vits::devices`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceView {
    /// The guest's DeviceID.
    pub guest: DeviceId,
    /// The physical DeviceID behind it.
    pub phys: DeviceId,
    /// Whether the physical DeviceID came from the pool (a made-up device).
    pub made_up: bool,
    /// EventID bits of its ITT (MAPD Size + 1).
    pub event_bits: u8,
    /// Whether the backend has the physical device mapped (false only while a command that
    /// failed in the backend is stalled).
    pub backed: bool,
}

/// An event the guest mapped, as [`Vits::events`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventView {
    /// The guest's DeviceID.
    pub guest_device: DeviceId,
    /// The physical event the backend knows.
    pub phys: PhysEvent,
    /// Its collection.
    pub icid: CollectionId,
    /// The INTID the guest gave (MAPTI pINTID): the vINTID.
    pub vintid: VLpi,
    /// Where the backend has it: the vCPU and the configuration it was given. `None` while
    /// its collection is not mapped (the vLPI is unmapped then, and mapped again when the
    /// collection is).
    pub live: Option<(VcpuId, LpiProp)>,
}

#[derive(Clone, Copy, Debug)]
struct DeviceEntry {
    phys: DeviceId,
    made_up: bool,
    event_bits: u8,
    backed: bool,
}

#[derive(Clone, Copy, Debug)]
struct Ite {
    icid: u16,
    vintid: VLpi,
    live: Option<(VcpuId, LpiProp)>,
}

/// Register state of the frame.
#[derive(Clone, Copy, Debug)]
struct Frame {
    enabled: bool,
    cbaser: GitsCbaser,
    /// Byte offsets.
    cwriter: u32,
    creadr: u32,
    stalled: bool,
    baser: [GitsBaser; 2],
}

impl Frame {
    fn reset() -> Self {
        Self {
            enabled: false,
            cbaser: GitsCbaser::new(),
            cwriter: 0,
            creadr: 0,
            stalled: false,
            baser: [Table::Devices.reset(), Table::Collections.reset()],
        }
    }

    fn queue_bytes(&self) -> u32 {
        self.cbaser.bytes() as u32
    }
}

/// Limits copied from the [`VitsConfig`].
#[derive(Clone, Copy, Debug)]
struct Limits {
    vcpus: u32,
    device_bits: u8,
    event_bits: u8,
    collection_bits: u8,
    vintid_bits: u8,
    pool: crate::config::DevicePool,
    iidr: u32,
    work_per_trap: u32,
}

/// Why a command did not complete: the error, and whether it stalls the queue.
type Fault<E> = CommandError<E>;

fn key(device: u32, event: u32) -> u64 {
    u64::from(device) << 32 | u64::from(event)
}

fn key_device(k: u64) -> u32 {
    (k >> 32) as u32
}

/// The guest-facing ITS of one VM (see the crate documentation).
///
/// `DEVICES` devices, `ITES` mapped events and `COLLECTIONS` collection IDs at most (powers
/// of two: the records are hash maps; the guest sees CIDbits = log2(`COLLECTIONS`) - 1).
/// `B` is the backend the commands become operations of.
///
/// One object per VM; the hypervisor serialises the traps of its vCPUs (every method takes
/// `&mut self`).
pub struct Vits<B: Backend, const DEVICES: usize, const ITES: usize, const COLLECTIONS: usize> {
    backend: B,
    limits: Limits,
    assigned: Vec<AssignedDevice, DEVICES>,
    frame: Frame,
    lpi: Option<LpiConfigTable>,
    devices: FnvIndexMap<u32, DeviceEntry, DEVICES>,
    ites: FnvIndexMap<u64, Ite, ITES>,
    collections: [Option<VcpuId>; COLLECTIONS],
    stats: Stats,
    errors: Deque<ErrorRecord<B::Error>, ERROR_LOG>,
    /// Backend operations made by the command being executed.
    ops: u32,
    /// A command stalled (or a table change failed) half done: some events may not be where
    /// their collections say. The vITS catches up before it runs another command.
    unsettled: bool,
}

impl<B: Backend, const DEVICES: usize, const ITES: usize, const COLLECTIONS: usize> core::fmt::Debug
    for Vits<B, DEVICES, ITES, COLLECTIONS>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vits")
            .field("enabled", &self.frame.enabled)
            .field("creadr", &self.frame.creadr)
            .field("cwriter", &self.frame.cwriter)
            .field("stalled", &self.frame.stalled)
            .field("devices", &self.devices.len())
            .field("events", &self.ites.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<B: Backend, const DEVICES: usize, const ITES: usize, const COLLECTIONS: usize>
    Vits<B, DEVICES, ITES, COLLECTIONS>
{
    /// A vITS for a VM described by `cfg`, over `backend`, in its reset state (disabled, no
    /// tables, no queue).
    ///
    /// # Errors
    /// [`ConfigError`] when a field is out of range, the assigned devices do not fit or
    /// collide, or the pool overlaps them.
    pub fn new(cfg: VitsConfig<'_>, backend: B) -> Result<Self, ConfigError> {
        const {
            assert!(COLLECTIONS >= 2 && COLLECTIONS.is_power_of_two() && COLLECTIONS <= 1 << 16);
        }
        let range = |ok: bool, what| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange { what })
            }
        };
        range((1..=1 << 16).contains(&cfg.vcpus), "vcpus")?;
        range((1..=32).contains(&cfg.device_bits), "device_bits")?;
        range((1..=32).contains(&cfg.event_bits), "event_bits")?;
        range((14..=32).contains(&cfg.vintid_bits), "vintid_bits")?;
        range(cfg.work_per_trap > 0, "work_per_trap")?;
        if cfg.assigned.len() > DEVICES {
            return Err(ConfigError::TooManyAssigned {
                assigned: cfg.assigned.len(),
                capacity: DEVICES,
            });
        }
        let mut assigned: Vec<AssignedDevice, DEVICES> = Vec::new();
        for (i, a) in cfg.assigned.iter().enumerate() {
            if u64::from(a.guest.get()) >> cfg.device_bits != 0 {
                return Err(ConfigError::GuestDeviceTooLarge(a.guest.get()));
            }
            if let Some(b) = cfg.assigned[..i]
                .iter()
                .find(|b| b.guest == a.guest || b.phys == a.phys)
            {
                let dup = if b.guest == a.guest { a.guest } else { a.phys };
                return Err(ConfigError::DuplicateDevice(dup.get()));
            }
            if cfg.pool.contains(a.phys) {
                return Err(ConfigError::PoolOverlap(a.phys.get()));
            }
            let _ = assigned.push(*a);
        }
        if cfg.pool.first.get().checked_add(cfg.pool.count).is_none() {
            return Err(ConfigError::PoolOverlap(cfg.pool.first.get()));
        }
        crate::logging::info!(
            "vits: vITS for {} vCPUs, {} assigned devices, {} DeviceID bits, {} vINTID bits",
            cfg.vcpus,
            cfg.assigned.len(),
            cfg.device_bits,
            cfg.vintid_bits
        );
        Ok(Self {
            backend,
            limits: Limits {
                vcpus: cfg.vcpus,
                device_bits: cfg.device_bits,
                event_bits: cfg.event_bits,
                collection_bits: COLLECTIONS.trailing_zeros() as u8,
                vintid_bits: cfg.vintid_bits,
                pool: cfg.pool,
                iidr: cfg.iidr,
                work_per_trap: cfg.work_per_trap,
            },
            assigned,
            frame: Frame::reset(),
            lpi: None,
            devices: FnvIndexMap::new(),
            ites: FnvIndexMap::new(),
            collections: [None; COLLECTIONS],
            stats: Stats::default(),
            errors: Deque::new(),
            ops: 0,
            unsettled: false,
        })
    }

    // ---- what the hypervisor calls ------------------------------------------------------

    /// A trapped read of `size` bytes at `offset` into the ITS control frame. A read of
    /// GITS_CREADR first processes queued commands (bounded by the work budget), so a guest
    /// polling for completion makes progress.
    ///
    /// # Errors
    /// [`AccessError`] for an access the architecture does not allow.
    pub fn read<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        offset: u64,
        size: usize,
    ) -> Result<u64, AccessError> {
        let a = Access::decode(offset, size)?;
        let value: u64 = match a.reg {
            Reg::Ctlr => regs::ctlr(self.frame.enabled).into_bits().into(),
            Reg::Iidr => self.limits.iidr.into(),
            Reg::Typer => self.typer(),
            Reg::Cbaser => self.frame.cbaser.into_bits(),
            Reg::Cwriter => GitsCwriter::at(self.frame.cwriter as usize).into_bits(),
            Reg::Creadr => {
                self.run_queue(mem);
                regs::creadr(self.frame.creadr, self.frame.stalled).into_bits()
            }
            Reg::Baser(n) => match Table::of(n) {
                Some(Table::Devices) => self.frame.baser[0].into_bits(),
                Some(Table::Collections) => self.frame.baser[1].into_bits(),
                None => 0,
            },
            Reg::Pidr2 => regs::PIDR2.into(),
            Reg::Reserved => 0,
        };
        Ok(a.extract(value))
    }

    /// A trapped write of `size` bytes of `value` at `offset` into the ITS control frame.
    /// A write of GITS_CWRITER (its low half or all of it) processes the new commands, bounded
    /// by the work budget; so does setting GITS_CTLR.Enabled.
    ///
    /// # Errors
    /// [`AccessError`] for an access the architecture does not allow.
    pub fn write<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        offset: u64,
        size: usize,
        value: u64,
    ) -> Result<(), AccessError> {
        let a = Access::decode(offset, size)?;
        match a.reg {
            Reg::Ctlr => {
                let was = self.frame.enabled;
                self.frame.enabled = value & 1 != 0;
                if !was && self.frame.enabled {
                    self.run_queue(mem);
                }
            }
            // Read-only or RAZ/WI.
            Reg::Iidr | Reg::Typer | Reg::Creadr | Reg::Pidr2 | Reg::Reserved => {}
            Reg::Cbaser => {
                // Writable only while the ITS is disabled (UNPREDICTABLE otherwise: ignored).
                if !self.frame.enabled {
                    let v = a.merge(self.frame.cbaser.into_bits(), value);
                    self.frame.cbaser = regs::cbaser(v);
                    // Writing GITS_CBASER resets GITS_CREADR (and clears Stalled).
                    self.frame.creadr = 0;
                    self.frame.stalled = false;
                }
            }
            Reg::Cwriter => self.write_cwriter(mem, a, value),
            Reg::Baser(n) => {
                if let (Some(t), false) = (Table::of(n), self.frame.enabled) {
                    let i = usize::from(t == Table::Collections);
                    let old = self.frame.baser[i];
                    let new = t.written(a.merge(old.into_bits(), value));
                    self.frame.baser[i] = new;
                    if new != old {
                        self.table_changed(mem, t);
                    }
                }
            }
        }
        Ok(())
    }

    /// Processes queued commands (bounded by the work budget), as a GITS_CREADR read does.
    /// Returns whether the budget ran out with commands left that can run (the hypervisor
    /// may call again, e.g. before resuming the vCPU, or leave it to the guest's next poll).
    /// A disabled, invalid or stalled queue has none that can run: `false`, so a loop over
    /// `process` ends.
    pub fn process<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> bool {
        self.run_queue(mem);
        self.runnable()
    }

    /// Sets the guest's LPI configuration table (from its redistributors' GICR_PROPBASER once
    /// it sets GICR_CTLR.EnableLPIs; `None` when LPIs are disabled again), then brings every
    /// mapped vLPI's configuration in step with it (an update per changed byte and a VINVALL
    /// per vCPU concerned). Until a table is given, LPIs are mapped disabled, with priority 0.
    ///
    /// # Errors
    /// The first configuration byte that could not be read or backend failure (also kept in
    /// [`Vits::errors`]); vLPIs after it keep their previous configuration.
    pub fn set_lpi_config<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        table: Option<LpiConfigTable>,
    ) -> Result<(), CommandError<B::Error>> {
        self.lpi = table;
        let r = self.refresh(mem, None);
        if let Err(e) = r {
            self.record(None, [0; 4], e, false);
        }
        r
    }

    /// Unmaps everything the guest mapped (every vLPI, then every device), forgets the
    /// collections and the LPI configuration table, and resets the registers, as at VM
    /// teardown or reset. After it the backend
    /// holds nothing of this VM, and the VM's vPEs can be destroyed.
    ///
    /// # Errors
    /// The first backend failure; what could not be unmapped stays recorded (see
    /// [`Vits::devices`], [`Vits::events`]) and a second call tries again.
    pub fn teardown(&mut self) -> Result<(), B::Error> {
        let r = self.drop_devices(|_| true);
        self.collections = [None; COLLECTIONS];
        self.frame = Frame::reset();
        self.lpi = None;
        match r {
            Ok(()) => {
                self.unsettled = false;
                crate::logging::info!("vits: torn down, every device unmapped");
                Ok(())
            }
            Err(e) => {
                self.record(None, [0; 4], e, false);
                match e {
                    CommandError::Backend(b) => Err(b),
                    // drop_devices fails only in the backend.
                    _ => Ok(()),
                }
            }
        }
    }

    // ---- inspection -----------------------------------------------------------------------

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably (e.g. to reconfigure a recording fake in tests).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Gives the backend back (call [`Vits::teardown`] first, or the backend keeps the VM's
    /// mappings).
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The most recent errors, oldest first (at most [`ERROR_LOG`]).
    pub fn errors(&self) -> impl Iterator<Item = &ErrorRecord<B::Error>> {
        self.errors.iter()
    }

    /// Whether the queue is stalled (GITS_CREADR.Stalled).
    pub fn is_stalled(&self) -> bool {
        self.frame.stalled
    }

    /// Whether the backend has every event where the records say: each event mapped
    /// exactly when its collection is, to that collection's vCPU. False after a command
    /// failed half done (it stalled, and the guest may abandon it with a GITS_CBASER write)
    /// until the vITS catches up, which it does before it runs the next command (a failure
    /// then stalls the queue there).
    pub fn is_consistent(&self) -> bool {
        !self.unsettled
    }

    /// Whether commands are queued and not yet processed.
    pub fn pending(&self) -> bool {
        self.frame.creadr != self.frame.cwriter
    }

    /// The guest's devices.
    pub fn devices(&self) -> impl Iterator<Item = DeviceView> + '_ {
        self.devices.iter().map(|(&g, d)| DeviceView {
            guest: DeviceId::new(g),
            phys: d.phys,
            made_up: d.made_up,
            event_bits: d.event_bits,
            backed: d.backed,
        })
    }

    /// The guest's mapped events.
    pub fn events(&self) -> impl Iterator<Item = EventView> + '_ {
        self.ites.iter().filter_map(|(&k, ite)| {
            let d = self.devices.get(&key_device(k))?;
            Some(EventView {
                guest_device: DeviceId::new(key_device(k)),
                phys: PhysEvent {
                    device: d.phys,
                    event: EventId::new(k as u32),
                },
                icid: CollectionId::new(ite.icid),
                vintid: ite.vintid,
                live: ite.live,
            })
        })
    }

    /// The vCPU collection `icid` is mapped to.
    pub fn collection(&self, icid: CollectionId) -> Option<VcpuId> {
        self.collections
            .get(usize::from(icid.get()))
            .copied()
            .flatten()
    }

    // ---- registers --------------------------------------------------------------------------

    fn typer(&self) -> u64 {
        regs::typer(
            self.limits.device_bits,
            self.limits.event_bits,
            self.limits.collection_bits,
        )
        .into_bits()
    }

    fn write_cwriter<M: GuestMemory + ?Sized>(&mut self, mem: &M, a: Access, value: u64) {
        if !a.covers_low_half() {
            // Bits [63:32] are RES0: nothing changes, nothing starts.
            return;
        }
        let w = GitsCwriter::from(a.merge(
            GitsCwriter::at(self.frame.cwriter as usize).into_bits(),
            value,
        ));
        let offset = w.byte_offset() as u32;
        let size = self.frame.queue_bytes();
        if offset >= size {
            // Beyond the queue: UNPREDICTABLE; the write is ignored.
            self.record(
                None,
                [0; 4],
                CommandError::CwriterOutOfRange { offset, size },
                false,
            );
            return;
        }
        self.frame.cwriter = offset;
        if w.retry() && self.frame.stalled {
            // Retry: processing restarts at the command that stalled.
            self.frame.stalled = false;
        }
        self.run_queue(mem);
    }

    /// A table's description changed (only possible while the ITS is disabled): it is new
    /// memory to the ITS, so what the old table held is gone. Devices (with their events)
    /// for the device table; collections for the collection table (their events stay, their
    /// vLPIs are unmapped until their collection is mapped again).
    fn table_changed<M: GuestMemory + ?Sized>(&mut self, mem: &M, t: Table) {
        let r = match t {
            Table::Devices => self.drop_devices(|_| true),
            Table::Collections => {
                self.collections = [None; COLLECTIONS];
                self.reconcile(mem, |_| true)
            }
        };
        if let Err(e) = r {
            self.unsettled = true;
            self.record(None, [0; 4], e, false);
        }
    }

    fn device_limit(&self) -> u64 {
        (1u64 << self.limits.device_bits).min(Table::Devices.capacity(self.frame.baser[0]))
    }

    fn collection_limit(&self) -> u64 {
        (1u64 << self.limits.collection_bits).min(Table::Collections.capacity(self.frame.baser[1]))
    }

    // ---- the queue ----------------------------------------------------------------------------

    fn record(
        &mut self,
        offset: Option<u32>,
        command: [u64; 4],
        error: Fault<B::Error>,
        stalled: bool,
    ) {
        // A guest's command errors are the guest's to fix; they are logged at warn so a
        // hypervisor sees a misbehaving driver (rate-limit in the logger if guests are hostile).
        crate::logging::warning!(
            "vits: guest command error (queue offset {:?}, opcode {:#04x}): {}{}",
            offset,
            command[0] as u8,
            error,
            if stalled { ", queue stalled" } else { "" }
        );
        if self.errors.is_full() {
            let _ = self.errors.pop_front();
        }
        let _ = self.errors.push_back(ErrorRecord {
            offset,
            command,
            error,
            stalled,
        });
    }

    /// Runs commands from GITS_CREADR towards GITS_CWRITER while the ITS is enabled, the queue
    /// valid and not stalled, and the work budget lasts.
    /// Whether commands are queued that the ITS may run now: enabled, a valid queue, not
    /// stalled, both offsets within the queue (a CWRITER beyond it runs nothing), and work.
    fn runnable(&self) -> bool {
        let f = &self.frame;
        let size = f.queue_bytes();
        f.enabled
            && f.cbaser.valid()
            && !f.stalled
            && f.cwriter < size
            && f.creadr < size
            && f.creadr != f.cwriter
    }

    fn run_queue<M: GuestMemory + ?Sized>(&mut self, mem: &M) {
        if !self.runnable() {
            return;
        }
        let f = self.frame;
        let size = f.queue_bytes();
        let mut work: u32 = 0;
        if self.unsettled {
            // A command left half done (stalled, then retried or abandoned): finish its
            // effects on the backend first.
            self.ops = 0;
            let r = self.reconcile(mem, |_| true);
            work = self.ops;
            if let Err(e) = r {
                self.stall(self.frame.creadr, [0; 4], e);
                return;
            }
            self.unsettled = false;
        }
        while self.frame.creadr != self.frame.cwriter && work < self.limits.work_per_trap {
            let offset = self.frame.creadr;
            let gpa = f.cbaser.addr().get() + u64::from(offset);
            let mut bytes = [0u8; 32];
            if mem.read(gpa, &mut bytes).is_err() {
                self.stall(offset, [0; 4], CommandError::CommandRead { gpa });
                return;
            }
            let mut raw = [0u64; 4];
            for (d, chunk) in raw.iter_mut().zip(bytes.chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                *d = u64::from_le_bytes(b);
            }
            self.ops = 0;
            let r = self.execute(mem, &raw);
            crate::logging::trace!(
                "vits: guest command {} at offset {:#x}: {}",
                its_core::cmd::mnemonic_of(raw[0] as u8),
                offset,
                if r.is_ok() { "done" } else { "refused" }
            );
            self.stats.commands += 1;
            work = work.saturating_add(1 + self.ops);
            if let Err(e) = r {
                if e.stalls() {
                    self.stall(offset, raw, e);
                    return;
                }
                self.stats.ignored += 1;
                self.record(Some(offset), raw, e, false);
            }
            self.frame.creadr = (offset + 32) % size;
        }
        if self.frame.creadr != self.frame.cwriter {
            crate::logging::debug!(
                "vits: work budget of {} spent, the rest of the guest's queue waits for the next trap",
                self.limits.work_per_trap
            );
            self.stats.deferred += 1;
        }
    }

    fn stall(&mut self, offset: u32, raw: [u64; 4], e: Fault<B::Error>) {
        self.frame.stalled = true;
        self.unsettled = true;
        self.stats.stalls += 1;
        self.record(Some(offset), raw, e, true);
    }

    fn execute<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        raw: &[u64; 4],
    ) -> Result<(), Fault<B::Error>> {
        let cmd = match Command::decode_lenient(raw, ItsVersion::V3) {
            Ok((c, _reserved)) => c,
            Err(DecodeError::UnknownOpcode { opcode }) => {
                return Err(if layout_for(opcode, ItsVersion::V4_1).is_some() {
                    CommandError::VirtualCommand { opcode }
                } else {
                    CommandError::UnknownOpcode { opcode }
                });
            }
            Err(_) => {
                return Err(CommandError::UnknownOpcode {
                    opcode: raw[0] as u8,
                });
            }
        };
        match cmd {
            Command::Mapd {
                device,
                size,
                valid,
                ..
            } => self.mapd(device.get(), size.bits(), valid),
            Command::Mapc {
                icid,
                rdbase,
                valid,
            } => self.mapc(mem, icid.get(), rdbase, valid),
            Command::Mapti {
                device,
                event,
                pintid,
                icid,
            } => self.mapti(mem, device.get(), event.get(), pintid.get(), icid.get()),
            Command::Mapi {
                device,
                event,
                icid,
            } => self.mapti(mem, device.get(), event.get(), event.get(), icid.get()),
            Command::Inv { device, event } => self.inv(mem, device.get(), event.get()),
            Command::Invall { icid } => self.invall(mem, icid.get()),
            Command::Discard { device, event } => self.discard(device.get(), event.get()),
            Command::Movi {
                device,
                event,
                icid,
            } => self.movi(mem, device.get(), event.get(), icid.get()),
            Command::Movall { rdbase1, rdbase2 } => {
                // Pending state lives with each vLPI in its vPE's pending table and travels
                // with it at every VMOVI (MAPC to another vCPU, MOVI): nothing is left on a
                // redistributor to move. The RDbases are still checked.
                self.vcpu(rdbase1)?;
                self.vcpu(rdbase2).map(drop)
            }
            Command::Int { device, event } => self.int_clear(device.get(), event.get(), true),
            Command::Clear { device, event } => self.int_clear(device.get(), event.get(), false),
            Command::Sync { rdbase } => {
                // Every backend operation is complete when it returns (the GICv4 layer waits
                // for the (V)SYNC of its own commands), so everything before this SYNC is
                // visible already: nothing to wait for. The RDbase is still checked.
                self.vcpu(rdbase).map(drop)
            }
            // decode_lenient with ItsVersion::V3 yields physical commands only.
            _ => Err(CommandError::UnknownOpcode {
                opcode: raw[0] as u8,
            }),
        }
    }

    // ---- lookups ------------------------------------------------------------------------------

    fn vcpu(&self, rdbase: RdBase) -> Result<VcpuId, Fault<B::Error>> {
        match rdbase.processor() {
            Some(p) if u32::from(p.get()) < self.limits.vcpus => Ok(VcpuId::new(p.get())),
            _ => Err(CommandError::RdbaseOutOfRange {
                rdbase: rdbase.raw(),
            }),
        }
    }

    fn check_icid(&self, icid: u16) -> Result<(), Fault<B::Error>> {
        let limit = self.collection_limit();
        if u64::from(icid) < limit {
            Ok(())
        } else {
            Err(CommandError::CollectionOutOfRange { icid, limit })
        }
    }

    /// The device, which must be mapped (and backed).
    fn device(&self, device: u32) -> Result<DeviceEntry, Fault<B::Error>> {
        let limit = self.device_limit();
        if u64::from(device) >= limit {
            return Err(CommandError::DeviceOutOfRange { device, limit });
        }
        match self.devices.get(&device) {
            Some(d) if d.backed => Ok(*d),
            _ => Err(CommandError::DeviceNotMapped { device }),
        }
    }

    /// The device and the event's ITE, which must exist.
    fn ite(&self, device: u32, event: u32) -> Result<(DeviceEntry, Ite), Fault<B::Error>> {
        let d = self.device(device)?;
        let limit = 1u64 << d.event_bits;
        if u64::from(event) >= limit {
            return Err(CommandError::EventOutOfRange {
                device,
                event,
                limit,
            });
        }
        match self.ites.get(&key(device, event)) {
            Some(i) => Ok((d, *i)),
            None => Err(CommandError::EventNotMapped { device, event }),
        }
    }

    /// The physical DeviceID for a new guest device: the assigned one, or one from the pool
    /// that no device of this VM uses.
    fn phys_for(&self, device: u32) -> Result<(DeviceId, bool), Fault<B::Error>> {
        if let Some(a) = self.assigned.iter().find(|a| a.guest.get() == device) {
            return Ok((a.phys, false));
        }
        let pool = self.limits.pool;
        // At most DEVICES are in use, so one of the first DEVICES + 1 is free.
        let tries = pool.count.min(DEVICES as u32 + 1);
        (0..tries)
            .map(|i| DeviceId::new(pool.first.get() + i))
            .find(|id| !self.devices.values().any(|d| d.phys == *id))
            .map(|id| (id, true))
            .ok_or(CommandError::PoolExhausted { device })
    }

    /// The configuration byte of LPI `intid` in the guest's table.
    fn prop<M: GuestMemory + ?Sized>(
        mem: &M,
        table: Option<LpiConfigTable>,
        intid: VLpi,
    ) -> Result<LpiProp, Fault<B::Error>> {
        let Some(t) = table else {
            return Ok(LpiProp::NONE);
        };
        if u64::from(intid.get()) >> t.id_bits.min(63) != 0 {
            return Ok(LpiProp::NONE);
        }
        let gpa = t
            .base
            .checked_add(u64::from(intid.get() - its_core::ids::LPI_BASE))
            .ok_or(CommandError::PropertyRead { gpa: t.base })?;
        let mut b = [0u8];
        mem.read(gpa, &mut b)
            .map_err(|_| CommandError::PropertyRead { gpa })?;
        Ok(LpiProp::from_byte(b[0]))
    }

    fn backend_op<T>(
        ops: &mut u32,
        stats: &mut Stats,
        r: Result<T, B::Error>,
    ) -> Result<T, Fault<B::Error>> {
        *ops += 1;
        stats.backend_ops += 1;
        r.map_err(CommandError::Backend)
    }

    // ---- commands -----------------------------------------------------------------------------

    fn mapd(&mut self, device: u32, bits: u8, valid: bool) -> Result<(), Fault<B::Error>> {
        let limit = self.device_limit();
        if u64::from(device) >= limit {
            return Err(CommandError::DeviceOutOfRange { device, limit });
        }
        if !valid {
            // V = 0: the device's events go first (a live vLPI is unmapped), then the device.
            // Unmapping a device that is not mapped does nothing.
            return self.drop_devices(|d| d == device);
        }
        if bits > self.limits.event_bits {
            return Err(CommandError::IttTooLarge { device, bits });
        }
        if let Some(&old) = self.devices.get(&device) {
            // A new ITT for a mapped device: its old events are gone. The physical device is
            // mapped again only if its size changes.
            self.drop_ites(|k| key_device(k) == device)?;
            let mut d = old;
            if d.backed && d.event_bits != bits {
                Self::backend_op(
                    &mut self.ops,
                    &mut self.stats,
                    self.backend.unmap_device(d.phys),
                )?;
                d.backed = false;
                self.set_device(device, d);
            }
            if !d.backed {
                Self::backend_op(
                    &mut self.ops,
                    &mut self.stats,
                    self.backend.map_device(d.phys, bits),
                )?;
                d.backed = true;
            }
            d.event_bits = bits;
            self.set_device(device, d);
            return Ok(());
        }
        if self.devices.len() >= DEVICES {
            return Err(CommandError::DevicesExhausted);
        }
        let (phys, made_up) = self.phys_for(device)?;
        Self::backend_op(
            &mut self.ops,
            &mut self.stats,
            self.backend.map_device(phys, bits),
        )?;
        let _ = self.devices.insert(
            device,
            DeviceEntry {
                phys,
                made_up,
                event_bits: bits,
                backed: true,
            },
        );
        Ok(())
    }

    fn set_device(&mut self, device: u32, d: DeviceEntry) {
        if let Some(e) = self.devices.get_mut(&device) {
            *e = d;
        }
    }

    fn mapc<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        icid: u16,
        rdbase: RdBase,
        valid: bool,
    ) -> Result<(), Fault<B::Error>> {
        self.check_icid(icid)?;
        let target = if valid {
            Some(self.vcpu(rdbase)?)
        } else {
            None
        };
        if let Some(slot) = self.collections.get_mut(usize::from(icid)) {
            *slot = target;
        }
        // Its events follow: mapped (when parked), moved (VMOVI) or unmapped (parked).
        self.reconcile(mem, |ite| ite.icid == icid)
    }

    fn mapti<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        device: u32,
        event: u32,
        pintid: u32,
        icid: u16,
    ) -> Result<(), Fault<B::Error>> {
        let d = self.device(device)?;
        let limit = 1u64 << d.event_bits;
        if u64::from(event) >= limit {
            return Err(CommandError::EventOutOfRange {
                device,
                event,
                limit,
            });
        }
        self.check_icid(icid)?;
        let vintid = VLpi::new_within(pintid, self.limits.vintid_bits)
            .map_err(|_| CommandError::IntidOutOfRange { intid: pintid })?;
        let k = key(device, event);
        if self.ites.contains_key(&k) {
            // UNPREDICTABLE; the mapping in place is kept.
            return Err(CommandError::EventMapped { device, event });
        }
        if self
            .ites
            .insert(
                k,
                Ite {
                    icid,
                    vintid,
                    live: None,
                },
            )
            .is_err()
        {
            return Err(CommandError::ItesExhausted);
        }
        let r = self.reconcile_one(mem, k);
        if r.is_err() {
            // Not mapped in the backend: forget it, so a retry maps it afresh.
            let _ = self.ites.swap_remove(&k);
        }
        r
    }

    fn inv<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        device: u32,
        event: u32,
    ) -> Result<(), Fault<B::Error>> {
        let (d, ite) = self.ite(device, event)?;
        let Some((vcpu, old)) = ite.live else {
            return Err(CommandError::CollectionNotMapped { icid: ite.icid });
        };
        let prop = Self::prop(mem, self.lpi, ite.vintid)?;
        if prop == old {
            // The backend's configuration is the guest's already.
            return Ok(());
        }
        let ev = PhysEvent {
            device: d.phys,
            event: EventId::new(event),
        };
        Self::backend_op(
            &mut self.ops,
            &mut self.stats,
            self.backend.update_vlpi(ev, prop, true),
        )?;
        if let Some(i) = self.ites.get_mut(&key(device, event)) {
            i.live = Some((vcpu, prop));
        }
        Ok(())
    }

    fn invall<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        icid: u16,
    ) -> Result<(), Fault<B::Error>> {
        self.check_icid(icid)?;
        if self.collection(CollectionId::new(icid)).is_none() {
            return Err(CommandError::CollectionNotMapped { icid });
        }
        self.refresh(mem, Some(icid))
    }

    /// Rereads the configuration byte of every live vLPI (of collection `icid`, or all),
    /// updates those that changed without invalidating, then invalidates every vCPU that has
    /// a live vLPI of the collection (VINVALL): also the vCPUs whose updates were made by an
    /// earlier attempt that stalled, so a retry completes the invalidation.
    fn refresh<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        icid: Option<u16>,
    ) -> Result<(), Fault<B::Error>> {
        let of = |ite: &Ite| icid.is_none_or(|c| ite.icid == c);
        let mut i = 0;
        while let Some((&k, &ite)) = self.ites.get_index(i) {
            i += 1;
            let (true, Some((vcpu, old))) = (of(&ite), ite.live) else {
                continue;
            };
            let prop = Self::prop(mem, self.lpi, ite.vintid)?;
            if prop == old {
                continue;
            }
            let phys = self.devices.get(&key_device(k)).map(|d| d.phys);
            let Some(device) = phys else { continue };
            let ev = PhysEvent {
                device,
                event: EventId::new(k as u32),
            };
            Self::backend_op(
                &mut self.ops,
                &mut self.stats,
                self.backend.update_vlpi(ev, prop, false),
            )?;
            if let Some(e) = self.ites.get_mut(&k) {
                e.live = Some((vcpu, prop));
            }
        }
        // One VINVALL per vCPU with a live vLPI concerned (vCPUs in ascending order).
        let mut done: Vec<VcpuId, COLLECTIONS> = Vec::new();
        for c in 0..COLLECTIONS {
            let Some(v) = self.collections[c] else {
                continue;
            };
            if icid.is_some_and(|x| usize::from(x) != c) || done.contains(&v) {
                continue;
            }
            let any_live = self
                .ites
                .values()
                .any(|ite| of(ite) && ite.live.is_some_and(|(lv, _)| lv == v));
            if !any_live {
                continue;
            }
            Self::backend_op(&mut self.ops, &mut self.stats, self.backend.invall(v))?;
            let _ = done.push(v);
        }
        Ok(())
    }

    fn discard(&mut self, device: u32, event: u32) -> Result<(), Fault<B::Error>> {
        let (d, ite) = self.ite(device, event)?;
        if ite.live.is_some() {
            let ev = PhysEvent {
                device: d.phys,
                event: EventId::new(event),
            };
            Self::backend_op(&mut self.ops, &mut self.stats, self.backend.unmap_vlpi(ev))?;
        }
        let _ = self.ites.swap_remove(&key(device, event));
        Ok(())
    }

    fn movi<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        device: u32,
        event: u32,
        icid: u16,
    ) -> Result<(), Fault<B::Error>> {
        self.ite(device, event)?;
        self.check_icid(icid)?;
        if self.collection(CollectionId::new(icid)).is_none() {
            return Err(CommandError::CollectionNotMapped { icid });
        }
        let k = key(device, event);
        if let Some(i) = self.ites.get_mut(&k) {
            i.icid = icid;
        }
        self.reconcile_one(mem, k)
    }

    fn int_clear(&mut self, device: u32, event: u32, set: bool) -> Result<(), Fault<B::Error>> {
        let (d, ite) = self.ite(device, event)?;
        if ite.live.is_none() {
            return Err(CommandError::CollectionNotMapped { icid: ite.icid });
        }
        let ev = PhysEvent {
            device: d.phys,
            event: EventId::new(event),
        };
        let r = if set {
            self.backend.int(ev)
        } else {
            self.backend.clear(ev)
        };
        Self::backend_op(&mut self.ops, &mut self.stats, r)
    }

    // ---- keeping the backend in step ---------------------------------------------------------

    /// Brings one event's vLPI in line with its collection: mapped to the collection's vCPU
    /// (with the guest's configuration byte), moved there, or unmapped when the collection
    /// is not mapped.
    fn reconcile_one<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        k: u64,
    ) -> Result<(), Fault<B::Error>> {
        let Some(&ite) = self.ites.get(&k) else {
            return Ok(());
        };
        let Some(d) = self.devices.get(&key_device(k)).copied() else {
            return Ok(());
        };
        let ev = PhysEvent {
            device: d.phys,
            event: EventId::new(k as u32),
        };
        let target = self
            .collections
            .get(usize::from(ite.icid))
            .copied()
            .flatten();
        let live = match (ite.live, target) {
            (None, Some(v)) => {
                let prop = Self::prop(mem, self.lpi, ite.vintid)?;
                Self::backend_op(
                    &mut self.ops,
                    &mut self.stats,
                    self.backend.map_vlpi(ev, v, ite.vintid, prop),
                )?;
                Some((v, prop))
            }
            (Some((cur, prop)), Some(v)) if cur != v => {
                Self::backend_op(
                    &mut self.ops,
                    &mut self.stats,
                    self.backend.move_vlpi(ev, v),
                )?;
                Some((v, prop))
            }
            (Some(_), None) => {
                Self::backend_op(&mut self.ops, &mut self.stats, self.backend.unmap_vlpi(ev))?;
                None
            }
            (live, _) => live,
        };
        if let Some(i) = self.ites.get_mut(&k) {
            i.live = live;
        }
        Ok(())
    }

    /// [`Vits::reconcile_one`] for every event `pick` selects.
    fn reconcile<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        pick: impl Fn(&Ite) -> bool,
    ) -> Result<(), Fault<B::Error>> {
        let mut i = 0;
        while let Some((&k, &ite)) = self.ites.get_index(i) {
            i += 1;
            if pick(&ite) {
                self.reconcile_one(mem, k)?;
            }
        }
        Ok(())
    }

    /// Forgets the events `pick` selects, unmapping their live vLPIs first.
    fn drop_ites(&mut self, pick: impl Fn(u64) -> bool) -> Result<(), Fault<B::Error>> {
        let mut i = 0;
        while let Some((&k, &ite)) = self.ites.get_index(i) {
            if !pick(k) {
                i += 1;
                continue;
            }
            if ite.live.is_some()
                && let Some(d) = self.devices.get(&key_device(k))
            {
                let ev = PhysEvent {
                    device: d.phys,
                    event: EventId::new(k as u32),
                };
                Self::backend_op(&mut self.ops, &mut self.stats, self.backend.unmap_vlpi(ev))?;
            }
            // swap_remove moves the last entry to index i: look at i again.
            let _ = self.ites.swap_remove(&k);
        }
        Ok(())
    }

    /// Unmaps and forgets the devices `pick` selects (by guest DeviceID), their events first.
    fn drop_devices(&mut self, pick: impl Fn(u32) -> bool) -> Result<(), Fault<B::Error>> {
        self.drop_ites(|k| pick(key_device(k)))?;
        let mut i = 0;
        while let Some((&g, &d)) = self.devices.get_index(i) {
            if !pick(g) {
                i += 1;
                continue;
            }
            if d.backed {
                Self::backend_op(
                    &mut self.ops,
                    &mut self.stats,
                    self.backend.unmap_device(d.phys),
                )?;
            }
            let _ = self.devices.swap_remove(&g);
        }
        Ok(())
    }
}
