//! The standalone configuration file: logical switches, logical ports and
//! the local port backing each, until the control plane drives the node.
//!
//! It is parsed into the dataplane's typed table API ([`LogicalSwitch`],
//! [`LogicalPort`]), the same structs the chassis controller will build
//! from the southbound database. Format (TOML):
//!
//! ```toml
//! [[switch]]
//! name = "ls1"
//! [[switch.port]]
//! name = "vm1"
//! addresses = ["00:00:00:00:00:01 10.0.0.1"]
//! port_security = ["00:00:00:00:00:01 10.0.0.1"]
//! interface = "sy-vm1"          # kernel interface, attached with AF_PACKET
//! ```

use std::path::Path;

use anyhow::{bail, Context, Result};
use dataplane::ids::PortId;
use dataplane::tables::{Address, LogicalPort, LogicalSwitch, MacIps, PortType};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, rename = "switch")]
    pub switches: Vec<SwitchConfig>,
}

/// One `[[switch]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchConfig {
    pub name: String,
    /// Datapath tunnel key; default: position in the file, from 1.
    pub tunnel_key: Option<u32>,
    #[serde(default, rename = "port")]
    pub ports: Vec<PortConfig>,
}

/// One `[[switch.port]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    pub tunnel_key: Option<u32>,
    /// OVN port type: "" (VM interface) or "localnet".
    #[serde(default, rename = "type")]
    pub port_type: String,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub port_security: Vec<String>,
    /// Kernel interface backing the port (AF_PACKET). A port without one is
    /// not bound on this node.
    pub interface: Option<String>,
    /// MTU enforced on frames received from the interface (default: the
    /// interface's own).
    pub mtu: Option<usize>,
}

/// A local port the node must open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPort {
    pub interface: String,
    pub mtu: Option<usize>,
    /// The logical port it backs.
    pub logical_port: String,
}

/// The configuration resolved into the dataplane's typed API.
#[derive(Debug)]
pub struct Resolved {
    pub switches: Vec<LogicalSwitch>,
    /// Local ports, indexed by [`PortId`].
    pub local_ports: Vec<LocalPort>,
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in configuration {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Resolves names and addresses into typed tables and local ports.
    pub fn resolve(&self) -> Result<Resolved> {
        let mut switches = Vec::new();
        let mut local_ports: Vec<LocalPort> = Vec::new();
        for (si, s) in self.switches.iter().enumerate() {
            let mut ports = Vec::new();
            for (pi, p) in s.ports.iter().enumerate() {
                let port_type = match p.port_type.as_str() {
                    "" => PortType::Vif,
                    "localnet" => PortType::Localnet,
                    other => bail!(
                        "port {:?}: unsupported type {other:?} (\"\" or \"localnet\")",
                        p.name
                    ),
                };
                let addresses = p
                    .addresses
                    .iter()
                    .map(|a| a.parse::<Address>())
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("port {:?}: addresses", p.name))?;
                let port_security = p
                    .port_security
                    .iter()
                    .map(|a| a.parse::<MacIps>())
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("port {:?}: port_security", p.name))?;
                let local_port = match &p.interface {
                    Some(ifname) => {
                        if local_ports.iter().any(|l| &l.interface == ifname) {
                            bail!("interface {ifname:?} is used by two ports");
                        }
                        local_ports.push(LocalPort {
                            interface: ifname.clone(),
                            mtu: p.mtu,
                            logical_port: p.name.clone(),
                        });
                        Some(PortId((local_ports.len() - 1) as u16))
                    }
                    None => None,
                };
                ports.push(LogicalPort {
                    name: p.name.clone(),
                    tunnel_key: p.tunnel_key.unwrap_or(pi as u32 + 1),
                    port_type,
                    addresses,
                    port_security,
                    local_port,
                    chassis: None,
                    vlan: None,
                    chassis_macs: Default::default(),
                });
            }
            switches.push(LogicalSwitch {
                name: s.name.clone(),
                tunnel_key: s.tunnel_key.unwrap_or(si as u32 + 1),
                ports,
            });
        }
        Ok(Resolved {
            switches,
            local_ports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [[switch]]
        name = "ls1"
        [[switch.port]]
        name = "vm1"
        addresses = ["00:00:00:00:00:01 10.0.0.1"]
        port_security = ["00:00:00:00:00:01 10.0.0.1"]
        interface = "sy-vm1"
        [[switch.port]]
        name = "remote"
        addresses = ["unknown"]
    "#;

    #[test]
    fn resolves_ports_and_bindings() {
        let r = ConfigFile::parse(EXAMPLE).unwrap().resolve().unwrap();
        assert_eq!(r.switches[0].tunnel_key, 1);
        assert_eq!(r.switches[0].ports[0].local_port, Some(PortId(0)));
        assert_eq!(r.switches[0].ports[1].local_port, None);
        assert_eq!(r.switches[0].ports[1].addresses, vec![Address::Unknown]);
        assert_eq!(r.local_ports[0].interface, "sy-vm1");
    }

    #[test]
    fn rejects_bad_input_with_context() {
        let e = ConfigFile::parse(&EXAMPLE.replace(
            "10.0.0.1\"]\n        port_security",
            "10.0.0.300\"]\n        port_security",
        ))
        .unwrap()
        .resolve()
        .unwrap_err();
        assert!(format!("{e:#}").contains("vm1"), "{e:#}");
        assert!(ConfigFile::parse("[[switch]]\nnam = 1").is_err());
    }
}
