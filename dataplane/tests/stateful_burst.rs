//! A stateful port's bursts through a [`Worker`] (which probes the burst's
//! conntrack keys and prefetches their entries first) against the same
//! packets decided one by one with the flow cache, each side with its own
//! table: the same frames out of each port, in order, and the same
//! connections afterwards. The bursts mix new connections, established
//! traffic the cache holds under conntrack checks (the re-check that takes
//! the pre-pass's probe), replies, VLAN-tagged, IPv6, ICMP and truncated
//! frames, so both the fixed-offset probe and the general one are taken.

use std::collections::BTreeMap;
use std::sync::Arc;

use dataplane::cache::FlowCache;
use dataplane::classifier::{Acl, AclAction, AclConfig, Direction, Stateful};
use dataplane::conntrack::Conntrack;
use dataplane::engine::Worker;
use dataplane::flow::FlowDesc;
use dataplane::ids::PortId;
use dataplane::packet::{HeapBuf, HeapPool, PacketBuf};
use dataplane::pipeline::{self, Verdict};
use dataplane::port::memory::{RingPort, RingPortHandle};
use dataplane::port::Port;
use dataplane::tables::{LogicalPort, LogicalSwitch, TablePublisher, Tables};

const VM1: &str =
    "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2";
const VM2: &str =
    "eth.src=00:00:00:00:00:02 eth.dst=00:00:00:00:00:01 ip4.src=10.0.0.2 ip4.dst=10.0.0.1";
const VM1_6: &str =
    "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip6.src=fd00::1 ip6.dst=fd00::2";

fn acl(priority: u16, direction: Direction, action: AclAction, m: &str) -> Acl {
    Acl {
        name: format!("acl{priority}"),
        priority,
        direction,
        action,
        match_text: m.into(),
        expr: ovn_expr::parse(m).unwrap(),
        log: false,
        severity: Default::default(),
        meter: None,
        switches: vec!["ls".into()],
    }
}

/// vm1 (port 0) and vm2 (port 1) under a Neutron-shaped security group:
/// everything out allowed and tracked, into vm2 only UDP 53 and TCP 22.
fn tables() -> (Tables, Arc<Stateful>) {
    let port = |name: &str, key: u32, addr: &str, local: u16| LogicalPort {
        local_port: Some(PortId(local)),
        ..LogicalPort::vif(name, key, addr.parse().unwrap(), true)
    };
    let mut t = Tables::compile(&[LogicalSwitch {
        name: "ls".into(),
        tunnel_key: 1,
        ports: vec![
            port("vm1", 1, "00:00:00:00:00:01 10.0.0.1 fd00::1", 0),
            port("vm2", 2, "00:00:00:00:00:02 10.0.0.2 fd00::2", 1),
        ],
    }])
    .unwrap();
    let st = Stateful::new(Conntrack::new(1000, 16));
    use AclAction::*;
    use Direction::*;
    let acls = vec![
        acl(1001, FromLport, Drop, "inport == @pg && ip"),
        acl(1001, ToLport, Drop, "outport == @pg && ip"),
        acl(1002, FromLport, AllowRelated, "inport == @pg && ip"),
        acl(
            1002,
            ToLport,
            AllowRelated,
            "outport == @pg && (udp.dst == 53 || tcp.dst == 22)",
        ),
    ];
    let cfg = AclConfig {
        acls,
        port_groups: BTreeMap::from([("pg".into(), vec!["vm1".into(), "vm2".into()])]),
        address_sets: BTreeMap::new(),
    };
    let errors = t.install_acls(&cfg, &st);
    assert!(errors.is_empty(), "{errors:?}");
    (t, st)
}

fn frame(desc: &str) -> Vec<u8> {
    desc.parse::<FlowDesc>().unwrap().to_frame().unwrap()
}

