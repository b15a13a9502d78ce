//! Canonical cache keys: one request maps to one key, the same on the edge, L1 and L2.
//!
//! A key is `surge:v1:<METHOD> <canonical-url>[ <dimension>=<value>…]`, for example
//! `surge:v1:GET https://vote.example/api/elections/7?lang=fr enc=br`. Only the URL and the
//! declared variant dimensions feed it; every other request header is unkeyed and can never
//! change it. [`CacheKey::hashed`] gives a fixed-length digest for stores and logs that limit key length
//! (Surge's own L2 keeps the readable key, so pattern purges can match it).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::uri::{HttpUrl, UrlError};

/// Prefix of every key; bumping the version orphans all old entries at once.
pub const KEY_PREFIX: &str = "surge:v1:";
/// What every request key starts with: the prefix and the method both GET and HEAD key as.
pub const REQUEST_KEY_PREFIX: &str = "surge:v1:GET ";

/// Longest URL accepted for keying (bytes), matching Cloudflare's request-URL limit.
pub const MAX_URL_LEN: usize = 16 * 1024;

/// Tracking parameters dropped by default (`utm_*` is a prefix rule).
pub const DEFAULT_DROPPED_PARAMS: [&str; 5] = ["utm_*", "fbclid", "gclid", "msclkid", "mc_eid"];

/// Why a request could not be keyed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The URL does not parse as an absolute URL.
    #[error(
        "invalid URL {input:?}: {reason}; send an absolute http(s) URL such as https://host/path"
    )]
    InvalidUrl {
        /// The (possibly shortened) input.
        input: String,
        /// What the parser objected to.
        reason: String,
    },
    /// The URL uses a scheme other than http or https.
    #[error("unsupported scheme {0:?}: only http and https URLs can be cached")]
    UnsupportedScheme(String),
    /// The URL is longer than [`MAX_URL_LEN`].
    #[error("URL is {0} bytes long; the limit is {MAX_URL_LEN} bytes")]
    TooLong(usize),
    /// Only GET and HEAD responses are ever cached, so only they have keys.
    #[error("method {0:?} is not cacheable: only GET and HEAD have cache keys")]
    UncacheableMethod(String),
}

impl KeyError {
    /// A stable code for the error kind (`invalid_url`, `unsupported_scheme`, `too_long`,
    /// `uncacheable_method`).
    pub fn kind(&self) -> &'static str {
        match self {
            KeyError::InvalidUrl { .. } => "invalid_url",
            KeyError::UnsupportedScheme(_) => "unsupported_scheme",
            KeyError::TooLong(_) => "too_long",
            KeyError::UncacheableMethod(_) => "uncacheable_method",
        }
    }
}

/// A query-parameter rule: an exact name, or a prefix when it ends in `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ParamRule {
    name: String,
    prefix: bool,
}

impl ParamRule {
    /// Parses `name` or `prefix*`; names are matched case-insensitively.
    pub fn new(rule: &str) -> Result<Self, String> {
        let (name, prefix) = match rule.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (rule, false),
        };
        if name.is_empty() {
            return Err(format!(
                "parameter rule {rule:?} is empty; write a name like \"fbclid\" or a prefix like \"utm_*\""
            ));
        }
        if let Some(bad) = name.chars().find(|c| !is_param_name_char(*c)) {
            return Err(format!(
                "parameter rule {rule:?} contains {bad:?}; use letters, digits, '-', '_' or '.', with an optional trailing '*'"
            ));
        }
        Ok(Self {
            name: name.to_ascii_lowercase(),
            prefix,
        })
    }

    /// Whether a (normalised) parameter name falls under this rule.
    pub fn matches(&self, param: &str) -> bool {
        let param = param.as_bytes();
        let name = self.name.as_bytes();
        if self.prefix {
            param.len() >= name.len() && param[..name.len()].eq_ignore_ascii_case(name)
        } else {
            param.eq_ignore_ascii_case(name)
        }
    }
}

fn is_param_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

