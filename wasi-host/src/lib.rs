//! A wasi-http host for tests and benchmarks: serves the edge's wasi-http component
//! (`wasm32-wasip2`, wasi-http 0.3 via spin-sdk) with wasmtime over HTTP on 127.0.0.1 the way
//! Spin serves it — a fresh instance for every request (pre-instantiated, from the pooling
//! allocator), Spin's key-value interface shared by all instances (`key_value`), the
//! connecting address in `spin-client-addr`, configuration in the environment. No Spin CLI
//! can be installed here, so this stands in for it.

pub mod key_value;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use wasmtime::component::{Component, GuestTaskId, Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    StoreContextMut,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration,
    WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use key_value::{KeyValueState, KeyValueView};

/// Header carrying the client's address to the component (as Spin does).
pub const CLIENT_ADDR_HEADER: &str = "spin-client-addr";

/// One instance's host state.
pub struct Ctx {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    key_value: KeyValueState,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

type Reply = http::Response<Full<Bytes>>;

/// A running host; dropping it stops the server and the instance.
pub struct WasiEdge {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    key_value: KeyValueState,
    instances: Arc<AtomicUsize>,
}

impl WasiEdge {
    /// Loads `component` and serves it on a free loopback port, one instance per request,
    /// each with `env` as its environment.
    pub fn start(component: &Path, env: &[(&str, &str)]) -> Result<Self, String> {
        let prepared = Prepared::new(component, env, Allocation::Pooling)?;
        let key_value = prepared.key_value().clone();
        let instances = prepared.instances.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    ready_tx.send(Err(e.to_string())).ok();
                    return;
                }
            };
            runtime.block_on(serve(listener, prepared, ready_tx, stop_rx));
        });
        ready_rx
            .recv()
            .map_err(|_| "the host thread ended before it was ready".to_string())??;
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            key_value,
            instances,
        })
    }

    /// How many instances have been created so far (one per request).
    pub fn instances(&self) -> usize {
        self.instances.load(Ordering::Relaxed)
    }

    /// The key-value store the instances share (tests look into it).
    pub fn key_value(&self) -> &KeyValueState {
        &self.key_value
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for WasiEdge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

/// How instances are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Wasmtime's pooling allocator: slots reserved up front and reused (what a server that
    /// instantiates per request uses).
    Pooling,
    /// Memory mapped for each instance as it is created.
    OnDemand,
}

/// The compiled component, pre-instantiated against the host's imports: each request gets a
/// fresh store and instance from it, as Spin and `wasmtime serve` do.
pub struct Prepared {
    engine: Engine,
    pre: ProxyPre<Ctx>,
    env: Vec<(String, String)>,
    key_value: KeyValueState,
    instances: Arc<AtomicUsize>,
}

impl Prepared {
    /// Compiles `component` (cached beside it) and links it; `env` is every instance's
    /// environment.
    pub fn new(
        component: &Path,
        env: &[(&str, &str)],
        allocation: Allocation,
    ) -> Result<Self, String> {
        let mut config = Config::new();
        config.wasm_component_model_async(true);
        if allocation == Allocation::Pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(64)
                .total_core_instances(256)
                .total_memories(128)
                .total_tables(256)
                .total_stacks(64)
                .max_memory_size(256 << 20);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        // Compiled code is cached beside the component, so each test does not recompile it.
        let mut cache = CacheConfig::new();
        if let Some(dir) = component.parent() {
            cache.with_directory(dir.join("wasmtime-cache"));
        }
        config.cache(Cache::new(cache).ok());
        let engine = Engine::new(&config).map_err(|e| format!("engine: {e}"))?;
        let loaded = Component::from_file(&engine, component)
            .map_err(|e| format!("loading {}: {e}", component.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| format!("linking wasi 0.2: {e}"))?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)
            .map_err(|e| format!("linking wasi 0.3: {e}"))?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)
            .map_err(|e| format!("linking wasi:http 0.3: {e}"))?;
        key_value::add_to_linker(&mut linker, |ctx: &mut Ctx| KeyValueView {
            table: &mut ctx.table,
            state: &ctx.key_value,
        })
        .map_err(|e| format!("linking spin:key-value: {e}"))?;
        let pre = linker
            .instantiate_pre(&loaded)
            .and_then(ServicePre::new)
            .map_err(|e| format!("pre-instantiating: {e}"))?;
        Ok(Self {
            engine,
            pre: ProxyPre::P3(pre),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            key_value: KeyValueState::default(),
            instances: Arc::default(),
        })
    }

    /// The key-value store every instance shares.
    pub fn key_value(&self) -> &KeyValueState {
        &self.key_value
    }

    /// A new store and instance, as for one request.
    pub async fn instantiate(&self) -> Result<(Store<Ctx>, Proxy), String> {
        self.instances.fetch_add(1, Ordering::Relaxed);
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr();
        for (k, v) in &self.env {
            wasi.env(k, v);
        }
        let mut store = Store::new(
            &self.engine,
            Ctx {
                table: ResourceTable::new(),
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                key_value: self.key_value.clone(),
            },
        );
        let proxy = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| format!("instantiating: {e}"))?;
        Ok((store, proxy))
    }
}

