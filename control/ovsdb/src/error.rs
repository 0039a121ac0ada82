//! RFC 7047 error objects.
//!
//! Every failure that reaches a client is an `OvsdbError`: the `"error"` string is one of the
//! tags the RFC (§3.1, §4.1.3, §5.2) or ovsdb-server use, `details` is free text a human can act
//! on. Schema parsing, datum parsing, transactions and the JSON-RPC layer all return it, so the
//! server can put it on the wire unchanged with [`OvsdbError::to_json`].

use serde_json::{json, Value};

use crate::datum::format_g15;

/// An RFC 7047 error object: `{"error": <tag>, "details": <text>}`, plus ovsdb-server's
/// `"syntax"` extension (lib/ovsdb-error.c): the offending JSON, compact with sorted keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tag}: {details}")]
pub struct OvsdbError {
    /// The machine-readable tag, e.g. `"constraint violation"`.
    pub tag: &'static str,
    /// Human-readable context.
    pub details: String,
    /// The JSON text a syntax error is about, as ovsdb-server reports it.
    pub syntax: Option<String>,
}

/// Result alias used throughout the OVSDB core.
pub type Result<T, E = OvsdbError> = std::result::Result<T, E>;

macro_rules! ctor {
    ($(#[$m:meta])* $name:ident, $tag:expr) => {
        $(#[$m])*
        pub fn $name(details: impl Into<String>) -> Self {
            Self { tag: $tag, details: details.into(), syntax: None }
        }
    };
}

impl OvsdbError {
    ctor!(
        /// Malformed request or schema (ovsdb-server's "syntax error").
        syntax,
        "syntax error"
    );
    ctor!(
        /// §5.2: a value violates a column's constraints, or an index is duplicated.
        constraint,
        "constraint violation"
    );
    ctor!(
        /// §5.2: a strong reference points at no row, or a referenced row was deleted.
        referential_integrity,
        "referential integrity violation"
    );
    ctor!(
        /// §5.2: the server ran out of a resource (memory, message size).
        resources_exhausted,
        "resources exhausted"
    );
    ctor!(
        /// §5.2: the log could not be written.
        io,
        "I/O error"
    );
    ctor!(
        /// §5.2.1: two inserts in one transaction used the same `uuid-name`.
        duplicate_uuid_name,
        "duplicate uuid-name"
    );
    ctor!(
        /// §5.1 mutation: division by zero.
        domain,
        "domain error"
    );
    ctor!(
        /// §5.1 mutation: integer overflow.
        range,
        "range error"
    );
    ctor!(
        /// §5.2.6: a `wait` operation's condition did not become true in time.
        timed_out,
        "timed out"
    );
    ctor!(
        /// §5.2.7: a `commit` asked for durability the database cannot give.
        not_supported,
        "not supported"
    );
    ctor!(
        /// §5.2.8: an `abort` operation.
        aborted,
        "aborted"
    );
    ctor!(
        /// §5.2.10: an `assert` on a lock the session does not own.
        not_owner,
        "not owner"
    );
    ctor!(
        /// A database name that the server does not serve.
        unknown_database,
        "unknown database"
    );
    ctor!(
        /// A column name that the table does not have.
        unknown_column,
        "unknown column"
    );
    ctor!(
        /// A table name that the schema does not have.
        unknown_table,
        "unknown table"
    );
    ctor!(
        /// A write to a read-only database such as `_Server`.
        not_allowed,
        "not allowed"
    );

    /// The error ovsdb-server raises without a tag (`ovsdb_error(NULL, ...)`).
    pub fn untagged(details: impl Into<String>) -> Self {
        Self {
            tag: "ovsdb error",
            details: details.into(),
            syntax: None,
        }
    }

    /// Names the JSON the error is about (ovsdb-server's `ovsdb_syntax_error(json, ...)`).
    pub fn at(mut self, json: &Value) -> Self {
        self.syntax = Some(ovs_json_string(json));
        self
    }

    /// The RFC 7047 wire form of this error.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"error": self.tag, "details": self.details});
        if let Some(s) = &self.syntax {
            v["syntax"] = json!(s);
        }
        v
    }
}

/// JSON text as lib/json.c `json_to_string(json, JSSF_SORT)` writes it.
pub fn ovs_json_string(v: &Value) -> String {
    let mut s = String::new();
    write_ovs_json(v, &mut s);
    s
}

/// Writes JSON text as lib/json.c `json_to_string(json, JSSF_SORT)` writes it: compact, object
/// keys sorted (serde_json's map is ordered by key), reals with `%.15g` (`0`, not `0.0`).
fn write_ovs_json(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) if n.is_f64() => out.push_str(&format_g15(n.as_f64().unwrap_or(0.0))),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_ovs_json(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                write_ovs_json(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_text_is_lib_json_s() {
        let e = OvsdbError::syntax("x").at(&json!({"r": 0.0, "b": [1, 2.5, 1e10], "a": "\n"}));
        assert_eq!(
            e.syntax.as_deref(),
            Some(r#"{"a":"\n","b":[1,2.5,10000000000],"r":0}"#)
        );
    }
}
