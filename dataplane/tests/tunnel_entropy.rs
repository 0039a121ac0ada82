//! Tunnel entropy and checksums through a worker: what leaves the uplink
//! when a VM sends to a port on another chassis.
//!
//! - Distinct inner flows, IPv6 ones included, get distinct outer UDP
//!   source ports (RFC 8926 §3.3, RFC 7348 §5) and, over an IPv6 underlay,
//!   distinct flow labels (RFC 6438), so the underlay's ECMP spreads them.
//! - One flow keeps one source port: every packet of a ping run (an ICMP
//!   echo flow, whose checksum and sequence change per packet) and of a UDP
//!   flow with changing payload.
//! - A chassis whose `Encap` asks for checksums (`options:csum=true`)
//!   receives Geneve with a valid outer UDP checksum over IPv4 too; without
//!   it, IPv4 carries none (zero) and IPv6 always carries one (RFC 8200
//!   §8.1).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use dataplane::engine::Worker;
use dataplane::flow::{FlowDesc, L3, L4};
use dataplane::ids::{ChassisIdx, PortId};
use dataplane::packet::HeapPool;
use dataplane::port::memory::{RingPort, RingPortHandle};
use dataplane::port::Port;
use dataplane::tables::{
    Encap, LogicalPort, LogicalSwitch, RemoteChassis, TablePublisher, Tables, Underlay,
};
use dataplane::wire::{checksum, layout, MacAddr};

const VM: PortId = PortId(0);
const UPLINK: PortId = PortId(1);

/// vm1 here (port 0, no port security: the test sends many sources), vm2
/// on hv2, whose endpoint MAC is configured.
fn worker(ipv6_underlay: bool, csum: bool) -> (Worker<HeapPool>, RingPortHandle, RingPortHandle) {
    let (us, hv2): (IpAddr, IpAddr) = if ipv6_underlay {
        ("fd00:64::1".parse().unwrap(), "fd00:64::2".parse().unwrap())
    } else {
        (
            Ipv4Addr::new(192, 168, 100, 1).into(),
            Ipv4Addr::new(192, 168, 100, 2).into(),
        )
    };
    let underlay = Underlay {
        port: UPLINK,
        ip: us,
        mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
        mtu: 1500,
        chassis: vec![RemoteChassis {
            name: "hv2".into(),
            ip: hv2,
            encap: Encap::Geneve,
            mac: Some(MacAddr([2, 0, 0, 0, 0, 0x22])),
            vtep: false,
            csum,
        }],
    };
    let vm1 = LogicalPort {
        local_port: Some(VM),
        ..LogicalPort::vif("vm1", 1, "unknown".parse().unwrap(), false)
    };
    let vm2 = LogicalPort {
        chassis: Some(ChassisIdx(0)),
        ..LogicalPort::vif("vm2", 2, "00:00:00:00:00:02".parse().unwrap(), false)
    };
    let tables = Tables::compile_with_underlay(
        &[LogicalSwitch {
            name: "ls1".into(),
            tunnel_key: 5,
            ports: vec![vm1, vm2],
        }],
        Some(underlay),
    )
    .unwrap();
    let (vm_p, vm) = RingPort::new("vm", 256);
    let (up_p, up) = RingPort::new("uplink", 256);
    let ports: Vec<Arc<dyn Port<HeapPool>>> = vec![Arc::new(vm_p), Arc::new(up_p)];
    let w = Worker::new(
        &ports,
        &[VM],
        TablePublisher::new(tables),
        HeapPool::new(256, 2048),
        64,
    )
    .unwrap();
    (w, vm, up)
}

/// Sends each frame from vm1; returns what left the uplink, one per frame.
fn encapsulated(ipv6_underlay: bool, csum: bool, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let (mut w, vm, up) = worker(ipv6_underlay, csum);
    frames
        .iter()
        .map(|f| {
            assert!(vm.inject(f));
            while w.poll() == 0 {}
            w.flush();
            let out = up.take().expect("a tunnel packet on the uplink");
            assert!(up.take().is_none());
            out
        })
        .collect()
}

fn desc(l3: L3, l4: L4, payload: usize) -> Vec<u8> {
    FlowDesc {
        inport: None,
        eth_src: MacAddr([0, 0, 0, 0, 0, 1]),
        eth_dst: MacAddr([0, 0, 0, 0, 0, 2]),
        vlan: None,
        l3,
        l4,
        payload,
    }
    .to_frame()
    .unwrap()
}

fn ip6(src: u16, dst: u16) -> L3 {
    L3::Ipv6 {
        src: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, src),
        dst: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, dst),
        hop_limit: 64,
    }
}

fn ip4(src: u8, dst: u8) -> L3 {
    L3::Ipv4 {
        src: Ipv4Addr::new(10, 0, 0, src),
        dst: Ipv4Addr::new(10, 0, 0, dst),
        ttl: 64,
    }
}

