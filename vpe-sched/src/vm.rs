// SPDX-License-Identifier: MIT OR Apache-2.0
//! VMs and vPEs: tables, VMAPP/VINVALL, teardown, and residency.

use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use doorbell::DoorbellBlock;
use its_cmdq::{Its, SyncTarget};
use its_core::addr::{Addr4K, VconfAddr, VptAddr};
use its_core::cmd::{Command, IdBits, ItsVersion};
use its_core::ids::{IntId, Lpi, RdBase, VpeId};
use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_core::platform::{DmaBuf, DmaVec, Platform};
use its_core::regs::{GicrVpendbaser, GicrVpendbaserV41, MemAttrs};
use spin::Mutex;

use crate::error::VpeError;
use crate::residency::Residency;
use crate::{Descheduled, GicV4};

/// vPEs one VM can have.
pub const MAX_VPES: usize = 64;

/// Default priority byte of a vLPI before it is configured: priority 0xa0, group 1, disabled.
const PROP_DEFAULT: u8 = 0xa0 | 1 << 1;

/// What a VM needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmConfig<'c> {
    /// The vINTID width (14 to the GIC's maximum): vLPIs 8192 to 2^bits - 1.
    pub vintid_bits: u8,
    /// One entry per vPE: the CPU its VTE first targets.
    pub vpes: &'c [usize],
}

#[derive(Debug)]
pub(crate) struct VpeState {
    pub(crate) residency: Residency,
    pub(crate) affinity: usize,
}

/// A vPE: its ID, virtual pending table and doorbell.
pub struct Vpe<P: Platform> {
    pub(crate) id: VpeId,
    pub(crate) vpt: DmaBuf<P>,
    pub(crate) doorbell: Lpi,
    pub(crate) state: Mutex<VpeState>,
    pub(crate) vlpis: AtomicU32,
    /// An ITE ever carried its doorbell (GICv4.0: a vLPI mapped or moved to it, or enabled,
    /// with `doorbell: true`): only then can the ITS have made the doorbell pending, so only
    /// then does `make_resident` clear it. A vLPI without a doorbell never rings it.
    pub(crate) had_doorbell: AtomicBool,
    /// The GICv4 ITSs (bit `k`: the k-th) that did a VMAPP V = 1 for it and no V = 0 since:
    /// what VMAPP's GICv4.1 Alloc is computed from (1 on the first mapping across the ITSs
    /// and on the last unmapping, as Linux counts them), and which ITSs an unmap must reach.
    pub(crate) mapped_on: AtomicU32,
}

impl<P: Platform> core::fmt::Debug for Vpe<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vpe")
            .field("id", &self.id)
            .field("doorbell", &self.doorbell)
            .field("residency", &self.residency())
            .field("affinity", &self.affinity())
            .field("vlpis", &self.vlpis())
            .field("vpt", &self.vpt)
            .finish_non_exhaustive()
    }
}

impl<P: Platform> Vpe<P> {
    /// The vPE ID.
    pub fn id(&self) -> VpeId {
        self.id
    }

    /// Its doorbell LPI.
    pub fn doorbell(&self) -> Lpi {
        self.doorbell
    }

    /// Where it is.
    pub fn residency(&self) -> Residency {
        self.state.lock().residency
    }

    /// The CPU its VTE targets (where its doorbell rings).
    pub fn affinity(&self) -> usize {
        self.state.lock().affinity
    }

    /// vLPIs mapped to it.
    pub fn vlpis(&self) -> u32 {
        self.vlpis.load(Ordering::Relaxed)
    }

    /// Its virtual pending table's address.
    pub fn vpt(&self) -> VptAddr {
        VptAddr::from_field(self.vpt.pa().get() >> 16)
    }

    /// Whether vINTID `v` is pending in its VPT (meaningful while not resident).
    pub fn vpt_pending(&self, v: u32) -> bool {
        self.vpt
            .read_u8((v / 8) as usize)
            .is_ok_and(|b| b & 1 << (v % 8) != 0)
    }
}

