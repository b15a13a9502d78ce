//! The Cloudflare Workers adapter: `#[event(fetch)]` translates to and from the pipeline's
//! messages; the Cache API is the store, the `[[ratelimits]]` bindings count per-IP quotas, a
//! Durable Object (`VoterLimiter`) runs the shared GCRA for exact per-voter quotas, `fetch`
//! reaches the origins and `waitUntil` runs revalidations.
#![allow(missing_docs)] // #[durable_object] and #[event] generate undocumented wasm-bindgen glue

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{Either, select};
use serde::{Deserialize, Serialize};
use surge_shared::CacheKey;
use surge_shared::rate::{Decision, GcraState, LimitKey, Quota};
use worker::{
    Cache, Context, Date, Delay, DurableObject, Env, Fetch, Method, Request, RequestInit,
    RequestRedirect, Response, Result, State, durable_object, event, js_sys,
};

use crate::config::{ConfigError, EdgeConfig};
use crate::http::{Client, EdgeRequest, EdgeResponse, Headers};
use crate::limit::binding_name;
use crate::pipeline::Pipeline;
use crate::seams::{
    Background, BodyError, BodySource, CacheStore, Clock, FetchError, LimitScope, PlatformError,
    RateLimiter, Task, Upstream, append_limited,
};

/// Where the origin's own `Cache-Control` is kept on a stored copy while the Cache API copy
/// carries the store's retention.
const ORIGIN_CACHE_CONTROL: &str = "x-surge-origin-cache-control";
/// Durable Object binding of the per-voter limiter.
const VOTER_LIMITER: &str = "VOTER_LIMITER";

thread_local! {
    static CONFIG: OnceCell<std::result::Result<EdgeConfig, ConfigError>> = const { OnceCell::new() };
}

fn load_config(env: &Env) -> std::result::Result<EdgeConfig, ConfigError> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| EdgeConfig::from_vars(|name| env.var(name).ok().map(|v| v.to_string())))
            .clone()
    })
}

fn err(e: impl std::fmt::Display) -> PlatformError {
    PlatformError(e.to_string())
}

fn headers_from(h: &worker::Headers) -> Headers {
    h.entries().collect()
}

fn headers_to(h: &Headers) -> worker::Headers {
    let out = worker::Headers::new();
    for (name, value) in h.iter() {
        if name != "content-length" {
            // Invalid values were already refused by the runtime when they came in.
            let _ = out.append(name, value);
        }
    }
    out
}

fn to_worker(response: &EdgeResponse) -> Result<Response> {
    Ok(Response::from_bytes(response.body.clone())?
        .with_status(response.status)
        .with_headers(headers_to(&response.headers)))
}

async fn from_worker(mut response: Response) -> Result<EdgeResponse> {
    Ok(EdgeResponse {
        status: response.status_code(),
        headers: headers_from(response.headers()),
        body: response.bytes().await?,
    })
}

/// The Cache API (`caches.default`).
pub struct CfStore;

impl CacheStore for CfStore {
    async fn get(
        &self,
        key: &CacheKey,
    ) -> std::result::Result<Option<EdgeResponse>, PlatformError> {
        let Some(found) = Cache::default()
            .get(key.cache_url(), false)
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let mut copy = from_worker(found).await.map_err(err)?;
        match copy.headers.get(ORIGIN_CACHE_CONTROL).map(str::to_string) {
            Some(cc) => copy.headers.set("cache-control", cc),
            None => copy.headers.remove("cache-control"),
        }
        copy.headers.remove(ORIGIN_CACHE_CONTROL);
        copy.headers.remove("cf-cache-status");
        Ok(Some(copy))
    }

    async fn put(
        &self,
        key: &CacheKey,
        response: &EdgeResponse,
        keep_for: Duration,
    ) -> std::result::Result<(), PlatformError> {
        let mut copy = response.clone();
        if let Some(cc) = copy.headers.get("cache-control").map(str::to_string) {
            copy.headers.set(ORIGIN_CACHE_CONTROL, cc);
        }
        copy.headers.set(
            "cache-control",
            format!("public, max-age={}", keep_for.as_secs().max(1)),
        );
        let stored = to_worker(&copy).map_err(err)?;
        Cache::default()
            .put(key.cache_url(), stored)
            .await
            .map_err(err)
    }
}

