//! Faults behind the edge: the Worker under workerd (`wrangler dev`) in front of real origin
//! processes as two regions, with the load going through the edge.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::load::{Load, Sample, Step, recovery, summary};
use crate::support::{COOKIE_KEY, OriginProcess, http, login, register};
use surge_testkit::wrangler::WranglerDev;

fn geo(eu: &str, us: &str, timeout: &str) -> String {
    format!(
        r#"{{"regions":{{"eu":{{"origin":"{eu}","timeout":"{timeout}"}},"us":{{"origin":"{us}","timeout":"{timeout}"}}}},"default":["eu","us"]}}"#
    )
}

/// Voters registered on every region's origin (each has its own embedded store, where a
/// real deployment shares one registry) and logged in directly at the first (the edge
/// limits logins per address); every origin accepts the cookies (one signing key).
async fn voters(origins: &[&OriginProcess], n: usize, tag: &str) -> Vec<(String, String)> {
    let client = http();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{tag}-voter-{i}");
        for other in &origins[1..] {
            register(other, &id, &[1]).await;
        }
        out.push((id.clone(), login(&client, origins[0], &id).await));
    }
    out
}

fn started_edge(geo: &str) -> WranglerDev {
    // The Worker verifies the origins' login cookies, so each voter has its own vote quota.
    WranglerDev::start(
        &[("SURGE_GEO", geo), ("SURGE_COOKIE_KEYS", COOKIE_KEY)],
        None,
    )
    .expect("wrangler dev starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn one_region_down_fails_over_and_both_down_serves_stale_or_a_clear_503() {
    let mut eu = OriginProcess::start(&[("SURGE_REGION", "eu".into())]);
    let mut us = OriginProcess::start(&[("SURGE_REGION", "us".into())]);
    let voters = voters(&[&eu, &us], 200, "edge").await;
    let edge = tokio::task::spawn_blocking({
        let geo = geo(&eu.url(""), &us.url(""), "2s");
        move || started_edge(&geo)
    })
    .await
    .expect("join");
    let load = Load::start(edge.url(""), 30, 6, voters, None);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let one_down = load.now();
    eu.kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let both_down = load.now();
    us.kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let samples = load.stop().await;

    // One region down: every request still answered 2xx, by the other region.
    let failover: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= one_down && s.at < both_down)
        .collect();
    let bad: Vec<&&Sample> = failover
        .iter()
        .filter(|s| !(200..300).contains(&s.status))
        .collect();
    assert!(bad.is_empty(), "errors with one region down: {bad:?}");
    assert!(
        failover
            .iter()
            .filter(|s| s.step == Step::Read
                && s.cache.as_deref() != Some("HIT")
                && s.cache.as_deref() != Some("STALE"))
            .all(|s| s.region.as_deref() == Some("us")),
        "reads that reached an origin went to us"
    );
    // Both down: cached pages served stale, votes a clear 503 with Retry-After.
    let outage: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= both_down + Duration::from_millis(500))
        .collect();
    assert!(outage.len() > 20, "{} requests in the outage", outage.len());
    for s in &outage {
        match s.step {
            Step::Read => assert_eq!(s.status, 200, "cached pages stay up: {s:?}"),
            Step::Vote => {
                assert_eq!(s.status, 503, "{s:?}");
                assert!(s.retry_after, "{s:?}");
            }
        }
    }
    assert!(
        outage
            .iter()
            .any(|s| s.step == Step::Read && s.cache.as_deref() == Some("STALE")),
        "some reads were stale copies"
    );
    summary(
        "Edge: one region down, then both",
        &samples,
        (one_down, load_end(&samples)),
        None,
    );
    drop(edge);
}

fn load_end(samples: &[Sample]) -> Duration {
    samples.last().map_or(Duration::ZERO, |s| s.at)
}

/// A TCP proxy to `upstream` that holds every chunk of the answer for `delay` ms.
async fn slow_proxy(upstream: std::net::SocketAddr, delay: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let delay = delay.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = tokio::spawn(async move {
                    tokio::io::copy(&mut client_read, &mut server_write)
                        .await
                        .ok();
                });
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match server_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let ms = delay.load(Ordering::Relaxed);
                    if ms > 0 {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_origin_trips_the_edge_timeout_and_stale_copies_keep_answering() {
    let origin = OriginProcess::start(&[("SURGE_REGION", "eu".into())]);
    let upstream: std::net::SocketAddr = origin
        .url("")
        .trim_start_matches("http://")
        .parse()
        .expect("origin address");
    let delay = Arc::new(AtomicU64::new(0));
    let proxy = slow_proxy(upstream, delay.clone()).await;
    // One region only, behind the proxy: nowhere to fail over to.
    let edge = tokio::task::spawn_blocking({
        let geo = geo(&proxy, &proxy, "1s");
        move || started_edge(&geo)
    })
    .await
    .expect("join");
    let load = Load::start(edge.url(""), 20, 0, Vec::new(), None);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let slow_from = load.now();
    delay.store(6000, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let slow_to = load.now();
    delay.store(0, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let samples = load.stop().await;

    // The origin answers in 6 s; the edge's 1 s timeout fires and cached copies answer.
    let slow: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= slow_from && s.at < slow_to)
        .collect();
    assert!(slow.len() > 20, "{} requests while slow", slow.len());
    for s in &slow {
        assert_eq!(s.status, 200, "stale copies answer: {s:?}");
        assert!(
            s.latency < Duration::from_secs(4),
            "no request waits for the 6 s origin: {s:?}"
        );
    }
    assert!(
        slow.iter().any(|s| s.cache.as_deref() == Some("STALE")),
        "some answers were stale copies"
    );
    // Once the origin is quick again, fresh answers come back.
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= slow_to + Duration::from_secs(2))
        .collect();
    assert!(
        after.iter().any(|s| s.cache.as_deref() != Some("STALE")),
        "fresh answers after the origin recovered"
    );
    summary(
        "Edge: origin slowed to 6 s (edge timeout 1 s)",
        &samples,
        (slow_from, slow_to),
        recovery(&samples, Step::Read, slow_to),
    );
    drop(edge);
}
