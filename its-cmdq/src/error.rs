// SPDX-License-Identifier: MIT OR Apache-2.0
//! Errors of the command queue and the ITS driver.

use core::fmt;

use its_core::addr::AddrError;
use its_core::cmd::{Command, CommandError, ItsVersion};
use its_core::ids::IdError;
use its_core::platform::{AllocError, OutOfBounds};

/// One command as it was written to the queue: its sequence number, queue offset and raw
/// doublewords.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TraceEntry {
    /// Its sequence number in the command stream (see [`crate::queue::Posted`]).
    pub seq: u64,
    /// Byte offset in the queue.
    pub offset: u32,
    /// The four doublewords.
    pub raw: [u64; 4],
}

impl TraceEntry {
    /// The command, decoded for an ITS of `version`, if it decodes.
    pub fn command(&self, version: ItsVersion) -> Option<Command> {
        Command::decode(&self.raw, version).ok()
    }
}

/// The last commands written to a queue, oldest first: a fixed-size ring, as Hubris keeps
/// them, owned by the queue and read on demand ([`crate::CmdQueue::last_commands`],
/// [`crate::Its::last_commands`]) rather than carried inside every error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Trace {
    entries: [TraceEntry; Trace::LEN],
    next: u8,
    len: u8,
}

impl Trace {
    /// Commands kept.
    pub const LEN: usize = 16;

    /// Records a command.
    pub fn push(&mut self, e: TraceEntry) {
        self.entries[usize::from(self.next)] = e;
        self.next = ((usize::from(self.next) + 1) % Self::LEN) as u8;
        self.len = (usize::from(self.len) + 1).min(Self::LEN) as u8;
    }

    /// The recorded commands, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &TraceEntry> {
        let len = usize::from(self.len);
        let start = (usize::from(self.next) + Self::LEN - len) % Self::LEN;
        (0..len).map(move |i| &self.entries[(start + i) % Self::LEN])
    }

    /// Number of commands recorded.
    pub fn len(&self) -> usize {
        self.len.into()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most recent entry with sequence number `seq`, if it is still in the ring.
    pub fn find(&self, seq: u64) -> Option<TraceEntry> {
        self.iter().filter(|e| e.seq == seq).last().copied()
    }
}

impl fmt::Display for Trace {
    /// One line per command, decoded when possible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in self.iter() {
            write!(f, "\n  #{} {:#07x}: ", e.seq, e.offset)?;
            match Command::decode_lenient(&e.raw, ItsVersion::V4_1) {
                Ok((c, _)) => write!(f, "{c}")?,
                Err(_) => write!(
                    f,
                    "{:#018x} {:#018x} {:#018x} {:#018x}",
                    e.raw[0], e.raw[1], e.raw[2], e.raw[3]
                )?,
            }
        }
        Ok(())
    }
}

