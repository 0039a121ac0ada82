//! Building `transact` requests (RFC 7047 §5.2) without hand-writing JSON.
//!
//! A [`Transaction`] collects operations for one database. `insert` returns a [`RowId`] that
//! later operations in the same transaction can reference (it becomes `["named-uuid", ..]`);
//! [`TransactReply::uuid`] resolves it to the real UUID after commit. Values are written with
//! the [`Value`]-producing helpers [`uuid()`], [`set()`] and [`map()`], or any RFC 7047 JSON.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

/// A row named inside a transaction: an inserted row (named uuid) or an existing one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RowId {
    Named(String),
    Existing(Uuid),
}

impl RowId {
    /// RFC 7047 §5.1 JSON for the reference.
    pub fn to_json(&self) -> Value {
        match self {
            RowId::Named(n) => json!(["named-uuid", n]),
            RowId::Existing(u) => uuid(*u),
        }
    }
}

/// `["uuid", "..."]`.
pub fn uuid(u: Uuid) -> Value {
    json!(["uuid", u.to_string()])
}

/// `["set", [...]]` from anything that converts to JSON values.
pub fn set<T: Into<Value>>(items: impl IntoIterator<Item = T>) -> Value {
    json!([
        "set",
        items.into_iter().map(Into::into).collect::<Vec<Value>>()
    ])
}

/// `["set", [refs...]]` of row references.
pub fn refs<'a>(rows: impl IntoIterator<Item = &'a RowId>) -> Value {
    json!([
        "set",
        rows.into_iter().map(RowId::to_json).collect::<Vec<Value>>()
    ])
}

/// `["map", [[k, v], ...]]`.
pub fn map<K: Into<Value>, V: Into<Value>>(pairs: impl IntoIterator<Item = (K, V)>) -> Value {
    json!([
        "map",
        pairs
            .into_iter()
            .map(|(k, v)| json!([k.into(), v.into()]))
            .collect::<Vec<Value>>()
    ])
}

/// A `where` clause `[column, function, value]`.
pub fn clause(column: &str, function: &str, value: Value) -> Value {
    json!([column, function, value])
}

/// The condition selecting one row by uuid.
pub fn by_uuid(u: Uuid) -> Vec<Value> {
    vec![clause("_uuid", "==", uuid(u))]
}

/// A transaction under construction.
#[derive(Debug, Clone)]
pub struct Transaction {
    db: String,
    ops: Vec<Value>,
    inserts: Vec<(usize, String)>,
    next_name: usize,
}

impl Transaction {
    pub fn new(db: &str) -> Self {
        Transaction {
            db: db.to_string(),
            ops: Vec::new(),
            inserts: Vec::new(),
            next_name: 0,
        }
    }

