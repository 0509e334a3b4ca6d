// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the guest gets: memory, vCPUs, command line, initrd, ITS, and which nodes go.

/// A range of guest-physical (= host-physical: stage 2 is the identity) memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemRegion {
    /// The first byte.
    pub base: u64,
    /// The size in bytes.
    pub size: u64,
}

impl MemRegion {
    /// `size` bytes from `base`.
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// The first byte after the region, or `None` when the region wraps past 2^64.
    pub const fn end(&self) -> Option<u64> {
        self.base.checked_add(self.size)
    }

    /// Whether `other` lies wholly inside this region.
    pub const fn contains(&self, other: &MemRegion) -> bool {
        match (self.end(), other.end()) {
            (Some(end), Some(other_end)) => other.base >= self.base && other_end <= end,
            _ => false,
        }
    }
}

/// How the guest calls PSCI (the `method` of the `psci` node).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PsciMethod {
    /// `"smc"`: the hypervisor traps SMC (HCR_EL2.TSC) and answers PSCI itself.
    #[default]
    Smc,
    /// `"hvc"`.
    Hvc,
}

impl PsciMethod {
    /// The property value, NUL included.
    pub(crate) const fn value(self) -> &'static [u8] {
        match self {
            Self::Smc => b"smc\0",
            Self::Hvc => b"hvc\0",
        }
    }
}

/// Which nodes a remove or keep list entry names. A removed node goes with its subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeMatch<'a> {
    /// The node at this full path (`"/pl061@9030000"`).
    Path(&'a str),
    /// Nodes with this name: with a unit address (`"flash@0"`) the full name must match,
    /// without one (`"flash"`) any unit address does.
    Name(&'a str),
    /// Nodes whose `compatible` list holds this string.
    Compatible(&'a str),
}

/// The nodes removed unless the policy's keep list names them: QEMU's platform bus (dynamic
/// sysbus devices), the fw-cfg interface and the flash banks. Virtio-mmio transports are
/// removed too, except those [`GuestPolicy::virtio_mmio_kept`] lists.
pub const REMOVED_BY_DEFAULT: [NodeMatch<'static>; 3] = [
    NodeMatch::Compatible("qemu,platform"),
    NodeMatch::Compatible("qemu,fw-cfg-mmio"),
    NodeMatch::Compatible("cfi-flash"),
];

/// What the guest's device tree gives the guest. Built with [`GuestPolicy::new`] and the
/// `with_*` methods.
///
/// Addresses are those of the host tree: memory and the initrd in the root's address space,
/// the redistributor base in the GIC's parent's (the root too on QEMU `virt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuestPolicy<'a> {
    /// The guest's memory: sorted, disjoint, each inside the host's memory (the host's
    /// memory minus the hypervisor's own, see [`guest_memory`](crate::guest_memory)).
    pub memory: &'a [MemRegion],
    /// The vCPU count: the first this many CPU nodes of `/cpus` stay, the rest and their
    /// cpu-map entries go.
    pub vcpus: usize,
    /// `/chosen/bootargs`; `None` removes the host's.
    pub bootargs: Option<&'a str>,
    /// `/chosen/linux,initrd-start` and `-end`; `None` removes the host's.
    pub initrd: Option<MemRegion>,
    /// Whether the guest sees the ITS. Without it the ITS nodes go, and every msi-map and
    /// msi-parent entry naming them, so PCI devices fall back to INTx.
    pub its: bool,
    /// Where the guest's redistributor region starts; `None` keeps the host's first region's
    /// base. The region is vCPUs x 128 KiB: 2 frames each, GICR_TYPER.VLPIS = 0.
    pub redistributor_base: Option<u64>,
    /// The PSCI conduit written to the `psci` node.
    pub psci_method: PsciMethod,
    /// The virtio-mmio transports (by `reg` address) the guest keeps; the others go.
    pub virtio_mmio_kept: &'a [u64],
    /// Nodes removed on top of [`REMOVED_BY_DEFAULT`].
    pub remove: &'a [NodeMatch<'a>],
    /// Nodes kept although [`REMOVED_BY_DEFAULT`] or `remove` name them.
    pub keep: &'a [NodeMatch<'a>],
}

impl<'a> GuestPolicy<'a> {
    /// A guest with `memory` and `vcpus` vCPUs: no bootargs, no initrd, no ITS, the host's
    /// redistributor base, PSCI through SMC, no virtio-mmio, and the default removals only.
    pub const fn new(memory: &'a [MemRegion], vcpus: usize) -> Self {
        Self {
            memory,
            vcpus,
            bootargs: None,
            initrd: None,
            its: false,
            redistributor_base: None,
            psci_method: PsciMethod::Smc,
            virtio_mmio_kept: &[],
            remove: &[],
            keep: &[],
        }
    }

    /// With this kernel command line.
    #[must_use]
    pub const fn with_bootargs(mut self, bootargs: &'a str) -> Self {
        self.bootargs = Some(bootargs);
        self
    }

    /// With an initrd at `initrd`.
    #[must_use]
    pub const fn with_initrd(mut self, initrd: MemRegion) -> Self {
        self.initrd = Some(initrd);
        self
    }

    /// With or without the ITS.
    #[must_use]
    pub const fn with_its(mut self, its: bool) -> Self {
        self.its = its;
        self
    }

    /// With the redistributor region at `base`.
    #[must_use]
    pub const fn with_redistributor_base(mut self, base: u64) -> Self {
        self.redistributor_base = Some(base);
        self
    }

    /// With this PSCI conduit.
    #[must_use]
    pub const fn with_psci_method(mut self, method: PsciMethod) -> Self {
        self.psci_method = method;
        self
    }

    /// Keeping the virtio-mmio transports at these addresses.
    #[must_use]
    pub const fn with_virtio_mmio_kept(mut self, bases: &'a [u64]) -> Self {
        self.virtio_mmio_kept = bases;
        self
    }

    /// Removing these nodes too.
    #[must_use]
    pub const fn with_remove(mut self, remove: &'a [NodeMatch<'a>]) -> Self {
        self.remove = remove;
        self
    }

    /// Keeping these nodes although a removal names them.
    #[must_use]
    pub const fn with_keep(mut self, keep: &'a [NodeMatch<'a>]) -> Self {
        self.keep = keep;
        self
    }
}
