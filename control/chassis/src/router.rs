//! Routers: which datapaths a chassis needs beyond those of its own ports,
//! and the SB rows of its routers -> the dataplane's [`LogicalRouter`]s.
//!
//! As ovn-controller's local datapaths, the set grows across patch ports:
//! a switch with a local port reaches its routers through its ports of
//! type "router" (patch Port_Bindings whose `peer` names the router port),
//! and those routers reach their other switches, because a routed packet
//! is routed, and delivered into the destination switch, on the sender's
//! chassis. Each step needs the peer's Port_Binding, so the monitor
//! condition also asks for the peers by name ([`Reach::peers`]); the
//! controller re-plans until the condition stops changing.
//!
//! A router becomes its patch ports (MAC and networks from the
//! Port_Binding's `mac`), its SB `Logical_Router_Static_Route` rows and its
//! `MAC_Binding`s. Routes of a non-default `route_table` are left out
//! (said in the log): the dataplane does not select tables by port yet.

use std::collections::{BTreeSet, HashSet};

use dataplane::routes::{
    IpCidr, LogicalRouter, MacBinding, NextHop, RoutePolicy, RouterPort, StaticRoute,
};
use dataplane::tables::MacIps;
use ovsdb::client::rows::{DatapathBinding, PortBinding};
use ovsdb::client::txn::clause;
use ovsdb::client::{Replica, RowRef};
use serde_json::{json, Value};
use uuid::Uuid;

/// The SB table of static routes (switchyard's, named after NB's).
pub(crate) const ROUTES: &str = "Logical_Router_Static_Route";

/// Whether a datapath is a logical router's (OVN's
/// `external_ids:logical-router`).
pub(crate) fn is_router(r: &Replica, dp: &Uuid) -> bool {
    r.row::<DatapathBinding>(dp)
        .is_some_and(|d| d.external_ids.contains_key("logical-router"))
}

/// The datapaths this chassis forwards in, and the patch peers whose
/// Port_Bindings it must see to find more.
pub(crate) struct Reach {
    pub datapaths: HashSet<Uuid>,
    pub peers: BTreeSet<String>,
}

/// Grows `local` (the datapaths with local ports) across the patch ports
/// in `bindings`.
pub(crate) fn reach(bindings: &[PortBinding], local: HashSet<Uuid>) -> Reach {
    let mut datapaths = local;
    let mut peers = BTreeSet::new();
    loop {
        let mut grew = false;
        for pb in bindings.iter().filter(|pb| pb.port_type == "patch") {
            if !pb.datapath.is_some_and(|d| datapaths.contains(&d)) {
                continue;
            }
            let Some(peer) = pb.options.get("peer") else {
                continue;
            };
            peers.insert(peer.clone());
            let far = bindings
                .iter()
                .find(|p| p.logical_port == *peer)
                .and_then(|p| p.datapath);
            if let Some(d) = far {
                grew |= datapaths.insert(d);
            }
        }
        if !grew {
            return Reach { datapaths, peers };
        }
    }
}

/// `condition` (the Port_Binding clauses of the local ports and
/// datapaths) also asking for the patch peers.
pub(crate) fn with_peers(mut condition: Value, peers: &BTreeSet<String>) -> Value {
    if let Value::Array(clauses) = &mut condition {
        if clauses.first() == Some(&json!(false)) {
            return condition; // Nothing local: no peers either.
        }
        clauses.extend(peers.iter().map(|p| clause("logical_port", "==", json!(p))));
    }
    condition
}

/// The addresses of a switch's patch port whose `mac` says "router" (as
/// the real ovn-northd writes it for `lsp-set-addresses PORT router`): its
/// peer router port's MAC and networks. None for any other binding.
pub(crate) fn router_addresses(pb: &PortBinding, bindings: &[PortBinding]) -> Option<Vec<String>> {
    if pb.port_type != "patch" || !pb.mac.iter().any(|m| m == "router") {
        return None;
    }
    let peer = pb.options.get("peer")?;
    let lrp = bindings.iter().find(|p| p.logical_port == *peer)?;
    Some(lrp.mac.clone())
}

fn route(lr: &str, row: &RowRef<'_>) -> Option<StaticRoute> {
    let table = row.string("route_table");
    let prefix = row.string("ip_prefix");
    if !table.is_empty() {
        tracing::warn!(router = lr, %prefix, route_table = %table, "route of a route table left out (not supported)");
        return None;
    }
    let nexthop = match row.string("nexthop").as_str() {
        "discard" => NextHop::Discard,
        n => NextHop::Ip(n.parse().ok()?),
    };
    let policy = match row.opt_string("policy").as_deref() {
        Some("src-ip") => RoutePolicy::SrcIp,
        _ => RoutePolicy::DstIp,
    };
    match prefix.parse::<IpCidr>() {
        Ok(prefix) => Some(StaticRoute {
            prefix,
            policy,
            nexthop,
            output_port: row.opt_string("output_port"),
        }),
        Err(e) => {
            tracing::warn!(router = lr, "ignoring route: {e}");
            None
        }
    }
}

