//! The JSON API: elections, ballots and results (cached), login, votes (never cached,
//! committed on the primary), and a voter's own vote (private, reads their own write).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use surge_shared::Tag;
use time::OffsetDateTime;

use super::extract::{Routed, client_ip, election_id, voter};
use super::pages;
use super::respond::{Page, cached, cached_election, no_store, see_other, unavailable};
use super::state::AppState;
use crate::cache::options::EntryOptions;
use crate::domain::model::{
    Ballot, Cast, Election, LoginRequest, NewVote, Receipt, Results, VoteRequest, validate_voter_id,
};
use crate::domain::session::SessionError;
use crate::domain::store::{ElectionStore, StoreError};
use crate::domain::voters::code::VotingCode;
use crate::http::error::ApiError;
use surge_shared::admin::ErrorBody;

/// `GET /api/elections`
#[utoipa::path(get, path = "/api/elections", tag = "elections",
    responses((status = 200, description = "Every election", body = Vec<Election>), (status = 304, description = "not modified (If-None-Match)"), (status = 503, description = "the database is unavailable; retry after Retry-After", body = ErrorBody)))]
pub async fn elections(State(state): State<Arc<AppState>>, request: Routed) -> Response {
    let store = state.store.clone();
    cached(&state, request, move || {
        let store = store.clone();
        async move { Ok(Page::json(&store.elections().await?)) }
    })
    .await
}

/// Serves one election's JSON view of `fetch`, through the cache; 404 when it is missing.
async fn by_id<T, F, Fut>(
    state: Arc<AppState>,
    raw: &str,
    request: Routed,
    fetch: F,
) -> Result<Response, ApiError>
where
    T: Serialize,
    F: Fn(Arc<dyn ElectionStore>, i64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<T>, StoreError>> + Send + 'static,
{
    let id = election_id(raw)?;
    let view = move |store, id| {
        let fetched = fetch(store, id);
        async move { Ok(fetched.await?.map(|value| Page::json(&value))) }
    };
    let missing = |id| Page::not_found(&format!("election {id}"));
    Ok(cached_election(&state, id, request, view, missing).await)
}

/// `GET /api/elections/{id}`
#[utoipa::path(get, path = "/api/elections/{id}", tag = "elections", params(("id" = i64, Path, description = "The election (a positive integer)")),
    responses((status = 200, body = Election), (status = 304, description = "not modified (If-None-Match)"), (status = 404, description = "no such election", body = ErrorBody), (status = 503, description = "the database is unavailable; retry after Retry-After", body = ErrorBody)))]
pub async fn election(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Routed,
) -> Result<Response, ApiError> {
    by_id(state, &id, request, |store, id| async move {
        store.election(id).await
    })
    .await
}

/// `GET /api/elections/{id}/ballot`
#[utoipa::path(get, path = "/api/elections/{id}/ballot", tag = "elections", params(("id" = i64, Path, description = "The election (a positive integer)")),
    responses((status = 200, body = Ballot), (status = 304, description = "not modified (If-None-Match)"), (status = 404, description = "no such election", body = ErrorBody), (status = 503, description = "the database is unavailable; retry after Retry-After", body = ErrorBody)))]
pub async fn ballot(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Routed,
) -> Result<Response, ApiError> {
    by_id(state, &id, request, |store, id| async move {
        store.ballot(id).await
    })
    .await
}

/// `GET /api/elections/{id}/results`
#[utoipa::path(get, path = "/api/elections/{id}/results", tag = "elections", params(("id" = i64, Path, description = "The election (a positive integer)")),
    responses((status = 200, body = Results), (status = 304, description = "not modified (If-None-Match)"), (status = 404, description = "no such election", body = ErrorBody), (status = 503, description = "the database is unavailable; retry after Retry-After", body = ErrorBody)))]
pub async fn results(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Routed,
) -> Result<Response, ApiError> {
    by_id(state, &id, request, |store, id| async move {
        store.results(id).await
    })
    .await
}

/// What `POST /api/login` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginReply {
    /// Who is logged in.
    pub voter_id: String,
    /// The elections they may vote in.
    pub elections: Vec<i64>,
    /// When the session ends.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

