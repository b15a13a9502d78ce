//! What every handler can reach: the running parts [`crate::startup`] builds once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::cache::HybridCache;
use crate::config::Config;
use crate::db::router::ReplicaRouter;
use crate::db::slowlog::SlowLog;
use crate::domain::coalesce::Coalescer;
use crate::domain::session::SessionKeys;
use crate::domain::store::ElectionStore;
use crate::domain::voters::code::CodeHasher;
use crate::domain::voters::throttle::LoginThrottle;
use crate::purge::Purger;
use crate::scaling::controller::Scaler;
use crate::scaling::history::RateHistory;
use crate::scaling::store::ScalingStore;
use crate::telemetry::Metrics;
use crate::telemetry::spans::SpanTrees;

use super::auth::FailureKey;
use super::keys::KeyMemo;

/// The Postgres tier, when configured.
pub struct Database {
    /// Primary and replicas.
    pub router: Arc<ReplicaRouter>,
    /// Statements slower than the threshold.
    pub slow: Arc<SlowLog>,
}

/// What every handler can reach.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// `x-surge-region`'s value, made once.
    pub region_header: axum::http::HeaderValue,
    /// L1 + L2.
    pub cache: HybridCache,
    /// The workload's data.
    pub store: Arc<dyn ElectionStore>,
    /// Postgres, when configured.
    pub db: Option<Database>,
    /// Purges across L1, L2 and the CDN.
    pub purger: Purger,
    /// Gathers results purges caused by votes.
    pub vote_purges: Arc<Coalescer>,
    /// Login cookies.
    pub sessions: SessionKeys,
    /// Hashes and checks voting codes.
    pub voter_codes: CodeHasher,
    /// Failed-login throttling.
    pub login_throttle: LoginThrottle,
    /// The SLA tracker (`GET /performance/sla`).
    pub sla: Arc<crate::telemetry::sla::SlaTracker>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// Span trees of recent and slowest traces.
    pub traces: SpanTrees,
    /// Requests per minute, for the forecaster.
    pub rates: Arc<RateHistory>,
    /// Where this pod hands its request counts in (every pod with a database, and the
    /// controller's), so a stopping pod can hand in its last minute.
    pub rate_store: Option<Arc<dyn ScalingStore>>,
    /// The scaling controller, when `SURGE_KUBE` is set.
    pub scaler: Option<Arc<Scaler>>,
    /// Canonical keys of recent request URLs.
    pub keys: KeyMemo,
    /// Wrong admin tokens per client address and token prefix.
    pub admin_failures: moka::sync::Cache<FailureKey, u32>,
    /// When the process started.
    pub started: Instant,
    /// Whether the process takes traffic (`/readyz`).
    pub lifecycle: Lifecycle,
}

/// Where the process is in its life, as the readiness probe reports it.
#[derive(Debug, Default)]
pub struct Lifecycle {
    ready: AtomicBool,
    draining: AtomicBool,
}

impl Lifecycle {
    /// Start-up is done (migrations run, listeners bound, the start-up warm finished).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Shutdown has begun: the process stops being ready and finishes what it has.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Why the process should not get new traffic, if it should not.
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::SeqCst) {
            Some("draining: shutting down")
        } else if !self.ready.load(Ordering::SeqCst) {
            Some("starting: warming up")
        } else {
            None
        }
    }
}
