// SPDX-License-Identifier: MIT OR Apache-2.0
//! The doorbell state protocol: how the interrupt path and the calls that enable, disable,
//! settle and move a doorbell share one state word without a lock.
//!
//! Everything here works on [`Word`]s, 32-bit atomic cells, and on closures for what touches
//! the GIC (the property byte, the invalidation), so the same code runs on the doorbells'
//! state buffer in the driver and on `loom`'s atomics in the model-checked tests
//! (`tests/loom.rs`, built with `--cfg loom`, where this module is public).
//!
//! # The words of one doorbell
//! - *flags*: [15:0] vPE ID + 1 (0: free), bit 16 [`ENABLED`] (the records say the property
//!   byte enables it), bit 17 [`NEEDS_INV`] (the byte changed since the GIC was last told),
//!   [31:20] an epoch that every disable by the interrupt path advances.
//! - *cpu*: the CPU whose redistributor the doorbell targets (written only by
//!   [`move_cpu`], read by the calls that need that redistributor).
//! - *rings*: how many times the doorbell was handled, wrapping.
//! - *generation*: advanced when the doorbell is freed, so a waiter of a freed doorbell
//!   stops waiting.
//!
//! # Who may run at the same time
//! [`ring`] (the interrupt path) may run at any time on any CPU, any number of times at once
//! (a doorbell moved to another CPU can still be taken once on the old one). The calls for
//! one doorbell ([`set_enabled`], [`settle`], [`move_cpu`]) do not overlap one another: the
//! caller serialises them (the GICv4 layer makes them under the vPE's lock). Waiters
//! ([`arm`], [`woken`]) only read.
//!
//! # Why the records never say "enabled" over a disabled property byte
//! The danger is the interrupt path's byte write landing after an enable on another CPU: the
//! records then say enabled, nothing re-enables the doorbell, and a blocked vCPU is never
//! woken. So the interrupt path writes the byte *first* (H2) and only then changes the flags
//! (H3: clear ENABLED, set NEEDS_INV, advance the epoch: always a new value), and the
//! setters commit with a compare-and-swap against the flags they read before writing the
//! byte. For a setter S (load L, byte B, invalidate, commit C) and a handler H (H1 saw
//! ENABLED, H2, H3):
//! - H3 before L: L reads H3 (acquire against H3's release), so H2 happened before B: B is
//!   the byte's last write, and it agrees with what C records.
//! - H3 between L and C: the flags changed (the epoch makes it a new value even when the
//!   other bits are the same), so C fails. H2, before H3, is done: S writes and invalidates
//!   again from the new flags (once; a handler can only change the flags again if it saw
//!   ENABLED before, so each handler fails at most one commit), or for a disable simply
//!   stops: both wrote "disabled".
//! - H3 after C: H3 clears ENABLED, so the records say disabled whatever the byte says.
//!
//! The records may end "disabled" over an enabled byte (H2 before B, C before H3: the
//! handler of a doorbell that rang before the enable clears it after): harmless, it can only
//! ring once more, and [`settle`] writes the byte from the records again.
//!
//! The interrupt path never waits and takes no lock: a load, a byte store, two atomic
//! read-modify-writes. The setters never wait for it either; each retries at most once per
//! handler that raced it.

/// Bits [15:0] of the flags: vPE ID + 1, 0 for a free doorbell.
pub const VPE_MASK: u32 = 0xffff;
/// The records say the property byte enables the doorbell.
pub const ENABLED: u32 = 1 << 16;
/// The property byte changed since the last invalidation.
pub const NEEDS_INV: u32 = 1 << 17;
/// One step of the epoch in bits [31:20].
const EPOCH_ONE: u32 = 1 << 20;

/// A 32-bit atomic cell: the seam between the protocol and its storage.
///
/// Loads acquire, stores release, updates acquire and release.
pub trait Word {
    /// The value.
    fn load(&self) -> u32;
    /// Replaces the value.
    fn store(&self, v: u32);
    /// Replaces the value `x` with `f(x)` in one atomic step (retrying `f` if another CPU
    /// got in between) and returns the old value. Always writes, even `f(x) == x`.
    fn update(&self, f: impl FnMut(u32) -> u32) -> u32;
}

/// What the interrupt path found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rang {
    /// The flags' vPE field (vPE ID + 1).
    pub vpe_field: u32,
    /// The doorbell was enabled: this handler disabled it. Otherwise it rang while already
    /// disabled (late: made pending before a disable took effect).
    pub disabled: bool,
}

/// The interrupt path (H): if the flags say enabled, writes the property byte disabled
/// (`disable`, H2) and then clears ENABLED, sets NEEDS_INV and advances the epoch (H3); in
/// any case counts a ring in `rings` (H4), which wakes the doorbell's waiters. `None` for a
/// free doorbell (nothing done).
pub fn ring<W: Word>(flags: &W, rings: &W, disable: impl FnOnce()) -> Option<Rang> {
    let w = flags.load();
    let vpe_field = w & VPE_MASK;
    if vpe_field == 0 {
        return None;
    }
    let disabled = w & ENABLED != 0;
    if disabled {
        disable();
        flags.update(|x| ((x & !ENABLED) | NEEDS_INV).wrapping_add(EPOCH_ONE));
    }
    rings.update(|r| r.wrapping_add(1));
    Some(Rang {
        vpe_field,
        disabled,
    })
}

