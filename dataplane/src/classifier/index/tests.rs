//! The index against the plain linear scan: random rule sets of OVN
//! match fragments (Neutron's shapes, ranges, address sets, and what the
//! index must leave alone: `||`, `!`, `!=`, masks), random IPv4, IPv6
//! and other packets, the same first match; and that Neutron-shaped rule
//! sets are evaluated a few rules at a time.

use std::collections::BTreeMap;
use std::sync::Arc;

use ovn_expr::{Field, Pred};
use proptest::prelude::*;

use crate::classifier::{Acl, AclAction, AclConfig, DirAcls, Direction, Stateful, Subject};
use crate::conntrack::Conntrack;
use crate::ids::LportIdx;
use crate::tables::{LogicalPort, LogicalSwitch, Tables};

/// A packet as the ACL stage presents it, with what it read counted.
#[derive(Clone, Debug)]
struct Pkt {
    inport: Option<u32>,
    outport: Option<u32>,
    eth_type: u16,
    proto: u8,
    src: u128,
    dst: u128,
    /// TCP/UDP/SCTP (source, destination) ports; None for a later
    /// fragment or another protocol.
    l4: Option<(u16, u16)>,
    icmp: Option<(u8, u8)>,
    /// Address reads: one per rule that got as far as its address.
    address_reads: usize,
}

impl Subject for Pkt {
    fn field(&mut self, f: Field) -> Option<u128> {
        use Field::*;
        Some(match f {
            Inport => u128::from(self.inport?),
            Outport => u128::from(self.outport?),
            EthSrc => 0x0200_0000_0001,
            EthDst => 0x0200_0000_0002,
            EthType => u128::from(self.eth_type),
            IpProto => u128::from(self.proto),
            Ip4Src | Ip6Src => {
                self.address_reads += 1;
                self.src
            }
            Ip4Dst | Ip6Dst => {
                self.address_reads += 1;
                self.dst
            }
            TcpSrc | UdpSrc | SctpSrc => u128::from(self.l4?.0),
            TcpDst | UdpDst | SctpDst => u128::from(self.l4?.1),
            Icmp4Type | Icmp6Type => u128::from(self.icmp?.0),
            Icmp4Code | Icmp6Code => u128::from(self.icmp?.1),
        })
    }

    fn pred(&mut self, p: Pred) -> bool {
        let (v4, v6) = (self.eth_type == 0x0800, self.eth_type == 0x86dd);
        let ip = v4 || v6;
        match p {
            Pred::Ip => ip,
            Pred::Ip4 => v4,
            Pred::Ip6 => v6,
            Pred::Arp => self.eth_type == 0x0806,
            Pred::Tcp => ip && self.proto == 6,
            Pred::Udp => ip && self.proto == 17,
            Pred::Sctp => ip && self.proto == 132,
            Pred::Icmp4 => v4 && self.proto == 1,
            Pred::Icmp6 => v6 && self.proto == 58,
            Pred::Icmp => (v4 && self.proto == 1) || (v6 && self.proto == 58),
            Pred::CtNew | Pred::CtTrk => true,
            Pred::CtEst | Pred::CtRel | Pred::CtRpl | Pred::CtInv => false,
        }
    }
}

const PORTS: [&str; 3] = ["p1", "p2", "p3"];

/// The compiled ACLs of one switch with ports p1..p3, `pg1` = {p1, p2},
/// `$as4` and `$as6` of a few addresses each, `$big4` of 201.
fn compile(acls: Vec<(u16, Direction, AclAction, String)>) -> (Tables, Arc<Stateful>) {
    let ports = PORTS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let addr = format!("00:00:00:00:00:0{} 10.0.0.{}", i + 1, i + 1);
            LogicalPort::vif(*name, i as u32 + 1, addr.parse().unwrap(), false)
        })
        .collect();
    let mut t = Tables::compile(&[LogicalSwitch {
        name: "ls".into(),
        tunnel_key: 1,
        ports,
    }])
    .unwrap();
    let st = Stateful::new(Conntrack::new(16, 1));
    let cfg = AclConfig {
        acls: acls
            .into_iter()
            .enumerate()
            .map(|(k, (priority, direction, action, m))| Acl {
                name: format!("r{k}"),
                priority,
                direction,
                action,
                expr: ovn_expr::parse(&m).unwrap_or_else(|e| panic!("{m}: {e}")),
                match_text: m,
                log: false,
                severity: Default::default(),
                meter: None,
                switches: vec!["ls".into()],
            })
            .collect(),
        port_groups: BTreeMap::from([("pg1".into(), vec!["p1".into(), "p2".into()])]),
        address_sets: BTreeMap::from([
            (
                "as4".into(),
                vec![
                    "10.0.0.1".into(),
                    "10.0.0.7".into(),
                    "192.168.0.0/16".into(),
                ],
            ),
            ("as6".into(), vec!["fd00::1".into(), "fd01::/64".into()]),
            // Large enough to be hashed.
            (
                "big4".into(),
                (0..200)
                    .map(|k| format!("10.{}.{}.7", k % 3, k / 3))
                    .chain(["172.16.0.0/12".into()])
                    .collect(),
            ),
        ]),
    };
    let errors = t.install_acls(&cfg, &st);
    assert!(errors.is_empty(), "{errors:?}");
    (t, st)
}

