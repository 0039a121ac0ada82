//! [`Atom`]: one OVSDB value (RFC 7047 §5.1 `<atom>`): integer, real, boolean, string or uuid,
//! with its JSON notation, its ovsdb-server message text, its base-type constraints, and the
//! total order ovsdb-server sorts sets and maps by. Apart from [`super::Datum`] because an
//! atom knows nothing of sets, maps or counts.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use super::notation::{format_g15, real_to_json, string_needs_quotes, unwrap_json};
use super::UuidNames;
use crate::error::{OvsdbError, Result};
use crate::schema::{AtomicType, BaseType};

/// One OVSDB value (RFC 7047 §5.1 `<atom>`).
#[derive(Debug, Clone)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(Arc<str>),
    Uuid(Uuid),
}

impl Atom {
    /// Convenience constructor for string atoms.
    pub fn string(s: &str) -> Self {
        Atom::String(Arc::from(s))
    }

    /// The atomic type this atom belongs to.
    pub fn atomic_type(&self) -> AtomicType {
        match self {
            Atom::Integer(_) => AtomicType::Integer,
            Atom::Real(_) => AtomicType::Real,
            Atom::Boolean(_) => AtomicType::Boolean,
            Atom::String(_) => AtomicType::String,
            Atom::Uuid(_) => AtomicType::Uuid,
        }
    }

    /// The default atom of a type (RFC 7047 §5.2.1: columns not given on insert).
    pub fn default_of(t: AtomicType) -> Self {
        match t {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(Arc::from("")),
            AtomicType::Uuid => Atom::Uuid(Uuid::nil()),
        }
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
        }
    }

    /// RFC 7047 §5.1 JSON notation of an atom.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => real_to_json(*r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => Value::String(s.to_string()),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
        }
    }

    /// Appends the §5.1 JSON notation to `out` without building a `Value` (logs, snapshots).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        match self {
            Atom::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            Atom::Real(r) => {
                serde_json::to_writer(&mut *out, r).expect("writing to a Vec cannot fail")
            }
            Atom::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Atom::String(s) => {
                serde_json::to_writer(&mut *out, &**s).expect("writing to a Vec cannot fail")
            }
            Atom::Uuid(u) => {
                out.extend_from_slice(b"[\"uuid\",\"");
                out.extend_from_slice(
                    u.hyphenated()
                        .encode_lower(&mut Uuid::encode_buffer())
                        .as_bytes(),
                );
                out.extend_from_slice(b"\"]");
            }
        }
    }

    /// Parses an atom of atomic type `t` (no constraint checks), with ovsdb-server's errors
    /// (lib/ovsdb-data.c `ovsdb_atom_from_json__`).
    pub fn from_json(t: AtomicType, v: &Value, names: &mut dyn UuidNames) -> Result<Self> {
        let bad = || OvsdbError::syntax(format!("expected {}", t.name())).at(v);
        Ok(match t {
            AtomicType::Integer => Atom::Integer(v.as_i64().ok_or_else(bad)?),
            AtomicType::Real => Atom::Real(v.as_f64().ok_or_else(bad)?),
            AtomicType::Boolean => Atom::Boolean(v.as_bool().ok_or_else(bad)?),
            AtomicType::String => Atom::String(Arc::from(v.as_str().ok_or_else(bad)?)),
            AtomicType::Uuid => match unwrap_json(v, "uuid", "string") {
                Ok(s) => {
                    let s = s.as_str().expect("unwrapped a string");
                    Atom::Uuid(Uuid::parse_str(s).map_err(|_| {
                        OvsdbError::syntax(format!("\"{s}\" is not a valid UUID")).at(v)
                    })?)
                }
                Err(not_uuid) => match unwrap_json(v, "named-uuid", "string") {
                    Ok(n) if names.accepts_names() => {
                        Atom::Uuid(names.resolve(n.as_str().expect("unwrapped a string"))?)
                    }
                    _ => return Err(not_uuid),
                },
            },
        })
    }

    /// The atom as ovsdb-server prints it in messages (`ovsdb_atom_to_string`).
    pub fn to_ovsdb_string(&self) -> String {
        match self {
            Atom::Integer(i) => i.to_string(),
            Atom::Real(r) => format_g15(*r),
            Atom::Boolean(b) => b.to_string(),
            Atom::String(s) if string_needs_quotes(s) => Value::String(s.to_string()).to_string(),
            Atom::String(s) => s.to_string(),
            Atom::Uuid(u) => u.to_string(),
        }
    }

    /// Checks the RFC 7047 §3.2 `<base-type>` constraints: enum, integer/real range, string
    /// length. Reference existence is checked at commit, not here.
    pub fn check_constraints(&self, base: &BaseType) -> Result<()> {
        let violation = |m: String| Err(OvsdbError::constraint(m));
        if let Some(allowed) = &base.enum_values {
            if allowed.binary_search(self).is_err() {
                let list: Vec<String> = allowed.iter().map(Atom::to_ovsdb_string).collect();
                return violation(format!(
                    "{} is not one of the allowed values ([{}])",
                    self.to_ovsdb_string(),
                    list.join(", ")
                ));
            }
        }
        match self {
            Atom::Integer(i) => match (base.min_integer, base.max_integer) {
                (Some(lo), Some(hi)) if *i < lo || *i > hi => violation(format!(
                    "{i} is not in the valid range {lo} to {hi} (inclusive)"
                )),
                (Some(lo), None) if *i < lo => {
                    violation(format!("{i} is less than minimum allowed value {lo}"))
                }
                (None, Some(hi)) if *i > hi => {
                    violation(format!("{i} is greater than maximum allowed value {hi}"))
                }
                _ => Ok(()),
            },
            Atom::Real(r) => {
                let g = |x: f64| format_g15(x);
                match (base.min_real, base.max_real) {
                    (Some(lo), Some(hi)) if *r < lo || *r > hi => violation(format!(
                        "{} is not in the valid range {} to {} (inclusive)",
                        g(*r),
                        g(lo),
                        g(hi)
                    )),
                    (Some(lo), None) if *r < lo => violation(format!(
                        "{} is less than minimum allowed value {}",
                        g(*r),
                        g(lo)
                    )),
                    (None, Some(hi)) if *r > hi => violation(format!(
                        "{} is greater than maximum allowed value {}",
                        g(*r),
                        g(hi)
                    )),
                    _ => Ok(()),
                }
            }
            Atom::String(s) => {
                let n = s.chars().count();
                match (base.min_length, base.max_length) {
                    (Some(lo), _) if n < lo => violation(format!(
                        "\"{s}\" length {n} is less than minimum allowed length {lo}"
                    )),
                    (_, Some(hi)) if n > hi => violation(format!(
                        "\"{s}\" length {n} is greater than maximum allowed length {hi}"
                    )),
                    _ => Ok(()),
                }
            }
            Atom::Boolean(_) | Atom::Uuid(_) => Ok(()),
        }
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Atom {}
impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}
impl Hash for Atom {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Atom::Integer(i) => i.hash(h),
            Atom::Real(r) => r.to_bits().hash(h),
            Atom::Boolean(b) => b.hash(h),
            Atom::String(s) => s.hash(h),
            Atom::Uuid(u) => u.hash(h),
        }
    }
}
