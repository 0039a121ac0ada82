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
//! Encapsulation writes the outer Ethernet, IPv4 (DF set), UDP and tunnel
//! headers into the buffer's headroom: no copy. The UDP source port is a
//! hash of the inner flow (RFC 7348 §5, RFC 8926 §3.3), so the underlay's
//! ECMP spreads flows; the outer UDP checksum is 0 (allowed for IPv4,
//! RFC 768). Decapsulation validates everything it relies on and drops the
//! rest with a reason: a VNI or egress port this chassis does not have,
//! unknown critical Geneve options (RFC 8926 §3.5), a packet that is not for
//! our tunnel endpoint.
//!
//! Remote endpoints' MACs come from static entries ([`RemoteChassis::mac`])
//! or [`Neighbors`], learned from ARP on the uplink (the dataplane answers
//! ARP for its own tunnel address and asks for endpoints it does not know).
//! Learning and lookups are atomic loads and stores; neither locks.
//!
//! [`RemoteChassis::mac`]: crate::tables::RemoteChassis::mac

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::tables::{Encap, Underlay};
use crate::wire::{checksum, geneve, vxlan, MacAddr};

/// OVN's multicast group for flooding (`MC_FLOOD`).
pub const MC_FLOOD: u16 = 32768;
/// OVN's multicast group for unknown unicast (`MC_UNKNOWN`).
pub const MC_UNKNOWN: u16 = 32769;

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const IP_UDP: u8 = 17;
/// Outer Ethernet + IPv4 + UDP.
const OUTER_LEN: usize = 14 + 20 + 8;
/// Outer headers of a Geneve packet with OVN's option.
pub const GENEVE_OVERHEAD: usize = OUTER_LEN + geneve::HEADER_LEN + 8;
/// Outer headers of a VXLAN packet.
pub const VXLAN_OVERHEAD: usize = OUTER_LEN + vxlan::HEADER_LEN;

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

/// Remote tunnel endpoints' MACs by IP: a fixed-size open-addressed table
/// of atomic slots, shared by the workers and kept across table
/// publications. Learning writes two atomic words; a lookup reads them.
#[derive(Debug)]
pub struct Neighbors {
    /// (IPv4 as u32, 0 if free; `1 << 48 | mac`, 0 if not yet known).
    slots: Box<[(AtomicU32, AtomicU64)]>,
}

const NEIGHBOR_SLOTS: usize = 1024;
const NEIGHBOR_PROBES: usize = 16;

impl Default for Neighbors {
    fn default() -> Self {
        Neighbors {
            slots: (0..NEIGHBOR_SLOTS)
                .map(|_| (AtomicU32::new(0), AtomicU64::new(0)))
                .collect(),
        }
    }
}

impl Neighbors {
    fn probe(ip: Ipv4Addr) -> impl Iterator<Item = usize> {
        let h = (u32::from(ip).wrapping_mul(0x9e37_79b1) >> 22) as usize;
        (0..NEIGHBOR_PROBES).map(move |i| (h + i) % NEIGHBOR_SLOTS)
    }

    /// The MAC of `ip`, if known.
    #[inline]
    pub fn get(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        let key = u32::from(ip);
        for i in Self::probe(ip) {
            let (k, v) = &self.slots[i];
            match k.load(Ordering::Acquire) {
                0 => return None,
                x if x == key => {
                    let v = v.load(Ordering::Relaxed);
                    let b = v.to_be_bytes();
                    return (v != 0).then(|| MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]));
                }
                _ => {}
            }
        }
        None
    }

    /// Records `ip`'s MAC (ignored when the table is full around `ip`).
    pub fn set(&self, ip: Ipv4Addr, mac: MacAddr) {
        let key = u32::from(ip);
        if key == 0 {
            return;
        }
        let m = mac.0;
        let v = u64::from_be_bytes([0, 1, m[0], m[1], m[2], m[3], m[4], m[5]]);
        for i in Self::probe(ip) {
            let (k, slot) = &self.slots[i];
            let owner = match k.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => key,
                Err(x) => x,
            };
            if owner == key {
                if slot.load(Ordering::Relaxed) != v {
                    slot.store(v, Ordering::Relaxed);
                }
                return;
            }
        }
    }
}

