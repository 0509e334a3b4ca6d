// SPDX-License-Identifier: MIT OR Apache-2.0
//! What Linux allocates for GICv4.0 tables, from the sizes its GICv3 ITS driver
//! (`drivers/irqchip/irq-gic-v3-its.c`) uses, for the report's comparison with the memory this
//! driver was measured to allocate. Formulas only, restated from what that driver allocates
//! (`its_vpe_init`, `its_alloc_tables`, `its_setup_baser`) and its size macros:
//!
//! - `lpi_id_bits = min(GICD_TYPER.IDbits + 1, 16)` (`ITS_MAX_LPI_NRBITS`), one value for the
//!   whole system; `LPI_NRBITS` is that;
//! - per VM, the vLPI configuration table `vprop_page`: `LPI_PROPBASE_SZ = ALIGN(2^LPI_NRBITS,
//!   64 KiB)` bytes, whatever number of vLPIs the VM uses (`its_vpe_irq_domain_alloc` ->
//!   `its_allocate_prop_table`);
//! - per vPE, the virtual pending table `vpt_page`: `LPI_PENDBASE_SZ = ALIGN(2^LPI_NRBITS / 8,
//!   64 KiB)` bytes (`its_vpe_init` -> `its_allocate_pending_table`); VMAPP's VPT_size is
//!   `LPI_NRBITS - 1` accordingly;
//! - the vPE table (GITS_BASER of type vPE, `its_alloc_tables` with `ITS_MAX_VPEID_BITS` = 16):
//!   two-level when `entry_size << 16 > 2 * page`, then a level-1 table of
//!   `2^16 / (page / entry_size)` 8-byte entries rounded up to the page allocation (at least
//!   one ITS page), plus one ITS page per `page / entry_size` vPE IDs in use
//!   (`its_alloc_table_entry`); otherwise one flat table of `entry_size << 16` bytes.
//!
//! Kernel allocations are whole buddy blocks of 4 KiB pages: [`alloc_bytes`].

/// Linux's vPE ID width on GICv4.0 (`ITS_MAX_VPEID_BITS`).
pub const VPEID_BITS: u32 = 16;
/// Linux's cap on LPI ID bits (`ITS_MAX_LPI_NRBITS`).
pub const MAX_LPI_BITS: u32 = 16;
/// The kernel's page size assumed (arm64 with 4 KiB pages).
pub const KERNEL_PAGE: u64 = 4096;

/// GICR reads and writes of Linux's GICv4.0 vPE schedule on a GIC without
/// GICR_TYPER.Dirty (QEMU): `its_vpe_schedule` writes GICR_VPROPBASER and GICR_VPENDBASER,
/// and `its_wait_vpt_parse_complete` polls only when Dirty is implemented.
pub const SCHEDULE_GICR: (u32, u32) = (0, 2);
/// GICR reads and writes of Linux's GICv4.0 vPE deschedule when GICR_VPENDBASER.Dirty never
/// reads 1 (QEMU): `its_clear_vpend_valid` reads GICR_VPENDBASER, writes it with Valid
/// cleared, then reads it until Dirty is clear (once).
pub const DESCHEDULE_GICR: (u32, u32) = (2, 1);

/// What Linux allocates, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxTables {
    /// `LPI_NRBITS`.
    pub lpi_bits: u32,
    /// Per VM: the vLPI configuration table.
    pub per_vm: u64,
    /// Per vPE: the virtual pending table.
    pub per_vpe: u64,
    /// The vPE table at ITS probe (level 1, or the flat table).
    pub vpe_table: u64,
    /// One level-2 page of the vPE table (0 when flat).
    pub vpe_table_l2_page: u64,
    /// vPE IDs one level-2 page covers (0 when flat).
    pub vpe_ids_per_l2: u64,
}

/// What the page allocator hands out for `bytes`: a power-of-two number of kernel pages
/// (`alloc_pages(get_order(bytes))`).
pub fn alloc_bytes(bytes: u64) -> u64 {
    bytes.max(1).div_ceil(KERNEL_PAGE).next_power_of_two() * KERNEL_PAGE
}

/// Linux's allocations on a GIC whose distributor reports `dist_id_bits` (GICD_TYPER.IDbits +
/// 1) and whose ITS's vPE table has `page`-byte pages and `entry`-byte entries.
pub fn tables(dist_id_bits: u32, page: u64, entry: u64) -> LinuxTables {
    let lpi_bits = dist_id_bits.min(MAX_LPI_BITS);
    let align64k = |b: u64| b.next_multiple_of(0x1_0000);
    let per_vm = alloc_bytes(align64k(1 << lpi_bits));
    let per_vpe = alloc_bytes(align64k((1u64 << lpi_bits) / 8));
    let flat = entry << VPEID_BITS;
    let (vpe_table, l2, per_l2) = if flat > 2 * page {
        let per_l2 = page / entry;
        let l1_entries = (1u64 << VPEID_BITS).div_ceil(per_l2);
        (alloc_bytes((l1_entries * 8).max(page)), page, per_l2)
    } else {
        (alloc_bytes(flat.max(page)), 0, 0)
    };
    LinuxTables {
        lpi_bits,
        per_vm,
        per_vpe,
        vpe_table,
        vpe_table_l2_page: l2,
        vpe_ids_per_l2: per_l2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_gicv4_figures() {
        // QEMU virt: GICD_TYPER.IDbits = 15 (16 bits), vPE table with 64 KiB pages, 8-byte
        // entries: 64 KiB per VM, 64 KiB per vPE, a 64 KiB level-1 table, 64 KiB level-2 pages
        // of 8192 vPE IDs.
        let t = tables(16, 0x1_0000, 8);
        assert_eq!(t.lpi_bits, 16);
        assert_eq!(t.per_vm, 0x1_0000);
        assert_eq!(t.per_vpe, 0x1_0000);
        assert_eq!(t.vpe_table, 0x1_0000);
        assert_eq!(t.vpe_table_l2_page, 0x1_0000);
        assert_eq!(t.vpe_ids_per_l2, 8192);
    }

    #[test]
    fn wider_distributors_are_capped_and_narrower_ones_still_take_64k() {
        assert_eq!(tables(24, 0x1_0000, 8).per_vm, 0x1_0000);
        let t = tables(14, 0x1_0000, 8);
        assert_eq!(t.lpi_bits, 14);
        assert_eq!(t.per_vm, 0x1_0000);
        assert_eq!(t.per_vpe, 0x1_0000);
    }

    #[test]
    fn small_pages_and_entries() {
        // 4 KiB pages: 512 IDs per level-2 page, 128 level-1 entries (1 KiB) -> one page.
        let t = tables(16, 0x1000, 8);
        assert_eq!(t.vpe_ids_per_l2, 512);
        assert_eq!(t.vpe_table, 0x1000);
        // A table small enough to be flat: 1-byte entries, 64 KiB pages.
        let f = tables(16, 0x1_0000, 1);
        assert_eq!(f.vpe_table_l2_page, 0);
        assert_eq!(f.vpe_table, 0x1_0000);
        assert_eq!(alloc_bytes(3 * 4096), 4 * 4096);
        assert_eq!(alloc_bytes(1), 4096);
    }
}
