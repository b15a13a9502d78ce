//! Caching strategies over a backing store:
//!
//! - cache-aside: the caller uses [`HybridCache::get`] and [`HybridCache::set`] itself;
//! - read-through: [`read_through`] loads from the store on a miss (stampede-protected);
//! - write-through: [`write_through`] writes the store first and the cache only if that
//!   succeeded;
//! - write-behind: [`WriteBehind`] updates the cache at once and queues the write durably in a
//!   Redis Stream; a flusher writes batches to the store and acknowledges them only after the
//!   store accepted them, so a crash before a flush loses nothing — the next flusher claims the
//!   unacknowledged writes.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::options::EntryOptions;
use super::{CacheError, HybridCache, Lookup};

/// A backing store (a database table, a service).
pub trait Store<T>: Send + Sync + 'static {
    /// Loads the value of `key`.
    fn load(&self, key: &str) -> impl Future<Output = Result<T, String>> + Send;
    /// Saves values, all or nothing.
    fn save(&self, batch: &[(String, T)]) -> impl Future<Output = Result<(), String>> + Send;
}

/// Read-through: the cached value of `key`, loaded from `store` on a miss.
pub async fn read_through<T, S>(
    cache: &HybridCache,
    store: &Arc<S>,
    key: &str,
    options: &EntryOptions,
) -> Result<Lookup<T>, CacheError>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    S: Store<T>,
{
    let store = store.clone();
    let owned = key.to_string();
    cache
        .get_or_set(key, options, move || {
            let (store, key) = (store.clone(), owned.clone());
            async move { store.load(&key).await }
        })
        .await
}

/// Write-through: saves `value` to `store`, then caches it. When the store refuses, the cache
/// is left as it was and the store's error is returned.
pub async fn write_through<T, S>(
    cache: &HybridCache,
    store: &S,
    key: &str,
    value: T,
    options: &EntryOptions,
) -> Result<(), CacheError>
where
    T: Serialize + Clone + Send + Sync + 'static,
    S: Store<T>,
{
    store
        .save(&[(key.to_string(), value.clone())])
        .await
        .map_err(CacheError::Factory)?;
    cache.set(key, value, options).await
}

/// Why a write-behind queue failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Redis refused or was unreachable.
    #[error("write-behind queue unavailable: {0}")]
    Redis(String),
    /// The value could not be encoded.
    #[error("write-behind value cannot be encoded: {0}")]
    Encode(String),
}

/// A durable write-behind queue on a Redis Stream with a consumer group.
#[derive(Clone)]
pub struct WriteBehind {
    conn: MultiplexedConnection,
    stream: String,
    group: String,
    consumer: String,
}

/// Group all flushers of one stream belong to.
const GROUP: &str = "flushers";

fn redis_err(e: redis::RedisError) -> QueueError {
    QueueError::Redis(e.to_string())
}

impl WriteBehind {
    /// Opens the queue `name` on the Redis node at `url` as consumer `consumer`, creating the
    /// stream and group if needed.
    pub async fn open(url: &str, name: &str, consumer: &str) -> Result<Self, QueueError> {
        let client = redis::Client::open(url).map_err(redis_err)?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(redis_err)?;
        let stream = format!("surge:v1:wb:{name}");
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(redis_err(e));
        }
        Ok(Self {
            conn,
            stream,
            group: GROUP.to_string(),
            consumer: consumer.to_string(),
        })
    }

    /// Caches `value` now and queues its write to the store. Returns once the write is in the
    /// stream (durable in Redis).
    pub async fn write<T>(
        &self,
        cache: &HybridCache,
        key: &str,
        value: T,
        options: &EntryOptions,
    ) -> Result<(), QueueError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let payload =
            serde_json::to_string(&value).map_err(|e| QueueError::Encode(e.to_string()))?;
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("key")
            .arg(key)
            .arg("value")
            .arg(payload)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        cache
            .set(key, value, options)
            .await
            .map_err(|e| QueueError::Encode(e.to_string()))
    }

    /// One flush: claims writes left unacknowledged by crashed flushers for longer than
    /// `claim_after`, reads new ones, saves them to `store` in one batch of at most `max`, and
    /// acknowledges them. Returns how many were written; on a store error nothing is
    /// acknowledged and the writes stay queued.
    pub async fn flush_once<T, S>(
        &self,
        store: &S,
        max: usize,
        claim_after: Duration,
    ) -> Result<usize, QueueError>
    where
        T: DeserializeOwned,
        S: Store<T>,
    {
        let mut conn = self.conn.clone();
        let count = max.max(1);
        let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(surge_shared::freshness::millis(claim_after))
            .arg("0-0")
            .arg(StreamAutoClaimOptions::default().count(count))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        let mut records = claimed.claimed;
        if records.len() < count {
            let options = StreamReadOptions::default()
                .group(&self.group, &self.consumer)
                .count(count - records.len());
            let fresh: Option<StreamReadReply> = redis::cmd("XREADGROUP")
                .arg(&options)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(">")
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
            for key in fresh.map(|r| r.keys).unwrap_or_default() {
                records.extend(key.ids);
            }
        }
        if records.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(records.len());
        let mut batch = Vec::with_capacity(records.len());
        for record in records {
            let key: Option<String> = record.get("key");
            let value: Option<String> = record.get("value");
            match (key, value.and_then(|v| serde_json::from_str::<T>(&v).ok())) {
                (Some(k), Some(v)) => batch.push((k, v)),
                _ => tracing::warn!(id = record.id, "dropping an unreadable write-behind record"),
            }
            ids.push(record.id);
        }
        if !batch.is_empty() {
            store.save(&batch).await.map_err(QueueError::Redis)?;
        }
        let mut done = redis::pipe();
        done.atomic()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&ids)
            .ignore()
            .cmd("XDEL")
            .arg(&self.stream)
            .arg(&ids)
            .ignore();
        done.query_async::<()>(&mut conn).await.map_err(redis_err)?;
        Ok(batch.len())
    }

    /// Flushes every `interval` until the task is dropped; errors are logged and retried.
    pub async fn run_flusher<T, S>(
        self,
        store: Arc<S>,
        max: usize,
        interval: Duration,
        claim_after: Duration,
    ) where
        T: DeserializeOwned,
        S: Store<T>,
    {
        loop {
            match self.flush_once::<T, S>(&store, max, claim_after).await {
                Ok(n) if n >= max => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "write-behind flush failed; will retry"),
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Writes queued and not yet flushed (acknowledged writes are deleted from the stream).
    pub async fn pending(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("XLEN")
            .arg(&self.stream)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)
    }
}
