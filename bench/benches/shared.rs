//! Criterion benches of the shared scheme: key canonicalisation, tag encoding, GCRA decisions.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use surge_shared::rate::{GcraState, LimitKey, Quota};
use surge_shared::{CacheKey, Policy, Tag, TagSet};

fn keys(c: &mut Criterion) {
    let policy = Policy::election_default();
    let urls = surge_bench::election_urls();
    let headers = [
        ("accept-encoding", "gzip, deflate, br"),
        ("x-forwarded-host", "evil.example"),
    ];
    let mut i = 0;
    c.bench_function("key/canonicalise", |b| {
        b.iter(|| {
            i = (i + 1) % urls.len();
            black_box(CacheKey::new(&policy.key, "GET", &urls[i], &headers[..]))
        })
    });
    let key = CacheKey::new(&policy.key, "GET", &urls[0], &headers[..]).expect("valid url");
    c.bench_function("key/hashed", |b| b.iter(|| black_box(key.hashed())));
}

fn tags(c: &mut Criterion) {
    let set: TagSet = (0..20)
        .filter_map(|i| Tag::entity("ballot", i).ok())
        .collect();
    c.bench_function("tags/cache_tag_header_20", |b| {
        b.iter(|| black_box(set.to_cache_tag_header()))
    });
    let header = set.to_cache_tag_header().expect("fits");
    c.bench_function("tags/parse_header_20", |b| {
        b.iter(|| black_box(TagSet::parse_cache_tag_header(&header)))
    });
}

fn gcra(c: &mut Criterion) {
    let quota = Quota {
        rate: 100,
        period: Duration::from_secs(1),
        burst: 200,
        key: LimitKey::Ip,
    };
    let mut state = GcraState::default();
    let mut now = 1_000_000_000u64;
    c.bench_function("gcra/check", |b| {
        b.iter(|| {
            now += 1_000_000;
            let (decision, next) = quota.check(state, now, 1);
            state = next;
            black_box(decision)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = keys, tags, gcra
}
criterion_main!(benches);
