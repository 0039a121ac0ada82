//! Forwarding tables: the typed API that programs the dataplane, and the
//! compiled, immutable snapshot the workers read.
//!
//! The control plane (today a configuration file, later the chassis
//! controller) describes logical switches and ports with [`LogicalSwitch`] and
//! [`LogicalPort`]; [`Tables::compile`] validates them and builds the lookup
//! structures (static MAC table, ARP/ND responder entries, flood lists, port
//! security, and for a chassis with tunnels the [`Underlay`]: the uplink, our
//! endpoint, the remote chassis and which ports they host). Workers never see a half-built table: a [`TablePublisher`]
//! swaps whole snapshots atomically and bumps a generation number that also
//! invalidates the per-worker flow caches.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashMap;

use crate::ids::{ChassisIdx, DatapathIdx, LportIdx, PortId};
use crate::pipeline::chassis_mac::{ChassisMacs, FromPhysical};
use crate::wire::MacAddr;

mod addresses;

pub use addresses::{Address, Ipv4Cidr, Ipv6Cidr, MacIps};

/// Errors in a table description.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    #[error("invalid address entry {entry:?}: {why}")]
    BadAddress { entry: String, why: String },
    #[error("duplicate logical port name {0:?}")]
    DuplicatePort(String),
    #[error("duplicate logical switch {0:?}")]
    DuplicateSwitch(String),
    #[error("duplicate tunnel key {key} on logical switch {switch:?}")]
    DuplicateTunnelKey { switch: String, key: u32 },
    #[error("local port {port} is bound to both {first:?} and {second:?}")]
    DoubleBinding {
        port: PortId,
        first: String,
        second: String,
    },
    #[error("port {port:?} names remote chassis {chassis}, which the underlay does not have (or the port is also local)")]
    BadChassis { port: String, chassis: u16 },
    #[error("remote chassis {chassis:?} has tunnel endpoint {ip}, not of our endpoint's family ({ours})")]
    EndpointFamily {
        chassis: String,
        ip: IpAddr,
        ours: IpAddr,
    },
    #[error("MAC {mac} is claimed by both {first:?} and {second:?} on switch {switch:?}")]
    DuplicateMac {
        switch: String,
        mac: MacAddr,
        first: String,
        second: String,
    },
}

/// What a logical port is, as OVN's `Logical_Switch_Port.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PortType {
    /// A VM or container interface ("").
    #[default]
    Vif,
    /// A bridge to a physical network ("localnet"): ARP/ND requests that
    /// arrive on it are not answered by the switch.
    Localnet,
    /// One end of a patch to a logical router port ("router"): what the
    /// switch sends to it enters the router pipeline.
    Router,
}

/// A tunnel encapsulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    Geneve,
    Vxlan,
}

/// Another chassis, reached through a tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteChassis {
    /// SB Chassis name.
    pub name: String,
    /// Its tunnel endpoint (the same family as ours, [`Underlay::ip`]).
    pub ip: IpAddr,
    pub encap: Encap,
    /// A static neighbour entry for `ip` (else learned by ARP or ND on the
    /// uplink).
    pub mac: Option<MacAddr>,
    /// A plain VTEP (OVN's `vtep_logical_switches`, a hardware gateway or a
    /// kernel VXLAN device): its VNI is the datapath key alone, and the
    /// receiver looks the destination up itself.
    pub vtep: bool,
    /// Its `Encap` row asks for outer UDP checksums (`options:csum=true`):
    /// tunnel packets to it over IPv4 carry one (over IPv6 they always do).
    pub csum: bool,
}

/// This chassis on the underlay network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Underlay {
    /// The uplink: the local port facing the physical network.
    pub port: PortId,
    /// Our tunnel endpoint address, IPv4 or IPv6 (the dataplane answers ARP
    /// or neighbour solicitations for it).
    pub ip: IpAddr,
    /// The uplink's MAC, the source of our tunnel packets.
    pub mac: MacAddr,
    /// The underlay's MTU (the largest outer IP packet); inner packets that
    /// would exceed it get "fragmentation needed" / "packet too big".
    pub mtu: u16,
    /// The chassis tunnels go to (indexed by [`LogicalPort::chassis`]).
    pub chassis: Vec<RemoteChassis>,
}

