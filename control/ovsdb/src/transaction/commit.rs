//! Committing a transaction (RFC 7047 §4.1.3 and ovsdb(7)'s commit rules), as ovsdb-server's
//! ovsdb/transaction.c does it and with its error texts: drop changes that change nothing,
//! scrub weak references to rows that are gone (and fail a column left under its minimum),
//! garbage-collect unreferenced rows of non-root tables, check strong references, unique
//! indexes and `maxRows`, and hand back the [`Changeset`]. Apart from the operations because
//! it sees the transaction as a whole, after the last operation ran.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::{Change, Transaction};
use crate::database::{for_each_ref, Changeset, Database, Row, RowChange};
use crate::datum::{Atom, Datum};
use crate::error::{OvsdbError, Result};
use crate::schema::TableSchema;
use crate::uuidgen::new_uuid;

impl Transaction<'_> {
    /// Validates the pending changes and turns them into a changeset (RFC 7047 §5.2 commit
    /// semantics: referential integrity, garbage collection, indexes, maxRows).
    pub fn commit(mut self) -> Result<Changeset> {
        if let Some((name, _)) = self.symbols.map.iter().find(|(_, (_, created))| !created) {
            return Err(OvsdbError::referential_integrity(format!(
                "named-uuid \"{name}\" is used but no insert creates it"
            )));
        }
        // Drop changes that change nothing.
        for table in &mut self.changes {
            table.retain(|_, c| match (&c.old, &c.new) {
                (None, None) => false,
                (Some(o), Some(n)) => o.cols != *n,
                _ => true,
            });
        }
        let schema = self.schema;
        // Strong reference count deltas per target row.
        let mut delta: HashMap<Uuid, (usize, i64)> = HashMap::new();
        for (t, table) in self.changes.iter().enumerate() {
            let ts = &schema.tables[t];
            if ts.ref_columns.is_empty() {
                continue;
            }
            for c in table.values() {
                if let Some(o) = &c.old {
                    for_each_ref(ts, &o.cols, |tt, u, strong| {
                        if strong {
                            delta.entry(u).or_insert((tt, 0)).1 -= 1;
                        }
                    });
                }
                if let Some(n) = &c.new {
                    for_each_ref(ts, n, |tt, u, strong| {
                        if strong {
                            delta.entry(u).or_insert((tt, 0)).1 += 1;
                        }
                    });
                }
            }
        }
        let mut dirty: Vec<(usize, Uuid)> = Vec::new();
        let mut deleted: Vec<(usize, Uuid)> = Vec::new();
        let mut gc: Vec<(usize, Uuid)> = delta
            .iter()
            .filter(|(_, (_, d))| *d < 0)
            .map(|(u, (t, _))| (*t, *u))
            .collect();
        for (t, table) in self.changes.iter().enumerate() {
            for (u, c) in table {
                match (&c.old, &c.new) {
                    (_, Some(_)) => {
                        if schema.tables[t].columns.iter().any(|c| c.has_weak_refs) {
                            dirty.push((t, *u));
                        }
                        if c.old.is_none() && !schema.tables[t].is_root {
                            gc.push((t, *u));
                        }
                    }
                    (Some(_), None) => deleted.push((t, *u)),
                    (None, None) => {}
                }
            }
        }
        let mut collected = false;
        while !(dirty.is_empty() && deleted.is_empty() && gc.is_empty()) {
            // Rows that weakly referred to deleted rows need scrubbing.
            while let Some((_, u)) = deleted.pop() {
                dirty.extend(self.db.weak_referrers(&u).iter().copied());
            }
            // RFC 7047 §3.2: weak references to rows that do not exist are removed.
            while let Some((t, u)) = dirty.pop() {
                let ts = &schema.tables[t];
                let Some((_, cols)) = self.get(t, &u) else {
                    continue;
                };
                let mut fixed: Vec<(usize, Datum)> = Vec::new();
                for &ci in &ts.ref_columns {
                    let ct = &ts.columns[ci].type_;
                    if !ts.columns[ci].has_weak_refs {
                        continue;
                    }
                    let key_weak = ct
                        .key
                        .is_weak_ref()
                        .then_some(ct.key.ref_table_index)
                        .flatten();
                    let val_weak = ct
                        .value
                        .as_ref()
                        .and_then(|v| v.is_weak_ref().then_some(v.ref_table_index).flatten());
                    let alive = |t: Option<usize>, a: &Atom| match (t, a.as_uuid()) {
                        (Some(t), Some(u)) => self.exists(t, &u),
                        _ => true,
                    };
                    let mut d = cols[ci].clone();
                    let before = d.len();
                    let mut zero = false;
                    d.retain(|k, v| {
                        let keep = alive(key_weak, k) && v.is_none_or(|v| alive(val_weak, v));
                        zero |= !keep && (k.as_uuid() == Some(Uuid::nil()));
                        keep
                    });
                    if d.len() != before {
                        if d.len() < ct.min {
                            let inserted = self.changes[t].get(&u).is_some_and(|c| c.old.is_none());
                            return Err(weak_ref_emptied(
                                ts,
                                ci,
                                &u,
                                before - d.len(),
                                inserted,
                                zero,
                            ));
                        }
                        fixed.push((ci, d));
                    }
                }
                if !fixed.is_empty() {
                    let cols = self.get_mut(t, u).expect("row exists");
                    for (ci, d) in fixed {
                        cols[ci] = d;
                    }
                }
            }
            // Garbage collection: rows of non-root tables with no strong references go.
            while let Some((t, u)) = gc.pop() {
                if schema.tables[t].is_root || !self.exists(t, &u) {
                    continue;
                }
                let count = self.db.strong_refs(&u) as i64 + delta.get(&u).map_or(0, |d| d.1);
                if count > 0 {
                    continue;
                }
                let ts = &schema.tables[t];
                if let Some((_, cols)) = self.get(t, &u) {
                    for_each_ref(ts, cols, |tt, target, strong| {
                        if strong {
                            delta.entry(target).or_insert((tt, 0)).1 -= 1;
                            gc.push((tt, target));
                        }
                    });
                }
                let was_committed = self.db.tables[t].rows.contains_key(&u);
                self.delete(t, u);
                if !was_committed {
                    self.changes[t].remove(&u);
                }
                deleted.push((t, u));
                collected = true;
            }
            // Pending rows may also refer weakly to collected rows.
            if std::mem::take(&mut collected) {
                for (pt, table) in self.changes.iter().enumerate() {
                    if schema.tables[pt].columns.iter().any(|c| c.has_weak_refs) {
                        dirty.extend(
                            table
                                .iter()
                                .filter(|(_, c)| c.new.is_some())
                                .map(|(pu, _)| (pt, *pu)),
                        );
                    }
                }
            }
        }
        // Strong references must point at rows that exist after the transaction.
        for (t, table) in self.changes.iter().enumerate() {
            let ts = &schema.tables[t];
            for (u, c) in table {
                let Some(n) = &c.new else { continue };
                for &ci in &ts.ref_columns {
                    let col = &ts.columns[ci];
                    if !col.has_strong_refs {
                        continue;
                    }
                    let check = |rt: Option<usize>, atoms: &[Atom]| -> Result<()> {
                        let Some(rt) = rt else { return Ok(()) };
                        for a in atoms {
                            let target = a.as_uuid().expect("uuid column");
                            if !self.exists(rt, &target) {
                                return Err(OvsdbError::referential_integrity(format!(
                                    "Table {} column {} row {u} references nonexistent row {target} in table {}.",
                                    ts.name, col.name, schema.tables[rt].name
                                )));
                            }
                        }
                        Ok(())
                    };
                    if col.type_.key.is_strong_ref() {
                        check(col.type_.key.ref_table_index, n[ci].keys())?;
                    }
                    if col.type_.value.as_ref().is_some_and(|v| v.is_strong_ref()) {
                        check(
                            col.type_.value.as_ref().and_then(|v| v.ref_table_index),
                            n[ci].values(),
                        )?;
                    }
                }
            }
            for (u, c) in table {
                if c.old.is_some() && c.new.is_none() {
                    let count = self.db.strong_refs(u) as i64 + delta.get(u).map_or(0, |d| d.1);
                    if count > 0 {
                        return Err(OvsdbError::referential_integrity(format!(
                            "cannot delete {} row {u} because of {count} remaining reference(s)",
                            ts.name
                        )));
                    }
                }
            }
        }
        self.check_indexes_and_sizes()?;
        let txn_id = new_uuid();
        // A row that a write changed stays changed (with a new `_version`) even if removing
        // weak references restored its old contents: ovsdb/transaction.c decides what changed
        // (`determine_changes`) before it assesses weak references.
        let mut changes = Vec::new();
        for (t, table) in self.changes.into_iter().enumerate() {
            for (uuid, c) in table {
                changes.push(RowChange {
                    table: t,
                    uuid,
                    old: c.old,
                    new: c.new.map(|cols| {
                        Arc::new(Row {
                            version: c.version,
                            cols,
                        })
                    }),
                });
            }
        }
        Ok(Changeset { txn_id, changes })
    }

    /// ovsdb/transaction.c `duplicate_index_row`: the rows in UUID order (greater first, as
    /// `ovsdb_row_compare_columns_3way` on all columns starting with `_uuid` puts them), each
    /// with what the transaction did to it.
    fn duplicate_index_row(
        &self,
        t: usize,
        index: usize,
        key: &[Datum],
        a: Uuid,
        b: Uuid,
    ) -> OvsdbError {
        let ts = &self.schema.tables[t];
        let cols = &ts.indexes[index];
        let (a, b) = if a < b { (b, a) } else { (a, b) };
        let values = |vals: &[Datum]| -> String {
            let n = vals.len();
            vals.iter()
                .zip(cols)
                .enumerate()
                .map(|(i, (d, c))| {
                    format!(
                        "{}{}",
                        english_list_delimiter(i, n),
                        d.to_ovsdb_string(&ts.columns[*c].type_)
                    )
                })
                .collect()
        };
        let describe = |title: &str, u: Uuid| -> String {
            let what = match self.changes[t].get(&u) {
                None => "existed in the database before this transaction and was not modified by the transaction.".to_string(),
                Some(Change { old: None, .. }) => "was inserted by this transaction.".to_string(),
                Some(Change { old: Some(o), new, .. }) => {
                    let before = Database::index_key(ts, index, &o.cols);
                    let after = new.as_deref().map(|n| Database::index_key(ts, index, n));
                    if after.as_ref() == Some(&before) {
                        "existed in the database before this transaction, which modified some of the row's columns but not any columns in this index.".to_string()
                    } else {
                        format!("had the following index values before the transaction: {}.", values(&before))
                    }
                }
            };
            format!("{title} row, with UUID {u}, {what}")
        };
        let n = cols.len();
        let names: String = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "{}\"{}\"",
                    english_list_delimiter(i, n),
                    ts.columns[*c].name
                )
            })
            .collect();
        OvsdbError::constraint(format!(
            "Transaction causes multiple rows in \"{}\" table to have identical values ({}) for index on column{} {names}.  {}  {}",
            ts.name,
            values(key),
            if n > 1 { "s" } else { "" },
            describe("First", a),
            describe("Second", b),
        ))
    }

    fn check_indexes_and_sizes(&self) -> Result<()> {
        for (t, table) in self.changes.iter().enumerate() {
            let ts = &self.schema.tables[t];
            if let Some(max) = ts.max_rows {
                let mut n = self.db.tables[t].rows.len() as i64;
                for c in table.values() {
                    n += c.new.is_some() as i64 - c.old.is_some() as i64;
                }
                if n > max as i64 {
                    return Err(OvsdbError::constraint(format!("transaction causes \"{}\" table to contain {n} rows, greater than the schema-defined limit of {max} row(s)", ts.name)));
                }
            }
            for i in 0..ts.indexes.len() {
                let mut seen: HashMap<Vec<Datum>, Uuid> = HashMap::new();
                for (u, c) in table {
                    let Some(n) = &c.new else { continue };
                    let key = Database::index_key(ts, i, n);
                    let conflict = match seen.get(&key) {
                        Some(other) => Some(*other),
                        None => self
                            .db
                            .index_lookup(t, i, &key)
                            .filter(|o| o != u && !table.contains_key(o)),
                    };
                    if let Some(other) = conflict {
                        return Err(self.duplicate_index_row(t, i, &key, other, *u));
                    }
                    seen.insert(key, *u);
                }
            }
        }
        Ok(())
    }
}

