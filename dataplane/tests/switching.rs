//! L2 logical switching through the public API: an engine with one worker
//! over in-memory ring ports, programmed with the typed table API, checked
//! on the frames that come out of each port.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dataplane::drop::DropReason;
use dataplane::engine::{Engine, EngineConfig};
use dataplane::flow::FlowDesc;
use dataplane::ids::PortId;
use dataplane::packet::HeapPool;
use dataplane::port::memory::{RingPort, RingPortHandle};
use dataplane::port::Port;
use dataplane::tables::{LogicalPort, LogicalSwitch, PortType, TablePublisher, Tables};
use dataplane::wire::{checksum, layout};

fn frame(desc: &str) -> Vec<u8> {
    desc.parse::<FlowDesc>().unwrap().to_frame().unwrap()
}

fn lport(name: &str, key: u32, addr: &str, ps: bool, local: u16) -> LogicalPort {
    LogicalPort {
        local_port: Some(PortId(local)),
        ..LogicalPort::vif(name, key, addr.parse().unwrap(), ps)
    }
}

/// Switch "ls1": vm1..vm3 with addresses and port security, "any" with
/// "unknown" addresses. Switch "ls2": vm4, isolated from ls1.
fn topology() -> Vec<LogicalSwitch> {
    vec![
        LogicalSwitch {
            name: "ls1".into(),
            tunnel_key: 1,
            ports: vec![
                lport("vm1", 1, "00:00:00:00:00:01 10.0.0.1 fd00::1", true, 0),
                lport("vm2", 2, "00:00:00:00:00:02 10.0.0.2 fd00::2", true, 1),
                lport("vm3", 3, "00:00:00:00:00:03 10.0.0.3", true, 2),
                lport("any", 4, "unknown", false, 3),
            ],
        },
        LogicalSwitch {
            name: "ls2".into(),
            tunnel_key: 2,
            ports: vec![lport("vm4", 1, "00:00:00:00:00:04 10.0.0.4", true, 4)],
        },
    ]
}

struct Harness {
    engine: Engine<HeapPool>,
    ports: Vec<RingPortHandle>,
}

impl Harness {
    fn new(switches: Vec<LogicalSwitch>) -> Harness {
        let mut handles = Vec::new();
        let mut ports: Vec<Arc<dyn Port<HeapPool>>> = Vec::new();
        for i in 0..5 {
            let (p, h) = RingPort::new(&format!("p{i}"), 256);
            ports.push(Arc::new(p));
            handles.push(h);
        }
        let engine = Engine::start(
            &EngineConfig {
                workers: 1,
                idle_sleep: Some(Duration::from_micros(20)),
                ..EngineConfig::default()
            },
            ports,
            TablePublisher::new(Tables::compile(&switches).unwrap()),
            |_| HeapPool::new(256, 2048),
        )
        .unwrap();
        Harness {
            engine,
            ports: handles,
        }
    }

    fn processed(&self) -> u64 {
        self.engine
            .workers()
            .iter()
            .map(|w| w.rx_packets.load(Ordering::Acquire))
            .sum()
    }

    /// Sends `f` into port `from`, waits until the worker has processed
    /// and transmitted it, and returns what each port emitted.
    fn send(&self, from: usize, f: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let before = self.processed();
        assert!(self.ports[from].inject(f));
        common::wait_until("the packet to be processed", || self.processed() != before);
        self.ports
            .iter()
            .map(|h| std::iter::from_fn(|| h.take()).collect())
            .collect()
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.engine.drops(r)
    }
}

const M1: &str = "00:00:00:00:00:01";
const M2: &str = "00:00:00:00:00:02";

#[test]
fn known_unicast_goes_to_one_port_unchanged() {
    let h = Harness::new(topology());
    let f = frame(&format!(
        "eth.src={M1} eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53"
    ));
    let out = h.send(0, &f);
    assert_eq!(out[1], vec![f.clone()]);
    assert!([0, 2, 3, 4].iter().all(|&p| out[p].is_empty()));
    // Second time through the flow cache: same result.
    assert_eq!(h.send(0, &f)[1], vec![f]);
}

