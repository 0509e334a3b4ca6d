// SPDX-License-Identifier: MIT OR Apache-2.0
// Where the Linux guest lives in QEMU `virt`'s RAM (`-m 1G`), and where xtask puts what the
// hypervisor boots. Read by two programs: the hyp (`hyp::linux::layout`) and xtask
// (`xtask/src/linux/guest.rs` `include!`s this file), so both agree on every address. Plain
// constants only: no `use`, no inner doc comments.
//
// | Address                       | What                                                    |
// |-------------------------------|---------------------------------------------------------|
// | `0x4000_0000`                 | QEMU's own device tree (placed by QEMU)                 |
// | `0x4020_0000` .. `0x6000_0000`| the hyp: image, stacks, allocator (its page tables)     |
// | `0x4800_0000`                 | the boot parameter block (text, written by xtask)       |
// | `0x6000_0000` .. `0x8000_0000`| guest RAM: the only RAM stage 2 maps                    |
//
// In guest RAM: the kernel at `GUEST_RAM_BASE + text_offset`, the initramfs at
// `GUEST_INITRD_OFFSET` (or above the kernel if it is larger), the guest's device tree in the
// last 2 MiB.

/// QEMU's RAM size for a Linux guest, in MiB (`-m`).
pub const QEMU_RAM_MIB: u64 = 1024;
/// First byte of guest RAM (IPA = PA: stage 2 is an identity map).
pub const GUEST_RAM_BASE: u64 = 0x6000_0000;
/// Bytes of guest RAM.
pub const GUEST_RAM_SIZE: u64 = 512 << 20;
/// Where the initramfs goes by default, from the start of guest RAM.
pub const GUEST_INITRD_OFFSET: u64 = 128 << 20;
/// Where the guest's device tree goes, from the start of guest RAM (2 MiB below its end; the
/// boot protocol wants it 8-byte aligned and at most 2 MiB).
pub const GUEST_DTB_OFFSET: u64 = GUEST_RAM_SIZE - (2 << 20);
/// Largest guest device tree.
pub const GUEST_DTB_MAX: u64 = 2 << 20;
/// The boot parameter block: a physical address in the hyp's reserved memory (where the test
/// guest image goes in the other scenarios; a Linux run loads no test guest).
pub const BOOT_PARAMS: usize = 0x4800_0000;
/// Largest boot parameter block, in bytes.
pub const BOOT_PARAMS_SIZE: usize = 16 << 10;
/// The phase marker: a guest physical address stage 2 leaves unmapped (QEMU's first
/// virtio-mmio transport, which the guest's device tree does not list). The test `/init`
/// writes a phase number there with `devmem` (1 before its measured I/O, 2 after); the
/// hypervisor records its exit counts at each phase and reads of it return the phase.
pub const PHASE_MARKER: u64 = 0x0a00_0000;
