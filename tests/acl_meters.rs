//! ACL log meters, as Neutron's network logging uses them (a `fair` NB
//! meter, `ovn-nbctl --log --meter=…`): northd-lite writes SB's meters
//! as the real ovn-northd 23.03 does, side by side on the same NB; and a
//! node writes a metered ACL's log lines at the meter's rate.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::ovn::{vif, Databases, Ovn};
use common::{require_root, vm, wait_until};

/// A switch, three meters (shared, fair, unused), and ACLs that log
/// through them (one that names a meter but does not log).
fn configure(ovn: &Ovn) {
    let mut cmd: Vec<String> = ["ls-add", "ls1"].map(String::from).to_vec();
    cmd.extend(vif("ls1", "vm1", "00:00:00:00:00:01 10.0.0.1"));
    ovn.nbctl(&cmd);
    ovn.nbctl(&["meter-add", "shared", "drop", "5", "pktps", "10"]);
    ovn.nbctl(&["--fair", "meter-add", "fair", "drop", "1", "pktps"]);
    ovn.nbctl(&["meter-add", "unused", "drop", "100", "kbps"]);
    let acl = |name: &str, meter: &str, prio: &str, m: &str| {
        let name = format!("--name={name}");
        let meter = format!("--meter={meter}");
        ovn.nbctl(&[
            &name, "--log", &meter, "acl-add", "ls1", "to-lport", prio, m, "drop",
        ]);
    };
    acl("a1", "shared", "1000", "tcp");
    acl("a2", "fair", "1001", "udp");
    acl("a3", "fair", "1002", "icmp4");
    acl("a4", "fair", "1003", "sctp");
    // An ACL that names a meter but does not log (as ovn-kubernetes writes
    // them; `ovn-nbctl --meter` alone sets log too): 23.03 copies the fair
    // meter for it all the same.
    let a4 = ovn.nbctl(&["--bare", "--columns=_uuid", "find", "ACL", "name=a4"]);
    ovn.nbctl(&["--wait=sb", "set", "ACL", a4.trim(), "log=false"]);
}

/// SB's meters: name (a fair copy's ACL uuid replaced by the ACL's name)
/// → unit and bands as `ovn-sbctl` prints them.
fn sb_meters(ovn: &Ovn) -> BTreeMap<String, String> {
    let acls = ovn.nbctl(&["--bare", "--columns=_uuid,name", "list", "ACL"]);
    let names: Vec<(String, String)> = acls
        .split("\n\n")
        .filter_map(|r| {
            let mut l = r.split_whitespace();
            Some((l.next()?.to_string(), l.next()?.to_string()))
        })
        .collect();
    let bands = ovn.sbctl(&[
        "--bare",
        "--columns=_uuid,action,rate,burst_size",
        "list",
        "Meter_Band",
    ]);
    let band: BTreeMap<String, String> = bands
        .split("\n\n")
        .filter_map(|r| {
            let mut l = r.split_whitespace();
            let u = l.next()?.to_string();
            Some((u, l.collect::<Vec<_>>().join(" ")))
        })
        .collect();
    let meters = ovn.sbctl(&["--bare", "--columns=name,unit,bands", "list", "Meter"]);
    meters
        .split("\n\n")
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            let l: Vec<&str> = r.lines().map(str::trim).collect();
            let mut name = l[0].to_string();
            for (u, n) in &names {
                name = name.replace(u.as_str(), n);
            }
            let mut b: Vec<String> = l[2]
                .split_whitespace()
                .map(|u| {
                    band.get(u)
                        .cloned()
                        .unwrap_or_else(|| format!("missing {u}"))
                })
                .collect();
            b.sort();
            (name, format!("{} [{}]", l[1], b.join(", ")))
        })
        .collect()
}