/// The outer UDP source port and, over IPv6, the flow label.
fn entropy(outer: &[u8]) -> (u16, Option<u32>) {
    let lay = layout::parse(outer).unwrap();
    let l4 = usize::from(lay.l4);
    let sport = u16::from_be_bytes([outer[l4], outer[l4 + 1]]);
    let label = (outer[12..14] == [0x86, 0xdd])
        .then(|| u32::from_be_bytes([0, outer[15] & 0x0f, outer[16], outer[17]]));
    (sport, label)
}

/// Writes the L4 checksum of a frame whose header was changed.
fn refill(f: &mut [u8]) {
    let lay = layout::parse(f).unwrap();
    checksum::fill_l4(f, &lay).unwrap();
}

fn outer_udp_checksum(outer: &[u8]) -> u16 {
    let lay = layout::parse(outer).unwrap();
    let l4 = usize::from(lay.l4);
    u16::from_be_bytes([outer[l4 + 6], outer[l4 + 7]])
}

#[test]
fn distinct_ipv6_flows_get_distinct_source_ports_and_flow_labels() {
    // 64 TCP and UDP flows that differ only in their IPv6 addresses or
    // ports: a hash that read IPv4 offsets would see the same bytes.
    let mut frames = Vec::new();
    for i in 0..32u16 {
        frames.push(desc(
            ip6(0x10 + i, 0x99),
            L4::Udp { src: 5000, dst: 53 },
            10,
        ));
        frames.push(desc(
            ip6(0x10, 0x99),
            L4::Tcp {
                src: 40000 + i,
                dst: 22,
                flags: 2,
            },
            0,
        ));
    }
    for ipv6_underlay in [false, true] {
        let out = encapsulated(ipv6_underlay, false, &frames);
        let sports: BTreeSet<u16> = out.iter().map(|o| entropy(o).0).collect();
        // 14 bits of source port for 64 flows: a collision or two at most.
        assert!(sports.len() >= 62, "{} distinct source ports", sports.len());
        assert!(sports.iter().all(|&p| p >= 49152), "{sports:?}");
        if ipv6_underlay {
            let labels: BTreeSet<u32> = out.iter().filter_map(|o| entropy(o).1).collect();
            assert!(labels.len() >= 62, "{} distinct flow labels", labels.len());
            assert!(!labels.contains(&0));
        }
    }
}

#[test]
fn one_ping_run_and_one_udp_flow_keep_one_source_port() {
    for ipv6 in [false, true] {
        // Echo requests of one run: one identifier, the sequence number
        // (and so the checksum) changing, as `ping` sends them.
        let ping: Vec<Vec<u8>> = (0..16u8)
            .map(|seq| {
                let (l3, l4) = if ipv6 {
                    (ip6(1, 2), L4::Icmp6 { ty: 128, code: 0 })
                } else {
                    (ip4(1, 2), L4::Icmp4 { ty: 8, code: 0 })
                };
                let mut f = desc(l3, l4, 56);
                let icmp = usize::from(layout::parse(&f).unwrap().l4);
                f[icmp + 4..icmp + 6].copy_from_slice(&[0x12, 0x34]); // identifier
                f[icmp + 7] = seq;
                refill(&mut f);
                f
            })
            .collect();
        let udp: Vec<Vec<u8>> = (0..16)
            .map(|n| {
                let l3 = if ipv6 { ip6(1, 2) } else { ip4(1, 2) };
                desc(
                    l3,
                    L4::Udp {
                        src: 7000,
                        dst: 7001,
                    },
                    20 + n,
                )
            })
            .collect();
        for (what, frames) in [("ping", &ping), ("udp", &udp)] {
            let out = encapsulated(ipv6, false, frames);
            let sports: BTreeSet<u16> = out.iter().map(|o| entropy(o).0).collect();
            assert_eq!(sports.len(), 1, "{what} over IPv6: {ipv6}: {sports:?}");
        }
        // Another ping run (another identifier) is another flow.
        let mut other = ping[0].clone();
        let icmp = usize::from(layout::parse(&other).unwrap().l4);
        other[icmp + 4] = 0x56;
        refill(&mut other);
        let out = encapsulated(ipv6, false, &[ping[0].clone(), other]);
        assert_ne!(entropy(&out[0]).0, entropy(&out[1]).0);
    }
}

#[test]
fn encap_csum_option_gives_checksummed_geneve() {
    let frames = vec![
        desc(ip4(1, 2), L4::Udp { src: 1, dst: 2 }, 33),
        desc(
            ip6(1, 2),
            L4::Tcp {
                src: 1,
                dst: 2,
                flags: 2,
            },
            0,
        ),
    ];
    for (ipv6_underlay, csum) in [(false, true), (false, false), (true, false), (true, true)] {
        for outer in encapsulated(ipv6_underlay, csum, &frames) {
            let lay = layout::parse(&outer).unwrap();
            let sum = outer_udp_checksum(&outer);
            if csum || ipv6_underlay {
                assert_ne!(sum, 0, "csum {csum}, IPv6 underlay {ipv6_underlay}");
                assert_eq!(checksum::verify_l4(&outer, &lay), Ok(true));
            } else {
                assert_eq!(sum, 0, "RFC 8926 §3.3: IPv4 may omit it, and OVN does");
            }
        }
    }
}
