// SPDX-License-Identifier: MIT OR Apache-2.0
//! The per-vCPU interrupt table and the list-register algorithms: populate before entry,
//! fold after exit.
//!
//! [`VgicCpu`] keeps a software view of each SGI, PPI and SPI the vCPU can see ([`Virq`]:
//! pending latch, line level, active, priority, group, trigger, forwarding). Before every
//! guest entry [`VgicCpu::populate_lrs`] writes the most urgent ones to the list registers;
//! after every exit [`VgicCpu::fold_lrs`] reads the list registers back and folds what the
//! guest did (acknowledge, deactivate) into the software view. Between the two, software owns
//! all state; while the guest runs, the list registers own the listed interrupts.
//!
//! References: Arm IHI 0069, "Virtual interrupt handling and prioritization" (list registers,
//! the HW bit, maintenance interrupts) and "`ICH_LR<n>_EL2`".
//!
//! # Forwarded (mapped) interrupts
//! A forwarded interrupt is a virtual interrupt that stands for a physical PPI or SPI. The
//! host acknowledges the physical interrupt and only drops its priority (ICC_CTLR_EL1.EOImode
//! = 1), so it stays active at the physical GIC and cannot fire again while the guest owns
//! it. Then either:
//! - [`FwdMode::Hw`]: the list register has HW = 1 and pINTID, and the guest's deactivation
//!   of the virtual interrupt deactivates the physical one. No exit at EOI.
//! - [`FwdMode::EoiMaintenance`]: the list register has HW = 0 and EOI = 1. The guest's
//!   deactivation raises a maintenance interrupt; the next fold deactivates the physical
//!   interrupt. One extra exit per interrupt: the software flow HW = 1 replaces, kept for
//!   comparison.
//!
//! # Why mapped level interrupts are special
//! The hypervisor only sees rising edges of a forwarded level interrupt (the host takes the
//! physical interrupt once, then it stays active). So:
//! - populate lowers the software line level when it lists the interrupt: the next rising
//!   edge, seen as a new physical interrupt, raises it again;
//! - fold samples the physical line (the pending state at the physical GIC) for a mapped
//!   level interrupt the guest did not acknowledge: if the device dropped the line (say the
//!   guest quiesced it with interrupts masked), the pending state goes away and the physical
//!   active state is cleared, because otherwise the interrupt stays active forever and the
//!   next assertion is never seen. If the line is still high, it stays pending.
//!
//! Purely virtual level interrupts are different: their line is whatever the emulated device
//! last set with [`VgicCpu::set_line_level`], so populate leaves it alone.
//!
//! # Never pending and active with HW = 1
//! With HW = 1 the pending state of a second instance is kept by the physical distributor,
//! so a list register with HW = 1 is written pending *or* active. A software pending state
//! on a forwarded interrupt the guest still has active stays in [`Virq`] and is listed once
//! the guest has deactivated the first instance.
//!
//! # Overflow
//! Active interrupts are listed first (the guest must find them at EOI), then pending ones
//! in priority order, then INTID order. If they do not all fit, populate asks for a
//! maintenance interrupt: ICH_HCR_EL2.UIE (fires once at most one list register is still
//! valid) with two or more list registers, NPIE (fires once the single list register is no
//! longer pending) with one. The exit folds and the next populate lists the rest, so every
//! interrupt is delivered, in priority order.
//!
//! A single list register that holds an active interrupt would raise NP and U at once, so it
//! asks for an EOI maintenance interrupt instead. If the interrupt is forwarded with HW = 1,
//! that instance is listed HW = 0, EOI = 1 (bit 41 is pINTID when HW = 1, so an HW entry cannot
//! ask) and fold deactivates the physical interrupt, as for [`FwdMode::EoiMaintenance`].
//! Otherwise the guest's deactivation would cause no exit and the others would wait for an
//! unrelated one (NPIE fires as soon as the guest acknowledges, i.e. while it is active).
//!
//! # Priorities
//! Candidates are ordered by the full 8-bit priority; the virtual CPU interface keeps only
//! the top ICH_VTR_EL2.PRIbits + 1 bits (5 on QEMU) and breaks ties by list-register index,
//! which populate fills in the same order, so the guest still sees priority order.
//!
//! # Why fold parks ICH_HCR_EL2.En
//! After fold the list registers are stale copies. Left enabled, a condition such as "at most
//! one valid entry" (UIE) or an EOI-signalling entry would keep the maintenance PPI asserted
//! while the hypervisor runs. [`VgicCpu::fold_lrs`] therefore writes ICH_HCR_EL2 with En = 0;
//! [`VgicCpu::populate_lrs`] writes it back with En = 1 after the list registers. Populate
//! writes En = 1 even with nothing to list: GICv4 direct vLPI delivery needs it too.
//!
//! # Virtual LPIs injected by software
//! A hypervisor without GICv4 direct injection (or that does not use it) takes a device's MSI
//! as a physical LPI and hands the guest the LPI it stands for: [`VgicCpu::inject_lpi`]. An
//! LPI is edge-like and has no active state, so it is only ever listed pending (HW = 0, no
//! EOI maintenance); the guest's acknowledge leaves the list register invalid and its EOI only
//! drops the running priority. Up to [`MAX_PENDING_LPIS`] distinct LPIs wait in software; a
//! second injection of one already waiting merges with it, as a second MSI would. They compete
//! for list registers with the other interrupts by priority (active ones first, as always),
//! and a pending LPI that did not fit, or that the guest had not acknowledged by the exit,
//! waits for the next populate.
//!
//! # EOIcount
//! Active interrupts are always listed again, so the guest never deactivates an interrupt
//! that has no list register and ICH_HCR_EL2.EOIcount stays 0 (directly injected vLPIs do
//! not count either); populate writes it as 0. More simultaneously active interrupts than
//! list registers (nesting deeper than ListRegs + 1) is not supported and is counted in
//! [`VgicStats::active_overflows`].

