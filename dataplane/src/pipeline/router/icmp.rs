//! The frames a router writes over a packet it answers: an ICMP echo reply
//! (RFC 792 "Echo or Echo Reply Message"; RFC 4443 §4.2) and an ICMP time
//! exceeded (RFC 792, type 11 code 0; RFC 4443 §3.3, type 3 code 0), as
//! OVN's `lr_in_ip_input` actions build them: the reply swaps the
//! addresses and leaves with `ip.ttl = 255`; the error comes from the
//! ingress router port's address with `ip.ttl = 254` and quotes the IPv4
//! header and 8 bytes of data (RFC 792), or as much of the IPv6 packet as
//! fits in the minimum MTU (RFC 4443 §2.4 (c)). Both go back out of the
//! port the packet came in by, from the router port's MAC. The TCP reset
//! and ICMP destination unreachable for the router's own addresses are
//! `reject`'s answers, written by [`crate::reject`] with the router's codes
//! ([`crate::reject::ROUTER_CODES`]).

use std::net::IpAddr;

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::pipeline::Verdict;
use crate::wire::layout::Layout;
use crate::wire::{checksum, IpProtocol, MacAddr};

/// What the router answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An echo reply from router port MAC `mac`.
    Echo { mac: MacAddr },
    /// A time exceeded from router port MAC `mac` and address `from` (of
    /// the packet's family).
    TimeExceeded { mac: MacAddr, from: IpAddr },
    /// To one of the router's addresses, not an echo request: OVN's
    /// `tcp_reset` for TCP, `icmp4`/`icmp6` destination unreachable for
    /// the rest (from the address it was sent to; the MACs swapped, so
    /// from the ingress router port's MAC).
    Unreachable,
}

/// RFC 1071 checksum of an IPv4 header at `h`.
fn ipv4_header_checksum(h: &mut [u8]) {
    h[10..12].copy_from_slice(&[0, 0]);
    let c = !checksum::data(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// The ICMPv6 checksum (RFC 4443 §2.3) of the message at `l4..end`.
fn icmpv6_checksum(f: &mut [u8], l3: usize, l4: usize, end: usize) {
    f[l4 + 2..l4 + 4].copy_from_slice(&[0, 0]);
    let s: [u8; 16] = f[l3 + 8..l3 + 24].try_into().expect("16 bytes");
    let d: [u8; 16] = f[l3 + 24..l3 + 40].try_into().expect("16 bytes");
    let pseudo =
        checksum::pseudo_header_v6(&s.into(), &d.into(), IpProtocol::Icmpv6, (end - l4) as u32);
    let c = !checksum::combine(&[pseudo, checksum::data(&f[l4..end])]);
    f[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
}

/// Ethernet: back to the sender, from `mac`.
fn eth_back(f: &mut [u8], mac: MacAddr) {
    f.copy_within(6..12, 0);
    f[6..12].copy_from_slice(&mac.0);
}

impl Answer {
    /// Writes the answer over the packet in `buf` (parsed into `lay`).
    pub fn write<B: PacketBuf>(self, buf: &mut B, lay: &Layout) -> Verdict {
        let (l3, l4, end) = (
            usize::from(lay.l3),
            usize::from(lay.l4),
            usize::from(lay.l3_end),
        );
        let v4 = lay.has(Layout::IPV4);
        match self {
            Answer::Unreachable => {
                // The pipeline chose this only for a packet that deserves
                // an answer: what remains is a buffer too small.
                if crate::reject::answer_with(buf, lay, &crate::reject::ROUTER_CODES) {
                    Verdict::Reply
                } else {
                    Verdict::Drop(DropReason::NoBuffer)
                }
            }
            Answer::Echo { mac } => {
                let f = buf.data_mut();
                eth_back(f, mac);
                if v4 {
                    let (s, d) = (l3 + 12, l3 + 16);
                    let src: [u8; 4] = f[s..s + 4].try_into().expect("4 bytes");
                    f.copy_within(d..d + 4, s);
                    f[d..d + 4].copy_from_slice(&src);
                    f[l3 + 8] = 255;
                    ipv4_header_checksum(&mut f[l3..l4]);
                    f[l4] = 0; // echo reply
                    f[l4 + 2..l4 + 4].copy_from_slice(&[0, 0]);
                    let c = !checksum::data(&f[l4..end]);
                    f[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
                } else {
                    let (s, d) = (l3 + 8, l3 + 24);
                    let src: [u8; 16] = f[s..s + 16].try_into().expect("16 bytes");
                    f.copy_within(d..d + 16, s);
                    f[d..d + 16].copy_from_slice(&src);
                    f[l3 + 7] = 255;
                    f[l4] = 129; // echo reply
                    icmpv6_checksum(f, l3, l4, end);
                }
                Verdict::Reply
            }
            Answer::TimeExceeded { mac, from } => {
                let (head, quoted) = if v4 {
                    // RFC 792: the header (IHL words) and 64 bits of data.
                    let ihl = usize::from(buf.data()[l3] & 0x0f) * 4;
                    (28, (ihl + 8).min(end - l3))
                } else {
                    (48, (end - l3).min(1280 - 48))
                };
                let len = l3 + head + quoted;
                let sender: [u8; 16] = {
                    let f = buf.data();
                    let mut a = [0u8; 16];
                    if v4 {
                        a[..4].copy_from_slice(&f[l3 + 12..l3 + 16]);
                    } else {
                        a.copy_from_slice(&f[l3 + 8..l3 + 24]);
                    }
                    a
                };
                if !buf.set_len(len.max(buf.len())) {
                    return Verdict::Drop(DropReason::NoBuffer);
                }
                let f = buf.data_mut();
                f.copy_within(l3..l3 + quoted, l3 + head);
                eth_back(f, mac);
                match from {
                    IpAddr::V4(a) => {
                        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
                        let h = &mut f[l3..l3 + 20];
                        h[..12].copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 254, 1, 0, 0]);
                        h[2..4].copy_from_slice(&((20 + 8 + quoted) as u16).to_be_bytes());
                        h[12..16].copy_from_slice(&a.octets());
                        h[16..20].copy_from_slice(&sender[..4]);
                        ipv4_header_checksum(h);
                        let m = l3 + 20;
                        f[m..m + 8].copy_from_slice(&[11, 0, 0, 0, 0, 0, 0, 0]);
                        let c = !checksum::data(&f[m..len]);
                        f[m + 2..m + 4].copy_from_slice(&c.to_be_bytes());
                    }
                    IpAddr::V6(a) => {
                        let h = &mut f[l3..l3 + 40];
                        h[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, 58, 254]);
                        h[4..6].copy_from_slice(&((8 + quoted) as u16).to_be_bytes());
                        h[8..24].copy_from_slice(&a.octets());
                        h[24..40].copy_from_slice(&sender);
                        let m = l3 + 40;
                        f[m..m + 8].copy_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
                        icmpv6_checksum(f, l3, m, len);
                    }
                }
                if !buf.set_len(len) {
                    return Verdict::Drop(DropReason::NoBuffer);
                }
                Verdict::Reply
            }
        }
    }
}
