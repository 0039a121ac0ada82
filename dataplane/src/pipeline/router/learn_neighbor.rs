//! OVN's `lr_in_lookup_neighbor` and `lr_in_learn_neighbor` (ovn-northd(8),
//! "Logical Router Ingress Table 1: Neighbor lookup" and "Table 2: Neighbor
//! learning"; northd.c `build_neigh_learning_flows_for_lrouter` and
//! `_for_lrouter_port`), with the router option
//! `always_learn_from_arp_request` at its default, true:
//!
//! - an ARP reply: (`arp.spa`, `arp.sha`), `put_arp`;
//! - an ARP request whose `arp.spa` is in one of the port's networks:
//!   (`arp.spa`, `arp.sha`) (other requests are not learnt from);
//! - a neighbour advertisement: (`nd.target`, `nd.tll`), or `eth.src` when
//!   it has no target link-layer option, `put_nd`;
//! - a neighbour solicitation: (`ip6.src`, `nd.sll`), unless `ip6.src` is
//!   `::` (duplicate address detection) or it has no source link-layer
//!   option;
//!
//! unless the router already holds that binding (`lookup_arp`,
//! `lookup_nd`). With the option false, a request or solicitation teaches
//! only an IP the router has a binding for on that port already
//! (`lookup_arp_ip`, `lookup_nd_ip`: a moved MAC), or, for an ARP request,
//! one for the port's own address (priority 110); replies and
//! advertisements teach as before. ND messages count only with hop limit 255, as OVN's
//! `nd_ns`/`nd_na` predicates and RFC 4861 §7.1.1/§7.1.2 ask. A binding is
//! queued for the chassis controller ([`crate::neighbor_log`]), which puts
//! it into this node's tables at once and into SB `MAC_Binding`; the ARP or
//! ND message itself goes no further (OVN's router drops it after
//! learning). Requests for the router's own addresses are answered by the
//! switch's responder ([`crate::pipeline::arp_nd_responder`]), which hands
//! them here first ([`from_request`]). What the switch floods reaches its
//! router ports too, as OVN's `MC_FLOOD` group holds them and
//! `lr_in_admission` admits `eth.mcast` ([`from_flood`]): a gratuitous ARP
//! (request or reply; a request's `arp.spa` must be in the port's
//! networks, as for any request), an unsolicited neighbour advertisement
//! to ff02::1, or a solicitation for someone else teaches the routers of
//! that switch, and the flood goes on. (OVN does not flood a router's own
//! requests back to router ports, `MC_FLOOD_L2`; ours are written straight
//! to the switch's ports and never pass here.)

use std::net::IpAddr;

use crate::ids::{DatapathIdx, LportIdx};
use crate::neighbor_log::Learnt;
use crate::pipeline::{Decision, Fields, Parsed, Tracer, Verdict};
use crate::tables::Tables;
use crate::wire::icmpv6::{self, NdiscRepr};
use crate::wire::{arp, EtherType, IpProtocol, MacAddr};

/// ICMPv6 types of a neighbour solicitation and advertisement (RFC 4861
/// §4.3, §4.4).
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;

/// Learns `ip` at `mac` behind router port `rport` unless the router has
/// that binding already.
fn put<T: Tracer>(tables: &Tables, rport: usize, ip: IpAddr, mac: MacAddr, how: &str, t: &mut T) {
    let rs = &tables.routers;
    let rp = &rs.ports[rport];
    let router = &rs.routers[rp.router];
    if router.neighbors.get(&(rport, ip)) == Some(&mac) {
        trace!(t, "lr_in_learn_neighbor", "{ip} is at {mac}: known already");
        return;
    }
    trace!(
        t,
        "lr_in_learn_neighbor",
        "{how}: learns {ip} at {mac} on \"{}\" (into this node's tables and SB MAC_Binding)",
        rp.name
    );
    if !T::ENABLED {
        rs.log.learn(Learnt {
            router: router.tunnel_key,
            port: rp.name.clone(),
            ip,
            mac,
        });
    }
}

/// Whether a request (or solicitation) from `ip` teaches the router behind
/// `rport`: always, unless the router has `always_learn_from_arp_request`
/// false; then only if `ip` is bound there already or (ARP only)
/// `to_router`, the request asks for the port's own address.
fn request_teaches(tables: &Tables, rport: usize, ip: IpAddr, to_router: bool) -> bool {
    let rs = &tables.routers;
    let router = &rs.routers[rs.ports[rport].router];
    !router.learn_known_only || to_router || router.neighbors.contains_key(&(rport, ip))
}

/// Whether `ip` is in one of router port `rport`'s IPv4 networks.
fn in_networks(tables: &Tables, rport: usize, ip: std::net::Ipv4Addr) -> bool {
    tables.routers.ports[rport]
        .ipv4
        .iter()
        .any(|c| c.contains(ip))
}

