//! A connection pool (`deadpool-postgres`) with bounds, timeouts and statistics: size, idle,
//! waiting, and an acquire-latency histogram.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Timeouts};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::DbError;

/// Pool bounds and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections.
    pub max_size: usize,
    /// How long an acquire may wait for a free connection.
    pub acquire_timeout: Duration,
    /// How long opening a connection may take (retried once).
    pub connect_timeout: Duration,
    /// Connections kept open even when idle (warm for the next burst).
    pub min_idle: usize,
    /// Connections beyond `min_idle` unused this long are closed.
    pub idle_timeout: Duration,
    /// A certificate authority (PEM) trusted besides the platform's roots when the URL's
    /// `sslmode` uses TLS.
    pub ca: Option<Arc<[u8]>>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 16,
            acquire_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            min_idle: 2,
            idle_timeout: Duration::from_secs(600),
            ca: None,
        }
    }
}

/// What the pool looks like now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStats {
    /// Connections open.
    pub size: usize,
    /// Connections open and idle.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// The bound.
    pub max_size: usize,
    /// Acquire latency percentiles (µs): p50, p95, p99, max.
    pub acquire_us: [u64; 4],
    /// Acquires measured.
    pub acquires: u64,
}

/// A pool of connections to one server and database.
#[derive(Clone)]
pub struct DbPool {
    pool: Pool,
    min_idle: usize,
    idle_timeout: Duration,
    latency: Arc<Mutex<Histogram<u64>>>,
    acquire_seconds: prometheus_client::metrics::histogram::Histogram,
    label: String,
}

/// Bucket edges of the acquire-latency histogram (seconds): 100 µs to the 2 s acquire
/// timeout.
pub const ACQUIRE_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];

impl DbPool {
    /// A pool for `url` (`postgres://user@host:port/db`); connections open lazily.
    pub fn new(url: &str, settings: &PoolSettings) -> Result<Self, DbError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            DbError::Config(format!(
                "{:?} is not a Postgres URL ({e}); write postgres://user@host:5432/db",
                crate::redact::redact(url)
            ))
        })?;
        let manager = Manager::from_config(
            config,
            super::tls::connector(settings.ca.as_deref())?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.max_size.max(1))
            .timeouts(Timeouts {
                wait: Some(settings.acquire_timeout),
                create: Some(settings.connect_timeout),
                recycle: Some(settings.connect_timeout),
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Config(e.to_string()))?;
        let latency = Histogram::new_with_bounds(1, 60_000_000, 2)
            .map_err(|e| DbError::Config(e.to_string()))?;
        Ok(Self {
            pool,
            min_idle: settings.min_idle.min(settings.max_size.max(1)),
            idle_timeout: settings.idle_timeout,
            latency: Arc::new(Mutex::new(latency)),
            acquire_seconds: prometheus_client::metrics::histogram::Histogram::new(ACQUIRE_BUCKETS),
            label: crate::redact::redact(url),
        })
    }

    /// The URL without its password, for logs and reports.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the server answers a trivial statement.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.get().await?.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    /// A connection; a failed connect is retried once.
    pub async fn get(&self) -> Result<Object, DbError> {
        let start = Instant::now();
        let conn = match self.pool.get().await {
            Ok(c) => c,
            Err(deadpool_postgres::PoolError::Backend(_))
            | Err(deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Create)) => {
                self.pool.get().await?
            }
            Err(e) => return Err(e.into()),
        };
        let took = start.elapsed();
        if let Ok(mut h) = self.latency.lock() {
            h.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        }
        self.acquire_seconds.observe(took.as_secs_f64());
        Ok(conn)
    }

    /// Closes connections idle longer than `idle_timeout` (keeping `min_idle`), then opens
    /// connections until `min_idle` are there. Run it periodically (`AppState` does, every
    /// 30 s); an unreachable server leaves the pool as it is.
    pub async fn maintain(&self) {
        let mut kept = 0usize;
        let (min, timeout) = (self.min_idle, self.idle_timeout);
        self.pool.retain(|_, metrics| {
            kept += 1;
            kept <= min || metrics.last_used() < timeout
        });
        let missing = min.saturating_sub(self.pool.status().size);
        let mut warm = Vec::with_capacity(missing);
        for _ in 0..missing {
            match self.pool.get().await {
                Ok(conn) => warm.push(conn),
                Err(_) => break,
            }
        }
    }

    /// Acquire latency as a Prometheus histogram (the same handle every call: it accumulates
    /// for the process's life, and PromQL takes rates over it).
    pub fn acquire_histogram(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.acquire_seconds.clone()
    }

    /// Size, idle, waiting and acquire latency.
    pub fn stats(&self) -> PoolStats {
        let status = self.pool.status();
        let (acquire_us, acquires) = self
            .latency
            .lock()
            .map(|h| {
                (
                    [
                        h.value_at_quantile(0.5),
                        h.value_at_quantile(0.95),
                        h.value_at_quantile(0.99),
                        h.max(),
                    ],
                    h.len(),
                )
            })
            .unwrap_or(([0; 4], 0));
        PoolStats {
            size: status.size,
            idle: status.available,
            waiting: status.waiting,
            max_size: status.max_size,
            acquire_us,
            acquires,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_labels_and_bad_urls_are_explained() {
        let err = DbPool::new("mysql:/nope", &PoolSettings::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("postgres://"), "{err}");
    }
}
