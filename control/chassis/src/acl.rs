//! SB's typed `ACL`, `Port_Group` and `Address_Set` rows → the
//! dataplane's [`AclConfig`], for the datapaths this chassis has.
//!
//! An ACL row lists the datapaths it applies to (northd-lite resolves
//! port groups to switches); the chassis keeps those of its local
//! datapaths and parses each match with `ovn-expr`, the parser northd-lite
//! validated it with. A match that does not parse here (an SB written by
//! someone else) is logged once and left out; the dataplane reports what
//! it could not compile (an unknown port group or address set) the same
//! way. Port groups and address sets are passed whole: the dataplane
//! resolves only the names its ACLs use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use dataplane::acl_log::Severity;
use dataplane::classifier::{Acl, AclAction, AclConfig, Direction};
use ovsdb::client::Replica;
use uuid::Uuid;

/// ACL rows left out because their match or action did not parse, so each
/// is logged once.
#[derive(Debug, Default)]
pub struct Rejected(Mutex<HashSet<Uuid>>);

impl Rejected {
    /// How many SB ACLs this chassis does not enforce because they do not
    /// parse.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The ACL configuration for the local datapaths (`datapaths`: SB
/// Datapath_Binding uuid → the switch name the dataplane knows it by).
pub fn config(r: &Replica, datapaths: &HashMap<Uuid, String>, rejected: &Rejected) -> AclConfig {
    let mut acls = Vec::new();
    let mut bad = HashSet::new();
    for (u, row) in r.table("ACL") {
        let switches: Vec<String> = row
            .uuids("datapaths")
            .iter()
            .filter_map(|d| datapaths.get(d).cloned())
            .collect();
        if switches.is_empty() {
            continue;
        }
        let text = row.string("match");
        let direction = match row.string("direction").as_str() {
            "from-lport" => Some(Direction::FromLport),
            "to-lport" => Some(Direction::ToLport),
            _ => None,
        };
        let action = AclAction::parse(&row.string("action"));
        let parsed = ovn_expr::parse(&text).map_err(|e| e.to_string());
        let (Some(direction), Some(action), Ok(expr)) = (direction, action, parsed.clone()) else {
            bad.insert(u);
            let mut seen = rejected.0.lock().unwrap_or_else(|p| p.into_inner());
            if seen.insert(u) {
                tracing::warn!(acl = %u, r#match = %text, error = ?parsed.err(), "SB ACL not enforced: it does not parse");
            }
            continue;
        };
        acls.push(Acl {
            name: row.opt_string("name").unwrap_or_default(),
            priority: row.integer("priority").clamp(0, 32767) as u16,
            direction,
            action,
            match_text: text,
            expr,
            log: row.opt_bool("log").unwrap_or(false),
            severity: Severity::parse(row.opt_string("severity").as_deref()),
            switches,
        });
    }
    rejected
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|u| bad.contains(u));
    // A stable order, so an unchanged SB gives an equal configuration and
    // the dataplane does not republish.
    acls.sort_by(|a, b| {
        (a.priority, a.direction.as_str(), &a.match_text, &a.name).cmp(&(
            b.priority,
            b.direction.as_str(),
            &b.match_text,
            &b.name,
        ))
    });
    let named = |table: &str, column: &str| -> BTreeMap<String, Vec<String>> {
        r.table(table)
            .map(|(_, row)| {
                let mut v = row.strings(column);
                v.sort();
                (row.string("name"), v)
            })
            .collect()
    };
    AclConfig {
        acls,
        port_groups: named("Port_Group", "ports"),
        address_sets: named("Address_Set", "addresses"),
    }
}
