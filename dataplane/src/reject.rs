//! The answer to a packet a `reject` ACL matched (or a router's own
//! address got, [`ROUTER_CODES`]), written over the packet
//! and sent back out of its ingress port, byte for byte as OVN 23.03 writes
//! it: ovn-northd's `build_reject_acl_rules` (northd/northd.c) emits
//! `reject { outport <-> inport; … }`, and ovn-controller's
//! `pinctrl_handle_reject` (controller/pinctrl.c) answers:
//! - TCP (`pinctrl_handle_tcp_reset`): RST|ACK, sequence 0, acknowledging
//!   SEG.SEQ + 1 whatever the segment carried, TTL / hop limit 63;
//! - SCTP (`pinctrl_handle_sctp_abort`): an ABORT chunk alone, TTL / hop
//!   limit 63, ports swapped; to an INIT with verification tag 0 with the
//!   INIT's Initiate Tag and the T bit clear (RFC 9260 §8.4 item 3), to
//!   anything else with the packet's own tag and T set (item 8); an ABORT
//!   or an incomplete INIT gets none;
//! - anything else (`pinctrl_handle_icmp`, with `set_icmp_code`): ICMPv4
//!   destination unreachable, code 3 (port unreachable) for UDP and code 1
//!   (host unreachable) otherwise; ICMPv6 destination unreachable, code 4
//!   (port unreachable) for UDP and code 1 (administratively prohibited)
//!   otherwise; TTL / hop limit 255, quoting as much of the packet as fits
//!   in 576 bytes (IPv4, with the 14 Ethernet bytes counted as OVN counts
//!   them) or 1280 bytes (IPv6);
//! - both: DSCP 0, IPv4 DF set and ident 0, MACs swapped, VLAN tag kept.
//!
//! OVN's RST, acknowledging SEG.SEQ + 1 with sequence 0, is what a client's
//! SYN wants (RFC 9293 §3.10.7.1); a mid-stream segment's sender ignores it
//! (RFC 5961 §3), there as in OVN. Where we differ:
//! OVN does not answer an ICMP destination unreachable or a RST, we also
//! answer no other ICMP error (RFC 1122 §3.2.2, RFC 4443 §2.4(e)) and
//! nothing sent to a multicast or broadcast address.

use std::net::IpAddr;

use crate::packet::PacketBuf;
use crate::responder::Origin;
use crate::responder::{back_to_sender, icmpv4_error, icmpv6_error, ipv4_header, ipv6_header};
use crate::wire::layout::Layout;
use crate::wire::{ethernet, icmpv4, icmpv6, ipv4, ipv6, sctp, tcp, IpProtocol};

/// `pinctrl_handle_tcp_reset` and `pinctrl_handle_sctp_abort`:
/// `pinctrl_compose_ipv4/6(…, 63, …)`.
const RST_ABORT: Origin = Origin {
    hop_limit: 63,
    dscp: 0,
    dont_frag: true,
};
/// `pinctrl_handle_icmp`: `pinctrl_compose_ipv4/6(…, 255, …)`.
const ICMP: Origin = Origin {
    hop_limit: 255,
    dscp: 0,
    dont_frag: true,
};
/// `pinctrl_handle_icmp`: the quote room, 576 - (14 + 20 + 8) (RFC 1122
/// §3.2.2: at least the IP header and 8 bytes; at most 576 bytes in all).
const QUOTE_V4: usize = 576 - (ethernet::HEADER_LEN + ipv4::HEADER_LEN + icmpv4::HEADER_LEN);
/// `pinctrl_handle_icmp`: 1280 - (14 + 40 + 8) (RFC 4443 §3.1: as much as
/// fits in the IPv6 minimum MTU).
const QUOTE_V6: usize = 1280 - (ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmpv6::HEADER_LEN);

/// What an answer is, chosen by the packet it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// TCP: RST|ACK.
    TcpReset,
    /// SCTP: ABORT.
    SctpAbort,
    /// UDP: ICMP destination unreachable, port unreachable.
    PortUnreachable,
    /// Anything else: ICMP destination unreachable with the other code of
    /// [`Codes`].
    Unreachable,
}

impl Reply {
    /// What trace and /metrics call it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reply::TcpReset => "tcp_reset",
            Reply::SctpAbort => "sctp_abort",
            Reply::PortUnreachable => "port_unreachable",
            Reply::Unreachable => "dst_unreachable",
        }
    }
}

/// The destination-unreachable codes an answer uses: (UDP, anything
/// else) for ICMPv4 and for ICMPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codes {
    pub v4: (icmpv4::DstUnreachable, icmpv4::DstUnreachable),
    pub v6: (icmpv6::DstUnreachable, icmpv6::DstUnreachable),
}

