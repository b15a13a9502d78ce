//! Where scaling state lives, behind one narrow trait: scheduled events, emergency scale-ups,
//! the audit log, the controller lease and the deployment's request rate per minute (every
//! pod's counts added up, for the forecast). Postgres (on the primary) when configured, so a
//! restart — or another origin pod — keeps the schedule and the rate history; in process
//! otherwise.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use surge_shared::admin::{
    AuditEntry, EmergencyScale, EmergencyState, EventState, ScalingEventRequest, ScheduledEvent,
};
use time::OffsetDateTime;

use super::history::{KEEP_MINUTES, MinuteCount};
use crate::db::StoreFuture;
use crate::db::pool::DbPool;

/// What adding a scheduled event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Stored now.
    New(ScheduledEvent),
    /// The same request was stored before (a retry).
    Same(ScheduledEvent),
    /// Another event of that name exists.
    Clash(ScheduledEvent),
}

/// What an emergency request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emergency {
    /// The emergency in force.
    pub scale: EmergencyScale,
    /// False when an active emergency with the same targets already held (a retry).
    pub new: bool,
}

/// Scaling state operations.
pub trait ScalingStore: Send + Sync + 'static {
    /// `"postgres"` or `"memory"`.
    fn kind(&self) -> &'static str;
    /// Stores an event unless one of that name exists.
    fn add_event(&self, request: ScalingEventRequest) -> StoreFuture<'_, Added>;
    /// Events not yet done, by start.
    fn events(&self) -> StoreFuture<'_, Vec<ScheduledEvent>>;
    /// Moves `name` from `from` to `to`; false when it was not in `from` (someone else did).
    fn advance(&self, name: String, from: EventState, to: EventState) -> StoreFuture<'_, bool>;
    /// Starts an emergency, or returns the active one with the same targets.
    fn add_emergency(
        &self,
        targets: BTreeMap<String, u32>,
        reason: String,
        started: OffsetDateTime,
        expires: OffsetDateTime,
    ) -> StoreFuture<'_, Emergency>;
    /// Active emergencies, then up to `recent` reverted ones, newest first.
    fn emergencies(&self, recent: usize) -> StoreFuture<'_, Vec<EmergencyScale>>;
    /// Marks `id` reverted; false when it already was.
    fn revert(&self, id: i64) -> StoreFuture<'_, bool>;
    /// Appends to the audit log.
    fn audit(&self, at: OffsetDateTime, action: &str, detail: String) -> StoreFuture<'_, ()>;
    /// The latest `limit` audit entries, newest first.
    fn audit_log(&self, limit: usize) -> StoreFuture<'_, Vec<AuditEntry>>;
    /// Takes or renews the controller lease for `holder` until `now + lease`; false while
    /// another holder's lease runs.
    fn lead(&self, holder: &str, now: OffsetDateTime, lease: Duration) -> StoreFuture<'_, bool>;
    /// Adds one pod's closed minutes to the deployment's counts, then forgets minutes more
    /// than [`KEEP_MINUTES`] before the newest.
    fn add_rates(&self, minutes: Vec<MinuteCount>) -> StoreFuture<'_, ()>;
    /// The deployment's counts from minute `since` on, ascending.
    fn rates(&self, since: u64) -> StoreFuture<'_, Vec<MinuteCount>>;
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn state_name(state: EventState) -> &'static str {
    match state {
        EventState::Pending => "pending",
        EventState::Active => "active",
        EventState::Done => "done",
    }
}

fn state_of(name: &str) -> EventState {
    match name {
        "active" => EventState::Active,
        "done" => EventState::Done,
        _ => EventState::Pending,
    }
}

/// The in-process store, for an origin without Postgres.
#[derive(Default)]
pub struct MemoryScalingStore {
    inner: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    events: BTreeMap<String, ScheduledEvent>,
    emergencies: Vec<EmergencyScale>,
    audit: Vec<AuditEntry>,
    rates: BTreeMap<u64, u64>,
}

