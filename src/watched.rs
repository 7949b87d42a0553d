//! A value shared between threads whose changes wake those waiting on it:
//! a mutex and a condition variable kept together. A lock poisoned by a
//! panicking holder is taken as it is (the value stays usable).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// A value behind a lock; [`Watched::update`] wakes every [`Watched::wait`].
#[derive(Debug, Default)]
pub struct Watched<T> {
    value: Mutex<T>,
    changed: Condvar,
}

impl<T> Watched<T> {
    /// Locks the value.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the value with `change` and wakes the waiters.
    pub fn update(&self, change: impl FnOnce(&mut T)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits (`value` released meanwhile) until an update, and locks again.
    pub fn wait<'a>(&self, value: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.changed
            .wait(value)
            .unwrap_or_else(PoisonError::into_inner)
    }
}
