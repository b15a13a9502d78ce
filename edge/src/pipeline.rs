//! The edge request pipeline: classify → method and size checks → rate limit → auth bypass →
//! cache lookup → geo-routed fetch with failover → store. Plain Rust over the [`platform`]
//! traits; the adapters only translate requests and responses.
//!
//! [`platform`]: crate::platform

use std::rc::Rc;

use surge_shared::edge_auth;
use surge_shared::key::CanonicalUrl;
use surge_shared::policy::Method;
use surge_shared::rate::Decision;
use surge_shared::status::{CACHE_STATUS_HEADER, REGION_HEADER, TIER_HEADER};
use surge_shared::trace::{self, TraceParent};
use surge_shared::uri::HttpUrl;
use surge_shared::{CacheKey, CacheStatus, Route, TagSet};

use crate::config::EdgeConfig;
use crate::directives::storable;
use crate::error_page;
use surge_shared::Tier;
use surge_shared::freshness::{EntryState, Freshness};

use crate::freshness;
use crate::http::{EdgeRequest, EdgeResponse, Headers, UNKEYED_OVERRIDES};
use crate::limit::scopes_for;
use crate::seams::{
    Background, BodyError, BodySource, CacheStore, Clock, FetchError, RateLimiter, Upstream,
};

/// Path of the edge's own health probe.
pub const HEALTH_PATH: &str = "/__surge/health";
/// Path prefix of the origin admin API, which the edge never forwards.
pub const ADMIN_PREFIX: &str = "/performance";
/// Header carrying the origin region on a stored copy.
const STORED_REGION: &str = "x-surge-stored-region";

/// Why no region produced a usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outage {
    /// Every region answered 5xx.
    BadGateway(String),
    /// At least one region could not be reached or timed out.
    Unreachable(String),
}

struct Inner<S, L, U, C, B> {
    config: EdgeConfig,
    store: S,
    limiter: L,
    upstream: U,
    clock: C,
    background: B,
}

/// The pipeline over one platform's cache store `S`, limiter `L`, upstream `U`, clock `C` and
/// background runner `B`. Cheap to clone.
pub struct Pipeline<S, L, U, C, B> {
    inner: Rc<Inner<S, L, U, C, B>>,
}

impl<S, L, U, C, B> Clone for Pipeline<S, L, U, C, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// The path and query of an absolute URL as the client sent it (`/` when it does not parse).
fn path_and_query(url: &str) -> (String, Option<String>) {
    match HttpUrl::parse(url) {
        Ok(u) => (u.path, u.query),
        Err(_) => ("/".to_string(), None),
    }
}

/// The `Server-Timing` header: browsers' developer tools show where the time went.
const SERVER_TIMING: &str = "server-timing";

/// The edge's own `Server-Timing` entry: its cache status (the origin entry names the region).
fn edge_timing(response: &EdgeResponse) -> String {
    let status = response
        .headers
        .get(CACHE_STATUS_HEADER)
        .unwrap_or("BYPASS");
    format!("edge;desc=\"{status}\"")
}

/// Adds `entry` to the response's `Server-Timing`, first or last.
fn add_timing(response: &mut EdgeResponse, entry: String, first: bool) {
    let value = match response.headers.header_joined(SERVER_TIMING) {
        Some(existing) if first => format!("{entry}, {existing}"),
        Some(existing) => format!("{existing}, {entry}"),
        None => entry,
    };
    response.headers.set(SERVER_TIMING, value);
}

fn with_status(mut response: EdgeResponse, status: CacheStatus) -> EdgeResponse {
    response.headers.set(CACHE_STATUS_HEADER, status.as_str());
    response
}

