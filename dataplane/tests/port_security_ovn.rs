//! Port security, table-driven against the flows OVN 23.03's ovn-controller
//! builds from a port's `port_security` column (controller/lflow.c:
//! `build_in_port_sec_ip4`, `build_in_port_sec_ip6`, `build_in_port_sec_nd`
//! and their egress counterparts, behind ovn-northd's
//! `ls_in_check_port_sec` / `ls_out_check_port_sec`). Each row is one
//! packet, the port security entry it meets, and what OVN does with it.
//!
//! The rules the rows pin down: IPv4 only from the entry's IPv4 addresses
//! (or a DHCP request from 0.0.0.0); IPv6 only from its IPv6 addresses and
//! the MAC's link-local address; from `::` only MLD reports (131, 143) and
//! duplicate-address NS (135, code 0), and only to `ff02::/16`; a family the
//! entry lists no address of is not let through at all (IPv6 from, or to,
//! an IPv4-only port); an address with a non-zero host part is a host, one
//! with a zero host part a prefix; a MAC-only entry lets any protocol from
//! the MAC through.

use dataplane::drop::DropReason;
use dataplane::flow::{FlowDesc, L3, L4};
use dataplane::ids::PortId;
use dataplane::packet::HeapBuf;
use dataplane::pipeline::{self, NoTrace, PacketMeta, Verdict};
use dataplane::tables::{LogicalPort, LogicalSwitch, Tables};
use dataplane::wire::MacAddr;

const MAC: MacAddr = MacAddr([0, 0, 0, 0, 0, 4]);
const PEER: MacAddr = MacAddr([0, 0, 0, 0, 0, 9]);
/// fe80::200:ff:fe00:4, the link-local address of `MAC` (EUI-64).
const LINK_LOCAL: &str = "fe80::200:ff:fe00:4";

/// vm1 on local port 0 with port security `ps`; "peer" on local port 1
/// with addresses "unknown" and none, so that what passes has somewhere to
/// go.
fn tables(ps: &str) -> Tables {
    let mut vm1 = LogicalPort {
        local_port: Some(PortId(0)),
        ..LogicalPort::vif(
            "vm1",
            1,
            "00:00:00:00:00:04 10.0.0.4 fd00::4".parse().unwrap(),
            false,
        )
    };
    vm1.port_security = vec![ps.parse().unwrap()];
    let peer = LogicalPort {
        local_port: Some(PortId(1)),
        ..LogicalPort::vif("peer", 2, "unknown".parse().unwrap(), false)
    };
    Tables::compile(&[LogicalSwitch {
        name: "ls".into(),
        tunnel_key: 1,
        ports: vec![vm1, peer],
    }])
    .unwrap()
}

fn frame(src: MacAddr, dst: MacAddr, l3: L3, l4: L4) -> Vec<u8> {
    FlowDesc {
        inport: None,
        eth_src: src,
        eth_dst: dst,
        vlan: None,
        l3,
        l4,
        payload: 8,
    }
    .to_frame()
    .unwrap()
}

fn ip4(src: &str, dst: &str) -> L3 {
    L3::Ipv4 {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        ttl: 64,
    }
}

fn ip6(src: &str, dst: &str) -> L3 {
    L3::Ipv6 {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        hop_limit: 255,
    }
}

const UDP: L4 = L4::Udp { src: 4000, dst: 53 };
const DHCP: L4 = L4::Udp { src: 68, dst: 67 };
const ECHO6: L4 = L4::Icmp6 { ty: 128, code: 0 };

fn icmp6(ty: u8, code: u8) -> L4 {
    L4::Icmp6 { ty, code }
}

fn ns(target: &str) -> L4 {
    L4::NdNs {
        target: target.parse().unwrap(),
        sll: None,
    }
}

/// The port-security drop a packet from vm1 meets, if any.
fn ingress(ps: &str, f: &[u8]) -> Option<DropReason> {
    port_security_drop(&tables(ps), 0, f)
}

/// The port-security drop a packet from the peer to vm1 meets, if any.
fn egress(ps: &str, f: &[u8]) -> Option<DropReason> {
    port_security_drop(&tables(ps), 1, f)
}

fn port_security_drop(t: &Tables, from: u16, f: &[u8]) -> Option<DropReason> {
    let mut b = HeapBuf::from_frame(f);
    match pipeline::decide(t, &mut b, &mut PacketMeta::new(PortId(from)), &mut NoTrace) {
        Verdict::Drop(
            r @ (DropReason::PortSecurityMac
            | DropReason::PortSecurityIp
            | DropReason::PortSecurityArp
            | DropReason::PortSecurityNd
            | DropReason::PortSecurityEthType
            | DropReason::PortSecurityEgress),
        ) => Some(r),
        _ => None,
    }
}

