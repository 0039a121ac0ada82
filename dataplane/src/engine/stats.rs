//! A worker's counters: written by that worker alone (a relaxed load and
//! store, never a locked read-modify-write), read and summed by `show` and
//! `/metrics` from any thread.
//!
//! Busy and idle cycles are counted per poll round, as OVS's
//! `pmd-stats-show` counts them: a round that received packets is busy
//! (its cycles, divided by the packets, give cycles per packet), an empty
//! one idle. Time a worker spends asleep after a run of empty rounds (when
//! it does not busy-poll) is neither.

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
    /// Cycles of poll rounds that received packets ([`cycles`]).
    pub busy_cycles: AtomicU64,
    /// Cycles of poll rounds that received nothing.
    pub idle_cycles: AtomicU64,
    pub(super) drops: [AtomicU64; DROP_REASONS],
    /// Drops by the local port the packet came in on (the last slot holds
    /// ports beyond it), for `/metrics` by port, logical port and switch.
    pub(super) port_drops: Box<[AtomicU64]>,
}

/// Local ports whose drops are counted apart ([`WorkerStats::port_drops`]).
pub const PORT_DROP_SLOTS: usize = 1024;

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            rx_packets: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            table_generation: AtomicU64::new(0),
            busy_cycles: AtomicU64::new(0),
            idle_cycles: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            port_drops: (0..PORT_DROP_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

#[inline]
pub(super) fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// A cycle counter: the TSC on x86_64, nanoseconds elsewhere.
#[inline]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

impl WorkerStats {
    /// Busy cycles per received packet, if any were received.
    pub fn cycles_per_packet(&self) -> Option<f64> {
        let rx = self.rx_packets.load(Ordering::Relaxed);
        (rx > 0).then(|| self.busy_cycles.load(Ordering::Relaxed) as f64 / rx as f64)
    }

    /// The share of polling cycles that were busy (0 to 1).
    pub fn busy_ratio(&self) -> f64 {
        let busy = self.busy_cycles.load(Ordering::Relaxed) as f64;
        let idle = self.idle_cycles.load(Ordering::Relaxed) as f64;
        if busy + idle > 0.0 {
            busy / (busy + idle)
        } else {
            0.0
        }
    }

    /// Flow cache hits over lookups, if there were any.
    pub fn cache_hit_rate(&self) -> Option<f64> {
        let h = self.cache_hits.load(Ordering::Relaxed);
        let m = self.cache_misses.load(Ordering::Relaxed);
        (h + m > 0).then(|| h as f64 / (h + m) as f64)
    }

    /// Drops counted under `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Ordering::Relaxed)
    }

    /// Drops of packets that came in on local port `port` (ports from
    /// [`PORT_DROP_SLOTS`] - 1 on share one count).
    pub fn port_drops(&self, port: crate::ids::PortId) -> u64 {
        self.port_drops[port.get().min(PORT_DROP_SLOTS - 1)].load(Ordering::Relaxed)
    }

    /// Counts one drop of a packet from local port `port` under `reason`.
    #[inline]
    pub(super) fn count_drop(&self, reason: DropReason, port: crate::ids::PortId) {
        bump(&self.drops[reason.index()], 1);
        bump(&self.port_drops[port.get().min(PORT_DROP_SLOTS - 1)], 1);
    }
}
