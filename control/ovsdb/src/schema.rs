//! Database schemas (RFC 7047 §3.2), parsed from `.ovsschema` JSON.
//!
//! A [`DatabaseSchema`] owns its tables in name order and resolves every column name to an
//! index once, so rows are plain `Vec<Datum>`s and references to other tables are table
//! indexes. The original JSON is kept verbatim for `get_schema` (§4.1.2) and the log.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::datum::{Atom, Datum, NoNames};
use super::error::{OvsdbError, Result};

/// RFC 7047 §3.2 `<atomic-type>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicType {
    Integer,
    Real,
    Boolean,
    String,
    Uuid,
}

impl AtomicType {
    pub fn name(self) -> &'static str {
        match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        }
    }

    fn parse(v: &Value) -> Result<Self> {
        Ok(match v.as_str() {
            Some("integer") => AtomicType::Integer,
            Some("real") => AtomicType::Real,
            Some("boolean") => AtomicType::Boolean,
            Some("string") => AtomicType::String,
            Some("uuid") => AtomicType::Uuid,
            _ => return Err(OvsdbError::syntax(format!("{v}: unknown atomic type"))),
        })
    }
}

/// RFC 7047 §3.2 `refType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    Strong,
    Weak,
}

/// RFC 7047 §3.2 `<base-type>`: an atomic type plus its constraints.
#[derive(Debug, Clone)]
pub struct BaseType {
    pub atomic: AtomicType,
    /// Allowed values, sorted (`enum`).
    pub enum_values: Option<Vec<Atom>>,
    pub min_integer: Option<i64>,
    pub max_integer: Option<i64>,
    pub min_real: Option<f64>,
    pub max_real: Option<f64>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// Name of the referenced table, for uuid columns with `refTable`.
    pub ref_table: Option<String>,
    /// Index of the referenced table in [`DatabaseSchema::tables`].
    pub ref_table_index: Option<usize>,
    pub ref_type: RefType,
}

impl BaseType {
    /// The atomic type without constraints (ovsdb-types.c `ovsdb_base_type_init`).
    pub fn plain(atomic: AtomicType) -> Self {
        BaseType {
            atomic,
            enum_values: None,
            min_integer: None,
            max_integer: None,
            min_real: None,
            max_real: None,
            min_length: None,
            max_length: None,
            ref_table: None,
            ref_table_index: None,
            ref_type: RefType::Strong,
        }
    }

    fn from_json(v: &Value) -> Result<Self> {
        let Some(obj) = v.as_object() else {
            return Ok(Self::plain(AtomicType::parse(v)?));
        };
        let atomic = AtomicType::parse(obj.get("type").unwrap_or(&Value::Null))?;
        let mut b = Self::plain(atomic);
        for (k, val) in obj {
            let int = || {
                val.as_i64()
                    .ok_or_else(|| OvsdbError::syntax(format!("{k}: expected integer")))
            };
            let real = || {
                val.as_f64()
                    .ok_or_else(|| OvsdbError::syntax(format!("{k}: expected real")))
            };
            match k.as_str() {
                "type" => {}
                "enum" => {
                    let t = ColumnType {
                        key: Self::plain(atomic),
                        value: None,
                        min: 1,
                        max: usize::MAX,
                    };
                    let d = Datum::from_json_unchecked(&t, val, &mut NoNames)?;
                    b.enum_values = Some(d.keys().to_vec());
                }
                "minInteger" => b.min_integer = Some(int()?),
                "maxInteger" => b.max_integer = Some(int()?),
                "minReal" => b.min_real = Some(real()?),
                "maxReal" => b.max_real = Some(real()?),
                "minLength" => b.min_length = Some(int()? as usize),
                "maxLength" => b.max_length = Some(int()? as usize),
                "refTable" => {
                    b.ref_table = Some(
                        val.as_str()
                            .ok_or_else(|| OvsdbError::syntax("refTable: expected string"))?
                            .to_string(),
                    )
                }
                "refType" => {
                    b.ref_type = match val.as_str() {
                        Some("strong") => RefType::Strong,
                        Some("weak") => RefType::Weak,
                        _ => {
                            return Err(OvsdbError::syntax(format!(
                                "refType: {val} is not strong or weak"
                            )))
                        }
                    }
                }
                _ => {
                    return Err(OvsdbError::syntax(format!(
                        "base type: unknown member \"{k}\""
                    )))
                }
            }
        }
        if b.ref_table.is_some() && atomic != AtomicType::Uuid {
            return Err(OvsdbError::syntax(
                "refTable is only allowed on uuid base types",
            ));
        }
        Ok(b)
    }

