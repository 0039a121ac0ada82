//! Property tests (and fuzz targets) of the tenant ingress path and the
//! uplink receive path: for random tables and random packets, hostile ones
//! included,
//! - the flow cache's verdict equals the full pipeline's (a first packet
//!   fills the cache, later ones hit it);
//! - `switchyard trace` says exactly what a [`Worker`] does with the same
//!   packet: the drop reason it counts, or the ports it transmits on;
//! - nothing panics.
//!
//! The tests are bolero harnesses: `cargo test` runs them on random inputs
//! and on the committed corpus under `tests/__fuzz__/`; `cargo bolero test
//! pipeline_props::<name>` (nightly, `cargo install cargo-bolero`) runs the
//! same code under libFuzzer and grows the corpus.
//!
//! The topology covers every decision the worker takes outside the
//! pipeline: a VLAN provider port (untagging, `provider_vlan_mismatch`), a
//! remote port behind a tunnel whose endpoint MAC is known or not
//! (`neighbor_unresolved`), and an underlay MTU small enough for
//! `tunnel_mtu`.

#[path = "common/endpoints.rs"]
mod endpoints;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bolero::{check, TypeGenerator};
use dataplane::cache::FlowCache;
use dataplane::drop::DropReason;
use dataplane::engine::Worker;
use dataplane::flow::{FlowDesc, L3, L4};
use dataplane::ids::{ChassisIdx, PortId};
use dataplane::overlay::{self, Neighbors, Tunnel, MC_FLOOD};
use dataplane::packet::{HeapBuf, HeapPool, PacketBuf};
use dataplane::pipeline::{self, provider_vlan, NoTrace, PacketMeta, TraceReport, Verdict};
use dataplane::port::memory::{RingPort, RingPortHandle};
use dataplane::port::Port;
use dataplane::tables::{
    Address, Encap, LogicalPort, LogicalSwitch, MacIps, PortType, RemoteChassis, TablePublisher,
    Tables, Underlay,
};
use dataplane::wire::MacAddr;

/// Local ports: vm1, vm2, "any" (unknown addresses), the provider network's
/// localnet port, the uplink, vm4 on a second switch, and vm7 on the
/// provider network.
const VM1: PortId = PortId(0);
const PROVIDER: PortId = PortId(3);
const UPLINK: PortId = PortId(4);
const PORTS: usize = 7;
const US: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x21]);
const HV2: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x22]);

/// The knobs of a random topology.
#[derive(Debug, TypeGenerator)]
struct Topology {
    ipv6_underlay: bool,
    geneve: bool,
    csum: bool,
    /// The remote endpoint's MAC is configured (else it must be learned,
    /// and the first packets to it are `neighbor_unresolved`).
    remote_mac_known: bool,
    /// A provider VLAN on the localnet port (else a flat network).
    vlan: Option<u8>,
    /// Underlay MTU: 1280 + this (small ones make `tunnel_mtu` likely).
    mtu_above_1280: u8,
    /// What vm1's port security lists: 0 the address itself, 1 a MAC only,
    /// 2 IPv4 prefixes, 3 IPv4 only, 4 IPv6 only, 5 none (no port security).
    vm1_security: u8,
    vm2_secured: bool,
    /// The "any" port (addresses "unknown") exists.
    unknown_port: bool,
}

/// One packet of a case, built from pools of addresses the tables know and
/// some they do not, then damaged.
#[derive(Debug, TypeGenerator)]
struct Packet {
    in_port: u8,
    src: u8,
    dst: u8,
    kind: u8,
    vlan: Option<u16>,
    ports: (u16, u16),
    /// ICMP/ICMPv6 type and code, ARP operation.
    icmp: (u8, u8),
    payload: u16,
    /// Bytes to XOR into the frame: (offset, value).
    damage: Vec<(u16, u8)>,
    /// Cut the frame to this length.
    cut: Option<u16>,
}

#[derive(Debug, TypeGenerator)]
struct Case {
    topology: Topology,
    packets: Vec<Packet>,
}

/// What a tunnel packet from hv2 looks like, before damage.
#[derive(Debug, TypeGenerator)]
struct UplinkCase {
    topology: Topology,
    /// Inner frames, each inside a tunnel from hv2 (or bare when `raw`).
    frames: Vec<(Packet, bool, u16, u8)>,
}

