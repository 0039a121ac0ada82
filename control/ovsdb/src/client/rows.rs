//! Typed rows of the OVN NB and SB tables switchyard uses, read from a [`super::Replica`].
//!
//! [`RowRef`] reads columns of a replicated row by name with OVSDB's conventions (an optional
//! column is a set of zero or one element, absent columns read as empty). Each struct below is
//! one table's row with OVN's column names; [`TypedRow::from_row`] never fails, because a
//! server with an older schema simply lacks some columns.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::datum::{Atom, Datum};
use crate::schema::TableSchema;

/// Read access to one replicated row.
#[derive(Clone, Copy)]
pub struct RowRef<'a> {
    ts: &'a TableSchema,
    cols: &'a [Datum],
}

impl<'a> RowRef<'a> {
    pub fn new(ts: &'a TableSchema, cols: &'a [Datum]) -> Self {
        RowRef { ts, cols }
    }

    /// The raw value of a column, if the schema has it.
    pub fn datum(&self, column: &str) -> Option<&'a Datum> {
        self.ts.column(column).map(|i| &self.cols[i])
    }

    fn atoms(&self, column: &str) -> &'a [Atom] {
        self.datum(column).map_or(&[], |d| d.keys())
    }

    /// A string column (first element; "" when empty).
    pub fn string(&self, column: &str) -> String {
        self.opt_string(column).unwrap_or_default()
    }

    /// An optional string column.
    pub fn opt_string(&self, column: &str) -> Option<String> {
        self.atoms(column)
            .first()
            .and_then(Atom::as_str)
            .map(str::to_string)
    }

    /// A set-of-strings column.
    pub fn strings(&self, column: &str) -> Vec<String> {
        self.atoms(column)
            .iter()
            .filter_map(Atom::as_str)
            .map(str::to_string)
            .collect()
    }

    /// An integer column (0 when empty).
    pub fn integer(&self, column: &str) -> i64 {
        self.opt_integer(column).unwrap_or_default()
    }

    /// An optional integer column.
    pub fn opt_integer(&self, column: &str) -> Option<i64> {
        self.atoms(column).first().and_then(Atom::as_integer)
    }

    /// A set-of-integers column.
    pub fn integers(&self, column: &str) -> Vec<i64> {
        self.atoms(column)
            .iter()
            .filter_map(Atom::as_integer)
            .collect()
    }

    /// An optional boolean column.
    pub fn opt_bool(&self, column: &str) -> Option<bool> {
        self.atoms(column).first().and_then(Atom::as_bool)
    }

    /// A set-of-uuids (reference) column.
    pub fn uuids(&self, column: &str) -> Vec<Uuid> {
        self.atoms(column)
            .iter()
            .filter_map(Atom::as_uuid)
            .collect()
    }

    /// An optional reference column.
    pub fn opt_uuid(&self, column: &str) -> Option<Uuid> {
        self.atoms(column).first().and_then(Atom::as_uuid)
    }

    /// A string-to-string map column (`external_ids`, `options`, ...).
    pub fn string_map(&self, column: &str) -> BTreeMap<String, String> {
        self.datum(column)
            .map(|d| {
                d.pairs()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A row struct for one table.
pub trait TypedRow: Sized {
    const TABLE: &'static str;
    fn from_row(uuid: Uuid, row: &RowRef<'_>) -> Self;
}

macro_rules! typed_row {
    ($(#[$m:meta])* $name:ident = $table:literal { $($field:ident : $ty:ty = $getter:ident($col:literal)),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            pub uuid: Uuid,
            $(pub $field: $ty,)*
        }

        impl TypedRow for $name {
            const TABLE: &'static str = $table;
            fn from_row(uuid: Uuid, row: &RowRef<'_>) -> Self {
                $name { uuid, $($field: row.$getter($col),)* }
            }
        }
    };
}

type Map = BTreeMap<String, String>;

typed_row!(
    /// NB `NB_Global`: the realisation counters (`nb_cfg` -> `sb_cfg`/`hv_cfg`).
    NbGlobal = "NB_Global" {
        nb_cfg: i64 = integer("nb_cfg"),
        sb_cfg: i64 = integer("sb_cfg"),
        hv_cfg: i64 = integer("hv_cfg"),
        options: Map = string_map("options"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `Logical_Switch`.
    LogicalSwitch = "Logical_Switch" {
        name: String = string("name"),
        ports: Vec<Uuid> = uuids("ports"),
        acls: Vec<Uuid> = uuids("acls"),
        load_balancer: Vec<Uuid> = uuids("load_balancer"),
        other_config: Map = string_map("other_config"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `Logical_Switch_Port`.
    LogicalSwitchPort = "Logical_Switch_Port" {
        name: String = string("name"),
        port_type: String = string("type"),
        addresses: Vec<String> = strings("addresses"),
        port_security: Vec<String> = strings("port_security"),
        dynamic_addresses: Option<String> = opt_string("dynamic_addresses"),
        enabled: Option<bool> = opt_bool("enabled"),
        up: Option<bool> = opt_bool("up"),
        tag: Option<i64> = opt_integer("tag"),
        parent_name: Option<String> = opt_string("parent_name"),
        options: Map = string_map("options"),
        dhcpv4_options: Option<Uuid> = opt_uuid("dhcpv4_options"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `Logical_Router`.
    LogicalRouter = "Logical_Router" {
        name: String = string("name"),
        ports: Vec<Uuid> = uuids("ports"),
        static_routes: Vec<Uuid> = uuids("static_routes"),
        nat: Vec<Uuid> = uuids("nat"),
        enabled: Option<bool> = opt_bool("enabled"),
        options: Map = string_map("options"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `Logical_Router_Port`.
    LogicalRouterPort = "Logical_Router_Port" {
        name: String = string("name"),
        mac: String = string("mac"),
        networks: Vec<String> = strings("networks"),
        peer: Option<String> = opt_string("peer"),
        gateway_chassis: Vec<Uuid> = uuids("gateway_chassis"),
        enabled: Option<bool> = opt_bool("enabled"),
        options: Map = string_map("options"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `Logical_Router_Static_Route`.
    LogicalRouterStaticRoute = "Logical_Router_Static_Route" {
        ip_prefix: String = string("ip_prefix"),
        nexthop: String = string("nexthop"),
        output_port: Option<String> = opt_string("output_port"),
        policy: Option<String> = opt_string("policy"),
        route_table: String = string("route_table"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `NAT`.
    Nat = "NAT" {
        nat_type: String = string("type"),
        external_ip: String = string("external_ip"),
        logical_ip: String = string("logical_ip"),
        external_mac: Option<String> = opt_string("external_mac"),
        logical_port: Option<String> = opt_string("logical_port"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `ACL`.
    Acl = "ACL" {
        direction: String = string("direction"),
        priority: i64 = integer("priority"),
        match_: String = string("match"),
        action: String = string("action"),
        log: Option<bool> = opt_bool("log"),
        name: Option<String> = opt_string("name"),
        severity: Option<String> = opt_string("severity"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `Address_Set`.
    AddressSet = "Address_Set" {
        name: String = string("name"),
        addresses: Vec<String> = strings("addresses"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `Port_Group`.
    PortGroup = "Port_Group" {
        name: String = string("name"),
        ports: Vec<Uuid> = uuids("ports"),
        acls: Vec<Uuid> = uuids("acls"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `DHCP_Options`.
    DhcpOptions = "DHCP_Options" {
        cidr: String = string("cidr"),
        options: Map = string_map("options"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// NB `Gateway_Chassis` (also in SB).
    GatewayChassis = "Gateway_Chassis" {
        name: String = string("name"),
        chassis_name: String = string("chassis_name"),
        priority: i64 = integer("priority"),
        options: Map = string_map("options"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// SB `SB_Global`.
    SbGlobal = "SB_Global" {
        nb_cfg: i64 = integer("nb_cfg"),
        options: Map = string_map("options"),
        external_ids: Map = string_map("external_ids"),
    }
);

/// The `SB_Global.external_ids` keys northd-lite owns: `switchyard-unrealised-<feature>` =
/// how many NB rows of that feature it does not compile into anything a chassis enforces
/// (ovn-northd-lite's `unrealised` module writes them, every chassis reports them). They
/// live in SB, as ovn-northd keeps its own outputs in `SB_Global.options`, so every node and
/// `ovn-sbctl get SB_Global . external_ids` see one report.
pub const UNREALISED_PREFIX: &str = "switchyard-unrealised-";

impl SbGlobal {
    /// Northd-lite's report of NB features it does not realise, by feature name.
    pub fn unrealised(&self) -> BTreeMap<String, u64> {
        self.external_ids
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix(UNREALISED_PREFIX)?.to_string(),
                    v.parse().ok()?,
                ))
            })
            .collect()
    }
}

typed_row!(
    /// SB `Chassis`: one hypervisor or gateway.
    Chassis = "Chassis" {
        name: String = string("name"),
        hostname: String = string("hostname"),
        encaps: Vec<Uuid> = uuids("encaps"),
        vtep_logical_switches: Vec<String> = strings("vtep_logical_switches"),
        nb_cfg: i64 = integer("nb_cfg"),
        other_config: Map = string_map("other_config"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// SB `Chassis_Private`: per-chassis state only that chassis writes.
    ChassisPrivate = "Chassis_Private" {
        name: String = string("name"),
        chassis: Option<Uuid> = opt_uuid("chassis"),
        nb_cfg: i64 = integer("nb_cfg"),
        nb_cfg_timestamp: i64 = integer("nb_cfg_timestamp"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// SB `Encap`: a tunnel endpoint of a chassis.
    Encap = "Encap" {
        encap_type: String = string("type"),
        ip: String = string("ip"),
        chassis_name: String = string("chassis_name"),
        options: Map = string_map("options"),
    }
);

typed_row!(
    /// SB `Datapath_Binding`: a logical switch or router and its tunnel key.
    DatapathBinding = "Datapath_Binding" {
        tunnel_key: i64 = integer("tunnel_key"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// SB `Port_Binding`: a logical port, its keys and the chassis that claimed it.
    PortBinding = "Port_Binding" {
        logical_port: String = string("logical_port"),
        port_type: String = string("type"),
        datapath: Option<Uuid> = opt_uuid("datapath"),
        tunnel_key: i64 = integer("tunnel_key"),
        mac: Vec<String> = strings("mac"),
        port_security: Vec<String> = strings("port_security"),
        tag: Option<i64> = opt_integer("tag"),
        chassis: Option<Uuid> = opt_uuid("chassis"),
        up: Option<bool> = opt_bool("up"),
        options: Map = string_map("options"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// SB `Logical_Flow`: one flow of OVN's logical pipeline (what the real ovn-northd writes;
    /// switchyard's chassis reads it only to say which intent it does not enforce).
    LogicalFlow = "Logical_Flow" {
        logical_datapath: Option<Uuid> = opt_uuid("logical_datapath"),
        logical_dp_group: Option<Uuid> = opt_uuid("logical_dp_group"),
        pipeline: String = string("pipeline"),
        table_id: i64 = integer("table_id"),
        priority: i64 = integer("priority"),
        match_: String = string("match"),
        actions: String = string("actions"),
        external_ids: Map = string_map("external_ids"),
    }
);

typed_row!(
    /// SB `MAC_Binding`: a learned IP-to-MAC binding on a router port.
    MacBinding = "MAC_Binding" {
        logical_port: String = string("logical_port"),
        ip: String = string("ip"),
        mac: String = string("mac"),
        datapath: Option<Uuid> = opt_uuid("datapath"),
    }
);
