//! Member-by-member parsing of a JSON object, as ovsdb-server parses operations
//! (lib/ovsdb-parser.c): each member is fetched with the JSON types it may have, the first
//! problem is kept as *the* error ("Parsing ovsdb operation 2 of 3 failed: ..."), and
//! members nobody asked for are an error when parsing finishes. Clients see these texts in
//! `transact` replies, so matching them is part of matching ovsdb-server's wire behaviour.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::error::OvsdbError;

/// The JSON types a member may have (lib/ovsdb-parser.h `enum ovsdb_parser_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Types(u16);

impl Types {
    pub const FALSE: Types = Types(1 << 1);
    pub const TRUE: Types = Types(1 << 2);
    pub const OBJECT: Types = Types(1 << 3);
    pub const ARRAY: Types = Types(1 << 4);
    pub const INTEGER: Types = Types(1 << 5);
    pub const REAL: Types = Types(1 << 6);
    pub const STRING: Types = Types(1 << 7);
    pub const BOOLEAN: Types = Types(Self::FALSE.0 | Self::TRUE.0);
    /// A string that is an identifier: `[A-Za-z_][A-Za-z0-9_]*`.
    pub const ID: Types = Types(1 << 9);
    pub const OPTIONAL: Types = Types(1 << 10);

    fn has(self, t: Types) -> bool {
        self.0 & t.0 != 0
    }
}

impl std::ops::BitOr for Types {
    type Output = Types;
    fn bitor(self, rhs: Types) -> Types {
        Types(self.0 | rhs.0)
    }
}

fn type_of(v: &Value) -> Types {
    match v {
        Value::Null => Types(1),
        Value::Bool(false) => Types::FALSE,
        Value::Bool(true) => Types::TRUE,
        Value::Object(_) => Types::OBJECT,
        Value::Array(_) => Types::ARRAY,
        Value::Number(n) if n.is_f64() => Types::REAL,
        Value::Number(_) => Types::INTEGER,
        Value::String(_) => Types::STRING,
    }
}

/// lib/ovsdb-parser.c `ovsdb_parser_is_id`.
pub fn is_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A JSON object being parsed (lib/ovsdb-parser.c `struct ovsdb_parser`).
pub struct Parser<'v> {
    name: String,
    json: Option<&'v Map<String, Value>>,
    raw: &'v Value,
    used: HashSet<&'v str>,
    error: Option<OvsdbError>,
}

impl<'v> Parser<'v> {
    /// Starts parsing `json`, named `name` in error texts; not an object is the first error.
    pub fn new(json: &'v Value, name: String) -> Self {
        let mut p = Parser {
            name,
            json: json.as_object(),
            raw: json,
            used: HashSet::new(),
            error: None,
        };
        if p.json.is_none() {
            p.raise("Object expected.");
        }
        p
    }

    /// The member `name` if it has one of `types`; otherwise records the error and `None`.
    pub fn member(&mut self, name: &str, types: Types) -> Option<&'v Value> {
        let obj = self.json?;
        let Some((key, value)) = obj.get_key_value(name) else {
            if !types.has(Types::OPTIONAL) {
                self.raise(&format!("Required '{name}' member is missing."));
            }
            return None;
        };
        let id = types.has(Types::ID) && value.as_str().is_some_and(is_id);
        if types.has(type_of(value)) || id {
            self.used.insert(key.as_str());
            Some(value)
        } else {
            self.raise(&format!("Type mismatch for member '{name}'."));
            None
        }
    }

    /// Records `message` as the error unless there is one already.
    pub fn raise(&mut self, message: &str) {
        if self.error.is_none() {
            let e = OvsdbError::syntax(format!("Parsing {} failed: {message}", self.name));
            self.error = Some(match self.json {
                Some(_) => e.at(self.raw),
                None => e,
            });
        }
    }

    /// The object being parsed.
    pub fn json(&self) -> &'v Value {
        self.raw
    }

    /// The error so far, if any.
    pub fn error(&self) -> Option<OvsdbError> {
        self.error.clone()
    }

    /// Ends parsing: members that were never asked for are an error, unless there is one.
    pub fn finish(mut self) -> Option<OvsdbError> {
        if self.error.is_none() {
            if let Some(obj) = self.json {
                let unused: Vec<&String> = obj
                    .keys()
                    .filter(|k| !self.used.contains(k.as_str()))
                    .collect();
                if let Some(first) = unused.first() {
                    let n = unused.len();
                    let msg = match n {
                        1 => format!("Member '{first}' is present but not allowed here."),
                        _ => format!(
                            "Member '{first}' and {} other member{} are present but not \
                             allowed here.",
                            n - 1,
                            if n > 2 { "s" } else { "" }
                        ),
                    };
                    self.raise(&msg);
                }
            }
        }
        self.error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_object_and_keep_the_first() {
        let op = json!({"op": "insert", "table": 3, "extra": 1});
        let mut p = Parser::new(&op, "ovsdb operation 1 of 1".into());
        assert!(p.member("op", Types::ID).is_some());
        assert!(p.member("table", Types::ID).is_none());
        assert!(p.member("row", Types::OBJECT).is_none());
        let e = p.finish().unwrap();
        assert_eq!(
            e.details,
            "Parsing ovsdb operation 1 of 1 failed: Type mismatch for member 'table'."
        );
        assert_eq!(e.syntax.as_deref(), Some(op.to_string().as_str()));
    }

    #[test]
    fn unused_members_are_counted() {
        let op = json!({"op": "abort", "a": 1, "b": 2});
        let mut p = Parser::new(&op, "x".into());
        p.member("op", Types::ID);
        assert_eq!(
            p.finish().unwrap().details,
            "Parsing x failed: Member 'a' and 1 other member are present but not allowed here."
        );
        let not_object = json!([1]);
        let mut p = Parser::new(&not_object, "x".into());
        assert!(p.member("op", Types::ID).is_none());
        let e = p.finish().unwrap();
        assert_eq!(e.details, "Parsing x failed: Object expected.");
        assert_eq!(e.syntax, None);
    }
}
