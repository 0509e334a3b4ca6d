// SPDX-License-Identifier: MIT OR Apache-2.0
//! A recording backend: the operations in order, checked for well-formedness.
//!
//! For tests of the translation without a GIC (and for adopters' tests of their own trap
//! handling): it logs every [`Backend`] call and refuses, with an error, any call the
//! [`Backend`] contract rules out (an event mapped twice, an operation on an unmapped event,
//! a device unmapped with events left), so a vITS bug shows up as an error rather than as a
//! log that merely looks plausible. It can also be told to fail a given operation, to test
//! the stall on backend errors.

use heapless::{LinearMap, Vec};
use its_core::ids::{DeviceId, VLpi};

use crate::backend::{Backend, LpiProp, PhysEvent};
use crate::config::VcpuId;

/// One backend operation, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Backend::map_device`].
    MapDevice {
        /// Physical DeviceID.
        device: DeviceId,
        /// EventID bits.
        event_bits: u8,
    },
    /// [`Backend::unmap_device`].
    UnmapDevice {
        /// Physical DeviceID.
        device: DeviceId,
    },
    /// [`Backend::map_vlpi`].
    MapVlpi {
        /// The event.
        ev: PhysEvent,
        /// Target vCPU.
        vcpu: VcpuId,
        /// vINTID.
        vintid: VLpi,
        /// Configuration.
        prop: LpiProp,
    },
    /// [`Backend::unmap_vlpi`].
    UnmapVlpi {
        /// The event.
        ev: PhysEvent,
    },
    /// [`Backend::move_vlpi`].
    MoveVlpi {
        /// The event.
        ev: PhysEvent,
        /// New vCPU.
        vcpu: VcpuId,
    },
    /// [`Backend::update_vlpi`].
    UpdateVlpi {
        /// The event.
        ev: PhysEvent,
        /// New configuration.
        prop: LpiProp,
        /// With INV.
        inv: bool,
    },
    /// [`Backend::invall`].
    Invall {
        /// The vCPU.
        vcpu: VcpuId,
    },
    /// [`Backend::int`].
    Int {
        /// The event.
        ev: PhysEvent,
    },
    /// [`Backend::clear`].
    Clear {
        /// The event.
        ev: PhysEvent,
    },
}

/// Why the recorder refused an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// The operation breaks the [`Backend`] contract.
    #[error("contract broken by {op:?}: {why}")]
    Contract {
        /// The operation.
        op: Op,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Failed on request ([`Recorder::fail_at`]).
    #[error("injected failure of operation {index}")]
    Injected {
        /// Its index among all operations.
        index: u64,
    },
    /// The recorder's room for live devices or vLPIs is full.
    #[error("the recorder is full")]
    Full,
}

/// What the recorder knows about a mapped vLPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// Its vCPU.
    pub vcpu: VcpuId,
    /// Its vINTID.
    pub vintid: VLpi,
    /// Its configuration.
    pub prop: LpiProp,
    /// Pending (INT without a CLEAR, unmap or remap since).
    pub pending: bool,
}

/// The recording backend: the last `N` operations, and up to `N` live devices and vLPIs.
#[derive(Debug, Default)]
pub struct Recorder<const N: usize> {
    log: Vec<Op, N>,
    /// Operations made (accepted or refused), also those beyond the log's room.
    count: u64,
    fail_at: Option<u64>,
    devices: LinearMap<DeviceId, u8, N>,
    vlpis: LinearMap<PhysEvent, Mapped, N>,
}

impl<const N: usize> Recorder<N> {
    /// An empty recorder.
    pub const fn new() -> Self {
        Self {
            log: Vec::new(),
            count: 0,
            fail_at: None,
            devices: LinearMap::new(),
            vlpis: LinearMap::new(),
        }
    }

    /// The operations accepted, oldest first (the first `N`).
    pub fn log(&self) -> &[Op] {
        &self.log
    }

    /// Forgets the log (not the live state).
    pub fn clear_log(&mut self) {
        self.log.clear();
    }

    /// Operations made so far (accepted or refused).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Fails the operation with this index (counting from 0, as [`Recorder::count`]
    /// counts), once; `None`: no failure.
    pub fn fail_at(&mut self, index: Option<u64>) {
        self.fail_at = index;
    }

