//! Distributed logical routing end to end, driven by the real `ovn-nbctl`:
//! two switches joined by one router (`lr-add`, `lrp-add`, switch ports of
//! type "router"), VMs in namespaces with default gateways on the router's
//! ports. Once `--wait=hv` returns, pings cross the router both ways over
//! IPv4 and IPv6, the router answers pings to its addresses, a TTL of 1
//! gets ICMP time exceeded from the router port facing the sender, a static
//! route reaches a prefix behind a VM on the far switch, ECMP over two such
//! VMs spreads flows over both (each flow on one), a destination
//! without a route is dropped and counted as `no_route`, and `switchyard
//! trace` walks switch -> router -> switch. Across two chassis, routing
//! happens on the sender's: the capture on the underlay shows the routed
//! packet going straight to the destination's chassis in the destination
//! switch's datapath, already rewritten, and ping and TCP cross both ways.
//! Under the real ovn-northd, the connected networks are routed as well.
//! A next hop whose MAC nobody knows (a kernel host on a port with
//! "unknown" or MAC-only addresses) is asked for by ARP and neighbour
//! solicitation, learnt into SB MAC_Binding (checked with the real
//! `ovn-sbctl`), and then routed through; another chassis uses that
//! binding from SB without asking.

mod common;

use std::process::Command;
use std::time::Duration;

use common::ovn::{Chassis, Databases, Ovn, UnderlayNet};
use common::{require_root, vm, wait_until, Ready};
use switchyard::netns::Vm;

const LRP1_MAC: &str = "00:00:00:00:ff:01";
const LRP2_MAC: &str = "00:00:00:00:ff:02";

/// The `ovn-nbctl` commands (after `--`) that add `port` to `switch` with
/// `addr` as its addresses, and as its port security if `secured`.
fn port(switch: &str, port: &str, addr: &str, secured: bool) -> Vec<String> {
    let mut v: Vec<String> = [
        "--",
        "lsp-add",
        switch,
        port,
        "--",
        "lsp-set-addresses",
        port,
        addr,
    ]
    .map(String::from)
    .to_vec();
    if secured {
        v.extend(["--", "lsp-set-port-security", port, addr].map(String::from));
    }
    v
}

/// A switch port of type "router" peering router port `lrp`.
fn router_port(switch: &str, name: &str, lrp: &str) -> Vec<String> {
    [
        "--",
        "lsp-add",
        switch,
        name,
        "--",
        "lsp-set-type",
        name,
        "router",
        "--",
        "lsp-set-options",
        name,
        &format!("router-port={lrp}"),
        "--",
        "lsp-set-addresses",
        name,
        "router",
    ]
    .map(String::from)
    .to_vec()
}

/// Gives `vm` IPv6 address `ip6` (/64) and default routes via `gw4` and
/// `gw6`.
fn configure(vm: &Vm, ip6: &str, gw4: &str, gw6: &str) {
    for args in [
        &["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=0"][..],
        &["sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=0"],
        &[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{ip6}/64"),
            "dev",
            "eth0",
            "nodad",
        ],
        &["ip", "route", "add", "default", "via", gw4],
        &[
            "ip", "-6", "route", "add", "default", "via", gw6, "dev", "eth0",
        ],
    ] {
        let (ok, out) = vm.try_exec(args);
        assert!(ok, "{args:?} in {}: {out}", vm.ns);
    }
}

/// The NB commands for router lr0 between ls1 (lrp1, 10.0.1.0/24,
/// fd01::/64) and ls2 (lrp2, 10.0.2.0/24, fd02::/64).
fn topology() -> Vec<String> {
    let mut cmd: Vec<String> = [
        "--wait=hv",
        "lr-add",
        "lr0",
        "--",
        "lrp-add",
        "lr0",
        "lrp1",
        LRP1_MAC,
        "10.0.1.254/24",
        "fd01::fe/64",
        "--",
        "lrp-add",
        "lr0",
        "lrp2",
        LRP2_MAC,
        "10.0.2.254/24",
        "fd02::fe/64",
        "--",
        "ls-add",
        "ls1",
        "--",
        "ls-add",
        "ls2",
    ]
    .map(String::from)
    .to_vec();
    cmd.extend(router_port("ls1", "ls1-lr0", "lrp1"));
    cmd.extend(router_port("ls2", "ls2-lr0", "lrp2"));
    cmd
}

/// A VM's logical port name.
fn lp(v: &Vm) -> String {
    format!("{}-lp", v.ns)
}

/// Switch port `(vm, switch, addresses, secured)` of each of `ports`.
fn vifs(ports: &[(&Vm, &str, String, bool)]) -> Vec<String> {
    let mut cmd = Vec::new();
    for (v, switch, addr, secured) in ports {
        cmd.extend(port(switch, &lp(v), addr, *secured));
    }
    cmd
}

/// One chassis (the root-namespace node) under `databases`, with `plug`
/// plugged by iface-id and, in one `--wait=hv` transaction, [`topology`]
/// and the switch ports `ports`.
fn one_chassis(databases: Databases, plug: &[&Vm], ports: &[(&Vm, &str, String, bool)]) -> Ovn {
    let ovn = Ovn::start(databases);
    for v in plug {
        ovn.cli(&["port-add", &v.port, "--iface-id", &lp(v)]);
    }
    let mut cmd = topology();
    cmd.extend(vifs(ports));
    ovn.nbctl(&cmd);
    ovn
}

