//! Next-hop resolution's state that outlives table snapshots: what OVN 23.03
//! keeps in ovn-controller's pinctrl thread for the `arp`/`nd_ns` and
//! `put_arp`/`put_nd` actions, here without a round trip per packet.
//!
//! - The rate limit of the ARP requests and neighbour solicitations the
//!   routers send for unknown next hops ([`NeighborLog::admit`]): one per
//!   next hop a second (next hops hashed into [`SLOTS`] slots), and at most
//!   [`SOLICIT_PER_SECOND`] in all, so unresolved traffic at line rate sends
//!   a trickle of requests, not a storm. A check is one or two relaxed
//!   atomic loads; a store only when a request goes out. OVN meters these
//!   only when the router's `copp` names a meter; the fixed limit here
//!   stands in for that.
//! - The bindings the routers learn from ARP and neighbour discovery
//!   ([`NeighborLog::learn`]): a bounded lock-free queue, like
//!   [`crate::acl_log`]'s (no allocation, lock or syscall on the worker),
//!   that the chassis controller drains ([`NeighborLog::drain`]) into its
//!   own tables at once and into SB `MAC_Binding`, which every chassis
//!   reads. A full queue loses the binding, counted ([`NeighborLog::lost`]);
//!   the next answer brings it again.
//! - What the routers answer themselves ([`NeighborLog::answered`]): echo
//!   replies, time exceeded, and the TCP resets and ICMP unreachables for
//!   their own addresses, one relaxed atomic add per answer (answers are
//!   the slow path: never cached, never forwarded).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::wire::MacAddr;

/// Slots of the per-next-hop limit (a power of two).
pub const SLOTS: usize = 256;
/// The most requests and solicitations the node sends in a second.
pub const SOLICIT_PER_SECOND: u64 = 100;
/// Bindings waiting for the controller.
const QUEUE: usize = 1024;

/// A binding a router learnt: `ip` behind router port `port` (of the
/// router whose datapath has tunnel key `router`) is at `mac`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learnt {
    pub router: u32,
    pub port: Arc<str>,
    pub ip: IpAddr,
    pub mac: MacAddr,
}

/// The rate limit and the queue of learnt bindings, shared by the workers.
#[derive(Debug)]
pub struct NeighborLog {
    /// Per slot: `hash tag << 32 | second` of its last request.
    slots: [AtomicU64; SLOTS],
    /// `second << 32 | requests sent in it`.
    window: AtomicU64,
    queue: ArrayQueue<Learnt>,
    arp_sent: AtomicU64,
    ns_sent: AtomicU64,
    learnt: AtomicU64,
    lost: AtomicU64,
    answers: [AtomicU64; Answered::ALL.len()],
}

/// What a router answers itself, as `/metrics` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    EchoReply,
    TimeExceeded,
    TcpReset,
    SctpAbort,
    PortUnreachable,
    /// ICMP destination unreachable for any other protocol (IPv4 protocol
    /// unreachable, ICMPv6 address unreachable, as OVN's codes).
    DstUnreachable,
}

impl Answered {
    pub const ALL: [Answered; 6] = [
        Answered::EchoReply,
        Answered::TimeExceeded,
        Answered::TcpReset,
        Answered::SctpAbort,
        Answered::PortUnreachable,
        Answered::DstUnreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Answered::EchoReply => "echo_reply",
            Answered::TimeExceeded => "time_exceeded",
            Answered::TcpReset => "tcp_reset",
            Answered::SctpAbort => "sctp_abort",
            Answered::PortUnreachable => "port_unreachable",
            Answered::DstUnreachable => "dst_unreachable",
        }
    }
}

