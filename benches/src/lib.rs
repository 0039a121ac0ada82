//! The packet benchmark suite behind `switchyard bench`.
//!
//! Every scenario builds a logical topology, preloads traffic into in-memory
//! [`ReplayPort`]s (the generator copies each frame into a pool buffer as a
//! NIC would), and drives one [`Worker`] — the same code the node runs — on
//! one pinned core until the traffic is exhausted. A scenario counts only
//! what it claims: forwarded packets for the forwarding scenarios (taken
//! from the sink ports' tx counters), ARP replies for the responder, and
//! drops under the expected reason for the port-security scenario. Anything
//! else the pipeline did is reported as `unexpected`, and a run with
//! unexpected outcomes fails.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use dataplane::classifier::{AclAction, AclConfig, Stateful};
use dataplane::conntrack::Conntrack;
use dataplane::drop::DropReason;
use dataplane::engine::Worker;
use dataplane::flow::{FlowDesc, L3, L4};
use dataplane::ids::PortId;
use dataplane::overlay::Tunnel;
use dataplane::packet::HeapPool;
use dataplane::port::memory::{ReplayPort, Traffic};
use dataplane::port::Port;
use dataplane::tables::{
    Encap, LogicalPort, LogicalSwitch, RemoteChassis, TablePublisher, Tables, Underlay,
};
use dataplane::wire::MacAddr;
use serde::Serialize;

pub mod acl;
pub mod acl_10k;
mod routed;
mod scenarios;

pub use scenarios::scenarios;

/// Logical ports of the benchmark switch.
pub const PORTS: usize = 64;

/// What a scenario's packets are counted as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Transmitted out of a port other than the ingress one.
    Forwarded,
    /// ARP replies sent back out of the ingress port.
    Replies,
    /// Dropped under this reason.
    Dropped(DropReason),
    /// Forwarded, each the first packet of a new connection that the ACLs
    /// allowed and conntrack committed (in both ports' zones): the traffic
    /// is sent in passes, each 5-tuple once per pass, the connection table
    /// flushed between passes (untimed), and a pass that does not leave
    /// two entries per packet fails the run.
    Connections,
}

/// A benchmark scenario.
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    /// Distinct flows (5-tuples, or requests) in the traffic.
    pub flows: usize,
    pub counted: Counted,
    build: fn(usize) -> Vec<Vec<FlowDesc>>,
    /// Tunnel scenarios (routed ones too): ports 32..63 live on a remote
    /// chassis reached over an uplink (local port 64).
    overlay: Option<Overlay>,
    /// ACL scenarios: the switch's security group ([`acl`]).
    acls: Option<fn() -> AclConfig>,
    /// Routed scenarios: the ports on two switches joined by a router with
    /// this many static routes besides its connected networks.
    routes: Option<usize>,
}

/// How a tunnel scenario reaches the remote chassis.
#[derive(Clone, Copy, Debug)]
struct Overlay {
    encap: Encap,
    /// Over an IPv6 underlay (else IPv4).
    ipv6: bool,
    /// Replays the remote chassis' encapsulated traffic into the uplink
    /// (else sends to the remote ports, to be encapsulated).
    decap: bool,
}

const fn overlay(encap: Encap, ipv6: bool, decap: bool) -> Option<Overlay> {
    Some(Overlay { encap, ipv6, decap })
}

/// Ports 32..63 on the remote chassis in the tunnel scenarios.
const LOCAL: usize = PORTS / 2;
/// The uplink's local port in the tunnel scenarios.
const UPLINK: usize = PORTS;

