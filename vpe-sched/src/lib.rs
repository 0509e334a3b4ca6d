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
//! The entry points mirror Linux's `irq-gic-v4.c`; the table is in the project's
//! `docs/gicv4-api.md`.
#![no_std]
#![allow(
    clippy::result_large_err,
    clippy::large_enum_variant,
    reason = "ItsError carries a command trace by value"
)]

#[cfg(test)]
extern crate std;

pub mod error;
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
use its_core::platform::{DmaBuf, Platform, poll_until};
use its_core::regs::{GicrVpendbaser, GicrVpropbaser, GicrVpropbaserV41, MemAttrs};
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

/// The GICv4 layer of a system: its ITSs, LPIs, doorbells and vPE IDs.
pub struct GicV4<'a, R: ItsRegisters, P: Platform> {
    its: &'a [Its<R, P>],
    lpis: &'a Lpis<P>,
    doorbells: &'a Doorbells<'a, R, P>,
    ids: Mutex<VpeIds<P>>,
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
    /// [`VpeError::NotV4`] without a GICv4 ITS or VLPIS.
    pub fn new(
        its: &'a [Its<R, P>],
        lpis: &'a Lpis<P>,
        doorbells: &'a Doorbells<'a, R, P>,
        redist: RedistCaps,
        cfg: V4Config,
    ) -> Result<Self, VpeError> {
        let v4: heapless::Vec<&Its<R, P>, 16> =
            its.iter().filter(|i| i.caps().is_v4()).take(16).collect();
        let first = v4
            .first()
            .ok_or(VpeError::NotV4("no ITS with GITS_TYPER.Virtual"))?;
        if !redist.vlpis {
            return Err(VpeError::NotV4("GICR_TYPER.VLPIS = 0"));
        }
        let version = if v4.iter().all(|i| i.caps().version == ItsVersion::V4_1) {
            ItsVersion::V4_1
        } else {
            ItsVersion::V4_0
        };
        let single_vmovp = v4.iter().all(|i| i.caps().single_vmovp) || version == ItsVersion::V4_1;
        let max_bits = v4
            .iter()
            .map(|i| i.caps().vintid_bits)
            .min()
            .unwrap_or(16)
            .min(cfg.max_vintid_bits)
            .min(lpis.id_bits());
        let limit = first.vpe_table().map_or(0, |t| {
            t.ids().min(1 << first.caps().vpe_id_bits).min(1 << 16)
        }) as u32;
        let bitmap =
            core::alloc::Layout::from_size_align(((limit as usize).div_ceil(64) * 8).max(8), 8)
                .map_err(|_| VpeError::Config("layout"))?;
        let used = DmaBuf::new(first.platform().clone(), bitmap)?;
        Ok(Self {
            its,
            lpis,
            doorbells,
            ids: Mutex::new(VpeIds { used, limit }),
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
            let its = self.v4().next().ok_or(VpeError::NotV4("no ITS"))?;
            let t = its.vpe_table().ok_or(VpeError::NotV4("no vPE table"))?;
            let v = GicrVpropbaserV41::new()
                .with_physical_address(t.base().get() >> 12 & ((1 << 40) - 1))
                .with_size((t.pages().max(1) - 1).min(0x7f) as u8)
                .with_page_size(t.page_size().encoding())
                .with_indirect(t.is_indirect())
                .with_entry_size(((t.entry_bytes() / 8).max(1) - 1).min(7) as u8)
                .with_attrs(MemAttrs::CACHED)
                .with_valid(true);
            rd.set_vpropbaser(v.into());
            return Ok(());
        }
        let cur = GicrVpendbaser::from(rd.vpendbaser());
        if cur.valid() {
            rd.set_vpendbaser(cur.with_valid(false).with_pending_last(true).into());
            self.poll_dirty(rd, self.cfg.dirty_timeout);
        }
        rd.set_vpropbaser(GicrVpropbaser::new().with_id_bits(self.max_bits - 1).into());
        Ok(())
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

    /// Polls GICR_VPENDBASER.Dirty until clear, when the redistributors implement it. Returns
    /// false on timeout.
    fn poll_dirty<D: RedistRegisters>(&self, rd: &mut D, timeout: Duration) -> bool {
        if !self.redist.dirty {
            return true;
        }
        let Some(first) = self.its.first() else {
            return true;
        };
        poll_until(first.platform(), timeout, || rd.vpendbaser() & 1 << 60 == 0).is_ok()
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
