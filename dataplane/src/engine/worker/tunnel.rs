//! A worker's overlay half: packets for other chassis are staged during a
//! burst and encapsulated after it (their headroom prefetched meanwhile),
//! through an endpoint prepared per remote chassis; packets from the uplink
//! are decapsulated and delivered through a flow cache of their own.

use std::time::{Duration, Instant};

use super::Worker;
use crate::drop::DropReason;
use crate::ids::PortId;
use crate::ids::{ChassisIdx, LportIdx};
use crate::overlay::{self, Uplink};
use crate::packet::{BufPool, PacketBuf};
use crate::pipeline::tunnel_output::Endpoint;
use crate::pipeline::{self, NoTrace, Verdict};
use crate::routes::HopIdx;
use crate::tables::{Tables, TunnelIds};

/// Where a tunnel packet goes on the remote chassis.
#[derive(Clone, Copy, Debug)]
pub(super) enum To {
    /// A logical port.
    Port(LportIdx),
    /// One of OVN's multicast groups.
    Group(u16),
}

/// The logical port a tunnel packet came in by (none for what a tunnel
/// delivered), and its tunnel keys.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ingress {
    pub(super) lport: Option<LportIdx>,
    pub(super) ids: Option<TunnelIds>,
}

impl<P: BufPool> Worker<P> {
    /// Stages a packet for encapsulation after the burst, prefetching the
    /// headroom its outer headers will be written into meanwhile.
    #[inline(always)]
    pub(super) fn stage_tunnel(&mut self, buf: P::Buf, chassis: ChassisIdx, lport: LportIdx) {
        crate::packet::prefetch_headroom(&buf, overlay::MAX_OVERHEAD);
        self.stage_tunnel.push((buf, chassis, lport));
    }

    /// Encapsulates the packets staged for tunnels, in order.
    #[inline(never)]
    pub(super) fn tunnel_staged(&mut self, in_port: PortId) {
        // What the whole burst shares: its ingress port, and the neighbour
        // table's generation (a MAC learned meanwhile applies next burst).
        let from = self.ingress(in_port);
        let generation = self.neighbors.generation();
        let mut staged = std::mem::take(&mut self.stage_tunnel);
        for (buf, chassis, lport) in staged.drain(..) {
            self.tunnel(buf, chassis, To::Port(lport), &from, generation);
        }
        self.stage_tunnel = staged;
    }
    /// Encapsulates `buf` to remote chassis `chassis` and queues it on the
    /// uplink: to logical port `lport`, or to multicast group `group`.
    #[inline(always)]
    pub(super) fn tunnel(
        &mut self,
        mut buf: P::Buf,
        chassis: ChassisIdx,
        to: To,
        from: &Ingress,
        generation: u64,
    ) {
        let c = chassis.get();
        let ready = matches!(self.endpoints.get(c), Some(Some(e)) if e.neighbors == generation);
        if !ready {
            if let Err(r) = self.prepare_endpoint(chassis, generation) {
                return self.drop(buf, r);
            }
        }
        let e = self.endpoints[c].as_ref().expect("prepared above");
        let (datapath_key, egress) = match to {
            To::Port(lport) => match self.tables.tunnel_ids.get(lport.get()) {
                Some(out) => (out.datapath_key, out.port_key),
                None => return self.drop(buf, DropReason::NoLocalPort),
            },
            To::Group(g) => match from.ids {
                Some(i) => (i.datapath_key, g),
                None => return self.drop(buf, DropReason::NoLocalPort),
            },
        };
        // A plain VTEP looks the destination up itself.
        let egress = if e.vtep { 0 } else { egress };
        let ingress = from.ids.map_or(0, |i| i.port_key);
        let (uplink, max) = (e.uplink, e.max_inner);
        if buf.len() > max {
            let mtu = e.mtu();
            return self.too_big(buf, from.lport, mtu);
        }
        if e.template
            .encapsulate(&mut buf, datapath_key, ingress, egress)
        {
            self.enqueue(uplink, buf);
        } else {
            self.drop(buf, DropReason::NoBuffer);
        }
    }