/// Enables or disables (S): writes the property byte (`write`), invalidates (`invalidate`),
/// then commits ENABLED and clears NEEDS_INV if no handler changed the flags meanwhile (see
/// the module documentation for the argument). On an invalidation error the byte is put
/// back as the records say and NEEDS_INV is set, so the caller can retry and the next
/// [`settle`] invalidates again.
///
/// # Errors
/// The first error of `write` or `invalidate`.
pub fn set_enabled<W: Word, E>(
    flags: &W,
    enable: bool,
    mut write: impl FnMut(bool) -> Result<(), E>,
    mut invalidate: impl FnMut() -> Result<(), E>,
) -> Result<(), E> {
    for _ in 0..2 {
        let w0 = flags.load();
        let was = w0 & ENABLED != 0;
        write(enable)?;
        if let Err(e) = invalidate() {
            // Put the byte back as the records have it; the GIC may have read the new one,
            // so an invalidation is owed.
            let _ = write(was);
            let old = flags.update(|x| x | NEEDS_INV);
            if old != w0 {
                // A handler disabled the doorbell meanwhile: that stands, whatever the order
                // of its byte write and the one above.
                let _ = write(false);
            }
            return Err(e);
        }
        let new = (w0 & !(ENABLED | NEEDS_INV)) | if enable { ENABLED } else { 0 };
        let old = flags.update(|x| if x == w0 { new } else { x });
        if old == w0 || !enable {
            // Committed; or a disable that a handler raced: both wrote the byte disabled,
            // and the handler's NEEDS_INV asks for the (harmless) extra invalidation.
            return Ok(());
        }
        // A handler disabled the doorbell between the load and the commit, and its byte
        // write is done: enable again from the flags it left.
    }
    // Handlers raced both rounds (the doorbell rang twice in a row): it rang, so leave it
    // disabled, as the flags say, with the invalidation owed.
    let _ = write(false);
    Ok(())
}

/// Issues the invalidation the interrupt path owes, if any (the settle of a doorbell), and
/// with `clear` whatever else `act` does in the same batch (clearing its pending state): the
/// byte is written again from the records (`write`), then `act(invalidate)` runs, then
/// NEEDS_INV is cleared unless a handler disabled the doorbell meanwhile (then once more).
/// Returns whether anything was done.
///
/// # Errors
/// The first error of `write` or `act`; NEEDS_INV then stays set.
pub fn settle<W: Word, E>(
    flags: &W,
    mut clear: bool,
    mut write: impl FnMut(bool) -> Result<(), E>,
    mut act: impl FnMut(bool, bool) -> Result<(), E>,
) -> Result<bool, E> {
    let mut did = false;
    for _ in 0..2 {
        let w0 = flags.load();
        let inv = w0 & NEEDS_INV != 0;
        if !inv && !clear {
            return Ok(did);
        }
        if inv {
            write(w0 & ENABLED != 0)?;
        }
        act(inv, clear)?;
        did = true;
        clear = false;
        if !inv || flags.update(|x| if x == w0 { x & !NEEDS_INV } else { x }) == w0 {
            return Ok(true);
        }
    }
    // Handlers raced both rounds: the invalidation stays owed.
    Ok(did)
}

/// Moves the doorbell to `cpu` in the records (the caller moved it in the GIC first).
pub fn move_cpu<W: Word>(cpu_word: &W, cpu: u32) {
    cpu_word.store(cpu);
}

/// A waiter's view of one doorbell: the generation it was attached in and the ring count it
/// was armed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Armed {
    /// The doorbell's generation when attached.
    pub generation: u32,
    /// Its ring count when armed.
    pub seen: u32,
}

/// Frees a doorbell: the flags first, then a new generation, so a waiter that reads the new
/// generation also sees the doorbell free.
pub fn release<W: Word>(flags: &W, gen_word: &W) {
    // A read-modify-write, not a store: a late handler's update of the same word may run at
    // the same time, and each must see the other whole.
    flags.update(|_| 0);
    gen_word.update(|g| g.wrapping_add(1));
}

/// Attaches a waiter to an allocated doorbell, armed. The generation is read before the
/// allocation is checked, so a free in between shows as a new generation and the waiter
/// never follows a freed doorbell without knowing. `None` for a free doorbell.
pub fn attach<W: Word>(flags: &W, rings: &W, gen_word: &W) -> Option<Armed> {
    let generation = gen_word.load();
    if flags.load() & VPE_MASK == 0 {
        return None;
    }
    arm(rings, gen_word, generation)
}

/// Arms a waiter (attached in `generation`): the next ring wakes it. `None` if the doorbell
/// was freed since it was attached.
pub fn arm<W: Word>(rings: &W, gen_word: &W, generation: u32) -> Option<Armed> {
    let seen = rings.load();
    (gen_word.load() == generation).then_some(Armed { generation, seen })
}

/// Whether a waiter armed at `a` is woken: the doorbell rang since, or was freed.
pub fn woken<W: Word>(rings: &W, gen_word: &W, a: Armed) -> bool {
    gen_word.load() != a.generation || rings.load() != a.seen
}