fn parse_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !json {
        return Err(ApiError::bad(
            "content-type",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    surge_shared::admin::parse_json(body).map_err(ApiError::from)
}

/// `POST /api/login` with `{"voter_id": "…", "code": "…"}` (JSON), or the same fields from
/// the login page's form: checks the voting code (in constant time, the same 401 for a wrong
/// code and an unknown voter, attempts throttled per voter-and-network and per network) and
/// sets the signed `auth_token` cookie. A form gets a redirect to the voter's ballot, or the
/// login page again with what went wrong.
#[utoipa::path(post, path = "/api/login", tag = "voters",
    request_body(content((LoginRequest = "application/json"), (LoginRequest = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "Logged in; `Set-Cookie` carries the session", body = LoginReply),
        (status = 303, description = "a form: on to the voter's ballot"),
        (status = 400, body = ErrorBody), (status = 401, description = "wrong voter id or code (the same answer for both)", body = ErrorBody),
        (status = 403, description = "a form sent from another site"), (status = 413, description = "the body is larger than the route accepts", body = ErrorBody),
        (status = 429, description = "too many attempts for this voter from this network, or from this network; see Retry-After", body = ErrorBody), (status = 503, description = "the database is unavailable; retry after Retry-After", body = ErrorBody)))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !is_form(&headers) {
        let request: LoginRequest = parse_body(&headers, &body)?;
        let ip = client_ip(&state, &headers, &extensions);
        let (cookie, reply) = authenticate(&state, ip, request).await?;
        return with_cookie(no_store(Json(reply).into_response()), &cookie);
    }
    if !same_origin(&headers) {
        return Ok(cross_site());
    }
    let fields = form_fields(&body);
    let request = LoginRequest {
        voter_id: fields.get("voter_id").cloned().unwrap_or_default(),
        code: fields.get("code").cloned().unwrap_or_default(),
    };
    let ip = client_ip(&state, &headers, &extensions);
    Ok(match authenticate(&state, ip, request).await {
        Ok((cookie, reply)) => {
            let next = reply
                .elections
                .first()
                .map_or_else(|| "/login".to_string(), |e| format!("/elections/{e}"));
            with_cookie(see_other(&next), &cookie)?
        }
        Err(e) => pages::login_page_with_error(&e),
    })
}

/// Checks a login and issues the session: the `Set-Cookie` value and the reply.
async fn authenticate(
    state: &AppState,
    ip: IpAddr,
    request: LoginRequest,
) -> Result<(String, LoginReply), ApiError> {
    validate_voter_id(&request.voter_id).map_err(|m| ApiError::bad("voter_id", m))?;
    let code =
        VotingCode::parse(&request.code).map_err(|e| ApiError::bad("code", e.to_string()))?;
    state
        .login_throttle
        .attempt(&request.voter_id, ip)
        .map_err(ApiError::TooManyLogins)?;
    let credential = state
        .store
        .credential(request.voter_id.clone())
        .await
        .map_err(|e| unavailable(&e))?;
    let stored = credential.as_ref().map(|c| c.code_hash.as_slice());
    if !state.voter_codes.verify(&request.voter_id, &code, stored) {
        return Err(ApiError::Session(SessionError::BadCredentials));
    }
    state.login_throttle.succeeded(&request.voter_id, ip);
    let now = OffsetDateTime::now_utc();
    let now_s = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let token = state.sessions.issue(&request.voter_id, now_s);
    let cookie = state
        .sessions
        .set_cookie(&token, state.config.domain.secure_cookies);
    let reply = LoginReply {
        voter_id: request.voter_id,
        elections: credential.map(|c| c.elections).unwrap_or_default(),
        expires_at: now + state.sessions.ttl(),
    };
    Ok((cookie, reply))
}

fn with_cookie(mut response: Response, cookie: &str) -> Result<Response, ApiError> {
    let value =
        HeaderValue::from_str(cookie).map_err(|e| ApiError::Internal(format!("cookie: {e}")))?;
    response.headers_mut().insert(header::SET_COOKIE, value);
    Ok(response)
}

/// Whether the body is an HTML form (`application/x-www-form-urlencoded`).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// A form body's fields (the last value of each name).
fn form_fields(body: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Refuses a form posted from another site: a browser says where a request comes from in
/// `Sec-Fetch-Site`, or (older ones) in `Origin`, which must then name this host. A request
/// with neither is not from a browser form and passes (it carries no ambient authority a
/// cross-site page could borrow).
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (get("sec-fetch-site"), get("origin")) {
        (Some(site), _) => matches!(site, "same-origin" | "none"),
        (None, Some(origin)) => {
            let host = get("host").unwrap_or_default();
            url::Url::parse(origin).is_ok_and(|u| {
                let with_port = match u.port() {
                    Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
                    None => u.host_str().unwrap_or_default().to_string(),
                };
                with_port.eq_ignore_ascii_case(host)
            })
        }
        (None, None) => true,
    }
}

fn cross_site() -> Response {
    pages::message_page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was sent from another site. Open the page on this site and send it again.",
    )
}

