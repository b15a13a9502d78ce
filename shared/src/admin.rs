//! Admin API types (`/performance/*`), shared by the origin and any client: purge/invalidate,
//! warm, scheduled and emergency scaling, and the reports that come back. Every request type
//! has a `validate` that names the bad field; [`parse_json`] does the same for syntax.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::duration;
use crate::pattern::KeyPattern;
use crate::status::{Layer, Layers};
use crate::tag::Tag;

/// Most targets of one kind in one request.
pub const MAX_TARGETS: usize = 1000;
/// Longest purge prefix (bytes).
pub const MAX_PREFIX_LEN: usize = 1024;
/// Longest host name (bytes).
pub const MAX_HOST_LEN: usize = 253;
/// Longest reason for an emergency scale-up (characters).
pub const MAX_REASON_LEN: usize = 500;
/// Longest scheduled event name.
pub const MAX_EVENT_NAME_LEN: usize = 100;
/// Most replicas a scaling request may ask for per workload.
pub const MAX_REPLICAS: u32 = 1000;
/// Longest emergency scale-up.
pub const MAX_EMERGENCY: Duration = Duration::from_secs(24 * 3600);
/// Shortest emergency scale-up.
pub const MIN_EMERGENCY: Duration = Duration::from_secs(60);

/// A DNS label: letters, digits and `-`, not at either end, at most 63.
const LABEL: &str = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";

/// The validators' rules as regular expressions, for the OpenAPI schema (`pattern`). Each sits
/// beside the rule it states; the contract test sends every violation the schema implies
/// and checks that the validator refuses it, naming the field.
pub mod regex {
    /// An absolute http(s) URL with a host name (the last label starts with a letter, so it
    /// never reads as an IPv4 address), an optional port and a path of printable ASCII.
    fn absolute_url() -> String {
        format!(
            "https?://({l}\\.)*[A-Za-z]([A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?(:[0-9]{{1,4}})?(/[!-~]*)?",
            l = super::LABEL
        )
    }
    /// A URL whose cache key is asked for.
    pub fn url() -> String {
        format!("^{}$", absolute_url())
    }
    /// An `InvalidateRequest` key: an absolute http(s) URL, or a `surge:v1:` key of
    /// printable ASCII and spaces.
    pub fn key() -> String {
        format!("^(surge:v1:[ -~]*|{})$", absolute_url())
    }
    /// A host name (`maxLength` 253).
    pub fn host() -> String {
        format!("^{l}(\\.{l})*$", l = super::LABEL)
    }
    /// A prefix: a host name, `/` and at least one more character of printable ASCII
    /// without the pattern characters `*`, `?`, `[`, `]` and `\`.
    pub fn prefix() -> String {
        format!("^{l}(\\.{l})*/[!-)+->@-Z^-~]+$", l = super::LABEL)
    }
    /// A workload: a lower-case Kubernetes name.
    pub const WORKLOAD: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";
    /// A scheduled event's name.
    pub const EVENT_NAME: &str = "^[A-Za-z0-9_-]{1,100}$";
    /// A URL or path to warm: printable ASCII, absolute http(s) or starting with `/`.
    pub const WARM_URL: &str = "^(/|https?://)[!-~]*$";
    /// A duration such as `30m` or `1h30m` (the parser takes more spellings; these suffice).
    pub const DURATION: &str = "^([1-9][0-9]{0,3}(s|m|h))+$";
    /// Text with at least one character that is not white space.
    pub const NOT_BLANK: &str = "\\S";
}

/// A request the admin API refuses, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct AdminError {
    /// Path of the bad field (`tags[3]`), or `.` for the whole body.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl AdminError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses a JSON request body; a syntax or type error names the field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    crate::policy::deserialize_at(de).map_err(|(field, e)| AdminError::new(field, e.to_string()))
}

