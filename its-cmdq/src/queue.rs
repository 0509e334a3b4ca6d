// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ITS command queue: batches, one GITS_CWRITER write per batch, completion tickets,
//! bounded waits, stall reporting and recovery.
//!
//! # How a batch is posted
//! 1. Every command is checked against the ITS's capabilities ([`Command::validate`]); one bad
//!    command refuses the whole batch before anything is written.
//! 2. The queue lock is taken: a batch is never interleaved with another CPU's.
//! 3. The commands, then the SYNC/VSYNC commands the caller asked for (duplicates dropped), are
//!    written contiguously in ring order, wrapping at the end of the ring.
//! 4. # Why CWRITER is written after a clean or a DSB
//!    The ITS reads the slots as soon as it sees GITS_CWRITER move. If it reported the queue
//!    memory non-shareable, it does not snoop CPU caches: the slots are cleaned to the point of
//!    coherency (then `DSB SY`). Otherwise `DSB ISHST` orders the slot writes before the MMIO
//!    write. This is the order Linux's `its_flush_cmd` keeps.
//! 5. GITS_CWRITER is written once. A batch larger than the ring is written in ring-sized
//!    pieces, waiting for room between them, still under the lock.
//!
//! Posting returns a [`Ticket`]; [`CmdQueue::wait`] polls GITS_CREADR until the ITS has
//! consumed everything up to it, bounded by a timeout, and reports GITS_CREADR.Stalled with
//! the offending command instead of waiting it out.

use core::alloc::Layout;
use core::time::Duration;

use crate::error::{ItsError, Trace, TraceEntry};
use crate::ring::{Ring, SLOT, Span, Ticket};
use crate::sync::Mutex;
use its_core::addr::Addr4K;
use its_core::caps::ItsCaps;
use its_core::cmd::{Command, ItsVersion};
use its_core::ids::{RdBase, VpeId};
use its_core::mmio::ItsRegisters;
use its_core::platform::{DmaBuf, Platform};
use its_core::regs::{GitsCbaser, GitsCwriter, MemAttrs, Shareability};

/// Distinct SYNC/VSYNC targets one batch may carry.
pub const MAX_SYNCS: usize = 64;

/// What a batch needs to be synchronised with after its commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SyncTarget {
    /// SYNC to a redistributor: effects of physical commands are visible there.
    Redist(RdBase),
    /// VSYNC for a vPE: effects of virtual commands are visible for it.
    Vpe(VpeId),
}

impl SyncTarget {
    fn command(self) -> Command {
        match self {
            Self::Redist(rdbase) => Command::Sync { rdbase },
            Self::Vpe(vpe) => Command::Vsync { vpe },
        }
    }
}

/// Queue parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// Ring size in bytes: a multiple of 4 KiB, from 4 KiB to 1 MiB. Default 64 KiB (2048
    /// commands), as Linux uses.
    pub bytes: usize,
    /// How long posting waits for room before [`ItsError::QueueFull`]. Default 1 s.
    pub full_timeout: Duration,
    /// How long [`CmdQueue::wait`] waits before [`ItsError::Timeout`]. Default 1 s.
    pub completion_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            bytes: 0x1_0000,
            full_timeout: Duration::from_secs(1),
            completion_timeout: Duration::from_secs(1),
        }
    }
}

/// Counters, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QueueStats {
    /// Commands written to the ring (including appended SYNC/VSYNC).
    pub commands: u64,
    /// GITS_CWRITER writes.
    pub cwriter_writes: u64,
    /// Calls to [`CmdQueue::wait`] (completion waits).
    pub waits: u64,
    /// Waits for room in the ring.
    pub full_waits: u64,
    /// GITS_CREADR reads.
    pub creadr_reads: u64,
    /// Batches posted.
    pub batches: u64,
}

