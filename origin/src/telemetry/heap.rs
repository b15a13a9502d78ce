//! On-demand heap profiles for `POST /performance/apm/heap`: the live allocations jemalloc
//! has sampled (one per 512 KiB allocated on average, from start-up), as a gzipped pprof
//! protobuf (`go tool pprof`, `pprof -http`, Grafana Pyroscope read it). One dump at a time per
//! process; a dump holds one sample per sampled live allocation, so its size follows the heap,
//! not the traffic.

/// Why no heap profile was taken.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    /// Another dump is being taken in this process.
    #[error("a heap profile is already being taken in this process; wait for it to finish")]
    Busy,
    /// The process does not run on a profiling jemalloc (the library in tests).
    #[error(
        "heap profiling is off in this process: it needs the surge-origin binary (jemalloc built with profiling, see .cargo/config.toml)"
    )]
    Off,
    /// jemalloc could not dump.
    #[error("the heap profile failed: {0}")]
    Failed(String),
}

/// A gzipped pprof heap profile of this process.
pub async fn pprof() -> Result<Vec<u8>, HeapError> {
    let Some(control) = jemalloc_pprof::PROF_CTL.as_ref() else {
        return Err(HeapError::Off);
    };
    let Ok(mut control) = control.try_lock() else {
        return Err(HeapError::Busy);
    };
    if !control.activated() {
        return Err(HeapError::Off);
    }
    control
        .dump_pprof()
        .map_err(|e| HeapError::Failed(e.to_string()))
}
