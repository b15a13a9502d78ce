//! Server-rendered HTML that works without JavaScript: the election page with its ballot
//! form, the results page (refreshing itself), the login page — all identical for everyone,
//! so cacheable at the edge like the JSON they mirror — and the voter's own receipt page
//! (private, never stored). Small, self-contained (inline CSS, no scripts), every dynamic
//! value HTML-escaped.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::extract::{Routed, election_id, voter};
use super::respond::see_other;
use super::respond::{Page, cached, cached_election};
use super::state::AppState;
use crate::domain::model::{Ballot, Results};
use crate::domain::store::{ElectionStore, StoreError};
use crate::http::error::ApiError;
use surge_shared::admin::ErrorBody;

/// Escapes text for HTML element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}\
h1{font-size:1.6rem}li{margin:.4rem 0}.bar{background:#005ea2;height:.8rem}small{color:#555}\
label{display:block;margin:.6rem 0}input[type=text]{font-size:1rem;padding:.3rem;width:100%}\
button{font-size:1rem;padding:.4rem 1.2rem;margin-top:.6rem}.error{color:#b50909}";

fn layout(title: &str, body: &str) -> String {
    layout_with(title, "", body)
}

fn layout_with(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{head}\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(title)
    )
}

/// An HTML answer that is never stored (`private, no-store`).
fn private_html(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

/// A page with a title and one message.
pub fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    private_html(
        status,
        layout(
            title,
            &format!(
                "<h1>{}</h1><p class=\"error\">{}</p>",
                escape(title),
                escape(message)
            ),
        ),
    )
}

/// What `error` says, as a page with the same status (and `Retry-After`, if any).
pub fn error_page(error: &ApiError) -> Response {
    let mut page = message_page(
        error.status(),
        "Your vote was not recorded",
        &error.to_string(),
    );
    copy_retry_after(error, &mut page);
    page
}

fn copy_retry_after(error: &ApiError, page: &mut Response) {
    if let Some(seconds) = error.retry_after() {
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
}

const LOGIN_FORM: &str = "<form method=\"post\" action=\"/api/login\">\
<label>Voter id <input type=\"text\" name=\"voter_id\" required maxlength=\"64\" autocomplete=\"username\"></label>\
<label>Voting code <input type=\"text\" name=\"code\" required maxlength=\"40\" autocomplete=\"one-time-code\" spellcheck=\"false\"></label>\
<button type=\"submit\">Sign in</button></form>";

fn render_login(error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" id=\"error\">{}</p>", escape(e))
    });
    layout(
        "Sign in to vote",
        &format!(
            "<h1>Sign in to vote</h1>{error}<p>Enter your voter id and the voting code you were sent.</p>{LOGIN_FORM}"
        ),
    )
}

/// The login page again, saying why the last attempt failed.
pub fn login_page_with_error(error: &ApiError) -> Response {
    let mut page = private_html(error.status(), render_login(Some(&error.to_string())));
    copy_retry_after(error, &mut page);
    page
}

/// `GET /login`: the login form (the same for everyone; cached like the other pages).
#[utoipa::path(get, path = "/login", tag = "pages",
    responses((status = 200, description = "The login form", content_type = "text/html", body = String), (status = 304, description = "not modified (If-None-Match)")))]
pub async fn login(State(state): State<Arc<AppState>>, request: Routed) -> Response {
    cached(&state, request, || async {
        Ok(Page::html(200, render_login(None)))
    })
    .await
}

fn when(t: time::OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.to_string())
}

fn not_found(id: i64) -> Page {
    Page::html(
        404,
        layout(
            "Election not found",
            &format!("<h1>Election not found</h1><p>There is no election {id}.</p>"),
        ),
    )
}

/// The election page.
pub fn render_election(ballot: &Ballot) -> String {
    let e = &ballot.election;
    let mut body = format!(
        "<h1 id=\"title\">{}</h1><p><small>Voting opens {} and closes {}.</small></p>\
         <h2>Ballot</h2><p><a id=\"login-link\" href=\"/login\">Sign in with your voting code</a> \
         to vote; after voting, <a href=\"/elections/{}/receipt\">your receipt</a> shows what was recorded.</p>\
         <form id=\"ballot\" method=\"post\" action=\"/api/elections/{}/votes\"><ol id=\"options\">",
        escape(&e.title),
        when(e.opens_at),
        when(e.closes_at),
        e.id,
        e.id,
    );
    for o in &ballot.options {
        let _ = write!(
            body,
            "<li data-option=\"{}\"><label><input type=\"radio\" name=\"option_id\" value=\"{}\" required> {}</label></li>",
            o.id,
            o.id,
            escape(&o.label)
        );
    }
    let _ = write!(
        body,
        "</ol><button type=\"submit\">Cast my vote</button></form>\
         <p><a id=\"results-link\" href=\"/elections/{}/results\">Live results</a></p>",
        e.id
    );
    layout(&e.title, &body)
}

