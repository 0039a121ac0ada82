//! The forwarding pipeline: what happens to one packet, stage by stage.
//!
//! `parse -> ingress binding -> port security (L2, IP, ARP, ND) -> ARP/ND
//! responder -> L2 lookup -> egress port security -> output`, with OVN's
//! logical switch semantics. One implementation of the stages serves both
//! uses: the workers run it through [`decide_cached`] (flow cache in front,
//! [`NoTrace`], so every trace call compiles away) and `switchyard trace`
//! through [`decide`] with a [`TraceLog`], so a trace shows exactly what
//! forwarding does. Both return a [`Verdict`]; the worker carries it out
//! (transmit, flood copies, or drop and count).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::cache::{FlowCache, FlowKey};
use crate::drop::DropReason;
use crate::packet::{PacketBuf, PacketMeta, PortId, NO_LPORT};
use crate::tables::{mac_key, Lport, MacIps, PortType, Tables};
use crate::wire::layout::{self, Layout, Malformed};
use crate::wire::MacAddr;

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit on this local port.
    Output(PortId),
    /// Copy to every port of the datapath (by index) that passes egress
    /// checks, except the ingress logical port. `unknown_only` restricts the
    /// copies to ports with "unknown" addresses (unknown unicast).
    Flood { datapath: u16, unknown_only: bool },
    /// The packet was rewritten into a reply (ARP/ND responder): send it
    /// back out of the ingress port.
    Reply,
    /// Encapsulate to the remote chassis (index into the underlay's) that
    /// hosts logical port `lport`.
    Tunnel { chassis: u16, lport: u32 },
    /// Drop and count.
    Drop(DropReason),
    /// Taken by the switch, not forwarded and not a drop: ARP or neighbour
    /// discovery on the uplink it learned from, or the host's own traffic
    /// there (left to the kernel).
    Consumed,
}

/// Receives each stage's decision when tracing.
pub trait Tracer {
    /// False for the forwarding path: calls are compiled out.
    const ENABLED: bool;
    /// Records one stage's decision.
    fn record(&mut self, stage: &'static str, detail: fmt::Arguments<'_>);
}

/// The forwarding path's tracer: records nothing.
pub struct NoTrace;

impl Tracer for NoTrace {
    const ENABLED: bool = false;
    #[inline(always)]
    fn record(&mut self, _: &'static str, _: fmt::Arguments<'_>) {}
}

/// Collects stage decisions for `switchyard trace`.
#[derive(Debug, Default)]
pub struct TraceLog {
    pub stages: Vec<(&'static str, String)>,
}

impl Tracer for TraceLog {
    const ENABLED: bool = true;
    fn record(&mut self, stage: &'static str, detail: fmt::Arguments<'_>) {
        self.stages.push((stage, detail.to_string()));
    }
}

macro_rules! trace {
    ($t:expr, $stage:expr, $($arg:tt)*) => {
        if T::ENABLED {
            $t.record($stage, format_args!($($arg)*));
        }
    };
}

// Field readers: one bounds check per field (the parser has already
// checked that the header lies within the frame).
#[inline(always)]
fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes(*b[o..].first_chunk().expect("field within the frame"))
}

#[inline(always)]
fn mac_at(b: &[u8], o: usize) -> MacAddr {
    MacAddr(*b[o..].first_chunk().expect("field within the frame"))
}

#[inline(always)]
fn ip4_at(b: &[u8], o: usize) -> Ipv4Addr {
    Ipv4Addr::from(*b[o..].first_chunk::<4>().expect("field within the frame"))
}

#[inline(always)]
fn ip6_at(b: &[u8], o: usize) -> Ipv6Addr {
    Ipv6Addr::from(*b[o..].first_chunk::<16>().expect("field within the frame"))
}

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
/// RFC 4861 §4.3/§4.4 ICMPv6 types.
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;

/// One packet of a burst: its verdict from the flow cache, or from the
/// full pipeline (remembered in the cache when it depends on nothing beyond
/// the cache key).
#[inline]
pub fn decide_cached<B: PacketBuf>(
    tables: &Tables,
    generation: u64,
    cache: &mut FlowCache,
    buf: &mut B,
    in_port: PortId,
) -> Verdict {
    let (key, hash) = match layout::parse(buf.data()) {
        Ok(lay) => match flow_key(buf.data(), &lay, in_port) {
            Some(keyed) => keyed,
            None => return uncacheable(tables, buf, Ok(lay), in_port),
        },
        Err(m) => return uncacheable(tables, buf, Err(m), in_port),
    };
    if let Some(v) = cache.lookup(&key, hash, generation) {
        return v;
    }
    let v = cache_miss(tables, buf, in_port);
    cache.insert(key, hash, generation, v);
    v
}

/// The full pipeline for a packet the flow cache cannot hold (ARP, ND,
/// DHCP discover, VLAN-tagged, malformed), on its layout.
#[inline(never)]
fn uncacheable<B: PacketBuf>(
    tables: &Tables,
    buf: &mut B,
    lay: Result<Layout, Malformed>,
    in_port: PortId,
) -> Verdict {
    pipeline(
        tables,
        buf,
        lay,
        &mut PacketMeta::new(in_port),
        &mut NoTrace,
    )
}

