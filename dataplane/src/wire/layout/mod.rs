//! The hot-path parser: one pass over a frame records where each header starts.
//!
//! [`parse`] validates exactly what later stages rely on — that every header it reports
//! lies whole within the frame and that the IP length fields are consistent — and returns
//! a small `Copy` [`Layout`] of offsets and flags. Stages then read fields at those offsets
//! through the accessors below without checking again. Anything the switch must refuse is
//! a [`Malformed`] reason, counted and exported per reason; valid fragments, IP options,
//! unknown ethertypes and unknown IP protocols are not errors, only flags. No allocation,
//! no panics on any input (a property test and a fuzz target hold it to that).

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::ipv6::read_addr;
use super::{EtherType, IpProtocol, MacAddr};

/// Where the headers of one frame are. Offsets are from the start of the frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// `Layout::VLAN | Layout::IPV4 | …`.
    pub flags: u16,
    /// The 802.1Q Tag Control Information; valid if [`Layout::VLAN`].
    pub vlan_tci: u16,
    /// The ethertype after an optional single 802.1Q tag.
    pub eth_type: u16,
    /// Offset of the L3 header (14, or 18 after a VLAN tag).
    pub l3: u16,
    /// Offset of the L4 header (after IPv4 options / IPv6 extension headers); valid if
    /// [`Layout::L4`]. For an unfragmented or first-fragment IP packet of an opaque
    /// protocol it is where that protocol's header starts; 0 for later fragments and non-IP.
    pub l4: u16,
    /// End of the L3 packet: per the IP length fields for IP (bytes beyond are Ethernet
    /// padding), `l3 + 28` for ARP, the frame length otherwise.
    pub l3_end: u16,
    /// The final upper-layer protocol (after IPv6 extension headers); 0 unless IP.
    pub ip_proto: u8,
}

impl Layout {
    /// An 802.1Q tag was present (`vlan_tci` is valid).
    pub const VLAN: u16 = 1 << 0;
    /// The L3 header is IPv4 (validated).
    pub const IPV4: u16 = 1 << 1;
    /// The L3 header is IPv6 (validated, extension headers walked).
    pub const IPV6: u16 = 1 << 2;
    /// The L3 header is an Ethernet/IPv4 ARP packet (validated).
    pub const ARP: u16 = 1 << 3;
    /// A whole TCP, UDP, ICMP or ICMPv6 header is present at `l4` (`ip_proto` says which).
    pub const L4: u16 = 1 << 4;
    /// The IP packet is a fragment, first or later.
    pub const FRAGMENT: u16 = 1 << 5;
    /// A fragment with a nonzero offset: there is no L4 header.
    pub const LATER_FRAGMENT: u16 = 1 << 6;
    /// IPv4 options or IPv6 extension headers are present.
    pub const IP_OPTIONS: u16 = 1 << 7;

    /// Whether `flag` (one of the constants above, or several or'ed) is set.
    #[inline]
    pub const fn has(&self, flag: u16) -> bool {
        self.flags & flag == flag
    }

