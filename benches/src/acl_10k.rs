//! The security group of the `-10k-rules` ACL scenarios: `acl`'s
//! Neutron-shaped group grown to 10,000 rules and address sets of
//! thousands of addresses, as a large cloud writes them, to show what the
//! number of rules costs a new connection (the classifier's index) and
//! established traffic (nothing: conntrack passes it before the ACLs).
//! Apart from `acl` because the DPDK example includes that file alone.

use std::net::Ipv4Addr;

use dataplane::classifier::{AclAction, AclConfig, Direction};

use crate::acl::{acl, security_group};

/// Rules of [`security_group_10k_rules`] in all (both directions).
pub const RULES: usize = 10_000;

/// Remote groups ([`security_group_10k_rules`]'s address sets besides
/// `$sg_ip4`), and the addresses of each.
const REMOTE_GROUPS: usize = 8;
const REMOTE_MEMBERS: usize = 2_500;

/// [`security_group`] grown to [`RULES`] ACLs as a large Neutron cloud
/// writes them: the same rules, preceded (at the same priority, so a
/// linear scan meets them first) by ingress rules opening one TCP port or
/// a small UDP range each to a remote group (an address set of 2,500
/// addresses) or a prefix, some IPv6 and ICMP ones, a few opening UDP
/// ports the traffic uses to groups it is not in, and egress rules to
/// TCP ports; `$sg_ip4` also holds 3,000 addresses of the group's ports
/// elsewhere. The traffic of the ACL scenarios still matches the small
/// group's rules and nothing else.
pub fn security_group_10k_rules(ips: &[Ipv4Addr], allow: AclAction) -> AclConfig {
    use Direction::*;
    let mut cfg = security_group(ips, allow);
    let (drops, base) = cfg.acls.split_at(2);
    let (drops, base) = (drops.to_vec(), base.to_vec());
    let group = |k: usize| format!("remote{}_ip4", k % REMOTE_GROUPS);
    let extra = RULES - drops.len() - base.len();
    let mut acls = drops;
    for i in 0..extra {
        let (dir, m) = if i < 16 {
            // Other groups' access to the traffic's own UDP ports.
            let m = format!(
                "outport == @sg && ip4 && ip4.src == ${} && udp && udp.dst >= 4990 && udp.dst <= 5010",
                group(i)
            );
            (ToLport, m)
        } else if i % 5 == 4 {
            let m = format!(
                "inport == @sg && ip4 && ip4.dst == 172.{}.0.0/16 && tcp && tcp.dst == {}",
                16 + i % 16,
                10_000 + i
            );
            (FromLport, m)
        } else {
            let m = match i % 10 {
                0 | 2 | 5 => format!(
                    "outport == @sg && ip4 && ip4.src == ${} && tcp && tcp.dst == {}",
                    group(i),
                    10_000 + i
                ),
                1 | 6 => format!(
                    "outport == @sg && ip4 && ip4.src == ${} && udp && udp.dst >= {} && udp.dst <= {}",
                    group(i),
                    30_000 + 3 * i,
                    30_000 + 3 * i + 2
                ),
                3 => format!(
                    "outport == @sg && ip4 && ip4.src == 192.168.{}.0/24 && tcp && tcp.dst == {}",
                    i % 256,
                    10_000 + i
                ),
                7 => format!(
                    "outport == @sg && ip6 && ip6.src == $remote_ip6 && tcp && tcp.dst == {}",
                    10_000 + i
                ),
                _ => format!(
                    "outport == @sg && ip4 && ip4.src == ${} && icmp4 && icmp4.type == {}",
                    group(i),
                    i % 256
                ),
            };
            (ToLport, m)
        };
        let mut a = acl(1002, dir, allow, &m);
        a.name = format!("sg-rule-{i}");
        acls.push(a);
    }
    acls.extend(base);
    cfg.acls = acls;
    let members = |k: usize| {
        (0..REMOTE_MEMBERS)
            .map(move |j| Ipv4Addr::new(10, 16 + k as u8, (j >> 8) as u8, j as u8).to_string())
    };
    for k in 0..REMOTE_GROUPS {
        cfg.address_sets
            .insert(format!("remote{k}_ip4"), members(k).collect());
    }
    cfg.address_sets.insert(
        "remote_ip6".into(),
        (0..REMOTE_MEMBERS)
            .map(|j| format!("fd00:10::{j:x}"))
            .collect(),
    );
    let elsewhere = (0..3_000).map(|j| Ipv4Addr::new(10, 200, (j >> 8) as u8, j as u8).to_string());
    cfg.address_sets
        .get_mut("sg_ip4")
        .expect("the group's own set")
        .extend(elsewhere);
    debug_assert_eq!(cfg.acls.len(), RULES);
    cfg
}
