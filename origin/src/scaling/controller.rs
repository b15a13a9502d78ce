//! The scaling controller: takes operators' scheduled events and emergencies, stores them,
//! and on every tick (and right after each request) moves each workload's HPA floor to what
//! [`plan::floors`] says — raised while an event, emergency or forecast asks, back to the
//! recorded base otherwise. Level-triggered: a missed tick or a restart is caught up by the
//! next one. One origin process at a time applies (a lease in the store).
//!
//! Why the HPA floor (`minReplicas`) and not KEDA cron triggers: an event, an emergency and
//! the forecast all say "no fewer than N pods until T", and the floor says exactly that while
//! leaving the reactive HPA free to scale higher. Cron triggers would need a ScaledObject
//! rewrite per event and KEDA installed for the hooks to work at all, could not express an
//! emergency's "now, until expiry", and would leave the forecast nowhere to go. The base floor
//! lives on the HPA itself (`surge.dev/base-min-replicas`), so undoing a raise needs no state
//! outside the cluster. KEDA still drives the Prometheus-based ScaledObjects in
//! `infrastructure/`, where an event-driven trigger is the right tool.

use crate::cache::warm::SelfTarget;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use surge_shared::admin::{
    AdminError, EmergencyScale, EmergencyScaleRequest, EventState, PredictiveFloor,
    ScalingEventRequest, ScalingStatus, ScheduledEvent, WorkloadStatus,
};
use time::OffsetDateTime;

use super::cluster::{ClusterError, KubeCluster, Workload};
use super::config::{PredictiveConfig, ScalingConfig};
use super::forecast::{Method, forecast, replica_floor};
use super::history::{HAND_IN, KEEP_MINUTES, series_of};
use super::plan::{self, Floor};
use super::store::{Added, ScalingStore};
use crate::db::StoreError;

/// Minutes of history the forecast needs before it may set a floor.
const MIN_HISTORY_MINUTES: usize = 10;
/// Seasonal period of the forecast: one day of minutes.
const DAY_MINUTES: usize = 24 * 60;
/// Reverted emergencies shown in the status.
const RECENT_EMERGENCIES: usize = 10;
/// Audit entries shown in the status.
const RECENT_AUDIT: usize = 20;

/// The floor the forecast of the deployment's per-minute request counts implies for a
/// workload with HPA ceiling `max`. Never below what the last complete minute needed:
/// exponential smoothing fitted on a flat history moves only a fraction of a sudden step at
/// first (in the reaction test it took two minutes more), and a floor under the load just
/// seen protects nothing.
pub fn predicted_floor(settings: &PredictiveConfig, series: &[f64], max: u32) -> PredictiveFloor {
    let ahead = forecast(series, DAY_MINUTES, settings.look_ahead_minutes);
    let last = series.last().copied().unwrap_or(0.0);
    let peak_rps = ahead.peak().max(last) / 60.0;
    PredictiveFloor {
        workload: settings.workload.clone(),
        method: match ahead.method {
            Method::HoltWinters => "holt-winters",
            Method::Holt => "holt",
            Method::Naive => "naive",
        }
        .to_string(),
        peak_rps,
        floor: replica_floor(peak_rps, settings.per_pod_rps, 1, max),
    }
}

/// The last minute the forecast may read at `now_ms`: every pod hands in a closed minute
/// within `hand_in` ([`HAND_IN`]), so a minute is complete in the store that long (and a
/// margin for the write) after it ends. Earlier, the newest minute would hold only some pods' counts and
/// read as a drop in traffic.
pub fn complete_until(now_ms: u64, hand_in: Duration) -> u64 {
    let settle = u64::try_from(hand_in.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(2_000);
    now_ms.saturating_sub(settle) / 60_000
}

/// What a scaling request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The request is malformed (its own rules, as the schema states them).
    #[error("{0}")]
    Invalid(AdminError),
    /// The request is well-formed but this deployment cannot take it now: a workload it does
    /// not manage, more replicas than the autoscaler's ceiling, an event already over.
    #[error("{0}")]
    Unacceptable(AdminError),
    /// An event of that name exists with other content.
    #[error("an event named `{0}` already exists with other settings: pick another name")]
    Exists(String),
    /// The cluster said no.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn unacceptable(field: String, message: String) -> ScaleError {
    ScaleError::Unacceptable(AdminError { field, message })
}

/// What an accepted request did.
#[derive(Debug)]
pub struct Accepted<T> {
    /// The stored event or emergency.
    pub value: T,
    /// False when the same request had been accepted before (a retry).
    pub new: bool,
}

