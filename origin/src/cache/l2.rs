//! L2: Redis, single node (connection manager with reconnect) or Redis Cluster
//! (`cluster_async`, MOVED/ASK handled by the client). Every operation has a timeout and goes
//! through the circuit breaker; a failed operation is reported as `None` and counted, never a
//! panic.
//!
//! The versions (`{surge}:tagv`, `{surge}:fence`) are state, not cache: evicting them would
//! make a purged entry look current again and reset the fencing tokens. With a state Redis
//! (`REDIS_STATE_URL`, `maxmemory-policy noeviction`) they live there, and the cache Redis
//! may evict entries and locks freely (`allkeys-lru`); without one, they share the cache
//! Redis, which then must not evict them.
//!
//! Key layout (every multi-key structure lives in one hash slot, so it works on a cluster):
//! - `surge:v1:e:<key>` — an entry: hash `{d: encoded entry, v: write version}`;
//! - `{surge}:tagv` — hash of tag → version (tag invalidation is one `HINCRBY` per tag);
//! - `{surge}:fence` — the write-version counter (fencing tokens);
//! - `surge:v1:lock:<key>` — the stampede lock of a key (`SET NX PX`, value = fencing token).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, Script, Value};
use surge_shared::KeyPattern;

use super::circuit::Breaker;
use super::stats::Stats;
use crate::redact::redact;

/// Prefix of entry keys in Redis.
pub const ENTRY_PREFIX: &str = "surge:v1:e:";
/// The tag-version hash.
pub const TAG_VERSIONS: &str = "{surge}:tagv";
/// The write-version counter.
pub const FENCE: &str = "{surge}:fence";
/// Prefix of lock keys.
pub const LOCK_PREFIX: &str = "surge:v1:lock:";
/// Keys one pattern invalidation may remove at most (a bound on the work one call does).
pub const MAX_PATTERN_KEYS: u64 = 1_000_000;

/// Writes the entry unless L2 already holds a newer version (fencing).
const SET_IF_NEWER: &str = r"
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'v', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Deletes the lock only if we still hold it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Where Redis is.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One node: `redis://host:port`.
    Single(String),
    /// A cluster, by seed nodes.
    Cluster(Vec<String>),
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Single(url) => f.debug_tuple("Single").field(&redact(url)).finish(),
            RedisTarget::Cluster(urls) => f
                .debug_tuple("Cluster")
                .field(&urls.iter().map(|u| redact(u)).collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl RedisTarget {
    /// Parses `REDIS_URL`: `redis://host:port` for one node; several comma-separated URLs, or
    /// `redis+cluster://host:port[,host:port…]`, for a cluster.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (cluster, rest) = match text.strip_prefix("redis+cluster://") {
            Some(rest) => (
                true,
                rest.split(',')
                    .map(|n| format!("redis://{}", n.trim()))
                    .collect::<Vec<_>>(),
            ),
            None => (
                text.contains(','),
                text.split(',').map(|n| n.trim().to_string()).collect(),
            ),
        };
        for url in &rest {
            let parsed = url::Url::parse(url).map_err(|e| {
                format!(
                    "{:?} is not a Redis URL ({e}); write redis://host:port",
                    redact(url)
                )
            })?;
            if !matches!(parsed.scheme(), "redis" | "rediss") || parsed.host_str().is_none() {
                return Err(format!(
                    "{:?} is not a Redis URL; write redis://host:port",
                    redact(url)
                ));
            }
        }
        match (cluster, rest.len()) {
            (_, 0) => Err("no Redis URL given".into()),
            (false, _) => Ok(RedisTarget::Single(rest[0].clone())),
            (true, _) => Ok(RedisTarget::Cluster(rest)),
        }
    }
}

/// A client for `url`: `rediss://` verifies the server against the platform's roots and,
/// when given, the certificate authority `ca` (PEM).
fn open(url: &str, ca: Option<&[u8]>) -> redis::RedisResult<redis::Client> {
    match ca {
        Some(ca) => redis::Client::build_with_tls(url, certificates(ca)),
        None => redis::Client::open(url),
    }
}

