//! Durable storage: an append-only log of committed transactions with periodic compaction.
//!
//! One file per database. Every record is framed as `SYDB <length> <crc32>\n<json>\n`; the
//! first record is a snapshot (`{"schema", "txn_id", "data"}`), each later one a transaction
//! (`{"txn_id", "tables": {table: {uuid: row | null}}}`) carrying full new rows. A commit is
//! appended and fsync'd before its reply is sent. While a [`Log`] is open it holds the file's
//! [`LockFile`], so a second server on the same file refuses to start instead of losing writes.
//! On open the records are replayed; a final
//! record that is short or fails its checksum (a crash mid-write) is cut off and the file
//! truncated there. When the log grows well past the snapshot it is rewritten as a new snapshot
//! into a temporary file that atomically replaces the old one.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::database::{Changeset, Database, Row, RowChange};
use super::datum::{Datum, NoNames};
use super::error::OvsdbError;
use super::lockfile::{LockError, LockFile};
use super::schema::{DatabaseSchema, TableSchema};

const MAGIC: &str = "SYDB";

/// Errors from reading or writing a database file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: record at byte {offset} is invalid: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path}: {source}")]
    Schema {
        path: PathBuf,
        #[source]
        source: OvsdbError,
    },
    #[error(transparent)]
    Locked(#[from] LockError),
}

/// When to rewrite the log as a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// Never compact while the transactions after the snapshot are smaller than this.
    pub min_log_bytes: u64,
    /// Compact once the transactions exceed this multiple of the snapshot size.
    pub growth_factor: u64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            min_log_bytes: 16 << 20,
            growth_factor: 4,
        }
    }
}

/// An open database file.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    file: File,
    _lock: LockFile,
    snapshot_bytes: u64,
    txn_bytes: u64,
    policy: CompactionPolicy,
}

fn frame(json: &[u8]) -> Vec<u8> {
    let crc = crc32fast::hash(json);
    let mut out = format!("{MAGIC} {} {crc:08x}\n", json.len()).into_bytes();
    out.extend_from_slice(json);
    out.push(b'\n');
    out
}