/// The ballot, through the cache (tagged so election and ballot purges reach it).
async fn ballot_for_vote(state: &Arc<AppState>, id: i64) -> Result<Option<Ballot>, ApiError> {
    let tags: Vec<Tag> = [format!("ballot:{id}"), format!("election:{id}")]
        .iter()
        .filter_map(|t| Tag::new(t).ok())
        .collect();
    let options = EntryOptions::default()
        .ttl(std::time::Duration::from_secs(60))
        .tagged(tags);
    let store = state.store.clone();
    let key = surge_shared::CacheKey::data(&format!("ballot:{id}"));
    let lookup = state
        .cache
        .get_or_set(key.as_str(), &options, move || {
            let store = store.clone();
            async move { store.ballot(id).await }
        })
        .await;
    match lookup {
        Ok(found) => Ok(found.value),
        Err(crate::cache::CacheError::Factory(m)) => Err(unavailable(
            &crate::domain::store::StoreError::Unavailable(m),
        )),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

fn new_receipt() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        ApiError::Internal(format!(
            "no randomness for a receipt ({e}); the vote was not cast"
        ))
    })?;
    Ok(format!("r-{}", hex::encode(bytes)))
}

/// A vote's answer body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VoteReply {
    /// `recorded` (201) or `already_recorded` (200, the same vote sent again).
    status: &'static str,
    /// The receipt.
    #[serde(flatten)]
    receipt: Receipt,
}

/// `POST /api/elections/{id}/votes` with `{"option_id": n}` (JSON) or the ballot page's form,
/// and the login cookie. A form gets a redirect to the receipt page (or to the login page
/// without a session), or a page saying what went wrong.
#[utoipa::path(post, path = "/api/elections/{id}/votes", tag = "voters", params(("id" = i64, Path, description = "The election (a positive integer)")),
    security(("session" = [])),
    request_body(content((VoteRequest = "application/json"), (VoteRequest = "application/x-www-form-urlencoded"))),
    responses((status = 201, description = "Recorded", body = VoteReply), (status = 200, description = "The same vote again: its receipt", body = VoteReply),
        (status = 303, description = "a form: on to the receipt (or the login page without a session)"),
        (status = 400, body = ErrorBody), (status = 401, description = "no valid session cookie", body = ErrorBody),
        (status = 403, description = "not registered for this election, or a form from another site", body = ErrorBody), (status = 404, description = "no such election", body = ErrorBody),
        (status = 409, description = "already voted otherwise, or voting is closed", body = ErrorBody), (status = 413, description = "the body is larger than the route accepts", body = ErrorBody),
        (status = 422, description = "the option is not on the ballot", body = ErrorBody), (status = 503, description = "the database is unavailable; retry after Retry-After", body = ErrorBody)))]