#[test]
fn broadcast_floods_within_the_switch_only() {
    let h = Harness::new(topology());
    let f = frame(&format!(
        "eth.src={M1} eth.dst=ff:ff:ff:ff:ff:ff ip4.src=10.0.0.1 ip4.dst=10.0.0.255 udp.dst=137"
    ));
    let out = h.send(0, &f);
    assert!(out[0].is_empty(), "flooded back to the ingress port");
    for (p, got) in out.iter().enumerate().take(4).skip(1) {
        assert_eq!(got, &vec![f.clone()], "port {p}");
    }
    assert!(out[4].is_empty(), "leaked to another logical switch");
}

#[test]
fn unknown_unicast_goes_to_unknown_ports_or_is_dropped() {
    let h = Harness::new(topology());
    let f = frame(&format!(
        "eth.src={M1} eth.dst=00:00:00:00:00:99 ip4.src=10.0.0.1 ip4.dst=10.0.0.9 udp.dst=53"
    ));
    let out = h.send(0, &f);
    assert_eq!(out[3], vec![f]);
    assert!(out[1].is_empty() && out[2].is_empty());
    // ls2 has no "unknown" port: dropped with its reason.
    let f = frame("eth.src=00:00:00:00:00:04 eth.dst=00:00:00:00:00:99 ip4.src=10.0.0.4 ip4.dst=10.0.0.9 udp.dst=53");
    let out = h.send(4, &f);
    assert!(out.iter().all(Vec::is_empty));
    assert_eq!(h.drops(DropReason::UnknownUnicast), 1);
}

#[test]
fn port_security_drops_spoofed_sources_with_reasons() {
    let h = Harness::new(topology());
    let cases = [
        (format!("eth.src=00:00:00:00:00:66 eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53"), DropReason::PortSecurityMac),
        (format!("eth.src={M1} eth.dst={M2} ip4.src=10.0.0.66 ip4.dst=10.0.0.2 udp.dst=53"), DropReason::PortSecurityIp),
        (format!("eth.src={M1} eth.dst={M2} ip6.src=fd00::66 ip6.dst=fd00::2 udp.dst=53"), DropReason::PortSecurityIp),
        (format!("arp eth.src={M1} eth.dst=ff:ff:ff:ff:ff:ff arp.sha={M1} arp.spa=10.0.0.66 arp.tpa=10.0.0.2"), DropReason::PortSecurityArp),
        (format!("arp eth.src={M1} eth.dst=ff:ff:ff:ff:ff:ff arp.sha=00:00:00:00:00:66 arp.spa=10.0.0.1 arp.tpa=10.0.0.2"), DropReason::PortSecurityArp),
        (format!("eth.src={M1} eth.dst=33:33:ff:00:00:02 ip6.src=fd00::1 ip6.dst=ff02::1:ff00:2 nd_ns nd.target=fd00::2 nd.sll=00:00:00:00:00:66"), DropReason::PortSecurityNd),
        (format!("eth.src={M1} eth.dst={M2} ip6.src=fd00::1 ip6.dst=fd00::2 nd_na nd.target=fd00::66 nd.tll={M1}"), DropReason::PortSecurityNd),
        (format!("eth.src=01:00:00:00:00:01 eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53"), DropReason::EthSrcMulticast),
        (format!("vlan.vid=10 eth.src={M1} eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53"), DropReason::VlanTagged),
        (format!("eth.src={M1} eth.dst={M1} ip4.src=10.0.0.1 ip4.dst=10.0.0.1 udp.dst=53"), DropReason::Hairpin),
        // Egress port security: vm2 only receives traffic for 10.0.0.2.
        (format!("eth.src={M1} eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.77 udp.dst=53"), DropReason::PortSecurityEgress),
    ];
    for (desc, reason) in cases {
        let before = h.drops(reason);
        let out = h.send(0, &frame(&desc));
        assert!(out.iter().all(Vec::is_empty), "{desc} was forwarded");
        assert_eq!(
            h.drops(reason),
            before + 1,
            "{desc} not counted as {reason:?}"
        );
    }
    // DHCP discover from 0.0.0.0 passes port security.
    let f = frame(&format!("eth.src={M1} eth.dst=ff:ff:ff:ff:ff:ff ip4.src=0.0.0.0 ip4.dst=255.255.255.255 udp.src=68 udp.dst=67"));
    assert_eq!(h.send(0, &f)[3], vec![f]);
}

