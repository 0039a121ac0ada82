//! The OVSDB server: RFC 7047 JSON-RPC sessions over TCP and unix sockets.
//!
//! One [`OvsdbServer`] serves several databases plus the read-only `_Server` database that
//! clients use for discovery. Each connection is a session task that splits the byte stream
//! into messages ([`crate::jsonrpc::Splitter`]) and dispatches them under one state lock, so a
//! transaction's commit, its log append and the monitor updates it causes are ordered the same
//! for every client. Replies and notifications go through a per-session outbox with a byte
//! budget: a client that stops reading is disconnected instead of blocking others or growing
//! memory. Locks (§4.1.8-10), blocked `wait` operations and `cancel` (§4.1.4) live here too.
//!
//! The code is cut by concern: `listener` binds and accepts, `session` runs a connection,
//! `transactions` commits, `monitors` keeps the registry of monitors and publishes to them,
//! `history` keeps the transactions `monitor_cond_since` resumes from (trimmed as a
//! clustered ovsdb-server trims them), `locks` implements §4.1.8-10, `params` checks requests
//! as ovsdb-server does, and `server_db` is the `_Server` database. This module holds the shared state they work on and
//! the dispatch of methods to them.

mod history;
mod listener;
mod locks;
mod monitors;
mod params;
mod remote;
mod server_db;
mod session;
mod transactions;
mod unix_socket;

pub use listener::Listener;
pub use remote::Remote;
pub use unix_socket::{bind_unix_socket, SocketFile, UnixBindError};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::database::Database;
use crate::error::OvsdbError;
use crate::schema_json;
use crate::storage::Log;
use history::History;
use locks::LockState;
use monitors::MonitorReg;
use session::Outbox;
use transactions::PendingTxn;

/// Limits that protect the server from clients.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Largest JSON-RPC message accepted; larger ones close the connection.
    pub max_message_bytes: usize,
    /// Largest amount of unsent output per session before the session is dropped.
    pub max_queued_bytes: usize,
    /// Most committed transactions kept for `monitor_cond_since` resumption (ovsdb-server
    /// keeps 100, and never more atoms than the database holds: see `history`).
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
            history_len: 100,
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

struct DbEntry {
    db: Database,
    log: Option<Log>,
    monitors: Vec<MonitorReg>,
    history: History,
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

/// An OVSDB server; clone handles freely.
#[derive(Clone)]
pub struct OvsdbServer {
    shared: Arc<Shared>,
}

fn syntax(details: impl Into<String>) -> Value {
    OvsdbError::syntax(details).to_json()
}

/// Whether `db` is served (`_Server` always is).
fn exists(st: &State, db: &str) -> bool {
    db == server_db::NAME || st.dbs.contains_key(db)
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
        let mut db = db;
        if db.last_txn_id.is_nil() {
            // A fresh database still has a last transaction id, as a clustered
            // ovsdb-server's has (its creation): `monitor_cond_since` never answers the
            // all-zero id, which a client sends to mean "I have nothing".
            db.last_txn_id = crate::uuidgen::new_uuid();
        }
        let history = History::new(&db);
        st.dbs.insert(
            name,
            DbEntry {
                db,
                log,
                monitors: Vec::new(),
                history,
            },
        );
        Ok(())
    }

    /// Runs `f` on a database (tests and tools inspect state this way).
    pub fn with_database<R>(&self, name: &str, f: impl FnOnce(&Database) -> R) -> Option<R> {
        let st = self.state();
        st.dbs.get(name).map(|e| f(&e.db))
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
            "monitor" | "monitor_cond" | "monitor_cond_since" => {
                // Reply while still holding the state lock, so no update notification for
                // this monitor can overtake its initial contents.
                let r = self.monitor_request(&mut st, session, method, &p);
                out.reply(id, r);
                return None;
            }
            "monitor_cond_change" => monitors::monitor_cond_change(&mut st, session, out, &p),
            "monitor_cancel" => monitors::monitor_cancel(&mut st, session, &p),
            // §4.1.8
            "lock" => locks::lock(&mut st, session, &p),
            // §4.1.9
            "steal" => locks::steal(&mut st, session, &p),
            // §4.1.10
            "unlock" => locks::unlock(&mut st, session, &p),
            // §4.1.11
            "echo" => Ok(params),
            // ovsdb-server(7) 4.1.17: this server process's UUID (its params are not read).
            "get_server_id" => Ok(json!(self.shared.server_id.to_string())),
            "set_db_change_aware" => params::db_change_aware(&p).map(|_| json!({})),
            // JSON-RPC: an unknown method is answered with the error string "unknown method".
            _ => Err(json!("unknown method")),
        })
    }
}
