// SPDX-License-Identifier: MIT OR Apache-2.0
//! Ring arithmetic of the command queue, with no I/O.
//!
//! The queue is a ring of 32-byte slots. Software writes at `GITS_CWRITER`, the ITS reads at
//! `GITS_CREADR`; both are byte offsets that wrap at the ring size. One slot always stays
//! empty, so `CREADR == CWRITER` means "empty", never "full".
//!
//! Offsets wrap, so "has the ITS finished my command?" cannot be answered from offsets alone.
//! [`Ring`] therefore also counts positions absolutely: every slot ever written has a
//! sequence number, a [`Ticket`] is the sequence number just after a batch, and the number of
//! slots the ITS has consumed is advanced from the distance CREADR moved since it was last
//! seen. That distance is unambiguous because CREADR can never overtake CWRITER.

/// Bytes per command slot.
pub const SLOT: usize = 32;

/// A position in the stream of commands ever posted: the batch it names is complete once the
/// ITS has consumed that many commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ticket(pub u64);

/// Ring state: the write offset, and absolute counts of slots written and consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    size: usize,
    wr: usize,
    written: u64,
    consumed: u64,
    last_rd: usize,
}

/// One contiguous run of slots to write: `[offset, offset + len)` in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Byte offset of the first slot.
    pub offset: usize,
    /// Bytes.
    pub len: usize,
}

impl Ring {
    /// A ring of `size` bytes (a multiple of 32, at least two slots), empty, at offset 0.
    pub const fn new(size: usize) -> Self {
        Self {
            size,
            wr: 0,
            written: 0,
            consumed: 0,
            last_rd: 0,
        }
    }

    /// Size in bytes.
    pub const fn size(&self) -> usize {
        self.size
    }

    /// Slots the ring can hold at once (one is always left empty).
    pub const fn capacity(&self) -> usize {
        self.size / SLOT - 1
    }

    /// The software write offset (what GITS_CWRITER is, or is about to be, set to).
    pub const fn write_offset(&self) -> usize {
        self.wr
    }

    /// Slots ever written.
    pub const fn written(&self) -> u64 {
        self.written
    }

    /// Slots the ITS is known to have consumed.
    pub const fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Records a new GITS_CREADR byte offset. Returns false (and changes nothing) when the
    /// offset is impossible: outside the ring, misaligned, or beyond what was written.
    pub fn observe(&mut self, creadr: usize) -> bool {
        if creadr >= self.size || !creadr.is_multiple_of(SLOT) {
            return false;
        }
        let moved = ((creadr + self.size - self.last_rd) % self.size / SLOT) as u64;
        if self.consumed + moved > self.written {
            return false;
        }
        self.consumed += moved;
        self.last_rd = creadr;
        true
    }

    /// Slots free for writing, given the last observed GITS_CREADR.
    pub const fn free(&self) -> usize {
        self.capacity() - (self.written - self.consumed) as usize
    }

    /// Reserves `n` slots (at most [`Ring::free`]): returns the one or two byte spans to
    /// write, in order, and advances the write offset. `None` if there is not enough room.
    pub fn reserve(&mut self, n: usize) -> Option<(Span, Option<Span>)> {
        if n == 0 || n > self.free() {
            return None;
        }
        let bytes = n * SLOT;
        let start = self.wr;
        let first_len = bytes.min(self.size - start);
        let first = Span {
            offset: start,
            len: first_len,
        };
        let second = (first_len < bytes).then_some(Span {
            offset: 0,
            len: bytes - first_len,
        });
        self.wr = (start + bytes) % self.size;
        self.written += n as u64;
        Some((first, second))
    }

    /// The ticket that completes once everything written so far is consumed.
    pub const fn ticket(&self) -> Ticket {
        Ticket(self.written)
    }

    /// Whether the ITS has consumed everything up to `t`.
    pub const fn is_done(&self, t: Ticket) -> bool {
        self.consumed >= t.0
    }

    /// The byte offset of the slot with absolute sequence number `seq` (for reporting).
    pub const fn offset_of(&self, seq: u64) -> usize {
        // The write offset corresponds to `written`; walk back from there.
        let back = ((self.written - seq) % (self.size / SLOT) as u64) as usize * SLOT;
        (self.wr + self.size - back) % self.size
    }

    /// The byte offset of the slot with absolute sequence number `seq`, if that slot is
    /// written but not yet known to be consumed (still in the ring). The inverse of
    /// [`Ring::seq_at`].
    pub fn in_flight_offset(&self, seq: u64) -> Option<usize> {
        if seq < self.consumed || seq >= self.written {
            return None;
        }
        let slots = (self.size / SLOT) as u64;
        let ahead = ((seq - self.consumed) % slots) as usize;
        Some((self.last_rd + ahead * SLOT) % self.size)
    }

