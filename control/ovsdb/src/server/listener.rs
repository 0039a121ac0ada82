//! Binding a remote before serving it: [`Listener`] holds the bound TCP or unix socket, and
//! [`OvsdbServer::serve_on`] turns it into an accept loop that starts one session per
//! connection. Apart from the session code because binding happens at start-up, before the
//! databases are opened, and is the only place that knows socket kinds.

use std::time::Duration;

use super::{bind_unix_socket, OvsdbServer, Remote, ServerError, SocketFile};

/// A bound remote that does not accept connections yet.
///
/// Binding comes first and serving last, with the databases opened in between: a server that
/// cannot bind then fails before it has touched its data directory, and no client reaches it
/// before its databases are there (connections wait in the kernel's backlog meanwhile).
#[derive(Debug)]
pub struct Listener {
    remote: Remote,
    socket: BoundSocket,
}

#[derive(Debug)]
enum BoundSocket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, SocketFile),
}

impl Listener {
    /// Binds `remote`. A `punix:` path where a live process answers is refused, a stale one
    /// replaced (see [`bind_unix_socket`]); its file is removed when the listener drops.
    pub fn bind(remote: &Remote) -> Result<Listener, ServerError> {
        let err = |source| ServerError::Listen {
            remote: remote.to_string(),
            source,
        };
        match remote {
            Remote::Tcp(addr) => {
                let l = std::net::TcpListener::bind(addr).map_err(err)?;
                l.set_nonblocking(true).map_err(err)?;
                Ok(Listener {
                    remote: Remote::Tcp(l.local_addr().map_err(err)?),
                    socket: BoundSocket::Tcp(l),
                })
            }
            Remote::Unix(path) => {
                let (l, file) = bind_unix_socket(path)?;
                Ok(Listener {
                    remote: remote.clone(),
                    socket: BoundSocket::Unix(l, file),
                })
            }
        }
    }

    /// The bound address (with the actual port when port 0 was asked for).
    pub fn remote(&self) -> &Remote {
        &self.remote
    }
}

impl OvsdbServer {
    /// Starts accepting connections on a bound listener; returns its address. Must be called
    /// within a tokio runtime.
    pub fn serve_on(&self, listener: Listener) -> Result<Remote, ServerError> {
        let Listener { remote, socket } = listener;
        let err = |source| ServerError::Listen {
            remote: remote.to_string(),
            source,
        };
        let me = self.clone();
        match socket {
            BoundSocket::Tcp(l) => {
                let l = tokio::net::TcpListener::from_std(l).map_err(err)?;
                tokio::spawn(async move {
                    loop {
                        match l.accept().await {
                            Ok((s, peer)) => {
                                let _ = s.set_nodelay(true);
                                me.spawn_session(s, peer.to_string());
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "accept failed");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                });
            }
            BoundSocket::Unix(l, file) => {
                let l = tokio::net::UnixListener::from_std(l).map_err(err)?;
                tokio::spawn(async move {
                    // The socket's file lives as long as the accept loop.
                    let _file = file;
                    loop {
                        match l.accept().await {
                            Ok((s, _)) => me.spawn_session(s, "unix".into()),
                            Err(e) => {
                                tracing::warn!(error = %e, "accept failed");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                });
            }
        }
        Ok(remote)
    }
}