fn mac(last: u8) -> MacAddr {
    MacAddr([0, 0, 0, 0, 0, last])
}

fn underlay(t: &Topology) -> Underlay {
    let (us, hv2) = endpoints::endpoints(t.ipv6_underlay);
    Underlay {
        port: UPLINK,
        ip: us,
        mac: US,
        mtu: 1280 + u16::from(t.mtu_above_1280),
        chassis: vec![RemoteChassis {
            name: "hv2".into(),
            ip: hv2,
            encap: if t.geneve {
                Encap::Geneve
            } else {
                Encap::Vxlan
            },
            mac: t.remote_mac_known.then_some(HV2),
            vtep: false,
            csum: t.csum,
        }],
    }
}

fn entry(s: &str) -> MacIps {
    s.parse().unwrap()
}

/// Switch key 7: vm1, vm2, "any" and vm5 on hv2; switch key 8: vm4; switch
/// key 9: a provider network's localnet port, and vm6 on hv2.
fn tables(t: &Topology) -> Tables {
    let vif = |name: &str, key: u32, addr: &str, local: Option<PortId>, secured: bool| {
        let address: Address = addr.parse().unwrap();
        LogicalPort {
            local_port: local,
            ..LogicalPort::vif(name, key, address, secured)
        }
    };
    let mut vm1 = vif(
        "vm1",
        1,
        "00:00:00:00:00:01 10.0.0.1 fd00::1",
        Some(VM1),
        false,
    );
    vm1.port_security = match t.vm1_security % 6 {
        0 => vec![entry("00:00:00:00:00:01 10.0.0.1 fd00::1")],
        1 => vec![entry("00:00:00:00:00:01")],
        2 => vec![entry("00:00:00:00:00:01 10.0.0.1/24 10.0.1.0/24")],
        3 => vec![entry("00:00:00:00:00:01 10.0.0.1")],
        4 => vec![entry("00:00:00:00:00:01 fd00::1")],
        _ => vec![],
    };
    let mut ls1 = vec![
        vm1,
        vif(
            "vm2",
            2,
            "00:00:00:00:00:02 10.0.0.2 fd00::2",
            Some(PortId(1)),
            t.vm2_secured,
        ),
        LogicalPort {
            chassis: Some(ChassisIdx(0)),
            ..vif("vm5", 5, "00:00:00:00:00:05 10.0.0.5 fd00::5", None, true)
        },
    ];
    if t.unknown_port {
        ls1.push(vif("any", 3, "unknown", Some(PortId(2)), false));
    }
    Tables::compile_with_underlay(
        &[
            LogicalSwitch {
                name: "ls1".into(),
                tunnel_key: 7,
                ports: ls1,
            },
            LogicalSwitch {
                name: "ls2".into(),
                tunnel_key: 8,
                ports: vec![vif(
                    "vm4",
                    1,
                    "00:00:00:00:00:04 10.0.0.4",
                    Some(PortId(5)),
                    true,
                )],
            },
            // A provider network: its remote port is reached through the
            // localnet port, not a tunnel.
            LogicalSwitch {
                name: "public".into(),
                tunnel_key: 9,
                ports: vec![
                    LogicalPort {
                        port_type: PortType::Localnet,
                        vlan: t.vlan.map(|v| u16::from(v) + 1),
                        ..vif("provnet", 1, "unknown", Some(PROVIDER), false)
                    },
                    LogicalPort {
                        chassis: Some(ChassisIdx(0)),
                        ..vif("vm6", 2, "00:00:00:00:00:06 10.0.0.6 fd00::6", None, true)
                    },
                    vif(
                        "vm7",
                        3,
                        "00:00:00:00:00:07 10.0.0.7",
                        Some(PortId(6)),
                        true,
                    ),
                ],
            },
        ],
        Some(underlay(t)),
    )
    .unwrap()
}

