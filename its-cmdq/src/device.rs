// SPDX-License-Identifier: MIT OR Apache-2.0
//! A mapped device: its ITT and what each of its events is mapped to.
//!
//! The driver keeps its own record of every event's mapping (in DMA memory from the platform,
//! 16 bytes per event, so no `alloc` is needed): it is how double maps, unmaps of unmapped
//! events and EventIDs beyond the ITT are refused before any command is written, and how a
//! GICv4 layer knows which host LPI to restore when a forwarded event is unmapped.

use its_core::cmd::IdBits;
use its_core::ids::{DeviceId, Lpi, VLpi, VpeId};
use its_core::platform::{DmaBuf, Platform};

use crate::error::ItsError;

/// A physical mapping: the event raises `lpi` on `cpu`'s collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PhysMapping {
    /// The host LPI.
    pub lpi: Lpi,
    /// The CPU (collection) it targets.
    pub cpu: u16,
}

/// A virtual mapping: the event raises `vintid` on `vpe` (GICv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VirtMapping {
    /// The vPE.
    pub vpe: VpeId,
    /// The vLPI.
    pub vintid: VLpi,
    /// Whether the ITE carries the vPE's doorbell (GICv4.0).
    pub doorbell: bool,
}

/// What the driver knows about one event.
///
/// `phys` with `virt`: forwarded to a vPE, and restored to `phys` when unforwarded. `virt`
/// alone: mapped to a vPE only. `phys` alone: a host LPI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EventState {
    /// The host mapping.
    pub phys: Option<PhysMapping>,
    /// The vPE mapping, which the ITS uses when present.
    pub virt: Option<VirtMapping>,
}

impl EventState {
    /// Whether the ITS has an ITE for the event.
    pub fn is_mapped(&self) -> bool {
        self.phys.is_some() || self.virt.is_some()
    }

    fn encode(&self) -> [u64; 2] {
        let p = self.phys.map_or(0, |p| {
            1 << 63 | u64::from(p.cpu) << 32 | u64::from(p.lpi.get())
        });
        let v = self.virt.map_or(0, |v| {
            1 << 63
                | u64::from(v.doorbell) << 62
                | u64::from(v.vpe.get()) << 32
                | u64::from(v.vintid.get())
        });
        [p, v]
    }

    fn decode(w: [u64; 2]) -> Self {
        let phys = (w[0] >> 63 != 0)
            .then(|| {
                Lpi::new(w[0] as u32).ok().map(|lpi| PhysMapping {
                    lpi,
                    cpu: (w[0] >> 32) as u16,
                })
            })
            .flatten();
        let virt = (w[1] >> 63 != 0)
            .then(|| {
                VLpi::new(w[1] as u32).ok().map(|vintid| VirtMapping {
                    vpe: VpeId::new((w[1] >> 32) as u16),
                    vintid,
                    doorbell: w[1] >> 62 & 1 != 0,
                })
            })
            .flatten();
        Self { phys, virt }
    }
}

/// A device mapped in an ITS (MAPD): owns its ITT and its event records. Unmap it with
/// [`crate::Its::unmap_device`]; dropping it without unmapping would free an ITT the ITS still
/// uses, so a device dropped while mapped leaks its memory on purpose instead.
pub struct Device<P: Platform> {
    pub(crate) id: DeviceId,
    pub(crate) size: IdBits,
    pub(crate) events: u32,
    pub(crate) itt: Option<DmaBuf<P>>,
    pub(crate) state: Option<DmaBuf<P>>,
    pub(crate) mapped: u32,
}

impl<P: Platform> core::fmt::Debug for Device<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("events", &self.events)
            .field("mapped", &self.mapped)
            .field("is_mapped", &self.is_mapped())
            .finish_non_exhaustive()
    }
}

impl<P: Platform> Device<P> {
    /// The DeviceID.
    pub fn id(&self) -> DeviceId {
        self.id
    }

    /// Events the ITT covers (a power of two, at least 2).
    pub fn events(&self) -> u32 {
        self.events
    }

    /// Events currently mapped.
    pub fn mapped_events(&self) -> u32 {
        self.mapped
    }

    /// Whether the device is mapped in the ITS (false once [`crate::Its::unmap_device`]
    /// succeeded).
    pub fn is_mapped(&self) -> bool {
        self.itt.is_some()
    }

    /// After the unmap: frees the ITT and the records; no event is left.
    pub(crate) fn release(&mut self) {
        drop(self.itt.take());
        drop(self.state.take());
        self.events = 0;
        self.mapped = 0;
    }

    /// The ITT size field used in MAPD.
    pub fn itt_size(&self) -> IdBits {
        self.size
    }

    pub(crate) fn check_event(&self, event: u32) -> Result<(), ItsError> {
        if !self.is_mapped() {
            Err(ItsError::DeviceNotMapped(self.id.get()))
        } else if event < self.events {
            Ok(())
        } else {
            Err(ItsError::EventOutOfRange {
                device: self.id.get(),
                event,
                events: self.events,
            })
        }
    }

    /// What the driver recorded for `event`.
    ///
    /// # Errors
    /// [`ItsError::EventOutOfRange`].
    pub fn event(&self, event: u32) -> Result<EventState, ItsError> {
        self.check_event(event)?;
        let state = self.state.as_ref().ok_or(ItsError::Dead)?;
        let off = event as usize * 16;
        Ok(EventState::decode([
            state.read_u64(off)?,
            state.read_u64(off + 8)?,
        ]))
    }

    /// Records what `event` is mapped to. For layers built on this crate (GICv4 vLPI mapping)
    /// after the ITS has completed the commands that made it so.
    ///
    /// # Errors
    /// [`ItsError::EventOutOfRange`].
    pub fn set_event(&mut self, event: u32, s: EventState) -> Result<(), ItsError> {
        let was = self.event(event)?.is_mapped();
        let state = self.state.as_mut().ok_or(ItsError::Dead)?;
        let off = event as usize * 16;
        let [a, b] = s.encode();
        state.write_u64(off, a)?;
        state.write_u64(off + 8, b)?;
        match (was, s.is_mapped()) {
            (false, true) => self.mapped += 1,
            (true, false) => self.mapped -= 1,
            _ => {}
        }
        Ok(())
    }
}

impl<P: Platform> Drop for Device<P> {
    fn drop(&mut self) {
        // Still mapped in the ITS (not returned through unmap_device): the ITS may still read
        // or write the ITT, so it must never be reused.
        if let Some(itt) = self.itt.as_mut() {
            itt.leak_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_state_round_trips() {
        let s = EventState {
            phys: Some(PhysMapping {
                lpi: Lpi::new(8200).unwrap(),
                cpu: 3,
            }),
            virt: Some(VirtMapping {
                vpe: VpeId::new(7),
                vintid: VLpi::new(8192).unwrap(),
                doorbell: true,
            }),
        };
        assert_eq!(EventState::decode(s.encode()), s);
        assert_eq!(EventState::decode([0, 0]), EventState::default());
        assert!(!EventState::default().is_mapped());
    }
}
