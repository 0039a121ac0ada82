//! Benchmark: load a 500-tenant OVN topology in one `transact` into our server and into a real
//! `ovsdb-server` serving the same schema file, and report wall time and server RSS.
//!
//! Per tenant: one router (two subnet ports, one gateway port, a default route, SNAT per subnet
//! and two floating IPs), two switches with 20 VIF ports each (MAC+IP addresses and port
//! security) plus a router port, a port group over the 40 VIFs with 6 ACLs, and an address set.
//! A shared provider switch holds a localnet port and every router's gateway port: about 20,000
//! VIF ports in all. Both servers run as separate processes with fresh data directories.
//!
//! Run: `cargo bench -p switchyard-control --bench ovsdb_load` (env `TENANTS`, default 500,
//! `OVSDB_SERVER=0` to skip the comparison, `SERVER_LOG=control=debug` for per-phase timings).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use control::jsonrpc::Splitter;
use serde_json::{json, Value};

fn topology(tenants: usize) -> Value {
    let mut ops = vec![json!("OVN_Northbound")];
    let mut provider_ports = vec![];
    let named = |n: &str| json!(["named-uuid", n]);
    provider_ports.push(named("provider_ln"));
    ops.push(json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": "provider_ln",
        "row": {"name": "provider-localnet", "type": "localnet", "addresses": "unknown", "options": ["map", [["network_name", "physnet"]]]}}));
    for t in 0..tenants {
        let mut lr_ports = vec![];
        let mut nats = vec![];
        let mut vifs = vec![];
        let mut ips = vec![];
        for s in 0..2 {
            let subnet = format!("10.{}.{}", t / 128, (t % 128) * 2 + s);
            let mut ls_ports = vec![];
            for p in 0..20 {
                let name = format!("t{t}-s{s}-p{p}");
                let mac = format!(
                    "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    t >> 8,
                    t & 255,
                    s,
                    p,
                    1
                );
                let ip = format!("{subnet}.{}", p + 10);
                let addr = format!("{mac} {ip}");
                let id = format!("lsp_{t}_{s}_{p}");
                ops.push(json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": id,
                    "row": {"name": name, "addresses": addr, "port_security": addr,
                        "external_ids": ["map", [["neutron:device_owner", "compute:nova"], ["neutron:project_id", format!("tenant-{t}")]]]}}));
                ls_ports.push(named(&id));
                vifs.push(named(&id));
                ips.push(json!(ip));
            }
            let lrp = format!("lrp_{t}_{s}");
            ops.push(json!({"op": "insert", "table": "Logical_Router_Port", "uuid-name": lrp,
                "row": {"name": format!("t{t}-lrp{s}"), "mac": format!("02:{:02x}:{:02x}:{:02x}:00:fe", t >> 8, t & 255, s), "networks": format!("{subnet}.1/24")}}));
            lr_ports.push(named(&lrp));
            let rp = format!("rp_{t}_{s}");
            ops.push(json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": rp,
                "row": {"name": format!("t{t}-s{s}-router"), "type": "router", "addresses": "router", "options": ["map", [["router-port", format!("t{t}-lrp{s}")]]]}}));
            ls_ports.push(named(&rp));
            ops.push(json!({"op": "insert", "table": "Logical_Switch", "row": {"name": format!("t{t}-net{s}"), "ports": ["set", ls_ports],
                "other_config": ["map", [["subnet", format!("{subnet}.0/24")]]]}}));
            let nat = format!("snat_{t}_{s}");
            ops.push(json!({"op": "insert", "table": "NAT", "uuid-name": nat,
                "row": {"type": "snat", "external_ip": format!("172.{}.{}.{}", 16 + t / 65536, (t / 256) % 256, t % 256), "logical_ip": format!("{subnet}.0/24")}}));
            nats.push(named(&nat));
        }
        for f in 0..2 {
            let nat = format!("fip_{t}_{f}");
            ops.push(json!({"op": "insert", "table": "NAT", "uuid-name": nat,
                "row": {"type": "dnat_and_snat", "external_ip": format!("100.{}.{}.{}", t / 256, t % 256, f + 10), "logical_ip": format!("10.{}.{}.{}", t / 128, (t % 128) * 2, f + 10)}}));
            nats.push(named(&nat));
        }
        let gw = format!("gw_{t}");
        ops.push(json!({"op": "insert", "table": "Logical_Router_Port", "uuid-name": gw,
            "row": {"name": format!("t{t}-gw"), "mac": format!("02:{:02x}:{:02x}:ff:00:01", t >> 8, t & 255), "networks": format!("172.{}.{}.{}/16", 16 + t / 65536, (t / 256) % 256, t % 256)}}));
        lr_ports.push(named(&gw));
        let gwp = format!("gwp_{t}");
        ops.push(json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": gwp,
            "row": {"name": format!("provider-t{t}"), "type": "router", "addresses": "router", "options": ["map", [["router-port", format!("t{t}-gw")]]]}}));
        provider_ports.push(named(&gwp));
        let route = format!("route_{t}");
        ops.push(
            json!({"op": "insert", "table": "Logical_Router_Static_Route", "uuid-name": route,
            "row": {"ip_prefix": "0.0.0.0/0", "nexthop": "172.16.255.254"}}),
        );
        ops.push(json!({"op": "insert", "table": "Logical_Router", "row": {"name": format!("t{t}-router"),
            "ports": ["set", lr_ports], "nat": ["set", nats], "static_routes": route_ref(&route)}}));
        let mut acls = vec![];
        for (a, (dir, m)) in [
            ("from-lport", "ip4"),
            ("from-lport", "ip6"),
            ("to-lport", "ip4 && tcp && tcp.dst == 22"),
            ("to-lport", "ip4 && icmp4"),
            ("to-lport", "ip4 && ip4.src == $as_t{t}"),
            ("to-lport", "ip4 && tcp && tcp.dst == 443"),
        ]
        .iter()
        .enumerate()
        {
            let acl = format!("acl_{t}_{a}");
            let port = if *dir == "from-lport" {
                "inport"
            } else {
                "outport"
            };
            ops.push(json!({"op": "insert", "table": "ACL", "uuid-name": acl,
                "row": {"direction": dir, "priority": 1002 - a as i64, "action": "allow-related",
                    "match": format!("{port} == @pg_t{t} && {}", m.replace("{t}", &t.to_string()))}}));
            acls.push(named(&acl));
        }
        ops.push(json!({"op": "insert", "table": "Port_Group", "row": {"name": format!("pg_t{t}"), "ports": ["set", vifs], "acls": ["set", acls]}}));
        ops.push(json!({"op": "insert", "table": "Address_Set", "row": {"name": format!("as_t{t}"), "addresses": ["set", ips]}}));
    }
    ops.push(json!({"op": "insert", "table": "Logical_Switch", "row": {"name": "provider", "ports": ["set", provider_ports]}}));
    json!({"id": 1, "method": "transact", "params": ops})
}

fn route_ref(name: &str) -> Value {
    json!(["named-uuid", name])
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

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
    let request = serde_json::to_vec(&topology(tenants)).unwrap();
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
