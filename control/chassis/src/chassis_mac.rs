//! OVN's `ovn-chassis-mac-mappings`: this chassis' MAC per physical
//! network (`switchyard node --chassis-mac-mapping NETWORK:MAC`, as
//! `ovs-vsctl set Open_vSwitch . external-ids:ovn-chassis-mac-mappings=…`
//! configures ovn-controller), published in SB `Chassis`
//! `other_config:ovn-chassis-mac-mappings` as `physnet1:MAC1,physnet2:MAC2`
//! so every chassis knows the others'. Localnet ports get both
//! ([`dataplane::pipeline::chassis_mac`] says what the dataplane does with
//! them).

use dataplane::pipeline::chassis_mac::ChassisMacs;
use dataplane::wire::MacAddr;
use ovsdb::client::rows::Chassis;

/// The `other_config` key, OVN's.
pub const KEY: &str = "ovn-chassis-mac-mappings";

/// `physnet1:MAC1,physnet2:MAC2`.
pub fn format(mappings: &[(String, MacAddr)]) -> String {
    mappings
        .iter()
        .map(|(n, m)| format!("{n}:{m}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The mappings in `s` (OVN's format; an entry without a MAC that parses
/// is skipped, as `chassis_get_mac` skips it).
pub fn parse(s: &str) -> Vec<(String, MacAddr)> {
    s.split(',')
        .filter_map(|e| {
            let (n, m) = e.trim().split_once(':')?;
            Some((n.to_string(), m.parse().ok()?))
        })
        .collect()
}

/// What localnet ports on this chassis get: this chassis' MACs by network
/// and every other chassis' MAC (on any network, as ovn-controller's
/// `put_chassis_mac_conj_id_flow` matches them).
#[derive(Clone, Debug, Default)]
pub struct Known {
    local: Vec<(String, MacAddr)>,
    remote: Vec<MacAddr>,
}

impl Known {
    pub fn new(local: &[(String, MacAddr)], me: &str, chassis: &[Chassis]) -> Known {
        let mut remote: Vec<MacAddr> = chassis
            .iter()
            .filter(|c| c.name != me)
            .filter_map(|c| c.other_config.get(KEY))
            .flat_map(|s| parse(s).into_iter().map(|(_, m)| m))
            .collect();
        remote.sort();
        remote.dedup();
        Known {
            local: local.to_vec(),
            remote,
        }
    }

    /// For a localnet port on physical network `network`.
    pub fn for_network(&self, network: &str) -> ChassisMacs {
        ChassisMacs {
            local: self
                .local
                .iter()
                .find(|(n, _)| n == network)
                .map(|(_, m)| *m),
            remote: self.remote.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_read_as_ovn_writes_them() {
        let m: MacAddr = "0e:00:00:00:00:01".parse().unwrap();
        let n: MacAddr = "0e:00:00:00:00:02".parse().unwrap();
        let v = vec![("physnet1".to_string(), m), ("physnet2".to_string(), n)];
        let s = format(&v);
        assert_eq!(s, "physnet1:0e:00:00:00:00:01,physnet2:0e:00:00:00:00:02");
        assert_eq!(parse(&s), v);
        assert_eq!(parse("physnet1:zz, physnet2:0e:00:00:00:00:02"), v[1..]);
    }
}
