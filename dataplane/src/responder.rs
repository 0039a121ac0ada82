//! The frames the switch writes itself: answers over the request they
//! answer, an ARP reply (RFC 826) and a solicited neighbour advertisement
//! (RFC 4861 §4.4), and the ICMP errors a router would send for a packet
//! too big for the overlay (RFC 792 / RFC 1191, RFC 4443 §3.2). The logical
//! switches' ARP/ND responder answers for VM addresses, and the uplink for
//! this chassis' tunnel endpoint, through the same functions.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::packet::PacketBuf;
use crate::wire::{checksum, ethernet, icmpv4, icmpv6, ipv4, ipv6, EtherType, IpProtocol, MacAddr};

/// RFC 4861 §4.4: the ICMPv6 type of a neighbour advertisement.
const ND_NA: u8 = 136;

/// Rewrites the ARP request whose ARP header is at `l3` of `f` into the
/// reply "`ip` is at `mac`", addressed to the requester.
pub fn arp_reply(f: &mut [u8], l3: usize, mac: MacAddr, ip: Ipv4Addr) {
    let requester: [u8; 6] = f[l3 + 8..l3 + 14].try_into().expect("6 bytes");
    let spa: [u8; 4] = f[l3 + 14..l3 + 18].try_into().expect("4 bytes");
    f.copy_within(6..12, 0); // eth.dst = eth.src
    f[6..12].copy_from_slice(&mac.0);
    f[l3 + 6..l3 + 8].copy_from_slice(&2u16.to_be_bytes()); // reply
    f[l3 + 18..l3 + 24].copy_from_slice(&requester);
    f[l3 + 24..l3 + 28].copy_from_slice(&spa);
    f[l3 + 8..l3 + 14].copy_from_slice(&mac.0);
    f[l3 + 14..l3 + 18].copy_from_slice(&ip.octets());
}

/// Rewrites the neighbour solicitation in `buf` (IPv6 header at `l3`) into
/// the solicited advertisement "`target` is at `mac`": solicited and
/// override flags, a target link-layer address option, from `target` to
/// the solicitation's source. False if the buffer cannot hold it.
pub fn neighbor_advert<B: PacketBuf>(
    buf: &mut B,
    l3: usize,
    target: Ipv6Addr,
    mac: MacAddr,
) -> bool {
    let frame = buf.data();
    let requester: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
    let src: [u8; 16] = frame[l3 + 8..l3 + 24].try_into().expect("16 bytes");
    if !buf.set_len(l3 + 40 + 32) {
        return false;
    }
    let f = buf.data_mut();
    f[0..6].copy_from_slice(&requester);
    f[6..12].copy_from_slice(&mac.0);
    f[l3 + 4..l3 + 6].copy_from_slice(&32u16.to_be_bytes()); // payload length
    f[l3 + 6] = IpProtocol::Icmpv6.into();
    f[l3 + 7] = 255; // hop limit (RFC 4861 §7.1.2)
    f[l3 + 24..l3 + 40].copy_from_slice(&src); // dst = requester
    f[l3 + 8..l3 + 24].copy_from_slice(&target.octets()); // src = target
    let l4 = l3 + 40;
    f[l4] = ND_NA;
    f[l4 + 1] = 0;
    f[l4 + 2..l4 + 4].copy_from_slice(&[0, 0]);
    f[l4 + 4..l4 + 8].copy_from_slice(&[0x60, 0, 0, 0]); // S + O
    f[l4 + 8..l4 + 24].copy_from_slice(&target.octets());
    f[l4 + 24] = 2; // target link-layer address
    f[l4 + 25] = 1;
    f[l4 + 26..l4 + 32].copy_from_slice(&mac.0);
    // RFC 4443 §2.3: checksum over the IPv6 pseudo header and message.
    let pseudo = checksum::pseudo_header_v6(&target, &src.into(), IpProtocol::Icmpv6, 32);
    let csum = !checksum::combine(&[pseudo, checksum::data(&f[l4..l4 + 32])]);
    f[l4 + 2..l4 + 4].copy_from_slice(&csum.to_be_bytes());
    true
}

/// How the switch sends an IP packet of its own: hop limit (TTL), DSCP,
/// and, for IPv4, whether Don't Fragment is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// IPv4 TTL or IPv6 hop limit.
    pub hop_limit: u8,
    /// IPv4 DSCP or the upper six bits of the IPv6 traffic class.
    pub dscp: u8,
    /// IPv4 Don't Fragment.
    pub dont_frag: bool,
}

/// What a router's ICMPv4 errors carry: TTL 64, internetwork control
/// (CS6), fragmentable (as Linux sends them).
const ROUTER_V4: Origin = Origin {
    hop_limit: 64,
    dscp: 0x30,
    dont_frag: false,
};
/// What a router's ICMPv6 errors carry: hop limit 64, traffic class 0.
const ROUTER_V6: Origin = Origin {
    hop_limit: 64,
    dscp: 0,
    dont_frag: false,
};

/// Swaps the Ethernet addresses of `f`, so the frame goes back to its
/// sender (a VLAN tag, if any, stays).
pub fn back_to_sender(f: &mut [u8]) {
    let mut eth = ethernet::Frame::new_unchecked(f);
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    eth.set_src_addr(dst);
    eth.set_dst_addr(src);
}

/// Writes a 20-byte IPv4 header (RFC 791 §3.1) at the front of `ip`, whose
/// length is the whole packet's, from `src` to `dst` carrying `proto`.
pub fn ipv4_header(ip: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, o: Origin) {
    let len = ip.len() as u16;
    let mut p = ipv4::Packet::new_unchecked(ip);
    p.set_version(4);
    p.set_header_len(20);
    p.set_dscp(o.dscp);
    p.set_ecn(0);
    p.set_total_len(len);
    p.set_ident(0);
    p.set_more_frags(false);
    p.set_frag_offset(0);
    p.set_dont_frag(o.dont_frag);
    p.set_hop_limit(o.hop_limit);
    p.set_next_header(proto);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    p.fill_checksum();
}

