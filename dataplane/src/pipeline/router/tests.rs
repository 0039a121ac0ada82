//! The router pipeline on real frames: routed, answered, dropped, and
//! cached exactly as the full pipeline decides.

use super::*;
use crate::cache::FlowCache;
use crate::flow::FlowDesc;
use crate::ids::PortId;
use crate::packet::{HeapBuf, PacketBuf};
use crate::pipeline::{decide, decide_cached, NoTrace, PacketMeta, TraceLog, Verdict};
use crate::routes::{LogicalRouter, MacBinding, NextHop, RoutePolicy, RouterPort, StaticRoute};
use crate::tables::{LogicalPort, LogicalSwitch, PortType};
use crate::wire::layout;

const VM1: &str = "00:00:00:00:01:01";
const VM2: &str = "00:00:00:00:02:01";
const GW: &str = "00:00:00:00:02:05";
const LRP1: &str = "00:00:00:00:ff:01";
const LRP2: &str = "00:00:00:00:ff:02";

fn vm(name: &str, key: u32, addr: &str, local: PortId) -> LogicalPort {
    LogicalPort {
        local_port: Some(local),
        ..LogicalPort::vif(name, key, addr.parse().unwrap(), true)
    }
}

/// A router VM: no port security, so it receives what it routes.
fn gateway(name: &str, key: u32, addr: &str, local: PortId) -> LogicalPort {
    LogicalPort {
        local_port: Some(local),
        ..LogicalPort::vif(name, key, addr.parse().unwrap(), false)
    }
}

fn router_lsp(name: &str, addr: &str) -> LogicalPort {
    LogicalPort {
        port_type: PortType::Router,
        ..LogicalPort::vif(name, 9, addr.parse().unwrap(), false)
    }
}

/// vm1 (port 0) on ls1 10.0.1.0/24, fd01::/64; vm2 (port 1) and a
/// gateway (port 2) on ls2 10.0.2.0/24, fd02::/64; router lr0 between
/// them with a static route 192.0.2.0/24 via the gateway.
fn tables() -> Tables {
    tables_with(vec![], vec![])
}

/// [`tables`] with `extra` ports on ls2 and MAC bindings `bound`.
fn tables_with(extra: Vec<LogicalPort>, bound: Vec<MacBinding>) -> Tables {
    tables_learning(extra, bound, false)
}

/// [`tables_with`], lr0 with `options:always_learn_from_arp_request=false`
/// if `known_only`.
fn tables_learning(extra: Vec<LogicalPort>, bound: Vec<MacBinding>, known_only: bool) -> Tables {
    let lrp1 = format!("{LRP1} 10.0.1.254/24 fd01::fe/64");
    let lrp2 = format!("{LRP2} 10.0.2.254/24 fd02::fe/64");
    let switches = [
        LogicalSwitch {
            name: "ls1".into(),
            tunnel_key: 1,
            ports: vec![
                vm("vm1", 1, &format!("{VM1} 10.0.1.1 fd01::1"), PortId(0)),
                router_lsp("ls1-lr0", &lrp1),
            ],
        },
        LogicalSwitch {
            name: "ls2".into(),
            tunnel_key: 2,
            ports: vec![
                vm("vm2", 1, &format!("{VM2} 10.0.2.1 fd02::1"), PortId(1)),
                gateway("gw", 2, &format!("{GW} 10.0.2.5"), PortId(2)),
                router_lsp("ls2-lr0", &lrp2),
            ]
            .into_iter()
            .chain(extra)
            .collect(),
        },
    ];
    let lrp = |name: &str, a: &str, peer: &str| RouterPort {
        name: name.into(),
        address: a.parse().unwrap(),
        peer: Some(peer.into()),
    };
    Tables::compile(&switches)
        .unwrap()
        .with_routers(&[LogicalRouter {
            name: "lr0".into(),
            tunnel_key: 3,
            ports: vec![lrp("lrp1", &lrp1, "ls1-lr0"), lrp("lrp2", &lrp2, "ls2-lr0")],
            routes: vec![
                StaticRoute {
                    prefix: "192.0.2.0/24".parse().unwrap(),
                    policy: RoutePolicy::DstIp,
                    nexthop: NextHop::Ip("10.0.2.5".parse().unwrap()),
                    output_port: None,
                },
                StaticRoute {
                    prefix: "198.51.100.0/24".parse().unwrap(),
                    policy: RoutePolicy::DstIp,
                    nexthop: NextHop::Ip("10.0.2.77".parse().unwrap()),
                    output_port: None,
                },
                StaticRoute {
                    prefix: "203.0.113.0/24".parse().unwrap(),
                    policy: RoutePolicy::DstIp,
                    nexthop: NextHop::Discard,
                    output_port: None,
                },
            ],
            mac_bindings: bound,
            learn_known_only: known_only,
        }])
}

fn frame(desc: &str) -> Vec<u8> {
    desc.parse::<FlowDesc>().unwrap().to_frame().unwrap()
}

/// The verdict from vm1's port, and the frame as it leaves (the routed
/// rewrite carried out as the worker does).
fn run(t: &Tables, desc: &str) -> (Verdict, Vec<u8>) {
    let mut buf = HeapBuf::from_frame(&frame(desc));
    let v = decide(t, &mut buf, &mut PacketMeta::new(PortId(0)), &mut NoTrace);
    if let Verdict::Routed { hop, .. } = v {
        rewrite(t, hop, buf.data_mut());
    }
    (v, buf.data().to_vec())
}

fn from_vm1(l3: &str) -> String {
    format!("eth.src={VM1} eth.dst={LRP1} ip4.src=10.0.1.1 {l3}")
}

/// The incremental checksum update agrees with a checksum computed afresh
/// over the rewritten header, for every TTL the pipeline routes and more
/// than one protocol (the word the TTL shares).
#[test]
fn the_ttl_rewrite_keeps_the_ipv4_checksum_exact_for_every_ttl() {
    let t = tables();
    for l4 in ["udp.dst=53", "tcp.dst=80"] {
        for ttl in 2..=255u8 {
            let (v, out) = run(
                &t,
                &from_vm1(&format!("ip4.dst=10.0.2.1 ip.ttl={ttl} {l4}")),
            );
            assert!(matches!(v, Verdict::Routed { .. }), "{v:?}");
            assert_eq!(layout::parse(&out).unwrap().ip_ttl(&out), ttl - 1);
            let mut fresh = out[14..34].to_vec();
            crate::wire::ipv4::Packet::new_unchecked(&mut fresh[..]).fill_checksum();
            assert_eq!(out[14..34], fresh[..], "ttl {ttl}, {l4}");
        }
    }
}

