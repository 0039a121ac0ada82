//! ovsdb-server's standalone database file (ovsdb(5), "Standalone Format"), read and written,
//! so an operator can move NB or SB between `switchyard db` and `ovsdb-server` either way
//! without losing a row (`switchyard db --convert IN OUT`).
//!
//! Our own log (`SYDB` records, see the parent module) is not that format: it frames records
//! with a CRC-32 and stores a snapshot of schema and rows first. ovsdb(5)'s file is a sequence
//! of records `OVSDB JSON <length> <sha1>\n<json>\n`, where `<length>` counts the JSON text and
//! its newline and `<sha1>` is the SHA-1 of the same bytes, in hex. The first record is the
//! schema; each later one a transaction `{table: {uuid: row | null}, "_date": ms,
//! "_comment": ..., "_is_diff": true}`. A row for a new UUID is an insert whose missing columns
//! take their defaults; `null` deletes; a row for an existing UUID names only its changed
//! columns. With `_is_diff` (OVS 2.15 and later always write it) a changed column with
//! max > 1 carries its difference, as update2's `modify` does, and every other column its new
//! value (ovsdb-data.c `ovsdb_datum_apply_diff_in_place`): [`crate::monitor::apply_diff`].
//!
//! Writing produces what `ovsdb-tool compact` leaves: the schema, then one transaction
//! inserting every row with its non-default, non-ephemeral columns (ephemeral columns are not
//! persisted in a standalone file either). Reading verifies every SHA-1, accepts a torn final
//! record the way ovsdb-server does after a crash (with a warning: nothing in it was committed)
//! and refuses damage in the middle, and a clustered (RAFT) file, which `ovsdb-tool
//! cluster-to-standalone` turns into this format first.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::records::write_tables;
use super::StorageError;
use crate::database::{Changeset, Database, Row, RowChange};
use crate::datum::{Datum, NoNames};
use crate::error::OvsdbError;
use crate::monitor::apply_diff;
use crate::schema::DatabaseSchema;

/// What every record header of the standalone format starts with (ovsdb(5)).
pub const MAGIC: &str = "OVSDB JSON";

/// What a clustered database file starts with (ovsdb(5), "Clustered Format").
const CLUSTER_MAGIC: &str = "CLUSTER";

