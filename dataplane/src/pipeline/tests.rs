//! The pipeline against itself: cached against uncached verdicts.

use super::*;
use crate::flow::FlowDesc;
use crate::ids::DatapathIdx;
use crate::packet::HeapBuf;
use crate::tables::{LogicalPort, LogicalSwitch};

fn lport(name: &str, key: u32, addr: &str, ps: bool, local: PortId) -> LogicalPort {
    LogicalPort {
        local_port: Some(local),
        ..LogicalPort::vif(name, key, addr.parse().unwrap(), ps)
    }
}

/// Port-secured VM `i` (1 or 2) with IPv4 and IPv6 addresses, on local
/// port `i - 1`.
fn vm(i: u16) -> LogicalPort {
    let addr = format!("00:00:00:00:00:0{i} 10.0.0.{i} fd00::{i}");
    lport(&format!("vm{i}"), u32::from(i), &addr, true, PortId(i - 1))
}

/// The flow cache answers exactly what the full pipeline answers, on
/// its first sight of a packet and on every later one, for frames that
/// differ from each other in one field at a time.
#[test]
fn cached_verdicts_equal_the_full_pipeline() {
    let tables = Tables::compile(&[LogicalSwitch {
        name: "ls".into(),
        tunnel_key: 1,
        ports: vec![
            vm(1),
            vm(2),
            lport("vm3", 3, "00:00:00:00:00:03 10.0.0.3", false, PortId(2)),
            lport("any", 4, "unknown", false, PortId(3)),
        ],
    }])
    .unwrap();
    let mut frames = Vec::new();
    for src in [
        "00:00:00:00:00:01",
        "00:00:00:00:00:03",
        "00:00:00:00:00:09",
    ] {
        for dst in [
            "00:00:00:00:00:01",
            "00:00:00:00:00:02",
            "00:00:00:00:00:07",
            "ff:ff:ff:ff:ff:ff",
        ] {
            let eth = format!("eth.src={src} eth.dst={dst}");
            for l3 in [
                "ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53",
                "ip4.src=10.0.0.3 ip4.dst=10.0.0.2 udp.dst=53",
                "ip4.src=10.0.0.1 ip4.dst=10.0.0.3 tcp.dst=80",
                "ip4.src=10.9.0.1 ip4.dst=10.0.0.2 udp.dst=53",
                "ip4.src=0.0.0.0 ip4.dst=255.255.255.255 udp.src=68 udp.dst=67",
                "ip6.src=fd00::1 ip6.dst=fd00::2 udp.dst=53",
                "ip6.src=fd00::9 ip6.dst=fd00::2 udp.dst=53",
                "ip6.src=fd00::1 ip6.dst=fd00::3 tcp.dst=80",
                "arp arp.spa=10.0.0.1 arp.tpa=10.0.0.2",
                "eth.type=0x88b5",
                "eth.type=0x88b6",
                "vlan.vid=7 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53",
            ] {
                let f = format!("{eth} {l3}").parse::<FlowDesc>().unwrap();
                frames.push(f.to_frame().unwrap());
            }
        }
    }
    // Small enough that sets overflow and entries get replaced, large
    // enough that later rounds hit.
    let mut cache = FlowCache::new(512);
    for round in 0..3 {
        for f in &frames {
            for in_port in 0..5 {
                let mut reference = HeapBuf::from_frame(f);
                let want = decide(
                    &tables,
                    &mut reference,
                    &mut PacketMeta::new(PortId(in_port)),
                    &mut NoTrace,
                );
                let mut buf = HeapBuf::from_frame(f);
                let got = decide_cached(&tables, &mut cache, &mut buf, PortId(in_port));
                assert_eq!(got, want, "round {round}, in_port {in_port}: {f:02x?}");
                assert_eq!(buf.data(), reference.data());
            }
        }
    }
    assert!(cache.hits > 0);
}