/// Writes a 40-byte IPv6 header (RFC 8200 §3) at the front of `ip`, whose
/// length is the whole packet's, from `src` to `dst` carrying `next`.
pub fn ipv6_header(ip: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, next: IpProtocol, o: Origin) {
    let len = (ip.len() - 40) as u16;
    let mut p = ipv6::Packet::new_unchecked(ip);
    p.set_version(6);
    p.set_traffic_class(o.dscp << 2);
    p.set_flow_label(0);
    p.set_payload_len(len);
    p.set_next_header(next);
    p.set_hop_limit(o.hop_limit);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
}

/// Writes an ICMPv4 error (RFC 792) into `ip` from `src` to `dst`: the IP
/// header, the ICMP header (`msg`, `code`; the word after the checksum is
/// zero but for the next-hop MTU of RFC 1191 §4), in front of the
/// offending packet's start already at `ip[28..]`.
pub fn icmpv4_error(
    ip: &mut [u8],
    (src, dst): (Ipv4Addr, Ipv4Addr),
    (msg, code): (icmpv4::Message, u8),
    next_hop_mtu: u16,
    o: Origin,
) {
    ipv4_header(ip, src, dst, IpProtocol::Icmp, o);
    let mut icmp = icmpv4::Packet::new_unchecked(&mut ip[20..]);
    icmp.set_msg_type(msg);
    icmp.set_msg_code(code);
    icmp.clear_unused();
    icmp.set_next_hop_mtu(next_hop_mtu);
    icmp.fill_checksum();
}

/// Writes an ICMPv6 error (RFC 4443 §2.1) into `ip` from `src` to `dst`,
/// as [`icmpv4_error`] does (the word after the checksum zero but for the
/// MTU of a packet too big, §3.2), the offending packet at `ip[48..]`.
pub fn icmpv6_error(
    ip: &mut [u8],
    (src, dst): (Ipv6Addr, Ipv6Addr),
    (msg, code): (icmpv6::Message, u8),
    mtu: u32,
    o: Origin,
) {
    ipv6_header(ip, src, dst, IpProtocol::Icmpv6, o);
    let mut icmp = icmpv6::Packet::new_unchecked(&mut ip[40..]);
    icmp.set_msg_type(msg);
    icmp.set_msg_code(code);
    icmp.clear_reserved();
    icmp.set_pkt_too_big_mtu(mtu);
    icmp.fill_checksum(&src, &dst);
}

/// What to tell a sender whose packet is too big for the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TooBig {
    /// Answer with this frame length written into the reply buffer.
    Reply(usize),
    /// Drop silently-counted: no DF (IPv4), or not IP.
    Drop,
}

/// For a frame too big for the overlay, writes into `reply` the ICMP
/// "fragmentation needed" (RFC 792, RFC 1191 §4: next-hop MTU = `mtu`, the
/// largest inner IP packet) or ICMPv6 "packet too big" (RFC 4443 §3.2) a
/// router would send, so the VM's path-MTU discovery converges. It comes
/// from the packet's destination (addresses swapped) and quotes as much of
/// the packet as fits in 576 (IPv4) or 1280 (IPv6) bytes.
pub fn too_big(frame: &[u8], mtu: u16, reply: &mut [u8]) -> TooBig {
    if frame.len() < 14 + 40 {
        return TooBig::Drop;
    }
    let l3 = 14;
    let ip = &frame[l3..];
    let (hdr, quoted) = match ethernet::Frame::new_unchecked(frame).ethertype() {
        EtherType::Ipv4 => {
            let p = ipv4::Packet::new_unchecked(ip);
            let error = p.next_header() == IpProtocol::Icmp
                && ip.len() > 20
                && icmpv4::Message::from(ip[20]) == icmpv4::Message::DstUnreachable;
            if p.version() != 4 || !p.dont_frag() || error {
                // No DF (a switch does not fragment), or itself an ICMP error.
                return TooBig::Drop;
            }
            (20, ip.len().min(576 - 20 - 8))
        }
        EtherType::Ipv6 => {
            let p = ipv6::Packet::new_unchecked(ip);
            let error = p.next_header() == IpProtocol::Icmpv6 && ip.len() > 40 && ip[40] < 128;
            if p.version() != 6 || error {
                return TooBig::Drop; // not for ICMPv6 errors (RFC 4443 §2.4 e.1)
            }
            (40, ip.len().min(1280 - 40 - 8))
        }
        _ => return TooBig::Drop,
    };
    let total = l3 + hdr + 8 + quoted;
    if reply.len() < total {
        return TooBig::Drop;
    }
    reply[..l3].copy_from_slice(&frame[..l3]);
    back_to_sender(reply);
    reply[l3 + hdr + 8..total].copy_from_slice(&ip[..quoted]);
    let r = &mut reply[l3..total];
    if hdr == 20 {
        let p = ipv4::Packet::new_unchecked(ip);
        let addrs = (p.dst_addr(), p.src_addr());
        let msg = icmpv4::Message::DstUnreachable;
        let code = icmpv4::DstUnreachable::FragRequired.into();
        icmpv4_error(r, addrs, (msg, code), mtu, ROUTER_V4);
    } else {
        let p = ipv6::Packet::new_unchecked(ip);
        let addrs = (p.dst_addr(), p.src_addr());
        let msg = (icmpv6::Message::PktTooBig, 0);
        icmpv6_error(r, addrs, msg, u32::from(mtu), ROUTER_V6);
    }
    TooBig::Reply(total)
}
