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
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header.
pub const TRACEPARENT: &str = "traceparent";
/// The request-id header.
pub const REQUEST_ID: &str = "x-request-id";

/// One request's place in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace (32 lower-case hex digits).
    pub trace_id: String,
    /// This request's span at the origin (16 lower-case hex digits).
    pub span_id: String,
    /// Whether the caller asked for the trace to be recorded.
    pub sampled: bool,
    /// The request id.
    pub request_id: String,
}

/// A random id of `bytes` bytes, never all zeros (W3C forbids that). Ids need to be
/// unique, not secret: the thread-local generator, no system call per request.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    while buf.iter().all(|b| *b == 0) {
        fastrand::fill(&mut buf);
    }
    hex::encode(buf)
}

fn valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl TraceContext {
    /// Makes `span` (a request's span, not yet entered) continue the trace in `headers`'
    /// `traceparent`, records the ids on it, and returns them. Where no OpenTelemetry layer
    /// is installed (a library user's own subscriber), the ids are drawn here instead.
    pub fn attach(span: &tracing::Span, headers: &HeaderMap) -> Self {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let caller = parent.span().span_context().clone();
        let _ = span.set_parent(parent);
        let own = span.context().span().span_context().clone();
        let (trace_id, span_id, sampled) = if own.is_valid() {
            (
                own.trace_id().to_string(),
                own.span_id().to_string(),
                own.is_sampled(),
            )
        } else if caller.is_valid() {
            (
                caller.trace_id().to_string(),
                random_hex(8),
                caller.is_sampled(),
            )
        } else {
            (random_hex(16), random_hex(8), false)
        };
        let request_id = headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|id| valid_request_id(id))
            .map_or_else(|| trace_id.clone(), str::to_string);
        span.record("trace_id", trace_id.as_str());
        span.record("request_id", request_id.as_str());
        Self {
            trace_id,
            span_id,
            sampled,
            request_id,
        }
    }

    /// The `traceparent` naming this request's span, for the response and onward calls.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id,
            self.span_id,
            if self.sampled { "01" } else { "00" }
        )
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
            assert_eq!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert!(c.sampled);
            assert_eq!(c.request_id, "req-7");
            assert!(is_hex(&c.span_id, 16) && c.span_id != "00f067aa0ba902b7");
            let next = c.traceparent();
            assert_eq!(
                next,
                format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", c.span_id)
            );
        }
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
                assert_ne!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?}");
                assert!(is_hex(&c.trace_id, 32) && is_hex(&c.span_id, 16), "{c:?}");
                assert_eq!(
                    c.request_id, c.trace_id,
                    "an invalid request id is replaced"
                );
            }
        }
    }
}
