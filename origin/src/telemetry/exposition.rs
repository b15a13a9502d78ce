//! The OpenMetrics exposition of `/performance/metrics`: request latency by route, cache
//! counters and ratios per tier, vote purges, pool and replica state, each read once per
//! scrape into [`Readings`] by the caller.

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::RequestLabels;
use crate::cache::stats::StatsSnapshot;
use crate::db::pool::PoolStats;
use crate::db::router::ReplicaStatus;

use super::process::ProcessReadings;

/// The exposition's `Content-Type`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What one scrape reports.
pub struct Readings {
    /// This process's region (`SURGE_REGION`), a label on every `surge_*` series so
    /// dashboards and federated queries can pick a region.
    pub region: String,
    /// Latency histograms by route, method and status class.
    pub requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    /// Cache counters.
    pub cache: StatsSnapshot,
    /// Whether Redis answers (absent without Redis).
    pub redis_up: Option<bool>,
    /// Entries in L1.
    pub l1_entries: u64,
    /// Bytes held by L1.
    pub l1_bytes: u64,
    /// Results purges requested by votes.
    pub vote_purges_marked: u64,
    /// Coalesced results purges sent.
    pub vote_purges_sent: u64,
    /// Requests answered on the connection front, before the router.
    pub front_answers: u64,
    /// The primary pool and the replicas, with a database.
    pub db: Option<DbReadings>,
}

/// The Postgres tier's state.
pub struct DbReadings {
    /// The primary pool.
    pub primary: PoolStats,
    /// The primary pool's acquire latency.
    pub acquire_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Every replica.
    pub replicas: Vec<ReplicaStatus>,
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    registry.register(name, help, ConstGauge::new(value));
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    registry.register(name, help, ConstCounter::new(value));
}

/// The OpenMetrics text of `readings`, every name prefixed `surge_`, and the standard
/// `process_*` metrics of `process`.
pub fn encode(readings: &Readings, process: &ProcessReadings) -> Result<String, std::fmt::Error> {
    let mut root = Registry::default();
    register_process(&mut root, process);
    let registry = root
        .sub_registry_with_prefix("surge")
        .sub_registry_with_label((
            std::borrow::Cow::Borrowed("region"),
            std::borrow::Cow::Owned(readings.region.clone()),
        ));
    registry.register(
        "http_request_duration_seconds",
        "Request latency by policy route, method and status class",
        readings.requests.clone(),
    );
    registry.register(
        "build",
        "The running build",
        prometheus_client::metrics::info::Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
    let s = &readings.cache;
    if let Some(up) = readings.redis_up {
        gauge(
            registry,
            "redis_up",
            "1 while this process reaches Redis (L2 and the backplane), 0 otherwise",
            if up { 1.0 } else { 0.0 },
        );
    }
    // Every counter the cache keeps, as `surge_cache_<name>_total`.
    for (name, help, value) in s.counters() {
        counter(registry, &format!("cache_{name}"), help, value);
    }
    // Hit ratios are computed in PromQL from the counters, over whatever window a query asks.
    gauge(
        registry,
        "cache_l1_entries",
        "Entries in L1",
        readings.l1_entries as f64,
    );
    gauge(
        registry,
        "cache_l1_bytes",
        "Bytes held by L1",
        readings.l1_bytes as f64,
    );
    counter(
        registry,
        "vote_purges_marked",
        "Results purges requested by votes",
        readings.vote_purges_marked,
    );
    counter(
        registry,
        "vote_purges_sent",
        "Coalesced results purges sent",
        readings.vote_purges_sent,
    );
    counter(
        registry,
        "http_front_answers",
        "Requests answered on the connection front (fresh L1 hits, before the router)",
        readings.front_answers,
    );
    if let Some(db) = &readings.db {
        let p = &db.primary;
        gauge(
            registry,
            "db_pool_size",
            "Primary pool connections",
            p.size as f64,
        );
        gauge(
            registry,
            "db_pool_idle",
            "Primary pool idle connections",
            p.idle as f64,
        );
        gauge(
            registry,
            "db_pool_waiting",
            "Callers waiting for a primary connection",
            p.waiting as f64,
        );
        registry.register(
            "db_pool_acquire_seconds",
            "Time to get a primary connection from the pool",
            db.acquire_seconds.clone(),
        );
        let replicas = &db.replicas;
        let max_lag = replicas.iter().filter_map(|r| r.lag_ms).max().unwrap_or(0);
        gauge(
            registry,
            "db_replica_lag_max_seconds",
            "Largest measured replica lag",
            max_lag as f64 / 1e3,
        );
        gauge(
            registry,
            "db_replicas_in_rotation",
            "Replicas taking reads",
            replicas.iter().filter(|r| r.in_rotation).count() as f64,
        );
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &root)?;
    Ok(text)
}

fn register_process(registry: &mut Registry, p: &ProcessReadings) {
    if let Some(v) = p.cpu_seconds {
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time spent",
            ConstCounter::new(v),
        );
    }
    let gauges = [
        (
            "process_resident_memory_bytes",
            "Resident memory size",
            p.resident_bytes.map(|v| v as f64),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size",
            p.virtual_bytes.map(|v| v as f64),
        ),
        (
            "process_open_fds",
            "Open file descriptors",
            p.open_fds.map(|v| v as f64),
        ),
        (
            "process_max_fds",
            "Most file descriptors the process may open",
            p.max_fds.map(|v| v as f64),
        ),
        (
            "process_start_time_seconds",
            "Start time since the Unix epoch",
            p.start_time_seconds,
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(value) = value {
            gauge(registry, name, help, value);
        }
    }
}
