//! Surge's benchmarks: inputs shaped like election-night traffic, shared by the criterion
//! suites in `benches/`, the `surge-load` load generator (`load`), and the surge replay
//! through the HPA algorithm (`simulate`).

pub mod load;
pub mod simulate;

/// The runtime the async benches share: two workers, like the machine they are measured on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Request URLs as browsers send them: tracking parameters, unsorted queries, mixed case.
pub fn election_urls() -> Vec<String> {
    (0..64)
        .map(|i| {
            format!(
                "https://Vote.Example/api/elections/{}/results?utm_source=news&lang=fr&page={}&fbclid=x{}",
                i % 8,
                i,
                i
            )
        })
        .collect()
}
