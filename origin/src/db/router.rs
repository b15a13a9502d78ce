//! The read-replica router: replicas with weights and a `max_lag`, measured continuously; a
//! replica over `max_lag` or failing its health check is taken out and put back when healthy;
//! no healthy replica → the primary. Read-your-writes: after a write, a session's reads go only
//! to replicas that have replayed past the write's LSN (else to the primary).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::Object;
use serde::Serialize;
use surge_shared::freshness::millis;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::DbError;
use super::pool::DbPool;
use super::slowlog::SlowLog;

/// A WAL position (`pg_lsn` as a number).
pub type Lsn = u64;

/// Parses a `pg_lsn` text such as `0/3000060`.
pub fn parse_lsn(text: &str) -> Option<Lsn> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// One replica's configuration.
#[derive(Clone)]
pub struct ReplicaConfig {
    /// Its pool.
    pub pool: DbPool,
    /// Relative share of reads.
    pub weight: u32,
    /// Most replication lag tolerated.
    pub max_lag: Duration,
}

#[derive(Debug, Clone, Default)]
struct Measured {
    healthy: bool,
    replay_lsn: Lsn,
    lag: Option<Duration>,
    behind_since: Option<Instant>,
    error: Option<String>,
}

struct Replica {
    config: ReplicaConfig,
    measured: Mutex<Measured>,
}

/// Where a read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "target", content = "index")]
pub enum Target {
    /// The primary.
    Primary,
    /// Replica number `n` (in configuration order).
    Replica(usize),
}

/// A client's read-your-writes state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session {
    /// The primary's WAL position after this client's last write.
    pub last_write: Option<Lsn>,
}

/// A replica as the router sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaStatus {
    /// The replica's URL (password redacted).
    pub url: String,
    /// Whether it answers its health check.
    pub healthy: bool,
    /// Measured lag (ms), when known.
    pub lag_ms: Option<u64>,
    /// The configured bound (ms).
    pub max_lag_ms: u64,
    /// Whether reads may go to it now.
    pub in_rotation: bool,
    /// The last health-check error.
    pub error: Option<String>,
}

/// The router.
pub struct ReplicaRouter {
    primary: DbPool,
    replicas: Vec<Replica>,
    primary_lsn: Mutex<Lsn>,
}

impl ReplicaRouter {
    /// A router over `primary` and `replicas`; call [`ReplicaRouter::refresh`] (or run
    /// [`ReplicaRouter::monitor`]) before replicas take reads.
    pub fn new(primary: DbPool, replicas: Vec<ReplicaConfig>) -> Self {
        Self {
            primary,
            replicas: replicas
                .into_iter()
                .map(|config| Replica {
                    config,
                    measured: Mutex::new(Measured::default()),
                })
                .collect(),
            primary_lsn: Mutex::new(0),
        }
    }

    /// The primary's pool.
    pub fn primary(&self) -> &DbPool {
        &self.primary
    }

    /// Measures the primary's WAL position and every replica's replay position and lag.
    pub async fn refresh(&self) {
        let primary_lsn = match self.primary.get().await {
            Ok(conn) => conn
                .query_one("SELECT pg_current_wal_lsn()::text", &[])
                .await
                .ok()
                .and_then(|row| parse_lsn(row.get::<_, &str>(0))),
            Err(_) => None,
        };
        if let Some(lsn) = primary_lsn
            && let Ok(mut p) = self.primary_lsn.lock()
        {
            *p = lsn;
        }
        let primary_lsn = self.primary_lsn.lock().map(|p| *p).unwrap_or(0);
        for replica in &self.replicas {
            let observed = async {
                let conn = replica.config.pool.get().await?;
                let row = conn
                    .query_one("SELECT pg_last_wal_replay_lsn()::text", &[])
                    .await?;
                let lsn = row
                    .get::<_, Option<&str>>(0)
                    .and_then(parse_lsn)
                    .unwrap_or(0);
                Ok::<_, DbError>(lsn)
            }
            .await;
            let Ok(mut m) = replica.measured.lock() else {
                continue;
            };
            match observed {
                Ok(lsn) => {
                    m.healthy = true;
                    m.error = None;
                    m.replay_lsn = lsn;
                    if lsn >= primary_lsn {
                        m.behind_since = None;
                        m.lag = Some(Duration::ZERO);
                    } else {
                        // Lag is how long the replica has been behind the primary's position:
                        // an idle primary never makes a caught-up replica look late.
                        let since = *m.behind_since.get_or_insert_with(Instant::now);
                        m.lag = Some(since.elapsed());
                    }
                }
                Err(e) => {
                    m.healthy = false;
                    m.error = Some(e.to_string());
                    m.lag = None;
                }
            }
        }
    }

    /// Refreshes every `every` until the future is dropped.
    pub async fn monitor(&self, every: Duration) {
        loop {
            self.refresh().await;
            tokio::time::sleep(every).await;
        }
    }