impl MemoryScalingStore {
    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Audit entries kept in memory.
const MEMORY_AUDIT: usize = 1000;

impl ScalingStore for MemoryScalingStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn add_event(&self, request: ScalingEventRequest) -> StoreFuture<'_, Added> {
        Box::pin(async move {
            Ok(self.with(|m| match m.events.get(&request.name) {
                Some(e) if e.request == request => Added::Same(e.clone()),
                Some(e) => Added::Clash(e.clone()),
                None => {
                    let event = ScheduledEvent {
                        request,
                        state: EventState::Pending,
                    };
                    m.events.insert(event.request.name.clone(), event.clone());
                    Added::New(event)
                }
            }))
        })
    }

    fn events(&self) -> StoreFuture<'_, Vec<ScheduledEvent>> {
        Box::pin(async move {
            let mut events: Vec<ScheduledEvent> = self.with(|m| {
                m.events
                    .values()
                    .filter(|e| e.state != EventState::Done)
                    .cloned()
                    .collect()
            });
            events.sort_by_key(|e| e.request.start);
            Ok(events)
        })
    }

    fn advance(&self, name: String, from: EventState, to: EventState) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            Ok(self.with(|m| match m.events.get_mut(&name) {
                Some(e) if e.state == from => {
                    e.state = to;
                    true
                }
                _ => false,
            }))
        })
    }

    fn add_emergency(
        &self,
        targets: BTreeMap<String, u32>,
        reason: String,
        started: OffsetDateTime,
        expires: OffsetDateTime,
    ) -> StoreFuture<'_, Emergency> {
        Box::pin(async move {
            Ok(self.with(|m| {
                if let Some(active) = m
                    .emergencies
                    .iter()
                    .find(|e| e.state == EmergencyState::Active && e.targets == targets)
                {
                    return Emergency {
                        scale: active.clone(),
                        new: false,
                    };
                }
                let scale = EmergencyScale {
                    id: i64::try_from(m.emergencies.len()).unwrap_or(i64::MAX) + 1,
                    targets,
                    reason,
                    started,
                    expires,
                    state: EmergencyState::Active,
                };
                m.emergencies.push(scale.clone());
                Emergency { scale, new: true }
            }))
        })
    }

    fn emergencies(&self, recent: usize) -> StoreFuture<'_, Vec<EmergencyScale>> {
        Box::pin(async move {
            Ok(self.with(|m| {
                let newest_first = m.emergencies.iter().rev();
                let active = newest_first
                    .clone()
                    .filter(|e| e.state == EmergencyState::Active);
                let reverted = newest_first
                    .filter(|e| e.state == EmergencyState::Reverted)
                    .take(recent);
                active.chain(reverted).cloned().collect()
            }))
        })
    }

    fn revert(&self, id: i64) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            Ok(self.with(|m| {
                match m
                    .emergencies
                    .iter_mut()
                    .find(|e| e.id == id && e.state == EmergencyState::Active)
                {
                    Some(e) => {
                        e.state = EmergencyState::Reverted;
                        true
                    }
                    None => false,
                }
            }))
        })
    }

    fn audit(&self, at: OffsetDateTime, action: &str, detail: String) -> StoreFuture<'_, ()> {
        let action = action.to_string();
        Box::pin(async move {
            self.with(|m| {
                m.audit.push(AuditEntry { at, action, detail });
                if m.audit.len() > MEMORY_AUDIT {
                    m.audit.remove(0);
                }
            });
            Ok(())
        })
    }

    fn audit_log(&self, limit: usize) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(
            async move { Ok(self.with(|m| m.audit.iter().rev().take(limit).cloned().collect())) },
        )
    }

    fn lead(&self, _holder: &str, _now: OffsetDateTime, _lease: Duration) -> StoreFuture<'_, bool> {
        // One process, one controller.
        Box::pin(async { Ok(true) })
    }

    fn add_rates(&self, minutes: Vec<MinuteCount>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.with(|m| {
                for (minute, count) in minutes {
                    *m.rates.entry(minute).or_default() += count;
                }
                if let Some((&newest, _)) = m.rates.last_key_value() {
                    m.rates = m.rates.split_off(&newest.saturating_sub(KEEP_MINUTES));
                }
            });
            Ok(())
        })
    }

    fn rates(&self, since: u64) -> StoreFuture<'_, Vec<MinuteCount>> {
        Box::pin(async move {
            Ok(self.with(|m| m.rates.range(since..).map(|(&k, &v)| (k, v)).collect()))
        })
    }
}

