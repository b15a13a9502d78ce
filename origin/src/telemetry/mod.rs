//! What the origin knows about its own traffic: request latency histograms by route and
//! status class (Prometheus text via `prometheus-client`), a trace log of recent and slowest
//! requests for `GET /performance/apm/traces`, and CPU profiles on demand (`profile`).
//! Routes are the policy's route names, so label cardinality is bounded by the policy.

pub mod context;
pub mod exposition;
pub mod heap;
pub mod process;
pub mod profile;
pub mod sla;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// Latency bucket edges (seconds). The SLO thresholds — 100 ms, 500 ms and 1 s — are edges,
/// so alerts and dashboards read them exactly (`le="0.1"`, `le="0.5"`, `le="1.0"`).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
use serde::Serialize;

/// Labels of the request histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The policy route name (`ballot`, `vote`, `admin`, `unmatched`, …).
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub status: String,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        }
    }
}

impl Metrics {
    /// Records one request. Labels stay bounded whatever clients send: the route is the
    /// policy's name, the method one of the standard ones or `other`, the status a class.
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let labels = RequestLabels {
            route: route.to_string(),
            method: method_label(method).to_string(),
            status: format!("{}xx", status / 100),
        };
        self.requests
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

/// One finished request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    /// When it finished (ms since the epoch).
    pub at_ms: u64,
    /// Method.
    pub method: String,
    /// Path (no query: queries may carry personal data).
    pub path: String,
    /// Policy route.
    pub route: String,
    /// Response status.
    pub status: u16,
    /// Time to the response head (µs).
    pub took_us: u64,
    /// `x-surge-cache` of the response, when set.
    pub cache: Option<String>,
    /// `x-surge-tier` of the response, when set.
    pub tier: Option<String>,
    /// The W3C trace it belongs to (continued from the request's `traceparent`, or new).
    pub trace_id: String,
    /// The request id (`x-request-id`, or the trace id).
    pub request_id: String,
}

/// The most recent traces and the slowest ones seen.
pub struct TraceLog {
    capacity: usize,
    recent: Mutex<VecDeque<Trace>>,
    slowest: Mutex<Vec<Trace>>,
}

/// What `GET /performance/apm/traces` returns.
#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    /// Newest first.
    pub recent: Vec<Trace>,
    /// Slowest first.
    pub slowest: Vec<Trace>,
}

impl TraceLog {
    /// Keeps `capacity` recent traces and the `capacity / 8` slowest.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(8),
            recent: Mutex::new(VecDeque::with_capacity(capacity)),
            slowest: Mutex::new(Vec::new()),
        }
    }

    /// Records a trace.
    pub fn record(&self, trace: Trace) {
        let keep_slow = self.capacity / 8;
        if let Ok(mut slowest) = self.slowest.lock()
            && (slowest.len() < keep_slow
                || slowest.last().is_some_and(|t| t.took_us < trace.took_us))
        {
            let at = slowest.partition_point(|t| t.took_us >= trace.took_us);
            slowest.insert(at, trace.clone());
            slowest.truncate(keep_slow);
        }
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == self.capacity {
                recent.pop_back();
            }
            recent.push_front(trace);
        }
    }

    /// Up to `limit` recent and slowest traces.
    pub fn report(&self, limit: usize) -> TraceReport {
        TraceReport {
            recent: self
                .recent
                .lock()
                .map(|r| r.iter().take(limit).cloned().collect())
                .unwrap_or_default(),
            slowest: self
                .slowest
                .lock()
                .map(|s| s.iter().take(limit).cloned().collect())
                .unwrap_or_default(),
        }
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

    fn trace(took_us: u64) -> Trace {
        Trace {
            at_ms: 0,
            method: "GET".into(),
            path: "/".into(),
            route: "unmatched".into(),
            status: 200,
            took_us,
            cache: None,
            tier: None,
            trace_id: String::new(),
            request_id: String::new(),
        }
    }

    #[test]
    fn the_log_keeps_the_newest_and_the_slowest() {
        let log = TraceLog::new(16);
        for took in [
            5, 50, 1, 500, 7, 3, 2, 9, 4, 6, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18,
        ] {
            log.record(trace(took));
        }
        let report = log.report(100);
        assert_eq!(report.recent.len(), 16);
        assert_eq!(report.recent[0].took_us, 18);
        let slow: Vec<u64> = report.slowest.iter().map(|t| t.took_us).collect();
        assert_eq!(slow, vec![500, 50]);
    }
}
