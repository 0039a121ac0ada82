//! Decapsulation: what arrives on the uplink, checked and classified: a
//! tunnel packet for this chassis (its datapath, ingress and egress), ARP
//! or neighbour discovery for the tunnel endpoint, or the host's own
//! traffic.

use std::net::IpAddr;

use super::encoding::{geneve_egress, geneve_ovn, vxlan_vni_decode};
use super::neighbors::Neighbors;
use super::uplink_nd::{arp, nd};
use super::{Received, OUTER_V4, OUTER_V6};
use crate::drop::DropReason;
use crate::ids::DatapathIdx;
use crate::packet::PacketBuf;
use crate::tables::Underlay;
use crate::wire::read::{be16, ipv4, ipv6};
use crate::wire::{checksum, geneve, vxlan, EtherType, IpProtocol};

/// What arrived on the uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uplink {
    /// A tunnel packet for this chassis.
    Tunnel(Received),
    /// An ARP request or neighbour solicitation for our tunnel address,
    /// rewritten in place into the reply (send it back out of the uplink);
    /// the requester was learned.
    NeighborReply,
    /// ARP or neighbour discovery we learned from or ignore.
    Neighbor,
    /// Not for our tunnel endpoint: the host's own traffic on a shared
    /// interface (AF_PACKET sees a copy; the kernel handles it), not a drop.
    NotOurs,
}

/// Classifies a frame received on the uplink: decapsulation (checked), or
/// ARP / neighbour discovery (learning remote endpoints' MACs, answering
/// for our address). `datapath_of` maps a datapath tunnel key to its index.
pub fn receive<B: PacketBuf>(
    buf: &mut B,
    underlay: &Underlay,
    neighbors: &Neighbors,
    datapath_of: impl Fn(u32) -> Option<DatapathIdx>,
) -> Result<Uplink, DropReason> {
    let f = buf.data();
    if f.len() < 14 {
        return Err(DropReason::TunnelMalformed);
    }
    // The UDP header's offset and the end of the IP packet.
    let (udp, end, over_ipv6) = match (EtherType::from(be16(f, 12)), underlay.ip) {
        (EtherType::Arp, IpAddr::V4(ours)) => return arp(buf, underlay, ours, neighbors),
        (EtherType::Ipv4, IpAddr::V4(ours)) => {
            if f.len() < OUTER_V4 {
                return Err(DropReason::TunnelMalformed);
            }
            let ip = &f[14..];
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 || f.len() < 14 + ihl + 8 {
                return Err(DropReason::TunnelMalformed);
            }
            if ipv4(ip, 16) != ours || IpProtocol::from(ip[9]) != IpProtocol::Udp {
                return Ok(Uplink::NotOurs);
            }
            // Fragments of tunnel packets are not reassembled (DF is set
            // on ours).
            if be16(ip, 6) & 0x3fff != 0 {
                return Err(DropReason::TunnelMalformed);
            }
            let ip_len = usize::from(be16(ip, 2));
            if ip_len < ihl + 8 || 14 + ip_len > f.len() {
                return Err(DropReason::TunnelMalformed);
            }
            (14 + ihl, 14 + ip_len, false)
        }
        (EtherType::Ipv6, IpAddr::V6(ours)) => {
            if f.len() < 14 + 40 || f[14] >> 4 != 6 {
                return Err(DropReason::TunnelMalformed);
            }
            let end = 14 + 40 + usize::from(be16(f, 18));
            if end > f.len() {
                return Err(DropReason::TunnelMalformed);
            }
            // (Extension headers other than a fragment header are not
            // ours: we never send them.)
            match IpProtocol::from(f[20]) {
                IpProtocol::Icmpv6 => return nd(buf, underlay, ours, neighbors, end),
                _ if ipv6(f, 38) != ours => return Ok(Uplink::NotOurs),
                IpProtocol::Udp if end >= OUTER_V6 => {}
                IpProtocol::Udp | IpProtocol::Ipv6Frag => return Err(DropReason::TunnelMalformed),
                _ => return Ok(Uplink::NotOurs),
            }
            (54, end, true)
        }
        _ => return Ok(Uplink::NotOurs),
    };
    let udp_len = usize::from(be16(f, udp + 4));
    if udp_len < 8 || udp + udp_len > end {
        return Err(DropReason::TunnelMalformed);
    }
    if over_ipv6 && be16(f, udp + 6) != 0 {
        // RFC 8200 §8.1: over IPv6 the UDP checksum is what protects the
        // addresses. (A zero one is accepted, as RFC 6935 lets tunnels.)
        let pseudo =
            checksum::pseudo_header_v6(&ipv6(f, 22), &ipv6(f, 38), IpProtocol::Udp, udp_len as u32);
        if checksum::combine(&[pseudo, checksum::data(&f[udp..udp + udp_len])]) != 0xffff {
            return Err(DropReason::TunnelChecksum);
        }
    }
    let payload = &f[udp + 8..udp + udp_len];
    let (dp_key, ingress_key, egress, tun_len) = match be16(f, udp + 2) {
        geneve::UDP_PORT => {
            let (vni, md, len) = geneve_ovn(payload)?;
            (vni, md.ingress_port, geneve_egress(md.egress_port), len)
        }
        vxlan::UDP_PORT => {
            let p = vxlan::Packet::new_checked(payload).map_err(|_| DropReason::TunnelMalformed)?;
            if !p.vni_valid() {
                return Err(DropReason::TunnelMalformed);
            }
            let (datapath_key, egress) = vxlan_vni_decode(p.vni());
            (datapath_key, 0, egress, vxlan::HEADER_LEN)
        }
        _ => return Ok(Uplink::NotOurs),
    };
    let datapath = datapath_of(dp_key).ok_or(DropReason::TunnelUnknownDatapath)?;
    Ok(Uplink::Tunnel(Received {
        datapath,
        ingress_key,
        egress,
        outer_len: udp + 8 + tun_len,
    }))
}
