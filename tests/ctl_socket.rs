//! The node's management socket is not taken over: a second `switchyard run` on the same
//! `--ctl` path refuses to start (before it attaches any interface) and names the first node,
//! which keeps answering. (The stale case is the shared helper's, tested with `switchyard db`.)

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, config_for, free_port, Node};

/// Runs `switchyard run` on `node`'s configuration and socket; it must exit within 20 s.
fn second_node(node: &Node) -> (bool, String) {
    let mut child = Command::new(bin())
        .arg("run")
        .arg("--config")
        .arg(node.dir.join("switchyard.toml"))
        .arg("--metrics")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--ctl")
        .arg(&node.ctl)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second node did not exit: it is serving on the first one's socket");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    (
        status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn second_node_on_one_ctl_socket_refuses() {
    let node = Node::start(&config_for(&[], None));
    let (ok, stderr) = second_node(&node);
    assert!(!ok, "the second node must refuse");
    assert!(
        stderr.contains("is listening on this socket; refusing to take it over"),
        "{stderr}"
    );
    let (ok, show) = node.cli(&["show"]);
    assert!(ok, "the first node still answers on its socket: {show}");
}
