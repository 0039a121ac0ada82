//! The in-memory database: committed rows, index maps and reference counts.
//!
//! A [`Database`] only changes through [`Database::apply`], which takes a [`Changeset`] that a
//! [`super::transaction::Transaction`] has already validated (or that the log replays). Besides
//! rows it keeps, per row, how many strong references point at it and which rows weakly refer to
//! it, so commits can garbage-collect and scrub weak references (RFC 7047 §3.2 refType) without
//! scanning tables, and one hash map per schema index so uniqueness checks are lookups.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::datum::Datum;
use super::schema::{DatabaseSchema, TableSchema};

/// One committed row: its `_version` and its column values in schema column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub version: Uuid,
    pub cols: Vec<Datum>,
}

/// A table's rows and its unique-index maps (one per schema index).
#[derive(Debug, Default)]
pub struct Table {
    pub rows: HashMap<Uuid, Arc<Row>>,
    pub(crate) indexes: Vec<HashMap<Vec<Datum>, Uuid>>,
}

#[derive(Debug, Default)]
struct Referrers {
    strong: u32,
    /// One entry per weak reference: the referring (table, row).
    weak: Vec<(usize, Uuid)>,
}

/// One row's change in a commit: insert (`old` none), delete (`new` none) or modify.
#[derive(Debug, Clone)]
pub struct RowChange {
    pub table: usize,
    pub uuid: Uuid,
    pub old: Option<Arc<Row>>,
    pub new: Option<Arc<Row>>,
}

/// Everything one committed transaction changed, identified by a transaction id (the id that
/// `monitor_cond_since` clients resume from).
#[derive(Debug, Clone)]
pub struct Changeset {
    pub txn_id: Uuid,
    pub changes: Vec<RowChange>,
}

/// A database: schema, tables and reference bookkeeping.
#[derive(Debug)]
pub struct Database {
    pub schema: Arc<DatabaseSchema>,
    pub tables: Vec<Table>,
    refs: HashMap<Uuid, Referrers>,
    /// Id of the last applied transaction (nil for an empty, never-written database).
    pub last_txn_id: Uuid,
}

/// Calls `f(target_table, target_uuid, strong)` for every reference held by `cols`.
pub fn for_each_ref(ts: &TableSchema, cols: &[Datum], mut f: impl FnMut(usize, Uuid, bool)) {
    for &ci in &ts.ref_columns {
        let c = &ts.columns[ci];
        let (keys, values) = cols[ci].uuids();
        if let Some(t) = c.type_.key.ref_table_index {
            let strong = c.type_.key.is_strong_ref();
            keys.for_each(|u| f(t, u, strong));
        }
        if let Some(t) = c.type_.value.as_ref().and_then(|v| v.ref_table_index) {
            let strong = c.type_.value.as_ref().is_some_and(|v| v.is_strong_ref());
            values.for_each(|u| f(t, u, strong));
        }
    }
}

impl Database {
    pub fn new(schema: Arc<DatabaseSchema>) -> Self {
        let tables = schema
            .tables
            .iter()
            .map(|t| Table {
                rows: HashMap::new(),
                indexes: vec![HashMap::new(); t.indexes.len()],
            })
            .collect();
        Database {
            schema,
            tables,
            refs: HashMap::new(),
            last_txn_id: Uuid::nil(),
        }
    }

    /// Number of strong references to `uuid` in committed rows.
    pub fn strong_refs(&self, uuid: &Uuid) -> u32 {
        self.refs.get(uuid).map_or(0, |r| r.strong)
    }

    /// Rows holding weak references to `uuid` (one entry per reference).
    pub fn weak_referrers(&self, uuid: &Uuid) -> &[(usize, Uuid)] {
        self.refs.get(uuid).map_or(&[], |r| &r.weak)
    }

    /// The key of row `cols` in index `i` of table `ts`.
    pub fn index_key(ts: &TableSchema, i: usize, cols: &[Datum]) -> Vec<Datum> {
        ts.indexes[i].iter().map(|&c| cols[c].clone()).collect()
    }

    /// The row that holds `key` in index `i` of table `t`.
    pub fn index_lookup(&self, t: usize, i: usize, key: &[Datum]) -> Option<Uuid> {
        self.tables[t].indexes[i].get(key).copied()
    }

    /// Applies a validated changeset: rows, index maps and reference counts.
    pub fn apply(&mut self, cs: &Changeset) {
        let schema = self.schema.clone();
        // Remove everything old first, so rows may swap index keys within one transaction.
        for ch in &cs.changes {
            let ts = &schema.tables[ch.table];
            if let Some(old) = &ch.old {
                for i in 0..ts.indexes.len() {
                    let key = Self::index_key(ts, i, &old.cols);
                    if self.tables[ch.table].indexes[i].get(&key) == Some(&ch.uuid) {
                        self.tables[ch.table].indexes[i].remove(&key);
                    }
                }
                let (uuid, refs) = (ch.uuid, &mut self.refs);
                for_each_ref(ts, &old.cols, |_, target, strong| {
                    if let Some(r) = refs.get_mut(&target) {
                        if strong {
                            r.strong -= 1;
                        } else if let Some(p) = r.weak.iter().position(|w| w.1 == uuid) {
                            r.weak.swap_remove(p);
                        }
                        if r.strong == 0 && r.weak.is_empty() {
                            refs.remove(&target);
                        }
                    }
                });
                self.tables[ch.table].rows.remove(&ch.uuid);
            }
        }
        for ch in &cs.changes {
            let ts = &schema.tables[ch.table];
            if let Some(new) = &ch.new {
                for i in 0..ts.indexes.len() {
                    let key = Self::index_key(ts, i, &new.cols);
                    self.tables[ch.table].indexes[i].insert(key, ch.uuid);
                }
                let (uuid, table, refs) = (ch.uuid, ch.table, &mut self.refs);
                for_each_ref(ts, &new.cols, |_, target, strong| {
                    let r = refs.entry(target).or_default();
                    if strong {
                        r.strong += 1;
                    } else {
                        r.weak.push((table, uuid));
                    }
                });
                self.tables[ch.table].rows.insert(ch.uuid, new.clone());
            }
        }
        self.last_txn_id = cs.txn_id;
    }

    /// RFC 7047 §5.1 `<row>` JSON of a committed or pending row, with `_uuid` and `_version`
    /// when `columns` is `None`, else exactly the listed columns.
    pub fn row_to_json(
        ts: &TableSchema,
        uuid: Uuid,
        version: Uuid,
        cols: &[Datum],
        columns: Option<&[super::condition::ColumnRef]>,
    ) -> Value {
        use super::condition::ColumnRef;
        let mut m = Map::new();
        match columns {
            None => {
                m.insert(
                    "_uuid".into(),
                    serde_json::json!(["uuid", uuid.to_string()]),
                );
                m.insert(
                    "_version".into(),
                    serde_json::json!(["uuid", version.to_string()]),
                );
                for (c, d) in ts.columns.iter().zip(cols) {
                    m.insert(c.name.clone(), d.to_json());
                }
            }
            Some(list) => {
                for c in list {
                    match c {
                        ColumnRef::Uuid => m.insert(
                            "_uuid".into(),
                            serde_json::json!(["uuid", uuid.to_string()]),
                        ),
                        ColumnRef::Version => m.insert(
                            "_version".into(),
                            serde_json::json!(["uuid", version.to_string()]),
                        ),
                        ColumnRef::Column(i) => {
                            m.insert(ts.columns[*i].name.clone(), cols[*i].to_json())
                        }
                    };
                }
            }
        }
        Value::Object(m)
    }
}
