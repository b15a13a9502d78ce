//! Looking a key up: L1, then L2, each entry checked against the current versions of its
//! tags (an invalidated tag makes it a miss), and an entry's value decoded once.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use surge_shared::{CacheStatus, Tag, Tier};

use super::entry::Entry;
use super::l2::Read;
use super::stats::Stats;
use super::{Inner, Lookup};

impl Inner {
    /// No span of its own: a lookup in process memory takes less than a span costs to make,
    /// and the request span already says which tier answered.
    pub(super) async fn l1_lookup(&self, key: &str) -> Option<Arc<Entry>> {
        match self.l1.get(key).await {
            Some(entry) if self.tags_valid(&entry).await => Some(entry),
            Some(_) => {
                self.l1.remove(key).await;
                None
            }
            None => None,
        }
    }

    #[tracing::instrument(name = "cache.l2", skip_all, fields(cache.key = key, cache.hit))]
    pub(super) async fn l2_lookup(&self, key: &str) -> Option<Arc<Entry>> {
        let found = self.l2_read(key).await;
        tracing::Span::current().record("cache.hit", found.is_some());
        found
    }

    async fn l2_read(&self, key: &str) -> Option<Arc<Entry>> {
        let l2 = self.l2()?;
        let bytes = match l2.get(key).await {
            Read::Found(bytes) => bytes,
            Read::Absent | Read::Unavailable => {
                Stats::bump(&self.stats.l2_misses);
                return None;
            }
        };
        let entry = match Entry::decode(&bytes) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                tracing::warn!(key, error = %e, "unreadable L2 entry treated as a miss");
                Stats::bump(&self.stats.l2_corrupt);
                Stats::bump(&self.stats.l2_misses);
                return None;
            }
        };
        if self.tags_valid(&entry).await {
            Stats::bump(&self.stats.l2_hits);
            Some(entry)
        } else {
            Stats::bump(&self.stats.l2_misses);
            None
        }
    }

    pub(super) async fn tags_valid(&self, entry: &Entry) -> bool {
        if entry.meta.tags.is_empty() {
            return true;
        }
        if let Some(valid) = self.tags.check_local(&entry.meta.tags) {
            return valid;
        }
        let names: Vec<String> = entry.meta.tags.iter().map(|(t, _)| t.clone()).collect();
        let current = self.tags.get(&names, self.l2()).await;
        entry
            .meta
            .tags
            .iter()
            .zip(current)
            .all(|((_, v), now)| *v == now)
    }

    pub(super) async fn current_tag_versions(&self, tags: &[Tag]) -> Vec<(String, u64)> {
        let names: Vec<String> = tags.iter().map(|t| t.as_str().to_string()).collect();
        let versions = self.tags.get(&names, self.l2()).await;
        names.into_iter().zip(versions).collect()
    }
}

/// A usable entry's status and tier, before decoding.
pub(super) struct Found {
    pub(super) status: CacheStatus,
    pub(super) tier: Tier,
}

impl Found {
    pub(super) fn with<T>(self, value: T) -> Lookup<T> {
        Lookup {
            value,
            status: self.status,
            tier: self.tier,
            fail_safe: false,
        }
    }
}

/// An entry's status when it can be served as it is, with the tier it came from.
pub(super) fn usable(entry: &Entry, now: u64, tier: Tier) -> Option<Found> {
    let status = entry.meta.state(now).served()?;
    Some(Found { status, tier })
}

/// `entry` holding its value decoded as a `T`, so that L1 hits on it (once promoted from L2)
/// do not decode it again; `None` when it does not decode as one.
pub(super) fn typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
    entry: Arc<Entry>,
) -> Option<(Arc<Entry>, T)> {
    let value = decode_value::<T>(&entry)?;
    if entry.typed.is_some() {
        return Some((entry, value));
    }
    let held = Entry {
        meta: entry.meta.clone(),
        value: entry.value.clone(),
        typed: Some(Arc::new(value.clone())),
    };
    Some((Arc::new(held), value))
}

/// The value of `entry` as a `T`: the decoded copy L1 keeps when it is one, else decoded now.
pub(super) fn decode_value<T: DeserializeOwned + Clone + Send + Sync + 'static>(
    entry: &Entry,
) -> Option<T> {
    if let Some(typed) = entry.typed.as_ref().and_then(|t| t.downcast_ref::<T>()) {
        return Some(typed.clone());
    }
    serde_json::from_slice(&entry.value).ok()
}

#[cfg(test)]
mod tests {
    use surge_shared::freshness::{Freshness, Windows};

    use super::super::entry::Meta;
    use super::*;

    fn from_l2(value: &str) -> Arc<Entry> {
        let held = Entry {
            meta: Meta {
                freshness: Freshness::new(
                    1_000,
                    &Windows {
                        ttl: std::time::Duration::from_secs(60),
                        stale_while_revalidate: std::time::Duration::ZERO,
                        stale_if_error: std::time::Duration::ZERO,
                    },
                ),
                tags: Vec::new(),
                version: 1,
                factory_ms: 0,
            },
            value: Arc::from(serde_json::to_vec(value).expect("encodes").as_slice()),
            typed: None,
        };
        Arc::new(Entry::decode(&held.encode()).expect("decodes"))
    }

    #[test]
    fn an_entry_read_from_l2_is_promoted_holding_its_decoded_value() {
        let read = from_l2("ballot");
        assert!(read.typed.is_none(), "bytes from L2 carry no decoded value");
        let (held, value) = typed::<String>(read.clone()).expect("decodes as a String");
        assert_eq!(value, "ballot");
        let kept = held.typed.as_ref().and_then(|t| t.downcast_ref::<String>());
        assert_eq!(kept.map(String::as_str), Some("ballot"));
        assert_eq!(held.meta, read.meta);
        let (again, _) = typed::<String>(held.clone()).expect("still decodes");
        assert!(
            Arc::ptr_eq(&again, &held),
            "an entry already typed is kept as it is"
        );
    }

    #[test]
    fn an_entry_of_another_type_is_not_promoted() {
        assert!(typed::<u64>(from_l2("ballot")).is_none());
    }
}
