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

/// A bridge in the root namespace with an address: an underlay or a
/// physical network for chassis and hosts in namespaces. Removed on drop.
pub struct Bridge {
    pub name: String,
    pub ip: String,
}

impl Bridge {
    /// Bridge `name` with `ip`/24 (stale leftovers of the name removed).
    pub fn new(name: &str, ip: &str) -> io::Result<Bridge> {
        let _ = sh(&["ip", "link", "del", name]);
        // No multicast snooping: a switch's uplink sends neighbour
        // solicitations without joining groups by MLD, as a plain L2
        // segment expects.
        sh(&[
            "ip",
            "link",
            "add",
            name,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        sh(&["ip", "addr", "add", &format!("{ip}/24"), "dev", name])?;
        sh(&["ip", "link", "set", name, "up"])?;
        // Its own TCP (the databases serving the chassis) must not send GSO
        // super-frames to interfaces a switch reads over AF_PACKET.
        sh(&["ethtool", "-K", name, "tso", "off", "gso", "off"])?;
        Ok(Bridge {
            name: name.into(),
            ip: ip.into(),
        })
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = sh(&["ip", "link", "del", &self.name]);
    }
}

/// A host on a bridge: namespace `ns` with interface `iface` (address
/// `ip`/24, if given) whose veth peer is a port of the bridge.
/// A chassis' namespace, or a physical host's. Removed on drop.
pub struct Host {
    pub ns: String,
    pub iface: String,
    peers: Vec<String>,
}

impl Host {
    pub fn new(ns: &str, bridge: &Bridge, iface: &str, ip: Option<&str>) -> io::Result<Host> {
        let _ = sh(&["ip", "netns", "del", ns]);
        sh(&["ip", "netns", "add", ns])?;
        let mut host = Host {
            ns: ns.into(),
            iface: iface.into(),
            peers: Vec::new(),
        };
        host.attach(bridge, iface)?;
        host.exec(&["ip", "link", "set", "lo", "up"])?;
        host.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])?;
        if let Some(ip) = ip {
            host.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", iface])?;
        }
        // The host's own TCP shares the interface with a switch reading it
        // over AF_PACKET: no GSO or GRO super-frames (see Vm::new).
        host.exec(&[
            "ethtool", "-K", iface, "tso", "off", "gso", "off", "gro", "off",
        ])?;
        Ok(host)
    }

    /// Adds interface `iface` in the host, its veth peer on `bridge` (named
    /// from a hash of the host and interface: unique, and short enough for
    /// the kernel's 15 characters).
    pub fn attach(&mut self, bridge: &Bridge, iface: &str) -> io::Result<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&self.ns, iface).hash(&mut h);
        let peer = format!("syb{:08x}", h.finish() as u32);
        let _ = sh(&["ip", "link", "del", &peer]);
        sh(&[
            "ip", "link", "add", &peer, "type", "veth", "peer", "name", iface, "netns", &self.ns,
        ])?;
        sh(&["ip", "link", "set", &peer, "master", &bridge.name, "up"])?;
        self.exec(&["ip", "link", "set", iface, "up"])?;
        self.peers.push(peer);
        Ok(())
    }

    /// Runs a command inside the host.
    pub fn exec(&self, args: &[&str]) -> io::Result<Output> {
        let mut full = vec!["ip", "netns", "exec", self.ns.as_str()];
        full.extend_from_slice(args);
        sh(&full)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for p in &self.peers {
            let _ = sh(&["ip", "link", "del", p]);
        }
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}