/// The addresses packets are built from: the ports', strangers', and the
/// special ones port security and the responder treat apart.
fn addrs(i: u8) -> (MacAddr, Ipv4Addr, Ipv6Addr) {
    match i % 11 {
        n @ 0..=4 => (
            mac(n + 1),
            Ipv4Addr::new(10, 0, 0, n + 1),
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n) + 1),
        ),
        5 => (
            mac(6),
            Ipv4Addr::new(10, 0, 0, 6),
            "fd00::6".parse().unwrap(),
        ),
        6 => (
            MacAddr::BROADCAST,
            Ipv4Addr::BROADCAST,
            "ff02::1".parse().unwrap(),
        ),
        7 => (
            MacAddr([0x33, 0x33, 0xff, 0, 0, 2]),
            Ipv4Addr::UNSPECIFIED,
            Ipv6Addr::UNSPECIFIED,
        ),
        8 => (
            mac(9),
            Ipv4Addr::new(10, 0, 1, 9),
            "fe80::200:ff:fe00:1".parse().unwrap(),
        ),
        10 => (
            mac(7),
            Ipv4Addr::new(10, 0, 0, 7),
            "fd00::7".parse().unwrap(),
        ),
        _ => (
            MacAddr([1, 0, 0x5e, 0, 0, 1]),
            Ipv4Addr::new(224, 0, 0, 1),
            "ff02::1:ff00:2".parse().unwrap(),
        ),
    }
}

/// The frame a [`Packet`] describes.
fn frame(p: &Packet) -> Vec<u8> {
    let (smac, sip4, sip6) = addrs(p.src);
    let (dmac, dip4, dip6) = addrs(p.dst);
    let (ty, code) = p.icmp;
    let (sport, dport) = p.ports;
    let ip4 = L3::Ipv4 {
        src: sip4,
        dst: dip4,
        ttl: 64,
    };
    let ip6 = L3::Ipv6 {
        src: sip6,
        dst: dip6,
        hop_limit: 255,
    };
    let (l3, l4) = match p.kind % 11 {
        0 => (
            L3::Arp {
                op: u16::from(ty % 3),
                sha: (code % 4 != 0).then_some(smac),
                spa: sip4,
                tha: MacAddr([0; 6]),
                tpa: dip4,
            },
            L4::None,
        ),
        1 => (
            ip4,
            L4::Udp {
                src: sport,
                dst: dport,
            },
        ),
        2 => (
            ip4,
            L4::Tcp {
                src: sport,
                dst: dport,
                flags: 0x02,
            },
        ),
        3 => (ip4, L4::Icmp4 { ty: 8, code: 0 }),
        4 => (ip4, L4::Icmp4 { ty, code }),
        5 => (
            ip6,
            L4::Udp {
                src: sport,
                dst: dport,
            },
        ),
        6 => (ip6, L4::Icmp6 { ty: 128, code: 0 }),
        7 => (ip6, L4::Icmp6 { ty, code }),
        8 => (
            ip6,
            L4::NdNs {
                target: dip6,
                sll: (code % 2 == 0).then_some(smac),
            },
        ),
        9 => (
            ip6,
            L4::NdNa {
                target: sip6,
                tll: (code % 2 == 0).then_some(smac),
            },
        ),
        _ => (L3::Other(u16::from_be_bytes([ty, code])), L4::None),
    };
    let desc = FlowDesc {
        inport: None,
        eth_src: smac,
        eth_dst: dmac,
        vlan: p.vlan.map(|v| v & 0x0fff),
        l3,
        l4,
        payload: usize::from(p.payload % 1600),
    };
    let mut f = desc.to_frame().unwrap_or_else(|_| vec![0; 14]);
    for &(at, x) in &p.damage {
        if !f.is_empty() {
            let i = usize::from(at) % f.len();
            f[i] ^= x;
        }
    }
    if let Some(n) = p.cut {
        f.truncate(usize::from(n));
    }
    f
}

/// The frames each local port transmitted.
type Emitted = Vec<Vec<Vec<u8>>>;

/// A worker over in-memory ports, forwarding with `tables`.
struct Harness {
    worker: Worker<HeapPool>,
    ports: Vec<RingPortHandle>,
}

impl Harness {
    fn new(tables: Tables) -> Harness {
        let mut handles = Vec::new();
        let mut ports: Vec<Arc<dyn Port<HeapPool>>> = Vec::new();
        for i in 0..PORTS {
            let (p, h) = RingPort::new(&format!("p{i}"), 64);
            ports.push(Arc::new(p));
            handles.push(h);
        }
        let rx: Vec<PortId> = (0..PORTS as u16).map(PortId).collect();
        let worker = Worker::new(
            &ports,
            &rx,
            TablePublisher::new(tables),
            HeapPool::new(64, 2048),
            64,
        )
        .unwrap();
        Harness {
            worker,
            ports: handles,
        }
    }

