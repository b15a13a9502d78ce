//! Recent and slowest traces as span trees, for `GET /performance/apm/traces`. It is an
//! OpenTelemetry span processor beside the OTLP exporter, so the page shows the spans a
//! collector receives. Spans wait, grouped by trace, until the span that began the trace in
//! this process (a request, or a background job) ends; then the tree is assembled and kept.
//! Memory is bounded: traces waiting, spans per trace, and trees kept. An ended span is only
//! moved into place on the request path; trees are assembled and their attributes written out
//! when the page is read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use serde::Serialize;

/// Spans kept per trace; more are counted in `dropped_spans`.
const MAX_SPANS: usize = 256;

/// One span of a tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanNode {
    /// Its name (`GET ballot`, `cache.l2`, `db.query`, …).
    pub name: String,
    /// Its id (16 hex digits).
    pub span_id: String,
    /// When it started, µs after the trace's first span here started.
    pub start_us: u64,
    /// How long it took (µs).
    pub took_us: u64,
    /// Whether it ended in error.
    pub error: bool,
    /// Its attributes (`http.route`, `db.statement`, `cache.hit`, …).
    pub attributes: BTreeMap<String, String>,
    /// The spans it started, in start order.
    pub children: Vec<SpanNode>,
}

/// One trace as this process saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceTree {
    /// The W3C trace id (32 hex digits).
    pub trace_id: String,
    /// The request id, when the trace is a request.
    pub request_id: Option<String>,
    /// The caller's span, when the trace was continued (16 hex digits).
    pub parent_span_id: Option<String>,
    /// When the root span ended (ms since the epoch).
    pub at_ms: u64,
    /// How long the root span took (µs).
    pub took_us: u64,
    /// Spans beyond the per-trace bound, not shown.
    pub dropped_spans: u32,
    /// The span that began the trace here, with everything under it.
    pub root: SpanNode,
}

/// What `GET /performance/apm/traces` returns.
#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    /// Newest first.
    pub recent: Vec<TraceTree>,
    /// Slowest first.
    pub slowest: Vec<TraceTree>,
}

/// An ended span, as the SDK handed it over.
#[derive(Debug, Clone)]
struct Ended {
    span_id: SpanId,
    parent: SpanId,
    name: std::borrow::Cow<'static, str>,
    start: SystemTime,
    end: SystemTime,
    error: bool,
    attributes: Vec<KeyValue>,
}

/// A finished trace, kept as its spans until it is shown.
#[derive(Debug)]
struct Finished {
    trace_id: TraceId,
    remote_parent: Option<SpanId>,
    took_us: u64,
    dropped: u32,
    root: Ended,
    spans: Vec<Ended>,
}

impl Finished {
    fn tree(&self) -> TraceTree {
        let attribute = |name: &str| {
            self.root
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == name)
                .map(|kv| kv.value.to_string())
        };
        TraceTree {
            trace_id: self.trace_id.to_string(),
            request_id: attribute("request_id"),
            parent_span_id: self.remote_parent.map(|id| id.to_string()),
            at_ms: u64::try_from(
                self.root
                    .end
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis(),
            )
            .unwrap_or(u64::MAX),
            took_us: self.took_us,
            dropped_spans: self.dropped,
            root: assemble(&self.root, &self.spans),
        }
    }
}

#[derive(Debug, Default)]
struct Waiting {
    /// Its place in [`State::order`].
    seq: u64,
    spans: Vec<Ended>,
    dropped: u32,
}

#[derive(Debug, Default)]
struct State {
    waiting: HashMap<TraceId, Waiting>,
    /// Arrival order of `waiting`, to drop the oldest when full; a finished trace leaves it
    /// in O(log n), off the request path's lock for long.
    order: BTreeMap<u64, TraceId>,
    next_seq: u64,
    recent: VecDeque<Arc<Finished>>,
    slowest: Vec<Arc<Finished>>,
}

