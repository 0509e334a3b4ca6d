// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the hypervisor must do after a call: kick vCPUs, change physical interrupt state.
//!
//! The crate touches no hardware and no other CPU. A call that needs either fills an
//! [`Effects`] buffer the caller owns; the caller applies every entry, in order, then clears
//! the buffer (see "Applying effects" on the crate's front page).

use fwd_irq::PIntId;

use crate::ids::{VcpuId, VcpuSet};

/// How many [`Effect`]s a buffer holds. A register write produces at most 32 (one per
/// interrupt of a 32-bit register); [`crate::Vgic::sync`] stops early rather than overflow.
pub const EFFECTS_CAPACITY: usize = 64;

/// One change of physical interrupt state, or one notification, for the hypervisor to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Effect {
    /// Enable or disable the physical SPI of a forwarded SPI at the physical distributor
    /// (`GICD_ISENABLER<n>` / `GICD_ICENABLER<n>`): the guest enabled or disabled it.
    SetPhysEnabled {
        /// The physical SPI.
        pintid: PIntId,
        /// Enable (true) or disable.
        enabled: bool,
    },
    /// Set or clear the active state of a forwarded interrupt's physical INTID
    /// (`GICD_ISACTIVER<n>` / `GICD_ICACTIVER<n>`, or GICR_ISACTIVER0 / GICR_ICACTIVER0 for a
    /// PPI), so that it is active exactly while the guest owns an instance. Only
    /// [`crate::Vgic::sync`] produces it, for the vCPU it syncs: apply it on that vCPU's PE
    /// (a PPI is banked per PE) before entering the guest.
    SetPhysActive {
        /// The physical PPI or SPI.
        pintid: PIntId,
        /// Active (true) or inactive.
        active: bool,
    },
    /// Route the physical SPI of a forwarded SPI to the PE that runs `vcpu` (physical
    /// `GICD_IROUTER<n>`): the guest routed the virtual SPI there.
    RoutePhys {
        /// The physical SPI.
        pintid: PIntId,
        /// The vCPU whose PE should take it.
        vcpu: VcpuId,
    },
    /// The guest set or cleared GICR_CTLR.EnableLPIs of `vcpu`'s redistributor (for the
    /// hypervisor's virtual ITS).
    LpisEnabled {
        /// The vCPU whose redistributor changed.
        vcpu: VcpuId,
        /// The new EnableLPIs.
        enabled: bool,
    },
}

/// A buffer of effects plus the set of vCPUs to kick.
///
/// A *kick* of vCPU n means: n has work waiting in the [`crate::Vgic`] (an interrupt made
/// pending for it, an enable, a route change, ...). Make it call [`crate::Vgic::sync`] before
/// it next enters the guest: if it is running the guest, interrupt its PE (a physical SGI);
/// if it is blocked in WFI, wake it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    kicks: VcpuSet,
    list: heapless::Vec<Effect, EFFECTS_CAPACITY>,
    overflowed: bool,
}

impl Effects {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            kicks: VcpuSet::EMPTY,
            list: heapless::Vec::new(),
            overflowed: false,
        }
    }

    /// The vCPUs to kick.
    pub const fn kicks(&self) -> VcpuSet {
        self.kicks
    }

    /// The effects, in the order to apply them.
    pub fn effects(&self) -> &[Effect] {
        &self.list
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.kicks.is_empty() && self.list.is_empty()
    }

    /// Empties the buffer (once every entry has been applied).
    pub fn clear(&mut self) {
        self.kicks = VcpuSet::EMPTY;
        self.list.clear();
        self.overflowed = false;
    }

    /// Whether an effect was lost because the buffer was full. Never true: every producer
    /// checks for room first; a hypervisor may still assert it.
    pub const fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// How many more effects fit.
    pub fn free(&self) -> usize {
        EFFECTS_CAPACITY - self.list.len()
    }

    pub(crate) fn kick(&mut self, vcpu: VcpuId) {
        self.kicks.insert(vcpu);
    }

    /// Adds `effect`.
    pub(crate) fn push(&mut self, effect: Effect) {
        // Cannot fail: every producer checks for room before it changes any state. A register
        // access starts from an empty buffer, its first sync leaves at least 32 slots and the
        // write itself makes at most 32; a sync stops before an interrupt once fewer than
        // two slots are free, and one interrupt makes at most two.
        if self.list.push(effect).is_err() {
            self.overflowed = true;
        }
    }
}
