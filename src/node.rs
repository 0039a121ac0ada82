//! The node daemon: the dataplane's workers, `/metrics` and the management
//! socket, programmed either by the chassis controller from SB
//! (`switchyard node`) or from a standalone configuration file
//! (`switchyard run`, where SIGHUP re-reads the file and publishes the new
//! tables to the running workers without stopping them).
//!
//! Under the controller, local ports are plugged and unplugged at run time
//! (`switchyard port-add IFACE --iface-id LPORT`, like `ovs-vsctl add-port`
//! with `external_ids:iface-id`); the controller claims their bindings. The
//! tables it installs are remembered here, on the dataplane side, so a
//! restarted controller that computes the same tables changes nothing.
//!
//! Ports and buffers come from a [`Backend`]: kernel interfaces by default,
//! DPDK with `--dpdk` (ethdevs and vhost-user VM ports, typed as OVS types
//! them: `port-add NAME --type dpdkvhostuserclient --vhost-server-path P`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chassis::{Controller, ControllerConfig, Dataplane, LocalBinding, UplinkPort};
use dataplane::engine::{Engine, EngineConfig};
use dataplane::packet::PortId;
use dataplane::port::Port;
use dataplane::routes::LogicalRouter;
use dataplane::tables::{LogicalSwitch, TablePublisher, Tables, Underlay};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::backend::{Backend, DpdkOptions, Kernel, PortSpec, PortType};
use crate::config::{ConfigFile, LocalPort};
use crate::{ctl, metrics};

/// How to run the engine and where to serve.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub metrics: SocketAddr,
    pub ctl_socket: PathBuf,
    pub workers: usize,
    pub cores: Vec<usize>,
    pub busy_poll: bool,
    /// Run on DPDK with these settings (None: kernel interfaces).
    pub dpdk: Option<DpdkOptions>,
}

/// Who programs the node.
pub enum Programmer {
    /// A standalone configuration file.
    Config(PathBuf),
    /// The chassis controller, from SB.
    Controller(ControllerConfig, Box<Interfaces>),
}

/// The node's ports besides VM ports.
#[derive(Clone, Debug, Default)]
pub struct Interfaces {
    /// Facing the underlay (tunnels to other chassis): a kernel interface,
    /// or a DPDK port of that name.
    pub uplink: Option<PortSpec>,
    /// Physical network name → interface (provider networks).
    pub bridge_mappings: Vec<(String, String)>,
}

/// A local port: an interface attached to the dataplane and the logical
/// port it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    pub id: PortId,
    pub interface: String,
    pub iface_id: String,
    pub kind: PortType,
}

/// The dataplane side of a node: what the controller programs.
pub struct NodeDataplane<B: Backend> {
    pub engine: Arc<Engine<B::Pool>>,
    pub backend: B,
    ports: Mutex<Vec<Attached>>,
    /// The description of the installed tables.
    installed: Mutex<Option<Installed>>,
    ports_changed: watch::Sender<u64>,
    /// The uplink to the underlay.
    uplink: Option<UplinkPort>,
    /// Physical network name → the local port attached to it.
    providers: Vec<(String, PortId)>,
}

type Installed = (Vec<LogicalSwitch>, Vec<LogicalRouter>, Option<Underlay>);

impl<B: Backend> Dataplane for NodeDataplane<B> {
    fn bindings(&self) -> Vec<LocalBinding> {
        self.attached()
            .into_iter()
            .map(|a| LocalBinding {
                iface_id: a.iface_id,
                port: a.id,
            })
            .collect()
    }

    fn uplink(&self) -> Option<UplinkPort> {
        self.uplink
    }

    fn provider_port(&self, network: &str) -> Option<PortId> {
        self.providers
            .iter()
            .find(|(n, _)| n == network)
            .map(|(_, p)| *p)
    }

    fn install(
        &self,
        switches: Vec<LogicalSwitch>,
        routers: Vec<LogicalRouter>,
        underlay: Option<Underlay>,
    ) -> Result<bool, String> {
        let mut installed = self.installed.lock().unwrap_or_else(|p| p.into_inner());
        let next = (switches, routers, underlay);
        if installed.as_ref() == Some(&next) {
            return Ok(false);
        }
        let tables = Tables::compile_with_underlay(&next.0, next.2.clone())
            .map_err(|e| e.to_string())?
            .with_routers(&next.1);
        for why in &tables.routers.ignored {
            tracing::warn!("route left out: {why}");
        }
        let g = self.engine.publisher().publish(tables);
        if !self.engine.wait_for_tables(g, Duration::from_secs(2)) {
            return Err("the workers did not take the new tables within 2 s".into());
        }
        // The workers ask for unresolved tunnel endpoints on new tables:
        // give the answers a moment, so that traffic flows once the CMS is
        // told the change is realised (a chassis that does not answer is
        // reported, and asked again when traffic for it comes).
        if let Some(u) = &next.2 {
            let deadline = Instant::now() + Duration::from_secs(1);
            let neighbors = self.engine.neighbors();
            let unresolved = || {
                u.chassis
                    .iter()
                    .filter(|c| c.mac.is_none() && neighbors.get(c.ip).is_none())
                    .count()
            };
            while unresolved() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if unresolved() > 0 {
                tracing::warn!(
                    "{} tunnel endpoint(s) did not answer ARP or neighbour solicitation",
                    unresolved()
                );
            }
        }
        *installed = Some(next);
        Ok(true)
    }
}

