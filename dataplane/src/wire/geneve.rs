//! Geneve headers and option TLVs (RFC 8926), the overlay encoding OVN uses by default.
//!
//! The 8-byte base header (§3.4) — version, options length, O and C bits, protocol type,
//! 24-bit VNI — is followed by variable-length options (§3.5) and the inner frame.
//! [`Packet`] views a header (options length checked against the buffer once), [`Options`]
//! iterates over the TLVs, [`Repr`] parses and emits header and raw options, and
//! [`emit_options`] writes a list of [`GeneveOption`]s. OVN puts one option in every packet:
//! class [`OVN_OPTION_CLASS`], type [`OVN_OPTION_TYPE`], 4 bytes carrying the logical ingress
//! and egress ports ([`OvnMetadata`]); the VNI carries the logical datapath key.

use core::fmt;

use super::{Error, EtherType, Result};

mod field {
    use core::ops::{Range, RangeFrom};
    pub const VER_OPTLEN: usize = 0;
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: Range<usize> = 2..4;
    pub const VNI: Range<usize> = 4..7;
    pub const RESERVED: usize = 7;
    pub const OPTIONS: RangeFrom<usize> = 8..;
}

/// Length of the base header.
pub const HEADER_LEN: usize = field::OPTIONS.start;
/// Longest options field: 63 four-byte multiples (§3.4 "Opt Len").
pub const MAX_OPTIONS_LEN: usize = 63 * 4;
/// IANA-assigned UDP destination port (§3.3).
pub const UDP_PORT: u16 = 6081;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
/// The only version defined (§3.4 "Ver").
pub const VERSION: u8 = 0;
/// O bit: control packet (§3.4).
pub const FLAG_OAM: u8 = 0x80;
/// C bit: critical options present (§3.4).
pub const FLAG_CRITICAL: u8 = 0x40;
/// Length of an option's own header: class, type, flags and length (§3.5).
pub const OPTION_HEADER_LEN: usize = 4;
/// Longest option data: 31 four-byte multiples (§3.5 "Length").
pub const MAX_OPTION_DATA_LEN: usize = 31 * 4;
/// The high bit of an option type marks it critical (§3.5 "Type").
pub const OPTION_TYPE_CRITICAL: u8 = 0x80;

/// OVN's option class (registered to Open Virtual Networking).
pub const OVN_OPTION_CLASS: u16 = 0x0102;
/// OVN's option type: critical bit set, type 0.
pub const OVN_OPTION_TYPE: u8 = 0x80;
/// Length of OVN's option data in bytes.
pub const OVN_OPTION_LEN: usize = 4;

/// A view of a Geneve header, its options and the frame it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer that holds the base header and the options its Opt Len announces.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if the buffer is shorter than 8 bytes plus the options length.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (2 bits).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_OPTLEN] >> 6
    }

    /// Length of the options in bytes (Opt Len × 4).
    pub fn options_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_OPTLEN] & 0x3f) * 4
    }

    /// Base header plus options: where the inner frame starts.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// O bit: an OAM/control packet, not to be forwarded as data (§3.4).
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_OAM != 0
    }

    /// C bit: at least one option is critical (§3.4).
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_CRITICAL != 0
    }

    /// Protocol type of the payload: an ethertype, 0x6558 for Ethernet (§3.4).
    pub fn protocol_type(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::PROTOCOL];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Virtual Network Identifier.
    pub fn vni(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VNI];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// The raw options.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The options, one TLV at a time.
    pub fn option_iter(&self) -> Options<'_> {
        Options::new(self.options())
    }

    /// The inner frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version and options length (bytes, a multiple of 4, at most 252).
    pub fn set_version_and_options_len(&mut self, version: u8, options_len: usize) {
        self.buffer.as_mut()[field::VER_OPTLEN] = (version << 6) | ((options_len / 4) as u8 & 0x3f);
    }

    /// Sets the O and C bits; the reserved bits are zeroed.
    pub fn set_flags(&mut self, oam: bool, critical: bool) {
        let mut flags = 0;
        if oam {
            flags |= FLAG_OAM;
        }
        if critical {
            flags |= FLAG_CRITICAL;
        }
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::PROTOCOL].copy_from_slice(&u16::from(value).to_be_bytes());
    }

    /// Sets the VNI (the low 24 bits of `value`) and zeroes the reserved octet after it.
    pub fn set_vni(&mut self, value: u32) {
        let b = self.buffer.as_mut();
        b[field::VNI].copy_from_slice(&value.to_be_bytes()[1..]);
        b[field::RESERVED] = 0;
    }

    /// Mutable raw options.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The mutable inner frame.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let packet = Packet::new_unchecked(self.buffer.as_ref());
        match Repr::parse(&packet) {
            Ok(repr) => write!(f, "{repr}"),
            Err(err) => write!(f, "Geneve ({err})"),
        }
    }
}

