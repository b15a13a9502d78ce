//! A cached value with its metadata, and the binary form it takes in L2: one format-version
//! byte, then postcard-encoded metadata and the JSON-encoded value. Anything else read from L2
//! (a foreign or corrupt value) decodes to an error and is treated as a miss.

use std::any::Any;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use surge_shared::freshness::{EntryState, Freshness};

/// The L2 format this build writes and reads. [`Meta`] encodes its [`Freshness`] as four
/// integers in place, so the nesting does not change the bytes.
pub const FORMAT_VERSION: u8 = 1;

/// What is known about a cached value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// When it was produced and when its windows end; L2 keeps it until the last one ends.
    pub freshness: Freshness,
    /// Tags with the tag version current when the value was produced.
    pub tags: Vec<(String, u64)>,
    /// Write version (fencing token): a write never replaces a newer one in L2.
    pub version: u64,
    /// How long the factory took (ms), for probabilistic early refresh.
    pub factory_ms: u64,
}

impl Meta {
    /// Where the value stands at `now_ms`.
    pub fn state(&self, now_ms: u64) -> EntryState {
        self.freshness.state(now_ms)
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
    /// Approximate bytes held (for L1's byte bound): the key, the value (twice when the
    /// decoded copy is held too: it takes about what its encoding takes — a rendered page is
    /// its body and header block either way), the tags, and a fixed per-entry cost for the
    /// entry's own fields and moka's bookkeeping (its node, hash, access-order and expiry
    /// links), measured under churn in the soak run (`bench/RESULTS.md`).
    pub fn weight(&self, key_len: usize) -> usize {
        let copies = if self.typed.is_some() { 2 } else { 1 };
        key_len
            + self.value.len() * copies
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
            freshness: Freshness {
                stored_at: 1,
                fresh_until: 10,
                stale_until: 20,
                error_until: 100,
            },
            tags: vec![("election:7".into(), 3)],
            version: 42,
            factory_ms: 5,
        }
    }

    #[test]
    fn a_held_decoded_copy_is_weighed_like_its_encoding() {
        let encoded = Entry {
            meta: meta(),
            value: Arc::from(vec![b'x'; 1000].as_slice()),
            typed: None,
        };
        let held = Entry {
            typed: Some(Arc::new("x".repeat(1000))),
            ..encoded.clone()
        };
        assert_eq!(held.weight(10) - encoded.weight(10), 1000);
        assert_eq!(
            encoded.weight(10),
            10 + 1000 + "election:7".len() + 8 + ENTRY_OVERHEAD
        );
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
    fn nested_freshness_encodes_as_the_flat_fields_of_format_1() {
        #[derive(Serialize)]
        struct Flat {
            created_ms: u64,
            fresh_until_ms: u64,
            swr_until_ms: u64,
            fail_safe_until_ms: u64,
            tags: Vec<(String, u64)>,
            version: u64,
            factory_ms: u64,
        }
        let flat = Flat {
            created_ms: 1,
            fresh_until_ms: 10,
            swr_until_ms: 20,
            fail_safe_until_ms: 100,
            tags: vec![("election:7".into(), 3)],
            version: 42,
            factory_ms: 5,
        };
        assert_eq!(
            postcard::to_allocvec(&meta()).expect("encodes"),
            postcard::to_allocvec(&flat).expect("encodes")
        );
    }
}
