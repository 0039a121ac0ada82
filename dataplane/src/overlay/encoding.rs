//! OVN's encoding of logical metadata in tunnel headers: the VXLAN VNI
//! layout of OVN's VXLAN mode and the Geneve option of class 0x0102, type
//! 0x80, and OVN's multicast group keys.

use super::{Egress, GENEVE_LEN};
use crate::drop::DropReason;
use crate::wire::geneve;

/// OVN's multicast group for flooding (`MC_FLOOD`).
pub const MC_FLOOD: u16 = 32768;
/// OVN's multicast group for unknown unicast (`MC_UNKNOWN`).
pub const MC_UNKNOWN: u16 = 32769;

/// The VXLAN VNI of OVN's VXLAN mode for a datapath and egress key.
pub fn vxlan_vni(datapath_key: u32, egress_key: u16) -> u32 {
    let egress = if egress_key >= MC_FLOOD {
        2048 + u32::from(egress_key - MC_FLOOD)
    } else {
        u32::from(egress_key)
    };
    (datapath_key & 0xfff) | ((egress & 0xfff) << 12)
}

/// The datapath key and egress of OVN's VXLAN VNI (the inverse of
/// [`vxlan_vni`]): egress bits 0 name no port (a plain VTEP sent it).
pub fn vxlan_vni_decode(vni: u32) -> (u32, Egress) {
    let e = (vni >> 12) as u16;
    let egress = match e {
        0 => Egress::Lookup,
        2048.. => Egress::Group(MC_FLOOD + (e - 2048)),
        _ => Egress::Port(e),
    };
    (vni & 0xfff, egress)
}

/// The egress that OVN's Geneve option's egress key names.
pub fn geneve_egress(key: u16) -> Egress {
    if key >= MC_FLOOD {
        Egress::Group(key)
    } else {
        Egress::Port(key)
    }
}

/// The VNI, OVN's metadata and the header length of a Geneve packet
/// (`payload` is the UDP payload). The shape OVN sends, one option of
/// OVN's class, is read at fixed offsets; anything else is parsed option
/// by option.
#[inline]
pub fn geneve_ovn(payload: &[u8]) -> Result<(u32, geneve::OvnMetadata, usize), DropReason> {
    // Version 0, 2 words of options, no O bit (the C bit is set: OVN's
    // option is critical); Ethernet; option class 0x0102, type 0x80, one
    // word (RFC 8926 §3.4, §3.5).
    if let Some(h) = payload.first_chunk::<GENEVE_LEN>() {
        if h[0] == 2
            && h[1] & !geneve::FLAG_CRITICAL == 0
            && h[2..4] == [0x65, 0x58]
            && h[8..12] == [0x01, 0x02, 0x80, 0x01]
        {
            let md =
                geneve::OvnMetadata::from_bytes(&h[12..16]).ok_or(DropReason::TunnelMalformed)?;
            return Ok((u32::from_be_bytes([0, h[4], h[5], h[6]]), md, GENEVE_LEN));
        }
    }
    let p = geneve::Packet::new_checked(payload).map_err(|_| DropReason::TunnelMalformed)?;
    let repr = geneve::Repr::parse(&p).map_err(|_| DropReason::TunnelMalformed)?;
    if repr.protocol_type != crate::wire::EtherType::from(0x6558) {
        return Err(DropReason::TunnelMalformed);
    }
    let mut md = None;
    for o in geneve::Options::new(repr.options) {
        let o = o.map_err(|_| DropReason::TunnelMalformed)?;
        if o.class == geneve::OVN_OPTION_CLASS && o.option_type == geneve::OVN_OPTION_TYPE {
            md = Some(geneve::OvnMetadata::from_bytes(o.data).ok_or(DropReason::TunnelMalformed)?);
        } else if o.is_critical() {
            // RFC 8926 §3.5: a critical option we do not understand.
            return Err(DropReason::TunnelCriticalOption);
        }
    }
    let md = md.ok_or(DropReason::TunnelNoMetadata)?;
    Ok((repr.vni, md, repr.buffer_len()))
}
