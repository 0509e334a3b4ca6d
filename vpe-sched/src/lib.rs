// SPDX-License-Identifier: MIT OR Apache-2.0
//! GICv4 direct injection: VMs, vPEs, vLPIs and vPE residency (Arm IHI 0069, "GICv4").
//!
//! With GICv4 a device's MSI becomes a virtual LPI that the redistributor delivers to the
//! running vCPU with no hypervisor exit. This crate does the hypervisor's share:
//! - [`GicV4::create_vm`]: a VM-wide vLPI configuration table sized from the VM's vINTID bits,
//!   one 64 KiB-aligned virtual pending table per vPE, vPE IDs bounded by the vPE table
//!   (second-level pages on demand), one doorbell per vPE, VMAPP (+ VINVALL) on every GICv4
//!   ITS; [`GicV4::destroy_vm`] undoes all of it;
//! - vLPIs ([`GicV4::map_vlpi`], [`GicV4::unmap_vlpi`], [`GicV4::move_vlpi`],
//!   [`GicV4::update_vlpi`], [`GicV4::invall_vpe`]): the property byte, DISCARD of the host
//!   mapping, VMAPTI with the doorbell policy, VMOVI, INV, VINVALL, each followed by the
//!   (V)SYNC it needs, batched;
//! - residency ([`GicV4::make_resident`], [`GicV4::make_non_resident`], [`GicV4::commit`]):
//!   the [`residency::Residency`] state machine, VMOVP (serialised, with ITSList and sequence
//!   numbers when GITS_TYPER.VMOVP = 0) before a vPE becomes resident on a new CPU;
//! - the GICv4.1 forms (VMAPP with VCONF and default doorbell, GICR_VPENDBASER by vPE ID, INVDB,
//!   VSGI, GICR_INVALLR with DirectLPI), chosen from the capabilities. QEMU models only
//!   GICv4.0: the GICv4.1 paths are tested against the host model of `its-model`.
//!
//! The entry points mirror Linux's `irq-gic-v4.c`: [`guide::linux_api`] maps each to ours.
//!
//! # Where to start
//!
//! **What you implement**: nothing more than for `its-cmdq`: `its_core::platform`'s traits,
//! the GIC's frames mapped, and on your side of the world switch the EL2 pieces the drivers
//! do not touch (HCR_EL2.IMO, ICH_HCR_EL2.En, the vCPU's ICH_VMCR_EL2, an EL2 IRQ handler that
//! gives LPIs to `Doorbells::handle`). [`guide::embedding`] is the walk-through: bring-up
//! order, a device's MSI as a vLPI, the vCPU run loop, the doorbell interrupt, teardown,
//! concurrency rules, host tests.
//!
//! **The first calls**: the physical layer (`its_cmdq::Lpis`, `its_cmdq::Its`), then
//! [`doorbell::Doorbells::new`], [`GicV4::new`] and [`GicV4::init_redistributor`] per CPU.
//! Then per VM [`GicV4::create_vm`] and [`GicV4::map_vlpi`]; per vCPU load
//! [`GicV4::make_resident`] and [`GicV4::commit`], per vCPU put or block
//! [`GicV4::make_non_resident`].
//!
//! This runs on the host against `its-model` (a dev-dependency), which behaves as QEMU's
//! GICv4.0: a vLPI reaches the resident vPE directly, and rings the doorbell once the vPE
//! is away.
//!
//! ```
//! use core::time::Duration;
//! use doorbell::{DoorbellConfig, Doorbells};
//! use its_cmdq::{Its, ItsConfig, Lpis, RedistInfo};
//! use its_core::addr::PhysAddr;
//! use its_core::caps::{DistCaps, RedistCaps};
//! use its_core::ids::{DeviceId, VLpi};
//! use its_core::mmio::RedistRegisters;
//! use its_core::regs::GicdTyper;
//! use its_model::{FakePlatform, GicModel, ModelConfig};
//! use vpe_sched::{GicV4, V4Config, VlpiConfig, VmConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The host model of one CPU's redistributor and an ITS, on a fake DMA platform.
//! let plat = FakePlatform::new();
//! let model = GicModel::new(ModelConfig::qemu(1), plat.clone());
//! let cfg = model.config();
//!
//! // The physical layer (its-cmdq). GICD_TYPER as the model's configuration describes it:
//! // on hardware, read it from the distributor.
//! let typer = GicdTyper::new()
//!     .with_lpis(true)
//!     .with_dvis(true)
//!     .with_id_bits(cfg.dist_id_bits - 1);
//! let dist = DistCaps::from_typer(typer, None);
//! let lpis = Lpis::new(&dist, plat.clone())?;
//! let _pending = lpis.init_redistributor(&mut model.redist(0), Duration::from_secs(1))?;
//! let redists = [RedistInfo {
//!     rd_base: PhysAddr::new(cfg.rd_base(0)),
//!     typer: model.redist(0).typer(),
//! }];
//! let its = [Its::new(model.its(0), plat.clone(), &redists, ItsConfig::new(dist))?];
//!
//! // The GICv4 layer: doorbells (QEMU has no DirectLPI: a proxy device invalidates them),
//! // then the vPE side of every redistributor.
//! let db_cfg = DoorbellConfig::proxy(DeviceId::new(0xffff), 64);
//! let dbs = Doorbells::new(&its[0], &lpis, db_cfg)?;
//! let redist_caps = RedistCaps::from_typer(redists[0].typer);
//! let g = GicV4::new(&its, &lpis, &dbs, redist_caps, V4Config::default())?;
//! g.init_redistributor(&mut model.redist(0))?;
//!
//! // A VM with one vPE on CPU 0; event 0 of device 8 becomes its vINTID 8192.
//! let vm = g.create_vm(VmConfig { vintid_bits: 16, vpes: &[0] })?;
//! let mut dev = its[0].map_device(DeviceId::new(8), 4)?;
//! let vlpi = VlpiConfig {
//!     vintid: VLpi::new(8192)?,
//!     priority: 0xa0,
//!     enabled: true,
//!     doorbell: true,
//! };
//! g.map_vlpi(&its[0], &mut dev, 0, &vm, 0, vlpi)?;
//!
//! // vCPU load: the vPE becomes resident, and the device's MSI goes straight to it.
//! g.make_resident(&vm, 0, 0, &mut model.redist(0))?;
//! g.commit(&mut model.redist(0))?;
//! its[0].int_event(&dev, 0)?;
//! assert_eq!(model.take_vlpi(0), Some(8192));
//!
//! // The vCPU blocks (WFI): non-resident with its doorbell enabled. The next MSI rings the
//! // doorbell, a physical LPI, which the EL2 IRQ handler hands to the doorbells.
//! let away = g.make_non_resident(&vm, 0, &mut model.redist(0), true)?;
//! assert!(!away.pending_last);
//! its[0].int_event(&dev, 0)?;
//! let intid = model.take_lpi(0).ok_or("no doorbell")?;
//! assert_eq!(dbs.handle(intid), Some(vm.vpe(0)?.id()));
//! g.doorbell_rang(&vm, 0);
//!
//! // Teardown: the vLPI, the device, the VM.
//! g.unmap_vlpi(&its[0], &mut dev, 0, &vm, false)?;
//! its[0].unmap_device(dev).map_err(|e| e.error)?;
//! g.destroy_vm(vm).map_err(|e| e.error)?;
//! model.assert_no_errors();
//! # Ok(())
//! # }
//! ```
#![no_std]
#![allow(
    clippy::result_large_err,
    clippy::large_enum_variant,
    reason = "ItsError carries a command trace by value"
)]

