// SPDX-License-Identifier: MIT OR Apache-2.0
//! Errors of the command queue and the ITS driver.

use core::fmt;

use its_core::addr::AddrError;
use its_core::cmd::{Command, CommandError, ItsVersion};
use its_core::ids::IdError;
use its_core::platform::{AllocError, OutOfBounds};

/// One command as it was posted: its queue offset and raw doublewords.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TraceEntry {
    /// Byte offset in the queue.
    pub offset: u32,
    /// The four doublewords.
    pub raw: [u64; 4],
}

/// The last commands posted, oldest first (a fixed-size ring, as Hubris keeps them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Trace {
    entries: [TraceEntry; Trace::LEN],
    next: u8,
    len: u8,
}

impl Trace {
    /// Commands kept.
    pub const LEN: usize = 8;

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
}

impl fmt::Display for Trace {
    /// One line per command, decoded when possible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in self.iter() {
            write!(f, "\n  {:#07x}: ", e.offset)?;
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
/// [`ItsError::Timeout`] carries the last commands posted by value (about 300 bytes): the
/// driver cannot allocate, and a timeout is exactly when a hypervisor author needs them.
/// Errors are rare, so callers may allow `clippy::result_large_err`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ItsError {
    /// A command failed validation against the ITS's capabilities; nothing was written.
    #[error("command {index} refused before posting: {error}")]
    InvalidCommand {
        /// Its index in the batch.
        index: usize,
        /// Why.
        error: CommandError,
    },
    /// The queue stayed too full for the batch until the deadline.
    #[error(
        "command queue full: needed {needed} slots, {free} free after {waited_ns} ns (CREADR {creadr:#x}, CWRITER {cwriter:#x})"
    )]
    QueueFull {
        /// Slots needed.
        needed: usize,
        /// Slots free at the deadline.
        free: usize,
        /// How long it waited.
        waited_ns: u64,
        /// GITS_CREADR offset.
        creadr: u32,
        /// GITS_CWRITER offset.
        cwriter: u32,
    },
    /// The ITS did not complete the commands before the deadline.
    #[error(
        "ITS command queue timeout after {waited_ns} ns (CREADR {creadr:#x}, CWRITER {cwriter:#x}); last commands:{trace}"
    )]
    Timeout {
        /// How long it waited.
        waited_ns: u64,
        /// GITS_CREADR offset.
        creadr: u32,
        /// GITS_CWRITER offset.
        cwriter: u32,
        /// The last commands posted.
        trace: Trace,
    },
    /// GITS_CREADR.Stalled: the ITS stopped at a command.
    #[error("ITS stalled at offset {offset:#x} on {}", CmdOrRaw(command, raw))]
    Stalled {
        /// Byte offset of the command.
        offset: u32,
        /// Its sequence number in the command stream (see [`crate::queue::Posted`]).
        seq: u64,
        /// Its doublewords.
        raw: [u64; 4],
        /// The command, if it decodes.
        command: Option<Command>,
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

/// Shows a command decoded when it decodes, raw otherwise.
struct CmdOrRaw<'a>(&'a Option<Command>, &'a [u64; 4]);

impl fmt::Display for CmdOrRaw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, "{c}"),
            None => write!(f, "{:#x?}", self.1),
        }
    }
}

impl From<its_core::platform::Timeout> for ItsError {
    fn from(t: its_core::platform::Timeout) -> Self {
        Self::RegisterTimeout {
            what: "register",
            waited_ns: t.waited_ns,
        }
    }
}