/// The full pipeline on a flow-cache miss. Out of line, so the hit path
/// stays small; the packet is parsed again rather than its layout kept live
/// (spilled) across the lookup.
#[inline(never)]
fn cache_miss<B: PacketBuf>(tables: &Tables, buf: &mut B, in_port: PortId) -> Verdict {
    decide(tables, buf, &mut PacketMeta::new(in_port), &mut NoTrace)
}

/// One packet through the full pipeline, without the flow cache (trace,
/// tests, micro-benchmarks). `buf` is only modified for a [`Verdict::Reply`].
#[inline]
pub fn decide<B: PacketBuf, T: Tracer>(
    tables: &Tables,
    buf: &mut B,
    meta: &mut PacketMeta,
    t: &mut T,
) -> Verdict {
    let lay = layout::parse(buf.data());
    pipeline(tables, buf, lay, meta, t)
}

/// The full pipeline on a parsed packet.
fn pipeline<B: PacketBuf, T: Tracer>(
    tables: &Tables,
    buf: &mut B,
    lay: Result<Layout, Malformed>,
    meta: &mut PacketMeta,
    t: &mut T,
) -> Verdict {
    let frame = buf.data();
    let lay = match lay {
        Ok(l) => l,
        Err(m) => {
            trace!(t, "parse", "malformed frame ({} bytes): {m}", frame.len());
            return drop(meta, DropReason::Malformed(m));
        }
    };
    trace!(t, "parse", "{}", describe(frame, &lay));
    let lport_idx = tables.lport_of(meta.in_port);
    if lport_idx == NO_LPORT {
        trace!(
            t,
            "ingress",
            "local port {} is bound to no logical port",
            meta.in_port
        );
        return drop(meta, DropReason::NoBinding);
    }
    let lport = &tables.lports[lport_idx as usize];
    let dp = &tables.datapaths[lport.datapath as usize];
    meta.logical_inport = lport_idx;
    meta.datapath = dp.tunnel_key;
    trace!(
        t,
        "ingress",
        "inport \"{}\" on logical switch \"{}\" (datapath {})",
        lport.name,
        dp.name,
        dp.tunnel_key
    );
    slow_path(tables, lport, buf, &lay, meta, t)
}

#[inline]
fn drop(meta: &mut PacketMeta, r: DropReason) -> Verdict {
    meta.drop = Some(r);
    Verdict::Drop(r)
}

/// The cache key of a packet and its hash, or None if its verdict depends
/// on more than the key (ARP, ND, DHCP discover, VLAN tags, ...).
///
/// Words are loaded little-endian straight from the frame: word 0 is
/// eth.dst and the ingress port, word 1 eth.src and the ethertype (so keys
/// of different ethertypes never collide), then the IP addresses (zero for
/// what a type does not have). The hash is computed per type, so the zero
/// words fold away.
#[inline(always)]
fn flow_key(frame: &[u8], lay: &Layout, in_port: PortId) -> Option<(FlowKey, u64)> {
    if lay.has(Layout::VLAN) {
        return None;
    }
    // No VLAN: the L3 header starts at 14, and the parser validated the
    // whole IPv4 (20) or IPv6 (40) header.
    let w = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let eth = |h: &[u8]| {
        let w0 = (w(h, 0) & 0xffff_ffff_ffff) | (u64::from(in_port) << 48);
        (w0, w(h, 6))
    };
    let keyed = |k: [u64; 6]| {
        let k = FlowKey(k);
        Some((k, k.hash()))
    };
    match lay.eth_type {
        ETH_IPV4 => {
            let h: &[u8; 34] = frame.get(..34)?.try_into().ok()?;
            let (w0, w1) = eth(h);
            let addrs = w(h, 26); // ip4.src, ip4.dst
            if addrs as u32 == 0 {
                return None; // DHCP discover: depends on UDP ports.
            }
            keyed([w0, w1, addrs, 0, 0, 0])
        }
        ETH_IPV6 => {
            if lay.ip_proto == PROTO_ICMPV6 {
                return None; // ND has its own port security and responder.
            }
            let h: &[u8; 54] = frame.get(..54)?.try_into().ok()?;
            let (w0, w1) = eth(h);
            let (s0, s1) = (w(h, 22), w(h, 30));
            if s0 | s1 == 0 {
                return None;
            }
            keyed([w0, w1, s0, s1, w(h, 38), w(h, 46)])
        }
        ETH_ARP => None,
        _ => {
            let h: &[u8; 14] = frame.get(..14)?.try_into().ok()?;
            let (w0, w1) = eth(h);
            keyed([w0, w1, 0, 0, 0, 0])
        }
    }
}

