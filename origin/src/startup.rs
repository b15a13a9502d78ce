//! Start-up: turns a validated [`Config`] into the running parts every handler shares —
//! the hybrid cache, the store (Postgres with replicas, or the embedded demo store), the
//! purger, the vote purge coalescer, sessions, metrics and traces.

use crate::telemetry::sla::SlaTracker;
use crate::telemetry::sla::store::{MemorySlaStore, PgSlaStore, SlaStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{CacheConfig, HybridCache};
use crate::cdn::Cdn;
use crate::cdn::cloudflare::{Cloudflare, RetryPolicy};
use crate::clock::now_ms;
use crate::config::Config;
use crate::db::config::DatabaseConfig;
use crate::db::migrate;
use crate::db::pool::{DbPool, PoolSettings};
use crate::db::router::{ReplicaConfig, ReplicaRouter};
use crate::db::slowlog::SlowLog;
use crate::domain::coalesce::Coalescer;
use crate::domain::session::SessionKeys;
use crate::domain::store::ElectionStore;
use crate::domain::store::batch::BatchSettings;
use crate::domain::store::memory::MemoryStore;
use crate::domain::store::postgres::PgStore;
use crate::domain::voters::code::CodeHasher;
use crate::domain::voters::throttle::LoginThrottle;
use crate::http::keys::KeyMemo;
use crate::http::state::{AppState, Database};
use crate::purge::Purger;
use crate::telemetry::Metrics;
use crate::telemetry::spans::SpanTrees;

/// How often replica lag is measured.
const LAG_PROBE: Duration = Duration::from_millis(500);
/// How often pools close idle connections and top up to their minimum.
const POOL_MAINTENANCE: Duration = Duration::from_secs(30);

/// Why the origin could not start.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct StartError {
    /// The dependency at fault, named as configured.
    pub what: &'static str,
    /// What happened and what to check.
    pub message: String,
}

/// Connects to what `config` names (Redis, Postgres, the CDN API), runs migrations and
/// starts the background tasks.
/// Finished traces go to `traces` (the span trees the process's tracer provider fills).
pub async fn start(config: Config, traces: SpanTrees) -> Result<Arc<AppState>, StartError> {
    let cache = HybridCache::new(CacheConfig {
        instance: format!("{}-{}-{}", config.region, std::process::id(), now_ms()),
        redis: config.redis.clone(),
        redis_state: config.redis_state.clone(),
        redis_ca: config.redis_ca.clone(),
        cascade: config.policy.cascade.clone(),
        l1: config.l1,
        ..CacheConfig::default()
    })
    .await
    .map_err(|e| StartError {
        what: "REDIS_URL",
        message: e.to_string(),
    })?;
    let cdn =
        match &config.cloudflare {
            None => None,
            Some(cf) => Some(
                Arc::new(Cloudflare::new(cf.clone(), RetryPolicy::default()).map_err(
                    |message| StartError {
                        what: "CLOUDFLARE_API_BASE",
                        message,
                    },
                )?) as Arc<dyn Cdn>,
            ),
        };
    let purger = Purger::new(cache.clone(), cdn, config.policy.clone());
    let (store, db): (Arc<dyn ElectionStore>, _) = match &config.database {
        None => (Arc::new(MemoryStore::demo()), None),
        Some(settings) => {
            let (store, db) = open_database(settings, config.domain.vote_batch).await?;
            (Arc::new(store) as Arc<dyn ElectionStore>, Some(db))
        }
    };
    let voter_codes = match &config.domain.voter_pepper {
        Some(pepper) => CodeHasher::new(pepper.clone()),
        None => CodeHasher::ephemeral().map_err(|e| StartError {
            what: "SURGE_VOTER_PEPPER",
            message: format!("no randomness for a per-process pepper: {e}"),
        })?,
    };
    let rates = Arc::new(crate::scaling::history::RateHistory::default());
    // Every pod hands its request counts to the scaling store, so the forecast sees the whole
    // deployment's rate wherever the controller runs.
    let scaling_store: Arc<dyn crate::scaling::store::ScalingStore> = match &db {
        Some(db) => Arc::new(crate::scaling::store::PgScalingStore::new(
            db.router.primary().clone(),
        )),
        None => Arc::new(crate::scaling::store::MemoryScalingStore::default()),
    };
    let rate_store = (db.is_some() || config.scaling.is_some()).then(|| scaling_store.clone());
    if let Some(store) = &rate_store {
        tokio::spawn(crate::scaling::history::hand_in(
            rates.clone(),
            store.clone(),
        ));
    }
    let scaler = match &config.scaling {
        None => None,
        Some(settings) => Some(start_scaler(&config, settings, scaling_store).await?),
    };
    let vote_purges = Coalescer::spawn(purger.clone(), config.domain.purge_coalesce);
    let sessions = SessionKeys::new(config.domain.cookie_keys.clone(), config.domain.session_ttl)
        .map_err(|e| StartError {
        what: "SURGE_COOKIE_KEYS",
        message: format!("no randomness for a per-process cookie key ({e}); set SURGE_COOKIE_KEYS"),
    })?;
    let sla_store: Arc<dyn SlaStore> = match &db {
        Some(db) => Arc::new(PgSlaStore::new(db.router.primary().clone())),
        None => Arc::new(MemorySlaStore::default()),
    };
    let sla = SlaTracker::new(sla_store, config.region.clone());
    sla.spawn_flush(Duration::from_secs(2));
    Ok(Arc::new(AppState {
        sla,
        cache,
        store,
        db,
        purger,
        vote_purges,
        sessions,
        voter_codes,
        login_throttle: LoginThrottle::default(),
        metrics: Arc::new(Metrics::default()),
        traces,
        keys: KeyMemo::new(100_000),
        rates,
        rate_store,
        scaler,
        admin_failures: moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(60))
            .build(),
        started: Instant::now(),
        lifecycle: Default::default(),
        region_header: axum::http::HeaderValue::from_str(&config.region).map_err(|_| {
            StartError {
                what: "SURGE_REGION",
                message: "must be letters, digits, '-' or '_' (e.g. eu-west)".into(),
            }
        })?,
        config,
    }))
}

