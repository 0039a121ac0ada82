//! One poll-mode worker's loop: poll the assigned rx queues in bursts, run
//! each packet through the flow cache (the full pipeline on a miss), batch
//! the results per output port and transmit them in bursts. Local
//! forwarding, flooding and flushing live here; encapsulation to other
//! chassis and what arrives on the uplink live in `tunnel`.

mod tunnel;

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::mailbox::{ClosedQueue, Mailbox, PortChange};
use super::rxq::RxqCycles;
use super::stats::{bump, cycles, WorkerStats};
use crate::cache::FlowCache;
use crate::drop::DropReason;
use crate::ids::PortId;
use crate::ids::{ChassisIdx, LportIdx};
use crate::overlay::{Neighbors, MC_FLOOD, MC_UNKNOWN};
use crate::packet::{BufPool, PacketBuf, MAX_BURST};
use crate::pipeline::tunnel_output::Endpoint;
use crate::pipeline::{self, provider_vlan, KeyKind, NoTrace, PacketMeta, Verdict};
use crate::port::{Port, PortQueue};
use crate::tables::{TablePublisher, Tables};
use tunnel::{Ingress, To};

/// Packets batched for transmission before a worker flushes mid-round.
const FLUSH_AT: usize = 64 * MAX_BURST;

/// One poll round in this many (a power of two) has its rx queues'
/// processing cycles measured, standing for the rounds between. A clock
/// read costs about 11 ns here (`rdtsc` in this VM): read around every
/// burst it would add 1 ns to a packet's 26; sampled, the queues' loads
/// that `pmd-rxq-assign=cycles` sorts by are the same over its minute of
/// history.
const MEASURE_EVERY: u32 = 8;

