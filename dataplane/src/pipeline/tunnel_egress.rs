//! The egress half of a logical switch for what a tunnel delivers (OVN ran
//! the ingress pipeline on the sending chassis): the egress the tunnel
//! names picks the port, a multicast group floods the local ports, a plain
//! VTEP (no egress named) gets an L2 lookup; then egress port security,
//! the to-lport ACLs (OVN applies them where the egress pipeline runs) and
//! output to the local port. Never back into the overlay.

use super::arp_nd_responder::Answer;
use super::fields::{flow_key, KeyMeta};
use super::{port_security, Decision, Fields, NoTrace, Parsed, Tracer, Verdict};
use crate::cache::FlowCache;
use crate::drop::DropReason;
use crate::ids::LportIdx;
use crate::overlay::{Egress, Received, MC_UNKNOWN};
use crate::tables::{mac_key, Tables};
use crate::wire::layout;

/// The datapath and egress the tunnel names, and the destination MAC for
/// multicast and for a VTEP's lookup.
pub const READS: Fields = Fields::DATAPATH
    .with(Fields::TUNNEL_EGRESS)
    .with(Fields::ETH_DST);

/// What a delivery reads: its flow-cache key.
pub const DELIVERY_KEY: Fields = READS.with(port_security::EGRESS_READS);

/// [`tunnel_delivery`] through a flow cache of its own, keyed by
/// [`DELIVERY_KEY`].
#[inline]
pub fn tunnel_delivery_cached(
    tables: &Tables,
    cache: &mut FlowCache,
    frame: &[u8],
    r: &Received,
) -> Verdict {
    let found = layout::parse(frame).ok().and_then(|lay| {
        let meta = KeyMeta {
            datapath: r.datapath.0,
            tunnel_egress: encode(r.egress),
            ..Default::default()
        };
        flow_key::<{ DELIVERY_KEY.bits() }, _>(frame, &lay, meta, |key, hash| {
            cache.lookup(&key, hash).ok_or((key, hash))
        })
    });
    match found {
        Some(Ok(v)) => v,
        Some(Err((key, hash))) => {
            let (v, reads) = tunnel_delivery(tables, frame, r, &mut NoTrace);
            if DELIVERY_KEY.contains(reads) {
                cache.insert(key, hash, v);
            }
            v
        }
        None => tunnel_delivery(tables, frame, r, &mut NoTrace).0,
    }
}

/// The egress a tunnel names, as key bits: kind in bits 16-17.
fn encode(e: Egress) -> u32 {
    match e {
        Egress::Port(k) => 1 << 16 | u32::from(k),
        Egress::Group(g) => 2 << 16 | u32::from(g),
        Egress::Lookup => 3 << 16,
    }
}

/// Where a frame decapsulated on datapath `r.datapath` goes on this
/// chassis, and what the stages read. Used by the workers and by
/// `switchyard trace --uplink`.
pub fn tunnel_delivery<T: Tracer>(
    tables: &Tables,
    frame: &[u8],
    r: &Received,
    t: &mut T,
) -> (Verdict, Fields) {
    let Ok(lay) = layout::parse(frame) else {
        trace!(t, "decap", "the inner frame is malformed");
        return (Verdict::Drop(DropReason::TunnelMalformed), Fields::NONE);
    };
    trace!(t, "decap", "inner {}", super::describe(frame, &lay));
    let mut p = Parsed::new(frame, lay);
    p.read(Fields::DATAPATH.with(Fields::TUNNEL_EGRESS));
    let d = deliver(tables, &mut p, r, t);
    let v = match d {
        Decision::Verdict(v) => v,
        // A to-lport `reject`: the worker writes the answer over the frame
        // and sends it back through the tunnel to the sender's chassis
        // (the frame here is not the worker's buffer to rewrite).
        Decision::Answer(Answer::Reject) => {
            trace!(t, "acl", "answered back through the tunnel to the sender");
            Verdict::Reply
        }
        Decision::Answer(_) | Decision::Router(_) | Decision::Solicit(_) => {
            unreachable!("tunnel delivery answers only a reject")
        }
    };
    (v, p.reads())
}

fn deliver<T: Tracer>(tables: &Tables, p: &mut Parsed<'_>, r: &Received, t: &mut T) -> Decision {
    let out = match egress(tables, p, r, t) {
        Ok(o) => o,
        Err(d) => return d,
    };
    let lp = tables.lport(out);
    let Some(port) = lp.local_port else {
        trace!(
            t,
            "tunnel_egress",
            "\"{}\" is not bound on this chassis",
            lp.name
        );
        return Decision::drop(DropReason::TunnelUnknownPort);
    };
    stage!(port_security::egress(lp, p, t));
    if tables.acls.datapath(r.datapath).is_some() {
        // to-lport ACLs run here, on the destination chassis. They may
        // read `inport`, which the tunnel carries but no delivery key
        // holds: such verdicts are not cached.
        p.read(Fields::TUNNEL_INGRESS);
        let inport = tables
            .datapath(r.datapath)
            .ports_by_key
            .get(u32::from(r.ingress_key))
            .map(LportIdx);
        stage!(super::acl::to_lport(tables, inport, out, lp, None, p, t));
    }
    trace!(t, "output", "to \"{}\" on local port {port}", lp.name);
    Decision::Verdict(Verdict::Output(port))
}

/// The logical egress port the tunnel names (or a VTEP's L2 lookup finds),
/// or the decision: a local flood, or a drop.
fn egress<T: Tracer>(
    tables: &Tables,
    p: &mut Parsed<'_>,
    r: &Received,
    t: &mut T,
) -> Result<LportIdx, Decision> {
    let dp = r.datapath;
    let flood = |unknown_only| {
        Decision::Verdict(Verdict::Flood {
            datapath: dp,
            unknown_only,
        })
    };
    let out = match r.egress {
        Egress::Port(key) => {
            trace!(t, "tunnel_egress", "egress port key {key}");
            tables
                .datapath(dp)
                .ports_by_key
                .get(u32::from(key))
                .map(LportIdx)
        }
        Egress::Group(g) => {
            trace!(t, "tunnel_egress", "multicast group {g}: every local port");
            return Err(flood(g == MC_UNKNOWN));
        }
        Egress::Lookup => {
            let dst = p.eth_dst();
            if dst.is_multicast() {
                trace!(
                    t,
                    "tunnel_egress",
                    "no egress port (VTEP), eth.dst {dst} is multicast: flood locally"
                );
                return Err(flood(false));
            }
            match tables.macs.get(&mac_key(dp, dst)) {
                Some(&i) => {
                    trace!(
                        t,
                        "tunnel_egress",
                        "no egress port (VTEP): eth.dst {dst} looked up"
                    );
                    Some(i)
                }
                None => {
                    trace!(
                        t,
                        "tunnel_egress",
                        "no egress port (VTEP), eth.dst {dst} unknown: to \"unknown\" ports"
                    );
                    return Err(flood(true));
                }
            }
        }
    };
    out.ok_or_else(|| {
        trace!(t, "tunnel_egress", "no such port on the datapath");
        Decision::drop(DropReason::TunnelUnknownPort)
    })
}
