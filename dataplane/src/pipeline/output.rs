//! Output: where the logical egress port is (OVN's physical output and
//! `ls_out` to the port): a local port; on another chassis, through the
//! switch's localnet port when the switch has one here (OVN does not tunnel
//! such switches), else a tunnel to that chassis ([`Verdict::Tunnel`],
//! whose per-packet step is [`super::tunnel_output`]); or nowhere. Also the
//! targets of a flood: local ports (each through its to-lport ACLs), and
//! one copy per remote chassis (whose ACLs run there).

use super::{Decision, Fields, PacketMeta, Tracer, Verdict};
use crate::drop::DropReason;
use crate::ids::PortId;
use crate::ids::{ChassisIdx, DatapathIdx, LportIdx};
use crate::tables::{Lport, PortType, Tables};
use crate::wire::layout;

/// Output depends on the egress port alone.
pub const READS: Fields = Fields::NONE;

/// Where a packet from `lport` to logical port `out` leaves this chassis.
#[inline]
pub fn output<T: Tracer>(
    tables: &Tables,
    lport: &Lport,
    out: &Lport,
    meta: &PacketMeta,
    t: &mut T,
) -> Decision {
    let dp = tables.datapath(lport.datapath);
    let v = match (out.local_port, out.chassis) {
        (Some(p), _) => {
            trace!(t, "output", "to local port {p}");
            Verdict::Output(p)
        }
        // The sender's side of the physical network reaches the other
        // chassis itself.
        (None, Some(_)) if lport.port_type == PortType::Localnet => {
            trace!(
                t,
                "output",
                "\"{}\" is on another chassis, which has the physical network itself",
                out.name
            );
            return Decision::drop(DropReason::NoLocalPort);
        }
        (None, Some(_)) if dp.localnet.is_some() => {
            let ln = tables.lport(dp.localnet.expect("checked"));
            let p = ln.local_port.expect("a bound localnet port");
            trace!(
                t,
                "output",
                "\"{}\" is on another chassis: out of localnet port \"{}\" (local port {p})",
                out.name,
                ln.name
            );
            Verdict::Output(p)
        }
        (None, Some(c)) => {
            if T::ENABLED {
                if let Some(rc) = tables.underlay.as_ref().map(|u| &u.chassis[c.get()]) {
                    trace!(
                        t,
                        "output",
                        "\"{}\" is on chassis {}: {:?} tunnel to {}, egress key {}",
                        out.name,
                        rc.name,
                        rc.encap,
                        rc.ip,
                        out.tunnel_key
                    );
                }
            }
            Verdict::Tunnel {
                chassis: c,
                lport: meta.logical_outport.expect("set by l2_lookup"),
            }
        }
        (None, None) => {
            trace!(t, "output", "\"{}\" is not bound on this chassis", out.name);
            return Decision::drop(DropReason::NoLocalPort);
        }
    };
    Decision::Verdict(v)
}

/// The local ports a flooded packet is copied to: every port of the
/// datapath (or only those with "unknown" addresses) except the ingress
/// one (`None` for what a tunnel delivered), bound on this chassis and
/// allowed by its egress port security and its to-lport ACLs.
pub fn flood_targets(
    tables: &Tables,
    datapath: DatapathIdx,
    unknown_only: bool,
    inport: Option<LportIdx>,
    frame: &[u8],
    out: &mut Vec<PortId>,
) {
    out.clear();
    let Ok(lay) = layout::parse(frame) else {
        return;
    };
    let dp = tables.datapath(datapath);
    let members = if unknown_only { &dp.unknown } else { &dp.ports };
    for &idx in members {
        if Some(idx) == inport {
            continue;
        }
        let lp = tables.lport(idx);
        // From a tunnel: the sender's chassis had the physical network
        // itself, so never out of our localnet port (no duplicates there).
        if inport.is_none() && lp.port_type == PortType::Localnet {
            continue;
        }
        if let Some(p) = lp.local_port {
            if super::egress_allowed(lp, frame, &lay)
                && to_lport_allows(tables, inport, idx, lp, frame, lay)
            {
                out.push(p);
            }
        }
    }
}

/// Whether the to-lport ACLs of flood target `out` let its copy through:
/// OVN runs the egress pipeline, `ls_out_acl` included, for each port a
/// multicast group copies to. A copy a `reject` ACL matches is dropped
/// without an answer (one flood would otherwise draw one per port).
fn to_lport_allows(
    tables: &Tables,
    inport: Option<LportIdx>,
    outport: LportIdx,
    out: &Lport,
    frame: &[u8],
    lay: layout::Layout,
) -> bool {
    if tables.acls.datapath(out.datapath).is_none() {
        return true;
    }
    let mut p = super::Parsed::new(frame, lay);
    matches!(
        super::acl::to_lport(
            tables,
            inport,
            outport,
            out,
            None,
            &mut p,
            &mut super::NoTrace
        ),
        super::Step::Next
    )
}

/// The remote chassis a flooded packet is copied to (one copy each, with
/// OVN's multicast group as egress): those hosting ports of the datapath,
/// or only "unknown" ones for unknown unicast.
pub fn flood_chassis(tables: &Tables, datapath: DatapathIdx, unknown_only: bool) -> &[ChassisIdx] {
    let dp = tables.datapath(datapath);
    if dp.localnet.is_some() {
        // The other chassis get it from the physical network.
        &[]
    } else if unknown_only {
        &dp.remote_unknown
    } else {
        &dp.remote_chassis
    }
}