/// A logical switch port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalPort {
    pub name: String,
    /// OVN tunnel key of the port within its datapath.
    pub tunnel_key: u32,
    pub port_type: PortType,
    pub addresses: Vec<Address>,
    /// Empty: no port security.
    pub port_security: Vec<MacIps>,
    /// The local port this logical port is bound to on this chassis.
    pub local_port: Option<PortId>,
    /// Index into [`Underlay::chassis`] of the chassis the port is bound
    /// to, when that is another chassis.
    pub chassis: Option<ChassisIdx>,
    /// A localnet port's VLAN (OVN's `tag`): frames leave its local port
    /// tagged with it and must arrive tagged with it. None: a flat network.
    pub vlan: Option<u16>,
    /// A localnet port's chassis MACs (OVN's `ovn-chassis-mac-mappings`).
    pub chassis_macs: ChassisMacs,
}

impl LogicalPort {
    /// A VM port (OVN type "") with one address entry, bound nowhere yet.
    /// `secured`: port security is that same entry, as `ovn-nbctl
    /// lsp-set-port-security` with the address string (none for
    /// "unknown").
    pub fn vif(name: impl Into<String>, tunnel_key: u32, address: Address, secured: bool) -> Self {
        let port_security = match &address {
            Address::Known(m) if secured => vec![m.clone()],
            _ => vec![],
        };
        LogicalPort {
            name: name.into(),
            tunnel_key,
            port_type: PortType::Vif,
            addresses: vec![address],
            port_security,
            local_port: None,
            chassis: None,
            vlan: None,
            chassis_macs: ChassisMacs::default(),
        }
    }
}

/// A logical switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalSwitch {
    pub name: String,
    /// OVN datapath tunnel key.
    pub tunnel_key: u32,
    pub ports: Vec<LogicalPort>,
}

/// Port security of one logical port, compiled for the fast path.
#[derive(Clone, Debug, Default)]
pub struct PortSecurity {
    pub enabled: bool,
    pub entries: Vec<MacIps>,
}

impl PortSecurity {
    /// The entry whose MAC is `mac`, if port security allows that MAC.
    #[inline]
    pub fn entry(&self, mac: MacAddr) -> Option<&MacIps> {
        self.entries.iter().find(|e| e.mac == mac)
    }
}

/// A compiled logical port.
#[derive(Clone, Debug)]
pub struct Lport {
    pub name: String,
    pub tunnel_key: u32,
    pub port_type: PortType,
    pub datapath: DatapathIdx,
    pub local_port: Option<PortId>,
    /// The remote chassis it is bound to.
    pub chassis: Option<ChassisIdx>,
    /// A localnet port's VLAN.
    pub vlan: Option<u16>,
    /// A localnet port's chassis MACs.
    pub chassis_macs: ChassisMacs,
    pub port_security: PortSecurity,
    pub macs: Vec<MacAddr>,
}

/// A compiled logical datapath (switch).
#[derive(Clone, Debug)]
pub struct Datapath {
    pub name: String,
    pub tunnel_key: u32,
    /// Every port, for broadcast/multicast flooding.
    pub ports: Vec<LportIdx>,
    /// Ports with "unknown" addresses, for unknown unicast.
    pub unknown: Vec<LportIdx>,
    /// Remote chassis with ports of this datapath (flood copies go there).
    pub remote_chassis: Vec<ChassisIdx>,
    /// Remote chassis with "unknown" ports of this datapath.
    pub remote_unknown: Vec<ChassisIdx>,
    /// The localnet port bound on this chassis, if any: traffic to ports on
    /// other chassis goes over the physical network through it, not
    /// through tunnels (as in OVN).
    pub localnet: Option<LportIdx>,
    /// Port tunnel key → logical port (the egress a tunnel packet names).
    pub ports_by_key: KeyIndex,
}

/// An ARP/ND responder entry: the owner of an address on a datapath.
#[derive(Clone, Copy, Debug)]
pub struct Neighbor {
    pub mac: MacAddr,
    pub lport: LportIdx,
}

