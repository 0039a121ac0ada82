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
use super::schema::{AtomicType, ColumnType, TableSchema};

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

/// One parsed mutation.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub column: usize,
    pub mutator: Mutator,
    pub arg: Datum,
}

impl Mutation {
    /// Parses `[column, mutator, value]` for table `ts`.
    pub fn parse(ts: &TableSchema, v: &Value, names: &mut dyn UuidNames) -> Result<Self> {
        let parts = v.as_array().filter(|p| p.len() == 3).ok_or_else(|| {
            OvsdbError::syntax(format!("{v}: mutation must be [column, mutator, value]"))
        })?;
        let cname = parts[0]
            .as_str()
            .ok_or_else(|| OvsdbError::syntax(format!("{v}: bad column")))?;
        let column = match ColumnRef::parse(ts, cname)? {
            ColumnRef::Column(i) => i,
            _ => {
                return Err(OvsdbError::constraint(format!(
                    "Cannot mutate immutable column {cname} in table {}.",
                    ts.name
                )))
            }
        };
        let cs = &ts.columns[column];
        if !cs.mutable {
            // ovsdb/mutation.c names the mutation in "syntax".
            return Err(OvsdbError::constraint(format!(
                "Cannot mutate immutable column {cname} in table {}.",
                ts.name
            ))
            .at(v));
        }
        let t = &cs.type_;
        let mutator = match parts[1].as_str() {
            Some("+=") => Mutator::Add,
            Some("-=") => Mutator::Sub,
            Some("*=") => Mutator::Mul,
            Some("/=") => Mutator::Div,
            Some("%=") => Mutator::Mod,
            Some("insert") => Mutator::Insert,
            Some("delete") => Mutator::Delete,
            _ => return Err(OvsdbError::syntax(format!("{}: unknown mutator", parts[1]))),
        };
        let arg = match mutator {
            Mutator::Insert | Mutator::Delete => {
                if t.is_scalar() {
                    return Err(OvsdbError::syntax(format!(
                        "\"{}\" mutator may not be applied to scalar column {cname}",
                        parts[1]
                    )));
                }
                let relaxed = t.relaxed();
                match Datum::from_json_unchecked(&relaxed, &parts[2], names) {
                    Ok(d) => d,
                    // §5.1: a map "delete" may also name keys only.
                    Err(_) if mutator == Mutator::Delete && t.value.is_some() => {
                        let keys = ColumnType {
                            value: None,
                            ..relaxed
                        };
                        Datum::from_json_unchecked(&keys, &parts[2], names)?
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => {
                let numeric = matches!(t.key.atomic, AtomicType::Integer | AtomicType::Real);
                if t.value.is_some()
                    || !numeric
                    || (mutator == Mutator::Mod && t.key.atomic != AtomicType::Integer)
                {
                    return Err(OvsdbError::syntax(format!(
                        "\"{}\" mutator may not be applied to column {cname}",
                        parts[1]
                    )));
                }
                let scalar = ColumnType {
                    min: 1,
                    max: 1,
                    ..t.clone()
                };
                Datum::from_json_unchecked(&scalar, &parts[2], names)?
            }
        };
        Ok(Mutation {
            column,
            mutator,
            arg,
        })
    }

    /// Applies the mutation to `d` (a value of column type `t`) and re-validates it.
    pub fn apply(&self, d: &mut Datum, t: &ColumnType) -> Result<()> {
        match self.mutator {
            Mutator::Insert => {
                for (i, k) in self.arg.keys().iter().enumerate() {
                    d.insert(k.clone(), self.arg.values().get(i).cloned());
                }
            }
            Mutator::Delete => {
                if self.arg.is_map() {
                    d.retain(|k, v| self.arg.get(k) != v);
                } else {
                    d.retain(|k, _| !self.arg.contains_key(k));
                }
            }
            _ => {
                let operand = self.arg.first().expect("arithmetic argument is a scalar");
                let n = d.len();
                for a in d.keys_mut().iter_mut() {
                    *a = arith(self.mutator, a, operand)?;
                }
                let sorted = Datum::set(d.keys().to_vec());
                if sorted.len() != n {
                    return Err(OvsdbError::constraint(
                        "Result of arithmetic mutation contains duplicate elements.",
                    ));
                }
                *d = sorted;
            }
        }
        d.check(t)
    }
}

/// §5.1 arithmetic on one atom: overflow is a "range error", division by zero a "domain error".
fn arith(m: Mutator, a: &Atom, b: &Atom) -> Result<Atom> {
    match (a, b) {
        (Atom::Integer(x), Atom::Integer(y)) => {
            let r = match m {
                Mutator::Add => x.checked_add(*y),
                Mutator::Sub => x.checked_sub(*y),
                Mutator::Mul => x.checked_mul(*y),
                Mutator::Div | Mutator::Mod if *y == 0 => {
                    return Err(OvsdbError::domain("Division by zero."))
                }
                Mutator::Div => x.checked_div(*y),
                Mutator::Mod => x.checked_rem(*y),
                _ => unreachable!("set mutators handled by caller"),
            };
            r.map(Atom::Integer)
                .ok_or_else(|| OvsdbError::range("Result of arithmetic mutation is out of range."))
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
            if r.is_finite() {
                Ok(Atom::Real(r))
            } else {
                Err(OvsdbError::range(
                    "Result of arithmetic mutation is out of range.",
                ))
            }
        }
        _ => Err(OvsdbError::syntax(
            "arithmetic mutation on mismatched types",
        )),
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
