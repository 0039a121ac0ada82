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

mod ndisc;
pub use ndisc::{NdiscOption, NdiscOptions, NdiscRepr, NeighborFlags};

#[cfg(test)]
mod tests;
