// SPDX-License-Identifier: MIT OR Apache-2.0
//! Locks for the images' shared state, on the `spin` crate, and [`FnSlot`] for handlers.
//!
//! [`SpinLock`] is `spin`'s test-and-test-and-set mutex (the one the driver crates use), which
//! waits with [`relax`] (`YIELD`). It
//! uses exclusives (or atomics), so it must only be used once the MMU and caches are on: with
//! the MMU off every data access is Device memory, where exclusives are not guaranteed to
//! work. The entry code turns the MMU on before any Rust code that could take a lock (see
//! [`crate::mmu`]). Interrupts are not masked: do not take a lock in an interrupt handler that
//! the interrupted code may hold ([`FnSlot`] takes no lock).

use core::sync::atomic::{AtomicPtr, Ordering};

/// A spinlock (`spin`'s `SpinMutex`, waiting with [`relax`]).
pub type SpinLock<T> = spin::mutex::SpinMutex<T, Yield>;
/// Holds a [`SpinLock`]; releases it on drop.
pub type SpinLockGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T, Yield>;

/// The hint of every wait for another CPU: `YIELD`.
///
/// On hardware a hint like the `ISB` of `core::hint::spin_loop`. It matters on QEMU with
/// `-icount` (the benchmarks), where one host thread runs the CPUs in turn, each until the
/// next timer deadline: a CPU that spins at EL2 (IRQs masked) for a lock or a flag another
/// CPU must set keeps the turn, and QEMU 7.2 gives the next CPU no time before that deadline
/// either, so the CPU that would end the wait never runs (QEMU 8.1 shares each turn between
/// the CPUs). QEMU ends a CPU's turn at `YIELD` when it runs the CPUs in one thread.
#[inline(always)]
pub fn relax() {
    // SAFETY: `yield` is a hint: no operands, no effect on memory or registers.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// `spin`'s relax strategy for [`SpinLock`]: [`relax`].
pub struct Yield;

impl spin::relax::RelaxStrategy for Yield {
    #[inline(always)]
    fn relax() {
        relax();
    }
}

/// A replaceable function pointer (a handler or a hook), stored as its own type: set from
/// thread context, read from exception handlers on any CPU, without a lock.
///
/// The slot holds a `&'static F`, so reading it is one atomic load and one plain load (it sits
/// on the interrupt paths the benchmarks measure), and setting it is one atomic store. Pass a
/// function as `Some(&(my_fn as F))`: the compiler promotes that reference to a `'static`
/// constant.
pub struct FnSlot<F: Copy + Sync + 'static> {
    slot: AtomicPtr<F>,
}

impl<F: Copy + Sync + 'static> FnSlot<F> {
    /// An empty slot.
    pub const fn new() -> Self {
        Self {
            slot: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Puts `f` (or, with `None`, nothing) in the slot.
    pub fn set(&self, f: Option<&'static F>) {
        let p = f.map_or(core::ptr::null_mut(), |f| core::ptr::from_ref(f).cast_mut());
        self.slot.store(p, Ordering::Release);
    }

    /// What the slot holds.
    pub fn get(&self) -> Option<F> {
        let p = self.slot.load(Ordering::Acquire);
        // SAFETY: `set` stores only null or a pointer from a `&'static F`, which is valid for
        // reads forever and never written through (it is never made mutable); `F: Sync`, so
        // any CPU may read it.
        unsafe { p.as_ref() }.copied()
    }
}

impl<F: Copy + Sync + 'static> Default for FnSlot<F> {
    fn default() -> Self {
        Self::new()
    }
}
