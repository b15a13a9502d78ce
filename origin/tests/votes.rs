//! Votes at election scale against real Postgres: registered voters with issued codes,
//! votes sharded over two primaries by voter, group commit, and tallies that always equal
//! the votes stored.

mod support;

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{OriginProcess, admin, code_of, header, http, login, register, try_login, vote};
use surge_origin::db::shard::shard_for;
use surge_testkit::postgres::PgPair;

fn count(pg: &PgPair, sql: &str) -> i64 {
    pg.primary
        .psql("postgres", sql)
        .expect("psql")
        .trim()
        .parse()
        .expect("a number")
}

#[tokio::test(flavor = "multi_thread")]
async fn only_registered_voters_with_their_code_log_in_and_vote() {
    let pg = PgPair::start().expect("postgres");
    let origin = OriginProcess::start(&[
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("DATABASE_REPLICA_URLS", pg.replica.url("postgres")),
        ("SURGE_SEED_DEMO", "true".into()),
    ]);
    let client = http();

    // An unknown voter and a wrong code get the same answer.
    register(&origin, "alice", &[1]).await;
    let unknown = try_login(&client, &origin, "nobody", &code_of("nobody")).await;
    let wrong = try_login(&client, &origin, "alice", &code_of("bob")).await;
    assert_eq!(
        (unknown.status().as_u16(), wrong.status().as_u16()),
        (401, 401)
    );
    assert!(unknown.headers().get("set-cookie").is_none());
    let (unknown, wrong): (Value, Value) = (
        unknown.json().await.expect("JSON"),
        wrong.json().await.expect("JSON"),
    );
    assert_eq!(unknown, wrong);
    assert_eq!(unknown["error"], "invalid_credentials");

    // Codes are read as people type them.
    let typed = code_of("alice").to_lowercase();
    let typed = format!("{}-{}", &typed[..5], &typed[5..]);
    assert_eq!(
        try_login(&client, &origin, "alice", &typed).await.status(),
        200
    );

    // Guessing is throttled per voter, with Retry-After; other voters are not affected.
    register(&origin, "carol", &[1]).await;
    for _ in 0..5 {
        assert_eq!(
            try_login(&client, &origin, "carol", &code_of("x"))
                .await
                .status(),
            401
        );
    }
    let throttled = try_login(&client, &origin, "carol", &code_of("x")).await;
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().get("retry-after").is_some());
    assert_eq!(
        try_login(&client, &origin, "alice", &code_of("alice"))
            .await
            .status(),
        200
    );

    // Registered for another election only: refused, and nothing is stored.
    register(&origin, "outsider", &[7]).await;
    let cookie = {
        let r = try_login(&client, &origin, "outsider", &code_of("outsider")).await;
        assert_eq!(r.status(), 200);
        let c = r.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .to_string();
        c.split(';').next().unwrap_or_default().to_string()
    };
    let (status, _, reply) = vote(&client, &origin, &cookie, 1).await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["error"], "not_eligible");
    assert_eq!(count(&pg, "SELECT count(*) FROM votes"), 0);

    // Codes are stored only as hashes.
    let stored = pg
        .primary
        .psql(
            "postgres",
            "SELECT encode(code_hash, 'hex') FROM voters WHERE voter_id = 'alice'",
        )
        .expect("psql");
    assert_eq!(stored.trim().len(), 64);
    assert!(!stored.to_uppercase().contains(&code_of("alice")));

    // Issued through the admin API: each code logs its voter in; the import is validated.
    let (status, issued) = admin(
        &origin,
        reqwest::Method::POST,
        "/performance/voters/issue",
        Some(json!({ "election_id": 1, "count": 3 })),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["registered"], 3);
    for v in issued["issued"].as_array().expect("codes") {
        let (id, code) = (
            v["voter_id"].as_str().expect("id"),
            v["code"].as_str().expect("code"),
        );
        assert_eq!(
            try_login(&client, &origin, id, code).await.status(),
            200,
            "{v}"
        );
    }
    for (body, field) in [
        (json!({ "voters": [] }), "voters"),
        (
            json!({ "voters": [{ "voter_id": "a b", "elections": [1] }] }),
            "voters[0].voter_id",
        ),
        (
            json!({ "voters": [{ "voter_id": "d", "elections": [] }] }),
            "voters[0].elections",
        ),
        (
            json!({ "voters": [{ "voter_id": "d", "elections": [1], "code": "123" }] }),
            "voters[0].code",
        ),
    ] {
        let (status, reply) = admin(
            &origin,
            reqwest::Method::POST,
            "/performance/voters",
            Some(body),
        )
        .await;
        assert_eq!(
            (status.as_u16(), reply["field"].as_str()),
            (400, Some(field)),
            "{reply}"
        );
    }
    // A second import of the same voter keeps the first code.
    let (_, again) = admin(
        &origin,
        reqwest::Method::POST,
        "/performance/voters",
        Some(json!({ "voters": [{ "voter_id": "alice", "elections": [1] }] })),
    )
    .await;
    assert_eq!(again["existing"], json!(["alice"]));
    assert_eq!(again["issued"], json!([]));
    assert_eq!(
        try_login(&client, &origin, "alice", &code_of("alice"))
            .await
            .status(),
        200
    );
}

