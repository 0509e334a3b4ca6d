// SPDX-License-Identifier: MIT OR Apache-2.0
//! Capabilities probed from GITS_TYPER, GICR_TYPER and GICD_TYPER, and the checks of IDs
//! against them.
//!
//! A driver probes these once and refuses any ID beyond them before it writes a command: the
//! ITS would otherwise drop the command silently (QEMU) or do worse (real hardware).
//!
//! ```
//! use its_core::caps::ItsCaps;
//! use its_core::ids::DeviceId;
//! use its_core::regs::GitsTyper;
//!
//! // QEMU's GITS_TYPER: 16-bit DeviceIDs and EventIDs, processor-number RDbase, GICv4.0.
//! let caps = ItsCaps::from_typer(GitsTyper::from(0x0000_003f_0001_efb3));
//! assert_eq!(caps.device_id_bits, 16);
//! assert!(caps.check_device(DeviceId::new(0xffff)).is_ok());
//! assert!(caps.check_device(DeviceId::new(0x1_0000)).is_err());
//! ```

use crate::addr::{AddrError, PhysAddr};
use crate::cmd::ItsVersion;
use crate::ids::{
    CollectionId, DeviceId, EventId, IdError, IdKind, ProcessorNumber, RdBase, VpeId,
};
use crate::regs::{GicdTyper, GicdTyper2, GicrTyper, GitsTyper};

/// What one ITS supports (GITS_TYPER).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ItsCaps {
    /// The command set and layouts: V3 without `Virtual`, V4_1 with `VMAPP`, else V4_0.
    pub version: ItsVersion,
    /// (Physical) Physical LPIs.
    pub physical: bool,
    /// Bytes per ITT entry (ITT_entry_size + 1).
    pub itt_entry_bytes: u8,
    /// EventID bits (IDbits + 1).
    pub event_id_bits: u8,
    /// DeviceID bits (Devbits + 1).
    pub device_id_bits: u8,
    /// Collection ID bits (CIDbits + 1 when CIL = 1, else 16).
    pub collection_id_bits: u8,
    /// vPE ID bits: 16 in GICv4.0; GICD_TYPER2.VID + 1 in GICv4.1 when VIL (see
    /// [`ItsCaps::with_dist`]).
    pub vpe_id_bits: u8,
    /// vINTID bits a VPT may cover: the smaller of EventID bits and the distributor's IDbits
    /// (QEMU refuses a VMAPP VPT_size above GITS_TYPER.IDbits).
    pub vintid_bits: u8,
    /// (SEIS) Locally generated system errors.
    pub seis: bool,
    /// (PTA) RDbase fields hold physical addresses rather than processor numbers.
    pub pta: bool,
    /// (HCC) Collections the ITS holds without a table.
    pub hcc: u8,
    /// (VMOVP) A single VMOVP to one ITS moves a vPE; otherwise VMOVP goes to every ITS with
    /// an ITSList and sequence number.
    pub single_vmovp: bool,
    /// (VSGI) GICv4.1 vSGI injection.
    pub vsgi: bool,
    /// (SVPET) GICv4.1 vPE table sharing.
    pub svpet: u8,
    /// (nID) GICv4.1: individual doorbells not supported.
    pub no_individual_doorbells: bool,
}

impl ItsCaps {
    /// Parses GITS_TYPER.
    pub const fn from_typer(t: GitsTyper) -> Self {
        let version = if !t.virtual_lpis() {
            ItsVersion::V3
        } else if t.vmapp() {
            ItsVersion::V4_1
        } else {
            ItsVersion::V4_0
        };
        Self {
            version,
            physical: t.physical(),
            itt_entry_bytes: t.itt_entry_size() + 1,
            event_id_bits: t.id_bits() + 1,
            device_id_bits: t.dev_bits() + 1,
            collection_id_bits: if t.cil() { t.cid_bits() + 1 } else { 16 },
            vpe_id_bits: 16,
            vintid_bits: t.id_bits() + 1,
            seis: t.seis(),
            pta: t.pta(),
            hcc: t.hcc(),
            single_vmovp: t.vmovp(),
            vsgi: t.vsgi(),
            svpet: t.svpet(),
            no_individual_doorbells: t.nid(),
        }
    }

    /// Narrows vINTID and vPE ID widths with what the distributor reports.
    pub const fn with_dist(mut self, d: &DistCaps) -> Self {
        if d.id_bits < self.vintid_bits {
            self.vintid_bits = d.id_bits;
        }
        if let (Some(v), ItsVersion::V4_1) = (d.vpe_id_bits, self.version) {
            self.vpe_id_bits = v;
        }
        self
    }

