//! Two chassis in one process: each an engine with a VM ring port and an
//! uplink ring port; the test is the wire between the uplinks. Proves
//! Geneve and VXLAN encapsulation end to end through the public API, over
//! IPv4 and IPv6 underlays: the tunnel endpoint resolved by ARP or
//! neighbour discovery, unicast to the remote port, broadcast
//! replicated once to the remote chassis and delivered there, and a VNI the
//! receiver does not have dropped with its reason.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::drop::DropReason;
use dataplane::engine::{Engine, EngineConfig};
use dataplane::flow::FlowDesc;
use dataplane::ids::PortId;
use dataplane::packet::HeapPool;
use dataplane::port::memory::{RingPort, RingPortHandle};
use dataplane::port::Port;
use dataplane::tables::{
    Encap, LogicalPort, LogicalSwitch, RemoteChassis, TablePublisher, Tables, Underlay,
};
use dataplane::wire::MacAddr;

const M1: &str = "00:00:00:00:00:01";
const M2: &str = "00:00:00:00:00:02";

fn frame(desc: &str) -> Vec<u8> {
    desc.parse::<FlowDesc>().unwrap().to_frame().unwrap()
}

struct Chassis {
    engine: Engine<HeapPool>,
    vm: RingPortHandle,
    uplink: RingPortHandle,
}

fn port(name: &str, key: u32, addr: &str, local: Option<u16>, chassis: Option<u16>) -> LogicalPort {
    LogicalPort {
        local_port: local.map(PortId),
        chassis: chassis.map(dataplane::ids::ChassisIdx),
        ..LogicalPort::vif(name, key, addr.parse().unwrap(), true)
    }
}

/// Chassis `me`'s tunnel endpoint: 192.168.100.2`me` or fd00:64::2`me`.
fn endpoint(me: u8, ipv6: bool) -> IpAddr {
    if ipv6 {
        format!("fd00:64::2{me}").parse().unwrap()
    } else {
        Ipv4Addr::new(192, 168, 100, 20 + me).into()
    }
}

/// Chassis `me` (1 or 2) hosting vm`me`; the other VM is remote.
fn chassis(me: u8, encap: Encap, ipv6: bool) -> Chassis {
    let (vm_p, vm) = RingPort::new("vm", 64);
    let (up_p, uplink) = RingPort::new("uplink", 64);
    let other = 3 - me;
    let underlay = Underlay {
        port: PortId(1),
        ip: endpoint(me, ipv6),
        mac: MacAddr([2, 0, 0, 0, 0, me]),
        mtu: 1500,
        chassis: vec![RemoteChassis {
            name: format!("hv{other}"),
            ip: endpoint(other, ipv6),
            encap,
            mac: None,
            vtep: false,
            csum: false,
        }],
    };
    let mine = |n: u8| {
        if n == me {
            (Some(0), None)
        } else {
            (None, Some(0))
        }
    };
    let (l1, c1) = mine(1);
    let (l2, c2) = mine(2);
    let switches = vec![LogicalSwitch {
        name: "ls1".into(),
        tunnel_key: 5,
        ports: vec![
            port("vm1", 1, &format!("{M1} 10.0.0.1"), l1, c1),
            port("vm2", 2, &format!("{M2} 10.0.0.2"), l2, c2),
        ],
    }];
    let tables = Tables::compile_with_underlay(&switches, Some(underlay)).unwrap();
    let engine = Engine::start(
        &EngineConfig {
            workers: 1,
            idle_sleep: Some(Duration::from_micros(20)),
            ..EngineConfig::default()
        },
        vec![
            Arc::new(vm_p) as Arc<dyn Port<HeapPool>>,
            Arc::new(up_p) as Arc<dyn Port<HeapPool>>,
        ],
        TablePublisher::new(tables),
        |_| HeapPool::new(256, 2048),
    )
    .unwrap();
    Chassis { engine, vm, uplink }
}

/// Moves frames between the two uplinks until `done` holds.
fn run_wire(a: &Chassis, b: &Chassis, mut done: impl FnMut() -> bool) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out; wire saw {} frames",
            seen.len()
        );
        let mut idle = true;
        while let Some(f) = a.uplink.take() {
            seen.push(f.clone());
            assert!(b.uplink.inject(&f));
            idle = false;
        }
        while let Some(f) = b.uplink.take() {
            seen.push(f.clone());
            assert!(a.uplink.inject(&f));
            idle = false;
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    seen
}

