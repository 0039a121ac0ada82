//! A logical router's pipeline (OVN's `lr_in_*` stages), entered from a
//! switch whose L2 lookup picked a port of type "router": the packet
//! crosses the patch to the router port it peers.
//!
//! [`ip_input`] (`lr_in_admission`, `lr_in_ip_input`: martians, the
//! router's own addresses answered with ICMP echo replies, time exceeded
//! when the TTL runs out), [`routing`] (`lr_in_ip_routing`: longest prefix,
//! ECMP), [`arp_resolve`] (`lr_in_arp_resolve`: the next hop's MAC) or
//! [`arp_request`] (`lr_in_arp_request`: ask for it), then the
//! destination switch's egress: its port security and output. ARP and
//! neighbour discovery addressed to the router are learnt from first
//! ([`learn_neighbor`]: `lr_in_lookup_neighbor`, `lr_in_learn_neighbor`).
//! The
//! router decides; what it writes is carried out once the stages are done
//! reading: an answer ([`icmp::Answer`]) over the packet, or for a routed
//! packet the [`Verdict::Routed`](crate::pipeline::Verdict::Routed) rewrite ([`rewrite`]: eth.src, eth.dst,
//! `ip.ttl--`), which the flow cache remembers by its [`HopIdx`]. Routing,
//! as in OVN's distributed routers, happens on the sender's chassis: a
//! destination on another chassis gets the rewritten packet by tunnel
//! ([`super::Verdict::RoutedTunnel`]).

use std::net::IpAddr;

use super::{Decision, Fields, PacketMeta, Parsed, Tracer};
use crate::drop::DropReason;
use crate::routes::HopIdx;
use crate::tables::{Lport, Tables};
use crate::wire::{ethernet, ipv4, ipv6, EtherType};

pub mod arp_request;
pub mod arp_resolve;
pub mod icmp;
pub mod ip_input;
pub mod learn_neighbor;
pub mod routing;

/// What the router's decisions read on ordinary packets: the addresses
/// (routes, ECMP), the protocol (ECMP), whether the TTL runs out, and the
/// destination MAC (admission).
pub const READS: Fields = Fields::ETH_DST
    .with(Fields::ETH_TYPE)
    .with(Fields::IP_SRC)
    .with(Fields::IP_DST)
    .with(Fields::IP_PROTO)
    .with(Fields::TTL_EXPIRING);

/// The packet's source and destination as addresses of either family.
fn addrs(p: &mut Parsed<'_>, v4: bool) -> (IpAddr, IpAddr) {
    if v4 {
        (p.ip4_src().into(), p.ip4_dst().into())
    } else {
        (p.ip6_src().into(), p.ip6_dst().into())
    }
}

/// The router pipeline for a packet that switch port `via` (type
/// "router") hands to its router port.
#[inline(never)]
pub fn route<T: Tracer>(
    tables: &Tables,
    via: &Lport,
    p: &mut Parsed<'_>,
    meta: &mut PacketMeta,
    t: &mut T,
) -> Decision {
    let rs = &tables.routers;
    let Some(&inport) = meta.logical_outport.and_then(|l| rs.by_peer.get(&l)) else {
        trace!(
            t,
            "lr_in_admission",
            "\"{}\" peers no router port here",
            via.name
        );
        return Decision::drop(DropReason::RouterAdmission);
    };
    let rp = &rs.ports[inport];
    let router = &rs.routers[rp.router];
    trace!(
        t,
        "lr_in_admission",
        "inport \"{}\" on logical router \"{}\" (datapath {})",
        rp.name,
        router.name,
        router.tunnel_key
    );
    if p.eth_dst() != rp.mac {
        trace!(t, "lr_in_admission", "eth.dst is not {}", rp.mac);
        return Decision::drop(DropReason::RouterAdmission);
    }
    let v4 = match p.eth_type() {
        EtherType::Ipv4 => true,
        EtherType::Ipv6 => {
            if let Some(d) = learn_neighbor::learn(tables, inport, p, t) {
                return d;
            }
            false
        }
        EtherType::Arp => {
            if let Some(d) = learn_neighbor::learn(tables, inport, p, t) {
                return d;
            }
            return Decision::drop(DropReason::RouterAdmission);
        }
        _ => {
            trace!(t, "lr_in_admission", "not IP: dropped");
            return Decision::drop(DropReason::RouterAdmission);
        }
    };
    let (src, dst) = addrs(p, v4);
    if let Some(d) = ip_input::ip_input(rs, inport, src, dst, p, t) {
        return d;
    }
    match routing::route(rs, router, src, dst, p, t) {
        Ok((out, nexthop)) => arp_resolve::resolve(tables, out, nexthop, dst, p, meta, t),
        Err(r) => Decision::drop(r),
    }
}

/// Carries out a routed verdict's rewrite on the frame: eth.src and eth.dst of
/// hop `hop`, and `ip.ttl--` (RFC 791 §3.2 "Time to Live"; RFC 8200 §3
/// "Hop Limit"), the IPv4 header checksum updated incrementally (RFC 1624
/// eqn. 3). The pipeline let only IPv4 or IPv6 with TTL above 1 through.
/// It runs on every routed packet, cache hit or not: the views are taken
/// over a chunk of fixed length (Ethernet and the smallest IPv4 header,
/// shorter than any IPv6 one), so their accessors need no bounds check of
/// their own.
#[inline]
pub fn rewrite(tables: &Tables, hop: HopIdx, frame: &mut [u8]) {
    let h = tables.routers.hops[hop.0 as usize];
    let Some(head) = frame.first_chunk_mut::<{ ethernet::HEADER_LEN + ipv4::HEADER_LEN }>() else {
        return;
    };
    let mut eth = ethernet::Frame::new_unchecked(&mut head[..]);
    eth.set_dst_addr(h.dst);
    eth.set_src_addr(h.src);
    let ethertype = eth.ethertype();
    let l3 = &mut head[ethernet::HEADER_LEN..];
    match ethertype {
        EtherType::Ipv4 => {
            let mut ip = ipv4::Packet::new_unchecked(l3);
            ip.set_hop_limit(ip.hop_limit() - 1);
            // The 16-bit word holding the TTL (and the protocol) changes:
            // HC' = ~(~HC + ~m + m'), and with m' = m - 0x100, ~m + m' is
            // 0xfeff whatever the protocol; one fold carries it (RFC 1071
            // §2(A)).
            let sum = u32::from(!ip.checksum()) + 0xfeff;
            let folded = (sum & 0xffff) + (sum >> 16);
            ip.set_checksum(!(folded as u16));
        }
        EtherType::Ipv6 => {
            let mut ip = ipv6::Packet::new_unchecked(l3);
            ip.set_hop_limit(ip.hop_limit() - 1);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
