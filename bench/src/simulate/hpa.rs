//! The HorizontalPodAutoscaler v2 algorithm as the Kubernetes documentation describes it (and
//! the controller implements it): one sync computes a proposal from the average utilisation
//! of the ready pods (unready pods count as idle when the proposal is to grow), holds it
//! within the tolerance, stabilises it over the scale-up and scale-down windows, and limits
//! the change by the scaling policies counted from the replicas at the start of each
//! policy's period. Replicas below `minReplicas` are raised to it at once, above
//! `maxReplicas` lowered to it, without the policies, as the controller does.

use std::collections::VecDeque;

/// How a policy limits a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// By a number of pods per period.
    Pods,
    /// By a percentage of the replicas at the period's start.
    Percent,
}

/// One scaling policy (`behavior.scaleUp.policies[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Pods or percent.
    pub kind: PolicyKind,
    /// How many pods, or which percentage.
    pub value: u32,
    /// Period in seconds.
    pub period: u64,
}

/// Which policy wins (`selectPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The one allowing the largest change.
    Max,
    /// The one allowing the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// One direction's rules (`behavior.scaleUp` or `behavior.scaleDown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// `stabilizationWindowSeconds`.
    pub stabilization: u64,
    /// `selectPolicy`.
    pub select: Select,
    /// `policies`.
    pub policies: Vec<Policy>,
}

/// The autoscaler's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    /// `minReplicas` as written (a floor raised by the scaling hooks comes per sync).
    pub min: u32,
    /// `maxReplicas`.
    pub max: u32,
    /// Target average utilisation, as a fraction of the request (0.6 for 60 %).
    pub target: f64,
    /// The controller's tolerance (0.1 by default).
    pub tolerance: f64,
    /// Scale-up rules.
    pub up: Rules,
    /// Scale-down rules.
    pub down: Rules,
}

impl HpaSpec {
    /// The Kubernetes defaults for `behavior`: scale up by the larger of 100 % or 4 pods per
    /// 15 s at once, scale down by up to 100 % per 15 s after a 300 s window.
    pub fn default_behavior(min: u32, max: u32, target: f64) -> Self {
        Self {
            min,
            max,
            target,
            tolerance: 0.1,
            up: Rules {
                stabilization: 0,
                select: Select::Max,
                policies: vec![
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period: 15,
                    },
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period: 15,
                    },
                ],
            },
            down: Rules {
                stabilization: 300,
                select: Select::Max,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: 15,
                }],
            },
        }
    }
}

/// An autoscaler's memory between syncs: recent recommendations and recent changes.
#[derive(Debug, Clone)]
pub struct Hpa {
    spec: HpaSpec,
    recommendations: VecDeque<(u64, u32)>,
    changes: VecDeque<(u64, i64)>,
}

/// What one sync sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Pods the Deployment has (ready or starting).
    pub current: u32,
    /// Of which ready.
    pub ready: u32,
    /// Average utilisation of the ready pods, as a fraction of the request.
    pub utilisation: f64,
    /// `minReplicas` now (the spec's, or a floor the scaling hooks raised).
    pub min: u32,
}

impl Hpa {
    /// An autoscaler with `spec`.
    pub fn new(spec: HpaSpec) -> Self {
        Self {
            spec,
            recommendations: VecDeque::new(),
            changes: VecDeque::new(),
        }
    }

    /// The spec.
    pub fn spec(&self) -> &HpaSpec {
        &self.spec
    }

