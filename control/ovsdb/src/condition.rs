//! Conditions (RFC 7047 §5.1 `<condition>`): `where` clauses and monitor_cond filters.
//!
//! A [`Condition`] is a conjunction of clauses `[column, function, value]`; monitor_cond also
//! allows the booleans `true`/`false` as clauses. Clauses are resolved against the table schema
//! once, so evaluation is a comparison of datums. A clause `["_uuid", "==", uuid]` lets
//! callers look the row up directly instead of scanning ([`Condition::uuid_equals`]).

use std::cmp::Ordering;

use serde_json::Value;
use uuid::Uuid;

use super::datum::{Atom, Datum, UuidNames};
use super::error::{OvsdbError, Result};
use super::schema::{AtomicType, ColumnType, TableSchema};

/// A column named in a condition, `columns` list or mutation, including the implicit ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRef {
    Uuid,
    Version,
    Column(usize),
}

impl ColumnRef {
    /// Resolves a column name, accepting `_uuid` and `_version`.
    pub fn parse(ts: &TableSchema, name: &str) -> Result<Self> {
        match name {
            "_uuid" => Ok(ColumnRef::Uuid),
            "_version" => Ok(ColumnRef::Version),
            _ => ts.column(name).map(ColumnRef::Column).ok_or_else(|| {
                OvsdbError::unknown_column(format!("No column {name} in table {}.", ts.name))
            }),
        }
    }

    /// Parses a JSON array of column names.
    pub fn parse_list(ts: &TableSchema, v: &Value) -> Result<Vec<Self>> {
        v.as_array()
            .ok_or_else(|| OvsdbError::syntax(format!("{v}: expected array of column names")))?
            .iter()
            .map(|c| {
                Self::parse(
                    ts,
                    c.as_str()
                        .ok_or_else(|| OvsdbError::syntax(format!("{c}: expected column name")))?,
                )
            })
            .collect()
    }

    pub fn column_type(&self, ts: &TableSchema) -> ColumnType {
        match self {
            ColumnRef::Uuid | ColumnRef::Version => ColumnType::uuid(),
            ColumnRef::Column(i) => ts.columns[*i].type_.clone(),
        }
    }

    /// The value of this column in a row.
    pub fn value<'a>(
        &self,
        uuid: &Uuid,
        version: &Uuid,
        cols: &'a [Datum],
    ) -> std::borrow::Cow<'a, Datum> {
        match self {
            ColumnRef::Uuid => std::borrow::Cow::Owned(Datum::scalar(Atom::Uuid(*uuid))),
            ColumnRef::Version => std::borrow::Cow::Owned(Datum::scalar(Atom::Uuid(*version))),
            ColumnRef::Column(i) => std::borrow::Cow::Borrowed(&cols[*i]),
        }
    }
}

/// RFC 7047 §5.1 `<function>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
    Includes,
    Excludes,
}

impl Function {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "<" => Function::Lt,
            "<=" => Function::Le,
            "==" => Function::Eq,
            "!=" => Function::Ne,
            ">=" => Function::Ge,
            ">" => Function::Gt,
            "includes" => Function::Includes,
            "excludes" => Function::Excludes,
            _ => return None,
        })
    }
}

/// One clause of a condition.
#[derive(Debug, Clone)]
pub enum Clause {
    /// monitor_cond's `true` / `false`.
    Const(bool),
    Compare {
        column: ColumnRef,
        function: Function,
        arg: Datum,
    },
}

impl Clause {
    /// Whether the row satisfies this clause.
    fn matches(&self, uuid: &Uuid, version: &Uuid, cols: &[Datum]) -> bool {
        match self {
            Clause::Const(b) => *b,
            Clause::Compare {
                column,
                function,
                arg,
            } => {
                let v = column.value(uuid, version, cols);
                match function {
                    Function::Eq => *v == *arg,
                    Function::Ne => *v != *arg,
                    Function::Includes => v.includes(arg),
                    Function::Excludes => v.excludes(arg),
                    ordering => {
                        let (Some(a), Some(b)) = (v.first(), arg.first()) else {
                            return false;
                        };
                        let o = match (a, b) {
                            (Atom::Real(x), Atom::Real(y)) => x.partial_cmp(y),
                            _ => Some(a.cmp(b)),
                        };
                        match (ordering, o) {
                            (_, None) => false,
                            (Function::Lt, Some(o)) => o == Ordering::Less,
                            (Function::Le, Some(o)) => o != Ordering::Greater,
                            (Function::Ge, Some(o)) => o != Ordering::Less,
                            (Function::Gt, Some(o)) => o == Ordering::Greater,
                            _ => unreachable!("equality functions handled above"),
                        }
                    }
                }
            }
        }
    }
}

/// A list of clauses: a conjunction in a transaction's `where` ([`Condition::matches`]), a
/// disjunction in a monitor ([`Condition::matches_any`]); no clauses match every row.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    pub clauses: Vec<Clause>,
}

