//! The real `ovn-nbctl`, `ovn-sbctl` and `ovsdb-client` against our server and against a real
//! `ovsdb-server` serving the same schema file: every command must succeed or fail the same way
//! and print the same thing once UUIDs (and the order of rows, which follows UUID hashing in the
//! IDL) are normalized.

mod common;

use std::process::{Command, Output};

use common::{nbctl, require_tool, OurServer, RealOvsdb};
use ovsdb::server::ServerConfig;

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
    &["dhcp-options-create", "10.0.0.0/24", "tenant=t1"],
    &["dhcp-options-list"],
    &[
        "lb-add",
        "lb0",
        "172.16.0.100:80",
        "10.0.0.1:8080,10.0.0.2:8080",
        "tcp",
    ],
    &["lb-list"],
    &["ls-lb-add", "sw0", "lb0"],
    &["ls-lb-list", "sw0"],
    &["lr-lb-add", "r0", "lb0"],
    &["lr-lb-list", "r0"],
    &["lrp-set-gateway-chassis", "rp1", "hv1", "20"],
    &["lrp-set-gateway-chassis", "rp1", "hv2", "10"],
    &["lrp-get-gateway-chassis", "rp1"],
    &["lrp-del-gateway-chassis", "rp1", "hv2"],
    &["lrp-get-gateway-chassis", "rp1"],
    &["meter-add", "m1", "drop", "100", "pktps"],
    &["meter-list"],
    &["ha-chassis-group-add", "hag1"],
    &["ha-chassis-group-add-chassis", "hag1", "hv1", "30"],
    &["ha-chassis-group-list"],
    &["--may-exist", "ls-add", "sw0"],
    &["--if-exists", "ls-del", "nope"],
    &["ls-lb-del", "sw0", "lb0"],
    &["lb-del", "lb0"],
    &["lb-list"],
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

/// Runs the same command against both servers and asserts identical (normalized) behaviour.
fn compare(what: &str, ours: Output, real: Output) -> bool {
    let (ao, bo) = (
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&real.stdout),
    );
    let (ae, be) = (
        String::from_utf8_lossy(&ours.stderr),
        String::from_utf8_lossy(&real.stderr),
    );
    assert_eq!(
        ours.status.code(),
        real.status.code(),
        "exit status of {what}\nours: {ao}{ae}\nreal: {bo}{be}"
    );
    assert_eq!(normalize(&ao), normalize(&bo), "stdout of {what}");
    assert_eq!(normalize(&ae), normalize(&be), "stderr of {what}");
    ours.status.success()
}

