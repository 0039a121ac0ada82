//! Where the node's ports and packet buffers come from: the kernel
//! (AF_PACKET on interfaces, heap buffers) or DPDK (ethdevs, vhost-user VM
//! ports, mbufs; feature `dpdk`, chosen with `switchyard node --dpdk`).
//!
//! The node, its management socket and `/metrics` are generic over a
//! [`Backend`], so both run the same engine and pipeline code, each on its
//! own buffer type, with no dispatch on the per-packet path. A port is
//! named by the operator (`switchyard port-add NAME`) and typed as in OVS's
//! Interface table ([`PortType`]): `system` (a kernel interface, the
//! default), `dpdk` (devargs), `dpdkvhostuser` and `dpdkvhostuserclient`.

#[cfg(feature = "dpdk")]
pub mod dpdk;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use dataplane::packet::{BufPool, HeapPool, MAX_FRAME};
use dataplane::port::af_packet::{AfPacketConfig, AfPacketPort};
use dataplane::port::Port;
use dataplane::wire::MacAddr;
use serde::{Deserialize, Serialize};

/// What kind of port to open, with its type's options (OVS's
/// `Interface:type` and `options`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PortType {
    /// A kernel interface of that name, attached with AF_PACKET.
    #[default]
    System,
    /// A DPDK ethdev: a PCI address, or a vdev (`net_tap0,iface=tap0`,
    /// `net_af_packet0,iface=eth1`, `net_af_xdp0,iface=eth1`,
    /// `net_pcap0,...`), OVS's `options:dpdk-devargs`.
    Dpdk { devargs: String },
    /// A vhost-user VM port whose socket the switch serves, in the node's
    /// vhost socket directory, named after the port.
    Dpdkvhostuser,
    /// A vhost-user VM port whose socket the VM (QEMU) serves at
    /// `vhost_server_path`; the switch connects and reconnects.
    Dpdkvhostuserclient { vhost_server_path: PathBuf },
}

impl PortType {
    /// From the command line's `--type` and its options.
    pub fn from_args(
        kind: &str,
        devargs: Option<String>,
        vhost_server_path: Option<PathBuf>,
    ) -> Result<PortType> {
        let unused = |what: &str| bail!("--{what} does not apply to --type {kind}");
        let t = match kind {
            "" | "system" => PortType::System,
            "dpdk" => PortType::Dpdk {
                devargs: devargs
                    .clone()
                    .ok_or_else(|| anyhow!("--type dpdk needs --devargs"))?,
            },
            "dpdkvhostuser" => PortType::Dpdkvhostuser,
            "dpdkvhostuserclient" => PortType::Dpdkvhostuserclient {
                vhost_server_path: vhost_server_path.clone().ok_or_else(|| {
                    anyhow!("--type dpdkvhostuserclient needs --vhost-server-path")
                })?,
            },
            other => bail!(
                "unknown port type {other:?} (system, dpdk, dpdkvhostuser, dpdkvhostuserclient)"
            ),
        };
        if devargs.is_some() && !matches!(t, PortType::Dpdk { .. }) {
            return unused("devargs");
        }
        if vhost_server_path.is_some() && !matches!(t, PortType::Dpdkvhostuserclient { .. }) {
            return unused("vhost-server-path");
        }
        Ok(t)
    }

    /// Whether the port needs the DPDK backend.
    pub fn is_dpdk(&self) -> bool {
        !matches!(self, PortType::System)
    }
}

/// `switchyard node --dpdk` settings, named after OVS's
/// `other_config:dpdk-*` keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DpdkOptions {
    /// CPUs the EAL's main thread may run on (`dpdk-lcore-mask`); empty:
    /// every CPU the node may use. Workers are pinned by `--cores`
    /// (`pmd-cpu-mask`).
    pub lcores: Vec<usize>,
    /// Hugepage memory per NUMA socket in MB, e.g. "1024,0"
    /// (`dpdk-socket-mem`).
    pub socket_mem: Option<String>,
    /// Total memory in MB (`-m`; with `no_huge`, default 512).
    pub memory_mb: Option<usize>,
    /// Anonymous memory instead of hugepages (EAL `--no-huge`).
    pub no_huge: bool,
    /// PCI devices to allow (`-a`); none: no PCI bus scan.
    pub pci: Vec<String>,
    /// Further EAL arguments (`dpdk-extra`).
    pub extra: Vec<String>,
    /// Where `dpdkvhostuser` sockets are created (`vhost-sock-dir`).
    pub vhost_sock_dir: PathBuf,
    /// Rx queues of each DPDK port (`options:n_rxq`); RSS spreads flows
    /// over them, one worker polls each.
    pub n_rxq: u16,
}

