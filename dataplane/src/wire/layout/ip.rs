//! The IP layers of [`parse`](super::parse): IPv4 with its options and
//! fragments (RFC 791 §3.1, RFC 1858 §3 for overlapping fragments), IPv6
//! with its extension headers (RFC 8200 §4), and where the L4 header is.

use super::*;

/// RFC 791 §3.1, with the fragment rules of RFC 1858 §3.
#[inline(always)]
pub(super) fn parse_ipv4(frame: &[u8], l3: usize) -> Result<L3, Malformed> {
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
pub(super) fn parse_ipv6(frame: &[u8], l3: usize) -> Result<L3, Malformed> {
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
