//! Surge's edge: the request pipeline that runs in Cloudflare Workers and as a wasi-http
//! component. Keys, tags, routes, limits and regions all come from `surge-shared`; the edge
//! defines none of its own.
//!
//! - [`pipeline`]: the platform-agnostic flow (plain Rust, unit-tested natively).
//! - [`seams`]: the narrow traits it runs on.
//! - [`platform`]: the runtimes implementing them and entering the pipeline (`cloudflare`,
//!   `wasi`, and in-memory pieces).
//! - [`directives`], [`freshness`]: what may be stored and for how long.
//! - [`limit`]: which identity a quota counts.
//! - [`config`], [`http`], [`error_page`]: configuration, messages, outage answers.

pub mod config;
pub mod directives;
pub mod error_page;
pub mod freshness;
pub mod http;
pub mod limit;
pub mod pipeline;
pub mod platform;
pub mod seams;