/// Match fragments the random rules are conjunctions of.
const FRAGMENTS: &[&str] = &[
    "inport == @pg1",
    "inport == \"p2\"",
    "outport == @pg1",
    "outport == {\"p1\", \"p3\"}",
    "ip",
    "ip4",
    "ip6",
    "tcp",
    "udp",
    "sctp",
    "icmp",
    "icmp4",
    "icmp6",
    "!tcp",
    "!ip4",
    "ip.proto == 6",
    "ip.proto == {6, 17}",
    "ip.proto == 47",
    "ip.proto != 17",
    "tcp.dst == 22",
    "tcp.dst == {22, 80, 443}",
    "tcp.dst >= 1000",
    "tcp.dst <= 2000",
    "tcp.dst > 1999",
    "tcp.dst < 23",
    "tcp.dst != 80",
    "tcp.dst == 0x400/0xfc00",
    "tcp.dst >= 65535",
    "tcp.dst <= 0",
    "udp.dst == 53",
    "udp.dst >= 5000",
    "udp.dst <= 5100",
    "udp.dst == {53, 5000}",
    "sctp.dst == 22",
    "sctp.dst >= 1000",
    "tcp.src == 1000",
    "udp.src >= 1000",
    "icmp4.type == 8",
    "icmp6.type == 128",
    "ip4.src == $as4",
    "ip4.src == $big4",
    "ip4.dst == $big4",
    "ip4.dst == $as4",
    "ip4.src == 10.0.0.0/24",
    "ip6.src == $as6",
    "ip6.dst == fd00::/64",
    "(tcp.dst == 22 || udp.dst == 53)",
    "!(tcp.dst == 22)",
    "(tcp || udp)",
    "(tcp.dst >= 1000 && tcp.dst <= 2000)",
    "(udp && udp.dst >= 5000 && udp.dst <= 5100)",
    "1",
    "0",
];

const L4_PORTS: &[u16] = &[
    0, 1, 22, 23, 53, 80, 443, 999, 1000, 1024, 1500, 1999, 2000, 2001, 5000, 5050, 5100, 5101,
    65534, 65535,
];

fn v4(a: [u8; 4]) -> u128 {
    u128::from(u32::from_be_bytes(a))
}

fn v6(s: &str) -> u128 {
    u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
}

fn rule() -> impl Strategy<Value = (u16, Direction, AclAction, String)> {
    use AclAction::*;
    (
        1000u16..1004,
        prop_oneof![Just(Direction::FromLport), Just(Direction::ToLport)],
        prop_oneof![
            Just(Allow),
            Just(AllowRelated),
            Just(AllowStateless),
            Just(Drop),
            Just(Reject)
        ],
        proptest::collection::vec(0..FRAGMENTS.len(), 1..5),
    )
        .prop_map(|(prio, dir, action, parts)| {
            let m: Vec<&str> = parts.iter().map(|&k| FRAGMENTS[k]).collect();
            (prio, dir, action, m.join(" && "))
        })
}