/// A VM: its vLPI configuration table and its vPEs.
///
/// Small (under 200 bytes, whatever the number of vPEs): the per-vPE records live out of
/// line, in memory from the platform's allocator, so a `Vm` is cheap to return, move and keep
/// in a static or in the hypervisor's own VM structure. [`GicV4::destroy_vm`] takes it by
/// `&mut` and leaves it empty ([`Vm::is_destroyed`]).
pub struct Vm<P: Platform> {
    /// The vLPI configuration table; `None` once destroyed.
    pub(crate) prop: Option<DmaBuf<P>>,
    pub(crate) vintid_bits: u8,
    pub(crate) vpes: DmaVec<Vpe<P>, P>,
    pub(crate) doorbells: DoorbellBlock,
    pub(crate) flush: bool,
    destroyed: bool,
}

impl<P: Platform> core::fmt::Debug for Vm<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vm")
            .field("vintid_bits", &self.vintid_bits)
            .field("vpes", &self.vpes.len())
            .field("doorbells", &self.doorbells)
            .field("destroyed", &self.destroyed)
            .finish()
    }
}

impl<P: Platform> Vm<P> {
    /// The vPEs.
    pub fn vpes(&self) -> &[Vpe<P>] {
        &self.vpes
    }

    /// vPE `i`.
    ///
    /// # Errors
    /// [`VpeError::NoSuchVpe`].
    pub fn vpe(&self, i: usize) -> Result<&Vpe<P>, VpeError> {
        self.vpes.get(i).ok_or(VpeError::NoSuchVpe(i))
    }

    /// The vINTID width.
    pub fn vintid_bits(&self) -> u8 {
        self.vintid_bits
    }

    /// Whether [`GicV4::destroy_vm`] destroyed it (it then has no vPE and no table).
    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }

    /// The configuration table.
    pub(crate) fn prop(&self) -> Result<&DmaBuf<P>, VpeError> {
        self.prop.as_ref().ok_or(VpeError::VmDestroyed)
    }

    /// Whether vPE `id` belongs to this VM.
    pub fn owns(&self, id: VpeId) -> Option<usize> {
        self.vpes.iter().position(|v| v.id == id)
    }

    pub(crate) fn check_vintid(&self, v: u32) -> Result<(), VpeError> {
        if v >= 8192 && u64::from(v) < 1u64 << self.vintid_bits {
            Ok(())
        } else {
            Err(VpeError::VintidOutOfRange {
                vintid: v,
                bits: self.vintid_bits,
            })
        }
    }

    /// The property byte of vINTID `v`.
    ///
    /// # Errors
    /// [`VpeError::VintidOutOfRange`].
    pub fn property(&self, v: u32) -> Result<u8, VpeError> {
        self.check_vintid(v)?;
        Ok(self.prop()?.read_u8((v - 8192) as usize)?)
    }

    /// Writes the property byte of vINTID `v` (priority bits \[7:2\], group 1, enable).
    pub(crate) fn set_property(&self, v: u32, priority: u8, enabled: bool) -> Result<(), VpeError>
    where
        P: its_core::platform::CacheMaint,
    {
        self.check_vintid(v)?;
        let off = (v - 8192) as usize;
        let prop = self.prop()?;
        prop.store_u8(off, (priority & 0xfc) | 1 << 1 | u8::from(enabled))?;
        if self.flush {
            prop.clean(off, 1);
            prop.platform().dsb_sy();
        } else {
            prop.platform().dsb_ishst();
        }
        Ok(())
    }

    /// Memory the VM's tables use: the configuration table and every VPT.
    pub fn table_bytes(&self) -> usize {
        self.prop.as_ref().map_or(0, DmaBuf::len)
            + self.vpes.iter().map(|v| v.vpt.len()).sum::<usize>()
    }
}