    /// Whether this base type is a strong reference.
    pub fn is_strong_ref(&self) -> bool {
        self.ref_table_index.is_some() && self.ref_type == RefType::Strong
    }

    /// Whether this base type is a weak reference.
    pub fn is_weak_ref(&self) -> bool {
        self.ref_table_index.is_some() && self.ref_type == RefType::Weak
    }
}

/// RFC 7047 §3.2 `<type>`: key type, optional value type (maps) and element counts.
#[derive(Debug, Clone)]
pub struct ColumnType {
    pub key: BaseType,
    pub value: Option<BaseType>,
    pub min: usize,
    /// `usize::MAX` stands for `"unlimited"`.
    pub max: usize,
}

impl ColumnType {
    pub fn from_json(v: &Value) -> Result<Self> {
        let Some(obj) = v.as_object() else {
            return Ok(ColumnType {
                key: BaseType::plain(AtomicType::parse(v)?),
                value: None,
                min: 1,
                max: 1,
            });
        };
        let key = BaseType::from_json(
            obj.get("key")
                .ok_or_else(|| OvsdbError::syntax("type: missing key"))?,
        )?;
        let value = obj.get("value").map(BaseType::from_json).transpose()?;
        let min = match obj.get("min") {
            None => 1,
            Some(m) => m
                .as_u64()
                .filter(|m| *m <= 1)
                .ok_or_else(|| OvsdbError::syntax("min must be 0 or 1"))?
                as usize,
        };
        let max = match obj.get("max") {
            None => 1,
            Some(Value::String(s)) if s == "unlimited" => usize::MAX,
            Some(m) => m
                .as_u64()
                .filter(|m| *m >= 1)
                .ok_or_else(|| OvsdbError::syntax("max must be >= 1 or \"unlimited\""))?
                as usize,
        };
        if min > max {
            return Err(OvsdbError::syntax("min exceeds max"));
        }
        for k in obj.keys() {
            if !matches!(k.as_str(), "key" | "value" | "min" | "max") {
                return Err(OvsdbError::syntax(format!("type: unknown member \"{k}\"")));
            }
        }
        Ok(ColumnType {
            key,
            value,
            min,
            max,
        })
    }

    /// A scalar is exactly one atom (min = max = 1, no value type).
    pub fn is_scalar(&self) -> bool {
        self.min == 1 && self.max == 1 && self.value.is_none()
    }

    /// A set: no value type and not exactly one element (ovsdb-types.h `ovsdb_type_is_set`),
    /// so optional scalars (min 0, max 1) are sets.
    pub fn is_set(&self) -> bool {
        self.value.is_none() && !(self.min == 1 && self.max == 1)
    }

    /// A map: it has a value type (ovsdb-types.h `ovsdb_type_is_map`).
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// Zero or one atom (ovsdb-types.h `ovsdb_type_is_optional_scalar`).
    pub fn is_optional_scalar(&self) -> bool {
        self.value.is_none() && self.min == 0 && self.max == 1
    }

    /// Whether a column of this type holds more than one value (ovsdb-data.c's
    /// `ovsdb_type_is_composite`: max > 1). Only such columns carry differences in update2/3
    /// `modify`; every other column, including optional (min 0, max 1) ones, its new value.
    pub fn is_composite(&self) -> bool {
        self.max > 1
    }