/// Where a posted batch sits in the stream of commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posted {
    /// Sequence number of the batch's first command.
    pub first: u64,
    /// Commands in the batch, appended SYNC/VSYNC included.
    pub len: usize,
    /// Complete once the ITS has consumed the whole batch.
    pub ticket: Ticket,
}

impl Posted {
    /// The index within the batch of the command with sequence number `seq`, if it is one.
    pub fn index_of(&self, seq: u64) -> Option<usize> {
        let i = seq.checked_sub(self.first)?;
        (i < self.len as u64).then_some(i as usize)
    }
}

/// How to get a stalled queue going again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Recovery {
    /// Write GITS_CWRITER.Retry: the ITS tries the stalled command again (after the cause,
    /// such as unmapped memory, was fixed).
    Retry,
    /// Replace the stalled command with a harmless SYNC, then retry: the command is dropped.
    Skip,
}

struct Inner<R, P: Platform> {
    regs: R,
    version: ItsVersion,
    /// The ring's memory; `None` once released ([`CmdQueue::release`]).
    buf: Option<DmaBuf<P>>,
    ring: Ring,
    flush: bool,
    trace: Trace,
    stats: QueueStats,
    skipped: heapless::Deque<SkippedCmd, 8>,
}

/// A command dropped by [`Recovery::Skip`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SkippedCmd {
    /// Its sequence number in the command stream.
    pub seq: u64,
    /// Its byte offset in the queue.
    pub offset: u32,
    /// Its doublewords.
    pub raw: [u64; 4],
    /// The command, decoded with the ITS's command set, if it decodes.
    pub command: Option<Command>,
}

/// The command queue of one ITS. Usable from several CPUs at once (`&self` methods, an
/// internal spin lock held while a batch is written).
///
/// # Interrupt context
/// Every method takes the queue's spin lock, and [`CmdQueue::wait`] polls the ITS for up to
/// [`QueueConfig::completion_timeout`]: call them in process context, or with IRQs masked if
/// an interrupt handler of yours also posts commands (an interrupt that tried to post on a CPU
/// already holding the lock would spin for ever). The lock is the innermost of the drivers':
/// nothing else is taken while it is held (see the crate documentation's lock order).
pub struct CmdQueue<R: ItsRegisters, P: Platform> {
    inner: Mutex<Inner<R, P>>,
    caps: ItsCaps,
    clock: P,
    cfg: QueueConfig,
    /// A SYNC target that always exists (used to replace a skipped command).
    noop: RdBase,
}

