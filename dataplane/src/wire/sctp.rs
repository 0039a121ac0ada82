//! SCTP (RFC 9260), the part an ABORT needs: the common header (§3.1), a
//! chunk's type, flags and length (§3.2), an INIT's Initiate Tag (§3.3.2)
//! and the CRC32c checksum (Appendix A).

use super::read::be16;

/// Common header: ports, verification tag, checksum.
pub const HEADER_LEN: usize = 12;
/// A chunk's type, flags and length.
pub const CHUNK_HEADER_LEN: usize = 4;
/// An INIT chunk's fixed fields (Initiate Tag, a_rwnd, streams, initial
/// TSN) after its chunk header.
pub const INIT_FIXED_LEN: usize = 16;

/// §3.2: chunk types an ABORT's sender looks at.
pub const CHUNK_INIT: u8 = 1;
pub const CHUNK_ABORT: u8 = 6;
/// §3.3.7: the ABORT's T bit, set when the verification tag is the
/// receiver's own reflected back.
pub const ABORT_FLAG_T: u8 = 1;

/// A view of an SCTP packet of at least [`HEADER_LEN`] +
/// [`CHUNK_HEADER_LEN`] bytes (the caller checks).
pub struct Packet<T: AsRef<[u8]>>(pub T);

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn src_port(&self) -> u16 {
        be16(self.0.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.0.as_ref(), 2)
    }

    pub fn verification_tag(&self) -> u32 {
        be32(self.0.as_ref(), 4)
    }

    /// The first chunk's type.
    pub fn chunk_type(&self) -> u8 {
        self.0.as_ref()[HEADER_LEN]
    }

    /// An INIT chunk's Initiate Tag (the caller checks the chunk is whole).
    pub fn initiate_tag(&self) -> u32 {
        be32(self.0.as_ref(), HEADER_LEN + CHUNK_HEADER_LEN)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the common header with a zero checksum.
    pub fn set_header(&mut self, src: u16, dst: u16, vtag: u32) {
        let b = self.0.as_mut();
        b[0..2].copy_from_slice(&src.to_be_bytes());
        b[2..4].copy_from_slice(&dst.to_be_bytes());
        b[4..8].copy_from_slice(&vtag.to_be_bytes());
        b[8..12].fill(0);
    }

    /// Writes the first chunk's header.
    pub fn set_chunk(&mut self, kind: u8, flags: u8, len: u16) {
        let b = &mut self.0.as_mut()[HEADER_LEN..];
        b[0] = kind;
        b[1] = flags;
        b[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appendix A: the CRC32c of the whole packet with the checksum field
    /// zero, in the byte order of the reference code (least significant
    /// byte first).
    pub fn fill_checksum(&mut self) {
        let b = self.0.as_mut();
        b[8..12].fill(0);
        let crc = crc32c(b);
        b[8..12].copy_from_slice(&crc.to_le_bytes());
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The reflected Castagnoli polynomial (RFC 9260 Appendix A).
const POLY: u32 = 0x82f6_3b78;

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC32c of `data` (RFC 9260 Appendix A; RFC 3720 B.4's test vectors).
pub fn crc32c(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_vectors() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        // RFC 3720 B.4: 32 bytes of zeros, of 0xff.
        assert_eq!(crc32c(&[0; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xff; 32]), 0x62a8_ab43);
    }
}
