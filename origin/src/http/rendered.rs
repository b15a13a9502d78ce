//! A page as the cache holds it: ready to send. The status, a header block made once when the
//! page is rendered (Content-Type, Cache-Control, Cache-Tag, ETag) and the body as `Bytes`.
//! Answering from it copies reference-counted handles into the response; only the headers
//! that differ per request (how it was found, timings, the trace) are made then. The block is
//! also kept as the bytes it is on the wire, which the connection front copies as they are.
//!
//! In L2 it is stored as JSON (`status`, `content_type`, `cache_control`, `cache_tag`, `body`)
//! and the header block is made again when another process reads it.

use std::sync::Arc;

use axum::body::Body;
use axum::body::Bytes;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::headers::HeaderSource;

/// `Cache-Tag`, the CDN's purge handle.
pub const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// Headers a response carries besides the block: at most this many are added per request.
const PER_REQUEST_HEADERS: usize = 12;

/// A page with its header block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Wire", try_from = "Wire")]
pub struct Rendered {
    status: StatusCode,
    head: Arc<[(HeaderName, HeaderValue)]>,
    /// `head` as sent: a `name: value\r\n` line per header, Content-Type's first.
    wire: Bytes,
    /// The length of Content-Type's line at the start of `wire` (a 304 leaves it out).
    content_type_line: usize,
    etag: HeaderValue,
    body: Bytes,
}

/// The stored form.
#[derive(Serialize, Deserialize)]
struct Wire {
    status: u16,
    content_type: String,
    cache_control: String,
    cache_tag: Option<String>,
    body: String,
}

/// Why a stored page could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The status is not an HTTP status.
    #[error("status {0} is not an HTTP status")]
    Status(u16),
    /// A header value has characters a header cannot carry.
    #[error("the {0} value cannot be sent as a header")]
    Header(&'static str),
}

impl Rendered {
    /// Renders `body` with its headers. `cache_tag` is the `Cache-Tag` value when the page may
    /// be purged by tag from the CDN.
    pub fn new(
        status: u16,
        content_type: &str,
        cache_control: &str,
        cache_tag: Option<&str>,
        body: String,
    ) -> Result<Self, RenderError> {
        let status = StatusCode::from_u16(status).map_err(|_| RenderError::Status(status))?;
        let value =
            |what, text: &str| HeaderValue::from_str(text).map_err(|_| RenderError::Header(what));
        let body = Bytes::from(body);
        let etag = etag_of(&body);
        let mut head = vec![
            (CONTENT_TYPE, value("Content-Type", content_type)?),
            (CACHE_CONTROL, value("Cache-Control", cache_control)?),
            (ETAG, etag.clone()),
        ];
        if let Some(tags) = cache_tag {
            head.push((CACHE_TAG, value("Cache-Tag", tags)?));
        }
        let mut wire = Vec::with_capacity(256);
        let mut content_type_line = 0;
        for (name, value) in &head {
            super::wire::push_header(&mut wire, name.as_str(), value.as_bytes());
            if name == CONTENT_TYPE {
                content_type_line = wire.len();
            }
        }
        Ok(Self {
            status,
            head: head.into(),
            wire: wire.into(),
            content_type_line,
            etag,
            body,
        })
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The header block, in the order it is sent.
    pub fn head(&self) -> &[(HeaderName, HeaderValue)] {
        &self.head
    }

    /// Whether the answer to a request with `request` headers is `304 Not Modified`: the page
    /// is a 200 and the request's `If-None-Match` names it.
    pub fn not_modified(&self, request: &(impl HeaderSource + ?Sized)) -> bool {
        self.status == StatusCode::OK && self.matches(request)
    }

    /// The header block as sent, for the page or (`not_modified`) for a 304, which carries
    /// no Content-Type.
    pub fn wire_block(&self, not_modified: bool) -> &[u8] {
        if not_modified {
            &self.wire[self.content_type_line..]
        } else {
            &self.wire
        }
    }

    /// The response to a request with `request` headers: the page, or `304 Not Modified` with
    /// the same block and no body when the request's `If-None-Match` names this page.
    pub fn respond(&self, request: &(impl HeaderSource + ?Sized)) -> Response {
        let not_modified = self.not_modified(request);
        let mut response = if not_modified {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            let mut response = Response::new(Body::from(self.body.clone()));
            *response.status_mut() = self.status;
            response
        };
        let headers = response.headers_mut();
        headers.reserve(self.head.len() + PER_REQUEST_HEADERS);
        for (name, value) in self.head.iter() {
            if not_modified && name == CONTENT_TYPE {
                continue;
            }
            headers.insert(name.clone(), value.clone());
        }
        response
    }

    /// Whether `If-None-Match` in `request` names this page (weak comparison, as RFC 9110
    /// §13.1.2 asks of it, and `*`).
    fn matches(&self, request: &(impl HeaderSource + ?Sized)) -> bool {
        let mine = strip_weak(self.etag.as_bytes());
        request
            .values_of(IF_NONE_MATCH.as_str())
            .flat_map(|v| v.split(|b| *b == b','))
            .map(|tag| tag.trim_ascii())
            .any(|tag| tag == b"*" || strip_weak(tag) == mine)
    }
}

fn strip_weak(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// A strong validator of `body`: the first 16 hex digits of its SHA-256, quoted. The same in
/// every process, so a revalidation may land on any of them.
fn etag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    let text = format!("\"{:016x}\"", u64::from_be_bytes(first));
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

impl From<Rendered> for Wire {
    fn from(page: Rendered) -> Self {
        let text = |name: &HeaderName| {
            page.head
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.to_str().ok())
                .map(str::to_string)
        };
        Self {
            status: page.status.as_u16(),
            content_type: text(&CONTENT_TYPE).unwrap_or_default(),
            cache_control: text(&CACHE_CONTROL).unwrap_or_default(),
            cache_tag: text(&CACHE_TAG),
            body: String::from_utf8_lossy(&page.body).into_owned(),
        }
    }
}

impl TryFrom<Wire> for Rendered {
    type Error = RenderError;

