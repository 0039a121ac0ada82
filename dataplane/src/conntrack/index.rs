//! The shards' index: how a key finds its connection with one probe of a
//! small table and one cache line of entry.
//!
//! The index ([`hashbrown::HashTable`]) holds only a `u32` per direction
//! (the entry's slot, and whether the key is the entry's reverse); the key
//! it stands for is the entry's own, compared there. So the index (5 bytes
//! a key with its control byte) stays in the core's cache at 10k
//! connections, and the entry (64 bytes, aligned to a line) is the one
//! line a tracked packet loads from memory. Before, the index held both
//! 40-byte keys beside the slot and the entry straddled two lines: two or
//! three misses per lookup, and at 10k connections the index alone missed.

use super::{Entry, Key, Shard};

/// An index value's bit that says its key is the entry's reverse (the
/// rest is the slot, shifted left by one).
pub(super) const REPLY: u32 = 1;

/// Asks the CPU to start loading an entry's line (a hint: nothing waits).
#[inline(always)]
pub(super) fn prefetch(e: Option<&Option<Entry>>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(e) = e {
        // SAFETY: a prefetch reads nothing and cannot fault; `e` is a
        // valid reference anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (e as *const Option<Entry>).cast(),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = e;
}

/// The key index value `v` stands for: its entry's, or the reverse.
pub(super) fn key_at(slots: &[Option<Entry>], v: u32) -> Option<Key> {
    let e = slots.get((v >> 1) as usize)?.as_ref()?;
    Some(if v & REPLY == 0 {
        e.orig
    } else {
        Key {
            zone: e.orig.zone,
            tuple: e.orig.tuple.reverse(),
        }
    })
}

/// The index value of `key` (whose hash is `hash`) in `shard`.
#[inline]
pub(super) fn find(shard: &Shard, hash: u64, key: &Key) -> Option<u32> {
    let slots = &shard.slots;
    let is = |&v: &u32| {
        let Some(Some(e)) = slots.get((v >> 1) as usize) else {
            return false;
        };
        let (o, k) = (&e.orig, key);
        o.zone == k.zone
            && if v & REPLY == 0 {
                o.tuple == k.tuple
            } else {
                o.tuple.src == k.tuple.dst
                    && o.tuple.dst == k.tuple.src
                    && o.tuple.sport == k.tuple.dport
                    && o.tuple.dport == k.tuple.sport
                    && o.tuple.proto == k.tuple.proto
                    && o.tuple.v6 == k.tuple.v6
            }
    };
    shard.map.find(hash, is).copied()
}
