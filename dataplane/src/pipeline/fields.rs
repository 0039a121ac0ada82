//! What a stage's decision reads, and the flow-cache key built from it.
//!
//! The idea of OVS's megaflows, for an exact-match cache. Each stage
//! declares the fields its decision reads on ordinary packets
//! ([`Fields`], a `READS` constant beside the stage); a datapath's cache
//! key holds the union of its stages' declarations ([`flow_key`]). Stages
//! read the packet only through [`Parsed`], which records every field read,
//! including the rare ones (an ARP header, an ND option, the UDP ports of a
//! DHCP discover); a verdict whose recorded reads are not all in the key is
//! not cached. So a stage that reads more widens the key through its
//! declaration, and a packet whose verdict depends on something the key
//! cannot hold takes the full pipeline every time: never a wrong cached
//! verdict. Stateful stages (conntrack) come after the cached prefix and run
//! on every packet.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::cache::FlowKey;
use crate::ids::PortId;
use crate::wire::layout::Layout;
use crate::wire::{EtherType, IpProtocol, MacAddr};

/// A set of packet fields (and metadata) that decisions read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields(u32);

impl Fields {
    pub const NONE: Fields = Fields(0);
    /// The local port a packet arrived on.
    pub const IN_PORT: Fields = Fields(1 << 0);
    /// The datapath a tunnel packet names (metadata of decapsulation).
    pub const DATAPATH: Fields = Fields(1 << 1);
    /// The egress a tunnel packet names: port key, group, or none.
    pub const TUNNEL_EGRESS: Fields = Fields(1 << 2);
    pub const ETH_SRC: Fields = Fields(1 << 3);
    pub const ETH_DST: Fields = Fields(1 << 4);
    /// The ethertype (of an untagged frame: keys are built for those only).
    pub const ETH_TYPE: Fields = Fields(1 << 5);
    pub const IP_SRC: Fields = Fields(1 << 6);
    pub const IP_DST: Fields = Fields(1 << 7);
    pub const IP_PROTO: Fields = Fields(1 << 8);
    /// TCP/UDP/SCTP source port, or ICMP type (as OVS's `tp_src`).
    pub const L4_SRC: Fields = Fields(1 << 9);
    /// TCP/UDP/SCTP destination port, or ICMP code (as OVS's `tp_dst`).
    pub const L4_DST: Fields = Fields(1 << 10);
    /// Whether the IPv4 TTL or IPv6 hop limit is at most 1 (a router's
    /// time exceeded): keys hold that bit, not the TTL.
    pub const TTL_EXPIRING: Fields = Fields(1 << 11);
    /// Not a field the stages read but a mark of the key: it stands for
    /// every L4 port (and every fragment) of its addresses. The key of a
    /// stateful datapath's established traffic ([`crate::pipeline::STATEFUL_KEY`]),
    /// whose verdict holds under conntrack checks run for every packet;
    /// marked so that it never equals an L4-wide key of the same port.
    pub const ANY_L4: Fields = Fields(1 << 12);
    /// An 802.1Q tag. No key holds it.
    pub const VLAN: Fields = Fields(1 << 16);
    /// The ARP header. No key holds it.
    pub const ARP: Fields = Fields(1 << 17);
    /// Neighbour discovery: ICMPv6 type, target, options. No key holds it.
    pub const ND: Fields = Fields(1 << 18);
    /// Connection tracking state (a stateful stage ran). No key holds it.
    pub const CONNTRACK: Fields = Fields(1 << 19);
    /// The L4 header of a first fragment: keys hold ports only of
    /// unfragmented packets. No key holds it.
    pub const FRAGMENT_L4: Fields = Fields(1 << 20);
    /// The logical ingress port a tunnel packet names. No key holds it.
    pub const TUNNEL_INGRESS: Fields = Fields(1 << 21);
    /// The packet is rewritten into an answer that depends on more than
    /// the key: a reject's TCP RST or ICMP error, a router's echo reply or
    /// time exceeded (which quote the packet, or must know a fragment's
    /// place), a router's ARP request or solicitation for an unknown next
    /// hop (rate limited per packet), or a router learning a neighbour. No
    /// key holds it, so such verdicts are never cached.
    pub const ANSWER: Fields = Fields(1 << 22);
    /// A logged ACL matched: every such packet is logged (as OVN's `log()`
    /// sends each one to ovn-controller), so no verdict is cached. No key
    /// holds it.
    pub const LOG: Fields = Fields(1 << 23);

    /// What [`flow_key`] can hold.
    pub const KEYABLE: Fields = Fields((1 << 13) - 1);

