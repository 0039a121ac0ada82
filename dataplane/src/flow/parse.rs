//! Reading a flow description: `field=value` words or ovn-trace's
//! microflow, checked so that what is built is exactly what was asked
//! (no value masked to fit, no field silently replaced by another).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::{FlowDesc, FlowError, L3, L4};
use crate::wire::MacAddr;

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
