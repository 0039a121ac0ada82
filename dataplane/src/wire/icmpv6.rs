//! ICMPv6 (RFC 4443) and the Neighbor Discovery messages the switch answers (RFC 4861).
//!
//! [`Packet`] views any ICMPv6 message; its checksum covers the IPv6 pseudo header
//! (RFC 4443 §2.3), so [`Packet::verify_checksum`] and [`Packet::fill_checksum`] take the
//! addresses, and [`Repr::emit`] leaves the checksum to `fill_checksum`. [`Repr`] covers
//! echo, destination unreachable, packet too big, time exceeded and, through
//! [`NdiscRepr`], Neighbor Solicitation / Advertisement with their link-layer options —
//! what the ND responder reads from a VM and writes back.

use core::fmt;
use std::net::Ipv6Addr;

use super::ipv6::read_addr;
use super::{checksum, Error, IpProtocol, MacAddr, Result};

enum_with_unknown! {
    /// ICMPv6 message types (RFC 4443 §2.1, RFC 4861 §4).
    pub enum Message(u8) {
        /// Destination Unreachable (RFC 4443 §3.1).
        DstUnreachable = 1,
        /// Packet Too Big (RFC 4443 §3.2).
        PktTooBig = 2,
        /// Time Exceeded (RFC 4443 §3.3).
        TimeExceeded = 3,
        /// Parameter Problem (RFC 4443 §3.4).
        ParamProblem = 4,
        /// Echo Request (RFC 4443 §4.1).
        EchoRequest = 128,
        /// Echo Reply (RFC 4443 §4.2).
        EchoReply = 129,
        /// Router Solicitation (RFC 4861 §4.1).
        RouterSolicit = 133,
        /// Router Advertisement (RFC 4861 §4.2).
        RouterAdvert = 134,
        /// Neighbor Solicitation (RFC 4861 §4.3).
        NeighborSolicit = 135,
        /// Neighbor Advertisement (RFC 4861 §4.4).
        NeighborAdvert = 136,
        /// Redirect (RFC 4861 §4.5).
        Redirect = 137,
    }
}

enum_with_unknown! {
    /// Destination Unreachable codes (RFC 4443 §3.1).
    pub enum DstUnreachable(u8) {
        /// No route to destination.
        NoRoute = 0,
        /// Communication administratively prohibited.
        AdminProhibit = 1,
        /// Beyond scope of source address.
        BeyondScope = 2,
        /// Address unreachable.
        AddrUnreachable = 3,
        /// Port unreachable.
        PortUnreachable = 4,
        /// Source address failed ingress/egress policy.
        FailedPolicy = 5,
        /// Reject route to destination.
        RejectRoute = 6,
    }
}

enum_with_unknown! {
    /// Time Exceeded codes (RFC 4443 §3.3).
    pub enum TimeExceeded(u8) {
        /// Hop limit exceeded in transit.
        HopLimitExceeded = 0,
        /// Fragment reassembly time exceeded.
        FragReassemblyExceeded = 1,
    }
}

enum_with_unknown! {
    /// Neighbor Discovery option types (RFC 4861 §4.6).
    pub enum NdiscOptionType(u8) {
        /// Source Link-Layer Address (§4.6.1).
        SourceLinkLayerAddr = 1,
        /// Target Link-Layer Address (§4.6.1).
        TargetLinkLayerAddr = 2,
        /// Prefix Information (§4.6.2).
        PrefixInformation = 3,
        /// Redirected Header (§4.6.3).
        RedirectedHeader = 4,
        /// MTU (§4.6.4).
        Mtu = 5,
    }
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    // Echo (RFC 4443 §4.1, §4.2).
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    // Packet Too Big (RFC 4443 §3.2).
    pub const MTU: Range<usize> = 4..8;
    // Error messages and echo: what follows the first 8 octets.
    pub const DATA: RangeFrom<usize> = 8..;
    // Neighbor Solicitation / Advertisement (RFC 4861 §4.3, §4.4).
    pub const NA_FLAGS: usize = 4;
    pub const RESERVED: Range<usize> = 4..8;
    pub const TARGET: Range<usize> = 8..24;
    pub const NDISC_OPTIONS: RangeFrom<usize> = 24..;
}

