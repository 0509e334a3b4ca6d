// SPDX-License-Identifier: MIT OR Apache-2.0
//! Stage 1 identity map and MMU enable, for EL2 (hyp) and EL1 (guest).
//!
//! 4 KiB granule, 48-bit VA (T0SZ = 16, walks start at level 0), one level 0 table and one
//! level 1 table of 1 GiB blocks:
//!
//! | VA = PA                          | Memory type                         |
//! |----------------------------------|-------------------------------------|
//! | `[0, 1 GiB)`                     | Device-nGnRE, execute-never (GIC, ITS, UART, PCIe MMIO) |
//! | `[1 GiB, 2 GiB)`                 | Normal WB RA WA, inner shareable (RAM) |
//! | `[0x40_0000_0000, +1 GiB)`       | Device-nGnRE (high PCIe ECAM at 0x40_1000_0000) |
//!
//! Everything else faults. Each image builds its own tables (the EL1 and EL2 descriptors
//! differ in the AP[1] and XN bits).
//!
//! # Why the MMU goes on before any Rust code that could use atomics
//!
//! With the MMU off every data access is Device-nGnRnE: alignment is strict and exclusives are
//! not guaranteed to work, so locks would be unreliable. The tables are written with plain
//! stores, invalidated to the PoC (no stale cached copy can shadow them once the walker reads
//! them cacheably), and the MMU is enabled before `main` runs.
//!
//! # Why hand-written
//! `aarch64-paging` builds general page tables, but through a table allocator (the heap by
//! default) that does not exist before the MMU is on (the images' allocator takes a lock), and
//! the whole map here is three 1 GiB block descriptors in a static, written with plain stores.

use core::cell::UnsafeCell;

use crate::{read_sysreg, write_sysreg};

/// MAIR attribute index of Device-nGnRE.
const ATTR_DEVICE: u64 = 0;
/// MAIR attribute index of Normal, inner/outer write-back read/write-allocate.
const ATTR_NORMAL: u64 = 1;
/// MAIR: Attr0 = 0x04 (Device-nGnRE), Attr1 = 0xff (Normal WB RA WA).
pub const MAIR: u64 = 0x04 | (0xff << 8);

const DESC_TABLE: u64 = 0b11;
const DESC_BLOCK: u64 = 0b01;
/// AP[1]: RES1 in the EL2 (single privilege level) regime; at EL1 it would grant EL0 access.
const AP1: u64 = 1 << 6;
/// SH = inner shareable.
const SH_INNER: u64 = 0b11 << 8;
/// Access flag (no hardware AF management: a clear AF faults).
const AF: u64 = 1 << 10;
/// PXN at EL1&0 (RES0 at EL2).
const PXN: u64 = 1 << 53;
/// XN at EL2, UXN at EL1&0.
const XN: u64 = 1 << 54;

const GIB: u64 = 1 << 30;

/// Which translation regime the tables are for.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Regime {
    /// EL2 (non-VHE, one VA range, one privilege level).
    El2,
    /// EL1&0 (the guest).
    El1,
}

#[repr(C, align(4096))]
struct Tables {
    l0: [u64; 512],
    l1: [u64; 512],
}

struct TableCell(UnsafeCell<Tables>);

// SAFETY: written once by the boot CPU before any other CPU runs or enables its MMU (see
// `init_tables`), read only by the table walker afterwards.
unsafe impl Sync for TableCell {}

static TABLES: TableCell = TableCell(UnsafeCell::new(Tables {
    l0: [0; 512],
    l1: [0; 512],
}));

/// The level 1 block descriptor for the 1 GiB block at `pa`.
pub const fn block(pa: u64, normal: bool, regime: Regime) -> u64 {
    let ap = match regime {
        Regime::El2 => AP1,
        Regime::El1 => 0,
    };
    if normal {
        // Code runs from RAM: executable at the translation regime's own level, never at EL0.
        let xn = match regime {
            Regime::El2 => 0,
            Regime::El1 => XN,
        };
        pa | DESC_BLOCK | (ATTR_NORMAL << 2) | ap | SH_INNER | AF | xn
    } else {
        let xn = match regime {
            Regime::El2 => XN,
            Regime::El1 => XN | PXN,
        };
        pa | DESC_BLOCK | (ATTR_DEVICE << 2) | ap | AF | xn
    }
}

/// Writes the identity map into this image's tables.
///
/// # Safety
///
/// Called once, by the boot CPU, before any CPU of this image has enabled its MMU with these
/// tables.
pub unsafe fn init_tables(regime: Regime) {
    let t = TABLES.0.get();
    // SAFETY: the caller promised no one else uses the tables yet; the pointer comes from a
    // static, so it is valid and aligned.
    let t = unsafe { &mut *t };
    t.l1.fill(0);
    t.l0.fill(0);
    t.l1[0] = block(0, false, regime);
    t.l1[1] = block(GIB, true, regime);
    t.l1[256] = block(256 * GIB, false, regime);
    t.l0[0] = (t.l1.as_ptr() as u64) | DESC_TABLE;
    // SAFETY: the tables were written with the MMU off, straight to memory: any cached copy of
    // these lines is stale and must not be written back.
    unsafe {
        crate::cache::inval_to_poc(t as *const Tables as usize, core::mem::size_of::<Tables>())
    };
}

