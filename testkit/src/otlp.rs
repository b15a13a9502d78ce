//! An OpenTelemetry collector's OTLP/HTTP trace receiver (`POST /v1/traces`), for tests of
//! span export. It checks each request as the OTLP specification has it — method, path,
//! `Content-Type: application/x-protobuf`, a body that decodes as an
//! `ExportTraceServiceRequest` — and keeps the decoded spans. A request that breaks the
//! contract gets 400 and is listed in [`OtlpReceiver::rejected`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

use crate::Result;
use crate::origin::{Reply, Seen, TestOrigin};

/// One received span, flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service: String,
    /// Trace id (32 hex digits).
    pub trace_id: String,
    /// Span id (16 hex digits).
    pub span_id: String,
    /// Parent span id (16 hex digits), empty for a root.
    pub parent_span_id: String,
    /// Name.
    pub name: String,
    /// Kind (`SPAN_KIND_SERVER` = 2, `SPAN_KIND_CLIENT` = 3, internal = 1).
    pub kind: i32,
    /// Attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// Duration (ns).
    pub duration_ns: u64,
}

/// The receiver.
pub struct OtlpReceiver {
    server: TestOrigin,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    rejected: Arc<Mutex<Vec<String>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn refuse(why: String) -> Reply {
    let mut reply = Reply::ok(why.into_bytes());
    reply.status = 400;
    reply
}

/// Decodes one export request, or says why it breaks the OTLP/HTTP contract.
fn decode(seen: &Seen) -> std::result::Result<Vec<ReceivedSpan>, String> {
    if seen.method != "POST" || seen.path != "/v1/traces" {
        return Err(format!(
            "{} {}: OTLP/HTTP traces are POSTed to /v1/traces",
            seen.method, seen.path
        ));
    }
    if seen.header("content-type") != Some("application/x-protobuf") {
        return Err(format!(
            "Content-Type {:?}: binary protobuf is application/x-protobuf",
            seen.header("content-type")
        ));
    }
    let request = ExportTraceServiceRequest::decode(seen.body.as_slice())
        .map_err(|e| format!("not an ExportTraceServiceRequest: {e}"))?;
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                if span.trace_id.len() != 16 || span.span_id.len() != 8 {
                    return Err(format!("span {:?} has malformed ids", span.name));
                }
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                    duration_ns: span
                        .end_time_unix_nano
                        .saturating_sub(span.start_time_unix_nano),
                });
            }
        }
    }
    Ok(spans)
}

impl OtlpReceiver {
    /// Starts on a free port.
    pub fn start() -> Result<Self> {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let rejected = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (spans.clone(), rejected.clone());
        let server = TestOrigin::start(move |seen| match decode(seen) {
            Ok(received) => {
                if let Ok(mut all) = s.lock() {
                    all.extend(received);
                }
                let mut reply = Reply::ok(ExportTraceServiceResponse::default().encode_to_vec());
                reply.headers = vec![("content-type".into(), "application/x-protobuf".into())];
                reply
            }
            Err(why) => {
                if let Ok(mut all) = r.lock() {
                    all.push(why.clone());
                }
                refuse(why)
            }
        })?;
        Ok(Self {
            server,
            spans,
            rejected,
        })
    }

    /// The endpoint to configure (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        self.server.url()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Requests refused, with the reason.
    pub fn rejected(&self) -> Vec<String> {
        self.rejected.lock().map(|r| r.clone()).unwrap_or_default()
    }
}