#[cfg(test)]
extern crate std;

pub mod error;
pub mod guide;
pub mod residency;
mod vlpi;
mod vm;

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use doorbell::Doorbells;
use its_cmdq::{Its, Lpis, MAX_CPUS, SyncTarget};
use its_core::caps::RedistCaps;
use its_core::cmd::{Command, ItsVersion};
use its_core::ids::{RdBase, VpeId};
use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_core::platform::{DmaBuf, Platform, Timeout, poll_until};
use its_core::regs::{GicrVpendbaser, GicrVpropbaser, GicrVpropbaserV41, GitsBaser, MemAttrs};
use spin::Mutex;

pub use error::VpeError;
pub use residency::Residency;
pub use vlpi::{VlpiConfig, VlpiProp, VsgiConfig};
pub use vm::{DestroyError, MAX_VPES, Vm, VmConfig, Vpe};

/// Timeouts and choices of the GICv4 layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V4Config {
    /// How long to poll GICR_VPENDBASER.Dirty when descheduling (Linux: 1 s).
    pub dirty_timeout: Duration,
    /// How long [`GicV4::commit`] waits for the VPT parse (Linux: 500 µs).
    pub commit_timeout: Duration,
    /// The largest vINTID width a VM may ask for (capped by the ITSs' and the distributor's).
    pub max_vintid_bits: u8,
}