/// Appends the log JSON of a row: `_version` and the non-default, non-ephemeral columns.
fn write_row(ts: &TableSchema, row: &Row, out: &mut Vec<u8>) {
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

fn write_uuid_string(u: &Uuid, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(
        u.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// Appends `{"table": {"uuid": row | null, ...}, ...}` for `rows` grouped by table.
fn write_tables<'a>(
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

fn row_from_json(ts: &TableSchema, v: &Value) -> Result<Row, OvsdbError> {
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

fn snapshot_json(db: &Database) -> Vec<u8> {
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
fn changeset_from_json(
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

impl Log {
    /// Creates a new database file holding an empty database of `schema`.
    pub fn create(
        path: &Path,
        schema: Arc<DatabaseSchema>,
        policy: CompactionPolicy,
    ) -> Result<(Log, Database), StorageError> {
        let lock = LockFile::acquire(path)?;
        let db = Database::new(schema);
        let io = |source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let rec = frame(&snapshot_json(&db));
        file.write_all(&rec).map_err(io)?;
        file.sync_all().map_err(io)?;
        sync_dir(path)?;
        Ok((
            Log {
                path: path.to_path_buf(),
                file,
                _lock: lock,
                snapshot_bytes: rec.len() as u64,
                txn_bytes: 0,
                policy,
            },
            db,
        ))
    }

    /// Opens an existing database file and replays it, truncating a torn final record.
    pub fn open(path: &Path, policy: CompactionPolicy) -> Result<(Log, Database), StorageError> {
        let lock = LockFile::acquire(path)?;
        let io = |source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut pos = 0usize;
        let mut db: Option<Database> = None;
        let mut snapshot_bytes = 0u64;
        while pos < bytes.len() {
            let record = match parse_record(&bytes[pos..]) {
                Ok(r) => r,
                Err(reason) => {
                    if db.is_none() {
                        return Err(StorageError::Corrupt {
                            path: path.to_path_buf(),
                            offset: pos as u64,
                            reason,
                        });
                    }
                    tracing::warn!(path = %path.display(), offset = pos, %reason, "truncating torn or corrupt log tail");
                    file.set_len(pos as u64).map_err(io)?;
                    file.sync_all().map_err(io)?;
                    break;
                }
            };
            let (len, value) = record;
            let schema_err = |source| StorageError::Schema {
                path: path.to_path_buf(),
                source,
            };
            let txn_id = value
                .get("txn_id")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .unwrap_or_default();
            match db.as_mut() {
                None => {
                    let schema =
                        DatabaseSchema::from_json(value.get("schema").unwrap_or(&Value::Null))
                            .map_err(schema_err)?;
                    let mut fresh = Database::new(Arc::new(schema));
                    let empty = Map::new();
                    let data = value
                        .get("data")
                        .and_then(Value::as_object)
                        .unwrap_or(&empty);
                    let cs = changeset_from_json(&fresh, data, txn_id).map_err(schema_err)?;
                    fresh.apply(&cs);
                    snapshot_bytes = len as u64;
                    db = Some(fresh);
                }
                Some(d) => {
                    let empty = Map::new();
                    let tables = value
                        .get("tables")
                        .and_then(Value::as_object)
                        .unwrap_or(&empty);
                    let cs = changeset_from_json(d, tables, txn_id).map_err(schema_err)?;
                    d.apply(&cs);
                }
            }
            pos += len;
        }
        let db = db.ok_or_else(|| StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: "empty file".into(),
        })?;
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((
            Log {
                path: path.to_path_buf(),
                file,
                _lock: lock,
                snapshot_bytes,
                txn_bytes: pos as u64 - snapshot_bytes,
                policy,
            },
            db,
        ))
    }

    /// Appends one committed transaction and waits for it to reach the disk.
    pub fn append(&mut self, schema: &DatabaseSchema, cs: &Changeset) -> Result<(), StorageError> {
        let mut body = Vec::with_capacity(1 << 12);
        body.extend_from_slice(b"{\"txn_id\":");
        write_uuid_string(&cs.txn_id, &mut body);
        body.extend_from_slice(b",\"tables\":");
        write_tables(
            schema,
            cs.changes
                .iter()
                .map(|ch| (ch.table, &ch.uuid, ch.new.as_deref())),
            &mut body,
        );
        body.push(b'}');
        let rec = frame(&body);
        let io = |source| StorageError::Io {
            path: self.path.clone(),
            source,
        };
        let end = self.snapshot_bytes + self.txn_bytes;
        if let Err(e) = self
            .file
            .write_all(&rec)
            .and_then(|()| self.file.sync_data())
        {
            // A partial record must not stay in front of later ones: recovery stops at the
            // first bad record. Cut the file back to the last good one (best effort).
            let _ = self
                .file
                .set_len(end)
                .and_then(|()| self.file.seek(SeekFrom::Start(end)).map(drop));
            return Err(io(e));
        }
        self.txn_bytes += rec.len() as u64;
        Ok(())
    }

    /// Whether the policy asks for a compaction now.
    pub fn wants_compaction(&self) -> bool {
        self.txn_bytes >= self.policy.min_log_bytes
            && self.txn_bytes >= self.snapshot_bytes * self.policy.growth_factor
    }

    /// Rewrites the file as a single snapshot of `db` (write temp file, fsync, rename).
    pub fn compact(&mut self, db: &Database) -> Result<(), StorageError> {
        let tmp = self.path.with_extension("tmp");
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StorageError::Io { path: p, source }
        };
        let rec = frame(&snapshot_json(db));
        {
            let f = File::create(&tmp).map_err(io(&tmp))?;
            let mut w = BufWriter::new(f);
            w.write_all(&rec).map_err(io(&tmp))?;
            let f = w.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        sync_dir(&self.path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        file.seek(SeekFrom::End(0)).map_err(io(&self.path))?;
        self.file = file;
        self.snapshot_bytes = rec.len() as u64;
        self.txn_bytes = 0;
        tracing::info!(path = %self.path.display(), bytes = rec.len(), "compacted database log");
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn sync_dir(path: &Path) -> Result<(), StorageError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StorageError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Parses one framed record at the start of `b`: returns its total length and JSON.
fn parse_record(b: &[u8]) -> Result<(usize, Value), String> {
    let nl = b
        .iter()
        .take(64)
        .position(|&c| c == b'\n')
        .ok_or("missing record header")?;
    let header = std::str::from_utf8(&b[..nl]).map_err(|_| "header is not UTF-8")?;
    let mut parts = header.split(' ');
    if parts.next() != Some(MAGIC) {
        return Err(format!("bad magic in header {header:?}"));
    }
    let len: usize = parts
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("bad length")?;
    let crc = parts
        .next()
        .and_then(|c| u32::from_str_radix(c, 16).ok())
        .ok_or("bad checksum field")?;
    let start = nl + 1;
    let end = start.checked_add(len).ok_or("length overflow")?;
    if b.len() < end + 1 {
        return Err(format!(
            "record is truncated ({} of {} bytes)",
            b.len().saturating_sub(start),
            len + 1
        ));
    }
    let body = &b[start..end];
    if crc32fast::hash(body) != crc || b[end] != b'\n' {
        return Err("checksum mismatch".into());
    }
    let v = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    Ok((end + 1, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::{execute, Outcome, TxnContext};
    use serde_json::json;

    struct Ctx;
    impl TxnContext for Ctx {
        fn owns_lock(&self, _: &str) -> bool {
            false
        }
        fn durable(&self) -> bool {
            true
        }
        fn wait_expired(&self) -> bool {
            true
        }
    }

    fn schema() -> Arc<DatabaseSchema> {
        Arc::new(
            DatabaseSchema::from_json(&json!({"name": "T", "version": "1.0.0", "tables": {
                "A": {"isRoot": true, "columns": {"name": {"type": "string"}, "n": {"type": "integer"}}}}}))
            .unwrap(),
        )
    }

    fn commit(log: &mut Log, db: &mut Database, ops: Value) {
        let Outcome::Done {
            changes: Some(cs), ..
        } = execute(db, ops.as_array().unwrap(), &Ctx)
        else {
            panic!("no changes")
        };
        log.append(&db.schema.clone(), &cs).unwrap();
        db.apply(&cs);
    }

    /// Columns are in name order: 0 = "n", 1 = "name".
    fn names(db: &Database) -> Vec<String> {
        let mut v: Vec<String> = db.tables[0]
            .rows
            .values()
            .map(|r| r.cols[1].first().unwrap().as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replay_compact_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let policy = CompactionPolicy {
            min_log_bytes: 0,
            growth_factor: 1,
        };
        let (mut log, mut db) = Log::create(&path, schema(), policy).unwrap();
        commit(
            &mut log,
            &mut db,
            json!([{"op": "insert", "table": "A", "row": {"name": "a", "n": 1}}]),
        );
        commit(
            &mut log,
            &mut db,
            json!([{"op": "insert", "table": "A", "row": {"name": "b"}}]),
        );
        commit(
            &mut log,
            &mut db,
            json!([{"op": "update", "table": "A", "where": [["name", "==", "a"]], "row": {"n": 7}}]),
        );
        drop(log);
        let (mut log, mut db2) = Log::open(&path, policy).unwrap();
        assert_eq!(names(&db2), ["a", "b"]);
        assert_eq!(db2.last_txn_id, db.last_txn_id);
        assert!(log.wants_compaction());
        log.compact(&db2).unwrap();
        commit(
            &mut log,
            &mut db2,
            json!([{"op": "delete", "table": "A", "where": [["name", "==", "b"]]}]),
        );
        drop(log);
        // A torn final record (crash mid-write) is dropped, earlier ones survive.
        let good = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"SYDB 500 0000abcd\n{\"txn_id\": \"x\", \"tab")
            .unwrap();
        drop(f);
        let (_log, db3) = Log::open(&path, policy).unwrap();
        assert_eq!(names(&db3), ["a"]);
        let n = db3.tables[0].rows.values().next().unwrap().cols[0]
            .first()
            .unwrap()
            .as_integer();
        assert_eq!(n, Some(7));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
    }

    #[test]
    fn an_open_file_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (log, _db) = Log::create(&path, schema(), CompactionPolicy::default()).unwrap();
        assert!(matches!(
            Log::open(&path, CompactionPolicy::default()),
            Err(StorageError::Locked(LockError::Held { .. }))
        ));
        drop(log);
        Log::open(&path, CompactionPolicy::default()).unwrap();
    }

    #[test]
    fn corrupt_header_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.db");
        std::fs::write(&path, b"garbage\n").unwrap();
        assert!(matches!(
            Log::open(&path, CompactionPolicy::default()),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