/// The processor and the trees it keeps; clones share them (one goes to the tracer
/// provider, one to the admin API).
#[derive(Debug, Clone)]
pub struct SpanTrees {
    capacity: usize,
    state: Arc<Mutex<State>>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn since(later: SystemTime, earlier: SystemTime) -> u64 {
    micros(later.duration_since(earlier).unwrap_or_default())
}

impl SpanTrees {
    /// Keeps `capacity` recent trees and the `capacity / 8` slowest; at most `4 × capacity`
    /// traces wait for their root span.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(8),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Up to `limit` recent and slowest traces.
    pub fn report(&self, limit: usize) -> TraceReport {
        let Ok(state) = self.state.lock() else {
            return TraceReport {
                recent: Vec::new(),
                slowest: Vec::new(),
            };
        };
        let (recent, slowest): (Vec<_>, Vec<_>) = (
            state.recent.iter().take(limit).cloned().collect(),
            state.slowest.iter().take(limit).cloned().collect(),
        );
        drop(state);
        TraceReport {
            recent: recent.iter().map(|t| t.tree()).collect(),
            slowest: slowest.iter().map(|t| t.tree()).collect(),
        }
    }

    /// Takes one ended span; when it is the trace's root here, assembles and keeps the tree.
    fn take(&self, span: SpanData) {
        let trace_id = span.span_context.trace_id();
        let is_root = span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote;
        let remote_parent = span.parent_span_is_remote.then_some(span.parent_span_id);
        let ended = Ended {
            span_id: span.span_context.span_id(),
            parent: span.parent_span_id,
            name: span.name,
            start: span.start_time,
            end: span.end_time,
            error: matches!(span.status, Status::Error { .. }),
            attributes: span.attributes,
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if !is_root {
            if !state.waiting.contains_key(&trace_id) {
                if state.order.len() >= self.capacity * 4
                    && let Some((_, oldest)) = state.order.pop_first()
                {
                    state.waiting.remove(&oldest);
                }
                let seq = state.next_seq;
                state.next_seq += 1;
                state.order.insert(seq, trace_id);
                state.waiting.insert(
                    trace_id,
                    Waiting {
                        seq,
                        ..Waiting::default()
                    },
                );
            }
            let waiting = state.waiting.entry(trace_id).or_default();
            if waiting.spans.len() < MAX_SPANS {
                waiting.spans.push(ended);
            } else {
                waiting.dropped = waiting.dropped.saturating_add(1);
            }
            return;
        }
        let waiting = match state.waiting.remove(&trace_id) {
            Some(waiting) => {
                state.order.remove(&waiting.seq);
                waiting
            }
            None => Waiting::default(),
        };
        let tree = Arc::new(Finished {
            trace_id,
            remote_parent,
            took_us: since(ended.end, ended.start),
            dropped: waiting.dropped,
            root: ended,
            spans: waiting.spans,
        });
        self.keep(&mut state, tree);
    }

    fn keep(&self, state: &mut State, tree: Arc<Finished>) {
        let keep_slow = self.capacity / 8;
        if state.slowest.len() < keep_slow
            || state
                .slowest
                .last()
                .is_some_and(|t| t.took_us < tree.took_us)
        {
            let at = state.slowest.partition_point(|t| t.took_us >= tree.took_us);
            state.slowest.insert(at, tree.clone());
            state.slowest.truncate(keep_slow);
        }
        if state.recent.len() == self.capacity {
            state.recent.pop_back();
        }
        state.recent.push_front(tree);
    }
}

/// The tree under `root` from `spans` (spans whose parent is not there are left out).
fn assemble(root: &Ended, spans: &[Ended]) -> SpanNode {
    let mut ordered: Vec<&Ended> = spans.iter().collect();
    ordered.sort_by_key(|s| s.start);
    let mut children: HashMap<SpanId, Vec<&Ended>> = HashMap::new();
    for span in ordered {
        children.entry(span.parent).or_default().push(span);
    }
    node(root, root.start, &mut children)
}

fn node(span: &Ended, origin: SystemTime, children: &mut HashMap<SpanId, Vec<&Ended>>) -> SpanNode {
    let mine = children.remove(&span.span_id).unwrap_or_default();
    SpanNode {
        name: span.name.to_string(),
        span_id: span.span_id.to_string(),
        start_us: since(span.start, origin),
        took_us: since(span.end, span.start),
        error: span.error,
        attributes: span
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect(),
        children: mine
            .into_iter()
            .map(|child| node(child, origin, children))
            .collect(),
    }
}

impl SpanProcessor for SpanTrees {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        self.take(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        Span as _, SpanContext, TraceContextExt, TraceFlags, TraceState, Tracer, TracerProvider,
    };
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    fn provider(trees: &SpanTrees) -> SdkTracerProvider {
        SdkTracerProvider::builder()
            .with_span_processor(trees.clone())
            .build()
    }

