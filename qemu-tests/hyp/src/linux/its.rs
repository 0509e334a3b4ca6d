// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guest's ITS: the crate `vits` behind the trapped ITS control frame, and the physical
//! GIC under it.
//!
//! The guest sees QEMU's ITS where QEMU's is (its device tree keeps the ITS node and the PCIe
//! `msi-map`), GICD_TYPER.LPIS = 1 and GICR_TYPER.PLPIS = 1 (`vgic`), and programs it with its
//! own driver. Stage 2 leaves the 64 KiB control frame unmapped: every access traps and goes
//! to a [`vits::Vits`]. The translation frame (GITS_TRANSLATER) is mapped through, so a
//! device's MSI reaches the physical ITS with no exit; the PCIe functions on bus 0 are
//! assigned to the guest with their requester IDs as DeviceIDs (QEMU's `msi-map` is the
//! identity), so the guest's MAPD names the physical device.
//!
//! Two ways to deliver those MSIs, one [`vits::Backend`] each:
//!
//! | [`Msi`] | Backend | An MSI of the disk |
//! |---|---|---|
//! | [`Msi::Direct`] | [`vits::VpeSchedBackend`] over `vpe-sched` ([`V4Host`]) | a vLPI, delivered by the GIC into the running vCPU (GICv4): no exit while its vPE is resident; the vPE's doorbell when it is not |
//! | [`Msi::Soft`] | [`vits::SoftBackend`] over `its-cmdq` ([`SoftHost`]) | a physical LPI taken at EL2 (an IRQ exit), then listed for the guest through `fwd-irq`'s list registers |
//!
//! Everything physical lives as long as the hypervisor (it is leaked once, at VM creation):
//! the GIC brought up by [`crate::gic`], the doorbells (through a proxy device: QEMU has no
//! DirectLPI), the GICv4 layer, the VM (one vPE per vCPU, vPE `i` first on CPU `i`).

#![allow(
    clippy::result_large_err,
    reason = "the driver errors carry the last ITS commands by value: no allocation"
)]

use alloc::boxed::Box;

use common::gic_platform::HwPlatform;
use doorbell::{DoorbellConfig, Doorbells};
use heapless::Vec as HVec;
use its_core::caps::RedistCaps;
use its_core::ids::DeviceId;
use its_core::ids::VLpi;
use vits::{
    AccessError, AssignedDevice, Backend, DevicePool, GuestMemory, GuestMemoryError,
    LpiConfigTable, LpiProp, PhysEvent, SoftBackend, SoftRoutes, VcpuId, Vits, VitsConfig,
    VpeSchedBackend,
};
use vpe_sched::{GicV4, V4Config, VmConfig};

use super::LinuxError;
use crate::gic::Gic;
use crate::gic_hw::ItsFrame;
use crate::v4::{HwDoorbells, HwGicV4, HwVm};

/// Devices the guest's ITS holds (assigned ones and made-up ones).
pub const DEVICES: usize = 8;
/// Events the guest may map in all.
pub const ITES: usize = 64;
/// Collection IDs the guest sees (CIDbits = 2: one collection per vCPU, as Linux maps them).
pub const COLLECTIONS: usize = 8;
/// The VM's vLPI INTID bits: QEMU's GICD_TYPER.IDbits + 1 (vINTIDs 8192 to 65535), also what
/// the guest's GICD_TYPER says.
pub const VINTID_BITS: u8 = 16;
/// Doorbells reserved (one per vPE).
pub const DOORBELLS: u32 = 16;
/// The doorbells' proxy device (QEMU has no DirectLPI): the last DeviceID, as Linux does.
pub const PROXY_DEVICE: u32 = 0xffff;
/// Physical DeviceIDs for devices the guest makes up (Linux makes none; its ITS self-tests
/// would).
pub const POOL: DevicePool = DevicePool {
    first: DeviceId::new(0xff00),
    count: 8,
};
/// Host LPIs the software backend can hand out (one per mapped guest event).
pub const SOFT_LPIS: usize = ITES;

/// How device MSIs reach the guest.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Msi {
    /// No ITS for the guest: PCIe falls back to INTx (forwarded SPIs).
    Intx,
    /// The guest's ITS over GICv4: vLPIs.
    Direct,
    /// The guest's ITS over physical LPIs injected through list registers.
    Soft,
}

/// The guest's RAM as `vits` reads it (its command queue and LPI configuration table).
pub struct GuestRam;

impl GuestMemory for GuestRam {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        if crate::rawmem::read_from_guest(gpa, buf) {
            Ok(())
        } else {
            Err(GuestMemoryError)
        }
    }
}

