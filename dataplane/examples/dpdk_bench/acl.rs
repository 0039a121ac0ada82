//! The security group of `dpdk-acl-ct-10k`, as Neutron's ML2/OVN driver
//! writes one and as `switchyard bench`'s acl-ct-10k has it (benches/src/
//! acl.rs, which this example cannot use: that crate depends on this one):
//! vm0 and vm1 in `sg` and `neutron_pg_drop`, drops at 1001, egress
//! allow-related and ingress UDP 5000-5100 from `$sg_ip4` allow-related at
//! 1002. Every packet is tracked in vm0's zone (from-lport) and vm1's
//! (to-lport), as ovn-controller's flows track it in both.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dataplane::classifier::{Acl, AclAction, AclConfig, Direction};

fn acl(priority: u16, direction: Direction, action: AclAction, m: &str) -> Acl {
    Acl {
        name: format!("{}-{priority}-{}", direction.as_str(), action.as_str()),
        priority,
        direction,
        action,
        match_text: m.to_string(),
        expr: ovn_expr::parse(m).expect("a valid match"),
        log: false,
        severity: Default::default(),
        switches: vec!["bench".into()],
    }
}

/// The allow-related security group of the ports named `vm0`, `vm1`, …
/// with addresses `ips`.
pub fn stateful(ips: &[Ipv4Addr]) -> AclConfig {
    use AclAction::*;
    use Direction::*;
    let ports: Vec<String> = (0..ips.len()).map(|i| format!("vm{i}")).collect();
    AclConfig {
        acls: vec![
            acl(1001, FromLport, Drop, "inport == @neutron_pg_drop && ip"),
            acl(1001, ToLport, Drop, "outport == @neutron_pg_drop && ip"),
            acl(1002, FromLport, AllowRelated, "inport == @sg && ip4"),
            acl(
                1002,
                ToLport,
                AllowRelated,
                "outport == @sg && ip4 && ip4.src == $sg_ip4 && udp && udp.dst >= 5000 && udp.dst <= 5100",
            ),
        ],
        port_groups: BTreeMap::from([
            ("sg".to_string(), ports.clone()),
            ("neutron_pg_drop".to_string(), ports),
        ]),
        address_sets: BTreeMap::from([(
            "sg_ip4".to_string(),
            ips.iter().map(Ipv4Addr::to_string).collect(),
        )]),
    }
}