/// Frames one record: `OVSDB JSON <len> <sha1>\n` then the JSON and a newline, both counted
/// by `<len>` and hashed by `<sha1>` (ovsdb/log.c `ovsdb_log_compose_record`).
fn frame(json: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(json.len() + 1);
    body.extend_from_slice(json);
    body.push(b'\n');
    let sha1 = sha1_smol::Sha1::from(&body).digest().to_string();
    let mut out = format!("{MAGIC} {} {sha1}\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The bytes of a standalone file holding `db`: the schema, then one transaction inserting
/// every row.
pub fn to_bytes(db: &Database) -> Vec<u8> {
    let schema = serde_json::to_vec(&db.schema.json).expect("a JSON value serializes");
    let mut out = frame(&schema);
    let rows = db.tables.iter().enumerate().flat_map(|(t, table)| {
        table
            .rows
            .iter()
            .map(move |(u, r)| (t, u, Some(r.as_ref())))
    });
    let mut tables = Vec::with_capacity(1 << 16);
    write_tables(&db.schema, rows, &mut tables);
    let mut txn: Map<String, Value> = match serde_json::from_slice(&tables) {
        Ok(Value::Object(m)) => m,
        _ => unreachable!("write_tables writes an object"),
    };
    // Our rows carry `_version`; ovsdb(5) rows do not (a server makes new versions on load).
    for rows in txn.values_mut() {
        for row in rows
            .as_object_mut()
            .into_iter()
            .flat_map(|r| r.values_mut())
        {
            if let Some(r) = row.as_object_mut() {
                r.remove("_version");
            }
        }
    }
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    txn.insert("_date".into(), ms.into());
    txn.insert("_comment".into(), "converted by switchyard db".into());
    out.extend_from_slice(&frame(
        &serde_json::to_vec(&Value::Object(txn)).expect("a JSON value serializes"),
    ));
    out
}

/// One record of a standalone file: its JSON and its size in the file.
struct Parsed {
    value: Value,
    len: usize,
}

/// Parses the record at the start of `b`, checking its length and SHA-1.
fn parse_record(b: &[u8]) -> Result<Parsed, String> {
    let nl = b
        .iter()
        .position(|&c| c == b'\n')
        .ok_or("header without a newline")?;
    let header = std::str::from_utf8(&b[..nl]).map_err(|_| "header is not UTF-8")?;
    let rest = header
        .strip_prefix(MAGIC)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| format!("header {header:?} does not start with {MAGIC:?}"))?;
    let (len, sha1) = rest
        .split_once(' ')
        .ok_or_else(|| format!("header {header:?} lacks a length and a SHA-1"))?;
    let len: usize = len
        .parse()
        .map_err(|_| format!("bad length in header {header:?}"))?;
    let body = b
        .get(nl + 1..nl + 1 + len)
        .ok_or_else(|| format!("record needs {len} bytes, the file ends first"))?;
    let actual = sha1_smol::Sha1::from(body).digest().to_string();
    if !actual.eq_ignore_ascii_case(sha1) {
        return Err(format!("SHA-1 is {actual}, the header says {sha1}"));
    }
    let value = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    Ok(Parsed {
        value,
        len: nl + 1 + len,
    })
}

/// Builds the changeset one standalone-format transaction record describes, against `db`.
fn changeset(db: &Database, txn: &Map<String, Value>) -> Result<Changeset, OvsdbError> {
    let is_diff = txn.get("_is_diff").and_then(Value::as_bool) == Some(true);
    let mut changes = Vec::new();
    for (tname, rows) in txn.iter().filter(|(k, _)| !k.starts_with('_')) {
        let t = db.schema.table_or_err(tname)?;
        let ts = &db.schema.tables[t];
        let rows = rows
            .as_object()
            .ok_or_else(|| OvsdbError::syntax(format!("{tname}: rows must be an object")))?;
        for (u, row) in rows {
            let uuid = Uuid::parse_str(u)
                .map_err(|e| OvsdbError::syntax(format!("bad row uuid {u}: {e}")))?;
            let old = db.tables[t].rows.get(&uuid).cloned();
            let new = match row {
                Value::Null => None,
                Value::Object(cols) => {
                    let mut new_cols = match &old {
                        Some(o) => o.cols.clone(),
                        None => ts.default_row(),
                    };
                    for (c, v) in cols {
                        let ci = ts.column(c).ok_or_else(|| {
                            OvsdbError::unknown_column(format!("{}.{c}", ts.name))
                        })?;
                        let ty = &ts.columns[ci].type_;
                        // ovsdb(5): with `_is_diff`, a modified column with max > 1 is a
                        // difference to apply; anything else is the column's new value.
                        new_cols[ci] = if is_diff && old.is_some() && ty.is_composite() {
                            let d = Datum::from_json_unchecked(ty, v, &mut NoNames)?;
                            apply_diff(ty, &new_cols[ci], &d)
                        } else {
                            Datum::from_json(ty, v, &mut NoNames)?
                        };
                    }
                    Some(Arc::new(Row {
                        version: crate::uuidgen::new_uuid(),
                        cols: new_cols,
                    }))
                }
                _ => {
                    return Err(OvsdbError::syntax(format!(
                        "{tname} row {u} must be an object or null"
                    )))
                }
            };
            changes.push(RowChange {
                table: t,
                uuid,
                old,
                new,
            });
        }
    }
    Ok(Changeset {
        txn_id: crate::uuidgen::new_uuid(),
        changes,
    })
}

/// Reads the standalone file `bytes` (from `path`, for messages) into a database.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Database, StorageError> {
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let schema_err = |source| StorageError::Schema {
        path: path.to_path_buf(),
        source,
    };
    if bytes.starts_with(CLUSTER_MAGIC.as_bytes()) {
        return Err(corrupt(
            0,
            "a clustered (RAFT) database; `ovsdb-tool cluster-to-standalone` makes a \
             standalone file of it first"
                .into(),
        ));
    }
    let first = parse_record(bytes).map_err(|r| corrupt(0, r))?;
    let schema = DatabaseSchema::from_json(&first.value).map_err(schema_err)?;
    let mut db = Database::new(Arc::new(schema));
    let mut pos = first.len;
    while pos < bytes.len() {
        match parse_record(&bytes[pos..]) {
            Ok(rec) => {
                let txn = rec.value.as_object().ok_or_else(|| {
                    corrupt(pos, "a transaction record must be a JSON object".into())
                })?;
                let cs = changeset(&db, txn).map_err(schema_err)?;
                db.apply(&cs);
                pos += rec.len;
            }
            // ovsdb(5)/log.c: what follows the last intact record after a crash is an
            // uncommitted write; ovsdb-server ignores (and truncates) it. Damage with intact
            // records after it is refused rather than silently dropping them.
            Err(reason) => {
                let later = bytes[pos + 1..]
                    .windows(MAGIC.len() + 1)
                    .any(|w| w.starts_with(MAGIC.as_bytes()) && w[MAGIC.len()] == b' ');
                if later {
                    return Err(corrupt(
                        pos,
                        format!("{reason}, and records follow it; refusing to drop them"),
                    ));
                }
                tracing::warn!(path = %path.display(), offset = pos, %reason, "ignoring a torn final record (a write cut short by a crash)");
                break;
            }
        }
    }
    Ok(db)
}

