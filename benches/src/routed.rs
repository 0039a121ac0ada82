//! The routed scenarios' topology: the benchmark's 64 ports split over two
//! switches (ports 0..31 on `bench-a`, 10.0.0.0/24; 32..63 on `bench-b`,
//! 10.1.0.0/24) joined by one router, optionally with thousands of static
//! routes beside the two connected networks (a large routing table the
//! flows' lookups walk on flow-cache misses). Every flow crosses the
//! router: sent to the router port's MAC, it leaves rewritten (MACs, TTL)
//! out of a port of the other switch.
//!
//! With a remote chassis (`routed-encap-10k`, `full-pipeline-10k`)
//! `bench-b`'s VMs are bound on `hv2`: as OVN does, the router runs here,
//! on the sender's chassis, and the rewritten packet is encapsulated in
//! `bench-b`'s datapath (VNI 2) from its router port to the VM's port. The
//! full pipeline adds the ACL scenarios' Neutron-shaped allow-related
//! security group over both switches' VMs ([`security_group`]): the
//! sender's from-lport stage tracks every packet in its zone here; the
//! to-lport stage runs on the destination chassis.

use std::net::Ipv4Addr;

use dataplane::classifier::{AclAction, AclConfig};
use dataplane::flow::{FlowDesc, L3, L4};
use dataplane::ids::{ChassisIdx, PortId};
use dataplane::routes::{LogicalRouter, NextHop, RoutePolicy, RouterPort, StaticRoute};
use dataplane::tables::{LogicalPort, LogicalSwitch, PortType, TableError, Tables, Underlay};
use dataplane::wire::MacAddr;

use super::{port_mac, PORTS};

const HALF: usize = PORTS / 2;

fn router_mac(side: usize) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0xff, side as u8 + 1])
}

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (i / HALF) as u8, 0, (i % HALF) as u8 + 1)
}

fn side_address(side: usize) -> String {
    format!("{} 10.{side}.0.254/24", router_mac(side))
}

/// The tables: two switches, one router with `routes` extra /32 static
/// routes (to 172.16.0.0/12, via a VM of `bench-b`); with an `underlay`,
/// `bench-b`'s VMs are on its first remote chassis.
pub(crate) fn tables(routes: usize, underlay: Option<Underlay>) -> Result<Tables, TableError> {
    let remote = underlay.is_some();
    let switch = |side: usize| LogicalSwitch {
        name: format!("bench-{}", (b'a' + side as u8) as char),
        tunnel_key: side as u32 + 1,
        ports: (side * HALF..(side + 1) * HALF)
            .map(|i| {
                let address = format!("{} {}", port_mac(i), ip(i))
                    .parse()
                    .expect("valid address");
                let here = !remote || side == 0;
                LogicalPort {
                    local_port: here.then_some(PortId(i as u16)),
                    chassis: (!here).then_some(ChassisIdx(0)),
                    ..LogicalPort::vif(format!("vm{i}"), i as u32 + 1, address, true)
                }
            })
            .chain([LogicalPort {
                port_type: PortType::Router,
                ..LogicalPort::vif(
                    format!("bench-{side}-lr"),
                    1000,
                    side_address(side).parse().expect("valid address"),
                    false,
                )
            }])
            .collect(),
    };
    let port = |side: usize| RouterPort {
        name: format!("lrp{side}"),
        address: side_address(side).parse().expect("valid address"),
        peer: Some(format!("bench-{side}-lr")),
    };
    let routes = (0..routes)
        .map(|r| StaticRoute {
            prefix: format!("{}/32", Ipv4Addr::from(0xac10_0000 + r as u32))
                .parse()
                .expect("valid prefix"),
            policy: RoutePolicy::DstIp,
            nexthop: NextHop::Ip(ip(HALF).into()),
            output_port: None,
        })
        .collect();
    Ok(
        Tables::compile_with_underlay(&[switch(0), switch(1)], underlay)?.with_routers(&[
            LogicalRouter {
                name: "bench-lr".into(),
                tunnel_key: 3,
                ports: vec![port(0), port(1)],
                routes,
                mac_bindings: vec![],
                learn_known_only: false,
            },
        ]),
    )
}

/// Flow i from port `i % 64` to a port of the other switch, through the
/// router, with a distinct UDP 5-tuple.
pub(crate) fn flows(n: usize) -> Vec<Vec<FlowDesc>> {
    let mut by_port = vec![Vec::new(); PORTS];
    for i in 0..n {
        let s = i % PORTS;
        let d = (1 - s / HALF) * HALF + (i / PORTS) % HALF;
        by_port[s].push(flow(i, s, d));
    }
    by_port
}

/// Flow i from local port `i % 32` (on `bench-a`) to a VM of `bench-b` on
/// the remote chassis, through the router.
pub(crate) fn flows_to_remote(n: usize) -> Vec<Vec<FlowDesc>> {
    let mut by_port = vec![Vec::new(); PORTS];
    for i in 0..n {
        let s = i % HALF;
        by_port[s].push(flow(i, s, HALF + (i / HALF) % HALF));
    }
    by_port
}

/// The ACL scenarios' allow-related security group ([`super::acl`]) over
/// the VMs of both switches.
pub(crate) fn security_group() -> AclConfig {
    let ips: Vec<Ipv4Addr> = (0..PORTS).map(ip).collect();
    let mut cfg = super::acl::security_group(&ips, AclAction::AllowRelated);
    for a in &mut cfg.acls {
        a.switches = vec!["bench-a".into(), "bench-b".into()];
    }
    cfg
}

/// Port `s`'s flow `i` to port `d`, sent to its router port's MAC.
fn flow(i: usize, s: usize, d: usize) -> FlowDesc {
    FlowDesc {
        inport: None,
        eth_src: port_mac(s),
        eth_dst: router_mac(s / HALF),
        vlan: None,
        l3: L3::Ipv4 {
            src: ip(s),
            dst: ip(d),
            ttl: 64,
        },
        l4: L4::Udp {
            src: 1024 + (i % 60_000) as u16,
            dst: 5000 + (i / 60_000) as u16,
        },
        payload: 18,
    }
}
