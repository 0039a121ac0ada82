//! Learnt neighbours: the bindings the dataplane's routers learn from ARP
//! and neighbour discovery ([`NeighborLog`]), handled as ovn-controller's
//! pinctrl handles `put_arp`/`put_nd` (pinctrl.c `run_put_mac_bindings`,
//! `mac_binding_add_to_sb`):
//!
//! - into this chassis' tables at once: each round installs the pending
//!   bindings over SB's, so forwarding resumes without waiting for SB;
//! - into SB `MAC_Binding` (`logical_port`, `ip`, `mac`, `datapath`,
//!   `timestamp`), found by its index (`logical_port`, `ip`): a row with
//!   another MAC is updated, with a new timestamp; without a row one is
//!   inserted; an equal row is left alone. Every chassis reads MAC_Binding
//!   ([`crate::router`]), so they all route with the binding.
//!
//! A binding is pending until SB shows it; from then on SB's row is what
//! the tables use (so a later change there, by another chassis, wins).
//! The writes go in a transaction of their own: two chassis inserting the
//! same binding at once make one of them fail on SB's index, and that one
//! finds the row on its next round and leaves it (or updates it).

use std::collections::BTreeMap;
use std::net::IpAddr;

use dataplane::neighbor_log::NeighborLog;
use dataplane::routes::{LogicalRouter, MacBinding};
use dataplane::wire::MacAddr;
use ovsdb::client::rows::PortBinding;
use ovsdb::client::txn::{by_uuid, uuid};
use ovsdb::client::{Replica, RowId, Transaction};
use serde_json::json;
use uuid::Uuid;

use crate::SB;

const TABLE: &str = "MAC_Binding";

/// Bindings learnt here that SB does not show yet: (router port, IP) →
/// MAC.
#[derive(Debug, Default)]
pub(crate) struct Pending(BTreeMap<(String, IpAddr), MacAddr>);

/// SB's MAC_Binding row for (`port`, `ip`), and its MAC.
fn row(r: &Replica, port: &str, ip: IpAddr) -> Option<(Uuid, Option<MacAddr>)> {
    r.table(TABLE).find_map(|(u, row)| {
        let same = row.string("logical_port") == port
            && row.string("ip").parse::<IpAddr>().ok() == Some(ip);
        same.then(|| (u, row.string("mac").parse().ok()))
    })
}

impl Pending {
    /// Takes what the routers learnt since the last call; true if any of
    /// it is news to this chassis.
    pub fn take(&mut self, log: &NeighborLog) -> bool {
        let mut news = false;
        for l in log.drain() {
            let key = (l.port.to_string(), l.ip);
            news |= self.0.insert(key, l.mac) != Some(l.mac);
        }
        news
    }

    /// Forgets the bindings SB shows as learnt.
    pub fn settle(&mut self, r: &Replica) {
        self.0
            .retain(|(port, ip), mac| row(r, port, *ip).and_then(|(_, m)| m) != Some(*mac));
    }

    /// Puts the pending bindings into `routers` (over SB's for the same
    /// port and IP).
    pub fn overlay(&self, routers: &mut [LogicalRouter]) {
        for ((port, ip), mac) in &self.0 {
            let Some(lr) = routers
                .iter_mut()
                .find(|lr| lr.ports.iter().any(|p| p.name == *port))
            else {
                continue;
            };
            match lr
                .mac_bindings
                .iter_mut()
                .find(|b| b.logical_port == *port && b.ip == *ip)
            {
                Some(b) => b.mac = *mac,
                None => lr.mac_bindings.push(MacBinding {
                    logical_port: port.clone(),
                    ip: *ip,
                    mac: *mac,
                }),
            }
            lr.mac_bindings
                .sort_by(|a, b| (&a.logical_port, a.ip).cmp(&(&b.logical_port, b.ip)));
        }
    }

    /// The SB writes for the pending bindings, and the rows it inserts.
    /// A binding whose router port SB no longer has is dropped.
    pub fn transaction(
        &mut self,
        r: &Replica,
        bindings: &[PortBinding],
        now_ms: i64,
    ) -> (Transaction, Vec<RowId>) {
        let mut txn = Transaction::new(SB);
        let mut inserted = Vec::new();
        self.0.retain(|(port, ip), mac| {
            let mac_s = json!(mac.to_string());
            match row(r, port, *ip) {
                Some((u, _)) => {
                    txn.update(
                        TABLE,
                        by_uuid(u),
                        [("mac", mac_s), ("timestamp", json!(now_ms))],
                    );
                    true
                }
                None => {
                    let dp = bindings
                        .iter()
                        .find(|pb| pb.logical_port == *port)
                        .and_then(|pb| pb.datapath);
                    let Some(dp) = dp else {
                        tracing::warn!(port = %port, %ip, %mac, "learnt binding dropped: SB has no such router port");
                        return false;
                    };
                    inserted.push(txn.insert(
                        TABLE,
                        [
                            ("logical_port", json!(port)),
                            ("ip", json!(ip.to_string())),
                            ("mac", mac_s),
                            ("datapath", uuid(dp)),
                            ("timestamp", json!(now_ms)),
                        ],
                    ));
                    true
                }
            }
        });
        (txn, inserted)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
