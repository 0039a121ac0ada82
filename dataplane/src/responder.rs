//! Answers written over the request they answer: an ARP reply (RFC 826)
//! and a solicited neighbour advertisement (RFC 4861 §4.4). The logical
//! switches' ARP/ND responder answers for VM addresses with them, and the
//! uplink answers for this chassis' tunnel endpoint, so both answer alike.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::packet::PacketBuf;
use crate::wire::{checksum, IpProtocol, MacAddr};

const ND_NA: u8 = 136;
const PROTO_ICMPV6: u8 = 58;

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
    f[l3 + 6] = PROTO_ICMPV6;
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