/// Length of the fixed part every ICMPv6 message has.
pub const HEADER_LEN: usize = field::DATA.start;
/// Length of the fixed part of a Neighbor Solicitation or Advertisement.
pub const NDISC_HEADER_LEN: usize = field::NDISC_OPTIONS.start;
/// Length of a link-layer address option for Ethernet (RFC 4861 §4.6.1, RFC 2464 §6).
pub const LLADDR_OPTION_LEN: usize = 8;

/// The R, S and O flags of a Neighbor Advertisement (RFC 4861 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags(pub u8);

impl NeighborFlags {
    /// R: the sender is a router.
    pub const ROUTER: NeighborFlags = NeighborFlags(0x80);
    /// S: sent in response to a Neighbor Solicitation.
    pub const SOLICITED: NeighborFlags = NeighborFlags(0x40);
    /// O: override an existing cache entry.
    pub const OVERRIDE: NeighborFlags = NeighborFlags(0x20);

    /// Only the three defined bits of `bits`.
    pub const fn from_bits_truncate(bits: u8) -> NeighborFlags {
        NeighborFlags(bits & 0xe0)
    }

    /// Whether all flags of `other` are set.
    pub const fn contains(self, other: NeighborFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// R flag.
    pub const fn is_router(self) -> bool {
        self.contains(Self::ROUTER)
    }

    /// S flag.
    pub const fn is_solicited(self) -> bool {
        self.contains(Self::SOLICITED)
    }

    /// O flag.
    pub const fn is_override(self) -> bool {
        self.contains(Self::OVERRIDE)
    }
}

impl core::ops::BitOr for NeighborFlags {
    type Output = NeighborFlags;
    fn bitor(self, rhs: NeighborFlags) -> NeighborFlags {
        NeighborFlags(self.0 | rhs.0)
    }
}

impl fmt::Display for NeighborFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (flag, name) in [
            (Self::ROUTER, "R"),
            (Self::SOLICITED, "S"),
            (Self::OVERRIDE, "O"),
        ] {
            f.write_str(if self.contains(flag) { name } else { "-" })?;
        }
        Ok(())
    }
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer that holds the fixed part of its message type: 8 bytes, or 24 for
    /// Neighbor Solicitation and Advertisement.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if the buffer is shorter than the fixed part of its message type.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || (self.is_ndisc() && len < NDISC_HEADER_LEN) {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn is_ndisc(&self) -> bool {
        matches!(
            self.msg_type(),
            Message::NeighborSolicit | Message::NeighborAdvert
        )
    }

    /// Message type.
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Echo identifier (echo messages).
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT)
    }

    /// Echo sequence number (echo messages).
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO)
    }

    /// MTU (Packet Too Big).
    pub fn pkt_too_big_mtu(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::MTU];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Everything after the first 8 octets: echo data or the invoking packet.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// The R/S/O flags (Neighbor Advertisement).
    pub fn neighbor_flags(&self) -> NeighborFlags {
        NeighborFlags::from_bits_truncate(self.buffer.as_ref()[field::NA_FLAGS])
    }

    /// Target Address (Neighbor Solicitation / Advertisement).
    ///
    /// # Panics
    /// On a message shorter than 24 bytes; `new_checked` rules that out for NS and NA.
    pub fn target_addr(&self) -> Ipv6Addr {
        read_addr(&self.buffer.as_ref()[field::TARGET])
    }

    /// The option bytes after the Target Address (Neighbor Solicitation / Advertisement).
    ///
    /// # Panics
    /// On a message shorter than 24 bytes; `new_checked` rules that out for NS and NA.
    pub fn ndisc_options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::NDISC_OPTIONS]
    }

    /// Whether the checksum verifies over the IPv6 pseudo header and the whole message
    /// (RFC 4443 §2.3).
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let data = self.buffer.as_ref();
        checksum::combine(&[
            checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, data.len() as u32),
            checksum::data(data),
        ]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_SEQNO, value);
    }

    /// Sets the MTU of a Packet Too Big message.
    pub fn set_pkt_too_big_mtu(&mut self, value: u32) {
        self.buffer.as_mut()[field::MTU].copy_from_slice(&value.to_be_bytes());
    }

    /// Zeroes the four octets after the checksum (reserved or unused in most messages).
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED].fill(0);
    }

    /// Sets the R/S/O flags of a Neighbor Advertisement (the other reserved bits are zeroed).
    pub fn set_neighbor_flags(&mut self, value: NeighborFlags) {
        self.buffer.as_mut()[field::NA_FLAGS] = value.0 & 0xe0;
    }

    /// Sets the Target Address of a Neighbor Solicitation / Advertisement.
    pub fn set_target_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&value.octets());
    }

    /// Mutable bytes after the first 8 octets.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Mutable option bytes of a Neighbor Solicitation / Advertisement.
    pub fn ndisc_options_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::NDISC_OPTIONS]
    }

    /// Computes and writes the checksum over the pseudo header and the whole buffer, which
    /// must be exactly the ICMPv6 message (RFC 4443 §2.3).
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let sum = checksum::combine(&[
            checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, data.len() as u32),
            checksum::data(data),
        ]);
        self.set_checksum(!sum);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let packet = Packet::new_unchecked(self.buffer.as_ref());
        match Repr::parse(&packet) {
            Ok(repr) => write!(f, "{repr}"),
            Err(err) => write!(f, "ICMPv6 ({err})"),
        }
    }
}