use heapless::Vec;

use crate::error::FwdError;
use crate::hw::{IchRegs, PhysIrqState};
use crate::ids::{ApIndex, FIRST_LPI, LrIndex, MAX_APRS, MAX_LRS, PIntId, VIntId};
use crate::regs::{IchApr, IchHcr, IchLr, IchMisr, IchVmcr, IchVtr, LrState};

/// How the interrupt's input behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Edge-triggered: each assertion is one interrupt, latched until acknowledged.
    Edge,
    /// Level-sensitive: pending while the input line is high.
    Level,
}

/// How a forwarded interrupt's physical instance is deactivated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FwdMode {
    /// HW = 1: the guest's deactivation deactivates the physical interrupt. No exit at EOI.
    Hw,
    /// HW = 0, EOI = 1: the guest's deactivation raises an EOI maintenance interrupt and the
    /// hypervisor deactivates the physical interrupt at the next fold.
    EoiMaintenance,
}

/// The physical side of a forwarded interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Forward {
    /// The physical PPI or SPI.
    pub pintid: PIntId,
    /// How its deactivation reaches the physical GIC.
    pub mode: FwdMode,
}

/// Static configuration of a virtual interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VirqConfig {
    /// Priority written to `ICH_LR<n>_EL2`.Priority (lower is more urgent).
    pub priority: u8,
    /// Group 1 (true) or Group 0.
    pub group1: bool,
    /// Edge or level.
    pub trigger: Trigger,
    /// Whether the guest enabled it (GICD_ISENABLER / GICR_ISENABLER0 as emulated). Disabled
    /// interrupts stay pending but are not listed; active ones are listed regardless.
    pub enabled: bool,
}

impl VirqConfig {
    /// An enabled Group 1 edge-triggered interrupt.
    pub const fn edge(priority: u8) -> Self {
        Self {
            priority,
            group1: true,
            trigger: Trigger::Edge,
            enabled: true,
        }
    }

    /// An enabled Group 1 level-sensitive interrupt.
    pub const fn level(priority: u8) -> Self {
        Self {
            priority,
            group1: true,
            trigger: Trigger::Level,
            enabled: true,
        }
    }
}

/// The software view of one virtual interrupt (a minimal `vgic_irq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Virq {
    vintid: VIntId,
    cfg: VirqConfig,
    fwd: Option<Forward>,
    pending_latch: bool,
    line_level: bool,
    active: bool,
}

impl Virq {
    const fn new(vintid: VIntId, cfg: VirqConfig, fwd: Option<Forward>) -> Self {
        Self {
            vintid,
            cfg,
            fwd,
            pending_latch: false,
            line_level: false,
            active: false,
        }
    }

    /// The virtual INTID.
    pub const fn vintid(&self) -> VIntId {
        self.vintid
    }

    /// The configuration.
    pub const fn config(&self) -> VirqConfig {
        self.cfg
    }

    /// The physical side, if forwarded.
    pub const fn forward(&self) -> Option<Forward> {
        self.fwd
    }

    /// The latched pending state (edge assertions, software-set pending).
    pub const fn pending_latch(&self) -> bool {
        self.pending_latch
    }

    /// The input line level as software knows it (level-sensitive interrupts).
    pub const fn line_level(&self) -> bool {
        self.line_level
    }

    /// Whether the guest has acknowledged and not yet deactivated it (as of the last fold).
    pub const fn is_active(&self) -> bool {
        self.active
    }

    /// Whether it is pending: latched, or a level interrupt whose line is high.
    pub const fn is_pending(&self) -> bool {
        self.pending_latch || (matches!(self.cfg.trigger, Trigger::Level) && self.line_level)
    }

    /// Whether it is a forwarded level-sensitive interrupt (the "mapped level" case).
    pub const fn is_mapped_level(&self) -> bool {
        self.fwd.is_some() && matches!(self.cfg.trigger, Trigger::Level)
    }

