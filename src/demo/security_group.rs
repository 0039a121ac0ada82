//! The demo's security group: a Neutron-shaped one written with the real
//! `ovn-nbctl` (a port group, a default drop, `allow-related` for SSH, a
//! `reject`, egress allowed), then shown working across the two chassis:
//! ping dropped and counted, SSH connecting with its replies let back in
//! by conntrack, telnet refused at once by a TCP RST, the connection in
//! `switchyard conntrack`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use switchyard::netns::Vm;

use super::{drops, nbctl, Demo, Node};
use crate::ctl;

/// How a TCP connection from `vm` to `ip`:`port` ends: "connected: what
/// the server said", "refused" (a RST came back) or "timeout".
fn tcp_connect(vm: &Vm, ip: &str, port: u16) -> String {
    let code = format!(
        "import socket\ntry:\n  s=socket.create_connection(('{ip}',{port}),timeout=2)\n  print('connected:', s.recv(64).decode().strip())\n\
         except ConnectionRefusedError:\n  print('refused')\nexcept OSError as e:\n  print('timeout', e)\n"
    );
    vm.try_exec(&["/usr/bin/python3", "-c", &code]).1
}

/// A TCP server in `vm` on `port` that greets each client; killed on drop.
struct Server(Child);

impl Server {
    fn start(vm: &Vm, port: u16) -> Result<Server> {
        let code = format!(
            "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('0.0.0.0',{port})); s.listen()\nwhile True:\n  c,_=s.accept(); c.sendall(b'hello from vm2\\n'); c.close()\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &vm.ns, "/usr/bin/python3", "-c", &code])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Server(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        let sport = format!("sport = :{port}");
        while !vm.try_exec(&["ss", "-Hltn", &sport]).1.contains("LISTEN") {
            if Instant::now() > deadline {
                bail!("the server in {} did not listen on {port}", vm.ns);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Puts vm2 behind a security group and checks what it lets through.
pub(super) fn run(demo: &mut Demo, vm1: &Vm, vm2: &Vm, hv2: &Node) -> Result<()> {
    let _ssh = Server::start(vm2, 22)?;
    println!("\nA security group for vm2, as Neutron's ML2/OVN driver writes one (port group, default drop, rules above it):");
    nbctl(&[
        "--wait=hv",
        "pg-add",
        "pg_web",
        &vm2.ns,
        "--",
        "--type=port-group",
        "acl-add",
        "pg_web",
        "to-lport",
        "1001",
        "outport == @pg_web && ip4",
        "drop",
        "--",
        "--type=port-group",
        "--name=ssh-in",
        "acl-add",
        "pg_web",
        "to-lport",
        "1002",
        "outport == @pg_web && ip4 && tcp.dst == 22",
        "allow-related",
        "--",
        "--type=port-group",
        "acl-add",
        "pg_web",
        "to-lport",
        "1002",
        "outport == @pg_web && ip4 && tcp.dst == 23",
        "reject",
        "--",
        "--type=port-group",
        "acl-add",
        "pg_web",
        "from-lport",
        "1002",
        "inport == @pg_web && ip4",
        "allow-related",
    ])?;
    println!("\nChecks:");
    let before = drops(&hv2.metrics, "acl_drop");
    let (ok, out) = vm1.ping("10.0.0.2", 1, &[]);
    demo.check(
        "vm1's ping to vm2 is dropped by the security group, on vm2's chassis (acl_drop on demo-hv2)",
        !ok && drops(&hv2.metrics, "acl_drop") > before,
        &out,
    );
    let ssh = tcp_connect(vm1, "10.0.0.2", 22);
    demo.check(
        "vm1 connects to vm2's TCP 22 (allow-related) and vm2's answer comes back through conntrack",
        ssh.starts_with("connected: hello from vm2"),
        &ssh,
    );
    let telnet = tcp_connect(vm1, "10.0.0.2", 23);
    demo.check(
        "vm1's TCP 23 is rejected: the switch answers with a TCP RST at once",
        telnet.starts_with("refused"),
        &telnet,
    );
    let conns = ctl::request(
        &hv2.ctl,
        &ctl::Request::Conntrack {
            zone: None,
            count: false,
            flush: false,
        },
    )?;
    demo.check(
        "demo-hv2 tracks the SSH connection ($ switchyard conntrack)",
        conns.contains("dport=22"),
        &conns,
    );
    for l in conns.lines().filter(|l| l.contains("dport=22")).take(2) {
        println!("    {l}");
    }
    Ok(())
}
