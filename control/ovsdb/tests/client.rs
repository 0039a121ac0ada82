//! The client library against a real `ovsdb-server` (openvswitch-common) serving our schemas,
//! and against our own server: write with the transaction builder, read typed rows from the
//! monitor-fed replica, follow updates, and reconnect after the server restarts.

mod common;

use std::time::Duration;

use common::{RawConn, RealOvsdb};
use ovsdb::client::rows::{AddressSet, Chassis, Encap, LogicalSwitch, LogicalSwitchPort};
use ovsdb::client::txn::{by_uuid, clause, map, refs, set};
use ovsdb::client::{Backoff, ClientError, Idl, TableRequest, Transaction};
use ovsdb::server::{Remote, ServerConfig};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn nb_tables() -> Vec<TableRequest> {
    ["Logical_Switch", "Logical_Switch_Port", "Address_Set"]
        .iter()
        .map(|t| TableRequest::all(t))
        .collect()
}

/// Write, read back, modify, delete: the replica follows every step.
async fn exercise_nb(remote: Remote) {
    let idl = Idl::start(
        vec![remote],
        "OVN_Northbound",
        nb_tables(),
        Backoff::default(),
    )
    .unwrap();
    idl.wait_until(WAIT, |r| r.schema().is_some())
        .await
        .unwrap();
    idl.wait_until(WAIT, |_| idl.is_connected()).await.unwrap();

    let mut t = Transaction::new("OVN_Northbound");
    let p1 = t.insert(
        "Logical_Switch_Port",
        [
            ("name", json!("vm1")),
            ("addresses", set(["02:00:00:00:00:01 10.0.0.5"])),
            ("external_ids", map([("iface-id", "vm1")])),
        ],
    );
    let sw = t.insert(
        "Logical_Switch",
        [("name", json!("tenant-net")), ("ports", refs([&p1]))],
    );
    t.insert(
        "Address_Set",
        [
            ("name", json!("as1")),
            ("addresses", set(["10.0.0.5", "10.0.0.6"])),
        ],
    );
    let reply = idl.transact(&t).await.unwrap();
    let sw_uuid = reply.uuid(&sw).unwrap();
    let p1_uuid = reply.uuid(&p1).unwrap();

    idl.wait_until(WAIT, |r| {
        r.rows::<LogicalSwitchPort>().len() == 1 && r.rows::<LogicalSwitch>().len() == 1
    })
    .await
    .unwrap();
    let ls = idl.rows::<LogicalSwitch>().pop().unwrap();
    assert_eq!(
        (ls.uuid, ls.name.as_str(), ls.ports.clone()),
        (sw_uuid, "tenant-net", vec![p1_uuid])
    );
    let lsp = idl.rows::<LogicalSwitchPort>().pop().unwrap();
    assert_eq!(lsp.addresses, ["02:00:00:00:00:01 10.0.0.5"]);
    assert_eq!(
        lsp.external_ids.get("iface-id").map(String::as_str),
        Some("vm1")
    );
    assert_eq!(
        idl.rows::<AddressSet>()[0].addresses,
        ["10.0.0.5", "10.0.0.6"]
    );

    // Modify: map and set columns arrive as update2 diffs and are applied in place.
    let mut t = Transaction::new("OVN_Northbound");
    t.mutate(
        "Logical_Switch_Port",
        by_uuid(p1_uuid),
        [("external_ids", "insert", map([("owner", "test")]))],
    );
    t.update(
        "Logical_Switch_Port",
        by_uuid(p1_uuid),
        [("port_security", set(["02:00:00:00:00:01 10.0.0.5"]))],
    );
    t.mutate(
        "Address_Set",
        vec![clause("name", "==", json!("as1"))],
        [("addresses", "delete", set(["10.0.0.5"]))],
    );
    idl.transact(&t).await.unwrap();
    idl.wait_until(WAIT, |r| {
        let p = r.rows::<LogicalSwitchPort>();
        p.len() == 1
            && p[0].external_ids.len() == 2
            && p[0].port_security.len() == 1
            && r.rows::<AddressSet>()[0].addresses == ["10.0.0.6"]
    })
    .await
    .unwrap();

    // A constraint violation comes back as a typed error naming the operation.
    let mut t = Transaction::new("OVN_Northbound");
    t.insert("Address_Set", [("name", json!("as1"))]);
    match idl.transact(&t).await {
        Err(ClientError::Transaction { error, .. }) => assert_eq!(error, "constraint violation"),
        other => panic!("expected a constraint violation, got {other:?}"),
    }

    // Delete the switch: its port is garbage-collected and the replica drops both.
    let mut t = Transaction::new("OVN_Northbound");
    t.delete("Logical_Switch", by_uuid(sw_uuid));
    idl.transact(&t).await.unwrap();
    idl.wait_until(WAIT, |r| {
        r.rows::<LogicalSwitch>().is_empty() && r.rows::<LogicalSwitchPort>().is_empty()
    })
    .await
    .unwrap();
}