    /// Builds its list register and consumes the pending state the list register now carries.
    /// Returns the value and whether a latched pending state was consumed.
    fn place(&mut self) -> (IchLr, bool) {
        let pending = self.cfg.enabled && self.is_pending();
        let mut state = LrState::from_flags(pending, self.active);
        let hw = matches!(
            self.fwd,
            Some(Forward {
                mode: FwdMode::Hw,
                ..
            })
        );
        if hw && matches!(state, LrState::PendingActive) {
            // The pending part waits in software until the guest deactivates the active one.
            state = LrState::Active;
        }
        let mut consumed_latch = false;
        if state.is_pending() {
            consumed_latch = self.pending_latch;
            self.pending_latch = false;
            if self.is_mapped_level() {
                // Only rising edges are observed: the next one must raise the line again.
                self.line_level = false;
            }
        }
        let (prio, g1) = (self.cfg.priority, self.cfg.group1);
        let lr = match self.fwd {
            Some(Forward {
                pintid,
                mode: FwdMode::Hw,
            }) => IchLr::hw_irq(self.vintid, pintid, prio, g1, state),
            Some(Forward {
                mode: FwdMode::EoiMaintenance,
                ..
            }) => IchLr::virtual_irq(self.vintid, prio, g1, state, true),
            None => IchLr::virtual_irq(self.vintid, prio, g1, state, false),
        };
        (lr, consumed_latch)
    }
}

/// Distinct virtual LPIs a vCPU holds pending in software at most.
pub const MAX_PENDING_LPIS: usize = 16;

/// A virtual LPI waiting for a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingLpi {
    /// Its INTID (8192 and above).
    pub vintid: u32,
    /// Its priority (lower is more urgent).
    pub priority: u8,
}

/// What a list register holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listed {
    /// An SGI, PPI or SPI of the table.
    Irq(VIntId),
    /// A virtual LPI.
    Lpi(PendingLpi),
}

/// What populate wrote to one list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LrSlot {
    what: Listed,
    written: IchLr,
    consumed_latch: bool,
}

/// Counters a hypervisor, test or benchmark reads to see how often EL2 was involved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VgicStats {
    /// Populates (guest entries).
    pub entries: u64,
    /// Folds (guest exits).
    pub exits: u64,
    /// Exits at which a maintenance interrupt condition held (ICH_MISR_EL2 non-zero).
    pub maintenance_exits: u64,
    /// List-register writes.
    pub lr_writes: u64,
    /// List-register reads (ICH_ELRSR_EL2 lets fold skip empty ones).
    pub lr_reads: u64,
    /// Populates that could not list every candidate.
    pub overflows: u64,
    /// Populates with more active interrupts than list registers (unsupported nesting depth).
    pub active_overflows: u64,
    /// Physical deactivations done by fold for [`FwdMode::EoiMaintenance`] interrupts.
    pub eoi_deactivations: u64,
    /// Mapped level interrupts whose physical line had dropped before the guest acknowledged
    /// them.
    pub lines_dropped: u64,
}

/// The list-register values populate computed, for a world switch that writes them itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LrPlan {
    lrs: [IchLr; MAX_LRS],
    count: u8,
    clear_to: u8,
    hcr: IchHcr,
    overflowed: bool,
}

impl LrPlan {
    /// The values of `ICH_LR0_EL2` .. `ICH_LR<count-1>_EL2`.
    pub fn lrs(&self) -> &[IchLr] {
        &self.lrs[..usize::from(self.count)]
    }

    /// Every list-register write the plan needs, in index order: the listed interrupts, then
    /// zeros for list registers that may still hold stale values.
    pub fn writes(&self) -> impl Iterator<Item = (LrIndex, IchLr)> + '_ {
        LrIndex::first(usize::from(self.clear_to)).map(|n| (n, self.lrs[n.get()]))
    }

    /// ICH_HCR_EL2, to be written after the list registers: En = 1, plus UIE or NPIE on
    /// overflow.
    pub const fn hcr(&self) -> IchHcr {
        self.hcr
    }

    /// Whether some candidate did not fit (and a maintenance interrupt was requested: UIE,
    /// NPIE, or EOI on a single active list register).
    pub const fn overflowed(&self) -> bool {
        self.overflowed
    }
}

/// What one fold found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoldReport {
    /// Entries the guest acknowledged since populate (pending -> active or invalid).
    pub acknowledged: u8,
    /// Entries the guest deactivated since populate (now invalid).
    pub completed: u8,
    /// Entries still pending (the guest did not acknowledge them).
    pub still_pending: u8,
    /// Mapped level interrupts dropped because their physical line had gone low.
    pub lines_dropped: u8,
    /// Physical interrupts deactivated for [`FwdMode::EoiMaintenance`].
    pub eoi_deactivations: u8,
    /// The maintenance conditions (ICH_MISR_EL2) that held at exit, computed from the list
    /// registers and the ICH_HCR_EL2 populate wrote (EOI, U and NP only).
    pub maintenance: IchMisr,
}

/// The vCPU's CPU-interface state saved and restored on vCPU put and load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuIfState {
    /// ICH_VMCR_EL2.
    pub vmcr: IchVmcr,
    /// `ICH_AP0R<n>_EL2`.
    pub ap0r: [IchApr; MAX_APRS],
    /// `ICH_AP1R<n>_EL2`.
    pub ap1r: [IchApr; MAX_APRS],
}

/// A populate candidate: sort key first.
#[derive(Clone, Copy)]
struct Candidate {
    pending_only: bool,
    priority: u8,
    vintid: VIntId,
    index: usize,
}

