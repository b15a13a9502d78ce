//! The runtimes the pipeline runs on, each implementing [`crate::seams`] and entering the
//! pipeline: `cloudflare` (Workers, feature `cloudflare` on wasm32) and `wasi` (wasi-http via
//! spin-sdk, feature `wasi` on `wasm32-wasip2`); `kv` keeps the cache and the limiter in a
//! host key-value store (the wasi adapter, whose instances live for one request); `memory`
//! holds in-process implementations for native tests.

#[cfg(all(feature = "cloudflare", target_arch = "wasm32"))]
pub mod cloudflare;
pub mod kv;
pub mod memory;
#[cfg(all(feature = "wasi", target_arch = "wasm32"))]
pub mod wasi;
