//! The DPDK scenarios of the benchmark suite: L2 switching, Geneve and
//! VXLAN encapsulation and decapsulation, stateful ACLs over conntrack,
//! routing between two switches (and to another chassis) and the full
//! pipeline on DPDK ports, one worker core.
//!
//! Every scenario writes its own pcap (64-byte UDP/IPv4 frames from vm0 to
//! vm1, or the same flows inside VXLAN or Geneve), replays it with
//! `net_pcap` (`infinite_rx=1`) into vm0's port, runs the node's unchanged
//! [`Worker`] on one pinned core, and transmits to vm1's `net_null` sink.
//!
//! What is counted: packets out of the sink as the `net_null` PMD counts
//! them (`rte_eth_stats.opackets`) over a measured interval after a warm-up
//! — the same counter `benches/compare-ovs-dpdk.sh` reads from OVS-DPDK —
//! and every packet the source delivered in that interval must have come
//! out (`unexpected` counts the others; a run with any fails). Per packet:
//! - `mpps`, `ns_per_packet`: wall clock, as in `switchyard bench --json`;
//! - `mpps_per_core`, `cpu_ns_per_packet`: the worker thread's CPU time
//!   (`CLOCK_THREAD_CPUTIME_ID`), which on a shared or virtual machine
//!   leaves out the time the core ran something else or was stolen;
//! - `cycles_per_packet`: that CPU time in TSC cycles.
//!
//! Routed scenarios: `dpdk-routed-10k` between two switches on this
//! chassis, `dpdk-routed-encap-10k` to vm1 on another chassis (routed here,
//! then Geneve), `dpdk-full-pipeline-10k` the same through port security
//! and an allow-related security group ([`routed`]).
//!
//! Two kinds of tunnel scenarios: `dpdk-{vxlan,geneve}-10k` address the
//! outer frame from vm0 to vm1, so they are L2-switched as plain UDP
//! (parsing and switching of bigger frames); `dpdk-*-encap-10k` send to a
//! port on another chassis, encapsulated out of the uplink, and
//! `dpdk-*-decap-10k` replay the other chassis' tunnel packets into the
//! uplink, decapsulated and delivered to vm1.
//!
//! `dpdk-acl-ct-setup-1m` measures connection setup: its pcap of a million
//! distinct 5-tuples is replayed once (`net_pcap` reads the file as it
//! goes), so every packet is a new connection that runs the ACLs and is
//! committed in both zones; counted from the first burst to the last
//! packet out, every record must come out and every flow be tracked.
//!
//! This is an example of the dataplane crate rather than part of
//! `switchyard bench` because the DPDK backend sits behind this crate's
//! `dpdk` feature: the default build must not need DPDK. Each scenario runs
//! in a process of its own (the suite re-executes itself per scenario):
//! the EAL initialises once per process, and `net_pcap` with `infinite_rx`
//! holds the whole pcap in mbufs of the port's pool, so each scenario sizes
//! its pool — up to about 2.6 GB for `dpdk-l2-1m` — to its own pcap.
//!
//! ```text
//! cargo build --release -p switchyard-dataplane --features dpdk --example dpdk_bench
//! target/release/examples/dpdk_bench [--list] [--scenario NAME] [--json]
//!     [--seconds 5] [--core N] [--flow-cache 8192] [--hugepages]
//!     [--write-pcap FILE | --pcap FILE] [--workers N --cores A,B]
//! ```
//! `--workers N` runs the scenario through the node's engine with N
//! workers on `--cores` ([`engine`]); without it, one bare worker on the
//! main thread's core.
//! `--hugepages` uses `--in-memory` (reserve them first, e.g.
//! `echo 2048 > /proc/sys/vm/nr_hugepages`, hugetlbfs on /dev/hugepages);
//! the default is `--no-huge`. `--write-pcap` writes the scenario's pcap and
//! exits; `--pcap` replays that file instead of a private copy, after
//! checking that it holds exactly the scenario's traffic (the comparison
//! script gives OVS-DPDK and us the same file).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The security group of `switchyard bench`'s ACL scenarios, the same file.
#[path = "../../../benches/src/acl.rs"]
mod acl;
mod engine;
mod routed;
mod scenarios;
mod traffic;