fn tool(program: &str, args: &[String]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

/// `ovsdb-client dump` prints every table and column, including the empty ones.
fn dump(port: u16) -> Output {
    tool(
        "ovsdb-client",
        &[
            "dump".into(),
            format!("tcp:127.0.0.1:{port}"),
            "OVN_Northbound".into(),
        ],
    )
}

#[test]
fn ovn_sbctl_and_ovsdb_client_match_real_ovsdb_server() {
    require_tool("ovn-sbctl", "ovn-common");
    require_tool("ovsdb-client", "openvswitch-common");
    let ours = OurServer::start(ServerConfig::default());
    let ovsdb::server::Remote::Tcp(sb) = &ours.running.sb_remotes[0] else {
        unreachable!()
    };
    let real = RealOvsdb::start(&["ovn-sb.ovsschema"]);
    let commands: &[&[&str]] = &[
        &["chassis-add", "hv1", "geneve", "192.0.2.1"],
        &["chassis-add", "hv2", "geneve,vxlan", "192.0.2.2"],
        &["chassis-add", "hv1", "geneve", "192.0.2.1"],
        &["show"],
        &["list", "Encap"],
        &["find", "Chassis", "name=hv2"],
        &["set", "Chassis", "hv1", "external_ids:owner=test"],
        &["get", "Chassis", "hv1", "external_ids"],
        &["chassis-del", "hv1"],
        &["list", "Chassis"],
        &["list", "Encap"],
    ];
    for args in commands {
        let run = |port: u16| {
            let mut a = vec![
                format!("--db=tcp:127.0.0.1:{port}"),
                "--timeout=20".to_string(),
            ];
            a.extend(args.iter().map(|s| s.to_string()));
            tool("ovn-sbctl", &a)
        };
        compare(
            &format!("ovn-sbctl {args:?}"),
            run(sb.port()),
            run(real.port),
        );
    }
    for args in [
        vec!["list-tables"],
        vec!["list-columns", "Chassis"],
        vec!["get-schema-version"],
    ] {
        let run = |port: u16| {
            let mut a = vec![
                args[0].to_string(),
                format!("tcp:127.0.0.1:{port}"),
                "OVN_Southbound".to_string(),
            ];
            a.extend(args[1..].iter().map(|s| s.to_string()));
            tool("ovsdb-client", &a)
        };
        assert!(compare(
            &format!("ovsdb-client {args:?}"),
            run(sb.port()),
            run(real.port)
        ));
    }
}

#[test]
fn ovn_nbctl_matches_real_ovsdb_server() {
    require_tool("ovn-nbctl", "ovn-common");
    let ours = OurServer::start(ServerConfig::default());
    let real = RealOvsdb::start(&["ovn-nb.ovsschema"]);
    let (mut succeeded, mut failed, mut printed, mut dumps) = (0, 0, 0, 0);
    for args in COMMANDS {
        let a = nbctl(ours.nb_port(), args);
        printed += a.stdout.len();
        if compare(&format!("ovn-nbctl {args:?}"), a, nbctl(real.port, args)) {
            succeeded += 1;
        } else {
            failed += 1;
        }
        // At every `show`, the raw database contents must match too.
        if args == &["show"] {
            require_tool("ovsdb-client", "openvswitch-common");
            assert!(compare(
                "ovsdb-client dump",
                dump(ours.nb_port()),
                dump(real.port)
            ));
            dumps += 1;
        }
    }
    // The sequence exercises both success and error paths, and prints real output.
    assert!(succeeded >= 70, "only {succeeded} commands succeeded");
    assert!(failed >= 5, "only {failed} commands failed");
    assert!(
        printed > 2000,
        "suspiciously little output: {printed} bytes"
    );
    assert_eq!(dumps, 3);
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
    // Stop the first server completely (its sessions, then the server and its open logs)
    // before the second opens the same files: the files are locked while open.
    let dir = ours.dir;
    drop(ours.rt);
    drop(ours.running);
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
    let out = nbctl(addr.port(), &["lsp-get-addresses", "pp1"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "00:00:00:00:00:09 10.9.0.9"
    );
}

#[test]
fn ovn_nbctl_daemon_mode_follows_monitor_updates() {
    require_tool("ovn-nbctl", "ovn-common");
    let ours = OurServer::start(ServerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("nbctl.pid");
    // The daemon keeps one long-lived IDL session: every command below is answered from its
    // monitor-fed replica, so this exercises monitor_cond_since and update3 end to end.
    let daemon = Command::new("ovn-nbctl")
        .arg(format!("--db=tcp:127.0.0.1:{}", ours.nb_port()))
        .arg("--detach")
        .arg(format!("--pidfile={}", pidfile.display()))
        .arg(format!("--unixctl={}", dir.path().join("ctl").display()))
        .arg(format!("--log-file={}", dir.path().join("log").display()))
        .output()
        .unwrap();
    assert!(
        daemon.status.success(),
        "{}",
        String::from_utf8_lossy(&daemon.stderr)
    );
    // Stop the daemon even if an assertion below fails.
    struct Daemon(std::path::PathBuf);
    impl Drop for Daemon {
        fn drop(&mut self) {
            if let Ok(pid) = std::fs::read_to_string(&self.0) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
    let _daemon = Daemon(pidfile.clone());
    let ctl = String::from_utf8_lossy(&daemon.stdout).trim().to_string();
    let run = |args: &[&str]| {
        let out = Command::new("ovn-nbctl")
            .env("OVN_NB_DAEMON", &ctl)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ovn-nbctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    run(&["ls-add", "d1"]);
    run(&["lsp-add", "d1", "dp1"]);
    run(&["lsp-set-addresses", "dp1", "00:00:00:00:00:11 10.1.0.11"]);
    let show = run(&["show"]);
    assert!(
        show.contains("switch") && show.contains("(d1)") && show.contains("port dp1"),
        "{show}"
    );
    assert!(show.contains("00:00:00:00:00:11 10.1.0.11"), "{show}");
    // A change made by someone else reaches the daemon through the monitor.
    assert!(nbctl(ours.nb_port(), &["ls-add", "from-elsewhere"])
        .status
        .success());
    let mut listed = String::new();
    for _ in 0..50 {
        listed = run(&["ls-list"]);
        if listed.contains("from-elsewhere") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(listed.contains("from-elsewhere"), "{listed}");
    run(&["ls-del", "d1"]);
    assert!(!run(&["show"]).contains("(d1)"));
}