impl<B: Backend> NodeDataplane<B> {
    /// The attached local ports.
    pub fn attached(&self) -> Vec<Attached> {
        self.ports.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Attaches port `spec` for logical port `iface_id`.
    pub fn add_port(&self, spec: &PortSpec, iface_id: &str) -> Result<PortId> {
        let interface = spec.name.as_str();
        let mut ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = ports.iter().find(|a| a.interface == interface) {
            bail!("{interface} is already attached (for {:?})", a.iface_id);
        }
        if let Some(a) = ports.iter().find(|a| a.iface_id == iface_id) {
            bail!(
                "iface-id {iface_id:?} is already carried by {}",
                a.interface
            );
        }
        let id = self.engine.add_port(self.backend.open(spec)?)?;
        ports.push(Attached {
            id,
            interface: interface.to_string(),
            iface_id: iface_id.to_string(),
            kind: spec.kind.clone(),
        });
        drop(ports);
        self.ports_changed.send_modify(|n| *n += 1);
        Ok(id)
    }

    /// Detaches `interface`: the controller releases its binding and
    /// installs tables without it; then the port is closed.
    pub async fn del_port(&self, interface: &str) -> Result<()> {
        let id = {
            let mut ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
            let i = ports
                .iter()
                .position(|a| a.interface == interface)
                .ok_or_else(|| anyhow!("{interface} is not attached"))?;
            ports.remove(i).id
        };
        self.ports_changed.send_modify(|n| *n += 1);
        // Wait (briefly) for tables that no longer send to the port, so its
        // id is not reused while a stale table still names it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && self.installed_uses(id) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.engine.remove_port(id);
        Ok(())
    }

    fn installed_uses(&self, id: PortId) -> bool {
        self.installed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flat_map(|(switches, _, _)| switches)
            .flat_map(|s| &s.ports)
            .any(|p| p.local_port == Some(id))
    }
}

/// What the management socket and `/metrics` need of a running node.
pub struct Node<B: Backend> {
    pub dp: Arc<NodeDataplane<B>>,
    /// The chassis controller, when SB programs the node.
    controller: Mutex<Option<Controller>>,
    controller_cfg: Option<ControllerConfig>,
    ports_changed: watch::Receiver<u64>,
}

impl<B: Backend> Node<B> {
    pub fn engine(&self) -> &Arc<Engine<B::Pool>> {
        &self.dp.engine
    }

    /// Whether ports are plugged at run time (controller mode).
    pub fn managed(&self) -> bool {
        self.controller_cfg.is_some()
    }

    /// The running controller's status, if SB programs the node.
    pub fn controller_status(&self) -> Option<Arc<chassis::Status>> {
        self.controller
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.status.clone())
    }

    /// (Re)starts the chassis controller with empty state; the dataplane
    /// keeps forwarding with its tables meanwhile. Call inside the runtime.
    pub fn restart_controller(&self) -> Result<()> {
        let cfg = self
            .controller_cfg
            .clone()
            .ok_or_else(|| anyhow!("this node runs from a configuration file, not a controller"))?;
        let mut c = self.controller.lock().unwrap_or_else(|p| p.into_inner());
        *c = None; // Stop the old one (and its SB session) first.
        *c = Some(Controller::start(
            cfg,
            self.dp.clone(),
            self.ports_changed.clone(),
        )?);
        Ok(())
    }
}

fn system(name: &str, mtu: Option<usize>) -> PortSpec {
    PortSpec {
        name: name.to_string(),
        kind: PortType::System,
        mtu,
    }
}

fn open_ports<B: Backend>(backend: &B, local: &[LocalPort]) -> Result<Vec<Arc<dyn Port<B::Pool>>>> {
    local
        .iter()
        .map(|l| {
            backend
                .open(&system(&l.interface, l.mtu))
                .with_context(|| format!("for port {:?}", l.logical_port))
        })
        .collect()
}

