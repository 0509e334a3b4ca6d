// SPDX-License-Identifier: MIT OR Apache-2.0
//! The crate's error type.
//!
//! Errors are for the hypervisor's mistakes (a bad configuration, an unknown vCPU, an address
//! outside the emulated frames, effects not drained). Nothing the guest does is an error: its
//! accesses are answered with an [`crate::Outcome`].

use fwd_irq::FwdError;

/// Everything that can go wrong in `vgic`.
///
/// `Copy + Eq`, a few bytes, with explicit discriminants, like the other crates' errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[repr(u32)]
pub enum VgicError {
    /// The configuration asks for 0 vCPUs or more than the `Vgic` was built for.
    #[error("{requested} vCPUs requested; 1..={capacity} supported")]
    VcpuCount {
        /// The requested number.
        requested: u32,
        /// The const-generic capacity (at most 64).
        capacity: u32,
    } = 1,
    /// A frame base that is not 64 KiB aligned, or frames that overlap or wrap.
    #[error("bad frame layout at {base:#x}")]
    FrameLayout {
        /// The offending base address.
        base: u64,
    } = 2,
    /// Two vCPUs have the same affinity.
    #[error("vCPUs {first} and {second} have the same affinity")]
    DuplicateAffinity {
        /// The lower index.
        first: u32,
        /// The higher index.
        second: u32,
    } = 3,
    /// Implemented priority bits outside 4..=8.
    #[error("{bits} priority bits; 4..=8 supported")]
    PriorityBits {
        /// The requested number.
        bits: u8,
    } = 4,
    /// LPI interrupt ID bits outside 14..=24 (LPIs start at 8192, 14 bits).
    #[error("{bits} LPI ID bits; 14..=24 supported")]
    LpiIdBits {
        /// The requested number.
        bits: u8,
    } = 5,
    /// No such vCPU in this VM.
    #[error("no vCPU {vcpu}")]
    NoSuchVcpu {
        /// The index.
        vcpu: u32,
    } = 6,
    /// The vCPU is already attached to its `VgicCpu`.
    #[error("vCPU {vcpu} is already attached")]
    AlreadyAttached {
        /// The index.
        vcpu: u32,
    } = 7,
    /// The vCPU has not been attached yet.
    #[error("vCPU {vcpu} is not attached")]
    NotAttached {
        /// The index.
        vcpu: u32,
    } = 8,
    /// The `VgicCpu` cannot hold the 32 private interrupts plus every SPI.
    #[error("a VgicCpu of {capacity} entries cannot hold {needed} interrupts")]
    VcpuTableTooSmall {
        /// The table's capacity.
        capacity: u32,
        /// 32 + the number of SPIs.
        needed: u32,
    } = 9,
    /// The `VgicCpu` already holds an SPI of the VM's range; SPIs move between vCPUs, so they
    /// are declared with [`crate::Vgic::forward_spi`] instead.
    #[error("the VgicCpu already holds SPI {intid}")]
    SpiInVcpuTable {
        /// The INTID.
        intid: u32,
    } = 10,
    /// The address is not in the distributor or a redistributor of this VM.
    #[error("{ipa:#x} is not in the emulated GIC frames")]
    NotVgicAddress {
        /// The address.
        ipa: u64,
    } = 11,
    /// The effects buffer was not applied and cleared since the last call.
    #[error("{pending} effects not yet applied")]
    EffectsNotDrained {
        /// How many effects it holds.
        pending: u32,
    } = 12,
    /// Not an SPI of this VM.
    #[error("INTID {intid} is not an SPI of this VM")]
    NotAnSpi {
        /// The INTID.
        intid: u32,
    } = 13,
    /// Not an SGI or PPI (0..=31).
    #[error("INTID {intid} is not an SGI or PPI")]
    NotPrivate {
        /// The INTID.
        intid: u32,
    } = 14,
    /// The SPI is forwarded: its line comes from the physical GIC, or it is already
    /// forwarded.
    #[error("SPI {intid} is forwarded")]
    Forwarded {
        /// The INTID.
        intid: u32,
    } = 15,
    /// The SPI is already in a vCPU's table; forward it before attaching the vCPU it is
    /// routed to.
    #[error("SPI {intid} is already held by a vCPU")]
    SpiHeld {
        /// The INTID.
        intid: u32,
    } = 16,
    /// Another SPI is already forwarded from this physical INTID.
    #[error("pINTID {pintid} already forwards SPI {intid}")]
    PIntIdInUse {
        /// The physical INTID.
        pintid: u32,
        /// The SPI it forwards.
        intid: u32,
    } = 17,
    /// No SPI of this VM is forwarded from this physical INTID.
    #[error("pINTID {pintid} forwards no SPI of this VM")]
    NotForwarded {
        /// The physical INTID.
        pintid: u32,
    } = 18,
    /// The vCPU's interrupt table refused an operation.
    #[error("vCPU interrupt table: {0}")]
    Table(FwdError) = 19,
}

impl From<FwdError> for VgicError {
    fn from(e: FwdError) -> Self {
        Self::Table(e)
    }
}
