//! OVN's `lr_in_arp_request`: a next hop whose MAC nothing gives (no port
//! address on the destination switch, no MAC_Binding) is asked for, as
//! northd's `arp { … }` and `nd_ns { … }` actions do it (ovn-northd(8),
//! "Logical Router Ingress Table: ARP Request"; pinctrl.c
//! `pinctrl_handle_arp`, `pinctrl_handle_nd_ns`):
//!
//! - IPv4: an ARP request (RFC 826) from the output router port's MAC and
//!   its address in the next hop's network (OVN's `REG_SRC_IPV4`), to
//!   ff:ff:ff:ff:ff:ff, for the next hop;
//! - IPv6: a neighbour solicitation (RFC 4861 §7.2.2) from the port's
//!   link-local address (EUI-64 of its MAC, as pinctrl's
//!   `in6_generate_lla`), to the next hop's solicited-node multicast
//!   address (RFC 4291 §2.7.1) and its MAC (RFC 2464 §7), hop limit 255
//!   (§7.1.1), with the source link-layer address option (§4.3).
//!
//! The request is broadcast in the destination switch, from its port of
//! type "router" (local ports and, by tunnel, the switch's other chassis).
//!
//! The packet that needed the next hop is dropped, counted as
//! `next_hop_unresolved`: the request is written over it (so asking needs
//! no buffer), where OVN 23.03's pinctrl buffers up to 4 packets per
//! destination for 10 s and sends them once the binding arrives. Why not
//! buffer: holding packet buffers in a worker across rounds takes them from
//! the pool that receives (a DPDK mempool sized for bursts), and the
//! senders that matter retransmit (TCP's SYN after 1 s, ping every second);
//! the binding arrives within a round trip, so only the first packets of a
//! flow are lost. At most one request per next hop goes out a second
//! ([`crate::neighbor_log`]); the packets in between are dropped with the
//! same reason. A trace says what would be sent and spends no rate limit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::pipeline::{link_local, Decision, Fields, Parsed, Tracer, Verdict};
use crate::routes::Rport;
use crate::tables::Tables;
use crate::wire::icmpv6::{self, NdiscRepr};
use crate::wire::{arp, ethernet, ipv6, EtherType, IpProtocol, MacAddr};

/// A request the router sends out of router port `rport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub rport: u32,
    pub mac: MacAddr,
    /// An ARP request's source address: the port's in the next hop's
    /// network (a solicitation's is the link-local address of `mac`).
    pub from: Ipv4Addr,
    pub target: IpAddr,
}

/// The source address of a request for `to` out of `p`: for ARP the
/// port's address in the network of `to`, else its first IPv4 address
/// (OVN's `REG_SRC_IPV4` for the route's output port); for a solicitation
/// the port's link-local address (the ARP source is then unused).
fn source(p: &Rport, to: IpAddr) -> Option<(IpAddr, Ipv4Addr)> {
    match (to, super::ip_input::source_for(p, to)) {
        (IpAddr::V4(_), Some(IpAddr::V4(a))) => Some((a.into(), a)),
        (IpAddr::V4(_), _) => None,
        (IpAddr::V6(_), _) => Some((link_local(p.mac).into(), Ipv4Addr::UNSPECIFIED)),
    }
}

/// The ARP request or neighbour solicitation for `nexthop` out of router
/// port `out`, if the rate limit admits one now; else the packet is only
/// dropped.
pub fn request<T: Tracer>(
    tables: &Tables,
    out: usize,
    nexthop: IpAddr,
    p: &mut Parsed<'_>,
    t: &mut T,
) -> Decision {
    // Per packet: the rate limit decides, not the flow cache.
    p.read(Fields::ANSWER);
    let rs = &tables.routers;
    let rp = &rs.ports[out];
    let Some((from, spa)) = source(rp, nexthop) else {
        trace!(
            t,
            "lr_in_arp_request",
            "next hop {nexthop}: MAC unknown, and \"{}\" has no IPv4 address to ask from",
            rp.name
        );
        return Decision::drop(DropReason::NextHopUnresolved);
    };
    let what = if nexthop.is_ipv4() {
        "ARP"
    } else {
        "a neighbour solicitation"
    };
    trace!(
        t,
        "lr_in_arp_request",
        "next hop {nexthop}: MAC unknown: would send {what} for {nexthop} from {from} ({}) into logical switch \"{}\" (at most one a second per next hop); this packet is dropped (next_hop_unresolved), not queued",
        rp.mac,
        tables.datapath(rp.switch).name
    );
    let router = rs.routers[rp.router].tunnel_key;
    if !T::ENABLED
        && !rs
            .log
            .admit(router, nexthop, crate::conntrack::coarse_secs())
    {
        return Decision::drop(DropReason::NextHopUnresolved);
    }
    Decision::Solicit(Request {
        rport: out as u32,
        mac: rp.mac,
        from: spa,
        target: nexthop,
    })
}

/// RFC 4291 §2.7.1: the solicited-node multicast address of `a`,
/// ff02::1:ffXX:XXXX.
fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

impl Request {
    /// Writes the request over the frame in `buf`.
    pub fn write<B: PacketBuf>(self, buf: &mut B) -> Verdict {
        let solicit = Verdict::Solicit { rport: self.rport };
        match self.target {
            IpAddr::V4(tpa) => {
                let len = ethernet::HEADER_LEN + arp::PACKET_LEN;
                if !buf.set_len(len) {
                    return Verdict::Drop(DropReason::NoBuffer);
                }
                let f = buf.data_mut();
                let eth = ethernet::Repr {
                    src_addr: self.mac,
                    dst_addr: MacAddr::BROADCAST,
                    ethertype: EtherType::Arp,
                };
                eth.emit(&mut ethernet::Frame::new_unchecked(&mut *f));
                // RFC 826 "Packet Generation": ar$tha is not known yet.
                let req = arp::Repr {
                    operation: arp::Operation::Request,
                    source_hardware_addr: self.mac,
                    source_protocol_addr: self.from,
                    target_hardware_addr: MacAddr([0; 6]),
                    target_protocol_addr: tpa,
                };
                req.emit(&mut arp::Packet::new_unchecked(
                    &mut f[ethernet::HEADER_LEN..],
                ));
                solicit
            }
            IpAddr::V6(target) => {
                let src = link_local(self.mac);
                let ns = NdiscRepr::NeighborSolicit {
                    target_addr: target,
                    lladdr: Some(self.mac),
                };
                let l4 = ethernet::HEADER_LEN + ipv6::HEADER_LEN;
                if !buf.set_len(l4 + ns.buffer_len()) {
                    return Verdict::Drop(DropReason::NoBuffer);
                }
                let dst = solicited_node(target);
                let f = buf.data_mut();
                let d = dst.octets();
                let eth = ethernet::Repr {
                    src_addr: self.mac,
                    // RFC 2464 §7: 33:33 and the low 32 bits.
                    dst_addr: MacAddr([0x33, 0x33, d[12], d[13], d[14], d[15]]),
                    ethertype: EtherType::Ipv6,
                };
                eth.emit(&mut ethernet::Frame::new_unchecked(&mut *f));
                let origin = crate::responder::Origin {
                    hop_limit: 255,
                    dscp: 0,
                    dont_frag: false,
                };
                crate::responder::ipv6_header(
                    &mut f[ethernet::HEADER_LEN..],
                    src,
                    dst,
                    IpProtocol::Icmpv6,
                    origin,
                );
                let mut msg = icmpv6::Packet::new_unchecked(&mut f[l4..]);
                ns.emit(&mut msg);
                msg.fill_checksum(&src, &dst);
                solicit
            }
        }
    }
}
