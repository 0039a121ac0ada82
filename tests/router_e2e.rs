//! Distributed logical routing end to end, driven by the real `ovn-nbctl`:
//! two switches joined by one router (`lr-add`, `lrp-add`, switch ports of
//! type "router"), VMs in namespaces with default gateways on the router's
//! ports. Once `--wait=hv` returns, pings cross the router both ways over
//! IPv4 and IPv6, the router answers pings to its addresses, a TTL of 1
//! gets ICMP time exceeded from the router port facing the sender, a static
//! route reaches a prefix behind a VM on the far switch, a destination
//! without a route is dropped and counted as `no_route`, and `switchyard
//! trace` walks switch -> router -> switch.

mod common;

use common::ovn::{Databases, Ovn};
use common::{require_root, vm};
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

#[test]
fn a_router_joins_two_switches_on_one_chassis() {
    require_root();
    let vm1 = vm("r1", "00:00:00:00:01:01", "10.0.1.1", 1500);
    let vm2 = vm("r2", "00:00:00:00:02:01", "10.0.2.1", 1500);
    // A host on ls2 that owns 192.0.2.1: the next hop of a static route.
    let gw = vm("rg", "00:00:00:00:02:05", "10.0.2.5", 1500);
    configure(&vm1, "fd01::1", "10.0.1.254", "fd01::fe");
    configure(&vm2, "fd02::1", "10.0.2.254", "fd02::fe");
    configure(&gw, "fd02::5", "10.0.2.254", "fd02::fe");
    let (ok, out) = gw.try_exec(&["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"]);
    assert!(ok, "{out}");

    let ovn = Ovn::start(Databases::Ours);
    let lp = |v: &Vm| format!("{}-lp", v.ns);
    for v in [&vm1, &vm2, &gw] {
        ovn.cli(&["port-add", &v.port, "--iface-id", &lp(v)]);
    }
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
        "static route 192.0.2.0/24: next hop 10.0.2.5 out of \"lrp2\"",
        "is at 00:00:00:00:02:05",
        "ip.ttl = 63",
    ] {
        assert!(out.contains(want), "{want:?} not in the trace:\n{out}");
    }
}
