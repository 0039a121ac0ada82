//! Moving a database between `switchyard db` and `ovsdb-server` in both directions (issue 15
//! item 4): `switchyard db --convert IN OUT` turns our log into ovsdb-server's standalone file
//! (ovsdb(5)) and back. NB and SB rows of every column kind the OVN schemas use (integer,
//! boolean, string and enum scalars; optional values set and cleared; sets and maps grown,
//! shrunk and replaced; strong and weak references, a weak one scrubbed by a delete) are
//! written through one server, the file is converted, and the other server must serve every row
//! with its UUID and value intact. The files converted are logs with transactions after their
//! first record, so ovsdb-server's `_is_diff` records are replayed, not just a snapshot.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{free_port, require_tool, wait_for_port, DbProcess, RawConn, RealOvsdb};
use serde_json::{json, Value};

const NB: &str = "OVN_Northbound";
const SB: &str = "OVN_Southbound";

/// Transactions, in order, per database: inserts, then modifications, then deletes.
fn transactions() -> Vec<(&'static str, Value)> {
    vec![
        (
            NB,
            json!([NB,
                {"op": "insert", "table": "DHCP_Options", "uuid-name": "dh",
                 "row": {"cidr": "10.0.0.0/24", "options": ["map", [["lease_time", "3600"]]]}},
                {"op": "insert", "table": "Logical_Switch_Port", "uuid-name": "p1",
                 "row": {"name": "vm1", "enabled": false, "tag_request": 7,
                         "addresses": ["set", ["00:00:00:00:00:01 10.0.0.1", "unknown"]],
                         "options": ["map", [["a", "1"], ["b", "2"]]],
                         "dhcpv4_options": ["named-uuid", "dh"]}},
                {"op": "insert", "table": "Load_Balancer", "uuid-name": "lb",
                 "row": {"name": "lb1", "protocol": "tcp",
                         "vips": ["map", [["10.0.0.10:80", "10.0.0.1:80"]]]}},
                {"op": "insert", "table": "Logical_Switch",
                 "row": {"name": "net1", "ports": ["set", [["named-uuid", "p1"]]],
                         "other_config": ["map", [["x", "1"]]],
                         "load_balancer": ["named-uuid", "lb"]}},
                {"op": "insert", "table": "Logical_Switch", "row": {"name": "doomed"}},
                {"op": "insert", "table": "ACL", "uuid-name": "acl",
                 "row": {"priority": 1001, "direction": "to-lport", "match": "ip4",
                         "action": "allow-related", "log": true, "severity": "info",
                         "name": "a1"}},
                {"op": "insert", "table": "Port_Group",
                 "row": {"name": "pg1", "ports": ["named-uuid", "p1"],
                         "acls": ["named-uuid", "acl"]}},
                {"op": "insert", "table": "NB_Global",
                 "row": {"nb_cfg": 5, "options": ["map", [["mac_prefix", "0a:00:00"]]]}}
            ]),
        ),
        (
            NB,
            json!([NB,
                {"op": "update", "table": "Logical_Switch_Port", "where": [["name", "==", "vm1"]],
                 "row": {"enabled": ["set", []],
                         "addresses": ["set", ["00:00:00:00:00:01 10.0.0.1"]]}},
                {"op": "mutate", "table": "Logical_Switch_Port", "where": [["name", "==", "vm1"]],
                 "mutations": [["options", "insert", ["map", [["c", "3"]]]],
                               ["options", "delete", ["set", ["a"]]],
                               ["tag_request", "+=", 1]]},
                {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "net1"]],
                 "row": {"other_config": ["map", [["x", "2"], ["y", "3"]]]}},
                {"op": "update", "table": "ACL", "where": [], "row": {"log": false}},
                {"op": "mutate", "table": "NB_Global", "where": [],
                 "mutations": [["nb_cfg", "+=", 1]]}
            ]),
        ),
        (
            NB,
            json!([NB,
                {"op": "delete", "table": "Load_Balancer", "where": [["name", "==", "lb1"]]},
                {"op": "delete", "table": "Logical_Switch", "where": [["name", "==", "doomed"]]}
            ]),
        ),
        (
            SB,
            json!([SB,
                {"op": "insert", "table": "Encap", "uuid-name": "en",
                 "row": {"type": "geneve", "ip": "192.0.2.1", "chassis_name": "hv1",
                         "options": ["map", [["csum", "true"]]]}},
                {"op": "insert", "table": "Chassis", "uuid-name": "ch",
                 "row": {"name": "hv1", "hostname": "hv1", "encaps": ["named-uuid", "en"],
                         "external_ids": ["map", [["k", "v"]]]}},
                {"op": "insert", "table": "Datapath_Binding", "uuid-name": "dp",
                 "row": {"tunnel_key": 1, "external_ids": ["map", [["name", "net1"]]]}},
                {"op": "insert", "table": "Port_Binding",
                 "row": {"logical_port": "vm1", "datapath": ["named-uuid", "dp"],
                         "tunnel_key": 1, "chassis": ["named-uuid", "ch"],
                         "mac": ["set", ["00:00:00:00:00:01 10.0.0.1"]]}},
                {"op": "insert", "table": "MAC_Binding",
                 "row": {"logical_port": "vm1", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02",
                         "datapath": ["named-uuid", "dp"], "timestamp": 12345}}
            ]),
        ),
        (
            SB,
            json!([SB,
                {"op": "update", "table": "Port_Binding", "where": [],
                 "row": {"chassis": ["set", []], "up": true}},
                {"op": "mutate", "table": "Chassis", "where": [],
                 "mutations": [["external_ids", "insert", ["map", [["k2", "v2"]]]]]}
            ]),
        ),
    ]
}