impl TryFrom<String> for ParamRule {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<ParamRule> for String {
    fn from(rule: ParamRule) -> Self {
        if rule.prefix {
            format!("{}*", rule.name)
        } else {
            rule.name
        }
    }
}

/// A declared variant dimension: a request header that is allowed to split the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Variant {
    /// `Accept-Encoding` reduced to one class: `br`, `gzip` or `identity`.
    Encoding,
    /// `Accept-Language` reduced to one of the supported languages, else the default.
    Language {
        /// Supported language tags, lower case (`en`, `fr`, `pt-br`).
        supported: Vec<String>,
        /// The language used when none of the supported ones is acceptable.
        default: String,
    },
}

impl Variant {
    /// Checks the declaration; the error names what to fix.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Variant::Encoding => Ok(()),
            Variant::Language { supported, default } => {
                if supported.is_empty() {
                    return Err("language variant needs at least one supported language".into());
                }
                for lang in supported.iter().chain(std::iter::once(default)) {
                    let ok = !lang.is_empty()
                        && lang.len() <= 35
                        && lang
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                    if !ok {
                        return Err(format!(
                            "language {lang:?} is not a lower-case language tag such as \"en\" or \"pt-br\""
                        ));
                    }
                }
                if !supported.contains(default) {
                    return Err(format!(
                        "default language {default:?} must be one of the supported languages {supported:?}"
                    ));
                }
                Ok(())
            }
        }
    }

    /// The request header this dimension reads (lower case).
    pub fn header(&self) -> &'static str {
        match self {
            Variant::Encoding => "accept-encoding",
            Variant::Language { .. } => "accept-language",
        }
    }

    fn dimension<H: HeaderLookup + ?Sized>(&self, headers: &H) -> (&'static str, String) {
        match self {
            Variant::Encoding => (
                "enc",
                encoding_class(headers.header(self.header()).as_deref()).to_string(),
            ),
            Variant::Language { supported, default } => (
                "lang",
                pick_language(headers.header(self.header()).as_deref(), supported, default)
                    .to_string(),
            ),
        }
    }
}

/// How requests are keyed: which query parameters are dropped and which variants split keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Query parameters removed before keying (tracking parameters).
    #[serde(default = "default_dropped")]
    pub drop_params: Vec<ParamRule>,
    /// Variant dimensions added to the key, in this order.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

fn default_dropped() -> Vec<ParamRule> {
    DEFAULT_DROPPED_PARAMS
        .iter()
        .filter_map(|rule| ParamRule::new(rule).ok())
        .collect()
}

impl KeyConfig {
    /// The request headers the key reads, in the order of the declared variants.
    pub fn variant_headers(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.variants.iter().map(Variant::header)
    }
}

impl Default for KeyConfig {
    fn default() -> Self {
        Self {
            drop_params: default_dropped(),
            variants: Vec::new(),
        }
    }
}

