//! A wasi-http host for tests: serves the edge's wasi-http component (`wasm32-wasip2`,
//! wasi-http 0.3 via spin-sdk) with wasmtime over HTTP on 127.0.0.1, the way Spin serves it —
//! one long-lived instance, the connecting address in `spin-client-addr`, configuration in the
//! environment. No Spin CLI can be installed here, so this stands in for it.

use std::net::SocketAddr;
use std::path::Path;
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::{Accessor, Component, Linker, ResourceTable};
use wasmtime::{Cache, CacheConfig, Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p3::Request;
use wasmtime_wasi_http::p3::bindings::Service;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Header carrying the client's address to the component (as Spin does).
pub const CLIENT_ADDR_HEADER: &str = "spin-client-addr";

struct Ctx {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
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
type Job = (http::Request<Incoming>, oneshot::Sender<Reply>);

/// A running host; dropping it stops the server and the instance.
pub struct WasiEdge {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WasiEdge {
    /// Loads `component`, instantiates it once with `env` as its environment, and serves it on
    /// a free loopback port.
    pub fn start(component: &Path, env: &[(&str, &str)]) -> Result<Self, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let component = component.to_path_buf();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
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
            runtime.block_on(serve(listener, &component, env, ready_tx, stop_rx));
        });
        ready_rx
            .recv()
            .map_err(|_| "the host thread ended before it was ready".to_string())??;
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
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

async fn serve(
    listener: std::net::TcpListener,
    component: &Path,
    env: Vec<(String, String)>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    stop: oneshot::Receiver<()>,
) {
    let setup = async {
        let mut config = Config::new();
        config.wasm_component_model_async(true);
        // Compiled code is cached beside the component, so each test does not recompile it.
        let mut cache = CacheConfig::new();
        if let Some(dir) = component.parent() {
            cache.with_directory(dir.join("wasmtime-cache"));
        }
        config.cache(Cache::new(cache).ok());
        let engine = Engine::new(&config).map_err(|e| format!("engine: {e}"))?;
        let component = Component::from_file(&engine, component)
            .map_err(|e| format!("loading {}: {e}", component.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| format!("linking wasi 0.2: {e}"))?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)
            .map_err(|e| format!("linking wasi 0.3: {e}"))?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)
            .map_err(|e| format!("linking wasi:http 0.3: {e}"))?;
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr();
        for (k, v) in &env {
            wasi.env(k, v);
        }
        let mut store = Store::new(
            &engine,
            Ctx {
                table: ResourceTable::new(),
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
            },
        );
        let service = Service::instantiate_async(&mut store, &component, &linker)
            .await
            .map_err(|e| format!("instantiating: {e}"))?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        Ok::<_, String>((store, service, listener))
    };
    let (mut store, service, listener) = match setup.await {
        Ok(parts) => parts,
        Err(e) => {
            ready.send(Err(e)).ok();
            return;
        }
    };
    let (jobs_tx, mut jobs) = mpsc::channel::<Job>(64);
    let acceptor = tokio::spawn(accept(listener, jobs_tx));
    ready.send(Ok(())).ok();
    let mut stop = stop;
    let served = store
        .run_concurrent(async |accessor| {
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    job = jobs.recv() => {
                        let Some((request, reply)) = job else { break };
                        reply.send(handle(accessor, &service, request).await).ok();
                    }
                }
            }
        })
        .await;
    if let Err(e) = served {
        eprintln!("wasi host: {e}");
    }
    acceptor.abort();
}

async fn accept(listener: tokio::net::TcpListener, jobs: mpsc::Sender<Job>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let jobs = jobs.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut request: http::Request<Incoming>| {
                let jobs = jobs.clone();
                async move {
                    // The address comes from the socket, never from the client.
                    if let Ok(value) = http::HeaderValue::from_str(&peer.to_string()) {
                        request.headers_mut().insert(CLIENT_ADDR_HEADER, value);
                    }
                    let (tx, rx) = oneshot::channel();
                    let reply = match jobs.send((request, tx)).await {
                        Ok(()) => rx.await.unwrap_or_else(|_| error_reply("the host stopped")),
                        Err(_) => error_reply("the host stopped"),
                    };
                    Ok::<_, std::convert::Infallible>(reply)
                }
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
                .ok();
        });
    }
}

fn error_reply(message: &str) -> Reply {
    let mut reply = http::Response::new(Full::new(Bytes::from(message.to_string())));
    *reply.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    reply
}

async fn handle(
    accessor: &Accessor<Ctx>,
    service: &Service,
    request: http::Request<Incoming>,
) -> Reply {
    // The store's hooks are the defaults too; these are not tied to the store's borrow.
    let (request, body_io) = Request::from_http(wasmtime_wasi_http::default_hooks(), request);
    let response = async {
        let response = match service.handle(accessor, request).await {
            Ok(Ok(r)) => r,
            Ok(Err(code)) => return error_reply(&format!("component error: {code:?}")),
            Err(e) => return error_reply(&format!("component trapped: {e}")),
        };
        let response = match accessor.with(|store| response.into_http(store, async { Ok(()) })) {
            Ok(r) => r,
            Err(e) => return error_reply(&format!("bad response: {e}")),
        };
        let (parts, body) = response.into_parts();
        match body.collect().await {
            Ok(collected) => http::Response::from_parts(parts, Full::new(collected.to_bytes())),
            Err(e) => error_reply(&format!("response body: {e:?}")),
        }
    };
    let (reply, _) = tokio::join!(response, body_io);
    reply
}