#[test]
fn the_cli_issues_codes_into_a_private_file_and_imports_a_registry() {
    let pg = PgPair::start().expect("postgres");
    let dir = tempfile::tempdir().expect("dir");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_surge-origin"))
            .env_clear()
            .env("DATABASE_URL", pg.primary.url("postgres"))
            .env("SURGE_SEED_DEMO", "true")
            .env("SURGE_VOTER_PEPPER", support::PEPPER)
            .args(args)
            .output()
            .expect("run surge-origin")
    };
    let out = dir.path().join("codes.csv");
    let run = cli(&[
        "voters",
        "issue",
        "--election",
        "1",
        "--count",
        "25",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out).expect("codes");
    assert_eq!(text.lines().count(), 26, "header + 25 voters");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM voters"), 25);
    let again = cli(&[
        "voters",
        "issue",
        "--election",
        "1",
        "--count",
        "1",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(
        !again.status.success(),
        "an existing codes file is never replaced"
    );
    assert_eq!(
        count(&pg, "SELECT count(*) FROM voters"),
        25,
        "and nothing was registered"
    );

    let registry = dir.path().join("registry.jsonl");
    std::fs::write(
        &registry,
        format!(
            "{}\n{}\n",
            json!({ "voter_id": "reg-1", "elections": [1], "code": code_of("reg-1") }),
            json!({ "voter_id": "reg-2", "elections": [1, 2] })
        ),
    )
    .expect("registry");
    let no_out = cli(&[
        "voters",
        "import",
        "--file",
        registry.to_str().expect("utf-8"),
    ]);
    assert!(!no_out.status.success());
    assert!(String::from_utf8_lossy(&no_out.stderr).contains("--out"));
    let issued = dir.path().join("issued.csv");
    let run = cli(&[
        "voters",
        "import",
        "--file",
        registry.to_str().expect("utf-8"),
        "--out",
        issued.to_str().expect("utf-8"),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let issued = std::fs::read_to_string(&issued).expect("issued");
    assert_eq!(issued.lines().count(), 2, "{issued}");
    assert!(
        issued
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("reg-2,"))
    );
    std::fs::write(&registry, "{\"voter_id\": \"x\"}\n").expect("bad registry");
    let bad = cli(&[
        "voters",
        "import",
        "--file",
        registry.to_str().expect("utf-8"),
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 1"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn votes_shard_by_voter_and_tallies_equal_the_votes_after_a_storm() {
    let main = PgPair::start().expect("postgres");
    let second = PgPair::start().expect("postgres");
    let shards = format!(
        "{},{};{},{}",
        main.primary.url("postgres"),
        main.replica.url("postgres"),
        second.primary.url("postgres"),
        second.replica.url("postgres")
    );
    let origin = OriginProcess::start(&[
        ("DATABASE_URL", main.primary.url("postgres")),
        ("DATABASE_REPLICA_URLS", main.replica.url("postgres")),
        ("DATABASE_SHARD_URLS", shards),
        ("SURGE_SEED_DEMO", "true".into()),
        ("SURGE_PURGE_COALESCE", "50ms".into()),
    ]);
    let client = http();
    let voters: Vec<String> = (0..120).map(|i| format!("storm-{i}")).collect();
    let mut cookies = Vec::new();
    for v in &voters {
        cookies.push(login(&client, &origin, v).await);
    }

    // Every voter votes at once; every third sends the same vote twice concurrently (a
    // retry), every fifth then tries to change it.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, cookie) in cookies.iter().enumerate() {
        let option = i32::try_from(i % 3).unwrap_or(0) + 1;
        let copies = if i % 3 == 0 { 2 } else { 1 };
        for _ in 0..copies {
            let (client, cookie, origin_url) = (client.clone(), cookie.clone(), origin.url(""));
            tasks.spawn(async move {
                let r = client
                    .post(format!("{origin_url}/api/elections/1/votes"))
                    .header("content-type", "application/json")
                    .header("cookie", cookie)
                    .body(json!({ "option_id": option }).to_string())
                    .send()
                    .await
                    .expect("vote");
                (i, r.status(), r.json::<Value>().await.expect("JSON"))
            });
        }
    }
    let mut receipts: BTreeMap<usize, String> = BTreeMap::new();
    let mut created = 0;
    while let Some(done) = tasks.join_next().await {
        let (i, status, reply) = done.expect("task");
        assert!(status == 201 || status == 200, "{status}: {reply}");
        created += usize::from(status == 201);
        let receipt = reply["receipt"].as_str().expect("receipt").to_string();
        if let Some(seen) = receipts.insert(i, receipt.clone()) {
            assert_eq!(seen, receipt, "a retry gets the same receipt");
        }
    }
    assert_eq!(created, voters.len(), "one 201 per voter");
    for (i, cookie) in cookies.iter().enumerate().step_by(5) {
        let other = i32::try_from((i + 1) % 3).unwrap_or(0) + 1;
        let (status, _, _) = vote(&client, &origin, cookie, other).await;
        assert_eq!(status, 409);
    }

    // Each vote is on its voter's shard, exactly once, and each shard's counters equal its
    // votes.
    let per_shard = [&main, &second].map(|pg| {
        (
            count(pg, "SELECT count(*) FROM votes"),
            count(pg, "SELECT coalesce(sum(votes), 0) FROM tallies"),
        )
    });
    let expected_second = voters.iter().filter(|v| shard_for(v, 2) == 1).count();
    assert_eq!(per_shard[1].0, i64::try_from(expected_second).unwrap_or(0));
    assert_eq!(per_shard[0].0 + per_shard[1].0, 120);
    assert!(per_shard[0].0 > 20 && per_shard[1].0 > 20, "{per_shard:?}");
    for (votes, tallied) in per_shard {
        assert_eq!(votes, tallied, "counters equal count(*)");
    }
    let by_option = |pg: &PgPair, table: &str| {
        let sql = if table == "votes" {
            "SELECT string_agg(option_id || ':' || n, ',' ORDER BY option_id) FROM (SELECT option_id, count(*) n FROM votes GROUP BY 1) t"
        } else {
            "SELECT string_agg(option_id || ':' || n, ',' ORDER BY option_id) FROM (SELECT option_id, sum(votes) n FROM tallies GROUP BY 1) t"
        };
        pg.primary.psql("postgres", sql).expect("psql")
    };
    for pg in [&main, &second] {
        assert_eq!(by_option(pg, "votes"), by_option(pg, "tallies"));
    }

    // Results sum the shards' counters.
    support::eventually("results to count every vote", async || {
        let r: Value = client
            .get(origin.url("/api/elections/1/results"))
            .send()
            .await
            .expect("results")
            .json()
            .await
            .expect("JSON");
        r["total"] == 120 && r["tallies"][0]["votes"] == 40
    })
    .await;

    // A shard that is down refuses only its own voters, with Retry-After.
    let mut second = second;
    second.primary.stop().expect("stop shard 1");
    let late: Vec<String> = (0..12).map(|i| format!("late-{i}")).collect();
    let mut refused = 0;
    for v in &late {
        let shard = shard_for(v, 2);
        if shard == 1 {
            // Registration itself needs the shard: it answers 503.
            let (status, _) = admin(
                &origin,
                reqwest::Method::POST,
                "/performance/voters",
                Some(
                    json!({ "voters": [{ "voter_id": v, "elections": [1], "code": code_of(v) }] }),
                ),
            )
            .await;
            assert_eq!(status, 503);
            refused += 1;
            continue;
        }
        let cookie = login(&client, &origin, v).await;
        let (status, _, reply) = vote(&client, &origin, &cookie, 1).await;
        assert_eq!(status, 201, "shard 0 keeps accepting: {reply}");
    }
    assert!(refused > 0, "some late voters map to the stopped shard");
    let on_stopped = voters
        .iter()
        .position(|v| shard_for(v, 2) == 1)
        .expect("one");
    let (status, retry_after, reply) = vote(&client, &origin, &cookies[on_stopped], 2).await;
    assert_eq!(status, 503, "{reply}");
    assert!(retry_after.is_some_and(|s| s >= 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_votes_with_plain_forms_and_cross_site_posts_are_refused() {
    let origin = OriginProcess::start(&[("SURGE_PURGE_COALESCE", "50ms".into())]);
    register(&origin, "form-voter", &[1]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = |path: &str, body: String, site: &str, cookie: Option<&str>| {
        let mut r = client
            .post(origin.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", site)
            .body(body);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };

    // The login page is the same for everyone and cacheable.
    let page = client
        .get(origin.url("/login"))
        .send()
        .await
        .expect("login page");
    assert_eq!(page.status(), 200);
    assert!(header(&page, "cache-control").contains("s-maxage"));
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("action=\"/api/login\"")
    );

    // A wrong code: the form again, with the reason; a cross-site post: refused.
    let code = code_of("form-voter");
    let wrong = form(
        "/api/login",
        format!("voter_id=form-voter&code={}", code_of("x")),
        "same-origin",
        None,
    )
    .await
    .expect("post");
    assert_eq!(wrong.status(), 401);
    assert!(header(&wrong, "set-cookie").is_empty());
    assert!(
        wrong
            .text()
            .await
            .expect("html")
            .contains("voting code is wrong")
    );
    let forged = form(
        "/api/login",
        format!("voter_id=form-voter&code={code}"),
        "cross-site",
        None,
    )
    .await
    .expect("post");
    assert_eq!(forged.status(), 403);
    assert!(header(&forged, "set-cookie").is_empty());
    let old_browser = client
        .post(origin.url("/api/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .body(format!("voter_id=form-voter&code={code}"))
        .send()
        .await
        .expect("post");
    assert_eq!(
        old_browser.status(),
        403,
        "Origin is checked without Sec-Fetch-Site"
    );

    // Signing in leads to the ballot; the ballot page is identical with or without a session.
    let ok = form(
        "/api/login",
        format!("voter_id=form-voter&code={code}"),
        "same-origin",
        None,
    )
    .await
    .expect("post");
    assert_eq!(ok.status(), 303);
    assert_eq!(header(&ok, "location"), "/elections/1");
    let cookie = header(&ok, "set-cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(cookie.starts_with("auth_token="));
    let anonymous = client
        .get(origin.url("/elections/1"))
        .send()
        .await
        .expect("page");
    let anonymous = anonymous.text().await.expect("html");
    let signed_in = client
        .get(origin.url("/elections/1"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert_eq!(
        anonymous, signed_in,
        "nothing personal on the cacheable ballot page"
    );
    assert!(anonymous.contains("action=\"/api/elections/1/votes\""));
    assert_eq!(anonymous.matches("type=\"radio\"").count(), 3);

    // Voting without a session leads to the login page; a cross-site vote is refused.
    let no_session = form(
        "/api/elections/1/votes",
        "option_id=2".into(),
        "same-origin",
        None,
    )
    .await
    .expect("post");
    assert_eq!(
        (
            no_session.status().as_u16(),
            header(&no_session, "location")
        ),
        (303, "/login".into())
    );
    let forged = form(
        "/api/elections/1/votes",
        "option_id=2".into(),
        "cross-site",
        Some(&cookie),
    )
    .await
    .expect("post");
    assert_eq!(forged.status(), 403);

    // The vote leads to the private receipt; repeating it leads there too.
    let voted = form(
        "/api/elections/1/votes",
        "option_id=2".into(),
        "same-origin",
        Some(&cookie),
    )
    .await
    .expect("post");
    assert_eq!(voted.status(), 303);
    assert_eq!(header(&voted, "location"), "/elections/1/receipt");
    let again = form(
        "/api/elections/1/votes",
        "option_id=3".into(),
        "same-origin",
        Some(&cookie),
    )
    .await
    .expect("post");
    assert_eq!(header(&again, "location"), "/elections/1/receipt");
    let receipt = client
        .get(origin.url("/elections/1/receipt"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("receipt");
    assert_eq!(receipt.status(), 200);
    assert_eq!(header(&receipt, "cache-control"), "private, no-store");
    let receipt = receipt.text().await.expect("html");
    assert!(receipt.contains("Proposal B: new cycle lanes"), "{receipt}");
    let anonymous = client
        .get(origin.url("/elections/1/receipt"))
        .send()
        .await
        .expect("receipt");
    assert_eq!(anonymous.status(), 303);

    // The results page refreshes itself and counts the vote.
    support::eventually("the results page to count the vote", async || {
        let page = client
            .get(origin.url("/elections/1/results"))
            .send()
            .await
            .expect("results")
            .text()
            .await
            .unwrap_or_default();
        page.contains("1 vote counted") && page.contains("http-equiv=\"refresh\"")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_killed_mid_storm_loses_no_acknowledged_vote() {
    let pg = PgPair::start().expect("postgres");
    let env = [
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("SURGE_SEED_DEMO", "true".into()),
        ("SURGE_VOTE_BATCH_WAIT", "20ms".into()),
    ];
    let mut origin = OriginProcess::start(&env);
    let client = http();
    let mut cookies = Vec::new();
    for i in 0..300 {
        let voter = format!("crash-{i}");
        cookies.push((voter.clone(), login(&client, &origin, &voter).await));
    }
    // Every voter votes at once; the origin is killed (no graceful shutdown) as soon as the
    // first answers arrive, with batches queued and in flight.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (voter, cookie) in cookies {
        let (client, url, tx) = (
            client.clone(),
            origin.url("/api/elections/1/votes"),
            tx.clone(),
        );
        tokio::spawn(async move {
            let answer = client
                .post(url)
                .header("content-type", "application/json")
                .header("cookie", cookie)
                .body("{\"option_id\":1}")
                .send()
                .await;
            let receipt = match answer {
                Ok(r) if r.status().is_success() => r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["receipt"].as_str().map(str::to_string)),
                _ => None,
            };
            tx.send((voter, receipt)).ok();
        });
    }
    drop(tx);
    let mut acknowledged = Vec::new();
    let mut answered = 0;
    while let Some((voter, receipt)) = rx.recv().await {
        answered += 1;
        if let Some(r) = receipt {
            acknowledged.push((voter, r));
            if acknowledged.len() == 1 {
                origin.kill();
            }
        }
    }
    assert_eq!(answered, 300);
    assert!(!acknowledged.is_empty(), "{}", origin.log_tail());
    for (voter, receipt) in &acknowledged {
        let stored = pg
            .primary
            .psql(
                "postgres",
                &format!("SELECT receipt FROM votes WHERE voter_id = '{voter}'"),
            )
            .expect("psql");
        assert_eq!(
            stored.trim(),
            receipt,
            "{voter}'s acknowledged vote is stored once"
        );
    }
    assert_eq!(
        count(&pg, "SELECT count(*) FROM votes"),
        count(&pg, "SELECT coalesce(sum(votes), 0) FROM tallies"),
        "whatever was cut off, counters equal the votes stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_sessions_live_only_in_a_host_prefixed_cookie() {
    let origin = OriginProcess::start(&[("SURGE_INSECURE_COOKIES", "false".into())]);
    let client = http();
    let pair = login(&client, &origin, "carol").await;
    let (name, token) = pair.split_once('=').expect("name=value");
    assert_eq!(name, "__Host-auth_token");
    let response = try_login(&client, &origin, "carol", &code_of("carol")).await;
    let set_cookie = support::set_cookie(&response);
    for attribute in ["Secure", "Path=/", "HttpOnly"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    let own_vote = |cookie: String| {
        let client = client.clone();
        let url = origin.url("/api/me/votes/1");
        async move {
            client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    // The same valid token under the unprefixed name (as a sibling subdomain could plant
    // it) proves nothing.
    assert_eq!(
        own_vote(format!("auth_token={token}")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_ne!(
        own_vote(format!("__Host-auth_token={token}")).await,
        StatusCode::UNAUTHORIZED
    );
}