impl<S, L, U, C, B> Pipeline<S, L, U, C, B>
where
    S: CacheStore + 'static,
    L: RateLimiter + 'static,
    U: Upstream + 'static,
    C: Clock + 'static,
    B: Background + 'static,
{
    /// A pipeline over these platform pieces.
    pub fn new(
        config: EdgeConfig,
        store: S,
        limiter: L,
        upstream: U,
        clock: C,
        background: B,
    ) -> Self {
        Self {
            inner: Rc::new(Inner {
                config,
                store,
                limiter,
                upstream,
                clock,
                background,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EdgeConfig {
        &self.inner.config
    }

    /// The cache store (tests inspect it).
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Answers one request. Never panics and never fails: every problem becomes a response.
    pub async fn handle(&self, mut request: EdgeRequest) -> EdgeResponse {
        let body = std::mem::take(&mut request.body);
        self.handle_streamed(request, body).await
    }

    /// Answers `request` (whose `body` is empty) with its body still in `body`: read only
    /// after the route's limit is known, and cut off at it.
    pub async fn handle_streamed(
        &self,
        mut request: EdgeRequest,
        body: impl BodySource,
    ) -> EdgeResponse {
        let head = request.method == "HEAD";
        // The caller's trace is continued (or one starts) and travels to the origin with a
        // request id, which the client gets back.
        let hop = TraceParent::continue_or_start(request.headers.get(trace::TRACEPARENT), || {
            self.inner.clock.random_u64()
        });
        let request_id = hop.request_id(request.headers.get(trace::REQUEST_ID));
        request.headers.set(trace::TRACEPARENT, hop.header());
        request.headers.set(trace::REQUEST_ID, request_id.clone());
        let mut response = self.answer(request, body).await;
        // A stored copy must not hand one client's ids to another.
        response.headers.remove(trace::TRACEPARENT);
        response.headers.set(trace::REQUEST_ID, request_id);
        response.headers.remove("cache-tag");
        freshness::strip(&mut response.headers);
        response.headers.remove(STORED_REGION);
        let entry = edge_timing(&response);
        add_timing(&mut response, entry, true);
        if head {
            response.body.clear();
        }
        response
    }

    async fn answer(&self, mut request: EdgeRequest, body: impl BodySource) -> EdgeResponse {
        let config = &self.inner.config;
        let policy = &config.policy;
        let canonical = match CanonicalUrl::parse(&policy.key, &request.url) {
            Ok(c) => c,
            Err(e) => {
                return with_status(
                    EdgeResponse::error(400, "bad_url", &e.to_string()),
                    CacheStatus::Bypass,
                );
            }
        };
        let path = canonical.path();
        if path == HEALTH_PATH {
            let regions = config.geo.failover_order(
                request.client.country.as_deref(),
                request.client.continent.as_deref(),
            );
            return with_status(
                EdgeResponse::json(
                    200,
                    &serde_json::json!({ "status": "ok", "regions": regions }),
                ),
                CacheStatus::Bypass,
            );
        }
        if path == ADMIN_PREFIX || path.starts_with("/performance/") {
            return with_status(
                EdgeResponse::error(
                    404,
                    "not_found",
                    "the admin API is not served through the edge; call the origin directly",
                ),
                CacheStatus::Bypass,
            );
        }
        let matched = policy.classify(path);
        let route = matched.route;
        let Some(method) = Method::parse(&request.method).filter(|m| route.allows(*m)) else {
            let allow: Vec<String> = route
                .methods
                .iter()
                .map(|m| {
                    serde_json::to_value(m)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .collect();
            let mut response = EdgeResponse::error(
                405,
                "method_not_allowed",
                &format!(
                    "{} is not allowed on this path; allowed: {}",
                    request.method,
                    allow.join(", ")
                ),
            );
            response.headers.set("allow", allow.join(", "));
            return with_status(response, CacheStatus::Bypass);
        };
        // A declared size over the limit is refused before a byte is read; an undeclared
        // (chunked) body is read up to the limit and refused as soon as it passes it.
        let limit = route.max_body_bytes;
        let too_large = |message: String| {
            with_status(
                EdgeResponse::error(413, "body_too_large", &message),
                CacheStatus::Bypass,
            )
        };
        let declared = request
            .headers
            .get("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(size) = declared.filter(|size| *size > limit) {
            return too_large(format!(
                "request body is {size} bytes; this path accepts at most {limit}"
            ));
        }
        request.body = match body.read(limit).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return too_large(format!(
                    "request body passed {limit} bytes, the most this path accepts"
                ));
            }
            Err(BodyError::Failed(e)) => {
                return with_status(
                    EdgeResponse::error(
                        400,
                        "body_unreadable",
                        &format!("the request body could not be read: {e}"),
                    ),
                    CacheStatus::Bypass,
                );
            }
        };
        if let Some(limited) = self.rate_limit(route, &request).await {
            return with_status(limited, CacheStatus::Bypass);
        }
        let credentialed = policy.auth.applies(
            request.headers.header_joined("cookie").as_deref(),
            request.headers.contains("authorization"),
        );
        let cacheable = !credentialed
            && matches!(method, Method::Get | Method::Head)
            && route.class.is_shared_cacheable()
            && route.layers().contains(surge_shared::Layer::L3);
        if !cacheable {
            let (orig_path, orig_query) = path_and_query(&request.url);
            let upstream =
                self.upstream_request(&request, &orig_path, orig_query.as_deref(), false);
            let idempotent = matches!(
                method,
                Method::Get | Method::Head | Method::Options | Method::Put | Method::Delete
            );
            return match self
                .fetch_with_failover(&upstream, &request, idempotent)
                .await
            {
                Ok(response) => with_status(response, CacheStatus::Bypass),
                Err(outage) => {
                    with_status(self.outage_page(&outage, &request), CacheStatus::Bypass)
                }
            };
        }
        // Only the route's own query parameters are keyed and fetched: `?r=<random>` is the
        // same entry, and the origin never sees it.
        let keyed = route.keyed_url(&canonical);
        let key = CacheKey::for_canonical_url(&policy.key, &keyed, &request.headers);
        let upstream = self.upstream_request(&request, keyed.path(), keyed.query(), true);
        let now = self.inner.clock.now_ms();
        let stored = match self.inner.store.get(&key).await {
            Ok(Some(copy)) => freshness::read(&copy.headers).map(|f| (copy, f)),
            _ => None,
        };
        let tags = route.tags(&matched.params).unwrap_or_default();
        match stored {
            Some((copy, stored)) => match stored.state(now) {
                EntryState::Fresh => self.serve_copy(copy, &stored, now, CacheStatus::Hit),
                EntryState::Stale => {
                    let this = self.clone();
                    let route = route.clone();
                    let request = request.clone();
                    self.inner.background.spawn(Box::pin(async move {
                        if let Ok(fresh) = this.fetch_with_failover(&upstream, &request, true).await
                        {
                            this.store_copy(&key, &route, &tags, &fresh).await;
                        }
                    }));
                    self.serve_copy(copy, &stored, now, CacheStatus::Stale)
                }
                state @ (EntryState::ErrorOnly | EntryState::Expired) => {
                    let refetched = EntryState::refetched(Some(state));
                    match self.fetch_with_failover(&upstream, &request, true).await {
                        Ok(fresh) => {
                            self.store_copy(&key, route, &tags, &fresh).await;
                            with_status(fresh, refetched)
                        }
                        Err(_) if state == EntryState::ErrorOnly => {
                            self.serve_copy(copy, &stored, now, CacheStatus::Stale)
                        }
                        Err(outage) => with_status(self.outage_page(&outage, &request), refetched),
                    }
                }
            },
            None => match self.fetch_with_failover(&upstream, &request, true).await {
                Ok(fresh) => {
                    self.store_copy(&key, route, &tags, &fresh).await;
                    with_status(fresh, EntryState::refetched(None))
                }
                Err(outage) => with_status(
                    self.outage_page(&outage, &request),
                    EntryState::refetched(None),
                ),
            },
        }
    }

    async fn rate_limit(&self, route: &Route, request: &EdgeRequest) -> Option<EdgeResponse> {
        let now_s = self.inner.clock.now_ms() / 1000;
        let mut limited = None;
        for scope in scopes_for(&self.inner.config, route, request, now_s) {
            // A limiter failure lets the request through: availability first.
            if let Ok(decision @ Decision::Limited { .. }) = self.inner.limiter.check(&scope).await
            {
                limited = Some((scope, decision));
                break;
            }
        }
        let (scope, decision) = limited?;
        let retry = decision.retry_after_secs().unwrap_or(1);
        let mut response = EdgeResponse::json(
            429,
            &serde_json::json!({
                "error": "rate_limited",
                "message": format!("too many requests for the '{}' limit; retry after {retry} s", scope.name),
                "retry_after": retry,
            }),
        );
        response.headers.set("retry-after", retry.to_string());
        Some(response)
    }

    /// The request sent to an origin: hop-by-hop and URL/method override headers removed,
    /// credentials removed for shared-cacheable requests, HEAD fetched as GET so the copy can
    /// be stored, and signed with the first edge key (when there is one) so the origin can
    /// tell it came through the edge.
    fn upstream_request(
        &self,
        request: &EdgeRequest,
        path: &str,
        query: Option<&str>,
        shared: bool,
    ) -> EdgeRequest {
        let mut headers = request.headers.clone();
        headers.strip_hop_by_hop();
        for name in UNKEYED_OVERRIDES {
            headers.remove(name);
        }
        headers.remove("x-forwarded-for");
        headers.remove(edge_auth::HEADER);
        if shared {
            headers.remove("cookie");
            headers.remove("authorization");
            headers.remove("if-none-match");
            headers.remove("if-modified-since");
            headers.remove("range");
        }
        if let Some(ip) = &request.client.ip {
            headers.set("x-forwarded-for", ip.clone());
        }
        let method = if shared {
            "GET".to_string()
        } else {
            request.method.clone()
        };
        let mut target = path.to_string();
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        if let Some(key) = self.inner.config.edge_keys.first() {
            let now = self.inner.clock.now_ms() / 1000;
            headers.set(
                edge_auth::HEADER,
                edge_auth::sign(key, now, &method, &target),
            );
        }
        EdgeRequest {
            method,
            url: target,
            headers,
            body: if shared {
                Vec::new()
            } else {
                request.body.clone()
            },
            client: request.client.clone(),
        }
    }

    /// Tries each region in failover order. Connection errors fail over for every method;
    /// timeouts and 5xx fail over only when the request may be repeated (`idempotent`).
    async fn fetch_with_failover(
        &self,
        template: &EdgeRequest,
        request: &EdgeRequest,
        idempotent: bool,
    ) -> Result<EdgeResponse, Outage> {
        let geo = &self.inner.config.geo;
        let order = geo.failover_order(
            request.client.country.as_deref(),
            request.client.continent.as_deref(),
        );
        let mut unreachable = Vec::new();
        let mut bad = Vec::new();
        let started = self.inner.clock.now_ms();
        for name in order {
            let Some(region) = geo.region(name) else {
                continue;
            };
            let mut attempt = template.clone();
            attempt.url = format!("{}{}", region.origin.trim_end_matches('/'), template.url);
            match self.inner.upstream.fetch(&attempt, region.timeout).await {
                Ok(mut response) if response.status < 500 => {
                    response.headers.strip_hop_by_hop();
                    response.headers.set(REGION_HEADER, name);
                    if !response.headers.contains(TIER_HEADER) {
                        response.headers.set(TIER_HEADER, Tier::Origin.as_str());
                    }
                    let took = self.inner.clock.now_ms().saturating_sub(started);
                    add_timing(
                        &mut response,
                        format!("origin;dur={took};desc=\"{name}\""),
                        false,
                    );
                    return Ok(response);
                }
                Ok(response) => {
                    bad.push(format!("{name}: HTTP {}", response.status));
                    if !idempotent {
                        break;
                    }
                }
                Err(e @ FetchError::Connect(_)) => unreachable.push(format!("{name}: {e}")),
                Err(e @ FetchError::Timeout(_)) => {
                    unreachable.push(format!("{name}: {e}"));
                    if !idempotent {
                        break;
                    }
                }
            }
        }
        let all: Vec<String> = bad.iter().chain(&unreachable).cloned().collect();
        if unreachable.is_empty() && !bad.is_empty() {
            Err(Outage::BadGateway(all.join("; ")))
        } else {
            Err(Outage::Unreachable(if all.is_empty() {
                "no region configured".into()
            } else {
                all.join("; ")
            }))
        }
    }

    fn outage_page(&self, outage: &Outage, request: &EdgeRequest) -> EdgeResponse {
        let (status, reason) = match outage {
            Outage::BadGateway(_) => (
                502,
                "The service answered with an error. Nothing cached could stand in for it.",
            ),
            Outage::Unreachable(_) => (
                503,
                "The service could not be reached. Nothing cached could stand in for it.",
            ),
        };
        let page = error_page::unavailable(
            status,
            self.inner.config.retry_after_secs,
            reason,
            request.headers.get("accept"),
        );
        let mut headers = Headers::new();
        headers.set("content-type", page.content_type);
        headers.set("retry-after", page.retry_after.to_string());
        headers.set("cache-control", "no-store");
        EdgeResponse {
            status: page.status,
            headers,
            body: page.body.into_bytes(),
        }
    }

    fn serve_copy(
        &self,
        mut copy: EdgeResponse,
        freshness: &Freshness,
        now: u64,
        status: CacheStatus,
    ) -> EdgeResponse {
        copy.headers.set("age", freshness.age_secs(now).to_string());
        if let Some(region) = copy.headers.get(STORED_REGION).map(str::to_string) {
            copy.headers.set(REGION_HEADER, region);
        }
        copy.headers.set(TIER_HEADER, Tier::Edge.as_str());
        with_status(copy, status)
    }

    /// Stores `fresh` if the route and the response allow it. The stored copy keeps the origin's
    /// `Cache-Tag` (merged with the route's tags) so a purge by tag reaches it.
    async fn store_copy(
        &self,
        key: &CacheKey,
        route: &Route,
        route_tags: &TagSet,
        fresh: &EdgeResponse,
    ) {
        let Ok(windows) = storable("GET", route, &fresh.headers, fresh.status) else {
            return;
        };
        let now = self.inner.clock.now_ms();
        let stored = Freshness::new(now, &windows);
        let mut copy = fresh.clone();
        let mut tags = route_tags.clone();
        if let Some(origin_tags) = fresh.headers.header_joined("cache-tag")
            && let Ok(parsed) = TagSet::parse_cache_tag_header(&origin_tags)
        {
            tags.extend(parsed.iter().cloned());
        }
        copy.headers.remove("cache-tag");
        // A copy whose tags do not fit the header could not be purged by tag: keep it out.
        let Ok(header) = tags.to_cache_tag_header() else {
            return;
        };
        if !header.is_empty() {
            copy.headers.set("cache-tag", header);
        }
        if let Some(region) = fresh.headers.get(REGION_HEADER).map(str::to_string) {
            copy.headers.set(STORED_REGION, region);
        }
        copy.headers.remove(CACHE_STATUS_HEADER);
        // Timings describe one fetch, not the copies served later.
        copy.headers.remove(SERVER_TIMING);
        freshness::write(&stored, &mut copy.headers);
        // A failed store only costs a future miss.
        let _ = self.inner.store.put(key, &copy, stored.keep_for(now)).await;
    }
}
