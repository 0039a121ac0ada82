//! How port changes reach running workers: the control thread opens each
//! worker's queue on a new port and posts it to the worker's mailbox; the
//! worker checks one atomic flag per poll round and takes the lock only
//! when something is waiting, so adding a port never stalls forwarding.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::ids::PortId;
use crate::packet::BufPool;
use crate::port::PortQueue;

/// A change to a worker's set of ports, sent by [`Engine`].
pub(super) enum PortChange<P: BufPool> {
    /// A new port at this id: the worker's queue on it, and whether the
    /// worker polls its rx queue.
    Add {
        id: PortId,
        queue: Box<dyn PortQueue<P>>,
        poll: bool,
    },
    /// The port at this id is gone: close the queue.
    Remove(PortId),
}

/// Port changes waiting for a worker. The worker looks at `pending` once a
/// round (a relaxed load) and takes the lock only when it is set.
pub(super) struct Mailbox<P: BufPool> {
    pub(super) pending: AtomicBool,
    pub(super) changes: Mutex<Vec<PortChange<P>>>,
}

impl<P: BufPool> Default for Mailbox<P> {
    fn default() -> Self {
        Mailbox {
            pending: AtomicBool::new(false),
            changes: Mutex::new(Vec::new()),
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
}
