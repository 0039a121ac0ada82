//! The exclusive lock a process holds on a database file while it has the file open.
//!
//! Two servers appending to one log each replay only their own view of it, so whatever the
//! second one commits is gone at the next restart. ovsdb-server prevents this by holding an
//! `fcntl` write lock on `.<file>.~lock~` beside the database (lib/lockfile.c) for as long as
//! the file is open; we take the same lock on the same name. It is an open-file-description
//! lock (`F_OFD_SETLK`) rather than a classic POSIX one: it also conflicts between two opens in
//! one process (tests run several servers per process) and is not dropped when some other
//! descriptor of the file is closed. The kernel releases it when the holder dies, even by
//! SIGKILL, so a crash never leaves a stale lock. `F_OFD_GETLK` cannot report the holder's pid,
//! so the holder writes its pid into the file, and a refused process names it from there.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a database file could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{db}: the database is in use by {} (it holds {lock}); stop it first, or point this one at another data directory",
        holder.map_or("another process".to_string(), |pid| format!("pid {pid}"))
    )]
    Held {
        db: PathBuf,
        lock: PathBuf,
        /// The holder's pid, as it wrote it into the lock file.
        holder: Option<u32>,
    },
    #[error("{lock}: cannot lock the database: {source}")]
    Io {
        lock: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held lock on one database file; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct LockFile {
    _file: File,
}

/// ovsdb-server's lock file name for `db`: `/dir/x.db` is locked through `/dir/.x.db.~lock~`.
pub fn lock_path(db: &Path) -> PathBuf {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    db.with_file_name(format!(".{name}.~lock~"))
}

impl LockFile {
    /// Takes the lock on `db` without waiting: fails at once, naming the holder, if another
    /// open (in this process or another) has it.
    pub fn acquire(db: &Path) -> Result<LockFile, LockError> {
        let lock = lock_path(db);
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock)
            .map_err(io)?;
        // SAFETY: `flock` is plain old data; all-zero is a valid value, and OFD locks require
        // `l_pid` to be 0. Start 0 and length 0 cover the whole file, as lib/lockfile.c does.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: a valid descriptor and a valid `flock` that lives across the call.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) } == -1 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EACCES) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    Err(LockError::Held {
                        db: db.to_path_buf(),
                        lock,
                        holder: text.trim().parse().ok(),
                    })
                }
                _ => Err(io(err)),
            };
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(io)?;
        Ok(LockFile { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused_and_names_the_holder_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("X.db");
        assert_eq!(lock_path(&db), dir.path().join(".X.db.~lock~"));
        let held = LockFile::acquire(&db).unwrap();
        match LockFile::acquire(&db) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("expected the lock to be held, got {other:?}"),
        }
        drop(held);
        LockFile::acquire(&db).unwrap();
    }
}
