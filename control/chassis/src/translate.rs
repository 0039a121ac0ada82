//! Translation: the SB rows of the local datapaths -> the dataplane's typed
//! tables.
//!
//! Every datapath with a port bound here becomes a [`LogicalSwitch`] with
//! all its VIF and localnet ports: addresses and port security in OVN's
//! syntax, the local port for ports bound here (localnet ports on every
//! chassis that maps their `network_name`, OVN's `ovn-bridge-mappings`,
//! with their VLAN `tag`), and for the others the remote chassis of the
//! mesh that claimed them. A switch's patch ports (to router ports) become
//! ports of type "router" with the router port's MAC and networks for
//! addresses (the real ovn-northd writes "router" there: the peer's are
//! taken); routers themselves are [`crate::router`]'s. Other types are
//! left out.

use std::collections::{BTreeMap, HashMap, HashSet};

use dataplane::ids::PortId;
use dataplane::tables::{Address, LogicalPort, LogicalSwitch, MacIps, PortType};
use ovsdb::client::rows::{DatapathBinding, PortBinding};
use ovsdb::client::Replica;
use uuid::Uuid;

use crate::chassis_mac::Known;
use crate::claim::LocalPorts;

/// The tables for `datapaths`, from `bindings`, and how many localnet
/// ports were left unbound because another switch's localnet port has
/// their physical network here ([`one_localnet_per_network`]).
pub(crate) fn switches(
    r: &Replica,
    bindings: &[PortBinding],
    datapaths: &HashSet<Uuid>,
    local: &LocalPorts,
    chassis_index: &HashMap<Uuid, u16>,
    provider_port: &dyn Fn(&str) -> Option<PortId>,
    chassis_macs: &Known,
) -> (Vec<LogicalSwitch>, u64) {
    let mut by_key: BTreeMap<i64, (String, Vec<LogicalPort>)> = BTreeMap::new();
    let mut dp_key: HashMap<Uuid, i64> = HashMap::new();
    for d in datapaths.iter().filter(|d| !crate::router::is_router(r, d)) {
        if let Some(row) = r.row::<DatapathBinding>(d) {
            by_key.insert(row.tunnel_key, (datapath_name(&row), Vec::new()));
            dp_key.insert(*d, row.tunnel_key);
        }
    }
    for pb in bindings {
        let Some(key) = pb.datapath.and_then(|d| dp_key.get(&d)) else {
            continue;
        };
        let resolved;
        let pb = match crate::router::router_addresses(pb, bindings) {
            Some(mac) => {
                resolved = PortBinding { mac, ..pb.clone() };
                &resolved
            }
            None => pb,
        };
        let Some(port) = logical_port(pb, local, chassis_index, provider_port, chassis_macs) else {
            continue;
        };
        if let Some((_, ports)) = by_key.get_mut(key) {
            ports.push(port);
        }
    }
    let mut switches: Vec<LogicalSwitch> = by_key
        .into_iter()
        .map(|(key, (name, mut ports))| {
            ports.sort_by_key(|p| p.tunnel_key);
            LogicalSwitch {
                name,
                tunnel_key: key as u32,
                ports,
            }
        })
        .collect();
    let shared = one_localnet_per_network(&mut switches);
    (switches, shared)
}

/// One physical network's interface carries one localnet port here: OVN
/// tells several VLANs of one network apart on the provider bridge, which
/// this dataplane does not do yet. The switch with the lowest datapath key
/// keeps the interface; the others' localnet ports stay unbound (those
/// switches reach no physical host, and other chassis' ports only by
/// tunnel), each said in the log, and the count is reported as not
/// enforced (`localnet_shared_network`), so that one such switch does not
/// make the dataplane refuse every table.
fn one_localnet_per_network(switches: &mut [LogicalSwitch]) -> u64 {
    let mut taken: HashMap<PortId, String> = HashMap::new();
    let mut shared = 0;
    for ls in switches.iter_mut() {
        for p in &mut ls.ports {
            let (PortType::Localnet, Some(port)) = (p.port_type, p.local_port) else {
                continue;
            };
            match taken.get(&port) {
                Some(first) => {
                    tracing::warn!(port = %p.name, first = %first, "localnet port not bound: its physical network's interface already carries another switch's localnet port (several VLANs of one network are not demultiplexed yet)");
                    p.local_port = None;
                    shared += 1;
                }
                None => {
                    taken.insert(port, p.name.clone());
                }
            }
        }
    }
    shared
}

