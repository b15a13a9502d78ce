//! Start-up configuration from environment variables and, optionally, a TOML file
//! (`SURGE_CONFIG`), validated before anything listens: a bad value stops the process with a
//! message naming the variable.
//!
//! The file holds the same settings as the environment, named in lower case without the
//! `SURGE_` prefix (`listen = "127.0.0.1:8080"`, `database_url = "postgres://…"`); the
//! environment wins over the file. Secrets (`SURGE_ADMIN_TOKEN`, `SURGE_COOKIE_KEYS`,
//! `SURGE_VOTER_PEPPER`, `CLOUDFLARE_API_TOKEN`, `DATABASE_URL`, `DATABASE_REPLICA_URLS`,
//! `DATABASE_SHARD_URLS`) may instead be read from a file named by the same variable with
//! `_FILE` appended, so they never appear on a command line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use surge_shared::Policy;

use crate::cache::l2::RedisTarget;

/// Default listen address (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;
/// Cloudflare's API base.
pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";

/// Settings whose values are secrets: they may come from `<NAME>_FILE`.
const SECRETS: [&str; 7] = [
    "SURGE_ADMIN_TOKEN",
    "SURGE_COOKIE_KEYS",
    "SURGE_VOTER_PEPPER",
    "CLOUDFLARE_API_TOKEN",
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    "DATABASE_SHARD_URLS",
];

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn fail(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// Where the CDN's purge API is and how to call it.
#[derive(Clone)]
pub struct CloudflareConfig {
    /// API token with the Cache Purge permission (`CLOUDFLARE_API_TOKEN`).
    pub api_token: String,
    /// The zone (`CLOUDFLARE_ZONE_ID`, 32 hex digits).
    pub zone_id: String,
    /// API base (`CLOUDFLARE_API_BASE`; Cloudflare's by default, a stand-in in tests).
    pub api_base: String,
}

impl std::fmt::Debug for CloudflareConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareConfig")
            .field("api_token", &"<redacted>")
            .field("zone_id", &self.zone_id)
            .field("api_base", &self.api_base)
            .finish()
    }
}

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
            .field("primary", &crate::db::pool::redact(&self.primary))
            .field("replicas", &redacted(&self.replicas))
            .finish()
    }
}

/// `urls` with their passwords hidden, for `Debug`.
fn redacted(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| crate::db::pool::redact(u)).collect()
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
    /// How votes are batched per shard (`SURGE_VOTE_BATCH_MAX`, `SURGE_VOTE_BATCH_WAIT`,
    /// `SURGE_VOTE_BATCHES_IN_FLIGHT`).
    pub vote_batch: crate::domain::store::batch::BatchSettings,
    /// Most replication lag a replica may have and still take reads
    /// (`SURGE_REPLICA_MAX_LAG`, default 5s).
    pub max_lag: Duration,
    /// Most connections per pool (`SURGE_DB_POOL_SIZE`, default 16).
    pub pool_size: usize,
    /// Whether to insert the demo election into an empty database (`SURGE_SEED_DEMO`).
    pub seed_demo: bool,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("primary", &crate::db::pool::redact(&self.primary))
            .field("replicas", &redacted(&self.replicas))
            .field("shards", &self.shards)
            .field("vote_batch", &self.vote_batch)
            .field("max_lag", &self.max_lag)
            .field("pool_size", &self.pool_size)
            .field("seed_demo", &self.seed_demo)
            .finish()
    }
}

/// How the origin reaches the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeAccess {
    /// The pod's service account (`SURGE_KUBE=in-cluster`).
    InCluster,
    /// `KUBECONFIG` or `~/.kube/config`, current context (`SURGE_KUBE=kubeconfig`).
    Kubeconfig,
}

/// Predictive scaling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictiveConfig {
    /// The workload whose floor the forecast sets (`SURGE_PREDICTIVE_WORKLOAD`, default the
    /// first managed workload).
    pub workload: String,
    /// Requests/s one pod serves within the SLA, measured with `surge-load capacity`
    /// (`SURGE_POD_CAPACITY_RPS`; predictive scaling is off without it).
    pub per_pod_rps: f64,
    /// How far ahead to forecast (`SURGE_LOOK_AHEAD_MINUTES`, default 15).
    pub look_ahead_minutes: usize,
}

