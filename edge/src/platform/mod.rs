//! The runtimes the pipeline runs on, each implementing [`crate::seams`] and entering the
//! pipeline: `cloudflare` (Workers, feature `cloudflare` on wasm32) and `wasi` (wasi-http via
//! spin-sdk, feature `wasi` on `wasm32-wasip2`); `memory` holds in-process implementations
//! used by the wasi adapter and by native tests.

#[cfg(all(feature = "cloudflare", target_arch = "wasm32"))]
pub mod cloudflare;
pub mod memory;
#[cfg(all(feature = "wasi", target_arch = "wasm32"))]
pub mod wasi;
