//! Why packets are dropped.
//!
//! Every drop in the dataplane carries a [`DropReason`]; workers count drops
//! per reason (single-writer counters, summed on read) and `/metrics` and
//! `switchyard trace` show them by the same snake_case names.

use std::fmt;

use crate::wire::layout::Malformed;

/// A typed reason for dropping a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The frame failed header validation.
    Malformed(Malformed),
    /// The frame is larger than the port's buffers (jumbo on a 1500 port).
    Oversized,
    /// The local port is not bound to any logical port.
    NoBinding,
    /// A VLAN-tagged frame arrived on a VM port (OVN drops `vlan.present`).
    VlanTagged,
    /// The Ethernet source is a multicast/broadcast address.
    EthSrcMulticast,
    /// Port security: the Ethernet source is not the port's.
    PortSecurityMac,
    /// Port security: the IPv4/IPv6 source is not the port's.
    PortSecurityIp,
    /// Port security: ARP sender hardware/protocol address is not the port's.
    PortSecurityArp,
    /// Port security: an ND option or target is not the port's.
    PortSecurityNd,
    /// Port security: neither IP nor ARP, from a MAC whose port security
    /// entry lists addresses (OVN lets only what they allow through).
    PortSecurityEthType,
    /// Egress port security: the destination is not the egress port's.
    PortSecurityEgress,
    /// Unicast to an unknown MAC on a switch without an "unknown" port.
    UnknownUnicast,
    /// The only output would be the ingress port itself.
    Hairpin,
    /// No local port to send to: the egress logical port is not bound on
    /// this chassis, or a flood found no port to copy to (every other port
    /// filtered out, and no remote chassis).
    NoLocalPort,
    /// A flood copy could not get a buffer.
    NoBuffer,
    /// A tunnel packet's outer headers or Geneve/VXLAN header are invalid.
    TunnelMalformed,
    /// A Geneve option we do not understand is marked critical (RFC 8926 §3.5).
    TunnelCriticalOption,
    /// A Geneve packet without OVN's metadata option.
    TunnelNoMetadata,
    /// The VNI names a datapath that is not on this chassis.
    TunnelUnknownDatapath,
    /// The egress port named by the tunnel is not bound on this chassis.
    TunnelUnknownPort,
    /// The remote tunnel endpoint's MAC is not known yet (ARP sent).
    NeighborUnresolved,
    /// Too big for the overlay MTU (answered with ICMP when the sender can
    /// do path-MTU discovery).
    TunnelMtu,
    /// From a VLAN provider network, but not tagged with its VLAN.
    ProviderVlanMismatch,
    /// A tunnel packet over IPv6 whose outer UDP checksum is wrong (IPv6
    /// has no header checksum: RFC 8200 §8.1 makes the UDP one count).
    TunnelChecksum,
    /// A neighbour solicitation or advertisement for a tunnel endpoint that
    /// fails RFC 4861 §7.1 validation (hop limit, checksum, length).
    UplinkNdInvalid,
    /// A `drop` ACL matched (OVN's `ls_in_acl` / `ls_out_acl`).
    AclDrop,
    /// A `reject` ACL matched (answered with RST or ICMP unreachable once
    /// the dataplane writes those replies; dropped meanwhile).
    AclReject,
    /// Conntrack says invalid (`ct.inv`) on a datapath with stateful ACLs.
    CtInvalid,
    /// Of a connection a drop ACL blocked (OVN's `ct_mark.blocked`).
    CtBlocked,
    /// A new connection with the connection table full.
    CtFull,
    /// Routing: no route matches the destination (OVN 23.03 drops it
    /// without an ICMP error).
    NoRoute,
    /// Routing: the matching static route's next hop is `discard`.
    RouteDiscard,
    /// Routing: the TTL or hop limit ran out on a packet that gets no time
    /// exceeded (a later fragment, as OVN's `!ip.later_frag`).
    TtlExpired,
    /// Routing: the next hop's MAC is neither a port address of the
    /// destination switch nor in a MAC_Binding (dropped, not queued; no ARP
    /// or neighbour solicitation is sent yet).
    NextHopUnresolved,
    /// A router's admission: a martian source or destination (multicast,
    /// loopback, `0.0.0.0/8`, broadcast source, or the router's own address
    /// as source), as OVN's `lr_in_ip_input` drops them.
    RouterMartian,
    /// A router's admission: not IP, or not addressed to the router port's
    /// MAC (OVN's `lr_in_admission`).
    RouterAdmission,
    /// To a router's own address, neither an echo request nor answered
    /// with a TCP reset or ICMP unreachable: a later fragment, SCTP (OVN
    /// sends an ABORT, not done here), a TCP RST or an ICMP error.
    RouterLocal,
}

