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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::tables::{Encap, Underlay};
use crate::wire::{checksum, geneve, icmpv6, vxlan, IpProtocol, MacAddr};

/// OVN's multicast group for flooding (`MC_FLOOD`).
pub const MC_FLOOD: u16 = 32768;
/// OVN's multicast group for unknown unicast (`MC_UNKNOWN`).
pub const MC_UNKNOWN: u16 = 32769;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const IP_UDP: u8 = 17;
const IP_ICMPV6: u8 = 58;
const IPV6_FRAGMENT: u8 = 44;
/// Outer Ethernet + IPv4 + UDP.
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
    /// Index of the datapath in the tables.
    pub datapath: u16,
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

/// Remote tunnel endpoints' MACs by IP address (IPv4 kept as IPv4-mapped
/// IPv6): a fixed-size open-addressed table of atomic slots, shared by the
/// workers and kept across table publications. A slot is claimed once and
/// never freed, so its address never changes after it is published; a
/// lookup is three atomic loads, learning a few stores. Neither locks.
#[derive(Debug)]
pub struct Neighbors {
    slots: Box<[Slot]>,
    /// Bumped whenever an address is learned or its MAC changes, so users
    /// can keep what they built from a MAC until it changes.
    generation: AtomicU64,
}

/// One neighbour: `state` is 0 (free), [`CLAIMING`] (its address being
/// written), or `1 << 48 | mac` (published; `key` is the address).
#[derive(Debug, Default)]
struct Slot {
    state: AtomicU64,
    key: [AtomicU64; 2],
}

const CLAIMING: u64 = 1;
const NEIGHBOR_SLOTS: usize = 1024;
const NEIGHBOR_PROBES: usize = 16;

impl Default for Neighbors {
    fn default() -> Self {
        Neighbors {
            slots: (0..NEIGHBOR_SLOTS).map(|_| Slot::default()).collect(),
            generation: AtomicU64::new(0),
        }
    }
}

/// The table's key for an address: the 128 bits of its IPv6 form.
fn neighbor_key(ip: IpAddr) -> [u64; 2] {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let x = u128::from(v6);
    [(x >> 64) as u64, x as u64]
}

impl Neighbors {
    /// Changes whenever any MAC is learned or changes.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn probe(key: [u64; 2]) -> impl Iterator<Item = usize> {
        let h = (key[0] ^ key[1].rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let h = (h >> 54) as usize;
        (0..NEIGHBOR_PROBES).map(move |i| (h + i) % NEIGHBOR_SLOTS)
    }

    fn matches(slot: &Slot, key: [u64; 2]) -> bool {
        slot.key[0].load(Ordering::Relaxed) == key[0]
            && slot.key[1].load(Ordering::Relaxed) == key[1]
    }

    /// The MAC of `ip`, if known.
    #[inline]
    pub fn get(&self, ip: IpAddr) -> Option<MacAddr> {
        let key = neighbor_key(ip);
        for i in Self::probe(key) {
            let slot = &self.slots[i];
            match slot.state.load(Ordering::Acquire) {
                0 => return None,
                // Being learned this instant: not known yet.
                CLAIMING => continue,
                v if Self::matches(slot, key) => {
                    let b = v.to_be_bytes();
                    return Some(MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]));
                }
                _ => {}
            }
        }
        None
    }

    /// Records `ip`'s MAC (ignored when the table is full around `ip`).
    pub fn set(&self, ip: IpAddr, mac: MacAddr) {
        let key = neighbor_key(ip);
        let m = mac.0;
        let v = u64::from_be_bytes([0, 1, m[0], m[1], m[2], m[3], m[4], m[5]]);
        for i in Self::probe(key) {
            let slot = &self.slots[i];
            loop {
                match slot.state.load(Ordering::Acquire) {
                    0 => {
                        if slot
                            .state
                            .compare_exchange(0, CLAIMING, Ordering::Acquire, Ordering::Acquire)
                            .is_err()
                        {
                            continue; // Another worker claimed it: look again.
                        }
                        slot.key[0].store(key[0], Ordering::Relaxed);
                        slot.key[1].store(key[1], Ordering::Relaxed);
                        slot.state.store(v, Ordering::Release);
                        self.generation.fetch_add(1, Ordering::AcqRel);
                        return;
                    }
                    // Another worker is writing this slot's address.
                    CLAIMING => std::hint::spin_loop(),
                    old if Self::matches(slot, key) => {
                        if old != v {
                            slot.state.store(v, Ordering::Release);
                            self.generation.fetch_add(1, Ordering::AcqRel);
                        }
                        return;
                    }
                    _ => break,
                }
            }
        }
    }
}

/// A hash of an inner frame's Ethernet and IPv4 addresses and L4 ports
/// (bytes 0..38): the tunnel's UDP source port and IPv6 flow label come
/// from it.
#[inline(always)]
fn flow_hash(inner: &[u8]) -> u64 {
    match inner.first_chunk::<42>() {
        Some(head) => flow_hash_of(head),
        None => flow_hash_short(inner),
    }
}

/// [`flow_hash`] of a frame shorter than 42 bytes: hashed as if
/// zero-padded.
#[cold]
fn flow_hash_short(inner: &[u8]) -> u64 {
    let mut padded = [0u8; 42];
    padded[..inner.len()].copy_from_slice(inner);
    flow_hash_of(&padded)
}

#[inline(always)]
fn flow_hash_of(head: &[u8; 42]) -> u64 {
    let w = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().expect("8 bytes"));
    // Ethernet (0..14), IPv4 addresses (26..34), ports (34..38).
    let x = w(0) ^ w(6).rotate_left(17) ^ w(26).rotate_left(31) ^ (w(34) & 0xffff_ffff);
    let h = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// The UDP source port for an inner flow of hash `flow_hash`, in the
/// dynamic range 49152..65535.
#[inline(always)]
fn source_port(flow_hash: u64) -> u16 {
    49152 | (flow_hash as u16 & 0x3fff)
}

/// What to put in the outer headers.
#[derive(Clone, Copy, Debug)]
pub struct Tunnel {
    pub encap: Encap,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub datapath_key: u32,
    pub ingress_key: u16,
    pub egress_key: u16,
}

/// The VXLAN VNI of OVN's VXLAN mode for a datapath and egress key.
pub fn vxlan_vni(datapath_key: u32, egress_key: u16) -> u32 {
    let egress = if egress_key >= MC_FLOOD {
        2048 + u32::from(egress_key - MC_FLOOD)
    } else {
        u32::from(egress_key)
    };
    (datapath_key & 0xfff) | ((egress & 0xfff) << 12)
}

/// Encapsulates the frame in `buf` in place (prepending into headroom);
/// false if the headroom is too small.
#[inline]
pub fn encapsulate<B: PacketBuf>(buf: &mut B, t: &Tunnel) -> bool {
    Template::new(t.encap, t.src_mac, t.dst_mac, t.src_ip, t.dst_ip).encapsulate(
        buf,
        t.datapath_key,
        t.ingress_key,
        t.egress_key,
    )
}