fn underlay(o: Overlay) -> Underlay {
    let (ours, theirs): (IpAddr, IpAddr) = if o.ipv6 {
        (
            Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 0x21).into(),
            Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 0x22).into(),
        )
    } else {
        (
            Ipv4Addr::new(192, 168, 100, 21).into(),
            Ipv4Addr::new(192, 168, 100, 22).into(),
        )
    };
    Underlay {
        port: PortId(UPLINK as u16),
        ip: ours,
        mac: MacAddr([2, 0, 0, 0, 1, 0x21]),
        mtu: 1500,
        chassis: vec![RemoteChassis {
            name: "hv2".into(),
            ip: theirs,
            encap: o.encap,
            mac: Some(MacAddr([2, 0, 0, 0, 1, 0x22])),
            vtep: false,
            csum: false,
        }],
    }
}

/// Flow i from local port `i % 32` to a remote port.
fn to_remote_flows(n: usize) -> Vec<Vec<FlowDesc>> {
    let mut by_port = vec![Vec::new(); PORTS];
    for i in 0..n {
        let s = i % LOCAL;
        let d = LOCAL + (i / LOCAL) % LOCAL;
        by_port[s].push(udp(i, s, d));
    }
    by_port
}

/// Flow i from a remote port to local port `i % 32`, as frames before
/// encapsulation; all arrive on the uplink.
fn from_remote_flows(n: usize) -> Vec<Vec<FlowDesc>> {
    let mut by_port = vec![Vec::new(); PORTS + 1];
    for i in 0..n {
        let d = i % LOCAL;
        let s = LOCAL + (i / LOCAL) % LOCAL;
        by_port[UPLINK].push(udp(i, s, d));
    }
    by_port
}

fn udp(i: usize, s: usize, d: usize) -> FlowDesc {
    FlowDesc {
        inport: None,
        eth_src: port_mac(s),
        eth_dst: port_mac(d),
        vlan: None,
        l3: L3::Ipv4 {
            src: port_ip(s),
            dst: port_ip(d),
            ttl: 64,
        },
        l4: L4::Udp {
            src: 1024 + (i % 60_000) as u16,
            dst: 5000 + (i / 60_000) as u16,
        },
        payload: 18,
    }
}

/// Encapsulates `frame` as the remote chassis would towards us.
fn from_remote(frame: &[u8], o: Overlay) -> Result<Vec<u8>, String> {
    let u = underlay(o);
    let rc = &u.chassis[0];
    let key = |m: &[u8]| u32::from(m[5]) + 1; // port i has MAC ..:i and key i+1
    let mut b = dataplane::packet::HeapBuf::from_frame(frame);
    let t = Tunnel {
        encap: o.encap,
        src_mac: rc.mac.expect("static"),
        dst_mac: u.mac,
        src_ip: rc.ip,
        dst_ip: u.ip,
        datapath_key: 1,
        ingress_key: key(&frame[6..12]) as u16,
        egress_key: key(&frame[0..6]) as u16,
        csum: false,
    };
    if !dataplane::overlay::encapsulate(&mut b, &t) {
        return Err("no headroom".into());
    }
    use dataplane::packet::PacketBuf;
    Ok(b.data().to_vec())
}

fn port_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, (i >> 8) as u8, i as u8])
}

/// The ACL scenarios' security group over every port, stateless or not.
fn acl_stateless() -> AclConfig {
    acl::security_group(&port_ips(), AclAction::Allow)
}

fn acl_stateful() -> AclConfig {
    acl::security_group(&port_ips(), AclAction::AllowRelated)
}

fn acl_stateful_10k_rules() -> AclConfig {
    acl_10k::security_group_10k_rules(&port_ips(), AclAction::AllowRelated)
}

fn port_ips() -> Vec<Ipv4Addr> {
    (0..PORTS).map(port_ip).collect()
}

pub(crate) fn port_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8 + 1)
}

/// The benchmark topology: one switch, [`PORTS`] VM ports with MAC+IP
/// addresses and port security, port i bound to local port i (or, with
/// `remote`, ports 32..63 bound to the remote chassis).
pub fn topology_with(remote: bool) -> Vec<LogicalSwitch> {
    let mut t = topology();
    if remote {
        for p in &mut t[0].ports[LOCAL..] {
            p.local_port = None;
            p.chassis = Some(dataplane::ids::ChassisIdx(0));
        }
    }
    t
}

