//! The CDN tier (L3) as the origin sees it: something that purges. One narrow trait
//! ([`Cdn`]) with the Cloudflare implementation in [`cloudflare`]; the purge orchestration
//! that spans L1, L2 and the CDN lives in `crate::purge`.

pub mod cloudflare;
pub mod config;

use futures_util::future::BoxFuture;

/// What to purge at the CDN, in the CDN's own terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdnPurge {
    /// Absolute URLs (as the edge stores them).
    pub files: Vec<String>,
    /// Cache tags.
    pub tags: Vec<String>,
    /// Host names.
    pub hosts: Vec<String>,
    /// `host/path` prefixes.
    pub prefixes: Vec<String>,
    /// Everything in the zone.
    pub everything: bool,
}

impl CdnPurge {
    /// Whether there is nothing to purge.
    pub fn is_empty(&self) -> bool {
        !self.everything
            && self.files.is_empty()
            && self.tags.is_empty()
            && self.hosts.is_empty()
            && self.prefixes.is_empty()
    }
}

/// How a CDN purge went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdnOutcome {
    /// Targets (URLs, tags, hosts, prefixes) the CDN accepted.
    pub purged: u64,
    /// Targets that could not be purged.
    pub failed: u64,
    /// API requests sent, retries included.
    pub attempts: u32,
    /// What went wrong, one line per failed request.
    pub errors: Vec<String>,
}

/// A CDN that can purge.
pub trait Cdn: Send + Sync + 'static {
    /// A short description for reports (`cloudflare zone 0123…`).
    fn describe(&self) -> String;
    /// Purges `what`, batching, retrying and pacing as the CDN requires.
    fn purge(&self, what: CdnPurge) -> BoxFuture<'_, CdnOutcome>;
}