#[test]
fn arp_and_nd_requests_are_answered_by_the_switch() {
    let h = Harness::new(topology());
    let req = frame(&format!(
        "arp eth.src={M1} eth.dst=ff:ff:ff:ff:ff:ff arp.sha={M1} arp.spa=10.0.0.1 arp.tpa=10.0.0.2"
    ));
    let out = h.send(0, &req);
    assert!(
        out[1].is_empty() && out[2].is_empty() && out[3].is_empty(),
        "ARP request was flooded"
    );
    let want = frame(&format!("arp arp.op=2 eth.src={M2} eth.dst={M1} arp.sha={M2} arp.spa=10.0.0.2 arp.tha={M1} arp.tpa=10.0.0.1"));
    assert_eq!(out[0], vec![want]);

    // A request for an address nobody owns is flooded like any broadcast.
    let req = frame(&format!("arp eth.src={M1} eth.dst=ff:ff:ff:ff:ff:ff arp.sha={M1} arp.spa=10.0.0.1 arp.tpa=10.0.0.50"));
    let out = h.send(0, &req);
    assert!(out[0].is_empty());
    assert_eq!(out[3], vec![req]);

    // IPv6 NS for fd00::2: an NA from the switch, checksum valid.
    let ns = frame(&format!("eth.src={M1} eth.dst=33:33:ff:00:00:02 ip6.src=fd00::1 ip6.dst=ff02::1:ff00:2 nd_ns nd.target=fd00::2 nd.sll={M1}"));
    let out = h.send(0, &ns);
    assert!(out[1].is_empty() && out[3].is_empty(), "NS was flooded");
    assert_eq!(out[0].len(), 1);
    let na = &out[0][0];
    let lay = layout::parse(na).unwrap();
    assert!(checksum::verify_l4(na, &lay).unwrap(), "bad NA checksum");
    let mut want = frame(&format!("eth.src={M2} eth.dst={M1} ip6.src=fd00::2 ip6.dst=fd00::1 ip.ttl=255 nd_na nd.target=fd00::2 nd.tll={M2}"));
    want[lay.l4 as usize + 4] = 0x60; // solicited + override
    checksum::fill_l4(&mut want, &lay).unwrap();
    assert_eq!(na, &want);
}

#[test]
fn localnet_requests_are_not_answered() {
    let mut topo = topology();
    topo[0].ports[3].port_type = PortType::Localnet;
    let h = Harness::new(topo);
    let req = frame("arp eth.src=00:00:00:00:00:aa eth.dst=ff:ff:ff:ff:ff:ff arp.sha=00:00:00:00:00:aa arp.spa=10.0.0.200 arp.tpa=10.0.0.2");
    let out = h.send(3, &req);
    assert!(
        out[3].is_empty(),
        "answered a request from the localnet port"
    );
    assert_eq!(out[1], vec![req]);
}

#[test]
fn publishing_tables_reprograms_running_workers() {
    let h = Harness::new(topology());
    let f = frame(&format!(
        "eth.src={M1} eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53"
    ));
    assert_eq!(h.send(0, &f)[1].len(), 1);
    // Move vm2 to local port 2: the cached decision must not survive.
    let mut topo = topology();
    topo[0].ports[1].local_port = Some(PortId(2));
    topo[0].ports[2].local_port = None;
    let g = h
        .engine
        .publisher()
        .publish(Tables::compile(&topo).unwrap());
    // A worker mid-round may still use the old tables for what it already
    // polled; the next packet after it switched must use the new ones.
    assert!(h.engine.wait_for_tables(g, Duration::from_secs(5)));
    let out = h.send(0, &f);
    assert!(out[1].is_empty());
    assert_eq!(out[2], vec![f]);
}

