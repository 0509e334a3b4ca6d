// SPDX-License-Identifier: MIT OR Apache-2.0
//! Why a guest device tree could not be derived.

/// Why [`derive()`](fn@crate::derive) refused a host tree or a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The host blob is not a valid flattened device tree.
    #[error("not a valid flattened device tree: {reason}")]
    InvalidBlob {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The host tree nests deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    #[error("the device tree nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A node the guest needs is not in the host tree.
    #[error("the host tree has no {node} node")]
    MissingNode {
        /// Which (`"arm,gic-v3"`, `"/cpus"`, `"/memory"`).
        node: &'static str,
    },
    /// A property of the host tree has a value this crate cannot use.
    #[error("malformed {property} in the host tree")]
    MalformedProperty {
        /// The property.
        property: &'static str,
    },
    /// A value does not fit the cells the tree gives it (an address above 4 GiB with
    /// `#address-cells = <1>`).
    #[error("{value:#x} does not fit in {cells} cell(s)")]
    DoesNotFit {
        /// The value.
        value: u64,
        /// The number of 32-bit cells.
        cells: u32,
    },
    /// The policy gives no guest memory.
    #[error("the policy gives the guest no memory")]
    NoMemory,
    /// A guest memory range is empty, wraps, or is not above the previous one (ranges must be
    /// sorted and disjoint).
    #[error("bad guest memory range {base:#x}+{size:#x}")]
    BadMemoryRange {
        /// Its base.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// A guest memory range is not inside the host's memory.
    #[error("guest memory {base:#x}+{size:#x} is not host memory")]
    MemoryOutsideHost {
        /// Its base.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// The initrd is empty, wraps, or is not inside one guest memory range.
    #[error("initrd {base:#x}+{size:#x} is not inside guest memory")]
    InitrdOutsideMemory {
        /// Its base.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// The policy asks for no vCPU, or more than the host tree has CPU nodes.
    #[error("{requested} vCPUs asked, the host tree has {available} CPUs")]
    VcpuCount {
        /// The policy's vCPU count.
        requested: usize,
        /// The host tree's CPU nodes.
        available: usize,
    },
    /// The guest's redistributors do not fit in the host's first redistributor region (when
    /// the policy does not place them itself).
    #[error("{needed:#x} bytes of redistributors, the host region has {available:#x}")]
    RedistributorRegionTooSmall {
        /// vCPUs x 128 KiB.
        needed: u64,
        /// The host region's size.
        available: u64,
    },
    /// The policy's remove list names a node the guest cannot do without (the root,
    /// `/cpus`, a CPU, a memory node, the GIC, `/chosen`).
    #[error("the remove list names the required node {node}")]
    RemovesRequired {
        /// Which.
        node: &'static str,
    },
    /// A node the guest keeps refers by phandle to a node that is removed.
    #[error("a kept node refers to phandle {phandle:#x}, whose node is removed")]
    DanglingReference {
        /// The phandle.
        phandle: u32,
    },
    /// `bootargs` contains a NUL byte.
    #[error("bootargs contain a NUL byte")]
    InvalidBootargs,
    /// The tree writer refused the result.
    #[error("writing the guest tree: {0}")]
    Write(WriteError),
}

/// Why the tree writer refused the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A node name the writer does not accept (its first character must be a letter).
    #[error("invalid node name")]
    InvalidNodeName,
    /// A property name the writer does not accept.
    #[error("invalid property name")]
    InvalidPropertyName,
    /// A size or offset does not fit in 32 bits.
    #[error("the tree is larger than 4 GiB")]
    TooLarge,
    /// Memory reservations that overlap, or are empty.
    #[error("invalid memory reservation")]
    MemoryReservation,
    /// Any other refusal (node nesting, string content).
    #[error("refused by the writer")]
    Other,
}

impl From<vm_fdt::Error> for Error {
    fn from(e: vm_fdt::Error) -> Self {
        use vm_fdt::Error as E;
        Self::Write(match e {
            E::InvalidNodeName => WriteError::InvalidNodeName,
            E::InvalidPropertyName => WriteError::InvalidPropertyName,
            E::PropertyValueTooLarge | E::TotalSizeTooLarge => WriteError::TooLarge,
            E::InvalidMemoryReservation | E::OverlappingMemoryReservations => {
                WriteError::MemoryReservation
            }
            _ => WriteError::Other,
        })
    }
}