/// Case-insensitive access to request headers; whatever the platform's header type is.
pub trait HeaderLookup {
    /// All values of the header `name` (lower case), joined with `", "`, or `None`.
    fn header(&self, name: &str) -> Option<String>;
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderLookup for [(K, V)] {
    fn header(&self, name: &str) -> Option<String> {
        let mut values = self
            .iter()
            .filter(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref());
        let first = values.next()?;
        Some(values.fold(first.to_string(), |mut acc, v| {
            acc.push_str(", ");
            acc.push_str(v);
            acc
        }))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderLookup for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<String> {
        self.as_slice().header(name)
    }
}

/// A canonical cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CacheKey(String);

impl CacheKey {
    /// Keys a request. `method` must be GET or HEAD (they share one entry).
    pub fn new<H: HeaderLookup + ?Sized>(
        config: &KeyConfig,
        method: &str,
        url: &str,
        headers: &H,
    ) -> Result<Self, KeyError> {
        if !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("HEAD") {
            return Err(KeyError::UncacheableMethod(shorten(method)));
        }
        Ok(Self::for_canonical_url(
            config,
            &CanonicalUrl::parse(config, url)?,
            headers,
        ))
    }

    /// Keys a GET/HEAD request whose URL is already canonical under the same `config`
    /// (callers that needed the canonical URL anyway skip canonicalising twice).
    pub fn for_canonical_url<H: HeaderLookup + ?Sized>(
        config: &KeyConfig,
        canonical: &CanonicalUrl,
        headers: &H,
    ) -> Self {
        let mut key = String::with_capacity(canonical.len() + 32);
        key.push_str(REQUEST_KEY_PREFIX);
        key.push_str(canonical);
        for variant in &config.variants {
            let (name, value) = variant.dimension(headers);
            key.push(' ');
            key.push_str(name);
            key.push('=');
            key.push_str(&value);
        }
        Self(key)
    }

    /// Every key a canonical URL can have: one per combination of variant values (so a purge
    /// by URL reaches all of them). With no variants, just the one key.
    pub fn all_variants(config: &KeyConfig, canonical: &CanonicalUrl) -> Vec<Self> {
        let mut keys = vec![format!("{REQUEST_KEY_PREFIX}{}", canonical.as_str())];
        for variant in &config.variants {
            let (name, values): (&str, Vec<String>) = match variant {
                Variant::Encoding => (
                    "enc",
                    [
                        EncodingClass::Br,
                        EncodingClass::Gzip,
                        EncodingClass::Identity,
                    ]
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                ),
                Variant::Language { supported, default } => {
                    let mut all = supported.clone();
                    if !all.contains(default) {
                        all.push(default.clone());
                    }
                    ("lang", all)
                }
            };
            keys = keys
                .iter()
                .flat_map(|k| values.iter().map(move |v| format!("{k} {name}={v}")))
                .collect();
        }
        keys.into_iter().map(Self).collect()
    }

    /// The key of an application object that is not an HTTP response (`ballot:7`), in the
    /// same versioned namespace as request keys but never equal to one (request keys hold
    /// `GET <url>`).
    pub fn data(name: &str) -> Self {
        Self(format!("{KEY_PREFIX}data {name}"))
    }

    /// The full, readable key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` is in the form of a cache key (rather than, say, a URL).
    pub fn is_key(text: &str) -> bool {
        text.starts_with(KEY_PREFIX)
    }

    /// The canonical URL inside the key.
    pub fn url(&self) -> &str {
        let rest = self.0.strip_prefix(REQUEST_KEY_PREFIX).unwrap_or(&self.0);
        rest.split(' ').next().unwrap_or(rest)
    }

    /// The key as a URL, for caches keyed by URL (the Workers Cache API): the canonical URL,
    /// with the variant dimensions, if any, in a final `surge-vary` query parameter
    /// (`…?a=1&surge-vary=enc-br.lang-fr`).
    pub fn cache_url(&self) -> String {
        let rest = self.0.strip_prefix(REQUEST_KEY_PREFIX).unwrap_or(&self.0);
        let mut parts = rest.split(' ');
        let mut url = parts.next().unwrap_or(rest).to_string();
        let dims: Vec<String> = parts.map(|d| d.replace('=', "-")).collect();
        if !dims.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("surge-vary=");
            url.push_str(&dims.join("."));
        }
        url
    }

    /// A fixed-length digest, `surge:v1:h:` + 64 hex digits of SHA-256, for stores and logs that
    /// limit key length.
    pub fn hashed(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        let mut out = String::with_capacity(KEY_PREFIX.len() + 2 + 64);
        out.push_str(KEY_PREFIX);
        out.push_str("h:");
        for byte in digest {
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xF)] as char);
        }
        out
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A canonical absolute URL: lower-case scheme and host (IDNA to punycode, trailing dot
/// removed), default port dropped, dot-segments resolved, percent-encoding normalised, dropped
/// parameters removed, parameters sorted by name (stable for repeats), fragment and user-info
/// removed. It reads as the canonical text (`Deref<Target = str>`) and knows where its path
/// and query are, so no caller parses it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalUrl {
    text: String,
    path_at: usize,
    query_at: Option<usize>,
}

