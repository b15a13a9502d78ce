//! The API contract: one OpenAPI 3.1 document for the public API (elections, login, votes,
//! pages) and the admin API, served at `/performance/openapi.json`.
//!
//! utoipa derives the shapes from the handlers and types; [`rules`] then writes in every
//! rule the validators enforce that a derive cannot state — patterns, lengths, bounds, item
//! and property counts, map key names — from the same constants the validators use. Rules
//! that JSON Schema cannot state (one field against another, uniqueness by a field, "one
//! SELECT") are listed per schema under `x-surge-checks`, each with the field the error
//! names and a body that breaks it. The contract test (`origin/tests/contract.rs`) sends a
//! violation of every constraint here and expects the validator to refuse it, naming the
//! field; the fuzzer there sends conforming requests and expects none refused.

use std::sync::OnceLock;

use serde_json::{Value, json};
use surge_shared::admin::{self, regex};
use surge_shared::key::MAX_URL_LEN;
use surge_shared::pattern::{MAX_PATTERN_LEN, PATTERN_REGEX};
use surge_shared::tag::{MAX_TAG_LEN, TAG_REGEX};
use surge_shared::voter::{MAX_VOTER_ID_LEN, VOTER_ID_REGEX};
use utoipa::OpenApi;

use super::{admin as admin_routes, handlers, pages};
use crate::domain::voters::code::CODE_REGEX;
use crate::telemetry::profile;

/// The public routes' part of the document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Surge origin API",
        description = "The public API (`/api/*` and the pages) on `SURGE_LISTEN`, and the operators' API (`/performance/*`) on `SURGE_ADMIN_LISTEN`, where every call needs `Authorization: Bearer <SURGE_ADMIN_TOKEN>`. Voter routes need the session cookie `POST /api/login` sets. Request bodies are at most 64 KiB on the public listener and 4 MiB on the admin one (413 beyond)."
    ),
    paths(
        handlers::elections, handlers::election, handlers::ballot, handlers::results,
        handlers::login, handlers::vote, handlers::my_vote, pages::login, pages::election,
        pages::results, pages::receipt
    ),
    modifiers(&Security)
)]
struct PublicApi;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                surge_shared::session::COOKIES[0],
                "The session `POST /api/login` sets (`__Host-auth_token` when cookies are Secure)",
            ))),
        );
    }
}

/// The whole document, with every validator rule written in.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut api = PublicApi::openapi();
        api.merge(admin_routes::AdminApi::openapi());
        let mut doc =
            serde_json::to_value(api).unwrap_or_else(|e| json!({ "error": e.to_string() }));
        for (at, rule) in rules() {
            merge(&mut doc, &at, rule);
        }
        doc
    })
}

