//! Upgrades: a database file written with an older NB schema is converted to the built-in one
//! at start-up, keeping its rows and their UUIDs.

mod common;

use std::sync::Arc;

use common::RawConn;
use ovsdb::schema::DatabaseSchema;
use ovsdb::storage::{CompactionPolicy, Log};
use ovsdb::transaction::{execute, Outcome, TxnContext};
use serde_json::{json, Value};

struct Ctx;
impl TxnContext for Ctx {
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

#[test]
fn older_schema_file_is_converted_at_start() {
    let mut old: Value = serde_json::from_str(ovsdb::schemas::OVN_NB).unwrap();
    old["version"] = json!("6.0.0");
    old["tables"]["Logical_Switch"]["columns"]
        .as_object_mut()
        .unwrap()
        .remove("other_config");
    let schema = Arc::new(DatabaseSchema::from_json(&old).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut db) = Log::create(
        &dir.path().join("OVN_Northbound.db"),
        schema,
        CompactionPolicy::default(),
    )
    .unwrap();
    let ops = json!([{"op": "insert", "table": "Logical_Switch", "row": {"name": "legacy"}}]);
    let Outcome::Done {
        changes: Some(cs), ..
    } = execute(&db, ops.as_array().unwrap(), &Ctx)
    else {
        panic!("insert failed")
    };
    log.append(&db.schema.clone(), &cs).unwrap();
    db.apply(&cs);
    let uuid = cs.changes[0].uuid;
    drop(log);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = ovsdb::db::DbServerConfig {
        nb_remotes: vec!["ptcp:0:127.0.0.1".parse().unwrap()],
        sb_remotes: vec!["ptcp:0:127.0.0.1".parse().unwrap()],
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let running = rt.block_on(ovsdb::db::start(&cfg)).unwrap();
    let ovsdb::server::Remote::Tcp(addr) = &running.nb_remotes[0] else {
        unreachable!()
    };
    let mut c = RawConn::connect(addr.port());
    let schema = c.call("get_schema", json!(["OVN_Northbound"]));
    assert_eq!(
        schema["result"]["version"],
        json!(serde_json::from_str::<Value>(ovsdb::schemas::OVN_NB).unwrap()["version"])
    );
    let r = c.call("transact", json!(["OVN_Northbound", {"op": "select", "table": "Logical_Switch", "where": [], "columns": ["_uuid", "name", "other_config"]}]));
    assert_eq!(
        r["result"][0]["rows"],
        json!([{"_uuid": ["uuid", uuid.to_string()], "name": "legacy", "other_config": ["map", []]}])
    );
}