impl CanonicalUrl {
    /// Canonicalises `input` under `config`.
    pub fn parse(config: &KeyConfig, input: &str) -> Result<Self, KeyError> {
        canonical_url(config, input)
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        &self.text[..self.path_at]
    }

    /// The path, starting with `/`.
    pub fn path(&self) -> &str {
        &self.text[self.path_at..self.query_at.unwrap_or(self.text.len())]
    }

    /// The query without its `?`, when there is one.
    pub fn query(&self) -> Option<&str> {
        self.query_at.map(|at| &self.text[at + 1..])
    }

    /// This URL with only the query parameters named in `names` (in their canonical order).
    pub fn keeping(&self, names: &[String]) -> CanonicalUrl {
        let Some(query) = self.query() else {
            return self.clone();
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
                names.iter().any(|n| n == name)
            })
            .collect();
        let end = self.query_at.unwrap_or(self.text.len());
        let mut text = self.text[..end].to_string();
        let query_at = (!kept.is_empty()).then(|| {
            let at = text.len();
            text.push('?');
            text.push_str(&kept.join("&"));
            at
        });
        CanonicalUrl {
            text,
            path_at: self.path_at,
            query_at,
        }
    }
}

impl std::ops::Deref for CanonicalUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for CanonicalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Canonicalises an absolute http(s) URL (see [`CanonicalUrl`]).
pub fn canonical_url(config: &KeyConfig, input: &str) -> Result<CanonicalUrl, KeyError> {
    if input.len() > MAX_URL_LEN {
        return Err(KeyError::TooLong(input.len()));
    }
    let url = HttpUrl::parse(input).map_err(|e| match e {
        UrlError::Scheme(scheme) => KeyError::UnsupportedScheme(shorten(&scheme)),
        UrlError::Invalid(reason) => KeyError::InvalidUrl {
            input: shorten(input),
            reason,
        },
    })?;
    let host = url.host.strip_suffix('.').unwrap_or(&url.host);
    if host.is_empty() {
        return Err(KeyError::InvalidUrl {
            input: shorten(input),
            reason: "the URL has no host".into(),
        });
    }

    let mut out = String::with_capacity(input.len() + 16);
    out.push_str(url.scheme);
    out.push_str("://");
    out.push_str(host);
    if let Some(port) = url.port {
        out.push(':');
        out.push_str(&port.to_string());
    }
    let path_at = out.len();
    normalise_percent(&url.path, is_path_literal, &mut out);
    let mut query_at = None;

    if let Some(query) = &url.query {
        let mut params: Vec<(String, Option<String>)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (pair, None),
            };
            let mut norm_name = String::with_capacity(name.len());
            normalise_percent(name, is_query_literal, &mut norm_name);
            if config.drop_params.iter().any(|r| r.matches(&norm_name)) {
                continue;
            }
            let norm_value = value.map(|v| {
                let mut s = String::with_capacity(v.len());
                normalise_percent(v, is_query_literal, &mut s);
                s
            });
            params.push((norm_name, norm_value));
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        if !params.is_empty() {
            query_at = Some(out.len());
        }
        for (i, (name, value)) in params.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(name);
            if let Some(value) = value {
                out.push('=');
                out.push_str(value);
            }
        }
    }
    Ok(CanonicalUrl {
        text: out,
        path_at,
        query_at,
    })
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn is_path_literal(b: u8) -> bool {
    is_sub_delim(b) || matches!(b, b':' | b'@' | b'/')
}

fn is_query_literal(b: u8) -> bool {
    (is_sub_delim(b) && b != b'&') || matches!(b, b':' | b'@' | b'/' | b'?')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_encoded(b: u8, out: &mut String) {
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xF)] as char);
}

