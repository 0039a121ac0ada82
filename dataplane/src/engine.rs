//! The poll-mode engine: workers, their run-to-completion loop, and the
//! control handle that starts, reprograms and stops them.
//!
//! Each worker is a thread pinned to a core (core_affinity) that owns a
//! buffer pool, a flow cache and a [`PortQueue`] on every port. It polls its
//! assigned rx queues in bursts, runs each packet through
//! [`pipeline::decide_cached`] (the flow cache, and the full pipeline on a
//! miss), batches the results per output port and transmits them in
//! bursts. Packets for other chassis are staged during the burst and
//! encapsulated after it (their headroom prefetched meanwhile), through an
//! endpoint prepared per remote chassis; packets from the uplink are
//! decapsulated and delivered through a flow cache of their own. Tables come from a [`TablePublisher`]: one atomic load per
//! poll round detects a new generation, so publishing never stalls a worker.
//! Ports come and go while the workers run: [`Engine::add_port`] opens each
//! worker's queue on the control thread and hands it over through the
//! worker's mailbox, which the worker checks with one atomic load per round.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cache::FlowCache;
use crate::drop::{DropReason, DROP_REASONS};
use crate::ids::{ChassisIdx, LportIdx};
use crate::overlay::{self, Neighbors, Uplink, MC_FLOOD, MC_UNKNOWN};
use crate::packet::{BufPool, PacketBuf, PortId, MAX_BURST};
use crate::pipeline::tunnel_output::Endpoint;
use crate::pipeline::{self, provider_vlan, NoTrace, PacketMeta, Verdict};
use crate::port::{Port, PortQueue};
use crate::tables::{TablePublisher, Tables, TunnelIds};

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

/// Counters of one worker: written by it alone, summed on read.
#[derive(Debug)]
pub struct WorkerStats {
    pub rx_packets: AtomicU64,
    pub tx_packets: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// The table generation the worker forwards with.
    pub table_generation: AtomicU64,
    drops: [AtomicU64; DROP_REASONS],
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
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl WorkerStats {
    /// Drops counted under `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Ordering::Relaxed)
    }
}

/// One poll-mode worker. [`Engine`] runs each on its own thread; the
/// benchmark drives one directly with [`Worker::poll`].
pub struct Worker<P: BufPool> {
    pool: P,
    /// Queue on every port, indexed by [`PortId`].
    queues: Vec<Box<dyn PortQueue<P>>>,
    /// Ports whose rx queue this worker polls.
    rx_ports: Vec<PortId>,
    /// Index in `rx_ports` where the next poll round starts.
    rx_start: usize,
    publisher: Arc<TablePublisher>,
    tables: Arc<Tables>,
    generation: u64,
    cache: Option<FlowCache>,
    /// The flow cache of decapsulated packets' deliveries.
    decap_cache: Option<FlowCache>,
    rx: Vec<P::Buf>,
    tx: Vec<Vec<P::Buf>>,
    pending: Vec<PortId>,
    /// Packets waiting in `tx`.
    batched: usize,
    flood: Vec<PortId>,
    stats: Arc<WorkerStats>,
    mailbox: Arc<Mailbox<P>>,
    /// Remote tunnel endpoints' MACs, shared by the engine's workers.
    neighbors: Arc<Neighbors>,
    /// When this worker last asked the uplink for each unresolved endpoint.
    neighbor_asked: Vec<(std::net::IpAddr, Instant)>,
    /// Scratch for [`Worker::untag_burst`].
    stage_untagged: Vec<P::Buf>,
    /// Packets of the current burst to encapsulate: (buffer, chassis,
    /// logical port).
    stage_tunnel: Vec<(P::Buf, ChassisIdx, LportIdx)>,
    /// Per remote chassis, what encapsulating to it takes (cleared on new
    /// tables, rebuilt when a neighbour changes).
    endpoints: Vec<Option<Endpoint>>,
}

/// Where a tunnel packet goes on the remote chassis.
#[derive(Clone, Copy, Debug)]
enum To {
    /// A logical port.
    Port(LportIdx),
    /// One of OVN's multicast groups.
    Group(u16),
}

/// The logical port a tunnel packet came in by (none for what a tunnel
/// delivered), and its tunnel keys.
#[derive(Clone, Copy, Debug)]
struct Ingress {
    lport: Option<LportIdx>,
    ids: Option<TunnelIds>,
}

