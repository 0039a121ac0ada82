//! The per-worker exact-match flow cache.
//!
//! In front of the full pipeline, like OVS's EMC: a direct-mapped array of
//! entries keyed by exactly the packet fields the L2 pipeline consults
//! (ingress port, Ethernet addresses and type, IP source and destination).
//! Entries are tagged with the table generation they were computed under,
//! so publishing new tables invalidates the whole cache at once, without
//! touching it. Only decisions that depend on nothing beyond the key are
//! cached: ARP, ND and DHCP-discover packets always take the full pipeline.

use crate::pipeline::Verdict;

/// The fields a cached decision depends on, packed into 6 words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKey(pub [u64; 6]);

impl FlowKey {
    /// A fast hash of the key (multiply-rotate over the words).
    #[inline]
    pub fn hash(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = 0u64;
        for w in self.0 {
            h = (h ^ w).wrapping_mul(K).rotate_left(29);
        }
        h ^ (h >> 32)
    }
}

#[derive(Clone, Copy)]
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
    /// A cache of `size` entries (rounded up to a power of two).
    pub fn new(size: usize) -> Self {
        let size = size.max(1).next_power_of_two();
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
            mask: size - 1,
            hits: 0,
            misses: 0,
        }
    }

    /// The cached verdict for `key` under table generation `generation`.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, hash: u64, generation: u64) -> Option<Verdict> {
        let e = &self.entries[hash as usize & self.mask];
        if e.generation == generation && e.key == *key {
            self.hits += 1;
            Some(e.verdict)
        } else {
            self.misses += 1;
            None
        }
    }

    /// Remembers `verdict` for `key` (replacing whatever was in its slot).
    #[inline]
    pub fn insert(&mut self, key: FlowKey, hash: u64, generation: u64, verdict: Verdict) {
        self.entries[hash as usize & self.mask] = Entry {
            key,
            generation,
            verdict,
        };
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
}
