//! The demo's distributed router: tenant-a gets a second subnet (switch
//! tenant-a-db, 10.0.1.0/24, with vm4 on demo-hv2) and a logical router
//! between its two switches, written with the real `ovn-nbctl` (`lr-add`,
//! `lrp-add`, a switch port of type "router" on each switch). Shown
//! working: vm1 on demo-hv1 pings vm4 on demo-hv2 across the subnets (routed
//! on vm1's own chassis and tunnelled straight to demo-hv2 in
//! tenant-a-db's datapath, as OVN's distributed routing does), the TTL
//! comes out one lower, a TTL-1 ping gets time exceeded from the router
//! port facing vm1, and `switchyard trace` walks switch, router, switch.

use anyhow::Result;
use dataplane::flow::FlowDesc;
use switchyard::netns::Vm;

use super::{nbctl, Demo, Node};
use crate::ctl;

/// router-a's port on tenant-a (vm1's gateway) and on tenant-a-db.
const LRP_A: (&str, &str) = ("00:00:00:00:ff:01", "10.0.0.254");
const LRP_DB: (&str, &str) = ("00:00:00:00:ff:02", "10.0.1.254");

/// A switch port of type "router" on `switch`, peering router port `lrp`.
fn router_port<'a>(switch: &'a str, name: &'a str, options: &'a str) -> [&'a str; 16] {
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
        options,
        "--",
        "lsp-set-addresses",
        name,
        "router",
    ]
}

/// Routes tenant-a's two subnets through router-a and checks vm1 -> vm4.
pub(super) fn run(demo: &mut Demo, vm1: &Vm, vm4: &Vm, hv1: &Node) -> Result<()> {
    println!(
        "\nA second subnet for tenant-a (tenant-a-db, 10.0.1.0/24, vm4 on demo-hv2) and a router between them:"
    );
    let vm4_addr = format!("{} {}", vm4.mac, vm4.ip);
    let a = format!("{}/24", LRP_A.1);
    let db = format!("{}/24", LRP_DB.1);
    let mut cmd = vec![
        "--wait=hv",
        "ls-add",
        "tenant-a-db",
        "--",
        "lsp-add",
        "tenant-a-db",
        &vm4.ns,
        "--",
        "lsp-set-addresses",
        &vm4.ns,
        &vm4_addr,
        "--",
        "lsp-set-port-security",
        &vm4.ns,
        &vm4_addr,
        "--",
        "lr-add",
        "router-a",
        "--",
        "lrp-add",
        "router-a",
        "lrp-a",
        LRP_A.0,
        &a,
        "--",
        "lrp-add",
        "router-a",
        "lrp-a-db",
        LRP_DB.0,
        &db,
    ];
    cmd.extend(router_port(
        "tenant-a",
        "tenant-a-router",
        "router-port=lrp-a",
    ));
    cmd.extend(router_port(
        "tenant-a-db",
        "tenant-a-db-router",
        "router-port=lrp-a-db",
    ));
    nbctl(&cmd)?;
    for (vm, gw) in [(vm1, LRP_A.1), (vm4, LRP_DB.1)] {
        println!("  $ ip netns exec {} ip route add default via {gw}", vm.ns);
        let (ok, out) = vm.try_exec(&["ip", "route", "add", "default", "via", gw]);
        if !ok {
            anyhow::bail!("default route in {}: {out}", vm.ns);
        }
    }
    println!("\nChecks:");
    let (ok, out) = vm1.ping(&vm4.ip, 3, &[]);
    demo.check(
        "vm1 (10.0.0.1, demo-hv1) pings vm4 (10.0.1.4, demo-hv2) through router-a: routed on \
         demo-hv1, tunnelled to demo-hv2 in tenant-a-db's datapath",
        ok,
        &out,
    );
    // Linux sends 64; one router hop on the way back.
    demo.check(
        "vm4's replies arrive with the TTL one lower (ttl=63)",
        out.contains("ttl=63"),
        &out,
    );
    let (ok, out) = vm1.ping(LRP_A.1, 1, &[]);
    demo.check(
        "vm1 pings its gateway, router-a's port 10.0.0.254",
        ok,
        &out,
    );
    let (ok, out) = vm1.ping(&vm4.ip, 1, &["-t", "1"]);
    demo.check(
        "a ping with TTL 1 gets time exceeded from 10.0.0.254, the router port facing vm1",
        !ok && out.contains("From 10.0.0.254") && out.contains("Time to live exceeded"),
        &out,
    );
    let desc = format!(
        "eth.src={} eth.dst={} ip4.src={} ip4.dst={} ip.ttl=64 tcp.dst=5432",
        vm1.mac, LRP_A.0, vm1.ip, vm4.ip
    );
    let frame = desc.parse::<FlowDesc>()?.to_frame()?;
    let trace = ctl::request(
        &hv1.ctl,
        &ctl::Request::Trace {
            inport: vm1.ns.clone(),
            frame_hex: ctl::encode_hex(&frame),
        },
    )?;
    demo.check(
        "trace walks tenant-a -> router-a -> tenant-a-db and out of the tunnel",
        trace.contains("lr_in_ip_routing") && trace.contains("tunnel"),
        &trace,
    );
    println!(
        "\n$ switchyard trace --ctl {} 'inport={} {desc}'",
        hv1.ctl.display(),
        vm1.ns
    );
    print!("{trace}");
    Ok(())
}
