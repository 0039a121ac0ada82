//! `dpdk-l2-10k`: L2 switching on DPDK ports, one worker core.
//!
//! Writes a pcap of 64-byte UDP/IPv4 frames (N distinct 5-tuples, default
//! 10,000) from vm0 to vm1, replays it with `net_pcap` (`infinite_rx=1`)
//! into vm0's port, runs the unchanged [`Worker`] on one pinned core, and
//! sends to vm1's `net_null` sink. Reports, as one JSON line, packets out of
//! the sink per second of the worker's CPU time (Mpps per worker core),
//! TSC cycles per packet, and wall-clock Mpps. This is the configuration the
//! OVS-DPDK comparison (NORMAL action, vm1's MAC in its FDB) runs too.
//!
//! ```text
//! cargo run --release -p switchyard-dataplane --features dpdk \
//!     --example dpdk_l2_bench -- [--flows 10000] [--packets 50000000] \
//!     [--core 1] [--flow-cache 8192] [--hugepages]
//! ```
//! `--hugepages` uses `--in-memory` (reserve them first:
//! `echo 512 > /proc/sys/vm/nr_hugepages`, hugetlbfs on /dev/hugepages);
//! the default is `--no-huge -m 1024`.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use dataplane::engine::Worker;
use dataplane::flow::{FlowDesc, L3, L4};
use dataplane::port::dpdk::{DpdkPort, DpdkPortConfig, Eal, EalConfig, EalMemory, MbufPool};
use dataplane::port::Port;
use dataplane::tables::{
    Address, LogicalPort, LogicalSwitch, MacIps, PortType, TablePublisher, Tables,
};
use dataplane::wire::MacAddr;

struct Options {
    flows: usize,
    packets: u64,
    core: Option<usize>,
    hugepages: bool,
    flow_cache: usize,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        flows: 10_000,
        packets: 50_000_000,
        core: None,
        hugepages: false,
        flow_cache: 8192,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--flows" => o.flows = value("--flows")? as usize,
            "--packets" => o.packets = value("--packets")?,
            "--core" => o.core = Some(value("--core")? as usize),
            "--flow-cache" => o.flow_cache = value("--flow-cache")? as usize,
            "--hugepages" => o.hugepages = true,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(o)
}

fn mac(i: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, i])
}

fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i + 1)
}

/// One switch, vm0 on local port 0 and vm1 on local port 1, with
/// addresses and port security (as the suite's l2 scenarios).
fn topology() -> Vec<LogicalSwitch> {
    let ports = (0..2u8)
        .map(|i| {
            let entry: MacIps = format!("{} {}", mac(i), ip(i))
                .parse()
                .expect("valid address");
            LogicalPort {
                name: format!("vm{i}"),
                tunnel_key: u32::from(i) + 1,
                port_type: PortType::Vif,
                addresses: vec![Address::Known(entry.clone())],
                port_security: vec![entry],
                local_port: Some(u16::from(i)),
                chassis: None,
                vlan: None,
            }
        })
        .collect();
    vec![LogicalSwitch {
        name: "bench".into(),
        tunnel_key: 1,
        ports,
    }]
}

/// A classic pcap of `flows` 60-byte (64 with FCS) UDP frames vm0 -> vm1.
fn pcap(flows: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for i in 0..flows {
        let f = FlowDesc {
            inport: None,
            eth_src: mac(0),
            eth_dst: mac(1),
            vlan: None,
            l3: L3::Ipv4 {
                src: ip(0),
                dst: ip(1),
                ttl: 64,
            },
            l4: L4::Udp {
                src: 1024 + (i % 60_000) as u16,
                dst: 5000 + (i / 60_000) as u16,
            },
            payload: 18,
        }
        .to_frame()
        .map_err(|e| e.to_string())?;
        for w in [0u32, 0, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&f);
    }
    Ok(out)
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

fn run() -> Result<String, String> {
    let o = options()?;
    if let Some(c) = o.core {
        core_affinity::set_for_current(core_affinity::CoreId { id: c });
    }
    let dir = std::env::temp_dir().join(format!("sy-dpdk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let input = dir.join(format!("l2-{}.pcap", o.flows));
    std::fs::write(&input, pcap(o.flows)?).map_err(|e| format!("{}: {e}", input.display()))?;

    let eal = Eal::init(&EalConfig {
        main_cpus: o.core.into_iter().collect(),
        memory: if o.hugepages {
            EalMemory::Hugepages { megabytes: None }
        } else {
            EalMemory::NoHuge { megabytes: 1024 }
        },
        log_level: Some("warning".into()),
        ..EalConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let cfg = DpdkPortConfig::default();
    let src = DpdkPort::open(
        eal,
        &format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()),
        &cfg,
    )
    .map_err(|e| e.to_string())?;
    let sink = DpdkPort::open(eal, "net_null0,no-rx=1", &cfg).map_err(|e| e.to_string())?;
    let pool = src.pool();
    let ports: Vec<Arc<dyn Port<MbufPool>>> = vec![Arc::new(src), Arc::new(sink)];
    let publisher = TablePublisher::new(Tables::compile(&topology()).map_err(|e| e.to_string())?);
    let mut worker =
        Worker::new(&ports, &[0], publisher, pool, o.flow_cache).map_err(|e| e.to_string())?;
    let wstats = worker.stats();

    // Warm-up: every flow twice through the flow cache.
    let mut seen = 0;
    while seen < 2 * o.flows as u64 {
        seen += worker.poll() as u64;
    }
    let out0 = ports[1].stats().tx_packets;
    let hits0 = wstats.cache_hits.load(Ordering::Relaxed);
    let misses0 = wstats.cache_misses.load(Ordering::Relaxed);
    let (cpu0, tsc0, t0) = (thread_cpu_ns(), tsc(), Instant::now());
    while ports[1].stats().tx_packets - out0 < o.packets {
        for _ in 0..1024 {
            worker.poll();
        }
    }
    let wall = t0.elapsed().as_nanos() as f64;
    let cycles = (tsc() - tsc0) as f64;
    let cpu = (thread_cpu_ns() - cpu0) as f64;
    let s = ports[1].stats();
    let out = (s.tx_packets - out0) as f64;
    let rx = ports[0].stats();
    let hits = (wstats.cache_hits.load(Ordering::Relaxed) - hits0) as f64;
    let misses = (wstats.cache_misses.load(Ordering::Relaxed) - misses0) as f64;
    std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(format!(
        concat!(
            "{{\"scenario\":\"dpdk-l2-{}\",\"mpps_per_core\":{:.2},\"mpps_wall\":{:.2},",
            "\"cpu_ns_per_packet\":{:.2},\"tsc_cycles_per_packet\":{:.1},\"packets\":{},",
            "\"rx_dropped\":{},\"tx_dropped\":{},\"flows\":{},\"flow_cache_hit_rate\":{:.4},",
            "\"cores\":1,\"hugepages\":{}}}"
        ),
        if o.flows == 10_000 {
            "10k".to_string()
        } else {
            o.flows.to_string()
        },
        out / cpu * 1e3,
        out / wall * 1e3,
        cpu / out,
        cycles / out,
        out as u64,
        rx.rx_dropped,
        s.tx_dropped,
        o.flows,
        hits / (hits + misses).max(1.0),
        o.hugepages
    ))
}

fn main() {
    match run() {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("dpdk_l2_bench: {e}");
            std::process::exit(1);
        }
    }
}