/// The JSON error body every admin endpoint answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable, machine-readable code (`invalid_request`, `unauthorized`, …).
    pub error: String,
    /// What went wrong and how to fix it.
    pub message: String,
    /// The field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `POST /performance/cache/invalidate`: purge across tiers in one call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvalidateRequest {
    /// Absolute URLs (keyed with the shared scheme) or canonical keys (`surge:v1:…`).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Tags; their cascades are purged too unless `cascade` is false.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// URL prefixes without scheme, Cloudflare style: `vote.example/api/elections/`.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Glob patterns over canonical URLs.
    #[serde(default)]
    pub patterns: Vec<KeyPattern>,
    /// Host names whose whole content is purged.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Purge everything in the chosen layers; may not be combined with other targets.
    #[serde(default)]
    pub everything: bool,
    /// Layers to purge; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>, example = json!(["l1", "l2", "l3"])))]
    pub layers: Option<Layers>,
    /// Whether tag cascades apply (default true).
    #[serde(default = "yes")]
    pub cascade: bool,
}

fn yes() -> bool {
    true
}

fn check_count(field: &str, n: usize) -> Result<(), AdminError> {
    if n > MAX_TARGETS {
        return Err(AdminError::new(
            field,
            format!("{n} entries; at most {MAX_TARGETS} per request, split the purge"),
        ));
    }
    Ok(())
}

fn is_host(host: &str) -> bool {
    host.len() <= MAX_HOST_LEN && is_host_name(host)
}

/// Dot-separated DNS labels, however long in all.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl InvalidateRequest {
    /// The layers to purge.
    pub fn layers(&self) -> Layers {
        self.layers.unwrap_or(Layers::ALL)
    }

    /// Checks targets, counts and formats.
    pub fn validate(&self) -> Result<(), AdminError> {
        let targets = self.keys.len()
            + self.tags.len()
            + self.prefixes.len()
            + self.patterns.len()
            + self.hosts.len();
        if self.everything && targets > 0 {
            return Err(AdminError::new(
                "everything",
                "`everything` purges all content; send it alone, without keys, tags, prefixes, patterns or hosts",
            ));
        }
        if !self.everything && targets == 0 {
            return Err(AdminError::new(
                ".",
                "nothing to purge: give keys, tags, prefixes, patterns or hosts (or everything: true)",
            ));
        }
        if self.layers().is_empty() {
            return Err(AdminError::new(
                "layers",
                "list at least one layer: l1, l2, l3 or all",
            ));
        }
        check_count("keys", self.keys.len())?;
        check_count("tags", self.tags.len())?;
        check_count("prefixes", self.prefixes.len())?;
        check_count("patterns", self.patterns.len())?;
        check_count("hosts", self.hosts.len())?;
        for (i, key) in self.keys.iter().enumerate() {
            let ok = key.starts_with(crate::key::KEY_PREFIX)
                || key.starts_with("http://")
                || key.starts_with("https://");
            if !ok || key.chars().count() > crate::key::MAX_URL_LEN {
                return Err(AdminError::new(
                    format!("keys[{i}]"),
                    format!(
                        "{:?} is neither an absolute http(s) URL nor a surge:v1: key",
                        key.chars().take(80).collect::<String>()
                    ),
                ));
            }
        }
        for (i, prefix) in self.prefixes.iter().enumerate() {
            let (host, path) = prefix.split_once('/').unwrap_or((prefix, ""));
            let ok = prefix.len() <= MAX_PREFIX_LEN
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"*?[]\\".contains(&b))
                && is_host_name(host)
                && !path.is_empty();
            if !ok {
                return Err(AdminError::new(
                    format!("prefixes[{i}]"),
                    format!(
                        "{:?} is not a prefix like \"vote.example/api/elections/\" (a host and the start of a path, no scheme, none of * ? [ ] \\; a whole host goes in `hosts`)",
                        prefix.chars().take(80).collect::<String>()
                    ),
                ));
            }
        }
        for (i, host) in self.hosts.iter().enumerate() {
            if !is_host(host) {
                return Err(AdminError::new(
                    format!("hosts[{i}]"),
                    format!("{host:?} is not a host name like \"vote.example\""),
                ));
            }
        }
        Ok(())
    }
}

/// How one tier's part of an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TierOutcome {
    /// Everything asked of the tier was done.
    Done,
    /// Some of it was done; see `errors`.
    Partial,
    /// Nothing could be done, even after retries; see `errors`.
    Failed,
    /// The tier was not asked (not in `layers`) or is not configured; see `detail`.
    Skipped,
}