/// Whether `bytes` look like a standalone or clustered ovsdb-server file rather than ours.
pub fn is_ovsdb_server_file(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC.as_bytes()) || bytes.starts_with(CLUSTER_MAGIC.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A schema with every atomic type, optional values, sets, maps and a reference.
    fn schema() -> Value {
        json!({"name": "T", "version": "1.0.0", "tables": {
            "R": {"isRoot": true, "columns": {
                "i": {"type": "integer"}, "r": {"type": "real"}, "b": {"type": "boolean"},
                "s": {"type": "string"}, "o": {"type": {"key": "integer", "min": 0, "max": 1}},
                "set": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
                "map": {"type": {"key": "string", "value": "real", "min": 0,
                                 "max": "unlimited"}},
                "ref": {"type": {"key": {"type": "uuid", "refTable": "R", "refType": "weak"},
                                 "min": 0, "max": 1}}}}}})
    }

    const A: &str = "00000000-0000-4000-8000-00000000000a";
    const B: &str = "00000000-0000-4000-8000-00000000000b";

    fn file(txns: &[Value]) -> Vec<u8> {
        let mut out = frame(schema().to_string().as_bytes());
        for t in txns {
            out.extend_from_slice(&frame(t.to_string().as_bytes()));
        }
        out
    }

    fn rows(db: &Database) -> Vec<(Uuid, Vec<Datum>)> {
        let mut v: Vec<_> = db.tables[0]
            .rows
            .iter()
            .map(|(u, r)| (*u, r.cols.clone()))
            .collect();
        v.sort_by_key(|(u, _)| *u);
        v
    }

    fn col(db: &Database, uuid: &str, name: &str) -> Value {
        let ts = &db.schema.tables[0];
        let row = &db.tables[0].rows[&Uuid::parse_str(uuid).unwrap()];
        row.cols[ts.column(name).unwrap()].to_json()
    }

    fn history() -> Vec<Value> {
        vec![
            json!({"R": {
                A: {"i": 1, "r": 2.5, "b": true, "s": "x", "o": 3,
                    "set": ["set", ["p", "q"]], "map": ["map", [["k", 1.5], ["l", 2.0]]],
                    "ref": ["uuid", B]},
                B: {"s": "other"}}, "_date": 1, "_is_diff": true}),
            // A diff: `set` toggles q off and z on, `map` drops l, changes k, adds m; the
            // optional `o` is cleared and the scalar `i` replaced, both by their new values.
            json!({"R": {A: {"i": 9, "o": ["set", []], "set": ["set", ["q", "z"]],
                             "map": ["map", [["k", 7.0], ["l", 2.0], ["m", 0.5]]]}},
                   "_date": 2, "_is_diff": true, "_comment": "c"}),
        ]
    }

    #[test]
    fn replays_inserts_and_diffs_as_ovsdb_server_writes_them() {
        let db = from_bytes(Path::new("t.db"), &file(&history())).unwrap();
        assert_eq!(col(&db, A, "i"), json!(9));
        assert_eq!(col(&db, A, "r"), json!(2.5));
        assert_eq!(col(&db, A, "o"), json!(["set", []]));
        assert_eq!(col(&db, A, "set"), json!(["set", ["p", "z"]]));
        assert_eq!(col(&db, A, "map"), json!(["map", [["k", 7], ["m", 0.5]]]));
        assert_eq!(col(&db, A, "ref"), json!(["uuid", B]));
        assert_eq!(col(&db, B, "i"), json!(0));
    }

    #[test]
    fn a_row_without_is_diff_replaces_whole_columns_and_null_deletes() {
        let txns = [
            history()[0].clone(),
            json!({"R": {A: {"set": ["set", ["q"]]}, B: null}}),
        ];
        let db = from_bytes(Path::new("t.db"), &file(&txns)).unwrap();
        assert_eq!(col(&db, A, "set"), json!("q"));
        assert_eq!(db.tables[0].rows.len(), 1);
    }

    #[test]
    fn written_files_read_back_with_every_row() {
        let db = from_bytes(Path::new("t.db"), &file(&history())).unwrap();
        let bytes = to_bytes(&db);
        assert!(is_ovsdb_server_file(&bytes));
        let again = from_bytes(Path::new("t.db"), &bytes).unwrap();
        assert_eq!(rows(&again), rows(&db));
        assert_eq!(again.schema.json, db.schema.json);
    }

    #[test]
    fn a_torn_final_record_is_ignored_and_damage_before_intact_records_refused() {
        let whole = file(&history());
        let mut torn = whole.clone();
        torn.truncate(whole.len() - 5);
        let db = from_bytes(Path::new("t.db"), &torn).unwrap();
        assert_eq!(
            col(&db, A, "i"),
            json!(1),
            "the torn second record is not applied"
        );

        let second = whole
            .windows(MAGIC.len())
            .enumerate()
            .filter(|(_, w)| *w == MAGIC.as_bytes())
            .nth(1)
            .unwrap()
            .0;
        let mut damaged = whole.clone();
        // Flip a byte inside the first transaction, which the second one follows.
        damaged[second + 60] ^= 1;
        let err = from_bytes(Path::new("t.db"), &damaged).unwrap_err();
        assert!(err.to_string().contains("SHA-1"), "{err}");
    }

    #[test]
    fn a_clustered_file_is_refused_with_the_way_out() {
        let err = from_bytes(Path::new("c.db"), b"CLUSTER 0 0\n").unwrap_err();
        assert!(err.to_string().contains("cluster-to-standalone"), "{err}");
    }
}