/// Sends `f` from `a`'s VM and moves the wire until `b`'s VM receives it.
/// Each chassis has one worker, and the rings and the wire keep order, so
/// when `f` arrives both chassis have handled everything sent before it.
/// Returns what crossed the wire meanwhile and what `b`'s VM received
/// before `f`.
fn deliver(a: &Chassis, b: &Chassis, f: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    assert!(a.vm.inject(f));
    let (mut before, mut arrived) = (Vec::new(), false);
    let wire = run_wire(a, b, || {
        while let Some(g) = b.vm.take() {
            if g == f {
                arrived = true;
                break;
            }
            before.push(g);
        }
        arrived
    });
    (wire, before)
}

fn across(encap: Encap, ipv6: bool) {
    let hv1 = chassis(1, encap, ipv6);
    let hv2 = chassis(2, encap, ipv6);
    let udp = frame(&format!(
        "eth.src={M1} eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53"
    ));
    // The first packet finds hv2's endpoint unresolved: dropped (counted),
    // an ARP request (or neighbour solicitation) goes out and hv2 answers
    // for its tunnel address.
    assert!(hv1.vm.inject(&udp));
    let mut got = None;
    run_wire(&hv1, &hv2, || {
        hv1.engine.drops(DropReason::NeighborUnresolved) == 1
    });
    run_wire(&hv1, &hv2, || {
        // Keep sending until hv1 learned hv2's MAC and the packet arrives.
        if got.is_none() {
            got = hv2.vm.take();
            if got.is_none() {
                hv1.vm.inject(&udp);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        got.is_some()
    });
    assert_eq!(got.unwrap(), udp, "the inner frame arrives unchanged");

    // Unicast back, and what the wire carries.
    let back = frame(&format!(
        "eth.src={M2} eth.dst={M1} ip4.src=10.0.0.2 ip4.dst=10.0.0.1 udp.dst=53"
    ));
    assert!(hv2.vm.inject(&back));
    let mut got = None;
    let wire = run_wire(&hv1, &hv2, || {
        got = got.take().or_else(|| hv1.vm.take());
        got.is_some()
    });
    assert_eq!(got.unwrap(), back);
    let tunneled = wire.last().unwrap();
    // The UDP header's offset.
    let u = if ipv6 {
        assert_eq!(&tunneled[12..14], &[0x86, 0xdd]);
        assert_eq!(tunneled[20], 17, "UDP right after the IPv6 header");
        assert_ne!(&tunneled[60..62], &[0, 0], "UDP checksum over IPv6");
        54
    } else {
        assert_eq!(tunneled[20] & 0x40, 0x40, "DF set on the outer header");
        34
    };
    let dport = match encap {
        Encap::Geneve => 6081,
        Encap::Vxlan => 4789,
    };
    let vni_at = u + 8 + 4;
    assert_eq!(
        u16::from_be_bytes([tunneled[u + 2], tunneled[u + 3]]),
        dport
    );
    let vni = u32::from_be_bytes([
        0,
        tunneled[vni_at],
        tunneled[vni_at + 1],
        tunneled[vni_at + 2],
    ]);
    match encap {
        // VNI = datapath key; OVN's option: ingress 2, egress 1.
        Encap::Geneve => {
            assert_eq!(vni, 5);
            let o = u + 16;
            assert_eq!(&tunneled[o..o + 6], &[0x01, 0x02, 0x80, 0x01, 0x00, 0x02]);
            assert_eq!(&tunneled[o + 6..o + 8], &[0x00, 0x01]);
        }
        // VNI = datapath key | egress key << 12.
        Encap::Vxlan => assert_eq!(vni, 5 | (1 << 12)),
    }

    // Retries of the first phase may still be on their way: a packet sent
    // after them arrives after them. Then start clean.
    let marker = frame(&format!(
        "eth.src={M1} eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=54"
    ));
    deliver(&hv1, &hv2, &marker);
    while hv1.vm.take().or_else(|| hv2.vm.take()).is_some() {}

    // Broadcast from vm1: one copy to hv2, delivered to vm2 there, and not
    // sent back into the overlay.
    let bcast = frame(&format!(
        "eth.src={M1} eth.dst=ff:ff:ff:ff:ff:ff ip4.src=10.0.0.1 ip4.dst=10.0.0.255 udp.dst=137"
    ));
    assert!(hv1.vm.inject(&bcast));
    let mut got = None;
    let wire = run_wire(&hv1, &hv2, || {
        got = got.take().or_else(|| hv2.vm.take());
        got.is_some()
    });
    assert_eq!(got.unwrap(), bcast);
    assert_eq!(wire.len(), 1, "one tunnel copy");
    // Once a unicast sent after the broadcast has arrived, both chassis
    // have handled the broadcast: a second tunnel copy, a second delivery
    // or a copy hv2 sent back into the overlay would have shown by now.
    let (wire, before) = deliver(&hv1, &hv2, &marker);
    assert_eq!(
        wire.len(),
        1,
        "only the unicast crossed after the broadcast"
    );
    assert!(before.is_empty(), "vm2 got the broadcast once: {before:?}");
    assert!(
        hv2.uplink.take().is_none(),
        "hv2 did not re-flood into the overlay"
    );
}

#[test]
fn geneve_between_two_chassis() {
    across(Encap::Geneve, false);
}

#[test]
fn vxlan_between_two_chassis() {
    across(Encap::Vxlan, false);
}

#[test]
fn geneve_over_ipv6_between_two_chassis() {
    across(Encap::Geneve, true);
}

#[test]
fn vxlan_over_ipv6_between_two_chassis() {
    across(Encap::Vxlan, true);
}

#[test]
fn tunnel_packets_for_unknown_datapaths_are_dropped() {
    let hv1 = chassis(1, Encap::Geneve, false);
    // A Geneve packet from hv2 for VNI 99, which hv1 does not have.
    let mut b = dataplane::packet::HeapBuf::from_frame(&frame(&format!(
        "eth.src={M2} eth.dst={M1} ip4.src=10.0.0.2 ip4.dst=10.0.0.1 udp.dst=53"
    )));
    let t = dataplane::overlay::Tunnel {
        encap: Encap::Geneve,
        src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
        dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        src_ip: endpoint(2, false),
        dst_ip: endpoint(1, false),
        datapath_key: 99,
        ingress_key: 2,
        egress_key: 1,
        csum: false,
    };
    assert!(dataplane::overlay::encapsulate(&mut b, &t));
    use dataplane::packet::PacketBuf;
    assert!(hv1.uplink.inject(b.data()));
    // Counted after the worker transmitted its burst: nothing went out.
    common::wait_until("the unknown-VNI drop", || {
        hv1.engine.drops(DropReason::TunnelUnknownDatapath) != 0
    });
    assert!(hv1.vm.take().is_none());
}

/// `switchyard trace --uplink`: a tunnel packet is explained stage by stage
/// through the forwarding code, for a port here and for a VNI not here.
#[test]
fn tunnel_packets_are_traced_through_decapsulation() {
    use dataplane::packet::{HeapBuf, PacketBuf};
    use dataplane::pipeline::{trace_uplink, Verdict};
    let underlay = Underlay {
        port: PortId(1),
        ip: endpoint(1, false),
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        mtu: 1500,
        chassis: vec![RemoteChassis {
            name: "hv2".into(),
            ip: endpoint(2, false),
            encap: Encap::Geneve,
            mac: None,
            vtep: false,
            csum: false,
        }],
    };
    let switches = vec![LogicalSwitch {
        name: "ls1".into(),
        tunnel_key: 5,
        ports: vec![
            port("vm1", 1, &format!("{M1} 10.0.0.1"), Some(0), None),
            port("vm2", 2, &format!("{M2} 10.0.0.2"), None, Some(0)),
        ],
    }];
    let tables = Tables::compile_with_underlay(&switches, Some(underlay.clone())).unwrap();
    let packet = |vni: u32| {
        let mut b = HeapBuf::from_frame(&frame(&format!(
            "eth.src={M2} eth.dst={M1} ip4.src=10.0.0.2 ip4.dst=10.0.0.1 udp.dst=53"
        )));
        let t = dataplane::overlay::Tunnel {
            encap: Encap::Geneve,
            src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            dst_mac: underlay.mac,
            src_ip: endpoint(2, false),
            dst_ip: underlay.ip,
            datapath_key: vni,
            ingress_key: 2,
            egress_key: 1,
            csum: false,
        };
        assert!(dataplane::overlay::encapsulate(&mut b, &t));
        HeapBuf::from_frame(b.data())
    };
    let r = trace_uplink(&tables, packet(5));
    assert_eq!(r.verdict, Verdict::Output(PortId(0)));
    let text: Vec<String> = r.stages.iter().map(|(s, d)| format!("{s}: {d}")).collect();
    assert!(
        text.iter()
            .any(|l| l.contains("tunnel packet for datapath 5 (\"ls1\"), ingress port key 2")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|l| l.contains("egress port key 1")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|l| l.starts_with("output: to \"vm1\"")),
        "{text:?}"
    );
    let r = trace_uplink(&tables, packet(9));
    assert_eq!(r.verdict, Verdict::Drop(DropReason::TunnelUnknownDatapath));
    assert!(r
        .stages
        .iter()
        .any(|(_, d)| d.contains("tunnel_unknown_datapath")));
    // ARP from the other chassis is learned from; the host's own traffic
    // is left to it: neither is a drop.
    let garp = frame("arp eth.src=02:00:00:00:00:02 eth.dst=ff:ff:ff:ff:ff:ff arp.op=1 arp.sha=02:00:00:00:00:02 arp.spa=192.168.100.22 arp.tpa=192.168.100.22");
    let r = trace_uplink(&tables, HeapBuf::from_frame(&garp));
    assert_eq!(r.verdict, Verdict::Consumed);
    assert!(r.outputs.is_empty());
    let host = frame("eth.src=02:00:00:00:00:02 eth.dst=02:00:00:00:00:01 ip4.src=192.168.100.22 ip4.dst=192.168.100.11 tcp.dst=22");
    let r = trace_uplink(&tables, HeapBuf::from_frame(&host));
    assert_eq!(r.verdict, Verdict::Consumed);
    assert!(
        r.stages
            .iter()
            .any(|(_, d)| d.contains("the host's own traffic")),
        "{:?}",
        r.stages
    );
}

/// When a remote endpoint's MAC changes (a gratuitous ARP from its address
/// with a new MAC), tunnel packets go to the new MAC from then on.
#[test]
fn a_remote_endpoint_moving_to_a_new_mac_is_followed() {
    let hv1 = chassis(1, Encap::Geneve, false);
    let hv2 = chassis(2, Encap::Geneve, false);
    let udp = frame(&format!(
        "eth.src={M1} eth.dst={M2} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53"
    ));
    // Resolve hv2 and get one packet across.
    let mut got = None;
    run_wire(&hv1, &hv2, || {
        if got.is_none() {
            hv1.vm.inject(&udp);
            std::thread::sleep(Duration::from_millis(5));
            got = hv2.vm.take();
        }
        got.is_some()
    });
    while hv1.uplink.take().is_some() {}
    let moved = "02:00:00:00:00:99";
    let garp = frame(&format!(
        "arp eth.src={moved} eth.dst=ff:ff:ff:ff:ff:ff arp.op=1 arp.sha={moved} arp.spa=192.168.100.22 arp.tpa=192.168.100.22"
    ));
    assert!(hv1.uplink.inject(&garp));
    // The outer eth.dst of the tunnel packet that carries one more `udp`.
    let sent_to = || -> Vec<u8> {
        assert!(hv1.vm.inject(&udp));
        let f = common::wait_for("the tunnel packet", || {
            hv1.uplink.take().filter(|f| f[12..14] == [0x08, 0x00])
        });
        f[0..6].to_vec()
    };
    // Until hv1 has handled the gratuitous ARP, packets may still go to the
    // old MAC; once one goes to the new MAC, every later one does.
    let new_mac = [2, 0, 0, 0, 0, 0x99];
    common::wait_until("a tunnel packet to the new MAC", || sent_to() == new_mac);
    for _ in 0..3 {
        assert_eq!(sent_to(), new_mac, "outer eth.dst after the move");
    }
}