    /// Sends `f` into port `from`; returns what each port emitted and the
    /// drops counted meanwhile.
    fn send(&mut self, from: PortId, f: &[u8]) -> (Emitted, Vec<(DropReason, u64)>) {
        let stats = self.worker.stats();
        let before: Vec<u64> = DropReason::all().map(|r| stats.drops(r)).collect();
        assert!(self.ports[from.get()].inject(f));
        while self.worker.poll() == 0 {}
        self.worker.flush();
        let drops = DropReason::all()
            .zip(before)
            .filter(|&(r, b)| stats.drops(r) != b)
            .map(|(r, b)| (r, stats.drops(r) - b))
            .collect();
        let out = self
            .ports
            .iter()
            .map(|h| std::iter::from_fn(|| h.take()).collect())
            .collect();
        (out, drops)
    }
}

/// An ARP request or neighbour solicitation of ours for a tunnel endpoint.
fn is_neighbor_request(f: &[u8]) -> bool {
    f.len() > 54
        && f[6..12] == US.0
        && (f[12..14] == [0x08, 0x06] || (f[12..14] == [0x86, 0xdd] && f[20] == 58 && f[54] == 135))
}

thread_local! {
    /// What the traces of a test run ended in (verdict kinds and drop
    /// reasons), so a run can show it reached the decisions it claims to
    /// test. Per thread: libtest runs each test on its own.
    static SEEN: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
}

fn seen(v: Verdict) {
    let what = match v {
        Verdict::Drop(r) => r.as_str().to_string(),
        Verdict::Output(_) => "output".into(),
        Verdict::Flood { .. } => "flood".into(),
        Verdict::Reply => "reply".into(),
        Verdict::Tunnel { .. } => "tunnel".into(),
        Verdict::Routed { .. } => "routed".into(),
        Verdict::RoutedTunnel { .. } => "routed_tunnel".into(),
        Verdict::Solicit { .. } => "solicit".into(),
        Verdict::Consumed => "consumed".into(),
    };
    SEEN.with(|s| s.borrow_mut().insert(what));
}

/// Fails unless the traces of the test run so far ended in each of `want`
/// (random runs only: a fuzzer's inputs are not ours to choose).
fn assert_seen(want: &[&str]) {
    if cfg!(fuzzing) {
        return;
    }
    let seen = SEEN.with(|s| s.borrow().clone());
    let missing: Vec<&&str> = want.iter().filter(|w| !seen.contains(**w)).collect();
    assert!(
        missing.is_empty(),
        "never reached {missing:?}; reached {seen:?}"
    );
}

/// Checks that the worker did what the trace says, for a packet received
/// on `from`.
fn agree(report: &TraceReport, from: PortId, out: &[Vec<Vec<u8>>], drops: &[(DropReason, u64)]) {
    seen(report.verdict);
    let ctx = || format!("trace {report:?}\nworker sent {out:02x?}, dropped {drops:?}");
    let mut sent: BTreeSet<PortId> = BTreeSet::new();
    for (p, frames) in out.iter().enumerate() {
        for f in frames {
            // Asking for an unresolved endpoint (at most once a second).
            if !(p == UPLINK.get() && is_neighbor_request(f)) {
                sent.insert(PortId(p as u16));
            }
        }
    }
    match report.verdict {
        Verdict::Drop(r) => {
            assert_eq!(drops, [(r, 1)], "{}", ctx());
            match r {
                // Path-MTU discovery: an ICMP error back to the sender.
                DropReason::TunnelMtu => assert!(sent.is_subset(&[from].into()), "{}", ctx()),
                _ => assert!(sent.is_empty(), "{}", ctx()),
            }
        }
        Verdict::Consumed => assert!(sent.is_empty() && drops.is_empty(), "{}", ctx()),
        // The packet is lost; its request goes out unless the worker's
        // rate limit (which a trace does not spend) held it back.
        Verdict::Solicit { .. } => {
            let want: BTreeSet<PortId> = report.outputs.iter().copied().collect();
            assert_eq!(drops, [(DropReason::NextHopUnresolved, 1)], "{}", ctx());
            assert!(sent == want || sent.is_empty(), "{}", ctx());
        }
        _ => {
            let want: BTreeSet<PortId> = report.outputs.iter().copied().collect();
            assert_eq!(sent, want, "{}", ctx());
            // Only a flood's tunnel copies may fail on their own.
            for (r, _) in drops {
                assert!(
                    matches!(report.verdict, Verdict::Flood { .. })
                        && matches!(r, DropReason::TunnelMtu | DropReason::NeighborUnresolved),
                    "{}",
                    ctx()
                );
            }
            if report.verdict == Verdict::Reply {
                assert_eq!(
                    out[from.get()],
                    std::slice::from_ref(&report.frame),
                    "{}",
                    ctx()
                );
            }
        }
    }
}