/// The scaling hooks' settings; scaling is off without `SURGE_KUBE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingConfig {
    /// How to reach the API server.
    pub access: KubeAccess,
    /// Namespace of the workloads (`SURGE_KUBE_NAMESPACE`, default `surge`).
    pub namespace: String,
    /// Deployments managed, each with an HPA of the same name (`SURGE_SCALING_WORKLOADS`,
    /// default `api-gateway,auth-service,voting-service`).
    pub workloads: Vec<String>,
    /// How often scheduled events, expiries and the forecast are applied
    /// (`SURGE_SCALING_TICK`, default 15s).
    pub tick: Duration,
    /// Paths warmed when an event with `warm_cache` starts (`SURGE_WARM_URLS`, default
    /// `/api/elections`).
    pub warm_urls: Vec<String>,
    /// The forecast floor, when `SURGE_POD_CAPACITY_RPS` is set.
    pub predictive: Option<PredictiveConfig>,
}

/// The origin's configuration.
#[derive(Clone)]
pub struct Config {
    /// Where to listen (`SURGE_LISTEN`).
    pub listen: SocketAddr,
    /// Bearer token for `/performance/*` (`SURGE_ADMIN_TOKEN`); the admin API is off without it.
    pub admin_token: Option<String>,
    /// This process's region name (`SURGE_REGION`).
    pub region: String,
    /// The policy (`SURGE_POLICY`: a TOML or JSON file; the shipped policy otherwise).
    pub policy: Policy,
    /// Postgres; without it the origin serves the embedded demo store.
    pub database: Option<DatabaseConfig>,
    /// Redis for L2 and the backplane (`REDIS_URL`); L1 only without it.
    pub redis: Option<RedisTarget>,
    /// The CDN purge API; purges stop at L2 without it.
    pub cloudflare: Option<CloudflareConfig>,
    /// Keys that sign and verify `auth_token` cookies (`SURGE_COOKIE_KEYS`, comma-separated,
    /// newest first: the first signs, all verify, so keys rotate without logging anyone out).
    /// Empty: a random key per process (fine for one local process only).
    pub cookie_keys: Vec<Vec<u8>>,
    /// The pepper voting codes are hashed with (`SURGE_VOTER_PEPPER`, at least 32
    /// characters; required with `DATABASE_URL`, random per process for the embedded store).
    pub voter_pepper: Option<Vec<u8>>,
    /// Header carrying the client's address when a trusted proxy or the edge sits in front
    /// (`SURGE_CLIENT_IP_HEADER`, e.g. `cf-connecting-ip`); the TCP peer otherwise.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// How long a login lasts (`SURGE_SESSION_TTL`, default 1h).
    pub session_ttl: Duration,
    /// Whether cookies carry `Secure` (`SURGE_INSECURE_COOKIES=true` drops it for plain-HTTP
    /// local runs).
    pub secure_cookies: bool,
    /// How long tag purges caused by votes are gathered before one purge goes out
    /// (`SURGE_PURGE_COALESCE`, default 1s).
    pub purge_coalesce: Duration,
    /// Scaling hooks; off without `SURGE_KUBE`.
    pub scaling: Option<ScalingConfig>,
    /// L1 bounds (`SURGE_L1_MAX_ITEMS`, default 10,000; `SURGE_L1_MAX_BYTES`, default 256 MiB).
    pub l1: crate::cache::l1::L1Limits,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("database", &self.database)
            .field("redis", &self.redis)
            .field("cloudflare", &self.cloudflare)
            .field("cookie_keys", &self.cookie_keys.len())
            .field(
                "voter_pepper",
                &self.voter_pepper.as_ref().map(|_| "<redacted>"),
            )
            .field("client_ip_header", &self.client_ip_header)
            .field("session_ttl", &self.session_ttl)
            .field("secure_cookies", &self.secure_cookies)
            .field("purge_coalesce", &self.purge_coalesce)
            .field("scaling", &self.scaling)
            .field("l1", &self.l1)
            .finish_non_exhaustive()
    }
}

/// Variable lookup over the environment, `<NAME>_FILE` secrets and the `SURGE_CONFIG` file.
struct Source<F> {
    env: F,
    file: BTreeMap<String, String>,
}

impl<F: Fn(&str) -> Option<String>> Source<F> {
    fn new(env: F) -> Result<Self, ConfigError> {
        let file = match env("SURGE_CONFIG").filter(|p| !p.is_empty()) {
            None => BTreeMap::new(),
            Some(path) => read_config_file(Path::new(&path))?,
        };
        Ok(Self { env, file })
    }

    fn get(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        if let Some(value) = (self.env)(var).filter(|v| !v.is_empty()) {
            return Ok(Some(value));
        }
        if SECRETS.contains(&var)
            && let Some(path) = (self.env)(&format!("{var}_FILE")).filter(|v| !v.is_empty())
        {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| fail(var, format!("cannot read {var}_FILE {path}: {e}")))?;
            return Ok(Some(text.trim().to_string()));
        }
        Ok(self.file.get(&file_key(var)).cloned())
    }
}

