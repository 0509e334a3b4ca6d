// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`Vgic`]: the VM's distributor and redistributors, and how their state reaches each
//! vCPU's `fwd_irq::VgicCpu` (see [`Vgic`] for where state lives).

use fwd_irq::{Forward, PIntId, Trigger, VIntId, VgicCpu};

use crate::access::{Access, AccessSize, Frame, Outcome, RazWi};
use crate::config::{FRAME_SIZE, REDIST_STRIDE, VgicConfig};
use crate::effects::{Effect, Effects};
use crate::error::VgicError;
use crate::ids::{Affinity, VcpuId, VcpuSet};
use crate::sgi::{SgiRegister, SgiRequest};
use crate::state::{Irq, Mail, Op};
use crate::trap::DataAbort;

/// The number of INTIDs with a dirty bit per vCPU (0..=1023).
const DIRTY_WORDS: usize = 32;
/// Effects a register write may add (one per interrupt of a 32-bit register).
pub(crate) const WRITE_RESERVE: usize = 32;

/// An interrupt named from outside the guest: one vCPU's SGI or PPI, or an SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IrqRef {
    /// SGI or PPI `intid` (0..=31) of `vcpu`.
    Private(VcpuId, VIntId),
    /// SPI `intid`.
    Spi(VIntId),
}

/// Counters a hypervisor reads to see what its guest does with the GIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VgicStats {
    /// Emulated reads.
    pub reads: u64,
    /// Emulated writes.
    pub writes: u64,
    /// RAZ/WI accesses, indexed by `RazWi as usize`.
    pub raz_wi: [u64; RazWi::COUNT],
    /// Writes to read-only registers.
    pub read_only_writes: u64,
    /// Writes ignored because of the register's state (PROPBASER with EnableLPIs = 1).
    pub ignored_writes: u64,
    /// SGI register writes.
    pub sgi_writes: u64,
    /// SGIs made pending (one per target).
    pub sgis_delivered: u64,
    /// SGI targets skipped because their SGI is in the other group.
    pub sgis_filtered: u64,
    /// Calls of [`Vgic::sync`] (including those made inside other calls).
    pub syncs: u64,
    /// SPIs that left a vCPU for another (or for no vCPU).
    pub spi_moves: u64,
    /// Syncs at which an SPI could not leave its vCPU yet because the guest had it active.
    pub spi_moves_deferred: u64,
    /// Operations the vCPU table refused (it was changed outside the `Vgic`, or is full).
    pub table_errors: u64,
}

/// The LPI registers of one vCPU's redistributor, as the guest wrote them, for a virtual ITS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LpiRegs {
    /// GICR_CTLR.EnableLPIs.
    pub enabled: bool,
    /// GICR_PROPBASER as the guest wrote it (RES0 fields cleared).
    pub propbaser: u64,
    /// GICR_PENDBASER as the guest wrote it (RES0 fields and PTZ cleared).
    pub pendbaser: u64,
    /// GICR_PENDBASER.PTZ of the last write (write-only: it reads as 0).
    pub ptz: bool,
}

/// The redistributor of one vCPU and its bookkeeping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VcpuState {
    pub private: [Irq; 32],
    pub attached: bool,
    /// INTIDs with work for this vCPU (mail, adoption or release).
    pub dirty: [u32; DIRTY_WORDS],
    /// Push the configuration of every interrupt it holds (group enable or sleep changed).
    pub all_cfg: bool,
    /// GICR_WAKER.ProcessorSleep.
    pub sleep: bool,
    pub lpi: LpiRegs,
}

impl VcpuState {
    fn new(me: VcpuId) -> Self {
        let mut private = [Irq::reset(false, Some(me)); 32];
        for sgi in private.iter_mut().take(16) {
            sgi.edge = true;
        }
        Self {
            private,
            attached: false,
            dirty: [0; DIRTY_WORDS],
            all_cfg: false,
            sleep: true,
            lpi: LpiRegs::default(),
        }
    }
}