/// The bursts: (port, frame) in the order they are sent.
fn bursts() -> Vec<Vec<(u16, Vec<u8>)>> {
    let udp = |i: u16| frame(&format!("{VM1} udp.src={} udp.dst=53", 5000 + i));
    let tcp = |i: u16, flags: u8| {
        frame(&format!(
            "{VM1} tcp.src={} tcp.dst=22 tcp.flags={flags}",
            40000 + i
        ))
    };
    let reply = |i: u16| frame(&format!("{VM2} udp.src=53 udp.dst={}", 5000 + i));
    let mut truncated = udp(99);
    truncated.truncate(40);
    let first: Vec<_> = (0..20)
        .map(udp)
        .chain((0..6).map(|i| tcp(i, 0x02)))
        .chain([
            frame(&format!("{VM1} icmp4")),
            frame(&format!("{VM1_6} udp.src=7 udp.dst=53")),
            frame(&format!("{VM1} vlan.vid=5 udp.src=1 udp.dst=53")),
            truncated,
        ])
        .map(|f| (0, f))
        .collect();
    // Established traffic (cache hits with conntrack checks) beside new
    // connections, twice over, then replies and more of the same.
    let second: Vec<_> = (0..32)
        .map(|i| {
            (
                0,
                if i % 4 == 3 {
                    udp(100 + i)
                } else {
                    udp(i % 20)
                },
            )
        })
        .collect();
    let third: Vec<_> = (0..32)
        .map(|i| match i % 3 {
            0 => (1, reply(i % 20)),
            1 => (0, udp(i % 20)),
            _ => (0, frame(&format!("{VM1_6} udp.src=7 udp.dst=53"))),
        })
        .collect();
    vec![first, second.clone(), second, third]
}

/// Connections as the dump lists them, in an order of their own.
fn connections(st: &Stateful) -> Vec<String> {
    let mut v: Vec<String> = st
        .conntrack
        .dump(None)
        .iter()
        .map(|c| format!("{c:?}"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_prepared_burst_decides_as_packets_one_by_one() {
    let (worker_tables, worker_st) = tables();
    let (tables, st) = tables();
    let mut handles: Vec<RingPortHandle> = Vec::new();
    let mut ports: Vec<Arc<dyn Port<HeapPool>>> = Vec::new();
    for i in 0..2 {
        let (p, h) = RingPort::new(&format!("p{i}"), 64);
        ports.push(Arc::new(p));
        handles.push(h);
    }
    let mut worker = Worker::new(
        &ports,
        &[PortId(0), PortId(1)],
        TablePublisher::new(worker_tables),
        HeapPool::new(256, 2048),
        64,
    )
    .unwrap();
    let mut cache = FlowCache::new(64);
    let mut established = 0;
    for burst in bursts() {
        let mut want: [Vec<Vec<u8>>; 2] = Default::default();
        // One port's packets form one burst: port 0's first, then port 1's,
        // as the worker polls them.
        for from in [0, 1] {
            for (_, f) in burst.iter().filter(|(p, _)| *p == from) {
                let hits = cache.hits;
                let mut b = HeapBuf::from_frame(f);
                let v = pipeline::decide_cached(&tables, &mut cache, &mut b, PortId(from));
                // A hit forwarded between the two stateful ports: one that
                // held under conntrack checks.
                established += usize::from(cache.hits > hits && matches!(v, Verdict::Output(_)));
                if let Verdict::Output(p) = v {
                    want[p.get()].push(b.data().to_vec());
                }
            }
        }
        for (from, f) in &burst {
            assert!(handles[usize::from(*from)].inject(f));
        }
        let mut polled = 0;
        while polled < burst.len() {
            polled += worker.poll();
        }
        worker.flush();
        for (p, want) in want.iter().enumerate() {
            let got: Vec<Vec<u8>> = std::iter::from_fn(|| handles[p].take()).collect();
            assert_eq!(&got, want, "port {p}");
        }
        assert_eq!(connections(&worker_st), connections(&st));
    }
    // The bursts took the paths they are meant to test.
    assert!(established >= 40, "{established} established hits");
    assert!(connections(&st).len() >= 30);
}
