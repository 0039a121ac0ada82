//! Prometheus `/metrics` for the node: drops per reason, per-port and
//! per-worker counters, read from the dataplane's single-writer counters at
//! scrape time (nothing on the forwarding path knows about Prometheus), and
//! under a chassis controller its SB session, acknowledged nb_cfg and
//! claimed ports; hits per ACL and the connection table's counters.

use std::sync::Arc;

use anyhow::Result;
use dataplane::drop::DropReason;
use dataplane::ids::PortId;
use prometheus::{
    Encoder, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::backend::Backend;
use crate::node::Node;

/// The workers' drops by the local port packets came in on, labelled with
/// its logical port and switch (empty for the uplink and unbound ports):
/// which VM or network a `switchyard_drops_total` comes from.
fn port_drops<B: Backend>(node: &Node<B>, r: &Registry) -> Result<()> {
    let engine = node.engine();
    let (_, tables) = engine.publisher().load();
    let c = IntCounterVec::new(
        Opts::new(
            "switchyard_port_drops_total",
            "Packets dropped by the switch (any reason), by the port they came in on",
        ),
        &["port", "lport", "switch"],
    )?;
    for (i, p) in engine.ports().into_iter().enumerate() {
        let Some(p) = p else { continue };
        let id = PortId(i as u16);
        let (lport, switch) = tables
            .lport_of(id)
            .map_or((String::new(), String::new()), |l| {
                let lp = tables.lport(l);
                (lp.name.clone(), tables.datapath(lp.datapath).name.clone())
            });
        c.with_label_values(&[p.name(), &lport, &switch])
            .inc_by(engine.port_drops(id));
    }
    r.register(Box::new(c))?;
    Ok(())
}

/// Per rx queue, as OVS's `pmd-rxq-show` gives them: the cycles its
/// worker spent on it, and its share of that worker's time over the load
/// history (what `pmd-rxq-assign=cycles` balances on), once an interval
/// has closed.
fn rxq_load<B: Backend>(node: &Node<B>, r: &Registry) -> Result<()> {
    let labels = &["port", "queue", "worker"];
    let cycles = IntCounterVec::new(
        Opts::new(
            "switchyard_pmd_rxq_cycles_total",
            "Processing cycles spent on the rx queue",
        ),
        labels,
    )?;
    let usage = GaugeVec::new(
        Opts::new(
            "switchyard_pmd_rxq_usage_ratio",
            "The rx queue's share of its worker's cycles over the load history",
        ),
        labels,
    )?;
    let engine = node.engine();
    let ports = engine.ports();
    for (p, queues) in engine.rxq_info().iter().enumerate() {
        let Some(port) = ports.get(p).cloned().flatten() else {
            continue;
        };
        for (q, info) in queues.iter().enumerate() {
            let (q, w) = (q.to_string(), info.worker.to_string());
            let l = [port.name(), q.as_str(), w.as_str()];
            cycles.with_label_values(&l).inc_by(info.cycles);
            if let Some(u) = info.usage {
                usage.with_label_values(&l).set(u);
            }
        }
    }
    r.register(Box::new(cycles))?;
    r.register(Box::new(usage))?;
    Ok(())
}

/// Renders the current counters in the Prometheus text format.
pub fn render<B: Backend>(node: &Node<B>) -> Result<String> {
    let engine = node.engine();
    let r = Registry::new();
    let drops = IntCounterVec::new(
        Opts::new("switchyard_drops_total", "Packets dropped, by reason"),
        &["reason"],
    )?;
    let port_stats = engine
        .ports()
        .into_iter()
        .flatten()
        .map(|p| (p.name().to_string(), p.stats(), p.link_up()));
    let port_stats: Vec<_> = port_stats.collect();
    for reason in DropReason::all() {
        let mut n = engine.drops(reason);
        if reason == DropReason::Oversized {
            n += port_stats
                .iter()
                .map(|(_, s, _)| s.rx_oversized)
                .sum::<u64>();
        }
        drops.with_label_values(&[reason.as_str()]).inc_by(n);
    }
    r.register(Box::new(drops))?;

    let port_counter =
        |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["port"]);
    let rx_p = port_counter(
        "switchyard_port_rx_packets_total",
        "Packets received by the port",
    )?;
    let rx_b = port_counter(
        "switchyard_port_rx_bytes_total",
        "Bytes received by the port",
    )?;
    let rx_d = port_counter(
        "switchyard_port_rx_dropped_total",
        "Received frames dropped for lack of buffers",
    )?;
    let rx_o = port_counter(
        "switchyard_port_rx_oversized_total",
        "Received frames larger than the port's MTU",
    )?;
    let tx_p = port_counter(
        "switchyard_port_tx_packets_total",
        "Packets transmitted by the port",
    )?;
    let tx_b = port_counter(
        "switchyard_port_tx_bytes_total",
        "Bytes transmitted by the port",
    )?;
    let tx_d = port_counter(
        "switchyard_port_tx_dropped_total",
        "Packets the port could not transmit",
    )?;
    let link = IntGaugeVec::new(
        Opts::new("switchyard_port_link_up", "1 if the port's link is up"),
        &["port"],
    )?;
    for (name, s, up) in &port_stats {
        let l = [name.as_str()];
        rx_p.with_label_values(&l).inc_by(s.rx_packets);
        rx_b.with_label_values(&l).inc_by(s.rx_bytes);
        rx_d.with_label_values(&l).inc_by(s.rx_dropped);
        rx_o.with_label_values(&l).inc_by(s.rx_oversized);
        tx_p.with_label_values(&l).inc_by(s.tx_packets);
        tx_b.with_label_values(&l).inc_by(s.tx_bytes);
        tx_d.with_label_values(&l).inc_by(s.tx_dropped);
        link.with_label_values(&l).set(i64::from(*up));
    }
    for c in [rx_p, rx_b, rx_d, rx_o, tx_p, tx_b, tx_d] {
        r.register(Box::new(c))?;
    }
    r.register(Box::new(link))?;
    port_drops(node, &r)?;

    let worker_counter =
        |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["worker"]);
    let w_rx = worker_counter(
        "switchyard_worker_rx_packets_total",
        "Packets a worker received",
    )?;
    let w_tx = worker_counter(
        "switchyard_worker_tx_packets_total",
        "Packets a worker transmitted",
    )?;
    let w_hit = worker_counter("switchyard_worker_flow_cache_hits_total", "Flow cache hits")?;
    let w_miss = worker_counter(
        "switchyard_worker_flow_cache_misses_total",
        "Flow cache misses",
    )?;
    use std::sync::atomic::Ordering::Relaxed;
    for (i, w) in engine.workers().iter().enumerate() {
        let l = [i.to_string()];
        let l = [l[0].as_str()];
        w_rx.with_label_values(&l)
            .inc_by(w.rx_packets.load(Relaxed));
        w_tx.with_label_values(&l)
            .inc_by(w.tx_packets.load(Relaxed));
        w_hit
            .with_label_values(&l)
            .inc_by(w.cache_hits.load(Relaxed));
        w_miss
            .with_label_values(&l)
            .inc_by(w.cache_misses.load(Relaxed));
    }
    let w_busy = worker_counter(
        "switchyard_worker_busy_cycles_total",
        "Cycles of poll rounds that received packets",
    )?;
    let w_idle = worker_counter(
        "switchyard_worker_idle_cycles_total",
        "Cycles of poll rounds that received nothing",
    )?;
    for (i, w) in engine.workers().iter().enumerate() {
        let l = [i.to_string()];
        let l = [l[0].as_str()];
        w_busy
            .with_label_values(&l)
            .inc_by(w.busy_cycles.load(Relaxed));
        w_idle
            .with_label_values(&l)
            .inc_by(w.idle_cycles.load(Relaxed));
    }
    for c in [w_rx, w_tx, w_hit, w_miss, w_busy, w_idle] {
        r.register(Box::new(c))?;
    }
    rxq_load(node, &r)?;
    let generation = IntGauge::new(
        "switchyard_table_generation",
        "Generation of the forwarding tables in use",
    )?;
    generation.set(engine.publisher().generation() as i64);
    r.register(Box::new(generation))?;
    acl_and_conntrack(node, &r)?;

    if let Some(st) = node.controller_status() {
        use std::sync::atomic::Ordering::Relaxed;
        let up = IntGauge::new(
            "switchyard_controller_sb_connected",
            "1 if the chassis controller's SB session is synchronized",
        )?;
        up.set(i64::from(st.connected.load(Relaxed)));
        let cfg = IntGauge::new(
            "switchyard_controller_nb_cfg",
            "The nb_cfg this chassis acknowledged (forwarding with it)",
        )?;
        cfg.set(st.nb_cfg.load(Relaxed));
        let claimed = IntGauge::new(
            "switchyard_controller_claimed_ports",
            "Port_Bindings bound on this chassis",
        )?;
        claimed.set(st.claimed.load(Relaxed) as i64);
        let rejected = IntGauge::new(
            "switchyard_controller_acls_rejected",
            "SB ACLs of local datapaths not enforced: their match does not parse",
        )?;
        rejected.set(st.acls_rejected.count() as i64);
        for g in [up, cfg, claimed, rejected] {
            r.register(Box::new(g))?;
        }
        let unenforced = IntGaugeVec::new(
            Opts::new(
                "switchyard_controller_unenforced",
                "Intent in the databases that is not enforced, by kind: logical_flow_* = ovn-northd's \
                 logical flows this chassis does not compile (always exported), nb_<feature> = NB rows \
                 ovn-northd-lite does not realise (exported while there are any)",
            ),
            &["kind"],
        )?;
        let now = st.unenforced();
        for kind in chassis::UnenforcedKind::ALL {
            let n = now.flows.get(&kind).copied().unwrap_or(0);
            unenforced.with_label_values(&[kind.name()]).set(n as i64);
        }
        for (feature, n) in &now.northd {
            unenforced
                .with_label_values(&[&format!("nb_{feature}")])
                .set(*n as i64);
        }
        r.register(Box::new(unenforced))?;
    }
    let build = IntGaugeVec::new(
        Opts::new(
            "switchyard_build_info",
            "The running switchyard: its version and whether it has DPDK (always 1)",
        ),
        &["version", "dpdk"],
    )?;
    build
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            if cfg!(feature = "dpdk") {
                "true"
            } else {
                "false"
            },
        ])
        .set(1);
    r.register(Box::new(build))?;
    let mut out = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut out)?;
    Ok(String::from_utf8(out)?)
}

