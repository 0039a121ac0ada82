//! NB ACLs, port groups and address sets → SB's typed `ACL`, `Port_Group`
//! and `Address_Set` (docs/intent-to-chassis.md): one SB row per NB row,
//! no logical flows.
//!
//! - `Port_Group`: OVN's SB table (`name`, `ports` as logical port names).
//! - `Address_Set`: OVN's SB table: NB's sets, plus the `<pg>_ip4` and
//!   `<pg>_ip6` sets ovn-northd derives from each port group's ports'
//!   addresses (ovn-nb(5), Port_Group: "`$pg_ip4`").
//! - `ACL`: NB's columns, with `datapaths` (the switch an ACL is on, or
//!   every switch with a port in its port group, as `build_acls` applies
//!   port-group ACLs), `meter` the SB meter its log goes through (a fair
//!   meter's per-ACL copy: [`crate::meter`]) and `external_ids:nb-acl`
//!   naming the NB row.
//!
//! Every match is parsed with `ovn-expr` first: an ACL whose match does
//! not parse is logged once with the column of the error, counted
//! ([`AclSync::invalid`]), and not written to SB; the rest go on.
//!
//! When any of the tables these read changed, the wanted rows are built
//! again (linear in ACLs, groups and sets) and compared with SB; only rows
//! that differ are written.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ovsdb::client::txn::{by_uuid, map, set, uuid};
use ovsdb::client::{Changes, Replica, Transaction};
use serde_json::{json, Value};
use uuid::Uuid;

/// NB tables whose changes may change these SB rows.
pub const NB_TABLES: [&str; 6] = [
    "ACL",
    "Meter",
    "Port_Group",
    "Address_Set",
    "Logical_Switch",
    "Logical_Switch_Port",
];
/// SB tables this module owns (and Datapath_Binding, which ACLs name).
pub const SB_TABLES: [&str; 4] = ["ACL", "Port_Group", "Address_Set", "Datapath_Binding"];

/// One wanted SB ACL row.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AclRow {
    name: Option<String>,
    priority: i64,
    direction: String,
    matches: String,
    action: String,
    log: bool,
    severity: Option<String>,
    meter: Option<String>,
    datapaths: Vec<Uuid>,
}

/// The ACL part of northd: validation state between rounds.
#[derive(Debug, Default)]
pub struct AclSync {
    /// NB ACLs whose match does not parse (logged once each).
    bad: HashSet<Uuid>,
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

impl AclSync {
    /// How many NB ACLs are not in SB because their match does not parse.
    pub fn invalid(&self) -> usize {
        self.bad.len()
    }

    /// Whether these changes can concern ACLs, port groups or sets.
    pub fn relevant(nb: &Changes, sb: &Changes) -> bool {
        nb.resync
            || sb.resync
            || NB_TABLES.iter().any(|t| nb.table(t).next().is_some())
            || SB_TABLES.iter().any(|t| sb.table(t).next().is_some())
    }