/// A template's encapsulation and underlay family.
#[derive(Clone, Copy, Debug)]
enum Kind {
    GeneveV4,
    VxlanV4,
    GeneveV6,
    VxlanV6,
}

/// The outer headers towards one remote endpoint, prebuilt: what changes
/// per packet (lengths, IPv4 checksum or IPv6 flow label and UDP checksum,
/// UDP source port, VNI and OVN's option) is patched into a copy. Workers
/// keep one per remote chassis.
#[derive(Clone, Debug)]
pub struct Template {
    hdr: [u8; MAX_OVERHEAD],
    kind: Kind,
    /// IPv4: the ones' complement sum of the IPv4 header without its
    /// length. IPv6: that of the UDP pseudo header without the length.
    sum: u32,
}

impl Template {
    /// Outer headers from `src_ip` to `dst_ip`, which are of one family
    /// (the tables check it); an IPv4 address paired with an IPv6 one is
    /// taken as IPv4-mapped.
    pub fn new(
        encap: Encap,
        src_mac: MacAddr,
        dst_mac: MacAddr,
        src_ip: IpAddr,
        dst_ip: IpAddr,
    ) -> Template {
        let mut h = [0u8; MAX_OVERHEAD];
        h[0..6].copy_from_slice(&dst_mac.0);
        h[6..12].copy_from_slice(&src_mac.0);
        let (ipv6, udp, sum) = match (src_ip, dst_ip) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                h[12..14].copy_from_slice(&ETH_IPV4.to_be_bytes());
                // IPv4, DF set so the underlay never fragments (RFC 8926
                // §4.1.1).
                h[14] = 0x45;
                h[20] = 0x40;
                h[22] = 64;
                h[23] = IP_UDP;
                h[26..30].copy_from_slice(&src.octets());
                h[30..34].copy_from_slice(&dst.octets());
                let ip: &[u8; 20] = h[14..34].try_into().expect("20 bytes");
                (false, 34, ipv4_header_sum(ip))
            }
            (src, dst) => {
                let v6 = |a: IpAddr| match a {
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                    IpAddr::V6(a) => a,
                };
                let (src, dst) = (v6(src), v6(dst));
                h[12..14].copy_from_slice(&ETH_IPV6.to_be_bytes());
                // IPv6 (RFC 8200 §3): the flow label is patched per packet.
                h[14] = 0x60;
                h[20] = IP_UDP;
                h[21] = 64;
                h[22..38].copy_from_slice(&src.octets());
                h[38..54].copy_from_slice(&dst.octets());
                let pseudo = checksum::pseudo_header_v6(&src, &dst, IpProtocol::Udp, 0);
                (true, 54, pseudo)
            }
        };
        // UDP: over IPv4 the checksum is 0 (RFC 768; RFC 7348 §5, RFC 8926
        // §3.3); over IPv6 it is computed per packet (RFC 8200 §8.1).
        let dport = match encap {
            Encap::Geneve => geneve::UDP_PORT,
            Encap::Vxlan => vxlan::UDP_PORT,
        };
        h[udp + 2..udp + 4].copy_from_slice(&dport.to_be_bytes());
        let t = udp + 8;
        match encap {
            Encap::Geneve => {
                // Version 0, 2 words of options; the C bit, as OVN's option
                // type 0x80 is critical (RFC 8926 §3.4); Ethernet.
                h[t] = 2;
                h[t + 1] = geneve::FLAG_CRITICAL;
                h[t + 2..t + 4].copy_from_slice(&0x6558u16.to_be_bytes());
                h[t + 8..t + 10].copy_from_slice(&geneve::OVN_OPTION_CLASS.to_be_bytes());
                h[t + 10] = geneve::OVN_OPTION_TYPE;
                h[t + 11] = 1; // one 4-byte word of data
            }
            Encap::Vxlan => h[t] = vxlan::FLAG_I,
        }
        let kind = match (encap, ipv6) {
            (Encap::Geneve, false) => Kind::GeneveV4,
            (Encap::Vxlan, false) => Kind::VxlanV4,
            (Encap::Geneve, true) => Kind::GeneveV6,
            (Encap::Vxlan, true) => Kind::VxlanV6,
        };
        Template {
            hdr: h,
            kind,
            sum: u32::from(sum),
        }
    }

    /// Encapsulates the frame in `buf` in place (prepending into
    /// headroom); false if the headroom is too small.
    #[inline(always)]
    pub fn encapsulate<B: PacketBuf>(
        &self,
        buf: &mut B,
        datapath_key: u32,
        ingress_key: u16,
        egress_key: u16,
    ) -> bool {
        let (d, i, e) = (datapath_key, ingress_key, egress_key);
        match self.kind {
            Kind::GeneveV4 => self.encapsulate_as::<B, false, true, GENEVE_OVERHEAD>(buf, d, i, e),
            Kind::VxlanV4 => self.encapsulate_as::<B, false, false, VXLAN_OVERHEAD>(buf, d, i, e),
            Kind::GeneveV6 => {
                self.encapsulate_as::<B, true, true, { OUTER_V6 + GENEVE_LEN }>(buf, d, i, e)
            }
            Kind::VxlanV6 => self
                .encapsulate_as::<B, true, false, { OUTER_V6 + vxlan::HEADER_LEN }>(buf, d, i, e),
        }
    }

    /// [`Template::encapsulate`] for one family and encapsulation, whose
    /// outer headers are `TOTAL` bytes: every offset and length is a
    /// constant, every index checked at compile time.
    #[inline(always)]
    fn encapsulate_as<B: PacketBuf, const IPV6: bool, const GENEVE: bool, const TOTAL: usize>(
        &self,
        buf: &mut B,
        datapath_key: u32,
        ingress_key: u16,
        egress_key: u16,
    ) -> bool {
        let udp = if IPV6 { 54 } else { 34 };
        const { assert!(TOTAL <= MAX_OVERHEAD) };
        debug_assert_eq!(
            TOTAL,
            overhead(if GENEVE { Encap::Geneve } else { Encap::Vxlan }, IPV6)
        );
        let inner_len = buf.len();
        let hash = flow_hash(buf.data());
        let sport = source_port(hash);
        let udp_len = (TOTAL - udp + inner_len) as u16;
        let Some(frame) = buf.prepend(TOTAL) else {
            return false;
        };
        let Some(f) = frame.first_chunk_mut::<TOTAL>() else {
            return false;
        };
        // The template straight into the headroom, then the patches.
        let Some(hdr) = self.hdr.first_chunk::<TOTAL>() else {
            return false;
        };
        *f = *hdr;
        if IPV6 {
            // RFC 6438: the flow label, like the source port, from the
            // inner flow, so the underlay's ECMP can use either.
            let label = (hash >> 20) as u32 & 0xf_ffff;
            f[15] = (label >> 16) as u8;
            f[16..18].copy_from_slice(&(label as u16).to_be_bytes());
            f[18..20].copy_from_slice(&udp_len.to_be_bytes());
        } else {
            let ip_len = 20 + udp_len;
            // RFC 1071: add the length to the precomputed sum and fold.
            let sum = self.sum + u32::from(ip_len);
            let sum = (sum & 0xffff) + (sum >> 16);
            let csum = !(((sum & 0xffff) + (sum >> 16)) as u16);
            f[16..18].copy_from_slice(&ip_len.to_be_bytes());
            f[24..26].copy_from_slice(&csum.to_be_bytes());
        }
        f[udp..udp + 2].copy_from_slice(&sport.to_be_bytes());
        f[udp + 4..udp + 6].copy_from_slice(&udp_len.to_be_bytes());
        let t = udp + 8;
        if GENEVE {
            let vni = datapath_key & geneve::MAX_VNI;
            f[t + 4..t + 7].copy_from_slice(&vni.to_be_bytes()[1..]);
            let md = geneve::OvnMetadata {
                ingress_port: ingress_key,
                egress_port: egress_key,
            };
            f[t + 12..t + 16].copy_from_slice(&md.to_bytes());
        } else {
            let vni = vxlan_vni(datapath_key, egress_key);
            f[t + 4..t + 7].copy_from_slice(&vni.to_be_bytes()[1..]);
        }
        if IPV6 {
            // The pseudo header's length, then the datagram itself.
            let sum = checksum::combine(&[self.sum as u16, udp_len, checksum::data(&frame[udp..])]);
            // RFC 768: a computed 0 is sent as all ones.
            let csum = match !sum {
                0 => 0xffff,
                c => c,
            };
            frame[udp + 6..udp + 8].copy_from_slice(&csum.to_be_bytes());
        }
        true
    }
}

