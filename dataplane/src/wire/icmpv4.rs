//! ICMP for IPv4 (RFC 792), with the Next-Hop MTU of RFC 1191 §4.
//!
//! The checksum covers the ICMP message only (no pseudo header), so [`Repr::parse`]
//! verifies it and [`Repr::emit`] fills it. [`Repr`] covers what the switch answers or
//! generates: echo request/reply, destination unreachable (including "fragmentation
//! needed and DF set" with the next-hop MTU, for path MTU discovery across tunnels) and
//! time exceeded. Other message types are viewable through [`Packet`].

use core::fmt;

use super::{checksum, Error, Result};

enum_with_unknown! {
    /// ICMP message types (RFC 792).
    pub enum Message(u8) {
        /// Echo Reply.
        EchoReply = 0,
        /// Destination Unreachable.
        DstUnreachable = 3,
        /// Redirect.
        Redirect = 5,
        /// Echo.
        EchoRequest = 8,
        /// Router Advertisement (RFC 1256).
        RouterAdvert = 9,
        /// Router Solicitation (RFC 1256).
        RouterSolicit = 10,
        /// Time Exceeded.
        TimeExceeded = 11,
        /// Parameter Problem.
        ParamProblem = 12,
        /// Timestamp.
        Timestamp = 13,
        /// Timestamp Reply.
        TimestampReply = 14,
    }
}

enum_with_unknown! {
    /// Destination Unreachable codes (RFC 792; 5..=15 from RFC 1122 §3.2.2.1 and RFC 1812
    /// §5.2.7.1).
    pub enum DstUnreachable(u8) {
        /// Net unreachable.
        NetUnreachable = 0,
        /// Host unreachable.
        HostUnreachable = 1,
        /// Protocol unreachable.
        ProtoUnreachable = 2,
        /// Port unreachable.
        PortUnreachable = 3,
        /// Fragmentation needed and DF set (carries the next-hop MTU, RFC 1191 §4).
        FragRequired = 4,
        /// Source route failed.
        SrcRouteFailed = 5,
        /// Destination network unknown.
        DstNetUnknown = 6,
        /// Destination host unknown.
        DstHostUnknown = 7,
        /// Source host isolated.
        SrcHostIsolated = 8,
        /// Network administratively prohibited.
        NetProhibited = 9,
        /// Host administratively prohibited.
        HostProhibited = 10,
        /// Network unreachable for TOS.
        NetUnreachToS = 11,
        /// Host unreachable for TOS.
        HostUnreachToS = 12,
        /// Communication administratively prohibited.
        CommProhibited = 13,
        /// Host precedence violation.
        HostPrecedViol = 14,
        /// Precedence cutoff in effect.
        PrecedCutoff = 15,
    }
}

enum_with_unknown! {
    /// Time Exceeded codes (RFC 792).
    pub enum TimeExceeded(u8) {
        /// Time to live exceeded in transit.
        TtlExpired = 0,
        /// Fragment reassembly time exceeded.
        FragExpired = 1,
    }
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const UNUSED: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    // RFC 1191 §4: "unused" (16 bits), then Next-Hop MTU (16 bits).
    pub const MTU: Range<usize> = 6..8;
    pub const DATA: RangeFrom<usize> = 8..;
}

/// Length of the fixed part of every message handled here.
pub const HEADER_LEN: usize = field::DATA.start;

/// A view of an ICMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer of at least 8 bytes.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if the buffer is shorter than 8 bytes.
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

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
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

    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT)
    }

    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO)
    }

    /// Next-Hop MTU of a "fragmentation needed" message (RFC 1191 §4); 0 from old routers.
    pub fn next_hop_mtu(&self) -> u16 {
        self.u16_at(field::MTU)
    }

    /// Echo data, or the invoking IP header and first 64 bits of its data (RFC 792).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Whether the checksum over the whole buffer verifies (RFC 792 "Checksum").
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
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

    /// Zeroes the four octets after the checksum ("unused" in error messages).
    pub fn clear_unused(&mut self) {
        self.buffer.as_mut()[field::UNUSED].fill(0);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_SEQNO, value);
    }

    /// Sets the Next-Hop MTU.
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        self.set_u16_at(field::MTU, value);
    }

    /// Mutable data after the first 8 octets.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes and writes the checksum over the whole buffer, which must be exactly the
    /// ICMP message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let packet = Packet::new_unchecked(self.buffer.as_ref());
        match Repr::parse(&packet) {
            Ok(repr) => write!(f, "{repr}"),
            Err(err) => write!(f, "ICMP ({err})"),
        }
    }
}