/// The controller.
pub struct Scaler {
    cluster: KubeCluster,
    store: Arc<dyn ScalingStore>,
    config: ScalingConfig,
    holder: String,
    warm: SelfTarget,
    lock: tokio::sync::Mutex<()>,
    forecast: std::sync::Mutex<Option<Forecasted>>,
}

/// The last forecast and what it was made from.
struct Forecasted {
    until: u64,
    max: u32,
    floor: Option<PredictiveFloor>,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn to_ms(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000_000).unwrap_or(t)
}

fn describe(targets: &std::collections::BTreeMap<String, u32>) -> String {
    let mut out = String::new();
    for (i, (w, n)) in targets.iter().enumerate() {
        let _ = write!(out, "{}{w}={n}", if i > 0 { " " } else { "" });
    }
    out
}

impl Scaler {
    /// A controller for `config`'s workloads; `holder` names this process in the lease,
    /// `warm` is where cache warming fetches from; the forecast reads the rates every pod
    /// hands in to `store` ([`history::hand_in`](super::history::hand_in)).
    pub fn new(
        cluster: KubeCluster,
        store: Arc<dyn ScalingStore>,
        config: ScalingConfig,
        holder: String,
        warm: SelfTarget,
    ) -> Self {
        Self {
            cluster,
            store,
            config,
            holder,
            warm,
            lock: tokio::sync::Mutex::new(()),
            forecast: std::sync::Mutex::new(None),
        }
    }

    /// How often [`tick`](Self::tick) should run.
    pub fn every(&self) -> Duration {
        self.config.tick
    }

    async fn audit(&self, action: &str, detail: String) {
        tracing::warn!(target: "surge::scaling::audit", action, %detail, "scaling action");
        if let Err(e) = self.store.audit(now(), action, detail).await {
            tracing::error!("scaling audit log: {e}");
        }
    }

