//! The node's management socket: a unix stream socket speaking one JSON
//! object per line. `show` lists ports and counters; `trace` runs a packet
//! through the live tables with the forwarding code and returns each stage's
//! decision. The `switchyard show` and `switchyard trace` commands are its
//! clients.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use dataplane::ids::PortId;
use dataplane::overlay::Neighbors;
use dataplane::packet::HeapBuf;
use dataplane::pipeline::{self, Verdict};
use dataplane::port::Port;
use dataplane::tables::Tables;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::UnixListener;

use crate::backend::{Backend, PortSpec, PortType};
use crate::node::Node;

/// A request on the management socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Show,
    Trace {
        inport: String,
        frame_hex: String,
    },
    /// Trace a frame as received on the uplink.
    TraceUplink {
        frame_hex: String,
    },
    /// Attach a port for a logical port (controller mode): a kernel
    /// interface, or a DPDK port of the type given.
    PortAdd {
        interface: String,
        iface_id: String,
        mtu: Option<usize>,
        #[serde(default)]
        port_type: PortType,
    },
    /// Detach a port.
    PortDel {
        interface: String,
    },
    /// Restart the chassis controller (forwarding goes on).
    RestartController,
    /// Stop the node: its chassis leaves SB, unless `restart` (it comes
    /// back under the same name), as `ovn-appctl exit [--restart]`.
    Exit {
        #[serde(default)]
        restart: bool,
    },
    /// List (or count, or flush) tracked connections, of one zone or all.
    Conntrack {
        zone: Option<u16>,
        count: bool,
        flush: bool,
    },
}

/// The answer: text for the operator, or an error.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub text: String,
}

/// Sends one request to a node's management socket.
pub fn request(socket: &Path, req: &Request) -> Result<String> {
    let mut s = UnixStream::connect(socket).with_context(|| {
        format!(
            "connecting to the node's management socket {}",
            socket.display()
        )
    })?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    let r: Response = serde_json::from_str(&answer).context("bad answer from the node")?;
    if r.ok {
        Ok(r.text)
    } else {
        Err(anyhow!(r.text))
    }
}