impl<P: Platform> Drop for Vm<P> {
    fn drop(&mut self) {
        if !self.destroyed {
            // Still mapped in the ITSs (not given to destroy_vm): the GIC may still write the
            // VPTs and read the configuration table, so they must never be reused.
            if let Some(p) = self.prop.as_mut() {
                p.leak_on_drop();
            }
            for v in self.vpes.iter_mut() {
                v.vpt.leak_on_drop();
            }
        }
    }
}

impl<'a, R: ItsRegisters, P: Platform + Clone> GicV4<'a, R, P> {
    /// Creates a VM (Linux: `its_alloc_vcpu_irqs`): vPE IDs, the vLPI configuration table
    /// (every vLPI disabled), one zeroed 64 KiB-aligned VPT per vPE, one doorbell per vPE, and
    /// VMAPP + VINVALL on every GICv4 ITS. On failure everything is undone.
    ///
    /// # Errors
    /// [`VpeError::Config`], [`VpeError::VpeIdsExhausted`], allocation, doorbell and ITS
    /// errors.
    pub fn create_vm(&self, cfg: VmConfig<'_>) -> Result<Vm<P>, VpeError> {
        self.alive()?;
        let n = cfg.vpes.len();
        if n == 0 || n > MAX_VPES {
            return Err(VpeError::Config("a VM has 1 to 64 vPEs"));
        }
        if cfg.vintid_bits < 14 || cfg.vintid_bits > self.max_bits {
            return Err(VpeError::Config(
                "vINTID bits must be from 14 to the GIC's maximum",
            ));
        }
        for &cpu in cfg.vpes {
            for its in self.v4() {
                Self::rdbase(its, cpu)?;
            }
        }
        let platform = self
            .its
            .first()
            .ok_or(VpeError::NotV4("no ITS"))?
            .platform()
            .clone();
        // The configuration table: one byte per INTID, 64 KiB aligned as Linux allocates it.
        let bytes = 1usize << cfg.vintid_bits;
        let mut prop = DmaBuf::new(
            platform.clone(),
            Layout::from_size_align(bytes, 0x1_0000).map_err(|_| VpeError::Config("layout"))?,
        )?;
        prop.fill(0, bytes, PROP_DEFAULT)?;
        prop.clean_all();
        let flush = self.lpis.cleans_to_poc();
        let vpt_bytes = (bytes / 8).max(0x1000);
        let vpt_layout =
            Layout::from_size_align(vpt_bytes, 0x1_0000).map_err(|_| VpeError::Config("layout"))?;
        // The vPE records, out of line (see `Vm`).
        let mut vpes: DmaVec<Vpe<P>, P> = DmaVec::with_capacity(platform.clone(), n)?;
        // IDs and VPTs; undone on error by `release`.
        let release = |vpes: &mut DmaVec<Vpe<P>, P>| {
            let mut ids = self.ids.lock();
            while let Some(v) = vpes.pop() {
                ids.free(v.id);
            }
        };
        for &cpu in cfg.vpes {
            let id = match self.ids.lock().alloc() {
                Some(id) => id,
                None => {
                    release(&mut vpes);
                    return Err(VpeError::VpeIdsExhausted);
                }
            };
            let vpt = match DmaBuf::new(platform.clone(), vpt_layout) {
                Ok(b) => b,
                Err(e) => {
                    self.ids.lock().free(id);
                    release(&mut vpes);
                    return Err(e.into());
                }
            };
            vpt.clean_all();
            let vpe = Vpe {
                id,
                vpt,
                doorbell: Lpi::MIN,
                state: Mutex::new(VpeState {
                    residency: Residency::default(),
                    affinity: cpu,
                }),
                vlpis: AtomicU32::new(0),
                had_doorbell: AtomicBool::new(false),
                mapped_on: AtomicU32::new(0),
            };
            let _ = vpes.push(vpe);
        }
        // The vPE table's entries (a sibling ITS that shares its table has none of its own).
        for its in self.v4().filter(|i| !i.shares_vpe_table()) {
            for v in &vpes {
                if let Err(e) = its.ensure_vpe(v.id) {
                    release(&mut vpes);
                    return Err(e.into());
                }
            }
        }
        let ids: heapless::Vec<(VpeId, usize), MAX_VPES> =
            vpes.iter().zip(cfg.vpes).map(|(v, &c)| (v.id, c)).collect();
        let block = match self.doorbells.alloc_block(&ids) {
            Ok(b) => b,
            Err(e) => {
                release(&mut vpes);
                return Err(e.into());
            }
        };
        for (i, v) in vpes.iter_mut().enumerate() {
            v.doorbell = block.lpi(i as u32).unwrap_or(Lpi::MIN);
        }
        let mut vm = Vm {
            prop: Some(prop),
            vintid_bits: cfg.vintid_bits,
            vpes,
            doorbells: block,
            flush,
            destroyed: false,
        };
        // VMAPP + VINVALL of every vPE on every GICv4 ITS, then a VSYNC per vPE.
        let mut result = Ok(());
        for (k, its) in self.v4().enumerate() {
            if let Err(e) = self.vmapp_all(k, its, &vm, true) {
                result = Err(e);
                break;
            }
        }
        if let Err(e) = result {
            // Unmap wherever a VMAPP was done (the failing ITS included: the VMAPPs before a
            // skipped command did map their vPEs); each vPE records where.
            let mut undone = true;
            for (k, its) in self.v4().enumerate() {
                undone &= self.vmapp_all(k, its, &vm, false).is_ok();
            }
            let _ = self.doorbells.free_block(vm.doorbells);
            if !undone || its_dead(self) {
                // The ITS may still use the tables: keep them (the VM's Drop leaks them).
                return Err(e);
            }
            release(&mut vm.vpes);
            vm.destroyed = true;
            return Err(e);
        }
        crate::logging::info!(
            "vpe-sched: VM created: {} vPEs (IDs {}..), {} vINTID bits, doorbells at LPI {}",
            vm.vpes.len(),
            vm.vpes.first().map_or(0, |v| v.id.get()),
            vm.vintid_bits,
            vm.doorbells.lpi(0).map_or(0, |l| l.get())
        );
        Ok(vm)
    }

