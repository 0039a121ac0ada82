//! A localnet port on a VLAN provider network (OVN's localnet `tag`):
//! frames from the physical network carry the network's VLAN, which comes
//! off before the logical switch sees them (frames of any other VLAN, or
//! untagged, are not this network's); frames to it get the tag pushed.

use super::Tracer;
use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::wire::read::be16;
use crate::wire::{ethernet, EtherType};

/// Removes the 802.1Q tag of VLAN `vid` from `buf`, or says why the frame
/// is not from the provider network (`provider_vlan_mismatch`).
#[inline]
pub fn untag<B: PacketBuf, T: Tracer>(buf: &mut B, vid: u16, t: &mut T) -> Result<(), DropReason> {
    let f = buf.data();
    let tagged = f.len() >= 18 && EtherType::from(be16(f, 12)) == EtherType::Vlan;
    let got = tagged.then(|| be16(f, 14) & 0x0fff);
    if got != Some(vid) {
        match got {
            Some(other) => trace!(
                t,
                "provider_vlan",
                "tagged with VLAN {other}, not the provider network's {vid}"
            ),
            None => trace!(
                t,
                "provider_vlan",
                "untagged, on a provider network of VLAN {vid}"
            ),
        }
        return Err(DropReason::ProviderVlanMismatch);
    }
    buf.data_mut().copy_within(0..12, 4);
    buf.trim_front(4);
    trace!(
        t,
        "provider_vlan",
        "VLAN {vid} (the provider network's): tag removed"
    );
    Ok(())
}

/// Pushes an 802.1Q tag with VLAN `vid` onto every frame (into headroom).
pub fn tag_all<B: PacketBuf>(bufs: &mut [B], vid: u16) {
    for b in bufs {
        if let Some(f) = b.prepend(ethernet::VLAN_TAG_LEN) {
            // The two MACs (12 bytes) move to the front; the frame's
            // ethertype stays where it was, now the tag's inner one.
            f.copy_within(ethernet::VLAN_TAG_LEN..ethernet::VLAN_TAG_LEN + 12, 0);
            ethernet::Frame::new_unchecked(&mut *f).set_ethertype(EtherType::Vlan);
            ethernet::VlanTag::new_unchecked(&mut f[ethernet::HEADER_LEN..]).set_tci(vid & 0x0fff);
        }
    }
}