fn write_rows(nb: u16, sb: u16) {
    for (db, txn) in transactions() {
        let port = if db == NB { nb } else { sb };
        let reply = RawConn::connect(port).call("transact", txn);
        let results = reply["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{reply}"));
        assert!(
            results.iter().all(|r| r.get("error").is_none()),
            "a transaction failed: {reply}"
        );
    }
}

type Dump = BTreeMap<String, BTreeMap<String, Value>>;

/// Every row of every table of `db`, keyed by table and `_uuid`, without `_version` (which
/// each server makes anew when it loads a file).
fn dump(port: u16, db: &str) -> Dump {
    let mut conn = RawConn::connect(port);
    let schema = conn.call("get_schema", json!([db]));
    let tables: Vec<String> = schema["result"]["tables"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut txn = vec![json!(db)];
    txn.extend(
        tables
            .iter()
            .map(|t| json!({"op": "select", "table": t, "where": []})),
    );
    let reply = conn.call("transact", Value::Array(txn));
    let mut out = Dump::new();
    for (t, r) in tables.iter().zip(reply["result"].as_array().unwrap()) {
        let rows = out.entry(t.clone()).or_default();
        for row in r["rows"].as_array().unwrap() {
            let mut row = row.clone();
            row.as_object_mut().unwrap().remove("_version");
            rows.insert(row["_uuid"][1].as_str().unwrap().to_owned(), row);
        }
    }
    out
}

fn row_count(d: &Dump) -> usize {
    d.values().map(BTreeMap::len).sum()
}

fn convert(input: &Path, output: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-db"))
        .arg("--convert")
        .arg(input)
        .arg(output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "switchyard-db --convert {} {} failed:\n{}",
        input.display(),
        output.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn switchyard_db_file_is_served_by_ovsdb_server_with_every_row() {
    require_tool("ovsdb-server", "openvswitch-common");
    require_tool("ovsdb-tool", "openvswitch-common");
    let data = tempfile::tempdir().unwrap();
    let (nb, sb) = (free_port(), free_port());
    let ours = DbProcess::start(data.path(), nb, &format!("ptcp:{sb}:127.0.0.1"));
    wait_for_port(sb);
    write_rows(nb, sb);
    let (nb_rows, sb_rows) = (dump(nb, NB), dump(nb, SB));
    ours.stop();

    let out = tempfile::tempdir().unwrap();
    let files = vec![out.path().join("nb.db"), out.path().join("sb.db")];
    convert(&data.path().join("OVN_Northbound.db"), &files[0]);
    convert(&data.path().join("OVN_Southbound.db"), &files[1]);
    // ovsdb-tool itself reads the files: their records' lengths and SHA-1s are right.
    for f in &files {
        let check = Command::new("ovsdb-tool")
            .arg("show-log")
            .arg(f)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "ovsdb-tool show-log {}: {}",
            f.display(),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let real = RealOvsdb::serve_files(files);
    assert_eq!(dump(real.port, NB), nb_rows);
    assert_eq!(dump(real.port, SB), sb_rows);
    assert_eq!((row_count(&nb_rows), row_count(&sb_rows)), (6, 5));
}

#[test]
fn ovsdb_server_file_is_served_by_switchyard_db_with_every_row() {
    let mut real = RealOvsdb::start(&["ovn-nb.ovsschema", "ovn-sb.ovsschema"]);
    write_rows(real.port, real.port);
    let (nb_rows, sb_rows) = (dump(real.port, NB), dump(real.port, SB));
    // ovsdb-server has written each commit to its file before replying; its lock goes with
    // the process.
    real.child.kill().unwrap();
    real.child.wait().unwrap();

    let data = tempfile::tempdir().unwrap();
    convert(
        &real.dir.path().join("0.db"),
        &data.path().join("OVN_Northbound.db"),
    );
    convert(
        &real.dir.path().join("1.db"),
        &data.path().join("OVN_Southbound.db"),
    );
    let (nb, sb) = (free_port(), free_port());
    let _ours = DbProcess::start(data.path(), nb, &format!("ptcp:{sb}:127.0.0.1"));
    assert_eq!(dump(nb, NB), nb_rows);
    assert_eq!(dump(nb, SB), sb_rows);
    assert_eq!((row_count(&nb_rows), row_count(&sb_rows)), (6, 5));
}

#[test]
fn convert_refuses_to_overwrite_and_a_file_a_server_holds() {
    let data = tempfile::tempdir().unwrap();
    let (nb, sb) = (free_port(), free_port());
    let ours = DbProcess::start(data.path(), nb, &format!("ptcp:{sb}:127.0.0.1"));
    let held = data.path().join("OVN_Northbound.db");
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-db"))
        .arg("--convert")
        .arg(&held)
        .arg(data.path().join("x.db"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "converted a file a server holds");
    assert!(!data.path().join("x.db").exists());
    ours.stop();
    let existing = data.path().join("OVN_Southbound.db");
    let before = std::fs::read(&existing).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-db"))
        .arg("--convert")
        .arg(&held)
        .arg(&existing)
        .output()
        .unwrap();
    assert!(!out.status.success(), "overwrote an existing file");
    assert_eq!(std::fs::read(&existing).unwrap(), before);
}
