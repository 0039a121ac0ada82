//! OVN's ACL stages with conntrack: `ls_in_pre_acl` .. `ls_in_stateful`
//! for `from-lport` ACLs (after ingress port security, on what a port
//! sends), `ls_out_pre_acl` .. `ls_out_stateful` for `to-lport` ACLs
//! (before output, on what a port receives), as ovn-northd 23.03 writes
//! them (ovn-northd(8), "Ingress Table 4: Pre-ACLs" .. "Stateful").
//!
//! On a datapath without ACLs nothing happens. Without an `allow-related`
//! ACL it is stateless: the highest-priority matching ACL decides (no
//! match: allow), and the verdict depends on packet fields only, so the
//! flow cache keeps it (the key holds the L4 fields on such datapaths,
//! [`super::ACL_KEY`]). With one, IP traffic is tracked in the zone of the
//! port whose ACLs apply, except what OVN keeps out of conntrack (ND, RS,
//! RA and MLD, allowed outright; multicast; localnet ports; traffic an
//! `allow-stateless` ACL matches): invalid is dropped; replies and related
//! traffic of a committed connection pass unless a drop ACL blocked it;
//! a committed connection's own direction passes without evaluating ACLs
//! unless the ACLs changed since it was allowed (then its next packet is
//! checked, and a drop or reject ACL marks it blocked, OVN's
//! `ct_mark.blocked`); a new connection that an allow ACL (or none)
//! allows is committed, and refused as `ct_full` if the table is.
//! A verdict that took conntrack's "allowed without ACLs" path is cached
//! with that check ([`recheck`] runs it again on every hit, so established
//! traffic skips the rest of the pipeline but never conntrack), under a
//! key for every L4 port ([`super::STATEFUL_KEY`]): one entry serves all
//! connections between two addresses, and IPv6 is cached too. Any other
//! tracked verdict is never cached ([`Fields::CONNTRACK`]).
//!
//! `reject` answers with a TCP RST or an ICMP unreachable out of the
//! ingress port ([`crate::reject`]; for what a tunnel delivered, the
//! worker sends it back through the tunnel). Every evaluation counts a hit per ACL, and a
//! logged ACL's match queues a log line ([`crate::acl_log`]; such
//! verdicts are not cached, [`Fields::LOG`]).

use std::sync::atomic::Ordering;

use ovn_expr::{Field, Pred};

use super::arp_nd_responder::Answer;
use super::{Decision, Fields, Parsed, Step, Tracer};
use crate::classifier::{AclAction, DirAcls, Direction, PortRules, Rule, Subject};
use crate::conntrack::{tuple, CtState, Probe, Track};
use crate::drop::DropReason;
use crate::ids::LportIdx;
use crate::tables::{Lport, PortType, Tables};
use crate::wire::{EtherType, IpProtocol, MacAddr};

/// What ACL matches read of ordinary packets (all of it keyable; the flow
/// key of a port whose datapath has ACLs holds it).
pub const READS: Fields = Fields::ETH_SRC
    .with(Fields::ETH_DST)
    .with(Fields::ETH_TYPE)
    .with(Fields::IP_SRC)
    .with(Fields::IP_DST)
    .with(Fields::IP_PROTO)
    .with(Fields::L4_SRC)
    .with(Fields::L4_DST);

/// The packet as ACL matches see it.
struct View<'p, 'a> {
    p: &'p mut Parsed<'a>,
    inport: Option<LportIdx>,
    outport: Option<LportIdx>,
    /// eth.src and eth.dst as the stage sees them when they are not the
    /// frame's: a routed packet's, which the router rewrote (carried out
    /// on the frame only after the pipeline).
    macs: Option<(MacAddr, MacAddr)>,
    ct: CtState,
}

fn mac(m: crate::wire::MacAddr) -> u128 {
    m.0.iter().fold(0, |a, &b| a << 8 | u128::from(b))
}

