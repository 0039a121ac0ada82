//! The northbound → southbound translation: what Datapath_Binding and
//! Port_Binding rows the NB contents call for.
//!
//! [`Desired`] holds the wanted SB rows, keyed by what identifies them
//! across restarts: a datapath by the NB uuid of its logical switch or
//! router (OVN's `external_ids:logical-switch` / `logical-router`), a port by
//! its logical port name. [`Desired::apply`] updates it from the NB rows that
//! changed and marks what it touched dirty; only dirty rows are compared
//! with SB. A resync (or [`Desired::recompute`]) rebuilds everything from
//! scratch and must arrive at the same rows (tested).
//!
//! Tunnel keys are allocated once and kept: a datapath or port already in
//! SB keeps its key (so a restarted northd-lite changes nothing), a new one
//! takes the next free key after the last one handed out (OVN's
//! `ovn_allocate_tnlid` with a hint), so a key freed by a delete is not
//! reused at once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ovsdb::client::{Changes, Replica, RowRef};
use uuid::Uuid;

/// OVN's datapath tunnel key range: 24 bits (VXLAN mode caps it at 4095).
pub const MAX_DP_KEY: i64 = (1 << 24) - 1;
/// Logical port keys: 15 bits (the Geneve option's ingress field); 32768 and
/// above are multicast groups.
pub const MAX_PORT_KEY: i64 = (1 << 15) - 1;

/// What a datapath implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpKind {
    Switch,
    Router,
}

impl DpKind {
    /// The `external_ids` key naming the NB row.
    pub fn id_key(self) -> &'static str {
        match self {
            DpKind::Switch => "logical-switch",
            DpKind::Router => "logical-router",
        }
    }
}

/// The router option (and SB `external_ids` key) that narrows neighbour
/// learning.
pub const LEARN_FROM_ARP_REQUEST: &str = "always_learn_from_arp_request";

/// A wanted Datapath_Binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datapath {
    pub kind: DpKind,
    pub name: String,
    pub tunnel_key: i64,
    /// A router's `options:always_learn_from_arp_request` (OVN's
    /// `smap_get_bool(…, true)`: false only if "false"), carried to SB as
    /// `Datapath_Binding.external_ids:always_learn_from_arp_request=false`
    /// for the chassis (OVN carries it only in logical flows).
    pub always_learn_from_arp_request: bool,
}

/// A wanted Port_Binding (the columns northd owns; `chassis`, `up` and
/// `encap` belong to the chassis controllers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// NB uuid of the owning switch or router.
    pub datapath: Uuid,
    pub port_type: String,
    pub tunnel_key: i64,
    /// Sorted, as OVSDB sets are.
    pub mac: Vec<String>,
    pub port_security: Vec<String>,
    pub options: BTreeMap<String, String>,
    pub tag: Option<i64>,
    pub parent_port: Option<String>,
    /// `options:requested-chassis`, resolved against SB Chassis when synced.
    pub requested_chassis: Option<String>,
}

/// Tunnel keys in use in one space, with the allocation hint.
#[derive(Clone, Debug, Default)]
struct Keys {
    used: HashSet<i64>,
    hint: i64,
}

impl Keys {
    fn allocate(&mut self, max: i64) -> Option<i64> {
        for i in 0..max {
            let k = (self.hint + i) % max + 1;
            if self.used.insert(k) {
                self.hint = k;
                return Some(k);
            }
        }
        None
    }
}

/// The wanted SB contents, and which of them changed since the last sync.
#[derive(Debug, Default)]
pub struct Desired {
    pub datapaths: HashMap<Uuid, Datapath>,
    pub ports: HashMap<String, Port>,
    /// NB datapath uuid → names of its ports.
    dp_ports: HashMap<Uuid, BTreeSet<String>>,
    /// NB port row uuid → (owner, logical port name).
    nb_ports: HashMap<Uuid, (Uuid, String)>,
    /// Logical port name → NB port row uuid.
    port_rows: HashMap<String, Uuid>,
    /// Logical router port name → NB uuid.
    lrp_by_name: HashMap<String, Uuid>,
    /// Logical router port name → switch ports of type "router" naming it.
    router_lsps: HashMap<String, BTreeSet<String>>,
    dp_keys: Keys,
    port_keys: HashMap<Uuid, Keys>,
    /// Datapaths (NB uuid) and ports (name) to compare with SB.
    pub dirty_datapaths: HashSet<Uuid>,
    pub dirty_ports: HashSet<String>,
}