/// Decodes percent-encoded unreserved bytes, upper-cases the hex of the rest, and encodes any
/// byte that may not appear literally. A stray `%` becomes `%25`.
fn normalise_percent(input: &str, literal: fn(u8) -> bool, out: &mut String) {
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let decoded = match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(&h), Some(&l)) => hex_value(h).zip(hex_value(l)).map(|(h, l)| h << 4 | l),
                _ => None,
            };
            match decoded {
                Some(v) if is_unreserved(v) => out.push(v as char),
                Some(v) => push_encoded(v, out),
                None => {
                    out.push_str("%25");
                    i += 1;
                    continue;
                }
            }
            i += 3;
        } else {
            if is_unreserved(b) || literal(b) {
                out.push(b as char);
            } else {
                push_encoded(b, out);
            }
            i += 1;
        }
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The compression class a client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingClass {
    /// Brotli.
    Br,
    /// Gzip.
    Gzip,
    /// No compression.
    Identity,
}

impl fmt::Display for EncodingClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodingClass::Br => "br",
            EncodingClass::Gzip => "gzip",
            EncodingClass::Identity => "identity",
        })
    }
}

/// Most list entries looked at in an `Accept-*` header; the rest are ignored.
const MAX_LIST_ITEMS: usize = 64;

fn quality<'a>(params: impl Iterator<Item = &'a str>) -> f32 {
    for param in params {
        let param = param.trim();
        if let Some(q) = param
            .strip_prefix("q=")
            .or_else(|| param.strip_prefix("Q="))
        {
            return q
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(0.0);
        }
    }
    1.0
}

/// Reduces `Accept-Encoding` to br, else gzip, else identity (q=0 means refused).
pub fn encoding_class(accept_encoding: Option<&str>) -> EncodingClass {
    let Some(header) = accept_encoding else {
        return EncodingClass::Identity;
    };
    let (mut br, mut gzip, mut star) = (None, None, None);
    for item in header.split(',').take(MAX_LIST_ITEMS) {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = quality(parts);
        if coding.eq_ignore_ascii_case("br") {
            br = Some(q);
        } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q);
        } else if coding == "*" {
            star = Some(q);
        }
    }
    let acceptable = |explicit: Option<f32>| explicit.or(star).is_some_and(|q| q > 0.0);
    if acceptable(br) {
        EncodingClass::Br
    } else if acceptable(gzip) {
        EncodingClass::Gzip
    } else {
        EncodingClass::Identity
    }
}

