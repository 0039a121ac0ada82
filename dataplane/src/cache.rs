//! The per-worker exact-match flow cache.
//!
//! In front of the full pipeline, like OVS's EMC: a set-associative array
//! of entries keyed by exactly the fields a datapath's stages read (the key
//! is built in [`crate::pipeline::fields`] from their declarations), in
//! 4-way sets with a word of 16-bit tags each, so that flows sharing a set
//! do not evict each other and a lookup reads one line of entries. A miss
//! fills a stale way, but evicts a live one only now and then, so more
//! flows than entries do not thrash the cache. Entries are tagged with the
//! cache's epoch, which [`FlowCache::invalidate`] moves on when new tables
//! are published: the whole cache is invalidated at once, without touching
//! it. Only decisions that depend on nothing beyond the key are cached: the
//! pipeline checks what its stages read before it inserts.

use crate::pipeline::Verdict;

/// The fields a cached decision depends on, packed into six words (see
/// [`crate::pipeline::fields::flow_key`] for the layout).
#[derive(Clone, Copy, Debug, Default, Eq)]
pub struct FlowKey(pub [u64; 6]);

impl PartialEq for FlowKey {
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl FlowKey {
    /// Whether the key is `words` (a cache entry's, compared where they lie
    /// rather than copied into a key first): a branch-free word compare,
    /// where a derived `==` calls `bcmp`.
    #[inline(always)]
    fn matches(&self, words: &[u64; 6]) -> bool {
        let (a, b) = (&self.0, words);
        ((a[0] ^ b[0])
            | (a[1] ^ b[1])
            | (a[2] ^ b[2])
            | (a[3] ^ b[3])
            | (a[4] ^ b[4])
            | (a[5] ^ b[5]))
            == 0
    }

    /// A fast hash of the key: the words folded with rotations (and the
    /// high half onto the low), then one 64x64->128-bit multiply whose
    /// halves, xored, mix every input bit into every output bit (the
    /// "folded multiply" of foldhash).
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

/// Ways per set.
const WAYS: usize = 4;

/// A miss evicts a live entry only once in this many misses (a power of
/// two; counted over the whole cache), as OVS's EMC inserts with a
/// probability: when more flows cycle through a set than it has ways, the
/// ways keep most of them instead of each miss evicting a flow that hits
/// next.
const EVICT_ONE_IN: u64 = 16;

/// 1 in every 16-bit lane of a set's tag word.
const LANES: u64 = 0x0001_0001_0001_0001;

/// One way of a set: a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Entry {
    key: [u64; 6],
    /// The [`FlowCache`] epoch the verdict was computed in (0: never).
    epoch: u16,
    /// Conntrack checks the verdict holds under (see
    /// [`FlowCache::lookup_with`]; 0: none).
    ct: u16,
    verdict: Verdict,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);

impl Entry {
    #[inline(always)]
    fn holds(&self, key: &FlowKey, epoch: u16) -> bool {
        self.epoch == epoch && key.matches(&self.key)
    }
}

/// A set-associative cache of pipeline verdicts.
///
/// Each set has four entries of one cache line and a word of 16-bit
/// tags (hash bits the set index does not use), one per way. A lookup
/// compares the tags of all ways at once in that word and then the key of
/// the way whose tag matches: one line of entries is read, and which way
/// holds a flow is not a branch to mispredict. The tag words (8 bytes per
/// set) stay in the CPU's nearest caches.
pub struct FlowCache {
    tags: Box<[u64]>,
    sets: Box<[[Entry; WAYS]]>,
    /// Sets - 1.
    mask: usize,
    /// Entries of other epochs are stale; starts at 1.
    epoch: u16,
    pub hits: u64,
    pub misses: u64,
}

impl FlowCache {
    /// A cache of `size` entries (rounded up to a power of two, at least
    /// one set), organised as 4-way sets.
    pub fn new(size: usize) -> Self {
        let size = size.max(WAYS).next_power_of_two();
        FlowCache {
            tags: vec![0; size / WAYS].into_boxed_slice(),
            sets: vec![
                [Entry {
                    key: [0; 6],
                    epoch: 0,
                    ct: 0,
                    verdict: Verdict::Drop(crate::drop::DropReason::NoBinding),
                }; WAYS];
                size / WAYS
            ]
            .into_boxed_slice(),
            mask: size / WAYS - 1,
            epoch: 1,
            hits: 0,
            misses: 0,
        }
    }

    /// Makes every entry stale (new tables were published). Once in 2^16
    /// calls the epoch wraps, and the entries are reset so that no old one
    /// can match again.
    pub fn invalidate(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            for set in self.sets.iter_mut() {
                for e in set {
                    e.epoch = 0;
                }
            }
            self.epoch = 1;
        }
    }

    /// The set of `hash`, and its tag.
    #[inline(always)]
    fn place(&self, hash: u64) -> (usize, u64) {
        (hash as usize & self.mask, hash >> 48)
    }

