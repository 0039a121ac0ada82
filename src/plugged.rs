//! The ports an operator plugged (`switchyard port-add`), kept and watched
//! so that no plug is lost without a word.
//!
//! - **Kept across restarts.** Until the compute node's local database
//!   drives plugging, as OVS's `conf.db` does for ovn-controller, the node
//!   keeps its plugged ports in a file beside its management socket
//!   (`switchyard.ctl` → `switchyard.ports.json`), rewritten atomically on
//!   every `port-add` and `port-del`, and re-attaches them at start.
//! - **Re-attached by name.** A VM restart deletes its tap and creates it
//!   again under the same name; an AF_PACKET socket stays bound to the old
//!   interface index and would receive nothing more. As OVS re-opens an
//!   Interface whose device reappears, a watcher compares every kernel
//!   port's interface index (and MTU: frames are sized by it) with the one
//!   it was opened on, four times a second: a port whose interface is gone
//!   is detached and shown as waiting; one whose interface is back, or
//!   changed MTU, is opened again. The controller sees the binding go and
//!   come back, so `up` in NB tells the truth meanwhile.
//!
//! DPDK ports are not watched: a vhost-user port reconnects by itself and
//! an ethdev does not vanish under a name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, PortSpec, PortType};
use crate::node::{Attached, NodeDataplane};

/// How often kernel ports' interfaces are looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// One plugged port as the operator gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plug {
    pub interface: String,
    pub iface_id: String,
    #[serde(default)]
    pub port_type: PortType,
    #[serde(default)]
    pub mtu: Option<usize>,
}

impl Plug {
    pub fn spec(&self) -> PortSpec {
        PortSpec {
            name: self.interface.clone(),
            kind: self.port_type.clone(),
            mtu: self.mtu,
        }
    }
}

/// The file that keeps the plugged ports.
#[derive(Clone, Debug)]
pub struct PlugFile(PathBuf);

impl PlugFile {
    /// The file beside management socket `ctl`.
    pub fn beside(ctl: &Path) -> PlugFile {
        PlugFile(ctl.with_extension("ports.json"))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The kept ports (none if there is no file yet).
    pub fn load(&self) -> Result<Vec<Plug>> {
        match std::fs::read_to_string(&self.0) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("reading the plugged ports in {}", self.0.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.0.display())),
        }
    }

    /// Replaces the kept ports with `plugs`: a new file renamed over the
    /// old one, so a crash leaves the old list or the new, never half.
    pub fn save(&self, plugs: &[Plug]) -> Result<()> {
        let tmp = self.0.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(plugs)?;
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, &self.0))
            .with_context(|| format!("keeping the plugged ports in {}", self.0.display()))
    }
}

/// What a kernel interface is now: its index and MTU (None: no such
/// interface).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interface {
    pub ifindex: u32,
    pub mtu: u32,
}

impl Interface {
    /// Reads `/sys/class/net/NAME`.
    pub fn of(name: &str) -> Option<Interface> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return None;
        }
        let read = |what: &str| -> Option<u32> {
            std::fs::read_to_string(format!("/sys/class/net/{name}/{what}"))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        Some(Interface {
            ifindex: read("ifindex")?,
            mtu: read("mtu")?,
        })
    }
}

/// Plugging on the node's dataplane: opening, keeping, restoring and
/// watching its plugged ports.
impl<B: Backend> NodeDataplane<B> {
    /// Opens `plug`'s port and adds it to the engine.
    pub(crate) fn attach(&self, plug: Plug) -> Result<Attached> {
        let opened = (!plug.port_type.is_dpdk())
            .then(|| Interface::of(&plug.interface))
            .flatten();
        let id = self.engine.add_port(self.backend.open(&plug.spec())?)?;
        Ok(Attached {
            id: Some(id),
            plug,
            opened,
            waiting: None,
        })
    }

    /// Writes the plugged ports to the plug file.
    pub(crate) fn keep(&self, ports: &[Attached]) -> Result<()> {
        match &self.plug_file {
            Some(f) => f.save(&ports.iter().map(|a| a.plug.clone()).collect::<Vec<_>>()),
            None => Ok(()),
        }
    }

    /// Attaches the ports kept in the plug file (at start); one that cannot
    /// be opened now waits, shown in `show`, for its interface.
    pub fn restore(&self) -> Result<()> {
        let Some(file) = &self.plug_file else {
            return Ok(());
        };
        let plugs = file.load()?;
        let mut ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        for plug in plugs {
            let name = plug.interface.clone();
            match self.attach(plug.clone()) {
                Ok(a) => {
                    tracing::info!(
                        "{name} re-attached for {:?} from {}",
                        a.plug.iface_id,
                        file.path().display()
                    );
                    ports.push(a);
                }
                Err(e) => {
                    tracing::warn!(
                        "{name} (kept in {}) cannot be attached yet: {e:#}",
                        file.path().display()
                    );
                    ports.push(Attached {
                        id: None,
                        plug,
                        opened: None,
                        waiting: Some(format!("{e:#}")),
                    });
                }
            }
        }
        drop(ports);
        self.ports_changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Looks at every kernel port's interface: detaches a port whose
    /// interface is gone or was re-created or changed MTU, and attaches
    /// one whose interface is there again ([`crate::plugged`]).
    pub fn check_interfaces(&self) {
        let mut changed = false;
        let mut ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        for a in ports.iter_mut().filter(|a| !a.plug.port_type.is_dpdk()) {
            let name = a.plug.interface.clone();
            let now = Interface::of(&name);
            if let (Some(id), Some(was)) = (a.id, a.opened) {
                if now == Some(was) {
                    continue;
                }
                self.engine.remove_port(id);
                let why = match now {
                    None => "its interface is gone".to_string(),
                    Some(n) if n.ifindex != was.ifindex => "its interface was re-created".into(),
                    Some(n) => format!("its MTU changed from {} to {}", was.mtu, n.mtu),
                };
                tracing::warn!("{name} detached: {why}");
                *a = Attached {
                    id: None,
                    plug: a.plug.clone(),
                    opened: None,
                    waiting: Some(format!("{why}; re-attached when it is there")),
                };
                changed = true;
            }
            if a.id.is_none() && now.is_some() {
                match self.attach(a.plug.clone()) {
                    Ok(back) => {
                        tracing::info!(
                            "{name} re-attached (mtu {})",
                            back.opened.map_or(0, |i| i.mtu)
                        );
                        *a = back;
                        changed = true;
                    }
                    Err(e) => {
                        let why = format!("{e:#}");
                        if a.waiting.as_deref() != Some(why.as_str()) {
                            tracing::warn!("{name} cannot be re-attached yet: {why}");
                            a.waiting = Some(why);
                        }
                    }
                }
            }
        }
        drop(ports);
        if changed {
            self.ports_changed.send_modify(|n| *n += 1);
        }
    }
}