fn slow_path<B: PacketBuf, T: Tracer>(
    tables: &Tables,
    lport: &Lport,
    buf: &mut B,
    lay: &Layout,
    meta: &mut PacketMeta,
    t: &mut T,
) -> Verdict {
    let frame = buf.data();
    // OVN ls_in_check_port_sec: VM ports do not accept VLAN-tagged frames.
    if lay.has(Layout::VLAN) {
        trace!(
            t,
            "port_security",
            "VLAN-tagged frame (vid {}) on a VM port",
            lay.vlan_tci & 0x0fff
        );
        return drop(meta, DropReason::VlanTagged);
    }
    let src = mac_at(frame, 6);
    let dst = mac_at(frame, 0);
    if src.is_multicast() {
        trace!(t, "port_security", "eth.src {src} is multicast");
        return drop(meta, DropReason::EthSrcMulticast);
    }
    if let Err(r) = ingress_port_security(lport, frame, lay, src, t) {
        return drop(meta, r);
    }

    // ARP/ND responder (OVN ls_in_arp_rsp): not for requests arriving on a
    // localnet port, whose answers belong to the physical network.
    if lport.port_type != PortType::Localnet {
        if let Some(v) = respond(tables, lport, meta, buf, lay, t) {
            return v;
        }
    }
    let frame = buf.data();

    // L2 lookup (OVN ls_in_l2_lkup).
    let dp_idx = lport.datapath;
    if dst.is_multicast() {
        trace!(
            t,
            "l2_lookup",
            "eth.dst {dst} is broadcast/multicast: flood"
        );
        return Verdict::Flood {
            datapath: dp_idx,
            unknown_only: false,
        };
    }
    let Some(&out_idx) = tables.macs.get(&mac_key(dp_idx, dst)) else {
        if tables.datapaths[dp_idx as usize].unknown.is_empty() {
            trace!(
                t,
                "l2_lookup",
                "eth.dst {dst} unknown and no port has \"unknown\" addresses"
            );
            return drop(meta, DropReason::UnknownUnicast);
        }
        trace!(
            t,
            "l2_lookup",
            "eth.dst {dst} unknown: to the ports with \"unknown\" addresses"
        );
        return Verdict::Flood {
            datapath: dp_idx,
            unknown_only: true,
        };
    };
    let out = &tables.lports[out_idx as usize];
    meta.logical_outport = out_idx;
    trace!(
        t,
        "l2_lookup",
        "eth.dst {dst} is \"{}\": outport = \"{}\"",
        out.name,
        out.name
    );
    if out_idx == meta.logical_inport {
        trace!(t, "egress", "outport equals inport");
        return drop(meta, DropReason::Hairpin);
    }
    if !egress_allowed(out, frame, lay) {
        trace!(
            t,
            "egress_port_security",
            "destination not allowed by \"{}\"'s port security",
            out.name
        );
        return drop(meta, DropReason::PortSecurityEgress);
    }
    match (out.local_port, out.chassis) {
        (Some(p), _) => {
            trace!(t, "output", "to local port {p}");
            Verdict::Output(p)
        }
        // A switch with a local localnet port reaches other chassis over
        // the physical network (OVN does not tunnel such switches).
        (None, Some(_)) if lport.port_type == PortType::Localnet => {
            trace!(
                t,
                "output",
                "\"{}\" is on another chassis, which has the physical network itself",
                out.name
            );
            drop(meta, DropReason::NoLocalPort)
        }
        (None, Some(_)) if tables.datapaths[dp_idx as usize].localnet.is_some() => {
            let ln = tables.datapaths[dp_idx as usize].localnet.expect("checked");
            let ln = &tables.lports[ln as usize];
            let p = ln.local_port.expect("a bound localnet port");
            trace!(
                t,
                "output",
                "\"{}\" is on another chassis: out of localnet port \"{}\" (local port {p})",
                out.name,
                ln.name
            );
            Verdict::Output(p)
        }
        (None, Some(c)) => {
            if T::ENABLED {
                let u = tables.underlay.as_ref().map(|u| &u.chassis[usize::from(c)]);
                if let Some(rc) = u {
                    trace!(
                        t,
                        "output",
                        "\"{}\" is on chassis {}: {:?} tunnel to {}, egress key {}",
                        out.name,
                        rc.name,
                        rc.encap,
                        rc.ip,
                        out.tunnel_key
                    );
                }
            }
            Verdict::Tunnel {
                chassis: c,
                lport: out_idx,
            }
        }
        (None, None) => {
            trace!(t, "output", "\"{}\" is not bound on this chassis", out.name);
            drop(meta, DropReason::NoLocalPort)
        }
    }
}

/// OVN's ls_in_port_sec_l2 / _ip / _nd stages.
fn ingress_port_security<T: Tracer>(
    lport: &Lport,
    frame: &[u8],
    lay: &Layout,
    src: MacAddr,
    t: &mut T,
) -> Result<(), DropReason> {
    let ps = &lport.port_security;
    if !ps.enabled {
        trace!(
            t,
            "port_security",
            "\"{}\" has no port security",
            lport.name
        );
        return Ok(());
    }
    let Some(entry) = ps.entry(src) else {
        trace!(
            t,
            "port_security",
            "eth.src {src} is not allowed on \"{}\"",
            lport.name
        );
        return Err(DropReason::PortSecurityMac);
    };
    let has_ip = !entry.ipv4.is_empty() || !entry.ipv6.is_empty();
    let l3 = lay.l3 as usize;
    match lay.eth_type {
        ETH_ARP => {
            let sha = mac_at(frame, l3 + 8);
            let spa = ip4_at(frame, l3 + 14);
            let ok = sha == src && (!has_ip || entry.ipv4.iter().any(|c| c.contains(spa)));
            if !ok {
                trace!(
                    t,
                    "port_security",
                    "arp.sha {sha} / arp.spa {spa} not allowed on \"{}\"",
                    lport.name
                );
                return Err(DropReason::PortSecurityArp);
            }
        }
        ETH_IPV4 if has_ip => {
            let s = ip4_at(frame, l3 + 12);
            let d = ip4_at(frame, l3 + 16);
            let dhcp_discover = s.is_unspecified()
                && d.is_broadcast()
                && lay.ip_proto == PROTO_UDP
                && lay.has(Layout::L4)
                && be16(frame, lay.l4 as usize) == 68
                && be16(frame, lay.l4 as usize + 2) == 67;
            if !dhcp_discover && !entry.ipv4.iter().any(|c| c.contains(s)) {
                trace!(
                    t,
                    "port_security",
                    "ip4.src {s} not allowed on \"{}\"",
                    lport.name
                );
                return Err(DropReason::PortSecurityIp);
            }
        }
        ETH_IPV6 => {
            let s = ip6_at(frame, l3 + 8);
            if has_ip {
                let allowed = entry.ipv6.iter().any(|c| c.contains(s))
                    || (!entry.ipv6.is_empty() && (s == link_local(src) || s.is_unspecified()));
                if !allowed {
                    trace!(
                        t,
                        "port_security",
                        "ip6.src {s} not allowed on \"{}\"",
                        lport.name
                    );
                    return Err(DropReason::PortSecurityIp);
                }
            }
            if lay.ip_proto == PROTO_ICMPV6 && lay.has(Layout::L4) {
                if let Err(r) = nd_port_security(entry, frame, lay, src) {
                    trace!(t, "port_security", "{r} on \"{}\"", lport.name);
                    return Err(r);
                }
            }
        }
        _ => {}
    }
    trace!(
        t,
        "port_security",
        "eth.src {src} allowed on \"{}\"",
        lport.name
    );
    Ok(())
}

