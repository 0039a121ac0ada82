//! The node's command-line settings (`switchyard node` and `run`): the
//! engine, DPDK after OVS's `other_config:dpdk-*` keys, and the checks
//! that refuse at start what can never work (a tunnel type OVN lacks, no
//! workers, a core this process may not run on).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{backend, node, DEFAULT_CTL};

/// The node's dataplane, `/metrics` and management socket.
#[derive(clap::Args)]
pub(crate) struct EngineArgs {
    /// Where to serve Prometheus /metrics.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics: SocketAddr,
    /// The management socket (show, trace, port-add, ...).
    #[arg(long, default_value = DEFAULT_CTL)]
    ctl: PathBuf,
    /// Poll-mode worker threads (at least 1).
    #[arg(long, default_value_t = 1, value_parser = parse_workers)]
    workers: usize,
    /// Cores to pin workers to, e.g. 1 or 0,1 (cores this process may run
    /// on).
    #[arg(long, value_delimiter = ',', value_parser = parse_core)]
    cores: Vec<usize>,
    /// Never sleep when idle (a PMD on a dedicated core).
    #[arg(long)]
    busy_poll: bool,
    /// How rx queues are assigned to workers, again whenever a port is
    /// added or removed (OVS's other_config:pmd-rxq-assign): `cycles`
    /// sorts them by measured processing cycles (the last minute) and deals
    /// them out in an up-down walk over the workers; `group` gives each,
    /// busiest first, to the least loaded worker; `roundrobin` ignores load.
    #[arg(long, default_value_t = dataplane::engine::RxqAssign::Cycles)]
    pmd_rxq_assign: dataplane::engine::RxqAssign,
    /// Connections conntrack tracks at most; new ones beyond it are
    /// dropped as `ct_full` (OVS: `ovs-appctl dpctl/ct-set-maxconns`).
    #[arg(long, default_value_t = node::CONNTRACK_LIMIT)]
    conntrack_limit: usize,
    #[command(flatten)]
    dpdk: DpdkArgs,
}

/// DPDK settings, after OVS's `other_config:dpdk-*` keys.
#[derive(clap::Args)]
struct DpdkArgs {
    /// Run the dataplane on DPDK (OVS's dpdk-init=true): ports of types
    /// dpdk, dpdkvhostuser and dpdkvhostuserclient, mbufs for every port.
    /// Needs a switchyard built with --features dpdk.
    #[arg(long)]
    dpdk: bool,
    /// CPUs for the EAL's main thread, e.g. 0 or 0,1 (dpdk-lcore-mask;
    /// workers go on --cores, as pmd-cpu-mask). Default: any.
    #[arg(long, value_delimiter = ',', requires = "dpdk")]
    dpdk_lcores: Vec<usize>,
    /// Hugepage memory per NUMA socket in MB, e.g. 1024 or 1024,1024
    /// (dpdk-socket-mem).
    #[arg(long, requires = "dpdk", conflicts_with_all = ["dpdk_no_huge", "dpdk_mem"])]
    dpdk_socket_mem: Option<String>,
    /// Total DPDK memory in MB (EAL -m; 512 with --dpdk-no-huge).
    #[arg(long, requires = "dpdk")]
    dpdk_mem: Option<usize>,
    /// Anonymous memory instead of hugepages (EAL --no-huge): for tests and
    /// small setups; vhost-user still works (the VM side needs hugepages).
    #[arg(long, requires = "dpdk")]
    dpdk_no_huge: bool,
    /// A PCI device to allow, e.g. 0000:01:00.0 (repeatable; EAL -a).
    /// None: no PCI bus scan.
    #[arg(long = "dpdk-pci", requires = "dpdk")]
    dpdk_pci: Vec<String>,
    /// Further EAL arguments, space separated (dpdk-extra).
    #[arg(long, requires = "dpdk", allow_hyphen_values = true)]
    dpdk_extra: Option<String>,
    /// Where dpdkvhostuser sockets are created (vhost-sock-dir; default:
    /// the management socket's directory).
    #[arg(long, requires = "dpdk")]
    vhost_sock_dir: Option<PathBuf>,
    /// Rx queues per DPDK port (options:n_rxq), spread over the workers
    /// by RSS; at most one per worker.
    #[arg(long, default_value_t = 1, requires = "dpdk")]
    dpdk_n_rxq: u16,
}