/// Serves management requests until the task is dropped.
pub async fn serve<B: Backend>(listener: UnixListener, node: Arc<Node<B>>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            let (r, mut w) = sock.into_split();
            let mut lines = TokioBufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let resp = match serde_json::from_str::<Request>(&line) {
                    Ok(req) => match handle(&node, req).await {
                        Ok(text) => Response { ok: true, text },
                        Err(e) => Response {
                            ok: false,
                            text: format!("{e:#}"),
                        },
                    },
                    Err(e) => Response {
                        ok: false,
                        text: format!("bad request: {e}"),
                    },
                };
                let mut out = serde_json::to_string(&resp).unwrap_or_default();
                out.push('\n');
                if w.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn handle<B: Backend>(node: &Node<B>, req: Request) -> Result<String> {
    let (generation, tables) = node.engine().publisher().load();
    let ports = node.engine().ports();
    match req {
        Request::Show => Ok(show(node, &tables, generation, &ports)),
        Request::Trace { inport, frame_hex } => {
            let frame = decode_hex(&frame_hex)?;
            trace_text(
                &tables,
                node.engine().neighbors(),
                &names(&ports),
                &inport,
                &frame,
            )
        }
        Request::TraceUplink { frame_hex } => {
            let frame = decode_hex(&frame_hex)?;
            if tables.underlay.is_none() {
                return Ok(
                    "verdict: none: this node has no uplink (start it with --uplink IFACE)\n"
                        .into(),
                );
            }
            let report = pipeline::trace_uplink(&tables, HeapBuf::from_frame(&frame));
            let mut s = format!("from the uplink, {} bytes\n", frame.len());
            for (stage, detail) in &report.stages {
                s += &format!("  {stage:<22} {detail}\n");
            }
            s += &verdict_line(&tables, &names(&ports), &report);
            Ok(s)
        }
        Request::PortAdd {
            interface,
            iface_id,
            mtu,
            port_type,
        } => {
            if !node.managed() {
                bail!("this node's ports come from its configuration file");
            }
            let spec = PortSpec {
                name: interface.clone(),
                kind: port_type,
                mtu,
            };
            let id = node.dp.add_port(&spec, &iface_id)?;
            Ok(format!(
                "{interface} attached as local port {id}, iface-id {iface_id}\n"
            ))
        }
        Request::PortDel { interface } => {
            if !node.managed() {
                bail!("this node's ports come from its configuration file");
            }
            node.dp.del_port(&interface).await?;
            Ok(format!("{interface} detached\n"))
        }
        Request::RestartController => {
            node.restart_controller()?;
            Ok("chassis controller restarted\n".into())
        }
        Request::Exit { restart } => {
            node.exit(restart)?;
            Ok(if restart {
                "exiting; the chassis stays in SB for the restart\n".into()
            } else {
                "exiting; the chassis leaves SB\n".into()
            })
        }
        Request::Conntrack { zone, count, flush } => {
            let ct = &node.dp.stateful.conntrack;
            if flush {
                return Ok(format!("{} connections flushed\n", ct.flush(zone)));
            }
            let conns = ct.dump(zone);
            if count {
                return Ok(format!("{}\n", conns.len()));
            }
            Ok(conns.iter().map(|c| conntrack_line(c) + "\n").collect())
        }
    }
}

/// One connection as `ovs-appctl dpctl/dump-conntrack` prints one.
fn conntrack_line(c: &dataplane::conntrack::ConnView) -> String {
    use dataplane::conntrack::Proto;
    let o = &c.orig;
    let proto = match o.proto {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        58 => "icmpv6",
        132 => "sctp",
        _ => "other",
    };
    let ports = match o.proto {
        1 | 58 => format!("id={}", o.sport),
        6 | 17 | 132 => format!("sport={},dport={}", o.sport, o.dport),
        p => format!("proto={p}"),
    };
    let r = o.reverse();
    let mut s = format!(
        "{proto},orig=(src={},dst={},{ports}),reply=(src={},dst={}),zone={}",
        o.src_ip(),
        o.dst_ip(),
        r.src_ip(),
        r.dst_ip(),
        c.zone
    );
    if let Proto::Tcp(st) = c.proto {
        s += &format!(",protoinfo=(state={})", st.as_str());
    }
    if !c.replied {
        s += ",unreplied";
    }
    if c.blocked {
        s += ",blocked";
    }
    s += &format!(",timeout={}", c.expires_in);
    s
}

/// The interface names of the node's ports, by local port id.
fn names<P: dataplane::packet::BufPool>(ports: &[Option<Arc<dyn Port<P>>>]) -> Vec<String> {
    ports
        .iter()
        .map(|p| p.as_ref().map(|p| p.name().to_string()).unwrap_or_default())
        .collect()
}

fn show<B: Backend>(
    node: &Node<B>,
    tables: &Tables,
    generation: u64,
    ports: &[Option<Arc<dyn Port<B::Pool>>>],
) -> String {
    let mut s = node.dp.backend.describe();
    s += &format!("tables generation {generation}\n");
    if node.managed() {
        for a in node.dp.attached() {
            let kind = match &a.plug.port_type {
                PortType::System => String::new(),
                PortType::Dpdk { devargs } => format!(" type dpdk devargs {devargs}"),
                PortType::Dpdkvhostuser => " type dpdkvhostuser".into(),
                PortType::Dpdkvhostuserclient { vhost_server_path } => format!(
                    " type dpdkvhostuserclient vhost-server-path {}",
                    vhost_server_path.display()
                ),
            };
            let mtu = a
                .opened
                .map_or(String::new(), |i| format!(" mtu {}", i.mtu));
            match (a.id, &a.waiting) {
                (Some(id), _) => {
                    // Bound: the installed tables deliver to it.
                    let unbound = if node.dp.installed_uses(id) {
                        ""
                    } else {
                        " unbound (no such logical port in SB yet)"
                    };
                    s += &format!(
                        "local port {id} {} iface-id {}{kind}{mtu}{unbound}\n",
                        a.plug.interface, a.plug.iface_id
                    )
                }
                (None, why) => {
                    s += &format!(
                        "local port - {} iface-id {}{kind}: not attached: {}\n",
                        a.plug.interface,
                        a.plug.iface_id,
                        why.as_deref().unwrap_or("waiting")
                    )
                }
            }
        }
    }
    if let Some(u) = &tables.underlay {
        let uplink = ports
            .get(u.port.get())
            .cloned()
            .flatten()
            .map_or_else(|| u.port.to_string(), |p| p.name().to_string());
        s += &format!(
            "uplink {uplink}: tunnel endpoint {} mac {} mtu {}\n",
            u.ip, u.mac, u.mtu
        );
        let neighbors = node.engine().neighbors();
        for c in &u.chassis {
            let mac = match (c.mac, neighbors.get(c.ip)) {
                (Some(m), _) => format!("{m} (static)"),
                (None, Some(m)) => format!("{m} (learned)"),
                (None, None) => "unresolved".to_string(),
            };
            let overlay_mtu =
                dataplane::overlay::max_inner_frame(c.encap, u.ip.is_ipv6(), u.mtu) - 14;
            s += &format!(
                "    chassis {}: {:?} to {} mac {mac}, overlay mtu {overlay_mtu}{}\n",
                c.name,
                c.encap,
                c.ip,
                if c.vtep { ", vtep" } else { "" }
            );
        }
    }
    s += &pmd_stats(node, ports);
    for dp in &tables.datapaths {
        s += &format!("switch {} (datapath {})\n", dp.name, dp.tunnel_key);
        for &i in &dp.ports {
            let lp = tables.lport(i);
            let port = lp
                .local_port
                .and_then(|p| ports.get(p.get()).cloned().flatten());
            let local = match port {
                Some(port) => {
                    let st = port.stats();
                    format!(
                        "{} {} link {} rx {} tx {} tx_dropped {}",
                        port.kind(),
                        port.name(),
                        if port.link_up() { "up" } else { "down" },
                        st.rx_packets,
                        st.tx_packets,
                        st.tx_dropped
                    )
                }
                None => match (lp.chassis, &tables.underlay) {
                    (Some(c), Some(u)) => format!("on chassis {}", u.chassis[c.get()].name),
                    _ if lp.port_type == dataplane::tables::PortType::Router => tables
                        .routers
                        .by_peer
                        .get(&i)
                        .map_or("router port (not here)".into(), |&r| {
                            format!("to router port {}", tables.routers.ports[r].name)
                        }),
                    _ => "not bound on this node".to_string(),
                },
            };
            s += &format!("    port {} (key {}): {local}\n", lp.name, lp.tunnel_key);
        }
    }
    s += &tables.routers.show(tables);
    // Every reason /metrics counts, summed over the workers: what a
    // `switchyard trace` of the packet would end in.
    let engine = node.engine();
    let drops: Vec<String> = dataplane::drop::DropReason::all()
        .filter_map(|r| Some((r, engine.drops(r))).filter(|&(_, n)| n > 0))
        .map(|(r, n)| format!("{} {n}", r.as_str()))
        .collect();
    if drops.is_empty() {
        s += "drops: none\n";
    } else {
        s += &format!("drops: {}\n", drops.join(", "));
    }
    if let Some(st) = node.controller_status() {
        let session = if st.connected.load(std::sync::atomic::Ordering::Relaxed) {
            "connected"
        } else {
            "disconnected"
        };
        s += &format!(
            "southbound: {session}, nb_cfg {}\n",
            st.nb_cfg.load(std::sync::atomic::Ordering::Relaxed)
        );
        if let Some(problem) = st.problem() {
            s += &format!("problem: {problem}\n");
        }
        s += &format!("not enforced: {}\n", st.unenforced());
    }
    s
}

/// Per worker (PMD thread): its core, counters, cycles and the rx queues it
/// polls, as `ovs-appctl dpif-netdev/pmd-stats-show` and `pmd-rxq-show`
/// tell them.
fn pmd_stats<B: Backend>(node: &Node<B>, ports: &[Option<Arc<dyn Port<B::Pool>>>]) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let engine = node.engine();
    let rxqs = engine.rxq_info();
    let mut s = format!(
        "pmd-rxq-assign {} (queue usage over the last {} s of measured cycles)\n",
        engine.rxq_assign(),
        dataplane::engine::INTERVAL.as_secs() * dataplane::engine::rxq::INTERVALS as u64
    );
    for (w, st) in engine.workers().iter().enumerate() {
        let core = engine
            .worker_cores()
            .get(w)
            .copied()
            .flatten()
            .map_or_else(|| "any".to_string(), |c| c.to_string());
        let per_packet = st
            .cycles_per_packet()
            .map_or_else(|| "-".to_string(), |c| format!("{c:.0}"));
        let hit = st
            .cache_hit_rate()
            .map_or_else(|| "-".to_string(), |h| format!("{:.1}%", h * 100.0));
        s += &format!(
            "pmd {w} core {core}: rx {} tx {} cycles/packet {per_packet} busy {:.1}% (busy {} idle {} cycles) flow cache hits {hit}\n",
            st.rx_packets.load(Relaxed),
            st.tx_packets.load(Relaxed),
            st.busy_ratio() * 100.0,
            st.busy_cycles.load(Relaxed),
            st.idle_cycles.load(Relaxed),
        );
        for (p, queues) in rxqs.iter().enumerate() {
            let Some(port) = ports.get(p).cloned().flatten() else {
                continue;
            };
            for (q, info) in queues.iter().enumerate().filter(|(_, i)| i.worker == w) {
                // As pmd-rxq-show: "NOT AVAIL" until an interval closed.
                let usage = info
                    .usage
                    .map_or_else(|| "NOT AVAIL".into(), |u| format!("{:.0} %", u * 100.0));
                s += &format!(
                    "    rx queue {} {q}: pmd usage {usage} (cycles {})\n",
                    port.name(),
                    info.cycles
                );
            }
        }
    }
    s
}

