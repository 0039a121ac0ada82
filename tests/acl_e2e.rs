//! Stateful ACLs end to end: the real `ovn-nbctl` writes a security group
//! shaped as Neutron's ML2/OVN driver writes one (a port group per group,
//! `neutron_pg_drop` with priority-1001 drops, allow-related rules at
//! 1002, a remote-group address set), northd-lite puts it in SB as typed
//! ACL / Port_Group / Address_Set rows, the node's chassis controller
//! compiles it, and TCP and ICMP between namespace VMs follow it: TCP 22
//! from the address set connects and its replies flow, from outside it
//! does not, ICMP follows its rule, a reject ACL answers TCP with a RST and
//! UDP with ICMP port unreachable, a logged ACL's line appears in the
//! node's log, and a drop ACL added later cuts an established connection.
//! Hostile input: a SYN flood against a small connection table is dropped
//! as `ct_full` while an established stream flows. Every wait is on a
//! condition.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::ovn::{vif, Databases, Ovn};
use common::{require_root, vm, wait_until, Vm};

/// An echo server on TCP 22 in `vm` (each connection echoes what it gets).
fn echo_server(vm: &Vm) -> Proc {
    let code = r#"
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 22))
s.listen(16)
def echo(c):
    while True:
        d = c.recv(100)
        if not d:
            break
        c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
"#;
    let child = Command::new("ip")
        .args(["netns", "exec", &vm.ns, "/usr/bin/python3", "-c", code])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 echo server");
    let child = Proc(child);
    wait_until("the echo server to listen", Duration::from_secs(10), || {
        vm.try_exec(&["ss", "-ltnH", "sport = :22"])
            .1
            .contains(":22")
    });
    child
}

/// Connects from `vm` to `ip`:22, sends a line and reads the echo;
/// (connected and echoed, output).
fn tcp_echo(vm: &Vm, ip: &str) -> (bool, String) {
    let code = format!(
        r#"
import socket, sys
try:
    s = socket.create_connection(("{ip}", 22), timeout=2)
    s.sendall(b"ping")
    s.settimeout(2)
    print(s.recv(10).decode())
except Exception as e:
    print("failed:", e)
    sys.exit(1)
"#
    );
    let (ok, out) = vm.try_exec(&["/usr/bin/python3", "-c", &code]);
    (ok && out.contains("ping"), out)
}

/// How a TCP connect, or a UDP exchange, from `vm` to `ip`:`port` ends:
/// "connected" / "answered", "refused" (a RST or an ICMP port or host
/// unreachable came back) or "timeout".
fn try_reach(vm: &Vm, udp: bool, ip: &str, port: u16) -> String {
    let code = format!(
        r#"
import socket
try:
    if {udp}:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.connect(("{ip}", {port}))
        s.send(b"x")
        s.recv(10)
        print("answered")
    else:
        socket.create_connection(("{ip}", {port}), timeout=2)
        print("connected")
except (ConnectionRefusedError, OSError) as e:
    import errno
    if getattr(e, "errno", None) in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
        print("refused", e)
    else:
        print("timeout", e)
"#,
        udp = if udp { "True" } else { "False" }
    );
    vm.try_exec(&["/usr/bin/python3", "-c", &code]).1
}

/// A client in `vm` that connects to `ip`:22 and echoes once, then waits
/// for `go` to exist and tries a second exchange; prints "first ok" and
/// then "second ok" or "second failed".
fn long_client(vm: &Vm, ip: &str, go: &std::path::Path) -> Proc {
    let code = format!(
        r#"
import socket, os, time
s = socket.create_connection(("{ip}", 22), timeout=2)
s.sendall(b"one")
s.settimeout(2)
print("first ok" if s.recv(10) == b"one" else "first failed", flush=True)
while not os.path.exists("{go}"):
    time.sleep(0.01)
try:
    s.sendall(b"two")
    print("second ok" if s.recv(10) == b"two" else "second failed", flush=True)
except Exception as e:
    print("second failed", e, flush=True)
"#,
        go = go.display()
    );
    Command::new("ip")
        .args(["netns", "exec", &vm.ns, "/usr/bin/python3", "-c", &code])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Proc)
        .expect("python3 client")
}

/// A process in a VM, killed on drop (also when an assertion fails).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tests take turns: each runs a node, VMs and traffic whose timing
/// the other's load (a SYN flood) would disturb on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// The logical port of `vm`.
fn lp(vm: &Vm) -> String {
    format!("{}-lp", vm.ns)
}