use DropReason::{PortSecurityEgress as EGRESS, PortSecurityEthType, PortSecurityIp as IP};

/// (port security, packet, what OVN does) for packets from vm1.
fn ingress_rows() -> Vec<(&'static str, &'static str, Vec<u8>, Option<DropReason>)> {
    let both = "00:00:00:00:00:04 10.0.0.4 fd00::4";
    let v4 = "00:00:00:00:00:04 10.0.0.4";
    let v6 = "00:00:00:00:00:04 fd00::4";
    let mac_only = "00:00:00:00:00:04";
    let prefix4 = "00:00:00:00:00:04 10.0.0.0/24";
    let host4 = "00:00:00:00:00:04 10.0.0.4/24";
    let prefix6 = "00:00:00:00:00:04 fd00::/64";
    let host6 = "00:00:00:00:00:04 fd00::4/64";
    let f = |l3, l4| frame(MAC, PEER, l3, l4);
    let to = |dst: &str, l4| frame(MAC, PEER, ip6("::", dst), l4);
    vec![
        (
            both,
            "IPv4 from its address",
            f(ip4("10.0.0.4", "10.0.0.9"), UDP),
            None,
        ),
        (
            both,
            "IPv4 from another address",
            f(ip4("10.0.0.5", "10.0.0.9"), UDP),
            Some(IP),
        ),
        (
            both,
            "DHCP request from 0.0.0.0",
            f(ip4("0.0.0.0", "255.255.255.255"), DHCP),
            None,
        ),
        (
            both,
            "other UDP from 0.0.0.0",
            f(ip4("0.0.0.0", "255.255.255.255"), UDP),
            Some(IP),
        ),
        (
            both,
            "IPv6 from its address",
            f(ip6("fd00::4", "fd00::9"), UDP),
            None,
        ),
        (
            both,
            "IPv6 from its link-local",
            f(ip6(LINK_LOCAL, "fe80::9"), ECHO6),
            None,
        ),
        (
            both,
            "IPv6 from another link-local",
            f(ip6("fe80::5", "fe80::9"), ECHO6),
            Some(IP),
        ),
        (
            both,
            "DAD NS from :: to ff02::/16",
            to("ff02::1:ff00:4", ns("fd00::4")),
            None,
        ),
        (
            both,
            "MLDv2 report from ::",
            to("ff02::16", icmp6(143, 0)),
            None,
        ),
        (
            both,
            "MLDv1 report from ::",
            to("ff02::1:ff00:4", icmp6(131, 0)),
            None,
        ),
        (
            both,
            "MLD query from ::",
            to("ff02::1", icmp6(130, 0)),
            Some(IP),
        ),
        (both, "echo from ::", to("ff02::1", ECHO6), Some(IP)),
        (
            both,
            "NS from :: to a unicast address",
            to("fd00::9", ns("fd00::9")),
            Some(IP),
        ),
        (
            both,
            "NS from :: to ff05::/16",
            to("ff05::1:ff00:4", ns("fd00::4")),
            Some(IP),
        ),
        (
            both,
            "MLDv2 report from :: with code 1",
            to("ff02::16", icmp6(143, 1)),
            Some(IP),
        ),
        (both, "UDP from ::", to("ff02::1", UDP), Some(IP)),
        (
            both,
            "another ethertype",
            f(L3::Other(0x88b5), L4::None),
            Some(PortSecurityEthType),
        ),
        // An IPv4-only port sends no IPv6 at all, not even link-local or DAD.
        (
            v4,
            "IPv6 from an IPv4-only port",
            f(ip6("fd00::4", "fd00::9"), UDP),
            Some(IP),
        ),
        (
            v4,
            "link-local IPv6 from an IPv4-only port",
            f(ip6(LINK_LOCAL, "ff02::1"), ECHO6),
            Some(IP),
        ),
        (
            v4,
            "DAD from an IPv4-only port",
            to("ff02::1:ff00:4", ns("fd00::4")),
            Some(IP),
        ),
        (
            v4,
            "IPv4 from an IPv4-only port",
            f(ip4("10.0.0.4", "10.0.0.9"), UDP),
            None,
        ),
        (
            v6,
            "IPv4 from an IPv6-only port",
            f(ip4("10.0.0.4", "10.0.0.9"), UDP),
            Some(IP),
        ),
        (
            v6,
            "DHCP from an IPv6-only port",
            f(ip4("0.0.0.0", "255.255.255.255"), DHCP),
            Some(IP),
        ),
        (
            v6,
            "IPv6 from an IPv6-only port",
            f(ip6("fd00::4", "fd00::9"), UDP),
            None,
        ),
        (
            mac_only,
            "IPv4 from any address, MAC only",
            f(ip4("192.0.2.1", "10.0.0.9"), UDP),
            None,
        ),
        (
            mac_only,
            "IPv6 from any address, MAC only",
            f(ip6("2001:db8::1", "fd00::9"), UDP),
            None,
        ),
        (
            mac_only,
            "another ethertype, MAC only",
            f(L3::Other(0x88b5), L4::None),
            None,
        ),
        (
            both,
            "from another MAC",
            frame(PEER, MAC, ip4("10.0.0.4", "10.0.0.9"), UDP),
            Some(DropReason::PortSecurityMac),
        ),
        // Host part zero: the prefix; non-zero: that host alone.
        (
            prefix4,
            "IPv4 within a prefix entry",
            f(ip4("10.0.0.77", "10.0.0.9"), UDP),
            None,
        ),
        (
            prefix4,
            "IPv4 outside a prefix entry",
            f(ip4("10.0.1.1", "10.0.0.9"), UDP),
            Some(IP),
        ),
        (
            host4,
            "IPv4 host entry with a mask, the host",
            f(ip4("10.0.0.4", "10.0.0.9"), UDP),
            None,
        ),
        (
            host4,
            "IPv4 host entry with a mask, a neighbour",
            f(ip4("10.0.0.77", "10.0.0.9"), UDP),
            Some(IP),
        ),
        (
            prefix6,
            "IPv6 within a prefix entry",
            f(ip6("fd00::77", "fd00::9"), UDP),
            None,
        ),
        (
            host6,
            "IPv6 host entry with a mask, a neighbour",
            f(ip6("fd00::77", "fd00::9"), UDP),
            Some(IP),
        ),
    ]
}