    /// Maps (`valid`) or unmaps on `its`, the `k`-th GICv4 ITS, every vPE of `vm` that is not
    /// so there yet: VMAPP (and VINVALL when mapping) per vPE, then a VSYNC per vPE (none for
    /// a GICv4.1 unmap, which is self-synchronising). Each vPE records where the ITS did it.
    ///
    /// GICv4.1: Alloc is 1 on a vPE's first mapping across the ITSs and on its last
    /// unmapping, 0 otherwise; a VMAPP with V = 0 carries only vPEID, V and Alloc.
    fn vmapp_all(
        &self,
        k: usize,
        its: &Its<R, P>,
        vm: &Vm<P>,
        valid: bool,
    ) -> Result<(), VpeError> {
        let v41 = its.caps().version == ItsVersion::V4_1;
        let size = IdBits::new(vm.vintid_bits)?;
        let vconf = VconfAddr::new(vm.prop()?.pa())?;
        let bit = 1u32 << (k % 32);
        let todo: heapless::Vec<usize, MAX_VPES> = vm
            .vpes
            .iter()
            .enumerate()
            .filter(|(_, v)| (v.mapped_on.load(Ordering::Acquire) & bit != 0) != valid)
            .map(|(i, _)| i)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        // Check every vPE's target and VPT first, so the batch below cannot fail half-built.
        for &i in &todo {
            let v = &vm.vpes[i];
            Self::rdbase(its, v.state.lock().affinity)?;
            VptAddr::new(v.vpt.pa())?;
        }
        // One VMAPP per vPE, built per index, so a large VM needs no command buffer on the
        // stack.
        let command = |i: usize| {
            let v = &vm.vpes[todo[i]];
            let mask = v.mapped_on.load(Ordering::Acquire);
            // The first mapping anywhere allocates the vPE; the last unmapping frees it.
            let alloc = if valid { mask == 0 } else { mask == bit };
            if v41 && !valid {
                return Command::VmappV41 {
                    vpe: v.id,
                    rdbase: RdBase::default(),
                    valid: false,
                    vpt: VptAddr::default(),
                    vpt_size: 0,
                    alloc,
                    ptz: false,
                    vconf: VconfAddr::default(),
                    default_db: IntId::new(0),
                };
            }
            let rdbase = Self::rdbase(its, v.state.lock().affinity).unwrap_or_default();
            let vpt = VptAddr::from_field(v.vpt.pa().get() >> 16);
            if v41 {
                Command::VmappV41 {
                    vpe: v.id,
                    rdbase,
                    valid,
                    vpt,
                    vpt_size: size.field(),
                    alloc,
                    ptz: false,
                    vconf,
                    default_db: v.doorbell.intid(),
                }
            } else {
                Command::Vmapp {
                    vpe: v.id,
                    rdbase,
                    valid,
                    vpt,
                    vpt_size: size,
                }
            }
        };
        let syncs: heapless::Vec<SyncTarget, MAX_VPES> = todo
            .iter()
            .map(|&i| SyncTarget::Vpe(vm.vpes[i].id))
            .collect();
        // GICv4.1: unmapping a vPE is self-synchronising. A mapping is synchronised after
        // its VINVALL, below.
        let vmapp_syncs: &[SyncTarget] = if valid || v41 { &[] } else { &syncs };
        let out = Self::run(its, todo.len(), command, vmapp_syncs)?;
        let mut done: heapless::Vec<usize, MAX_VPES> = heapless::Vec::new();
        for (j, &i) in todo.iter().enumerate() {
            if !out.was_skipped(j) {
                let m = &vm.vpes[i].mapped_on;
                if valid {
                    m.fetch_or(bit, Ordering::AcqRel);
                } else {
                    m.fetch_and(!bit, Ordering::AcqRel);
                }
                let _ = done.push(i);
            }
        }
        if valid && !done.is_empty() {
            // A VINVALL for each vPE the ITS mapped (the redistributor drops whatever it held
            // for the vPE ID), then the VSYNCs: in a batch of their own, so a VMAPP the ITS
            // stalled on is not followed by a VINVALL of an unmapped vPE (a parameter error).
            let syncs: heapless::Vec<SyncTarget, MAX_VPES> = done
                .iter()
                .map(|&i| SyncTarget::Vpe(vm.vpes[i].id))
                .collect();
            let inv = Self::run(
                its,
                done.len(),
                |j| Command::Vinvall {
                    vpe: vm.vpes[done[j]].id,
                },
                &syncs,
            )?;
            Self::first_error(&out)?;
            return Self::first_error(&inv);
        }
        Self::first_error(&out)
    }

