//! What the JSON of a record says: a snapshot (`{"schema", "txn_id", "data"}`) or a
//! transaction (`{"txn_id", "tables": {table: {uuid: row | null}}}`) carrying full new rows,
//! each row its `_version` and its non-default, non-ephemeral columns. Writing streams that
//! JSON straight from rows; reading turns it back into [`Changeset`]s and replays a scanned
//! file into a [`Database`].

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::framing::Scan;
use super::StorageError;
use crate::database::{Changeset, Database, Row, RowChange};
use crate::datum::{Datum, NoNames};
use crate::error::OvsdbError;
use crate::schema::{DatabaseSchema, TableSchema};

/// Appends the log JSON of a row: `_version` and the non-default, non-ephemeral columns.
pub(super) fn write_row(ts: &TableSchema, row: &Row, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"_version\":");
    write_uuid_string(&row.version, out);
    for (ci, (c, d)) in ts.columns.iter().zip(&row.cols).enumerate() {
        if !c.ephemeral && !ts.is_default(ci, d) {
            out.push(b',');
            serde_json::to_writer(&mut *out, &c.name).expect("writing to a Vec cannot fail");
            out.push(b':');
            d.write_json(out);
        }
    }
    out.push(b'}');
}

pub(super) fn write_uuid_string(u: &Uuid, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(
        u.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// Appends `{"table": {"uuid": row | null, ...}, ...}` for `rows` grouped by table.
pub(super) fn write_tables<'a>(
    schema: &DatabaseSchema,
    rows: impl Iterator<Item = (usize, &'a Uuid, Option<&'a Row>)>,
    out: &mut Vec<u8>,
) {
    let mut by_table: Vec<Vec<(&Uuid, Option<&Row>)>> = vec![Vec::new(); schema.tables.len()];
    for (t, u, r) in rows {
        by_table[t].push((u, r));
    }
    out.push(b'{');
    let mut first_table = true;
    for (t, rows) in by_table.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
        if !first_table {
            out.push(b',');
        }
        first_table = false;
        let ts = &schema.tables[t];
        serde_json::to_writer(&mut *out, &ts.name).expect("writing to a Vec cannot fail");
        out.extend_from_slice(b":{");
        for (i, (u, r)) in rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_uuid_string(u, out);
            out.push(b':');
            match r {
                Some(r) => write_row(ts, r, out),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
    }
    out.push(b'}');
}

pub(super) fn row_from_json(ts: &TableSchema, v: &Value) -> Result<Row, OvsdbError> {
    let obj = v
        .as_object()
        .ok_or_else(|| OvsdbError::syntax("row must be an object"))?;
    let mut cols = ts.default_row();
    let mut version = Uuid::nil();
    for (k, val) in obj {
        if k == "_version" {
            version = val
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| OvsdbError::syntax("bad _version"))?;
            continue;
        }
        let ci = ts
            .column(k)
            .ok_or_else(|| OvsdbError::unknown_column(format!("{}.{k}", ts.name)))?;
        cols[ci] = Datum::from_json(&ts.columns[ci].type_, val, &mut NoNames)?;
    }
    Ok(Row { version, cols })
}

pub(super) fn snapshot_json(db: &Database) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 16);
    out.extend_from_slice(b"{\"schema\":");
    serde_json::to_writer(&mut out, &db.schema.json).expect("writing to a Vec cannot fail");
    out.extend_from_slice(b",\"txn_id\":");
    write_uuid_string(&db.last_txn_id, &mut out);
    out.extend_from_slice(b",\"data\":");
    let rows = db.tables.iter().enumerate().flat_map(|(t, table)| {
        table
            .rows
            .iter()
            .map(move |(u, r)| (t, u, Some(r.as_ref())))
    });
    write_tables(&db.schema, rows, &mut out);
    out.push(b'}');
    out
}

/// Builds the changeset that a logged transaction (or a snapshot's data) describes.
pub(super) fn changeset_from_json(
    db: &Database,
    tables: &Map<String, Value>,
    txn_id: Uuid,
) -> Result<Changeset, OvsdbError> {
    let mut changes = Vec::new();
    for (tname, rows) in tables {
        let t = db.schema.table_or_err(tname)?;
        let ts = &db.schema.tables[t];
        for (u, row) in rows
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("table data must be an object"))?
        {
            let uuid = Uuid::parse_str(u)
                .map_err(|e| OvsdbError::syntax(format!("bad row uuid {u}: {e}")))?;
            let old = db.tables[t].rows.get(&uuid).cloned();
            let new = if row.is_null() {
                None
            } else {
                Some(Arc::new(row_from_json(ts, row)?))
            };
            changes.push(RowChange {
                table: t,
                uuid,
                old,
                new,
            });
        }
    }
    Ok(Changeset { txn_id, changes })
}

/// Replays the intact records of a scan; returns the database and its snapshot's size.
pub(super) fn replay(path: &Path, scan: &Scan) -> Result<(Database, u64), StorageError> {
    let schema_err = |source| StorageError::Schema {
        path: path.to_path_buf(),
        source,
    };
    let (snapshot, txns) = scan.records.split_first().ok_or_else(|| match &scan.bad {
        Some(bad) => StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: format!(
                "{}; the snapshot itself is damaged, so nothing can be recovered from this \
                 file: restore it from a backup",
                bad.reason
            ),
        },
        None => StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: "empty file".into(),
        },
    })?;
    let txn_id = |v: &Value| {
        v.get("txn_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_default()
    };
    let empty = Map::new();
    let schema = DatabaseSchema::from_json(snapshot.value.get("schema").unwrap_or(&Value::Null))
        .map_err(schema_err)?;
    let mut db = Database::new(Arc::new(schema));
    let data = snapshot
        .value
        .get("data")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let cs = changeset_from_json(&db, data, txn_id(&snapshot.value)).map_err(schema_err)?;
    db.apply(&cs);
    for r in txns {
        let tables = r
            .value
            .get("tables")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let cs = changeset_from_json(&db, tables, txn_id(&r.value)).map_err(schema_err)?;
        db.apply(&cs);
    }
    Ok((db, snapshot.len as u64))
}
