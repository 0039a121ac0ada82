//! NB `Meter` and `Meter_Band` → SB's, as ovn-northd 23.03 syncs them
//! (`sync_meters`): every NB meter becomes an SB meter of the same name,
//! unit and bands; a `fair` meter also becomes one SB meter per logged ACL
//! that names it, `<meter>__<ACL uuid>`, and that ACL's log goes through
//! its own copy, so a noisy ACL cannot use up the others' rate (ovn-nb(5),
//! Meter: `fair`). As in 23.03, an ACL that names a fair meter gets its
//! copy even if it does not log (later OVN skips those, commit ef2cd583;
//! tests/acl_meters.rs compares with the real ovn-northd).
//! SB's ACL row carries the name its log goes through ([`acl_meter`]),
//! where OVN's logical flow has `log(meter="…")`.
//!
//! The chassis runs these meters for ACL log lines only; a meter no logged
//! ACL uses (one for `Copp`, say) is reported as unrealised.

use std::collections::BTreeMap;

use ovsdb::client::txn::{by_uuid, refs};
use ovsdb::client::{Changes, Replica, RowId, RowRef, Transaction};
use serde_json::json;
use uuid::Uuid;

/// NB tables whose changes may change SB's meters.
pub const NB_TABLES: [&str; 3] = ["Meter", "Meter_Band", "ACL"];
/// SB tables this module owns.
pub const SB_TABLES: [&str; 2] = ["Meter", "Meter_Band"];

/// A meter's unit and its bands (action, rate, burst_size), sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Meter {
    unit: String,
    bands: Vec<(String, i64, i64)>,
}

impl Meter {
    fn of(db: &Replica, row: &RowRef<'_>) -> Meter {
        let mut bands: Vec<(String, i64, i64)> = row
            .uuids("bands")
            .iter()
            .filter_map(|b| db.get("Meter_Band", b))
            .map(|b| {
                (
                    b.string("action"),
                    b.integer("rate"),
                    b.integer("burst_size"),
                )
            })
            .collect();
        bands.sort();
        Meter {
            unit: row.string("unit"),
            bands,
        }
    }
}

/// Whether this round's changes can concern meters.
pub fn relevant(nb: &Changes, sb: &Changes) -> bool {
    nb.resync
        || sb.resync
        || NB_TABLES.iter().any(|t| nb.table(t).next().is_some())
        || SB_TABLES.iter().any(|t| sb.table(t).next().is_some())
}

/// Whether NB's meter `name` is fair.
fn fair(nb: &Replica, name: &str) -> bool {
    nb.table("Meter")
        .any(|(_, m)| m.string("name") == name && m.opt_bool("fair").unwrap_or(false))
}

/// SB's `meter` for an NB ACL: for a logged ACL the meter its log goes
/// through (a fair meter's copy for this ACL, or the meter itself), else
/// NB's value as it is.
pub fn acl_meter(nb: &Replica, acl: &Uuid, row: &RowRef<'_>) -> Option<String> {
    let name = row.opt_string("meter")?;
    Some(if row.opt_bool("log").unwrap_or(false) && fair(nb, &name) {
        format!("{name}__{acl}")
    } else {
        name
    })
}

/// The SB meters NB asks for, by name.
fn wanted(nb: &Replica) -> BTreeMap<String, Meter> {
    let mut want = BTreeMap::new();
    for (_, row) in nb.table("Meter") {
        want.insert(row.string("name"), Meter::of(nb, &row));
    }
    for (u, acl) in nb.table("ACL") {
        let Some(name) = acl.opt_string("meter").filter(|n| fair(nb, n)) else {
            continue;
        };
        if let Some(m) = want.get(&name).cloned() {
            want.insert(format!("{name}__{u}"), m);
        }
    }
    want
}

/// Adds to `txn` what makes SB's meters NB's; returns the operations.
pub fn diff(nb: &Replica, sb: &Replica, txn: &mut Transaction) -> usize {
    let mut want = wanted(nb);
    let mut ops = 0;
    for (u, row) in sb.table("Meter") {
        match want.remove(&row.string("name")) {
            Some(m) if m == Meter::of(sb, &row) => {}
            Some(m) => {
                // The old bands go with the reference (Meter_Band is not a root table).
                let bands = insert_bands(&m, txn);
                txn.update(
                    "Meter",
                    by_uuid(u),
                    [("unit", json!(m.unit)), ("bands", refs(&bands))],
                );
                ops += 1 + bands.len();
            }
            None => {
                txn.delete("Meter", by_uuid(u));
                ops += 1;
            }
        }
    }
    for (name, m) in want {
        let bands = insert_bands(&m, txn);
        txn.insert(
            "Meter",
            [
                ("name", json!(name)),
                ("unit", json!(m.unit)),
                ("bands", refs(&bands)),
            ],
        );
        ops += 1 + bands.len();
    }
    ops
}

fn insert_bands(m: &Meter, txn: &mut Transaction) -> Vec<RowId> {
    m.bands
        .iter()
        .map(|(action, rate, burst)| {
            txn.insert(
                "Meter_Band",
                [
                    ("action", json!(action)),
                    ("rate", json!(rate)),
                    ("burst_size", json!(burst)),
                ],
            )
        })
        .collect()
}
