//! End to end: two network-namespace VMs joined by veth to a switchyard node
//! over AF_PACKET ports. Proves forwarding, the ARP responder, port security
//! with counted drop reasons on /metrics, `switchyard trace`, and that
//! malformed and hostile frames are dropped with reasons while forwarding
//! goes on.

mod common;

use common::{config_for, require_root, vm, Node};
use dataplane::flow::FlowDesc;

fn frame(desc: &str) -> Vec<u8> {
    desc.parse::<FlowDesc>().unwrap().to_frame().unwrap()
}

const VM1_MAC: &str = "00:00:00:00:00:01";
const VM2_MAC: &str = "00:00:00:00:00:02";

#[test]
fn ping_arp_responder_and_port_security() {
    require_root();
    let vm1 = vm("a", VM1_MAC, "10.0.0.1", 1500);
    let vm2 = vm("b", VM2_MAC, "10.0.0.2", 1500);
    let node = Node::start(&config_for(&[&vm1, &vm2], None));

    // Ping both ways, and TCP (its checksums are left partial by the
    // sender's kernel and must be completed by the switch).
    let (ok, out) = vm1.ping("10.0.0.2", 3, &[]);
    assert!(ok, "vm1 -> vm2 ping failed:\n{out}");
    let (ok, out) = vm2.ping("10.0.0.1", 3, &[]);
    assert!(ok, "vm2 -> vm1 ping failed:\n{out}");
    let server = std::process::Command::new("ip")
        .args(["netns", "exec", &vm2.ns, "/usr/bin/python3", "-c",
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('10.0.0.2',5001))\ns.listen(1)\nc,_=s.accept()\nd=b''\nwhile len(d)<100000:\n  x=c.recv(65536)\n  if not x: break\n  d+=x\nc.sendall(b'got %d' % len(d))\nc.close()\n"])
        .spawn()
        .unwrap();
    let (ok, out) = vm1.try_exec(&["/usr/bin/python3", "-c",
        "import socket,time\nfor i in range(150):\n  try:\n    s=socket.create_connection(('10.0.0.2',5001),timeout=10); break\n  except OSError: time.sleep(0.1)\ns.sendall(b'x'*100000)\nprint(s.recv(100).decode())\n"]);
    let _ = server.wait_with_output();
    assert!(
        ok && out.contains("got 100000"),
        "TCP across the switch failed:\n{out}"
    );

    // The switch answers ARP itself: with vm2's interface down nothing but
    // the switch can answer, yet vm1 resolves 10.0.0.2 to vm2's MAC.
    vm2.exec(&["ip", "link", "set", "eth0", "down"]).unwrap();
    vm1.exec(&["ip", "neigh", "flush", "dev", "eth0"]).unwrap();
    // The ping itself goes unanswered (vm2 is down); what matters is that
    // vm1 resolved the address meanwhile.
    let (ok, _) = vm1.ping("10.0.0.2", 1, &[]);
    assert!(!ok, "vm2 answered a ping with its interface down");
    let (_, neigh) = vm1.try_exec(&["ip", "neigh", "show", "10.0.0.2", "dev", "eth0"]);
    assert!(
        neigh.contains(&format!("lladdr {VM2_MAC}")),
        "vm1 did not learn vm2's MAC from the switch: {neigh:?}"
    );
    vm2.exec(&["ip", "link", "set", "eth0", "up"]).unwrap();

    // Spoofed IP source and spoofed MAC source from vm1: dropped, counted.
    let spoof_ip = format!(
        "eth.src={VM1_MAC} eth.dst={VM2_MAC} ip4.src=10.0.0.99 ip4.dst=10.0.0.2 udp.dst=53"
    );
    let spoof_mac = format!(
        "eth.src=00:00:00:00:00:66 eth.dst={VM2_MAC} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53"
    );
    let before_ip = node.drops("port_security_ip");
    let before_mac = node.drops("port_security_mac");
    vm1.send_raw(&[frame(&spoof_ip), frame(&spoof_ip), frame(&spoof_mac)])
        .unwrap();
    node.wait_for("port security drops", |n| {
        n.drops("port_security_ip") == before_ip + 2
            && n.drops("port_security_mac") == before_mac + 1
    });

    // `switchyard trace` explains the same drop, from the live node.
    let (ok, out) = node.cli(&["trace", &format!("inport=vm1 {spoof_ip}")]);
    assert!(ok, "trace failed: {out}");
    assert!(
        out.contains("port_security_ip") && out.contains("ip4.src 10.0.0.99 not allowed"),
        "{out}"
    );
    let (ok, out) = node.cli(&["trace", &format!("inport=vm1 eth.src={VM1_MAC} eth.dst={VM2_MAC} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53")]);
    assert!(ok && out.contains("verdict: output to \"vm2\""), "{out}");
    let (ok, out) = node.cli(&["show"]);
    assert!(
        ok && out.contains("port vm1") && out.contains(&vm1.port),
        "{out}"
    );
}

#[test]
fn hostile_frames_are_dropped_with_reasons_and_forwarding_goes_on() {
    require_root();
    // Jumbo-capable veths, but the switch enforces MTU 1500 on the ports.
    let vm1 = vm("c", VM1_MAC, "10.0.0.1", 9000);
    let vm2 = vm("d", VM2_MAC, "10.0.0.2", 9000);
    let node = Node::start(&config_for(&[&vm1, &vm2], Some(1500)));
    let (ok, out) = vm1.ping("10.0.0.2", 2, &[]);
    assert!(ok, "{out}");

    let good = frame(&format!("eth.src={VM1_MAC} eth.dst={VM2_MAC} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=9 payload=20"));
    let tcp = frame(&format!(
        "eth.src={VM1_MAC} eth.dst={VM2_MAC} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 tcp.dst=80"
    ));
    let l3 = 14;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // A truncated IPv4 header.
    cases.push(("ipv4_truncated", good[..l3 + 12].to_vec()));
    // IHL below 5.
    let mut f = good.clone();
    f[l3] = 0x43;
    cases.push(("ipv4_bad_ihl", f));
    // Total length beyond the frame.
    let mut f = good.clone();
    f[l3 + 2..l3 + 4].copy_from_slice(&1400u16.to_be_bytes());
    cases.push(("ipv4_bad_total_length", f));
    // Version 5.
    let mut f = good.clone();
    f[l3] = 0x55;
    cases.push(("ipv4_bad_version", f));
    // An IP option whose length runs past the header (IHL 6, option len 9).
    let mut f = good[..l3 + 20].to_vec();
    f.extend_from_slice(&[0x07, 9, 4, 0]);
    f.extend_from_slice(&good[l3 + 20..]);
    f[l3] = 0x46;
    let tl = (f.len() - l3) as u16;
    f[l3 + 2..l3 + 4].copy_from_slice(&tl.to_be_bytes());
    cases.push(("ipv4_bad_options", f));
    // RFC 1858: a first fragment too short for the TCP header, and a TCP
    // fragment at offset 1 (overlapping the header).
    let mut f = tcp[..l3 + 20 + 8].to_vec();
    f[l3 + 2..l3 + 4].copy_from_slice(&28u16.to_be_bytes());
    f[l3 + 6] = 0x20; // MF
    cases.push(("ipv4_tiny_fragment", f));
    let mut f = tcp.clone();
    f[l3 + 6..l3 + 8].copy_from_slice(&1u16.to_be_bytes());
    cases.push(("ipv4_fragment_overlap", f));
    // A UDP length larger than the IP payload.
    let mut f = good.clone();
    f[l3 + 24..l3 + 26].copy_from_slice(&500u16.to_be_bytes());
    cases.push(("udp_truncated", f));
    // Stacked VLAN tags (QinQ) and a single tag on a VM port.
    let mut f = good[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14]);
    f.extend_from_slice(&good[12..]);
    cases.push(("stacked_vlan", f));
    let mut f = good[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    f.extend_from_slice(&good[12..]);
    cases.push(("vlan_tagged", f));
    // A truncated ARP.
    let arp = frame(&format!("arp eth.src={VM1_MAC} eth.dst=ff:ff:ff:ff:ff:ff arp.sha={VM1_MAC} arp.spa=10.0.0.1 arp.tpa=10.0.0.2"));
    cases.push(("arp_truncated", arp[..l3 + 20].to_vec()));
    // A jumbo frame on a 1500-byte port.
    let mut f = good.clone();
    f.resize(4000, 0);
    cases.push(("oversized", f));

    for (reason, f) in &cases {
        let before = node.drops(reason);
        vm1.send_raw(std::slice::from_ref(f)).unwrap();
        node.wait_for(reason, |n| n.drops(reason) == before + 1);
    }

    // Random bytes: whatever they parse as, each is dropped and counted.
    let total = |n: &Node| -> u64 {
        n.metrics()
            .lines()
            .filter(|l| l.starts_with("switchyard_drops_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            (0..14 + (i * 29) % 1386)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        })
        .collect();
    let before = total(&node);
    vm1.send_raw(&random).unwrap();
    node.wait_for("random frames to be dropped", |n| {
        total(n) == before + random.len() as u64
    });

    // The worker measured the cycles it spent on vm1's rx queue (OVS's
    // pmd-rxq-show), on /metrics per port and queue. It times one poll
    // round in eight, so a few bursts may all fall in unmeasured rounds:
    // vm1 sends one more (dropped) frame per look until one is measured.
    node.wait_for("rx queue cycles on /metrics", |n| {
        vm1.send_raw(&random[..1]).unwrap();
        n.metrics().lines().any(|l| {
            l.starts_with("switchyard_pmd_rxq_cycles_total{")
                && l.contains("queue=\"0\"")
                && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0)
        })
    });

    // Back to a 1500-byte MTU in the VMs, so that big pings fragment.
    for vm in [&vm1, &vm2] {
        vm.exec(&["ip", "link", "set", "eth0", "mtu", "1500"])
            .unwrap();
    }
    // Valid fragments and valid IP options are forwarded: a fragmented ping
    // and ping with the record-route option both work, as does plain ping.
    let (ok, out) = vm1.ping("10.0.0.2", 2, &["-s", "3000"]);
    assert!(ok, "fragmented ping failed after hostile frames:\n{out}");
    let (ok, out) = vm1.ping("10.0.0.2", 2, &["-R"]);
    assert!(ok, "ping with IP options failed:\n{out}");
    let (ok, out) = vm2.ping("10.0.0.1", 2, &[]);
    assert!(ok, "{out}");
}