#[test]
fn meters_reach_sb_as_ovn_northd_writes_them() {
    let ours = Ovn::start_with(Databases::Ours, "127.0.0.1", false);
    configure(&ours);
    let real = Ovn::start_with(Databases::RealOvn, "127.0.0.1", false);
    configure(&real);
    let want = sb_meters(&real);
    assert!(
        want.contains_key("fair__a2") && want.contains_key("fair__a4"),
        "{want:?}"
    );
    assert_eq!(sb_meters(&ours), want);

    // The ACL's log goes through its own copy of the fair meter: OVN's flow
    // says so; our typed SB ACL row names it.
    let a2 = ours.nbctl(&["--bare", "--columns=_uuid", "find", "ACL", "name=a2"]);
    let dump = ours.sb_dump();
    let acl = dump
        .lines()
        .find(|l| l.contains(" a2 "))
        .unwrap_or_else(|| panic!("no SB ACL a2: {dump}"));
    assert!(acl.contains(&format!(" fair__{} ", a2.trim())), "{acl}");
    let a2 = real.nbctl(&["--bare", "--columns=_uuid", "find", "ACL", "name=a2"]);
    let flows = real.sbctl(&["lflow-list"]);
    assert!(
        flows.contains(&format!("meter=\"fair__{}\"", a2.trim())),
        "{flows}"
    );
    // The meter no logged ACL uses is reported as not realised.
    let report = ours.sbctl(&["get", "SB_Global", ".", "external_ids"]);
    assert!(
        report.contains("switchyard-unrealised-meter=\"1\""),
        "{report}"
    );

    // A band changed in NB changes SB's.
    for ovn in [&ours, &real] {
        ovn.nbctl(&["meter-del", "unused"]);
        ovn.nbctl(&[
            "--wait=sb",
            "meter-add",
            "unused",
            "drop",
            "7",
            "pktps",
            "3",
        ]);
    }
    assert_eq!(sb_meters(&ours), sb_meters(&real));
}

/// The node writes a metered ACL's lines at the meter's rate: 60 dropped
/// datagrams in about 3 s through a fair meter of 1 packet a second give a
/// few lines, and an unmetered ACL beside it writes its own limit.
#[test]
fn a_metered_acl_logs_at_the_meters_rate() {
    require_root();
    let vm1 = vm("m1", "00:00:00:00:00:21", "10.0.0.1", 1500);
    let vm2 = vm("m2", "00:00:00:00:00:22", "10.0.0.2", 1500);
    let ovn = Ovn::start(Databases::Ours);
    let (lp1, lp2) = (format!("{}-lp", vm1.ns), format!("{}-lp", vm2.ns));
    ovn.cli(&["port-add", &vm1.port, "--iface-id", &lp1]);
    ovn.cli(&["port-add", &vm2.port, "--iface-id", &lp2]);
    let mut cmd: Vec<String> = ["ls-add", "net1"].map(String::from).to_vec();
    cmd.extend(vif("net1", &lp1, &format!("{} {}", vm1.mac, vm1.ip)));
    cmd.extend(vif("net1", &lp2, &format!("{} {}", vm2.mac, vm2.ip)));
    ovn.nbctl(&cmd);
    ovn.nbctl(&["--fair", "meter-add", "acl_log_meter", "drop", "1", "pktps"]);
    ovn.nbctl(&[
        "--wait=hv",
        "--name=metered",
        "--log",
        "--meter=acl_log_meter",
        "acl-add",
        "net1",
        "to-lport",
        "1000",
        "udp.dst == 7000",
        "drop",
    ]);
    ovn.nbctl(&[
        "--wait=hv",
        "--name=unmetered",
        "--log",
        "acl-add",
        "net1",
        "to-lport",
        "1000",
        "udp.dst == 7001",
        "drop",
    ]);
    let before = ovn.metric("switchyard_acl_log_suppressed_total");
    // Traffic paced at 20 datagrams a second to each port for 3 s (the
    // sleep shapes the load; nothing waits on it).
    let (ok, out) = vm1.try_exec(&[
        "bash",
        "-c",
        "for i in $(seq 60); do echo x > /dev/udp/10.0.0.2/7000; echo x > /dev/udp/10.0.0.2/7001; sleep 0.05; done",
    ]);
    assert!(ok, "{out}");
    let lines = |name: &str| {
        ovn.node_log()
            .lines()
            .filter(|l| l.contains(&format!("name=\"{name}\", verdict=drop")))
            .count()
    };
    wait_until("both ACLs' lines", Duration::from_secs(10), || {
        lines("metered") >= 1 && lines("unmetered") >= 10
    });
    let (metered, unmetered) = (lines("metered"), lines("unmetered"));
    // The bucket holds one packet and refills one a second: 1 + about 3.
    assert!(
        (2..=6).contains(&metered),
        "{metered} lines through a 1 pktps meter"
    );
    assert!(unmetered > 2 * metered, "{unmetered} unmetered lines");
    assert!(
        ovn.metric("switchyard_acl_log_suppressed_total") - before >= 50,
        "{}",
        ovn.metrics()
    );
}