#[test]
fn malformed_frames_are_dropped_and_counted() {
    let h = Harness::new(topology());
    let good = frame(&format!(
        "eth.src={M1} eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53"
    ));
    let total = |h: &Harness| DropReason::all().map(|r| h.drops(r)).sum::<u64>();
    let before = total(&h);
    for f in [&good[..10], &good[..20], &good[..40]] {
        let out = h.send(0, f);
        assert!(out.iter().all(Vec::is_empty));
    }
    assert_eq!(total(&h), before + 3);
    assert_eq!(
        h.drops(DropReason::Malformed(layout::Malformed::EthernetRunt)),
        1
    );
    assert_eq!(
        h.drops(DropReason::Malformed(layout::Malformed::Ipv4Truncated)),
        1
    );
    assert_eq!(
        h.drops(DropReason::Malformed(layout::Malformed::Ipv4BadTotalLength)),
        1
    );
}

/// Ports plugged and unplugged while two workers run: a new port's rx queue
/// is polled and it can be sent to once tables name it; after removal the
/// id is free again and nothing reaches the old port.
#[test]
fn ports_come_and_go_while_workers_run() {
    let (p0, h0) = RingPort::new("p0", 64);
    let engine = Engine::start(
        &EngineConfig {
            workers: 2,
            idle_sleep: Some(Duration::from_micros(20)),
            ..EngineConfig::default()
        },
        vec![Arc::new(p0) as Arc<dyn Port<HeapPool>>],
        TablePublisher::new(Tables::default()),
        |_| HeapPool::new(256, 2048),
    )
    .unwrap();
    let (p1, h1) = RingPort::new("p1", 64);
    let id = engine.add_port(Arc::new(p1)).unwrap();
    assert_eq!(id, PortId(1));
    let switches = vec![LogicalSwitch {
        name: "ls1".into(),
        tunnel_key: 1,
        ports: vec![
            lport("vm1", 1, "00:00:00:00:00:01 10.0.0.1", true, 0),
            lport("vm2", 2, "00:00:00:00:00:02 10.0.0.2", true, id.0),
        ],
    }];
    let g = engine
        .publisher()
        .publish(Tables::compile(&switches).unwrap());
    assert!(engine.wait_for_tables(g, Duration::from_secs(5)));
    let there = frame(&format!(
        "eth.src={M1} eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53"
    ));
    let back = frame(&format!(
        "eth.src={M2} eth.dst={M1} ip4.src=10.0.0.2 ip4.dst=10.0.0.1 udp.dst=53"
    ));
    let wait_for = |h: &RingPortHandle| common::wait_for("a frame", || h.take());
    assert!(h0.inject(&there));
    assert_eq!(wait_for(&h1), there);
    // The new port's rx queue is polled too.
    assert!(h1.inject(&back));
    assert_eq!(wait_for(&h0), back);

    let g = engine.publisher().publish(Tables::default());
    assert!(engine.wait_for_tables(g, Duration::from_secs(5)));
    assert!(engine.remove_port(id).is_some());
    assert!(engine.remove_port(id).is_none());
    assert!(engine.ports()[1].is_none());
    let (p2, _h2) = RingPort::new("p2", 64);
    assert_eq!(engine.add_port(Arc::new(p2)).unwrap(), PortId(1));
    let received = || -> u64 {
        engine
            .workers()
            .iter()
            .map(|w| w.rx_packets.load(Ordering::Acquire))
            .sum()
    };
    let before = received();
    assert!(h1.inject(&back));
    // A worker takes up a new table generation at the start of a poll
    // round. Once every worker has taken up the second of two generations
    // published after the frame was queued, each has run a whole round
    // that began after it: had any still polled the removed port, it
    // would have received the frame and counted it.
    for _ in 0..2 {
        let g = engine.publisher().publish(Tables::default());
        assert!(engine.wait_for_tables(g, Duration::from_secs(5)));
    }
    assert_eq!(received(), before, "the removed port is no longer polled");
    assert!(h0.take().is_none());
}
