//! A replicated, in-memory view of a remote database, kept current by monitor_cond(_since).
//!
//! [`Idl::start`] spawns a task that connects to one of several remotes (round robin, with
//! exponential backoff between failed attempts), fetches the schema, and monitors the chosen
//! tables with `monitor_cond_since` (falling back to `monitor_cond` on servers that lack it).
//! Updates (`update2`/`update3`) are applied to a [`Replica`]; after a reconnect the monitor
//! resumes from the last transaction id when the server still knows it, else the replica is
//! replaced by the fresh contents. Readers take snapshots with [`Idl::read`] or typed rows with
//! [`Idl::rows`]; [`Idl::subscribe`] tells them when something changed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::connection::{Connection, Notification};
pub use super::replica::{Changes, Replica};
use super::rows::TypedRow;
use super::txn::{TransactReply, Transaction};
use super::ClientError;
use crate::schema::DatabaseSchema;
use crate::server::Remote;

/// What to monitor in one table.
#[derive(Debug, Clone)]
pub struct TableRequest {
    pub table: String,
    /// Columns to replicate; `None` for all.
    pub columns: Option<Vec<String>>,
    /// A monitor_cond condition (`[[column, function, value], ...]`); `None` for all rows.
    pub condition: Option<Value>,
}

impl TableRequest {
    /// Every column and row of `table`.
    pub fn all(table: &str) -> Self {
        TableRequest {
            table: table.to_string(),
            columns: None,
            condition: None,
        }
    }
}

/// Reconnection and liveness behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay after the first failed attempt; doubles per failure.
    pub initial: Duration,
    /// Longest delay between attempts.
    pub max: Duration,
    /// After this long without a message from the server, send an `echo`; no reply within the
    /// same time means the server is gone and the next remote is tried.
    pub inactivity_probe: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(8),
            inactivity_probe: Duration::from_secs(5),
        }
    }
}

struct Shared {
    replica: RwLock<Replica>,
    conn: Mutex<Option<Arc<Connection>>>,
    changed: watch::Sender<u64>,
    /// The lock (RFC 7047 §4.1.8) this client asks for on every connection, if any.
    lock: Option<String>,
    has_lock: AtomicBool,
    /// What to monitor; conditions change with [`Idl::set_condition`].
    tables: Mutex<Vec<TableRequest>>,
    /// Bumped on every condition change, so a session that subscribed with older conditions
    /// knows to update them.
    conditions_version: AtomicU64,
    /// Bumped when a session starts.
    session: AtomicU64,
    /// Notifications the current session has processed.
    applied: AtomicU64,
}

/// A replicated database view with its background connection task.
pub struct Idl {
    shared: Arc<Shared>,
    db: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idl {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const MONITOR_ID: &str = "switchyard-idl";

impl Idl {
    /// Starts replicating `tables` of database `db` from the first reachable of `remotes`.
    pub fn start(
        remotes: Vec<Remote>,
        db: &str,
        tables: Vec<TableRequest>,
        backoff: Backoff,
    ) -> Result<Idl, ClientError> {
        Self::spawn(remotes, db, tables, backoff, None)
    }

    /// Like [`Idl::start`], and also asks for lock `lock` on every connection, so that one of
    /// several replicas (e.g. active/standby northd-lite instances) acts; see
    /// [`Idl::has_lock`] and [`Transaction::assert_lock`].
    pub fn start_with_lock(
        remotes: Vec<Remote>,
        db: &str,
        tables: Vec<TableRequest>,
        backoff: Backoff,
        lock: &str,
    ) -> Result<Idl, ClientError> {
        Self::spawn(remotes, db, tables, backoff, Some(lock.to_string()))
    }

    fn spawn(
        remotes: Vec<Remote>,
        db: &str,
        tables: Vec<TableRequest>,
        backoff: Backoff,
        lock: Option<String>,
    ) -> Result<Idl, ClientError> {
        if remotes.is_empty() {
            return Err(ClientError::NoRemotes);
        }
        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            replica: RwLock::new(Replica::default()),
            conn: Mutex::new(None),
            changed,
            lock,
            has_lock: AtomicBool::new(false),
            tables: Mutex::new(tables),
            conditions_version: AtomicU64::new(0),
            session: AtomicU64::new(0),
            applied: AtomicU64::new(0),
        });
        let task = tokio::spawn(run(shared.clone(), remotes, db.to_string(), backoff));
        Ok(Idl {
            shared,
            db: db.to_string(),
            task,
        })
    }

