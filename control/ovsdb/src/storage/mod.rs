//! Durable storage: an append-only log of committed transactions with periodic compaction.
//!
//! One file per database. Every record is framed as `SYDB <length> <crc32>\n<json>\n`; the
//! first record is a snapshot (`{"schema", "txn_id", "data"}`), each later one a transaction
//! (`{"txn_id", "tables": {table: {uuid: row | null}}}`) carrying full new rows. A commit is
//! appended and fsync'd before its reply is sent. While a [`Log`] is open it holds the file's
//! [`LockFile`], so a second server on the same file refuses to start instead of losing writes.
//!
//! On open the records are replayed. A bad record with nothing intact after it is a torn final
//! append (a crash mid-write: nothing in it was acknowledged) and is cut off. A bad record with
//! intact records after it is damage, not a crash: opening fails and says where, rather than
//! dropping acknowledged transactions; [`repair`] then keeps the records before it and sets the
//! original aside. New files, snapshots and repairs are written into a temporary file that
//! atomically replaces the old one, so a crash never leaves a half-written snapshot.//!
//! `framing` owns the bytes of a record, `records` what its JSON says and the replay, and
//! `repair` the offline repair; this module is the open [`Log`] and its file operations.
//! [`ovsdb_file`] reads and writes ovsdb-server's own file format, which [`convert`] uses to
//! move a database between the two servers.

mod framing;
pub mod ovsdb_file;
mod records;
mod repair;

pub use repair::{repair, Repair};

use framing::{frame, scan};
use records::{replay, snapshot_json, write_tables, write_uuid_string};

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::database::{Changeset, Database};
use super::error::OvsdbError;
use super::lockfile::{LockError, LockFile};
use super::schema::DatabaseSchema;

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
    #[error(
        "{path}: record {} at byte {} is invalid ({}) and {} intact records follow it; \
         refusing to open the database rather than drop them. `switchyard db --repair` keeps \
         the {} records before it and sets the original file aside",
        .bad.number, .bad.offset, .bad.reason, .bad.intact_after, .bad.number - 1
    )]
    MidLogCorruption { path: PathBuf, bad: BadRecord },
    #[error("{path}: {source}")]
    Schema {
        path: PathBuf,
        #[source]
        source: OvsdbError,
    },
    #[error(transparent)]
    Locked(#[from] LockError),
}

/// The first record of a file that does not parse, and what lies after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Where it starts in the file.
    pub offset: u64,
    /// Its place in the file, counting from 1 (record 1 is the snapshot).
    pub number: usize,
    /// What is wrong with it.
    pub reason: String,
    /// Intact records found after it: none for a torn final record.
    pub intact_after: usize,
    /// Bytes from its start to the end of the file.
    pub bytes_to_end: u64,
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