    /// The live devices and their EventID bits.
    pub fn devices(&self) -> impl Iterator<Item = (DeviceId, u8)> + '_ {
        self.devices.iter().map(|(&d, &b)| (d, b))
    }

    /// The live vLPIs.
    pub fn vlpis(&self) -> impl Iterator<Item = (PhysEvent, Mapped)> + '_ {
        self.vlpis.iter().map(|(&e, &m)| (e, m))
    }

    /// The live vLPI of an event.
    pub fn vlpi(&self, ev: PhysEvent) -> Option<Mapped> {
        self.vlpis.get(&ev).copied()
    }

    fn step(&mut self, op: Op) -> Result<(), RecorderError> {
        let index = self.count;
        self.count += 1;
        if self.fail_at == Some(index) {
            self.fail_at = None;
            return Err(RecorderError::Injected { index });
        }
        let refuse = |why| Err(RecorderError::Contract { op, why });
        match op {
            Op::MapDevice { device, event_bits } => {
                if self.devices.contains_key(&device) {
                    return refuse("device mapped twice");
                }
                self.devices
                    .insert(device, event_bits)
                    .map_err(|_| RecorderError::Full)?;
            }
            Op::UnmapDevice { device } => {
                if !self.devices.contains_key(&device) {
                    return refuse("device not mapped");
                }
                if self.vlpis.keys().any(|e| e.device == device) {
                    return refuse("device unmapped with vLPIs left");
                }
                let _ = self.devices.remove(&device);
            }
            Op::MapVlpi {
                ev,
                vcpu,
                vintid,
                prop,
            } => {
                let Some(&bits) = self.devices.get(&ev.device) else {
                    return refuse("event of an unmapped device");
                };
                if u64::from(ev.event.get()) >> bits != 0 {
                    return refuse("event beyond the device's events");
                }
                if self.vlpis.contains_key(&ev) {
                    return refuse("event mapped twice");
                }
                self.vlpis
                    .insert(
                        ev,
                        Mapped {
                            vcpu,
                            vintid,
                            prop,
                            pending: false,
                        },
                    )
                    .map_err(|_| RecorderError::Full)?;
            }
            Op::UnmapVlpi { ev } => {
                if self.vlpis.remove(&ev).is_none() {
                    return refuse("event not mapped");
                }
            }
            Op::MoveVlpi { ev, vcpu } => match self.vlpis.get_mut(&ev) {
                Some(m) => m.vcpu = vcpu,
                None => return refuse("event not mapped"),
            },
            Op::UpdateVlpi { ev, prop, .. } => match self.vlpis.get_mut(&ev) {
                Some(m) => m.prop = prop,
                None => return refuse("event not mapped"),
            },
            Op::Invall { .. } => {}
            Op::Int { ev } | Op::Clear { ev } => match self.vlpis.get_mut(&ev) {
                Some(m) => m.pending = matches!(op, Op::Int { .. }),
                None => return refuse("event not mapped"),
            },
        }
        let _ = self.log.push(op);
        Ok(())
    }
}

impl<const N: usize> Backend for Recorder<N> {
    type Error = RecorderError;

    fn map_device(&mut self, device: DeviceId, event_bits: u8) -> Result<(), RecorderError> {
        self.step(Op::MapDevice { device, event_bits })
    }

    fn unmap_device(&mut self, device: DeviceId) -> Result<(), RecorderError> {
        self.step(Op::UnmapDevice { device })
    }

    fn map_vlpi(
        &mut self,
        ev: PhysEvent,
        vcpu: VcpuId,
        vintid: VLpi,
        prop: LpiProp,
    ) -> Result<(), RecorderError> {
        self.step(Op::MapVlpi {
            ev,
            vcpu,
            vintid,
            prop,
        })
    }

    fn unmap_vlpi(&mut self, ev: PhysEvent) -> Result<(), RecorderError> {
        self.step(Op::UnmapVlpi { ev })
    }

    fn move_vlpi(&mut self, ev: PhysEvent, vcpu: VcpuId) -> Result<(), RecorderError> {
        self.step(Op::MoveVlpi { ev, vcpu })
    }

    fn update_vlpi(
        &mut self,
        ev: PhysEvent,
        prop: LpiProp,
        inv: bool,
    ) -> Result<(), RecorderError> {
        self.step(Op::UpdateVlpi { ev, prop, inv })
    }

    fn invall(&mut self, vcpu: VcpuId) -> Result<(), RecorderError> {
        self.step(Op::Invall { vcpu })
    }

    fn int(&mut self, ev: PhysEvent) -> Result<(), RecorderError> {
        self.step(Op::Int { ev })
    }

    fn clear(&mut self, ev: PhysEvent) -> Result<(), RecorderError> {
        self.step(Op::Clear { ev })
    }
}
