//! Converting a database to a new schema (what `ovsdb-tool convert` does).
//!
//! When the schema built into the server is newer than the one stored in a database file, the
//! rows are re-inserted, with their UUIDs, into an empty database of the new schema through an
//! ordinary transaction: columns the new schema lacks are dropped, new columns get defaults, and
//! every value, reference and index is checked as for any commit. Data that does not fit the
//! new schema is an error rather than silently lost.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::database::Database;
use super::error::{OvsdbError, Result};
use super::schema::DatabaseSchema;
use super::transaction::{execute, Outcome, TxnContext};

struct Converting;

impl TxnContext for Converting {
    fn owns_lock(&self, _: &str) -> bool {
        false
    }
    fn durable(&self) -> bool {
        true
    }
    fn wait_expired(&self) -> bool {
        true
    }
}

/// A copy of `old`'s contents under `schema`.
pub fn convert(old: &Database, schema: Arc<DatabaseSchema>) -> Result<Database> {
    let mut db = Database::new(schema.clone());
    let mut ops = Vec::new();
    for (ots, table) in old.schema.tables.iter().zip(&old.tables) {
        let Some(t) = schema.table(&ots.name) else {
            continue;
        };
        let nts = &schema.tables[t];
        for (uuid, row) in &table.rows {
            let mut cols = Map::new();
            for (c, d) in ots.columns.iter().zip(&row.cols) {
                if nts.column(&c.name).is_some()
                    && !ots.is_default(ots.column(&c.name).expect("own column"), d)
                {
                    cols.insert(c.name.clone(), d.to_json());
                }
            }
            ops.push(json!({"op": "insert", "table": ots.name, "uuid": uuid.to_string(), "row": Value::Object(cols)}));
        }
    }
    match execute(&db, &ops, &Converting) {
        Outcome::Done {
            changes: Some(cs), ..
        } => db.apply(&cs),
        Outcome::Done {
            results,
            changes: None,
        } => {
            let failure = results.0.into_iter().find_map(|r| match r {
                super::transaction::OpResult::Error(e) => Some(e),
                _ => None,
            });
            if let Some(e) = failure {
                return Err(OvsdbError {
                    details: format!(
                        "cannot convert {} {} to {}: {}",
                        old.schema.name, old.schema.version, schema.version, e.details
                    ),
                    ..e
                });
            }
        }
        Outcome::Blocked { .. } => unreachable!("conversion has no wait operations"),
    }
    db.last_txn_id = old.last_txn_id;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::execute;

    fn schema(v: Value) -> Arc<DatabaseSchema> {
        Arc::new(DatabaseSchema::from_json(&v).unwrap())
    }

    #[test]
    fn keeps_rows_and_uuids_drops_removed_columns() {
        let v1 = schema(json!({"name": "T", "version": "1.0.0", "tables": {
            "A": {"isRoot": true, "columns": {"name": {"type": "string"}, "old": {"type": "integer"}}}}}));
        let v2 = schema(json!({"name": "T", "version": "1.1.0", "tables": {
            "A": {"isRoot": true, "columns": {"name": {"type": "string"}, "new": {"type": {"key": "string", "min": 0, "max": 1}}}}}}));
        let mut db = Database::new(v1);
        let ops = json!([{"op": "insert", "table": "A", "row": {"name": "x", "old": 5}}]);
        let Outcome::Done {
            changes: Some(cs), ..
        } = execute(&db, ops.as_array().unwrap(), &Converting)
        else {
            panic!()
        };
        db.apply(&cs);
        let uuid = *db.tables[0].rows.keys().next().unwrap();
        let new = convert(&db, v2).unwrap();
        let row = &new.tables[0].rows[&uuid];
        assert_eq!(new.schema.version, "1.1.0");
        assert_eq!(
            row.cols[new.schema.tables[0].column("name").unwrap()]
                .first()
                .unwrap()
                .as_str(),
            Some("x")
        );
    }

    #[test]
    fn data_that_does_not_fit_is_an_error() {
        let v1 = schema(
            json!({"name": "T", "version": "1.0.0", "tables": {"A": {"isRoot": true, "columns": {"s": {"type": "string"}}}}}),
        );
        let v2 = schema(
            json!({"name": "T", "version": "2.0.0", "tables": {"A": {"isRoot": true, "columns": {"s": {"type": {"key": {"type": "string", "maxLength": 1}}}}}}}),
        );
        let mut db = Database::new(v1);
        let ops = json!([{"op": "insert", "table": "A", "row": {"s": "too long"}}]);
        let Outcome::Done {
            changes: Some(cs), ..
        } = execute(&db, ops.as_array().unwrap(), &Converting)
        else {
            panic!()
        };
        db.apply(&cs);
        assert_eq!(convert(&db, v2).unwrap_err().tag, "constraint violation");
    }
}