/// One immutable snapshot of every forwarding table.
#[derive(Debug, Default)]
pub struct Tables {
    pub datapaths: Vec<Datapath>,
    pub lports: Vec<Lport>,
    /// Local port → logical port, if bound.
    pub by_local_port: Vec<Option<LportIdx>>,
    /// (datapath, MAC) → logical port.
    pub macs: HashMap<u64, LportIdx>,
    /// (datapath, IPv4) → owner, for the ARP responder.
    pub arp: HashMap<(DatapathIdx, Ipv4Addr), Neighbor>,
    /// (datapath, IPv6) → owner, for the ND responder.
    pub nd: HashMap<(DatapathIdx, Ipv6Addr), Neighbor>,
    pub lport_by_name: HashMap<String, LportIdx>,
    /// The underlay, when this chassis has tunnels.
    pub underlay: Option<Underlay>,
    /// Datapath tunnel key → datapath index.
    pub datapath_by_key: KeyIndex,
    /// Per logical port: the keys a tunnel packet carries for it.
    pub tunnel_ids: Vec<TunnelIds>,
    /// Per local port: the VLAN its frames carry (localnet ports on a VLAN
    /// provider network), indexed by [`PortId`].
    pub port_vlan: Vec<Option<u16>>,
    /// Per local port: the chassis MACs its frames may come from and the
    /// router port MAC that replaces them (localnet ports of switches with
    /// a router port, when other chassis have MACs on the network).
    pub chassis_mac_in: Vec<Option<FromPhysical>>,
    /// The compiled ACLs and the conntrack they use (empty: no ACLs, all
    /// allowed), installed by [`Tables::install_acls`].
    pub acls: crate::classifier::AclTables,
    /// The logical routers ([`Tables::with_routers`]).
    pub routers: crate::routes::Routers,
    /// By local port: the flow key its packets get, from the stages its
    /// datapath runs ([`Tables::key_kind`]).
    key_kinds: Vec<crate::pipeline::KeyKind>,
}

/// A logical port's identity in a tunnel packet (OVN's encoding): its
/// datapath's tunnel key and its own, the widths the wire carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelIds {
    pub datapath_key: u32,
    pub port_key: u16,
}

/// Tunnel keys to indices: a direct-indexed table for the small keys OVN
/// allocates (from 1 up), a hash map for any beyond, so the per-packet
/// lookups on decapsulation are usually one load each.
#[derive(Clone, Debug, Default)]
pub struct KeyIndex {
    dense: Vec<u32>,
    sparse: HashMap<u32, u32>,
}

impl KeyIndex {
    /// Keys below this are direct-indexed (a table of at most 16 KiB).
    const DENSE_KEYS: u32 = 1 << 12;
    const ABSENT: u32 = u32::MAX;

    pub fn insert(&mut self, key: u32, index: u32) {
        if key < Self::DENSE_KEYS && index != Self::ABSENT {
            let k = key as usize;
            if self.dense.len() <= k {
                self.dense.resize(k + 1, Self::ABSENT);
            }
            self.dense[k] = index;
        } else {
            self.sparse.insert(key, index);
        }
    }

    #[inline]
    pub fn get(&self, key: u32) -> Option<u32> {
        match self.dense.get(key as usize) {
            Some(&Self::ABSENT) => None,
            Some(&i) => Some(i),
            None if self.sparse.is_empty() => None,
            None => self.sparse.get(&key).copied(),
        }
    }
}

