//! The frames the switch writes itself: answers over the request they
//! answer, an ARP reply (RFC 826) and a solicited neighbour advertisement
//! (RFC 4861 §4.4), and the ICMP errors a router would send for a packet
//! too big for the overlay (RFC 792 / RFC 1191, RFC 4443 §3.2). The logical
//! switches' ARP/ND responder answers for VM addresses, and the uplink for
//! this chassis' tunnel endpoint, through the same functions.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::packet::PacketBuf;
use crate::wire::read::be16;
use crate::wire::{checksum, EtherType, IpProtocol, MacAddr};

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
    let (ethertype, l3) = (be16(frame, 12), 14);
    let mut head = [0u8; 14];
    head[0..6].copy_from_slice(&frame[6..12]);
    head[6..12].copy_from_slice(&frame[0..6]);
    head[12..14].copy_from_slice(&frame[12..14]);
    match EtherType::from(ethertype) {
        EtherType::Ipv4 => {
            let ip = &frame[l3..];
            if ip[0] >> 4 != 4
                || be16(ip, 6) & 0x4000 == 0
                || ip[9] == 1 && ip.len() > 20 && ip[20] == 3
            {
                // No DF (a switch does not fragment), or itself an ICMP error.
                return TooBig::Drop;
            }
            let quoted = (frame.len() - l3).min(576 - 20 - 8);
            let total = 14 + 20 + 8 + quoted;
            if reply.len() < total {
                return TooBig::Drop;
            }
            reply[..14].copy_from_slice(&head);
            let r = &mut reply[14..total];
            r[0] = 0x45;
            r[1] = 0xc0; // internetwork control
            r[2..4].copy_from_slice(&((20 + 8 + quoted) as u16).to_be_bytes());
            r[4..8].copy_from_slice(&[0, 0, 0, 0]);
            r[8] = 64;
            r[9] = 1;
            r[10..12].copy_from_slice(&[0, 0]);
            r[12..16].copy_from_slice(&ip[16..20]);
            r[16..20].copy_from_slice(&ip[12..16]);
            let c = !checksum::data(&r[..20]);
            r[10..12].copy_from_slice(&c.to_be_bytes());
            let icmp = &mut r[20..];
            icmp[0] = 3; // destination unreachable
            icmp[1] = 4; // fragmentation needed and DF set
            icmp[2..6].copy_from_slice(&[0, 0, 0, 0]);
            icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
            icmp[8..8 + quoted].copy_from_slice(&ip[..quoted]);
            let c = !checksum::data(icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            TooBig::Reply(total)
        }
        EtherType::Ipv6 => {
            let ip = &frame[l3..];
            if ip[0] >> 4 != 6 || ip[6] == 58 && ip.len() > 40 && ip[40] < 128 {
                return TooBig::Drop; // not for ICMPv6 errors (RFC 4443 §2.4 e.1)
            }
            let quoted = (frame.len() - l3).min(1280 - 40 - 8);
            let total = 14 + 40 + 8 + quoted;
            if reply.len() < total {
                return TooBig::Drop;
            }
            reply[..14].copy_from_slice(&head);
            let r = &mut reply[14..total];
            r[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
            r[4..6].copy_from_slice(&((8 + quoted) as u16).to_be_bytes());
            r[6] = 58;
            r[7] = 64;
            let (src, dst) = (&ip[24..40], &ip[8..24]);
            r[8..24].copy_from_slice(src);
            r[24..40].copy_from_slice(dst);
            let icmp = &mut r[40..];
            icmp[0] = 2; // packet too big
            icmp[1] = 0;
            icmp[2..4].copy_from_slice(&[0, 0]);
            icmp[4..8].copy_from_slice(&u32::from(mtu).to_be_bytes());
            icmp[8..8 + quoted].copy_from_slice(&ip[..quoted]);
            let s: [u8; 16] = src.try_into().expect("16 bytes");
            let d: [u8; 16] = dst.try_into().expect("16 bytes");
            let pseudo = checksum::pseudo_header_v6(
                &s.into(),
                &d.into(),
                IpProtocol::Icmpv6,
                (8 + quoted) as u32,
            );
            let c = !checksum::combine(&[pseudo, checksum::data(icmp)]);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            TooBig::Reply(total)
        }
        _ => TooBig::Drop,
    }
}
