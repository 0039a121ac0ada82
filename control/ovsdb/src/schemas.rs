//! The OVN northbound and southbound schemas this crate serves and its clients expect.
//!
//! The files under `control/ovsdb/schemas/` are OVN 23.03's complete schemas (see the README
//! there for the release and how to move to a newer one), so `ovn-nbctl`, Neutron's ovsdbapp
//! and other OVN tools find every table they know, and a real `ovsdb-server` can serve the
//! same files. Our code reads only some of the tables; the others are stored and served.

use crate::error::OvsdbError;
use crate::schema::DatabaseSchema;

/// `OVN_Northbound` schema text.
pub const OVN_NB: &str = include_str!("../schemas/ovn-nb.ovsschema");
/// `OVN_Southbound` schema text.
pub const OVN_SB: &str = include_str!("../schemas/ovn-sb.ovsschema");

/// Parses one of the embedded schemas.
pub fn parse(text: &str) -> Result<DatabaseSchema, OvsdbError> {
    let v = serde_json::from_str(text)
        .map_err(|e| OvsdbError::syntax(format!("schema is not JSON: {e}")))?;
    DatabaseSchema::from_json(&v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_schemas_parse_with_ovn_names() {
        let nb = super::parse(super::OVN_NB).unwrap();
        assert_eq!(nb.name, "OVN_Northbound");
        for t in [
            "NB_Global",
            "Logical_Switch",
            "Logical_Switch_Port",
            "Logical_Router",
            "Logical_Router_Port",
            "Logical_Router_Static_Route",
            "NAT",
            "ACL",
            "Address_Set",
            "Port_Group",
            "DHCP_Options",
            "Gateway_Chassis",
            "Load_Balancer",
            "Connection",
            "Meter",
        ] {
            assert!(nb.table(t).is_some(), "{t}");
        }
        let sb = super::parse(super::OVN_SB).unwrap();
        assert_eq!(sb.name, "OVN_Southbound");
        for t in [
            "SB_Global",
            "Chassis",
            "Chassis_Private",
            "Encap",
            "Datapath_Binding",
            "Port_Binding",
            "MAC_Binding",
            "Connection",
        ] {
            assert!(sb.table(t).is_some(), "{t}");
        }
    }
}
