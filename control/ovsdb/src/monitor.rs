//! Monitors: what a client watches and the updates it is sent (RFC 7047 §4.1.5-6 and the
//! monitor_cond / monitor_cond_since extensions of ovsdb-server(5)).
//!
//! A [`Monitor`] is parsed from a monitor request against the schema. It renders the initial
//! contents of a database and, for each [`Changeset`], the rows its client must hear about:
//! `update` (v1: `{"old", "new"}` rows) or `update2`/`update3` (v2: `initial`, `insert`,
//! `delete`, `modify` with set/map differences). With conditions, a row that starts or stops
//! matching is sent as an insert or a delete.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::condition::{ColumnRef, Condition};
use super::database::{Changeset, Database, Row, RowChange};
use super::datum::{Datum, NoNames};
use super::error::{OvsdbError, Result};
use super::schema::{ColumnType, DatabaseSchema, TableSchema};

/// Which notification format a monitor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorVersion {
    /// `monitor` / `update`.
    V1,
    /// `monitor_cond` / `update2`.
    V2,
    /// `monitor_cond_since` / `update3`.
    V3,
}

/// RFC 7047 §4.1.5 `<monitor-select>`.
#[derive(Debug, Clone, Copy)]
struct Select {
    initial: bool,
    insert: bool,
    delete: bool,
    modify: bool,
}

#[derive(Debug, Clone)]
struct TableMonitor {
    table: usize,
    /// What ovsdb-server monitors: without `columns`, every column and `_version` (not
    /// `_uuid`); with `columns`, exactly those named, `_uuid` and `_version` included.
    columns: Vec<ColumnRef>,
    select: Select,
    condition: Condition,
}

/// A parsed monitor request for one database.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub version: MonitorVersion,
    tables: Vec<TableMonitor>,
}

impl Monitor {
    /// Parses `<monitor-requests>`: `{table: <monitor-request> | [<monitor-request>*]}`.
    pub fn parse(schema: &DatabaseSchema, version: MonitorVersion, v: &Value) -> Result<Self> {
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("monitor requests must be an object"))?;
        let mut tables = Vec::new();
        for (tname, req) in obj {
            let t = schema.table_or_err(tname)?;
            let ts = &schema.tables[t];
            let reqs: Vec<&Value> = match req {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let mut merged: Option<TableMonitor> = None;
            for r in reqs {
                let tm = Self::parse_request(ts, t, version, r)?;
                merged = Some(match merged {
                    None => tm,
                    Some(mut m) => {
                        // ovsdb-server: one table's requests may not share a column.
                        for c in tm.columns {
                            if m.columns.contains(&c) {
                                return Err(mentioned_twice(ts, c));
                            }
                            m.columns.push(c);
                        }
                        m.select.initial |= tm.select.initial;
                        m.select.insert |= tm.select.insert;
                        m.select.delete |= tm.select.delete;
                        m.select.modify |= tm.select.modify;
                        m
                    }
                });
            }
            if let Some(m) = merged {
                tables.push(m);
            }
        }
        Ok(Monitor { version, tables })
    }

