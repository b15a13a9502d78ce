//! One call that purges every tier: L1 in every origin process (through the Redis backplane),
//! L2, and the CDN. Each tier gets its own line in the report; a tier that failed says so and
//! the others still run.
//!
//! The request's targets are translated once: URL keys become every variant key of their
//! canonical URL (and every variant's Cache API URL at the CDN), hosts and prefixes become
//! key patterns locally and stay hosts and prefixes at the CDN, tags expand through the
//! policy's cascades, and URL globs become key patterns locally and, when they are a plain
//! `scheme://host/path*`, a CDN prefix (a glob the CDN cannot express is reported, not
//! dropped).

use std::sync::Arc;

use surge_shared::admin::{InvalidateReport, InvalidateRequest, TierOutcome, TierReport};
use surge_shared::key::CanonicalUrl;
use surge_shared::{CacheKey, KeyPattern, Layer, Layers, Policy, TagSet};

use crate::cache::HybridCache;
use crate::cdn::{Cdn, CdnPurge};

/// Purges across tiers.
#[derive(Clone)]
pub struct Purger {
    cache: HybridCache,
    cdn: Option<Arc<dyn Cdn>>,
    policy: Policy,
}

/// The local (L1/L2) side of a request.
#[derive(Debug, Default)]
struct LocalPlan {
    keys: Vec<String>,
    patterns: Vec<KeyPattern>,
}

/// A checked purge request, translated for every tier: made once by [`Purger::plan`] and
/// carried out by [`Purger::run`].
#[derive(Debug)]
pub struct PurgePlan {
    layers: Layers,
    tags: TagSet,
    cascade: bool,
    local: LocalPlan,
    cdn: CdnPurge,
    not_at_cdn: Vec<String>,
}

/// Why a request cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct PlanError {
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn plan_error(field: String, message: impl Into<String>) -> PlanError {
    PlanError {
        field,
        message: message.into(),
    }
}

/// A glob the CDN can purge as a prefix: `scheme://host/path*` with one trailing `*`.
fn cdn_prefix(url_glob: &str) -> Option<String> {
    let stem = url_glob.strip_suffix('*')?;
    if stem.contains(['*', '?']) {
        return None;
    }
    let rest = stem
        .strip_prefix("https://")
        .or_else(|| stem.strip_prefix("http://"))?;
    (!rest.is_empty()).then(|| rest.to_string())
}

impl Purger {
    /// A purger over `cache` and, when configured, `cdn`, keying URLs like the edge does
    /// (with `policy`'s key configuration and each route's query allow-list).
    pub fn new(cache: HybridCache, cdn: Option<Arc<dyn Cdn>>, policy: Policy) -> Self {
        Self { cache, cdn, policy }
    }

    /// Checks `req` beyond its own validation (the layer choice and every target's
    /// translation) and translates its targets for the local tiers and the CDN.
    pub fn plan(&self, req: &InvalidateRequest) -> Result<PurgePlan, PlanError> {
        let layers = req.layers();
        if layers.contains(Layer::L1) != layers.contains(Layer::L2) {
            return Err(plan_error(
                "layers".into(),
                "purge l1 and l2 together (an L1 refilled from a stale L2, or an L2 behind a stale L1, would undo the purge); the CDN (l3) may be purged alone",
            ));
        }
        let keys = &self.policy.key;
        let variants = !keys.variants.is_empty();
        let mut local = LocalPlan::default();
        let mut cdn = CdnPurge {
            hosts: req.hosts.clone(),
            prefixes: req.prefixes.clone(),
            everything: req.everything,
            ..CdnPurge::default()
        };
        let mut not_at_cdn = Vec::new();
        for (i, key) in req.keys.iter().enumerate() {
            if CacheKey::is_key(key) {
                local.keys.push(key.clone());
                not_at_cdn.push(format!(
                    "keys[{i}] is a key, not a URL; the CDN purges URLs, so send the URL"
                ));
                continue;
            }
            let canonical = CanonicalUrl::parse(keys, key)
                .map_err(|e| plan_error(format!("keys[{i}]"), e.to_string()))?;
            let canonical = self
                .policy
                .classify(canonical.path())
                .route
                .keyed_url(&canonical);
            for variant in CacheKey::all_variants(keys, &canonical) {
                cdn.files.push(variant.cache_url());
                local.keys.push(variant.as_str().to_string());
            }
        }
        for (i, pattern) in req.patterns.iter().enumerate() {
            let local_pattern = KeyPattern::for_url_glob(pattern.as_str(), variants)
                .map_err(|e| plan_error(format!("patterns[{i}]"), e.to_string()))?;
            local.patterns.push(local_pattern);
            match cdn_prefix(pattern.as_str()) {
                Some(prefix) => cdn.prefixes.push(prefix),
                None => not_at_cdn.push(format!(
                    "patterns[{i}] {:?} is not a plain scheme://host/path* prefix; the CDN cannot purge globs, purge it there by tag or prefix",
                    pattern.as_str()
                )),
            }
        }
        for (i, prefix) in req.prefixes.iter().enumerate() {
            for scheme in ["https", "http"] {
                local.patterns.push(
                    KeyPattern::for_url_glob(&format!("{scheme}://{prefix}*"), false)
                        .map_err(|e| plan_error(format!("prefixes[{i}]"), e.to_string()))?,
                );
            }
        }
        for (i, host) in req.hosts.iter().enumerate() {
            for scheme in ["https", "http"] {
                local.patterns.push(
                    KeyPattern::host(scheme, host)
                        .map_err(|e| plan_error(format!("hosts[{i}]"), e.to_string()))?,
                );
            }
        }
        if req.everything {
            local.patterns.push(KeyPattern::everything());
        }
        Ok(PurgePlan {
            layers,
            tags: req.tags.iter().cloned().collect(),
            cascade: req.cascade,
            local,
            cdn,
            not_at_cdn,
        })
    }