    #[test]
    fn a_request_becomes_one_tree_with_its_children_in_order() {
        let trees = SpanTrees::new(16);
        let tracer = provider(&trees).tracer("test");
        let caller = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("trace id"),
            SpanId::from_hex("00f067aa0ba902b7").expect("span id"),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let remote = Context::new().with_remote_span_context(caller);
        let request = tracer
            .span_builder("GET ballot")
            .with_attributes([KeyValue::new("request_id", "req-1")])
            .start_with_context(&tracer, &remote);
        let cx = remote.with_span(request);
        for name in ["cache.l1", "cache.l2", "db.query"] {
            let child = tracer.start_with_context(name, &cx);
            let grandchild_cx = cx.with_span(child);
            if name == "db.query" {
                drop(tracer.start_with_context("db.acquire", &grandchild_cx));
            }
            drop(grandchild_cx);
        }
        assert!(trees.report(10).recent.is_empty(), "the root has not ended");
        drop(cx);

        let report = trees.report(10);
        assert_eq!(report.recent.len(), 1);
        let tree = &report.recent[0];
        assert_eq!(tree.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tree.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(tree.request_id.as_deref(), Some("req-1"));
        assert_eq!(tree.root.name, "GET ballot");
        let names: Vec<&str> = tree.root.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["cache.l1", "cache.l2", "db.query"]);
        assert_eq!(tree.root.children[2].children[0].name, "db.acquire");
        assert!(
            tree.root
                .children
                .iter()
                .all(|c| c.start_us <= tree.took_us)
        );
    }

    #[test]
    fn trees_are_bounded_and_the_slowest_are_kept() {
        let trees = SpanTrees::new(8);
        let tracer = provider(&trees).tracer("test");
        let start = SystemTime::now();
        for (i, took_ms) in [5u64, 50, 1, 500, 7, 3, 2, 9, 4, 6, 8, 10]
            .iter()
            .enumerate()
        {
            tracer
                .span_builder(format!("request {i}"))
                .with_start_time(start)
                .start(&tracer)
                .end_with_timestamp(start + Duration::from_millis(*took_ms));
        }
        let report = trees.report(100);
        assert_eq!(report.recent.len(), 8);
        assert_eq!(report.recent[0].root.name, "request 11");
        assert_eq!(report.slowest.len(), 1);
        assert_eq!(report.slowest[0].took_us, 500_000);
    }

    #[test]
    fn spans_whose_root_never_ends_do_not_pile_up() {
        let trees = SpanTrees::new(8);
        let tracer = provider(&trees).tracer("test");
        let mut roots = Vec::new();
        for _ in 0..100 {
            let cx = Context::new().with_span(tracer.start("never ends"));
            drop(tracer.start_with_context("child", &cx));
            roots.push(cx);
        }
        let state = trees.state.lock().expect("state");
        assert_eq!(state.waiting.len(), 32);
        assert_eq!(state.order.len(), 32);
        drop(state);
        drop(roots);
        assert_eq!(trees.report(100).recent.len(), 8);
    }
}
