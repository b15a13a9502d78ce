//! Absolute http(s) URLs read the way browsers read them (the WHATWG URL standard's rules for
//! special schemes), in one small pass: no tables, so the Worker stays small.
//!
//! What it does, as the standard does: trims leading and trailing C0 controls and spaces,
//! removes tabs and newlines anywhere, takes `\` as `/`, skips the slashes after the scheme,
//! drops user-info (everything up to the last `@` of the authority), percent-decodes and
//! lower-cases the host, checks the port (`:` alone means none; the scheme's default port is
//! dropped), resolves `.`/`..` segments (also written `%2e`), percent-encodes what the path and
//! query may not hold literally, and sets the fragment aside.
//!
//! Where it is stricter than the standard, it says so in the error: a host ending in a number
//! must be a dotted-decimal IPv4 address (no hex, octal or fewer than four parts), and a host
//! outside ASCII needs the `idna` feature (the origin has it; on Workers hosts arrive as
//! punycode already) — otherwise the error asks for its `xn--` form.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

/// Why a URL could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The URL is absolute but its scheme is not http or https.
    #[error("unsupported scheme {0:?}: only http and https URLs are accepted")]
    Scheme(String),
    /// The URL is not an absolute http(s) URL; the text says what is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// An absolute http(s) URL split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `"http"` or `"https"`.
    pub scheme: &'static str,
    /// ASCII, lower-case; an IPv6 address in brackets, in its shortest form.
    pub host: String,
    /// The port when it is not the scheme's default.
    pub port: Option<u16>,
    /// The path, starting with `/`, dot segments resolved.
    pub path: String,
    /// The query without its `?`, when there is a `?`.
    pub query: Option<String>,
    /// Whether a `#fragment` followed (it is never kept).
    pub fragment: bool,
}

impl HttpUrl {
    /// Reads `input` as an absolute http or https URL.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let cleaned: String = input
            .trim_matches(|c: char| c <= ' ')
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .collect();
        let (scheme, rest) = split_scheme(&cleaned)?;
        let rest = rest.trim_start_matches(['/', '\\']);
        let authority_end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_port(host_port)?;
        let host = parse_host(host)?;
        let port = port.filter(|&p| p != if scheme == "http" { 80 } else { 443 });

        let (before_fragment, fragment) = match tail.split_once('#') {
            Some((before, _)) => (before, true),
            None => (tail, false),
        };
        let (raw_path, raw_query) = match before_fragment.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (before_fragment, None),
        };
        Ok(HttpUrl {
            scheme,
            host,
            port,
            path: resolve_path(raw_path),
            query: raw_query.map(|q| encode(q, in_query_encode_set)),
            fragment,
        })
    }
}

/// The scheme, lower-cased and checked, and what follows its `:`.
fn split_scheme(input: &str) -> Result<(&'static str, &str), UrlError> {
    let not_absolute = || {
        UrlError::Invalid(
            "not an absolute URL: it does not start with a scheme such as https://".into(),
        )
    };
    let colon = input.find(':').ok_or_else(not_absolute)?;
    let scheme = &input[..colon];
    let mut bytes = scheme.bytes();
    let well_formed = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !well_formed {
        return Err(not_absolute());
    }
    let rest = &input[colon + 1..];
    if scheme.eq_ignore_ascii_case("http") {
        Ok(("http", rest))
    } else if scheme.eq_ignore_ascii_case("https") {
        Ok(("https", rest))
    } else {
        Err(UrlError::Scheme(scheme.to_ascii_lowercase()))
    }
}

/// The host text and the port, if one is written (`host:` alone has none).
fn split_port(host_port: &str) -> Result<(&str, Option<u16>), UrlError> {
    let colon = if host_port.starts_with('[') {
        let close = host_port
            .find(']')
            .ok_or_else(|| UrlError::Invalid("an IPv6 host's '[' has no closing ']'".into()))?;
        match host_port[close + 1..].chars().next() {
            None => return Ok((host_port, None)),
            Some(':') => close + 1,
            Some(_) => {
                return Err(UrlError::Invalid(
                    "only ':port' may follow an IPv6 host's ']'".into(),
                ));
            }
        }
    } else {
        match host_port.find(':') {
            Some(at) => at,
            None => return Ok((host_port, None)),
        }
    };
    let (host, port) = (&host_port[..colon], &host_port[colon + 1..]);
    if port.is_empty() {
        return Ok((host, None));
    }
    let invalid = || UrlError::Invalid(format!("port {port:?} is not a number from 0 to 65535"));
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let digits = port.trim_start_matches('0');
    if digits.len() > 5 {
        return Err(invalid());
    }
    let value: u32 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| invalid())?
    };
    u16::try_from(value)
        .map(|p| (host, Some(p)))
        .map_err(|_| invalid())
}

