// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guest side of the hypercall ABI (`common::hvc_abi`).

use common::hvc_abi::{HVC_DONE, HVC_PRINT_NUM};

/// `hvc #0` with x0 = `nr`, x1..x3 = `args`; returns x0.
pub fn hvc(nr: u64, args: [u64; 3]) -> u64 {
    let ret: u64;
    // SAFETY: the hyp handles the call and returns here with only x0 changed (it restores the
    // full context); it touches no guest memory for the calls defined in the ABI.
    unsafe {
        core::arch::asm!(
            "hvc #0",
            inout("x0") nr => ret,
            in("x1") args[0],
            in("x2") args[1],
            in("x3") args[2],
            options(nostack),
        );
    }
    ret
}

/// Asks the hyp to print `n`; returns its answer (`n + 1`).
pub fn print_num(n: u64) -> u64 {
    hvc(HVC_PRINT_NUM, [n, 0, 0])
}

/// Tells the hyp the program is finished with `failures` failed checks.
pub fn done(failures: u64) -> ! {
    hvc(HVC_DONE, [failures, 0, 0]);
    // The hyp never resumes a guest after DONE; if it does, that is a failure.
    panic!("the hyp resumed the guest after DONE");
}
