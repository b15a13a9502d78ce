//! Fresh L1 hits answered on the connection front, before hyper and the router: the request
//! head as `httparse` left it is keyed, looked up in L1 with its tag-version check, and
//! answered with the entry's ready header block and body — the same answer, header for header,
//! as the router's path gives ([`respond::l1_hit`]), and counted the same way.
//!
//! Passed on to the router, which answers them in full: requests the edge did not sign when
//! the origin holds edge keys (the router refuses them with a reason), requests the sampler
//! traces (the router makes their span; the draw is carried so it is made once), and
//! everything that is not a fresh L1 hit.

use std::sync::Arc;
use std::time::Instant;

use axum::http::Extensions;
use surge_shared::edge_auth;
use surge_shared::trace::{REQUEST_ID, TRACEPARENT};

use super::headers::HeaderSource;
use super::respond;
use super::serve::Shortcut;
use super::serve::front::{Answer, Head};
use super::state::AppState;
use super::wire::{push_header, push_status_line};
use crate::telemetry::context::TraceContext;
use crate::telemetry::sampling::{self, Drawn};

/// The public listener's [`Shortcut`]: fresh L1 hits.
pub struct FreshHits(pub Arc<AppState>);

impl Shortcut for FreshHits {
    async fn answer<'a>(&'a self, head: &'a Head<'a>, out: &'a mut Vec<u8>) -> Answer {
        let started = Instant::now();
        let state = &*self.0;
        let headers = head.headers;
        let path = head
            .target
            .split_once('?')
            .map_or(head.target, |(path, _)| path);
        if super::is_probe(path)
            || super::edge_refusal(
                state,
                headers.text_of(edge_auth::HEADER),
                "GET",
                head.target,
            )
            .is_some()
        {
            return Answer::Pass(Extensions::new());
        }
        let traced = sampling::configured().records(headers.text_of(TRACEPARENT), fastrand::f64);
        let pass = |traced| {
            let mut carry = Extensions::new();
            carry.insert(Drawn(traced));
            Answer::Pass(carry)
        };
        if traced {
            return pass(true);
        }
        let policy = &state.config.policy;
        let Ok(keyed) = state.keys.keyed(policy, head.target, headers) else {
            return pass(false);
        };
        let route = policy.route_of(&keyed.classified);
        let Some(lookup) = respond::fresh_hit(state, route, &keyed.key).await else {
            return pass(false);
        };
        let page = &lookup.value;
        let not_modified = page.not_modified(headers);
        let status = if not_modified {
            axum::http::StatusCode::NOT_MODIFIED
        } else {
            page.status()
        };
        push_status_line(out, status);
        out.extend_from_slice(page.wire_block(not_modified));
        let took = started.elapsed();
        respond::lookup_headers(state, &lookup, took, |name, value| {
            push_header(out, name.as_str(), value);
        });
        let context = TraceContext::unsampled(headers);
        push_header(out, TRACEPARENT, context.traceparent().as_bytes());
        push_header(out, REQUEST_ID, context.request_id.as_bytes());
        super::push_security_headers(out);
        super::account(state, &route.name, "GET", status.as_u16(), took, true);
        state.metrics.answered_on_the_front();
        Answer::Sent((!not_modified).then(|| page.body().clone()))
    }
}
