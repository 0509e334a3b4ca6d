// SPDX-License-Identifier: MIT OR Apache-2.0
//! A host model of GICv4 ITSs and redistributors, to test drivers against.
//!
//! The model follows QEMU's GICv4.0 model (`hw/intc/arm_gicv3_its.c`, `arm_gicv3_redist.c`)
//! and the architecture where QEMU is silent:
//! - `GITS_BASER<n>`, GITS_CBASER and the queue are latched when GITS_CTLR.Enabled goes to 1,
//!   and read-only while enabled;
//! - commands run when GITS_CWRITER is written (or after a configured number of GITS_CREADR
//!   polls, or never, to model a slow or dead ITS);
//! - the device, collection and vPE tables (flat or two-level) and the ITTs live in the
//!   driver's memory, in QEMU's entry formats, read and written through the fake platform; a
//!   table or queue the driver programmed non-shareable is read through the
//!   point-of-coherency view, so a missing clean is seen;
//! - each command is checked as QEMU checks it, and every error QEMU would log with
//!   `-d guest_errors` is recorded ([`GicModel::errors`]), with QEMU's wording; the model is
//!   also stricter than QEMU where QEMU silently tolerates driver bugs (reserved bits, unknown
//!   opcodes, VMAPTI over a live mapping, SYNC to a missing redistributor, LPIs dropped because
//!   a table is too small), and says so in the message;
//! - memory faults (a table, ITT or queue address that is not live memory) stall the queue
//!   (GITS_CREADR.Stalled), as QEMU does;
//! - pending state of physical LPIs lives in the redistributors' pending tables, of virtual
//!   LPIs in the vPEs' virtual pending tables; a vLPI for a vPE that is not resident rings its
//!   doorbell.
//!
//! It can also be told to stall at a given command, to advance GITS_CREADR only after N polls
//! or never, to report non-shareable memory on every base register, to refuse page sizes or
//! two-level tables, to report Dirty for N reads, and to report GICv4.1 capabilities.

mod its;
mod redist;
mod tables;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use its_core::cmd::{Command, ItsVersion};
use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_core::regs::{
    GicrCtlr, GicrInvallr, GicrInvlpir, GicrLpir, GicrPendbaser, GicrPropbaser, GicrSyncr,
    GicrTyper, GicrWaker, GitsBaser, GitsCbaser, GitsCreadr, GitsCtlr, GitsCwriter, GitsTyper,
    Shareability,
};

use crate::memory::GicMemory;
use crate::platform::{Event, FakePlatform, View};
use its::ItsState;
use redist::RdState;
pub use tables::{CteView, DteView, IteView, VteView};

/// When an ITS processes the commands written before a GITS_CWRITER write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delay {
    /// During the GITS_CWRITER write (as QEMU does).
    Immediate,
    /// On the Nth GITS_CREADR read after the write.
    AfterPolls(u32),
    /// Never: a dead ITS.
    Never,
}

/// Which page sizes `GITS_BASER<n>.Page_Size` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSizes {
    /// 4 KiB.
    pub k4: bool,
    /// 16 KiB.
    pub k16: bool,
    /// 64 KiB.
    pub k64: bool,
}