impl<R: ItsRegisters, P: Platform + Clone> CmdQueue<R, P> {
    /// Allocates the ring and programs GITS_CBASER (with the shareability read-back rule) and
    /// GITS_CWRITER. The ITS must be disabled: GITS_CBASER is read-only while it is enabled.
    ///
    /// `noop` names a redistributor that exists; a SYNC to it replaces a skipped command.
    ///
    /// # Errors
    /// [`ItsError::Config`] for an unsupported size or an enabled ITS, [`ItsError::Alloc`],
    /// [`ItsError::DidNotStick`] if GITS_CBASER does not keep the queue's address or size.
    pub fn new(
        mut regs: R,
        platform: P,
        caps: ItsCaps,
        cfg: QueueConfig,
        noop: RdBase,
    ) -> Result<Self, ItsError> {
        // Under the loom model check (`tests/loom.rs`) a ring of a few slots keeps the
        // interleavings few enough to explore; the ITS only ever sees whole 4 KiB pages.
        #[cfg(not(loom))]
        let (unit, min) = (0x1000, 0x1000);
        #[cfg(loom)]
        let (unit, min) = (SLOT, 2 * SLOT);
        if cfg.bytes < min || cfg.bytes > 0x10_0000 || !cfg.bytes.is_multiple_of(unit) {
            return Err(ItsError::Config(
                "command queue size must be a multiple of 4 KiB from 4 KiB to 1 MiB",
            ));
        }
        if regs.ctlr().enabled() {
            return Err(ItsError::Config(
                "GITS_CBASER cannot be programmed while the ITS is enabled",
            ));
        }
        let align = cfg.bytes.clamp(0x1000, 0x1_0000);
        let layout = Layout::from_size_align(cfg.bytes, align)
            .map_err(|_| ItsError::Config("queue layout"))?;
        let buf = DmaBuf::new(platform.clone(), layout)?;
        let base = Addr4K::new(buf.pa())?;
        let pages = (cfg.bytes / 0x1000).max(1) as u8 - 1;
        let want = GitsCbaser::new()
            .with_addr(base)
            .with_size(pages)
            .with_valid(true);
        regs.set_cbaser(want.with_attrs(MemAttrs::CACHED));
        let mut got = regs.cbaser();
        let mut flush = false;
        if got.shareability() == Shareability::NonShareable {
            // The ITS does not snoop: make the queue non-cacheable and clean every command.
            regs.set_cbaser(want.with_attrs(MemAttrs::NON_CACHEABLE));
            got = regs.cbaser();
            flush = true;
        }
        if got.addr() != want.addr() || got.size() != pages || !got.valid() {
            return Err(ItsError::DidNotStick {
                register: "GITS_CBASER",
                wrote: want.into(),
                read: got.into(),
            });
        }
        flush |= got.attrs().needs_clean_to_poc();
        regs.set_cwriter(GitsCwriter::at(0));
        crate::logging::debug!(
            "its-cmdq: command queue of {} KiB at {:#x}, {}",
            cfg.bytes / 1024,
            buf.pa().get(),
            if flush {
                "cleaned to PoC (non-shareable)"
            } else {
                "shareable"
            }
        );
        Ok(Self {
            inner: Mutex::new(Inner {
                regs,
                version: caps.version,
                buf: Some(buf),
                ring: Ring::new(cfg.bytes),
                flush,
                trace: Trace::default(),
                stats: QueueStats::default(),
                skipped: heapless::Deque::new(),
            }),
            caps,
            clock: platform,
            cfg,
            noop,
        })
    }
}

impl<R: ItsRegisters, P: Platform> core::fmt::Debug for CmdQueue<R, P> {
    /// The configuration and the counters (the lock is taken briefly for them).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("CmdQueue")
            .field("version", &inner.version)
            .field("bytes", &self.cfg.bytes)
            .field("cleans_to_poc", &inner.flush)
            .field("released", &inner.buf.is_none())
            .field("stats", &inner.stats)
            .finish_non_exhaustive()
    }
}

impl<R: ItsRegisters, P: Platform> CmdQueue<R, P> {
    /// The capabilities commands are checked against.
    pub fn caps(&self) -> &ItsCaps {
        &self.caps
    }

    /// Whether commands are cleaned to the point of coherency (the ITS reported the queue
    /// non-shareable).
    pub fn cleans_to_poc(&self) -> bool {
        self.inner.lock().flush
    }

    /// Makes dropping the queue keep the ring's memory (the ITS may still read it).
    pub fn keep_memory(&mut self) {
        if let Some(b) = self.inner.get_mut().buf.as_mut() {
            b.leak_on_drop();
        }
    }

    /// Frees the ring's memory through a shared reference, for an ITS that no longer reads it
    /// (disabled and quiescent: the caller's promise, which [`crate::Its::shutdown`] keeps).
    /// Every later post fails with [`ItsError::ShutDown`]. Crate-private: freeing memory the
    /// ITS may still read is not a call to offer safe code.
    pub(crate) fn release(&self) {
        let buf = self.inner.lock().buf.take();
        drop(buf);
    }

    /// Whether the ring's memory was freed (by [`crate::Its::shutdown`]).
    pub fn is_released(&self) -> bool {
        self.inner.lock().buf.is_none()
    }

    /// The counters.
    pub fn stats(&self) -> QueueStats {
        self.inner.lock().stats
    }

