// SPDX-License-Identifier: MIT OR Apache-2.0
//! The vLPI operations the vITS translates the guest's commands into.

use its_core::ids::{DeviceId, EventId, VLpi};

use crate::config::VcpuId;

/// An event of a physical device: what the backend's operations name. The DeviceID is always
/// an assigned device's physical DeviceID or one from the pool, never a guest's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PhysEvent {
    /// The physical DeviceID.
    pub device: DeviceId,
    /// The EventID (the guest's: events are not renumbered).
    pub event: EventId,
}

/// A byte of the LPI configuration table (Arm IHI 0069, "LPI Configuration tables"): priority
/// in bits \[7:2\], bit 1 RES1, enable in bit 0. Held with bit 1 cleared, so two values are
/// equal exactly when the priority and the enable bit are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LpiProp(u8);

impl LpiProp {
    /// Priority 0, disabled: what an LPI without a configuration byte (no table yet, or an
    /// INTID beyond the table) gets.
    pub const NONE: Self = Self(0);

    /// From a table byte.
    pub const fn from_byte(b: u8) -> Self {
        Self(b & 0xfd)
    }

    /// The priority (bits \[7:2\]; bits \[1:0\] zero).
    pub const fn priority(self) -> u8 {
        self.0 & 0xfc
    }

    /// The enable bit.
    pub const fn enabled(self) -> bool {
        self.0 & 1 != 0
    }

    /// The byte (bit 1 clear).
    pub const fn byte(self) -> u8 {
        self.0
    }
}

/// The operations a guest's ITS commands become, implemented over the GICv4 driver
/// ([`crate::VpeSchedBackend`]) or recorded ([`crate::Recorder`]).
///
/// The vITS calls them in an order that keeps them well-formed, which an implementation may
/// rely on (and check): a device is mapped before its events and unmapped after them; an
/// event is mapped once before it is moved, updated, made pending or cleared, and unmapped at
/// most once; `vcpu` is below the VM's vCPU count; `vintid` is within the VM's range. Each
/// operation is complete when it returns (the GICv4 layer waits for its SYNC or VSYNC).
///
/// On error the operation must have had no effect the vITS does not know about: it records
/// the operation as not done, stalls the guest's queue on that command, and does it again if
/// the guest retries.
pub trait Backend {
    /// What goes wrong.
    type Error: Copy + core::fmt::Debug;

    /// Maps a physical device with room for 2^`event_bits` events (the guest's MAPD V = 1;
    /// `event_bits` is at most the vITS's configured EventID bits).
    ///
    /// # Errors
    /// Implementation-defined.
    fn map_device(&mut self, device: DeviceId, event_bits: u8) -> Result<(), Self::Error>;

    /// Unmaps a physical device, which has no event mapped any more (MAPD V = 0).
    ///
    /// # Errors
    /// Implementation-defined.
    fn unmap_device(&mut self, device: DeviceId) -> Result<(), Self::Error>;

    /// Maps an event to vINTID `vintid` of vCPU `vcpu`'s vPE, configured by `prop`.
    ///
    /// # Errors
    /// Implementation-defined.
    fn map_vlpi(
        &mut self,
        ev: PhysEvent,
        vcpu: VcpuId,
        vintid: VLpi,
        prop: LpiProp,
    ) -> Result<(), Self::Error>;

    /// Unmaps an event's vLPI (its pending state is lost, as DISCARD loses it).
    ///
    /// # Errors
    /// Implementation-defined.
    fn unmap_vlpi(&mut self, ev: PhysEvent) -> Result<(), Self::Error>;

    /// Moves an event's vLPI, with its pending state, to vCPU `vcpu`'s vPE (VMOVI).
    ///
    /// # Errors
    /// Implementation-defined.
    fn move_vlpi(&mut self, ev: PhysEvent, vcpu: VcpuId) -> Result<(), Self::Error>;

    /// Sets an event's vLPI configuration to `prop`; with `inv`, the redistributor rereads it
    /// (INV), otherwise an [`Backend::invall`] of its vCPU follows.
    ///
    /// # Errors
    /// Implementation-defined.
    fn update_vlpi(&mut self, ev: PhysEvent, prop: LpiProp, inv: bool) -> Result<(), Self::Error>;

    /// Makes the redistributor reread the configuration of every vLPI of vCPU `vcpu`'s vPE
    /// (VINVALL).
    ///
    /// # Errors
    /// Implementation-defined.
    fn invall(&mut self, vcpu: VcpuId) -> Result<(), Self::Error>;

    /// Makes an event's vLPI pending (INT).
    ///
    /// # Errors
    /// Implementation-defined.
    fn int(&mut self, ev: PhysEvent) -> Result<(), Self::Error>;

    /// Clears an event's pending vLPI (CLEAR).
    ///
    /// # Errors
    /// Implementation-defined.
    fn clear(&mut self, ev: PhysEvent) -> Result<(), Self::Error>;
}