    /// The cached verdict for `key` (whose hash is `hash`).
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, hash: u64) -> Option<Verdict> {
        self.hit(key, hash, |e| e.verdict)
    }

    /// The cached verdict for `key`, and the conntrack checks it holds
    /// under: a stateful stage's verdict for a committed connection is
    /// cached with the checks that must pass again for each packet (the
    /// caller runs them; 0 for a verdict that holds as it is).
    #[inline]
    pub fn lookup_with(&mut self, key: &FlowKey, hash: u64) -> Option<(Verdict, u16)> {
        self.hit(key, hash, |e| (e.verdict, e.ct))
    }

    /// [`FlowCache::lookup_with`] for a first key that a second lookup
    /// follows when it misses: a hit counts, a miss does not (the second
    /// lookup counts it).
    #[inline]
    pub fn probe_with(&mut self, key: &FlowKey, hash: u64) -> Option<(Verdict, u16)> {
        let found = self.hit(key, hash, |e| (e.verdict, e.ct));
        if found.is_none() {
            self.misses -= 1;
        }
        found
    }

    /// What `read` takes from the entry holding `key`, counting the hit or
    /// the miss. Each lookup reads only what it returns: the plain one
    /// never touches the conntrack checks.
    #[inline(always)]
    fn hit<R>(&mut self, key: &FlowKey, hash: u64, read: impl Fn(&Entry) -> R) -> Option<R> {
        let (set, tag) = self.place(hash);
        // SAFETY: `place` masks the set index to below the number of sets,
        // which is the length of both `tags` and `sets`.
        let (tags, ways) = unsafe { (*self.tags.get_unchecked(set), self.sets.get_unchecked(set)) };
        // Lanes equal to the tag become zero; the classic zero-lane test
        // flags each (and may flag a lane above one: the key decides).
        let x = tags ^ tag.wrapping_mul(LANES);
        let mut candidates = x.wrapping_sub(LANES) & !x & (LANES << 15);
        while candidates != 0 {
            let way = candidates.trailing_zeros() as usize / 16;
            let e = &ways[way];
            if e.holds(key, self.epoch) {
                self.hits += 1;
                return Some(read(e));
            }
            candidates &= candidates - 1;
        }
        self.misses += 1;
        None
    }

    /// Remembers `verdict` for `key`: into a stale way of its set (or the
    /// one holding the key), else now and then over a way picked by the
    /// hash.
    #[inline]
    pub fn insert(&mut self, key: FlowKey, hash: u64, verdict: Verdict) {
        self.insert_with(key, hash, verdict, 0);
    }

    /// [`FlowCache::insert`], for a verdict that holds under conntrack
    /// checks `ct`.
    #[inline]
    pub fn insert_with(&mut self, key: FlowKey, hash: u64, verdict: Verdict, ct: u16) {
        let (set, tag) = self.place(hash);
        let epoch = self.epoch;
        let ways = &mut self.sets[set];
        let way = match ways
            .iter()
            .position(|e| e.epoch != epoch || key.matches(&e.key))
        {
            Some(w) => w,
            // Every way live. A way picked by the hash, not the least
            // recently used one, keeps most of a set's flows when more
            // than its ways cycle through it.
            None if self.misses & (EVICT_ONE_IN - 1) == 0 => (hash >> 40) as usize % WAYS,
            None => return,
        };
        ways[way] = Entry {
            key: key.0,
            epoch,
            ct,
            verdict,
        };
        let shift = 16 * way;
        self.tags[set] = (self.tags[set] & !(0xffff << shift)) | (tag << shift);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PortId;

    fn key(w0: u64, w5: u64) -> FlowKey {
        FlowKey([w0, 0, 0, 0, 0, w5])
    }

    #[test]
    fn invalidation_makes_entries_stale() {
        let mut c = FlowCache::new(100);
        let k = FlowKey([1, 2, 3, 4, 5, 6]);
        let h = k.hash();
        assert!(c.lookup(&k, h).is_none());
        c.insert(k, h, Verdict::Output(PortId(3)));
        assert_eq!(c.lookup(&k, h), Some(Verdict::Output(PortId(3))));
        let other = FlowKey([1, 2, 3, 4, 5, 7]);
        assert!(c.lookup(&other, h).is_none());
        c.invalidate();
        assert!(c.lookup(&k, h).is_none());
        assert_eq!((c.hits, c.misses), (1, 3));
    }

    #[test]
    fn a_wrapped_epoch_matches_no_old_entry() {
        let mut c = FlowCache::new(WAYS);
        let k = key(0, 0);
        c.insert(k, 0, Verdict::Output(PortId(1)));
        c.epoch = u16::MAX;
        c.invalidate();
        assert_eq!(c.epoch, 1);
        assert!(c.lookup(&k, 0).is_none());
    }

    #[test]
    fn live_ways_are_evicted_only_now_and_then() {
        // One set, five flows with the same hash cycling through it:
        // evicting on every miss would keep three of them cached (the fifth
        // always evicting the first); four stay.
        let mut c = FlowCache::new(WAYS);
        let keys: Vec<FlowKey> = (0..5).map(|i| key(i, 0)).collect();
        let rounds = 4 * EVICT_ONE_IN;
        for _ in 0..rounds {
            for (i, k) in keys.iter().enumerate() {
                match c.lookup(k, 0) {
                    Some(v) => assert_eq!(v, Verdict::Output(PortId(i as u16))),
                    None => c.insert(*k, 0, Verdict::Output(PortId(i as u16))),
                }
            }
        }
        assert!(
            c.hits * 2 > rounds * 7,
            "{} hits in {rounds} rounds",
            c.hits
        );
    }

    #[test]
    fn every_way_of_a_set_is_found_by_its_tag() {
        let mut c = FlowCache::new(4 * WAYS);
        // Keys of one set (same low hash bits), with distinct tags and two
        // equal ones.
        let hashes = [0x0001 << 48, 0x0002 << 48, 0x0001 << 48, 0xffff << 48];
        for (i, &h) in hashes.iter().enumerate() {
            c.insert(key(i as u64, 0), h, Verdict::Output(PortId(i as u16)));
        }
        for (i, &h) in hashes.iter().enumerate() {
            let k = key(i as u64, 0);
            assert_eq!(c.lookup(&k, h), Some(Verdict::Output(PortId(i as u16))));
            assert_eq!(c.lookup(&key(i as u64, 1), h), None);
        }
    }
}
