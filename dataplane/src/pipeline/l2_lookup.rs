//! OVN's `ls_in_l2_lkup`: the destination MAC picks the logical egress
//! port. Broadcast and multicast flood the switch; an unknown unicast MAC
//! goes to the ports with "unknown" addresses, or is dropped when there are
//! none; a packet whose egress would be its ingress port is dropped. The
//! switch's router ports get their copy of a flood first (they learn from
//! ARP and ND in it: [`super::router::learn_neighbor::from_flood`]).

use super::{Decision, Fields, PacketMeta, Parsed, Tracer, Verdict};
use crate::drop::DropReason;
use crate::tables::{mac_key, Lport, Tables};

/// The destination MAC decides.
pub const READS: Fields = Fields::ETH_DST;

/// The egress logical port (also recorded in `meta`), or the decision:
/// flood, or drop.
#[inline]
pub fn lookup<'t, T: Tracer>(
    tables: &'t Tables,
    lport: &Lport,
    p: &mut Parsed<'_>,
    meta: &mut PacketMeta,
    t: &mut T,
) -> Result<&'t Lport, Decision> {
    let dp = lport.datapath;
    let dst = p.eth_dst();
    if dst.is_multicast() {
        trace!(
            t,
            "l2_lookup",
            "eth.dst {dst} is broadcast/multicast: flood"
        );
        super::router::learn_neighbor::from_flood(tables, dp, p, t);
        return Err(Decision::Verdict(Verdict::Flood {
            datapath: dp,
            unknown_only: false,
        }));
    }
    let Some(&out_idx) = tables.macs.get(&mac_key(dp, dst)) else {
        if tables.datapath(dp).unknown.is_empty() {
            trace!(
                t,
                "l2_lookup",
                "eth.dst {dst} unknown and no port has \"unknown\" addresses"
            );
            return Err(Decision::drop(DropReason::UnknownUnicast));
        }
        trace!(
            t,
            "l2_lookup",
            "eth.dst {dst} unknown: to the ports with \"unknown\" addresses"
        );
        return Err(Decision::Verdict(Verdict::Flood {
            datapath: dp,
            unknown_only: true,
        }));
    };
    let out = tables.lport(out_idx);
    meta.logical_outport = Some(out_idx);
    trace!(
        t,
        "l2_lookup",
        "eth.dst {dst} is \"{}\": outport = \"{}\"",
        out.name,
        out.name
    );
    if Some(out_idx) == meta.logical_inport {
        trace!(t, "egress", "outport equals inport");
        return Err(Decision::drop(DropReason::Hairpin));
    }
    Ok(out)
}
