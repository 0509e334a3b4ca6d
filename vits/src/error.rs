// SPDX-License-Identifier: MIT OR Apache-2.0
//! Errors: refused register accesses, and what went wrong with a guest's command.

/// A register access the architecture does not allow (Arm IHI 0069, "ITS register
/// descriptions": 32-bit accesses to every register, 64-bit accesses to the 64-bit ones,
/// naturally aligned). What the guest sees is the hypervisor's choice (an external abort,
/// or RAZ/WI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The offset is beyond the 64 KiB control frame.
    #[error("offset {offset:#x} is outside the ITS control frame")]
    OutsideFrame {
        /// The offset.
        offset: u64,
    },
    /// Neither a 32-bit nor a 64-bit access.
    #[error("{size}-byte access at {offset:#x}: only 4 and 8 bytes")]
    Size {
        /// The offset.
        offset: u64,
        /// The access size in bytes.
        size: usize,
    },
    /// Not aligned to its size.
    #[error("{size}-byte access at {offset:#x} is misaligned")]
    Misaligned {
        /// The offset.
        offset: u64,
        /// The access size in bytes.
        size: usize,
    },
    /// A 64-bit access to a 32-bit register (GITS_CTLR with GITS_IIDR, GITS_PIDR2).
    #[error("64-bit access to the 32-bit register at {offset:#x}")]
    Width {
        /// The offset.
        offset: u64,
    },
}

/// What was wrong with a guest's command, or what failed while doing it. Each is either
/// ignored (the queue moves on) or stalls the queue (GITS_CREADR.Stalled): see
/// [`CommandError::stalls`] and the crate documentation's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// An opcode no GICv3 ITS command has.
    #[error("unknown opcode {opcode:#04x}")]
    UnknownOpcode {
        /// DW0\[7:0\].
        opcode: u8,
    },
    /// A GICv4 command, sent to an ITS that reports GITS_TYPER.Virtual = 0.
    #[error("GICv4 command (opcode {opcode:#04x}) on an ITS without virtual LPIs")]
    VirtualCommand {
        /// DW0\[7:0\].
        opcode: u8,
    },
    /// The DeviceID is beyond Devbits or the device table the guest provided.
    #[error("DeviceID {device:#x} beyond the {limit} the device table holds")]
    DeviceOutOfRange {
        /// DeviceID.
        device: u32,
        /// DeviceIDs the table holds.
        limit: u64,
    },
    /// No MAPD for this DeviceID.
    #[error("DeviceID {device:#x} is not mapped")]
    DeviceNotMapped {
        /// DeviceID.
        device: u32,
    },
    /// MAPD Size beyond GITS_TYPER.IDbits.
    #[error("MAPD of {device:#x}: {bits} EventID bits, more than IDbits allows")]
    IttTooLarge {
        /// DeviceID.
        device: u32,
        /// EventID bits asked for.
        bits: u8,
    },
    /// The EventID is beyond the device's ITT (its MAPD Size).
    #[error("EventID {event:#x} beyond device {device:#x}'s {limit} events")]
    EventOutOfRange {
        /// DeviceID.
        device: u32,
        /// EventID.
        event: u32,
        /// Events the ITT holds.
        limit: u64,
    },
    /// No mapping for this event.
    #[error("event {event:#x} of device {device:#x} is not mapped")]
    EventNotMapped {
        /// DeviceID.
        device: u32,
        /// EventID.
        event: u32,
    },
    /// MAPTI/MAPI of an event that is mapped already.
    #[error("event {event:#x} of device {device:#x} is mapped already")]
    EventMapped {
        /// DeviceID.
        device: u32,
        /// EventID.
        event: u32,
    },
    /// The ICID is beyond CIDbits, the vITS's room or the collection table the guest provided.
    #[error("ICID {icid:#x} beyond the {limit} collections")]
    CollectionOutOfRange {
        /// ICID.
        icid: u16,
        /// Collections.
        limit: u64,
    },
    /// The collection is not mapped (MAPC).
    #[error("collection {icid:#x} is not mapped")]
    CollectionNotMapped {
        /// ICID.
        icid: u16,
    },
    /// RDbase names no vCPU.
    #[error("RDbase {rdbase:#x} names no vCPU")]
    RdbaseOutOfRange {
        /// The RDbase field.
        rdbase: u64,
    },
    /// pINTID is not an LPI of the VM (below 8192 or beyond its vINTID bits).
    #[error("INTID {intid:#x} is not an LPI of the VM")]
    IntidOutOfRange {
        /// pINTID.
        intid: u32,
    },
    /// The vITS's device room is full.
    #[error("no room for another device")]
    DevicesExhausted,
    /// No physical DeviceID is left for a made-up device.
    #[error("no physical DeviceID left for made-up device {device:#x}")]
    PoolExhausted {
        /// The guest's DeviceID.
        device: u32,
    },
    /// The vITS's ITE room is full.
    #[error("no room for another event mapping")]
    ItesExhausted,
    /// GITS_CWRITER written with an offset beyond the queue (the write is ignored).
    #[error("GITS_CWRITER offset {offset:#x} beyond the {size}-byte queue")]
    CwriterOutOfRange {
        /// The offset written.
        offset: u32,
        /// The queue's size.
        size: u32,
    },
    /// The command could not be read from guest memory.
    #[error("command at guest-physical {gpa:#x} unreadable")]
    CommandRead {
        /// Where.
        gpa: u64,
    },
    /// An LPI's configuration byte could not be read from guest memory.
    #[error("LPI configuration byte at guest-physical {gpa:#x} unreadable")]
    PropertyRead {
        /// Where.
        gpa: u64,
    },
    /// The backend failed.
    #[error("backend: {0:?}")]
    Backend(E),
}

impl<E> CommandError<E> {
    /// Whether this error stalls the queue: memory that cannot be read (the command, a
    /// configuration byte) and backend failures do; everything the guest got wrong in a
    /// command is ignored.
    pub const fn stalls(&self) -> bool {
        matches!(
            self,
            Self::CommandRead { .. } | Self::PropertyRead { .. } | Self::Backend(_)
        )
    }
}

/// One error, as kept in the vITS's log of recent errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorRecord<E> {
    /// The command's offset in the queue (GITS_CREADR), or `None` when the error did not come
    /// from a command (a register write, [`crate::Vits::set_lpi_config`], teardown).
    pub offset: Option<u32>,
    /// The command's doublewords (zero when it could not be read or there is none).
    pub command: [u64; 4],
    /// What went wrong.
    pub error: CommandError<E>,
    /// Whether it stalled the queue.
    pub stalled: bool,
}