/// Traces `frame` arriving on logical port `inport`; `port_names` names the
/// local ports.
pub fn trace_text(
    tables: &Tables,
    neighbors: &Neighbors,
    port_names: &[String],
    inport: &str,
    frame: &[u8],
) -> Result<String> {
    let Some(&idx) = tables.lport_by_name.get(inport) else {
        bail!("no logical port {inport:?}");
    };
    let Some(local) = tables.lport(idx).local_port else {
        bail!("logical port {inport:?} is not bound on this node");
    };
    let report = pipeline::trace(tables, neighbors, local, HeapBuf::from_frame(frame));
    let mut s = format!(
        "inport \"{inport}\" (local port {}), {} bytes\n",
        port_name(port_names, local),
        frame.len()
    );
    for (stage, detail) in &report.stages {
        s += &format!("  {stage:<22} {detail}\n");
    }
    s += &verdict_line(tables, port_names, &report);
    Ok(s)
}

/// A local port's interface name, for traces.
fn port_name(port_names: &[String], p: PortId) -> String {
    port_names
        .get(p.get())
        .cloned()
        .unwrap_or_else(|| format!("port {p}"))
}

/// The last line(s) of a trace: the verdict, and a reply's frame.
fn verdict_line(tables: &Tables, port_names: &[String], report: &pipeline::TraceReport) -> String {
    let name = |p: PortId| port_name(port_names, p);
    let lport_of = |p: PortId| {
        tables
            .lport_of(p)
            .map(|i| tables.lport(i).name.clone())
            .unwrap_or_default()
    };
    let uplink = tables.underlay.as_ref().map(|u| u.port);
    let mut s = match report.verdict {
        Verdict::Drop(r) => format!("verdict: drop, reason {} ({r})\n", r.as_str()),
        Verdict::Consumed => "verdict: consumed by the switch, nothing sent\n".to_string(),
        Verdict::Solicit { .. } => {
            let outs: Vec<String> = report.outputs.iter().map(|&p| name(p)).collect();
            format!(
                "verdict: drop, reason next_hop_unresolved; the request for the next hop goes out instead, to {}\nrequest frame: {}\n",
                if outs.is_empty() { "no port".to_string() } else { outs.join(", ") },
                encode_hex(&report.frame)
            )
        }
        _ if report.outputs.is_empty() => "verdict: drop, no egress port\n".to_string(),
        // A port on another chassis: name it and its chassis.
        Verdict::Tunnel { chassis, lport } if uplink.is_some_and(|u| report.outputs == [u]) => {
            let remote = tables
                .underlay
                .as_ref()
                .and_then(|u| u.chassis.get(chassis.get()))
                .map_or_else(String::new, |c| c.name.clone());
            format!(
                "verdict: output to \"{}\" on chassis {remote:?}, tunnelled via {}\n",
                tables.lport(lport).name,
                name(report.outputs[0])
            )
        }
        _ => {
            let outs: Vec<String> = report
                .outputs
                .iter()
                .map(|&p| {
                    if Some(p) == uplink {
                        format!("the tunnel copies via {}", name(p))
                    } else {
                        format!("\"{}\" via {}", lport_of(p), name(p))
                    }
                })
                .collect();
            format!("verdict: output to {}\n", outs.join(", "))
        }
    };
    if report.verdict == Verdict::Reply {
        s += &format!("reply frame: {}\n", encode_hex(&report.frame));
    }
    s
}

