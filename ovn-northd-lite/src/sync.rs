//! Bringing SB in line with [`Desired`]: the dirty rows are compared with
//! the SB replica and only the differences become operations of one
//! transaction. Rows northd does not own (a Port_Binding's `chassis`, `up`,
//! `encap`) are never written.

use std::collections::{BTreeMap, HashMap};

use ovsdb::client::txn::{by_uuid, map, set, uuid};
use ovsdb::client::{Changes, Replica, RowId, Transaction};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::compute::{Datapath, Desired, DpKind, Port, SbKeys, LEARN_FROM_ARP_REQUEST};

pub const SB: &str = "OVN_Southbound";

/// Where the SB rows northd owns are: by NB uuid for datapaths, by name for
/// ports. Kept current from the SB replica's changes.
#[derive(Debug, Default)]
pub struct SbIndex {
    dp: HashMap<Uuid, Uuid>,
    dp_rev: HashMap<Uuid, Uuid>,
    pb: HashMap<String, Uuid>,
    pb_rev: HashMap<Uuid, String>,
}

fn nb_uuid_of(row: &ovsdb::client::RowRef<'_>) -> Option<Uuid> {
    let ids = row.string_map("external_ids");
    [DpKind::Switch, DpKind::Router]
        .iter()
        .find_map(|k| ids.get(k.id_key()))
        .and_then(|s| Uuid::parse_str(s).ok())
}

impl SbIndex {
    /// Follows SB changes; marks the affected desired rows dirty (so a row
    /// someone else changed or removed is put back, and a stray one goes).
    pub fn apply(&mut self, sb: &Replica, changes: &Changes, desired: &mut Desired) {
        if changes.resync {
            *self = SbIndex::default();
            for (u, row) in sb.table("Datapath_Binding") {
                if let Some(nb) = nb_uuid_of(&row) {
                    self.dp.insert(nb, u);
                    self.dp_rev.insert(u, nb);
                }
                desired
                    .dirty_datapaths
                    .insert(nb_uuid_of(&row).unwrap_or(u));
            }
            for (u, row) in sb.table("Port_Binding") {
                let name = row.string("logical_port");
                self.pb.insert(name.clone(), u);
                self.pb_rev.insert(u, name.clone());
                desired.dirty_ports.insert(name);
            }
            return;
        }
        for u in changes.table("Datapath_Binding") {
            if let Some(nb) = self.dp_rev.remove(u) {
                if self.dp.get(&nb) == Some(u) {
                    self.dp.remove(&nb);
                }
                desired.dirty_datapaths.insert(nb);
            }
            if let Some(row) = sb.get("Datapath_Binding", u) {
                let nb = nb_uuid_of(&row).unwrap_or(*u);
                self.dp.insert(nb, *u);
                self.dp_rev.insert(*u, nb);
                desired.dirty_datapaths.insert(nb);
            }
        }
        for u in changes.table("Port_Binding") {
            if let Some(name) = self.pb_rev.remove(u) {
                if self.pb.get(&name) == Some(u) {
                    self.pb.remove(&name);
                }
                desired.dirty_ports.insert(name);
            }
            if let Some(row) = sb.get("Port_Binding", u) {
                let name = row.string("logical_port");
                self.pb.insert(name.clone(), *u);
                self.pb_rev.insert(*u, name.clone());
                desired.dirty_ports.insert(name);
            }
        }
    }

    /// The SB Datapath_Binding of the switch or router with NB uuid `nb`.
    pub fn datapath(&self, nb: &Uuid) -> Option<Uuid> {
        self.dp.get(nb).copied()
    }

    /// The SB Port_Binding row of logical port `name`.
    pub fn port_binding(&self, name: &str) -> Option<Uuid> {
        self.pb.get(name).copied()
    }
}

/// [`SbKeys`] over the index and the replica.
pub struct SbView<'a> {
    pub index: &'a SbIndex,
    pub sb: &'a Replica,
}

impl SbKeys for SbView<'_> {
    fn datapath_key(&self, nb: &Uuid) -> Option<i64> {
        let u = self.index.dp.get(nb)?;
        Some(self.sb.get("Datapath_Binding", u)?.integer("tunnel_key"))
    }
    fn port_key(&self, name: &str, dp: &Uuid) -> Option<i64> {
        let row = self
            .sb
            .get("Port_Binding", &self.index.pb.get(name)?.clone())?;
        let sb_dp = row.opt_uuid("datapath")?;
        (self.index.dp_rev.get(&sb_dp) == Some(dp)).then(|| row.integer("tunnel_key"))
    }
}

/// The `external_ids` northd-lite writes on a Datapath_Binding.
fn dp_ids(nb: Uuid, d: &Datapath) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::from([
        (d.kind.id_key().to_string(), nb.to_string()),
        ("name".to_string(), d.name.clone()),
    ]);
    if !d.always_learn_from_arp_request {
        ids.insert(LEARN_FROM_ARP_REQUEST.to_string(), "false".to_string());
    }
    ids
}

fn dp_row(nb: Uuid, d: &Datapath) -> Vec<(&'static str, Value)> {
    vec![
        ("tunnel_key", json!(d.tunnel_key)),
        ("external_ids", map(dp_ids(nb, d))),
    ]
}

fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    set(v.into_iter().map(Into::into))
}

fn pb_row(
    name: &str,
    p: &Port,
    datapath: Value,
    chassis: &HashMap<String, Uuid>,
) -> Vec<(&'static str, Value)> {
    let requested = p
        .requested_chassis
        .as_ref()
        .and_then(|c| chassis.get(c))
        .map(|u| uuid(*u));
    vec![
        ("logical_port", json!(name)),
        ("type", json!(p.port_type)),
        ("datapath", datapath),
        ("tunnel_key", json!(p.tunnel_key)),
        ("mac", set(p.mac.iter().cloned())),
        ("port_security", set(p.port_security.iter().cloned())),
        ("options", map(p.options.clone())),
        ("tag", opt(p.tag)),
        ("parent_port", opt(p.parent_port.clone())),
        ("requested_chassis", set(requested)),
    ]
}

/// `["set", []]` or `["map", []]`: the default of a set or map column.
fn is_empty_collection(v: &Value) -> bool {
    matches!(v.as_array().map(Vec::as_slice), Some([kind, items])
        if (kind == "set" || kind == "map") && items.as_array().is_some_and(Vec::is_empty))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Adds to `txn` what makes SB's dirty rows match `desired`, and clears the
/// dirty marks. Returns the number of operations added.
pub fn diff(desired: &mut Desired, index: &SbIndex, sb: &Replica, txn: &mut Transaction) -> usize {
    let chassis: HashMap<String, Uuid> = sb
        .table("Chassis")
        .map(|(u, r)| (r.string("name"), u))
        .collect();
    let mut ops = 0;
    let mut new_dps: HashMap<Uuid, RowId> = HashMap::new();
    let dirty: Vec<Uuid> = desired.dirty_datapaths.drain().collect();
    for nb in dirty {
        let want = desired.datapaths.get(&nb);
        let have = index
            .dp
            .get(&nb)
            .and_then(|u| sb.get("Datapath_Binding", u).map(|r| (*u, r)));
        match (want, have) {
            (Some(d), Some((u, row))) => {
                let ids = row.string_map("external_ids");
                // The keys northd-lite writes (others' keys are theirs).
                let want = dp_ids(nb, d);
                let same = row.integer("tunnel_key") == d.tunnel_key
                    && [d.kind.id_key(), "name", LEARN_FROM_ARP_REQUEST]
                        .iter()
                        .all(|k| ids.get(*k) == want.get(*k));
                if !same {
                    txn.update("Datapath_Binding", by_uuid(u), dp_row(nb, d));
                    ops += 1;
                }
            }
            (Some(d), None) => {
                let id = txn.insert("Datapath_Binding", dp_row(nb, d));
                new_dps.insert(nb, id);
                ops += 1;
            }
            (None, Some((u, _))) => {
                txn.delete("Datapath_Binding", by_uuid(u));
                ops += 1;
            }
            // A stray SB datapath naming no NB row is indexed under its own
            // uuid, so it is deleted by the arm above.
            (None, None) => {}
        }
    }
    let dirty: Vec<String> = desired.dirty_ports.drain().collect();
    for name in dirty {
        let want = desired.ports.get(&name);
        let have = index
            .pb
            .get(&name)
            .and_then(|u| sb.get("Port_Binding", u).map(|r| (*u, r)));
        let dp_ref = |p: &Port| -> Option<Value> {
            match new_dps.get(&p.datapath) {
                Some(id) => Some(id.to_json()),
                None => index.dp.get(&p.datapath).map(|u| uuid(*u)),
            }
        };
        match (want, have) {
            (Some(p), Some((u, row))) => {
                let Some(dp) = dp_ref(p) else { continue };
                let requested = p.requested_chassis.as_ref().and_then(|c| chassis.get(c));
                let same = row.string("type") == p.port_type
                    && row.opt_uuid("datapath").map(uuid) == Some(dp.clone())
                    && row.integer("tunnel_key") == p.tunnel_key
                    && sorted(row.strings("mac")) == p.mac
                    && sorted(row.strings("port_security")) == p.port_security
                    && row.string_map("options") == p.options
                    && row.opt_integer("tag") == p.tag
                    && row.opt_string("parent_port") == p.parent_port
                    && row.opt_uuid("requested_chassis").as_ref() == requested;
                if !same {
                    txn.update("Port_Binding", by_uuid(u), pb_row(&name, p, dp, &chassis));
                    ops += 1;
                }
            }
            (Some(p), None) => {
                let Some(dp) = dp_ref(p) else { continue };
                // A new row needs no empty columns: a smaller transaction
                // for the server to parse and log (the cold start writes
                // tens of thousands).
                let row = pb_row(&name, p, dp, &chassis)
                    .into_iter()
                    .filter(|(_, v)| !is_empty_collection(v));
                txn.insert("Port_Binding", row);
                ops += 1;
            }
            (None, Some((u, _))) => {
                txn.delete("Port_Binding", by_uuid(u));
                ops += 1;
            }
            (None, None) => {}
        }
    }
    ops
}