/// The host as it is keyed: percent-decoded, ASCII, lower-case, checked.
fn parse_host(host: &str) -> Result<String, UrlError> {
    if host.is_empty() {
        return Err(UrlError::Invalid("the URL has no host".into()));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        let address: Ipv6Addr = inner
            .parse()
            .map_err(|_| UrlError::Invalid(format!("{inner:?} is not an IPv6 address")))?;
        return Ok(format!("[{}]", ipv6_text(&address)));
    }
    let decoded = percent_decode(host.as_bytes());
    let decoded = String::from_utf8(decoded)
        .map_err(|_| UrlError::Invalid("the host's percent-encoding is not UTF-8".into()))?;
    let ascii = if decoded.is_ascii() {
        decoded.to_ascii_lowercase()
    } else {
        unicode_host(&decoded)?
    };
    if let Some(bad) = ascii.chars().find(|&c| is_forbidden_in_domain(c)) {
        return Err(UrlError::Invalid(format!(
            "the host may not contain {bad:?}"
        )));
    }
    if ascii.is_empty() {
        return Err(UrlError::Invalid("the URL has no host".into()));
    }
    if ends_in_number(&ascii) {
        return ipv4_text(&ascii);
    }
    Ok(ascii)
}

#[cfg(feature = "idna")]
fn unicode_host(host: &str) -> Result<String, UrlError> {
    idna::domain_to_ascii_cow(host.as_bytes(), idna::AsciiDenyList::URL)
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| {
            UrlError::Invalid(format!("{host:?} is not a valid international domain name"))
        })
}

#[cfg(not(feature = "idna"))]
fn unicode_host(host: &str) -> Result<String, UrlError> {
    Err(UrlError::Invalid(format!(
        "the host {host:?} is not ASCII; write it in its punycode (xn--) form"
    )))
}

/// The WHATWG forbidden domain code points.
fn is_forbidden_in_domain(c: char) -> bool {
    c <= ' '
        || c == '\u{7f}'
        || matches!(
            c,
            '#' | '%' | '/' | ':' | '<' | '>' | '?' | '@' | '[' | '\\' | ']' | '^' | '|'
        )
}

/// Whether the last label (a trailing dot aside) is a number, which makes the host an IPv4
/// address in the standard's reading.
fn ends_in_number(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or(host);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    last.strip_prefix("0x")
        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A dotted-decimal IPv4 address, as written, checked.
fn ipv4_text(host: &str) -> Result<String, UrlError> {
    let parts: Vec<&str> = host.strip_suffix('.').unwrap_or(host).split('.').collect();
    let valid = parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|v| v <= 255)
        });
    if valid {
        Ok(parts.join("."))
    } else {
        Err(UrlError::Invalid(format!(
            "{host:?} ends in a number, so it must be an IPv4 address written as four decimal numbers from 0 to 255, e.g. 192.0.2.1"
        )))
    }
}

/// The standard's IPv6 serialisation: lower-case hex, the first longest run of two or more
/// zero pieces written `::`.
fn ipv6_text(address: &Ipv6Addr) -> String {
    let pieces = address.segments();
    let mut best: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < pieces.len() {
        if pieces[i] == 0 {
            let start = i;
            while i < pieces.len() && pieces[i] == 0 {
                i += 1;
            }
            let len = i - start;
            if len > 1 && best.is_none_or(|(_, l)| len > l) {
                best = Some((start, len));
            }
        } else {
            i += 1;
        }
    }
    let mut out = String::with_capacity(39);
    let mut i = 0;
    while i < pieces.len() {
        if let Some((start, len)) = best
            && i == start
        {
            out.push_str(if i == 0 { "::" } else { ":" });
            i += len;
            continue;
        }
        let _ = write!(out, "{:x}", pieces[i]);
        if i + 1 < pieces.len() {
            out.push(':');
        }
        i += 1;
    }
    out
}

