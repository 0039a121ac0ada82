//! Ethernet II frames (IEEE 802.3 §3.2.6 type field), MAC addresses and 802.1Q VLAN tags.
//!
//! [`Frame`] is the view of the 14-byte Ethernet header and its payload; when the
//! ethertype is [`EtherType::Vlan`] the payload starts with a 4-byte 802.1Q tag
//! (IEEE 802.1Q §9.6), viewed by [`VlanTag`], whose own ethertype names what follows.
//! [`MacAddr`] is the address type used everywhere in the dataplane.

use core::fmt;
use core::str::FromStr;

use super::{Error, Result};

/// A 48-bit IEEE 802 MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Reads an address from the first six bytes of `bytes`.
    ///
    /// # Panics
    /// If `bytes` is shorter than six bytes.
    pub fn from_bytes(bytes: &[u8]) -> MacAddr {
        let mut addr = [0; 6];
        addr.copy_from_slice(&bytes[..6]);
        MacAddr(addr)
    }

    /// The six octets.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The individual/group bit is set (IEEE 802 §8.2); includes broadcast.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Not a group address.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The locally administered bit is set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A string that is not six colon-separated pairs of hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid MAC address {0:?}: expected six colon-separated hex octets like aa:bb:cc:dd:ee:ff"
)]
pub struct ParseMacAddrError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacAddrError;

    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let err = || ParseMacAddrError(s.to_owned());
        let mut addr = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut addr {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(addr))
    }
}