/// Where the model is as strict as the architecture rather than as lenient as QEMU. Each
/// check is a behaviour real GICs are allowed to have (and some have) that QEMU's model does
/// not, so a driver that passes only on QEMU loses interrupts or corrupts tables on
/// hardware. [`Strict::qemu`] turns them all off, [`Strict::hardware`] all on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strict {
    /// The redistributors cache LPI and vLPI configuration (the property bytes): a change
    /// is seen only after an invalidation of that LPI (INV, GICR_INVLPIR) or of all of them
    /// (INVALL, VINVALL, GICR_INVALLR), or, for a vPE, at its (re)mapping. A GICv4.1 vPE's
    /// default doorbell is a physical LPI held like the others by each redistributor, and
    /// INVDB for the vPE reloads it on every redistributor (a VMAPP does not). The cache holds
    /// the bytes as they were at the last invalidation, so a missing or misordered
    /// invalidation loses or delays the interrupt. QEMU reads the table at each use.
    pub config_cache: bool,
    /// GICv4.1 VMAPP Alloc: 1 only on the first VMAPP V = 1 of a vPE across the ITSs and on
    /// the last VMAPP V = 0; and VMAPP V = 0 only for a vPE mapped on that ITS.
    pub vmapp_alloc: bool,
    /// Reserved fields by command form: GICv4.1 VMAPP with V = 0 may carry only vPEID, V and
    /// Alloc.
    pub res0_by_form: bool,
    /// GICv4.1 vPE table sharing: a redistributor's GICR_VPROPBASER must point at the vPE
    /// table of the ITSs that share theirs with it (GITS_TYPER.SVPET), at no ITS's table
    /// otherwise, and at the same table as every redistributor of its CommonLPIAff group;
    /// sibling ITSs share one table; a resident vPE ID must be inside the redistributor's
    /// table.
    pub vpe_table_sharing: bool,
    /// GICR_VPENDBASER.IDAI and PendingLast as the architecture defines them: IDAI reads 0
    /// after a deschedule (the redistributor wrote the VPT's IMPLEMENTATION DEFINED area),
    /// and making a vPE resident with IDAI = 0 on a VPT whose area was never written is an
    /// error; GICv4.1 PendingLast written 1 at deschedule reads 1 ("the vPE will be back":
    /// no scan, no doorbell). QEMU echoes IDAI and always computes PendingLast.
    pub residency: bool,
}

impl Strict {
    /// QEMU's leniency: no check.
    pub const fn qemu() -> Self {
        Self {
            config_cache: false,
            vmapp_alloc: false,
            res0_by_form: false,
            vpe_table_sharing: false,
            residency: false,
        }
    }

    /// Every check.
    pub const fn hardware() -> Self {
        Self {
            config_cache: true,
            vmapp_alloc: true,
            res0_by_form: true,
            vpe_table_sharing: true,
            residency: true,
        }
    }
}

/// The shape of the modelled GIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Redistributors (CPUs).
    pub cpus: usize,
    /// ITSs.
    pub its_count: usize,
    /// V3: physical only; V4_0: QEMU's GICv4.0; V4_1: GICv4.1 capabilities and layouts.
    pub version: ItsVersion,
    /// GITS_TYPER.PTA: RDbase is a physical address.
    pub pta: bool,
    /// GITS_TYPER.VMOVP: one VMOVP suffices. When false, every ITS needs its own VMOVP with
    /// the same SequenceNumber and an ITSList naming it.
    pub single_vmovp: bool,
    /// Accepted page sizes.
    pub page_sizes: PageSizes,
    /// `GITS_BASER<n>.Indirect` is writable.
    pub indirect: bool,
    /// Every base register (CBASER, BASER, PROPBASER, PENDBASER) reads back non-shareable.
    pub non_shareable: bool,
    /// Only the `GITS_BASER<n>` tables read back non-shareable (the command queue and the
    /// redistributors' tables stay shareable).
    pub non_shareable_tables: bool,
    /// GICR_TYPER.DirectLPI: GICR_INVLPIR, GICR_INVALLR and GICR_SYNCR exist.
    pub direct_lpi: bool,
    /// GICR_TYPER.Dirty, and how many reads of GICR_VPENDBASER show Dirty after a change.
    pub dirty_reads: Option<u32>,
    /// GITS_TYPER.Devbits + 1.
    pub device_bits: u8,
    /// GITS_TYPER.IDbits + 1.
    pub event_bits: u8,
    /// GITS_TYPER.CIDbits + 1 (CIL = 1).
    pub collection_bits: u8,
    /// GITS_TYPER.HCC.
    pub hcc: u8,
    /// GITS_TYPER.ITT_entry_size + 1.
    pub itt_entry_bytes: u8,
    /// GICD_TYPER.IDbits + 1.
    pub dist_id_bits: u8,
    /// GITS_CTLR reads without Quiescent this many times after Enabled is cleared.
    pub quiescent_reads: u32,
    /// GICR_WAKER reads with ChildrenAsleep this many times after ProcessorSleep is cleared.
    pub waker_reads: u32,
    /// Where the model is stricter than QEMU.
    pub strict: Strict,
    /// GITS_TYPER.SVPET (GICv4.1): 0, the ITSs share their vPE table with no redistributor;
    /// 1 to 3, with the redistributors whose affinity matches the ITS's (GITS_MPIDR) at
    /// Aff3, Aff3.Aff2, Aff3.Aff2.Aff1.
    pub svpet: u8,
    /// GICR_TYPER.CommonLPIAff of every redistributor: 0, all share their LPI and (GICv4.1)
    /// vPE tables; 1 to 3, those with the same Aff3, Aff3.Aff2, Aff3.Aff2.Aff1.
    pub common_lpi_aff: u8,
    /// GITS_MPIDR of every ITS (Aff3 \[31:24\], Aff2 \[23:16\], Aff1 \[15:8\]). The
    /// redistributor of CPU `c` has affinity `c` (Aff0 = c).
    pub its_affinity: u32,
    /// When the last handle to the model goes, errors nobody looked at
    /// ([`GicModel::errors`], [`GicModel::assert_no_errors`], [`GicModel::clear_errors`])
    /// make it panic (or, while a test is already panicking, are printed), so a driver
    /// error whose cause only the model saw is never silent.
    pub check_errors_on_drop: bool,
}