#[test]
fn a_router_joins_two_switches_on_one_chassis() {
    require_root();
    let vm1 = vm("r1", "00:00:00:00:01:01", "10.0.1.1", 1500);
    let vm2 = vm("r2", "00:00:00:00:02:01", "10.0.2.1", 1500);
    // Two hosts on ls2 that own 192.0.2.0/24: next hops of a static route,
    // then of an ECMP pair.
    let gw = vm("rg", "00:00:00:00:02:05", "10.0.2.5", 1500);
    let gw2 = vm("rh", "00:00:00:00:02:06", "10.0.2.6", 1500);
    configure(&vm1, "fd01::1", "10.0.1.254", "fd01::fe");
    configure(&vm2, "fd02::1", "10.0.2.254", "fd02::fe");
    configure(&gw, "fd02::5", "10.0.2.254", "fd02::fe");
    configure(&gw2, "fd02::6", "10.0.2.254", "fd02::fe");
    for g in [&gw, &gw2] {
        let (ok, out) = g.try_exec(&["ip", "route", "add", "local", "192.0.2.0/24", "dev", "lo"]);
        assert!(ok, "{out}");
    }

    // The next-hop host receives for a whole prefix: no port security.
    let ovn = one_chassis(
        Databases::Ours,
        &[&vm1, &vm2, &gw, &gw2],
        &[
            (&vm1, "ls1", format!("{} 10.0.1.1 fd01::1", vm1.mac), true),
            (&vm2, "ls2", format!("{} 10.0.2.1 fd02::1", vm2.mac), true),
            (&gw, "ls2", format!("{} 10.0.2.5 fd02::5", gw.mac), false),
        ],
    );

    // Across the router, both ways, IPv4 and IPv6, right after --wait=hv.
    for (from, to) in [
        (&vm1, "10.0.2.1"),
        (&vm2, "10.0.1.1"),
        (&vm1, "fd02::1"),
        (&vm2, "fd01::1"),
        // The router's own addresses, on either port.
        (&vm1, "10.0.1.254"),
        (&vm1, "10.0.2.254"),
        (&vm2, "fd02::fe"),
    ] {
        let (ok, out) = from.ping(to, 2, &[]);
        assert!(ok, "{} -> {to}:\n{out}", from.ns);
    }
    // The routed echo came from the router port's MAC with the TTL down
    // by one: Linux sends 64, so vm1 sees 63.
    let (_, out) = vm1.ping("10.0.2.1", 1, &[]);
    assert!(out.contains("ttl=63"), "{out}");

    let (ok, out) = tcp_100k(&vm1, &vm2);
    assert!(ok, "TCP across the router:\n{out}\n{}", ovn.cli(&["show"]));

    // TTL 1: time exceeded from lrp1's address (the port facing vm1).
    let (ok, out) = vm1.ping("10.0.2.1", 1, &["-t", "1"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("From 10.0.1.254") && out.contains("Time to live exceeded"),
        "{out}"
    );
    let (_, out) = vm1.ping("fd02::1", 1, &["-t", "1"]);
    assert!(
        out.contains("From fd01::fe") && out.contains("Time exceeded"),
        "{out}"
    );

    // No route: dropped and counted, no ICMP error (OVN 23.03).
    let no_route = "switchyard_drops_total{reason=\"no_route\"}";
    let before = ovn.metric(no_route);
    let (ok, out) = vm1.ping("198.51.100.1", 1, &["-W", "1"]);
    assert!(!ok && !out.contains("From "), "{out}");
    assert!(ovn.metric(no_route) > before);

    // A static route to a prefix behind the host on ls2.
    ovn.nbctl(&[
        "--wait=hv",
        "lr-route-add",
        "lr0",
        "192.0.2.0/24",
        "10.0.2.5",
    ]);
    let (ok, out) = vm1.ping("192.0.2.1", 2, &[]);
    assert!(ok, "{out}");

    // ECMP over both hosts: flows (here: destinations) spread over the two
    // next hops, and each flow keeps its next hop.
    let a = format!("{} 10.0.2.6 fd02::6", gw2.mac);
    let mut cmd = vec!["--wait=hv".to_string()];
    cmd.extend(port("ls2", &lp(&gw2), &a, false));
    cmd.extend(
        [
            "--",
            "--ecmp",
            "lr-route-add",
            "lr0",
            "192.0.2.0/24",
            "10.0.2.6",
        ]
        .map(String::from),
    );
    ovn.nbctl(&cmd);
    // Echo requests a host received (its kernel's ICMP counters): exact,
    // where port counters would also count neighbour discovery.
    let echoes = |v: &Vm| -> u64 {
        let (_, snmp) = v.try_exec(&["cat", "/proc/net/snmp"]);
        let icmp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Icmp:")).collect();
        let col = icmp[0]
            .split_whitespace()
            .position(|c| c == "InEchos")
            .unwrap();
        icmp[1]
            .split_whitespace()
            .nth(col)
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut used = [0, 0];
    for i in 1..=12 {
        let before = (echoes(&gw), echoes(&gw2));
        let (ok, out) = vm1.ping(&format!("192.0.2.{i}"), 3, &[]);
        assert!(ok, "{out}");
        match (echoes(&gw) - before.0, echoes(&gw2) - before.1) {
            (3, 0) => used[0] += 1,
            (0, 3) => used[1] += 1,
            took => panic!("192.0.2.{i}: echoes split between next hops: {took:?}"),
        }
    }
    assert!(
        used[0] > 0 && used[1] > 0,
        "ECMP used one next hop only: {used:?}"
    );

    // show lists the router, its ports and routes.
    let show = ovn.cli(&["show"]);
    for want in [
        "router lr0 (datapath",
        "port lrp1 00:00:00:00:ff:01 10.0.1.254/24 fd01::fe/64 (to switch ls1",
        "route 10.0.2.0/24 out lrp2 (connected)",
        "route 192.0.2.0/24 via 10.0.2.5 out lrp2, via 10.0.2.6 out lrp2 (static)",
        "port ls1-lr0 (key",
        "no_route 1",
    ] {
        assert!(show.contains(want), "{want:?} not in show:\n{show}");
    }

    // trace walks switch -> router -> switch, naming the route and hop.
    let flow = format!(
        "inport={} eth.src={} eth.dst={LRP1_MAC} ip4.src=10.0.1.1 ip4.dst=192.0.2.1 ip.ttl=64 udp.dst=53",
        lp(&vm1),
        vm1.mac
    );
    let out = ovn.cli(&["trace", &flow]);
    for want in [
        "l2_lookup",
        "lr_in_admission",
        "static route 192.0.2.0/24 (ECMP member of 2): next hop 10.0.2.",
        "is at 00:00:00:00:02:0",
        "ip.ttl = 63",
    ] {
        assert!(out.contains(want), "{want:?} not in the trace:\n{out}");
    }

    // A to-lport ACL on the destination switch applies to routed traffic
    // as to switched: vm2 drops ICMP from ls1, and says so.
    let drops = |ovn: &Ovn| ovn.metric("switchyard_drops_total{reason=\"acl_drop\"}");
    let before = drops(&ovn);
    ovn.nbctl(&[
        "--wait=hv",
        "acl-add",
        "ls2",
        "to-lport",
        "1000",
        &format!(
            "outport == \"{}\" && ip4.src == 10.0.1.0/24 && icmp4",
            lp(&vm2)
        ),
        "drop",
    ]);
    let (ok, out) = vm1.ping("10.0.2.1", 1, &[]);
    assert!(!ok, "a routed ping passed vm2's drop ACL:\n{out}");
    assert!(
        drops(&ovn) > before,
        "the routed ping was not dropped by the ACL"
    );
    let (ok, out) = tcp_100k(&vm1, &vm2);
    assert!(ok, "TCP is not what the ACL drops:\n{out}");
}

/// 100 kB over TCP from `from` to `to` (a Python server and client): TCP
/// checksums the kernel left to offload must survive the routed path.
/// Whether it arrived whole, and what the client said.
fn tcp_100k(from: &Vm, to: &Vm) -> (bool, String) {
    tcp_100k_to(from, to, &to.ip)
}

/// [`tcp_100k`] to address `addr` of `to` (IPv4 or IPv6).
fn tcp_100k_to(from: &Vm, to: &Vm, addr: &str) -> (bool, String) {
    let family = if addr.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    };
    let mut server = Command::new("ip")
        .args(["netns", "exec", &to.ns, "/usr/bin/python3", "-c",
            &format!("import socket\ns=socket.socket(socket.{family})\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{addr}',5001))\ns.listen(1)\nc,_=s.accept()\nd=b''\nwhile len(d)<100000:\n  x=c.recv(65536)\n  if not x: break\n  d+=x\nc.sendall(b'got %d' % len(d))\nc.close()\n")])
        .spawn()
        .unwrap();
    let (ok, out) = from.try_exec(&["/usr/bin/python3", "-c",
        &format!("import socket,time\nfor i in range(100):\n  try:\n    s=socket.create_connection(('{addr}',5001),timeout=10); break\n  except OSError: time.sleep(0.1)\ns.sendall(b'x'*100000)\nprint(s.recv(100).decode())\n")]);
    if !ok {
        // The server waits for a connection that never came.
        let _ = server.kill();
    }
    let _ = server.wait();
    (ok && out.contains("got 100000"), out)
}

/// Two chassis on an underlay bridge (192.168.`net`.0/24: the databases
/// on .1, hosts on .1N, tunnel endpoints on .2N), named with `letter` so
/// that tests run side by side. Fields drop in order: chassis first.
struct TwoChassis {
    hv1: Chassis,
    hv2: Chassis,
    ovn: Ovn,
    net: UnderlayNet,
    tag: String,
}

fn two_chassis(letter: char, net: u8) -> TwoChassis {
    two_chassis_on(letter, net, &[])
}

/// Like [`two_chassis`], each chassis n also on physical networks `phys`:
/// network k ("physnet<k>", from 1) on bridge `phys[k-1]` through interface
/// `p<k>`, with chassis MAC `0e:00:00:00:0<k>:0<n>` on it.
fn two_chassis_on(letter: char, net: u8, phys: &[&UnderlayNet]) -> TwoChassis {
    let tag = format!("{}{letter}", std::process::id() % 10_000);
    let underlay = UnderlayNet::new(&format!("syrt{tag}"), &format!("192.168.{net}.1")).unwrap();
    let ovn = Ovn::start_with(Databases::Ours, &underlay.ip, false);
    let chassis = |n: u8| {
        let name = format!("c{tag}{n}");
        let (host, tunnel) = (format!("192.168.{net}.1{n}"), format!("192.168.{net}.2{n}"));
        let names: Vec<(String, String)> = (1..=phys.len())
            .map(|k| (format!("physnet{k}"), format!("p{k}")))
            .collect();
        let providers: Vec<(&str, &str, &UnderlayNet)> = names
            .iter()
            .zip(phys)
            .map(|((net, iface), bridge)| (net.as_str(), iface.as_str(), *bridge))
            .collect();
        let macs: Vec<String> = (1..=phys.len())
            .map(|k| format!("--chassis-mac-mapping=physnet{k}:0e:00:00:00:0{k}:0{n}"))
            .collect();
        let macs: Vec<&str> = macs.iter().map(String::as_str).collect();
        Chassis::start_with_node_args(
            &ovn, &underlay, &name, &host, &tunnel, "geneve", &providers, &macs,
        )
    };
    TwoChassis {
        hv1: chassis(1),
        hv2: chassis(2),
        ovn,
        net: underlay,
        tag,
    }
}

impl TwoChassis {
    /// VM number `n` on chassis `c`, plugged as logical port `lp(vm)`.
    fn vm_on(&self, c: &Chassis, n: u8, mac: &str, ip: &str) -> Vm {
        let name = format!("v{}{n}", self.tag);
        let v = Vm::new_on(Some(&c.ns), &name, &name, mac, ip, 1500).expect("a VM");
        c.cli(&["port-add", &v.port, "--iface-id", &lp(&v)]);
        v
    }
}

#[test]
fn routing_happens_on_the_senders_chassis() {
    require_root();
    let f = two_chassis('r', 87);
    let (ovn, hv1, hv2, net) = (&f.ovn, &f.hv1, &f.hv2, &f.net);
    let vm1 = f.vm_on(hv1, 1, "00:00:00:00:01:01", "10.0.1.1");
    let vm2 = f.vm_on(hv2, 2, "00:00:00:00:02:01", "10.0.2.1");
    configure(&vm1, "fd01::1", "10.0.1.254", "fd01::fe");
    configure(&vm2, "fd02::1", "10.0.2.254", "fd02::fe");
    let mut cmd = topology();
    cmd.extend(vifs(&[
        (&vm1, "ls1", format!("{} 10.0.1.1 fd01::1", vm1.mac), true),
        (&vm2, "ls2", format!("{} 10.0.2.1 fd02::1", vm2.mac), true),
    ]));
    ovn.nbctl(&cmd);

    // What vm1's chassis decides for vm1 -> vm2: routed, then tunnelled.
    let flow = format!(
        "inport={}-lp eth.src={} eth.dst={LRP1_MAC} ip4.src=10.0.1.1 ip4.dst=10.0.2.1 icmp4.type=8",
        vm1.ns, vm1.mac
    );
    let trace = hv1.cli(&["trace", &flow]);
    let keys = trace
        .lines()
        .find_map(|l| l.split_once(" in datapath "))
        .map(|(_, k)| k.to_string())
        .unwrap_or_else(|| panic!("no tunnel in the trace:\n{trace}"));
    let num = |after: &str| -> u32 {
        let rest = keys
            .split(after)
            .nth(1)
            .unwrap_or_else(|| panic!("{after} in {keys}"));
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    let (dp, ingress, egress) = (num(""), num("ingress key"), num("egress key"));
    let ls2_key: u32 = ovn
        .sb_dump()
        .lines()
        .find(|l| l.contains("name=ls2"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .expect("ls2's datapath key");
    assert_eq!(dp, ls2_key, "{trace}");

    // On the wire: from hv1's endpoint straight to hv2's, VNI = ls2's key,
    // OVN's option with ingress = ls2's router port and egress = vm2's
    // port, the inner frame already routed (router MAC, TTL 63).
    let sniff = Ready::start(Command::new("/usr/bin/python3").args(["-c", &format!(
        "from scapy.all import sniff, UDP, IP, Ether\nfrom scapy.contrib.geneve import GENEVE\n\
         ps=sniff(iface='{}', filter='udp port 6081 and src host 192.168.87.21', count=1, timeout=10, started_callback=lambda: print('ready', flush=True))\n\
         for p in ps:\n  g=GENEVE(bytes(p[UDP].payload)); i=Ether(bytes(g.payload))\n\
         \x20 print('geneve', p[IP].src, p[IP].dst, g.vni, g.options[0].data.hex(), i.src, i.dst, i[IP].ttl)\n", net.name)]));
    let (ok, out) = vm1.ping("10.0.2.1", 2, &[]);
    assert!(
        ok,
        "no routed ping across chassis right after --wait=hv:\n{out}"
    );
    let (text, errors) = sniff.output();
    let line = text
        .lines()
        .find(|l| l.starts_with("geneve"))
        .unwrap_or_else(|| panic!("no Geneve packet: {text}{errors}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&f[1..3], ["192.168.87.21", "192.168.87.22"], "{line}");
    assert_eq!(f[3].parse::<u32>().unwrap(), ls2_key, "{line}");
    let md = u32::from_str_radix(f[4], 16).unwrap();
    assert_eq!(
        ((md >> 16) & 0x7fff, md & 0xffff),
        (ingress, egress),
        "{line}"
    );
    assert_eq!(&f[5..8], [LRP2_MAC, vm2.mac.as_str(), "63"], "{line}");

    // Both ways, both families, and TCP.
    for (from, to) in [(&vm2, "10.0.1.1"), (&vm1, "fd02::1"), (&vm2, "fd01::1")] {
        let (ok, out) = from.ping(to, 2, &[]);
        assert!(ok, "{} -> {to}:\n{out}", from.ns);
    }
    for (from, to) in [(&vm1, &vm2), (&vm2, &vm1)] {
        let (ok, out) = tcp_100k(from, to);
        assert!(
            ok,
            "TCP {} -> {}:\n{out}\nhv1:\n{}\nhv2:\n{}",
            from.ns,
            to.ip,
            hv1.cli(&["show"]),
            hv2.cli(&["show"])
        );
    }
}

/// Under the real `ovn-northd` (OVN 23.03's schemas, SB written by it), a
/// router between two switches routes their connected networks too: the
/// chassis builds it from the patch Port_Bindings ovn-northd writes (the
/// switch side's `mac` is just "router"; the router port's holds its MAC
/// and networks). What ovn-northd carries only as logical flows stays
/// reported as not enforced.
#[test]
fn a_router_under_real_ovn_northd_routes_connected_networks() {
    require_root();
    let vm1 = vm("o1", "00:00:00:00:01:01", "10.0.1.1", 1500);
    let vm2 = vm("o2", "00:00:00:00:02:01", "10.0.2.1", 1500);
    configure(&vm1, "fd01::1", "10.0.1.254", "fd01::fe");
    configure(&vm2, "fd02::1", "10.0.2.254", "fd02::fe");
    let ovn = one_chassis(
        Databases::RealOvn,
        &[&vm1, &vm2],
        &[
            (&vm1, "ls1", format!("{} 10.0.1.1 fd01::1", vm1.mac), true),
            (&vm2, "ls2", format!("{} 10.0.2.1 fd02::1", vm2.mac), true),
        ],
    );
    for (from, to) in [
        (&vm1, "10.0.2.1"),
        (&vm2, "10.0.1.1"),
        (&vm1, "fd02::1"),
        (&vm1, "10.0.2.254"),
    ] {
        let (ok, out) = from.ping(to, 2, &[]);
        assert!(ok, "{} -> {to}:\n{out}\n{}", from.ns, ovn.cli(&["show"]));
    }
    let show = ovn.cli(&["show"]);
    assert!(show.contains("router lr0 (datapath"), "{show}");
    let line = show
        .lines()
        .find(|l| l.starts_with("not enforced: "))
        .unwrap_or_else(|| panic!("no not-enforced line in:\n{show}"));
    assert!(line.contains("logical_flow_router"), "{line}");
}

const UNRESOLVED: &str = "switchyard_drops_total{reason=\"next_hop_unresolved\"}";
const ARP_SENT: &str = "switchyard_router_arp_requests_sent_total";
const NS_SENT: &str = "switchyard_router_neighbor_solicitations_sent_total";

/// A host on ls2 (IPv6 `ip6`, default routes via lrp2) that owns
/// 192.0.2.1 and 2001:db8::1 on its loopback: the next hop of static
/// routes to 192.0.2.0/24 and 2001:db8::/64.
fn gateway(v: &Vm, ip6: &str) {
    configure(v, ip6, "10.0.2.254", "fd02::fe");
    for args in [
        &["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"][..],
        &["ip", "-6", "addr", "add", "2001:db8::1/128", "dev", "lo"],
    ] {
        let (ok, out) = v.try_exec(args);
        assert!(ok, "{args:?} in {}: {out}", v.ns);
    }
}

/// The NB commands (after `--`) for static routes from lr0 to
/// 192.0.2.0/24 via 10.0.2.5 and 2001:db8::/64 via fd02::5.
fn routes_via_gateway() -> Vec<String> {
    [
        "--",
        "lr-route-add",
        "lr0",
        "192.0.2.0/24",
        "10.0.2.5",
        "--",
        "lr-route-add",
        "lr0",
        "2001:db8::/64",
        "fd02::5",
    ]
    .map(String::from)
    .to_vec()
}

/// The rows of `ovn-sbctl list MAC_Binding` (the real tool, against our
/// SB), each column's value unquoted.
fn mac_bindings(ovn: &Ovn) -> Vec<std::collections::HashMap<String, String>> {
    ovn.sbctl(&["list", "MAC_Binding"])
        .split("\n\n")
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            r.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                .collect()
        })
        .collect()
}

/// The MAC_Binding row for `ip` on router port `lrp`, as (mac, datapath).
fn mac_binding(ovn: &Ovn, lrp: &str, ip: &str) -> Option<(String, String)> {
    mac_bindings(ovn)
        .into_iter()
        .find(|r| {
            r.get("logical_port").map(String::as_str) == Some(lrp)
                && r.get("ip").map(String::as_str) == Some(ip)
        })
        .map(|r| (r["mac"].clone(), r["datapath"].clone()))
}

/// Logical router lr0's Datapath_Binding in SB.
fn lr0_datapath(ovn: &Ovn) -> String {
    ovn.sbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Datapath_Binding",
        "external_ids:name=lr0",
    ])
    .trim()
    .to_string()
}

/// Issue 13's "an unresolved next hop is resolved and appears in
/// `ovn-sbctl list MAC_Binding`": the next hop of a static route is a
/// kernel host on ls2 whose switch port says only "unknown", so neither
/// northd nor the chassis knows its MAC (OVN writes static neighbour flows
/// only for ports with a MAC and an IP; for this one its router ARPs).
/// The first packet is dropped as `next_hop_unresolved`, the router sends
/// an ARP request (IPv4) or a neighbour solicitation (IPv6), the host's
/// kernel answers, the answer lands in SB MAC_Binding with lr0's datapath,
/// lrp2, the IP and the host's MAC, trace shows the hop resolved, and ping
/// and TCP then go through the next hop. A gratuitous ARP from the host
/// is learnt too, unasked.
#[test]
fn an_unknown_next_hop_is_asked_for_and_learnt_into_mac_binding() {
    require_root();
    let vm1 = vm("n1", "00:00:00:00:01:01", "10.0.1.1", 1500);
    let gw = vm("ng", "00:00:00:00:02:05", "10.0.2.5", 1500);
    configure(&vm1, "fd01::1", "10.0.1.254", "fd01::fe");
    gateway(&gw, "fd02::5");
    let ovn = one_chassis(
        Databases::Ours,
        &[&vm1, &gw],
        &[
            (&vm1, "ls1", format!("{} 10.0.1.1 fd01::1", vm1.mac), true),
            (&gw, "ls2", "unknown".to_string(), false),
        ],
    );
    let mut cmd = vec!["--wait=hv".to_string()];
    cmd.extend(routes_via_gateway());
    ovn.nbctl(&cmd);
    let lr0 = lr0_datapath(&ovn);
    assert!(!lr0.is_empty(), "no Datapath_Binding for lr0");

    for (dst, hop, sent, flow) in [
        (
            "192.0.2.1",
            "10.0.2.5",
            ARP_SENT,
            "ip4.src=10.0.1.1 ip4.dst=192.0.2.1 ip.ttl=64 icmp4.type=8",
        ),
        (
            "2001:db8::1",
            "fd02::5",
            NS_SENT,
            "ip6.src=fd01::1 ip6.dst=2001:db8::1 ip.ttl=64 icmp6.type=128",
        ),
    ] {
        let flow = format!(
            "inport={} eth.src={} eth.dst={LRP1_MAC} {flow}",
            lp(&vm1),
            vm1.mac
        );
        assert_eq!(mac_binding(&ovn, "lrp2", hop), None, "known before asked");
        let out = ovn.cli(&["trace", &flow]);
        assert!(
            out.contains(&format!("next hop {hop}: MAC unknown: would send")),
            "{out}"
        );
        let (unresolved, asked) = (ovn.metric(UNRESOLVED), ovn.metric(sent));
        // The echo that needs the next hop; it is lost, later ones pass.
        let _ = vm1.ping(dst, 1, &["-W", "1"]);
        assert!(ovn.metric(UNRESOLVED) > unresolved, "{hop}: not counted");
        assert!(ovn.metric(sent) > asked, "{hop}: no request sent");
        wait_until(
            &format!("MAC_Binding {hop} on lrp2"),
            Duration::from_secs(10),
            || mac_binding(&ovn, "lrp2", hop).is_some(),
        );
        assert_eq!(
            mac_binding(&ovn, "lrp2", hop),
            Some((gw.mac.clone(), lr0.clone())),
            "{:?}",
            mac_bindings(&ovn)
        );
        wait_until(
            &format!("trace to resolve {hop}"),
            Duration::from_secs(10),
            || {
                ovn.cli(&["trace", &flow])
                    .contains(&format!("is at {}", gw.mac))
            },
        );
        if hop.contains(':') {
            // The solicitation came from lrp2's link-local address (EUI-64
            // of its MAC): the host's kernel learnt it from the request.
            let (_, neigh) = gw.try_exec(&["ip", "-6", "neigh", "show", "fe80::200:ff:fe00:ff02"]);
            assert!(neigh.contains(LRP2_MAC), "{neigh}");
        }
        let (ok, out) = vm1.ping(dst, 2, &[]);
        assert!(ok, "{dst} via {hop} once resolved:\n{out}");
        let (ok, out) = tcp_100k_to(&vm1, &gw, dst);
        assert!(ok, "TCP to {dst} via {hop}:\n{out}");
    }
    assert!(ovn.metric("switchyard_router_bindings_learnt_total") >= 2);

    // A gratuitous ARP the host broadcasts (scapy, as `arping -U` would)
    // floods ls2, and lr0 learns from its copy without asking.
    let asked = ovn.metric(ARP_SENT);
    let (ok, out) = gw.try_exec(&[
        "/usr/bin/python3",
        "-c",
        &format!(
            "from scapy.all import Ether, ARP, sendp\n\
             sendp(Ether(src='{m}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc='{m}', psrc='10.0.2.7', pdst='10.0.2.7'), iface='eth0', verbose=0)\n",
            m = gw.mac
        ),
    ]);
    assert!(ok, "{out}");
    wait_until(
        "MAC_Binding 10.0.2.7 from the GARP",
        Duration::from_secs(10),
        || mac_binding(&ovn, "lrp2", "10.0.2.7").is_some(),
    );
    assert_eq!(
        mac_binding(&ovn, "lrp2", "10.0.2.7"),
        Some((gw.mac.clone(), lr0.clone()))
    );
    assert_eq!(ovn.metric(ARP_SENT), asked, "the router asked after all");
}

/// A binding one chassis learnt serves the others from SB: hv1 resolves
/// the gateway (on hv1, its switch port with a MAC and no IP, so that no
/// chassis knows its address in advance) for vm1; then vm3 on hv2, which
/// never asked, routes through it at once: its first echo passes, and hv2
/// sends no ARP or neighbour solicitation and drops nothing as
/// `next_hop_unresolved`.
#[test]
fn a_binding_learnt_on_one_chassis_serves_the_others() {
    require_root();
    let f = two_chassis('n', 88);
    let (ovn, hv1, hv2) = (&f.ovn, &f.hv1, &f.hv2);
    let vm1 = f.vm_on(hv1, 1, "00:00:00:00:01:01", "10.0.1.1");
    let gw = f.vm_on(hv1, 5, "00:00:00:00:02:05", "10.0.2.5");
    let vm3 = f.vm_on(hv2, 3, "00:00:00:00:01:03", "10.0.1.3");
    configure(&vm1, "fd01::1", "10.0.1.254", "fd01::fe");
    configure(&vm3, "fd01::3", "10.0.1.254", "fd01::fe");
    gateway(&gw, "fd02::5");
    let mut cmd = topology();
    cmd.extend(vifs(&[
        (&vm1, "ls1", format!("{} 10.0.1.1 fd01::1", vm1.mac), true),
        (&vm3, "ls1", format!("{} 10.0.1.3 fd01::3", vm3.mac), true),
        (&gw, "ls2", gw.mac.clone(), false),
    ]));
    cmd.extend(routes_via_gateway());
    ovn.nbctl(&cmd);

    for (dst, hop, family) in [
        ("192.0.2.1", "10.0.2.5", "ip4"),
        ("2001:db8::1", "fd02::5", "ip6"),
    ] {
        // hv1 asks and learns.
        let _ = vm1.ping(dst, 1, &["-W", "1"]);
        wait_until(
            &format!("MAC_Binding {hop}"),
            Duration::from_secs(10),
            || mac_binding(ovn, "lrp2", hop).is_some(),
        );
        let (ok, out) = vm1.ping(dst, 1, &[]);
        assert!(ok, "vm1 -> {dst} once resolved:\n{out}");
        // hv2 takes it from SB.
        let flow = format!(
            "inport={} eth.src={} eth.dst={LRP1_MAC} {family}.src={} {family}.dst={dst} ip.ttl=64 udp.dst=53",
            lp(&vm3),
            vm3.mac,
            if family == "ip4" { "10.0.1.3" } else { "fd01::3" },
        );
        wait_until(
            &format!("hv2 to know {hop} from SB"),
            Duration::from_secs(10),
            || {
                hv2.cli(&["trace", &flow])
                    .contains(&format!("is at {}", gw.mac))
            },
        );
        let (ok, out) = vm3.ping(dst, 1, &[]);
        assert!(ok, "vm3 on hv2 -> {dst}: its first echo:\n{out}");
    }
    assert_eq!(hv2.metric(ARP_SENT), 0);
    assert_eq!(hv2.metric(NS_SENT), 0);
    assert_eq!(hv2.metric(UNRESOLVED), 0);
    assert!(hv1.metric(ARP_SENT) >= 1 && hv1.metric(NS_SENT) >= 1);
    let (ok, out) = tcp_100k_to(&vm3, &gw, "2001:db8::1");
    assert!(ok, "TCP from hv2 through the next hop:\n{out}");
}

/// OVN's `lr_in_ip_input` for the router's own addresses: a TCP connect
/// to any of them is refused at once (`tcp_reset`), a UDP datagram gets
/// ICMP port unreachable (the kernel reports it as "connection refused"
/// on a connected socket), over IPv4 and IPv6, on the port facing the
/// sender and across the router; `/metrics` counts each kind and trace
/// says what the router answers.
#[test]
fn the_router_refuses_tcp_and_udp_to_its_addresses() {
    require_root();
    let vm1 = vm("u1", "00:00:00:00:01:01", "10.0.1.1", 1500);
    configure(&vm1, "fd01::1", "10.0.1.254", "fd01::fe");
    let ovn = one_chassis(
        Databases::Ours,
        &[&vm1],
        &[(&vm1, "ls1", format!("{} 10.0.1.1 fd01::1", vm1.mac), true)],
    );
    let answers = |kind: &str| {
        ovn.metric(&format!(
            "switchyard_router_answers_total{{kind=\"{kind}\"}}"
        ))
    };
    let (resets, unreachables) = (answers("tcp_reset"), answers("port_unreachable"));
    let script = "import socket,sys,time\n\
        def fam(a): return socket.AF_INET6 if ':' in a else socket.AF_INET\n\
        def tcp(a):\n  s=socket.socket(fam(a)); s.settimeout(5); t=time.time()\n  try:\n    s.connect((a,22)); return 'connected'\n  except ConnectionRefusedError: return 'refused' if time.time()-t < 1 else 'refused late'\n  except OSError as e: return 'error-%s' % e\n\
        def udp(a):\n  s=socket.socket(fam(a),socket.SOCK_DGRAM); s.settimeout(5); s.connect((a,53)); s.send(b'x')\n  try:\n    s.recv(100); return 'answered'\n  except ConnectionRefusedError: return 'refused'\n  except OSError as e: return 'error-%s' % e\n\
        for a in sys.argv[1:]: print(a, tcp(a), udp(a))\n";
    let addrs = ["10.0.1.254", "10.0.2.254", "fd01::fe", "fd02::fe"];
    let mut args = vec!["/usr/bin/python3", "-c", script];
    args.extend(addrs);
    let (ok, out) = vm1.try_exec(&args);
    assert!(ok, "{out}");
    for a in addrs {
        assert!(
            out.lines().any(|l| l == format!("{a} refused refused")),
            "{a}: not refused at once (TCP, UDP):\n{out}"
        );
    }
    assert!(answers("tcp_reset") >= resets + 4, "{}", ovn.metrics());
    assert!(answers("port_unreachable") >= unreachables + 4);
    let flow = format!(
        "inport={} eth.src={} eth.dst={LRP1_MAC} ip4.src=10.0.1.1 ip4.dst=10.0.2.254 tcp.dst=22 tcp.flags=0x02",
        lp(&vm1),
        vm1.mac
    );
    let trace = ovn.cli(&["trace", &flow]);
    assert!(
        trace.contains("tcp_reset (RST|ACK) from 10.0.2.254 out of \"lrp1\""),
        "{trace}"
    );

    // options:always_learn_from_arp_request=false reaches the chassis
    // through SB (northd-lite's copy in Datapath_Binding external_ids; the
    // chassis then learns only bound IPs from requests, see the unit test).
    ovn.nbctl(&[
        "--wait=hv",
        "set",
        "Logical_Router",
        "lr0",
        "options:always_learn_from_arp_request=false",
    ]);
    let ids = ovn.sbctl(&[
        "get",
        "Datapath_Binding",
        &lr0_datapath(&ovn),
        "external_ids",
    ]);
    assert!(
        ids.contains("always_learn_from_arp_request=\"false\""),
        "{ids}"
    );
    assert_eq!(
        ovn.metric(
            "switchyard_controller_unenforced{kind=\"nb_always_learn_from_arp_request_false\"}"
        ),
        0
    );
}

/// A router port's link-local address (the EUI-64 of its MAC, as OVN's
/// `extract_lrp_networks` adds it): a VM whose IPv6 default route names
/// it, as router advertisements would, resolves it (the switch answers
/// its solicitation), pings it, and is routed through it.
#[test]
fn a_vm_routes_through_the_router_ports_link_local_address() {
    require_root();
    let lla = "fe80::200:ff:fe00:ff01";
    let vm1 = vm("l1", "00:00:00:00:01:01", "10.0.1.1", 1500);
    let vm2 = vm("l2", "00:00:00:00:02:01", "10.0.2.1", 1500);
    configure(&vm1, "fd01::1", "10.0.1.254", lla);
    configure(&vm2, "fd02::1", "10.0.2.254", "fd02::fe");
    let ovn = one_chassis(
        Databases::Ours,
        &[&vm1, &vm2],
        &[
            (&vm1, "ls1", format!("{} 10.0.1.1 fd01::1", vm1.mac), true),
            (&vm2, "ls2", format!("{} 10.0.2.1 fd02::1", vm2.mac), true),
        ],
    );
    let answered = || ovn.metric("switchyard_router_answers_total{kind=\"echo_reply\"}");
    let before = answered();
    let (ok, out) = vm1.ping(&format!("{lla}%eth0"), 2, &[]);
    assert!(ok, "ping {lla}:\n{out}");
    assert!(answered() >= before + 2);
    let (_, neigh) = vm1.try_exec(&["ip", "-6", "neigh", "show", lla]);
    assert!(neigh.contains(LRP1_MAC), "{neigh}");
    let (ok, out) = vm1.ping("fd02::1", 2, &[]);
    assert!(ok, "fd02::1 via {lla}:\n{out}");
    let (ok, out) = tcp_100k_to(&vm2, &vm1, "fd01::1");
    assert!(ok, "TCP back to fd01::1:\n{out}");
}

/// The NB commands (after `--`) for a localnet port on VLAN `tag` of
/// physical network `network` on `switch`.
fn localnet(switch: &str, network: &str, tag: &str) -> Vec<String> {
    let name = format!("{switch}-ln");
    [
        "--",
        "lsp-add",
        switch,
        &name,
        "",
        tag,
        "--",
        "lsp-set-type",
        &name,
        "localnet",
        "--",
        "lsp-set-addresses",
        &name,
        "unknown",
        "--",
        "lsp-set-options",
        &name,
        &format!("network_name={network}"),
    ]
    .map(String::from)
    .to_vec()
}

/// Both switches on VLANs of one physical network (as Neutron's VLAN tenant
/// networks): a routed packet to the other chassis leaves the sender's
/// localnet port, not a tunnel, with the sender's chassis MAC as its source
/// (OVN's ovn-chassis-mac-mappings), never the router port's MAC that every
/// chassis shares; the receiver takes it in with the router port's MAC.
#[test]
fn routed_traffic_on_vlan_networks_leaves_with_the_chassis_mac() {
    require_root();
    let tag = format!("{}v", std::process::id() % 10_000);
    let phys1 = UnderlayNet::new(&format!("syp1{tag}"), "192.168.251.1").unwrap();
    let phys2 = UnderlayNet::new(&format!("syp2{tag}"), "192.168.252.1").unwrap();
    let f = two_chassis_on('v', 89, &[&phys1, &phys2]);
    let (ovn, hv1, hv2) = (&f.ovn, &f.hv1, &f.hv2);
    let vm1 = f.vm_on(hv1, 1, "00:00:00:00:01:01", "10.0.1.1");
    let vm2 = f.vm_on(hv2, 2, "00:00:00:00:02:01", "10.0.2.1");
    configure(&vm1, "fd01::1", "10.0.1.254", "fd01::fe");
    configure(&vm2, "fd02::1", "10.0.2.254", "fd02::fe");
    let mut cmd = topology();
    cmd.extend(localnet("ls1", "physnet1", "100"));
    cmd.extend(localnet("ls2", "physnet2", "200"));
    cmd.extend(vifs(&[
        (&vm1, "ls1", format!("{} 10.0.1.1 fd01::1", vm1.mac), true),
        (&vm2, "ls2", format!("{} 10.0.2.1 fd02::1", vm2.mac), true),
    ]));
    ovn.nbctl(&cmd);
    let macs = ovn.sbctl(&["--bare", "--columns=other_config", "list", "Chassis"]);
    assert!(
        macs.contains(
            "ovn-chassis-mac-mappings=physnet1:0e:00:00:00:01:01,physnet2:0e:00:00:00:02:01"
        ) && macs.contains("physnet1:0e:00:00:00:01:02,physnet2:0e:00:00:00:02:02"),
        "{macs}"
    );

    let trace = hv1.cli(&[
        "trace",
        &format!(
            "inport={} eth.src={} eth.dst={LRP1_MAC} ip4.src=10.0.1.1 ip4.dst=10.0.2.1 icmp4.type=8",
            lp(&vm1),
            vm1.mac
        ),
    ]);
    assert!(
        trace.contains("out of localnet port \"ls2-ln\"")
            && trace.contains("eth.src = 0e:00:00:00:02:01"),
        "{trace}"
    );
    // Every ICMP frame on the physical networks: VLAN, MACs, addresses.
    let sniff = Ready::start(Command::new("/usr/bin/python3").args(["-c", &format!(
        "from scapy.all import sniff, Dot1Q, IP, ICMP\n\
         ps=sniff(iface=['{}', '{}'], lfilter=lambda p: ICMP in p, count=4, timeout=10, started_callback=lambda: print('ready', flush=True))\n\
         for p in ps:\n  v=p[Dot1Q].vlan if Dot1Q in p else 0\n\
         \x20 print('icmp', v, p.src, p.dst, p[IP].src, p[IP].dst, p[ICMP].type, p[IP].ttl)\n", phys1.name, phys2.name)]));
    let (ok, out) = vm1.ping("10.0.2.1", 2, &[]);
    let (text, errors) = sniff.output();
    assert!(
        ok,
        "no routed ping over the VLAN networks:\n{out}\n{text}{errors}"
    );
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("icmp")).collect();
    let request = format!(
        "icmp 200 0e:00:00:00:02:01 {} 10.0.1.1 10.0.2.1 8 63",
        vm2.mac
    );
    let reply = format!(
        "icmp 100 0e:00:00:00:01:02 {} 10.0.2.1 10.0.1.1 0 63",
        vm1.mac
    );
    assert!(
        lines.contains(&request.as_str()),
        "{request} not in {lines:?}{errors}"
    );
    assert!(lines.contains(&reply.as_str()), "{reply} not in {lines:?}");
    assert!(
        !text.contains(LRP1_MAC) && !text.contains(LRP2_MAC),
        "a router port MAC on the physical network: {text}"
    );
    // The receiver gives such a frame the router port's MAC back.
    let trace = hv2.cli(&[
        "trace",
        &format!(
            "inport=ls2-ln vlan.vid=200 eth.src=0e:00:00:00:02:01 eth.dst={} ip4.src=10.0.1.1 ip4.dst=10.0.2.1 icmp4.type=8",
            vm2.mac
        ),
    ]);
    assert!(
        trace.contains(&format!("eth.src = {LRP2_MAC}, the router port's"))
            && trace.contains("to local port"),
        "{trace}"
    );
    // IPv6 and TCP, both ways.
    for (from, to) in [(&vm2, "10.0.1.1"), (&vm1, "fd02::1"), (&vm2, "fd01::1")] {
        let (ok, out) = from.ping(to, 2, &[]);
        assert!(ok, "{} -> {to}:\n{out}", from.ns);
    }
}