/// The full pipeline on what the worker's pipeline sees: a provider
/// port's frame untagged first.
fn uncached(tables: &Tables, port: PortId, f: &[u8]) -> Option<(Verdict, Vec<u8>)> {
    let mut b = HeapBuf::from_frame(f);
    if let Some(Some(vid)) = tables.port_vlan.get(port.get()) {
        provider_vlan::untag(&mut b, *vid, &mut NoTrace).ok()?;
    }
    let v = pipeline::decide(tables, &mut b, &mut PacketMeta::new(port), &mut NoTrace);
    Some((v, b.data().to_vec()))
}

fn cached(tables: &Tables, cache: &mut FlowCache, port: PortId, f: &[u8]) -> (Verdict, Vec<u8>) {
    let mut b = HeapBuf::from_frame(f);
    if let Some(Some(vid)) = tables.port_vlan.get(port.get()) {
        provider_vlan::untag(&mut b, *vid, &mut NoTrace).unwrap();
    }
    let v = pipeline::decide_cached(tables, cache, &mut b, port);
    (v, b.data().to_vec())
}

/// Tenant ingress: packets from VM ports and the provider network.
#[test]
fn tenant_ingress() {
    check!().with_type::<Case>().for_each(|case| {
        let tables = tables(&case.topology);
        let mut harness = Harness::new(self::tables(&case.topology));
        let mut cache = FlowCache::new(64);
        let neighbors = Neighbors::default();
        for p in case.packets.iter().take(8) {
            let port = [
                PortId(0),
                PortId(1),
                PortId(2),
                PROVIDER,
                PortId(5),
                PortId(6),
            ][usize::from(p.in_port % 6)];
            let f = frame(p);
            if let Some(want) = uncached(&tables, port, &f) {
                // Twice: the first fills the cache, the second hits it.
                assert_eq!(cached(&tables, &mut cache, port, &f), want, "{f:02x?}");
                assert_eq!(cached(&tables, &mut cache, port, &f), want, "{f:02x?}");
            }
            let report = pipeline::trace(&tables, &neighbors, port, HeapBuf::from_frame(&f));
            let (out, drops) = harness.send(port, &f);
            // The trace knows no learned neighbours: compare only while the
            // worker has learned none either (it learns from the uplink).
            agree(&report, port, &out, &drops);
        }
    });
    assert_seen(&[
        "output",
        "flood",
        "reply",
        "tunnel",
        "tunnel_mtu",
        "neighbor_unresolved",
        "provider_vlan_mismatch",
        "port_security_ip",
        "port_security_mac",
        "unknown_unicast",
        "no_local_port",
    ]);
}

/// What hv2 sends: `inner` in a tunnel to datapath 7 from vm5.
fn tunnelled(t: &Topology, inner: &[u8], egress: u16) -> Vec<u8> {
    let (us, hv2) = endpoints::endpoints(t.ipv6_underlay);
    let mut b = HeapBuf::from_frame(inner);
    let tunnel = Tunnel {
        encap: if t.geneve {
            Encap::Geneve
        } else {
            Encap::Vxlan
        },
        src_mac: HV2,
        dst_mac: US,
        src_ip: hv2,
        dst_ip: us,
        datapath_key: 7,
        ingress_key: 5,
        egress_key: egress,
        csum: t.csum,
    };
    assert!(overlay::encapsulate(&mut b, &tunnel));
    b.data().to_vec()
}

