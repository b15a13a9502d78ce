//! Serving a cacheable route: take the route the path was classified under, key the request
//! with the shared scheme, answer through the hybrid cache, and send the policy's
//! `Cache-Control` and `Cache-Tag` so the edge caches and purges it the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use surge_shared::status::{CACHE_STATUS_HEADER, REGION_HEADER, TIER_HEADER};
use surge_shared::{CacheKey, CacheStatus, Layer, Route, TagSet, Tier};

use super::state::AppState;
use crate::cache::options::EntryOptions;
use crate::cache::{CacheError, Lookup};
use crate::domain::store::{ElectionStore, StoreError};
use crate::http::error::ApiError;
use crate::http::extract::Routed;
use crate::http::rendered::{RenderError, Rendered};

const CACHE_STATUS: HeaderName = HeaderName::from_static(CACHE_STATUS_HEADER);
const TIER: HeaderName = HeaderName::from_static(TIER_HEADER);
const REGION: HeaderName = HeaderName::from_static(REGION_HEADER);
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// How long the CDN may keep a 404 (new ids appear without a purge).
const NOT_FOUND_S_MAXAGE: u64 = 5;
/// What a client is told to wait when the data tier is down.
pub const RETRY_AFTER_SECS: u64 = 5;

/// What a view renders: status, type and body, before the route's headers are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: String,
}

impl Page {
    /// A JSON page.
    pub fn json<T: Serialize>(value: &T) -> Self {
        Self {
            status: 200,
            content_type: "application/json".into(),
            body: serde_json::to_string(value).unwrap_or_else(|_| "null".into()),
        }
    }

    /// A JSON 404 naming what is missing.
    pub fn not_found(what: &str) -> Self {
        let body = surge_shared::admin::ErrorBody {
            error: "not_found".into(),
            message: format!("{what} does not exist"),
            field: None,
        };
        Self {
            status: 404,
            content_type: "application/json".into(),
            body: serde_json::to_string(&body).unwrap_or_default(),
        }
    }

    /// An HTML page.
    pub fn html(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: "text/html; charset=utf-8".into(),
            body,
        }
    }
}

/// A store failure as the client sees it.
pub fn unavailable(e: &StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(_) => ApiError::Unavailable {
            message: "the election database is unavailable; try again shortly".into(),
            retry_after: RETRY_AFTER_SECS,
        },
        StoreError::Failed(m) => ApiError::Internal(format!("database error: {m}")),
    }
}

/// Answers a GET with what `make` renders, through the cache when the route is cacheable.
/// What the cache holds is the [`Rendered`] page: a hit copies handles to its header block and
/// body into the response and adds the few headers that differ per request.
pub async fn cached<F, Fut>(state: &Arc<AppState>, request: Routed, make: F) -> Response
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Page, StoreError>> + Send + 'static,
{
    let started = Instant::now();
    let policy = &state.config.policy;
    let Routed {
        uri,
        headers,
        classified,
    } = request;
    let route = policy.route_of(&classified);
    let tags = match route.tags(classified.params()) {
        Ok(tags) => tags,
        Err(e) => return ApiError::bad("path", e.to_string()).into_response(),
    };
    let layers = route.layers();
    let cacheable = route.class.is_shared_cacheable()
        && (layers.contains(Layer::L1) || layers.contains(Layer::L2));
    let lookup = if cacheable {
        let keyed = match state.keys.keyed(policy, target_of(&uri), &headers) {
            Ok(keyed) => keyed,
            Err(e) => return ApiError::bad("url", e.to_string()).into_response(),
        };
        let options = EntryOptions::for_route(route, tags.iter().cloned().collect());
        // Rendering (and the headers that go with it) happens on a miss only.
        let render = {
            let state = state.clone();
            move || {
                let (state, page) = (state.clone(), make());
                let (classified, tags) = (classified.clone(), tags.clone());
                async move {
                    let page = page.await.map_err(|e| e.to_string())?;
                    let route = state.config.policy.route_of(&classified);
                    render(route, &tags, true, page).map_err(|e| e.to_string())
                }
            }
        };
        match state
            .cache
            .get_or_set(keyed.key.as_str(), &options, render)
            .await
        {
            Ok(lookup) => lookup,
            Err(CacheError::Factory(why)) => {
                tracing::warn!(route = %route.name, error = %why, "no value and nothing stale to serve");
                return unavailable(&StoreError::Unavailable(String::new())).into_response();
            }
            Err(e) => return ApiError::Internal(e.to_string()).into_response(),
        }
    } else {
        let rendered = match make().await {
            Ok(page) => render(route, &tags, false, page),
            Err(e) => return unavailable(&e).into_response(),
        };
        match rendered {
            Ok(value) => Lookup {
                value,
                status: CacheStatus::Bypass,
                tier: Tier::Origin,
                fail_safe: false,
            },
            Err(e) => return ApiError::Internal(e.to_string()).into_response(),
        }
    };
    answer(state, &lookup, &headers, started)
}

/// The fresh L1 entry under `key`, if `route` is cacheable: the entry the route's handler
/// would find through [`cached`] (only `cached` stores under a route's key), so the same
/// answer without the handler.
pub async fn fresh_hit(
    state: &AppState,
    route: &Route,
    key: &CacheKey,
) -> Option<Lookup<Rendered>> {
    if !route.class.is_shared_cacheable() {
        return None;
    }
    // Tags only matter when storing; a lookup needs the route's windows and layers.
    let options = EntryOptions::for_route(route, Vec::new());
    state
        .cache
        .fresh_in_l1::<Rendered>(key.as_str(), &options)
        .await
}