impl Condition {
    /// Parses `[clause, ...]` for table `ts`, with ovsdb-server's checks and errors
    /// (ovsdb/condition.c `ovsdb_clause_from_json`): the argument is a value of the column's
    /// type, with at least one element for ordering functions, any number up to the column's
    /// maximum for `includes` and any number for `excludes` (§5.1).
    pub fn parse(ts: &TableSchema, v: &Value, names: &mut dyn UuidNames) -> Result<Self> {
        let arr = v
            .as_array()
            .ok_or_else(|| OvsdbError::syntax(format!("{v}: condition must be an array")))?;
        let mut clauses = Vec::with_capacity(arr.len());
        for c in arr {
            if let Some(b) = c.as_bool() {
                clauses.push(Clause::Const(b));
                continue;
            }
            let (cname, fname, value) = match c.as_array().map(Vec::as_slice) {
                Some([Value::String(c), Value::String(f), v]) => (c, f, v),
                _ => return Err(OvsdbError::syntax("Parse error in condition.").at(c)),
            };
            let column = ColumnRef::parse(ts, cname).map_err(|e| e.at(c))?;
            let function = Function::parse(fname).ok_or_else(|| OvsdbError {
                tag: "unknown function",
                details: format!("No function named {fname}."),
                syntax: None,
            })?;
            let ty = column.column_type(ts);
            let arg_type = match function {
                Function::Lt | Function::Le | Function::Ge | Function::Gt => {
                    // Optional scalars are allowed: an empty one never matches.
                    if !(ty.is_scalar() || ty.is_optional_scalar())
                        || !matches!(ty.key.atomic, AtomicType::Integer | AtomicType::Real)
                    {
                        return Err(OvsdbError::syntax(format!(
                            "Type mismatch: \"{fname}\" operator may not be applied to column \
                             {cname} of type {}.",
                            ty.to_english()
                        ))
                        .at(c));
                    }
                    ColumnType { min: 1, ..ty }
                }
                Function::Eq | Function::Ne => ty,
                Function::Includes if !ty.is_scalar() => ColumnType { min: 0, ..ty },
                Function::Excludes if !ty.is_scalar() => ty.relaxed(),
                Function::Includes | Function::Excludes => ty,
            };
            // The argument's atoms must satisfy the column's constraints.
            let arg = Datum::from_json(&arg_type, value, names)?;
            clauses.push(Clause::Compare {
                column,
                function,
                arg,
            });
        }
        Ok(Condition { clauses })
    }

    /// Whether the row satisfies every clause (a transaction's `where`).
    pub fn matches(&self, uuid: &Uuid, version: &Uuid, cols: &[Datum]) -> bool {
        self.clauses.iter().all(|c| c.matches(uuid, version, cols))
    }

    /// Whether the row satisfies any clause: a monitor_cond condition is a disjunction
    /// (ovsdb-server(7) §4.1.12: changes are sent for "rows matching one of the conditions
    /// specified in where"), unlike a transaction's `where`. No clauses selects every row.
    pub fn matches_any(&self, uuid: &Uuid, version: &Uuid, cols: &[Datum]) -> bool {
        self.clauses.is_empty() || self.clauses.iter().any(|c| c.matches(uuid, version, cols))
    }

    /// If a clause pins `_uuid` to one value, that value (lets callers skip the table scan).
    pub fn uuid_equals(&self) -> Option<Uuid> {
        self.clauses.iter().find_map(|c| match c {
            Clause::Compare {
                column: ColumnRef::Uuid,
                function: Function::Eq,
                arg,
            } => arg.first().and_then(Atom::as_uuid),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::NoNames;
    use crate::schema::DatabaseSchema;
    use serde_json::json;

    fn table() -> TableSchema {
        let s = DatabaseSchema::from_json(
            &json!({"name": "T", "version": "1.0.0", "tables": {"A": {"columns": {
            "n": {"type": "integer"},
            "s": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
            "m": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}}}}}}),
        )
        .unwrap();
        s.tables[0].clone()
    }

    #[test]
    fn functions() {
        let ts = table();
        let row = vec![
            Datum::map(vec![(Atom::string("k"), Atom::string("v"))]),
            Datum::scalar(Atom::Integer(5)),
            Datum::set(vec![Atom::string("a"), Atom::string("b")]),
        ];
        let u = Uuid::new_v4();
        let check = |c: Value| {
            Condition::parse(&ts, &c, &mut NoNames)
                .unwrap()
                .matches(&u, &u, &row)
        };
        assert!(check(json!([["n", "<", 6], ["n", ">=", 5]])));
        assert!(!check(json!([["n", ">", 5]])));
        assert!(check(json!([["s", "includes", "a"]])));
        assert!(check(json!([["s", "excludes", ["set", ["c", "d"]]]])));
        assert!(check(json!([["s", "==", ["set", ["b", "a"]]]])));
        assert!(check(json!([["m", "includes", ["map", [["k", "v"]]]]])));
        assert!(check(json!([["_uuid", "==", ["uuid", u.to_string()]]])));
        assert!(!check(json!([false])));
        assert!(check(json!([])));
    }

    #[test]
    fn monitor_conditions_are_disjunctions() {
        let ts = table();
        let row = vec![
            Datum::map(vec![]),
            Datum::scalar(Atom::Integer(5)),
            Datum::set(vec![]),
        ];
        let u = Uuid::new_v4();
        let any = |c: Value| {
            Condition::parse(&ts, &c, &mut NoNames)
                .unwrap()
                .matches_any(&u, &u, &row)
        };
        // One clause per wanted value, as ovn-controller asks for its datapaths.
        assert!(any(json!([["n", "==", 4], ["n", "==", 5]])));
        assert!(!any(json!([["n", "==", 4], ["n", "==", 6]])));
        assert!(any(json!([false, ["n", "==", 5]])));
        assert!(!any(json!([false])));
        assert!(any(json!([])));
    }

    #[test]
    fn rejects_bad_clauses() {
        let ts = table();
        for bad in [
            json!([["s", "<", "a"]]),
            json!([["nope", "==", 1]]),
            json!([["n", "~", 1]]),
            json!([["n", "=="]]),
            json!({}),
        ] {
            assert!(Condition::parse(&ts, &bad, &mut NoNames).is_err(), "{bad}");
        }
    }
}
