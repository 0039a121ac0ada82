//! OVN's `lr_in_ip_routing`: the route of the highest priority that matches
//! (longest prefix; connected, then static `dst-ip`, then `src-ip` at the
//! same length, see [`crate::routes`]) picks the output router port and
//! the next hop: a static route's `nexthop`, or for a connected network the
//! destination itself. An ECMP group's member is picked by a hash of the
//! flow, so a flow keeps its path (OVN's `select`). No route: dropped,
//! without an ICMP error, as OVN 23.03 does; a `discard` route: dropped.

use std::net::IpAddr;

use crate::drop::DropReason;
use crate::pipeline::{Parsed, Tracer};
use crate::routes::{ecmp_pick, RouteKind, Router, Routers};

/// The output router port and the next hop.
pub fn route<T: Tracer>(
    rs: &Routers,
    router: &Router,
    src: IpAddr,
    dst: IpAddr,
    p: &mut Parsed<'_>,
    t: &mut T,
) -> Result<(usize, IpAddr), DropReason> {
    let table = if dst.is_ipv4() {
        &router.v4
    } else {
        &router.v6
    };
    let Some(r) = table.lookup(src, dst) else {
        trace!(t, "lr_in_ip_routing", "no route to {dst}: dropped");
        return Err(DropReason::NoRoute);
    };
    if r.members.is_empty() {
        trace!(t, "lr_in_ip_routing", "route {} discards", r.prefix);
        return Err(DropReason::RouteDiscard);
    }
    let m = if r.members.len() > 1 {
        let proto = p.ip_proto().into();
        ecmp_pick(&r.members, src, dst, proto)
    } else {
        r.members[0]
    };
    let nexthop = m.gateway.unwrap_or(dst);
    if T::ENABLED {
        let kind = match r.kind {
            RouteKind::Connected => "connected",
            RouteKind::Static(crate::routes::RoutePolicy::DstIp) => "static",
            RouteKind::Static(crate::routes::RoutePolicy::SrcIp) => "static src-ip",
        };
        let ecmp = if r.members.len() > 1 {
            format!(" (ECMP member of {})", r.members.len())
        } else {
            String::new()
        };
        t.record(
            "lr_in_ip_routing",
            format_args!(
                "{kind} route {}{ecmp}: next hop {nexthop} out of \"{}\", ip.ttl--",
                r.prefix, rs.ports[m.port].name
            ),
        );
    }
    Ok((m.port, nexthop))
}
