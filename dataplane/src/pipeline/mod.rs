//! The logical pipeline: what happens to one packet, stage by stage.
//!
//! A stage is one of OVN's logical stages, a module named after it, that
//! reads the parsed packet and the tables and returns [`Step::Next`] or a
//! decision. A datapath kind is an ordered list of stages:
//!
//! - a logical switch, for what a local port sends ([`decide`]):
//!   [`ingress`] (binding; with [`provider_vlan`] first on a VLAN provider
//!   port), [`port_security`] (ingress), [`acl`] (from-lport, with
//!   conntrack), [`arp_nd_responder`], [`l2_lookup`], [`port_security`]
//!   (egress), [`acl`] (to-lport, for a local egress port), [`output`];
//!   when the egress is a port of type "router", the [`router`] pipeline
//!   instead of the last three, into the destination switch's egress;
//! - a logical switch's egress half, for what a tunnel delivers
//!   ([`tunnel_delivery`]): [`tunnel_egress`], [`port_security`] (egress),
//!   local output.
//!
//! Forwarding and `switchyard trace` run the same lists: the workers with
//! [`NoTrace`] (every trace call compiles away) behind a flow cache, trace
//! with a [`TraceLog`]. The cache key of a datapath is the union of the
//! fields its stages declare ([`fields`]); what a stage reads beyond them
//! keeps that packet's verdict out of the cache (a port whose switch has
//! ACLs is keyed with the L4 fields too, [`ACL_KEY`]; a packet of a
//! committed connection is cached with its conntrack checks, which run
//! again on every hit, [`acl::recheck`]). What runs per packet after
//! the cached verdict (the tunnel output step, [`tunnel_output`]: endpoint
//! resolution and the overlay MTU) and what the worker does around it
//! (VLAN tags) are stages too, which trace runs as well, so a trace names
//! every drop the worker counts.

use crate::cache::FlowCache;
use crate::conntrack::Probe;
use crate::drop::DropReason;
use crate::ids::PortId;
use crate::ids::{ChassisIdx, DatapathIdx, LportIdx};
use crate::packet::PacketBuf;
use crate::tables::{PortType, Tables};
use crate::wire::layout;

/// Records one stage's decision when tracing; compiles to nothing for
/// [`NoTrace`].
macro_rules! trace {
    ($t:expr, $stage:expr, $($arg:tt)*) => {
        if T::ENABLED {
            $t.record($stage, format_args!($($arg)*));
        }
    };
}

/// Runs a stage: on to the next one, or return its decision.
macro_rules! stage {
    ($e:expr) => {
        match $e {
            $crate::pipeline::Step::Next => {}
            $crate::pipeline::Step::Done(d) => return d,
        }
    };
}

pub mod acl;
pub mod arp_nd_responder;
pub mod chassis_mac;
pub mod fields;
pub mod ingress;
pub mod l2_lookup;
pub mod output;
pub mod port_security;
pub mod provider_vlan;
pub mod router;
mod trace;
pub mod tunnel_egress;
pub mod tunnel_output;