impl Default for V4Config {
    fn default() -> Self {
        Self {
            dirty_timeout: Duration::from_secs(1),
            commit_timeout: Duration::from_micros(500),
            max_vintid_bits: 16,
        }
    }
}

/// What a deschedule reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descheduled {
    /// GICR_VPENDBASER.PendingLast: a pending, enabled vLPI remained (or, after a Dirty
    /// timeout, assumed so).
    pub pending_last: bool,
    /// Dirty did not clear within the timeout.
    pub dirty_timeout: bool,
}

/// The vPE ID allocator: a bitmap in platform memory (8 KiB for 16-bit IDs).
struct VpeIds<P: Platform> {
    used: DmaBuf<P>,
    limit: u32,
}

impl<P: Platform> VpeIds<P> {
    fn word(&self, i: u32) -> u64 {
        self.used
            .read_u64((i / 64) as usize * 8)
            .unwrap_or(u64::MAX)
    }

    fn alloc(&mut self) -> Option<VpeId> {
        let i = (0..self.limit).find(|&i| self.word(i) & (1 << (i % 64)) == 0)?;
        let w = self.word(i) | 1 << (i % 64);
        self.used.write_u64((i / 64) as usize * 8, w).ok()?;
        Some(VpeId::new(i as u16))
    }

    fn free(&mut self, id: VpeId) {
        let i = u32::from(id.get());
        let w = self.word(i) & !(1 << (i % 64));
        let _ = self.used.write_u64((i / 64) as usize * 8, w);
    }
}

/// GICv4.1 vPE tables of redistributor groups (CommonLPIAff) that share no ITS's table.
const MAX_RD_GROUPS: usize = 8;

/// The vPE table one CommonLPIAff group of GICv4.1 redistributors uses.
struct RdGroup<P: Platform> {
    /// The group's affinity (masked at CommonLPIAff).
    aff: u32,
    /// The GICR_VPROPBASER value its redistributors have.
    vpropbaser: u64,
    /// The table's memory, when it is the group's own (kept for ever: the redistributors
    /// use it as long as they run vPEs).
    _table: Option<DmaBuf<P>>,
}

/// `aff` (Aff3.Aff2.Aff1.Aff0) masked down to what a CommonLPIAff or SVPET `level` compares:
/// 0 nothing, 1 Aff3, 2 Aff3.Aff2, 3 Aff3.Aff2.Aff1.
fn common_aff(aff: u32, level: u8) -> u32 {
    match level & 3 {
        0 => 0,
        l => aff & !(u32::MAX >> (u32::from(l) * 8)),
    }
}

/// The GICv4 layer of a system: its ITSs, LPIs, doorbells and vPE IDs.
pub struct GicV4<'a, R: ItsRegisters, P: Platform> {
    its: &'a [Its<R, P>],
    lpis: &'a Lpis<P>,
    doorbells: &'a Doorbells<'a, R, P>,
    ids: Mutex<VpeIds<P>>,
    rd_groups: Mutex<heapless::Vec<RdGroup<P>, MAX_RD_GROUPS>>,
    vmovp_seq: Mutex<u16>,
    resident: [AtomicU32; MAX_CPUS],
    version: ItsVersion,
    single_vmovp: bool,
    redist: RedistCaps,
    max_bits: u8,
    cfg: V4Config,
}