    /// Destroys a VM (Linux: `its_free_vcpu_irqs`): VMAPP with V = 0 on every GICv4 ITS, then
    /// frees its doorbells, vPE IDs and tables. Every vPE must be non-resident and have no
    /// vLPI left.
    ///
    /// The VM stays with the caller (in its own VM structure, or a static): on success it is
    /// empty ([`Vm::is_destroyed`]: no vPE, no table; drop it or keep it), on failure it is
    /// whole, its vPEs mapped and its doorbells allocated again (unless the ITS died: then
    /// nothing more can be done with it, and dropping it keeps its memory).
    ///
    /// # Errors
    /// [`VpeError::InUse`] (nothing done), [`VpeError::VmDestroyed`], ITS and doorbell errors.
    pub fn destroy_vm(&self, vm: &mut Vm<P>) -> Result<(), VpeError> {
        self.alive()?;
        if vm.destroyed {
            return Err(VpeError::VmDestroyed);
        }
        if vm.vpes.iter().any(|v| v.residency().is_resident()) {
            return Err(VpeError::InUse("a vPE is resident"));
        }
        if vm.vpes.iter().any(|v| v.vlpis() != 0) {
            return Err(VpeError::InUse("vLPIs are still mapped"));
        }
        // On failure the vPEs are mapped again where they were unmapped (each vPE records
        // where it is mapped), so the VM comes back whole.
        let remap = |vm: &Vm<P>| {
            for (k, its) in self.v4().enumerate() {
                let _ = self.vmapp_all(k, its, vm, true);
            }
        };
        for (k, its) in self.v4().enumerate() {
            // A batch where the ITS stalled on one vPE is sent again: only for the vPEs
            // still mapped there (the skipped command is the only one not done).
            let mut r = self.vmapp_all(k, its, vm, false);
            for _ in 0..2 {
                if !matches!(r, Err(VpeError::Its(its_cmdq::ItsError::Stalled { .. }))) {
                    break;
                }
                r = self.vmapp_all(k, its, vm, false);
            }
            if let Err(error) = r {
                crate::logging::warning!("vpe-sched: VM not destroyed: {}", error);
                remap(vm);
                return Err(error);
            }
        }
        if let Err(e) = self.doorbells.free_block(vm.doorbells) {
            crate::logging::warning!("vpe-sched: VM not destroyed: {}", e);
            remap(vm);
            return Err(e.into());
        }
        let n = vm.vpes.len();
        {
            let mut ids = self.ids.lock();
            while let Some(v) = vm.vpes.pop() {
                ids.free(v.id);
            }
        }
        // The ITSs no longer reference the tables: the VPTs went with their vPEs.
        vm.vpes.release();
        drop(vm.prop.take());
        vm.destroyed = true;
        crate::logging::info!("vpe-sched: VM destroyed: {} vPEs freed", n);
        Ok(())
    }