/// The benchmark topology: one switch, [`PORTS`] VM ports with MAC+IP
/// addresses and port security, port i bound to local port i.
pub fn topology() -> Vec<LogicalSwitch> {
    let ports = (0..PORTS)
        .map(|i| {
            let address = format!("{} {}", port_mac(i), port_ip(i))
                .parse()
                .expect("valid address");
            LogicalPort {
                local_port: Some(PortId(i as u16)),
                ..LogicalPort::vif(format!("vm{i}"), i as u32 + 1, address, true)
            }
        })
        .collect();
    vec![LogicalSwitch {
        name: "bench".into(),
        tunnel_key: 1,
        ports,
    }]
}

/// Flow i goes from port `i % 64` to another port, with a distinct UDP
/// 5-tuple; the frames of each ingress port are listed separately.
fn flows_by_port(n: usize, spoof: bool) -> Vec<Vec<FlowDesc>> {
    let mut by_port = vec![Vec::new(); PORTS];
    for i in 0..n {
        let s = i % PORTS;
        let d = (s + 1 + (i / PORTS) % (PORTS - 1)) % PORTS;
        let src_ip = if spoof {
            Ipv4Addr::new(192, 168, (i >> 8) as u8, i as u8)
        } else {
            port_ip(s)
        };
        by_port[s].push(FlowDesc {
            inport: None,
            eth_src: port_mac(s),
            eth_dst: port_mac(d),
            vlan: None,
            l3: L3::Ipv4 {
                src: src_ip,
                dst: port_ip(d),
                ttl: 64,
            },
            l4: L4::Udp {
                src: 1024 + (i % 60_000) as u16,
                dst: 5000 + (i / 60_000) as u16,
            },
            payload: 18, // 64-byte frames (without FCS: 60)
        });
    }
    by_port
}

fn udp_flows(n: usize) -> Vec<Vec<FlowDesc>> {
    flows_by_port(n, false)
}

fn spoofed_flows(n: usize) -> Vec<Vec<FlowDesc>> {
    flows_by_port(n, true)
}

fn arp_requests(_: usize) -> Vec<Vec<FlowDesc>> {
    (0..PORTS)
        .map(|s| {
            (0..PORTS)
                .filter(|&d| d != s)
                .map(|d| FlowDesc {
                    inport: None,
                    eth_src: port_mac(s),
                    eth_dst: MacAddr::BROADCAST,
                    vlan: None,
                    l3: L3::Arp {
                        op: 1,
                        sha: Some(port_mac(s)),
                        spa: port_ip(s),
                        tha: MacAddr([0; 6]),
                        tpa: port_ip(d),
                    },
                    l4: L4::None,
                    payload: 0,
                })
                .collect()
        })
        .collect()
}

/// One scenario's measurement.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub scenario: String,
    /// Counted packets per second of wall time, in millions.
    pub mpps: f64,
    /// Wall time per counted packet.
    pub ns_per_packet: f64,
    /// The worker thread's CPU time per counted packet.
    pub cpu_ns_per_packet: f64,
    /// Packets counted as the scenario claims.
    pub packets: u64,
    /// Packets that ended otherwise (must be 0).
    pub unexpected: u64,
    pub flows: usize,
    pub cores: usize,
    pub flow_cache_hit_rate: f64,
    /// Resident set size of the process after the run, in MiB.
    pub rss_mib: f64,
    /// Conntrack entries after the run (ACL scenarios; a connection
    /// through two local ports' zones has two, as in OVS).
    pub conntrack_entries: usize,
    /// RSS growth while the warm-up committed the connections, per
    /// connection (all its entries), in bytes (0 without conntrack).
    pub rss_bytes_per_connection: f64,
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; clock_gettime writes only
    // that one struct.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|pages| pages * 4096.0 / (1024.0 * 1024.0))
        .unwrap_or(0.0)
}

