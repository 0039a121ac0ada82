//! Which worker polls which rx queue, by the algorithms of OVS's
//! `other_config:pmd-rxq-assign` (Documentation/topics/dpdk/pmd.rst,
//! "Automatic Port/Rx Queue assignment to PMD threads"; lib/dpif-netdev.c
//! `sched_numa_list_schedule`, OVS 3.1), and the measured load they use.
//!
//! Each rx queue has an [`RxqCycles`]: the worker polling it adds the
//! cycles of each non-empty burst (receive, pipeline, and its share of the
//! round's transmit), and the engine stores the growth every
//! [`INTERVAL`] into a history of [`INTERVALS`] intervals, one minute as in
//! OVS. [`assign`] sorts the queues by that history, busiest first (ties by
//! port, then queue), and hands them out: `roundrobin` in port/queue order
//! over the workers in turn; `cycles` in an up-down walk over the workers
//! (0, 1, .., n-1, n-1, .., 0, 0, ..), which keeps the queue counts even;
//! `group` each to the worker with the least load so far (by measured
//! cycles; by queue count while nothing was measured).
//!
//! One difference from OVS: a worker holds one handle per port, so it polls
//! at most one rx queue of each port. A queue whose chosen worker already
//! polls one of its port goes to the next worker the algorithm would give.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::ids::PortId;

/// How long one interval of the load history lasts (OVS's
/// `PMD_INTERVAL_LEN`, 5 s).
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Intervals of load history kept per rx queue (OVS's `PMD_INTERVAL_MAX`:
/// one minute).
pub const INTERVALS: usize = 12;

/// How rx queues are assigned to workers (OVS's `pmd-rxq-assign`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxqAssign {
    /// In port and queue order, to the workers in turn.
    RoundRobin,
    /// Busiest first, to the workers in an up-down walk (OVS's default).
    #[default]
    Cycles,
    /// Busiest first, each to the least loaded worker.
    Group,
}

impl RxqAssign {
    pub const NAMES: [&'static str; 3] = ["roundrobin", "cycles", "group"];
}

impl std::fmt::Display for RxqAssign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RxqAssign::RoundRobin => "roundrobin",
            RxqAssign::Cycles => "cycles",
            RxqAssign::Group => "group",
        })
    }
}

impl std::str::FromStr for RxqAssign {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "roundrobin" => Ok(RxqAssign::RoundRobin),
            "cycles" => Ok(RxqAssign::Cycles),
            "group" => Ok(RxqAssign::Group),
            _ => Err(format!(
                "unknown rx queue assignment {s:?} (one of {})",
                RxqAssign::NAMES.join(", ")
            )),
        }
    }
}

/// The measured processing cycles of one rx queue: the polling worker adds
/// to `cycles` (single writer: a relaxed load and store); the engine turns
/// its growth into the interval history.
#[derive(Debug, Default)]
pub struct RxqCycles {
    /// Cycles spent on this queue's packets since it was created.
    pub cycles: AtomicU64,
    /// `cycles` when the current interval began.
    mark: AtomicU64,
    /// The last [`INTERVALS`] intervals' cycles, a ring.
    history: [AtomicU64; INTERVALS],
    /// Intervals stored so far (the next slot is `stored % INTERVALS`).
    stored: AtomicU64,
}

