// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hypervisor's side: the drivers in statics, brought up once; a guest whose vCPU
//! structs hold their doorbell waiters; the vCPU load and block paths; the EL2 IRQ hook;
//! teardown and shutdown, all through shared references.

use core::time::Duration;

use doorbell::{DoorbellConfig, DoorbellError, Doorbells, Waiter};
use its_cmdq::{Device, Its, ItsConfig, ItsError, Lpis, PendingTable, RedistInfo};
use its_core::addr::PhysAddr;
use its_core::caps::{DistCaps, RedistCaps};
use its_core::ids::{DeviceId, VLpi, VpeId};
use its_core::mmio::RedistRegisters;
use its_core::regs::GicdTyper;
use its_model::{GicModel, ItsHandle, TrackedDma};
use spin::{Mutex, Once};
use vpe_sched::{GicV4, V4Config, VlpiConfig, Vm, VmConfig, VpeError};

use crate::platform::ArenaDma;

/// The drivers' platform: the arena, wrapped so the host model can read it (on a machine,
/// `ArenaDma` itself).
pub type Plat = TrackedDma<ArenaDma>;
/// The ITS registers (on a machine, `its_core::mmio`'s MMIO block at GITS_BASE).
pub type Regs = ItsHandle;

/// Physical CPUs.
pub const CPUS: usize = 2;
/// The DeviceID of the doorbells' proxy device (QEMU has no DirectLPI).
const PROXY: DeviceId = DeviceId::new(0xffff);
const TIMEOUT: Duration = Duration::from_millis(10);

/// The GIC: on a machine, its MMIO frames; here, the host model.
static GIC: Once<GicModel> = Once::new();
static LPIS: Once<Lpis<Plat>> = Once::new();
static ITS: Once<[Its<Regs, Plat>; 1]> = Once::new();
static DOORBELLS: Once<Doorbells<'static, Regs, Plat>> = Once::new();
static GICV4: Once<GicV4<'static, Regs, Plat>> = Once::new();
static PENDING: Mutex<[Option<PendingTable<Plat>>; CPUS]> = Mutex::new([None, None]);

/// Why a hypervisor call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The ITS driver.
    Its(ItsError),
    /// The doorbells.
    Doorbell(DoorbellError),
    /// The GICv4 layer.
    Vpe(VpeError),
    /// Bring-up has not run.
    NotUp,
}

impl From<ItsError> for Error {
    fn from(e: ItsError) -> Self {
        Self::Its(e)
    }
}

impl From<DoorbellError> for Error {
    fn from(e: DoorbellError) -> Self {
        Self::Doorbell(e)
    }
}

impl From<VpeError> for Error {
    fn from(e: VpeError) -> Self {
        Self::Vpe(e)
    }
}

/// The GIC.
pub fn gic() -> Result<&'static GicModel, Error> {
    GIC.get().ok_or(Error::NotUp)
}

/// The ITS.
pub fn its() -> Result<&'static Its<Regs, Plat>, Error> {
    ITS.get().map(|i| &i[0]).ok_or(Error::NotUp)
}

/// The doorbells.
pub fn doorbells() -> Result<&'static Doorbells<'static, Regs, Plat>, Error> {
    DOORBELLS.get().ok_or(Error::NotUp)
}

/// The GICv4 layer.
pub fn gicv4() -> Result<&'static GicV4<'static, Regs, Plat>, Error> {
    GICV4.get().ok_or(Error::NotUp)
}

/// Brings the GIC up once, on the boot CPU: LPIs on every redistributor, the ITS, the
/// doorbells, the GICv4 layer, each into its static.
///
/// # Errors
/// The first driver error.
pub fn bring_up(platform: Plat, board: GicModel) -> Result<(), Error> {
    let gic = GIC.call_once(|| board);
    let cfg = gic.config();
    // On a machine: GICD_TYPER, read from the distributor.
    let typer = GicdTyper::new()
        .with_lpis(true)
        .with_dvis(true)
        .with_id_bits(cfg.dist_id_bits - 1);
    let dist = DistCaps::from_typer(typer, None);
    let lpis = LPIS.try_call_once(|| Lpis::new(&dist, platform.clone()))?;
    let mut pending = PENDING.lock();
    for (cpu, slot) in pending.iter_mut().enumerate() {
        *slot = Some(lpis.init_redistributor(&mut gic.redist(cpu), TIMEOUT)?);
    }
    let redists: [RedistInfo; CPUS] = core::array::from_fn(|cpu| RedistInfo {
        rd_base: PhysAddr::new(cfg.rd_base(cpu)),
        typer: gic.redist(cpu).typer(),
    });
    let its = ITS.try_call_once(|| {
        Its::new(gic.its(0), platform, &redists, ItsConfig::new(dist)).map(|i| [i])
    })?;
    let dbs = DOORBELLS
        .try_call_once(|| Doorbells::new(&its[0], lpis, DoorbellConfig::proxy(PROXY, 64)))?;
    let caps = RedistCaps::from_typer(redists[0].typer);
    let g = GICV4.try_call_once(|| GicV4::new(its, lpis, dbs, caps, V4Config::default()))?;
    for cpu in 0..CPUS {
        g.init_redistributor(&mut gic.redist(cpu))?;
    }
    Ok(())
}