pub use fields::{Fields, Parsed};
pub use output::{flood_chassis, flood_targets};
pub use port_security::{egress_allowed, link_local};
pub use trace::{describe, trace, trace_uplink, NoTrace, TraceLog, TraceReport, Tracer};
pub use tunnel_egress::{tunnel_delivery, tunnel_delivery_cached};

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit on this local port.
    Output(PortId),
    /// Copy to every port of the datapath (by index) that passes egress
    /// checks, except the ingress logical port. `unknown_only` restricts the
    /// copies to ports with "unknown" addresses (unknown unicast).
    Flood {
        datapath: DatapathIdx,
        unknown_only: bool,
    },
    /// The packet was rewritten into a reply (ARP/ND responder): send it
    /// back out of the ingress port.
    Reply,
    /// Encapsulate to the remote chassis (index into the underlay's) that
    /// hosts logical port `lport`; the tunnel output step
    /// ([`tunnel_output`]) runs per packet.
    Tunnel {
        chassis: ChassisIdx,
        lport: LportIdx,
    },
    /// Routed: rewrite the frame for hop `hop` ([`router::rewrite`]:
    /// MACs, `ip.ttl--`), then transmit on local port `port`.
    Routed {
        hop: crate::routes::HopIdx,
        port: PortId,
    },
    /// Routed to a port on another chassis: rewrite for hop `hop`, then
    /// encapsulate to `chassis` in the destination switch's datapath, from
    /// its port of type "router" to the hop's logical port.
    RoutedTunnel {
        hop: crate::routes::HopIdx,
        chassis: ChassisIdx,
    },
    /// The packet was rewritten into an ARP request or neighbour
    /// solicitation for an unknown next hop ([`router::arp_request`]):
    /// broadcast it in the switch of router port `rport` (by index), from
    /// the switch's port of type "router"; the packet it replaced is
    /// counted as dropped (`next_hop_unresolved`).
    Solicit { rport: u32 },
    /// Drop and count.
    Drop(DropReason),
    /// Taken by the switch, not forwarded and not a drop: ARP or neighbour
    /// discovery on the uplink it learned from, or the host's own traffic
    /// there (left to the kernel).
    Consumed,
}

/// What the pipeline knows about one packet in flight.
#[derive(Clone, Copy, Debug)]
pub struct PacketMeta {
    /// Local port the packet arrived on.
    pub in_port: PortId,
    /// Logical ingress port, once bound.
    pub logical_inport: Option<LportIdx>,
    /// Logical egress port, once looked up.
    pub logical_outport: Option<LportIdx>,
    /// The fields the stages read (see [`fields`]).
    pub reads: Fields,
    /// The conntrack checks the verdict holds under ([`acl::recheck`]).
    pub ct_checks: u16,
}

impl PacketMeta {
    /// Metadata of a packet received on `in_port`.
    #[inline]
    pub fn new(in_port: PortId) -> Self {
        PacketMeta {
            in_port,
            logical_inport: None,
            logical_outport: None,
            reads: Fields::NONE,
            ct_checks: 0,
        }
    }
}

/// What a stage returns.
pub enum Step {
    /// On to the next stage.
    Next,
    /// The pipeline's decision.
    Done(Decision),
}

/// What the stages decide for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Verdict(Verdict),
    /// Answer the packet with a reply written over it (the responder
    /// decides, the pipeline writes once the stages are done reading).
    Answer(arp_nd_responder::Answer),
    /// A router answers the packet ([`router::icmp`]).
    Router(router::icmp::Answer),
    /// A router asks for an unknown next hop ([`router::arp_request`]).
    Solicit(router::arp_request::Request),
}

impl Step {
    /// Done: drop for reason `r`.
    #[inline(always)]
    pub fn drop(r: DropReason) -> Step {
        Step::Done(Decision::drop(r))
    }
}

impl Decision {
    /// Drop for reason `r`.
    #[inline(always)]
    pub fn drop(r: DropReason) -> Decision {
        Decision::Verdict(Verdict::Drop(r))
    }
}

/// The fields a logical switch's ingress pipeline reads on ordinary
/// packets: the flow-cache key of a switch without ACLs or routers.
pub const SWITCH_KEY: Fields = ingress::READS
    .with(port_security::INGRESS_READS)
    .with(arp_nd_responder::READS)
    .with(l2_lookup::READS)
    .with(port_security::EGRESS_READS)
    .with(output::READS);

/// The key of a port whose switch has a router port: the switch's, and
/// what the router stages read (whether the TTL runs out).
pub const ROUTED_KEY: Fields = SWITCH_KEY.with(router::READS);

/// The key of a port whose datapath has ACLs (or shares a router with one
/// that has): widened by what ACL matches read (the L4 ports), so a cached
/// verdict never depends on a field the key lacks.
pub const ACL_KEY: Fields = ROUTED_KEY.with(acl::READS);

