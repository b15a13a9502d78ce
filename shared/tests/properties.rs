//! Property tests: canonicalisation is idempotent, equivalent URLs share keys, unkeyed headers
//! never matter, and no input makes any parser panic.

use proptest::prelude::*;
use surge_shared::key::{KeyConfig, Variant, canonical_url};
use surge_shared::{CacheKey, GeoTable, KeyPattern, Policy, Tag, TagSet};

fn config() -> KeyConfig {
    KeyConfig {
        variants: vec![
            Variant::Encoding,
            Variant::Language {
                supported: vec!["en".into(), "fr".into()],
                default: "en".into(),
            },
        ],
        ..KeyConfig::default()
    }
}

fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-zA-Z0-9._~-]{1,6}",
            Just("%2e".to_string()),
            Just("%2F".to_string()),
            Just("%7e".to_string()),
            Just("é".to_string()),
            Just("..".to_string()),
            Just(".".to_string()),
            Just("%".to_string()),
            Just("|".to_string()),
        ],
        1..4,
    )
    .prop_map(|parts| parts.concat())
}

fn param() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            "[a-z]{1,3}",
            Just("utm_source".to_string()),
            Just("fbclid".to_string())
        ],
        prop_oneof![
            "[a-zA-Z0-9]{0,4}",
            Just("a%2bb".to_string()),
            Just("x y".to_string())
        ],
    )
}

fn url() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http"), Just("HTTPS"), Just("https")],
        prop_oneof![
            Just("vote.example"),
            Just("VOTE.Example."),
            Just("bücher.example"),
            Just("127.0.0.1")
        ],
        prop_oneof![Just(""), Just(":443"), Just(":8080")],
        prop::collection::vec(segment(), 0..4),
        prop::collection::vec(param(), 0..5),
        prop_oneof![Just(""), Just("#frag")],
    )
        .prop_map(|(scheme, host, port, segs, params, frag)| {
            let query = if params.is_empty() {
                String::new()
            } else {
                let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("?{}", pairs.join("&"))
            };
            format!("{scheme}://{host}{port}/{}{query}{frag}", segs.join("/"))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonicalisation_is_idempotent(u in url()) {
        let cfg = config();
        let once = canonical_url(&cfg, &u).expect("generated URLs are valid");
        let twice = canonical_url(&cfg, &once).expect("canonical URLs stay valid");
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn query_order_and_tracking_params_never_matter(
        base in url(),
        mut params in prop::collection::vec(("[a-z]{1,3}", "[a-z0-9]{0,3}"), 0..5),
        tracking in prop::collection::vec(prop_oneof![Just("utm_medium=x"), Just("gclid=1"), Just("mc_eid=2")], 0..3),
    ) {
        let cfg = config();
        let base = base.split(['?', '#']).next().unwrap_or_default().to_string();
        // Distinct names, so any order is equivalent.
        params.sort_by(|a, b| a.0.cmp(&b.0));
        params.dedup_by(|a, b| a.0 == b.0);
        let plain: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut shuffled: Vec<String> = plain.iter().rev().cloned().collect();
        shuffled.extend(tracking.iter().map(|t| t.to_string()));
        let a = canonical_url(&cfg, &format!("{base}?{}", plain.join("&")));
        let b = canonical_url(&cfg, &format!("{base}?{}", shuffled.join("&")));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn unkeyed_headers_never_change_the_key(
        u in url(),
        value in "[ -~]{0,40}",
        name in prop_oneof![Just("X-Forwarded-Host"), Just("X-Original-URL"), Just("X-Rewrite-URL"), Just("X-Forwarded-Scheme"), Just("X-HTTP-Method-Override"), Just("Host"), Just("Cookie"), Just("User-Agent")],
    ) {
        let cfg = config();
        let base = [("Accept-Encoding", "gzip")];
        let extra = [("Accept-Encoding", "gzip"), (name, value.as_str())];
        prop_assert_eq!(
            CacheKey::new(&cfg, "GET", &u, &base[..]),
            CacheKey::new(&cfg, "GET", &u, &extra[..])
        );
    }

    #[test]
    fn no_input_makes_the_parsers_panic(s in "\\PC{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let cfg = config();
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        for text in [&s, &lossy] {
            let _ = CacheKey::new(&cfg, "GET", text, &[("Accept-Encoding", text.as_str()), ("Accept-Language", text.as_str())][..]);
            let _ = Tag::new(text);
            let _ = TagSet::parse_cache_tag_header(text);
            let _ = TagSet::parse_surrogate_key_header(text);
            let _ = KeyPattern::new(text);
            let _ = Policy::from_toml_str(text);
            let _ = Policy::from_json_str(text);
            let _ = GeoTable::from_json_str(text);
            let _ = surge_shared::auth::cookie_value(text, "auth_token");
            let _ = surge_shared::route::PathPattern::new(text);
            let _ = surge_shared::template::TagTemplate::new(text);
            let _ = surge_shared::admin::parse_json::<surge_shared::admin::InvalidateRequest>(text.as_bytes());
            if let Ok(p) = KeyPattern::new("https://vote.example/api/*") {
                let _ = p.matches(text);
            }
            let _ = Policy::election_default().classify(text);
        }
    }

    #[test]
    fn valid_tags_round_trip_through_both_headers(tags in prop::collection::vec("[!-+--~]{1,20}", 1..20)) {
        let set: TagSet = tags.iter().filter_map(|t| Tag::new(t).ok()).collect();
        let ct = set.to_cache_tag_header().expect("small sets fit");
        prop_assert_eq!(TagSet::parse_cache_tag_header(&ct).expect("parses"), set.clone());
        let sk = set.to_surrogate_key_header().expect("small sets fit");
        prop_assert_eq!(TagSet::parse_surrogate_key_header(&sk).expect("parses"), set);
    }
}