fn ttbr0() -> u64 {
    TABLES.0.get() as u64
}

/// Physical address size field for TCR (PS / IPS): the CPU's PARange, capped at 48 bits.
fn pa_size_field() -> u64 {
    (read_sysreg!(id_aa64mmfr0_el1) & 0xf).min(0b101)
}

/// T0SZ = 16, inner/outer WBWA walks, inner shareable, 4 KiB granule.
const TCR_COMMON: u64 = 16 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12);

/// SCTLR_EL2 RES1 bits (non-VHE): 4, 5, 11, 16, 18, 22, 23, 28, 29.
const SCTLR_EL2_RES1: u64 = 0x30C5_0830;
/// SCTLR_EL1 bits that are RES1 or should be set for a reset-safe value: 11 (EOS), 20 (TSCXT),
/// 22 (EIS), 23 (SPAN), 28 (nTLSMD), 29 (LSMAOE).
pub const SCTLR_EL1_RESET: u64 = 0x30D0_0800;
/// M (MMU), SA (SP alignment check), C (data cache), I (instruction cache).
const SCTLR_M_SA_C_I: u64 = 1 | (1 << 3) | (1 << 2) | (1 << 12);

/// SCTLR_EL2 value with the MMU and caches on.
pub const SCTLR_EL2_ON: u64 = SCTLR_EL2_RES1 | SCTLR_M_SA_C_I;
/// SCTLR_EL1 value with the MMU and caches on.
pub const SCTLR_EL1_ON: u64 = SCTLR_EL1_RESET | SCTLR_M_SA_C_I;

/// Enables the EL2 MMU and caches with the tables from [`init_tables`].
///
/// # Safety
///
/// Called at EL2 with the MMU off, after [`init_tables`]`(Regime::El2)`; the code and stack in
/// use are in identity-mapped RAM.
pub unsafe fn enable_el2() {
    let tcr = TCR_COMMON | (pa_size_field() << 16) | (1 << 23) | (1 << 31);
    // SAFETY: the MMU is off, so changing the translation registers affects nothing until
    // SCTLR_EL2.M is set below; the tables identity-map the code and stack (caller's promise),
    // so execution continues at the same addresses once it is.
    unsafe {
        write_sysreg!(mair_el2, MAIR);
        write_sysreg!(tcr_el2, tcr);
        write_sysreg!(ttbr0_el2, ttbr0());
        core::arch::asm!("isb", "tlbi alle2", "dsb ish", "isb", options(nostack));
        core::arch::asm!("ic iallu", "dsb ish", "isb", options(nostack));
        write_sysreg!(sctlr_el2, SCTLR_EL2_ON);
        core::arch::asm!("isb", options(nostack));
    }
}

/// Enables the EL1 MMU and caches with the tables from [`init_tables`].
///
/// # Safety
///
/// Called at EL1 with the MMU off, after [`init_tables`]`(Regime::El1)`; the code and stack in
/// use are in identity-mapped RAM.
pub unsafe fn enable_el1() {
    // TTBR1 walks disabled (EPD1) but TG1 must still hold a valid granule (0b10 = 4 KiB).
    let tcr = TCR_COMMON | (1 << 23) | (0b10 << 30) | (pa_size_field() << 32);
    // SAFETY: as for `enable_el2`, for the EL1&0 regime.
    unsafe {
        write_sysreg!(mair_el1, MAIR);
        write_sysreg!(tcr_el1, tcr);
        write_sysreg!(ttbr0_el1, ttbr0());
        core::arch::asm!("isb", "tlbi vmalle1", "dsb ish", "isb", options(nostack));
        core::arch::asm!("ic iallu", "dsb ish", "isb", options(nostack));
        write_sysreg!(sctlr_el1, SCTLR_EL1_ON);
        core::arch::asm!("isb", options(nostack));
    }
}

/// Whether SCTLR_EL2 has the MMU (M), data cache (C) and instruction cache (I) enabled.
pub fn el2_mmu_and_caches_on() -> bool {
    let s = read_sysreg!(sctlr_el2);
    s & 1 != 0 && s & (1 << 2) != 0 && s & (1 << 12) != 0
}

/// Whether SCTLR_EL1 has the MMU, data cache and instruction cache enabled.
pub fn el1_mmu_and_caches_on() -> bool {
    let s = read_sysreg!(sctlr_el1);
    s & 1 != 0 && s & (1 << 2) != 0 && s & (1 << 12) != 0
}