/// One tier's line in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierReport {
    /// The tier.
    pub layer: Layer,
    /// How it ended.
    pub outcome: TierOutcome,
    /// Entries, tags or requests handled (what is counted is tier-specific; see `detail`).
    pub count: u64,
    /// Attempts made (retries included).
    pub attempts: u32,
    /// Errors met, newest last.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Free-form explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The answer to an invalidate request: one line per tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvalidateReport {
    /// True when no tier failed or was partial.
    pub ok: bool,
    /// Tags purged after cascades.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Per-tier results, L1 first.
    pub tiers: Vec<TierReport>,
}

impl InvalidateReport {
    /// Builds a report; `ok` follows from the tiers.
    pub fn new(tags: Vec<Tag>, tiers: Vec<TierReport>) -> Self {
        let ok = tiers
            .iter()
            .all(|t| matches!(t.outcome, TierOutcome::Done | TierOutcome::Skipped));
        Self { ok, tags, tiers }
    }
}

/// Longest statement `POST /performance/db/analyze` takes (characters).
pub const MAX_ANALYZE_LEN: usize = 16 * 1024;

/// `POST /performance/db/analyze`: explain one read-only query without running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnalyzeRequest {
    /// One SELECT (or WITH … SELECT) query, without parameters, at most 16 KiB.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 16384))]
    pub query: String,
}

impl AnalyzeRequest {
    /// Checks the statement's size.
    pub fn validate(&self) -> Result<(), AdminError> {
        if self.query.trim().is_empty() {
            return Err(AdminError::new(
                "query",
                "give one SELECT query, e.g. SELECT * FROM votes WHERE voter_id = 'v-1'",
            ));
        }
        let chars = self.query.chars().count();
        if chars > MAX_ANALYZE_LEN {
            return Err(AdminError::new(
                "query",
                format!("{chars} characters; the limit is {MAX_ANALYZE_LEN}"),
            ));
        }
        Ok(())
    }
}

/// `POST /performance/cache/warm`: fetch these URLs through the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WarmRequest {
    /// Absolute http(s) URLs or origin paths (`/api/elections/7`).
    pub urls: Vec<String>,
    /// Parallel fetches (1–64, default 8).
    #[serde(default = "default_concurrency")]
    pub concurrency: u16,
}

fn default_concurrency() -> u16 {
    8
}

impl WarmRequest {
    /// Checks the URL list and concurrency.
    pub fn validate(&self) -> Result<(), AdminError> {
        if self.urls.is_empty() {
            return Err(AdminError::new(
                "urls",
                "list at least one URL or path to warm",
            ));
        }
        check_count("urls", self.urls.len())?;
        for (i, url) in self.urls.iter().enumerate() {
            let ok =
                url.starts_with('/') || url.starts_with("http://") || url.starts_with("https://");
            if !ok
                || url.len() > crate::key::MAX_URL_LEN
                || url.bytes().any(|b| !b.is_ascii_graphic())
            {
                return Err(AdminError::new(
                    format!("urls[{i}]"),
                    "expected an absolute http(s) URL or a path starting with '/'",
                ));
            }
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err(AdminError::new("concurrency", "must be between 1 and 64"));
        }
        Ok(())
    }
}

/// One URL that could not be warmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WarmFailure {
    /// The URL.
    pub url: String,
    /// Why.
    pub error: String,
}

/// The answer to a warm request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WarmReport {
    /// URLs now in cache.
    pub warmed: u64,
    /// URLs that failed.
    pub failed: Vec<WarmFailure>,
}

fn check_workloads(field: &str, targets: &BTreeMap<String, u32>) -> Result<(), AdminError> {
    if targets.is_empty() {
        return Err(AdminError::new(
            field,
            "name at least one workload and its replicas, e.g. {\"voting-service\": 20}",
        ));
    }
    for (name, replicas) in targets {
        let dns_label = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !dns_label {
            return Err(AdminError::new(
                format!("{field}.{name}"),
                "workload names are Kubernetes names: lower-case letters, digits and '-'",
            ));
        }
        if *replicas == 0 || *replicas > MAX_REPLICAS {
            return Err(AdminError::new(
                format!("{field}.{name}"),
                format!("replicas must be between 1 and {MAX_REPLICAS}"),
            ));
        }
    }
    Ok(())
}

/// `POST /performance/scaling/event`: pre-scale for a known event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScalingEventRequest {
    /// A name such as `election-night-2026`.
    pub name: String,
    /// When the scale-up takes effect (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub start: OffsetDateTime,
    /// When it is undone (RFC 3339); after `start`.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub end: OffsetDateTime,
    /// Minimum replicas per workload during the event.
    pub targets: BTreeMap<String, u32>,
    /// Whether to warm the cache at `start`.
    #[serde(default)]
    pub warm_cache: bool,
}