impl Subject for View<'_, '_> {
    fn field(&mut self, f: Field) -> Option<u128> {
        use Field::*;
        let p = &mut *self.p;
        Some(match f {
            Inport => u128::from(self.inport?.0),
            Outport => u128::from(self.outport?.0),
            EthSrc => mac(self.macs.map_or_else(|| p.eth_src(), |m| m.0)),
            EthDst => mac(self.macs.map_or_else(|| p.eth_dst(), |m| m.1)),
            EthType => u128::from(u16::from(p.eth_type())),
            IpProto => u128::from(u8::from(p.ip_proto())),
            Ip4Src => u128::from(u32::from(p.ip4_src())),
            Ip4Dst => u128::from(u32::from(p.ip4_dst())),
            Ip6Src => u128::from(p.ip6_src()),
            Ip6Dst => u128::from(p.ip6_dst()),
            TcpSrc | UdpSrc | SctpSrc => u128::from(p.l4_ports()?.0),
            TcpDst | UdpDst | SctpDst => u128::from(p.l4_ports()?.1),
            Icmp4Type | Icmp6Type => u128::from(p.icmp_type_code()?.0),
            Icmp4Code | Icmp6Code => u128::from(p.icmp_type_code()?.1),
        })
    }

    fn pred(&mut self, pred: Pred) -> bool {
        let p = &mut *self.p;
        let et = p.eth_type();
        let (v4, v6) = (et == EtherType::Ipv4, et == EtherType::Ipv6);
        let proto = |p: &mut Parsed<'_>, want: IpProtocol| (v4 || v6) && p.ip_proto() == want;
        match pred {
            Pred::Ip => v4 || v6,
            Pred::Ip4 => v4,
            Pred::Ip6 => v6,
            Pred::Arp => et == EtherType::Arp,
            Pred::Tcp => proto(p, IpProtocol::Tcp),
            Pred::Udp => proto(p, IpProtocol::Udp),
            Pred::Sctp => proto(p, IpProtocol::Sctp),
            Pred::Icmp4 => v4 && p.ip_proto() == IpProtocol::Icmp,
            Pred::Icmp6 => v6 && p.ip_proto() == IpProtocol::Icmpv6,
            Pred::Icmp => {
                (v4 && p.ip_proto() == IpProtocol::Icmp)
                    || (v6 && p.ip_proto() == IpProtocol::Icmpv6)
            }
            Pred::CtNew => self.ct.has(CtState::NEW),
            Pred::CtEst => self.ct.has(CtState::EST),
            Pred::CtRel => self.ct.has(CtState::REL),
            Pred::CtRpl => self.ct.has(CtState::RPL),
            Pred::CtInv => self.ct.has(CtState::INV),
            Pred::CtTrk => self.ct.has(CtState::TRK),
        }
    }
}

/// The highest-priority rule of `list` that matches (counting its hit
/// and, if it is logged, queuing its log line when forwarding).
fn first_match<'r, T: Tracer>(
    d: &'r DirAcls,
    list: &PortRules,
    v: &mut View<'_, '_>,
) -> Option<&'r Rule> {
    let r = list.first_match(d, v)?;
    if let Some(log) = &r.log {
        v.p.read(Fields::LOG);
        if !T::ENABLED {
            let (frame, lay) = v.p.stateful();
            log.record(frame, lay);
        }
    }
    if !T::ENABLED {
        r.hits.fetch_add(1, Ordering::Relaxed);
    }
    Some(r)
}

/// The stateless decision: the highest-priority match, or allow.
fn stateless<T: Tracer>(
    stage: &'static str,
    d: &DirAcls,
    list: &PortRules,
    v: &mut View<'_, '_>,
    why: &str,
    t: &mut T,
) -> Step {
    match first_match::<T>(d, list, v) {
        Some(r) => {
            trace!(t, stage, "{why}ACL {} matched", Matched(r));
            verdict(r.action, v.p)
        }
        None => {
            trace!(t, stage, "{why}no ACL matched: allow");
            Step::Next
        }
    }
}

/// An ACL action's decision; a reject is answered (out of the ingress
/// port, or back through the tunnel), which rewrites the packet, and no
/// cached verdict can (recorded as [`Fields::ANSWER`]).
fn verdict(a: AclAction, p: &mut Parsed<'_>) -> Step {
    match a {
        AclAction::Drop => Step::drop(DropReason::AclDrop),
        AclAction::Reject => {
            p.read(Fields::ANSWER);
            Step::Done(Decision::Answer(Answer::Reject))
        }
        _ => Step::Next,
    }
}

