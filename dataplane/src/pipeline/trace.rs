//! `switchyard trace`: one packet through the same stages as forwarding,
//! each decision recorded, then what the worker does with the verdict (the
//! VLAN tag of a provider port, the tunnel output step of each tunnel copy,
//! flood copies), so the trace ends in exactly the drop the worker would
//! count or the ports the packet would leave by. Nothing is transmitted and
//! nothing is learned.

use std::fmt;

use super::{decide, provider_vlan, tunnel_delivery, tunnel_output, Verdict};
use crate::drop::DropReason;
use crate::ids::PortId;
use crate::ids::{ChassisIdx, DatapathIdx, LportIdx};
use crate::overlay::{self, Neighbors, Uplink};
use crate::packet::PacketBuf;
use crate::pipeline::PacketMeta;
use crate::tables::Tables;
use crate::wire::layout::Layout;
use crate::wire::read::{be16, ipv4, ipv6, mac};
use crate::wire::EtherType;

/// Receives each stage's decision when tracing.
pub trait Tracer {
    /// False for the forwarding path: calls are compiled out.
    const ENABLED: bool;
    /// Records one stage's decision.
    fn record(&mut self, stage: &'static str, detail: fmt::Arguments<'_>);
}

/// The forwarding path's tracer: records nothing.
pub struct NoTrace;

impl Tracer for NoTrace {
    const ENABLED: bool = false;
    #[inline(always)]
    fn record(&mut self, _: &'static str, _: fmt::Arguments<'_>) {}
}

