//! The ACL stages on a switch with three VMs: Neutron-shaped security
//! groups, OVN's stateful semantics, and the flow cache never caching a
//! verdict its key cannot tell apart.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cache::FlowCache;
use crate::classifier::{Acl, AclAction, AclConfig, Direction, Stateful};
use crate::conntrack::Conntrack;
use crate::drop::DropReason;
use crate::flow::FlowDesc;
use crate::ids::PortId;
use crate::packet::{HeapBuf, PacketBuf};
use crate::pipeline::{decide, decide_cached, trace, KeyKind, NoTrace, PacketMeta, Verdict};
use crate::tables::{LogicalPort, LogicalSwitch, Tables};

const VM1: &str =
    "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2";
const VM2: &str =
    "eth.src=00:00:00:00:00:02 eth.dst=00:00:00:00:00:01 ip4.src=10.0.0.2 ip4.dst=10.0.0.1";
const VM3: &str =
    "eth.src=00:00:00:00:00:03 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.3 ip4.dst=10.0.0.2";

fn acl(prio: u16, dir: Direction, action: AclAction, m: &str) -> Acl {
    Acl {
        name: format!("acl{prio}"),
        priority: prio,
        direction: dir,
        action,
        match_text: m.into(),
        expr: ovn_expr::parse(m).unwrap(),
        log: false,
        severity: Default::default(),
        meter: None,
        switches: vec!["ls".into()],
    }
}

fn tables(acls: Vec<Acl>, ct_limit: usize) -> (Tables, Arc<Stateful>) {
    let port = |name: &str, key: u32, addr: &str, local: PortId| LogicalPort {
        local_port: Some(local),
        ..LogicalPort::vif(name, key, addr.parse().unwrap(), true)
    };
    let mut t = Tables::compile(&[LogicalSwitch {
        name: "ls".into(),
        tunnel_key: 1,
        ports: vec![
            port("vm1", 1, "00:00:00:00:00:01 10.0.0.1 fd00::1", PortId(0)),
            port("vm2", 2, "00:00:00:00:00:02 10.0.0.2 fd00::2", PortId(1)),
            port("vm3", 3, "00:00:00:00:00:03 10.0.0.3", PortId(2)),
        ],
    }])
    .unwrap();
    let st = Stateful::new(Conntrack::new(ct_limit, 4));
    let cfg = AclConfig {
        acls,
        port_groups: BTreeMap::from([
            ("pg_web".into(), vec!["vm2".into()]),
            (
                "neutron_pg_drop".into(),
                vec!["vm1".into(), "vm2".into(), "vm3".into()],
            ),
        ]),
        address_sets: BTreeMap::from([
            ("pg_web_ip4".into(), vec!["10.0.0.2".into()]),
            (
                "clients".into(),
                vec!["10.0.0.1".into(), "192.168.0.0/16".into()],
            ),
        ]),
    };
    let errors = t.install_acls(&cfg, &st);
    assert!(errors.is_empty(), "{errors:?}");
    (t, st)
}

/// Neutron's shape: default drop for the group's ports, egress allowed,
/// ingress TCP 22 from the `clients` address set.
fn security_group() -> Vec<Acl> {
    use AclAction::*;
    use Direction::*;
    vec![
        acl(1001, FromLport, Drop, "inport == @neutron_pg_drop && ip"),
        acl(1001, ToLport, Drop, "outport == @neutron_pg_drop && ip"),
        acl(1002, FromLport, AllowRelated, "inport == @neutron_pg_drop && ip4"),
        acl(
            1002,
            ToLport,
            AllowRelated,
            "outport == @pg_web && ip4 && ip4.src == $clients && tcp && tcp.dst >= 22 && tcp.dst <= 22",
        ),
        acl(1002, ToLport, AllowRelated, "outport == @pg_web && ip4 && icmp4"),
    ]
}

