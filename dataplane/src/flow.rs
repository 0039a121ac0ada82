//! Flow descriptions: a packet written as OVN-trace-style fields
//! (`inport=vm1 eth.src=… ip4.dst=… udp.dst=53`), turned into a frame.
//!
//! Used by `switchyard trace` to build the packet to trace, and by tests and
//! the benchmark suite to build traffic. Frames are emitted with the `wire`
//! module's `Repr`s, so checksums and lengths are right unless a field says
//! otherwise.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::wire::MacAddr;

/// Errors in a flow description.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlowError {
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("bad value {value:?} for {field}")]
    BadValue { field: String, value: String },
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

fn val<T: FromStr>(field: &str, v: &str) -> Result<T, FlowError> {
    v.parse().map_err(|_| FlowError::BadValue {
        field: field.into(),
        value: v.into(),
    })
}

fn num(field: &str, v: &str) -> Result<u64, FlowError> {
    let r = if let Some(h) = v.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else {
        v.parse()
    };
    r.map_err(|_| FlowError::BadValue {
        field: field.into(),
        value: v.into(),
    })
}

fn ipv4_mut(l3: &mut L3) -> (&mut Ipv4Addr, &mut Ipv4Addr, &mut u8) {
    if !matches!(l3, L3::Ipv4 { .. }) {
        *l3 = L3::Ipv4 {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            ttl: 64,
        };
    }
    match l3 {
        L3::Ipv4 { src, dst, ttl } => (src, dst, ttl),
        _ => unreachable!(),
    }
}

fn ipv6_mut(l3: &mut L3) -> (&mut Ipv6Addr, &mut Ipv6Addr, &mut u8) {
    if !matches!(l3, L3::Ipv6 { .. }) {
        *l3 = L3::Ipv6 {
            src: "fd00::1".parse().unwrap(),
            dst: "fd00::2".parse().unwrap(),
            hop_limit: 64,
        };
    }
    match l3 {
        L3::Ipv6 {
            src,
            dst,
            hop_limit,
        } => (src, dst, hop_limit),
        _ => unreachable!(),
    }
}

fn arp_mut(l3: &mut L3) -> &mut L3 {
    if !matches!(l3, L3::Arp { .. }) {
        *l3 = L3::Arp {
            op: 1,
            sha: None,
            spa: Ipv4Addr::new(10, 0, 0, 1),
            tha: MacAddr([0; 6]),
            tpa: Ipv4Addr::new(10, 0, 0, 2),
        };
    }
    l3
}

impl FromStr for FlowDesc {
    type Err = FlowError;