/// Key of the static MAC table.
#[inline]
pub fn mac_key(datapath: DatapathIdx, mac: MacAddr) -> u64 {
    let m = mac.0;
    (u64::from(datapath.0) << 48) | u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

impl Tables {
    /// The flow key of packets from local port `p`: a switch without ACLs
    /// or routers keys the fewest fields, so it pays for none it does not
    /// read.
    #[inline(always)]
    pub fn key_kind(&self, p: PortId) -> crate::pipeline::KeyKind {
        self.key_kinds
            .get(p.get())
            .copied()
            .unwrap_or(crate::pipeline::KeyKind::Switch)
    }

    /// Recomputes [`Tables::key_kind`] (after routers or ACLs changed): a
    /// port's key holds what its datapath's stages read. A switch with
    /// ACLs is keyed with the L4 fields, first for every L4 port if they
    /// are stateful; so is every switch that shares a router with one
    /// (routed traffic meets the destination's to-lport ACLs on the
    /// sender's chassis), as the most demanding of them.
    pub(crate) fn refresh_key_kinds(&mut self) {
        use crate::pipeline::KeyKind;
        let mut by_dp: Vec<Option<KeyKind>> = (0..self.datapaths.len())
            .map(|d| {
                let a = self.acls.datapath(DatapathIdx(d as u16))?;
                Some(if a.stateful {
                    KeyKind::Stateful
                } else {
                    KeyKind::Acl
                })
            })
            .collect();
        let rs = &self.routers;
        for r in 0..rs.routers.len() {
            let switches = || {
                rs.ports
                    .iter()
                    .filter(move |p| p.router == r)
                    .map(|p| p.switch.get())
            };
            let joined = switches().filter_map(|d| by_dp[d]).reduce(|a, b| {
                if a == KeyKind::Stateful {
                    a
                } else {
                    b
                }
            });
            if let Some(k) = joined {
                for d in switches() {
                    if by_dp[d] != Some(KeyKind::Stateful) {
                        by_dp[d] = Some(k);
                    }
                }
            }
        }
        self.key_kinds = (0..self.by_local_port.len())
            .map(|p| {
                let Some(l) = self.by_local_port[p] else {
                    return KeyKind::Switch;
                };
                let dp = self.lport(l).datapath;
                let routed = self
                    .datapath(dp)
                    .ports
                    .iter()
                    .any(|&q| self.lport(q).port_type == PortType::Router);
                match by_dp[dp.get()] {
                    Some(k) => k,
                    None if routed => KeyKind::Routed,
                    None => KeyKind::Switch,
                }
            })
            .collect();
    }

    /// Validates and compiles a description of logical switches.
    pub fn compile(switches: &[LogicalSwitch]) -> Result<Tables, TableError> {
        Self::compile_with_underlay(switches, None)
    }

    /// Like [`Tables::compile`], for a chassis with tunnels to others.
    pub fn compile_with_underlay(
        switches: &[LogicalSwitch],
        underlay: Option<Underlay>,
    ) -> Result<Tables, TableError> {
        let n_chassis = underlay.as_ref().map_or(0, |u| u.chassis.len());
        if let Some(u) = &underlay {
            if let Some(c) = u.chassis.iter().find(|c| c.ip.is_ipv4() != u.ip.is_ipv4()) {
                return Err(TableError::EndpointFamily {
                    chassis: c.name.clone(),
                    ip: c.ip,
                    ours: u.ip,
                });
            }
        }
        let mut t = Tables::default();
        let mut switch_names = hashbrown::HashSet::new();
        for (dp_idx, ls) in switches.iter().enumerate() {
            if !switch_names.insert(ls.name.as_str()) {
                return Err(TableError::DuplicateSwitch(ls.name.clone()));
            }
            let dp_idx = DatapathIdx(dp_idx as u16);
            let mut dp = Datapath {
                name: ls.name.clone(),
                tunnel_key: ls.tunnel_key,
                ports: Vec::new(),
                unknown: Vec::new(),
                remote_chassis: Vec::new(),
                remote_unknown: Vec::new(),
                localnet: None,
                ports_by_key: KeyIndex::default(),
            };
            t.datapath_by_key.insert(ls.tunnel_key, u32::from(dp_idx.0));
            let mut keys = hashbrown::HashSet::new();
            for lp in &ls.ports {
                let idx = LportIdx(t.lports.len() as u32);
                if t.lport_by_name.insert(lp.name.clone(), idx).is_some() {
                    return Err(TableError::DuplicatePort(lp.name.clone()));
                }
                if !keys.insert(lp.tunnel_key) {
                    return Err(TableError::DuplicateTunnelKey {
                        switch: ls.name.clone(),
                        key: lp.tunnel_key,
                    });
                }
                dp.ports_by_key.insert(lp.tunnel_key, idx.0);
                let chassis = match lp.chassis {
                    Some(c) if c.get() < n_chassis && lp.local_port.is_none() => Some(c),
                    Some(c) => {
                        return Err(TableError::BadChassis {
                            port: lp.name.clone(),
                            chassis: c.0,
                        })
                    }
                    None => None,
                };
                if let Some(c) = chassis {
                    if !dp.remote_chassis.contains(&c) {
                        dp.remote_chassis.push(c);
                    }
                    if lp.addresses.contains(&Address::Unknown) && !dp.remote_unknown.contains(&c) {
                        dp.remote_unknown.push(c);
                    }
                }
                let mut macs = Vec::new();
                for a in &lp.addresses {
                    match a {
                        Address::Unknown if chassis.is_some() => {}
                        Address::Unknown => dp.unknown.push(idx),
                        Address::Known(m) => {
                            macs.push(m.mac);
                            if let Some(prev) = t.macs.insert(mac_key(dp_idx, m.mac), idx) {
                                return Err(TableError::DuplicateMac {
                                    switch: ls.name.clone(),
                                    mac: m.mac,
                                    first: t.lports[prev.get()].name.clone(),
                                    second: lp.name.clone(),
                                });
                            }
                            let owner = Neighbor {
                                mac: m.mac,
                                lport: idx,
                            };
                            for ip in &m.ipv4 {
                                t.arp.insert((dp_idx, ip.addr), owner);
                            }
                            for ip in &m.ipv6 {
                                t.nd.insert((dp_idx, ip.addr), owner);
                            }
                            // A router port also owns its link-local
                            // address (OVN's `extract_lrp_networks` adds
                            // it to every router port's networks).
                            if lp.port_type == PortType::Router {
                                let lla = crate::pipeline::link_local(m.mac);
                                t.nd.insert((dp_idx, lla), owner);
                            }
                        }
                    }
                }
                if let (PortType::Localnet, Some(p)) = (lp.port_type, lp.local_port) {
                    dp.localnet = Some(idx);
                    let p = p.get();
                    if t.port_vlan.len() <= p {
                        t.port_vlan.resize(p + 1, None);
                    }
                    t.port_vlan[p] = lp.vlan;
                }
                if let Some(p) = lp.local_port {
                    let p = p.get();
                    if t.by_local_port.len() <= p {
                        t.by_local_port.resize(p + 1, None);
                    }
                    if let Some(first) = t.by_local_port[p] {
                        return Err(TableError::DoubleBinding {
                            port: PortId(p as u16),
                            first: t.lports[first.get()].name.clone(),
                            second: lp.name.clone(),
                        });
                    }
                    t.by_local_port[p] = Some(idx);
                }
                dp.ports.push(idx);
                t.tunnel_ids.push(TunnelIds {
                    datapath_key: ls.tunnel_key,
                    port_key: lp.tunnel_key as u16,
                });
                t.lports.push(Lport {
                    name: lp.name.clone(),
                    tunnel_key: lp.tunnel_key,
                    port_type: lp.port_type,
                    datapath: dp_idx,
                    local_port: lp.local_port,
                    chassis,
                    vlan: lp.vlan,
                    chassis_macs: lp.chassis_macs.clone(),
                    port_security: PortSecurity {
                        enabled: !lp.port_security.is_empty(),
                        entries: lp.port_security.clone(),
                    },
                    macs,
                });
            }
            t.datapaths.push(dp);
        }
        t.underlay = underlay;
        t.refresh_key_kinds();
        Ok(t)
    }

    /// The datapath (index) whose tunnel key is `key`, if it is here.
    #[inline]
    pub fn datapath_of_key(&self, key: u32) -> Option<DatapathIdx> {
        self.datapath_by_key.get(key).map(|d| DatapathIdx(d as u16))
    }

    /// The logical port bound to local port `port`, if any.
    #[inline]
    pub fn lport_of(&self, port: PortId) -> Option<LportIdx> {
        self.by_local_port.get(port.get()).copied().flatten()
    }

    /// Logical port `i`.
    #[inline(always)]
    pub fn lport(&self, i: LportIdx) -> &Lport {
        &self.lports[i.get()]
    }

    /// Datapath `d`.
    #[inline(always)]
    pub fn datapath(&self, d: DatapathIdx) -> &Datapath {
        &self.datapaths[d.get()]
    }
}

/// Publishes table snapshots to the workers without ever blocking them.
///
/// Workers check [`TablePublisher::generation`] once per burst (one relaxed
/// atomic load) and reload the snapshot only when it changed.
pub struct TablePublisher {
    current: ArcSwap<Tables>,
    generation: AtomicU64,
}

impl TablePublisher {
    /// A publisher starting with `tables` as generation 1.
    pub fn new(tables: Tables) -> Arc<Self> {
        Arc::new(TablePublisher {
            current: ArcSwap::from_pointee(tables),
            generation: AtomicU64::new(1),
        })
    }

    /// Swaps in a new snapshot; workers pick it up at their next burst.
    pub fn publish(&self, tables: Tables) -> u64 {
        self.current.store(Arc::new(tables));
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The current generation number.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current snapshot (and the generation it is at least as new as).
    pub fn load(&self) -> (u64, Arc<Tables>) {
        let g = self.generation();
        (g, self.current.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_index_finds_small_and_large_keys() {
        let mut k = KeyIndex::default();
        k.insert(1, 0);
        k.insert(7, 3);
        k.insert(1 << 20, 5);
        assert_eq!(
            (k.get(1), k.get(7), k.get(1 << 20)),
            (Some(0), Some(3), Some(5))
        );
        assert_eq!(
            (k.get(0), k.get(2), k.get(8), k.get(1 << 21)),
            (None, None, None, None)
        );
    }

    fn port(name: &str, key: u32, addr: &str, ps: &str, local: Option<PortId>) -> LogicalPort {
        LogicalPort {
            name: name.into(),
            tunnel_key: key,
            port_type: PortType::Vif,
            addresses: vec![addr.parse().unwrap()],
            port_security: if ps.is_empty() {
                vec![]
            } else {
                vec![ps.parse().unwrap()]
            },
            local_port: local,
            chassis: None,
            vlan: None,
            chassis_macs: Default::default(),
        }
    }

    #[test]
    fn parses_ovn_address_strings() {
        let a: Address = "00:00:00:00:00:01 10.0.0.1 fd00::1".parse().unwrap();
        let Address::Known(m) = a else { panic!() };
        assert_eq!(m.mac.to_string(), "00:00:00:00:00:01");
        assert_eq!(m.ipv4[0].addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(m.ipv6[0].prefix, 128);
        assert_eq!("unknown".parse::<Address>().unwrap(), Address::Unknown);
        let ps: MacIps = "00:00:00:00:00:01 10.0.0.0/24".parse().unwrap();
        assert!(ps.ipv4[0].contains(Ipv4Addr::new(10, 0, 0, 77)));
        assert!(!ps.ipv4[0].contains(Ipv4Addr::new(10, 0, 1, 1)));
        assert!("zz:00:00:00:00:01".parse::<Address>().is_err());
        assert!("00:00:00:00:00:01 10.0.0.1/33".parse::<Address>().is_err());
        assert!("00:00:00:00:00:01 banana".parse::<Address>().is_err());
    }

    #[test]
    fn compiles_mac_arp_and_bindings() {
        let ls = LogicalSwitch {
            name: "ls1".into(),
            tunnel_key: 1,
            ports: vec![
                port(
                    "vm1",
                    1,
                    "00:00:00:00:00:01 10.0.0.1",
                    "00:00:00:00:00:01 10.0.0.1",
                    Some(PortId(0)),
                ),
                port("vm2", 2, "00:00:00:00:00:02 10.0.0.2", "", Some(PortId(1))),
            ],
        };
        let t = Tables::compile(std::slice::from_ref(&ls)).unwrap();
        assert_eq!(t.lport_of(PortId(1)), Some(LportIdx(1)));
        assert_eq!(t.lport_of(PortId(7)), None);
        let m2: MacAddr = "00:00:00:00:00:02".parse().unwrap();
        assert_eq!(t.macs.get(&mac_key(DatapathIdx(0), m2)), Some(&LportIdx(1)));
        assert_eq!(
            t.arp[&(DatapathIdx(0), Ipv4Addr::new(10, 0, 0, 1))].lport,
            LportIdx(0)
        );
        assert!(t.lports[0].port_security.enabled);
        assert!(!t.lports[1].port_security.enabled);

        let mut dup = ls.clone();
        dup.ports[1].local_port = Some(PortId(0));
        assert!(matches!(
            Tables::compile(&[dup]),
            Err(TableError::DoubleBinding { .. })
        ));
        let mut dup = ls;
        dup.ports[1].addresses = dup.ports[0].addresses.clone();
        assert!(matches!(
            Tables::compile(&[dup]),
            Err(TableError::DuplicateMac { .. })
        ));
    }

    #[test]
    fn publisher_bumps_generation() {
        let p = TablePublisher::new(Tables::default());
        assert_eq!(p.generation(), 1);
        assert_eq!(p.publish(Tables::default()), 2);
        assert_eq!(p.load().0, 2);
    }
}
