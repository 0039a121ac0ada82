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
    // A schema as served: ovsdb-server re-serializes it (`ovsdb_schema_to_json` leaves out
    // defaults such as `"isRoot": false`), we send the file's JSON; both carry the same
    // name, version, cksum, tables and columns.
    for db in ["Kinds", "_Server"] {
        let (a, b) = (
            answer(real.port, "get_schema", &json!([db, "extra"])),
            answer(port, "get_schema", &json!([db, "extra"])),
        );
        for key in ["name", "version", "cksum"] {
            assert_eq!(a["result"][key], b["result"][key], "{db} {key}");
        }
        let columns = |s: &Value| -> Vec<(String, Vec<String>)> {
            s["result"]["tables"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(t, ts)| {
                    (
                        t.clone(),
                        ts["columns"].as_object().unwrap().keys().cloned().collect(),
                    )
                })
                .collect()
        };
        assert_eq!(columns(&a), columns(&b), "{db}");
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
    // The schema column holds each database's schema, cksum included.
    let schemas = |port: u16| {
        let r = RawConn::connect(port).call(
            "transact",
            json!(["_Server", {"op": "select", "table": "Database", "where": [], "columns": ["name", "schema"]}]),
        );
        let mut out: Vec<(String, Value)> = r["result"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let text = row["schema"].as_str().unwrap();
                (
                    row["name"].as_str().unwrap().to_string(),
                    serde_json::from_str(text).unwrap(),
                )
            })
            .collect();
        out.sort_by(|x, y| x.0.cmp(&y.0));
        out
    };
    let (sa, sb) = (schemas(real.port), schemas(port));
    for ((na, a), (nb, b)) in sa.iter().zip(&sb) {
        assert_eq!(na, nb);
        assert_eq!(a["cksum"], b["cksum"], "{na}");
        assert_eq!(a["version"], b["version"], "{na}");
        let tables = |s: &Value| {
            s["tables"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(tables(a), tables(b), "{na}");
    }
}