fn packet() -> impl Strategy<Value = Pkt> {
    (
        0usize..8,
        prop_oneof![
            Just(6u8),
            Just(17),
            Just(132),
            Just(1),
            Just(58),
            Just(47),
            any::<u8>()
        ],
        prop_oneof![(0..L4_PORTS.len()).prop_map(|k| L4_PORTS[k]), any::<u16>()],
        (0..L4_PORTS.len()).prop_map(|k| L4_PORTS[k]),
        any::<bool>(),
        0usize..4,
        (any::<u8>(), any::<u8>()),
    )
        .prop_map(|(family, proto, dst, src, fragment, addr, icmp)| {
            let (eth_type, (src_ip, dst_ip)) = match family {
                0..=3 => {
                    let pool = [
                        (v4([10, 0, 0, 1]), v4([10, 0, 0, 2])),
                        (v4([10, 0, 0, 7]), v4([192, 168, 3, 4])),
                        (v4([192, 168, 9, 9]), v4([10, 0, 1, 1])),
                        (v4([172, 16, 0, 1]), v4([10, 0, 0, 7])),
                    ];
                    (0x0800, pool[addr])
                }
                4..=6 => {
                    let pool = [
                        (v6("fd00::1"), v6("fd00::2")),
                        (v6("fd01::5"), v6("fd02::1")),
                        (v6("fd02::1"), v6("fd00::9")),
                        (v6("fe80::1"), v6("fd01::1")),
                    ];
                    (0x86dd, pool[addr])
                }
                _ => (0x0806, (0, 0)),
            };
            let ported = matches!(proto, 6 | 17 | 132) && eth_type != 0x0806;
            Pkt {
                inport: None,
                outport: None,
                eth_type,
                proto,
                src: src_ip,
                dst: dst_ip,
                l4: (ported && !fragment).then_some((src, dst)),
                icmp: matches!(proto, 1 | 58).then_some(icmp),
                address_reads: 0,
            }
        })
}

/// The linear scan: every rule of the direction in order, the first that
/// matches (and the first `allow-stateless` one that does).
fn linear(d: &DirAcls, p: &Pkt) -> (Option<usize>, Option<usize>) {
    let first = d.rules.iter().position(|r| r.node.eval(&mut p.clone()));
    let stateless = d
        .rules
        .iter()
        .position(|r| r.action == AclAction::AllowStateless && r.node.eval(&mut p.clone()));
    (first, stateless)
}