impl Log {
    /// Creates a new database file holding an empty database of `schema`.
    pub fn create(
        path: &Path,
        schema: Arc<DatabaseSchema>,
        policy: CompactionPolicy,
    ) -> Result<(Log, Database), StorageError> {
        let lock = LockFile::acquire(path)?;
        let io = |source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.exists() {
            return Err(io(std::io::ErrorKind::AlreadyExists.into()));
        }
        let db = Database::new(schema);
        let rec = frame(&snapshot_json(&db));
        let file = replace_file(path, &rec)?;
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

    /// Opens an existing database file and replays it, cutting off a torn final record.
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
        let scan = scan(&bytes);
        if let Some(bad) = &scan.bad {
            if bad.number > 1 && bad.intact_after > 0 {
                return Err(StorageError::MidLogCorruption {
                    path: path.to_path_buf(),
                    bad: bad.clone(),
                });
            }
        }
        let (db, snapshot_bytes) = replay(path, &scan)?;
        let mut end = bytes.len() as u64;
        if let Some(bad) = &scan.bad {
            tracing::warn!(path = %path.display(), offset = bad.offset, bytes = bad.bytes_to_end, reason = %bad.reason, "cutting off a torn final record (a write cut short by a crash)");
            file.set_len(bad.offset).map_err(io)?;
            file.sync_all().map_err(io)?;
            end = bad.offset;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((
            Log {
                path: path.to_path_buf(),
                file,
                _lock: lock,
                snapshot_bytes,
                txn_bytes: end - snapshot_bytes,
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
        let rec = frame(&snapshot_json(db));
        self.file = replace_file(&self.path, &rec)?;
        self.snapshot_bytes = rec.len() as u64;
        self.txn_bytes = 0;
        tracing::info!(path = %self.path.display(), bytes = rec.len(), "compacted database log");
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Which way [`convert`] went, and how many rows it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The database's name (`OVN_Northbound`, ...).
    pub name: String,
    /// True when the input was ovsdb-server's file and the output is ours.
    pub from_ovsdb_server: bool,
    pub rows: usize,
}

impl std::fmt::Display for Converted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (from, to) = if self.from_ovsdb_server {
            ("ovsdb-server's standalone format", "switchyard db's log")
        } else {
            ("switchyard db's log", "ovsdb-server's standalone format")
        };
        write!(f, "{}: {} rows from {from} to {to}", self.name, self.rows)
    }
}

/// Converts the database file `input` to the other server's format in `output`, which must not
/// exist: our log becomes an ovsdb-server standalone file (ovsdb(5)) and a standalone file
/// becomes our log, every row kept with its UUID. Both files are locked as the servers lock
/// them (`.<file>.~lock~`), so a file a running server (ours or ovsdb-server) has open is
/// refused rather than read half-written.
pub fn convert(input: &Path, output: &Path) -> Result<Converted, StorageError> {
    let _in_lock = LockFile::acquire(input)?;
    let _out_lock = LockFile::acquire(output)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StorageError::Io { path, source }
    };
    if output.exists() {
        return Err(io(output)(std::io::ErrorKind::AlreadyExists.into()));
    }
    let bytes = std::fs::read(input).map_err(io(input))?;
    let from_ovsdb_server = ovsdb_file::is_ovsdb_server_file(&bytes);
    let (db, out) = if from_ovsdb_server {
        let db = ovsdb_file::from_bytes(input, &bytes)?;
        let out = frame(&snapshot_json(&db));
        (db, out)
    } else {
        let scan = scan(&bytes);
        if let Some(bad) = &scan.bad {
            if bad.number > 1 && bad.intact_after > 0 {
                return Err(StorageError::MidLogCorruption {
                    path: input.to_path_buf(),
                    bad: bad.clone(),
                });
            }
        }
        let (db, _) = replay(input, &scan)?;
        let out = ovsdb_file::to_bytes(&db);
        (db, out)
    };
    replace_file(output, &out)?;
    Ok(Converted {
        name: db.schema.name.clone(),
        from_ovsdb_server,
        rows: db.tables.iter().map(|t| t.rows.len()).sum(),
    })
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

/// Atomically replaces (or creates) `path` with `contents`: written to a temporary file,
/// fsync'd, renamed over `path`, directory fsync'd. Returns `path` open for appending.
fn replace_file(path: &Path, contents: &[u8]) -> Result<File, StorageError> {
    let tmp = path.with_extension("tmp");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| StorageError::Io { path: p, source }
    };
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(path)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    file.seek(SeekFrom::End(0)).map_err(io(path))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::{execute, Outcome, TxnContext};
    use serde_json::{json, Value};

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
    fn corrupt_header_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.db");
        std::fs::write(&path, b"garbage\n").unwrap();
        assert!(matches!(
            Log::open(&path, CompactionPolicy::default()),
            Err(StorageError::Corrupt { .. })
        ));
    }

    /// Writes a log of one snapshot and five inserts; returns the offset of each record.
    fn five_inserts(path: &Path) -> Vec<u64> {
        let (mut log, mut db) = Log::create(path, schema(), CompactionPolicy::default()).unwrap();
        for name in ["a", "b", "c", "d", "e"] {
            commit(
                &mut log,
                &mut db,
                json!([{"op": "insert", "table": "A", "row": {"name": name}}]),
            );
        }
        let bytes = std::fs::read(path).unwrap();
        let scan = scan(&bytes);
        assert!(scan.bad.is_none());
        let mut offsets = vec![0];
        for r in &scan.records {
            offsets.push(offsets.last().unwrap() + r.len as u64);
        }
        offsets.pop();
        offsets
    }

    #[test]
    fn damage_before_intact_records_refuses_and_repair_keeps_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let offsets = five_inserts(&path);
        // Overwrite bytes inside record 3 (the insert of "b").
        let mut bytes = std::fs::read(&path).unwrap();
        let at = offsets[2] as usize + 30;
        bytes[at..at + 4].copy_from_slice(b"XXXX");
        std::fs::write(&path, &bytes).unwrap();

        match Log::open(&path, CompactionPolicy::default()) {
            Err(e @ StorageError::MidLogCorruption { .. }) => {
                let StorageError::MidLogCorruption { bad, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(
                    (bad.number, bad.offset, bad.intact_after),
                    (3, offsets[2], 3)
                );
                let text = e.to_string();
                assert!(
                    text.contains("record 3 at byte") && text.contains("3 intact records follow"),
                    "{text}"
                );
            }
            other => panic!("expected mid-log corruption, got {other:?}"),
        }
        // Refusing did not touch the file.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);

        let report = repair(&path).unwrap();
        assert_eq!(report.kept_records, 2);
        assert_eq!(report.dropped.as_ref().unwrap().intact_after, 3);
        let original = report.original.clone().unwrap();
        assert_eq!(
            std::fs::read(&original).unwrap(),
            bytes,
            "the original is kept as it was"
        );
        assert!(report.to_string().contains("dropped 4 records"), "{report}");
        let (_log, db) = Log::open(&path, CompactionPolicy::default()).unwrap();
        assert_eq!(names(&db), ["a"]);
        drop(_log);
        // An intact file is left alone.
        let again = repair(&path).unwrap();
        assert!(again.dropped.is_none() && again.original.is_none());
    }

    #[test]
    fn garbage_after_the_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let offsets = five_inserts(&path);
        let good = std::fs::read(&path).unwrap();
        // Damage the last record in place: nothing intact follows, so it is cut.
        let mut bytes = good.clone();
        let at = *offsets.last().unwrap() as usize + 30;
        bytes[at] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_log, db) = Log::open(&path, CompactionPolicy::default()).unwrap();
        assert_eq!(names(&db), ["a", "b", "c", "d"]);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            *offsets.last().unwrap()
        );
    }

    #[test]
    fn a_damaged_snapshot_is_refused_even_by_repair() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        five_inserts(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Log::open(&path, CompactionPolicy::default()),
            Err(StorageError::Corrupt { offset: 0, .. })
        ));
        assert!(matches!(repair(&path), Err(StorageError::Corrupt { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
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
        assert!(matches!(repair(&path), Err(StorageError::Locked(_))));
        drop(log);
        Log::open(&path, CompactionPolicy::default()).unwrap();
    }
}
