//! OVN's `ls_in_arp_rsp`: the switch answers an ARP request or a neighbour
//! solicitation for an address that another port of the same switch owns,
//! instead of flooding it. Not for requests from a localnet port (their
//! answers belong to the physical network), nor for a port asking about
//! its own address (a probe or gratuitous ARP), nor for duplicate address
//! detection (an NS from `::`). A request for a router port's address
//! teaches the router the requester first, as OVN's router learns from
//! the requests it answers ([`super::router::learn_neighbor`]). The stage
//! decides; the pipeline writes the
//! answer over the request once the stages are done reading
//! ([`crate::responder`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Decision, Fields, PacketMeta, Parsed, Step, Tracer, Verdict};
use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::tables::{Lport, PortType, Tables};
use crate::wire::icmpv6::{self, NdiscRepr};
use crate::wire::layout::Layout;
use crate::wire::read::{be16, ipv4, ipv6};
use crate::wire::{EtherType, MacAddr};

/// An ordinary IP packet is told apart from ARP and ND by these.
pub const READS: Fields = Fields::ETH_TYPE.with(Fields::IP_PROTO);

/// RFC 4861 §4.3: the ICMPv6 type of a neighbour solicitation.
const ND_NS: u8 = 135;

/// The answer the responder decided on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// "`ip` is at `mac`" (RFC 826).
    Arp { mac: MacAddr, ip: Ipv4Addr },
    /// A solicited neighbour advertisement "`target` is at `mac`".
    Nd { target: Ipv6Addr, mac: MacAddr },
    /// A `reject` ACL's TCP RST or ICMP unreachable ([`crate::reject`]).
    Reject,
}

impl Answer {
    /// Writes the answer over the request in `buf` (parsed into `lay`).
    pub fn write<B: PacketBuf>(self, buf: &mut B, lay: &Layout) -> Verdict {
        let l3 = usize::from(lay.l3);
        match self {
            Answer::Arp { mac, ip } => crate::responder::arp_reply(buf.data_mut(), l3, mac, ip),
            Answer::Nd { target, mac } => {
                if !crate::responder::neighbor_advert(buf, l3, target, mac) {
                    // Every buffer holds a minimum-size frame and more.
                    return Verdict::Drop(DropReason::NoBuffer);
                }
            }
            Answer::Reject => {
                if !crate::reject::answer(buf, lay) {
                    return Verdict::Drop(DropReason::AclReject);
                }
            }
        }
        Verdict::Reply
    }
}

/// The responder stage.
#[inline]
pub fn respond<T: Tracer>(
    tables: &Tables,
    lport: &Lport,
    p: &mut Parsed<'_>,
    meta: &mut PacketMeta,
    t: &mut T,
) -> Step {
    if lport.port_type == PortType::Localnet {
        return Step::Next;
    }
    let answer = match p.eth_type() {
        EtherType::Arp => arp(tables, lport, p, meta, t),
        EtherType::Ipv6 => nd(tables, lport, p, meta, t),
        _ => None,
    };
    match answer {
        Some(a) => Step::Done(Decision::Answer(a)),
        None => Step::Next,
    }
}

fn arp<T: Tracer>(
    tables: &Tables,
    lport: &Lport,
    p: &mut Parsed<'_>,
    meta: &PacketMeta,
    t: &mut T,
) -> Option<Answer> {
    let a = p.arp()?;
    // RFC 826: opcode 1 is a request.
    if be16(a, 6) != 1 {
        return None;
    }
    let tpa = ipv4(a, 24);
    let owner = tables.arp.get(&(lport.datapath, tpa))?;
    if Some(owner.lport) == meta.logical_inport {
        return None;
    }
    if tables.lport(owner.lport).port_type == PortType::Router {
        let sha = MacAddr::from_bytes(&a[8..14]);
        let spa = ipv4(a, 14);
        super::router::learn_neighbor::from_request(
            tables,
            owner.lport,
            spa.into(),
            Some(sha),
            p,
            t,
        );
    }
    trace!(
        t,
        "arp_responder",
        "arp.tpa {tpa} is \"{}\"'s ({}): reply from the switch",
        tables.lport(owner.lport).name,
        owner.mac
    );
    Some(Answer::Arp {
        mac: owner.mac,
        ip: tpa,
    })
}

fn nd<T: Tracer>(
    tables: &Tables,
    lport: &Lport,
    p: &mut Parsed<'_>,
    meta: &PacketMeta,
    t: &mut T,
) -> Option<Answer> {
    let (ND_NS, msg) = p.icmpv6()? else {
        return None;
    };
    if msg.len() < 24 {
        return None;
    }
    let target = ipv6(msg, 8);
    let owner = tables.nd.get(&(lport.datapath, target))?;
    if Some(owner.lport) == meta.logical_inport || p.ip6_src().is_unspecified() {
        return None; // DAD probes are not answered for the owner.
    }
    if tables.lport(owner.lport).port_type == PortType::Router {
        let sll = match NdiscRepr::parse(&icmpv6::Packet::new_unchecked(msg)) {
            Ok(NdiscRepr::NeighborSolicit { lladdr, .. }) => lladdr,
            _ => None,
        };
        let src = p.ip6_src();
        super::router::learn_neighbor::from_request(tables, owner.lport, src.into(), sll, p, t);
    }
    trace!(
        t,
        "nd_responder",
        "nd.target {target} is \"{}\"'s ({}): NA from the switch",
        tables.lport(owner.lport).name,
        owner.mac
    );
    Some(Answer::Nd {
        target,
        mac: owner.mac,
    })
}
