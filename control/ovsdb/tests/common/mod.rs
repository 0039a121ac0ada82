//! Shared test helpers: start our server (in-process or as the `switchyard-db` binary) or a
//! real `ovsdb-server` on the same schema, talk raw JSON-RPC, and run the real `ovn-nbctl`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ovsdb::db::{DbServerConfig, RunningDb};
use ovsdb::jsonrpc::Splitter;
use ovsdb::server::{Remote, ServerConfig};
use serde_json::{json, Value};

pub fn schema_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name)
}

/// Fails with an actionable message if a Debian tool the test needs is missing.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "{tool} is not installed: apt-get install {package}");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Our server, in-process, on ephemeral ports.
pub struct OurServer {
    pub rt: tokio::runtime::Runtime,
    pub running: RunningDb,
    pub dir: tempfile::TempDir,
}

impl OurServer {
    pub fn start(server: ServerConfig) -> Self {
        Self::start_with(server, |_| {})
    }

    /// Starts with NB and SB on ephemeral TCP ports, after `adjust` had its say.
    pub fn start_with(server: ServerConfig, adjust: impl FnOnce(&mut DbServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = DbServerConfig {
            nb_remotes: vec!["ptcp:0:127.0.0.1".parse().unwrap()],
            sb_remotes: vec!["ptcp:0:127.0.0.1".parse().unwrap()],
            data_dir: dir.path().to_path_buf(),
            server,
            ..DbServerConfig::default()
        };
        adjust(&mut cfg);
        let running = rt.block_on(ovsdb::db::start(&cfg)).unwrap();
        OurServer { rt, running, dir }
    }

    pub fn nb_port(&self) -> u16 {
        match &self.running.nb_remotes[0] {
            Remote::Tcp(a) => a.port(),
            Remote::Unix(_) => unreachable!(),
        }
    }
}

/// A real ovsdb-server serving `schema` on a free port; killed on drop.
pub struct RealOvsdb {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    dbs: Vec<PathBuf>,
}

impl RealOvsdb {
    pub fn start(schemas: &[&str]) -> Self {
        let paths: Vec<PathBuf> = schemas.iter().map(|s| schema_path(s)).collect();
        Self::start_files(&paths)
    }

    /// Serves a fresh database for each schema file.
    pub fn start_files(schemas: &[PathBuf]) -> Self {
        require_tool("ovsdb-server", "openvswitch-common");
        require_tool("ovsdb-tool", "openvswitch-common");
        let dir = tempfile::tempdir().unwrap();
        let mut dbs = Vec::new();
        for (i, s) in schemas.iter().enumerate() {
            let db = dir.path().join(format!("{i}.db"));
            let st = Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(s)
                .status()
                .unwrap();
            assert!(st.success(), "ovsdb-tool create {} failed", s.display());
            dbs.push(db);
        }
        let port = free_port();
        let child = Self::spawn(&dbs, port, dir.path());
        RealOvsdb {
            child,
            port,
            dir,
            dbs,
        }
    }

    fn spawn(dbs: &[PathBuf], port: u16, dir: &Path) -> Child {
        let child = Command::new("ovsdb-server")
            .args(dbs)
            .arg(format!("--remote=ptcp:{port}:127.0.0.1"))
            .arg(format!("--unixctl={}", dir.join("ctl").display()))
            .arg("--no-chdir")
            .arg(format!("--log-file={}", dir.join("log").display()))
            .arg("-vconsole:off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port);
        child
    }

    /// Kills the server and starts it again on the same files and port.
    pub fn restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = Self::spawn(&self.dbs, self.port, self.dir.path());
    }
}

impl Drop for RealOvsdb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ovn-nbctl --db=tcp:127.0.0.1:PORT ARGS...`.
pub fn nbctl(port: u16, args: &[&str]) -> Output {
    Command::new("ovn-nbctl")
        .arg(format!("--db=tcp:127.0.0.1:{port}"))
        .arg("--timeout=20")
        .args(args)
        .output()
        .unwrap()
}

/// A blocking raw JSON-RPC connection.
pub struct RawConn {
    pub stream: TcpStream,
    splitter: Splitter,
    next_id: u64,
}

impl RawConn {
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            splitter: Splitter::new(1 << 30),
            next_id: 1,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next message, or `None` when the server closed the connection.
    pub fn recv(&mut self) -> Option<Value> {
        let mut buf = [0u8; 65536];
        loop {
            if let Some(m) = self.splitter.next_message().unwrap() {
                return Some(serde_json::from_slice(&m).unwrap());
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.splitter.push(&buf[..n]),
            }
        }
    }

    /// Sends a request and returns its response (skipping notifications).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_raw(
            json!({"method": method, "params": params, "id": id})
                .to_string()
                .as_bytes(),
        );
        loop {
            let m = self
                .recv()
                .expect("connection closed while waiting for a reply");
            if m["id"] == json!(id) {
                return m;
            }
        }
    }
}
