//! The answer a client gets when no origin region could serve it and no stale copy exists:
//! a short JSON or HTML body (chosen by `Accept`) that says what happened and when to retry.

/// A rendered error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    /// HTTP status (502 or 503).
    pub status: u16,
    /// `Content-Type` of `body`.
    pub content_type: &'static str,
    /// `Retry-After` in seconds.
    pub retry_after: u64,
    /// The body.
    pub body: String,
}

/// Whether the client prefers HTML to JSON (`text/html` listed before, or instead of,
/// `application/json`).
pub fn prefers_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let position = |needle: &str| {
        accept.split(',').position(|item| {
            item.trim().starts_with(needle)
                && !item.contains("q=0,")
                && !item.trim_end().ends_with("q=0")
        })
    };
    match (position("text/html"), position("application/json")) {
        (Some(html), Some(json)) => html < json,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Renders an unavailability error for a request with this `Accept` header.
pub fn unavailable(status: u16, retry_after: u64, reason: &str, accept: Option<&str>) -> ErrorPage {
    if prefers_html(accept) {
        let reason = escape_html(reason);
        ErrorPage {
            status,
            content_type: "text/html; charset=utf-8",
            retry_after,
            body: format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Temporarily unavailable</title></head>\
                 <body><h1>Temporarily unavailable</h1><p>{reason}</p><p>Please try again in {retry_after} seconds.</p></body></html>"
            ),
        }
    } else {
        let body = serde_json::json!({
            "error": "unavailable",
            "message": reason,
            "retry_after": retry_after,
        });
        ErrorPage {
            status,
            content_type: "application/json",
            retry_after,
            body: body.to_string(),
        }
    }
}

fn escape_html(text: &str) -> String {
    text.chars()
        .fold(String::with_capacity(text.len()), |mut out, c| {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_and_api_clients_get_json() {
        let html = unavailable(
            503,
            5,
            "All regions are down <now>",
            Some("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert_eq!(html.content_type, "text/html; charset=utf-8");
        assert!(html.body.contains("&lt;now&gt;"));
        let json = unavailable(502, 5, "origin said \"no\"", Some("application/json"));
        assert_eq!(json.content_type, "application/json");
        assert!(json.body.contains("\\\"no\\\""));
        assert_eq!(
            unavailable(503, 1, "x", None).content_type,
            "application/json"
        );
        assert!(!prefers_html(Some("application/json, text/html")));
        assert!(!prefers_html(Some("text/html;q=0")));
    }
}
