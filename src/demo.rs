//! `switchyard demo`: a working virtual network on this machine, built from
//! an embedded configuration. Network-namespace VMs on two logical switches
//! are plugged into a node by AF_PACKET; the demo shows them talking, the
//! switch answering ARP, tenant isolation, a spoofed packet dropped and
//! explained by `trace`, and the counters on `/metrics`. Needs root.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dataplane::flow::FlowDesc;
use switchyard::netns::Vm;

use crate::ctl;

const METRICS: &str = "127.0.0.1:9464";

struct Demo {
    node: Child,
    failures: usize,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.node.kill();
        let _ = self.node.wait();
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
}

fn config(vms: &[(&str, &Vm)]) -> String {
    let mut s = String::new();
    let mut current = "";
    for (switch, vm) in vms {
        if *switch != current {
            s += &format!("\n[[switch]]\nname = \"{switch}\"\n");
            current = switch;
        }
        s += &format!(
            "[[switch.port]]\nname = \"{}\"\naddresses = [\"{} {}\"]\nport_security = [\"{} {}\"]\ninterface = \"{}\"\n",
            vm.ns, vm.mac, vm.ip, vm.mac, vm.ip, vm.port
        );
    }
    s
}

fn metrics_text() -> Result<String> {
    let mut s = TcpStream::connect(METRICS)?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Drops counted under `reason` on /metrics (0 if unreadable).
fn drops(reason: &str) -> u64 {
    let prefix = format!("switchyard_drops_total{{reason=\"{reason}\"}} ");
    metrics_text()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn wait_ready(ctl: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(ctl.exists() && TcpStream::connect(METRICS).is_ok()) {
        if Instant::now() > deadline {
            bail!("the node did not come up (is {METRICS} in use?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs the demo; with `keep`, leaves the network up until Ctrl-C.
pub fn run(keep: bool) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("the demo creates network namespaces: run it as root (sudo)");
    }
    println!("switchyard demo: VMs in network namespaces on two logical switches\n");
    let vm1 = Vm::new(
        "sy-demo-vm1",
        "sy-demo-vm1",
        "00:00:00:00:00:01",
        "10.0.0.1",
        1500,
    )?;
    let vm2 = Vm::new(
        "sy-demo-vm2",
        "sy-demo-vm2",
        "00:00:00:00:00:02",
        "10.0.0.2",
        1500,
    )?;
    let vm3 = Vm::new(
        "sy-demo-vm3",
        "sy-demo-vm3",
        "00:00:00:00:00:03",
        "10.0.0.3",
        1500,
    )?;
    let topology = [("tenant-a", &vm1), ("tenant-a", &vm2), ("tenant-b", &vm3)];
    let dir = std::env::temp_dir().join("switchyard-demo");
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("switchyard.toml");
    std::fs::write(&cfg, config(&topology))?;
    let ctl_path = dir.join("switchyard.ctl");
    let _ = std::fs::remove_file(&ctl_path);
    let node = Command::new(std::env::current_exe()?)
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--metrics",
            METRICS,
        ])
        .args(["--ctl", ctl_path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the node")?;
    let mut demo = Demo { node, failures: 0 };
    wait_ready(&ctl_path)?;
    println!("Topology (from {}):", cfg.display());
    print!("{}", ctl::request(&ctl_path, &ctl::Request::Show)?);
    println!("\nChecks:");

    let (ok, out) = vm1.ping("10.0.0.2", 3, &[]);
    demo.check("vm1 (10.0.0.1) pings vm2 (10.0.0.2) on tenant-a", ok, &out);
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
    let before = drops("port_security_ip");
    vm1.send_raw(std::slice::from_ref(&spoof_frame))?;
    let deadline = Instant::now() + Duration::from_secs(3);
    let counted = loop {
        if drops("port_security_ip") == before + 1 {
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

    println!("\nCounters (curl http://{METRICS}/metrics), non-zero drops:");
    for l in metrics_text()?.lines() {
        if l.starts_with("switchyard_drops_total") && !l.ends_with(" 0") {
            println!("  {l}");
        }
    }
    println!("\nLook inside:");
    println!("  switchyard show --ctl {}", ctl_path.display());
    println!("  switchyard trace --ctl {} 'inport=sy-demo-vm1 eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 tcp.dst=22'", ctl_path.display());
    println!("  ip netns exec sy-demo-vm1 ping 10.0.0.2");
    println!("  curl -s http://{METRICS}/metrics | grep switchyard_");
    if keep {
        println!("\nThe network stays up until Ctrl-C.");
        let (tx, rx) = std::sync::mpsc::channel();
        ctrlc_wait(tx)?;
        let _ = rx.recv();
    }
    let failures = demo.failures;
    drop(demo);
    let _ = std::fs::remove_dir_all(&dir);
    if failures > 0 {
        bail!("{failures} demo check(s) failed");
    }
    println!("\nAll checks passed.");
    Ok(())
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
