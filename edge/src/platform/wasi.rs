//! The wasi-http adapter (spin-sdk, `wasm32-wasip2`, wasi-http 0.3): the same pipeline as a
//! portable component for Spin, SpinKube or any wasi-http host. Spin creates an instance per
//! request, so the cache and the GCRA limiter live in the host's default key-value store
//! (Spin's key-value interface, see [`super::kv`]); outbound `send` reaches the origins, and
//! revalidations run as tasks spawned past the response, which the host lets finish before it
//! drops the instance. Configuration comes from the environment (`SURGE_GEO`, `SURGE_POLICY`,
//! `SURGE_RETRY_AFTER`); the client address from the host's `spin-client-addr` header. The
//! Spin manifest must grant the component the default store (`key_value_stores =
//! ["default"]`).

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FullBody, Request, Response, send};

use super::kv::{KeyValue, KvLimiter, KvStore};
use super::memory::SystemClock;
use crate::config::{ConfigError, EdgeConfig};
use crate::http::{Client, EdgeRequest, EdgeResponse, Headers};
use crate::pipeline::Pipeline;
use crate::seams::{
    Background, BodyError, BodySource, FetchError, PlatformError, Task, Upstream, append_limited,
};

/// The host's default key-value store, opened on first use by this instance.
#[derive(Clone, Default)]
pub struct SpinKv(Rc<OnceCell<spin_sdk::key_value::Store>>);

impl SpinKv {
    async fn store(&self) -> Result<&spin_sdk::key_value::Store, PlatformError> {
        if self.0.get().is_none() {
            let store = spin_sdk::key_value::Store::open_default()
                .await
                .map_err(|e| {
                    PlatformError(format!("opening the default key-value store: {e:?}"))
                })?;
            let _ = self.0.set(store);
        }
        self.0
            .get()
            .ok_or_else(|| PlatformError("the key-value store did not open".into()))
    }
}

fn kv_error(e: spin_sdk::key_value::Error) -> PlatformError {
    PlatformError(format!("key-value store: {e:?}"))
}

impl KeyValue for SpinKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PlatformError> {
        self.store().await?.get(key).await.map_err(kv_error)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), PlatformError> {
        self.store().await?.set(key, value).await.map_err(kv_error)
    }

    async fn delete(&self, key: &str) -> Result<(), PlatformError> {
        self.store().await?.delete(key).await.map_err(kv_error)
    }

    async fn keys(&self, limit: usize) -> Result<Vec<String>, PlatformError> {
        let mut keys = self.store().await?.get_keys().await;
        let mut names = Vec::new();
        while names.len() < limit {
            match keys.next().await {
                Some(name) => names.push(name),
                None => return keys.result().await.map(|()| names).map_err(kv_error),
            }
        }
        Ok(names)
    }
}

/// Header a Spin host sets to the connecting client's address.
pub const CLIENT_ADDR_HEADER: &str = "spin-client-addr";

/// Outbound HTTP through wasi-http, raced against a monotonic-clock timer.
pub struct WasiUpstream;

impl Upstream for WasiUpstream {
    async fn fetch(
        &self,
        request: &EdgeRequest,
        timeout: Duration,
    ) -> Result<EdgeResponse, FetchError> {
        let mut builder = Request::builder()
            .method(request.method.as_str())
            .uri(&request.url);
        for (name, value) in request.headers.iter() {
            builder = builder.header(name, value);
        }
        let outgoing = builder
            .body(FullBody::new(Bytes::from(request.body.clone())))
            .map_err(|e| FetchError::Connect(e.to_string()))?;
        let exchange = Box::pin(async move {
            let response = send(outgoing)
                .await
                .map_err(|e| FetchError::Connect(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = body
                .bytes()
                .await
                .map_err(|e| FetchError::Connect(e.to_string()))?;
            Ok(EdgeResponse {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.to_vec(),
            })
        });
        match select(exchange, Box::pin(spin_sdk::time::sleep(timeout))).await {
            Either::Left((result, _)) => result,
            Either::Right(_) => Err(FetchError::Timeout(timeout)),
        }
    }
}

/// Tasks that keep running after the response is returned.
pub struct WasiBackground;

impl Background for WasiBackground {
    fn spawn(&self, task: Task) {
        spin_sdk::wasip3::spawn(task);
    }
}

type WasiPipeline = Pipeline<
    KvStore<SpinKv, SystemClock>,
    KvLimiter<SpinKv, SystemClock>,
    WasiUpstream,
    SystemClock,
    WasiBackground,
>;

thread_local! {
    static PIPELINE: OnceCell<Result<WasiPipeline, ConfigError>> = const { OnceCell::new() };
}

fn pipeline() -> Result<WasiPipeline, ConfigError> {
    PIPELINE.with(|cell| {
        cell.get_or_init(|| {
            let config = EdgeConfig::from_vars(|name| std::env::var(name).ok())?;
            let kv = SpinKv::default();
            let sweep_one_in = config.kv_sweep_one_in;
            Ok(Pipeline::new(
                config,
                KvStore::new(kv.clone(), SystemClock),
                KvLimiter::new(kv, SystemClock, sweep_one_in),
                WasiUpstream,
                SystemClock,
                WasiBackground,
            ))
        })
        .clone()
    })
}

/// The incoming request's body, still streaming: read chunk by chunk up to the route's limit.
struct WasiBody<S>(S);

impl<S, E> BodySource for WasiBody<S>
where
    S: futures_util::Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Debug,
{
    async fn read(self, limit: u64) -> Result<Vec<u8>, BodyError> {
        let mut stream = std::pin::pin!(self.0);
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BodyError::Failed(format!("{e:?}")))?;
            append_limited(&mut body, &chunk, limit)?;
        }
        Ok(body)
    }
}

fn into_response(edge: EdgeResponse) -> Response<FullBody<Bytes>> {
    let mut builder = Response::builder().status(edge.status);
    for (name, value) in edge.headers.iter() {
        if name != "content-length" {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(FullBody::new(Bytes::from(edge.body)))
        .unwrap_or_else(|_| Response::new(FullBody::new(Bytes::from_static(b"invalid response"))))
}

#[spin_sdk::http_service]
async fn handle(request: Request) -> Response<FullBody<Bytes>> {
    let pipeline = match pipeline() {
        Ok(p) => p,
        Err(e) => {
            return into_response(EdgeResponse::error(
                500,
                "edge_misconfigured",
                &e.to_string(),
            ));
        }
    };
    let (parts, body) = request.into_parts();
    let mut headers: Headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let ip = headers.get(CLIENT_ADDR_HEADER).map(|addr| {
        addr.rsplit_once(':')
            .map_or(addr, |(host, _)| host)
            .trim_matches(['[', ']'])
            .to_string()
    });
    headers.remove(CLIENT_ADDR_HEADER);
    let host = headers.get("host").unwrap_or("localhost").to_string();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = match parts.uri.scheme_str() {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("http://{host}{path}"),
    };
    let edge_request = EdgeRequest {
        method: parts.method.as_str().to_string(),
        url,
        headers,
        body: Vec::new(),
        client: Client {
            ip,
            country: None,
            continent: None,
        },
    };
    into_response(
        pipeline
            .handle_streamed(edge_request, WasiBody(body.stream()))
            .await,
    )
}