/// Picks the supported language the client prefers most, else `default`.
pub fn pick_language<'a>(
    accept_language: Option<&str>,
    supported: &'a [String],
    default: &'a str,
) -> &'a str {
    let Some(header) = accept_language else {
        return default;
    };
    let mut wanted: Vec<(String, f32)> = header
        .split(',')
        .take(MAX_LIST_ITEMS)
        .filter_map(|item| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim().to_ascii_lowercase();
            let q = quality(parts);
            (!tag.is_empty() && q > 0.0).then_some((tag, q))
        })
        .collect();
    wanted.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (tag, _) in &wanted {
        for lang in supported {
            let prefix_match = tag.len() > lang.len()
                && tag.starts_with(lang.as_str())
                && tag.as_bytes()[lang.len()] == b'-';
            if tag == lang || prefix_match {
                return lang;
            }
        }
    }
    default
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> String {
        let headers: [(&str, &str); 0] = [];
        CacheKey::new(&KeyConfig::default(), "GET", url, &headers[..])
            .map(|k| k.as_str().to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn a_url_over_the_limit_is_refused_before_parsing() {
        let base = "https://vote.example/";
        let at_limit = format!("{base}{}", "a".repeat(MAX_URL_LEN - base.len()));
        assert!(canonical_url(&KeyConfig::default(), &at_limit).is_ok());
        let over = format!("{at_limit}a");
        assert_eq!(
            canonical_url(&KeyConfig::default(), &over).map(|_| ()),
            Err(KeyError::TooLong(MAX_URL_LEN + 1))
        );
    }

    #[test]
    fn equivalent_urls_share_a_key() {
        assert_eq!(
            key("HTTPS://Vote.Example:443/a/./b/../c?b=2&a=1&utm_source=x#top"),
            "surge:v1:GET https://vote.example/a/c?a=1&b=2"
        );
    }

    #[test]
    fn all_variants_covers_every_key_a_request_can_produce() {
        let cfg = KeyConfig {
            variants: vec![
                Variant::Encoding,
                Variant::Language {
                    supported: vec!["en".into(), "fr".into()],
                    default: "en".into(),
                },
            ],
            ..KeyConfig::default()
        };
        let url = "https://vote.example/a";
        let canonical = CanonicalUrl::parse(&cfg, url).expect("valid URL");
        let all = CacheKey::all_variants(&cfg, &canonical);
        assert_eq!(all.len(), 6);
        for (enc, lang) in [("br", "fr"), ("gzip, deflate", "de"), ("", "en")] {
            let headers = [("accept-encoding", enc), ("accept-language", lang)];
            let key = CacheKey::new(&cfg, "GET", url, &headers[..]).expect("valid URL");
            assert!(all.contains(&key), "{key} missing from {all:?}");
        }
        assert!(!all.contains(&CacheKey::data("ballot:1")));
        assert_eq!(
            CacheKey::data("ballot:1").as_str(),
            "surge:v1:data ballot:1"
        );
        let plain = CacheKey::all_variants(&KeyConfig::default(), &canonical);
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].as_str(), "surge:v1:GET https://vote.example/a");
    }

    #[test]
    fn head_shares_the_get_entry_and_post_has_no_key() {
        let headers: [(&str, &str); 0] = [];
        let cfg = KeyConfig::default();
        let get = CacheKey::new(&cfg, "GET", "http://a.example/", &headers[..]);
        let head = CacheKey::new(&cfg, "head", "http://a.example/", &headers[..]);
        assert_eq!(get, head);
        assert!(matches!(
            CacheKey::new(&cfg, "POST", "http://a.example/", &headers[..]),
            Err(KeyError::UncacheableMethod(_))
        ));
    }

    #[test]
    fn percent_encoding_is_normalised() {
        assert_eq!(
            key("http://a.example/%7euser/%2f/%e2%82%ac?q=%41%2b"),
            "surge:v1:GET http://a.example/~user/%2F/%E2%82%AC?q=A%2B"
        );
    }

    #[test]
    fn variants_split_the_key_but_other_headers_do_not() {
        let cfg = KeyConfig {
            variants: vec![
                Variant::Encoding,
                Variant::Language {
                    supported: vec!["en".into(), "fr".into()],
                    default: "en".into(),
                },
            ],
            ..KeyConfig::default()
        };
        let plain = CacheKey::new(
            &cfg,
            "GET",
            "https://a.example/x",
            &[
                ("Accept-Encoding", "gzip, br"),
                ("Accept-Language", "fr-CA"),
            ][..],
        )
        .map(|k| k.to_string());
        assert_eq!(
            plain.as_deref(),
            Ok("surge:v1:GET https://a.example/x enc=br lang=fr")
        );
        let poisoned = CacheKey::new(
            &cfg,
            "GET",
            "https://a.example/x",
            &[
                ("Accept-Encoding", "gzip, br"),
                ("Accept-Language", "fr-CA"),
                ("X-Forwarded-Host", "evil.example"),
                ("X-Original-URL", "/admin"),
                ("X-Rewrite-URL", "/admin"),
                ("X-Forwarded-Scheme", "http"),
                ("X-HTTP-Method-Override", "POST"),
            ][..],
        )
        .map(|k| k.to_string());
        assert_eq!(plain, poisoned);
    }

    #[test]
    fn encoding_class_honours_q_zero_and_wildcards() {
        assert_eq!(encoding_class(Some("br;q=0, gzip")), EncodingClass::Gzip);
        assert_eq!(encoding_class(Some("*")), EncodingClass::Br);
        assert_eq!(encoding_class(Some("*;q=0, gzip")), EncodingClass::Gzip);
        assert_eq!(encoding_class(Some("deflate")), EncodingClass::Identity);
        assert_eq!(encoding_class(None), EncodingClass::Identity);
        assert_eq!(encoding_class(Some("br;q=abc")), EncodingClass::Identity);
    }

    #[test]
    fn language_prefers_highest_quality_supported_tag() {
        let supported = vec!["en".to_string(), "fr".to_string(), "pt-br".to_string()];
        assert_eq!(
            pick_language(Some("de, fr;q=0.5, en;q=0.8"), &supported, "en"),
            "en"
        );
        assert_eq!(pick_language(Some("pt-BR"), &supported, "en"), "pt-br");
        assert_eq!(pick_language(Some("pt"), &supported, "fr"), "fr");
        assert_eq!(pick_language(Some("english"), &supported, "fr"), "fr");
    }

    #[test]
    fn hashed_keys_have_a_fixed_length() {
        let a = CacheKey(format!("{KEY_PREFIX}GET http://a/"));
        let b = CacheKey(format!("{KEY_PREFIX}GET http://a/{}", "x".repeat(5000)));
        assert_eq!(a.hashed().len(), b.hashed().len());
        assert_ne!(a.hashed(), b.hashed());
        assert!(a.hashed().starts_with("surge:v1:h:"));
    }

    #[test]
    fn param_rules_reject_bad_names() {
        assert!(ParamRule::new("").is_err());
        assert!(ParamRule::new("*").is_err());
        assert!(ParamRule::new("a b").is_err());
        assert!(ParamRule::new("utm_*").is_ok_and(|r| r.matches("UTM_Campaign")));
    }

    #[test]
    fn the_url_part_of_a_key_is_recoverable() {
        let headers: [(&str, &str); 0] = [];
        let cfg = KeyConfig {
            variants: vec![Variant::Encoding],
            ..KeyConfig::default()
        };
        let k = CacheKey::new(&cfg, "GET", "https://a.example/x?y=1", &headers[..]);
        assert_eq!(k.as_ref().map(CacheKey::url), Ok("https://a.example/x?y=1"));
        assert_eq!(
            k.as_ref().map(CacheKey::cache_url).as_deref(),
            Ok("https://a.example/x?y=1&surge-vary=enc-identity")
        );
        let plain = CacheKey::new(
            &KeyConfig::default(),
            "GET",
            "https://a.example/x",
            &headers[..],
        );
        assert_eq!(
            plain.map(|k| k.cache_url()).as_deref(),
            Ok("https://a.example/x")
        );
    }

    #[test]
    fn a_canonical_url_knows_its_origin_path_and_query() {
        let config = KeyConfig::default();
        let c = CanonicalUrl::parse(
            &config,
            "HTTPS://Vote.Example:443/a/./b/../c?z=1&utm_source=x&a=2#f",
        )
        .expect("valid");
        assert_eq!(c.as_str(), "https://vote.example/a/c?a=2&z=1");
        assert_eq!(
            (c.origin(), c.path(), c.query()),
            ("https://vote.example", "/a/c", Some("a=2&z=1"))
        );
        let bare =
            CanonicalUrl::parse(&config, "http://vote.example:8080?utm_source=x").expect("valid");
        assert_eq!(
            (bare.origin(), bare.path(), bare.query()),
            ("http://vote.example:8080", "/", None)
        );
        assert_eq!(REQUEST_KEY_PREFIX, format!("{KEY_PREFIX}GET "));
        let key = CacheKey::for_canonical_url(&config, &c, &Vec::<(&str, &str)>::new());
        assert!(CacheKey::is_key(key.as_str()) && !CacheKey::is_key(&c));
        assert_eq!(key.url(), c.as_str());
    }

    #[test]
    fn a_url_keeps_only_the_parameters_named() {
        let config = KeyConfig::default();
        let url = CanonicalUrl::parse(
            &config,
            "https://vote.example/a?z=1&r=77&page=2&utm_source=x",
        )
        .expect("valid");
        assert_eq!(url.as_str(), "https://vote.example/a?page=2&r=77&z=1");
        let kept = url.keeping(&["page".to_string()]);
        assert_eq!(kept.as_str(), "https://vote.example/a?page=2");
        assert_eq!((kept.path(), kept.query()), ("/a", Some("page=2")));
        let none = url.keeping(&[]);
        assert_eq!(none.as_str(), "https://vote.example/a");
        assert_eq!((none.path(), none.query()), ("/a", None));
    }
}
