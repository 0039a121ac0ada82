//! The OVSDB server: RFC 7047 JSON-RPC sessions over TCP and unix sockets.
//!
//! One [`OvsdbServer`] serves several databases plus the read-only `_Server` database that
//! clients use for discovery. Each connection is a session task that splits the byte stream
//! into messages ([`crate::jsonrpc::Splitter`]) and dispatches them under one state lock, so a
//! transaction's commit, its log append and the monitor updates it causes are ordered the same
//! for every client. Replies and notifications go through a per-session outbox with a byte
//! budget: a client that stops reading is disconnected instead of blocking others or growing
//! memory. Locks (§4.1.8-10), blocked `wait` operations and `cancel` (§4.1.4) live here too.

mod params;
mod remote;
mod server_db;
mod unix_socket;

pub use remote::Remote;
pub use unix_socket::{bind_unix_socket, SocketFile, UnixBindError};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use uuid::Uuid;

use crate::database::{Changeset, Database};
use crate::error::OvsdbError;
use crate::jsonrpc::{FramingError, Message, Splitter};
use crate::monitor::{Monitor, MonitorVersion};
use crate::schema_json;
use crate::storage::Log;
use crate::transaction::{execute, Outcome, TxnContext};

/// Limits that protect the server from clients.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Largest JSON-RPC message accepted; larger ones close the connection.
    pub max_message_bytes: usize,
    /// Largest amount of unsent output per session before the session is dropped.
    pub max_queued_bytes: usize,
    /// Committed transactions kept for `monitor_cond_since` resumption.
    pub history_len: usize,
    /// After this long without input the server sends an `echo` request, and closes the
    /// connection if another interval passes in silence (ovsdb-server's inactivity probe).
    pub inactivity_probe: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_message_bytes: 64 << 20,
            max_queued_bytes: 256 << 20,
            history_len: 128,
            inactivity_probe: Some(Duration::from_secs(5)),
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {remote}: {source}")]
    Listen {
        remote: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    UnixSocket(#[from] UnixBindError),
    #[error("database {0} is already served")]
    DuplicateDatabase(String),
}

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

/// A session's outgoing queue with a byte budget.
#[derive(Clone)]
struct Outbox {
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

    fn reply(&self, id: &Value, result: Result<Value, Value>) {
        let msg = match result {
            Ok(r) => json!({"id": id, "result": r, "error": null}),
            // lib/jsonrpc.c `jsonrpc_msg_to_json`: an error reply has no "result" member.
            Err(e) => json!({"id": id, "error": e}),
        };
        self.send(&msg);
    }

    fn notify(&self, method: &str, params: Value) {
        self.send(&json!({"id": null, "method": method, "params": params}));
    }
}

struct MonitorReg {
    session: u64,
    id: Value,
    monitor: Monitor,
}

struct DbEntry {
    db: Database,
    log: Option<Log>,
    monitors: Vec<MonitorReg>,
    history: VecDeque<Arc<Changeset>>,
}

#[derive(Default)]
struct LockState {
    owner: Option<u64>,
    waiters: VecDeque<u64>,
}

struct PendingTxn {
    serial: u64,
    session: u64,
    id: Value,
    db: String,
    ops: Vec<Value>,
}

struct State {
    dbs: HashMap<String, DbEntry>,
    sessions: HashMap<u64, Outbox>,
    locks: HashMap<String, LockState>,
    pending: Vec<PendingTxn>,
    server_db: Database,
    /// (session, monitor id) of monitors on `_Server`.
    server_monitors: Vec<(u64, Value)>,
}

struct Shared {
    state: Mutex<State>,
    config: ServerConfig,
    next_id: AtomicU64,
    /// Set after a large transaction: give freed memory back once its reply is queued.
    trim_heap: AtomicBool,
    /// What `get_server_id` answers: chosen at start-up, as ovsdb-server does.
    server_id: Uuid,
}

/// A transaction touching this many rows triggers a heap trim afterwards.
const LARGE_TRANSACTION_ROWS: usize = 10_000;

/// What became of a transaction.
enum Step {
    Done(Result<Value, Value>),
    /// Blocked in a `wait`; the operations are kept for a retry.
    Blocked(Vec<Value>),
}

/// An OVSDB server; clone handles freely.
#[derive(Clone)]
pub struct OvsdbServer {
    shared: Arc<Shared>,
}

struct Ctx<'a> {
    owned: &'a HashSet<String>,
    durable: bool,
    expired: bool,
}