/// The results page.
pub fn render_results(title: &str, results: &Results) -> String {
    let mut body = format!(
        "<h1>{} — results</h1><p id=\"total\">{} vote{} counted</p><ul id=\"tallies\">",
        escape(title),
        results.total,
        if results.total == 1 { "" } else { "s" }
    );
    for t in &results.tallies {
        let share = if results.total > 0 {
            t.votes * 100 / results.total
        } else {
            0
        };
        let _ = write!(
            body,
            "<li data-option=\"{}\">{}: <strong>{}</strong><div class=\"bar\" style=\"width:{share}%\"></div></li>",
            t.option_id,
            escape(&t.label),
            t.votes
        );
    }
    let _ = write!(
        body,
        "</ul><p><small>Counted at {}.</small></p>",
        when(results.counted_at)
    );
    // Refreshes itself from the (micro-cached) results: no script, no per-viewer cost.
    layout_with(
        &format!("{title} — results"),
        "<meta http-equiv=\"refresh\" content=\"5\">",
        &body,
    )
}

/// The voter's receipt page.
pub fn render_receipt(title: &str, receipt: &crate::domain::model::Receipt, label: &str) -> String {
    layout(
        &format!("{title} — your receipt"),
        &format!(
            "<h1>Your vote is recorded</h1><p>{}</p><dl><dt>Your choice</dt><dd id=\"choice\">{}</dd>\
             <dt>Receipt</dt><dd id=\"receipt\"><code>{}</code></dd><dt>Recorded at</dt><dd>{}</dd></dl>\
             <p>Keep the receipt: it shows your vote was counted. <a href=\"/elections/{}/results\">Live results</a></p>",
            escape(title),
            escape(label),
            escape(&receipt.receipt),
            when(receipt.cast_at),
            receipt.election_id
        ),
    )
}

/// `GET /elections/{id}/receipt`: the signed-in voter's own vote (private, never stored);
/// without a session, a redirect to the login page.
#[utoipa::path(get, path = "/elections/{id}/receipt", tag = "pages", params(("id" = i64, Path, description = "The election (a positive integer)")), security(("session" = [])),
    responses((status = 200, description = "The voter's receipt", content_type = "text/html", body = String),
        (status = 303, description = "no session: on to the login page"),
        (status = 404, description = "no such election, or no vote in it", content_type = "text/html", body = String),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
pub async fn receipt(
    State(state): State<Arc<AppState>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Ok(voter_id) = voter(&state, &headers) else {
        return Ok(see_other("/login"));
    };
    let id = election_id(&raw)?;
    let unavailable = |e: StoreError| super::respond::unavailable(&e);
    let Some(ballot) = state.store.ballot(id).await.map_err(unavailable)? else {
        return Ok(message_page(
            StatusCode::NOT_FOUND,
            "Election not found",
            &format!("There is no election {id}."),
        ));
    };
    Ok(
        match state
            .store
            .vote_of(id, voter_id)
            .await
            .map_err(unavailable)?
        {
            Some(r) => {
                let label = ballot
                    .options
                    .iter()
                    .find(|o| o.id == r.option_id)
                    .map_or_else(|| r.option_id.to_string(), |o| o.label.clone());
                private_html(
                    StatusCode::OK,
                    render_receipt(&ballot.election.title, &r, &label),
                )
            }
            None => message_page(
                StatusCode::NOT_FOUND,
                "No vote recorded",
                &format!("You have not voted in {} yet.", ballot.election.title),
            ),
        },
    )
}

/// Serves one election's HTML page rendered by `render`, through the cache; the HTML 404
/// when it is missing.
async fn page<F, Fut>(state: Arc<AppState>, raw: &str, request: Routed, render: F) -> Response
where
    F: Fn(Arc<dyn ElectionStore>, i64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<String>, StoreError>> + Send + 'static,
{
    let id = election_id(raw).unwrap_or(0);
    let view = move |store, id| {
        let rendered = render(store, id);
        async move { Ok(rendered.await?.map(|html| Page::html(200, html))) }
    };
    cached_election(&state, id, request, view, not_found).await
}

/// `GET /elections/{id}`
#[utoipa::path(get, path = "/elections/{id}", tag = "pages", params(("id" = i64, Path, description = "The election (a positive integer)")),
    responses((status = 200, description = "The ballot page", content_type = "text/html", body = String), (status = 304, description = "not modified (If-None-Match)"),
        (status = 404, description = "no such election", content_type = "text/html", body = String), (status = 503, description = "the database is unavailable", content_type = "text/html", body = String)))]
pub async fn election(
    State(state): State<Arc<AppState>>,
    Path(raw): Path<String>,
    request: Routed,
) -> Response {
    page(state, &raw, request, |store, id| async move {
        Ok(store.ballot(id).await?.map(|b| render_election(&b)))
    })
    .await
}

/// `GET /elections/{id}/results`
#[utoipa::path(get, path = "/elections/{id}/results", tag = "pages", params(("id" = i64, Path, description = "The election (a positive integer)")),
    responses((status = 200, description = "The results page", content_type = "text/html", body = String), (status = 304, description = "not modified (If-None-Match)"),
        (status = 404, description = "no such election", content_type = "text/html", body = String), (status = 503, description = "the database is unavailable", content_type = "text/html", body = String)))]
pub async fn results(
    State(state): State<Arc<AppState>>,
    Path(raw): Path<String>,
    request: Routed,
) -> Response {
    page(state, &raw, request, |store, id| async move {
        let Some(election) = store.election(id).await? else {
            return Ok(None);
        };
        Ok(store
            .results(id)
            .await?
            .map(|r| render_results(&election.title, &r)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::store::demo_ballot;

    #[test]
    fn dynamic_text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        let mut ballot = demo_ballot(time::OffsetDateTime::UNIX_EPOCH);
        ballot.election.title = "<img src=x onerror=alert(1)>".into();
        let html = render_election(&ballot);
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }
}