impl ScalingEventRequest {
    /// Checks the name, the window and the targets.
    pub fn validate(&self) -> Result<(), AdminError> {
        if self.name.is_empty()
            || self.name.len() > MAX_EVENT_NAME_LEN
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AdminError::new("name", "1–100 letters, digits, '-' or '_'"));
        }
        if self.end <= self.start {
            return Err(AdminError::new("end", "must be after start"));
        }
        check_workloads("targets", &self.targets)
    }
}

/// `POST /performance/scaling/emergency`: scale up now, revert after `duration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmergencyScaleRequest {
    /// Minimum replicas per workload.
    pub targets: BTreeMap<String, u32>,
    /// How long the scale-up holds before it is reverted (`"30m"`).
    #[serde(with = "duration")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "30m"))]
    pub duration: Duration,
    /// Why, for the audit log.
    pub reason: String,
}

impl EmergencyScaleRequest {
    /// Checks the targets, duration and reason.
    pub fn validate(&self) -> Result<(), AdminError> {
        check_workloads("targets", &self.targets)?;
        if self.duration < MIN_EMERGENCY || self.duration > MAX_EMERGENCY {
            return Err(AdminError::new("duration", "must be between 1m and 24h"));
        }
        if self.reason.trim().is_empty() || self.reason.chars().count() > MAX_REASON_LEN {
            return Err(AdminError::new(
                "reason",
                "say why in 1–500 characters; it goes to the audit log",
            ));
        }
        Ok(())
    }
}

/// Where a scheduled event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventState {
    /// Waiting for its start.
    Pending,
    /// Between start and end.
    Active,
    /// Over and reverted.
    Done,
}

/// A scheduled scaling event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduledEvent {
    /// The request that created it.
    #[serde(flatten)]
    pub request: ScalingEventRequest,
    /// Its state now.
    pub state: EventState,
}

/// Where an emergency scale-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EmergencyState {
    /// Holding the floor until `expires`.
    Active,
    /// Expired; the autoscaler floor is back to its base.
    Reverted,
}

/// An emergency scale-up as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmergencyScale {
    /// Its id, for the audit log.
    pub id: i64,
    /// Minimum replicas per workload while it holds.
    pub targets: BTreeMap<String, u32>,
    /// Why it was asked for.
    pub reason: String,
    /// When it was asked for (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started: OffsetDateTime,
    /// When it is reverted (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires: OffsetDateTime,
    /// Its state now.
    pub state: EmergencyState,
}

/// One workload's scaling picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkloadStatus {
    /// Deployment (and HorizontalPodAutoscaler) name.
    pub name: String,
    /// Replicas running.
    pub current_replicas: u32,
    /// Replicas the autoscaler wants.
    pub desired_replicas: u32,
    /// The autoscaler's floor now.
    pub min_replicas: u32,
    /// The floor the autoscaler returns to when no event, emergency or forecast raises it.
    pub base_min_replicas: u32,
    /// The autoscaler's ceiling.
    pub max_replicas: u32,
    /// Autoscaler targets and current values, e.g. `cpu: 45% / 60%`.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// What holds the floor above its base (`event:election-night`, `emergency:4`,
    /// `forecast`).
    #[serde(default)]
    pub raised_by: Vec<String>,
}

/// The predictive floor, when enabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PredictiveFloor {
    /// The workload whose floor it sets.
    pub workload: String,
    /// The model used (`holt-winters`, `holt`, `naive`).
    pub method: String,
    /// Predicted peak over the look-ahead, requests/s across all pods.
    pub peak_rps: f64,
    /// The replica floor that peak needs.
    pub floor: u32,
}

/// `GET /performance/scaling/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScalingStatus {
    /// The Kubernetes namespace of the workloads.
    pub namespace: String,
    /// Workloads under management.
    pub workloads: Vec<WorkloadStatus>,
    /// Scheduled events not yet done.
    pub events: Vec<ScheduledEvent>,
    /// Emergency scale-ups, active first, then the latest reverted ones.
    pub emergencies: Vec<EmergencyScale>,
    /// The forecast floor, when predictive scaling is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictive: Option<PredictiveFloor>,
    /// The latest scaling actions, newest first.
    pub audit: Vec<AuditEntry>,
}

