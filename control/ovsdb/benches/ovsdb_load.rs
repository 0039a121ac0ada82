//! Benchmark: load a 500-tenant OVN topology in one `transact` into our server and into a real
//! `ovsdb-server` serving the same schema file, and report wall time and server RSS.
//!
//! The topology is [`ovsdb::scale_bench::nb_topology`] (about 20,000 VIF ports at 500 tenants).
//! Both servers run as separate processes with fresh data directories.
//!
//! Run: `cargo bench -p switchyard-control --bench ovsdb_load` (env `TENANTS`, default 500,
//! `OVSDB_SERVER=0` to skip the comparison, `SERVER_LOG=ovsdb=debug` for per-phase timings).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ovsdb::jsonrpc::Splitter;
use serde_json::{json, Value};

use ovsdb::scale_bench::{rss_kib, Proc};

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends the transaction and waits for the reply; returns (seconds, ok).
fn load(port: u16, request: &[u8]) -> (f64, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let started = Instant::now();
    s.write_all(request).unwrap();
    let mut splitter = Splitter::new(1 << 30);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if let Some(m) = splitter.next_message().unwrap() {
            let v: Value = serde_json::from_slice(&m).unwrap();
            if v["id"] == json!(1) {
                let secs = started.elapsed().as_secs_f64();
                let ok = v["error"].is_null()
                    && v["result"]
                        .as_array()
                        .is_some_and(|r| r.iter().all(|x| x.get("error").is_none()));
                if !ok {
                    let errs: Vec<&Value> = v["result"]
                        .as_array()
                        .map(|r| r.iter().filter(|x| x.get("error").is_some()).collect())
                        .unwrap_or_default();
                    eprintln!("transaction failed: {} {:?}", v["error"], errs);
                }
                return (secs, ok);
            }
            continue;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "server closed the connection");
        splitter.push(&buf[..n]);
    }
}

fn report(name: &str, pid: u32, secs: f64, ok: bool) {
    let (rss, hwm) = rss_kib(pid);
    println!(
        "{name:<14} load {secs:>7.3} s   RSS after {:>7.1} MiB   peak RSS {:>7.1} MiB   {}",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        if ok { "ok" } else { "FAILED" }
    );
    // A load that failed makes the whole run fail (this also runs as a smoke test).
    assert!(ok, "{name} rejected the topology transaction");
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let tenants: usize = std::env::var("TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benchmarking { 500 } else { 5 });
    let request = serde_json::to_vec(
        &json!({"id": 1, "method": "transact", "params": ovsdb::scale_bench::nb_topology(tenants)}),
    )
    .unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/ovn-nb.ovsschema");
    println!(
        "{tenants} tenants, one transact of {:.1} MiB",
        request.len() as f64 / (1 << 20) as f64
    );

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let ours = Proc(
        Command::new(env!("CARGO_BIN_EXE_switchyard-db"))
            .arg(format!("--nb-remote=ptcp:{port}:127.0.0.1"))
            .arg(format!(
                "--sb-remote=punix:{}",
                dir.path().join("sb.sock").display()
            ))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--max-message-bytes=1073741824")
            .env(
                "RUST_LOG",
                std::env::var("SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port);
    let (secs, ok) = load(port, &request);
    report("switchyard-db", ours.0.id(), secs, ok);
    drop(ours);

    if std::env::var("OVSDB_SERVER").as_deref() == Ok("0") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nb.db");
    let created = Command::new("ovsdb-tool")
        .arg("create")
        .arg(&db)
        .arg(&schema)
        .status();
    if !created.is_ok_and(|s| s.success()) {
        println!("ovsdb-server    skipped (ovsdb-tool from openvswitch-common is not installed)");
        return;
    }
    let port = free_port();
    let real = Proc(
        Command::new("ovsdb-server")
            .arg(&db)
            .arg(format!("--remote=ptcp:{port}:127.0.0.1"))
            .arg(format!("--unixctl={}", dir.path().join("ctl").display()))
            .arg("--no-chdir")
            .arg("-vconsole:off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port);
    let (secs, ok) = load(port, &request);
    report("ovsdb-server", real.0.id(), secs, ok);
}