    /// Both sets.
    #[inline(always)]
    pub const fn with(self, other: Fields) -> Fields {
        Fields(self.0 | other.0)
    }

    /// Whether every field of `other` is in `self`.
    #[inline(always)]
    pub const fn contains(self, other: Fields) -> bool {
        self.0 & other.0 == other.0
    }

    /// The raw bits, for a const generic parameter.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// A parsed packet as the stages read it: every accessor records the field
/// it reads, so the pipeline knows whether a verdict may be cached.
pub struct Parsed<'a> {
    frame: &'a [u8],
    lay: Layout,
    reads: Fields,
    /// Conntrack checks a verdict depends on, beside its fields (see
    /// [`Parsed::ct_established`]).
    ct_checks: u16,
}

impl<'a> Parsed<'a> {
    /// `frame`, parsed into `lay`.
    #[inline(always)]
    pub fn new(frame: &'a [u8], lay: Layout) -> Self {
        Parsed {
            frame,
            lay,
            reads: Fields::NONE,
            ct_checks: 0,
        }
    }

    /// What the stages read so far.
    #[inline(always)]
    pub fn reads(&self) -> Fields {
        self.reads
    }

    /// Records a read of `f` made without an accessor (metadata).
    #[inline(always)]
    pub fn read(&mut self, f: Fields) {
        self.reads = self.reads.with(f);
    }

    /// The layout (offsets), unrecorded.
    #[inline(always)]
    pub fn layout(&self) -> &Layout {
        &self.lay
    }

    #[inline(always)]
    pub fn vlan_id(&mut self) -> Option<u16> {
        // Only a tag is beyond a key: keys are built for untagged frames
        // alone, so "no tag" is in every key.
        let vid = self.lay.vlan_id();
        if vid.is_some() {
            self.read(Fields::VLAN);
        }
        vid
    }

    #[inline(always)]
    pub fn eth_src(&mut self) -> MacAddr {
        self.read(Fields::ETH_SRC);
        self.lay.src_mac(self.frame)
    }

    #[inline(always)]
    pub fn eth_dst(&mut self) -> MacAddr {
        self.read(Fields::ETH_DST);
        self.lay.dst_mac(self.frame)
    }

    #[inline(always)]
    pub fn eth_type(&mut self) -> EtherType {
        self.read(Fields::ETH_TYPE);
        self.lay.ethertype()
    }

    /// Valid for IPv4.
    #[inline(always)]
    pub fn ip4_src(&mut self) -> Ipv4Addr {
        self.read(Fields::IP_SRC);
        self.lay.ipv4_src(self.frame)
    }

    /// Valid for IPv4.
    #[inline(always)]
    pub fn ip4_dst(&mut self) -> Ipv4Addr {
        self.read(Fields::IP_DST);
        self.lay.ipv4_dst(self.frame)
    }

    /// Valid for IPv6.
    #[inline(always)]
    pub fn ip6_src(&mut self) -> Ipv6Addr {
        self.read(Fields::IP_SRC);
        self.lay.ipv6_src(self.frame)
    }

    /// Valid for IPv6.
    #[inline(always)]
    pub fn ip6_dst(&mut self) -> Ipv6Addr {
        self.read(Fields::IP_DST);
        self.lay.ipv6_dst(self.frame)
    }

    /// Whether the TTL / hop limit is at most 1; valid for IPv4 and IPv6.
    #[inline(always)]
    pub fn ttl_expiring(&mut self) -> bool {
        self.read(Fields::TTL_EXPIRING);
        self.lay.ip_ttl(self.frame) <= 1
    }

    /// The upper-layer protocol; valid for IPv4 and IPv6.
    #[inline(always)]
    pub fn ip_proto(&mut self) -> IpProtocol {
        self.read(Fields::IP_PROTO);
        self.lay.ip_protocol()
    }

    /// TCP/UDP/SCTP ports (source, destination), if the packet has a whole
    /// L4 header of one of those.
    #[inline(always)]
    pub fn l4_ports(&mut self) -> Option<(u16, u16)> {
        self.read(Fields::L4_SRC.with(Fields::L4_DST).with(Fields::IP_PROTO));
        self.read_fragment_l4();
        let ported = matches!(
            self.lay.ip_protocol(),
            IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Sctp
        );
        (ported && self.lay.has(Layout::L4)).then(|| {
            (
                self.lay.l4_src_port(self.frame),
                self.lay.l4_dst_port(self.frame),
            )
        })
    }