/// The name of `var` in the config file.
fn file_key(var: &str) -> String {
    var.strip_prefix("SURGE_")
        .unwrap_or(var)
        .to_ascii_lowercase()
}

/// Every setting, for the config file's unknown-key check.
const VARS: [&str; 32] = [
    "SURGE_LISTEN",
    "SURGE_ADMIN_TOKEN",
    "SURGE_REGION",
    "SURGE_POLICY",
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    "SURGE_REPLICA_MAX_LAG",
    "SURGE_DB_POOL_SIZE",
    "SURGE_SEED_DEMO",
    "REDIS_URL",
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_ZONE_ID",
    "CLOUDFLARE_API_BASE",
    "SURGE_COOKIE_KEYS",
    "SURGE_SESSION_TTL",
    "SURGE_PURGE_COALESCE",
    "SURGE_KUBE",
    "SURGE_KUBE_NAMESPACE",
    "SURGE_SCALING_WORKLOADS",
    "SURGE_SCALING_TICK",
    "SURGE_WARM_URLS",
    "SURGE_POD_CAPACITY_RPS",
    "SURGE_PREDICTIVE_WORKLOAD",
    "SURGE_LOOK_AHEAD_MINUTES",
    "SURGE_L1_MAX_ITEMS",
    "SURGE_L1_MAX_BYTES",
    "DATABASE_SHARD_URLS",
    "SURGE_VOTE_BATCH_MAX",
    "SURGE_VOTE_BATCH_WAIT",
    "SURGE_VOTE_BATCHES_IN_FLIGHT",
    "SURGE_VOTER_PEPPER",
    "SURGE_CLIENT_IP_HEADER",
];

fn read_config_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(
            "SURGE_CONFIG",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| fail("SURGE_CONFIG", format!("{}: {e}", path.display())))?;
    let mut out = BTreeMap::new();
    for (name, value) in table {
        let known = VARS.iter().any(|v| file_key(v) == name) || name == "insecure_cookies";
        if !known {
            let all: Vec<String> = VARS.iter().map(|v| file_key(v)).collect();
            return Err(fail(
                "SURGE_CONFIG",
                format!(
                    "{}: unknown setting `{name}`; known: {}, insecure_cookies",
                    path.display(),
                    all.join(", ")
                ),
            ));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let mut parts = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(s) => parts.push(s),
                        other => {
                            return Err(fail(
                                "SURGE_CONFIG",
                                format!(
                                    "{}: `{name}` lists {other}; list strings only",
                                    path.display()
                                ),
                            ));
                        }
                    }
                }
                parts.join(",")
            }
            other => {
                return Err(fail(
                    "SURGE_CONFIG",
                    format!(
                        "{}: `{name}` is {}; use a string, number or boolean",
                        path.display(),
                        other.type_str()
                    ),
                ));
            }
        };
        out.insert(name, text);
    }
    Ok(out)
}

fn parse_duration(var: &'static str, text: &str) -> Result<Duration, ConfigError> {
    surge_shared::duration::parse(text)
        .map_err(|e| fail(var, format!("{text:?}: {e}; write it like 500ms, 5s or 1h")))
}

fn parse_bool(var: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(fail(var, format!("{text:?} is not true or false"))),
    }
}

fn check_postgres_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    url.parse::<tokio_postgres::Config>().map_err(|e| {
        fail(
            var,
            format!(
                "{:?} is not a Postgres URL ({e}); write postgres://user:password@host:5432/db",
                crate::db::pool::redact(url)
            ),
        )
    })?;
    Ok(())
}