    /// Makes vPE `i` of `vm` resident on `cpu`, whose redistributor is `rd` (Linux:
    /// `its_make_vpe_resident`). If the vPE last targeted another CPU, VMOVP moves it (and its
    /// doorbell) first, so vLPIs are checked against the new redistributor. GICv4.0 writes
    /// GICR_VPROPBASER then GICR_VPENDBASER {Valid, PendingLast, IDAI}; GICv4.1 writes
    /// GICR_VPENDBASER {Valid, vPEID, vGrp1En}. Call [`GicV4::commit`] before entering the
    /// guest.
    ///
    /// Once resident, the doorbell's deferred invalidation is issued and, on GICv4.0, its
    /// pending state cleared, as Linux does at every GICv4.0 vCPU load (skipped for a vPE
    /// that never had a vLPI with a doorbell mapped): one batch,
    /// [`doorbell::Doorbells::settle_and_clear`].
    ///
    /// # Errors
    /// [`VpeError::Residency`] if already resident, [`VpeError::RedistBusy`],
    /// [`VpeError::NoSuchVpe`], [`VpeError::NoSuchCpu`], VMOVP and doorbell errors. A
    /// [`VpeError::Doorbell`] error from the final clear leaves the vPE resident (see
    /// [`Vpe::residency`]); only a spurious doorbell can follow.
    pub fn make_resident<D: RedistRegisters>(
        &self,
        vm: &Vm<P>,
        i: usize,
        cpu: usize,
        rd: &mut D,
    ) -> Result<(), VpeError> {
        self.alive()?;
        let vpe = vm.vpe(i)?;
        let slot = self.resident.get(cpu).ok_or(VpeError::NoSuchCpu(cpu))?;
        self.check_frame(rd, cpu)?;
        let mut st = vpe.state.lock();
        if let Residency::Resident { cpu } = st.residency {
            return Err(VpeError::Residency(
                crate::residency::Transition::AlreadyResident { cpu },
            ));
        }
        if let Some(other) = self.resident_on(cpu) {
            return Err(VpeError::RedistBusy {
                cpu,
                vpe: other.get(),
            });
        }
        if st.affinity != cpu {
            self.vmovp(vpe, cpu)?;
            st.affinity = cpu;
        }
        // Also when only the VMOVP was done by an earlier call that then failed: the doorbell
        // follows (nothing to do when it is there already).
        self.doorbells.move_to(vpe.doorbell, cpu)?;
        let attrs = if vm.flush {
            MemAttrs::NON_CACHEABLE
        } else {
            MemAttrs::CACHED
        };
        if self.version == ItsVersion::V4_1 {
            let v = st.residency.schedule_v41(vpe.id, false, true)?;
            rd.set_vpendbaser(v.into());
        } else {
            let s = st.residency.schedule_v40(
                Addr4K::new(vm.prop()?.pa())?,
                vm.vintid_bits,
                VptAddr::new(vpe.vpt.pa())?,
                attrs,
            )?;
            rd.set_vpropbaser(s.vpropbaser.into());
            rd.set_vpendbaser(s.vpendbaser.into());
        }
        st.residency.scheduled(cpu)?;
        crate::logging::debug!("vpe-sched: vPE {} resident on CPU {}", vpe.id.get(), cpu);
        slot.store(u32::from(vpe.id.get()) + 1, Ordering::Release);
        // Then, in one batch: the invalidation of a doorbell the interrupt path disabled, and
        // on GICv4.0 the clear of its pending state. A vLPI that found the vPE away after its
        // doorbell had rung (and been disabled) left the doorbell pending; it would fire, for
        // nothing, at the next enable. Now that the vPE is resident no new doorbell can be
        // made pending, and what the doorbell stood for is in the VPT. DirectLPI systems do
        // both on this redistributor, which the doorbell targets.
        let clear = self.version != ItsVersion::V4_1 && vpe.had_doorbell.load(Ordering::Relaxed);
        self.doorbells.settle_and_clear(
            vpe.doorbell,
            clear,
            Some(&mut *rd as &mut dyn RedistRegisters),
        )?;
        Ok(())
    }

