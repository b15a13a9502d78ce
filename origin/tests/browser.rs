//! A browser through the edge: headless Chromium loads the server-rendered pages from the
//! Worker under workerd (`wrangler dev`), which fetches them from the real `surge-origin`,
//! and a person votes with the forms (`browser/vote.mjs`, playwright-core driving Debian's
//! Chromium with JavaScript off).

mod support;

use std::path::Path;
use std::process::Command;

use support::{OriginProcess, code_of, register};
use surge_testkit::process::run;
use surge_testkit::wrangler::WranglerDev;

/// The DOM Chromium builds for `url` after loading it.
fn rendered_dom(url: &str, profile: &Path) -> String {
    run(Command::new("timeout").args([
        "60",
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        &format!("--user-data-dir={}", profile.display()),
        "--dump-dom",
        url,
    ]))
    .unwrap_or_else(|e| {
        panic!("chromium failed on {url} (install it with `cargo xtask setup`): {e}")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_sees_the_election_pages_through_the_edge() {
    let mut origin = OriginProcess::start(&[("SURGE_PURGE_COALESCE", "100ms".into())]);
    let geo = format!(
        r#"{{"regions":{{"local":{{"origin":"{}","timeout":"5s"}}}},"countries":{{}},"default":["local"]}}"#,
        origin.url("")
    );
    let edge = WranglerDev::start(
        &[
            ("SURGE_GEO", &geo),
            ("SURGE_COOKIE_KEYS", support::COOKIE_KEY),
        ],
        None,
    )
    .expect("wrangler dev starts");
    let profile = tempfile::tempdir().expect("profile dir");

    let page = rendered_dom(&edge.url("/elections/1"), profile.path());
    assert!(
        page.contains("<title>General Election 2026</title>"),
        "{page}"
    );
    assert!(
        page.contains("<h1 id=\"title\">General Election 2026</h1>"),
        "{page}"
    );
    assert_eq!(page.matches("<li data-option=").count(), 3, "{page}");
    assert!(page.contains("href=\"/elections/1/results\""), "{page}");

    let results = rendered_dom(&edge.url("/elections/1/results"), profile.path());
    assert!(results.contains("0 votes counted"), "{results}");

    // A person signs in with an issued code, votes with the ballot form, sees the receipt,
    // and the self-refreshing results page counts the vote — all through the edge.
    register(&origin, "browser-voter", &[1]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/vote.mjs");
    let voting_profile = tempfile::tempdir().expect("profile dir");
    let seen = run(Command::new("timeout")
        .args(["120", "node", script, &edge.url("")])
        .args(["browser-voter", &code_of("browser-voter")])
        .arg(voting_profile.path())
        .current_dir(env!("CARGO_MANIFEST_DIR")))
    .expect("node runs the browser script (npm ci installs playwright-core)");
    let seen: serde_json::Value = serde_json::from_str(seen.trim()).expect("one JSON line");
    assert!(seen.get("failure").is_none(), "{seen}\n{}", edge.log_tail());
    assert!(
        seen["wrong_code"]
            .as_str()
            .is_some_and(|e| e.contains("voter id or the voting code is wrong")),
        "{seen}"
    );
    assert_eq!(seen["after_login"], "/elections/1", "{seen}");
    assert_eq!(seen["after_vote"], "/elections/1/receipt", "{seen}");
    assert_eq!(seen["choice"], "Proposal B: new cycle lanes", "{seen}");
    assert!(
        seen["receipt"]
            .as_str()
            .is_some_and(|r| r.starts_with("r-")),
        "{seen}"
    );
    assert_eq!(seen["total"], "1 vote counted", "{seen}");
    assert_eq!(seen["refresh"], "5", "{seen}");

    // With the origin gone, the browser still gets the election page from the edge's copy.
    origin.kill();
    let page = rendered_dom(&edge.url("/elections/1"), profile.path());
    assert!(
        page.contains("<h1 id=\"title\">General Election 2026</h1>"),
        "{page}"
    );
}
