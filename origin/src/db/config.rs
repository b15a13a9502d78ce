//! The Postgres tier's settings: the main database and its replicas, the vote shards, the
//! replica lag limit, pool size and the demo seed.

use std::sync::Arc;
use std::time::Duration;

use crate::settings::{ConfigError, Settings, fail};

use crate::redact::redact;

/// One vote shard: a primary and its read replicas.
#[derive(Clone)]
pub struct ShardUrls {
    /// The shard's primary.
    pub primary: String,
    /// Its replicas.
    pub replicas: Vec<String>,
}

impl std::fmt::Debug for ShardUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardUrls")
            .field("primary", &redact(&self.primary))
            .field("replicas", &redacted(&self.replicas))
            .finish()
    }
}

/// `urls` with their passwords hidden, for `Debug`.
fn redacted(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| redact(u)).collect()
}

/// Postgres settings.
#[derive(Clone)]
pub struct DatabaseConfig {
    /// The primary (`DATABASE_URL`).
    pub primary: String,
    /// Read replicas (`DATABASE_REPLICA_URLS`, comma-separated).
    pub replicas: Vec<String>,
    /// Vote shards (`DATABASE_SHARD_URLS`: shards separated by `;`, each a primary followed by
    /// its replicas, comma-separated). Empty: the main database is the one shard.
    pub shards: Vec<ShardUrls>,
    /// Most replication lag a replica may have and still take reads
    /// (`SURGE_REPLICA_MAX_LAG`, default 5s).
    pub max_lag: Duration,
    /// Most connections per pool (`SURGE_DB_POOL_SIZE`, default 16).
    pub pool_size: usize,
    /// Whether to insert the demo election into an empty database (`SURGE_SEED_DEMO`).
    pub seed_demo: bool,
    /// Statements at least this slow go to the slow-query log (`SURGE_SLOW_QUERY`, default
    /// 100ms).
    pub slow_query: Duration,
    /// A certificate authority (PEM, `DATABASE_CA_FILE`) trusted besides the platform's roots
    /// for TLS (`sslmode=require` in the URLs, or `prefer`, the default).
    pub ca: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("primary", &redact(&self.primary))
            .field("replicas", &redacted(&self.replicas))
            .field("shards", &self.shards)
            .field("max_lag", &self.max_lag)
            .field("pool_size", &self.pool_size)
            .field("seed_demo", &self.seed_demo)
            .field("slow_query", &self.slow_query)
            .field("ca", &self.ca.as_ref().map(|_| "DATABASE_CA_FILE"))
            .finish()
    }
}

/// Reads the Postgres settings; `None` without `DATABASE_URL` (the embedded store).
pub fn read(s: &Settings<'_>) -> Result<Option<DatabaseConfig>, ConfigError> {
    let replicas: Vec<String> = s
        .secret("DATABASE_REPLICA_URLS")?
        .map(|t| t.split(',').map(|u| u.trim().to_string()).collect())
        .unwrap_or_default();
    let shards = s.secret("DATABASE_SHARD_URLS")?;
    let Some(primary) = s.secret("DATABASE_URL")? else {
        if !replicas.is_empty() {
            return Err(fail(
                "DATABASE_REPLICA_URLS",
                "replicas need a primary: set DATABASE_URL too",
            ));
        }
        if shards.is_some() {
            return Err(fail(
                "DATABASE_SHARD_URLS",
                "vote shards need the main database for elections: set DATABASE_URL too",
            ));
        }
        return Ok(None);
    };
    check_postgres_url("DATABASE_URL", &primary)?;
    for url in &replicas {
        check_postgres_url("DATABASE_REPLICA_URLS", url)?;
    }
    Ok(Some(DatabaseConfig {
        primary,
        replicas,
        shards: match shards {
            None => Vec::new(),
            Some(text) => shard_urls(&text)?,
        },
        max_lag: s.duration(
            "SURGE_REPLICA_MAX_LAG",
            Duration::from_secs(5),
            Duration::ZERO,
            Duration::from_secs(3600),
        )?,
        pool_size: s.number("SURGE_DB_POOL_SIZE", 16, 1, 1000)?,
        seed_demo: s.flag("SURGE_SEED_DEMO", false)?,
        ca: s.ca_file("DATABASE_CA_FILE")?,
        slow_query: s.duration(
            "SURGE_SLOW_QUERY",
            Duration::from_millis(100),
            Duration::from_millis(1),
            Duration::from_secs(60),
        )?,
    }))
}

fn check_postgres_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    url.parse::<tokio_postgres::Config>().map_err(|e| {
        fail(
            var,
            format!(
                "{:?} is not a Postgres URL ({e}); write postgres://user:password@host:5432/db",
                redact(url)
            ),
        )
    })?;
    Ok(())
}

/// `DATABASE_SHARD_URLS`: `primary[,replica…][;primary[,replica…]…]`.
fn shard_urls(text: &str) -> Result<Vec<ShardUrls>, ConfigError> {
    const VAR: &str = "DATABASE_SHARD_URLS";
    let mut shards = Vec::new();
    for (i, shard) in text.split(';').map(str::trim).enumerate() {
        if shard.is_empty() {
            return Err(fail(
                VAR,
                format!(
                    "shard {i} is empty: separate shards with ';', each a primary URL then its replicas separated by ','"
                ),
            ));
        }
        let mut urls = shard.split(',').map(|u| u.trim().to_string());
        let primary = urls.next().unwrap_or_default();
        let replicas: Vec<String> = urls.collect();
        for url in std::iter::once(&primary).chain(&replicas) {
            check_postgres_url(VAR, url)?;
        }
        shards.push(ShardUrls { primary, replicas });
    }
    let mut primaries: Vec<&str> = shards.iter().map(|s| s.primary.as_str()).collect();
    primaries.sort_unstable();
    if primaries.windows(2).any(|w| w[0] == w[1]) {
        return Err(fail(
            VAR,
            "a primary appears twice: each shard needs its own database",
        ));
    }
    Ok(shards)
}
