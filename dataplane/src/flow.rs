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

fn val<T: FromStr>(field: &str, v: &str) -> Result<T, FlowError> {
    v.parse().map_err(|_| FlowError::BadValue {
        field: field.into(),
        value: v.into(),
    })
}

/// A number (decimal or 0x hex) of at most `max`: never silently masked.
fn num(field: &str, v: &str, max: u64) -> Result<u64, FlowError> {
    let r = if let Some(h) = v.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else {
        v.parse()
    };
    let n = r.map_err(|_| FlowError::BadValue {
        field: field.into(),
        value: v.into(),
    })?;
    if n > max {
        return Err(FlowError::OutOfRange {
            field: field.into(),
            value: v.into(),
            max,
        });
    }
    Ok(n)
}

fn n8(field: &str, v: &str) -> Result<u8, FlowError> {
    num(field, v, u8::MAX.into()).map(|n| n as u8)
}

fn n16(field: &str, v: &str) -> Result<u16, FlowError> {
    num(field, v, u16::MAX.into()).map(|n| n as u16)
}

/// Which header of a layer the fields given so far chose ("ip4", "udp",
/// ...): a field of another one is a conflict, not a silent replacement.
fn claim(
    slot: &mut Option<&'static str>,
    header: &'static str,
    field: &str,
) -> Result<(), FlowError> {
    match *slot {
        Some(had) if had != header => Err(FlowError::Inconsistent(format!(
            "{field} conflicts with {had}: a packet has one header of each layer"
        ))),
        _ => {
            *slot = Some(header);
            Ok(())
        }
    }
}