    fn parse_request(
        ts: &TableSchema,
        t: usize,
        version: MonitorVersion,
        r: &Value,
    ) -> Result<TableMonitor> {
        let obj = r
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("monitor request must be an object"))?;
        let columns = match obj.get("columns") {
            None => all_columns(ts),
            Some(c) => parse_columns(ts, c)?,
        };
        let flag = |s: &Map<String, Value>, k: &str| -> Result<bool> {
            match s.get(k) {
                None => Ok(true),
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| OvsdbError::syntax(format!("select.{k} must be a boolean"))),
            }
        };
        let select = match obj.get("select") {
            None => Select {
                initial: true,
                insert: true,
                delete: true,
                modify: true,
            },
            Some(s) => {
                let s = s
                    .as_object()
                    .ok_or_else(|| OvsdbError::syntax("select must be an object"))?;
                Select {
                    initial: flag(s, "initial")?,
                    insert: flag(s, "insert")?,
                    delete: flag(s, "delete")?,
                    modify: flag(s, "modify")?,
                }
            }
        };
        let condition = match obj.get("where") {
            Some(w) if version != MonitorVersion::V1 => Condition::parse(ts, w, &mut NoNames)?,
            Some(_) => return Err(OvsdbError::syntax("\"where\" requires monitor_cond")),
            None => Condition::default(),
        };
        Ok(TableMonitor {
            table: t,
            columns,
            select,
            condition,
        })
    }

    /// Replaces the conditions of the monitored tables (`monitor_cond_change`), returning the
    /// update that brings the client from the old selection to the new one.
    pub fn change_conditions(&mut self, db: &Database, v: &Value) -> Result<Option<Value>> {
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("monitor_cond_change requests must be an object"))?;
        let mut new = self.clone();
        for (tname, req) in obj {
            let t = db.schema.table_or_err(tname)?;
            let ts = &db.schema.tables[t];
            let tm = new
                .tables
                .iter_mut()
                .find(|m| m.table == t)
                .ok_or_else(|| OvsdbError::syntax(format!("table {tname} is not monitored")))?;
            let reqs: Vec<&Value> = match req {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for r in reqs {
                if let Some(w) = r.get("where") {
                    tm.condition = Condition::parse(ts, w, &mut NoNames)?;
                }
                if let Some(c) = r.get("columns") {
                    tm.columns = parse_columns(ts, c)?;
                }
            }
        }
        let mut out = Map::new();
        for (old_tm, new_tm) in self.tables.iter().zip(&new.tables) {
            let ts = &db.schema.tables[old_tm.table];
            let mut rows = Map::new();
            for (u, r) in &db.tables[old_tm.table].rows {
                let was = old_tm.condition.matches_any(u, &r.version, &r.cols);
                let is = new_tm.condition.matches_any(u, &r.version, &r.cols);
                if was && !is {
                    rows.insert(u.to_string(), json!({"delete": null}));
                } else if is && !was {
                    rows.insert(
                        u.to_string(),
                        json!({"insert": row2(ts, &new_tm.columns, u, r)}),
                    );
                }
            }
            if !rows.is_empty() {
                out.insert(ts.name.clone(), Value::Object(rows));
            }
        }
        *self = new;
        Ok((!out.is_empty()).then_some(Value::Object(out)))
    }

    /// `<table-updates>` (v1) or `<table-updates2>` with every matching row, for the reply.
    pub fn initial(&self, db: &Database) -> Value {
        let mut out = Map::new();
        for tm in &self.tables {
            if !tm.select.initial {
                continue;
            }
            let ts = &db.schema.tables[tm.table];
            let mut rows = Map::new();
            for (u, r) in &db.tables[tm.table].rows {
                if !tm.condition.matches_any(u, &r.version, &r.cols) {
                    continue;
                }
                let v = match self.version {
                    MonitorVersion::V1 => json!({"new": row1(ts, &tm.columns, u, r)}),
                    _ => json!({"initial": row2(ts, &tm.columns, u, r)}),
                };
                rows.insert(u.to_string(), v);
            }
            if !rows.is_empty() {
                out.insert(ts.name.clone(), Value::Object(rows));
            }
        }
        Value::Object(out)
    }

    /// The updates for one committed changeset, or `None` if nothing monitored changed.
    pub fn update(&self, schema: &DatabaseSchema, cs: &Changeset) -> Option<Value> {
        self.update_from(schema, cs.changes.iter())
    }

    fn update_from<'a>(
        &self,
        schema: &DatabaseSchema,
        changes: impl Iterator<Item = &'a RowChange>,
    ) -> Option<Value> {
        let mut out = Map::new();
        let by_table: HashMap<usize, &TableMonitor> =
            self.tables.iter().map(|t| (t.table, t)).collect();
        for ch in changes {
            let Some(tm) = by_table.get(&ch.table) else {
                continue;
            };
            let ts = &schema.tables[ch.table];
            let matches = |r: &Row| tm.condition.matches_any(&ch.uuid, &r.version, &r.cols);
            let old = ch.old.as_deref().filter(|r| matches(r));
            let new = ch.new.as_deref().filter(|r| matches(r));
            let u = &ch.uuid;
            let v = match (old, new, self.version) {
                (None, None, _) => continue,
                (None, Some(n), MonitorVersion::V1) if tm.select.insert => {
                    json!({"new": row1(ts, &tm.columns, u, n)})
                }
                (None, Some(n), _) if tm.select.insert => {
                    json!({"insert": row2(ts, &tm.columns, u, n)})
                }
                (Some(o), None, MonitorVersion::V1) if tm.select.delete => {
                    json!({"old": row1(ts, &tm.columns, u, o)})
                }
                (Some(_), None, _) if tm.select.delete => json!({"delete": null}),
                (Some(o), Some(n), version) if tm.select.modify => {
                    let value = |c: &ColumnRef, r: &'a Row| c.value(u, &r.version, &r.cols);
                    let changed: Vec<&ColumnRef> = tm
                        .columns
                        .iter()
                        .filter(|c| value(c, o) != value(c, n))
                        .collect();
                    if changed.is_empty() {
                        continue;
                    }
                    if version == MonitorVersion::V1 {
                        let old: Map<String, Value> = changed
                            .iter()
                            .map(|c| (name(ts, c).to_string(), value(c, o).to_json()))
                            .collect();
                        json!({"old": old, "new": row1(ts, &tm.columns, u, n)})
                    } else {
                        let diff: Map<String, Value> = changed
                            .iter()
                            .map(|c| {
                                let d = diff(&c.column_type(ts), &value(c, o), &value(c, n));
                                (name(ts, c).to_string(), d.to_json())
                            })
                            .collect();
                        json!({"modify": diff})
                    }
                }
                _ => continue,
            };
            out.entry(ts.name.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("object")
                .insert(ch.uuid.to_string(), v);
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }

    /// The update covering several consecutive changesets (monitor_cond_since resuming from
    /// an older transaction): each row goes from its first `old` to its last `new`.
    pub fn update_since(&self, schema: &DatabaseSchema, history: &[&Changeset]) -> Option<Value> {
        let mut merged: HashMap<(usize, Uuid), RowChange> = HashMap::new();
        let mut order = Vec::new();
        for cs in history {
            for ch in &cs.changes {
                match merged.get_mut(&(ch.table, ch.uuid)) {
                    Some(m) => m.new = ch.new.clone(),
                    None => {
                        order.push((ch.table, ch.uuid));
                        merged.insert((ch.table, ch.uuid), ch.clone());
                    }
                }
            }
        }
        let changes: Vec<&RowChange> = order.iter().map(|k| &merged[k]).collect();
        self.update_from(schema, changes.into_iter())
    }
}

/// Every column and `_version`: what ovsdb-server monitors when a request names no columns.
fn all_columns(ts: &TableSchema) -> Vec<ColumnRef> {
    std::iter::once(ColumnRef::Version)
        .chain((0..ts.columns.len()).map(ColumnRef::Column))
        .collect()
}

/// A request's `columns`, with ovsdb-server's errors for unknown and repeated names.
fn parse_columns(ts: &TableSchema, v: &Value) -> Result<Vec<ColumnRef>> {
    let names = v
        .as_array()
        .ok_or_else(|| OvsdbError::syntax(format!("{v}: expected array of column names")))?;
    let mut cols = Vec::with_capacity(names.len());
    for n in names {
        let c = n
            .as_str()
            .and_then(|s| ColumnRef::parse(ts, s).ok())
            .ok_or_else(|| OvsdbError::syntax(format!("{n} is not a valid column name")))?;
        if cols.contains(&c) {
            return Err(mentioned_twice(ts, c));
        }
        cols.push(c);
    }
    Ok(cols)
}

fn mentioned_twice(ts: &TableSchema, c: ColumnRef) -> OvsdbError {
    OvsdbError::syntax(format!("column {} mentioned more than once", name(ts, &c)))
}

fn name<'a>(ts: &'a TableSchema, c: &ColumnRef) -> &'a str {
    match c {
        ColumnRef::Uuid => "_uuid",
        ColumnRef::Version => "_version",
        ColumnRef::Column(i) => &ts.columns[*i].name,
    }
}

