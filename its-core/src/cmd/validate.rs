// SPDX-License-Identifier: MIT OR Apache-2.0
//! Semantic checks of commands against the probed capabilities.
//!
//! An ITS does not report most command errors: QEMU skips the command and logs it only with
//! `-d guest_errors`; hardware may stall or ignore it. So a driver checks every command with
//! [`Command::validate`] before writing it to the queue.

use super::{Command, ItsVersion, mnemonic_of};
use crate::caps::ItsCaps;
use crate::ids::{IdError, IdKind, IntId, LPI_BASE, RdBase};

/// A command the ITS would reject or treat as UNPREDICTABLE.
///
/// Small enough to return by value (at most 32 bytes): the command is named by its opcode
/// ([`CommandError::mnemonic`]), and the identifier's kind ([`IdError`]) names the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CommandError {
    /// The ITS does not implement this command (or this layout of it).
    #[error("{} needs a {needs:?} ITS; this one is {has:?}", mnemonic_of(*opcode))]
    Unsupported {
        /// The command's opcode.
        opcode: u8,
        /// The version it needs.
        needs: ItsVersion,
        /// The ITS's version.
        has: ItsVersion,
    },
    /// A field holds an ID beyond the capabilities or the architecture.
    #[error("{}: {error}", mnemonic_of(*opcode))]
    Id {
        /// The command's opcode.
        opcode: u8,
        /// What is wrong with the field (its kind names it).
        error: IdError,
    },
    /// With GITS_TYPER.PTA = 0 an RDbase is a processor number, at most 16 bits.
    #[error(
        "{}: RDbase {value:#x} is not a processor number (PTA = 0)",
        mnemonic_of(*opcode)
    )]
    RdBaseNotProcessor {
        /// The command's opcode.
        opcode: u8,
        /// The raw field value.
        value: u64,
    },
}

impl CommandError {
    /// The opcode of the command refused.
    pub const fn opcode(&self) -> u8 {
        match *self {
            Self::Unsupported { opcode, .. }
            | Self::Id { opcode, .. }
            | Self::RdBaseNotProcessor { opcode, .. } => opcode,
        }
    }

    /// The mnemonic of the command refused (`MAPTI`, `VMAPP`, ...).
    pub fn mnemonic(&self) -> &'static str {
        mnemonic_of(self.opcode())
    }
}

