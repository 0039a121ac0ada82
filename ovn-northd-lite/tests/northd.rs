//! northd-lite against our OVSDB server, driven by the real `ovn-nbctl`:
//! SB contents, tunnel keys, the nb_cfg chain, active/standby, and that
//! incremental processing ends where a full recompute starts.

use std::process::Command;
use std::time::{Duration, Instant};

use ovsdb::client::Backoff;
use ovsdb::db::{DbServerConfig, RunningDb};

struct Setup {
    rt: tokio::runtime::Runtime,
    db: RunningDb,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        for tool in ["ovn-nbctl", "ovsdb-client"] {
            let ok = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                ok,
                "{tool} is missing: apt-get install ovn-common openvswitch-common"
            );
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = rt
            .block_on(ovsdb::db::start(&DbServerConfig {
                nb_remotes: vec!["ptcp:0:127.0.0.1".parse().unwrap()],
                sb_remotes: vec!["ptcp:0:127.0.0.1".parse().unwrap()],
                data_dir: dir.path().to_path_buf(),
                ..DbServerConfig::default()
            }))
            .unwrap();
        Setup { rt, db, _dir: dir }
    }

    fn config(&self) -> northd::Config {
        northd::Config {
            nb: self.db.nb_remotes.clone(),
            sb: self.db.sb_remotes.clone(),
            backoff: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(200),
                inactivity_probe: Duration::from_secs(5),
            },
        }
    }

    fn northd(&self) -> tokio::task::JoinHandle<()> {
        let n = self.start_northd();
        self.rt.spawn(n.run())
    }

    /// Like [`Setup::northd`], and returns once the instance is connected
    /// to NB and SB (its SB session asks for the lock right after).
    fn connected_northd(&self) -> tokio::task::JoinHandle<()> {
        let n = self.start_northd();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !n.is_connected() {
            assert!(Instant::now() < deadline, "northd-lite did not connect");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.rt.spawn(n.run())
    }

    fn start_northd(&self) -> northd::Northd {
        let _guard = self.rt.enter();
        northd::Northd::start(&self.config()).unwrap()
    }

    fn nbctl(&self, args: &[&str]) -> String {
        let db = format!("--db={}", self.db.nb_remotes[0]);
        run(
            "ovn-nbctl",
            &[&[db.as_str(), "--timeout=20"], args].concat(),
        )
    }

    fn sb(&self, args: &[&str]) -> String {
        let db = format!("--db={}", self.db.sb_remotes[0]);
        run("ovn-sbctl", &[&[db.as_str()], args].concat())
    }

    /// The SB database as `ovsdb-client dump` prints it (uuids included: a
    /// row deleted and re-created shows), but for SB_Global, whose nb_cfg
    /// follows every `ovn-nbctl --wait`.
    fn sb_dump(&self) -> String {
        let sb = self.db.sb_remotes[0].to_string();
        let dump = run("ovsdb-client", &["dump", &sb, "OVN_Southbound"]);
        dump.split("\n\n")
            .filter(|t| !t.starts_with("SB_Global table"))
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// Every row of SB table `table`, as `ovsdb-client transact` selects it.
    fn sb_select(&self, table: &str) -> Vec<serde_json::Value> {
        let sb = self.db.sb_remotes[0].to_string();
        let q =
            serde_json::json!(["OVN_Southbound", {"op": "select", "table": table, "where": []}]);
        let out = run("ovsdb-client", &["transact", &sb, &q.to_string()]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["rows"].as_array().cloned().unwrap_or_default()
    }
}

/// Runs an OVN/OVS tool; panics with its stderr if it fails.
fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field(sb_list: &str, name: &str) -> Vec<String> {
    sb_list
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

#[test]
fn switches_and_ports_become_bindings_with_stable_keys() {
    let s = Setup::new();
    let _n = s.northd();
    s.nbctl(&[
        "--wait=sb",
        "ls-add",
        "ls1",
        "--",
        "lsp-add",
        "ls1",
        "vm1",
        "--",
        "lsp-set-addresses",
        "vm1",
        "00:00:00:00:00:01 10.0.0.1",
        "--",
        "lsp-set-port-security",
        "vm1",
        "00:00:00:00:00:01 10.0.0.1",
        "--",
        "lsp-add",
        "ls1",
        "vm2",
        "--",
        "ls-add",
        "ls2",
    ]);
    let dps = s.sb(&[
        "--columns=tunnel_key,external_ids",
        "list",
        "Datapath_Binding",
    ]);
    let mut keys = field(&dps, "tunnel_key");
    keys.sort();
    assert_eq!(keys, ["1", "2"], "{dps}");
    assert!(
        dps.contains("name=ls1") && dps.contains("name=ls2"),
        "{dps}"
    );
    let vm1 = s.sb(&["find", "Port_Binding", "logical_port=vm1"]);
    assert_eq!(field(&vm1, "mac"), ["[\"00:00:00:00:00:01 10.0.0.1\"]"]);
    assert_eq!(
        field(&vm1, "port_security"),
        ["[\"00:00:00:00:00:01 10.0.0.1\"]"]
    );
    let key = |p: &str| {
        field(
            &s.sb(&["find", "Port_Binding", &format!("logical_port={p}")]),
            "tunnel_key",
        )
    };
    let mut port_keys = [key("vm1"), key("vm2")].concat();
    port_keys.sort();
    assert_eq!(port_keys, ["1", "2"]);
    let vm2_key = key("vm2");

    // A freed key is not handed out again at once; the others stay.
    s.nbctl(&["--wait=sb", "lsp-del", "vm1", "--", "lsp-add", "ls1", "vm3"]);
    assert_eq!(key("vm3"), ["3"]);
    assert_eq!(key("vm2"), vm2_key);
    assert!(s
        .sb(&["find", "Port_Binding", "logical_port=vm1"])
        .is_empty());

    // Deleting a switch deletes its datapath and bindings.
    s.nbctl(&["--wait=sb", "ls-del", "ls1"]);
    let dps = s.sb(&["--columns=external_ids", "list", "Datapath_Binding"]);
    assert!(
        !dps.contains("name=ls1") && dps.contains("name=ls2"),
        "{dps}"
    );
    assert!(s.sb(&["list", "Port_Binding"]).is_empty());

    // nb_cfg went through SB; no chassis, so hv_cfg follows too.
    let g = s.nbctl(&["list", "NB_Global"]);
    let nb_cfg = field(&g, "nb_cfg");
    assert_eq!(field(&g, "sb_cfg"), nb_cfg);
    s.nbctl(&["--wait=hv", "sync"]);
}

#[test]
fn routers_become_patch_port_pairs() {
    let s = Setup::new();
    let _n = s.northd();
    s.nbctl(&[
        "--wait=sb",
        "ls-add",
        "ls1",
        "--",
        "lr-add",
        "lr1",
        "--",
        "lrp-add",
        "lr1",
        "lrp1",
        "00:00:00:00:ff:01",
        "10.0.0.254/24",
        "--",
        "lsp-add",
        "ls1",
        "ls1-lr1",
        "--",
        "lsp-set-type",
        "ls1-lr1",
        "router",
        "--",
        "lsp-set-addresses",
        "ls1-lr1",
        "router",
        "--",
        "lsp-set-options",
        "ls1-lr1",
        "router-port=lrp1",
    ]);
    let dps = s.sb(&["--columns=external_ids", "list", "Datapath_Binding"]);
    assert!(
        dps.contains("logical-router=") && dps.contains("name=lr1"),
        "{dps}"
    );
    let lsp = s.sb(&["find", "Port_Binding", "logical_port=ls1-lr1"]);
    assert_eq!(field(&lsp, "type"), ["patch"]);
    assert_eq!(
        field(&lsp, "mac"),
        ["[\"00:00:00:00:ff:01 10.0.0.254/24\"]"]
    );
    assert!(field(&lsp, "options")[0].contains("peer=lrp1"), "{lsp}");
    let lrp = s.sb(&["find", "Port_Binding", "logical_port=lrp1"]);
    assert_eq!(field(&lrp, "type"), ["patch"]);
    assert!(field(&lrp, "options")[0].contains("peer=ls1-lr1"), "{lrp}");
}

/// A pseudo-random run of NB changes, processed incrementally, ends in the
/// SB that a fresh northd-lite (full recompute) finds nothing to change in;
/// and a restart changes no row.
#[test]
fn incremental_processing_agrees_with_a_full_recompute() {
    let s = Setup::new();
    let n = s.northd();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    for i in 0..60 {
        let ls = format!("ls{}", next(4));
        let port = format!("p{}", next(12));
        let mac = format!("00:00:00:00:{:02x}:{:02x}", next(256), i);
        let cmd: Vec<String> = match next(7) {
            0 => vec!["--may-exist", "ls-add", &ls]
                .into_iter()
                .map(String::from)
                .collect(),
            1 => vec!["--if-exists", "ls-del", &ls]
                .into_iter()
                .map(String::from)
                .collect(),
            2 | 3 => vec![
                "--may-exist",
                "ls-add",
                &ls,
                "--",
                "--may-exist",
                "lsp-add",
                &ls,
                &port,
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            4 => vec!["--if-exists", "lsp-del", &port]
                .into_iter()
                .map(String::from)
                .collect(),
            5 => vec![
                "--may-exist".to_string(),
                "ls-add".to_string(),
                ls.clone(),
                "--".to_string(),
                "--may-exist".to_string(),
                "lsp-add".to_string(),
                ls.clone(),
                port.clone(),
                "--".to_string(),
                "lsp-set-addresses".to_string(),
                port.clone(),
                format!("{mac} 10.0.{}.{}", next(4), i + 1),
            ],
            _ => vec![
                "--may-exist".to_string(),
                "ls-add".to_string(),
                ls.clone(),
                "--".to_string(),
                "--may-exist".to_string(),
                "lsp-add".to_string(),
                ls.clone(),
                port.clone(),
                "--".to_string(),
                "lsp-set-port-security".to_string(),
                port.clone(),
                mac.clone(),
            ],
        };
        let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        // Sometimes wait, sometimes let changes pile up into one round.
        if next(3) == 0 {
            args.insert(0, "--wait=sb");
        }
        // Moving a port between switches is not an lsp-add: skip failures
        // of that kind by deleting first.
        if args.contains(&"lsp-add") {
            s.nbctl(&["--if-exists", "lsp-del", &port]);
        }
        s.nbctl(&args);
    }
    s.nbctl(&["--wait=sb", "sync"]);
    let before = s.sb_dump();
    // Every NB port has its binding.
    let nb_ports = s.nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"]);
    let sb_ports = s.sb(&["--bare", "--columns=logical_port", "list", "Port_Binding"]);
    let mut a: Vec<&str> = nb_ports.split_whitespace().collect();
    let mut b: Vec<&str> = sb_ports.split_whitespace().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);

    n.abort();
    let _fresh = s.northd();
    // The fresh instance is active once a change of ours goes through.
    s.nbctl(&["--wait=sb", "sync"]);
    assert_eq!(s.sb_dump(), before, "a full recompute changed SB");
}

#[test]
fn a_standby_takes_over_when_the_active_instance_goes() {
    let s = Setup::new();
    let active = s.northd();
    s.nbctl(&["--wait=sb", "ls-add", "ls1"]);
    // Standing by when the active instance goes, not started after it.
    let standby = s.connected_northd();
    active.abort();
    s.nbctl(&["--wait=sb", "ls-add", "ls2"]);
    let dps = s.sb(&["--columns=external_ids", "list", "Datapath_Binding"]);
    assert!(dps.contains("name=ls2"), "{dps}");
    standby.abort();
}

/// ACLs on a switch and on a port group become typed SB ACL rows naming
/// their datapaths; port groups and address sets (with each group's
/// `_ip4`/`_ip6` set) follow NB; a match that does not parse stays out;
/// changes and deletions follow.
#[test]
fn acls_port_groups_and_address_sets_reach_sb() {
    let s = Setup::new();
    let _n = s.northd();
    let dump = |table: &str| {
        let sb = s.db.sb_remotes[0].to_string();
        run("ovsdb-client", &["dump", &sb, "OVN_Southbound", table])
    };
    s.nbctl(&[
        "--wait=sb",
        "ls-add",
        "ls1",
        "--",
        "lsp-add",
        "ls1",
        "vm1",
        "--",
        "lsp-set-addresses",
        "vm1",
        "00:00:00:00:00:01 10.0.0.1 fd00::1",
        "--",
        "ls-add",
        "ls2",
        "--",
        "lsp-add",
        "ls2",
        "vm2",
    ]);
    s.nbctl(&["pg-add", "pg_a", "vm1"]);
    s.nbctl(&[
        "create",
        "Address_Set",
        "name=as1",
        "addresses=\"10.1.0.0/16\",\"10.2.0.1\"",
    ]);
    s.nbctl(&[
        "--type=port-group",
        "--name=pg-acl",
        "acl-add",
        "pg_a",
        "to-lport",
        "1002",
        "outport == @pg_a && ip4.src == $as1 && tcp.dst == 22",
        "allow-related",
    ]);
    s.nbctl(&[
        "--name=ls-acl",
        "acl-add",
        "ls2",
        "from-lport",
        "100",
        "ip6",
        "drop",
    ]);
    s.nbctl(&[
        "--wait=sb",
        "acl-add",
        "ls2",
        "from-lport",
        "101",
        "ip4 &&",
        "drop",
    ]);
    let acls = dump("ACL");
    assert!(acls.contains("pg-acl") && acls.contains("ls-acl"), "{acls}");
    assert!(!acls.contains("ip4 &&"), "a bad match reached SB: {acls}");
    let dps = dump("Datapath_Binding");
    let dp_of = |name: &str| {
        dps.lines()
            .find(|l| {
                l.contains(&format!("name={name}")) || l.contains(&format!("name=\"{name}\""))
            })
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no datapath {name}: {dps}"))
            .to_string()
    };
    let (ls1, ls2) = (dp_of("ls1"), dp_of("ls2"));
    let line = |name: &str| {
        acls.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name}: {acls}"))
            .to_string()
    };
    assert!(line("pg-acl").contains(&ls1) && !line("pg-acl").contains(&ls2));
    assert!(line("ls-acl").contains(&ls2) && !line("ls-acl").contains(&ls1));
    let sets = dump("Address_Set");
    assert!(
        sets.contains("pg_a_ip4") && sets.contains("\"10.0.0.1\""),
        "{sets}"
    );
    assert!(
        sets.contains("pg_a_ip6") && sets.contains("\"fd00::1\""),
        "{sets}"
    );
    assert!(sets.contains("\"10.1.0.0/16\""), "{sets}");
    assert!(dump("Port_Group").contains("pg_a"));

    // The group moves to ls2: its ACL follows; the switch ACL goes.
    s.nbctl(&["pg-set-ports", "pg_a", "vm2"]);
    s.nbctl(&["--wait=sb", "acl-del", "ls2", "from-lport", "100", "ip6"]);
    let acls = dump("ACL");
    assert!(!acls.contains("ls-acl"), "{acls}");
    let pg_line = acls
        .lines()
        .find(|l| l.contains("pg-acl"))
        .unwrap()
        .to_string();
    assert!(pg_line.contains(&ls2) && !pg_line.contains(&ls1), "{acls}");
    assert!(!dump("Address_Set").contains("\"10.0.0.1\""));
    // Nothing changes when nothing changed.
    let before = s.sb_dump();
    s.nbctl(&["--wait=sb", "sync"]);
    assert_eq!(s.sb_dump(), before);
}

/// Routers reach SB as OVN puts them there (a Datapath_Binding, patch
/// Port_Bindings whose `mac` holds the router port's MAC and networks)
/// and their static routes as typed `Logical_Router_Static_Route` rows
/// referencing the router's datapath, in SB by the time `--wait=sb`
/// returns, and gone with the route or the router.
#[test]
fn routers_ports_and_static_routes_reach_sb() {
    let s = Setup::new();
    let _n = s.northd();
    s.nbctl(&[
        "--wait=sb",
        "lr-add",
        "lr0",
        "--",
        "lrp-add",
        "lr0",
        "lrp1",
        "00:00:00:00:ff:01",
        "10.0.1.254/24",
        "fd01::fe/64",
        "--",
        "ls-add",
        "ls1",
        "--",
        "lsp-add",
        "ls1",
        "ls1-lr0",
        "--",
        "lsp-set-type",
        "ls1-lr0",
        "router",
        "--",
        "lsp-set-options",
        "ls1-lr0",
        "router-port=lrp1",
        "--",
        "lsp-set-addresses",
        "ls1-lr0",
        "router",
        "--",
        "lr-route-add",
        "lr0",
        "192.0.2.0/24",
        "10.0.1.5",
        "--",
        "--policy=src-ip",
        "lr-route-add",
        "lr0",
        "10.0.1.0/24",
        "10.0.1.6",
        "--",
        "lr-route-add",
        "lr0",
        "198.51.100.0/24",
        "discard",
    ]);
    let lrp = s.sb(&["find", "Port_Binding", "logical_port=lrp1"]);
    assert_eq!(field(&lrp, "type"), ["patch"]);
    assert_eq!(
        field(&lrp, "mac"),
        ["[\"00:00:00:00:ff:01 10.0.1.254/24 fd01::fe/64\"]"]
    );
    let lsp = s.sb(&["find", "Port_Binding", "logical_port=ls1-lr0"]);
    assert_eq!(field(&lsp, "mac"), field(&lrp, "mac"));
    assert!(lsp.contains("peer=lrp1"), "{lsp}");
    let lr_dp = s.sb(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Datapath_Binding",
        "external_ids:name=lr0",
    ]);
    let lr_dp = lr_dp.trim();
    // ovn-sbctl knows only OVN's own tables: select through ovsdb-client.
    let routes = || {
        let mut rows: Vec<String> = s
            .sb_select("Logical_Router_Static_Route")
            .iter()
            .map(|r| {
                assert_eq!(r["datapath"], serde_json::json!(["uuid", lr_dp]), "{r}");
                format!(
                    "{} {} {} {}",
                    r["ip_prefix"].as_str().unwrap(),
                    r["nexthop"].as_str().unwrap(),
                    r["policy"],
                    r["output_port"]
                )
            })
            .collect();
        rows.sort();
        rows
    };
    let none = r#"["set",[]]"#;
    assert_eq!(
        routes(),
        [
            format!("10.0.1.0/24 10.0.1.6 \"src-ip\" {none}"),
            format!("192.0.2.0/24 10.0.1.5 {none} {none}"),
            format!("198.51.100.0/24 discard {none} {none}"),
        ]
    );

    s.nbctl(&["--wait=sb", "lr-route-del", "lr0", "192.0.2.0/24"]);
    assert_eq!(routes().len(), 2, "{:?}", routes());
    assert!(!routes().iter().any(|r| r.starts_with("192.0.2.0/24")));

    s.nbctl(&["--wait=sb", "lr-del", "lr0"]);
    assert!(s.sb_select("Logical_Router_Static_Route").is_empty());
    assert!(s
        .sb(&["find", "Datapath_Binding", "external_ids:name=lr0"])
        .is_empty());
}