impl ModelConfig {
    /// QEMU's virt board with `gic-version=4`: GICv4.0, one ITS, PTA = 0, VMOVP = 1, 16-bit
    /// IDs, 12-byte ITT entries, no DirectLPI, no Dirty.
    pub fn qemu(cpus: usize) -> Self {
        Self {
            cpus,
            its_count: 1,
            version: ItsVersion::V4_0,
            pta: false,
            single_vmovp: true,
            page_sizes: PageSizes {
                k4: true,
                k16: true,
                k64: true,
            },
            indirect: true,
            non_shareable: false,
            non_shareable_tables: false,
            direct_lpi: false,
            dirty_reads: None,
            device_bits: 16,
            event_bits: 16,
            collection_bits: 16,
            hcc: 0,
            itt_entry_bytes: 12,
            dist_id_bits: 16,
            quiescent_reads: 0,
            waker_reads: 0,
            strict: Strict::qemu(),
            svpet: 0,
            common_lpi_aff: 1,
            its_affinity: 0,
            check_errors_on_drop: true,
        }
    }

    /// QEMU's shape (see [`ModelConfig::qemu`]) with a hardware's strictness
    /// ([`ModelConfig::harden`]).
    pub fn hardware(cpus: usize) -> Self {
        Self::qemu(cpus).harden()
    }

    /// This shape, as strict as the architecture: every [`Strict`] check, and
    /// GITS_TYPER.VMOVP = 0 (VMOVP goes to every ITS with an ITSList and a sequence number,
    /// as on GIC-600-class hardware), with GITS_CTLR.ITS_Number reset to 0 on every ITS.
    pub fn harden(self) -> Self {
        Self {
            strict: Strict::hardware(),
            single_vmovp: false,
            ..self
        }
    }

    /// A GICv4.1 system: the GICv4.1 command layouts, RVPEID, DirectLPI and Dirty.
    pub fn gicv41(cpus: usize) -> Self {
        Self {
            version: ItsVersion::V4_1,
            direct_lpi: true,
            dirty_reads: Some(2),
            svpet: 1,
            ..Self::qemu(cpus)
        }
    }

    fn typer(&self) -> GitsTyper {
        GitsTyper::new()
            .with_physical(true)
            .with_virtual_lpis(self.version != ItsVersion::V3)
            .with_itt_entry_size(self.itt_entry_bytes - 1)
            .with_id_bits(self.event_bits - 1)
            .with_dev_bits(self.device_bits - 1)
            .with_pta(self.pta)
            .with_hcc(self.hcc)
            .with_cid_bits(self.collection_bits - 1)
            .with_cil(true)
            .with_vmovp(self.version != ItsVersion::V3 && self.single_vmovp)
            .with_vmapp(self.version == ItsVersion::V4_1)
            .with_vsgi(self.version == ItsVersion::V4_1)
            .with_svpet(if self.version == ItsVersion::V4_1 {
                self.svpet & 3
            } else {
                0
            })
    }

    /// The affinity group of redistributor `cpu` at its CommonLPIAff level.
    pub(crate) fn rd_group(&self, cpu: usize) -> u32 {
        common_aff(cpu as u32, self.common_lpi_aff)
    }

