// SPDX-License-Identifier: MIT OR Apache-2.0
//! vCPU identifiers, affinities and sets of vCPUs.
//!
//! A vCPU is named by its index in the VM ([`VcpuId`]): the position of its redistributor in
//! the guest's GICR region and its GICR_TYPER.Processor_Number. The guest names PEs by
//! affinity ([`Affinity`], from the vCPU's MPIDR_EL1 as the hypervisor presents it through
//! VMPIDR_EL2) in GICD_IROUTER, GICR_TYPER and ICC_SGI1R_EL1 (Arm IHI 0069, "Affinity
//! routing").

use core::fmt;

/// The largest number of vCPUs a [`crate::Vgic`] can have: sets of vCPUs are 64-bit masks.
pub const MAX_VCPUS: usize = 64;

/// A vCPU of the VM, by index (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VcpuId(u8);

impl VcpuId {
    /// The vCPU with index `index`. Whether it exists is checked by the [`crate::Vgic`] call
    /// that receives it.
    pub const fn new(index: u8) -> Self {
        Self(index)
    }

    /// The index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for VcpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vcpu{}", self.0)
    }
}

/// A PE's affinity: Aff3.Aff2.Aff1.Aff0 (MPIDR_EL1 bits \[39:32\], \[23:16\], \[15:8\],
/// \[7:0\]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Affinity {
    /// (Aff3) Affinity level 3.
    pub aff3: u8,
    /// (Aff2) Affinity level 2.
    pub aff2: u8,
    /// (Aff1) Affinity level 1.
    pub aff1: u8,
    /// (Aff0) Affinity level 0.
    pub aff0: u8,
}

impl Affinity {
    /// Aff3.Aff2.Aff1.Aff0.
    pub const fn new(aff3: u8, aff2: u8, aff1: u8, aff0: u8) -> Self {
        Self {
            aff3,
            aff2,
            aff1,
            aff0,
        }
    }

    /// The affinity fields of an MPIDR_EL1 value (the other bits are ignored).
    pub const fn from_mpidr(mpidr: u64) -> Self {
        Self {
            aff3: (mpidr >> 32) as u8,
            aff2: (mpidr >> 16) as u8,
            aff1: (mpidr >> 8) as u8,
            aff0: mpidr as u8,
        }
    }

    /// The affinity fields placed as in MPIDR_EL1 and GICD_IROUTER (Aff3 at \[39:32\]).
    pub const fn to_mpidr(self) -> u64 {
        ((self.aff3 as u64) << 32)
            | ((self.aff2 as u64) << 16)
            | ((self.aff1 as u64) << 8)
            | self.aff0 as u64
    }

    /// The packed form GICR_TYPER.Affinity uses (bits \[63:32\]): Aff3 at \[31:24\], Aff2
    /// at \[23:16\], Aff1 at \[15:8\], Aff0 at \[7:0\].
    pub const fn to_packed(self) -> u32 {
        ((self.aff3 as u32) << 24)
            | ((self.aff2 as u32) << 16)
            | ((self.aff1 as u32) << 8)
            | self.aff0 as u32
    }
}

impl fmt::Display for Affinity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}.{}", self.aff3, self.aff2, self.aff1, self.aff0)
    }
}

/// A set of vCPUs (indices below [`MAX_VCPUS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct VcpuSet(u64);

impl VcpuSet {
    /// The empty set.
    pub const EMPTY: Self = Self(0);

    /// The set whose bit `n` stands for vCPU `n`.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The bit mask.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Adds `vcpu` (ignored if its index is 64 or more).
    pub fn insert(&mut self, vcpu: VcpuId) {
        if vcpu.index() < MAX_VCPUS {
            self.0 |= 1 << vcpu.index();
        }
    }

    /// Whether `vcpu` is in the set.
    pub const fn contains(self, vcpu: VcpuId) -> bool {
        vcpu.index() < MAX_VCPUS && self.0 & (1 << vcpu.index()) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The number of vCPUs in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The vCPUs, in index order.
    pub fn iter(self) -> impl Iterator<Item = VcpuId> {
        (0..MAX_VCPUS as u8)
            .map(VcpuId)
            .filter(move |v| self.contains(*v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_field_positions() {
        let a = Affinity::from_mpidr(0x0000_00AB_80CD_EF12 | (1 << 31));
        assert_eq!(a, Affinity::new(0xAB, 0xCD, 0xEF, 0x12));
        assert_eq!(a.to_mpidr(), 0xAB_00CD_EF12);
        assert_eq!(a.to_packed(), 0xABCD_EF12);
        assert_eq!(std::format!("{a}"), "171.205.239.18");
    }

    #[test]
    fn vcpu_sets() {
        let mut s = VcpuSet::EMPTY;
        assert!(s.is_empty());
        s.insert(VcpuId::new(3));
        s.insert(VcpuId::new(0));
        s.insert(VcpuId::new(63));
        s.insert(VcpuId::new(64));
        assert_eq!(s.len(), 3);
        assert!(s.contains(VcpuId::new(63)) && !s.contains(VcpuId::new(64)));
        let v: std::vec::Vec<usize> = s.iter().map(VcpuId::index).collect();
        assert_eq!(v, [0, 3, 63]);
        assert_eq!(s.bits(), (1 << 63) | 0b1001);
    }
}
