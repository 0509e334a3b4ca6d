// SPDX-License-Identifier: MIT OR Apache-2.0
//! vPE residency as a typed state machine that computes register values and performs no I/O.
//!
//! A vPE is resident on at most one redistributor at a time (Arm IHI 0069, "Scheduling a
//! vPE"). Making it resident writes GICR_VPROPBASER then GICR_VPENDBASER with Valid; making it
//! non-resident clears Valid, waits for Dirty to clear (when GICR_TYPER.Dirty says it exists),
//! and reads PendingLast. The two layouts of GICR_VPENDBASER differ:
//! - GICv4.0 names the vPE by its virtual pending table's address; PendingLast is written 1
//!   on schedule (Linux always does: "pending_last is only an indication") and IDAI restores
//!   what the redistributor reported at the last deschedule;
//! - GICv4.1 names it by vPE ID and carries vGrp0En/vGrp1En; the doorbell request (DB) is made
//!   when descheduling.

use its_core::addr::{Addr4K, VptAddr};
use its_core::ids::VpeId;
use its_core::regs::{GicrVpendbaser, GicrVpendbaserV41, GicrVpropbaser, MemAttrs};

/// Where a vPE is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Residency {
    /// Not resident. `pending_last`: the redistributor reported a pending vLPI at the last
    /// deschedule (or the doorbell rang since).
    NonResident {
        /// PendingLast seen when it was descheduled.
        pending_last: bool,
        /// IDAI seen when it was descheduled (GICv4.0).
        idai: bool,
    },
    /// Resident on this CPU's redistributor.
    Resident {
        /// The CPU.
        cpu: usize,
    },
}

impl Default for Residency {
    fn default() -> Self {
        // A new vPE: its VPT is empty; IDAI set as Linux does for a fresh vPE.
        Self::NonResident {
            pending_last: false,
            idai: true,
        }
    }
}

/// A transition that is not allowed from the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Transition {
    /// Already resident (on `cpu`).
    AlreadyResident {
        /// Where.
        cpu: usize,
    },
    /// Not resident.
    NotResident,
}

/// The register values to make a GICv4.0 vPE resident, in the order to write them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleV40 {
    /// GICR_VPROPBASER: the VM's vLPI configuration table and its INTID bits.
    pub vpropbaser: GicrVpropbaser,
    /// GICR_VPENDBASER: the vPE's VPT, PendingLast, IDAI and Valid.
    pub vpendbaser: GicrVpendbaser,
}

impl Residency {
    /// Whether the vPE is resident.
    pub fn is_resident(&self) -> bool {
        matches!(self, Self::Resident { .. })
    }

    /// The values that make a GICv4.0 vPE resident: `prop` is the VM's configuration table,
    /// `id_bits` its vINTID bits, `vpt` the vPE's pending table.
    ///
    /// # Errors
    /// [`Transition::AlreadyResident`].
    pub fn schedule_v40(
        &self,
        prop: Addr4K,
        id_bits: u8,
        vpt: VptAddr,
        attrs: MemAttrs,
    ) -> Result<ScheduleV40, Transition> {
        let idai = match *self {
            Self::Resident { cpu } => return Err(Transition::AlreadyResident { cpu }),
            Self::NonResident { idai, .. } => idai,
        };
        Ok(ScheduleV40 {
            vpropbaser: GicrVpropbaser::new()
                .with_addr(prop)
                .with_id_bits(id_bits.clamp(1, 32) - 1)
                .with_attrs(attrs),
            vpendbaser: GicrVpendbaser::new()
                .with_addr(vpt)
                .with_attrs(attrs)
                .with_pending_last(true)
                .with_idai(idai)
                .with_valid(true),
        })
    }

    /// The GICR_VPENDBASER value that makes a GICv4.1 vPE resident.
    ///
    /// # Errors
    /// [`Transition::AlreadyResident`].
    pub fn schedule_v41(
        &self,
        vpe: VpeId,
        group0: bool,
        group1: bool,
    ) -> Result<GicrVpendbaserV41, Transition> {
        match *self {
            Self::Resident { cpu } => Err(Transition::AlreadyResident { cpu }),
            Self::NonResident { pending_last, .. } => Ok(GicrVpendbaserV41::new()
                .with_vpe_id(vpe.get())
                .with_vgrp0en(group0)
                .with_vgrp1en(group1)
                .with_pending_last(pending_last)
                .with_valid(true)),
        }
    }

    /// Records that the vPE is now resident on `cpu`.
    ///
    /// # Errors
    /// [`Transition::AlreadyResident`].
    pub fn scheduled(&mut self, cpu: usize) -> Result<(), Transition> {
        if let Self::Resident { cpu } = *self {
            return Err(Transition::AlreadyResident { cpu });
        }
        *self = Self::Resident { cpu };
        Ok(())
    }