    /// The affinity group of the redistributors the ITSs share their vPE table with (`None`
    /// when SVPET = 0).
    pub(crate) fn its_share_group(&self) -> Option<u32> {
        (self.version == ItsVersion::V4_1 && self.svpet != 0)
            .then(|| common_aff(self.its_affinity, self.svpet))
    }

    /// The physical address of redistributor `cpu`'s RD_base (used when PTA = 1): QEMU's
    /// layout, 0x080a_0000 plus a 256 KiB stride.
    pub fn rd_base(&self, cpu: usize) -> u64 {
        0x080a_0000 + (cpu as u64) * 0x4_0000
    }
}

/// `aff` masked down to the affinity levels a CommonLPIAff (or SVPET) value of `level`
/// compares: 0 nothing (all match), 1 Aff3, 2 Aff3.Aff2, 3 Aff3.Aff2.Aff1.
pub(crate) fn common_aff(aff: u32, level: u8) -> u32 {
    match level & 3 {
        0 => 0,
        l => aff & !(u32::MAX >> (u32::from(l) * 8)),
    }
}

/// An error the model recorded: what QEMU would log with `-d guest_errors`, or a driver bug
/// QEMU would tolerate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelError {
    /// Where: "its0", "rd1", ...
    pub source: String,
    /// What, worded as QEMU words it where QEMU logs it.
    pub message: String,
}

impl core::fmt::Display for ModelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

pub(crate) struct World {
    pub(crate) cfg: ModelConfig,
    pub(crate) mem: Arc<dyn GicMemory>,
    pub(crate) fake: Option<FakePlatform>,
    pub(crate) its: Vec<ItsState>,
    pub(crate) rds: Vec<RdState>,
    pub(crate) errors: Vec<ModelError>,
    /// Errors looked at so far (the drop check reports the rest).
    pub(crate) seen: usize,
    pub(crate) knobs: Knobs,
    /// The vLPI configuration each vPE's redistributor holds (strict `config_cache`).
    pub(crate) vcache: HashMap<u64, redist::VCache>,
    /// For each vPE ID, the ITSs (bit per ITS index) that processed a VMAPP V = 1 for it and
    /// no VMAPP V = 0 since.
    pub(crate) vmapp_on: HashMap<u16, u32>,
}

impl Drop for World {
    fn drop(&mut self) {
        if !self.cfg.check_errors_on_drop {
            return;
        }
        // A fault the test injected is what it asked for.
        let unseen: Vec<ModelError> = self.errors[self.seen.min(self.errors.len())..]
            .iter()
            .filter(|e| !e.message.contains("(injected)"))
            .cloned()
            .collect();
        if unseen.is_empty() {
            return;
        }
        let unseen = join(&unseen);
        if std::thread::panicking() {
            // The test already failed (maybe with the driver's view of this): add the
            // model's, which is often the cause.
            std::eprintln!("the GIC model recorded errors nobody checked:\n{unseen}");
        } else {
            panic!("the GIC model recorded errors nobody checked:\n{unseen}");
        }
    }
}

/// Register waits the model drags out on request (fault injection; see the `set_*_reads`
/// methods of [`GicModel`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Knobs {
    /// GICR_CTLR.RWP reads set this many times after EnableLPIs is cleared.
    pub(crate) rwp_reads: u32,
    /// GICR_SYNCR.Busy reads set this many times after a GICR_INVLPIR, GICR_INVALLR or
    /// GICR_CLRLPIR write.
    pub(crate) syncr_reads: u32,
}

impl World {
    pub(crate) fn error(&mut self, source: impl Into<String>, message: impl Into<String>) {
        let e = ModelError {
            source: source.into(),
            message: message.into(),
        };
        // What QEMU would log with `-d guest_errors`: a warning.
        #[cfg(feature = "log")]
        log::warn!("its-model: {e}");
        self.errors.push(e);
    }

    pub(crate) fn reg_event(&self, block: String, reg: &'static str, value: u64) {
        self.mem.record(Event::Reg { block, reg, value });
    }

