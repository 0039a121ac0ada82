//! Connection tracking: the state stateful ACLs decide on (OVN's `ct()`,
//! as OVS's conntrack gives it to ovn-controller's flows).
//!
//! A connection lives in a zone (OVN gives each logical port its own) and
//! is found by either direction's 5-tuple: both keys map to one entry.
//! The table is sharded by a hash that is the same for both directions,
//! so a connection's packets meet in one shard whichever worker sees them,
//! and workers only contend when they touch the same shard at once (no
//! global lock; a spin lock per shard, the `lock` module, taken once per
//! tracked packet).
//! Entries are created only by [`Conntrack::commit`] (OVN's `ct_commit`,
//! after an ACL allowed a new connection); [`Conntrack::track`] finds a
//! packet's connection, advances its state ([`state`]) and says what it is
//! ([`CtState`]: new, established, related, reply, invalid).
//!
//! Expiry costs nothing per packet: an entry's deadline is checked when it
//! is found, and each commit advances a clock hand over two slots of its
//! shard, freeing expired ones (and sweeps further only when the table is
//! full). The table holds at most `limit` connections; a new one beyond is
//! refused, and the ACL stage drops it as `ct_full` while established ones
//! flow on.
//!
//! Layout: see the `index` module; a connection takes about 80 bytes
//! (`bytes_per_connection` is measured in the tests). A burst's misses
//! overlap through hints (the `hints` module).

mod hints;
mod index;
mod lock;
pub mod state;
pub mod tuple;

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

pub use hints::{Located, Probe};
pub use state::{TcpState, Timeouts};
pub use tuple::{Packet, Seen, Tuple};

use hints::HINTS_MAX;
use index::{find, key_at, prefetch, REPLY};
use lock::{Guard, SpinLock};
use state::{tcp_open, tcp_step, TcpEvent};

/// OVS's `ct_state` bits, as OVN's `ct.*` fields read them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtState(pub u8);

impl CtState {
    pub const NEW: CtState = CtState(1 << 0);
    pub const EST: CtState = CtState(1 << 1);
    pub const REL: CtState = CtState(1 << 2);
    pub const RPL: CtState = CtState(1 << 3);
    pub const INV: CtState = CtState(1 << 4);
    pub const TRK: CtState = CtState(1 << 5);

    pub const fn with(self, o: CtState) -> CtState {
        CtState(self.0 | o.0)
    }

    pub const fn has(self, o: CtState) -> bool {
        self.0 & o.0 == o.0
    }
}

impl std::fmt::Display for CtState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (CtState::NEW, "new"),
            (CtState::EST, "est"),
            (CtState::REL, "rel"),
            (CtState::RPL, "rpl"),
            (CtState::INV, "inv"),
            (CtState::TRK, "trk"),
        ];
        if !self.has(CtState::TRK) {
            return f.write_str("-trk");
        }
        for (b, n) in names {
            if self.has(b) {
                write!(f, "+{n}")?;
            }
        }
        Ok(())
    }
}

/// A connection's key in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    zone: u16,
    tuple: Tuple,
}

/// Where an entry is, for updates after the ACLs decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    shard: u32,
    slot: u32,
}

/// Per-protocol state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp(TcpState),
    /// UDP, ICMP echo, anything else: seen a reply or not.
    Datagram,
}

/// One connection: one cache line, with its original key (the index
/// keeps none of its own).
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Entry {
    orig: Key,
    proto: Proto,
    /// Deadline, in seconds since the table was made.
    expires: u32,
    /// Which directions sent FIN (TCP).
    fins: u8,
    replied: bool,
    /// OVN's `ct_mark.blocked`: a drop ACL matched it since.
    blocked: bool,
    /// The ACL generation that last allowed it (see the ACL stage).
    acl_gen: u32,
}

#[derive(Default)]
struct Shard {
    /// Both directions' keys of each entry, as `slot << 1 | REPLY?`.
    map: HashTable<u32>,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    hand: usize,
}

