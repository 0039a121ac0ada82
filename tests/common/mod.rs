//! Test harness: network namespaces as VMs joined by veth to a switchyard
//! node started from the real binary. Everything created is removed on drop.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use switchyard::netns::Vm;

pub mod ovn;

pub static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Polls `cond` every 20 ms until it holds; panics naming `what` once
/// `timeout` has passed. Tests wait for a condition, never for a fixed time.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of one sample (`name{labels}`) in a /metrics text; 0 if absent.
pub fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// A helper process (a capture, a listener) that prints `ready` as its
/// first line once it listens, so that the test sends only then rather
/// than after a guessed delay. Its later output is kept for [`Ready::output`].
pub struct Ready {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Ready {
    /// Spawns `cmd` with its output piped and waits (at most 30 s) for its
    /// `ready` line; panics with what it printed if it says anything else
    /// or exits first.
    pub fn start(cmd: &mut Command) -> Ready {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let (tx, stdout) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut ready = Ready {
            child,
            stdout,
            stderr,
        };
        match ready.stdout.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l == "ready" => ready,
            first => {
                let _ = ready.child.kill();
                let (out, err) = ready.output();
                panic!("{cmd:?} did not get ready: {first:?}\n{out}{err}");
            }
        }
    }

    /// Waits for the process to exit; its standard output after `ready`,
    /// and its standard error.
    pub fn output(mut self) -> (String, String) {
        let _ = self.child.wait();
        let out: String = self.stdout.iter().map(|l| l + "\n").collect();
        (out, self.stderr.join().unwrap_or_default())
    }
}

/// Runs a command and returns whether it succeeded, with its output.
pub fn try_sh(args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Fails the test unless it runs as root (namespaces need it); CI runs as
/// root, so this never silently skips there.
pub fn require_root() {
    // SAFETY: geteuid takes no arguments and cannot fail.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "this test creates network namespaces and must run as root"
    );
}

/// A VM with a unique name for this test process.
pub fn vm(tag: &str, mac: &str, ip: &str, mtu: u32) -> Vm {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("sy{}{n}{tag}", std::process::id() % 100_000);
    Vm::new(&name, &name, mac, ip, mtu).expect("creating a namespace VM")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `switchyard run`.
pub struct Node {
    child: Child,
    pub dir: PathBuf,
    pub ctl: PathBuf,
    pub metrics: String,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

impl Node {
    /// Starts a node from a configuration text and waits for its sockets.
    pub fn start(config: &str) -> Node {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchyard-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("switchyard.toml");
        std::fs::write(&cfg, config).unwrap();
        let ctl = dir.join("ctl.sock");
        let metrics = format!("127.0.0.1:{}", free_port());
        let child = Command::new(bin())
            .args([
                "run",
                "--config",
                cfg.to_str().unwrap(),
                "--metrics",
                &metrics,
                "--ctl",
                ctl.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start switchyard");
        let node = Node {
            child,
            dir,
            ctl,
            metrics,
        };
        wait_until("the node to come up", Duration::from_secs(30), || {
            node.ctl.exists() && TcpStream::connect(&node.metrics).is_ok()
        });
        node
    }

    /// The /metrics text.
    pub fn metrics(&self) -> String {
        let mut s = TcpStream::connect(&self.metrics).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// A sample's value on /metrics (0 if absent).
    pub fn metric(&self, name_and_labels: &str) -> u64 {
        metric(&self.metrics(), name_and_labels)
    }

    /// Drops counted under `reason`.
    pub fn drops(&self, reason: &str) -> u64 {
        self.metric(&format!("switchyard_drops_total{{reason=\"{reason}\"}}"))
    }

    /// Waits until `f` holds (at most 15 s); panics with `what` otherwise.
    pub fn wait_for(&self, what: &str, f: impl Fn(&Node) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.metrics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a `switchyard` subcommand against this node.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let mut full = vec![bin()];
        full.extend_from_slice(args);
        full.push("--ctl");
        let ctl = self.ctl.to_str().unwrap().to_string();
        full.push(&ctl);
        try_sh(&full)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The configuration of a switch joining `vms`, each with addresses and
/// port security "MAC IP".
pub fn config_for(vms: &[&Vm], port_mtu: Option<u32>) -> String {
    let mut s = String::from("[[switch]]\nname = \"ls1\"\n");
    for (i, vm) in vms.iter().enumerate() {
        s += &format!(
            "[[switch.port]]\nname = \"vm{}\"\naddresses = [\"{} {}\"]\nport_security = [\"{} {}\"]\ninterface = \"{}\"\n",
            i + 1,
            vm.mac,
            vm.ip,
            vm.mac,
            vm.ip,
            vm.port
        );
        if let Some(m) = port_mtu {
            s += &format!("mtu = {m}\n");
        }
    }
    s
}
