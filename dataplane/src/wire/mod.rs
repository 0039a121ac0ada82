//! Zero-copy views of the protocols the dataplane speaks.
//!
//! One file per protocol, in the smoltcp `wire` style: a private `field` module of byte
//! ranges, a `Packet<T: AsRef<[u8]>>` view whose `new_checked` validates the length once so
//! that every accessor is panic-free, setters on `T: AsMut<[u8]>`, and a `Repr` with the
//! semantic fields (`parse` validates, `emit` writes) for the slow path, tests and trace.
//!
//! The hot path does not use the `Repr`s: [`layout::parse`] walks a frame once and records
//! the offsets of its headers in a [`layout::Layout`], and later stages read fields at those
//! offsets. [`checksum`] holds the Internet checksum helpers both paths share.

/// Declares a protocol-number enum with an `Unknown(n)` variant, `From` conversions both ways
/// and a `Display` that prints the variant name (or the number, for `Unknown`).
macro_rules! enum_with_unknown {
    (
        $(#[$attr:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$vattr:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vattr])* $variant, )+
            /// A value this module has no name for.
            Unknown($ty),
        }

        impl From<$ty> for $name {
            #[inline]
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl $name {
            /// The number on the wire, in a `const` context too: the
            /// forwarding path matches raw numbers against these, which
            /// compiles to one compare where converting to the enum first
            /// costs a chain of them.
            #[inline(always)]
            pub const fn value(self) -> $ty {
                match self {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl From<$name> for $ty {
            #[inline(always)]
            fn from(value: $name) -> Self {
                value.value()
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self {
                    $( $name::$variant => f.write_str(stringify!($variant)), )+
                    $name::Unknown(other) => write!(f, "{:#x}", other),
                }
            }
        }
    };
}

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod geneve;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod layout;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vxlan;

pub use ethernet::{EtherType, MacAddr};
pub use layout::{Layout, Malformed};

/// Why a view or a `Repr` could not be built from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field inside it claims).
    #[error("buffer too short for the header or for a length field inside it")]
    Truncated,
    /// A field holds a value the specification forbids.
    #[error("header field holds a value the specification forbids")]
    Malformed,
    /// The checksum does not verify.
    #[error("checksum does not verify")]
    Checksum,
    /// Well formed, but a kind this module does not represent (e.g. an unknown message type).
    #[error("well-formed, but a kind of message this module does not represent")]
    Unrecognized,
}

/// Result of parsing a header.
pub type Result<T> = core::result::Result<T, Error>;

enum_with_unknown! {
    /// IP protocol numbers and IPv6 next-header values (IANA "Assigned Internet Protocol
    /// Numbers"; RFC 791 §3.1 "Protocol", RFC 8200 §3 "Next Header").
    pub enum IpProtocol(u8) {
        /// IPv6 Hop-by-Hop Options (RFC 8200 §4.3).
        HopByHop = 0,
        /// ICMP for IPv4 (RFC 792).
        Icmp = 1,
        /// TCP (RFC 793).
        Tcp = 6,
        /// UDP (RFC 768).
        Udp = 17,
        /// SCTP (RFC 9260).
        Sctp = 132,
        /// IPv6 Routing header (RFC 8200 §4.4).
        Ipv6Route = 43,
        /// IPv6 Fragment header (RFC 8200 §4.5).
        Ipv6Frag = 44,
        /// ICMP for IPv6 (RFC 4443).
        Icmpv6 = 58,
        /// IPv6 "No Next Header" (RFC 8200 §4.7).
        Ipv6NoNxt = 59,
        /// IPv6 Destination Options (RFC 8200 §4.6).
        Ipv6Opts = 60,
    }
}

/// Field readers at an offset into a frame, for the hot path and for code
/// that reads a header before (or instead of) parsing it whole: one bounds
/// check per field. Stages read parsed packets through [`Layout`]'s
/// accessors, which use these.
pub mod read {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::MacAddr;

    /// The big-endian 16-bit field at `at`.
    #[inline(always)]
    pub fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes(*b[at..].first_chunk().expect("field within the frame"))
    }

    /// The MAC address at `at`.
    #[inline(always)]
    pub fn mac(b: &[u8], at: usize) -> MacAddr {
        MacAddr(*b[at..].first_chunk().expect("field within the frame"))
    }

    /// The IPv4 address at `at`.
    #[inline(always)]
    pub fn ipv4(b: &[u8], at: usize) -> Ipv4Addr {
        Ipv4Addr::from(*b[at..].first_chunk::<4>().expect("field within the frame"))
    }

    /// The IPv6 address at `at`.
    #[inline(always)]
    pub fn ipv6(b: &[u8], at: usize) -> Ipv6Addr {
        Ipv6Addr::from(*b[at..].first_chunk::<16>().expect("field within the frame"))
    }
}
