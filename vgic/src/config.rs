// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the VM's GIC looks like: frame addresses, vCPU affinities, LPIs, priority bits.

use crate::error::VgicError;
use crate::ids::{Affinity, MAX_VCPUS};

/// Size of the distributor frame and of each redistributor frame.
pub const FRAME_SIZE: u64 = 0x1_0000;
/// The stride between redistributors the guest sees: RD_base + SGI_base (GICv3 layout,
/// GICR_TYPER.VLPIS = 0).
pub const REDIST_STRIDE: u64 = 2 * FRAME_SIZE;

/// LPI support advertised to the guest (for a virtual ITS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LpiConfig {
    /// Interrupt ID bits the VM allows (GICD_TYPER.IDbits + 1), 14..=24: LPIs are INTIDs
    /// 8192 to 2^id_bits - 1.
    pub id_bits: u8,
}

/// The VM's GIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VgicConfig<const VCPUS: usize> {
    /// Guest physical address of the distributor frame (64 KiB, 64 KiB aligned).
    pub gicd_base: u64,
    /// Guest physical address of the first redistributor; vCPU n's RD_base frame is at
    /// `gicr_base + n * 0x20000`, its SGI_base frame 64 KiB above.
    pub gicr_base: u64,
    /// The number of vCPUs, 1..=VCPUS.
    pub nr_vcpus: usize,
    /// Each vCPU's affinity (from the MPIDR_EL1 the guest sees on it). Entries at and beyond
    /// `nr_vcpus` are ignored.
    pub affinities: [Affinity; VCPUS],
    /// LPIs: `None` (the default) reports GICD_TYPER.LPIS = 0 and GICR_TYPER.PLPIS = 0.
    pub lpis: Option<LpiConfig>,
    /// Implemented priority bits, 4..=8: the low 8 - bits bits of every priority are RAZ/WI.
    /// Use the virtual CPU interface's (ICH_VTR_EL2.PRIbits + 1; 5 on QEMU).
    pub priority_bits: u8,
    /// GICD_IIDR and GICR_IIDR. 0 by default: no implementer is claimed, so no guest
    /// erratum workaround keyed on IIDR applies.
    pub iidr: u32,
}

impl<const VCPUS: usize> VgicConfig<VCPUS> {
    /// `nr_vcpus` vCPUs with affinities 0.0.0.0, 0.0.0.1, ... (Aff0 = index), no LPIs,
    /// 5 priority bits, IIDR 0.
    pub const fn new(gicd_base: u64, gicr_base: u64, nr_vcpus: usize) -> Self {
        let mut affinities = [Affinity::new(0, 0, 0, 0); VCPUS];
        let mut i = 0;
        while i < VCPUS {
            affinities[i] = Affinity::new(0, 0, 0, i as u8);
            i += 1;
        }
        Self {
            gicd_base,
            gicr_base,
            nr_vcpus,
            affinities,
            lpis: None,
            priority_bits: 5,
            iidr: 0,
        }
    }

    /// Sets vCPU `index`'s affinity (ignored for an index beyond `VCPUS`).
    pub const fn with_affinity(mut self, index: usize, affinity: Affinity) -> Self {
        if index < VCPUS {
            self.affinities[index] = affinity;
        }
        self
    }

    /// Advertises LPIs with `id_bits` interrupt ID bits.
    pub const fn with_lpis(mut self, id_bits: u8) -> Self {
        self.lpis = Some(LpiConfig { id_bits });
        self
    }

    /// Sets the implemented priority bits.
    pub const fn with_priority_bits(mut self, bits: u8) -> Self {
        self.priority_bits = bits;
        self
    }

    /// The size of the redistributor region: `nr_vcpus * 0x20000`.
    pub const fn gicr_size(&self) -> u64 {
        self.nr_vcpus as u64 * REDIST_STRIDE
    }

    /// The mask of implemented priority bits.
    pub(crate) const fn priority_mask(&self) -> u8 {
        0xFF << (8u8.saturating_sub(self.priority_bits) & 7)
    }

    /// Checks the configuration.
    pub(crate) fn check(&self) -> Result<(), VgicError> {
        if self.nr_vcpus == 0 || self.nr_vcpus > VCPUS || VCPUS > MAX_VCPUS {
            return Err(VgicError::VcpuCount {
                requested: u32::try_from(self.nr_vcpus).unwrap_or(u32::MAX),
                capacity: VCPUS.min(MAX_VCPUS) as u32,
            });
        }
        for base in [self.gicd_base, self.gicr_base] {
            if !base.is_multiple_of(FRAME_SIZE) {
                return Err(VgicError::FrameLayout { base });
            }
        }
        let gicd_end = self.gicd_base.checked_add(FRAME_SIZE);
        let gicr_end = self.gicr_base.checked_add(self.gicr_size());
        let (Some(gicd_end), Some(gicr_end)) = (gicd_end, gicr_end) else {
            return Err(VgicError::FrameLayout {
                base: self.gicr_base,
            });
        };
        if self.gicd_base < gicr_end && self.gicr_base < gicd_end {
            return Err(VgicError::FrameLayout {
                base: self.gicr_base,
            });
        }
        let used = &self.affinities[..self.nr_vcpus];
        for (i, a) in used.iter().enumerate() {
            if let Some(j) = used[i + 1..].iter().position(|b| b == a) {
                return Err(VgicError::DuplicateAffinity {
                    first: i as u32,
                    second: (i + 1 + j) as u32,
                });
            }
        }
        if !(4..=8).contains(&self.priority_bits) {
            return Err(VgicError::PriorityBits {
                bits: self.priority_bits,
            });
        }
        if let Some(l) = self.lpis
            && !(14..=24).contains(&l.id_bits)
        {
            return Err(VgicError::LpiIdBits { bits: l.id_bits });
        }
        Ok(())
    }
}