    /// The last commands written to the ring, oldest first ([`Trace::LEN`] of them, with
    /// their sequence numbers, offsets and doublewords): what to print after a
    /// [`ItsError::Timeout`] or a [`ItsError::Stalled`].
    pub fn last_commands(&self) -> Trace {
        self.inner.lock().trace
    }

    /// The command with sequence number `seq` (from [`ItsError::Stalled`] or
    /// [`Posted::first`]), as written, if the queue still has it: a command dropped by
    /// [`Recovery::Skip`] (the last 8), one still in the ring (a stalled command always is),
    /// or one of the last [`Trace::LEN`] written.
    pub fn command(&self, seq: u64) -> Option<TraceEntry> {
        let inner = self.inner.lock();
        if let Some(s) = inner.skipped.iter().rev().find(|s| s.seq == seq) {
            return Some(TraceEntry {
                seq: s.seq,
                offset: s.offset,
                raw: s.raw,
            });
        }
        if let Some(offset) = inner.ring.in_flight_offset(seq)
            && let Ok(c) = stalled_cmd(&inner, offset)
        {
            return Some(TraceEntry {
                seq,
                offset: c.offset,
                raw: c.raw,
            });
        }
        inner.trace.find(seq)
    }

    /// The version commands are decoded with.
    pub fn version(&self) -> ItsVersion {
        self.inner.lock().version
    }

    /// The commands of a posted batch that [`Recovery::Skip`] dropped (the most recent 8
    /// skips are remembered), with their index in the batch.
    pub fn skipped_in(&self, batch: &Posted) -> heapless::Vec<(usize, SkippedCmd), 8> {
        let inner = self.inner.lock();
        inner
            .skipped
            .iter()
            .filter_map(|s| batch.index_of(s.seq).map(|i| (i, *s)))
            .take(8)
            .collect()
    }

    /// Runs `f` with the ITS registers (for the bring-up code that shares them).
    pub fn with_regs<T>(&self, f: impl FnOnce(&mut R) -> T) -> T {
        f(&mut self.inner.lock().regs)
    }

    /// Posts a batch and returns the ticket to wait for. See the module documentation.
    ///
    /// # Errors
    /// [`ItsError::InvalidCommand`] (nothing written), [`ItsError::QueueFull`],
    /// [`ItsError::Stalled`] if the ITS stalls while the batch waits for room,
    /// [`ItsError::BadCreadr`].
    pub fn post(&self, commands: &[Command], syncs: &[SyncTarget]) -> Result<Ticket, ItsError> {
        self.post_with(commands.len(), |i| commands[i], syncs)
            .map(|p| p.ticket)
    }

    /// Posts a batch of `n` commands produced by `command(0..n)` (called twice per index:
    /// once to validate, once to write), so large batches need no buffer. Returns where the
    /// batch sits in the command stream.
    ///
    /// A batch larger than the free space is written in pieces, each after a wait for room.
    /// A stall seen before any of the batch is written is returned ([`ItsError::Stalled`],
    /// nothing posted). Once part of the batch is written the rest must follow, so a stall
    /// seen then is skipped ([`Recovery::Skip`]) and the posting goes on; the skipped command
    /// is reported by [`CmdQueue::skipped_in`] to whichever batch it belongs to.
    ///
    /// # Errors
    /// As [`CmdQueue::post`].
    pub fn post_with(
        &self,
        n: usize,
        command: impl Fn(usize) -> Command,
        syncs: &[SyncTarget],
    ) -> Result<Posted, ItsError> {
        self.post_inner(n, command, syncs, false)
    }

    /// [`CmdQueue::post_with`], skipping every stall seen while waiting for room (the
    /// policy of `Its::execute`): it never returns [`ItsError::Stalled`].
    pub(crate) fn post_skipping(
        &self,
        n: usize,
        command: impl Fn(usize) -> Command,
        syncs: &[SyncTarget],
    ) -> Result<Posted, ItsError> {
        self.post_inner(n, command, syncs, true)
    }

