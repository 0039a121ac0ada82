//! Ports: where packets enter and leave the dataplane.
//!
//! A [`Port`] is one local interface (an in-memory ring, a kernel interface
//! over AF_PACKET, a DPDK ethdev with the `dpdk` feature). Each worker opens its own
//! [`PortQueue`] on every port: the queue polls one rx queue of the port (if
//! the worker was assigned one) and transmits on a per-worker tx path, so no
//! two threads ever share a queue and the burst path takes no lock. Calls
//! are per burst; the per-packet work inside is monomorphic.

pub mod af_packet;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memory;

use std::any::Any;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::packet::BufPool;

/// One worker's handle on a port.
pub trait PortQueue<P: BufPool>: Send {
    /// Receives up to `max` packets, appending them to `out`; returns how
    /// many were received. Never blocks.
    fn rx_burst(&mut self, pool: &mut P, out: &mut Vec<P::Buf>, max: usize) -> usize;
    /// Transmits every packet of `pkts` (draining it); packets that cannot
    /// be sent are freed and counted as `tx_dropped`. Never blocks.
    fn tx_burst(&mut self, pool: &mut P, pkts: &mut Vec<P::Buf>);
    /// Stops polling: gives up the rx queue this handle polls (`None` if it
    /// polls none) and keeps transmitting, so the engine can hand the rx
    /// queue to another worker's handle on the same port.
    fn take_rx(&mut self) -> Option<RxQueue>;
    /// Starts polling `rx`, given up by another handle on the same port.
    /// Gives it back if this handle polls a queue already or `rx` is not
    /// of this backend.
    fn give_rx(&mut self, rx: RxQueue) -> Result<(), RxQueue>;
}

/// A port's rx queue on its way from one worker's [`PortQueue`] to
/// another's ([`PortQueue::take_rx`], [`PortQueue::give_rx`]): what the old
/// handle polled, opaque to all but its backend. The engine moves rx queues
/// this way when it reassigns them to workers by load, without reopening
/// the port or touching its tx queues.
pub struct RxQueue(Box<dyn Any + Send>);

impl RxQueue {
    /// Wraps a backend's rx state.
    pub fn new<T: Any + Send>(rx: T) -> Self {
        RxQueue(Box::new(rx))
    }
    /// The backend's rx state, if it is a `T`.
    pub fn downcast<T: Any>(self) -> Result<T, RxQueue> {
        if self.0.is::<T>() {
            Ok(*self.0.downcast::<T>().expect("checked"))
        } else {
            Err(self)
        }
    }

    /// [`PortQueue::take_rx`] for a backend whose rx state is `slot`.
    pub fn take_from<T: Any + Send>(slot: &mut Option<T>) -> Option<Self> {
        slot.take().map(RxQueue::new)
    }

    /// [`PortQueue::give_rx`] for a backend whose rx state is `slot`:
    /// refused if the slot is taken or this is not a `T`.
    pub fn give_to<T: Any>(self, slot: &mut Option<T>) -> Result<(), Self> {
        if slot.is_some() {
            return Err(self);
        }
        *slot = Some(self.downcast()?);
        Ok(())
    }
}

impl std::fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RxQueue")
    }
}

/// A local port of the dataplane.
pub trait Port<P: BufPool>: Send + Sync {
    /// The port's name (the local interface, or the memory port's label).
    fn name(&self) -> &str;
    /// The backend, for `show`: "memory", "af_packet", ...
    fn kind(&self) -> &'static str;
    /// How many rx queues the port has.
    fn rx_queues(&self) -> usize {
        1
    }
    /// Opens a worker's handle: polling rx queue `rxq` if given, always able
    /// to transmit.
    fn open_queue(&self, rxq: Option<usize>) -> io::Result<Box<dyn PortQueue<P>>>;
    /// Counters summed over every queue.
    fn stats(&self) -> PortStats;
    /// Link state.
    fn link_up(&self) -> bool;
}

/// Counters of one port, as summed on read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames the port received but could not hand over (no buffer).
    pub rx_dropped: u64,
    /// Frames larger than the port's MTU (counted as the `oversized` drop
    /// reason too).
    pub rx_oversized: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames the port was given but could not send (ring full, link down).
    pub tx_dropped: u64,
}

/// Counters of one queue: written by its worker only, read by anyone.
///
/// Single-writer: increments are a relaxed load and store (plain moves on
/// x86), never a locked read-modify-write.
#[derive(Debug, Default)]
pub struct QueueCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_dropped: AtomicU64,
    rx_oversized: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

impl QueueCounters {
    #[inline]
    pub fn rx(&self, packets: u64, bytes: u64) {
        bump(&self.rx_packets, packets);
        bump(&self.rx_bytes, bytes);
    }
    #[inline]
    pub fn rx_dropped(&self, packets: u64) {
        bump(&self.rx_dropped, packets);
    }
    #[inline]
    pub fn rx_oversized(&self, packets: u64) {
        bump(&self.rx_oversized, packets);
    }
    #[inline]
    pub fn tx(&self, packets: u64, bytes: u64) {
        bump(&self.tx_packets, packets);
        bump(&self.tx_bytes, bytes);
    }
    #[inline]
    pub fn tx_dropped(&self, packets: u64) {
        bump(&self.tx_dropped, packets);
    }
    fn add_to(&self, s: &mut PortStats) {
        s.rx_packets += self.rx_packets.load(Ordering::Relaxed);
        s.rx_bytes += self.rx_bytes.load(Ordering::Relaxed);
        s.rx_dropped += self.rx_dropped.load(Ordering::Relaxed);
        s.rx_oversized += self.rx_oversized.load(Ordering::Relaxed);
        s.tx_packets += self.tx_packets.load(Ordering::Relaxed);
        s.tx_bytes += self.tx_bytes.load(Ordering::Relaxed);
        s.tx_dropped += self.tx_dropped.load(Ordering::Relaxed);
    }
}

/// The counters of every queue of a port, plus its link state: what a
/// backend keeps to implement [`Port::stats`] and [`Port::link_up`].
#[derive(Debug)]
pub struct PortState {
    queues: Mutex<Vec<Arc<QueueCounters>>>,
    link_up: AtomicBool,
}

impl Default for PortState {
    fn default() -> Self {
        PortState {
            queues: Mutex::new(Vec::new()),
            link_up: AtomicBool::new(true),
        }
    }
}

impl PortState {
    /// Counters for a newly opened queue (taken at open time, not per burst).
    pub fn new_queue(&self) -> Arc<QueueCounters> {
        let c = Arc::new(QueueCounters::default());
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c.clone());
        c
    }
    /// The sum over every queue.
    pub fn stats(&self) -> PortStats {
        let mut s = PortStats::default();
        for q in self.queues.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            q.add_to(&mut s);
        }
        s
    }
    pub fn link_up(&self) -> bool {
        self.link_up.load(Ordering::Relaxed)
    }
    pub fn set_link_up(&self, up: bool) {
        self.link_up.store(up, Ordering::Relaxed)
    }
}
