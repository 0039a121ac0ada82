//! Flow descriptions: a packet written as OVN-trace-style fields
//! (`inport=vm1 eth.src=… ip4.dst=… udp.dst=53`), turned into a frame.
//!
//! Used by `switchyard trace` to build the packet to trace, and by tests and
//! the benchmark suite to build traffic. Frames are emitted with the `wire`
//! module's `Repr`s, so checksums and lengths are right unless a field says
//! otherwise.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::MacAddr;

/// Errors in a flow description.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlowError {
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("bad value {value:?} for {field}")]
    BadValue { field: String, value: String },
    #[error("{field}={value} is out of range (0 to {max})")]
    OutOfRange {
        field: String,
        value: String,
        max: u64,
    },
    #[error("{0}")]
    Inconsistent(String),
}

/// The network layer of a described packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L3 {
    /// No L3 header known to us: an Ethernet payload of zeros.
    Other(u16),
    Arp {
        op: u16,
        sha: Option<MacAddr>,
        spa: Ipv4Addr,
        tha: MacAddr,
        tpa: Ipv4Addr,
    },
    Ipv4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
    },
    Ipv6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
    },
}

/// The transport layer of a described packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    None,
    Udp {
        src: u16,
        dst: u16,
    },
    Tcp {
        src: u16,
        dst: u16,
        flags: u8,
    },
    Icmp4 {
        ty: u8,
        code: u8,
    },
    Icmp6 {
        ty: u8,
        code: u8,
    },
    /// RFC 4861 §4.3 Neighbor Solicitation.
    NdNs {
        target: Ipv6Addr,
        sll: Option<MacAddr>,
    },
    /// RFC 4861 §4.4 Neighbor Advertisement.
    NdNa {
        target: Ipv6Addr,
        tll: Option<MacAddr>,
    },
}

/// A described packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowDesc {
    pub inport: Option<String>,
    pub eth_src: MacAddr,
    pub eth_dst: MacAddr,
    pub vlan: Option<u16>,
    pub l3: L3,
    pub l4: L4,
    /// Bytes of payload after the last header.
    pub payload: usize,
}

impl Default for FlowDesc {
    fn default() -> Self {
        FlowDesc {
            inport: None,
            eth_src: MacAddr([0, 0, 0, 0, 0, 1]),
            eth_dst: MacAddr([0, 0, 0, 0, 0, 2]),
            vlan: None,
            l3: L3::Other(0x88b5),
            l4: L4::None,
            payload: 0,
        }
    }
}

impl std::fmt::Display for FlowDesc {
    /// Every field of the packet, defaults included, in the syntax
    /// [`FlowDesc::from_str`](std::str::FromStr::from_str) reads (what `switchyard trace` built).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.inport {
            write!(f, "inport={p} ")?;
        }
        write!(f, "eth.src={} eth.dst={}", self.eth_src, self.eth_dst)?;
        if let Some(v) = self.vlan {
            write!(f, " vlan.vid={v}")?;
        }
        match &self.l3 {
            L3::Other(t) => write!(f, " eth.type={t:#06x}")?,
            L3::Arp {
                op,
                sha,
                spa,
                tha,
                tpa,
            } => {
                write!(f, " arp.op={op}")?;
                if let Some(m) = sha {
                    write!(f, " arp.sha={m}")?;
                }
                write!(f, " arp.spa={spa} arp.tha={tha} arp.tpa={tpa}")?;
            }
            L3::Ipv4 { src, dst, ttl } => write!(f, " ip4.src={src} ip4.dst={dst} ip.ttl={ttl}")?,
            L3::Ipv6 {
                src,
                dst,
                hop_limit,
            } => write!(f, " ip6.src={src} ip6.dst={dst} ip.ttl={hop_limit}")?,
        }
        match &self.l4 {
            L4::None => {}
            L4::Udp { src, dst } => write!(f, " udp.src={src} udp.dst={dst}")?,
            L4::Tcp { src, dst, flags } => {
                write!(f, " tcp.src={src} tcp.dst={dst} tcp.flags={flags:#04x}")?
            }
            L4::Icmp4 { ty, code } => write!(f, " icmp4.type={ty} icmp4.code={code}")?,
            L4::Icmp6 { ty, code } => write!(f, " icmp6.type={ty} icmp6.code={code}")?,
            L4::NdNs { target, sll } => {
                write!(f, " nd_ns nd.target={target}")?;
                if let Some(m) = sll {
                    write!(f, " nd.sll={m}")?;
                }
            }
            L4::NdNa { target, tll } => {
                write!(f, " nd_na nd.target={target}")?;
                if let Some(m) = tll {
                    write!(f, " nd.tll={m}")?;
                }
            }
        }
        write!(f, " payload={}", self.payload)
    }
}