/// ARP and neighbour discovery that the L2 lookup sent to router port
/// `inport`: learnt from, then consumed. None for any other packet.
pub fn learn<T: Tracer>(
    tables: &Tables,
    inport: usize,
    p: &mut Parsed<'_>,
    t: &mut T,
) -> Option<Decision> {
    if let Some(a) = p.arp() {
        // Learning is per packet.
        p.read(Fields::ANSWER);
        let Ok(a) = arp::Repr::parse(&arp::Packet::new_unchecked(a)) else {
            trace!(t, "lr_in_lookup_neighbor", "not an Ethernet/IPv4 ARP");
            return Some(Decision::Verdict(Verdict::Consumed));
        };
        let spa = a.source_protocol_addr;
        match a.operation {
            arp::Operation::Reply => put(
                tables,
                inport,
                spa.into(),
                a.source_hardware_addr,
                "ARP reply",
                t,
            ),
            arp::Operation::Request
                if in_networks(tables, inport, spa)
                    && request_teaches(
                        tables,
                        inport,
                        spa.into(),
                        tables.routers.ports[inport]
                            .ipv4
                            .iter()
                            .any(|c| c.addr == a.target_protocol_addr),
                    ) =>
            {
                put(
                    tables,
                    inport,
                    spa.into(),
                    a.source_hardware_addr,
                    "ARP request",
                    t,
                )
            }
            _ => trace!(
                t,
                "lr_in_lookup_neighbor",
                "ARP from {spa}: nothing to learn"
            ),
        }
        return Some(Decision::Verdict(Verdict::Consumed));
    }
    if p.ip_proto() != IpProtocol::Icmpv6 {
        return None;
    }
    let (kind @ (ND_NS | ND_NA), msg) = p.icmpv6()? else {
        return None;
    };
    p.read(Fields::ANSWER);
    let (frame, lay) = p.stateful();
    let nd = NdiscRepr::parse(&icmpv6::Packet::new_unchecked(msg));
    let (Ok(nd), 255) = (nd, lay.ip_ttl(frame)) else {
        trace!(
            t,
            "lr_in_lookup_neighbor",
            "ND message {kind} not valid (RFC 4861 §7.1): dropped"
        );
        return Some(Decision::drop(crate::drop::DropReason::RouterAdmission));
    };
    match nd {
        NdiscRepr::NeighborAdvert {
            target_addr,
            lladdr,
            ..
        } => {
            let mac = lladdr.unwrap_or_else(|| p.eth_src());
            put(
                tables,
                inport,
                target_addr.into(),
                mac,
                "neighbour advertisement",
                t,
            );
        }
        NdiscRepr::NeighborSolicit { lladdr, .. } => {
            let src = p.ip6_src();
            match lladdr {
                Some(mac)
                    if !src.is_unspecified()
                        && request_teaches(tables, inport, src.into(), false) =>
                {
                    put(tables, inport, src.into(), mac, "neighbour solicitation", t)
                }
                _ => trace!(
                    t,
                    "lr_in_lookup_neighbor",
                    "solicitation without a source to learn (or of an IP not bound, with always_learn_from_arp_request=false)"
                ),
            }
        }
    }
    Some(Decision::Verdict(Verdict::Consumed))
}

/// A broadcast or multicast that switch `dp`'s L2 lookup floods: each
/// router port on the switch gets its copy, and its router learns from
/// ARP and neighbour discovery in it as [`learn`] does (the copy then goes
/// no further, as OVN's router drops it). Costs nothing on a chassis
/// without routers, and reads only the EtherType of what is not ARP or ND.
pub fn from_flood<T: Tracer>(tables: &Tables, dp: DatapathIdx, p: &mut Parsed<'_>, t: &mut T) {
    let rs = &tables.routers;
    if rs.ports.is_empty() {
        return;
    }
    let nd = match p.eth_type() {
        EtherType::Arp => false,
        EtherType::Ipv6 if p.ip_proto() == IpProtocol::Icmpv6 => true,
        _ => return,
    };
    if nd && !matches!(p.icmpv6(), Some((ND_NS | ND_NA, _))) {
        return;
    }
    for rport in (0..rs.ports.len()).filter(|&i| rs.ports[i].switch == dp) {
        trace!(
            t,
            "lr_in_admission",
            "flooded copy to router port \"{}\" (eth.mcast)",
            rs.ports[rport].name
        );
        let _ = learn(tables, rport, p, t);
    }
}

/// A request the switch's responder answers for router port address
/// `tpa`, owned by switch port `owner` (type "router"): the router learns
/// the requester as its own `lr_in_learn_neighbor` would ((`arp.spa`,
/// `arp.sha`) from its networks; (`ip6.src`, `nd.sll`)).
pub fn from_request<T: Tracer>(
    tables: &Tables,
    owner: LportIdx,
    sender: IpAddr,
    mac: Option<MacAddr>,
    p: &mut Parsed<'_>,
    t: &mut T,
) {
    let Some(&rport) = tables.routers.by_peer.get(&owner) else {
        return;
    };
    p.read(Fields::ANSWER);
    // The request asks for the router port's own address: for ARP, OVN's
    // priority-110 lookup learns it whatever always_learn_from_arp_request
    // says; for a solicitation, no such flow.
    match (sender, mac) {
        (IpAddr::V4(spa), Some(mac)) if in_networks(tables, rport, spa) => {
            put(tables, rport, sender, mac, "ARP request", t)
        }
        (IpAddr::V6(src), Some(mac))
            if !src.is_unspecified() && request_teaches(tables, rport, sender, false) =>
        {
            put(tables, rport, sender, mac, "neighbour solicitation", t)
        }
        _ => {}
    }
}
