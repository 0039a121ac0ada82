//! Benchmark: northd-lite at cloud scale, on the 500-tenant topology of the
//! OVSDB load benchmark (`ovsdb::scale_bench`, about 20,000 VIF ports).
//!
//! Measures, with our OVSDB server holding NB and SB:
//! - cold: from northd-lite's start to `sb_cfg` reaching the loaded NB's
//!   `nb_cfg` (every Datapath_Binding and Port_Binding written), and its RSS;
//! - `lsp-add` latency with `--wait=sb` (median, p99 of 30): through a
//!   long-lived `ovn-nbctl` daemon (how a CMS such as Neutron talks to NB),
//!   through one-shot `ovn-nbctl` (which first downloads all of NB), and
//!   through our client library;
//! - `lsp-add --wait=hv` with one `switchyard node` that hosts a port of the
//!   switch the ports are added to (so each add changes its tables).
//!
//! Run as root after `cargo build --release` (for the node binary):
//! `cargo bench -p ovn-northd-lite --bench northd_scale` (env `TENANTS`,
//! default 500; `NORTHD_LOG=northd=debug` for northd-lite's log,
//! `SERVER_LOG=ovsdb=info` for the in-process OVSDB server's, `SAMPLES=1`
//! to print every sample). `cargo test --all-targets` runs it at 5 tenants as a smoke
//! test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ovsdb::client::txn::{clause, set};
use ovsdb::client::{Backoff, Connection, Idl, TableRequest, Transaction};
use ovsdb::db::DbServerConfig;
use serde_json::json;

use ovsdb::scale_bench::{rss_kib, Proc};

fn rss_mib(pid: u32) -> (f64, f64) {
    let (rss, hwm) = rss_kib(pid);
    (rss as f64 / 1024.0, hwm as f64 / 1024.0)
}

fn sh(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Median and p99 in milliseconds.
fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (p(0.5), p(0.99))
}

fn report(what: &str, samples: Vec<f64>) {
    let n = samples.len();
    let (median, p99) = stats(samples);
    println!("{what:<44} median {median:>8.2} ms   p99 {p99:>8.2} ms   ({n} adds)");
    println!(
        "{}",
        json!({"benchmark": what, "median_ms": median, "p99_ms": p99, "samples": n})
    );
}

