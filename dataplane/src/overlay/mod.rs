//! Overlays: logical switches spanning chassis over Geneve and VXLAN, with
//! OVN's encoding, so our chassis and OVN's read each other's packets.
//!
//! - Geneve (RFC 8926, UDP 6081): VNI = datapath tunnel key; one option,
//!   class 0x0102 type 0x80, 4 bytes `0 | ingress port (15) | egress port
//!   (16)`; egress keys 32768 and above are multicast groups.
//! - VXLAN (RFC 7348, UDP 4789) in OVN's mode: VNI bits 0–11 = datapath key
//!   (so keys are at most 4095), bits 12–23 = egress port key, multicast
//!   group 32768 + x carried as 2048 + x. A VNI whose egress bits are 0
//!   carries no egress port: the receiver looks the inner destination up,
//!   as a plain VXLAN VTEP (the Linux kernel's, say) expects.
//!
//! Encapsulation writes the outer Ethernet, IP, UDP and tunnel headers into
//! the buffer's headroom: no copy. The underlay is IPv4 (DF set, UDP
//! checksum 0 as RFC 768 allows) or IPv6 (UDP checksum computed, RFC 8200
//! §8.1; flow label from the inner flow, RFC 6438). The UDP source port is
//! a hash of the inner flow (RFC 7348 §5, RFC 8926 §3.3), so the underlay's
//! ECMP spreads flows. Decapsulation validates everything it relies on and
//! drops the rest with a reason: a VNI or egress port this chassis does not
//! have, unknown critical Geneve options (RFC 8926 §3.5), a wrong IPv6 UDP
//! checksum; a packet not for our tunnel endpoint is left to the host.
//!
//! Remote endpoints' MACs come from static entries ([`RemoteChassis::mac`])
//! or [`Neighbors`], learned on the uplink from ARP (IPv4) or neighbour
//! discovery (IPv6, RFC 4861): the dataplane answers for its own tunnel
//! address and asks for endpoints it does not know. Learning and lookups
//! are atomic loads and stores; neither locks.
//!
//! [`RemoteChassis::mac`]: crate::tables::RemoteChassis::mac

mod decap;
mod encap;
mod encoding;
mod flow_hash;
mod neighbors;
#[cfg(test)]
mod tests;
mod uplink_nd;

pub use decap::{receive, Uplink};
pub use encap::{encapsulate, Template, Tunnel};
pub use encoding::{vxlan_vni, MC_FLOOD, MC_UNKNOWN};
pub use flow_hash::{flow_hash, flow_label, source_port};
pub use neighbors::Neighbors;
pub use uplink_nd::neighbor_request;

use crate::ids::DatapathIdx;
use crate::tables::Encap;
use crate::wire::{geneve, vxlan};

const OUTER_V4: usize = 14 + 20 + 8;
/// Outer Ethernet + IPv6 + UDP.
const OUTER_V6: usize = 14 + 40 + 8;
/// The Geneve header with OVN's option.
const GENEVE_LEN: usize = geneve::HEADER_LEN + 8;
/// Outer headers of a Geneve packet with OVN's option, IPv4 underlay.
const GENEVE_OVERHEAD: usize = OUTER_V4 + GENEVE_LEN;
/// Outer headers of a VXLAN packet, IPv4 underlay.
const VXLAN_OVERHEAD: usize = OUTER_V4 + vxlan::HEADER_LEN;
/// The largest outer headers: Geneve over IPv6.
pub const MAX_OVERHEAD: usize = OUTER_V6 + GENEVE_LEN;

/// Bytes of outer headers (Ethernet included) of `encap` over IPv4 or
/// IPv6.
pub const fn overhead(encap: Encap, ipv6: bool) -> usize {
    let outer = if ipv6 { OUTER_V6 } else { OUTER_V4 };
    outer
        + match encap {
            Encap::Geneve => GENEVE_LEN,
            Encap::Vxlan => vxlan::HEADER_LEN,
        }
}

/// Where a decapsulated packet goes on this chassis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub datapath: DatapathIdx,
    /// Logical ingress port key (0 if the encapsulation does not carry it).
    pub ingress_key: u16,
    pub egress: Egress,
    /// Bytes of outer headers in front of the inner frame.
    pub outer_len: usize,
}

/// The egress a tunnel packet names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// A logical port key of the datapath.
    Port(u16),
    /// A multicast group (flood: every local port of the datapath).
    Group(u16),
    /// Not named (a plain VXLAN VTEP): look the inner destination up.
    Lookup,
}

/// The largest inner frame (Ethernet header included) a tunnel of `encap`
/// carries over an IPv4 or IPv6 underlay of `underlay_mtu` (the outer IP
/// packet's size).
pub fn max_inner_frame(encap: Encap, ipv6: bool, underlay_mtu: u16) -> usize {
    usize::from(underlay_mtu).saturating_sub(overhead(encap, ipv6) - 14)
}