impl<'a, R: ItsRegisters, P: Platform + Clone> GicV4<'a, R, P> {
    /// The GICv4 layer over `its` (every ITS of the system; those with GITS_TYPER.Virtual are
    /// used), `lpis`, and `doorbells`. `redist` is any redistributor's capabilities (they must
    /// agree on VLPIS, Dirty and DirectLPI).
    ///
    /// # Errors
    /// [`VpeError::NotV4`] without a GICv4 ITS or VLPIS; [`VpeError::Config`] when
    /// `cfg.max_vintid_bits` is not from 14 (the smallest vLPI range) to 32 (what
    /// GICR_VPROPBASER.IDbits and VMAPP's VPT size can hold), or when two GICv4 ITSs with
    /// GITS_TYPER.VMOVP = 0 have the same GITS_CTLR.ITS_Number (a VMOVP's ITSList could not
    /// name them apart: see `its_cmdq::ItsConfig::its_numbers_taken`).
    pub fn new(
        its: &'a [Its<R, P>],
        lpis: &'a Lpis<P>,
        doorbells: &'a Doorbells<'a, R, P>,
        redist: RedistCaps,
        cfg: V4Config,
    ) -> Result<Self, VpeError> {
        let v4 = || its.iter().filter(|i| i.caps().is_v4());
        let first = v4()
            .next()
            .ok_or(VpeError::NotV4("no ITS with GITS_TYPER.Virtual"))?;
        if !redist.vlpis {
            return Err(VpeError::NotV4("GICR_TYPER.VLPIS = 0"));
        }
        if !(14..=32).contains(&cfg.max_vintid_bits) {
            return Err(VpeError::Config(
                "V4Config::max_vintid_bits must be from 14 to 32",
            ));
        }
        let version = if v4().all(|i| i.caps().version == ItsVersion::V4_1) {
            ItsVersion::V4_1
        } else {
            ItsVersion::V4_0
        };
        // GICv4.1 ITSs too may need an ITSList (GITS_TYPER.VMOVP = 0): only what the ITSs
        // report decides.
        let single_vmovp = v4().all(|i| i.caps().single_vmovp);
        if !single_vmovp {
            let mut seen = 0u16;
            for i in v4() {
                let bit = 1u16 << (i.its_number() & 0xf);
                if seen & bit != 0 {
                    return Err(VpeError::Config(
                        "two GICv4 ITSs have the same GITS_CTLR.ITS_Number: a VMOVP's ITSList cannot name them apart",
                    ));
                }
                seen |= bit;
            }
        }
        let max_bits = v4()
            .map(|i| i.caps().vintid_bits)
            .min()
            .unwrap_or(16)
            .min(cfg.max_vintid_bits)
            .min(lpis.id_bits());
        // vPE IDs must have an entry in every table: the smallest one bounds them.
        let limit = v4()
            .filter_map(|i| {
                i.vpe_table()
                    .map(|t| t.ids().min(1 << i.caps().vpe_id_bits))
            })
            .min()
            .unwrap_or(0)
            .min(1 << 16) as u32;
        let bitmap =
            core::alloc::Layout::from_size_align(((limit as usize).div_ceil(64) * 8).max(8), 8)
                .map_err(|_| VpeError::Config("layout"))?;
        let used = DmaBuf::new(first.platform().clone(), bitmap)?;
        Ok(Self {
            its,
            lpis,
            doorbells,
            ids: Mutex::new(VpeIds { used, limit }),
            rd_groups: Mutex::new(heapless::Vec::new()),
            vmovp_seq: Mutex::new(0),
            resident: [const { AtomicU32::new(0) }; MAX_CPUS],
            version,
            single_vmovp,
            redist,
            max_bits,
            cfg,
        })
    }

    /// Readies a redistributor for vPEs at CPU bring-up: GICv4.0 clears a stale
    /// GICR_VPENDBASER.Valid (setting PendingLast so no doorbell is generated) and sets
    /// GICR_VPROPBASER.IDbits; GICv4.1 programs GICR_VPROPBASER with the vPE table the ITSs
    /// use.
    ///
    /// # Errors
    /// [`VpeError::NotV4`] when the redistributor has no VLPIS.
    pub fn init_redistributor<D: RedistRegisters>(&self, rd: &mut D) -> Result<(), VpeError> {
        if !rd.typer().vlpis() {
            return Err(VpeError::NotV4("GICR_TYPER.VLPIS = 0"));
        }
        if self.version == ItsVersion::V4_1 {
            let v = self.vpe_table_for(rd)?;
            rd.set_vpropbaser(v);
            let got = GicrVpropbaserV41::from(rd.vpropbaser());
            let want = GicrVpropbaserV41::from(v);
            if got.physical_address() != want.physical_address()
                || got.size() != want.size()
                || !got.valid()
            {
                return Err(VpeError::Its(its_cmdq::ItsError::DidNotStick {
                    register: "GICR_VPROPBASER",
                    wrote: v,
                    read: got.into(),
                }));
            }
            return Ok(());
        }
        let cur = GicrVpendbaser::from(rd.vpendbaser());
        if cur.valid() {
            rd.set_vpendbaser(cur.with_valid(false).with_pending_last(true).into());
            // On a timeout the redistributor is left to finish on its own: nothing is resident.
            let _ = self.poll_dirty(rd, self.cfg.dirty_timeout);
        }
        rd.set_vpropbaser(GicrVpropbaser::new().with_id_bits(self.max_bits - 1).into());
        Ok(())
    }