    fn eligible(&self, session: &Session) -> Vec<(usize, u32)> {
        self.replicas
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let m = r.measured.lock().ok()?;
                let fresh = m.healthy && m.lag.is_some_and(|lag| lag <= r.config.max_lag);
                let caught_up = session.last_write.is_none_or(|w| m.replay_lsn >= w);
                (fresh && caught_up && r.config.weight > 0).then_some((i, r.config.weight))
            })
            .collect()
    }

    /// Where a read for `session` goes now: a replica in rotation, chosen by weight, else the
    /// primary.
    pub fn pick_read(&self, session: &Session) -> Target {
        let eligible = self.eligible(session);
        let total: u64 = eligible.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Target::Primary;
        }
        let mut draw = fastrand::u64(0..total);
        for (i, w) in eligible {
            if draw < u64::from(w) {
                return Target::Replica(i);
            }
            draw -= u64::from(w);
        }
        Target::Primary
    }

    /// A connection for a read, and where it goes. A replica that fails to give one is skipped
    /// for the primary. When the primary cannot give one either, a healthy replica that has
    /// replayed the session's writes answers even if it is over `max_lag`: a late answer beats
    /// no answer while the primary is down.
    pub async fn read(&self, session: &Session) -> Result<(Object, Target), DbError> {
        if let Target::Replica(i) = self.pick_read(session)
            && let Some(replica) = self.replicas.get(i)
            && let Ok(conn) = replica.config.pool.get().await
        {
            return Ok((conn, Target::Replica(i)));
        }
        let primary_error = match self.primary.get().await {
            Ok(conn) => return Ok((conn, Target::Primary)),
            Err(e) => e,
        };
        for (i, replica) in self.replicas.iter().enumerate() {
            let usable = replica
                .measured
                .lock()
                .is_ok_and(|m| m.healthy && session.last_write.is_none_or(|w| m.replay_lsn >= w));
            if usable && let Ok(conn) = replica.config.pool.get().await {
                return Ok((conn, Target::Replica(i)));
            }
        }
        Err(primary_error)
    }

    /// Runs one read statement for `session`, timed into `slow`. When a replica loses the
    /// connection mid-statement (it is stopping or restarting), it leaves the rotation until
    /// the next [`ReplicaRouter::refresh`] reaches it, and the statement runs again on the
    /// primary: a replica going away never fails a read the primary can answer.
    pub async fn read_rows(
        &self,
        session: &Session,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        slow: &SlowLog,
    ) -> Result<(Vec<Row>, Target), DbError> {
        let (conn, target) = self.read(session).await?;
        match (timed(&conn, sql, params, slow).await, target) {
            (Err(DbError::Unavailable(why)), Target::Replica(i)) => {
                drop(conn);
                self.lost(i, why);
                let primary = self.primary.get().await?;
                Ok((timed(&primary, sql, params, slow).await?, Target::Primary))
            }
            (rows, target) => Ok((rows?, target)),
        }
    }

    fn lost(&self, index: usize, why: String) {
        if let Some(replica) = self.replicas.get(index)
            && let Ok(mut m) = replica.measured.lock()
        {
            m.healthy = false;
            m.lag = None;
            m.error = Some(why);
        }
    }

    /// Whether every replica answers and has replayed up to `session`'s last write.
    pub fn caught_up(&self, session: &Session) -> bool {
        self.replicas.iter().all(|r| {
            r.measured
                .lock()
                .is_ok_and(|m| m.healthy && session.last_write.is_none_or(|w| m.replay_lsn >= w))
        })
    }

    /// A connection to the primary, for writes.
    pub async fn write(&self) -> Result<Object, DbError> {
        self.primary.get().await
    }

    /// Records that `session` just wrote through `conn` (on the primary): its reads now need
    /// a replica that has replayed this far.
    pub async fn wrote(&self, conn: &Object, session: &mut Session) -> Result<(), DbError> {
        let row = conn
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await?;
        session.last_write = parse_lsn(row.get::<_, &str>(0));
        Ok(())
    }

    /// Every replica's state.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        let in_rotation: Vec<usize> = self
            .eligible(&Session::default())
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let m = r.measured.lock().map(|m| m.clone()).unwrap_or_default();
                ReplicaStatus {
                    url: r.config.pool.label().to_string(),
                    healthy: m.healthy,
                    lag_ms: m.lag.map(millis),
                    max_lag_ms: millis(r.config.max_lag),
                    in_rotation: in_rotation.contains(&i),
                    error: m.error,
                }
            })
            .collect()
    }
}

/// Runs `sql` on `conn`, recording it in `slow` when it is slow.
#[tracing::instrument(name = "db.query", skip_all, fields(db.system.name = "postgresql", db.query.text = sql))]
pub async fn timed(
    conn: &Object,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    slow: &SlowLog,
) -> Result<Vec<Row>, DbError> {
    let start = Instant::now();
    let rows = conn.query(sql, params).await;
    slow.record(sql, start.elapsed());
    Ok(rows?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_and_order() {
        assert_eq!(parse_lsn("0/3000060"), Some(0x0300_0060));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert!(parse_lsn("1/0") > parse_lsn("0/FFFFFFFF"));
        assert_eq!(parse_lsn("garbage"), None);
    }
}
