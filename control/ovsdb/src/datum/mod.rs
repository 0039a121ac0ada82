//! Atoms and datums: OVSDB values and their RFC 7047 §5.1 JSON notation.
//!
//! An [`Atom`] is one integer, real, boolean, string or uuid. A [`Datum`] is what a column holds:
//! a sorted, duplicate-free set of atoms, or a map from key atoms to value atoms (scalars are
//! one-element sets). Datums are parsed from JSON against a [`ColumnType`], which is where
//! `["uuid", ..]`, `["named-uuid", ..]`, `["set", [..]]` and `["map", [..]]` are understood and
//! where base-type constraints (enum, ranges, lengths) and counts (min/max) are enforced.//!
//! [`Atom`] lives in `atom`, and the exact text forms ovsdb-server gives values (reals as
//! `%.15g`, quoting, type names) in `notation`; this module holds [`Datum`] and the named-uuid
//! resolution both use.

mod atom;
mod notation;

pub use atom::Atom;
pub use notation::format_g15;

use serde_json::{json, Value};
use uuid::Uuid;

use super::error::{OvsdbError, Result};
use super::schema::{BaseType, ColumnType};
use notation::unwrap_json;

/// Resolves `["named-uuid", name]` (RFC 7047 §5.1) inside a transaction.
pub trait UuidNames {
    fn resolve(&mut self, name: &str) -> Result<Uuid>;
    /// Whether `named-uuid` is accepted at all (ovsdb-server parses it only with a symbol
    /// table; elsewhere `["named-uuid", ..]` is an error about the `"uuid"` form).
    fn accepts_names(&self) -> bool {
        true
    }
}

/// A resolver for contexts where named uuids are not allowed (monitor conditions, logs).
pub struct NoNames;
impl UuidNames for NoNames {
    fn resolve(&mut self, name: &str) -> Result<Uuid> {
        Err(OvsdbError::syntax(format!(
            "named-uuid \"{name}\" is not allowed here"
        )))
    }
    fn accepts_names(&self) -> bool {
        false
    }
}

/// The value of one column (RFC 7047 §5.1 `<value>`): a sorted set, or a map when `values`
/// is present (then `keys[i] -> values[i]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Datum {
    keys: Vec<Atom>,
    values: Option<Vec<Atom>>,
}

impl Datum {
    /// The empty set.
    pub fn empty_set() -> Self {
        Datum {
            keys: Vec::new(),
            values: None,
        }
    }

    /// The empty map.
    pub fn empty_map() -> Self {
        Datum {
            keys: Vec::new(),
            values: Some(Vec::new()),
        }
    }

    /// A one-element set.
    pub fn scalar(a: Atom) -> Self {
        Datum {
            keys: vec![a],
            values: None,
        }
    }

    /// A set built from arbitrary atoms (sorted, duplicates removed).
    pub fn set(mut atoms: Vec<Atom>) -> Self {
        atoms.sort();
        atoms.dedup();
        Datum {
            keys: atoms,
            values: None,
        }
    }