    /// Waits, when GICR_TYPER.Dirty says it can, for the redistributor to finish parsing
    /// the resident vPE's VPT (Linux: `its_commit_vpe`, 500 µs).
    ///
    /// # Errors
    /// [`VpeError::DirtyTimeout`].
    pub fn commit<D: RedistRegisters>(&self, rd: &mut D) -> Result<(), VpeError> {
        self.poll_dirty(rd, self.cfg.commit_timeout)
            .map(drop)
            .map_err(|t| {
                crate::logging::warning!(
                    "vpe-sched: the redistributor still parses the VPT after {} ns (GICR_VPENDBASER.Dirty)",
                    t.waited_ns
                );
                VpeError::DirtyTimeout {
                    waited_ns: t.waited_ns,
                }
            })
    }

    /// Makes vPE `i` of `vm`, resident on `rd`'s CPU, non-resident (Linux:
    /// `its_make_vpe_non_resident`). With `doorbell`, the vPE's doorbell is enabled first so a
    /// vLPI arriving while it is away wakes the hypervisor; without, it is disabled. Clears
    /// Valid, polls Dirty (bounded; on timeout PendingLast is assumed, as Linux does) and
    /// returns PendingLast.
    ///
    /// # Errors
    /// [`VpeError::Residency`] if not resident, doorbell errors.
    pub fn make_non_resident<D: RedistRegisters>(
        &self,
        vm: &Vm<P>,
        i: usize,
        rd: &mut D,
        doorbell: bool,
    ) -> Result<Descheduled, VpeError> {
        self.alive()?;
        let vpe = vm.vpe(i)?;
        let mut st = vpe.state.lock();
        let Residency::Resident { cpu } = st.residency else {
            return Err(VpeError::Residency(
                crate::residency::Transition::NotResident,
            ));
        };
        self.check_frame(rd, cpu)?;
        let v41 = self.version == ItsVersion::V4_1;
        // GICv4.1 too: its redistributor makes the default doorbell pending when asked to
        // (GICR_VPENDBASER.Doorbell), but the LPI is delivered only while it is enabled.
        if self.doorbells.is_enabled(vpe.doorbell) != doorbell {
            self.doorbells
                .set_enabled(vpe.doorbell, doorbell, None)
                .or_else(|e| match e {
                    // DirectLPI systems invalidate through the redistributor the doorbell
                    // targets, which is this one.
                    doorbell::DoorbellError::NeedRedistributor => self.doorbells.set_enabled(
                        vpe.doorbell,
                        doorbell,
                        Some(rd as &mut dyn RedistRegisters),
                    ),
                    e => Err(e),
                })?;
        }
        // As Linux's its_clear_vpend_valid: Dirty is polled before Valid is cleared (a VPT
        // parse still running from make_resident) and after (the deschedule's own).
        let mut dirty_timeout = self.poll_dirty(rd, self.cfg.dirty_timeout).is_err();
        let value = if v41 {
            u64::from(st.residency.deschedule_v41(vpe.id, doorbell)?)
        } else {
            u64::from(
                st.residency
                    .deschedule_v40(GicrVpendbaser::from(rd.vpendbaser()))?,
            )
        };
        rd.set_vpendbaser(value);
        let after = match self.poll_dirty(rd, self.cfg.dirty_timeout) {
            Ok(Some(v)) => v,
            // No Dirty to poll: one read for PendingLast.
            Ok(None) => rd.vpendbaser(),
            Err(_) => {
                dirty_timeout = true;
                rd.vpendbaser()
            }
        };
        let (pending_last, idai) = if v41 {
            // Without a doorbell PendingLast was written 1 ("the vPE will be back", as
            // Linux does): the redistributor did not look, so assume something is pending.
            (
                !doorbell || GicrVpendbaserV41::from(after).pending_last(),
                false,
            )
        } else {
            let v = GicrVpendbaser::from(after);
            (v.pending_last(), v.idai())
        };
        let pending_last = pending_last || dirty_timeout;
        st.residency.descheduled(pending_last, idai)?;
        if dirty_timeout {
            crate::logging::warning!(
                "vpe-sched: vPE {} left CPU {} but GICR_VPENDBASER.Dirty did not clear within {:?}: PendingLast assumed",
                vpe.id.get(),
                cpu,
                self.cfg.dirty_timeout
            );
        }
        crate::logging::debug!(
            "vpe-sched: vPE {} left CPU {} (doorbell {}, PendingLast {})",
            vpe.id.get(),
            cpu,
            if doorbell { "on" } else { "off" },
            pending_last
        );
        if let Some(slot) = self.resident.get(cpu) {
            slot.store(0, Ordering::Release);
        }
        Ok(Descheduled {
            pending_last,
            dirty_timeout,
        })
    }