/// The semantic content of an ICMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repr<'a> {
    /// Echo (RFC 792).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo Reply (RFC 792).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination Unreachable (RFC 792).
    DstUnreachable {
        /// Why.
        reason: DstUnreachable,
        /// Next-Hop MTU for [`DstUnreachable::FragRequired`] (RFC 1191 §4); otherwise
        /// the field is unused and should be 0.
        next_hop_mtu: u16,
        /// The invoking IP header and at least 64 bits of its data.
        data: &'a [u8],
    },
    /// Time Exceeded (RFC 792).
    TimeExceeded {
        /// Why.
        reason: TimeExceeded,
        /// The invoking IP header and at least 64 bits of its data.
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Reads a message: `Checksum` if the checksum fails, `Malformed` for an echo with a
    /// nonzero code, `Unrecognized` for other types.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let data = &packet.buffer.as_ref()[field::DATA];
        let code = packet.msg_code();
        match packet.msg_type() {
            Message::EchoRequest | Message::EchoReply if code != 0 => Err(Error::Malformed),
            Message::EchoRequest => Ok(Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Message::EchoReply => Ok(Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Message::DstUnreachable => Ok(Repr::DstUnreachable {
                reason: DstUnreachable::from(code),
                next_hop_mtu: packet.next_hop_mtu(),
                data,
            }),
            Message::TimeExceeded => Ok(Repr::TimeExceeded {
                reason: TimeExceeded::from(code),
                data,
            }),
            _ => Err(Error::Unrecognized),
        }
    }

    /// Bytes [`emit`](Self::emit) writes: the whole message.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. }
            | Repr::DstUnreachable { data, .. }
            | Repr::TimeExceeded { data, .. } => HEADER_LEN + data.len(),
        }
    }

    /// Writes the message and its checksum into a buffer of exactly
    /// [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.clear_unused();
        let data = match *self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                let is_request = matches!(self, Repr::EchoRequest { .. });
                packet.set_msg_type(if is_request {
                    Message::EchoRequest
                } else {
                    Message::EchoReply
                });
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                data
            }
            Repr::DstUnreachable {
                reason,
                next_hop_mtu,
                data,
            } => {
                packet.set_msg_type(Message::DstUnreachable);
                packet.set_msg_code(reason.into());
                packet.set_next_hop_mtu(next_hop_mtu);
                data
            }
            Repr::TimeExceeded { reason, data } => {
                packet.set_msg_type(Message::TimeExceeded);
                packet.set_msg_code(reason.into());
                data
            }
        };
        packet.payload_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                write!(
                    f,
                    "ICMP echo request id={ident} seq={seq_no} len={}",
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
                    "ICMP echo reply id={ident} seq={seq_no} len={}",
                    data.len()
                )
            }
            Repr::DstUnreachable {
                reason: DstUnreachable::FragRequired,
                next_hop_mtu,
                data,
            } => {
                write!(
                    f,
                    "ICMP destination unreachable (FragRequired) mtu={next_hop_mtu} len={}",
                    data.len()
                )
            }
            Repr::DstUnreachable { reason, data, .. } => {
                write!(
                    f,
                    "ICMP destination unreachable ({reason}) len={}",
                    data.len()
                )
            }
            Repr::TimeExceeded { reason, data } => {
                write!(f, "ICMP time exceeded ({reason}) len={}", data.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request id 0x1234 seq 1, data "abcd".
    static ECHO: [u8; 12] = [
        0x08, 0x00, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd',
    ];

    // Fragmentation needed, next-hop MTU 1450, 8 bytes of invoking packet.
    static FRAG_NEEDED: [u8; 16] = [
        0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x05, 0xaa, 0x45, 0x00, 0x05, 0xdc, 0x00, 0x00, 0x40,
        0x00,
    ];

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::EchoRequest);
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.checksum(), 0x2104);
        assert!(packet.verify_checksum());
        assert_eq!(packet.echo_ident(), 0x1234);
        assert_eq!(packet.echo_seq_no(), 1);
        assert_eq!(packet.payload(), b"abcd");
        assert_eq!(packet.to_string(), "ICMP echo request id=4660 seq=1 len=4");
    }

    #[test]
    fn construct() {
        let mut bytes = [0xffu8; 12];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Message::EchoRequest);
        packet.set_msg_code(0);
        packet.set_echo_ident(0x1234);
        packet.set_echo_seq_no(1);
        packet.payload_mut().copy_from_slice(b"abcd");
        packet.fill_checksum();
        assert_eq!(bytes, ECHO);
    }

    #[test]
    fn parse_and_emit() {
        let repr = Repr::parse(&Packet::new_checked(&ECHO[..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcd"
            }
        );
        let mut bytes = [0u8; 12];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, ECHO);
    }

    #[test]
    fn frag_needed() {
        let mut bytes = FRAG_NEEDED;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.next_hop_mtu(), 1450);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr::DstUnreachable {
                reason: DstUnreachable::FragRequired,
                next_hop_mtu: 1450,
                data: &FRAG_NEEDED[8..]
            }
        );
        assert_eq!(
            repr.to_string(),
            "ICMP destination unreachable (FragRequired) mtu=1450 len=8"
        );
        let mut out = [0xffu8; 16];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
    }

    #[test]
    fn time_exceeded_round_trip() {
        let repr = Repr::TimeExceeded {
            reason: TimeExceeded::TtlExpired,
            data: &FRAG_NEEDED[8..],
        };
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(&bytes[..2], &[11, 0]);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            repr
        );
    }

    #[test]
    fn rejects() {
        assert_eq!(
            Packet::new_checked(&ECHO[..7]).unwrap_err(),
            Error::Truncated
        );
        let mut bytes = ECHO;
        bytes[11] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
            Error::Checksum
        );
        let mut bytes = ECHO;
        bytes[0] = 13;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
            Error::Unrecognized
        );
        let mut bytes = ECHO;
        bytes[1] = 1;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
            Error::Malformed
        );
    }
}