    fn post_inner(
        &self,
        n: usize,
        command: impl Fn(usize) -> Command,
        syncs: &[SyncTarget],
        skip_stalls: bool,
    ) -> Result<Posted, ItsError> {
        for index in 0..n {
            command(index)
                .validate(&self.caps)
                .map_err(|error| ItsError::InvalidCommand {
                    index: index as u32,
                    error,
                })?;
        }
        let commands_len = n;
        let mut unique = heapless::Vec::<SyncTarget, MAX_SYNCS>::new();
        for (i, s) in syncs.iter().enumerate() {
            s.command()
                .validate(&self.caps)
                .map_err(|error| ItsError::InvalidCommand {
                    index: (commands_len + i) as u32,
                    error,
                })?;
            if !unique.contains(s) && unique.push(*s).is_err() {
                return Err(ItsError::Exhausted("sync targets per batch"));
            }
        }
        let total = commands_len + unique.len();
        let mut inner = self.inner.lock();
        if inner.buf.is_none() {
            return Err(ItsError::ShutDown);
        }
        let first = inner.ring.written();
        if total == 0 {
            return Ok(Posted {
                first,
                len: 0,
                ticket: inner.ring.ticket(),
            });
        }
        let mut all = (0..commands_len)
            .map(&command)
            .chain(unique.iter().map(|s| s.command()));
        inner.stats.batches += 1;
        let mut left = total;
        while left > 0 {
            let chunk = left.min(inner.ring.capacity());
            self.wait_for_room(&mut inner, chunk, skip_stalls || left < total)?;
            let Some((a, b)) = inner.ring.reserve(chunk) else {
                return Err(ItsError::Exhausted("ring space"));
            };
            for span in [Some(a), b].into_iter().flatten() {
                for k in 0..span.len / SLOT {
                    let Some(cmd) = all.next() else { break };
                    let offset = span.offset + k * SLOT;
                    write_slot(&mut inner, offset, cmd.encode())?;
                }
            }
            publish(&mut inner, [Some(a), b], false);
            inner.stats.commands += chunk as u64;
            left -= chunk;
            crate::logging::trace!(
                "its-cmdq: posted commands #{}..#{} ({} of a batch of {}), CWRITER {:#x}",
                inner.ring.written() - chunk as u64,
                inner.ring.written(),
                chunk,
                total,
                inner.ring.write_offset()
            );
        }
        Ok(Posted {
            first,
            len: total,
            ticket: inner.ring.ticket(),
        })
    }

    /// Posts raw command blocks without validating them. Test hook (feature `test-hooks`):
    /// it exists so a test can prove that a bad command which does reach the ITS is caught
    /// (QEMU logs it with `-d guest_errors`). Drivers never use it.
    ///
    /// # Errors
    /// As [`CmdQueue::post`], without the validation errors.
    #[cfg(feature = "test-hooks")]
    pub fn post_raw_unchecked(&self, raw: &[[u64; 4]]) -> Result<Ticket, ItsError> {
        let mut inner = self.inner.lock();
        if inner.buf.is_none() {
            return Err(ItsError::ShutDown);
        }
        if raw.is_empty() || raw.len() > inner.ring.capacity() {
            return Err(ItsError::Config("raw batch must fit the ring"));
        }
        self.wait_for_room(&mut inner, raw.len(), false)?;
        let Some((a, b)) = inner.ring.reserve(raw.len()) else {
            return Err(ItsError::Exhausted("ring space"));
        };
        let mut it = raw.iter();
        for span in [Some(a), b].into_iter().flatten() {
            for k in 0..span.len / SLOT {
                if let Some(r) = it.next() {
                    write_slot(&mut inner, span.offset + k * SLOT, *r)?;
                }
            }
        }
        publish(&mut inner, [Some(a), b], false);
        inner.stats.commands += raw.len() as u64;
        inner.stats.batches += 1;
        Ok(inner.ring.ticket())
    }

