//! Encapsulation: the outer headers towards one remote endpoint prebuilt
//! in a [`Template`], patched per packet (lengths, checksums, source port,
//! VNI and OVN's option) and written into the buffer's headroom.

use std::net::IpAddr;

use super::encoding::vxlan_vni;
use super::flow_hash::{flow_hash, flow_label, source_port};
use super::{overhead, GENEVE_LEN, GENEVE_OVERHEAD, MAX_OVERHEAD, OUTER_V6, VXLAN_OVERHEAD};
use crate::packet::PacketBuf;
use crate::tables::Encap;
use crate::wire::{
    checksum, ethernet, geneve, ipv4, ipv6, udp, vxlan, EtherType, IpProtocol, MacAddr,
};

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
    /// An outer UDP checksum over IPv4 too (OVN's Encap `options:csum`).
    pub csum: bool,
}

/// Encapsulates the frame in `buf` in place (prepending into headroom);
/// false if the headroom is too small.
#[inline]
pub fn encapsulate<B: PacketBuf>(buf: &mut B, t: &Tunnel) -> bool {
    Template::new(t.encap, t.src_mac, t.dst_mac, t.src_ip, t.dst_ip, t.csum).encapsulate(
        buf,
        t.datapath_key,
        t.ingress_key,
        t.egress_key,
    )
}

/// A template's encapsulation and underlay family (with or without an
/// outer UDP checksum over IPv4).
#[derive(Clone, Copy, Debug)]
enum Kind {
    GeneveV4,
    VxlanV4,
    GeneveV4Csum,
    VxlanV4Csum,
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
    /// IPv4 with checksums: the UDP pseudo header's sum without the length.
    udp_sum: u16,
}

