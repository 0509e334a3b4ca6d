// SPDX-License-Identifier: MIT OR Apache-2.0
//! The backend without GICv4: each guest event is a physical LPI the hypervisor takes and
//! injects itself.
//!
//! Where the GIC cannot inject vLPIs (a GICv3, or GICv4 turned off for comparison), the
//! guest's ITS commands can still be honoured: the guest's event is mapped in the physical
//! ITS to a *host* LPI on the collection of the CPU that runs the event's vCPU (vCPU `i` on
//! CPU `i`), and [`SoftRoutes`] says, for each host LPI, which vCPU and vINTID it stands
//! for. The MSI arrives at EL2 as that host LPI (an exit if the guest was running); the
//! hypervisor looks the route up ([`SoftRoutes::route`], lock-free: callable from its
//! interrupt path) and lists the vINTID for the guest in a list register.
//!
//! | Operation | Physical ITS |
//! |---|---|
//! | `map_device` / `unmap_device` | MAPD V = 1 / DISCARDs, MAPD V = 0 |
//! | `map_vlpi` | a host LPI of the backend's block, its priority [`HOST_PRIORITY`] and the guest's enable bit written, route published, MAPTI to vCPU `i`'s CPU, SYNC, INV, SYNC |
//! | `unmap_vlpi` | DISCARD, SYNC; the host LPI disabled, the route withdrawn |
//! | `move_vlpi` | MOVI to the new CPU (its pending state moves with it), SYNCs; the route's vCPU changed |
//! | `update_vlpi` | the guest's enable bit written to the host LPI, the route's priority changed; with `inv`, INV + SYNC |
//! | `invall` | INVALL + SYNC of the vCPU's CPU's collection |
//! | `int` / `clear` | INT / CLEAR of the host LPI (+ SYNC): the interrupt comes (or stays away) the way a device's would |
//!
//! The guest's priority is not the host LPI's: it goes into the list register, from the
//! route. The guest's enable bit is the host LPI's, so a masked vector raises nothing at EL2
//! and stays pending in the host's pending table until unmasked (the INV after the change
//! makes the redistributor look again).
//!
//! # Limits
//! - A CLEAR reaches the physical LPI only: an interrupt already taken at EL2 and handed to
//!   the vCPU stays pending there (Linux issues CLEAR only from `irq_set_irqchip_state`).
//! - A host LPI targets CPU `i`'s collection for vCPU `i`: a hypervisor that runs vCPU `i` on
//!   another CPU takes its host LPIs there (and must hand them over to where the vCPU is);
//!   this backend has no call to retarget them.

#![allow(
    clippy::result_large_err,
    clippy::large_enum_variant,
    reason = "ItsError carries the ITS layer's command trace by value"
)]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use heapless::Vec;
use its_cmdq::{Device, Its, ItsError, LpiRange, Lpis};
use its_core::ids::{DeviceId, Lpi, VLpi};
use its_core::mmio::ItsRegisters;
use its_core::platform::Platform;

use crate::backend::{Backend, LpiProp, PhysEvent};
use crate::config::VcpuId;

/// The priority of every host LPI of this backend (the guest's goes into the list register).
pub const HOST_PRIORITY: u8 = 0xa0;

/// What a host LPI stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The vCPU whose list registers take it.
    pub vcpu: VcpuId,
    /// The vINTID (the guest's LPI).
    pub vintid: VLpi,
    /// The guest's priority for it (its configuration byte, bits \[7:2\]).
    pub priority: u8,
    /// The guest's enable bit.
    pub enabled: bool,
}

/// Bits of a route word: vINTID in \[31:0\], vCPU in \[47:32\], priority in \[55:48\], enable
/// in 56, valid in 57.
const VALID: u64 = 1 << 57;
const ENABLED: u64 = 1 << 56;

impl Route {
    fn encode(&self) -> u64 {
        u64::from(self.vintid.get())
            | u64::from(self.vcpu.get()) << 32
            | u64::from(self.priority) << 48
            | if self.enabled { ENABLED } else { 0 }
            | VALID
    }

    fn decode(w: u64) -> Option<Self> {
        if w & VALID == 0 {
            return None;
        }
        Some(Self {
            vcpu: VcpuId::new((w >> 32) as u16),
            vintid: VLpi::new(w as u32).ok()?,
            priority: (w >> 48) as u8,
            enabled: w & ENABLED != 0,
        })
    }
}

/// Host LPI -> [`Route`], for `N` host LPIs in one contiguous block (the backend's).
///
/// Written by the backend (under the vITS's lock), read by the hypervisor's interrupt path on
/// any CPU: each route is one atomic word, so a reader sees a whole route, old or new, and
/// needs no lock.
#[derive(Debug)]
pub struct SoftRoutes<const N: usize> {
    /// The block's first LPI (0 until a backend took one).
    base: AtomicU32,
    slots: [AtomicU64; N],
}

