//! One JSON-RPC connection to an OVSDB server (RFC 7047 §4).
//!
//! A [`Connection`] owns a reader task that splits the stream into messages, completes the
//! matching pending request for each response, answers the server's `echo` probes, and
//! forwards notifications (`update2`, `update3`, `locked`, ...) to a channel. Requests may be
//! issued concurrently from many tasks; when the stream closes every pending request fails
//! with [`ClientError::Closed`] and the notification channel ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::ClientError;
use crate::jsonrpc::{Message, Splitter};
use crate::server::Remote;

/// A server-initiated message without an id.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub method: String,
    pub params: Value,
}

/// A response, with how many notifications the reader had forwarded before it.
type Reply = (Result<Value, Value>, u64);
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

/// A live connection; cheap to share behind an `Arc`. Dropping it closes the socket.
pub struct Connection {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next_id: AtomicU64,
    remote: String,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for Connection {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Connection {
    /// Connects to `remote`; returns the connection and its notification stream.
    pub async fn connect(
        remote: &Remote,
        max_message_bytes: usize,
    ) -> Result<(Connection, mpsc::UnboundedReceiver<Notification>), ClientError> {
        let err = |source| ClientError::Connect {
            remote: remote.to_string(),
            source,
        };
        match remote {
            Remote::Tcp(addr) => {
                let s = tokio::net::TcpStream::connect(addr).await.map_err(err)?;
                let _ = s.set_nodelay(true);
                Ok(Self::start(s, remote.to_string(), max_message_bytes))
            }
            Remote::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path).await.map_err(err)?;
                Ok(Self::start(s, remote.to_string(), max_message_bytes))
            }
        }
    }

    /// Runs the protocol over an already-connected stream.
    pub fn start<S>(
        stream: S,
        remote: String,
        max_message_bytes: usize,
    ) -> (Connection, mpsc::UnboundedReceiver<Notification>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let (tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (notif_tx, notif_rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let writer = tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if wr.write_all(&msg).await.is_err() {
                    break;
                }
            }
        });
        let reader_pending = pending.clone();
        let echo_tx = tx.clone();
        let peer = remote.clone();
        let reader = tokio::spawn(async move {
            let mut splitter = Splitter::new(max_message_bytes);
            let mut buf = vec![0u8; 64 << 10];
            let mut notified = 0u64;
            'read: loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                splitter.push(&buf[..n]);
                loop {
                    let bytes = match splitter.next_message() {
                        Ok(Some(b)) => b,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(remote = %peer, error = %e, "bad framing from server");
                            break 'read;
                        }
                    };
                    let msg = match serde_json::from_slice::<Value>(&bytes)
                        .map_err(|e| e.to_string())
                        .and_then(Message::from_json)
                    {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(remote = %peer, error = %e, "malformed message from server");
                            break 'read;
                        }
                    };
                    match msg {
                        Message::Response { result, error, id } => {
                            let waiter = id.as_u64().and_then(|id| {
                                reader_pending
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&id)
                            });
                            if let Some(w) = waiter {
                                let r = if error.is_null() {
                                    Ok(result)
                                } else {
                                    Err(error)
                                };
                                let _ = w.send((r, notified));
                            }
                        }
                        // RFC 7047 §4.1.11: answer the server's keepalive probes.
                        Message::Request { method, params, id } if method == "echo" => {
                            let reply = json!({"id": id, "result": params, "error": null});
                            let _ = echo_tx.send(reply.to_string().into_bytes());
                        }
                        Message::Request { id, .. } => {
                            let reply =
                                json!({"id": id, "result": null, "error": "unknown method"});
                            let _ = echo_tx.send(reply.to_string().into_bytes());
                        }
                        Message::Notification { method, params } => {
                            notified += 1;
                            let _ = notif_tx.send(Notification { method, params });
                        }
                    }
                }
            }
            // Fail whatever is still waiting; dropping the senders does that.
            reader_pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        });
        (
            Connection {
                tx,
                pending,
                next_id: AtomicU64::new(1),
                remote,
                tasks: [writer, reader],
            },
            notif_rx,
        )
    }

    /// Sends a request and waits for its response.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.call_counted(method, params).await.map(|(v, _)| v)
    }

    /// Like [`Connection::call`], and also returns how many notifications arrived on this
    /// connection before the response. A server that sends the updates a request causes
    /// before its reply (ovsdb-server does for `monitor_cond_change`) lets the caller wait
    /// until those updates are applied.
    pub async fn call_counted(
        &self,
        method: &str,
        params: Value,
    ) -> Result<(Value, u64), ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let msg = json!({"id": id, "method": method, "params": params});
        if self.tx.send(msg.to_string().into_bytes()).is_err() {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(ClientError::Closed {
                remote: self.remote.clone(),
            });
        }
        match rx.await {
            Ok((Ok(v), n)) => Ok((v, n)),
            Ok((Err(error), _)) => Err(ClientError::Rpc {
                method: method.to_string(),
                error,
            }),
            Err(_) => Err(ClientError::Closed {
                remote: self.remote.clone(),
            }),
        }
    }

    /// Sends a notification (e.g. `cancel`).
    pub fn notify(&self, method: &str, params: Value) -> Result<(), ClientError> {
        let msg = json!({"id": null, "method": method, "params": params});
        self.tx
            .send(msg.to_string().into_bytes())
            .map_err(|_| ClientError::Closed {
                remote: self.remote.clone(),
            })
    }

    /// The remote this connection goes to, in OVSDB notation.
    pub fn remote(&self) -> &str {
        &self.remote
    }
}
