//! The poll-mode engine: workers, their run-to-completion loop, and the
//! control handle that starts, reprograms and stops them.
//!
//! Each worker is a thread pinned to a core (core_affinity) that owns a
//! buffer pool, a flow cache and a [`PortQueue`](crate::port::PortQueue) on every port. It polls its
//! assigned rx queues in bursts, runs each packet through
//! [`pipeline::decide_cached`](crate::pipeline::decide_cached) (the flow cache, and the full pipeline on a
//! miss), batches the results per output port and transmits them in
//! bursts. Packets for other chassis are staged during the burst and
//! encapsulated after it (their headroom prefetched meanwhile), through an
//! endpoint prepared per remote chassis; packets from the uplink are
//! decapsulated and delivered through a flow cache of their own. Tables come from a [`TablePublisher`]: one atomic load per
//! poll round detects a new generation, so publishing never stalls a worker.
//! Ports come and go while the workers run: [`Engine::add_port`] opens each
//! worker's queue on the control thread and hands it over through the
//! worker's mailbox, which the worker checks with one atomic load per round.
//!
//! The parts: [`worker`] (the loop and its local forwarding), its
//! `tunnel` module (encapsulation and the uplink), [`stats`] (the
//! counters a worker writes and `show`/`/metrics` read), and the mailbox
//! that carries port changes from the control thread to the workers.

mod mailbox;
pub mod stats;
pub mod worker;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::drop::DropReason;
use crate::ids::PortId;
use crate::overlay::Neighbors;
use crate::packet::BufPool;
use crate::port::Port;
use crate::tables::TablePublisher;
use mailbox::{Mailbox, PortChange};
use stats::bump;
pub use stats::{cycles, WorkerStats};
pub use worker::Worker;

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Number of worker threads.
    pub workers: usize,
    /// Cores to pin workers to (worker i on `cores[i % len]`); empty: no
    /// pinning.
    pub cores: Vec<usize>,
    /// Sleep this long after a run of empty polls (None: pure busy polling,
    /// as a PMD on a dedicated core).
    pub idle_sleep: Option<Duration>,
    /// Buffers per worker pool.
    pub pool_buffers: usize,
    /// Flow cache entries per worker (0: no flow cache).
    pub flow_cache_entries: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            cores: Vec::new(),
            idle_sleep: Some(Duration::from_micros(50)),
            pool_buffers: 4096,
            flow_cache_entries: 8192,
        }
    }
}

/// A running set of workers over a set of ports.
pub struct Engine<P: BufPool> {
    /// Indexed by [`PortId`]; `None` where a port was removed.
    ports: Mutex<PortSlots<P>>,
    publisher: Arc<TablePublisher>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    workers: Vec<Arc<WorkerStats>>,
    mailboxes: Vec<Arc<Mailbox<P>>>,
    /// The core each worker is pinned to, if any.
    cores: Vec<Option<usize>>,
    neighbors: Arc<Neighbors>,
}

/// The engine's ports, and how many rx queues each worker polls.
struct PortSlots<P: BufPool> {
    ports: Vec<Option<Arc<dyn Port<P>>>>,
    /// Per port: the worker polling each of its rx queues.
    pollers: Vec<Vec<usize>>,
    /// Per worker: rx queues polled.
    load: Vec<usize>,
}

/// Which worker polls which rx queue, given each port's rx queue count:
/// round robin over every `(port, rx queue)` pair, so the queues of a
/// multi-queue (RSS) port land on different workers, and single-queue ports
/// are spread over workers as before. A worker holds one queue per port, so
/// a port's queues beyond the number of workers are not polled: give ports
/// at most as many rx queues as there are workers.
pub fn assign_rx(rx_queues: &[usize], workers: usize) -> Vec<Vec<(PortId, usize)>> {
    let workers = workers.max(1);
    let mut a = vec![Vec::new(); workers];
    let mut k = 0;
    for (p, &n) in rx_queues.iter().enumerate() {
        for q in 0..n.min(workers) {
            a[k % workers].push((PortId(p as u16), q));
            k += 1;
        }
    }
    a
}

