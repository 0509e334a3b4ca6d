// SPDX-License-Identifier: MIT OR Apache-2.0
//! The lock of the command queue: a spin lock, or loom's mutex when the crate is built with
//! `--cfg loom` so that the model checker can explore how CPUs interleave on it.
//!
//! Only the queue's lock goes through here: it is what several CPUs contend for while posting
//! batches and waiting for their tickets (`tests/loom.rs`). Run the model check with
//! `RUSTFLAGS="--cfg loom" cargo test -p its-cmdq --test loom --release`.

/// A mutual-exclusion lock with the one method the queue uses.
pub(crate) struct Mutex<T> {
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// The guard [`Mutex::lock`] returns.
#[cfg(not(loom))]
pub(crate) type Guard<'a, T> = spin::MutexGuard<'a, T>;
/// The guard [`Mutex::lock`] returns.
#[cfg(loom)]
pub(crate) type Guard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A lock holding `v`.
    pub(crate) fn new(v: T) -> Self {
        Self {
            #[cfg(not(loom))]
            inner: spin::Mutex::new(v),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(v),
        }
    }

    /// Takes the lock (spins until it is free).
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        #[cfg(not(loom))]
        {
            self.inner.lock()
        }
        #[cfg(loom)]
        {
            // A panic while holding it ends the model check anyway.
            self.inner.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// The value, through exclusive access (no locking).
    pub(crate) fn get_mut(&mut self) -> &mut T {
        #[cfg(not(loom))]
        {
            self.inner.get_mut()
        }
        #[cfg(loom)]
        {
            self.inner.get_mut().unwrap_or_else(|e| e.into_inner())
        }
    }
}
