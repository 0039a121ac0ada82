//! The operations of a `transact` request (RFC 7047 §5.2), parsed and run the way
//! ovsdb-server's ovsdb/execution.c does it, so replies — errors included — are the same:
//! each operation is an object read member by member ([`Parser`]), members are fetched in
//! ovsdb-server's order (so the same problem is reported first), and a parse error outranks
//! an execution error of the same operation. The first failing operation ends the
//! transaction (§4.1.3: later results are `null`); otherwise [`Transaction::commit`] runs.

use serde_json::Value;
use uuid::Uuid;

use super::{Change, OpError, OpResult, Outcome, Results, Transaction, TxnContext};
use crate::condition::{ColumnRef, Condition};
use crate::database::Database;
use crate::datum::{Datum, UuidNames};
use crate::error::{OvsdbError, Result};
use crate::mutation::Mutation;
use crate::parser::{Parser, Types};
use crate::schema::TableSchema;
use crate::uuidgen::new_uuid;

/// Runs a `transact` request's operations (the params after the database name).
pub fn execute(db: &Database, ops: &[Value], ctx: &dyn TxnContext) -> Outcome {
    let mut txn = Transaction::new(db);
    let mut results = Vec::with_capacity(ops.len() + 1);
    let mut failed = false;
    for (i, op) in ops.iter().enumerate() {
        if failed {
            results.push(OpResult::NotExecuted);
            continue;
        }
        let name = format!("ovsdb operation {} of {}", i + 1, ops.len());
        match txn.operation(op, name, ctx) {
            Ok(r) => results.push(r),
            Err(OpError::Blocked(timeout_ms)) => return Outcome::Blocked { timeout_ms },
            Err(OpError::Error(e)) => {
                results.push(OpResult::Error(e));
                failed = true;
            }
        }
    }
    let mut results = Results(results);
    if failed {
        return Outcome::Done {
            results,
            changes: None,
        };
    }
    match txn.commit() {
        Ok(cs) => Outcome::Done {
            results,
            changes: (!cs.changes.is_empty()).then_some(cs),
        },
        Err(e) => {
            // §4.1.3: a commit failure is reported as one extra element.
            results.push_error(e);
            Outcome::Done {
                results,
                changes: None,
            }
        }
    }
}

/// Operations that leave the database as it is (ovsdb/execution.c `lookup_executor`).
fn read_only(op: &str) -> bool {
    matches!(op, "select" | "wait" | "abort" | "comment" | "assert")
}

/// ovsdb/column.c `ovsdb_column_set_from_json`: absent means every column (with `_uuid` and
/// `_version`); present, an array of distinct column names.
fn column_set(ts: &TableSchema, v: Option<&Value>) -> Result<Vec<ColumnRef>> {
    let Some(v) = v else {
        let mut all = vec![ColumnRef::Uuid, ColumnRef::Version];
        all.extend((0..ts.columns.len()).map(ColumnRef::Column));
        return Ok(all);
    };
    let bad = || OvsdbError::syntax("array of distinct column names expected").at(v);
    let mut out = Vec::new();
    for c in v.as_array().ok_or_else(bad)? {
        let name = c.as_str().ok_or_else(bad)?;
        let col = ColumnRef::parse(ts, name)
            .map_err(|_| OvsdbError::syntax(format!("{name} is not a valid column name")).at(v))?;
        if out.contains(&col) {
            return Err(bad());
        }
        out.push(col);
    }
    Ok(out)
}

impl<'a> Transaction<'a> {
    /// Runs one operation; `name` ("ovsdb operation 1 of 2") prefixes its parse errors.
    fn operation(
        &mut self,
        v: &Value,
        name: String,
        ctx: &dyn TxnContext,
    ) -> Result<OpResult, OpError> {
        let mut p = Parser::new(v, name);
        let op = p.member("op", Types::ID).and_then(Value::as_str);
        let result = match op {
            Some(op) => self.run(op, &mut p, ctx),
            None => Err(OpError::Error(
                p.error().expect("the parser saw the problem"),
            )),
        };
        let result = match p.finish() {
            // A parse error overrides any other error, and any result.
            Some(e) => Err(OpError::Error(e)),
            None => result,
        };
        let reserved = &self.schema.name;
        match (op, result) {
            (Some(op), Ok(_)) if !read_only(op) && reserved.starts_with('_') => {
                Err(OpError::Error(OvsdbError::not_allowed(format!(
                    "{op} operation not allowed on table in reserved database {reserved}"
                ))))
            }
            (_, r) => r,
        }
    }

