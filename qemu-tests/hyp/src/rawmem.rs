// SPDX-License-Identifier: MIT OR Apache-2.0
//! Raw memory access: the one module of the hyp that reads or writes memory through raw
//! pointers (`read_volatile` / `write_volatile`). Audited here, and nowhere else.
//!
//! Everything else in the hyp reaches memory through Rust references or device registers
//! through `safe-mmio` blocks (the GIC's through [`crate::gic_hw`]). What is left cannot be
//! either:
//!
//! - **Memory the guest shares** ([`read_guest_u16`], [`read_guest_u64`]): the guest image
//!   writes its counters and sample tables while the hyp runs or between runs, and the guest
//!   image header was placed by QEMU's loader. No Rust object lives there, so a reference would
//!   claim what the hyp cannot promise (that nobody else writes it); each read is a single
//!   volatile load of a checked, aligned address inside the guest's region.
//! - **Stack painting** ([`paint`], [`painted_words`]): the high-water mark of each CPU's stack
//!   is found by filling the unused part with a pattern and counting what is left. That memory
//!   is below the live stack (or another CPU's stack), outside any Rust object.
//! - **A deliberate fault** ([`fault_read`]): the runner's self-check that an unexpected
//!   exception cannot pass for success reads an unmapped address.
//! - **The Linux guest's boot parameters** ([`read_boot_params`]): a text block QEMU's loader
//!   put in the hyp's reserved memory before boot (`linux::params`); no Rust object lives
//!   there.
//! - **The hyp's own image, as bytes** ([`image_checksum`]): `linux_isolation` checks that a
//!   guest that tried to write into the hyp left its code unchanged; code is not a Rust object
//!   either.
//! - **QEMU's device tree** ([`qemu_dtb`]): the blob QEMU wrote at the start of RAM before
//!   boot, read-only for the hyp's life.
//! - **The Linux guest's RAM** ([`copy_to_guest`], [`read_from_guest`]): the guest's device
//!   tree is written there before the guest runs; its ITS command queue and LPI
//!   configuration table are read there while it runs (the guest writes them, the hyp only
//!   reads, byte by byte: a torn command is the guest's own race, as on hardware).

use common::platform::{GUEST_BASE, GUEST_SIZE, HYP_BASE};

use common::platform::RAM_BASE;

use crate::linux::layout::{BOOT_PARAMS, BOOT_PARAMS_SIZE, GUEST_RAM_BASE, GUEST_RAM_SIZE};

/// Largest device tree QEMU writes (its `virt` machine's limit).
const QEMU_DTB_MAX: usize = 1 << 20;

/// Whether `[addr, addr + len)` lies in the guest's region and `addr` is `align`-aligned.
fn in_guest(addr: usize, len: usize, align: usize) -> bool {
    addr.is_multiple_of(align)
        && addr >= GUEST_BASE
        && addr
            .checked_add(len)
            .is_some_and(|end| end <= GUEST_BASE + GUEST_SIZE)
}

/// Reads the `u16` the guest keeps at `addr`; `None` outside the guest's region or unaligned.
pub fn read_guest_u16(addr: usize) -> Option<u16> {
    if !in_guest(addr, 2, 2) {
        return None;
    }
    // SAFETY: checked above: an aligned `u16` inside the guest's region, which is RAM identity
    // mapped as Normal memory (the guest maps it the same way: no stage 2). The guest only
    // stores whole `u16`s there (single-copy atomic), so the load sees one of its values.
    Some(unsafe { core::ptr::read_volatile(addr as *const u16) })
}

/// Reads the `u64` the guest (or QEMU's loader) put at `addr`; `None` outside the guest's
/// region or unaligned.
pub fn read_guest_u64(addr: usize) -> Option<u64> {
    if !in_guest(addr, 8, 8) {
        return None;
    }
    // SAFETY: as in `read_guest_u16`, for an aligned `u64` (zero where nothing was loaded).
    Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
}

/// Writes `pattern` to every aligned word of `[lo, hi)`.
///
/// # Safety
/// `[lo, hi)` is mapped RAM that no Rust object occupies and nothing else uses while this runs
/// (the unused part of the calling CPU's own stack, with IRQs masked).
pub unsafe fn paint(lo: usize, hi: usize, pattern: u64) {
    let mut a = lo.next_multiple_of(8);
    while a + 8 <= hi {
        // SAFETY: our caller's promise; aligned above.
        unsafe { core::ptr::write_volatile(a as *mut u64, pattern) };
        a += 8;
    }
}

/// How many aligned words from `lo` upwards, at most `len` bytes, still hold `pattern`.
///
/// # Safety
/// `[lo, lo + len)` is mapped RAM. It may be in use (another CPU's stack): each word is read
/// with one volatile load, and a word being written meanwhile gives either value, which only
/// moves the mark by a word.
pub unsafe fn painted_words(lo: usize, len: usize, pattern: u64) -> usize {
    let mut n = 0;
    while (n + 1) * 8 <= len {
        // SAFETY: our caller's promise; `lo` is aligned by the callers (stack bases).
        let w = unsafe { core::ptr::read_volatile((lo + n * 8) as *const u64) };
        if w != pattern {
            break;
        }
        n += 1;
    }
    n
}

