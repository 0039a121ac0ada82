//! The tunnel mesh: the other chassis this one reaches over the underlay.
//!
//! Every other Chassis with an encapsulation we speak (the first of our
//! Encaps, in our order of preference, that it also offers) becomes a
//! remote chassis of the dataplane's [`Underlay`], if this node has an
//! uplink and a tunnel endpoint. A chassis with no common tunnel type, or
//! an endpoint of the other IP family, is reported and left out: its ports
//! are unreachable.

use std::collections::HashMap;
use std::net::IpAddr;

use dataplane::tables::{Encap, RemoteChassis, Underlay};
use ovsdb::client::rows::{self, Chassis};
use ovsdb::client::Replica;
use uuid::Uuid;

use crate::{ControllerConfig, UplinkPort};

/// The underlay, and each remote Chassis row's index in it.
pub(crate) struct Mesh {
    pub underlay: Option<Underlay>,
    pub index: HashMap<Uuid, u16>,
}

/// Builds the mesh to every chassis but `me`.
pub(crate) fn mesh(
    cfg: &ControllerConfig,
    r: &Replica,
    chassis: &[Chassis],
    me: Option<Uuid>,
    uplink: Option<UplinkPort>,
) -> Mesh {
    let mut index = HashMap::new();
    let our_ip: Option<IpAddr> = cfg.encaps.first().and_then(|e| e.ip.parse().ok());
    let (Some(up), Some(ip)) = (uplink, our_ip) else {
        return Mesh {
            underlay: None,
            index,
        };
    };
    let mut others: Vec<&Chassis> = chassis.iter().filter(|c| Some(c.uuid) != me).collect();
    others.sort_by(|a, b| a.name.cmp(&b.name));
    let mut remote = Vec::new();
    for c in others {
        let encaps: Vec<rows::Encap> = c.encaps.iter().filter_map(|e| r.row(e)).collect();
        let pick = cfg.encaps.iter().find_map(|want| {
            let e = encaps.iter().find(|e| e.encap_type == want.encap_type)?;
            let encap = match want.encap_type.as_str() {
                "geneve" => Encap::Geneve,
                "vxlan" => Encap::Vxlan,
                _ => return None,
            };
            // ovn-controller's rule: outer UDP checksums to an endpoint
            // whose Encap asks for them.
            let csum = e.options.get("csum").map(String::as_str) == Some("true");
            Some((encap, e.ip.parse::<IpAddr>().ok()?, csum))
        });
        let Some((encap, rip, csum)) = pick else {
            tracing::warn!(chassis = %c.name, "no common tunnel type: its ports are unreachable");
            continue;
        };
        if rip.is_ipv4() != ip.is_ipv4() {
            tracing::warn!(chassis = %c.name, endpoint = %rip, ours = %ip, "tunnel endpoint of another IP family: its ports are unreachable");
            continue;
        }
        index.insert(c.uuid, remote.len() as u16);
        remote.push(RemoteChassis {
            name: c.name.clone(),
            ip: rip,
            encap,
            mac: cfg
                .static_neighbors
                .iter()
                .find(|(i, _)| *i == rip)
                .map(|(_, m)| *m),
            vtep: !c.vtep_logical_switches.is_empty(),
            csum,
        });
    }
    Mesh {
        underlay: Some(Underlay {
            port: up.port,
            ip,
            mac: up.mac,
            mtu: up.mtu,
            chassis: remote,
        }),
        index,
    }
}
