//! Mutations (RFC 7047 §5.1 `<mutation>`), used by the `mutate` operation (§5.2.4).
//!
//! Arithmetic mutators (`+= -= *= /= %=`) apply to integer or real columns, element-wise for
//! sets; `insert`/`delete` add or remove set elements and map pairs (a map `delete` takes either
//! pairs or keys). The result is re-checked against the column type, so a mutation can never
//! store a value that an `update` could not.

use serde_json::Value;

use super::condition::ColumnRef;
use super::datum::{Atom, Datum, UuidNames};
use super::error::{OvsdbError, Result};
use super::schema::{AtomicType, BaseType, ColumnType, TableSchema};

/// RFC 7047 §5.1 `<mutator>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutator {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Insert,
    Delete,
}

impl Mutator {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "+=" => Mutator::Add,
            "-=" => Mutator::Sub,
            "*=" => Mutator::Mul,
            "/=" => Mutator::Div,
            "%=" => Mutator::Mod,
            "insert" => Mutator::Insert,
            "delete" => Mutator::Delete,
            // ovsdb/mutation.c `ovsdb_mutator_from_string`: no "syntax" member.
            _ => {
                return Err(OvsdbError {
                    tag: "unknown mutator",
                    details: format!("No mutator named {name}."),
                    syntax: None,
                })
            }
        })
    }

    /// The mutator as written on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Mutator::Add => "+=",
            Mutator::Sub => "-=",
            Mutator::Mul => "*=",
            Mutator::Div => "/=",
            Mutator::Mod => "%=",
            Mutator::Insert => "insert",
            Mutator::Delete => "delete",
        }
    }
}

/// One parsed mutation.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub column: usize,
    pub mutator: Mutator,
    pub arg: Datum,
}

impl Mutation {
    /// Parses `[column, mutator, value]` for table `ts`, with ovsdb-server's checks in its
    /// order and its errors (ovsdb/mutation.c `ovsdb_mutation_from_json`): the shape, the
    /// column, its mutability, the mutator, whether the mutator fits the column type, then
    /// the argument, whose atoms must satisfy the column's constraints (except for
    /// arithmetic, whose operand is unconstrained).
    pub fn parse(ts: &TableSchema, v: &Value, names: &mut dyn UuidNames) -> Result<Self> {
        let (cname, mname, arg) = match v.as_array().map(Vec::as_slice) {
            Some([Value::String(c), Value::String(m), arg]) => (c, m, arg),
            _ => return Err(OvsdbError::syntax("Parse error in mutation.").at(v)),
        };
        // `_uuid` and `_version` are columns of every table, and immutable.
        let column = match ColumnRef::parse(ts, cname).map_err(|e| e.at(v))? {
            ColumnRef::Column(i) if ts.columns[i].mutable => i,
            _ => {
                return Err(OvsdbError::constraint(format!(
                    "Cannot mutate immutable column {cname} in table {}.",
                    ts.name
                ))
                .at(v))
            }
        };
        let t = &ts.columns[column].type_;
        let mutator = Mutator::parse(mname)?;
        let mismatch = || {
            OvsdbError::syntax(format!(
                "Type mismatch: \"{mname}\" operator may not be applied to column {cname} of \
                 type {}.",
                t.to_english()
            ))
            .at(v)
        };
        let arg = match mutator {
            Mutator::Insert | Mutator::Delete => {
                if !t.is_set() && !t.is_map() {
                    return Err(mismatch());
                }
                // An insert may bring up to the column's maximum, a delete any number.
                let at = ColumnType {
                    min: 0,
                    max: if mutator == Mutator::Delete {
                        usize::MAX
                    } else {
                        t.max
                    },
                    ..t.clone()
                };
                match Datum::from_json(&at, arg, names) {
                    // §5.1: a map "delete" may also name keys only.
                    Err(_) if mutator == Mutator::Delete && t.is_map() => {
                        let keys = ColumnType { value: None, ..at };
                        Datum::from_json(&keys, arg, names)?
                    }
                    r => r?,
                }
            }
            _ => {
                let numeric = matches!(t.key.atomic, AtomicType::Integer | AtomicType::Real);
                if (!t.is_scalar() && !t.is_set())
                    || !numeric
                    || (mutator == Mutator::Mod && t.key.atomic == AtomicType::Real)
                {
                    return Err(mismatch());
                }
                let operand = ColumnType {
                    key: BaseType::plain(t.key.atomic),
                    value: None,
                    min: 1,
                    max: 1,
                };
                Datum::from_json(&operand, arg, names)?
            }
        };
        Ok(Mutation {
            column,
            mutator,
            arg,
        })
    }

