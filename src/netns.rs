//! Network-namespace "VMs" for the demo and the end-to-end tests: a
//! namespace with one interface `eth0` whose veth peer stays in the root
//! namespace for the switch to attach to. Everything is removed on drop.

use std::io;
use std::process::{Command, Output};

/// Runs a command; an error carries its output.
pub fn sh(args: &[&str]) -> io::Result<Output> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running {}: {e}", args[0])))?;
    if !out.status.success() {
        let mut cmd = args.join(" ");
        if cmd.len() > 300 {
            cmd.truncate(300);
            cmd += "...";
        }
        return Err(io::Error::other(format!(
            "{cmd} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

/// A VM: a network namespace with `eth0`.
pub struct Vm {
    pub ns: String,
    /// The switch-side interface in the root namespace.
    pub port: String,
    pub mac: String,
    pub ip: String,
    /// The namespace holding `port` (None: the root namespace).
    pub host: Option<String>,
}

impl Vm {
    /// Creates namespace `ns` with `eth0` (`mac`, `ip/24`, `mtu`), joined
    /// by veth to `port` in the root namespace. Stale leftovers of the same
    /// names are removed first.
    pub fn new(ns: &str, port: &str, mac: &str, ip: &str, mtu: u32) -> io::Result<Vm> {
        Self::new_on(None, ns, port, mac, ip, mtu)
    }

    /// Like [`Vm::new`], with the switch-side interface in namespace
    /// `host` (a chassis' namespace) instead of the root one.
    pub fn new_on(
        host: Option<&str>,
        ns: &str,
        port: &str,
        mac: &str,
        ip: &str,
        mtu: u32,
    ) -> io::Result<Vm> {
        let in_host = |args: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = Vec::new();
            if let Some(h) = host {
                v.extend(["ip", "netns", "exec", h].map(String::from));
            }
            v.extend(args.iter().map(|a| a.to_string()));
            v
        };
        let run = |args: Vec<String>| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            sh(&refs)
        };
        let _ = sh(&["ip", "netns", "del", ns]);
        let _ = run(in_host(&["ip", "link", "del", port]));
        sh(&["ip", "netns", "add", ns])?;
        let vm = Vm {
            ns: ns.into(),
            port: port.into(),
            mac: mac.into(),
            ip: ip.into(),
            host: host.map(String::from),
        };
        let mtu = mtu.to_string();
        run(in_host(&[
            "ip", "link", "add", port, "mtu", &mtu, "type", "veth", "peer", "name", "eth0", "mtu",
            &mtu, "netns", ns,
        ]))?;
        run(in_host(&["ip", "link", "set", port, "up"]))?;
        // IPv4-only VMs: no IPv6 autoconfiguration chatter (router and
        // neighbour solicitations, MLD) to blur counters in tests and demos.
        vm.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])?;
        vm.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"])?;
        vm.exec(&["ip", "link", "set", "eth0", "address", mac])?;
        vm.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        vm.exec(&["ip", "link", "set", "eth0", "up"])?;
        vm.exec(&["ip", "link", "set", "lo", "up"])?;
        // AF_PACKET ports take frames up to the MTU: the VM must not hand
        // its veth TSO/GSO super-frames (a tap-backed VM is told the same
        // through its offload flags). Checksum offload stays on: the switch
        // completes partial checksums.
        vm.exec(&["ethtool", "-K", "eth0", "tso", "off", "gso", "off"])?;
        Ok(vm)
    }

    fn cmd<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut full = vec!["ip", "netns", "exec", self.ns.as_str()];
        full.extend_from_slice(args);
        full
    }

    /// Runs a command inside the VM.
    pub fn exec(&self, args: &[&str]) -> io::Result<Output> {
        sh(&self.cmd(args))
    }

    /// Runs a command inside the VM; (success, stdout+stderr).
    pub fn try_exec(&self, args: &[&str]) -> (bool, String) {
        match Command::new("ip").args(&self.cmd(args)[1..]).output() {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    }

    /// Pings `ip` `count` times; (every reply came back, output).
    pub fn ping(&self, ip: &str, count: u32, extra: &[&str]) -> (bool, String) {
        let c = count.to_string();
        let mut args = vec!["ping", "-c", &c, "-i", "0.2", "-W", "2"];
        args.extend_from_slice(extra);
        args.push(ip);
        self.try_exec(&args)
    }

    /// Sends raw Ethernet frames out of `eth0` (AF_PACKET, via python3).
    pub fn send_raw(&self, frames: &[Vec<u8>]) -> io::Result<()> {
        let hex: Vec<String> = frames
            .iter()
            .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        let script = "import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(('eth0',0))\nfor h in sys.argv[1:]: s.send(bytes.fromhex(h))\n";
        let mut args = vec!["/usr/bin/python3", "-c", script];
        args.extend(hex.iter().map(String::as_str));
        self.exec(&args).map(|_| ())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        match &self.host {
            Some(h) => {
                let _ = sh(&["ip", "netns", "exec", h, "ip", "link", "del", &self.port]);
            }
            None => {
                let _ = sh(&["ip", "link", "del", &self.port]);
            }
        }
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}