/// A vCPU as the hypervisor keeps it. Its doorbell waiter lives here, attached once the VM
/// exists.
#[derive(Debug)]
pub struct Vcpu {
    /// The physical CPU it runs on.
    pub cpu: usize,
    /// Woken by its vPE's doorbell.
    pub waiter: Waiter,
    /// Whether its vPE is resident.
    pub resident: bool,
}

/// A guest: its VM, one vCPU per physical CPU, and an assigned device whose event 0 is a
/// vLPI of vCPU 1.
#[derive(Debug)]
pub struct Guest {
    /// The VM (a few words: the vPE records live in the arena).
    pub vm: Vm<Plat>,
    /// The vCPUs.
    pub vcpus: [Vcpu; CPUS],
    /// The assigned device.
    pub dev: Device<Plat>,
}

/// Creates the guest, attaches its vCPUs' waiters, and maps `device`'s event 0 to vINTID
/// `vintid` of vCPU 1.
///
/// # Errors
/// The first driver error.
pub fn create_guest(device: DeviceId, vintid: u32) -> Result<Guest, Error> {
    let (its, dbs, g) = (its()?, doorbells()?, gicv4()?);
    let vm = g.create_vm(VmConfig {
        vintid_bits: 16,
        vpes: &[0, 1],
    })?;
    let vcpus = core::array::from_fn(|cpu| Vcpu {
        cpu,
        waiter: Waiter::new(),
        resident: false,
    });
    for (i, v) in vcpus.iter().enumerate() {
        dbs.attach(&v.waiter, vm.vpe(i)?.doorbell())?;
    }
    let mut dev = its.map_device(device, 4)?;
    let vlpi = VlpiConfig {
        vintid: VLpi::new(vintid).map_err(VpeError::from)?,
        priority: 0xa0,
        enabled: true,
        doorbell: true,
    };
    g.map_vlpi(its, &mut dev, 0, &vm, 1, vlpi)?;
    Ok(Guest { vm, vcpus, dev })
}

/// vCPU load, on its CPU: its vPE resident there.
///
/// # Errors
/// The GICv4 layer's.
pub fn vcpu_load(guest: &mut Guest, i: usize) -> Result<(), Error> {
    let g = gicv4()?;
    let v = &mut guest.vcpus[i];
    let mut rd = gic()?.redist(v.cpu);
    g.make_resident(&guest.vm, i, v.cpu, &mut rd)?;
    g.commit(&mut rd)?;
    v.resident = true;
    Ok(())
}

/// The guest's WFI: arm the waiter, then the vPE away with its doorbell enabled.
///
/// # Errors
/// The doorbells' or the GICv4 layer's.
pub fn vcpu_block(guest: &mut Guest, i: usize) -> Result<(), Error> {
    let v = &mut guest.vcpus[i];
    doorbells()?.arm(&v.waiter)?;
    gicv4()?.make_non_resident(&guest.vm, i, &mut gic()?.redist(v.cpu), true)?;
    v.resident = false;
    Ok(())
}

/// The EL2 IRQ hook, for every LPI a CPU takes: a doorbell wakes its vCPU's waiter. Takes no
/// lock, so it may interrupt any driver call.
pub fn irq(intid: u32) -> Option<VpeId> {
    doorbells().ok()?.handle(intid)
}

/// Whether vCPU `i`'s doorbell rang since it blocked.
pub fn vcpu_woken(guest: &Guest, i: usize) -> bool {
    doorbells().is_ok_and(|d| d.is_woken(&guest.vcpus[i].waiter))
}

/// The woken vCPU resumes, on its own CPU: the doorbell noted, the vPE resident again.
///
/// # Errors
/// As [`vcpu_load`].
pub fn vcpu_wake(guest: &mut Guest, i: usize) -> Result<(), Error> {
    gicv4()?.doorbell_rang(&guest.vm, i);
    vcpu_load(guest, i)
}

/// Tears the guest down: vPEs away, the vLPI and the device unmapped, the VM destroyed. The
/// `Guest` stays with the caller, empty.
///
/// # Errors
/// The first driver error.
pub fn destroy_guest(guest: &mut Guest) -> Result<(), Error> {
    let (its, g, gic) = (its()?, gicv4()?, gic()?);
    for (i, v) in guest.vcpus.iter_mut().enumerate() {
        if v.resident {
            g.make_non_resident(&guest.vm, i, &mut gic.redist(v.cpu), false)?;
            v.resident = false;
        }
    }
    g.unmap_vlpi(its, &mut guest.dev, 0, &guest.vm, false)?;
    its.unmap_device(&mut guest.dev)?;
    g.destroy_vm(&mut guest.vm)?;
    for v in &guest.vcpus {
        v.waiter.detach();
    }
    Ok(())
}

/// Shuts everything down in order, through the statics: the GICv4 layer, the doorbells, the
/// ITS, then LPIs on every redistributor.
///
/// # Errors
/// The first driver error (what is not shut down stays usable).
pub fn shutdown() -> Result<(), Error> {
    gicv4()?.shutdown()?;
    doorbells()?.shutdown()?;
    its()?.shutdown(TIMEOUT)?;
    let (lpis, gic) = (LPIS.get().ok_or(Error::NotUp)?, gic()?);
    let mut pending = PENDING.lock();
    for (cpu, slot) in pending.iter_mut().enumerate() {
        if let Some(table) = slot.take()
            && let Err((table, e)) =
                lpis.disable_redistributor(&mut gic.redist(cpu), table, TIMEOUT)
        {
            *slot = Some(table);
            return Err(e.into());
        }
    }
    Ok(())
}
