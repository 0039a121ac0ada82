//! [`Replica`]: the client's copy of the monitored tables, and [`Changes`], what changed in it
//! since a consumer last looked. It applies `<table-updates2>` exactly as ovsdb-server(7)
//! defines `update2`/`update3` (`initial`, `insert`, `delete`, and `modify` carrying new values
//! for columns with max 1 and differences for sets and maps, see [`apply_diff`]). Apart from
//! [`super::idl`] because it has no I/O: the session code feeds it, readers borrow it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use super::rows::{RowRef, TypedRow};
use super::ClientError;
use crate::datum::{Datum, NoNames};
use crate::monitor::apply_diff;
use crate::schema::DatabaseSchema;

/// The replicated rows of the monitored tables.
#[derive(Debug, Default)]
pub struct Replica {
    pub(super) schema: Option<Arc<DatabaseSchema>>,
    pub(super) tables: HashMap<String, HashMap<Uuid, Vec<Datum>>>,
    pub(super) last_txn_id: Option<Uuid>,
    /// Rows changed since the last [`super::Idl::take_changes`], when tracking.
    pub(super) changes: Option<Changes>,
}

/// What changed in a replica since the last [`super::Idl::take_changes`]: the rows inserted,
/// modified or deleted, per table, or `resync` when the replica was replaced wholesale (a
/// new session that could not resume), after which a consumer recomputes everything.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub resync: bool,
    pub rows: HashMap<String, std::collections::HashSet<Uuid>>,
}

impl Changes {
    /// The changed rows of `table`.
    pub fn table(&self, table: &str) -> impl Iterator<Item = &Uuid> {
        self.rows.get(table).into_iter().flatten()
    }
}

impl Replica {
    /// The server's schema, once connected.
    pub fn schema(&self) -> Option<&DatabaseSchema> {
        self.schema.as_deref()
    }

    /// The rows of `table` as (uuid, row accessor).
    pub fn table(&self, table: &str) -> impl Iterator<Item = (Uuid, RowRef<'_>)> {
        let ts = self
            .schema
            .as_ref()
            .and_then(|s| s.table(table).map(|t| &s.tables[t]));
        self.tables
            .get(table)
            .into_iter()
            .flat_map(|rows| rows.iter())
            .filter_map(move |(u, cols)| ts.map(|ts| (*u, RowRef::new(ts, cols))))
    }