/// A port to open: its name on the node, type and largest frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    pub kind: PortType,
    /// Largest frame accepted from a kernel interface (default: its MTU).
    pub mtu: Option<usize>,
}

/// An uplink: the port, and the MAC and MTU of its tunnel endpoint.
pub struct UplinkOpened<P: BufPool> {
    pub port: Arc<dyn Port<P>>,
    pub mac: MacAddr,
    pub mtu: u16,
}

/// Where the node's ports and buffers come from.
pub trait Backend: Send + Sync + 'static {
    type Pool: BufPool + 'static;
    /// The buffer pool of worker `worker`.
    fn pool(&self, worker: usize) -> Self::Pool;
    /// Opens a port.
    fn open(&self, spec: &PortSpec) -> Result<Arc<dyn Port<Self::Pool>>>;
    /// Opens the uplink, with its MAC and MTU.
    fn open_uplink(&self, spec: &PortSpec) -> Result<UplinkOpened<Self::Pool>>;
    /// What `show` says about the backend.
    fn describe(&self) -> String;
}

/// Kernel interfaces over AF_PACKET, heap buffers: the default node.
pub struct Kernel;

impl Backend for Kernel {
    type Pool = HeapPool;
    fn pool(&self, _worker: usize) -> HeapPool {
        HeapPool::new(4096, MAX_FRAME)
    }
    fn open(&self, spec: &PortSpec) -> Result<Arc<dyn Port<HeapPool>>> {
        if spec.kind.is_dpdk() {
            bail!(
                "port {} is of a DPDK type: start the node with --dpdk (and a switchyard built with --features dpdk)",
                spec.name
            );
        }
        open_interface(&spec.name, spec.mtu)
    }
    fn open_uplink(&self, spec: &PortSpec) -> Result<UplinkOpened<HeapPool>> {
        let (mac, mtu) = interface_mac_mtu(&spec.name)?;
        Ok(UplinkOpened {
            port: self.open(spec)?,
            mac,
            mtu,
        })
    }
    fn describe(&self) -> String {
        "datapath: kernel interfaces (AF_PACKET)\n".into()
    }
}

/// Attaches kernel interface `iface` with AF_PACKET (any buffer type: the
/// frames are copied into the worker's buffers).
pub fn open_interface<P: BufPool + 'static>(
    iface: &str,
    mtu: Option<usize>,
) -> Result<Arc<dyn Port<P>>> {
    let port = AfPacketPort::open(&AfPacketConfig {
        iface: iface.to_string(),
        mtu,
    })
    .with_context(|| format!("opening interface {iface:?}"))?;
    Ok(Arc::new(port))
}

/// A kernel interface's MAC address and MTU.
pub fn interface_mac_mtu(iface: &str) -> Result<(MacAddr, u16)> {
    let read = |what: &str| {
        let path = format!("/sys/class/net/{iface}/{what}");
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_string())
            .with_context(|| format!("reading {iface}'s {what} ({path})"))
    };
    let mac = read("address")?;
    let mtu = read("mtu")?;
    Ok((
        mac.parse()
            .map_err(|_| anyhow!("{iface}: {mac:?} is not a MAC address"))?,
        mtu.parse()
            .map_err(|_| anyhow!("{iface}: {mtu:?} is not an MTU"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_types_from_the_command_line() {
        assert_eq!(
            PortType::from_args("", None, None).unwrap(),
            PortType::System
        );
        assert_eq!(
            PortType::from_args("dpdk", Some("net_tap0,iface=t0".into()), None).unwrap(),
            PortType::Dpdk {
                devargs: "net_tap0,iface=t0".into()
            }
        );
        assert_eq!(
            PortType::from_args("dpdkvhostuserclient", None, Some("/v/s".into())).unwrap(),
            PortType::Dpdkvhostuserclient {
                vhost_server_path: "/v/s".into()
            }
        );
        assert!(PortType::from_args("dpdk", None, None).is_err());
        assert!(PortType::from_args("dpdkvhostuserclient", None, None).is_err());
        assert!(PortType::from_args("dpdkvhostuser", Some("x".into()), None).is_err());
        assert!(PortType::from_args("tap", None, None).is_err());
    }
}
