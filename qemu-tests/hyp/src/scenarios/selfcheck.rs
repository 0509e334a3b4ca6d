// SPDX-License-Identifier: MIT OR Apache-2.0
//! Runner self-checks. Each must make the runner report FAILED: they prove a panic and an
//! unexpected exception cannot pass for success. Not in the default suite; run them with
//! `cargo xtask qemu-test --filter panic_check` (or `exception_check`).

use super::Ctx;

/// Panics on purpose: expect `@@T panic ...` and exit status 101.
pub fn panic_check(_ctx: &mut Ctx) {
    let answer = core::hint::black_box(41);
    if answer != 42 {
        panic!("deliberate panic (answer = {answer})");
    }
}

/// Reads an address outside the 48-bit VA space: a translation fault at EL2 that nothing
/// handles, so expect `@@T exception el2-sync-current-spx ...` and exit status 102.
pub fn exception_check(_ctx: &mut Ctx) {
    let bad = core::hint::black_box(0x8_0000_0000_0000usize);
    // SAFETY: the address is not mapped and the read faults, as wanted: the exception handler
    // reports it and ends the run, so the read never completes and no value is produced.
    let v = unsafe { crate::rawmem::fault_read(bad) };
    common::println!("exception_check: read {v:#x}, which should not happen");
}

/// Reads GICR_SYNCR, which QEMU does not implement: it reads as zero and QEMU logs a guest
/// error ("invalid guest read at offset"). The scenario itself passes, so only the runner's
/// guest-error rule can fail it.
pub fn guest_error_check(ctx: &mut Ctx) {
    let Some(rd) = crate::gic_hw::get().redistributor(ctx.cpu) else {
        common::check!(false, "no redistributor for cpu{}", ctx.cpu);
        return;
    };
    let v = u32::from(its_core::mmio::RedistRegisters::syncr(&*rd));
    common::println!("guest_error_check: GICR_SYNCR read {v:#x}");
}