/// A rule, for traces: name, priority, direction, action.
struct Matched<'r>(&'r Rule);

impl std::fmt::Display for Matched<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.0;
        write!(
            f,
            "\"{}\" (priority {}, {}, match \"{}\"): {}",
            r.name,
            r.priority,
            r.direction.as_str(),
            r.match_text,
            r.action.as_str()
        )
    }
}

/// ICMPv6 types OVN keeps out of conntrack and allows (RFC 4861 §4, RS
/// 133 .. redirect 137; RFC 2710 and 3810 MLD 130-132, 143).
fn nd_or_mld(p: &mut Parsed<'_>) -> bool {
    matches!(p.icmpv6(), Some((130..=137 | 143, _)))
}

/// `from-lport` ACLs of the packet's ingress port `inport`.
#[inline]
pub fn from_lport<T: Tracer>(
    tables: &Tables,
    inport: LportIdx,
    lport: &Lport,
    p: &mut Parsed<'_>,
    t: &mut T,
) -> Step {
    let ports = (Some(inport), None);
    check(
        tables,
        Direction::FromLport,
        inport,
        lport,
        ports,
        None,
        p,
        t,
    )
}

/// `to-lport` ACLs of the packet's egress port `outport`. `macs`: the
/// `(eth.src, eth.dst)` a router gave a routed packet, which the stage
/// sees as OVN's `ls_out_acl` does (`lr_in_arp_resolve` rewrote them
/// before the destination switch's pipeline ran; ours rewrites the frame
/// after the pipeline).
#[inline]
pub fn to_lport<T: Tracer>(
    tables: &Tables,
    inport: Option<LportIdx>,
    outport: LportIdx,
    out: &Lport,
    macs: Option<(MacAddr, MacAddr)>,
    p: &mut Parsed<'_>,
    t: &mut T,
) -> Step {
    let ports = (inport, Some(outport));
    check(tables, Direction::ToLport, outport, out, ports, macs, p, t)
}

/// Conntrack checks of cached verdicts ([`Parsed::ct_established`]): the
/// from-lport stage's, in the ingress port's zone, and the to-lport
/// stage's, in the egress port's.
pub const CT_FROM_LPORT: u16 = 1;
pub const CT_TO_LPORT: u16 = 2;

/// Whether a tracked packet passes without evaluating ACLs: reply or
/// related traffic of a connection no drop ACL blocked, or a committed
/// connection's own direction under the ACLs that allowed it.
fn established(t: &Track, generation: u32) -> bool {
    !t.state.has(CtState::INV)
        && !t.blocked
        && (t.state.has(CtState::REL)
            || t.state.has(CtState::RPL)
            || (t.handle.is_some() && t.acl_gen == generation))
}

/// The conntrack checks `ct` of a cached verdict `v` for a packet from
/// local port `in_port`, run again (advancing the connections' state):
/// whether the verdict still holds. If not, the caller runs the full
/// pipeline, which decides (tracking the packet once more: the state
/// machines take a packet seen twice as seen once). `probe`: the packet's
/// key in the ingress port's zone as the burst's pre-pass found it
/// ([`prepare`]), not hashed again.
#[inline(always)]
pub fn recheck(
    tables: &Tables,
    frame: &[u8],
    lay: &crate::wire::layout::Layout,
    in_port: crate::ids::PortId,
    v: super::Verdict,
    checks: u16,
    probe: Option<Probe>,
) -> bool {
    let Some(st) = tables.acls.stateful.as_ref() else {
        return false;
    };
    // Borrowed where it was returned: moved, its partly written bytes
    // would be read back as words (a store-forwarding stall).
    let Some(pkt) = &tuple::packet(frame, lay) else {
        return false;
    };
    let ct = &st.conntrack;
    let now = ct.now();
    let generation = tables.acls.generation;
    let zone = |l: Option<LportIdx>| l.and_then(|l| tables.acls.zones.get(l.get()).copied());
    let locate = |z: u16| match probe {
        Some(probe) => ct.locate_probed(z, pkt, probe),
        None => ct.locate(z, pkt),
    };
    let passes = |z: Option<u16>| {
        z.and_then(locate)
            .is_some_and(|at| established(&ct.track_at(&at, pkt, now, true), generation))
    };
    let from = (checks & CT_FROM_LPORT != 0).then(|| zone(tables.lport_of(in_port)));
    if checks & CT_TO_LPORT == 0 {
        return from.is_none_or(passes);
    }
    let super::Verdict::Output(p) = v else {
        // Tracked as before the verdict is known not to hold.
        let _ = from.is_none_or(passes);
        return false;
    };
    match (from, zone(tables.lport_of(p))) {
        // Both zones (a switch whose ACLs are stateful, both ports in
        // it): looked up together, so their cache misses overlap.
        (Some(Some(a)), Some(b)) => {
            locate(a).is_some_and(|at| ct.track2(&at, b, pkt, now, |t| established(t, generation)))
        }
        (from, to) => from.is_none_or(passes) && passes(to),
    }
}

