//! Where the SLA minutes live, behind one narrow trait: Postgres (`sla_minutes`, one row per
//! region and minute, counts added by every process, so the figures survive restarts and
//! cover all pods) or, without a database, this process's memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::Minute;
use crate::db::StoreFuture;
use crate::db::pool::DbPool;

/// The SLA minutes of every process.
pub trait SlaStore: Send + Sync + 'static {
    /// `postgres` or `memory`.
    fn kind(&self) -> &'static str;
    /// Adds `minutes`' counts to what `region` has for those minutes.
    fn add(&self, region: String, minutes: Vec<Minute>) -> StoreFuture<'_, ()>;
    /// Every minute of every region from `since` (minutes since the epoch) on, summed per
    /// minute.
    fn since(&self, since: i64) -> StoreFuture<'_, Vec<Minute>>;
}

/// This process's memory (no database).
#[derive(Debug, Default)]
pub struct MemorySlaStore {
    minutes: Mutex<BTreeMap<(String, i64), Minute>>,
}

impl SlaStore for MemorySlaStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn add(&self, region: String, minutes: Vec<Minute>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut all = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
            for m in minutes {
                all.entry((region.clone(), m.at))
                    .or_insert(Minute::empty(m.at))
                    .add(&m);
            }
            // Keep the budget period only.
            if let Some(last) = all.keys().map(|(_, at)| *at).max() {
                all.retain(|(_, at), _| *at > last - super::BUDGET_MINUTES);
            }
            Ok(())
        })
    }

    fn since(&self, since: i64) -> StoreFuture<'_, Vec<Minute>> {
        Box::pin(async move {
            let all = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
            Ok(all.values().filter(|m| m.at >= since).copied().collect())
        })
    }
}

/// Postgres (`sla_minutes`, migration 4).
pub struct PgSlaStore {
    primary: DbPool,
}

impl PgSlaStore {
    /// A store over `primary` (migrated at start-up).
    pub fn new(primary: DbPool) -> Self {
        Self { primary }
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SlaStore for PgSlaStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn add(&self, region: String, minutes: Vec<Minute>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if minutes.is_empty() {
                return Ok(());
            }
            let at: Vec<i64> = minutes.iter().map(|m| m.at).collect();
            let requests: Vec<i64> = minutes.iter().map(|m| count(m.requests)).collect();
            let errors: Vec<i64> = minutes.iter().map(|m| count(m.errors)).collect();
            let slow: Vec<i64> = minutes.iter().map(|m| count(m.slow)).collect();
            let conn = self.primary.get().await?;
            conn.execute(
                "INSERT INTO sla_minutes (region, minute, requests, errors, slow) \
                 SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) \
                 ON CONFLICT (region, minute) DO UPDATE SET \
                   requests = sla_minutes.requests + EXCLUDED.requests, \
                   errors = sla_minutes.errors + EXCLUDED.errors, \
                   slow = sla_minutes.slow + EXCLUDED.slow",
                &[&region, &at, &requests, &errors, &slow],
            )
            .await?;
            // The budget period is all anyone reads; older rows go as new ones arrive.
            let oldest = at.iter().max().copied().unwrap_or(0) - super::BUDGET_MINUTES;
            conn.execute("DELETE FROM sla_minutes WHERE minute <= $1", &[&oldest])
                .await?;
            Ok(())
        })
    }

    fn since(&self, since: i64) -> StoreFuture<'_, Vec<Minute>> {
        Box::pin(async move {
            let conn = self.primary.get().await?;
            let rows = conn
                .query(
                    "SELECT minute, sum(requests)::bigint, sum(errors)::bigint, sum(slow)::bigint \
                     FROM sla_minutes WHERE minute >= $1 GROUP BY minute ORDER BY minute",
                    &[&since],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| Minute {
                    at: r.get(0),
                    requests: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                    errors: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                    slow: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                })
                .collect())
        })
    }
}
