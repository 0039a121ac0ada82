//! The neighbour table of the uplink: remote tunnel endpoints' MACs,
//! learned from ARP and neighbour discovery ([`super::uplink_nd`]) and read
//! by every worker when it prepares an endpoint to encapsulate to.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::wire::MacAddr;

/// Remote tunnel endpoints' MACs by IP address (IPv4 kept as IPv4-mapped
/// IPv6): a fixed-size open-addressed table of atomic slots, shared by the
/// workers and kept across table publications. A slot is claimed once and
/// never freed, so its address never changes after it is published; a
/// lookup is three atomic loads, learning a few stores. Neither locks.
#[derive(Debug)]
pub struct Neighbors {
    slots: Box<[Slot]>,
    /// Bumped whenever an address is learned or its MAC changes, so users
    /// can keep what they built from a MAC until it changes.
    generation: AtomicU64,
}

/// One neighbour: `state` is 0 (free), [`CLAIMING`] (its address being
/// written), or `1 << 48 | mac` (published; `key` is the address).
#[derive(Debug, Default)]
struct Slot {
    state: AtomicU64,
    key: [AtomicU64; 2],
}

const CLAIMING: u64 = 1;
const NEIGHBOR_SLOTS: usize = 1024;
const NEIGHBOR_PROBES: usize = 16;

impl Default for Neighbors {
    fn default() -> Self {
        Neighbors {
            slots: (0..NEIGHBOR_SLOTS).map(|_| Slot::default()).collect(),
            generation: AtomicU64::new(0),
        }
    }
}

/// The table's key for an address: the 128 bits of its IPv6 form.
fn neighbor_key(ip: IpAddr) -> [u64; 2] {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let x = u128::from(v6);
    [(x >> 64) as u64, x as u64]
}

impl Neighbors {
    /// Changes whenever any MAC is learned or changes.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn probe(key: [u64; 2]) -> impl Iterator<Item = usize> {
        let h = (key[0] ^ key[1].rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let h = (h >> 54) as usize;
        (0..NEIGHBOR_PROBES).map(move |i| (h + i) % NEIGHBOR_SLOTS)
    }

    fn matches(slot: &Slot, key: [u64; 2]) -> bool {
        slot.key[0].load(Ordering::Relaxed) == key[0]
            && slot.key[1].load(Ordering::Relaxed) == key[1]
    }

    /// The MAC of `ip`, if known.
    #[inline]
    pub fn get(&self, ip: IpAddr) -> Option<MacAddr> {
        let key = neighbor_key(ip);
        for i in Self::probe(key) {
            let slot = &self.slots[i];
            match slot.state.load(Ordering::Acquire) {
                0 => return None,
                // Being learned this instant: not known yet.
                CLAIMING => continue,
                v if Self::matches(slot, key) => {
                    let b = v.to_be_bytes();
                    return Some(MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]));
                }
                _ => {}
            }
        }
        None
    }

    /// Records `ip`'s MAC (ignored when the table is full around `ip`).
    pub fn set(&self, ip: IpAddr, mac: MacAddr) {
        let key = neighbor_key(ip);
        let m = mac.0;
        let v = u64::from_be_bytes([0, 1, m[0], m[1], m[2], m[3], m[4], m[5]]);
        for i in Self::probe(key) {
            let slot = &self.slots[i];
            loop {
                match slot.state.load(Ordering::Acquire) {
                    0 => {
                        if slot
                            .state
                            .compare_exchange(0, CLAIMING, Ordering::Acquire, Ordering::Acquire)
                            .is_err()
                        {
                            continue; // Another worker claimed it: look again.
                        }
                        slot.key[0].store(key[0], Ordering::Relaxed);
                        slot.key[1].store(key[1], Ordering::Relaxed);
                        slot.state.store(v, Ordering::Release);
                        self.generation.fetch_add(1, Ordering::AcqRel);
                        return;
                    }
                    // Another worker is writing this slot's address.
                    CLAIMING => std::hint::spin_loop(),
                    old if Self::matches(slot, key) => {
                        if old != v {
                            slot.state.store(v, Ordering::Release);
                            self.generation.fetch_add(1, Ordering::AcqRel);
                        }
                        return;
                    }
                    _ => break,
                }
            }
        }
    }
}