    /// Waits for room for `n` slots, reading GITS_CREADR; with `skip_stalls`, a stall is
    /// skipped ([`Recovery::Skip`]) instead of returned.
    fn wait_for_room(
        &self,
        inner: &mut Inner<R, P>,
        n: usize,
        skip_stalls: bool,
    ) -> Result<(), ItsError> {
        if inner.ring.free() >= n {
            return Ok(());
        }
        inner.stats.full_waits += 1;
        let start = self.clock.now();
        loop {
            match observe(inner) {
                Err(ItsError::Stalled { .. }) if skip_stalls => {
                    self.recover_locked(inner, Recovery::Skip)?;
                }
                r => r?,
            }
            if inner.ring.free() >= n {
                return Ok(());
            }
            let now = self.clock.now();
            if now.since(start) >= self.cfg.full_timeout {
                let e = ItsError::QueueFull {
                    needed: n as u32,
                    free: inner.ring.free() as u32,
                    waited_ns: now.0.saturating_sub(start.0),
                    creadr: inner.regs.creadr().byte_offset() as u32,
                    cwriter: inner.ring.write_offset() as u32,
                };
                crate::logging::error!("its-cmdq: {}", e);
                return Err(e);
            }
            self.clock.relax();
        }
    }

    /// Waits until the ITS has consumed everything up to `ticket`.
    ///
    /// # Errors
    /// [`ItsError::Stalled`] as soon as GITS_CREADR.Stalled is seen (see
    /// [`CmdQueue::recover`]), [`ItsError::Timeout`] (the last commands written are then in
    /// [`CmdQueue::last_commands`]),
    /// [`ItsError::BadCreadr`].
    pub fn wait(&self, ticket: Ticket) -> Result<(), ItsError> {
        self.inner.lock().stats.waits += 1;
        let start = self.clock.now();
        loop {
            {
                let mut inner = self.inner.lock();
                if observe_for(&mut inner, ticket)? {
                    return Ok(());
                }
            }
            let now = self.clock.now();
            if now.since(start) >= self.cfg.completion_timeout {
                let mut inner = self.inner.lock();
                if observe_for(&mut inner, ticket)? {
                    return Ok(());
                }
                let e = ItsError::Timeout {
                    waited_ns: now.0.saturating_sub(start.0),
                    creadr: inner.regs.creadr().byte_offset() as u32,
                    cwriter: inner.ring.write_offset() as u32,
                };
                crate::logging::error!("its-cmdq: {}; last commands:{}", e, inner.trace);
                return Err(e);
            }
            self.clock.relax();
        }
    }

    /// Posts a batch and waits for it.
    ///
    /// # Errors
    /// As [`CmdQueue::post`] and [`CmdQueue::wait`].
    pub fn submit(&self, commands: &[Command], syncs: &[SyncTarget]) -> Result<(), ItsError> {
        let t = self.post(commands, syncs)?;
        self.wait(t)
    }

    /// Gets a stalled queue going again. Does nothing when the queue is not stalled.
    ///
    /// # Errors
    /// [`ItsError::OutOfBounds`] only on an internal inconsistency (reported, not panicked).
    pub fn recover(&self, how: Recovery) -> Result<(), ItsError> {
        self.recover_locked(&mut self.inner.lock(), how)
    }

    fn recover_locked(&self, inner: &mut Inner<R, P>, how: Recovery) -> Result<(), ItsError> {
        let creadr = inner.regs.creadr();
        inner.stats.creadr_reads += 1;
        if !creadr.stalled() {
            return Ok(());
        }
        let at = creadr.byte_offset();
        crate::logging::warning!(
            "its-cmdq: stalled queue at offset {:#x} recovered by {:?}",
            at,
            how
        );
        let span = if how == Recovery::Skip {
            let cmd = stalled_cmd(inner, at)?;
            if inner.skipped.is_full() {
                inner.skipped.pop_front();
            }
            // Cannot fail: there is room now.
            let _ = inner.skipped.push_back(cmd);
            write_slot(inner, at, Command::Sync { rdbase: self.noop }.encode())?;
            Some(Span {
                offset: at,
                len: SLOT,
            })
        } else {
            None
        };
        publish(inner, [span, None], true);
        Ok(())
    }
}