    /// The GICv4.1 GICR_VPROPBASER value for redistributor `rd`: the vPE table of an ITS that
    /// shares its table with it (GITS_TYPER.SVPET, compared at the ITS's GITS_MPIDR), else
    /// the one its CommonLPIAff group already uses, else a new table of the group's own.
    fn vpe_table_for<D: RedistRegisters>(&self, rd: &mut D) -> Result<u64, VpeError> {
        let typer = rd.typer();
        let aff = typer.affinity();
        for its in self.v4() {
            let sv = its.caps().svpet;
            if sv != 0 && common_aff(its.affinity(), sv) == common_aff(aff, sv) {
                let b = its.vpe_baser().ok_or(VpeError::NotV4("no vPE table"))?;
                return Self::vpropbaser_of(b);
            }
        }
        let group = common_aff(aff, typer.common_lpi_aff());
        let mut groups = self.rd_groups.lock();
        if let Some(g) = groups.iter().find(|g| g.aff == group) {
            return Ok(g.vpropbaser);
        }
        // A table of the group's own, flat, for every vPE ID the layer hands out. The entry
        // size is the redistributor's (GICR_VPROPBASER.Entry_Size is read-only).
        let esz_field = GicrVpropbaserV41::from(rd.vpropbaser()).entry_size();
        let esz = (usize::from(esz_field) + 1) * 8;
        let ids = self.ids.lock().limit as usize;
        let page = 0x1_0000usize;
        let bytes = (ids.max(1) * esz).next_multiple_of(page);
        let pages = bytes / page;
        if pages > 128 {
            return Err(VpeError::Config(
                "a redistributor vPE table larger than GICR_VPROPBASER.Size can describe",
            ));
        }
        let platform = self
            .its
            .first()
            .ok_or(VpeError::NotV4("no ITS"))?
            .platform()
            .clone();
        let table = DmaBuf::new(
            platform,
            core::alloc::Layout::from_size_align(bytes, page)
                .map_err(|_| VpeError::Config("layout"))?,
        )?;
        let v: u64 = GicrVpropbaserV41::new()
            .with_physical_address(table.pa().get() >> 12 & ((1 << 40) - 1))
            .with_size((pages - 1) as u8)
            .with_page_size(2)
            .with_entry_size(esz_field)
            .with_attrs(MemAttrs::CACHED)
            .with_valid(true)
            .into();
        let mut table = table;
        table.leak_on_drop();
        groups
            .push(RdGroup {
                aff: group,
                vpropbaser: v,
                _table: Some(table),
            })
            .map_err(|_| VpeError::Config("more CommonLPIAff groups than the layer keeps"))?;
        Ok(v)
    }

    /// The GICv4.1 GICR_VPROPBASER value describing the ITS vPE table `b`.
    fn vpropbaser_of(b: GitsBaser) -> Result<u64, VpeError> {
        if b.size() > 0x7f {
            return Err(VpeError::Config(
                "the ITS vPE table is larger than GICR_VPROPBASER.Size can describe (128 pages)",
            ));
        }
        let esz = b.entry_bytes();
        Ok(GicrVpropbaserV41::new()
            .with_physical_address(b.addr().get() >> 12 & ((1 << 40) - 1))
            .with_size(b.size())
            .with_page_size(b.page_size())
            .with_indirect(b.indirect())
            .with_entry_size(((esz / 8).max(1) - 1).min(7) as u8)
            .with_attrs(MemAttrs::CACHED)
            .with_valid(true)
            .into())
    }
}

impl<'a, R: ItsRegisters, P: Platform> GicV4<'a, R, P> {
    /// The GICv4 ITSs.
    fn v4(&self) -> impl Iterator<Item = &'a Its<R, P>> + 'a {
        self.its.iter().filter(|i| i.caps().is_v4())
    }

    /// GICv4.0 or GICv4.1.
    pub fn version(&self) -> ItsVersion {
        self.version
    }

    /// The widest vINTID range a VM may have.
    pub fn max_vintid_bits(&self) -> u8 {
        self.max_bits
    }

    /// The doorbells.
    pub fn doorbells(&self) -> &'a Doorbells<'a, R, P> {
        self.doorbells
    }

