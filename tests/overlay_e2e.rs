//! Two chassis, each a network namespace running `switchyard node` with an
//! uplink on a shared underlay bridge, VMs behind each, all programmed by
//! `ovn-nbctl` through northd-lite. Ping and TCP cross Geneve and VXLAN,
//! over IPv4 and IPv6 underlays; a broadcast ARP that the responder cannot
//! answer reaches the remote VM; the tunnel frames on the wire are decoded
//! field by field by scapy; and the Linux kernel's own VXLAN device, as a
//! VTEP chassis, exchanges traffic with a VM behind our chassis over IPv4
//! and over IPv6.

mod common;

use std::process::Command;

use common::ovn::{vif, Chassis, Databases, Ovn, UnderlayNet};
use common::{require_root, try_sh, Ready, Vm};
use switchyard::netns::Host;

fn tag() -> String {
    format!("{}", std::process::id() % 10_000)
}

/// A test's underlay, 192.168.<subnet>.0/24 with the databases and
/// northd-lite on .1. Chassis n (1, 2) has host address .1n and tunnel
/// endpoint .2n (or fd00:<subnet>::2n on an IPv6 underlay); its VM n has
/// MAC 00:..:0n, IP 10.0.0.n and iface-id lpn.
struct Site {
    tag: String,
    subnet: u8,
    ipv6: bool,
    ovn: Ovn,
    net: UnderlayNet,
}

impl Site {
    fn new(subnet: u8) -> Site {
        Self::with_family(subnet, false)
    }

    /// A site whose tunnel endpoints are IPv6 (the control plane stays on
    /// IPv4).
    fn with_family(subnet: u8, ipv6: bool) -> Site {
        let tag = tag();
        let net = UnderlayNet::new(
            &format!("syul{tag}{subnet}"),
            &format!("192.168.{subnet}.1"),
        )
        .unwrap();
        let ovn = Ovn::start_with(Databases::Ours, &net.ip, false);
        Site {
            tag,
            subnet,
            ipv6,
            ovn,
            net,
        }
    }

    fn ip(&self, h: u8) -> String {
        format!("192.168.{}.{h}", self.subnet)
    }

    /// The tunnel endpoint of host `h` (chassis n is 20 + n).
    fn tunnel_ip(&self, h: u8) -> String {
        if self.ipv6 {
            format!("fd00:{}::{h}", self.subnet)
        } else {
            self.ip(h)
        }
    }

    /// Chassis `n` with tunnel type `encap` and provider networks
    /// `(network, interface, bridge)`.
    fn chassis(&self, n: u8, encap: &str, providers: &[(&str, &str, &UnderlayNet)]) -> Chassis {
        let name = format!("c{}{}{}", self.tag, self.subnet, (b'a' + n - 1) as char);
        Chassis::start(
            &self.ovn,
            &self.net,
            &name,
            &self.ip(10 + n),
            &self.tunnel_ip(20 + n),
            encap,
            providers,
        )
    }

    /// VM `n` behind chassis `c`, plugged in, with a 1500-byte MTU: larger
    /// than the overlay's, which path-MTU discovery must find.
    fn vm(&self, c: &Chassis, n: u8) -> Vm {
        let name = format!("v{}{}{}", self.tag, self.subnet, (b'a' + n - 1) as char);
        let vm = Vm::new_on(
            Some(&c.ns),
            &name,
            &name,
            &format!("00:00:00:00:00:0{n}"),
            &format!("10.0.0.{n}"),
            1500,
        )
        .expect("creating a VM");
        c.cli(&["port-add", &vm.port, "--iface-id", &format!("lp{n}")]);
        vm
    }
}

fn tcp_100k(from: &Vm, to: &Vm) {
    let server = Command::new("ip")
        .args(["netns", "exec", &to.ns, "/usr/bin/python3", "-c",
            &format!("import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{}',5001))\ns.listen(1)\nc,_=s.accept()\nd=b''\nwhile len(d)<100000:\n  x=c.recv(65536)\n  if not x: break\n  d+=x\nc.sendall(b'got %d' % len(d))\nc.close()\n", to.ip)])
        .spawn()
        .unwrap();
    let (ok, out) = from.try_exec(&["/usr/bin/python3", "-c",
        &format!("import socket,time\nfor i in range(100):\n  try:\n    s=socket.create_connection(('{}',5001),timeout=10); break\n  except OSError: time.sleep(0.1)\ns.sendall(b'x'*100000)\nprint(s.recv(100).decode())\n", to.ip)]);
    let _ = server.wait_with_output();
    assert!(
        ok && out.contains("got 100000"),
        "TCP across the tunnel failed:\n{out}"
    );
}

