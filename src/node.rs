//! The standalone node daemon (`switchyard run`): opens the local ports
//! named by the configuration file, starts the poll-mode workers, and serves
//! `/metrics` and the management socket. SIGHUP re-reads the file and
//! publishes the new tables to the running workers without stopping them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dataplane::engine::{Engine, EngineConfig};
use dataplane::packet::{HeapPool, MAX_FRAME};
use dataplane::port::af_packet::{AfPacketConfig, AfPacketPort};
use dataplane::port::Port;
use dataplane::tables::{TablePublisher, Tables};
use tokio::net::{TcpListener, UnixListener};

use crate::config::{ConfigFile, LocalPort};
use crate::{ctl, metrics};

/// How to run the node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub config: PathBuf,
    pub metrics: SocketAddr,
    pub ctl_socket: PathBuf,
    pub workers: usize,
    pub cores: Vec<usize>,
    pub busy_poll: bool,
}

/// What the management socket and `/metrics` need of a running node.
pub struct Node {
    pub engine: Arc<Engine<HeapPool>>,
    pub local_ports: Vec<LocalPort>,
}

fn open_ports(local: &[LocalPort]) -> Result<Vec<Arc<dyn Port<HeapPool>>>> {
    local
        .iter()
        .map(|l| {
            let p = AfPacketPort::open(&AfPacketConfig {
                iface: l.interface.clone(),
                mtu: l.mtu,
            })
            .with_context(|| {
                format!(
                    "opening interface {:?} for port {:?}",
                    l.interface, l.logical_port
                )
            })?;
            Ok(Arc::new(p) as Arc<dyn Port<HeapPool>>)
        })
        .collect()
}

/// Loads and compiles the configuration file.
pub fn load_tables(path: &Path) -> Result<(Tables, Vec<LocalPort>)> {
    let resolved = ConfigFile::load(path)?.resolve()?;
    let tables = Tables::compile(&resolved.switches).context("compiling the forwarding tables")?;
    Ok((tables, resolved.local_ports))
}

/// Runs the node until SIGINT/SIGTERM.
pub fn run(opts: NodeOptions) -> Result<()> {
    let (tables, local_ports) = load_tables(&opts.config)?;
    let ports = open_ports(&local_ports)?;
    let engine = Engine::start(
        &EngineConfig {
            workers: opts.workers.max(1),
            cores: opts.cores.clone(),
            idle_sleep: (!opts.busy_poll).then(|| Duration::from_micros(50)),
            pool_buffers: 4096,
            flow_cache_entries: 8192,
        },
        ports,
        TablePublisher::new(tables),
        |_| HeapPool::new(4096, MAX_FRAME),
    )
    .context("starting the workers")?;
    let node = Arc::new(Node {
        engine: Arc::new(engine),
        local_ports,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(opts.metrics)
            .await
            .with_context(|| format!("binding /metrics on {}", opts.metrics))?;
        tokio::spawn(metrics::serve(listener, node.engine.clone()));
        let _ = std::fs::remove_file(&opts.ctl_socket);
        if let Some(dir) = opts.ctl_socket.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        let ctl_listener = UnixListener::bind(&opts.ctl_socket).with_context(|| {
            format!(
                "binding the management socket {}",
                opts.ctl_socket.display()
            )
        })?;
        tokio::spawn(ctl::serve(ctl_listener, node.clone()));
        tracing::info!(
            ports = node.local_ports.len(),
            metrics = %opts.metrics,
            ctl = %opts.ctl_socket.display(),
            "switchyard node running"
        );
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hup.recv() => match reload(&opts.config, &node) {
                    Ok(g) => tracing::info!(generation = g, "tables reloaded"),
                    Err(e) => tracing::error!("reload failed, keeping the current tables: {e:#}"),
                },
            }
        }
        let _ = std::fs::remove_file(&opts.ctl_socket);
        anyhow::Ok(())
    })
}

fn reload(path: &Path, node: &Node) -> Result<u64> {
    let (tables, local) = load_tables(path)?;
    if local != node.local_ports {
        bail!("the set of local interfaces changed; restart the node to change ports");
    }
    Ok(node.engine.publisher().publish(tables))
}
