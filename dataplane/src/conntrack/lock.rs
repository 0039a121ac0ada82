//! The shards' lock: a spin lock whose release is a plain store.
//!
//! Every tracked packet takes its shard's lock once (twice when both
//! ports' zones track it), and at ten million packets a second the two
//! locked instructions of `std::sync::Mutex` (a compare-exchange to take
//! it, an atomic swap to release it, which must read the old state to
//! know whether to wake a sleeper) were a visible part of the cost: each
//! waits for the store buffer to drain, and the worker has just written
//! the previous packet's headers. Releasing with a `Release` store is an
//! ordinary store on x86 (TSO orders it after the critical section's own
//! stores) and never waits. What is given up is sleeping: a contended
//! lock spins, then yields the CPU. That suits these critical sections —
//! one lookup and an entry update, a commit with a sweep of at most
//! `SWEEP_FULL` slots, or the listing or flushing of one shard — and the
//! sharding, which makes two workers meeting on one shard rare.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// Spins before a waiter yields its CPU to whoever holds the lock (a
/// thread preempted inside its critical section).
const SPINS: u32 = 128;

/// A value behind a spin lock.
#[derive(Default)]
pub(super) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one holder at a time (the
// acquire/release pair orders each holder's accesses after the previous
// holder's), so sharing the lock between threads is sharing `T` by moving
// it between them: `T: Send` is what that needs, as for `Mutex<T>`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// The lock held: the value, until dropped.
pub(super) struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    pub(super) fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, spinning (then yielding) while another holds it.
    #[inline]
    pub(super) fn lock(&self) -> Guard<'_, T> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.wait();
        }
        Guard { lock: self }
    }

    /// Until the lock looks free: spins reading it (no writes, so the
    /// line stays shared), then yields between looks.
    #[cold]
    fn wait(&self) {
        let mut spins = 0;
        while self.locked.load(Ordering::Relaxed) {
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other reference to the
        // value exists until it is dropped.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this the only
        // reference through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    /// Releases the lock (also when unwinding from a panic in the
    /// critical section, as `Mutex` does minus poisoning, which the table
    /// ignored anyway: every entry update is a whole write).
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::SpinLock;
    use std::sync::Arc;

    #[test]
    fn one_holder_at_a_time() {
        // Four threads add to a plain counter under the lock: any overlap
        // of two critical sections loses increments.
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        let mut g = lock.lock();
                        let v = *g;
                        std::hint::black_box(&v);
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 400_000);
    }

    #[test]
    fn a_panic_inside_releases_the_lock() {
        let lock = Arc::new(SpinLock::new(1));
        let l = lock.clone();
        let _ = std::thread::spawn(move || {
            let _g = l.lock();
            panic!("inside the critical section");
        })
        .join();
        assert_eq!(*lock.lock(), 1);
    }
}
