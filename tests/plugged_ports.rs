//! Plugged ports are not lost without a word (issue 16, items 4 and 6): an
//! interface deleted and re-created under the same name (a VM restart does
//! this to its tap) is re-attached within a second with no operator
//! action, `show` saying meanwhile that it waits; an MTU change is picked
//! up and shown; and the ports plugged with `port-add` are attached again
//! when the node restarts after a crash. A plug whose logical port does not
//! exist is shown as unbound.

mod common;

use std::time::{Duration, Instant};

use common::ovn::{vif, Databases, Ovn};
use common::{require_root, vm, wait_until, Vm};

/// `show`'s line for local port `interface`.
fn port_line(ovn: &Ovn, interface: &str) -> String {
    let show = ovn.cli(&["show"]);
    show.lines()
        .find(|l| l.starts_with("local port ") && l.contains(&format!(" {interface} ")))
        .unwrap_or_else(|| panic!("no line for {interface} in:\n{show}"))
        .to_string()
}

#[test]
fn ports_come_back_after_an_interface_is_recreated_and_after_a_node_crash() {
    require_root();
    let vm1 = vm("a", "00:00:00:00:00:01", "10.0.0.1", 1500);
    let vm2 = vm("b", "00:00:00:00:00:02", "10.0.0.2", 1500);
    let mut ovn = Ovn::start(Databases::Ours);
    let (lp1, lp2) = (format!("{}-lp", vm1.ns), format!("{}-lp", vm2.ns));
    ovn.cli(&["port-add", &vm1.port, "--iface-id", &lp1]);
    ovn.cli(&["port-add", &vm2.port, "--iface-id", &lp2]);
    // No logical port of that name yet: show says the plug is unbound.
    assert!(port_line(&ovn, &vm1.port).contains(" unbound "));
    let mut cmd: Vec<String> = ["--wait=hv", "ls-add", "net1"].map(String::from).to_vec();
    cmd.extend(vif("net1", &lp1, &format!("{} {}", vm1.mac, vm1.ip)));
    cmd.extend(vif("net1", &lp2, &format!("{} {}", vm2.mac, vm2.ip)));
    ovn.nbctl(&cmd);
    let (ok, out) = vm1.ping("10.0.0.2", 1, &[]);
    assert!(ok, "{out}");
    assert!(port_line(&ovn, &vm2.port).ends_with(" mtu 1500"));
    assert!(!port_line(&ovn, &vm1.port).contains("unbound"));

    // vm2 "restarts": its interface goes and comes back under its name.
    let (ns, port) = (vm2.ns.clone(), vm2.port.clone());
    drop(vm2);
    wait_until(
        "show to say vm2's port waits",
        Duration::from_secs(5),
        || port_line(&ovn, &port).contains("not attached"),
    );
    let recreated = Instant::now();
    let vm2 = Vm::new(&ns, &port, "00:00:00:00:00:02", "10.0.0.2", 1500).unwrap();
    wait_until(
        "vm2's port to be re-attached",
        Duration::from_secs(5),
        || !port_line(&ovn, &port).contains("not attached"),
    );
    let took = recreated.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "re-attaching took {took:?}"
    );
    ovn.nbctl(&["--wait=hv", "sync"]);
    let (ok, out) = vm1.ping("10.0.0.2", 1, &[]);
    assert!(ok, "no forwarding after vm2's interface came back:\n{out}");

    // An MTU change is picked up (the port is opened again for it).
    let (ok, out) = common::try_sh(&["ip", "link", "set", &vm1.port, "mtu", "1400"]);
    assert!(ok, "{out}");
    wait_until("show to give the new MTU", Duration::from_secs(5), || {
        port_line(&ovn, &vm1.port).ends_with(" mtu 1400")
    });

    // A crash and a restart: the plugged ports are attached again.
    ovn.restart_node();
    for p in [&vm1.port, &vm2.port] {
        let line = port_line(&ovn, p);
        assert!(!line.contains("not attached"), "{line}");
    }
    ovn.nbctl(&["--wait=hv", "sync"]);
    let (ok, out) = vm2.ping("10.0.0.1", 1, &[]);
    assert!(ok, "no forwarding after the node restarted:\n{out}");

    // port-del is kept too: after another restart the port stays away.
    ovn.cli(&["port-del", &vm2.port]);
    ovn.restart_node();
    let show = ovn.cli(&["show"]);
    assert!(!show.contains(&format!(" {} ", vm2.port)), "{show}");
}