/// The answer to a cacheable GET from a fresh L1 entry, before routing (for requests that
/// reach the router: traced ones, and every request on an `auto` listener). `None` sends the
/// request on to its handler.
pub async fn l1_hit(state: &AppState, request: &Parts) -> Option<Response> {
    let started = Instant::now();
    if request.method != Method::GET {
        return None;
    }
    let policy = &state.config.policy;
    let keyed = state
        .keys
        .keyed(policy, target_of(&request.uri), &request.headers)
        .ok()?;
    let route = policy.route_of(&keyed.classified);
    let lookup = fresh_hit(state, route, &keyed.key).await?;
    Some(answer(state, &lookup, &request.headers, started))
}

/// A request's target: its path and query.
fn target_of(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// The response for `lookup`: the page's block and body, then [`lookup_headers`].
fn answer(
    state: &AppState,
    lookup: &Lookup<Rendered>,
    request: &HeaderMap,
    started: Instant,
) -> Response {
    let mut response = lookup.value.respond(request);
    let headers = response.headers_mut();
    lookup_headers(state, lookup, started.elapsed(), |name, value| {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    });
    response
}

/// The headers an answer from `lookup` carries after its page's block, each given to
/// `emit`: how it was found, the time spent (`took`) and the region.
pub fn lookup_headers(
    state: &AppState,
    lookup: &Lookup<Rendered>,
    took: Duration,
    mut emit: impl FnMut(HeaderName, &[u8]),
) {
    emit(CACHE_STATUS, lookup.status.as_str().as_bytes());
    emit(TIER, lookup.tier.as_str().as_bytes());
    let mut timing = [0_u8; 96];
    let len = server_timing(lookup.tier, lookup.status, took, &mut timing);
    emit(SERVER_TIMING, &timing[..len]);
    emit(REGION, state.region_header.as_bytes());
}

/// `page` with the headers `route` gives it: its `Cache-Control` for a 200, a short shared
/// lifetime for a cacheable 404, `no-store` otherwise; `Cache-Tag` when `cacheable`.
fn render(
    route: &Route,
    tags: &TagSet,
    cacheable: bool,
    page: Page,
) -> Result<Rendered, RenderError> {
    let cache_control = match page.status {
        200 => route.cache_control(),
        404 if cacheable => format!("public, max-age=0, s-maxage={NOT_FOUND_S_MAXAGE}"),
        _ => "no-store".into(),
    };
    let cache_tag = if cacheable {
        tags.to_cache_tag_header().ok()
    } else {
        None
    };
    Rendered::new(
        page.status,
        &page.content_type,
        &cache_control,
        cache_tag.as_deref(),
        page.body,
    )
}

/// Serves one election's view through the cache: `view` renders it from the store, `None`
/// when there is no such election, and `missing` renders the not-found answer (also for an id
/// that cannot exist, without asking the store).
pub async fn cached_election<V, Fut>(
    state: &Arc<AppState>,
    id: i64,
    request: Routed,
    view: V,
    missing: fn(i64) -> Page,
) -> Response
where
    V: Fn(Arc<dyn ElectionStore>, i64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Page>, StoreError>> + Send + 'static,
{
    let store = state.store.clone();
    let view = Arc::new(view);
    cached(state, request, move || {
        let (store, view) = (store.clone(), view.clone());
        async move {
            if id <= 0 {
                return Ok(missing(id));
            }
            Ok(view(store, id).await?.unwrap_or_else(|| missing(id)))
        }
    })
    .await
}

/// Writes the origin's `Server-Timing` into `out` and returns its length: the tier that
/// answered (`l1`, `l2`, or `db` with the time the data tier took) and the whole time spent
/// here.
fn server_timing(tier: Tier, status: CacheStatus, took: Duration, out: &mut [u8]) -> usize {
    use std::io::Write as _;
    // Milliseconds with one decimal, from whole tenths (no float formatting per request).
    let tenths = took.as_micros() / 100;
    let (ms, tenth) = (tenths / 10, tenths % 10);
    let room = out.len();
    let mut cursor = &mut out[..];
    let _ = match tier {
        Tier::L1 | Tier::L2 | Tier::Edge => write!(
            cursor,
            "{};desc=\"{}\", app;dur={ms}.{tenth}",
            tier.as_str(),
            status.as_str()
        ),
        Tier::Origin => write!(cursor, "db;dur={ms}.{tenth}, app;dur={ms}.{tenth}"),
    };
    room - cursor.len()
}

/// `response` marked `Cache-Control: no-store`.
pub fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A `303 See Other` to `location`, never stored.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    no_store(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(tier: Tier, status: CacheStatus, took: Duration) -> String {
        let mut out = [0_u8; 96];
        let len = server_timing(tier, status, took, &mut out);
        String::from_utf8(out[..len].to_vec()).expect("ascii")
    }

    #[test]
    fn server_timing_names_the_tier_and_the_time_in_tenths_of_a_millisecond() {
        assert_eq!(
            timing(Tier::L1, CacheStatus::Hit, Duration::from_micros(1_260)),
            "l1;desc=\"HIT\", app;dur=1.2"
        );
        assert_eq!(
            timing(
                Tier::Origin,
                CacheStatus::Miss,
                Duration::from_micros(35_010)
            ),
            "db;dur=35.0, app;dur=35.0"
        );
        let longest = timing(Tier::Origin, CacheStatus::Miss, Duration::MAX);
        assert!(
            longest.ends_with(".9") && longest.starts_with("db;dur="),
            "fits whole: {longest}"
        );
    }
}