fn certificates(ca: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.to_vec()),
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Why L2 could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {target}: {message}")]
pub struct ConnectError {
    /// The target.
    pub target: String,
    /// The client's error.
    pub message: String,
    /// Whether Redis could not be reached (refused, timed out, dropped) rather than refused
    /// us (certificate, credentials, a bad URL): the first is worth retrying.
    pub unreachable: bool,
}

/// What reading an entry found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The stored bytes.
    Found(Vec<u8>),
    /// No entry under the key.
    Absent,
    /// Redis failed or its breaker is open.
    Unavailable,
}

/// What writing an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Stored.
    Written,
    /// A newer version is already stored; this one was dropped.
    Superseded,
    /// Redis failed or its breaker is open.
    Unavailable,
}

/// What asking for a key's lock answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockReply {
    /// This caller holds it now.
    Acquired,
    /// Another caller holds it.
    Held,
    /// Redis failed or its breaker is open.
    Unavailable,
}

/// What releasing a lock did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// It was ours and is released.
    Released,
    /// It had expired or was taken over; nothing was released.
    NotHeld,
    /// Redis failed or its breaker is open (the lock expires by itself).
    Unavailable,
}

/// The L2 tier.
#[derive(Clone)]
pub struct L2 {
    conn: Conn,
    /// Where the versions live when they have a Redis of their own.
    state: Option<Arc<L2>>,
    target: RedisTarget,
    ca: Option<Arc<[u8]>>,
    breaker: Arc<Breaker>,
    timeout: Duration,
    stats: Arc<Stats>,
}