/// OVN ls_in_port_sec_nd: an NS's source link-layer option and an NA's
/// target link-layer option must be the port's MAC; an NA's target must be
/// one of the port's addresses (RFC 4861 §4.3, §4.4, §4.6.1).
fn nd_port_security(
    entry: &MacIps,
    frame: &[u8],
    lay: &Layout,
    src: MacAddr,
) -> Result<(), DropReason> {
    let l4 = lay.l4 as usize;
    let ty = frame[l4];
    if ty != ND_NS && ty != ND_NA {
        return Ok(());
    }
    let end = lay.l3_end as usize;
    if end < l4 + 24 {
        return Err(DropReason::Malformed(Malformed::IcmpTruncated));
    }
    let want_opt = if ty == ND_NS { 1 } else { 2 };
    let mut o = l4 + 24;
    while o + 2 <= end {
        let len = frame[o + 1] as usize * 8;
        if len == 0 || o + len > end {
            return Err(DropReason::Malformed(Malformed::IcmpTruncated));
        }
        if frame[o] == want_opt && len >= 8 {
            let ll = mac_at(frame, o + 2);
            if ll != src && ll != MacAddr([0; 6]) {
                return Err(DropReason::PortSecurityNd);
            }
        }
        o += len;
    }
    if ty == ND_NA && !entry.ipv6.is_empty() {
        let target = ip6_at(frame, l4 + 8);
        if target != link_local(src) && !entry.ipv6.iter().any(|c| c.contains(target)) {
            return Err(DropReason::PortSecurityNd);
        }
    }
    Ok(())
}

/// The EUI-64 link-local address of a MAC (RFC 4291 appendix A).
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// OVN ls_out_port_sec_l2 / _ip: what a port with port security may receive.
#[inline]
pub fn egress_allowed(out: &Lport, frame: &[u8], lay: &Layout) -> bool {
    let ps = &out.port_security;
    if !ps.enabled {
        return true;
    }
    let dst = mac_at(frame, 0);
    if dst.is_multicast() {
        return true;
    }
    let Some(entry) = ps.entry(dst) else {
        return false;
    };
    if entry.ipv4.is_empty() && entry.ipv6.is_empty() {
        return true;
    }
    let l3 = lay.l3 as usize;
    match lay.eth_type {
        ETH_IPV4 => {
            let d = ip4_at(frame, l3 + 16);
            d.is_broadcast()
                || d.is_multicast()
                || entry.ipv4.iter().any(|c| {
                    c.contains(d)
                        || (c.prefix < 32
                            && (u32::from(d) | (u32::MAX >> c.prefix)) == u32::from(d))
                })
        }
        ETH_IPV6 => {
            let d = ip6_at(frame, l3 + 24);
            d.is_multicast()
                || d == link_local(dst)
                || (!entry.ipv6.is_empty() && entry.ipv6.iter().any(|c| c.contains(d)))
        }
        _ => true,
    }
}