/// A `reject` ACL's: pinctrl's `set_icmp_code` (port unreachable for UDP,
/// else host unreachable; ICMPv6 port unreachable, else administratively
/// prohibited).
pub const ACL_CODES: Codes = Codes {
    v4: (
        icmpv4::DstUnreachable::PortUnreachable,
        icmpv4::DstUnreachable::HostUnreachable,
    ),
    v6: (
        icmpv6::DstUnreachable::PortUnreachable,
        icmpv6::DstUnreachable::AdminProhibit,
    ),
};

/// A router's own addresses' (northd.c, `lr_in_ip_input` priorities 80
/// and 70): `icmp4.code = 3` for UDP, else `icmp4.code = 2` (protocol
/// unreachable); `icmp6.code = 4` for UDP, else `icmp6.code = 3` (address
/// unreachable).
pub const ROUTER_CODES: Codes = Codes {
    v4: (
        icmpv4::DstUnreachable::PortUnreachable,
        icmpv4::DstUnreachable::ProtoUnreachable,
    ),
    v6: (
        icmpv6::DstUnreachable::PortUnreachable,
        icmpv6::DstUnreachable::AddrUnreachable,
    ),
};

/// The answer the packet in `f` (parsed into `lay`) deserves; None if none
/// (see the module doc): the caller then drops it.
pub fn reply_for(f: &[u8], lay: &Layout) -> Option<Reply> {
    // Opaque protocols have no L4 header to read (and need none: the
    // answer quotes the IP packet); TCP, UDP and ICMP have one unless a
    // later fragment.
    let known = matches!(
        lay.ip_protocol(),
        IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Icmp | IpProtocol::Icmpv6
    );
    if !(lay.has(Layout::IPV4) || lay.has(Layout::IPV6))
        || (known && !lay.has(Layout::L4))
        || lay.has(Layout::LATER_FRAGMENT)
        || lay.dst_mac(f).is_multicast()
    {
        return None;
    }
    match lay.ip_protocol() {
        IpProtocol::Tcp if lay.tcp_flags(f).contains(tcp::Flags::RST) => None,
        IpProtocol::Tcp => Some(Reply::TcpReset),
        IpProtocol::Sctp => sctp_answerable(lay.l4_bytes(f)).then_some(Reply::SctpAbort),
        IpProtocol::Icmp if icmpv4_is_error(lay.icmp_type(f)) => None,
        // RFC 4443 §2.1: types 0..=127 are the errors.
        IpProtocol::Icmpv6 if lay.icmp_type(f) < 128 => None,
        IpProtocol::Udp => Some(Reply::PortUnreachable),
        _ => Some(Reply::Unreachable),
    }
}

/// Writes a `reject` ACL's answer to the packet in `buf` (parsed into
/// `lay`) over it; false if it deserves none (see the module doc) or the
/// buffer cannot hold it, and then the caller drops it.
pub fn answer<B: PacketBuf>(buf: &mut B, lay: &Layout) -> bool {
    answer_with(buf, lay, &ACL_CODES)
}

/// [`answer`] with the unreachable codes `codes`.
pub fn answer_with<B: PacketBuf>(buf: &mut B, lay: &Layout, codes: &Codes) -> bool {
    match reply_for(buf.data(), lay) {
        None => false,
        Some(Reply::TcpReset) => tcp_reset(buf, lay),
        Some(Reply::SctpAbort) => sctp_abort(buf, lay),
        Some(r) => dst_unreachable(buf, lay, codes, r == Reply::PortUnreachable),
    }
}

/// RFC 1122 §3.2.2: "An ICMP error message MUST NOT be sent as the result
/// of receiving an ICMP error message" (destination unreachable, source
/// quench, redirect, time exceeded, parameter problem).
fn icmpv4_is_error(t: u8) -> bool {
    use icmpv4::Message as M;
    matches!(
        M::from(t),
        M::DstUnreachable | M::Unknown(4) | M::Redirect | M::TimeExceeded | M::ParamProblem
    )
}

/// The packet's (source, destination) IP addresses.
fn addrs(f: &[u8], lay: &Layout) -> (IpAddr, IpAddr) {
    if lay.has(Layout::IPV6) {
        (lay.ipv6_src(f).into(), lay.ipv6_dst(f).into())
    } else {
        (lay.ipv4_src(f).into(), lay.ipv4_dst(f).into())
    }
}

