//! Hints, for bursts: a tracked packet's costly miss is its entry's line
//! (with 10k connections the traffic itself evicts entries and index
//! between uses: perf put 38 % of the full pipeline's time in the index
//! lookup, 70 % of that on the entry), and packet by packet those misses
//! follow one another. So the table keeps an array of hints, indexed by
//! bits of a key's hash, each the slot its key was last found in, and each
//! shard's slot array address. A worker probes every packet of a burst
//! ([`Probe`]: zone, shard and hash, from the frame's bytes for plain
//! IPv4 TCP/UDP, [`Conntrack::probe_v4`]), prefetches their hints
//! ([`Conntrack::prefetch_hint`]: the hints miss too), then the hinted
//! entries' lines ([`Conntrack::prefetch`]), without any lock, so the
//! burst's misses overlap; then it tracks the packets one by one, the
//! probe saving the key's hashing ([`Conntrack::locate_probed`],
//! [`Conntrack::track_at`]). A prefetch dereferences nothing, so a stale
//! hint or address costs a wasted line, never a wrong answer. Under the
//! lock a hint is only a guess: the hinted slot's key is compared in full,
//! and the index decides when it is not the packet's (a hint is written
//! only then, so a hit writes nothing); a verified hint also skips the
//! index probe. 2^18 hints (1 MB, fewer for a smaller `limit`): at 2^16,
//! one key in seven of 10k shared its hint with another and the two kept
//! overwriting it (slower, measured).
//!
//! Apart from the table's core (the parent module) because nothing of it
//! changes an answer: it only moves cache misses earlier.

use std::sync::atomic::{AtomicU32, Ordering};

use super::index::{find, find_at, prefetch_line};
use super::{tuple, Conntrack, Key, Packet, Shard, Tuple};

/// A packet's key in one zone with its shard and hash, computed once
/// ([`Conntrack::locate`]) for [`Conntrack::prefetch`] and
/// [`Conntrack::track_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    pub(super) key: Key,
    pub(super) shard: usize,
    pub(super) hash: u64,
}

impl Located {
    /// The zone the key is in.
    pub fn zone(&self) -> u16 {
        self.key.zone
    }

    /// What the prefetches need of it.
    pub fn probe(&self) -> Probe {
        Probe {
            zone: self.key.zone,
            shard: self.shard as u32,
            hash: self.hash,
        }
    }
}

/// A key's zone, shard and hash: what [`Conntrack::prefetch_hint`] and
/// [`Conntrack::prefetch`] read, and [`Conntrack::locate_probed`] takes
/// instead of hashing again (16 bytes, cheap to keep for a burst).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub(super) zone: u16,
    pub(super) shard: u32,
    pub(super) hash: u64,
}

/// The most hints a table keeps (4 bytes each): 1 MB (see the module doc
/// for why not fewer).
pub(super) const HINTS_MAX: usize = 1 << 18;

impl Conntrack {
    /// The hint of a key with hash `hash`.
    #[inline(always)]
    pub(super) fn hint_of(&self, hash: u64) -> &AtomicU32 {
        // Bits the index uses least (it takes the low ones for the
        // bucket, the top seven for the control byte).
        &self.hints[(hash >> 32) as usize & (self.hints.len() - 1)]
    }

    /// The first of a burst's two prefetch passes: asks the CPU to start
    /// loading `at`'s hint, so that [`Conntrack::prefetch`] of the same
    /// key, a burst later, finds it in the cache (the hints are evicted
    /// between uses too).
    #[inline]
    pub fn prefetch_hint(&self, at: Probe) {
        prefetch_line(std::ptr::from_ref(self.hint_of(at.hash)));
    }

    /// Asks the CPU to start loading the line of `at`'s entry, as its hint
    /// names it: without locking, so that a burst's misses overlap. Reads
    /// only the hint and the shard's slot address.
    #[inline]
    pub fn prefetch(&self, at: Probe) {
        let hint = self.hint_of(at.hash).load(Ordering::Relaxed);
        if hint != 0 {
            let base = self.bases[at.shard as usize].load(Ordering::Relaxed);
            // Computed without dereferencing (the buffer may have moved or
            // be gone, the slot may be another key's, or past the end):
            // only the prefetch instruction sees the address.
            prefetch_line(base.wrapping_add(hint as usize - 1).cast_const());
        }
    }

    /// The index value of `at`'s key in `shard` (its shard, locked): the
    /// hinted slot's if its key is the one, else the index's, which the
    /// hint then names.
    #[inline(always)]
    pub(super) fn find_hinted(&self, shard: &Shard, at: &Located) -> Option<u32> {
        let hint = self.hint_of(at.hash);
        let h = hint.load(Ordering::Relaxed);
        if let Some(v) = h
            .checked_sub(1)
            .and_then(|s| find_at(&shard.slots, s, &at.key))
        {
            return Some(v);
        }
        let found = find(shard, at.hash, &at.key);
        if let Some(v) = found {
            hint.store((v >> 1) + 1, Ordering::Relaxed);
        }
        found
    }

    /// The probe of the key of a TCP or UDP (`proto`) packet over IPv4 in
    /// `zone`, from its addresses and ports as they lie in the frame
    /// (network order): [`Located::probe`] of what [`Conntrack::locate`]
    /// finds for it, computed from registers without building a
    /// [`Packet`] (a burst's pre-pass runs it on every packet).
    #[inline(always)]
    pub fn probe_v4(
        &self,
        zone: u16,
        src: [u8; 4],
        dst: [u8; 4],
        ports: [u8; 4],
        proto: u8,
    ) -> Probe {
        let key = Key {
            zone,
            tuple: Tuple {
                src: tuple::v4_mapped(src),
                dst: tuple::v4_mapped(dst),
                sport: u16::from_be_bytes([ports[0], ports[1]]),
                dport: u16::from_be_bytes([ports[2], ports[3]]),
                proto,
                v6: false,
            },
        };
        Probe {
            zone,
            shard: self.shard_of(zone, &key.tuple) as u32,
            hash: self.hash(&key),
        }
    }

    /// [`Conntrack::locate`] of `p` in `zone`, whose key's `probe` a
    /// burst's pre-pass computed from the same frame
    /// ([`Conntrack::probe_v4`], or [`Located::probe`]): the key without
    /// hashing it again. A probe of another zone is not used.
    #[inline(always)]
    pub fn locate_probed(&self, zone: u16, p: &Packet, probe: Probe) -> Option<Located> {
        if probe.zone != zone {
            return self.locate(zone, p);
        }
        let key = self.key_of(zone, p)?;
        let at = Located {
            key,
            shard: probe.shard as usize,
            hash: probe.hash,
        };
        debug_assert_eq!(self.locate(zone, p), Some(at), "a probe of another packet");
        Some(at)
    }
}
