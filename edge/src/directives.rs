//! Whether an origin response may be stored in the shared edge cache, and for how long: the
//! route's policy, overridden by the origin's `Surrogate-Control` / `Cache-Control`.

use std::time::Duration;

use surge_shared::Route;

use crate::http::Headers;
use surge_shared::freshness::Windows;

/// Statuses a shared cache may store (heuristically cacheable, RFC 9110 §15.1).
pub const STORABLE_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// A parsed `Cache-Control`-style header: lower-case directives with optional values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives(Vec<(String, Option<String>)>);

impl Directives {
    /// Parses every value of header `name` in `headers`.
    pub fn parse(headers: &Headers, name: &str) -> Self {
        let mut out = Vec::new();
        for value in headers.get_all(name) {
            for item in value.split(',') {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                let (k, v) = match item.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"').to_string())),
                    None => (item, None),
                };
                out.push((k.to_ascii_lowercase(), v));
            }
        }
        Self(out)
    }

    /// Whether directive `name` is present (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The value of `name` as whole seconds; malformed values count as absent.
    pub fn seconds(&self, name: &str) -> Option<Duration> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref()?.parse::<u64>().ok())
            .map(Duration::from_secs)
    }
}

/// Why a response was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// The route's class is private or no-store, or it skips the edge layer.
    Route,
    /// Only GET responses are stored.
    Method,
    /// The status is not storable.
    Status(u16),
    /// The response sets a cookie.
    SetCookie,
    /// `Cache-Control: private`, `no-store` or `no-cache`.
    Private,
    /// `Vary: *`.
    VaryStar,
    /// The origin asked for a zero TTL.
    ZeroTtl,
}

/// Decides whether `response` to a `method` request on `route` is stored, and its windows.
pub fn storable(
    method: &str,
    route: &Route,
    response: &Headers,
    status: u16,
) -> Result<Windows, NotStored> {
    if !route.class.is_shared_cacheable() || !route.layers().contains(surge_shared::Layer::L3) {
        return Err(NotStored::Route);
    }
    if method != "GET" && method != "HEAD" {
        return Err(NotStored::Method);
    }
    if !STORABLE_STATUSES.contains(&status) {
        return Err(NotStored::Status(status));
    }
    if response.contains("set-cookie") {
        return Err(NotStored::SetCookie);
    }
    let cc = Directives::parse(response, "cache-control");
    if cc.has("private") || cc.has("no-store") || cc.has("no-cache") {
        return Err(NotStored::Private);
    }
    if response
        .get_all("vary")
        .any(|v| v.split(',').any(|x| x.trim() == "*"))
    {
        return Err(NotStored::VaryStar);
    }
    let surrogate = Directives::parse(response, "surrogate-control");
    let ttl = surrogate
        .seconds("max-age")
        .or_else(|| cc.seconds("s-maxage"))
        .or(route.ttl)
        .unwrap_or_default();
    if ttl.is_zero() {
        return Err(NotStored::ZeroTtl);
    }
    Ok(Windows {
        ttl,
        stale_while_revalidate: cc
            .seconds("stale-while-revalidate")
            .or(route.stale_while_revalidate)
            .unwrap_or_default(),
        stale_if_error: cc
            .seconds("stale-if-error")
            .or(route.stale_if_error)
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use surge_shared::Policy;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn route_ttl_applies_unless_the_origin_overrides() {
        let policy = Policy::election_default();
        let route = policy.classify("/api/elections/7").route;
        let t = storable("GET", route, &headers(&[]), 200).expect("storable");
        assert_eq!(t.ttl, Duration::from_secs(60));
        let t = storable(
            "GET",
            route,
            &headers(&[(
                "cache-control",
                "public, s-maxage=5, stale-while-revalidate=2",
            )]),
            200,
        )
        .expect("storable");
        assert_eq!(
            (t.ttl, t.stale_while_revalidate),
            (Duration::from_secs(5), Duration::from_secs(2))
        );
        let t = storable(
            "GET",
            route,
            &headers(&[
                ("cache-control", "s-maxage=5"),
                ("surrogate-control", "max-age=9"),
            ]),
            200,
        )
        .expect("storable");
        assert_eq!(t.ttl, Duration::from_secs(9));
        assert_eq!(
            storable(
                "GET",
                route,
                &headers(&[("cache-control", "s-maxage=0")]),
                200
            ),
            Err(NotStored::ZeroTtl)
        );
    }

    #[test]
    fn private_and_cookie_responses_are_never_stored() {
        let policy = Policy::election_default();
        let route = policy.classify("/api/elections/7").route;
        for (h, why) in [
            (vec![("set-cookie", "a=b")], NotStored::SetCookie),
            (
                vec![("cache-control", "private, max-age=60")],
                NotStored::Private,
            ),
            (vec![("cache-control", "no-store")], NotStored::Private),
            (
                vec![("Cache-Control", "public, No-Cache")],
                NotStored::Private,
            ),
            (vec![("vary", "accept, *")], NotStored::VaryStar),
        ] {
            assert_eq!(storable("GET", route, &headers(&h), 200), Err(why));
        }
        assert_eq!(
            storable("POST", route, &headers(&[]), 200),
            Err(NotStored::Method)
        );
        assert_eq!(
            storable("GET", route, &headers(&[]), 500),
            Err(NotStored::Status(500))
        );
        let me = policy.classify("/api/me/profile").route;
        assert_eq!(
            storable("GET", me, &headers(&[]), 200),
            Err(NotStored::Route)
        );
    }
}