/// The pre-pass over a burst from local port `in_port` (whose datapath's
/// ACLs are stateful), for one frame: the probe of its conntrack key in
/// the port's zone, its hint prefetched
/// ([`crate::conntrack::Conntrack::prefetch_hint`]; [`prefetch`] once the
/// whole burst is through), so that the burst's conntrack misses overlap,
/// and the re-check does not hash the key again ([`recheck`]). An
/// untagged TCP or UDP packet over IPv4 without options or fragmentation
/// is read at fixed offsets, with none of the parse and tuple that would
/// cost as much as the miss it hides (the tests check that its probe is
/// the tracked key's); other frames take the general path. None when the
/// port is not tracked or the frame has no tuple.
#[inline]
pub fn prepare(tables: &Tables, in_port: crate::ids::PortId, frame: &[u8]) -> Option<Probe> {
    let st = tables.acls.stateful.as_ref()?;
    let zone = *tables.acls.zones.get(tables.lport_of(in_port)?.get())?;
    let ct = &st.conntrack;
    let probe = match frame.first_chunk::<38>() {
        // EtherType IPv4 (RFC 894), version 4 with IHL 5, neither MF nor
        // a fragment offset (RFC 791 §3.1), TCP or UDP.
        Some(h)
            if h[12..15] == [0x08, 0x00, 0x45]
                && h[20] & 0x3f == 0
                && h[21] == 0
                && matches!(h[23], 6 | 17) =>
        {
            let at = |i: usize| [h[i], h[i + 1], h[i + 2], h[i + 3]];
            ct.probe_v4(zone, at(26), at(30), at(34), h[23])
        }
        _ => {
            let lay = crate::wire::layout::parse(frame).ok()?;
            ct.locate(zone, &tuple::packet(frame, &lay)?)?.probe()
        }
    };
    ct.prefetch_hint(probe);
    Some(probe)
}

/// The pre-pass's second step, for each packet of the burst [`prepare`]d:
/// the prefetch of its entry's line, as its (now cached) hint names it.
#[inline]
pub fn prefetch(tables: &Tables, probe: Probe) {
    if let Some(st) = tables.acls.stateful.as_ref() {
        st.conntrack.prefetch(probe);
    }
}