/// Uplink receive: tunnel packets from hv2 (to a port, to the flood group,
/// to no one), damaged or not, and bare frames.
#[test]
fn uplink_receive() {
    check!().with_type::<UplinkCase>().for_each(|case| {
        let t = &case.topology;
        let tables = tables(t);
        let mut harness = Harness::new(self::tables(&case.topology));
        for (p, raw, egress, damage_outer) in case.frames.iter().take(8) {
            let inner = frame(p);
            let mut f = if *raw {
                inner
            } else {
                let egress = [1, 2, 3, 6, MC_FLOOD, *egress][usize::from(*egress % 6)];
                tunnelled(t, &inner, egress)
            };
            if *damage_outer != 0 && !f.is_empty() {
                let i = usize::from(*damage_outer) % f.len().min(80);
                f[i] ^= damage_outer;
            }
            let report = pipeline::trace_uplink(&tables, HeapBuf::from_frame(&f));
            let (out, drops) = harness.send(UPLINK, &f);
            agree(&report, UPLINK, &out, &drops);
        }
    });
    assert_seen(&["output", "flood", "consumed", "tunnel_malformed"]);
}

/// A topology that reaches every worker-side decision.
fn plain() -> Topology {
    Topology {
        ipv6_underlay: false,
        geneve: true,
        csum: false,
        remote_mac_known: true,
        vlan: Some(41),
        mtu_above_1280: 220,
        vm1_security: 0,
        vm2_secured: true,
        unknown_port: true,
    }
}

/// UDP over IPv4 from address `src` to `dst` (indices into [`addrs`]).
fn udp(src: u8, dst: u8, payload: u16, vlan: Option<u16>) -> Vec<u8> {
    frame(&udp_packet(src, dst, payload, vlan))
}

fn udp_packet(src: u8, dst: u8, payload: u16, vlan: Option<u16>) -> Packet {
    Packet {
        in_port: 0,
        src,
        dst,
        kind: 1,
        vlan,
        ports: (4000, 53),
        icmp: (0, 0),
        payload,
        damage: vec![],
        cut: None,
    }
}

/// Traces `f` from local port `from`, sends it through a worker, checks
/// they agree, and returns the trace's verdict and what the worker sent.
fn trace_and_send(t: &Topology, from: PortId, f: &[u8]) -> (Verdict, Emitted) {
    let report = pipeline::trace(
        &tables(t),
        &Neighbors::default(),
        from,
        HeapBuf::from_frame(f),
    );
    let (out, drops) = Harness::new(tables(t)).send(from, f);
    agree(&report, from, &out, &drops);
    (report.verdict, out)
}

#[test]
fn tunnel_mtu_is_traced_as_the_worker_counts_it() {
    let t = plain();
    // vm1 -> vm5 on hv2 over IPv6: a 1512-byte frame does not fit a
    // 1500-byte underlay MTU with Geneve's overhead (IPv4 without DF gets
    // no ICMP error: the random tests cover it); a 1062-byte one does.
    let udp6 = |payload| {
        frame(&Packet {
            kind: 5,
            ..udp_packet(0, 4, payload, None)
        })
    };
    let (v, out) = trace_and_send(&t, VM1, &udp6(1450));
    assert_eq!(v, Verdict::Drop(DropReason::TunnelMtu));
    assert_eq!(out[VM1.get()].len(), 1, "packet too big goes back to vm1");
    let (v, _) = trace_and_send(&t, VM1, &udp6(1000));
    assert!(matches!(v, Verdict::Tunnel { .. }), "{v:?}");
}

#[test]
fn neighbor_unresolved_is_traced_as_the_worker_counts_it() {
    let t = Topology {
        remote_mac_known: false,
        ..plain()
    };
    let (v, out) = trace_and_send(&t, VM1, &udp(0, 4, 100, None));
    assert_eq!(v, Verdict::Drop(DropReason::NeighborUnresolved));
    assert!(
        out[UPLINK.get()].iter().all(|f| is_neighbor_request(f)) && !out[UPLINK.get()].is_empty(),
        "the uplink asks for hv2's MAC"
    );
}

#[test]
fn provider_vlan_mismatch_is_traced_as_the_worker_counts_it() {
    let t = plain();
    // The provider network is VLAN 42: untagged and other tags are dropped,
    // its own tag is taken off and the frame switched.
    for vlan in [None, Some(7)] {
        let (v, _) = trace_and_send(&t, PROVIDER, &udp(5, 0, 100, vlan));
        assert_eq!(
            v,
            Verdict::Drop(DropReason::ProviderVlanMismatch),
            "{vlan:?}"
        );
    }
    let (v, out) = trace_and_send(&t, PROVIDER, &udp(5, 10, 100, Some(42)));
    assert_eq!(v, Verdict::Output(PortId(6)));
    assert_eq!(out[6], [udp(5, 10, 100, None)], "to vm7, untagged");
}