    /// The LPIs.
    pub fn lpis(&self) -> &'a Lpis<P> {
        self.lpis
    }

    /// The vPE resident on `cpu`, if any.
    pub fn resident_on(&self, cpu: usize) -> Option<VpeId> {
        match self.resident.get(cpu)?.load(Ordering::Acquire) {
            0 => None,
            v => Some(VpeId::new((v - 1) as u16)),
        }
    }

    fn rdbase(its: &Its<R, P>, cpu: usize) -> Result<RdBase, VpeError> {
        Ok(its.cpu(cpu).map_err(|_| VpeError::NoSuchCpu(cpu))?.rdbase)
    }

    /// Polls GICR_VPENDBASER.Dirty until clear, when the redistributors implement it (else
    /// `Ok(None)`: nothing read, no clock read either). Returns the last value read, Dirty
    /// clear, so the caller needs no further read.
    fn poll_dirty<D: RedistRegisters>(
        &self,
        rd: &mut D,
        timeout: Duration,
    ) -> Result<Option<u64>, Timeout> {
        if !self.redist.dirty {
            return Ok(None);
        }
        let Some(first) = self.its.first() else {
            return Ok(None);
        };
        let mut last = 0;
        poll_until(first.platform(), timeout, || {
            last = rd.vpendbaser();
            last & 1 << 60 == 0
        })?;
        Ok(Some(last))
    }

    /// Checks that `rd` is CPU `cpu`'s redistributor (GICR_TYPER.Processor_Number against
    /// what the ITS driver was told at bring-up).
    fn check_frame<D: RedistRegisters>(&self, rd: &D, cpu: usize) -> Result<(), VpeError> {
        let its = self.v4().next().ok_or(VpeError::NotV4("no ITS"))?;
        let want = its
            .cpu(cpu)
            .map_err(|_| VpeError::NoSuchCpu(cpu))?
            .redist
            .processor;
        let got = rd.typer().processor_number();
        if got != want.get() {
            return Err(VpeError::WrongRedistributor {
                cpu,
                processor: got,
            });
        }
        Ok(())
    }

    /// Runs one batch on `its`, reporting the first skipped command as an error.
    fn run(
        its: &Its<R, P>,
        n: usize,
        command: impl Fn(usize) -> Command,
        syncs: &[SyncTarget],
    ) -> Result<its_cmdq::Outcome, VpeError> {
        Ok(its.execute(n, command, syncs)?)
    }

    fn first_error(out: &its_cmdq::Outcome) -> Result<(), VpeError> {
        out.error().map_or(Ok(()), |e| Err(VpeError::Its(e)))
    }

    /// Moves a vPE's VTE target to `cpu` on every ITS: one VMOVP to the first ITS when
    /// GITS_TYPER.VMOVP = 1 everywhere (or GICv4.1); otherwise the same VMOVP, with one
    /// sequence number and the ITSList of every GICv4 ITS, to each of them in turn, under a
    /// global lock so every ITS sees VMOVPs in the same order.
    fn vmovp(&self, vpe: &Vpe<P>, cpu: usize) -> Result<(), VpeError> {
        let v41 = self.version == ItsVersion::V4_1;
        let cmd = |its: &Its<R, P>, seq: u16, list: u16| -> Result<Command, VpeError> {
            let rdbase = Self::rdbase(its, cpu)?;
            Ok(if v41 {
                Command::VmovpV41 {
                    seq,
                    its_list: list,
                    vpe: vpe.id,
                    rdbase,
                    db_valid: true,
                    default_db: vpe.doorbell.intid(),
                }
            } else {
                Command::Vmovp {
                    seq,
                    its_list: list,
                    vpe: vpe.id,
                    rdbase,
                }
            })
        };
        // Only a skipped VMOVP is an error here: once the ITS did it the VTE names the new
        // CPU, and the caller must record that, even if the VSYNC after it was skipped.
        let moved = |out: its_cmdq::Outcome| {
            if out.was_skipped(0) {
                Self::first_error(&out)
            } else {
                Ok(())
            }
        };
        if self.single_vmovp {
            let its = self.v4().next().ok_or(VpeError::NotV4("no ITS"))?;
            let c = cmd(its, 0, 0)?;
            return moved(Self::run(its, 1, |_| c, &[SyncTarget::Vpe(vpe.id)])?);
        }
        let list = self.v4().fold(0u16, |l, i| l | 1 << (i.its_number() & 0xf));
        let mut seq = self.vmovp_seq.lock();
        let s = *seq;
        *seq = seq.wrapping_add(1);
        for its in self.v4() {
            let c = cmd(its, s, list)?;
            moved(Self::run(its, 1, |_| c, &[SyncTarget::Vpe(vpe.id)])?)?;
        }
        Ok(())
    }
}
