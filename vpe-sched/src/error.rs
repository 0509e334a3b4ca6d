// SPDX-License-Identifier: MIT OR Apache-2.0
//! Errors of the GICv4 layer.

use doorbell::DoorbellError;
use its_cmdq::ItsError;

use crate::residency::Transition;

/// What went wrong. Small enough to return by value (at most 56 bytes, asserted by a test),
/// although it can carry a doorbell or ITS error: the ITS's command trace stays with its
/// queue (`its_cmdq::Its::last_commands`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VpeError {
    /// The ITS layer failed.
    #[error(transparent)]
    Its(#[from] ItsError),
    /// The doorbell layer failed.
    #[error(transparent)]
    Doorbell(#[from] DoorbellError),
    /// No ITS with GICv4 (GITS_TYPER.Virtual), or the redistributors lack VLPIS.
    #[error("GICv4 is not supported: {0}")]
    NotV4(&'static str),
    /// The configuration asks for something outside the limits.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// A vINTID beyond the VM's range.
    #[error("vINTID {vintid} is outside the VM's {bits}-bit range")]
    VintidOutOfRange {
        /// The vINTID.
        vintid: u32,
        /// The VM's vINTID bits.
        bits: u8,
    },
    /// No vPE with this index in the VM.
    #[error("the VM has no vPE {0}")]
    NoSuchVpe(usize),
    /// The event is mapped to a vPE of another VM.
    #[error("event {event:#x} of device {device:#x} belongs to another VM")]
    WrongVm {
        /// DeviceID.
        device: u32,
        /// EventID.
        event: u32,
    },
    /// The event is already forwarded to a vPE (VMAPTI over a live mapping is UNPREDICTABLE).
    #[error("event {event:#x} of device {device:#x} is already mapped to a vLPI")]
    AlreadyForwarded {
        /// DeviceID.
        device: u32,
        /// EventID.
        event: u32,
    },
    /// The event is not forwarded to a vPE.
    #[error("event {event:#x} of device {device:#x} is not mapped to a vLPI")]
    NotForwarded {
        /// DeviceID.
        device: u32,
        /// EventID.
        event: u32,
    },
    /// A residency change not allowed from the vPE's state.
    #[error("residency: {0:?}")]
    Residency(Transition),
    /// Another vPE is resident on that CPU's redistributor.
    #[error("CPU {cpu}'s redistributor already has vPE {vpe} resident")]
    RedistBusy {
        /// The CPU.
        cpu: usize,
        /// The resident vPE's ID.
        vpe: u16,
    },
    /// No CPU with this index.
    #[error("no CPU {0}")]
    NoSuchCpu(usize),
    /// The redistributor frame given is not CPU `cpu`'s: its GICR_TYPER.Processor_Number
    /// says `processor`.
    #[error("the redistributor given for CPU {cpu} is processor {processor}'s")]
    WrongRedistributor {
        /// The CPU the call named.
        cpu: usize,
        /// GICR_TYPER.Processor_Number of the frame given.
        processor: u16,
    },
    /// No free vPE ID.
    #[error("no free vPE ID")]
    VpeIdsExhausted,
    /// The VM still has vLPIs mapped or resident vPEs.
    #[error("the VM is still in use: {0}")]
    InUse(&'static str),
    /// The redistributor did not finish parsing the VPT in time (GICv4.1 commit).
    #[error("GICR_VPENDBASER.Dirty still set after {waited_ns} ns")]
    DirtyTimeout {
        /// How long it waited.
        waited_ns: u64,
    },
    /// The operation needs a GICv4.1 ITS.
    #[error("{0} needs GICv4.1")]
    NeedsV41(&'static str),
    /// The operation needs the redistributor's registers (DirectLPI invalidation).
    #[error("this operation needs the target redistributor's registers")]
    NeedRedistributor,
    /// The VM was destroyed ([`crate::GicV4::destroy_vm`]).
    #[error("the VM was destroyed")]
    VmDestroyed,
    /// The GICv4 layer was shut down ([`crate::GicV4::shutdown`]).
    #[error("the GICv4 layer is shut down")]
    ShutDown,
}

impl From<Transition> for VpeError {
    fn from(t: Transition) -> Self {
        Self::Residency(t)
    }
}

impl From<its_core::platform::AllocError> for VpeError {
    fn from(e: its_core::platform::AllocError) -> Self {
        Self::Its(e.into())
    }
}

impl From<its_core::addr::AddrError> for VpeError {
    fn from(e: its_core::addr::AddrError) -> Self {
        Self::Its(e.into())
    }
}

impl From<its_core::platform::OutOfBounds> for VpeError {
    fn from(e: its_core::platform::OutOfBounds) -> Self {
        Self::Its(e.into())
    }
}

impl From<its_core::ids::IdError> for VpeError {
    fn from(e: its_core::ids::IdError) -> Self {
        Self::Its(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returned by value by every call of the layer (and wrapped by the vITS's errors).
    #[test]
    fn errors_are_small() {
        assert!(size_of::<VpeError>() <= 56, "{}", size_of::<VpeError>());
    }
}