/// The UDP source port for an inner frame: a hash of its Ethernet and
/// IPv4 addresses and L4 ports (bytes 0..38), in the dynamic range
/// 49152..65535.
#[inline]
pub fn source_port(inner: &[u8]) -> u16 {
    // Frames shorter than 42 bytes hash as if zero-padded.
    let mut padded = [0u8; 42];
    let head: &[u8] = match inner.get(..42) {
        Some(h) => h,
        None => {
            padded[..inner.len()].copy_from_slice(inner);
            &padded
        }
    };
    let w = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().expect("8 bytes"));
    // Ethernet (0..14), IPv4 addresses (26..34), ports (34..38).
    let x = w(0) ^ w(6).rotate_left(17) ^ w(26).rotate_left(31) ^ (w(34) & 0xffff_ffff);
    let h = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let h = h ^ (h >> 29);
    49152 | (h as u16 & 0x3fff)
}

/// What to put in the outer headers.
#[derive(Clone, Copy, Debug)]
pub struct Tunnel {
    pub encap: Encap,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
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

/// The outer headers towards one remote endpoint, prebuilt: what changes
/// per packet (lengths, IP checksum, UDP source port, VNI and OVN's
/// option) is patched into a copy. Workers keep one per remote chassis.
#[derive(Clone, Debug)]
pub struct Template {
    hdr: [u8; GENEVE_OVERHEAD],
    encap: Encap,
    /// The ones' complement sum of the IPv4 header without its length.
    ip_sum: u32,
    /// The endpoint MAC it was built for.
    pub dst_mac: MacAddr,
}

impl Template {
    pub fn new(
        encap: Encap,
        src_mac: MacAddr,
        dst_mac: MacAddr,
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
    ) -> Template {
        let mut h = [0u8; GENEVE_OVERHEAD];
        h[0..6].copy_from_slice(&dst_mac.0);
        h[6..12].copy_from_slice(&src_mac.0);
        h[12..14].copy_from_slice(&ETH_IPV4.to_be_bytes());
        // IPv4, DF set so the underlay never fragments (RFC 8926 §4.1.1).
        h[14] = 0x45;
        h[20] = 0x40;
        h[22] = 64;
        h[23] = IP_UDP;
        h[26..30].copy_from_slice(&src_ip.octets());
        h[30..34].copy_from_slice(&dst_ip.octets());
        let ip: &[u8; 20] = h[14..34].try_into().expect("20 bytes");
        let ip_sum = ipv4_header_sum(ip);
        // UDP: checksum 0 (RFC 768 for IPv4; RFC 7348 §5, RFC 8926 §3.3).
        let dport = match encap {
            Encap::Geneve => geneve::UDP_PORT,
            Encap::Vxlan => vxlan::UDP_PORT,
        };
        h[36..38].copy_from_slice(&dport.to_be_bytes());
        match encap {
            Encap::Geneve => {
                // Version 0, 2 words of options; no O/C bits; Ethernet.
                h[42] = 2;
                h[44..46].copy_from_slice(&0x6558u16.to_be_bytes());
                h[50..52].copy_from_slice(&geneve::OVN_OPTION_CLASS.to_be_bytes());
                h[52] = geneve::OVN_OPTION_TYPE;
                h[53] = 1; // one 4-byte word of data
            }
            Encap::Vxlan => h[42] = vxlan::FLAG_I,
        }
        Template {
            hdr: h,
            encap,
            ip_sum: u32::from(ip_sum),
            dst_mac,
        }
    }