/// Loads and compiles the configuration file.
pub fn load_tables(path: &Path) -> Result<(Tables, Vec<LocalPort>)> {
    let resolved = ConfigFile::load(path)?.resolve()?;
    let tables = Tables::compile(&resolved.switches).context("compiling the forwarding tables")?;
    Ok((tables, resolved.local_ports))
}

/// Runs the node until SIGINT/SIGTERM, on DPDK if `opts.dpdk` says so.
pub fn run(opts: NodeOptions, programmer: Programmer) -> Result<()> {
    match opts.dpdk.clone() {
        None => run_on(opts, programmer, || Ok(Kernel)),
        #[cfg(feature = "dpdk")]
        Some(d) => {
            let workers = opts.workers;
            run_on(opts, programmer, move || {
                crate::backend::dpdk::Dpdk::init(&d, workers)
            })
        }
        #[cfg(not(feature = "dpdk"))]
        Some(_) => bail!(
            "this switchyard was built without DPDK: build it with `cargo build --release --features dpdk`"
        ),
    }
}

fn run_on<B: Backend>(
    opts: NodeOptions,
    programmer: Programmer,
    backend: impl FnOnce() -> Result<B>,
) -> Result<()> {
    // The management socket comes first: a second node started on the same socket must stop
    // before it attaches (and so shares) the first one's interfaces. The guard removes the
    // socket's file when the node stops.
    if let Some(dir) = opts.ctl_socket.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let (ctl_socket, _ctl_file) = ovsdb::server::bind_unix_socket(&opts.ctl_socket)
        .context("binding the management socket")?;
    let (tables, local_ports, controller_cfg) = match &programmer {
        Programmer::Config(path) => {
            let (t, l) = load_tables(path)?;
            (t, l, None)
        }
        Programmer::Controller(cfg, _) => (Tables::default(), Vec::new(), Some(cfg.clone())),
    };
    // After the management socket: a second node stops before it
    // initialises DPDK or opens a device.
    let backend = backend()?;
    let ports = open_ports(&backend, &local_ports)?;
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
        |w| backend.pool(w),
    )
    .context("starting the workers")?;
    let (ports_changed, ports_rx) = watch::channel(0u64);
    let attached = local_ports
        .iter()
        .enumerate()
        .map(|(i, l)| Attached {
            id: i as PortId,
            interface: l.interface.clone(),
            iface_id: l.logical_port.clone(),
            kind: PortType::System,
        })
        .collect();
    let mut providers = Vec::new();
    if let Programmer::Controller(_, ifs) = &programmer {
        for (network, iface) in &ifs.bridge_mappings {
            providers.push((
                network.clone(),
                engine.add_port(backend.open(&system(iface, None))?)?,
            ));
        }
    }
    let uplink = match &programmer {
        Programmer::Controller(_, ifs) if ifs.uplink.is_some() => {
            let spec = ifs.uplink.as_ref().expect("checked by the guard");
            let u = backend
                .open_uplink(spec)
                .with_context(|| format!("opening the uplink {}", spec.name))?;
            Some(UplinkPort {
                port: engine.add_port(u.port)?,
                mac: u.mac,
                mtu: u.mtu,
            })
        }
        _ => None,
    };
    let node = Arc::new(Node {
        dp: Arc::new(NodeDataplane {
            engine: Arc::new(engine),
            backend,
            ports: Mutex::new(attached),
            installed: Mutex::new(None),
            ports_changed,
            uplink,
            providers,
        }),
        controller: Mutex::new(None),
        controller_cfg,
        ports_changed: ports_rx,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(opts.metrics)
            .await
            .with_context(|| format!("binding /metrics on {}", opts.metrics))?;
        tokio::spawn(metrics::serve(listener, node.clone()));
        let ctl_listener = UnixListener::from_std(ctl_socket)
            .context("serving the management socket")?;
        tokio::spawn(ctl::serve(ctl_listener, node.clone()));
        if node.managed() {
            node.restart_controller()?;
        }
        tracing::info!(
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
                _ = hup.recv() => match &programmer {
                    Programmer::Config(path) => match reload(path, &node, &local_ports) {
                        Ok(g) => tracing::info!(generation = g, "tables reloaded"),
                        Err(e) => tracing::error!("reload failed, keeping the current tables: {e:#}"),
                    },
                    Programmer::Controller(..) => tracing::info!("SIGHUP ignored: SB programs this node"),
                },
            }
        }
        drop(node.controller.lock().unwrap_or_else(|p| p.into_inner()).take());
        anyhow::Ok(())
    })
}

fn reload<B: Backend>(path: &Path, node: &Node<B>, ports: &[LocalPort]) -> Result<u64> {
    let (tables, local) = load_tables(path)?;
    if local != ports {
        bail!("the set of local interfaces changed; restart the node to change ports");
    }
    Ok(node.engine().publisher().publish(tables))
}