impl Command {
    /// Checks this command against what the ITS supports: the command set, ID widths, INTIDs
    /// that must be LPIs, doorbells (1023 or an LPI), VPT sizes and the RDbase form.
    ///
    /// It does not know the driver's state: whether a device is mapped, or an EventID fits
    /// its ITT, is the driver's to check.
    ///
    /// # Errors
    /// The first [`CommandError`] found.
    pub fn validate(&self, caps: &ItsCaps) -> Result<(), CommandError> {
        let opcode = self.opcode();
        if self.min_version() > caps.version
            || (caps.version == ItsVersion::V4_1
                && matches!(self, Command::Vmapp { .. } | Command::Vmovp { .. }))
        {
            return Err(CommandError::Unsupported {
                opcode,
                needs: self.min_version(),
                has: caps.version,
            });
        }
        // `field` names the field where a reader of this function needs it; the error names
        // it by its identifier kind.
        let id = |_field: &'static str, r: Result<(), IdError>| {
            r.map_err(|error| CommandError::Id { opcode, error })
        };
        let lpi = |_field: &'static str, kind: IdKind, v: IntId| {
            if v.is_lpi() {
                Ok(())
            } else {
                Err(CommandError::Id {
                    opcode,
                    error: IdError::TooSmall {
                        kind,
                        value: v.get().into(),
                        min: LPI_BASE.into(),
                    },
                })
            }
        };
        let doorbell = |field: &'static str, v: IntId| {
            if v.is_valid_doorbell() {
                Ok(())
            } else {
                lpi(field, IdKind::Doorbell, v)
            }
        };
        let check_rd = |_field: &'static str, r: RdBase| {
            if caps.pta || r.processor().is_some() {
                Ok(())
            } else {
                Err(CommandError::RdBaseNotProcessor {
                    opcode,
                    value: r.raw(),
                })
            }
        };
        let bits = |_field: &'static str, kind: IdKind, bits: u8, max: u8| {
            if bits <= max {
                Ok(())
            } else {
                Err(CommandError::Id {
                    opcode,
                    error: IdError::TooLarge {
                        kind,
                        value: bits.into(),
                        limit: u64::from(max) + 1,
                    },
                })
            }
        };
        // Every command with DeviceID and EventID fields.
        match *self {
            Command::Movi { device, event, .. }
            | Command::Int { device, event }
            | Command::Clear { device, event }
            | Command::Mapti { device, event, .. }
            | Command::Mapi { device, event, .. }
            | Command::Inv { device, event }
            | Command::Discard { device, event }
            | Command::Vmovi { device, event, .. }
            | Command::Vmapti { device, event, .. }
            | Command::Vmapi { device, event, .. } => {
                id("device", caps.check_device(device))?;
                id("event", caps.check_event(event))?;
            }
            Command::Mapd { device, .. } => id("device", caps.check_device(device))?,
            _ => {}
        }
        match *self {
            Command::Movi { icid, .. }
            | Command::Mapc { icid, .. }
            | Command::Mapi { icid, .. }
            | Command::Invall { icid } => id("icid", caps.check_collection(icid))?,
            Command::Mapti { icid, pintid, .. } => {
                id("icid", caps.check_collection(icid))?;
                lpi("pintid", IdKind::Lpi, pintid)?;
            }
            _ => {}
        }
        match *self {
            Command::Mapi { event, .. } => lpi("event", IdKind::Lpi, IntId::new(event.get()))?,
            Command::Vmapi { event, .. } => lpi("event", IdKind::VLpi, IntId::new(event.get()))?,
            Command::Mapd {
                size, valid: true, ..
            } => {
                bits("size", IdKind::IdBits, size.bits(), caps.event_id_bits)?;
            }
            _ => {}
        }
        match *self {
            Command::Sync { rdbase } | Command::Mapc { rdbase, .. } => check_rd("rdbase", rdbase)?,
            Command::Movall { rdbase1, rdbase2 } => {
                check_rd("rdbase1", rdbase1)?;
                check_rd("rdbase2", rdbase2)?;
            }
            _ => {}
        }
        // Virtual commands: vPE IDs, vINTIDs, doorbells, VPT sizes.
        match *self {
            Command::Vmovi { vpe, db, .. } => {
                id("vpe", caps.check_vpe(vpe))?;
                doorbell("db", db)?;
            }
            Command::Vmovp { vpe, rdbase: r, .. } => {
                id("vpe", caps.check_vpe(vpe))?;
                check_rd("rdbase", r)?;
            }
            Command::VmovpV41 {
                vpe,
                rdbase: r,
                default_db,
                ..
            } => {
                id("vpe", caps.check_vpe(vpe))?;
                check_rd("rdbase", r)?;
                doorbell("default_db", default_db)?;
            }
            Command::Vsgi { vpe, .. }
            | Command::Vsync { vpe }
            | Command::Vinvall { vpe }
            | Command::Invdb { vpe } => id("vpe", caps.check_vpe(vpe))?,
            Command::Vmapp {
                vpe,
                rdbase: r,
                valid,
                vpt_size,
                ..
            } => {
                id("vpe", caps.check_vpe(vpe))?;
                if valid {
                    check_rd("rdbase", r)?;
                    bits(
                        "vpt_size",
                        IdKind::IdBits,
                        vpt_size.bits(),
                        caps.vintid_bits,
                    )?;
                }
            }
            Command::VmappV41 {
                vpe,
                rdbase: r,
                valid,
                vpt_size,
                default_db,
                ..
            } => {
                id("vpe", caps.check_vpe(vpe))?;
                if valid {
                    check_rd("rdbase", r)?;
                    bits(
                        "vpt_size",
                        IdKind::IdBits,
                        vpt_size.saturating_add(1),
                        caps.vintid_bits,
                    )?;
                    doorbell("default_db", default_db)?;
                }
            }
            Command::Vmapti {
                vpe, vintid, db, ..
            } => {
                id("vpe", caps.check_vpe(vpe))?;
                lpi("vintid", IdKind::VLpi, vintid)?;
                doorbell("db", db)?;
            }
            Command::Vmapi { vpe, db, .. } => {
                id("vpe", caps.check_vpe(vpe))?;
                doorbell("db", db)?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{PhysAddr, VptAddr};
    use crate::cmd::IdBits;
    use crate::ids::{CollectionId, DeviceId, EventId, ProcessorNumber, VpeId};
    use crate::regs::GitsTyper;

    fn qemu() -> ItsCaps {
        ItsCaps::from_typer(GitsTyper::from(0x0000_003f_0001_efb3))
    }

    fn mapti(pintid: u32, device: u32, event: u32) -> Command {
        Command::Mapti {
            device: DeviceId::new(device),
            event: EventId::new(event),
            pintid: IntId::new(pintid),
            icid: CollectionId::new(0),
        }
    }

    #[test]
    fn accepts_valid() {
        assert_eq!(mapti(8192, 0xffff, 0xffff).validate(&qemu()), Ok(()));
        let vmapti = Command::Vmapti {
            device: DeviceId::new(1),
            event: EventId::new(2),
            vpe: VpeId::new(3),
            vintid: IntId::new(8192),
            db: IntId::NONE,
        };
        assert_eq!(vmapti.validate(&qemu()), Ok(()));
    }

    #[test]
    fn rejects_non_lpi_and_wide_ids() {
        let c = qemu();
        assert!(matches!(
            mapti(8191, 0, 0).validate(&c),
            Err(CommandError::Id {
                opcode: 0x0a,
                error: IdError::TooSmall {
                    kind: IdKind::Lpi,
                    ..
                }
            })
        ));
        assert!(matches!(
            mapti(8192, 0x1_0000, 0).validate(&c),
            Err(CommandError::Id {
                error: IdError::TooLarge {
                    kind: IdKind::Device,
                    ..
                },
                ..
            })
        ));
        assert!(matches!(
            mapti(8192, 0, 0x1_0000).validate(&c),
            Err(CommandError::Id {
                error: IdError::TooLarge {
                    kind: IdKind::Event,
                    ..
                },
                ..
            })
        ));
    }

    #[test]
    fn doorbells() {
        let vmovi = |db: u32| Command::Vmovi {
            device: DeviceId::new(0),
            event: EventId::new(0),
            vpe: VpeId::new(0),
            d: true,
            db: IntId::new(db),
        };
        assert!(vmovi(1023).validate(&qemu()).is_ok());
        assert!(vmovi(8200).validate(&qemu()).is_ok());
        assert!(matches!(
            vmovi(1022).validate(&qemu()),
            Err(CommandError::Id {
                error: IdError::TooSmall {
                    kind: IdKind::Doorbell,
                    ..
                },
                ..
            })
        ));
    }

    #[test]
    fn versions() {
        let mut v3 = qemu();
        v3.version = ItsVersion::V3;
        let vsync = Command::Vsync { vpe: VpeId::new(0) };
        assert!(matches!(
            vsync.validate(&v3),
            Err(CommandError::Unsupported { .. })
        ));
        let invdb = Command::Invdb { vpe: VpeId::new(0) };
        assert!(matches!(
            invdb.validate(&qemu()),
            Err(CommandError::Unsupported { .. })
        ));
        let mut v41 = qemu();
        v41.version = ItsVersion::V4_1;
        assert!(invdb.validate(&v41).is_ok());
        // The GICv4.0 layout of VMAPP is not what a GICv4.1 ITS reads.
        let vmapp = Command::Vmapp {
            vpe: VpeId::new(0),
            rdbase: RdBase::from_processor(ProcessorNumber::new(0)),
            valid: true,
            vpt: VptAddr::new(PhysAddr::new(0x4001_0000)).unwrap(),
            vpt_size: IdBits::new(16).unwrap(),
        };
        assert!(vmapp.validate(&qemu()).is_ok());
        assert!(matches!(
            vmapp.validate(&v41),
            Err(CommandError::Unsupported { .. })
        ));
    }

    #[test]
    fn vpt_size_and_rdbase() {
        let vmapp = |bits: u8, rd: u64| Command::Vmapp {
            vpe: VpeId::new(0),
            rdbase: RdBase::from_raw(rd).unwrap(),
            valid: true,
            vpt: VptAddr::new(PhysAddr::new(0x4001_0000)).unwrap(),
            vpt_size: IdBits::new(bits).unwrap(),
        };
        assert!(vmapp(16, 1).validate(&qemu()).is_ok());
        assert!(matches!(
            vmapp(17, 1).validate(&qemu()),
            Err(CommandError::Id {
                error: IdError::TooLarge {
                    kind: IdKind::IdBits,
                    ..
                },
                ..
            })
        ));
        assert!(matches!(
            vmapp(16, 0x1_0000).validate(&qemu()),
            Err(CommandError::RdBaseNotProcessor {
                value: 0x1_0000,
                ..
            })
        ));
        let mut pta = qemu();
        pta.pta = true;
        assert!(vmapp(16, 0x1_0000).validate(&pta).is_ok());
    }

    #[test]
    fn mapi_event_is_the_lpi() {
        let mapi = |e: u32| Command::Mapi {
            device: DeviceId::new(0),
            event: EventId::new(e),
            icid: CollectionId::new(0),
        };
        assert!(mapi(8192).validate(&qemu()).is_ok());
        assert!(mapi(5).validate(&qemu()).is_err());
    }
}
