//! W3C Trace Context as the edge passes it on: a valid `traceparent` is continued with a new
//! span id for the edge's hop; anything else (absent, malformed, all zeros) starts a new,
//! sampled trace. The request id is kept when it is a plain token, else it is the trace id.
//! Random bits come from the caller, so this stays free of I/O.

use crate::hex;

/// The W3C header.
pub const TRACEPARENT: &str = "traceparent";
/// The request-id header.
pub const REQUEST_ID: &str = "x-request-id";

/// One hop's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: [u8; 16],
    /// This hop's span.
    pub span_id: [u8; 8],
    /// Whether the trace is recorded.
    pub sampled: bool,
}

fn non_zero<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes: [u8; N] = hex::decode(text)?.try_into().ok()?;
    bytes.iter().any(|b| *b != 0).then_some(bytes)
}

/// Whether `id` may be passed on as a request id: 1–128 letters, digits, `-`, `_` or `.`.
pub fn valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl TraceParent {
    /// The trace id, span id and sampled flag of a `traceparent` value, if it is valid:
    /// version 00 with exactly four fields, or a later version whose first four fields are
    /// well formed; lower-case hex; neither id all zeros.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (Some(version), Some(trace), Some(parent), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let version: [u8; 1] = hex::decode(version)?.try_into().ok()?;
        if version[0] == 0xff || (version[0] == 0 && parts.next().is_some()) {
            return None;
        }
        let flags: [u8; 1] = hex::decode(flags)?.try_into().ok()?;
        Some(Self {
            trace_id: non_zero(trace)?,
            span_id: non_zero(parent)?,
            sampled: flags[0] & 1 == 1,
        })
    }

    /// This hop under the caller's `traceparent`, or the first hop of a new sampled trace;
    /// `random` supplies the new ids' bits.
    pub fn continue_or_start(header: Option<&str>, mut random: impl FnMut() -> u64) -> Self {
        let mut span_id = [0u8; 8];
        while span_id == [0; 8] {
            span_id = random().to_be_bytes();
        }
        match header.and_then(Self::parse) {
            Some(caller) => Self { span_id, ..caller },
            None => {
                let mut trace_id = [0u8; 16];
                while trace_id == [0; 16] {
                    trace_id[..8].copy_from_slice(&random().to_be_bytes());
                    trace_id[8..].copy_from_slice(&random().to_be_bytes());
                }
                Self {
                    trace_id,
                    span_id,
                    sampled: true,
                }
            }
        }
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(&self.trace_id)
    }

    /// The `traceparent` value naming this hop.
    pub fn header(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        hex::encode_into(&self.trace_id, &mut out);
        out.push('-');
        hex::encode_into(&self.span_id, &mut out);
        out.push_str(if self.sampled { "-01" } else { "-00" });
        out
    }

    /// The request id to pass on: `given` when valid, else the trace id.
    pub fn request_id(&self, given: Option<&str>) -> String {
        given
            .map(str::trim)
            .filter(|id| valid_request_id(id))
            .map_or_else(|| self.trace_id_hex(), str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0u64;
        move || {
            n += 0x0101_0101_0101_0101;
            n
        }
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let hop = TraceParent::continue_or_start(Some(CALLER), counter());
        let header = hop.header();
        assert!(
            header.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{header}"
        );
        assert!(header.ends_with("-01"));
        assert!(!header.contains("00f067aa0ba902b7"), "a span of its own");
        assert_eq!(TraceParent::parse(&header), Some(hop));
        assert_eq!(hop.request_id(Some("req-7")), "req-7");
        let unsampled = CALLER.replace("-01", "-00");
        assert!(!TraceParent::continue_or_start(Some(&unsampled), counter()).sampled);
        // A later version's first four fields are read.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(TraceParent::parse(later).is_some());
    }

    #[test]
    fn anything_else_starts_a_new_sampled_trace() {
        for bad in [
            None,
            Some(""),
            Some("garbage"),
            Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"),
        ] {
            let hop = TraceParent::continue_or_start(bad, counter());
            assert_ne!(
                hop.trace_id_hex(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad:?}"
            );
            assert!(hop.sampled);
            assert_eq!(TraceParent::parse(&hop.header()), Some(hop));
            assert_eq!(
                hop.request_id(Some("bad id with spaces")),
                hop.trace_id_hex()
            );
        }
    }

    #[test]
    fn request_ids_are_plain_bounded_tokens() {
        assert!(valid_request_id("req-7_a.b"));
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129)] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
    }
}
