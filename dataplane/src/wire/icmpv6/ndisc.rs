//! Neighbor Discovery (RFC 4861): the Neighbor Solicitation and
//! Advertisement bodies and their link-layer address options, as the ND
//! responder reads them from a VM and writes them back.

use super::*;

/// The R, S and O flags of a Neighbor Advertisement (RFC 4861 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags(pub u8);

impl NeighborFlags {
    /// R: the sender is a router.
    pub const ROUTER: NeighborFlags = NeighborFlags(0x80);
    /// S: sent in response to a Neighbor Solicitation.
    pub const SOLICITED: NeighborFlags = NeighborFlags(0x40);
    /// O: override an existing cache entry.
    pub const OVERRIDE: NeighborFlags = NeighborFlags(0x20);

    /// Only the three defined bits of `bits`.
    pub const fn from_bits_truncate(bits: u8) -> NeighborFlags {
        NeighborFlags(bits & 0xe0)
    }

    /// Whether all flags of `other` are set.
    pub const fn contains(self, other: NeighborFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// R flag.
    pub const fn is_router(self) -> bool {
        self.contains(Self::ROUTER)
    }

    /// S flag.
    pub const fn is_solicited(self) -> bool {
        self.contains(Self::SOLICITED)
    }

    /// O flag.
    pub const fn is_override(self) -> bool {
        self.contains(Self::OVERRIDE)
    }
}

impl core::ops::BitOr for NeighborFlags {
    type Output = NeighborFlags;
    fn bitor(self, rhs: NeighborFlags) -> NeighborFlags {
        NeighborFlags(self.0 | rhs.0)
    }
}

impl fmt::Display for NeighborFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (flag, name) in [
            (Self::ROUTER, "R"),
            (Self::SOLICITED, "S"),
            (Self::OVERRIDE, "O"),
        ] {
            f.write_str(if self.contains(flag) { name } else { "-" })?;
        }
        Ok(())
    }
}

/// One Neighbor Discovery option: its type and the bytes after the type and length octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdiscOption<'a> {
    /// Option type.
    pub kind: NdiscOptionType,
    /// Option data (length × 8 − 2 bytes).
    pub data: &'a [u8],
}

/// Iterator over Neighbor Discovery options. Yields `Err(Malformed)` once, then stops, at an
/// option of length zero ("Nodes MUST silently discard an ND packet that contains an option
/// with length zero", RFC 4861 §4.6) and `Err(Truncated)` at one that runs past the buffer.
#[derive(Debug, Clone)]
pub struct NdiscOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdiscOptions<'a> {
    /// Iterates over `options`, the bytes after an ND message's fixed part.
    pub fn new(options: &'a [u8]) -> NdiscOptions<'a> {
        NdiscOptions { rest: options }
    }
}

impl<'a> Iterator for NdiscOptions<'a> {
    type Item = Result<NdiscOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        self.rest = &[];
        let Some(&units) = rest.get(1) else {
            return Some(Err(Error::Truncated));
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            return Some(Err(Error::Malformed));
        }
        if len > rest.len() {
            return Some(Err(Error::Truncated));
        }
        self.rest = &rest[len..];
        Some(Ok(NdiscOption {
            kind: NdiscOptionType::from(rest[0]),
            data: &rest[2..len],
        }))
    }
}

/// Writes an Ethernet link-layer address option (RFC 4861 §4.6.1) into the first 8 bytes of
/// `buf`.
fn emit_lladdr_option(buf: &mut [u8], kind: NdiscOptionType, addr: MacAddr) {
    buf[0] = kind.into();
    buf[1] = (LLADDR_OPTION_LEN / 8) as u8;
    buf[2..8].copy_from_slice(&addr.0);
}

/// The semantic content of a Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdiscRepr {
    /// Neighbor Solicitation (RFC 4861 §4.3).
    NeighborSolicit {
        /// The address whose link-layer address is sought.
        target_addr: Ipv6Addr,
        /// The Source Link-Layer Address option, if present.
        lladdr: Option<MacAddr>,
    },
    /// Neighbor Advertisement (RFC 4861 §4.4).
    NeighborAdvert {
        /// R, S and O flags.
        flags: NeighborFlags,
        /// The address whose link-layer address is advertised.
        target_addr: Ipv6Addr,
        /// The Target Link-Layer Address option, if present.
        lladdr: Option<MacAddr>,
    },
}

impl NdiscRepr {
    /// Reads an NS or NA, checking what RFC 4861 §7.1.1 / §7.1.2 let the message alone
    /// decide: code 0, a target that is not multicast, options of nonzero length. A
    /// link-layer option of the wrong kind is ignored, as is any unknown option (§4.6); one
    /// whose length is not 8 (Ethernet) is `Malformed`. Hop limit 255 and the address
    /// checks belong to the caller, who has the IPv6 header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<NdiscRepr> {
        packet.check_len()?;
        let wanted = match packet.msg_type() {
            Message::NeighborSolicit => NdiscOptionType::SourceLinkLayerAddr,
            Message::NeighborAdvert => NdiscOptionType::TargetLinkLayerAddr,
            _ => return Err(Error::Unrecognized),
        };
        if packet.msg_code() != 0 || packet.target_addr().is_multicast() {
            return Err(Error::Malformed);
        }
        let mut lladdr = None;
        for option in NdiscOptions::new(packet.ndisc_options()) {
            let option = option?;
            if option.kind == wanted {
                if option.data.len() != LLADDR_OPTION_LEN - 2 {
                    return Err(Error::Malformed);
                }
                lladdr = Some(MacAddr::from_bytes(option.data));
            }
        }
        let target_addr = packet.target_addr();
        Ok(match packet.msg_type() {
            Message::NeighborSolicit => NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            },
            _ => NdiscRepr::NeighborAdvert {
                flags: packet.neighbor_flags(),
                target_addr,
                lladdr,
            },
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        let lladdr = match self {
            NdiscRepr::NeighborSolicit { lladdr, .. }
            | NdiscRepr::NeighborAdvert { lladdr, .. } => lladdr,
        };
        NDISC_HEADER_LEN
            + if lladdr.is_some() {
                LLADDR_OPTION_LEN
            } else {
                0
            }
    }

    /// Writes the message (checksum zero: call [`Packet::fill_checksum`] afterwards) into a
    /// buffer of at least [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_msg_code(0);
        packet.set_checksum(0);
        packet.clear_reserved();
        let (target_addr, option) = match *self {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => {
                packet.set_msg_type(Message::NeighborSolicit);
                (
                    target_addr,
                    lladdr.map(|a| (NdiscOptionType::SourceLinkLayerAddr, a)),
                )
            }
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => {
                packet.set_msg_type(Message::NeighborAdvert);
                packet.set_neighbor_flags(flags);
                (
                    target_addr,
                    lladdr.map(|a| (NdiscOptionType::TargetLinkLayerAddr, a)),
                )
            }
        };
        packet.set_target_addr(target_addr);
        if let Some((kind, addr)) = option {
            emit_lladdr_option(packet.ndisc_options_mut(), kind, addr);
        }
    }
}

impl fmt::Display for NdiscRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lladdr = match self {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => {
                write!(f, "NS target={target_addr}")?;
                lladdr
            }
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => {
                write!(f, "NA flags={flags} target={target_addr}")?;
                lladdr
            }
        };
        if let Some(addr) = lladdr {
            write!(f, " lladdr={addr}")?;
        }
        Ok(())
    }
}
