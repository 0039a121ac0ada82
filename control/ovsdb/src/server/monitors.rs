//! Monitors (RFC 7047 §4.1.5-7 and ovsdb-server(7)'s `monitor_cond`, `monitor_cond_change`,
//! `monitor_cond_since`): registering a monitor with its initial contents (or, for
//! `monitor_cond_since`, only what the client missed, from the server's transaction history),
//! changing its conditions, cancelling it, and publishing a committed changeset to every
//! monitor of its database as `update`/`update2`/`update3`. What a monitor selects and how an
//! update is encoded is [`crate::monitor`]'s; this module owns the server's registry of them.

use std::collections::HashMap;

use serde_json::{json, Value};
use uuid::Uuid;

use super::session::Outbox;
use super::{exists, params, server_db, OvsdbServer, State};
use crate::database::{Changeset, Database};
use crate::error::OvsdbError;
use crate::monitor::{Monitor, MonitorVersion};
use crate::schema::DatabaseSchema;

pub(super) struct MonitorReg {
    pub(super) session: u64,
    pub(super) id: Value,
    pub(super) monitor: Monitor,
}

impl OvsdbServer {
    /// `monitor`, `monitor_cond` and `monitor_cond_since`: checks the params, registers the
    /// monitor and returns its reply. The caller replies while still holding the state lock, so
    /// no update notification for this monitor can overtake its initial contents.
    pub(super) fn monitor_request(
        &self,
        st: &mut State,
        session: u64,
        method: &str,
        p: &[Value],
    ) -> Result<Value, Value> {
        let version = match method {
            "monitor" => MonitorVersion::V1,
            "monitor_cond" => MonitorVersion::V2,
            _ => MonitorVersion::V3,
        };
        let checked = params::lookup_db(method, p, |db| exists(st, db)).and_then(|db| {
            let exact = match version {
                MonitorVersion::V1 => None,
                MonitorVersion::V2 => Some(3),
                MonitorVersion::V3 => Some(4),
            };
            params::monitor(p, exact).map(|()| db)
        });
        let db = checked?;
        let (mon_id, reqs) = (&p[1], &p[2]);
        self.monitor(st, session, version, &db, mon_id, reqs, p.get(3))
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
                        (Some(s), Some(e)) if !s.is_nil() => e.history.since(s),
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
}

/// `monitor_cond_change`: new conditions for a monitor, and the rows that enter or leave it.
pub(super) fn monitor_cond_change(
    st: &mut State,
    session: u64,
    outbox: &Outbox,
    p: &[Value],
) -> Result<Value, Value> {
    params::monitor_cond_change(p)?;
    let (old, new, reqs) = (&p[0], &p[1], &p[2]);
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
            return Err(OvsdbError::syntax("duplicate monitor ID").at(new).to_json());
        }
        let reg = &mut e.monitors[pos];
        return match reg.monitor.change_conditions(&e.db, reqs) {
            Ok(update) => {
                reg.id = new.clone();
                if let Some(u) = update {
                    match reg.monitor.version {
                        MonitorVersion::V3 => {
                            outbox.notify("update3", json!([new, e.db.last_txn_id.to_string(), u]))
                        }
                        _ => outbox.notify("update2", json!([new, u])),
                    }
                }
                Ok(json!({}))
            }
            Err(err) => Err(err.to_json()),
        };
    }
    // ovsdb/jsonrpc-server.c `ovsdb_jsonrpc_monitor_cond_change`.
    Err(OvsdbError::syntax("unknown monitor session")
        .at(old)
        .to_json())
}

/// `monitor_cancel`, on any database including `_Server`.
pub(super) fn monitor_cancel(st: &mut State, session: u64, p: &[Value]) -> Result<Value, Value> {
    let target = params::monitor_cancel(p)?.clone();
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

/// Sends a committed changeset to every monitor of its database that selects part of it.
pub(super) fn publish(
    monitors: &[MonitorReg],
    sessions: &HashMap<u64, Outbox>,
    schema: &DatabaseSchema,
    cs: &Changeset,
) {
    for reg in monitors {
        let Some(update) = reg.monitor.update(schema, cs) else {
            continue;
        };
        let Some(o) = sessions.get(&reg.session) else {
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
}