impl<const N: usize> Default for SoftRoutes<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> SoftRoutes<N> {
    /// No block, no route.
    pub const fn new() -> Self {
        Self {
            base: AtomicU32::new(0),
            slots: [const { AtomicU64::new(0) }; N],
        }
    }

    /// Where host LPI `lpi` goes, if it is one of the block's and routed.
    pub fn route(&self, lpi: u32) -> Option<Route> {
        let base = self.base.load(Ordering::Acquire);
        if base == 0 {
            return None;
        }
        let i = lpi.checked_sub(base)? as usize;
        Route::decode(self.slots.get(i)?.load(Ordering::Acquire))
    }

    /// Whether `lpi` is one of the block's host LPIs (routed or not).
    pub fn owns(&self, lpi: u32) -> bool {
        let base = self.base.load(Ordering::Acquire);
        base != 0 && lpi.checked_sub(base).is_some_and(|i| (i as usize) < N)
    }

    /// Routes in use.
    pub fn routed(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.load(Ordering::Acquire) & VALID != 0)
            .count()
    }

    fn set(&self, i: usize, r: Option<Route>) {
        if let Some(s) = self.slots.get(i) {
            s.store(r.map_or(0, |r| r.encode()), Ordering::Release);
        }
    }

    fn get(&self, i: usize) -> Option<Route> {
        Route::decode(self.slots.get(i)?.load(Ordering::Acquire))
    }
}

/// Why the backend could not be made or an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SoftError {
    /// The ITS layer failed.
    #[error(transparent)]
    Its(#[from] ItsError),
    /// Every host LPI of the block is in use.
    #[error("no host LPI left (the block has {0})")]
    Exhausted(usize),
    /// The routes already belong to a backend.
    #[error("the routes already have a block of host LPIs")]
    RoutesInUse,
    /// A device or event the backend does not have (the vITS never asks for one).
    #[error("not mapped by the software backend")]
    NotMapped,
    /// No room for another device.
    #[error("no room for another device")]
    TooManyDevices,
}

/// The software-injection backend: `DEVICES` physical devices, `N` host LPIs (one per guest
/// event mapped).
pub struct SoftBackend<'a, R: ItsRegisters, P: Platform, const DEVICES: usize, const N: usize> {
    its: &'a Its<R, P>,
    lpis: &'a Lpis<P>,
    routes: &'a SoftRoutes<N>,
    block: LpiRange,
    devices: Vec<Device<P>, DEVICES>,
    /// The event each host LPI of the block serves.
    owners: [Option<PhysEvent>; N],
}

impl<R: ItsRegisters, P: Platform, const DEVICES: usize, const N: usize> core::fmt::Debug
    for SoftBackend<'_, R, P, DEVICES, N>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SoftBackend")
            .field("block", &self.block)
            .field("devices", &self.devices.len())
            .field("routed", &self.routes.routed())
            .finish_non_exhaustive()
    }
}

impl<'a, R: ItsRegisters, P: Platform, const DEVICES: usize, const N: usize>
    SoftBackend<'a, R, P, DEVICES, N>
{
    /// A backend mapping devices on `its`, with a block of `N` host LPIs from `lpis` (all
    /// disabled until mapped), published through `routes`.
    ///
    /// # Errors
    /// [`SoftError::RoutesInUse`] if `routes` serve another backend, LPI allocation errors.
    pub fn new(
        its: &'a Its<R, P>,
        lpis: &'a Lpis<P>,
        routes: &'a SoftRoutes<N>,
    ) -> Result<Self, SoftError> {
        if routes.base.load(Ordering::Acquire) != 0 {
            return Err(SoftError::RoutesInUse);
        }
        let block = lpis.alloc(N as u32)?;
        for l in block.iter() {
            lpis.configure(l, HOST_PRIORITY, false)?;
        }
        routes.base.store(block.base.get(), Ordering::Release);
        Ok(Self {
            its,
            lpis,
            routes,
            block,
            devices: Vec::new(),
            owners: [None; N],
        })
    }

    /// The block of host LPIs.
    pub fn block(&self) -> LpiRange {
        self.block
    }

    /// The physical devices mapped.
    pub fn devices(&self) -> &[Device<P>] {
        &self.devices
    }

    /// The host LPI serving `ev`, if mapped.
    pub fn host_lpi(&self, ev: PhysEvent) -> Option<Lpi> {
        let i = self.owners.iter().position(|o| *o == Some(ev))?;
        self.block.get(i as u32)
    }

    fn slot(&self, ev: PhysEvent) -> Result<(usize, Lpi), SoftError> {
        let i = self
            .owners
            .iter()
            .position(|o| *o == Some(ev))
            .ok_or(SoftError::NotMapped)?;
        Ok((i, self.block.get(i as u32).ok_or(SoftError::NotMapped)?))
    }

    fn device(&mut self, id: DeviceId) -> Result<&mut Device<P>, SoftError> {
        self.devices
            .iter_mut()
            .find(|d| d.id() == id)
            .ok_or(SoftError::NotMapped)
    }
}

