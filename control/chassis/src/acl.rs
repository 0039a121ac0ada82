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
//! resolves only the names its ACLs use. A logged ACL's `meter` is
//! resolved through SB's `Meter` and `Meter_Band` rows (for a fair NB
//! meter northd names one SB meter per ACL, as ovn-northd does); a name SB
//! has no meter of, or a meter with a band this dataplane cannot run,
//! leaves the ACL its default limit, said once in the log.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use dataplane::acl_log::Severity;
use dataplane::classifier::{Acl, AclAction, AclConfig, Direction};
use dataplane::meter::{Band, MeterConfig, MeterUnit};
use ovsdb::client::Replica;
use uuid::Uuid;

/// ACL rows left out because their match or action did not parse, and
/// those whose meter this chassis cannot run, so each is logged once.
#[derive(Debug, Default)]
pub struct Rejected {
    unparsed: Mutex<HashSet<Uuid>>,
    unmetered: Mutex<HashSet<Uuid>>,
}

impl Rejected {
    /// How many SB ACLs this chassis does not enforce because they do not
    /// parse.
    pub fn count(&self) -> usize {
        lock(&self.unparsed).len()
    }
}

fn lock(m: &Mutex<HashSet<Uuid>>) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// SB's meters by name, those whose unit and bands this dataplane runs
/// (every band a `drop` band, as OVN's schema has them).
fn meters(r: &Replica) -> HashMap<String, MeterConfig> {
    r.table("Meter")
        .filter_map(|(_, row)| {
            let unit = MeterUnit::parse(&row.string("unit"))?;
            let bands = row
                .uuids("bands")
                .iter()
                .map(|b| {
                    let band = r.get("Meter_Band", b)?;
                    (band.string("action") == "drop").then(|| Band {
                        rate: band.integer("rate").max(0) as u64,
                        burst_size: band.integer("burst_size").max(0) as u64,
                    })
                })
                .collect::<Option<Vec<Band>>>()?;
            let name = row.string("name");
            Some((name.clone(), MeterConfig { name, unit, bands }))
        })
        .collect()
}

/// The ACL configuration for the local datapaths (`datapaths`: SB
/// Datapath_Binding uuid → the switch name the dataplane knows it by).
pub fn config(r: &Replica, datapaths: &HashMap<Uuid, String>, rejected: &Rejected) -> AclConfig {
    let meters = meters(r);
    let mut acls = Vec::new();
    let mut bad = HashSet::new();
    let mut unmetered = HashSet::new();
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
            if lock(&rejected.unparsed).insert(u) {
                tracing::warn!(acl = %u, r#match = %text, error = ?parsed.err(), "SB ACL not enforced: it does not parse");
            }
            continue;
        };
        let log = row.opt_bool("log").unwrap_or(false);
        acls.push(Acl {
            name: row.opt_string("name").unwrap_or_default(),
            priority: row.integer("priority").clamp(0, 32767) as u16,
            direction,
            action,
            match_text: text,
            expr,
            log,
            severity: Severity::parse(row.opt_string("severity").as_deref()),
            meter: row.opt_string("meter").filter(|_| log).and_then(|name| {
                let m = meters.get(&name).cloned();
                if m.is_none() && unmetered.insert(u) && lock(&rejected.unmetered).insert(u) {
                    tracing::warn!(acl = %u, meter = %name, "SB has no meter of this name that this chassis can run: the ACL's log lines keep the default limit");
                }
                m
            }),
            switches,
        });
    }
    lock(&rejected.unparsed).retain(|u| bad.contains(u));
    lock(&rejected.unmetered).retain(|u| unmetered.contains(u));
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