/// Plugs `vms` into the node and puts them on switch `net1`.
fn plug(ovn: &Ovn, vms: &[&Vm]) {
    for v in vms {
        ovn.cli(&["port-add", &v.port, "--iface-id", &lp(v)]);
    }
    let mut cmd: Vec<String> = ["--wait=hv", "ls-add", "net1"].map(String::from).to_vec();
    for v in vms {
        cmd.extend(vif("net1", &lp(v), &format!("{} {}", v.mac, v.ip)));
    }
    ovn.nbctl(&cmd);
}

#[test]
fn neutron_security_group_with_ovn_nbctl() {
    require_root();
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let vm1 = vm("c", "00:00:00:00:00:11", "10.0.0.1", 1500);
    let vm2 = vm("s", "00:00:00:00:00:12", "10.0.0.2", 1500);
    let vm3 = vm("x", "00:00:00:00:00:13", "10.0.0.3", 1500);
    let ovn = Ovn::start(Databases::Ours);
    plug(&ovn, &[&vm1, &vm2, &vm3]);
    let (lp1, lp2, lp3) = (lp(&vm1), lp(&vm2), lp(&vm3));
    let _server = echo_server(&vm2);
    // Without ACLs everything is open.
    let (ok, out) = tcp_echo(&vm3, "10.0.0.2");
    assert!(ok, "no ACLs, yet TCP failed: {out}");

    // The security group, as Neutron writes it.
    let pg_web = "pg_web";
    let allow_ssh =
        "outport == @pg_web && ip4 && ip4.src == $clients && tcp && tcp.dst >= 22 && tcp.dst <= 22";
    let nb = |args: &[&str]| ovn.nbctl(args);
    nb(&["pg-add", "neutron_pg_drop", &lp1, &lp2, &lp3]);
    nb(&["pg-add", pg_web, &lp2]);
    nb(&[
        "create",
        "Address_Set",
        "name=clients",
        "addresses=\"10.0.0.1\"",
    ]);
    nb(&[
        "--type=port-group",
        "acl-add",
        "neutron_pg_drop",
        "from-lport",
        "1001",
        "inport == @neutron_pg_drop && ip",
        "drop",
    ]);
    nb(&[
        "--type=port-group",
        "acl-add",
        "neutron_pg_drop",
        "to-lport",
        "1001",
        "outport == @neutron_pg_drop && ip",
        "drop",
    ]);
    nb(&[
        "--type=port-group",
        "--name=egress",
        "acl-add",
        "neutron_pg_drop",
        "from-lport",
        "1002",
        "inport == @neutron_pg_drop && ip4",
        "allow-related",
    ]);
    nb(&[
        "--type=port-group",
        "--name=icmp-in",
        "acl-add",
        pg_web,
        "to-lport",
        "1002",
        "outport == @pg_web && ip4 && icmp4",
        "allow-related",
    ]);
    // A bad match: northd-lite logs it and leaves it out; nothing else breaks.
    nb(&[
        "--type=port-group",
        "acl-add",
        pg_web,
        "to-lport",
        "1003",
        "outport == @pg_web && tcp.dst == 99999",
        "drop",
    ]);
    nb(&[
        "--wait=hv",
        "--type=port-group",
        "--name=ssh-in",
        "--log",
        "--severity=alert",
        "acl-add",
        pg_web,
        "to-lport",
        "1002",
        allow_ssh,
        "allow-related",
    ]);

    let sb = ovn.sb_dump();
    assert!(sb.contains("ACL table"), "{sb}");
    assert!(
        sb.contains("pg_web_ip4"),
        "the port group's address set: {sb}"
    );
    assert!(!sb.contains("99999"), "a bad match reached SB: {sb}");

    // TCP 22 from the address set connects, and the echo comes back.
    let (ok, out) = tcp_echo(&vm1, "10.0.0.2");
    assert!(ok, "allowed client could not connect: {out}");
    // ssh-in is logged: the node writes ovn-controller's line for it.
    let line = "name=\"ssh-in\", verdict=allow, severity=alert, direction=to-lport: tcp,";
    let flow = "nw_src=10.0.0.1,nw_dst=10.0.0.2,";
    wait_until("ssh-in's log line", Duration::from_secs(10), || {
        ovn.node_log()
            .lines()
            .any(|l| l.contains(line) && l.contains(flow) && l.contains("tp_dst=22,tcp_flags=syn"))
    });
    // From outside the address set it does not.
    let (ok, out) = tcp_echo(&vm3, "10.0.0.2");
    assert!(!ok, "vm3 is not in $clients, yet connected: {out}");
    // ICMP to the web group from anyone; to vm1 (no ingress rule) not.
    let (ok, out) = vm3.ping("10.0.0.2", 2, &[]);
    assert!(ok, "icmp4 to pg_web is allowed: {out}");
    let (ok, out) = vm2.ping("10.0.0.1", 1, &[]);
    assert!(!ok, "vm1 has no ingress rule, yet answered a ping: {out}");

    // reject answers: the client gets a RST or an ICMP port unreachable at
    // once, not a timeout.
    nb(&[
        "--wait=hv",
        "--type=port-group",
        "acl-add",
        pg_web,
        "to-lport",
        "1002",
        "outport == @pg_web && ip4 && (tcp.dst == 23 || udp.dst == 69)",
        "reject",
    ]);
    let r = try_reach(&vm1, false, "10.0.0.2", 23);
    assert!(
        r.starts_with("refused"),
        "reject did not answer with a RST: {r}"
    );
    let r = try_reach(&vm1, true, "10.0.0.2", 69);
    assert!(
        r.starts_with("refused"),
        "reject did not answer UDP with ICMP port unreachable: {r}"
    );
    // SCTP gets OVN's ABORT: to an INIT, the INIT's tag with T clear, and a
    // CRC32c scapy agrees with.
    nb(&[
        "--wait=hv",
        "--type=port-group",
        "acl-add",
        pg_web,
        "to-lport",
        "1002",
        "outport == @pg_web && ip4 && sctp",
        "reject",
    ]);
    let (ok, out) = vm1.try_exec(&[
        "/usr/bin/python3",
        "-c",
        "from scapy.all import IP, sr1, conf\n\
         from scapy.layers.sctp import SCTP, SCTPChunkInit, SCTPChunkAbort\n\
         conf.verb = 0\n\
         p = IP(dst='10.0.0.2')/SCTP(sport=5000, dport=9, tag=0)/SCTPChunkInit(init_tag=0xdeadbeef, a_rwnd=65535, n_out_streams=1, n_in_streams=1, init_tsn=1)\n\
         r = sr1(p, timeout=5)\n\
         if r is None or SCTPChunkAbort not in r: print('no abort', r)\n\
         else:\n\
         \x20 s = r[SCTP]; again = SCTP(bytes(s)); del again.chksum; again = SCTP(bytes(again))\n\
         \x20 print('abort', hex(s.tag), r[SCTPChunkAbort].TCB, s.sport, s.dport, r[IP].ttl, 'crc-ok' if again.chksum == s.chksum else 'crc-bad')\n",
    ]);
    assert!(
        ok && out.contains("abort 0xdeadbeef 0 9 5000 63 crc-ok"),
        "reject did not answer SCTP with OVN's ABORT: {out}"
    );
    // Without the reject ACL, neutron_pg_drop drops silently.
    let r = try_reach(&vm1, false, "10.0.0.2", 24);
    assert!(r.starts_with("timeout"), "a drop answered: {r}");

    let m = ovn.metrics();
    assert!(
        common::metric(&m, "switchyard_acl_hits_total{acl=\"ssh-in\"}") >= 1,
        "{m}"
    );
    assert!(
        common::metric(&m, "switchyard_drops_total{reason=\"acl_drop\"}") >= 1,
        "{m}"
    );
    assert!(
        common::metric(&m, "switchyard_conntrack_connections") >= 2,
        "{m}"
    );
    let ct = ovn.cli(&["conntrack"]);
    assert!(ct.contains("dport=22)") && ct.contains("state="), "{ct}");

    // Trace shows the ACL that decides, with its zone and state.
    let flow = format!(
        "inport={lp1} eth.src={} eth.dst={} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 tcp.src=41000 tcp.dst=22 tcp.flags=0x02",
        vm1.mac, vm2.mac
    );
    let t = ovn.cli(&["trace", &flow]);
    assert!(
        t.contains("ssh-in") && t.contains("priority 1002, to-lport"),
        "{t}"
    );
    assert!(t.contains("ct zone") && t.contains("+new+trk"), "{t}");

    // A drop ACL added while a connection is established cuts it.
    let go = std::env::temp_dir().join(format!("switchyard-acl-go-{}", std::process::id()));
    let _ = std::fs::remove_file(&go);
    let mut client = long_client(&vm1, "10.0.0.2", &go);
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(client.0.stdout.take().unwrap()));
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, "first ok");
    nb(&[
        "--wait=hv",
        "--type=port-group",
        "--name=cut",
        "acl-add",
        pg_web,
        "to-lport",
        "2000",
        "outport == @pg_web && tcp.dst == 22",
        "drop",
    ]);
    std::fs::write(&go, b"go").unwrap();
    let second = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(
        second.starts_with("second failed"),
        "the established connection survived a drop ACL: {second}"
    );
    drop(client);
    let _ = std::fs::remove_file(&go);
    let ct = ovn.cli(&["conntrack"]);
    assert!(ct.contains("blocked"), "{ct}");
}

