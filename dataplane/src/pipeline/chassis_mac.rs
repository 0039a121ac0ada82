//! Chassis MACs on provider networks (OVN's `ovn-chassis-mac-mappings`,
//! controller/physical.c): a distributed router runs on every chassis with
//! the same port MACs, so a routed frame that left each chassis onto a
//! physical network with the router port's MAC as its source would show
//! the physical switches one MAC moving between hosts. Each chassis has a
//! MAC of its own per physical network instead:
//!
//! - out of a localnet port, a routed frame for a port on another chassis
//!   leaves with this chassis' MAC as its source (the router's hops are
//!   compiled with it, `Tables::hop_source`);
//! - into a localnet port, a frame whose source is another chassis' MAC
//!   (it was routed there) gets the MAC of the switch's router port back
//!   before the switch sees it ([`FromPhysical::replace`]), so the VM sees
//!   its gateway's MAC, as from a local router.
//!
//! Without a MAC for the network the router port's MAC is used, as OVN
//! does.

use super::Tracer;
use crate::ids::{DatapathIdx, LportIdx};
use crate::tables::Tables;
use crate::wire::{ethernet, MacAddr};

/// A localnet port's chassis MACs, from SB `Chassis`
/// `other_config:ovn-chassis-mac-mappings` for the port's `network_name`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChassisMacs {
    /// This chassis' MAC on the network.
    pub local: Option<MacAddr>,
    /// The other chassis' MACs on it.
    pub remote: Vec<MacAddr>,
}

/// What frames from one localnet port get: the other chassis' MACs, and
/// the router port MAC that replaces them.
#[derive(Clone, Debug)]
pub struct FromPhysical {
    pub remote: Vec<MacAddr>,
    pub router_mac: MacAddr,
}

impl FromPhysical {
    /// Gives `frame` the router port's MAC as its source if another chassis
    /// routed it (OVN's table 0 flow of `put_replace_chassis_mac_flows`).
    #[inline]
    pub fn replace<T: Tracer>(&self, frame: &mut [u8], t: &mut T) {
        if frame.len() < ethernet::HEADER_LEN {
            return;
        }
        let mut eth = ethernet::Frame::new_unchecked(frame);
        let src = eth.src_addr();
        if self.remote.contains(&src) {
            eth.set_src_addr(self.router_mac);
            trace!(
                t,
                "chassis_mac",
                "eth.src {src} is another chassis' MAC (routed there): eth.src = {}, the router port's",
                self.router_mac
            );
        }
    }
}

impl Tables {
    /// The source MAC of routed frames to `lport` from a router port of
    /// MAC `port_mac`: this chassis' MAC on the physical network when
    /// `lport` is on another chassis behind the switch's localnet port and
    /// the chassis has a MAC there, else the port's.
    pub(crate) fn hop_source(&self, port_mac: MacAddr, lport: LportIdx) -> MacAddr {
        let l = self.lport(lport);
        if l.local_port.is_some() {
            return port_mac;
        }
        self.datapath(l.datapath)
            .localnet
            .and_then(|ln| self.lport(ln).chassis_macs.local)
            .unwrap_or(port_mac)
    }

    /// Frames into switch `dp`'s localnet port from another chassis' MAC
    /// get `router_mac` (the first router port on the switch wins, as the
    /// first of OVN's flows does).
    pub(crate) fn chassis_macs_in(&mut self, dp: DatapathIdx, router_mac: MacAddr) {
        let Some(ln) = self.datapath(dp).localnet else {
            return;
        };
        let ln = self.lport(ln);
        let (Some(p), false) = (ln.local_port, ln.chassis_macs.remote.is_empty()) else {
            return;
        };
        let remote = ln.chassis_macs.remote.clone();
        let p = p.get();
        if self.chassis_mac_in.len() <= p {
            self.chassis_mac_in.resize(p + 1, None);
        }
        self.chassis_mac_in[p].get_or_insert(FromPhysical { remote, router_mac });
    }
}
