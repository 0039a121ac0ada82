//! What SB asks for that this chassis does not enforce, said out loud.
//!
//! The real ovn-northd carries ACLs, load balancers, DHCP, DNS, routing and
//! NAT to chassis only as `Logical_Flow` rows, which this dataplane does not
//! compile: under such an SB, our chassis switches L2 and would silently let
//! through what an ACL drops. So the controller monitors the flows that do
//! something (actions other than a bare `next;`) and counts, per kind, those
//! in the stages it does not implement; the node logs a warning when the
//! counts change, exports them on `/metrics` and prints them in
//! `switchyard show`.
//!
//! What counts: a flow in an ACL stage (`ls_in_acl*`, `ls_out_acl*`), a
//! load-balancer, DHCP or DNS stage of a switch, or any router stage
//! (`lr_in_*`, `lr_out_*`; NAT stages apart), whose actions are not `next;`.
//! Real ovn-northd writes for a switch without ACLs only pass-through
//! flows (`next;`) in the ACL stages, so plain L2 under it reports nothing;
//! one ACL adds flows that drop, mark or commit to conntrack.
//!
//! Beside the flows it lists what ovn-northd-lite says, in
//! `SB_Global.external_ids:switchyard-unrealised-<feature>`, that it does not
//! compile (NB load balancers, QoS, NAT, …: see northd-lite's `unrealised`
//! module), as kinds `nb_<feature>`: one report, on every node, of all the
//! intent stored but not enforced.
//!
//! The condition is served by the server, so the chassis replicates only
//! flows that act, and of them two columns; under real northd that is
//! still a few rows per logical port (L2 lookup, ARP responder), which
//! ovn-controller replicates too.

use std::collections::BTreeMap;
use std::fmt;

use ovsdb::client::rows::LogicalFlow;
use ovsdb::client::txn::clause;
use ovsdb::client::TableRequest;
use serde_json::json;

/// A kind of SB intent this chassis does not enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnenforcedKind {
    /// Logical flows of switch ACL stages.
    LogicalFlowAcl,
    /// Logical flows of switch load-balancer stages.
    LogicalFlowLb,
    /// Logical flows of the switch DHCP stages.
    LogicalFlowDhcp,
    /// Logical flows of the switch DNS stages.
    LogicalFlowDns,
    /// Logical flows of router stages other than NAT.
    LogicalFlowRouter,
    /// Logical flows of router NAT stages.
    LogicalFlowNat,
    /// Localnet ports left unbound: another switch's localnet port has
    /// their physical network's interface here.
    LocalnetSharedNetwork,
}

impl UnenforcedKind {
    /// Every kind, in report order.
    pub const ALL: [UnenforcedKind; 7] = [
        UnenforcedKind::LogicalFlowAcl,
        UnenforcedKind::LogicalFlowLb,
        UnenforcedKind::LogicalFlowDhcp,
        UnenforcedKind::LogicalFlowDns,
        UnenforcedKind::LogicalFlowRouter,
        UnenforcedKind::LogicalFlowNat,
        UnenforcedKind::LocalnetSharedNetwork,
    ];

    /// The label value on `/metrics` and the word in `show`.
    pub fn name(self) -> &'static str {
        match self {
            UnenforcedKind::LogicalFlowAcl => "logical_flow_acl",
            UnenforcedKind::LogicalFlowLb => "logical_flow_lb",
            UnenforcedKind::LogicalFlowDhcp => "logical_flow_dhcp",
            UnenforcedKind::LogicalFlowDns => "logical_flow_dns",
            UnenforcedKind::LogicalFlowRouter => "logical_flow_router",
            UnenforcedKind::LogicalFlowNat => "logical_flow_nat",
            UnenforcedKind::LocalnetSharedNetwork => "localnet_shared_network",
        }
    }

    /// The kind of a flow in OVN stage `stage` (its `stage-name`), if we do
    /// not implement that stage.
    fn of_stage(stage: &str) -> Option<Self> {
        const SWITCH: [(&str, UnenforcedKind); 8] = [
            ("ls_in_acl", UnenforcedKind::LogicalFlowAcl),
            ("ls_out_acl", UnenforcedKind::LogicalFlowAcl),
            ("ls_in_pre_lb", UnenforcedKind::LogicalFlowLb),
            ("ls_out_pre_lb", UnenforcedKind::LogicalFlowLb),
            ("ls_in_lb", UnenforcedKind::LogicalFlowLb),
            ("ls_out_lb", UnenforcedKind::LogicalFlowLb),
            ("ls_in_dhcp", UnenforcedKind::LogicalFlowDhcp),
            ("ls_in_dns", UnenforcedKind::LogicalFlowDns),
        ];
        if let Some((_, kind)) = SWITCH.iter().find(|(p, _)| stage.starts_with(p)) {
            return Some(*kind);
        }
        if stage.starts_with("lr_in_") || stage.starts_with("lr_out_") {
            return Some(if stage.contains("nat") {
                UnenforcedKind::LogicalFlowNat
            } else {
                UnenforcedKind::LogicalFlowRouter
            });
        }
        None
    }
}