    fn run(
        &mut self,
        op: &str,
        p: &mut Parser<'_>,
        ctx: &dyn TxnContext,
    ) -> Result<OpResult, OpError> {
        Ok(match op {
            "insert" => self.insert(p)?,
            "select" => self.select(p)?,
            "update" => self.update(p)?,
            "mutate" => self.mutate(p)?,
            "delete" => self.delete_op(p)?,
            "wait" => return self.wait(p, ctx),
            // §5.2.7
            "commit" => {
                let durable = p.member("durable", Types::BOOLEAN);
                if durable == Some(&Value::Bool(true)) && !ctx.durable() {
                    return Err(OvsdbError::not_supported(
                        "durable commit is not supported by an in-memory database",
                    )
                    .into());
                }
                OpResult::Empty
            }
            // §5.2.8
            "abort" => return Err(OvsdbError::aborted("aborted by request").into()),
            // §5.2.9
            "comment" => {
                p.member("comment", Types::STRING);
                OpResult::Empty
            }
            // §5.2.10
            "assert" => match p.member("lock", Types::ID).and_then(Value::as_str) {
                Some(lock) if !ctx.owns_lock(lock) => {
                    return Err(
                        OvsdbError::not_owner(format!("Asserted lock {lock} not held.")).into(),
                    )
                }
                _ => OpResult::Empty,
            },
            other => {
                p.raise(&format!("No operation \"{other}\""));
                OpResult::Empty
            }
        })
    }

    /// ovsdb/execution.c `parse_table`.
    fn parse_table(&self, p: &mut Parser<'_>) -> Option<(usize, &'a TableSchema)> {
        let name = p.member("table", Types::ID)?.as_str()?;
        match self.schema.table(name) {
            Some(t) => Some((t, &self.schema.tables[t])),
            None => {
                p.raise(&format!("No table named {name}."));
                None
            }
        }
    }

    /// The parser's error, or the table it found.
    fn checked(
        p: &Parser<'_>,
        t: Option<(usize, &'a TableSchema)>,
    ) -> Result<(usize, &'a TableSchema)> {
        match (p.error(), t) {
            (Some(e), _) => Err(e),
            (None, Some(t)) => Ok(t),
            (None, None) => unreachable!("a missing table is a parse error"),
        }
    }

    /// ovsdb/row.c `ovsdb_row_from_json`: the columns a `<row>` sets, in its order.
    fn parse_row(&mut self, ts: &TableSchema, v: &Value) -> Result<Vec<(ColumnRef, Datum)>> {
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("row must be JSON object").at(v))?;
        let mut out = Vec::with_capacity(obj.len());
        for (name, val) in obj {
            let col = ColumnRef::parse(ts, name).map_err(|e| e.at(v))?;
            let d = Datum::from_json(&col.column_type(ts), val, &mut self.symbols)?;
            out.push((col, d));
        }
        Ok(out)
    }