/// The ARP and ND responder: rewrites a request for an address owned by
/// another port of the same switch into the reply, in place.
fn respond<B: PacketBuf, T: Tracer>(
    tables: &Tables,
    lport: &Lport,
    meta: &mut PacketMeta,
    buf: &mut B,
    lay: &Layout,
    t: &mut T,
) -> Option<Verdict> {
    let l3 = lay.l3 as usize;
    match lay.eth_type {
        ETH_ARP => {
            let frame = buf.data();
            // RFC 826: opcode 1 is a request.
            if be16(frame, l3 + 6) != 1 {
                return None;
            }
            let tpa = ip4_at(frame, l3 + 24);
            let owner = tables.arp.get(&(lport.datapath, tpa))?;
            if owner.lport == meta.logical_inport {
                return None; // A port asking for its own address (probe/GARP).
            }
            trace!(
                t,
                "arp_responder",
                "arp.tpa {tpa} is \"{}\"'s ({}): reply from the switch",
                tables.lports[owner.lport as usize].name,
                owner.mac
            );
            crate::responder::arp_reply(buf.data_mut(), l3, owner.mac, tpa);
            Some(Verdict::Reply)
        }
        ETH_IPV6 if lay.ip_proto == PROTO_ICMPV6 && lay.has(Layout::L4) => {
            let frame = buf.data();
            let l4 = lay.l4 as usize;
            if frame[l4] != ND_NS || (lay.l3_end as usize) < l4 + 24 {
                return None;
            }
            let target = ip6_at(frame, l4 + 8);
            let owner = tables.nd.get(&(lport.datapath, target))?;
            let src_ip = ip6_at(frame, l3 + 8);
            if owner.lport == meta.logical_inport || src_ip.is_unspecified() {
                return None; // DAD probes are not answered for the owner.
            }
            trace!(
                t,
                "nd_responder",
                "nd.target {target} is \"{}\"'s ({}): NA from the switch",
                tables.lports[owner.lport as usize].name,
                owner.mac
            );
            if !crate::responder::neighbor_advert(buf, l3, target, owner.mac) {
                return None;
            }
            Some(Verdict::Reply)
        }
        _ => None,
    }
}

/// One line describing a parsed frame, for traces.
pub fn describe(frame: &[u8], lay: &Layout) -> String {
    let mut s = format!("eth {} > {}", mac_at(frame, 6), mac_at(frame, 0));
    if lay.has(Layout::VLAN) {
        s += &format!(" vlan {}", lay.vlan_tci & 0x0fff);
    }
    let l3 = lay.l3 as usize;
    match lay.eth_type {
        ETH_ARP => {
            let op = be16(frame, l3 + 6);
            s += &format!(
                " arp op {op} sha {} spa {} tpa {}",
                mac_at(frame, l3 + 8),
                ip4_at(frame, l3 + 14),
                ip4_at(frame, l3 + 24)
            );
        }
        ETH_IPV4 => {
            s += &format!(
                " ip4 {} > {} proto {}",
                ip4_at(frame, l3 + 12),
                ip4_at(frame, l3 + 16),
                lay.ip_proto
            );
        }
        ETH_IPV6 => {
            s += &format!(
                " ip6 {} > {} next {}",
                ip6_at(frame, l3 + 8),
                ip6_at(frame, l3 + 24),
                lay.ip_proto
            );
        }
        other => s += &format!(" type 0x{other:04x}"),
    }
    if lay.has(Layout::L4) && matches!(lay.ip_proto, 6 | 17) {
        let l4 = lay.l4 as usize;
        s += &format!(" ports {} > {}", be16(frame, l4), be16(frame, l4 + 2));
    }
    s
}

/// The local ports a flooded packet is copied to: every port of the
/// datapath (or only those with "unknown" addresses) except the ingress
/// one, bound on this chassis and allowed by its egress port security.
pub fn flood_targets(
    tables: &Tables,
    datapath: u16,
    unknown_only: bool,
    inport: u32,
    frame: &[u8],
    out: &mut Vec<PortId>,
) {
    out.clear();
    let Ok(lay) = layout::parse(frame) else {
        return;
    };
    let dp = &tables.datapaths[datapath as usize];
    let members = if unknown_only { &dp.unknown } else { &dp.ports };
    for &idx in members {
        if idx == inport {
            continue;
        }
        let lp = &tables.lports[idx as usize];
        // From a tunnel: the sender's chassis had the physical network
        // itself, so never out of our localnet port (no duplicates there).
        if inport == NO_LPORT && lp.port_type == PortType::Localnet {
            continue;
        }
        if let Some(p) = lp.local_port {
            if egress_allowed(lp, frame, &lay) {
                out.push(p);
            }
        }
    }
}

/// The remote chassis a flooded packet is copied to (one copy each, with
/// OVN's multicast group as egress): those hosting ports of the datapath,
/// or only "unknown" ones for unknown unicast.
pub fn flood_chassis(tables: &Tables, datapath: u16, unknown_only: bool) -> &[u16] {
    let dp = &tables.datapaths[datapath as usize];
    if dp.localnet.is_some() {
        // The other chassis get it from the physical network.
        &[]
    } else if unknown_only {
        &dp.remote_unknown
    } else {
        &dp.remote_chassis
    }
}

/// [`tunnel_delivery`] through a flow cache of its own: the verdict for a
/// decapsulated frame depends only on the datapath, the egress the tunnel
/// names and the inner destination (MAC, ethertype, IP), which is the key.
#[inline]
pub fn tunnel_delivery_cached(
    tables: &Tables,
    generation: u64,
    cache: &mut FlowCache,
    frame: &[u8],
    r: &crate::overlay::Received,
) -> Verdict {
    let keyed = match layout::parse(frame) {
        Ok(lay) => decap_key(frame, &lay, r),
        Err(_) => None,
    };
    let Some((key, hash)) = keyed else {
        return tunnel_delivery(tables, frame, r, &mut NoTrace);
    };
    if let Some(v) = cache.lookup(&key, hash, generation) {
        return v;
    }
    let v = tunnel_delivery(tables, frame, r, &mut NoTrace);
    cache.insert(key, hash, generation, v);
    v
}

