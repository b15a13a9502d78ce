//! The slow-query log: statements slower than a threshold, newest first, in a bounded ring.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One slow statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlowQuery {
    /// The statement (parameters are never recorded).
    pub sql: String,
    /// How long it took (ms).
    pub took_ms: u64,
    /// When it finished (ms since epoch).
    pub at_ms: u64,
}

/// The log.
#[derive(Debug)]
pub struct SlowLog {
    threshold: Duration,
    capacity: usize,
    entries: Mutex<VecDeque<SlowQuery>>,
}

impl SlowLog {
    /// Keeps at most `capacity` statements slower than `threshold`.
    pub fn new(threshold: Duration, capacity: usize) -> Self {
        Self {
            threshold,
            capacity: capacity.max(1),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// Records `sql` if `took` reaches the threshold; returns whether it did.
    pub fn record(&self, sql: &str, took: Duration) -> bool {
        if took < self.threshold {
            return false;
        }
        let at_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(surge_shared::freshness::millis)
            .unwrap_or(0);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() == self.capacity {
            entries.pop_back();
        }
        entries.push_front(SlowQuery {
            sql: sql.chars().take(2000).collect(),
            took_ms: surge_shared::freshness::millis(took),
            at_ms,
        });
        true
    }

    /// The recorded statements, newest first.
    pub fn entries(&self) -> Vec<SlowQuery> {
        self.entries
            .lock()
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_slow_statements_newest_first_within_capacity() {
        let log = SlowLog::new(Duration::from_millis(100), 2);
        assert!(!log.record("SELECT fast", Duration::from_millis(5)));
        assert!(log.record("SELECT a", Duration::from_millis(150)));
        assert!(log.record("SELECT b", Duration::from_millis(300)));
        assert!(log.record("SELECT c", Duration::from_millis(100)));
        let sqls: Vec<String> = log.entries().into_iter().map(|e| e.sql).collect();
        assert_eq!(sqls, ["SELECT c", "SELECT b"]);
    }
}