/// The ones' complement sum of a 20-byte IPv4 header (RFC 1071), unrolled.
#[inline(always)]
fn ipv4_header_sum(h: &[u8; 20]) -> u16 {
    let mut sum = 0u32;
    for i in 0..10 {
        sum += u32::from(u16::from_be_bytes([h[2 * i], h[2 * i + 1]]));
    }
    let sum = (sum & 0xffff) + (sum >> 16);
    ((sum & 0xffff) + (sum >> 16)) as u16
}

/// What arrived on the uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uplink {
    /// A tunnel packet for this chassis.
    Tunnel(Received),
    /// An ARP request or neighbour solicitation for our tunnel address,
    /// rewritten in place into the reply (send it back out of the uplink);
    /// the requester was learned.
    NeighborReply,
    /// ARP or neighbour discovery we learned from or ignore.
    Neighbor,
    /// Not for our tunnel endpoint: the host's own traffic on a shared
    /// interface (AF_PACKET sees a copy; the kernel handles it), not a drop.
    NotOurs,
}

fn be16(f: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([f[o], f[o + 1]])
}

fn ip4(f: &[u8], o: usize) -> Ipv4Addr {
    Ipv4Addr::new(f[o], f[o + 1], f[o + 2], f[o + 3])
}

fn ip6(f: &[u8], o: usize) -> Ipv6Addr {
    Ipv6Addr::from(*f[o..].first_chunk::<16>().expect("16 bytes"))
}

/// Classifies a frame received on the uplink: decapsulation (checked), or
/// ARP / neighbour discovery (learning remote endpoints' MACs, answering
/// for our address). `datapath_of` maps a datapath tunnel key to its index.
pub fn receive<B: PacketBuf>(
    buf: &mut B,
    underlay: &Underlay,
    neighbors: &Neighbors,
    datapath_of: impl Fn(u32) -> Option<u16>,
) -> Result<Uplink, DropReason> {
    let f = buf.data();
    if f.len() < 14 {
        return Err(DropReason::TunnelMalformed);
    }
    // The UDP header's offset and the end of the IP packet.
    let (udp, end, ipv6) = match (be16(f, 12), underlay.ip) {
        (ETH_ARP, IpAddr::V4(ours)) => return arp(buf, underlay, ours, neighbors),
        (ETH_IPV4, IpAddr::V4(ours)) => {
            if f.len() < OUTER_V4 {
                return Err(DropReason::TunnelMalformed);
            }
            let ip = &f[14..];
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 || f.len() < 14 + ihl + 8 {
                return Err(DropReason::TunnelMalformed);
            }
            if ip4(ip, 16) != ours || ip[9] != IP_UDP {
                return Ok(Uplink::NotOurs);
            }
            // Fragments of tunnel packets are not reassembled (DF is set
            // on ours).
            if be16(ip, 6) & 0x3fff != 0 {
                return Err(DropReason::TunnelMalformed);
            }
            let ip_len = usize::from(be16(ip, 2));
            if ip_len < ihl + 8 || 14 + ip_len > f.len() {
                return Err(DropReason::TunnelMalformed);
            }
            (14 + ihl, 14 + ip_len, false)
        }
        (ETH_IPV6, IpAddr::V6(ours)) => {
            if f.len() < 14 + 40 || f[14] >> 4 != 6 {
                return Err(DropReason::TunnelMalformed);
            }
            let end = 14 + 40 + usize::from(be16(f, 18));
            if end > f.len() {
                return Err(DropReason::TunnelMalformed);
            }
            // (Extension headers other than a fragment header are not
            // ours: we never send them.)
            match f[20] {
                IP_ICMPV6 => return nd(buf, underlay, ours, neighbors, end),
                _ if ip6(f, 38) != ours => return Ok(Uplink::NotOurs),
                IP_UDP if end >= OUTER_V6 => {}
                IP_UDP | IPV6_FRAGMENT => return Err(DropReason::TunnelMalformed),
                _ => return Ok(Uplink::NotOurs),
            }
            (54, end, true)
        }
        _ => return Ok(Uplink::NotOurs),
    };
    let udp_len = usize::from(be16(f, udp + 4));
    if udp_len < 8 || udp + udp_len > end {
        return Err(DropReason::TunnelMalformed);
    }
    if ipv6 && be16(f, udp + 6) != 0 {
        // RFC 8200 §8.1: over IPv6 the UDP checksum is what protects the
        // addresses. (A zero one is accepted, as RFC 6935 lets tunnels.)
        let pseudo =
            checksum::pseudo_header_v6(&ip6(f, 22), &ip6(f, 38), IpProtocol::Udp, udp_len as u32);
        if checksum::combine(&[pseudo, checksum::data(&f[udp..udp + udp_len])]) != 0xffff {
            return Err(DropReason::TunnelChecksum);
        }
    }
    let payload = &f[udp + 8..udp + udp_len];
    let (dp_key, ingress_key, egress, tun_len) = match be16(f, udp + 2) {
        geneve::UDP_PORT => {
            let (vni, md, len) = geneve_ovn(payload)?;
            let egress = if md.egress_port >= MC_FLOOD {
                Egress::Group(md.egress_port)
            } else {
                Egress::Port(md.egress_port)
            };
            (vni, md.ingress_port, egress, len)
        }
        vxlan::UDP_PORT => {
            let p = vxlan::Packet::new_checked(payload).map_err(|_| DropReason::TunnelMalformed)?;
            if !p.vni_valid() {
                return Err(DropReason::TunnelMalformed);
            }
            let vni = p.vni();
            let e = (vni >> 12) as u16;
            let egress = match e {
                0 => Egress::Lookup,
                2048.. => Egress::Group(MC_FLOOD + (e - 2048)),
                _ => Egress::Port(e),
            };
            (vni & 0xfff, 0, egress, vxlan::HEADER_LEN)
        }
        _ => return Ok(Uplink::NotOurs),
    };
    let datapath = datapath_of(dp_key).ok_or(DropReason::TunnelUnknownDatapath)?;
    Ok(Uplink::Tunnel(Received {
        datapath,
        ingress_key,
        egress,
        outer_len: udp + 8 + tun_len,
    }))
}