    /// A routed packet from local port `in_port` for a port on remote
    /// chassis `chassis`: rewritten for `hop`, then encapsulated from the
    /// destination switch's port of type "router". One too big for the
    /// overlay gets "fragmentation needed" / "packet too big" back before
    /// the rewrite, addressed as the router would (from its port's MAC),
    /// so the sender's path-MTU discovery works across the router too.
    pub(super) fn tunnel_routed(
        &mut self,
        mut buf: P::Buf,
        hop: HopIdx,
        chassis: ChassisIdx,
        in_port: PortId,
    ) {
        let generation = self.neighbors.generation();
        let c = chassis.get();
        let ready = matches!(self.endpoints.get(c), Some(Some(e)) if e.neighbors == generation);
        if !ready {
            if let Err(r) = self.prepare_endpoint(chassis, generation) {
                return self.drop(buf, r);
            }
        }
        let e = self.endpoints[c].as_ref().expect("prepared above");
        if buf.len() > e.max_inner {
            let mtu = e.mtu();
            return self.too_big(buf, self.tables.lport_of(in_port), mtu);
        }
        pipeline::router::rewrite(&self.tables, hop, buf.data_mut());
        let h = self.tables.routers.hops[hop.0 as usize];
        let from = Ingress {
            lport: None,
            ids: Some(h.ingress),
        };
        self.tunnel(buf, chassis, To::Port(h.lport), &from, generation);
    }

    /// The logical ingress port of what arrived on local port `in_port`.
    pub(super) fn ingress(&self, in_port: PortId) -> Ingress {
        let lport = self.tables.lport_of(in_port);
        Ingress {
            lport,
            ids: lport.and_then(|l| self.tables.tunnel_ids.get(l.get()).copied()),
        }
    }

    /// Builds what [`Worker::tunnel`] needs for remote chassis `c`, with its
    /// endpoint's MAC as of neighbour `generation`; if that MAC is not
    /// known, asks for it and says the packet waits in vain.
    #[cold]
    fn prepare_endpoint(&mut self, c: ChassisIdx, generation: u64) -> Result<(), DropReason> {
        let tables = self.tables.clone();
        let e = match Endpoint::prepare(&tables, &self.neighbors, c, generation) {
            Ok(e) => e,
            Err(r) => {
                if r == DropReason::NeighborUnresolved {
                    if let Some(rc) = tables.underlay.as_ref().map(|u| &u.chassis[c.get()]) {
                        self.ask_neighbor(rc.ip);
                    }
                }
                return Err(r);
            }
        };
        let n = tables.underlay.as_ref().map_or(0, |u| u.chassis.len());
        if self.endpoints.len() <= c.get() {
            self.endpoints.resize_with(n.max(c.get() + 1), || None);
        }
        self.endpoints[c.get()] = Some(e);
        Ok(())
    }

    /// A packet too big for the tunnel: ICMP back out of its ingress port
    /// (path-MTU discovery), and the packet dropped as `tunnel_mtu`.
    #[cold]
    fn too_big(&mut self, buf: P::Buf, inport: Option<LportIdx>, mtu: u16) {
        let back = inport.and_then(|l| self.tables.lports.get(l.get()).and_then(|l| l.local_port));
        if let (Some(p), Some(mut reply)) = (back, self.pool.alloc()) {
            let mut frame = [0u8; 14 + 40 + 8 + 1232];
            match crate::responder::too_big(buf.data(), mtu, &mut frame) {
                crate::responder::TooBig::Reply(n) if reply.load(&frame[..n]) => {
                    self.enqueue(p, reply)
                }
                _ => self.pool.free(reply),
            }
        }
        self.drop(buf, DropReason::TunnelMtu);
    }

    /// Asks the uplink for every remote endpoint not resolved yet (on new
    /// tables), so the first packet to a chassis finds its MAC known.
    #[cold]
    pub(super) fn resolve_endpoints(&mut self) {
        let tables = self.tables.clone();
        let Some(u) = tables.underlay.as_ref() else {
            return;
        };
        let mut asked = false;
        for rc in &u.chassis {
            if rc.mac.is_none() && self.neighbors.get(rc.ip).is_none() {
                self.ask_neighbor(rc.ip);
                asked = true;
            }
        }
        if asked {
            self.flush();
        }
    }

    /// Asks the uplink for a remote endpoint's MAC (ARP, or neighbour
    /// solicitation over IPv6), at most once a second.
    #[cold]
    fn ask_neighbor(&mut self, ip: std::net::IpAddr) {
        let now = Instant::now();
        match self.neighbor_asked.iter_mut().find(|(a, _)| *a == ip) {
            Some((_, at)) if now.duration_since(*at) < Duration::from_secs(1) => return,
            Some((_, at)) => *at = now,
            None => self.neighbor_asked.push((ip, now)),
        }
        let tables = self.tables.clone();
        let Some(u) = tables.underlay.as_ref() else {
            return;
        };
        if let Some(mut b) = self.pool.alloc() {
            if overlay::neighbor_request(&mut b, u, ip) {
                self.enqueue(u.port, b);
            } else {
                self.pool.free(b);
            }
        }
    }

