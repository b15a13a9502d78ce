//! Which identities a request's quotas are counted against: the client's network (an IPv4
//! address or an IPv6 /64), or for voter quotas the voter a verified `auth_token` cookie names
//! (HMAC checked with the origin's cookie keys), falling back to the network when the cookie
//! does not verify. A route with a per-voter quota may name a per-IP quota counted as well.

use surge_shared::auth::cookie_value;
use surge_shared::rate::{LimitKey, client_network};
use surge_shared::{Route, session};

use crate::config::EdgeConfig;
use crate::http::EdgeRequest;
use crate::seams::LimitScope;

/// Name of the Workers `[[ratelimits]]` binding that enforces quota `name` (`LIMIT_READ`).
pub fn binding_name(quota_name: &str) -> String {
    format!(
        "LIMIT_{}",
        quota_name.to_ascii_uppercase().replace('-', "_")
    )
}

/// The windows (seconds) a Workers rate-limit binding counts over; a quota's binding takes
/// `simple = { limit, period }` from [`surge_shared::rate::Quota::over_window`] with these.
pub const BINDING_WINDOWS: [u64; 2] = [10, 60];

/// The network key of `request`'s client (`ip:…`).
fn network(request: &EdgeRequest) -> String {
    let net = request
        .client
        .ip
        .as_deref()
        .and_then(|ip| ip.trim().parse().ok())
        .map_or_else(|| "unknown".to_string(), client_network);
    format!("ip:{net}")
}

/// The voter a request's `auth_token` cookie proves at `now_s`, if it verifies.
fn verified_voter(config: &EdgeConfig, request: &EdgeRequest, now_s: u64) -> Option<String> {
    if config.cookie_keys.is_empty() {
        return None;
    }
    let cookies = request.headers.header_joined("cookie")?;
    let token = session::COOKIES
        .iter()
        .find_map(|name| cookie_value(&cookies, name))?;
    session::verify(&config.cookie_keys, token, now_s)
        .ok()
        .map(str::to_string)
}

