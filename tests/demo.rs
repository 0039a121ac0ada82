//! `switchyard demo` end to end, as the README's first command runs it:
//! two nodes, VMs in namespaces, the security group across chassis, the
//! router between two subnets; it
//! exits 0 only if every one of its checks passed.

mod common;

use std::process::Command;

use common::{bin, require_root};

#[test]
fn the_demo_passes_its_checks() {
    require_root();
    let out = Command::new(bin())
        .arg("demo")
        .output()
        .expect("run switchyard demo");
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("All checks passed."),
        "{text}\n{errors}"
    );
    for shown in [
        "vm1 (10.0.0.1, demo-hv1) pings vm2",
        "vm1's TCP 23 is rejected",
        "demo-hv2 tracks the SSH connection",
        "vm1 (10.0.0.1, demo-hv1) pings vm4 (10.0.1.4, demo-hv2) through router-a",
        "a ping with TTL 1 gets time exceeded from 10.0.0.254",
    ] {
        assert!(text.contains(&format!("[ok]   {shown}")), "{text}");
    }
    // Without --keep nothing is left to look at, and it says so.
    assert!(!text.contains("Look inside:"), "{text}");
    assert!(text.contains("switchyard demo --keep"), "{text}");
}
