//! The floor each workload needs now: the highest of the scheduled events in their window,
//! the unexpired emergencies and the forecast, with what asked for it. Pure: the controller
//! reads the inputs, this decides, the cluster client applies.

use std::collections::BTreeMap;

use surge_shared::admin::{EmergencyScale, EmergencyState, ScheduledEvent};
use time::OffsetDateTime;

/// A raised floor and what raises it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Floor {
    /// The highest replica count asked for.
    pub replicas: u32,
    /// `event:<name>`, `emergency:<id>`, `forecast`, highest first.
    pub raised_by: Vec<String>,
}

/// Whether `event` is in its window at `now` (start inclusive, end exclusive).
pub fn in_window(event: &ScheduledEvent, now: OffsetDateTime) -> bool {
    event.request.start <= now && now < event.request.end
}

/// Whether `emergency` still holds at `now`.
pub fn holds(emergency: &EmergencyScale, now: OffsetDateTime) -> bool {
    emergency.state == EmergencyState::Active && now < emergency.expires
}

/// The floors at `now`; a workload nothing raises is absent.
pub fn floors(
    now: OffsetDateTime,
    events: &[ScheduledEvent],
    emergencies: &[EmergencyScale],
    forecast: Option<(&str, u32)>,
) -> BTreeMap<String, Floor> {
    let mut asks: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for event in events.iter().filter(|e| in_window(e, now)) {
        for (workload, replicas) in &event.request.targets {
            asks.entry(workload.clone())
                .or_default()
                .push((*replicas, format!("event:{}", event.request.name)));
        }
    }
    for emergency in emergencies.iter().filter(|e| holds(e, now)) {
        for (workload, replicas) in &emergency.targets {
            asks.entry(workload.clone())
                .or_default()
                .push((*replicas, format!("emergency:{}", emergency.id)));
        }
    }
    if let Some((workload, replicas)) = forecast {
        asks.entry(workload.to_string())
            .or_default()
            .push((replicas, "forecast".into()));
    }
    asks.into_iter()
        .map(|(workload, mut list)| {
            list.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let floor = Floor {
                replicas: list[0].0,
                raised_by: list.into_iter().map(|(_, why)| why).collect(),
            };
            (workload, floor)
        })
        .collect()
}

/// How long after `now` the floors may next change: at the next event start or end, or
/// emergency expiry, when that comes before `tick` has passed; `tick` otherwise.
pub fn next_change(
    now: OffsetDateTime,
    tick: std::time::Duration,
    events: &[ScheduledEvent],
    emergencies: &[EmergencyScale],
) -> std::time::Duration {
    let boundaries = events
        .iter()
        .flat_map(|e| [e.request.start, e.request.end])
        .chain(emergencies.iter().map(|e| e.expires));
    boundaries
        .filter(|b| *b > now)
        .filter_map(|b| std::time::Duration::try_from(b - now).ok())
        .filter(|d| *d < tick)
        .min()
        .unwrap_or(tick)
}

#[cfg(test)]
mod tests {
    use super::*;
    use surge_shared::admin::{EventState, ScalingEventRequest};
    use time::macros::datetime;

    fn event(
        name: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
        targets: &[(&str, u32)],
    ) -> ScheduledEvent {
        ScheduledEvent {
            request: ScalingEventRequest {
                name: name.into(),
                start,
                end,
                targets: targets.iter().map(|(w, n)| (w.to_string(), *n)).collect(),
                warm_cache: false,
            },
            state: EventState::Pending,
        }
    }

    fn emergency(
        id: i64,
        expires: OffsetDateTime,
        state: EmergencyState,
        targets: &[(&str, u32)],
    ) -> EmergencyScale {
        EmergencyScale {
            id,
            targets: targets.iter().map(|(w, n)| (w.to_string(), *n)).collect(),
            reason: "test".into(),
            started: datetime!(2026-11-03 18:00 UTC),
            expires,
            state,
        }
    }

    #[test]
    fn the_highest_ask_wins_and_every_asker_is_named() {
        let now = datetime!(2026-11-03 20:00 UTC);
        let events = [
            event(
                "polls-close",
                datetime!(2026-11-03 19:00 UTC),
                datetime!(2026-11-04 02:00 UTC),
                &[("voting-service", 20), ("api-gateway", 10)],
            ),
            event(
                "tomorrow",
                datetime!(2026-11-04 19:00 UTC),
                datetime!(2026-11-05 02:00 UTC),
                &[("voting-service", 99)],
            ),
            event(
                "over",
                datetime!(2026-11-03 10:00 UTC),
                datetime!(2026-11-03 20:00 UTC),
                &[("voting-service", 99)],
            ),
        ];
        let emergencies = [
            emergency(
                1,
                datetime!(2026-11-03 20:30 UTC),
                EmergencyState::Active,
                &[("voting-service", 30)],
            ),
            emergency(
                2,
                datetime!(2026-11-03 19:59 UTC),
                EmergencyState::Active,
                &[("voting-service", 99)],
            ),
            emergency(
                3,
                datetime!(2026-11-04 00:00 UTC),
                EmergencyState::Reverted,
                &[("voting-service", 99)],
            ),
        ];
        let floors = floors(now, &events, &emergencies, Some(("api-gateway", 12)));
        assert_eq!(
            floors["voting-service"],
            Floor {
                replicas: 30,
                raised_by: vec!["emergency:1".into(), "event:polls-close".into()]
            }
        );
        assert_eq!(
            floors["api-gateway"],
            Floor {
                replicas: 12,
                raised_by: vec!["forecast".into(), "event:polls-close".into()]
            }
        );
        assert_eq!(floors.len(), 2);
    }

    #[test]
    fn nothing_in_force_means_no_floor() {
        let now = datetime!(2026-11-03 12:00 UTC);
        let events = [event(
            "later",
            datetime!(2026-11-03 19:00 UTC),
            datetime!(2026-11-04 02:00 UTC),
            &[("voting-service", 20)],
        )];
        assert!(floors(now, &events, &[], None).is_empty());
    }

    #[test]
    fn the_next_change_is_the_nearest_boundary_within_a_tick() {
        let now = datetime!(2026-11-03 19:59:57 UTC);
        let tick = std::time::Duration::from_secs(15);
        let events = [event(
            "polls-close",
            datetime!(2026-11-03 20:00 UTC),
            datetime!(2026-11-03 22:00 UTC),
            &[("voting-service", 40)],
        )];
        // The event starts in 3 s: wake then, not a tick later.
        assert_eq!(
            next_change(now, tick, &events, &[]),
            std::time::Duration::from_secs(3)
        );
        // An emergency expiring sooner comes first.
        let soon = [emergency(
            1,
            datetime!(2026-11-03 19:59:58 UTC),
            EmergencyState::Active,
            &[("api-gateway", 8)],
        )];
        assert_eq!(
            next_change(now, tick, &events, &soon),
            std::time::Duration::from_secs(1)
        );
        // Boundaries past, or beyond the tick, leave the tick.
        let later = datetime!(2026-11-03 20:01 UTC);
        assert_eq!(next_change(later, tick, &events, &soon), tick);
    }
}
