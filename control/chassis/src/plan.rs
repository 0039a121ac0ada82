//! One look at the SB replica: the steps of a round in order, and what they
//! decided ([`Plan`]). Planning only reads; the controller applies the plan.

use dataplane::classifier::AclConfig;
use dataplane::ids::PortId;
use dataplane::routes::LogicalRouter;
use dataplane::tables::{LogicalSwitch, Underlay};
use ovsdb::client::rows::{Chassis, DatapathBinding, LogicalFlow, PortBinding, SbGlobal};
use ovsdb::client::{Replica, RowId, Transaction};
use serde_json::Value;
use uuid::Uuid;

use crate::claim::{self, LocalPorts};
use crate::register::register;
use crate::unenforced::Unenforced;
use crate::{acl, mesh, router, translate, ControllerConfig, LocalBinding, UplinkPort, SB};

/// What one look at the replica decided.
pub(crate) struct Plan {
    /// The Port_Binding monitor condition the local bindings call for.
    pub condition: Value,
    pub switches: Vec<LogicalSwitch>,
    pub routers: Vec<LogicalRouter>,
    pub underlay: Option<Underlay>,
    /// The ACLs, port groups and address sets of the local datapaths.
    pub acls: AclConfig,
    /// SB transaction for registration, claims and releases (may be empty).
    pub txn: Transaction,
    /// Rows `txn` inserts that the replica must show before the next round.
    pub inserted: Vec<(&'static str, RowId)>,
    /// SB_Global's `nb_cfg`.
    pub nb_cfg: i64,
    /// Our Chassis_Private row and the `nb_cfg` it acknowledges.
    pub private: Option<(Uuid, i64)>,
    /// Port_Bindings bound here.
    pub claimed: u64,
    pub unenforced: Unenforced,
    /// Why this chassis cannot register (nothing is written then).
    pub conflict: Option<String>,
    /// A configuration that registers but cannot carry tunnels: a loopback
    /// endpoint while other chassis are in SB.
    pub warning: Option<String>,
}

/// Reads the replica: the condition it calls for, the tables, and the SB
/// writes this chassis owes.
pub(crate) fn plan(
    cfg: &ControllerConfig,
    r: &Replica,
    bindings: &[LocalBinding],
    uplink: Option<UplinkPort>,
    provider_port: &dyn Fn(&str) -> Option<PortId>,
    rejected: &acl::Rejected,
) -> Plan {
    let chassis = r.rows::<Chassis>();
    let port_bindings = r.rows::<PortBinding>();
    let mut txn = Transaction::new(SB);
    let registration = register(cfg, r, &chassis, &mut txn);
    let me = registration.me;

    let local = LocalPorts::new(cfg, bindings);
    let reach = router::reach(
        &port_bindings,
        claim::local_datapaths(&port_bindings, &local),
    );
    let datapaths = reach.datapaths;
    let condition = router::with_peers(claim::condition(&local, &datapaths, me), &reach.peers);
    // Claims only once the Chassis row exists.
    let claimed = me.map_or(0, |me| claim::claim(&port_bindings, &local, me, &mut txn));

    let mesh = mesh::mesh(cfg, r, &chassis, me, uplink);
    let chassis_macs = crate::chassis_mac::Known::new(&cfg.chassis_macs, &cfg.chassis, &chassis);
    let (switches, shared_networks) = translate::switches(
        r,
        &port_bindings,
        &datapaths,
        &local,
        &mesh.index,
        provider_port,
        &chassis_macs,
    );
    let names = datapaths
        .iter()
        .filter_map(|d| Some((*d, translate::datapath_name(&r.row::<DatapathBinding>(d)?))))
        .collect();
    let acls = acl::config(r, &names, rejected);
    let routers = router::routers(r, &port_bindings, &datapaths);
    Plan {
        condition,
        switches,
        routers,
        underlay: mesh.underlay,
        acls,
        txn,
        inserted: registration.inserted,
        nb_cfg: r.rows::<SbGlobal>().first().map_or(0, |g| g.nb_cfg),
        private: registration.private,
        claimed,
        unenforced: Unenforced::count(&r.rows::<LogicalFlow>())
            .with_shared_networks(shared_networks)
            .with_northd(
                r.rows::<SbGlobal>()
                    .first()
                    .map(SbGlobal::unrealised)
                    .unwrap_or_default(),
            ),
        conflict: registration.conflict,
        warning: loopback_endpoint(cfg, &chassis),
    }
}

/// An endpoint of ours on a loopback address while other chassis are in
/// SB: they cannot reach it (the default `--encap-ip 127.0.0.1` left on a
/// second node).
fn loopback_endpoint(cfg: &ControllerConfig, chassis: &[Chassis]) -> Option<String> {
    let ip = cfg
        .encaps
        .iter()
        .find(|e| {
            e.ip.parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
        })?
        .ip
        .clone();
    let others: Vec<&str> = chassis
        .iter()
        .filter(|c| c.name != cfg.chassis)
        .map(|c| c.name.as_str())
        .collect();
    (!others.is_empty()).then(|| {
        format!(
            "this chassis' tunnel endpoint {ip} is a loopback address, which chassis {} \
             cannot reach: give it a routable address with --encap-ip",
            others.join(", ")
        )
    })
}
