//! Tag versions: the current version of every tag an entry carries, cached per process.
//! Versions live in L2 (one hash); the backplane pushes new versions to every process, and a
//! version read more than [`REFRESH_AFTER`] ago is read again, so a lost message heals.
//! Versions only ever rise here: a stale read can never resurrect invalidated entries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::l2::L2;

/// How long a version read from L2 is trusted before it is read again.
pub const REFRESH_AFTER: Duration = Duration::from_secs(2);

/// Known tag versions.
#[derive(Debug)]
pub struct TagVersions {
    with_l2: bool,
    known: Mutex<HashMap<String, (u64, Instant)>>,
}

impl TagVersions {
    /// An empty table; `with_l2` says whether versions are shared through L2.
    pub fn new(with_l2: bool) -> Self {
        Self {
            with_l2,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Current versions of `names`, in order (0 for a tag never invalidated).
    pub async fn get(&self, names: &[String], l2: Option<&L2>) -> Vec<u64> {
        let mut out = Vec::with_capacity(names.len());
        let mut missing = Vec::new();
        {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            for (i, name) in names.iter().enumerate() {
                match known.get(name) {
                    Some((v, at)) if !self.with_l2 || at.elapsed() < REFRESH_AFTER => out.push(*v),
                    other => {
                        out.push(other.map_or(0, |(v, _)| *v));
                        missing.push(i);
                    }
                }
            }
        }
        if missing.is_empty() {
            return out;
        }
        let Some(l2) = l2.filter(|_| self.with_l2) else {
            return out;
        };
        let wanted: Vec<String> = missing.iter().map(|&i| names[i].clone()).collect();
        if let Some(versions) = l2.tag_versions(&wanted).await {
            let pairs: Vec<(String, u64)> = wanted.into_iter().zip(versions).collect();
            self.set(&pairs);
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            for &i in &missing {
                if let Some((v, _)) = known.get(&names[i]) {
                    out[i] = *v;
                }
            }
        }
        out
    }

    /// Whether every `(tag, version)` is current, answered from memory alone (no allocation,
    /// one lock): `None` when some version is unknown or due for a re-read from L2.
    pub fn check_local(&self, tags: &[(String, u64)]) -> Option<bool> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        for (name, version) in tags {
            let current = match known.get(name) {
                Some((v, at)) if !self.with_l2 || at.elapsed() < REFRESH_AFTER => *v,
                None if !self.with_l2 => 0,
                _ => return None,
            };
            if current != *version {
                return Some(false);
            }
        }
        Some(true)
    }

    /// Records versions (keeping the higher of old and new).
    pub fn set(&self, versions: &[(String, u64)]) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for (name, version) in versions {
            let slot = known.entry(name.clone()).or_insert((0, now));
            *slot = (slot.0.max(*version), now);
        }
    }

    /// Bumps `names` locally (no L2, or L2 unavailable); returns the new versions.
    pub fn bump_local(&self, names: &[String]) -> Vec<(String, u64)> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        names
            .iter()
            .map(|name| {
                let slot = known.entry(name.clone()).or_insert((0, now));
                *slot = (slot.0 + 1, now);
                (name.clone(), slot.0)
            })
            .collect()
    }

    /// Forgets everything (versions are read again from L2).
    pub fn clear(&self) {
        if self.with_l2 {
            self.known.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_versions_only_rise() {
        let t = TagVersions::new(false);
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(futures_executor::block_on(t.get(&names, None)), [0, 0]);
        assert_eq!(t.bump_local(&names[..1]), [("a".to_string(), 1)]);
        t.set(&[("a".into(), 0), ("b".into(), 4)]);
        assert_eq!(futures_executor::block_on(t.get(&names, None)), [1, 4]);
    }

    #[test]
    fn the_local_check_answers_only_what_memory_knows() {
        let local = TagVersions::new(false);
        assert_eq!(local.check_local(&[("a".into(), 0)]), Some(true));
        local.bump_local(&["a".to_string()]);
        assert_eq!(local.check_local(&[("a".into(), 0)]), Some(false));
        assert_eq!(
            local.check_local(&[("a".into(), 1), ("b".into(), 0)]),
            Some(true)
        );

        let shared = TagVersions::new(true);
        assert_eq!(
            shared.check_local(&[("a".into(), 0)]),
            None,
            "unknown: ask L2"
        );
        shared.set(&[("a".into(), 3)]);
        assert_eq!(shared.check_local(&[("a".into(), 3)]), Some(true));
        assert_eq!(shared.check_local(&[("a".into(), 2)]), Some(false));
    }
}