/// One vCPU's virtual interrupts (up to `N`, plus [`MAX_PENDING_LPIS`] pending virtual
/// LPIs) and its list-register bookkeeping.
#[derive(Clone, Debug)]
pub struct VgicCpu<const N: usize> {
    irqs: Vec<Virq, N>,
    lpis: Vec<PendingLpi, MAX_PENDING_LPIS>,
    nr_lrs: u8,
    nr_aprs: u8,
    slots: [Option<LrSlot>; MAX_LRS],
    populated: u8,
    dirty: u8,
    hcr_base: IchHcr,
    hcr_written: IchHcr,
    cpuif: CpuIfState,
    stats: VgicStats,
}

impl<const N: usize> VgicCpu<N> {
    /// A vCPU with `nr_lrs` list registers (1..=16) and one active-priorities register of
    /// each group.
    ///
    /// All list registers are treated as holding unknown values until the first populate
    /// zeroes them.
    ///
    /// # Errors
    /// [`FwdError::LrIndexOutOfRange`] for 0 or more than 16 list registers.
    pub fn new(nr_lrs: usize) -> Result<Self, FwdError> {
        if nr_lrs == 0 || nr_lrs > MAX_LRS {
            return Err(FwdError::LrIndexOutOfRange {
                index: u32::try_from(nr_lrs).unwrap_or(u32::MAX),
                nr_lrs: MAX_LRS as u32,
            });
        }
        Ok(Self {
            irqs: Vec::new(),
            lpis: Vec::new(),
            nr_lrs: nr_lrs as u8,
            nr_aprs: 1,
            slots: [None; MAX_LRS],
            populated: 0,
            dirty: nr_lrs as u8,
            hcr_base: IchHcr::new(),
            hcr_written: IchHcr::new(),
            cpuif: CpuIfState::default(),
            stats: VgicStats::default(),
        })
    }

    /// A vCPU sized from ICH_VTR_EL2: ListRegs + 1 list registers, and as many
    /// active-priorities registers as PREbits needs.
    ///
    /// # Errors
    /// [`FwdError::TooManyListRegs`] if ListRegs + 1 exceeds 16.
    pub fn from_vtr(vtr: IchVtr) -> Result<Self, FwdError> {
        let n = vtr.nr_lrs();
        if n > MAX_LRS {
            return Err(FwdError::TooManyListRegs { reported: n as u32 });
        }
        let mut cpu = Self::new(n)?;
        cpu.nr_aprs = vtr.nr_aprs() as u8;
        crate::logging::debug!(
            "fwd-irq: vCPU interface with {} list registers, {} active-priorities registers",
            n,
            cpu.nr_aprs
        );
        Ok(cpu)
    }

    /// The number of list registers in use.
    pub const fn nr_lrs(&self) -> usize {
        self.nr_lrs as usize
    }

    /// The counters.
    pub const fn stats(&self) -> VgicStats {
        self.stats
    }

    /// Sets the trap and control bits of ICH_HCR_EL2 (TC, TALL0, TALL1, TDIR, ...) that every
    /// populate writes. En, UIE, NPIE and EOIcount are managed here and ignored in `hcr`.
    pub fn set_hcr_base(&mut self, hcr: IchHcr) {
        self.hcr_base = hcr
            .with_en(false)
            .with_uie(false)
            .with_npie(false)
            .with_eoicount(0);
    }

    fn find(&self, vintid: VIntId) -> Result<usize, usize> {
        self.irqs.binary_search_by_key(&vintid, |v| v.vintid)
    }

    fn get_mut(&mut self, vintid: VIntId) -> Result<&mut Virq, FwdError> {
        let i = self.find(vintid).map_err(|_| FwdError::NotConfigured {
            vintid: vintid.get(),
        })?;
        self.irqs.get_mut(i).ok_or(FwdError::NotConfigured {
            vintid: vintid.get(),
        })
    }

    fn insert(&mut self, virq: Virq) -> Result<(), FwdError> {
        let vintid = virq.vintid;
        let at = match self.find(vintid) {
            Ok(_) => {
                return Err(FwdError::AlreadyConfigured {
                    vintid: vintid.get(),
                });
            }
            Err(at) => at,
        };
        self.irqs
            .insert(at, virq)
            .map_err(|_| FwdError::TableFull { capacity: N as u32 })
    }

    /// Adds a purely virtual interrupt (an emulated device's, or an SGI).
    ///
    /// # Errors
    /// [`FwdError::AlreadyConfigured`] if present, [`FwdError::TableFull`] if no slot is free.
    pub fn configure(&mut self, vintid: VIntId, cfg: VirqConfig) -> Result<(), FwdError> {
        self.insert(Virq::new(vintid, cfg, None))
    }

    /// Adds a forwarded interrupt: `vintid` stands for the physical `fwd.pintid`.
    ///
    /// The trigger in `cfg` should match the physical interrupt's: a level-sensitive physical
    /// interrupt forwarded as edge loses interrupts for the guest, never for the host.
    ///
    /// # Errors
    /// [`FwdError::AlreadyConfigured`], [`FwdError::PIntIdInUse`] if another vINTID of this
    /// vCPU already forwards `fwd.pintid`, [`FwdError::TableFull`].
    pub fn map(&mut self, vintid: VIntId, cfg: VirqConfig, fwd: Forward) -> Result<(), FwdError> {
        if let Some(other) = self.by_pintid(fwd.pintid) {
            return Err(FwdError::PIntIdInUse {
                pintid: fwd.pintid.get(),
                vintid: other.vintid.get(),
            });
        }
        self.insert(Virq::new(vintid, cfg, Some(fwd)))?;
        crate::logging::debug!(
            "fwd-irq: vINTID {} forwarded from pINTID {}",
            vintid.get(),
            fwd.pintid.get()
        );
        Ok(())
    }