fn node_binary() -> Option<PathBuf> {
    let p = std::env::var_os("SWITCHYARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/switchyard")
        });
    p.exists().then_some(p)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("SERVER_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let tenants: usize = std::env::var("TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benchmarking { 500 } else { 5 });
    let adds = if benchmarking { 30 } else { 3 };
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
    let (nb, sb) = (db.nb_remotes[0].clone(), db.sb_remotes[0].clone());
    let (nb_s, sb_s) = (nb.to_string(), sb.to_string());

    // Load NB: the topology and NB_Global with nb_cfg = 1.
    let mut params = ovsdb::scale_bench::nb_topology(tenants);
    params
        .as_array_mut()
        .unwrap()
        .push(json!({"op": "insert", "table": "NB_Global", "row": {"nb_cfg": 1}}));
    let t0 = Instant::now();
    rt.block_on(async {
        let (conn, _notes) = Connection::connect(&nb, 1 << 30).await.unwrap();
        let r = conn.call("transact", params).await.unwrap();
        assert!(
            r.as_array()
                .unwrap()
                .iter()
                .all(|x| x.get("error").is_none()),
            "loading NB failed"
        );
    });
    let vifs = tenants * 40;
    println!(
        "{tenants} tenants ({vifs} VIF ports) loaded into NB in {:.2} s",
        t0.elapsed().as_secs_f64()
    );

    let nb_idl = {
        let _g = rt.enter();
        Idl::start(
            vec![nb.clone()],
            "OVN_Northbound",
            vec![TableRequest::all("NB_Global")],
            Backoff::default(),
        )
        .unwrap()
    };
    let sb_cfg_at_least = |n: i64, timeout: Duration| {
        rt.block_on(nb_idl.wait_until(timeout, |r| {
            r.table("NB_Global")
                .next()
                .is_some_and(|(_, g)| g.integer("sb_cfg") >= n)
        }))
        .is_ok()
    };

    // Cold start.
    let t0 = Instant::now();
    let northd = Proc(
        Command::new(env!("CARGO_BIN_EXE_ovn-northd-lite"))
            .args(["--ovnnb-db", &nb_s, "--ovnsb-db", &sb_s])
            .env(
                "RUST_LOG",
                std::env::var("NORTHD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .spawn()
            .unwrap(),
    );
    assert!(
        sb_cfg_at_least(1, Duration::from_secs(600)),
        "northd-lite never caught up"
    );
    let cold = t0.elapsed().as_secs_f64();
    let (rss, hwm) = rss_mib(northd.0.id());
    let bindings = sh(
        &[
            "ovn-sbctl",
            &format!("--db={sb_s}"),
            "--bare",
            "--columns=_uuid",
            "list",
            "Port_Binding",
        ],
        &[],
    )
    .split_whitespace()
    .count();
    println!(
        "cold: northd-lite wrote SB ({bindings} port bindings) in {cold:.3} s; RSS {rss:.1} MiB (peak {hwm:.1} MiB)"
    );
    println!(
        "{}",
        json!({"benchmark": "northd-cold", "tenants": tenants, "seconds": cold, "port_bindings": bindings, "rss_mib": rss, "peak_rss_mib": hwm})
    );

    // lsp-add --wait=sb through a long-lived ovn-nbctl daemon.
    let daemon_pid = dir.path().join("nbctl.pid");
    let socket = sh(
        &[
            "ovn-nbctl",
            &format!("--db={nb_s}"),
            "--detach",
            &format!("--pidfile={}", daemon_pid.display()),
            "--log-file=/dev/null",
        ],
        &[("OVN_RUNDIR", dir.path().to_str().unwrap())],
    );
    let socket = socket.trim().to_string();
    let daemon_env = [("OVN_NB_DAEMON", socket.as_str())];
    let timed = |args: &[&str], env: &[(&str, &str)]| {
        let t = Instant::now();
        sh(args, env);
        t.elapsed().as_secs_f64() * 1e3
    };
    let mut samples = Vec::new();
    for i in 0..adds {
        let t = i % tenants;
        samples.push(timed(
            &[
                "ovn-nbctl",
                "--wait=sb",
                "lsp-add",
                &format!("t{t}-net1"),
                &format!("bench-d{i}"),
            ],
            &daemon_env,
        ));
    }
    report("lsp-add --wait=sb (ovn-nbctl daemon)", samples);

    // One-shot ovn-nbctl: includes downloading all of NB first.
    let mut samples = Vec::new();
    for i in 0..adds.min(10) {
        let t = i % tenants;
        samples.push(timed(
            &[
                "ovn-nbctl",
                &format!("--db={nb_s}"),
                "--wait=sb",
                "lsp-add",
                &format!("t{t}-net1"),
                &format!("bench-o{i}"),
            ],
            &[],
        ));
    }
    report("lsp-add --wait=sb (one-shot ovn-nbctl)", samples);

    // Our client: insert + nb_cfg bump in one transaction, then wait for
    // `column` (sb_cfg or hv_cfg) to reach it, as ovn-nbctl --wait does.
    let client_add = |switch: &str, name: &str, column: &str| {
        let start = Instant::now();
        let mut txn = Transaction::new("OVN_Northbound");
        let lsp = txn.insert("Logical_Switch_Port", [("name", json!(name))]);
        txn.mutate(
            "Logical_Switch",
            vec![clause("name", "==", json!(switch))],
            [("ports", "insert", set([lsp.to_json()]))],
        );
        txn.mutate("NB_Global", vec![], [("nb_cfg", "+=", json!(1))]);
        let sel = txn.select("NB_Global", vec![], Some(&["nb_cfg"]));
        let reply = rt.block_on(nb_idl.transact(&txn)).unwrap();
        let want = reply.rows(sel)[0]["nb_cfg"].as_i64().unwrap();
        let reached = rt.block_on(nb_idl.wait_until(Duration::from_secs(30), |r| {
            r.table("NB_Global")
                .next()
                .is_some_and(|(_, g)| g.integer(column) >= want)
        }));
        assert!(reached.is_ok(), "{column} never reached {want}");
        start.elapsed().as_secs_f64() * 1e3
    };
    let samples: Vec<f64> = (0..adds)
        .map(|i| {
            client_add(
                &format!("t{}-net1", i % tenants),
                &format!("bench-c{i}"),
                "sb_cfg",
            )
        })
        .collect();
    if std::env::var_os("SAMPLES").is_some() {
        println!("{samples:.1?}");
    }
    report("lsp-add --wait=sb (switchyard client)", samples);

    // --wait=hv with one node hosting a port of t0-net0.
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    match (node_binary(), is_root) {
        (Some(bin), true) => {
            let _ = Command::new("ip")
                .args(["link", "del", "sybench0"])
                .output();
            sh(
                &[
                    "ip", "link", "add", "sybench0", "type", "veth", "peer", "name", "sybench1",
                ],
                &[],
            );
            sh(&["ip", "link", "set", "sybench0", "up"], &[]);
            sh(&["ip", "link", "set", "sybench1", "up"], &[]);
            let ctl = dir.path().join("node.ctl");
            let metrics = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().to_string()
            };
            let node = Proc(
                Command::new(&bin)
                    .args(["node", "--chassis", "bench-hv1", "--sb", &sb_s])
                    .args(["--ctl", ctl.to_str().unwrap(), "--metrics", &metrics])
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while !ctl.exists() {
                assert!(Instant::now() < deadline, "node did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            sh(
                &[
                    bin.to_str().unwrap(),
                    "port-add",
                    "sybench0",
                    "--iface-id",
                    "t0-s0-p0",
                    "--ctl",
                    ctl.to_str().unwrap(),
                ],
                &[],
            );
            sh(&["ovn-nbctl", "--wait=hv", "sync"], &daemon_env);
            let mut samples = Vec::new();
            for i in 0..adds {
                samples.push(timed(
                    &[
                        "ovn-nbctl",
                        "--wait=hv",
                        "lsp-add",
                        "t0-net0",
                        &format!("bench-h{i}"),
                        "--",
                        "lsp-set-addresses",
                        &format!("bench-h{i}"),
                        &format!(
                            "02:ee:00:00:{:02x}:{:02x} 10.250.{}.{}",
                            i / 256,
                            i % 256,
                            i / 200,
                            i % 200 + 2
                        ),
                    ],
                    &daemon_env,
                ));
            }
            report("lsp-add --wait=hv (ovn-nbctl daemon, 1 node)", samples);
            let samples: Vec<f64> = (0..adds)
                .map(|i| client_add("t0-net0", &format!("bench-hc{i}"), "hv_cfg"))
                .collect();
            report("lsp-add --wait=hv (switchyard client, 1 node)", samples);
            let (rss, _) = rss_mib(node.0.id());
            println!("node RSS {rss:.1} MiB");
            drop(node);
            let _ = Command::new("ip")
                .args(["link", "del", "sybench0"])
                .output();
        }
        (None, _) => println!("--wait=hv skipped: build the node first (cargo build --release)"),
        (_, false) => println!("--wait=hv skipped: needs root (a veth port on the node)"),
    }
    let _ = Command::new("ovn-appctl")
        .args(["-t", &socket, "exit"])
        .output();
    drop(northd);
}
