//! Which identity a request's quota is counted against: the client IP, or for voter quotas the
//! voter's credential (a digest of the auth cookie or `Authorization`), falling back to the IP.

use sha2::{Digest, Sha256};
use surge_shared::auth::cookie_value;
use surge_shared::rate::{LimitKey, Quota};
use surge_shared::{Policy, Route};

use crate::http::EdgeRequest;
use crate::platform::LimitScope;

fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Name of the Workers `[[ratelimits]]` binding that enforces quota `name` (`LIMIT_READ`).
pub fn binding_name(quota_name: &str) -> String {
    format!(
        "LIMIT_{}",
        quota_name.to_ascii_uppercase().replace('-', "_")
    )
}

/// The `simple = { limit, period }` settings of the binding for `quota`: the binding only
/// counts over 10 s or 60 s windows, so the quota's rate is scaled to the nearest window.
pub fn binding_settings(quota: &Quota) -> (u64, u64) {
    let period_ms = u64::try_from(quota.period.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let window = if period_ms <= 10_000 { 10 } else { 60 };
    let limit = (u64::from(quota.rate) * window * 1000).div_ceil(period_ms);
    (limit.max(1), window)
}

/// The scope `request` counts against on `route`, or `None` when the route has no quota.
pub fn scope_for(policy: &Policy, route: &Route, request: &EdgeRequest) -> Option<LimitScope> {
    let name = route.limit.clone()?;
    let quota = *policy.quota(route)?;
    let ip = format!("ip:{}", request.client.ip.as_deref().unwrap_or("unknown"));
    let key = match quota.key {
        LimitKey::Ip => ip,
        LimitKey::Voter => {
            let cookie = request.headers.header_joined("cookie");
            let credential = cookie
                .as_deref()
                .and_then(|c| {
                    policy
                        .auth
                        .cookies
                        .iter()
                        .find_map(|name| cookie_value(c, name))
                })
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .or_else(|| request.headers.get("authorization").map(str::to_string));
            match credential {
                Some(c) => format!("voter:{}", digest(&c)),
                None => ip,
            }
        }
    };
    Some(LimitScope { name, key, quota })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Client, Headers};

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
        assert_eq!(binding_settings(&q("read")), (1000, 10));
        assert_eq!(binding_settings(&q("login")), (10, 60));
        assert_eq!(binding_name("read"), "LIMIT_READ");
    }

    #[test]
    fn wrangler_bindings_match_the_shared_policy() {
        let wrangler: toml::Value =
            toml::from_str(include_str!("../../wrangler.toml")).expect("wrangler.toml parses");
        let bindings = wrangler
            .get("ratelimits")
            .and_then(|r| r.as_array())
            .expect("[[ratelimits]]");
        let policy = Policy::election_default();
        for (name, quota) in &policy.limits {
            let binding = bindings
                .iter()
                .find(|b| {
                    b.get("name").and_then(|n| n.as_str()) == Some(binding_name(name).as_str())
                })
                .unwrap_or_else(|| panic!("wrangler.toml lacks a binding for quota {name}"));
            let simple = binding.get("simple").expect("simple settings");
            let limit = simple
                .get("limit")
                .and_then(|v| v.as_integer())
                .expect("limit");
            let period = simple
                .get("period")
                .and_then(|v| v.as_integer())
                .expect("period");
            let (want_limit, want_period) = binding_settings(quota);
            assert_eq!(
                (u64::try_from(limit).ok(), u64::try_from(period).ok()),
                (Some(want_limit), Some(want_period)),
                "binding for quota {name} disagrees with the policy"
            );
        }
        assert_eq!(
            bindings.len(),
            policy.limits.len(),
            "a binding without a quota"
        );
    }

    #[test]
    fn voters_are_counted_by_credential_and_others_by_ip() {
        let policy = Policy::election_default();
        let vote = policy.classify("/api/elections/1/votes").route;
        let a = scope_for(&policy, vote, &request(&[("cookie", "auth_token=alice")]))
            .expect("vote has a quota");
        let b = scope_for(&policy, vote, &request(&[("cookie", "auth_token=bob")]))
            .expect("vote has a quota");
        assert!(a.key.starts_with("voter:") && a.key != b.key);
        assert_eq!(a.name, "vote");
        let anonymous = scope_for(&policy, vote, &request(&[])).expect("quota");
        assert_eq!(anonymous.key, "ip:203.0.113.9");
        let read = policy.classify("/api/elections").route;
        let by_ip = scope_for(
            &policy,
            read,
            &request(&[
                ("cookie", "auth_token=alice"),
                ("x-forwarded-for", "1.2.3.4"),
            ]),
        )
        .expect("quota");
        assert_eq!(
            by_ip.key, "ip:203.0.113.9",
            "X-Forwarded-For is never trusted"
        );
        let health = policy.classify("/__surge/health").route;
        assert!(scope_for(&policy, health, &request(&[])).is_none());
    }
}