    /// Removes an interrupt and returns its last state.
    ///
    /// If it was forwarded and still pending or active, its physical interrupt is still
    /// active at the physical GIC: the caller deactivates it. Do not remove an interrupt
    /// between populate and fold.
    ///
    /// # Errors
    /// [`FwdError::NotConfigured`].
    pub fn remove(&mut self, vintid: VIntId) -> Result<Virq, FwdError> {
        let i = self.find(vintid).map_err(|_| FwdError::NotConfigured {
            vintid: vintid.get(),
        })?;
        crate::logging::debug!("fwd-irq: vINTID {} removed", vintid.get());
        Ok(self.irqs.remove(i))
    }

    /// The software view of `vintid`.
    pub fn virq(&self, vintid: VIntId) -> Option<&Virq> {
        self.find(vintid).ok().and_then(|i| self.irqs.get(i))
    }

    /// The interrupt forwarded from `pintid`, if any (the pINTID -> vINTID direction of the
    /// forwarding table).
    pub fn by_pintid(&self, pintid: PIntId) -> Option<&Virq> {
        self.irqs
            .iter()
            .find(|v| v.fwd.is_some_and(|f| f.pintid == pintid))
    }

    /// Every configured interrupt, in vINTID order.
    pub fn iter(&self) -> impl Iterator<Item = &Virq> {
        self.irqs.iter()
    }

    /// Enables or disables `vintid` (the guest's GICD_ISENABLER / ICENABLER, as emulated).
    ///
    /// # Errors
    /// [`FwdError::NotConfigured`].
    pub fn set_enabled(&mut self, vintid: VIntId, enabled: bool) -> Result<(), FwdError> {
        self.get_mut(vintid)?.cfg.enabled = enabled;
        Ok(())
    }

    /// Replaces the configuration of `vintid` (the guest's priority, group, trigger and enable
    /// writes, as an emulated distributor or redistributor applies them), keeping its
    /// forwarding and its pending, line and active state.
    ///
    /// Call it between fold and populate. A change of trigger is the caller's decision: a
    /// forwarded interrupt should keep its physical trigger.
    ///
    /// # Errors
    /// [`FwdError::NotConfigured`].
    pub fn set_config(&mut self, vintid: VIntId, cfg: VirqConfig) -> Result<(), FwdError> {
        self.get_mut(vintid)?.cfg = cfg;
        Ok(())
    }

    /// Sets or clears the active state (the guest's GICD_ISACTIVER / ICACTIVER, as emulated).
    ///
    /// Call it between fold and populate. For a forwarded interrupt the caller keeps the
    /// physical active state in line afterwards: it must be active exactly when
    /// [`Self::needs_phys_active`] says so.
    ///
    /// # Errors
    /// [`FwdError::NotConfigured`].
    pub fn set_active(&mut self, vintid: VIntId, active: bool) -> Result<(), FwdError> {
        self.get_mut(vintid)?.active = active;
        Ok(())
    }

    /// Signals `vintid`: latches an edge, or raises the line of a level interrupt (for a
    /// forwarded level interrupt this is the rising edge the hypervisor observed).
    ///
    /// # Errors
    /// [`FwdError::NotConfigured`].
    pub fn inject(&mut self, vintid: VIntId) -> Result<(), FwdError> {
        let irq = self.get_mut(vintid)?;
        match irq.cfg.trigger {
            Trigger::Edge => irq.pending_latch = true,
            Trigger::Level => irq.line_level = true,
        }
        Ok(())
    }

    /// Sets the software line level of a level-sensitive interrupt (an emulated device's
    /// output). Forwarded interrupts take their line from the physical GIC instead.
    ///
    /// # Errors
    /// [`FwdError::NotConfigured`].
    pub fn set_line_level(&mut self, vintid: VIntId, level: bool) -> Result<(), FwdError> {
        self.get_mut(vintid)?.line_level = level;
        Ok(())
    }

    /// Sets or clears the latched pending state (the guest's GICD_ISPENDR / ICPENDR, as
    /// emulated).
    ///
    /// # Errors
    /// [`FwdError::NotConfigured`].
    pub fn set_pending_latch(&mut self, vintid: VIntId, pending: bool) -> Result<(), FwdError> {
        self.get_mut(vintid)?.pending_latch = pending;
        Ok(())
    }

    /// The host took physical interrupt `pintid` (acknowledged it and dropped its priority,
    /// leaving it active): signals the vINTID it is forwarded to.
    ///
    /// # Errors
    /// [`FwdError::NotForwarded`] if no vINTID of this vCPU is forwarded from `pintid`; the
    /// host then handles the interrupt itself.
    pub fn on_phys_irq(&mut self, pintid: PIntId) -> Result<VIntId, FwdError> {
        let vintid = self
            .by_pintid(pintid)
            .map(|v| v.vintid)
            .ok_or(FwdError::NotForwarded {
                pintid: pintid.get(),
            })?;
        self.inject(vintid)?;
        crate::logging::trace!(
            "fwd-irq: pINTID {} injected as vINTID {}",
            pintid.get(),
            vintid.get()
        );
        Ok(vintid)
    }

