//! `cargo xtask cdn-rules [--check]`: Cloudflare's rules, generated from the shared policy so
//! the CDN, the edge Worker and the origin cache, limit and block the same paths the same
//! way. Writes (or, with `--check`, compares against) `infrastructure/cdn/cloudflare/`:
//!
//! - `cache-rules.json` — phase `http_request_cache_settings`: each shared-cacheable route
//!   cached for its TTL with stale serving; private and no-store routes bypassed; last, any
//!   request carrying an auth cookie or `Authorization` bypassed (later rules win).
//! - `firewall-rules.json` — phase `http_request_firewall_custom`: the admin API blocked at
//!   the edge, path traversal and encoded dot-segments blocked, methods no route allows
//!   blocked, oversized bodies blocked per route.
//! - `waf-managed.json` — phase `http_request_firewall_managed`: Cloudflare's managed
//!   ruleset and the OWASP core ruleset.
//! - `rate-limit-rules.json` — phase `http_ratelimit`: one rule per policy quota over the
//!   routes that use it, per client IP (or per voter cookie), in the nearest period
//!   Cloudflare offers.
//! - `page-rules.json` — the legacy Page Rules: cache bypass on the uncacheable paths.
//!
//! Terraform (`infrastructure/cdn/terraform`) reads these files, so there is one source.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use surge_shared::policy::Method;
use surge_shared::rate::{LimitKey, Window};
use surge_shared::{CacheClass, Policy, Route};

/// The zone's host in page-rule URL patterns.
pub const HOST: &str = "vote.example";

/// Periods (seconds) Cloudflare's rate limiting rules accept.
const PERIODS: [u64; 6] = [10, 60, 120, 300, 600, 3600];

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
    }
}

