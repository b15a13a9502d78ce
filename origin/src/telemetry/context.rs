//! W3C Trace Context for one request: the `traceparent` a request arrives with (from the
//! edge, or any caller that traces) becomes the parent of the request's span, whose ids
//! OpenTelemetry assigns; without one (or with an invalid one) a new trace starts. The
//! request id comes from `x-request-id` when it is a plain token, else it is the trace id.
//! Both go into the request's span (so every log line and the trace in
//! `/performance/apm/traces` carry them) and into the response headers, so a log line, a
//! trace and a client's report meet on one id.

use axum::http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use surge_shared::trace::TraceParent;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::http::headers::HeaderSource;

pub use surge_shared::trace::{REQUEST_ID, TRACEPARENT};

/// One request's place in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace, this request's span at the origin, and whether it is recorded.
    pub hop: TraceParent,
    /// The request id.
    pub request_id: String,
}

impl TraceContext {
    /// Makes `span` (a request's span, not yet entered) continue the trace in `headers`'
    /// `traceparent`, records the ids on it, and returns them. Where no OpenTelemetry layer
    /// is installed (a library user's own subscriber), the ids are drawn here instead.
    pub fn attach(span: &tracing::Span, headers: &HeaderMap) -> Self {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let _ = span.set_parent(parent);
        let own = span.context().span().span_context().clone();
        let hop = if own.is_valid() {
            TraceParent {
                trace_id: own.trace_id().to_bytes(),
                span_id: own.span_id().to_bytes(),
                sampled: own.is_sampled(),
            }
        } else {
            // Ids need to be unique, not secret: the thread-local generator, no system call.
            let given = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok());
            TraceParent::continue_or_start(given, || fastrand::u64(..))
        };
        let request_id = hop.request_id(headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()));
        span.record("trace_id", hop.trace_id_hex().as_str());
        span.record("request_id", request_id.as_str());
        Self { hop, request_id }
    }

    /// The context of a request the sampler dropped: it has no span, so this hop's span id is
    /// drawn here; the caller's trace goes on (or a new one starts), flagged not sampled.
    pub fn unsampled(headers: &(impl HeaderSource + ?Sized)) -> Self {
        let given = headers.text_of(TRACEPARENT);
        let hop = TraceParent {
            sampled: false,
            ..TraceParent::continue_or_start(given, || fastrand::u64(..))
        };
        let request_id = hop.request_id(headers.text_of(REQUEST_ID));
        Self { hop, request_id }
    }

    /// The `traceparent` naming this request's span, for the response and onward calls.
    pub fn traceparent(&self) -> String {
        self.hop.header()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    fn is_hex(text: &str, len: usize) -> bool {
        text.len() == len
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && text.bytes().any(|b| b != b'0')
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    /// The context for `pairs`, with the OpenTelemetry layer installed and without.
    fn both(pairs: &[(&'static str, &str)]) -> [TraceContext; 2] {
        let attach = || {
            let span = tracing::info_span!(
                "request",
                trace_id = tracing::field::Empty,
                request_id = tracing::field::Empty
            );
            TraceContext::attach(&span, &headers(pairs))
        };
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        [
            tracing::subscriber::with_default(subscriber, attach),
            attach(),
        ]
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        for c in both(&[(TRACEPARENT, PARENT), (REQUEST_ID, "req-7")]) {
            assert_eq!(c.hop.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert!(c.hop.sampled);
            assert_eq!(c.request_id, "req-7");
            let next = c.traceparent();
            assert!(
                next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && next.ends_with("-01"),
                "{next}"
            );
            assert!(
                !next.contains("00f067aa0ba902b7"),
                "a span of its own: {next}"
            );
        }
    }

    #[test]
    fn an_unsampled_request_goes_on_with_the_callers_trace_flagged_not_sampled() {
        let c = TraceContext::unsampled(&headers(&[(TRACEPARENT, PARENT), (REQUEST_ID, "req-9")]));
        assert_eq!(c.hop.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!c.hop.sampled);
        assert_eq!(c.request_id, "req-9");
        let next = c.traceparent();
        assert!(
            next.ends_with("-00") && !next.contains("00f067aa0ba902b7"),
            "{next}"
        );
        let fresh = TraceContext::unsampled(&headers(&[]));
        assert!(is_hex(&fresh.hop.trace_id_hex(), 32) && !fresh.hop.sampled);
        assert_eq!(fresh.request_id, fresh.hop.trace_id_hex());
    }

    #[test]
    fn anything_else_starts_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            for c in both(&[(TRACEPARENT, bad), (REQUEST_ID, "bad id with spaces")]) {
                let trace_id = c.hop.trace_id_hex();
                assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?}");
                assert!(is_hex(&trace_id, 32), "{c:?}");
                assert_eq!(c.request_id, trace_id, "an invalid request id is replaced");
            }
        }
    }
}
