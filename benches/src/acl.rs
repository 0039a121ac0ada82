//! The security group of the ACL scenarios, shaped as Neutron's ML2/OVN
//! driver writes one: every port in `sg` and `neutron_pg_drop`, drops at
//! 1001, egress allowed and ingress UDP 5000-5100 from the group's own
//! addresses (`$sg_ip4`, a remote-group rule) at 1002. With
//! `allow-related` every packet goes through conntrack; with `allow` the
//! verdicts are cached under the L4-wide key.
//!
//! Self-contained (dataplane types only), so that the dataplane crate's
//! `dpdk_bench` example, which cannot depend on this crate, includes the
//! same file for `dpdk-acl-ct-10k`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dataplane::classifier::{Acl, AclAction, AclConfig, Direction};

pub(crate) fn acl(priority: u16, direction: Direction, action: AclAction, m: &str) -> Acl {
    Acl {
        name: format!("{}-{priority}-{}", direction.as_str(), action.as_str()),
        priority,
        direction,
        action,
        match_text: m.to_string(),
        expr: ovn_expr::parse(m).expect("a valid match"),
        log: false,
        severity: Default::default(),
        meter: None,
        switches: vec!["bench".into()],
    }
}

/// The security group of the ports named `vm0`, `vm1`, … with addresses
/// `ips`, its allow rules of action `allow`.
pub fn security_group(ips: &[Ipv4Addr], allow: AclAction) -> AclConfig {
    use AclAction::*;
    use Direction::*;
    let ports: Vec<String> = (0..ips.len()).map(|i| format!("vm{i}")).collect();
    AclConfig {
        acls: vec![
            acl(1001, FromLport, Drop, "inport == @neutron_pg_drop && ip"),
            acl(1001, ToLport, Drop, "outport == @neutron_pg_drop && ip"),
            acl(1002, FromLport, allow, "inport == @sg && ip4"),
            acl(
                1002,
                ToLport,
                allow,
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
