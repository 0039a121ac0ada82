//! The node on DPDK, end to end through the control plane (feature `dpdk`):
//! `switchyard node --dpdk` programmed by its chassis controller from the
//! real `ovn-nbctl --wait=hv`; a vhost-user VM — `dpdk-testpmd` with a
//! `net_virtio_user` device serving its socket (`server=1`), in
//! `icmpecho` forwarding mode — plugged as `dpdkvhostuserclient`, as
//! Nova/os-vif plug one; two namespace VMs on the same node, one on an
//! AF_PACKET port, one on AF_XDP (`--type dpdk --devargs
//! net_af_xdp...,iface=VETH`), with two workers. Checked: the namespace VM pings the vhost-user VM; the VM restarts
//! and traffic resumes without touching the switch (its vhost client
//! reconnects); `port-del` of the vhost-user port under a running ping
//! between the namespace VMs loses nothing, and the port can be added
//! again.
//!
//! Needs root, `dpdk-testpmd` (Debian `dpdk-dev`) and hugepages for the VM
//! (`echo 512 > /proc/sys/vm/nr_hugepages`); the switch runs with
//! `--dpdk-no-huge`. Run: `cargo test -p switchyard --features dpdk --test
//! dpdk_node` (under `flock /tmp/switchyard-tests.lock` on a shared box).
#![cfg(feature = "dpdk")]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::ovn::{vif, Databases, Ovn};
use common::{require_root, vm, wait_until};

/// The vhost-user VM: testpmd serving `sock`, answering ARP and ICMP echo
/// requests from MAC `mac`.
struct TestpmdVm(Child);