    /// Whether the ITS implements the GICv4 virtual commands.
    pub const fn is_v4(&self) -> bool {
        !matches!(self.version, ItsVersion::V3)
    }

    const fn check(kind: IdKind, value: u64, bits: u8) -> Result<(), IdError> {
        if bits < 64 && value >> bits != 0 {
            Err(IdError::TooLarge {
                kind,
                value,
                limit: 1u64 << bits,
            })
        } else {
            Ok(())
        }
    }

    /// Checks a DeviceID against Devbits.
    ///
    /// # Errors
    /// [`IdError::TooLarge`].
    pub const fn check_device(&self, d: DeviceId) -> Result<(), IdError> {
        Self::check(IdKind::Device, d.get() as u64, self.device_id_bits)
    }

    /// Checks an EventID against IDbits.
    ///
    /// # Errors
    /// [`IdError::TooLarge`].
    pub const fn check_event(&self, e: EventId) -> Result<(), IdError> {
        Self::check(IdKind::Event, e.get() as u64, self.event_id_bits)
    }

    /// Checks a collection ID against CIDbits.
    ///
    /// # Errors
    /// [`IdError::TooLarge`].
    pub const fn check_collection(&self, c: CollectionId) -> Result<(), IdError> {
        Self::check(IdKind::Collection, c.get() as u64, self.collection_id_bits)
    }

    /// Checks a vPE ID against the vPE ID width.
    ///
    /// # Errors
    /// [`IdError::TooLarge`].
    pub const fn check_vpe(&self, v: VpeId) -> Result<(), IdError> {
        Self::check(IdKind::Vpe, v.get() as u64, self.vpe_id_bits)
    }

    /// A checked DeviceID.
    ///
    /// # Errors
    /// [`IdError::TooLarge`].
    pub const fn device_id(&self, raw: u32) -> Result<DeviceId, IdError> {
        match self.check_device(DeviceId::new(raw)) {
            Ok(()) => Ok(DeviceId::new(raw)),
            Err(e) => Err(e),
        }
    }

    /// A checked EventID.
    ///
    /// # Errors
    /// [`IdError::TooLarge`].
    pub const fn event_id(&self, raw: u32) -> Result<EventId, IdError> {
        match self.check_event(EventId::new(raw)) {
            Ok(()) => Ok(EventId::new(raw)),
            Err(e) => Err(e),
        }
    }

    /// The RDbase that names a redistributor in this ITS's commands: its physical address
    /// when PTA = 1, its processor number when PTA = 0.
    ///
    /// # Errors
    /// [`AddrError`] when PTA = 1 and `rd_base` is not 64 KiB aligned.
    pub const fn rdbase(&self, rd_base: PhysAddr, rd: &RedistCaps) -> Result<RdBase, AddrError> {
        if self.pta {
            RdBase::from_address(rd_base)
        } else {
            Ok(RdBase::from_processor(rd.processor))
        }
    }
}

/// What one redistributor supports (GICR_TYPER).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RedistCaps {
    /// (PLPIS) Physical LPIs.
    pub plpis: bool,
    /// (VLPIS) Virtual LPIs (GICv4).
    pub vlpis: bool,
    /// (Dirty) GICR_VPENDBASER.Dirty is implemented: poll it.
    pub dirty: bool,
    /// (DirectLPI) GICR_INVLPIR, GICR_INVALLR and GICR_SYNCR exist.
    pub direct_lpi: bool,
    /// (Last) Last redistributor of its region.
    pub last: bool,
    /// (RVPEID) GICv4.1: VPENDBASER names vPEs by ID.
    pub rvpeid: bool,
    /// (VSGI) GICv4.1 vSGIs.
    pub vsgi: bool,
    /// (Processor_Number).
    pub processor: ProcessorNumber,
    /// (CommonLPIAff).
    pub common_lpi_aff: u8,
    /// (Affinity_Value) The PE's MPIDR affinity, Aff3.Aff2.Aff1.Aff0.
    pub affinity: u32,
}

impl RedistCaps {
    /// Parses GICR_TYPER.
    pub const fn from_typer(t: GicrTyper) -> Self {
        Self {
            plpis: t.plpis(),
            vlpis: t.vlpis(),
            dirty: t.dirty(),
            direct_lpi: t.direct_lpi(),
            last: t.last(),
            rvpeid: t.rvpeid(),
            vsgi: t.vsgi(),
            processor: t.processor(),
            common_lpi_aff: t.common_lpi_aff(),
            affinity: t.affinity(),
        }
    }
}

