//! A worker's counters: written by that worker alone (a relaxed load and
//! store, never a locked read-modify-write), read and summed by `show` and
//! `/metrics` from any thread.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::drop::{DropReason, DROP_REASONS};

/// Counters of one worker: written by it alone, summed on read.
#[derive(Debug)]
pub struct WorkerStats {
    pub rx_packets: AtomicU64,
    pub tx_packets: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// The table generation the worker forwards with.
    pub table_generation: AtomicU64,
    pub(super) drops: [AtomicU64; DROP_REASONS],
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            rx_packets: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            table_generation: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[inline]
pub(super) fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl WorkerStats {
    /// Drops counted under `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Ordering::Relaxed)
    }
}
