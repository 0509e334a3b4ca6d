// SPDX-License-Identifier: MIT OR Apache-2.0
//! vLPIs: map, unmap, move, property update, INVALL; GICv4.1 vSGIs and INVDB.

use its_cmdq::{Device, EventState, Its, PhysMapping, SyncTarget, VirtMapping};
use its_core::cmd::{Command, ItsVersion};
use its_core::ids::{EventId, IntId, SgiId, SgiPriority, VLpi};
use its_core::mmio::{ItsRegisters, RedistRegisters};
use its_core::platform::Platform;
use its_core::regs::GicrInvallr;

use crate::GicV4;
use crate::error::VpeError;
use crate::vm::Vm;

/// A vLPI's new configuration (see [`GicV4::update_vlpi`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlpiProp {
    /// Priority (bits \[7:2\] are kept).
    pub priority: u8,
    /// Enabled.
    pub enabled: bool,
    /// Invalidate, so a resident vPE's redistributor rereads the configuration.
    pub inv: bool,
}

/// A virtual SGI's configuration (GICv4.1, see [`GicV4::update_vsgi`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VsgiConfig {
    /// The SGI.
    pub sgi: SgiId,
    /// Its priority.
    pub priority: SgiPriority,
    /// Group 1.
    pub group: bool,
    /// Enabled.
    pub enable: bool,
    /// Clear its pending state.
    pub clear: bool,
}

/// How a vLPI is configured when it is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlpiConfig {
    /// The vINTID.
    pub vintid: VLpi,
    /// Its priority (bits \[7:2\] are kept).
    pub priority: u8,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Whether the vPE's doorbell rings for it while the vPE is not resident (GICv4.0: the
    /// ITE carries the doorbell; a disabled vLPI never carries it).
    pub doorbell: bool,
}

impl<'a, R: ItsRegisters, P: Platform + Clone> GicV4<'a, R, P> {
    fn doorbell_field(
        &self,
        vm: &Vm<P>,
        vpe: usize,
        enabled: bool,
        want: bool,
    ) -> Result<IntId, VpeError> {
        // GICv4.1 uses the default doorbell from VMAPP: individual doorbells are 1023.
        if self.version == ItsVersion::V4_1 || !enabled || !want {
            return Ok(IntId::NONE);
        }
        Ok(vm.vpe(vpe)?.doorbell.intid())
    }

    fn forwarded(
        &self,
        vm: &Vm<P>,
        dev: &Device<P>,
        event: u32,
    ) -> Result<(EventState, VirtMapping, usize), VpeError> {
        let s = dev.event(event)?;
        let v = s.virt.ok_or(VpeError::NotForwarded {
            device: dev.id().get(),
            event,
        })?;
        let i = vm.owns(v.vpe).ok_or(VpeError::WrongVm {
            device: dev.id().get(),
            event,
        })?;
        Ok((s, v, i))
    }

