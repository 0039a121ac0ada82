//! Port security, as OVN 23.03's ovn-controller compiles a port's
//! `port_security` column (controller/lflow.c, `build_in_port_sec_*` and
//! `build_out_port_sec_*`) behind ovn-northd's `ls_in_check_port_sec` and
//! `ls_out_check_port_sec`.
//!
//! Ingress, per entry `MAC [IP...]` whose MAC is the frame's eth.src: an
//! entry without IPs lets everything from the MAC through (ARP and ND are
//! still checked). With IPs, only what they allow: IPv4 from its IPv4
//! addresses, or a DHCP request from 0.0.0.0 (if it has IPv4 addresses);
//! IPv6 from its IPv6 addresses or the MAC's link-local address, or from
//! `::` to `ff02::/16` for MLD reports (ICMPv6 131, 143) and duplicate
//! address detection (NS, 135), if it has IPv6 addresses; ARP unless it
//! has only IPv6 addresses; nothing else. An address with a non-zero host
//! part ("10.0.0.4/24") is that host; one with a zero host part
//! ("10.0.0.0/24") the whole prefix. ARP's sender must be the MAC (and
//! one of the IPv4 addresses); an NS's source link-layer option and an
//! NA's target link-layer option must be the MAC, and an NA's target one
//! of the port's IPv6 addresses or its link-local one (RFC 4861 §4.3,
//! §4.4).
//!
//! Egress, to a port with port security: multicast and broadcast frames
//! pass; otherwise eth.dst must be an entry's MAC and, if that entry lists
//! IPs, IPv4 must be for one of its IPv4 addresses (or a host entry's
//! subnet broadcast, 255.255.255.255 or 224.0.0.0/4) and IPv6 for one of
//! its IPv6 addresses, the link-local one or ff00::/8; an entry without
//! addresses of a family receives none of that family.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Fields, Parsed, Step, Tracer};
use crate::drop::DropReason;
use crate::tables::{Lport, MacIps};
use crate::wire::layout::{Layout, Malformed};
use crate::wire::read::{ipv4, ipv6, mac};
use crate::wire::{EtherType, IpProtocol, MacAddr};

/// What ingress port security reads of an ordinary (IP) packet.
pub const INGRESS_READS: Fields = Fields::ETH_SRC
    .with(Fields::ETH_TYPE)
    .with(Fields::IP_SRC)
    .with(Fields::IP_PROTO);

/// What egress port security reads of an ordinary (IP) packet.
pub const EGRESS_READS: Fields = Fields::ETH_DST.with(Fields::ETH_TYPE).with(Fields::IP_DST);

/// RFC 4861 §4.3, §4.4; RFC 2710 §3, RFC 3810 §5.2: ICMPv6 types.
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;
const MLD_REPORT: u8 = 131;
const MLDV2_REPORT: u8 = 143;

/// OVN's ingress checks (`ls_in_check_port_sec`, then the port's
/// port security).
#[inline]
pub fn ingress<T: Tracer>(lport: &Lport, p: &mut Parsed<'_>, t: &mut T) -> Step {
    // ls_in_check_port_sec: `vlan.present` and `eth.src[40]` are dropped.
    if let Some(vid) = p.vlan_id() {
        trace!(
            t,
            "port_security",
            "VLAN-tagged frame (vid {vid}) on a VM port"
        );
        return Step::drop(DropReason::VlanTagged);
    }
    let src = p.eth_src();
    if src.is_multicast() {
        trace!(t, "port_security", "eth.src {src} is multicast");
        return Step::drop(DropReason::EthSrcMulticast);
    }
    match check_ingress(lport, p, src) {
        Ok(why) => {
            trace!(t, "port_security", "{why} on \"{}\"", lport.name);
            Step::Next
        }
        Err((r, why)) => {
            trace!(
                t,
                "port_security",
                "{why} not allowed on \"{}\"",
                lport.name
            );
            Step::drop(r)
        }
    }
}

/// Why a packet passes, or why and with which reason it does not. Plain
/// values: the text is only formatted when a trace asks for it.
type Checked = Result<Why, (DropReason, Why)>;

