// SPDX-License-Identifier: MIT OR Apache-2.0
//! Stage 2: the guest's view of physical memory, an identity map of what it may touch.
//!
//! With HCR_EL2.VM = 1 every guest access goes through a second translation, from the
//! guest's physical addresses (IPAs) to real ones, with tables the hypervisor owns. Here the
//! map is the identity (IPA = PA) but it is *partial*, which is what keeps the hypervisor
//! safe:
//!
//! | Mapped                                   | As                                   |
//! |------------------------------------------|--------------------------------------|
//! | guest RAM                                | Normal write-back, inner shareable, read/write/execute |
//! | the PL011 UART page                      | Device-nGnRE, read/write, never executed |
//! | PCIe: ECAM, 32-bit MMIO, I/O and 64-bit MMIO windows | Device-nGnRE, read/write, never executed |
//!
//! Everything else faults to EL2: the hypervisor's own RAM (image, stacks, page tables, GIC
//! tables), the GIC distributor and redistributors (trapped and emulated through `vgic`), the
//! ITS, and QEMU's other devices. A fault outside an emulated frame becomes an external abort
//! injected into the guest (`linux::inject`).
//!
//! The tables are built with `aarch64-paging`'s `Mapping` for the `Stage2` regime (it picks
//! 1 GiB and 2 MiB blocks where the ranges allow), over 4 KiB tables from the hyp's physical
//! allocator: no heap. The walk starts at level 0 with a 48-bit IPA space (VTCR_EL2.T0SZ =
//! 16, SL0 = 2), wide enough for the 64-bit PCIe window at 512 GiB. Every CPU loads the same
//! tables (VTTBR_EL2, VMID 0) with [`Stage2::load`].

use core::ptr::NonNull;

use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{PhysicalAddress, Stage2Attributes};
use aarch64_paging::paging::{
    Constraints, MemoryRegion, PAGE_SIZE, PageTable, Stage2 as Stage2Regime, Translation,
};
use common::palloc::PALLOC;
use common::{read_sysreg, write_sysreg};

/// Normal memory, write-back inner and outer, inner shareable, read/write, executable.
const RAM: Stage2Attributes = Stage2Attributes::VALID
    .union(Stage2Attributes::MEMATTR_NORMAL_INNER_WB)
    .union(Stage2Attributes::MEMATTR_NORMAL_OUTER_WB)
    .union(Stage2Attributes::SH_INNER)
    .union(Stage2Attributes::S2AP_ACCESS_RW)
    .union(Stage2Attributes::ACCESS_FLAG);

/// Device-nGnRE, read/write, never executable.
const DEVICE: Stage2Attributes = Stage2Attributes::VALID
    .union(Stage2Attributes::MEMATTR_DEVICE_nGnRE)
    .union(Stage2Attributes::S2AP_ACCESS_RW)
    .union(Stage2Attributes::ACCESS_FLAG)
    .union(Stage2Attributes::XN);

/// What a mapped range holds.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Kind {
    /// Guest RAM.
    Ram,
    /// A device the guest drives directly.
    Device,
}

/// One identity-mapped range.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Region {
    /// What it is, for messages.
    pub name: &'static str,
    /// First byte (4 KiB aligned).
    pub base: u64,
    /// Bytes (a multiple of 4 KiB).
    pub size: u64,
    /// RAM or device.
    pub kind: Kind,
}

/// Why the stage 2 tables could not be built.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Stage2Error {
    /// `aarch64-paging` refused a range.
    Map(&'static str, aarch64_paging::MapError),
    /// A range is not 4 KiB aligned.
    Unaligned(&'static str),
}

/// Page-table pages for `aarch64-paging`, from the hyp's physical allocator. Memory is
/// identity mapped at EL2, so a table's physical address is its address.
#[derive(Debug)]
pub struct PallocTables;

impl Translation<Stage2Attributes> for PallocTables {
    /// # Panics
    /// If the allocator is out of memory: stage 2 needs a handful of pages from an allocator
    /// of over 100 MiB, set up at boot; the `Translation` trait has no way to fail.
    fn allocate_table(&mut self) -> (NonNull<PageTable<Stage2Attributes>>, PhysicalAddress) {
        let page = PALLOC
            .alloc_zeroed(PAGE_SIZE, PAGE_SIZE)
            .expect("stage 2 table page");
        (page.cast(), PhysicalAddress(page.as_ptr() as usize))
    }

    unsafe fn deallocate_table(&mut self, table: NonNull<PageTable<Stage2Attributes>>) {
        // SAFETY: `aarch64-paging` only hands back tables `allocate_table` made: one page
        // from PALLOC each, no longer referenced by any table.
        unsafe { PALLOC.free(table.cast(), PAGE_SIZE) };
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<Stage2Attributes>> {
        NonNull::new(pa.0 as *mut PageTable<Stage2Attributes>).unwrap_or(NonNull::dangling())
    }
}

/// VTCR_EL2: T0SZ = 16 (48-bit IPA), SL0 = 2 (walks start at level 0 with 4 KiB pages),
/// inner/outer write-back walks, inner shareable, TG0 = 4 KiB; PS (the output size) is set
/// from the CPU's PARange in [`vtcr`]; bit 31 is RES1.
const VTCR_BASE: u64 = 16 | (2 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 31);

/// VTCR_EL2 for this CPU: [`VTCR_BASE`] with PS = min(PARange, 48 bits).
fn vtcr() -> u64 {
    let parange = (read_sysreg!(id_aa64mmfr0_el1) & 0xf).min(0b101);
    VTCR_BASE | (parange << 16)
}

/// The guest's stage 2 tables.
pub struct Stage2 {
    map: Mapping<PallocTables, Stage2Regime>,
}

impl Stage2 {
    /// Identity-maps `regions` (nothing else) in fresh tables.
    pub fn build(regions: &[Region]) -> Result<Self, Stage2Error> {
        let mut map = Mapping::new(PallocTables, 0, Stage2Regime);
        for r in regions {
            if !r.base.is_multiple_of(PAGE_SIZE as u64) || !r.size.is_multiple_of(PAGE_SIZE as u64)
            {
                return Err(Stage2Error::Unaligned(r.name));
            }
            let attrs = match r.kind {
                Kind::Ram => RAM,
                Kind::Device => DEVICE,
            };
            let range = MemoryRegion::new(r.base as usize, (r.base + r.size) as usize);
            map.map_range(
                &range,
                PhysicalAddress(r.base as usize),
                attrs,
                Constraints::empty(),
            )
            .map_err(|e| Stage2Error::Map(r.name, e))?;
        }
        Ok(Self { map })
    }

    /// The root table's address (VTTBR_EL2.BADDR).
    pub fn root(&self) -> u64 {
        self.map.root_address().0 as u64
    }

    /// Makes these tables the calling CPU's stage 2 (VTCR_EL2, VTTBR_EL2 with VMID 0) and
    /// drops any stale EL1&0 translations. Stage 2 applies once HCR_EL2.VM = 1, i.e. while
    /// the guest runs.
    pub fn load(&self) {
        self.map.mark_active();
        // SAFETY: VTCR/VTTBR only govern EL1&0 translations, and no guest runs on this CPU
        // now; the tables stay alive and unchanged for the hyp's life (they live in the VM,
        // which is never dropped). The TLB invalidation only drops cached translations.
        unsafe {
            write_sysreg!(vtcr_el2, vtcr());
            write_sysreg!(vttbr_el2, self.root());
            core::arch::asm!("isb", "tlbi vmalls12e1", "dsb nsh", "isb", options(nostack));
        }
    }
}
