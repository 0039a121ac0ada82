//! Repairing a damaged database file ([`repair`]): keep the records before the first bad one,
//! set the original aside under a new name, never destroy anything. Apart from the log
//! because it runs offline (`switchyard db --repair`-style tools), never inside a server.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::framing::scan;
use super::records::replay;
use super::{replace_file, BadRecord, StorageError};
use crate::lockfile::LockFile;

/// What [`repair`] did to one database file.
#[derive(Debug)]
pub struct Repair {
    pub path: PathBuf,
    /// Records kept: the snapshot and the transactions before the bad record.
    pub kept_records: usize,
    /// The bad record, dropped with everything after it; `None` if the file was intact.
    pub dropped: Option<BadRecord>,
    /// Where the original file now is, untouched.
    pub original: Option<PathBuf>,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match (&self.dropped, &self.original) {
            (Some(bad), Some(original)) => write!(
                f,
                "{path}: record {} at byte {} was invalid ({}); kept the {} records before it \
                 and dropped {} records ({} bytes): the bad one and the {} intact ones after \
                 it. The original file is kept as {}",
                bad.number,
                bad.offset,
                bad.reason,
                self.kept_records,
                bad.intact_after + 1,
                bad.bytes_to_end,
                bad.intact_after,
                original.display()
            ),
            _ => write!(f, "{path}: intact ({} records)", self.kept_records),
        }
    }
}

/// Repairs a database file by keeping its records before the first bad one: the database as
/// of the last transaction that precedes the damage. Later intact records are not replayed
/// across the gap: a transaction record holds only the rows it changed, so without the
/// dropped one it could leave a row that one deleted, or a reference to a row it inserted.
/// The original file is first kept aside, hard-linked as `<file>.corrupt-<unix time>`, so
/// nothing is destroyed. Takes the file's lock: a running server's file is refused.
pub fn repair(path: &Path) -> Result<Repair, StorageError> {
    let _lock = LockFile::acquire(path)?;
    let bytes = std::fs::read(path).map_err(|source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let scan = scan(&bytes);
    // The kept records must open, or the repair would only trade one error for another.
    replay(path, &scan)?;
    let Some(bad) = scan.bad else {
        return Ok(Repair {
            path: path.to_path_buf(),
            kept_records: scan.records.len(),
            dropped: None,
            original: None,
        });
    };
    let original = keep_aside(path)?;
    replace_file(path, &bytes[..bad.offset as usize])?;
    tracing::warn!(path = %path.display(), offset = bad.offset, dropped_records = bad.intact_after + 1, original = %original.display(), "repaired database file");
    Ok(Repair {
        path: path.to_path_buf(),
        kept_records: scan.records.len(),
        dropped: Some(bad),
        original: Some(original),
    })
}

/// Hard-links `path` as `<path>.corrupt-<unix time>[-N]` and returns the new name.
fn keep_aside(path: &Path) -> Result<PathBuf, StorageError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut aside = path.with_file_name(format!("{name}.corrupt-{secs}"));
    let mut n = 0;
    loop {
        match std::fs::hard_link(path, &aside) {
            Ok(()) => return Ok(aside),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                aside = path.with_file_name(format!("{name}.corrupt-{secs}-{n}"));
            }
            Err(source) => {
                return Err(StorageError::Io {
                    path: aside,
                    source,
                })
            }
        }
    }
}