fn send(t: &Tables, in_port: PortId, desc: &str) -> Verdict {
    let frame = desc.parse::<FlowDesc>().unwrap().to_frame().unwrap();
    decide(
        t,
        &mut HeapBuf::from_frame(&frame),
        &mut PacketMeta::new(in_port),
        &mut NoTrace,
    )
}

#[test]
fn tcp_from_the_address_set_connects_and_replies_flow() {
    let (t, st) = tables(security_group(), 100);
    let c = format!("{VM1} tcp.src=40000 tcp.dst=22");
    let s = format!("{VM2} tcp.src=22 tcp.dst=40000");
    assert_eq!(
        send(&t, PortId(0), &format!("{c} tcp.flags=0x02")),
        Verdict::Output(PortId(1))
    );
    // Two zones (vm1's ingress, vm2's egress) hold the connection.
    assert_eq!(st.conntrack.len(), 2);
    assert_eq!(
        send(&t, PortId(1), &format!("{s} tcp.flags=0x12")),
        Verdict::Output(PortId(0))
    );
    assert_eq!(
        send(&t, PortId(0), &format!("{c} tcp.flags=0x10")),
        Verdict::Output(PortId(1))
    );
    assert_eq!(
        send(&t, PortId(1), &format!("{s} tcp.flags=0x18")),
        Verdict::Output(PortId(0))
    );
    // Another port is not allowed in.
    assert_eq!(
        send(
            &t,
            PortId(0),
            &format!("{VM1} tcp.src=40001 tcp.dst=23 tcp.flags=0x02")
        ),
        Verdict::Drop(DropReason::AclDrop)
    );
    // A server cannot open a connection to the client outside the rules:
    // vm1's ingress has no to-lport allow.
    let to_vm1 = format!("{VM2} tcp.src=5555 tcp.dst=22 tcp.flags=0x02");
    assert_eq!(
        send(&t, PortId(1), &to_vm1),
        Verdict::Drop(DropReason::AclDrop)
    );
    let hits = st.hits();
    assert!(
        hits.iter().any(|(n, h)| n == "acl1002" && *h >= 2),
        "{hits:?}"
    );
}

#[test]
fn outside_the_address_set_is_dropped_icmp_follows_its_rule() {
    let (t, _) = tables(security_group(), 100);
    let c = format!("{VM3} tcp.src=40000 tcp.dst=22 tcp.flags=0x02");
    assert_eq!(send(&t, PortId(2), &c), Verdict::Drop(DropReason::AclDrop));
    assert_eq!(
        send(&t, PortId(2), &format!("{VM3} icmp4.type=8")),
        Verdict::Output(PortId(1))
    );
    // The echo reply is the reply of a committed connection.
    let reply = "eth.src=00:00:00:00:00:02 eth.dst=00:00:00:00:00:03 ip4.src=10.0.0.2 ip4.dst=10.0.0.3 icmp4.type=0";
    assert_eq!(send(&t, PortId(1), reply), Verdict::Output(PortId(2)));
    // A reply nobody asked for is invalid.
    let stray = "eth.src=00:00:00:00:00:02 eth.dst=00:00:00:00:00:01 ip4.src=10.0.0.2 ip4.dst=10.0.0.1 icmp4.type=0";
    assert_eq!(
        send(&t, PortId(1), stray),
        Verdict::Drop(DropReason::CtInvalid)
    );
    // ARP is not IP: the drop ACLs (`&& ip`) leave it alone.
    let arp =
        "eth.src=00:00:00:00:00:03 eth.dst=ff:ff:ff:ff:ff:ff arp arp.spa=10.0.0.3 arp.tpa=10.0.0.9";
    assert!(matches!(send(&t, PortId(2), arp), Verdict::Flood { .. }));
}