    /// A burst from the uplink: ARP/ND for our endpoint, and tunnel packets,
    /// decapsulated and delivered to local ports only (never back into the
    /// overlay). OVN ran the ingress pipeline on the sending chassis; the
    /// egress checks run here.
    #[inline(never)]
    pub(super) fn process_uplink(&mut self, in_port: PortId) {
        let mut rx = std::mem::take(&mut self.rx);
        let tables = self.tables.clone();
        let u = tables.underlay.as_ref().expect("checked by the caller");
        for mut buf in rx.drain(..) {
            let got = overlay::receive(&mut buf, u, &self.neighbors, |k| tables.datapath_of_key(k));
            match got {
                Ok(Uplink::NeighborReply) => self.enqueue(in_port, buf),
                Ok(Uplink::Neighbor | Uplink::NotOurs) => self.pool.free(buf),
                Err(r) => self.drop(buf, r),
                Ok(Uplink::Tunnel(r)) => {
                    if !buf.trim_front(r.outer_len) {
                        self.drop(buf, DropReason::TunnelMalformed);
                        continue;
                    }
                    self.deliver(buf, &tables, r);
                }
            }
        }
        self.rx = rx;
    }

    /// Delivers a decapsulated frame on datapath `r.datapath`.
    #[inline]
    fn deliver(&mut self, buf: P::Buf, tables: &Tables, r: overlay::Received) {
        let v = match &mut self.decap_cache {
            Some(cache) => pipeline::tunnel_delivery_cached(tables, cache, buf.data(), &r),
            None => pipeline::tunnel_delivery(tables, buf.data(), &r, &mut NoTrace).0,
        };
        match v {
            Verdict::Output(p) => self.enqueue(p, buf),
            Verdict::Flood {
                datapath,
                unknown_only,
            } => self.flood_local(buf, datapath, unknown_only),
            Verdict::Drop(reason) => self.drop(buf, reason),
            Verdict::Reply => self.reject_back(buf, tables, &r),
            Verdict::Tunnel { .. }
            | Verdict::Routed { .. }
            | Verdict::RoutedTunnel { .. }
            | Verdict::Solicit { .. }
            | Verdict::Consumed => self.drop(buf, DropReason::TunnelUnknownPort),
        }
    }

    /// A to-lport `reject` of what a tunnel delivered: the answer (TCP RST
    /// or ICMP unreachable, [`crate::reject`]) goes back to the sender's
    /// chassis, from the port the packet was for to the port it came
    /// from, as OVN's pinctrl sends its answer back into the pipeline.
    #[cold]
    fn reject_back(&mut self, mut buf: P::Buf, tables: &Tables, r: &overlay::Received) {
        let dp = tables.datapath(r.datapath);
        let by_key = |k: u16| dp.ports_by_key.get(u32::from(k)).map(crate::ids::LportIdx);
        let sender = by_key(r.ingress_key);
        let target = match r.egress {
            overlay::Egress::Port(k) => by_key(k),
            _ => None,
        };
        let answered = crate::wire::layout::parse(buf.data())
            .is_ok_and(|lay| crate::reject::answer(&mut buf, &lay));
        let (Some(sender), true) = (sender, answered) else {
            return self.drop(buf, DropReason::AclReject);
        };
        let lp = tables.lport(sender);
        match (lp.local_port, lp.chassis) {
            (Some(port), _) => self.enqueue(port, buf),
            (None, Some(chassis)) => {
                let from = Ingress {
                    lport: target,
                    ids: target.and_then(|l| tables.tunnel_ids.get(l.get()).copied()),
                };
                let generation = self.neighbors.generation();
                self.tunnel(buf, chassis, To::Port(sender), &from, generation);
            }
            (None, None) => self.drop(buf, DropReason::AclReject),
        }
    }

    /// Copies a frame from a tunnel to every local port of the datapath
    /// (only "unknown" ones for unknown unicast).
    fn flood_local(&mut self, buf: P::Buf, datapath: crate::ids::DatapathIdx, unknown_only: bool) {
        let mut targets = std::mem::take(&mut self.flood);
        pipeline::flood_targets(
            &self.tables,
            datapath,
            unknown_only,
            None,
            buf.data(),
            &mut targets,
        );
        self.copy_out(buf, &mut targets);
        self.flood = targets;
    }
}
