//! The OpenAPI document against the live origin (the binary, with a real Postgres and the
//! Kubernetes stand-in): every constraint the schema states is one a validator enforces
//! (each violation is refused, naming its field), every rule it lists beyond JSON Schema
//! is enforced the same way, and no request the document allows is refused or fails
//! (a schema-driven fuzzer).

mod support;

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use support::{OriginProcess, TOKEN, http, login};
use surge_testkit::contract::{Contract, Operation};
use surge_testkit::kube::KubeStandin;
use surge_testkit::postgres::PgPair;

/// A live origin with everything its API reaches, and a voter's session.
struct Live {
    origin: OriginProcess,
    cookie: String,
    contract: Contract,
    _pg: PgPair,
    _kube: KubeStandin,
    _dir: tempfile::TempDir,
}

async fn live() -> Live {
    let pg = PgPair::start().expect("postgres");
    let (kube, dir, cluster) = support::cluster();
    let mut env = cluster.to_vec();
    env.extend([
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("DATABASE_REPLICA_URLS", pg.replica.url("postgres")),
        ("SURGE_SEED_DEMO", "true".to_string()),
    ]);
    let origin = OriginProcess::start(&env);
    let cookie = login(&http(), &origin, "contract-voter").await;
    let (status, doc) = support::admin(
        &origin,
        reqwest::Method::GET,
        "/performance/openapi.json",
        None,
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    Live {
        origin,
        cookie,
        contract: Contract::new(doc),
        _pg: pg,
        _kube: kube,
        _dir: dir,
    }
}

/// What came back.
struct Answer {
    status: u16,
    json: Option<Value>,
    text: String,
}

impl Answer {
    fn field(&self) -> Option<&str> {
        self.json.as_ref()?.get("field")?.as_str()
    }
}

impl Live {
    /// Sends `operation` with `parameters` and `body`, with the credentials it needs.
    async fn send(
        &self,
        operation: &Operation,
        parameters: &Map<String, Value>,
        body: Option<&Value>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(operation.method.to_uppercase().as_bytes())
            .expect("method");
        let url = self.origin.url(&operation.target(parameters));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("client");
        let mut request = client.request(method, url);
        if operation.security.iter().any(|s| s == "bearer") {
            request = request.bearer_auth(TOKEN);
        }
        if operation.security.iter().any(|s| s == "session") {
            request = request.header("cookie", &self.cookie);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Answer {
            status,
            json: serde_json::from_str(&text).ok(),
            text,
        }
    }

    /// Generated values for every parameter of `operation`.
    fn parameters(&self, operation: &Operation, rng: &mut fastrand::Rng) -> Map<String, Value> {
        let mut values = Map::new();
        for p in &operation.parameters {
            if p.required || rng.bool() {
                values.insert(p.name.clone(), self.contract.generate(&p.schema, rng));
            }
        }
        values
    }
}

/// Whether an error naming `reported` names the field `expected` (a value that could not be
/// parsed as a whole list is named by the list).
fn names(reported: &str, expected: &str) -> bool {
    reported == expected
        || expected
            .strip_suffix(']')
            .and_then(|e| e.rsplit_once('['))
            .is_some_and(|(list, _)| list == reported)
}

/// `voters[3].code` as `voters[].code`.
fn without_indexes(field: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for c in field.chars() {
        match c {
            '[' => {
                skipping = true;
                out.push('[');
            }
            ']' => {
                skipping = false;
                out.push(']');
            }
            _ if skipping => {}
            c => out.push(c),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_schema_constraint_is_enforced_by_its_validator() {
    let live = live().await;
    let contract = &live.contract;
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut failures = Vec::new();
    let mut checked = BTreeSet::new();
    for operation in contract.operations() {
        let name = operation.name();
        let parameters = live.parameters(&operation, &mut rng);
        let example = operation.body.as_ref().map(|schema| {
            let example = contract.resolve(schema)["example"].clone();
            assert!(
                !example.is_null(),
                "{name}: the request schema has no example"
            );
            assert_eq!(
                contract.conforms(schema, &example),
                Ok(()),
                "{name}: its example"
            );
            example
        });
        // The complete example is accepted (whatever the outcome, it is not refused as
        // malformed).
        let base = live.send(&operation, &parameters, example.as_ref()).await;
        assert!(
            base.status != 400 && base.status < 500,
            "{name}: the example is refused: {} {}",
            base.status,
            base.text
        );
        if let (Some(schema), Some(example)) = (&operation.body, &example) {
            for violation in contract.violations(schema, example, &mut rng) {
                let answer = live
                    .send(&operation, &parameters, Some(&violation.value))
                    .await;
                checked.insert(format!("{name} {} {}", violation.field, violation.keyword));
                let refused = answer.status == 400
                    && answer.field().is_some_and(|f| names(f, &violation.field));
                if !refused {
                    failures.push(format!(
                        "{name}: {} breaks `{}` and should be refused naming `{}`; got {} {}",
                        violation.value,
                        violation.keyword,
                        violation.field,
                        answer.status,
                        answer.text.chars().take(300).collect::<String>()
                    ));
                }
            }
            for check in contract.checks(schema) {
                let answer = live
                    .send(&operation, &parameters, Some(&check.example))
                    .await;
                checked.insert(format!("{name} {} x-check", check.field));
                let refused = answer.status == 400
                    && answer
                        .field()
                        .is_some_and(|f| without_indexes(f) == check.field);
                if !refused {
                    failures.push(format!(
                        "{name}: {} breaks \"{}\" and should be refused naming `{}`; got {} {}",
                        check.example, check.rule, check.field, answer.status, answer.text
                    ));
                }
            }
        }
        for parameter in &operation.parameters {
            let valid = parameters
                .get(&parameter.name)
                .cloned()
                .unwrap_or_else(|| contract.generate(&parameter.schema, &mut rng));
            for violation in contract.violations(&parameter.schema, &valid, &mut rng) {
                if violation.keyword == "type"
                    && parameter.location == "query"
                    && violation.value.is_number()
                {
                    // A number is also text in a query string.
                    continue;
                }
                let mut broken = parameters.clone();
                broken.insert(parameter.name.clone(), violation.value.clone());
                let answer = live.send(&operation, &broken, example.as_ref()).await;
                checked.insert(format!("{name} {} {}", parameter.name, violation.keyword));
                // A path that names nothing is 404, as any unknown path; a bad query
                // parameter is a 400 naming it.
                let refused = if parameter.location == "path" {
                    answer.status == 404
                        || (answer.status == 400 && answer.field() == Some(&parameter.name))
                } else {
                    answer.status == 400 && answer.field() == Some(&parameter.name)
                };
                if !refused {
                    failures.push(format!(
                        "{name}: parameter {} = {} breaks `{}` and should be refused; got {} {}",
                        parameter.name,
                        violation.value,
                        violation.keyword,
                        answer.status,
                        answer.text.chars().take(300).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} constraints not enforced:\n{}",
        failures.len(),
        checked.len(),
        failures.join("\n")
    );
    // The document states rules for the public and the admin API alike.
    for expected in [
        "POST /api/login voter_id pattern",
        "POST /api/login code pattern",
        "POST /api/elections/{id}/votes id minimum",
        "POST /performance/cache/invalidate patterns[0] pattern",
        "POST /performance/cache/invalidate tags[0] maxLength",
        "POST /performance/cache/invalidate . x-check",
        "POST /performance/scaling/event targets.Bad Name propertyNames",
        "POST /performance/scaling/event end x-check",
        "POST /performance/voters voters maxItems",
        "POST /performance/voters voters[0].code pattern",
        "DELETE /performance/cache/{pattern} pattern pattern",
        "GET /performance/apm/traces limit maximum",
    ] {
        assert!(
            checked.contains(expected),
            "{expected} was not checked; checked: {checked:#?}"
        );
    }
}

/// Requests per operation in the fuzz run (`SURGE_CONTRACT_CASES`; `cargo xtask reliability`
/// runs more, with a fresh seed).
fn cases() -> usize {
    std::env::var("SURGE_CONTRACT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25)
}

/// The fuzz run's seed (`SURGE_CONTRACT_SEED`); a failure message names it, so the run can
/// be repeated.
fn seed() -> u64 {
    std::env::var("SURGE_CONTRACT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xf022)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_request_the_document_allows_is_refused_or_fails() {
    let live = live().await;
    let contract = &live.contract;
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut failures = Vec::new();
    let mut sent = 0;
    for operation in contract.operations() {
        // Each profile request samples the process for 1–30 s; its limits are checked above
        // and its output in the diagnostics tests.
        if operation.path == "/performance/apm/profile" {
            continue;
        }
        let name = operation.name();
        let allowed: BTreeSet<String> = operation
            .body
            .as_ref()
            .map(|schema| {
                contract
                    .checks(schema)
                    .into_iter()
                    .map(|c| c.field)
                    .collect()
            })
            .unwrap_or_default();
        for _ in 0..cases() {
            let parameters = live.parameters(&operation, &mut rng);
            let body = operation
                .body
                .as_ref()
                .map(|schema| contract.generate(schema, &mut rng));
            if let (Some(schema), Some(body)) = (&operation.body, &body) {
                assert_eq!(
                    contract.conforms(schema, body),
                    Ok(()),
                    "the generator broke {name}'s schema"
                );
            }
            let answer = live.send(&operation, &parameters, body.as_ref()).await;
            sent += 1;
            let request = format!(
                "{name} {} {}",
                operation.target(&parameters),
                body.as_ref().map(Value::to_string).unwrap_or_default()
            );
            let why = if answer.status >= 500 {
                Some("a server error".to_string())
            } else if !operation.statuses.contains(&answer.status) {
                Some(format!(
                    "an undocumented status (documented: {:?})",
                    operation.statuses
                ))
            } else if answer.status == 400
                && !answer
                    .field()
                    .is_some_and(|f| allowed.contains(&without_indexes(f)))
            {
                Some("refused, though the document allows it".to_string())
            } else if let (Some(schema), Some(json)) = (
                contract.response_schema(&operation, answer.status),
                &answer.json,
            ) {
                contract
                    .conforms(&schema, json)
                    .err()
                    .map(|e| format!("an answer unlike its schema ({e})"))
            } else {
                None
            };
            if let Some(why) = why {
                failures.push(format!(
                    "{request}\n  → {} {}: {why}",
                    answer.status,
                    answer.text.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    assert!(sent > 300, "only {sent} requests were sent");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests went wrong (SURGE_CONTRACT_SEED={seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The origin is still whole.
    let health = http()
        .get(live.origin.url("/livez"))
        .send()
        .await
        .expect("livez");
    assert_eq!(health.status(), 200);
}