    /// The type in words, as ovsdb-server writes it in messages (`ovsdb_type_to_english`).
    pub fn to_english(&self) -> String {
        let key = self.key.atomic.name();
        if self.min == 1 && self.max == 1 && self.value.is_none() {
            return key.to_string();
        }
        let mut s = String::from(if self.value.is_none() { "set" } else { "map" });
        match (self.min, self.max) {
            (0, usize::MAX) => s.push_str(" of"),
            (min, usize::MAX) => s.push_str(&format!(" of {min} or more")),
            (0, max) => s.push_str(&format!(" of up to {max}")),
            (min, max) => s.push_str(&format!(" of {min} to {max}")),
        }
        match &self.value {
            None => s.push_str(&format!(" {key}s")),
            Some(v) => s.push_str(&format!(" ({key}, {}) pairs", v.atomic.name())),
        }
        s
    }

    /// The same type with counts relaxed to 0..unlimited (condition/mutation arguments).
    pub fn relaxed(&self) -> Self {
        ColumnType {
            min: 0,
            max: usize::MAX,
            ..self.clone()
        }
    }

    /// The type of `_uuid` and `_version`.
    pub fn uuid() -> Self {
        ColumnType {
            key: BaseType::plain(AtomicType::Uuid),
            value: None,
            min: 1,
            max: 1,
        }
    }
}

/// RFC 7047 §3.2 `<column-schema>`.
#[derive(Debug, Clone)]
pub struct ColumnSchema {
    pub name: String,
    pub type_: ColumnType,
    pub ephemeral: bool,
    pub mutable: bool,
    /// Whether any side of the column holds strong references.
    pub has_strong_refs: bool,
    /// Whether any side of the column holds weak references.
    pub has_weak_refs: bool,
}

/// RFC 7047 §3.2 `<table-schema>`.
#[derive(Debug, Clone)]
pub struct TableSchema {
    pub name: String,
    /// Columns in name order; a row's `Vec<Datum>` uses the same order.
    pub columns: Vec<ColumnSchema>,
    column_index: HashMap<String, usize>,
    pub max_rows: Option<usize>,
    pub is_root: bool,
    /// Each index is a set of column indexes whose combined values must be unique.
    pub indexes: Vec<Vec<usize>>,
    /// Columns that hold references, for fast reference walking.
    pub ref_columns: Vec<usize>,
    /// Default value of every column (RFC 7047 §5.2.1), computed once.
    defaults: Vec<Datum>,
}

impl TableSchema {
    /// The index of a user column (not `_uuid`/`_version`).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.column_index.get(name).copied()
    }

    /// Default values for every column.
    pub fn default_row(&self) -> Vec<Datum> {
        self.defaults.clone()
    }

    /// Whether `d` is column `ci`'s default value (such columns are left out of logs and
    /// update2 rows).
    pub fn is_default(&self, ci: usize, d: &Datum) -> bool {
        self.defaults[ci] == *d
    }
}

/// RFC 7047 §3.2 `<database-schema>`.
#[derive(Debug, Clone)]
pub struct DatabaseSchema {
    pub name: String,
    pub version: String,
    /// Tables in name order.
    pub tables: Vec<TableSchema>,
    table_index: HashMap<String, usize>,
    /// The schema as given, returned by `get_schema`.
    pub json: Value,
}

