//! Hostile and broken clients: each gets an RFC 7047 error or, when the byte stream cannot be
//! framed, a closed connection, while the server keeps serving everybody else.

mod common;

use common::{OurServer, RawConn};
use ovsdb::server::ServerConfig;
use serde_json::{json, Value};

fn server() -> OurServer {
    OurServer::start(ServerConfig {
        max_message_bytes: 1 << 20,
        max_queued_bytes: 256 << 10,
        ..ServerConfig::default()
    })
}

/// A well-behaved client still gets answers.
fn assert_alive(port: u16) {
    let mut c = RawConn::connect(port);
    assert_eq!(c.call("echo", json!(["ping"]))["result"], json!(["ping"]));
}

fn op_error(reply: &Value) -> Option<String> {
    reply["result"]
        .as_array()?
        .iter()
        .find_map(|r| r["error"].as_str().map(str::to_string))
}

#[test]
fn garbage_framing_closes_only_that_connection() {
    let s = server();
    let mut bystander = RawConn::connect(s.nb_port());
    let mut c = RawConn::connect(s.nb_port());
    c.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(c.recv(), None, "connection must be closed");
    assert_eq!(bystander.call("echo", json!([1]))["result"], json!([1]));
    assert_alive(s.nb_port());
}

#[test]
fn malformed_json_gets_an_error_then_close() {
    let s = server();
    let mut c = RawConn::connect(s.nb_port());
    c.send_raw(br#"{"method": "echo", "params": [1,], "id": 1}"#);
    let reply = c.recv().expect("an error reply before closing");
    assert_eq!(reply["error"]["error"], "syntax error");
    assert_eq!(c.recv(), None);
    assert_alive(s.nb_port());
}

#[test]
fn oversized_message_is_refused() {
    let s = server();
    let mut c = RawConn::connect(s.nb_port());
    let big = format!(
        r#"{{"method": "echo", "params": ["{}"], "id": 1}}"#,
        "x".repeat(2 << 20)
    );
    // The server may close before we finish writing; that is the point.
    let _ = std::io::Write::write_all(&mut c.stream, big.as_bytes());
    if let Some(reply) = c.recv() {
        assert_eq!(reply["error"]["error"], "resources exhausted");
        assert_eq!(c.recv(), None);
    }
    assert_alive(s.nb_port());
}

/// lib/jsonrpc.c: a request whose `params` is not an array is not JSON-RPC; ovsdb-server
/// drops the connection without a reply (tests/differential_rpc.rs compares the two).
#[test]
fn params_that_are_not_an_array_close_the_connection() {
    let s = server();
    for (method, params) in [
        ("get_schema", json!(5)),
        ("transact", json!("OVN_Northbound")),
    ] {
        let mut c = RawConn::connect(s.nb_port());
        c.send_raw(
            json!({"method": method, "params": params, "id": 1})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(c.recv(), None, "{method}");
    }
    assert_alive(s.nb_port());
}

#[test]
fn protocol_errors_keep_the_session() {
    let s = server();
    let mut c = RawConn::connect(s.nb_port());
    assert_eq!(c.call("frobnicate", json!([]))["error"], "unknown method");
    assert_eq!(
        c.call("get_schema", json!(["NoSuchDb"]))["error"]["error"],
        "unknown database"
    );
    assert_eq!(
        c.call("monitor", json!(["OVN_Northbound"]))["error"]["error"],
        "syntax error"
    );
    assert_eq!(
        c.call(
            "transact",
            json!(["NoSuchDb", {"op": "comment", "comment": "x"}])
        )["error"]["error"],
        "unknown database"
    );
    // Wrong type for a column.
    let r = c.call(
        "transact",
        json!(["OVN_Northbound", {"op": "insert", "table": "Logical_Switch", "row": {"name": 7}}]),
    );
    assert_eq!(op_error(&r).as_deref(), Some("syntax error"));
    // Unknown table and column.
    let r = c.call(
        "transact",
        json!(["OVN_Northbound", {"op": "select", "table": "Nope", "where": []}]),
    );
    // ovsdb-server reports an unknown table as a parse error of the operation.
    assert_eq!(op_error(&r).as_deref(), Some("syntax error"));
    let r = c.call("transact", json!(["OVN_Northbound", {"op": "select", "table": "Logical_Switch", "where": [["nope", "==", 1]]}]));
    assert_eq!(op_error(&r).as_deref(), Some("unknown column"));
    // Enum constraint (ACL.action).
    let r = c.call(
        "transact",
        json!(["OVN_Northbound", {"op": "insert", "table": "ACL", "row": {"action": "explode", "direction": "to-lport", "match": "1", "priority": 1}}]),
    );
    assert_eq!(op_error(&r).as_deref(), Some("constraint violation"));
    // Index uniqueness (Address_Set.name).
    let ins =
        json!(["OVN_Northbound", {"op": "insert", "table": "Address_Set", "row": {"name": "dup"}}]);
    assert_eq!(op_error(&c.call("transact", ins.clone())), None);
    assert_eq!(
        op_error(&c.call("transact", ins)).as_deref(),
        Some("constraint violation")
    );
    // A strong reference to a row that does not exist.
    let r = c.call(
        "transact",
        json!(["OVN_Northbound", {"op": "insert", "table": "Logical_Switch", "row": {"name": "ls", "ports": ["uuid", "6f4c4c5e-1b5b-4a55-9b8e-4a1f5a0b9d11"]}}]),
    );
    assert_eq!(
        op_error(&r).as_deref(),
        Some("referential integrity violation")
    );
    // The _Server database is read-only.
    let r = c.call(
        "transact",
        json!(["_Server", {"op": "delete", "table": "Database", "where": []}]),
    );
    assert_eq!(op_error(&r).as_deref(), Some("not allowed"));
    // Nothing above broke the session.
    assert_eq!(
        c.call("echo", json!(["still here"]))["result"],
        json!(["still here"])
    );
    let dbs = c.call("list_dbs", json!([]))["result"].clone();
    assert_eq!(dbs, json!(["OVN_Northbound", "OVN_Southbound", "_Server"]));
}

#[test]
fn a_client_that_stops_reading_is_dropped_without_hurting_others() {
    let s = server();
    let port = s.nb_port();
    let mut slow = RawConn::connect(port);
    let r = slow.call(
        "monitor",
        json!(["OVN_Northbound", "m", {"Address_Set": {}}]),
    );
    assert!(r["error"].is_null());
    // The slow client never reads again. A writer floods it with updates.
    let mut writer = RawConn::connect(port);
    let addresses: Vec<String> = (0..1500)
        .map(|i| format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256))
        .collect();
    for i in 0..400 {
        let r = writer.call(
            "transact",
            json!(["OVN_Northbound", {"op": "insert", "table": "Address_Set", "row": {"name": format!("as{i}"), "addresses": ["set", addresses]}}]),
        );
        assert_eq!(op_error(&r), None, "transaction {i} failed");
    }
    assert_alive(port);
    // The server dropped the slow session: after draining what the kernel buffered, EOF.
    let mut got = 0;
    while slow.recv().is_some() {
        got += 1;
        assert!(
            got < 400,
            "slow client received every update; it should have been dropped"
        );
    }
}

#[test]
fn locks_are_handed_over_and_stolen() {
    let s = server();
    let mut a = RawConn::connect(s.nb_port());
    let mut b = RawConn::connect(s.nb_port());
    assert_eq!(
        a.call("lock", json!(["L"]))["result"],
        json!({"locked": true})
    );
    assert_eq!(
        b.call("lock", json!(["L"]))["result"],
        json!({"locked": false})
    );
    let assert_op = json!(["OVN_Northbound", {"op": "assert", "lock": "L"}]);
    assert_eq!(op_error(&a.call("transact", assert_op.clone())), None);
    assert_eq!(
        op_error(&b.call("transact", assert_op.clone())).as_deref(),
        Some("not owner")
    );
    // Unlocking hands the lock to the waiter with a "locked" notification.
    assert_eq!(a.call("unlock", json!(["L"]))["result"], json!({}));
    assert_eq!(
        b.recv().unwrap(),
        json!({"id": null, "method": "locked", "params": ["L"]})
    );
    assert_eq!(op_error(&b.call("transact", assert_op)), None);
    // Stealing notifies the previous owner.
    assert_eq!(
        a.call("steal", json!(["L"]))["result"],
        json!({"locked": true})
    );
    assert_eq!(
        b.recv().unwrap(),
        json!({"id": null, "method": "stolen", "params": ["L"]})
    );
}

#[test]
fn monitors_see_commits_and_blocked_waits_complete() {
    let s = server();
    let port = s.nb_port();
    let mut m = RawConn::connect(port);
    let r = m.call("monitor_cond_since", json!(["OVN_Northbound", "x", {"Logical_Switch": [{"columns": ["name"]}]}, "00000000-0000-0000-0000-000000000000"]));
    assert_eq!(r["result"][0], json!(false));
    // A wait that blocks until a switch named "later" exists.
    let mut w = RawConn::connect(port);
    w.send_raw(
        json!({"id": 77, "method": "transact", "params": ["OVN_Northbound",
            {"op": "wait", "timeout": 10000, "table": "Logical_Switch", "where": [["name", "==", "later"]], "columns": ["name"], "until": "==", "rows": [{"name": "later"}]}]})
        .to_string()
        .as_bytes(),
    );
    let mut c = RawConn::connect(port);
    let r = c.call("transact", json!(["OVN_Northbound", {"op": "insert", "table": "Logical_Switch", "row": {"name": "later"}}]));
    assert_eq!(op_error(&r), None);
    let upd = m.recv().unwrap();
    assert_eq!(upd["method"], "update3");
    let rows = upd["params"][2]["Logical_Switch"].as_object().unwrap();
    assert_eq!(
        rows.values().next().unwrap(),
        &json!({"insert": {"name": "later"}})
    );
    let waited = w.recv().unwrap();
    assert_eq!(waited["id"], json!(77));
    assert_eq!(waited["result"], json!([{}]));
    // Resuming from the last transaction id reports "found" and no changes.
    let last = upd["params"][1].clone();
    let mut m2 = RawConn::connect(port);
    let r = m2.call(
        "monitor_cond_since",
        json!(["OVN_Northbound", "y", {"Logical_Switch": [{"columns": ["name"]}]}, last]),
    );
    assert_eq!(r["result"][0], json!(true));
    assert_eq!(r["result"][2], json!({}));
}

#[test]
fn cancel_and_expired_waits() {
    let s = server();
    let mut c = RawConn::connect(s.nb_port());
    let wait = |timeout: u64| {
        json!(["OVN_Northbound", {"op": "wait", "timeout": timeout, "table": "Logical_Switch", "where": [],
            "columns": ["name"], "until": "==", "rows": [{"name": "never"}]}])
    };
    // §4.1.4: cancel answers the canceled request with an error, and nothing else.
    c.send_raw(
        json!({"id": "w1", "method": "transact", "params": wait(60_000)})
            .to_string()
            .as_bytes(),
    );
    c.send_raw(
        json!({"id": null, "method": "cancel", "params": ["w1"]})
            .to_string()
            .as_bytes(),
    );
    let r = c.recv().unwrap();
    assert_eq!(r["id"], "w1");
    assert_eq!(r["error"], "canceled");
    // A wait whose timeout passes reports "timed out" for that operation.
    let started = std::time::Instant::now();
    let r = c.call("transact", wait(200));
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    assert_eq!(op_error(&r).as_deref(), Some("timed out"));
}

#[test]
fn monitor_cond_since_resumes_from_an_older_transaction() {
    let s = server();
    let mut c = RawConn::connect(s.nb_port());
    let insert = |c: &mut RawConn, name: &str| {
        let r = c.call("transact", json!(["OVN_Northbound", {"op": "insert", "table": "Logical_Switch", "row": {"name": name}}]));
        assert_eq!(op_error(&r), None);
    };
    // History holds no more atoms than the database (as ovsdb-server's): with a few other
    // rows in the database, the three transactions below stay in it.
    for filler in ["f0", "f1", "f2", "f3"] {
        insert(&mut c, filler);
    }
    insert(&mut c, "a");
    let r = c.call("monitor_cond_since", json!(["OVN_Northbound", "m", {"Logical_Switch": [{"columns": ["name"]}]}, "00000000-0000-0000-0000-000000000000"]));
    let since = r["result"][1].clone();
    // Two more commits: a new switch, then a rename of "a".
    insert(&mut c, "b");
    let r = c.call("transact", json!(["OVN_Northbound", {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "a"]], "row": {"name": "a2"}}]));
    assert_eq!(op_error(&r), None);
    // A new session resuming from `since` gets exactly those changes, merged.
    let mut late = RawConn::connect(s.nb_port());
    let r = late.call(
        "monitor_cond_since",
        json!(["OVN_Northbound", "m", {"Logical_Switch": [{"columns": ["name"]}]}, since]),
    );
    assert_eq!(r["result"][0], json!(true));
    let mut changes: Vec<String> = r["result"][2]["Logical_Switch"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.to_string())
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [r#"{"insert":{"name":"b"}}"#, r#"{"modify":{"name":"a2"}}"#]
    );
    // An unknown transaction id falls back to the full contents.
    let mut fresh = RawConn::connect(s.nb_port());
    let r = fresh.call("monitor_cond_since", json!(["OVN_Northbound", "m", {"Logical_Switch": [{"columns": ["name"]}]}, "6f4c4c5e-1b5b-4a55-9b8e-4a1f5a0b9d11"]));
    assert_eq!(r["result"][0], json!(false));
    assert_eq!(
        r["result"][2]["Logical_Switch"].as_object().unwrap().len(),
        6
    );
}

#[test]
fn silent_clients_are_probed_then_dropped() {
    let s = OurServer::start(ServerConfig {
        inactivity_probe: Some(std::time::Duration::from_millis(200)),
        ..ServerConfig::default()
    });
    // A client that never answers is disconnected after the probe goes unanswered.
    let mut silent = RawConn::connect(s.nb_port());
    let started = std::time::Instant::now();
    assert_eq!(silent.recv().unwrap()["method"], "echo");
    assert_eq!(silent.recv(), None);
    assert!(started.elapsed() >= std::time::Duration::from_millis(350));
    // A client that answers every probe stays connected across several intervals.
    let mut alive = RawConn::connect(s.nb_port());
    for _ in 0..3 {
        let probe = alive.recv().unwrap();
        assert_eq!(
            (probe["method"].as_str(), probe["params"].clone()),
            (Some("echo"), json!([]))
        );
        alive.send_raw(
            json!({"id": probe["id"], "result": [], "error": null})
                .to_string()
                .as_bytes(),
        );
    }
    assert_eq!(alive.call("echo", json!(["ok"]))["result"], json!(["ok"]));
}