/// The first key of a port whose datapath has stateful ACLs (or shares a
/// router with one that has): the fields before the stateful stage, for
/// every L4 port. Established traffic's verdict reads nothing more (its
/// ACL decision is conntrack's, which [`acl::recheck`] runs again for each
/// packet), so one entry serves every connection between two addresses,
/// as OVS's megaflows leave out what only conntrack decides on; a verdict
/// that read the L4 ports (an `allow-stateless` ACL's) goes under
/// [`ACL_KEY`], looked up second.
pub const STATEFUL_KEY: Fields = ROUTED_KEY.with(Fields::ANY_L4);

/// Which key a local port's packets get ([`Tables::key_kind`]): the
/// fields its datapath's stages read, so a plain switch pays for no field
/// only ACLs or routers read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Switch,
    Routed,
    Acl,
    /// [`STATEFUL_KEY`], then [`ACL_KEY`].
    Stateful,
}

impl KeyKind {
    /// The fields the key holds (a stateful port's L4-wide one).
    pub const fn fields(self) -> Fields {
        match self {
            KeyKind::Switch => SWITCH_KEY,
            KeyKind::Routed => ROUTED_KEY,
            KeyKind::Acl => ACL_KEY,
            KeyKind::Stateful => ACL_KEY,
        }
    }
}

/// One packet of a burst from a local port: its verdict from the flow
/// cache, or from the full pipeline (remembered in the cache when the
/// stages read nothing beyond the key).
#[inline]
pub fn decide_cached<B: PacketBuf>(
    tables: &Tables,
    cache: &mut FlowCache,
    buf: &mut B,
    in_port: PortId,
) -> Verdict {
    decide_cached_as(tables, cache, buf, in_port, tables.key_kind(in_port))
}

/// [`decide_cached`] for a port whose [`Tables::key_kind`] the caller
/// looked up: a worker does so once per burst (every packet of a burst
/// comes in on one port) and calls this with the kind as a constant, so
/// each kind's loop is compiled on its own, without a per-packet load and
/// match of the kind.
#[inline(always)]
pub fn decide_cached_as<B: PacketBuf>(
    tables: &Tables,
    cache: &mut FlowCache,
    buf: &mut B,
    in_port: PortId,
    kind: KeyKind,
) -> Verdict {
    let Ok(lay) = layout::parse(buf.data()) else {
        return uncached(tables, buf, in_port);
    };
    let meta = fields::KeyMeta {
        in_port,
        ..Default::default()
    };
    // Plain verdicts first: a switch without ACLs (routed or not) looks
    // up the verdict alone; only an ACL datapath's entries carry
    // conntrack checks.
    let found = match kind {
        KeyKind::Switch => {
            fields::flow_key::<{ SWITCH_KEY.bits() }, _>(buf.data(), &lay, meta, |key, hash| {
                cache.lookup(&key, hash)
            })
        }
        KeyKind::Routed => {
            fields::flow_key::<{ ROUTED_KEY.bits() }, _>(buf.data(), &lay, meta, |key, hash| {
                cache.lookup(&key, hash)
            })
        }
        // Out of line, parsing again: the switch's hit path keeps its
        // layout in registers (and a layout passed by reference is read
        // back across the partial stores that wrote it, a store-forwarding
        // stall on every packet).
        KeyKind::Acl => return decide_cached_acl::<false, _>(tables, cache, buf, in_port, None),
        KeyKind::Stateful => {
            return decide_cached_acl::<true, _>(tables, cache, buf, in_port, None)
        }
    };
    match found {
        Some(Some(v)) => v,
        Some(None) => cache_miss(tables, cache, buf, in_port, kind),
        None => uncached(tables, buf, in_port),
    }
}

/// [`decide_cached_as`] for a port of [`KeyKind::Stateful`] whose burst
/// went through the conntrack pre-pass ([`acl::prepare`]): `probe` is what
/// it found for `buf`, which the re-check of a cached verdict takes
/// instead of hashing the key again.
#[inline(always)]
pub fn decide_cached_probed<B: PacketBuf>(
    tables: &Tables,
    cache: &mut FlowCache,
    buf: &mut B,
    in_port: PortId,
    probe: Option<Probe>,
) -> Verdict {
    decide_cached_acl::<true, _>(tables, cache, buf, in_port, probe)
}