/// The VNI, OVN's metadata and the header length of a Geneve packet
/// (`payload` is the UDP payload). The shape OVN sends, one option of
/// OVN's class, is read at fixed offsets; anything else is parsed option
/// by option.
#[inline]
fn geneve_ovn(payload: &[u8]) -> Result<(u32, geneve::OvnMetadata, usize), DropReason> {
    // Version 0, 2 words of options, no O bit (the C bit is set: OVN's
    // option is critical); Ethernet; option class 0x0102, type 0x80, one
    // word (RFC 8926 §3.4, §3.5).
    if let Some(h) = payload.first_chunk::<GENEVE_LEN>() {
        if h[0] == 2
            && h[1] & !geneve::FLAG_CRITICAL == 0
            && h[2..4] == [0x65, 0x58]
            && h[8..12] == [0x01, 0x02, 0x80, 0x01]
        {
            let md =
                geneve::OvnMetadata::from_bytes(&h[12..16]).ok_or(DropReason::TunnelMalformed)?;
            return Ok((u32::from_be_bytes([0, h[4], h[5], h[6]]), md, GENEVE_LEN));
        }
    }
    let p = geneve::Packet::new_checked(payload).map_err(|_| DropReason::TunnelMalformed)?;
    let repr = geneve::Repr::parse(&p).map_err(|_| DropReason::TunnelMalformed)?;
    if repr.protocol_type != crate::wire::EtherType::from(0x6558) {
        return Err(DropReason::TunnelMalformed);
    }
    let mut md = None;
    for o in geneve::Options::new(repr.options) {
        let o = o.map_err(|_| DropReason::TunnelMalformed)?;
        if o.class == geneve::OVN_OPTION_CLASS && o.option_type == geneve::OVN_OPTION_TYPE {
            md = Some(geneve::OvnMetadata::from_bytes(o.data).ok_or(DropReason::TunnelMalformed)?);
        } else if o.is_critical() {
            // RFC 8926 §3.5: a critical option we do not understand.
            return Err(DropReason::TunnelCriticalOption);
        }
    }
    let md = md.ok_or(DropReason::TunnelNoMetadata)?;
    Ok((repr.vni, md, repr.buffer_len()))
}

/// ARP on an IPv4 uplink: learn remote endpoints, answer for our address.
fn arp<B: PacketBuf>(
    buf: &mut B,
    underlay: &Underlay,
    ours: Ipv4Addr,
    neighbors: &Neighbors,
) -> Result<Uplink, DropReason> {
    let f = buf.data();
    if f.len() < 14 + 28 || be16(f, 14) != 1 || be16(f, 16) != ETH_IPV4 {
        return Err(DropReason::TunnelMalformed);
    }
    let a = 14;
    let op = be16(f, a + 6);
    let sha = MacAddr(f[a + 8..a + 14].try_into().expect("6 bytes"));
    let spa = IpAddr::V4(ip4(f, a + 14));
    let tpa = ip4(f, a + 24);
    if underlay.chassis.iter().any(|c| c.ip == spa) {
        neighbors.set(spa, sha);
    }
    if op == 1 && tpa == ours {
        crate::responder::arp_reply(buf.data_mut(), a, underlay.mac, ours);
        return Ok(Uplink::NeighborReply);
    }
    Ok(Uplink::Neighbor)
}

/// Neighbour discovery on an IPv6 uplink (RFC 4861): answers solicitations
/// for our tunnel address and learns remote endpoints from solicitations
/// and advertisements. Other ICMPv6 is the host's. `end` is the end of the
/// IPv6 packet.
fn nd<B: PacketBuf>(
    buf: &mut B,
    underlay: &Underlay,
    ours: Ipv6Addr,
    neighbors: &Neighbors,
    end: usize,
) -> Result<Uplink, DropReason> {
    let f = buf.data();
    let msg = &f[14 + 40..end];
    if msg.len() < 24 {
        return Ok(Uplink::NotOurs);
    }
    let target = ip6(msg, 8);
    let remote = |ip: Ipv6Addr| underlay.chassis.iter().any(|c| c.ip == IpAddr::V6(ip));
    match msg[0] {
        135 if target == ours => {}
        136 if remote(target) => {}
        _ => return Ok(Uplink::NotOurs),
    }
    // RFC 4861 §7.1.1, §7.1.2: hop limit 255 (never forwarded), a valid
    // checksum, then the message's own checks.
    let (src, dst) = (ip6(f, 22), ip6(f, 38));
    let p = icmpv6::Packet::new_checked(msg).map_err(|_| DropReason::UplinkNdInvalid)?;
    if f[21] != 255 || !p.verify_checksum(&src, &dst) {
        return Err(DropReason::UplinkNdInvalid);
    }
    let repr = icmpv6::NdiscRepr::parse(&p).map_err(|_| DropReason::UplinkNdInvalid)?;
    match repr {
        icmpv6::NdiscRepr::NeighborSolicit { lladdr, .. } => {
            if src.is_unspecified() {
                // Duplicate address detection by someone else: not a
                // question we answer (RFC 4862 §5.4.3 is for the owner).
                return Ok(Uplink::Neighbor);
            }
            if let (Some(mac), true) = (lladdr, remote(src)) {
                neighbors.set(IpAddr::V6(src), mac);
            }
            if crate::responder::neighbor_advert(buf, 14, ours, underlay.mac) {
                return Ok(Uplink::NeighborReply);
            }
            Ok(Uplink::Neighbor)
        }
        icmpv6::NdiscRepr::NeighborAdvert { lladdr, .. } => {
            let mac = lladdr.unwrap_or(MacAddr(f[6..12].try_into().expect("6 bytes")));
            neighbors.set(IpAddr::V6(target), mac);
            Ok(Uplink::Neighbor)
        }
    }
}

/// The largest inner frame (Ethernet header included) a tunnel of `encap`
/// carries over an IPv4 or IPv6 underlay of `underlay_mtu` (the outer IP
/// packet's size).
pub fn max_inner_frame(encap: Encap, ipv6: bool, underlay_mtu: u16) -> usize {
    usize::from(underlay_mtu).saturating_sub(overhead(encap, ipv6) - 14)
}