    /// Adds to `txn` what makes SB's ACL, Port_Group and Address_Set rows
    /// match NB; `datapath` maps a logical switch's NB uuid to its SB
    /// Datapath_Binding. Returns the number of operations.
    pub fn diff(
        &mut self,
        nb: &Replica,
        sb: &Replica,
        datapath: &dyn Fn(&Uuid) -> Option<Uuid>,
        txn: &mut Transaction,
    ) -> usize {
        let lsp_name = |u: &Uuid| nb.get("Logical_Switch_Port", u).map(|r| r.string("name"));
        // Which switch each port is on.
        let mut switch_of: BTreeMap<Uuid, Uuid> = BTreeMap::new();
        for (ls, row) in nb.table("Logical_Switch") {
            for p in row.uuids("ports") {
                switch_of.insert(p, ls);
            }
        }
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut acl_dps: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
        for (_, row) in nb.table("Address_Set") {
            sets.insert(row.string("name"), sorted(row.strings("addresses")));
        }
        for (_, pg) in nb.table("Port_Group") {
            let name = pg.string("name");
            let ports = pg.uuids("ports");
            let (mut ip4, mut ip6) = (Vec::new(), Vec::new());
            for p in &ports {
                let Some(lsp) = nb.get("Logical_Switch_Port", p) else {
                    continue;
                };
                for a in lsp.strings("addresses") {
                    for w in a.split_whitespace().skip(1) {
                        match w.parse::<std::net::IpAddr>() {
                            Ok(std::net::IpAddr::V4(_)) => ip4.push(w.to_string()),
                            Ok(std::net::IpAddr::V6(_)) => ip6.push(w.to_string()),
                            Err(_) => {}
                        }
                    }
                }
            }
            sets.insert(format!("{name}_ip4"), sorted(ip4));
            sets.insert(format!("{name}_ip6"), sorted(ip6));
            let switches: BTreeSet<Uuid> = ports
                .iter()
                .filter_map(|p| switch_of.get(p))
                .copied()
                .collect();
            for a in pg.uuids("acls") {
                acl_dps.entry(a).or_default().extend(&switches);
            }
            groups.insert(name, sorted(ports.iter().filter_map(lsp_name).collect()));
        }
        for (ls, row) in nb.table("Logical_Switch") {
            for a in row.uuids("acls") {
                acl_dps.entry(a).or_default().insert(ls);
            }
        }
        let mut acls: BTreeMap<Uuid, AclRow> = BTreeMap::new();
        let mut bad = HashSet::new();
        for (u, switches) in &acl_dps {
            let Some(row) = nb.get("ACL", u) else {
                continue;
            };
            let text = row.string("match");
            if let Err(e) = ovn_expr::parse(&text) {
                if !self.bad.contains(u) {
                    tracing::warn!(acl = %u, name = ?row.opt_string("name"), r#match = %text, "ACL not installed: its match does not parse: {e}");
                }
                bad.insert(*u);
                continue;
            }
            let mut datapaths: Vec<Uuid> = switches.iter().filter_map(datapath).collect();
            datapaths.sort();
            acls.insert(
                *u,
                AclRow {
                    name: row.opt_string("name"),
                    priority: row.integer("priority"),
                    direction: row.string("direction"),
                    matches: text,
                    action: row.string("action"),
                    log: row.opt_bool("log").unwrap_or(false),
                    severity: row.opt_string("severity"),
                    meter: crate::meter::acl_meter(nb, u, &row),
                    datapaths,
                },
            );
        }
        self.bad = bad;
        let mut ops = diff_named(sb, "Port_Group", "ports", &groups, txn);
        ops += diff_named(sb, "Address_Set", "addresses", &sets, txn);
        ops + diff_acls(sb, &acls, txn)
    }
}

/// Port_Group / Address_Set: rows by name with one set-of-strings column.
fn diff_named(
    sb: &Replica,
    table: &str,
    column: &'static str,
    want: &BTreeMap<String, Vec<String>>,
    txn: &mut Transaction,
) -> usize {
    let mut ops = 0;
    let mut seen = HashSet::new();
    for (u, row) in sb.table(table) {
        let name = row.string("name");
        match want.get(&name) {
            Some(v) if seen.insert(name.clone()) => {
                if sorted(row.strings(column)) != *v {
                    txn.update(
                        table,
                        by_uuid(u),
                        [(column, set(v.iter().map(|s| json!(s))))],
                    );
                    ops += 1;
                }
            }
            _ => {
                txn.delete(table, by_uuid(u));
                ops += 1;
            }
        }
    }
    for (name, v) in want {
        if !seen.contains(name) {
            txn.insert(
                table,
                [
                    ("name", json!(name)),
                    (column, set(v.iter().map(|s| json!(s)))),
                ],
            );
            ops += 1;
        }
    }
    ops
}

fn opt(v: &Option<String>) -> Value {
    match v {
        Some(s) => json!(s),
        None => set::<Value>([]),
    }
}

fn acl_columns(nb: &Uuid, a: &AclRow) -> Vec<(&'static str, Value)> {
    vec![
        ("name", opt(&a.name)),
        ("priority", json!(a.priority)),
        ("direction", json!(a.direction)),
        ("match", json!(a.matches)),
        ("action", json!(a.action)),
        ("log", json!(a.log)),
        ("severity", opt(&a.severity)),
        ("meter", opt(&a.meter)),
        ("datapaths", set(a.datapaths.iter().map(|d| uuid(*d)))),
        ("external_ids", map([("nb-acl", nb.to_string())])),
    ]
}

fn diff_acls(sb: &Replica, want: &BTreeMap<Uuid, AclRow>, txn: &mut Transaction) -> usize {
    let mut ops = 0;
    let mut seen = HashSet::new();
    for (u, row) in sb.table("ACL") {
        let nb = row
            .string_map("external_ids")
            .get("nb-acl")
            .and_then(|s| Uuid::parse_str(s).ok());
        let Some((nb, a)) = nb.and_then(|n| want.get(&n).map(|a| (n, a))) else {
            txn.delete("ACL", by_uuid(u));
            ops += 1;
            continue;
        };
        if !seen.insert(nb) {
            txn.delete("ACL", by_uuid(u));
            ops += 1;
            continue;
        }
        let mut dps = row.uuids("datapaths");
        dps.sort();
        let have = AclRow {
            name: row.opt_string("name"),
            priority: row.integer("priority"),
            direction: row.string("direction"),
            matches: row.string("match"),
            action: row.string("action"),
            log: row.opt_bool("log").unwrap_or(false),
            severity: row.opt_string("severity"),
            meter: row.opt_string("meter"),
            datapaths: dps,
        };
        if have != *a {
            txn.update("ACL", by_uuid(u), acl_columns(&nb, a));
            ops += 1;
        }
    }
    for (nb, a) in want {
        if !seen.contains(nb) {
            txn.insert("ACL", acl_columns(nb, a));
            ops += 1;
        }
    }
    ops
}
