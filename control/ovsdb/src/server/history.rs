//! The transaction history `monitor_cond_since` resumes from (ovsdb-server(7) 4.1.15), kept
//! and trimmed exactly as a clustered ovsdb-server 3.1 keeps it (ovsdb/transaction.c
//! `ovsdb_txn_history_run`): at most [`super::ServerConfig::history_len`] transactions (100
//! in ovsdb-server), and, oldest first, no more than the database itself holds, counted in
//! atoms; the newest transaction always stays. A client whose last id fell out of the history
//! gets the whole database again, which ovsdb-server judges cheaper than replaying a history
//! larger than the database. (A standalone ovsdb-server keeps no history at all; we keep it
//! for every database, see the `monitor_cond_since` differential test.)

use std::collections::VecDeque;
use std::sync::Arc;

use uuid::Uuid;

use crate::database::{Changeset, Database, Row};
use crate::schema::TableSchema;

/// Committed transactions, oldest first, with the atom counts that bound them.
#[derive(Default)]
pub(super) struct History {
    txns: VecDeque<(Arc<Changeset>, u64)>,
    /// Atoms of the transactions in `txns`.
    atoms: u64,
    /// Atoms of the whole database (ovsdb-server's `db->n_atoms`).
    db_atoms: u64,
}

/// ovsdb/transaction.c `ovsdb_txn_row_count_atoms`: one per element of every column, two per
/// map pair, `_uuid` and `_version` included.
fn row_atoms(ts: &TableSchema, row: &Row) -> u64 {
    let user: usize = ts
        .columns
        .iter()
        .zip(&row.cols)
        .map(|(c, d)| d.len() * if c.type_.value.is_some() { 2 } else { 1 })
        .sum();
    2 + user as u64
}

impl History {
    /// The history of a database served from now on: empty, its atoms counted once.
    pub(super) fn new(db: &Database) -> Self {
        let db_atoms = db
            .tables
            .iter()
            .zip(&db.schema.tables)
            .map(|(t, ts)| t.rows.values().map(|r| row_atoms(ts, r)).sum::<u64>())
            .sum();
        History {
            db_atoms,
            ..History::default()
        }
    }

    /// Records a committed changeset of `db` and trims the history.
    pub(super) fn push(&mut self, db: &Database, cs: Arc<Changeset>, max_len: usize) {
        let (mut old, mut new) = (0u64, 0u64);
        for c in &cs.changes {
            let ts = &db.schema.tables[c.table];
            old += c.old.as_deref().map_or(0, |r| row_atoms(ts, r));
            new += c.new.as_deref().map_or(0, |r| row_atoms(ts, r));
        }
        self.db_atoms = (self.db_atoms + new).saturating_sub(old);
        self.atoms += old + new;
        self.txns.push_back((cs, old + new));
        while self.txns.len() > 1 && (self.txns.len() > max_len || self.atoms > self.db_atoms) {
            if let Some((_, n)) = self.txns.pop_front() {
                self.atoms -= n;
            }
        }
    }

    /// The transactions committed after `txn_id`, if it is in the history.
    pub(super) fn since(&self, txn_id: Uuid) -> Option<Vec<&Changeset>> {
        let i = self.txns.iter().position(|(c, _)| c.txn_id == txn_id)?;
        Some(
            self.txns
                .iter()
                .skip(i + 1)
                .map(|(c, _)| c.as_ref())
                .collect(),
        )
    }
}