    /// Checks every target against the managed list and the HPA's `maxReplicas`.
    async fn check_targets(
        &self,
        targets: &std::collections::BTreeMap<String, u32>,
    ) -> Result<(), ScaleError> {
        for (workload, replicas) in targets {
            if !self.config.workloads.contains(workload) {
                return Err(unacceptable(
                    format!("targets.{workload}"),
                    format!(
                        "unknown workload; this origin manages {} (SURGE_SCALING_WORKLOADS)",
                        self.config.workloads.join(", ")
                    ),
                ));
            }
            let w = self.cluster.workload(workload).await?;
            if *replicas > w.max {
                return Err(unacceptable(
                    format!("targets.{workload}"),
                    format!(
                        "{replicas} replicas is above the HPA's maxReplicas ({}); raise maxReplicas first or ask for fewer",
                        w.max
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Stores a scheduled event and applies it if its window has begun.
    pub async fn schedule(
        &self,
        mut request: ScalingEventRequest,
    ) -> Result<Accepted<ScheduledEvent>, ScaleError> {
        request.validate().map_err(ScaleError::Invalid)?;
        // Stored to the millisecond: a retry must compare equal to what was stored.
        request.start = to_ms(request.start);
        request.end = to_ms(request.end);
        if request.end <= now() {
            return Err(unacceptable(
                "end".into(),
                "is in the past: schedule events that have not ended yet".into(),
            ));
        }
        self.check_targets(&request.targets).await?;
        let accepted = match self.store.add_event(request).await? {
            Added::New(event) => {
                self.audit(
                    "event.scheduled",
                    format!(
                        "{} from {} to {}: {}{}",
                        event.request.name,
                        event.request.start,
                        event.request.end,
                        describe(&event.request.targets),
                        if event.request.warm_cache {
                            ", warm cache"
                        } else {
                            ""
                        }
                    ),
                )
                .await;
                Accepted {
                    value: event,
                    new: true,
                }
            }
            Added::Same(event) => Accepted {
                value: event,
                new: false,
            },
            Added::Clash(event) => return Err(ScaleError::Exists(event.request.name)),
        };
        self.tick().await?;
        let value = self
            .store
            .events()
            .await?
            .into_iter()
            .find(|e| e.request.name == accepted.value.request.name)
            .unwrap_or(ScheduledEvent {
                state: EventState::Done,
                ..accepted.value
            });
        Ok(Accepted {
            value,
            new: accepted.new,
        })
    }

    /// Scales up now: the Deployments at once, the HPA floors until `duration` is over.
    pub async fn emergency(
        &self,
        request: EmergencyScaleRequest,
    ) -> Result<Accepted<EmergencyScale>, ScaleError> {
        request.validate().map_err(ScaleError::Invalid)?;
        self.check_targets(&request.targets).await?;
        let started = now();
        let expires = started + request.duration;
        let result = self
            .store
            .add_emergency(request.targets, request.reason, started, expires)
            .await?;
        let e = &result.scale;
        if result.new {
            self.audit(
                "emergency.started",
                format!(
                    "#{}: {} until {} — {}",
                    e.id,
                    describe(&e.targets),
                    e.expires,
                    e.reason
                ),
            )
            .await;
        } else {
            self.audit(
                "emergency.repeated",
                format!("#{} already holds {}", e.id, describe(&e.targets)),
            )
            .await;
        }
        for (workload, replicas) in &e.targets {
            if self.cluster.scale_up(workload, *replicas).await? {
                self.audit(
                    "deployment.scaled",
                    format!("{workload} to {replicas} replicas for emergency #{}", e.id),
                )
                .await;
            }
        }
        self.tick().await?;
        Ok(Accepted {
            value: result.scale,
            new: result.new,
        })
    }

    /// The forecast floor, when predictive scaling is on and there is enough history.
    async fn predict(&self) -> Option<PredictiveFloor> {
        let settings = self.config.predictive.as_ref()?;
        let until = complete_until(crate::clock::now_ms(), HAND_IN);
        let max = self.cluster.workload(&settings.workload).await.ok()?.max;
        // The forecast only changes when another minute is complete (or the ceiling moves).
        let memo = |m: &Option<Forecasted>| {
            m.as_ref()
                .filter(|f| f.until == until && f.max == max)
                .map(|f| f.floor.clone())
        };
        if let Some(floor) = memo(&self.forecast.lock().unwrap_or_else(|p| p.into_inner())) {
            return floor;
        }
        let since = until.saturating_sub(KEEP_MINUTES);
        let rows = match self.store.rates(since).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("request rate history: {e}");
                return None;
            }
        };
        let series = series_of(&rows, until, KEEP_MINUTES);
        let floor =
            (series.len() >= MIN_HISTORY_MINUTES).then(|| predicted_floor(settings, &series, max));
        *self.forecast.lock().unwrap_or_else(|p| p.into_inner()) = Some(Forecasted {
            until,
            max,
            floor: floor.clone(),
        });
        floor
    }

    /// Applies events, expiries and the forecast; a no-op unless this process holds the lease.
    pub async fn tick(&self) -> Result<(), ScaleError> {
        let _one_at_a_time = self.lock.lock().await;
        let at = now();
        if !self
            .store
            .lead(&self.holder, at, self.config.tick * 3)
            .await?
        {
            return Ok(());
        }
        for event in self.store.events().await? {
            let name = event.request.name.clone();
            let over = at >= event.request.end;
            if event.state == EventState::Pending && plan::in_window(&event, at) {
                if self
                    .store
                    .advance(name.clone(), EventState::Pending, EventState::Active)
                    .await?
                {
                    self.audit(
                        "event.started",
                        format!("{name}: {}", describe(&event.request.targets)),
                    )
                    .await;
                    if event.request.warm_cache {
                        let report =
                            crate::cache::warm::warm(&self.warm, self.config.warm_urls.clone(), 8)
                                .await;
                        self.audit(
                            "cache.warmed",
                            format!(
                                "{name}: {} warmed, {} failed",
                                report.warmed,
                                report.failed.len()
                            ),
                        )
                        .await;
                    }
                }
            } else if over
                && self
                    .store
                    .advance(name.clone(), event.state, EventState::Done)
                    .await?
            {
                self.audit("event.ended", name).await;
            }
        }
        let events = self.store.events().await?;
        let emergencies = self.store.emergencies(0).await?;
        for e in emergencies.iter().filter(|e| !plan::holds(e, at)) {
            if self.store.revert(e.id).await? {
                self.audit(
                    "emergency.reverted",
                    format!("#{} expired: {}", e.id, describe(&e.targets)),
                )
                .await;
            }
        }
        let predicted = self.predict().await;
        let floors = plan::floors(
            at,
            &events,
            &emergencies,
            predicted.as_ref().map(|p| (p.workload.as_str(), p.floor)),
        );
        let mut first_error = None;
        for workload in &self.config.workloads {
            let floor = floors.get(workload).cloned().unwrap_or_default();
            match self
                .cluster
                .set_floor(workload, floor.replicas, &floor.raised_by)
                .await
            {
                Ok(Some(before)) => self.audit_floor(&before, &floor).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("scaling {workload}: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// How long to sleep before the next tick: the tick period, or less when an event starts
    /// or ends, or an emergency expires, sooner — so a scheduled floor is in place at its
    /// start to the millisecond rather than up to a tick late.
    pub async fn next_wake(&self) -> Duration {
        let events = self.store.events().await.unwrap_or_default();
        let emergencies = self.store.emergencies(0).await.unwrap_or_default();
        plan::next_change(now(), self.config.tick, &events, &emergencies)
    }

    async fn audit_floor(&self, before: &Workload, floor: &Floor) {
        let base = before.base_min();
        if floor.replicas > base {
            self.audit(
                "floor.raised",
                format!(
                    "{}: minReplicas {} -> {} ({})",
                    before.name,
                    before.min,
                    floor.replicas.min(before.max),
                    floor.raised_by.join(", ")
                ),
            )
            .await;
        } else {
            self.audit(
                "floor.restored",
                format!("{}: minReplicas {} -> {base}", before.name, before.min),
            )
            .await;
        }
    }

    /// Replicas, autoscaler floors and metrics, pending events, emergencies, the forecast and
    /// the latest audit entries.
    pub async fn status(&self) -> Result<ScalingStatus, ScaleError> {
        let at = now();
        let events = self.store.events().await?;
        let emergencies = self.store.emergencies(RECENT_EMERGENCIES).await?;
        let predictive = self.predict().await;
        let floors = plan::floors(
            at,
            &events,
            &emergencies,
            predictive.as_ref().map(|p| (p.workload.as_str(), p.floor)),
        );
        let mut workloads = Vec::new();
        for name in &self.config.workloads {
            let w = self.cluster.workload(name).await?;
            workloads.push(WorkloadStatus {
                name: w.name.clone(),
                current_replicas: w.current,
                desired_replicas: w.desired,
                min_replicas: w.min,
                base_min_replicas: w.base_min(),
                max_replicas: w.max,
                metrics: w.metrics.clone(),
                raised_by: floors
                    .get(name)
                    .map(|f| f.raised_by.clone())
                    .unwrap_or_default(),
            });
        }
        Ok(ScalingStatus {
            namespace: self.cluster.namespace().to_string(),
            workloads,
            events,
            emergencies,
            predictive,
            audit: self.store.audit_log(RECENT_AUDIT).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PredictiveConfig {
        PredictiveConfig {
            workload: "api-gateway".into(),
            per_pod_rps: 100.0,
            look_ahead_minutes: 15,
        }
    }

    #[test]
    fn a_rising_rate_raises_the_floor_ahead_of_the_peak() {
        // The deployment's rate climbs by 6,000 requests a minute, each step 0.95 of the one
        // before (a damped climb, which damped Holt fits exactly). Its known continuation 15
        // minutes on is the sum of the next 15 steps: 89,959 a minute, 1,499 req/s, so
        // ⌈1,499 / 100⌉ = 15 pods. An undamped forecast would add 15 × the last step
        // (1,772 req/s, 18 pods).
        let (phi, step) = (0.95f64, 6_000.0);
        let mut series = vec![6_000.0];
        for t in 1..12 {
            series.push(series[t - 1] + step * phi.powi(t as i32));
        }
        let truth = series[11] + (12..27).map(|t| step * phi.powi(t)).sum::<f64>();
        let floor = predicted_floor(&settings(), &series, 50);
        assert_eq!(floor.method, "holt");
        assert!(
            (floor.peak_rps - truth / 60.0).abs() < 0.01,
            "{floor:?} vs {truth}"
        );
        assert_eq!(floor.floor, 15);
    }

    #[test]
    fn the_floor_stays_within_the_hpa_ceiling_and_at_least_one() {
        let busy = vec![600_000.0; 30];
        assert_eq!(predicted_floor(&settings(), &busy, 20).floor, 20);
        let idle = vec![0.0; 30];
        assert_eq!(predicted_floor(&settings(), &idle, 20).floor, 1);
    }

    #[test]
    fn a_sudden_step_raises_the_floor_at_the_first_complete_minute() {
        // Half an hour flat at 5 req/s, then one minute at 50: the smoothed forecast has
        // barely moved, the floor still covers the minute just seen.
        let mut series = vec![300.0; 30];
        series.push(3_000.0);
        let floor = predicted_floor(&settings(), &series, 50);
        assert!(floor.peak_rps >= 50.0, "{floor:?}");
        assert_eq!(floor.floor, 1);
        let per_pod_5 = PredictiveConfig {
            per_pod_rps: 5.0,
            ..settings()
        };
        assert_eq!(predicted_floor(&per_pod_5, &series, 50).floor, 10);
    }

    #[test]
    fn the_forecast_waits_a_tick_for_every_pod_to_hand_in_a_minute() {
        let tick = Duration::from_secs(15);
        // 10:00:10 — minute 9:59 may still lack some pods' counts: read up to 9:58.
        let at = |m: u64, s: u64| m * 60_000 + s * 1_000;
        assert_eq!(complete_until(at(600, 10), tick), 599);
        // 10:00:20 — every pod has ticked since 10:00.
        assert_eq!(complete_until(at(600, 20), tick), 600);
    }
}