/// The decapsulation cache answers what [`tunnel_delivery`] answers, for
/// two datapaths sharing MACs, every kind of egress and inner frames
/// that differ in one field at a time.
#[test]
fn cached_deliveries_equal_the_uncached_ones() {
    use crate::overlay::{Egress, Received, MC_FLOOD, MC_UNKNOWN};
    let tables = Tables::compile(&[
        LogicalSwitch {
            name: "ls1".into(),
            tunnel_key: 1,
            ports: vec![
                lport(
                    "a1",
                    1,
                    "00:00:00:00:00:01 10.0.0.1 fd00::1",
                    true,
                    PortId(0),
                ),
                lport("a2", 2, "00:00:00:00:00:02 10.0.0.2", false, PortId(1)),
                lport("a3", 3, "unknown", false, PortId(2)),
            ],
        },
        LogicalSwitch {
            name: "ls2".into(),
            tunnel_key: 2,
            ports: vec![
                lport("b1", 1, "00:00:00:00:00:01 10.0.0.1", false, PortId(3)),
                lport(
                    "b2",
                    2,
                    "00:00:00:00:00:02 10.0.0.2 fd00::2",
                    true,
                    PortId(4),
                ),
            ],
        },
    ])
    .unwrap();
    let mut frames = Vec::new();
    for dst in [
        "00:00:00:00:00:01",
        "00:00:00:00:00:02",
        "00:00:00:00:00:07",
        "ff:ff:ff:ff:ff:ff",
    ] {
        for l3 in [
            "ip4.src=10.0.0.9 ip4.dst=10.0.0.1 udp.dst=53",
            "ip4.src=10.0.0.9 ip4.dst=10.0.0.2 udp.dst=53",
            "ip4.src=10.0.0.9 ip4.dst=10.0.0.5 tcp.dst=80",
            "ip6.src=fd00::9 ip6.dst=fd00::1 udp.dst=53",
            "ip6.src=fd00::9 ip6.dst=fd00::2 udp.dst=53",
            "arp arp.spa=10.0.0.9 arp.tpa=10.0.0.1",
            "eth.type=0x88b5",
            "vlan.vid=7 ip4.src=10.0.0.9 ip4.dst=10.0.0.1 udp.dst=53",
        ] {
            let f = format!("eth.src=00:00:00:00:00:09 eth.dst={dst} {l3}");
            frames.push(f.parse::<FlowDesc>().unwrap().to_frame().unwrap());
        }
    }
    frames.push(vec![0; 10]); // malformed
    let egresses = [
        Egress::Port(1),
        Egress::Port(2),
        Egress::Port(3),
        Egress::Port(9),
        Egress::Group(MC_FLOOD),
        Egress::Group(MC_UNKNOWN),
        Egress::Lookup,
    ];
    let mut cache = FlowCache::new(64);
    for round in 0..3 {
        for f in &frames {
            for datapath in [DatapathIdx(0), DatapathIdx(1)] {
                for egress in egresses {
                    let r = Received {
                        datapath,
                        ingress_key: 5,
                        egress,
                        outer_len: 0,
                    };
                    let (want, _) = tunnel_delivery(&tables, f, &r, &mut NoTrace);
                    let got = tunnel_delivery_cached(&tables, &mut cache, f, &r);
                    assert_eq!(got, want, "round {round}, {r:?}: {f:02x?}");
                }
            }
        }
    }
    assert!(cache.hits > 0);
}

/// Ordinary IPv4 and IPv6 traffic between port-secured ports is cached:
/// its stages read nothing beyond the key (an ICMPv6 check records the
/// protocol, not neighbour discovery, for a UDP packet).
#[test]
fn ordinary_ip_traffic_is_cached() {
    let tables = Tables::compile(&[LogicalSwitch {
        name: "ls".into(),
        tunnel_key: 1,
        ports: vec![vm(1), vm(2)],
    }])
    .unwrap();
    for l3 in [
        "ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53",
        "ip6.src=fd00::1 ip6.dst=fd00::2 udp.dst=53",
    ] {
        let f = format!("eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 {l3}")
            .parse::<FlowDesc>()
            .unwrap()
            .to_frame()
            .unwrap();
        let mut cache = FlowCache::new(64);
        for _ in 0..2 {
            let v = decide_cached(&tables, &mut cache, &mut HeapBuf::from_frame(&f), PortId(0));
            assert_eq!(v, Verdict::Output(PortId(1)), "{l3}");
        }
        assert_eq!((cache.hits, cache.misses), (1, 1), "{l3}");
    }
}
