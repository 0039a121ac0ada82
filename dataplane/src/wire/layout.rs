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
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_ARP: u16 = 0x0806;

const PROTO_HOPOPTS: u8 = 0;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ROUTING: u8 = 43;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_ICMPV6: u8 = 58;
const PROTO_DSTOPTS: u8 = 60;

/// Most IPv6 extension headers [`parse`] walks before it gives up.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

#[inline(always)]
fn be16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

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

/// RFC 791 §3.1, with the fragment rules of RFC 1858 §3.
#[inline(always)]
fn parse_ipv4(frame: &[u8], l3: usize) -> Result<L3, Malformed> {
    let len = frame.len();
    // One bounds check for the fixed header; the fields below read from the array.
    let Some(h) = frame.get(l3..).and_then(<[u8]>::first_chunk::<20>) else {
        return Err(Malformed::Ipv4Truncated);
    };
    if h[0] >> 4 != 4 {
        return Err(Malformed::Ipv4BadVersion);
    }
    // "IHL … the minimum value for a correct header is 5" (RFC 791 §3.1).
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 || l3 + ihl > len {
        return Err(Malformed::Ipv4BadIhl);
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total < ihl || l3 + total > len {
        return Err(Malformed::Ipv4BadTotalLength);
    }
    let l3_end = l3 + total;
    let mut flags = Layout::IPV4;
    if ihl > 20 {
        check_ipv4_options(&frame[l3 + 20..l3 + ihl])?;
        flags |= Layout::IP_OPTIONS;
    }
    let proto = h[9];
    let frag = u16::from_be_bytes([h[6], h[7]]);
    if frag & 0x3fff != 0 {
        return ipv4_fragment(frame, l3, ihl, l3_end, proto, frag, flags);
    }
    if l4_present(&frame[l3 + ihl..l3_end], proto, false, false)? {
        flags |= Layout::L4;
    }
    Ok(L3 {
        flags,
        l4: (l3 + ihl) as u16,
        l3_end: l3_end as u16,
        ip_proto: proto,
    })
}

/// The fragment cases of [`parse_ipv4`], off the common path.
#[cold]
#[inline(never)]
fn ipv4_fragment(
    frame: &[u8],
    l3: usize,
    ihl: usize,
    l3_end: usize,
    proto: u8,
    frag: u16,
    flags: u16,
) -> Result<L3, Malformed> {
    let mut flags = flags | Layout::FRAGMENT;
    let offset = frag & 0x1fff;
    if offset != 0 {
        // RFC 1858 §3.2: a TCP fragment with offset 1 can only be meant to rewrite the
        // flags of the first fragment's TCP header: drop it.
        if offset == 1 && proto == PROTO_TCP {
            return Err(Malformed::Ipv4FragmentOverlap);
        }
        flags |= Layout::LATER_FRAGMENT;
        return Ok(L3 {
            flags,
            l4: 0,
            l3_end: l3_end as u16,
            ip_proto: proto,
        });
    }
    // RFC 1858 §3.1: a first fragment too short for the transport header it announces.
    match l4_present(&frame[l3 + ihl..l3_end], proto, true, false) {
        Ok(true) => flags |= Layout::L4,
        Ok(false) => {}
        Err(_) => return Err(Malformed::Ipv4TinyFragment),
    }
    Ok(L3 {
        flags,
        l4: (l3 + ihl) as u16,
        l3_end: l3_end as u16,
        ip_proto: proto,
    })
}

/// RFC 791 §3.1 "Options": End of Option List (0) ends the list, No Operation (1) is one
/// octet, every other option has a length octet counting type, length and data.
#[cold]
#[inline(never)]
fn check_ipv4_options(options: &[u8]) -> Result<(), Malformed> {
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            0 => break,
            1 => i += 1,
            _ => {
                let Some(&opt_len) = options.get(i + 1) else {
                    return Err(Malformed::Ipv4BadOptions);
                };
                let opt_len = usize::from(opt_len);
                if opt_len < 2 || i + opt_len > options.len() {
                    return Err(Malformed::Ipv4BadOptions);
                }
                i += opt_len;
            }
        }
    }
    Ok(())
}