/// One option TLV (§3.5): Option Class, Type (high bit = critical) and data (a multiple of
/// 4 bytes, at most 124). Used both for parsed options and for [`emit_options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GeneveOption<'a> {
    /// Option Class: the namespace of `option_type`.
    pub class: u16,
    /// Type, including the critical bit.
    pub option_type: u8,
    /// Option data.
    pub data: &'a [u8],
}

impl GeneveOption<'_> {
    /// Whether the critical bit of the type is set: an endpoint that does not process this
    /// option MUST drop the packet (§3.5).
    pub const fn is_critical(&self) -> bool {
        self.option_type & OPTION_TYPE_CRITICAL != 0
    }

    /// Bytes this option takes on the wire: header plus data rounded up to 4.
    pub const fn buffer_len(&self) -> usize {
        OPTION_HEADER_LEN + self.data.len().div_ceil(4) * 4
    }

    /// Writes the option into the first [`buffer_len`](Self::buffer_len) bytes of `buf`;
    /// data that is not a multiple of 4 is padded with zeros. The R bits are zeroed.
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        buf[0..2].copy_from_slice(&self.class.to_be_bytes());
        buf[2] = self.option_type;
        buf[3] = ((len - OPTION_HEADER_LEN) / 4) as u8 & 0x1f;
        buf[4..4 + self.data.len()].copy_from_slice(self.data);
        buf[4 + self.data.len()..len].fill(0);
    }
}

impl fmt::Display for GeneveOption<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "opt(class={:#06x} type={:#04x} len={})",
            self.class,
            self.option_type,
            self.data.len()
        )
    }
}

/// Iterator over option TLVs. Yields `Err(Truncated)` once, then stops, at an option whose
/// header or data runs past the options field.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Iterates over a raw options field.
    pub fn new(options: &'a [u8]) -> Options<'a> {
        Options { rest: options }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<GeneveOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        self.rest = &[];
        if rest.len() < OPTION_HEADER_LEN {
            return Some(Err(Error::Truncated));
        }
        // §3.5 "Length": 5 bits, multiples of 4 bytes, excluding the option header.
        let end = OPTION_HEADER_LEN + usize::from(rest[3] & 0x1f) * 4;
        if end > rest.len() {
            return Some(Err(Error::Truncated));
        }
        self.rest = &rest[end..];
        Some(Ok(GeneveOption {
            class: u16::from_be_bytes([rest[0], rest[1]]),
            option_type: rest[2],
            data: &rest[OPTION_HEADER_LEN..end],
        }))
    }
}

