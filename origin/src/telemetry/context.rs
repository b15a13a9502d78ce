//! W3C Trace Context for one request: the `traceparent` a request arrives with (from the
//! edge, or any caller that traces) is continued with a new span id, or a new trace starts;
//! the request id comes from `x-request-id` when it is a plain token, else it is the trace
//! id. Both go into the request's log span, its trace-log entry and the response headers, so
//! a log line, a trace in `/performance/apm/traces` and a client's report meet on one id.

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
    /// The caller's span, when the trace was continued.
    pub parent_id: Option<String>,
    /// Whether the caller asked for the trace to be recorded.
    pub sampled: bool,
    /// The request id.
    pub request_id: String,
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && text.bytes().any(|b| b != b'0')
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

/// `traceparent`'s trace id, parent id and sampled flag, if it is a valid version-00 value.
fn parse(header: &str) -> Option<(String, String, bool)> {
    let mut parts = header.trim().split('-');
    let (Some(version), Some(trace), Some(parent), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    // Version 00 has exactly four fields; later versions may add fields after these.
    if version == "ff" || version.len() != 2 || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if !is_hex(trace, 32) || !is_hex(parent, 16) || flags.len() != 2 {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace.to_string(), parent.to_string(), flags & 1 == 1))
}

fn valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl TraceContext {
    /// The context for a request carrying `traceparent` and `request_id` (either may be
    /// absent or invalid: then a new trace starts, and the trace id names the request).
    pub fn for_request(traceparent: Option<&str>, request_id: Option<&str>) -> Self {
        let (trace_id, parent_id, sampled) = match traceparent.and_then(parse) {
            Some((trace, parent, sampled)) => (trace, Some(parent), sampled),
            None => (random_hex(16), None, false),
        };
        let request_id = request_id
            .filter(|id| valid_request_id(id))
            .map_or_else(|| trace_id.clone(), str::to_string);
        Self {
            trace_id,
            span_id: random_hex(8),
            parent_id,
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

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let c = TraceContext::for_request(Some(PARENT), Some("req-7"));
        assert_eq!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(c.sampled);
        assert_eq!(c.request_id, "req-7");
        assert_ne!(c.span_id, "00f067aa0ba902b7");
        let next = c.traceparent();
        assert!(next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(next.ends_with("-01"));
        assert_eq!(parse(&next).map(|p| p.1), Some(c.span_id));
    }

    #[test]
    fn anything_else_starts_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let c = TraceContext::for_request(Some(bad), Some("bad id with spaces"));
            assert_ne!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?}");
            assert!(is_hex(&c.trace_id, 32) && is_hex(&c.span_id, 16));
            assert_eq!(c.parent_id, None);
            assert_eq!(
                c.request_id, c.trace_id,
                "an invalid request id is replaced"
            );
        }
        // A later version may carry more fields; its first four are read.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        assert_eq!(
            TraceContext::for_request(Some(future), None).trace_id,
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