#[test]
fn routes_between_connected_networks_rewriting_macs_and_ttl() {
    let t = tables();
    let (v, out) = run(&t, &from_vm1("ip4.dst=10.0.2.1 ip.ttl=64 udp.dst=53"));
    assert!(
        matches!(
            v,
            Verdict::Routed {
                port: PortId(1),
                ..
            }
        ),
        "{v:?}"
    );
    let lay = layout::parse(&out).unwrap();
    assert_eq!(lay.dst_mac(&out).to_string(), VM2);
    assert_eq!(lay.src_mac(&out).to_string(), LRP2);
    assert_eq!(lay.ip_ttl(&out), 63);
    // The incrementally updated header checksum verifies.
    assert_eq!(crate::wire::checksum::data(&out[14..34]), 0xffff);

    let v6 =
        format!("eth.src={VM1} eth.dst={LRP1} ip6.src=fd01::1 ip6.dst=fd02::1 ip.ttl=2 udp.dst=53");
    let (v, out) = run(&t, &v6);
    assert!(
        matches!(
            v,
            Verdict::Routed {
                port: PortId(1),
                ..
            }
        ),
        "{v:?}"
    );
    let lay = layout::parse(&out).unwrap();
    assert_eq!(
        (lay.dst_mac(&out).to_string(), lay.ip_ttl(&out)),
        (VM2.into(), 1)
    );
}