/// One Neighbor Discovery option: its type and the bytes after the type and length octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdiscOption<'a> {
    /// Option type.
    pub kind: NdiscOptionType,
    /// Option data (length × 8 − 2 bytes).
    pub data: &'a [u8],
}

/// Iterator over Neighbor Discovery options. Yields `Err(Malformed)` once, then stops, at an
/// option of length zero ("Nodes MUST silently discard an ND packet that contains an option
/// with length zero", RFC 4861 §4.6) and `Err(Truncated)` at one that runs past the buffer.
#[derive(Debug, Clone)]
pub struct NdiscOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdiscOptions<'a> {
    /// Iterates over `options`, the bytes after an ND message's fixed part.
    pub fn new(options: &'a [u8]) -> NdiscOptions<'a> {
        NdiscOptions { rest: options }
    }
}

impl<'a> Iterator for NdiscOptions<'a> {
    type Item = Result<NdiscOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        self.rest = &[];
        let Some(&units) = rest.get(1) else {
            return Some(Err(Error::Truncated));
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            return Some(Err(Error::Malformed));
        }
        if len > rest.len() {
            return Some(Err(Error::Truncated));
        }
        self.rest = &rest[len..];
        Some(Ok(NdiscOption {
            kind: NdiscOptionType::from(rest[0]),
            data: &rest[2..len],
        }))
    }
}

/// Writes an Ethernet link-layer address option (RFC 4861 §4.6.1) into the first 8 bytes of
/// `buf`.
fn emit_lladdr_option(buf: &mut [u8], kind: NdiscOptionType, addr: MacAddr) {
    buf[0] = kind.into();
    buf[1] = (LLADDR_OPTION_LEN / 8) as u8;
    buf[2..8].copy_from_slice(&addr.0);
}

/// The semantic content of a Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdiscRepr {
    /// Neighbor Solicitation (RFC 4861 §4.3).
    NeighborSolicit {
        /// The address whose link-layer address is sought.
        target_addr: Ipv6Addr,
        /// The Source Link-Layer Address option, if present.
        lladdr: Option<MacAddr>,
    },
    /// Neighbor Advertisement (RFC 4861 §4.4).
    NeighborAdvert {
        /// R, S and O flags.
        flags: NeighborFlags,
        /// The address whose link-layer address is advertised.
        target_addr: Ipv6Addr,
        /// The Target Link-Layer Address option, if present.
        lladdr: Option<MacAddr>,
    },
}

impl NdiscRepr {
    /// Reads an NS or NA, checking what RFC 4861 §7.1.1 / §7.1.2 let the message alone
    /// decide: code 0, a target that is not multicast, options of nonzero length. A
    /// link-layer option of the wrong kind is ignored, as is any unknown option (§4.6); one
    /// whose length is not 8 (Ethernet) is `Malformed`. Hop limit 255 and the address
    /// checks belong to the caller, who has the IPv6 header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<NdiscRepr> {
        packet.check_len()?;
        let wanted = match packet.msg_type() {
            Message::NeighborSolicit => NdiscOptionType::SourceLinkLayerAddr,
            Message::NeighborAdvert => NdiscOptionType::TargetLinkLayerAddr,
            _ => return Err(Error::Unrecognized),
        };
        if packet.msg_code() != 0 || packet.target_addr().is_multicast() {
            return Err(Error::Malformed);
        }
        let mut lladdr = None;
        for option in NdiscOptions::new(packet.ndisc_options()) {
            let option = option?;
            if option.kind == wanted {
                if option.data.len() != LLADDR_OPTION_LEN - 2 {
                    return Err(Error::Malformed);
                }
                lladdr = Some(MacAddr::from_bytes(option.data));
            }
        }
        let target_addr = packet.target_addr();
        Ok(match packet.msg_type() {
            Message::NeighborSolicit => NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            },
            _ => NdiscRepr::NeighborAdvert {
                flags: packet.neighbor_flags(),
                target_addr,
                lladdr,
            },
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        let lladdr = match self {
            NdiscRepr::NeighborSolicit { lladdr, .. }
            | NdiscRepr::NeighborAdvert { lladdr, .. } => lladdr,
        };
        NDISC_HEADER_LEN
            + if lladdr.is_some() {
                LLADDR_OPTION_LEN
            } else {
                0
            }
    }

