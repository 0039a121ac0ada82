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
//! Rx queues go to workers by [`rxq::assign`] (OVS's `pmd-rxq-assign`:
//! by measured load by default), again whenever a port is added or removed;
//! queues that change workers move through the mailboxes while the workers
//! run, and a sampler thread closes each queue's load interval every
//! [`rxq::INTERVAL`].
//!
//! The parts: [`worker`] (the loop and its local forwarding), its
//! `tunnel` module (encapsulation and the uplink), [`stats`] (the
//! counters a worker writes and `show`/`/metrics` read), [`rxq`] (queue
//! assignment and its measured load), and the mailbox that carries port
//! and rx queue changes from the control thread to the workers.

mod mailbox;
pub mod rxq;
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
use mailbox::{move_rx, Mailbox, Move, PortChange, Yielded};
pub use rxq::{RxqAssign, INTERVAL};
use rxq::{RxqCycles, RxqLoad, INTERVALS};
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
    /// How rx queues are assigned to workers.
    pub rxq_assign: RxqAssign,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            cores: Vec::new(),
            idle_sleep: Some(Duration::from_micros(50)),
            pool_buffers: 4096,
            flow_cache_entries: 8192,
            rxq_assign: RxqAssign::default(),
        }
    }
}

/// A running set of workers over a set of ports.
pub struct Engine<P: BufPool> {
    /// Indexed by [`PortId`]; `None` where a port was removed.
    ports: Arc<Mutex<PortSlots<P>>>,
    publisher: Arc<TablePublisher>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    workers: Vec<Arc<WorkerStats>>,
    mailboxes: Vec<Arc<Mailbox<P>>>,
    /// The core each worker is pinned to, if any.
    cores: Vec<Option<usize>>,
    neighbors: Arc<Neighbors>,
}

/// The engine's ports and which worker polls each of their rx queues.
struct PortSlots<P: BufPool> {
    ports: Vec<Option<Arc<dyn Port<P>>>>,
    /// Per port: the worker polling each of its polled rx queues.
    pollers: Vec<Vec<usize>>,
    /// Per port: the measured cycles of each polled rx queue.
    cycles: Vec<Vec<Arc<RxqCycles>>>,
    algo: RxqAssign,
    /// Rx queues yielded after a move gave up waiting for them.
    late: Vec<(usize, Yielded)>,
    /// The length in cycles of each closed load interval (a ring, as the
    /// queues' histories): the denominator of a queue's usage.
    intervals: [u64; INTERVALS],
    closed: usize,
    interval_start: u64,
}

/// One rx queue in the queue-to-worker map (`pmd-rxq-show`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RxqInfo {
    pub worker: usize,
    /// Processing cycles since the queue was created.
    pub cycles: u64,
    /// Its share of its worker's time over the load history (up to a
    /// minute); `None` until an interval has closed.
    pub usage: Option<f64>,
}

impl<P: BufPool> PortSlots<P> {
    /// Every polled rx queue with the load it measured.
    fn loads(&self) -> Vec<RxqLoad> {
        let mut v = Vec::new();
        for (p, cycles) in self.cycles.iter().enumerate() {
            for (q, c) in cycles.iter().enumerate() {
                v.push(RxqLoad {
                    port: PortId(p as u16),
                    queue: q,
                    cycles: c.history(),
                });
            }
        }
        v
    }

    /// Closes the load interval of every rx queue.
    fn close_interval(&mut self) {
        let now = cycles();
        self.intervals[self.closed % INTERVALS] = now.wrapping_sub(self.interval_start);
        self.closed += 1;
        self.interval_start = now;
        for c in self.cycles.iter().flatten() {
            c.store_interval();
        }
    }