/// Writes one command's doublewords at `offset` and records it in the trace.
fn write_slot<R: ItsRegisters, P: Platform>(
    inner: &mut Inner<R, P>,
    offset: usize,
    raw: [u64; 4],
) -> Result<(), ItsError> {
    let buf = inner.buf.as_mut().ok_or(ItsError::ShutDown)?;
    for (i, d) in raw.iter().enumerate() {
        buf.write_u64(offset + 8 * i, *d)?;
    }
    let seq = inner.ring.seq_at(offset).unwrap_or(u64::MAX);
    inner.trace.push(TraceEntry {
        seq,
        offset: offset as u32,
        raw,
    });
    Ok(())
}

/// Makes written slots visible to the ITS (clean or barrier), then writes GITS_CWRITER
/// (with Retry when restarting a stalled queue).
fn publish<R: ItsRegisters, P: Platform>(
    inner: &mut Inner<R, P>,
    spans: [Option<Span>; 2],
    retry: bool,
) {
    if let Some(buf) = inner.buf.as_ref() {
        if inner.flush {
            for s in spans.into_iter().flatten() {
                buf.clean(s.offset, s.len);
            }
            buf.platform().dsb_sy();
        } else {
            buf.platform().dsb_ishst();
        }
    }
    let wr = inner.ring.write_offset();
    inner
        .regs
        .set_cwriter(GitsCwriter::at(wr).with_retry(retry));
    inner.stats.cwriter_writes += 1;
}

/// Reads GITS_CREADR into the ring; reports a stall or an impossible offset.
fn observe<R: ItsRegisters, P: Platform>(inner: &mut Inner<R, P>) -> Result<(), ItsError> {
    let c = inner.regs.creadr();
    inner.stats.creadr_reads += 1;
    let offset = c.byte_offset();
    if !inner.ring.observe(offset) {
        return Err(ItsError::BadCreadr {
            creadr: offset as u32,
            cwriter: inner.ring.write_offset() as u32,
        });
    }
    if c.stalled() {
        let cmd = stalled_cmd(inner, offset)?;
        let e = ItsError::Stalled {
            offset: cmd.offset,
            seq: cmd.seq,
            opcode: cmd.raw[0] as u8,
        };
        crate::logging::warning!("its-cmdq: {}: {:x?}", e, cmd.raw);
        return Err(e);
    }
    Ok(())
}

/// [`observe`], for a waiter of `ticket`: whether the ticket is done. A stall after the
/// ticket's batch is not the waiter's error.
fn observe_for<R: ItsRegisters, P: Platform>(
    inner: &mut Inner<R, P>,
    ticket: Ticket,
) -> Result<bool, ItsError> {
    match observe(inner) {
        Ok(()) => Ok(inner.ring.is_done(ticket)),
        Err(ItsError::Stalled { .. }) if inner.ring.is_done(ticket) => Ok(true),
        Err(e) => Err(e),
    }
}

/// The command at `offset` of the ring (where the ITS stalled), read back and decoded.
fn stalled_cmd<R: ItsRegisters, P: Platform>(
    inner: &Inner<R, P>,
    offset: usize,
) -> Result<SkippedCmd, ItsError> {
    let buf = inner.buf.as_ref().ok_or(ItsError::ShutDown)?;
    let mut raw = [0u64; 4];
    for (i, d) in raw.iter_mut().enumerate() {
        *d = buf.read_u64(offset + 8 * i)?;
    }
    Ok(SkippedCmd {
        seq: inner.ring.seq_at(offset).unwrap_or(u64::MAX),
        offset: offset as u32,
        raw,
        command: Command::decode(&raw, inner.version).ok(),
    })
}
