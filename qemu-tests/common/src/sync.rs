// SPDX-License-Identifier: MIT OR Apache-2.0
//! Locks for the images' shared state, on the `spin` crate, and [`FnSlot`] for handlers.
//!
//! [`SpinLock`] is `spin`'s test-and-test-and-set mutex (the one the driver crates use). It
//! uses exclusives (or atomics), so it must only be used once the MMU and caches are on: with
//! the MMU off every data access is Device memory, where exclusives are not guaranteed to
//! work. The entry code turns the MMU on before any Rust code that could take a lock (see
//! [`crate::mmu`]). Interrupts are not masked: do not take a lock in an interrupt handler that
//! the interrupted code may hold ([`FnSlot`] takes no lock).

use core::sync::atomic::{AtomicPtr, Ordering};

/// A spinlock (`spin`'s `SpinMutex`).
pub type SpinLock<T> = spin::mutex::SpinMutex<T>;
/// Holds a [`SpinLock`]; releases it on drop.
pub type SpinLockGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T>;

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
