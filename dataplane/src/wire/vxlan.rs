//! VXLAN headers (RFC 7348 §5), the overlay encoding OVN uses in VXLAN mode.
//!
//! An 8-byte header after UDP (destination port [`UDP_PORT`]): flags with the I bit, 24
//! reserved bits, the 24-bit VXLAN Network Identifier and 8 reserved bits; the inner
//! Ethernet frame follows. OVN carries the logical datapath key in the VNI (at most 4095 in
//! VXLAN mode). Encapsulation writes this header into packet headroom with [`Repr::emit`].

use core::fmt;

use super::{Error, Result};

mod field {
    use core::ops::{Range, RangeFrom};
    pub const FLAGS: usize = 0;
    pub const RESERVED1: Range<usize> = 1..4;
    pub const VNI: Range<usize> = 4..7;
    pub const RESERVED2: usize = 7;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// IANA-assigned UDP destination port (RFC 7348 §5 "Destination Port").
pub const UDP_PORT: u16 = 4789;
/// The I flag: the VNI is valid (RFC 7348 §5).
pub const FLAG_I: u8 = 0x08;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

/// A view of a VXLAN header and the frame it carries.
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

    /// The flags octet (`RRRRIRRR`).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Whether the I flag is set.
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The VXLAN Network Identifier.
    pub fn vni(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VNI];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the flags octet.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the VNI (the low 24 bits of `value`).
    pub fn set_vni(&mut self, value: u32) {
        self.buffer.as_mut()[field::VNI].copy_from_slice(&value.to_be_bytes()[1..]);
    }

    /// Zeroes both reserved fields ("MUST be set to zero on transmission", RFC 7348 §5).
    pub fn clear_reserved(&mut self) {
        let b = self.buffer.as_mut();
        b[field::RESERVED1].fill(0);
        b[field::RESERVED2] = 0;
    }

    /// The mutable inner frame.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let packet = Packet::new_unchecked(self.buffer.as_ref());
        match Repr::parse(&packet) {
            Ok(repr) => write!(f, "{repr}"),
            Err(err) => write!(f, "VXLAN ({err})"),
        }
    }
}

/// The semantic content of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// VXLAN Network Identifier, 0..=[`MAX_VNI`].
    pub vni: u32,
}

impl Repr {
    /// Reads the header: `Malformed` unless the I flag is set ("The I flag MUST be set to 1
    /// for a valid VXLAN Network ID", RFC 7348 §5). Reserved bits are ignored on receipt.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.vni_valid() {
            return Err(Error::Malformed);
        }
        Ok(Repr { vni: packet.vni() })
    }

    /// Bytes of header [`emit`](Self::emit) writes (the inner frame follows).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header: I flag set, reserved fields zero.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_flags(FLAG_I);
        packet.clear_reserved();
        packet.set_vni(self.vni);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VXLAN vni={}", self.vni)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PACKET: [u8; 10] = [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0, 0xaa, 0xbb];

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(packet.flags(), 0x08);
        assert!(packet.vni_valid());
        assert_eq!(packet.vni(), 0x123456);
        assert_eq!(packet.payload(), &[0xaa, 0xbb]);
        assert_eq!(packet.to_string(), "VXLAN vni=1193046");
    }

    #[test]
    fn construct() {
        let mut bytes = [0xffu8; 10];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_flags(FLAG_I);
        packet.clear_reserved();
        packet.set_vni(0x123456);
        packet.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(bytes, PACKET);
    }

    #[test]
    fn parse_and_emit() {
        let repr = Repr::parse(&Packet::new_checked(&PACKET[..]).unwrap()).unwrap();
        assert_eq!(repr, Repr { vni: 0x123456 });
        let mut bytes = [0xffu8; 10];
        bytes[8..].copy_from_slice(&[0xaa, 0xbb]);
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET);
    }

    #[test]
    fn rejects() {
        assert_eq!(
            Packet::new_checked(&PACKET[..7]).unwrap_err(),
            Error::Truncated
        );
        let mut bytes = PACKET;
        bytes[0] = 0;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
            Error::Malformed
        );
        // Reserved bits set on receipt are ignored.
        bytes[0] = 0xff;
        bytes[7] = 0xff;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            Repr { vni: 0x123456 }
        );
    }
}
