//! `ovsdb-client dump` and `ovsdb-client backup` against our server, as an operator uses them
//! (issue 15 item 4): the same NB content written by the real `ovn-nbctl` into `switchyard db`
//! and into `ovsdb-server` dumps the same (row UUIDs aside, which each server picks), and the
//! backup of ours is a standalone database file that `ovsdb-server` serves with every row and
//! UUID intact.

mod common;

use std::process::Command;

use common::{nbctl, require_tool, OurServer, RealOvsdb};
use ovsdb::server::ServerConfig;

/// The same small NB, written with the real `ovn-nbctl`: every column kind appears (scalars,
/// optional values, sets, maps, strong and weak references).
fn write_nb(port: u16) {
    for args in [
        &["ls-add", "net1"][..],
        &["lsp-add", "net1", "vm1"],
        &["lsp-set-addresses", "vm1", "00:00:00:00:00:01 10.0.0.1"],
        &["lsp-set-port-security", "vm1", "00:00:00:00:00:01 10.0.0.1"],
        &[
            "set",
            "Logical_Switch_Port",
            "vm1",
            "external_ids:owner=test",
            "tag_request=7",
        ],
        &["pg-add", "pg1", "vm1"],
        &[
            "acl-add",
            "pg1",
            "to-lport",
            "1001",
            "outport == @pg1 && ip4",
            "allow-related",
        ],
        &["lr-add", "r1"],
        &[
            "lrp-add",
            "r1",
            "r1-net1",
            "00:00:00:00:ff:01",
            "10.0.0.254/24",
        ],
        &["lr-route-add", "r1", "0.0.0.0/0", "10.0.0.1"],
    ] {
        let out = nbctl(port, args);
        assert!(
            out.status.success(),
            "ovn-nbctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn client(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ovsdb-client").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ovsdb-client {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `ovsdb-client dump` with every UUID replaced by one placeholder: rows, columns and values
/// compare, the UUIDs each server chose do not.
fn dump(port: u16) -> String {
    let text = String::from_utf8(client(&[
        "dump",
        &format!("tcp:127.0.0.1:{port}"),
        "OVN_Northbound",
    ]))
    .unwrap();
    let mut out = String::new();
    let mut rest = text.as_str();
    // A UUID is 36 characters: 8-4-4-4-12 hex digits.
    while let Some(i) = rest.find(|c: char| c.is_ascii_hexdigit()) {
        out.push_str(&rest[..i]);
        let cand = &rest[i..];
        if cand.len() >= 36 && uuid::Uuid::parse_str(&cand[..36]).is_ok() {
            out.push_str("<uuid>");
            rest = &cand[36..];
        } else {
            let n = cand.chars().next().unwrap().len_utf8();
            out.push_str(&cand[..n]);
            rest = &cand[n..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn dump_matches_ovsdb_server_and_backup_round_trips_through_it() {
    require_tool("ovsdb-client", "openvswitch-common");
    require_tool("ovn-nbctl", "ovn-common");
    let real = RealOvsdb::start(&["ovn-nb.ovsschema"]);
    let ours = OurServer::start(ServerConfig::default());
    write_nb(real.port);
    write_nb(ours.nb_port());
    let (theirs, mine) = (dump(real.port), dump(ours.nb_port()));
    assert!(mine.contains("Logical_Switch_Port table"), "{mine}");
    assert_eq!(theirs, mine);

    // The backup of ours is a database file ovsdb-server serves as it was, UUIDs included.
    let file = ours.dir.path().join("backup.db");
    let backup = client(&[
        "backup",
        &format!("tcp:127.0.0.1:{}", ours.nb_port()),
        "OVN_Northbound",
    ]);
    std::fs::write(&file, backup).unwrap();
    let served = RealOvsdb::serve_files(vec![file]);
    let exact = |port: u16| client(&["dump", &format!("tcp:127.0.0.1:{port}"), "OVN_Northbound"]);
    assert_eq!(
        String::from_utf8(exact(served.port)).unwrap(),
        String::from_utf8(exact(ours.nb_port())).unwrap()
    );
}
