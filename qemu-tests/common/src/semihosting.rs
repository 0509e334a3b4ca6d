// SPDX-License-Identifier: MIT OR Apache-2.0
//! Arm semihosting (`hlt #0xf000`), on the `semihosting` crate: the exit status and the command
//! line.
//!
//! Needs `-semihosting-config enable=on` (the runner passes it). The exit status is the test
//! verdict's second half, so the images never end a run with PSCI SYSTEM_OFF, which makes QEMU
//! exit 0 whatever happened.
//!
//! The crate is used without features: no stdio, no panic handler (the images have their own),
//! no atomics on these paths. [`exit`] also runs before the MMU is on (the wrong-exception-level
//! path of the entry code): the crate's SYS_EXIT passes a two-word parameter block on the
//! stack, aligned, which is all that Device memory asks.

use core::mem::MaybeUninit;

/// Ends the QEMU run with `status` as QEMU's exit status (SYS_EXIT with
/// ADP_Stopped_ApplicationExit and the status as subcode, which QEMU exits with on AArch64).
pub fn exit(status: u32) -> ! {
    semihosting::process::exit(status as i32)
}

/// Reads the semihosting command line (`-semihosting-config ...,arg=a,arg=b` gives `"a b"`)
/// into `buf`. Returns `None` if the call fails or the text is not UTF-8.
pub fn cmdline(buf: &mut [u8]) -> Option<&str> {
    let len = {
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and the call only writes
        // initialised bytes into a buffer that was initialised already.
        let uninit = unsafe { &mut *(core::ptr::from_mut(buf) as *mut [MaybeUninit<u8>]) };
        semihosting::sys::arm_compat::sys_get_cmdline_uninit(uninit)
            .ok()?
            .len()
    };
    core::str::from_utf8(&buf[..len.min(buf.len())])
        .ok()
        .map(|s| s.trim_end_matches('\0'))
}