/// Existing SB keys, so that rows keep theirs.
pub trait SbKeys {
    /// The tunnel key SB has for the datapath of NB row `nb`.
    fn datapath_key(&self, nb: &Uuid) -> Option<i64>;
    /// The tunnel key SB has for port `name`, if it is on the datapath of NB
    /// row `dp`.
    fn port_key(&self, name: &str, dp: &Uuid) -> Option<i64>;
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

impl Desired {
    /// The NB row of logical port `name`, if it is in a datapath.
    pub fn nb_port(&self, name: &str) -> Option<Uuid> {
        self.port_rows.get(name).copied()
    }

    /// Rebuilds every wanted row from `nb` (start-up, resync, and the
    /// reference the incremental path is tested against). Keys already
    /// handed out are kept.
    pub fn recompute(&mut self, nb: &Replica, sb: &dyn SbKeys) {
        let old_dps: Vec<Uuid> = self.datapaths.keys().copied().collect();
        let old_ports: Vec<String> = self.ports.keys().cloned().collect();
        self.dirty_datapaths.extend(old_dps);
        self.dirty_ports.extend(old_ports);
        let keep_dp: HashMap<Uuid, i64> = self
            .datapaths
            .iter()
            .map(|(u, d)| (*u, d.tunnel_key))
            .collect();
        let keep_port: HashMap<String, (Uuid, i64)> = self
            .ports
            .iter()
            .map(|(n, p)| (n.clone(), (p.datapath, p.tunnel_key)))
            .collect();
        let (dp_keys, port_keys) = (self.dp_keys.hint, std::mem::take(&mut self.port_keys));
        *self = Desired {
            dirty_datapaths: std::mem::take(&mut self.dirty_datapaths),
            dirty_ports: std::mem::take(&mut self.dirty_ports),
            ..Desired::default()
        };
        self.dp_keys.hint = dp_keys;
        // Reserve every key in use before building, so no new row takes one.
        for k in keep_dp.values() {
            self.dp_keys.used.insert(*k);
        }
        for (dp, k) in keep_port.values() {
            self.port_keys.entry(*dp).or_default().used.insert(*k);
        }
        for (dp, keys) in port_keys {
            self.port_keys.entry(dp).or_default().hint = keys.hint;
        }
        let kept = Kept {
            sb,
            dps: &keep_dp,
            ports: &keep_port,
        };
        for kind in [DpKind::Router, DpKind::Switch] {
            let table = match kind {
                DpKind::Switch => "Logical_Switch",
                DpKind::Router => "Logical_Router",
            };
            let uuids: Vec<Uuid> = nb.table(table).map(|(u, _)| u).collect();
            for u in uuids {
                self.rebuild_datapath(nb, &kept, kind, u);
            }
        }
    }

    /// Applies the NB rows that changed (`changes` from the NB replica).
    pub fn apply(&mut self, nb: &Replica, sb: &dyn SbKeys, changes: &Changes) {
        if changes.resync {
            self.recompute(nb, sb);
            return;
        }
        let none = HashMap::new();
        let no_ports = HashMap::new();
        let kept = Kept {
            sb,
            dps: &none,
            ports: &no_ports,
        };
        let mut rebuilt = HashSet::new();
        // Routers first, so switch ports of type "router" find their peers.
        for (kind, table) in [
            (DpKind::Router, "Logical_Router"),
            (DpKind::Switch, "Logical_Switch"),
        ] {
            for u in changes.table(table) {
                self.rebuild_datapath(nb, &kept, kind, *u);
                rebuilt.insert(*u);
            }
        }
        for table in ["Logical_Router_Port", "Logical_Switch_Port"] {
            for u in changes.table(table) {
                let Some((owner, _)) = self.nb_ports.get(u).cloned() else {
                    continue; // Not in any datapath (yet): its owner's change adds it.
                };
                if rebuilt.contains(&owner) || nb.get(table, u).is_none() {
                    continue;
                }
                let kind = self.datapaths[&owner].kind;
                self.rebuild_port(nb, &kept, kind, owner, *u);
            }
        }
    }