    /// Encapsulates the frame in `buf` in place (prepending into
    /// headroom); false if the headroom is too small.
    #[inline]
    pub fn encapsulate<B: PacketBuf>(
        &self,
        buf: &mut B,
        datapath_key: u32,
        ingress_key: u16,
        egress_key: u16,
    ) -> bool {
        let inner_len = buf.len();
        let sport = source_port(buf.data());
        let (tun_len, total) = match self.encap {
            Encap::Geneve => (geneve::HEADER_LEN + 8, GENEVE_OVERHEAD),
            Encap::Vxlan => (vxlan::HEADER_LEN, VXLAN_OVERHEAD),
        };
        let ip_len = (20 + 8 + tun_len + inner_len) as u16;
        // RFC 1071: add the length to the precomputed sum and fold.
        let sum = self.ip_sum + u32::from(ip_len);
        let sum = (sum & 0xffff) + (sum >> 16);
        let csum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        // (A frame shorter than 8 bytes never gets here: it fails parsing.)
        if inner_len + total < GENEVE_OVERHEAD {
            return false;
        }
        let Some(f) = buf.prepend(total) else {
            return false;
        };
        // The template straight into the headroom, then the patches.
        let Some(h) = f.get_mut(..GENEVE_OVERHEAD.max(total)) else {
            return false;
        };
        let h: &mut [u8; GENEVE_OVERHEAD] = h.try_into().expect("sized above");
        match self.encap {
            Encap::Geneve => *h = self.hdr,
            Encap::Vxlan => h[..VXLAN_OVERHEAD].copy_from_slice(&self.hdr[..VXLAN_OVERHEAD]),
        }
        h[16..18].copy_from_slice(&ip_len.to_be_bytes());
        h[24..26].copy_from_slice(&csum.to_be_bytes());
        h[34..36].copy_from_slice(&sport.to_be_bytes());
        h[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        match self.encap {
            Encap::Geneve => {
                let vni = datapath_key & geneve::MAX_VNI;
                h[46..49].copy_from_slice(&vni.to_be_bytes()[1..]);
                let md = geneve::OvnMetadata {
                    ingress_port: ingress_key,
                    egress_port: egress_key,
                };
                h[54..58].copy_from_slice(&md.to_bytes());
            }
            Encap::Vxlan => {
                let vni = vxlan_vni(datapath_key, egress_key);
                h[46..49].copy_from_slice(&vni.to_be_bytes()[1..]);
            }
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
    /// An ARP request for our tunnel address, rewritten in place into the
    /// reply (send it back out of the uplink); the requester was learned.
    ArpReply,
    /// ARP traffic we learned from or ignore.
    Arp,
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

/// Classifies a frame received on the uplink: decapsulation (checked), or
/// ARP (learning remote endpoints' MACs, answering for our address).
/// `datapath_of` maps a datapath tunnel key to its index.
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
    match be16(f, 12) {
        ETH_ARP => return arp(buf, underlay, neighbors),
        ETH_IPV4 => {}
        _ => return Ok(Uplink::NotOurs),
    }
    if f.len() < OUTER_LEN {
        return Err(DropReason::TunnelMalformed);
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || f.len() < 14 + ihl + 8 {
        return Err(DropReason::TunnelMalformed);
    }
    if ip4(ip, 16) != underlay.ip {
        return Ok(Uplink::NotOurs);
    }
    if ip[9] != IP_UDP {
        return Ok(Uplink::NotOurs);
    }
    // Fragments of tunnel packets are not reassembled (DF is set on ours).
    if be16(ip, 6) & 0x3fff != 0 {
        return Err(DropReason::TunnelMalformed);
    }
    let ip_len = usize::from(be16(ip, 2));
    if ip_len < ihl + 8 || 14 + ip_len > f.len() {
        return Err(DropReason::TunnelMalformed);
    }
    let udp = 14 + ihl;
    let udp_len = usize::from(be16(f, udp + 4));
    if udp_len < 8 || udp + udp_len > 14 + ip_len {
        return Err(DropReason::TunnelMalformed);
    }
    let payload = &f[udp + 8..udp + udp_len];
    let (dp_key, ingress_key, egress, tun_len) = match be16(f, udp + 2) {
        geneve::UDP_PORT => {
            let p =
                geneve::Packet::new_checked(payload).map_err(|_| DropReason::TunnelMalformed)?;
            let repr = geneve::Repr::parse(&p).map_err(|_| DropReason::TunnelMalformed)?;
            if repr.protocol_type != crate::wire::EtherType::from(0x6558) {
                return Err(DropReason::TunnelMalformed);
            }
            let mut md = None;
            for o in geneve::Options::new(repr.options) {
                let o = o.map_err(|_| DropReason::TunnelMalformed)?;
                if o.class == geneve::OVN_OPTION_CLASS && o.option_type == geneve::OVN_OPTION_TYPE {
                    md = Some(
                        geneve::OvnMetadata::from_bytes(o.data)
                            .ok_or(DropReason::TunnelMalformed)?,
                    );
                } else if o.is_critical() {
                    // RFC 8926 §3.5: a critical option we do not understand.
                    return Err(DropReason::TunnelCriticalOption);
                }
            }
            let md = md.ok_or(DropReason::TunnelNoMetadata)?;
            let egress = if md.egress_port >= MC_FLOOD {
                Egress::Group(md.egress_port)
            } else {
                Egress::Port(md.egress_port)
            };
            (repr.vni, md.ingress_port, egress, repr.buffer_len())
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

/// ARP on the uplink: learn remote endpoints, answer for our address.
fn arp<B: PacketBuf>(
    buf: &mut B,
    underlay: &Underlay,
    neighbors: &Neighbors,
) -> Result<Uplink, DropReason> {
    let f = buf.data();
    if f.len() < 14 + 28 || be16(f, 14) != 1 || be16(f, 16) != ETH_IPV4 {
        return Err(DropReason::TunnelMalformed);
    }
    let a = 14;
    let op = be16(f, a + 6);
    let sha = MacAddr(f[a + 8..a + 14].try_into().expect("6 bytes"));
    let spa = ip4(f, a + 14);
    let tpa = ip4(f, a + 24);
    if underlay.chassis.iter().any(|c| c.ip == spa) {
        neighbors.set(spa, sha);
    }
    if op == 1 && tpa == underlay.ip {
        let our = underlay.mac;
        let f = buf.data_mut();
        f.copy_within(6..12, 0);
        f[6..12].copy_from_slice(&our.0);
        f[a + 6..a + 8].copy_from_slice(&2u16.to_be_bytes());
        f[a + 18..a + 24].copy_from_slice(&sha.0);
        f[a + 24..a + 28].copy_from_slice(&spa.octets());
        f[a + 8..a + 14].copy_from_slice(&our.0);
        f[a + 14..a + 18].copy_from_slice(&underlay.ip.octets());
        return Ok(Uplink::ArpReply);
    }
    Ok(Uplink::Arp)
}

/// The largest inner frame (Ethernet header included) a tunnel of `encap`
/// carries over an underlay of `underlay_mtu` (the outer IP packet's size).
pub fn max_inner_frame(encap: Encap, underlay_mtu: u16) -> usize {
    let overhead = match encap {
        Encap::Geneve => GENEVE_OVERHEAD,
        Encap::Vxlan => VXLAN_OVERHEAD,
    } - 14;
    usize::from(underlay_mtu).saturating_sub(overhead)
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
        0x86dd => {
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

/// Writes an ARP request for `target` from our tunnel address into `buf`.
pub fn arp_request<B: PacketBuf>(buf: &mut B, underlay: &Underlay, target: Ipv4Addr) -> bool {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
    f[6..12].copy_from_slice(&underlay.mac.0);
    f[12..14].copy_from_slice(&ETH_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes());
    f[16..18].copy_from_slice(&ETH_IPV4.to_be_bytes());
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes());
    f[22..28].copy_from_slice(&underlay.mac.0);
    f[28..32].copy_from_slice(&underlay.ip.octets());
    f[38..42].copy_from_slice(&target.octets());
    buf.load(&f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::tables::RemoteChassis;

    fn underlay() -> Underlay {
        Underlay {
            port: 9,
            ip: Ipv4Addr::new(192, 168, 100, 21),
            mac: MacAddr([2, 0, 0, 0, 0, 0x21]),
            mtu: 1500,
            chassis: vec![RemoteChassis {
                name: "hv2".into(),
                ip: Ipv4Addr::new(192, 168, 100, 22),
                encap: Encap::Geneve,
                mac: None,
                vtep: false,
            }],
        }
    }

    fn inner() -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&[0, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0]);
        f
    }

    /// Encapsulate as chassis hv2 would towards us, then receive.
    fn roundtrip(encap: Encap, egress: u16) -> Result<Uplink, DropReason> {
        let u = underlay();
        let mut b = HeapBuf::from_frame(&inner());
        let t = Tunnel {
            encap,
            src_mac: MacAddr([2, 0, 0, 0, 0, 0x22]),
            dst_mac: u.mac,
            src_ip: Ipv4Addr::new(192, 168, 100, 22),
            dst_ip: u.ip,
            datapath_key: 7,
            ingress_key: 3,
            egress_key: egress,
        };
        assert!(encapsulate(&mut b, &t));
        let n = Neighbors::default();
        receive(&mut b, &u, &n, |k| (k == 7).then_some(0))
    }

    #[test]
    fn geneve_carries_ovn_metadata() {
        let r = roundtrip(Encap::Geneve, 5).unwrap();
        assert_eq!(
            r,
            Uplink::Tunnel(Received {
                datapath: 0,
                ingress_key: 3,
                egress: Egress::Port(5),
                outer_len: GENEVE_OVERHEAD,
            })
        );
        let Uplink::Tunnel(r) = roundtrip(Encap::Geneve, MC_FLOOD).unwrap() else {
            panic!()
        };
        assert_eq!(r.egress, Egress::Group(MC_FLOOD));
    }

    #[test]
    fn vxlan_packs_datapath_and_egress_into_the_vni() {
        assert_eq!(vxlan_vni(7, 5), 7 | (5 << 12));
        assert_eq!(vxlan_vni(7, MC_UNKNOWN), 7 | (2049 << 12));
        let Uplink::Tunnel(r) = roundtrip(Encap::Vxlan, 5).unwrap() else {
            panic!()
        };
        assert_eq!((r.datapath, r.egress), (0, Egress::Port(5)));
        assert_eq!(r.outer_len, VXLAN_OVERHEAD);
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
    fn decap_checks_drop_with_reasons() {
        let u = underlay();
        let n = Neighbors::default();
        let mut b = HeapBuf::from_frame(&inner());
        let t = Tunnel {
            encap: Encap::Geneve,
            src_mac: MacAddr([2, 0, 0, 0, 0, 0x22]),
            dst_mac: u.mac,
            src_ip: Ipv4Addr::new(192, 168, 100, 22),
            dst_ip: u.ip,
            datapath_key: 8,
            ingress_key: 1,
            egress_key: 1,
        };
        assert!(encapsulate(&mut b, &t));
        let frame = b.data().to_vec();
        assert_eq!(
            receive(&mut b, &u, &n, |_| None),
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
    }

    #[test]
    fn answers_arp_for_the_tunnel_address_and_learns() {
        let u = underlay();
        let n = Neighbors::default();
        let hv2 = Underlay {
            ip: Ipv4Addr::new(192, 168, 100, 22),
            mac: MacAddr([2, 0, 0, 0, 0, 0x22]),
            ..underlay()
        };
        let mut b = HeapBuf::new(2048);
        assert!(arp_request(&mut b, &hv2, u.ip));
        assert_eq!(receive(&mut b, &u, &n, |_| None), Ok(Uplink::ArpReply));
        assert_eq!(n.get(hv2.ip), Some(hv2.mac));
        assert_eq!(n.get(Ipv4Addr::new(192, 168, 100, 23)), None);
        let f = b.data();
        assert_eq!(&f[0..6], &hv2.mac.0);
        assert_eq!(be16(f, 20), 2);
        assert_eq!(&f[22..28], &u.mac.0);
        assert_eq!(ip4(f, 28), u.ip);
    }

    #[test]
    fn oversized_ipv4_with_df_gets_frag_needed() {
        use crate::wire::layout;
        assert_eq!(max_inner_frame(Encap::Geneve, 1500), 1456);
        assert_eq!(max_inner_frame(Encap::Vxlan, 1500), 1464);
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
    fn source_port_depends_on_the_flow() {
        let a = inner();
        let mut b = inner();
        b[5] = 9;
        assert!(source_port(&a) >= 49152);
        assert_ne!(source_port(&a), source_port(&b));
    }
}
