//! RFC 7047 §4.1.8-10 locks: `lock`, `steal` and `unlock`, and the hand-over to the next
//! waiter with a `locked` notification when a holder lets go or its session ends. A lock is
//! only a name with an owner and a queue; transactions check ownership through their `assert`
//! operations ([`crate::transaction::TxnContext::owns_lock`]), so this module is all the server
//! knows about locks.

use std::collections::VecDeque;

use serde_json::{json, Value};

use super::{params, syntax, State};

#[derive(Default)]
pub(super) struct LockState {
    pub(super) owner: Option<u64>,
    waiters: VecDeque<u64>,
}

/// §4.1.8 `lock`: take the lock if it is free, else queue for it.
pub(super) fn lock(st: &mut State, session: u64, p: &[Value]) -> Result<Value, Value> {
    let name = params::lock_name("lock", p)?;
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

/// §4.1.9 `steal`: take the lock now; the previous owner gets a `stolen` notification.
pub(super) fn steal(st: &mut State, session: u64, p: &[Value]) -> Result<Value, Value> {
    let name = params::lock_name("steal", p)?;
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

/// §4.1.10 `unlock`.
pub(super) fn unlock(st: &mut State, session: u64, p: &[Value]) -> Result<Value, Value> {
    let name = params::lock_name("unlock", p)?;
    release_lock(st, &name, session);
    Ok(json!({}))
}

/// Releases `session`'s hold on (or place in line for) lock `name`, handing it to the next
/// waiter with a `locked` notification (§4.1.10).
pub(super) fn release_lock(st: &mut State, name: &str, session: u64) {
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