/// The guest-facing GICv3 of one VM: a distributor, one redistributor per vCPU, and the link
/// to each vCPU's `fwd_irq::VgicCpu`.
///
/// `VCPUS` is the largest number of vCPUs (at most 64), `SPIS` the number of SPIs (a multiple
/// of 32, at most 992: INTIDs 32 to 32 + SPIS - 1, never 1020-1023). It holds no pointers and
/// allocates nothing: about 7 KiB for 4 vCPUs and 64 SPIs (36 KiB with 992 SPIs), so a
/// hypervisor keeps it in a static rather than on a small stack. See the crate's front page
/// for the calls a hypervisor makes.
///
/// # Where interrupt state lives
/// Each vCPU's `VgicCpu` (fwd-irq) holds the SGIs and PPIs of that vCPU and the SPIs routed
/// to it: their pending, line and active state, which its list registers carry while the
/// guest runs. Only the vCPU's own PE touches it, between `fold_lrs` and `populate_lrs`.
///
/// The `Vgic` holds what the guest programmed (group, enable, priority, trigger, route,
/// GICD_CTLR, GICR_WAKER, the LPI registers) and, per interrupt, its state as the holding
/// vCPU last published it. A register access on vCPU A that changes an interrupt held by
/// vCPU B cannot touch B's `VgicCpu`: it leaves *mail* on the interrupt (push the
/// configuration, set or clear pending, raise or lower the line, set or clear active), marks
/// it dirty for B and asks the hypervisor to kick B. B applies its mail in
/// [`Vgic::sync`], on its own PE, before it next enters the guest, and publishes its state
/// back. Reads therefore see the accessing vCPU's own interrupts exactly (it syncs first) and
/// other vCPUs' interrupts as of their last sync plus the changes posted since; a read of
/// another vCPU's pending or active state also kicks that vCPU so that its next sync
/// publishes fresh state (a guest polling GICD_ISACTIVER while it waits for a handler to finish
/// converges).
///
/// # SPI routing
/// An SPI is held by the vCPU its GICD_IROUTER names. When the route changes, the holder
/// releases the SPI at its next sync, unless the guest has it active there (it stays until
/// the guest deactivates it, so that the deactivation finds its list register), and the new
/// target adopts it, with its pending and line state, at its next sync. A forwarded SPI's
/// physical interrupt is re-routed ([`Effect::RoutePhys`]) when the SPI leaves its holder.
/// An SPI routed to an affinity that names no vCPU stays pending in the `Vgic` and reaches no
/// vCPU (one of the behaviours Arm IHI 0069 permits for GICD_IROUTER); reads return the
/// written route.
///
/// # Forwarded interrupts
/// A forwarded interrupt keeps its physical link (`fwd_irq::Forward`, HW = 1). Whenever a
/// sync changes whether the guest owns an instance of it, the physical interrupt's active
/// state follows ([`Effect::SetPhysActive`]): a guest ISPENDR on a forwarded interrupt makes
/// the physical interrupt active, so that the guest's deactivation through the list register
/// deactivates an active interrupt; an ICPENDR (or ICACTIVER) that leaves the guest no
/// instance makes it inactive again, and a still-asserted level line fires anew. The guest's
/// enable of a forwarded SPI is mirrored at the physical distributor
/// ([`Effect::SetPhysEnabled`]); forwarded PPIs (the virtual timer) stay enabled at the host.
/// The trigger of a forwarded interrupt is the physical one: its ICFGR field is read-only.
#[derive(Clone, Debug)]
pub struct Vgic<const VCPUS: usize, const SPIS: usize> {
    pub(crate) cfg: VgicConfig<VCPUS>,
    pub(crate) grp0: bool,
    pub(crate) grp1: bool,
    pub(crate) spis: [Irq; SPIS],
    pub(crate) cpus: [VcpuState; VCPUS],
    pub(crate) stats: VgicStats,
}

impl<const VCPUS: usize, const SPIS: usize> Vgic<VCPUS, SPIS> {
    /// The number of SPIs must fit GICD_TYPER.ITLinesNumber.
    const SPIS_OK: () = assert!(
        SPIS.is_multiple_of(32) && SPIS <= 992,
        "SPIS: a multiple of 32, <= 992"
    );

    /// A VM's GIC in its reset state: distributor groups disabled, every interrupt Group 0,
    /// disabled, priority 0, level-sensitive (SGIs edge), every SPI routed to 0.0.0.0, every
    /// redistributor asleep (GICR_WAKER.ProcessorSleep = 1), LPIs disabled.
    ///
    /// An `SPIS` that is not a multiple of 32 up to 992 does not compile (a constant
    /// assertion), so no call can panic.
    ///
    /// # Errors
    /// [`VgicError::VcpuCount`], [`VgicError::FrameLayout`],
    /// [`VgicError::DuplicateAffinity`], [`VgicError::PriorityBits`],
    /// [`VgicError::LpiIdBits`].
    pub fn new(cfg: VgicConfig<VCPUS>) -> Result<Self, VgicError> {
        let () = Self::SPIS_OK;
        cfg.check()?;
        let mut cpus = [VcpuState::new(VcpuId::new(0)); VCPUS];
        for (i, c) in cpus.iter_mut().enumerate() {
            *c = VcpuState::new(VcpuId::new(i as u8));
        }
        let mut vgic = Self {
            cfg,
            grp0: false,
            grp1: false,
            spis: [Irq::reset(false, None); SPIS],
            cpus,
            stats: VgicStats::default(),
        };
        let target = vgic.vcpu_by_affinity(Affinity::default());
        for spi in vgic.spis.iter_mut() {
            spi.target = target;
        }
        crate::logging::info!(
            "vgic: vGICv3 with {} vCPUs and {} SPIs",
            vgic.cfg.nr_vcpus,
            SPIS
        );
        Ok(vgic)
    }

    /// The configuration.
    pub const fn config(&self) -> &VgicConfig<VCPUS> {
        &self.cfg
    }

    /// The counters.
    pub const fn stats(&self) -> VgicStats {
        self.stats
    }

    /// The vCPU with affinity `aff`, if any.
    pub fn vcpu_by_affinity(&self, aff: Affinity) -> Option<VcpuId> {
        self.cfg.affinities[..self.cfg.nr_vcpus]
            .iter()
            .position(|a| *a == aff)
            .map(|i| VcpuId::new(i as u8))
    }