    /// Applies the mutation to `d` (a value of column type `t`), with ovsdb-server's checks
    /// (ovsdb/mutation.c `ovsdb_mutation_set_execute`): arithmetic checks each result, then
    /// the column's constraints, then duplicates; insert and delete check the element count
    /// (their argument was checked against the constraints when it was parsed).
    pub fn apply(&self, d: &mut Datum, t: &ColumnType) -> Result<()> {
        match self.mutator {
            Mutator::Insert => {
                for (i, k) in self.arg.keys().iter().enumerate() {
                    d.insert(k.clone(), self.arg.values().get(i).cloned());
                }
                check_count(d, t)
            }
            Mutator::Delete => {
                if self.arg.is_map() {
                    d.retain(|k, v| self.arg.get(k) != v);
                } else {
                    d.retain(|k, _| !self.arg.contains_key(k));
                }
                check_count(d, t)
            }
            _ => {
                let operand = self.arg.first().expect("arithmetic argument is a scalar");
                let n = d.len();
                for a in d.keys_mut().iter_mut() {
                    *a = arith(self.mutator, a, operand)?;
                }
                for a in d.keys() {
                    a.check_constraints(&t.key)?;
                }
                let sorted = Datum::set(d.keys().to_vec());
                if sorted.len() != n {
                    return Err(OvsdbError::constraint(format!(
                        "Result of \"{}\" operation contains duplicates.",
                        self.mutator.name()
                    )));
                }
                *d = sorted;
                Ok(())
            }
        }
    }
}

/// ovsdb/mutation.c `ovsdb_mutation_check_count`.
fn check_count(d: &Datum, t: &ColumnType) -> Result<()> {
    if d.len() < t.min || d.len() > t.max {
        return Err(OvsdbError::constraint(format!(
            "Attempted to store {} elements in {}.",
            d.len(),
            t.to_english()
        )));
    }
    Ok(())
}

/// §5.1 arithmetic on one atom: overflow is a "range error", division by zero a "domain
/// error" (ovsdb/mutation.c `ovsdb_mutation_scalar_error`).
fn arith(m: Mutator, a: &Atom, b: &Atom) -> Result<Atom> {
    let range = || {
        OvsdbError::range(format!(
            "Result of \"{}\" operation is out of range.",
            m.name()
        ))
    };
    match (a, b) {
        (Atom::Integer(x), Atom::Integer(y)) => {
            let (x, y) = (*x, *y);
            let r = match m {
                Mutator::Add => x.checked_add(y),
                Mutator::Sub => x.checked_sub(y),
                Mutator::Mul if mul_overflows(x, y) => None,
                Mutator::Mul => Some(x.wrapping_mul(y)),
                Mutator::Div | Mutator::Mod if y == 0 => {
                    return Err(OvsdbError::domain("Division by zero."))
                }
                Mutator::Div => x.checked_div(y),
                Mutator::Mod => x.checked_rem(y),
                _ => unreachable!("set mutators handled by caller"),
            };
            r.map(Atom::Integer).ok_or_else(range)
        }
        (Atom::Real(x), Atom::Real(y)) => {
            let r = match m {
                Mutator::Add => x + y,
                Mutator::Sub => x - y,
                Mutator::Mul => x * y,
                Mutator::Div if *y == 0.0 => return Err(OvsdbError::domain("Division by zero.")),
                Mutator::Div => x / y,
                _ => unreachable!("%= rejected for reals at parse time"),
            };
            // `check_real_range`: within ±DBL_MAX (NaN is not).
            if (-f64::MAX..=f64::MAX).contains(&r) {
                Ok(Atom::Real(r))
            } else {
                Err(range())
            }
        }
        _ => unreachable!("the operand was parsed with the column's atomic type"),
    }
}