impl RxqCycles {
    #[inline]
    pub(super) fn add(&self, n: u64) {
        let c = &self.cycles;
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Closes the current interval (the engine calls this every
    /// [`INTERVAL`]).
    pub(super) fn store_interval(&self) {
        let now = self.cycles.load(Ordering::Relaxed);
        let spent = now.wrapping_sub(self.mark.swap(now, Ordering::Relaxed));
        let i = self.stored.fetch_add(1, Ordering::Relaxed) as usize % INTERVALS;
        self.history[i].store(spent, Ordering::Relaxed);
    }

    /// Cycles over the stored history (up to one minute), what the
    /// assignment sorts by.
    pub fn history(&self) -> u64 {
        self.history.iter().map(|h| h.load(Ordering::Relaxed)).sum()
    }

    /// Intervals the history holds (at most [`INTERVALS`]).
    pub fn intervals(&self) -> usize {
        (self.stored.load(Ordering::Relaxed) as usize).min(INTERVALS)
    }
}

/// One rx queue to place, with its measured load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxqLoad {
    pub port: PortId,
    pub queue: usize,
    /// Processing cycles over the history ([`RxqCycles::history`]).
    pub cycles: u64,
}

/// The walk over workers that `roundrobin` and `cycles` take (OVS's
/// `sched_pmd_next_rr`).
struct Walk {
    workers: usize,
    at: usize,
    up: bool,
    updown: bool,
}

impl Walk {
    fn next(&mut self) -> usize {
        let w = self.at;
        if self.up {
            if self.at + 1 == self.workers {
                if self.updown {
                    self.up = false;
                } else {
                    self.at = 0;
                }
            } else {
                self.at += 1;
            }
        } else if self.at == 0 {
            self.up = true;
        } else {
            self.at -= 1;
        }
        w
    }
}

/// Assigns `queues` to `workers` workers by `algo`: per worker, the
/// `(port, queue)` pairs it polls, in assignment order. A worker never gets
/// two queues of one port; queues of a port beyond the worker count are
/// left out (give ports at most as many rx queues as there are workers).
pub fn assign(queues: &[RxqLoad], workers: usize, algo: RxqAssign) -> Vec<Vec<(PortId, usize)>> {
    let workers = workers.max(1);
    let mut order: Vec<RxqLoad> = queues.to_vec();
    if algo != RxqAssign::RoundRobin {
        // compare_rxq_cycles: busiest first, ties by port, then queue.
        order.sort_by(|a, b| {
            b.cycles
                .cmp(&a.cycles)
                .then(a.port.cmp(&b.port))
                .then(a.queue.cmp(&b.queue))
        });
    }
    let mut out: Vec<Vec<(PortId, usize)>> = vec![Vec::new(); workers];
    let mut load = vec![0u64; workers];
    let mut walk = Walk {
        workers,
        at: 0,
        up: true,
        updown: algo == RxqAssign::Cycles,
    };
    let polls = |out: &[Vec<(PortId, usize)>], w: usize, port: PortId| {
        out[w].iter().any(|&(p, _)| p == port)
    };
    for q in order {
        let chosen = match algo {
            RxqAssign::Group => (0..workers)
                .filter(|&w| !polls(&out, w, q.port))
                .min_by_key(|&w| {
                    // sched_pmd_get_lowest: by cycles when this queue was
                    // measured, else by queue count; the first lowest wins.
                    if q.cycles > 0 {
                        load[w]
                    } else {
                        out[w].len() as u64
                    }
                }),
            // sched_pmd_next_rr; a walk covers every worker within 2n steps.
            _ => (0..2 * workers)
                .map(|_| walk.next())
                .find(|&w| !polls(&out, w, q.port)),
        };
        if let Some(w) = chosen {
            out[w].push((q.port, q.queue));
            load[w] += q.cycles;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`assign`] with plain port numbers, to compare with literals.
    fn plain(queues: &[RxqLoad], workers: usize, algo: RxqAssign) -> Vec<Vec<(u16, usize)>> {
        assign(queues, workers, algo)
            .into_iter()
            .map(|w| w.into_iter().map(|(p, q)| (p.0, q)).collect())
            .collect()
    }

    fn q(port: u16, queue: usize, cycles: u64) -> RxqLoad {
        RxqLoad {
            port: PortId(port),
            queue,
            cycles,
        }
    }

    /// pmd.rst's `cycles` example: five queues of one port (numbered 0, 1,
    /// 3, 4, 5 there), three cores. Our queues of one port must sit on
    /// different workers, so the example's queues are ports here.
    #[test]
    fn cycles_walks_up_and_down_as_ovs_documents() {
        let queues = [
            q(0, 0, 30),
            q(1, 0, 80),
            q(3, 0, 60),
            q(4, 0, 70),
            q(5, 0, 10),
        ];
        assert_eq!(
            plain(&queues, 3, RxqAssign::Cycles),
            [
                vec![(1, 0)],         // Core 3: Q1 (80%)
                vec![(4, 0), (5, 0)], // Core 7: Q4 (70%) | Q5 (10%)
                vec![(3, 0), (0, 0)], // Core 8: Q3 (60%) | Q0 (30%)
            ]
        );
    }

    /// pmd.rst's `group` example.
    #[test]
    fn group_gives_each_queue_the_least_loaded_worker_as_ovs_documents() {
        let queues = [
            q(0, 0, 10),
            q(1, 0, 80),
            q(3, 0, 50),
            q(4, 0, 70),
            q(5, 0, 10),
        ];
        assert_eq!(
            plain(&queues, 3, RxqAssign::Group),
            [
                vec![(1, 0)],                 // Core 3: Q1 (80%)
                vec![(4, 0)],                 // Core 7: Q4 (70%)
                vec![(3, 0), (0, 0), (5, 0)], // Core 8: Q3 (50%) | Q0 | Q5
            ]
        );
    }

    /// pmd.rst's `roundrobin` example: P0Q0, P0Q1, P1Q0, P1Q1, P1Q2 over
    /// three cores; the measured cycles do not matter.
    #[test]
    fn roundrobin_takes_port_and_queue_order_as_ovs_documents() {
        let queues = [q(0, 0, 5), q(0, 1, 90), q(1, 0, 0), q(1, 1, 7), q(1, 2, 1)];
        assert_eq!(
            plain(&queues, 3, RxqAssign::RoundRobin),
            [
                vec![(0, 0), (1, 1)], // Core 3: P0Q0 | P1Q1
                vec![(0, 1), (1, 2)], // Core 7: P0Q1 | P1Q2
                vec![(1, 0)],         // Core 8: P1Q0
            ]
        );
    }

    /// Unmeasured queues sort by port and queue, and `group` then evens
    /// out queue counts.
    #[test]
    fn without_measurements_queues_are_spread_by_count() {
        let queues = [q(0, 0, 0), q(1, 0, 0), q(2, 0, 0)];
        let want = [vec![(0, 0), (2, 0)], vec![(1, 0)]];
        assert_eq!(plain(&queues, 2, RxqAssign::Group), want);
        assert_eq!(plain(&queues, 2, RxqAssign::RoundRobin), want);
        // Up-down: 0, 1, 1.
        assert_eq!(
            plain(&queues, 2, RxqAssign::Cycles),
            [vec![(0, 0)], vec![(1, 0), (2, 0)]]
        );
    }

    /// The walk would put port 0's second queue with its first; it goes to
    /// the next worker instead, and queues beyond the workers are left out.
    #[test]
    fn a_worker_never_polls_two_queues_of_one_port() {
        let queues = [q(0, 0, 90), q(1, 0, 80), q(2, 0, 70), q(0, 1, 60)];
        // Walk 0, 1, 1, 0: port 0 queue 1 skips worker 0 for worker 1.
        assert_eq!(
            plain(&queues, 2, RxqAssign::Cycles),
            [vec![(0, 0)], vec![(1, 0), (2, 0), (0, 1)]]
        );
        // Group: 90 on 0, 80 on 1, 70 on the lighter 1; port 0's second
        // queue cannot join its first on 0.
        assert_eq!(
            plain(&queues, 2, RxqAssign::Group),
            [vec![(0, 0)], vec![(1, 0), (2, 0), (0, 1)]]
        );
        let many = [q(0, 0, 3), q(0, 1, 2), q(0, 2, 1)];
        for algo in [RxqAssign::RoundRobin, RxqAssign::Cycles, RxqAssign::Group] {
            assert_eq!(
                plain(&many, 2, algo),
                [vec![(0, 0)], vec![(0, 1)]],
                "{algo}"
            );
        }
        assert_eq!(plain(&[q(0, 0, 0)], 0, RxqAssign::Cycles), [vec![(0, 0)]]);
    }

    #[test]
    fn names_parse_as_ovs_spells_them() {
        for n in RxqAssign::NAMES {
            assert_eq!(n.parse::<RxqAssign>().unwrap().to_string(), n);
        }
        assert!("cycle"
            .parse::<RxqAssign>()
            .unwrap_err()
            .contains("roundrobin"));
    }

    #[test]
    fn history_keeps_the_last_minute_of_intervals() {
        let c = RxqCycles::default();
        for i in 0..INTERVALS as u64 + 3 {
            c.add(i);
            c.store_interval();
        }
        assert_eq!(c.intervals(), INTERVALS);
        // Intervals 3..15 remain.
        assert_eq!(c.history(), (3..INTERVALS as u64 + 3).sum::<u64>());
    }
}
