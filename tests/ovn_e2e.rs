//! End to end through the control plane: the real `ovn-nbctl` writes NB,
//! northd-lite compiles SB, the node's chassis controller claims the VMs'
//! ports and programs the workers. `--wait=hv` returning means packets
//! flow: each check pings right after it, with no sleep or retry. Restarts
//! of northd-lite and of the controller keep a running ping flowing and SB
//! unchanged. Run against `switchyard db` and against a real ovsdb-server.

mod common;

use common::ovn::{vif, Databases, Ovn};
use common::{require_root, vm, wait_until};

fn scenario(databases: Databases) {
    require_root();
    let vm1 = vm("a", "00:00:00:00:00:01", "10.0.0.1", 1500);
    let vm2 = vm("b", "00:00:00:00:00:02", "10.0.0.2", 1500);
    let ovn = Ovn::start(databases);
    let (lp1, lp2) = (format!("{}-lp", vm1.ns), format!("{}-lp", vm2.ns));
    // The VMs are plugged before the CMS creates their ports, as a compute
    // agent does; the iface-id names the logical port.
    ovn.cli(&["port-add", &vm1.port, "--iface-id", &lp1]);
    ovn.cli(&["port-add", &vm2.port, "--iface-id", &lp2]);

    let a1 = format!("{} {}", vm1.mac, vm1.ip);
    let a2 = format!("{} {}", vm2.mac, vm2.ip);
    let mut cmd: Vec<String> = ["--wait=hv", "ls-add", "net1"].map(String::from).to_vec();
    cmd.extend(vif("net1", &lp1, &a1));
    cmd.extend(vif("net1", &lp2, &a2));
    ovn.nbctl(&cmd);
    let (ok, out) = vm1.ping("10.0.0.2", 3, &[]);
    assert!(ok, "no ping right after --wait=hv returned:\n{out}");
    let (ok, out) = vm2.ping("10.0.0.1", 1, &[]);
    assert!(ok, "{out}");
    // The claims reached NB through northd-lite, and /metrics shows them.
    assert_eq!(ovn.nbctl(&["lsp-get-up", &lp1]).trim(), "up");
    let m = ovn.metrics();
    assert!(m.contains("switchyard_controller_claimed_ports 2"), "{m}");
    assert!(m.contains("switchyard_controller_sb_connected 1"), "{m}");

    // Restart the controller, then northd-lite, each under a running ping
    // (150 pings, 20 ms apart); at most a few may be lost.
    let before = ovn.sb_dump();
    let vm1_rx = format!("switchyard_port_rx_packets_total{{port=\"{}\"}}", vm1.port);
    let ping_during = |ovn: &mut Ovn, restart: &mut dyn FnMut(&mut Ovn)| {
        let rx = ovn.metric(&vm1_rx);
        let ns = vm1.ns.clone();
        let pinger = std::thread::spawn(move || {
            let out = std::process::Command::new("ip")
                .args([
                    "netns", "exec", &ns, "ping", "-c", "150", "-i", "0.02", "-W", "1", "10.0.0.2",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        // Restart once the ping is running: its echoes reach the switch.
        wait_until(
            "the ping to start",
            std::time::Duration::from_secs(10),
            || ovn.metric(&vm1_rx) >= rx + 5,
        );
        restart(ovn);
        let text = pinger.join().unwrap();
        let received: u32 = text
            .split(", ")
            .find_map(|p| p.strip_suffix(" received"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        (received, text)
    };
    let mut ovn = ovn;
    let (received, text) = ping_during(&mut ovn, &mut |ovn| {
        ovn.cli(&["restart-controller"]);
    });
    assert!(
        received >= 145,
        "the controller restart lost pings:\n{text}"
    );
    let (received, text) = ping_during(&mut ovn, &mut |ovn| ovn.start_northd());
    assert!(
        received >= 145,
        "the northd-lite restart lost pings:\n{text}"
    );
    // The new northd-lite is active once this returns.
    ovn.nbctl(&["--wait=sb", "sync"]);
    let after = ovn.sb_dump();
    // That `sync` moved nb_cfg on (SB_Global, and the chassis' ack in
    // Chassis_Private); every other row, and Chassis_Private's identity,
    // must be as before.
    let strip = |d: &str| -> String {
        d.split("\n\n")
            .map(|t| {
                if t.starts_with("SB_Global table") {
                    String::new()
                } else if t.starts_with("Chassis_Private table") {
                    t.lines()
                        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                        .collect::<Vec<_>>()
                        .join("\n")
                } else {
                    t.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    assert_eq!(strip(&after), strip(&before), "restarts changed SB");

    // Deleting a port stops its traffic as soon as --wait=hv returns: the
    // switch drops what vm1 sends to vm2's MAC (or, once vm1 asks again,
    // its ARP request finds no port), and says so.
    ovn.nbctl(&["--wait=hv", "lsp-del", &lp2]);
    let unreachable = || {
        ovn.metric("switchyard_drops_total{reason=\"unknown_unicast\"}")
            + ovn.metric("switchyard_drops_total{reason=\"no_local_port\"}")
    };
    let before = unreachable();
    let (ok, out) = vm1.ping("10.0.0.2", 1, &[]);
    assert!(!ok, "vm2 still reachable after lsp-del:\n{out}");
    assert!(
        unreachable() > before,
        "vm1's ping was not dropped by the switch"
    );
    // And /metrics says whose traffic it was: vm1's port, logical port and
    // switch.
    let by_port = format!(
        "switchyard_port_drops_total{{lport=\"{lp1}\",port=\"{}\",switch=\"net1\"}}",
        vm1.port
    );
    assert!(ovn.metric(&by_port) >= 1, "{by_port}:\n{}", ovn.metrics());
    let show = ovn.cli(&["show"]);
    assert!(!show.contains(&format!("port {lp2} ")), "{show}");
}

#[test]
fn ovn_nbctl_to_packets_with_switchyard_db() {
    scenario(Databases::Ours);
}

#[test]
fn ovn_nbctl_to_packets_with_ovsdb_server() {
    scenario(Databases::OvsdbServer);
}

/// `switchyard_controller_sb_connected` follows the SB session within
/// about a second, with or without data changes: 0 while the databases
/// are down, 1 again once they are back, and the node then acknowledges
/// `--wait=hv` as before.
#[test]
fn sb_connected_follows_the_session() {
    require_root();
    let mut ovn = Ovn::start(Databases::Ours);
    const UP: &str = "switchyard_controller_sb_connected";
    assert_eq!(ovn.metric(UP), 1);
    ovn.stop_databases();
    let down = std::time::Instant::now();
    wait_until(
        "sb_connected to drop",
        std::time::Duration::from_secs(5),
        || ovn.metric(UP) == 0,
    );
    let took = down.elapsed();
    assert!(
        took < std::time::Duration::from_secs(3),
        "sb_connected took {took:?} to follow the lost session"
    );
    assert!(
        ovn.cli(&["show"]).contains("disconnected"),
        "{}",
        ovn.cli(&["show"])
    );
    ovn.restart_databases();
    wait_until(
        "sb_connected to come back",
        std::time::Duration::from_secs(20),
        || ovn.metric(UP) == 1,
    );
    ovn.nbctl(&["--wait=hv", "ls-add", "after"]);
}

/// NB intent that northd-lite does not realise is reported, not silently
/// stored (issue 15): a QoS rule and a load balancer written with the real
/// `ovn-nbctl` appear in SB_Global's external_ids, in the node's `show` and
/// on its /metrics, and the report clears when they are deleted. With NB
/// and SB in `switchyard db` and in a real ovsdb-server.
fn unrealised_nb_intent_is_reported_until_deleted(databases: Databases) {
    require_root();
    let ovn = Ovn::start(databases);
    let sbctl = |args: &[&str]| {
        let db = format!("--db={}", ovn.sb);
        let mut full = vec!["ovn-sbctl", "--timeout=30", db.as_str()];
        full.extend_from_slice(args);
        let (ok, out) = common::try_sh(&full);
        assert!(ok, "{full:?}: {out}");
        out
    };
    const QOS: &str = "switchyard_controller_unenforced{kind=\"nb_qos\"}";
    const LB: &str = "switchyard_controller_unenforced{kind=\"nb_load_balancer\"}";
    let timeout = std::time::Duration::from_secs(20);
    ovn.nbctl(&["ls-add", "net1"]);
    ovn.nbctl(&["qos-add", "net1", "to-lport", "100", "ip4", "rate=1000"]);
    ovn.nbctl(&[
        "lb-add",
        "lb1",
        "10.0.0.100:80",
        "10.0.0.1:80,10.0.0.2:80",
        "tcp",
    ]);
    ovn.nbctl(&["ls-lb-add", "net1", "lb1"]);
    wait_until(
        "the node to report the QoS rule and the load balancer",
        timeout,
        || ovn.metric(QOS) == 1 && ovn.metric(LB) == 1,
    );
    let show = ovn.cli(&["show"]);
    assert!(show.contains("1 nb_load_balancer, 1 nb_qos"), "{show}");
    let ids = sbctl(&["get", "SB_Global", ".", "external_ids"]);
    assert!(
        ids.contains("switchyard-unrealised-load_balancer=\"1\"")
            && ids.contains("switchyard-unrealised-qos=\"1\""),
        "{ids}"
    );

    ovn.nbctl(&["qos-del", "net1"]);
    ovn.nbctl(&["lb-del", "lb1"]);
    wait_until("the report to clear", timeout, || {
        let m = ovn.metrics();
        !m.contains("kind=\"nb_") && ovn.cli(&["show"]).contains("not enforced: nothing")
    });
    let ids = sbctl(&["get", "SB_Global", ".", "external_ids"]);
    assert!(!ids.contains("switchyard-unrealised-"), "{ids}");
}

#[test]
fn unrealised_nb_intent_is_reported_with_switchyard_db() {
    unrealised_nb_intent_is_reported_until_deleted(Databases::Ours);
}

#[test]
fn unrealised_nb_intent_is_reported_with_ovsdb_server() {
    unrealised_nb_intent_is_reported_until_deleted(Databases::OvsdbServer);
}