/// ovsdb/mutation.c `mul_int`'s overflow test (Hacker's Delight p. 30), kept as written so
/// the same products are refused: it is conservative (1 * i64::MAX is refused too). Where it
/// would divide by zero (a negative times zero) the product is simply zero.
fn mul_overflows(x: i64, y: i64) -> bool {
    if x > 0 {
        if y > 0 {
            x >= i64::MAX / y
        } else {
            y < i64::MIN / x
        }
    } else if y > 0 {
        x < i64::MIN / y
    } else {
        x != 0 && y != 0 && y < i64::MAX / y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::NoNames;
    use crate::schema::DatabaseSchema;
    use serde_json::json;

    fn table() -> TableSchema {
        DatabaseSchema::from_json(
            &json!({"name": "T", "version": "1.0.0", "tables": {"A": {"columns": {
            "n": {"type": {"key": {"type": "integer", "maxInteger": 100}}},
            "s": {"type": {"key": "string", "min": 0, "max": 2}},
            "m": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
            "k": {"type": "string", "mutable": false}}}}}),
        )
        .unwrap()
        .tables[0]
            .clone()
    }

    fn run(ts: &TableSchema, m: Value, d: &mut Datum) -> Result<()> {
        let m = Mutation::parse(ts, &m, &mut NoNames)?;
        let t = ts.columns[m.column].type_.clone();
        m.apply(d, &t)
    }

    #[test]
    fn arithmetic_and_errors() {
        let ts = table();
        let mut n = Datum::scalar(Atom::Integer(10));
        run(&ts, json!(["n", "+=", 5]), &mut n).unwrap();
        assert_eq!(n, Datum::scalar(Atom::Integer(15)));
        assert_eq!(
            run(&ts, json!(["n", "/=", 0]), &mut n).unwrap_err().tag,
            "domain error"
        );
        assert_eq!(
            run(&ts, json!(["n", "*=", 100]), &mut n).unwrap_err().tag,
            "constraint violation"
        );
        let mut big = Datum::scalar(Atom::Integer(i64::MAX));
        assert_eq!(
            run(&ts, json!(["n", "+=", 1]), &mut big).unwrap_err().tag,
            "range error"
        );
        assert_eq!(
            run(&ts, json!(["k", "insert", "x"]), &mut n)
                .unwrap_err()
                .tag,
            "constraint violation"
        );
    }

    #[test]
    fn set_and_map_mutators() {
        let ts = table();
        let mut s = Datum::empty_set();
        run(&ts, json!(["s", "insert", ["set", ["a", "b"]]]), &mut s).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            run(&ts, json!(["s", "insert", "c"]), &mut s.clone())
                .unwrap_err()
                .tag,
            "constraint violation"
        );
        run(&ts, json!(["s", "delete", "a"]), &mut s).unwrap();
        assert_eq!(s, Datum::scalar(Atom::string("b")));
        let mut m = Datum::empty_map();
        run(
            &ts,
            json!(["m", "insert", ["map", [["k", "v"], ["j", "w"]]]]),
            &mut m,
        )
        .unwrap();
        run(
            &ts,
            json!(["m", "insert", ["map", [["k", "other"]]]]),
            &mut m,
        )
        .unwrap();
        assert_eq!(m.get(&Atom::string("k")), Some(&Atom::string("v")));
        run(
            &ts,
            json!(["m", "delete", ["map", [["k", "nope"]]]]),
            &mut m,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        run(&ts, json!(["m", "delete", ["set", ["k"]]]), &mut m).unwrap();
        assert_eq!(m.len(), 1);
    }
}