/// Collects stage decisions for `switchyard trace`.
#[derive(Debug, Default)]
pub struct TraceLog {
    pub stages: Vec<(&'static str, String)>,
}

impl Tracer for TraceLog {
    const ENABLED: bool = true;
    fn record(&mut self, stage: &'static str, detail: fmt::Arguments<'_>) {
        self.stages.push((stage, detail.to_string()));
    }
}

/// The result of tracing one packet.
#[derive(Debug)]
pub struct TraceReport {
    pub stages: Vec<(&'static str, String)>,
    pub verdict: Verdict,
    /// Local ports the packet would leave by.
    pub outputs: Vec<PortId>,
    /// The packet as it would leave (differs from the input for replies).
    pub frame: Vec<u8>,
}

/// One line describing a parsed frame, for traces.
pub fn describe(frame: &[u8], lay: &Layout) -> String {
    let mut s = format!("eth {} > {}", lay.src_mac(frame), lay.dst_mac(frame));
    if let Some(vid) = lay.vlan_id() {
        s += &format!(" vlan {vid}");
    }
    let l3 = usize::from(lay.l3);
    match lay.ethertype() {
        EtherType::Arp => {
            s += &format!(
                " arp op {} sha {} spa {} tpa {}",
                be16(frame, l3 + 6),
                mac(frame, l3 + 8),
                ipv4(frame, l3 + 14),
                ipv4(frame, l3 + 24)
            );
        }
        EtherType::Ipv4 => {
            s += &format!(
                " ip4 {} > {} proto {}",
                lay.ipv4_src(frame),
                lay.ipv4_dst(frame),
                lay.ip_proto
            );
        }
        EtherType::Ipv6 => {
            s += &format!(
                " ip6 {} > {} next {}",
                ipv6(frame, l3 + 8),
                ipv6(frame, l3 + 24),
                lay.ip_proto
            );
        }
        other => s += &format!(" type 0x{:04x}", u16::from(other)),
    }
    if lay.has(Layout::L4) && matches!(lay.ip_proto, 6 | 17) {
        s += &format!(
            " ports {} > {}",
            lay.l4_src_port(frame),
            lay.l4_dst_port(frame)
        );
    }
    s
}

/// Runs one packet that arrives on local port `in_port` through the
/// pipeline, recording every decision (`switchyard trace`); `neighbors` is
/// the uplink's neighbour table, for the tunnel output step.
pub fn trace<B: PacketBuf>(
    tables: &Tables,
    neighbors: &Neighbors,
    in_port: PortId,
    mut buf: B,
) -> TraceReport {
    let mut log = TraceLog::default();
    let report = |log: TraceLog, verdict, outputs, buf: &B| TraceReport {
        stages: log.stages,
        verdict,
        outputs,
        frame: buf.data().to_vec(),
    };
    if let Some(Some(vid)) = tables.port_vlan.get(in_port.get()) {
        if let Err(r) = provider_vlan::untag(&mut buf, *vid, &mut log) {
            log.record("drop", format_args!("{} ({r})", r.as_str()));
            return report(log, Verdict::Drop(r), Vec::new(), &buf);
        }
    }
    if let Some(Some(c)) = tables.chassis_mac_in.get(in_port.get()) {
        c.replace(buf.data_mut(), &mut log);
    }
    let mut meta = PacketMeta::new(in_port);
    let mut verdict = decide(tables, &mut buf, &mut meta, &mut log);
    let mut outputs = Vec::new();
    match verdict {
        Verdict::Output(p) => {
            tag_note(tables, p, &mut log);
            outputs.push(p);
        }
        Verdict::Reply => {
            log.record(
                "output",
                format_args!("reply out of the ingress port {in_port}"),
            );
            outputs.push(in_port);
        }
        Verdict::Routed { hop, port } => {
            super::router::rewrite(tables, hop, buf.data_mut());
            let h = tables.routers.hops[hop.0 as usize];
            log.record(
                "output",
                format_args!(
                    "routed: eth.src = {}, eth.dst = {}, ip.ttl = {}; to local port {port}",
                    h.src,
                    h.dst,
                    crate::wire::layout::parse(buf.data()).map_or(0, |l| l.ip_ttl(buf.data()))
                ),
            );
            outputs.push(port);
        }
        Verdict::RoutedTunnel { hop, chassis } => {
            super::router::rewrite(tables, hop, buf.data_mut());
            let h = tables.routers.hops[hop.0 as usize];
            log.record(
                "output",
                format_args!(
                    "routed: eth.src = {}, eth.dst = {}; tunnelled",
                    h.src, h.dst
                ),
            );
            match tunnel_output::check(tables, neighbors, chassis, buf.data(), &mut log) {
                Ok(()) => outputs.extend(tables.underlay.as_ref().map(|u| u.port)),
                Err(refused) => verdict = Verdict::Drop(refused.reason),
            }
        }
        Verdict::Flood {
            datapath,
            unknown_only,
        } => {
            let copies = flood(
                tables,
                neighbors,
                datapath,
                unknown_only,
                meta.logical_inport,
                &buf,
                &mut outputs,
                &mut log,
            );
            if outputs.is_empty() && !copies {
                verdict = Verdict::Drop(DropReason::NoLocalPort);
            }
        }
        Verdict::Solicit { rport } => {
            let rp = &tables.routers.ports[rport as usize];
            log.record(
                "drop",
                format_args!(
                    "next_hop_unresolved (this packet; the request goes out in its place)"
                ),
            );
            flood(
                tables,
                neighbors,
                rp.switch,
                false,
                Some(rp.peer),
                &buf,
                &mut outputs,
                &mut log,
            );
        }
        Verdict::Tunnel { chassis, .. } => {
            match tunnel_output::check(tables, neighbors, chassis, buf.data(), &mut log) {
                Ok(()) => outputs.extend(tables.underlay.as_ref().map(|u| u.port)),
                Err(refused) => {
                    if refused.answered {
                        outputs.push(in_port);
                    }
                    verdict = Verdict::Drop(refused.reason);
                }
            }
        }
        Verdict::Drop(_) | Verdict::Consumed => {}
    }
    if let Verdict::Drop(r) = verdict {
        log.record("drop", format_args!("{} ({r})", r.as_str()));
    }
    report(log, verdict, outputs, &buf)
}

/// A flood: the local copies, and the tunnel output step of each remote
/// chassis' copy. False when there was no remote chassis to send a copy to
/// (with no local copy either, the worker drops the packet).
#[allow(clippy::too_many_arguments)]
fn flood<B: PacketBuf>(
    tables: &Tables,
    neighbors: &Neighbors,
    datapath: DatapathIdx,
    unknown_only: bool,
    inport: Option<LportIdx>,
    buf: &B,
    outputs: &mut Vec<PortId>,
    log: &mut TraceLog,
) -> bool {
    super::flood_targets(tables, datapath, unknown_only, inport, buf.data(), outputs);
    log.record("output", format_args!("flood to local ports {outputs:?}"));
    let remote: Vec<ChassisIdx> = super::flood_chassis(tables, datapath, unknown_only).to_vec();
    let Some(u) = tables.underlay.as_ref().filter(|_| !remote.is_empty()) else {
        return false;
    };
    let names: Vec<&str> = remote
        .iter()
        .map(|&c| u.chassis[c.get()].name.as_str())
        .collect();
    log.record(
        "output",
        format_args!("and one tunnel copy to each of chassis {names:?}"),
    );
    let mut sent = false;
    for c in remote {
        if let Err(refused) = tunnel_output::check(tables, neighbors, c, buf.data(), log) {
            log.record(
                "tunnel_output",
                format_args!(
                    "the copy to {} is dropped: {}",
                    u.chassis[c.get()].name,
                    refused.reason.as_str()
                ),
            );
            // Back to the sender's local port, once.
            let back = inport.and_then(|l| tables.lports[l.get()].local_port);
            if let Some(p) = back.filter(|p| refused.answered && !outputs.contains(p)) {
                outputs.push(p);
            }
        } else {
            sent = true;
        }
    }
    if sent {
        outputs.push(u.port);
    }
    true
}

/// Notes the VLAN tag a provider port's frames get on the way out.
fn tag_note(tables: &Tables, p: PortId, log: &mut TraceLog) {
    if let Some(Some(vid)) = tables.port_vlan.get(p.get()) {
        log.record(
            "provider_vlan",
            format_args!("tagged with VLAN {vid} on the way out of local port {p}"),
        );
    }
}

/// Traces a frame as received on the uplink (`switchyard trace --uplink`):
/// tunnel checks, decapsulation and local delivery, through the same code
/// as forwarding. Nothing is learned or transmitted.
pub fn trace_uplink<B: PacketBuf>(tables: &Tables, mut buf: B) -> TraceReport {
    let mut log = TraceLog::default();
    let scratch = Neighbors::default();
    let Some(u) = tables.underlay.as_ref() else {
        log.record("uplink", format_args!("this chassis has no uplink"));
        return TraceReport {
            stages: log.stages,
            verdict: Verdict::Drop(DropReason::NoBinding),
            outputs: Vec::new(),
            frame: buf.data().to_vec(),
        };
    };
    let got = overlay::receive(&mut buf, u, &scratch, |k| tables.datapath_of_key(k));
    let mut outputs = Vec::new();
    let verdict = match got {
        Err(r) => {
            log.record("uplink", format_args!("{} ({r})", r.as_str()));
            Verdict::Drop(r)
        }
        Ok(Uplink::NeighborReply) => {
            log.record(
                "uplink",
                format_args!(
                    "ARP request or neighbour solicitation for our tunnel address {}: answered",
                    u.ip
                ),
            );
            outputs.push(u.port);
            Verdict::Reply
        }
        Ok(Uplink::Neighbor) => {
            log.record(
                "uplink",
                format_args!("ARP/ND: remote endpoints learned from it, nothing sent"),
            );
            Verdict::Consumed
        }
        Ok(Uplink::NotOurs) => {
            log.record(
                "uplink",
                format_args!(
                    "not for our tunnel address {}: the host's own traffic",
                    u.ip
                ),
            );
            Verdict::Consumed
        }
        Ok(Uplink::Tunnel(r)) => {
            let dp = tables.datapath(r.datapath);
            log.record(
                "uplink",
                format_args!(
                    "tunnel packet for datapath {} (\"{}\"), ingress port key {}",
                    dp.tunnel_key, dp.name, r.ingress_key
                ),
            );
            buf.trim_front(r.outer_len);
            let (v, _) = tunnel_delivery(tables, buf.data(), &r, &mut log);
            match v {
                Verdict::Output(p) => {
                    tag_note(tables, p, &mut log);
                    outputs.push(p);
                    v
                }
                Verdict::Flood {
                    datapath,
                    unknown_only,
                } => {
                    super::flood_targets(
                        tables,
                        datapath,
                        unknown_only,
                        None,
                        buf.data(),
                        &mut outputs,
                    );
                    log.record("output", format_args!("flood to local ports {outputs:?}"));
                    if outputs.is_empty() {
                        Verdict::Drop(DropReason::NoLocalPort)
                    } else {
                        v
                    }
                }
                _ => v,
            }
        }
    };
    if let Verdict::Drop(r) = verdict {
        if outputs.is_empty() {
            log.record("drop", format_args!("{} ({r})", r.as_str()));
        }
    }
    TraceReport {
        stages: log.stages,
        verdict,
        outputs,
        frame: buf.data().to_vec(),
    }
}