use scenarios::{Scenario, SCENARIOS};

use traffic::{frames, ip, pcap, topology, underlay};

use dataplane::classifier::{AclAction, Stateful};
use dataplane::conntrack::Conntrack;
use dataplane::engine::Worker;
use dataplane::ids::PortId;
use dataplane::port::dpdk::{DpdkPort, DpdkPortConfig, Eal, EalConfig, EalMemory, MbufPool};
use dataplane::port::Port;
use dataplane::tables::{TablePublisher, Tables};

struct Options {
    scenario: Option<String>,
    list: bool,
    json: bool,
    /// Print no table header (set when the suite runs a scenario in a
    /// process of its own).
    no_header: bool,
    seconds: f64,
    core: Option<usize>,
    flow_cache: usize,
    hugepages: bool,
    write_pcap: Option<PathBuf>,
    pcap: Option<PathBuf>,
    /// Run through the node's engine with this many workers (0: one bare
    /// worker on the main thread).
    workers: usize,
    /// The engine's workers' cores.
    cores: Vec<usize>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        scenario: None,
        list: false,
        json: false,
        no_header: false,
        seconds: 5.0,
        core: None,
        flow_cache: 8192,
        hugepages: false,
        write_pcap: None,
        pcap: None,
        workers: 0,
        cores: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| {
            v.parse::<f64>()
                .ok()
                .filter(|n| *n >= 0.0)
                .ok_or_else(|| format!("{name} needs a number, not {v:?}"))
        };
        match a.as_str() {
            "--scenario" => o.scenario = Some(value("--scenario")?),
            "--list" => o.list = true,
            "--json" => o.json = true,
            "--no-header" => o.no_header = true,
            "--seconds" => o.seconds = number("--seconds", value("--seconds")?)?,
            "--core" => o.core = Some(number("--core", value("--core")?)? as usize),
            "--flow-cache" => {
                o.flow_cache = number("--flow-cache", value("--flow-cache")?)? as usize
            }
            "--hugepages" => o.hugepages = true,
            "--write-pcap" => o.write_pcap = Some(value("--write-pcap")?.into()),
            "--pcap" => o.pcap = Some(value("--pcap")?.into()),
            "--workers" => o.workers = number("--workers", value("--workers")?)? as usize,
            "--cores" => {
                o.cores = value("--cores")?
                    .split(',')
                    .map(|c| {
                        c.parse()
                            .map_err(|_| format!("--cores: {c:?} is not a core"))
                    })
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    if (o.write_pcap.is_some() || o.pcap.is_some()) && o.scenario.is_none() {
        return Err("--write-pcap and --pcap need a --scenario".into());
    }
    Ok(o)
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Mbufs besides the pcap's: rx/tx rings, per-lcore caches, bursts in flight.
const WORKING_MBUFS: u32 = 16_383;
/// An upper bound of one mbuf's memory (header, headroom, 2048 bytes of
/// data room, mempool object header).
const MBUF_BYTES: usize = 2560;

struct Measurement {
    packets: u64,
    unexpected: u64,
    wall_ns: f64,
    cpu_ns: f64,
    tsc_hz: f64,
    cache_hit_rate: f64,
    frame_bytes: usize,
}

/// Runs scenario `s` in this process (the EAL can be initialised once).
fn measure(s: &Scenario, o: &Options) -> Result<Measurement, String> {
    let frames = frames(s)?;
    let bytes = pcap(&frames);
    let private = std::env::temp_dir().join(format!("sy-dpdk-bench-{}", std::process::id()));
    let input = match &o.pcap {
        Some(p) => {
            let on_disk = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            if on_disk != bytes {
                return Err(format!(
                    "{} does not hold the traffic of {} (write it with --write-pcap)",
                    p.display(),
                    s.name
                ));
            }
            p.clone()
        }
        None => {
            std::fs::create_dir_all(&private).map_err(|e| format!("{}: {e}", private.display()))?;
            let p = private.join(format!("{}.pcap", s.name));
            std::fs::write(&p, &bytes).map_err(|e| format!("{}: {e}", p.display()))?;
            p
        }
    };
    let result = replay(s, o, &input, frames.len(), frames[0].len());
    if o.pcap.is_none() {
        std::fs::remove_dir_all(&private).map_err(|e| format!("{}: {e}", private.display()))?;
    }
    result
}

fn replay(
    s: &Scenario,
    o: &Options,
    input: &std::path::Path,
    records: usize,
    frame_bytes: usize,
) -> Result<Measurement, String> {
    // The worker is this thread, pinned by the EAL (`main_cpus`). Not
    // pinned before: the EAL puts its control threads (interrupts,
    // telemetry) on the CPUs the process had at init minus the lcores', so
    // they stay off the worker's core, as OVS-DPDK's stay off its PMD's.
    // net_pcap's infinite_rx copies the whole pcap into mbufs of the rx
    // queue's pool at setup, and then replays copies of them; replayed
    // once, it reads the file as it goes.
    if s.once && o.workers > 0 {
        return Err(format!("{} runs on one bare worker (no --workers)", s.name));
    }
    let mbufs = if s.once {
        WORKING_MBUFS
    } else {
        records as u32 * o.workers.max(1) as u32 + WORKING_MBUFS
    };
    let eal = Eal::init(&EalConfig {
        main_cpus: o.core.into_iter().collect(),
        memory: if o.hugepages {
            EalMemory::Hugepages { megabytes: None }
        } else {
            EalMemory::NoHuge {
                megabytes: mbufs as usize * MBUF_BYTES / (1 << 20) + 256,
            }
        },
        log_level: Some("warning".into()),
        mbufs_per_socket: mbufs,
        ..EalConfig::default()
    })
    .map_err(|e| e.to_string())?;
    // One rx queue (a copy of the pcap) and one tx queue per worker.
    let queues = o.workers.max(1);
    let cfg = DpdkPortConfig {
        rx_queues: queues as u16,
        tx_queues: queues as u16,
        queues_fed_apart: true,
        ..DpdkPortConfig::default()
    };
    let pcaps = format!(",rx_pcap={}", input.display()).repeat(queues);
    let replay = if s.once { "" } else { ",infinite_rx=1" };
    let src = Arc::new(
        DpdkPort::open(eal, &format!("net_pcap0{pcaps}{replay}"), &cfg)
            .map_err(|e| e.to_string())?,
    );
    let sink = Arc::new(DpdkPort::open(eal, "net_null0,no-rx=1", &cfg).map_err(|e| e.to_string())?);
    let ports: Vec<Arc<dyn Port<MbufPool>>> = vec![src.clone(), sink.clone()];
    // Overlay scenarios: the uplink is the sink (encap) or the source (decap).
    let tables = match s.tunnel {
        _ if s.routed => routed::tables(s.tunnel.map(|(encap, _)| underlay(encap, 1))),
        Some((encap, decap)) => Tables::compile_with_underlay(
            &topology(s.tunnel),
            Some(underlay(encap, if decap { 0 } else { 1 })),
        ),
        None => Tables::compile(&topology(None)),
    };
    let mut tables = tables.map_err(|e| e.to_string())?;
    // Room for every flow's connection in both zones.
    let limit = (2 * s.flows).max(1 << 20);
    let stateful = s.acls.then(|| Stateful::new(Conntrack::new(limit, 256)));
    if let Some(st) = &stateful {
        let acls = if s.routed {
            routed::security_group()
        } else {
            acl::security_group(&[ip(0), ip(1)], AclAction::AllowRelated)
        };
        let errors = tables.install_acls(&acls, st);
        if !errors.is_empty() {
            return Err(format!("{}: {errors:?}", s.name));
        }
    }
    let publisher = TablePublisher::new(tables);
    if o.workers > 0 {
        return engine::run(s, o, src, sink, publisher, frame_bytes);
    }
    let mut worker = Worker::new(&ports, &[PortId(0)], publisher, src.pool(), o.flow_cache)
        .map_err(|e| e.to_string())?;
    let wstats = worker.stats();
    if s.once {
        return replay_once(
            s,
            &mut worker,
            &src,
            &sink,
            stateful.as_deref(),
            records,
            frame_bytes,
        );
    }

    // Warm-up: every flow at least twice through the flow cache, and at
    // least a million packets.
    let mut seen = 0;
    while seen < (2 * s.flows as u64).max(1 << 20) {
        seen += worker.poll() as u64;
    }
    check_tracked(s, stateful.as_deref())?;
    let eth = |p: &DpdkPort| p.eth_stats().map_err(|e| e.to_string());
    let (src0, sink0) = (eth(&src)?, eth(&sink)?);
    let hits0 = wstats.cache_hits.load(Ordering::Relaxed);
    let misses0 = wstats.cache_misses.load(Ordering::Relaxed);
    let duration = Duration::from_secs_f64(o.seconds);
    let (cpu0, tsc0, t0) = (thread_cpu_ns(), tsc(), Instant::now());
    loop {
        for _ in 0..1024 {
            worker.poll();
        }
        if t0.elapsed() >= duration {
            break;
        }
    }
    let wall_ns = t0.elapsed().as_nanos() as f64;
    let tsc_hz = (tsc() - tsc0) as f64 / wall_ns * 1e9;
    let cpu_ns = (thread_cpu_ns() - cpu0) as f64;
    let (src1, sink1) = (eth(&src)?, eth(&sink)?);
    let hits = (wstats.cache_hits.load(Ordering::Relaxed) - hits0) as f64;
    let misses = (wstats.cache_misses.load(Ordering::Relaxed) - misses0) as f64;
    let packets = sink1.opackets - sink0.opackets;
    Ok(Measurement {
        packets,
        unexpected: (src1.ipackets - src0.ipackets).saturating_sub(packets),
        wall_ns,
        cpu_ns,
        tsc_hz,
        cache_hit_rate: hits / (hits + misses).max(1.0),
        frame_bytes,
    })
}

/// That every flow of `s` was committed in both zones, or only vm0's when
/// vm1 is on another chassis (what the comparison checks of OVS too).
fn check_tracked(s: &Scenario, stateful: Option<&Stateful>) -> Result<(), String> {
    let Some(n) = stateful.map(|st| st.conntrack.len()) else {
        return Ok(());
    };
    let zones = if s.tunnel.is_some() { 1 } else { 2 };
    if n != zones * s.flows {
        return Err(format!(
            "{n} connections tracked, not {zones} x {}",
            s.flows
        ));
    }
    Ok(())
}

/// Runs `worker` over a pcap replayed once (a [`Scenario::once`]), from
/// its first packet until every record came out of the sink, or until the
/// source has given nothing for a second (then the missing ones are
/// `unexpected`).
fn replay_once(
    s: &Scenario,
    worker: &mut Worker<MbufPool>,
    src: &DpdkPort,
    sink: &DpdkPort,
    stateful: Option<&Stateful>,
    records: usize,
    frame_bytes: usize,
) -> Result<Measurement, String> {
    let eth = |p: &DpdkPort| p.eth_stats().map_err(|e| e.to_string());
    // Measured from the end of the first burst (the file is open and being
    // read).
    while worker.poll() == 0 {}
    let out0 = eth(sink)?.opackets;
    let (cpu0, tsc0, t0) = (thread_cpu_ns(), tsc(), Instant::now());
    let (mut last, mut progress) = (out0, Instant::now());
    let out = loop {
        for _ in 0..64 {
            worker.poll();
        }
        let out = eth(sink)?.opackets;
        if out >= records as u64 {
            break out;
        }
        if out != last {
            (last, progress) = (out, Instant::now());
        } else if progress.elapsed() > Duration::from_secs(1) {
            break out;
        }
    };
    let wall_ns = t0.elapsed().as_nanos() as f64;
    let tsc_hz = (tsc() - tsc0) as f64 / wall_ns * 1e9;
    let cpu_ns = (thread_cpu_ns() - cpu0) as f64;
    check_tracked(s, stateful)?;
    let stats = worker.stats();
    let hits = stats.cache_hits.load(Ordering::Relaxed) as f64;
    let misses = stats.cache_misses.load(Ordering::Relaxed) as f64;
    Ok(Measurement {
        packets: out - out0,
        // Records that did not come out, and received ones that did not.
        unexpected: (records as u64).saturating_sub(out) + eth(src)?.ipackets.saturating_sub(out),
        wall_ns,
        cpu_ns,
        tsc_hz,
        cache_hit_rate: hits / (hits + misses).max(1.0),
        frame_bytes,
    })
}

fn header() {
    println!(
        "{:<16} {:>8} {:>9} {:>9} {:>8} {:>11} {:>8} {:>6} {:>6}",
        "scenario", "Mpps", "Mpps/core", "cpu ns", "cycles", "packets", "flows", "bytes", "cache"
    );
}

fn report(s: &Scenario, o: &Options, m: &Measurement) {
    let n = m.packets.max(1) as f64;
    let cpu_ns_per_packet = m.cpu_ns / n;
    let cycles = cpu_ns_per_packet * m.tsc_hz / 1e9;
    if o.json {
        println!(
            concat!(
                "{{\"scenario\":\"{}\",\"description\":\"{}\",\"mpps\":{:.3},",
                "\"ns_per_packet\":{:.2},\"mpps_per_core\":{:.3},\"cpu_ns_per_packet\":{:.2},",
                "\"cycles_per_packet\":{:.1},\"packets\":{},\"unexpected\":{},\"flows\":{},",
                "\"frame_bytes\":{},\"cores\":{},\"flow_cache_hit_rate\":{:.4},",
                "\"seconds\":{:.2},\"tsc_ghz\":{:.3},\"hugepages\":{}}}"
            ),
            s.name,
            s.description,
            n / m.wall_ns * 1e3,
            m.wall_ns / n,
            n / m.cpu_ns * 1e3,
            cpu_ns_per_packet,
            cycles,
            m.packets,
            m.unexpected,
            s.flows,
            m.frame_bytes + 4,
            o.workers.max(1),
            m.cache_hit_rate,
            m.wall_ns / 1e9,
            m.tsc_hz / 1e9,
            o.hugepages
        );
    } else {
        println!(
            "{:<16} {:>8.2} {:>9.2} {:>9.2} {:>8.1} {:>11} {:>8} {:>6} {:>5.0}%",
            s.name,
            n / m.wall_ns * 1e3,
            n / m.cpu_ns * 1e3,
            cpu_ns_per_packet,
            cycles,
            m.packets,
            s.flows,
            m.frame_bytes + 4,
            m.cache_hit_rate * 100.0
        );
    }
}

/// Runs every scenario, each in a child process of this program.
fn run_all(o: &Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    if !o.json {
        header();
    }
    let mut failed = Vec::new();
    for s in SCENARIOS {
        let status = Command::new(&exe)
            .args(std::env::args().skip(1))
            .args(["--scenario", s.name, "--no-header"])
            .status()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        if !status.success() {
            failed.push(s.name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failed.join(", ")))
    }
}

fn run() -> Result<(), String> {
    let mut o = options()?;
    if o.list {
        for s in SCENARIOS {
            println!("{:<16} {}", s.name, s.description);
        }
        return Ok(());
    }
    let Some(name) = o.scenario.clone() else {
        return run_all(&o);
    };
    let s = SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| format!("no scenario {name:?} (see --list)"))?;
    if let Some(p) = &o.write_pcap {
        return std::fs::write(p, pcap(&frames(s)?)).map_err(|e| format!("{}: {e}", p.display()));
    }
    o.core = o
        .core
        .or_else(|| core_affinity::get_core_ids()?.last().map(|c| c.id));
    let m = measure(s, &o)?;
    if !o.json && !o.no_header {
        header();
    }
    report(s, &o, &m);
    if m.unexpected != 0 || m.packets == 0 {
        return Err(format!(
            "{}: {} packets out of the sink, {} more received that did not come out",
            s.name, m.packets, m.unexpected
        ));
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("dpdk_bench: {e}");
        std::process::exit(1);
    }
}
