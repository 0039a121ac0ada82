//! The Internet checksum (RFC 1071) and the pseudo headers TCP, UDP and ICMPv6 include.
//!
//! [`data`] is the folded ones' complement sum of a byte string (not yet complemented);
//! [`combine`] adds partial sums; [`pseudo_header_v4`] / [`pseudo_header_v6`] give the sum
//! of the pseudo header (RFC 793 §3.1, RFC 768, RFC 8200 §8.1). [`fill_l4`] and
//! [`verify_l4`] work on a whole frame at the offsets of a [`Layout`]: the AF_PACKET port
//! uses `fill_l4` to complete the partial checksums of `TP_STATUS_CSUMNOTREADY` frames.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::layout::Layout;
use super::{Error, IpProtocol, Result};

/// Folds a wide accumulator of 16-bit (or 32-bit, big-endian) words into 16 bits with
/// end-around carry. Valid because 2^16 ≡ 1 (mod 2^16 − 1).
#[inline]
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The ones' complement sum of `data` taken as big-endian 16-bit words, folded to 16 bits
/// and not complemented (RFC 1071 §1). An odd trailing byte is padded with zero.
///
/// The words are added as they lie in memory, 16 bytes at a time into two accumulators, and
/// the folded sum is put in network order once at the end: the ones' complement sum does not
/// depend on byte order (RFC 1071 §2(B)).
pub fn data(data: &[u8]) -> u16 {
    let (mut a, mut b): (u64, u64) = (0, 0);
    let mut chunks = data.chunks_exact(16);
    for chunk in &mut chunks {
        let (x, y) = chunk.split_at(8);
        let x = u64::from_ne_bytes(x.try_into().expect("8 bytes"));
        let y = u64::from_ne_bytes(y.try_into().expect("8 bytes"));
        // Two 32-bit halves each; 2^32 ≡ 1 as well, so this preserves the sum.
        a += (x >> 32) + (x & 0xffff_ffff);
        b += (y >> 32) + (y & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for pair in &mut rest {
        a += u64::from(u16::from_ne_bytes([pair[0], pair[1]]));
    }
    if let [last] = rest.remainder() {
        // Padded with a zero byte after it, in memory order.
        b += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    u16::from_be(fold(a + b))
}

/// Adds partial sums (from [`data`] or the pseudo-header functions) into one.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo header: source, destination, zero, protocol, upper-layer length
/// (RFC 793 §3.1 "Checksum", RFC 768 "Fields").
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, proto: IpProtocol, len: u32) -> u16 {
    let mut sum = u64::from(u32::from(*src) >> 16) + u64::from(u32::from(*src) & 0xffff);
    sum += u64::from(u32::from(*dst) >> 16) + u64::from(u32::from(*dst) & 0xffff);
    sum += u64::from(u8::from(proto));
    sum += u64::from(len);
    fold(sum)
}

/// Sum of the IPv6 pseudo header: source, destination, upper-layer length, next header
/// (RFC 8200 §8.1).
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: IpProtocol, len: u32) -> u16 {
    combine(&[
        data(&src.octets()),
        data(&dst.octets()),
        fold(u64::from(len)),
        u16::from(u8::from(next_header)),
    ])
}

/// The pseudo-header sum for either IP version. The two addresses of one IP header share a
/// family; should they not, the IPv4 one is taken as IPv4-mapped IPv6.
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, proto: IpProtocol, len: u32) -> u16 {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => pseudo_header_v4(src, dst, proto, len),
        (src, dst) => pseudo_header_v6(&to_v6(src), &to_v6(dst), proto, len),
    }
}

fn to_v6(addr: &IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => *v6,
    }
}

/// Where the L4 checksum field of a frame is and the pseudo-header sum that goes with it.
/// `Err(Unrecognized)` unless the frame has a whole L4 header we checksum (TCP, UDP,
/// ICMP, ICMPv6) in an unfragmented IP packet (a fragment's checksum covers the whole
/// datagram, which this frame does not hold).
fn l4_checksum_site(frame: &[u8], layout: &Layout) -> Result<(usize, u16, IpProtocol)> {
    if !layout.has(Layout::L4) || layout.has(Layout::FRAGMENT) {
        return Err(Error::Unrecognized);
    }
    let l4 = usize::from(layout.l4);
    let end = usize::from(layout.l3_end);
    let proto = IpProtocol::from(layout.ip_proto);
    let field = match proto {
        IpProtocol::Tcp => 16,
        IpProtocol::Udp => 6,
        IpProtocol::Icmp | IpProtocol::Icmpv6 => 2,
        _ => return Err(Error::Unrecognized),
    };
    let len = (end - l4) as u32;
    let pseudo = if layout.has(Layout::IPV4) {
        match proto {
            // RFC 792: the ICMP checksum covers the ICMP message only.
            IpProtocol::Icmp => 0,
            _ => pseudo_header_v4(&layout.ipv4_src(frame), &layout.ipv4_dst(frame), proto, len),
        }
    } else {
        pseudo_header_v6(&layout.ipv6_src(frame), &layout.ipv6_dst(frame), proto, len)
    };
    Ok((l4 + field, pseudo, proto))
}