fn two_chassis(encap: &str, subnet: u8, ipv6: bool) {
    require_root();
    let site = Site::with_family(subnet, ipv6);
    let (ovn, net) = (&site.ovn, &site.net);
    let ip = |h: u8| site.tunnel_ip(h);
    let hv1 = site.chassis(1, encap, &[]);
    let hv2 = site.chassis(2, encap, &[]);
    let vm1 = site.vm(&hv1, 1);
    let vm2 = site.vm(&hv2, 2);
    let a1 = format!("{} {}", vm1.mac, vm1.ip);
    let a2 = format!("{} {}", vm2.mac, vm2.ip);
    let mut cmd: Vec<String> = ["--wait=hv", "ls-add", "net1"].map(String::from).to_vec();
    cmd.extend(vif("net1", "lp1", &a1));
    cmd.extend(vif("net1", "lp2", &a2));
    ovn.nbctl(&cmd);

    // Capture the tunnel traffic on the underlay while pinging across. For
    // each packet: outer addresses, DF (IPv4) or the flow label (IPv6), and
    // over IPv6 whether the UDP checksum is the one scapy computes.
    // The capture prints `ready` once it has its socket.
    let sniff = Ready::start(Command::new("/usr/bin/python3")
        .args(["-c", &format!(
            "from scapy.all import sniff, UDP, IP, IPv6, Ether\nfrom scapy.contrib.geneve import GENEVE\nfrom scapy.layers.vxlan import VXLAN\n\
             ps=sniff(iface='{}', filter='udp port 6081 or udp port 4789', count=4, timeout=10, started_callback=lambda: print('ready', flush=True))\n\
             for p in ps:\n  u=p[UDP]\n  g=GENEVE(bytes(u.payload)) if u.dport==6081 else VXLAN(bytes(u.payload))\n\
             \x20 if IPv6 in p:\n    o=p[IPv6]; q=p.copy(); del q[UDP].chksum; q=Ether(bytes(q))\n    hdr=(o.src, o.dst, 'fl=%d' % o.fl, 'csum-ok' if q[UDP].chksum==u.chksum else 'csum-bad')\n\
             \x20 else:\n    hdr=(p[IP].src, p[IP].dst, str(p[IP].flags), '-')\n\
             \x20 if u.dport==6081:\n    o=g.options[0]\n    print('geneve', *hdr, u.sport, g.vni, g.proto, hex(o.classid), hex(o.type), o.length, o.data.hex(), 'C=%d' % g.critical)\n\
             \x20 else:\n    print('vxlan', *hdr, u.sport, g.vni)\n", net.name)]));
    let (ok, out) = vm1.ping("10.0.0.2", 3, &[]);
    assert!(ok, "{encap}: no ping across right after --wait=hv:\n{out}");
    let (ok, out) = vm2.ping("10.0.0.1", 2, &[]);
    assert!(ok, "{out}");
    // trace names the remote port and its chassis, not the uplink alone.
    let flow = format!(
        "inport=lp1 eth.src={} eth.dst={} ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53",
        vm1.mac, vm2.mac
    );
    let out = hv1.cli(&["trace", &flow]);
    assert!(
        out.contains(&format!(
            "verdict: output to \"lp2\" on chassis \"{}\", tunnelled via",
            hv2.name
        )),
        "{out}"
    );
    let (text, errors) = sniff.output();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(encap)).collect();
    assert!(
        !lines.is_empty(),
        "scapy saw no {encap} packets: {text}{errors}"
    );
    let dp_key: u32 = ovn
        .sb_dump()
        .lines()
        .find(|l| l.contains("name=net1"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .expect("net1's datapath key");
    for l in &lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Outer IPs are the two tunnel endpoints; over IPv4 DF is set,
        // over IPv6 the flow label comes from the inner flow and the UDP
        // checksum is right; the source port is dynamic.
        assert!(f[1] == ip(21) || f[1] == ip(22), "{l}");
        assert!(f[2] == ip(21) || f[2] == ip(22), "{l}");
        if ipv6 {
            assert_ne!(f[3], "fl=0", "{l}");
            assert_eq!(f[4], "csum-ok", "{l}");
        } else {
            assert_eq!(f[3], "DF", "{l}");
        }
        assert!(f[5].parse::<u16>().unwrap() >= 49152, "{l}");
        let vni: u32 = f[6].parse().unwrap();
        if encap == "geneve" {
            // VNI = datapath key; OVN's option: class 0x102, type 0x80,
            // one 4-byte word, ingress | egress port keys.
            assert_eq!(vni, dp_key, "{l}");
            assert_eq!(f[7], "25944", "Ethernet payload (0x6558): {l}");
            assert_eq!(&f[8..11], &["0x102", "0x80", "1"], "{l}");
            let md = u32::from_str_radix(f[11], 16).unwrap();
            // RFC 8926 §3.4: the option is critical, so is the header's C.
            assert_eq!(f[12], "C=1", "{l}");
            let (ingress, egress) = (md >> 16, md & 0xffff);
            assert!(ingress >= 1 && egress >= 1 && ingress != egress, "{l}");
        } else {
            assert_eq!(vni & 0xfff, dp_key, "{l}");
            assert!(vni >> 12 >= 1, "egress port in VNI bits 12-23: {l}");
        }
    }

    // Path MTU: the underlay carries 1500-byte packets, so the overlay
    // carries 1442 (Geneve) or 1450 (VXLAN), 20 bytes less over IPv6. A
    // bigger packet with DF gets "fragmentation needed" with that MTU; one
    // of exactly that size passes.
    let overlay_mtu = if encap == "geneve" { 1442 } else { 1450 } - if ipv6 { 20 } else { 0 };
    let (ok, out) = vm1.ping("10.0.0.2", 1, &["-M", "do", "-s", "1472"]);
    assert!(!ok, "an oversized DF packet crossed:\n{out}");
    assert!(
        out.contains(&format!("mtu = {overlay_mtu}")),
        "no frag-needed with the overlay MTU:\n{out}"
    );
    let fits = (overlay_mtu - 28).to_string();
    let (ok, out) = vm1.ping("10.0.0.2", 2, &["-M", "do", "-s", &fits]);
    assert!(ok, "a packet at the overlay MTU did not cross:\n{out}");

    // `switchyard show`: the uplink, the tunnel to the other chassis with
    // its learned MAC and overlay MTU, and the remote port.
    let show = hv1.cli(&["show"]);
    assert!(
        show.contains(&format!("tunnel endpoint {}", ip(21))),
        "{show}"
    );
    let kind = if encap == "geneve" { "Geneve" } else { "Vxlan" };
    let tunnel = format!("chassis {}: {kind} to {} mac ", hv2.name, ip(22));
    let line = show.lines().find(|l| l.contains(&tunnel));
    assert!(
        line.is_some_and(
            |l| l.contains("(learned)") && l.ends_with(&format!("overlay mtu {overlay_mtu}"))
        ),
        "{show}"
    );
    assert!(
        show.lines()
            .any(|l| l.trim_start().starts_with("port lp2 (key ")
                && l.ends_with(&format!("): on chassis {}", hv2.name))),
        "{show}"
    );

    // TCP with a 1460-byte MSS: its first full segments are too big, the
    // ICMP brings the MSS down, and the transfer completes.
    tcp_100k(&vm1, &vm2);

    // A broadcast ARP the responder cannot answer (10.0.0.77 is nobody's)
    // is flooded: it reaches vm2 on the other chassis.
    let listener = Ready::start(Command::new("ip")
        .args(["netns", "exec", &vm2.ns, "/usr/bin/python3", "-c",
            "import socket,time\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(0x0806))\ns.bind(('eth0',0))\nprint('ready', flush=True)\ns.settimeout(5)\nend=time.time()+5\nwhile time.time()<end:\n  f=s.recv(2048)\n  if f[38:42]==bytes([10,0,0,77]): print('got'); break\n"]));
    let arp = "arp eth.src=00:00:00:00:00:01 eth.dst=ff:ff:ff:ff:ff:ff arp.sha=00:00:00:00:00:01 arp.spa=10.0.0.1 arp.tpa=10.0.0.77";
    let f = arp
        .parse::<dataplane::flow::FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    vm1.send_raw(&[f]).unwrap();
    let (out, errors) = listener.output();
    assert!(
        out.contains("got"),
        "the broadcast ARP did not reach vm2: {errors}"
    );

    // `switchyard trace --uplink` explains what arrives from the underlay:
    // the other chassis asking for our tunnel address.
    let ask = if ipv6 {
        format!("eth.src=02:00:00:00:00:99 eth.dst=33:33:ff:00:00:21 ip6.src={} ip6.dst=ff02::1:ff00:21 ip.ttl=255 nd_ns nd.target={} nd.sll=02:00:00:00:00:99", ip(22), ip(21))
    } else {
        format!("arp eth.src=02:00:00:00:00:99 eth.dst=ff:ff:ff:ff:ff:ff arp.sha=02:00:00:00:00:99 arp.spa={} arp.tpa={}", ip(22), ip(21))
    };
    let f = ask
        .parse::<dataplane::flow::FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
    let out = hv1.cli(&["trace", "--uplink", &hex]);
    assert!(
        out.contains("neighbour solicitation for our tunnel address"),
        "{out}"
    );

    // Deleting the remote port stops traffic to it, at the sender's
    // chassis, which says so.
    ovn.nbctl(&["--wait=hv", "lsp-del", "lp2"]);
    let unreachable = || hv1.drops("unknown_unicast") + hv1.drops("no_local_port");
    let before = unreachable();
    let (ok, _) = vm1.ping("10.0.0.2", 1, &[]);
    assert!(!ok, "vm2 still reachable after lsp-del");
    assert!(unreachable() > before, "vm1's ping was not dropped on hv1");
}