/// The path with `\` read as `/`, dot segments resolved and what may not stand literally
/// percent-encoded; `/` when empty.
fn resolve_path(raw: &str) -> String {
    let raw = raw.strip_prefix(['/', '\\']).unwrap_or(raw);
    let mut segments: Vec<String> = Vec::new();
    let mut parts = raw.split(['/', '\\']).peekable();
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        if is_double_dot(segment) {
            segments.pop();
            if last {
                segments.push(String::new());
            }
        } else if is_single_dot(segment) {
            if last {
                segments.push(String::new());
            }
        } else {
            segments.push(encode(segment, in_path_encode_set));
        }
    }
    let mut out = String::with_capacity(raw.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn is_single_dot(segment: &str) -> bool {
    segment == "." || segment.eq_ignore_ascii_case("%2e")
}

fn is_double_dot(segment: &str) -> bool {
    matches!(
        segment.to_ascii_lowercase().as_str(),
        ".." | ".%2e" | "%2e." | "%2e%2e"
    )
}

/// The path percent-encode set (C0 controls, space, `"`, `#`, `<`, `>`, `?`, `` ` ``, `{`, `}`).
fn in_path_encode_set(b: u8) -> bool {
    in_query_encode_set(b) && b != b'\'' || matches!(b, b'?' | b'`' | b'{' | b'}')
}

/// The special-query percent-encode set (C0 controls, space, `"`, `#`, `<`, `>`, `'`).
fn in_query_encode_set(b: u8) -> bool {
    b <= b' ' || b >= 0x7f || matches!(b, b'"' | b'#' | b'<' | b'>' | b'\'')
}

/// `text` with every byte in the set percent-encoded (non-ASCII bytes always are).
fn encode(text: &str, in_set: fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if in_set(b) {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let hex = |at: usize| input.get(at).and_then(|b| char::from(*b).to_digit(16));
        match (input[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(input: &str) -> (String, Option<u16>, String, Option<String>) {
        let url = HttpUrl::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        (url.host, url.port, url.path, url.query)
    }

    #[test]
    fn reads_the_parts_browsers_read() {
        assert_eq!(
            parts(" HTTPS://u:p@Vote.EXAMPLE:0443/a/./b/../c?x=1#f\n"),
            (
                "vote.example".into(),
                None,
                "/a/c".into(),
                Some("x=1".into())
            )
        );
        assert_eq!(parts("http:\\\\vote.example\\a\\b").2, "/a/b");
        assert_eq!(parts("http:vote.example").2, "/");
        assert_eq!(parts("http://vote.example:/a").1, None);
        assert_eq!(parts("http://vote.example:8080/a").1, Some(8080));
        assert_eq!(parts("https://vote.example/a/b/..").2, "/a/");
        assert_eq!(parts("https://vote.example/a/%2E").2, "/a/");
        assert_eq!(
            parts("https://vote.example/a b/é?q=it's \"x\"").2,
            "/a%20b/%C3%A9"
        );
        assert_eq!(
            parts("https://vote.example/?q=it's \"x\"").3,
            Some("q=it%27s%20%22x%22".into())
        );
        assert_eq!(parts("https://vo%54e.example/").0, "vote.example");
    }

    #[test]
    fn ip_hosts_take_their_standard_form() {
        assert_eq!(parts("http://[0:0:0:0:0:0:0:1]:80/").0, "[::1]");
        assert_eq!(
            parts("http://[2001:DB8:0:0:1:0:0:1]/").0,
            "[2001:db8::1:0:0:1]"
        );
        assert_eq!(parts("http://[1:0:0:2:0:0:0:3]/").0, "[1:0:0:2::3]");
        assert_eq!(parts("http://192.0.2.1./").0, "192.0.2.1");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (input, says) in [
            ("/api/elections", "does not start with a scheme"),
            ("http://", "no host"),
            ("http://user@/a", "no host"),
            ("http://vote.example:99999/", "port \"99999\""),
            ("http://vote.example:8o/", "port \"8o\""),
            ("http://[::1/", "closing ']'"),
            ("http://[::1]x/", "only ':port'"),
            ("http://[zz::1]/", "not an IPv6 address"),
            ("http://vote<x>.example/", "may not contain '<'"),
            ("http://vote%20x.example/", "may not contain ' '"),
            ("http://0x7f.1/", "four decimal numbers"),
            ("http://127.000.0.1/", "four decimal numbers"),
            ("http://1.2.3.256/", "four decimal numbers"),
            ("http://%ff.example/", "not UTF-8"),
        ] {
            match HttpUrl::parse(input) {
                Err(UrlError::Invalid(reason)) => {
                    assert!(reason.contains(says), "{input:?}: {reason}")
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
        assert_eq!(
            HttpUrl::parse("javascript:alert(1)"),
            Err(UrlError::Scheme("javascript".into()))
        );
        assert_eq!(
            HttpUrl::parse("FTP://vote.example/"),
            Err(UrlError::Scheme("ftp".into()))
        );
    }

    #[cfg(feature = "idna")]
    #[test]
    fn unicode_hosts_become_punycode() {
        assert_eq!(parts("https://BÜCHER.example/").0, "xn--bcher-kva.example");
        assert_eq!(
            parts("https://b%C3%BCcher.example/").0,
            "xn--bcher-kva.example"
        );
    }

    #[cfg(not(feature = "idna"))]
    #[test]
    fn unicode_hosts_ask_for_punycode() {
        let err = HttpUrl::parse("https://bücher.example/").unwrap_err();
        assert!(err.to_string().contains("xn--"), "{err}");
    }
}