impl Config {
    /// Reads the configuration from the process environment (and `SURGE_CONFIG`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `var` (e.g. `std::env::var`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let src = Source::new(var)?;
        let listen_text = src
            .get("SURGE_LISTEN")?
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = listen_text.parse().map_err(|e| {
            fail(
                "SURGE_LISTEN",
                format!("{listen_text:?} is not an address ({e}); write it like {DEFAULT_LISTEN}"),
            )
        })?;
        let admin_token = src.get("SURGE_ADMIN_TOKEN")?;
        if let Some(token) = &admin_token
            && (token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(fail(
                "SURGE_ADMIN_TOKEN",
                format!(
                    "use at least {MIN_TOKEN_LEN} printable characters without spaces (e.g. `openssl rand -hex 32`)"
                ),
            ));
        }
        let region = src
            .get("SURGE_REGION")?
            .unwrap_or_else(|| "local".to_string());
        if !region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(fail(
                "SURGE_REGION",
                format!("{region:?} must be letters, digits, '-' or '_' (e.g. eu-west)"),
            ));
        }
        let policy = match src.get("SURGE_POLICY")? {
            None => Policy::election_default(),
            Some(path) => load_policy(PathBuf::from(path))?,
        };
        let database = database(&src)?;
        let redis = match src.get("REDIS_URL")? {
            None => None,
            Some(text) => Some(RedisTarget::parse(&text).map_err(|e| fail("REDIS_URL", e))?),
        };
        let cloudflare = cloudflare(&src)?;
        let cookie_keys = match src.get("SURGE_COOKIE_KEYS")? {
            None => Vec::new(),
            Some(text) => surge_shared::session::parse_keys(&text)
                .map_err(|m| fail("SURGE_COOKIE_KEYS", m))?,
        };
        let voter_pepper = match src.get("SURGE_VOTER_PEPPER")? {
            None if database.is_some() => {
                return Err(fail(
                    "SURGE_VOTER_PEPPER",
                    format!(
                        "voting codes in Postgres are hashed with a server-side pepper: set at least {} random characters (e.g. `openssl rand -hex 32`), the same on every origin",
                        crate::domain::voters::code::MIN_PEPPER_LEN
                    ),
                ));
            }
            None => None,
            Some(p) if p.len() < crate::domain::voters::code::MIN_PEPPER_LEN => {
                return Err(fail(
                    "SURGE_VOTER_PEPPER",
                    format!(
                        "use at least {} characters (e.g. `openssl rand -hex 32`)",
                        crate::domain::voters::code::MIN_PEPPER_LEN
                    ),
                ));
            }
            Some(p) => Some(p.into_bytes()),
        };
        let client_ip_header = match src.get("SURGE_CLIENT_IP_HEADER")? {
            None => None,
            Some(name) => Some(axum::http::HeaderName::try_from(name.trim()).map_err(|_| {
                fail(
                    "SURGE_CLIENT_IP_HEADER",
                    format!("{name:?} is not a header name; write e.g. cf-connecting-ip"),
                )
            })?),
        };
        let session_ttl = match src.get("SURGE_SESSION_TTL")? {
            None => Duration::from_secs(3600),
            Some(text) => parse_duration("SURGE_SESSION_TTL", &text)?,
        };
        if session_ttl < Duration::from_secs(60) || session_ttl > Duration::from_secs(7 * 86400) {
            return Err(fail("SURGE_SESSION_TTL", "must be between 1m and 7d"));
        }
        let secure_cookies = match (src.env)("SURGE_INSECURE_COOKIES")
            .or_else(|| src.file.get("insecure_cookies").cloned())
        {
            None => true,
            Some(text) => !parse_bool("SURGE_INSECURE_COOKIES", &text)?,
        };
        let purge_coalesce = match src.get("SURGE_PURGE_COALESCE")? {
            None => Duration::from_secs(1),
            Some(text) => parse_duration("SURGE_PURGE_COALESCE", &text)?,
        };
        if purge_coalesce < Duration::from_millis(10) || purge_coalesce > Duration::from_secs(60) {
            return Err(fail("SURGE_PURGE_COALESCE", "must be between 10ms and 60s"));
        }
        let scaling = scaling(&src)?;
        let defaults = crate::cache::l1::L1Limits::default();
        let l1 = crate::cache::l1::L1Limits {
            max_items: bounded(
                &src,
                "SURGE_L1_MAX_ITEMS",
                defaults.max_items,
                1,
                100_000_000,
            )?,
            max_bytes: bounded(
                &src,
                "SURGE_L1_MAX_BYTES",
                defaults.max_bytes,
                1 << 20,
                1 << 40,
            )?,
        };
        Ok(Self {
            listen,
            admin_token,
            region,
            policy,
            database,
            redis,
            cloudflare,
            cookie_keys,
            voter_pepper,
            client_ip_header,
            session_ttl,
            secure_cookies,
            purge_coalesce,
            scaling,
            l1,
        })
    }
}

/// A whole number setting within `min..=max`, `default` when unset.
fn bounded<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
    var: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match src.get(var)? {
        None => Ok(default),
        Some(text) => text
            .replace('_', "")
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| fail(var, format!("{text:?}: a whole number from {min} to {max}"))),
    }
}