impl EngineArgs {
    pub(crate) fn options(self) -> node::NodeOptions {
        let d = self.dpdk;
        let dpdk = d.dpdk.then(|| backend::DpdkOptions {
            lcores: d.dpdk_lcores,
            socket_mem: d.dpdk_socket_mem,
            memory_mb: d.dpdk_mem,
            no_huge: d.dpdk_no_huge,
            pci: d.dpdk_pci,
            extra: d
                .dpdk_extra
                .iter()
                .flat_map(|e| e.split_whitespace())
                .map(String::from)
                .collect(),
            vhost_sock_dir: d.vhost_sock_dir.unwrap_or_else(|| {
                self.ctl
                    .parent()
                    .map_or_else(|| PathBuf::from("."), PathBuf::from)
            }),
            n_rxq: d.dpdk_n_rxq,
        });
        node::NodeOptions {
            metrics: self.metrics,
            ctl_socket: self.ctl,
            workers: self.workers,
            cores: self.cores,
            busy_poll: self.busy_poll,
            rxq_assign: self.pmd_rxq_assign,
            dpdk,
            conntrack_limit: self.conntrack_limit,
        }
    }
}

/// The tunnel types a chassis can offer: OVN 23.03's are geneve, vxlan and
/// stt; switchyard's dataplane speaks the first two.
pub(crate) fn parse_encap_type(s: &str) -> Result<String, String> {
    match s {
        "geneve" | "vxlan" => Ok(s.to_string()),
        "stt" => Err("stt is not supported: switchyard tunnels with geneve or vxlan".into()),
        _ => Err(format!(
            "{s:?} is not a tunnel type OVN uses: geneve or vxlan (OVN 23.03 has no gre)"
        )),
    }
}

pub(crate) fn parse_workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("a node needs at least one worker".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a number of workers")),
    }
}

/// A core this process may run on (its CPU affinity set, as `taskset`
/// shows it), so a worker is never pinned to a core that is not there.
pub(crate) fn parse_core(s: &str) -> Result<usize, String> {
    let core: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a core number"))?;
    let ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    if ids.is_empty() || ids.contains(&core) {
        Ok(core)
    } else {
        let list: Vec<String> = ids.iter().map(usize::to_string).collect();
        Err(format!(
            "core {core} is not one this process may run on (cores {})",
            list.join(",")
        ))
    }
}

pub(crate) fn parse_mapping(s: &str) -> Result<(String, String), String> {
    let (n, i) = s.split_once(':').ok_or("expected NETWORK:IFACE")?;
    Ok((n.to_string(), i.to_string()))
}

pub(crate) fn parse_chassis_mac(s: &str) -> Result<(String, dataplane::wire::MacAddr), String> {
    let (n, mac) = s.split_once(':').ok_or("expected NETWORK:MAC")?;
    Ok((
        n.to_string(),
        mac.parse()
            .map_err(|_| format!("{mac:?} is not a MAC address"))?,
    ))
}

pub(crate) fn parse_neighbor(
    s: &str,
) -> Result<(std::net::IpAddr, dataplane::wire::MacAddr), String> {
    let (ip, mac) = s.split_once('=').ok_or("expected IP=MAC")?;
    Ok((
        ip.parse()
            .map_err(|_| format!("{ip:?} is not an IP address"))?,
        mac.parse()
            .map_err(|_| format!("{mac:?} is not a MAC address"))?,
    ))
}
