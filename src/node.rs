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
use dataplane::acl_log::AclLog;
use dataplane::classifier::{AclConfig, Stateful};
use dataplane::conntrack::Conntrack;
use dataplane::engine::{Engine, EngineConfig};
use dataplane::ids::PortId;
use dataplane::neighbor_log::NeighborLog;
use dataplane::port::Port;
use dataplane::routes::LogicalRouter;
use dataplane::tables::{LogicalSwitch, TablePublisher, Tables, Underlay};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::backend::{Backend, DpdkOptions, Kernel, PortSpec, PortType};
use crate::config::{ConfigFile, LocalPort};
use crate::plugged::{Interface, Plug, PlugFile};
use crate::{ctl, metrics};

/// How to run the engine and where to serve.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub metrics: SocketAddr,
    pub ctl_socket: PathBuf,
    pub workers: usize,
    pub cores: Vec<usize>,
    pub busy_poll: bool,
    /// How rx queues are assigned to workers.
    pub rxq_assign: dataplane::engine::RxqAssign,
    /// Run on DPDK with these settings (None: kernel interfaces).
    pub dpdk: Option<DpdkOptions>,
    /// Connections conntrack holds at most ([`CONNTRACK_LIMIT`] by default).
    pub conntrack_limit: usize,
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

/// A local port: an interface plugged for the logical port it carries,
/// and the dataplane port it is attached as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    /// The dataplane's port, while attached.
    pub id: Option<PortId>,
    pub plug: Plug,
    /// The kernel interface the port was opened on (None for DPDK ports).
    pub opened: Option<Interface>,
    /// Why the port is not attached now (None while it is).
    pub waiting: Option<String>,
}

/// The dataplane side of a node: what the controller programs.
pub struct NodeDataplane<B: Backend> {
    pub engine: Arc<Engine<B::Pool>>,
    pub backend: B,
    pub(crate) ports: Mutex<Vec<Attached>>,
    /// The description of the installed tables.
    installed: Mutex<Option<Installed>>,
    pub(crate) ports_changed: watch::Sender<u64>,
    /// The uplink to the underlay.
    uplink: Option<UplinkPort>,
    /// Physical network name → the local port attached to it.
    providers: Vec<(String, PortId)>,
    /// Where the plugged ports are kept (controller mode).
    pub(crate) plug_file: Option<PlugFile>,
    /// Conntrack, zones and ACL hit counters: kept across table updates.
    pub stateful: Arc<Stateful>,
    /// ACLs the dataplane could not compile at the last installation.
    pub acls_not_installed: std::sync::atomic::AtomicU64,
    /// The routers' next-hop requests and learnt bindings: kept across
    /// table updates, drained by the controller.
    pub neighbor_log: Arc<NeighborLog>,
}

type Installed = (
    Vec<LogicalSwitch>,
    Vec<LogicalRouter>,
    Option<Underlay>,
    AclConfig,
);

/// Connections the node tracks at most by default (1M entries of at most
/// 256 bytes).
pub const CONNTRACK_LIMIT: usize = 1 << 20;
/// Conntrack shards: enough that workers rarely meet in one.
pub const CONNTRACK_SHARDS: usize = 256;
/// How often the node writes the ACL log lines the workers queued (the
/// queue holds 1024; each ACL queues at most 10 a second).
const ACL_LOG_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);

