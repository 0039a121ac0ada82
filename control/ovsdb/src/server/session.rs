//! One client session: the read loop that splits the byte stream into JSON-RPC messages,
//! the inactivity probe, the per-session [`Outbox`] with its byte budget, and the first
//! dispatch of each message (requests, `cancel`, the rest ignored). What a method does lives
//! in the modules named after it; this module owns only the connection's life, from the first
//! byte to [`OvsdbServer::end_session`] releasing everything the session held.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

use super::locks::release_lock;
use super::transactions::{in_place, trim_heap};
use super::{syntax, OvsdbServer};
use crate::error::OvsdbError;
use crate::jsonrpc::{FramingError, Message, Splitter};

/// A session's outgoing queue with a byte budget.
#[derive(Clone)]
pub(super) struct Outbox {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    kill: Arc<Notify>,
    dead: Arc<AtomicBool>,
}

impl Outbox {
    fn send(&self, v: &Value) {
        if self.dead.load(Ordering::Relaxed) {
            return;
        }
        let bytes = serde_json::to_vec(v).expect("JSON values serialize");
        let n = bytes.len();
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > self.limit {
            tracing::warn!(
                queued = self.queued.load(Ordering::Relaxed),
                "client is not reading its output; disconnecting it"
            );
            self.close();
            return;
        }
        if self.tx.send(bytes).is_err() {
            self.close();
        }
    }

    fn close(&self) {
        self.dead.store(true, Ordering::Release);
        self.kill.notify_one();
    }

    pub(super) fn reply(&self, id: &Value, result: Result<Value, Value>) {
        let msg = match result {
            Ok(r) => json!({"id": id, "result": r, "error": null}),
            // lib/jsonrpc.c `jsonrpc_msg_to_json`: an error reply has no "result" member.
            Err(e) => json!({"id": id, "error": e}),
        };
        self.send(&msg);
    }

    pub(super) fn notify(&self, method: &str, params: Value) {
        self.send(&json!({"id": null, "method": method, "params": params}));
    }
}

impl OvsdbServer {
    /// Serves one already-connected stream as a session.
    pub fn spawn_session<S>(&self, stream: S, peer: String)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move { me.run_session(stream, peer).await });
    }

    async fn run_session<S>(self, stream: S, peer: String)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let session = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let outbox = Outbox {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            limit: self.shared.config.max_queued_bytes,
            kill: Arc::new(Notify::new()),
            dead: Arc::new(AtomicBool::new(false)),
        };
        self.state().sessions.insert(session, outbox.clone());
        tracing::debug!(session, %peer, "session started");
        let queued = outbox.queued.clone();
        let mut writer = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if wr.write_all(&msg).await.is_err() {
                    break;
                }
                queued.fetch_sub(msg.len(), Ordering::AcqRel);
            }
            let _ = wr.shutdown().await;
        });
        let mut splitter = Splitter::new(self.shared.config.max_message_bytes);
        let mut buf = vec![0u8; 64 << 10];
        let probe = self.shared.config.inactivity_probe;
        let mut deadline = probe.map(|p| tokio::time::Instant::now() + p);
        let mut probing = false;
        'session: loop {
            tokio::select! {
                _ = outbox.kill.notified() => break 'session,
                _ = sleep_until(deadline) => {
                    if probing {
                        tracing::info!(session, %peer, "no reply to the inactivity probe; closing connection");
                        break 'session;
                    }
                    outbox.send(&json!({"id": "echo", "method": "echo", "params": []}));
                    probing = true;
                    deadline = probe.map(|p| tokio::time::Instant::now() + p);
                }
                n = rd.read(&mut buf) => {
                    let n = match n {
                        Ok(0) | Err(_) => break 'session,
                        Ok(n) => n,
                    };
                    probing = false;
                    deadline = probe.map(|p| tokio::time::Instant::now() + p);
                    splitter.push(&buf[..n]);
                    loop {
                        match splitter.next_message() {
                            Ok(Some(bytes)) => match parse_and_free(bytes) {
                                Ok(v) => {
                                    if !self.handle(session, &outbox, v) {
                                        break 'session;
                                    }
                                }
                                Err(e) => {
                                    tracing::info!(session, %peer, error = %e, "malformed JSON; closing connection");
                                    outbox.reply(&Value::Null, Err(syntax(format!("malformed JSON: {e}"))));
                                    break 'session;
                                }
                            },
                            Ok(None) => break,
                            Err(e) => {
                                tracing::info!(session, %peer, error = %e, "bad framing; closing connection");
                                if let FramingError::TooLarge(_) = e {
                                    outbox.reply(&Value::Null, Err(OvsdbError::resources_exhausted(e.to_string()).to_json()));
                                }
                                break 'session;
                            }
                        }
                    }
                }
            }
        }
        let killed = outbox.dead.load(Ordering::Acquire);
        self.end_session(session);
        drop(outbox);
        // A killed session's writer may be stuck on a peer that does not read; otherwise let
        // it flush what is queued (e.g. the error that explains a close) for a moment.
        if killed
            || tokio::time::timeout(Duration::from_secs(2), &mut writer)
                .await
                .is_err()
        {
            writer.abort();
        }
        tracing::debug!(session, %peer, "session ended");
    }

    fn end_session(&self, session: u64) {
        let mut st = self.state();
        st.sessions.remove(&session);
        for e in st.dbs.values_mut() {
            e.monitors.retain(|m| m.session != session);
        }
        st.server_monitors.retain(|(s, _)| *s != session);
        st.pending.retain(|p| p.session != session);
        let names: Vec<String> = st.locks.keys().cloned().collect();
        for name in names {
            release_lock(&mut st, &name, session);
        }
    }

    /// Handles one message; `false` when the session must end: like ovsdb-server
    /// (lib/jsonrpc.c `jsonrpc_recv`), a message that is not valid JSON-RPC — `params` that
    /// is not an array, say — ends the connection without a reply.
    fn handle(&self, session: u64, out: &Outbox, v: Value) -> bool {
        let msg = match Message::from_json(v) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(session, error = %e, "bad JSON-RPC message; closing connection");
                return false;
            }
        };
        match msg {
            Message::Request { method, params, id } => {
                let result = if method == "transact" {
                    in_place(|| self.transact(session, &id, params))
                } else {
                    self.request(session, out, &id, &method, params)
                };
                if let Some(r) = result {
                    out.reply(&id, r);
                }
                if self.shared.trim_heap.swap(false, Ordering::Relaxed) {
                    trim_heap();
                }
            }
            // §4.1.4: cancel is a notification naming an outstanding request.
            Message::Notification { method, params } if method == "cancel" => {
                let mut st = self.state();
                let target = params.get(0).cloned().unwrap_or(Value::Null);
                if let Some(i) = st
                    .pending
                    .iter()
                    .position(|p| p.session == session && p.id == target)
                {
                    let p = st.pending.remove(i);
                    out.reply(&p.id, Err(json!("canceled")));
                }
            }
            Message::Notification { .. } | Message::Response { .. } => {}
        }
        true
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Parses a message and frees its bytes before it is handled (requests can be large).
fn parse_and_free(bytes: Vec<u8>) -> serde_json::Result<Value> {
    serde_json::from_slice(&bytes)
}