    /// The GICv4.1 vPE configuration table address the last VMAPP of `vpe` gave, on the first
    /// ITS that has one.
    pub(crate) fn vconf(&self, vpe: u16) -> Option<u64> {
        self.its
            .iter()
            .find_map(|i| i.v41.get(&vpe).map(|x| x.vconf))
    }

    /// The redistributor an RDbase field names, if any.
    pub(crate) fn rd_index(&self, rdbase: u64) -> Option<usize> {
        if self.cfg.pta {
            (0..self.cfg.cpus).find(|&c| self.cfg.rd_base(c) >> 16 == rdbase)
        } else {
            let n = usize::try_from(rdbase).ok()?;
            (n < self.cfg.cpus).then_some(n)
        }
    }
}

/// A handle to the model. Cheap to clone; every clone sees the same state.
#[derive(Clone)]
pub struct GicModel {
    world: Arc<Mutex<World>>,
}

impl core::fmt::Debug for GicModel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GicModel").finish_non_exhaustive()
    }
}

impl GicModel {
    /// A model of `cfg`, reading and writing memory through `plat`.
    pub fn new(cfg: ModelConfig, plat: FakePlatform) -> Self {
        Self::build(cfg, Arc::new(plat.clone()), Some(plat))
    }

    /// A model of `cfg` reading and writing memory through `mem`: any allocator's, through
    /// [`crate::TrackedDma`], or a hypervisor's own [`GicMemory`].
    pub fn with_memory(cfg: ModelConfig, mem: impl GicMemory + 'static) -> Self {
        Self::build(cfg, Arc::new(mem), None)
    }