/// `pinctrl_handle_tcp_reset`: a 20-byte RST|ACK from the segment's
/// destination, with sequence 0 and ACK SEG.SEQ + 1.
fn tcp_reset<B: PacketBuf>(buf: &mut B, lay: &Layout) -> bool {
    let (l3, f) = (usize::from(lay.l3), buf.data());
    let (src, dst) = addrs(f, lay);
    let seg = tcp::Packet::new_unchecked(lay.l4_bytes(f));
    let (sport, dport, seq) = (seg.src_port(), seg.dst_port(), seg.seq_number());
    let hdr = if src.is_ipv6() {
        ipv6::HEADER_LEN
    } else {
        ipv4::HEADER_LEN
    };
    let total = l3 + hdr + tcp::HEADER_LEN;
    let f = buf.data_mut();
    back_to_sender(f);
    let ip = &mut f[l3..total];
    match (dst, src) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4_header(ip, s, d, IpProtocol::Tcp, RST_ABORT),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6_header(ip, s, d, IpProtocol::Tcp, RST_ABORT),
        _ => unreachable!("one IP version"),
    }
    let mut rst = tcp::Packet::new_unchecked(&mut ip[hdr..]);
    rst.set_src_port(dport);
    rst.set_dst_port(sport);
    rst.set_seq_number(0);
    rst.set_ack_number(seq.wrapping_add(1));
    rst.set_header_len(tcp::HEADER_LEN as u8);
    rst.set_flags(tcp::Flags::RST | tcp::Flags::ACK);
    rst.set_window_len(0);
    rst.set_urgent_at(0);
    rst.fill_checksum(&dst, &src);
    buf.set_len(total)
}

/// Whether the SCTP packet `s` gets an ABORT: it holds a chunk, not an
/// ABORT, and an INIT whole.
fn sctp_answerable(s: &[u8]) -> bool {
    if s.len() < sctp::HEADER_LEN + sctp::CHUNK_HEADER_LEN {
        return false;
    }
    match sctp::Packet(s).chunk_type() {
        sctp::CHUNK_ABORT => false,
        sctp::CHUNK_INIT => {
            s.len() >= sctp::HEADER_LEN + sctp::CHUNK_HEADER_LEN + sctp::INIT_FIXED_LEN
        }
        _ => true,
    }
}

/// `pinctrl_handle_sctp_abort`: a 16-byte ABORT from the packet's
/// destination.
fn sctp_abort<B: PacketBuf>(buf: &mut B, lay: &Layout) -> bool {
    let (l3, f) = (usize::from(lay.l3), buf.data());
    let (src, dst) = addrs(f, lay);
    let s = sctp::Packet(lay.l4_bytes(f));
    let (sport, dport) = (s.src_port(), s.dst_port());
    let (vtag, flags) = match (s.verification_tag(), s.chunk_type()) {
        (0, sctp::CHUNK_INIT) => (s.initiate_tag(), 0),
        (tag, _) => (tag, sctp::ABORT_FLAG_T),
    };
    let hdr = if src.is_ipv6() {
        ipv6::HEADER_LEN
    } else {
        ipv4::HEADER_LEN
    };
    let len = sctp::HEADER_LEN + sctp::CHUNK_HEADER_LEN;
    let total = l3 + hdr + len;
    let f = buf.data_mut();
    back_to_sender(f);
    let ip = &mut f[l3..total];
    match (dst, src) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4_header(ip, s, d, IpProtocol::Sctp, RST_ABORT),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6_header(ip, s, d, IpProtocol::Sctp, RST_ABORT),
        _ => unreachable!("one IP version"),
    }
    let mut abort = sctp::Packet(&mut ip[hdr..]);
    abort.set_header(dport, sport, vtag);
    abort.set_chunk(sctp::CHUNK_ABORT, flags, sctp::CHUNK_HEADER_LEN as u16);
    abort.fill_checksum();
    buf.set_len(total)
}

/// `pinctrl_handle_icmp`: destination unreachable quoting the packet
/// (port unreachable if `udp`), from its destination.
fn dst_unreachable<B: PacketBuf>(buf: &mut B, lay: &Layout, codes: &Codes, udp: bool) -> bool {
    let (l3, f) = (usize::from(lay.l3), buf.data());
    let (src, dst) = addrs(f, lay);
    let (hdr, room) = if src.is_ipv6() {
        (ipv6::HEADER_LEN + icmpv6::HEADER_LEN, QUOTE_V6)
    } else {
        (ipv4::HEADER_LEN + icmpv4::HEADER_LEN, QUOTE_V4)
    };
    let quoted = lay.l3_bytes(f).len().min(room);
    let total = l3 + hdr + quoted;
    if total > buf.len() && !buf.set_len(total) {
        return false;
    }
    let f = buf.data_mut();
    f.copy_within(l3..l3 + quoted, l3 + hdr);
    back_to_sender(f);
    let ip = &mut f[l3..total];
    match (dst, src) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let code = if udp { codes.v4.0 } else { codes.v4.1 };
            let msg = (icmpv4::Message::DstUnreachable, code.into());
            icmpv4_error(ip, (s, d), msg, 0, ICMP);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let code = if udp { codes.v6.0 } else { codes.v6.1 };
            let msg = (icmpv6::Message::DstUnreachable, code.into());
            icmpv6_error(ip, (s, d), msg, 0, ICMP);
        }
        _ => unreachable!("one IP version"),
    }
    buf.set_len(total)
}

#[cfg(test)]
mod tests;
