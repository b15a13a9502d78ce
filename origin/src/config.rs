//! Start-up configuration from environment variables and, optionally, a TOML file
//! (`SURGE_CONFIG`), validated before anything listens: a bad value stops the process with a
//! message naming the variable. How a variable is found is [`crate::settings`]'s job; each
//! subsystem reads and checks its own (`cache::config`, `db::config`, `cdn::config`,
//! `scaling::config`, `domain::config`); this module reads the process's own settings and
//! puts them together.

use std::net::SocketAddr;
use std::path::PathBuf;

use surge_shared::Policy;
use surge_shared::edge_auth::EdgeKey;

use crate::cache::l1::L1Limits;
use crate::cache::l2::RedisTarget;
use crate::cdn::config::CloudflareConfig;
use crate::db::config::DatabaseConfig;
use crate::domain::config::DomainConfig;
use crate::scaling::config::ScalingConfig;
pub use crate::settings::ConfigError;
use crate::settings::{Settings, fail};

/// Default listen address (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default admin listen address (loopback only).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The origin's configuration.
#[derive(Clone)]
pub struct Config {
    /// Where to listen for public traffic (`SURGE_LISTEN`).
    pub listen: SocketAddr,
    /// Where the admin API listens (`SURGE_ADMIN_LISTEN`, default loopback): apart from
    /// public traffic, so only what can reach this address can reach `/performance/*`.
    pub admin_listen: SocketAddr,
    /// Where Prometheus scrapes `/metrics` without the admin token
    /// (`SURGE_METRICS_LISTEN`; unset: metrics only at `/performance/metrics`).
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token for `/performance/*` (`SURGE_ADMIN_TOKEN`); the admin API is off without it.
    pub admin_token: Option<String>,
    /// This process's region name (`SURGE_REGION`).
    pub region: String,
    /// The policy (`SURGE_POLICY`: a TOML or JSON file; the shipped policy otherwise).
    pub policy: Policy,
    /// Header carrying the client's address when a trusted proxy or the edge sits in front
    /// (`SURGE_CLIENT_IP_HEADER`, e.g. `cf-connecting-ip`); the TCP peer otherwise.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// Keys the edge signs origin requests with (`SURGE_EDGE_KEYS`, a secret: `id:secret`
    /// pairs, newest first). With them the public listener refuses, with 403, every request
    /// the edge did not sign (probes excepted); without them it serves anyone.
    pub edge_keys: Vec<EdgeKey>,
    /// Postgres; without it the origin serves the embedded demo store.
    pub database: Option<DatabaseConfig>,
    /// Redis for L2 and the backplane (`REDIS_URL`); L1 only without it.
    pub redis: Option<RedisTarget>,
    /// A `noeviction` Redis for tag and write versions (`REDIS_STATE_URL`); `redis`'s otherwise.
    pub redis_state: Option<RedisTarget>,
    /// A certificate authority for `rediss://` (`REDIS_CA_FILE`).
    pub redis_ca: Option<std::sync::Arc<[u8]>>,
    /// L1 bounds.
    pub l1: L1Limits,
    /// The CDN purge API; purges stop at L2 without it.
    pub cloudflare: Option<CloudflareConfig>,
    /// Scaling hooks; off without `SURGE_KUBE`.
    pub scaling: Option<ScalingConfig>,
    /// Sessions, voting codes, vote batching and purge coalescing.
    pub domain: DomainConfig,
    /// How long a stopping process keeps serving while not ready, so load balancers take it
    /// out of rotation first (`SURGE_DRAIN`, default 5s; below the pod's
    /// `terminationGracePeriodSeconds`).
    pub drain: std::time::Duration,
    /// What the public listener speaks (`SURGE_PUBLIC_HTTP`: `http1`, the default, or
    /// `auto` for HTTP/1.1 and h2c).
    pub public_http: crate::http::serve::Protocol,
    /// Paths fetched through the public routes before the process reports ready
    /// (`SURGE_START_WARM`, comma-separated; none by default).
    pub start_warm: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("metrics_listen", &self.metrics_listen)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("client_ip_header", &self.client_ip_header)
            .field("edge_keys", &self.edge_keys)
            .field("database", &self.database)
            .field("redis", &self.redis)
            .field("redis_state", &self.redis_state)
            .field("redis_ca", &self.redis_ca.as_ref().map(|_| "REDIS_CA_FILE"))
            .field("l1", &self.l1)
            .field("cloudflare", &self.cloudflare)
            .field("scaling", &self.scaling)
            .field("domain", &self.domain)
            .field("drain", &self.drain)
            .field("public_http", &self.public_http)
            .field("start_warm", &self.start_warm)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Where this process warms its own cache: its public listener, with the newest edge key.
    pub fn warm_target(&self) -> crate::cache::warm::SelfTarget {
        crate::cache::warm::SelfTarget {
            listen: self.listen,
            key: self.edge_keys.first().cloned(),
        }
    }

