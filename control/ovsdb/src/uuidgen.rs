//! Random (version 4) UUIDs for row ids, row versions and transaction ids.
//!
//! A large transaction creates two UUIDs per row; asking the kernel for randomness each time
//! (as `Uuid::new_v4` does) costs a system call per UUID. Row ids only need to be unique, not
//! secret, so each thread runs a xoshiro256** generator seeded once from the OS.

use std::cell::Cell;

use uuid::Uuid;

thread_local! {
    static STATE: Cell<[u64; 4]> = Cell::new(seed());
}

fn seed() -> [u64; 4] {
    let a = Uuid::new_v4().as_u64_pair();
    let b = Uuid::new_v4().as_u64_pair();
    [a.0, a.1 | 1, b.0, b.1]
}

fn next(s: &mut [u64; 4]) -> u64 {
    let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
    let t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s[3].rotate_left(45);
    result
}

/// A new random UUID (RFC 4122 version 4).
pub fn new_uuid() -> Uuid {
    STATE.with(|cell| {
        let mut s = cell.get();
        let hi = next(&mut s);
        let lo = next(&mut s);
        cell.set(s);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_le_bytes());
        bytes[8..].copy_from_slice(&lo.to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn unique_version_4() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let u = super::new_uuid();
            assert_eq!(u.get_version_num(), 4);
            assert!(seen.insert(u));
        }
    }
}
