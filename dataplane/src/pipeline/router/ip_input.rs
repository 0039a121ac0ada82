//! OVN's `lr_in_ip_input` for one router: what the router drops, answers
//! or lets through to routing (ovn-northd(8), "Logical Router Ingress
//! Table 3: IP Input"):
//!
//! - priority 100, martians: a multicast, broadcast, loopback or
//!   `0.0.0.0/8` IPv4 source, a loopback or `0.0.0.0/8` destination; for
//!   IPv6 a multicast or loopback source, a loopback destination; and a
//!   source that is one of the router's own addresses;
//! - priority 90, ICMP echo requests to any of the router's addresses
//!   (with each port's link-local address, as OVN's `lrp_networks` hold
//!   it) are answered (the reply leaves by the port the request came in by);
//! - priority 80, not a later fragment: TCP to them gets `tcp_reset`, UDP
//!   ICMP port unreachable (type 3 code 3; ICMPv6 type 1 code 4), SCTP
//!   `sctp_abort`; priority 70, any other protocol ICMP destination
//!   unreachable (code 2, protocol unreachable; ICMPv6 code 3, address
//!   unreachable) — northd.c `build_lrouter_ipv4_ip_input` and its IPv6
//!   twin, for routers without gateway ports (which this one has not yet).
//!   Written by [`crate::reject`], which, unlike OVN's pinctrl, answers no
//!   ICMP error and no TCP RST (RFC 1122 §3.2.2, RFC 4443 §2.4(e), RFC
//!   9293 §3.10.7.1) and sends no SCTP ABORT: those are dropped;
//!   priority 60, what is left (later fragments) is dropped;
//! - priority 31/30, `ip.ttl == {0, 1}`: ICMP time exceeded (type 11 /
//!   ICMPv6 type 3, code 0) from the ingress port's address, unless the
//!   packet is a later fragment (`!ip.later_frag`), which is dropped.

use std::net::IpAddr;

use super::icmp::Answer;
use crate::drop::DropReason;
use crate::neighbor_log::Answered;
use crate::pipeline::{Decision, Fields, Parsed, Tracer};
use crate::reject::{self, Reply};
use crate::routes::{Routers, Rport};
use crate::wire::layout::Layout;
use crate::wire::IpProtocol;

/// ICMP (RFC 792) and ICMPv6 (RFC 4443 §4.1) echo request types.
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;

fn martian(src: IpAddr, dst: IpAddr) -> bool {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            s.is_multicast()
                || s.is_broadcast()
                || s.is_loopback()
                || d.is_loopback()
                || s.octets()[0] == 0
                || d.octets()[0] == 0
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => s.is_multicast() || s.is_loopback() || d.is_loopback(),
        _ => false,
    }
}

/// Whether router port `p` owns `ip` (one of its networks' addresses, or
/// its link-local address).
fn owns(p: &Rport, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => p.ipv4.iter().any(|c| c.addr == a),
        IpAddr::V6(a) => p.lla == a || p.ipv6.iter().any(|c| c.addr == a),
    }
}

/// The address of `p` that speaks to `to` (a time exceeded's source, an
/// ARP request's sender: OVN's `REG_SRC_IPV4`/`REG_SRC_IPV6`): the one
/// whose network holds `to`, else the port's first of that family.
pub(super) fn source_for(p: &Rport, to: IpAddr) -> Option<IpAddr> {
    match to {
        IpAddr::V4(a) => p
            .ipv4
            .iter()
            .find(|c| c.contains(a))
            .or(p.ipv4.first())
            .map(|c| c.addr.into()),
        IpAddr::V6(a) => p
            .ipv6
            .iter()
            .find(|c| c.contains(a))
            .or(p.ipv6.first())
            .map(|c| c.addr.into()),
    }
}

/// None: on to routing; else the router's decision.
pub fn ip_input<T: Tracer>(
    rs: &Routers,
    inport: usize,
    src: IpAddr,
    dst: IpAddr,
    p: &mut Parsed<'_>,
    t: &mut T,
) -> Option<Decision> {
    let rp = &rs.ports[inport];
    let ports = || rs.routers[rp.router].ports.iter().map(|&i| &rs.ports[i]);
    if martian(src, dst) || ports().any(|q| owns(q, src)) {
        trace!(t, "lr_in_ip_input", "martian {src} -> {dst}: dropped");
        return Some(Decision::drop(DropReason::RouterMartian));
    }
    if ports().any(|q| owns(q, dst)) {
        p.read(Fields::ANSWER);
        let lay = *p.layout();
        let echo = match p.ip_proto() {
            IpProtocol::Icmp => ICMP_ECHO_REQUEST,
            IpProtocol::Icmpv6 => ICMPV6_ECHO_REQUEST,
            _ => 0,
        };
        if echo != 0 && lay.has(Layout::L4) && p.icmp_type_code() == Some((echo, 0)) {
            trace!(
                t,
                "lr_in_ip_input",
                "echo request to router address {dst}: echo reply"
            );
            if !T::ENABLED {
                rs.log.answer(Answered::EchoReply);
            }
            return Some(Decision::Router(Answer::Echo { mac: rp.mac }));
        }
        let (frame, lay) = p.stateful();
        let Some(reply) = reject::reply_for(frame, lay) else {
            trace!(
                t,
                "lr_in_ip_input",
                "to router address {dst}, not an echo request and nothing to answer (a later fragment, an SCTP ABORT, a TCP RST or an ICMP error): dropped"
            );
            return Some(Decision::drop(DropReason::RouterLocal));
        };
        let (what, counted) = match reply {
            Reply::TcpReset => ("TCP: tcp_reset (RST|ACK)", Answered::TcpReset),
            Reply::SctpAbort => ("SCTP: sctp_abort (ABORT)", Answered::SctpAbort),
            Reply::PortUnreachable => ("UDP: ICMP port unreachable", Answered::PortUnreachable),
            Reply::Unreachable if lay.has(Layout::IPV4) => {
                ("ICMP protocol unreachable", Answered::DstUnreachable)
            }
            Reply::Unreachable => ("ICMPv6 address unreachable", Answered::DstUnreachable),
        };
        trace!(
            t,
            "lr_in_ip_input",
            "to router address {dst}, not an echo request: {what} from {dst} out of \"{}\"",
            rp.name
        );
        if !T::ENABLED {
            rs.log.answer(counted);
        }
        return Some(Decision::Router(Answer::Unreachable));
    }
    if p.ttl_expiring() {
        p.read(Fields::ANSWER);
        let later_frag = p.layout().has(Layout::LATER_FRAGMENT);
        match source_for(rp, src) {
            Some(from) if !later_frag => {
                trace!(
                    t,
                    "lr_in_ip_input",
                    "ip.ttl <= 1: time exceeded from {from} (\"{}\")",
                    rp.name
                );
                if !T::ENABLED {
                    rs.log.answer(Answered::TimeExceeded);
                }
                return Some(Decision::Router(Answer::TimeExceeded { mac: rp.mac, from }));
            }
            _ => {
                trace!(t, "lr_in_ip_input", "ip.ttl <= 1: dropped");
                return Some(Decision::drop(DropReason::TtlExpired));
            }
        }
    }
    None
}