/// The Postgres store; every statement runs on the primary.
pub struct PgScalingStore {
    primary: DbPool,
}

impl PgScalingStore {
    /// A store over `primary` (migrated at start-up).
    pub fn new(primary: DbPool) -> Self {
        Self { primary }
    }
}

fn targets_json(targets: &BTreeMap<String, u32>) -> Value {
    serde_json::to_value(targets).unwrap_or(Value::Null)
}

fn targets_of(value: Value) -> BTreeMap<String, u32> {
    serde_json::from_value(value).unwrap_or_default()
}

fn event_of(row: &tokio_postgres::Row) -> ScheduledEvent {
    ScheduledEvent {
        request: ScalingEventRequest {
            name: row.get(0),
            start: at_ms(row.get(1)),
            end: at_ms(row.get(2)),
            targets: targets_of(row.get(3)),
            warm_cache: row.get(4),
        },
        state: state_of(row.get(5)),
    }
}

fn emergency_of(row: &tokio_postgres::Row) -> EmergencyScale {
    EmergencyScale {
        id: row.get(0),
        targets: targets_of(row.get(1)),
        reason: row.get(2),
        started: at_ms(row.get(3)),
        expires: at_ms(row.get(4)),
        state: if row.get(5) {
            EmergencyState::Reverted
        } else {
            EmergencyState::Active
        },
    }
}