/// SB: register a chassis with an encap, as the chassis controller will.
async fn exercise_sb(remote: Remote) {
    let tables = vec![TableRequest::all("Chassis"), TableRequest::all("Encap")];
    let idl = Idl::start(vec![remote], "OVN_Southbound", tables, Backoff::default()).unwrap();
    idl.wait_until(WAIT, |r| r.schema().is_some())
        .await
        .unwrap();
    idl.wait_until(WAIT, |_| idl.is_connected()).await.unwrap();
    let mut t = Transaction::new("OVN_Southbound");
    let e = t.insert(
        "Encap",
        [
            ("type", json!("geneve")),
            ("ip", json!("192.0.2.10")),
            ("chassis_name", json!("hv1")),
            ("options", map([("csum", "true")])),
        ],
    );
    t.insert(
        "Chassis",
        [
            ("name", json!("hv1")),
            ("hostname", json!("hv1.example")),
            ("encaps", refs([&e])),
        ],
    );
    idl.transact(&t).await.unwrap();
    idl.wait_until(WAIT, |r| {
        r.rows::<Chassis>().len() == 1 && r.rows::<Encap>().len() == 1
    })
    .await
    .unwrap();
    let ch = idl.rows::<Chassis>().pop().unwrap();
    let enc = idl.rows::<Encap>().pop().unwrap();
    assert_eq!(ch.encaps, vec![enc.uuid]);
    assert_eq!(
        (enc.encap_type.as_str(), enc.ip.as_str()),
        ("geneve", "192.0.2.10")
    );
}

fn real_remote(real: &RealOvsdb) -> Remote {
    format!("tcp:127.0.0.1:{}", real.port).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reads_writes_and_monitors_real_ovsdb_server() {
    let real = RealOvsdb::start(&["ovn-nb.ovsschema", "ovn-sb.ovsschema"]);
    exercise_nb(real_remote(&real)).await;
    exercise_sb(real_remote(&real)).await;
}

#[test]
fn client_reads_writes_and_monitors_our_server() {
    let ours = common::OurServer::start(ServerConfig::default());
    let nb = ours.running.nb_remotes[0].clone();
    let sb = ours.running.sb_remotes[0].clone();
    ours.rt.block_on(async {
        exercise_nb(nb).await;
        exercise_sb(sb).await;
    });
}

#[test]
fn client_reconnects_across_remotes_after_server_restart() {
    let mut real = RealOvsdb::start(&["ovn-nb.ovsschema"]);
    let port = real.port;
    // The first remote is dead; the client must move on to the second.
    let dead: Remote = format!("tcp:127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        ..Backoff::default()
    };
    let idl = rt.block_on(async {
        Idl::start(
            vec![dead, real_remote(&real)],
            "OVN_Northbound",
            nb_tables(),
            backoff,
        )
        .unwrap()
    });
    rt.block_on(idl.wait_until(WAIT, |r| r.schema().is_some()))
        .unwrap();

    // Restart ovsdb-server on the same database file and port; write a row while the client is
    // away, with a plain connection.
    real.restart();
    let mut raw = RawConn::connect(port);
    let r = raw.call("transact", json!(["OVN_Northbound", {"op": "insert", "table": "Logical_Switch", "row": {"name": "while-away"}}]));
    assert!(r["result"][0]["uuid"].is_array(), "{r}");
    rt.block_on(idl.wait_until(WAIT, |r| {
        r.rows::<LogicalSwitch>()
            .iter()
            .any(|l| l.name == "while-away")
    }))
    .unwrap();
}

#[test]
fn client_over_unix_socket_and_condition_changes() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sb.sock");
    let sock2 = sock.clone();
    let ours = common::OurServer::start_with(ServerConfig::default(), move |cfg| {
        cfg.sb_remotes = vec![Remote::Unix(sock2)];
    });
    ours.rt.block_on(async {
        // SB over the unix socket, with a condition: only chassis "hv1".
        let tables = vec![TableRequest {
            table: "Chassis".into(),
            columns: Some(vec!["name".into(), "hostname".into()]),
            condition: Some(json!([["name", "==", "hv1"]])),
        }];
        let idl = Idl::start(vec![Remote::Unix(sock.clone())], "OVN_Southbound", tables, Backoff::default()).unwrap();
        idl.wait_until(WAIT, |r| r.schema().is_some()).await.unwrap();
        idl.wait_until(WAIT, |_| idl.is_connected()).await.unwrap();
        let mut t = Transaction::new("OVN_Southbound");
        for (name, ip) in [("hv1", "192.0.2.1"), ("hv2", "192.0.2.2")] {
            // Chassis.encaps needs at least one Encap (min 1, strong reference).
            let e = t.insert("Encap", [("type", json!("geneve")), ("ip", json!(ip)), ("chassis_name", json!(name))]);
            t.insert("Chassis", [("name", json!(name)), ("hostname", json!(name)), ("encaps", refs([&e]))]);
        }
        idl.transact(&t).await.unwrap();
        idl.wait_until(WAIT, |r| r.rows::<Chassis>().len() == 1).await.unwrap();
        assert_eq!(idl.rows::<Chassis>()[0].name, "hv1");

        // monitor_cond_change on a raw connection: widening the condition sends the new row.
        let (conn, mut notes) = ovsdb::client::Connection::connect(&Remote::Unix(sock.clone()), 1 << 20).await.unwrap();
        let init = conn
            .call("monitor_cond", json!(["OVN_Southbound", "m1", {"Chassis": [{"columns": ["name"], "where": [["name", "==", "hv1"]]}]}]))
            .await
            .unwrap();
        assert_eq!(init["Chassis"].as_object().unwrap().len(), 1);
        conn.call("monitor_cond_change", json!(["m1", "m2", {"Chassis": [{"where": [["name", "==", "hv2"]]}]}])).await.unwrap();
        let n = notes.recv().await.unwrap();
        assert_eq!(n.method, "update2");
        assert_eq!(n.params[0], "m2");
        let rows: Vec<&serde_json::Value> = n.params[1]["Chassis"].as_object().unwrap().values().collect();
        let mut kinds: Vec<String> = rows.iter().map(|r| r.as_object().unwrap().keys().next().unwrap().clone()).collect();
        kinds.sort();
        assert_eq!(kinds, ["delete", "insert"]);
        assert_eq!(conn.call("monitor_cancel", json!(["m2"])).await.unwrap(), json!({}));
        assert!(conn.call("monitor_cancel", json!(["m2"])).await.is_err());
    });
}