impl TxnContext for Ctx<'_> {
    fn owns_lock(&self, name: &str) -> bool {
        self.owned.contains(name)
    }
    fn durable(&self) -> bool {
        self.durable
    }
    fn wait_expired(&self) -> bool {
        self.expired
    }
}

fn syntax(details: impl Into<String>) -> Value {
    OvsdbError::syntax(details).to_json()
}

impl OvsdbServer {
    pub fn new(config: ServerConfig) -> Self {
        OvsdbServer {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    dbs: HashMap::new(),
                    sessions: HashMap::new(),
                    locks: HashMap::new(),
                    pending: Vec::new(),
                    server_db: server_db::new(),
                    server_monitors: Vec::new(),
                }),
                config,
                next_id: AtomicU64::new(1),
                trim_heap: AtomicBool::new(false),
                server_id: crate::uuidgen::new_uuid(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves `db`; with a `log`, every commit is appended and fsync'd before its reply.
    pub fn add_database(&self, db: Database, log: Option<Log>) -> Result<(), ServerError> {
        let mut st = self.state();
        let name = db.schema.name.clone();
        if st.dbs.contains_key(&name) || name == server_db::NAME {
            return Err(ServerError::DuplicateDatabase(name));
        }
        server_db::add_row(&mut st.server_db, &db.schema);
        st.dbs.insert(
            name,
            DbEntry {
                db,
                log,
                monitors: Vec::new(),
                history: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// Runs `f` on a database (tests and tools inspect state this way).
    pub fn with_database<R>(&self, name: &str, f: impl FnOnce(&Database) -> R) -> Option<R> {
        let st = self.state();
        st.dbs.get(name).map(|e| f(&e.db))
    }

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

    /// Dispatches every method but transact; `None` means the reply is sent later (or never).
    fn request(
        &self,
        session: u64,
        out: &Outbox,
        id: &Value,
        method: &str,
        params: Value,
    ) -> Option<Result<Value, Value>> {
        let p = params.as_array().cloned().unwrap_or_default();
        let mut st = self.state();
        let exists = |st: &State, db: &str| db == server_db::NAME || st.dbs.contains_key(db);
        Some(match method {
            // §4.1.1
            "list_dbs" => {
                let mut names: Vec<&String> = st.dbs.keys().collect();
                names.sort();
                let mut v: Vec<Value> = names.into_iter().map(|n| json!(n)).collect();
                v.push(json!(server_db::NAME));
                Ok(Value::Array(v))
            }
            // §4.1.2
            "get_schema" => {
                params::lookup_db(method, &p, |db| exists(&st, db)).map(|n| match st.dbs.get(&n) {
                    Some(e) => schema_json::to_json(&e.db.schema),
                    None => schema_json::to_json(&st.server_db.schema),
                })
            }
            // §4.1.11
            "echo" => Ok(params),
            // ovsdb-server(7) 4.1.17: this server process's UUID (its params are not read).
            "get_server_id" => Ok(json!(self.shared.server_id.to_string())),
            "set_db_change_aware" => params::db_change_aware(&p).map(|_| json!({})),
            // §4.1.5 and the monitor_cond / monitor_cond_since extensions.
            "monitor" | "monitor_cond" | "monitor_cond_since" => {
                let version = match method {
                    "monitor" => MonitorVersion::V1,
                    "monitor_cond" => MonitorVersion::V2,
                    _ => MonitorVersion::V3,
                };
                let checked = params::lookup_db(method, &p, |db| exists(&st, db)).and_then(|db| {
                    let exact = match version {
                        MonitorVersion::V1 => None,
                        MonitorVersion::V2 => Some(3),
                        MonitorVersion::V3 => Some(4),
                    };
                    params::monitor(&p, exact).map(|()| db)
                });
                let db = match checked {
                    Ok(db) => db,
                    Err(e) => return Some(Err(e)),
                };
                let (mon_id, reqs) = (&p[1], &p[2]);
                // Reply while still holding the state lock, so no update notification for
                // this monitor can overtake its initial contents.
                let r = self.monitor(&mut st, session, version, &db, mon_id, reqs, p.get(3));
                out.reply(id, r);
                return None;
            }
            "monitor_cond_change" => {
                if let Err(e) = params::monitor_cond_change(&p) {
                    return Some(Err(e));
                }
                let (old, new, reqs) = (&p[0], &p[1], &p[2]);
                let st = &mut *st;
                let outbox = out;
                for e in st.dbs.values_mut() {
                    let Some(pos) = e
                        .monitors
                        .iter()
                        .position(|m| m.session == session && m.id == *old)
                    else {
                        continue;
                    };
                    if old != new
                        && e.monitors
                            .iter()
                            .any(|m| m.session == session && m.id == *new)
                    {
                        return Some(Err(OvsdbError::syntax("duplicate monitor ID")
                            .at(new)
                            .to_json()));
                    }
                    let reg = &mut e.monitors[pos];
                    return Some(match reg.monitor.change_conditions(&e.db, reqs) {
                        Ok(update) => {
                            reg.id = new.clone();
                            if let Some(u) = update {
                                match reg.monitor.version {
                                    MonitorVersion::V3 => outbox.notify(
                                        "update3",
                                        json!([new, e.db.last_txn_id.to_string(), u]),
                                    ),
                                    _ => outbox.notify("update2", json!([new, u])),
                                }
                            }
                            Ok(json!({}))
                        }
                        Err(err) => Err(err.to_json()),
                    });
                }
                // ovsdb/jsonrpc-server.c `ovsdb_jsonrpc_monitor_cond_change`.
                Err(OvsdbError::syntax("unknown monitor session")
                    .at(old)
                    .to_json())
            }
            "monitor_cancel" => {
                let target = match params::monitor_cancel(&p) {
                    Ok(t) => t.clone(),
                    Err(e) => return Some(Err(e)),
                };
                let before = st.server_monitors.len();
                st.server_monitors
                    .retain(|(s, id)| !(*s == session && *id == target));
                let mut found = st.server_monitors.len() != before;
                for e in st.dbs.values_mut() {
                    let before = e.monitors.len();
                    e.monitors
                        .retain(|m| !(m.session == session && m.id == target));
                    found |= e.monitors.len() != before;
                }
                if found {
                    Ok(json!({}))
                } else {
                    // `ovsdb_jsonrpc_monitor_cancel`: a bare string.
                    Err(json!("unknown monitor"))
                }
            }
            // §4.1.8
            "lock" => match params::lock_name(method, &p) {
                Ok(name) => {
                    let l = st.locks.entry(name.clone()).or_default();
                    if l.owner == Some(session) || l.waiters.contains(&session) {
                        Err(syntax(format!(
                            "session already holds or waits for lock \"{name}\""
                        )))
                    } else if l.owner.is_none() {
                        l.owner = Some(session);
                        Ok(json!({"locked": true}))
                    } else {
                        l.waiters.push_back(session);
                        Ok(json!({"locked": false}))
                    }
                }
                Err(e) => Err(e),
            },
            // §4.1.9
            "steal" => match params::lock_name(method, &p) {
                Ok(name) => {
                    let l = st.locks.entry(name.clone()).or_default();
                    l.waiters.retain(|s| *s != session);
                    let previous = l.owner.replace(session);
                    if let Some(prev) = previous.filter(|p| *p != session) {
                        if let Some(o) = st.sessions.get(&prev) {
                            o.notify("stolen", json!([name]));
                        }
                    }
                    Ok(json!({"locked": true}))
                }
                Err(e) => Err(e),
            },
            // §4.1.10
            "unlock" => match params::lock_name(method, &p) {
                Ok(name) => {
                    release_lock(&mut st, &name, session);
                    Ok(json!({}))
                }
                Err(e) => Err(e),
            },
            // JSON-RPC: an unknown method is answered with the error string "unknown method".
            _ => Err(json!("unknown method")),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn monitor(
        &self,
        st: &mut State,
        session: u64,
        version: MonitorVersion,
        db: &str,
        mon_id: &Value,
        reqs: &Value,
        last_txn: Option<&Value>,
    ) -> Result<Value, Value> {
        // Monitor ids are per session, across all databases.
        let taken = st
            .server_monitors
            .iter()
            .any(|(s, id)| *s == session && id == mon_id)
            || st.dbs.values().any(|e| {
                e.monitors
                    .iter()
                    .any(|m| m.session == session && m.id == *mon_id)
            });
        if taken {
            return Err(OvsdbError::syntax("duplicate monitor ID")
                .at(mon_id)
                .to_json());
        }
        let entry = match db {
            server_db::NAME => None,
            _ => Some(
                st.dbs
                    .get_mut(db)
                    .ok_or_else(|| OvsdbError::unknown_database(db).to_json())?,
            ),
        };
        let reply = {
            let entry_db: &Database = entry.as_ref().map_or(&st.server_db, |e| &e.db);
            let monitor =
                Monitor::parse(&entry_db.schema, version, reqs).map_err(|e| e.to_json())?;
            let last_id = entry_db.last_txn_id;
            let reply = match version {
                MonitorVersion::V3 => {
                    let since = last_txn
                        .and_then(Value::as_str)
                        .and_then(|s| Uuid::parse_str(s).ok());
                    let history: Option<Vec<&Changeset>> = match (since, &entry) {
                        (Some(s), _) if s == last_id && !s.is_nil() => Some(Vec::new()),
                        (Some(s), Some(e)) if !s.is_nil() => e
                            .history
                            .iter()
                            .position(|c| c.txn_id == s)
                            .map(|i| e.history.iter().skip(i + 1).map(|c| c.as_ref()).collect()),
                        _ => None,
                    };
                    match history {
                        Some(h) => {
                            let upd = monitor
                                .update_since(&entry_db.schema, &h)
                                .unwrap_or_else(|| json!({}));
                            json!([true, last_id.to_string(), upd])
                        }
                        None => json!([false, last_id.to_string(), monitor.initial(entry_db)]),
                    }
                }
                _ => monitor.initial(entry_db),
            };
            (reply, monitor)
        };
        let (reply, monitor) = reply;
        match entry {
            Some(e) => e.monitors.push(MonitorReg {
                session,
                id: mon_id.clone(),
                monitor,
            }),
            // _Server never changes after start-up: remember the id only, for monitor_cancel.
            None => st.server_monitors.push((session, mon_id.clone())),
        }
        Ok(reply)
    }

    /// §4.1.3 transact. `None` when the transaction is blocked in a `wait`.
    fn transact(&self, session: u64, id: &Value, params: Value) -> Option<Result<Value, Value>> {
        let Value::Array(mut p) = params else {
            unreachable!("Message::from_json accepts only array params");
        };
        let mut st = self.state();
        let exists = |db: &str| db == server_db::NAME || st.dbs.contains_key(db);
        let db = match params::lookup_db("transact", &p, exists) {
            Ok(db) => db,
            Err(e) => return Some(Err(e)),
        };
        p.remove(0);
        match self.run_transaction(&mut st, session, &db, p, false) {
            Step::Done(r) => Some(r),
            Step::Blocked(p) => {
                let serial = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
                let timeout = blocked_timeout(&p);
                st.pending.push(PendingTxn {
                    serial,
                    session,
                    id: id.clone(),
                    db,
                    ops: p,
                });
                if let Some(ms) = timeout {
                    let me = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        in_place(|| me.expire_pending(serial));
                    });
                }
                None
            }
        }
    }

    fn expire_pending(&self, serial: u64) {
        let mut st = self.state();
        let Some(i) = st.pending.iter().position(|p| p.serial == serial) else {
            return;
        };
        let p = st.pending.remove(i);
        if let Step::Done(r) = self.run_transaction(&mut st, p.session, &p.db, p.ops, true) {
            if let Some(o) = st.sessions.get(&p.session) {
                o.reply(&p.id, r);
            }
        }
    }

    /// Executes, logs, applies and publishes one transaction; hands the operations back when
    /// a `wait` blocks them.
    fn run_transaction(
        &self,
        st: &mut State,
        session: u64,
        db: &str,
        ops: Vec<Value>,
        expired: bool,
    ) -> Step {
        let owned: HashSet<String> = st
            .locks
            .iter()
            .filter(|(_, l)| l.owner == Some(session))
            .map(|(n, _)| n.clone())
            .collect();
        if db == server_db::NAME {
            let ctx = Ctx {
                owned: &owned,
                durable: false,
                expired: true,
            };
            return Step::Done(Ok(match execute(&st.server_db, &ops, &ctx) {
                Outcome::Done {
                    results,
                    changes: None,
                } => results.to_json(),
                Outcome::Done {
                    mut results,
                    changes: Some(_),
                } => {
                    results
                        .push_error(OvsdbError::not_allowed("the _Server database is read-only"));
                    results.to_json()
                }
                Outcome::Blocked { .. } => unreachable!("expired waits never block"),
            }));
        }
        let Some(entry) = st.dbs.get_mut(db) else {
            return Step::Done(Err(OvsdbError::unknown_database(db).to_json()));
        };
        let ctx = Ctx {
            owned: &owned,
            durable: entry.log.is_some(),
            expired,
        };
        let started = std::time::Instant::now();
        let (mut results, changes) = match execute(&entry.db, &ops, &ctx) {
            Outcome::Blocked { .. } => return Step::Blocked(ops),
            Outcome::Done { results, changes } => (results, changes),
        };
        // The request can be large; free it before the log record and the new rows exist.
        drop(ops);
        let Some(cs) = changes else {
            return Step::Done(Ok(results.to_json()));
        };
        if cs.changes.len() >= LARGE_TRANSACTION_ROWS {
            self.shared.trim_heap.store(true, Ordering::Relaxed);
        }
        let executed = started.elapsed();
        if let Some(log) = entry.log.as_mut() {
            if let Err(e) = log.append(&entry.db.schema, &cs) {
                tracing::error!(error = %e, "cannot write database log");
                results.push_error(OvsdbError::io(e.to_string()));
                return Step::Done(Ok(results.to_json()));
            }
        }
        let logged = started.elapsed();
        entry.db.apply(&cs);
        tracing::debug!(db, rows = cs.changes.len(), ?executed, ?logged, applied = ?started.elapsed(), "transaction committed");
        if let Some(log) = entry.log.as_mut() {
            if log.wants_compaction() {
                if let Err(e) = log.compact(&entry.db) {
                    tracing::error!(error = %e, "compaction failed; the log keeps growing");
                }
            }
        }
        let schema = entry.db.schema.clone();
        for reg in &entry.monitors {
            let Some(update) = reg.monitor.update(&schema, &cs) else {
                continue;
            };
            let Some(o) = st.sessions.get(&reg.session) else {
                continue;
            };
            match reg.monitor.version {
                MonitorVersion::V1 => o.notify("update", json!([reg.id, update])),
                MonitorVersion::V2 => o.notify("update2", json!([reg.id, update])),
                MonitorVersion::V3 => {
                    o.notify("update3", json!([reg.id, cs.txn_id.to_string(), update]))
                }
            }
        }
        entry.history.push_back(Arc::new(cs));
        while entry.history.len() > self.shared.config.history_len {
            entry.history.pop_front();
        }
        self.retry_pending(st, db);
        Step::Done(Ok(results.to_json()))
    }

    /// Re-runs transactions blocked in `wait` on `db` after a commit changed it.
    fn retry_pending(&self, st: &mut State, db: &str) {
        let waiting: Vec<PendingTxn> = {
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut st.pending)
                .into_iter()
                .partition(|p| p.db == db);
            st.pending = rest;
            mine
        };
        for p in waiting {
            let PendingTxn {
                serial,
                session,
                id,
                db,
                ops,
            } = p;
            match self.run_transaction(st, session, &db, ops, false) {
                Step::Done(r) => {
                    if let Some(o) = st.sessions.get(&session) {
                        o.reply(&id, r);
                    }
                }
                Step::Blocked(ops) => st.pending.push(PendingTxn {
                    serial,
                    session,
                    id,
                    db,
                    ops,
                }),
            }
        }
    }
}

/// The longest `timeout` among a blocked transaction's wait operations (`None`: wait forever).
fn blocked_timeout(ops: &[Value]) -> Option<u64> {
    let mut max: Option<u64> = Some(0);
    for op in ops
        .iter()
        .filter(|o| o.get("op").and_then(Value::as_str) == Some("wait"))
    {
        match op.get("timeout").and_then(Value::as_u64) {
            None => return None,
            Some(t) => max = max.map(|m| m.max(t)),
        }
    }
    max
}

/// Releases `session`'s hold on (or place in line for) lock `name`, handing it to the next
/// waiter with a `locked` notification (§4.1.10).
fn release_lock(st: &mut State, name: &str, session: u64) {
    let Some(l) = st.locks.get_mut(name) else {
        return;
    };
    l.waiters.retain(|s| *s != session);
    if l.owner == Some(session) {
        l.owner = l.waiters.pop_front();
        if let Some(next) = l.owner {
            if let Some(o) = st.sessions.get(&next) {
                o.notify("locked", json!([name]));
            }
        }
    }
    if l.owner.is_none() && l.waiters.is_empty() {
        st.locks.remove(name);
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

/// Returns freed heap memory to the OS. glibc keeps the memory of a large request's parse tree
/// and log record otherwise, and the server's RSS would stay at its peak.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs blocking work (a commit's fsync) without starving other tasks of a worker thread.
fn in_place<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