/// Marks the branch that calls it as the unlikely one.
#[cold]
fn unlikely() {}

/// A change to a worker's set of ports, sent by [`Engine`].
enum PortChange<P: BufPool> {
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
struct Mailbox<P: BufPool> {
    pending: AtomicBool,
    changes: Mutex<Vec<PortChange<P>>>,
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
    fn post(&self, change: PortChange<P>) {
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(change);
        self.pending.store(true, Ordering::Release);
    }
}

/// The queue left on a removed port's id: receives nothing, and frees (and
/// counts) what the worker still sends it from a stale decision.
struct ClosedQueue;

impl<P: BufPool> PortQueue<P> for ClosedQueue {
    fn rx_burst(&mut self, _: &mut P, _: &mut Vec<P::Buf>, _: usize) -> usize {
        0
    }
    fn tx_burst(&mut self, pool: &mut P, pkts: &mut Vec<P::Buf>) {
        pool.free_all(pkts);
    }
}

impl<P: BufPool> Worker<P> {
    /// A worker with a queue on each of `ports`, polling rx queue 0 of the
    /// ports in `rx_ports`.
    pub fn new(
        ports: &[Arc<dyn Port<P>>],
        rx_ports: &[PortId],
        publisher: Arc<TablePublisher>,
        pool: P,
        flow_cache_entries: usize,
    ) -> io::Result<Self> {
        let rx: Vec<(PortId, usize)> = rx_ports.iter().map(|&p| (p, 0)).collect();
        Self::with_rx_queues(ports, &rx, publisher, pool, flow_cache_entries)
    }

    /// A worker with a queue on each of `ports`, polling the given
    /// `(port, rx queue)` pairs (at most one rx queue per port).
    pub fn with_rx_queues(
        ports: &[Arc<dyn Port<P>>],
        rx: &[(PortId, usize)],
        publisher: Arc<TablePublisher>,
        pool: P,
        flow_cache_entries: usize,
    ) -> io::Result<Self> {
        let queues = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let rxq = rx.iter().find(|(port, _)| *port as usize == i);
                p.open_queue(rxq.map(|&(_, q)| q))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let (generation, tables) = publisher.load();
        let stats = Arc::new(WorkerStats::default());
        stats.table_generation.store(generation, Ordering::Release);
        Ok(Worker {
            pool,
            queues,
            rx_ports: rx.iter().map(|&(p, _)| p).collect(),
            rx_start: 0,
            publisher,
            tables,
            generation,
            cache: (flow_cache_entries > 0).then(|| FlowCache::new(flow_cache_entries)),
            decap_cache: (flow_cache_entries > 0).then(|| FlowCache::new(flow_cache_entries)),
            rx: Vec::with_capacity(MAX_BURST),
            tx: (0..ports.len())
                .map(|_| Vec::with_capacity(MAX_BURST * 2))
                .collect(),
            pending: Vec::with_capacity(ports.len()),
            batched: 0,
            flood: Vec::with_capacity(64),
            stats,
            mailbox: Arc::new(Mailbox::default()),
            neighbors: Arc::new(Neighbors::default()),
            neighbor_asked: Vec::new(),
            stage_untagged: Vec::with_capacity(MAX_BURST),
            endpoints: Vec::new(),
            stage_tunnel: Vec::with_capacity(MAX_BURST),
        })
    }

    /// Shares `neighbors` (the engine gives all its workers one table).
    fn set_neighbors(&mut self, neighbors: Arc<Neighbors>) {
        self.neighbors = neighbors;
    }

