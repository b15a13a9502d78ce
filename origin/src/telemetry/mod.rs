//! What the origin knows about its own traffic: request latency histograms by route and
//! status class (Prometheus text via `prometheus-client`), logs and OpenTelemetry spans
//! (`otel`), the trace context of a request (`context`), span trees of recent and slowest
//! traces for `GET /performance/apm/traces` (`spans`), CPU and heap profiles on demand
//! (`profile`, `heap`) and the SLA (`sla`).
//! Routes are the policy's route names, so label cardinality is bounded by the policy.

pub mod context;
pub mod exposition;
pub mod heap;
pub mod json_fields;
pub mod otel;
pub mod process;
pub mod profile;
pub mod sampling;
pub mod sla;
pub mod spans;
pub mod striped;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// Latency bucket edges (seconds). The SLO thresholds — 100 ms, 500 ms and 1 s — are edges,
/// so alerts and dashboards read them exactly (`le="0.1"`, `le="0.5"`, `le="1.0"`).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Most histogram handles a thread keeps ([`HANDLES`]).
const MAX_HANDLES: usize = 256;

/// Labels of the request histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The policy route name (`ballot`, `vote`, `admin`, `unmatched`, …), shared by every
    /// request on the route.
    pub route: Arc<String>,
    /// HTTP method.
    pub method: &'static str,
    /// `1xx` … `5xx`, or `other`.
    pub status: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~4 s.
    Histogram::new(LATENCY_BUCKETS)
}

/// Request metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Latency (seconds) by route, method and status class.
    pub requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    /// The route names seen, so a request's labels are made without allocating.
    routes: RwLock<HashMap<String, Arc<String>>>,
    /// Requests answered on the connection front, before the router (also in `requests`).
    front_answers: striped::Striped<AtomicU64>,
    /// Tells this instance's histograms apart in the per-thread handles ([`HANDLES`]).
    id: u64,
}

/// Gives every [`Metrics`] its own id.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Handles to the histograms this thread observed into, by metrics id and labels: a
    /// request's observation finds its histogram without hashing its labels or taking the
    /// family's lock. A handle shares the family's histogram (a reference count).
    static HANDLES: RefCell<Vec<(u64, RequestLabels, Histogram)>> = const { RefCell::new(Vec::new()) };
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            routes: RwLock::default(),
            front_answers: striped::Striped::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Metrics {
    /// Records one request. Labels stay bounded whatever clients send: the route is the
    /// policy's name, the method one of the standard ones or `other`, the status a class.
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let (method, status) = (method_label(method), status_class(status));
        HANDLES.with_borrow_mut(|handles| {
            let known = handles.iter().find(|(id, labels, _)| {
                *id == self.id
                    && labels.route.as_str() == route
                    && labels.method == method
                    && labels.status == status
            });
            if let Some((_, _, histogram)) = known {
                histogram.observe(took.as_secs_f64());
                return;
            }
            let labels = RequestLabels {
                route: self.route(route),
                method,
                status,
            };
            let histogram = self.requests.get_or_create(&labels).clone();
            histogram.observe(took.as_secs_f64());
            // Bounded like the labels (policy routes × methods × classes); a thread that
            // outlives many metrics instances (tests) starts over.
            if handles.len() >= MAX_HANDLES {
                handles.clear();
            }
            handles.push((self.id, labels, histogram));
        });
    }

    /// Counts a request answered on the connection front.
    pub fn answered_on_the_front(&self) {
        self.front_answers.mine().fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered on the connection front so far.
    pub fn front_answers(&self) -> u64 {
        self.front_answers
            .all()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }

    /// The shared name of `route` (routes are the policy's, so this stays small).
    fn route(&self, route: &str) -> Arc<String> {
        let known = self.routes.read().unwrap_or_else(|p| p.into_inner());
        if let Some(name) = known.get(route) {
            return name.clone();
        }
        drop(known);
        let mut known = self.routes.write().unwrap_or_else(|p| p.into_inner());
        known
            .entry(route.to_string())
            .or_insert_with(|| Arc::new(route.to_string()))
            .clone()
    }
}

/// `status`'s class as a label.
fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

/// `method` as a metric label: a standard method, or `other`.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 8] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(metrics: &Metrics) -> String {
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("requests", "", metrics.requests.clone());
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        text
    }

    #[test]
    fn every_observation_lands_in_its_own_instances_histogram() {
        let (one, two) = (Metrics::default(), Metrics::default());
        for _ in 0..3 {
            one.observe("ballot", "GET", 200, Duration::from_millis(1));
        }
        two.observe("ballot", "GET", 200, Duration::from_millis(1));
        one.observe("ballot", "GET", 503, Duration::from_millis(1));
        let (one, two) = (exposition(&one), exposition(&two));
        let count = |text: &str, status: &str| {
            let prefix =
                format!("requests_count{{route=\"ballot\",method=\"GET\",status=\"{status}\"}} ");
            text.lines()
                .find_map(|line| line.strip_prefix(prefix.as_str()))
                .map(str::to_string)
        };
        assert_eq!(count(&one, "2xx").as_deref(), Some("3"), "{one}");
        assert_eq!(count(&one, "5xx").as_deref(), Some("1"), "{one}");
        assert_eq!(count(&two, "2xx").as_deref(), Some("1"), "{two}");
        assert_eq!(count(&two, "5xx"), None, "{two}");
    }

    #[test]
    fn method_labels_are_bounded() {
        let metrics = Metrics::default();
        for method in ["GET", "FOO", "X-1", "get", "BREW"] {
            metrics.observe("elections", method, 200, Duration::from_millis(1));
        }
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("requests", "", metrics.requests.clone());
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(text.contains("method=\"GET\"") && text.contains("method=\"other\""));
        for sent in ["FOO", "X-1", "get", "BREW"] {
            assert!(!text.contains(&format!("method=\"{sent}\"")), "{text}");
        }
    }
}