/// What [`Conntrack::track`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Track {
    pub state: CtState,
    pub blocked: bool,
    pub acl_gen: u32,
    /// The entry, when the packet belongs to one (including related).
    pub handle: Option<Handle>,
}

/// The table is full: a new connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A connection, as `switchyard conntrack` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnView {
    pub zone: u16,
    pub orig: Tuple,
    pub proto: Proto,
    pub replied: bool,
    pub blocked: bool,
    /// Seconds left.
    pub expires_in: u32,
}

/// Counters, summed over workers by being shared (written on connection
/// setup and teardown only, never per established packet).
#[derive(Debug, Default)]
pub struct CtStats {
    pub created: AtomicU64,
    pub expired: AtomicU64,
    pub refused_full: AtomicU64,
}

/// The connection table (see the module doc).
pub struct Conntrack {
    shards: Box<[SpinLock<Shard>]>,
    /// Each shard's `slots` buffer as last allocated (stored under the
    /// shard's lock when it moves): where a hinted slot lies, read without
    /// the lock, so possibly stale; only ever prefetched.
    bases: Box<[AtomicPtr<Option<Entry>>]>,
    /// By bits of a key's hash ([`Conntrack::hint_of`]): 1 + the slot (in
    /// the key's shard) the key was last found in, or 0. Any key may
    /// overwrite another's: a hint is verified before it is used.
    hints: Box<[AtomicU32]>,
    /// [`coarse_secs`] when the table was made.
    start: u64,
    limit: usize,
    len: AtomicUsize,
    pub timeouts: Timeouts,
    pub stats: CtStats,
    /// Keys the index's hash (random per table, as hashbrown's own).
    seed: [u64; 3],
}

impl std::fmt::Debug for Conntrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conntrack({} of {})", self.len(), self.limit)
    }
}

/// Seconds of CLOCK_MONOTONIC_COARSE.
pub(crate) fn coarse_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE
    // exists on every Linux this builds for, and on failure `ts` stays 0.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts);
    }
    ts.tv_sec as u64
}

/// Slots a commit examines for expired entries (the clock hand's step).
const SWEEP_STEP: usize = 2;
/// Slots examined before a commit into a full table is refused.
const SWEEP_FULL: usize = 256;

impl Conntrack {
    /// A table of at most `limit` connections in `shards` shards (rounded
    /// up to a power of two).
    pub fn new(limit: usize, shards: usize) -> Conntrack {
        // Powers of two, so a hash picks its shard and its hint with a mask.
        let shards = shards.max(1).next_power_of_two();
        Conntrack {
            shards: (0..shards)
                .map(|_| SpinLock::new(Shard::default()))
                .collect(),
            bases: (0..shards)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            hints: (0..limit.next_power_of_two().clamp(1, HINTS_MAX))
                .map(|_| AtomicU32::new(0))
                .collect(),
            start: coarse_secs(),
            limit,
            len: AtomicUsize::new(0),
            timeouts: Timeouts::default(),
            stats: CtStats::default(),
            seed: {
                let r = DefaultHashBuilder::default();
                [1u64, 2, 3].map(|i| r.hash_one(i))
            },
        }
    }

    /// Connections in the table (expired ones not yet freed included).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The table's clock, in seconds: the kernel's coarse monotonic clock
    /// (a vDSO read of the last tick, no syscall and no TSC conversion;
    /// timeouts are whole seconds anyway).
    #[inline]
    pub fn now(&self) -> u32 {
        coarse_secs().saturating_sub(self.start) as u32
    }

    /// The shard of a connection: the same for both directions.
    #[inline(always)]
    fn shard_of(&self, zone: u16, t: &Tuple) -> usize {
        index::symmetric(zone, t) as usize & (self.shards.len() - 1)
    }