/// One instance per request: it takes one request, then finishes its work after the
/// response (revalidations, stores) and is dropped.
pub struct PerRequest;

impl WorkerState for PerRequest {
    type StoreData = Ctx;
    type RequestData = ();

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total == 0 {
            ShouldAccept::Yes
        } else {
            ShouldAccept::Never
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, Ctx>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // The edge bounds its own upstream calls; the host sets no deadline of its own.
        Box::pin(std::future::pending())
    }

    fn drop(&self, _store: Store<Ctx>, result: Result<(), wasmtime::Error>) {
        if let Err(e) = result {
            eprintln!("wasi host: instance ended with an error: {e}");
        }
    }
}

/// Never expires an instance early (see [`PerRequest::on_request_start`]).
pub struct NoExpiry;

impl WorkerExpiration for NoExpiry {
    fn poll(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _state: WorkerStatus,
        _start: std::time::Instant,
    ) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

impl HandlerState for Prepared {
    type StoreData = Ctx;
    type WorkerExpiration = NoExpiry;
    type WorkerState = PerRequest;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Ctx, NoExpiry, PerRequest>> {
        let (store, proxy) = Prepared::instantiate(self)
            .await
            .map_err(wasmtime::Error::msg)?;
        Ok(Instance {
            store,
            proxy,
            view: |ctx: &mut Ctx| ctx.http(),
            expiration: NoExpiry,
            state: PerRequest,
        })
    }
}

/// Requests to fresh instances of a [`Prepared`] component.
#[derive(Clone)]
pub struct Handler(ProxyHandler<Prepared>);

impl Handler {
    /// Serves `prepared`, one instance per request.
    pub fn new(prepared: Prepared) -> Self {
        Self(ProxyHandler::new(prepared))
    }

    /// Answers `request` from a new instance; the instance finishes its work after the
    /// response (revalidations, stores) before it is dropped. Must run inside a Tokio runtime.
    pub async fn handle<B>(&self, request: http::Request<B>) -> http::Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        wasmtime_wasi_http::Error: From<B::Error>,
    {
        let request =
            request.map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
        match self.0.handle((), request).await {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                match body.collect().await {
                    Ok(collected) => {
                        http::Response::from_parts(parts, Full::new(collected.to_bytes()))
                    }
                    Err(e) => error_reply(&format!("response body: {e:?}")),
                }
            }
            Err(e) => error_reply(&format!("component failed: {e}")),
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    prepared: Prepared,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            ready.send(Err(e.to_string())).ok();
            return;
        }
    };
    let handler = Handler::new(prepared);
    ready.send(Ok(())).ok();
    tokio::select! {
        _ = stop => {}
        () = accept(listener, handler) => {}
    }
}

async fn accept(listener: tokio::net::TcpListener, handler: Handler) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut request: http::Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    // The address comes from the socket, never from the client.
                    if let Ok(value) = http::HeaderValue::from_str(&peer.to_string()) {
                        request.headers_mut().insert(CLIENT_ADDR_HEADER, value);
                    }
                    Ok::<_, std::convert::Infallible>(handler.handle(request).await)
                }
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
                .ok();
        });
    }
}

/// Builds the edge's wasi-http component (release, `wasm32-wasip2`, feature `wasi`) with the
/// workspace's cargo and returns its path.
pub fn build_edge_component() -> Result<std::path::PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("wasi-host has no parent directory")?
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "surge-edge",
            "--target",
            "wasm32-wasip2",
            "--features",
            "wasi",
        ])
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err("building the wasi-http component failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    Ok(target.join("wasm32-wasip2/release/surge_edge.wasm"))
}

fn error_reply(message: &str) -> Reply {
    let mut reply = http::Response::new(Full::new(Bytes::from(message.to_string())));
    *reply.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    reply
}
