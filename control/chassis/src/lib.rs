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
//! Each round reads the typed rows of the SB replica once and plans in
//! steps, a module each, in this order: `register` (Chassis, Encaps,
//! Chassis_Private), `claim` (Port_Binding claims and the monitor condition
//! they call for), `mesh` (tunnels to the other chassis), `translate` (SB
//! rows -> the dataplane's tables) and [`unenforced`] (intent in SB this
//! node does not implement, reported instead of silently ignored). `plan`
//! strings them together; `controller` runs the rounds and applies a plan:
//! the monitor condition first, then the tables (off the async runtime, as
//! [`Dataplane::install`] blocks until the workers switch), then the SB
//! writes and the `nb_cfg` acknowledgement.
//!
//! ACLs, port groups and address sets of local datapaths come from SB's
//! typed tables ([`acl`]) and are installed with the forwarding tables.
//!
//! The dataplane is behind [`Dataplane`]; it keeps its tables when the
//! controller stops, and [`Dataplane::install`] only republishes when the
//! translation differs, so a restarted controller that finds SB as it left
//! it changes nothing, in SB or in forwarding.

pub mod acl;
pub mod chassis_mac;
mod claim;
mod controller;
mod mesh;
mod neighbor;
mod plan;
mod register;
mod router;
mod translate;
pub mod unenforced;

use dataplane::classifier::AclConfig;
use dataplane::ids::PortId;
use dataplane::routes::LogicalRouter;
use dataplane::tables::{LogicalSwitch, Underlay};
use dataplane::wire::MacAddr;
use ovsdb::client::Backoff;
use ovsdb::server::Remote;

pub use controller::{Controller, Status};
pub use unenforced::{Unenforced, UnenforcedKind};

/// The SB database's name.
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
    /// This chassis' MAC per physical network (OVN's
    /// `ovn-chassis-mac-mappings`; [`chassis_mac`]).
    pub chassis_macs: Vec<(String, MacAddr)>,
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
    /// What the routers learn from ARP and neighbour discovery, for the
    /// controller to put into its tables and SB `MAC_Binding`.
    fn neighbor_log(&self) -> std::sync::Arc<dataplane::neighbor_log::NeighborLog>;
    /// Compiles and publishes `switches` and the `routers` between them
    /// (and the tunnels of `underlay`, and the ACLs of `acls`) unless they
    /// equal what is installed;
    /// returns once every worker forwards with them (true if anything
    /// changed). It may block for seconds: the controller calls it on a
    /// blocking thread.
    fn install(
        &self,
        switches: Vec<LogicalSwitch>,
        routers: Vec<LogicalRouter>,
        underlay: Option<Underlay>,
        acls: AclConfig,
    ) -> Result<bool, String>;
}