    /// Maps events of `dev` (on `its`) to vLPIs of `vm`'s vPEs (Linux: `its_map_vlpi`), as one
    /// batch: every item is checked first; the property bytes are written; events with a host
    /// mapping are DISCARDed (then SYNC) in a first batch; then VMAPTI for each, then one
    /// VINVALL and one VSYNC per vPE (the invalidation Linux leaves out: without it a
    /// redistributor that cached the vPE's configuration never sees the new vLPI enabled). The host mapping is remembered, to restore on unmap.
    ///
    /// The driver's records change only for what the ITS did: if a DISCARD stalls, every host
    /// mapping of the batch is put back and nothing is mapped; if a VMAPTI stalls, that event
    /// gets its host mapping back (if it had one) and stays unforwarded.
    ///
    /// # Errors
    /// [`VpeError::AlreadyForwarded`] (VMAPTI over a live mapping is UNPREDICTABLE),
    /// [`VpeError::VintidOutOfRange`], [`VpeError::NoSuchVpe`], ITS errors.
    pub fn map_vlpis(
        &self,
        its: &Its<R, P>,
        dev: &mut Device<P>,
        vm: &Vm<P>,
        items: &[(u32, usize, VlpiConfig)],
    ) -> Result<(), VpeError> {
        self.alive()?;
        let mut syncs: heapless::Vec<SyncTarget, 64> = heapless::Vec::new();
        let mut phys_syncs: heapless::Vec<SyncTarget, 64> = heapless::Vec::new();
        let mut nphys = 0;
        for (k, &(event, vpe, c)) in items.iter().enumerate() {
            let s = dev.event(event)?;
            if s.virt.is_some() || items[..k].iter().any(|x| x.0 == event) {
                return Err(VpeError::AlreadyForwarded {
                    device: dev.id().get(),
                    event,
                });
            }
            vm.check_vintid(c.vintid.get())?;
            let t = SyncTarget::Vpe(vm.vpe(vpe)?.id);
            if !syncs.contains(&t) {
                syncs
                    .push(t)
                    .map_err(|_| VpeError::Config("more than 64 vPEs in one batch"))?;
            }
            if let Some(p) = s.phys {
                nphys += 1;
                let t = SyncTarget::Redist(its.cpu(p.cpu.into())?.rdbase);
                if !phys_syncs.contains(&t) {
                    phys_syncs
                        .push(t)
                        .map_err(|_| VpeError::Config("too many CPUs in one batch"))?;
                }
            }
        }
        for &(_, _, c) in items {
            vm.set_property(c.vintid.get(), c.priority, c.enabled)?;
        }
        let id = dev.id();
        let dev_ro: &Device<P> = dev;
        // The j-th item that has a host mapping, found by scanning (no buffer on the stack).
        let phys_item = |j: usize| -> (u32, Option<PhysMapping>) {
            items
                .iter()
                .filter_map(|x| {
                    dev_ro
                        .event(x.0)
                        .ok()
                        .and_then(|s| s.phys)
                        .map(|p| (x.0, Some(p)))
                })
                .nth(j)
                .unwrap_or((0, None))
        };
        // DISCARD the host mappings first: VMAPTI must not land on a live ITE.
        if nphys > 0 {
            let out = Self::run(
                its,
                nphys,
                |j| Command::Discard {
                    device: id,
                    event: EventId::new(phys_item(j).0),
                },
                &phys_syncs,
            )?;
            if let Some(e) = out.error() {
                // Map back the events whose DISCARD the ITS did: every one of them, even after
                // a restore failed, so each record follows the ITS; the first restore error
                // wins over the DISCARD's.
                let mut first: Option<VpeError> = None;
                let mut j = 0;
                for &(event, _, _) in items {
                    let phys = match dev.event(event) {
                        Ok(s) => s.phys,
                        Err(e) => {
                            first.get_or_insert(e.into());
                            continue;
                        }
                    };
                    let Some(p) = phys else {
                        continue;
                    };
                    if !out.was_skipped(j)
                        && let Err(e) = Self::restore_phys(its, dev, event, p)
                    {
                        first.get_or_insert(e);
                    }
                    j += 1;
                }
                return Err(first.unwrap_or(VpeError::Its(e)));
            }
        }
        // VMAPTI for each item, then a VINVALL for each vPE: a redistributor may hold a vPE's
        // configuration from before the property bytes were written (loaded at the VMAPP's
        // VINVALL, or while the vPE ran), and only an invalidation makes it look again. A
        // VINVALL, unlike an INV, is valid whether or not the ITS did a VMAPTI it follows.
        // Then a VSYNC per vPE.
        let n = items.len();
        let command = |k: usize| {
            if k >= n {
                let vpe = match syncs.get(k - n) {
                    Some(SyncTarget::Vpe(v)) => *v,
                    _ => Default::default(),
                };
                return Command::Vinvall { vpe };
            }
            let (event, vpe, c) = items[k];
            let db = self
                .doorbell_field(vm, vpe, c.enabled, c.doorbell)
                .unwrap_or(IntId::NONE);
            let vpe_id = vm.vpe(vpe).map(|v| v.id).unwrap_or_default();
            Command::Vmapti {
                device: id,
                event: EventId::new(event),
                vpe: vpe_id,
                vintid: c.vintid.intid(),
                db,
            }
        };
        let out = Self::run(its, n + syncs.len(), command, &syncs)?;
        // Item `k`: forwarded if the ITS did its VMAPTI, otherwise given its host mapping back
        // (if it had one).
        let mut record = |k: usize, event: u32, vpe: usize, c: VlpiConfig| {
            let s = dev.event(event)?;
            if out.was_skipped(k) {
                // Discarded but not forwarded: give the event its host mapping back.
                if let Some(p) = s.phys {
                    Self::restore_phys(its, dev, event, p)?;
                }
                return Ok(());
            }
            let v = vm.vpe(vpe)?;
            dev.set_event(
                event,
                EventState {
                    phys: s.phys,
                    virt: Some(VirtMapping {
                        vpe: v.id,
                        vintid: c.vintid,
                        doorbell: c.doorbell,
                    }),
                },
            )?;
            v.vlpis.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            if self.doorbell_field(vm, vpe, c.enabled, c.doorbell)? != IntId::NONE {
                v.had_doorbell
                    .store(true, core::sync::atomic::Ordering::Relaxed);
            }
            Ok::<(), VpeError>(())
        };
        // Every item is recorded, also after one failed (a restore the ITS stalled on or died
        // at): a VMAPTI the ITS did must be counted, or the records stop following the ITS
        // and `destroy_vm` could pass with live vLPIs. The first such error wins over the
        // batch's.
        let mut first: Option<VpeError> = None;
        for (k, &(event, vpe, c)) in items.iter().enumerate() {
            if let Err(e) = record(k, event, vpe, c) {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Self::first_error(&out),
        }
    }

    /// Puts a host mapping back (MAPTI, then SYNC) on an event the ITS has no mapping for,
    /// and records what the ITS did: the host mapping, or none if it skipped the MAPTI.
    fn restore_phys(
        its: &Its<R, P>,
        dev: &mut Device<P>,
        event: u32,
        p: PhysMapping,
    ) -> Result<(), VpeError> {
        let t = *its.cpu(p.cpu.into())?;
        let id = dev.id();
        let out = Self::run(
            its,
            1,
            |_| Command::Mapti {
                device: id,
                event: EventId::new(event),
                pintid: p.lpi.intid(),
                icid: t.icid,
            },
            &[SyncTarget::Redist(t.rdbase)],
        )?;
        let s = EventState {
            phys: (!out.was_skipped(0)).then_some(p),
            virt: None,
        };
        dev.set_event(event, s)?;
        Self::first_error(&out)
    }

    /// Maps one event to a vLPI of vPE `vpe` (see [`GicV4::map_vlpis`]).
    ///
    /// # Errors
    /// As [`GicV4::map_vlpis`].
    pub fn map_vlpi(
        &self,
        its: &Its<R, P>,
        dev: &mut Device<P>,
        event: u32,
        vm: &Vm<P>,
        vpe: usize,
        c: VlpiConfig,
    ) -> Result<(), VpeError> {
        self.map_vlpis(its, dev, vm, &[(event, vpe, c)])
    }

    /// Unmaps a vLPI (Linux: `its_unmap_vlpi`): DISCARD and VSYNC; with `restore`, the host
    /// mapping the event had is put back (MAPTI and SYNC).
    ///
    /// # Errors
    /// [`VpeError::NotForwarded`], [`VpeError::WrongVm`], ITS errors.
    pub fn unmap_vlpi(
        &self,
        its: &Its<R, P>,
        dev: &mut Device<P>,
        event: u32,
        vm: &Vm<P>,
        restore: bool,
    ) -> Result<(), VpeError> {
        self.alive()?;
        let (s, v, i) = self.forwarded(vm, dev, event)?;
        let id = dev.id();
        let out = Self::run(
            its,
            1,
            |_| Command::Discard {
                device: id,
                event: EventId::new(event),
            },
            &[SyncTarget::Vpe(v.vpe)],
        )?;
        if out.was_skipped(0) {
            // The ITS did not DISCARD: the event is still forwarded.
            return Self::first_error(&out);
        }
        vm.vpe(i)?
            .vlpis
            .fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
        dev.set_event(event, EventState::default())?;
        if let (true, Some(p)) = (restore, s.phys) {
            Self::restore_phys(its, dev, event, p)?;
        }
        // A skipped VSYNC after a completed DISCARD is still reported.
        Self::first_error(&out)
    }

    /// Moves a vLPI to another vPE of the same VM (VMOVI with the new vPE's doorbell, then
    /// VSYNC of both).
    ///
    /// # Errors
    /// [`VpeError::NotForwarded`], [`VpeError::WrongVm`], [`VpeError::NoSuchVpe`], ITS errors.
    pub fn move_vlpi(
        &self,
        its: &Its<R, P>,
        dev: &mut Device<P>,
        event: u32,
        vm: &Vm<P>,
        to: usize,
    ) -> Result<(), VpeError> {
        self.alive()?;
        let (s, v, from) = self.forwarded(vm, dev, event)?;
        let new = vm.vpe(to)?;
        let enabled = vm.property(v.vintid.get())? & 1 != 0;
        let db = self.doorbell_field(vm, to, enabled, v.doorbell)?;
        let id = dev.id();
        let out = Self::run(
            its,
            1,
            |_| Command::Vmovi {
                device: id,
                event: EventId::new(event),
                vpe: new.id,
                d: true,
                db,
            },
            &[SyncTarget::Vpe(v.vpe), SyncTarget::Vpe(new.id)],
        )?;
        if out.was_skipped(0) {
            return Self::first_error(&out);
        }
        dev.set_event(
            event,
            EventState {
                phys: s.phys,
                virt: Some(VirtMapping { vpe: new.id, ..v }),
            },
        )?;
        vm.vpe(from)?
            .vlpis
            .fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
        new.vlpis
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        if db != IntId::NONE {
            new.had_doorbell
                .store(true, core::sync::atomic::Ordering::Relaxed);
        }
        Self::first_error(&out)
    }

    /// Updates a vLPI's priority and enable bit (Linux: `its_prop_update_vlpi`): writes the
    /// property byte; on GICv4.0, when the enable bit changes for a vLPI with a doorbell,
    /// VMOVI to the same vPE sets the ITE's doorbell (1023 while masked, because the ITS rings
    /// doorbells without looking at the vLPI's enable bit); with `inv`, INV. Then VSYNC.
    ///
    /// # Errors
    /// [`VpeError::NotForwarded`], [`VpeError::WrongVm`], ITS errors.
    pub fn update_vlpi(
        &self,
        its: &Its<R, P>,
        dev: &Device<P>,
        event: u32,
        vm: &Vm<P>,
        prop: VlpiProp,
    ) -> Result<(), VpeError> {
        self.alive()?;
        let VlpiProp {
            priority,
            enabled,
            inv,
        } = prop;
        let (_, v, i) = self.forwarded(vm, dev, event)?;
        let old = vm.property(v.vintid.get())?;
        let was = old & 1 != 0;
        vm.set_property(v.vintid.get(), priority, enabled)?;
        let id = dev.id();
        let mut cmds: heapless::Vec<Command, 2> = heapless::Vec::new();
        let mut db = IntId::NONE;
        if was != enabled && v.doorbell && self.version != ItsVersion::V4_1 {
            db = self.doorbell_field(vm, i, enabled, true)?;
            let _ = cmds.push(Command::Vmovi {
                device: id,
                event: EventId::new(event),
                vpe: v.vpe,
                d: true,
                db,
            });
        }
        if inv {
            let _ = cmds.push(Command::Inv {
                device: id,
                event: EventId::new(event),
            });
        }
        if cmds.is_empty() {
            return Ok(());
        }
        let out = Self::run(its, cmds.len(), |k| cmds[k], &[SyncTarget::Vpe(v.vpe)])?;
        if matches!(cmds.first(), Some(Command::Vmovi { .. })) {
            if out.was_skipped(0) {
                // The ITE keeps its old doorbell: keep the old enable bit with it, so the ITE
                // and the property agree and the same update can be made again.
                vm.set_property(v.vintid.get(), old, was)?;
            } else if db != IntId::NONE {
                // The ITE now carries the vPE's doorbell (the vLPI was enabled).
                vm.vpe(i)?
                    .had_doorbell
                    .store(true, core::sync::atomic::Ordering::Relaxed);
            }
        }
        Self::first_error(&out)
    }

    /// Makes the redistributor reload the configuration of every vLPI of vPE `i` (Linux:
    /// `its_invall_vpe`): GICv4.0 sends VINVALL + VSYNC to one ITS ("reaching the
    /// redistributors is enough"); GICv4.1 with DirectLPI writes GICR_INVALLR {V, vPEID} to
    /// `rd`, the vPE's redistributor, and waits for GICR_SYNCR.
    ///
    /// # Errors
    /// [`VpeError::NoSuchVpe`], ITS errors, [`VpeError::NeedRedistributor`].
    pub fn invall_vpe<D: RedistRegisters>(
        &self,
        vm: &Vm<P>,
        i: usize,
        rd: Option<&mut D>,
    ) -> Result<(), VpeError> {
        self.alive()?;
        let vpe = vm.vpe(i)?;
        if self.version == ItsVersion::V4_1 && self.redist.direct_lpi {
            let rd = rd.ok_or(VpeError::NeedRedistributor)?;
            rd.set_invallr(
                GicrInvallr::new()
                    .with_vpe_id(vpe.id.get())
                    .with_virtual_lpi(true),
            );
            let its = self.v4().next().ok_or(VpeError::NotV4("no ITS"))?;
            its_core::platform::poll_until(its.platform(), self.cfg.dirty_timeout, || {
                !rd.syncr().busy()
            })
            .map_err(|t| {
                VpeError::Its(its_cmdq::ItsError::RegisterTimeout {
                    what: "GICR_SYNCR.Busy",
                    waited_ns: t.waited_ns,
                })
            })?;
            return Ok(());
        }
        let its = self.v4().next().ok_or(VpeError::NotV4("no ITS"))?;
        let id = vpe.id;
        let out = Self::run(
            its,
            1,
            |_| Command::Vinvall { vpe: id },
            &[SyncTarget::Vpe(id)],
        )?;
        Self::first_error(&out)
    }

    /// GICv4.1: configures a virtual SGI of vPE `i` (Linux: `its_prop_update_vsgi`) with VSGI,
    /// then VSYNC.
    ///
    /// # Errors
    /// [`VpeError::NeedsV41`], ITS errors.
    pub fn update_vsgi(&self, vm: &Vm<P>, i: usize, c: VsgiConfig) -> Result<(), VpeError> {
        self.alive()?;
        let VsgiConfig {
            sgi,
            priority,
            group,
            enable,
            clear,
        } = c;
        if self.version != ItsVersion::V4_1 {
            return Err(VpeError::NeedsV41("VSGI"));
        }
        let vpe = vm.vpe(i)?.id;
        let its = self.v4().next().ok_or(VpeError::NotV4("no ITS"))?;
        let out = Self::run(
            its,
            1,
            |_| Command::Vsgi {
                vpe,
                sgi,
                priority,
                group,
                clear,
                enable,
            },
            &[SyncTarget::Vpe(vpe)],
        )?;
        Self::first_error(&out)
    }

    /// GICv4.1: invalidates vPE `i`'s default doorbell configuration (INVDB, then VSYNC).
    ///
    /// # Errors
    /// [`VpeError::NeedsV41`], ITS errors.
    pub fn invdb(&self, vm: &Vm<P>, i: usize) -> Result<(), VpeError> {
        self.alive()?;
        if self.version != ItsVersion::V4_1 {
            return Err(VpeError::NeedsV41("INVDB"));
        }
        let vpe = vm.vpe(i)?.id;
        let its = self.v4().next().ok_or(VpeError::NotV4("no ITS"))?;
        let out = Self::run(its, 1, |_| Command::Invdb { vpe }, &[SyncTarget::Vpe(vpe)])?;
        Self::first_error(&out)
    }
}