    /// The replicas the metric asks for, before stabilisation and policies.
    fn proposal(&self, o: Observation) -> u32 {
        if o.ready == 0 {
            return o.current;
        }
        let ratio = o.utilisation / self.spec.target;
        let starting = o.current.saturating_sub(o.ready);
        // Growing: starting pods count as idle, so pods on their way are not asked for twice.
        let (counted, new_ratio) = if ratio > 1.0 && starting > 0 {
            (
                o.current,
                o.utilisation * f64::from(o.ready) / (self.spec.target * f64::from(o.current)),
            )
        } else {
            (o.ready, ratio)
        };
        if (1.0 - new_ratio).abs() <= self.spec.tolerance
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
        {
            return o.current;
        }
        let wanted = (new_ratio * f64::from(counted))
            .ceil()
            .min(f64::from(u32::MAX)) as u32;
        if (new_ratio < 1.0 && wanted > o.current) || (new_ratio > 1.0 && wanted < o.current) {
            return o.current;
        }
        wanted
    }

    /// Replicas changed within the last `period` seconds before `now`, up (> 0) or down.
    fn changed_within(&self, now: u64, period: u64, up: bool) -> i64 {
        self.changes
            .iter()
            .filter(|(at, d)| now.saturating_sub(*at) < period && (*d > 0) == up)
            .map(|(_, d)| d.abs())
            .sum()
    }

    fn limit(&self, now: u64, current: u32, up: bool) -> u32 {
        let rules = if up { &self.spec.up } else { &self.spec.down };
        let current = i64::from(current);
        let mut result: Option<i64> = None;
        for p in &rules.policies {
            let changed = self.changed_within(now, p.period, up);
            let start = if up {
                current - changed
            } else {
                current + changed
            };
            let value = i64::from(p.value);
            let proposed = match (p.kind, up) {
                (PolicyKind::Pods, true) => start + value,
                (PolicyKind::Pods, false) => start - value,
                (PolicyKind::Percent, true) => {
                    (start as f64 * (1.0 + value as f64 / 100.0)).ceil() as i64
                }
                (PolicyKind::Percent, false) => {
                    (start as f64 * (1.0 - value as f64 / 100.0)) as i64
                }
            };
            // The largest change: the highest limit up, the lowest down.
            let larger = (rules.select == Select::Max) == up;
            result = Some(match result {
                None => proposed,
                Some(r) if larger => r.max(proposed),
                Some(r) => r.min(proposed),
            });
        }
        let limit = match (rules.select, result) {
            (Select::Disabled, _) | (_, None) => current,
            (_, Some(r)) if up => r.max(current),
            (_, Some(r)) => r.min(current),
        };
        u32::try_from(limit.max(0)).unwrap_or(u32::MAX)
    }