    #[inline(always)]
    fn lock(&self, i: usize) -> Guard<'_, Shard> {
        self.shards[i].lock()
    }

    #[inline(always)]
    fn hash(&self, k: &Key) -> u64 {
        index::hash(&self.seed, k)
    }

    /// Adds index value `v` (its entry already in its slot) under `hash`.
    fn index(&self, shard: &mut Shard, hash: u64, v: u32) {
        let Shard { map, slots, .. } = shard;
        map.insert_unique(hash, v, |&v| key_at(slots, v).map_or(0, |k| self.hash(&k)));
    }

    /// Finds `p`'s connection in `zone` and, if `update`, advances its
    /// state; says what the packet is.
    pub fn track(&self, zone: u16, p: &Packet, now: u32, update: bool) -> Track {
        match self.locate(zone, p) {
            Some(at) => self.track_at(&at, p, now, update),
            None => untracked(CtState::INV),
        }
    }

    /// [`Conntrack::track`] of `p` by its key `at` ([`Conntrack::locate`]
    /// of `p`, in the zone to track it in).
    pub fn track_at(&self, at: &Located, p: &Packet, now: u32, update: bool) -> Track {
        debug_assert_eq!(self.locate(at.zone(), p).as_ref(), Some(at));
        let mut guard = self.lock(at.shard);
        let found = self.find_hinted(&guard, at);
        self.step(&mut guard, at.shard, found, p, now, update)
    }

    /// [`Conntrack::track`] (updating) in two zones at once, as the ACL
    /// stages' re-check of a cached verdict needs (the ingress port's zone,
    /// located in `a`, then the egress port's, `zone_b`): whether the
    /// packet is `ok` in both, the second tracked only if it is in the
    /// first, as two calls would. Both entries are found first and the
    /// second is prefetched, so its cache miss overlaps the first's work
    /// instead of following it. The two shards are locked in index order.
    pub fn track2(
        &self,
        a: &Located,
        zone_b: u16,
        p: &Packet,
        now: u32,
        ok: impl Fn(&Track) -> bool,
    ) -> bool {
        let one = |at: &Located| ok(&self.track_at(at, p, now, true));
        let Some(b) = self.locate(zone_b, p) else {
            return one(a) && ok(&untracked(CtState::INV));
        };
        if a.shard == b.shard {
            return one(a) && one(&b);
        }
        self.prefetch_hint(b.probe());
        self.prefetch(b.probe());
        let (lo, hi) = (a.shard.min(b.shard), a.shard.max(b.shard));
        let mut g_lo = self.lock(lo);
        let mut g_hi = self.lock(hi);
        let (sa, sb) = if a.shard == lo {
            (&mut *g_lo, &mut *g_hi)
        } else {
            (&mut *g_hi, &mut *g_lo)
        };
        let fa = self.find_hinted(sa, a);
        let fb = self.find_hinted(sb, &b);
        if let Some(v) = fb {
            prefetch(sb.slots.get((v >> 1) as usize));
        }
        ok(&self.step(sa, a.shard, fa, p, now, true))
            && ok(&self.step(sb, b.shard, fb, p, now, true))
    }

    /// The key `p` is tracked by in `zone`, with its shard and its hash
    /// (None: untrackable).
    #[inline(always)]
    pub fn locate(&self, zone: u16, p: &Packet) -> Option<Located> {
        let key = self.key_of(zone, p)?;
        Some(Located {
            shard: self.shard_of(zone, &key.tuple),
            hash: self.hash(&key),
            key,
        })
    }

    /// The key `p` is tracked by in `zone` (None: untrackable).
    #[inline(always)]
    fn key_of(&self, zone: u16, p: &Packet) -> Option<Key> {
        match p.seen {
            Seen::Untrackable => None,
            Seen::IcmpError { quoted } => Some(Key {
                zone,
                tuple: quoted,
            }),
            _ => Some(Key {
                zone,
                tuple: p.tuple,
            }),
        }
    }

    /// What `p` is, given the index value `found` of its key in shard `si`
    /// (locked), advancing the entry's state if `update`.
    #[inline(always)]
    fn step(
        &self,
        shard: &mut Shard,
        si: usize,
        found: Option<u32>,
        p: &Packet,
        now: u32,
        update: bool,
    ) -> Track {
        let Some(v) = found else {
            return untracked(match p.seen {
                Seen::IcmpError { .. } | Seen::Echo(false) => CtState::INV,
                Seen::Tcp(f) if tcp_open(f).is_none() => CtState::INV,
                _ => CtState::NEW,
            });
        };
        let slot = v >> 1;
        let Some(e) = shard.slots[slot as usize].as_mut() else {
            return untracked(CtState::INV);
        };
        let handle = Some(Handle {
            shard: si as u32,
            slot,
        });
        if e.expires < now {
            if update {
                self.remove(shard, slot);
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
            }
            return untracked(CtState::NEW);
        }
        if let Seen::IcmpError { .. } = p.seen {
            return Track {
                state: CtState::REL.with(CtState::TRK),
                blocked: e.blocked,
                acl_gen: e.acl_gen,
                handle,
            };
        }
        let reply = v & REPLY != 0;
        let t = &self.timeouts;
        let mut e2 = *e;
        let timeout = match (e2.proto, p.seen) {
            (Proto::Tcp(s), Seen::Tcp(f)) => match tcp_step(s, f, reply, &mut e2.fins) {
                TcpEvent::Invalid => return untracked(CtState::INV),
                TcpEvent::Reopen => {
                    if update {
                        self.remove(shard, slot);
                    }
                    return untracked(CtState::NEW);
                }
                TcpEvent::To(n) => {
                    e2.proto = Proto::Tcp(n);
                    t.tcp(n)
                }
            },
            (_, Seen::Echo(_)) => {
                if reply {
                    t.icmp_reply
                } else {
                    t.icmp_first
                }
            }
            (_, Seen::Udp) if e2.replied || reply => t.udp_multiple,
            (_, Seen::Udp) => t.udp_first,
            _ if e2.replied || reply => t.other_multiple,
            _ => t.other_first,
        };
        e2.replied |= reply;
        e2.expires = now.saturating_add(timeout);
        let state = if e2.replied {
            CtState::EST
        } else {
            CtState::NEW
        };
        let state = if reply {
            state.with(CtState::RPL)
        } else {
            state
        };
        // Written only when it changed (an established flow's entry changes
        // about once a second, when its deadline moves): a clean line is not
        // written back, and the next shard lock has no store to wait for.
        let changed = e2.expires != e.expires
            || e2.proto != e.proto
            || e2.fins != e.fins
            || e2.replied != e.replied;
        if update && changed {
            *e = e2;
        }
        Track {
            state: state.with(CtState::TRK),
            blocked: e2.blocked,
            acl_gen: e2.acl_gen,
            handle,
        }
    }

    /// Creates `p`'s connection in `zone` (OVN's `ct_commit`), allowed by
    /// ACL generation `acl_gen`; a no-op if it exists.
    pub fn commit(&self, zone: u16, p: &Packet, now: u32, acl_gen: u32) -> Result<(), Full> {
        let proto = match p.seen {
            Seen::Tcp(f) => match tcp_open(f) {
                Some(s) => Proto::Tcp(s),
                None => return Ok(()),
            },
            Seen::Udp | Seen::Echo(true) | Seen::Other => Proto::Datagram,
            Seen::Echo(false) | Seen::IcmpError { .. } | Seen::Untrackable => return Ok(()),
        };
        let key = Key {
            zone,
            tuple: p.tuple,
        };
        let si = self.shard_of(zone, &key.tuple);
        let hash = self.hash(&key);
        let mut guard = self.lock(si);
        let shard = &mut *guard;
        if find(shard, hash, &key).is_some() {
            return Ok(());
        }
        self.sweep(shard, now, SWEEP_STEP);
        if self.len() >= self.limit {
            self.sweep(shard, now, SWEEP_FULL);
            if self.len() >= self.limit {
                self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
                return Err(Full);
            }
        }
        let t = &self.timeouts;
        let timeout = match proto {
            Proto::Tcp(s) => t.tcp(s),
            Proto::Datagram if matches!(p.seen, Seen::Echo(_)) => t.icmp_first,
            Proto::Datagram if matches!(p.seen, Seen::Udp) => t.udp_first,
            Proto::Datagram => t.other_first,
        };
        let e = Entry {
            orig: key,
            proto,
            expires: now.saturating_add(timeout),
            fins: 0,
            replied: false,
            blocked: false,
            acl_gen,
        };
        let slot = match shard.free.pop() {
            Some(s) => {
                shard.slots[s as usize] = Some(e);
                s
            }
            None => {
                shard.slots.push(Some(e));
                let base = shard.slots.as_mut_ptr();
                if self.bases[si].load(Ordering::Relaxed) != base {
                    self.bases[si].store(base, Ordering::Relaxed);
                }
                (shard.slots.len() - 1) as u32
            }
        };
        self.index(shard, hash, slot << 1);
        self.hint_of(hash).store(slot + 1, Ordering::Relaxed);
        let rev = Key {
            zone,
            tuple: key.tuple.reverse(),
        };
        if rev != key {
            let rev_hash = self.hash(&rev);
            self.index(shard, rev_hash, slot << 1 | REPLY);
            self.hint_of(rev_hash).store(slot + 1, Ordering::Relaxed);
        }
        self.len.fetch_add(1, Ordering::Relaxed);
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sets an entry's blocked mark and the ACL generation that decided.
    pub fn mark(&self, h: Handle, blocked: bool, acl_gen: u32) {
        let mut shard = self.lock(h.shard as usize);
        if let Some(Some(e)) = shard.slots.get_mut(h.slot as usize) {
            e.blocked = blocked;
            e.acl_gen = acl_gen;
        }
    }

    fn remove(&self, shard: &mut Shard, slot: u32) {
        if let Some(e) = shard.slots[slot as usize].take() {
            let rev = Key {
                zone: e.orig.zone,
                tuple: e.orig.tuple.reverse(),
            };
            for (k, v) in [(e.orig, slot << 1), (rev, slot << 1 | REPLY)] {
                if let Ok(o) = shard.map.find_entry(self.hash(&k), |&x| x == v) {
                    o.remove();
                }
            }
            shard.free.push(slot);
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Advances the shard's clock hand over `n` slots, freeing expired
    /// entries.
    fn sweep(&self, shard: &mut Shard, now: u32, n: usize) {
        let len = shard.slots.len();
        for _ in 0..n.min(len) {
            shard.hand = (shard.hand + 1) % len;
            let hand = shard.hand;
            if shard.slots[hand].is_some_and(|e| e.expires < now) {
                self.remove(shard, hand as u32);
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The connections (of `zone`, or all), unexpired.
    pub fn dump(&self, zone: Option<u16>) -> Vec<ConnView> {
        let now = self.now();
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            let shard = self.lock(i);
            for e in shard.slots.iter().flatten() {
                if e.expires >= now && zone.is_none_or(|z| z == e.orig.zone) {
                    out.push(ConnView {
                        zone: e.orig.zone,
                        orig: e.orig.tuple,
                        proto: e.proto,
                        replied: e.replied,
                        blocked: e.blocked,
                        expires_in: e.expires - now,
                    });
                }
            }
        }
        out
    }

    /// Removes the connections of `zone` (or all); returns how many.
    pub fn flush(&self, zone: Option<u16>) -> usize {
        let mut n = 0;
        for i in 0..self.shards.len() {
            let mut shard = self.lock(i);
            for s in 0..shard.slots.len() {
                if shard.slots[s].is_some_and(|e| zone.is_none_or(|z| z == e.orig.zone)) {
                    self.remove(&mut shard, s as u32);
                    n += 1;
                }
            }
        }
        n
    }
}

/// A tracked packet that belongs to no entry, or is invalid.
fn untracked(s: CtState) -> Track {
    Track {
        state: s.with(CtState::TRK),
        blocked: false,
        acl_gen: 0,
        handle: None,
    }
}

#[cfg(test)]
mod tests;