    /// Whether `vintid` is pending or active in software, i.e. whether its physical interrupt
    /// (if forwarded) must be active at the physical GIC while this vCPU is loaded.
    pub fn needs_phys_active(&self, vintid: VIntId) -> bool {
        self.virq(vintid)
            .is_some_and(|v| v.active || v.is_pending())
    }

    /// Whether any enabled interrupt (or a virtual LPI) is pending (a vCPU in WFI should not
    /// block).
    pub fn has_pending(&self) -> bool {
        !self.lpis.is_empty() || self.irqs.iter().any(|v| v.cfg.enabled && v.is_pending())
    }

    /// Makes virtual LPI `vintid` pending at `priority` (see "Virtual LPIs injected by
    /// software"). If it is pending already the two merge (its priority becomes `priority`).
    ///
    /// # Errors
    /// [`FwdError::NotAnLpi`] below 8192; [`FwdError::TableFull`] when
    /// [`MAX_PENDING_LPIS`] other LPIs are pending.
    pub fn inject_lpi(&mut self, vintid: u32, priority: u8) -> Result<(), FwdError> {
        if vintid < FIRST_LPI {
            return Err(FwdError::NotAnLpi { raw: vintid });
        }
        if let Some(l) = self.lpis.iter_mut().find(|l| l.vintid == vintid) {
            l.priority = priority;
            return Ok(());
        }
        self.lpis
            .push(PendingLpi { vintid, priority })
            .map_err(|_| FwdError::TableFull {
                capacity: MAX_PENDING_LPIS as u32,
            })
    }

