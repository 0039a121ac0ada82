//! The checks ovsdb-server makes on a request's `params` before it looks at anything else
//! (ovsdb/jsonrpc-server.c), with its texts, so that a client that gets a request wrong gets
//! the answer ovsdb-server would give. That `params` is an array at all is checked when the
//! message is parsed ([`crate::jsonrpc::Message::from_json`]).

use serde_json::{json, Value};

use crate::error::OvsdbError;
use crate::parser::is_id;

fn syntax_at(params: &Value, details: String) -> Value {
    OvsdbError::syntax(details).at(params).to_json()
}

/// `ovsdb_jsonrpc_lookup_db`: the first parameter names a database that `exists`.
pub fn lookup_db(
    method: &str,
    params: &[Value],
    exists: impl Fn(&str) -> bool,
) -> Result<String, Value> {
    let whole = Value::Array(params.to_vec());
    match params.first() {
        Some(Value::String(db)) if exists(db) => Ok(db.clone()),
        Some(Value::String(db)) => Err(OvsdbError {
            tag: "unknown database",
            details: format!("{method} request specifies unknown database {db}"),
            syntax: None,
        }
        .at(&whole)
        .to_json()),
        _ => Err(syntax_at(
            &whole,
            format!("{method} request params must begin with <db-name>"),
        )),
    }
}

/// `ovsdb_jsonrpc_session_parse_lock_name`: exactly one identifier.
pub fn lock_name(method: &str, params: &[Value]) -> Result<String, Value> {
    match params {
        [Value::String(name)] if is_id(name) => Ok(name.clone()),
        _ => Err(syntax_at(
            &Value::Array(params.to_vec()),
            format!("{method} request params must be <id>"),
        )),
    }
}

/// `ovsdb_jsonrpc_monitor_create`: `[db, id, requests]` (`exact` 3 for `monitor_cond`, 4
/// with the last transaction id for `monitor_cond_since`). ovsdb-server 3.1 does not count
/// them for `monitor` (`exact` `None`) and reads past the end of a shorter array; we answer
/// "invalid parameters" there too.
pub fn monitor(params: &[Value], exact: Option<usize>) -> Result<(), Value> {
    let ok = match exact {
        Some(n) => params.len() == n,
        None => params.len() >= 3,
    };
    if !ok {
        return Err(syntax_at(
            &Value::Array(params.to_vec()),
            "invalid parameters".into(),
        ));
    }
    if !params[2].is_object() {
        return Err(syntax_at(
            &params[2],
            "monitor-requests must be object".into(),
        ));
    }
    Ok(())
}

/// `ovsdb_jsonrpc_monitor_cond_change`: `[old-id, new-id, requests]`.
pub fn monitor_cond_change(params: &[Value]) -> Result<(), Value> {
    match params.len() {
        3 => Ok(()),
        _ => Err(syntax_at(
            &Value::Array(params.to_vec()),
            "invalid parameters".into(),
        )),
    }
}

/// `ovsdb_jsonrpc_monitor_cancel`: one monitor id; the error is a bare string.
pub fn monitor_cancel(params: &[Value]) -> Result<&Value, Value> {
    match params {
        [id] => Ok(id),
        _ => Err(json!("invalid parameters")),
    }
}

/// `ovsdb_jsonrpc_session_set_db_change_aware`: one boolean.
pub fn db_change_aware(params: &[Value]) -> Result<bool, Value> {
    match params {
        [Value::Bool(b)] => Ok(*b),
        _ => Err(syntax_at(
            &Value::Array(params.to_vec()),
            "set_db_change_aware: true or false parameter expected".into(),
        )),
    }
}