/// The GICv4 side of [`Msi::Direct`]: everything `'static`.
#[derive(Clone, Copy)]
pub struct V4Host {
    /// The physical GIC (ITS, LPIs).
    pub gic: &'static Gic,
    /// The doorbells.
    pub dbs: &'static HwDoorbells<'static>,
    /// The GICv4 layer.
    pub g4: &'static HwGicV4<'static>,
    /// The VM: vPE `i` is vCPU `i`.
    pub vm: &'static HwVm,
}

/// The physical side of [`Msi::Soft`].
#[derive(Clone, Copy)]
pub struct SoftHost {
    /// The physical GIC (ITS, LPIs).
    pub gic: &'static Gic,
    /// Host LPI -> (vCPU, vINTID), read by the IRQ path.
    pub routes: &'static SoftRoutes<SOFT_LPIS>,
}

/// The physical side of the guest's ITS.
#[derive(Clone, Copy)]
pub enum Host {
    /// No ITS.
    None,
    /// GICv4.
    Direct(V4Host),
    /// Software injection.
    Soft(SoftHost),
}

/// Backend operations the guest's commands became, by kind (each counted once it succeeded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// `map_device`.
    pub map_device: u64,
    /// `unmap_device`.
    pub unmap_device: u64,
    /// `map_vlpi` (VMAPTI, or MAPTI of a host LPI).
    pub map: u64,
    /// `unmap_vlpi`.
    pub unmap: u64,
    /// `move_vlpi` (the guest's MOVI: VMOVI, or MOVI of the host LPI).
    pub moves: u64,
    /// `update_vlpi`.
    pub update: u64,
    /// `invall`.
    pub invall: u64,
    /// `int`.
    pub int: u64,
    /// `clear`.
    pub clear: u64,
}

/// A backend whose operations are counted ([`OpCounts`]).
pub struct Counted<B> {
    inner: B,
    ops: OpCounts,
}

impl<B> Counted<B> {
    fn new(inner: B) -> Self {
        Self {
            inner,
            ops: OpCounts::default(),
        }
    }
}

/// Counts `$field` when `$e` succeeds.
macro_rules! counted {
    ($self:ident . $field:ident, $e:expr) => {{
        let r = $e;
        if r.is_ok() {
            $self.ops.$field += 1;
        }
        r
    }};
}

impl<B: Backend> Backend for Counted<B> {
    type Error = B::Error;

    fn map_device(&mut self, device: DeviceId, event_bits: u8) -> Result<(), B::Error> {
        counted!(self.map_device, self.inner.map_device(device, event_bits))
    }
    fn unmap_device(&mut self, device: DeviceId) -> Result<(), B::Error> {
        counted!(self.unmap_device, self.inner.unmap_device(device))
    }
    fn map_vlpi(
        &mut self,
        ev: PhysEvent,
        vcpu: VcpuId,
        vintid: VLpi,
        prop: LpiProp,
    ) -> Result<(), B::Error> {
        counted!(self.map, self.inner.map_vlpi(ev, vcpu, vintid, prop))
    }
    fn unmap_vlpi(&mut self, ev: PhysEvent) -> Result<(), B::Error> {
        counted!(self.unmap, self.inner.unmap_vlpi(ev))
    }
    fn move_vlpi(&mut self, ev: PhysEvent, vcpu: VcpuId) -> Result<(), B::Error> {
        counted!(self.moves, self.inner.move_vlpi(ev, vcpu))
    }
    fn update_vlpi(&mut self, ev: PhysEvent, prop: LpiProp, inv: bool) -> Result<(), B::Error> {
        counted!(self.update, self.inner.update_vlpi(ev, prop, inv))
    }
    fn invall(&mut self, vcpu: VcpuId) -> Result<(), B::Error> {
        counted!(self.invall, self.inner.invall(vcpu))
    }
    fn int(&mut self, ev: PhysEvent) -> Result<(), B::Error> {
        counted!(self.int, self.inner.int(ev))
    }
    fn clear(&mut self, ev: PhysEvent) -> Result<(), B::Error> {
        counted!(self.clear, self.inner.clear(ev))
    }
}

type DirectBackend = Counted<VpeSchedBackend<'static, 'static, ItsFrame, HwPlatform, DEVICES>>;
type SoftB = Counted<SoftBackend<'static, ItsFrame, HwPlatform, DEVICES, SOFT_LPIS>>;