    /// The ethertype after an optional VLAN tag.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(self.eth_type)
    }

    /// The upper-layer protocol; meaningful if IPv4 or IPv6.
    #[inline]
    pub fn ip_protocol(&self) -> IpProtocol {
        IpProtocol::from(self.ip_proto)
    }

    /// The VLAN identifier, if an 802.1Q tag was present.
    #[inline]
    pub const fn vlan_id(&self) -> Option<u16> {
        if self.has(Self::VLAN) {
            Some(self.vlan_tci & 0x0fff)
        } else {
            None
        }
    }

    /// The L3 packet, `l3..l3_end`.
    #[inline]
    pub fn l3_bytes<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[usize::from(self.l3)..usize::from(self.l3_end)]
    }

    /// The L4 segment up to the end of the IP packet, `l4..l3_end`; valid if [`Layout::L4`].
    #[inline]
    pub fn l4_bytes<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[usize::from(self.l4)..usize::from(self.l3_end)]
    }

    /// Ethernet destination.
    #[inline]
    pub fn dst_mac(&self, frame: &[u8]) -> MacAddr {
        MacAddr::from_bytes(&frame[0..6])
    }

    /// Ethernet source.
    #[inline]
    pub fn src_mac(&self, frame: &[u8]) -> MacAddr {
        MacAddr::from_bytes(&frame[6..12])
    }

    #[inline]
    fn ipv4_at(&self, frame: &[u8], at: usize) -> Ipv4Addr {
        let at = usize::from(self.l3) + at;
        Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3])
    }

    /// IPv4 source; valid if [`Layout::IPV4`].
    #[inline]
    pub fn ipv4_src(&self, frame: &[u8]) -> Ipv4Addr {
        self.ipv4_at(frame, 12)
    }

    /// IPv4 destination; valid if [`Layout::IPV4`].
    #[inline]
    pub fn ipv4_dst(&self, frame: &[u8]) -> Ipv4Addr {
        self.ipv4_at(frame, 16)
    }

    /// IPv4 TTL or IPv6 hop limit; valid if IPv4 or IPv6.
    #[inline]
    pub fn ip_ttl(&self, frame: &[u8]) -> u8 {
        let at = if self.has(Self::IPV4) { 8 } else { 7 };
        frame[usize::from(self.l3) + at]
    }

    /// IPv6 source; valid if [`Layout::IPV6`].
    #[inline]
    pub fn ipv6_src(&self, frame: &[u8]) -> Ipv6Addr {
        read_addr(&frame[usize::from(self.l3) + 8..])
    }

    /// IPv6 destination; valid if [`Layout::IPV6`].
    #[inline]
    pub fn ipv6_dst(&self, frame: &[u8]) -> Ipv6Addr {
        read_addr(&frame[usize::from(self.l3) + 24..])
    }

    #[inline]
    fn u16_at(frame: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([frame[at], frame[at + 1]])
    }

    /// TCP or UDP source port; valid if [`Layout::L4`] and `ip_proto` is TCP or UDP.
    #[inline]
    pub fn l4_src_port(&self, frame: &[u8]) -> u16 {
        Self::u16_at(frame, usize::from(self.l4))
    }

    /// TCP or UDP destination port; valid if [`Layout::L4`] and `ip_proto` is TCP or UDP.
    #[inline]
    pub fn l4_dst_port(&self, frame: &[u8]) -> u16 {
        Self::u16_at(frame, usize::from(self.l4) + 2)
    }

    /// TCP control bits; valid if [`Layout::L4`] and `ip_proto` is TCP.
    #[inline]
    pub fn tcp_flags(&self, frame: &[u8]) -> super::tcp::Flags {
        super::tcp::Flags::from_bits_truncate(Self::u16_at(frame, usize::from(self.l4) + 12))
    }

    /// ICMP or ICMPv6 type; valid if [`Layout::L4`] and `ip_proto` is ICMP or ICMPv6.
    #[inline]
    pub fn icmp_type(&self, frame: &[u8]) -> u8 {
        frame[usize::from(self.l4)]
    }

    /// ICMP or ICMPv6 code; valid if [`Layout::L4`] and `ip_proto` is ICMP or ICMPv6.
    #[inline]
    pub fn icmp_code(&self, frame: &[u8]) -> u8 {
        frame[usize::from(self.l4) + 1]
    }

    /// ARP operation; valid if [`Layout::ARP`].
    #[inline]
    pub fn arp_op(&self, frame: &[u8]) -> super::arp::Operation {
        super::arp::Operation::from(Self::u16_at(frame, usize::from(self.l3) + 6))
    }

    /// ARP sender hardware address; valid if [`Layout::ARP`].
    #[inline]
    pub fn arp_sha(&self, frame: &[u8]) -> MacAddr {
        MacAddr::from_bytes(&frame[usize::from(self.l3) + 8..])
    }

    /// ARP sender protocol address; valid if [`Layout::ARP`].
    #[inline]
    pub fn arp_spa(&self, frame: &[u8]) -> Ipv4Addr {
        self.ipv4_at(frame, 14)
    }

    /// ARP target hardware address; valid if [`Layout::ARP`].
    #[inline]
    pub fn arp_tha(&self, frame: &[u8]) -> MacAddr {
        MacAddr::from_bytes(&frame[usize::from(self.l3) + 18..])
    }

    /// ARP target protocol address; valid if [`Layout::ARP`].
    #[inline]
    pub fn arp_tpa(&self, frame: &[u8]) -> Ipv4Addr {
        self.ipv4_at(frame, 24)
    }
}

macro_rules! malformed {
    ($( $(#[$doc:meta])* $variant:ident => $label:literal, $sentence:literal; )+) => {
        /// Why [`parse`] refused a frame. Fieldless and `#[repr(u8)]`, so it indexes a
        /// counter array directly (`reason as usize`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Malformed {
            $( $(#[$doc])* $variant, )+
        }

        impl Malformed {
            /// Every reason, in discriminant order.
            pub const ALL: [Malformed; [$(Malformed::$variant),+].len()] = [$(Malformed::$variant),+];

            /// A snake_case name, stable, for metric labels.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Malformed::$variant => $label, )+
                }
            }

            /// A sentence for operators.
            const fn sentence(self) -> &'static str {
                match self {
                    $( Malformed::$variant => $sentence, )+
                }
            }
        }
    };
}

