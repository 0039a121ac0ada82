//! The real `ovn-nbctl` against our server and against a real `ovsdb-server` serving the same
//! schema file: every command must succeed or fail the same way and print the same thing once
//! UUIDs (and the order of rows, which follows UUID hashing in the IDL) are normalized.

mod common;

use common::{nbctl, require_tool, OurServer, RealOvsdb};
use control::server::ServerConfig;

/// Replaces UUIDs by `<uuid>` and drops the IDL's timestamped log lines.
fn normalize(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.contains("|ovsdb_idl|") && !l.contains("|WARN|") && !l.contains("|INFO|"))
        .map(|l| {
            let mut out = String::new();
            let mut rest = l;
            while let Some(i) = find_uuid(rest) {
                out.push_str(&rest[..i]);
                out.push_str("<uuid>");
                rest = &rest[i + 36..];
            }
            out.push_str(rest);
            out
        })
        .collect();
    lines.sort();
    lines
}

fn find_uuid(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(35)).find(|&i| {
        b[i..i + 36].iter().enumerate().all(|(j, c)| match j {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
    })
}

const COMMANDS: &[&[&str]] = &[
    &["ls-add", "sw0"],
    &["ls-add", "sw1"],
    &["ls-add", "sw0"],
    &["ls-list"],
    &["lsp-add", "sw0", "p1"],
    &["lsp-add", "sw0", "p2"],
    &["lsp-add", "sw0", "p1"],
    &["lsp-set-addresses", "p1", "00:00:00:00:00:01 10.0.0.1"],
    &[
        "lsp-set-addresses",
        "p2",
        "00:00:00:00:00:02 10.0.0.2",
        "unknown",
    ],
    &["lsp-set-port-security", "p1", "00:00:00:00:00:01 10.0.0.1"],
    &["lsp-get-addresses", "p1"],
    &["lsp-get-addresses", "p2"],
    &["lsp-get-port-security", "p1"],
    &["lsp-get-up", "p1"],
    &["lsp-get-enabled", "p1"],
    &["lsp-set-enabled", "p1", "disabled"],
    &["lsp-get-enabled", "p1"],
    &["lsp-get-type", "p1"],
    &["lsp-set-type", "p2", "router"],
    &["lsp-get-type", "p2"],
    &["lsp-set-options", "p2", "router-port=rp0"],
    &["lsp-get-options", "p2"],
    &["lsp-get-ls", "p1"],
    &["lsp-list", "sw0"],
    &["lr-add", "r0"],
    &["lr-list"],
    &["lrp-add", "r0", "rp0", "00:00:00:00:01:01", "10.0.0.254/24"],
    &["lrp-add", "r0", "rp1", "00:00:00:00:01:02", "172.16.0.1/24"],
    &["lrp-list", "r0"],
    &["lr-route-add", "r0", "0.0.0.0/0", "172.16.0.254"],
    &["lr-route-add", "r0", "192.168.0.0/16", "10.0.0.253"],
    &["lr-route-list", "r0"],
    &["lr-nat-add", "r0", "snat", "172.16.0.1", "10.0.0.0/24"],
    &[
        "lr-nat-add",
        "r0",
        "dnat_and_snat",
        "172.16.0.10",
        "10.0.0.1",
    ],
    &["lr-nat-list", "r0"],
    &["pg-add", "pg1", "p1"],
    &["pg-set-ports", "pg1", "p1", "p2"],
    &[
        "acl-add",
        "pg1",
        "from-lport",
        "1001",
        "inport == @pg1 && ip4",
        "allow-related",
    ],
    &[
        "acl-add",
        "pg1",
        "to-lport",
        "1002",
        "outport == @pg1 && ip4 && ip4.src == $as1",
        "allow-related",
    ],
    &[
        "acl-add",
        "sw0",
        "to-lport",
        "1002",
        "outport == \"p1\" && ip4.src == 10.0.0.2",
        "drop",
    ],
    &["acl-list", "pg1"],
    &["acl-list", "sw0"],
    &[
        "create",
        "Address_Set",
        "name=as1",
        "addresses=\"10.0.0.1\",\"10.0.0.2\"",
    ],
    &["show"],
    &["list", "Address_Set"],
    &["list", "Logical_Switch_Port"],
    &["find", "Logical_Switch_Port", "name=p1"],
    &["find", "Logical_Switch_Port", "type=router"],
    &[
        "--bare",
        "--columns=name",
        "find",
        "Logical_Switch",
        "name=sw0",
    ],
    &["get", "Logical_Switch", "sw0", "name"],
    &[
        "set",
        "Logical_Switch",
        "sw0",
        "other_config:subnet=10.0.0.0/24",
    ],
    &["get", "Logical_Switch", "sw0", "other_config"],
    &["get", "Logical_Switch", "sw0", "other_config:subnet"],
    &["add", "Address_Set", "as1", "addresses", "10.0.0.3"],
    &["remove", "Address_Set", "as1", "addresses", "10.0.0.1"],
    &["get", "Address_Set", "as1", "addresses"],
    &["clear", "Address_Set", "as1", "addresses"],
    &["list", "Address_Set"],
    &["destroy", "Address_Set", "as1"],
    &["list", "Address_Set"],
    &["get", "Logical_Switch", "nope", "name"],
    &["set", "Logical_Switch", "sw0", "nonexistent_column=1"],
    &["acl-del", "sw0"],
    &["acl-list", "sw0"],
    &["acl-del", "pg1", "from-lport"],
    &["acl-list", "pg1"],
    &["lr-nat-del", "r0", "snat", "10.0.0.0/24"],
    &["lr-nat-list", "r0"],
    &["lr-route-del", "r0", "192.168.0.0/16"],
    &["lr-route-list", "r0"],
    &["lsp-del", "p2"],
    &["lsp-del", "nope"],
    &["pg-del", "pg1"],
    &["list", "Port_Group"],
    &["ls-del", "sw1"],
    &["show"],
    &["lrp-del", "rp1"],
    &["lr-del", "r0"],
    &["ls-del", "sw0"],
    &["show"],
    &["list", "Logical_Switch_Port"],
];

#[test]
fn ovn_nbctl_matches_real_ovsdb_server() {
    require_tool("ovn-nbctl", "ovn-common");
    let ours = OurServer::start(ServerConfig::default());
    let real = RealOvsdb::start(&["ovn-nb.ovsschema"]);
    let (mut succeeded, mut failed, mut printed) = (0, 0, 0);
    for args in COMMANDS {
        let a = nbctl(ours.nb_port(), args);
        let b = nbctl(real.port, args);
        let (ao, bo) = (
            String::from_utf8_lossy(&a.stdout),
            String::from_utf8_lossy(&b.stdout),
        );
        let (ae, be) = (
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr),
        );
        assert_eq!(
            a.status.code(),
            b.status.code(),
            "exit status of ovn-nbctl {args:?}\nours: {ao}{ae}\nreal: {bo}{be}"
        );
        assert_eq!(
            normalize(&ao),
            normalize(&bo),
            "stdout of ovn-nbctl {args:?}"
        );
        assert_eq!(
            normalize(&ae),
            normalize(&be),
            "stderr of ovn-nbctl {args:?}"
        );
        if a.status.success() {
            succeeded += 1;
        } else {
            failed += 1;
        }
        printed += a.stdout.len();
    }
    // The sequence exercises both success and error paths, and prints real output.
    assert!(succeeded >= 70, "only {succeeded} commands succeeded");
    assert!(failed >= 5, "only {failed} commands failed");
    assert!(
        printed > 2000,
        "suspiciously little output: {printed} bytes"
    );
    // The final state is empty in both: the switches, routers and their rows are gone.
    let ls = nbctl(ours.nb_port(), &["ls-list"]);
    assert!(ls.status.success() && ls.stdout.is_empty());
}

#[test]
fn ovn_nbctl_state_survives_restart() {
    require_tool("ovn-nbctl", "ovn-common");
    let ours = OurServer::start(ServerConfig::default());
    let port = ours.nb_port();
    assert!(nbctl(port, &["ls-add", "persist0"]).status.success());
    assert!(nbctl(
        port,
        &[
            "lsp-add",
            "persist0",
            "pp1",
            "--",
            "lsp-set-addresses",
            "pp1",
            "00:00:00:00:00:09 10.9.0.9"
        ]
    )
    .status
    .success());
    let dir = ours.dir;
    drop(ours.rt);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = control::db::DbServerConfig {
        nb_remotes: vec!["ptcp:0:127.0.0.1".parse().unwrap()],
        sb_remotes: vec!["ptcp:0:127.0.0.1".parse().unwrap()],
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let running = rt.block_on(control::db::start(&cfg)).unwrap();
    let control::server::Remote::Tcp(addr) = &running.nb_remotes[0] else {
        unreachable!()
    };
    let out = nbctl(addr.port(), &["lsp-get-addresses", "pp1"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "00:00:00:00:00:09 10.9.0.9"
    );
}
