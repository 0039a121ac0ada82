//! OVN's `lr_in_arp_resolve`, then the destination switch: the next hop's
//! MAC from the addresses of a port on the output router port's switch
//! (northd's static entries for every address of the switch's ports) or
//! from a MAC_Binding; then that switch's L2 lookup on the new eth.dst,
//! its egress port security (`ls_out_check_port_sec`) and output: to a
//! local port, or tunnelled to the chassis of the destination port in the
//! destination switch's datapath (its port of type "router" as ingress),
//! which delivers without routing again, as in OVN; on a switch with a
//! localnet port here, out of that port onto the physical network, with
//! this chassis' MAC as the source ([`crate::pipeline::chassis_mac`]). A next
//! hop with neither is asked for ([`super::arp_request`]).
//!
//! A local destination port's to-lport ACLs run here, as the destination
//! switch's egress pipeline runs them in OVN (a remote one's run on its
//! chassis, which delivers what the tunnel brings): a security group
//! applies to routed traffic as to switched traffic. They see the packet
//! before the rewrite (the sender's MACs and TTL; the addresses and ports
//! an ACL matches on are the same).

use std::net::IpAddr;

use crate::drop::DropReason;
use crate::pipeline::{acl, Decision, PacketMeta, Parsed, Step, Tracer, Verdict};
use crate::tables::{Lport, Tables};
use crate::wire::MacAddr;

/// Resolves `nexthop` behind router port `out` and delivers to the port
/// of the destination switch that owns its MAC.
pub fn resolve<T: Tracer>(
    tables: &Tables,
    out: usize,
    nexthop: IpAddr,
    dst: IpAddr,
    p: &mut Parsed<'_>,
    meta: &mut PacketMeta,
    t: &mut T,
) -> Decision {
    let rs = &tables.routers;
    let rp = &rs.ports[out];
    let owner = match nexthop {
        IpAddr::V4(a) => tables.arp.get(&(rp.switch, a)),
        IpAddr::V6(a) => tables.nd.get(&(rp.switch, a)),
    };
    let mac = owner.map(|o| o.mac).or_else(|| {
        rs.routers[rp.router]
            .neighbors
            .get(&(out, nexthop))
            .copied()
    });
    let Some(mac) = mac else {
        return super::arp_request::request(tables, out, nexthop, p, t);
    };
    let Some(hop) = rs.hop(out, mac) else {
        trace!(
            t,
            "lr_in_arp_resolve",
            "next hop {nexthop} is at {mac}, which no port of the switch has"
        );
        return Decision::drop(DropReason::NextHopUnresolved);
    };
    let lport = rs.hops[hop.0 as usize].lport;
    let egress = tables.lport(lport);
    let sw = tables.datapath(rp.switch);
    trace!(
        t,
        "lr_in_arp_resolve",
        "next hop {nexthop} is at {mac}: eth.src = {}, eth.dst = {mac}; into logical switch \"{}\" (datapath {}) from \"{}\": outport = \"{}\"",
        rp.mac,
        sw.name,
        sw.tunnel_key,
        tables.lport(rp.peer).name,
        egress.name
    );
    if !egress_allowed(egress, mac, dst) {
        trace!(
            t,
            "egress_port_security",
            "destination not allowed by \"{}\"'s port security",
            egress.name
        );
        return Decision::drop(DropReason::PortSecurityEgress);
    }
    meta.logical_outport = Some(lport);
    match (egress.local_port, egress.chassis) {
        (Some(port), _) => {
            // From the destination switch's port of type "router", with
            // the MACs this router gave the packet.
            let macs = Some((rp.mac, mac));
            if let Step::Done(d) = acl::to_lport(tables, Some(rp.peer), lport, egress, macs, p, t) {
                return d;
            }
            trace!(t, "output", "to local port {port}");
            Decision::Verdict(Verdict::Routed { hop, port })
        }
        (None, Some(chassis)) if sw.localnet.is_none() => {
            if let Some(rc) = tables.underlay.as_ref().map(|u| &u.chassis[chassis.get()]) {
                trace!(
                    t,
                    "output",
                    "\"{}\" is on chassis {}: {:?} tunnel to {} in datapath {}, ingress key {}, egress key {}",
                    egress.name,
                    rc.name,
                    rc.encap,
                    rc.ip,
                    sw.tunnel_key,
                    tables.lport(rp.peer).tunnel_key,
                    egress.tunnel_key
                );
            }
            Decision::Verdict(Verdict::RoutedTunnel { hop, chassis })
        }
        (None, Some(_)) => {
            let ln = tables.lport(sw.localnet.expect("matched above"));
            let port = ln.local_port.expect("a bound localnet port");
            trace!(
                t,
                "output",
                "\"{}\" is on another chassis: out of localnet port \"{}\" (local port {port}), eth.src = {}",
                egress.name,
                ln.name,
                rs.hops[hop.0 as usize].src
            );
            Decision::Verdict(Verdict::Routed { hop, port })
        }
        (None, None) => {
            trace!(
                t,
                "output",
                "\"{}\" is not bound on any chassis",
                egress.name
            );
            Decision::drop(DropReason::NoLocalPort)
        }
    }
}

/// The destination switch's egress port security for the routed frame:
/// eth.dst `mac` (a unicast address of the port) and IP destination `dst`.
fn egress_allowed(out: &Lport, mac: MacAddr, dst: IpAddr) -> bool {
    let ps = &out.port_security;
    if !ps.enabled {
        return true;
    }
    let Some(e) = ps.entry(mac) else {
        return false;
    };
    if e.ipv4.is_empty() && e.ipv6.is_empty() {
        return true;
    }
    match dst {
        IpAddr::V4(d) => e
            .ipv4
            .iter()
            .any(|c| c.allows(d) || c.broadcast() == Some(d)),
        IpAddr::V6(d) => e.ipv6.iter().any(|c| c.allows(d)),
    }
}