    /// Replaces the condition of a monitored table (`monitor_cond_change`; `None` selects every
    /// row). The server then sends the rows that start matching and removes those that stop;
    /// the condition also applies after reconnects. A condition is a disjunction: a row is
    /// replicated if it matches any clause. When this returns, the replica holds the rows the
    /// new condition selects (the server sends them before its reply, and this waits until
    /// they are applied), or the session ended and the next one subscribes with it.
    pub async fn set_condition(
        &self,
        table: &str,
        condition: Option<Value>,
    ) -> Result<(), ClientError> {
        let request = {
            let mut tables = self.shared.tables.lock().unwrap_or_else(|p| p.into_inner());
            let t = tables
                .iter_mut()
                .find(|t| t.table == table)
                .ok_or_else(|| ClientError::Protocol(format!("table {table} is not monitored")))?;
            t.condition = condition;
            self.shared
                .conditions_version
                .fetch_add(1, Ordering::AcqRel);
            condition_change(t)
        };
        let conn = self
            .shared
            .conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match conn {
            Some(conn) => {
                let mut changed = self.subscribe();
                let session = self.shared.session.load(Ordering::Acquire);
                let (_, before) = conn
                    .call_counted(
                        "monitor_cond_change",
                        json!([MONITOR_ID, MONITOR_ID, {table: request}]),
                    )
                    .await?;
                self.wait_applied(&mut changed, session, before).await;
                Ok(())
            }
            // Not connected: the next session subscribes with the new condition.
            None => Ok(()),
        }
    }

    /// Starts recording which rows change (see [`Idl::take_changes`]); the first call to
    /// `take_changes` reports a resync.
    pub fn track_changes(&self) {
        let mut rep = self
            .shared
            .replica
            .write()
            .unwrap_or_else(|p| p.into_inner());
        rep.changes = Some(Changes {
            resync: true,
            ..Changes::default()
        });
    }

    /// The rows changed since the last call (empty unless [`Idl::track_changes`] was called).
    pub fn take_changes(&self) -> Changes {
        let mut rep = self
            .shared
            .replica
            .write()
            .unwrap_or_else(|p| p.into_inner());
        match rep.changes.as_mut() {
            Some(c) => std::mem::take(c),
            None => Changes::default(),
        }
    }

    /// Whether this client currently owns its lock (always false without one).
    pub fn has_lock(&self) -> bool {
        self.shared.has_lock.load(Ordering::Acquire)
    }

    /// Reads the replica.
    pub fn read<R>(&self, f: impl FnOnce(&Replica) -> R) -> R {
        f(&self
            .shared
            .replica
            .read()
            .unwrap_or_else(|p| p.into_inner()))
    }

    /// Typed rows of `T::TABLE`.
    pub fn rows<T: TypedRow>(&self) -> Vec<T> {
        self.read(|r| r.rows::<T>())
    }