    /// Plans `req` and runs it; a request that cannot be planned is reported as failed in
    /// every tier (callers that answer a client plan first, to refuse it with a 400).
    pub async fn invalidate(&self, req: &InvalidateRequest) -> InvalidateReport {
        match self.plan(req) {
            Ok(plan) => self.run(plan).await,
            Err(e) => {
                let failed = Layer::ALL
                    .iter()
                    .map(|layer| failed_tier(*layer, e.to_string()))
                    .collect();
                InvalidateReport::new(Vec::new(), failed)
            }
        }
    }

    /// Purges what `plan` holds in the layers it names.
    #[tracing::instrument(name = "purge.fan_out", skip_all)]
    pub async fn run(&self, plan: PurgePlan) -> InvalidateReport {
        let PurgePlan {
            layers,
            tags: tag_set,
            cascade,
            local,
            cdn: mut cdn_plan,
            not_at_cdn,
        } = plan;
        let mut tiers = Vec::new();
        let mut purged_tags = tag_set.clone();
        if layers.contains(Layer::L1) {
            let (l1, l2, expanded) = self.purge_local(&local, &tag_set, cascade).await;
            purged_tags = expanded;
            tiers.push(l1);
            tiers.push(l2);
        } else if cascade && !tag_set.is_empty() {
            // The CDN still needs the cascade's tags.
            purged_tags = self.cache.cascade_of(&tag_set).unwrap_or(tag_set.clone());
            tiers.push(skipped(Layer::L1, "not in `layers`"));
            tiers.push(skipped(Layer::L2, "not in `layers`"));
        } else {
            tiers.push(skipped(Layer::L1, "not in `layers`"));
            tiers.push(skipped(Layer::L2, "not in `layers`"));
        }
        cdn_plan.tags = purged_tags.iter().map(|t| t.as_str().to_string()).collect();
        tiers.push(if layers.contains(Layer::L3) {
            self.purge_cdn(cdn_plan, not_at_cdn).await
        } else {
            skipped(Layer::L3, "not in `layers`")
        });
        InvalidateReport::new(purged_tags.iter().cloned().collect(), tiers)
    }

