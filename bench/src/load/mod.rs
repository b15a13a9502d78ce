//! The election-day load generator behind the `surge-load` binary: TOML scenarios
//! (`scenario`), open and closed load models measured without coordinated omission
//! (`runner`), reports as JSON, a table and HTML (`report`), k6-style thresholds
//! (`threshold`), baseline comparison (`compare`), the capacity search (`capacity`) and the
//! capacity model (`model`), the voter credentials virtual users log in with
//! (`credentials`), and the export of a scenario as a k6 script (`k6`).
//!
//! When to use which: `surge-load` on one machine (local runs, CI, capacity steps, baseline
//! comparison; latency from each arrival's due time, so queueing in the generator shows);
//! the exported k6 script where one machine cannot make the load — `k6 run` on several
//! machines, or k6-operator's TestRun in `infrastructure/load/` — for the full reference
//! figures.

pub mod capacity;
pub mod compare;
pub mod credentials;
pub mod k6;
pub mod model;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod threshold;
