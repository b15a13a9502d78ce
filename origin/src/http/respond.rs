//! Serving a cacheable route: classify the path with the shared policy, key the request with
//! the shared scheme, answer through the hybrid cache, and send the policy's `Cache-Control`
//! and `Cache-Tag` so the edge caches and purges it the same way.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use surge_shared::status::{CACHE_STATUS_HEADER, REGION_HEADER, TIER_HEADER};
use surge_shared::{CacheStatus, Layer, Tier};

use super::state::AppState;
use crate::cache::options::EntryOptions;
use crate::cache::{CacheError, Lookup};
use crate::domain::store::{ElectionStore, StoreError};
use crate::http::error::ApiError;
use crate::http::extract::Routed;

/// How long the CDN may keep a 404 (new ids appear without a purge).
const NOT_FOUND_S_MAXAGE: u64 = 5;
/// What a client is told to wait when the data tier is down.
pub const RETRY_AFTER_SECS: u64 = 5;

/// A rendered response body, as cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    let matched = policy.resolve(classified);
    let route = matched.route;
    let tags = match route.tags(&matched.params) {
        Ok(tags) => tags,
        Err(e) => return ApiError::bad("path", e.to_string()).into_response(),
    };
    let layers = route.layers();
    let cacheable = route.class.is_shared_cacheable()
        && (layers.contains(Layer::L1) || layers.contains(Layer::L2));
    let lookup = if cacheable {
        let key = match state.keys.key_for(&policy.key, route, &uri, &headers) {
            Ok(key) => key,
            Err(e) => return ApiError::bad("url", e.to_string()).into_response(),
        };
        let options = EntryOptions::for_route(route, tags.iter().cloned().collect());
        let make = move || {
            let fut = make();
            async move { fut.await.map_err(|e| e.to_string()) }
        };
        match state.cache.get_or_set(key.as_str(), &options, make).await {
            Ok(lookup) => lookup,
            Err(CacheError::Factory(why)) => {
                tracing::warn!(route = %route.name, error = %why, "no value and nothing stale to serve");
                return unavailable(&StoreError::Unavailable(String::new())).into_response();
            }
            Err(e) => return ApiError::Internal(e.to_string()).into_response(),
        }
    } else {
        match make().await {
            Ok(value) => Lookup {
                value,
                status: CacheStatus::Bypass,
                tier: Tier::Origin,
                fail_safe: false,
            },
            Err(e) => return unavailable(&e).into_response(),
        }
    };
    let page = lookup.value;
    let cache_control = match page.status {
        200 => route.cache_control(),
        404 if cacheable => {
            format!("public, max-age=0, s-maxage={NOT_FOUND_S_MAXAGE}")
        }
        _ => "no-store".into(),
    };
    let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, page.body).into_response();
    let h = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set("content-type", &page.content_type);
    set("cache-control", &cache_control);
    if cacheable && let Ok(tag_header) = tags.to_cache_tag_header() {
        set("cache-tag", &tag_header);
    }
    set(CACHE_STATUS_HEADER, lookup.status.as_str());
    set(TIER_HEADER, lookup.tier.as_str());
    set(
        "server-timing",
        &server_timing(lookup.tier, lookup.status, started.elapsed()),
    );
    set(REGION_HEADER, &state.config.region);
    response
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

/// The origin's `Server-Timing`: the tier that answered (`l1`, `l2`, or `db` with the time the
/// data tier took) and the whole time spent here.
fn server_timing(tier: Tier, status: CacheStatus, took: std::time::Duration) -> String {
    let ms = took.as_secs_f64() * 1000.0;
    let tier = match tier {
        Tier::L1 | Tier::L2 | Tier::Edge => {
            format!("{};desc=\"{}\"", tier.as_str(), status.as_str())
        }
        Tier::Origin => format!("db;dur={ms:.1}"),
    };
    format!("{tier}, app;dur={ms:.1}")
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
