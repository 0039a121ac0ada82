//! The DPDK backend (feature `dpdk`, `switchyard node --dpdk`): the EAL
//! initialised once from [`DpdkOptions`], mbufs as packet buffers, and
//! ports that are DPDK ethdevs (by devargs), vhost-user VM ports in either
//! mode, or kernel interfaces over AF_PACKET copied into mbufs.
//!
//! Every DPDK port gets one tx queue per worker, so workers never share a
//! queue, where the device has that many (a `net_af_xdp` on a one-queue
//! veth, or a vhost-user VM, has fewer: then the workers share them, see
//! `DpdkPortConfig::share_tx`), and `n_rxq` rx queues spread over the
//! workers by RSS. Devices the
//! node hot-plugged are detached when their port is deleted, so the same
//! port can be added again.

use std::sync::Arc;

use anyhow::{Context, Result};
use dataplane::port::dpdk::{
    DpdkPort, DpdkPortConfig, Eal, EalConfig, EalMemory, MbufPool, VhostMode, VhostUser,
};
use dataplane::port::Port;
use dataplane::wire::MacAddr;

use super::{open_interface, Backend, DpdkOptions, PortSpec, PortType, UplinkOpened};

/// The node's DPDK side.
pub struct Dpdk {
    eal: &'static Eal,
    pool: MbufPool,
    opts: DpdkOptions,
    /// Tx queues per port: one per worker.
    workers: u16,
}

impl DpdkOptions {
    /// The EAL configuration these settings ask for.
    pub fn eal_config(&self) -> EalConfig {
        let memory = if self.no_huge {
            EalMemory::NoHuge {
                megabytes: self.memory_mb.unwrap_or(512),
            }
        } else {
            EalMemory::Hugepages {
                megabytes: self.memory_mb,
            }
        };
        let mut extra_args: Vec<String> = self
            .socket_mem
            .iter()
            .map(|m| format!("--socket-mem={m}"))
            .collect();
        extra_args.extend(self.extra.iter().cloned());
        EalConfig {
            main_cpus: self.lcores.clone(),
            memory,
            pci: self.pci.clone(),
            extra_args,
            ..EalConfig::default()
        }
    }
}

impl Dpdk {
    /// Initialises the EAL (once per process) for a node of `workers`
    /// workers.
    pub fn init(opts: &DpdkOptions, workers: usize) -> Result<Dpdk> {
        let eal = Eal::init(&opts.eal_config()).context("initialising DPDK")?;
        let pool = eal.mbuf_pool(0).context("creating the mbuf pool")?;
        std::fs::create_dir_all(&opts.vhost_sock_dir).with_context(|| {
            format!(
                "creating the vhost socket directory {}",
                opts.vhost_sock_dir.display()
            )
        })?;
        tracing::info!(args = ?eal.args(), "DPDK EAL initialised");
        Ok(Dpdk {
            eal,
            pool,
            opts: opts.clone(),
            workers: u16::try_from(workers.max(1)).unwrap_or(u16::MAX),
        })
    }

    fn port_config(&self) -> DpdkPortConfig {
        DpdkPortConfig {
            rx_queues: self.opts.n_rxq.clamp(1, self.workers),
            tx_queues: self.workers,
            detach_on_close: true,
            share_tx: true,
            ..DpdkPortConfig::default()
        }
    }

    /// Opens a DPDK-typed port (not `system`).
    fn open_dpdk(&self, spec: &PortSpec) -> Result<DpdkPort> {
        let cfg = self.port_config();
        let vhost = |socket, mode| VhostUser {
            name: spec.name.clone(),
            socket,
            mode,
            queues: cfg.rx_queues,
        };
        let port = match &spec.kind {
            PortType::System => unreachable!("kernel interfaces are not DPDK ports"),
            PortType::Dpdk { devargs } => DpdkPort::open(self.eal, devargs, &cfg),
            PortType::Dpdkvhostuser => {
                vhost(self.opts.vhost_sock_dir.join(&spec.name), VhostMode::Server)
                    .open(self.eal, &cfg)
            }
            PortType::Dpdkvhostuserclient { vhost_server_path } => {
                vhost(vhost_server_path.clone(), VhostMode::Client).open(self.eal, &cfg)
            }
        };
        port.with_context(|| format!("opening DPDK port {}", spec.name))
    }
}

impl Backend for Dpdk {
    type Pool = MbufPool;
    fn pool(&self, _worker: usize) -> MbufPool {
        self.pool.clone()
    }
    fn open(&self, spec: &PortSpec) -> Result<Arc<dyn Port<MbufPool>>> {
        Ok(match spec.kind {
            PortType::System => open_interface(&spec.name, spec.mtu)?,
            _ => Arc::new(self.open_dpdk(spec)?),
        })
    }
    fn open_uplink(&self, spec: &PortSpec) -> Result<UplinkOpened<MbufPool>> {
        if spec.kind == PortType::System {
            let (mac, mtu) = super::interface_mac_mtu(&spec.name)?;
            return Ok(UplinkOpened {
                port: self.open(spec)?,
                mac,
                mtu,
            });
        }
        let port = self.open_dpdk(spec)?;
        let mac = MacAddr(port.mac()?);
        let mtu = port.mtu()?;
        Ok(UplinkOpened {
            port: Arc::new(port),
            mac,
            mtu,
        })
    }
    fn describe(&self) -> String {
        format!("datapath: DPDK, EAL {}\n", self.eal.args().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovs_style_settings_become_eal_arguments() {
        let o = DpdkOptions {
            lcores: vec![0],
            socket_mem: Some("1024,0".into()),
            pci: vec!["0000:01:00.0".into()],
            extra: vec!["--vdev=net_null9".into()],
            ..DpdkOptions::default()
        };
        let c = EalConfig {
            log_level: None,
            ..o.eal_config()
        };
        assert_eq!(
            c.args(),
            [
                "--lcores=0@(0)",
                "--in-memory",
                "-a0000:01:00.0",
                "--socket-mem=1024,0",
                "--vdev=net_null9"
            ]
        );
        let n = DpdkOptions {
            lcores: vec![1],
            no_huge: true,
            memory_mb: Some(256),
            ..DpdkOptions::default()
        };
        let args = n.eal_config().args();
        assert!(args.starts_with(&["--lcores=0@(1)".into(), "--no-huge".into(), "-m256".into()]));
        assert!(args.contains(&"--no-pci".into()));
    }
}