    fn rebuild_datapath(&mut self, nb: &Replica, kept: &Kept<'_>, kind: DpKind, u: Uuid) {
        let (table, port_table) = match kind {
            DpKind::Switch => ("Logical_Switch", "Logical_Switch_Port"),
            DpKind::Router => ("Logical_Router", "Logical_Router_Port"),
        };
        let Some(row) = nb.get(table, &u) else {
            self.remove_datapath(u);
            return;
        };
        let name = row.string("name");
        let tunnel_key = match self.datapaths.get(&u) {
            Some(d) => d.tunnel_key,
            None => match kept
                .dps
                .get(&u)
                .copied()
                .or_else(|| kept.sb.datapath_key(&u))
            {
                Some(k) => {
                    self.dp_keys.used.insert(k);
                    k
                }
                None => match self.dp_keys.allocate(MAX_DP_KEY) {
                    Some(k) => k,
                    None => {
                        tracing::error!(%name, "no datapath tunnel key left");
                        return;
                    }
                },
            },
        };
        let always_learn_from_arp_request = kind == DpKind::Switch
            || !row
                .string_map("options")
                .get(LEARN_FROM_ARP_REQUEST)
                .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let dp = Datapath {
            kind,
            name,
            tunnel_key,
            always_learn_from_arp_request,
        };
        if self.datapaths.get(&u) != Some(&dp) {
            self.datapaths.insert(u, dp);
            self.dirty_datapaths.insert(u);
        }
        let members = row.uuids("ports");
        // Ports that left this datapath.
        let now: HashSet<Uuid> = members.iter().copied().collect();
        let gone: Vec<Uuid> = self
            .dp_ports
            .get(&u)
            .into_iter()
            .flatten()
            .filter_map(|name| self.port_rows.get(name))
            .filter(|pu| !now.contains(pu))
            .copied()
            .collect();
        for pu in gone {
            self.remove_port(pu);
        }
        for pu in members {
            if nb.get(port_table, &pu).is_some() {
                self.rebuild_port(nb, kept, kind, u, pu);
            }
        }
    }

    fn remove_datapath(&mut self, u: Uuid) {
        let ports: Vec<Uuid> = self
            .dp_ports
            .get(&u)
            .into_iter()
            .flatten()
            .filter_map(|name| self.port_rows.get(name).copied())
            .collect();
        for p in ports {
            self.remove_port(p);
        }
        if let Some(d) = self.datapaths.remove(&u) {
            self.dp_keys.used.remove(&d.tunnel_key);
            self.dirty_datapaths.insert(u);
        }
        self.port_keys.remove(&u);
        self.dp_ports.remove(&u);
    }

    fn remove_port(&mut self, nb_uuid: Uuid) {
        let Some((owner, name)) = self.nb_ports.remove(&nb_uuid) else {
            return;
        };
        if let Some(p) = self.ports.get(&name).filter(|p| p.datapath == owner) {
            if let Some(k) = self.port_keys.get_mut(&owner) {
                k.used.remove(&p.tunnel_key);
            }
            if p.port_type == "patch" {
                if let Some(peer) = p.options.get("router-port") {
                    if let Some(s) = self.router_lsps.get_mut(peer) {
                        s.remove(&name);
                    }
                }
            }
            self.ports.remove(&name);
            self.dirty_ports.insert(name.clone());
        }
        if let Some(s) = self.dp_ports.get_mut(&owner) {
            s.remove(&name);
        }
        if self.lrp_by_name.get(&name) == Some(&nb_uuid) {
            self.lrp_by_name.remove(&name);
        }
        if self.port_rows.get(&name) == Some(&nb_uuid) {
            self.port_rows.remove(&name);
        }
    }

    fn rebuild_port(&mut self, nb: &Replica, kept: &Kept<'_>, kind: DpKind, dp: Uuid, pu: Uuid) {
        let table = match kind {
            DpKind::Switch => "Logical_Switch_Port",
            DpKind::Router => "Logical_Router_Port",
        };
        let Some(row) = nb.get(table, &pu) else {
            self.remove_port(pu);
            return;
        };
        let name = row.string("name");
        if let Some((owner, old)) = self.nb_ports.get(&pu).cloned() {
            if old != name || owner != dp {
                self.remove_port(pu); // Renamed or moved: the old binding goes.
            }
        }
        let mut port = match kind {
            DpKind::Switch => self.switch_port(nb, &row, &name),
            DpKind::Router => self.router_port(nb, &row, &name),
        };
        port.datapath = dp;
        port.tunnel_key = match self.ports.get(&name).filter(|p| p.datapath == dp) {
            Some(p) => p.tunnel_key,
            None => {
                let keys = self.port_keys.entry(dp).or_default();
                match kept
                    .ports
                    .get(&name)
                    .filter(|(d, _)| *d == dp)
                    .map(|(_, k)| *k)
                    .or_else(|| kept.sb.port_key(&name, &dp))
                {
                    Some(k) => {
                        keys.used.insert(k);
                        k
                    }
                    None => match keys.allocate(MAX_PORT_KEY) {
                        Some(k) => k,
                        None => {
                            tracing::error!(%name, "no port tunnel key left on its datapath");
                            return;
                        }
                    },
                }
            }
        };
        self.nb_ports.insert(pu, (dp, name.clone()));
        self.port_rows.insert(name.clone(), pu);
        self.dp_ports.entry(dp).or_default().insert(name.clone());
        if kind == DpKind::Router {
            self.lrp_by_name.insert(name.clone(), pu);
        }
        let peer_lrp = (port.port_type == "patch" && kind == DpKind::Switch)
            .then(|| port.options.get("router-port").cloned())
            .flatten();
        if self.ports.get(&name) != Some(&port) {
            self.ports.insert(name.clone(), port);
            self.dirty_ports.insert(name.clone());
        }
        // A router port's peer is the switch port naming it: refresh it.
        if let Some(lrp) = peer_lrp {
            let added = self
                .router_lsps
                .entry(lrp.clone())
                .or_default()
                .insert(name.clone());
            if let (true, Some(&lrp_uuid)) = (added, self.lrp_by_name.get(&lrp)) {
                if let Some((owner, _)) = self.nb_ports.get(&lrp_uuid).cloned() {
                    self.rebuild_port(nb, kept, DpKind::Router, owner, lrp_uuid);
                }
            }
        }
    }

