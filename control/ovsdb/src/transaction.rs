//! The `transact` method (RFC 7047 §4.1.3) and its operations (§5.2).
//!
//! A [`Transaction`] reads the committed [`Database`] through an overlay of pending row
//! changes, so nothing is visible to anyone else until commit. [`execute`] runs the operations
//! in order, stopping at the first error (§4.1.3: later results are `null`), then commits:
//! scrubs weak references to vanished rows, garbage-collects unreferenced rows of non-root
//! tables, checks strong references, unique indexes and `maxRows`, and hands back a
//! [`Changeset`] that the caller logs and applies.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use super::condition::Condition;
use super::database::{for_each_ref, Changeset, Database, Row, RowChange};
use super::datum::{Datum, UuidNames};
use super::error::{OvsdbError, Result};
use super::schema::{DatabaseSchema, TableSchema};
use super::uuidgen::new_uuid;

mod execution;
pub use execution::execute;

/// What the server tells the executor about the session and the database.
pub trait TxnContext {
    /// Whether the session owns lock `name` (§5.2.10 assert).
    fn owns_lock(&self, name: &str) -> bool;
    /// Whether commits are written to durable storage (§5.2.7 commit with durable=true).
    fn durable(&self) -> bool;
    /// Whether a `wait` with a timeout has used up its time (then it fails with "timed out").
    fn wait_expired(&self) -> bool;
}

/// The result of one operation (§5.2), kept compact until the reply is written: a large
/// transaction has one result per inserted row.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// insert: `{"uuid": <uuid>}`.
    Uuid(Uuid),
    /// select: `{"rows": [...]}`.
    Rows(Vec<Value>),
    /// update, mutate, delete: `{"count": n}`.
    Count(usize),
    /// wait, commit, comment, assert: `{}`.
    Empty,
    /// The failing operation, or a commit failure appended at the end (§4.1.3).
    Error(OvsdbError),
    /// An operation after the failing one: `null`.
    NotExecuted,
}

impl OpResult {
    pub fn to_json(&self) -> Value {
        match self {
            OpResult::Uuid(u) => json!({"uuid": ["uuid", u.to_string()]}),
            OpResult::Rows(rows) => json!({"rows": rows}),
            OpResult::Count(n) => json!({"count": n}),
            OpResult::Empty => json!({}),
            OpResult::Error(e) => e.to_json(),
            OpResult::NotExecuted => Value::Null,
        }
    }
}

/// The `result` array of a transact reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results(pub Vec<OpResult>);

impl Results {
    pub fn to_json(&self) -> Value {
        Value::Array(self.0.iter().map(OpResult::to_json).collect())
    }

    /// Appends a commit-time error (§4.1.3).
    pub fn push_error(&mut self, e: OvsdbError) {
        self.0.push(OpResult::Error(e));
    }
}

/// The outcome of a `transact` request.
#[derive(Debug)]
pub enum Outcome {
    /// Results to send (§4.1.3) and, if the transaction committed changes, the changeset.
    Done {
        results: Results,
        changes: Option<Changeset>,
    },
    /// A `wait` with a non-zero timeout is not yet satisfied: retry after the next commit, or
    /// with `wait_expired` once `timeout_ms` have passed.
    Blocked { timeout_ms: Option<u64> },
}

#[derive(Debug)]
struct Change {
    old: Option<Arc<Row>>,
    version: Uuid,
    new: Option<Vec<Datum>>,
}

#[derive(Debug, Default)]
struct Symbols {
    map: HashMap<String, (Uuid, bool)>,
}

impl UuidNames for Symbols {
    fn resolve(&mut self, name: &str) -> Result<Uuid> {
        if let Some((u, _)) = self.map.get(name) {
            return Ok(*u);
        }
        let u = new_uuid();
        self.map.insert(name.to_string(), (u, false));
        Ok(u)
    }
}

/// A transaction in progress over a committed database.
pub struct Transaction<'a> {
    db: &'a Database,
    schema: &'a DatabaseSchema,
    changes: Vec<HashMap<Uuid, Change>>,
    symbols: Symbols,
}

enum OpError {
    Error(OvsdbError),
    Blocked(Option<u64>),
}

impl From<OvsdbError> for OpError {
    fn from(e: OvsdbError) -> Self {
        OpError::Error(e)
    }
}

impl<'a> Transaction<'a> {
    pub fn new(db: &'a Database) -> Self {
        Transaction {
            db,
            schema: &db.schema,
            changes: db.schema.tables.iter().map(|_| HashMap::new()).collect(),
            symbols: Symbols::default(),
        }
    }

    fn get(&self, t: usize, u: &Uuid) -> Option<(Uuid, &[Datum])> {
        match self.changes[t].get(u) {
            Some(c) => c.new.as_deref().map(|n| (c.version, n)),
            None => self.db.tables[t]
                .rows
                .get(u)
                .map(|r| (r.version, r.cols.as_slice())),
        }
    }