    /// Reads the configuration from the process environment (and `SURGE_CONFIG`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `var` (e.g. `std::env::var`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let s = Settings::new(var)?;
        let config = Self::read(&s)?;
        s.finish()?;
        Ok(config)
    }

    /// Reads every subsystem's settings through `s` and checks how they fit together.
    fn read(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let database = crate::db::config::read(s)?;
        let redis = crate::cache::config::redis(s)?;
        let redis_state = crate::cache::config::redis_state(s, redis.as_ref())?;
        let config = Self {
            listen: listen(s, "SURGE_LISTEN", DEFAULT_LISTEN)?,
            admin_listen: listen(s, "SURGE_ADMIN_LISTEN", DEFAULT_ADMIN_LISTEN)?,
            metrics_listen: match s.get("SURGE_METRICS_LISTEN")? {
                None => None,
                Some(_) => Some(listen(s, "SURGE_METRICS_LISTEN", "127.0.0.1:9091")?),
            },
            admin_token: admin_token(s)?,
            region: s.parsed("SURGE_REGION", "local".to_string(), |text| {
                if text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    Ok(text.to_string())
                } else {
                    Err(format!(
                        "{text:?} must be letters, digits, '-' or '_' (e.g. eu-west)"
                    ))
                }
            })?,
            policy: match s.get("SURGE_POLICY")? {
                None => Policy::election_default(),
                Some(path) => load_policy(PathBuf::from(path))?,
            },
            client_ip_header: match s.get("SURGE_CLIENT_IP_HEADER")? {
                None => None,
                Some(name) => {
                    Some(axum::http::HeaderName::try_from(name.trim()).map_err(|_| {
                        fail(
                            "SURGE_CLIENT_IP_HEADER",
                            format!("{name:?} is not a header name; write e.g. cf-connecting-ip"),
                        )
                    })?)
                }
            },
            edge_keys: match s.secret("SURGE_EDGE_KEYS")? {
                None => Vec::new(),
                Some(text) => surge_shared::edge_auth::parse_keys(&text)
                    .map_err(|message| fail("SURGE_EDGE_KEYS", message))?,
            },
            domain: crate::domain::config::read(s, database.is_some())?,
            database,
            redis,
            redis_state,
            redis_ca: crate::cache::config::redis_ca(s)?,
            l1: crate::cache::config::l1(s)?,
            cloudflare: crate::cdn::config::read(s)?,
            scaling: crate::scaling::config::read(s)?,
            drain: s.duration(
                "SURGE_DRAIN",
                std::time::Duration::from_secs(5),
                std::time::Duration::ZERO,
                std::time::Duration::from_secs(300),
            )?,
            start_warm: start_warm(s)?,
            public_http: s.parsed("SURGE_PUBLIC_HTTP", Default::default(), str::parse)?,
        };
        let overlap = |a: SocketAddr, b: SocketAddr| {
            a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        };
        let (public, admin) = (config.listen, config.admin_listen);
        if overlap(public, admin) {
            return Err(fail(
                "SURGE_ADMIN_LISTEN",
                format!(
                    "{admin} overlaps SURGE_LISTEN ({public}): the admin API needs its own port, e.g. 127.0.0.1:9090"
                ),
            ));
        }
        if let Some(metrics) = config.metrics_listen
            && (overlap(metrics, public) || overlap(metrics, admin))
        {
            return Err(fail(
                "SURGE_METRICS_LISTEN",
                format!(
                    "{metrics} overlaps SURGE_LISTEN ({public}) or SURGE_ADMIN_LISTEN ({admin}): give metrics their own port, e.g. 0.0.0.0:9091"
                ),
            ));
        }
        Ok(config)
    }
}

fn listen(s: &Settings<'_>, var: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
    let text = s.get(var)?.unwrap_or_else(|| default.to_string());
    text.parse().map_err(|e| {
        fail(
            var,
            format!("{text:?} is not an address ({e}); write it like {default}"),
        )
    })
}

fn start_warm(s: &Settings<'_>) -> Result<Vec<String>, ConfigError> {
    let paths: Vec<String> = s
        .list("SURGE_START_WARM", "")?
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    if let Some(bad) = paths
        .iter()
        .find(|p| !p.starts_with('/') || p.contains(' '))
    {
        return Err(fail(
            "SURGE_START_WARM",
            format!("{bad:?}: list paths of this origin starting with '/', separated by commas"),
        ));
    }
    Ok(paths)
}