/// lib/util.c `english_list_delimiter`: "a", "a and b", "a, b, and c".
fn english_list_delimiter(i: usize, n: usize) -> &'static str {
    match i {
        0 => "",
        _ if i < n - 1 => ", ",
        _ if n > 2 => ", and ",
        _ => " and ",
    }
}

/// The error of a weak reference column that removing dangling references left with fewer
/// elements than its minimum, in ovsdb/transaction.c `assess_weak_refs`'s words.
fn weak_ref_emptied(
    ts: &TableSchema,
    column: usize,
    row: &Uuid,
    removed: usize,
    inserted: bool,
    zero: bool,
) -> OvsdbError {
    let column = &ts.columns[column].name;
    let table = &ts.name;
    OvsdbError::constraint(if zero && inserted {
        format!(
            "Weak reference column \"{column}\" in \"{table}\" row {row} (inserted within \
             this transaction) contained all-zeros UUID (probably as the default value for \
             this column) but deleting this value caused a constraint volation because this \
             column is not allowed to be empty."
        )
    } else {
        format!(
            "Deletion of {removed} weak reference(s) to deleted (or never-existing) rows from \
             column \"{column}\" in \"{table}\" row {row} {}caused this column to become \
             empty, but constraints on this column disallow an empty column.",
            if inserted {
                "(inserted within this transaction) "
            } else {
                ""
            }
        )
    })
}