/// RFC 8200 §3: the fixed header, then the upper-layer header or the extension headers.
#[inline(always)]
fn parse_ipv6(frame: &[u8], l3: usize) -> Result<L3, Malformed> {
    let len = frame.len();
    let Some(h) = frame.get(l3..).and_then(<[u8]>::first_chunk::<40>) else {
        return Err(Malformed::Ipv6Truncated);
    };
    if h[0] >> 4 != 6 {
        return Err(Malformed::Ipv6BadVersion);
    }
    let l3_end = l3 + 40 + usize::from(u16::from_be_bytes([h[4], h[5]]));
    if l3_end > len {
        return Err(Malformed::Ipv6BadPayloadLength);
    }
    let next = h[6];
    if matches!(
        next,
        PROTO_HOPOPTS | PROTO_ROUTING | PROTO_DSTOPTS | PROTO_FRAGMENT
    ) {
        return ipv6_extension_headers(frame, l3, l3_end, next);
    }
    let flags = if l4_present(&frame[l3 + 40..l3_end], next, false, true)? {
        Layout::IPV6 | Layout::L4
    } else {
        Layout::IPV6
    };
    Ok(L3 {
        flags,
        l4: (l3 + 40) as u16,
        l3_end: l3_end as u16,
        ip_proto: next,
    })
}

/// RFC 8200 §4: walks Hop-by-Hop (only first, §4.1), Routing, Destination Options and
/// Fragment headers up to the upper-layer header, at most [`MAX_IPV6_EXT_HEADERS`].
#[inline(never)]
fn ipv6_extension_headers(
    frame: &[u8],
    l3: usize,
    l3_end: usize,
    mut next: u8,
) -> Result<L3, Malformed> {
    let mut flags = Layout::IPV6 | Layout::IP_OPTIONS;
    let mut at = l3 + 40;
    let mut first_fragment = false;
    let mut count = 0;
    loop {
        let header_len = match next {
            PROTO_HOPOPTS | PROTO_ROUTING | PROTO_DSTOPTS => {
                // §4.1: "The Hop-by-Hop Options header … is restricted to appear
                // immediately after an IPv6 header."
                if next == PROTO_HOPOPTS && count != 0 {
                    return Err(Malformed::Ipv6BadExtensionHeader);
                }
                if at + 2 > l3_end {
                    return Err(ext_header_error(first_fragment));
                }
                (usize::from(frame[at + 1]) + 1) * 8
            }
            PROTO_FRAGMENT => {
                if at + 8 > l3_end {
                    return Err(ext_header_error(first_fragment));
                }
                // §4.5: Fragment Offset (13 bits, 8-octet units), Res (2), M (1).
                let off_m = be16(frame, at + 2);
                flags |= Layout::FRAGMENT;
                if off_m & 0xfff8 != 0 {
                    flags |= Layout::LATER_FRAGMENT;
                    return Ok(L3 {
                        flags,
                        l4: 0,
                        l3_end: l3_end as u16,
                        ip_proto: frame[at],
                    });
                }
                first_fragment = off_m & 1 != 0;
                8
            }
            _ => break,
        };
        if at + header_len > l3_end {
            return Err(ext_header_error(first_fragment));
        }
        next = frame[at];
        at += header_len;
        count += 1;
        if count > MAX_IPV6_EXT_HEADERS {
            return Err(Malformed::Ipv6BadExtensionHeader);
        }
    }
    match l4_present(&frame[at..l3_end], next, first_fragment, true) {
        Ok(true) => flags |= Layout::L4,
        Ok(false) => {}
        Err(_) if first_fragment => return Err(Malformed::Ipv6TinyFragment),
        Err(e) => return Err(e),
    }
    Ok(L3 {
        flags,
        l4: at as u16,
        l3_end: l3_end as u16,
        ip_proto: next,
    })
}