/// One direction's ACLs for the packet of logical port `port` (its
/// datapath's ACLs, its conntrack zone), whose `(inport, outport)` the
/// matches see.
#[allow(clippy::too_many_arguments)]
fn check<T: Tracer>(
    tables: &Tables,
    dir: Direction,
    port: LportIdx,
    lport: &Lport,
    (inport, outport): (Option<LportIdx>, Option<LportIdx>),
    macs: Option<(MacAddr, MacAddr)>,
    p: &mut Parsed<'_>,
    t: &mut T,
) -> Step {
    let Some(acls) = tables.acls.datapath(lport.datapath) else {
        return Step::Next;
    };
    let stage = match dir {
        Direction::FromLport => "acl (from-lport)",
        Direction::ToLport => "acl (to-lport)",
    };
    let d = acls.dir(dir);
    let list = d.for_port(port);
    let mut v = View {
        p,
        inport,
        outport,
        macs,
        ct: CtState::default(),
    };
    let stateful = tables.acls.stateful.as_ref().filter(|_| acls.stateful);
    let Some(st) = stateful else {
        return stateless(stage, d, list, &mut v, "", t);
    };
    // ls_in_pre_acl / ls_out_pre_acl, priority 110 and the stateless
    // filters: what is not sent to conntrack.
    let et = v.p.eth_type();
    if et != EtherType::Ipv4 && et != EtherType::Ipv6 {
        return stateless(stage, d, list, &mut v, "not IP, untracked: ", t);
    }
    if lport.port_type == PortType::Localnet {
        return stateless(stage, d, list, &mut v, "localnet port, untracked: ", t);
    }
    if et == EtherType::Ipv6 && nd_or_mld(v.p) {
        trace!(t, stage, "ND/MLD: allowed without conntrack");
        return Step::Next;
    }
    if v.p.eth_dst().is_multicast() {
        return stateless(stage, d, list, &mut v, "multicast, untracked: ", t);
    }
    if d.has_stateless {
        if let Some(r) = list.first_stateless(d, &mut v) {
            trace!(t, stage, "ACL {} keeps it out of conntrack", Matched(r));
            return stateless(stage, d, list, &mut v, "untracked: ", t);
        }
    }
    let (frame, lay) = v.p.stateful();
    let Some(pkt) = tuple::packet(frame, lay) else {
        v.p.read(Fields::CONNTRACK);
        return Step::drop(DropReason::CtInvalid);
    };
    let zone = tables.acls.zones.get(port.get()).copied().unwrap_or(0);
    let ct = &st.conntrack;
    let now = ct.now();
    let forwarding = !T::ENABLED;
    let track = ct.track(zone, &pkt, now, forwarding);
    v.ct = track.state;
    let state = track.state;
    let generation = tables.acls.generation;
    if established(&track, generation) {
        trace!(
            t,
            stage,
            "ct zone {zone}: {state}: {}, allowed without ACLs",
            if state.has(CtState::REL) || state.has(CtState::RPL) {
                "reply or related traffic of a committed connection"
            } else {
                "committed connection"
            }
        );
        v.p.ct_established(match dir {
            Direction::FromLport => CT_FROM_LPORT,
            Direction::ToLport => CT_TO_LPORT,
        });
        return Step::Next;
    }
    v.p.read(Fields::CONNTRACK);
    if state.has(CtState::INV) {
        trace!(t, stage, "ct zone {zone}: {state}: invalid, dropped");
        return Step::drop(DropReason::CtInvalid);
    }
    if state.has(CtState::REL) || state.has(CtState::RPL) {
        trace!(
            t,
            stage,
            "ct zone {zone}: {state} of a blocked connection: dropped"
        );
        return Step::drop(DropReason::CtBlocked);
    }
    if let Some(h) = track.handle {
        // The ACLs changed (or a drop ACL blocked it): check again.
        let hit = first_match::<T>(d, list, &mut v);
        let allowed = hit.is_none_or(|r| r.action.allows());
        if forwarding {
            ct.mark(h, !allowed, generation);
        }
        return match hit {
            Some(r) if !allowed => {
                trace!(
                    t,
                    stage,
                    "ct zone {zone}: {state}: ACL {} matched: connection blocked",
                    Matched(r)
                );
                verdict(r.action, v.p)
            }
            Some(r) => {
                trace!(
                    t,
                    stage,
                    "ct zone {zone}: {state}: ACL {} matched again",
                    Matched(r)
                );
                Step::Next
            }
            None => {
                trace!(t, stage, "ct zone {zone}: {state}: no ACL matched: allow");
                Step::Next
            }
        };
    }
    // A new connection: the ACLs decide, and what they allow is committed
    // (ls_*_stateful's ct_commit; allow commits too on such a datapath).
    let hit = first_match::<T>(d, list, &mut v);
    if let Some(r) = hit.filter(|r| !r.action.allows()) {
        trace!(
            t,
            stage,
            "ct zone {zone}: {state}: ACL {} matched",
            Matched(r)
        );
        return verdict(r.action, v.p);
    }
    match hit {
        Some(r) => trace!(
            t,
            stage,
            "ct zone {zone}: {state}: ACL {} matched: commit",
            Matched(r)
        ),
        None => trace!(
            t,
            stage,
            "ct zone {zone}: {state}: no ACL matched: allow, commit"
        ),
    }
    if forwarding && ct.commit(zone, &pkt, now, generation).is_err() {
        return Step::drop(DropReason::CtFull);
    }
    Step::Next
}

#[cfg(test)]
mod tests;
