//! A cached value with its metadata, and the binary form it takes in L2: one format-version
//! byte, then postcard-encoded metadata and the JSON-encoded value. Anything else read from L2
//! (a foreign or corrupt value) decodes to an error and is treated as a miss.

use std::any::Any;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The L2 format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// What is known about a cached value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// When it was produced (ms since epoch).
    pub created_ms: u64,
    /// Fresh until (ms).
    pub fresh_until_ms: u64,
    /// Servable while a refresh runs until (ms).
    pub swr_until_ms: u64,
    /// Servable when the factory fails until (ms); also when L2 drops it.
    pub fail_safe_until_ms: u64,
    /// Tags with the tag version current when the value was produced.
    pub tags: Vec<(String, u64)>,
    /// Write version (fencing token): a write never replaces a newer one in L2.
    pub version: u64,
    /// How long the factory took (ms), for probabilistic early refresh.
    pub factory_ms: u64,
}

/// Where an entry stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL.
    Fresh,
    /// Past its TTL, inside stale-while-revalidate.
    Stale,
    /// Past stale-while-revalidate, inside the fail-safe window: only if the factory fails.
    FailSafe,
    /// Past every window.
    Dead,
}

impl Meta {
    /// The state at `now_ms`.
    pub fn freshness(&self, now_ms: u64) -> Freshness {
        if now_ms < self.fresh_until_ms {
            Freshness::Fresh
        } else if now_ms < self.swr_until_ms {
            Freshness::Stale
        } else if now_ms < self.fail_safe_until_ms {
            Freshness::FailSafe
        } else {
            Freshness::Dead
        }
    }

    /// Milliseconds L2 must keep it from `now_ms`.
    pub fn keep_ms(&self, now_ms: u64) -> u64 {
        self.fail_safe_until_ms
            .max(self.swr_until_ms)
            .saturating_sub(now_ms)
            .max(1)
    }
}

/// A cached value: metadata, the encoded value, and (in L1) the decoded value of the type
/// last stored, so typed hits skip decoding.
#[derive(Clone)]
pub struct Entry {
    /// Metadata.
    pub meta: Meta,
    /// The JSON-encoded value.
    pub value: Arc<[u8]>,
    /// The decoded value, when known.
    pub typed: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("meta", &self.meta)
            .field("value_len", &self.value.len())
            .finish()
    }
}

/// Why bytes from L2 could not be read as an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Empty value.
    #[error("empty value")]
    Empty,
    /// Written by another format (or not by Surge at all).
    #[error("unknown format version {0}")]
    Version(u8),
    /// The body does not decode.
    #[error("corrupt entry: {0}")]
    Corrupt(String),
}

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    meta: Meta,
    #[serde(borrow)]
    value: &'a [u8],
}

/// Bytes an L1 entry costs beyond its key, value and tags.
const ENTRY_OVERHEAD: usize = 512;

impl Entry {
    /// Approximate bytes held (for L1's byte bound): the key, the value, the tags, and a fixed
    /// per-entry cost for the entry's own fields and moka's bookkeeping (its node, hash,
    /// access-order and expiry links), measured under churn in the soak run
    /// (`bench/RESULTS.md`).
    pub fn weight(&self, key_len: usize) -> usize {
        key_len
            + self.value.len()
            + self
                .meta
                .tags
                .iter()
                .map(|(t, _)| t.len() + 8)
                .sum::<usize>()
            + ENTRY_OVERHEAD
    }

    /// The L2 form.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            meta: self.meta.clone(),
            value: &self.value,
        };
        let mut out = vec![FORMAT_VERSION];
        // Encoding into a Vec cannot fail for these types.
        if let Ok(body) = postcard::to_allocvec(&wire) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// Reads the L2 form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let wire: Wire<'_> =
            postcard::from_bytes(body).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
        Ok(Self {
            meta: wire.meta,
            value: Arc::from(wire.value),
            typed: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            created_ms: 1,
            fresh_until_ms: 10,
            swr_until_ms: 20,
            fail_safe_until_ms: 100,
            tags: vec![("election:7".into(), 3)],
            version: 42,
            factory_ms: 5,
        }
    }

    #[test]
    fn round_trips_and_refuses_foreign_bytes() {
        let e = Entry {
            meta: meta(),
            value: Arc::from(&b"{\"a\":1}"[..]),
            typed: None,
        };
        let bytes = e.encode();
        let back = Entry::decode(&bytes).expect("decodes");
        assert_eq!(back.meta, e.meta);
        assert_eq!(&*back.value, &*e.value);
        assert_eq!(Entry::decode(&[]).err(), Some(DecodeError::Empty));
        assert_eq!(
            Entry::decode(b"hello").err(),
            Some(DecodeError::Version(b'h'))
        );
        assert!(matches!(
            Entry::decode(&[FORMAT_VERSION, 0xff, 0xff]),
            Err(DecodeError::Corrupt(_))
        ));
        let mut truncated = bytes.clone();
        truncated.truncate(bytes.len() / 2);
        assert!(Entry::decode(&truncated).is_err());
    }

    #[test]
    fn freshness_windows() {
        let m = meta();
        assert_eq!(m.freshness(5), Freshness::Fresh);
        assert_eq!(m.freshness(15), Freshness::Stale);
        assert_eq!(m.freshness(50), Freshness::FailSafe);
        assert_eq!(m.freshness(100), Freshness::Dead);
        assert_eq!(m.keep_ms(50), 50);
    }
}