    /// Which frame `ipa` falls in and the offset in it, or `None` outside the distributor and
    /// the redistributors of this VM.
    pub fn frame(&self, ipa: u64) -> Option<(Frame, u32)> {
        if let Some(off) = ipa.checked_sub(self.cfg.gicd_base)
            && off < FRAME_SIZE
        {
            return Some((Frame::Distributor, off as u32));
        }
        let off = ipa.checked_sub(self.cfg.gicr_base)?;
        if off >= self.cfg.gicr_size() {
            return None;
        }
        let vcpu = VcpuId::new((off / REDIST_STRIDE) as u8);
        let in_rd = off % REDIST_STRIDE;
        if in_rd < FRAME_SIZE {
            Some((Frame::RdBase(vcpu), in_rd as u32))
        } else {
            Some((Frame::SgiBase(vcpu), (in_rd - FRAME_SIZE) as u32))
        }
    }

    /// Whether `ipa` is in the distributor or a redistributor of this VM.
    pub fn contains(&self, ipa: u64) -> bool {
        self.frame(ipa).is_some()
    }

    /// Whether `vcpu` has work waiting: the hypervisor must call [`Self::sync`] before it
    /// next enters the guest. Also true while an SPI waits to leave it (see "SPI routing" on
    /// [`Vgic`]), so a hypervisor that syncs only when this is true stays correct.
    pub fn needs_sync(&self, vcpu: VcpuId) -> bool {
        self.cpus
            .get(vcpu.index())
            .is_some_and(|c| c.all_cfg || c.dirty.iter().any(|w| *w != 0))
    }

    /// Whether `vcpu` has been attached.
    pub fn is_attached(&self, vcpu: VcpuId) -> bool {
        self.cpus.get(vcpu.index()).is_some_and(|c| c.attached)
    }

    /// The vCPU an SPI is routed to (`None`: its route names no vCPU).
    ///
    /// # Errors
    /// [`VgicError::NotAnSpi`].
    pub fn spi_target(&self, intid: VIntId) -> Result<Option<VcpuId>, VgicError> {
        self.spi(intid.get()).map(|s| s.target)
    }

    /// The vCPU whose `VgicCpu` holds an SPI now (it differs from [`Self::spi_target`] until
    /// a move completes).
    ///
    /// # Errors
    /// [`VgicError::NotAnSpi`].
    pub fn spi_holder(&self, intid: VIntId) -> Result<Option<VcpuId>, VgicError> {
        self.spi(intid.get()).map(|s| s.holder)
    }

    /// The LPI registers of `vcpu`'s redistributor.
    ///
    /// # Errors
    /// [`VgicError::NoSuchVcpu`].
    pub fn lpi_regs(&self, vcpu: VcpuId) -> Result<LpiRegs, VgicError> {
        self.check_vcpu(vcpu)?;
        Ok(self.cpus[vcpu.index()].lpi)
    }

    // ---- Lookups -------------------------------------------------------------------------

    pub(crate) fn check_vcpu(&self, vcpu: VcpuId) -> Result<(), VgicError> {
        if vcpu.index() < self.cfg.nr_vcpus {
            Ok(())
        } else {
            Err(VgicError::NoSuchVcpu {
                vcpu: vcpu.index() as u32,
            })
        }
    }

    fn check_attached(&self, vcpu: VcpuId) -> Result<(), VgicError> {
        self.check_vcpu(vcpu)?;
        if self.cpus[vcpu.index()].attached {
            Ok(())
        } else {
            Err(VgicError::NotAttached {
                vcpu: vcpu.index() as u32,
            })
        }
    }

    fn spi(&self, intid: u32) -> Result<&Irq, VgicError> {
        intid
            .checked_sub(32)
            .and_then(|i| self.spis.get(i as usize))
            .ok_or(VgicError::NotAnSpi { intid })
    }

    /// Interrupt `intid` as seen from `vcpu` (its own SGI/PPI, or an SPI).
    pub(crate) fn irq(&self, vcpu: VcpuId, intid: u32) -> Option<&Irq> {
        if intid >= 1020 {
            None
        } else if intid < 32 {
            self.cpus
                .get(vcpu.index())
                .and_then(|c| c.private.get(intid as usize))
        } else {
            self.spis.get(intid as usize - 32)
        }
    }

    pub(crate) fn irq_mut(&mut self, vcpu: VcpuId, intid: u32) -> Option<&mut Irq> {
        if intid >= 1020 {
            None
        } else if intid < 32 {
            self.cpus
                .get_mut(vcpu.index())
                .and_then(|c| c.private.get_mut(intid as usize))
        } else {
            self.spis.get_mut(intid as usize - 32)
        }
    }

    /// The configuration `holder`'s `VgicCpu` gets for `irq`.
    fn virq_config(&self, holder: VcpuId, irq: &Irq) -> fwd_irq::VirqConfig {
        let group_on = if irq.group1 { self.grp1 } else { self.grp0 };
        let awake = self.cpus.get(holder.index()).is_some_and(|c| !c.sleep);
        irq.virq_config(group_on && awake)
    }

    pub(crate) fn mark(&mut self, vcpu: VcpuId, intid: u32) {
        if let Some(c) = self.cpus.get_mut(vcpu.index())
            && let Some(w) = c.dirty.get_mut(intid as usize / 32)
        {
            *w |= 1 << (intid % 32);
        }
    }