    /// §5.2.1 (ovsdb/execution.c `ovsdb_execute_insert`).
    fn insert(&mut self, p: &mut Parser<'_>) -> Result<OpResult> {
        let table = self.parse_table(p);
        let uuid_json = p.member("uuid", Types::STRING | Types::OPTIONAL);
        let uuid_name = p.member("uuid-name", Types::ID | Types::OPTIONAL);
        let row_json = p.member("row", Types::OBJECT);
        let (t, ts) = Self::checked(p, table)?;
        let chosen = match uuid_json {
            Some(u) => {
                let uuid = u
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| OvsdbError::syntax("bad uuid").at(u))?;
                // ovsdb/transaction.c `ovsdb_txn_may_create_row`.
                if self.changes[t].contains_key(&uuid) || self.db.tables[t].rows.contains_key(&uuid)
                {
                    return Err(OvsdbError {
                        tag: "duplicate uuid",
                        details: "This UUID would duplicate a UUID already present within the \
                                  table or deleted within the same transaction."
                            .into(),
                        syntax: Some(u.to_string()),
                    });
                }
                Some(uuid)
            }
            None => None,
        };
        let uuid = match uuid_name.and_then(Value::as_str) {
            Some(n) => {
                if self.symbols.map.get(n).is_some_and(|(_, created)| *created) {
                    return Err(OvsdbError {
                        tag: "duplicate uuid-name",
                        details: "This \"uuid-name\" appeared on an earlier \"insert\" \
                                  operation."
                            .into(),
                        syntax: Some(Value::from(n).to_string()),
                    });
                }
                let u = match chosen {
                    Some(u) => u,
                    None => self.symbols.resolve(n)?,
                };
                self.symbols.map.insert(n.to_string(), (u, true));
                u
            }
            None => chosen.unwrap_or_else(new_uuid),
        };
        let mut cols = ts.default_row();
        for (col, d) in self.parse_row(ts, row_json.expect("checked"))? {
            // `_uuid` and `_version` in a row are parsed, then ignored.
            if let ColumnRef::Column(ci) = col {
                cols[ci] = d;
            }
        }
        // A default value need not satisfy its column's constraints (an enum without ""),
        // so one-element values are checked again.
        for (c, d) in ts.columns.iter().zip(&cols) {
            if d.len() == 1 {
                d.check(&c.type_)?;
            }
        }
        self.changes[t].insert(
            uuid,
            Change {
                old: None,
                version: new_uuid(),
                new: Some(cols),
            },
        );
        Ok(OpResult::Uuid(uuid))
    }

    /// §5.2.2 (`ovsdb_execute_select`).
    fn select(&mut self, p: &mut Parser<'_>) -> Result<OpResult> {
        let table = self.parse_table(p);
        let where_ = p.member("where", Types::ARRAY);
        let columns = p.member("columns", Types::ARRAY | Types::OPTIONAL);
        let sort = p.member("sort", Types::ARRAY | Types::OPTIONAL);
        let (t, ts) = Self::checked(p, table)?;
        let cond = Condition::parse(ts, where_.expect("checked"), &mut self.symbols)?;
        let projection = columns.map(|c| column_set(ts, Some(c))).transpose()?;
        column_set(ts, sort)?;
        let rows: Vec<Value> = self
            .matching(t, &cond)
            .into_iter()
            .filter_map(|u| {
                self.get(t, &u)
                    .map(|(v, cols)| Database::row_to_json(ts, u, v, cols, projection.as_deref()))
            })
            .collect();
        Ok(OpResult::Rows(rows))
    }

    /// §5.2.3 (`ovsdb_execute_update`).
    fn update(&mut self, p: &mut Parser<'_>) -> Result<OpResult> {
        let table = self.parse_table(p);
        let where_ = p.member("where", Types::ARRAY);
        let row_json = p.member("row", Types::OBJECT);
        let (t, ts) = Self::checked(p, table)?;
        let row = self.parse_row(ts, row_json.expect("checked"))?;
        let mut set = Vec::with_capacity(row.len());
        for (col, d) in row {
            match col {
                ColumnRef::Column(ci) if ts.columns[ci].mutable => set.push((ci, d)),
                _ => {
                    let name = match col {
                        ColumnRef::Uuid => "_uuid",
                        ColumnRef::Version => "_version",
                        ColumnRef::Column(ci) => &ts.columns[ci].name,
                    };
                    return Err(OvsdbError::constraint(format!(
                        "Cannot update immutable column {name} in table {}.",
                        ts.name
                    ))
                    .at(p.json()));
                }
            }
        }
        let cond = Condition::parse(ts, where_.expect("checked"), &mut self.symbols)?;
        let hits = self.matching(t, &cond);
        for u in &hits {
            let cols = self.get_mut(t, *u).expect("matched row exists");
            for (ci, d) in &set {
                cols[*ci] = d.clone();
            }
        }
        Ok(OpResult::Count(hits.len()))
    }

    /// §5.2.4 (`ovsdb_execute_mutate`): mutations are parsed before the condition.
    fn mutate(&mut self, p: &mut Parser<'_>) -> Result<OpResult> {
        let table = self.parse_table(p);
        let where_ = p.member("where", Types::ARRAY);
        let mutations = p.member("mutations", Types::ARRAY);
        let (t, ts) = Self::checked(p, table)?;
        let mutations = mutations
            .and_then(Value::as_array)
            .expect("checked")
            .iter()
            .map(|m| Mutation::parse(ts, m, &mut self.symbols))
            .collect::<Result<Vec<_>>>()?;
        let cond = Condition::parse(ts, where_.expect("checked"), &mut self.symbols)?;
        let hits = self.matching(t, &cond);
        for u in &hits {
            let cols = self.get_mut(t, *u).expect("matched row exists");
            for m in &mutations {
                m.apply(&mut cols[m.column], &ts.columns[m.column].type_)?;
            }
        }
        Ok(OpResult::Count(hits.len()))
    }

    /// §5.2.5 (`ovsdb_execute_delete`).
    fn delete_op(&mut self, p: &mut Parser<'_>) -> Result<OpResult> {
        let where_ = p.member("where", Types::ARRAY);
        let table = self.parse_table(p);
        let (t, ts) = Self::checked(p, table)?;
        let cond = Condition::parse(ts, where_.expect("checked"), &mut self.symbols)?;
        let hits = self.matching(t, &cond);
        for u in &hits {
            self.delete(t, *u);
        }
        Ok(OpResult::Count(hits.len()))
    }

    /// §5.2.6 (`ovsdb_execute_wait`): the matching rows, projected on `columns`, must (or
    /// must not) be the set of `rows`; duplicates count once on both sides.
    fn wait(&mut self, p: &mut Parser<'_>, ctx: &dyn TxnContext) -> Result<OpResult, OpError> {
        let timeout = p.member("timeout", Types::INTEGER | Types::OPTIONAL);
        let where_ = p.member("where", Types::ARRAY);
        let columns = p.member("columns", Types::ARRAY | Types::OPTIONAL);
        let until = p.member("until", Types::STRING);
        let rows = p.member("rows", Types::ARRAY);
        let table = self.parse_table(p);
        let (t, ts) = Self::checked(p, table)?;
        let cond = Condition::parse(ts, where_.expect("checked"), &mut self.symbols)?;
        let columns = column_set(ts, columns)?;
        let timeout = match timeout {
            Some(v) => match v.as_u64() {
                Some(ms) => Some(ms),
                None => {
                    return Err(OvsdbError::syntax("timeout must be nonnegative")
                        .at(v)
                        .into())
                }
            },
            None => None,
        };
        let until = until.expect("checked");
        let until_eq = match until.as_str() {
            Some("==") => true,
            Some("!=") => false,
            _ => {
                return Err(OvsdbError::syntax("\"until\" must be \"==\" or \"!=\"")
                    .at(until)
                    .into())
            }
        };
        let mut expected = Vec::new();
        for r in rows.and_then(Value::as_array).expect("checked") {
            let mut full = ts.default_row();
            let (mut uuid, mut version) = (Uuid::nil(), Uuid::nil());
            for (col, d) in self.parse_row(ts, r)? {
                match col {
                    ColumnRef::Column(ci) => full[ci] = d,
                    ColumnRef::Uuid => uuid = d.first().and_then(|a| a.as_uuid()).unwrap_or(uuid),
                    ColumnRef::Version => {
                        version = d.first().and_then(|a| a.as_uuid()).unwrap_or(version)
                    }
                }
            }
            let projected: Vec<Datum> = columns
                .iter()
                .map(|c| c.value(&uuid, &version, &full).into_owned())
                .collect();
            expected.push(projected);
        }
        let mut actual: Vec<Vec<Datum>> = self
            .matching(t, &cond)
            .into_iter()
            .filter_map(|u| {
                self.get(t, &u).map(|(v, cols)| {
                    columns
                        .iter()
                        .map(|c| c.value(&u, &v, cols).into_owned())
                        .collect()
                })
            })
            .collect();
        for set in [&mut actual, &mut expected] {
            set.sort();
            set.dedup();
        }
        if (actual == expected) == until_eq {
            return Ok(OpResult::Empty);
        }
        match timeout {
            Some(ms) if ms > 0 && !ctx.wait_expired() => Err(OpError::Blocked(Some(ms))),
            None if !ctx.wait_expired() => Err(OpError::Blocked(None)),
            // A wait that never blocked failed its test.
            Some(0) => Err(OvsdbError::timed_out("\"where\" clause test failed").into()),
            // ovsdb-server names the time it waited, which is the timeout (give or take the
            // moment its trigger ran).
            Some(ms) => {
                Err(OvsdbError::timed_out(format!("\"wait\" timed out after {ms} ms")).into())
            }
            None => Err(
                OvsdbError::timed_out(format!("\"wait\" timed out on table {}", ts.name)).into(),
            ),
        }
    }
}
