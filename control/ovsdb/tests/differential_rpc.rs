//! Differential tests of the JSON-RPC layer against the real `ovsdb-server`: requests whose
//! `params` are not an array, or have the wrong number or kind of members, get the same
//! answer from both servers (the same error object, or the same closed connection); the
//! `_Server` database describes the same databases, itself included; `get_schema` returns
//! the same schemas, `cksum` included.

mod common;

use std::path::{Path, PathBuf};

use common::{RawConn, RealOvsdb};
use ovsdb::server::{Listener, OvsdbServer, Remote, ServerConfig};
use ovsdb::Database;
use serde_json::{json, Value};

fn schema_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/column-kinds.ovsschema")
}

/// Our server serving the column-kinds schema, in-process.
fn ours() -> (tokio::runtime::Runtime, OvsdbServer, u16) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let text = std::fs::read_to_string(schema_file()).unwrap();
    let schema = ovsdb::schemas::parse(&text).unwrap();
    let server = OvsdbServer::new(ServerConfig::default());
    server
        .add_database(Database::new(std::sync::Arc::new(schema)), None)
        .unwrap();
    let Remote::Tcp(addr) = rt
        .block_on(async {
            let listener = Listener::bind(&"ptcp:0:127.0.0.1".parse().unwrap())?;
            server.serve_on(listener)
        })
        .unwrap()
    else {
        unreachable!()
    };
    (rt, server, addr.port())
}

/// The reply to one raw request on a fresh connection, or `"closed"` when the server ends
/// the connection instead of answering.
fn answer(port: u16, method: &str, params: &Value) -> Value {
    let mut c = RawConn::connect(port);
    c.send_raw(
        json!({"method": method, "params": params, "id": 7})
            .to_string()
            .as_bytes(),
    );
    c.recv().unwrap_or_else(|| json!("closed"))
}

#[test]
fn bad_params_get_ovsdb_servers_answers() {
    let real = RealOvsdb::start_files(&[schema_file()]);
    let (_rt, _server, port) = ours();
    let cases = [
        ("echo", json!("x")),
        ("echo", json!({})),
        ("echo", json!([])),
        ("echo", json!([1, [2], {"a": 3}])),
        ("transact", json!("Kinds")),
        ("transact", json!([])),
        ("transact", json!([5])),
        ("transact", json!(["Nope"])),
        ("transact", json!(["Kinds"])),
        ("transact", json!(["Kinds", 5])),
        (
            "transact",
            json!(["_Server", {"op": "delete", "table": "Database", "where": []}]),
        ),
        ("list_dbs", json!({})),
        ("list_dbs", json!(["ignored"])),
        ("get_schema", json!([])),
        ("get_schema", json!([5])),
        ("get_schema", json!(["Nope"])),
        // Schemas as ovsdb_schema_to_json writes them, cksum included.
        ("get_schema", json!(["Kinds", "extra"])),
        ("get_schema", json!(["_Server"])),
        ("monitor", json!([])),
        ("monitor", json!([5, null, {}])),
        ("monitor", json!(["Nope", null, {}])),
        ("monitor", json!(["Kinds", null, 5])),
        ("monitor_cond", json!(["Kinds", null, {}, 5])),
        ("monitor_cond", json!(["Kinds", null])),
        ("monitor_cond_since", json!(["Kinds", null, {}])),
        ("monitor_cond_since", json!(["Kinds", null, {}, "x", 1])),
        ("monitor_cond_change", json!([])),
        ("monitor_cond_change", json!([1, 2])),
        ("monitor_cancel", json!([])),
        ("monitor_cancel", json!([1, 2])),
        ("monitor_cancel", json!(["nobody"])),
        ("lock", json!([])),
        ("lock", json!([1])),
        ("lock", json!(["a", "b"])),
        ("lock", json!(["not an id"])),
        ("lock", json!("a")),
        ("steal", json!([])),
        ("unlock", json!([])),
        ("set_db_change_aware", json!([])),
        ("set_db_change_aware", json!([1])),
        ("set_db_change_aware", json!([true, false])),
        ("set_db_change_aware", json!([true])),
        ("no_such_method", json!([])),
        ("no_such_method", json!(5)),
    ];
    for (method, params) in &cases {
        let (a, b) = (
            answer(real.port, method, params),
            answer(port, method, params),
        );
        assert_eq!(a, b, "{method} {params}");
    }
    // get_server_id: a UUID, the same for every session of one server.
    for p in [real.port, port] {
        let id = answer(p, "get_server_id", &json!([]))["result"].clone();
        assert!(
            uuid::Uuid::parse_str(id.as_str().unwrap_or("")).is_ok(),
            "{id}"
        );
        assert_eq!(answer(p, "get_server_id", &json!([1]))["result"], id);
    }
    // Both servers are still up.
    assert_eq!(answer(real.port, "echo", &json!([1]))["result"], json!([1]));
    assert_eq!(answer(port, "echo", &json!([1]))["result"], json!([1]));
}

/// ovsdb-server(5) `_Server.Database` on a standalone server: a row per database, its own
/// included, connected leaders with no cluster ids.
#[test]
fn server_database_describes_every_database() {
    let real = RealOvsdb::start_files(&[schema_file()]);
    let (_rt, _server, port) = ours();
    let select = json!(["_Server", {"op": "select", "table": "Database", "where": [],
        "columns": ["name", "model", "connected", "leader", "cid", "sid", "index"]}]);
    let rows = |port: u16| {
        let r = RawConn::connect(port).call("transact", select.clone());
        let mut rows = r["result"][0]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        rows.sort_by_key(|r| r["name"].to_string());
        rows
    };
    let (a, b) = (rows(real.port), rows(port));
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a, b);
    // The schema column holds each database's schema as ovsdb-server writes it.
    let schemas = |port: u16| {
        let r = RawConn::connect(port).call(
            "transact",
            json!(["_Server", {"op": "select", "table": "Database", "where": [], "columns": ["name", "schema"]}]),
        );
        let mut rows = r["result"][0]["rows"].as_array().cloned().unwrap();
        rows.sort_by_key(|r| r["name"].to_string());
        rows
    };
    assert_eq!(schemas(real.port), schemas(port));
}

/// OVN's schemas use every kind of type and constraint: `get_schema` for both gives what
/// ovsdb-server gives.
#[test]
fn ovn_schemas_are_served_as_ovsdb_server_serves_them() {
    let real = RealOvsdb::start(&["ovn-nb.ovsschema", "ovn-sb.ovsschema"]);
    let ours = common::OurServer::start(ServerConfig::default());
    let sb_port = match &ours.running.sb_remotes[0] {
        Remote::Tcp(a) => a.port(),
        Remote::Unix(_) => unreachable!(),
    };
    for (db, port) in [
        ("OVN_Northbound", ours.nb_port()),
        ("OVN_Southbound", sb_port),
    ] {
        let a = answer(real.port, "get_schema", &json!([db]));
        // A schema with tables of ours (the southbound's typed intent)
        // has no OVN checksum; OVN's own has one, served as it is.
        if db == "OVN_Northbound" {
            assert!(a["result"]["cksum"].is_string(), "{db}: {a}");
        }
        assert_eq!(a, answer(port, "get_schema", &json!([db])), "{db}");
    }
}