/// Computes the TCP, UDP, ICMP or ICMPv6 checksum of the frame from scratch and writes it,
/// whatever the field held before (zero, or the partial pseudo-header sum a kernel leaves in
/// `TP_STATUS_CSUMNOTREADY` frames). A UDP checksum that computes to zero is sent as all ones
/// (RFC 768 "Fields"; RFC 8200 §8.1).
pub fn fill_l4(frame: &mut [u8], layout: &Layout) -> Result<()> {
    let (at, pseudo, proto) = l4_checksum_site(frame, layout)?;
    frame[at..at + 2].copy_from_slice(&[0, 0]);
    let body = &frame[usize::from(layout.l4)..usize::from(layout.l3_end)];
    let mut csum = !combine(&[pseudo, data(body)]);
    if proto == IpProtocol::Udp && csum == 0 {
        csum = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

/// Whether the frame's L4 checksum verifies. A zero UDP checksum over IPv4 means "none"
/// and verifies (RFC 768); over IPv6 it is invalid (RFC 8200 §8.1).
pub fn verify_l4(frame: &[u8], layout: &Layout) -> Result<bool> {
    let (at, pseudo, proto) = l4_checksum_site(frame, layout)?;
    if proto == IpProtocol::Udp && layout.has(Layout::IPV4) && frame[at..at + 2] == [0, 0] {
        return Ok(true);
    }
    let body = &frame[usize::from(layout.l4)..usize::from(layout.l3_end)];
    Ok(combine(&[pseudo, data(body)]) == 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 numerical example: the sum of these words is ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn wide_and_narrow_sums_agree() {
        let all: Vec<u8> = (0..=255u8).cycle().skip(3).take(1004).collect();
        for len in (0..=300).chain([1000, 1001]) {
            for start in 0..3 {
                let bytes = &all[start..start + len];
                let mut narrow: u64 = 0;
                for pair in bytes.chunks(2) {
                    let hi = u64::from(pair[0]) << 8;
                    narrow += hi + pair.get(1).map_or(0, |&b| u64::from(b));
                }
                assert_eq!(data(bytes), fold(narrow), "{len} bytes from {start}");
            }
        }
        let ones = [0xffu8; 64];
        assert_eq!(data(&ones), 0xffff);
    }

    #[test]
    fn combine_carries() {
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[0x8000, 0x8000]), 0x0001);
    }

    #[test]
    fn ipv4_pseudo_header_equals_bytes() {
        let src = Ipv4Addr::new(192, 168, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 254);
        let bytes = [192, 168, 0, 1, 10, 0, 0, 254, 0, 17, 0x12, 0x34];
        assert_eq!(
            pseudo_header_v4(&src, &dst, IpProtocol::Udp, 0x1234),
            data(&bytes)
        );
    }

    #[test]
    fn ipv6_pseudo_header_equals_bytes() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&0x0001_0020u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(
            pseudo_header_v6(&src, &dst, IpProtocol::Icmpv6, 0x1_0020),
            data(&bytes)
        );
    }

    fn frame(ethertype: u16, ip: &[u8]) -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(ip);
        frame.extend_from_slice(&[0xee; 4]); // Ethernet padding, outside the checksum
        frame
    }

    #[test]
    fn fill_and_verify_udp_over_ipv4() {
        // 192.168.1.1:49152 -> 192.168.1.2:53 "abcd": checksum 0xf785 (see udp.rs tests).
        let mut ip = vec![
            0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 192, 168, 1, 1, 192, 168, 1, 2,
        ];
        ip.extend_from_slice(&[
            0xc0, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x34, b'a', b'b', b'c', b'd',
        ]);
        let mut frame = frame(0x0800, &ip);
        let layout = crate::wire::layout::parse(&frame).unwrap();
        assert!(!verify_l4(&frame, &layout).unwrap());
        fill_l4(&mut frame, &layout).unwrap();
        assert_eq!(&frame[40..42], &[0xf7, 0x85]);
        assert!(verify_l4(&frame, &layout).unwrap());
        frame[40..42].fill(0);
        assert!(
            verify_l4(&frame, &layout).unwrap(),
            "zero UDP checksum over IPv4 means none"
        );
    }

    #[test]
    fn fill_and_verify_tcp_and_icmpv6_over_ipv6() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::2".parse().unwrap();
        for (proto, l4) in [
            (
                6u8,
                vec![
                    0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0xab, 0xcd,
                    0, 0,
                ],
            ),
            (58u8, vec![128, 0, 0xab, 0xcd, 0, 1, 0, 1, b'x']),
        ] {
            let mut ip = vec![0x60, 0, 0, 0, 0, l4.len() as u8, proto, 64];
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            ip.extend_from_slice(&l4);
            let mut frame = frame(0x86dd, &ip);
            let layout = crate::wire::layout::parse(&frame).unwrap();
            fill_l4(&mut frame, &layout).unwrap();
            assert!(verify_l4(&frame, &layout).unwrap());
            let proto = IpProtocol::from(proto);
            let sum = combine(&[
                pseudo_header_v6(&src, &dst, proto, l4.len() as u32),
                data(layout.l4_bytes(&frame)),
            ]);
            assert_eq!(sum, 0xffff);
        }
    }

    #[test]
    fn icmpv4_has_no_pseudo_header_and_fragments_are_refused() {
        let mut ip = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip.extend_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, 1]);
        let mut frame = frame(0x0800, &ip);
        let layout = crate::wire::layout::parse(&frame).unwrap();
        fill_l4(&mut frame, &layout).unwrap();
        assert_eq!(data(&frame[34..42]), 0xffff);
        frame[20] = 0x20; // MF: a first fragment
        let layout = crate::wire::layout::parse(&frame).unwrap();
        assert_eq!(fill_l4(&mut frame, &layout), Err(Error::Unrecognized));
        frame[12..14].copy_from_slice(&[0x88, 0xcc]); // LLDP: no IP, no L4
        let other = crate::wire::layout::parse(&frame).unwrap();
        assert_eq!(verify_l4(&frame, &other), Err(Error::Unrecognized));
    }
}
