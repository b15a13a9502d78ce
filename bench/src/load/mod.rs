//! The election-day load generator behind the `surge-load` binary: TOML scenarios
//! (`scenario`), open and closed load models measured without coordinated omission
//! (`runner`), reports as JSON, a table and HTML (`report`), k6-style thresholds
//! (`threshold`), baseline comparison (`compare`), the capacity search (`capacity`) and the
//! capacity model (`model`), and the voter credentials virtual users log in with
//! (`credentials`).

pub mod capacity;
pub mod compare;
pub mod credentials;
pub mod k6;
pub mod model;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod threshold;