/// The guest's ITS, over one backend or the other.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per VM, in the VM's static"
)]
pub enum GuestIts {
    /// Over GICv4.
    Direct(Vits<DirectBackend, DEVICES, ITES, COLLECTIONS>),
    /// Over software injection.
    Soft(Vits<SoftB, DEVICES, ITES, COLLECTIONS>),
}

// SAFETY: a `GuestIts` is only used under the VM's lock (`Vm::its`); what it holds is the
// `vits` records and `'static` references to the drivers, whose shared calls are made for
// any CPU (their own locks serialise them), and the physical devices' memory (ITTs), which
// the driver owns and which no CPU touches outside those calls.
unsafe impl Send for GuestIts {}

macro_rules! each {
    ($self:expr, $its:ident => $e:expr) => {
        match $self {
            GuestIts::Direct($its) => $e,
            GuestIts::Soft($its) => $e,
        }
    };
}

impl GuestIts {
    /// A trapped read of the control frame.
    pub fn read(&mut self, offset: u64, size: usize) -> Result<u64, AccessError> {
        each!(self, its => its.read(&GuestRam, offset, size))
    }

    /// A trapped write of the control frame.
    pub fn write(&mut self, offset: u64, size: usize, value: u64) -> Result<(), AccessError> {
        each!(self, its => its.write(&GuestRam, offset, size, value))
    }

    /// The guest's LPI configuration table (from GICR_PROPBASER once EnableLPIs is set).
    pub fn set_lpi_config(&mut self, table: Option<LpiConfigTable>) {
        // A table it cannot read stalls the queue when a command needs it; nothing to do here.
        each!(self, its => {
            let _ = its.set_lpi_config(&GuestRam, table);
        });
    }

    /// What the vITS did.
    pub fn stats(&self) -> vits::Stats {
        each!(self, its => its.stats())
    }

    /// The backend operations, by kind.
    pub fn ops(&self) -> OpCounts {
        each!(self, its => its.backend().ops)
    }

    /// Whether the guest's command queue is stalled.
    pub fn is_stalled(&self) -> bool {
        each!(self, its => its.is_stalled())
    }

    /// The last error, printed (for the report).
    pub fn last_error(&self) -> Option<alloc::string::String> {
        use alloc::format;
        each!(self, its => its.errors().last().map(|e| format!("{e:?}")))
    }

    /// The events the guest mapped: (guest DeviceID, EventID, vINTID, vCPU if live).
    pub fn events(&self) -> HVec<(u32, u32, u32, Option<u16>), ITES> {
        let mut out = HVec::new();
        each!(self, its => {
            for e in its.events() {
                let _ = out.push((
                    e.guest_device.get(),
                    e.phys.event.get(),
                    e.vintid.get(),
                    e.live.map(|(v, _)| v.get()),
                ));
            }
        });
        out
    }
}

/// The PCIe functions on bus 0 that are not bridges: each assigned to the guest with its
/// requester ID as DeviceID, guest and physical.
pub fn assigned_devices() -> HVec<AssignedDevice, DEVICES> {
    let mut out = HVec::new();
    for bdf in crate::pci::endpoints() {
        if out
            .push(AssignedDevice::identity(DeviceId::new(bdf.requester_id())))
            .is_err()
        {
            break;
        }
    }
    out
}

/// Brings up the physical GIC (LPIs, ITS) for the guest's ITS, leaked for the hypervisor's
/// life.
fn bring_up_gic() -> Result<&'static Gic, LinuxError> {
    let handle = Gic::bring_up().map_err(|e| LinuxError::Its(alloc::format!("{e}")))?;
    let handle: &'static crate::gic::GicHandle = Box::leak(Box::new(handle));
    Ok(handle)
}