fn admin_token(s: &Settings<'_>) -> Result<Option<String>, ConfigError> {
    let token = s.secret("SURGE_ADMIN_TOKEN")?;
    if let Some(token) = &token
        && (token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(fail(
            "SURGE_ADMIN_TOKEN",
            format!(
                "use at least {MIN_TOKEN_LEN} printable characters without spaces (e.g. `openssl rand -hex 32`)"
            ),
        ));
    }
    Ok(token)
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn help_lists_exactly_the_settings_the_subsystems_read() {
        let pepper = "p".repeat(40);
        let setups: [&[(&str, &str)]; 3] = [
            &[],
            &[
                ("DATABASE_URL", "postgres://surge@127.0.0.1:5432/surge"),
                ("SURGE_VOTER_PEPPER", &pepper),
            ],
            &[
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("REDIS_STATE_URL", "redis://127.0.0.1:6380"),
                ("CLOUDFLARE_API_TOKEN", "token-0123456789abcdef0123"),
                ("CLOUDFLARE_ZONE_ID", "0123456789abcdef0123456789abcdef"),
                ("SURGE_KUBE", "in-cluster"),
                ("SURGE_POD_CAPACITY_RPS", "500"),
                ("SURGE_METRICS_LISTEN", "127.0.0.1:9091"),
            ],
        ];
        let mut read = std::collections::BTreeSet::new();
        for setup in setups {
            let s = Settings::new(|name| {
                setup
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .expect("settings");
            Config::read(&s).expect("valid");
            read.extend(s.names_read());
        }
        // The binary reads these itself: the log format before anything else, the file
        // before any setting.
        read.extend(["SURGE_LOG_FORMAT", "SURGE_CONFIG"]);
        read.extend(crate::telemetry::otel::VARS.iter().copied());
        let listed: std::collections::BTreeSet<&str> = crate::settings::catalogue::SETTINGS
            .iter()
            .map(|s| s.var)
            .collect();
        assert_eq!(
            read.difference(&listed).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "read but not in settings/catalogue.rs"
        );
        assert_eq!(
            listed.difference(&read).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "in settings/catalogue.rs but never read"
        );
    }

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
        assert_eq!(c.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert!(c.admin_token.is_none());
        assert_eq!(c.region, "local");
        assert!(c.database.is_none() && c.redis.is_none() && c.cloudflare.is_none());
        assert!(c.domain.secure_cookies);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let zone = "0123456789abcdef0123456789abcdef";
        let token = "t".repeat(40);
        let token = token.as_str();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SURGE_LISTEN", "localhost")], "SURGE_LISTEN"),
            (
                &[("SURGE_ADMIN_LISTEN", "127.0.0.1:8080")],
                "SURGE_ADMIN_LISTEN",
            ),
            (
                &[
                    ("SURGE_LISTEN", "0.0.0.0:7000"),
                    ("SURGE_ADMIN_LISTEN", "127.0.0.1:7000"),
                ],
                "SURGE_ADMIN_LISTEN",
            ),
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
            (&[("SURGE_EDGE_KEYS", "k1:short")], "SURGE_EDGE_KEYS"),
            (&[("REDIS_URL", "http://x")], "REDIS_URL"),
            (
                &[("REDIS_STATE_URL", "redis://127.0.0.1:6380")],
                "REDIS_STATE_URL",
            ),
            (
                &[
                    ("REDIS_URL", "redis://127.0.0.1:6379"),
                    ("REDIS_STATE_URL", "http://x"),
                ],
                "REDIS_STATE_URL",
            ),
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
        assert_eq!(s.access, crate::scaling::config::KubeAccess::InCluster);
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
        assert!(c.domain.voter_pepper.is_some());
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
        assert_eq!(c.domain.vote_batch.max_votes, 100);
        assert_eq!(c.domain.vote_batch.max_wait, Duration::from_millis(5));
        assert_eq!(c.domain.vote_batch.in_flight, 4);
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
    fn the_config_file_refuses_settings_of_a_feature_left_off() {
        let (_dir, path) = temp_file("surge.toml", "kube_namespace = \"surge\"\n");
        let err = config(&[("SURGE_CONFIG", &path)]).expect_err("scaling is off");
        assert!(
            err.to_string().contains(
                "unknown setting `kube_namespace`, or one for a feature these settings leave off"
            ),
            "{err}"
        );
        let on = config(&[("SURGE_CONFIG", &path), ("SURGE_KUBE", "kubeconfig")]).expect("valid");
        assert_eq!(on.scaling.map(|s| s.namespace).as_deref(), Some("surge"));
    }

    #[test]
    fn the_cdn_api_is_reached_over_https_except_a_loopback_stand_in() {
        let token = "t".repeat(40);
        let with_base = |base: &str| {
            config(&[
                ("CLOUDFLARE_API_TOKEN", token.as_str()),
                ("CLOUDFLARE_ZONE_ID", "0123456789abcdef0123456789abcdef"),
                ("CLOUDFLARE_API_BASE", base),
            ])
        };
        let err = with_base("http://api.example/client/v4").expect_err("plain http");
        assert_eq!(err.var, "CLOUDFLARE_API_BASE");
        assert!(err.message.contains("https"), "{err}");
        for ok in [
            "https://api.example/client/v4",
            "http://127.0.0.1:8787",
            "http://[::1]:8787",
            "http://localhost:8787",
        ] {
            assert!(with_base(ok).is_ok(), "{ok}");
        }
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
        assert_eq!(c.domain.cookie_keys, vec![a.into_bytes(), b.into_bytes()]);
    }
}
