// SPDX-License-Identifier: MIT OR Apache-2.0
//! The backend over the workspace's GICv4 driver (`vpe-sched` on `its-cmdq`).
//!
//! Each operation is one call of the driver: devices through [`Its::map_device`] and
//! [`Its::unmap_device`] (the backend owns the [`Device`] records), vLPIs through
//! [`GicV4::map_vlpi`], [`GicV4::unmap_vlpi`], [`GicV4::move_vlpi`], [`GicV4::update_vlpi`]
//! and [`GicV4::invall_vpe`], INT and CLEAR through [`Its::int_event`] and
//! [`Its::clear_event`] (which follow a forwarded event with a VSYNC). vCPU `i` is the VM's
//! vPE `i`. Every vLPI carries its vPE's doorbell while enabled, so an MSI for a vCPU that is
//! not running wakes the hypervisor.

use heapless::Vec;
use its_cmdq::{Device, Its, ItsError};
use its_core::ids::{DeviceId, VLpi};
use its_core::mmio::{GicrRegs, ItsRegisters};
use its_core::platform::Platform;
use safe_mmio::UniqueMmioPointer;
use vpe_sched::{GicV4, VlpiConfig, VlpiProp, Vm, VpeError};

use crate::backend::{Backend, LpiProp, PhysEvent};
use crate::config::VcpuId;

/// The backend over vpe-sched: one VM's vLPIs on one ITS, with room for `DEVICES` physical
/// devices (the vITS's DEVICES).
pub struct VpeSchedBackend<'a, 'g, R: ItsRegisters, P: Platform, const DEVICES: usize> {
    gic: &'a GicV4<'g, R, P>,
    its: &'a Its<R, P>,
    vm: &'a Vm<P>,
    devices: Vec<Device<P>, DEVICES>,
}

impl<R: ItsRegisters, P: Platform, const DEVICES: usize> core::fmt::Debug
    for VpeSchedBackend<'_, '_, R, P, DEVICES>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VpeSchedBackend")
            .field("vm", self.vm)
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

impl<'a, 'g, R: ItsRegisters, P: Platform, const DEVICES: usize>
    VpeSchedBackend<'a, 'g, R, P, DEVICES>
{
    /// The backend for `vm` (created with one vPE per vCPU, in vCPU order, and the vITS's
    /// vINTID bits), mapping devices on `its`, one of `gic`'s ITSs.
    pub fn new(gic: &'a GicV4<'g, R, P>, its: &'a Its<R, P>, vm: &'a Vm<P>) -> Self {
        Self {
            gic,
            its,
            vm,
            devices: Vec::new(),
        }
    }

    /// The physical devices mapped.
    pub fn devices(&self) -> &[Device<P>] {
        &self.devices
    }

    fn device(&mut self, id: DeviceId) -> Result<&mut Device<P>, VpeError> {
        self.devices
            .iter_mut()
            .find(|d| d.id() == id)
            .ok_or(VpeError::Config("device not mapped by the vITS backend"))
    }
}

impl<R: ItsRegisters, P: Platform + Clone, const DEVICES: usize> Backend
    for VpeSchedBackend<'_, '_, R, P, DEVICES>
{
    type Error = VpeError;

    fn map_device(&mut self, device: DeviceId, event_bits: u8) -> Result<(), VpeError> {
        if self.devices.iter().any(|d| d.id() == device) {
            return Err(ItsError::DeviceMapped(device.get()).into());
        }
        if self.devices.is_full() {
            return Err(VpeError::Config("no room for another device"));
        }
        let events = 1u32
            .checked_shl(event_bits.into())
            .ok_or(VpeError::Config("too many events"))?;
        let dev = self.its.map_device(device, events)?;
        // Room was checked above.
        let _ = self.devices.push(dev);
        Ok(())
    }

    fn unmap_device(&mut self, device: DeviceId) -> Result<(), VpeError> {
        let i = self
            .devices
            .iter()
            .position(|d| d.id() == device)
            .ok_or(VpeError::Config("device not mapped by the vITS backend"))?;
        // On failure the device stays mapped, and its record stays here.
        self.its.unmap_device(&mut self.devices[i])?;
        self.devices.swap_remove(i);
        Ok(())
    }

    fn map_vlpi(
        &mut self,
        ev: PhysEvent,
        vcpu: VcpuId,
        vintid: VLpi,
        prop: LpiProp,
    ) -> Result<(), VpeError> {
        let (gic, its, vm) = (self.gic, self.its, self.vm);
        let dev = self.device(ev.device)?;
        let c = VlpiConfig {
            vintid,
            priority: prop.priority(),
            enabled: prop.enabled(),
            doorbell: true,
        };
        gic.map_vlpi(its, dev, ev.event.get(), vm, vcpu.index(), c)
    }

    fn unmap_vlpi(&mut self, ev: PhysEvent) -> Result<(), VpeError> {
        let (gic, its, vm) = (self.gic, self.its, self.vm);
        let dev = self.device(ev.device)?;
        gic.unmap_vlpi(its, dev, ev.event.get(), vm, false)
    }

    fn move_vlpi(&mut self, ev: PhysEvent, vcpu: VcpuId) -> Result<(), VpeError> {
        let (gic, its, vm) = (self.gic, self.its, self.vm);
        let dev = self.device(ev.device)?;
        gic.move_vlpi(its, dev, ev.event.get(), vm, vcpu.index())
    }

    fn update_vlpi(&mut self, ev: PhysEvent, prop: LpiProp, inv: bool) -> Result<(), VpeError> {
        let (gic, its, vm) = (self.gic, self.its, self.vm);
        let dev = self.device(ev.device)?;
        let p = VlpiProp {
            priority: prop.priority(),
            enabled: prop.enabled(),
            inv,
        };
        gic.update_vlpi(its, dev, ev.event.get(), vm, p)
    }

    fn invall(&mut self, vcpu: VcpuId) -> Result<(), VpeError> {
        // GICv4.0 sends VINVALL through an ITS and needs no redistributor. GICv4.1 with
        // DirectLPI would (GICR_INVALLR): not handled here, it fails with
        // VpeError::NeedRedistributor.
        self.gic
            .invall_vpe::<UniqueMmioPointer<'_, GicrRegs>>(self.vm, vcpu.index(), None)
    }

    fn int(&mut self, ev: PhysEvent) -> Result<(), VpeError> {
        let its = self.its;
        let dev = self.device(ev.device)?;
        Ok(its.int_event(dev, ev.event.get())?)
    }

    fn clear(&mut self, ev: PhysEvent) -> Result<(), VpeError> {
        let its = self.its;
        let dev = self.device(ev.device)?;
        Ok(its.clear_event(dev, ev.event.get())?)
    }
}
