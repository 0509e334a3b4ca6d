// SPDX-License-Identifier: MIT OR Apache-2.0
//! Hyp code on the second CPU: in step with CPU0 ([`on_cpu`]) or alongside it ([`alongside`]).
//!
//! [`crate::smp::run_on`] posts a `fn(usize) -> u64` to a CPU's mailbox. These wrap it so a
//! scenario can hand CPU1 a closure over its own locals (the vCPU, the GICv4 layer, a VM), the
//! way `std::thread::scope` would:
//!
//! - [`on_cpu`] runs it while CPU0 waits: the vCPU runs on CPU1 for a while, then comes back;
//! - [`alongside`] runs it while CPU0 goes on: CPU1 plays the outside world (issues ITS
//!   commands, makes a device raise its MSI) while CPU0 runs the guest or sleeps in WFI.
//!
//! Either way the closure borrows CPU0's stack, so it must have returned before that frame
//! goes: both wait for it, bounded, and end the run (panic) rather than return while CPU1 could
//! still be inside it.

use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use common::sync::SpinLock;

use crate::smp::{self, SmpError};

/// A posted closure, type-erased: the function that calls it ([`shim`] for its type, a fn
/// pointer stored as such) and where it is.
struct Posted {
    call: unsafe fn(*mut ()),
    data: *mut (),
}

// SAFETY: `data` is a `&mut F` with `F: Send` (bound on every poster), which may be moved to
// and used on another CPU.
unsafe impl Send for Posted {}

/// The closure CPU1 is to run, if any.
static POSTED: SpinLock<Option<Posted>> = SpinLock::new(None);
/// Clear while a closure is posted or running.
static FINISHED: AtomicBool = AtomicBool::new(true);

/// Calls the closure of type `F` at `data`.
///
/// # Safety
/// `data` points to a live `F` that nothing else uses until this returns.
unsafe fn shim<F: FnMut()>(data: *mut ()) {
    // SAFETY: our caller promised `data` is a live, unaliased `F`.
    let f = unsafe { &mut *data.cast::<F>() };
    f();
}

/// What `smp::run_on` runs: the posted closure, once.
fn trampoline(_cpu: usize) -> u64 {
    let posted = POSTED.lock().take();
    if let Some(Posted { call, data }) = posted {
        // SAFETY: `post` stored `shim::<F>` with `data` for that same `F`; the closure lives on
        // the poster's stack, which does not go (see `join`) until FINISHED is set below, and
        // `take` makes this the only call. `F: Send` (bound on every caller) makes running it
        // on this CPU sound.
        unsafe { call(data) };
    }
    FINISHED.store(true, Ordering::Release);
    0
}

/// Posts `f` to `cpu`; `wait` is how long `run_on` waits for it to finish.
fn post<F: FnMut() + Send>(cpu: usize, f: &mut F, wait: Duration) -> Result<(), SmpError> {
    if !FINISHED.swap(false, Ordering::AcqRel) {
        return Err(SmpError::BadCpu);
    }
    *POSTED.lock() = Some(Posted {
        call: shim::<F>,
        data: ptr::from_mut(f).cast(),
    });
    match smp::run_on(cpu, trampoline, wait) {
        // A timeout only means it is still running: `join` waits for it.
        Ok(_) | Err(SmpError::Timeout) => Ok(()),
        Err(e) => {
            *POSTED.lock() = None;
            FINISHED.store(true, Ordering::Release);
            Err(e)
        }
    }
}

/// Waits for the posted closure to return, up to `timeout`; past that, ends the run: the
/// closure borrows the poster's stack frame, which must not go while CPU1 may still use it.
fn join(timeout: Duration) {
    if !common::timer::poll_until(timeout, || FINISHED.load(Ordering::Acquire)) {
        panic!("cpu1 did not finish its closure in {timeout:?}");
    }
}

/// Runs `f` on `cpu` (online, not this one) and waits for it, up to `timeout` (then panics).
///
/// # Errors
/// [`SmpError::BadCpu`] if `cpu` is offline or this CPU, or another closure is still running
/// there; `f` has not run then.
pub fn on_cpu<F: FnMut() + Send>(cpu: usize, timeout: Duration, mut f: F) -> Result<(), SmpError> {
    post(cpu, &mut f, timeout)?;
    join(timeout);
    Ok(())
}

/// Runs `agent` on `cpu` while this CPU runs `body`, then waits for `agent` to return (up to
/// `timeout` after `body` returned, then panics). `body` tells `agent` when to stop, through
/// whatever `agent` polls; `agent` must also end by itself.
///
/// # Errors
/// As [`on_cpu`]; neither closure has run then.
pub fn alongside<A: FnMut() + Send, R>(
    cpu: usize,
    mut agent: A,
    timeout: Duration,
    body: impl FnOnce() -> R,
) -> Result<R, SmpError> {
    post(cpu, &mut agent, Duration::ZERO)?;
    let r = body();
    join(timeout);
    Ok(r)
}