/// The routers among `datapaths`, from `bindings` and SB's routes and
/// MAC bindings.
pub(crate) fn routers(
    r: &Replica,
    bindings: &[PortBinding],
    datapaths: &HashSet<Uuid>,
) -> Vec<LogicalRouter> {
    let mut out: Vec<LogicalRouter> = datapaths
        .iter()
        .filter(|d| is_router(r, d))
        .filter_map(|d| {
            let row = r.row::<DatapathBinding>(d)?;
            let name = row.external_ids.get("name").cloned().unwrap_or_default();
            let mut ports: Vec<RouterPort> = bindings
                .iter()
                .filter(|pb| pb.datapath == Some(*d) && pb.port_type == "patch")
                .filter_map(|pb| {
                    let address = pb.mac.first()?.parse::<MacIps>().ok()?;
                    Some(RouterPort {
                        name: pb.logical_port.clone(),
                        address,
                        peer: pb.options.get("peer").cloned(),
                    })
                })
                .collect();
            ports.sort_by(|a, b| a.name.cmp(&b.name));
            let mut routes: Vec<(String, StaticRoute)> = r
                .table(ROUTES)
                .filter(|(_, row)| row.opt_uuid("datapath") == Some(*d))
                .filter_map(|(_, row)| {
                    let key = format!("{} {}", row.string("ip_prefix"), row.string("nexthop"));
                    route(&name, &row).map(|s| (key, s))
                })
                .collect();
            // SB rows come in no order; ECMP members keep theirs.
            routes.sort_by(|a, b| a.0.cmp(&b.0));
            let mut mac_bindings: Vec<MacBinding> = r
                .table("MAC_Binding")
                .filter(|(_, row)| row.opt_uuid("datapath") == Some(*d))
                .filter_map(|(_, row)| {
                    Some(MacBinding {
                        logical_port: row.string("logical_port"),
                        ip: row.string("ip").parse().ok()?,
                        mac: row.string("mac").parse().ok()?,
                    })
                })
                .collect();
            mac_bindings.sort_by_key(|b| (b.logical_port.clone(), b.ip));
            // northd-lite's copy of options:always_learn_from_arp_request
            // (the real ovn-northd carries it only in logical flows).
            let learn_known_only = row
                .external_ids
                .get("always_learn_from_arp_request")
                .is_some_and(|v| v == "false");
            Some(LogicalRouter {
                name,
                tunnel_key: row.tunnel_key as u32,
                ports,
                routes: routes.into_iter().map(|(_, s)| s).collect(),
                mac_bindings,
                learn_known_only,
            })
        })
        .collect();
    out.sort_by_key(|lr| lr.tunnel_key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(name: &str, dp: Uuid, peer: Option<&str>) -> PortBinding {
        PortBinding {
            uuid: Uuid::new_v4(),
            logical_port: name.into(),
            port_type: if peer.is_some() { "patch" } else { "" }.into(),
            datapath: Some(dp),
            tunnel_key: 1,
            mac: vec![],
            port_security: vec![],
            tag: None,
            chassis: None,
            up: None,
            options: peer
                .map(|p| [("peer".to_string(), p.to_string())].into())
                .unwrap_or_default(),
            external_ids: Default::default(),
        }
    }

    /// From a switch with a local port, across its router to the router's
    /// other switch; a peer whose binding is not replicated yet is asked
    /// for by name, and nothing beyond it is reached.
    #[test]
    fn local_datapaths_grow_across_patch_ports() {
        let (ls1, lr, ls2, ls3) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let bindings = vec![
            pb("vm1", ls1, None),
            pb("ls1-lr", ls1, Some("lrp1")),
            pb("lrp1", lr, Some("ls1-lr")),
            pb("lrp2", lr, Some("ls2-lr")),
            pb("ls2-lr", ls2, Some("lrp2")),
            pb("lrp3", lr, Some("ls3-lr")),
            pb("vm9", ls3, None),
        ];
        let r = reach(&bindings, [ls1].into());
        assert_eq!(r.datapaths, [ls1, lr, ls2].into());
        let peers: Vec<&str> = r.peers.iter().map(String::as_str).collect();
        assert_eq!(peers, ["lrp1", "lrp2", "ls1-lr", "ls2-lr", "ls3-lr"]);
        let c = with_peers(
            json!([clause("logical_port", "==", json!("vm1"))]),
            &r.peers,
        );
        assert_eq!(c.as_array().unwrap().len(), 6);
        assert_eq!(with_peers(json!([false]), &r.peers), json!([false]));
    }
}