/// Active/standby: the lock holder commits, the standby cannot, and takes over when the
/// holder goes away.
async fn exercise_lock(remote: Remote) {
    let start = || {
        Idl::start_with_lock(
            vec![remote.clone()],
            "OVN_Northbound",
            nb_tables(),
            Backoff::default(),
            "northd",
        )
    };
    let active = start().unwrap();
    active
        .wait_until(WAIT, |_| active.has_lock())
        .await
        .unwrap();
    let standby = start().unwrap();
    standby
        .wait_until(WAIT, |r| r.schema().is_some())
        .await
        .unwrap();
    standby
        .wait_until(WAIT, |_| standby.is_connected())
        .await
        .unwrap();
    assert!(!standby.has_lock());
    let mut t = Transaction::new("OVN_Northbound");
    t.assert_lock("northd");
    t.insert("Address_Set", [("name", json!("by-owner"))]);
    active.transact(&t).await.unwrap();
    match standby.transact(&t).await {
        Err(ClientError::Transaction { error, .. }) => assert_eq!(error, "not owner"),
        other => panic!("standby must not commit: {other:?}"),
    }
    drop(active);
    standby
        .wait_until(WAIT, |_| standby.has_lock())
        .await
        .unwrap();
}

#[test]
fn lock_moves_to_the_standby_when_the_owner_goes_away() {
    let real = RealOvsdb::start(&["ovn-nb.ovsschema"]);
    let ours = common::OurServer::start(ServerConfig::default());
    let nb = ours.running.nb_remotes[0].clone();
    ours.rt.block_on(async {
        exercise_lock(real_remote(&real)).await;
        exercise_lock(nb).await;
    });
}

/// Conditional monitoring that changes at run time, as a chassis controller does when it
/// claims ports.
async fn exercise_condition_change(remote: Remote) {
    let tables = vec![TableRequest {
        table: "Logical_Switch".into(),
        columns: Some(vec!["name".into()]),
        condition: Some(json!([["name", "==", "none-yet"]])),
    }];
    let idl = Idl::start(vec![remote], "OVN_Northbound", tables, Backoff::default()).unwrap();
    idl.wait_until(WAIT, |r| r.schema().is_some())
        .await
        .unwrap();
    idl.wait_until(WAIT, |_| idl.is_connected()).await.unwrap();
    let mut t = Transaction::new("OVN_Northbound");
    for n in ["cond-a", "cond-b"] {
        t.insert("Logical_Switch", [("name", json!(n))]);
    }
    idl.transact(&t).await.unwrap();
    idl.set_condition("Logical_Switch", Some(json!([["name", "==", "cond-a"]])))
        .await
        .unwrap();
    idl.wait_until(WAIT, |r| {
        r.rows::<LogicalSwitch>()
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            == ["cond-a"]
    })
    .await
    .unwrap();
    idl.set_condition("Logical_Switch", Some(json!([["name", "==", "cond-b"]])))
        .await
        .unwrap();
    idl.wait_until(WAIT, |r| {
        r.rows::<LogicalSwitch>()
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            == ["cond-b"]
    })
    .await
    .unwrap();
    idl.set_condition("Logical_Switch", None).await.unwrap();
    idl.wait_until(WAIT, |r| r.rows::<LogicalSwitch>().len() == 2)
        .await
        .unwrap();
    assert!(idl.set_condition("Nope", None).await.is_err());
}

#[test]
fn conditions_change_at_run_time() {
    let real = RealOvsdb::start(&["ovn-nb.ovsschema"]);
    let ours = common::OurServer::start(ServerConfig::default());
    let nb = ours.running.nb_remotes[0].clone();
    ours.rt.block_on(async {
        exercise_condition_change(real_remote(&real)).await;
        exercise_condition_change(nb).await;
    });
}