/// What to tell a sender whose packet is too big for the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TooBig {
    /// Answer with this frame length written into the reply buffer.
    Reply(usize),
    /// Drop silently-counted: no DF (IPv4), or not IP.
    Drop,
}

/// For a frame too big for the overlay, writes into `reply` the ICMP
/// "fragmentation needed" (RFC 792, RFC 1191 §4: next-hop MTU = `mtu`, the
/// largest inner IP packet) or ICMPv6 "packet too big" (RFC 4443 §3.2) a
/// router would send, so the VM's path-MTU discovery converges. It comes
/// from the packet's destination (addresses swapped) and quotes as much of
/// the packet as fits in 576 (IPv4) or 1280 (IPv6) bytes.
pub fn too_big(frame: &[u8], mtu: u16, reply: &mut [u8]) -> TooBig {
    if frame.len() < 14 + 40 {
        return TooBig::Drop;
    }
    let (ethertype, l3) = (be16(frame, 12), 14);
    let mut head = [0u8; 14];
    head[0..6].copy_from_slice(&frame[6..12]);
    head[6..12].copy_from_slice(&frame[0..6]);
    head[12..14].copy_from_slice(&frame[12..14]);
    match ethertype {
        ETH_IPV4 => {
            let ip = &frame[l3..];
            if ip[0] >> 4 != 4
                || be16(ip, 6) & 0x4000 == 0
                || ip[9] == 1 && ip.len() > 20 && ip[20] == 3
            {
                // No DF (a switch does not fragment), or itself an ICMP error.
                return TooBig::Drop;
            }
            let quoted = (frame.len() - l3).min(576 - 20 - 8);
            let total = 14 + 20 + 8 + quoted;
            if reply.len() < total {
                return TooBig::Drop;
            }
            reply[..14].copy_from_slice(&head);
            let r = &mut reply[14..total];
            r[0] = 0x45;
            r[1] = 0xc0; // internetwork control
            r[2..4].copy_from_slice(&((20 + 8 + quoted) as u16).to_be_bytes());
            r[4..8].copy_from_slice(&[0, 0, 0, 0]);
            r[8] = 64;
            r[9] = 1;
            r[10..12].copy_from_slice(&[0, 0]);
            r[12..16].copy_from_slice(&ip[16..20]);
            r[16..20].copy_from_slice(&ip[12..16]);
            let c = !checksum::data(&r[..20]);
            r[10..12].copy_from_slice(&c.to_be_bytes());
            let icmp = &mut r[20..];
            icmp[0] = 3; // destination unreachable
            icmp[1] = 4; // fragmentation needed and DF set
            icmp[2..6].copy_from_slice(&[0, 0, 0, 0]);
            icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
            icmp[8..8 + quoted].copy_from_slice(&ip[..quoted]);
            let c = !checksum::data(icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            TooBig::Reply(total)
        }
        ETH_IPV6 => {
            let ip = &frame[l3..];
            if ip[0] >> 4 != 6 || ip[6] == 58 && ip.len() > 40 && ip[40] < 128 {
                return TooBig::Drop; // not for ICMPv6 errors (RFC 4443 §2.4 e.1)
            }
            let quoted = (frame.len() - l3).min(1280 - 40 - 8);
            let total = 14 + 40 + 8 + quoted;
            if reply.len() < total {
                return TooBig::Drop;
            }
            reply[..14].copy_from_slice(&head);
            let r = &mut reply[14..total];
            r[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
            r[4..6].copy_from_slice(&((8 + quoted) as u16).to_be_bytes());
            r[6] = 58;
            r[7] = 64;
            let (src, dst) = (&ip[24..40], &ip[8..24]);
            r[8..24].copy_from_slice(src);
            r[24..40].copy_from_slice(dst);
            let icmp = &mut r[40..];
            icmp[0] = 2; // packet too big
            icmp[1] = 0;
            icmp[2..4].copy_from_slice(&[0, 0]);
            icmp[4..8].copy_from_slice(&u32::from(mtu).to_be_bytes());
            icmp[8..8 + quoted].copy_from_slice(&ip[..quoted]);
            let s: [u8; 16] = src.try_into().expect("16 bytes");
            let d: [u8; 16] = dst.try_into().expect("16 bytes");
            let pseudo = checksum::pseudo_header_v6(
                &s.into(),
                &d.into(),
                crate::wire::IpProtocol::Icmpv6,
                (8 + quoted) as u32,
            );
            let c = !checksum::combine(&[pseudo, checksum::data(icmp)]);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            TooBig::Reply(total)
        }
        _ => TooBig::Drop,
    }
}

/// Writes into `buf` the question for `target`'s MAC from our tunnel
/// address: an ARP request (IPv4) or a neighbour solicitation to its
/// solicited-node multicast address (IPv6, RFC 4861 §7.2.2). False if
/// `target` is not of our address' family.
pub fn neighbor_request<B: PacketBuf>(buf: &mut B, underlay: &Underlay, target: IpAddr) -> bool {
    let mut f = [0u8; 14 + 40 + 32];
    f[6..12].copy_from_slice(&underlay.mac.0);
    match (underlay.ip, target) {
        (IpAddr::V4(ours), IpAddr::V4(target)) => {
            f[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
            f[12..14].copy_from_slice(&ETH_ARP.to_be_bytes());
            f[14..16].copy_from_slice(&1u16.to_be_bytes());
            f[16..18].copy_from_slice(&ETH_IPV4.to_be_bytes());
            f[18] = 6;
            f[19] = 4;
            f[20..22].copy_from_slice(&1u16.to_be_bytes());
            f[22..28].copy_from_slice(&underlay.mac.0);
            f[28..32].copy_from_slice(&ours.octets());
            f[38..42].copy_from_slice(&target.octets());
            buf.load(&f[..60])
        }
        (IpAddr::V6(ours), IpAddr::V6(target)) => {
            // ff02::1:ff00:0/104 with the target's low 24 bits; Ethernet
            // 33:33 + its low 32 bits (RFC 2464 §7).
            let t = target.octets();
            let group = Ipv6Addr::new(
                0xff02,
                0,
                0,
                0,
                0,
                1,
                0xff00 | u16::from(t[13]),
                u16::from_be_bytes([t[14], t[15]]),
            );
            let g = group.octets();
            f[0..6].copy_from_slice(&[0x33, 0x33, g[12], g[13], g[14], g[15]]);
            f[12..14].copy_from_slice(&ETH_IPV6.to_be_bytes());
            f[14] = 0x60;
            f[18..20].copy_from_slice(&32u16.to_be_bytes());
            f[20] = IP_ICMPV6;
            f[21] = 255;
            f[22..38].copy_from_slice(&ours.octets());
            f[38..54].copy_from_slice(&g);
            let ns = icmpv6::NdiscRepr::NeighborSolicit {
                target_addr: target,
                lladdr: Some(underlay.mac),
            };
            let mut p = icmpv6::Packet::new_unchecked(&mut f[54..]);
            ns.emit(&mut p);
            p.fill_checksum(&ours, &group);
            buf.load(&f)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::tables::RemoteChassis;

    const V6_US: &str = "fd00:64::21";
    const V6_HV2: &str = "fd00:64::22";

    /// Chassis hv1 (us) with one remote chassis hv2, over IPv4 or IPv6.
    fn underlay_of(ipv6: bool) -> Underlay {
        let (us, hv2): (IpAddr, IpAddr) = if ipv6 {
            (V6_US.parse().unwrap(), V6_HV2.parse().unwrap())
        } else {
            (
                Ipv4Addr::new(192, 168, 100, 21).into(),
                Ipv4Addr::new(192, 168, 100, 22).into(),
            )
        };
        Underlay {
            port: 9,
            ip: us,
            mac: MacAddr([2, 0, 0, 0, 0, 0x21]),
            mtu: 1500,
            chassis: vec![RemoteChassis {
                name: "hv2".into(),
                ip: hv2,
                encap: Encap::Geneve,
                mac: None,
                vtep: false,
            }],
        }
    }

    fn underlay() -> Underlay {
        underlay_of(false)
    }

    /// hv2's view: its own underlay, whose address is hv2's.
    fn hv2_of(u: &Underlay) -> Underlay {
        Underlay {
            ip: u.chassis[0].ip,
            mac: MacAddr([2, 0, 0, 0, 0, 0x22]),
            ..u.clone()
        }
    }

    fn inner() -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&[0, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0]);
        for (i, b) in f[14..].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7);
        }
        f
    }

    /// The frame chassis hv2 sends us: `inner()` encapsulated.
    fn from_hv2(u: &Underlay, encap: Encap, datapath_key: u32, egress: u16) -> Vec<u8> {
        let hv2 = hv2_of(u);
        let mut b = HeapBuf::from_frame(&inner());
        let t = Tunnel {
            encap,
            src_mac: hv2.mac,
            dst_mac: u.mac,
            src_ip: hv2.ip,
            dst_ip: u.ip,
            datapath_key,
            ingress_key: 3,
            egress_key: egress,
        };
        assert!(encapsulate(&mut b, &t));
        b.data().to_vec()
    }

    /// Encapsulate as chassis hv2 would towards us, then receive.
    fn roundtrip_over(ipv6: bool, encap: Encap, egress: u16) -> Result<Uplink, DropReason> {
        let u = underlay_of(ipv6);
        let frame = from_hv2(&u, encap, 7, egress);
        assert_eq!(frame.len(), overhead(encap, ipv6) + inner().len());
        assert_eq!(&frame[overhead(encap, ipv6)..], &inner()[..]);
        let n = Neighbors::default();
        receive(&mut HeapBuf::from_frame(&frame), &u, &n, |k| {
            (k == 7).then_some(0)
        })
    }

    fn roundtrip(encap: Encap, egress: u16) -> Result<Uplink, DropReason> {
        roundtrip_over(false, encap, egress)
    }

    #[test]
    fn geneve_carries_ovn_metadata() {
        for ipv6 in [false, true] {
            let r = roundtrip_over(ipv6, Encap::Geneve, 5).unwrap();
            assert_eq!(
                r,
                Uplink::Tunnel(Received {
                    datapath: 0,
                    ingress_key: 3,
                    egress: Egress::Port(5),
                    outer_len: overhead(Encap::Geneve, ipv6),
                })
            );
            let Uplink::Tunnel(r) = roundtrip_over(ipv6, Encap::Geneve, MC_FLOOD).unwrap() else {
                panic!()
            };
            assert_eq!(r.egress, Egress::Group(MC_FLOOD));
        }
        assert_eq!(overhead(Encap::Geneve, false), GENEVE_OVERHEAD);
        // RFC 8926 §3.4: OVN's option (type 0x80) is critical, so the C bit.
        let f = from_hv2(&underlay(), Encap::Geneve, 7, 5);
        assert_eq!(f[42 + 1], geneve::FLAG_CRITICAL);
    }

    /// Options other than OVN's alone take the option-by-option parse: a
    /// non-critical unknown option before OVN's is skipped.
    #[test]
    fn geneve_with_other_options_is_parsed_option_by_option() {
        let u = underlay();
        let f = from_hv2(&u, Encap::Geneve, 7, 5);
        let mut g = f[..42].to_vec();
        g.extend_from_slice(&[4, 0x40, 0x65, 0x58]); // 4 words of options
        g.extend_from_slice(&f[46..50]); // VNI
        g.extend_from_slice(&[0x01, 0x03, 0x01, 0x01, 9, 9, 9, 9]); // class 0x0103, type 1
        g.extend_from_slice(&f[50..]);
        let ip_len = (g.len() - 14) as u16;
        g[16..18].copy_from_slice(&ip_len.to_be_bytes());
        g[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        g[24..26].copy_from_slice(&[0, 0]);
        let c = !checksum::data(&g[14..34]);
        g[24..26].copy_from_slice(&c.to_be_bytes());
        let n = Neighbors::default();
        let got = receive(&mut HeapBuf::from_frame(&g), &u, &n, |k| {
            (k == 7).then_some(0)
        });
        assert_eq!(
            got,
            Ok(Uplink::Tunnel(Received {
                datapath: 0,
                ingress_key: 3,
                egress: Egress::Port(5),
                outer_len: GENEVE_OVERHEAD + 8,
            }))
        );
        // The same option marked critical: dropped.
        g[42 + 10] = 0x81;
        let got = receive(&mut HeapBuf::from_frame(&g), &u, &n, |k| {
            (k == 7).then_some(0)
        });
        assert_eq!(got, Err(DropReason::TunnelCriticalOption));
    }

    #[test]
    fn vxlan_packs_datapath_and_egress_into_the_vni() {
        assert_eq!(vxlan_vni(7, 5), 7 | (5 << 12));
        assert_eq!(vxlan_vni(7, MC_UNKNOWN), 7 | (2049 << 12));
        for ipv6 in [false, true] {
            let Uplink::Tunnel(r) = roundtrip_over(ipv6, Encap::Vxlan, 5).unwrap() else {
                panic!()
            };
            assert_eq!((r.datapath, r.egress), (0, Egress::Port(5)));
            assert_eq!(r.outer_len, overhead(Encap::Vxlan, ipv6));
        }
        assert_eq!(overhead(Encap::Vxlan, false), VXLAN_OVERHEAD);
        let Uplink::Tunnel(r) = roundtrip(Encap::Vxlan, MC_UNKNOWN).unwrap() else {
            panic!()
        };
        assert_eq!(r.egress, Egress::Group(MC_UNKNOWN));
        let Uplink::Tunnel(r) = roundtrip(Encap::Vxlan, 0).unwrap() else {
            panic!()
        };
        assert_eq!(r.egress, Egress::Lookup);
    }

    #[test]
    fn ipv6_outer_headers_field_by_field() {
        let u = underlay_of(true);
        let f = from_hv2(&u, Encap::Geneve, 7, 5);
        assert_eq!(be16(&f, 12), ETH_IPV6);
        assert_eq!(f[14] >> 4, 6, "version");
        assert_eq!(usize::from(be16(&f, 18)), f.len() - 54, "payload length");
        assert_eq!((f[20], f[21]), (IP_UDP, 64), "next header, hop limit");
        assert_eq!(IpAddr::V6(ip6(&f, 22)), u.chassis[0].ip);
        assert_eq!(IpAddr::V6(ip6(&f, 38)), u.ip);
        let label = u32::from_be_bytes([0, f[15] & 0x0f, f[16], f[17]]);
        assert_ne!(label, 0, "a flow label from the inner flow");
        assert_eq!(be16(&f, 56), geneve::UDP_PORT);
        assert_eq!(usize::from(be16(&f, 58)), f.len() - 54, "UDP length");
        // An independent sum over pseudo header and datagram: all ones.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&f[22..54]);
        pseudo.extend_from_slice(&((f.len() - 54) as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
        pseudo.extend_from_slice(&f[54..]);
        let mut sum = 0u32;
        for w in pseudo.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff, "UDP checksum");
        assert_ne!(be16(&f, 60), 0);
    }

    #[test]
    fn ipv6_checksum_is_verified() {
        let u = underlay_of(true);
        let n = Neighbors::default();
        let mut f = from_hv2(&u, Encap::Vxlan, 7, 5);
        let last = f.len() - 1;
        f[last] ^= 0x40;
        assert_eq!(
            receive(&mut HeapBuf::from_frame(&f), &u, &n, |_| Some(0)),
            Err(DropReason::TunnelChecksum)
        );
        // RFC 6935: a zero checksum is accepted.
        f[60..62].copy_from_slice(&[0, 0]);
        assert!(matches!(
            receive(&mut HeapBuf::from_frame(&f), &u, &n, |_| Some(0)),
            Ok(Uplink::Tunnel(_))
        ));
        // Another family's tunnel packet is not ours.
        let f4 = from_hv2(&underlay(), Encap::Vxlan, 7, 5);
        assert_eq!(
            receive(&mut HeapBuf::from_frame(&f4), &u, &n, |_| Some(0)),
            Ok(Uplink::NotOurs)
        );
    }

    /// An IPv4 header with 20 bytes of options puts UDP where IPv6 does
    /// (offset 54): its UDP checksum is still IPv4's (unchecked), not taken
    /// for IPv6's.
    #[test]
    fn ipv4_with_options_is_not_checked_as_ipv6() {
        let u = underlay();
        let f = from_hv2(&u, Encap::Vxlan, 7, 5);
        let mut g = f[..34].to_vec();
        g[14] = 0x4a; // IHL 10: 20 bytes of options
        g.extend_from_slice(&[1; 20]); // NOP options
        g.extend_from_slice(&f[34..]);
        g[60..62].copy_from_slice(&[0x12, 0x34]); // a UDP checksum we do not verify
        let ip_len = (g.len() - 14) as u16;
        g[16..18].copy_from_slice(&ip_len.to_be_bytes());
        let n = Neighbors::default();
        let got = receive(&mut HeapBuf::from_frame(&g), &u, &n, |k| {
            (k == 7).then_some(0)
        });
        assert!(
            matches!(got, Ok(Uplink::Tunnel(r)) if r.outer_len == VXLAN_OVERHEAD + 20),
            "{got:?}"
        );
    }

    #[test]
    fn decap_checks_drop_with_reasons() {
        let u = underlay();
        let n = Neighbors::default();
        let frame = from_hv2(&u, Encap::Geneve, 8, 1);
        assert_eq!(
            receive(&mut HeapBuf::from_frame(&frame), &u, &n, |_| None),
            Err(DropReason::TunnelUnknownDatapath)
        );
        // Not for our address.
        let mut other = frame.clone();
        other[14 + 19] = 99;
        assert_eq!(
            receive(&mut HeapBuf::from_frame(&other), &u, &n, |_| Some(0)),
            Ok(Uplink::NotOurs)
        );
        // An unknown critical option instead of OVN's.
        let mut crit = frame.clone();
        crit[42 + 10] = 0x81; // type 0x81: critical bit set, not OVN's
        assert_eq!(
            receive(&mut HeapBuf::from_frame(&crit), &u, &n, |_| Some(0)),
            Err(DropReason::TunnelCriticalOption)
        );
        // Truncated.
        for len in [13, 20, 41, 45, 57] {
            assert!(receive(&mut HeapBuf::from_frame(&frame[..len]), &u, &n, |_| Some(0)).is_err());
        }
        let u6 = underlay_of(true);
        let frame6 = from_hv2(&u6, Encap::Geneve, 8, 1);
        for len in [13, 40, 53, 61, 77] {
            assert!(
                receive(&mut HeapBuf::from_frame(&frame6[..len]), &u6, &n, |_| Some(
                    0
                ))
                .is_err(),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn answers_arp_for_the_tunnel_address_and_learns() {
        let u = underlay();
        let n = Neighbors::default();
        let hv2 = hv2_of(&u);
        let mut b = HeapBuf::new(2048);
        assert!(neighbor_request(&mut b, &hv2, u.ip));
        assert_eq!(receive(&mut b, &u, &n, |_| None), Ok(Uplink::NeighborReply));
        assert_eq!(n.get(hv2.ip), Some(hv2.mac));
        assert_eq!(n.get(Ipv4Addr::new(192, 168, 100, 23).into()), None);
        let f = b.data();
        assert_eq!(&f[0..6], &hv2.mac.0);
        assert_eq!(be16(f, 20), 2);
        assert_eq!(&f[22..28], &u.mac.0);
        assert_eq!(IpAddr::V4(ip4(f, 28)), u.ip);
    }

    #[test]
    fn answers_neighbor_solicitations_for_the_tunnel_address_and_learns() {
        let u = underlay_of(true);
        let n = Neighbors::default();
        let hv2 = hv2_of(&u);
        let mut b = HeapBuf::new(2048);
        assert!(neighbor_request(&mut b, &hv2, u.ip));
        let ns = b.data().to_vec();
        assert_eq!(
            &ns[0..6],
            &[0x33, 0x33, 0xff, 0, 0, 0x21],
            "solicited-node group"
        );
        assert_eq!(receive(&mut b, &u, &n, |_| None), Ok(Uplink::NeighborReply));
        assert_eq!(n.get(hv2.ip), Some(hv2.mac), "learned from the SLLAO");
        // The advertisement: to hv2, from our address, valid.
        let f = b.data();
        assert_eq!(&f[0..6], &hv2.mac.0);
        assert_eq!(&f[6..12], &u.mac.0);
        let (src, dst) = (ip6(f, 22), ip6(f, 38));
        assert_eq!((IpAddr::V6(src), IpAddr::V6(dst)), (u.ip, hv2.ip));
        assert_eq!(f[21], 255);
        let p = icmpv6::Packet::new_checked(&f[54..]).unwrap();
        assert!(p.verify_checksum(&src, &dst));
        assert_eq!(
            icmpv6::NdiscRepr::parse(&p).unwrap(),
            icmpv6::NdiscRepr::NeighborAdvert {
                flags: icmpv6::NeighborFlags(0x60),
                target_addr: src,
                lladdr: Some(u.mac),
            }
        );
        // hv2 receives it and learns us (as any chassis would).
        let n2 = Neighbors::default();
        let mut hv2_sees = hv2.clone();
        hv2_sees.chassis[0].ip = u.ip;
        assert_eq!(
            receive(&mut b, &hv2_sees, &n2, |_| None),
            Ok(Uplink::Neighbor)
        );
        assert_eq!(n2.get(u.ip), Some(u.mac));

        // Hop limit not 255: forwarded, so invalid (RFC 4861 §7.1.1).
        let mut bad = ns.clone();
        bad[21] = 64;
        assert_eq!(
            receive(&mut HeapBuf::from_frame(&bad), &u, &n, |_| None),
            Err(DropReason::UplinkNdInvalid)
        );
        let mut bad = ns.clone();
        bad[82] ^= 1; // inside the option: checksum no longer matches
        assert_eq!(
            receive(&mut HeapBuf::from_frame(&bad), &u, &n, |_| None),
            Err(DropReason::UplinkNdInvalid)
        );
        // A solicitation for someone else's address is the host's.
        let mut other = HeapBuf::new(2048);
        assert!(neighbor_request(
            &mut other,
            &hv2,
            "fd00:64::99".parse().unwrap()
        ));
        assert_eq!(receive(&mut other, &u, &n, |_| None), Ok(Uplink::NotOurs));
        // IPv4 ARP on an IPv6 underlay is not ours either.
        let mut arp = HeapBuf::new(2048);
        assert!(neighbor_request(
            &mut arp,
            &hv2_of(&underlay()),
            underlay().ip
        ));
        assert_eq!(receive(&mut arp, &u, &n, |_| None), Ok(Uplink::NotOurs));
    }

    #[test]
    fn neighbors_keep_families_apart_and_update() {
        let n = Neighbors::default();
        let v4: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        let v6: IpAddr = "::a00:1".parse().unwrap();
        let m = |x| MacAddr([2, 0, 0, 0, 0, x]);
        n.set(v4, m(1));
        assert_eq!(n.get(v4), Some(m(1)));
        assert_eq!(n.get(v6), None);
        let g = n.generation();
        n.set(v4, m(1));
        assert_eq!(n.generation(), g, "the same MAC again changes nothing");
        n.set(v6, m(2));
        n.set(v4, m(3));
        assert_eq!((n.get(v4), n.get(v6)), (Some(m(3)), Some(m(2))));
        assert_eq!(n.generation(), g + 2);
        // Many addresses: all found (open addressing across collisions).
        for i in 0..500u32 {
            n.set(
                IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64 | 7)),
                m(i as u8),
            );
        }
        for i in 0..500u32 {
            let ip = IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64 | 7));
            assert_eq!(n.get(ip), Some(m(i as u8)), "{ip}");
        }
    }

    #[test]
    fn oversized_ipv4_with_df_gets_frag_needed() {
        use crate::wire::layout;
        assert_eq!(max_inner_frame(Encap::Geneve, false, 1500), 1456);
        assert_eq!(max_inner_frame(Encap::Vxlan, false, 1500), 1464);
        assert_eq!(max_inner_frame(Encap::Geneve, true, 1500), 1436);
        assert_eq!(max_inner_frame(Encap::Vxlan, true, 1500), 1444);
        let mut frame = "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53 payload=1472"
            .parse::<crate::flow::FlowDesc>()
            .unwrap()
            .to_frame()
            .unwrap();
        assert_eq!(frame.len(), 14 + 1500);
        frame[14 + 6] |= 0x40;
        let mut reply = [0u8; 600];
        let TooBig::Reply(n) = too_big(&frame, 1442, &mut reply) else {
            panic!("no reply")
        };
        let r = &reply[..n];
        let lay = layout::parse(r).unwrap();
        assert!(lay.has(layout::Layout::IPV4 | layout::Layout::L4));
        assert_eq!(&r[0..6], &[0, 0, 0, 0, 0, 1], "back to the sender");
        assert_eq!(&r[26..30], &[10, 0, 0, 2]);
        assert_eq!(&r[30..34], &[10, 0, 0, 1]);
        assert_eq!((r[34], r[35]), (3, 4));
        assert_eq!(be16(r, 40), 1442);
        assert_eq!(checksum::data(&r[34..]), 0xffff, "ICMP checksum");
        assert_eq!(checksum::data(&r[14..34]), 0xffff, "IP checksum");
        assert_eq!(&r[42..62], &frame[14..34], "quotes the original header");
        // Without DF: dropped, not answered.
        frame[14 + 6] &= !0x40;
        assert_eq!(too_big(&frame, 1442, &mut reply), TooBig::Drop);
    }

    #[test]
    fn oversized_ipv6_gets_packet_too_big() {
        let frame = "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip6.src=fd10::1 ip6.dst=fd10::2 udp.dst=53 payload=1452"
            .parse::<crate::flow::FlowDesc>()
            .unwrap()
            .to_frame()
            .unwrap();
        assert_eq!(frame.len(), 14 + 1500);
        let mut reply = [0u8; 14 + 1280];
        let TooBig::Reply(n) = too_big(&frame, 1422, &mut reply) else {
            panic!("no reply")
        };
        let r = &reply[..n];
        assert_eq!(n, 14 + 1280, "as much of the packet as fits in 1280 bytes");
        assert_eq!(&r[0..6], &[0, 0, 0, 0, 0, 1], "back to the sender");
        assert_eq!(be16(r, 12), ETH_IPV6);
        let (src, dst) = (ip6(r, 22), ip6(r, 38));
        assert_eq!(
            (src, dst),
            ("fd10::2".parse().unwrap(), "fd10::1".parse().unwrap())
        );
        let p = icmpv6::Packet::new_checked(&r[54..]).unwrap();
        assert_eq!((r[54], r[55]), (2, 0), "packet too big");
        assert_eq!(p.pkt_too_big_mtu(), 1422);
        assert!(p.verify_checksum(&src, &dst));
        assert_eq!(&r[62..102], &frame[14..54], "quotes the original header");
        // Never in answer to an ICMPv6 error (RFC 4443 §2.4 e.1).
        let mut err = reply[..n].to_vec();
        err.resize(14 + 1500, 0);
        assert_eq!(too_big(&err, 1422, &mut [0u8; 14 + 1280]), TooBig::Drop);
    }

    #[test]
    fn source_port_depends_on_the_flow() {
        let a = inner();
        let mut b = inner();
        b[5] = 9;
        assert!(source_port(flow_hash(&a)) >= 49152);
        assert_ne!(source_port(flow_hash(&a)), source_port(flow_hash(&b)));
    }
}