/// What went wrong in the command queue or the ITS driver.
///
/// # Size
/// Small enough to return by value through every layer (at most 40 bytes, asserted by a
/// test): the diagnostic history stays with the queue that owns it. After a
/// [`ItsError::Timeout`] or a [`ItsError::Stalled`], read the last commands with
/// [`crate::Its::last_commands`] (or [`crate::CmdQueue::last_commands`]), and a stalled command by
/// its sequence number with [`crate::CmdQueue::command`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ItsError {
    /// A command failed validation against the ITS's capabilities; nothing was written.
    #[error("command {index} refused before posting: {error}")]
    InvalidCommand {
        /// Its index in the batch.
        index: u32,
        /// Why.
        error: CommandError,
    },
    /// The queue stayed too full for the batch until the deadline.
    #[error(
        "command queue full: needed {needed} slots, {free} free after {waited_ns} ns (CREADR {creadr:#x}, CWRITER {cwriter:#x})"
    )]
    QueueFull {
        /// Slots needed.
        needed: u32,
        /// Slots free at the deadline.
        free: u32,
        /// How long it waited.
        waited_ns: u64,
        /// GITS_CREADR offset.
        creadr: u32,
        /// GITS_CWRITER offset.
        cwriter: u32,
    },
    /// The ITS did not complete the commands before the deadline. The last commands
    /// written are in the queue's trace ([`crate::Its::last_commands`]).
    #[error(
        "ITS command queue timeout after {waited_ns} ns (CREADR {creadr:#x}, CWRITER {cwriter:#x})"
    )]
    Timeout {
        /// How long it waited.
        waited_ns: u64,
        /// GITS_CREADR offset.
        creadr: u32,
        /// GITS_CWRITER offset.
        cwriter: u32,
    },
    /// GITS_CREADR.Stalled: the ITS stopped at a command. The command itself, doublewords
    /// and all: [`crate::CmdQueue::command`] with `seq`.
    #[error(
        "ITS stalled at offset {offset:#x} on command #{seq} ({})",
        its_core::cmd::mnemonic_of(*opcode)
    )]
    Stalled {
        /// Byte offset of the command.
        offset: u32,
        /// Its sequence number in the command stream (see [`crate::queue::Posted`]).
        seq: u64,
        /// Its opcode, DW0\[7:0\].
        opcode: u8,
    },
    /// GITS_CREADR reported an offset that cannot be right (outside the ring, or beyond
    /// what was written): the ITS or the register access is broken.
    #[error("GITS_CREADR offset {creadr:#x} is impossible (CWRITER {cwriter:#x})")]
    BadCreadr {
        /// GITS_CREADR offset.
        creadr: u32,
        /// GITS_CWRITER offset.
        cwriter: u32,
    },
    /// A timeout earlier left the ITS in an unknown state; the driver refuses further work.
    #[error("the ITS timed out earlier and is no longer used")]
    Dead,
    /// The ITS was shut down ([`crate::Its::shutdown`]).
    #[error("the ITS is shut down")]
    ShutDown,
    /// Shut-down refused: devices are still mapped (the doorbells' proxy device included).
    #[error("{0} devices are still mapped")]
    InUse(u32),
    /// Out of memory.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// An ID beyond the capabilities or the architecture.
    #[error(transparent)]
    Id(#[from] IdError),
    /// An address the GIC cannot use.
    #[error(transparent)]
    Addr(#[from] AddrError),
    /// A configuration value the driver does not support.
    #[error("unsupported configuration: {0}")]
    Config(&'static str),
    /// A register did not keep a value the driver wrote.
    #[error("{register} did not keep the value written ({wrote:#x} read back as {read:#x})")]
    DidNotStick {
        /// The register.
        register: &'static str,
        /// What was written.
        wrote: u64,
        /// What was read back.
        read: u64,
    },
    /// A bounded wait on a register ran out of time.
    #[error("timed out waiting for {what} after {waited_ns} ns")]
    RegisterTimeout {
        /// What was awaited.
        what: &'static str,
        /// How long it waited.
        waited_ns: u64,
    },
    /// The ITS does not have what the operation needs.
    #[error("the ITS does not support {0}")]
    Unsupported(&'static str),
    /// No table of this kind, or the ID is beyond it.
    #[error("{table} table cannot hold ID {id:#x}")]
    TableTooSmall {
        /// Which table.
        table: &'static str,
        /// The ID.
        id: u64,
    },
    /// A fixed-capacity structure is full.
    #[error("{0} exhausted")]
    Exhausted(&'static str),
    /// The DeviceID is already mapped.
    #[error("DeviceID {0:#x} is already mapped")]
    DeviceMapped(u32),
    /// The device was unmapped ([`crate::Its::unmap_device`]).
    #[error("DeviceID {0:#x} is not mapped")]
    DeviceNotMapped(u32),
    /// The event is already mapped (physically or virtually).
    #[error("event {event:#x} of device {device:#x} is already mapped")]
    EventMapped {
        /// DeviceID.
        device: u32,
        /// EventID.
        event: u32,
    },
    /// The event is not mapped.
    #[error("event {event:#x} of device {device:#x} is not mapped")]
    EventNotMapped {
        /// DeviceID.
        device: u32,
        /// EventID.
        event: u32,
    },
    /// The event is forwarded to a vPE (a vLPI): the GICv4 layer owns it, and must unmap it
    /// (it keeps per-vPE accounting the ITS layer does not see).
    #[error("event {event:#x} of device {device:#x} is forwarded to a vPE")]
    EventForwarded {
        /// DeviceID.
        device: u32,
        /// EventID.
        event: u32,
    },
    /// The EventID is beyond the device's ITT.
    #[error("event {event:#x} is beyond the {events} events of device {device:#x}")]
    EventOutOfRange {
        /// DeviceID.
        device: u32,
        /// EventID.
        event: u32,
        /// Events the device has.
        events: u32,
    },
    /// The LPI is not allocated, or not in the LPI range of this GIC.
    #[error("LPI {0} is not available")]
    BadLpi(u32),
    /// No such CPU (redistributor) is known.
    #[error("no redistributor for CPU {0}")]
    NoSuchCpu(usize),
    /// A table or buffer access out of bounds (a driver bug; reported, not panicked).
    #[error(transparent)]
    OutOfBounds(#[from] OutOfBounds),
}

impl From<its_core::platform::Timeout> for ItsError {
    fn from(t: its_core::platform::Timeout) -> Self {
        Self::RegisterTimeout {
            what: "register",
            waited_ns: t.waited_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors are returned by value through every layer (the doorbells and the GICv4 layer
    /// wrap this one): they stay small.
    #[test]
    fn errors_are_small() {
        assert!(size_of::<ItsError>() <= 40, "{}", size_of::<ItsError>());
    }
}
