//! The per-worker exact-match flow cache.
//!
//! In front of the full pipeline, like OVS's EMC: a direct-mapped array of
//! entries keyed by exactly the packet fields the L2 pipeline consults
//! (ingress port, Ethernet addresses and type, IP source and destination),
//! in 2-way sets so that two hot flows sharing a set do not evict each other;
//! a miss fills a free or stale way, but evicts a live one only now and then,
//! so more flows than entries do not thrash the cache. Entries are tagged with the table generation they were computed under,
//! so publishing new tables invalidates the whole cache at once, without
//! touching it. Only decisions that depend on nothing beyond the key are
//! cached: ARP, ND and DHCP-discover packets always take the full pipeline.

use crate::pipeline::Verdict;

/// The fields a cached decision depends on, packed into 6 words.
#[derive(Clone, Copy, Debug, Default, Eq)]
pub struct FlowKey(pub [u64; 6]);

impl PartialEq for FlowKey {
    /// Branch-free word compare (a derived `==` calls `bcmp`).
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        ((a[0] ^ b[0])
            | (a[1] ^ b[1])
            | (a[2] ^ b[2])
            | (a[3] ^ b[3])
            | (a[4] ^ b[4])
            | (a[5] ^ b[5]))
            == 0
    }
}

impl FlowKey {
    /// A fast hash of the key: the words folded with rotations (and the
    /// high half onto the low), then one 64x64->128-bit multiply whose
    /// halves, xored, mix every input bit into every output bit (the
    /// "folded multiply" of foldhash). On the benchmark's flows it spreads
    /// keys over sets as evenly as random placement does.
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let w = &self.0;
        let x = w[0]
            ^ w[1].rotate_left(13)
            ^ w[2].rotate_left(27)
            ^ w[3].rotate_left(41)
            ^ w[4].rotate_left(7)
            ^ w[5].rotate_left(53);
        let x = x ^ (x >> 32);
        let m = u128::from(x) * u128::from(K);
        (m >> 64) as u64 ^ m as u64
    }
}

/// A miss evicts a live entry only once in this many misses (a power of
/// two; counted over the whole cache), as OVS's EMC inserts with a
/// probability: when more flows cycle through a set than it has ways, the
/// ways keep two of them instead of each miss evicting the flow that hits
/// next.
const EVICT_ONE_IN: u64 = 16;

/// One way of a set: a cache line.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Entry {
    key: FlowKey,
    generation: u64,
    verdict: Verdict,
}

/// A direct-mapped cache of pipeline verdicts.
pub struct FlowCache {
    entries: Box<[Entry]>,
    mask: usize,
    pub hits: u64,
    pub misses: u64,
}

impl FlowCache {
    /// A cache of `size` entries (rounded up to a power of two, at least 2),
    /// organised as 2-way sets.
    pub fn new(size: usize) -> Self {
        let size = size.max(2).next_power_of_two();
        FlowCache {
            entries: vec![
                Entry {
                    key: FlowKey::default(),
                    generation: 0,
                    verdict: Verdict::Drop(crate::drop::DropReason::NoBinding),
                };
                size
            ]
            .into_boxed_slice(),
            mask: size / 2 - 1,
            hits: 0,
            misses: 0,
        }
    }

    /// Index of the first way of `hash`'s set.
    #[inline(always)]
    fn set(&self, hash: u64) -> usize {
        (hash as usize & self.mask) * 2
    }

    /// Starts loading the set of `hash` into the CPU cache, so that a
    /// lookup a few packets later does not stall on memory.
    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: prefetching is a hint; both ways are inside the table.
            unsafe {
                let p = self.entries.as_ptr().add(self.set(hash));
                _mm_prefetch(p as *const i8, _MM_HINT_T0);
                _mm_prefetch(p.add(1) as *const i8, _MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    /// The cached verdict for `key` under table generation `generation`.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, hash: u64, generation: u64) -> Option<Verdict> {
        let set = self.set(hash);
        for e in &self.entries[set..set + 2] {
            if e.generation == generation && e.key == *key {
                self.hits += 1;
                return Some(e.verdict);
            }
        }
        self.misses += 1;
        None
    }

    /// Remembers `verdict` for `key`: into a free or stale way of its set,
    /// else over a way picked by the hash.
    #[inline]
    pub fn insert(&mut self, key: FlowKey, hash: u64, generation: u64, verdict: Verdict) {
        let set = self.set(hash);
        let new = Entry {
            key,
            generation,
            verdict,
        };
        let ways = &mut self.entries[set..set + 2];
        let way = if ways[0].generation != generation || ways[0].key == key {
            0
        } else if ways[1].generation != generation {
            1
        } else if self.misses & (EVICT_ONE_IN - 1) == 0 {
            // Both ways live: evict one chosen by a hash bit. Unlike LRU,
            // this keeps most of a set's flows when three or more cycle
            // through it.
            (hash >> 47) as usize & 1
        } else {
            return;
        };
        ways[way] = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_invalidates() {
        let mut c = FlowCache::new(100);
        let k = FlowKey([1, 2, 3, 4, 5, 6]);
        let h = k.hash();
        assert!(c.lookup(&k, h, 1).is_none());
        c.insert(k, h, 1, Verdict::Output(3));
        assert_eq!(c.lookup(&k, h, 1), Some(Verdict::Output(3)));
        assert!(c.lookup(&k, h, 2).is_none());
        let other = FlowKey([1, 2, 3, 4, 5, 7]);
        assert!(c.lookup(&other, h, 1).is_none());
        assert_eq!((c.hits, c.misses), (1, 3));
    }

    #[test]
    fn live_ways_are_evicted_only_now_and_then() {
        // One set of two ways, three flows cycling through it: evicting on
        // every miss would keep one of them cached (the third always
        // evicting the first); two of them stay.
        let mut c = FlowCache::new(2);
        let keys: Vec<FlowKey> = (0..3).map(|i| FlowKey([i, 0, 0, 0, 0, 0])).collect();
        let rounds = 4 * EVICT_ONE_IN;
        for _ in 0..rounds {
            for (i, k) in keys.iter().enumerate() {
                if c.lookup(k, 0, 1).is_none() {
                    c.insert(*k, 0, 1, Verdict::Output(i as u16));
                }
            }
        }
        assert!(
            c.hits * 4 > rounds * 7,
            "{} hits in {rounds} rounds",
            c.hits
        );
    }
}