/// Per-ACL hits and the connection table's counters.
fn acl_and_conntrack<B: Backend>(node: &Node<B>, r: &Registry) -> Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let st = &node.dp.stateful;
    let hits = IntCounterVec::new(
        Opts::new(
            "switchyard_acl_hits_total",
            "Packets an ACL decided (its name, or direction:priority:match)",
        ),
        &["acl"],
    )?;
    for (label, n) in st.hits() {
        hits.with_label_values(&[&label]).inc_by(n);
    }
    r.register(Box::new(hits))?;
    let ct = &st.conntrack;
    let gauge = |name: &str, help: &str, v: i64| -> Result<IntGauge> {
        let g = IntGauge::new(name, help)?;
        g.set(v);
        Ok(g)
    };
    for g in [
        gauge(
            "switchyard_conntrack_connections",
            "Connections in the table",
            ct.len() as i64,
        )?,
        gauge(
            "switchyard_conntrack_limit",
            "Connections the table holds at most",
            ct.limit() as i64,
        )?,
        gauge(
            "switchyard_acls_not_installed",
            "ACLs the dataplane could not compile (unknown port group or address set)",
            node.dp.acls_not_installed.load(Relaxed) as i64,
        )?,
    ] {
        r.register(Box::new(g))?;
    }
    let counter = |name: &str, help: &str, v: u64| -> Result<prometheus::IntCounter> {
        let c = prometheus::IntCounter::new(name, help)?;
        c.inc_by(v);
        Ok(c)
    };
    for c in [
        counter(
            "switchyard_conntrack_created_total",
            "Connections committed",
            ct.stats.created.load(Relaxed),
        )?,
        counter(
            "switchyard_conntrack_expired_total",
            "Connections freed after their timeout",
            ct.stats.expired.load(Relaxed),
        )?,
        counter(
            "switchyard_conntrack_refused_total",
            "New connections refused: the table was full",
            ct.stats.refused_full.load(Relaxed),
        )?,
        counter(
            "switchyard_acl_log_suppressed_total",
            "Log lines of logged ACLs not written: over 10 a second per ACL, or the queue was full",
            st.acl_log.suppressed(),
        )?,
        counter(
            "switchyard_router_arp_requests_sent_total",
            "ARP requests routers sent for unknown next hops (at most one per next hop a second)",
            node.dp.neighbor_log.arp_sent(),
        )?,
        counter(
            "switchyard_router_neighbor_solicitations_sent_total",
            "Neighbour solicitations routers sent for unknown next hops",
            node.dp.neighbor_log.ns_sent(),
        )?,
        counter(
            "switchyard_router_bindings_learnt_total",
            "IP-to-MAC bindings routers learnt from ARP and neighbour discovery (queued for MAC_Binding)",
            node.dp.neighbor_log.learnt(),
        )?,
        counter(
            "switchyard_router_bindings_lost_total",
            "Learnt bindings lost because the queue to the controller was full",
            node.dp.neighbor_log.lost(),
        )?,
    ] {
        r.register(Box::new(c))?;
    }
    let answers = IntCounterVec::new(
        Opts::new(
            "switchyard_router_answers_total",
            "What routers answered themselves: echo replies, time exceeded, and TCP resets and ICMP unreachables for their own addresses",
        ),
        &["kind"],
    )?;
    for a in dataplane::neighbor_log::Answered::ALL {
        answers
            .with_label_values(&[a.as_str()])
            .inc_by(node.dp.neighbor_log.answered(a));
    }
    r.register(Box::new(answers))?;
    Ok(())
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve<B: Backend>(listener: TcpListener, node: Arc<Node<B>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            let mut req = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            // Read the request head (bounded: 16 KiB).
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&chunk[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req);
            let mut words = line.split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            // RFC 9110 §9.3.2: HEAD is GET without the body (its length
            // still given), which probes and load balancers send.
            let (status, body) = match (method, path) {
                ("GET" | "HEAD", "/metrics" | "/") => match render(&node) {
                    Ok(b) => ("200 OK", b),
                    Err(e) => ("500 Internal Server Error", format!("{e:#}\n")),
                },
                ("GET" | "HEAD", _) => ("404 Not Found", "try /metrics\n".to_string()),
                _ => (
                    "405 Method Not Allowed",
                    "GET or HEAD /metrics\n".to_string(),
                ),
            };
            let allow = if status.starts_with("405") {
                "Allow: GET, HEAD\r\n"
            } else {
                ""
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            if method != "HEAD" {
                let _ = sock.write_all(body.as_bytes()).await;
            }
        });
    }
}