const IDLE_ROUNDS: u32 = 1024;

impl<P: BufPool + 'static> Engine<P> {
    /// Starts `config.workers` workers over `ports` (indexed by [`PortId`]).
    pub fn start(
        config: &EngineConfig,
        ports: Vec<Arc<dyn Port<P>>>,
        publisher: Arc<TablePublisher>,
        make_pool: impl Fn(usize) -> P,
    ) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut workers = Vec::new();
        let mut mailboxes = Vec::new();
        let mut cores = Vec::new();
        let neighbors = Arc::new(Neighbors::default());
        let rx_queues: Vec<usize> = ports.iter().map(|p| p.rx_queues()).collect();
        let assignment = assign_rx(&rx_queues, config.workers);
        let mut pollers: Vec<Vec<usize>> = rx_queues
            .iter()
            .map(|&n| vec![0; n.min(config.workers.max(1))])
            .collect();
        for (w, rx) in assignment.iter().enumerate() {
            for &(p, q) in rx {
                pollers[p.get()][q] = w;
            }
        }
        let load = assignment.iter().map(Vec::len).collect();
        for (id, rx) in assignment.into_iter().enumerate() {
            let mut worker = Worker::with_rx_queues(
                &ports,
                &rx,
                publisher.clone(),
                make_pool(id),
                config.flow_cache_entries,
            )?;
            worker.set_neighbors(neighbors.clone());
            workers.push(worker.stats());
            mailboxes.push(worker.mailbox.clone());
            let stop = stop.clone();
            let core = (!config.cores.is_empty()).then(|| config.cores[id % config.cores.len()]);
            cores.push(core);
            let idle_sleep = config.idle_sleep;
            let stats = worker.stats();
            threads.push(std::thread::Builder::new().name(format!("pmd{id}")).spawn(
                move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id: c });
                    }
                    let mut idle = 0u32;
                    let mut t = cycles();
                    while !stop.load(Ordering::Relaxed) {
                        let n = worker.poll();
                        let now = cycles();
                        let spent = now.wrapping_sub(t);
                        t = now;
                        if n == 0 {
                            bump(&stats.idle_cycles, spent);
                            idle += 1;
                            if idle >= IDLE_ROUNDS {
                                match idle_sleep {
                                    Some(d) => {
                                        std::thread::sleep(d);
                                        t = cycles();
                                    }
                                    None => std::hint::spin_loop(),
                                }
                            }
                        } else {
                            bump(&stats.busy_cycles, spent);
                            idle = 0;
                        }
                    }
                },
            )?);
        }
        Ok(Engine {
            ports: Mutex::new(PortSlots {
                ports: ports.into_iter().map(Some).collect(),
                pollers,
                load,
            }),
            publisher,
            stop,
            threads,
            workers,
            mailboxes,
            cores,
            neighbors,
        })
    }

    /// Adds a port while the workers run and returns its id (the lowest
    /// free one). Every worker gets a queue to transmit on it; its rx queues
    /// go to the least loaded workers. The workers pick it up within a poll
    /// round; tables that output to the id can be published right away.
    pub fn add_port(&self, port: Arc<dyn Port<P>>) -> io::Result<PortId> {
        let mut slots = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        let workers = self.mailboxes.len();
        let mut load = slots.load.clone();
        let mut pollers = Vec::new();
        for _ in 0..port.rx_queues().min(workers) {
            let w = (0..workers)
                .filter(|w| !pollers.contains(w))
                .min_by_key(|&w| load[w])
                .expect("a worker without a queue of this port");
            load[w] += 1;
            pollers.push(w);
        }
        // Open every queue before handing any over, so a failure changes
        // nothing.
        let queues = (0..workers)
            .map(|w| {
                let rxq = pollers.iter().position(|&x| x == w);
                port.open_queue(rxq).map(|q| (q, rxq.is_some()))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let id = match slots.ports.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                slots.ports.push(None);
                slots.pollers.push(Vec::new());
                slots.ports.len() - 1
            }
        };
        let id_typed = PortId::try_from(id)
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "too many ports"))?;
        for (mailbox, (queue, poll)) in self.mailboxes.iter().zip(queues) {
            mailbox.post(PortChange::Add {
                id: id_typed,
                queue,
                poll,
            });
        }
        slots.ports[id] = Some(port);
        slots.pollers[id] = pollers;
        slots.load = load;
        Ok(id_typed)
    }

    /// Removes a port: every worker closes its queue on it within a poll
    /// round; packets still decided for it are dropped. Publish tables that
    /// no longer output to it first. Returns the port, if there was one.
    pub fn remove_port(&self, id: PortId) -> Option<Arc<dyn Port<P>>> {
        let mut slots = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        let port = slots.ports.get_mut(id.get())?.take()?;
        for w in std::mem::take(&mut slots.pollers[id.get()]) {
            slots.load[w] -= 1;
        }
        for mailbox in &self.mailboxes {
            mailbox.post(PortChange::Remove(id));
        }
        Some(port)
    }

    /// Waits until every worker forwards with table generation `generation`
    /// or newer; false if `timeout` passes first.
    pub fn wait_for_tables(&self, generation: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .workers
                .iter()
                .all(|w| w.table_generation.load(Ordering::Acquire) >= generation)
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    /// The table publisher, to reprogram the running workers.
    pub fn publisher(&self) -> &Arc<TablePublisher> {
        &self.publisher
    }

    /// The ports, indexed by [`PortId`] (`None` where one was removed).
    pub fn ports(&self) -> Vec<Option<Arc<dyn Port<P>>>> {
        self.ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ports
            .clone()
    }

    /// The remote tunnel endpoints' MACs the workers know.
    pub fn neighbors(&self) -> &Arc<Neighbors> {
        &self.neighbors
    }

    /// Per-worker counters.
    pub fn workers(&self) -> &[Arc<WorkerStats>] {
        &self.workers
    }

    /// The core each worker is pinned to (None: not pinned).
    pub fn worker_cores(&self) -> &[Option<usize>] {
        &self.cores
    }

    /// Which worker polls which rx queue: per port id, the worker of each
    /// rx queue in queue order (empty where a port was removed), as OVS's
    /// `pmd-rxq-show` tells.
    pub fn rx_map(&self) -> Vec<Vec<usize>> {
        self.ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pollers
            .clone()
    }

    /// Drops under `reason`, summed over workers.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.workers.iter().map(|w| w.drops(reason)).sum()
    }

    /// Drops of packets from local port `port`, summed over the workers.
    pub fn port_drops(&self, port: PortId) -> u64 {
        self.workers.iter().map(|w| w.port_drops(port)).sum()
    }

    /// Stops and joins every worker (as dropping the engine does).
    pub fn stop(self) {}
}

