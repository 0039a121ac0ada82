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

// Raw numbers: matched per packet (see `EtherType::value`).
const IPV4: u16 = EtherType::Ipv4.value();
const IPV6: u16 = EtherType::Ipv6.value();
const TCP: u8 = IpProtocol::Tcp.value();
const UDP: u8 = IpProtocol::Udp.value();
const SCTP: u8 = IpProtocol::Sctp.value();
const ICMP: u8 = IpProtocol::Icmp.value();
const ICMPV6: u8 = IpProtocol::Icmpv6.value();

/// The L4 part of a flow: ports, or ICMP type, code and echo identifier.
#[inline(always)]
fn l4(f: &[u8], at: usize, proto: u8) -> u64 {
    let w = word(f, at);
    match proto {
        TCP | UDP | SCTP => w & 0xffff_ffff,
        ICMP | ICMPV6 => {
            // RFC 792 / RFC 4443 §4: echo request and reply carry an
            // identifier at offset 4; other messages hash by type and code.
            let echo = matches!((proto, w as u8), (ICMP, 0 | 8))
                || matches!((proto, w as u8), (ICMPV6, 128 | 129));
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
    // Most packets: TCP or UDP over IPv4 without options, not a fragment.
    // Straight-line loads from one checked chunk, the same value as
    // `flow_hash_any` computes for them.
    if let Some(h) = f.first_chunk::<42>() {
        let w = |at: usize| u64::from_le_bytes(*h[at..].first_chunk().expect("within 42 bytes"));
        let proto = h[14 + 9];
        if be16(h, 12) == IPV4
            && h[14] == 0x45
            && be16(h, 14 + 6) & 0x3fff == 0
            && (proto == TCP || proto == UDP)
        {
            let x = w(0)
                ^ w(6).rotate_left(17)
                ^ w(14 + 12).rotate_left(31)
                ^ u64::from(proto) << 8
                ^ (w(14 + 20) & 0xffff_ffff).rotate_left(47);
            return mix(x);
        }
    }
    flow_hash_any(f)
}

/// [`flow_hash`] of any frame.
#[inline(never)]
fn flow_hash_any(f: &[u8]) -> u64 {
    let mut x = word(f, 0) ^ word(f, 6).rotate_left(17);
    if f.len() >= 14 {
        match be16(f, 12) {
            IPV4 if f.len() >= 14 + 20 => {
                let ihl = usize::from(f[14] & 0x0f) * 4;
                let proto = f[14 + 9];
                x ^= word(f, 14 + 12).rotate_left(31) ^ u64::from(f[14 + 9]) << 8;
                // Neither a later fragment nor a first one (MF or an offset).
                if be16(f, 14 + 6) & 0x3fff == 0 {
                    x ^= l4(f, 14 + ihl, proto).rotate_left(47);
                }
            }
            IPV6 if f.len() >= 14 + 40 => {
                let proto = f[14 + 6];
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
    mix(x)
}

/// Spreads the folded flow words over every bit of the hash: one
/// 64x64->128-bit multiply whose halves are xored (the folded multiply of
/// foldhash). A plain 64-bit multiply would not do: its low bits, where the
/// source port comes from, depend only on the low bits of its input.
#[inline(always)]
fn mix(x: u64) -> u64 {
    let m = u128::from(x) * 0x9e37_79b9_7f4a_7c15;
    (m >> 64) as u64 ^ m as u64
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The straight-line path for TCP/UDP over IPv4 hashes exactly as
        /// the general one: a flow keeps its source port whichever path
        /// its packets take.
        #[test]
        fn ipv4_fast_path_equals_the_general_hash(
            mut f in proptest::collection::vec(any::<u8>(), 42..80),
            tcp in any::<bool>(),
        ) {
            f[12..14].copy_from_slice(&IPV4.to_be_bytes());
            f[14] = 0x45;
            f[14 + 6] &= 0x80; // neither MF nor an offset
            f[14 + 9] = if tcp { TCP } else { UDP };
            prop_assert_eq!(flow_hash(&f), flow_hash_any(&f));
        }
    }
}
