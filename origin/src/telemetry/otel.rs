//! Logs and spans for the process. Logs are JSON lines or text (`SURGE_LOG_FORMAT`), each
//! line with the fields of the spans it was written in (the request's trace and request ids
//! among them). Spans go through `tracing-opentelemetry` to an OpenTelemetry tracer provider:
//! always to the span trees of `/performance/apm/traces` ([`SpanTrees`]), and over OTLP
//! (HTTP, protobuf) when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. The SDK reads the other standard variables
//! itself: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`,
//! `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS` and `_TIMEOUT`. `OTEL_TRACES_SAMPLER(_ARG)` is read
//! here ([`super::sampling`]): a request is sampled before its span is made.
//! `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true` turns export off.

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use super::json_fields;
use super::sampling::{self, Sampling};
use super::spans::SpanTrees;

/// Trees kept for `/performance/apm/traces`.
const TREES_KEPT: usize = 512;

/// The tracer provider and where its spans go; [`Telemetry::shutdown`] sends what is queued.
pub struct Telemetry {
    provider: SdkTracerProvider,
    /// The span trees of `/performance/apm/traces`.
    pub trees: SpanTrees,
    /// The OTLP endpoint variable in use, when spans are exported.
    pub exporting: Option<&'static str>,
}

/// Whether logs are JSON lines: `SURGE_LOG_FORMAT=json` or `text`; unset, JSON when stdout
/// is not a terminal (a container, a file), text with colours on a terminal.
pub fn log_format() -> Result<bool, String> {
    match std::env::var("SURGE_LOG_FORMAT").ok().as_deref() {
        None | Some("") => Ok(!std::io::stdout().is_terminal()),
        Some("json") => Ok(true),
        Some("text") => Ok(false),
        Some(other) => Err(format!("SURGE_LOG_FORMAT: {other:?}: use json or text")),
    }
}

/// The `OTEL_*` variables read here (the SDK reads the others it supports itself).
pub const VARS: &[&str] = &[
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
];

fn set(name: &str) -> Option<String> {
    debug_assert!(VARS.contains(&name), "{name} is missing from VARS");
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Which OTLP endpoint variable is set, if spans are to be exported; an error names a
/// setting this build cannot honour.
fn export_endpoint() -> Result<Option<&'static str>, String> {
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    match set("OTEL_TRACES_EXPORTER").as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(format!(
                "OTEL_TRACES_EXPORTER: {other:?} is not supported: use otlp or none"
            ));
        }
    }
    let endpoint = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .find(|name| set(name).is_some());
    if endpoint.is_some() {
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(protocol) = set(name)
                && protocol != "http/protobuf"
            {
                return Err(format!(
                    "{name}: {protocol:?} is not supported: spans are sent as http/protobuf (OTLP/HTTP, port 4318 on a collector)"
                ));
            }
        }
    }
    Ok(endpoint)
}

/// Sends OTLP requests with a blocking `reqwest` client (rustls, the workspace's TLS). The
/// SDK's batch processor exports from its own thread, outside the async runtime.
#[derive(Debug)]
struct BlockingClient(reqwest::blocking::Client);

#[async_trait::async_trait]
impl HttpClient for BlockingClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()?;
        let mut answer = Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        Ok(answer.body(response.bytes()?)?)
    }
}

/// The OTLP exporter. The blocking client owns a runtime of its own, so it is built (and
/// later dropped, by the batch processor) off the async runtime's threads.
fn exporter() -> Result<SpanExporter, String> {
    let client = std::thread::spawn(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
    })
    .join()
    .map_err(|_| "the OTLP HTTP client could not be built".to_string())?
    .map_err(|e| format!("the OTLP HTTP client: {e}"))?;
    SpanExporter::builder()
        .with_http()
        .with_http_client(BlockingClient(client))
        .build()
        .map_err(|e| format!("OTEL_EXPORTER_OTLP_*: {e}"))
}

/// Installs logging and tracing for the process; spans name `region` as `cloud.region`.
pub fn init(region: &str) -> Result<Telemetry, String> {
    let json = log_format()?;
    let exporting = export_endpoint()?;
    let trees = SpanTrees::new(TREES_KEPT);
    let mut resource = Resource::builder()
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_attribute(opentelemetry::KeyValue::new(
            "cloud.region",
            region.to_string(),
        ));
    if set("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("surge-origin");
    }
    let sampling = Sampling::parse(
        set("OTEL_TRACES_SAMPLER").as_deref(),
        set("OTEL_TRACES_SAMPLER_ARG").as_deref(),
    )?;
    sampling::install(sampling);
    let mut provider = SdkTracerProvider::builder()
        .with_sampler(sampling.sdk())
        .with_resource(resource.build())
        .with_span_processor(trees.clone());
    if exporting.is_some() {
        provider = provider.with_batch_exporter(exporter()?);
    }
    let provider = provider.build();
    // Spans follow the code's own levels, whatever RUST_LOG says of log lines: a trace is
    // whole even when only warnings are logged, and a warning still names its request.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("surge-origin"))
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_filter(filter_fn(|m| {
            m.target().starts_with("surge_origin")
                && *m.level()
                    <= if m.is_span() {
                        Level::INFO
                    } else {
                        Level::WARN
                    }
        }));
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .or(filter_fn(|m| {
            m.is_span() && m.target().starts_with("surge_origin") && *m.level() <= Level::INFO
        }));
    let logs = tracing_subscriber::fmt::layer().with_ansi(!json && std::io::stdout().is_terminal());
    let registry = tracing_subscriber::registry().with(spans);
    if json {
        // Each line names every span it was written in, so a line from inside a cache or
        // database span still carries the request's trace and request ids.
        registry
            .with(
                logs.json()
                    .with_current_span(false)
                    .with_span_list(true)
                    .fmt_fields(json_fields::AppendJson)
                    .with_filter(filter),
            )
            .try_init()
    } else {
        registry.with(logs.with_filter(filter)).try_init()
    }
    .map_err(|e| format!("logging is already set up: {e}"))?;
    Ok(Telemetry {
        provider,
        trees,
        exporting,
    })
}

impl Telemetry {
    /// Exports what is queued and stops; called once, as the process exits.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("surge-origin: spans not exported at exit: {e}");
        }
    }
}