    /// The GICR_VPENDBASER value that makes a GICv4.0 vPE non-resident, from the current
    /// value: Valid, PendingLast and IDAI cleared, the rest kept.
    ///
    /// # Errors
    /// [`Transition::NotResident`].
    pub fn deschedule_v40(&self, current: GicrVpendbaser) -> Result<GicrVpendbaser, Transition> {
        if !self.is_resident() {
            return Err(Transition::NotResident);
        }
        Ok(current
            .with_valid(false)
            .with_pending_last(false)
            .with_idai(false)
            .with_dirty(false))
    }

    /// The GICR_VPENDBASER value that makes a GICv4.1 vPE non-resident: Valid cleared; with
    /// `doorbell`, Doorbell set and PendingLast clear (the redistributor then reports whether
    /// a vLPI is pending, and rings the default doorbell for a later one); without,
    /// PendingLast set: the vPE will be back, the redistributor need not look (Linux's
    /// choice).
    ///
    /// # Errors
    /// [`Transition::NotResident`].
    pub fn deschedule_v41(
        &self,
        vpe: VpeId,
        doorbell: bool,
    ) -> Result<GicrVpendbaserV41, Transition> {
        if !self.is_resident() {
            return Err(Transition::NotResident);
        }
        Ok(GicrVpendbaserV41::new()
            .with_vpe_id(vpe.get())
            .with_pending_last(!doorbell)
            .with_doorbell(doorbell))
    }

    /// Records that the vPE is non-resident, with what the redistributor reported. Returns the
    /// CPU it left.
    ///
    /// # Errors
    /// [`Transition::NotResident`].
    pub fn descheduled(&mut self, pending_last: bool, idai: bool) -> Result<usize, Transition> {
        let Self::Resident { cpu } = *self else {
            return Err(Transition::NotResident);
        };
        *self = Self::NonResident { pending_last, idai };
        Ok(cpu)
    }

    /// A doorbell rang: there is a vLPI pending (meaningful while not resident).
    pub fn doorbell_rang(&mut self) {
        if let Self::NonResident { pending_last, .. } = self {
            *pending_last = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use its_core::addr::PhysAddr;

    fn prop() -> Addr4K {
        Addr4K::new(PhysAddr::new(0x4100_0000)).unwrap()
    }
    fn vpt() -> VptAddr {
        VptAddr::new(PhysAddr::new(0x4101_0000)).unwrap()
    }

    #[test]
    fn v40_schedule_values_match_linux() {
        let r = Residency::default();
        let s = r.schedule_v40(prop(), 16, vpt(), MemAttrs::CACHED).unwrap();
        // IDbits = 15, inner shareable, RaWaWb.
        assert_eq!(u64::from(s.vpropbaser), 0x4100_0000 | 15 | 7 << 7 | 1 << 10);
        // PendingLast | IDAI (fresh vPE) | Valid.
        assert_eq!(
            u64::from(s.vpendbaser),
            0xe000_0000_4101_0000 | 7 << 7 | 1 << 10
        );
    }

    #[test]
    fn state_machine() {
        let mut r = Residency::default();
        assert_eq!(
            r.deschedule_v40(GicrVpendbaser::new()),
            Err(Transition::NotResident)
        );
        assert_eq!(r.descheduled(false, false), Err(Transition::NotResident));
        r.scheduled(1).unwrap();
        assert_eq!(r.scheduled(0), Err(Transition::AlreadyResident { cpu: 1 }));
        assert!(r.schedule_v40(prop(), 16, vpt(), MemAttrs::CACHED).is_err());
        let cur = GicrVpendbaser::from(0xe000_0000_4101_0000 | 1 << 60);
        let d = r.deschedule_v40(cur).unwrap();
        assert_eq!(u64::from(d), 0x4101_0000, "only the address is kept");
        assert_eq!(r.descheduled(true, false), Ok(1));
        assert_eq!(
            r,
            Residency::NonResident {
                pending_last: true,
                idai: false
            }
        );
        // IDAI reported at deschedule is written back at the next schedule.
        let s = r.schedule_v40(prop(), 16, vpt(), MemAttrs::CACHED).unwrap();
        assert!(!s.vpendbaser.idai());
    }

    #[test]
    fn v41_values() {
        let mut r = Residency::default();
        let v = r.schedule_v41(VpeId::new(0x12), false, true).unwrap();
        assert_eq!(u64::from(v), 1 << 63 | 1 << 58 | 0x12);
        r.scheduled(0).unwrap();
        let d = r.deschedule_v41(VpeId::new(0x12), true).unwrap();
        assert_eq!(u64::from(d), 1 << 62 | 0x12);
        let d = r.deschedule_v41(VpeId::new(0x12), false).unwrap();
        assert_eq!(u64::from(d), 1 << 61 | 0x12, "PendingLast, no doorbell");
        r.descheduled(false, false).unwrap();
        r.doorbell_rang();
        assert_eq!(
            r,
            Residency::NonResident {
                pending_last: true,
                idai: false
            }
        );
    }
}
