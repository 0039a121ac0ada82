//! Binding a listening unix socket without stealing it from a live process.
//!
//! A unix socket's path outlives the process that bound it, so a restart finds a stale file
//! and must unlink it to bind again. Unlinking unconditionally, though, lets a second server
//! (an OVSDB `punix:` remote, or a node's `--ctl` socket) take the path over from a first one
//! that is still running: the first keeps serving a socket nobody can reach any more. So we
//! connect first: if a process answers, we refuse and name it (its pid, from `SO_PEERCRED`);
//! only a socket that refuses the connection (nobody listens) is stale and taken over, and a
//! path that is not a socket at all is never removed. The bound socket's file is removed again
//! when its [`SocketFile`] guard drops, as ovsdb-server removes its `punix:` sockets at exit.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Why a unix socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum UnixBindError {
    #[error(
        "{path}: {} is listening on this socket; refusing to take it over (stop it first, or choose another path)",
        pid.map_or("another process".to_string(), |p| format!("pid {p}"))
    )]
    InUse { path: PathBuf, pid: Option<i32> },
    #[error("{path}: exists and is not a socket; refusing to remove it")]
    NotASocket { path: PathBuf },
    #[error("{path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The file of a socket this process bound; removed on drop unless someone replaced it.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == (self.dev, self.ino) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// The pid of the process that listens on the other end of `s` (Linux `SO_PEERCRED`).
fn peer_pid(s: &UnixStream) -> Option<i32> {
    // SAFETY: `ucred` is plain old data; getsockopt writes at most `len` bytes into it.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid descriptor, and `cred`/`len` live across the call.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid)
}

/// Binds a listening socket at `path` unless a live process answers there; a stale socket
/// file is replaced. The listener is non-blocking, ready for `tokio::net::UnixListener::from_std`.
pub fn bind_unix_socket(path: &Path) -> Result<(UnixListener, SocketFile), UnixBindError> {
    let io = |action| {
        move |source| UnixBindError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspect it")(e)),
        Ok(m) if !m.file_type().is_socket() => {
            return Err(UnixBindError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(s) => {
                return Err(UnixBindError::InUse {
                    path: path.to_path_buf(),
                    pid: peer_pid(&s),
                })
            }
            // Nobody listens: a socket left behind by a process that is gone.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "replacing a stale socket");
                std::fs::remove_file(path).map_err(io("remove the stale socket"))?;
            }
            Err(e) => return Err(io("probe it for a live listener")(e)),
        },
    }
    let listener = UnixListener::bind(path).map_err(io("bind it"))?;
    listener
        .set_nonblocking(true)
        .map_err(io("make it non-blocking"))?;
    let m = std::fs::symlink_metadata(path).map_err(io("inspect it"))?;
    Ok((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_socket_refused_stale_replaced_other_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let (first, file) = bind_unix_socket(&path).unwrap();
        match bind_unix_socket(&path) {
            Err(UnixBindError::InUse { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id() as i32))
            }
            other => panic!("a live socket must be refused, got {other:?}"),
        }
        // The first listener still owns its path.
        assert!(UnixStream::connect(&path).is_ok());
        // Closed without removing the file: stale, so it is taken over.
        drop(first);
        std::mem::forget(file);
        assert!(path.exists());
        let (_second, file) = bind_unix_socket(&path).unwrap();
        drop(file);
        assert!(!path.exists(), "the guard removes the socket it bound");

        let plain = dir.path().join("not-a-socket");
        std::fs::write(&plain, b"keep me").unwrap();
        assert!(matches!(
            bind_unix_socket(&plain),
            Err(UnixBindError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read(&plain).unwrap(), b"keep me");
    }
}