pub async fn vote(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !is_form(&headers) {
        let voter_id = voter(&state, &headers)?;
        let id = election_id(&id)?;
        let request: VoteRequest = parse_body(&headers, &body)?;
        let (status, word, receipt) = cast(&state, id, voter_id, request.option_id).await?;
        let reply = VoteReply {
            status: word,
            receipt,
        };
        return Ok(no_store((status, Json(&reply)).into_response()));
    }
    if !same_origin(&headers) {
        return Ok(cross_site());
    }
    let Ok(voter_id) = voter(&state, &headers) else {
        return Ok(see_other("/login"));
    };
    let id = election_id(&id)?;
    let Some(option_id) = form_fields(&body)
        .get("option_id")
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return Ok(pages::message_page(
            StatusCode::BAD_REQUEST,
            "Choose an option",
            &format!(
                "Go back to the ballot and choose one option before you vote: /elections/{id}"
            ),
        ));
    };
    Ok(match cast(&state, id, voter_id, option_id).await {
        Ok(_)
        | Err(ApiError::Conflict {
            code: "already_voted",
            ..
        }) => see_other(&format!("/elections/{id}/receipt")),
        Err(e) => pages::error_page(&e),
    })
}

/// Casts a vote after checking the ballot (cached) and the voting window: the status, the
/// word for the reply and the receipt.
async fn cast(
    state: &Arc<AppState>,
    id: i64,
    voter_id: String,
    option_id: i32,
) -> Result<(StatusCode, &'static str, crate::domain::model::Receipt), ApiError> {
    let ballot = ballot_for_vote(state, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("election {id} does not exist")))?;
    if !ballot.options.iter().any(|o| o.id == option_id) {
        let valid: Vec<String> = ballot.options.iter().map(|o| o.id.to_string()).collect();
        return Err(ApiError::Unprocessable {
            field: Some("option_id".into()),
            message: format!(
                "option {option_id} is not on election {id}'s ballot; choose one of {}",
                valid.join(", ")
            ),
        });
    }
    let now = OffsetDateTime::now_utc();
    if !ballot.election.is_open(now) {
        return Err(ApiError::Conflict {
            code: "voting_closed",
            message: format!(
                "voting in election {id} is open from {} to {}",
                ballot.election.opens_at, ballot.election.closes_at
            ),
        });
    }
    let outcome = state
        .store
        .cast(NewVote {
            election_id: id,
            voter_id,
            option_id,
            receipt: new_receipt()?,
        })
        .await
        .map_err(|e| unavailable(&e))?;
    match outcome {
        Cast::Recorded(r) => {
            if let Ok(tag) = Tag::new(&format!("results:{id}")) {
                state.vote_purges.mark(tag);
            }
            Ok((StatusCode::CREATED, "recorded", r))
        }
        Cast::AlreadyRecorded(r) => Ok((StatusCode::OK, "already_recorded", r)),
        Cast::Conflict => Err(ApiError::Conflict {
            code: "already_voted",
            message: format!(
                "you already voted in election {id}; a vote cannot be changed (GET /api/me/votes/{id} shows your receipt)"
            ),
        }),
        Cast::NotEligible => Err(ApiError::Forbidden {
            code: "not_eligible",
            message: format!("you are not registered to vote in election {id}"),
        }),
        Cast::UnknownOption => Err(ApiError::Unprocessable {
            field: Some("option_id".into()),
            message: format!("option {option_id} is not on election {id}'s ballot"),
        }),
    }
}

/// `GET /api/me/votes/{id}`: the caller's own vote (private; reads their own write).
#[utoipa::path(get, path = "/api/me/votes/{id}", tag = "voters", params(("id" = i64, Path, description = "The election (a positive integer)")), security(("session" = [])),
    responses((status = 200, body = Receipt), (status = 401, description = "no valid session cookie", body = ErrorBody),
        (status = 404, description = "no such election, or no vote in it", body = ErrorBody), (status = 503, description = "the database is unavailable; retry after Retry-After", body = ErrorBody)))]
pub async fn my_vote(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let voter_id = voter(&state, &headers)?;
    let id = election_id(&id)?;
    let receipt = state
        .store
        .vote_of(id, voter_id)
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or_else(|| ApiError::NotFound(format!("you have not voted in election {id}")))?;
    let mut response = Json(receipt).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}
