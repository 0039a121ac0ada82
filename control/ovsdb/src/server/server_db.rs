//! The `_Server` database (ovsdb-server(5)): one `Database` row per served database.
//!
//! ovsdb-idl clients (ovn-nbctl, ovn-northd, ovn-controller) first monitor
//! `_Server.Database` to learn whether the database they want exists, its schema, and
//! whether the server is a connected cluster leader. A standalone server reports
//! `model: standalone`, `connected: true`, `leader: true`, and no `cid`, `sid` or `index`
//! (those are a cluster's). As in ovsdb-server, `_Server` describes itself too, and its
//! schema is ovsdb/_server.ovsschema of Open vSwitch 3.1, `cksum` included. The database is
//! read-only.

use std::sync::Arc;

use serde_json::json;

use crate::database::{Changeset, Database, Row, RowChange};
use crate::datum::{Atom, Datum};
use crate::schema::DatabaseSchema;
use crate::uuidgen::new_uuid;

pub const NAME: &str = "_Server";

/// An empty `_Server` database.
pub fn new() -> Database {
    let schema = json!({
        "name": NAME,
        "version": "1.2.0",
        "cksum": "3009684573 744",
        "tables": {
            "Database": {
                "columns": {
                    "name": {"type": "string"},
                    "model": {"type": {"key": {"type": "string", "enum": ["set", ["standalone", "clustered", "relay"]]}}},
                    "connected": {"type": "boolean"},
                    "leader": {"type": "boolean"},
                    "schema": {"type": {"key": {"type": "string"}, "min": 0, "max": 1}},
                    "cid": {"type": {"key": {"type": "uuid"}, "min": 0, "max": 1}},
                    "sid": {"type": {"key": {"type": "uuid"}, "min": 0, "max": 1}},
                    "index": {"type": {"key": {"type": "integer"}, "min": 0, "max": 1}}
                },
                "isRoot": true
            }
        }
    });
    let schema = Arc::new(DatabaseSchema::from_json(&schema).expect("the _Server schema is valid"));
    let mut db = Database::new(schema.clone());
    add_row(&mut db, &schema);
    db
}

/// Adds the row describing `schema`'s database.
pub fn add_row(server: &mut Database, schema: &DatabaseSchema) {
    let t = server.schema.table("Database").expect("Database table");
    let ts = &server.schema.tables[t];
    let mut cols = ts.default_row();
    let mut set = |name: &str, d: Datum| cols[ts.column(name).expect("column")] = d;
    set("name", Datum::scalar(Atom::string(&schema.name)));
    set("model", Datum::scalar(Atom::string("standalone")));
    set("connected", Datum::scalar(Atom::Boolean(true)));
    set("leader", Datum::scalar(Atom::Boolean(true)));
    set(
        "schema",
        // ovsdb-server stores `ovsdb_schema_to_json` as compact JSON with sorted keys.
        Datum::scalar(Atom::string(&crate::error::ovs_json_string(
            &crate::schema_json::to_json(schema),
        ))),
    );
    let cs = Changeset {
        txn_id: new_uuid(),
        changes: vec![RowChange {
            table: t,
            uuid: new_uuid(),
            old: None,
            new: Some(Arc::new(Row {
                version: new_uuid(),
                cols,
            })),
        }],
    };
    server.apply(&cs);
}