/// The decapsulation cache key: datapath and eth.dst, the egress (kind and
/// key) and ethertype, then the inner IP destination; None for what it
/// cannot key (VLAN-tagged inner frames).
#[inline(always)]
fn decap_key(frame: &[u8], lay: &Layout, r: &crate::overlay::Received) -> Option<(FlowKey, u64)> {
    use crate::overlay::Egress;
    if lay.has(Layout::VLAN) {
        return None;
    }
    let w = |o: usize| {
        frame
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    let h: &[u8; 14] = frame.get(..14)?.try_into().ok()?;
    let dst = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], 0, 0]);
    let egress = match r.egress {
        Egress::Port(k) => 1 << 16 | u64::from(k),
        Egress::Group(g) => 2 << 16 | u64::from(g),
        Egress::Lookup => 3 << 16,
    };
    let w1 = u64::from(be16(frame, 12)) | egress << 16;
    let (a, b) = match lay.eth_type {
        ETH_IPV4 => (u64::from(u32::from(ip4_at(frame, 30))), 0),
        ETH_IPV6 => (w(38)?, w(46)?),
        _ => (0, 0),
    };
    let k = FlowKey([dst | u64::from(r.datapath) << 48, w1, a, b, 0, 0]);
    Some((k, k.hash()))
}

/// Where a frame decapsulated on datapath `r.datapath` goes on this
/// chassis (OVN's egress pipeline: the sender ran the ingress one): the
/// egress port the tunnel names, a local flood for a multicast group, or an
/// L2 lookup when a plain VTEP names no port. Used by the workers and by
/// [`trace_uplink`].
pub fn tunnel_delivery<T: Tracer>(
    tables: &Tables,
    frame: &[u8],
    r: &crate::overlay::Received,
    t: &mut T,
) -> Verdict {
    use crate::overlay::{Egress, MC_UNKNOWN};
    let Ok(lay) = layout::parse(frame) else {
        trace!(t, "decap", "the inner frame is malformed");
        return Verdict::Drop(DropReason::TunnelMalformed);
    };
    trace!(t, "decap", "inner {}", describe(frame, &lay));
    let dp = r.datapath;
    let flood = |unknown_only| Verdict::Flood {
        datapath: dp,
        unknown_only,
    };
    let out = match r.egress {
        Egress::Port(key) => {
            trace!(t, "tunnel_egress", "egress port key {key}");
            tables.datapaths[usize::from(dp)]
                .ports_by_key
                .get(u32::from(key))
        }
        Egress::Group(g) => {
            trace!(t, "tunnel_egress", "multicast group {g}: every local port");
            return flood(g == MC_UNKNOWN);
        }
        Egress::Lookup => {
            let dst = mac_at(frame, 0);
            if dst.is_multicast() {
                trace!(
                    t,
                    "tunnel_egress",
                    "no egress port (VTEP), eth.dst {dst} is multicast: flood locally"
                );
                return flood(false);
            }
            match tables.macs.get(&mac_key(dp, dst)) {
                Some(&i) => {
                    trace!(
                        t,
                        "tunnel_egress",
                        "no egress port (VTEP): eth.dst {dst} looked up"
                    );
                    Some(i)
                }
                None => {
                    trace!(
                        t,
                        "tunnel_egress",
                        "no egress port (VTEP), eth.dst {dst} unknown: to \"unknown\" ports"
                    );
                    return flood(true);
                }
            }
        }
    };
    let Some(lp) = out.map(|i| &tables.lports[i as usize]) else {
        trace!(t, "tunnel_egress", "no such port on the datapath");
        return Verdict::Drop(DropReason::TunnelUnknownPort);
    };
    let Some(p) = lp.local_port else {
        trace!(
            t,
            "tunnel_egress",
            "\"{}\" is not bound on this chassis",
            lp.name
        );
        return Verdict::Drop(DropReason::TunnelUnknownPort);
    };
    if !egress_allowed(lp, frame, &lay) {
        trace!(
            t,
            "egress_port_security",
            "destination not allowed by \"{}\"'s port security",
            lp.name
        );
        return Verdict::Drop(DropReason::PortSecurityEgress);
    }
    trace!(t, "output", "to \"{}\" on local port {p}", lp.name);
    Verdict::Output(p)
}