/// The route's path pattern as an anchored regular expression for `matches`.
fn path_regex(route: &Route) -> String {
    let raw = route.pattern.to_string();
    let mut out = String::from("^");
    for segment in raw.trim_start_matches('/').split('/') {
        out.push('/');
        match segment {
            "**" => {
                out.pop();
                out.push_str("(/.*)?");
            }
            "*" => out.push_str("[^/]+"),
            s if s.starts_with('{') => out.push_str("[^/]+"),
            s => {
                for c in s.chars() {
                    if "\\.+*?()|[]{}^$".contains(c) {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
        }
    }
    out.push('$');
    out
}

fn path_expr(route: &Route) -> String {
    format!("http.request.uri.path matches \"{}\"", path_regex(route))
}

fn any_of(routes: &[&Route]) -> String {
    let parts: Vec<String> = routes
        .iter()
        .map(|r| format!("({})", path_expr(r)))
        .collect();
    parts.join(" or ")
}

fn secs(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| d.as_secs())
}

fn ruleset(name: &str, phase: &str, description: &str, rules: Vec<Value>) -> Value {
    json!({
        "name": name,
        "kind": "zone",
        "phase": phase,
        "description": description,
        "rules": rules,
    })
}

fn credential_expr(policy: &Policy) -> String {
    let mut parts: Vec<String> = policy
        .auth
        .cookies
        .iter()
        .map(|c| format!("http.cookie contains \"{c}=\""))
        .collect();
    if policy.auth.authorization {
        parts.push("len(http.request.headers[\"authorization\"]) > 0".into());
    }
    parts.join(" or ")
}

fn cache_rules(policy: &Policy) -> Value {
    let mut rules = Vec::new();
    for route in &policy.routes {
        let rule = if route.class.is_shared_cacheable() {
            json!({
                "description": format!("{}: {} for {} s, stale while revalidating {} s", route.name, class_name(route.class), secs(route.ttl), secs(route.stale_while_revalidate)),
                "expression": path_expr(route),
                "action": "set_cache_settings",
                "action_parameters": {
                    "cache": true,
                    "edge_ttl": { "mode": "override_origin", "default": secs(route.ttl).max(1) },
                    "browser_ttl": { "mode": "respect_origin" },
                    "serve_stale": { "disable_stale_while_updating": false },
                    "respect_strong_etags": true,
                },
                "enabled": true,
            })
        } else {
            json!({
                "description": format!("{}: {}, never cached", route.name, class_name(route.class)),
                "expression": path_expr(route),
                "action": "set_cache_settings",
                "action_parameters": { "cache": false },
                "enabled": true,
            })
        };
        rules.push(rule);
    }
    rules.push(json!({
        "description": "credentialed requests are never served from or stored in the shared cache",
        "expression": credential_expr(policy),
        "action": "set_cache_settings",
        "action_parameters": { "cache": false },
        "enabled": true,
    }));
    ruleset(
        "surge cache rules",
        "http_request_cache_settings",
        "Generated from shared/policy by `cargo xtask cdn-rules`; later rules override earlier ones.",
        rules,
    )
}

fn class_name(class: CacheClass) -> &'static str {
    match class {
        CacheClass::Public => "public",
        CacheClass::MicroCache => "micro-cache",
        CacheClass::Private => "private",
        CacheClass::NoStore => "no-store",
    }
}

fn firewall_rules(policy: &Policy) -> Value {
    let mut rules = Vec::new();
    let admin: Vec<&Route> = policy
        .routes
        .iter()
        .filter(|r| r.pattern.to_string().starts_with("/performance"))
        .collect();
    if !admin.is_empty() {
        rules.push(json!({
            "description": "the admin API is never reachable through the edge",
            "expression": any_of(&admin),
            "action": "block",
            "enabled": true,
        }));
    }
    rules.push(json!({
        "description": "path traversal and encoded dot-segments or slashes",
        "expression": "raw.http.request.uri.path contains \"/../\" or raw.http.request.uri.path contains \"/./\" or lower(raw.http.request.uri.path) contains \"%2e\" or lower(raw.http.request.uri.path) contains \"%2f\" or lower(raw.http.request.uri.path) contains \"%5c\"",
        "action": "block",
        "enabled": true,
    }));
    let methods: BTreeSet<&str> = policy
        .routes
        .iter()
        .filter(|r| !admin.iter().any(|a| a.name == r.name))
        .flat_map(|r| r.methods.iter().map(|m| method_name(*m)))
        .collect();
    let list: Vec<String> = methods.iter().map(|m| format!("\"{m}\"")).collect();
    rules.push(json!({
        "description": "methods no public route takes",
        "expression": format!("not http.request.method in {{{}}}", list.join(" ")),
        "action": "block",
        "enabled": true,
    }));
    for route in &policy.routes {
        let writes = route
            .methods
            .iter()
            .any(|m| matches!(m, Method::Post | Method::Put | Method::Patch));
        if writes && !admin.iter().any(|a| a.name == route.name) {
            rules.push(json!({
                "description": format!("{}: body over {} bytes", route.name, route.max_body_bytes),
                "expression": format!("({}) and http.request.body.size > {}", path_expr(route), route.max_body_bytes),
                "action": "block",
                "enabled": true,
            }));
        }
    }
    ruleset(
        "surge firewall rules",
        "http_request_firewall_custom",
        "Generated from shared/policy by `cargo xtask cdn-rules`.",
        rules,
    )
}

fn managed_waf() -> Value {
    // The rulesets' ids are Cloudflare's published ids for its managed rulesets.
    ruleset(
        "surge managed WAF",
        "http_request_firewall_managed",
        "Cloudflare Managed Ruleset and OWASP Core Ruleset.",
        vec![
            json!({
                "description": "Cloudflare Managed Ruleset",
                "expression": "true",
                "action": "execute",
                "action_parameters": { "id": "efb7b8c949ac4650a09736fc376e9aee" },
                "enabled": true,
            }),
            json!({
                "description": "Cloudflare OWASP Core Ruleset",
                "expression": "true",
                "action": "execute",
                "action_parameters": { "id": "4814384a9e5d4991b9815dcfc25d2f1f" },
                "enabled": true,
            }),
        ],
    )
}

fn rate_limit_rules(policy: &Policy) -> Value {
    let mut by_quota: BTreeMap<&str, Vec<&Route>> = BTreeMap::new();
    for route in &policy.routes {
        if let Some(name) = &route.limit {
            by_quota.entry(name.as_str()).or_default().push(route);
        }
    }
    let mut rules = Vec::new();
    for (name, routes) in by_quota {
        let Some(quota) = policy.limits.get(name) else {
            continue;
        };
        let Window {
            seconds: period,
            requests,
        } = quota.over_window(&PERIODS);
        let mut characteristics = vec!["cf.colo.id".to_string()];
        match quota.key {
            LimitKey::Ip => characteristics.push("ip.src".into()),
            LimitKey::Voter => {
                let cookie = policy
                    .auth
                    .cookies
                    .first()
                    .map_or("auth_token", String::as_str);
                characteristics.push(format!("http.request.cookies[\"{cookie}\"]"));
            }
        }
        rules.push(json!({
            "description": format!("quota `{name}`: {} per {} s (burst {}), per {}", quota.rate, quota.period.as_secs_f64(), quota.burst, match quota.key { LimitKey::Ip => "client IP", LimitKey::Voter => "voter" }),
            "expression": any_of(&routes),
            "action": "block",
            "ratelimit": {
                "characteristics": characteristics,
                "period": period,
                "requests_per_period": requests,
                "mitigation_timeout": period,
            },
            "enabled": true,
        }));
    }
    ruleset(
        "surge rate limits",
        "http_ratelimit",
        "Generated from shared/policy by `cargo xtask cdn-rules`: a backstop in front of the Worker's own limits.",
        rules,
    )
}

fn page_rules(policy: &Policy) -> Value {
    let mut rules = Vec::new();
    for route in policy
        .routes
        .iter()
        .filter(|r| !r.class.is_shared_cacheable())
    {
        let raw = route.pattern.to_string();
        let mut url = String::new();
        for segment in raw.trim_start_matches('/').split('/') {
            url.push('/');
            url.push_str(if segment.starts_with('{') || segment.starts_with('*') {
                "*"
            } else {
                segment
            });
        }
        rules.push(json!({
            "targets": [{ "target": "url", "constraint": { "operator": "matches", "value": format!("{HOST}{url}") } }],
            "actions": [{ "id": "cache_level", "value": "bypass" }],
            "status": "active",
        }));
    }
    rules.push(json!({
        "targets": [{ "target": "url", "constraint": { "operator": "matches", "value": format!("http://*{HOST}/*") } }],
        "actions": [{ "id": "always_use_https" }],
        "status": "active",
    }));
    let n = rules.len();
    for (i, rule) in rules.iter_mut().enumerate() {
        rule["priority"] = json!(n - i);
    }
    json!({ "description": "Generated from shared/policy by `cargo xtask cdn-rules`: cache bypass on uncacheable paths.", "rules": rules })
}

/// Every generated file: name and content.
pub fn render(policy: &Policy) -> Vec<(&'static str, Value)> {
    vec![
        ("cache-rules.json", cache_rules(policy)),
        ("firewall-rules.json", firewall_rules(policy)),
        ("waf-managed.json", managed_waf()),
        ("rate-limit-rules.json", rate_limit_rules(policy)),
        ("page-rules.json", page_rules(policy)),
    ]
}

/// Writes the files into `dir`, or with `check` reports every file that differs.
pub fn sync(dir: &Path, check: bool) -> Result<(), String> {
    let policy = Policy::election_default();
    let mut stale = Vec::new();
    for (name, value) in render(&policy) {
        let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())? + "\n";
        let path = dir.join(name);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(name);
            }
        } else {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} disagree with shared/policy/default.toml: run `cargo xtask cdn-rules` and commit the result",
            stale.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str) -> Route {
        Policy::election_default()
            .routes
            .into_iter()
            .find(|r| r.name == name)
            .expect("route")
    }

    #[test]
    fn patterns_become_anchored_regexes_that_match_what_the_policy_matches() {
        assert_eq!(
            path_regex(&route("ballot")),
            "^/api/elections/[^/]+/ballot$"
        );
        assert_eq!(path_regex(&route("admin")), "^/performance(/.*)?$");
        assert_eq!(path_regex(&route("edge-health")), "^/__surge/health$");
    }

    #[test]
    fn credentialed_requests_bypass_last_so_they_override_every_cache_rule() {
        let rules = cache_rules(&Policy::election_default());
        let last = rules["rules"]
            .as_array()
            .and_then(|r| r.last())
            .expect("rules");
        assert_eq!(last["action_parameters"]["cache"], json!(false));
        let expr = last["expression"].as_str().unwrap_or_default();
        assert!(
            expr.contains("auth_token=") && expr.contains("authorization"),
            "{expr}"
        );
    }

    #[test]
    fn the_checked_in_rules_match_the_policy() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infrastructure/cdn/cloudflare");
        sync(&dir, true).expect("in step");
    }
}