/// RFC 8200 §4.5: "If the first fragment does not include all headers through an
/// Upper-Layer header, then that fragment should be discarded."
#[cold]
fn ext_header_error(first_fragment: bool) -> Malformed {
    if first_fragment {
        Malformed::Ipv6TinyFragment
    } else {
        Malformed::Ipv6BadExtensionHeader
    }
}

/// Whether `segment` (the IP payload after the IP headers) starts with a whole TCP, UDP
/// or ICMP(v6) header: `Ok(false)` for other protocols, which are valid but opaque. In a
/// first fragment the UDP length covers the whole datagram, so it is not compared with
/// this fragment's payload.
#[inline(always)]
fn l4_present(
    segment: &[u8],
    proto: u8,
    first_fragment: bool,
    ipv6: bool,
) -> Result<bool, Malformed> {
    let avail = segment.len();
    match proto {
        // RFC 793 §3.1 "Data Offset".
        PROTO_TCP => {
            let Some(&offset_byte) = segment.get(12) else {
                return Err(Malformed::TcpTruncated);
            };
            let data_offset = usize::from(offset_byte >> 4) * 4;
            if data_offset < 20 || data_offset > avail {
                return Err(Malformed::TcpTruncated);
            }
        }
        // RFC 768: "Length … the minimum value of the length is eight."
        PROTO_UDP => {
            let Some(&[_, _, _, _, hi, lo, _, _]) = segment.first_chunk::<8>() else {
                return Err(Malformed::UdpTruncated);
            };
            let udp_len = usize::from(u16::from_be_bytes([hi, lo]));
            if !first_fragment && (udp_len < 8 || udp_len > avail) {
                return Err(Malformed::UdpTruncated);
            }
        }
        // RFC 792 and RFC 4443 §2.1: type, code, checksum and 4 more octets.
        PROTO_ICMP if !ipv6 => {
            if avail < 8 {
                return Err(Malformed::IcmpTruncated);
            }
        }
        PROTO_ICMPV6 if ipv6 => {
            if avail < 8 {
                return Err(Malformed::IcmpTruncated);
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    fn ipv4(proto: u8, frag: u16, options: &[u8], l4: &[u8]) -> Vec<u8> {
        let ihl = 20 + options.len();
        let total = (ihl + l4.len()) as u16;
        let mut ip = vec![0x40 | (ihl / 4) as u8, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 1]);
        ip.extend_from_slice(&frag.to_be_bytes());
        ip.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        ip.extend_from_slice(options);
        ip.extend_from_slice(l4);
        ip
    }

    fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[next, 64]);
        ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip.extend_from_slice(rest);
        ip
    }

    fn udp(len: u16) -> Vec<u8> {
        let mut udp = vec![0x30, 0x39, 0x00, 0x35];
        udp.extend_from_slice(&len.to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.resize(usize::from(len.max(8)), 0xab);
        udp
    }

    fn tcp(data_offset: u8) -> Vec<u8> {
        let mut tcp = vec![
            0x30,
            0x39,
            0x00,
            0x50,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            data_offset << 4,
            0x02,
        ];
        tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        tcp
    }

    #[test]
    fn udp_over_ipv4_with_padding() {
        let mut frame = eth(0x0800, &ipv4(17, 0, &[], &udp(12)));
        frame.extend_from_slice(&[0; 6]);
        let layout = parse(&frame).unwrap();
        assert_eq!(
            layout,
            Layout {
                flags: Layout::IPV4 | Layout::L4,
                vlan_tci: 0,
                eth_type: 0x0800,
                l3: 14,
                l4: 34,
                l3_end: 46,
                ip_proto: 17
            }
        );
        assert_eq!(layout.ipv4_src(&frame), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(layout.ipv4_dst(&frame), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(layout.l4_src_port(&frame), 12345);
        assert_eq!(layout.l4_dst_port(&frame), 53);
        assert_eq!(layout.ip_ttl(&frame), 64);
        assert_eq!(layout.src_mac(&frame), MacAddr([0x02, 0, 0, 0, 0, 1]));
        assert_eq!(layout.dst_mac(&frame), MacAddr([0x02, 0, 0, 0, 0, 2]));
        assert_eq!(layout.l4_bytes(&frame).len(), 12);
        assert_eq!(layout.ip_protocol(), IpProtocol::Udp);
        assert_eq!(layout.vlan_id(), None);
    }

    /// The straight-line IPv4/UDP path answers like the general parser for
    /// every frame it accepts: a valid frame with each header byte in turn
    /// set to values that flip the checks, at several frame lengths.
    #[test]
    fn udp4_fast_path_agrees_with_the_general_parser() {
        let base = eth(0x0800, &ipv4(17, 0x4000, &[], &udp(18)));
        assert!(parse_udp4_fast(&base).is_some());
        let mut accepted = 0;
        for at in 0..42 {
            let near = [base[at].wrapping_sub(1), base[at].wrapping_add(1)];
            let edges = [
                0, 1, 6, 8, 0x11, 0x1c, 0x20, 0x3f, 0x40, 0x45, 0x46, 0x86, 0xdd, 0xff,
            ];
            for v in near.into_iter().chain(edges) {
                for len in [41, 42, 45, 46, 59, base.len()] {
                    let mut f = base.clone();
                    f[at] = v;
                    f.truncate(len);
                    if let Some(fast) = parse_udp4_fast(&f) {
                        assert_eq!(
                            Ok(fast),
                            parse_general(&f),
                            "byte {at} = {v:#x}, {len} bytes"
                        );
                        accepted += 1;
                    }
                }
            }
        }
        assert!(accepted > 1000);
    }

    #[test]
    fn vlan_tag() {
        let mut inner = vec![0xa0, 0x64, 0x08, 0x00];
        inner.extend_from_slice(&ipv4(6, 0, &[], &tcp(5)));
        let frame = eth(0x8100, &inner);
        let layout = parse(&frame).unwrap();
        assert!(layout.has(Layout::VLAN | Layout::IPV4 | Layout::L4));
        assert_eq!(
            (layout.vlan_tci, layout.vlan_id(), layout.l3, layout.l4),
            (0xa064, Some(100), 18, 38)
        );
        assert_eq!(layout.tcp_flags(&frame), crate::wire::tcp::Flags::SYN);
        assert_eq!(layout.ethertype(), EtherType::Ipv4);

        let mut stacked = vec![0x00, 0x64, 0x81, 0x00, 0x00, 0x65, 0x08, 0x00];
        stacked.extend_from_slice(&ipv4(6, 0, &[], &tcp(5)));
        assert_eq!(parse(&eth(0x8100, &stacked)), Err(Malformed::StackedVlan));
        stacked[2..4].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(parse(&eth(0x8100, &stacked)), Err(Malformed::StackedVlan));
        assert_eq!(parse(&eth(0x88a8, &stacked)), Err(Malformed::StackedVlan));
        assert_eq!(
            parse(&eth(0x8100, &[0, 1, 8])),
            Err(Malformed::VlanTruncated)
        );
    }

    #[test]
    fn runts_and_unknown() {
        assert_eq!(parse(&[0; 13]), Err(Malformed::EthernetRunt));
        assert_eq!(parse(&[]), Err(Malformed::EthernetRunt));
        let frame = eth(0x88cc, &[1, 2, 3]);
        let layout = parse(&frame).unwrap();
        assert_eq!(
            (layout.flags, layout.l3, layout.l3_end, layout.eth_type),
            (0, 14, 17, 0x88cc)
        );
        assert_eq!(parse(&vec![0u8; 65536]), Err(Malformed::FrameTooLong));
    }

    #[test]
    fn arp() {
        let body = [
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0,
            0, 10, 0, 0, 2,
        ];
        let mut frame = eth(0x0806, &body);
        frame.resize(60, 0);
        let layout = parse(&frame).unwrap();
        assert!(layout.has(Layout::ARP));
        assert_eq!(layout.l3_end, 42);
        assert_eq!(layout.arp_op(&frame), crate::wire::arp::Operation::Request);
        assert_eq!(layout.arp_sha(&frame), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(layout.arp_spa(&frame), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(layout.arp_tha(&frame), MacAddr::default());
        assert_eq!(layout.arp_tpa(&frame), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(
            parse(&eth(0x0806, &body[..27])),
            Err(Malformed::ArpTruncated)
        );
        let mut bad = body;
        bad[5] = 16;
        assert_eq!(parse(&eth(0x0806, &bad)), Err(Malformed::ArpMalformed));
    }

    #[test]
    fn ipv4_header_errors() {
        let good = ipv4(17, 0, &[], &udp(8));
        assert_eq!(
            parse(&eth(0x0800, &good[..19])),
            Err(Malformed::Ipv4Truncated)
        );
        let mut bad = good.clone();
        bad[0] = 0x65;
        assert_eq!(parse(&eth(0x0800, &bad)), Err(Malformed::Ipv4BadVersion));
        bad[0] = 0x44;
        assert_eq!(parse(&eth(0x0800, &bad)), Err(Malformed::Ipv4BadIhl));
        bad[0] = 0x4f;
        assert_eq!(parse(&eth(0x0800, &bad)), Err(Malformed::Ipv4BadIhl));
        let mut bad = good.clone();
        bad[3] = 19;
        assert_eq!(
            parse(&eth(0x0800, &bad)),
            Err(Malformed::Ipv4BadTotalLength)
        );
        bad[3] = 29;
        assert_eq!(
            parse(&eth(0x0800, &bad)),
            Err(Malformed::Ipv4BadTotalLength)
        );
    }

    #[test]
    fn ipv4_options() {
        let frame = eth(0x0800, &ipv4(17, 0, &[148, 4, 0, 0], &udp(8)));
        let layout = parse(&frame).unwrap();
        assert!(layout.has(Layout::IP_OPTIONS | Layout::L4));
        assert_eq!(layout.l4, 38);
        // NOP, NOP, NOP, End: valid.
        assert!(parse(&eth(0x0800, &ipv4(17, 0, &[1, 1, 1, 0], &udp(8)))).is_ok());
        for bad in [[148, 0, 0, 0], [148, 1, 0, 0], [1, 1, 7, 3], [1, 1, 1, 7]] {
            assert_eq!(
                parse(&eth(0x0800, &ipv4(17, 0, &bad, &udp(8)))),
                Err(Malformed::Ipv4BadOptions),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment, MF set, whole UDP header but the datagram continues.
        let mut first = udp(8);
        first[4..6].copy_from_slice(&1000u16.to_be_bytes());
        let layout = parse(&eth(0x0800, &ipv4(17, 0x2000, &[], &first))).unwrap();
        assert!(layout.has(Layout::FRAGMENT | Layout::L4));
        assert!(!layout.has(Layout::LATER_FRAGMENT));
        // Later fragment: no L4 even if the bytes would look like one.
        let layout = parse(&eth(0x0800, &ipv4(17, 185, &[], &[0; 16]))).unwrap();
        assert!(layout.has(Layout::FRAGMENT | Layout::LATER_FRAGMENT));
        assert!(!layout.has(Layout::L4));
        assert_eq!(layout.ip_proto, 17);
        // Tiny first fragments (RFC 1858 §3.1).
        assert_eq!(
            parse(&eth(0x0800, &ipv4(6, 0x2000, &[], &[0; 16]))),
            Err(Malformed::Ipv4TinyFragment)
        );
        assert_eq!(
            parse(&eth(0x0800, &ipv4(6, 0x2000, &[], &tcp(15)))),
            Err(Malformed::Ipv4TinyFragment)
        );
        assert_eq!(
            parse(&eth(0x0800, &ipv4(17, 0x2000, &[], &[0; 4]))),
            Err(Malformed::Ipv4TinyFragment)
        );
        // Overlapping TCP fragment (RFC 1858 §3.2); offset 1 for UDP is merely a fragment.
        assert_eq!(
            parse(&eth(0x0800, &ipv4(6, 1, &[], &[0; 8]))),
            Err(Malformed::Ipv4FragmentOverlap)
        );
        assert!(parse(&eth(0x0800, &ipv4(17, 1, &[], &[0; 8]))).is_ok());
        // DF alone is not a fragment.
        let layout = parse(&eth(0x0800, &ipv4(17, 0x4000, &[], &udp(8)))).unwrap();
        assert!(!layout.has(Layout::FRAGMENT));
    }

    #[test]
    fn l4_errors() {
        assert_eq!(
            parse(&eth(0x0800, &ipv4(6, 0, &[], &[0; 19]))),
            Err(Malformed::TcpTruncated)
        );
        assert_eq!(
            parse(&eth(0x0800, &ipv4(6, 0, &[], &tcp(4)))),
            Err(Malformed::TcpTruncated)
        );
        assert_eq!(
            parse(&eth(0x0800, &ipv4(6, 0, &[], &tcp(6)))),
            Err(Malformed::TcpTruncated)
        );
        assert_eq!(
            parse(&eth(0x0800, &ipv4(17, 0, &[], &[0; 7]))),
            Err(Malformed::UdpTruncated)
        );
        let mut short = udp(8);
        short[5] = 7;
        assert_eq!(
            parse(&eth(0x0800, &ipv4(17, 0, &[], &short))),
            Err(Malformed::UdpTruncated)
        );
        short[5] = 9;
        assert_eq!(
            parse(&eth(0x0800, &ipv4(17, 0, &[], &short))),
            Err(Malformed::UdpTruncated)
        );
        assert_eq!(
            parse(&eth(0x0800, &ipv4(1, 0, &[], &[8, 0, 0, 0]))),
            Err(Malformed::IcmpTruncated)
        );
        let layout = parse(&eth(0x0800, &ipv4(1, 0, &[], &[8, 0, 0, 0, 0, 1, 0, 1]))).unwrap();
        assert!(layout.has(Layout::L4));
        assert_eq!(
            layout.icmp_type(&eth(0x0800, &ipv4(1, 0, &[], &[8, 0, 0, 0, 0, 1, 0, 1]))),
            8
        );
        // Unknown protocol: valid, no L4.
        let layout = parse(&eth(0x0800, &ipv4(47, 0, &[], &[0; 4]))).unwrap();
        assert!(layout.has(Layout::IPV4) && !layout.has(Layout::L4));
        // ICMPv6 over IPv4 is just an unknown protocol.
        assert!(!parse(&eth(0x0800, &ipv4(58, 0, &[], &[0; 4])))
            .unwrap()
            .has(Layout::L4));
    }

    #[test]
    fn ipv6_plain_and_errors() {
        let mut frame = eth(0x86dd, &ipv6(17, &udp(8)));
        frame.extend_from_slice(&[0; 4]);
        let layout = parse(&frame).unwrap();
        assert!(layout.has(Layout::IPV6 | Layout::L4));
        assert!(!layout.has(Layout::IP_OPTIONS));
        assert_eq!((layout.l4, layout.l3_end, layout.ip_proto), (54, 62, 17));
        assert_eq!(
            layout.ipv6_src(&frame),
            "fe80::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            layout.ipv6_dst(&frame),
            "fe80::2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(layout.ip_ttl(&frame), 64);

        let good = ipv6(17, &udp(8));
        assert_eq!(
            parse(&eth(0x86dd, &good[..39])),
            Err(Malformed::Ipv6Truncated)
        );
        let mut bad = good.clone();
        bad[0] = 0x40;
        assert_eq!(parse(&eth(0x86dd, &bad)), Err(Malformed::Ipv6BadVersion));
        assert_eq!(
            parse(&eth(0x86dd, &good[..47])),
            Err(Malformed::Ipv6BadPayloadLength)
        );
        assert_eq!(
            parse(&eth(0x86dd, &ipv6(58, &[135, 0, 0]))),
            Err(Malformed::IcmpTruncated)
        );
        assert!(parse(&eth(0x86dd, &ipv6(59, &[]))).is_ok());
    }

    #[test]
    fn ipv6_extension_headers() {
        // Hop-by-Hop (PadN) -> Destination Options (len 1 = 16 bytes) -> UDP.
        let mut rest = vec![60, 0, 1, 4, 0, 0, 0, 0];
        rest.extend_from_slice(&[17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        rest.extend_from_slice(&udp(8));
        let layout = parse(&eth(0x86dd, &ipv6(0, &rest))).unwrap();
        assert!(layout.has(Layout::IPV6 | Layout::L4 | Layout::IP_OPTIONS));
        assert_eq!((layout.l4, layout.ip_proto), (14 + 40 + 24, 17));

        // Hop-by-Hop not first.
        let mut rest = vec![0, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
        rest.extend_from_slice(&udp(8));
        assert_eq!(
            parse(&eth(0x86dd, &ipv6(60, &rest))),
            Err(Malformed::Ipv6BadExtensionHeader)
        );
        // Truncated extension header.
        assert_eq!(
            parse(&eth(0x86dd, &ipv6(60, &[17, 1, 0, 0, 0, 0, 0, 0]))),
            Err(Malformed::Ipv6BadExtensionHeader)
        );
        assert_eq!(
            parse(&eth(0x86dd, &ipv6(60, &[17]))),
            Err(Malformed::Ipv6BadExtensionHeader)
        );
        // Nine Destination Options headers.
        let mut rest = Vec::new();
        for i in 0..9 {
            rest.extend_from_slice(&[if i == 8 { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        rest.extend_from_slice(&udp(8));
        assert_eq!(
            parse(&eth(0x86dd, &ipv6(60, &rest))),
            Err(Malformed::Ipv6BadExtensionHeader)
        );
        // Eight are fine.
        let mut rest = Vec::new();
        for i in 0..8 {
            rest.extend_from_slice(&[if i == 7 { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        rest.extend_from_slice(&udp(8));
        assert!(parse(&eth(0x86dd, &ipv6(60, &rest)))
            .unwrap()
            .has(Layout::L4));
    }

    #[test]
    fn ipv6_fragments() {
        // First fragment: offset 0, M=1, whole UDP header whose length covers more.
        let mut rest = vec![17, 0, 0, 1, 0, 0, 0, 7];
        let mut first = udp(8);
        first[4..6].copy_from_slice(&3000u16.to_be_bytes());
        rest.extend_from_slice(&first);
        let layout = parse(&eth(0x86dd, &ipv6(44, &rest))).unwrap();
        assert!(layout.has(Layout::FRAGMENT | Layout::L4 | Layout::IP_OPTIONS));
        assert_eq!(layout.l4, 14 + 48);
        // Later fragment.
        let mut rest = vec![17, 0, 0x05, 0xa8, 0, 0, 0, 7];
        rest.extend_from_slice(&[0; 16]);
        let layout = parse(&eth(0x86dd, &ipv6(44, &rest))).unwrap();
        assert!(layout.has(Layout::FRAGMENT | Layout::LATER_FRAGMENT));
        assert!(!layout.has(Layout::L4));
        assert_eq!(layout.ip_proto, 17);
        // First fragment cut inside the TCP header, or inside an extension header.
        let mut rest = vec![6, 0, 0, 1, 0, 0, 0, 7];
        rest.extend_from_slice(&[0; 12]);
        assert_eq!(
            parse(&eth(0x86dd, &ipv6(44, &rest))),
            Err(Malformed::Ipv6TinyFragment)
        );
        let rest = [60, 0, 0, 1, 0, 0, 0, 7, 6, 2, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse(&eth(0x86dd, &ipv6(44, &rest))),
            Err(Malformed::Ipv6TinyFragment)
        );
    }

    #[test]
    fn malformed_names() {
        for (i, reason) in Malformed::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
            let label = reason.as_str();
            assert!(
                label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{label}"
            );
            assert!(!reason.to_string().is_empty());
        }
        let mut labels: Vec<_> = Malformed::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Malformed::ALL.len());
    }
}
