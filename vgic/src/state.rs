// SPDX-License-Identifier: MIT OR Apache-2.0
//! The model's record of one interrupt: what the guest programmed, where it lives, and the
//! changes waiting for the vCPU that holds it.

use fwd_irq::{Forward, Trigger, VirqConfig};

use crate::ids::VcpuId;

/// Changes to an interrupt's state waiting for the vCPU whose `VgicCpu` holds it. Each field
/// keeps the last value written (a later ISPENDR overrides an earlier ICPENDR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mail {
    /// Push the configuration again.
    pub cfg: bool,
    /// Set or clear the pending latch.
    pub latch: Option<bool>,
    /// Raise or lower the line (level-sensitive).
    pub line: Option<bool>,
    /// Set or clear the active state.
    pub active: Option<bool>,
}

impl Mail {
    pub const fn is_empty(&self) -> bool {
        !self.cfg && self.latch.is_none() && self.line.is_none() && self.active.is_none()
    }
}

/// One change posted for an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Cfg,
    Latch(bool),
    Line(bool),
    Active(bool),
}

/// One SGI, PPI or SPI as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Irq {
    // What the guest programmed.
    pub group1: bool,
    pub enabled: bool,
    pub priority: u8,
    pub edge: bool,
    /// The physical interrupt it stands for, if forwarded (its trigger is then fixed).
    pub fwd: Option<Forward>,
    /// GICD_IROUTER as stored (SPIs only).
    pub irouter: u64,
    /// The vCPU the route names (private interrupts: their own vCPU).
    pub target: Option<VcpuId>,
    /// The vCPU whose `VgicCpu` holds it, if any.
    pub holder: Option<VcpuId>,
    // State: as published by the holder at its last sync, updated by the changes posted
    // since (so reads see their own writes); the state itself while no vCPU holds it.
    pub latch: bool,
    pub line: bool,
    pub active: bool,
    /// Whether the physical interrupt is active, as the model last asked (forwarded only).
    pub phys_active: bool,
    pub mail: Mail,
}

impl Irq {
    /// The reset state: Group 0, disabled, priority 0, level-sensitive (SGIs: edge),
    /// routed to `target`.
    pub const fn reset(edge: bool, target: Option<VcpuId>) -> Self {
        Self {
            group1: false,
            enabled: false,
            priority: 0,
            edge,
            fwd: None,
            irouter: 0,
            target,
            holder: None,
            latch: false,
            line: false,
            active: false,
            phys_active: false,
            mail: Mail {
                cfg: false,
                latch: None,
                line: None,
                active: None,
            },
        }
    }

    /// Pending: latched, or level-sensitive with the line high.
    pub const fn pending(&self) -> bool {
        self.latch || (!self.edge && self.line)
    }

    pub const fn trigger(&self) -> Trigger {
        if self.edge {
            Trigger::Edge
        } else {
            Trigger::Level
        }
    }

    /// The configuration the holding `VgicCpu` gets; `deliverable` folds in the group
    /// enables of GICD_CTLR and the holder's GICR_WAKER.ProcessorSleep.
    pub const fn virq_config(&self, deliverable: bool) -> VirqConfig {
        VirqConfig {
            priority: self.priority,
            group1: self.group1,
            trigger: self.trigger(),
            enabled: self.enabled && deliverable,
        }
    }

    /// Records `op` in the state the model reports.
    pub fn predict(&mut self, op: Op) {
        match op {
            Op::Cfg => {}
            Op::Latch(b) => self.latch = b,
            Op::Line(b) => self.line = b,
            Op::Active(b) => self.active = b,
        }
    }

    /// Records `op` for the holder.
    pub fn post(&mut self, op: Op) {
        match op {
            Op::Cfg => self.mail.cfg = true,
            Op::Latch(b) => self.mail.latch = Some(b),
            Op::Line(b) => self.mail.line = Some(b),
            Op::Active(b) => self.mail.active = Some(b),
        }
    }
}
