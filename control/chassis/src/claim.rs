//! Claims: which Port_Bindings this chassis hosts, and the SB writes that
//! say so.
//!
//! A port is bound here when a local port's iface-id names its logical
//! port and `options:requested-chassis` does not pin it to another chassis.
//! Once our Chassis row exists, bound ports are claimed (`chassis` = us,
//! `up` = true) and ports we hold whose local port went are released.
//!
//! The same bindings decide what the controller monitors, as ovn-controller
//! does it: Port_Binding rows whose `logical_port` is a local iface-id,
//! whose `datapath` is a local datapath, or whose `chassis` is this one
//! (one clause each, ORed).

use std::collections::{HashMap, HashSet};

use dataplane::ids::PortId;
use ovsdb::client::rows::PortBinding;
use ovsdb::client::txn::{by_uuid, clause, set, uuid};
use ovsdb::client::Transaction;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{ControllerConfig, LocalBinding};

/// The local ports by iface-id, and the rule that binds a Port_Binding here.
pub(crate) struct LocalPorts<'a> {
    cfg: &'a ControllerConfig,
    by_iface_id: HashMap<&'a str, PortId>,
}

impl<'a> LocalPorts<'a> {
    pub fn new(cfg: &'a ControllerConfig, bindings: &'a [LocalBinding]) -> Self {
        LocalPorts {
            cfg,
            by_iface_id: bindings
                .iter()
                .map(|b| (b.iface_id.as_str(), b.port))
                .collect(),
        }
    }

    /// The local port carrying `pb`, if it is bound here.
    pub fn bound_here(&self, pb: &PortBinding) -> Option<PortId> {
        let p = *self.by_iface_id.get(pb.logical_port.as_str())?;
        match pb.options.get("requested-chassis") {
            Some(c) if *c != self.cfg.chassis && *c != self.cfg.hostname => None,
            _ => Some(p),
        }
    }
}

/// The datapaths with a port bound here.
pub(crate) fn local_datapaths(bindings: &[PortBinding], local: &LocalPorts) -> HashSet<Uuid> {
    bindings
        .iter()
        .filter(|pb| local.bound_here(pb).is_some())
        .filter_map(|pb| pb.datapath)
        .collect()
}

/// The Port_Binding monitor condition for the local iface-ids, the local
/// datapaths and our Chassis row.
pub(crate) fn condition(local: &LocalPorts, datapaths: &HashSet<Uuid>, me: Option<Uuid>) -> Value {
    let mut ids: Vec<&str> = local.by_iface_id.keys().copied().collect();
    ids.sort_unstable();
    let mut dps: Vec<&Uuid> = datapaths.iter().collect();
    dps.sort();
    let mut clauses: Vec<Value> = ids
        .into_iter()
        .map(|id| clause("logical_port", "==", json!(id)))
        .chain(dps.into_iter().map(|d| clause("datapath", "==", uuid(*d))))
        .chain(me.map(|me| clause("chassis", "==", uuid(me))))
        .collect();
    if clauses.is_empty() {
        clauses.push(json!(false));
    }
    Value::Array(clauses)
}

/// Plans the claims and releases of chassis `me` into `txn`; returns how
/// many Port_Bindings are bound here.
pub(crate) fn claim(
    bindings: &[PortBinding],
    local: &LocalPorts,
    me: Uuid,
    txn: &mut Transaction,
) -> u64 {
    let mut claimed = 0;
    for pb in bindings {
        let ours = pb.chassis == Some(me);
        let here = local.bound_here(pb).is_some();
        claimed += u64::from(here);
        if here && (!ours || pb.up != Some(true)) {
            txn.update(
                "Port_Binding",
                by_uuid(pb.uuid),
                [("chassis", uuid(me)), ("up", json!(true))],
            );
        } else if ours && !here {
            txn.update(
                "Port_Binding",
                by_uuid(pb.uuid),
                [("chassis", set::<Value>([])), ("up", json!(false))],
            );
        }
    }
    claimed
}