/// A v1 row: every monitored column.
fn row1(ts: &TableSchema, columns: &[ColumnRef], uuid: &Uuid, row: &Row) -> Value {
    Value::Object(
        columns
            .iter()
            .map(|c| {
                let v = c.value(uuid, &row.version, &row.cols).to_json();
                (name(ts, c).to_string(), v)
            })
            .collect(),
    )
}

/// A v2 row: monitored columns that differ from their defaults (`_uuid` and `_version` are
/// never the nil default).
fn row2(ts: &TableSchema, columns: &[ColumnRef], uuid: &Uuid, row: &Row) -> Value {
    Value::Object(
        columns
            .iter()
            .filter(|c| !matches!(c, ColumnRef::Column(i) if ts.is_default(*i, &row.cols[*i])))
            .map(|c| {
                let v = c.value(uuid, &row.version, &row.cols).to_json();
                (name(ts, c).to_string(), v)
            })
            .collect(),
    )
}

/// The update2/update3 `modify` value of one changed column (ovsdb-server(7), "update2
/// notification"; ovsdb-data.c `ovsdb_datum_diff`): for a column with max 1 (scalars and
/// optional min 0/max 1 columns alike) the new value, so clearing an optional column sends the
/// empty set; for a set with max > 1 the symmetric difference; for a map with max > 1 the
/// removed pairs, the added pairs and, for a key whose value changed, the new pair.
pub fn diff(t: &ColumnType, old: &Datum, new: &Datum) -> Datum {
    if !t.is_composite() {
        return new.clone();
    }
    if t.value.is_none() {
        let mut atoms: Vec<_> = old
            .keys()
            .iter()
            .filter(|k| !new.contains_key(k))
            .cloned()
            .collect();
        atoms.extend(new.keys().iter().filter(|k| !old.contains_key(k)).cloned());
        return Datum::set(atoms);
    }
    let mut pairs: Vec<_> = old
        .pairs()
        .filter(|(k, _)| !new.contains_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.extend(
        new.pairs()
            .filter(|(k, v)| old.get(k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Datum::map(pairs)
}

/// Applies an update2/update3 `modify` value (the inverse of [`diff`], as ovsdb-data.c
/// `ovsdb_datum_apply_diff`), for clients: a column with max 1 takes the value as is; a set
/// toggles each element; a map drops a key whose pair is repeated, takes the new value of a
/// key given with another value and adds a new key.
pub fn apply_diff(t: &ColumnType, old: &Datum, d: &Datum) -> Datum {
    if !t.is_composite() {
        return d.clone();
    }
    if t.value.is_none() {
        let mut atoms: Vec<_> = old
            .keys()
            .iter()
            .filter(|k| !d.contains_key(k))
            .cloned()
            .collect();
        atoms.extend(d.keys().iter().filter(|k| !old.contains_key(k)).cloned());
        return Datum::set(atoms);
    }
    let mut pairs = Vec::with_capacity(old.len() + d.len());
    for (k, v) in old.pairs() {
        match d.get(k) {
            None => pairs.push((k.clone(), v.clone())),
            Some(dv) if dv == v => {}
            Some(dv) => pairs.push((k.clone(), dv.clone())),
        }
    }
    pairs.extend(
        d.pairs()
            .filter(|(k, _)| !old.contains_key(k))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Datum::map(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::Atom;
    use crate::transaction::{execute, Outcome, TxnContext};
    use std::sync::Arc;

    struct Ctx;
    impl TxnContext for Ctx {
        fn owns_lock(&self, _: &str) -> bool {
            false
        }
        fn durable(&self) -> bool {
            false
        }
        fn wait_expired(&self) -> bool {
            true
        }
    }

    fn run(db: &mut Database, ops: Value) -> Changeset {
        let Outcome::Done {
            changes: Some(cs), ..
        } = execute(db, ops.as_array().unwrap(), &Ctx)
        else {
            panic!("no changes")
        };
        db.apply(&cs);
        cs
    }

    fn db() -> Database {
        Database::new(Arc::new(
            DatabaseSchema::from_json(&json!({"name": "T", "version": "1.0.0", "tables": {"A": {"isRoot": true, "columns": {
                "name": {"type": "string"},
                "tags": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
                "ext": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}}}}}}))
            .unwrap(),
        ))
    }

    #[test]
    fn v1_and_v2_updates_with_conditions() {
        let mut db = db();
        run(
            &mut db,
            json!([{"op": "insert", "table": "A", "row": {"name": "a", "tags": "x"}}]),
        );
        let m1 = Monitor::parse(
            &db.schema,
            MonitorVersion::V1,
            &json!({"A": {"columns": ["name", "tags"]}}),
        )
        .unwrap();
        let m2 = Monitor::parse(
            &db.schema,
            MonitorVersion::V2,
            &json!({"A": [{"columns": ["name", "tags", "ext"], "where": [["name", "==", "b"]]}]}),
        )
        .unwrap();
        // Without `columns`, ovsdb-server monitors `_version` too.
        let all = Monitor::parse(&db.schema, MonitorVersion::V2, &json!({"A": {}})).unwrap();
        let init = all.initial(&db);
        let (_, row) = init["A"].as_object().unwrap().iter().next().unwrap();
        assert!(row["initial"]["_version"].is_array(), "{row}");
        let init = m1.initial(&db);
        let (_, row) = init["A"].as_object().unwrap().iter().next().unwrap();
        assert_eq!(row["new"], json!({"name": "a", "tags": "x"}));
        assert_eq!(m2.initial(&db), json!({}));
        // Renaming a -> b: v1 sees a modify, v2 sees the row enter its condition as an insert.
        let cs = run(
            &mut db,
            json!([{"op": "update", "table": "A", "where": [], "row": {"name": "b", "tags": ["set", ["y"]]}}]),
        );
        let u1 = m1.update(&db.schema, &cs).unwrap();
        let r1 = u1["A"].as_object().unwrap().values().next().unwrap();
        assert_eq!(r1["old"], json!({"name": "a", "tags": "x"}));
        assert_eq!(r1["new"], json!({"name": "b", "tags": "y"}));
        let u2 = m2.update(&db.schema, &cs).unwrap();
        assert_eq!(
            u2["A"].as_object().unwrap().values().next().unwrap(),
            &json!({"insert": {"name": "b", "tags": "y"}})
        );
        let cs = run(
            &mut db,
            json!([{"op": "mutate", "table": "A", "where": [], "mutations": [["tags", "insert", "z"]]}]),
        );
        let u2 = m2.update(&db.schema, &cs).unwrap();
        assert_eq!(
            u2["A"].as_object().unwrap().values().next().unwrap(),
            &json!({"modify": {"tags": "z"}})
        );
        let cs = run(
            &mut db,
            json!([{"op": "delete", "table": "A", "where": []}]),
        );
        let u2 = m2.update(&db.schema, &cs).unwrap();
        assert_eq!(
            u2["A"].as_object().unwrap().values().next().unwrap(),
            &json!({"delete": null})
        );
    }

    /// A table with one column of every kind whose update2 encoding differs.
    fn kinds_db() -> Database {
        Database::new(Arc::new(
            DatabaseSchema::from_json(&json!({"name": "K", "version": "1.0.0", "tables": {
                "Port": {"isRoot": true, "columns": {
                    "name": {"type": "string"},
                    "enabled": {"type": {"key": "boolean", "min": 0, "max": 1}},
                    "peer": {"type": {"key": {"type": "uuid", "refTable": "Peer"}, "min": 0, "max": 1}},
                    "weak": {"type": {"key": {"type": "uuid", "refTable": "Peer", "refType": "weak"}, "min": 0, "max": 1}},
                    "one": {"type": {"key": "string", "value": "string", "min": 0, "max": 1}},
                    "tags": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
                    "peers": {"type": {"key": {"type": "uuid", "refTable": "Peer"}, "min": 0, "max": "unlimited"}},
                    "ext": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}}}},
                "Peer": {"isRoot": true, "columns": {"n": {"type": "integer"}}}}}))
            .unwrap(),
        ))
    }

    /// The one `modify` a change of `row` on the only Port row sends to an update2 monitor.
    fn modify(db: &mut Database, m: &Monitor, row: Value) -> Value {
        let cs = run(
            db,
            json!([{"op": "update", "table": "Port", "where": [], "row": row}]),
        );
        let u = m.update(&db.schema, &cs).expect("an update");
        let (_, change) = u["Port"].as_object().unwrap().iter().next().unwrap();
        change["modify"].clone()
    }

    /// ovsdb-server(7): a column with max 1 carries its new value in `modify` (an empty set
    /// when an optional column is cleared), sets with max > 1 their symmetric difference,
    /// maps their changed pairs.
    #[test]
    fn update2_modify_per_column_kind() {
        let mut db = kinds_db();
        let cs = run(
            &mut db,
            json!([
                {"op": "insert", "table": "Peer", "row": {"n": 1}, "uuid-name": "p1"},
                {"op": "insert", "table": "Peer", "row": {"n": 2}, "uuid-name": "p2"},
                {"op": "insert", "table": "Port", "row": {"name": "a",
                    "peers": ["named-uuid", "p1"],
                    "ext": ["map", [["k1", "v1"], ["k2", "v2"]]]}}]),
        );
        let peer = |n: i64| {
            let ch = cs
                .changes
                .iter()
                .find(|c| {
                    c.new
                        .as_ref()
                        .is_some_and(|r| r.cols.first() == Some(&Datum::scalar(Atom::Integer(n))))
                })
                .unwrap();
            json!(["uuid", ch.uuid.to_string()])
        };
        let (p1, p2) = (peer(1), peer(2));
        let columns = [
            "name", "enabled", "peer", "weak", "one", "tags", "peers", "ext",
        ];
        let m = Monitor::parse(
            &db.schema,
            MonitorVersion::V2,
            &json!({"Port": {"columns": columns}}),
        )
        .unwrap();
        let empty = json!(["set", []]);
        // Scalar.
        assert_eq!(
            modify(&mut db, &m, json!({"name": "b"})),
            json!({"name": "b"})
        );
        // Optional boolean: set, change, clear.
        assert_eq!(
            modify(&mut db, &m, json!({"enabled": false})),
            json!({"enabled": false})
        );
        assert_eq!(
            modify(&mut db, &m, json!({"enabled": true})),
            json!({"enabled": true})
        );
        assert_eq!(
            modify(&mut db, &m, json!({"enabled": empty})),
            json!({"enabled": empty})
        );
        // Optional strong and weak references: set, change, clear.
        assert_eq!(
            modify(&mut db, &m, json!({"peer": p1, "weak": p1})),
            json!({"peer": p1, "weak": p1})
        );
        assert_eq!(
            modify(&mut db, &m, json!({"peer": p2, "weak": p2})),
            json!({"peer": p2, "weak": p2})
        );
        assert_eq!(
            modify(&mut db, &m, json!({"peer": empty, "weak": empty})),
            json!({"peer": empty, "weak": empty})
        );
        // An optional one-pair map is not composite either: its new value.
        let one = |k: &str, v: &str| json!(["map", [[k, v]]]);
        assert_eq!(
            modify(&mut db, &m, json!({"one": one("a", "1")})),
            json!({"one": one("a", "1")})
        );
        assert_eq!(
            modify(&mut db, &m, json!({"one": one("b", "2")})),
            json!({"one": one("b", "2")})
        );
        assert_eq!(
            modify(&mut db, &m, json!({"one": ["map", []]})),
            json!({"one": ["map", []]})
        );
        // Sets: the elements added and removed.
        assert_eq!(
            modify(&mut db, &m, json!({"tags": ["set", ["x", "y"]]})),
            json!({"tags": ["set", ["x", "y"]]})
        );
        assert_eq!(
            modify(&mut db, &m, json!({"tags": ["set", ["y", "z"]]})),
            json!({"tags": ["set", ["x", "z"]]})
        );
        assert_eq!(
            modify(&mut db, &m, json!({"peers": ["set", [p1, p2]]})),
            json!({"peers": p2})
        );
        assert_eq!(
            modify(&mut db, &m, json!({"peers": p2})),
            json!({"peers": p1})
        );
        // Maps: a removed key with its old value, a changed key with its new value, an added key.
        assert_eq!(
            modify(
                &mut db,
                &m,
                json!({"ext": ["map", [["k2", "changed"], ["k3", "v3"]]]})
            ),
            json!({"ext": ["map", [["k1", "v1"], ["k2", "changed"], ["k3", "v3"]]]})
        );
        // update (v1) carries the old values of the changed columns and the whole new row.
        let m1 = Monitor::parse(
            &db.schema,
            MonitorVersion::V1,
            &json!({"Port": {"columns": ["name", "enabled"]}}),
        )
        .unwrap();
        let cs = run(
            &mut db,
            json!([{"op": "update", "table": "Port", "where": [], "row": {"enabled": true}}]),
        );
        let u = m1.update(&db.schema, &cs).unwrap();
        let (_, change) = u["Port"].as_object().unwrap().iter().next().unwrap();
        assert_eq!(
            change,
            &json!({"old": {"enabled": empty}, "new": {"name": "b", "enabled": true}})
        );
    }

    /// apply_diff inverts diff for every kind and every transition, including optional
    /// columns set from, changed and cleared to empty.
    #[test]
    fn apply_diff_inverts_diff_per_column_kind() {
        let ty = |t: Value| ColumnType::from_json(&t).unwrap();
        let (t, f) = (Atom::Boolean(true), Atom::Boolean(false));
        let optional = ty(json!({"key": "boolean", "min": 0, "max": 1}));
        let values = [
            Datum::empty_set(),
            Datum::scalar(t.clone()),
            Datum::scalar(f.clone()),
        ];
        for o in &values {
            for n in &values {
                assert_eq!(&diff(&optional, o, n), n, "{o:?} -> {n:?}");
                assert_eq!(&apply_diff(&optional, o, &diff(&optional, o, n)), n);
            }
        }
        let scalar = ty(json!("boolean"));
        let (o, n) = (Datum::scalar(t), Datum::scalar(f));
        assert_eq!(apply_diff(&scalar, &o, &diff(&scalar, &o, &n)), n);
    }

    proptest::proptest! {
        /// update2 diffs are exact: applying diff(old, new) to old gives new, for maps and sets.
        #[test]
        fn diffs_apply_exactly(old in proptest::collection::btree_map("[a-d]", "[x-z]", 0..4), new in proptest::collection::btree_map("[a-d]", "[x-z]", 0..4)) {
            let t = ColumnType::from_json(&json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"})).unwrap();
            let m = |p: &std::collections::BTreeMap<String, String>| Datum::map(p.iter().map(|(k, v)| (Atom::string(k), Atom::string(v))).collect());
            let (o, n) = (m(&old), m(&new));
            proptest::prop_assert_eq!(apply_diff(&t, &o, &diff(&t, &o, &n)), n);
            let s = ColumnType::from_json(&json!({"key": "string", "min": 0, "max": "unlimited"})).unwrap();
            let set = |p: &std::collections::BTreeMap<String, String>| Datum::set(p.keys().map(|k| Atom::string(k)).collect());
            let (so, sn) = (set(&old), set(&new));
            proptest::prop_assert_eq!(apply_diff(&s, &so, &diff(&s, &so, &sn)), sn);
        }
    }

    #[test]
    fn map_diff_round_trips() {
        let t = ColumnType::from_json(
            &json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"}),
        )
        .unwrap();
        let m = |p: &[(&str, &str)]| {
            Datum::map(
                p.iter()
                    .map(|(k, v)| (Atom::string(k), Atom::string(v)))
                    .collect(),
            )
        };
        let old = m(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let new = m(&[("a", "1"), ("b", "9"), ("d", "4")]);
        let d = diff(&t, &old, &new);
        assert_eq!(d, m(&[("b", "9"), ("c", "3"), ("d", "4")]));
        assert_eq!(apply_diff(&t, &old, &d), new);
        let s =
            ColumnType::from_json(&json!({"key": "string", "min": 0, "max": "unlimited"})).unwrap();
        let so = Datum::set(vec![Atom::string("a"), Atom::string("b")]);
        let sn = Datum::set(vec![Atom::string("b"), Atom::string("c")]);
        assert_eq!(apply_diff(&s, &so, &diff(&s, &so, &sn)), sn);
    }
}
