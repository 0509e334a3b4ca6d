// SPDX-License-Identifier: MIT OR Apache-2.0
//! The EL1 guest of the QEMU tests.
//!
//! QEMU's generic loader places the image at 0x4800_0000; the hyp enters it there at EL1h with
//! the guest program number in x0. The image header below branches to the common EL1 entry
//! (stack, FP/SIMD, VBAR_EL1, BSS, MMU), which calls [`main`]. The program runs, then reports
//! its number of failed checks to the hyp with the DONE hypercall.
#![no_std]
#![no_main]

mod devices;
mod hvc;
mod irq;
mod programs;

// The image header, at the link base: a branch to the entry, then the magic word the hyp
// checks to know the loader did its job.
core::arch::global_asm!(
    r#"
.section .text.head, "ax"
.global guest_head
guest_head:
    b       common_el1_start
    .balign 8
    .quad   {magic}
"#,
    magic = const common::platform::GUEST_MAGIC,
);

common::el1_main!(main);

fn main(_cpu: usize, program: u64) -> ! {
    programs::run(program)
}
