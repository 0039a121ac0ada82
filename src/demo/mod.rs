//! `switchyard demo`: a working multi-node virtual network on this machine,
//! built the way a cloud builds one. It starts the OVN databases
//! (`switchyard db`) and ovn-northd-lite, and two compute nodes, each in its
//! own network namespace with an uplink on a shared underlay bridge, whose
//! chassis controllers program their dataplanes; plugs network-namespace
//! VMs into both (AF_PACKET ports with their iface-ids); writes two tenants'
//! logical switches and ports into the northbound database over OVSDB,
//! waiting for the chassis to realise them as `ovn-nbctl --wait=hv` does;
//! then shows VMs talking across a Geneve tunnel (over an IPv4 underlay, or
//! IPv6 with `--ipv6-underlay`), the switch answering ARP,
//! tenant isolation, a spoofed packet dropped and explained by `trace`, a
//! security group enforced across the chassis ([`security_group`]), and
//! the counters on `/metrics`. Needs root.

mod routing;
mod security_group;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dataplane::flow::FlowDesc;
use ovsdb::client::txn::{refs, set};
use ovsdb::client::{Backoff, Idl, TableRequest, Transaction};
use serde_json::json;
use switchyard::netns::{Bridge, Host, Vm};

use crate::ctl;

const NB: &str = "tcp:127.0.0.1:6641";
const SB: &str = "tcp:127.0.0.1:6642";
/// The underlay: the bridge's address, where the nodes reach SB.
const UNDERLAY_IP: &str = "192.168.200.1";