/// What port security looked at, for traces.
#[derive(Clone, Copy, Debug)]
enum Why {
    NoPortSecurity,
    MacAllowed(MacAddr),
    Ip4Allowed(Ipv4Addr),
    DhcpRequest,
    Ip6Allowed(Ipv6Addr),
    ArpAllowed(MacAddr, MacAddr, Ipv4Addr),
    Mac(MacAddr),
    Ip4(Ipv4Addr),
    Ip6(Ipv6Addr),
    Arp(MacAddr, Ipv4Addr),
    ArpIpv6Only(MacAddr, Ipv4Addr),
    ArpTruncated,
    NdTruncated,
    NdLinkLayer(MacAddr),
    NdTarget(Ipv6Addr),
    EthType(EtherType),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::NoPortSecurity => f.write_str("no port security"),
            Why::MacAllowed(m) => write!(f, "eth.src {m} allowed"),
            Why::Ip4Allowed(s) => write!(f, "ip4.src {s} allowed"),
            Why::DhcpRequest => f.write_str("DHCP request from 0.0.0.0 allowed"),
            Why::Ip6Allowed(s) => write!(f, "ip6.src {s} allowed"),
            Why::ArpAllowed(src, sha, spa) => {
                write!(f, "eth.src {src} allowed, arp.sha {sha} / arp.spa {spa}")
            }
            Why::Mac(m) => write!(f, "eth.src {m}"),
            Why::Ip4(s) => write!(f, "ip4.src {s}"),
            Why::Ip6(s) => write!(f, "ip6.src {s}"),
            Why::Arp(sha, spa) => write!(f, "arp.sha {sha} / arp.spa {spa}"),
            Why::ArpIpv6Only(sha, spa) => {
                write!(f, "arp.sha {sha} / arp.spa {spa} (IPv6-only port security)")
            }
            Why::ArpTruncated => f.write_str("a truncated ARP"),
            Why::NdTruncated => f.write_str("a truncated ND message"),
            Why::NdLinkLayer(ll) => write!(f, "nd link-layer address {ll}"),
            Why::NdTarget(t) => write!(f, "nd.target {t}"),
            Why::EthType(e) => write!(
                f,
                "eth.type {e} from a MAC whose port security lists addresses"
            ),
        }
    }
}

fn check_ingress(lport: &Lport, p: &mut Parsed<'_>, src: MacAddr) -> Checked {
    let ps = &lport.port_security;
    if !ps.enabled {
        return Ok(Why::NoPortSecurity);
    }
    let Some(entry) = ps.entry(src) else {
        return Err((DropReason::PortSecurityMac, Why::Mac(src)));
    };
    let (has4, has6) = (!entry.ipv4.is_empty(), !entry.ipv6.is_empty());
    match p.eth_type() {
        EtherType::Arp => arp(entry, p, src),
        _ if !has4 && !has6 => nd(entry, p, src).map(|()| Why::MacAllowed(src)),
        EtherType::Ipv4 => {
            let s = p.ip4_src();
            if has4 && entry.ipv4.iter().any(|c| c.allows(s)) {
                return Ok(Why::Ip4Allowed(s));
            }
            if has4 && is_dhcp_request(p, s) {
                return Ok(Why::DhcpRequest);
            }
            Err((DropReason::PortSecurityIp, Why::Ip4(s)))
        }
        EtherType::Ipv6 => {
            let s = p.ip6_src();
            let ours = has6 && (s == link_local(src) || entry.ipv6.iter().any(|c| c.allows(s)));
            let dad_or_mld = has6 && s.is_unspecified() && unspecified_allowed(p);
            if !(ours || dad_or_mld) {
                return Err((DropReason::PortSecurityIp, Why::Ip6(s)));
            }
            nd(entry, p, src).map(|()| Why::Ip6Allowed(s))
        }
        other => Err((DropReason::PortSecurityEthType, Why::EthType(other))),
    }
}

/// `ip4.src == 0.0.0.0 && ip4.dst == 255.255.255.255 && udp.src == 68 &&
/// udp.dst == 67`: a client without an address asking DHCP (RFC 2131 §4.1).
fn is_dhcp_request(p: &mut Parsed<'_>, s: Ipv4Addr) -> bool {
    s.is_unspecified()
        && p.ip4_dst().is_broadcast()
        && p.ip_proto() == IpProtocol::Udp
        && p.l4_ports() == Some((68, 67))
}

/// From `::`: only to `ff02::/16`, and only an MLD report or a neighbour
/// solicitation (duplicate address detection), code 0.
fn unspecified_allowed(p: &mut Parsed<'_>) -> bool {
    let to_link_scope = p.ip6_dst().segments()[0] == 0xff02;
    let msg = p.icmpv6();
    to_link_scope
        && matches!(msg, Some((MLD_REPORT | MLDV2_REPORT | ND_NS, m)) if m.len() >= 2 && m[1] == 0)
}