impl Default for NeighborLog {
    fn default() -> Self {
        NeighborLog {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
            window: AtomicU64::new(0),
            queue: ArrayQueue::new(QUEUE),
            arp_sent: AtomicU64::new(0),
            ns_sent: AtomicU64::new(0),
            learnt: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            answers: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// A hash of a next hop of router `router` (FxHash-style mixing).
fn hash(router: u32, ip: IpAddr) -> u64 {
    let bits = match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let mut h = u64::from(router).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for w in [bits as u64, (bits >> 64) as u64] {
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h
}

impl NeighborLog {
    /// Whether a request for next hop `ip` of router `router` may go out
    /// in second `now`; counts it if so (racing workers may send one more).
    #[inline]
    pub fn admit(&self, router: u32, ip: IpAddr, now: u64) -> bool {
        let h = hash(router, ip);
        let slot = &self.slots[h as usize & (SLOTS - 1)];
        let now = now & 0xffff_ffff;
        let mark = (h >> 32) << 32 | now;
        if slot.load(Relaxed) == mark {
            return false;
        }
        let w = self.window.load(Relaxed);
        if w >> 32 == now {
            if w & 0xffff_ffff >= SOLICIT_PER_SECOND {
                return false;
            }
            self.window.fetch_add(1, Relaxed);
        } else {
            self.window.store(now << 32 | 1, Relaxed);
        }
        slot.store(mark, Relaxed);
        match ip {
            IpAddr::V4(_) => &self.arp_sent,
            IpAddr::V6(_) => &self.ns_sent,
        }
        .fetch_add(1, Relaxed);
        true
    }

    /// On the forwarding path: queues binding `l` for the controller.
    pub fn learn(&self, l: Learnt) {
        match self.queue.push(l) {
            Ok(()) => self.learnt.fetch_add(1, Relaxed),
            Err(_) => self.lost.fetch_add(1, Relaxed),
        };
    }

    /// The bindings queued so far, oldest first.
    pub fn drain(&self) -> impl Iterator<Item = Learnt> + '_ {
        std::iter::from_fn(|| self.queue.pop())
    }

    /// ARP requests sent for unknown next hops.
    pub fn arp_sent(&self) -> u64 {
        self.arp_sent.load(Relaxed)
    }

    /// Neighbour solicitations sent for unknown next hops.
    pub fn ns_sent(&self) -> u64 {
        self.ns_sent.load(Relaxed)
    }

    /// Bindings learnt from ARP and neighbour discovery (queued for the
    /// controller; a binding answered twice before the tables have it
    /// counts twice).
    pub fn learnt(&self) -> u64 {
        self.learnt.load(Relaxed)
    }

    /// Bindings lost because the queue was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Relaxed)
    }

    /// On the forwarding path: a router answered with `a`.
    pub fn answer(&self, a: Answered) {
        self.answers[a as usize].fetch_add(1, Relaxed);
    }

    /// How many times routers answered with `a`.
    pub fn answered(&self, a: Answered) -> u64 {
        self.answers[a as usize].load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request per next hop a second, whatever the packet rate; a new
    /// second, or another next hop, sends again.
    #[test]
    fn one_request_per_next_hop_a_second() {
        let log = NeighborLog::default();
        let a: IpAddr = "10.0.2.50".parse().unwrap();
        let b: IpAddr = "fd02::50".parse().unwrap();
        let sent = (0..10_000).filter(|_| log.admit(7, a, 100)).count();
        assert_eq!(sent, 1);
        assert!(log.admit(7, b, 100));
        assert!(!log.admit(7, b, 100));
        // The same address behind another router is another next hop.
        assert!(log.admit(8, a, 100));
        assert!(log.admit(7, a, 101));
        assert_eq!((log.arp_sent(), log.ns_sent()), (3, 1));
    }

    /// Many unresolved next hops at once: at most SOLICIT_PER_SECOND a
    /// second in all.
    #[test]
    fn the_node_sends_at_most_its_budget_a_second() {
        let log = NeighborLog::default();
        let sent = (0..100_000u32)
            .filter(|i| log.admit(1, IpAddr::V4((0x0a00_0000 + i).into()), 5))
            .count();
        assert_eq!(sent as u64, SOLICIT_PER_SECOND);
        assert!(log.admit(1, "10.0.0.1".parse().unwrap(), 6));
    }

    /// The queue is bounded: what does not fit is counted, not blocked on.
    #[test]
    fn a_full_queue_counts_what_it_loses() {
        let log = NeighborLog::default();
        let l = Learnt {
            router: 1,
            port: "lrp2".into(),
            ip: "10.0.2.50".parse().unwrap(),
            mac: MacAddr([0, 0, 0, 0, 2, 0x50]),
        };
        for _ in 0..QUEUE + 5 {
            log.learn(l.clone());
        }
        assert_eq!((log.learnt(), log.lost()), (QUEUE as u64, 5));
        assert_eq!(log.drain().count(), QUEUE);
        assert_eq!(log.drain().count(), 0);
    }
}