/// One scaling action in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    /// `event.scheduled`, `event.started`, `event.ended`, `emergency.started`,
    /// `emergency.repeated`, `emergency.reverted`, `floor.raised`, `floor.restored`.
    pub action: String,
    /// What exactly: names, targets, reasons, replica counts.
    pub detail: String,
}

/// Most voters in one import or issue request.
pub const MAX_VOTERS_PER_REQUEST: usize = 10_000;
/// Most elections one voter may be registered for.
pub const MAX_ELECTIONS_PER_VOTER: usize = 64;

/// One voter of an existing registry, as imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoterEntry {
    /// The registry's id for the voter (1–64 of `A-Z a-z 0-9 - _`).
    pub voter_id: String,
    /// The elections the voter may vote in (positive ids, at least one).
    pub elections: Vec<i64>,
    /// The voting code the voter already holds (26 base32 characters, `-` allowed); when
    /// absent a code is issued and returned once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl VoterEntry {
    fn validate(&self, at: &str) -> Result<(), AdminError> {
        crate::voter::validate_voter_id(&self.voter_id)
            .map_err(|m| AdminError::new(format!("{at}.voter_id"), m))?;
        if self.elections.is_empty() || self.elections.len() > MAX_ELECTIONS_PER_VOTER {
            return Err(AdminError::new(
                format!("{at}.elections"),
                format!("list 1 to {MAX_ELECTIONS_PER_VOTER} election ids"),
            ));
        }
        if let Some(i) = self.elections.iter().position(|e| *e <= 0) {
            return Err(AdminError::new(
                format!("{at}.elections[{i}]"),
                "election ids are positive integers",
            ));
        }
        Ok(())
    }
}

/// `POST /performance/voters`: import voters from an existing registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportVotersRequest {
    /// The voters (1 to 10,000 per request).
    pub voters: Vec<VoterEntry>,
}

impl ImportVotersRequest {
    /// Checks every entry and that no voter id repeats.
    pub fn validate(&self) -> Result<(), AdminError> {
        if self.voters.is_empty() || self.voters.len() > MAX_VOTERS_PER_REQUEST {
            return Err(AdminError::new(
                "voters",
                format!("send 1 to {MAX_VOTERS_PER_REQUEST} voters per request"),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, v) in self.voters.iter().enumerate() {
            v.validate(&format!("voters[{i}]"))?;
            if !seen.insert(v.voter_id.as_str()) {
                return Err(AdminError::new(
                    format!("voters[{i}].voter_id"),
                    format!("{:?} appears twice in this request", v.voter_id),
                ));
            }
        }
        Ok(())
    }
}

/// `POST /performance/voters/issue`: register new voters for an election and issue their
/// codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssueVotersRequest {
    /// The election they may vote in.
    pub election_id: i64,
    /// How many voters (1 to 10,000 per request).
    pub count: usize,
}

impl IssueVotersRequest {
    /// Checks the election id and the count.
    pub fn validate(&self) -> Result<(), AdminError> {
        if self.election_id <= 0 {
            return Err(AdminError::new(
                "election_id",
                "election ids are positive integers",
            ));
        }
        if self.count == 0 || self.count > MAX_VOTERS_PER_REQUEST {
            return Err(AdminError::new(
                "count",
                format!("issue 1 to {MAX_VOTERS_PER_REQUEST} voters per request"),
            ));
        }
        Ok(())
    }
}

/// A code issued now: shown once, never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedCode {
    /// The voter.
    pub voter_id: String,
    /// Their voting code, grouped for people.
    pub code: String,
}