/// Traces a frame as received on the uplink (`switchyard trace --uplink`):
/// tunnel checks, decapsulation and local delivery, through the same code
/// as forwarding. Nothing is learned or transmitted.
pub fn trace_uplink<B: PacketBuf>(tables: &Tables, mut buf: B) -> TraceReport {
    let mut log = TraceLog::default();
    let scratch = crate::overlay::Neighbors::default();
    let Some(u) = tables.underlay.as_ref() else {
        log.record("uplink", format_args!("this chassis has no uplink"));
        return TraceReport {
            stages: log.stages,
            verdict: Verdict::Drop(DropReason::NoBinding),
            outputs: Vec::new(),
            frame: buf.data().to_vec(),
        };
    };
    let got = crate::overlay::receive(&mut buf, u, &scratch, |k| tables.datapath_of_key(k));
    let mut outputs = Vec::new();
    let verdict = match got {
        Err(r) => {
            log.record("uplink", format_args!("{} ({r})", r.as_str()));
            Verdict::Drop(r)
        }
        Ok(crate::overlay::Uplink::NeighborReply) => {
            log.record(
                "uplink",
                format_args!(
                    "ARP request or neighbour solicitation for our tunnel address {}: answered",
                    u.ip
                ),
            );
            outputs.push(u.port);
            Verdict::Reply
        }
        Ok(crate::overlay::Uplink::Neighbor) => {
            log.record(
                "uplink",
                format_args!("ARP/ND: remote endpoints learned from it, nothing sent"),
            );
            Verdict::Consumed
        }
        Ok(crate::overlay::Uplink::NotOurs) => {
            log.record(
                "uplink",
                format_args!(
                    "not for our tunnel address {}: the host's own traffic",
                    u.ip
                ),
            );
            Verdict::Consumed
        }
        Ok(crate::overlay::Uplink::Tunnel(r)) => {
            let dp = &tables.datapaths[usize::from(r.datapath)];
            log.record(
                "uplink",
                format_args!(
                    "tunnel packet for datapath {} (\"{}\"), ingress port key {}",
                    dp.tunnel_key, dp.name, r.ingress_key
                ),
            );
            buf.trim_front(r.outer_len);
            let v = tunnel_delivery(tables, buf.data(), &r, &mut log);
            match v {
                Verdict::Output(p) => outputs.push(p),
                Verdict::Flood {
                    datapath,
                    unknown_only,
                } => {
                    flood_targets(
                        tables,
                        datapath,
                        unknown_only,
                        NO_LPORT,
                        buf.data(),
                        &mut outputs,
                    );
                    log.record("output", format_args!("flood to local ports {outputs:?}"));
                }
                _ => {}
            }
            v
        }
    };
    if let Verdict::Drop(r) = verdict {
        if outputs.is_empty() {
            log.record("drop", format_args!("{} ({r})", r.as_str()));
        }
    }
    TraceReport {
        stages: log.stages,
        verdict,
        outputs,
        frame: buf.data().to_vec(),
    }
}