/// The fields `switchyard trace` accepts, with the defaults of what is not
/// given (printed by `--help`).
pub const FIELDS_HELP: &str = "\
A flow is `field=value` words, or ovn-trace's microflow (`inport == \"vm1\" && eth.src == 00:00:00:00:00:01 && ip4.dst == 10.0.0.2 && udp.dst == 53`). Each field at most once; fields of two headers of one layer (ip4 and ip6, udp and tcp) are an error. Fields and defaults:
  inport=NAME                    the logical ingress port (or --inport)
  eth.src / eth.dst              00:00:00:00:00:01 / 00:00:00:00:00:02
  eth.type=N                     0x88b5 when no L3 is given (a frame of zeros)
  vlan.vid=0..4095               untagged
  arp, arp.op/sha/spa/tha/tpa    op 1 (request), sha eth.src, 10.0.0.1 asks for 10.0.0.2
  ip4, ip4.src / ip4.dst         10.0.0.1 / 10.0.0.2
  ip6, ip6.src / ip6.dst         fd00::1 / fd00::2
  ip.ttl=0..255                  64 (the hop limit for ip6)
  udp, udp.src / udp.dst         1024 / 1024 (ip4 unless ip6 is given)
  tcp, tcp.src / tcp.dst         1024 / 80
  tcp.flags=0..255               0x02 (SYN)
  icmp4, icmp4.type / .code      8 (echo request) / 0
  icmp6, icmp6.type / .code      128 (echo request) / 0 (needs ip6)
  nd_ns, nd_na, nd.target, nd.sll, nd.tll   neighbour discovery (needs ip6)
  payload=0..65535               0 bytes after the last header";

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
        // ovn-trace's microflow (`field == value` clauses joined by `&&`)
        // and `field=value` words, mixed as one likes: `==` becomes `=`,
        // spaces around it go, and the words are what whitespace parts.
        let mut text = s.replace("&&", " ").replace("==", "=");
        while text.contains(" =") || text.contains("= ") {
            text = text.replace(" =", "=").replace("= ", "=");
        }
        let clauses: Vec<&str> = text.split_whitespace().collect();
        let mut seen = std::collections::HashSet::new();
        // Applied once the IP version is known, whatever the order.
        let mut ttl = None;
        let (mut l3, mut l4): (Option<&'static str>, Option<&'static str>) = (None, None);
        for clause in clauses {
            let (k, v) = match clause.split_once('=') {
                Some((k, v)) => (k, v.trim_matches('"')),
                None => (clause, ""),
            };
            if k.is_empty() {
                continue;
            }
            if !seen.insert(k.to_string()) {
                return Err(FlowError::Inconsistent(format!("{k} is given twice")));
            }
            // The header each field belongs to.
            let header = match k.split('.').next().unwrap_or(k) {
                "arp" => Some((&mut l3, "arp")),
                "ip4" => Some((&mut l3, "ip4")),
                "ip6" | "nd_ns" | "nd_na" | "nd" => Some((&mut l3, "ip6")),
                "udp" => Some((&mut l4, "udp")),
                "tcp" => Some((&mut l4, "tcp")),
                "icmp4" => Some((&mut l4, "icmp4")),
                "icmp6" => Some((&mut l4, "icmp6")),
                "eth" if k == "eth.type" => Some((&mut l3, "eth.type")),
                _ => None,
            };
            if let Some((slot, h)) = header {
                claim(slot, h, k)?;
            }
            match k {
                "nd_ns" => claim(&mut l4, "nd_ns", k)?,
                "nd_na" => claim(&mut l4, "nd_na", k)?,
                _ => {}
            }
            match k {
                "inport" => f.inport = Some(v.to_string()),
                "eth.src" => f.eth_src = val(k, v)?,
                "eth.dst" => f.eth_dst = val(k, v)?,
                "eth.type" => f.l3 = L3::Other(n16(k, v)?),
                "vlan.vid" => f.vlan = Some(num(k, v, 4095)? as u16),
                "payload" => f.payload = num(k, v, u16::MAX.into())? as usize,
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
                            "arp.op" => *op = n16(k, v)?,
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
                "ip.ttl" => ttl = Some(n8(k, v)?),
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
                        "udp.src" => s = n16(k, v)?,
                        "udp.dst" => d = n16(k, v)?,
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
                        "tcp.src" => s = n16(k, v)?,
                        "tcp.dst" => d = n16(k, v)?,
                        "tcp.flags" => fl = n8(k, v)?,
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
                        "icmp4.type" => t = n8(k, v)?,
                        "icmp4.code" => c = n8(k, v)?,
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
                        "icmp6.type" => t = n8(k, v)?,
                        "icmp6.code" => c = n8(k, v)?,
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
        if let (Some(not_ip @ ("arp" | "eth.type")), true) = (l3, ttl.is_some() || l4.is_some()) {
            return Err(FlowError::Inconsistent(format!(
                "{not_ip} leaves no IP header for ip.ttl or a transport header"
            )));
        }
        if let Some(t) = ttl {
            match &mut f.l3 {
                L3::Ipv6 { hop_limit, .. } => *hop_limit = t,
                l3 => *ipv4_mut(l3).2 = t,
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

impl std::fmt::Display for FlowDesc {
    /// Every field of the packet, defaults included, in the syntax
    /// [`FlowDesc::from_str`] reads (what `switchyard trace` built).
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

    /// What `switchyard trace` was once given and silently misread: each
    /// is now an error naming the field, never a different packet.
    #[test]
    fn out_of_range_and_conflicting_fields_are_errors() {
        let err = |d: &str| d.parse::<FlowDesc>().unwrap_err().to_string();
        assert_eq!(
            err("udp.dst=70000"),
            "udp.dst=70000 is out of range (0 to 65535)"
        );
        assert_eq!(
            err("vlan.vid=4096"),
            "vlan.vid=4096 is out of range (0 to 4095)"
        );
        assert_eq!(err("ip.ttl=300"), "ip.ttl=300 is out of range (0 to 255)");
        assert_eq!(
            err("tcp.flags=0x100"),
            "tcp.flags=0x100 is out of range (0 to 255)"
        );
        assert!(err("udp.dst=53 tcp.dst=22").contains("tcp.dst conflicts with udp"));
        assert!(err("ip4.src=10.0.0.1 ip6.dst=fd00::2").contains("ip6.dst conflicts with ip4"));
        assert!(err("udp.dst=53 udp.dst=54").contains("udp.dst is given twice"));
        assert!(err("arp udp").contains("arp leaves no IP header"));
        assert!(err("eth.type=0x800 ip.ttl=3").contains("eth.type leaves no IP header"));
        assert!(err("ip6 nd_ns nd_na").contains("nd_na conflicts with nd_ns"));
    }

    /// ovn-trace's microflow syntax, spaces and all, builds the same
    /// packet as the word syntax; ip.ttl applies whatever its position.
    #[test]
    fn ovn_trace_microflows_parse_as_words_do() {
        let micro: FlowDesc = "inport == \"vm1\" && eth.src == 00:00:00:00:00:01 && ip.ttl == 5 && ip6.dst == fd00::9 && udp.dst == 53"
            .parse()
            .unwrap();
        let words: FlowDesc =
            "inport=vm1 eth.src=00:00:00:00:00:01 ip6.dst=fd00::9 udp.dst=53 ip.ttl=5"
                .parse()
                .unwrap();
        assert_eq!(micro, words);
        assert!(matches!(words.l3, L3::Ipv6 { hop_limit: 5, .. }));
        // What trace prints reads back as the same packet.
        assert_eq!(words.to_string().parse::<FlowDesc>().unwrap(), words);
        assert_eq!(
            "tcp".parse::<FlowDesc>().unwrap().to_string(),
            "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 \
             ip.ttl=64 tcp.src=1024 tcp.dst=80 tcp.flags=0x02 payload=0"
        );
        assert_eq!(words.l4, L4::Udp { src: 1024, dst: 53 });
    }
}