impl TestpmdVm {
    fn start(sock: &Path, mac: &str) -> TestpmdVm {
        // As QEMU does with a server socket: a stale file from a VM that
        // was killed is removed before binding.
        let _ = std::fs::remove_file(sock);
        // Its log outlives the test's directory, for a failure's post-mortem.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::env::temp_dir().join("switchyard-dpdk-node-testpmd.log"))
            .unwrap();
        let child = Command::new("dpdk-testpmd")
            .args([
                "-l0,1",
                "--in-memory",
                "--single-file-segments",
                "--no-pci",
                "--log-level=warning",
                &format!(
                    "--vdev=net_virtio_user0,path={},server=1,queues=1,mac={mac}",
                    sock.display()
                ),
                "--",
                "--forward-mode=icmpecho",
                "--auto-start",
                // Non-interactive testpmd runs until killed only with a
                // stats period (otherwise it waits for a key on stdin).
                "--stats-period=1",
                "--total-num-mbufs=2048",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dpdk-testpmd (apt-get install dpdk-dev)");
        TestpmdVm(child)
    }
}

impl Drop for TestpmdVm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many of a `ping` run's echoes came back.
fn received(ping_output: &str) -> u32 {
    ping_output
        .split(", ")
        .find_map(|p| p.strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn vhost_user_vm_on_a_dpdk_node_through_ovn() {
    require_root();
    let hugepages = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap_or_default();
    assert!(
        hugepages.trim().parse::<u32>().unwrap_or(0) > 0,
        "the testpmd VM needs hugepages: echo 512 > /proc/sys/vm/nr_hugepages"
    );
    let ovn = Ovn::start_with_node_args(
        Databases::Ours,
        // Two workers: the AF_PACKET ports go to different ones, so both
        // transmit to the single-queue VM (sharing its tx queue).
        &[
            "--dpdk",
            "--dpdk-no-huge",
            "--dpdk-mem",
            "256",
            "--workers",
            "2",
        ],
    );
    let show = ovn.cli(&["show"]);
    assert!(show.starts_with("datapath: DPDK, EAL"), "{show}");

    let vm1 = vm("a", "00:00:00:00:00:01", "10.0.0.1", 1500);
    let vm3 = vm("c", "00:00:00:00:00:03", "10.0.0.3", 1500);
    let (mac2, ip2) = ("00:00:00:00:00:02", "10.0.0.2");
    let sock = ovn.dir.join("vm2.sock");
    let mut vm2 = TestpmdVm::start(&sock, mac2);
    let (lp1, lp2, lp3) = ("lp1", "lp2", "lp3");
    ovn.cli(&["port-add", &vm1.port, "--iface-id", lp1]);
    // vm3 over AF_XDP, through DPDK's net_af_xdp on its veth (one queue:
    // the two workers share its tx queue).
    let xdp = "net_af_xdp_vm3";
    ovn.cli(&[
        "port-add",
        &vm3.port,
        "--iface-id",
        lp3,
        "--type",
        "dpdk",
        "--devargs",
        &format!("{xdp},iface={}", vm3.port),
    ]);
    let vhost_add = [
        "port-add",
        "vm2",
        "--iface-id",
        lp2,
        "--type",
        "dpdkvhostuserclient",
        "--vhost-server-path",
        sock.to_str().unwrap(),
    ];
    let out = ovn.cli(&vhost_add);
    assert!(out.contains("vm2 attached"), "{out}");

    let mut cmd: Vec<String> = ["--wait=hv", "ls-add", "net1"].map(String::from).to_vec();
    cmd.extend(vif("net1", lp1, &format!("{} {}", vm1.mac, vm1.ip)));
    cmd.extend(vif("net1", lp2, &format!("{mac2} {ip2}")));
    cmd.extend(vif("net1", lp3, &format!("{} {}", vm3.mac, vm3.ip)));
    ovn.nbctl(&cmd);

    let link_up = |up: bool| {
        let want = format!(
            "dpdkvhostuserclient net_vhost_vm2 link {}",
            if up { "up" } else { "down" }
        );
        move |ovn: &Ovn| ovn.cli(&["show"]).contains(&want)
    };
    let answers = |vm: &common::Vm, ip: &str| vm.ping(ip, 1, &[]).0;
    wait_until(
        "the vhost-user link to come up",
        Duration::from_secs(30),
        || link_up(true)(&ovn),
    );
    // The VM's queues start forwarding a moment after the link comes up.
    wait_until(
        "vm2 (testpmd) to answer pings",
        Duration::from_secs(30),
        || answers(&vm1, ip2),
    );
    let (ok, out) = vm1.ping(ip2, 3, &[]);
    assert!(ok, "{out}");
    let (ok, out) = vm3.ping(ip2, 3, &[]);
    assert!(ok, "vm3's worker cannot reach the VM:\n{out}");
    let (ok, out) = vm1.ping(&vm3.ip, 1, &[]);
    assert!(ok, "{out}");
    // The PMD statistics and the rx queue map, as pmd-stats-show and
    // pmd-rxq-show give them.
    let show = ovn.cli(&["show"]);
    assert!(show.contains("pmd 0 core any: rx "), "{show}");
    assert!(show.contains("pmd 1 core any: rx "), "{show}");
    assert!(show.contains("cycles/packet"), "{show}");
    assert!(show.contains("pmd-rxq-assign cycles"), "{show}");
    assert!(
        show.contains("    rx queue net_vhost_vm2 0: pmd usage "),
        "{show}"
    );
    let pmd_of = |port: &str| {
        let mut pmd = "";
        for l in show.lines() {
            if l.starts_with("pmd ") {
                pmd = l.split(':').next().unwrap();
            } else if l.starts_with(&format!("    rx queue {port} 0: pmd usage ")) {
                return pmd.to_string();
            }
        }
        panic!("no pmd polls {port}:\n{show}");
    };
    assert_ne!(pmd_of(&vm1.port), pmd_of(xdp), "{show}");

    // The VM restarts: its socket goes away and comes back; the switch's
    // vhost client reconnects by itself.
    drop(vm2);
    wait_until(
        "the vhost-user link to go down",
        Duration::from_secs(30),
        || link_up(false)(&ovn),
    );
    assert!(!answers(&vm1, ip2), "a stopped VM answered");
    vm2 = TestpmdVm::start(&sock, mac2);
    wait_until(
        "the restarted VM to answer pings",
        Duration::from_secs(60),
        || answers(&vm1, ip2),
    );

    // port-del of the vhost-user port while vm1 pings vm3: vm1-vm3 loses
    // nothing, vm2 is gone.
    let ns = vm1.ns.clone();
    let target = vm3.ip.clone();
    let pinger = std::thread::spawn(move || {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &ns, "ping", "-c", "100", "-i", "0.02", "-W", "1", &target,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    let vm1_rx = format!("switchyard_port_rx_packets_total{{port=\"{}\"}}", vm1.port);
    let rx = ovn.metric(&vm1_rx);
    wait_until("the ping to run", Duration::from_secs(10), || {
        ovn.metric(&vm1_rx) >= rx + 5
    });
    let out = ovn.cli(&["port-del", "vm2"]);
    assert!(out.contains("vm2 detached"), "{out}");
    let text = pinger.join().unwrap();
    assert!(
        received(&text) >= 99,
        "port-del lost vm1-vm3 pings:\n{text}"
    );
    assert!(!answers(&vm1, ip2), "vm2 answered after port-del");
    let show = ovn.cli(&["show"]);
    assert!(!show.contains("net_vhost_vm2"), "{show}");

    // Detached cleanly: the same port can be added again.
    ovn.cli(&vhost_add);
    wait_until(
        "vm2 to answer again after port-add",
        Duration::from_secs(60),
        || answers(&vm1, ip2),
    );
    drop(vm2);
}

/// Across Geneve: a namespace VM behind a kernel-uplink chassis pings the
/// vhost-user VM behind a DPDK chassis whose uplink is a DPDK port
/// (`net_af_packet` on its underlay interface), all through
/// `ovn-nbctl --wait=hv`.
#[test]
fn vhost_user_vm_across_geneve_behind_a_dpdk_uplink() {
    use common::ovn::{Chassis, UnderlayNet};
    require_root();
    let tag = std::process::id() % 10_000;
    let net = UnderlayNet::new(&format!("sydu{tag}"), "192.168.241.1").unwrap();
    let ovn = Ovn::start_with(Databases::Ours, &net.ip, false);
    let (n1, n2) = (format!("d{tag}a"), format!("d{tag}b"));
    let hv1 = Chassis::start(
        &ovn,
        &net,
        &n1,
        "192.168.241.11",
        "192.168.241.21",
        "geneve",
        &[],
    );
    let hv2 = Chassis::start_dpdk(
        &ovn,
        &net,
        &n2,
        "192.168.241.12",
        "192.168.241.22",
        "geneve",
    );
    let vm1 = common::Vm::new_on(
        Some(&hv1.ns),
        &format!("w{tag}a"),
        &format!("w{tag}a"),
        "00:00:00:00:00:01",
        "10.0.0.1",
        1400,
    )
    .unwrap();
    hv1.cli(&["port-add", &vm1.port, "--iface-id", "lp1"]);
    let (mac2, ip2) = ("00:00:00:00:00:02", "10.0.0.2");
    let sock = ovn.dir.join("vm2.sock");
    let _vm2 = TestpmdVm::start(&sock, mac2);
    hv2.cli(&[
        "port-add",
        "vm2",
        "--iface-id",
        "lp2",
        "--type",
        "dpdkvhostuserclient",
        "--vhost-server-path",
        sock.to_str().unwrap(),
    ]);
    let mut cmd: Vec<String> = ["--wait=hv", "ls-add", "net1"].map(String::from).to_vec();
    cmd.extend(vif("net1", "lp1", &format!("{} {}", vm1.mac, vm1.ip)));
    cmd.extend(vif("net1", "lp2", &format!("{mac2} {ip2}")));
    ovn.nbctl(&cmd);
    wait_until(
        "vm2 to answer across Geneve",
        Duration::from_secs(30),
        || vm1.ping(ip2, 1, &[]).0,
    );
    let (ok, out) = vm1.ping(ip2, 5, &["-i", "0.05"]);
    assert!(ok, "{out}");
    // The tunnel's tables name the DPDK uplink (shown once SB gave them).
    let show = hv2.cli(&["show"]);
    assert!(
        show.contains(&format!(
            "uplink net_af_packet_{n2}: tunnel endpoint 192.168.241.22"
        )),
        "{show}"
    );
}