/// What the voter limiter answers.
#[derive(Debug, Serialize, Deserialize)]
struct LimiterAnswer {
    allowed: bool,
    retry_after_ms: u64,
}

/// Per-IP quotas on the `[[ratelimits]]` bindings, per-voter quotas on the Durable Object.
pub struct CfLimiter {
    env: Env,
}

impl RateLimiter for CfLimiter {
    async fn check(&self, scope: &LimitScope) -> std::result::Result<Decision, PlatformError> {
        let decision = self.decide(scope).await;
        if let Err(e) = &decision {
            worker::console_error!(
                "rate limiter '{}' failed, letting the request through: {e}",
                scope.name
            );
        }
        decision
    }
}

impl CfLimiter {
    async fn decide(&self, scope: &LimitScope) -> std::result::Result<Decision, PlatformError> {
        if scope.quota.key == LimitKey::Voter && scope.key.starts_with("voter:") {
            let stub = self
                .env
                .durable_object(VOTER_LIMITER)
                .and_then(|ns| ns.id_from_name(&scope.key)?.get_stub())
                .map_err(err)?;
            let mut init = RequestInit::new();
            init.with_method(Method::Post).with_body(Some(
                serde_json::to_string(&scope.quota).map_err(err)?.into(),
            ));
            let request =
                Request::new_with_init("https://voter-limiter/check", &init).map_err(err)?;
            let mut answer = stub.fetch_with_request(request).await.map_err(err)?;
            let answer: LimiterAnswer = answer.json().await.map_err(err)?;
            return Ok(if answer.allowed {
                Decision::Allowed {
                    remaining: 0,
                    reset_after: Duration::ZERO,
                }
            } else {
                Decision::Limited {
                    retry_after: Duration::from_millis(answer.retry_after_ms),
                }
            });
        }
        let limiter = self
            .env
            .rate_limiter(&binding_name(&scope.name))
            .map_err(err)?;
        let outcome = limiter.limit(scope.key.clone()).await.map_err(err)?;
        Ok(if outcome.success {
            Decision::Allowed {
                remaining: 0,
                reset_after: Duration::ZERO,
            }
        } else {
            // The binding does not say when; the quota's emission interval is the honest guess.
            Decision::Limited {
                retry_after: Duration::from_nanos(scope.quota.emission_interval()),
            }
        })
    }
}

/// The exact per-voter limiter: one object per voter runs the shared GCRA on its own storage.
#[durable_object]
pub struct VoterLimiter {
    state: State,
}

impl DurableObject for VoterLimiter {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let quota: Quota = match req.json().await {
            Ok(q) => q,
            Err(e) => return Response::error(format!("bad quota: {e}"), 400),
        };
        let storage = self.state.storage();
        // Nanosecond times exceed JavaScript's safe integers: stored as decimal text.
        let tat: Option<String> = storage.get("tat").await?;
        let state = GcraState {
            tat: tat.and_then(|t| t.parse().ok()).unwrap_or_default(),
        };
        let now_ns = (Date::now().as_millis()).saturating_mul(1_000_000);
        let (decision, next) = quota.check(state, now_ns, 1);
        storage.put("tat", next.tat.to_string()).await?;
        let retry_after_ms = match decision {
            Decision::Limited { retry_after } => surge_shared::freshness::millis(retry_after),
            Decision::Allowed { .. } => 0,
        };
        Response::from_json(&LimiterAnswer {
            allowed: decision.is_allowed(),
            retry_after_ms,
        })
    }
}

/// `fetch` to origin regions, redirects passed through, raced against a timer.
pub struct CfUpstream;