    #[tracing::instrument(name = "purge.local", skip_all)]
    async fn purge_local(
        &self,
        plan: &LocalPlan,
        tags: &TagSet,
        cascade: bool,
    ) -> (TierReport, TierReport, TagSet) {
        let mut l1_count = 0u64;
        let mut l2_count = 0u64;
        let mut l1_errors = Vec::new();
        let mut l2_errors = Vec::new();
        let mut expanded = tags.clone();
        let redis = self.cache.l2().is_some();
        if !plan.keys.is_empty() {
            match self.cache.remove_keys(&plan.keys).await {
                Ok(in_l2) => {
                    l1_count += u64::try_from(plan.keys.len()).unwrap_or(u64::MAX);
                    match in_l2 {
                        Some(true) => l2_count += u64::try_from(plan.keys.len()).unwrap_or(0),
                        Some(false) => {
                            l2_errors.push("removing keys failed: Redis unavailable".into())
                        }
                        None => {}
                    }
                }
                Err(e) => l1_errors.push(e.to_string()),
            }
        }
        for pattern in &plan.patterns {
            let (here, in_l2) = self.cache.invalidate(pattern).await;
            l1_count += here;
            match in_l2 {
                Some(n) => l2_count += n,
                None if redis => {
                    l2_errors.push(format!("pattern {:?}: Redis unavailable", pattern.as_str()))
                }
                None => {}
            }
        }
        if !tags.is_empty() {
            match self.cache.invalidate_tags_with(tags, cascade).await {
                Ok((all, in_l2)) => {
                    let n = u64::try_from(all.len()).unwrap_or(u64::MAX);
                    l1_count += n;
                    match in_l2 {
                        Some(true) => l2_count += n,
                        Some(false) => l2_errors.push(
                            "tag versions not recorded: Redis unavailable (bumped in this process only)".into(),
                        ),
                        None => {}
                    }
                    expanded = all;
                }
                Err(e) => l1_errors.push(e.to_string()),
            }
        }
        let l1_detail = if redis {
            "entries and tags purged in this process; every other process is told through the Redis backplane"
        } else {
            "entries and tags purged in this process only (no REDIS_URL: no backplane to reach other processes)"
        };
        let l1 = TierReport {
            layer: Layer::L1,
            outcome: if l1_errors.is_empty() {
                TierOutcome::Done
            } else {
                TierOutcome::Failed
            },
            count: l1_count,
            attempts: 1,
            errors: l1_errors,
            detail: Some(l1_detail.into()),
        };
        let l2 = if !redis {
            skipped(Layer::L2, "REDIS_URL is not set")
        } else {
            TierReport {
                layer: Layer::L2,
                outcome: if l2_errors.is_empty() {
                    TierOutcome::Done
                } else if l2_count > 0 {
                    TierOutcome::Partial
                } else {
                    TierOutcome::Failed
                },
                count: l2_count,
                attempts: 1,
                errors: l2_errors,
                detail: Some("keys removed plus tags bumped".into()),
            }
        };
        (l1, l2, expanded)
    }

    #[tracing::instrument(name = "purge.cdn", skip_all)]
    async fn purge_cdn(&self, plan: CdnPurge, not_at_cdn: Vec<String>) -> TierReport {
        let Some(cdn) = &self.cdn else {
            return skipped(
                Layer::L3,
                "no CDN configured (set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ZONE_ID)",
            );
        };
        if plan.is_empty() && not_at_cdn.is_empty() {
            return TierReport {
                layer: Layer::L3,
                outcome: TierOutcome::Done,
                count: 0,
                attempts: 0,
                errors: Vec::new(),
                detail: Some("nothing to purge at the CDN".into()),
            };
        }
        let outcome = cdn.purge(plan).await;
        let mut errors = outcome.errors;
        errors.extend(not_at_cdn);
        TierReport {
            layer: Layer::L3,
            outcome: if errors.is_empty() {
                TierOutcome::Done
            } else if outcome.purged > 0 {
                TierOutcome::Partial
            } else {
                TierOutcome::Failed
            },
            count: outcome.purged,
            attempts: outcome.attempts,
            errors,
            detail: Some(format!(
                "{}: URLs, tags, hosts and prefixes accepted",
                cdn.describe()
            )),
        }
    }
}

fn skipped(layer: Layer, why: &str) -> TierReport {
    TierReport {
        layer,
        outcome: TierOutcome::Skipped,
        count: 0,
        attempts: 0,
        errors: Vec::new(),
        detail: Some(why.into()),
    }
}

fn failed_tier(layer: Layer, why: String) -> TierReport {
    TierReport {
        layer,
        outcome: TierOutcome::Failed,
        count: 0,
        attempts: 0,
        errors: vec![why],
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_url_prefixes_become_cdn_prefixes_and_other_globs_do_not() {
        assert_eq!(
            cdn_prefix("https://vote.example/api/*").as_deref(),
            Some("vote.example/api/")
        );
        assert_eq!(cdn_prefix("https://vote.example/*/results"), None);
        assert_eq!(cdn_prefix("https://vote.example/a?b*"), None);
    }
}