impl FlowDesc {
    /// Builds the frame: headers emitted by the `wire` Reprs, zero payload,
    /// IPv4 header and L4 checksums filled in.
    pub fn to_frame(&self) -> Result<Vec<u8>, FlowError> {
        use crate::wire::{
            arp, ethernet, icmpv4, icmpv6, ipv4, ipv6, tcp, udp, EtherType, IpProtocol,
        };

        let (proto, l4_len) = match &self.l4 {
            L4::None => (IpProtocol::Unknown(253), 0),
            L4::Udp { .. } => (IpProtocol::Udp, udp::HEADER_LEN),
            L4::Tcp { .. } => (IpProtocol::Tcp, tcp::HEADER_LEN),
            L4::Icmp4 { .. } => (IpProtocol::Icmp, 8),
            L4::Icmp6 { .. } => (IpProtocol::Icmpv6, 8),
            L4::NdNs { sll, .. } => (IpProtocol::Icmpv6, 24 + if sll.is_some() { 8 } else { 0 }),
            L4::NdNa { tll, .. } => (IpProtocol::Icmpv6, 24 + if tll.is_some() { 8 } else { 0 }),
        };
        let upper = l4_len + self.payload;
        let (ethertype, l3_len) = match &self.l3 {
            L3::Other(t) => (EtherType::from(*t), 0),
            L3::Arp { .. } => (EtherType::Arp, 28),
            L3::Ipv4 { .. } => (EtherType::Ipv4, ipv4::HEADER_LEN),
            L3::Ipv6 { .. } => (EtherType::Ipv6, ipv6::HEADER_LEN),
        };
        let vlan_len = if self.vlan.is_some() {
            ethernet::VLAN_TAG_LEN
        } else {
            0
        };
        let l3 = ethernet::HEADER_LEN + vlan_len;
        let l4 = l3 + l3_len;
        let total = l4
            + if matches!(self.l3, L3::Arp { .. }) {
                0
            } else {
                upper
            };
        if total - l3 > usize::from(u16::MAX) {
            return Err(FlowError::Inconsistent("payload too large".into()));
        }
        let mut f = vec![0u8; total];

        ethernet::Repr {
            src_addr: self.eth_src,
            dst_addr: self.eth_dst,
            ethertype: if self.vlan.is_some() {
                EtherType::Vlan
            } else {
                ethertype
            },
        }
        .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
        if let Some(vid) = self.vlan {
            ethernet::VlanRepr {
                pcp: 0,
                dei: false,
                vid,
                ethertype,
            }
            .emit(&mut ethernet::VlanTag::new_unchecked(
                &mut f[ethernet::HEADER_LEN..],
            ));
        }
        match &self.l3 {
            L3::Other(_) => {}
            L3::Arp {
                op,
                sha,
                spa,
                tha,
                tpa,
            } => arp::Repr {
                operation: arp::Operation::from(*op),
                source_hardware_addr: sha.unwrap_or(self.eth_src),
                source_protocol_addr: *spa,
                target_hardware_addr: *tha,
                target_protocol_addr: *tpa,
            }
            .emit(&mut arp::Packet::new_unchecked(&mut f[l3..])),
            L3::Ipv4 { src, dst, ttl } => ipv4::Repr {
                src_addr: *src,
                dst_addr: *dst,
                next_header: proto,
                payload_len: upper,
                hop_limit: *ttl,
                dscp: 0,
                ecn: 0,
                ident: 0,
                dont_frag: false,
                more_frags: false,
                frag_offset: 0,
            }
            .emit(&mut ipv4::Packet::new_unchecked(&mut f[l3..])),
            L3::Ipv6 {
                src,
                dst,
                hop_limit,
            } => ipv6::Repr {
                src_addr: *src,
                dst_addr: *dst,
                next_header: proto,
                payload_len: upper,
                hop_limit: *hop_limit,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(&mut ipv6::Packet::new_unchecked(&mut f[l3..])),
        }
        if matches!(self.l3, L3::Arp { .. } | L3::Other(_)) {
            return Ok(f);
        }
        let seg = &mut f[l4..];
        match self.l4 {
            L4::None => {}
            L4::Udp { src, dst } => udp::Repr {
                src_port: src,
                dst_port: dst,
                payload_len: self.payload,
            }
            .emit(&mut udp::Packet::new_unchecked(seg)),
            L4::Tcp { src, dst, flags } => tcp::Repr {
                src_port: src,
                dst_port: dst,
                seq_number: 1,
                ack_number: 0,
                flags: tcp::Flags(u16::from(flags)),
                window_len: 65535,
                urgent_at: 0,
                options: &[],
            }
            .emit(&mut tcp::Packet::new_unchecked(seg)),
            L4::Icmp4 { ty, code } => {
                let mut p = icmpv4::Packet::new_unchecked(seg);
                p.set_msg_type(icmpv4::Message::from(ty));
                p.set_msg_code(code);
            }
            L4::Icmp6 { ty, code } => {
                let mut p = icmpv6::Packet::new_unchecked(seg);
                p.set_msg_type(icmpv6::Message::from(ty));
                p.set_msg_code(code);
            }
            L4::NdNs { target, sll } => icmpv6::NdiscRepr::NeighborSolicit {
                target_addr: target,
                lladdr: sll,
            }
            .emit(&mut icmpv6::Packet::new_unchecked(seg)),
            L4::NdNa { target, tll } => icmpv6::NdiscRepr::NeighborAdvert {
                flags: icmpv6::NeighborFlags(0),
                target_addr: target,
                lladdr: tll,
            }
            .emit(&mut icmpv6::Packet::new_unchecked(seg)),
        }
        if let Ok(lay) = crate::wire::layout::parse(&f) {
            // Only L4 headers we know have a checksum; others keep zeros.
            let _ = crate::wire::checksum::fill_l4(&mut f, &lay);
        }
        Ok(f)
    }
}

mod parse;

pub use parse::FIELDS_HELP;

#[cfg(test)]
mod tests;