/// Reads `addr`, which is expected to fault: the exception handler ends the run, so this never
/// returns a value in the scenarios that use it.
///
/// # Safety
/// The caller wants the fault: `addr` is not mapped (any other address must be valid to read
/// as a `u64`).
pub unsafe fn fault_read(addr: usize) -> u64 {
    // SAFETY: our caller's promise: the read faults and the handler ends the run.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// Copies the Linux boot parameter block (at most `buf.len()` bytes, up to its first NUL) into
/// `buf`; returns how many bytes were copied.
pub fn read_boot_params(buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() && n < BOOT_PARAMS_SIZE {
        // SAFETY: `[BOOT_PARAMS, BOOT_PARAMS + BOOT_PARAMS_SIZE)` is RAM the hyp reserves for
        // the block (outside its allocator and its image, identity mapped as Normal memory);
        // only QEMU's loader wrote it, before boot, and the guest cannot reach it (stage 2).
        let b = unsafe { core::ptr::read_volatile((BOOT_PARAMS + n) as *const u8) };
        if b == 0 {
            break;
        }
        buf[n] = b;
        n += 1;
    }
    n
}

/// A checksum (FNV-1a over 64-bit words) of `len` bytes of the hyp's own image from `addr`;
/// `None` unless the range is 8-byte aligned and inside the image.
pub fn image_checksum(addr: usize, len: usize) -> Option<u64> {
    unsafe extern "C" {
        static __image_end: u8;
    }
    let end = &raw const __image_end as usize;
    if !addr.is_multiple_of(8) || !len.is_multiple_of(8) || addr < HYP_BASE {
        return None;
    }
    if addr.checked_add(len).is_none_or(|e| e > end) {
        return None;
    }
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for a in (addr..addr + len).step_by(8) {
        // SAFETY: checked above: an aligned word inside the hyp's image (code, data or stacks),
        // identity mapped RAM; a word another CPU writes meanwhile reads as one of its values.
        let w = unsafe { core::ptr::read_volatile(a as *const u64) };
        hash = (hash ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Some(hash)
}

/// QEMU's device tree at the start of RAM (where it puts it for an ELF `-kernel` linked above
/// it), as long as its header says; `None` without the FDT magic or with a size beyond 1 MiB.
pub fn qemu_dtb() -> Option<&'static [u8]> {
    // SAFETY: the first 8 bytes of RAM, identity mapped; QEMU wrote them before boot and
    // nothing writes them since (the allocator and the image start above 1 MiB, the guest
    // cannot reach this memory through stage 2).
    let head = unsafe { core::ptr::read_volatile(RAM_BASE as *const [u8; 8]) };
    if head[..4] != [0xd0, 0x0d, 0xfe, 0xed] {
        return None;
    }
    let size = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if !(40..=QEMU_DTB_MAX).contains(&size) {
        return None;
    }
    // SAFETY: `[RAM_BASE, RAM_BASE + size)` lies in the first MiB of RAM, below the hyp's
    // image and allocator, identity mapped; QEMU wrote it before boot and no one writes it
    // for the hyp's life, so a shared slice of it stays valid and unchanged.
    Some(unsafe { core::slice::from_raw_parts(RAM_BASE as *const u8, size) })
}

/// Copies `bytes` into the Linux guest's RAM at `addr` (a guest physical address, equal to
/// the physical one) and cleans them to the point of coherency, so the guest reads them with
/// its MMU and caches off. Returns false, copying nothing, outside guest RAM.
pub fn copy_to_guest(addr: u64, bytes: &[u8]) -> bool {
    let end = addr.checked_add(bytes.len() as u64);
    if addr < GUEST_RAM_BASE || end.is_none_or(|e| e > GUEST_RAM_BASE + GUEST_RAM_SIZE) {
        return false;
    }
    for (i, b) in bytes.iter().enumerate() {
        // SAFETY: checked above: inside guest RAM, identity mapped Normal memory at EL2, which
        // holds no Rust object; no guest runs yet (the device tree is written before vCPU 0
        // first enters).
        unsafe { core::ptr::write_volatile((addr as usize + i) as *mut u8, *b) };
    }
    common::cache::clean_to_poc(addr as usize, bytes.len());
    true
}

/// Copies `buf.len()` bytes of the Linux guest's RAM at `addr` (a guest physical address,
/// equal to the physical one) into `buf`. Returns false, copying nothing, unless the whole
/// range is guest RAM.
pub fn read_from_guest(addr: u64, buf: &mut [u8]) -> bool {
    let end = addr.checked_add(buf.len() as u64);
    if addr < GUEST_RAM_BASE || end.is_none_or(|e| e > GUEST_RAM_BASE + GUEST_RAM_SIZE) {
        return false;
    }
    for (i, b) in buf.iter_mut().enumerate() {
        // SAFETY: checked above: inside guest RAM, identity mapped Normal cacheable memory at
        // EL2 (the guest maps it the same way, so the caches are coherent), which holds no
        // Rust object of the hyp's. The guest may write it meanwhile: a volatile byte load sees
        // one of its values.
        *b = unsafe { core::ptr::read_volatile((addr as usize + i) as *const u8) };
    }
    true
}