const OTHER_REASONS: [DropReason; 36] = [
    DropReason::Oversized,
    DropReason::NoBinding,
    DropReason::VlanTagged,
    DropReason::EthSrcMulticast,
    DropReason::PortSecurityMac,
    DropReason::PortSecurityIp,
    DropReason::PortSecurityArp,
    DropReason::PortSecurityNd,
    DropReason::PortSecurityEgress,
    DropReason::UnknownUnicast,
    DropReason::Hairpin,
    DropReason::NoLocalPort,
    DropReason::NoBuffer,
    DropReason::TunnelMalformed,
    DropReason::TunnelCriticalOption,
    DropReason::TunnelNoMetadata,
    DropReason::TunnelUnknownDatapath,
    DropReason::TunnelUnknownPort,
    DropReason::NeighborUnresolved,
    DropReason::TunnelMtu,
    DropReason::ProviderVlanMismatch,
    DropReason::TunnelChecksum,
    DropReason::UplinkNdInvalid,
    DropReason::PortSecurityEthType,
    DropReason::AclDrop,
    DropReason::AclReject,
    DropReason::CtInvalid,
    DropReason::CtBlocked,
    DropReason::CtFull,
    DropReason::NoRoute,
    DropReason::RouteDiscard,
    DropReason::TtlExpired,
    DropReason::NextHopUnresolved,
    DropReason::RouterMartian,
    DropReason::RouterAdmission,
    DropReason::RouterLocal,
];

/// Number of distinct drop reasons (size of a counter array).
pub const DROP_REASONS: usize = Malformed::ALL.len() + OTHER_REASONS.len();

impl DropReason {
    /// Every reason, in counter-index order.
    pub fn all() -> impl Iterator<Item = DropReason> {
        Malformed::ALL
            .into_iter()
            .map(DropReason::Malformed)
            .chain(OTHER_REASONS)
    }

