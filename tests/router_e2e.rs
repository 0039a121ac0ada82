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

mod common;

use std::process::Command;

use common::ovn::{Chassis, Databases, Ovn, UnderlayNet};
use common::{require_root, vm, Ready};
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
        &["ip", "-6", "route", "add", "default", "via", gw6],
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

    let ovn = Ovn::start(Databases::Ours);
    let lp = |v: &Vm| format!("{}-lp", v.ns);
    for v in [&vm1, &vm2, &gw, &gw2] {
        ovn.cli(&["port-add", &v.port, "--iface-id", &lp(v)]);
    }
    let mut cmd = topology();
    cmd.extend(port(
        "ls1",
        &lp(&vm1),
        &format!("{} 10.0.1.1 fd01::1", vm1.mac),
        true,
    ));
    cmd.extend(port(
        "ls2",
        &lp(&vm2),
        &format!("{} 10.0.2.1 fd02::1", vm2.mac),
        true,
    ));
    // The next-hop host receives for a whole prefix: no port security.
    cmd.extend(port(
        "ls2",
        &lp(&gw),
        &format!("{} 10.0.2.5 fd02::5", gw.mac),
        false,
    ));
    ovn.nbctl(&cmd);

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
    let mut server = Command::new("ip")
        .args(["netns", "exec", &to.ns, "/usr/bin/python3", "-c",
            &format!("import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{}',5001))\ns.listen(1)\nc,_=s.accept()\nd=b''\nwhile len(d)<100000:\n  x=c.recv(65536)\n  if not x: break\n  d+=x\nc.sendall(b'got %d' % len(d))\nc.close()\n", to.ip)])
        .spawn()
        .unwrap();
    let (ok, out) = from.try_exec(&["/usr/bin/python3", "-c",
        &format!("import socket,time\nfor i in range(100):\n  try:\n    s=socket.create_connection(('{}',5001),timeout=10); break\n  except OSError: time.sleep(0.1)\ns.sendall(b'x'*100000)\nprint(s.recv(100).decode())\n", to.ip)]);
    if !ok {
        // The server waits for a connection that never came.
        let _ = server.kill();
    }
    let _ = server.wait();
    (ok && out.contains("got 100000"), out)
}

#[test]
fn routing_happens_on_the_senders_chassis() {
    require_root();
    let tag = std::process::id() % 10_000;
    let net = UnderlayNet::new(&format!("syrt{tag}"), "192.168.87.1").unwrap();
    let ovn = Ovn::start_with(Databases::Ours, &net.ip, false);
    let chassis = |n: u8| {
        let name = format!("c{tag}r{n}");
        let (host, tunnel) = (format!("192.168.87.1{n}"), format!("192.168.87.2{n}"));
        Chassis::start(&ovn, &net, &name, &host, &tunnel, "geneve", &[])
    };
    let (hv1, hv2) = (chassis(1), chassis(2));
    let vm_on = |c: &Chassis, n: u8, mac: &str, ip: &str| {
        let name = format!("v{tag}r{n}");
        let v = Vm::new_on(Some(&c.ns), &name, &name, mac, ip, 1500).expect("a VM");
        c.cli(&["port-add", &v.port, "--iface-id", &format!("{name}-lp")]);
        v
    };
    let vm1 = vm_on(&hv1, 1, "00:00:00:00:01:01", "10.0.1.1");
    let vm2 = vm_on(&hv2, 2, "00:00:00:00:02:01", "10.0.2.1");
    configure(&vm1, "fd01::1", "10.0.1.254", "fd01::fe");
    configure(&vm2, "fd02::1", "10.0.2.254", "fd02::fe");
    let mut cmd = topology();
    let a1 = format!("{} 10.0.1.1 fd01::1", vm1.mac);
    let a2 = format!("{} 10.0.2.1 fd02::1", vm2.mac);
    cmd.extend(port("ls1", &format!("{}-lp", vm1.ns), &a1, true));
    cmd.extend(port("ls2", &format!("{}-lp", vm2.ns), &a2, true));
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
    let ovn = Ovn::start(Databases::RealOvn);
    let lp = |v: &Vm| format!("{}-lp", v.ns);
    for v in [&vm1, &vm2] {
        ovn.cli(&["port-add", &v.port, "--iface-id", &lp(v)]);
    }
    let mut cmd = topology();
    cmd.extend(port(
        "ls1",
        &lp(&vm1),
        &format!("{} 10.0.1.1 fd01::1", vm1.mac),
        true,
    ));
    cmd.extend(port(
        "ls2",
        &lp(&vm2),
        &format!("{} 10.0.2.1 fd02::1", vm2.mac),
        true,
    ));
    ovn.nbctl(&cmd);
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