const EVENT_COLUMNS: &str = "name, starts_at, ends_at, targets, warm_cache, state";
const EMERGENCY_COLUMNS: &str = "id, targets, reason, started_at, expires_at, reverted";

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl ScalingStore for PgScalingStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn add_event(&self, request: ScalingEventRequest) -> StoreFuture<'_, Added> {
        Box::pin(async move {
            let conn = self.primary.get().await?;
            let inserted = conn
                .query_opt(
                    &format!(
                        "INSERT INTO scaling_events (name, starts_at, ends_at, targets, warm_cache) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING {EVENT_COLUMNS}"
                    ),
                    &[
                        &request.name,
                        &unix_ms(request.start),
                        &unix_ms(request.end),
                        &targets_json(&request.targets),
                        &request.warm_cache,
                    ],
                )
                .await?;
            if let Some(row) = inserted {
                return Ok(Added::New(event_of(&row)));
            }
            let row = conn
                .query_one(
                    &format!("SELECT {EVENT_COLUMNS} FROM scaling_events WHERE name = $1"),
                    &[&request.name],
                )
                .await?;
            let existing = event_of(&row);
            Ok(if existing.request == request {
                Added::Same(existing)
            } else {
                Added::Clash(existing)
            })
        })
    }

    fn events(&self) -> StoreFuture<'_, Vec<ScheduledEvent>> {
        Box::pin(async move {
            let conn = self.primary.get().await?;
            let rows = conn
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM scaling_events WHERE state <> 'done' ORDER BY starts_at, name"
                    ),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(event_of).collect())
        })
    }

    fn advance(&self, name: String, from: EventState, to: EventState) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let conn = self.primary.get().await?;
            let n = conn
                .execute(
                    "UPDATE scaling_events SET state = $3 WHERE name = $1 AND state = $2",
                    &[&name, &state_name(from), &state_name(to)],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn add_emergency(
        &self,
        targets: BTreeMap<String, u32>,
        reason: String,
        started: OffsetDateTime,
        expires: OffsetDateTime,
    ) -> StoreFuture<'_, Emergency> {
        Box::pin(async move {
            let mut conn = self.primary.get().await?;
            let tx = conn.transaction().await?;
            // Serialise emergency requests so two retries cannot both start one.
            tx.execute(
                "LOCK TABLE scaling_emergencies IN SHARE ROW EXCLUSIVE MODE",
                &[],
            )
            .await?;
            let targets_value = targets_json(&targets);
            let existing = tx
                .query_opt(
                    &format!(
                        "SELECT {EMERGENCY_COLUMNS} FROM scaling_emergencies \
                         WHERE NOT reverted AND targets = $1 ORDER BY id DESC LIMIT 1"
                    ),
                    &[&targets_value],
                )
                .await?;
            let result = match existing {
                Some(row) => Emergency {
                    scale: emergency_of(&row),
                    new: false,
                },
                None => {
                    let row = tx
                        .query_one(
                            &format!(
                                "INSERT INTO scaling_emergencies (targets, reason, started_at, expires_at) \
                                 VALUES ($1, $2, $3, $4) RETURNING {EMERGENCY_COLUMNS}"
                            ),
                            &[&targets_value, &reason, &unix_ms(started), &unix_ms(expires)],
                        )
                        .await?;
                    Emergency {
                        scale: emergency_of(&row),
                        new: true,
                    }
                }
            };
            tx.commit().await?;
            Ok(result)
        })
    }

    fn emergencies(&self, recent: usize) -> StoreFuture<'_, Vec<EmergencyScale>> {
        Box::pin(async move {
            let conn = self.primary.get().await?;
            let rows = conn
                .query(
                    &format!(
                        "(SELECT {EMERGENCY_COLUMNS} FROM scaling_emergencies WHERE NOT reverted ORDER BY id DESC) \
                         UNION ALL \
                         (SELECT {EMERGENCY_COLUMNS} FROM scaling_emergencies WHERE reverted ORDER BY id DESC LIMIT $1)"
                    ),
                    &[&limit(recent)],
                )
                .await?;
            Ok(rows.iter().map(emergency_of).collect())
        })
    }

    fn revert(&self, id: i64) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let conn = self.primary.get().await?;
            let n = conn
                .execute(
                    "UPDATE scaling_emergencies SET reverted = true WHERE id = $1 AND NOT reverted",
                    &[&id],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn audit(&self, at: OffsetDateTime, action: &str, detail: String) -> StoreFuture<'_, ()> {
        let action = action.to_string();
        Box::pin(async move {
            let conn = self.primary.get().await?;
            conn.execute(
                "INSERT INTO scaling_audit (at, action, detail) VALUES ($1, $2, $3)",
                &[&unix_ms(at), &action, &detail],
            )
            .await?;
            Ok(())
        })
    }

    fn audit_log(&self, n: usize) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let conn = self.primary.get().await?;
            let rows = conn
                .query(
                    "SELECT at, action, detail FROM scaling_audit ORDER BY id DESC LIMIT $1",
                    &[&limit(n)],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| AuditEntry {
                    at: at_ms(r.get(0)),
                    action: r.get(1),
                    detail: r.get(2),
                })
                .collect())
        })
    }

    fn lead(&self, holder: &str, now: OffsetDateTime, lease: Duration) -> StoreFuture<'_, bool> {
        let holder = holder.to_string();
        Box::pin(async move {
            let conn = self.primary.get().await?;
            let now = unix_ms(now);
            let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
            let n = conn
                .execute(
                    "INSERT INTO scaling_lease (id, holder, until_ms) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET holder = $1, until_ms = $2 \
                     WHERE scaling_lease.holder = $1 OR scaling_lease.until_ms < $3",
                    &[&holder, &until, &now],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn add_rates(&self, minutes: Vec<MinuteCount>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let Some(newest) = minutes.iter().map(|&(m, _)| m).max() else {
                return Ok(());
            };
            let (keys, counts): (Vec<i64>, Vec<i64>) =
                minutes.iter().map(|&(m, c)| (to_i64(m), to_i64(c))).unzip();
            let mut conn = self.primary.get().await?;
            let tx = conn.transaction().await?;
            // One statement per flush: the counts of every minute in the batch are added to
            // what other pods stored, in one round trip.
            tx.execute(
                "INSERT INTO scaling_rates (minute, requests) \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[]) \
                 ON CONFLICT (minute) DO UPDATE SET requests = scaling_rates.requests + EXCLUDED.requests",
                &[&keys, &counts],
            )
            .await?;
            tx.execute(
                "DELETE FROM scaling_rates WHERE minute < $1",
                &[&to_i64(newest.saturating_sub(KEEP_MINUTES))],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn rates(&self, since: u64) -> StoreFuture<'_, Vec<MinuteCount>> {
        Box::pin(async move {
            let conn = self.primary.get().await?;
            let rows = conn
                .query(
                    "SELECT minute, requests FROM scaling_rates WHERE minute >= $1 ORDER BY minute",
                    &[&to_i64(since)],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| (to_u64(r.get(0)), to_u64(r.get(1))))
                .collect())
        })
    }
}
