//! A browser through the edge: headless Chromium loads the server-rendered pages from the
//! Worker under workerd (`wrangler dev`), which fetches them from the real `surge-origin`.

mod support;

use std::path::Path;
use std::process::Command;

use support::{OriginProcess, eventually, http, login};
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
    let edge = WranglerDev::start(&[("SURGE_GEO", &geo)], None).expect("wrangler dev starts");
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

    // A vote through the edge shows up on the results page the browser loads.
    let client = http();
    let cookie = login(&client, &origin, "browser-voter").await;
    let vote = client
        .post(edge.url("/api/elections/1/votes"))
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .body("{\"option_id\":2}")
        .send()
        .await
        .expect("vote through the edge");
    assert_eq!(
        vote.status(),
        201,
        "{}\n{}",
        edge.log_tail(),
        origin.log_tail()
    );
    eventually("the results page to count the vote", async || {
        rendered_dom(&edge.url("/elections/1/results"), profile.path()).contains("1 vote counted")
    })
    .await;

    // With the origin gone, the browser still gets the election page from the edge's copy.
    origin.kill();
    let page = rendered_dom(&edge.url("/elections/1"), profile.path());
    assert!(
        page.contains("<h1 id=\"title\">General Election 2026</h1>"),
        "{page}"
    );
}
