// SPDX-License-Identifier: MIT OR Apache-2.0
//! The crate's error type.

/// Everything that can go wrong in `fwd-irq`.
///
/// Every variant carries the offending value. The type is `Copy + Eq` so that a hypervisor can
/// store it, compare it in tests, and pass it across a hypercall boundary (the discriminants
/// are explicit and stable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[repr(u32)]
pub enum FwdError {
    /// A virtual INTID outside SGI/PPI/SPI range 0..=1019.
    #[error("vINTID {raw} is not an SGI, PPI or SPI (0..=1019)")]
    VIntIdOutOfRange {
        /// The rejected value.
        raw: u32,
    } = 1,
    /// A physical INTID outside the PPI/SPI range 16..=1019.
    #[error("pINTID {raw} is not a PPI or SPI (16..=1019)")]
    PIntIdOutOfRange {
        /// The rejected value.
        raw: u32,
    } = 2,
    /// A list-register index beyond the 16 the architecture allows or the number implemented.
    #[error("list register {index} out of range: {nr_lrs} implemented")]
    LrIndexOutOfRange {
        /// The rejected index.
        index: u32,
        /// How many list registers there are (at most 16).
        nr_lrs: u32,
    } = 3,
    /// An active-priorities register index beyond 3.
    #[error("active-priorities register {index} out of range (0..=3)")]
    ApIndexOutOfRange {
        /// The rejected index.
        index: u32,
    } = 4,
    /// ICH_VTR_EL2.ListRegs reported more list registers than the architecture allows.
    #[error("ICH_VTR_EL2.ListRegs reports {reported} list registers; at most 16 exist")]
    TooManyListRegs {
        /// ListRegs + 1 as read.
        reported: u32,
    } = 5,
    /// The per-vCPU interrupt table has no free slot.
    #[error("interrupt table full ({capacity} entries)")]
    TableFull {
        /// The table's capacity.
        capacity: u32,
    } = 6,
    /// The vINTID is already in the table.
    #[error("vINTID {vintid} is already configured")]
    AlreadyConfigured {
        /// The vINTID.
        vintid: u32,
    } = 7,
    /// Another vINTID of this vCPU is already forwarded from this pINTID.
    #[error("pINTID {pintid} is already forwarded to vINTID {vintid}")]
    PIntIdInUse {
        /// The physical INTID.
        pintid: u32,
        /// The vINTID it is forwarded to.
        vintid: u32,
    } = 8,
    /// The vINTID is not in the table.
    #[error("vINTID {vintid} is not configured")]
    NotConfigured {
        /// The vINTID.
        vintid: u32,
    } = 9,
    /// No vINTID of this vCPU is forwarded from this physical INTID.
    #[error("pINTID {pintid} is not forwarded to this vCPU")]
    NotForwarded {
        /// The physical INTID.
        pintid: u32,
    } = 10,
    /// The operation needs a forwarded (mapped) interrupt but the vINTID is purely virtual.
    #[error("vINTID {vintid} is not a forwarded interrupt")]
    NotMapped {
        /// The vINTID.
        vintid: u32,
    } = 11,
    /// Not an LPI INTID (8192 and above).
    #[error("vINTID {raw} is not an LPI (8192 and above)")]
    NotAnLpi {
        /// The rejected value.
        raw: u32,
    } = 12,
}