impl<B: Backend> Dataplane for NodeDataplane<B> {
    fn bindings(&self) -> Vec<LocalBinding> {
        self.attached()
            .into_iter()
            .filter_map(|a| {
                Some(LocalBinding {
                    port: a.id?,
                    iface_id: a.plug.iface_id,
                })
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

    fn neighbor_log(&self) -> Arc<NeighborLog> {
        self.neighbor_log.clone()
    }

    fn install(
        &self,
        switches: Vec<LogicalSwitch>,
        routers: Vec<LogicalRouter>,
        underlay: Option<Underlay>,
        acls: AclConfig,
    ) -> Result<bool, String> {
        let mut installed = self.installed.lock().unwrap_or_else(|p| p.into_inner());
        let next = (switches, routers, underlay, acls);
        if installed.as_ref() == Some(&next) {
            return Ok(false);
        }
        let mut tables = Tables::compile_with_underlay(&next.0, next.2.clone())
            .map_err(|e| e.to_string())?
            .with_routers(&next.1);
        tables.routers.log = self.neighbor_log.clone();
        for why in &tables.routers.ignored {
            tracing::warn!("route left out: {why}");
        }
        let errors = tables.install_acls(&next.3, &self.stateful);
        for e in &errors {
            tracing::warn!("{e}");
        }
        self.acls_not_installed
            .store(errors.len() as u64, std::sync::atomic::Ordering::Relaxed);
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

    /// Attaches port `spec` for logical port `iface_id` and keeps the plug.
    pub fn add_port(&self, spec: &PortSpec, iface_id: &str) -> Result<PortId> {
        let interface = spec.name.as_str();
        let mut ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = ports.iter().find(|a| a.plug.interface == interface) {
            bail!(
                "{interface} is already attached (for {:?})",
                a.plug.iface_id
            );
        }
        if let Some(a) = ports.iter().find(|a| a.plug.iface_id == iface_id) {
            bail!(
                "iface-id {iface_id:?} is already carried by {}",
                a.plug.interface
            );
        }
        let plug = Plug {
            interface: interface.to_string(),
            iface_id: iface_id.to_string(),
            port_type: spec.kind.clone(),
            mtu: spec.mtu,
        };
        let attached = self.attach(plug)?;
        let id = attached.id.expect("attached");
        ports.push(attached);
        self.keep(&ports)?;
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
                .position(|a| a.plug.interface == interface)
                .ok_or_else(|| anyhow!("{interface} is not attached"))?;
            let id = ports.remove(i).id;
            self.keep(&ports)?;
            id
        };
        let Some(id) = id else {
            // Waiting for its interface: nothing is attached.
            self.ports_changed.send_modify(|n| *n += 1);
            return Ok(());
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

    /// Whether the installed tables deliver to local port `id` (its
    /// logical port is bound here).
    pub fn installed_uses(&self, id: PortId) -> bool {
        self.installed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flat_map(|(switches, _, _, _)| switches)
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
    /// `switchyard exit [--restart]`: tells the main loop to stop.
    exit: tokio::sync::mpsc::UnboundedSender<bool>,
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

    /// Asks the node to stop; `restart`: keep the chassis in SB.
    pub fn exit(&self, restart: bool) -> Result<()> {
        self.exit
            .send(restart)
            .map_err(|_| anyhow!("the node is already stopping"))
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
            rxq_assign: opts.rxq_assign,
        },
        ports,
        TablePublisher::new(tables),
        |w| backend.pool(w),
    )
    .context("starting the workers")?;
    let (ports_changed, ports_rx) = watch::channel(0u64);
    let (exit_tx, mut exit_rx) = tokio::sync::mpsc::unbounded_channel();
    let attached = local_ports
        .iter()
        .enumerate()
        .map(|(i, l)| Attached {
            id: Some(PortId(i as u16)),
            plug: Plug {
                interface: l.interface.clone(),
                iface_id: l.logical_port.clone(),
                port_type: PortType::System,
                mtu: l.mtu,
            },
            opened: Interface::of(&l.interface),
            waiting: None,
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
            plug_file: controller_cfg
                .is_some()
                .then(|| PlugFile::beside(&opts.ctl_socket)),
            stateful: Stateful::new(Conntrack::new(opts.conntrack_limit, CONNTRACK_SHARDS)),
            acls_not_installed: std::sync::atomic::AtomicU64::new(0),
            neighbor_log: Arc::default(),
        }),
        controller: Mutex::new(None),
        controller_cfg,
        ports_changed: ports_rx,
        exit: exit_tx,
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
        tokio::spawn(write_acl_log(node.dp.stateful.acl_log.clone()));
        if node.managed() {
            node.dp.restore()?;
            let dp = node.dp.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(crate::plugged::WATCH_INTERVAL);
                loop {
                    tick.tick().await;
                    dp.check_interfaces();
                }
            });
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
        let restart = loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break false,
                _ = term.recv() => break false,
                r = exit_rx.recv() => break r.unwrap_or(false),
                _ = hup.recv() => match &programmer {
                    Programmer::Config(path) => match reload(path, &node, &local_ports) {
                        Ok(g) => tracing::info!(generation = g, "tables reloaded"),
                        Err(e) => tracing::error!("reload failed, keeping the current tables: {e:#}"),
                    },
                    Programmer::Controller(..) => tracing::info!("SIGHUP ignored: SB programs this node"),
                },
            }
        };
        let controller = node.controller.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(c) = controller {
            if restart {
                tracing::info!("stopping; the chassis stays in SB for the restart");
            } else {
                match c.unregister(Duration::from_secs(3)).await {
                    Ok(()) => tracing::info!("stopping; the chassis left SB"),
                    Err(e) => tracing::warn!(
                        "stopping; the chassis could not leave SB ({e}): it stays until \
                         `ovn-sbctl chassis-del` or this node's return"
                    ),
                }
            }
        }
        anyhow::Ok(())
    })
}

/// Writes the lines logged ACLs queued (the workers never log), as
/// ovn-controller's `acl_log` module writes them, at INFO whatever the
/// ACL's severity (which the line names), as it does.
async fn write_acl_log(log: Arc<AclLog>) {
    let mut tick = tokio::time::interval(ACL_LOG_PERIOD);
    loop {
        tick.tick().await;
        for line in log.drain() {
            tracing::info!(target: "acl_log", "{line}");
        }
    }
}

fn reload<B: Backend>(path: &Path, node: &Node<B>, ports: &[LocalPort]) -> Result<u64> {
    let (tables, local) = load_tables(path)?;
    if local != ports {
        bail!("the set of local interfaces changed; restart the node to change ports");
    }
    Ok(node.engine().publisher().publish(tables))
}
