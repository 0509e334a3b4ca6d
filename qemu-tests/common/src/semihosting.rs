// SPDX-License-Identifier: MIT OR Apache-2.0
//! Arm semihosting (`hlt #0xf000`): the exit status and the command line.
//!
//! Needs `-semihosting-config enable=on` (the runner passes it). The exit status is the test
//! verdict's second half, so the images never end a run with PSCI SYSTEM_OFF, which makes QEMU
//! exit 0 whatever happened.

/// SYS_GET_CMDLINE.
const SYS_GET_CMDLINE: u64 = 0x15;
/// SYS_EXIT. On AArch64 its parameter is a pointer to `{reason, subcode}`, like
/// SYS_EXIT_EXTENDED, and QEMU exits with `subcode` as its status.
const SYS_EXIT: u64 = 0x18;
/// ADP_Stopped_ApplicationExit.
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;

/// Issues a semihosting call.
///
/// # Safety
///
/// `param` must be what operation `op` expects: for the operations that take a parameter
/// block, a pointer to a block that is valid (and writable where the operation writes) for the
/// duration of the call.
pub unsafe fn call(op: u64, param: u64) -> u64 {
    let ret: u64;
    // SAFETY: the caller promised `param` fits `op`; the debugger (QEMU) reads and writes only
    // the block it names. Not `nomem`: the block is memory.
    unsafe {
        core::arch::asm!("hlt #0xf000", inout("x0") op => ret, in("x1") param, options(nostack));
    }
    ret
}

/// Ends the QEMU run with `status` as QEMU's exit status.
pub fn exit(status: u32) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, u64::from(status)];
    // SAFETY: SYS_EXIT takes a pointer to a two-word block, which lives on this stack frame.
    unsafe { call(SYS_EXIT, block.as_ptr() as u64) };
    // Semihosting disabled: nothing else can end the run, so stop here; the runner's deadline
    // reports it.
    loop {
        // SAFETY: `wfe` only waits.
        unsafe { core::arch::asm!("wfe", options(nostack)) };
    }
}

/// Reads the semihosting command line (`-semihosting-config ...,arg=a,arg=b` gives `"a b"`)
/// into `buf`. Returns `None` if the call fails or the text is not UTF-8.
pub fn cmdline(buf: &mut [u8]) -> Option<&str> {
    let mut block = [buf.as_mut_ptr() as u64, buf.len() as u64];
    // SAFETY: SYS_GET_CMDLINE takes `{buffer, length}` and writes at most `length` bytes to
    // the buffer and the used length back to the block; both outlive the call.
    let ret = unsafe { call(SYS_GET_CMDLINE, block.as_mut_ptr() as u64) };
    if ret != 0 {
        return None;
    }
    let len = (block[1] as usize).min(buf.len());
    core::str::from_utf8(&buf[..len])
        .ok()
        .map(|s| s.trim_end_matches('\0'))
}