impl L2 {
    /// Connects to `target`. Operations time out after `timeout`.
    pub async fn connect(
        target: RedisTarget,
        ca: Option<Arc<[u8]>>,
        timeout: Duration,
        stats: Arc<Stats>,
    ) -> Result<Self, ConnectError> {
        let fail = |e: redis::RedisError| ConnectError {
            target: format!("{target:?}"),
            unreachable: e.is_connection_refusal() || e.is_timeout() || e.is_connection_dropped(),
            message: e.to_string(),
        };
        let conn = match &target {
            RedisTarget::Single(url) => {
                let client = open(url, ca.as_deref()).map_err(fail)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1);
                Conn::Single(
                    client
                        .get_connection_manager_with_config(config)
                        .await
                        .map_err(fail)?,
                )
            }
            RedisTarget::Cluster(nodes) => {
                let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(3);
                if let Some(ca) = &ca {
                    builder = builder.certs(certificates(ca));
                }
                let client = builder.build().map_err(fail)?;
                Conn::Cluster(client.get_async_connection().await.map_err(fail)?)
            }
        };
        Ok(Self {
            conn,
            state: None,
            target,
            ca,
            breaker: Arc::new(Breaker::new(3, Duration::from_secs(1))),
            timeout,
            stats,
        })
    }

    /// Keeps the tag versions and the write-version counter in `state` (a `noeviction`
    /// Redis) instead of this one.
    pub fn with_state(mut self, state: L2) -> Self {
        self.state = Some(Arc::new(state));
        self
    }

    /// The Redis holding the versions: the state Redis, or this one.
    fn versions(&self) -> &L2 {
        self.state.as_deref().unwrap_or(self)
    }

    /// Whether this Redis and the state Redis (if any) are both in use: their breakers are
    /// closed.
    pub fn healthy(&self) -> bool {
        let closed = |l2: &L2| matches!(l2.breaker.state(), super::circuit::BreakerState::Closed);
        closed(self) && self.state.as_deref().is_none_or(closed)
    }

    /// The target.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The circuit breaker (for health reports).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Runs `f` on the connection with the breaker and the timeout; `None` when skipped or
    /// failed.
    async fn run<T, F, Fut>(&self, f: F) -> Option<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(permit) = self.breaker.allow() else {
            Stats::bump(&self.stats.l2_skipped);
            return None;
        };
        match tokio::time::timeout(self.timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => {
                permit.success();
                Some(v)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "L2 operation failed");
                permit.failure();
                Stats::bump(&self.stats.l2_errors);
                None
            }
            Err(_) => {
                tracing::debug!("L2 operation timed out");
                permit.failure();
                Stats::bump(&self.stats.l2_errors);
                None
            }
        }
    }

    /// A failure outside [`L2::run`] (a scan's own node connection).
    fn fail<T>(&self) -> Option<T> {
        Stats::bump(&self.stats.l2_errors);
        self.breaker.failure();
        None
    }

    async fn query<T: FromRedisValue>(&self, cmd: Cmd) -> Option<T> {
        self.run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    /// The stored bytes of `key`.
    pub async fn get(&self, key: &str) -> Read {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(format!("{ENTRY_PREFIX}{key}")).arg("d");
        match self.query::<Option<Vec<u8>>>(cmd).await {
            Some(Some(bytes)) => Read::Found(bytes),
            Some(None) => Read::Absent,
            None => Read::Unavailable,
        }
    }

    /// Writes `bytes` as version `version`, kept for `keep`, unless a newer version is there.
    pub async fn set(&self, key: &str, bytes: &[u8], version: u64, keep: Duration) -> Write {
        let keep_ms = surge_shared::freshness::millis(keep);
        let Some(written) = self
            .run(|mut c| async move {
                Script::new(SET_IF_NEWER)
                    .key(format!("{ENTRY_PREFIX}{key}"))
                    .arg(version)
                    .arg(bytes)
                    .arg(keep_ms.max(1))
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
        else {
            return Write::Unavailable;
        };
        self.stats.l2_bytes_written.fetch_add(
            u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        if written == 1 {
            Write::Written
        } else {
            Write::Superseded
        }
    }

    /// Writes raw bytes under an entry key, bypassing the format (for tests of corrupt data).
    pub async fn set_raw(&self, key: &str, bytes: &[u8]) -> Option<()> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(format!("{ENTRY_PREFIX}{key}"))
            .arg("d")
            .arg(bytes)
            .arg("v")
            .arg(0);
        self.query::<i64>(cmd).await.map(|_| ())
    }

    /// Deletes entries.
    pub async fn remove(&self, keys: &[String]) -> Option<()> {
        if keys.is_empty() {
            return Some(());
        }
        self.run(|mut c| async move {
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.cmd("UNLINK")
                    .arg(format!("{ENTRY_PREFIX}{key}"))
                    .ignore();
            }
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// A new, cluster-wide increasing write version.
    pub async fn next_version(&self) -> Option<u64> {
        let mut cmd = redis::cmd("INCR");
        cmd.arg(FENCE);
        self.versions().query(cmd).await
    }

    /// Current versions of `tags` (0 for never invalidated).
    pub async fn tag_versions(&self, tags: &[String]) -> Option<Vec<u64>> {
        if tags.is_empty() {
            return Some(Vec::new());
        }
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(TAG_VERSIONS).arg(tags);
        let values: Vec<Option<u64>> = self.versions().query(cmd).await?;
        Some(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Invalidates `tags`: one `HINCRBY` each, in one round trip; returns the new versions.
    pub async fn bump_tags(&self, tags: &[String]) -> Option<Vec<u64>> {
        self.versions()
            .run(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for tag in tags {
                    pipe.cmd("HINCRBY").arg(TAG_VERSIONS).arg(tag).arg(1);
                }
                pipe.query_async::<Vec<u64>>(&mut c).await
            })
            .await
    }

    /// Tries to take the lock of `key` with `token` for `ttl` (callers hold it through
    /// [`super::lock::LockGuard`], which releases it).
    pub async fn try_lock(&self, key: &str, token: u64, ttl: Duration) -> LockReply {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{LOCK_PREFIX}{key}"))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(surge_shared::freshness::millis(ttl).max(1));
        match self.query::<Option<String>>(cmd).await {
            Some(Some(_)) => LockReply::Acquired,
            Some(None) => LockReply::Held,
            None => LockReply::Unavailable,
        }
    }

    /// Releases the lock of `key` if `token` still holds it.
    pub async fn unlock(&self, key: &str, token: u64) -> Release {
        let released = self
            .run(|mut c| async move {
                Script::new(RELEASE)
                    .key(format!("{LOCK_PREFIX}{key}"))
                    .arg(token)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        match released {
            Some(1) => Release::Released,
            Some(_) => Release::NotHeld,
            None => Release::Unavailable,
        }
    }

    /// Publishes `payload` on `channel` (reaches every node of a cluster).
    pub async fn publish(&self, channel: &str, payload: &str) -> Option<()> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(payload);
        self.query::<i64>(cmd).await.map(|_| ())
    }

    /// URLs of the nodes to scan: the single node, or every cluster master.
    async fn scan_nodes(&self) -> Option<Vec<String>> {
        match &self.target {
            RedisTarget::Single(url) => Some(vec![url.clone()]),
            RedisTarget::Cluster(_) => {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("NODES");
                let nodes: String = self.query(cmd).await?;
                Some(
                    nodes
                        .lines()
                        .filter_map(|line| {
                            let fields: Vec<&str> = line.split(' ').collect();
                            let flags = fields.get(2)?;
                            let addr = fields.get(1)?.split('@').next()?;
                            (flags.contains("master") && !flags.contains("fail"))
                                .then(|| format!("redis://{addr}"))
                        })
                        .collect(),
                )
            }
        }
    }

    /// Removes every entry whose key matches `pattern`, with `SCAN MATCH` on every master
    /// (never `KEYS`), at most [`MAX_PATTERN_KEYS`]. Returns how many were removed.
    pub async fn remove_matching(&self, pattern: &KeyPattern) -> Option<u64> {
        let nodes = self.scan_nodes().await?;
        let matcher = format!("{ENTRY_PREFIX}{}", pattern.as_str());
        let mut removed = 0u64;
        for node in nodes {
            let client = open(&node, self.ca.as_deref()).ok()?;
            let mut conn =
                match tokio::time::timeout(self.timeout, client.get_multiplexed_async_connection())
                    .await
                {
                    Ok(Ok(c)) => c,
                    _ => return self.fail(),
                };
            let mut cursor: u64 = 0;
            loop {
                let step: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&matcher)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await;
                let Ok((next, keys)) = step else {
                    return self.fail();
                };
                if !keys.is_empty() {
                    let mut pipe = redis::pipe();
                    for key in &keys {
                        pipe.cmd("UNLINK").arg(key).ignore();
                    }
                    if pipe.query_async::<()>(&mut conn).await.is_err() {
                        return self.fail();
                    }
                    removed += u64::try_from(keys.len()).unwrap_or(u64::MAX);
                }
                cursor = next;
                if cursor == 0 || removed >= MAX_PATTERN_KEYS {
                    break;
                }
            }
        }
        Some(removed)
    }

    /// Every seed URL, for subscribers to fail over between.
    pub fn node_urls(&self) -> Vec<String> {
        match &self.target {
            RedisTarget::Single(url) => vec![url.clone()],
            RedisTarget::Cluster(nodes) => nodes.clone(),
        }
    }

    /// A client for each node, with this tier's TLS roots (for the backplane subscriber).
    pub fn node_clients(&self) -> Vec<redis::Client> {
        self.node_urls()
            .iter()
            .filter_map(|url| open(url, self.ca.as_deref()).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_passwords_never_print() {
        let single = RedisTarget::parse("redis://default:hunter2@r1:6379").expect("valid");
        let cluster =
            RedisTarget::parse("redis://default:hunter2@r1:6379,redis://default:hunter2@r2:6379")
                .expect("valid");
        for target in [single, cluster] {
            let shown = format!("{target:?}");
            assert!(
                !shown.contains("hunter2") && shown.contains("r1"),
                "{shown}"
            );
        }
        let err = RedisTarget::parse("redis://default:hunter2@").expect_err("no host");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn redis_targets_parse_with_clear_errors() {
        assert_eq!(
            RedisTarget::parse("redis://127.0.0.1:6379"),
            Ok(RedisTarget::Single("redis://127.0.0.1:6379".into()))
        );
        assert_eq!(
            RedisTarget::parse("redis+cluster://10.0.0.1:7000,10.0.0.2:7000"),
            Ok(RedisTarget::Cluster(vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7000".into()
            ]))
        );
        assert!(
            matches!(RedisTarget::parse("redis://a:1, redis://b:2"), Ok(RedisTarget::Cluster(n)) if n.len() == 2)
        );
        assert!(RedisTarget::parse("http://x").is_err());
        assert!(RedisTarget::parse("not a url").is_err());
        assert!(RedisTarget::parse("").is_err());
    }
}