enum_with_unknown! {
    /// The Ethernet type field (IEEE 802.3 §3.2.6; IANA "IEEE 802 Numbers").
    pub enum EtherType(u16) {
        /// IPv4 (RFC 894).
        Ipv4 = 0x0800,
        /// ARP (RFC 826).
        Arp = 0x0806,
        /// IPv6 (RFC 2464).
        Ipv6 = 0x86dd,
        /// IEEE 802.1Q customer VLAN tag.
        Vlan = 0x8100,
        /// IEEE 802.1ad service VLAN tag (QinQ outer tag).
        QinQ = 0x88a8,
        /// Transparent Ethernet Bridging: an Ethernet frame follows (Geneve's protocol
        /// type for Ethernet payloads, RFC 8926 §3.4).
        TransparentEthernetBridging = 0x6558,
    }
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer that holds at least the 14-byte header.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Err(Truncated)` if the buffer is shorter than the header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Source address.
    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// The type field.
    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Everything after the 14-byte header (a VLAN tag, if the ethertype says so).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the type field.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(ethertype).to_be_bytes());
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Frame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frame = Frame::new_unchecked(self.buffer.as_ref());
        match Repr::parse(&frame) {
            Ok(repr) => write!(f, "{repr}"),
            Err(err) => write!(f, "Ethernet ({err})"),
        }
    }
}

/// The semantic content of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: MacAddr,
    /// Destination address.
    pub dst_addr: MacAddr,
    /// Type of the payload.
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads the header of a frame.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into a frame of at least [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ethernet src={} dst={} type={}",
            self.src_addr, self.dst_addr, self.ethertype
        )
    }
}

mod vlan_field {
    use core::ops::{Range, RangeFrom};
    pub const TCI: Range<usize> = 0..2;
    pub const ETHERTYPE: Range<usize> = 2..4;
    pub const PAYLOAD: RangeFrom<usize> = 4..;
}

/// Length of an 802.1Q tag (after the outer 0x8100 type field).
pub const VLAN_TAG_LEN: usize = vlan_field::PAYLOAD.start;

/// A view of an 802.1Q tag: the Tag Control Information (PCP 3 bits, DEI 1 bit, VID 12
/// bits; IEEE 802.1Q §9.6) and the ethertype of what follows. Wrap the payload of a
/// [`Frame`] whose ethertype is [`EtherType::Vlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> VlanTag<T> {
        VlanTag { buffer }
    }

    /// Wraps a buffer that holds at least the 4-byte tag.
    pub fn new_checked(buffer: T) -> Result<VlanTag<T>> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    /// `Err(Truncated)` if the buffer is shorter than the tag.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole Tag Control Information.
    pub fn tci(&self) -> u16 {
        let b = &self.buffer.as_ref()[vlan_field::TCI];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The type of the payload after the tag.
    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[vlan_field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Everything after the tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[vlan_field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the whole Tag Control Information.
    pub fn set_tci(&mut self, tci: u16) {
        self.buffer.as_mut()[vlan_field::TCI].copy_from_slice(&tci.to_be_bytes());
    }

    /// Sets the VLAN identifier (the low 12 bits of `vid`), keeping PCP and DEI.
    pub fn set_vid(&mut self, vid: u16) {
        self.set_tci((self.tci() & 0xf000) | (vid & 0x0fff));
    }

    /// Sets the priority code point (the low 3 bits of `pcp`), keeping DEI and VID.
    pub fn set_pcp(&mut self, pcp: u8) {
        self.set_tci((self.tci() & 0x1fff) | (u16::from(pcp & 0x7) << 13));
    }

    /// Sets the type of the payload after the tag.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[vlan_field::ETHERTYPE]
            .copy_from_slice(&u16::from(ethertype).to_be_bytes());
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[vlan_field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for VlanTag<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = VlanTag::new_unchecked(self.buffer.as_ref());
        match VlanRepr::parse(&tag) {
            Ok(repr) => write!(f, "{repr}"),
            Err(err) => write!(f, "802.1Q ({err})"),
        }
    }
}

/// The semantic content of an 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanRepr {
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4095.
    pub vid: u16,
    /// Type of the payload after the tag.
    pub ethertype: EtherType,
}

impl VlanRepr {
    /// Reads a tag. VID 0xfff is reserved (IEEE 802.1Q Table 9-2) and rejected as `Malformed`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(tag: &VlanTag<&T>) -> Result<VlanRepr> {
        tag.check_len()?;
        if tag.vid() == 0x0fff {
            return Err(Error::Malformed);
        }
        Ok(VlanRepr {
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
            ethertype: tag.ethertype(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        VLAN_TAG_LEN
    }

    /// The Tag Control Information this tag encodes.
    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }

    /// Writes the tag into a buffer of at least [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut VlanTag<T>) {
        tag.set_tci(self.tci());
        tag.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for VlanRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "802.1Q vid={} pcp={} dei={} type={}",
            self.vid,
            self.pcp,
            u8::from(self.dei),
            self.ethertype
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // dst 00:11:22:33:44:55, src 02:00:00:00:00:01, 802.1Q pcp 5 vid 100, then IPv4.
    static VLAN_FRAME: [u8; 22] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00, 0xa0,
        0x64, 0x08, 0x00, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    #[test]
    fn mac_addr_classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(MacAddr([0x02, 0, 0, 0, 0, 1]).is_unicast());
        assert!(MacAddr([0x02, 0, 0, 0, 0, 1]).is_local());
        assert!(!MacAddr::default().is_multicast());
    }

    #[test]
    fn mac_addr_text() {
        let mac: MacAddr = "AA:bb:0c:dd:ee:0F".parse().unwrap();
        assert_eq!(mac, MacAddr([0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x0f]));
        assert_eq!(mac.to_string(), "aa:bb:0c:dd:ee:0f");
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb:cc:dd:ee:f",
            "aa:bb:cc:dd:ee:gg",
            "aabb.ccdd.eeff",
            "+a:bb:cc:dd:ee:ff",
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            let _: &dyn std::error::Error = &err;
        }
    }

    #[test]
    fn ethertype_numbers() {
        assert_eq!(EtherType::from(0x8100), EtherType::Vlan);
        assert_eq!(EtherType::from(0x88a8), EtherType::QinQ);
        assert_eq!(u16::from(EtherType::Unknown(0x1234)), 0x1234);
        assert_eq!(EtherType::Arp.to_string(), "Arp");
        assert_eq!(EtherType::Unknown(0x1234).to_string(), "0x1234");
    }

    #[test]
    fn deconstruct() {
        let frame = Frame::new_checked(&VLAN_FRAME[..]).unwrap();
        assert_eq!(
            frame.dst_addr(),
            MacAddr([0x00, 0x11, 0x22, 0x33, 0x44, 0x55])
        );
        assert_eq!(frame.src_addr(), MacAddr([0x02, 0, 0, 0, 0, 1]));
        assert_eq!(frame.ethertype(), EtherType::Vlan);
        let tag = VlanTag::new_checked(frame.payload()).unwrap();
        assert_eq!(tag.tci(), 0xa064);
        assert_eq!(tag.pcp(), 5);
        assert!(!tag.dei());
        assert_eq!(tag.vid(), 100);
        assert_eq!(tag.ethertype(), EtherType::Ipv4);
        assert_eq!(tag.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(
            frame.to_string(),
            "Ethernet src=02:00:00:00:00:01 dst=00:11:22:33:44:55 type=Vlan"
        );
        assert_eq!(tag.to_string(), "802.1Q vid=100 pcp=5 dei=0 type=Ipv4");
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 22];
        let mut frame = Frame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(MacAddr([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]));
        frame.set_src_addr(MacAddr([0x02, 0, 0, 0, 0, 1]));
        frame.set_ethertype(EtherType::Vlan);
        let mut tag = VlanTag::new_unchecked(frame.payload_mut());
        tag.set_vid(100);
        tag.set_pcp(5);
        tag.set_ethertype(EtherType::Ipv4);
        tag.payload_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(bytes, VLAN_FRAME);
    }

    #[test]
    fn parse_and_emit() {
        let frame = Frame::new_checked(&VLAN_FRAME[..]).unwrap();
        let repr = Repr::parse(&frame).unwrap();
        let tag = VlanTag::new_checked(frame.payload()).unwrap();
        let vlan = VlanRepr::parse(&tag).unwrap();
        assert_eq!(
            vlan,
            VlanRepr {
                pcp: 5,
                dei: false,
                vid: 100,
                ethertype: EtherType::Ipv4
            }
        );

        let mut bytes = VLAN_FRAME;
        bytes[..18].fill(0);
        let mut out = Frame::new_unchecked(&mut bytes[..]);
        repr.emit(&mut out);
        vlan.emit(&mut VlanTag::new_unchecked(out.payload_mut()));
        assert_eq!(bytes, VLAN_FRAME);
        assert_eq!(repr.buffer_len() + vlan.buffer_len(), 18);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Frame::new_checked(&VLAN_FRAME[..13]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            VlanTag::new_checked(&VLAN_FRAME[14..17]).unwrap_err(),
            Error::Truncated
        );
        let mut reserved = VLAN_FRAME;
        reserved[14..16].copy_from_slice(&[0x0f, 0xff]);
        let tag = VlanTag::new_checked(&reserved[14..]).unwrap();
        assert_eq!(VlanRepr::parse(&tag).unwrap_err(), Error::Malformed);
    }
}