/// The scopes `request` counts against on `route` at `now_s` (Unix seconds): none when the
/// route has no quota; the route's quota (per voter or per network); and the route's per-IP
/// quota besides a per-voter one.
pub fn scopes_for(
    config: &EdgeConfig,
    route: &Route,
    request: &EdgeRequest,
    now_s: u64,
) -> Vec<LimitScope> {
    let policy = &config.policy;
    let mut scopes = Vec::new();
    let (Some(name), Some(quota)) = (route.limit.clone(), policy.quota(route).copied()) else {
        return scopes;
    };
    let key = match quota.key {
        LimitKey::Ip => network(request),
        LimitKey::Voter => verified_voter(config, request, now_s)
            .map_or_else(|| network(request), |v| format!("voter:{v}")),
    };
    scopes.push(LimitScope { name, key, quota });
    if quota.key == LimitKey::Voter
        && let (Some(name), Some(quota)) = (route.ip_limit.clone(), policy.ip_quota(route).copied())
    {
        scopes.push(LimitScope {
            name,
            key: network(request),
            quota,
        });
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Client, Headers};
    use surge_shared::Policy;

    fn request(headers: &[(&str, &str)]) -> EdgeRequest {
        EdgeRequest {
            method: "POST".into(),
            url: "https://vote.example/api/elections/1/votes".into(),
            headers: headers.iter().map(|(k, v)| (*k, *v)).collect::<Headers>(),
            body: Vec::new(),
            client: Client {
                ip: Some("203.0.113.9".into()),
                ..Client::default()
            },
        }
    }

    #[test]
    fn bindings_scale_quotas_to_their_windows() {
        let policy = Policy::election_default();
        let q = |name: &str| *policy.limits.get(name).expect("quota");
        let window = |name: &str| {
            let w = q(name).over_window(&BINDING_WINDOWS);
            (w.requests, w.seconds)
        };
        assert_eq!(window("read"), (1000, 10));
        assert_eq!(window("login"), (10, 60));
        assert_eq!(binding_name("read"), "LIMIT_READ");
    }

    #[test]
    fn wrangler_bindings_match_the_shared_policy() {
        let wrangler: toml::Value =
            toml::from_str(include_str!("../../wrangler.toml")).expect("wrangler.toml parses");
        let policy = Policy::election_default();
        // The top level (local development) and every deployable environment.
        let mut sections = vec![("top level".to_string(), &wrangler)];
        if let Some(envs) = wrangler.get("env").and_then(|e| e.as_table()) {
            sections.extend(
                envs.iter()
                    .map(|(name, env)| (format!("[env.{name}]"), env)),
            );
        }
        assert!(sections.len() >= 3, "production and staging environments");
        for (section, table) in sections {
            let bindings = table
                .get("ratelimits")
                .and_then(|r| r.as_array())
                .unwrap_or_else(|| panic!("{section} has no [[ratelimits]]"));
            for (name, quota) in &policy.limits {
                let binding = bindings
                    .iter()
                    .find(|b| {
                        b.get("name").and_then(|n| n.as_str()) == Some(binding_name(name).as_str())
                    })
                    .unwrap_or_else(|| panic!("{section} lacks a binding for quota {name}"));
                let simple = binding.get("simple").expect("simple settings");
                let setting = |key: &str| {
                    simple
                        .get(key)
                        .and_then(|v| v.as_integer())
                        .and_then(|v| u64::try_from(v).ok())
                };
                let want = quota.over_window(&BINDING_WINDOWS);
                assert_eq!(
                    (setting("limit"), setting("period")),
                    (Some(want.requests), Some(want.seconds)),
                    "{section}: binding for quota {name} disagrees with the policy"
                );
            }
            assert_eq!(
                bindings.len(),
                policy.limits.len(),
                "{section}: a binding without a quota"
            );
        }
    }

    const KEY: &str = "edge-test-cookie-key-0123456789abcdef";

    fn config() -> EdgeConfig {
        EdgeConfig::from_vars(|name| (name == "SURGE_COOKIE_KEYS").then(|| KEY.to_string()))
            .expect("config")
    }

    fn cookie(voter: &str) -> String {
        format!(
            "auth_token={}",
            session::issue(KEY.as_bytes(), voter, 1_800_003_600)
        )
    }

    #[test]
    fn verified_voters_are_counted_as_themselves_and_everyone_else_by_network() {
        let config = config();
        let policy = &config.policy;
        let vote = policy.classify("/api/elections/1/votes").route;
        let now = 1_800_000_000;
        let scopes = |headers: &[(&str, &str)]| scopes_for(&config, vote, &request(headers), now);
        let alice = scopes(&[("cookie", &cookie("alice"))]);
        assert_eq!(alice[0].key, "voter:alice");
        assert_eq!(alice[0].name, "vote");
        assert_eq!(
            (alice[1].name.as_str(), alice[1].key.as_str()),
            ("write", "ip:203.0.113.9"),
            "the per-IP quota always applies too"
        );
        assert_eq!(scopes(&[("cookie", &cookie("bob"))])[0].key, "voter:bob");
        // A forged or expired cookie, or none, is counted by network.
        let forged = cookie("alice").replace("alice", "mallory");
        for headers in [
            vec![("cookie", forged.as_str())],
            vec![("cookie", "auth_token=anything")],
            vec![],
        ] {
            assert_eq!(scopes(&headers)[0].key, "ip:203.0.113.9", "{headers:?}");
        }
        let expired = format!(
            "auth_token={}",
            session::issue(KEY.as_bytes(), "alice", now)
        );
        assert_eq!(scopes(&[("cookie", &expired)])[0].key, "ip:203.0.113.9");
        // Without keys nothing verifies.
        let keyless = EdgeConfig::from_vars(|_| None).expect("config");
        let r = request(&[("cookie", &cookie("alice"))]);
        assert_eq!(scopes_for(&keyless, vote, &r, now)[0].key, "ip:203.0.113.9");

        let read = policy.classify("/api/elections").route;
        let by_ip = scopes_for(
            &config,
            read,
            &request(&[("cookie", &cookie("alice")), ("x-forwarded-for", "1.2.3.4")]),
            now,
        );
        assert_eq!(by_ip.len(), 1);
        assert_eq!(
            by_ip[0].key, "ip:203.0.113.9",
            "X-Forwarded-For is never trusted"
        );
        let health = policy.classify("/__surge/health").route;
        assert!(scopes_for(&config, health, &request(&[]), now).is_empty());
    }

    #[test]
    fn ipv6_clients_share_a_quota_per_64() {
        let config = config();
        let read = config.policy.classify("/api/elections").route;
        let from = |ip: &str| {
            let mut r = request(&[]);
            r.client.ip = Some(ip.into());
            scopes_for(&config, read, &r, 0)[0].key.clone()
        };
        assert_eq!(from("2001:db8:5:6::1"), from("2001:db8:5:6:ffff::2"));
        assert_ne!(from("2001:db8:5:6::1"), from("2001:db8:5:7::1"));
    }
}