impl Upstream for CfUpstream {
    async fn fetch(
        &self,
        request: &EdgeRequest,
        timeout: Duration,
    ) -> std::result::Result<EdgeResponse, FetchError> {
        let mut init = RequestInit::new();
        init.with_method(Method::from(request.method.clone()))
            .with_headers(headers_to(&request.headers))
            .with_redirect(RequestRedirect::Manual);
        if !request.body.is_empty() {
            init.with_body(Some(
                js_sys::Uint8Array::from(request.body.as_slice()).into(),
            ));
        }
        let outgoing = Request::new_with_init(&request.url, &init)
            .map_err(|e| FetchError::Connect(e.to_string()))?;
        let send = Box::pin(async move {
            let response = Fetch::Request(outgoing).send().await?;
            from_worker(response).await
        });
        match select(send, Delay::from(timeout)).await {
            Either::Left((Ok(response), _)) => Ok(response),
            Either::Left((Err(e), _)) => Err(FetchError::Connect(e.to_string())),
            Either::Right(_) => Err(FetchError::Timeout(timeout)),
        }
    }
}

/// `Date.now()`.
pub struct CfClock;

impl Clock for CfClock {
    fn now_ms(&self) -> u64 {
        Date::now().as_millis()
    }

    /// Two draws of `Math.random()`, 32 bits each: hash keys are fixed on
    /// `wasm32-unknown-unknown`, so the default would repeat.
    fn random_u64(&self) -> u64 {
        let draw = || (worker::js_sys::Math::random() * 4_294_967_296.0) as u64;
        (draw() << 32) | draw()
    }
}

/// `ctx.waitUntil`.
pub struct CfBackground(Rc<Context>);

impl Background for CfBackground {
    fn spawn(&self, task: Task) {
        self.0.wait_until(task);
    }
}

/// Most bytes of an unread body received (and dropped) after the answer before the rest is
/// cancelled.
const DISCARD_LIMIT: usize = 1024 * 1024;

/// The Worker's request, its body not touched yet: read chunk by chunk up to the route's
/// limit, and only if the pipeline asks; otherwise cancelled once the answer is ready.
struct CfBody {
    request: Request,
    read: bool,
}

impl CfBody {
    /// A body nobody read is discarded after the answer has gone: up to
    /// [`DISCARD_LIMIT`] bytes are received and dropped (so the connection stays usable for
    /// the client's next request), then the rest is cancelled.
    fn discard_unread(mut self, background: &CfBackground) {
        if self.read {
            return;
        }
        background.spawn(Box::pin(async move {
            let Ok(mut stream) = self.request.stream() else {
                return;
            };
            let mut seen = 0usize;
            while let Some(Ok(chunk)) = stream.next().await {
                seen = seen.saturating_add(chunk.len());
                if seen > DISCARD_LIMIT {
                    break;
                }
            }
        }));
    }
}

impl BodySource for &mut CfBody {
    async fn read(self, limit: u64) -> std::result::Result<Vec<u8>, BodyError> {
        self.read = true;
        // No body at all is an error here, and the same as an empty one.
        let Ok(mut stream) = self.request.stream() else {
            return Ok(Vec::new());
        };
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BodyError::Failed(e.to_string()))?;
            append_limited(&mut body, &chunk, limit)?;
        }
        Ok(body)
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let config = match load_config(&env) {
        Ok(c) => c,
        Err(e) => {
            return to_worker(&EdgeResponse::error(
                500,
                "edge_misconfigured",
                &e.to_string(),
            ));
        }
    };
    let cf = req.cf();
    let client = Client {
        ip: req.headers().get("cf-connecting-ip").ok().flatten(),
        country: cf.and_then(|c| c.country()),
        continent: cf.and_then(|c| c.continent()),
    };
    let request = EdgeRequest {
        method: req.method().to_string(),
        url: req.inner().url(),
        headers: headers_from(req.headers()),
        body: Vec::new(),
        client,
    };
    let mut body = CfBody {
        request: req,
        read: false,
    };
    let ctx = Rc::new(ctx);
    let pipeline = Pipeline::new(
        config,
        CfStore,
        CfLimiter { env },
        CfUpstream,
        CfClock,
        CfBackground(ctx.clone()),
    );
    let response = pipeline.handle_streamed(request, &mut body).await;
    body.discard_unread(&CfBackground(ctx));
    to_worker(&response)
}
