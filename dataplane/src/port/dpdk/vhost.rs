//! vhost-user VM ports: DPDK's `net_vhost` PMD as a [`DpdkPort`], in the
//! two modes OVS offers and Nova/os-vif ask for.
//!
//! - [`VhostMode::Server`] (OVS `dpdkvhostuser`): the switch creates the
//!   socket and the VM (QEMU, or a `virtio_user` process) connects; a VM
//!   that restarts connects again to the same socket.
//! - [`VhostMode::Client`] (OVS `dpdkvhostuserclient`, what os-vif plugs):
//!   the VM serves the socket at `vhost-server-path` and the switch
//!   connects. DPDK's vhost library retries the connection (once a second)
//!   whenever it is down, so the port comes back by itself when the VM
//!   restarts, and can be added before the VM starts.
//!
//! Either way the link is up only while a VM is attached; frames sent to a
//! port without a VM are counted as `tx_dropped`. The port is detached on
//! close, which removes a server socket and stops reconnecting.
//!
//! A VM enables only the queue pairs its driver uses (one, for a plain
//! virtio-net device), so the port offers as many queue pairs as it has rx
//! queues, and workers beyond that share its tx queues, each burst under
//! the queue's lock ([`DpdkPortConfig::share_tx`]): a worker transmitting
//! on a queue the VM never enabled would lose everything it sends.

use std::path::{Path, PathBuf};

use super::{DpdkError, DpdkPort, DpdkPortConfig, Eal};

/// Who serves the vhost-user socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VhostMode {
    /// The switch (`dpdkvhostuser`).
    Server,
    /// The VM (`dpdkvhostuserclient`).
    Client,
}

/// A vhost-user port to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostUser {
    /// The port's name, unique on the node (the ethdev is `net_vhost_NAME`).
    pub name: String,
    pub socket: PathBuf,
    pub mode: VhostMode,
    /// Queue pairs the device offers (at least the rx queues asked for).
    pub queues: u16,
}

impl VhostUser {
    /// The `net_vhost` devargs.
    pub fn devargs(&self) -> Result<String, DpdkError> {
        let bad = |what: &str| DpdkError::BadArgument(format!("{what} for vhost-user port"));
        if self.name.is_empty() || self.name.contains([',', '=', ' ']) {
            return Err(bad(&format!("name {:?}", self.name)));
        }
        let socket = path_arg(&self.socket).ok_or_else(|| bad("socket path"))?;
        let mut a = format!(
            "net_vhost_{},iface={socket},queues={}",
            self.name,
            self.queues.max(1)
        );
        if self.mode == VhostMode::Client {
            a += ",client=1";
        }
        Ok(a)
    }

    /// Creates the device and starts the port with `config`'s rx queues and
    /// as many tx queues (shared if `config` asks for more), detached on
    /// close.
    pub fn open(&self, eal: &'static Eal, config: &DpdkPortConfig) -> Result<DpdkPort, DpdkError> {
        let queues = self.queues.max(config.rx_queues).max(1);
        let me = VhostUser {
            queues,
            ..self.clone()
        };
        DpdkPort::open(
            eal,
            &me.devargs()?,
            &DpdkPortConfig {
                share_tx: true,
                detach_on_close: true,
                kind: match self.mode {
                    VhostMode::Server => "dpdkvhostuser",
                    VhostMode::Client => "dpdkvhostuserclient",
                },
                ..config.clone()
            },
        )
    }
}

/// A path as a devargs value (which cannot hold ',').
fn path_arg(p: &Path) -> Option<&str> {
    p.to_str().filter(|s| !s.is_empty() && !s.contains(','))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devargs_of_both_modes() {
        let v = VhostUser {
            name: "vm1".into(),
            socket: "/run/switchyard/vm1".into(),
            mode: VhostMode::Server,
            queues: 2,
        };
        assert_eq!(
            v.devargs().unwrap(),
            "net_vhost_vm1,iface=/run/switchyard/vm1,queues=2"
        );
        let c = VhostUser {
            mode: VhostMode::Client,
            socket: "/var/lib/vhost/sock0".into(),
            ..v.clone()
        };
        assert_eq!(
            c.devargs().unwrap(),
            "net_vhost_vm1,iface=/var/lib/vhost/sock0,queues=2,client=1"
        );
        for bad in [
            VhostUser {
                name: "a,b".into(),
                ..v.clone()
            },
            VhostUser {
                socket: "/tmp/a,b".into(),
                ..v.clone()
            },
        ] {
            assert!(bad.devargs().is_err(), "{bad:?}");
        }
    }
}