    /// Records a doorbell for vPE `i` (call after [`doorbell::Doorbells::handle`] returned
    /// it): its PendingLast is now true.
    pub fn doorbell_rang(&self, vm: &Vm<P>, i: usize) {
        if let Ok(v) = vm.vpe(i) {
            v.state.lock().residency.doorbell_rang();
        }
    }
}

fn its_dead<R: ItsRegisters, P: Platform>(g: &GicV4<'_, R, P>) -> bool {
    g.its.iter().any(|i| i.is_dead())
}

impl<R: ItsRegisters, P: Platform> GicV4<'_, R, P> {
    /// The vPE's doorbell is rung by the ITS only while it is not resident: whether it is.
    pub fn is_resident(&self, vm: &Vm<P>, i: usize) -> bool {
        vm.vpe(i).is_ok_and(|v| v.residency().is_resident())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use its_model::FakePlatform;

    /// The vPE records live out of line: a `Vm` is two buffers and a few words, whatever
    /// its number of vPEs (it used to hold 64 vPE records inline, several KiB).
    #[test]
    fn vm_is_small() {
        let vm = size_of::<Vm<FakePlatform>>();
        let buf = size_of::<DmaBuf<FakePlatform>>();
        assert!(vm <= 2 * buf + 32, "Vm is {vm} bytes");
    }
}