/// Bytes [`emit_options`] writes for `options`.
pub fn options_len(options: &[GeneveOption<'_>]) -> usize {
    options.iter().map(GeneveOption::buffer_len).sum()
}

/// Writes `options` back to back at the start of `buf` (at least [`options_len`] bytes)
/// and returns the number of bytes written.
pub fn emit_options(options: &[GeneveOption<'_>], buf: &mut [u8]) -> usize {
    let mut at = 0;
    for option in options {
        option.emit(&mut buf[at..]);
        at += option.buffer_len();
    }
    at
}

/// The value of OVN's option: `0 | ingress port (15 bits) | egress port (16 bits)`, the
/// logical port keys within the datapath named by the VNI. Egress keys 32768..=65535 are
/// multicast groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OvnMetadata {
    /// Logical ingress port key, 0..=32767.
    pub ingress_port: u16,
    /// Logical egress port key (or multicast group, ≥ 32768).
    pub egress_port: u16,
}

impl OvnMetadata {
    /// The 4 bytes of option data.
    pub const fn to_bytes(self) -> [u8; OVN_OPTION_LEN] {
        let value = ((self.ingress_port as u32 & 0x7fff) << 16) | self.egress_port as u32;
        value.to_be_bytes()
    }

    /// Reads the 4 bytes of option data; `None` if `data` is not 4 bytes long.
    pub fn from_bytes(data: &[u8]) -> Option<OvnMetadata> {
        let bytes: [u8; OVN_OPTION_LEN] = data.try_into().ok()?;
        let value = u32::from_be_bytes(bytes);
        Some(OvnMetadata {
            ingress_port: ((value >> 16) & 0x7fff) as u16,
            egress_port: value as u16,
        })
    }

    /// The OVN option carrying `data` (as returned by [`to_bytes`](Self::to_bytes)).
    pub const fn option(data: &[u8; OVN_OPTION_LEN]) -> GeneveOption<'_> {
        GeneveOption {
            class: OVN_OPTION_CLASS,
            option_type: OVN_OPTION_TYPE,
            data,
        }
    }

    /// Finds OVN's option among raw options: `Ok(None)` if absent, `Err(Malformed)` if it
    /// is there with a length other than 4, `Err(Truncated)` if the options are cut short.
    pub fn find(options: &[u8]) -> Result<Option<OvnMetadata>> {
        for option in Options::new(options) {
            let option = option?;
            if option.class == OVN_OPTION_CLASS && option.option_type == OVN_OPTION_TYPE {
                return OvnMetadata::from_bytes(option.data)
                    .map(Some)
                    .ok_or(Error::Malformed);
            }
        }
        Ok(None)
    }
}

