// SPDX-License-Identifier: MIT OR Apache-2.0
//! QEMU `virt` memory map and the images' own layout.
//!
//! The addresses are those of the DTB QEMU generates for `-M virt,gic-version=4,
//! virtualization=on` (from the DTB QEMU dumps with `-M virt,...,dumpdtb=FILE`). The runner boots with `-m 512M`.

/// Start of RAM.
pub const RAM_BASE: usize = 0x4000_0000;
/// RAM size the runner passes to QEMU (`-m 512M`).
pub const RAM_SIZE: usize = 512 << 20;
/// End of RAM (exclusive).
pub const RAM_END: usize = RAM_BASE + RAM_SIZE;

/// Link address of the hyp image. QEMU puts the DTB at [`RAM_BASE`] because the image starts
/// above it.
pub const HYP_BASE: usize = 0x4020_0000;
/// Link address of the guest image, which is also its entry point (see `guest/image.ld`).
pub const GUEST_BASE: usize = 0x4800_0000;
/// Space reserved for the guest image, its BSS and its stacks.
pub const GUEST_SIZE: usize = 32 << 20;
/// Magic word at `GUEST_BASE + 8`: lets the hyp tell that QEMU's loader placed the guest.
pub const GUEST_MAGIC: u64 = 0x5453_4555_4724_4d55; // "UM$GUEST" little-endian

/// GIC distributor (64 KiB).
pub const GICD_BASE: usize = 0x0800_0000;
/// GIC ITS control frame (the translation frame follows at +64 KiB).
pub const GITS_BASE: usize = 0x0808_0000;
/// GITS_TRANSLATER, the MSI doorbell address of the ITS.
pub const GITS_TRANSLATER: usize = GITS_BASE + 0x1_0040;
/// First redistributor.
pub const GICR_BASE: usize = 0x080A_0000;
/// Size of the redistributor region below 4 GiB.
pub const GICR_REGION_SIZE: usize = 0xF6_0000;
/// GICv4 redistributor stride: RD, SGI, VLPI and a reserved 64 KiB frame per CPU.
pub const GICR_STRIDE: usize = 0x4_0000;
/// PL011 UART.
pub const UART_BASE: usize = 0x0900_0000;
/// High PCIe ECAM (the DTB's `pci` node with `highmem`, the default).
pub const PCIE_ECAM_BASE: usize = 0x40_1000_0000;
/// PCIe 32-bit MMIO window.
pub const PCIE_MMIO_BASE: usize = 0x1000_0000;

/// Most CPUs the images support (stacks are reserved for each).
pub const MAX_CPUS: usize = 8;
/// Stack size of each CPU, at each exception level.
///
/// 256 KiB: the driver crates hold their state inline (no heap), so a brought-up GIC is about
/// 25 KiB and bring-up moves it a few times; 64 KiB overflowed into BSS (the page tables). The
/// hyp measures each stack's high-water mark (`hyp::stack`) and fails a run that gets close.
pub const STACK_SIZE: usize = 256 << 10;

/// A CPU index, from MPIDR_EL1.Aff0 (QEMU `virt` numbers CPUs 0..n in Aff0; cpu1's MPIDR reads
/// 0x8000_0001 because bit 31 is RES1).
pub fn cpu_index() -> usize {
    (crate::read_sysreg!(mpidr_el1) & 0xff) as usize
}