#[test]
fn static_routes_go_to_their_next_hop_and_the_rest_is_dropped_with_a_reason() {
    let t = tables();
    let (v, out) = run(&t, &from_vm1("ip4.dst=192.0.2.9 udp.dst=53"));
    assert!(
        matches!(
            v,
            Verdict::Routed {
                port: PortId(2),
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(layout::parse(&out).unwrap().dst_mac(&out).to_string(), GW);
    // vm2's port security lets only its own address in.
    let (v, _) = run(&t, &from_vm1("ip4.dst=10.0.2.1 udp.dst=53"));
    assert!(
        matches!(
            v,
            Verdict::Routed {
                port: PortId(1),
                ..
            }
        ),
        "{v:?}"
    );
    for (dst, why) in [
        ("10.9.0.1", DropReason::NoRoute),
        ("203.0.113.1", DropReason::RouteDiscard),
        ("127.0.0.1", DropReason::RouterMartian),
    ] {
        let (v, _) = run(&t, &from_vm1(&format!("ip4.dst={dst} udp.dst=53")));
        assert_eq!(v, Verdict::Drop(why), "to {dst}");
    }
    // To the router's own address: answered, not routed (port
    // unreachable: see the_router_resets_tcp_and_answers_unreachable…).
    let (v, _) = run(&t, &from_vm1("ip4.dst=10.0.2.254 udp.dst=53"));
    assert_eq!(v, Verdict::Reply);
    // To another MAC than the router port's: not admitted.
    let (v, _) = run(
        &t,
        &format!("eth.src={VM1} eth.dst={LRP2} ip4.src=10.0.1.1 ip4.dst=10.0.2.1 udp.dst=53"),
    );
    assert_ne!(
        v,
        Verdict::Routed {
            hop: HopIdx(0),
            port: PortId(1)
        }
    );
}

#[test]
fn the_router_answers_echo_requests_to_its_addresses() {
    let t = tables();
    let (v, out) = run(&t, &from_vm1("ip4.dst=10.0.2.254 icmp4.type=8"));
    assert_eq!(v, Verdict::Reply);
    let lay = layout::parse(&out).unwrap();
    assert_eq!(lay.dst_mac(&out).to_string(), VM1);
    assert_eq!(lay.src_mac(&out).to_string(), LRP1);
    assert_eq!(lay.ipv4_src(&out).to_string(), "10.0.2.254");
    assert_eq!(lay.ipv4_dst(&out).to_string(), "10.0.1.1");
    assert_eq!(lay.icmp_type(&out), 0);
    assert!(crate::wire::checksum::verify_l4(&out, &lay).unwrap());

    let v6 =
        format!("eth.src={VM1} eth.dst={LRP1} ip6.src=fd01::1 ip6.dst=fd01::fe icmp6.type=128");
    let (v, out) = run(&t, &v6);
    assert_eq!(v, Verdict::Reply);
    let lay = layout::parse(&out).unwrap();
    assert_eq!(
        (lay.icmp_type(&out), lay.ipv6_src(&out).to_string()),
        (129, "fd01::fe".into())
    );
    assert!(crate::wire::checksum::verify_l4(&out, &lay).unwrap());
}

#[test]
fn ttl_one_gets_time_exceeded_from_the_port_facing_the_sender() {
    let t = tables();
    let (v, out) = run(&t, &from_vm1("ip4.dst=10.0.2.1 ip.ttl=1 udp.dst=53"));
    assert_eq!(v, Verdict::Reply);
    let lay = layout::parse(&out).unwrap();
    assert_eq!(lay.dst_mac(&out).to_string(), VM1);
    assert_eq!(lay.ipv4_src(&out).to_string(), "10.0.1.254");
    assert_eq!(lay.ipv4_dst(&out).to_string(), "10.0.1.1");
    assert_eq!((lay.icmp_type(&out), lay.icmp_code(&out)), (11, 0));
    assert_eq!(crate::wire::checksum::data(&out[14..34]), 0xffff);
    assert!(crate::wire::checksum::verify_l4(&out, &lay).unwrap());
    // The quoted header is the original one.
    assert_eq!(layout::parse(&out).unwrap().l3_end as usize, out.len());
    assert_eq!(&out[14 + 28 + 16..14 + 28 + 20], &[10, 0, 2, 1]);

    let v6 =
        format!("eth.src={VM1} eth.dst={LRP1} ip6.src=fd01::1 ip6.dst=fd02::1 ip.ttl=1 udp.dst=53");
    let (v, out) = run(&t, &v6);
    assert_eq!(v, Verdict::Reply);
    let lay = layout::parse(&out).unwrap();
    assert_eq!(
        (lay.icmp_type(&out), lay.ipv6_src(&out).to_string()),
        (3, "fd01::fe".into())
    );
    assert!(crate::wire::checksum::verify_l4(&out, &lay).unwrap());
}

/// Routed flows are cached: the cache answers what the full pipeline
/// answers, and a packet whose TTL runs out is not forwarded by the
/// verdict cached for its flow.
#[test]
fn cached_routing_verdicts_equal_the_full_pipeline() {
    let t = tables();
    let mut cache = FlowCache::new(256);
    let frames: Vec<String> = [
        "ip4.dst=10.0.2.1 ip.ttl=64 udp.dst=53",
        "ip4.dst=10.0.2.1 ip.ttl=1 udp.dst=53",
        "ip4.dst=192.0.2.9 udp.dst=53",
        "ip4.dst=10.9.0.1 udp.dst=53",
        "ip4.dst=10.0.2.254 icmp4.type=8",
        "ip4.dst=10.0.2.254 icmp4.type=0",
    ]
    .iter()
    .map(|l3| from_vm1(l3))
    .chain([
        format!("eth.src={VM1} eth.dst={LRP1} ip6.src=fd01::1 ip6.dst=fd02::1 ip.ttl=64"),
        format!("eth.src={VM1} eth.dst={LRP1} ip6.src=fd01::1 ip6.dst=fd02::1 ip.ttl=1"),
    ])
    .collect();
    for round in 0..3 {
        for d in &frames {
            let f = frame(d);
            let mut reference = HeapBuf::from_frame(&f);
            let want = decide(
                &t,
                &mut reference,
                &mut PacketMeta::new(PortId(0)),
                &mut NoTrace,
            );
            let mut buf = HeapBuf::from_frame(&f);
            let got = decide_cached(&t, &mut cache, &mut buf, PortId(0));
            assert_eq!(got, want, "round {round}: {d}");
            assert_eq!(buf.data(), reference.data(), "round {round}: {d}");
        }
    }
    assert!(cache.hits > 0);
}

#[test]
fn trace_walks_switch_router_switch() {
    let t = tables();
    let mut log = TraceLog::default();
    let mut buf = HeapBuf::from_frame(&frame(&from_vm1("ip4.dst=192.0.2.9 udp.dst=53")));
    decide(&t, &mut buf, &mut PacketMeta::new(PortId(0)), &mut log);
    let stages: Vec<&str> = log.stages.iter().map(|s| s.0).collect();
    for s in [
        "l2_lookup",
        "lr_in_admission",
        "lr_in_ip_routing",
        "lr_in_arp_resolve",
        "output",
    ] {
        assert!(stages.contains(&s), "{s} missing from {stages:?}");
    }
    let text = format!("{:?}", log.stages);
    assert!(
        text.contains("static route 192.0.2.0/24: next hop 10.0.2.5"),
        "{text}"
    );
}

/// A destination on another chassis: routed here, then tunnelled in the
/// destination switch's datapath from its port of type "router" to the
/// destination port, as OVN does.
#[test]
fn a_destination_on_another_chassis_is_routed_here_and_tunnelled() {
    use crate::ids::ChassisIdx;
    use crate::tables::{Encap, RemoteChassis, TunnelIds, Underlay};
    let mut switches = [
        LogicalSwitch {
            name: "ls1".into(),
            tunnel_key: 1,
            ports: vec![
                vm("vm1", 1, &format!("{VM1} 10.0.1.1"), PortId(0)),
                router_lsp("ls1-lr0", &format!("{LRP1} 10.0.1.254/24")),
            ],
        },
        LogicalSwitch {
            name: "ls2".into(),
            tunnel_key: 2,
            ports: vec![
                vm("vm2", 1, &format!("{VM2} 10.0.2.1"), PortId(1)),
                router_lsp("ls2-lr0", &format!("{LRP2} 10.0.2.254/24")),
            ],
        },
    ];
    switches[1].ports[0].local_port = None;
    switches[1].ports[0].chassis = Some(ChassisIdx(0));
    let underlay = Underlay {
        port: PortId(5),
        ip: "192.168.0.21".parse().unwrap(),
        mac: "00:00:00:00:aa:01".parse().unwrap(),
        mtu: 1500,
        chassis: vec![RemoteChassis {
            name: "hv2".into(),
            ip: "192.168.0.22".parse().unwrap(),
            encap: Encap::Geneve,
            mac: Some("00:00:00:00:aa:02".parse().unwrap()),
            vtep: false,
            csum: false,
        }],
    };
    let lrp = |name: &str, a: String, peer: &str| RouterPort {
        name: name.into(),
        address: a.parse().unwrap(),
        peer: Some(peer.into()),
    };
    let t = Tables::compile_with_underlay(&switches, Some(underlay))
        .unwrap()
        .with_routers(&[LogicalRouter {
            name: "lr0".into(),
            tunnel_key: 3,
            ports: vec![
                lrp("lrp1", format!("{LRP1} 10.0.1.254/24"), "ls1-lr0"),
                lrp("lrp2", format!("{LRP2} 10.0.2.254/24"), "ls2-lr0"),
            ],
            ..Default::default()
        }]);
    let (v, out) = run(&t, &from_vm1("ip4.dst=10.0.2.1 udp.dst=53"));
    let Verdict::RoutedTunnel { hop, chassis } = v else {
        panic!("{v:?}");
    };
    assert_eq!(chassis, ChassisIdx(0));
    let h = t.routers.hops[hop.0 as usize];
    assert_eq!(t.lport(h.lport).name, "vm2");
    assert_eq!(
        h.ingress,
        TunnelIds {
            datapath_key: 2,
            port_key: 9
        }
    );
    assert_eq!(out, frame(&from_vm1("ip4.dst=10.0.2.1 udp.dst=53")));
    let mut rewritten = out.clone();
    rewrite(&t, hop, &mut rewritten);
    let lay = layout::parse(&rewritten).unwrap();
    assert_eq!(lay.src_mac(&rewritten).to_string(), LRP2);
    assert_eq!(lay.dst_mac(&rewritten).to_string(), VM2);
}

/// Hostile input through the router: every truncation and every single
/// byte flipped of frames the router answers or routes is decided (and an
/// answer written) without a panic.
#[test]
fn mangled_frames_through_the_router_never_panic() {
    let t = tables();
    for d in [
        from_vm1("ip4.dst=10.0.2.1 ip.ttl=1 udp.dst=53 payload=40"),
        from_vm1("ip4.dst=10.0.2.254 icmp4.type=8 payload=40"),
        from_vm1("ip4.dst=192.0.2.9 tcp.dst=80"),
        format!("eth.src={VM1} eth.dst={LRP1} ip6.src=fd01::1 ip6.dst=fd02::1 ip.ttl=1 udp.dst=53"),
        format!("eth.src={VM1} eth.dst={LRP1} ip6.src=fd01::1 ip6.dst=fd01::fe icmp6.type=128"),
    ] {
        let f = frame(&d);
        let mut variants: Vec<Vec<u8>> = (0..f.len()).map(|n| f[..n].to_vec()).collect();
        for i in 14..f.len() {
            for x in [0x01, 0x0f, 0x80, 0xff] {
                let mut g = f.clone();
                g[i] ^= x;
                variants.push(g);
            }
        }
        for g in variants {
            let mut buf = HeapBuf::from_frame(&g);
            let v = decide(&t, &mut buf, &mut PacketMeta::new(PortId(0)), &mut NoTrace);
            if let Verdict::Routed { hop, .. } = v {
                rewrite(&t, hop, buf.data_mut());
            }
        }
    }
}

/// The verdict of `desc` arriving on local port `port`, and the frame as
/// the worker sends it.
fn run_from(t: &Tables, port: PortId, desc: &str) -> (Verdict, Vec<u8>) {
    let mut buf = HeapBuf::from_frame(&frame(desc));
    let v = decide(t, &mut buf, &mut PacketMeta::new(port), &mut NoTrace);
    (v, buf.data().to_vec())
}

/// An unknown next hop, connected or a static route's, is asked for with
/// an ARP request as OVN's `arp` action writes it: broadcast, from the
/// output port's MAC and its address in the next hop's network. The
/// packet is lost (counted by the worker), and a second one within the
/// second only dropped.
#[test]
fn an_unknown_next_hop_is_asked_for_by_arp_once_a_second() {
    let t = tables();
    for (dst, nexthop) in [("10.0.2.99", "10.0.2.99"), ("198.51.100.1", "10.0.2.77")] {
        let (v, out) = run(&t, &from_vm1(&format!("ip4.dst={dst} udp.dst=53")));
        assert_eq!(v, Verdict::Solicit { rport: 1 }, "to {dst}");
        assert_eq!(out.len(), 42);
        let eth = crate::wire::ethernet::Frame::new_checked(&out[..]).unwrap();
        assert_eq!(eth.dst_addr(), crate::wire::MacAddr::BROADCAST);
        assert_eq!(eth.src_addr().to_string(), LRP2);
        assert_eq!(eth.ethertype(), crate::wire::EtherType::Arp);
        let arp = crate::wire::arp::Packet::new_checked(&out[14..]).unwrap();
        let a = crate::wire::arp::Repr::parse(&arp).unwrap();
        assert_eq!(a.operation, crate::wire::arp::Operation::Request);
        assert_eq!(a.source_hardware_addr.to_string(), LRP2);
        assert_eq!(a.source_protocol_addr.to_string(), "10.0.2.254");
        assert_eq!(a.target_hardware_addr, crate::wire::MacAddr([0; 6]));
        assert_eq!(a.target_protocol_addr.to_string(), nexthop);

        let (v, _) = run(&t, &from_vm1(&format!("ip4.dst={dst} udp.dst=54")));
        assert_eq!(v, Verdict::Drop(DropReason::NextHopUnresolved), "to {dst}");
    }
    assert_eq!(t.routers.log.arp_sent(), 2);
}

/// IPv6: a neighbour solicitation as OVN's `nd_ns` writes it, from the
/// port's link-local address to the target's solicited-node group, hop
/// limit 255, with the source link-layer option and a valid checksum.
#[test]
fn an_unknown_ipv6_next_hop_is_asked_for_by_neighbour_solicitation() {
    let t = tables();
    let desc = format!("eth.src={VM1} eth.dst={LRP1} ip6.src=fd01::1 ip6.dst=fd02::99 udp.dst=53");
    let (v, out) = run(&t, &desc);
    assert_eq!(v, Verdict::Solicit { rport: 1 });
    let eth = crate::wire::ethernet::Frame::new_checked(&out[..]).unwrap();
    assert_eq!(eth.dst_addr().to_string(), "33:33:ff:00:00:99");
    assert_eq!(eth.src_addr().to_string(), LRP2);
    let ip = crate::wire::ipv6::Packet::new_checked(&out[14..]).unwrap();
    let lla = crate::pipeline::link_local(LRP2.parse().unwrap());
    assert_eq!(ip.src_addr(), lla);
    assert_eq!(ip.src_addr().to_string(), "fe80::200:ff:fe00:ff02");
    assert_eq!(ip.dst_addr().to_string(), "ff02::1:ff00:99");
    assert_eq!(ip.hop_limit(), 255);
    assert_eq!(usize::from(ip.payload_len()), out.len() - 54);
    let msg = crate::wire::icmpv6::Packet::new_checked(&out[54..]).unwrap();
    assert!(msg.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
    let nd = crate::wire::icmpv6::NdiscRepr::parse(&msg).unwrap();
    assert_eq!(
        nd,
        crate::wire::icmpv6::NdiscRepr::NeighborSolicit {
            target_addr: "fd02::99".parse().unwrap(),
            lladdr: Some(LRP2.parse().unwrap()),
        }
    );
    let (v, _) = run(&t, &desc);
    assert_eq!(v, Verdict::Drop(DropReason::NextHopUnresolved));
    assert_eq!(t.routers.log.ns_sent(), 1);
}

/// A trace says what would be asked for, without spending the rate limit,
/// and the verdict is never cached: every packet meets the limit.
#[test]
fn trace_says_it_would_send_arp_and_the_cache_keeps_out() {
    let t = tables();
    let desc = from_vm1("ip4.dst=10.0.2.99 udp.dst=53");
    let mut log = TraceLog::default();
    let mut buf = HeapBuf::from_frame(&frame(&desc));
    let v = decide(&t, &mut buf, &mut PacketMeta::new(PortId(0)), &mut log);
    assert_eq!(v, Verdict::Solicit { rport: 1 });
    let said = format!("{:?}", log.stages);
    assert!(
        said.contains("would send ARP for 10.0.2.99 from 10.0.2.254"),
        "{said}"
    );
    let mut cache = FlowCache::new(64);
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        let mut buf = HeapBuf::from_frame(&frame(&desc));
        verdicts.push(decide_cached(&t, &mut cache, &mut buf, PortId(0)));
    }
    assert_eq!(
        verdicts,
        [
            Verdict::Solicit { rport: 1 },
            Verdict::Drop(DropReason::NextHopUnresolved),
            Verdict::Drop(DropReason::NextHopUnresolved)
        ]
    );
    assert_eq!(cache.hits, 0);
}

/// What the router learns (OVN's `lr_in_learn_neighbor` with
/// `always_learn_from_arp_request`): ARP replies, requests from the port's
/// networks, advertisements and solicitations; the messages go no
/// further. What it has already is not learnt again.
#[test]
fn the_router_learns_from_arp_and_neighbour_discovery() {
    const EXT: &str = "00:00:00:00:02:99";
    let ext = gateway("ext", 3, "unknown", PortId(3));
    let t = tables_with(vec![ext.clone()], vec![]);
    let learnt = |t: &Tables| -> Vec<String> {
        t.routers
            .log
            .drain()
            .map(|l| format!("{} {} {} {}", l.router, l.port, l.ip, l.mac))
            .collect()
    };
    let reply = format!(
        "eth.src={EXT} eth.dst={LRP2} arp arp.op=2 arp.sha={EXT} arp.spa=10.0.2.99 arp.tha={LRP2} arp.tpa=10.0.2.254"
    );
    let (v, _) = run_from(&t, PortId(3), &reply);
    assert_eq!(v, Verdict::Consumed);
    assert_eq!(learnt(&t), [format!("3 lrp2 10.0.2.99 {EXT}")]);
    // A request for the router's address is answered by the switch, and
    // teaches the router; one from outside the port's networks does not.
    let ask = |spa: &str| {
        format!("eth.src={EXT} eth.dst=ff:ff:ff:ff:ff:ff arp arp.sha={EXT} arp.spa={spa} arp.tpa=10.0.2.254")
    };
    let (v, _) = run_from(&t, PortId(3), &ask("10.0.2.98"));
    assert_eq!(v, Verdict::Reply);
    let (v, _) = run_from(&t, PortId(3), &ask("192.168.0.1"));
    assert_eq!(v, Verdict::Reply);
    assert_eq!(learnt(&t), [format!("3 lrp2 10.0.2.98 {EXT}")]);
    // An advertisement: the target at the TLL, or at eth.src without one.
    let na = |tll: &str| {
        format!("eth.src={EXT} eth.dst={LRP2} ip6.src=fd02::99 ip6.dst=fd02::fe ip.ttl=255 nd_na nd.target=fd02::99 {tll}")
    };
    let (v, _) = run_from(&t, PortId(3), &na("nd.tll=00:00:00:00:02:98"));
    assert_eq!(v, Verdict::Consumed);
    let (v, _) = run_from(&t, PortId(3), &na(""));
    assert_eq!(v, Verdict::Consumed);
    assert_eq!(
        learnt(&t),
        [
            "3 lrp2 fd02::99 00:00:00:00:02:98".to_string(),
            format!("3 lrp2 fd02::99 {EXT}")
        ]
    );
    // Not with another hop limit (RFC 4861 §7.1.2).
    let bad = na("").replace("ip.ttl=255", "ip.ttl=64");
    let (v, _) = run_from(&t, PortId(3), &bad);
    assert_eq!(v, Verdict::Drop(DropReason::RouterAdmission));
    assert!(learnt(&t).is_empty());

    // Once bound, the next hop is routed to the port with "unknown"
    // addresses, and the same reply teaches nothing new.
    let bound = MacBinding {
        logical_port: "lrp2".into(),
        ip: "10.0.2.99".parse().unwrap(),
        mac: EXT.parse().unwrap(),
    };
    let t = tables_with(vec![ext], vec![bound]);
    let (v, out) = run(&t, &from_vm1("ip4.dst=10.0.2.99 udp.dst=53"));
    assert!(
        matches!(
            v,
            Verdict::Routed {
                port: PortId(3),
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(layout::parse(&out).unwrap().dst_mac(&out).to_string(), EXT);
    let (v, _) = run_from(&t, PortId(3), &reply);
    assert_eq!(v, Verdict::Consumed);
    assert!(learnt(&t).is_empty());
    assert!(t
        .routers
        .show(&t)
        .contains(&format!("neighbor 10.0.2.99 at {EXT} on lrp2")));
}

/// OVN's `lr_in_ip_input` priorities 80 and 70: to any of the router's
/// own addresses, TCP gets `tcp_reset`, UDP ICMP port unreachable, any
/// other protocol ICMP protocol unreachable (ICMPv6: address unreachable),
/// from the address it was sent to and the ingress port's MAC, back to
/// the sender; a RST, an ICMP error and later fragments get nothing and
/// are dropped as `router_local`. Each answer is counted by kind, and the
/// trace says which.
#[test]
fn the_router_resets_tcp_and_answers_unreachable_to_its_addresses() {
    use crate::neighbor_log::Answered;
    use crate::wire::{tcp, IpProtocol};
    let t = tables();
    let check = |out: &[u8], src: &str, dst: &str| {
        let lay = layout::parse(out).unwrap();
        assert_eq!(lay.dst_mac(out).to_string(), VM1);
        assert_eq!(lay.src_mac(out).to_string(), LRP1);
        let (s, d) = if lay.has(layout::Layout::IPV4) {
            (lay.ipv4_src(out).to_string(), lay.ipv4_dst(out).to_string())
        } else {
            (lay.ipv6_src(out).to_string(), lay.ipv6_dst(out).to_string())
        };
        assert_eq!((s.as_str(), d.as_str()), (src, dst));
        assert!(crate::wire::checksum::verify_l4(out, &lay).unwrap());
        lay
    };

    // A SYN to lrp2's address, through lrp1.
    let syn = from_vm1("ip4.dst=10.0.2.254 tcp.src=40000 tcp.dst=22 tcp.flags=0x02");
    let (v, out) = run(&t, &syn);
    assert_eq!(v, Verdict::Reply);
    let lay = check(&out, "10.0.2.254", "10.0.1.1");
    assert_eq!(lay.ip_protocol(), IpProtocol::Tcp);
    assert_eq!(lay.tcp_flags(&out), tcp::Flags::RST | tcp::Flags::ACK);
    assert_eq!((lay.l4_src_port(&out), lay.l4_dst_port(&out)), (22, 40000));

    let (v, out) = run(&t, &from_vm1("ip4.dst=10.0.1.254 udp.src=40000 udp.dst=53"));
    assert_eq!(v, Verdict::Reply);
    let lay = check(&out, "10.0.1.254", "10.0.1.1");
    assert_eq!((lay.icmp_type(&out), lay.icmp_code(&out)), (3, 3));

    // Another protocol (GRE, 47): protocol unreachable.
    let mut gre = frame(&from_vm1("ip4.dst=10.0.1.254 udp.dst=53"));
    gre[14 + 9] = 47;
    gre[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let c = !crate::wire::checksum::data(&gre[14..34]);
    gre[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    let mut buf = HeapBuf::from_frame(&gre);
    let v = decide(&t, &mut buf, &mut PacketMeta::new(PortId(0)), &mut NoTrace);
    assert_eq!(v, Verdict::Reply);
    let out = buf.data().to_vec();
    let lay = check(&out, "10.0.1.254", "10.0.1.1");
    assert_eq!((lay.icmp_type(&out), lay.icmp_code(&out)), (3, 2));

    let v6 =
        |l4: &str| format!("eth.src={VM1} eth.dst={LRP1} ip6.src=fd01::1 ip6.dst=fd02::fe {l4}");
    let (v, out) = run(&t, &v6("udp.src=40000 udp.dst=53"));
    assert_eq!(v, Verdict::Reply);
    let lay = check(&out, "fd02::fe", "fd01::1");
    assert_eq!((lay.icmp_type(&out), lay.icmp_code(&out)), (1, 4));
    let (v, out) = run(&t, &v6("tcp.src=40000 tcp.dst=22 tcp.flags=0x02"));
    assert_eq!(v, Verdict::Reply);
    let lay = check(&out, "fd02::fe", "fd01::1");
    assert_eq!(lay.tcp_flags(&out), tcp::Flags::RST | tcp::Flags::ACK);

    // Nothing answers a RST or an ICMP error.
    for quiet in [
        from_vm1("ip4.dst=10.0.2.254 tcp.src=40000 tcp.dst=22 tcp.flags=0x04"),
        from_vm1("ip4.dst=10.0.2.254 icmp4.type=3 icmp4.code=3"),
        v6("icmp6.type=1 icmp6.code=4"),
    ] {
        let (v, _) = run(&t, &quiet);
        assert_eq!(v, Verdict::Drop(DropReason::RouterLocal), "{quiet}");
    }

    let log = &t.routers.log;
    assert_eq!(log.answered(Answered::TcpReset), 2);
    assert_eq!(log.answered(Answered::PortUnreachable), 2);
    assert_eq!(log.answered(Answered::DstUnreachable), 1);

    // The trace says what the router answers, and spends no counter.
    let mut trace = TraceLog::default();
    let mut buf = HeapBuf::from_frame(&frame(&syn));
    decide(&t, &mut buf, &mut PacketMeta::new(PortId(0)), &mut trace);
    let text = format!("{:?}", trace.stages);
    assert!(
        text.contains("tcp_reset (RST|ACK) from 10.0.2.254"),
        "{text}"
    );
    assert_eq!(log.answered(Answered::TcpReset), 2);
}

/// Gratuitous ARP and unsolicited advertisements flood the switch, and its
/// router ports' copies teach the routers (OVN's `MC_FLOOD` holds router
/// ports; `lr_in_lookup_neighbor`/`lr_in_learn_neighbor` with
/// `always_learn_from_arp_request` at its default): a GARP request from the
/// port's networks, a GARP reply from anywhere, an NA to ff02::1; not a
/// request from outside the networks, not what is known already. The
/// flood itself goes on, and trace shows the router's copy.
#[test]
fn gratuitous_arp_and_unsolicited_na_flooded_in_the_switch_are_learnt() {
    const EXT: &str = "00:00:00:00:02:99";
    let ext = gateway("ext", 3, "unknown", PortId(3));
    let t = tables_with(vec![ext.clone()], vec![]);
    let learnt = |t: &Tables| -> Vec<String> {
        t.routers
            .log
            .drain()
            .map(|l| format!("{} {} {}", l.port, l.ip, l.mac))
            .collect()
    };
    let garp = |op: u8, ip: &str| {
        format!("eth.src={EXT} eth.dst=ff:ff:ff:ff:ff:ff arp arp.op={op} arp.sha={EXT} arp.spa={ip} arp.tpa={ip}")
    };
    let flooded = |v: Verdict| matches!(v, Verdict::Flood { .. });
    let (v, _) = run_from(&t, PortId(3), &garp(1, "10.0.2.99"));
    assert!(flooded(v), "{v:?}");
    assert_eq!(learnt(&t), [format!("lrp2 10.0.2.99 {EXT}")]);
    let (v, _) = run_from(&t, PortId(3), &garp(2, "192.168.0.9"));
    assert!(flooded(v), "{v:?}");
    assert_eq!(learnt(&t), [format!("lrp2 192.168.0.9 {EXT}")]);
    let (v, _) = run_from(&t, PortId(3), &garp(1, "192.168.0.1"));
    assert!(flooded(v), "{v:?}");
    assert!(learnt(&t).is_empty());
    let na = format!(
        "eth.src={EXT} eth.dst=33:33:00:00:00:01 ip6.src=fd02::99 ip6.dst=ff02::1 ip.ttl=255 nd_na nd.target=fd02::99 nd.tll={EXT}"
    );
    let (v, _) = run_from(&t, PortId(3), &na);
    assert!(flooded(v), "{v:?}");
    assert_eq!(learnt(&t), [format!("lrp2 fd02::99 {EXT}")]);

    // Known already: nothing new to queue.
    let bound = MacBinding {
        logical_port: "lrp2".into(),
        ip: "10.0.2.99".parse().unwrap(),
        mac: EXT.parse().unwrap(),
    };
    let t = tables_with(vec![ext], vec![bound]);
    let (v, _) = run_from(&t, PortId(3), &garp(1, "10.0.2.99"));
    assert!(flooded(v), "{v:?}");
    assert!(learnt(&t).is_empty());

    let mut log = TraceLog::default();
    let mut buf = HeapBuf::from_frame(&frame(&garp(1, "10.0.2.98")));
    decide(&t, &mut buf, &mut PacketMeta::new(PortId(3)), &mut log);
    let text = format!("{:?}", log.stages);
    assert!(
        text.contains("flooded copy to router port \\\"lrp2\\\"")
            && text.contains("ARP request: learns 10.0.2.98"),
        "{text}"
    );
    assert!(learnt(&t).is_empty(), "a trace queued a binding");
}

/// Every router port owns its EUI-64 link-local address, as OVN's
/// `extract_lrp_networks` adds it: the switch answers neighbour
/// solicitations for it with the port's MAC, the router answers echo
/// requests to it (from it) and UDP with port unreachable; nothing is
/// routed to a link-local destination.
#[test]
fn a_router_port_owns_its_link_local_address() {
    let t = tables();
    let lla = "fe80::200:ff:fe00:ff01";
    let ns = format!(
        "eth.src={VM1} eth.dst=33:33:ff:00:ff:01 ip6.src=fe80::200:ff:fe00:101 ip6.dst=ff02::1:ff00:ff01 ip.ttl=255 nd_ns nd.target={lla} nd.sll={VM1}"
    );
    let (v, out) = run(&t, &ns);
    assert_eq!(v, Verdict::Reply);
    let lay = layout::parse(&out).unwrap();
    assert_eq!(lay.src_mac(&out).to_string(), LRP1);
    assert_eq!(lay.icmp_type(&out), 136);
    let na = crate::wire::icmpv6::NdiscRepr::parse(&crate::wire::icmpv6::Packet::new_unchecked(
        lay.l4_bytes(&out),
    ))
    .unwrap();
    assert!(
        matches!(na, crate::wire::icmpv6::NdiscRepr::NeighborAdvert { target_addr, lladdr: Some(m), .. }
            if target_addr.to_string() == lla && m.to_string() == LRP1),
        "{na:?}"
    );

    let to_lla = |l4: &str| {
        format!("eth.src={VM1} eth.dst={LRP1} ip6.src=fe80::200:ff:fe00:101 ip6.dst={lla} {l4}")
    };
    let (v, out) = run(&t, &to_lla("icmp6.type=128"));
    assert_eq!(v, Verdict::Reply);
    let lay = layout::parse(&out).unwrap();
    assert_eq!(
        (lay.icmp_type(&out), lay.ipv6_src(&out).to_string()),
        (129, lla.to_string())
    );
    assert!(crate::wire::checksum::verify_l4(&out, &lay).unwrap());
    let (v, out) = run(&t, &to_lla("udp.src=40000 udp.dst=53"));
    assert_eq!(v, Verdict::Reply);
    let lay = layout::parse(&out).unwrap();
    assert_eq!((lay.icmp_type(&out), lay.icmp_code(&out)), (1, 4));

    // Another port's link-local address is the router's too; other
    // link-local destinations are not routed.
    let (v, _) = run(
        &t,
        &to_lla("icmp6.type=128").replace(lla, "fe80::200:ff:fe00:ff02"),
    );
    assert_eq!(v, Verdict::Reply);
    let (v, _) = run(&t, &to_lla("icmp6.type=128").replace(lla, "fe80::1"));
    assert_eq!(v, Verdict::Drop(DropReason::NoRoute));
}

/// `options:always_learn_from_arp_request=false`: requests and
/// solicitations teach only an IP already bound (a moved MAC) or, for ARP,
/// one asking for the router port's own address; replies and
/// advertisements teach as ever (northd.c `lr_in_lookup_neighbor`).
#[test]
fn with_always_learn_from_arp_request_false_requests_teach_only_known_ips() {
    const EXT: &str = "00:00:00:00:02:99";
    let ext = gateway("ext", 3, "unknown", PortId(3));
    let moved = MacBinding {
        logical_port: "lrp2".into(),
        ip: "10.0.2.96".parse().unwrap(),
        mac: "00:00:00:00:02:96".parse().unwrap(),
    };
    let t = tables_learning(vec![ext], vec![moved], true);
    let learnt = |t: &Tables| -> Vec<String> {
        t.routers
            .log
            .drain()
            .map(|l| format!("{} {}", l.ip, l.mac))
            .collect()
    };
    let request = |spa: &str, tpa: &str| {
        format!("eth.src={EXT} eth.dst=ff:ff:ff:ff:ff:ff arp arp.op=1 arp.sha={EXT} arp.spa={spa} arp.tpa={tpa}")
    };
    // A GARP and a request for someone else: not learnt.
    for r in [
        request("10.0.2.99", "10.0.2.99"),
        request("10.0.2.99", "10.0.2.50"),
    ] {
        run_from(&t, PortId(3), &r);
        assert!(learnt(&t).is_empty(), "{r}");
    }
    // For the router's own address: learnt (the switch answers).
    let (v, _) = run_from(&t, PortId(3), &request("10.0.2.98", "10.0.2.254"));
    assert_eq!(v, Verdict::Reply);
    assert_eq!(learnt(&t), [format!("10.0.2.98 {EXT}")]);
    // A bound IP whose MAC moved: learnt.
    run_from(&t, PortId(3), &request("10.0.2.96", "10.0.2.96"));
    assert_eq!(learnt(&t), [format!("10.0.2.96 {EXT}")]);
    // A reply and an advertisement: learnt.
    let reply = format!(
        "eth.src={EXT} eth.dst={LRP2} arp arp.op=2 arp.sha={EXT} arp.spa=10.0.2.97 arp.tha={LRP2} arp.tpa=10.0.2.254"
    );
    run_from(&t, PortId(3), &reply);
    let na = format!(
        "eth.src={EXT} eth.dst=33:33:00:00:00:01 ip6.src=fd02::99 ip6.dst=ff02::1 ip.ttl=255 nd_na nd.target=fd02::99 nd.tll={EXT}"
    );
    run_from(&t, PortId(3), &na);
    assert_eq!(
        learnt(&t),
        [format!("10.0.2.97 {EXT}"), format!("fd02::99 {EXT}")]
    );
    // A solicitation from an IP not bound: not learnt, even for the
    // router's own address.
    let ns = format!(
        "eth.src={EXT} eth.dst=33:33:ff:00:00:fe ip6.src=fd02::98 ip6.dst=ff02::1:ff00:fe ip.ttl=255 nd_ns nd.target=fd02::fe nd.sll={EXT}"
    );
    let (v, _) = run_from(&t, PortId(3), &ns);
    assert_eq!(v, Verdict::Reply);
    assert!(learnt(&t).is_empty());
}

/// An ACL on both switches of [`tables`].
fn acl(
    priority: u16,
    direction: crate::classifier::Direction,
    action: crate::classifier::AclAction,
    m: &str,
) -> crate::classifier::Acl {
    crate::classifier::Acl {
        name: format!("acl{priority}"),
        priority,
        direction,
        action,
        match_text: m.into(),
        expr: ovn_expr::parse(m).unwrap(),
        log: false,
        severity: Default::default(),
        meter: None,
        switches: vec!["ls1".into(), "ls2".into()],
    }
}

/// [`tables`] with `cfg` installed, and its conntrack.
fn tables_with_acls(
    cfg: &crate::classifier::AclConfig,
) -> (Tables, std::sync::Arc<crate::classifier::Stateful>) {
    let mut t = tables();
    let st = crate::classifier::Stateful::new(crate::conntrack::Conntrack::new(100, 4));
    let errors = t.install_acls(cfg, &st);
    assert!(errors.is_empty(), "{errors:?}");
    (t, st)
}

/// OVN keeps a router port's traffic out of conntrack (ovn-northd(8),
/// `ls_in_pre_acl` and `ls_out_pre_acl`, priority 110: `ip && inport ==
/// <router port>` and `ip && outport == <router port>` -> next): routed
/// traffic between two VMs under stateful ACLs on both switches is
/// tracked in the VMs' zones only, so a connection has two entries, not
/// four; and the reply, which only conntrack lets into vm1 (its to-lport
/// ACLs drop new IP), comes back through the router.
#[test]
fn routed_traffic_is_tracked_in_the_vms_zones_not_the_router_ports() {
    use crate::classifier::{AclAction, AclConfig, Direction};
    use std::collections::BTreeMap;
    use AclAction::*;
    use Direction::*;
    let vms: Vec<String> = ["vm1", "vm2", "gw"].map(String::from).to_vec();
    let cfg = AclConfig {
        acls: vec![
            acl(1001, FromLport, Drop, "inport == @neutron_pg_drop && ip"),
            acl(1001, ToLport, Drop, "outport == @neutron_pg_drop && ip"),
            acl(1002, FromLport, AllowRelated, "inport == @sg && ip4"),
            acl(
                1002,
                ToLport,
                AllowRelated,
                "outport == @sg && udp.dst == 53",
            ),
        ],
        port_groups: BTreeMap::from([
            ("sg".to_string(), vms.clone()),
            ("neutron_pg_drop".to_string(), vms),
        ]),
        address_sets: BTreeMap::new(),
    };
    let (t, st) = tables_with_acls(&cfg);

    let (v, _) = run(&t, &from_vm1("ip4.dst=10.0.2.1 udp.src=40000 udp.dst=53"));
    assert!(
        matches!(
            v,
            Verdict::Routed {
                port: PortId(1),
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(st.conntrack.len(), 2, "vm1's and vm2's zones only");

    let reply = format!(
        "eth.src={VM2} eth.dst={LRP2} ip4.src=10.0.2.1 ip4.dst=10.0.1.1 udp.src=53 udp.dst=40000"
    );
    let (v, _) = run_from(&t, PortId(1), &reply);
    assert!(
        matches!(
            v,
            Verdict::Routed {
                port: PortId(0),
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(st.conntrack.len(), 2);
    // Not a reply: vm1's to-lport ACLs drop it.
    let new = reply.replace("udp.dst=40000", "udp.dst=40001");
    assert_eq!(
        run_from(&t, PortId(1), &new).0,
        Verdict::Drop(crate::drop::DropReason::AclDrop)
    );
}

/// The destination switch's to-lport ACLs see the routed packet as the
/// router left it, as OVN's `ls_out_acl` does: eth.src is the router
/// port's MAC and eth.dst the VM's, not the MACs the sender wrote.
#[test]
fn to_lport_acls_of_a_routed_packet_see_the_rewritten_macs() {
    use crate::classifier::{AclAction, AclConfig, Direction};
    let to_vm2 = format!("outport == \"vm2\" && eth.src == {LRP2} && eth.dst == {VM2}");
    let cfg = AclConfig {
        acls: vec![
            acl(
                1001,
                Direction::ToLport,
                AclAction::Drop,
                "outport == \"vm2\" && ip4",
            ),
            acl(1002, Direction::ToLport, AclAction::Allow, &to_vm2),
        ],
        ..Default::default()
    };
    let (t, _st) = tables_with_acls(&cfg);
    let (v, out) = run(&t, &from_vm1("ip4.dst=10.0.2.1 udp.dst=53"));
    assert!(
        matches!(
            v,
            Verdict::Routed {
                port: PortId(1),
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(
        &out[6..12],
        &LRP2.parse::<crate::wire::MacAddr>().unwrap().0
    );
}