/// Options of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Packets to send through the pipeline (after warm-up).
    pub packets: u64,
    /// Core to pin the worker to.
    pub core: Option<usize>,
    /// Flow cache entries (0: no flow cache).
    pub flow_cache: usize,
}

/// Runs one scenario on the calling thread (pinned to `opts.core`).
pub fn run(s: &Scenario, opts: &RunOptions) -> Result<BenchResult, String> {
    if let Some(c) = opts.core {
        core_affinity::set_for_current(core_affinity::CoreId { id: c });
    }
    let mut tables = match (s.overlay, s.routes) {
        (o, Some(n)) => routed::tables(n, o.map(underlay)),
        (Some(o), None) => Tables::compile_with_underlay(&topology_with(true), Some(underlay(o))),
        (None, None) => Tables::compile(&topology()),
    }
    .map_err(|e| e.to_string())?;
    // Room for every flow's connection in both zones.
    let st = Stateful::new(Conntrack::new((2 * s.flows).max(1 << 20), 256));
    if let Some(acls) = s.acls {
        let errors = tables.install_acls(&acls(), &st);
        if !errors.is_empty() {
            return Err(format!("{}: {errors:?}", s.name));
        }
    }
    let publisher = TablePublisher::new(tables);
    let mut by_port = (s.build)(s.flows);
    if s.overlay.is_some() {
        by_port.resize(PORTS + 1, Vec::new());
    }
    let mut traffic = Vec::with_capacity(by_port.len());
    let mut rx_ports = Vec::new();
    for (i, descs) in by_port.iter().enumerate() {
        let frames = descs
            .iter()
            .map(|d| {
                let f = d.to_frame().map_err(|e| e.to_string())?;
                match s.overlay {
                    Some(o) if o.decap => from_remote(&f, o),
                    _ => Ok(f),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !frames.is_empty() {
            rx_ports.push(PortId(i as u16));
        }
        traffic.push((Arc::new(Traffic::new(&frames)), frames.len() as u64));
    }
    // Replay ports of `traffic`, port i sending `count(its frames)`
    // packets, and a worker over them.
    let replay = |count: &dyn Fn(u64) -> u64| {
        let ports: Vec<Arc<dyn Port<HeapPool>>> = traffic
            .iter()
            .enumerate()
            .map(|(i, (t, n))| {
                Arc::new(ReplayPort::new(&format!("vm{i}"), t.clone(), count(*n)))
                    as Arc<dyn Port<HeapPool>>
            })
            .collect();
        let worker = Worker::new(
            &ports,
            &rx_ports,
            publisher.clone(),
            HeapPool::new(1024, 2048),
            opts.flow_cache,
        )
        .map_err(|e| e.to_string())?;
        Ok::<_, String>((ports, worker))
    };
    // Warm-up: each port first replays its traffic once (at most 64k
    // frames), then the measured packets; a setup scenario's warm-up is
    // one pass of its own.
    let warm = |n: u64| n.min(65_536);
    let setups = s.counted == Counted::Connections;
    let active = rx_ports.len().max(1) as u64;
    let per_port = opts.packets / active;
    let (mut ports, mut worker) = if setups {
        replay(&|n| n)?
    } else {
        replay(&|n| warm(n) + per_port)?
    };
    let warm_total: u64 = traffic.iter().map(|&(_, n)| warm(n)).sum();
    let rss_cold = rss_mib();
    let mut seen = 0;
    while seen < warm_total {
        seen += worker.poll() as u64;
    }
    let ct_warm = st.conntrack.len();
    let rss_per_connection = if ct_warm > 0 {
        // Every flow is one connection, committed during the warm-up (in
        // both VMs' zones, or only the sender's when the receiver is on
        // another chassis).
        (rss_mib() - rss_cold) * 1024.0 * 1024.0 / s.flows as f64
    } else {
        0.0
    };
    let mut m = Measured::default();
    if setups {
        // Passes of the traffic, each 5-tuple once, from a fresh worker
        // and an empty connection table (both untimed), until the
        // measured packets are sent.
        let pass: u64 = traffic.iter().map(|&(_, n)| n).sum();
        while m.received < opts.packets.max(1) {
            st.conntrack.flush(None);
            (ports, worker) = replay(&|n| n)?;
            m.pass(&mut worker, &ports, s.counted);
            // Every packet committed a new connection, in both zones.
            if st.conntrack.len() as u64 != 2 * pass {
                return Err(format!(
                    "{}: a pass of {pass} new connections left {} conntrack entries",
                    s.name,
                    st.conntrack.len()
                ));
            }
        }
    } else {
        m.pass(&mut worker, &ports, s.counted);
    }
    let Measured {
        received,
        counted,
        hits,
        misses,
        wall,
        cpu,
    } = m;
    let unexpected = received.saturating_sub(counted);
    let res = BenchResult {
        scenario: s.name.to_string(),
        mpps: counted as f64 / wall * 1e3,
        ns_per_packet: wall / counted.max(1) as f64,
        cpu_ns_per_packet: cpu / counted.max(1) as f64,
        packets: counted,
        unexpected,
        flows: s.flows,
        cores: 1,
        flow_cache_hit_rate: hits as f64 / (hits + misses).max(1) as f64,
        rss_mib: rss_mib(),
        conntrack_entries: st.conntrack.len(),
        rss_bytes_per_connection: rss_per_connection,
    };
    if unexpected != 0 || counted == 0 {
        return Err(format!(
            "{}: {counted} packets counted as {:?} but {received} received: the pipeline did something else with {unexpected}",
            s.name, s.counted
        ));
    }
    Ok(res)
}

/// What the timed polling loops sent and took.
#[derive(Default)]
struct Measured {
    received: u64,
    counted: u64,
    hits: u64,
    misses: u64,
    /// Wall and worker CPU time, ns.
    wall: f64,
    cpu: f64,
}

impl Measured {
    /// Polls `worker` until its ports are exhausted, timed.
    fn pass(
        &mut self,
        worker: &mut Worker<HeapPool>,
        ports: &[Arc<dyn Port<HeapPool>>],
        counted: Counted,
    ) {
        let stats = worker.stats();
        let before = snapshot(ports, &stats, counted);
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        while worker.poll() != 0 {}
        self.wall += t0.elapsed().as_nanos() as f64;
        self.cpu += (thread_cpu_ns() - cpu0) as f64;
        let after = snapshot(ports, &stats, counted);
        self.received += after.0 - before.0;
        self.counted += after.1 - before.1;
        self.hits += after.2 - before.2;
        self.misses += after.3 - before.3;
    }
}

/// (received, counted, cache hits, cache misses) so far.
fn snapshot(
    ports: &[Arc<dyn Port<HeapPool>>],
    stats: &dataplane::engine::WorkerStats,
    counted: Counted,
) -> (u64, u64, u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let received: u64 = ports.iter().map(|p| p.stats().rx_packets).sum();
    let tx: u64 = ports.iter().map(|p| p.stats().tx_packets).sum();
    let c = match counted {
        Counted::Forwarded | Counted::Replies | Counted::Connections => tx,
        Counted::Dropped(r) => stats.drops(r),
    };
    (
        received,
        c,
        stats.cache_hits.load(Relaxed),
        stats.cache_misses.load(Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scenario (but the million-flow one, slow to build unoptimised)
    /// runs and counts exactly what it claims: `run` fails if any packet
    /// ended otherwise (or, setting up connections, did not open one).
    #[test]
    fn scenarios_count_what_they_claim() {
        for s in scenarios().iter().filter(|s| s.flows <= 100_000) {
            let r = run(
                s,
                &RunOptions {
                    packets: 20_000,
                    core: None,
                    flow_cache: 8192,
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(r.packets >= 10_000, "{}: {} packets", s.name, r.packets);
            assert_eq!(r.unexpected, 0);
        }
    }
}