/// [`decide_cached`] for a port of a datapath with ACLs ([`KeyKind::Acl`],
/// or with `STATEFUL` [`KeyKind::Stateful`]: the [`STATEFUL_KEY`] first):
/// a hit may hold under conntrack checks, which run again (with the
/// pre-pass's `probe`, [`decide_cached_probed`]).
#[inline(never)]
fn decide_cached_acl<const STATEFUL: bool, B: PacketBuf>(
    tables: &Tables,
    cache: &mut FlowCache,
    buf: &mut B,
    in_port: PortId,
    probe: Option<Probe>,
) -> Verdict {
    let Ok(lay) = layout::parse(buf.data()) else {
        return uncached(tables, buf, in_port);
    };
    let meta = fields::KeyMeta {
        in_port,
        ..Default::default()
    };
    let kind = if STATEFUL {
        KeyKind::Stateful
    } else {
        KeyKind::Acl
    };
    let mut keyed = false;
    if STATEFUL {
        let found =
            fields::flow_key::<{ STATEFUL_KEY.bits() }, _>(buf.data(), &lay, meta, |key, hash| {
                cache.probe_with(&key, hash)
            });
        match found {
            Some(Some((v, 0))) => return v,
            Some(Some((v, checks))) => return stateful_hit(tables, buf, in_port, v, checks, probe),
            Some(None) => keyed = true,
            None => {}
        }
    }
    let found = fields::flow_key::<{ ACL_KEY.bits() }, _>(buf.data(), &lay, meta, |key, hash| {
        cache.lookup_with(&key, hash)
    });
    match found {
        Some(Some((v, 0))) => v,
        Some(Some((v, checks))) => stateful_hit(tables, buf, in_port, v, checks, probe),
        Some(None) => cache_miss(tables, cache, buf, in_port, kind),
        // IPv6 has no L4-wide key, but may have the stateful one.
        None if keyed => {
            cache.misses += 1;
            cache_miss(tables, cache, buf, in_port, kind)
        }
        None => uncached(tables, buf, in_port),
    }
}

/// A cache hit that holds under conntrack checks: they run again (the
/// packet parsed again, so the plain hit path keeps nothing live across
/// the lookup), and the full pipeline decides if they fail.
#[inline(never)]
fn stateful_hit<B: PacketBuf>(
    tables: &Tables,
    buf: &mut B,
    in_port: PortId,
    v: Verdict,
    checks: u16,
    probe: Option<Probe>,
) -> Verdict {
    let holds = layout::parse(buf.data())
        .is_ok_and(|lay| acl::recheck(tables, buf.data(), &lay, in_port, v, checks, probe));
    if holds {
        v
    } else {
        uncached(tables, buf, in_port)
    }
}

/// The full pipeline for a packet no key holds (VLAN-tagged, malformed).
#[inline(never)]
fn uncached<B: PacketBuf>(tables: &Tables, buf: &mut B, in_port: PortId) -> Verdict {
    decide(tables, buf, &mut PacketMeta::new(in_port), &mut NoTrace)
}

