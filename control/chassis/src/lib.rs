//! The chassis controller: what `ovn-controller` is to OVS, for our
//! dataplane. This crate is the only one that programs the dataplane; it
//! reads SB through `switchyard-ovsdb`'s client library.
//!
//! It registers this chassis in SB (Chassis, its Encaps, Chassis_Private),
//! monitors only the SB rows relevant to the chassis, claims the
//! Port_Bindings whose logical port is a local port's iface-id (and
//! releases those whose port went), translates the bindings of every
//! datapath with a local port into the dataplane's typed tables, and once
//! every worker forwards with them writes SB_Global's `nb_cfg` to its
//! Chassis_Private row, so `ovn-nbctl --wait=hv` returns when packets flow.
//!
//! Conditional monitoring, as ovn-controller does it: Port_Binding rows
//! whose `logical_port` is a local iface-id, whose `datapath` is a local
//! datapath, or whose `chassis` is this one (one clause each, ORed).
//! `nb_cfg` is only acknowledged from a replica read under the condition
//! that the same replica calls for, so rows a condition change brings in
//! are never missed ([`Idl::set_condition`] returns once they are applied).
//!
//! Localnet ports are bound on every chassis that maps their
//! `network_name` to an interface (OVN's `ovn-bridge-mappings`), with their
//! VLAN `tag`. Ports bound to other chassis are reached through tunnels: the controller
//! builds the mesh from SB's Chassis and Encap rows (the first tunnel type
//! of ours the other chassis offers) and gives the dataplane each remote
//! port's chassis; without an uplink, remote ports are unreachable.
//!
//! ACLs, port groups and address sets of local datapaths come from SB's
//! typed tables ([`acl`]) and are installed with the forwarding tables.
//!
//! The dataplane is behind [`Dataplane`]; it keeps its tables when the
//! controller stops, and [`Dataplane::install`] only republishes when the
//! translation differs, so a restarted controller that finds SB as it left
//! it changes nothing, in SB or in forwarding.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

pub mod acl;

use dataplane::classifier::AclConfig;
use dataplane::packet::PortId;
use dataplane::tables::{
    Address, Encap, LogicalPort, LogicalSwitch, MacIps, PortType, RemoteChassis, Underlay,
};
use dataplane::wire::MacAddr;
use serde_json::{json, Value};
use tokio::sync::watch;
use uuid::Uuid;

use ovsdb::client::txn::{by_uuid, clause, map, refs, set, uuid};
use ovsdb::client::{Backoff, ClientError, Idl, Replica, TableRequest, Transaction};
use ovsdb::server::Remote;

const SB: &str = "OVN_Southbound";

/// A tunnel endpoint this chassis offers (SB Encap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncapConfig {
    /// "geneve" or "vxlan".
    pub encap_type: String,
    pub ip: String,
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The chassis name (OVS `external_ids:system-id`).
    pub chassis: String,
    pub hostname: String,
    pub sb: Vec<Remote>,
    pub encaps: Vec<EncapConfig>,
    /// Static MACs of remote tunnel endpoints (others are learned by ARP
    /// or neighbour discovery).
    pub static_neighbors: Vec<(std::net::IpAddr, MacAddr)>,
    pub backoff: Backoff,
}

/// A local port and the logical port it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBinding {
    /// OVS `external_ids:iface-id`: the logical port's name.
    pub iface_id: String,
    pub port: PortId,
}

/// The node's interface to the underlay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UplinkPort {
    pub port: PortId,
    pub mac: MacAddr,
    /// The interface's MTU: the largest outer IP packet.
    pub mtu: u16,
}

/// The dataplane the controller programs.
pub trait Dataplane: Send + Sync + 'static {
    /// The local ports and their iface-ids.
    fn bindings(&self) -> Vec<LocalBinding>;
    /// The uplink to the underlay, if the node has one. Without it, ports
    /// on other chassis are unreachable.
    fn uplink(&self) -> Option<UplinkPort>;
    /// The local port attached to physical network `network` (OVN's
    /// `ovn-bridge-mappings`), for localnet ports naming it.
    fn provider_port(&self, network: &str) -> Option<PortId>;
    /// Compiles and publishes `switches` (and the tunnels of `underlay`,
    /// and the ACLs of `acls`) unless they equal what is installed;
    /// returns once every worker forwards with them (true if anything
    /// changed).
    fn install(
        &self,
        switches: Vec<LogicalSwitch>,
        underlay: Option<Underlay>,
        acls: AclConfig,
    ) -> Result<bool, String>;
}

