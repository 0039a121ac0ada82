//! NB intent that northd-lite stores nowhere a chassis enforces, said out loud.
//!
//! switchyard serves OVN's complete NB schema (so Neutron and `ovn-nbctl` can write anything),
//! but northd-lite compiles only switches, ports, ACLs with port groups and address sets,
//! routers and their static routes (issue 15: stored intent must never pass for enforced
//! intent). This module counts, per feature, the NB rows of everything else — load
//! balancers, QoS, NAT, DHCP, DNS, router policies, gateway and HA chassis, BFD,
//! mirrors, … ([`FEATURES`]), static routes of a non-default `route_table`, which SB
//! carries but the chassis leaves out, and meters no logged ACL uses (chassis run meters for
//! ACL logs only).
//!
//! The report goes into SB, as `SB_Global.external_ids:switchyard-unrealised-<feature>=<rows>`
//! ([`ovsdb::client::rows::UNREALISED_PREFIX`]): ovn-northd keeps its own outputs in
//! `SB_Global.options` the same way. So `ovn-sbctl get SB_Global . external_ids` shows it,
//! and every node, which already monitors SB_Global, lists it beside its own "not enforced"
//! items in `switchyard show` and on `/metrics` (`switchyard_controller_unenforced{kind=
//! "nb_<feature>"}`), without northd-lite serving a port of its own. Northd-lite logs the
//! report when it changes, never per round. Keys of features that are gone are removed.

use std::collections::BTreeMap;

use ovsdb::client::rows::UNREALISED_PREFIX;
use ovsdb::client::txn::{by_uuid, map, set};
use ovsdb::client::{Replica, TableRequest, Transaction};

use crate::router::NB_ROUTES;

/// A feature counted by the rows of one NB table: (feature, table, the one small column
/// monitored, since only the rows' presence matters).
pub const FEATURES: [(&str, &str, &str); 16] = [
    ("load_balancer", "Load_Balancer", "name"),
    ("load_balancer_group", "Load_Balancer_Group", "name"),
    (
        "load_balancer_health_check",
        "Load_Balancer_Health_Check",
        "vip",
    ),
    ("qos", "QoS", "priority"),
    ("nat", "NAT", "type"),
    ("dhcp_options", "DHCP_Options", "cidr"),
    ("dns", "DNS", "records"),
    ("logical_router_policy", "Logical_Router_Policy", "priority"),
    ("copp", "Copp", "name"),
    ("gateway_chassis", "Gateway_Chassis", "name"),
    ("ha_chassis_group", "HA_Chassis_Group", "name"),
    ("bfd", "BFD", "logical_port"),
    ("mirror", "Mirror", "name"),
    ("forwarding_group", "Forwarding_Group", "name"),
    ("static_mac_binding", "Static_MAC_Binding", "logical_port"),
    ("chassis_template_var", "Chassis_Template_Var", "chassis"),
];

/// Static routes of a `route_table` other than the default (the chassis routes with the
/// main table only).
pub const ROUTE_TABLE: &str = "route_table";

/// Meters that no logged ACL names.
pub const METER: &str = "meter";

/// Rows per feature, features without rows absent.
pub type Report = BTreeMap<&'static str, u64>;

/// What northd-lite monitors in NB for the report (the static routes it monitors anyway).
pub fn monitor_requests() -> Vec<TableRequest> {
    FEATURES
        .iter()
        .map(|(_, table, column)| TableRequest {
            table: table.to_string(),
            columns: Some(vec![column.to_string()]),
            condition: None,
        })
        .collect()
}

/// Counts the unrealised rows in the NB replica.
pub fn count(nb: &Replica) -> Report {
    let mut report = Report::new();
    for (feature, table, _) in FEATURES {
        let n = nb.table(table).count() as u64;
        if n > 0 {
            report.insert(feature, n);
        }
    }
    let routes = nb
        .table(NB_ROUTES)
        .filter(|(_, r)| !r.string("route_table").is_empty())
        .count() as u64;
    if routes > 0 {
        report.insert(ROUTE_TABLE, routes);
    }
    let logged: std::collections::HashSet<String> = nb
        .table("ACL")
        .filter(|(_, a)| a.opt_bool("log").unwrap_or(false))
        .filter_map(|(_, a)| a.opt_string("meter"))
        .collect();
    let meters = nb
        .table("Meter")
        .filter(|(_, m)| !logged.contains(&m.string("name")))
        .count() as u64;
    if meters > 0 {
        report.insert(METER, meters);
    }
    report
}

/// "2 load_balancer, 1 qos" ("nothing" when empty).
pub fn describe(report: &Report) -> String {
    if report.is_empty() {
        return "nothing".into();
    }
    report
        .iter()
        .map(|(f, n)| format!("{n} {f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds to `txn` what makes SB_Global's keys of ours say `report`; returns the number of
/// operations (0 when SB already says it, or SB_Global does not exist yet: it is written
/// next round).
pub fn diff(report: &Report, sb: &Replica, txn: &mut Transaction) -> usize {
    let Some((g, global)) = sb.table("SB_Global").next() else {
        return 0;
    };
    let have: BTreeMap<String, String> = global
        .string_map("external_ids")
        .into_iter()
        .filter(|(k, _)| k.starts_with(UNREALISED_PREFIX))
        .collect();
    let want: BTreeMap<String, String> = report
        .iter()
        .map(|(f, n)| (format!("{UNREALISED_PREFIX}{f}"), n.to_string()))
        .collect();
    if have == want {
        return 0;
    }
    // RFC 7047 §5.1 mutate: "insert" keeps a key that is there, so delete ours first.
    txn.mutate(
        "SB_Global",
        by_uuid(g),
        [
            ("external_ids", "delete", set(have.into_keys())),
            ("external_ids", "insert", map(want)),
        ],
    );
    1
}

/// Logs `now` if it differs from `last`, and keeps it.
pub fn log_change(last: &mut Option<Report>, now: &Report) {
    if last.as_ref() == Some(now) {
        return;
    }
    if now.is_empty() {
        if last.is_some() {
            tracing::info!("NB holds no intent that northd-lite leaves unrealised");
        }
    } else {
        tracing::warn!(
            "NB holds intent northd-lite does not realise (stored, not enforced by any chassis): {} \
             (see SB_Global external_ids {UNREALISED_PREFIX}*)",
            describe(now)
        );
    }
    *last = Some(now.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_lists_features_in_name_order() {
        let r: Report = [("qos", 1), ("load_balancer", 2)].into();
        assert_eq!(describe(&r), "2 load_balancer, 1 qos");
        assert_eq!(describe(&Report::new()), "nothing");
    }

    /// Every table and column counted is OVN's, as the NB schema we serve has it.
    #[test]
    fn features_name_tables_and_columns_of_the_nb_schema() {
        let nb = ovsdb::schemas::parse(ovsdb::schemas::OVN_NB).unwrap();
        for (feature, table, column) in FEATURES {
            let t = nb
                .table(table)
                .unwrap_or_else(|| panic!("{feature}: no table {table}"));
            assert!(nb.tables[t].column(column).is_some(), "{table}.{column}");
        }
    }
}