    /// One row by uuid.
    pub fn get(&self, table: &str, uuid: &Uuid) -> Option<RowRef<'_>> {
        let s = self.schema.as_ref()?;
        let ts = &s.tables[s.table(table)?];
        self.tables
            .get(table)?
            .get(uuid)
            .map(|cols| RowRef::new(ts, cols))
    }

    /// One typed row of `T::TABLE` by uuid.
    pub fn row<T: TypedRow>(&self, uuid: &Uuid) -> Option<T> {
        self.get(T::TABLE, uuid).map(|r| T::from_row(*uuid, &r))
    }

    /// Typed rows of `T::TABLE`.
    pub fn rows<T: TypedRow>(&self) -> Vec<T> {
        self.table(T::TABLE)
            .map(|(u, r)| T::from_row(u, &r))
            .collect()
    }

    /// The transaction id the replica reflects (monitor_cond_since servers only).
    pub fn last_txn_id(&self) -> Option<Uuid> {
        self.last_txn_id
    }

    /// Applies `<table-updates2>` (the update2/update3 format).
    pub(super) fn apply(&mut self, updates: &Value) -> Result<(), ClientError> {
        let schema = self
            .schema
            .clone()
            .ok_or_else(|| ClientError::Protocol("update before schema".into()))?;
        let obj = updates.as_object().ok_or_else(|| {
            ClientError::Protocol(format!("table-updates is not an object: {updates}"))
        })?;
        for (tname, rows) in obj {
            let Some(t) = schema.table(tname) else {
                continue;
            };
            let ts = &schema.tables[t];
            let table = self.tables.entry(tname.clone()).or_default();
            let mut changed = self
                .changes
                .as_mut()
                .map(|c| c.rows.entry(tname.clone()).or_default());
            for (u, change) in rows.as_object().into_iter().flatten() {
                let uuid = Uuid::parse_str(u)
                    .map_err(|e| ClientError::Protocol(format!("bad row uuid {u}: {e}")))?;
                if let Some(c) = changed.as_mut() {
                    c.insert(uuid);
                }
                let bad =
                    |e: crate::OvsdbError| ClientError::Protocol(format!("{tname} row {u}: {e}"));
                let parse_row = |row: &Value| -> Result<Vec<Datum>, ClientError> {
                    let mut cols = ts.default_row();
                    for (c, v) in row.as_object().into_iter().flatten() {
                        if let Some(ci) = ts.column(c) {
                            cols[ci] =
                                Datum::from_json_unchecked(&ts.columns[ci].type_, v, &mut NoNames)
                                    .map_err(bad)?;
                        }
                    }
                    Ok(cols)
                };
                if let Some(row) = change.get("initial").or_else(|| change.get("insert")) {
                    table.insert(uuid, parse_row(row)?);
                } else if change.get("delete").is_some() {
                    table.remove(&uuid);
                } else if let Some(diff) = change.get("modify") {
                    let Some(cols) = table.get_mut(&uuid) else {
                        return Err(ClientError::Protocol(format!(
                            "modify of unknown {tname} row {u}"
                        )));
                    };
                    for (c, v) in diff.as_object().into_iter().flatten() {
                        if let Some(ci) = ts.column(c) {
                            let t = &ts.columns[ci].type_;
                            let d = Datum::from_json_unchecked(&t.relaxed(), v, &mut NoNames)
                                .map_err(bad)?;
                            cols[ci] = apply_diff(t, &cols[ci], &d);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The replica applies `modify` as ovsdb-server sends it: new values for columns with
    /// max 1 (optional columns set, changed and cleared), differences for sets and maps.
    #[test]
    fn replica_applies_modify_per_column_kind() {
        let schema = DatabaseSchema::from_json(&json!({"name": "K", "version": "1.0.0", "tables": {
            "Port": {"isRoot": true, "columns": {
                "name": {"type": "string"},
                "enabled": {"type": {"key": "boolean", "min": 0, "max": 1}},
                "chassis": {"type": {"key": {"type": "uuid", "refTable": "Port", "refType": "weak"}, "min": 0, "max": 1}},
                "tags": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
                "ext": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}}}}}}))
        .unwrap();
        let mut rep = Replica {
            schema: Some(Arc::new(schema)),
            ..Replica::default()
        };
        let u = Uuid::new_v4();
        let chassis = Uuid::new_v4();
        rep.apply(&json!({"Port": {u.to_string(): {"insert": {"name": "a",
            "tags": ["set", ["x", "y"]], "ext": ["map", [["k1", "v1"], ["k2", "v2"]]]}}}}))
            .unwrap();
        let mut modify = |m: Value| {
            rep.apply(&json!({"Port": {u.to_string(): {"modify": m}}}))
                .unwrap();
            let row = rep.get("Port", &u).unwrap();
            (
                row.opt_bool("enabled"),
                row.opt_uuid("chassis"),
                row.strings("tags"),
                row.string_map("ext").into_iter().collect::<Vec<_>>(),
            )
        };
        let empty = json!(["set", []]);
        let ext = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let base = ext(&[("k1", "v1"), ("k2", "v2")]);
        assert_eq!(
            modify(json!({"enabled": false, "chassis": ["uuid", chassis.to_string()]})),
            (Some(false), Some(chassis), tags(&["x", "y"]), base.clone())
        );
        assert_eq!(
            modify(json!({"enabled": true})),
            (Some(true), Some(chassis), tags(&["x", "y"]), base.clone())
        );
        assert_eq!(
            modify(json!({"enabled": empty, "chassis": empty})),
            (None, None, tags(&["x", "y"]), base)
        );
        assert_eq!(
            modify(json!({"tags": ["set", ["x", "z"]],
                "ext": ["map", [["k1", "v1"], ["k2", "new"], ["k3", "v3"]]]})),
            (
                None,
                None,
                tags(&["y", "z"]),
                ext(&[("k2", "new"), ("k3", "v3")])
            )
        );
    }
}