/// The result of tracing one packet.
#[derive(Debug)]
pub struct TraceReport {
    pub stages: Vec<(&'static str, String)>,
    pub verdict: Verdict,
    /// Local ports the packet would leave by.
    pub outputs: Vec<PortId>,
    /// The packet as it would leave (differs from the input for replies).
    pub frame: Vec<u8>,
}

/// Runs one packet through the pipeline, recording every decision
/// (`switchyard trace`). Nothing is transmitted.
pub fn trace<B: PacketBuf>(tables: &Tables, in_port: PortId, mut buf: B) -> TraceReport {
    let mut meta = PacketMeta::new(in_port);
    meta.trace = true;
    let mut log = TraceLog::default();
    let verdict = decide(tables, &mut buf, &mut meta, &mut log);
    let mut outputs = Vec::new();
    match verdict {
        Verdict::Output(p) => outputs.push(p),
        Verdict::Reply => {
            log.record(
                "output",
                format_args!("reply out of the ingress port {in_port}"),
            );
            outputs.push(in_port);
        }
        Verdict::Flood {
            datapath,
            unknown_only,
        } => {
            flood_targets(
                tables,
                datapath,
                unknown_only,
                meta.logical_inport,
                buf.data(),
                &mut outputs,
            );
            log.record("output", format_args!("flood to local ports {outputs:?}"));
            let remote = flood_chassis(tables, datapath, unknown_only);
            if let Some(u) = tables.underlay.as_ref().filter(|_| !remote.is_empty()) {
                let names: Vec<&str> = remote
                    .iter()
                    .map(|&c| u.chassis[usize::from(c)].name.as_str())
                    .collect();
                log.record(
                    "output",
                    format_args!("and one tunnel copy to each of chassis {names:?}"),
                );
            }
        }
        Verdict::Tunnel { chassis, .. } => {
            if let Some(u) = &tables.underlay {
                log.record(
                    "output",
                    format_args!(
                        "encapsulate to {} and send out of the uplink (local port {})",
                        u.chassis[usize::from(chassis)].ip,
                        u.port
                    ),
                );
                outputs.push(u.port);
            }
        }
        Verdict::Drop(r) => log.record("drop", format_args!("{} ({r})", r.as_str())),
        // The forwarding pipeline consumes nothing; only the uplink does.
        Verdict::Consumed => {}
    }
    TraceReport {
        stages: log.stages,
        verdict,
        outputs,
        frame: buf.data().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowDesc;
    use crate::packet::HeapBuf;
    use crate::tables::{LogicalPort, LogicalSwitch};

    fn lport(name: &str, key: u32, addr: &str, ps: bool, local: PortId) -> LogicalPort {
        LogicalPort {
            local_port: Some(local),
            ..LogicalPort::vif(name, key, addr.parse().unwrap(), ps)
        }
    }

    /// The flow cache answers exactly what the full pipeline answers, on
    /// its first sight of a packet and on every later one, for frames that
    /// differ from each other in one field at a time.
    #[test]
    fn cached_verdicts_equal_the_full_pipeline() {
        let tables = Tables::compile(&[LogicalSwitch {
            name: "ls".into(),
            tunnel_key: 1,
            ports: vec![
                lport("vm1", 1, "00:00:00:00:00:01 10.0.0.1 fd00::1", true, 0),
                lport("vm2", 2, "00:00:00:00:00:02 10.0.0.2 fd00::2", true, 1),
                lport("vm3", 3, "00:00:00:00:00:03 10.0.0.3", false, 2),
                lport("any", 4, "unknown", false, 3),
            ],
        }])
        .unwrap();
        let mut frames = Vec::new();
        for src in [
            "00:00:00:00:00:01",
            "00:00:00:00:00:03",
            "00:00:00:00:00:09",
        ] {
            for dst in [
                "00:00:00:00:00:01",
                "00:00:00:00:00:02",
                "00:00:00:00:00:07",
                "ff:ff:ff:ff:ff:ff",
            ] {
                let eth = format!("eth.src={src} eth.dst={dst}");
                for l3 in [
                    "ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53",
                    "ip4.src=10.0.0.3 ip4.dst=10.0.0.2 udp.dst=53",
                    "ip4.src=10.0.0.1 ip4.dst=10.0.0.3 tcp.dst=80",
                    "ip4.src=10.9.0.1 ip4.dst=10.0.0.2 udp.dst=53",
                    "ip4.src=0.0.0.0 ip4.dst=255.255.255.255 udp.src=68 udp.dst=67",
                    "ip6.src=fd00::1 ip6.dst=fd00::2 udp.dst=53",
                    "ip6.src=fd00::9 ip6.dst=fd00::2 udp.dst=53",
                    "ip6.src=fd00::1 ip6.dst=fd00::3 tcp.dst=80",
                    "arp arp.spa=10.0.0.1 arp.tpa=10.0.0.2",
                    "eth.type=0x88b5",
                    "eth.type=0x88b6",
                    "vlan.vid=7 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53",
                ] {
                    let f = format!("{eth} {l3}").parse::<FlowDesc>().unwrap();
                    frames.push(f.to_frame().unwrap());
                }
            }
        }
        // Small enough that sets overflow and entries get replaced, large
        // enough that later rounds hit.
        let mut cache = FlowCache::new(512);
        for round in 0..3 {
            for f in &frames {
                for in_port in 0..5 {
                    let mut reference = HeapBuf::from_frame(f);
                    let want = decide(
                        &tables,
                        &mut reference,
                        &mut PacketMeta::new(in_port),
                        &mut NoTrace,
                    );
                    let mut buf = HeapBuf::from_frame(f);
                    let got = decide_cached(&tables, 1, &mut cache, &mut buf, in_port);
                    assert_eq!(got, want, "round {round}, in_port {in_port}: {f:02x?}");
                    assert_eq!(buf.data(), reference.data());
                }
            }
        }
        assert!(cache.hits > 0);
    }

    /// The decapsulation cache answers what [`tunnel_delivery`] answers, for
    /// two datapaths sharing MACs, every kind of egress and inner frames
    /// that differ in one field at a time.
    #[test]
    fn cached_deliveries_equal_the_uncached_ones() {
        use crate::overlay::{Egress, Received, MC_FLOOD, MC_UNKNOWN};
        let tables = Tables::compile(&[
            LogicalSwitch {
                name: "ls1".into(),
                tunnel_key: 1,
                ports: vec![
                    lport("a1", 1, "00:00:00:00:00:01 10.0.0.1 fd00::1", true, 0),
                    lport("a2", 2, "00:00:00:00:00:02 10.0.0.2", false, 1),
                    lport("a3", 3, "unknown", false, 2),
                ],
            },
            LogicalSwitch {
                name: "ls2".into(),
                tunnel_key: 2,
                ports: vec![
                    lport("b1", 1, "00:00:00:00:00:01 10.0.0.1", false, 3),
                    lport("b2", 2, "00:00:00:00:00:02 10.0.0.2 fd00::2", true, 4),
                ],
            },
        ])
        .unwrap();
        let mut frames = Vec::new();
        for dst in [
            "00:00:00:00:00:01",
            "00:00:00:00:00:02",
            "00:00:00:00:00:07",
            "ff:ff:ff:ff:ff:ff",
        ] {
            for l3 in [
                "ip4.src=10.0.0.9 ip4.dst=10.0.0.1 udp.dst=53",
                "ip4.src=10.0.0.9 ip4.dst=10.0.0.2 udp.dst=53",
                "ip4.src=10.0.0.9 ip4.dst=10.0.0.5 tcp.dst=80",
                "ip6.src=fd00::9 ip6.dst=fd00::1 udp.dst=53",
                "ip6.src=fd00::9 ip6.dst=fd00::2 udp.dst=53",
                "arp arp.spa=10.0.0.9 arp.tpa=10.0.0.1",
                "eth.type=0x88b5",
                "vlan.vid=7 ip4.src=10.0.0.9 ip4.dst=10.0.0.1 udp.dst=53",
            ] {
                let f = format!("eth.src=00:00:00:00:00:09 eth.dst={dst} {l3}");
                frames.push(f.parse::<FlowDesc>().unwrap().to_frame().unwrap());
            }
        }
        frames.push(vec![0; 10]); // malformed
        let egresses = [
            Egress::Port(1),
            Egress::Port(2),
            Egress::Port(3),
            Egress::Port(9),
            Egress::Group(MC_FLOOD),
            Egress::Group(MC_UNKNOWN),
            Egress::Lookup,
        ];
        let mut cache = FlowCache::new(64);
        for round in 0..3 {
            for f in &frames {
                for datapath in [0, 1] {
                    for egress in egresses {
                        let r = Received {
                            datapath,
                            ingress_key: 5,
                            egress,
                            outer_len: 0,
                        };
                        let want = tunnel_delivery(&tables, f, &r, &mut NoTrace);
                        let got = tunnel_delivery_cached(&tables, 1, &mut cache, f, &r);
                        assert_eq!(got, want, "round {round}, {r:?}: {f:02x?}");
                    }
                }
            }
        }
        assert!(cache.hits > 0);
    }
}
