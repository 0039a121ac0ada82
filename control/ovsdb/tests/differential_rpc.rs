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

/// Sends one request on `c` and returns its reply and the `update3` notifications that arrive
/// before it, waiting after the reply for `updates` notifications in all.
fn call_collect(
    c: &mut RawConn,
    method: &str,
    params: Value,
    updates: usize,
) -> (Value, Vec<Value>) {
    c.send_raw(
        json!({"method": method, "params": params, "id": "req"})
            .to_string()
            .as_bytes(),
    );
    let (mut reply, mut notes) = (None, Vec::new());
    while reply.is_none() || notes.len() < updates {
        let m = c.recv().expect("connection closed");
        match m["method"].as_str() {
            Some("update3") => notes.push(m["params"].clone()),
            Some(_) => {}
            None if m["id"] == json!("req") => reply = Some(m),
            None => {}
        }
    }
    (reply.unwrap()["result"].clone(), notes)
}

/// Replaces transaction ids and row UUIDs by labels in order of first appearance (`txn0`,
/// `txn1`, …, `row0`, …; the all-zero id stays `zero`), so that two servers' answers compare
/// although each invents its own ids.
fn label(v: &Value, ids: &mut Vec<String>) -> Value {
    let name = |s: &str, ids: &mut Vec<String>, kind: &str| {
        if s == "00000000-0000-0000-0000-000000000000" {
            return "zero".to_string();
        }
        let i = ids.iter().position(|x| x == s).unwrap_or_else(|| {
            ids.push(s.to_string());
            ids.len() - 1
        });
        format!("{kind}{i}")
    };
    match v {
        Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => json!(name(s, ids, "id")),
        Value::Array(a) => Value::Array(a.iter().map(|x| label(x, ids)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let k = if uuid::Uuid::parse_str(k).is_ok() {
                        name(k, ids, "id")
                    } else {
                        k.clone()
                    };
                    (k, label(x, ids))
                })
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// One client's life against `port`: it monitors with `monitor_cond_since`, commits four
/// transactions (four rows at once, two single inserts, then a change of the first single
/// row), and other clients then monitor since the first transaction (trimmed from the
/// history by then: the history would hold more atoms than the database), since the second
/// (they missed the last two), since the current one (they missed nothing), since an id the
/// server never issued, and since the all-zero id.
/// Returns every reply and notification, ids labelled in order of appearance.
fn resumption_transcript(port: u16) -> Vec<Value> {
    let req = json!({"Row": [{"columns": ["s", "i"]}]});
    let zero = "00000000-0000-0000-0000-000000000000";
    let mut out = Vec::new();
    let mut a = RawConn::connect(port);
    let (first, _) = call_collect(
        &mut a,
        "monitor_cond_since",
        json!(["Kinds", "m", req, zero]),
        0,
    );
    out.push(first);
    let mut txn_ids = Vec::new();
    let filler: Vec<Value> = (0..4)
        .map(|n| json!({"op": "insert", "table": "Row", "row": {"s": format!("f{n}"), "e": "a"}}))
        .collect();
    for op in [
        Value::Array(filler),
        json!({"op": "insert", "table": "Row", "row": {"s": "x", "i": 1, "e": "a"}}),
        json!({"op": "insert", "table": "Row", "row": {"s": "y", "i": 2, "e": "b"}}),
        json!({"op": "update", "table": "Row", "where": [["s", "==", "x"]], "row": {"i": 5}}),
    ] {
        let mut params = vec![json!("Kinds")];
        match op {
            Value::Array(ops) => params.extend(ops),
            op => params.push(op),
        }
        let (r, notes) = call_collect(&mut a, "transact", Value::Array(params), 1);
        txn_ids.push(notes[0][1].clone());
        out.push(r);
        out.push(json!(notes));
    }
    let unknown = "11111111-2222-3333-4444-555555555555";
    for since in [
        &txn_ids[0],
        &txn_ids[1],
        &txn_ids[3],
        &json!(unknown),
        &json!(zero),
    ] {
        let mut c = RawConn::connect(port);
        let (r, _) = call_collect(
            &mut c,
            "monitor_cond_since",
            json!(["Kinds", "m", req, since]),
            0,
        );
        out.push(r);
    }
    let mut ids = Vec::new();
    out.iter().map(|v| label(v, &mut ids)).collect()
}

/// `monitor_cond_since` resumption (ovsdb-server(7) 4.1.15) as ovsdb-server 3.1 does it.
///
/// ovsdb-server keeps transaction history only for clustered databases: a standalone one
/// answers every `monitor_cond_since` with `found` false and the all-zero id, and sends
/// the all-zero id in every `update3`, so a reconnecting client always gets everything
/// again. A clustered one answers `[true, last id, what was missed]` for an id in its
/// history. Our server keeps history for every database (`ServerConfig::history_len`), so
/// it matches the clustered ovsdb-server, exactly, reply for reply: resumption is the
/// point of the method, and clients written for ovsdb-server (ovsdb-idl, ovsdbapp's
/// Python IDL, our client) handle both answers. Against the standalone server, the
/// answers that do not resume (an unknown or zero id) carry the same rows.
#[test]
fn monitor_cond_since_resumes_as_a_clustered_ovsdb_server_does() {
    let cluster = RealOvsdb::start_cluster(&schema_file());
    let standalone = RealOvsdb::start_files(&[schema_file()]);
    let (_rt, _server, port) = ours();
    let real = resumption_transcript(cluster.port);
    let mine = resumption_transcript(port);
    // Trimmed: everything again. Since the second: only the two it missed. Current: nothing.
    assert_eq!(real[9][0], json!(false), "{:#}", real[9]);
    assert_eq!(real[10][0], json!(true), "{:#}", real[10]);
    assert_eq!(
        real[10][2]["Row"].as_object().map(|o| o.len()),
        Some(2),
        "{:#}",
        real[10]
    );
    assert_eq!(real[11], json!([true, real[11][1], {}]), "{:#}", real[11]);
    assert_eq!(real, mine, "cluster:\n{real:#?}\nours:\n{mine:#?}");

    // A standalone ovsdb-server: no history, the all-zero id everywhere, found false.
    let alone = resumption_transcript(standalone.port);
    for i in [2, 4, 6, 8] {
        assert_eq!(alone[i][0][1], json!("zero"), "update3 #{i}: {}", alone[i]);
    }
    for i in [0, 9, 10, 11, 12, 13] {
        assert_eq!(alone[i][0], json!(false), "#{i}: {}", alone[i]);
        assert_eq!(alone[i][1], json!("zero"), "#{i}: {}", alone[i]);
    }
    // Where neither resumes, both send the same rows (their labels differ: the standalone
    // server issued no transaction ids to count).
    let rows = |v: &Value| {
        let mut r: Vec<String> = v["Row"]
            .as_object()
            .map(|o| o.values().map(Value::to_string).collect())
            .unwrap_or_default();
        r.sort();
        r
    };
    for i in [9, 12, 13] {
        assert_eq!(rows(&alone[i][2]), rows(&mine[i][2]), "#{i}");
    }
}
