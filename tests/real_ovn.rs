//! A switchyard chassis under the real OVN control plane: `ovsdb-server`
//! with OVN 23.03's own NB and SB schemas and the real `ovn-northd`, so
//! SB holds what ovn-northd writes (Port_Bindings, Datapath_Bindings and
//! logical flows), not what northd-lite writes. The chassis claims its VMs'
//! ports and switches between them, `ovn-nbctl --wait=hv` follows its
//! `nb_cfg` acknowledgement, and what ovn-northd carries only as logical
//! flows (an ACL, here) is reported as not enforced on `/metrics` and in
//! `switchyard show` instead of being silently ignored.

mod common;

use std::time::Duration;

use common::ovn::{vif, Databases, Ovn};
use common::{require_root, vm, wait_until};

const ACL_FLOWS: &str = "switchyard_controller_unenforced{kind=\"logical_flow_acl\"}";

#[test]
fn a_chassis_under_real_ovn_northd_switches_and_reports_the_acls_it_does_not_enforce() {
    require_root();
    let vm1 = vm("a", "00:00:00:00:00:01", "10.0.0.1", 1500);
    let vm2 = vm("b", "00:00:00:00:00:02", "10.0.0.2", 1500);
    let ovn = Ovn::start(Databases::RealOvn);
    let (lp1, lp2) = (format!("{}-lp", vm1.ns), format!("{}-lp", vm2.ns));
    ovn.cli(&["port-add", &vm1.port, "--iface-id", &lp1]);
    ovn.cli(&["port-add", &vm2.port, "--iface-id", &lp2]);
    let a1 = format!("{} {}", vm1.mac, vm1.ip);
    let a2 = format!("{} {}", vm2.mac, vm2.ip);
    let mut cmd: Vec<String> = ["--wait=hv", "ls-add", "net1"].map(String::from).to_vec();
    cmd.extend(vif("net1", &lp1, &a1));
    cmd.extend(vif("net1", &lp2, &a2));
    ovn.nbctl(&cmd);
    let (ok, out) = vm1.ping("10.0.0.2", 3, &[]);
    assert!(ok, "no ping under ovn-northd right after --wait=hv:\n{out}");
    // ovn-northd sets `up` from the chassis' claim, as for ovn-controller.
    wait_until(
        "ovn-northd to see the claims",
        Duration::from_secs(10),
        || ovn.nbctl(&["lsp-get-up", &lp1]).trim() == "up",
    );
    // Plain L2 under ovn-northd: its ACL stages only pass packets on.
    let show = ovn.cli(&["show"]);
    assert!(show.contains("not enforced: nothing"), "{show}");
    assert_eq!(ovn.metric(ACL_FLOWS), 0);

    ovn.nbctl(&[
        "--wait=hv",
        "acl-add",
        "net1",
        "to-lport",
        "1000",
        "ip4 && icmp4",
        "drop",
    ]);
    wait_until(
        "the chassis to report ovn-northd's ACL flows",
        Duration::from_secs(10),
        || ovn.metric(ACL_FLOWS) > 0,
    );
    let show = ovn.cli(&["show"]);
    let line = show
        .lines()
        .find(|l| l.starts_with("not enforced: "))
        .unwrap_or_else(|| panic!("no not-enforced line in:\n{show}"));
    assert!(line.contains("logical_flow_acl"), "{line}");
    // Not enforced, and said so: the ping the ACL would drop still passes.
    let (ok, out) = vm1.ping("10.0.0.2", 1, &[]);
    assert!(ok, "{out}");

    ovn.nbctl(&["--wait=hv", "acl-del", "net1"]);
    wait_until(
        "the report to clear after acl-del",
        Duration::from_secs(10),
        || ovn.metric(ACL_FLOWS) == 0,
    );
}