    /// The absolute sequence number of the slot at byte offset `offset`, among the slots
    /// written but not yet consumed. `None` if no such slot is in flight. The inverse of
    /// [`Ring::in_flight_offset`].
    pub fn seq_at(&self, offset: usize) -> Option<u64> {
        if offset >= self.size || !offset.is_multiple_of(SLOT) {
            return None;
        }
        let dist = ((offset + self.size - self.last_rd) % self.size / SLOT) as u64;
        let seq = self.consumed + dist;
        (seq < self.written).then_some(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offset_of_inverts_seq_at() {
        let mut r = Ring::new(0x1000);
        // Wrap once: 100 written and consumed, then 50 in flight across the end.
        r.reserve(100).unwrap();
        assert!(r.observe(100 * SLOT));
        r.reserve(50).unwrap();
        for seq in 100..150 {
            let off = r.in_flight_offset(seq).unwrap();
            assert_eq!(r.seq_at(off), Some(seq));
        }
        assert_eq!(r.in_flight_offset(99), None, "consumed");
        assert_eq!(r.in_flight_offset(150), None, "not written");
    }

    #[test]
    fn empty_ring() {
        let r = Ring::new(4096);
        assert_eq!(r.capacity(), 127);
        assert_eq!(r.free(), 127);
        assert!(r.is_done(r.ticket()));
    }

    #[test]
    fn one_slot_stays_empty() {
        let mut r = Ring::new(4 * SLOT);
        assert!(r.reserve(4).is_none());
        assert!(r.reserve(3).is_some());
        assert_eq!(r.free(), 0);
        assert_eq!(r.write_offset(), 96);
    }

    #[test]
    fn wraps_into_two_spans() {
        let mut r = Ring::new(8 * SLOT);
        let (a, b) = r.reserve(6).unwrap();
        assert_eq!(
            (a, b),
            (
                Span {
                    offset: 0,
                    len: 192
                },
                None
            )
        );
        assert!(r.observe(192));
        let t0 = Ticket(6);
        assert!(r.is_done(t0));
        let (a, b) = r.reserve(4).unwrap();
        assert_eq!(
            a,
            Span {
                offset: 192,
                len: 64
            }
        );
        assert_eq!(b, Some(Span { offset: 0, len: 64 }));
        assert_eq!(r.write_offset(), 64);
        let t = r.ticket();
        assert!(!r.is_done(t));
        // CREADR moves past the wrap point: 2 + 2 slots consumed.
        assert!(r.observe(64));
        assert!(r.is_done(t));
    }

    #[test]
    fn impossible_creadr_is_refused() {
        let mut r = Ring::new(8 * SLOT);
        r.reserve(2).unwrap();
        assert!(!r.observe(96)); // beyond what was written
        assert!(!r.observe(8 * SLOT));
        assert!(!r.observe(33));
        assert!(r.observe(32));
        assert_eq!(r.consumed(), 1);
    }

    #[test]
    fn offsets_and_sequences() {
        let mut r = Ring::new(8 * SLOT);
        r.reserve(6).unwrap();
        r.observe(128);
        r.reserve(3).unwrap(); // seqs 6, 7, 8 at offsets 192, 224, 0
        assert_eq!(r.offset_of(6), 192);
        assert_eq!(r.offset_of(8), 0);
        assert_eq!(r.seq_at(224), Some(7));
        assert_eq!(r.seq_at(0), Some(8));
        assert_eq!(r.seq_at(32), None); // consumed long ago
    }

    proptest! {
        /// Whatever the batch sizes and however far the ITS gets, tickets complete exactly when
        /// the ITS has consumed through them, spans never overlap unconsumed slots, and the
        /// spans of one reservation are contiguous in ring order.
        #[test]
        fn tickets_complete_in_order(slots in 2usize..40, ops in proptest::collection::vec((1usize..50, 0usize..50), 1..200)) {
            let size = slots * SLOT;
            let mut r = Ring::new(size);
            let mut its_rd = 0usize; // the model ITS's offset
            let mut its_consumed = 0u64;
            let mut tickets = std::vec::Vec::new();
            for (n, consume) in ops {
                if let Some((a, b)) = r.reserve(n) {
                    prop_assert_eq!(a.offset, (r.write_offset() + size - n * SLOT) % size);
                    let total = a.len + b.map_or(0, |s| s.len);
                    prop_assert_eq!(total, n * SLOT);
                    if let Some(b) = b { prop_assert_eq!(b.offset, 0); prop_assert_eq!(a.offset + a.len, size); }
                    tickets.push(r.ticket());
                } else {
                    prop_assert!(n > r.free());
                }
                let in_flight = r.written() - its_consumed;
                let k = (consume as u64).min(in_flight);
                its_consumed += k;
                its_rd = (its_rd + k as usize * SLOT) % size;
                prop_assert!(r.observe(its_rd));
                prop_assert_eq!(r.consumed(), its_consumed);
                for t in &tickets {
                    prop_assert_eq!(r.is_done(*t), its_consumed >= t.0);
                }
            }
        }
    }
}