/// OVN's in_port_sec_nd for ARP: the sender must be the MAC, and one of the
/// entry's IPv4 addresses if it has any; an entry with only IPv6 addresses
/// sends no ARP.
fn arp(entry: &MacIps, p: &mut Parsed<'_>, src: MacAddr) -> Checked {
    let Some(a) = p.arp() else {
        return Err((DropReason::PortSecurityArp, Why::ArpTruncated));
    };
    let (sha, spa) = (mac(a, 8), ipv4(a, 14));
    if entry.ipv4.is_empty() && !entry.ipv6.is_empty() {
        return Err((DropReason::PortSecurityArp, Why::ArpIpv6Only(sha, spa)));
    }
    let ok = sha == src && (entry.ipv4.is_empty() || entry.ipv4.iter().any(|c| c.allows(spa)));
    if ok {
        Ok(Why::ArpAllowed(src, sha, spa))
    } else {
        Err((DropReason::PortSecurityArp, Why::Arp(sha, spa)))
    }
}

/// OVN's in_port_sec_nd for neighbour discovery: an NS's source
/// link-layer option and an NA's target link-layer option must be the MAC
/// (or zero); an NA's target one of the entry's IPv6 addresses or the
/// link-local one when it lists any (RFC 4861 §4.3, §4.4, §4.6.1).
fn nd(entry: &MacIps, p: &mut Parsed<'_>, src: MacAddr) -> Result<(), (DropReason, Why)> {
    if p.layout().ethertype() != EtherType::Ipv6 {
        return Ok(());
    }
    let Some((ty @ (ND_NS | ND_NA), msg)) = p.icmpv6() else {
        return Ok(());
    };
    let truncated = || {
        (
            DropReason::Malformed(Malformed::IcmpTruncated),
            Why::NdTruncated,
        )
    };
    if msg.len() < 24 {
        return Err(truncated());
    }
    let want_opt = if ty == ND_NS { 1 } else { 2 };
    let mut o = 24;
    while o + 2 <= msg.len() {
        let len = usize::from(msg[o + 1]) * 8;
        if len == 0 || o + len > msg.len() {
            return Err(truncated());
        }
        if msg[o] == want_opt && len >= 8 {
            let ll = mac(msg, o + 2);
            if ll != src && ll != MacAddr([0; 6]) {
                return Err((DropReason::PortSecurityNd, Why::NdLinkLayer(ll)));
            }
        }
        o += len;
    }
    if ty == ND_NA && !entry.ipv6.is_empty() {
        let target = ipv6(msg, 8);
        if target != link_local(src) && !entry.ipv6.iter().any(|c| c.allows(target)) {
            return Err((DropReason::PortSecurityNd, Why::NdTarget(target)));
        }
    }
    Ok(())
}

/// The EUI-64 link-local address of a MAC (RFC 4291 appendix A).
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// OVN's egress checks (`ls_out_check_port_sec`) for logical port `out`.
#[inline]
pub fn egress<T: Tracer>(out: &Lport, p: &mut Parsed<'_>, t: &mut T) -> Step {
    if allowed_to(out, p) {
        Step::Next
    } else {
        trace!(
            t,
            "egress_port_security",
            "destination not allowed by \"{}\"'s port security",
            out.name
        );
        Step::drop(DropReason::PortSecurityEgress)
    }
}

/// Whether port security lets `out` receive the frame (for each copy of a
/// flood, which parses its frame once for all copies).
#[inline]
pub fn egress_allowed(out: &Lport, frame: &[u8], lay: &Layout) -> bool {
    allowed_to(out, &mut Parsed::new(frame, *lay))
}

#[inline]
fn allowed_to(out: &Lport, p: &mut Parsed<'_>) -> bool {
    let ps = &out.port_security;
    if !ps.enabled {
        return true;
    }
    let dst = p.eth_dst();
    if dst.is_multicast() {
        return true;
    }
    let Some(entry) = ps.entry(dst) else {
        return false;
    };
    if entry.ipv4.is_empty() && entry.ipv6.is_empty() {
        return true;
    }
    match p.eth_type() {
        EtherType::Ipv4 => {
            let d = p.ip4_dst();
            !entry.ipv4.is_empty()
                && (d.is_broadcast()
                    || d.is_multicast()
                    || entry
                        .ipv4
                        .iter()
                        .any(|c| c.allows(d) || c.broadcast() == Some(d)))
        }
        EtherType::Ipv6 => {
            let d = p.ip6_dst();
            !entry.ipv6.is_empty()
                && (d.is_multicast()
                    || d == link_local(dst)
                    || entry.ipv6.iter().any(|c| c.allows(d)))
        }
        _ => true,
    }
}