    /// Posts `op` on interrupt `intid` of `vcpu`'s view, from `caller` (`None`: not from a
    /// vCPU's trap). The reported state changes at once; a held interrupt gets mail and its
    /// holder is kicked unless it is the caller.
    pub(crate) fn post(
        &mut self,
        caller: Option<VcpuId>,
        vcpu: VcpuId,
        intid: u32,
        op: Op,
        fx: &mut Effects,
    ) {
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return;
        };
        irq.predict(op);
        if let Some(h) = irq.holder {
            irq.post(op);
            self.mark(h, intid);
            if caller != Some(h) {
                fx.kick(h);
            }
        }
    }

    /// Asks every attached vCPU to push its configuration again (a group enable changed).
    pub(crate) fn reconfigure_all(&mut self, caller: VcpuId, fx: &mut Effects) {
        for (i, c) in self.cpus.iter_mut().enumerate().take(self.cfg.nr_vcpus) {
            if c.attached {
                c.all_cfg = true;
                if i != caller.index() {
                    fx.kick(VcpuId::new(i as u8));
                }
            }
        }
    }

    /// Changes an SPI's route (GICD_IROUTER written).
    pub(crate) fn set_route(&mut self, caller: VcpuId, intid: u32, irouter: u64, fx: &mut Effects) {
        let target = self.vcpu_by_affinity(Affinity::from_mpidr(irouter));
        let Some(irq) = self.irq_mut(caller, intid) else {
            return;
        };
        irq.irouter = irouter;
        if irq.target == target {
            return;
        }
        irq.target = target;
        let (holder, fwd) = (irq.holder, irq.fwd);
        match (holder, target) {
            (Some(h), _) => {
                // The holder releases it at its next sync.
                self.mark(h, intid);
                if h != caller {
                    fx.kick(h);
                }
            }
            (None, Some(t)) => {
                self.mark(t, intid);
                if t != caller {
                    fx.kick(t);
                }
                if let Some(f) = fwd {
                    fx.push(Effect::RoutePhys {
                        pintid: f.pintid,
                        vcpu: t,
                    });
                }
            }
            (None, None) => {}
        }
    }

    // ---- Attach and sync ------------------------------------------------------------------

    /// Links `vcpu` to its `VgicCpu` (before its first entry): the 32 SGIs and PPIs are
    /// configured in it with the guest-visible state, and the SPIs routed to it are adopted.
    ///
    /// Interrupts the hypervisor already mapped there (the forwarded virtual timer PPI of
    /// `fwd_irq::VtimerFwd::new`) keep their forwarding, trigger and state; the `Vgic` takes
    /// over their configuration (reset: Group 0, disabled, priority 0). SPIs must not be in
    /// the table: declare forwarded SPIs with [`Self::forward_spi`].
    ///
    /// # Errors
    /// [`VgicError::NoSuchVcpu`], [`VgicError::AlreadyAttached`],
    /// [`VgicError::SpiInVcpuTable`], [`VgicError::VcpuTableTooSmall`] (it needs room for
    /// the private interrupts not yet in it plus every SPI),
    /// [`VgicError::EffectsNotDrained`]. On error nothing changed.
    pub fn attach<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        cpu: &mut VgicCpu<N>,
        fx: &mut Effects,
    ) -> Result<(), VgicError> {
        self.check_vcpu(vcpu)?;
        let me = vcpu.index();
        if self.cpus[me].attached {
            return Err(VgicError::AlreadyAttached { vcpu: me as u32 });
        }
        drained(fx)?;
        let spi_end = 32 + SPIS as u32;
        if let Some(spi) = cpu
            .iter()
            .map(|v| v.vintid().get())
            .find(|i| (32..spi_end).contains(i))
        {
            return Err(VgicError::SpiInVcpuTable { intid: spi });
        }
        let used = cpu.iter().count();
        let private_present = cpu.iter().filter(|v| v.vintid().is_private()).count();
        let needed = (32 - private_present) + SPIS;
        if N - used < needed {
            return Err(VgicError::VcpuTableTooSmall {
                capacity: N as u32,
                needed: (used + needed) as u32,
            });
        }
        for intid in 0..32u32 {
            let Ok(v) = VIntId::new(intid) else { continue };
            let existing = cpu.virq(v).map(|x| (x.forward(), x.config().trigger));
            let mut irq = self.cpus[me].private[intid as usize];
            if let Some((fwd, trigger)) = existing {
                irq.fwd = fwd;
                irq.edge = intid < 16 || trigger == Trigger::Edge;
            }
            irq.holder = Some(vcpu);
            let cfg = self.virq_config(vcpu, &irq);
            let table = if existing.is_some() {
                cpu.set_config(v, cfg)
            } else {
                cpu.configure(v, cfg)
                    .and_then(|()| cpu.set_pending_latch(v, irq.latch))
                    .and_then(|()| cpu.set_line_level(v, irq.line))
                    .and_then(|()| cpu.set_active(v, irq.active))
            };
            if let Err(e) = table {
                crate::logging::warning!(
                    "vgic: vCPU {}'s interrupt table refused INTID {}: {}",
                    me,
                    intid,
                    e
                );
                self.stats.table_errors += 1;
            }
            irq.mail = Mail::default();
            self.cpus[me].private[intid as usize] = irq;
        }
        self.cpus[me].attached = true;
        crate::logging::debug!("vgic: vCPU {} attached", me);
        for i in 0..SPIS {
            let s = &self.spis[i];
            if s.holder.is_none() && s.target == Some(vcpu) {
                self.mark(vcpu, 32 + i as u32);
            }
        }
        self.sync_inner(vcpu, cpu, fx, 0).map(drop)
    }

    /// Applies the work waiting for `vcpu` to its `VgicCpu`, on `vcpu`'s own PE, after
    /// `fold_lrs` and before `populate_lrs`: configuration changes, pending/active changes
    /// from other vCPUs, SGIs, SPIs arriving (adopted) or leaving (released). Then publishes
    /// its interrupts' state for reads by other vCPUs.
    ///
    /// Returns `Ok(true)` when done; `Ok(false)` when `fx` filled up first: apply and clear
    /// the effects and call it again. [`Effect::SetPhysActive`] effects from this call must
    /// be applied on this PE before entering the guest.
    ///
    /// # Errors
    /// [`VgicError::NoSuchVcpu`], [`VgicError::NotAttached`].
    pub fn sync<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        cpu: &mut VgicCpu<N>,
        fx: &mut Effects,
    ) -> Result<bool, VgicError> {
        self.check_attached(vcpu)?;
        self.sync_inner(vcpu, cpu, fx, 0)
    }

    /// [`Self::sync`], stopping before an interrupt once fewer than `reserve` + 2 effect
    /// slots are free (one interrupt makes at most two effects).
    pub(crate) fn sync_inner<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        cpu: &mut VgicCpu<N>,
        fx: &mut Effects,
        reserve: usize,
    ) -> Result<bool, VgicError> {
        self.check_attached(vcpu)?;
        let me = vcpu.index();
        self.stats.syncs += 1;
        if self.cpus[me].all_cfg {
            self.cpus[me].all_cfg = false;
            for intid in 0..32 {
                self.cpus[me].private[intid].mail.cfg = true;
                self.mark(vcpu, intid as u32);
            }
            for i in 0..SPIS {
                if self.spis[i].holder == Some(vcpu) {
                    self.spis[i].mail.cfg = true;
                    self.mark(vcpu, 32 + i as u32);
                }
            }
        }
        let mut keep = [0u32; DIRTY_WORDS];
        let mut done = true;
        'words: for (w, kept) in keep.iter_mut().enumerate() {
            while self.cpus[me].dirty[w] != 0 {
                if fx.free() < reserve + 2 {
                    done = false;
                    break 'words;
                }
                let bit = self.cpus[me].dirty[w].trailing_zeros();
                self.cpus[me].dirty[w] &= !(1 << bit);
                let intid = w as u32 * 32 + bit;
                if self.service(vcpu, intid, cpu, fx) {
                    *kept |= 1 << bit;
                }
            }
        }
        for (d, k) in self.cpus[me].dirty.iter_mut().zip(keep) {
            *d |= k;
        }
        self.publish(vcpu, cpu);
        Ok(done)
    }

    /// Handles one dirty interrupt of `vcpu`. Returns whether it stays dirty (an SPI that
    /// cannot leave yet).
    fn service<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        intid: u32,
        cpu: &mut VgicCpu<N>,
        fx: &mut Effects,
    ) -> bool {
        let Some(irq) = self.irq(vcpu, intid) else {
            return false;
        };
        let (holder, target) = (irq.holder, irq.target);
        if holder == Some(vcpu) {
            self.apply_mail(vcpu, intid, cpu, fx);
            if intid >= 32 && target != Some(vcpu) {
                return self.release(vcpu, intid, cpu, fx);
            }
        } else if holder.is_none() && target == Some(vcpu) {
            self.adopt(vcpu, intid, cpu, fx);
        }
        false
    }

    fn apply_mail<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        intid: u32,
        cpu: &mut VgicCpu<N>,
        fx: &mut Effects,
    ) {
        let Ok(v) = VIntId::new(intid) else { return };
        let Some(snapshot) = self.irq(vcpu, intid).copied() else {
            return;
        };
        let mail = snapshot.mail;
        if mail.is_empty() {
            return;
        }
        let cfg = self.virq_config(vcpu, &snapshot);
        let before = cpu.needs_phys_active(v);
        let mut ok = true;
        if mail.cfg {
            ok &= cpu.set_config(v, cfg).is_ok();
        }
        if let Some(b) = mail.latch {
            ok &= cpu.set_pending_latch(v, b).is_ok();
        }
        if let Some(b) = mail.line {
            ok &= cpu.set_line_level(v, b).is_ok();
        }
        if let Some(b) = mail.active {
            ok &= cpu.set_active(v, b).is_ok();
        }
        if !ok {
            crate::logging::warning!(
                "vgic: vCPU {}'s interrupt table refused a change of INTID {}",
                vcpu.index(),
                intid
            );
            self.stats.table_errors += 1;
        }
        let after = cpu.needs_phys_active(v);
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            irq.mail = Mail::default();
            if let Some(f) = irq.fwd {
                if after != before {
                    fx.push(Effect::SetPhysActive {
                        pintid: f.pintid,
                        active: after,
                    });
                }
                irq.phys_active = after;
            }
        }
    }

    /// Takes an SPI out of `vcpu`'s table for its new target. Returns true (stay dirty) if
    /// the guest has it active.
    fn release<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        intid: u32,
        cpu: &mut VgicCpu<N>,
        fx: &mut Effects,
    ) -> bool {
        let Ok(v) = VIntId::new(intid) else {
            return false;
        };
        if cpu.virq(v).is_some_and(|x| x.is_active()) {
            self.stats.spi_moves_deferred += 1;
            return true;
        }
        let removed = cpu.remove(v);
        if let Err(e) = removed {
            crate::logging::warning!(
                "vgic: vCPU {}'s interrupt table refused to give up SPI {}: {}",
                vcpu.index(),
                intid,
                e
            );
            self.stats.table_errors += 1;
        }
        self.stats.spi_moves += 1;
        crate::logging::debug!("vgic: SPI {} left vCPU {}", intid, vcpu.index());
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return false;
        };
        if let Ok(x) = removed {
            irq.latch = x.pending_latch();
            irq.line = x.line_level();
            irq.active = false;
            irq.phys_active = x.is_pending();
        }
        irq.holder = None;
        irq.mail = Mail::default();
        let (target, fwd) = (irq.target, irq.fwd);
        if let Some(t) = target {
            self.mark(t, intid);
            fx.kick(t);
            if let Some(f) = fwd {
                fx.push(Effect::RoutePhys {
                    pintid: f.pintid,
                    vcpu: t,
                });
            }
        }
        false
    }

    /// Puts an SPI routed to `vcpu` and held by no vCPU into `vcpu`'s table.
    fn adopt<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        intid: u32,
        cpu: &mut VgicCpu<N>,
        fx: &mut Effects,
    ) {
        let Ok(v) = VIntId::new(intid) else { return };
        let Some(irq) = self.irq(vcpu, intid).copied() else {
            return;
        };
        let cfg = self.virq_config(vcpu, &irq);
        let added = match irq.fwd {
            Some(f) => cpu.map(v, cfg, f),
            None => cpu.configure(v, cfg),
        }
        .and_then(|()| cpu.set_pending_latch(v, irq.latch))
        .and_then(|()| cpu.set_line_level(v, irq.line))
        .and_then(|()| cpu.set_active(v, irq.active));
        if let Err(e) = added {
            // It stays with no holder; the guest sees it pending but it is not delivered.
            crate::logging::warning!(
                "vgic: vCPU {}'s interrupt table refused SPI {}, which is not delivered: {}",
                vcpu.index(),
                intid,
                e
            );
            self.stats.table_errors += 1;
            return;
        }
        let needs = cpu.needs_phys_active(v);
        if let Some(s) = self.irq_mut(vcpu, intid) {
            s.holder = Some(vcpu);
            s.mail = Mail::default();
            if let Some(f) = s.fwd {
                if needs != s.phys_active {
                    fx.push(Effect::SetPhysActive {
                        pintid: f.pintid,
                        active: needs,
                    });
                }
                s.phys_active = needs;
            }
        }
    }

    /// Copies the state of the interrupts `vcpu` holds (and has no mail for) into the
    /// records other vCPUs read.
    fn publish<const N: usize>(&mut self, vcpu: VcpuId, cpu: &VgicCpu<N>) {
        for x in cpu.iter() {
            let intid = x.vintid().get();
            if intid >= 32 + SPIS as u32 {
                continue;
            }
            let Some(irq) = self.irq_mut(vcpu, intid) else {
                continue;
            };
            if irq.holder != Some(vcpu) || !irq.mail.is_empty() {
                continue;
            }
            irq.latch = x.pending_latch();
            irq.line = x.line_level();
            irq.active = x.is_active();
            if irq.fwd.is_some() {
                irq.phys_active = x.is_active() || x.is_pending();
            }
        }
    }

    // ---- Trapped accesses -----------------------------------------------------------------

    /// Emulates a read of `size` bytes at `ipa` by vCPU `vcpu`, whose `VgicCpu` is `cpu`
    /// (folded: call after `fold_lrs`). The read never fails for the guest: see
    /// [`Access::outcome`].
    ///
    /// # Errors
    /// [`VgicError::NoSuchVcpu`], [`VgicError::NotAttached`],
    /// [`VgicError::EffectsNotDrained`], [`VgicError::NotVgicAddress`].
    pub fn read<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        cpu: &mut VgicCpu<N>,
        ipa: u64,
        size: AccessSize,
        fx: &mut Effects,
    ) -> Result<Access, VgicError> {
        let (frame, offset) = self.prologue(vcpu, ipa, fx)?;
        self.sync_inner(vcpu, cpu, fx, WRITE_RESERVE)?;
        self.stats.reads += 1;
        let (value, outcome) = self.dispatch(vcpu, frame, offset, size, None, fx);
        crate::logging::trace!(
            "vgic: vCPU {} read {:?}+{:#x} ({:?}): {:#x}",
            vcpu.index(),
            frame,
            offset,
            size,
            value & size.mask()
        );
        self.count(outcome);
        Ok(Access {
            frame,
            offset,
            value: value & size.mask(),
            outcome,
        })
    }

    /// Emulates a write of `value` (`size` bytes) at `ipa` by vCPU `vcpu`, whose `VgicCpu`
    /// is `cpu` (folded). Changes to `vcpu`'s own interrupts are applied to `cpu` before the
    /// call returns; changes for other vCPUs are kicks in `fx`.
    ///
    /// # Errors
    /// As [`Self::read`].
    pub fn write<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        cpu: &mut VgicCpu<N>,
        ipa: u64,
        size: AccessSize,
        value: u64,
        fx: &mut Effects,
    ) -> Result<Access, VgicError> {
        let (frame, offset) = self.prologue(vcpu, ipa, fx)?;
        self.sync_inner(vcpu, cpu, fx, WRITE_RESERVE)?;
        self.stats.writes += 1;
        crate::logging::trace!(
            "vgic: vCPU {} wrote {:?}+{:#x} ({:?}): {:#x}",
            vcpu.index(),
            frame,
            offset,
            size,
            value & size.mask()
        );
        let (_, outcome) = self.dispatch(vcpu, frame, offset, size, Some(value & size.mask()), fx);
        self.count(outcome);
        self.sync_inner(vcpu, cpu, fx, 0)?;
        Ok(Access {
            frame,
            offset,
            value: 0,
            outcome,
        })
    }

    /// Emulates a decoded data abort: the read or write at its IPA, taking a store's data
    /// from and leaving a load's result in the guest's X0-X30 `x`. The caller then skips the
    /// instruction (ELR_EL2 += `abort.insn_len()`).
    ///
    /// # Errors
    /// As [`Self::read`].
    pub fn emulate<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        cpu: &mut VgicCpu<N>,
        abort: &DataAbort,
        x: &mut [u64; 31],
        fx: &mut Effects,
    ) -> Result<Access, VgicError> {
        if abort.is_write() {
            let value = abort.write_value(x);
            self.write(vcpu, cpu, abort.ipa(), abort.size(), value, fx)
        } else {
            let access = self.read(vcpu, cpu, abort.ipa(), abort.size(), fx)?;
            abort.complete_read(x, access.value);
            Ok(access)
        }
    }

    fn prologue(&self, vcpu: VcpuId, ipa: u64, fx: &Effects) -> Result<(Frame, u32), VgicError> {
        self.check_attached(vcpu)?;
        drained(fx)?;
        self.frame(ipa).ok_or(VgicError::NotVgicAddress { ipa })
    }

    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Register => {}
            Outcome::ReadOnly => self.stats.read_only_writes += 1,
            Outcome::WriteIgnored => self.stats.ignored_writes += 1,
            Outcome::RazWi(r) => {
                crate::logging::debug!("vgic: guest access to a RAZ/WI register ({:?})", r);
                if let Some(c) = self.stats.raz_wi.get_mut(r as usize) {
                    *c += 1;
                }
            }
        }
    }

    /// Handles a trapped write of `value` to an SGI generation register by vCPU `vcpu`:
    /// makes the SGI pending on every target whose SGI is in a group the register reaches (see
    /// [`crate::sgi`]). The sender's own SGI is applied to `cpu` at once; other targets are
    /// kicked. Returns the vCPUs the SGI was delivered to.
    ///
    /// # Errors
    /// [`VgicError::NoSuchVcpu`], [`VgicError::NotAttached`],
    /// [`VgicError::EffectsNotDrained`].
    pub fn sgi<const N: usize>(
        &mut self,
        vcpu: VcpuId,
        cpu: &mut VgicCpu<N>,
        reg: SgiRegister,
        value: u64,
        fx: &mut Effects,
    ) -> Result<VcpuSet, VgicError> {
        self.check_attached(vcpu)?;
        drained(fx)?;
        self.stats.sgi_writes += 1;
        let req = SgiRequest::new(value);
        let targets = req.targets();
        let intid = u32::from(req.intid());
        let mut delivered = VcpuSet::EMPTY;
        for i in 0..self.cfg.nr_vcpus {
            let t = VcpuId::new(i as u8);
            if !targets.includes(self.cfg.affinities[i], t == vcpu) {
                continue;
            }
            if !reg.reaches(self.cpus[i].private[intid as usize].group1) {
                self.stats.sgis_filtered += 1;
                continue;
            }
            self.post(Some(vcpu), t, intid, Op::Latch(true), fx);
            delivered.insert(t);
            self.stats.sgis_delivered += 1;
        }
        self.sync_inner(vcpu, cpu, fx, 0)?;
        Ok(delivered)
    }

    // ---- Hypervisor-side signals -------------------------------------------------------------

    /// Declares SPI `intid` forwarded from the physical SPI `fwd.pintid` with `trigger` (the
    /// physical trigger, which the guest then cannot change). Call it before attaching the
    /// vCPU the SPI is routed to (vCPU 0 at reset). Adds [`Effect::SetPhysEnabled`] (the
    /// guest-visible enable, false at reset) and [`Effect::RoutePhys`] (the current target)
    /// so the physical SPI starts in step.
    ///
    /// # Errors
    /// [`VgicError::NotAnSpi`] (for `intid`, or for a `fwd.pintid` that is a PPI),
    /// [`VgicError::Forwarded`], [`VgicError::SpiHeld`], [`VgicError::PIntIdInUse`],
    /// [`VgicError::EffectsNotDrained`]. On error nothing changed.
    pub fn forward_spi(
        &mut self,
        intid: VIntId,
        fwd: Forward,
        trigger: Trigger,
        fx: &mut Effects,
    ) -> Result<(), VgicError> {
        let n = intid.get();
        let irq = self.spi(n)?;
        if fwd.pintid.is_ppi() {
            return Err(VgicError::NotAnSpi {
                intid: fwd.pintid.get(),
            });
        }
        if irq.fwd.is_some() {
            return Err(VgicError::Forwarded { intid: n });
        }
        if irq.holder.is_some() {
            return Err(VgicError::SpiHeld { intid: n });
        }
        if let Some(i) = self
            .spis
            .iter()
            .position(|s| s.fwd.is_some_and(|f| f.pintid == fwd.pintid))
        {
            return Err(VgicError::PIntIdInUse {
                pintid: fwd.pintid.get(),
                intid: 32 + i as u32,
            });
        }
        drained(fx)?;
        let Some(irq) = self.irq_mut(VcpuId::new(0), n) else {
            return Err(VgicError::NotAnSpi { intid: n });
        };
        irq.fwd = Some(fwd);
        irq.edge = trigger == Trigger::Edge;
        crate::logging::debug!(
            "vgic: SPI {} forwarded from pINTID {} ({:?})",
            n,
            fwd.pintid.get(),
            trigger
        );
        fx.push(Effect::SetPhysEnabled {
            pintid: fwd.pintid,
            enabled: irq.enabled,
        });
        if let Some(t) = irq.target {
            fx.push(Effect::RoutePhys {
                pintid: fwd.pintid,
                vcpu: t,
            });
        }
        Ok(())
    }

    /// The host took physical SPI `pintid` on a PE whose vCPU does not hold the SPI it
    /// forwards (`VgicCpu::on_phys_irq` returned `NotForwarded`: the SPI is moving between
    /// vCPUs, or routed to no vCPU). Signals the SPI wherever it is and kicks its holder. The
    /// physical interrupt stays active (acknowledged, priority dropped) for the guest, as for
    /// a local one.
    ///
    /// # Errors
    /// [`VgicError::NotForwarded`].
    pub fn phys_irq(&mut self, pintid: PIntId, fx: &mut Effects) -> Result<VIntId, VgicError> {
        let i = self
            .spis
            .iter()
            .position(|s| s.fwd.is_some_and(|f| f.pintid == pintid))
            .ok_or(VgicError::NotForwarded {
                pintid: pintid.get(),
            })?;
        let intid = 32 + i as u32;
        let op = if self.spis[i].edge {
            Op::Latch(true)
        } else {
            Op::Line(true)
        };
        self.post(None, VcpuId::new(0), intid, op, fx);
        if self.spis[i].holder.is_none() {
            self.spis[i].phys_active = true;
        }
        VIntId::new(intid).map_err(VgicError::from)
    }

    /// An emulated device signals an edge on `irq`: its pending latch is set (for a
    /// level-sensitive interrupt too, as GICD_ISPENDR would).
    ///
    /// # Errors
    /// [`VgicError::NoSuchVcpu`], [`VgicError::NotAnSpi`], [`VgicError::NotPrivate`],
    /// [`VgicError::Forwarded`] (a forwarded interrupt's line is the physical one).
    pub fn pulse(&mut self, irq: IrqRef, fx: &mut Effects) -> Result<(), VgicError> {
        let (vcpu, intid) = self.emulated(irq)?;
        self.post(None, vcpu, intid, Op::Latch(true), fx);
        Ok(())
    }

    /// An emulated device drives the line of level-sensitive `irq` high or low.
    ///
    /// # Errors
    /// As [`Self::pulse`].
    pub fn set_level(
        &mut self,
        irq: IrqRef,
        level: bool,
        fx: &mut Effects,
    ) -> Result<(), VgicError> {
        let (vcpu, intid) = self.emulated(irq)?;
        self.post(None, vcpu, intid, Op::Line(level), fx);
        Ok(())
    }

    fn emulated(&self, irq: IrqRef) -> Result<(VcpuId, u32), VgicError> {
        let (vcpu, intid) = match irq {
            IrqRef::Private(vcpu, v) => {
                self.check_vcpu(vcpu)?;
                if !v.is_private() {
                    return Err(VgicError::NotPrivate { intid: v.get() });
                }
                (vcpu, v.get())
            }
            IrqRef::Spi(v) => {
                self.spi(v.get())?;
                (VcpuId::new(0), v.get())
            }
        };
        match self.irq(vcpu, intid) {
            Some(i) if i.fwd.is_some() => Err(VgicError::Forwarded { intid }),
            Some(_) => Ok((vcpu, intid)),
            None => Err(VgicError::NotAnSpi { intid }),
        }
    }
}

/// Checks the effects buffer was applied and cleared.
fn drained(fx: &Effects) -> Result<(), VgicError> {
    if fx.is_empty() {
        Ok(())
    } else {
        Err(VgicError::EffectsNotDrained {
            pending: (fx.effects().len() + fx.kicks().len()) as u32,
        })
    }
}
