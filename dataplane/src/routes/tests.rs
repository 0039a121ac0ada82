//! Route compilation and lookup: OVN's priority order and ECMP groups.

use super::*;
use crate::tables::{LogicalPort, LogicalSwitch};

fn net(s: &str) -> IpCidr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One router with ports on two switches, and `routes`.
fn tables(routes: Vec<StaticRoute>) -> Tables {
    let sw = |name: &str, key: u32, vm: &str, lsp: &str| LogicalSwitch {
        name: name.into(),
        tunnel_key: key,
        ports: vec![
            LogicalPort::vif(
                vm,
                1,
                format!("00:00:00:00:0{key}:01").parse().unwrap(),
                false,
            ),
            LogicalPort {
                port_type: PortType::Router,
                ..LogicalPort::vif(
                    lsp,
                    2,
                    format!("00:00:00:00:ff:0{key}").parse().unwrap(),
                    false,
                )
            },
        ],
    };
    let lrp = |name: &str, addr: &str, peer: &str| RouterPort {
        name: name.into(),
        address: addr.parse().unwrap(),
        peer: Some(peer.into()),
    };
    Tables::compile(&[sw("ls1", 1, "vm1", "ls1-lr"), sw("ls2", 2, "vm2", "ls2-lr")])
        .unwrap()
        .with_routers(&[LogicalRouter {
            name: "lr0".into(),
            tunnel_key: 3,
            ports: vec![
                lrp(
                    "lrp1",
                    "00:00:00:00:ff:01 10.0.1.254/24 fd01::fe/64",
                    "ls1-lr",
                ),
                lrp(
                    "lrp2",
                    "00:00:00:00:ff:02 10.0.2.254/24 fd02::fe/64",
                    "ls2-lr",
                ),
            ],
            routes,
            mac_bindings: vec![],
            learn_known_only: false,
        }])
}

fn via(prefix: &str, policy: RoutePolicy, nexthop: &str) -> StaticRoute {
    StaticRoute {
        prefix: net(prefix),
        policy,
        nexthop: match nexthop {
            "discard" => NextHop::Discard,
            n => NextHop::Ip(ip(n)),
        },
        output_port: None,
    }
}

fn lookup(t: &Tables, src: &str, dst: &str) -> Option<(RouteKind, Vec<Member>)> {
    let r = &t.routers.routers[0];
    let table = if dst.contains(':') { &r.v6 } else { &r.v4 };
    table
        .lookup(ip(src), ip(dst))
        .map(|r| (r.kind, r.members.clone()))
}

#[test]
fn longest_prefix_then_connected_then_static_then_source() {
    let t = tables(vec![
        via("10.0.2.0/24", RoutePolicy::DstIp, "10.0.1.5"),
        via("10.0.0.0/8", RoutePolicy::DstIp, "10.0.1.6"),
        via("10.0.1.0/24", RoutePolicy::SrcIp, "10.0.2.7"),
        via("0.0.0.0/0", RoutePolicy::DstIp, "10.0.2.8"),
    ]);
    let member = |port, gw: &str| Member {
        port,
        gateway: Some(ip(gw)),
    };
    // Equal length: the connected network beats the static route.
    assert_eq!(
        lookup(&t, "10.0.1.1", "10.0.2.1").unwrap().0,
        RouteKind::Connected
    );
    // A /24 src-ip route beats a /8 dst-ip route.
    assert_eq!(
        lookup(&t, "10.0.1.1", "10.9.9.9").unwrap(),
        (
            RouteKind::Static(RoutePolicy::SrcIp),
            vec![member(1, "10.0.2.7")]
        )
    );
    assert_eq!(
        lookup(&t, "10.0.3.1", "10.9.9.9").unwrap().1,
        vec![member(0, "10.0.1.6")]
    );
    assert_eq!(
        lookup(&t, "10.0.3.1", "192.0.2.1").unwrap().1,
        vec![member(1, "10.0.2.8")]
    );
    assert_eq!(lookup(&t, "fd01::1", "fd03::1"), None);
    assert_eq!(
        lookup(&t, "fd01::1", "fd02::1").unwrap().1,
        vec![Member {
            port: 1,
            gateway: None
        }]
    );
}

#[test]
fn routes_of_one_prefix_form_an_ecmp_group_and_flows_keep_their_member() {
    let t = tables(vec![
        via("192.0.2.0/24", RoutePolicy::DstIp, "10.0.1.5"),
        via("192.0.2.0/24", RoutePolicy::DstIp, "10.0.2.5"),
        via("198.51.100.0/24", RoutePolicy::DstIp, "discard"),
        via("203.0.113.0/24", RoutePolicy::DstIp, "10.9.9.9"),
    ]);
    let (_, members) = lookup(&t, "10.0.1.1", "192.0.2.1").unwrap();
    assert_eq!(members.len(), 2);
    let mut seen = std::collections::HashSet::new();
    for i in 0..64u8 {
        let (s, d) = (ip(&format!("10.0.1.{i}")), ip("192.0.2.1"));
        let m = ecmp_pick(&members, s, d, 6);
        assert_eq!(m, ecmp_pick(&members, s, d, 6), "a flow keeps its member");
        seen.insert(m.port);
    }
    assert_eq!(seen.len(), 2, "flows spread over both members");
    assert_eq!(
        lookup(&t, "10.0.1.1", "198.51.100.1").unwrap().1,
        vec![],
        "discard"
    );
    // No router port reaches 10.9.9.9: OVN leaves the route out.
    assert_eq!(lookup(&t, "10.0.1.1", "203.0.113.1"), None);
    assert_eq!(t.routers.ignored.len(), 1);
}