/// The full pipeline on a flow-cache miss; its verdict is remembered when
/// the stages read nothing beyond the key. Out of line, so the hit path
/// stays small: the packet is parsed and keyed again rather than its
/// layout and key kept live (spilled) across the lookup.
#[inline(never)]
fn cache_miss<B: PacketBuf>(
    tables: &Tables,
    cache: &mut FlowCache,
    buf: &mut B,
    in_port: PortId,
    kind: KeyKind,
) -> Verdict {
    let key_meta = fields::KeyMeta {
        in_port,
        ..Default::default()
    };
    // Keyed before the pipeline runs: a reply is written over the packet.
    let key = |k, h| (k, h);
    // A stateful port's verdict goes under the key for every L4 port when
    // it read nothing more, else under the L4-wide one.
    let (narrow, keyed) = match layout::parse(buf.data()) {
        Ok(lay) => {
            let f = buf.data();
            let stateful = (kind == KeyKind::Stateful)
                .then(|| fields::flow_key::<{ STATEFUL_KEY.bits() }, _>(f, &lay, key_meta, key))
                .flatten();
            let keyed = match kind {
                KeyKind::Switch => {
                    fields::flow_key::<{ SWITCH_KEY.bits() }, _>(f, &lay, key_meta, key)
                }
                KeyKind::Routed => {
                    fields::flow_key::<{ ROUTED_KEY.bits() }, _>(f, &lay, key_meta, key)
                }
                KeyKind::Acl | KeyKind::Stateful => {
                    fields::flow_key::<{ ACL_KEY.bits() }, _>(f, &lay, key_meta, key)
                }
            };
            (stateful, keyed)
        }
        Err(_) => (None, None),
    };
    let mut meta = PacketMeta::new(in_port);
    let v = decide(tables, buf, &mut meta, &mut NoTrace);
    let keyed = match narrow {
        Some(n) if STATEFUL_KEY.contains(meta.reads) => Some(n),
        _ => keyed.filter(|_| kind.fields().contains(meta.reads)),
    };
    if let Some((k, hash)) = keyed {
        cache.insert_with(k, hash, v, meta.ct_checks);
    }
    v
}

/// One packet from a local port through the full pipeline, without the
/// flow cache (trace, tests, micro-benchmarks). `buf` is only modified for
/// a [`Verdict::Reply`]; `meta.reads` says what the stages read.
#[inline]
pub fn decide<B: PacketBuf, T: Tracer>(
    tables: &Tables,
    buf: &mut B,
    meta: &mut PacketMeta,
    t: &mut T,
) -> Verdict {
    let lay = match layout::parse(buf.data()) {
        Ok(l) => l,
        Err(m) => {
            trace!(t, "parse", "malformed frame ({} bytes): {m}", buf.len());
            return Verdict::Drop(DropReason::Malformed(m));
        }
    };
    trace!(t, "parse", "{}", describe(buf.data(), &lay));
    let mut p = Parsed::new(buf.data(), lay);
    let d = logical_switch(tables, &mut p, meta, t);
    meta.reads = p.reads();
    meta.ct_checks = p.ct_checks();
    match d {
        Decision::Verdict(v) => v,
        Decision::Answer(a) => a.write(buf, &lay),
        Decision::Router(a) => a.write(buf, &lay),
        Decision::Solicit(r) => r.write(buf),
    }
}

/// A logical switch's ingress pipeline, then its egress checks and output
/// (OVN's `ls_in_*` and `ls_out_*` stages).
#[inline(always)]
fn logical_switch<T: Tracer>(
    tables: &Tables,
    p: &mut Parsed<'_>,
    meta: &mut PacketMeta,
    t: &mut T,
) -> Decision {
    let lport = match ingress::bind(tables, meta, t) {
        Ok(l) => l,
        Err(d) => return d,
    };
    stage!(port_security::ingress(lport, p, t));
    if let Some(inport) = meta.logical_inport {
        stage!(acl::from_lport(tables, inport, lport, p, t));
    }
    stage!(arp_nd_responder::respond(tables, lport, p, meta, t));
    let out = match l2_lookup::lookup(tables, lport, p, meta, t) {
        Ok(o) => o,
        Err(d) => return d,
    };
    if out.port_type == PortType::Router {
        return router::route(tables, out, p, meta, t);
    }
    stage!(port_security::egress(out, p, t));
    // to-lport ACLs run where the egress pipeline does: here for a local
    // port, on the destination chassis for a remote one.
    if let (Some(outport), Some(_)) = (meta.logical_outport, out.local_port) {
        let inport = meta.logical_inport;
        stage!(acl::to_lport(tables, inport, outport, out, None, p, t));
    }
    output::output(tables, lport, out, meta, t)
}

#[cfg(test)]
mod tests;