    /// The cycles of the last `n` closed intervals.
    fn last_intervals(&self, n: usize) -> u64 {
        (1..=n.min(self.closed).min(INTERVALS))
            .map(|k| self.intervals[(self.closed - k) % INTERVALS])
            .sum()
    }
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
        let workers_n = config.workers.max(1);
        let queues: Vec<RxqLoad> = ports
            .iter()
            .enumerate()
            .flat_map(|(p, port)| {
                (0..port.rx_queues().min(workers_n)).map(move |queue| RxqLoad {
                    port: PortId(p as u16),
                    queue,
                    cycles: 0,
                })
            })
            .collect();
        let assignment = rxq::assign(&queues, workers_n, config.rxq_assign);
        let mut pollers: Vec<Vec<usize>> = ports
            .iter()
            .map(|p| vec![0; p.rx_queues().min(workers_n)])
            .collect();
        let mut rx_cycles: Vec<Vec<Arc<RxqCycles>>> = pollers
            .iter()
            .map(|q| q.iter().map(|_| Arc::default()).collect())
            .collect();
        for (id, rx) in assignment.into_iter().enumerate() {
            let mut worker = Worker::with_rx_queues(
                &ports,
                &rx,
                publisher.clone(),
                make_pool(id),
                config.flow_cache_entries,
            )?;
            worker.set_neighbors(neighbors.clone());
            for ((p, c), &(_, q)) in worker.rx_cycles().into_iter().zip(&rx) {
                pollers[p.get()][q] = id;
                rx_cycles[p.get()][q] = c;
            }
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
        let slots = Arc::new(Mutex::new(PortSlots {
            ports: ports.into_iter().map(Some).collect(),
            pollers,
            cycles: rx_cycles,
            algo: config.rxq_assign,
            late: Vec::new(),
            intervals: [0; INTERVALS],
            closed: 0,
            interval_start: cycles(),
        }));
        threads.push(sampler(slots.clone(), stop.clone())?);
        Ok(Engine {
            ports: slots,
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
    /// free one). Every worker gets a queue to transmit on it; the rx
    /// queues of all ports are then assigned again by the engine's
    /// [`RxqAssign`], the new port's queues unmeasured, and queues that
    /// change workers move without stopping them. The workers pick the port
    /// up within a poll round; tables that output to the id can be
    /// published right away.
    pub fn add_port(&self, port: Arc<dyn Port<P>>) -> io::Result<PortId> {
        let mut slots = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        let workers = self.mailboxes.len();
        let id = slots
            .ports
            .iter()
            .position(Option::is_none)
            .unwrap_or(slots.ports.len());
        let id_typed = PortId::try_from(id)
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "too many ports"))?;
        let mut queues = slots.loads();
        queues.extend((0..port.rx_queues().min(workers)).map(|queue| RxqLoad {
            port: id_typed,
            queue,
            cycles: 0,
        }));
        let target = rxq::assign(&queues, workers, slots.algo);
        let mut pollers = vec![0; port.rx_queues().min(workers)];
        for (w, rx) in target.iter().enumerate() {
            for &(_, q) in rx.iter().filter(|(p, _)| *p == id_typed) {
                pollers[q] = w;
            }
        }
        // Open every queue before handing any over, so a failure changes
        // nothing.
        let opened = (0..workers)
            .map(|w| {
                let rxq = pollers.iter().position(|&x| x == w);
                port.open_queue(rxq).map(|q| (q, rxq))
            })
            .collect::<io::Result<Vec<_>>>()?;
        if id == slots.ports.len() {
            slots.ports.push(None);
            slots.pollers.push(Vec::new());
            slots.cycles.push(Vec::new());
        }
        let cycles: Vec<Arc<RxqCycles>> = pollers.iter().map(|_| Arc::default()).collect();
        for (mailbox, (queue, rxq)) in self.mailboxes.iter().zip(opened) {
            mailbox.post(PortChange::Add {
                id: id_typed,
                queue,
                rx: rxq.map(|q| cycles[q].clone()),
            });
        }
        slots.ports[id] = Some(port);
        slots.pollers[id] = pollers;
        slots.cycles[id] = cycles;
        self.place(&mut slots, &target);
        Ok(id_typed)
    }

    /// Removes a port: every worker closes its queue on it within a poll
    /// round; packets still decided for it are dropped. The remaining rx
    /// queues are assigned again, as after [`Engine::add_port`]. Publish
    /// tables that no longer output to it first. Returns the port, if there
    /// was one.
    pub fn remove_port(&self, id: PortId) -> Option<Arc<dyn Port<P>>> {
        let mut slots = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        let port = slots.ports.get_mut(id.get())?.take()?;
        slots.pollers[id.get()].clear();
        slots.cycles[id.get()].clear();
        for mailbox in &self.mailboxes {
            mailbox.post(PortChange::Remove(id));
        }
        let target = rxq::assign(&slots.loads(), self.mailboxes.len(), slots.algo);
        self.place(&mut slots, &target);
        Some(port)
    }

    /// Moves the rx queues whose worker differs in `target` (per worker,
    /// the `(port, queue)` pairs it should poll) to their new workers.
    fn place(&self, slots: &mut PortSlots<P>, target: &[Vec<(PortId, usize)>]) {
        let mut moves = Vec::new();
        let mut dest = Vec::new();
        for (to, rx) in target.iter().enumerate() {
            for &(port, q) in rx {
                let from = slots.pollers[port.get()][q];
                if from != to {
                    moves.push(Move { port, from, to });
                    dest.push(q);
                }
            }
        }
        if moves.is_empty() && slots.late.is_empty() {
            return;
        }
        let done = move_rx(
            &self.mailboxes,
            &moves,
            &mut slots.late,
            Duration::from_secs(2),
        );
        for (m, q) in moves.iter().zip(dest) {
            if done.contains(m) {
                slots.pollers[m.port.get()][q] = m.to;
            }
        }
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

    /// The rx queue map with each queue's measured load: per port id, per
    /// polled rx queue in queue order (empty where a port was removed), as
    /// OVS's `pmd-rxq-show` tells it.
    pub fn rxq_info(&self) -> Vec<Vec<RxqInfo>> {
        let slots = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .pollers
            .iter()
            .zip(&slots.cycles)
            .map(|(pollers, cycles)| {
                pollers
                    .iter()
                    .zip(cycles)
                    .map(|(&worker, c)| {
                        let n = c.intervals();
                        let total = slots.last_intervals(n);
                        RxqInfo {
                            worker,
                            cycles: c.cycles.load(Ordering::Relaxed),
                            usage: (n > 0 && total > 0)
                                .then(|| (c.history() as f64 / total as f64).min(1.0)),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// How rx queues are assigned to workers.
    pub fn rxq_assign(&self) -> RxqAssign {
        self.ports.lock().unwrap_or_else(|p| p.into_inner()).algo
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

/// The thread that closes every rx queue's load interval each
/// [`INTERVAL`] (OVS's PMD threads do this in their loop; here it costs the
/// workers nothing).
fn sampler<P: BufPool + 'static>(
    slots: Arc<Mutex<PortSlots<P>>>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rxq-sampler".into())
        .spawn(move || {
            let mut next = Instant::now() + INTERVAL;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if Instant::now() >= next {
                    next += INTERVAL;
                    slots
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .close_interval();
                }
            }
        })
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
        // Nothing measured yet: the up-down walk of `cycles`, 0, 1, 1.
        assert_eq!(engine.rx_map(), [vec![0], vec![1], vec![1]]);
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

    /// Removing a port reassigns the others: port 1's rx queue moves from
    /// worker 1 to worker 0 while the workers run, and its frames still
    /// reach port 2.
    #[test]
    fn queues_move_between_running_workers_when_a_port_goes() {
        use crate::port::memory::RingPort;
        let (tables, _) = three_vms(0);
        let mut handles = Vec::new();
        let mut ports: Vec<Arc<dyn Port<HeapPool>>> = Vec::new();
        for i in 0..3 {
            let (p, h) = RingPort::new(&format!("p{i}"), 64);
            ports.push(Arc::new(p));
            handles.push(h);
        }
        let third = ports.pop().unwrap();
        let engine = Engine::start(
            &EngineConfig {
                workers: 2,
                idle_sleep: Some(Duration::from_micros(20)),
                ..EngineConfig::default()
            },
            ports,
            TablePublisher::new(tables),
            |_| HeapPool::new(4096, 256),
        )
        .unwrap();
        assert_eq!(engine.add_port(third).unwrap(), PortId(2));
        assert_eq!(engine.rx_map(), [vec![0], vec![1], vec![1]]);
        engine.remove_port(PortId(0)).unwrap();
        assert_eq!(engine.rx_map(), [vec![], vec![0], vec![1]]);
        // vm1 (port 1) to vm2 (port 2).
        let frame = "eth.src=02:00:00:00:00:01 eth.dst=02:00:00:00:00:02 ip4.src=10.0.0.2 ip4.dst=10.0.0.3 udp.dst=53"
            .parse::<FlowDesc>()
            .unwrap()
            .to_frame()
            .unwrap();
        // A worker times one poll round in MEASURE_EVERY: frames go until
        // one lands in a timed round and the queue has measured cycles.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(handles[1].inject(&frame));
            while handles[2].take().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "port 1's frame never reached port 2"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            let info = engine.rxq_info();
            assert_eq!(info[1][0].worker, 0);
            if info[1][0].cycles > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "no cycles measured: {info:?}");
        }
    }
}
