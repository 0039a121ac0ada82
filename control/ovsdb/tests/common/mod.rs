//! Shared test helpers: start our server (in-process or as the `switchyard-db` binary) or a
//! real `ovsdb-server` on the same schema, talk raw JSON-RPC over TCP or a unix socket, and run
//! the real `ovn-nbctl`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
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

/// `switchyard-db` on `dir` with NB on `ptcp:PORT:127.0.0.1` and SB on `sb` (a remote string);
/// port 0 lets the kernel choose (see [`DbProcess::nb_port`]).
pub fn db_command(dir: &Path, nb_port: u16, sb: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchyard-db"));
    c.arg(format!("--nb-remote=ptcp:{nb_port}:127.0.0.1"))
        .arg(format!("--sb-remote={sb}"))
        .arg("--data-dir")
        .arg(dir);
    c
}

/// A `switchyard-db` process, killed on drop so a failing test leaves nothing behind. Its
/// stderr goes to a log file that a failing test prints, so the server's own account of what
/// went wrong is in the test's output.
pub struct DbProcess {
    pub child: Child,
    log: PathBuf,
    _log_dir: Option<tempfile::TempDir>,
}

impl DbProcess {
    /// Starts `switchyard-db` (see [`db_command`]) and waits until NB serves.
    pub fn start(dir: &Path, nb_port: u16, sb: &str) -> Self {
        let log_dir = tempfile::tempdir().unwrap();
        let mut server = Self::spawn(dir, nb_port, sb, &log_dir.path().join("stderr.log"));
        server._log_dir = Some(log_dir);
        server.wait_until_serving();
        server
    }

    /// Starts `switchyard-db` with its stderr in `log`, without waiting for it.
    pub fn spawn(dir: &Path, nb_port: u16, sb: &str, log: &Path) -> Self {
        let child = db_command(dir, nb_port, sb)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        DbProcess {
            child,
            log: log.to_path_buf(),
            _log_dir: None,
        }
    }

    /// Waits until the server says it serves (it logs that once every remote is bound and every
    /// database open); one that exits instead fails the test with its log. Its own line, not
    /// a successful connect: a connect to a port nobody listens on yet can succeed anyway
    /// (another test's server, or a TCP self-connect when the kernel picks the same port as
    /// the connection's source), and a test that trusted it then failed 13 runs in 300.
    pub fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains("OVSDB server listening") {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("switchyard-db exited ({status}) instead of serving");
            }
            assert!(Instant::now() < deadline, "switchyard-db did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The NB port the server listens on, from its "listening" line: what a test started with
    /// `ptcp:0` (nb_port 0) connects to, so that no two tests can pick the same port.
    pub fn nb_port(&self) -> u16 {
        let log = self.log();
        let listening = &log[log.find("OVSDB server listening").expect("not serving yet")..];
        let tcp = &listening[listening.find("\"tcp:127.0.0.1:").expect("NB on tcp") + 15..];
        tcp[..tcp.find('"').unwrap()].parse().unwrap()
    }

    /// What the server has written to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to flush anything that was not already fsync'd.
    pub fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, as an init system stops it, and wait for a clean exit.
    pub fn stop(mut self) {
        // SAFETY: signalling a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for DbProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "switchyard-db (pid {}) stderr:\n{}",
                self.child.id(),
                self.log()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Commits one NB `Address_Set` row named `name`.
pub fn insert_address_set(nb_port: u16, name: &str) {
    let r = RawConn::connect(nb_port).call(
        "transact",
        json!(["OVN_Northbound", {"op": "insert", "table": "Address_Set", "row": {"name": name}}]),
    );
    assert!(r["result"][0]["uuid"].is_array(), "{r}");
}

/// The names of all NB `Address_Set` rows.
pub fn address_set_names(nb_port: u16) -> std::collections::BTreeSet<String> {
    let r = RawConn::connect(nb_port).call(
        "transact",
        json!(["OVN_Northbound", {"op": "select", "table": "Address_Set", "where": [], "columns": ["name"]}]),
    );
    r["result"][0]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("select failed: {r}"))
        .iter()
        .map(|row| row["name"].as_str().unwrap().to_string())
        .collect()
}

/// Runs a command that must exit by itself within 20 s (it is killed and the test fails if it
/// does not: a server that should have refused to start is serving instead).
pub fn run_to_exit(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: signalling a child we spawned and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{cmd:?} did not exit by itself");
        }
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

    /// Serves existing database files (e.g. made by `ovsdb-client backup`).
    pub fn serve_files(dbs: Vec<PathBuf>) -> Self {
        require_tool("ovsdb-server", "openvswitch-common");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(&dbs, port, dir.path());
        RealOvsdb {
            child,
            port,
            dir,
            dbs,
        }
    }

    /// Serves a fresh single-member RAFT cluster of `schema` (`ovsdb-tool create-cluster`):
    /// unlike a standalone database, a clustered one keeps transaction history, so
    /// `monitor_cond_since` can resume (ovsdb-server.c `ovsdb_txn_history_init`).
    pub fn start_cluster(schema: &Path) -> Self {
        require_tool("ovsdb-server", "openvswitch-common");
        require_tool("ovsdb-tool", "openvswitch-common");
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cluster.db");
        let raft = format!("unix:{}", dir.path().join("raft.sock").display());
        let st = Command::new("ovsdb-tool")
            .arg("create-cluster")
            .arg(&db)
            .arg(schema)
            .arg(&raft)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "ovsdb-tool create-cluster {} failed",
            schema.display()
        );
        let port = free_port();
        let dbs = vec![db];
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

/// One request over a fresh connection to a unix socket; returns the response.
pub fn unix_call(path: &Path, method: &str, params: Value) -> Value {
    // The server binds its remotes one after the other: right after its first one accepts,
    // a later socket may not be there yet (or still be a killed predecessor's stale file).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut s = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("connecting to {}: {e}", path.display()),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = json!({"method": method, "params": params, "id": 0});
    s.write_all(req.to_string().as_bytes()).unwrap();
    let mut splitter = Splitter::new(1 << 30);
    let mut buf = [0u8; 65536];
    loop {
        if let Some(m) = splitter.next_message().unwrap() {
            return serde_json::from_slice(&m).unwrap();
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{} closed the connection", path.display());
        splitter.push(&buf[..n]);
    }
}

/// The byte offset of every record of a database file (framing: `SYDB <len> <crc>\n<json>\n`).
pub fn record_offsets(file: &Path) -> Vec<usize> {
    let bytes = std::fs::read(file).unwrap();
    let mut offsets = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        offsets.push(pos);
        let nl = pos + bytes[pos..].iter().position(|&b| b == b'\n').unwrap();
        let header = std::str::from_utf8(&bytes[pos..nl]).unwrap();
        let len: usize = header.split(' ').nth(1).unwrap().parse().unwrap();
        pos = nl + 1 + len + 1;
    }
    offsets
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