/// What an import or issue did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VotersReport {
    /// Voters registered now.
    pub registered: usize,
    /// Voter ids already registered, left as they were (their codes are not replaced).
    pub existing: Vec<String>,
    /// Codes issued now for voters registered without one.
    pub issued: Vec<IssuedCode>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_field<T: DeserializeOwned>(
        json: &str,
        validate: fn(&T) -> Result<(), AdminError>,
    ) -> String {
        match parse_json::<T>(json.as_bytes()) {
            Err(e) => e.field,
            Ok(v) => validate(&v)
                .err()
                .map(|e| e.field)
                .unwrap_or_else(|| "valid".into()),
        }
    }

    #[test]
    fn invalidate_requests_are_checked() {
        let f = |j: &str| invalid_field::<InvalidateRequest>(j, InvalidateRequest::validate);
        assert_eq!(f(r#"{"tags":["election:7"]}"#), "valid");
        assert_eq!(f(r#"{"everything":true}"#), "valid");
        assert_eq!(f(r#"{}"#), ".");
        assert_eq!(f(r#"{"everything":true,"tags":["a"]}"#), "everything");
        assert_eq!(f(r#"{"tags":["ok","bad tag"]}"#), "tags[1]");
        assert_eq!(f(r#"{"patterns":["*"]}"#), "patterns[0]");
        assert_eq!(f(r#"{"keys":["/relative"]}"#), "keys[0]");
        assert_eq!(
            f(r#"{"prefixes":["https://vote.example/api"]}"#),
            "prefixes[0]"
        );
        assert_eq!(f(r#"{"prefixes":["vote.example/api/"]}"#), "valid");
        assert_eq!(f(r#"{"hosts":["bad host"]}"#), "hosts[0]");
        assert_eq!(f(r#"{"tags":["a"],"layers":["l9"]}"#), "layers");
        assert_eq!(f(r#"{"tags":["a"],"layers":[]}"#), "layers");
        assert_eq!(f(r#"{"tagz":["a"]}"#), "tagz");
        assert_eq!(f(r#"{"tags":"a"}"#), "tags");
        assert_eq!(f(r#"{"tags":["a"]"#), ".");
    }

    #[test]
    fn scaling_requests_are_checked() {
        let f = |j: &str| invalid_field::<ScalingEventRequest>(j, ScalingEventRequest::validate);
        let ok = r#"{"name":"election-night","start":"2026-11-03T18:00:00Z","end":"2026-11-04T06:00:00Z","targets":{"voting-service":20}}"#;
        assert_eq!(f(ok), "valid");
        assert_eq!(f(&ok.replace("2026-11-04T06", "2026-11-03T06")), "end");
        assert_eq!(f(&ok.replace("2026-11-03T18:00:00Z", "tomorrow")), "start");
        assert_eq!(f(&ok.replace(":20", ":0")), "targets.voting-service");
        assert_eq!(f(&ok.replace("voting-service", "Voting")), "targets.Voting");
        let e =
            |j: &str| invalid_field::<EmergencyScaleRequest>(j, EmergencyScaleRequest::validate);
        assert_eq!(
            e(r#"{"targets":{"api-gateway":30},"duration":"30m","reason":"surge"}"#),
            "valid"
        );
        assert_eq!(
            e(r#"{"targets":{"api-gateway":30},"duration":"5s","reason":"surge"}"#),
            "duration"
        );
        assert_eq!(
            e(r#"{"targets":{"api-gateway":30},"duration":"30m","reason":" "}"#),
            "reason"
        );
        assert_eq!(
            e(r#"{"targets":{},"duration":"30m","reason":"x"}"#),
            "targets"
        );
    }

    #[test]
    fn warm_requests_are_checked() {
        let f = |j: &str| invalid_field::<WarmRequest>(j, WarmRequest::validate);
        assert_eq!(f(r#"{"urls":["/api/elections"]}"#), "valid");
        assert_eq!(f(r#"{"urls":[]}"#), "urls");
        assert_eq!(f(r#"{"urls":["ftp://x"]}"#), "urls[0]");
        assert_eq!(f(r#"{"urls":["/a"],"concurrency":0}"#), "concurrency");
    }

    #[test]
    fn report_is_ok_only_when_no_tier_failed() {
        let tier = |layer, outcome| TierReport {
            layer,
            outcome,
            count: 1,
            attempts: 1,
            errors: vec![],
            detail: None,
        };
        assert!(
            InvalidateReport::new(
                vec![],
                vec![
                    tier(Layer::L1, TierOutcome::Done),
                    tier(Layer::L3, TierOutcome::Skipped)
                ]
            )
            .ok
        );
        assert!(
            !InvalidateReport::new(
                vec![],
                vec![
                    tier(Layer::L1, TierOutcome::Done),
                    tier(Layer::L3, TierOutcome::Failed)
                ]
            )
            .ok
        );
    }
}