/// Brings up the physical side of [`Msi::Direct`] for `vcpus` vCPUs and the guest's ITS over
/// it.
pub fn direct(vcpus: usize) -> Result<(Host, GuestIts), LinuxError> {
    let gic = bring_up_gic()?;
    let err =
        |what: &str, e: &dyn core::fmt::Display| LinuxError::Its(alloc::format!("{what}: {e}"));
    let cfg = DoorbellConfig::proxy(DeviceId::new(PROXY_DEVICE), DOORBELLS);
    let dbs = Doorbells::new(gic.its(), gic.lpis(), cfg).map_err(|e| err("doorbells", &e))?;
    let dbs: &'static HwDoorbells<'static> = Box::leak(Box::new(dbs));
    let redist = gic.redists[0].map_or(RedistCaps::from_typer(Default::default()), |r| {
        RedistCaps::from_typer(r.typer)
    });
    let g4 = GicV4::new(
        core::slice::from_ref(gic.its()),
        gic.lpis(),
        dbs,
        redist,
        V4Config::default(),
    )
    .map_err(|e| err("GICv4 layer", &e))?;
    let g4: &'static HwGicV4<'static> = Box::leak(Box::new(g4));
    for cpu in 0..gic.cpus {
        match gic.with_redist(cpu, |rd| g4.init_redistributor(rd)) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(err("init_redistributor", &e)),
            None => {
                return Err(LinuxError::Its(alloc::format!(
                    "no redistributor for cpu{cpu}"
                )));
            }
        }
    }
    let affinities: HVec<usize, { common::platform::MAX_CPUS }> = (0..vcpus).collect();
    let vm = g4
        .create_vm(VmConfig {
            vintid_bits: VINTID_BITS,
            vpes: &affinities,
        })
        .map_err(|e| err("create_vm", &e))?;
    let vm: &'static HwVm = Box::leak(Box::new(vm));
    let host = V4Host { gic, dbs, g4, vm };
    let assigned = assigned_devices();
    let cfg = VitsConfig::new(vcpus as u32, VINTID_BITS, &assigned, POOL);
    let its = Vits::new(cfg, Counted::new(VpeSchedBackend::new(g4, gic.its(), vm)))
        .map_err(|e| err("vits", &e))?;
    Ok((Host::Direct(host), GuestIts::Direct(its)))
}

/// Brings up the physical side of [`Msi::Soft`] for `vcpus` vCPUs and the guest's ITS over
/// it.
pub fn soft(vcpus: usize) -> Result<(Host, GuestIts), LinuxError> {
    let gic = bring_up_gic()?;
    let routes: &'static SoftRoutes<SOFT_LPIS> = Box::leak(Box::new(SoftRoutes::new()));
    let assigned = assigned_devices();
    let cfg = VitsConfig::new(vcpus as u32, VINTID_BITS, &assigned, POOL);
    let backend = SoftBackend::new(gic.its(), gic.lpis(), routes)
        .map_err(|e| LinuxError::Its(alloc::format!("soft backend: {e}")))?;
    let its = Vits::new(cfg, Counted::new(backend))
        .map_err(|e| LinuxError::Its(alloc::format!("vits: {e}")))?;
    Ok((Host::Soft(SoftHost { gic, routes }), GuestIts::Soft(its)))
}

/// What the guest's ITS and the physical ITS under it did, for the run's report.
#[derive(Clone, Debug)]
pub struct ItsReport {
    /// The vITS's counters (commands the guest issued, backend operations, errors).
    pub vits: vits::Stats,
    /// Its backend operations by kind.
    pub ops: OpCounts,
    /// Whether the guest's queue was left stalled.
    pub stalled: bool,
    /// The vITS's last error, if any.
    pub last_error: Option<alloc::string::String>,
    /// The guest's events at the end: (guest DeviceID, EventID, vINTID, vCPU if live).
    pub events: HVec<(u32, u32, u32, Option<u16>), ITES>,
    /// The physical command queue: every command the hypervisor issued, bring-up included.
    pub queue: its_cmdq::QueueStats,
    /// Doorbells handled ([`Msi::Direct`]).
    pub doorbells: Option<doorbell::DoorbellStats>,
    /// Host LPIs routed at the end ([`Msi::Soft`]).
    pub routed: Option<usize>,
}

/// The physical ITS commands the hypervisor issued so far and the commands the guest issued
/// to its ITS, if it has one.
pub fn command_counts(vm: &super::Vm) -> Option<(u64, u64)> {
    let gic = match vm.host {
        Host::None => return None,
        Host::Direct(h) => h.gic,
        Host::Soft(h) => h.gic,
    };
    let guest = vm.its.lock().as_ref()?.stats().commands;
    Some((gic.its().queue().stats().commands, guest))
}

/// The report of `vm`'s ITS, if it has one.
pub fn report(vm: &super::Vm) -> Option<ItsReport> {
    let guard = vm.its.lock();
    let its = guard.as_ref()?;
    let (gic, doorbells, routed) = match vm.host {
        Host::None => return None,
        Host::Direct(h) => (h.gic, Some(h.dbs.stats()), None),
        Host::Soft(h) => (h.gic, None, Some(h.routes.routed())),
    };
    Some(ItsReport {
        vits: its.stats(),
        ops: its.ops(),
        stalled: its.is_stalled(),
        last_error: its.last_error(),
        events: its.events(),
        queue: gic.its().queue().stats(),
        doorbells,
        routed,
    })
}