    /// A read lock on the replica, for callers that read it alongside another one. Updates
    /// wait while it is held: drop it before awaiting.
    pub fn read_guard(&self) -> std::sync::RwLockReadGuard<'_, Replica> {
        self.shared
            .replica
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver whose value increases on every applied update (and on each resync).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// Waits until `pred` holds for the replica, or `timeout` passes.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Replica) -> bool,
    ) -> Result<(), ClientError> {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.read(&mut pred) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(ClientError::Timeout),
            }
        }
    }

    /// Whether a connection is up and the replica synchronized.
    pub fn is_connected(&self) -> bool {
        self.shared
            .conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Commits a transaction on the current connection. When this returns, the replica holds
    /// the transaction's own changes to monitored rows, on servers that send a transaction's
    /// updates before its reply (ours and a standalone `ovsdb-server` do): a caller that reads
    /// the replica next sees what it wrote, and does not, for example, insert the same row
    /// twice. (A clustered server may reply first; callers that must not repeat an insert
    /// also wait for the row, see [`Idl::wait_until`].)
    pub async fn transact(&self, txn: &Transaction) -> Result<TransactReply, ClientError> {
        if txn.db() != self.db {
            return Err(ClientError::Protocol(format!(
                "transaction for {} sent to the {} replica",
                txn.db(),
                self.db
            )));
        }
        let conn = self
            .shared
            .conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(ClientError::NotConnected)?;
        let mut changed = self.subscribe();
        let session = self.shared.session.load(Ordering::Acquire);
        let (result, before) = conn.call_counted("transact", txn.params()).await?;
        self.wait_applied(&mut changed, session, before).await;
        txn.reply(result)
    }

    /// Waits until the session `session` has applied `count` notifications (or has ended).
    async fn wait_applied(&self, changed: &mut watch::Receiver<u64>, session: u64, count: u64) {
        while self.shared.session.load(Ordering::Acquire) == session
            && self.shared.applied.load(Ordering::Acquire) < count
        {
            if changed.changed().await.is_err() {
                break;
            }
        }
    }
}

/// A `monitor_cond_change` request for one table: its current condition (all rows if none).
fn condition_change(t: &TableRequest) -> Value {
    json!([{"where": t.condition.clone().unwrap_or_else(|| json!([true]))}])
}

fn monitor_requests(schema: &DatabaseSchema, tables: &[TableRequest]) -> Value {
    let mut m = Map::new();
    for t in tables {
        if schema.table(&t.table).is_none() {
            tracing::warn!(table = %t.table, db = %schema.name, "server schema lacks table; not monitoring it");
            continue;
        }
        let mut req = Map::new();
        if let Some(cols) = &t.columns {
            let ts = &schema.tables[schema.table(&t.table).expect("checked")];
            let present: Vec<&String> = cols.iter().filter(|c| ts.column(c).is_some()).collect();
            req.insert("columns".into(), json!(present));
        }
        if let Some(w) = &t.condition {
            req.insert("where".into(), w.clone());
        }
        m.insert(t.table.clone(), json!([Value::Object(req)]));
    }
    Value::Object(m)
}