    /// A first fragment's L4 fields are beyond the key.
    #[inline(always)]
    fn read_fragment_l4(&mut self) {
        if self.lay.has(Layout::FRAGMENT) {
            self.read(Fields::FRAGMENT_L4);
        }
    }

    /// ICMP or ICMPv6 type and code, if the packet has a whole ICMP header
    /// of its IP version (OVS's `tp_src`: what [`Fields::L4_SRC`] keys).
    #[inline(always)]
    pub fn icmp_type_code(&mut self) -> Option<(u8, u8)> {
        self.read(Fields::L4_SRC.with(Fields::IP_PROTO));
        self.read_fragment_l4();
        let icmp = match self.lay.ip_protocol() {
            IpProtocol::Icmp => self.lay.has(Layout::IPV4),
            IpProtocol::Icmpv6 => self.lay.has(Layout::IPV6),
            _ => false,
        };
        (icmp && self.lay.has(Layout::L4)).then(|| {
            (
                self.lay.icmp_type(self.frame),
                self.lay.icmp_code(self.frame),
            )
        })
    }

    /// The frame and its layout, for a stateful stage (conntrack), which
    /// reads what it needs (flags, identifiers, quoted headers). Unrecorded:
    /// the stage records what its decision depends on, [`Fields::CONNTRACK`]
    /// or [`Parsed::ct_established`].
    #[inline(always)]
    pub fn stateful(&self) -> (&'a [u8], &Layout) {
        (self.frame, &self.lay)
    }

    /// The decision holds for every packet with these fields whose
    /// connection passes conntrack check `check` again (a committed
    /// connection, allowed without evaluating ACLs): the flow cache keeps
    /// it with the check, which runs again on every hit.
    #[inline(always)]
    pub fn ct_established(&mut self, check: u16) {
        self.ct_checks |= check;
    }

    /// The conntrack checks recorded so far.
    #[inline(always)]
    pub fn ct_checks(&self) -> u16 {
        self.ct_checks
    }

    /// The ICMPv6 message (type, and the message from its first byte to the
    /// end of the IPv6 packet), if the packet is one: neighbour discovery
    /// and MLD are read through this, so it counts as [`Fields::ND`].
    #[inline(always)]
    pub fn icmpv6(&mut self) -> Option<(u8, &'a [u8])> {
        // Whether it is ICMPv6 at all depends on the protocol alone, so
        // other IPv6 packets stay cacheable.
        if self.ip_proto() != IpProtocol::Icmpv6 {
            return None;
        }
        self.read(Fields::ND);
        self.lay.has(Layout::L4).then(|| {
            (
                self.frame[usize::from(self.lay.l4)],
                self.lay.l4_bytes(self.frame),
            )
        })
    }

    /// The ARP header (`l3..l3_end`), if the packet is ARP.
    #[inline(always)]
    pub fn arp(&mut self) -> Option<&'a [u8]> {
        self.read(Fields::ARP);
        self.lay
            .has(Layout::ARP)
            .then(|| self.lay.l3_bytes(self.frame))
    }
}

/// Metadata a key may hold besides the packet's own fields.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyMeta {
    pub in_port: PortId,
    pub datapath: u16,
    /// The tunnel egress, encoded (kind in bits 16-17, key below).
    pub tunnel_egress: u32,
}

/// Little-endian word at `at` (the caller checked the frame's length).
#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(*b[at..].first_chunk().expect("within the checked header"))
}

