//! `uri::HttpUrl` against the `url` crate, a full WHATWG URL parser: on every http(s) URL the
//! generators make, both read the same host, port, path and query, or both refuse it. The
//! generators leave out what `HttpUrl` refuses on purpose (hosts ending in a number that are
//! not dotted-decimal IPv4).

use proptest::prelude::*;
use surge_shared::uri::{HttpUrl, UrlError};

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z][a-zA-Z0-9-]{0,8}(\\.[a-zA-Z][a-zA-Z0-9-]{0,8}){0,2}\\.?",
        Just("vo%54e.example".to_string()),
        Just("vote%2Eexample".to_string()),
        Just("VOTE.Example.".to_string()),
        Just("bücher.example".to_string()),
        Just("BÜCHER.example".to_string()),
        Just("b%C3%BCcher.example".to_string()),
        Just("xn--bcher-kva.example".to_string()),
        Just("127.0.0.1".to_string()),
        Just("192.0.2.255.".to_string()),
        Just("[::1]".to_string()),
        Just("[0:0:0:0:0:0:0:1]".to_string()),
        Just("[2001:DB8:0:0:1:0:0:1]".to_string()),
        Just("[::ffff:192.0.2.1]".to_string()),
        Just("[1:0:0:2:0:0:0:3]".to_string()),
        Just("vote<.example".to_string()),
        Just("vote%20.example".to_string()),
        Just("a^b.example".to_string()),
        Just(String::new()),
    ]
}

fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-zA-Z0-9._~-]{1,4}",
            "[ -~]{1,3}",
            Just("%2e".to_string()),
            Just("%2E%2e".to_string()),
            Just(".%2E".to_string()),
            Just("..".to_string()),
            Just(".".to_string()),
            Just("é".to_string()),
            Just("\t".to_string()),
            Just("\\".to_string()),
            Just("%".to_string()),
        ],
        0..3,
    )
    .prop_map(|parts| parts.concat())
}

fn url() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http"), Just("HTTPS"), Just("https"), Just("Http")],
        prop_oneof![Just("://"), Just(":"), Just(":\\\\"), Just(":///")],
        prop_oneof![Just(""), Just("user@"), Just("u:p@"), Just("a@b@")],
        host(),
        prop_oneof![
            Just(""),
            Just(":"),
            Just(":443"),
            Just(":80"),
            Just(":0080"),
            Just(":8080"),
            Just(":65536"),
            Just(":8x")
        ],
        prop::collection::vec(segment(), 0..4),
        prop::option::of("[ -~é]{0,12}"),
        prop_oneof![Just(""), Just("#frag"), Just("#a?b")],
        prop_oneof![Just(""), Just(" "), Just("\n")],
    )
        .prop_map(|(scheme, sep, user, host, port, segs, query, frag, pad)| {
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            format!(
                "{pad}{scheme}{sep}{user}{host}{port}/{}{query}{frag}{pad}",
                segs.join("/")
            )
        })
}

fn agree(input: &str) -> Result<(), TestCaseError> {
    let ours = HttpUrl::parse(input);
    match url::Url::parse(input) {
        Ok(theirs) => {
            let ours = ours.map_err(|e| {
                TestCaseError::fail(format!(
                    "{input:?}: url reads {theirs}, HttpUrl refuses: {e}"
                ))
            })?;
            prop_assert_eq!(
                Some(ours.host.as_str()),
                theirs.host_str(),
                "host of {:?}",
                input
            );
            prop_assert_eq!(ours.port, theirs.port(), "port of {:?}", input);
            prop_assert_eq!(ours.path.as_str(), theirs.path(), "path of {:?}", input);
            prop_assert_eq!(
                ours.query.as_deref(),
                theirs.query(),
                "query of {:?}",
                input
            );
            prop_assert_eq!(
                ours.fragment,
                theirs.fragment().is_some(),
                "fragment of {:?}",
                input
            );
        }
        Err(e) => prop_assert!(
            ours.is_err(),
            "{:?}: url refuses ({}), HttpUrl reads {:?}",
            input,
            e,
            ours
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn reads_every_url_as_the_whatwg_parser_does(input in url()) {
        agree(&input)?;
    }

    #[test]
    fn reads_any_text_after_the_scheme_as_the_whatwg_parser_does(rest in "[ -~é\t]{0,30}") {
        let input = format!("https://{rest}");
        let numeric_host = HttpUrl::parse(&input)
            .is_err_and(|e| e.to_string().contains("four decimal numbers"));
        if !numeric_host {
            agree(&input)?;
        }
    }
}

#[test]
fn other_schemes_are_named_in_the_error() {
    for (input, scheme) in [
        ("ftp://vote.example/", "ftp"),
        ("JavaScript:alert(1)", "javascript"),
        ("localhost:8080", "localhost"),
    ] {
        assert_eq!(HttpUrl::parse(input), Err(UrlError::Scheme(scheme.into())));
    }
}