fn is_kube_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn scaling<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
) -> Result<Option<ScalingConfig>, ConfigError> {
    let access = match src.get("SURGE_KUBE")?.as_deref() {
        None | Some("off") => return Ok(None),
        Some("in-cluster") => KubeAccess::InCluster,
        Some("kubeconfig") => KubeAccess::Kubeconfig,
        Some(other) => {
            return Err(fail(
                "SURGE_KUBE",
                format!(
                    "{other:?}: use `in-cluster` (inside a pod), `kubeconfig` (KUBECONFIG or ~/.kube/config) or `off`"
                ),
            ));
        }
    };
    let namespace = src
        .get("SURGE_KUBE_NAMESPACE")?
        .unwrap_or_else(|| "surge".into());
    if !is_kube_name(&namespace) {
        return Err(fail(
            "SURGE_KUBE_NAMESPACE",
            format!(
                "{namespace:?} is not a Kubernetes namespace name (lower-case letters, digits, '-')"
            ),
        ));
    }
    let workloads: Vec<String> = src
        .get("SURGE_SCALING_WORKLOADS")?
        .unwrap_or_else(|| "api-gateway,auth-service,voting-service".into())
        .split(',')
        .map(|w| w.trim().to_string())
        .collect();
    if let Some(bad) = workloads.iter().find(|w| !is_kube_name(w)) {
        return Err(fail(
            "SURGE_SCALING_WORKLOADS",
            format!(
                "{bad:?} is not a Deployment name; list names separated by commas, e.g. api-gateway,voting-service"
            ),
        ));
    }
    let tick = match src.get("SURGE_SCALING_TICK")? {
        None => Duration::from_secs(15),
        Some(text) => parse_duration("SURGE_SCALING_TICK", &text)?,
    };
    if tick < Duration::from_millis(100) || tick > Duration::from_secs(300) {
        return Err(fail("SURGE_SCALING_TICK", "must be between 100ms and 5m"));
    }
    let warm_urls: Vec<String> = src
        .get("SURGE_WARM_URLS")?
        .unwrap_or_else(|| "/api/elections".into())
        .split(',')
        .map(|u| u.trim().to_string())
        .collect();
    if let Some(bad) = warm_urls
        .iter()
        .find(|u| !u.starts_with('/') || u.contains(' '))
    {
        return Err(fail(
            "SURGE_WARM_URLS",
            format!("{bad:?}: list paths of this origin starting with '/', separated by commas"),
        ));
    }
    let predictive = match src.get("SURGE_POD_CAPACITY_RPS")? {
        None => None,
        Some(text) => {
            let per_pod_rps: f64 = text
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    fail(
                        "SURGE_POD_CAPACITY_RPS",
                        format!("{text:?}: give the requests/s one pod sustains (a positive number, e.g. 2500)"),
                    )
                })?;
            let workload = src
                .get("SURGE_PREDICTIVE_WORKLOAD")?
                .unwrap_or_else(|| workloads[0].clone());
            if !workloads.contains(&workload) {
                return Err(fail(
                    "SURGE_PREDICTIVE_WORKLOAD",
                    format!(
                        "{workload:?} is not one of SURGE_SCALING_WORKLOADS ({})",
                        workloads.join(", ")
                    ),
                ));
            }
            let look_ahead_minutes = match src.get("SURGE_LOOK_AHEAD_MINUTES")? {
                None => 15,
                Some(text) => text
                    .parse()
                    .ok()
                    .filter(|m| (1..=1440).contains(m))
                    .ok_or_else(|| {
                        fail(
                            "SURGE_LOOK_AHEAD_MINUTES",
                            format!("{text:?}: a whole number of minutes, 1–1440"),
                        )
                    })?,
            };
            Some(PredictiveConfig {
                workload,
                per_pod_rps,
                look_ahead_minutes,
            })
        }
    };
    Ok(Some(ScalingConfig {
        access,
        namespace,
        workloads,
        tick,
        warm_urls,
        predictive,
    }))
}