    /// Writes the message (checksum zero: call [`Packet::fill_checksum`] afterwards) into a
    /// buffer of at least [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_msg_code(0);
        packet.set_checksum(0);
        packet.clear_reserved();
        let (target_addr, option) = match *self {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => {
                packet.set_msg_type(Message::NeighborSolicit);
                (
                    target_addr,
                    lladdr.map(|a| (NdiscOptionType::SourceLinkLayerAddr, a)),
                )
            }
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => {
                packet.set_msg_type(Message::NeighborAdvert);
                packet.set_neighbor_flags(flags);
                (
                    target_addr,
                    lladdr.map(|a| (NdiscOptionType::TargetLinkLayerAddr, a)),
                )
            }
        };
        packet.set_target_addr(target_addr);
        if let Some((kind, addr)) = option {
            emit_lladdr_option(packet.ndisc_options_mut(), kind, addr);
        }
    }
}

impl fmt::Display for NdiscRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lladdr = match self {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => {
                write!(f, "NS target={target_addr}")?;
                lladdr
            }
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => {
                write!(f, "NA flags={flags} target={target_addr}")?;
                lladdr
            }
        };
        if let Some(addr) = lladdr {
            write!(f, " lladdr={addr}")?;
        }
        Ok(())
    }
}

/// The semantic content of an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repr<'a> {
    /// Destination Unreachable with the invoking packet (RFC 4443 §3.1).
    DstUnreachable {
        /// Why.
        reason: DstUnreachable,
        /// As much of the invoking packet as fits.
        data: &'a [u8],
    },
    /// Packet Too Big (RFC 4443 §3.2).
    PktTooBig {
        /// The MTU of the next-hop link.
        mtu: u32,
        /// As much of the invoking packet as fits.
        data: &'a [u8],
    },
    /// Time Exceeded (RFC 4443 §3.3).
    TimeExceeded {
        /// Why.
        reason: TimeExceeded,
        /// As much of the invoking packet as fits.
        data: &'a [u8],
    },
    /// Echo Request (RFC 4443 §4.1).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo Reply (RFC 4443 §4.2).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Neighbor Solicitation or Advertisement (RFC 4861).
    Ndisc(NdiscRepr),
}

