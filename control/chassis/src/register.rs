//! Registration: this chassis's `Chassis` row with its `Encap`s, and its
//! `Chassis_Private` row, as ovn-controller writes them.
//!
//! Idempotent: the row named after this chassis is reused (its encaps and
//! hostname rewritten when the configuration changed), never inserted a
//! second time, which SB's index on `Chassis.name` (and on
//! `Chassis_Private.name`) would refuse. That needs the replica to show a
//! row as soon as it exists: the first round runs on a synchronized
//! replica, and a round that inserts either row waits until the replica
//! holds what it inserted ([`Registration::inserted`], waited for by the
//! controller), so the next round cannot plan the same insert again while
//! the first one is in flight.
//!
//! SB's index on `Encap`'s `(type, ip)` lets one chassis only own an
//! endpoint; a chassis configured with another's endpoint (two nodes left
//! on the default `--encap-ip 127.0.0.1`) would have its insert refused on
//! every round, forever. Registration therefore checks the replica first:
//! an endpoint another chassis holds is not written, and the conflict is
//! reported ([`Registration::conflict`]) with what to change.

use ovsdb::client::rows::{Chassis, ChassisPrivate, Encap};
use ovsdb::client::txn::{by_uuid, map, refs};
use ovsdb::client::{Replica, RowId, Transaction};
use serde_json::json;
use uuid::Uuid;

use crate::{ControllerConfig, EncapConfig};

/// What registration found and what it writes.
pub(crate) struct Registration {
    /// Our Chassis row, once the replica has it.
    pub me: Option<Uuid>,
    /// Our Chassis_Private row and the `nb_cfg` it acknowledges.
    pub private: Option<(Uuid, i64)>,
    /// The rows this round's transaction inserts (table, row), which the
    /// replica must show before the next round plans.
    pub inserted: Vec<(&'static str, RowId)>,
    /// Why this chassis cannot register: an endpoint of ours that another
    /// chassis holds in SB.
    pub conflict: Option<String>,
}

/// Plans this chassis's registration into `txn`.
pub(crate) fn register(
    cfg: &ControllerConfig,
    r: &Replica,
    chassis: &[Chassis],
    txn: &mut Transaction,
) -> Registration {
    let mut inserted = Vec::new();
    let me = chassis.iter().find(|c| c.name == cfg.chassis);
    if let Some(conflict) = endpoint_conflict(cfg, r) {
        return Registration {
            me: me.map(|c| c.uuid),
            private: None,
            inserted,
            conflict: Some(conflict),
        };
    }
    let chassis_ref = match me {
        Some(row) => {
            let have: Vec<EncapConfig> = row
                .encaps
                .iter()
                .filter_map(|e| r.row::<Encap>(e))
                .map(|e| EncapConfig {
                    encap_type: e.encap_type,
                    ip: e.ip,
                })
                .collect();
            let same = have.len() == cfg.encaps.len()
                && cfg.encaps.iter().all(|e| have.contains(e))
                && row.hostname == cfg.hostname;
            if !same {
                let encaps = insert_encaps(cfg, txn);
                txn.update(
                    "Chassis",
                    by_uuid(row.uuid),
                    [("hostname", json!(cfg.hostname)), ("encaps", refs(&encaps))],
                );
            }
            let macs = crate::chassis_mac::format(&cfg.chassis_macs);
            if row
                .other_config
                .get(crate::chassis_mac::KEY)
                .map_or("", String::as_str)
                != macs
            {
                txn.update(
                    "Chassis",
                    by_uuid(row.uuid),
                    [("other_config", other_config(&row.other_config, &macs))],
                );
            }
            RowId::Existing(row.uuid)
        }
        None => {
            let encaps = insert_encaps(cfg, txn);
            let row = txn.insert(
                "Chassis",
                [
                    ("name", json!(cfg.chassis)),
                    ("hostname", json!(cfg.hostname)),
                    ("encaps", refs(&encaps)),
                    (
                        "other_config",
                        other_config(
                            &Default::default(),
                            &crate::chassis_mac::format(&cfg.chassis_macs),
                        ),
                    ),
                ],
            );
            inserted.push(("Chassis", row.clone()));
            row
        }
    };
    let me = me.map(|c| c.uuid);
    let private = r
        .rows::<ChassisPrivate>()
        .into_iter()
        .find(|p| p.name == cfg.chassis);
    match &private {
        None => {
            let row = txn.insert(
                "Chassis_Private",
                [
                    ("name", json!(cfg.chassis)),
                    ("chassis", chassis_ref.to_json()),
                ],
            );
            inserted.push(("Chassis_Private", row));
        }
        Some(p) if p.chassis.is_none() || p.chassis != me => {
            txn.update(
                "Chassis_Private",
                by_uuid(p.uuid),
                [("chassis", chassis_ref.to_json())],
            );
        }
        Some(_) => {}
    }
    Registration {
        me,
        private: private.map(|p| (p.uuid, p.nb_cfg)),
        inserted,
        conflict: None,
    }
}

/// `other_config` with our chassis MAC mappings in place of what it had
/// (none: the key removed).
fn other_config(
    have: &std::collections::BTreeMap<String, String>,
    macs: &str,
) -> serde_json::Value {
    let mut m = have.clone();
    m.remove(crate::chassis_mac::KEY);
    if !macs.is_empty() {
        m.insert(crate::chassis_mac::KEY.into(), macs.into());
    }
    map(m)
}

/// An endpoint of ours (type and IP) that SB gives another chassis.
fn endpoint_conflict(cfg: &ControllerConfig, r: &Replica) -> Option<String> {
    let encaps = r.rows::<Encap>();
    cfg.encaps.iter().find_map(|want| {
        let theirs = encaps.iter().find(|e| {
            e.encap_type == want.encap_type && e.ip == want.ip && e.chassis_name != cfg.chassis
        })?;
        Some(format!(
            "chassis {:?} already has the {} endpoint {} in SB; give chassis {:?} an \
             address of its own with --encap-ip",
            theirs.chassis_name, want.encap_type, want.ip, cfg.chassis
        ))
    })
}

fn insert_encaps(cfg: &ControllerConfig, txn: &mut Transaction) -> Vec<RowId> {
    cfg.encaps
        .iter()
        .map(|e| {
            txn.insert(
                "Encap",
                [
                    ("type", json!(e.encap_type)),
                    ("ip", json!(e.ip)),
                    ("chassis_name", json!(cfg.chassis)),
                    ("options", map([("csum", "true")])),
                ],
            )
        })
        .collect()
}
