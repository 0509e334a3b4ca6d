// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bare-metal runtime shared by the QEMU test images (the EL2 `hyp` and the EL1 `guest`).
//!
//! It provides what a test image needs before it can test anything:
//!
//! - [`entry`]: the EL2 and EL1 entry points (stacks, FP/SIMD, vector base, BSS, MMU), the
//!   secondary-CPU entry used through PSCI, and the [`el2_main!`] / [`el1_main!`] macros that
//!   name an image's Rust entry;
//! - [`exceptions`]: EL2 and EL1 vector tables that save the full context (general registers,
//!   SIMD registers, FPSR/FPCR, ELR, SPSR) into a [`exceptions::Frame`] and call a pluggable
//!   handler;
//! - [`mmu`]: a stage 1 identity map (1 GiB blocks, device below 1 GiB, RAM cacheable);
//! - [`console`] (PL011, `print!`/`println!`), [`semihosting`] (exit status, command line),
//!   [`timer`] (generic timer), [`cache`] (maintenance by VA), [`palloc`] (physical page
//!   allocator), [`gic_platform`] (the driver crates' platform traits over those), [`psci`]
//!   (CPU_ON over SMC), [`report`] (the `@@` line protocol the xtask runner parses) and the
//!   panic handler.
//!
//! Where a well-kept crate does the job it is used: `spin` (locks, [`sync`]),
//! `arm-pl011-uart` ([`console`]), `smccc` ([`psci`]), `semihosting` ([`semihosting`]),
//! `safe-mmio` (device registers). What stays hand-written is what no crate does here: the
//! entry code and the EL2/EL1 exception vectors with their full-context frame (assembly laid
//! out for this frame, shared with the hyp's vCPU entry), the identity map built with the MMU
//! off ([`mmu`]: plain stores and cache maintenance, no atomics), cache maintenance by VA,
//! the generic timer, the physical allocator and the report protocol. Each module says how it
//! behaves before the MMU is on where that matters.
//!
//! Both images link this crate. The entry code for both exception levels is present in the
//! library; each image's linker script names its own entry symbol and the linker drops the other.
#![no_std]

pub mod cache;
pub mod console;
pub mod entry;
pub mod exceptions;
pub mod gic_platform;
pub mod hvc_abi;
pub mod mmu;
pub mod palloc;
mod panic;
pub mod platform;
pub mod psci;
pub mod report;
pub mod semihosting;
pub mod sync;
pub mod sysreg;
pub mod timer;