    /// Applies the port changes [`Engine`] posted.
    #[cold]
    fn take_port_changes(&mut self) {
        self.mailbox.pending.store(false, Ordering::Relaxed);
        let changes = std::mem::take(
            &mut *self
                .mailbox
                .changes
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for change in changes {
            match change {
                PortChange::Add { id, queue, poll } => {
                    let i = id as usize;
                    while self.queues.len() <= i {
                        self.queues.push(Box::new(ClosedQueue));
                        self.tx.push(Vec::with_capacity(MAX_BURST * 2));
                    }
                    self.queues[i] = queue;
                    self.rx_ports.retain(|&p| p != id);
                    if poll {
                        self.rx_ports.push(id);
                    }
                }
                PortChange::Remove(id) => {
                    if let Some(q) = self.queues.get_mut(id as usize) {
                        *q = Box::new(ClosedQueue);
                    }
                    self.rx_ports.retain(|&p| p != id);
                }
            }
        }
    }

    /// This worker's counters.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// One poll round over every assigned rx queue; returns the number of
    /// packets received.
    #[inline]
    pub fn poll(&mut self) -> usize {
        if self.mailbox.pending.load(Ordering::Acquire) {
            self.take_port_changes();
        }
        let g = self.publisher.generation();
        if g != self.generation {
            let (g, t) = self.publisher.load();
            self.generation = g;
            self.tables = t;
            for c in [&mut self.cache, &mut self.decap_cache]
                .into_iter()
                .flatten()
            {
                c.invalidate();
            }
            self.stats.table_generation.store(g, Ordering::Release);
            self.endpoints.clear();
            self.resolve_endpoints();
        }
        let mut total = 0;
        // Each round starts one port further, so that when the pool runs
        // dry mid-round (buffers held in tx batches or by a device) the
        // ports at the end of the list are not starved.
        let ports = self.rx_ports.len();
        let start = self.rx_start % ports.max(1);
        self.rx_start = start + 1;
        for k in 0..ports {
            let i = if start + k < ports {
                start + k
            } else {
                start + k - ports
            };
            let port = self.rx_ports[i];
            let n = self.queues[port as usize].rx_burst(&mut self.pool, &mut self.rx, MAX_BURST);
            if n == 0 {
                continue;
            }
            total += n;
            self.process(port);
            // Transmit once a few bursts' worth is batched: large tx bursts,
            // yet few buffers in flight (a small, cache-hot working set).
            if self.batched >= FLUSH_AT {
                self.flush();
            }
        }
        if total != 0 {
            self.flush();
            // Counted after transmission: whoever sees the count also sees
            // the packets' outputs.
            self.stats.rx_packets.store(
                self.stats.rx_packets.load(Ordering::Relaxed) + total as u64,
                Ordering::Release,
            );
            let (hits, misses) = [&self.cache, &self.decap_cache]
                .into_iter()
                .flatten()
                .fold((0, 0), |(h, m), c| (h + c.hits, m + c.misses));
            self.stats.cache_hits.store(hits, Ordering::Relaxed);
            self.stats.cache_misses.store(misses, Ordering::Relaxed);
        }
        total
    }

    #[inline]
    fn enqueue(&mut self, port: PortId, buf: P::Buf) {
        self.batched += 1;
        let q = &mut self.tx[port as usize];
        if q.is_empty() {
            self.pending.push(port);
        }
        q.push(buf);
    }

    /// Runs one rx burst through the pipeline, packet by packet: parse,
    /// flow-cache lookup (the full pipeline on a miss), then act on the
    /// verdict.
    #[inline]
    fn process(&mut self, in_port: PortId) {
        if self
            .tables
            .underlay
            .as_ref()
            .is_some_and(|u| u.port == in_port)
        {
            // Laid out as the rarer branch (most ports are VMs' ports),
            // without optimising the uplink's own code for size.
            unlikely();
            self.process_uplink(in_port);
            return;
        }
        if let Some(Some(vid)) = self.tables.port_vlan.get(in_port as usize) {
            self.untag_burst(*vid);
        }
        let mut rx = std::mem::take(&mut self.rx);
        for mut buf in rx.drain(..) {
            let v = match &mut self.cache {
                Some(cache) => pipeline::decide_cached(&self.tables, cache, &mut buf, in_port),
                None => pipeline::decide(
                    &self.tables,
                    &mut buf,
                    &mut PacketMeta::new(in_port),
                    &mut NoTrace,
                ),
            };
            match v {
                Verdict::Output(p) if (p as usize) < self.tx.len() => self.enqueue(p, buf),
                Verdict::Tunnel { chassis, lport } => self.stage_tunnel(buf, chassis, lport),
                v => self.act(v, buf, in_port),
            }
        }
        self.rx = rx;
        if !self.stage_tunnel.is_empty() {
            self.tunnel_staged(in_port);
        }
    }

    /// Stages a packet for encapsulation after the burst, prefetching the
    /// headroom its outer headers will be written into meanwhile.
    #[inline(always)]
    fn stage_tunnel(&mut self, buf: P::Buf, chassis: ChassisIdx, lport: LportIdx) {
        crate::packet::prefetch_headroom(&buf, overlay::MAX_OVERHEAD);
        self.stage_tunnel.push((buf, chassis, lport));
    }

    /// Encapsulates the packets staged for tunnels, in order.
    #[inline(never)]
    fn tunnel_staged(&mut self, in_port: PortId) {
        // What the whole burst shares: its ingress port, and the neighbour
        // table's generation (a MAC learned meanwhile applies next burst).
        let from = self.ingress(in_port);
        let generation = self.neighbors.generation();
        let mut staged = std::mem::take(&mut self.stage_tunnel);
        for (buf, chassis, lport) in staged.drain(..) {
            self.tunnel(buf, chassis, To::Port(lport), &from, generation);
        }
        self.stage_tunnel = staged;
    }

    /// Carries out any verdict, out of line: [`Worker::process`] carries
    /// out the common one, output to a port, inline.
    #[inline(never)]
    fn act(&mut self, v: Verdict, buf: P::Buf, in_port: PortId) {
        // Whatever goes out keeps its order with the staged tunnel packets.
        if !self.stage_tunnel.is_empty() {
            self.tunnel_staged(in_port);
        }
        match v {
            Verdict::Output(p) if (p as usize) < self.tx.len() => self.enqueue(p, buf),
            Verdict::Output(_) => self.drop(buf, DropReason::NoLocalPort),
            Verdict::Reply => self.enqueue(in_port, buf),
            Verdict::Drop(r) => self.drop(buf, r),
            Verdict::Consumed => self.pool.free(buf),
            Verdict::Flood {
                datapath,
                unknown_only,
            } => {
                // A flood verdict means the port is bound: this is the
                // pipeline's logical inport.
                let inport = self.tables.lport_of(in_port);
                self.flood(buf, datapath, unknown_only, inport)
            }
            Verdict::Tunnel { chassis, lport } => self.stage_tunnel(buf, chassis, lport),
        }
    }

    /// A burst from a VLAN provider network: frames of VLAN `vid` lose
    /// their tag; any other frame is dropped ([`provider_vlan`]).
    #[cold]
    fn untag_burst(&mut self, vid: u16) {
        let mut rx = std::mem::take(&mut self.rx);
        let mut kept = std::mem::take(&mut self.stage_untagged);
        for mut buf in rx.drain(..) {
            match provider_vlan::untag(&mut buf, vid, &mut NoTrace) {
                Ok(()) => kept.push(buf),
                Err(r) => self.drop(buf, r),
            }
        }
        // The kept frames are the burst now; the drained vector the scratch.
        self.rx = kept;
        self.stage_untagged = rx;
    }

    /// Encapsulates `buf` to remote chassis `chassis` and queues it on the
    /// uplink: to logical port `lport`, or to multicast group `group`.
    #[inline(always)]
    fn tunnel(
        &mut self,
        mut buf: P::Buf,
        chassis: ChassisIdx,
        to: To,
        from: &Ingress,
        generation: u64,
    ) {
        let c = chassis.get();
        let ready = matches!(self.endpoints.get(c), Some(Some(e)) if e.neighbors == generation);
        if !ready {
            if let Err(r) = self.prepare_endpoint(chassis, generation) {
                return self.drop(buf, r);
            }
        }
        let e = self.endpoints[c].as_ref().expect("prepared above");
        let (datapath_key, egress) = match to {
            To::Port(lport) => match self.tables.tunnel_ids.get(lport.get()) {
                Some(out) => (out.datapath_key, out.port_key),
                None => return self.drop(buf, DropReason::NoLocalPort),
            },
            To::Group(g) => match from.ids {
                Some(i) => (i.datapath_key, g),
                None => return self.drop(buf, DropReason::NoLocalPort),
            },
        };
        // A plain VTEP looks the destination up itself.
        let egress = if e.vtep { 0 } else { egress };
        let ingress = from.ids.map_or(0, |i| i.port_key);
        let (uplink, max) = (e.uplink, e.max_inner);
        if buf.len() > max {
            let mtu = e.mtu();
            return self.too_big(buf, from.lport, mtu);
        }
        if e.template
            .encapsulate(&mut buf, datapath_key, ingress, egress)
        {
            self.enqueue(uplink, buf);
        } else {
            self.drop(buf, DropReason::NoBuffer);
        }
    }

    /// The logical ingress port of what arrived on local port `in_port`.
    fn ingress(&self, in_port: PortId) -> Ingress {
        let lport = self.tables.lport_of(in_port);
        Ingress {
            lport,
            ids: lport.and_then(|l| self.tables.tunnel_ids.get(l.get()).copied()),
        }
    }

    /// Builds what [`Worker::tunnel`] needs for remote chassis `c`, with its
    /// endpoint's MAC as of neighbour `generation`; if that MAC is not
    /// known, asks for it and says the packet waits in vain.
    #[cold]
    fn prepare_endpoint(&mut self, c: ChassisIdx, generation: u64) -> Result<(), DropReason> {
        let tables = self.tables.clone();
        let e = match Endpoint::prepare(&tables, &self.neighbors, c, generation) {
            Ok(e) => e,
            Err(r) => {
                if r == DropReason::NeighborUnresolved {
                    if let Some(rc) = tables.underlay.as_ref().map(|u| &u.chassis[c.get()]) {
                        self.ask_neighbor(rc.ip);
                    }
                }
                return Err(r);
            }
        };
        let n = tables.underlay.as_ref().map_or(0, |u| u.chassis.len());
        if self.endpoints.len() <= c.get() {
            self.endpoints.resize_with(n.max(c.get() + 1), || None);
        }
        self.endpoints[c.get()] = Some(e);
        Ok(())
    }

    /// A packet too big for the tunnel: ICMP back out of its ingress port
    /// (path-MTU discovery), and the packet dropped as `tunnel_mtu`.
    #[cold]
    fn too_big(&mut self, buf: P::Buf, inport: Option<LportIdx>, mtu: u16) {
        let back = inport.and_then(|l| self.tables.lports.get(l.get()).and_then(|l| l.local_port));
        if let (Some(p), Some(mut reply)) = (back, self.pool.alloc()) {
            let mut frame = [0u8; 14 + 40 + 8 + 1232];
            match crate::responder::too_big(buf.data(), mtu, &mut frame) {
                crate::responder::TooBig::Reply(n) if reply.load(&frame[..n]) => {
                    self.enqueue(p, reply)
                }
                _ => self.pool.free(reply),
            }
        }
        self.drop(buf, DropReason::TunnelMtu);
    }

    /// Asks the uplink for every remote endpoint not resolved yet (on new
    /// tables), so the first packet to a chassis finds its MAC known.
    #[cold]
    fn resolve_endpoints(&mut self) {
        let tables = self.tables.clone();
        let Some(u) = tables.underlay.as_ref() else {
            return;
        };
        let mut asked = false;
        for rc in &u.chassis {
            if rc.mac.is_none() && self.neighbors.get(rc.ip).is_none() {
                self.ask_neighbor(rc.ip);
                asked = true;
            }
        }
        if asked {
            self.flush();
        }
    }

    /// Asks the uplink for a remote endpoint's MAC (ARP, or neighbour
    /// solicitation over IPv6), at most once a second.
    #[cold]
    fn ask_neighbor(&mut self, ip: std::net::IpAddr) {
        let now = Instant::now();
        match self.neighbor_asked.iter_mut().find(|(a, _)| *a == ip) {
            Some((_, at)) if now.duration_since(*at) < Duration::from_secs(1) => return,
            Some((_, at)) => *at = now,
            None => self.neighbor_asked.push((ip, now)),
        }
        let tables = self.tables.clone();
        let Some(u) = tables.underlay.as_ref() else {
            return;
        };
        if let Some(mut b) = self.pool.alloc() {
            if overlay::neighbor_request(&mut b, u, ip) {
                self.enqueue(u.port, b);
            } else {
                self.pool.free(b);
            }
        }
    }

    /// A burst from the uplink: ARP/ND for our endpoint, and tunnel packets,
    /// decapsulated and delivered to local ports only (never back into the
    /// overlay). OVN ran the ingress pipeline on the sending chassis; the
    /// egress checks run here.
    #[inline(never)]
    fn process_uplink(&mut self, in_port: PortId) {
        let mut rx = std::mem::take(&mut self.rx);
        let tables = self.tables.clone();
        let u = tables.underlay.as_ref().expect("checked by the caller");
        for mut buf in rx.drain(..) {
            let got = overlay::receive(&mut buf, u, &self.neighbors, |k| tables.datapath_of_key(k));
            match got {
                Ok(Uplink::NeighborReply) => self.enqueue(in_port, buf),
                Ok(Uplink::Neighbor | Uplink::NotOurs) => self.pool.free(buf),
                Err(r) => self.drop(buf, r),
                Ok(Uplink::Tunnel(r)) => {
                    if !buf.trim_front(r.outer_len) {
                        self.drop(buf, DropReason::TunnelMalformed);
                        continue;
                    }
                    self.deliver(buf, &tables, r);
                }
            }
        }
        self.rx = rx;
    }

    /// Delivers a decapsulated frame on datapath `r.datapath`.
    #[inline]
    fn deliver(&mut self, buf: P::Buf, tables: &Tables, r: overlay::Received) {
        let v = match &mut self.decap_cache {
            Some(cache) => pipeline::tunnel_delivery_cached(tables, cache, buf.data(), &r),
            None => pipeline::tunnel_delivery(tables, buf.data(), &r, &mut NoTrace).0,
        };
        match v {
            Verdict::Output(p) => self.enqueue(p, buf),
            Verdict::Flood {
                datapath,
                unknown_only,
            } => self.flood_local(buf, datapath, unknown_only),
            Verdict::Drop(reason) => self.drop(buf, reason),
            Verdict::Reply | Verdict::Tunnel { .. } | Verdict::Consumed => {
                self.drop(buf, DropReason::TunnelUnknownPort)
            }
        }
    }

    /// Copies a frame from a tunnel to every local port of the datapath
    /// (only "unknown" ones for unknown unicast).
    fn flood_local(&mut self, buf: P::Buf, datapath: crate::ids::DatapathIdx, unknown_only: bool) {
        let mut targets = std::mem::take(&mut self.flood);
        pipeline::flood_targets(
            &self.tables,
            datapath,
            unknown_only,
            None,
            buf.data(),
            &mut targets,
        );
        self.copy_out(buf, &mut targets);
        self.flood = targets;
    }

    /// Sends `buf` to each of `ports` (those this worker has a queue on),
    /// copying for all but the last.
    fn copy_out(&mut self, buf: P::Buf, ports: &mut Vec<PortId>) {
        let n = self.tx.len();
        ports.retain(|&p| (p as usize) < n);
        match ports.split_last() {
            None => self.drop(buf, DropReason::NoLocalPort),
            Some((&last, rest)) => {
                for &p in rest {
                    match self.pool.alloc() {
                        Some(mut copy) => {
                            copy.load(buf.data());
                            self.enqueue(p, copy);
                        }
                        None => bump(&self.stats.drops[DropReason::NoBuffer.index()], 1),
                    }
                }
                self.enqueue(last, buf);
            }
        }
    }

    #[inline]
    fn drop(&mut self, buf: P::Buf, r: DropReason) {
        bump(&self.stats.drops[r.index()], 1);
        self.pool.free(buf);
    }

    fn flood(
        &mut self,
        buf: P::Buf,
        datapath: crate::ids::DatapathIdx,
        unknown_only: bool,
        inport: Option<LportIdx>,
    ) {
        let mut targets = std::mem::take(&mut self.flood);
        pipeline::flood_targets(
            &self.tables,
            datapath,
            unknown_only,
            inport,
            buf.data(),
            &mut targets,
        );
        // One copy per remote chassis with ports here, to OVN's multicast
        // group; the receivers deliver locally and never flood back.
        let group = if unknown_only { MC_UNKNOWN } else { MC_FLOOD };
        let remote = pipeline::flood_chassis(&self.tables, datapath, unknown_only).len();
        let from = Ingress {
            lport: inport,
            ids: inport.and_then(|l| self.tables.tunnel_ids.get(l.get()).copied()),
        };
        let generation = self.neighbors.generation();
        for i in 0..remote {
            let c = pipeline::flood_chassis(&self.tables, datapath, unknown_only)[i];
            if let Some(mut copy) = self.pool.alloc() {
                copy.load(buf.data());
                self.tunnel(copy, c, To::Group(group), &from, generation);
            } else {
                bump(&self.stats.drops[DropReason::NoBuffer.index()], 1);
            }
        }
        if targets.is_empty() && remote > 0 {
            self.pool.free(buf);
        } else {
            self.copy_out(buf, &mut targets);
        }
        self.flood = targets;
    }

    /// Transmits everything batched for output.
    #[inline]
    pub fn flush(&mut self) {
        let mut sent = 0;
        for i in 0..self.pending.len() {
            let p = self.pending[i] as usize;
            sent += self.tx[p].len();
            if let Some(Some(vid)) = self.tables.port_vlan.get(p) {
                provider_vlan::tag_all(&mut self.tx[p], *vid);
            }
            self.queues[p].tx_burst(&mut self.pool, &mut self.tx[p]);
        }
        self.pending.clear();
        self.batched = 0;
        bump(&self.stats.tx_packets, sent as u64);
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
            a[k % workers].push((p as PortId, q));
            k += 1;
        }
    }
    a
}

const IDLE_ROUNDS: u32 = 1024;
/// Packets batched for transmission before a worker flushes mid-round.
const FLUSH_AT: usize = 64 * MAX_BURST;

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
        let neighbors = Arc::new(Neighbors::default());
        let rx_queues: Vec<usize> = ports.iter().map(|p| p.rx_queues()).collect();
        let assignment = assign_rx(&rx_queues, config.workers);
        let mut pollers = vec![Vec::new(); ports.len()];
        for (w, rx) in assignment.iter().enumerate() {
            for &(p, _) in rx {
                pollers[p as usize].push(w);
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
            let idle_sleep = config.idle_sleep;
            threads.push(std::thread::Builder::new().name(format!("pmd{id}")).spawn(
                move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id: c });
                    }
                    let mut idle = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        if worker.poll() == 0 {
                            idle += 1;
                            if idle >= IDLE_ROUNDS {
                                match idle_sleep {
                                    Some(d) => std::thread::sleep(d),
                                    None => std::hint::spin_loop(),
                                }
                            }
                        } else {
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
        let port = slots.ports.get_mut(id as usize)?.take()?;
        for w in std::mem::take(&mut slots.pollers[id as usize]) {
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

    /// Drops under `reason`, summed over workers.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.workers.iter().map(|w| w.drops(reason)).sum()
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
    use crate::packet::HeapPool;
    use crate::port::memory::{ReplayPort, Traffic};
    use crate::tables::{LogicalPort, LogicalSwitch};

    /// A worker whose pool holds one burst serves one port per round; the
    /// rounds take the ports in turn instead of always the first.
    #[test]
    fn a_dry_pool_does_not_starve_later_ports() {
        let mac = |i: usize| format!("02:00:00:00:00:{i:02x}");
        let ports: Vec<LogicalPort> = (0..3)
            .map(|i| LogicalPort {
                local_port: Some(i as PortId),
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
                Arc::new(ReplayPort::new(
                    &format!("p{i}"),
                    traffic,
                    10 * MAX_BURST as u64,
                ))
            })
            .collect();
        let dyn_ports: Vec<Arc<dyn Port<HeapPool>>> = replay
            .iter()
            .map(|p| p.clone() as Arc<dyn Port<HeapPool>>)
            .collect();
        let pool = HeapPool::new(MAX_BURST, 256);
        let mut w = Worker::new(
            &dyn_ports,
            &[0, 1, 2],
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

    #[test]
    fn rx_queues_are_spread_round_robin() {
        // Single-queue ports: round robin over ports.
        assert_eq!(
            assign_rx(&[1, 1, 1], 2),
            [vec![(0, 0), (2, 0)], vec![(1, 0)]]
        );
        // An RSS port's queues land on different workers; queues beyond
        // the worker count are not polled.
        assert_eq!(
            assign_rx(&[2, 1, 3], 2),
            [vec![(0, 0), (1, 0), (2, 1)], vec![(0, 1), (2, 0)]]
        );
        assert_eq!(assign_rx(&[1], 0), [vec![(0, 0)]]);
    }
}
