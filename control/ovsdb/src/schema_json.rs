//! A schema as ovsdb-server writes it (ovsdb/ovsdb.c `ovsdb_schema_to_json`): rebuilt from
//! the parsed schema, leaving out what is default (`"min": 1`, `"isRoot"` when every table
//! is a root, unconstrained base types as bare type names). `get_schema` answers with it and
//! `_Server.Database.schema` holds it, so clients that compare schemas or their text see
//! what ovsdb-server would send, not our file's layout.

use serde_json::{json, Map, Value};

use super::datum::Datum;
use super::schema::{AtomicType, BaseType, ColumnType, DatabaseSchema, RefType, TableSchema};

/// lib/ovsdb-types.c `ovsdb_base_type_has_constraints`.
fn has_constraints(b: &BaseType) -> bool {
    b.enum_values.is_some()
        || b.min_integer.is_some_and(|m| m != i64::MIN)
        || b.max_integer.is_some_and(|m| m != i64::MAX)
        || b.min_real.is_some_and(|m| m != -f64::MAX)
        || b.max_real.is_some_and(|m| m != f64::MAX)
        || b.min_length.is_some_and(|m| m != 0)
        || b.max_length.is_some_and(|m| m != u32::MAX as usize)
        || b.ref_table.is_some()
}

/// lib/ovsdb-types.c `ovsdb_base_type_to_json`.
fn base_type(b: &BaseType) -> Value {
    if !has_constraints(b) {
        return json!(b.atomic.name());
    }
    let mut o = Map::new();
    o.insert("type".into(), json!(b.atomic.name()));
    if let Some(e) = &b.enum_values {
        o.insert("enum".into(), Datum::set(e.clone()).to_json());
    }
    let int = |v: Option<i64>, default: i64| v.filter(|m| *m != default).map(Value::from);
    let real = |v: Option<f64>, default: f64| v.filter(|m| *m != default).map(Value::from);
    let len = |v: Option<usize>, default: usize| v.filter(|m| *m != default).map(Value::from);
    let bounds = match b.atomic {
        AtomicType::Integer => [
            ("minInteger", int(b.min_integer, i64::MIN)),
            ("maxInteger", int(b.max_integer, i64::MAX)),
        ],
        AtomicType::Real => [
            ("minReal", real(b.min_real, -f64::MAX)),
            ("maxReal", real(b.max_real, f64::MAX)),
        ],
        AtomicType::String => [
            ("minLength", len(b.min_length, 0)),
            ("maxLength", len(b.max_length, u32::MAX as usize)),
        ],
        AtomicType::Uuid => [
            ("refTable", b.ref_table.as_ref().map(|t| json!(t))),
            (
                "refType",
                (b.ref_table.is_some() && b.ref_type == RefType::Weak).then(|| json!("weak")),
            ),
        ],
        AtomicType::Boolean => [("", None), ("", None)],
    };
    for (k, v) in bounds {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    }
    Value::Object(o)
}

/// lib/ovsdb-types.c `ovsdb_type_to_json`.
fn column_type(t: &ColumnType) -> Value {
    if t.is_scalar() && !has_constraints(&t.key) {
        return base_type(&t.key);
    }
    let mut o = Map::new();
    o.insert("key".into(), base_type(&t.key));
    if let Some(v) = &t.value {
        o.insert("value".into(), base_type(v));
    }
    if t.min != 1 {
        o.insert("min".into(), json!(t.min));
    }
    if t.max == usize::MAX {
        o.insert("max".into(), json!("unlimited"));
    } else if t.max != 1 {
        o.insert("max".into(), json!(t.max));
    }
    Value::Object(o)
}

/// ovsdb/table.c `ovsdb_table_schema_to_json`.
fn table(ts: &TableSchema, given: &Value, default_is_root: bool) -> Value {
    let mut o = Map::new();
    if given.get("mutable") == Some(&Value::Bool(false)) {
        o.insert("mutable".into(), json!(false));
    }
    if ts.is_root != default_is_root {
        o.insert("isRoot".into(), json!(ts.is_root));
    }
    let mut columns = Map::new();
    for c in &ts.columns {
        let mut col = Map::new();
        if !c.mutable {
            col.insert("mutable".into(), json!(false));
        }
        if c.ephemeral {
            col.insert("ephemeral".into(), json!(true));
        }
        col.insert("type".into(), column_type(&c.type_));
        columns.insert(c.name.clone(), Value::Object(col));
    }
    o.insert("columns".into(), Value::Object(columns));
    if let Some(m) = ts.max_rows {
        o.insert("maxRows".into(), json!(m));
    }
    if !ts.indexes.is_empty() {
        let idx: Vec<Value> = ts
            .indexes
            .iter()
            .map(|cols| {
                json!(cols
                    .iter()
                    .map(|c| &ts.columns[*c].name)
                    .collect::<Vec<_>>())
            })
            .collect();
        o.insert("indexes".into(), json!(idx));
    }
    Value::Object(o)
}

/// The schema as ovsdb-server's `get_schema` returns it.
pub fn to_json(s: &DatabaseSchema) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(s.name));
    if !s.version.is_empty() {
        o.insert("version".into(), json!(s.version));
    }
    if let Some(c) = s.json.get("cksum") {
        o.insert("cksum".into(), c.clone());
    }
    // "isRoot" postdates the first schemas: when every table is a root, it is left out.
    let default_is_root = s.tables.iter().all(|t| t.is_root);
    let tables: Map<String, Value> = s
        .tables
        .iter()
        .map(|t| {
            let given = &s.json["tables"][&t.name];
            (t.name.clone(), table(t, given, default_is_root))
        })
        .collect();
    o.insert("tables".into(), Value::Object(tables));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_left_out() {
        // Not every table is a root: only the roots say so.
        let s = DatabaseSchema::from_json(&json!({"name": "T", "version": "1.0.0", "tables": {
            "A": {"isRoot": true, "columns": {
                "s": {"type": {"key": {"type": "string"}, "min": 1, "max": 1}},
                "r": {"type": {"key": {"type": "uuid", "refTable": "B", "refType": "strong"}, "min": 0, "max": "unlimited"}},
                "e": {"type": {"key": {"type": "string", "enum": ["set", ["x"]]}}, "mutable": false}}},
            "B": {"columns": {"n": {"type": "integer"}}, "isRoot": false}}}))
        .unwrap();
        assert_eq!(
            to_json(&s),
            json!({"name": "T", "version": "1.0.0", "tables": {
                "A": {"isRoot": true, "columns": {
                    "s": {"type": "string"},
                    "r": {"type": {"key": {"type": "uuid", "refTable": "B"}, "min": 0, "max": "unlimited"}},
                    "e": {"mutable": false, "type": {"key": {"type": "string", "enum": "x"}}}}},
                "B": {"columns": {"n": {"type": "integer"}}}}})
        );
    }
}
