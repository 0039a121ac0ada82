//! `--workers N`: a scenario through the node's [`Engine`] with N worker
//! threads (what `switchyard node --dpdk --workers N` runs), instead of one
//! bare [`Worker`](dataplane::engine::Worker) on the main thread: the
//! multi-core figure.
//!
//! vm0's `net_pcap` source gets one rx queue per worker, each replaying
//! the scenario's pcap (net_pcap gives queue i the i-th `rx_pcap`), and the
//! engine gives each worker one queue; vm1's `net_null` sink has a tx
//! queue per worker. Workers busy-poll on their pinned cores (`--cores`),
//! so each takes its core whole: Mpps per core is the aggregate divided by
//! the workers, and CPU time is wall time times the workers. What is
//! counted is what the sink transmitted over the interval; the packets in
//! flight at its two ends (a burst per worker at most) are the only ones
//! allowed to differ between source and sink.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::engine::{Engine, EngineConfig};
use dataplane::port::dpdk::{DpdkPort, MbufPool};
use dataplane::port::Port;
use dataplane::tables::TablePublisher;

use super::{tsc, Measurement, Options, Scenario};

/// Packets a worker may hold when the start is read or when it stops:
/// an rx burst, and tx batches not yet flushed to the sink.
const IN_FLIGHT: u64 = 1024;

/// Runs `s` with `o.workers` workers on the source and sink already open.
pub(super) fn run(
    s: &Scenario,
    o: &Options,
    src: Arc<DpdkPort>,
    sink: Arc<DpdkPort>,
    publisher: Arc<TablePublisher>,
    frame_bytes: usize,
) -> Result<Measurement, String> {
    let ports: Vec<Arc<dyn Port<MbufPool>>> = vec![src.clone(), sink.clone()];
    let pool = src.pool();
    let engine = Engine::start(
        &EngineConfig {
            workers: o.workers,
            cores: o.cores.clone(),
            idle_sleep: None,
            pool_buffers: 4096,
            flow_cache_entries: o.flow_cache,
            ..EngineConfig::default()
        },
        ports,
        publisher,
        |_| pool.clone(),
    )
    .map_err(|e| e.to_string())?;
    let eth = |p: &DpdkPort| p.eth_stats().map_err(|e| e.to_string());
    // Warm-up, as the single worker's: every flow twice, a million packets.
    let warm = (2 * s.flows as u64).max(1 << 20);
    let start = Instant::now();
    while eth(&sink)?.opackets < warm {
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("{}: the sink saw too little in 60 s", s.name));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let hits = |e: &Engine<MbufPool>| -> (u64, u64) {
        e.workers().iter().fold((0, 0), |(h, m), w| {
            (
                h + w.cache_hits.load(std::sync::atomic::Ordering::Relaxed),
                m + w.cache_misses.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    };
    let (src0, sink0, c0) = (eth(&src)?, eth(&sink)?, hits(&engine));
    let (tsc0, t0) = (tsc(), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(o.seconds));
    let (src1, sink1, c1) = (eth(&src)?, eth(&sink)?, hits(&engine));
    let wall_ns = t0.elapsed().as_nanos() as f64;
    let tsc_hz = (tsc() - tsc0) as f64 / wall_ns * 1e9;
    let per_worker: Vec<String> = engine
        .workers()
        .iter()
        .zip(engine.worker_cores())
        .map(|(w, c)| {
            format!(
                "core {}: rx {}",
                c.map_or("-".into(), |c| c.to_string()),
                w.rx_packets.load(std::sync::atomic::Ordering::Relaxed)
            )
        })
        .collect();
    drop(engine);
    if !o.json {
        eprintln!(
            "{}: {} workers ({})",
            s.name,
            o.workers,
            per_worker.join(", ")
        );
    }
    let packets = sink1.opackets - sink0.opackets;
    let received = src1.ipackets - src0.ipackets;
    let slack = IN_FLIGHT * o.workers as u64;
    let (h, m) = ((c1.0 - c0.0) as f64, (c1.1 - c0.1) as f64);
    Ok(Measurement {
        packets,
        unexpected: received.saturating_sub(packets + slack),
        wall_ns,
        cpu_ns: wall_ns * o.workers as f64,
        tsc_hz,
        cache_hit_rate: h / (h + m).max(1.0),
        frame_bytes,
    })
}
