//! Surge's one key/tag scheme and policy vocabulary, compiled into both the edge (wasm32) and
//! the origin (native).
//!
//! This crate does no I/O, starts no runtime and reads no clock: time is passed in. The same
//! input gives the same key, tag and decision on every target.
//!
//! - [`key`]: canonical URLs and cache keys ([`CacheKey`]), with a fixed-length digest.
//! - [`tag`], [`template`], [`cascade`]: cache tags, `Cache-Tag`/`Surrogate-Key` encoding,
//!   tag templates and parent→child purge cascades.
//! - [`policy`], [`route`], [`auth`]: the route table (class, TTLs, layers, tags, limits) and the
//!   auth-bypass rule, loaded from TOML or JSON.
//! - [`rate`]: the GCRA rate limiter, pure.
//! - [`geo`]: country/continent → origin regions in failover order.
//! - [`pattern`]: safe purge globs.
//! - [`status`]: cache status, layers and the headers that carry them.
//! - [`admin`]: admin API request and report types.
//! - [`voter`]: voter ids; [`session`]: the login token the origin issues and both verify;
//!   [`edge_auth`]: the signature the edge puts on origin requests and the origin checks.
//! - [`trace`]: W3C `traceparent` and request ids, continued or started at the edge.
//! - [`uri`]: absolute http(s) URLs read as browsers read them, without tables.
//!
//! Key, tags and policy together:
//!
//! ```
//! use surge_shared::{CacheKey, Policy, TagSet};
//!
//! let policy = Policy::election_default();
//! let url = "https://Vote.Example/api/elections/7/results?utm_source=news&b=2&a=1";
//! let headers = [("Accept-Encoding", "gzip, br"), ("X-Forwarded-Host", "evil.example")];
//!
//! // Credentials bypass shared caches entirely.
//! assert!(!policy.auth.applies(Some("theme=dark"), false));
//! assert!(policy.auth.applies(Some("auth_token=abc"), false));
//!
//! // One key for every tier; unkeyed headers such as X-Forwarded-Host never change it.
//! let key = CacheKey::new(&policy.key, "GET", url, &headers[..]).unwrap();
//! assert_eq!(
//!     key.as_str(),
//!     "surge:v1:GET https://vote.example/api/elections/7/results?a=1&b=2 enc=br"
//! );
//! assert_eq!(key.hashed().len(), "surge:v1:h:".len() + 64);
//!
//! // The route decides class, TTLs and tags.
//! let matched = policy.classify("/api/elections/7/results");
//! assert!(matched.route.class.is_shared_cacheable());
//! let tags: TagSet = matched.route.tags(&matched.params).unwrap();
//! assert_eq!(tags.to_cache_tag_header().unwrap(), "results:7");
//!
//! // Purging the election reaches its results through the cascade.
//! let purge: TagSet = [surge_shared::Tag::new("election:7").unwrap()].into_iter().collect();
//! let reached = policy.cascade.expand(&purge).unwrap();
//! assert!(reached.iter().any(|t| t.as_str() == "results:7"));
//! ```

pub mod admin;
pub mod auth;
pub mod cascade;
pub mod duration;
pub mod edge_auth;
pub mod freshness;
pub mod geo;
mod hex;
pub mod key;
pub mod pattern;
pub mod policy;
pub mod rate;
pub mod route;
pub mod session;
pub mod status;
pub mod tag;
pub mod template;
pub mod trace;
pub mod uri;
pub mod vectors;
pub mod voter;

pub use auth::AuthBypass;
pub use cascade::Cascade;
pub use geo::GeoTable;
pub use key::{CacheKey, CanonicalUrl, KeyConfig, KeyError};
pub use pattern::KeyPattern;
pub use policy::{CacheClass, Classified, Policy, PolicyError, Route};
pub use rate::{Decision, GcraState, Quota};
pub use status::{CacheStatus, Layer, Layers, Tier};
pub use tag::{Tag, TagSet};