fn database<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
) -> Result<Option<DatabaseConfig>, ConfigError> {
    let replicas: Vec<String> = src
        .get("DATABASE_REPLICA_URLS")?
        .map(|t| t.split(',').map(|u| u.trim().to_string()).collect())
        .unwrap_or_default();
    let Some(primary) = src.get("DATABASE_URL")? else {
        if !replicas.is_empty() {
            return Err(fail(
                "DATABASE_REPLICA_URLS",
                "replicas need a primary: set DATABASE_URL too",
            ));
        }
        if src.get("DATABASE_SHARD_URLS")?.is_some() {
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
    let max_lag = match src.get("SURGE_REPLICA_MAX_LAG")? {
        None => Duration::from_secs(5),
        Some(text) => parse_duration("SURGE_REPLICA_MAX_LAG", &text)?,
    };
    let pool_size = match src.get("SURGE_DB_POOL_SIZE")? {
        None => 16,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                fail(
                    "SURGE_DB_POOL_SIZE",
                    format!("{text:?}: give a number of connections from 1 to 1000"),
                )
            })?,
    };
    let seed_demo = match src.get("SURGE_SEED_DEMO")? {
        None => false,
        Some(text) => parse_bool("SURGE_SEED_DEMO", &text)?,
    };
    let shards = match src.get("DATABASE_SHARD_URLS")? {
        None => Vec::new(),
        Some(text) => shard_urls(&text)?,
    };
    let defaults = crate::domain::store::batch::BatchSettings::default();
    let vote_batch = crate::domain::store::batch::BatchSettings {
        max_votes: usize::try_from(bounded(
            src,
            "SURGE_VOTE_BATCH_MAX",
            defaults.max_votes as u64,
            1,
            10_000,
        )?)
        .unwrap_or(defaults.max_votes),
        max_wait: match src.get("SURGE_VOTE_BATCH_WAIT")? {
            None => defaults.max_wait,
            Some(text) => {
                let wait = parse_duration("SURGE_VOTE_BATCH_WAIT", &text)?;
                if wait > Duration::from_millis(100) {
                    return Err(fail(
                        "SURGE_VOTE_BATCH_WAIT",
                        format!("{text:?}: at most 100ms (every vote waits this long at worst)"),
                    ));
                }
                wait
            }
        },
        in_flight: usize::try_from(bounded(
            src,
            "SURGE_VOTE_BATCHES_IN_FLIGHT",
            defaults.in_flight as u64,
            1,
            64,
        )?)
        .unwrap_or(defaults.in_flight),
    };
    Ok(Some(DatabaseConfig {
        primary,
        replicas,
        shards,
        vote_batch,
        max_lag,
        pool_size,
        seed_demo,
    }))
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

fn cloudflare<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
) -> Result<Option<CloudflareConfig>, ConfigError> {
    let token = src.get("CLOUDFLARE_API_TOKEN")?;
    let zone = src.get("CLOUDFLARE_ZONE_ID")?;
    let base = src.get("CLOUDFLARE_API_BASE")?;
    let (api_token, zone_id) = match (token, zone) {
        (None, None) => {
            if base.is_some() {
                return Err(fail(
                    "CLOUDFLARE_API_BASE",
                    "set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ZONE_ID too, or unset it",
                ));
            }
            return Ok(None);
        }
        (Some(_), None) => {
            return Err(fail(
                "CLOUDFLARE_ZONE_ID",
                "CLOUDFLARE_API_TOKEN is set but the zone is not: copy the zone ID from the dashboard's Overview page",
            ));
        }
        (None, Some(_)) => {
            return Err(fail(
                "CLOUDFLARE_API_TOKEN",
                "CLOUDFLARE_ZONE_ID is set but the token is not: create a token with the Zone › Cache Purge permission",
            ));
        }
        (Some(t), Some(z)) => (t, z),
    };
    if !api_token.bytes().all(|b| b.is_ascii_graphic()) || api_token.len() < 20 {
        return Err(fail(
            "CLOUDFLARE_API_TOKEN",
            "does not look like an API token (at least 20 printable characters, no spaces)",
        ));
    }
    if zone_id.len() != 32 || !zone_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail(
            "CLOUDFLARE_ZONE_ID",
            format!("{zone_id:?} is not a zone ID (32 hex digits)"),
        ));
    }
    let api_base = base.unwrap_or_else(|| CLOUDFLARE_API.to_string());
    let parsed = url::Url::parse(&api_base).map_err(|e| {
        fail(
            "CLOUDFLARE_API_BASE",
            format!("{api_base:?} is not a URL ({e}); default is {CLOUDFLARE_API}"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(fail(
            "CLOUDFLARE_API_BASE",
            format!("{api_base:?} must be an http(s) URL"),
        ));
    }
    Ok(Some(CloudflareConfig {
        api_token,
        zone_id,
        api_base: api_base.trim_end_matches('/').to_string(),
    }))
}

fn load_policy(path: PathBuf) -> Result<Policy, ConfigError> {
    let text = std::fs::read_to_string(&path).map_err(|e| {
        fail(
            "SURGE_POLICY",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let parsed = if path.extension().is_some_and(|x| x == "json") {
        Policy::from_json_str(&text)
    } else {
        Policy::from_toml_str(&text)
    };
    parsed.map_err(|e| fail("SURGE_POLICY", format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let path = path.to_str().unwrap_or_default().to_string();
        (dir, path)
    }

    #[test]
    fn defaults_need_nothing() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.admin_token.is_none());
        assert_eq!(c.region, "local");
        assert!(c.database.is_none() && c.redis.is_none() && c.cloudflare.is_none());
        assert!(c.secure_cookies);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let zone = "0123456789abcdef0123456789abcdef";
        let token = "t".repeat(40);
        let token = token.as_str();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SURGE_LISTEN", "localhost")], "SURGE_LISTEN"),
            (&[("SURGE_ADMIN_TOKEN", "short")], "SURGE_ADMIN_TOKEN"),
            (&[("SURGE_REGION", "eu west")], "SURGE_REGION"),
            (
                &[("SURGE_POLICY", "/nonexistent/policy.toml")],
                "SURGE_POLICY",
            ),
            (&[("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (
                &[("DATABASE_REPLICA_URLS", "postgres://r/db")],
                "DATABASE_REPLICA_URLS",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://p/db"),
                    ("SURGE_REPLICA_MAX_LAG", "soon"),
                ],
                "SURGE_REPLICA_MAX_LAG",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://p/db"),
                    ("SURGE_DB_POOL_SIZE", "0"),
                ],
                "SURGE_DB_POOL_SIZE",
            ),
            (&[("DATABASE_URL", "postgres://p/db")], "SURGE_VOTER_PEPPER"),
            (
                &[
                    ("DATABASE_URL", "postgres://p/db"),
                    ("SURGE_VOTER_PEPPER", "short"),
                ],
                "SURGE_VOTER_PEPPER",
            ),
            (
                &[("DATABASE_SHARD_URLS", "postgres://s/db")],
                "DATABASE_SHARD_URLS",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://p/db"),
                    ("DATABASE_SHARD_URLS", "postgres://s0/db;;postgres://s1/db"),
                ],
                "DATABASE_SHARD_URLS",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://p/db"),
                    ("DATABASE_SHARD_URLS", "postgres://s0/db;postgres://s0/db"),
                ],
                "DATABASE_SHARD_URLS",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://p/db"),
                    ("SURGE_VOTE_BATCH_MAX", "0"),
                ],
                "SURGE_VOTE_BATCH_MAX",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://p/db"),
                    ("SURGE_VOTE_BATCH_WAIT", "1s"),
                ],
                "SURGE_VOTE_BATCH_WAIT",
            ),
            (
                &[("SURGE_CLIENT_IP_HEADER", "bad header")],
                "SURGE_CLIENT_IP_HEADER",
            ),
            (&[("REDIS_URL", "http://x")], "REDIS_URL"),
            (&[("CLOUDFLARE_API_TOKEN", token)], "CLOUDFLARE_ZONE_ID"),
            (
                &[
                    ("CLOUDFLARE_API_TOKEN", token),
                    ("CLOUDFLARE_ZONE_ID", "zone"),
                ],
                "CLOUDFLARE_ZONE_ID",
            ),
            (
                &[
                    ("CLOUDFLARE_API_TOKEN", token),
                    ("CLOUDFLARE_ZONE_ID", zone),
                    ("CLOUDFLARE_API_BASE", "ftp://x"),
                ],
                "CLOUDFLARE_API_BASE",
            ),
            (&[("SURGE_COOKIE_KEYS", "short")], "SURGE_COOKIE_KEYS"),
            (&[("SURGE_SESSION_TTL", "1s")], "SURGE_SESSION_TTL"),
            (&[("SURGE_PURGE_COALESCE", "2h")], "SURGE_PURGE_COALESCE"),
            (
                &[("SURGE_INSECURE_COOKIES", "maybe")],
                "SURGE_INSECURE_COOKIES",
            ),
            (&[("SURGE_CONFIG", "/nonexistent.toml")], "SURGE_CONFIG"),
            (&[("SURGE_KUBE", "yes")], "SURGE_KUBE"),
            (&[("SURGE_L1_MAX_ITEMS", "0")], "SURGE_L1_MAX_ITEMS"),
            (&[("SURGE_L1_MAX_BYTES", "64k")], "SURGE_L1_MAX_BYTES"),
            (
                &[
                    ("SURGE_KUBE", "kubeconfig"),
                    ("SURGE_KUBE_NAMESPACE", "Surge"),
                ],
                "SURGE_KUBE_NAMESPACE",
            ),
            (
                &[
                    ("SURGE_KUBE", "kubeconfig"),
                    ("SURGE_SCALING_WORKLOADS", "api,Web"),
                ],
                "SURGE_SCALING_WORKLOADS",
            ),
            (
                &[("SURGE_KUBE", "kubeconfig"), ("SURGE_SCALING_TICK", "1h")],
                "SURGE_SCALING_TICK",
            ),
            (
                &[
                    ("SURGE_KUBE", "kubeconfig"),
                    ("SURGE_WARM_URLS", "api/elections"),
                ],
                "SURGE_WARM_URLS",
            ),
            (
                &[
                    ("SURGE_KUBE", "kubeconfig"),
                    ("SURGE_POD_CAPACITY_RPS", "-5"),
                ],
                "SURGE_POD_CAPACITY_RPS",
            ),
            (
                &[
                    ("SURGE_KUBE", "kubeconfig"),
                    ("SURGE_POD_CAPACITY_RPS", "2500"),
                    ("SURGE_PREDICTIVE_WORKLOAD", "web"),
                ],
                "SURGE_PREDICTIVE_WORKLOAD",
            ),
            (
                &[
                    ("SURGE_KUBE", "kubeconfig"),
                    ("SURGE_POD_CAPACITY_RPS", "2500"),
                    ("SURGE_LOOK_AHEAD_MINUTES", "0"),
                ],
                "SURGE_LOOK_AHEAD_MINUTES",
            ),
        ];
        for (pairs, var) in cases {
            let err = config(pairs).err();
            assert_eq!(
                err.as_ref().map(|e| e.var),
                Some(*var),
                "{pairs:?}: {err:?}"
            );
        }
    }

    #[test]
    fn scaling_is_off_by_default_and_has_sane_defaults_when_on() {
        assert!(config(&[]).expect("valid").scaling.is_none());
        let c = config(&[
            ("SURGE_KUBE", "in-cluster"),
            ("SURGE_POD_CAPACITY_RPS", "2500"),
        ])
        .expect("valid");
        let s = c.scaling.expect("scaling on");
        assert_eq!(s.access, KubeAccess::InCluster);
        assert_eq!(s.namespace, "surge");
        assert_eq!(
            s.workloads,
            ["api-gateway", "auth-service", "voting-service"]
        );
        let p = s.predictive.expect("predictive on");
        assert_eq!(
            (p.workload.as_str(), p.per_pod_rps, p.look_ahead_minutes),
            ("api-gateway", 2500.0, 15)
        );
    }

    #[test]
    fn a_bad_policy_file_reports_the_field() {
        let (_dir, path) = temp_file(
            "policy.toml",
            "[[routes]]\nname = \"a\"\npattern = \"/a\"\nclass = \"public\"\n",
        );
        let err = config(&[("SURGE_POLICY", &path)]).expect_err("invalid policy");
        assert!(err.to_string().contains("routes[0].ttl"), "{err}");
    }

    #[test]
    fn the_config_file_fills_in_and_the_environment_wins() {
        let (_dir, path) = temp_file(
            "surge.toml",
            "listen = \"127.0.0.1:9000\"\nregion = \"eu-west\"\ndatabase_url = \"postgres://u@h/db\"\n\
             database_replica_urls = [\"postgres://u@r1/db\", \"postgres://u@r2/db\"]\ndb_pool_size = 4\n\
             voter_pepper = \"pepper-0123456789abcdef0123456789abcdef\"\n\
             database_shard_urls = \"postgres://u@s0/db, postgres://u@s0r/db; postgres://u@s1/db\"\n\
             vote_batch_max = 100\nvote_batch_wait = \"5ms\"\n",
        );
        let c = config(&[("SURGE_CONFIG", &path), ("SURGE_REGION", "us-east")]).expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.region, "us-east");
        assert!(c.voter_pepper.is_some());
        assert!(!format!("{c:?}").contains("pepper-0123"));
        let db = c.database.expect("database configured");
        assert_eq!(db.replicas.len(), 2);
        assert_eq!(db.pool_size, 4);
        assert_eq!(db.shards.len(), 2);
        assert_eq!(
            db.shards[0].replicas,
            vec!["postgres://u@s0r/db".to_string()]
        );
        assert!(db.shards[1].replicas.is_empty());
        assert_eq!(db.vote_batch.max_votes, 100);
        assert_eq!(db.vote_batch.max_wait, Duration::from_millis(5));
        assert_eq!(db.vote_batch.in_flight, 4);
    }

    #[test]
    fn the_config_file_rejects_unknown_settings() {
        let (_dir, path) = temp_file("surge.toml", "listne = \"127.0.0.1:9000\"\n");
        let err = config(&[("SURGE_CONFIG", &path)]).expect_err("typo");
        assert!(
            err.to_string().contains("unknown setting `listne`"),
            "{err}"
        );
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let token = "a-very-secret-admin-token-123";
        let (_dir, path) = temp_file("token", &format!("{token}\n"));
        let c = config(&[("SURGE_ADMIN_TOKEN_FILE", &path)]).expect("valid");
        assert_eq!(c.admin_token.as_deref(), Some(token));
        assert!(!format!("{c:?}").contains(token));
    }

    #[test]
    fn cookie_keys_rotate_newest_first() {
        let a = "a".repeat(32);
        let b = "b".repeat(40);
        let c = config(&[("SURGE_COOKIE_KEYS", &format!("{a}, {b}"))]).expect("valid");
        assert_eq!(c.cookie_keys, vec![a.into_bytes(), b.into_bytes()]);
    }
}