/// The index's answers for `p` arriving on (from-lport) or leaving by
/// (to-lport) each port.
fn check_all(t: &Tables, pkts: &[Pkt]) -> Result<(), TestCaseError> {
    let acls = t.acls.datapath(crate::ids::DatapathIdx(0));
    let Some(acls) = acls else {
        return Ok(());
    };
    for dir in [Direction::FromLport, Direction::ToLport] {
        let d = acls.dir(dir);
        for name in PORTS {
            let port: LportIdx = t.lport_by_name[name];
            for p in pkts {
                let mut p = p.clone();
                match dir {
                    Direction::FromLport => p.inport = Some(port.0),
                    Direction::ToLport => {
                        p.outport = Some(port.0);
                        p.inport = Some(t.lport_by_name["p2"].0);
                    }
                }
                let list = d.for_port(port);
                let got = list.first_match(d, &mut p.clone()).map(|r| r.name.clone());
                let got_stateless = list
                    .first_stateless(d, &mut p.clone())
                    .map(|r| r.name.clone());
                let (want, want_stateless) = linear(d, &p);
                let name_of = |i: Option<usize>| i.map(|i| d.rules[i].name.clone());
                prop_assert_eq!(&got, &name_of(want), "{:?} {:?} on {}", dir, p, name);
                prop_assert_eq!(
                    &got_stateless,
                    &name_of(want_stateless),
                    "allow-stateless: {:?} {:?} on {}",
                    dir,
                    p,
                    name
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any rule set, any packet: the index finds the rule the linear scan
    /// finds (priorities collide often: ties keep the given order).
    #[test]
    fn the_index_finds_what_the_linear_scan_finds(
        rules in proptest::collection::vec(rule(), 1..40),
        pkts in proptest::collection::vec(packet(), 1..48),
    ) {
        let (t, _) = compile(rules);
        check_all(&t, &pkts)?;
    }
}

fn neutron(n: u16) -> Vec<(u16, Direction, AclAction, String)> {
    use AclAction::*;
    use Direction::*;
    let mut v = vec![(1001, ToLport, Drop, "outport == @pg1 && ip".to_string())];
    for k in 0..n {
        let m = match k % 3 {
            0 => format!(
                "outport == @pg1 && ip4 && ip4.src == $as4 && tcp && tcp.dst == {}",
                10_000 + k
            ),
            1 => format!(
                "outport == @pg1 && ip4 && udp && udp.dst >= {} && udp.dst <= {}",
                20_000 + 2 * k,
                20_000 + 2 * k + 1
            ),
            _ => format!(
                "outport == @pg1 && ip6 && ip6.src == $as6 && tcp && tcp.dst == {}",
                10_000 + k
            ),
        };
        v.push((1002, ToLport, AllowRelated, m));
    }
    v.push((
        1002,
        ToLport,
        AllowRelated,
        "outport == @pg1 && ip4 && icmp4".into(),
    ));
    v
}

/// 3,000 Neutron-shaped rules: a packet reads the addresses of the one
/// rule its port opens, not of the others, and finds it.
#[test]
fn neutron_rules_are_evaluated_a_few_at_a_time() {
    let (t, _) = compile(neutron(3000));
    let d = t
        .acls
        .datapath(crate::ids::DatapathIdx(0))
        .unwrap()
        .dir(Direction::ToLport);
    let port = t.lport_by_name["p1"];
    let tcp = |dst: u16| Pkt {
        inport: None,
        outport: Some(port.0),
        eth_type: 0x0800,
        proto: 6,
        src: v4([10, 0, 0, 7]),
        dst: v4([10, 0, 0, 1]),
        l4: Some((40_000, dst)),
        icmp: None,
        address_reads: 0,
    };
    let mut p = tcp(10_000 + 2997);
    let r = d.for_port(port).first_match(d, &mut p).unwrap();
    assert!(
        r.match_text.ends_with("tcp.dst == 12997"),
        "{}",
        r.match_text
    );
    assert_eq!(p.address_reads, 1);
    // The linear scan reads the address of every IPv4 TCP rule before it.
    let mut q = tcp(10_000 + 2997);
    let linear = d.rules.iter().find(|r| r.node.eval(&mut q)).unwrap();
    assert_eq!(linear.name, r.name);
    assert!(q.address_reads > 900, "{}", q.address_reads);
    // A UDP range, and a port no rule opens (the drop rule decides).
    let mut u = Pkt {
        proto: 17,
        l4: Some((1, 20_000 + 2 * 1000 + 1)),
        ..tcp(0)
    };
    let r = d.for_port(port).first_match(d, &mut u).unwrap();
    assert!(
        r.match_text.ends_with("udp.dst <= 22001"),
        "{}",
        r.match_text
    );
    let mut none = tcp(9);
    let r = d.for_port(port).first_match(d, &mut none).unwrap();
    assert_eq!(r.action, AclAction::Drop);
    assert_eq!(none.address_reads, 0);
}

/// Many wide overlapping ranges would copy each rule into most segments:
/// the widest stay unsplit, within the budget, with the same answers.
#[test]
fn overlapping_ranges_stay_within_the_budget() {
    use AclAction::*;
    let rules: Vec<_> = (0..2000u16)
        .map(|k| {
            let m = format!(
                "outport == @pg1 && tcp && tcp.dst >= {} && tcp.dst <= {}",
                10 * k,
                65_535 - 10 * k
            );
            (
                1000 + k % 7,
                Direction::ToLport,
                if k % 2 == 0 { Allow } else { Drop },
                m,
            )
        })
        .collect();
    let (t, _) = compile(rules);
    let d = t
        .acls
        .datapath(crate::ids::DatapathIdx(0))
        .unwrap()
        .dir(Direction::ToLport);
    let port = t.lport_by_name["p1"];
    let tcp = d
        .for_port(port)
        .all
        .protos
        .iter()
        .find(|p| p.proto == 6)
        .unwrap();
    assert!(
        tcp.entries.len() <= super::SEGMENT_BUDGET * 2000 + 65_536,
        "{} entries",
        tcp.entries.len()
    );
    assert!(!tcp.any_dst.is_empty() && !tcp.entries.is_empty());
    let pkts: Vec<Pkt> = (0..=65_535u32)
        .step_by(97)
        .map(|dst| Pkt {
            inport: None,
            outport: None,
            eth_type: 0x0800,
            proto: 6,
            src: 0,
            dst: 0,
            l4: Some((1, dst as u16)),
            icmp: None,
            address_reads: 0,
        })
        .collect();
    check_all(&t, &pkts).unwrap();
}

proptest! {
    /// A set large enough to be hashed holds exactly its values.
    #[test]
    fn hashed_value_sets_hold_exactly_their_values(
        values in proptest::collection::btree_set(0u128..4096, 0..300),
        probes in proptest::collection::vec(0u128..4096, 1..64),
    ) {
        let set = super::super::ValueSet::new(values.iter().copied().collect(), Vec::new());
        prop_assert_eq!(set.hashed.is_some(), values.len() > super::super::HASHED);
        for x in probes.into_iter().chain(values.iter().copied()) {
            prop_assert_eq!(set.contains(x), values.contains(&x));
        }
    }
}
