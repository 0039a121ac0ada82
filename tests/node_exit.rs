//! A cleanly stopped node leaves SB, as `ovn-appctl exit` makes
//! ovn-controller do (issue 16, item 8): `switchyard exit`, SIGTERM and
//! SIGINT remove the chassis' Chassis and Chassis_Private rows, so
//! `ovn-nbctl --wait=hv` no longer waits for it; `switchyard exit
//! --restart` keeps them for a node that comes back under the same name
//! (and `--wait=hv` then waits for it, as OVN's does).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::ovn::{Databases, Ovn};
use common::{bin, free_port, require_root, try_sh, wait_until};

struct Node {
    name: String,
    ctl: std::path::PathBuf,
    child: Child,
}

impl Node {
    fn start(ovn: &Ovn, name: &str, encap_ip: &str) -> Node {
        let ctl = ovn.dir.join(format!("{name}.ctl"));
        let child = Command::new(bin())
            .args(["node", "--chassis", name, "--sb", &ovn.sb])
            .args(["--encap-ip", encap_ip, "--ctl", ctl.to_str().unwrap()])
            .args(["--metrics", &format!("127.0.0.1:{}", free_port())])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start switchyard node");
        wait_until(
            &format!("{name} to come up"),
            Duration::from_secs(20),
            || ctl.exists(),
        );
        Node {
            name: name.into(),
            ctl,
            child,
        }
    }

    /// Waits for the process to end on its own; panics if it does not
    /// within 10 s or fails.
    fn wait_exit(&mut self) {
        wait_until(
            &format!("{} to exit", self.name),
            Duration::from_secs(10),
            || self.child.try_wait().unwrap().is_some(),
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The names in an SB table's `name` column.
fn names(ovn: &Ovn, table: &str) -> Vec<String> {
    let db = format!("--db={}", ovn.sb);
    let (ok, out) = try_sh(&["ovn-sbctl", &db, "--bare", "--columns=name", "list", table]);
    assert!(ok, "{out}");
    let mut v: Vec<String> = out.split_whitespace().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn a_stopped_chassis_leaves_sb_unless_it_restarts() {
    require_root();
    let ovn = Ovn::start_with(Databases::Ours, "127.0.0.1", false);
    let mut a = Node::start(&ovn, "a", "127.0.0.2");
    let mut b = Node::start(&ovn, "b", "127.0.0.3");
    wait_until("both chassis to register", Duration::from_secs(20), || {
        names(&ovn, "Chassis_Private") == ["a", "b"]
    });
    // Loopback endpoints with another chassis present: registered, and
    // said to be unreachable (issue 16 item 7).
    let show = |n: &Node| try_sh(&[bin(), "show", "--ctl", n.ctl.to_str().unwrap()]).1;
    wait_until(
        "a to warn of its loopback endpoint",
        Duration::from_secs(10),
        || {
            show(&a).contains("problem: this chassis' tunnel endpoint 127.0.0.2 is a loopback address, which chassis b cannot reach")
        },
    );
    ovn.nbctl(&["--wait=hv", "ls-add", "one"]);

    // `switchyard exit`: a's rows go, and --wait=hv follows b alone.
    let (ok, out) = try_sh(&[bin(), "exit", "--ctl", a.ctl.to_str().unwrap()]);
    assert!(ok && out.contains("the chassis leaves SB"), "{out}");
    a.wait_exit();
    assert_eq!(names(&ovn, "Chassis"), ["b"]);
    assert_eq!(names(&ovn, "Chassis_Private"), ["b"]);
    ovn.nbctl(&["--wait=hv", "ls-add", "two"]);

    // SIGTERM does the same.
    let (ok, out) = try_sh(&["kill", "-TERM", &b.child.id().to_string()]);
    assert!(ok, "{out}");
    b.wait_exit();
    assert!(names(&ovn, "Chassis").is_empty());
    assert!(names(&ovn, "Chassis_Private").is_empty());
    ovn.nbctl(&["--wait=hv", "ls-add", "three"]);

    // `exit --restart` keeps the chassis: --wait=hv waits for its return.
    let mut c = Node::start(&ovn, "c", "127.0.0.4");
    // With no chassis in SB, --wait=hv waits for nobody: wait for c's
    // registration itself first.
    wait_until("c to register", Duration::from_secs(20), || {
        names(&ovn, "Chassis_Private") == ["c"]
    });
    ovn.nbctl(&["--wait=hv", "ls-add", "four"]);
    let (ok, out) = try_sh(&[bin(), "exit", "--restart", "--ctl", c.ctl.to_str().unwrap()]);
    assert!(ok && out.contains("stays in SB"), "{out}");
    c.wait_exit();
    assert_eq!(names(&ovn, "Chassis"), ["c"]);
    let db = format!("--db={}", ovn.nb);
    let (ok, out) = try_sh(&[
        "ovn-nbctl",
        &db,
        "--timeout=2",
        "--wait=hv",
        "ls-add",
        "five",
    ]);
    assert!(
        !ok,
        "--wait=hv returned without the restarting chassis: {out}"
    );
    let _c = Node::start(&ovn, "c", "127.0.0.4");
    ovn.nbctl(&["--wait=hv", "sync"]);
}
