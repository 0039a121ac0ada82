//! What conntrack needs to know about one packet: its 5-tuple and how the
//! protocol's state machine sees it ([`Seen`]), read from the parsed
//! frame. ICMP echo is tracked by its identifier (RFC 792, RFC 4443 §4.1:
//! the reply carries the request's identifier), ICMP errors by the packet
//! they quote (RFC 792 "Destination Unreachable Message": the internet
//! header plus 64 bits of the original datagram; RFC 4443 §3), whose
//! tuple names the connection they are related to.
//!
//! Fragments: a first fragment is tracked by the L4 header it carries; a
//! later fragment has no L4 header and cannot be told apart from another
//! connection's, so it is [`Seen::Untrackable`] (datapaths with stateful
//! ACLs drop it as `ct.inv`; the switch does not reassemble yet).

use std::net::IpAddr;

use crate::wire::layout::Layout;
use crate::wire::tcp::Flags;

/// A direction of a connection: addresses, ports (ICMP echo: the
/// identifier in both), protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub v6: bool,
}

impl Tuple {
    /// The other direction.
    #[inline]
    pub fn reverse(&self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }

    fn addr(b: [u8; 16], v6: bool) -> IpAddr {
        if v6 {
            IpAddr::from(b)
        } else {
            IpAddr::from([b[12], b[13], b[14], b[15]])
        }
    }

    pub fn src_ip(&self) -> IpAddr {
        Self::addr(self.src, self.v6)
    }

    pub fn dst_ip(&self) -> IpAddr {
        Self::addr(self.dst, self.v6)
    }
}

/// How a packet looks to the state machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Tcp(Flags),
    Udp,
    /// ICMP echo request (true) or reply (false).
    Echo(bool),
    /// An ICMP error quoting a packet of `quoted`'s connection.
    IcmpError {
        quoted: Tuple,
    },
    /// Any other IP protocol (or ICMP message): tracked by addresses and
    /// protocol alone.
    Other,
    /// A later fragment, or an L4 header too short to read.
    Untrackable,
}

/// A packet's tuple and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub tuple: Tuple,
    pub seen: Seen,
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMP6: u8 = 58;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*b.get(at..)?.first_chunk()?))
}

fn addr4(b: &[u8], at: usize) -> Option<[u8; 16]> {
    Some(v4_mapped(*b.get(at..)?.first_chunk()?))
}

/// An IPv4 address as the IPv4-mapped IPv6 address the tuple holds
/// (RFC 4291 §2.5.5.2, `::ffff:a.b.c.d`): made as one integer, so it stays
/// in registers (written byte by byte, it was stored and read back as
/// words by the hashes, a store-forwarding stall per address).
#[inline(always)]
pub(crate) fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    (0xffff_u128 << 32 | u128::from(u32::from_be_bytes(a))).to_be_bytes()
}

fn addr6(b: &[u8], at: usize) -> Option<[u8; 16]> {
    Some(*b.get(at..)?.first_chunk()?)
}

/// RFC 792 / RFC 4443 §2.1: which ICMP types are errors, and which echo.
fn icmp_kind(v6: bool, t: u8) -> Option<Result<bool, ()>> {
    match (v6, t) {
        (false, 8) | (true, 128) => Some(Ok(true)),
        (false, 0) | (true, 129) => Some(Ok(false)),
        (false, 3 | 4 | 5 | 11 | 12) | (true, 1..=4) => Some(Err(())),
        _ => None,
    }
}

/// The conntrack view of an IP packet (None for non-IP).
pub fn packet(frame: &[u8], lay: &Layout) -> Option<Packet> {
    let v6 = lay.has(Layout::IPV6);
    if !v6 && !lay.has(Layout::IPV4) {
        return None;
    }
    let l3 = usize::from(lay.l3);
    let (src, dst) = if v6 {
        (addr6(frame, l3 + 8)?, addr6(frame, l3 + 24)?)
    } else {
        (addr4(frame, l3 + 12)?, addr4(frame, l3 + 16)?)
    };
    let mut tuple = Tuple {
        src,
        dst,
        sport: 0,
        dport: 0,
        proto: lay.ip_proto,
        v6,
    };
    if lay.has(Layout::LATER_FRAGMENT) || !lay.has(Layout::L4) {
        let seen = if lay.has(Layout::LATER_FRAGMENT) || matches!(lay.ip_proto, TCP | UDP) {
            Seen::Untrackable
        } else {
            Seen::Other
        };
        return Some(Packet { tuple, seen });
    }
    let l4 = usize::from(lay.l4);
    let seen = match lay.ip_proto {
        TCP => {
            (tuple.sport, tuple.dport) = (be16(frame, l4)?, be16(frame, l4 + 2)?);
            Seen::Tcp(lay.tcp_flags(frame))
        }
        UDP => {
            (tuple.sport, tuple.dport) = (be16(frame, l4)?, be16(frame, l4 + 2)?);
            Seen::Udp
        }
        ICMP | ICMP6 if (lay.ip_proto == ICMP6) == v6 => match icmp_kind(v6, frame[l4]) {
            Some(Ok(request)) => {
                let id = be16(frame, l4 + 4)?;
                (tuple.sport, tuple.dport) = (id, id);
                Seen::Echo(request)
            }
            Some(Err(())) => match quoted(&frame[..usize::from(lay.l3_end)], l4 + 8, v6) {
                Some(q) => Seen::IcmpError { quoted: q },
                None => Seen::Untrackable,
            },
            None => Seen::Other,
        },
        _ => Seen::Other,
    };
    Some(Packet { tuple, seen })
}

/// The tuple of the packet an ICMP error quotes, starting at `at`.
fn quoted(b: &[u8], at: usize, v6_outer: bool) -> Option<Tuple> {
    let (src, dst, proto, l4) = if v6_outer {
        // RFC 8200 §3: next header at 6, addresses at 8 and 24.
        (
            addr6(b, at + 8)?,
            addr6(b, at + 24)?,
            *b.get(at + 6)?,
            at + 40,
        )
    } else {
        // RFC 791 §3.1: IHL in the low nibble, protocol at 9.
        let ihl = usize::from(*b.get(at)? & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        (
            addr4(b, at + 12)?,
            addr4(b, at + 16)?,
            *b.get(at + 9)?,
            at + ihl,
        )
    };
    let (sport, dport) = match proto {
        TCP | UDP => (be16(b, l4)?, be16(b, l4 + 2)?),
        ICMP | ICMP6 => {
            let id = be16(b, l4 + 4)?;
            (id, id)
        }
        _ => (0, 0),
    };
    Some(Tuple {
        src,
        dst,
        sport,
        dport,
        proto,
        v6: v6_outer,
    })
}