    /// §5.2.1 insert; `row` is `[(column, value)]`.
    pub fn insert(
        &mut self,
        table: &str,
        row: impl IntoIterator<Item = (&'static str, Value)>,
    ) -> RowId {
        let name = format!("row{}", self.next_name);
        self.next_name += 1;
        self.inserts.push((self.ops.len(), name.clone()));
        self.ops.push(
            json!({"op": "insert", "table": table, "uuid-name": name, "row": row_object(row)}),
        );
        RowId::Named(name)
    }

    /// §5.2.3 update of the rows matching `where_`.
    pub fn update(
        &mut self,
        table: &str,
        where_: Vec<Value>,
        row: impl IntoIterator<Item = (&'static str, Value)>,
    ) -> &mut Self {
        self.ops
            .push(json!({"op": "update", "table": table, "where": where_, "row": row_object(row)}));
        self
    }

    /// §5.2.4 mutate; each mutation is `(column, mutator, value)`.
    pub fn mutate(
        &mut self,
        table: &str,
        where_: Vec<Value>,
        mutations: impl IntoIterator<Item = (&'static str, &'static str, Value)>,
    ) -> &mut Self {
        let m: Vec<Value> = mutations
            .into_iter()
            .map(|(c, op, v)| json!([c, op, v]))
            .collect();
        self.ops
            .push(json!({"op": "mutate", "table": table, "where": where_, "mutations": m}));
        self
    }

    /// §5.2.5 delete.
    pub fn delete(&mut self, table: &str, where_: Vec<Value>) -> &mut Self {
        self.ops
            .push(json!({"op": "delete", "table": table, "where": where_}));
        self
    }

    /// §5.2.2 select (its rows come back in the reply).
    pub fn select(&mut self, table: &str, where_: Vec<Value>, columns: Option<&[&str]>) -> usize {
        let mut op = json!({"op": "select", "table": table, "where": where_});
        if let Some(c) = columns {
            op["columns"] = json!(c);
        }
        self.ops.push(op);
        self.ops.len() - 1
    }

    /// §5.2.6 wait with `timeout` milliseconds.
    pub fn wait(
        &mut self,
        table: &str,
        where_: Vec<Value>,
        columns: &[&str],
        until_equal: bool,
        rows: Vec<Value>,
        timeout_ms: u64,
    ) -> &mut Self {
        self.ops.push(
            json!({"op": "wait", "table": table, "where": where_, "columns": columns,
            "until": if until_equal { "==" } else { "!=" }, "rows": rows, "timeout": timeout_ms}),
        );
        self
    }

    /// §5.2.9 comment.
    pub fn comment(&mut self, text: &str) -> &mut Self {
        self.ops.push(json!({"op": "comment", "comment": text}));
        self
    }

    /// §5.2.10 assert that the session owns `lock`.
    pub fn assert_lock(&mut self, lock: &str) -> &mut Self {
        self.ops.push(json!({"op": "assert", "lock": lock}));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn db(&self) -> &str {
        &self.db
    }

    /// The `transact` params: `[db, op...]`.
    pub fn params(&self) -> Value {
        let mut p = vec![json!(self.db)];
        p.extend(self.ops.iter().cloned());
        Value::Array(p)
    }

    /// Interprets the server's result array (§4.1.3).
    pub fn reply(&self, result: Value) -> Result<TransactReply, super::ClientError> {
        let results = match result {
            Value::Array(a) => a,
            other => {
                return Err(super::ClientError::Protocol(format!(
                    "transact result is not an array: {other}"
                )))
            }
        };
        if let Some((i, e)) = results
            .iter()
            .enumerate()
            .find(|(_, r)| r.get("error").is_some())
        {
            return Err(super::ClientError::Transaction {
                op: i,
                error: e["error"].as_str().unwrap_or("unknown").to_string(),
                details: e["details"].as_str().unwrap_or("").to_string(),
            });
        }
        let mut named = HashMap::new();
        for (i, name) in &self.inserts {
            if let Some(u) = results
                .get(*i)
                .and_then(|r| r["uuid"][1].as_str())
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                named.insert(name.clone(), u);
            }
        }
        Ok(TransactReply { results, named })
    }
}

fn row_object(row: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Object(
        row.into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<String, Value>>(),
    )
}

/// A committed transaction's results.
#[derive(Debug, Clone)]
pub struct TransactReply {
    pub results: Vec<Value>,
    named: HashMap<String, Uuid>,
}

impl TransactReply {
    /// The real UUID of a row; inserted rows resolve through their names.
    pub fn uuid(&self, id: &RowId) -> Option<Uuid> {
        match id {
            RowId::Existing(u) => Some(*u),
            RowId::Named(n) => self.named.get(n).copied(),
        }
    }

    /// Rows returned by the select at operation index `op`.
    pub fn rows(&self, op: usize) -> &[Value] {
        self.results
            .get(op)
            .and_then(|r| r["rows"].as_array())
            .map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_ops_and_resolves_names() {
        let mut t = Transaction::new("OVN_Northbound");
        let p = t.insert("Logical_Switch_Port", [("name", json!("p1"))]);
        t.insert(
            "Logical_Switch",
            [("name", json!("sw")), ("ports", refs([&p]))],
        );
        t.comment("hello");
        let params = t.params();
        assert_eq!(params[0], "OVN_Northbound");
        assert_eq!(
            params[2]["row"]["ports"],
            json!(["set", [["named-uuid", "row0"]]])
        );
        let u = Uuid::new_v4();
        let reply = t.reply(json!([{"uuid": ["uuid", u.to_string()]}, {"uuid": ["uuid", Uuid::new_v4().to_string()]}, {}])).unwrap();
        assert_eq!(reply.uuid(&p), Some(u));
        let err = t
            .reply(json!([{}, {"error": "constraint violation", "details": "x"}, null]))
            .unwrap_err();
        assert!(matches!(
            err,
            super::super::ClientError::Transaction { op: 1, .. }
        ));
        assert_eq!(map([("k", "v")]), json!(["map", [["k", "v"]]]));
    }
}