/// What a running controller reports (for `/metrics` and `show`).
#[derive(Debug, Default)]
pub struct Status {
    /// Whether the SB session is up and synchronized.
    pub connected: std::sync::atomic::AtomicBool,
    /// The last `nb_cfg` acknowledged in Chassis_Private.
    pub nb_cfg: std::sync::atomic::AtomicI64,
    /// Port_Bindings this chassis has claimed.
    pub claimed: std::sync::atomic::AtomicU64,
    /// SB ACLs of local datapaths left out because they do not parse.
    pub acls_rejected: acl::Rejected,
}

/// A running controller; dropping it stops it (the dataplane keeps its
/// tables).
pub struct Controller {
    task: tokio::task::JoinHandle<()>,
    pub status: Arc<Status>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Controller {
    /// Starts the controller; `ports_changed` ticks when local ports come
    /// or go.
    pub fn start(
        cfg: ControllerConfig,
        dp: Arc<dyn Dataplane>,
        ports_changed: watch::Receiver<u64>,
    ) -> Result<Controller, ClientError> {
        let mut tables: Vec<TableRequest> = [
            "SB_Global",
            "Chassis",
            "Encap",
            "Datapath_Binding",
            "ACL",
            "Port_Group",
            "Address_Set",
        ]
        .into_iter()
        .map(TableRequest::all)
        .collect();
        tables.push(TableRequest {
            table: "Chassis_Private".into(),
            columns: None,
            condition: Some(json!([["name", "==", cfg.chassis]])),
        });
        tables.push(TableRequest {
            table: "Port_Binding".into(),
            columns: None,
            condition: Some(json!([false])),
        });
        let sb = Idl::start(cfg.sb.clone(), SB, tables, cfg.backoff)?;
        let status = Arc::new(Status::default());
        let task = tokio::spawn(run(cfg, sb, dp, ports_changed, status.clone()));
        Ok(Controller { task, status })
    }
}

async fn run(
    cfg: ControllerConfig,
    sb: Idl,
    dp: Arc<dyn Dataplane>,
    mut ports_changed: watch::Receiver<u64>,
    status: Arc<Status>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut changed = sb.subscribe();
    let mut condition = json!([false]);
    loop {
        status.connected.store(sb.is_connected(), Relaxed);
        if sb.is_connected() {
            match step(&cfg, &sb, dp.as_ref(), &mut condition, &status).await {
                Ok(true) => continue, // The condition changed: look again.
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!("chassis controller: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            r = ports_changed.changed() => if r.is_err() { return },
        }
    }
}

/// The Port_Binding condition for these local iface-ids and datapaths.
fn port_binding_condition(
    iface_ids: &HashSet<String>,
    datapaths: &HashSet<Uuid>,
    me: Option<Uuid>,
) -> Value {
    let mut clauses: Vec<Value> = Vec::new();
    let mut ids: Vec<&String> = iface_ids.iter().collect();
    ids.sort();
    for id in ids {
        clauses.push(clause("logical_port", "==", json!(id)));
    }
    let mut dps: Vec<&Uuid> = datapaths.iter().collect();
    dps.sort();
    for d in dps {
        clauses.push(clause("datapath", "==", uuid(*d)));
    }
    if let Some(me) = me {
        clauses.push(clause("chassis", "==", uuid(me)));
    }
    if clauses.is_empty() {
        clauses.push(json!(false));
    }
    Value::Array(clauses)
}

/// What one look at the replica decided.
struct Plan {
    condition: Value,
    switches: Vec<LogicalSwitch>,
    underlay: Option<Underlay>,
    acls: AclConfig,
    /// SB transaction for registration, claims and releases (may be empty).
    txn: Transaction,
    nb_cfg: i64,
    private: Option<(Uuid, i64)>,
    /// Port_Bindings bound here.
    claimed: u64,
}

/// One round; Ok(true) if the monitor condition had to change first.
async fn step(
    cfg: &ControllerConfig,
    sb: &Idl,
    dp: &dyn Dataplane,
    condition: &mut Value,
    status: &Status,
) -> Result<bool, ClientError> {
    use std::sync::atomic::Ordering::Relaxed;
    let bindings = dp.bindings();
    let uplink = dp.uplink();
    let plan = sb.read(|r| plan(cfg, r, &bindings, uplink, &|n| dp.provider_port(n), status));
    if plan.condition != *condition {
        sb.set_condition("Port_Binding", Some(plan.condition.clone()))
            .await?;
        *condition = plan.condition;
        return Ok(true);
    }
    let installed = dp.install(plan.switches, plan.underlay, plan.acls);
    match installed {
        Ok(true) => tracing::info!("forwarding tables updated from SB"),
        Ok(false) => {}
        Err(e) => tracing::error!("SB describes tables the dataplane rejects: {e}"),
    }
    if !plan.txn.is_empty() {
        sb.transact(&plan.txn).await?;
    }
    status.claimed.store(plan.claimed, Relaxed);
    if let Some((u, have)) = plan.private {
        status.nb_cfg.store(have.max(plan.nb_cfg), Relaxed);
        if have != plan.nb_cfg {
            let mut t = Transaction::new(SB);
            t.update(
                "Chassis_Private",
                by_uuid(u),
                [
                    ("nb_cfg", json!(plan.nb_cfg)),
                    ("nb_cfg_timestamp", json!(now_ms())),
                ],
            );
            sb.transact(&t).await?;
        }
    }
    Ok(false)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads the replica: the condition it calls for, the tables, and the SB
/// writes this chassis owes.
fn plan(
    cfg: &ControllerConfig,
    r: &Replica,
    bindings: &[LocalBinding],
    uplink: Option<UplinkPort>,
    provider_port: &dyn Fn(&str) -> Option<PortId>,
    status: &Status,
) -> Plan {
    let mut txn = Transaction::new(SB);
    let me = r
        .table("Chassis")
        .find(|(_, c)| c.string("name") == cfg.chassis);
    // Registration: Chassis with its Encaps, and Chassis_Private.
    let chassis_ref = match &me {
        Some((u, row)) => {
            let have: Vec<EncapConfig> = row
                .uuids("encaps")
                .iter()
                .filter_map(|e| r.get("Encap", e))
                .map(|e| EncapConfig {
                    encap_type: e.string("type"),
                    ip: e.string("ip"),
                })
                .collect();
            let same = have.len() == cfg.encaps.len()
                && cfg.encaps.iter().all(|e| have.contains(e))
                && row.string("hostname") == cfg.hostname;
            if !same {
                let encaps = insert_encaps(cfg, &mut txn);
                txn.update(
                    "Chassis",
                    by_uuid(*u),
                    [("hostname", json!(cfg.hostname)), ("encaps", refs(&encaps))],
                );
            }
            ovsdb::client::RowId::Existing(*u)
        }
        None => {
            let encaps = insert_encaps(cfg, &mut txn);
            txn.insert(
                "Chassis",
                [
                    ("name", json!(cfg.chassis)),
                    ("hostname", json!(cfg.hostname)),
                    ("encaps", refs(&encaps)),
                ],
            )
        }
    };
    let private = r
        .table("Chassis_Private")
        .find(|(_, p)| p.string("name") == cfg.chassis)
        .map(|(u, p)| (u, p.integer("nb_cfg"), p.opt_uuid("chassis")));
    match &private {
        None => {
            txn.insert(
                "Chassis_Private",
                [
                    ("name", json!(cfg.chassis)),
                    ("chassis", chassis_ref.to_json()),
                ],
            );
        }
        Some((u, _, c)) if c.is_none() || me.as_ref().map(|m| m.0) != *c => {
            txn.update(
                "Chassis_Private",
                by_uuid(*u),
                [("chassis", chassis_ref.to_json())],
            );
        }
        Some(_) => {}
    }
    let me_uuid = me.as_ref().map(|m| m.0);

    let local: HashMap<&str, PortId> = bindings
        .iter()
        .map(|b| (b.iface_id.as_str(), b.port))
        .collect();
    let iface_ids: HashSet<String> = bindings.iter().map(|b| b.iface_id.clone()).collect();
    // A port is bound here if its iface-id is local and it is not pinned to
    // another chassis (options:requested-chassis).
    let bound_here = |pb: &ovsdb::client::RowRef<'_>| -> Option<PortId> {
        let p = *local.get(pb.string("logical_port").as_str())?;
        match pb.string_map("options").get("requested-chassis") {
            Some(c) if *c != cfg.chassis && *c != cfg.hostname => None,
            _ => Some(p),
        }
    };
    let mut datapaths: HashSet<Uuid> = HashSet::new();
    for (_, pb) in r.table("Port_Binding") {
        if bound_here(&pb).is_some() {
            if let Some(d) = pb.opt_uuid("datapath") {
                datapaths.insert(d);
            }
        }
    }
    let condition = port_binding_condition(&iface_ids, &datapaths, me_uuid);

    // Claims and releases (only once the Chassis row exists).
    let mut claimed = 0;
    if let Some(me) = me_uuid {
        for (u, pb) in r.table("Port_Binding") {
            let ours = pb.opt_uuid("chassis") == Some(me);
            let here = bound_here(&pb).is_some();
            claimed += u64::from(here);
            if here && (!ours || pb.opt_bool("up") != Some(true)) {
                txn.update(
                    "Port_Binding",
                    by_uuid(u),
                    [("chassis", uuid(me)), ("up", json!(true))],
                );
            } else if ours && !here {
                txn.update(
                    "Port_Binding",
                    by_uuid(u),
                    [("chassis", set::<Value>([])), ("up", json!(false))],
                );
            }
        }
    }

    // The tunnel mesh: every other chassis with an encapsulation we speak
    // (in our order of preference), if we have an uplink and an endpoint.
    let our_ip: Option<std::net::IpAddr> = cfg.encaps.first().and_then(|e| e.ip.parse().ok());
    let mut chassis_index: HashMap<Uuid, u16> = HashMap::new();
    let underlay = match (uplink, our_ip) {
        (Some(up), Some(ip)) => {
            let mut remote = Vec::new();
            let mut others: Vec<_> = r
                .table("Chassis")
                .filter(|(u, _)| Some(*u) != me_uuid)
                .collect();
            others.sort_by_key(|(_, c)| c.string("name"));
            for (u, c) in others {
                let encaps: Vec<_> = c
                    .uuids("encaps")
                    .iter()
                    .filter_map(|e| r.get("Encap", e))
                    .collect();
                let pick = cfg.encaps.iter().find_map(|want| {
                    encaps
                        .iter()
                        .find(|e| e.string("type") == want.encap_type)
                        .and_then(|e| {
                            let encap = match want.encap_type.as_str() {
                                "geneve" => Encap::Geneve,
                                "vxlan" => Encap::Vxlan,
                                _ => return None,
                            };
                            let ip = e.string("ip").parse::<std::net::IpAddr>().ok()?;
                            // ovn-controller's rule: outer UDP checksums to
                            // an endpoint whose Encap asks for them.
                            let csum = e.string_map("options").get("csum").map(String::as_str)
                                == Some("true");
                            Some((encap, ip, csum))
                        })
                });
                let Some((encap, rip, csum)) = pick else {
                    tracing::warn!(chassis = %c.string("name"), "no common tunnel type: its ports are unreachable");
                    continue;
                };
                if rip.is_ipv4() != ip.is_ipv4() {
                    tracing::warn!(chassis = %c.string("name"), endpoint = %rip, ours = %ip, "tunnel endpoint of another IP family: its ports are unreachable");
                    continue;
                }
                chassis_index.insert(u, remote.len() as u16);
                remote.push(RemoteChassis {
                    name: c.string("name"),
                    ip: rip,
                    encap,
                    mac: cfg
                        .static_neighbors
                        .iter()
                        .find(|(i, _)| *i == rip)
                        .map(|(_, m)| *m),
                    vtep: !c.strings("vtep_logical_switches").is_empty(),
                    csum,
                });
            }
            Some(Underlay {
                port: up.port,
                ip,
                mac: up.mac,
                mtu: up.mtu,
                chassis: remote,
            })
        }
        _ => None,
    };

    // The forwarding tables: every port of every local datapath.
    let mut by_dp: BTreeMap<i64, (String, Vec<LogicalPort>)> = BTreeMap::new();
    let mut dp_names: HashMap<Uuid, String> = HashMap::new();
    for d in &datapaths {
        if let Some(row) = r.get("Datapath_Binding", d) {
            let key = row.integer("tunnel_key");
            let name = row
                .string_map("external_ids")
                .get("name")
                .cloned()
                .unwrap_or_else(|| format!("datapath{key}"));
            dp_names.insert(*d, name.clone());
            by_dp.insert(key, (name, Vec::new()));
        }
    }
    let acls = acl::config(r, &dp_names, &status.acls_rejected);
    let dp_key: HashMap<Uuid, i64> = datapaths
        .iter()
        .filter_map(|d| {
            r.get("Datapath_Binding", d)
                .map(|row| (*d, row.integer("tunnel_key")))
        })
        .collect();
    for (_, pb) in r.table("Port_Binding") {
        let Some(key) = pb.opt_uuid("datapath").and_then(|d| dp_key.get(&d)) else {
            continue;
        };
        let port_type = match pb.string("type").as_str() {
            "" => PortType::Vif,
            "localnet" => PortType::Localnet,
            // Patch ports (router links) and other types need the router
            // pipeline, which this dataplane does not have yet.
            _ => continue,
        };
        let name = pb.string("logical_port");
        let addresses = pb
            .strings("mac")
            .iter()
            .filter_map(|a| match a.parse::<Address>() {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(port = %name, "ignoring address: {e}");
                    None
                }
            })
            .collect();
        let port_security = pb
            .strings("port_security")
            .iter()
            .filter_map(|a| match a.parse::<MacIps>() {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(port = %name, "ignoring port security entry: {e}");
                    None
                }
            })
            .collect();
        // A localnet port is bound on every chassis that has its physical
        // network; VIFs where their iface-id is.
        let (local_port, vlan) = match port_type {
            PortType::Localnet => (
                pb.string_map("options")
                    .get("network_name")
                    .and_then(|n| provider_port(n)),
                pb.opt_integer("tag").and_then(|t| u16::try_from(t).ok()),
            ),
            PortType::Vif => (bound_here(&pb), None),
        };
        let chassis = match local_port {
            Some(_) => None,
            None => pb
                .opt_uuid("chassis")
                .and_then(|c| chassis_index.get(&c).copied())
                .map(dataplane::ids::ChassisIdx),
        };
        if let Some((_, ports)) = by_dp.get_mut(key) {
            ports.push(LogicalPort {
                name,
                tunnel_key: pb.integer("tunnel_key") as u32,
                port_type,
                addresses,
                port_security,
                local_port,
                chassis,
                vlan,
            });
        }
    }
    let switches = by_dp
        .into_iter()
        .map(|(key, (name, mut ports))| {
            ports.sort_by_key(|p| p.tunnel_key);
            LogicalSwitch {
                name,
                tunnel_key: key as u32,
                ports,
            }
        })
        .collect();
    let nb_cfg = r
        .table("SB_Global")
        .next()
        .map_or(0, |(_, g)| g.integer("nb_cfg"));
    Plan {
        condition,
        switches,
        underlay,
        acls,
        txn,
        nb_cfg,
        private: private.map(|(u, n, _)| (u, n)),
        claimed,
    }
}

fn insert_encaps(cfg: &ControllerConfig, txn: &mut Transaction) -> Vec<ovsdb::client::RowId> {
    cfg.encaps
        .iter()
        .map(|e| {
            txn.insert(
                "Encap",
                [
                    ("type", json!(e.encap_type)),
                    ("ip", json!(e.ip)),
                    ("chassis_name", json!(cfg.chassis)),
                    ("options", map([("csum", "true")])),
                ],
            )
        })
        .collect()
}