/// How many SB rows of each kind this chassis does not enforce, and how
/// many NB rows of each feature northd-lite does not realise (kinds and
/// features without any are absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unenforced {
    pub flows: BTreeMap<UnenforcedKind, u64>,
    /// Northd-lite's report, by NB feature (`load_balancer`, `qos`, …).
    pub northd: BTreeMap<String, u64>,
}

impl Unenforced {
    /// Adds the localnet ports left unbound (`translate`'s
    /// `one_localnet_per_network`).
    pub fn with_shared_networks(mut self, n: u64) -> Self {
        if n > 0 {
            self.flows.insert(UnenforcedKind::LocalnetSharedNetwork, n);
        }
        self
    }

    /// Adds northd-lite's report (`SbGlobal::unrealised`).
    pub fn with_northd(mut self, northd: BTreeMap<String, u64>) -> Self {
        self.northd = northd;
        self
    }

    /// Every kind with its count, in report order: `/metrics`' `kind`
    /// label and `show`'s words (`nb_<feature>` for northd-lite's).
    pub fn kinds(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .flows
            .iter()
            .map(|(k, n)| (k.name().to_string(), *n))
            .collect();
        v.extend(self.northd.iter().map(|(f, n)| (format!("nb_{f}"), *n)));
        v
    }

    /// Counts `flows` (as replicated under the monitor condition of `monitor_request`).
    pub fn count<'a>(flows: impl IntoIterator<Item = &'a LogicalFlow>) -> Self {
        let mut counts = BTreeMap::new();
        for f in flows {
            if f.actions.trim() == "next;" {
                continue;
            }
            let stage = f.external_ids.get("stage-name").map_or("", String::as_str);
            if let Some(kind) = UnenforcedKind::of_stage(stage) {
                *counts.entry(kind).or_insert(0) += 1;
            }
        }
        Unenforced {
            flows: counts,
            northd: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty() && self.northd.is_empty()
    }
}

impl fmt::Display for Unenforced {
    /// "3 logical_flow_acl, 12 logical_flow_router, 1 nb_qos" ("nothing"
    /// when empty).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing");
        }
        for (i, (kind, n)) in self.kinds().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n} {kind}")?;
        }
        Ok(())
    }
}

/// What the controller monitors of `Logical_Flow`: the flows whose actions
/// are not a bare `next;`, and only the columns [`Unenforced::count`] reads.
pub(crate) fn monitor_request() -> TableRequest {
    TableRequest {
        table: "Logical_Flow".into(),
        columns: Some(vec!["actions".into(), "external_ids".into()]),
        condition: Some(json!([clause("actions", "!=", json!("next;"))])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(stage: &str, actions: &str) -> LogicalFlow {
        LogicalFlow {
            uuid: uuid::Uuid::new_v4(),
            logical_datapath: None,
            logical_dp_group: None,
            pipeline: "ingress".into(),
            table_id: 0,
            priority: 0,
            match_: "1".into(),
            actions: actions.into(),
            external_ids: [("stage-name".to_string(), stage.to_string())].into(),
        }
    }

    /// Flows as the real ovn-northd (OVN 23.03) writes them, for a switch
    /// without and then with ACLs.
    #[test]
    fn counts_only_acting_flows_of_stages_we_do_not_implement() {
        let plain = [
            flow("ls_in_acl_hint", "next;"),
            flow("ls_in_acl", "next;"),
            flow("ls_out_acl", "next;"),
            flow("ls_in_l2_lkup", "outport = \"vm1\"; output;"),
            flow(
                "ls_in_stateful",
                "ct_commit { ct_mark.blocked = 0; }; next;",
            ),
            flow("ls_in_check_port_sec", "drop;"),
        ];
        assert_eq!(Unenforced::count(&plain), Unenforced::default());
        assert_eq!(Unenforced::count(&plain).to_string(), "nothing");

        let with_acl = [
            flow("ls_out_acl", "/* drop */"),
            flow("ls_in_acl_hint", "reg0[9] = 1; next;"),
            flow("lr_in_ip_routing", "ip.ttl--; next;"),
            flow("lr_out_snat", "ct_snat(172.16.0.1);"),
            flow("ls_in_dhcp_options", "reg0[3] = put_dhcp_opts(); next;"),
        ];
        let u = Unenforced::count(plain.iter().chain(&with_acl));
        assert_eq!(u.flows[&UnenforcedKind::LogicalFlowAcl], 2);
        assert_eq!(
            u.to_string(),
            "2 logical_flow_acl, 1 logical_flow_dhcp, 1 logical_flow_router, 1 logical_flow_nat"
        );
        let u = u.with_northd([("qos".to_string(), 1)].into());
        assert!(
            u.to_string().ends_with("1 logical_flow_nat, 1 nb_qos"),
            "{u}"
        );
        assert!(!Unenforced::default()
            .with_northd([("load_balancer".to_string(), 2)].into())
            .is_empty());
    }
}
