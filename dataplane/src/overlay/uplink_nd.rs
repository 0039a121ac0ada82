//! The uplink's own address resolution: ARP (RFC 826) over an IPv4
//! underlay and neighbour discovery (RFC 4861) over an IPv6 one. It answers
//! for this chassis' tunnel address, learns remote endpoints into
//! [`Neighbors`], and asks for endpoints it does not know.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::decap::Uplink;
use super::neighbors::Neighbors;
use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::tables::Underlay;
use crate::wire::read::{be16, ipv4, ipv6};
use crate::wire::{icmpv6, EtherType, IpProtocol, MacAddr};

/// ARP on an IPv4 uplink: learn remote endpoints, answer for our address.
pub(super) fn arp<B: PacketBuf>(
    buf: &mut B,
    underlay: &Underlay,
    ours: Ipv4Addr,
    neighbors: &Neighbors,
) -> Result<Uplink, DropReason> {
    let f = buf.data();
    if f.len() < 14 + 28 || be16(f, 14) != 1 || be16(f, 16) != u16::from(EtherType::Ipv4) {
        return Err(DropReason::TunnelMalformed);
    }
    let a = 14;
    let op = be16(f, a + 6);
    let sha = MacAddr(f[a + 8..a + 14].try_into().expect("6 bytes"));
    let spa = IpAddr::V4(ipv4(f, a + 14));
    let tpa = ipv4(f, a + 24);
    if underlay.chassis.iter().any(|c| c.ip == spa) {
        neighbors.set(spa, sha);
    }
    if op == 1 && tpa == ours {
        crate::responder::arp_reply(buf.data_mut(), a, underlay.mac, ours);
        return Ok(Uplink::NeighborReply);
    }
    Ok(Uplink::Neighbor)
}

/// Neighbour discovery on an IPv6 uplink (RFC 4861): answers solicitations
/// for our tunnel address and learns remote endpoints from solicitations
/// and advertisements. Other ICMPv6 is the host's. `end` is the end of the
/// IPv6 packet.
pub(super) fn nd<B: PacketBuf>(
    buf: &mut B,
    underlay: &Underlay,
    ours: Ipv6Addr,
    neighbors: &Neighbors,
    end: usize,
) -> Result<Uplink, DropReason> {
    let f = buf.data();
    let msg = &f[14 + 40..end];
    if msg.len() < 24 {
        return Ok(Uplink::NotOurs);
    }
    let target = ipv6(msg, 8);
    let remote = |ip: Ipv6Addr| underlay.chassis.iter().any(|c| c.ip == IpAddr::V6(ip));
    match msg[0] {
        135 if target == ours => {}
        136 if remote(target) => {}
        _ => return Ok(Uplink::NotOurs),
    }
    // RFC 4861 §7.1.1, §7.1.2: hop limit 255 (never forwarded), a valid
    // checksum, then the message's own checks.
    let (src, dst) = (ipv6(f, 22), ipv6(f, 38));
    let p = icmpv6::Packet::new_checked(msg).map_err(|_| DropReason::UplinkNdInvalid)?;
    if f[21] != 255 || !p.verify_checksum(&src, &dst) {
        return Err(DropReason::UplinkNdInvalid);
    }
    let repr = icmpv6::NdiscRepr::parse(&p).map_err(|_| DropReason::UplinkNdInvalid)?;
    match repr {
        icmpv6::NdiscRepr::NeighborSolicit { lladdr, .. } => {
            if src.is_unspecified() {
                // Duplicate address detection by someone else: not a
                // question we answer (RFC 4862 §5.4.3 is for the owner).
                return Ok(Uplink::Neighbor);
            }
            if let (Some(mac), true) = (lladdr, remote(src)) {
                neighbors.set(IpAddr::V6(src), mac);
            }
            if crate::responder::neighbor_advert(buf, 14, ours, underlay.mac) {
                return Ok(Uplink::NeighborReply);
            }
            Ok(Uplink::Neighbor)
        }
        icmpv6::NdiscRepr::NeighborAdvert { lladdr, .. } => {
            let mac = lladdr.unwrap_or(MacAddr(f[6..12].try_into().expect("6 bytes")));
            neighbors.set(IpAddr::V6(target), mac);
            Ok(Uplink::Neighbor)
        }
    }
}

/// Writes into `buf` the question for `target`'s MAC from our tunnel
/// address: an ARP request (IPv4) or a neighbour solicitation to its
/// solicited-node multicast address (IPv6, RFC 4861 §7.2.2). False if
/// `target` is not of our address' family.
pub fn neighbor_request<B: PacketBuf>(buf: &mut B, underlay: &Underlay, target: IpAddr) -> bool {
    let mut f = [0u8; 14 + 40 + 32];
    f[6..12].copy_from_slice(&underlay.mac.0);
    match (underlay.ip, target) {
        (IpAddr::V4(ours), IpAddr::V4(target)) => {
            f[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
            f[12..14].copy_from_slice(&u16::from(EtherType::Arp).to_be_bytes());
            f[14..16].copy_from_slice(&1u16.to_be_bytes());
            f[16..18].copy_from_slice(&u16::from(EtherType::Ipv4).to_be_bytes());
            f[18] = 6;
            f[19] = 4;
            f[20..22].copy_from_slice(&1u16.to_be_bytes());
            f[22..28].copy_from_slice(&underlay.mac.0);
            f[28..32].copy_from_slice(&ours.octets());
            f[38..42].copy_from_slice(&target.octets());
            buf.load(&f[..60])
        }
        (IpAddr::V6(ours), IpAddr::V6(target)) => {
            // ff02::1:ff00:0/104 with the target's low 24 bits; Ethernet
            // 33:33 + its low 32 bits (RFC 2464 §7).
            let t = target.octets();
            let group = Ipv6Addr::new(
                0xff02,
                0,
                0,
                0,
                0,
                1,
                0xff00 | u16::from(t[13]),
                u16::from_be_bytes([t[14], t[15]]),
            );
            let g = group.octets();
            f[0..6].copy_from_slice(&[0x33, 0x33, g[12], g[13], g[14], g[15]]);
            f[12..14].copy_from_slice(&u16::from(EtherType::Ipv6).to_be_bytes());
            f[14] = 0x60;
            f[18..20].copy_from_slice(&32u16.to_be_bytes());
            f[20] = IpProtocol::Icmpv6.into();
            f[21] = 255;
            f[22..38].copy_from_slice(&ours.octets());
            f[38..54].copy_from_slice(&g);
            let ns = icmpv6::NdiscRepr::NeighborSolicit {
                target_addr: target,
                lladdr: Some(underlay.mac),
            };
            let mut p = icmpv6::Packet::new_unchecked(&mut f[54..]);
            ns.emit(&mut p);
            p.fill_checksum(&ours, &group);
            buf.load(&f)
        }
        _ => false,
    }
}