    /// Withdraws virtual LPI `vintid` if it waits in software (not once listed: call it
    /// between fold and populate). Returns whether it was pending.
    pub fn clear_lpi(&mut self, vintid: u32) -> bool {
        match self.lpis.iter().position(|l| l.vintid == vintid) {
            Some(i) => {
                self.lpis.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// The virtual LPIs waiting in software.
    pub fn pending_lpis(&self) -> &[PendingLpi] {
        &self.lpis
    }

    /// Computes the list registers for the next guest entry and consumes, in software, the
    /// pending state they carry. Pure: no register access. [`Self::populate_lrs`] writes the
    /// result; a world switch that writes list registers itself uses [`LrPlan::writes`] and
    /// [`LrPlan::hcr`], then must call [`Self::fold_saved`] after the exit.
    ///
    /// Populating again without a fold in between re-plans from scratch, as if the guest had
    /// not seen the previous list registers: the pending state they carried is given back
    /// first. That is for a hypervisor that changes its mind (injects more) before entering;
    /// after the guest ran, always fold first.
    pub fn plan_populate(&mut self) -> LrPlan {
        self.unplace();
        let mut cands: Vec<Candidate, N> = Vec::new();
        for (index, irq) in self.irqs.iter().enumerate() {
            let pending = irq.cfg.enabled && irq.is_pending();
            if irq.active || pending {
                // At most one candidate per table entry, so this never fails.
                let _ = cands.push(Candidate {
                    pending_only: !irq.active,
                    priority: irq.cfg.priority,
                    vintid: irq.vintid,
                    index,
                });
            }
        }
        cands.sort_unstable_by_key(|c| (c.pending_only, c.priority, c.vintid));
        let mut lpis = self.lpis.clone();
        lpis.sort_unstable_by_key(|l| (l.priority, l.vintid));

        let nr = usize::from(self.nr_lrs);
        let total = cands.len() + lpis.len();
        let count = total.min(nr);
        if cands.iter().filter(|c| !c.pending_only).count() > nr {
            self.stats.active_overflows += 1;
            crate::logging::warning!(
                "fwd-irq: more active interrupts than the {} list registers (nesting too deep): some stay unlisted",
                nr
            );
        }
        let mut lrs = [IchLr::new(); MAX_LRS];
        self.slots = [None; MAX_LRS];
        // Merge the two sorted lists: active interrupts first, then pending ones (interrupts
        // and LPIs alike) by priority; an LPI loses a tie to an SGI, PPI or SPI.
        let (mut ci, mut li) = (0, 0);
        #[allow(
            clippy::needless_range_loop,
            reason = "k indexes both lrs and self.slots while the body borrows self's tables"
        )]
        for k in 0..count {
            let lpi = match (cands.get(ci), lpis.get(li)) {
                (Some(c), Some(l)) if c.pending_only && l.priority < c.priority => Some(*l),
                (None, Some(l)) => Some(*l),
                _ => None,
            };
            if let Some(l) = lpi {
                li += 1;
                let lr = IchLr::virtual_lpi(l.vintid, l.priority, true);
                lrs[k] = lr;
                self.slots[k] = Some(LrSlot {
                    what: Listed::Lpi(l),
                    written: lr,
                    consumed_latch: true,
                });
                if let Some(i) = self.lpis.iter().position(|p| p.vintid == l.vintid) {
                    self.lpis.swap_remove(i);
                }
            } else if let Some(c) = cands.get(ci) {
                ci += 1;
                if let Some(irq) = self.irqs.get_mut(c.index) {
                    let (lr, consumed_latch) = irq.place();
                    lrs[k] = lr;
                    self.slots[k] = Some(LrSlot {
                        what: Listed::Irq(irq.vintid),
                        written: lr,
                        consumed_latch,
                    });
                }
            }
        }

        let mut hcr = self.hcr_base.with_en(true);
        let overflowed = total > count;
        if overflowed {
            self.stats.overflows += 1;
            if nr >= 2 {
                hcr = hcr.with_uie(true);
            } else if lrs[0].state() == LrState::Pending {
                hcr = hcr.with_npie(true);
            } else {
                // One list register holding an active interrupt: NP and U would fire at once.
                // Ask to hear about its deactivation instead. An HW = 1 entry has no EOI bit
                // (bit 41 is pINTID then), so this instance is listed HW = 0, EOI = 1 and fold
                // deactivates the physical interrupt, as for FwdMode::EoiMaintenance.
                lrs[0] = lrs[0].with_eoi(true);
                if let Some(slot) = self.slots[0].as_mut() {
                    slot.written = lrs[0];
                }
            }
        }

        if overflowed {
            crate::logging::debug!(
                "fwd-irq: {} interrupts for {} list registers: maintenance interrupt requested",
                cands.len(),
                nr
            );
        }
        crate::logging::trace!(
            "fwd-irq: populate: {} list registers written, {} listed",
            self.dirty.max(count as u8),
            count
        );
        let clear_to = self.dirty.max(count as u8);
        self.populated = count as u8;
        self.dirty = count as u8;
        self.hcr_written = hcr;
        self.stats.entries += 1;
        self.stats.lr_writes += u64::from(clear_to);
        LrPlan {
            lrs,
            count: count as u8,
            clear_to,
            hcr,
            overflowed,
        }
    }

    /// Gives back the pending state of list registers populated but never folded.
    fn unplace(&mut self) {
        for k in 0..usize::from(self.populated) {
            let Some(slot) = self.slots[k].take() else {
                continue;
            };
            let vintid = match slot.what {
                Listed::Irq(v) => v,
                Listed::Lpi(l) => {
                    // Listed pending, never seen by the guest: it waits again.
                    self.requeue_lpi(l);
                    continue;
                }
            };
            let Ok(i) = self.find(vintid) else {
                continue;
            };
            let Some(irq) = self.irqs.get_mut(i) else {
                continue;
            };
            if slot.written.state().is_pending() {
                irq.pending_latch |= slot.consumed_latch;
                if irq.is_mapped_level() {
                    irq.line_level = true;
                }
            }
        }
        self.populated = 0;
    }

    /// Populates the list registers before a guest entry: writes the listed interrupts, zeroes
    /// stale list registers, then writes ICH_HCR_EL2 (En = 1, UIE/NPIE on overflow).
    pub fn populate_lrs(&mut self, regs: &mut impl IchRegs) -> LrPlan {
        let plan = self.plan_populate();
        for (n, lr) in plan.writes() {
            regs.write_lr(n, lr);
        }
        regs.set_hcr(plan.hcr());
        plan
    }

    /// Folds the list-register values read after an exit into the software view. `saved[k]`
    /// is `ICH_LR<k>_EL2` for k below the count populate listed; extra values are ignored and
    /// missing ones count as invalid. `phys` is sampled for mapped level interrupts and
    /// written to clear physical active states.
    pub fn fold_saved(&mut self, saved: &[IchLr], phys: &mut impl PhysIrqState) -> FoldReport {
        let mut report = FoldReport::default();
        let (mut valid, mut any_pending, mut any_eoi) = (0u32, false, false);
        for k in 0..usize::from(self.populated) {
            let Some(slot) = self.slots[k].take() else {
                continue;
            };
            let now = saved.get(k).copied().unwrap_or(IchLr::new());
            let state = now.state();
            valid += u32::from(state.is_valid());
            any_pending |= state == LrState::Pending;
            any_eoi |= slot.written.eoi() && !state.is_valid();
            self.fold_one(slot, state, phys, &mut report);
        }
        self.populated = 0;
        report.maintenance = IchMisr::new()
            .with_eoi(any_eoi)
            .with_u(self.hcr_written.uie() && valid < 2)
            .with_np(self.hcr_written.npie() && !any_pending);
        self.stats.exits += 1;
        if report.maintenance.any() {
            self.stats.maintenance_exits += 1;
        }
        self.stats.lines_dropped += u64::from(report.lines_dropped);
        self.stats.eoi_deactivations += u64::from(report.eoi_deactivations);
        crate::logging::trace!(
            "fwd-irq: fold: {} acknowledged, {} completed, {} still pending, maintenance {}",
            report.acknowledged,
            report.completed,
            report.still_pending,
            report.maintenance.any()
        );
        report
    }

    /// Puts a listed LPI back among the pending ones (it was pending first, so there is
    /// room unless another injection took it meanwhile; then it merges or is dropped).
    fn requeue_lpi(&mut self, l: PendingLpi) {
        if !self.lpis.iter().any(|p| p.vintid == l.vintid) {
            let _ = self.lpis.push(l);
        }
    }

    fn fold_one(
        &mut self,
        slot: LrSlot,
        state: LrState,
        phys: &mut impl PhysIrqState,
        report: &mut FoldReport,
    ) {
        let vintid = match slot.what {
            Listed::Irq(v) => v,
            Listed::Lpi(l) => {
                if state.is_pending() {
                    report.still_pending += 1;
                    self.requeue_lpi(l);
                } else {
                    // Acknowledged: an LPI has no active state, so it is done.
                    report.acknowledged += 1;
                    report.completed += 1;
                }
                return;
            }
        };
        let Ok(i) = self.find(vintid) else {
            return;
        };
        let Some(irq) = self.irqs.get_mut(i) else {
            return;
        };
        let before = slot.written.state();
        if before.is_pending() && !state.is_pending() {
            report.acknowledged += 1;
        }
        if before.is_valid() && !state.is_valid() {
            report.completed += 1;
        }
        irq.active = state.is_active();

        if state.is_pending() {
            report.still_pending += 1;
            match (irq.cfg.trigger, irq.fwd) {
                (Trigger::Level, Some(fwd)) => {
                    // Mapped level: only the physical line knows whether it is still asserted.
                    let high = phys.is_pending(fwd.pintid);
                    irq.line_level = high;
                    if !high {
                        report.lines_dropped += 1;
                        if !state.is_active() {
                            // Otherwise it stays active and the next assertion is never seen.
                            phys.set_active(fwd.pintid, false);
                        }
                    }
                }
                (Trigger::Edge, _) => irq.pending_latch = true,
                (Trigger::Level, None) => irq.pending_latch |= slot.consumed_latch,
            }
        }

        if before.is_valid()
            && !state.is_valid()
            && !slot.written.hw()
            && let Some(Forward { pintid, .. }) = irq.fwd
        {
            // The guest deactivated it; with HW = 0 (FwdMode::EoiMaintenance, or the single
            // list register overflow case) the physical deactivation is ours.
            phys.set_active(pintid, false);
            report.eoi_deactivations += 1;
        }
    }

    /// Folds the list registers after a guest exit: reads ICH_ELRSR_EL2, reads back the
    /// non-empty list registers populate wrote, folds them (see [`Self::fold_saved`]), then
    /// parks ICH_HCR_EL2 with En = 0.
    ///
    /// Call it on every exit before looking at or changing interrupt state, and before
    /// handling the physical interrupt that caused an IRQ exit.
    pub fn fold_lrs(
        &mut self,
        regs: &mut impl IchRegs,
        phys: &mut impl PhysIrqState,
    ) -> FoldReport {
        let n = usize::from(self.populated);
        let mut saved = [IchLr::new(); MAX_LRS];
        if n > 0 {
            let elrsr = regs.elrsr();
            for lr in LrIndex::first(n) {
                if !elrsr.is_empty(lr) {
                    saved[lr.get()] = regs.read_lr(lr);
                    self.stats.lr_reads += 1;
                }
            }
        }
        let report = self.fold_saved(&saved[..n], phys);
        regs.set_hcr(self.hcr_base);
        report
    }

    /// The saved CPU-interface state (ICH_VMCR_EL2, `ICH_AP{0,1}R<n>_EL2`).
    pub const fn cpuif(&self) -> CpuIfState {
        self.cpuif
    }

    /// Replaces the saved CPU-interface state, e.g. to start the vCPU with a known
    /// ICH_VMCR_EL2.
    pub fn set_cpuif(&mut self, state: CpuIfState) {
        self.cpuif = state;
    }

    /// Saves ICH_VMCR_EL2 and the implemented `ICH_AP{0,1}R<n>_EL2` on vCPU put.
    pub fn save_cpuif(&mut self, regs: &impl IchRegs) {
        self.cpuif.vmcr = regs.vmcr();
        for n in ApIndex::first(usize::from(self.nr_aprs)) {
            self.cpuif.ap0r[n.get()] = regs.ap0r(n);
            self.cpuif.ap1r[n.get()] = regs.ap1r(n);
        }
    }

    /// Restores ICH_VMCR_EL2 and the implemented `ICH_AP{0,1}R<n>_EL2` on vCPU load, and
    /// marks every list register as holding unknown values, so that the next populate zeroes
    /// them all.
    ///
    /// # Why load forgets which list registers are clean
    /// Fold leaves the list registers as they were (stale copies, harmless while
    /// ICH_HCR_EL2.En = 0), and populate only zeroes those this vCPU may have written. That
    /// bookkeeping is about the PE the vCPU last ran on. After a migration, or after another
    /// vCPU ran on this PE, higher-numbered list registers can still hold another context's
    /// valid entries, which the guest would take as soon as populate sets En = 1.
    pub fn restore_cpuif(&mut self, regs: &mut impl IchRegs) {
        self.dirty = self.nr_lrs;
        regs.set_vmcr(self.cpuif.vmcr);
        for n in ApIndex::first(usize::from(self.nr_aprs)) {
            regs.set_ap0r(n, self.cpuif.ap0r[n.get()]);
            regs.set_ap1r(n, self.cpuif.ap1r[n.get()]);
        }
    }
}
