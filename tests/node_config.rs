//! Configuration that can never work is refused, not retried forever
//! (issue 16, item 7): tunnel types OVN does not have, zero workers and
//! cores the process may not run on stop `switchyard node` at start with
//! what to change; a second chassis given the first one's tunnel endpoint
//! (both on the default `--encap-ip 127.0.0.1`) writes nothing to SB, says
//! why once, in its log and in `switchyard show`, and the first chassis
//! keeps working. Its log, written to a file, carries no colour codes.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ovn::{Databases, Ovn};
use common::{bin, free_port, require_root, wait_until};

/// Runs `switchyard node ARGS` and expects it to refuse at once: its exit
/// status and what it printed.
fn refused(args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("node")
        .args(args)
        .output()
        .expect("run switchyard node");
    assert!(!out.status.success(), "node {args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn impossible_settings_are_refused_at_start() {
    let e = refused(&["--encap-type", "gre"]);
    assert!(e.contains("\"gre\" is not a tunnel type OVN uses"), "{e}");
    assert!(e.contains("geneve or vxlan"), "{e}");
    let e = refused(&["--encap-type", "geneve,stt"]);
    assert!(e.contains("stt is not supported"), "{e}");
    let e = refused(&["--workers", "0"]);
    assert!(e.contains("at least one worker"), "{e}");
    let e = refused(&["--cores", "4096"]);
    assert!(
        e.contains("core 4096 is not one this process may run on"),
        "{e}"
    );
}

#[test]
fn a_second_chassis_on_the_first_ones_endpoint_says_so_and_writes_nothing() {
    require_root();
    // The first chassis: the default endpoint 127.0.0.1.
    let ovn = Ovn::start(Databases::Ours);
    let sb_before = ovn.sb_dump();
    let ctl = ovn.dir.join("second.ctl");
    let log = ovn.dir.join("second.log");
    let mut second = Command::new(bin())
        .args(["node", "--chassis", "second", "--sb", &ovn.sb])
        .args(["--ctl", ctl.to_str().unwrap()])
        .args(["--metrics", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start the second node");
    let conflict = "already has the geneve endpoint 127.0.0.1";
    wait_until("the second node to report", Duration::from_secs(20), || {
        ctl.exists()
            && common::try_sh(&[bin(), "show", "--ctl", ctl.to_str().unwrap()])
                .1
                .contains(conflict)
    });
    let show = common::try_sh(&[bin(), "show", "--ctl", ctl.to_str().unwrap()]).1;
    assert!(
        show.contains("give chassis \"second\" an address of its own with --encap-ip"),
        "{show}"
    );
    // Several rounds later (the tick runs every second; --wait=hv moves
    // nb_cfg and wakes it too), it has said so once and written nothing.
    ovn.nbctl(&["--wait=hv", "ls-add", "probe"]);
    ovn.nbctl(&["--wait=hv", "ls-del", "probe"]);
    let _ = second.kill();
    let _ = second.wait();
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(
        text.matches(conflict).count(),
        1,
        "the conflict was not said exactly once:\n{text}"
    );
    assert!(!text.contains("constraint violation"), "{text}");
    // A log file gets plain text, not a terminal's colour codes.
    assert!(!text.contains('\x1b'), "ANSI codes in a log file:\n{text}");
    let strip_cfg = |d: &str| -> String {
        d.split("\n\n")
            .filter(|t| !t.starts_with("SB_Global table") && !t.starts_with("Chassis_Private"))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    assert_eq!(
        strip_cfg(&ovn.sb_dump()),
        strip_cfg(&sb_before),
        "the second chassis wrote to SB"
    );
}