#[test]
fn ping_tcp_and_flooding_across_geneve() {
    two_chassis("geneve", 111, false);
}

#[test]
fn ping_tcp_and_flooding_across_vxlan() {
    two_chassis("vxlan", 112, false);
}

#[test]
fn ping_tcp_and_flooding_across_geneve_over_ipv6() {
    two_chassis("geneve", 115, true);
}

/// Path MTU for IPv6 VMs: across Geneve an IPv6 packet bigger than the
/// overlay MTU gets ICMPv6 "packet too big" with that MTU (RFC 4443 §3.2),
/// the VM's kernel lowers its path MTU, and a packet of that size passes.
#[test]
fn ipv6_vms_get_packet_too_big_across_geneve() {
    require_root();
    let site = Site::new(117);
    let ovn = &site.ovn;
    let hv1 = site.chassis(1, "geneve", &[]);
    let hv2 = site.chassis(2, "geneve", &[]);
    let vm1 = site.vm(&hv1, 1);
    let vm2 = site.vm(&hv2, 2);
    for (vm, ip) in [(&vm1, "fd10::1"), (&vm2, "fd10::2")] {
        for sysctl in [
            "net.ipv6.conf.all.disable_ipv6=0",
            "net.ipv6.conf.eth0.disable_ipv6=0",
        ] {
            vm.exec(&["sysctl", "-q", "-w", sysctl]).unwrap();
        }
        vm.exec(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{ip}/64"),
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
    }
    let a1 = format!("{} {} fd10::1", vm1.mac, vm1.ip);
    let a2 = format!("{} {} fd10::2", vm2.mac, vm2.ip);
    let mut cmd: Vec<String> = ["--wait=hv", "ls-add", "net1"].map(String::from).to_vec();
    cmd.extend(vif("net1", "lp1", &a1));
    cmd.extend(vif("net1", "lp2", &a2));
    ovn.nbctl(&cmd);
    let (ok, out) = vm1.ping("fd10::2", 3, &[]);
    assert!(ok, "no IPv6 ping across Geneve:\n{out}");
    // 1500-byte VM MTU, overlay MTU 1442: 1452 bytes of ICMPv6 payload make
    // a 1500-byte packet, answered with packet too big.
    let (ok, out) = vm1.ping("fd10::2", 2, &["-M", "do", "-s", "1452"]);
    assert!(!ok, "an oversized IPv6 packet crossed:\n{out}");
    assert!(
        out.contains("Packet too big: mtu=1442"),
        "no packet too big with the overlay MTU:\n{out}"
    );
    // 1442 - 40 (IPv6) - 8 (ICMPv6) bytes of payload fit.
    let (ok, out) = vm1.ping("fd10::2", 2, &["-M", "do", "-s", "1394"]);
    assert!(
        ok,
        "an IPv6 packet at the overlay MTU did not cross:\n{out}"
    );
}

/// The kernel's VXLAN device is a VTEP chassis (SB `vtep_logical_switches`)
/// hosting one logical port: it decapsulates what our chassis sends and
/// encapsulates what it answers, and traffic crosses it both ways. Over
/// IPv6 the kernel also resolves our endpoint by neighbour discovery, and
/// (by default, `udp6zerocsumrx off`) drops any packet whose UDP checksum
/// is not right.
fn kernel_vtep(subnet: u8, ipv6: bool) {
    require_root();
    let site = Site::with_family(subnet, ipv6);
    let (ovn, net) = (&site.ovn, &site.net);
    let ip = |h: u8| site.tunnel_ip(h);
    let (t, subnet) = (&site.tag, site.subnet);
    let hv1 = site.chassis(1, "vxlan", &[]);
    let vm1 = site.vm(&hv1, 1);
    let kmac = "00:00:00:00:00:50";
    let a1 = format!("{} {}", vm1.mac, vm1.ip);
    let mut cmd: Vec<String> = ["--wait=sb", "ls-add", "net1"].map(String::from).to_vec();
    cmd.extend(vif("net1", "lp1", &a1));
    cmd.extend(
        [
            "--",
            "lsp-add",
            "net1",
            "kport",
            "--",
            "lsp-set-addresses",
            "kport",
            &format!("{kmac} 10.0.0.50"),
        ]
        .map(String::from),
    );
    ovn.nbctl(&cmd);
    let sbctl = |args: &[&str]| {
        let db = format!("--db={}", ovn.sb);
        let mut full = vec!["ovn-sbctl", db.as_str()];
        full.extend_from_slice(args);
        let (ok, out) = try_sh(&full);
        assert!(ok, "ovn-sbctl {args:?}: {out}");
        out
    };
    // The kernel host as a VTEP chassis, and kport bound to it.
    sbctl(&["chassis-add", "kvtep", "vxlan", &ip(30)]);
    sbctl(&["set", "Chassis", "kvtep", "vtep_logical_switches=net1"]);
    sbctl(&["lsp-bind", "kport", "kvtep"]);
    let dp_key = sbctl(&["--bare", "--columns=tunnel_key", "list", "Datapath_Binding"]);
    let dp_key = dp_key.trim();
    // The kernel side: a host on the underlay with a VXLAN device.
    let khost = Host::new(&format!("k{t}{subnet}"), net, "ul", Some(&site.ip(30))).unwrap();
    let k = |args: &[&str]| {
        khost.exec(args).unwrap_or_else(|e| panic!("{e}"));
    };
    if ipv6 {
        k(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=0"]);
        k(&["sysctl", "-q", "-w", "net.ipv6.conf.ul.disable_ipv6=0"]);
        k(&[
            "ip",
            "addr",
            "add",
            &format!("{}/64", ip(30)),
            "dev",
            "ul",
            "nodad",
        ]);
    }
    k(&[
        "ip",
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        dp_key,
        "local",
        &ip(30),
        "remote",
        &ip(21),
        "dstport",
        "4789",
        "nolearning",
    ]);
    k(&[
        "ip", "link", "set", "vx0", "address", kmac, "mtu", "1400", "up",
    ]);
    k(&["ip", "addr", "add", "10.0.0.50/24", "dev", "vx0"]);
    ovn.nbctl(&["--wait=hv", "sync"]);
    let (ok, out) = vm1.ping("10.0.0.50", 3, &[]);
    assert!(ok, "vm1 <-> the kernel VXLAN VTEP:\n{out}");
}

#[test]
fn the_kernel_vxlan_interoperates_as_a_vtep() {
    kernel_vtep(113, false);
}

#[test]
fn the_kernel_vxlan_interoperates_over_ipv6() {
    kernel_vtep(116, true);
}

/// A provider network: a localnet port with VLAN tag 100 bridges the
/// logical switch to a physical network on the node's `--bridge-mapping`
/// interface, where a host on VLAN 100 answers the VM and pings it. This
/// kernel has no 802.1Q support, so the host's stack on VLAN 100 is scapy
/// (ARP and ICMP echo on tagged frames) in a namespace on that network.
#[test]
fn a_vm_reaches_a_physical_host_on_a_vlan_provider_network() {
    require_root();
    let site = Site::new(114);
    let ovn = &site.ovn;
    let (t, subnet) = (&site.tag, site.subnet);
    let phys = UnderlayNet::new(&format!("syph{t}"), "192.168.250.1").unwrap();
    let phost = Host::new(&format!("h{t}{subnet}"), &phys, "eth0", None).unwrap();
    let host_ns = phost.ns.clone();
    let prov = format!("p{t}{subnet}");
    let hv1 = site.chassis(1, "geneve", &[("physnet", &prov, &phys)]);
    let vm1 = site.vm(&hv1, 1);
    let a1 = format!("{} {}", vm1.mac, vm1.ip);
    let mut cmd: Vec<String> = ["--wait=hv", "ls-add", "net1"].map(String::from).to_vec();
    cmd.extend(vif("net1", "lp1", &a1));
    cmd.extend(
        [
            "--",
            "lsp-add",
            "net1",
            "ln",
            "",
            "100",
            "--",
            "lsp-set-type",
            "ln",
            "localnet",
            "--",
            "lsp-set-addresses",
            "ln",
            "unknown",
            "--",
            "lsp-set-options",
            "ln",
            "network_name=physnet",
        ]
        .map(String::from),
    );
    ovn.nbctl(&cmd);
    // The host: answers ARP and echo on VLAN 100 only, and once the VM has
    // pinged it, pings the VM back (tagged) and reports the reply.
    let host = Ready::start(Command::new("ip")
        .args(["netns", "exec", &host_ns, "/usr/bin/python3", "-c", r#"
from scapy.all import *
conf.verb = 0
me, ip, vid = '02:00:00:00:01:00', '10.0.0.100', 100
st = {'asked': False}
def tagged(p):
    return Dot1Q in p and p[Dot1Q].vlan == vid
def handle(p):
    if not tagged(p):
        return
    if ARP in p and p[ARP].op == 1 and p[ARP].pdst == ip:
        sendp(Ether(dst=p.src, src=me)/Dot1Q(vlan=vid)/ARP(op=2, hwsrc=me, psrc=ip, hwdst=p[ARP].hwsrc, pdst=p[ARP].psrc), iface='eth0')
    elif ICMP in p and p[IP].dst == ip and p[ICMP].type == 8:
        print('host-got-echo', flush=True)
        sendp(Ether(dst=p.src, src=me)/Dot1Q(vlan=vid)/IP(src=ip, dst=p[IP].src)/ICMP(type=0, id=p[ICMP].id, seq=p[ICMP].seq)/bytes(p[ICMP].payload), iface='eth0')
        if not st['asked']:
            st['asked'] = True
            sendp(Ether(dst=p.src, src=me)/Dot1Q(vlan=vid)/IP(src=ip, dst=p[IP].src)/ICMP(type=8, id=0x4242, seq=1)/b'hello', iface='eth0')
    elif ICMP in p and p[IP].dst == ip and p[ICMP].type == 0 and p[ICMP].id == 0x4242:
        print('host-ping-ok', flush=True)
        st['done'] = True
sniff(iface='eth0', prn=handle, timeout=12, stop_filter=lambda p: st.get('done', False),
      started_callback=lambda: print('ready', flush=True))
"#]));
    let (ok, out) = vm1.ping("10.0.0.100", 3, &[]);
    let (host_text, host_errors) = host.output();
    assert!(
        ok,
        "vm1 -> the host on VLAN 100:\n{out}\nhost: {host_text}{host_errors}"
    );
    assert!(
        host_text.contains("host-ping-ok"),
        "the host's ping to vm1 got no reply: {host_text}"
    );
}