/// Connects to the main database and every vote shard (pools, migrations on each, replica
/// monitors, the demo seed when asked, read floors) and builds the store over them.
pub async fn open_database(
    settings: &DatabaseConfig,
    vote_batch: BatchSettings,
) -> Result<(PgStore, Database), StartError> {
    let slow = Arc::new(SlowLog::new(settings.slow_query, 256));
    let router = connect(
        &settings.primary,
        &settings.replicas,
        settings,
        "DATABASE_URL",
    )
    .await?;
    let mut shards = Vec::new();
    for shard in &settings.shards {
        shards.push(
            connect(
                &shard.primary,
                &shard.replicas,
                settings,
                "DATABASE_SHARD_URLS",
            )
            .await?,
        );
    }
    let mut store = PgStore::new(router.clone(), shards, vote_batch, slow.clone());
    if settings.seed_demo {
        store.seed_demo().await.map_err(|e| StartError {
            what: "SURGE_SEED_DEMO",
            message: e.to_string(),
        })?;
    }
    store
        .set_read_floor(Duration::from_secs(5))
        .await
        .map_err(|e| StartError {
            what: "DATABASE_URL",
            message: e.to_string(),
        })?;
    Ok((store, Database { router, slow }))
}

/// One primary and its replicas: pools, migrations, pool maintenance and the lag monitor.
async fn connect(
    primary: &str,
    replica_urls: &[String],
    settings: &DatabaseConfig,
    what: &'static str,
) -> Result<Arc<ReplicaRouter>, StartError> {
    let db_error = |e: crate::db::DbError| StartError {
        what,
        message: e.to_string(),
    };
    let pool_settings = PoolSettings {
        max_size: settings.pool_size,
        ca: settings.ca.clone(),
        ..PoolSettings::default()
    };
    let primary = DbPool::new(primary, &pool_settings).map_err(db_error)?;
    migrate::run(&primary, migrate::MIGRATIONS)
        .await
        .map_err(db_error)?;
    let mut replicas = Vec::new();
    for url in replica_urls {
        replicas.push(ReplicaConfig {
            pool: DbPool::new(url, &pool_settings).map_err(db_error)?,
            weight: 1,
            max_lag: settings.max_lag,
        });
    }
    let pools: Vec<DbPool> = std::iter::once(primary.clone())
        .chain(replicas.iter().map(|r| r.pool.clone()))
        .collect();
    tokio::spawn(async move {
        loop {
            for pool in &pools {
                pool.maintain().await;
            }
            tokio::time::sleep(POOL_MAINTENANCE).await;
        }
    });
    // The monitor and the read floor measure the replicas first.
    let router = Arc::new(ReplicaRouter::new(primary, replicas));
    let monitor = Arc::downgrade(&router);
    tokio::spawn(async move {
        while let Some(router) = monitor.upgrade() {
            router.refresh().await;
            drop(router);
            tokio::time::sleep(LAG_PROBE).await;
        }
    });
    Ok(router)
}

/// Connects to the cluster, picks the scaling store and starts the controller's tick.
async fn start_scaler(
    config: &Config,
    settings: &crate::scaling::config::ScalingConfig,
    store: Arc<dyn crate::scaling::store::ScalingStore>,
) -> Result<Arc<crate::scaling::controller::Scaler>, StartError> {
    use crate::scaling::cluster::KubeCluster;
    use crate::scaling::controller::Scaler;
    let cluster = KubeCluster::connect(
        settings.access == crate::scaling::config::KubeAccess::InCluster,
        &settings.namespace,
    )
    .await
    .map_err(|e| StartError {
        what: "SURGE_KUBE",
        message: e.to_string(),
    })?;
    let holder = format!("{}-{}-{}", config.region, std::process::id(), now_ms());
    let scaler = Arc::new(Scaler::new(
        cluster,
        store,
        settings.clone(),
        holder,
        config.warm_target(),
    ));
    let weak = Arc::downgrade(&scaler);
    tokio::spawn(async move {
        // The first tick waits for the listener (an event starting now may warm the cache).
        tokio::time::sleep(settings_first_tick(&weak)).await;
        while let Some(scaler) = weak.upgrade() {
            if let Err(e) = scaler.tick().await {
                tracing::warn!("scaling tick: {e}");
            }
            let wake = scaler.next_wake().await;
            drop(scaler);
            tokio::time::sleep(wake).await;
        }
    });
    Ok(scaler)
}

fn settings_first_tick(scaler: &std::sync::Weak<crate::scaling::controller::Scaler>) -> Duration {
    scaler
        .upgrade()
        .map_or(Duration::ZERO, |s| s.every().min(Duration::from_secs(1)))
}