/// Parses hex bytes, ignoring whitespace, ':' and a leading "0x".
pub fn decode_hex(s: &str) -> Result<Vec<u8>> {
    let s = s.trim().trim_start_matches("0x");
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':')
        .collect();
    if !digits.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    digits
        .chunks(2)
        .map(|p| {
            u8::from_str_radix(std::str::from_utf8(p)?, 16)
                .map_err(|_| anyhow!("bad hex digits {:?}", String::from_utf8_lossy(p)))
        })
        .collect()
}

/// Hex without separators.
pub fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The ingress port and frame of a `trace` command line: hex bytes, or a
/// flow description (which may name the port as `inport=NAME`).
/// The ingress port and frame of a trace, from hex bytes or a flow
/// description; for a description also the packet it built, every field
/// and default spelled out.
pub fn packet_from_args(
    inport: Option<String>,
    words: &[String],
) -> Result<(String, Vec<u8>, Option<String>)> {
    let joined = words.join(" ");
    let hex = joined
        .trim()
        .trim_start_matches("0x")
        .chars()
        .all(|c| c.is_ascii_hexdigit() || c.is_whitespace() || c == ':');
    if hex {
        let inport = inport.ok_or_else(|| anyhow!("give the ingress port with --inport"))?;
        return Ok((inport, decode_hex(&joined)?, None));
    }
    let flow: dataplane::flow::FlowDesc = joined.parse()?;
    let inport = flow
        .inport
        .clone()
        .or(inport)
        .ok_or_else(|| anyhow!("give the ingress port as inport=NAME or --inport"))?;
    let built = format!("packet: {flow}\n");
    Ok((inport, flow.to_frame()?, Some(built)))
}
