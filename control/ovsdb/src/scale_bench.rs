//! A synthetic multi-tenant OVN northbound topology, for scale benchmarks
//! (the OVSDB load benchmark, northd-lite's).
//!
//! Per tenant: one router (two subnet ports, one gateway port, a default route, SNAT per subnet
//! and two floating IPs), two switches `t{T}-net{S}` with 20 VIF ports `t{T}-s{S}-p{P}` each
//! (MAC+IP addresses and port security) plus a router port, a port group over the 40 VIFs with
//! 6 ACLs, and an address set. A shared provider switch holds a localnet port and every
//! router's gateway port: 500 tenants are about 20,000 VIF ports.
//!
//! Also what those benchmarks share to measure servers as separate
//! processes: [`Proc`] and [`rss_kib`].

use serde_json::{json, Value};

/// The `transact` params (`["OVN_Northbound", op...]`) that create the topology.
pub fn nb_topology(tenants: usize) -> Value {
    let mut ops = vec![json!("OVN_Northbound")];
    let mut provider_ports = vec![];
    let named = |n: &str| json!(["named-uuid", n]);
    provider_ports.push(named("provider_ln"));
    ops.push(json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": "provider_ln",
        "row": {"name": "provider-localnet", "type": "localnet", "addresses": "unknown", "options": ["map", [["network_name", "physnet"]]]}}));
    for t in 0..tenants {
        let mut lr_ports = vec![];
        let mut nats = vec![];
        let mut vifs = vec![];
        let mut ips = vec![];
        for s in 0..2 {
            let subnet = format!("10.{}.{}", t / 128, (t % 128) * 2 + s);
            let mut ls_ports = vec![];
            for p in 0..20 {
                let name = format!("t{t}-s{s}-p{p}");
                let mac = format!(
                    "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    t >> 8,
                    t & 255,
                    s,
                    p,
                    1
                );
                let ip = format!("{subnet}.{}", p + 10);
                let addr = format!("{mac} {ip}");
                let id = format!("lsp_{t}_{s}_{p}");
                ops.push(json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": id,
                    "row": {"name": name, "addresses": addr, "port_security": addr,
                        "external_ids": ["map", [["neutron:device_owner", "compute:nova"], ["neutron:project_id", format!("tenant-{t}")]]]}}));
                ls_ports.push(named(&id));
                vifs.push(named(&id));
                ips.push(json!(ip));
            }
            let lrp = format!("lrp_{t}_{s}");
            ops.push(json!({"op": "insert", "table": "Logical_Router_Port", "uuid-name": lrp,
                "row": {"name": format!("t{t}-lrp{s}"), "mac": format!("02:{:02x}:{:02x}:{:02x}:00:fe", t >> 8, t & 255, s), "networks": format!("{subnet}.1/24")}}));
            lr_ports.push(named(&lrp));
            let rp = format!("rp_{t}_{s}");
            ops.push(json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": rp,
                "row": {"name": format!("t{t}-s{s}-router"), "type": "router", "addresses": "router", "options": ["map", [["router-port", format!("t{t}-lrp{s}")]]]}}));
            ls_ports.push(named(&rp));
            ops.push(json!({"op": "insert", "table": "Logical_Switch", "row": {"name": format!("t{t}-net{s}"), "ports": ["set", ls_ports],
                "other_config": ["map", [["subnet", format!("{subnet}.0/24")]]]}}));
            let nat = format!("snat_{t}_{s}");
            ops.push(json!({"op": "insert", "table": "NAT", "uuid-name": nat,
                "row": {"type": "snat", "external_ip": format!("172.{}.{}.{}", 16 + t / 65536, (t / 256) % 256, t % 256), "logical_ip": format!("{subnet}.0/24")}}));
            nats.push(named(&nat));
        }
        for f in 0..2 {
            let nat = format!("fip_{t}_{f}");
            ops.push(json!({"op": "insert", "table": "NAT", "uuid-name": nat,
                "row": {"type": "dnat_and_snat", "external_ip": format!("100.{}.{}.{}", t / 256, t % 256, f + 10), "logical_ip": format!("10.{}.{}.{}", t / 128, (t % 128) * 2, f + 10)}}));
            nats.push(named(&nat));
        }
        let gw = format!("gw_{t}");
        ops.push(json!({"op": "insert", "table": "Logical_Router_Port", "uuid-name": gw,
            "row": {"name": format!("t{t}-gw"), "mac": format!("02:{:02x}:{:02x}:ff:00:01", t >> 8, t & 255), "networks": format!("172.{}.{}.{}/16", 16 + t / 65536, (t / 256) % 256, t % 256)}}));
        lr_ports.push(named(&gw));
        let gwp = format!("gwp_{t}");
        ops.push(json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": gwp,
            "row": {"name": format!("provider-t{t}"), "type": "router", "addresses": "router", "options": ["map", [["router-port", format!("t{t}-gw")]]]}}));
        provider_ports.push(named(&gwp));
        let route = format!("route_{t}");
        ops.push(
            json!({"op": "insert", "table": "Logical_Router_Static_Route", "uuid-name": route,
            "row": {"ip_prefix": "0.0.0.0/0", "nexthop": "172.16.255.254"}}),
        );
        ops.push(json!({"op": "insert", "table": "Logical_Router", "row": {"name": format!("t{t}-router"),
            "ports": ["set", lr_ports], "nat": ["set", nats], "static_routes": route_ref(&route)}}));
        let mut acls = vec![];
        for (a, (dir, m)) in [
            ("from-lport", "ip4"),
            ("from-lport", "ip6"),
            ("to-lport", "ip4 && tcp && tcp.dst == 22"),
            ("to-lport", "ip4 && icmp4"),
            ("to-lport", "ip4 && ip4.src == $as_t{t}"),
            ("to-lport", "ip4 && tcp && tcp.dst == 443"),
        ]
        .iter()
        .enumerate()
        {
            let acl = format!("acl_{t}_{a}");
            let port = if *dir == "from-lport" {
                "inport"
            } else {
                "outport"
            };
            ops.push(json!({"op": "insert", "table": "ACL", "uuid-name": acl,
                "row": {"direction": dir, "priority": 1002 - a as i64, "action": "allow-related",
                    "match": format!("{port} == @pg_t{t} && {}", m.replace("{t}", &t.to_string()))}}));
            acls.push(named(&acl));
        }
        ops.push(json!({"op": "insert", "table": "Port_Group", "row": {"name": format!("pg_t{t}"), "ports": ["set", vifs], "acls": ["set", acls]}}));
        ops.push(json!({"op": "insert", "table": "Address_Set", "row": {"name": format!("as_t{t}"), "addresses": ["set", ips]}}));
    }
    ops.push(json!({"op": "insert", "table": "Logical_Switch", "row": {"name": "provider", "ports": ["set", provider_ports]}}));
    Value::Array(ops)
}

fn route_ref(name: &str) -> Value {
    json!(["named-uuid", name])
}

/// A child process the benchmark owns: killed and reaped on drop.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process's (resident, peak resident) set size in KiB (0 if unreadable).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
