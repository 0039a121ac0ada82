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
//!
//! Also here, the two hashes of a key: [`symmetric`] picks the shard (the
//! same for both directions, so they meet under one lock) and [`hash`]
//! places the key in that shard's index.

use super::{Entry, Key, Shard, Tuple};

/// An index value's bit that says its key is the entry's reverse (the
/// rest is the slot, shifted left by one).
pub(super) const REPLY: u32 = 1;

/// Asks the CPU to start loading an entry's line (a hint: nothing waits).
#[inline(always)]
pub(super) fn prefetch(e: Option<&Option<Entry>>) {
    if let Some(e) = e {
        prefetch_line(std::ptr::from_ref(e));
    }
}

/// Asks the CPU to start loading the line at `line`, which may be any
/// address: nothing dereferences it.
#[inline(always)]
pub(super) fn prefetch_line<T>(line: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHh is a hint that reads nothing into the program and
    // never faults, whatever the address (Intel SDM vol. 2B, PREFETCHh: "a
    // hint [that] does not affect program behavior"; AMD APM vol. 3, the
    // same): a stale, freed or unmapped address only wastes the prefetch.
    // The pointer is never dereferenced, so it needs no validity.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
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

/// Whether index value `v` stands for `key`.
#[inline(always)]
fn is(slots: &[Option<Entry>], v: u32, key: &Key) -> bool {
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
}

/// The index value of `key` (whose hash is `hash`) in `shard`.
#[inline]
pub(super) fn find(shard: &Shard, hash: u64, key: &Key) -> Option<u32> {
    shard.map.find(hash, |&v| is(&shard.slots, v, key)).copied()
}

/// The index value of `key` if it is slot `slot`'s key (or its reverse),
/// without the index: what [`find`] returns then, since a key is in one
/// entry at most (a commit adds none that is already found) and an entry's
/// keys stay in the index as long as it is in its slot. The original
/// direction is compared first: an entry whose key is its own reverse is
/// indexed by that one value.
#[inline(always)]
pub(super) fn find_at(slots: &[Option<Entry>], slot: u32, key: &Key) -> Option<u32> {
    let v = slot << 1;
    if is(slots, v, key) {
        Some(v)
    } else if is(slots, v | REPLY, key) {
        Some(v | REPLY)
    } else {
        None
    }
}

/// A connection's hash for its shard: the same for both directions.
pub(super) fn symmetric(zone: u16, t: &Tuple) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let end = |a: &[u8; 16], p: u16| {
        let (lo, hi) = a.split_at(8);
        let w = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        (w(lo) ^ w(hi).rotate_left(29) ^ u64::from(p) << 17).wrapping_mul(K)
    };
    // Symmetric: the two endpoints' hashes are summed.
    let x = end(&t.src, t.sport).wrapping_add(end(&t.dst, t.dport))
        ^ u64::from(zone) << 8
        ^ u64::from(t.proto);
    let m = u128::from(x) * u128::from(K);
    (m >> 64) as u64 ^ m as u64
}

/// A key's hash in the index: foldhash's "folded multiply" (a 64x64
/// -> 128-bit product, its halves xored) over pairs of the key's words
/// with the seed, about 25 instructions where hashing the derived
/// `Hash` field by field took about 70.
#[inline(always)]
pub(super) fn hash(seed: &[u64; 3], k: &Key) -> u64 {
    const K: [u64; 3] = [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
    ];
    let mul = |x: u64, y: u64| {
        let m = u128::from(x) * u128::from(y);
        (m >> 64) as u64 ^ m as u64
    };
    let t = &k.tuple;
    let w = |a: &[u8; 16]| {
        let (lo, hi) = a.split_at(8);
        let w = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        (w(lo), w(hi))
    };
    let ((s0, s1), (d0, d1)) = (w(&t.src), w(&t.dst));
    let rest = u64::from(t.sport)
        | u64::from(t.dport) << 16
        | u64::from(k.zone) << 32
        | u64::from(t.proto) << 48
        | u64::from(t.v6) << 56;
    let [r0, r1, r2] = *seed;
    let a = mul(s0 ^ r0, d0 ^ K[0]);
    let b = mul(s1 ^ r1, d1 ^ K[1]);
    mul(rest ^ r2, a ^ b ^ K[2])
}