    fn exists(&self, t: usize, u: &Uuid) -> bool {
        match self.changes[t].get(u) {
            Some(c) => c.new.is_some(),
            None => self.db.tables[t].rows.contains_key(u),
        }
    }

    /// The pending row `u`, copied from the committed one on first write.
    fn get_mut(&mut self, t: usize, u: Uuid) -> Option<&mut Vec<Datum>> {
        let db = self.db;
        let c = match self.changes[t].entry(u) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let old = db.tables[t].rows.get(&u)?;
                e.insert(Change {
                    old: Some(old.clone()),
                    version: new_uuid(),
                    new: Some(old.cols.clone()),
                })
            }
        };
        c.new.as_mut()
    }

    /// Rows of table `t` matching `cond`, in the transaction's view.
    fn matching(&self, t: usize, cond: &Condition) -> Vec<Uuid> {
        if let Some(u) = cond.uuid_equals() {
            return match self.get(t, &u) {
                Some((v, cols)) if cond.matches(&u, &v, cols) => vec![u],
                _ => vec![],
            };
        }
        let changes = &self.changes[t];
        let mut out: Vec<Uuid> = self.db.tables[t]
            .rows
            .iter()
            .filter(|(u, r)| !changes.contains_key(u) && cond.matches(u, &r.version, &r.cols))
            .map(|(u, _)| *u)
            .collect();
        out.extend(
            changes
                .iter()
                .filter(|(u, c)| {
                    c.new
                        .as_ref()
                        .is_some_and(|n| cond.matches(u, &c.version, n))
                })
                .map(|(u, _)| *u),
        );
        out
    }

    fn delete(&mut self, t: usize, u: Uuid) {
        match self.changes[t].get_mut(&u) {
            Some(c) => c.new = None,
            None => {
                let old = self.db.tables[t].rows.get(&u).cloned();
                self.changes[t].insert(
                    u,
                    Change {
                        old,
                        version: Uuid::nil(),
                        new: None,
                    },
                );
            }
        }
    }

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
                    let alive = |t: Option<usize>, a: &super::datum::Atom| match (t, a.as_uuid()) {
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
                    let check = |rt: Option<usize>, atoms: &[super::datum::Atom]| -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Ctx;
    impl TxnContext for Ctx {
        fn owns_lock(&self, name: &str) -> bool {
            name == "mine"
        }
        fn durable(&self) -> bool {
            false
        }
        fn wait_expired(&self) -> bool {
            false
        }
    }

    fn db() -> Database {
        let s = DatabaseSchema::from_json(&json!({"name": "T", "version": "1.0.0", "tables": {
            "Switch": {"isRoot": true, "indexes": [["name"]], "columns": {
                "name": {"type": "string"},
                "ports": {"type": {"key": {"type": "uuid", "refTable": "Port"}, "min": 0, "max": "unlimited"}},
                "n": {"type": {"key": "integer", "min": 0, "max": 1}}}},
            "Port": {"columns": {"name": {"type": "string"}, "peer": {"type": {"key": {"type": "uuid", "refTable": "Port", "refType": "weak"}, "min": 0, "max": 1}}}},
            "Group": {"isRoot": true, "columns": {"ports": {"type": {"key": {"type": "uuid", "refTable": "Port", "refType": "weak"}, "min": 0, "max": "unlimited"}},
                "tag": {"type": {"key": "integer", "min": 0, "max": 1}}}}
        }}))
        .unwrap();
        Database::new(Arc::new(s))
    }

    /// Runs a transaction and applies it; returns the results.
    fn run(db: &mut Database, ops: Value) -> Value {
        match execute(db, ops.as_array().unwrap(), &Ctx) {
            Outcome::Done { results, changes } => {
                if let Some(cs) = changes {
                    db.apply(&cs);
                }
                results.to_json()
            }
            Outcome::Blocked { .. } => panic!("blocked"),
        }
    }

    fn count(db: &Database, table: &str) -> usize {
        db.tables[db.schema.table(table).unwrap()].rows.len()
    }

    fn error_of(results: &Value) -> Option<String> {
        results
            .as_array()
            .unwrap()
            .iter()
            .find_map(|r| r.get("error").and_then(Value::as_str).map(str::to_string))
    }

    #[test]
    fn insert_with_named_uuid_and_select() {
        let mut db = db();
        let r = run(
            &mut db,
            json!([
                {"op": "insert", "table": "Port", "row": {"name": "p1"}, "uuid-name": "p1"},
                {"op": "insert", "table": "Switch", "row": {"name": "s1", "ports": ["set", [["named-uuid", "p1"]]]}},
                {"op": "select", "table": "Switch", "where": [["name", "==", "s1"]], "columns": ["name", "n"]}
            ]),
        );
        assert_eq!(r[2], json!({"rows": [{"name": "s1", "n": ["set", []]}]}));
        assert_eq!(count(&db, "Port"), 1);
        let r = run(
            &mut db,
            json!([{"op": "select", "table": "Port", "where": [["name", "==", "p1"]]}]),
        );
        assert!(r[0]["rows"][0]["_uuid"][1].is_string());
        assert!(r[0]["rows"][0]["_version"][1].is_string());
    }

    #[test]
    fn unreferenced_non_root_rows_are_collected() {
        let mut db = db();
        run(
            &mut db,
            json!([{"op": "insert", "table": "Port", "row": {"name": "orphan"}}]),
        );
        assert_eq!(count(&db, "Port"), 0);
        run(
            &mut db,
            json!([
                {"op": "insert", "table": "Port", "row": {"name": "p"}, "uuid-name": "p"},
                {"op": "insert", "table": "Switch", "row": {"name": "s", "ports": ["named-uuid", "p"]}}
            ]),
        );
        assert_eq!(count(&db, "Port"), 1);
        // Removing the last strong reference collects the port.
        let r = run(
            &mut db,
            json!([{"op": "update", "table": "Switch", "where": [], "row": {"ports": ["set", []]}}]),
        );
        assert_eq!(r[0], json!({"count": 1}));
        assert_eq!(count(&db, "Port"), 0);
    }

    #[test]
    fn dangling_strong_reference_is_rejected() {
        let mut db = db();
        let r = run(
            &mut db,
            json!([{"op": "insert", "table": "Switch", "row": {"name": "s", "ports": ["uuid", "36bb0a6e-5f6c-4c8e-9d6b-7b59e3a2f0c1"]}}]),
        );
        assert_eq!(r.as_array().unwrap().len(), 2, "commit error is appended");
        assert_eq!(
            error_of(&r).as_deref(),
            Some("referential integrity violation")
        );
        assert_eq!(count(&db, "Switch"), 0);
    }

    #[test]
    fn deleting_a_strongly_referenced_row_fails() {
        let mut db = db();
        run(
            &mut db,
            json!([
                {"op": "insert", "table": "Port", "row": {"name": "p"}, "uuid-name": "p"},
                {"op": "insert", "table": "Switch", "row": {"name": "s", "ports": ["named-uuid", "p"]}}
            ]),
        );
        let r = run(
            &mut db,
            json!([{"op": "delete", "table": "Port", "where": []}]),
        );
        assert_eq!(
            error_of(&r).as_deref(),
            Some("referential integrity violation")
        );
        assert_eq!(count(&db, "Port"), 1);
    }

    #[test]
    fn weak_references_are_removed() {
        let mut db = db();
        run(
            &mut db,
            json!([
                {"op": "insert", "table": "Port", "row": {"name": "p"}, "uuid-name": "p"},
                {"op": "insert", "table": "Switch", "row": {"name": "s", "ports": ["named-uuid", "p"]}},
                {"op": "insert", "table": "Group", "row": {"ports": ["named-uuid", "p"]}}
            ]),
        );
        let g = db.schema.table("Group").unwrap();
        let group_ports = |db: &Database| db.tables[g].rows.values().next().unwrap().cols[0].len();
        assert_eq!(group_ports(&db), 1);
        run(
            &mut db,
            json!([{"op": "update", "table": "Switch", "where": [], "row": {"ports": ["set", []]}}]),
        );
        assert_eq!(count(&db, "Port"), 0);
        assert_eq!(group_ports(&db), 0);
        // The referring row was modified earlier in the same transaction: its weak reference
        // to a row deleted later goes too (RFC 7047 §3.2; ovsdb-server 3.1 keeps it).
        run(
            &mut db,
            json!([
                {"op": "insert", "table": "Port", "row": {"name": "p"}, "uuid-name": "p"},
                {"op": "insert", "table": "Port", "row": {"name": "q"}, "uuid-name": "q"},
                {"op": "update", "table": "Switch", "where": [], "row": {"ports": ["set", [["named-uuid", "p"], ["named-uuid", "q"]]]}},
                {"op": "update", "table": "Group", "where": [], "row": {"ports": ["set", [["named-uuid", "p"], ["named-uuid", "q"]]]}}
            ]),
        );
        assert_eq!(group_ports(&db), 2);
        run(
            &mut db,
            json!([
                {"op": "update", "table": "Group", "where": [], "row": {"tag": 1}},
                {"op": "update", "table": "Switch", "where": [], "row": {"ports": ["set", []]}}
            ]),
        );
        assert_eq!(count(&db, "Port"), 0);
        assert_eq!(group_ports(&db), 0);
    }

    #[test]
    fn index_uniqueness() {
        let mut db = db();
        run(
            &mut db,
            json!([{"op": "insert", "table": "Switch", "row": {"name": "a"}}]),
        );
        let r = run(
            &mut db,
            json!([{"op": "insert", "table": "Switch", "row": {"name": "a"}}]),
        );
        assert_eq!(error_of(&r).as_deref(), Some("constraint violation"));
        let r = run(
            &mut db,
            json!([{"op": "insert", "table": "Switch", "row": {"name": "b"}}, {"op": "insert", "table": "Switch", "row": {"name": "b"}}]),
        );
        assert_eq!(error_of(&r).as_deref(), Some("constraint violation"));
        // Swapping names within one transaction is fine.
        run(
            &mut db,
            json!([{"op": "insert", "table": "Switch", "row": {"name": "b"}}]),
        );
        let r = run(
            &mut db,
            json!([
                {"op": "update", "table": "Switch", "where": [["name", "==", "a"]], "row": {"name": "tmp"}},
                {"op": "update", "table": "Switch", "where": [["name", "==", "b"]], "row": {"name": "a"}},
                {"op": "update", "table": "Switch", "where": [["name", "==", "tmp"]], "row": {"name": "b"}}
            ]),
        );
        assert_eq!(error_of(&r), None);
        assert_eq!(count(&db, "Switch"), 2);
    }

    #[test]
    fn errors_stop_the_transaction() {
        let mut db = db();
        let r = run(
            &mut db,
            json!([
                {"op": "insert", "table": "Switch", "row": {"name": "a"}},
                {"op": "abort"},
                {"op": "insert", "table": "Switch", "row": {"name": "b"}}
            ]),
        );
        assert_eq!(r[1]["error"], "aborted");
        assert_eq!(r[2], Value::Null);
        assert_eq!(count(&db, "Switch"), 0);
        let r = run(&mut db, json!([{"op": "assert", "lock": "theirs"}]));
        assert_eq!(r[0]["error"], "not owner");
        let r = run(
            &mut db,
            json!([{"op": "assert", "lock": "mine"}, {"op": "comment", "comment": "hi"}, {"op": "commit", "durable": true}]),
        );
        assert_eq!(r[2]["error"], "not supported");
        let r = run(&mut db, json!([{"op": "frobnicate"}]));
        assert_eq!(r[0]["error"], "syntax error");
        let r = run(
            &mut db,
            json!([{"op": "insert", "table": "Nope", "row": {}}]),
        );
        // ovsdb/execution.c `parse_table`: a parse error naming the operation.
        assert_eq!(r[0]["error"], "syntax error");
        assert_eq!(
            r[0]["details"],
            "Parsing ovsdb operation 1 of 1 failed: No table named Nope."
        );
        let r = run(
            &mut db,
            json!([{"op": "insert", "table": "Switch", "row": {"name": 5}}]),
        );
        assert_eq!(r[0]["error"], "syntax error");
        let r = run(
            &mut db,
            json!([{"op": "insert", "table": "Switch", "row": {"name": "x"}, "uuid-name": "a"}, {"op": "insert", "table": "Switch", "row": {"name": "y"}, "uuid-name": "a"}]),
        );
        assert_eq!(r[1]["error"], "duplicate uuid-name");
    }

    #[test]
    fn mutate_delete_and_wait() {
        let mut db = db();
        run(
            &mut db,
            json!([{"op": "insert", "table": "Switch", "row": {"name": "a", "n": 1}}]),
        );
        let r = run(
            &mut db,
            json!([
                {"op": "mutate", "table": "Switch", "where": [["name", "==", "a"]], "mutations": [["n", "+=", 41]]},
                {"op": "wait", "timeout": 0, "table": "Switch", "where": [["name", "==", "a"]], "columns": ["n"], "until": "==", "rows": [{"n": 42}]}
            ]),
        );
        assert_eq!(r[0], json!({"count": 1}));
        assert_eq!(r[1], json!({}));
        let r = run(
            &mut db,
            json!([{"op": "wait", "timeout": 0, "table": "Switch", "where": [], "columns": ["n"], "until": "==", "rows": []}]),
        );
        assert_eq!(r[0]["error"], "timed out");
        let r = run(
            &mut db,
            json!([{"op": "delete", "table": "Switch", "where": [["n", ">", 40]]}]),
        );
        assert_eq!(r[0], json!({"count": 1}));
        assert_eq!(count(&db, "Switch"), 0);
        assert!(matches!(
            execute(&db, json!([{"op": "wait", "timeout": 1000, "table": "Switch", "where": [], "columns": ["name"], "until": "!=", "rows": []}]).as_array().unwrap(), &Ctx),
            Outcome::Blocked { timeout_ms: Some(1000) }
        ));
    }
}
