// SPDX-License-Identifier: MIT OR Apache-2.0
//! Locks for the images' shared state, on the `spin` crate, and [`FnSlot`] for handlers.
//!
//! [`SpinLock`] is `spin`'s test-and-test-and-set mutex (the one the driver crates use). It
//! uses exclusives (or atomics), so it must only be used once the MMU and caches are on: with
//! the MMU off every data access is Device memory, where exclusives are not guaranteed to
//! work. The entry code turns the MMU on before any Rust code that could take a lock (see
//! [`crate::mmu`]). Interrupts are not masked: do not take a lock in an interrupt handler that
//! the interrupted code may hold (except through [`FnSlot`], which masks IRQs itself).

/// A spinlock (`spin`'s `SpinMutex`).
pub type SpinLock<T> = spin::mutex::SpinMutex<T>;
/// Holds a [`SpinLock`]; releases it on drop.
pub type SpinLockGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T>;

/// A replaceable function pointer (a handler or a hook), stored as its own type: set from
/// thread context, read from exception handlers on any CPU.
///
/// The pointer sits under a [`SpinLock`] held only to copy it in or out. [`FnSlot::set`] masks
/// IRQs on its CPU while it holds the lock, so an IRQ handler reading the slot
/// ([`FnSlot::get`]) never waits for a lock its own CPU holds; another CPU waits a few
/// instructions at most. The pointer is copied out before it is called, so a handler that
/// does not return (a guest exit) leaves nothing locked.
pub struct FnSlot<F: Copy> {
    slot: SpinLock<Option<F>>,
}

impl<F: Copy> FnSlot<F> {
    /// An empty slot.
    pub const fn new() -> Self {
        Self {
            slot: SpinLock::new(None),
        }
    }

    /// Puts `f` (or, with `None`, nothing) in the slot.
    pub fn set(&self, f: Option<F>) {
        let daif = crate::read_sysreg!(daif);
        crate::sysreg::mask_irqs();
        *self.slot.lock() = f;
        // SAFETY: restores the interrupt masks read above (only PSTATE.{D,A,I,F} change).
        unsafe { crate::write_sysreg!(daif, daif) };
    }

    /// What the slot holds.
    pub fn get(&self) -> Option<F> {
        *self.slot.lock()
    }
}

impl<F: Copy> Default for FnSlot<F> {
    fn default() -> Self {
        Self::new()
    }
}