#[test]
fn ingress_port_security_follows_ovn() {
    let mut wrong = Vec::new();
    for (ps, what, f, want) in ingress_rows() {
        let got = ingress(ps, &f);
        if got != want {
            wrong.push(format!(
                "{what} (port security \"{ps}\"): OVN {want:?}, we {got:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn egress_port_security_follows_ovn() {
    let both = "00:00:00:00:00:04 10.0.0.4 fd00::4";
    let v4 = "00:00:00:00:00:04 10.0.0.4";
    let host4 = "00:00:00:00:00:04 10.0.0.4/24";
    let f = |l3, l4| frame(PEER, MAC, l3, l4);
    let rows = vec![
        (
            both,
            "IPv4 to its address",
            f(ip4("10.0.0.9", "10.0.0.4"), UDP),
            None,
        ),
        (
            both,
            "IPv4 to another address",
            f(ip4("10.0.0.9", "10.0.0.5"), UDP),
            Some(EGRESS),
        ),
        (
            both,
            "IPv6 to its address",
            f(ip6("fd00::9", "fd00::4"), UDP),
            None,
        ),
        (
            both,
            "IPv6 to its link-local",
            f(ip6("fe80::9", LINK_LOCAL), ECHO6),
            None,
        ),
        (
            both,
            "IPv6 to another address",
            f(ip6("fd00::9", "fd00::5"), UDP),
            Some(EGRESS),
        ),
        (
            v4,
            "IPv6 to an IPv4-only port",
            f(ip6("fd00::9", "fd00::4"), UDP),
            Some(EGRESS),
        ),
        (
            v4,
            "link-local IPv6 to an IPv4-only port",
            f(ip6("fe80::9", LINK_LOCAL), ECHO6),
            Some(EGRESS),
        ),
        (
            host4,
            "IPv4 to the subnet broadcast of a host entry",
            f(ip4("10.0.0.9", "10.0.0.255"), UDP),
            None,
        ),
        (
            v4,
            "IPv4 to 255.255.255.255",
            f(ip4("10.0.0.9", "255.255.255.255"), UDP),
            None,
        ),
        (
            v4,
            "IPv4 multicast",
            f(ip4("10.0.0.9", "224.0.0.251"), UDP),
            None,
        ),
    ];
    let mut wrong = Vec::new();
    for (ps, what, f, want) in rows {
        let got = egress(ps, &f);
        if got != want {
            wrong.push(format!(
                "{what} (port security \"{ps}\"): OVN {want:?}, we {got:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