    /// Parses `field=value` words (also `field==value` joined by `&&`, as
    /// ovn-trace writes them) and bare protocol words (`arp`, `ip4`, `ip6`,
    /// `udp`, `tcp`, `icmp4`, `icmp6`, `nd_ns`, `nd_na`).
    fn from_str(s: &str) -> Result<Self, FlowError> {
        let mut f = FlowDesc::default();
        let cleaned = s.replace("&&", " ").replace("==", "=");
        for word in cleaned.split_whitespace() {
            let (k, v) = match word.split_once('=') {
                Some((k, v)) => (k, v.trim_matches('"')),
                None => (word, ""),
            };
            match k {
                "inport" => f.inport = Some(v.to_string()),
                "eth.src" => f.eth_src = val(k, v)?,
                "eth.dst" => f.eth_dst = val(k, v)?,
                "eth.type" => f.l3 = L3::Other(num(k, v)? as u16),
                "vlan.vid" => f.vlan = Some(num(k, v)? as u16 & 0x0fff),
                "payload" => f.payload = num(k, v)? as usize,
                "arp" => {
                    arp_mut(&mut f.l3);
                }
                "arp.op" | "arp.sha" | "arp.spa" | "arp.tha" | "arp.tpa" => {
                    if let L3::Arp {
                        op,
                        sha,
                        spa,
                        tha,
                        tpa,
                    } = arp_mut(&mut f.l3)
                    {
                        match k {
                            "arp.op" => *op = num(k, v)? as u16,
                            "arp.sha" => *sha = Some(val(k, v)?),
                            "arp.spa" => *spa = val(k, v)?,
                            "arp.tha" => *tha = val(k, v)?,
                            _ => *tpa = val(k, v)?,
                        }
                    }
                }
                "ip4" => {
                    ipv4_mut(&mut f.l3);
                }
                "ip4.src" => *ipv4_mut(&mut f.l3).0 = val(k, v)?,
                "ip4.dst" => *ipv4_mut(&mut f.l3).1 = val(k, v)?,
                "ip.ttl" => match &mut f.l3 {
                    L3::Ipv6 { hop_limit, .. } => *hop_limit = num(k, v)? as u8,
                    l3 => *ipv4_mut(l3).2 = num(k, v)? as u8,
                },
                "ip6" => {
                    ipv6_mut(&mut f.l3);
                }
                "ip6.src" => *ipv6_mut(&mut f.l3).0 = val(k, v)?,
                "ip6.dst" => *ipv6_mut(&mut f.l3).1 = val(k, v)?,
                "udp" | "udp.src" | "udp.dst" => {
                    let (mut s, mut d) = match f.l4 {
                        L4::Udp { src, dst } => (src, dst),
                        _ => (1024, 1024),
                    };
                    match k {
                        "udp.src" => s = num(k, v)? as u16,
                        "udp.dst" => d = num(k, v)? as u16,
                        _ => {}
                    }
                    f.l4 = L4::Udp { src: s, dst: d };
                }
                "tcp" | "tcp.src" | "tcp.dst" | "tcp.flags" => {
                    let (mut s, mut d, mut fl) = match f.l4 {
                        L4::Tcp { src, dst, flags } => (src, dst, flags),
                        _ => (1024, 80, 0x02),
                    };
                    match k {
                        "tcp.src" => s = num(k, v)? as u16,
                        "tcp.dst" => d = num(k, v)? as u16,
                        "tcp.flags" => fl = num(k, v)? as u8,
                        _ => {}
                    }
                    f.l4 = L4::Tcp {
                        src: s,
                        dst: d,
                        flags: fl,
                    };
                }
                "icmp4" | "icmp4.type" | "icmp4.code" => {
                    let (mut t, mut c) = match f.l4 {
                        L4::Icmp4 { ty, code } => (ty, code),
                        _ => (8, 0),
                    };
                    match k {
                        "icmp4.type" => t = num(k, v)? as u8,
                        "icmp4.code" => c = num(k, v)? as u8,
                        _ => {}
                    }
                    f.l4 = L4::Icmp4 { ty: t, code: c };
                }
                "icmp6" | "icmp6.type" | "icmp6.code" => {
                    let (mut t, mut c) = match f.l4 {
                        L4::Icmp6 { ty, code } => (ty, code),
                        _ => (128, 0),
                    };
                    match k {
                        "icmp6.type" => t = num(k, v)? as u8,
                        "icmp6.code" => c = num(k, v)? as u8,
                        _ => {}
                    }
                    f.l4 = L4::Icmp6 { ty: t, code: c };
                }
                "nd_ns" => {
                    f.l4 = L4::NdNs {
                        target: *ipv6_mut(&mut f.l3).1,
                        sll: None,
                    }
                }
                "nd_na" => {
                    f.l4 = L4::NdNa {
                        target: *ipv6_mut(&mut f.l3).0,
                        tll: None,
                    }
                }
                "nd.target" => match &mut f.l4 {
                    L4::NdNs { target, .. } | L4::NdNa { target, .. } => *target = val(k, v)?,
                    _ => {
                        return Err(FlowError::Inconsistent(
                            "nd.target needs nd_ns or nd_na first".into(),
                        ))
                    }
                },
                "nd.sll" => match &mut f.l4 {
                    L4::NdNs { sll, .. } => *sll = Some(val(k, v)?),
                    _ => return Err(FlowError::Inconsistent("nd.sll needs nd_ns first".into())),
                },
                "nd.tll" => match &mut f.l4 {
                    L4::NdNa { tll, .. } => *tll = Some(val(k, v)?),
                    _ => return Err(FlowError::Inconsistent("nd.tll needs nd_na first".into())),
                },
                _ => return Err(FlowError::UnknownField(k.to_string())),
            }
        }
        // Transport headers need the matching network layer.
        match (&f.l4, &f.l3) {
            (L4::Udp { .. } | L4::Tcp { .. }, L3::Ipv4 { .. } | L3::Ipv6 { .. }) => {}
            (L4::Udp { .. } | L4::Tcp { .. } | L4::Icmp4 { .. }, _) => {
                ipv4_mut(&mut f.l3);
            }
            (L4::Icmp6 { .. } | L4::NdNs { .. } | L4::NdNa { .. }, L3::Ipv6 { .. }) => {}
            (L4::Icmp6 { .. } | L4::NdNs { .. } | L4::NdNa { .. }, _) => {
                return Err(FlowError::Inconsistent("ICMPv6 needs ip6".into()));
            }
            _ => {}
        }
        if matches!(f.l4, L4::Icmp4 { .. }) && !matches!(f.l3, L3::Ipv4 { .. }) {
            return Err(FlowError::Inconsistent("icmp4 needs ip4".into()));
        }
        Ok(f)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::layout::{self, Layout};

    #[test]
    fn udp_flow_builds_a_valid_frame() {
        let f: FlowDesc = "inport==\"vm1\" && eth.src==00:00:00:00:00:01 && ip4.src==10.0.0.1 && ip4.dst==10.0.0.2 && udp.dst==53 payload=18"
            .parse()
            .unwrap();
        assert_eq!(f.inport.as_deref(), Some("vm1"));
        let frame = f.to_frame().unwrap();
        assert_eq!(frame.len(), 60);
        let lay = layout::parse(&frame).unwrap();
        assert!(lay.has(Layout::IPV4 | Layout::L4));
        assert_eq!(lay.l4_dst_port(&frame), 53);
        assert!(crate::wire::checksum::verify_l4(&frame, &lay).unwrap());
    }

    #[test]
    fn arp_nd_and_vlan_flows() {
        let arp = "arp arp.op=2 arp.spa=10.0.0.9 arp.tpa=10.0.0.1"
            .parse::<FlowDesc>()
            .unwrap()
            .to_frame()
            .unwrap();
        let lay = layout::parse(&arp).unwrap();
        assert!(lay.has(Layout::ARP));
        assert_eq!(lay.arp_spa(&arp), Ipv4Addr::new(10, 0, 0, 9));
        let ns = "ip6.src=fd00::1 nd_ns nd.target=fd00::2 nd.sll=00:00:00:00:00:01"
            .parse::<FlowDesc>()
            .unwrap()
            .to_frame()
            .unwrap();
        let lay = layout::parse(&ns).unwrap();
        assert_eq!(lay.icmp_type(&ns), 135);
        assert!(crate::wire::checksum::verify_l4(&ns, &lay).unwrap());
        let tagged = "vlan.vid=7 ip4 tcp"
            .parse::<FlowDesc>()
            .unwrap()
            .to_frame()
            .unwrap();
        assert_eq!(layout::parse(&tagged).unwrap().vlan_id(), Some(7));
    }

    #[test]
    fn bad_descriptions_are_errors() {
        assert!(matches!(
            "eth.src=xyz".parse::<FlowDesc>(),
            Err(FlowError::BadValue { .. })
        ));
        assert!(matches!(
            "colour=blue".parse::<FlowDesc>(),
            Err(FlowError::UnknownField(_))
        ));
        assert!(matches!(
            "ip4 icmp6".parse::<FlowDesc>(),
            Err(FlowError::Inconsistent(_))
        ));
    }
}
