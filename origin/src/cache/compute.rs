//! Computing a value: per-process single-flight (one factory call per key in a process),
//! the cluster lock (one per key across processes, the others wait for its value in L2), the
//! factory under soft and hard timeouts, and storing the result in the configured layers.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use serde::Serialize;
use serde::de::DeserializeOwned;
use surge_shared::freshness::{EntryState, Freshness, millis};
use surge_shared::{CacheStatus, Layer, Tier};

use super::backplane::Event;
use super::entry::{Entry, Meta};
use super::fail_safe::Prior;
use super::lock::{self, Lock};
use super::lookup::{Found, decode_value, typed};
use super::options::EntryOptions;
use super::refresh::refresh_due;
use super::stats::Stats;
use super::{CacheError, Factory, Inner, Lookup};
use crate::clock::now_ms;

impl Inner {
    pub(super) async fn next_version(&self) -> u64 {
        match self.l2() {
            Some(l2) => match l2.next_version().await {
                Some(v) => v,
                None => now_ms().saturating_mul(1000),
            },
            None => now_ms().saturating_mul(1000),
        }
    }

    pub(super) async fn store<T: Serialize + Send + Sync + 'static>(
        &self,
        key: &str,
        value: T,
        options: &EntryOptions,
        tags: Vec<(String, u64)>,
        version: u64,
        factory_ms: u64,
    ) -> Result<(), CacheError> {
        let encoded = serde_json::to_vec(&value).map_err(|e| CacheError::Encode(e.to_string()))?;
        let now = now_ms();
        let meta = Meta {
            freshness: Freshness::new(now, &options.windows()),
            tags,
            version,
            factory_ms,
        };
        let entry = Arc::new(Entry {
            value: Arc::from(encoded.as_slice()),
            typed: Some(Arc::new(value)),
            meta,
        });
        if options.layers.contains(Layer::L1) {
            self.l1.insert(key, entry.clone()).await;
        }
        if options.layers.contains(Layer::L2)
            && let Some(l2) = self.l2()
        {
            l2.set(
                key,
                &entry.encode(),
                version,
                entry.meta.freshness.keep_for(now),
            )
            .await;
        }
        self.publish(Event::Evict {
            keys: vec![key.to_string()],
        })
        .await;
        Ok(())
    }

    pub(super) fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.retain(|_, m| Arc::strong_count(m) > 1);
        flights.entry(key.to_string()).or_default().clone()
    }

    pub(super) async fn get_or_set<T, E>(
        self: &Arc<Self>,
        key: &str,
        options: &EntryOptions,
        factory: Factory<T, E>,
    ) -> Result<Lookup<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let now = now_ms();
        let mut prior = Prior::default();
        if options.layers.contains(Layer::L1)
            && let Some(entry) = self.l1_lookup(key).await
            && let Some(answer) =
                self.answer_from(key, options, &factory, &entry, now, Tier::L1, &mut prior)
        {
            Stats::bump(&self.stats.l1_hits);
            return Ok(answer);
        }
        Stats::bump(&self.stats.l1_misses);

        let flight = self.flight(key);
        let _turn = flight.lock().await;
        // Whoever held the turn before us may have filled L1.
        if options.layers.contains(Layer::L1)
            && let Some(entry) = self.l1_lookup(key).await
            && entry.meta.state(now_ms()) == EntryState::Fresh
            && let Some(value) = decode_value::<T>(&entry)
        {
            Stats::bump(&self.stats.l1_hits);
            return Ok(Found {
                status: CacheStatus::Hit,
                tier: Tier::L1,
            }
            .with(value));
        }
        if options.layers.contains(Layer::L2)
            && let Some(entry) = self.l2_lookup(key).await
        {
            let entry = typed::<T>(entry.clone()).map_or(entry, |(held, _)| held);
            if options.layers.contains(Layer::L1)
                && entry.meta.state(now_ms()) != EntryState::Expired
            {
                self.l1.insert(key, entry.clone()).await;
            }
            if let Some(answer) = self.answer_from(
                key,
                options,
                &factory,
                &entry,
                now_ms(),
                Tier::L2,
                &mut prior,
            ) {
                return Ok(answer);
            }
        }

        // Cluster-wide: one process computes, the others wait for its value in L2.
        let token = self.next_version().await;
        let lock = match self.l2() {
            Some(l2) if options.layers.contains(Layer::L2) => {
                let ttl = options
                    .lock_timeout
                    .saturating_mul(2)
                    .max(Duration::from_millis(100));
                lock::acquire(l2, key, token, ttl).await
            }
            _ => Lock::Unknown,
        };
        match &lock {
            Lock::Held(_) => Stats::bump(&self.stats.lock_acquired),
            Lock::Busy => {
                Stats::bump(&self.stats.lock_waits);
                if let Some(answer) = self.wait_for_peer(key, options).await {
                    return Ok(answer);
                }
            }
            Lock::Unknown => {}
        }
        let tags = self.current_tag_versions(&options.tags).await;
        let result = self
            .compute(key, options, factory, prior, tags, token)
            .await;
        if let Lock::Held(guard) = lock {
            guard.release().await;
        }
        result
    }

    /// Decides what an entry found in a tier answers: fresh → hit (maybe refreshing early);
    /// stale → served while a background refresh runs; stale-if-error → kept as the fallback;
    /// expired → remembered, so the answer computed anew says `EXPIRED`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer_from<T, E>(
        self: &Arc<Self>,
        key: &str,
        options: &EntryOptions,
        factory: &Factory<T, E>,
        entry: &Arc<Entry>,
        now: u64,
        tier: Tier,
        prior: &mut Prior,
    ) -> Option<Lookup<T>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        match entry.meta.state(now) {
            EntryState::Fresh => {
                let value = decode_value::<T>(entry)?;
                if refresh_due(&entry.meta, now, options) {
                    Stats::bump(&self.stats.early_refreshes);
                    self.refresh_in_background(key, options, factory.clone());
                }
                Some(
                    Found {
                        status: CacheStatus::Hit,
                        tier,
                    }
                    .with(value),
                )
            }
            EntryState::Stale => {
                let value = decode_value::<T>(entry)?;
                Stats::bump(&self.stats.stale_served);
                self.refresh_in_background(key, options, factory.clone());
                Some(
                    Found {
                        status: CacheStatus::Stale,
                        tier,
                    }
                    .with(value),
                )
            }
            EntryState::ErrorOnly => {
                prior.fallback = Some((entry.clone(), tier));
                prior.state = Some(EntryState::ErrorOnly);
                None
            }
            EntryState::Expired => {
                prior.state.get_or_insert(EntryState::Expired);
                None
            }
        }
    }

    /// Polls L2 until the lock holder's value appears or `lock_timeout` passes.
    pub(super) async fn wait_for_peer<T>(
        &self,
        key: &str,
        options: &EntryOptions,
    ) -> Option<Lookup<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let deadline = Instant::now() + options.lock_timeout;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Some(entry) = self.l2_lookup(key).await
                && entry.meta.state(now_ms()) == EntryState::Fresh
                && let Some((entry, value)) = typed::<T>(entry)
            {
                if options.layers.contains(Layer::L1) {
                    self.l1.insert(key, entry).await;
                }
                return Some(
                    Found {
                        status: CacheStatus::Hit,
                        tier: Tier::L2,
                    }
                    .with(value),
                );
            }
        }
        None
    }

    /// Runs the factory with the soft and hard timeouts and stores the result; when it fails
    /// or is slow, the prior copy stands in if there is one ([`super::fail_safe`]).
    pub(super) async fn compute<T, E>(
        self: &Arc<Self>,
        key: &str,
        options: &EntryOptions,
        factory: Factory<T, E>,
        prior: Prior,
        tags: Vec<(String, u64)>,
        version: u64,
    ) -> Result<Lookup<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        Stats::bump(&self.stats.factory_calls);
        let started = Instant::now();
        let hard = options.factory_hard_timeout;
        // The factory runs in a task of its own (so a slow one can finish after a stale
        // answer), inside a span under the caller's: its database spans stay in the trace.
        let span = tracing::info_span!("cache.compute", cache.key = key);
        let mut task = tokio::spawn(
            async move {
                let run = factory();
                match hard {
                    Some(limit) => match tokio::time::timeout(limit, run).await {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err(format!("the factory took longer than {limit:?}")),
                    },
                    None => run.await.map_err(|e| e.to_string()),
                }
            }
            .instrument(span),
        );
        let outcome = match (options.factory_soft_timeout, &prior.fallback) {
            (Some(soft), Some(fallback)) => match tokio::time::timeout(soft, &mut task).await {
                Ok(joined) => joined.map_err(|e| e.to_string()).and_then(|r| r),
                Err(_) => {
                    // Serve the stale value now; the factory finishes in the background.
                    let this = self.clone();
                    let (key, options, tags) = (key.to_string(), options.clone(), tags.clone());
                    tokio::spawn(async move {
                        if let Ok(Ok(value)) = task.await {
                            let took = millis(started.elapsed());
                            this.store(&key, value, &options, tags, version, took)
                                .await
                                .ok();
                        }
                    });
                    return self.stand_in_while_slow(fallback);
                }
            },
            _ => task.await.map_err(|e| e.to_string()).and_then(|r| r),
        };
        match outcome {
            Ok(value) => {
                let took = millis(started.elapsed());
                self.store(key, value.clone(), options, tags, version, took)
                    .await?;
                Ok(Lookup {
                    value,
                    status: EntryState::refetched(prior.state),
                    tier: Tier::Origin,
                    fail_safe: false,
                })
            }
            Err(error) => {
                Stats::bump(&self.stats.factory_errors);
                match prior.fallback {
                    Some(fallback) => {
                        self.stand_in_after_failure(key, options, fallback, error)
                            .await
                    }
                    None => Err(CacheError::Factory(error)),
                }
            }
        }
    }
}