/// The semantic content of a Geneve header; options stay raw (see [`Options`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// O bit.
    pub oam: bool,
    /// C bit.
    pub critical: bool,
    /// Protocol type of the payload.
    pub protocol_type: EtherType,
    /// Virtual Network Identifier, 0..=[`MAX_VNI`].
    pub vni: u32,
    /// Raw options: a multiple of 4 bytes, at most [`MAX_OPTIONS_LEN`].
    pub options: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Reads a header: `Unrecognized` for a version other than 0 ("Packets received by a
    /// tunnel endpoint with an unknown version MUST be dropped", §3.4), `Truncated` if an
    /// option runs past the options field. Whether critical options are understood is the
    /// caller's decision (§3.5).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if packet.version() != VERSION {
            return Err(Error::Unrecognized);
        }
        let buffer: &'a [u8] = packet.buffer.as_ref();
        let options = &buffer[HEADER_LEN..packet.header_len()];
        if let Some(Err(err)) = Options::new(options).find(|o| o.is_err()) {
            return Err(err);
        }
        Ok(Repr {
            oam: packet.oam(),
            critical: packet.critical(),
            protocol_type: packet.protocol_type(),
            vni: packet.vni(),
            options,
        })
    }

    /// Bytes of header and options [`emit`](Self::emit) writes (the inner frame follows).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// OVN's metadata, if its option is present and well formed.
    pub fn ovn_metadata(&self) -> Option<OvnMetadata> {
        OvnMetadata::find(self.options).ok().flatten()
    }

    /// Writes the header and options into a buffer of at least
    /// [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version_and_options_len(VERSION, self.options.len());
        packet.set_flags(self.oam, self.critical);
        packet.set_protocol_type(self.protocol_type);
        packet.set_vni(self.vni);
        packet.options_mut().copy_from_slice(self.options);
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Geneve vni={} proto={}", self.vni, self.protocol_type)?;
        if self.oam {
            f.write_str(" oam")?;
        }
        if self.critical {
            f.write_str(" critical")?;
        }
        for option in Options::new(self.options).flatten() {
            write!(f, " {option}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // VNI 5, C bit, Ethernet payload, OVN option ingress 1 egress 2, then 2 inner bytes.
    static PACKET: [u8; 18] = [
        0x02, 0x40, 0x65, 0x58, 0x00, 0x00, 0x05, 0x00, 0x01, 0x02, 0x80, 0x01, 0x00, 0x01, 0x00,
        0x02, 0xaa, 0xbb,
    ];

    const OVN: OvnMetadata = OvnMetadata {
        ingress_port: 1,
        egress_port: 2,
    };

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(packet.version(), 0);
        assert_eq!(packet.options_len(), 8);
        assert_eq!(packet.header_len(), 16);
        assert!(!packet.oam());
        assert!(packet.critical());
        assert_eq!(
            packet.protocol_type(),
            EtherType::TransparentEthernetBridging
        );
        assert_eq!(packet.vni(), 5);
        assert_eq!(packet.payload(), &[0xaa, 0xbb]);
        let options: Vec<_> = packet.option_iter().collect::<Result<_>>().unwrap();
        assert_eq!(options.len(), 1);
        assert_eq!(options[0].class, OVN_OPTION_CLASS);
        assert_eq!(options[0].option_type, OVN_OPTION_TYPE);
        assert!(options[0].is_critical());
        assert_eq!(OvnMetadata::from_bytes(options[0].data), Some(OVN));
        assert_eq!(
            packet.to_string(),
            "Geneve vni=5 proto=TransparentEthernetBridging critical opt(class=0x0102 type=0x80 len=4)"
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0xffu8; 18];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_version_and_options_len(0, 8);
        packet.set_flags(false, true);
        packet.set_protocol_type(EtherType::TransparentEthernetBridging);
        packet.set_vni(5);
        let data = OVN.to_bytes();
        assert_eq!(
            emit_options(&[OvnMetadata::option(&data)], packet.options_mut()),
            8
        );
        packet.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(bytes, PACKET);
    }

    #[test]
    fn parse_and_emit() {
        let packet = Packet::new_checked(&PACKET[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr {
                oam: false,
                critical: true,
                protocol_type: EtherType::TransparentEthernetBridging,
                vni: 5,
                options: &PACKET[8..16]
            }
        );
        assert_eq!(repr.ovn_metadata(), Some(OVN));
        let mut bytes = [0xffu8; 18];
        bytes[16..].copy_from_slice(&[0xaa, 0xbb]);
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET);
    }

    #[test]
    fn ovn_metadata_bits() {
        let meta = OvnMetadata {
            ingress_port: 0x7fff,
            egress_port: 0x8001,
        };
        assert_eq!(meta.to_bytes(), [0x7f, 0xff, 0x80, 0x01]);
        assert_eq!(OvnMetadata::from_bytes(&meta.to_bytes()), Some(meta));
        // The top bit is always 0 on the wire and ignored on receipt.
        assert_eq!(
            OvnMetadata {
                ingress_port: 0xffff,
                egress_port: 0
            }
            .to_bytes(),
            [0x7f, 0xff, 0, 0]
        );
        assert_eq!(OvnMetadata::from_bytes(&[1, 2, 3]), None);
        // Wrong length for OVN's option.
        let opt = GeneveOption {
            class: OVN_OPTION_CLASS,
            option_type: OVN_OPTION_TYPE,
            data: &[0; 8],
        };
        let mut buf = [0u8; 12];
        opt.emit(&mut buf);
        assert_eq!(OvnMetadata::find(&buf), Err(Error::Malformed));
        assert_eq!(OvnMetadata::find(&[]), Ok(None));
    }

    #[test]
    fn several_options_and_padding() {
        let options = [
            GeneveOption {
                class: 0xffff,
                option_type: 0x01,
                data: &[1, 2, 3],
            },
            GeneveOption {
                class: OVN_OPTION_CLASS,
                option_type: OVN_OPTION_TYPE,
                data: &[0, 1, 0, 2],
            },
        ];
        assert_eq!(options_len(&options), 16);
        let mut buf = [0xffu8; 16];
        assert_eq!(emit_options(&options, &mut buf), 16);
        assert_eq!(&buf[..8], &[0xff, 0xff, 0x01, 0x01, 1, 2, 3, 0]);
        let parsed: Vec<_> = Options::new(&buf).collect::<Result<_>>().unwrap();
        assert_eq!(parsed[0].data, &[1, 2, 3, 0]);
        assert!(!parsed[0].is_critical());
        assert_eq!(parsed[1], options[1]);
        assert_eq!(OvnMetadata::find(&buf), Ok(Some(OVN)));
    }

    #[test]
    fn rejects() {
        assert_eq!(
            Packet::new_checked(&PACKET[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET[..15]).unwrap_err(),
            Error::Truncated
        );
        let mut bytes = PACKET;
        bytes[0] = 0x42; // version 1
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
            Error::Unrecognized
        );
        let mut bytes = PACKET;
        bytes[11] = 0x02; // option data 8 bytes in a 8-byte options field
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Options::new(&[1, 2]).collect::<Vec<_>>(),
            [Err(Error::Truncated)]
        );
    }
}