malformed! {
    /// Shorter than an Ethernet header (14 bytes).
    EthernetRunt => "ethernet_runt", "frame shorter than the 14-byte Ethernet header";
    /// Longer than 65535 bytes: the offsets of a [`Layout`] cannot address it.
    FrameTooLong => "frame_too_long", "frame longer than 65535 bytes";
    /// An 802.1Q tag cut short.
    VlanTruncated => "vlan_truncated", "802.1Q tag cut short";
    /// A second tag inside the first (QinQ), or an outer 802.1ad tag.
    StackedVlan => "stacked_vlan", "stacked VLAN tags (QinQ or 802.1ad) are not accepted";
    /// Shorter than an Ethernet/IPv4 ARP packet.
    ArpTruncated => "arp_truncated", "ARP packet shorter than 28 bytes";
    /// ARP for other hardware or protocol types or address lengths.
    ArpMalformed => "arp_malformed", "ARP packet is not Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4)";
    /// Shorter than an IPv4 header.
    Ipv4Truncated => "ipv4_truncated", "IPv4 header cut short";
    /// Ethertype IPv4 but version not 4.
    Ipv4BadVersion => "ipv4_bad_version", "IPv4 ethertype with an IP version other than 4";
    /// IHL below 5 or beyond the frame.
    Ipv4BadIhl => "ipv4_bad_ihl", "IPv4 header length below 20 bytes or beyond the frame";
    /// Total length below the header length or beyond the frame.
    Ipv4BadTotalLength => "ipv4_bad_total_length", "IPv4 total length below the header length or beyond the frame";
    /// An option with length 0 or 1, or running past the header.
    Ipv4BadOptions => "ipv4_bad_options", "IPv4 option with a bad length field";
    /// A first fragment too short to hold the L4 header it announces.
    Ipv4TinyFragment => "ipv4_tiny_fragment", "first IPv4 fragment too short for its transport header (RFC 1858)";
    /// A TCP fragment at offset 8 bytes, overlapping the TCP header.
    Ipv4FragmentOverlap => "ipv4_fragment_overlap", "IPv4 TCP fragment at offset 1 overwrites the TCP header (RFC 1858)";
    /// Shorter than an IPv6 header.
    Ipv6Truncated => "ipv6_truncated", "IPv6 header cut short";
    /// Ethertype IPv6 but version not 6.
    Ipv6BadVersion => "ipv6_bad_version", "IPv6 ethertype with an IP version other than 6";
    /// Payload length beyond the frame.
    Ipv6BadPayloadLength => "ipv6_bad_payload_length", "IPv6 payload length beyond the frame";
    /// An extension header cut short, misplaced, or more than 8 of them.
    Ipv6BadExtensionHeader => "ipv6_bad_extension_header", "IPv6 extension header truncated, misplaced or too many";
    /// A first fragment whose header chain does not reach a whole L4 header.
    Ipv6TinyFragment => "ipv6_tiny_fragment", "first IPv6 fragment without the whole header chain (RFC 8200 4.5)";
    /// TCP header cut short, or a data offset below 5 or past the IP end.
    TcpTruncated => "tcp_truncated", "TCP header cut short or bad data offset";
    /// UDP header cut short, or a length field below 8 or past the IP payload.
    UdpTruncated => "udp_truncated", "UDP header cut short or bad length field";
    /// ICMP or ICMPv6 message shorter than 8 bytes.
    IcmpTruncated => "icmp_truncated", "ICMP message shorter than 8 bytes";
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sentence())
    }
}

impl std::error::Error for Malformed {}

const ETH_HEADER_LEN: usize = 14;

// The numbers the parser matches, from the wire enums (raw, so that a
// match is one compare: see `EtherType::value`).
const ETHERTYPE_VLAN: u16 = EtherType::Vlan.value();
const ETHERTYPE_QINQ: u16 = EtherType::QinQ.value();
const ETHERTYPE_IPV4: u16 = EtherType::Ipv4.value();
const ETHERTYPE_IPV6: u16 = EtherType::Ipv6.value();
const ETHERTYPE_ARP: u16 = EtherType::Arp.value();

const PROTO_HOPOPTS: u8 = IpProtocol::HopByHop.value();
const PROTO_ICMP: u8 = IpProtocol::Icmp.value();
const PROTO_TCP: u8 = IpProtocol::Tcp.value();
const PROTO_UDP: u8 = IpProtocol::Udp.value();
const PROTO_ROUTING: u8 = IpProtocol::Ipv6Route.value();
const PROTO_FRAGMENT: u8 = IpProtocol::Ipv6Frag.value();
const PROTO_ICMPV6: u8 = IpProtocol::Icmpv6.value();
const PROTO_DSTOPTS: u8 = IpProtocol::Ipv6Opts.value();

/// Most IPv6 extension headers [`parse`] walks before it gives up.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

use super::read::be16;

/// What the L3 parsers find: flags, L4 offset, end of the L3 packet, upper protocol.
/// Kept in scalars (not a `Layout` on the stack) so the result is assembled once.
#[derive(Clone, Copy)]
struct L3 {
    flags: u16,
    l4: u16,
    l3_end: u16,
    ip_proto: u8,
}