    /// Dense index into a counter array.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            DropReason::Malformed(m) => m as usize,
            DropReason::Oversized => Malformed::ALL.len(),
            DropReason::NoBinding => Malformed::ALL.len() + 1,
            DropReason::VlanTagged => Malformed::ALL.len() + 2,
            DropReason::EthSrcMulticast => Malformed::ALL.len() + 3,
            DropReason::PortSecurityMac => Malformed::ALL.len() + 4,
            DropReason::PortSecurityIp => Malformed::ALL.len() + 5,
            DropReason::PortSecurityArp => Malformed::ALL.len() + 6,
            DropReason::PortSecurityNd => Malformed::ALL.len() + 7,
            DropReason::PortSecurityEgress => Malformed::ALL.len() + 8,
            DropReason::UnknownUnicast => Malformed::ALL.len() + 9,
            DropReason::Hairpin => Malformed::ALL.len() + 10,
            DropReason::NoLocalPort => Malformed::ALL.len() + 11,
            DropReason::NoBuffer => Malformed::ALL.len() + 12,
            DropReason::TunnelMalformed => Malformed::ALL.len() + 13,
            DropReason::TunnelCriticalOption => Malformed::ALL.len() + 14,
            DropReason::TunnelNoMetadata => Malformed::ALL.len() + 15,
            DropReason::TunnelUnknownDatapath => Malformed::ALL.len() + 16,
            DropReason::TunnelUnknownPort => Malformed::ALL.len() + 17,
            DropReason::NeighborUnresolved => Malformed::ALL.len() + 18,
            DropReason::TunnelMtu => Malformed::ALL.len() + 19,
            DropReason::ProviderVlanMismatch => Malformed::ALL.len() + 20,
            DropReason::TunnelChecksum => Malformed::ALL.len() + 21,
            DropReason::UplinkNdInvalid => Malformed::ALL.len() + 22,
            DropReason::PortSecurityEthType => Malformed::ALL.len() + 23,
            DropReason::AclDrop => Malformed::ALL.len() + 24,
            DropReason::AclReject => Malformed::ALL.len() + 25,
            DropReason::CtInvalid => Malformed::ALL.len() + 26,
            DropReason::CtBlocked => Malformed::ALL.len() + 27,
            DropReason::CtFull => Malformed::ALL.len() + 28,
            DropReason::NoRoute => Malformed::ALL.len() + 29,
            DropReason::RouteDiscard => Malformed::ALL.len() + 30,
            DropReason::TtlExpired => Malformed::ALL.len() + 31,
            DropReason::NextHopUnresolved => Malformed::ALL.len() + 32,
            DropReason::RouterMartian => Malformed::ALL.len() + 33,
            DropReason::RouterAdmission => Malformed::ALL.len() + 34,
            DropReason::RouterLocal => Malformed::ALL.len() + 35,
        }
    }

    /// The snake_case name used as the `reason` label on `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed(m) => m.as_str(),
            DropReason::Oversized => "oversized",
            DropReason::NoBinding => "no_binding",
            DropReason::VlanTagged => "vlan_tagged",
            DropReason::EthSrcMulticast => "eth_src_multicast",
            DropReason::PortSecurityMac => "port_security_mac",
            DropReason::PortSecurityIp => "port_security_ip",
            DropReason::PortSecurityArp => "port_security_arp",
            DropReason::PortSecurityNd => "port_security_nd",
            DropReason::PortSecurityEgress => "port_security_egress",
            DropReason::UnknownUnicast => "unknown_unicast",
            DropReason::Hairpin => "hairpin",
            DropReason::NoLocalPort => "no_local_port",
            DropReason::NoBuffer => "no_buffer",
            DropReason::TunnelMalformed => "tunnel_malformed",
            DropReason::TunnelCriticalOption => "tunnel_critical_option",
            DropReason::TunnelNoMetadata => "tunnel_no_metadata",
            DropReason::TunnelUnknownDatapath => "tunnel_unknown_datapath",
            DropReason::TunnelUnknownPort => "tunnel_unknown_port",
            DropReason::NeighborUnresolved => "neighbor_unresolved",
            DropReason::TunnelMtu => "tunnel_mtu",
            DropReason::ProviderVlanMismatch => "provider_vlan_mismatch",
            DropReason::TunnelChecksum => "tunnel_checksum",
            DropReason::UplinkNdInvalid => "uplink_nd_invalid",
            DropReason::PortSecurityEthType => "port_security_eth_type",
            DropReason::AclDrop => "acl_drop",
            DropReason::AclReject => "acl_reject",
            DropReason::CtInvalid => "ct_invalid",
            DropReason::CtBlocked => "ct_blocked",
            DropReason::CtFull => "ct_full",
            DropReason::NoRoute => "no_route",
            DropReason::RouteDiscard => "route_discard",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NextHopUnresolved => "next_hop_unresolved",
            DropReason::RouterMartian => "router_martian",
            DropReason::RouterAdmission => "router_admission",
            DropReason::RouterLocal => "router_local",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Malformed(m) => write!(f, "malformed: {m}"),
            DropReason::Oversized => f.write_str("frame larger than the port's buffers"),
            DropReason::NoBinding => f.write_str("local port bound to no logical port"),
            DropReason::VlanTagged => f.write_str("VLAN-tagged frame on a VM port"),
            DropReason::EthSrcMulticast => f.write_str("multicast Ethernet source"),
            DropReason::PortSecurityMac => {
                f.write_str("port security: eth.src not allowed on the port")
            }
            DropReason::PortSecurityIp => {
                f.write_str("port security: IP source not allowed on the port")
            }
            DropReason::PortSecurityArp => {
                f.write_str("port security: ARP sha/spa not allowed on the port")
            }
            DropReason::PortSecurityNd => {
                f.write_str("port security: ND link-layer address or target not allowed")
            }
            DropReason::PortSecurityEgress => {
                f.write_str("egress port security: destination not allowed on the output port")
            }
            DropReason::UnknownUnicast => {
                f.write_str("unknown unicast destination and no port with \"unknown\" addresses")
            }
            DropReason::Hairpin => f.write_str("output port equals input port"),
            DropReason::NoLocalPort => {
                f.write_str("no local port to send to (egress port not bound here, or a flood with no port left)")
            }
            DropReason::NoBuffer => f.write_str("no buffer for a flood copy"),
            DropReason::TunnelMalformed => f.write_str("malformed tunnel packet"),
            DropReason::TunnelCriticalOption => {
                f.write_str("unknown critical Geneve option (RFC 8926 3.5)")
            }
            DropReason::TunnelNoMetadata => f.write_str("Geneve packet without OVN's option"),
            DropReason::TunnelUnknownDatapath => {
                f.write_str("tunnel VNI names no datapath on this chassis")
            }
            DropReason::TunnelUnknownPort => {
                f.write_str("tunnel egress port not bound on this chassis")
            }
            DropReason::NeighborUnresolved => {
                f.write_str("remote tunnel endpoint's MAC not resolved yet")
            }
            DropReason::TunnelMtu => f.write_str("larger than the overlay MTU"),
            DropReason::ProviderVlanMismatch => {
                f.write_str("not tagged with the provider network's VLAN")
            }
            DropReason::TunnelChecksum => f.write_str("wrong outer UDP checksum (IPv6 underlay)"),
            DropReason::UplinkNdInvalid => {
                f.write_str("invalid neighbour discovery message on the uplink (RFC 4861 7.1)")
            }
            DropReason::PortSecurityEthType => f.write_str(
                "port security: neither IP nor ARP from a MAC whose entry lists addresses",
            ),
            DropReason::AclDrop => f.write_str("a drop ACL matched"),
            DropReason::AclReject => f.write_str("a reject ACL matched"),
            DropReason::CtInvalid => f.write_str("conntrack: invalid (ct.inv)"),
            DropReason::CtBlocked => {
                f.write_str("conntrack: the connection was blocked by a drop ACL")
            }
            DropReason::CtFull => f.write_str("conntrack: table full, new connection refused"),
            DropReason::NoRoute => f.write_str("no route to the destination (OVN 23.03 sends no ICMP error)"),
            DropReason::RouteDiscard => f.write_str("a discard route matched"),
            DropReason::TtlExpired => f.write_str("TTL or hop limit expired and no time exceeded sent (a later fragment)"),
            DropReason::NextHopUnresolved => f.write_str("next hop's MAC unknown (no port address, no MAC_Binding)"),
            DropReason::RouterMartian => f.write_str("martian address at a router (OVN's lr_in_ip_input drops)"),
            DropReason::RouterAdmission => f.write_str("not for the router (eth.dst not the port's MAC, or not IP)"),
            DropReason::RouterLocal => f.write_str("to a router's own address and not an echo request"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_unique() {
        let idx: Vec<usize> = DropReason::all().map(DropReason::index).collect();
        assert_eq!(idx, (0..DROP_REASONS).collect::<Vec<_>>());
        let names: std::collections::HashSet<_> = DropReason::all().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), DROP_REASONS);
    }
}