impl<P: BufPool> Drop for Engine<P> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowDesc;
    use crate::packet::{HeapPool, MAX_BURST};
    use crate::port::memory::{ReplayPort, Traffic};
    use crate::tables::{LogicalPort, LogicalSwitch, Tables};

    /// Three VMs on one switch, each on a replay port sending `packets`
    /// frames to the next.
    fn three_vms(packets: u64) -> (Tables, Vec<Arc<ReplayPort>>) {
        let mac = |i: usize| format!("02:00:00:00:00:{i:02x}");
        let ports: Vec<LogicalPort> = (0..3)
            .map(|i| LogicalPort {
                local_port: Some(PortId(i as u16)),
                ..LogicalPort::vif(
                    format!("vm{i}"),
                    i as u32 + 1,
                    format!("{} 10.0.0.{}", mac(i), i + 1).parse().unwrap(),
                    false,
                )
            })
            .collect();
        let tables = Tables::compile(&[LogicalSwitch {
            name: "ls".into(),
            tunnel_key: 1,
            ports,
        }])
        .unwrap();
        let replay: Vec<Arc<ReplayPort>> = (0..3)
            .map(|i| {
                let frame = format!(
                    "eth.src={} eth.dst={} ip4.src=10.0.0.{} ip4.dst=10.0.0.{} udp.dst=53",
                    mac(i),
                    mac((i + 1) % 3),
                    i + 1,
                    (i + 1) % 3 + 1
                )
                .parse::<FlowDesc>()
                .unwrap()
                .to_frame()
                .unwrap();
                let traffic = Arc::new(Traffic::new(&[frame]));
                Arc::new(ReplayPort::new(&format!("p{i}"), traffic, packets))
            })
            .collect();
        (tables, replay)
    }

    /// A worker whose pool holds one burst serves one port per round; the
    /// rounds take the ports in turn instead of always the first.
    #[test]
    fn a_dry_pool_does_not_starve_later_ports() {
        let (tables, replay) = three_vms(10 * MAX_BURST as u64);
        let dyn_ports: Vec<Arc<dyn Port<HeapPool>>> = replay
            .iter()
            .map(|p| p.clone() as Arc<dyn Port<HeapPool>>)
            .collect();
        let pool = HeapPool::new(MAX_BURST, 256);
        let mut w = Worker::new(
            &dyn_ports,
            &[PortId(0), PortId(1), PortId(2)],
            TablePublisher::new(tables),
            pool,
            64,
        )
        .unwrap();
        for _ in 0..3 {
            assert_eq!(w.poll(), MAX_BURST);
        }
        for p in &replay {
            assert_eq!(
                Port::<HeapPool>::stats(p.as_ref()).rx_packets,
                MAX_BURST as u64
            );
        }
    }

    /// The engine's workers count busy cycles for what they forward, and
    /// the rx map says which worker polls which port.
    #[test]
    fn workers_count_cycles_and_the_rx_map_shows_pollers() {
        let packets = 50 * MAX_BURST as u64;
        let (tables, replay) = three_vms(packets);
        let ports: Vec<Arc<dyn Port<HeapPool>>> = replay
            .iter()
            .map(|p| p.clone() as Arc<dyn Port<HeapPool>>)
            .collect();
        let engine = Engine::start(
            &EngineConfig {
                workers: 2,
                ..EngineConfig::default()
            },
            ports,
            TablePublisher::new(tables),
            |_| HeapPool::new(4096, 256),
        )
        .unwrap();
        assert_eq!(engine.rx_map(), [vec![0], vec![1], vec![0]]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let rx = || -> u64 {
            engine
                .workers()
                .iter()
                .map(|w| w.rx_packets.load(Ordering::Acquire))
                .sum()
        };
        while rx() < 3 * packets {
            assert!(Instant::now() < deadline, "the workers forwarded {}", rx());
            std::thread::sleep(Duration::from_millis(1));
        }
        for w in engine.workers() {
            assert!(w.busy_cycles.load(Ordering::Relaxed) > 0);
            assert!(w.cycles_per_packet().is_some());
            assert!(w.busy_ratio() > 0.0 && w.busy_ratio() <= 1.0);
            assert!(w.cache_hit_rate().unwrap() > 0.9);
        }
    }

    #[test]
    fn rx_queues_are_spread_round_robin() {
        let plain = |a: Vec<Vec<(PortId, usize)>>| -> Vec<Vec<(u16, usize)>> {
            a.into_iter()
                .map(|w| w.into_iter().map(|(p, q)| (p.0, q)).collect())
                .collect()
        };
        // Single-queue ports: round robin over ports.
        assert_eq!(
            plain(assign_rx(&[1, 1, 1], 2)),
            [vec![(0, 0), (2, 0)], vec![(1, 0)]]
        );
        // An RSS port's queues land on different workers; queues beyond
        // the worker count are not polled.
        assert_eq!(
            plain(assign_rx(&[2, 1, 3], 2)),
            [vec![(0, 0), (1, 0), (2, 1)], vec![(0, 1), (2, 0)]]
        );
        assert_eq!(plain(assign_rx(&[1], 0)), [vec![(0, 0)]]);
    }
}
