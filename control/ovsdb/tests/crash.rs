//! Durability: SIGKILL the `switchyard-db` process in the middle of a stream of transactions,
//! restart it on the same data directory, and find every transaction it had acknowledged.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, wait_for_port, RawConn};
use serde_json::json;

/// The server process, killed on drop so a failing test leaves nothing behind.
struct Server(Child);

impl Server {
    fn sigkill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &std::path::Path, port: u16) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard-db"))
        .arg(format!("--nb-remote=ptcp:{port}:127.0.0.1"))
        .arg(format!(
            "--sb-remote=punix:{}",
            dir.join("sb.sock").display()
        ))
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    Server(child)
}

#[test]
fn acknowledged_transactions_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn(dir.path(), port);
    let mut c = RawConn::connect(port);
    // Pipeline transactions: keep many in flight so the kill lands mid-stream.
    let total = 100_000u64;
    let mut sent = 0u64;
    let mut acked: Vec<u64> = Vec::new();
    let started = Instant::now();
    let mut killed = false;
    loop {
        while sent < total && sent - acked.len() as u64 <= 32 && !killed {
            let msg = json!({"id": sent, "method": "transact", "params": ["OVN_Northbound",
                {"op": "insert", "table": "Address_Set", "row": {"name": format!("crash{sent}"), "addresses": ["set", ["10.0.0.1", "10.0.0.2"]]}}]});
            if std::io::Write::write_all(&mut c.stream, msg.to_string().as_bytes()).is_err() {
                break;
            }
            sent += 1;
        }
        if !killed && (started.elapsed() > Duration::from_millis(1500) || acked.len() > 3000) {
            // SIGKILL: no chance to flush anything that was not already fsync'd.
            child.sigkill();
            killed = true;
        }
        match c.recv() {
            Some(reply) => {
                let id = reply["id"].as_u64().unwrap();
                let results = reply["result"].as_array().unwrap();
                assert!(
                    results[0]["uuid"].is_array(),
                    "transaction {id} failed: {reply}"
                );
                acked.push(id);
            }
            None => break,
        }
    }
    assert!(killed, "the server must be killed mid-stream");
    assert!(
        !acked.is_empty() && (acked.len() as u64) < sent,
        "kill should land with transactions in flight ({} acked of {sent})",
        acked.len()
    );

    let _child = spawn(dir.path(), port);
    let mut c = RawConn::connect(port);
    let r = c.call("transact", json!(["OVN_Northbound", {"op": "select", "table": "Address_Set", "where": [], "columns": ["name"]}]));
    let names: std::collections::HashSet<String> = r["result"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap().to_string())
        .collect();
    for id in &acked {
        assert!(
            names.contains(&format!("crash{id}")),
            "acknowledged transaction {id} was lost ({} acked, {} recovered)",
            acked.len(),
            names.len()
        );
    }
    // Nothing that was never sent appears, and the recovered server accepts new writes.
    assert!(names.len() as u64 <= sent);
    let r = c.call("transact", json!(["OVN_Northbound", {"op": "insert", "table": "Address_Set", "row": {"name": "after"}}]));
    assert!(r["result"][0]["uuid"].is_array(), "{r}");
}
