//! OVN's address syntax as `Logical_Switch_Port.addresses` and
//! `port_security` write it (`ovn-nb(5)`): a MAC followed by IPv4 and
//! IPv6 addresses or prefixes, or the word `unknown`. Parsed here, once,
//! into the types the tables compile port security and the ARP/ND
//! responder from.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::TableError;
use crate::wire::MacAddr;

/// An IPv4 prefix, as in port security entries ("10.0.0.0/24").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    /// True if `ip` lies in the prefix.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }

    /// Whether a port security entry of this prefix allows `ip`, as OVN
    /// reads one: an address with a non-zero host part ("10.0.0.4/24") is
    /// that host alone, one with a zero host part ("10.0.0.0/24") the whole
    /// prefix.
    pub fn allows(self, ip: Ipv4Addr) -> bool {
        if u32::from(self.addr) & !self.mask() != 0 {
            ip == self.addr
        } else {
            self.contains(ip)
        }
    }

    /// The subnet broadcast address a host entry ("10.0.0.4/24") may also
    /// receive (OVN's egress port security), if it is one.
    pub fn broadcast(self) -> Option<Ipv4Addr> {
        let host = !self.mask();
        (self.prefix < 32 && u32::from(self.addr) & host != 0)
            .then(|| Ipv4Addr::from(u32::from(self.addr) | host))
    }
}

/// An IPv6 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Cidr {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

impl Ipv6Cidr {
    /// True if `ip` lies in the prefix.
    pub fn contains(self, ip: Ipv6Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix)
        };
        (u128::from(ip) ^ u128::from(self.addr)) & mask == 0
    }

    /// Whether a port security entry of this prefix allows `ip`: a host
    /// (non-zero host part) or the whole prefix, as [`Ipv4Cidr::allows`].
    pub fn allows(self, ip: Ipv6Addr) -> bool {
        let host = u128::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
        if u128::from(self.addr) & host != 0 {
            ip == self.addr
        } else {
            self.contains(ip)
        }
    }
}

/// One entry of OVN's `addresses` / `port_security` columns: "MAC [IP...]".
/// In `addresses` the IPs are host addresses; in `port_security` they may be
/// prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacIps {
    pub mac: MacAddr,
    pub ipv4: Vec<Ipv4Cidr>,
    pub ipv6: Vec<Ipv6Cidr>,
}

impl FromStr for MacIps {
    type Err = TableError;
    fn from_str(s: &str) -> Result<Self, TableError> {
        let bad = |why: String| TableError::BadAddress {
            entry: s.to_string(),
            why,
        };
        let mut words = s.split_whitespace();
        let mac_word = words.next().ok_or_else(|| bad("empty".into()))?;
        let mac: MacAddr = mac_word
            .parse()
            .map_err(|_| bad(format!("{mac_word:?} is not a MAC address")))?;
        let mut ipv4 = Vec::new();
        let mut ipv6 = Vec::new();
        for w in words {
            let (ip, prefix) = match w.split_once('/') {
                Some((ip, p)) => (ip, Some(p)),
                None => (w, None),
            };
            if let Ok(a) = ip.parse::<Ipv4Addr>() {
                let prefix =
                    parse_prefix(prefix, 32).ok_or_else(|| bad(format!("bad prefix in {w:?}")))?;
                ipv4.push(Ipv4Cidr { addr: a, prefix });
            } else if let Ok(a) = ip.parse::<Ipv6Addr>() {
                let prefix =
                    parse_prefix(prefix, 128).ok_or_else(|| bad(format!("bad prefix in {w:?}")))?;
                ipv6.push(Ipv6Cidr { addr: a, prefix });
            } else {
                return Err(bad(format!("{w:?} is not an IP address")));
            }
        }
        Ok(MacIps { mac, ipv4, ipv6 })
    }
}

fn parse_prefix(p: Option<&str>, max: u8) -> Option<u8> {
    match p {
        None => Some(max),
        Some(p) => p.parse::<u8>().ok().filter(|&n| n <= max),
    }
}

/// One entry of a logical port's `addresses`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// Known MAC (and IPs): enters the static MAC table and the ARP/ND
    /// responder.
    Known(MacIps),
    /// "unknown": the port also receives unicast to unknown MACs.
    Unknown,
}

impl FromStr for Address {
    type Err = TableError;
    fn from_str(s: &str) -> Result<Self, TableError> {
        if s.trim() == "unknown" {
            Ok(Address::Unknown)
        } else {
            s.parse().map(Address::Known)
        }
    }
}