/// Merges `rule` into the object at `at`: a JSON pointer, where `@name` stands for the
/// schema of the operation parameter `name` and `#Name` for `/components/schemas/Name`.
fn merge(doc: &mut Value, at: &str, rule: Value) {
    let target = match at.split_once('@') {
        Some((operation, parameter)) => doc.pointer_mut(operation).and_then(|op| {
            op["parameters"]
                .as_array_mut()?
                .iter_mut()
                .find(|p| p["name"] == parameter)
                .map(|p| &mut p["schema"])
        }),
        None => match at.strip_prefix('#') {
            Some(rest) => doc.pointer_mut(&format!("/components/schemas/{rest}")),
            None => doc.pointer_mut(at),
        },
    };
    let Some(Value::Object(target)) = target else {
        panic!("the OpenAPI rule for {at} names nothing in the document");
    };
    if let Value::Object(rule) = rule {
        for (k, v) in rule {
            match (target.get_mut(&k), v) {
                (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
                (_, v) => {
                    target.insert(k, v);
                }
            }
        }
    }
}

/// An operation's pointer (`/paths/~1api~1login/post`).
fn op(path: &str, method: &str) -> String {
    format!(
        "/paths/{}/{method}",
        path.replace('~', "~0").replace('/', "~1")
    )
}

/// A map of workload names to replica counts.
fn workloads() -> Value {
    json!({
        "minProperties": 1,
        "propertyNames": { "type": "string", "pattern": regex::WORKLOAD },
        "additionalProperties": { "type": "integer", "format": "int32", "minimum": 1, "maximum": admin::MAX_REPLICAS },
    })
}

/// At most [`admin::MAX_TARGETS`] items, each `item`.
fn targets(item: Value) -> Value {
    json!({ "maxItems": admin::MAX_TARGETS, "items": item })
}

/// One rule JSON Schema cannot state: the field its error names (`[]` for any index), what
/// it says, and a body that breaks it.
fn check(field: &str, rule: &str, example: Value) -> Value {
    json!({ "field": field, "rule": rule, "example": example })
}

/// Where each rule goes, and the rule.
fn rules() -> Vec<(String, Value)> {
    let id = json!({ "format": "int64", "minimum": 1 });
    let mut rules: Vec<(String, Value)> = [
        "/api/elections/{id}",
        "/api/elections/{id}/ballot",
        "/api/elections/{id}/results",
        "/api/me/votes/{id}",
        "/elections/{id}",
        "/elections/{id}/results",
        "/elections/{id}/receipt",
    ]
    .iter()
    .map(|path| (format!("{}@id", op(path, "get")), id.clone()))
    .collect();
    rules.push((
        format!("{}@id", op("/api/elections/{id}/votes", "post")),
        id.clone(),
    ));
    rules.extend([
        ("#LoginRequest/properties/voter_id".into(), json!({ "pattern": VOTER_ID_REGEX, "minLength": 1, "maxLength": MAX_VOTER_ID_LEN })),
        ("#LoginRequest/properties/code".into(), json!({ "pattern": CODE_REGEX })),
        ("#Tag".into(), json!({ "pattern": TAG_REGEX, "minLength": 1, "maxLength": MAX_TAG_LEN })),
        ("#KeyPattern".into(), json!({ "pattern": PATTERN_REGEX, "maxLength": MAX_PATTERN_LEN })),
        (format!("{}@pattern", op("/performance/cache/{pattern}", "delete")), json!({ "pattern": PATTERN_REGEX, "maxLength": MAX_PATTERN_LEN })),
        (format!("{}@url", op("/performance/cache/key", "get")), json!({ "pattern": regex::url(), "maxLength": MAX_URL_LEN })),
        (format!("{}@limit", op("/performance/apm/traces", "get")), json!({ "minimum": 1, "maximum": 512 })),
        ("#InvalidateRequest/properties/keys".into(), targets(json!({ "type": "string", "pattern": regex::key(), "maxLength": MAX_URL_LEN }))),
        ("#InvalidateRequest/properties/tags".into(), json!({ "maxItems": admin::MAX_TARGETS })),
        ("#InvalidateRequest/properties/patterns".into(), json!({ "maxItems": admin::MAX_TARGETS })),
        ("#InvalidateRequest/properties/prefixes".into(), targets(json!({ "type": "string", "pattern": regex::prefix(), "maxLength": admin::MAX_PREFIX_LEN }))),
        ("#InvalidateRequest/properties/hosts".into(), targets(json!({ "type": "string", "pattern": regex::host(), "maxLength": admin::MAX_HOST_LEN }))),
        ("#InvalidateRequest/properties/layers".into(), json!({ "minItems": 1, "items": { "type": "string", "enum": ["l1", "l2", "l3", "all"] } })),
        ("#InvalidateRequest".into(), json!({ "x-surge-checks": [
            check(".", "give at least one key, tag, prefix, pattern or host, or everything: true", json!({})),
            check("everything", "everything: true goes alone, without other targets", json!({ "everything": true, "tags": ["election:1"] })),
            check("layers", "l1 and l2 are purged together (l3 may go alone)", json!({ "tags": ["election:1"], "layers": ["l1"] })),
        ] })),
        ("#WarmRequest/properties/urls".into(), json!({ "minItems": 1, "maxItems": admin::MAX_TARGETS, "items": { "type": "string", "pattern": regex::WARM_URL, "maxLength": MAX_URL_LEN } })),
        ("#WarmRequest/properties/concurrency".into(), json!({ "minimum": 1, "maximum": 64 })),
        ("#ScalingEventRequest/properties/name".into(), json!({ "pattern": regex::EVENT_NAME, "minLength": 1, "maxLength": admin::MAX_EVENT_NAME_LEN })),
        ("#ScalingEventRequest/properties/targets".into(), workloads()),
        ("#ScalingEventRequest".into(), json!({ "x-surge-checks": [
            check("end", "end is after start", json!({ "name": "backwards", "start": "2026-11-03T18:00:00Z", "end": "2026-11-03T17:00:00Z", "targets": { "voting-service": 20 } })),
        ] })),
        ("#EmergencyScaleRequest/properties/targets".into(), workloads()),
        ("#EmergencyScaleRequest/properties/duration".into(), json!({ "pattern": regex::DURATION })),
        ("#EmergencyScaleRequest/properties/reason".into(), json!({ "pattern": regex::NOT_BLANK, "minLength": 1, "maxLength": admin::MAX_REASON_LEN })),
        ("#EmergencyScaleRequest".into(), json!({ "x-surge-checks": [
            check("duration", "between 1m and 24h", json!({ "targets": { "voting-service": 20 }, "duration": "30s", "reason": "surge" })),
        ] })),
        ("#ImportVotersRequest/properties/voters".into(), json!({ "minItems": 1, "maxItems": admin::MAX_VOTERS_PER_REQUEST })),
        ("#ImportVotersRequest".into(), json!({ "x-surge-checks": [
            check("voters[].voter_id", "each voter id once per request", json!({ "voters": [{ "voter_id": "v-1", "elections": [1] }, { "voter_id": "v-1", "elections": [1] }] })),
        ] })),
        ("#VoterEntry/properties/voter_id".into(), json!({ "pattern": VOTER_ID_REGEX, "minLength": 1, "maxLength": MAX_VOTER_ID_LEN })),
        ("#VoterEntry/properties/elections".into(), json!({ "minItems": 1, "maxItems": admin::MAX_ELECTIONS_PER_VOTER, "items": id.clone() })),
        ("#VoterEntry/properties/code".into(), json!({ "pattern": CODE_REGEX })),
        ("#IssueVotersRequest/properties/election_id".into(), id.clone()),
        ("#IssueVotersRequest/properties/count".into(), json!({ "minimum": 1, "maximum": admin::MAX_VOTERS_PER_REQUEST })),
        ("#AnalyzeRequest/properties/query".into(), json!({ "pattern": regex::NOT_BLANK, "maxLength": admin::MAX_ANALYZE_LEN })),
        ("#AnalyzeRequest".into(), json!({ "x-surge-checks": [
            check("query", "one read-only SELECT (or WITH … SELECT), no volatile function", json!({ "query": "DELETE FROM votes" })),
        ] })),
        ("#ProfileRequest/properties/seconds".into(), json!({ "minimum": 1, "maximum": profile::MAX_SECONDS })),
    ]);
    rules.extend(
        examples()
            .into_iter()
            .map(|(name, example)| (format!("#{name}"), json!({ "example": example }))),
    );
    rules
}

/// A complete, valid request body per request schema: every optional field present.
fn examples() -> [(&'static str, Value); 10] {
    let code = "ABCDE-FGHJK-MNPQR-STVWX-YZ012-3";
    [
        ("LoginRequest", json!({ "voter_id": "v-1", "code": code })),
        ("VoteRequest", json!({ "option_id": 1 })),
        (
            "InvalidateRequest",
            json!({
                "keys": ["https://vote.example/api/elections/1"], "tags": ["election:1"],
                "prefixes": ["vote.example/api/"], "patterns": ["https://vote.example/api/elections/*"],
                "hosts": ["vote.example"], "everything": false, "layers": ["l1", "l2"], "cascade": true,
            }),
        ),
        (
            "WarmRequest",
            json!({ "urls": ["/api/elections", "https://vote.example/elections/1"], "concurrency": 8 }),
        ),
        (
            "ScalingEventRequest",
            json!({
                "name": "election-night", "start": "2026-11-03T18:00:00Z", "end": "2026-11-04T06:00:00Z",
                "targets": { "voting-service": 20 }, "warm_cache": false,
            }),
        ),
        (
            "EmergencyScaleRequest",
            json!({ "targets": { "api-gateway": 10 }, "duration": "30m", "reason": "surge after the announcement" }),
        ),
        (
            "ImportVotersRequest",
            json!({ "voters": [{ "voter_id": "v-1", "elections": [1], "code": code }] }),
        ),
        (
            "IssueVotersRequest",
            json!({ "election_id": 1, "count": 10 }),
        ),
        (
            "AnalyzeRequest",
            json!({ "query": "SELECT * FROM votes WHERE voter_id = 'v-1'" }),
        ),
        ("ProfileRequest", json!({ "seconds": 1 })),
    ]
}
