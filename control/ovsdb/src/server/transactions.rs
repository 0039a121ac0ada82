//! RFC 7047 §4.1.3 `transact` on the server: executing a transaction against the committed
//! database, logging it (fsync before the reply when the database is durable), applying it,
//! publishing it to monitors and keeping it in the `monitor_cond_since` history. A transaction
//! blocked in a `wait` operation (§5.2.6) is parked here and retried after each commit to its
//! database, or answered when its timeout expires, or dropped by `cancel` (§4.1.4).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::monitors::publish;
use super::{params, server_db, OvsdbServer, State};
use crate::error::OvsdbError;
use crate::transaction::{execute, Outcome, TxnContext};

pub(super) struct PendingTxn {
    serial: u64,
    pub(super) session: u64,
    pub(super) id: Value,
    db: String,
    ops: Vec<Value>,
}

/// A transaction touching this many rows triggers a heap trim afterwards.
const LARGE_TRANSACTION_ROWS: usize = 10_000;

/// What became of a transaction.
enum Step {
    Done(Result<Value, Value>),
    /// Blocked in a `wait`; the operations are kept for a retry.
    Blocked(Vec<Value>),
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

impl OvsdbServer {
    /// §4.1.3 transact. `None` when the transaction is blocked in a `wait`.
    pub(super) fn transact(
        &self,
        session: u64,
        id: &Value,
        params: Value,
    ) -> Option<Result<Value, Value>> {
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
        publish(&entry.monitors, &st.sessions, &entry.db.schema, &cs);
        entry
            .history
            .push(&entry.db, Arc::new(cs), self.shared.config.history_len);
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

/// Returns freed heap memory to the OS. glibc keeps the memory of a large request's parse tree
/// and log record otherwise, and the server's RSS would stay at its peak.
pub(super) fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs blocking work (a commit's fsync) without starving other tasks of a worker thread.
pub(super) fn in_place<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
