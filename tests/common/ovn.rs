//! An OVN control plane for end-to-end tests, from real processes: the NB
//! and SB databases (`switchyard db`, or a real `ovsdb-server` loaded with
//! our schema files or with OVN's own), `switchyard northd` (or the real
//! `ovn-northd`), and a `switchyard node` whose chassis controller
//! programs it. Everything stops on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{bin, free_port, metric, try_sh, wait_until, NEXT};
use switchyard::netns::Host;

/// Which server holds NB and SB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Databases {
    /// `switchyard db`.
    Ours,
    /// Open vSwitch's `ovsdb-server`, with our schema files.
    OvsdbServer,
    /// Real OVN: `ovsdb-server` with the schemas OVN installs
    /// (`/usr/share/ovn`) and the real `ovn-northd` instead of
    /// northd-lite.
    RealOvn,
}

/// Where Debian's `ovn-common` installs OVN's schema files.
const OVN_SCHEMAS: &str = "/usr/share/ovn";

fn kill(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn wait_port(ip: &str, port: u16) {
    wait_until(
        &format!("a listener on {ip}:{port}"),
        Duration::from_secs(20),
        || TcpStream::connect((ip, port)).is_ok(),
    );
}

/// Starts `switchyard ARGS`, its stderr appended to `log` (printed when a
/// test fails).
fn spawn_node(args: &[String], log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the node's log file");
    Command::new(bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start switchyard node")
}

/// `switchyard db` keeping NB and SB in `dir`, listening on `ip`.
fn switchyard_db(dir: &Path, ip: &str, nb_port: u16, sb_port: u16) -> Child {
    Command::new(bin())
        .args(["db", "--data-dir", dir.to_str().unwrap()])
        .args(["--nb-remote", &format!("ptcp:{nb_port}:{ip}")])
        .args(["--sb-remote", &format!("ptcp:{sb_port}:{ip}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start switchyard db")
}

/// NB + SB + northd-lite, and a node in the root namespace unless the
/// chassis are started separately ([`Chassis`]).
pub struct Ovn {
    pub dir: PathBuf,
    pub nb: String,
    pub sb: String,
    db: Child,
    databases: Databases,
    northd: Option<Child>,
    node: Option<Child>,
    /// How the root-namespace node was started, to start it again.
    node_cmd: Vec<String>,
    pub ctl: PathBuf,
    pub metrics: String,
}

/// Where the root-namespace node's stderr goes, in [`Ovn::dir`].
const NODE_LOG: &str = "node.log";

impl Drop for Ovn {
    fn drop(&mut self) {
        if let Some(n) = self.node.as_mut() {
            kill(n);
            if std::thread::panicking() {
                eprintln!("--- the node's log ---\n{}", self.node_log());
            }
        }
        if let Some(n) = self.northd.as_mut() {
            kill(n);
        }
        kill(&mut self.db);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn schema(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("control/ovsdb/schemas")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The `ovn-nbctl` commands (after `--`) that add VIF `port` to `switch`
/// with `addr` ("MAC IP") as its addresses and port security.
pub fn vif(switch: &str, port: &str, addr: &str) -> Vec<String> {
    [
        "--",
        "lsp-add",
        switch,
        port,
        "--",
        "lsp-set-addresses",
        port,
        addr,
        "--",
        "lsp-set-port-security",
        port,
        addr,
    ]
    .map(String::from)
    .to_vec()
}

impl Ovn {
    /// The databases, northd-lite and one node, all on 127.0.0.1.
    pub fn start(databases: Databases) -> Ovn {
        Self::start_with(databases, "127.0.0.1", true)
    }

    /// The databases (listening on `ip`) and northd-lite, with a node in the
    /// root namespace if `node`.
    pub fn start_with(databases: Databases, ip: &str, node: bool) -> Ovn {
        Self::start_full(databases, ip, node.then_some(&[]))
    }

    /// The databases and northd-lite on 127.0.0.1, and a node in the root
    /// namespace started with `node_args` besides the usual ones (e.g.
    /// `--dpdk ...`).
    pub fn start_with_node_args(databases: Databases, node_args: &[&str]) -> Ovn {
        Self::start_full(databases, "127.0.0.1", Some(node_args))
    }

    fn start_full(databases: Databases, ip: &str, node: Option<&[&str]>) -> Ovn {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchyard-ovn-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (nb_port, sb_port) = (free_port(), free_port());
        let nb = format!("tcp:{ip}:{nb_port}");
        let sb = format!("tcp:{ip}:{sb_port}");
        let db = match databases {
            Databases::Ours => switchyard_db(&dir, ip, nb_port, sb_port),
            Databases::OvsdbServer | Databases::RealOvn => {
                for (db, s) in [("nb.db", "ovn-nb.ovsschema"), ("sb.db", "ovn-sb.ovsschema")] {
                    let path = dir.join(db);
                    let schema = if databases == Databases::RealOvn {
                        format!("{OVN_SCHEMAS}/{s}")
                    } else {
                        schema(s)
                    };
                    let (ok, out) =
                        try_sh(&["ovsdb-tool", "create", path.to_str().unwrap(), &schema]);
                    assert!(ok, "ovsdb-tool create: {out}");
                }
                Command::new("ovsdb-server")
                    .arg(dir.join("nb.db"))
                    .arg(dir.join("sb.db"))
                    .arg(format!("--remote=ptcp:{nb_port}:{ip}"))
                    .arg(format!("--remote=ptcp:{sb_port}:{ip}"))
                    .arg(format!("--unixctl={}", dir.join("ovsdb.ctl").display()))
                    .arg("--no-chdir")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start ovsdb-server (apt-get install openvswitch-common)")
            }
        };
        wait_port(ip, nb_port);
        wait_port(ip, sb_port);
        let ctl = dir.join("node.ctl");
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut node_cmd: Vec<String> = ["node", "--chassis", &format!("hv-{n}"), "--sb", &sb]
            .into_iter()
            .chain(["--ctl", ctl.to_str().unwrap(), "--metrics", &metrics])
            .map(String::from)
            .collect();
        let node = node.map(|extra| {
            node_cmd.extend(extra.iter().map(|a| a.to_string()));
            spawn_node(&node_cmd, &dir.join(NODE_LOG))
        });
        let mut ovn = Ovn {
            dir,
            nb,
            sb,
            db,
            databases,
            northd: None,
            node,
            node_cmd,
            ctl,
            metrics,
        };
        ovn.start_northd();
        if ovn.node.is_some() {
            wait_until("the node to come up", Duration::from_secs(20), || {
                ovn.ctl.exists() && TcpStream::connect(&ovn.metrics).is_ok()
            });
            // With no chassis in SB, --wait=hv waits for nobody: first the
            // chassis registers (its Chassis_Private row), then hv_cfg
            // follows it.
            let name = format!("hv-{n}");
            wait_until("the chassis to register", Duration::from_secs(20), || {
                let db = format!("--db={}", ovn.sb);
                try_sh(&[
                    "ovn-sbctl",
                    &db,
                    "--bare",
                    "--columns=name",
                    "list",
                    "Chassis_Private",
                ])
                .1
                .split_whitespace()
                .any(|c| c == name)
            });
            ovn.nbctl(&["--wait=hv", "sync"]);
        }
        ovn
    }

    /// Kills the root-namespace node (SIGKILL, as a crash) and starts it
    /// again with the same arguments; returns once it serves again.
    pub fn restart_node(&mut self) {
        if let Some(n) = self.node.as_mut() {
            kill(n);
        }
        self.node = Some(spawn_node(&self.node_cmd, &self.dir.join(NODE_LOG)));
        wait_until("the node to come back", Duration::from_secs(20), || {
            TcpStream::connect(&self.metrics).is_ok()
                && try_sh(&[bin(), "show", "--ctl", self.ctl.to_str().unwrap()]).0
        });
    }

    /// Stops the databases' server.
    pub fn stop_databases(&mut self) {
        kill(&mut self.db);
    }

    /// Starts `switchyard db` again on the same data directory and ports
    /// (after [`Ovn::stop_databases`]; [`Databases::Ours`] only).
    pub fn restart_databases(&mut self) {
        assert_eq!(self.databases, Databases::Ours);
        let addr = |remote: &str| {
            let (ip, port) = remote
                .strip_prefix("tcp:")
                .and_then(|a| a.rsplit_once(':'))
                .expect("a tcp: remote");
            (ip.to_string(), port.parse::<u16>().expect("a port"))
        };
        let ((ip, nb_port), (_, sb_port)) = (addr(&self.nb), addr(&self.sb));
        self.db = switchyard_db(&self.dir, &ip, nb_port, sb_port);
        wait_port(&ip, nb_port);
        wait_port(&ip, sb_port);
    }

    /// Starts northd-lite, or the real `ovn-northd` under
    /// [`Databases::RealOvn`] (again).
    pub fn start_northd(&mut self) {
        if let Some(n) = self.northd.as_mut() {
            kill(n);
        }
        let (nb, sb) = (
            format!("--ovnnb-db={}", self.nb),
            format!("--ovnsb-db={}", self.sb),
        );
        let mut cmd = if self.databases == Databases::RealOvn {
            let mut c = Command::new("ovn-northd");
            c.args([&nb, &sb]).arg(format!(
                "--unixctl={}",
                self.dir.join("ovn-northd.ctl").display()
            ));
            c
        } else {
            let mut c = Command::new(bin());
            c.args(["northd", &nb, &sb]);
            c
        };
        self.northd = Some(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start northd (ovn-northd: apt-get install ovn-central)"),
        );
    }

    /// Runs the real `ovn-nbctl` against NB; panics on failure.
    pub fn nbctl<S: AsRef<str>>(&self, args: &[S]) -> String {
        let db = format!("--db={}", self.nb);
        let mut full = vec!["ovn-nbctl", "--timeout=30", db.as_str()];
        full.extend(args.iter().map(AsRef::as_ref));
        let (ok, out) = try_sh(&full);
        assert!(ok, "ovn-nbctl {:?}: {out}", &full[3..]);
        out
    }

    /// The root-namespace node's /metrics text.
    pub fn metrics(&self) -> String {
        scrape(&self.metrics)
    }

    /// A sample's value on the node's /metrics (0 if absent).
    pub fn metric(&self, name_and_labels: &str) -> u64 {
        metric(&self.metrics(), name_and_labels)
    }

    /// What the root-namespace node wrote to stderr so far.
    pub fn node_log(&self) -> String {
        std::fs::read_to_string(self.dir.join(NODE_LOG)).unwrap_or_default()
    }

    /// Runs the real `ovn-sbctl` against SB; panics on failure.
    pub fn sbctl(&self, args: &[&str]) -> String {
        let db = format!("--db={}", self.sb);
        let mut full = vec!["ovn-sbctl", "--timeout=30", db.as_str()];
        full.extend(args);
        let (ok, out) = try_sh(&full);
        assert!(ok, "ovn-sbctl {:?}: {out}", &full[3..]);
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
        cli(&self.ctl, args)
    }
}

/// Runs a `switchyard` subcommand against the node listening on `ctl`.
fn cli(ctl: &std::path::Path, args: &[&str]) -> String {
    let ctl = ctl.to_str().unwrap();
    let mut full = vec![bin()];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--ctl", ctl]);
    let (ok, out) = try_sh(&full);
    assert!(ok, "switchyard {args:?}: {out}");
    out
}

pub use switchyard::netns::Bridge as UnderlayNet;

/// The /metrics text served at `addr`.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A chassis: a network namespace with an uplink veth on the underlay
/// bridge (host address `host_ip`, for the SB connection) and a
/// `switchyard node` inside it whose tunnel endpoint is `tunnel_ip` (an
/// address only the dataplane owns). Removed on drop.
pub struct Chassis {
    pub name: String,
    pub ns: String,
    pub ctl: PathBuf,
    /// The node's /metrics address, on the host address (reachable from
    /// the root namespace over the underlay).
    pub metrics: String,
    node: Child,
    _host: Host,
}

impl Chassis {
    /// Starts chassis `name`, with provider networks: for each
    /// `(network, interface, bridge)`, an interface `interface` in the
    /// chassis on `bridge`, given to the node as `--bridge-mapping
    /// network:interface`.
    pub fn start(
        ovn: &Ovn,
        net: &UnderlayNet,
        name: &str,
        host_ip: &str,
        tunnel_ip: &str,
        encap: &str,
        providers: &[(&str, &str, &UnderlayNet)],
    ) -> Chassis {
        Self::start_with(
            ovn,
            net,
            name,
            host_ip,
            tunnel_ip,
            encap,
            providers,
            false,
            &[],
        )
    }

    /// Like [`Chassis::start`], with `node_args` besides the usual ones.
    #[allow(clippy::too_many_arguments)]
    pub fn start_with_node_args(
        ovn: &Ovn,
        net: &UnderlayNet,
        name: &str,
        host_ip: &str,
        tunnel_ip: &str,
        encap: &str,
        providers: &[(&str, &str, &UnderlayNet)],
        node_args: &[&str],
    ) -> Chassis {
        Self::start_with(
            ovn, net, name, host_ip, tunnel_ip, encap, providers, false, node_args,
        )
    }

    /// Like [`Chassis::start`], a node on DPDK (`--dpdk --dpdk-no-huge`)
    /// whose uplink is a DPDK port: `net_af_packet` on the uplink
    /// interface.
    pub fn start_dpdk(
        ovn: &Ovn,
        net: &UnderlayNet,
        name: &str,
        host_ip: &str,
        tunnel_ip: &str,
        encap: &str,
    ) -> Chassis {
        Self::start_with(ovn, net, name, host_ip, tunnel_ip, encap, &[], true, &[])
    }

    #[allow(clippy::too_many_arguments)]
    fn start_with(
        ovn: &Ovn,
        net: &UnderlayNet,
        name: &str,
        host_ip: &str,
        tunnel_ip: &str,
        encap: &str,
        providers: &[(&str, &str, &UnderlayNet)],
        dpdk: bool,
        node_args: &[&str],
    ) -> Chassis {
        let ns = format!("{name}-ns");
        let ul = format!("{name}-ul");
        let mut host = Host::new(&ns, net, &ul, Some(host_ip)).expect("chassis namespace");
        let mut args = Vec::new();
        for (network, iface, bridge) in providers {
            host.attach(bridge, iface).expect("provider interface");
            args.push(format!("--bridge-mapping={network}:{iface}"));
        }
        if dpdk {
            args.extend(
                [
                    "--dpdk",
                    "--dpdk-no-huge",
                    "--dpdk-mem",
                    "256",
                    "--uplink-devargs",
                    &format!("net_af_packet_{name},iface={ul}"),
                ]
                .map(String::from),
            );
        }
        let ctl = ovn.dir.join(format!("{name}.ctl"));
        let metrics = format!("{host_ip}:{}", free_port());
        let node = Command::new("ip")
            .args(["netns", "exec", &ns, bin(), "node", "--chassis", name])
            .args(&args)
            .args(node_args)
            .args([
                "--sb",
                &ovn.sb,
                "--encap-type",
                encap,
                "--encap-ip",
                tunnel_ip,
            ])
            .args(["--uplink", &ul, "--ctl", ctl.to_str().unwrap()])
            .args(["--metrics", &metrics])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start switchyard node");
        wait_until(
            &format!("{name} to come up"),
            Duration::from_secs(20),
            || ctl.exists(),
        );
        Chassis {
            name: name.into(),
            ns,
            ctl,
            metrics,
            node,
            _host: host,
        }
    }

    /// Runs a `switchyard` subcommand against this chassis' node.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(&self.ctl, args)
    }

    /// A sample's value on this chassis' node's /metrics (0 if absent).
    pub fn metric(&self, name_and_labels: &str) -> u64 {
        super::metric(&scrape(&self.metrics), name_and_labels)
    }

    /// Drops the chassis' node counted under `reason`, as `switchyard show`
    /// reports them.
    pub fn drops(&self, reason: &str) -> u64 {
        show_drops(&self.cli(&["show"]), reason)
    }
}

/// A reason's count on the `drops:` line of `switchyard show` (0 if absent).
pub fn show_drops(show: &str, reason: &str) -> u64 {
    let line = show
        .lines()
        .find_map(|l| l.strip_prefix("drops: "))
        .unwrap_or_else(|| panic!("no drops line in:\n{show}"));
    line.split(", ")
        .find_map(|d| d.strip_prefix(reason)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

impl Drop for Chassis {
    fn drop(&mut self) {
        kill(&mut self.node);
    }
}