/// The demo's processes, stopped on drop.
struct Demo {
    children: Vec<Child>,
    failures: usize,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Demo {
    fn check(&mut self, what: &str, ok: bool, detail: &str) {
        if ok {
            println!("  [ok]   {what}");
        } else {
            self.failures += 1;
            println!("  [FAIL] {what}\n{detail}");
        }
    }

    fn spawn(&mut self, what: &str, args: &[&str], log: &Path) -> Result<()> {
        self.spawn_in(None, what, args, log)
    }

    /// Starts `switchyard ARGS`, inside network namespace `ns` if given.
    fn spawn_in(&mut self, ns: Option<&str>, what: &str, args: &[&str], log: &Path) -> Result<()> {
        let log = std::fs::File::create(log)?;
        let exe = std::env::current_exe()?;
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        self.children.push(child);
        Ok(())
    }
}

/// A compute node of the demo: its namespace (with the uplink), the
/// management socket and the /metrics address.
struct Node {
    host: Host,
    name: &'static str,
    ctl: std::path::PathBuf,
    metrics: String,
}

/// Writes the tenants' switches and ports into NB in one transaction and
/// waits until every chassis forwards with them (`--wait=hv`); returns how
/// long that took.
async fn build_topology(tenants: &[(&str, Vec<(&str, &Vm)>)]) -> Result<Duration> {
    let nb = Idl::start(
        vec![NB.parse()?],
        "OVN_Northbound",
        vec![TableRequest::all("NB_Global")],
        Backoff::default(),
    )?;
    let deadline = Duration::from_secs(10);
    let connect_by = Instant::now() + deadline;
    while !nb.is_connected() {
        if Instant::now() > connect_by {
            bail!("cannot reach the northbound database at {NB}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    let mut txn = Transaction::new("OVN_Northbound");
    if nb.read(|r| r.table("NB_Global").next().is_none()) {
        txn.insert("NB_Global", []);
    }
    for (switch, vms) in tenants {
        let ports: Vec<_> = vms
            .iter()
            .map(|(name, vm)| {
                let addr = format!("{} {}", vm.mac, vm.ip);
                txn.insert(
                    "Logical_Switch_Port",
                    [
                        ("name", json!(name)),
                        ("addresses", set([addr.clone()])),
                        ("port_security", set([addr])),
                    ],
                )
            })
            .collect();
        txn.insert(
            "Logical_Switch",
            [("name", json!(switch)), ("ports", refs(&ports))],
        );
    }
    // As ovn-nbctl --wait=hv: bump nb_cfg in the same transaction, then
    // wait for hv_cfg to reach it.
    txn.mutate("NB_Global", vec![], [("nb_cfg", "+=", json!(1))]);
    let sel = txn.select("NB_Global", vec![], Some(&["nb_cfg"]));
    let reply = nb.transact(&txn).await?;
    let want = reply
        .rows(sel)
        .first()
        .and_then(|r| r["nb_cfg"].as_i64())
        .ok_or_else(|| anyhow!("NB_Global.nb_cfg missing from the reply"))?;
    nb.wait_until(deadline, |r| {
        r.table("NB_Global")
            .next()
            .is_some_and(|(_, g)| g.integer("hv_cfg") >= want)
    })
    .await
    .map_err(|_| anyhow!("the chassis did not realise the topology within {deadline:?}"))?;
    Ok(t0.elapsed())
}

/// Runs `ovn-nbctl --db=NB ARGS`, printing it as the operator types it.
pub(super) fn nbctl(args: &[&str]) -> Result<String> {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains([' ', '&', '|', '!']) {
                format!("'{a}'")
            } else {
                a.to_string()
            }
        })
        .collect();
    println!("  $ ovn-nbctl {}", shown.join(" "));
    let out = Command::new("ovn-nbctl")
        .arg(format!("--db={NB}"))
        .args(args)
        .output()
        .context("running ovn-nbctl (apt-get install ovn-common)")?;
    if !out.status.success() {
        bail!("ovn-nbctl: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn metrics_text(addr: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Drops counted under `reason` on a node's /metrics (0 if unreadable).
pub(super) fn drops(addr: &str, reason: &str) -> u64 {
    let prefix = format!("switchyard_drops_total{{reason=\"{reason}\"}} ");
    metrics_text(addr)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn wait_ready(node: &Node) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(node.ctl.exists() && TcpStream::connect(&node.metrics).is_ok()) {
        if Instant::now() > deadline {
            bail!("node {} did not come up", node.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs the demo; with `keep`, leaves the network up until Ctrl-C.
pub fn run(keep: bool, ipv6_underlay: bool) -> Result<()> {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the demo creates network namespaces: run it as root (sudo)");
    }
    for port in [6641, 6642] {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!("127.0.0.1:{port} is in use: is another switchyard (or OVN) running?");
        }
    }
    println!("switchyard demo: an OVN-style control plane and two compute nodes on this machine\n");
    let dir = std::env::temp_dir().join("switchyard-demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let underlay = Bridge::new("sy-demo-ul", UNDERLAY_IP)?;
    let mut demo = Demo {
        children: Vec::new(),
        failures: 0,
    };
    let data = dir.join("db");
    demo.spawn(
        "the databases",
        &[
            "db",
            "--data-dir",
            data.to_str().unwrap(),
            "--nb-remote",
            "ptcp:6641:127.0.0.1",
            "--sb-remote",
            "ptcp:6642:127.0.0.1",
            "--sb-remote",
            &format!("ptcp:6642:{UNDERLAY_IP}"),
        ],
        &dir.join("db.log"),
    )?;
    demo.spawn("ovn-northd-lite", &["northd"], &dir.join("northd.log"))?;
    // The tunnel endpoints: addresses only the nodes' dataplanes own.
    let endpoint = |i: u8| {
        if ipv6_underlay {
            format!("fd00:200::2{i}")
        } else {
            format!("192.168.200.2{i}")
        }
    };
    let mut nodes = Vec::new();
    for (i, name) in [(1, "demo-hv1"), (2, "demo-hv2")] {
        let host_ip = format!("192.168.200.1{i}");
        let host = Host::new(&format!("sy-demo-hv{i}"), &underlay, "ul", Some(&host_ip))?;
        let node = Node {
            name,
            ctl: dir.join(format!("hv{i}.ctl")),
            metrics: format!("{host_ip}:9464"),
            host,
        };
        demo.spawn_in(
            Some(&node.host.ns),
            name,
            &[
                "node",
                "--chassis",
                name,
                "--sb",
                &format!("tcp:{UNDERLAY_IP}:6642"),
                "--encap-type",
                "geneve",
                "--encap-ip",
                &endpoint(i),
                "--uplink",
                "ul",
                "--metrics",
                &node.metrics,
                "--ctl",
                node.ctl.to_str().unwrap(),
            ],
            &dir.join(format!("hv{i}.log")),
        )?;
        nodes.push(node);
    }
    for n in &nodes {
        wait_ready(n)?;
    }
    println!("Started (logs in {}):", dir.display());
    println!("  switchyard db        OVN_Northbound on {NB}, OVN_Southbound on {SB} and {UNDERLAY_IP}:6642");
    println!("  switchyard northd    ovn-northd-lite, NB -> SB");
    println!(
        "  switchyard node x2   chassis demo-hv1 and demo-hv2, each in a namespace with an uplink"
    );
    println!(
        "                       on the underlay bridge sy-demo-ul; Geneve endpoints {} and {}",
        endpoint(1),
        endpoint(2)
    );

    let (hv1, hv2) = (&nodes[0], &nodes[1]);
    let vm1 = Vm::new_on(
        Some(&hv1.host.ns),
        "sy-demo-vm1",
        "sy-demo-vm1",
        "00:00:00:00:00:01",
        "10.0.0.1",
        1500,
    )?;
    let vm2 = Vm::new_on(
        Some(&hv2.host.ns),
        "sy-demo-vm2",
        "sy-demo-vm2",
        "00:00:00:00:00:02",
        "10.0.0.2",
        1500,
    )?;
    let vm3 = Vm::new_on(
        Some(&hv1.host.ns),
        "sy-demo-vm3",
        "sy-demo-vm3",
        "00:00:00:00:00:03",
        "10.0.0.3",
        1500,
    )?;
    // On tenant-a's second subnet, which the routing part adds.
    let vm4 = Vm::new_on(
        Some(&hv2.host.ns),
        "sy-demo-vm4",
        "sy-demo-vm4",
        "00:00:00:00:00:04",
        "10.0.1.4",
        1500,
    )?;
    println!("\nPlugging the VMs (network namespaces) into the nodes:");
    for (vm, node) in [(&vm1, hv1), (&vm2, hv2), (&vm3, hv1), (&vm4, hv2)] {
        let text = ctl::request(
            &node.ctl,
            &ctl::Request::PortAdd {
                interface: vm.port.clone(),
                iface_id: vm.ns.clone(),
                mtu: None,
                port_type: crate::backend::PortType::System,
            },
        )?;
        print!(
            "  $ switchyard port-add {} --iface-id {} --ctl {}\n    {}: {text}",
            vm.port,
            vm.ns,
            node.ctl.display(),
            node.name
        );
    }
    let tenants = [
        (
            "tenant-a",
            vec![(vm1.ns.as_str(), &vm1), (vm2.ns.as_str(), &vm2)],
        ),
        ("tenant-b", vec![(vm3.ns.as_str(), &vm3)]),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let took = rt.block_on(build_topology(&tenants))?;
    println!(
        "\nWrote tenant-a (vm1 on demo-hv1, vm2 on demo-hv2) and tenant-b (vm3 on demo-hv1) into NB \
         with port security, and waited for both chassis to forward with them (as --wait=hv): {:.1} ms",
        took.as_secs_f64() * 1e3
    );
    for n in &nodes {
        println!(
            "\n{}'s view ($ switchyard show --ctl {}):",
            n.name,
            n.ctl.display()
        );
        print!("{}", ctl::request(&n.ctl, &ctl::Request::Show)?);
    }
    println!("\nChecks:");
    let ctl_path = hv1.ctl.clone();
    let metrics = hv1.metrics.clone();

    let (ok, out) = vm1.ping("10.0.0.2", 3, &[]);
    demo.check(
        "vm1 (10.0.0.1, demo-hv1) pings vm2 (10.0.0.2, demo-hv2) on tenant-a, over Geneve",
        ok,
        &out,
    );
    let (ok, out) = vm2.ping("10.0.0.1", 3, &[]);
    demo.check("vm2 pings vm1", ok, &out);
    let (ok, out) = vm1.ping("10.0.0.3", 1, &[]);
    demo.check("vm1 cannot reach vm3: it is on tenant-b", !ok, &out);

    let arp = "inport=sy-demo-vm1 arp eth.src=00:00:00:00:00:01 eth.dst=ff:ff:ff:ff:ff:ff arp.sha=00:00:00:00:00:01 arp.spa=10.0.0.1 arp.tpa=10.0.0.2";
    let arp_frame = arp.parse::<FlowDesc>()?.to_frame()?;
    let trace = ctl::request(
        &ctl_path,
        &ctl::Request::Trace {
            inport: "sy-demo-vm1".into(),
            frame_hex: ctl::encode_hex(&arp_frame),
        },
    )?;
    demo.check(
        "the switch answers vm1's ARP for 10.0.0.2 itself",
        trace.contains("arp_responder"),
        &trace,
    );

    let spoof = "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.99 ip4.dst=10.0.0.2 udp.dst=53";
    let spoof_frame = spoof.parse::<FlowDesc>()?.to_frame()?;
    let before = drops(&metrics, "port_security_ip");
    vm1.send_raw(std::slice::from_ref(&spoof_frame))?;
    let deadline = Instant::now() + Duration::from_secs(3);
    let counted = loop {
        if drops(&metrics, "port_security_ip") == before + 1 {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    demo.check(
        "a spoofed packet from vm1 (ip4.src 10.0.0.99) is dropped and counted",
        counted,
        "",
    );
    let trace = ctl::request(
        &ctl_path,
        &ctl::Request::Trace {
            inport: "sy-demo-vm1".into(),
            frame_hex: ctl::encode_hex(&spoof_frame),
        },
    )?;
    println!(
        "\n$ switchyard trace --ctl {} 'inport=sy-demo-vm1 {spoof}'",
        ctl_path.display()
    );
    print!("{trace}");

    security_group::run(&mut demo, &vm1, &vm2, hv2)?;
    routing::run(&mut demo, &vm1, &vm4, hv1)?;

    for n in &nodes {
        println!(
            "\nCounters of {} (curl http://{}/metrics), non-zero drops:",
            n.name, n.metrics
        );
        for l in metrics_text(&n.metrics)?.lines() {
            if l.starts_with("switchyard_drops_total") && !l.ends_with(" 0") {
                println!("  {l}");
            }
        }
    }
    println!(
        "  (no_binding: what a VM sent before its logical port was bound, such as its first \
         ARP or IPv6 router solicitation; acl_drop: the pings the security group stopped)"
    );
    if !keep {
        println!("\nRun `switchyard demo --keep` to leave the network up and look inside it.");
    }
    if keep {
        print_look_inside(&ctl_path, &metrics);
        println!("\nThe network stays up until Ctrl-C.");
        let (tx, rx) = std::sync::mpsc::channel();
        ctrlc_wait(tx)?;
        let _ = rx.recv();
    }
    let failures = demo.failures;
    drop(demo);
    drop((vm1, vm2, vm3, vm4));
    drop(nodes);
    drop(underlay);
    let _ = std::fs::remove_dir_all(&dir);
    if failures > 0 {
        bail!("{failures} demo check(s) failed");
    }
    println!("\nAll checks passed.");
    Ok(())
}

/// What to look at in the running network (`--keep`).
fn print_look_inside(ctl_path: &Path, metrics: &str) {
    println!("\nLook inside:");
    println!("  ovn-nbctl --db={NB} show");
    println!("  ovn-sbctl --db={SB} show");
    println!(
        "  ovn-nbctl --db={NB} --wait=hv lsp-del sy-demo-vm2   # and vm1 can no longer reach it"
    );
    println!("  switchyard show --ctl {}", ctl_path.display());
    println!("  switchyard trace --ctl {} 'inport=sy-demo-vm1 eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 tcp.dst=22'", ctl_path.display());
    println!("  ip netns exec sy-demo-vm1 ping 10.0.0.2");
    println!("  curl -s http://{metrics}/metrics | grep switchyard_");
    println!("  ovn-nbctl --db={NB} acl-list pg_web                # vm2's security group");
    println!("  switchyard conntrack --ctl {}", ctl_path.display());
    println!(
        "  tcpdump -ni sy-demo-ul udp port 6081             # the Geneve tunnel between the nodes"
    );
}

/// Sends on `tx` when SIGINT or SIGTERM arrives.
fn ctrlc_wait(tx: std::sync::mpsc::Sender<()>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        });
        let _ = tx.send(());
    });
    Ok(())
}