impl<'a> Repr<'a> {
    /// Reads a message of one of the represented types (`Unrecognized` for the others,
    /// `Malformed` for an echo with a nonzero code). Does not verify the checksum, which
    /// needs the IPv6 addresses: see [`Packet::verify_checksum`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let data = &packet.buffer.as_ref()[field::DATA];
        let code = packet.msg_code();
        match packet.msg_type() {
            Message::DstUnreachable => Ok(Repr::DstUnreachable {
                reason: DstUnreachable::from(code),
                data,
            }),
            Message::PktTooBig if code == 0 => Ok(Repr::PktTooBig {
                mtu: packet.pkt_too_big_mtu(),
                data,
            }),
            Message::TimeExceeded => Ok(Repr::TimeExceeded {
                reason: TimeExceeded::from(code),
                data,
            }),
            Message::EchoRequest if code == 0 => Ok(Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Message::EchoReply if code == 0 => Ok(Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Message::PktTooBig | Message::EchoRequest | Message::EchoReply => Err(Error::Malformed),
            Message::NeighborSolicit | Message::NeighborAdvert => {
                NdiscRepr::parse(packet).map(Repr::Ndisc)
            }
            _ => Err(Error::Unrecognized),
        }
    }

    /// Bytes [`emit`](Self::emit) writes: the whole message.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Repr::DstUnreachable { data, .. }
            | Repr::PktTooBig { data, .. }
            | Repr::TimeExceeded { data, .. }
            | Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. } => HEADER_LEN + data.len(),
            Repr::Ndisc(ndisc) => ndisc.buffer_len(),
        }
    }

    /// Writes the message with a zero checksum into a buffer of exactly
    /// [`buffer_len`](Self::buffer_len) bytes; then call [`Packet::fill_checksum`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let (msg, code, data) = match *self {
            Repr::Ndisc(ndisc) => return ndisc.emit(packet),
            Repr::DstUnreachable { reason, data } => (Message::DstUnreachable, reason.into(), data),
            Repr::PktTooBig { data, .. } => (Message::PktTooBig, 0, data),
            Repr::TimeExceeded { reason, data } => (Message::TimeExceeded, reason.into(), data),
            Repr::EchoRequest { data, .. } => (Message::EchoRequest, 0, data),
            Repr::EchoReply { data, .. } => (Message::EchoReply, 0, data),
        };
        packet.set_msg_type(msg);
        packet.set_msg_code(code);
        packet.set_checksum(0);
        packet.clear_reserved();
        match *self {
            Repr::PktTooBig { mtu, .. } => packet.set_pkt_too_big_mtu(mtu),
            Repr::EchoRequest { ident, seq_no, .. } | Repr::EchoReply { ident, seq_no, .. } => {
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
            }
            _ => {}
        }
        packet.payload_mut()[..data.len()].copy_from_slice(data);
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repr::DstUnreachable { reason, data } => {
                write!(
                    f,
                    "ICMPv6 destination unreachable ({reason}) len={}",
                    data.len()
                )
            }
            Repr::PktTooBig { mtu, data } => {
                write!(f, "ICMPv6 packet too big mtu={mtu} len={}", data.len())
            }
            Repr::TimeExceeded { reason, data } => {
                write!(f, "ICMPv6 time exceeded ({reason}) len={}", data.len())
            }
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                write!(
                    f,
                    "ICMPv6 echo request id={ident} seq={seq_no} len={}",
                    data.len()
                )
            }
            Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                write!(
                    f,
                    "ICMPv6 echo reply id={ident} seq={seq_no} len={}",
                    data.len()
                )
            }
            Repr::Ndisc(ndisc) => write!(f, "ICMPv6 {ndisc}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Ipv6Addr {
        "fe80::1".parse().unwrap()
    }

    fn dst() -> Ipv6Addr {
        "ff02::1:ff00:2".parse().unwrap()
    }

    // NS for fe80::2 from fe80::1 (to the solicited-node address), SLLA 02:00:00:00:00:01.
    static NS: [u8; 32] = [
        0x87, 0x00, 0x7a, 0x97, 0, 0, 0, 0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
        0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];

    // Echo request id 0x1234 seq 1 data "hi".
    static ECHO: [u8; 10] = [0x80, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, b'h', b'i'];

    fn ns_repr() -> NdiscRepr {
        NdiscRepr::NeighborSolicit {
            target_addr: "fe80::2".parse().unwrap(),
            lladdr: Some(MacAddr([0x02, 0, 0, 0, 0, 1])),
        }
    }

    #[test]
    fn deconstruct_ns() {
        let packet = Packet::new_checked(&NS[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::NeighborSolicit);
        assert_eq!(packet.msg_code(), 0);
        assert!(packet.verify_checksum(&src(), &dst()));
        assert_eq!(packet.target_addr(), "fe80::2".parse::<Ipv6Addr>().unwrap());
        let options: Vec<_> = NdiscOptions::new(packet.ndisc_options())
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(
            options,
            [NdiscOption {
                kind: NdiscOptionType::SourceLinkLayerAddr,
                data: &[2, 0, 0, 0, 0, 1]
            }]
        );
        assert_eq!(
            packet.to_string(),
            "ICMPv6 NS target=fe80::2 lladdr=02:00:00:00:00:01"
        );
    }

    #[test]
    fn construct_ns() {
        let mut bytes = [0xa5u8; 32];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Message::NeighborSolicit);
        packet.set_msg_code(0);
        packet.clear_reserved();
        packet.set_target_addr("fe80::2".parse().unwrap());
        packet
            .ndisc_options_mut()
            .copy_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
        packet.fill_checksum(&src(), &dst());
        assert_eq!(bytes, NS);
    }

    #[test]
    fn parse_and_emit_ns() {
        let packet = Packet::new_checked(&NS[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), Repr::Ndisc(ns_repr()));
        let mut bytes = [0xa5u8; 32];
        assert_eq!(Repr::Ndisc(ns_repr()).buffer_len(), 32);
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        Repr::Ndisc(ns_repr()).emit(&mut packet);
        packet.fill_checksum(&src(), &dst());
        assert_eq!(bytes, NS);
    }

    #[test]
    fn neighbor_advert_round_trip() {
        let flags = NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE;
        let repr = NdiscRepr::NeighborAdvert {
            flags,
            target_addr: "fe80::2".parse().unwrap(),
            lladdr: Some(MacAddr([0x02, 0, 0, 0, 0, 2])),
        };
        let mut bytes = vec![0xa5u8; repr.buffer_len()];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        packet.fill_checksum(&"fe80::2".parse().unwrap(), &src());
        assert_eq!(&bytes[..8], &[0x88, 0, bytes[2], bytes[3], 0x60, 0, 0, 0]);
        assert_eq!(&bytes[24..], &[2, 1, 2, 0, 0, 0, 0, 2]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum(&"fe80::2".parse().unwrap(), &src()));
        assert!(packet.neighbor_flags().is_solicited() && packet.neighbor_flags().is_override());
        assert!(!packet.neighbor_flags().is_router());
        assert_eq!(NdiscRepr::parse(&packet).unwrap(), repr);
        assert_eq!(
            packet.to_string(),
            "ICMPv6 NA flags=-SO target=fe80::2 lladdr=02:00:00:00:00:02"
        );
    }

    #[test]
    fn ndisc_rejects() {
        assert_eq!(
            Packet::new_checked(&NS[..23]).unwrap_err(),
            Error::Truncated
        );
        let mut bytes = NS;
        bytes[25] = 0; // option length zero
        assert_eq!(
            NdiscRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
            Error::Malformed
        );
        let mut bytes = NS;
        bytes[25] = 2; // option runs past the message
        assert_eq!(
            NdiscRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
            Error::Truncated
        );
        let mut bytes = NS;
        bytes[8] = 0xff; // multicast target
        assert_eq!(
            NdiscRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
            Error::Malformed
        );
        let mut bytes = NS;
        bytes[24] = 14; // unknown option: ignored
        assert_eq!(
            NdiscRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            NdiscRepr::NeighborSolicit {
                target_addr: "fe80::2".parse().unwrap(),
                lladdr: None
            }
        );
        let packet = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(NdiscRepr::parse(&packet).unwrap_err(), Error::Unrecognized);
    }

    #[test]
    fn echo() {
        let packet = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::EchoRequest);
        assert_eq!(packet.echo_ident(), 0x1234);
        assert_eq!(packet.echo_seq_no(), 1);
        assert_eq!(packet.payload(), b"hi");
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"hi"
            }
        );
        assert_eq!(repr.to_string(), "ICMPv6 echo request id=4660 seq=1 len=2");
        let mut bytes = [0xffu8; 10];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, ECHO);
        assert_eq!(
            Packet::new_checked(&ECHO[..7]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn errors_round_trip() {
        let invoking = [0x60u8, 0, 0, 0, 0, 0, 17, 64];
        for repr in [
            Repr::PktTooBig {
                mtu: 1280,
                data: &invoking,
            },
            Repr::DstUnreachable {
                reason: DstUnreachable::PortUnreachable,
                data: &invoking,
            },
            Repr::TimeExceeded {
                reason: TimeExceeded::HopLimitExceeded,
                data: &invoking,
            },
        ] {
            let mut bytes = vec![0u8; repr.buffer_len()];
            let mut packet = Packet::new_unchecked(&mut bytes[..]);
            repr.emit(&mut packet);
            packet.fill_checksum(&src(), &dst());
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert!(packet.verify_checksum(&src(), &dst()));
            assert_eq!(Repr::parse(&packet).unwrap(), repr);
        }
        let mut bytes = [0u8; 16];
        bytes[0] = 2;
        bytes[4..8].copy_from_slice(&1500u32.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap().pkt_too_big_mtu(),
            1500
        );
    }
}
