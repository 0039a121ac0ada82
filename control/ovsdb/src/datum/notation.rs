//! The text forms ovsdb-server gives OVSDB values, kept apart so that every writer of JSON and
//! of messages (atoms, datums, errors) produces exactly lib/json.c's and lib/ovsdb-data.c's
//! spelling: reals as `%.15g`, JSON type names, the `["uuid", ..]`-style wrappers, and when a
//! string atom is quoted. Differential tests against ovsdb-server compare these texts.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{OvsdbError, Result};

/// A real as ovsdb-server sends it: lib/json.c prints reals with `%.15g` (DBL_DIG
/// significant digits), so an integral value goes out without a fraction (`3`, not `3.0`)
/// and 0.1 + 0.2 as `0.3`. RFC 7047 §5.1 only asks for a JSON number; clients that compare
/// text (and our differential tests) see the same as from ovsdb-server.
pub(super) fn real_to_json(r: f64) -> Value {
    serde_json::from_str(&format_g15(r)).unwrap_or_else(|_| json!(r))
}

/// C's `printf("%.15g", x)`, which ovsdb-server uses for reals on the wire and in messages.
pub fn format_g15(x: f64) -> String {
    const PRECISION: i32 = 15;
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, x);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..PRECISION).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        trim(&format!("{:.*}", (PRECISION - 1 - exp) as usize, x))
    }
}

/// The name lib/json.c gives a JSON value's type in messages.
pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(false) => "false",
        Value::Bool(true) => "true",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Number(_) => "number",
        Value::String(_) => "string",
    }
}

/// `[<name>, <value>]` with a value of the named JSON type (lib/ovsdb-data.c `unwrap_json`).
pub(super) fn unwrap_json<'a>(v: &'a Value, name: &str, value_type: &str) -> Result<&'a Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([Value::String(n), inner]) if n == name && json_type(inner) == value_type => Ok(inner),
        _ => Err(OvsdbError::syntax(format!("expected [\"{name}\", <{value_type}>]")).at(v)),
    }
}

/// Whether ovsdb-server quotes a string atom in messages (lib/ovsdb-data.c).
pub(super) fn string_needs_quotes(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return true,
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return true;
    }
    s == "true" || s == "false" || Uuid::parse_str(s).is_ok()
}
