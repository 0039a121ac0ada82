//! An OVN control plane for end-to-end tests, from real processes: the NB
//! and SB databases (`switchyard db`, or a real `ovsdb-server` loaded with
//! our schema files), `switchyard northd`, and a `switchyard node` whose
//! chassis controller programs it. Everything stops on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{bin, free_port, try_sh, NEXT};

/// Which server holds NB and SB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Databases {
    /// `switchyard db`.
    Ours,
    /// Open vSwitch's `ovsdb-server`, with our schema files.
    OvsdbServer,
}

fn kill(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// NB + SB + northd-lite + one node.
pub struct Ovn {
    pub dir: PathBuf,
    pub nb: String,
    pub sb: String,
    db: Child,
    northd: Option<Child>,
    node: Child,
    pub ctl: PathBuf,
    pub metrics: String,
}

impl Drop for Ovn {
    fn drop(&mut self) {
        kill(&mut self.node);
        if let Some(n) = self.northd.as_mut() {
            kill(n);
        }
        kill(&mut self.db);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn schema(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("control/schemas")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

impl Ovn {
    pub fn start(databases: Databases) -> Ovn {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchyard-ovn-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (nb_port, sb_port) = (free_port(), free_port());
        let nb = format!("tcp:127.0.0.1:{nb_port}");
        let sb = format!("tcp:127.0.0.1:{sb_port}");
        let db = match databases {
            Databases::Ours => Command::new(bin())
                .args(["db", "--data-dir", dir.to_str().unwrap()])
                .args(["--nb-remote", &format!("ptcp:{nb_port}:127.0.0.1")])
                .args(["--sb-remote", &format!("ptcp:{sb_port}:127.0.0.1")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start switchyard db"),
            Databases::OvsdbServer => {
                for (db, s) in [("nb.db", "ovn-nb.ovsschema"), ("sb.db", "ovn-sb.ovsschema")] {
                    let path = dir.join(db);
                    let (ok, out) =
                        try_sh(&["ovsdb-tool", "create", path.to_str().unwrap(), &schema(s)]);
                    assert!(ok, "ovsdb-tool create: {out}");
                }
                Command::new("ovsdb-server")
                    .arg(dir.join("nb.db"))
                    .arg(dir.join("sb.db"))
                    .arg(format!("--remote=ptcp:{nb_port}:127.0.0.1"))
                    .arg(format!("--remote=ptcp:{sb_port}:127.0.0.1"))
                    .arg(format!("--unixctl={}", dir.join("ovsdb.ctl").display()))
                    .arg("--no-chdir")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start ovsdb-server (apt-get install openvswitch-common)")
            }
        };
        wait_port(nb_port);
        wait_port(sb_port);
        let ctl = dir.join("node.ctl");
        let metrics = format!("127.0.0.1:{}", free_port());
        let node = Command::new(bin())
            .args(["node", "--chassis", &format!("hv-{n}"), "--sb", &sb])
            .args(["--ctl", ctl.to_str().unwrap(), "--metrics", &metrics])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start switchyard node");
        let mut ovn = Ovn {
            dir,
            nb,
            sb,
            db,
            northd: None,
            node,
            ctl,
            metrics,
        };
        ovn.start_northd();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(ovn.ctl.exists() && TcpStream::connect(&ovn.metrics).is_ok()) {
            assert!(Instant::now() < deadline, "node did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The chassis is registered once hv_cfg can follow it.
        ovn.nbctl(&["--wait=hv", "sync"]);
        ovn
    }

    /// Starts northd-lite (again).
    pub fn start_northd(&mut self) {
        if let Some(n) = self.northd.as_mut() {
            kill(n);
        }
        self.northd = Some(
            Command::new(bin())
                .args(["northd", "--ovnnb-db", &self.nb, "--ovnsb-db", &self.sb])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start switchyard northd"),
        );
    }

    /// Runs the real `ovn-nbctl` against NB; panics on failure.
    pub fn nbctl(&self, args: &[&str]) -> String {
        let mut full = vec!["ovn-nbctl", "--timeout=30"];
        let db = format!("--db={}", self.nb);
        full.push(&db);
        full.extend_from_slice(args);
        let (ok, out) = try_sh(&full);
        assert!(ok, "ovn-nbctl {args:?}: {out}");
        out
    }

    /// `ovsdb-client dump` of SB.
    pub fn sb_dump(&self) -> String {
        let (ok, out) = try_sh(&["ovsdb-client", "dump", &self.sb, "OVN_Southbound"]);
        assert!(ok, "{out}");
        out
    }

    /// Runs a `switchyard` subcommand against the node.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut full = vec![bin()];
        full.extend_from_slice(args);
        let ctl = self.ctl.to_str().unwrap().to_string();
        full.push("--ctl");
        full.push(&ctl);
        let (ok, out) = try_sh(&full);
        assert!(ok, "switchyard {args:?}: {out}");
        out
    }
}