/// The name the dataplane knows a datapath by: its NB name, as northd
/// writes it into `external_ids:name`.
pub(crate) fn datapath_name(row: &DatapathBinding) -> String {
    row.external_ids
        .get("name")
        .cloned()
        .unwrap_or_else(|| format!("datapath{}", row.tunnel_key))
}

/// One Port_Binding as a port of its switch (None for types we skip).
fn logical_port(
    pb: &PortBinding,
    local: &LocalPorts,
    chassis_index: &HashMap<Uuid, u16>,
    provider_port: &dyn Fn(&str) -> Option<PortId>,
    chassis_macs: &Known,
) -> Option<LogicalPort> {
    let port_type = match pb.port_type.as_str() {
        "" => PortType::Vif,
        "localnet" => PortType::Localnet,
        "patch" => PortType::Router,
        _ => return None,
    };
    let name = &pb.logical_port;
    let addresses = pb
        .mac
        .iter()
        .filter_map(|a| match a.parse::<Address>() {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(port = %name, "ignoring address: {e}");
                None
            }
        })
        .collect();
    let port_security = pb
        .port_security
        .iter()
        .filter_map(|a| match a.parse::<MacIps>() {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(port = %name, "ignoring port security entry: {e}");
                None
            }
        })
        .collect();
    let (local_port, vlan) = match port_type {
        PortType::Localnet => (
            pb.options
                .get("network_name")
                .and_then(|n| provider_port(n)),
            pb.tag.and_then(|t| u16::try_from(t).ok()),
        ),
        PortType::Vif => (local.bound_here(pb), None),
        PortType::Router => (None, None),
    };
    let chassis = match local_port {
        Some(_) => None,
        None => pb
            .chassis
            .and_then(|c| chassis_index.get(&c).copied())
            .map(dataplane::ids::ChassisIdx),
    };
    Some(LogicalPort {
        name: name.clone(),
        tunnel_key: pb.tunnel_key as u32,
        port_type,
        addresses,
        port_security,
        local_port,
        chassis,
        vlan,
        chassis_macs: match port_type {
            PortType::Localnet => {
                chassis_macs.for_network(pb.options.get("network_name").map_or("", String::as_str))
            }
            _ => Default::default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn localnet(name: &str, port: u16, vlan: u16) -> LogicalPort {
        LogicalPort {
            port_type: PortType::Localnet,
            local_port: Some(PortId(port)),
            vlan: Some(vlan),
            ..LogicalPort::vif(name, 1, Address::Unknown, false)
        }
    }

    fn switch(key: u32, ports: Vec<LogicalPort>) -> LogicalSwitch {
        LogicalSwitch {
            name: format!("ls{key}"),
            tunnel_key: key,
            ports,
        }
    }

    #[test]
    fn the_first_switch_keeps_a_shared_physical_interface() {
        let mut switches = vec![
            switch(1, vec![localnet("ln-a", 3, 100)]),
            switch(2, vec![localnet("ln-b", 3, 200)]),
            switch(3, vec![localnet("ln-c", 4, 300)]),
        ];
        assert_eq!(one_localnet_per_network(&mut switches), 1);
        let bound: Vec<_> = switches
            .iter()
            .map(|s| s.ports[0].local_port.map(PortId::get))
            .collect();
        assert_eq!(bound, [Some(3), None, Some(4)]);
        // What is left installs: no local port bound twice.
        dataplane::tables::Tables::compile(&switches).expect("tables install");
    }
}
