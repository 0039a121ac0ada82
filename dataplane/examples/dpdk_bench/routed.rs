//! `dpdk-routed-10k`: the in-memory `routed-10k` topology (benches/src/
//! routed.rs) cut down to the two DPDK ports. vm0 (local port 0, the
//! `net_pcap` source) on switch `bench-a`, 10.0.0.0/24, and vm1 (local
//! port 1, the `net_null` sink) on `bench-b`, 10.1.0.0/24, both with port
//! security, joined by router `bench-lr` (lrp0 02:00:00:00:ff:01
//! 10.0.0.254/24, lrp1 02:00:00:00:ff:02 10.1.0.254/24). vm0 sends its
//! 10,000 UDP 5-tuples to the router port's MAC; every packet crosses the
//! router and leaves rewritten (eth.src lrp1, eth.dst vm1, TTL 63) out of
//! vm1's port. `benches/compare-ovs-dpdk.sh` programs OVS-DPDK with the same
//! addresses: keep the two in step.
//!
//! `dpdk-routed-encap-10k` puts vm1 on the remote chassis hv2 behind the
//! uplink (the sink): the router runs here, on the sender's chassis, and
//! the rewritten frame leaves in Geneve in bench-b's datapath (VNI 2, OVN's
//! option from bench-b's router port, key 2, to vm1, key 1).
//! `dpdk-full-pipeline-10k` adds the allow-related security group of the
//! ACL scenarios over vm0 and vm1 ([`security_group`]): vm0's from-lport
//! stage tracks every packet in vm0's zone; vm1's to-lport stage runs on
//! hv2.

use std::net::Ipv4Addr;

use dataplane::classifier::{AclAction, AclConfig};
use dataplane::ids::{ChassisIdx, PortId};
use dataplane::routes::{LogicalRouter, RouterPort};
use dataplane::tables::{LogicalPort, LogicalSwitch, PortType, TableError, Tables, Underlay};
use dataplane::wire::MacAddr;

use crate::traffic::{mac, udp_frame};

/// Router port `side`'s MAC (lrp0 faces vm0, lrp1 vm1).
fn router_mac(side: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0xff, side + 1])
}

/// vm0's address (side 0) or vm1's (side 1).
fn vm_ip(side: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, side, 0, 1)
}

fn router_address(side: u8) -> String {
    format!("{} 10.{side}.0.254/24", router_mac(side))
}

/// The two switches and the router between them; with an `underlay`,
/// vm1 is on its remote chassis.
pub(crate) fn tables(underlay: Option<Underlay>) -> Result<Tables, TableError> {
    let remote = underlay.is_some();
    let switch = |side: u8| LogicalSwitch {
        name: format!("bench-{}", (b'a' + side) as char),
        tunnel_key: u32::from(side) + 1,
        ports: vec![
            LogicalPort {
                local_port: (side == 0 || !remote).then_some(PortId(side.into())),
                chassis: (side == 1 && remote).then_some(ChassisIdx(0)),
                ..LogicalPort::vif(
                    format!("vm{side}"),
                    1,
                    format!("{} {}", mac(side), vm_ip(side))
                        .parse()
                        .expect("valid address"),
                    true,
                )
            },
            LogicalPort {
                port_type: PortType::Router,
                ..LogicalPort::vif(
                    format!("bench-{side}-lr"),
                    2,
                    router_address(side).parse().expect("valid address"),
                    false,
                )
            },
        ],
    };
    let port = |side: u8| RouterPort {
        name: format!("lrp{side}"),
        address: router_address(side).parse().expect("valid address"),
        peer: Some(format!("bench-{side}-lr")),
    };
    Ok(
        Tables::compile_with_underlay(&[switch(0), switch(1)], underlay)?.with_routers(&[
            LogicalRouter {
                name: "bench-lr".into(),
                tunnel_key: 3,
                ports: vec![port(0), port(1)],
                routes: vec![],
                mac_bindings: vec![],
                learn_known_only: false,
            },
        ]),
    )
}

/// The ACL scenarios' allow-related security group over vm0 and vm1, on
/// both switches.
pub(crate) fn security_group() -> AclConfig {
    let mut cfg = crate::acl::security_group(&[vm_ip(0), vm_ip(1)], AclAction::AllowRelated);
    for a in &mut cfg.acls {
        a.switches = vec!["bench-a".into(), "bench-b".into()];
    }
    cfg
}

/// Flow `i`'s frame: vm0 to vm1 through the router, a distinct 5-tuple.
pub(crate) fn frame(i: usize) -> Result<Vec<u8>, String> {
    udp_frame(i, (mac(0), router_mac(0)), (vm_ip(0), vm_ip(1)))
        .to_frame()
        .map_err(|e| e.to_string())
}
