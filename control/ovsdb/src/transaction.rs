//! The `transact` method (RFC 7047 §4.1.3) and its operations (§5.2).
//!
//! A [`Transaction`] reads the committed [`Database`] through an overlay of pending row
//! changes, so nothing is visible to anyone else until commit. [`execute`] runs the operations
//! in order, stopping at the first error (§4.1.3: later results are `null`), then commits:
//! scrubs weak references to vanished rows, garbage-collects unreferenced rows of non-root
//! tables, checks strong references, unique indexes and `maxRows`, and hands back a
//! [`Changeset`] that the caller logs and applies. The operations live in `execution`, the
//! commit's integrity checks in `commit`; this module holds the overlay they share.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use super::condition::Condition;
use super::database::{Changeset, Database, Row};
use super::datum::{Datum, UuidNames};
use super::error::{OvsdbError, Result};
use super::schema::DatabaseSchema;
use super::uuidgen::new_uuid;
mod commit;
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
