//! The tunnel output step, which runs per packet after a (cached)
//! [`Verdict::Tunnel`](super::Verdict::Tunnel) or for each remote copy of a
//! flood: the remote chassis' endpoint must be resolved (its MAC static or
//! learned on the uplink, else `neighbor_unresolved` while the uplink asks
//! for it), and the packet must fit the overlay (else `tunnel_mtu`, with the
//! ICMP error a router would send back for path-MTU discovery). Workers
//! keep an [`Endpoint`] per remote chassis until the tables or a neighbour
//! change; `switchyard trace` runs [`check`] on the same rules.

use super::Tracer;
use crate::drop::DropReason;
use crate::ids::ChassisIdx;
use crate::ids::PortId;
use crate::overlay::{self, Neighbors, Template};
use crate::tables::Tables;

/// A remote chassis as a worker encapsulates to it.
#[derive(Debug)]
pub struct Endpoint {
    /// The outer headers, with the endpoint's MAC.
    pub template: Template,
    pub uplink: PortId,
    /// The largest inner frame the tunnel carries.
    pub max_inner: usize,
    /// A plain VTEP: no egress port in the VNI.
    pub vtep: bool,
    /// The [`Neighbors::generation`] the MAC was read at.
    pub neighbors: u64,
}

impl Endpoint {
    /// What encapsulating to remote chassis `c` takes, with its endpoint's
    /// MAC as of neighbour `generation`: `neighbor_unresolved` if that MAC
    /// is not known yet (the caller asks the uplink for it).
    pub fn prepare(
        tables: &Tables,
        neighbors: &Neighbors,
        c: ChassisIdx,
        generation: u64,
    ) -> Result<Endpoint, DropReason> {
        let Some((u, rc)) = tables
            .underlay
            .as_ref()
            .and_then(|u| Some((u, u.chassis.get(c.get())?)))
        else {
            return Err(DropReason::NoLocalPort);
        };
        let dst_mac = rc
            .mac
            .or_else(|| neighbors.get(rc.ip))
            .ok_or(DropReason::NeighborUnresolved)?;
        Ok(Endpoint {
            template: Template::new(rc.encap, u.mac, dst_mac, u.ip, rc.ip, rc.csum),
            uplink: u.port,
            max_inner: overlay::max_inner_frame(rc.encap, u.ip.is_ipv6(), u.mtu),
            vtep: rc.vtep,
            neighbors: generation,
        })
    }

    /// The overlay MTU: the largest inner IP packet.
    pub fn mtu(&self) -> u16 {
        (self.max_inner - 14) as u16
    }
}

/// Why the tunnel output step refused a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub reason: DropReason,
    /// An ICMP "too big" goes back out of the ingress port.
    pub answered: bool,
}

/// What the tunnel output step does with `frame` to remote chassis `c`,
/// traced: Ok if it is encapsulated and sent out of the uplink.
pub fn check<T: Tracer>(
    tables: &Tables,
    neighbors: &Neighbors,
    c: ChassisIdx,
    frame: &[u8],
    t: &mut T,
) -> Result<(), Refused> {
    let refused = |reason| Refused {
        reason,
        answered: false,
    };
    let e = match Endpoint::prepare(tables, neighbors, c, neighbors.generation()) {
        Ok(e) => e,
        Err(r) => {
            if r == DropReason::NeighborUnresolved {
                if let Some(rc) = tables.underlay.as_ref().map(|u| &u.chassis[c.get()]) {
                    trace!(
                        t,
                        "tunnel_output",
                        "the MAC of chassis {}'s endpoint {} is not known yet: the uplink asks for it",
                        rc.name,
                        rc.ip
                    );
                }
            }
            return Err(refused(r));
        }
    };
    let len = frame.len();
    if len > e.max_inner {
        // The worker's answer, when the sender can do path-MTU discovery.
        let mut reply = [0u8; 1514];
        let answered = matches!(
            crate::responder::too_big(frame, e.mtu(), &mut reply),
            crate::responder::TooBig::Reply(_)
        );
        trace!(
            t,
            "tunnel_output",
            "{len} bytes exceed the overlay MTU {} (inner frame at most {}): {}",
            e.mtu(),
            e.max_inner,
            if answered {
                "ICMP \"too big\" back to the sender"
            } else {
                "no ICMP error (not IP, IPv4 without DF, or itself an ICMP error)"
            }
        );
        return Err(Refused {
            reason: DropReason::TunnelMtu,
            answered,
        });
    }
    trace!(
        t,
        "tunnel_output",
        "encapsulated ({} bytes of outer headers), out of the uplink (local port {})",
        e.template.header_len(),
        e.uplink
    );
    Ok(())
}