/// Calls `keyed` with the flow-cache key of an untagged packet for a
/// datapath whose stages read `F` (the bits of a [`Fields`]) and its hash;
/// None for what no key holds (a VLAN tag, or IPv6 with L4 fields, which
/// six words cannot hold next to two IPv6 addresses). A continuation rather
/// than a returned key: inlined into each layout's arm, the lookup hashes
/// and compares with the words that layout lacks as constant zeros, and
/// the key stays in registers.
///
/// Words are loaded little-endian straight from the frame. Word 0: eth.dst
/// and the in_port or the datapath (a datapath keys one or the other); word
/// 1: eth.src or the tunnel egress (a datapath keys one or the other), and
/// in its top 16 bits a tag that says how the words below are laid out:
/// 0x01pp for IPv4 and 0x02pp for IPv6 with IP protocol pp (0x03pp and
/// 0x04pp when the key holds [`Fields::TTL_EXPIRING`] and it is set), else the
/// ethertype, so keys of different layouts never collide (frames whose
/// type field is an 802.3 length below 0x600 get no key); words 2-5: the
/// IP addresses (zero for what a type lacks), and for IPv4 the L4 ports
/// with bit 32 set when the key holds them, or bit 33 for a key marked
/// [`Fields::ANY_L4`] (an IPv6 key never holds L4 ports, so needs no mark).
/// Fields `F` lacks are zero, so the compiler folds them away.
#[inline(always)]
pub fn flow_key<const F: u32, R>(
    frame: &[u8],
    lay: &Layout,
    meta: KeyMeta,
    keyed: impl FnOnce(FlowKey, u64) -> R,
) -> Option<R> {
    let f = Fields(F);
    const {
        assert!(
            Fields::KEYABLE.contains(Fields(F)),
            "a stage declares a field no flow key holds"
        );
        assert!(
            !Fields(F).contains(Fields::IN_PORT.with(Fields::DATAPATH)),
            "a key holds the in_port or the datapath, not both"
        );
        assert!(
            !Fields(F).contains(Fields::ETH_SRC.with(Fields::TUNNEL_EGRESS)),
            "a key holds eth.src or the tunnel egress, not both"
        );
        assert!(
            !Fields(F).contains(Fields::ANY_L4.with(Fields::L4_SRC))
                && !Fields(F).contains(Fields::ANY_L4.with(Fields::L4_DST)),
            "a key stands for every L4 port or holds them, not both"
        );
    }
    if lay.has(Layout::VLAN) {
        return None;
    }
    let bit = |x: Fields, w: u64| if f.contains(x) { w } else { 0 };
    let h: &[u8; 14] = frame.first_chunk()?;
    let eth_dst = word(h, 0) & 0xffff_ffff_ffff;
    let eth_src = word(h, 6) & 0xffff_ffff_ffff;
    let port = bit(Fields::IN_PORT, u64::from(meta.in_port.0))
        | bit(Fields::DATAPATH, u64::from(meta.datapath));
    let w0 = bit(Fields::ETH_DST, eth_dst) | port << 48;
    let w1 =
        bit(Fields::ETH_SRC, eth_src) | bit(Fields::TUNNEL_EGRESS, u64::from(meta.tunnel_egress));
    let proto = bit(Fields::IP_PROTO, u64::from(lay.ip_proto));
    let l4 = Fields::L4_SRC.with(Fields::L4_DST);
    const IPV4: u16 = EtherType::Ipv4.value();
    const IPV6: u16 = EtherType::Ipv6.value();
    match lay.eth_type {
        IPV4 => {
            let ip: &[u8; 34] = frame.first_chunk()?;
            let expiring = bit(Fields::TTL_EXPIRING, u64::from(ip[22] <= 1));
            let w1 = w1 | ((0x0100 + (expiring << 9)) | proto) << 48;
            let addrs = word(ip, 26);
            let src = bit(Fields::IP_SRC, addrs & 0xffff_ffff);
            let dst = bit(Fields::IP_DST, addrs & !0xffff_ffff);
            let ports = if f.0 & l4.0 != 0 && lay.has(Layout::L4) && !lay.has(Layout::FRAGMENT) {
                let l4at = usize::from(lay.l4);
                let p = u64::from(u32::from_be_bytes(*frame[l4at..].first_chunk()?));
                bit(Fields::L4_SRC, p & 0xffff_0000) | bit(Fields::L4_DST, p & 0xffff) | 1 << 32
            } else {
                bit(Fields::ANY_L4, 1 << 33)
            };
            let k = FlowKey([w0, w1, src | dst, ports, 0, 0]);
            Some(keyed(k, k.hash()))
        }
        IPV6 => {
            if f.0 & l4.0 != 0 {
                return None;
            }
            let ip: &[u8; 54] = frame.first_chunk()?;
            let expiring = bit(Fields::TTL_EXPIRING, u64::from(ip[21] <= 1));
            let w1 = w1 | ((0x0200 + (expiring << 9)) | proto) << 48;
            let (s0, s1) = (word(ip, 22), word(ip, 30));
            let (d0, d1) = (word(ip, 38), word(ip, 46));
            let k = FlowKey([
                w0,
                w1,
                bit(Fields::IP_SRC, s0),
                bit(Fields::IP_SRC, s1),
                bit(Fields::IP_DST, d0),
                bit(Fields::IP_DST, d1),
            ]);
            Some(keyed(k, k.hash()))
        }
        // An 802.3 length, not a type: its tag could be an IP one.
        t if t < 0x0600 => None,
        t => {
            let k = FlowKey([w0, w1 | u64::from(t) << 48, 0, 0, 0, 0]);
            Some(keyed(k, k.hash()))
        }
    }
}