#[test]
fn a_drop_acl_cuts_an_established_connection() {
    let (mut t, st) = tables(security_group(), 100);
    let c = format!("{VM1} tcp.src=40000 tcp.dst=22");
    let s = format!("{VM2} tcp.src=22 tcp.dst=40000");
    send(&t, PortId(0), &format!("{c} tcp.flags=0x02"));
    send(&t, PortId(1), &format!("{s} tcp.flags=0x12"));
    assert_eq!(
        send(&t, PortId(0), &format!("{c} tcp.flags=0x10")),
        Verdict::Output(PortId(1))
    );
    let mut acls = security_group();
    acls.push(acl(
        2000,
        Direction::ToLport,
        AclAction::Drop,
        "outport == \"vm2\" && tcp.dst == 22",
    ));
    let cfg = AclConfig {
        acls,
        port_groups: BTreeMap::from([
            ("pg_web".into(), vec!["vm2".into()]),
            (
                "neutron_pg_drop".into(),
                vec!["vm1".into(), "vm2".into(), "vm3".into()],
            ),
        ]),
        address_sets: BTreeMap::from([("clients".into(), vec!["10.0.0.1".into()])]),
    };
    assert!(t.install_acls(&cfg, &st).is_empty());
    assert_eq!(
        send(&t, PortId(0), &format!("{c} tcp.flags=0x10")),
        Verdict::Drop(DropReason::AclDrop)
    );
    // The server's replies are cut too: the connection is blocked.
    assert_eq!(
        send(&t, PortId(1), &format!("{s} tcp.flags=0x10")),
        Verdict::Drop(DropReason::CtBlocked)
    );
    assert!(st.conntrack.dump(None).iter().any(|c| c.blocked));
}

#[test]
fn allow_stateless_skips_conntrack_and_no_acls_means_allow() {
    use AclAction::*;
    use Direction::*;
    let mut acls = security_group();
    acls.push(acl(
        2000,
        ToLport,
        AllowStateless,
        "outport == \"vm2\" && udp && udp.dst == 53",
    ));
    let (t, st) = tables(acls, 100);
    let q = format!("{VM3} udp.src=5000 udp.dst=53");
    // vm3's ingress ACLs commit (allow-related ip4); vm2's egress matches
    // allow-stateless and stays out of conntrack: one entry. (Priority
    // still orders it against drop ACLs, as in OVN's ls_out_acl.)
    assert_eq!(send(&t, PortId(2), &q), Verdict::Output(PortId(1)));
    assert_eq!(st.conntrack.len(), 1);
    let other = format!("{VM3} udp.src=5000 udp.dst=54");
    assert_eq!(
        send(&t, PortId(2), &other),
        Verdict::Drop(DropReason::AclDrop)
    );
    // A switch without ACLs allows everything.
    let (t, st) = tables(vec![], 100);
    assert_eq!(
        send(&t, PortId(2), &format!("{VM3} tcp.dst=23 tcp.flags=0x02")),
        Verdict::Output(PortId(1))
    );
    assert!(st.conntrack.is_empty());
}

