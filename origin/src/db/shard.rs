//! The shard map: a stable hash of a key picks one of N databases. Jump consistent hashing
//! (Lamping & Veach, 2014) over the key's SHA-256 keeps assignments stable across processes and
//! versions, and moves only 1/N of the keys when a shard is added.

use sha2::{Digest, Sha256};

/// The shard (0..`shards`) for `key`.
pub fn shard_for(key: &str, shards: usize) -> usize {
    let digest = Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let mut k = u64::from_be_bytes(bytes);
    let n = i64::try_from(shards.max(1)).unwrap_or(i64::MAX);
    let (mut b, mut j) = (-1i64, 0i64);
    while j < n {
        b = j;
        k = k.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b.wrapping_add(1) as f64) * ((1u64 << 31) as f64 / (((k >> 33) + 1) as f64))) as i64;
    }
    usize::try_from(b).unwrap_or(0)
}

/// Shards by number (databases, or whatever a shard holds), at least one.
#[derive(Debug, Clone)]
pub struct ShardMap<T> {
    shards: Vec<T>,
}

impl<T> ShardMap<T> {
    /// A map over `shards`; `None` when there are none.
    pub fn new(shards: Vec<T>) -> Option<Self> {
        (!shards.is_empty()).then_some(Self { shards })
    }

    /// The shard number of `key`.
    pub fn index_of(&self, key: &str) -> usize {
        shard_for(key, self.shards.len())
    }

    /// The shard holding `key`.
    pub fn for_key(&self, key: &str) -> &T {
        &self.shards[self.index_of(key)]
    }

    /// Every shard, by number.
    pub fn all(&self) -> &[T] {
        &self.shards
    }

    /// Every shard, by number, to change in place.
    pub fn all_mut(&mut self) -> &mut [T] {
        &mut self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_are_stable_spread_and_move_little() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("voter:{i}")).collect();
        let two: Vec<usize> = keys.iter().map(|k| shard_for(k, 2)).collect();
        assert_eq!(
            two,
            keys.iter().map(|k| shard_for(k, 2)).collect::<Vec<_>>(),
            "stable"
        );
        let ones = two.iter().filter(|s| **s == 1).count();
        assert!(
            (4_500..5_500).contains(&ones),
            "spread: {ones} of 10000 on shard 1"
        );
        let three: Vec<usize> = keys.iter().map(|k| shard_for(k, 3)).collect();
        let moved = two.iter().zip(&three).filter(|(a, b)| a != b).count();
        assert!(
            (2_900..3_800).contains(&moved),
            "adding a shard moves about 1/3: {moved}"
        );
        assert!(three.iter().all(|s| *s < 3));
        assert_eq!(shard_for("anything", 1), 0);
    }
}