impl Template {
    /// Outer headers from `src_ip` to `dst_ip`, which are of one family
    /// (the tables check it); an IPv4 address paired with an IPv6 one is
    /// taken as IPv4-mapped. `csum`: compute the outer UDP checksum over
    /// IPv4 too (over IPv6 it always is).
    pub fn new(
        encap: Encap,
        src_mac: MacAddr,
        dst_mac: MacAddr,
        src_ip: IpAddr,
        dst_ip: IpAddr,
        csum: bool,
    ) -> Template {
        let mut h = [0u8; MAX_OVERHEAD];
        let mut eth = ethernet::Frame::new_unchecked(&mut h[..]);
        eth.set_dst_addr(dst_mac);
        eth.set_src_addr(src_mac);
        let l3 = ethernet::HEADER_LEN;
        let mut udp_sum = 0;
        let (ipv6, udp, sum) = match (src_ip, dst_ip) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                eth.set_ethertype(EtherType::Ipv4);
                // IPv4, DF set so the underlay never fragments (RFC 8926
                // §4.1.1).
                let mut ip = ipv4::Packet::new_unchecked(&mut h[l3..l3 + ipv4::HEADER_LEN]);
                ip.set_version(4);
                ip.set_header_len(ipv4::HEADER_LEN as u8);
                ip.set_dont_frag(true);
                ip.set_hop_limit(64);
                ip.set_next_header(IpProtocol::Udp);
                ip.set_src_addr(src);
                ip.set_dst_addr(dst);
                let ip: &[u8; ipv4::HEADER_LEN] = h[l3..l3 + ipv4::HEADER_LEN]
                    .try_into()
                    .expect("an IPv4 header");
                udp_sum = checksum::pseudo_header_v4(&src, &dst, IpProtocol::Udp, 0);
                (false, l3 + ipv4::HEADER_LEN, ipv4_header_sum(ip))
            }
            (src, dst) => {
                let v6 = |a: IpAddr| match a {
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                    IpAddr::V6(a) => a,
                };
                let (src, dst) = (v6(src), v6(dst));
                eth.set_ethertype(EtherType::Ipv6);
                // IPv6 (RFC 8200 §3): the flow label is patched per packet.
                let mut ip = ipv6::Packet::new_unchecked(&mut h[l3..l3 + ipv6::HEADER_LEN]);
                ip.set_version(6);
                ip.set_next_header(IpProtocol::Udp);
                ip.set_hop_limit(64);
                ip.set_src_addr(src);
                ip.set_dst_addr(dst);
                let pseudo = checksum::pseudo_header_v6(&src, &dst, IpProtocol::Udp, 0);
                (true, l3 + ipv6::HEADER_LEN, pseudo)
            }
        };
        // UDP: over IPv4 the checksum is 0 (RFC 768; RFC 7348 §5, RFC 8926
        // §3.3) unless the receiver's Encap asks for one; over IPv6 it is
        // computed per packet (RFC 8200 §8.1).
        let dport = match encap {
            Encap::Geneve => geneve::UDP_PORT,
            Encap::Vxlan => vxlan::UDP_PORT,
        };
        udp::Packet::new_unchecked(&mut h[udp..udp + udp::HEADER_LEN]).set_dst_port(dport);
        let t = udp + udp::HEADER_LEN;
        match encap {
            Encap::Geneve => {
                // OVN's one option, its data (the port keys) patched per
                // packet; the C bit, as OVN's option type 0x80 is critical
                // (RFC 8926 §3.4); Ethernet.
                let mut option = [0u8; geneve::OPTION_HEADER_LEN + geneve::OVN_OPTION_LEN];
                geneve::GeneveOption {
                    class: geneve::OVN_OPTION_CLASS,
                    option_type: geneve::OVN_OPTION_TYPE,
                    data: &[0; geneve::OVN_OPTION_LEN],
                }
                .emit(&mut option);
                let repr = geneve::Repr {
                    oam: false,
                    critical: true,
                    protocol_type: EtherType::TransparentEthernetBridging,
                    vni: 0,
                    options: &option,
                };
                repr.emit(&mut geneve::Packet::new_unchecked(
                    &mut h[t..t + GENEVE_LEN],
                ));
            }
            Encap::Vxlan => vxlan::Packet::new_unchecked(&mut h[t..t + vxlan::HEADER_LEN])
                .set_flags(vxlan::FLAG_I),
        }
        let kind = match (encap, ipv6, csum) {
            (Encap::Geneve, false, false) => Kind::GeneveV4,
            (Encap::Vxlan, false, false) => Kind::VxlanV4,
            (Encap::Geneve, false, true) => Kind::GeneveV4Csum,
            (Encap::Vxlan, false, true) => Kind::VxlanV4Csum,
            (Encap::Geneve, true, _) => Kind::GeneveV6,
            (Encap::Vxlan, true, _) => Kind::VxlanV6,
        };
        Template {
            hdr: h,
            kind,
            sum: u32::from(sum),
            udp_sum,
        }
    }

    /// Bytes of outer headers it writes.
    pub fn header_len(&self) -> usize {
        match self.kind {
            Kind::GeneveV4 | Kind::GeneveV4Csum => GENEVE_OVERHEAD,
            Kind::VxlanV4 | Kind::VxlanV4Csum => VXLAN_OVERHEAD,
            Kind::GeneveV6 => OUTER_V6 + GENEVE_LEN,
            Kind::VxlanV6 => OUTER_V6 + vxlan::HEADER_LEN,
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
            Kind::GeneveV4 => {
                self.encapsulate_as::<B, false, true, false, GENEVE_OVERHEAD>(buf, d, i, e)
            }
            Kind::VxlanV4 => {
                self.encapsulate_as::<B, false, false, false, VXLAN_OVERHEAD>(buf, d, i, e)
            }
            Kind::GeneveV4Csum => {
                self.encapsulate_as::<B, false, true, true, GENEVE_OVERHEAD>(buf, d, i, e)
            }
            Kind::VxlanV4Csum => {
                self.encapsulate_as::<B, false, false, true, VXLAN_OVERHEAD>(buf, d, i, e)
            }
            Kind::GeneveV6 => {
                self.encapsulate_as::<B, true, true, true, { OUTER_V6 + GENEVE_LEN }>(buf, d, i, e)
            }
            Kind::VxlanV6 => self
                .encapsulate_as::<B, true, false, true, { OUTER_V6 + vxlan::HEADER_LEN }>(
                    buf, d, i, e,
                ),
        }
    }

    /// [`Template::encapsulate`] for one family, encapsulation and
    /// checksum choice, whose outer headers are `TOTAL` bytes: every offset
    /// and length is a constant, every index checked at compile time.
    #[inline(always)]
    fn encapsulate_as<
        B: PacketBuf,
        const IPV6: bool,
        const GENEVE: bool,
        const CSUM: bool,
        const TOTAL: usize,
    >(
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
            let label = flow_label(hash);
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
        if CSUM {
            // The pseudo header's length, then the datagram itself.
            let pseudo = if IPV6 { self.sum as u16 } else { self.udp_sum };
            let sum = checksum::combine(&[pseudo, udp_len, checksum::data(&frame[udp..])]);
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