async fn run(shared: Arc<Shared>, remotes: Vec<Remote>, db: String, backoff: Backoff) {
    let mut delay = backoff.initial;
    let mut next = 0usize;
    loop {
        let remote = &remotes[next % remotes.len()];
        next += 1;
        match session(&shared, remote, &db, backoff.inactivity_probe).await {
            Ok(()) => delay = backoff.initial,
            Err(e) => tracing::info!(%remote, error = %e, "OVSDB session ended"),
        }
        *shared.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if shared.has_lock.swap(false, Ordering::AcqRel) {
            shared.changed.send_modify(|n| *n += 1);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(backoff.max);
    }
}

/// One connected session: sync, then apply updates until the connection drops (`Ok`, and the
/// backoff restarts) or fails (connection, protocol or liveness errors).
async fn session(
    shared: &Shared,
    remote: &Remote,
    db: &str,
    probe: Duration,
) -> Result<(), ClientError> {
    let (conn, mut notes): (Connection, mpsc::UnboundedReceiver<Notification>) =
        tokio::time::timeout(probe, Connection::connect(remote, 1 << 30))
            .await
            .map_err(|_| ClientError::Timeout)??;
    shared.applied.store(0, Ordering::Release);
    shared.session.fetch_add(1, Ordering::AcqRel);
    let schema_json = conn.call("get_schema", json!([db])).await?;
    let schema = Arc::new(
        DatabaseSchema::from_json(&schema_json)
            .map_err(|e| ClientError::Protocol(format!("bad schema from server: {e}")))?,
    );
    let version = shared.conditions_version.load(Ordering::Acquire);
    let tables = shared
        .tables
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let requests = monitor_requests(&schema, &tables);
    let last = shared
        .replica
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .last_txn_id
        .unwrap_or_default();
    let (found, txn_id, updates) = match conn
        .call(
            "monitor_cond_since",
            json!([db, MONITOR_ID, requests, last.to_string()]),
        )
        .await
    {
        Ok(r) => (
            r[0].as_bool().unwrap_or(false),
            r[1].as_str().and_then(|s| Uuid::parse_str(s).ok()),
            r.get(2).cloned().unwrap_or_else(|| json!({})),
        ),
        Err(ClientError::Rpc { .. }) => (
            false,
            None,
            conn.call("monitor_cond", json!([db, MONITOR_ID, requests]))
                .await?,
        ),
        Err(e) => return Err(e),
    };
    {
        let mut rep = shared.replica.write().unwrap_or_else(|p| p.into_inner());
        let schema_changed = rep.schema.as_ref().is_none_or(|s| s.json != schema.json);
        if !found || schema_changed {
            rep.tables.clear();
            if let Some(c) = rep.changes.as_mut() {
                c.resync = true;
            }
        }
        rep.schema = Some(schema);
        rep.last_txn_id = None;
        rep.apply(&updates)?;
        rep.last_txn_id = txn_id;
    }
    let conn = Arc::new(conn);
    *shared.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
    // Only now: a reader woken by this sees the replica and is_connected() agree.
    shared.changed.send_modify(|n| *n += 1);
    tracing::info!(%remote, db, "OVSDB replica synchronized");
    if shared.conditions_version.load(Ordering::Acquire) != version {
        // Conditions changed while subscribing: bring the server up to date.
        let tables = shared
            .tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let changes: Map<String, Value> = tables
            .iter()
            .map(|t| (t.table.clone(), condition_change(t)))
            .collect();
        conn.call(
            "monitor_cond_change",
            json!([MONITOR_ID, MONITOR_ID, changes]),
        )
        .await?;
    }
    if let Some(name) = &shared.lock {
        let r = conn.call("lock", json!([name])).await?;
        if r["locked"] == json!(true) {
            shared.has_lock.store(true, Ordering::Release);
            shared.changed.send_modify(|n| *n += 1);
        }
    }
    loop {
        let n = match tokio::time::timeout(probe, notes.recv()).await {
            Ok(Some(n)) => n,
            Ok(None) => break,
            // Quiet for a whole interval: make sure the server is still there.
            Err(_) => match tokio::time::timeout(probe, conn.call("echo", json!([]))).await {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(ClientError::Timeout),
            },
        };
        apply_notification(shared, &n)?;
        shared.applied.fetch_add(1, Ordering::AcqRel);
        shared.changed.send_modify(|n| *n += 1);
    }
    Ok(())
}

/// Applies one notification of a synchronized session: lock grants and thefts, and updates.
fn apply_notification(shared: &Shared, n: &Notification) -> Result<(), ClientError> {
    // §4.1.8-9: the server grants a queued lock with "locked" and takes it with "stolen".
    if matches!(n.method.as_str(), "locked" | "stolen")
        && shared
            .lock
            .as_deref()
            .is_some_and(|l| n.params[0] == json!(l))
    {
        shared
            .has_lock
            .store(n.method == "locked", Ordering::Release);
        return Ok(());
    }
    let (updates, txn_id) = match n.method.as_str() {
        "update2" => (n.params.get(1), None),
        "update3" => (
            n.params.get(2),
            n.params
                .get(1)
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok()),
        ),
        _ => return Ok(()),
    };
    let Some(updates) = updates else {
        return Ok(());
    };
    let mut rep = shared.replica.write().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = rep.apply(updates) {
        // The replica may be half-updated: resynchronize from scratch next time.
        rep.last_txn_id = None;
        return Err(e);
    }
    if txn_id.is_some() {
        rep.last_txn_id = txn_id;
    }
    Ok(())
}