fn is_id(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

impl DatabaseSchema {
    pub fn from_json(v: &Value) -> Result<Self> {
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("schema: expected object"))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| is_id(n))
            .ok_or_else(|| OvsdbError::syntax("schema: missing or invalid name"))?
            .to_string();
        let version = obj
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("0.0.0")
            .to_string();
        let vparts: Vec<&str> = version.split('.').collect();
        if vparts.len() != 3 || vparts.iter().any(|p| p.parse::<u32>().is_err()) {
            return Err(OvsdbError::syntax(format!(
                "schema version \"{version}\" is not x.y.z"
            )));
        }
        let tables_json = obj
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| OvsdbError::syntax("schema: missing tables"))?;
        let mut tables = Vec::new();
        for (tname, tj) in tables_json {
            tables.push(Self::table_from_json(tname, tj)?);
        }
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        // Like ovsdb-server: a schema in which no table is a root predates isRoot, and then
        // every table is a root (nothing is garbage-collected).
        if !tables.iter().any(|t| t.is_root) {
            for t in &mut tables {
                t.is_root = true;
            }
        }
        let table_index: HashMap<String, usize> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        for t in &mut tables {
            for c in &mut t.columns {
                for base in std::iter::once(&mut c.type_.key).chain(c.type_.value.as_mut()) {
                    if let Some(rt) = &base.ref_table {
                        let idx = *table_index.get(rt).ok_or_else(|| {
                            OvsdbError::syntax(format!(
                                "column {}.{} refers to unknown table {rt}",
                                t.name, c.name
                            ))
                        })?;
                        base.ref_table_index = Some(idx);
                        c.has_strong_refs |= base.ref_type == RefType::Strong;
                        c.has_weak_refs |= base.ref_type == RefType::Weak;
                    }
                }
            }
            t.ref_columns = (0..t.columns.len())
                .filter(|&i| t.columns[i].has_strong_refs || t.columns[i].has_weak_refs)
                .collect();
        }
        Ok(DatabaseSchema {
            name,
            version,
            tables,
            table_index,
            json: v.clone(),
        })
    }

    fn table_from_json(name: &str, v: &Value) -> Result<TableSchema> {
        if !is_id(name) || name.starts_with('_') {
            return Err(OvsdbError::syntax(format!(
                "\"{name}\" is not a valid table name"
            )));
        }
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax(format!("table {name}: expected object")))?;
        let cols: &Map<String, Value> = obj
            .get("columns")
            .and_then(Value::as_object)
            .ok_or_else(|| OvsdbError::syntax(format!("table {name}: missing columns")))?;
        let mut columns = Vec::new();
        for (cname, cj) in cols {
            if !is_id(cname) || cname.starts_with('_') {
                return Err(OvsdbError::syntax(format!(
                    "{name}.{cname}: invalid column name"
                )));
            }
            let cobj = cj
                .as_object()
                .ok_or_else(|| OvsdbError::syntax(format!("{name}.{cname}: expected object")))?;
            let type_ = ColumnType::from_json(
                cobj.get("type")
                    .ok_or_else(|| OvsdbError::syntax(format!("{name}.{cname}: missing type")))?,
            )
            .map_err(|e| OvsdbError::syntax(format!("{name}.{cname}: {}", e.details)))?;
            columns.push(ColumnSchema {
                name: cname.clone(),
                type_,
                ephemeral: cobj
                    .get("ephemeral")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                mutable: cobj.get("mutable").and_then(Value::as_bool).unwrap_or(true),
                has_strong_refs: false,
                has_weak_refs: false,
            });
        }
        columns.sort_by(|a, b| a.name.cmp(&b.name));
        let column_index: HashMap<String, usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let mut indexes = Vec::new();
        if let Some(ix) = obj.get("indexes") {
            for index in ix.as_array().ok_or_else(|| {
                OvsdbError::syntax(format!("table {name}: indexes must be an array"))
            })? {
                let mut cols = Vec::new();
                for c in index
                    .as_array()
                    .ok_or_else(|| OvsdbError::syntax("index must be an array of column names"))?
                {
                    let cn = c.as_str().unwrap_or_default();
                    let ci = *column_index.get(cn).ok_or_else(|| {
                        OvsdbError::syntax(format!(
                            "table {name}: index refers to unknown column {c}"
                        ))
                    })?;
                    if columns[ci].ephemeral {
                        return Err(OvsdbError::syntax(format!(
                            "table {name}: ephemeral column {cn} may not be indexed"
                        )));
                    }
                    cols.push(ci);
                }
                if cols.is_empty() {
                    return Err(OvsdbError::syntax(format!("table {name}: empty index")));
                }
                indexes.push(cols);
            }
        }
        let defaults = columns
            .iter()
            .map(|c| Datum::default_of(&c.type_))
            .collect();
        Ok(TableSchema {
            name: name.to_string(),
            defaults,
            columns,
            column_index,
            max_rows: obj
                .get("maxRows")
                .and_then(Value::as_u64)
                .map(|m| m as usize),
            // RFC 7047 §3.2: isRoot defaults to false (see the all-false rule in from_json).
            is_root: obj.get("isRoot").and_then(Value::as_bool).unwrap_or(false),
            indexes,
            ref_columns: Vec::new(),
        })
    }

    /// The index of a table by name.
    pub fn table(&self, name: &str) -> Option<usize> {
        self.table_index.get(name).copied()
    }

    /// Like [`Self::table`] but with an RFC 7047 error for unknown names.
    pub fn table_or_err(&self, name: &str) -> Result<usize> {
        self.table(name).ok_or_else(|| {
            OvsdbError::unknown_table(format!("No table named {name} in {}", self.name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_types_refs_and_indexes() {
        let s = DatabaseSchema::from_json(&json!({
            "name": "T", "version": "1.2.3",
            "tables": {
                "A": {"columns": {
                    "name": {"type": "string"},
                    "bs": {"type": {"key": {"type": "uuid", "refTable": "B"}, "min": 0, "max": "unlimited"}},
                    "w": {"type": {"key": {"type": "uuid", "refTable": "B", "refType": "weak"}, "min": 0, "max": 1}},
                    "m": {"type": {"key": "string", "value": {"type": "integer", "minInteger": 0}, "min": 0, "max": "unlimited"}}
                }, "isRoot": true, "indexes": [["name"]]},
                "B": {"columns": {"x": {"type": {"key": {"type": "string", "enum": ["set", ["p", "q"]]}}}}}
            }
        }))
        .unwrap();
        let a = &s.tables[s.table("A").unwrap()];
        assert!(a.is_root);
        assert_eq!(a.indexes, vec![vec![a.column("name").unwrap()]]);
        let bs = &a.columns[a.column("bs").unwrap()];
        assert!(bs.has_strong_refs && bs.type_.key.is_strong_ref());
        assert_eq!(bs.type_.max, usize::MAX);
        assert!(a.columns[a.column("w").unwrap()].type_.key.is_weak_ref());
        assert_eq!(a.ref_columns.len(), 2);
        let b = &s.tables[s.table("B").unwrap()];
        assert!(!b.is_root);
        let legacy = DatabaseSchema::from_json(&json!({"name": "L", "version": "1.0.0", "tables": {"A": {"columns": {}}, "B": {"columns": {}}}})).unwrap();
        assert!(
            legacy.tables.iter().all(|t| t.is_root),
            "schemas without any isRoot are all-root"
        );
        assert_eq!(
            b.columns[0].type_.key.enum_values.as_ref().unwrap().len(),
            2
        );
    }

    #[test]
    fn rejects_bad_schemas() {
        let bad_ref = json!({"name": "T", "version": "1.0.0", "tables": {"A": {"columns": {"r": {"type": {"key": {"type": "uuid", "refTable": "Z"}}}}}}});
        assert!(DatabaseSchema::from_json(&bad_ref).is_err());
        let bad_ver = json!({"name": "T", "version": "1.0", "tables": {}});
        assert!(DatabaseSchema::from_json(&bad_ver).is_err());
        let bad_type = json!({"name": "T", "version": "1.0.0", "tables": {"A": {"columns": {"r": {"type": "float"}}}}});
        assert!(DatabaseSchema::from_json(&bad_type).is_err());
    }

    #[test]
    fn ovn_schemas_parse() {
        for f in ["ovn-nb.ovsschema", "ovn-sb.ovsschema"] {
            let text =
                std::fs::read_to_string(format!("{}/schemas/{f}", env!("CARGO_MANIFEST_DIR")))
                    .unwrap();
            let s = DatabaseSchema::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
            assert!(s.table("Connection").is_some(), "{f}");
        }
    }
}