#[test]
fn a_full_table_refuses_new_connections_and_keeps_old_ones() {
    let (t, st) = tables(security_group(), 2);
    let c = format!("{VM1} tcp.src=40000 tcp.dst=22");
    let s = format!("{VM2} tcp.src=22 tcp.dst=40000");
    assert_eq!(
        send(&t, PortId(0), &format!("{c} tcp.flags=0x02")),
        Verdict::Output(PortId(1))
    );
    let flood = format!("{VM1} tcp.src=40001 tcp.dst=22 tcp.flags=0x02");
    assert_eq!(
        send(&t, PortId(0), &flood),
        Verdict::Drop(DropReason::CtFull)
    );
    assert_eq!(
        send(&t, PortId(1), &format!("{s} tcp.flags=0x12")),
        Verdict::Output(PortId(0))
    );
    assert_eq!(
        send(&t, PortId(0), &format!("{c} tcp.flags=0x10")),
        Verdict::Output(PortId(1))
    );
    assert!(
        st.conntrack
            .stats
            .refused_full
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

/// On a stateless datapath the verdict depends on the TCP port, which the
/// plain switch key does not hold: the key widens, and packets that differ
/// only in the port get their own (right) cached verdicts.
#[test]
fn cached_verdicts_follow_l4_ports() {
    use AclAction::*;
    use Direction::*;
    let acls = vec![
        acl(100, FromLport, Allow, "inport == \"vm1\" && tcp.dst == 22"),
        acl(10, FromLport, Drop, "ip4"),
    ];
    let (t, _) = tables(acls, 100);
    assert_eq!(t.key_kind(PortId(0)), KeyKind::Acl);
    let mut cache = FlowCache::new(64);
    let mut run = |desc: &str| {
        let frame = desc.parse::<FlowDesc>().unwrap().to_frame().unwrap();
        decide_cached(&t, &mut cache, &mut HeapBuf::from_frame(&frame), PortId(0))
    };
    let ssh = format!("{VM1} tcp.src=40000 tcp.dst=22");
    let telnet = format!("{VM1} tcp.src=40000 tcp.dst=23");
    for _ in 0..3 {
        assert_eq!(run(&ssh), Verdict::Output(PortId(1)));
        assert_eq!(run(&telnet), Verdict::Drop(DropReason::AclDrop));
    }
    // The same with fragments: a first fragment's ports are not in any
    // key, so its verdict is never cached under one that lacks them.
    let frag = |port: u16| {
        let mut f = format!("{VM1} tcp.src=40000 tcp.dst={port}")
            .parse::<FlowDesc>()
            .unwrap()
            .to_frame()
            .unwrap();
        f[20] |= 0x20; // IPv4 "more fragments".
        f[24..26].copy_from_slice(&[0, 0]);
        let c = !crate::wire::checksum::data(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    };
    let mut cache = FlowCache::new(64);
    for _ in 0..3 {
        for (port, want) in [
            (22, Verdict::Output(PortId(1))),
            (23, Verdict::Drop(DropReason::AclDrop)),
        ] {
            let v = decide_cached(
                &t,
                &mut cache,
                &mut HeapBuf::from_frame(&frag(port)),
                PortId(0),
            );
            assert_eq!(v, want, "fragment to port {port}");
        }
    }
}

#[test]
fn trace_names_the_acl_and_the_conntrack_state() {
    let (t, st) = tables(security_group(), 100);
    let frame = format!("{VM1} tcp.src=40000 tcp.dst=22 tcp.flags=0x02")
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    let neighbors = crate::overlay::Neighbors::default();
    let r = trace(&t, &neighbors, PortId(0), HeapBuf::from_frame(&frame));
    assert_eq!(r.verdict, Verdict::Output(PortId(1)));
    let text: Vec<String> = r.stages.iter().map(|(s, d)| format!("{s}: {d}")).collect();
    let joined = text.join("\n");
    assert!(
        joined.contains(
            "acl (from-lport): ct zone 1: +new+trk: ACL \"acl1002\" (priority 1002, from-lport"
        ),
        "{joined}"
    );
    assert!(
        joined.contains(
            "acl (to-lport): ct zone 2: +new+trk: ACL \"acl1002\" (priority 1002, to-lport"
        ),
        "{joined}"
    );
    // Tracing commits nothing.
    assert!(st.conntrack.is_empty());
}

/// What a tunnel delivers to a local port goes through that port's
/// to-lport ACLs here, on the destination chassis, with the `inport` the
/// tunnel names; such verdicts stay out of the delivery cache.
#[test]
fn to_lport_acls_apply_to_tunnel_deliveries() {
    use crate::overlay::{Egress, Received};
    use crate::pipeline::tunnel_delivery;
    use crate::pipeline::tunnel_egress::DELIVERY_KEY;
    let (t, _) = tables(security_group(), 100);
    let deliver = |desc: &str, ingress_key: u16| {
        let frame = desc.parse::<FlowDesc>().unwrap().to_frame().unwrap();
        let r = Received {
            datapath: crate::ids::DatapathIdx(0),
            ingress_key,
            egress: Egress::Port(2),
            outer_len: 0,
        };
        tunnel_delivery(&t, &frame, &r, &mut NoTrace)
    };
    let (v, reads) = deliver(&format!("{VM1} tcp.src=40000 tcp.dst=22 tcp.flags=0x02"), 1);
    assert_eq!(v, Verdict::Output(PortId(1)));
    assert!(!DELIVERY_KEY.contains(reads));
    let (v, _) = deliver(&format!("{VM3} tcp.src=40000 tcp.dst=22 tcp.flags=0x02"), 3);
    assert_eq!(v, Verdict::Drop(DropReason::AclDrop));
}

proptest::proptest! {
    /// Hostile input through a stateful switch: well-formed TCP, UDP, ICMP
    /// (errors too) and fragments with random bytes overwritten and random
    /// truncation, from every port, through the cached and the full
    /// pipeline (with a connection table of four): never a panic.
    #[test]
    fn mangled_frames_through_stateful_acls_never_panic(
        seed in 0usize..6,
        edits in proptest::collection::vec((0usize..128, proptest::prelude::any::<u8>()), 0..8),
        cut in 14usize..160,
        in_port in 0u16..3,
    ) {
        let seeds = [
            format!("{VM1} tcp.src=40000 tcp.dst=22 tcp.flags=0x02"),
            format!("{VM2} tcp.src=22 tcp.dst=40000 tcp.flags=0x12"),
            format!("{VM1} udp.src=5000 udp.dst=53"),
            format!("{VM3} icmp4.type=8"),
            format!("{VM2} icmp4.type=3 icmp4.code=3 payload=28"),
            "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip6.src=fd00::1 ip6.dst=fd00::2 tcp.dst=22".to_string(),
        ];
        let (t, _) = tables(security_group(), 4);
        let mut f = seeds[seed].parse::<FlowDesc>().unwrap().to_frame().unwrap();
        for (at, b) in edits {
            if at < f.len() {
                f[at] = b;
            }
        }
        f.truncate(cut);
        let mut cache = FlowCache::new(16);
        for _ in 0..2 {
            let _ = decide_cached(&t, &mut cache, &mut HeapBuf::from_frame(&f), PortId(in_port));
            let _ = decide(&t, &mut HeapBuf::from_frame(&f), &mut PacketMeta::new(PortId(in_port)), &mut NoTrace);
        }
    }
}

/// Established traffic is served from the flow cache with its conntrack
/// checks, which run on every hit: once the connection is gone, the same
/// key no longer gives the cached verdict.
#[test]
fn established_traffic_hits_the_cache_and_conntrack_still_decides() {
    let (t, st) = tables(security_group(), 100);
    let mut cache = FlowCache::new(64);
    let run = |cache: &mut FlowCache, in_port: PortId, desc: &str| {
        let frame = desc.parse::<FlowDesc>().unwrap().to_frame().unwrap();
        decide_cached(&t, cache, &mut HeapBuf::from_frame(&frame), in_port)
    };
    let c = format!("{VM1} tcp.src=40000 tcp.dst=22");
    let s = format!("{VM2} tcp.src=22 tcp.dst=40000");
    let cache = &mut cache;
    assert_eq!(
        run(cache, PortId(0), &format!("{c} tcp.flags=0x02")),
        Verdict::Output(PortId(1))
    );
    assert_eq!(
        run(cache, PortId(1), &format!("{s} tcp.flags=0x12")),
        Verdict::Output(PortId(0))
    );
    for _ in 0..5 {
        assert_eq!(
            run(cache, PortId(0), &format!("{c} tcp.flags=0x10")),
            Verdict::Output(PortId(1))
        );
        assert_eq!(
            run(cache, PortId(1), &format!("{s} tcp.flags=0x18")),
            Verdict::Output(PortId(0))
        );
    }
    // The SYN (uncached: a new connection), the SYN-ACK and the first ACK
    // missed; every later packet hit.
    assert!(
        cache.hits >= 8,
        "{} hits, {} misses",
        cache.hits,
        cache.misses
    );
    assert_eq!(st.conntrack.dump(None).len(), 2);
    // Without the connection the server's packets are new, and vm1 takes
    // no new connections from it: the cached Output no longer applies.
    st.conntrack.flush(None);
    assert_eq!(
        run(cache, PortId(1), &format!("{s} tcp.flags=0x18")),
        Verdict::Drop(DropReason::AclDrop)
    );
}

/// On a stateful switch established traffic is cached under a key for
/// every L4 port: the connections between two VMs share one entry, and
/// conntrack still decides each packet, so a connection the ACLs never
/// allowed between the same two VMs is not let through by that entry.
/// IPv6 (which no L4-wide key holds) is cached the same way.
#[test]
fn connections_between_two_vms_share_one_entry_and_conntrack_decides() {
    let mut acls = security_group();
    acls.push(acl(
        1002,
        Direction::FromLport,
        AclAction::AllowRelated,
        "inport == @neutron_pg_drop && ip6",
    ));
    acls.push(acl(
        1002,
        Direction::ToLport,
        AclAction::AllowRelated,
        "outport == @pg_web && ip6 && tcp.dst == 22",
    ));
    let (t, st) = tables(acls, 100);
    assert_eq!(t.key_kind(PortId(0)), KeyKind::Stateful);
    let mut cache = FlowCache::new(64);
    let run = |cache: &mut FlowCache, in_port: u16, desc: &str| {
        let frame = desc.parse::<FlowDesc>().unwrap().to_frame().unwrap();
        decide_cached(&t, cache, &mut HeapBuf::from_frame(&frame), PortId(in_port))
    };
    let to_vm2 = Verdict::Output(PortId(1));
    for sport in 40000..40010 {
        let c = format!("{VM1} tcp.src={sport} tcp.dst=22");
        assert_eq!(run(&mut cache, 0, &format!("{c} tcp.flags=0x02")), to_vm2);
        let s = format!("{VM2} tcp.src=22 tcp.dst={sport} tcp.flags=0x12");
        assert_eq!(run(&mut cache, 1, &s), Verdict::Output(PortId(0)));
        assert_eq!(run(&mut cache, 0, &format!("{c} tcp.flags=0x10")), to_vm2);
    }
    // The first connection's three packets missed; the other nine met the
    // entries it left (their SYNs then failed the checks: new connections
    // the ACLs allowed and conntrack committed).
    assert_eq!(cache.misses, 3, "{} hits", cache.hits);
    let (hits, misses) = (cache.hits, cache.misses);
    for sport in 40000..40010 {
        let c = format!("{VM1} tcp.src={sport} tcp.dst=22 tcp.flags=0x18");
        assert_eq!(run(&mut cache, 0, &c), to_vm2);
    }
    assert_eq!(
        (cache.hits - hits, cache.misses - misses),
        (10, 0),
        "ten connections' packets from vm1 to vm2: one entry"
    );
    // Port 23 was never allowed: the entry's conntrack checks fail, the
    // ACLs decide, and vm2's zone does not commit it.
    let telnet = format!("{VM1} tcp.src=40100 tcp.dst=23 tcp.flags=0x02");
    for _ in 0..3 {
        assert_eq!(
            run(&mut cache, 0, &telnet),
            Verdict::Drop(DropReason::AclDrop)
        );
    }
    // Twenty for the ten connections (vm1's zone and vm2's); telnet's
    // only in vm1's, whose egress ACL allowed it.
    assert_eq!(st.conntrack.dump(None).len(), 21);
    // IPv6: the handshake, then established packets hit.
    let v6 = "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip6.src=fd00::1 ip6.dst=fd00::2";
    let v6r = "eth.src=00:00:00:00:00:02 eth.dst=00:00:00:00:00:01 ip6.src=fd00::2 ip6.dst=fd00::1";
    assert_eq!(
        run(
            &mut cache,
            0,
            &format!("{v6} tcp.src=41000 tcp.dst=22 tcp.flags=0x02")
        ),
        to_vm2
    );
    assert_eq!(
        run(
            &mut cache,
            1,
            &format!("{v6r} tcp.src=22 tcp.dst=41000 tcp.flags=0x12")
        ),
        Verdict::Output(PortId(0))
    );
    assert_eq!(
        run(
            &mut cache,
            0,
            &format!("{v6} tcp.src=41000 tcp.dst=22 tcp.flags=0x10")
        ),
        to_vm2
    );
    let hits = cache.hits;
    assert_eq!(
        run(
            &mut cache,
            0,
            &format!("{v6} tcp.src=41000 tcp.dst=22 tcp.flags=0x18")
        ),
        to_vm2
    );
    assert_eq!(cache.hits, hits + 1, "established IPv6 hits the cache");
    assert_eq!(
        run(
            &mut cache,
            0,
            &format!("{v6} tcp.src=41001 tcp.dst=23 tcp.flags=0x02")
        ),
        Verdict::Drop(DropReason::AclDrop)
    );
}

/// A reject ACL answers a TCP SYN with a RST and UDP with ICMP port
/// unreachable, back out of the ingress port, and nothing is committed
/// or cached for it.
#[test]
fn reject_answers_with_rst_or_icmp() {
    let mut acls = security_group();
    acls.push(acl(
        1003,
        Direction::ToLport,
        AclAction::Reject,
        "outport == @pg_web && (tcp.dst == 23 || udp.dst == 69)",
    ));
    let (t, st) = tables(acls, 100);
    let mut cache = FlowCache::new(64);
    for _ in 0..2 {
        let frame = format!("{VM1} tcp.src=40000 tcp.dst=23 tcp.flags=0x02")
            .parse::<FlowDesc>()
            .unwrap()
            .to_frame()
            .unwrap();
        let mut buf = HeapBuf::from_frame(&frame);
        assert_eq!(
            decide_cached(&t, &mut cache, &mut buf, PortId(0)),
            Verdict::Reply
        );
        let out = buf.data();
        let lay = crate::wire::layout::parse(out).unwrap();
        assert_eq!(lay.ipv4_dst(out), std::net::Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(lay.tcp_flags(out).0, 0x14, "RST|ACK");
    }
    assert_eq!(cache.hits, 0, "a rewritten answer is never cached");
    let frame = format!("{VM1} udp.src=5000 udp.dst=69")
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    let mut buf = HeapBuf::from_frame(&frame);
    let v = decide(&t, &mut buf, &mut PacketMeta::new(PortId(0)), &mut NoTrace);
    assert_eq!(v, Verdict::Reply);
    let lay = crate::wire::layout::parse(buf.data()).unwrap();
    assert_eq!(
        buf.data()[usize::from(lay.l4)],
        3,
        "ICMP destination unreachable"
    );
    // vm1's ingress committed both; vm2's egress nothing.
    assert_eq!(st.conntrack.len(), 2);
}

/// A logged ACL queues a line for each packet it decides (within its rate
/// limit), its verdict is never cached, and a trace logs nothing.
#[test]
fn a_logged_acl_queues_its_line_and_is_not_cached() {
    let mut logged = acl(
        1100,
        Direction::FromLport,
        AclAction::Drop,
        "inport == \"vm3\" && udp.dst == 53",
    );
    logged.log = true;
    logged.severity = crate::acl_log::Severity::Warning;
    let (t, st) = tables(vec![logged], 100);
    let mut cache = FlowCache::new(64);
    let frame = format!("{VM3} udp.src=5000 udp.dst=53")
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    for _ in 0..3 {
        let mut buf = HeapBuf::from_frame(&frame);
        let v = decide_cached(&t, &mut cache, &mut buf, PortId(2));
        assert_eq!(v, Verdict::Drop(DropReason::AclDrop));
    }
    assert_eq!(cache.hits, 0, "a logged verdict is never cached");
    let neighbors = crate::overlay::Neighbors::default();
    let _ = trace(&t, &neighbors, PortId(2), HeapBuf::from_frame(&frame));
    let lines: Vec<String> = st.acl_log.drain().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "name=\"acl1100\", verdict=drop, severity=warning, direction=from-lport: udp,"
        ),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("nw_src=10.0.0.3,nw_dst=10.0.0.2"));
}

#[test]
fn flood_copies_go_through_each_ports_to_lport_acls() {
    let (t, _st) = tables(security_group(), 100);
    let vm1 = *t.lport_by_name.get("vm1").unwrap();
    let dp = t.lport(vm1).datapath;
    // vm1's copies of a broadcast, as the worker computes them.
    let targets = |desc: &str| {
        let frame = desc.parse::<FlowDesc>().unwrap().to_frame().unwrap();
        let v = decide(
            &t,
            &mut HeapBuf::from_frame(&frame),
            &mut PacketMeta::new(PortId(0)),
            &mut NoTrace,
        );
        assert!(matches!(v, Verdict::Flood { .. }), "{v:?}");
        let mut out = Vec::new();
        crate::pipeline::flood_targets(&t, dp, false, Some(vm1), &frame, &mut out);
        out
    };
    let bcast = "eth.src=00:00:00:00:00:01 eth.dst=ff:ff:ff:ff:ff:ff ip4.src=10.0.0.1 ip4.dst=255.255.255.255";
    // ARP is not IP: the drop ACLs leave both copies alone.
    assert_eq!(
        targets("eth.src=00:00:00:00:00:01 eth.dst=ff:ff:ff:ff:ff:ff arp arp.spa=10.0.0.1 arp.tpa=10.0.0.9"),
        vec![PortId(1), PortId(2)]
    );
    // ICMP is allowed to pg_web (vm2) alone; UDP to neither.
    assert_eq!(targets(&format!("{bcast} icmp4.type=8")), vec![PortId(1)]);
    assert_eq!(targets(&format!("{bcast} udp.src=68 udp.dst=67")), vec![]);
    // Without ACLs every copy goes out.
    let (open, _) = tables(Vec::new(), 100);
    let mut out = Vec::new();
    let frame = format!("{bcast} udp.src=68 udp.dst=67")
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    crate::pipeline::flood_targets(&open, dp, false, Some(vm1), &frame, &mut out);
    assert_eq!(out, vec![PortId(1), PortId(2)]);
}

#[test]
fn the_pre_pass_probes_the_key_the_recheck_tracks() {
    let (t, st) = tables(security_group(), 100);
    let ct = &st.conntrack;
    let zone = t.acls.zones[t.lport_of(PortId(0)).unwrap().get()];
    let frames = [
        // The fixed-offset path: TCP and UDP over IPv4 without options.
        format!("{VM1} udp.src=5000 udp.dst=53"),
        format!("{VM1} tcp.src=40000 tcp.dst=22"),
        // The general path: others.
        format!("{VM1} icmp4"),
        format!("{VM1} vlan.vid=7 udp.src=5000 udp.dst=53"),
        "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip6.src=fd00::1 ip6.dst=fd00::2 udp.src=1 udp.dst=2".into(),
    ];
    for desc in frames {
        let frame = desc.parse::<FlowDesc>().unwrap().to_frame().unwrap();
        let lay = crate::wire::layout::parse(&frame).unwrap();
        let pkt = crate::conntrack::tuple::packet(&frame, &lay).unwrap();
        assert_eq!(
            super::prepare(&t, PortId(0), &frame),
            ct.locate(zone, &pkt).map(|at| at.probe()),
            "{desc}"
        );
    }
    // Not IP: nothing to probe.
    let arp = "eth.src=00:00:00:00:00:01 eth.dst=ff:ff:ff:ff:ff:ff arp"
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    assert_eq!(super::prepare(&t, PortId(0), &arp), None);
}