/// From `vm` (whose address is `src`), TCP SYNs to `dst`:22 from ever new
/// source ports, through a raw socket, until `stop` exists; prints how
/// many it sent.
fn syn_flood(vm: &Vm, src: &str, dst: &str, stop: &std::path::Path) -> Proc {
    let code = format!(
        r#"
import os, random, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
pseudo = socket.inet_aton("{src}") + socket.inet_aton("{dst}") + struct.pack("!BBH", 0, 6, 20)
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
n = 0
while not os.path.exists("{stop}"):
    h = struct.pack("!HHIIBBHHH", 1024 + n % 60000, 22, random.getrandbits(32), 0, 5 << 4, 2, 65535, 0, 0)
    h = h[:16] + struct.pack("!H", csum(pseudo + h)) + h[18:]
    s.sendto(h, ("{dst}", 0))
    n += 1
print(n, flush=True)
"#,
        stop = stop.display()
    );
    Command::new("ip")
        .args(["netns", "exec", &vm.ns, "/usr/bin/python3", "-c", &code])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Proc)
        .expect("python3 SYN flood")
}

/// Hostile input: a SYN flood from a VM whose egress is allow-related
/// fills a small connection table (each SYN commits in its zone); new
/// connections are then dropped as `ct_full`, counted on /metrics, while
/// an established TCP stream keeps flowing through the flood.
#[test]
fn a_syn_flood_fills_conntrack_and_established_traffic_flows() {
    require_root();
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    const LIMIT: u64 = 64;
    let vm1 = vm("c", "00:00:00:00:00:21", "10.0.0.1", 1500);
    let vm2 = vm("s", "00:00:00:00:00:22", "10.0.0.2", 1500);
    let vm3 = vm("x", "00:00:00:00:00:23", "10.0.0.3", 1500);
    let ovn =
        Ovn::start_with_node_args(Databases::Ours, &["--conntrack-limit", &LIMIT.to_string()]);
    plug(&ovn, &[&vm1, &vm2, &vm3]);
    let nb = |args: &[&str]| ovn.nbctl(args);
    nb(&["pg-add", "neutron_pg_drop", &lp(&vm1), &lp(&vm2), &lp(&vm3)]);
    nb(&[
        "--type=port-group",
        "acl-add",
        "neutron_pg_drop",
        "to-lport",
        "1001",
        "outport == @neutron_pg_drop && ip",
        "drop",
    ]);
    nb(&[
        "--type=port-group",
        "acl-add",
        "neutron_pg_drop",
        "from-lport",
        "1002",
        "inport == @neutron_pg_drop && ip4",
        "allow-related",
    ]);
    nb(&[
        "--wait=hv",
        "--type=port-group",
        "acl-add",
        "neutron_pg_drop",
        "to-lport",
        "1002",
        "outport == @neutron_pg_drop && ip4.src == 10.0.0.1 && tcp.dst == 22",
        "allow-related",
    ]);
    let _server = echo_server(&vm2);

    let dir = std::env::temp_dir().join(format!("switchyard-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (go, stop) = (dir.join("go"), dir.join("stop"));
    let mut client = long_client(&vm1, "10.0.0.2", &go);
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(client.0.stdout.take().unwrap()));
    assert_eq!(
        lines.next().and_then(Result::ok).unwrap_or_default(),
        "first ok"
    );

    let mut flood = syn_flood(&vm3, "10.0.0.3", "10.0.0.2", &stop);
    let full = "switchyard_drops_total{reason=\"ct_full\"}";
    wait_until(
        "the flood to fill the table",
        Duration::from_secs(20),
        || ovn.metric(full) >= 100,
    );
    assert_eq!(ovn.metric("switchyard_conntrack_connections"), LIMIT);
    // While the flood goes on: the established stream flows, a new
    // connection does not.
    std::fs::write(&go, b"go").unwrap();
    let second = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(
        second, "second ok",
        "the established stream stalled in the flood"
    );
    let (ok, out) = tcp_echo(&vm1, "10.0.0.2");
    assert!(!ok, "a new connection got through a full table: {out}");
    let refused = ovn.metric("switchyard_conntrack_refused_total");
    std::fs::write(&stop, b"stop").unwrap();
    let sent = std::io::BufRead::lines(std::io::BufReader::new(flood.0.stdout.take().unwrap()))
        .next()
        .and_then(Result::ok)
        .unwrap_or_default();
    let sent: u64 = sent.trim().parse().expect("the flood's count");
    assert!(sent > LIMIT, "the flood sent {sent} SYNs");
    assert!(refused >= 100, "{refused} commits refused");
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
}
