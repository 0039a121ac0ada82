//! The inner flow's hash, from which a tunnel packet's UDP source port
//! (RFC 7348 §5, RFC 8926 §3.3) and, over IPv6, its flow label (RFC 6438)
//! come, so that the underlay's ECMP spreads flows and keeps each on one
//! path.
//!
//! A flow is what OVS hashes for the same purpose: the Ethernet addresses;
//! for IPv4 and IPv6 the addresses and protocol; and, for a packet that is
//! not a fragment, the TCP/UDP/SCTP ports or, for ICMP and ICMPv6, the type
//! and code and the echo identifier (never the checksum, which changes per
//! packet). Fragments hash by addresses and protocol only, so a datagram's
//! first and later fragments take one path. IPv6 extension headers are not
//! walked: such packets hash by addresses and next header.

use crate::wire::read::be16;
use crate::wire::{EtherType, IpProtocol};

/// Bytes 0..8 of `b` at `at`, little-endian, zero-padded past the end.
#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    match b.get(at..at + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")),
        None => word_short(b, at),
    }
}

#[cold]
fn word_short(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    let tail = b.get(at..).unwrap_or(&[]);
    let n = tail.len().min(8);
    w[..n].copy_from_slice(&tail[..n]);
    u64::from_le_bytes(w)
}

/// The L4 part of a flow: ports, or ICMP type, code and echo identifier.
#[inline(always)]
fn l4(f: &[u8], at: usize, proto: IpProtocol) -> u64 {
    let w = word(f, at);
    match proto {
        IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Sctp => w & 0xffff_ffff,
        IpProtocol::Icmp | IpProtocol::Icmpv6 => {
            // RFC 792 / RFC 4443 §4: echo request and reply carry an
            // identifier at offset 4; other messages hash by type and code.
            let echo = matches!((proto, w as u8), (IpProtocol::Icmp, 0 | 8))
                || matches!((proto, w as u8), (IpProtocol::Icmpv6, 128 | 129));
            let type_code = w & 0xffff;
            if echo {
                type_code | (w & 0xffff_0000_0000)
            } else {
                type_code
            }
        }
        _ => 0,
    }
}

/// The hash of the flow of the Ethernet frame `f` (any length).
#[inline(always)]
pub fn flow_hash(f: &[u8]) -> u64 {
    let mut x = word(f, 0) ^ word(f, 6).rotate_left(17);
    if f.len() >= 14 {
        match EtherType::from(be16(f, 12)) {
            EtherType::Ipv4 if f.len() >= 14 + 20 => {
                let ihl = usize::from(f[14] & 0x0f) * 4;
                let proto = IpProtocol::from(f[14 + 9]);
                x ^= word(f, 14 + 12).rotate_left(31) ^ u64::from(f[14 + 9]) << 8;
                // Neither a later fragment nor a first one (MF or an offset).
                if be16(f, 14 + 6) & 0x3fff == 0 {
                    x ^= l4(f, 14 + ihl, proto).rotate_left(47);
                }
            }
            EtherType::Ipv6 if f.len() >= 14 + 40 => {
                let proto = IpProtocol::from(f[14 + 6]);
                x ^= word(f, 22).rotate_left(31)
                    ^ word(f, 30).rotate_left(7)
                    ^ word(f, 38).rotate_left(53)
                    ^ word(f, 46).rotate_left(23)
                    ^ u64::from(f[14 + 6]) << 8;
                x ^= l4(f, 14 + 40, proto).rotate_left(47);
            }
            _ => {}
        }
    }
    let h = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// The UDP source port for an inner flow of hash `flow_hash`, in the
/// dynamic range 49152..65535.
#[inline(always)]
pub fn source_port(flow_hash: u64) -> u16 {
    49152 | (flow_hash as u16 & 0x3fff)
}

/// The IPv6 flow label (20 bits) for an inner flow of hash `flow_hash`.
#[inline(always)]
pub fn flow_label(flow_hash: u64) -> u32 {
    (flow_hash >> 20) as u32 & 0xf_ffff
}
