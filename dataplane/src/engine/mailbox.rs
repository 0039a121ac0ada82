//! How port changes reach running workers: the control thread opens each
//! worker's queue on a new port and posts it to the worker's mailbox; the
//! worker checks one atomic flag per poll round and takes the lock only
//! when something is waiting, so adding a port never stalls forwarding.
//!
//! Rx queues move between workers the same way, in two steps
//! ([`move_rx`]): every worker that loses a queue yields it (stops polling,
//! keeps its tx queue) and hands it back through its mailbox; once all are
//! back, each goes to the worker that gains it. A worker thus never polls
//! a queue another still polls, and a worker's one handle per port is never
//! asked to take a second rx queue. Frames arriving meanwhile wait in the
//! device's ring; nothing is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::rxq::RxqCycles;
use crate::ids::PortId;
use crate::packet::BufPool;
use crate::port::{PortQueue, RxQueue};

/// A change to a worker's set of ports, sent by [`Engine`].
pub(super) enum PortChange<P: BufPool> {
    /// A new port at this id: the worker's queue on it, and the measured
    /// cycles of its rx queue if the worker polls one.
    Add {
        id: PortId,
        queue: Box<dyn PortQueue<P>>,
        rx: Option<Arc<RxqCycles>>,
    },
    /// The port at this id is gone: close the queue.
    Remove(PortId),
    /// Stop polling this port and hand its rx queue back ([`Mailbox::yielded`]).
    YieldRx(PortId),
    /// Poll this rx queue of the port, yielded by another worker.
    AdoptRx {
        id: PortId,
        rx: RxQueue,
        cycles: Arc<RxqCycles>,
    },
}

/// What a worker hands back for [`PortChange::YieldRx`]: the port, and its
/// rx queue with its cycles (`None` if the worker polled none).
pub(super) type Yielded = (PortId, Option<InTransit>);

/// A yielded rx queue and its measured cycles.
pub(super) type InTransit = (RxQueue, Arc<RxqCycles>);

/// Port changes waiting for a worker. The worker looks at `pending` once a
/// round (a relaxed load) and takes the lock only when it is set.
pub(super) struct Mailbox<P: BufPool> {
    pub(super) pending: AtomicBool,
    pub(super) changes: Mutex<Vec<PortChange<P>>>,
    /// Rx queues the worker yielded, for the engine to collect.
    returned: Mutex<Vec<Yielded>>,
}

impl<P: BufPool> Default for Mailbox<P> {
    fn default() -> Self {
        Mailbox {
            pending: AtomicBool::new(false),
            changes: Mutex::new(Vec::new()),
            returned: Mutex::new(Vec::new()),
        }
    }
}

impl<P: BufPool> Mailbox<P> {
    pub(super) fn post(&self, change: PortChange<P>) {
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(change);
        self.pending.store(true, Ordering::Release);
    }

    /// The worker hands back a yielded rx queue.
    pub(super) fn yielded(&self, id: PortId, rx: Option<InTransit>) {
        self.returned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, rx));
    }

    fn take_returned(&self) -> Vec<Yielded> {
        std::mem::take(&mut *self.returned.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One rx queue changing workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Move {
    pub port: PortId,
    pub from: usize,
    pub to: usize,
}

/// Moves rx queues between workers (see the module doc); returns the moves
/// done. A move whose worker did not yield within `timeout` (a stalled
/// worker) is not done; its queue, yielded later, is given back to that
/// worker at the next call (`late`, kept by the caller).
pub(super) fn move_rx<P: BufPool>(
    mailboxes: &[Arc<Mailbox<P>>],
    moves: &[Move],
    late: &mut Vec<(usize, Yielded)>,
    timeout: Duration,
) -> Vec<Move> {
    // Queues yielded after an earlier call gave up on them go home first.
    for (w, mailbox) in mailboxes.iter().enumerate() {
        late.extend(mailbox.take_returned().into_iter().map(|y| (w, y)));
    }
    for (w, (id, rx)) in late.drain(..) {
        if let Some((rx, cycles)) = rx {
            mailboxes[w].post(PortChange::AdoptRx { id, rx, cycles });
        }
    }
    for m in moves {
        mailboxes[m.from].post(PortChange::YieldRx(m.port));
    }
    let mut back: Vec<Option<Option<InTransit>>> = moves.iter().map(|_| None).collect();
    let deadline = Instant::now() + timeout;
    while back.iter().any(Option::is_none) && Instant::now() < deadline {
        for (w, mailbox) in mailboxes.iter().enumerate() {
            for (id, rx) in mailbox.take_returned() {
                match moves
                    .iter()
                    .zip(&back)
                    .position(|(m, b)| m.from == w && m.port == id && b.is_none())
                {
                    Some(i) => back[i] = Some(rx),
                    None => late.push((w, (id, rx))),
                }
            }
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    let mut done = Vec::new();
    for (m, b) in moves.iter().zip(back) {
        match b {
            Some(Some((rx, cycles))) => {
                mailboxes[m.to].post(PortChange::AdoptRx {
                    id: m.port,
                    rx,
                    cycles,
                });
                done.push(*m);
            }
            // The worker polled no queue of the port: nothing to move.
            Some(None) => {}
            None => {}
        }
    }
    done
}

/// The queue left on a removed port's id: receives nothing, and frees (and
/// counts) what the worker still sends it from a stale decision.
pub(super) struct ClosedQueue;

impl<P: BufPool> PortQueue<P> for ClosedQueue {
    fn rx_burst(&mut self, _: &mut P, _: &mut Vec<P::Buf>, _: usize) -> usize {
        0
    }
    fn tx_burst(&mut self, pool: &mut P, pkts: &mut Vec<P::Buf>) {
        pool.free_all(pkts);
    }
    fn take_rx(&mut self) -> Option<RxQueue> {
        None
    }
    fn give_rx(&mut self, rx: RxQueue) -> Result<(), RxQueue> {
        Err(rx)
    }
}
