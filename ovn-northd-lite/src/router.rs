//! Logical routers' static routes into SB.
//!
//! OVN carries routes to chassis only as `lr_in_ip_routing` logical flows;
//! switchyard carries them as SB `Logical_Router_Static_Route` rows named
//! after the NB table and its columns (`ip_prefix`, `nexthop`, `policy`,
//! `output_port`, `route_table`), each referencing its router's
//! Datapath_Binding, so a chassis compiles typed rows and `ovn-sbctl list`
//! shows them. Router ports need no table of their own: their MAC and
//! networks are in their patch Port_Binding's `mac`, as in OVN.
//!
//! The rows are compared as a multiset of their contents (a route has no
//! name to key it by), whenever NB routers or routes, or SB datapaths or
//! routes, changed: few rows, so no finer bookkeeping. A new router's
//! routes go in once its Datapath_Binding is in SB (the round after), and
//! `SB_Global.nb_cfg` waits for them, so `ovn-nbctl --wait=sb` still means
//! SB holds them.

use std::collections::HashMap;

use ovsdb::client::txn::{by_uuid, set, uuid};
use ovsdb::client::{Changes, Replica, RowRef, Transaction};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::sync::SbIndex;

pub const NB_ROUTES: &str = "Logical_Router_Static_Route";
pub const SB_ROUTES: &str = "Logical_Router_Static_Route";

/// One route as SB holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Route {
    datapath: Uuid,
    ip_prefix: String,
    nexthop: String,
    policy: Option<String>,
    output_port: Option<String>,
    route_table: String,
}

impl Route {
    fn from_row(datapath: Uuid, r: &RowRef<'_>) -> Route {
        Route {
            datapath,
            ip_prefix: r.string("ip_prefix"),
            nexthop: r.string("nexthop"),
            policy: r.opt_string("policy"),
            output_port: r.opt_string("output_port"),
            route_table: r.string("route_table"),
        }
    }

    fn row(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("datapath", uuid(self.datapath)),
            ("ip_prefix", json!(self.ip_prefix)),
            ("nexthop", json!(self.nexthop)),
            ("policy", set(self.policy.iter().cloned())),
            ("output_port", set(self.output_port.iter().cloned())),
            ("route_table", json!(self.route_table)),
        ]
    }
}

/// Whether this round's changes can change the routes SB should hold.
pub fn affected(nb: &Changes, sb: &Changes) -> bool {
    nb.resync
        || sb.resync
        || nb.table("Logical_Router").next().is_some()
        || nb.table(NB_ROUTES).next().is_some()
        || sb.table("Datapath_Binding").next().is_some()
        || sb.table(SB_ROUTES).next().is_some()
}

/// What [`diff`] added to a transaction.
pub struct Diff {
    pub ops: usize,
    /// Some router with routes has no Datapath_Binding in SB yet (this
    /// round's transaction inserts it): its routes follow in the next
    /// round, and SB does not reflect the configuration before.
    pub pending: bool,
}

/// Adds to `txn` what makes SB's routes those of NB's routers whose
/// datapaths SB already has.
pub fn diff(nb: &Replica, sb: &Replica, index: &SbIndex, txn: &mut Transaction) -> Diff {
    let mut want: HashMap<Route, usize> = HashMap::new();
    let mut pending = false;
    for (lr, row) in nb.table("Logical_Router") {
        let Some(dp) = index.datapath(&lr) else {
            pending |= !row.uuids("static_routes").is_empty();
            continue;
        };
        for u in row.uuids("static_routes") {
            if let Some(r) = nb.get(NB_ROUTES, &u) {
                *want.entry(Route::from_row(dp, &r)).or_default() += 1;
            }
        }
    }
    let mut ops = 0;
    for (u, row) in sb.table(SB_ROUTES) {
        let have = row.opt_uuid("datapath").map(|dp| Route::from_row(dp, &row));
        match have.as_ref().and_then(|h| want.get_mut(h)) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                txn.delete(SB_ROUTES, by_uuid(u));
                ops += 1;
            }
        }
    }
    for (r, n) in want {
        for _ in 0..n {
            txn.insert(SB_ROUTES, r.row());
            ops += 1;
        }
    }
    Diff { ops, pending }
}