/// One poll-mode worker. [`Engine`](super::Engine) runs each on its own thread; the
/// benchmark drives one directly with [`Worker::poll`].
pub struct Worker<P: BufPool> {
    pool: P,
    /// Queue on every port, indexed by [`PortId`].
    queues: Vec<Box<dyn PortQueue<P>>>,
    /// Ports whose rx queue this worker polls.
    rx_ports: Vec<PortId>,
    /// The measured cycles of each polled rx queue, as `rx_ports`.
    rx_cycles: Vec<Arc<RxqCycles>>,
    /// This round's non-empty bursts: (index in `rx_ports`, packets), to
    /// share the round's final transmit cycles among their queues.
    round: Vec<(usize, usize)>,
    /// Index in `rx_ports` where the next poll round starts.
    rx_start: usize,
    /// Poll rounds so far (wrapping): every [`MEASURE_EVERY`]th is timed.
    rounds: u32,
    publisher: Arc<TablePublisher>,
    tables: Arc<Tables>,
    generation: u64,
    /// The flow cache of packets from local ports. Boxed: a burst moves it
    /// out of the worker while the worker carries out its verdicts, and a
    /// moved pointer leaves the hit counter in place (a moved cache would
    /// be a stack copy whose counter is reloaded and stored twice per
    /// packet).
    cache: Option<Box<FlowCache>>,
    /// The flow cache of decapsulated packets' deliveries.
    decap_cache: Option<Box<FlowCache>>,
    rx: Vec<P::Buf>,
    tx: Vec<Vec<P::Buf>>,
    pending: Vec<PortId>,
    /// Packets waiting in `tx`.
    batched: usize,
    flood: Vec<PortId>,
    stats: Arc<WorkerStats>,
    /// The local port of the burst being processed (its drops are counted
    /// under it).
    rx_port: PortId,
    pub(in crate::engine) mailbox: Arc<Mailbox<P>>,
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
    /// Scratch: the conntrack keys' probes of a stateful port's burst, by
    /// packet ([`pipeline::acl::prepare`]).
    stage_ct: Vec<Option<crate::conntrack::Probe>>,
}
/// Marks the branch that calls it as the unlikely one.
#[cold]
fn unlikely() {}
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
                let rxq = rx.iter().find(|(port, _)| port.get() == i);
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
            rx_cycles: rx.iter().map(|_| Arc::default()).collect(),
            round: Vec::with_capacity(rx.len()),
            rx_start: 0,
            rounds: 0,
            publisher,
            tables,
            generation,
            cache: (flow_cache_entries > 0).then(|| Box::new(FlowCache::new(flow_cache_entries))),
            decap_cache: (flow_cache_entries > 0)
                .then(|| Box::new(FlowCache::new(flow_cache_entries))),
            rx: Vec::with_capacity(MAX_BURST),
            tx: (0..ports.len())
                .map(|_| Vec::with_capacity(MAX_BURST * 2))
                .collect(),
            pending: Vec::with_capacity(ports.len()),
            batched: 0,
            flood: Vec::with_capacity(64),
            stats,
            rx_port: PortId(0),
            mailbox: Arc::new(Mailbox::default()),
            neighbors: Arc::new(Neighbors::default()),
            neighbor_asked: Vec::new(),
            stage_untagged: Vec::with_capacity(MAX_BURST),
            endpoints: Vec::new(),
            stage_tunnel: Vec::with_capacity(MAX_BURST),
            stage_ct: Vec::with_capacity(MAX_BURST),
        })
    }

    /// Shares `neighbors` (the engine gives all its workers one table).
    pub(in crate::engine) fn set_neighbors(&mut self, neighbors: Arc<Neighbors>) {
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
                PortChange::Add { id, queue, rx } => {
                    let i = id.get();
                    while self.queues.len() <= i {
                        self.queues.push(Box::new(ClosedQueue));
                        self.tx.push(Vec::with_capacity(MAX_BURST * 2));
                    }
                    self.queues[i] = queue;
                    self.stop_polling(id);
                    if let Some(c) = rx {
                        self.rx_ports.push(id);
                        self.rx_cycles.push(c);
                    }
                }
                PortChange::Remove(id) => {
                    if let Some(q) = self.queues.get_mut(id.get()) {
                        *q = Box::new(ClosedQueue);
                    }
                    self.stop_polling(id);
                }
                PortChange::YieldRx(id) => {
                    let cycles = self.stop_polling(id);
                    let rx = self.queues.get_mut(id.get()).and_then(|q| q.take_rx());
                    self.mailbox.yielded(id, rx.zip(cycles));
                }
                PortChange::AdoptRx { id, rx, cycles } => {
                    // Refused only if it is not this port's queue (the port
                    // went away meanwhile): dropping it releases it.
                    if let Some(Ok(())) = self.queues.get_mut(id.get()).map(|q| q.give_rx(rx)) {
                        self.stop_polling(id);
                        self.rx_ports.push(id);
                        self.rx_cycles.push(cycles);
                    }
                }
            }
        }
    }

    /// Stops polling port `id` (if it did), returning its rx queue's cycles.
    fn stop_polling(&mut self, id: PortId) -> Option<Arc<RxqCycles>> {
        let i = self.rx_ports.iter().position(|&p| p == id)?;
        self.rx_ports.remove(i);
        Some(self.rx_cycles.remove(i))
    }

    /// The measured cycles of each rx queue this worker polls, by port.
    pub(in crate::engine) fn rx_cycles(&self) -> Vec<(PortId, Arc<RxqCycles>)> {
        self.rx_ports
            .iter()
            .copied()
            .zip(self.rx_cycles.iter().cloned())
            .collect()
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
        self.rounds = self.rounds.wrapping_add(1);
        let measured = self.rounds.is_multiple_of(MEASURE_EVERY);
        // In a measured round, one clock read per non-empty burst: each
        // ends the burst's interval and starts the next one's.
        let mut t0 = if measured { cycles() } else { 0 };
        for k in 0..ports {
            let i = if start + k < ports {
                start + k
            } else {
                start + k - ports
            };
            let port = self.rx_ports[i];
            let n = self.queues[port.get()].rx_burst(&mut self.pool, &mut self.rx, MAX_BURST);
            if n == 0 {
                // An empty poll is idle time, no queue's processing.
                if measured {
                    t0 = cycles();
                }
                continue;
            }
            total += n;
            self.process(port);
            // Transmit once a few bursts' worth is batched: large tx bursts,
            // yet few buffers in flight (a small, cache-hot working set).
            if self.batched >= FLUSH_AT {
                self.flush();
            }
            // The queue's processing cycles (OVS's per-rxq
            // RXQ_CYCLES_PROC_CURR), for this round and the unmeasured
            // ones it stands for.
            if measured {
                let t1 = cycles();
                self.rx_cycles[i].add(t1.wrapping_sub(t0) * u64::from(MEASURE_EVERY));
                t0 = t1;
                self.round.push((i, n));
            }
        }
        if total != 0 {
            self.flush();
            // The round's transmit, shared among its bursts' queues by
            // packets (as OVS shares a port's send cycles among the rx
            // queues whose packets it sends).
            if measured {
                let spent = cycles().wrapping_sub(t0) * u64::from(MEASURE_EVERY);
                for &(i, n) in &self.round {
                    self.rx_cycles[i].add(spent * n as u64 / total as u64);
                }
            }
            self.round.clear();
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
        let q = &mut self.tx[port.get()];
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
        self.rx_port = in_port;
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
        if let Some(Some(vid)) = self.tables.port_vlan.get(in_port.get()) {
            self.untag_burst(*vid);
        }
        if let Some(Some(c)) = self.tables.chassis_mac_in.get(in_port.get()) {
            for b in &mut self.rx {
                c.replace(b.data_mut(), &mut NoTrace);
            }
        }
        let mut rx = std::mem::take(&mut self.rx);
        // The burst's port, hence its key kind, is one for every packet:
        // one loop per kind, each with the kind as a constant.
        match self.cache.take() {
            Some(mut cache) => {
                let c = &mut cache;
                match self.tables.key_kind(in_port) {
                    KeyKind::Switch => self.each(&mut rx, in_port, |t, b| {
                        pipeline::decide_cached_as(t, c, b, in_port, KeyKind::Switch)
                    }),
                    KeyKind::Routed => self.each(&mut rx, in_port, |t, b| {
                        pipeline::decide_cached_as(t, c, b, in_port, KeyKind::Routed)
                    }),
                    KeyKind::Acl => self.each(&mut rx, in_port, |t, b| {
                        pipeline::decide_cached_as(t, c, b, in_port, KeyKind::Acl)
                    }),
                    KeyKind::Stateful => self.each_stateful(&mut rx, in_port, c),
                }
                self.cache = Some(cache);
            }
            None => self.each(&mut rx, in_port, |t, b| {
                pipeline::decide(t, b, &mut PacketMeta::new(in_port), &mut NoTrace)
            }),
        }
        self.rx = rx;
        if !self.stage_tunnel.is_empty() {
            self.tunnel_staged(in_port);
        }
    }
    /// Decides each packet of `rx` with `decide` and carries the verdict
    /// out: output to a port and tunnel staging inline, the rest in
    /// [`Worker::act`].
    #[inline(always)]
    fn each(
        &mut self,
        rx: &mut Vec<P::Buf>,
        in_port: PortId,
        mut decide: impl FnMut(&Tables, &mut P::Buf) -> Verdict,
    ) {
        for mut buf in rx.drain(..) {
            match decide(&self.tables, &mut buf) {
                Verdict::Output(p) if p.get() < self.tx.len() => self.enqueue(p, buf),
                Verdict::Tunnel { chassis, lport } => self.stage_tunnel(buf, chassis, lport),
                v => self.act(v, buf, in_port),
            }
        }
    }

    /// [`Worker::each`] for a stateful port's burst, after a pre-pass that
    /// probes every packet's conntrack key and prefetches its hint, then
    /// its entry, so the burst's misses overlap (see the conntrack module
    /// doc); each packet's probe goes to its re-check. Out of line: the
    /// plain ports' loops stay as they were.
    #[inline(never)]
    fn each_stateful(&mut self, rx: &mut Vec<P::Buf>, in_port: PortId, c: &mut FlowCache) {
        let mut pre = std::mem::take(&mut self.stage_ct);
        pre.extend(
            rx.iter()
                .map(|b| pipeline::acl::prepare(&self.tables, in_port, b.data())),
        );
        for &p in pre.iter().flatten() {
            pipeline::acl::prefetch(&self.tables, p);
        }
        let mut probes = pre.drain(..);
        self.each(rx, in_port, |t, b| {
            let probe = probes.next().flatten();
            pipeline::decide_cached_probed(t, c, b, in_port, probe)
        });
        drop(probes);
        self.stage_ct = pre;
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
            Verdict::Output(p) if p.get() < self.tx.len() => self.enqueue(p, buf),
            Verdict::Output(_) => self.drop(buf, DropReason::NoLocalPort),
            Verdict::Reply => self.enqueue(in_port, buf),
            Verdict::Routed { hop, port } if port.get() < self.tx.len() => {
                let mut buf = buf;
                pipeline::router::rewrite(&self.tables, hop, buf.data_mut());
                self.enqueue(port, buf)
            }
            Verdict::Routed { .. } => self.drop(buf, DropReason::NoLocalPort),
            Verdict::RoutedTunnel { hop, chassis } => {
                self.tunnel_routed(buf, hop, chassis, in_port)
            }
            Verdict::Drop(r) => self.drop(buf, r),
            Verdict::Solicit { rport } => {
                // The packet that needed the next hop is lost; the request
                // written over it goes out in its buffer.
                self.stats
                    .count_drop(DropReason::NextHopUnresolved, self.rx_port);
                match self.tables.routers.ports.get(rport as usize) {
                    Some(rp) => {
                        let (switch, peer) = (rp.switch, rp.peer);
                        self.flood(buf, switch, false, Some(peer))
                    }
                    None => self.pool.free(buf),
                }
            }
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
    /// Sends `buf` to each of `ports` (those this worker has a queue on),
    /// copying for all but the last.
    fn copy_out(&mut self, buf: P::Buf, ports: &mut Vec<PortId>) {
        let n = self.tx.len();
        ports.retain(|&p| p.get() < n);
        match ports.split_last() {
            None => self.drop(buf, DropReason::NoLocalPort),
            Some((&last, rest)) => {
                for &p in rest {
                    match self.pool.alloc() {
                        Some(mut copy) => {
                            copy.load(buf.data());
                            self.enqueue(p, copy);
                        }
                        None => self.stats.count_drop(DropReason::NoBuffer, self.rx_port),
                    }
                }
                self.enqueue(last, buf);
            }
        }
    }

    #[inline]
    fn drop(&mut self, buf: P::Buf, r: DropReason) {
        self.stats.count_drop(r, self.rx_port);
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
                self.stats.count_drop(DropReason::NoBuffer, self.rx_port);
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
            let p = self.pending[i].get();
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