    /// One sync at `now` (seconds): the replicas the Deployment should have.
    pub fn sync(&mut self, now: u64, o: Observation) -> u32 {
        let min = o.min.clamp(1, self.spec.max.max(1));
        let max = self.spec.max.max(min);
        let desired = if o.current > max {
            max
        } else if o.current < min {
            min
        } else {
            let proposal = self.proposal(o);
            self.recommendations.push_back((now, proposal));
            let keep = self.spec.up.stabilization.max(self.spec.down.stabilization);
            while self
                .recommendations
                .front()
                .is_some_and(|(at, _)| now.saturating_sub(*at) > keep)
            {
                self.recommendations.pop_front();
            }
            let within = |window: u64| {
                self.recommendations
                    .iter()
                    .filter(move |(at, _)| now.saturating_sub(*at) <= window)
                    .map(|(_, r)| *r)
            };
            let up = within(self.spec.up.stabilization).min().unwrap_or(proposal);
            let down = within(self.spec.down.stabilization)
                .max()
                .unwrap_or(proposal);
            let stabilised = o.current.max(up).min(down);
            if stabilised > o.current {
                stabilised.min(self.limit(now, o.current, true)).min(max)
            } else if stabilised < o.current {
                stabilised.max(self.limit(now, o.current, false)).max(min)
            } else {
                o.current
            }
        };
        if desired != o.current {
            self.changes
                .push_back((now, i64::from(desired) - i64::from(o.current)));
        }
        let longest = self
            .spec
            .up
            .policies
            .iter()
            .chain(&self.spec.down.policies)
            .map(|p| p.period)
            .max()
            .unwrap_or(0);
        while self
            .changes
            .front()
            .is_some_and(|(at, _)| now.saturating_sub(*at) >= longest)
        {
            self.changes.pop_front();
        }
        desired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(current: u32, utilisation: f64, min: u32) -> Observation {
        Observation {
            current,
            ready: current,
            utilisation,
            min,
        }
    }

    #[test]
    fn the_documented_formula_and_tolerance() {
        // desiredReplicas = ceil[currentReplicas × currentMetricValue / desiredMetricValue]:
        // the documentation's 200m against 100m doubles, 50m against 100m halves.
        let mut hpa = Hpa::new(HpaSpec {
            down: Rules {
                stabilization: 0,
                ..HpaSpec::default_behavior(1, 100, 1.0).down
            },
            ..HpaSpec::default_behavior(1, 100, 1.0)
        });
        assert_eq!(hpa.sync(0, seen(4, 2.0, 1)), 8);
        assert_eq!(hpa.sync(60, seen(8, 0.5, 1)), 4);
        // Within 10 % of the target: no change.
        assert_eq!(hpa.sync(120, seen(4, 1.09, 1)), 4);
        assert_eq!(hpa.sync(180, seen(4, 0.91, 1)), 4);
    }

    #[test]
    fn growth_is_limited_by_the_policies_of_each_period() {
        // Default scale-up: the larger of +100 % and +4 pods per 15 s.
        let mut hpa = Hpa::new(HpaSpec::default_behavior(1, 1000, 0.5));
        assert_eq!(hpa.sync(0, seen(2, 5.0, 1)), 6, "2 + 4 beats 2 × 2");
        // Still inside the same 15 s: the period started at 2 replicas, the limit holds.
        assert_eq!(hpa.sync(10, seen(6, 5.0, 1)), 6);
        assert_eq!(hpa.sync(15, seen(6, 5.0, 1)), 12, "a new period: 6 × 2");
        assert_eq!(hpa.sync(30, seen(12, 5.0, 1)), 24);
    }

    #[test]
    fn starting_pods_count_as_idle_when_growing() {
        let mut hpa = Hpa::new(HpaSpec::default_behavior(1, 100, 0.5));
        // 4 pods, 2 ready at 100 %: as if all 4 ran at 50 % — on target, no more pods.
        let o = Observation {
            current: 4,
            ready: 2,
            utilisation: 1.0,
            min: 1,
        };
        assert_eq!(hpa.sync(0, o), 4);
    }

    #[test]
    fn shrinking_waits_for_the_window_then_follows_its_policy() {
        let mut spec = HpaSpec::default_behavior(1, 100, 0.5);
        spec.down = Rules {
            stabilization: 600,
            select: Select::Min,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 10,
                period: 60,
            }],
        };
        let mut hpa = Hpa::new(spec);
        assert_eq!(hpa.sync(0, seen(20, 0.5, 1)), 20);
        // Load falls to a tenth: the 600 s window still remembers 20.
        assert_eq!(hpa.sync(15, seen(20, 0.05, 1)), 20);
        assert_eq!(hpa.sync(600, seen(20, 0.05, 1)), 20);
        // The window has passed: down by at most 10 % a minute.
        assert_eq!(hpa.sync(615, seen(20, 0.05, 1)), 18);
        assert_eq!(hpa.sync(630, seen(18, 0.05, 1)), 18);
        assert_eq!(hpa.sync(675, seen(18, 0.05, 1)), 16);
    }

    #[test]
    fn a_raised_floor_applies_at_once_and_the_ceiling_holds() {
        let mut hpa = Hpa::new(HpaSpec::default_behavior(3, 50, 0.5));
        assert_eq!(
            hpa.sync(0, seen(3, 0.5, 40)),
            40,
            "below minReplicas: no policy"
        );
        assert_eq!(
            hpa.sync(15, seen(40, 50.0, 3)),
            50,
            "never above maxReplicas"
        );
    }
}