    fn try_from(wire: Wire) -> Result<Self, Self::Error> {
        Self::new(
            wire.status,
            &wire.content_type,
            &wire.cache_control,
            wire.cache_tag.as_deref(),
            wire.body,
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn page() -> Rendered {
        Rendered::new(
            200,
            "text/html; charset=utf-8",
            "public, max-age=0, s-maxage=30",
            Some("election:1,page:election:1"),
            "<p>ballot</p>".into(),
        )
        .expect("renders")
    }

    fn with(name: HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).expect("value"));
        headers
    }

    fn etag(page: &Rendered) -> String {
        page.etag.to_str().expect("ascii").to_string()
    }

    #[test]
    fn the_block_is_made_once_and_sent_as_it_is() {
        let page = page();
        let response = page.respond(&HeaderMap::new());
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=0, s-maxage=30");
        assert_eq!(headers[CACHE_TAG], "election:1,page:election:1");
        let tag = etag(&page);
        assert!(
            tag.len() == 18 && tag.starts_with('"') && tag.ends_with('"'),
            "{tag}"
        );
        assert_eq!(headers[ETAG], tag.as_str());
        assert_eq!(page.body().as_ref(), b"<p>ballot</p>");
    }

    #[test]
    fn the_wire_block_is_the_header_block_as_sent_and_a_304_leaves_out_the_type() {
        let page = page();
        let tag = etag(&page);
        let expected = format!(
            "content-type: text/html; charset=utf-8\r\ncache-control: public, max-age=0, s-maxage=30\r\netag: {tag}\r\ncache-tag: election:1,page:election:1\r\n"
        );
        assert_eq!(page.wire_block(false), expected.as_bytes());
        let without_type = expected
            .split_once("\r\n")
            .map(|(_, rest)| rest)
            .expect("two lines");
        assert_eq!(page.wire_block(true), without_type.as_bytes());
        assert!(page.not_modified(&with(IF_NONE_MATCH, &tag)));
        assert!(!page.not_modified(&HeaderMap::new()));
    }

    #[test]
    fn the_etag_follows_the_body_only() {
        let other = Rendered::new(200, "text/html", "no-store", None, "<p>ballot</p>".into())
            .expect("renders");
        assert_eq!(etag(&page()), etag(&other), "same body, same validator");
        let changed = Rendered::new(200, "text/html", "no-store", None, "<p>other</p>".into())
            .expect("renders");
        assert_ne!(etag(&page()), etag(&changed));
    }

    #[test]
    fn if_none_match_naming_the_page_gets_304_without_a_body() {
        let page = page();
        let tag = etag(&page);
        for sent in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            "*".to_string(),
        ] {
            let response = page.respond(&with(IF_NONE_MATCH, &sent));
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{sent}");
            assert_eq!(response.headers()[ETAG], tag.as_str());
            assert!(response.headers().get(CONTENT_TYPE).is_none());
            assert_eq!(
                response.headers()[CACHE_CONTROL],
                "public, max-age=0, s-maxage=30"
            );
        }
        for sent in ["\"other\"", "", "W/\"\""] {
            let response = page.respond(&with(IF_NONE_MATCH, sent));
            assert_eq!(response.status(), StatusCode::OK, "{sent:?}");
        }
    }

    #[test]
    fn a_not_found_page_is_never_answered_with_304() {
        let missing =
            Rendered::new(404, "application/json", "no-store", None, "{}".into()).expect("renders");
        let response = missing.respond(&with(IF_NONE_MATCH, "*"));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_stored_form_reads_back_to_the_same_page() {
        let page = page();
        let stored = serde_json::to_string(&page).expect("encodes");
        assert!(
            stored.contains("\"cache_tag\":\"election:1,page:election:1\""),
            "{stored}"
        );
        let back: Rendered = serde_json::from_str(&stored).expect("decodes");
        assert_eq!(back, page);
        let untagged =
            Rendered::new(200, "application/json", "no-store", None, "[]".into()).expect("renders");
        let back: Rendered =
            serde_json::from_str(&serde_json::to_string(&untagged).expect("encodes"))
                .expect("decodes");
        assert!(
            back.respond(&HeaderMap::new())
                .headers()
                .get(CACHE_TAG)
                .is_none()
        );
    }

    #[test]
    fn stored_forms_that_cannot_be_sent_are_refused_with_the_reason() {
        let bad_status =
            r#"{"status":1000,"content_type":"a","cache_control":"b","cache_tag":null,"body":""}"#;
        let e = serde_json::from_str::<Rendered>(bad_status).expect_err("refused");
        assert!(e.to_string().contains("status 1000"), "{e}");
        let bad_header = r#"{"status":200,"content_type":"a\nb","cache_control":"b","cache_tag":null,"body":""}"#;
        let e = serde_json::from_str::<Rendered>(bad_header).expect_err("refused");
        assert!(e.to_string().contains("Content-Type"), "{e}");
    }
}
