//! Server-rendered HTML: an election's page and its results page. Small, self-contained
//! (inline CSS, no scripts), every dynamic value HTML-escaped, cacheable at the edge like the
//! JSON they mirror.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use super::handlers::election_id;
use super::model::{Ballot, Results};
use super::respond::{Page, cached};
use super::store::{ElectionStore, StoreError};
use crate::state::AppState;

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
h1{font-size:1.6rem}li{margin:.4rem 0}.bar{background:#005ea2;height:.8rem}small{color:#555}";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(title)
    )
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
        "<h1 id=\"title\">{}</h1><p><small>Voting opens {} and closes {}.</small></p><h2>Ballot</h2><ol id=\"options\">",
        escape(&e.title),
        when(e.opens_at),
        when(e.closes_at),
    );
    for o in &ballot.options {
        let _ = write!(
            body,
            "<li data-option=\"{}\">{}</li>",
            o.id,
            escape(&o.label)
        );
    }
    let _ = write!(
        body,
        "</ol><p><a id=\"results-link\" href=\"/elections/{}/results\">Live results</a></p>",
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
    layout(&format!("{title} — results"), &body)
}

/// Serves the page `render` makes for one election, through the cache; an HTML 404 when the
/// id is not an election.
async fn page<F, Fut>(
    state: Arc<AppState>,
    raw: &str,
    uri: Uri,
    headers: HeaderMap,
    render: F,
) -> Response
where
    F: Fn(Arc<dyn ElectionStore>, i64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<String>, StoreError>> + Send + 'static,
{
    let id = election_id(raw).unwrap_or(0);
    let store = state.store.clone();
    let render = Arc::new(render);
    cached(&state, &uri, &headers, move || {
        let (store, render) = (store.clone(), render.clone());
        async move {
            if id == 0 {
                return Ok(not_found(0));
            }
            Ok(match render(store, id).await? {
                Some(html) => Page::html(200, html),
                None => not_found(id),
            })
        }
    })
    .await
}

/// `GET /elections/{id}`
pub async fn election(
    State(state): State<Arc<AppState>>,
    Path(raw): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    page(state, &raw, uri, headers, |store, id| async move {
        Ok(store.ballot(id).await?.map(|b| render_election(&b)))
    })
    .await
}

/// `GET /elections/{id}/results`
pub async fn results(
    State(state): State<Arc<AppState>>,
    Path(raw): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    page(state, &raw, uri, headers, |store, id| async move {
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
    use crate::app::store::demo_ballot;

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