    /// A map built from pairs; the last value wins for duplicate keys.
    pub fn map(mut pairs: Vec<(Atom, Atom)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut keys: Vec<Atom> = Vec::with_capacity(pairs.len());
        let mut values: Vec<Atom> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            if keys.last() == Some(&k) {
                *values.last_mut().expect("parallel") = v;
            } else {
                keys.push(k);
                values.push(v);
            }
        }
        Datum {
            keys,
            values: Some(values),
        }
    }

    /// The default value of a column type (RFC 7047 §5.2.1).
    pub fn default_of(t: &ColumnType) -> Self {
        let keys = if t.min == 0 {
            Vec::new()
        } else {
            vec![Atom::default_of(t.key.atomic)]
        };
        let values = t.value.as_ref().map(|v| {
            if t.min == 0 {
                Vec::new()
            } else {
                vec![Atom::default_of(v.atomic)]
            }
        });
        Datum { keys, values }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn is_map(&self) -> bool {
        self.values.is_some()
    }

    /// The keys (the elements, for a set).
    pub fn keys(&self) -> &[Atom] {
        &self.keys
    }

    /// The values of a map (empty for a set).
    pub fn values(&self) -> &[Atom] {
        self.values.as_deref().unwrap_or(&[])
    }

    /// Iterates a map's pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&Atom, &Atom)> {
        self.keys.iter().zip(self.values())
    }

    /// The first key, for scalar columns.
    pub fn first(&self) -> Option<&Atom> {
        self.keys.first()
    }

    pub fn contains_key(&self, a: &Atom) -> bool {
        self.keys.binary_search(a).is_ok()
    }

    /// The value for `key` in a map.
    pub fn get(&self, key: &Atom) -> Option<&Atom> {
        let i = self.keys.binary_search(key).ok()?;
        self.values.as_ref().map(|v| &v[i])
    }

    /// All uuid atoms of the key side and of the value side.
    pub fn uuids(
        &self,
    ) -> (
        impl Iterator<Item = Uuid> + '_,
        impl Iterator<Item = Uuid> + '_,
    ) {
        (
            self.keys.iter().filter_map(Atom::as_uuid),
            self.values().iter().filter_map(Atom::as_uuid),
        )
    }

    /// RFC 7047 §5.1: a datum includes another if every element (pair, for maps) of `other`
    /// is in `self`.
    pub fn includes(&self, other: &Datum) -> bool {
        if self.is_map() {
            other.pairs().all(|(k, v)| self.get(k) == Some(v))
        } else {
            other.keys.iter().all(|k| self.contains_key(k))
        }
    }

    /// RFC 7047 §5.1: no element (pair, for maps) of `other` is in `self`.
    pub fn excludes(&self, other: &Datum) -> bool {
        if self.is_map() {
            other.pairs().all(|(k, v)| self.get(k) != Some(v))
        } else {
            other.keys.iter().all(|k| !self.contains_key(k))
        }
    }

    /// Keeps only the elements (or pairs) for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Atom, Option<&Atom>) -> bool) {
        match &mut self.values {
            None => self.keys.retain(|k| keep(k, None)),
            Some(values) => {
                let mut i = 0;
                while i < self.keys.len() {
                    if keep(&self.keys[i], Some(&values[i])) {
                        i += 1;
                    } else {
                        self.keys.remove(i);
                        values.remove(i);
                    }
                }
            }
        }
    }

    /// Inserts an element (set) or pair (map); for maps an existing key keeps its value
    /// (RFC 7047 §5.1 "insert" mutator). Returns whether something was added.
    pub fn insert(&mut self, k: Atom, v: Option<Atom>) -> bool {
        match self.keys.binary_search(&k) {
            Ok(_) => false,
            Err(i) => {
                self.keys.insert(i, k);
                if let (Some(values), Some(v)) = (&mut self.values, v) {
                    values.insert(i, v);
                }
                true
            }
        }
    }

    /// Replaces the atoms of a set (used by arithmetic mutators); the caller re-sorts.
    pub(crate) fn keys_mut(&mut self) -> &mut Vec<Atom> {
        &mut self.keys
    }

    /// RFC 7047 §5.1 JSON notation: a bare atom for one-element sets, `["set", [..]]` otherwise,
    /// `["map", [[k, v], ..]]` for maps.
    pub fn to_json(&self) -> Value {
        match &self.values {
            Some(values) => Value::Array(vec![
                json!("map"),
                Value::Array(
                    self.keys
                        .iter()
                        .zip(values)
                        .map(|(k, v)| Value::Array(vec![k.to_json(), v.to_json()]))
                        .collect(),
                ),
            ]),
            None if self.keys.len() == 1 => self.keys[0].to_json(),
            None => Value::Array(vec![
                json!("set"),
                Value::Array(self.keys.iter().map(Atom::to_json).collect()),
            ]),
        }
    }

    /// Appends the same JSON as [`Datum::to_json`] to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match &self.values {
            Some(values) => {
                out.extend_from_slice(b"[\"map\",[");
                for (i, (k, v)) in self.keys.iter().zip(values).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    k.write_json(out);
                    out.push(b',');
                    v.write_json(out);
                    out.push(b']');
                }
                out.extend_from_slice(b"]]");
            }
            None if self.keys.len() == 1 => self.keys[0].write_json(out),
            None => {
                out.extend_from_slice(b"[\"set\",[");
                for (i, k) in self.keys.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    k.write_json(out);
                }
                out.extend_from_slice(b"]]");
            }
        }
    }

    /// Parses a datum of column type `t`, enforcing base constraints and the min/max counts.
    pub fn from_json(t: &ColumnType, v: &Value, names: &mut dyn UuidNames) -> Result<Self> {
        Self::parse(t, v, names, true)
    }

    /// Parses a datum of type `t` without checking constraints or counts (for condition and
    /// mutation arguments, RFC 7047 §5.1, whose counts are relaxed).
    pub fn from_json_unchecked(
        t: &ColumnType,
        v: &Value,
        names: &mut dyn UuidNames,
    ) -> Result<Self> {
        Self::parse(t, v, names, false)
    }

    /// RFC 7047 §5.1 `<value>`, checked in ovsdb-server's order and with its errors
    /// (lib/ovsdb-data.c `ovsdb_datum_from_json`): the `["set"|"map", [...]]` wrapper, the
    /// number of members as written, then each atom (syntax, then constraints), then
    /// duplicates.
    fn parse(t: &ColumnType, v: &Value, names: &mut dyn UuidNames, checked: bool) -> Result<Self> {
        let atom = |base: &BaseType, v: &Value, names: &mut dyn UuidNames| -> Result<Atom> {
            let a = Atom::from_json(base.atomic, v, names)?;
            if checked {
                a.check_constraints(base)?;
            }
            Ok(a)
        };
        let tagged_set = matches!(v.as_array().map(Vec::as_slice),
            Some([Value::String(s), ..]) if s == "set");
        if t.value.is_none() && !tagged_set {
            return Ok(Datum::scalar(atom(&t.key, v, names)?));
        }
        let class = if t.value.is_some() { "map" } else { "set" };
        let inner = unwrap_json(v, class, "array")?
            .as_array()
            .expect("unwrapped an array");
        let n = inner.len();
        if checked && (n < t.min || n > t.max) {
            return Err(OvsdbError::syntax(if t.min == 1 && t.max == 1 {
                format!("{class} must have exactly one member but {n} are present")
            } else {
                format!(
                    "{class} must have {} to {} members but {n} are present",
                    t.min,
                    if t.max == usize::MAX {
                        u32::MAX as usize
                    } else {
                        t.max
                    }
                )
            })
            .at(v));
        }
        let d = match &t.value {
            Some(vt) => {
                let mut pairs = Vec::with_capacity(n);
                for p in inner {
                    let [k, val] = p.as_array().map(Vec::as_slice).unwrap_or_default() else {
                        return Err(OvsdbError::syntax("expected 2-element array").at(p));
                    };
                    let k = atom(&t.key, k, names)?;
                    pairs.push((k, atom(vt, val, names)?));
                }
                let d = Datum::map(pairs);
                if d.len() != n {
                    return Err(OvsdbError::untagged("map contains duplicate key"));
                }
                d
            }
            None => {
                let atoms = inner
                    .iter()
                    .map(|a| atom(&t.key, a, names))
                    .collect::<Result<Vec<_>>>()?;
                let d = Datum::set(atoms);
                if d.len() != n {
                    return Err(OvsdbError::untagged("set contains duplicate"));
                }
                d
            }
        };
        Ok(d)
    }

    /// The datum as ovsdb-server prints it in messages (lib/ovsdb-data.c
    /// `ovsdb_datum_to_string`): brackets (braces for maps) unless the column holds at most
    /// one value and has one.
    pub fn to_ovsdb_string(&self, t: &ColumnType) -> String {
        let bracket = t.max > 1 || self.is_empty();
        let (open, close) = if t.is_map() { ("{", "}") } else { ("[", "]") };
        let items: Vec<String> = (0..self.len())
            .map(|i| match self.values.as_ref() {
                Some(v) => format!(
                    "{}={}",
                    self.keys[i].to_ovsdb_string(),
                    v[i].to_ovsdb_string()
                ),
                None => self.keys[i].to_ovsdb_string(),
            })
            .collect();
        match bracket {
            true => format!("{open}{}{close}", items.join(", ")),
            false => items.join(", "),
        }
    }

    /// Checks the datum against its column type: element count and base-type constraints.
    /// A count outside the type's range is reported as ovsdb-server's mutations report it
    /// (ovsdb/mutation.c `ovsdb_mutation_check_count`).
    pub fn check(&self, t: &ColumnType) -> Result<()> {
        if self.len() < t.min || self.len() > t.max {
            return Err(OvsdbError::constraint(format!(
                "Attempted to store {} elements in {}.",
                self.len(),
                t.to_english()
            )));
        }
        for k in &self.keys {
            k.check_constraints(&t.key)?;
        }
        if let Some(vt) = &t.value {
            for v in self.values() {
                v.check_constraints(vt)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnType;

    fn ct(v: Value) -> ColumnType {
        ColumnType::from_json(&v).unwrap()
    }

    #[test]
    fn scalar_set_map_round_trip() {
        let t = ct(json!({"key": "string", "min": 0, "max": "unlimited"}));
        let d = Datum::from_json(&t, &json!(["set", ["b", "a"]]), &mut NoNames).unwrap();
        assert_eq!(d.to_json(), json!(["set", ["a", "b"]]));
        let one = Datum::from_json(&t, &json!("x"), &mut NoNames).unwrap();
        assert_eq!(one.to_json(), json!("x"));
        let m = ct(json!({"key": "string", "value": "integer", "min": 0, "max": "unlimited"}));
        let d = Datum::from_json(&m, &json!(["map", [["z", 1], ["a", 2]]]), &mut NoNames).unwrap();
        assert_eq!(d.to_json(), json!(["map", [["a", 2], ["z", 1]]]));
        assert_eq!(d.get(&Atom::string("z")), Some(&Atom::Integer(1)));
    }

    #[test]
    fn uuid_notation() {
        let t = ct(json!("uuid"));
        let u = "36bb0a6e-5f6c-4c8e-9d6b-7b59e3a2f0c1";
        let d = Datum::from_json(&t, &json!(["uuid", u]), &mut NoNames).unwrap();
        assert_eq!(d.to_json(), json!(["uuid", u]));
        let e = Datum::from_json(&t, &json!(["named-uuid", "x"]), &mut NoNames).unwrap_err();
        assert_eq!(e.tag, "syntax error");
    }

    #[test]
    fn constraints_are_enforced() {
        let t = ct(json!({"key": {"type": "integer", "minInteger": 1, "maxInteger": 10}}));
        assert!(Datum::from_json(&t, &json!(5), &mut NoNames).is_ok());
        assert_eq!(
            Datum::from_json(&t, &json!(11), &mut NoNames)
                .unwrap_err()
                .tag,
            "constraint violation"
        );
        let e = ct(json!({"key": {"type": "string", "enum": ["set", ["allow", "drop"]]}}));
        assert!(Datum::from_json(&e, &json!("drop"), &mut NoNames).is_ok());
        assert_eq!(
            Datum::from_json(&e, &json!("nope"), &mut NoNames)
                .unwrap_err()
                .tag,
            "constraint violation"
        );
        let l = ct(json!({"key": {"type": "string", "maxLength": 3}}));
        assert!(Datum::from_json(&l, &json!("abcd"), &mut NoNames).is_err());
        let opt = ct(json!({"key": "string", "min": 0, "max": 1}));
        assert!(Datum::from_json(&opt, &json!(["set", ["a", "b"]]), &mut NoNames).is_err());
        assert!(Datum::from_json(&opt, &json!(["set", []]), &mut NoNames).is_ok());
        let dup = ct(json!({"key": "string", "min": 0, "max": "unlimited"}));
        assert!(Datum::from_json(&dup, &json!(["set", ["a", "a"]]), &mut NoNames).is_err());
        assert_eq!(
            Datum::from_json(&dup, &json!(1), &mut NoNames)
                .unwrap_err()
                .tag,
            "syntax error"
        );
    }

    #[test]
    fn streamed_json_matches_value_json() {
        let u = Uuid::parse_str("36bb0a6e-5f6c-4c8e-9d6b-7b59e3a2f0c1").unwrap();
        for d in [
            Datum::scalar(Atom::Integer(-5)),
            Datum::scalar(Atom::Real(1.5)),
            Datum::scalar(Atom::Boolean(true)),
            Datum::scalar(Atom::string("a \"quoted\"\n")),
            Datum::set(vec![Atom::Uuid(u), Atom::Uuid(Uuid::nil())]),
            Datum::empty_set(),
            Datum::map(vec![
                (Atom::string("k"), Atom::Uuid(u)),
                (Atom::string("j"), Atom::string("v")),
            ]),
        ] {
            let mut out = Vec::new();
            d.write_json(&mut out);
            assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), d.to_json());
        }
    }

    proptest::proptest! {
        /// JSON notation round-trips for sets and maps, through both writers.
        #[test]
        fn json_round_trip(keys in proptest::collection::btree_set(".{0,8}", 0..5), ints in proptest::collection::vec(proptest::num::i64::ANY, 0..5)) {
            let st = ColumnType::from_json(&json!({"key": "string", "min": 0, "max": "unlimited"})).unwrap();
            let d = Datum::set(keys.iter().map(|k| Atom::string(k)).collect());
            proptest::prop_assert_eq!(&Datum::from_json(&st, &d.to_json(), &mut NoNames).unwrap(), &d);
            let mut out = Vec::new();
            d.write_json(&mut out);
            proptest::prop_assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), d.to_json());
            let mt = ColumnType::from_json(&json!({"key": "string", "value": "integer", "min": 0, "max": "unlimited"})).unwrap();
            let m = Datum::map(keys.iter().cloned().zip(ints).map(|(k, i)| (Atom::string(&k), Atom::Integer(i))).collect());
            proptest::prop_assert_eq!(&Datum::from_json(&mt, &m.to_json(), &mut NoNames).unwrap(), &m);
        }
    }

    #[test]
    fn includes_and_excludes() {
        let a = Datum::set(vec![Atom::Integer(1), Atom::Integer(2)]);
        assert!(a.includes(&Datum::scalar(Atom::Integer(1))));
        assert!(!a.includes(&Datum::scalar(Atom::Integer(3))));
        assert!(a.excludes(&Datum::scalar(Atom::Integer(3))));
        let m = Datum::map(vec![(Atom::string("k"), Atom::string("v"))]);
        assert!(m.includes(&Datum::map(vec![(Atom::string("k"), Atom::string("v"))])));
        assert!(m.excludes(&Datum::map(vec![(Atom::string("k"), Atom::string("w"))])));
    }
}