impl<R: ItsRegisters, P: Platform + Clone, const DEVICES: usize, const N: usize> Backend
    for SoftBackend<'_, R, P, DEVICES, N>
{
    type Error = SoftError;

    fn map_device(&mut self, device: DeviceId, event_bits: u8) -> Result<(), SoftError> {
        if self.devices.iter().any(|d| d.id() == device) {
            return Err(ItsError::DeviceMapped(device.get()).into());
        }
        if self.devices.is_full() {
            return Err(SoftError::TooManyDevices);
        }
        let events = 1u32
            .checked_shl(event_bits.into())
            .ok_or(ItsError::Config("too many events"))?;
        let dev = self.its.map_device(device, events)?;
        // Room was checked above.
        let _ = self.devices.push(dev);
        Ok(())
    }

    fn unmap_device(&mut self, device: DeviceId) -> Result<(), SoftError> {
        let i = self
            .devices
            .iter()
            .position(|d| d.id() == device)
            .ok_or(SoftError::NotMapped)?;
        let dev = self.devices.get_mut(i).ok_or(SoftError::NotMapped)?;
        // On failure the record stays: the device is still (partly) mapped.
        self.its.unmap_device(dev)?;
        self.devices.swap_remove(i);
        Ok(())
    }

    fn map_vlpi(
        &mut self,
        ev: PhysEvent,
        vcpu: VcpuId,
        vintid: VLpi,
        prop: LpiProp,
    ) -> Result<(), SoftError> {
        let i = self
            .owners
            .iter()
            .position(Option::is_none)
            .ok_or(SoftError::Exhausted(N))?;
        let lpi = self.block.get(i as u32).ok_or(SoftError::Exhausted(N))?;
        let (its, lpis) = (self.its, self.lpis);
        lpis.configure(lpi, HOST_PRIORITY, prop.enabled())?;
        // Published before the MAPTI: an MSI right after it finds its route.
        self.routes.set(
            i,
            Some(Route {
                vcpu,
                vintid,
                priority: prop.priority(),
                enabled: prop.enabled(),
            }),
        );
        let dev = self.device(ev.device)?;
        let mapped = its
            .map_event(dev, ev.event.get(), lpi, vcpu.index())
            .and_then(|()| its.inv_event(dev, ev.event.get()));
        match mapped {
            Ok(()) => {
                self.owners[i] = Some(ev);
                Ok(())
            }
            Err(e) => {
                // The MAPTI may have been done and the INV not: undo it, so the vITS's
                // record (not mapped) is the truth.
                if dev.event(ev.event.get()).is_ok_and(|s| s.is_mapped()) {
                    let _ = its.unmap_event(dev, ev.event.get());
                }
                self.routes.set(i, None);
                let _ = lpis.configure(lpi, HOST_PRIORITY, false);
                Err(e.into())
            }
        }
    }

    fn unmap_vlpi(&mut self, ev: PhysEvent) -> Result<(), SoftError> {
        let (i, lpi) = self.slot(ev)?;
        let its = self.its;
        let dev = self.device(ev.device)?;
        its.unmap_event(dev, ev.event.get())?;
        self.owners[i] = None;
        self.routes.set(i, None);
        self.lpis.configure(lpi, HOST_PRIORITY, false)?;
        Ok(())
    }

    fn move_vlpi(&mut self, ev: PhysEvent, vcpu: VcpuId) -> Result<(), SoftError> {
        let (i, _) = self.slot(ev)?;
        let its = self.its;
        let dev = self.device(ev.device)?;
        its.move_event(dev, ev.event.get(), vcpu.index())?;
        if let Some(r) = self.routes.get(i) {
            self.routes.set(i, Some(Route { vcpu, ..r }));
        }
        Ok(())
    }

    fn update_vlpi(&mut self, ev: PhysEvent, prop: LpiProp, inv: bool) -> Result<(), SoftError> {
        let (i, lpi) = self.slot(ev)?;
        self.lpis.configure(lpi, HOST_PRIORITY, prop.enabled())?;
        if let Some(r) = self.routes.get(i) {
            self.routes.set(
                i,
                Some(Route {
                    priority: prop.priority(),
                    enabled: prop.enabled(),
                    ..r
                }),
            );
        }
        if inv {
            let its = self.its;
            let dev = self.device(ev.device)?;
            its.inv_event(dev, ev.event.get())?;
        }
        Ok(())
    }

    fn invall(&mut self, vcpu: VcpuId) -> Result<(), SoftError> {
        Ok(self.its.invall(vcpu.index())?)
    }

    fn int(&mut self, ev: PhysEvent) -> Result<(), SoftError> {
        self.slot(ev)?;
        let its = self.its;
        let dev = self.device(ev.device)?;
        Ok(its.int_event(dev, ev.event.get())?)
    }

    fn clear(&mut self, ev: PhysEvent) -> Result<(), SoftError> {
        self.slot(ev)?;
        let its = self.its;
        let dev = self.device(ev.device)?;
        Ok(its.clear_event(dev, ev.event.get())?)
    }
}