    fn build(cfg: ModelConfig, mem: Arc<dyn GicMemory>, fake: Option<FakePlatform>) -> Self {
        let its = (0..cfg.its_count).map(|i| ItsState::new(i, &cfg)).collect();
        let rds = (0..cfg.cpus).map(|c| RdState::new(c, &cfg)).collect();
        Self {
            world: Arc::new(Mutex::new(World {
                cfg,
                mem,
                fake,
                its,
                rds,
                errors: Vec::new(),
                seen: 0,
                knobs: Knobs::default(),
                vcache: HashMap::new(),
                vmapp_on: HashMap::new(),
            })),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration.
    pub fn config(&self) -> ModelConfig {
        self.lock().cfg.clone()
    }

    /// The fake platform the model reads memory through, if it was made with one
    /// ([`GicModel::new`]).
    pub fn platform(&self) -> Option<FakePlatform> {
        self.lock().fake.clone()
    }

    /// ITS `n`'s registers.
    pub fn its(&self, n: usize) -> ItsHandle {
        ItsHandle {
            model: self.clone(),
            n,
        }
    }

    /// Redistributor `cpu`'s registers.
    pub fn redist(&self, cpu: usize) -> RedistHandle {
        RedistHandle {
            model: self.clone(),
            cpu,
        }
    }

    /// Every error recorded so far (they count as looked at: see
    /// [`ModelConfig::check_errors_on_drop`]).
    pub fn errors(&self) -> Vec<ModelError> {
        let mut w = self.lock();
        w.seen = w.errors.len();
        w.errors.clone()
    }

    /// Forgets the recorded errors.
    pub fn clear_errors(&self) {
        let mut w = self.lock();
        w.errors.clear();
        w.seen = 0;
    }

    /// Panics with the list of errors if any was recorded (for tests).
    #[track_caller]
    pub fn assert_no_errors(&self) {
        let e = self.errors();
        assert!(e.is_empty(), "the GIC model recorded errors:\n{}", join(&e));
    }

    /// The commands ITS `n` has processed, with their queue offsets.
    pub fn commands(&self, n: usize) -> Vec<(usize, Command)> {
        self.lock()
            .its
            .get(n)
            .map(|i| i.log.clone())
            .unwrap_or_default()
    }

    /// Forgets ITS `n`'s command log.
    pub fn clear_commands(&self, n: usize) {
        if let Some(i) = self.lock().its.get_mut(n) {
            i.log.clear();
        }
    }

    /// Counters of ITS `n`: (commands processed, GITS_CWRITER writes, GITS_CREADR reads).
    pub fn counters(&self, n: usize) -> (u64, u64, u64) {
        self.lock()
            .its
            .get(n)
            .map(|i| (i.processed, i.cwriter_writes, i.creadr_reads))
            .unwrap_or((0, 0, 0))
    }

    /// Makes ITS `n` stall when it reaches the command with this index (counting every
    /// command it has processed since it was made).
    pub fn stall_at(&self, n: usize, index: Option<u64>) {
        if let Some(i) = self.lock().its.get_mut(n) {
            i.stall_at = index;
        }
    }

    /// Makes ITS `n` die when it reaches the command with this index (counted as for
    /// [`GicModel::stall_at`]): it stops there, and processes nothing more, as with
    /// [`Delay::Never`], until [`GicModel::set_delay`] or [`GicModel::process_now`].
    pub fn die_at(&self, n: usize, index: Option<u64>) {
        if let Some(i) = self.lock().its.get_mut(n) {
            i.die_at = index;
        }
    }

    /// Sets when ITS `n` processes commands.
    pub fn set_delay(&self, n: usize, d: Delay) {
        if let Some(i) = self.lock().its.get_mut(n) {
            i.delay = d;
        }
    }

    /// Runs whatever ITS `n` has pending now (to revive a `Delay::Never` ITS).
    pub fn process_now(&self, n: usize) {
        let mut w = self.lock();
        its::process(&mut w, n);
    }

    /// Sets the non-shareable readback of every base register.
    pub fn set_non_shareable(&self, on: bool) {
        self.lock().cfg.non_shareable = on;
    }

    /// Makes GITS_CTLR read without Quiescent `reads` times after Enabled is cleared, from
    /// now on and for a disable in progress (`u32::MAX`: an ITS that never becomes quiescent;
    /// 0 revives it).
    pub fn set_quiescent_reads(&self, reads: u32) {
        let mut w = self.lock();
        w.cfg.quiescent_reads = reads;
        for its in w.its.iter_mut().filter(|i| i.quiescent_left > 0) {
            its.quiescent_left = reads;
        }
    }

    /// Makes GICR_WAKER read with ChildrenAsleep `reads` times after ProcessorSleep is
    /// cleared, from now on and for a wake-up in progress, on every redistributor
    /// (`u32::MAX`: one that never wakes; 0 wakes it).
    pub fn set_waker_reads(&self, reads: u32) {
        let mut w = self.lock();
        w.cfg.waker_reads = reads;
        for rd in w.rds.iter_mut() {
            rd.set_waker_left(reads);
        }
    }

    /// Makes GICR_CTLR read with RWP `reads` times after EnableLPIs is cleared, from now on
    /// and for a write in progress, on every redistributor (`u32::MAX`: RWP never clears).
    pub fn set_rwp_reads(&self, reads: u32) {
        let mut w = self.lock();
        w.knobs.rwp_reads = reads;
        for rd in w.rds.iter_mut() {
            rd.set_rwp_left(reads);
        }
    }

    /// Makes GICR_SYNCR read with Busy `reads` times after each GICR_INVLPIR, GICR_INVALLR or
    /// GICR_CLRLPIR write, from now on and for one in progress, on every redistributor
    /// (`u32::MAX`: never idle).
    pub fn set_syncr_busy_reads(&self, reads: u32) {
        let mut w = self.lock();
        w.knobs.syncr_reads = reads;
        for rd in w.rds.iter_mut() {
            rd.set_syncr_left(reads);
        }
    }

    /// Makes GICR_VPENDBASER read with Dirty `reads` times after each change, from now on and
    /// for one in progress. Only on a model built with `dirty_reads` (GICR_TYPER.Dirty is
    /// fixed at construction); does nothing otherwise.
    pub fn set_dirty_reads(&self, reads: u32) {
        let mut w = self.lock();
        if w.cfg.dirty_reads.is_none() {
            return;
        }
        w.cfg.dirty_reads = Some(reads);
        for rd in w.rds.iter_mut() {
            rd.set_dirty_left(reads);
        }
    }

    /// Sets GICR_CTLR.CES (Clear Enable Supported) on every redistributor. Without it,
    /// EnableLPIs cannot be cleared once set, as on a GICv3 implementation without CES.
    pub fn set_ces(&self, ces: bool) {
        let mut w = self.lock();
        for rd in w.rds.iter_mut() {
            rd.ctlr = rd.ctlr.with_ces(ces);
        }
    }

    /// ITS `n`'s device table entry for `device`, if the table is set up and the entry is
    /// reachable.
    pub fn dte(&self, n: usize, device: u32) -> Option<DteView> {
        let w = self.lock();
        tables::read_dte(&w, n, device).ok().flatten()
    }

    /// ITS `n`'s interrupt translation entry for `(device, event)`.
    pub fn ite(&self, n: usize, device: u32, event: u32) -> Option<IteView> {
        let w = self.lock();
        tables::read_ite_of(&w, n, device, event)
    }

    /// ITS `n`'s collection table entry.
    pub fn cte(&self, n: usize, icid: u16) -> Option<CteView> {
        let w = self.lock();
        tables::read_cte(&w, n, icid).ok().flatten()
    }

    /// ITS `n`'s vPE table entry.
    pub fn vte(&self, n: usize, vpe: u16) -> Option<VteView> {
        let w = self.lock();
        tables::read_vte(&w, n, vpe).ok().flatten()
    }

    /// The physical LPIs pending on redistributor `cpu` (whether enabled or not), ascending.
    pub fn pending_lpis(&self, cpu: usize) -> Vec<u32> {
        let w = self.lock();
        redist::pending_lpis(&w, cpu)
    }

    /// Makes physical LPI `intid` pending on redistributor `cpu`, whatever its enable bit (as
    /// a peripheral's interrupt, or an ITS ringing a disabled doorbell, would).
    pub fn set_lpi_pending(&self, cpu: usize, intid: u32) {
        let mut w = self.lock();
        if cpu < w.rds.len() {
            redist::set_lpi_pending(&mut w, cpu, intid, true);
        }
    }

    /// Acknowledges the highest-priority pending, enabled physical LPI on `cpu` (as a read of
    /// ICC_IAR1_EL1 would): clears its pending bit and returns it.
    pub fn take_lpi(&self, cpu: usize) -> Option<u32> {
        let mut w = self.lock();
        redist::take_lpi(&mut w, cpu)
    }

    /// The vINTIDs pending in the virtual pending table at `vpt` (whatever the residency).
    pub fn vpt_pending(&self, vpt: u64) -> Vec<u32> {
        let w = self.lock();
        redist::vpt_pending(&w, vpt, 1 << w.cfg.event_bits)
    }

    /// The vPE resident on `cpu`: its VPT address (GICv4.0) or vPE ID (GICv4.1), if any.
    pub fn resident(&self, cpu: usize) -> Option<u64> {
        let w = self.lock();
        w.rds.get(cpu).and_then(RdState::resident)
    }

    /// Acknowledges the highest-priority pending, enabled vLPI of the vPE resident on `cpu`
    /// (as the guest's read of ICC_IAR1_EL1 would): clears its VPT bit and returns it.
    pub fn take_vlpi(&self, cpu: usize) -> Option<u32> {
        let mut w = self.lock();
        redist::take_vlpi(&mut w, cpu)
    }

    /// GITS_TRANSLATER: a device `device` writes `event` to ITS `n`.
    pub fn translate(&self, n: usize, device: u32, event: u32) {
        let mut w = self.lock();
        its::translate(&mut w, n, device, event);
    }
}

fn join(e: &[ModelError]) -> String {
    e.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// ITS `n`'s registers, as the driver sees them.
#[derive(Clone, Debug)]
pub struct ItsHandle {
    model: GicModel,
    n: usize,
}

impl ItsHandle {
    /// The model.
    pub fn model(&self) -> &GicModel {
        &self.model
    }
}

impl ItsRegisters for ItsHandle {
    fn ctlr(&self) -> GitsCtlr {
        its::read_ctlr(&mut self.model.lock(), self.n)
    }
    fn set_ctlr(&mut self, v: GitsCtlr) {
        its::write_ctlr(&mut self.model.lock(), self.n, v);
    }
    fn iidr(&self) -> u32 {
        0x43b
    }
    fn mpidr(&self) -> u32 {
        let w = self.model.lock();
        if w.cfg.version == ItsVersion::V4_1 {
            w.cfg.its_affinity & 0xffff_ff00
        } else {
            0
        }
    }
    fn typer(&self) -> GitsTyper {
        self.model.lock().cfg.typer()
    }
    fn cbaser(&self) -> GitsCbaser {
        self.model.lock().its[self.n].cbaser
    }
    fn set_cbaser(&mut self, v: GitsCbaser) {
        its::write_cbaser(&mut self.model.lock(), self.n, v);
    }
    fn cwriter(&self) -> GitsCwriter {
        GitsCwriter::from(self.model.lock().its[self.n].cwriter)
    }
    fn set_cwriter(&mut self, v: GitsCwriter) {
        its::write_cwriter(&mut self.model.lock(), self.n, v);
    }
    fn creadr(&self) -> GitsCreadr {
        its::read_creadr(&mut self.model.lock(), self.n)
    }
    fn baser(&self, n: usize) -> GitsBaser {
        self.model.lock().its[self.n]
            .basers
            .get(n)
            .copied()
            .unwrap_or_default()
    }
    fn set_baser(&mut self, n: usize, v: GitsBaser) {
        its::write_baser(&mut self.model.lock(), self.n, n, v);
    }
}

/// Redistributor `cpu`'s registers, as the driver sees them.
#[derive(Clone, Debug)]
pub struct RedistHandle {
    model: GicModel,
    cpu: usize,
}

impl RedistHandle {
    /// The model.
    pub fn model(&self) -> &GicModel {
        &self.model
    }

    /// The CPU (redistributor index).
    pub fn cpu(&self) -> usize {
        self.cpu
    }
}

impl RedistRegisters for RedistHandle {
    fn ctlr(&self) -> GicrCtlr {
        redist::read_ctlr(&mut self.model.lock(), self.cpu)
    }
    fn set_ctlr(&mut self, v: GicrCtlr) {
        redist::write_ctlr(&mut self.model.lock(), self.cpu, v);
    }
    fn typer(&self) -> GicrTyper {
        self.model.lock().rds[self.cpu].typer
    }
    fn waker(&self) -> GicrWaker {
        redist::read_waker(&mut self.model.lock(), self.cpu)
    }
    fn set_waker(&mut self, v: GicrWaker) {
        redist::write_waker(&mut self.model.lock(), self.cpu, v);
    }
    fn propbaser(&self) -> GicrPropbaser {
        self.model.lock().rds[self.cpu].propbaser
    }
    fn set_propbaser(&mut self, v: GicrPropbaser) {
        redist::write_propbaser(&mut self.model.lock(), self.cpu, v);
    }
    fn pendbaser(&self) -> GicrPendbaser {
        self.model.lock().rds[self.cpu].pendbaser
    }
    fn set_pendbaser(&mut self, v: GicrPendbaser) {
        redist::write_pendbaser(&mut self.model.lock(), self.cpu, v);
    }
    fn vpropbaser(&self) -> u64 {
        self.model.lock().rds[self.cpu].vpropbaser
    }
    fn set_vpropbaser(&mut self, v: u64) {
        redist::write_vpropbaser(&mut self.model.lock(), self.cpu, v);
    }
    fn vpendbaser(&self) -> u64 {
        redist::read_vpendbaser(&mut self.model.lock(), self.cpu)
    }
    fn set_vpendbaser(&mut self, v: u64) {
        redist::write_vpendbaser(&mut self.model.lock(), self.cpu, v);
    }
    fn set_invlpir(&mut self, v: GicrInvlpir) {
        redist::write_invlpir(&mut self.model.lock(), self.cpu, v);
    }
    fn set_invallr(&mut self, v: GicrInvallr) {
        redist::write_invallr(&mut self.model.lock(), self.cpu, v);
    }
    fn set_clrlpir(&mut self, v: GicrLpir) {
        redist::write_clrlpir(&mut self.model.lock(), self.cpu, v);
    }
    fn syncr(&self) -> GicrSyncr {
        redist::read_syncr(&mut self.model.lock(), self.cpu)
    }
}

/// The view a base register's shareability gives the GIC.
pub(crate) fn view_for(share: Shareability) -> View {
    match share {
        Shareability::NonShareable => View::PointOfCoherency,
        _ => View::Coherent,
    }
}

#[cfg(test)]
mod tests;