    /// OVN's mapping of a Logical_Switch_Port: VIFs keep their addresses;
    /// a "router" port becomes one end of a patch, with the router port's
    /// MAC and networks for its "router" address.
    fn switch_port(&self, nb: &Replica, row: &RowRef<'_>, _name: &str) -> Port {
        let nb_type = row.string("type");
        let options = row.string_map("options");
        let (port_type, mut mac) = match nb_type.as_str() {
            "router" => {
                let lrp = options.get("router-port").cloned().unwrap_or_default();
                let lrp_addr = self
                    .lrp_by_name
                    .get(&lrp)
                    .and_then(|u| nb.get("Logical_Router_Port", u))
                    .map(|r| lrp_address(&r));
                let mac = row
                    .strings("addresses")
                    .into_iter()
                    .filter_map(|a| {
                        if a == "router" {
                            lrp_addr.clone()
                        } else {
                            Some(a)
                        }
                    })
                    .collect();
                ("patch".to_string(), mac)
            }
            _ => (nb_type, row.strings("addresses")),
        };
        // Without IPAM, "dynamic" addresses are not assigned: leave them out.
        mac.retain(|a| a != "dynamic");
        let requested_chassis = options.get("requested-chassis").cloned();
        let options: BTreeMap<String, String> = match port_type.as_str() {
            "patch" => options
                .get("router-port")
                .map(|p| {
                    [
                        ("peer".to_string(), p.clone()),
                        ("router-port".to_string(), p.clone()),
                    ]
                    .into()
                })
                .unwrap_or_default(),
            _ => options,
        };
        Port {
            datapath: Uuid::nil(),
            port_type,
            tunnel_key: 0,
            mac: sorted(mac),
            port_security: sorted(row.strings("port_security")),
            options,
            // A localnet port's VLAN, or a container port's: `tag_request`
            // as the CMS set it (`ovn-nbctl lsp-add SW PORT "" 100`).
            tag: row.opt_integer("tag").or(row.opt_integer("tag_request")),
            parent_port: row.opt_string("parent_name"),
            requested_chassis,
        }
    }

    /// A Logical_Router_Port: a patch whose peer is the switch port of type
    /// "router" naming it (or the router port in `peer`).
    fn router_port(&self, _nb: &Replica, row: &RowRef<'_>, name: &str) -> Port {
        let peer = row.opt_string("peer").or_else(|| {
            self.router_lsps
                .get(name)
                .and_then(|s| s.iter().next().cloned())
        });
        let mut options = BTreeMap::new();
        if let Some(p) = peer {
            options.insert("peer".to_string(), p);
        }
        Port {
            datapath: Uuid::nil(),
            port_type: "patch".to_string(),
            tunnel_key: 0,
            mac: vec![lrp_address(row)],
            port_security: Vec::new(),
            options,
            tag: None,
            parent_port: None,
            requested_chassis: None,
        }
    }
}

/// "MAC NETWORK..." of a router port, as OVN writes it into Port_Binding.mac.
fn lrp_address(row: &RowRef<'_>) -> String {
    let mut s = row.string("mac");
    let mut nets = row.strings("networks");
    nets.sort();
    for n in nets {
        s.push(' ');
        s.push_str(&n);
    }
    s
}

/// Keys to keep while rebuilding: this process's own, then SB's.
struct Kept<'a> {
    sb: &'a dyn SbKeys,
    dps: &'a HashMap<Uuid, i64>,
    ports: &'a HashMap<String, (Uuid, i64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_hint_and_skip_used_ones() {
        let mut k = Keys::default();
        assert_eq!(k.allocate(3), Some(1));
        k.used.insert(3);
        assert_eq!(k.allocate(3), Some(2));
        k.used.remove(&1);
        assert_eq!(k.allocate(3), Some(1));
        assert_eq!(k.allocate(3), None);
    }
}