/// What the distributor supports (GICD_TYPER, GICD_TYPER2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DistCaps {
    /// (LPIS) LPIs supported.
    pub lpis: bool,
    /// (DVIS) Direct injection of virtual LPIs (GICv4).
    pub dvis: bool,
    /// INTID bits (IDbits + 1).
    pub id_bits: u8,
    /// (num_LPIs) When non-zero, the number of LPIs is 2^(num_LPIs + 1).
    pub num_lpis: u8,
    /// vPE ID bits from GICD_TYPER2 when VIL = 1 (GICv4.1).
    pub vpe_id_bits: Option<u8>,
}

impl DistCaps {
    /// Parses GICD_TYPER, and GICD_TYPER2 when the GIC has it (GICv4.1).
    pub const fn from_typer(t: GicdTyper, t2: Option<GicdTyper2>) -> Self {
        let vpe_id_bits = match t2 {
            Some(t2) if t2.vil() => Some(t2.vid() + 1),
            _ => None,
        };
        Self {
            lpis: t.lpis(),
            dvis: t.dvis(),
            id_bits: t.id_bits() + 1,
            num_lpis: t.num_lpis(),
            vpe_id_bits,
        }
    }

    /// LPI INTID bits a property table should cover: IDbits, at most `limit` (Linux uses 16).
    pub const fn lpi_id_bits(&self, limit: u8) -> u8 {
        if self.id_bits < limit {
            self.id_bits
        } else {
            limit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu() -> ItsCaps {
        ItsCaps::from_typer(GitsTyper::from(0x0000_003f_0001_efb3))
    }

    #[test]
    fn qemu_its() {
        let c = qemu();
        assert_eq!(c.version, ItsVersion::V4_0);
        assert_eq!(c.itt_entry_bytes, 12);
        assert_eq!(c.event_id_bits, 16);
        assert_eq!(c.device_id_bits, 16);
        assert_eq!(c.collection_id_bits, 16);
        assert_eq!(c.vpe_id_bits, 16);
        assert!(!c.pta);
        assert!(c.single_vmovp);
        assert_eq!(c.hcc, 0);
    }

    #[test]
    fn id_checks() {
        let c = qemu();
        assert!(c.check_event(EventId::new(0xffff)).is_ok());
        assert_eq!(
            c.check_event(EventId::new(0x1_0000)),
            Err(IdError::TooLarge {
                kind: IdKind::Event,
                value: 0x1_0000,
                limit: 0x1_0000
            })
        );
        assert!(c.check_collection(CollectionId::new(0xffff)).is_ok());
        assert!(c.check_vpe(VpeId::new(0xffff)).is_ok());
        let mut narrow = c;
        narrow.collection_id_bits = 4;
        assert!(narrow.check_collection(CollectionId::new(16)).is_err());
        // 32-bit fields never overflow a 32-bit capability.
        let mut wide = c;
        wide.device_id_bits = 32;
        assert!(wide.check_device(DeviceId::new(u32::MAX)).is_ok());
        assert_eq!(c.device_id(0x1_0000).map_err(|_| ()), Err(()));
    }

    #[test]
    fn versions() {
        let v3 = ItsCaps::from_typer(GitsTyper::from(0x0000_003f_0001_efb1));
        assert_eq!(v3.version, ItsVersion::V3);
        assert!(!v3.is_v4());
        let v41 = ItsCaps::from_typer(GitsTyper::from(0x0000_013f_0001_efb3));
        assert_eq!(v41.version, ItsVersion::V4_1);
        let d = DistCaps::from_typer(
            GicdTyper::from(0x037e_0208),
            Some(GicdTyper2::new().with_vil(true).with_vid(11)),
        );
        assert_eq!(v41.with_dist(&d).vpe_id_bits, 12);
        // A GICv4.0 ITS keeps 16-bit vPE IDs whatever GICD_TYPER2 says.
        assert_eq!(qemu().with_dist(&d).vpe_id_bits, 16);
    }

    #[test]
    fn rdbase_per_pta() {
        let rd = RedistCaps::from_typer(GicrTyper::from(0x0000_0001_0100_0113));
        let rd_base = PhysAddr::new(0x080e_0000);
        assert_eq!(qemu().rdbase(rd_base, &rd).map(RdBase::raw), Ok(1));
        let mut pta = qemu();
        pta.pta = true;
        assert_eq!(pta.rdbase(rd_base, &rd).map(RdBase::raw), Ok(0x080e));
        assert!(pta.rdbase(PhysAddr::new(0x080e_1000), &rd).is_err());
    }

    #[test]
    fn dist() {
        let d = DistCaps::from_typer(GicdTyper::from(0x037e_0208), None);
        assert!(d.lpis && d.dvis);
        assert_eq!(d.id_bits, 16);
        assert_eq!(d.lpi_id_bits(16), 16);
        assert_eq!(d.lpi_id_bits(14), 14);
        assert_eq!(d.vpe_id_bits, None);
    }
}