/// Parses a frame into a [`Layout`], or says why it must be dropped.
#[inline]
pub fn parse(frame: &[u8]) -> Result<Layout, Malformed> {
    if let Some(layout) = parse_udp4_fast(frame) {
        return Ok(layout);
    }
    parse_general(frame)
}

/// The common case in one straight line: an untagged, unfragmented IPv4
/// packet without options carrying a well-formed UDP datagram. One length
/// check covers every read and the checks combine without branches;
/// anything else (every malformed variant included) falls through to
/// [`parse_general`], which gives the same answer for these frames.
#[inline(always)]
fn parse_udp4_fast(frame: &[u8]) -> Option<Layout> {
    const L3: usize = ETH_HEADER_LEN;
    const L4: usize = L3 + 20;
    let h: &[u8; L4 + 8] = frame.first_chunk()?;
    let len = frame.len();
    // Bytes 12..16: ethertype 0x0800, version 4 with IHL 5 (the TOS byte is
    // free). Bytes 20..24: no MF flag and fragment offset 0 (the DF bit is
    // free), the TTL is free, protocol UDP. Each is one masked compare.
    let word = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    let eth_ip = word(12) & 0x00ff_ffff == 0x0045_0008;
    let frag_proto = word(20) & 0xff00_ff3f == u32::from(PROTO_UDP) << 24;
    let total = usize::from(u16::from_be_bytes([h[L3 + 2], h[L3 + 3]]));
    let udp_len = usize::from(u16::from_be_bytes([h[L4 + 4], h[L4 + 5]]));
    let ok = eth_ip
        & frag_proto
        & (total >= 28)
        & (L3 + total <= len)
        & (udp_len >= 8)
        & (udp_len + 20 <= total)
        & (len <= usize::from(u16::MAX));
    if !ok {
        return None;
    }
    Some(Layout {
        flags: Layout::IPV4 | Layout::L4,
        vlan_tci: 0,
        eth_type: ETHERTYPE_IPV4,
        l3: L3 as u16,
        l4: L4 as u16,
        l3_end: (L3 + total) as u16,
        ip_proto: PROTO_UDP,
    })
}

/// Every frame, every check.
fn parse_general(frame: &[u8]) -> Result<Layout, Malformed> {
    let len = frame.len();
    if len < ETH_HEADER_LEN {
        return Err(Malformed::EthernetRunt);
    }
    if len > usize::from(u16::MAX) {
        return Err(Malformed::FrameTooLong);
    }
    let mut eth_type = be16(frame, 12);
    let mut l3 = ETH_HEADER_LEN;
    let mut vlan_flag = 0;
    let mut vlan_tci = 0;
    if eth_type == ETHERTYPE_VLAN {
        if len < ETH_HEADER_LEN + 4 {
            return Err(Malformed::VlanTruncated);
        }
        vlan_flag = Layout::VLAN;
        vlan_tci = be16(frame, 14);
        eth_type = be16(frame, 16);
        l3 += 4;
        if eth_type == ETHERTYPE_VLAN || eth_type == ETHERTYPE_QINQ {
            return Err(Malformed::StackedVlan);
        }
    } else if eth_type == ETHERTYPE_QINQ {
        return Err(Malformed::StackedVlan);
    }
    let found = match eth_type {
        ETHERTYPE_IPV4 => parse_ipv4(frame, l3)?,
        ETHERTYPE_IPV6 => parse_ipv6(frame, l3)?,
        ETHERTYPE_ARP => parse_arp(frame, l3)?,
        _ => L3 {
            flags: 0,
            l4: 0,
            l3_end: len as u16,
            ip_proto: 0,
        },
    };
    Ok(Layout {
        flags: found.flags | vlan_flag,
        vlan_tci,
        eth_type,
        l3: l3 as u16,
        l4: found.l4,
        l3_end: found.l3_end,
        ip_proto: found.ip_proto,
    })
}

/// RFC 826 "Packet format", restricted to Ethernet/IPv4.
#[inline(always)]
fn parse_arp(frame: &[u8], l3: usize) -> Result<L3, Malformed> {
    if frame.len() < l3 + 28 {
        return Err(Malformed::ArpTruncated);
    }
    // htype 1, ptype 0x0800, hlen 6, plen 4 as one comparison.
    if frame[l3..l3 + 6] != [0x00, 0x01, 0x08, 0x00, 6, 4] {
        return Err(Malformed::ArpMalformed);
    }
    Ok(L3 {
        flags: Layout::ARP,
        l4: 0,
        l3_end: (l3 + 28) as u16,
        ip_proto: 0,
    })
}

mod ip;
use ip::{parse_ipv4, parse_ipv6};

#[cfg(test)]
mod tests;
