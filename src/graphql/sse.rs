//! GraphQL over Server-Sent Events, the "distinct connections" mode of the GraphQL over SSE
//! protocol: a `POST /graphql` (or `GET /graphql?query=…`) with `Accept: text/event-stream`
//! is answered as an event stream of `next` events (each one GraphQL response) and a final
//! `complete` event. For clients and proxies that do not do WebSockets; the auth headers are
//! ordinary request headers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Value;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::graphql::errors::ensure_codes;
use crate::graphql::gate::Caller;
use crate::service::Lookups;
use crate::state::AppState;

/// The media type that selects this transport.
pub const EVENT_STREAM: &str = "text/event-stream";
/// How often an idle stream carries a comment, so proxies keep it open.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// Longest an event may wait for the client to take it (as on a WebSocket): a client that stops reading is dropped, its subscriptions with it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Events waiting for a slow client before the send timeout starts to count.
const QUEUED: usize = 4;

/// Whether the client asks for an event stream: `text/event-stream` in `Accept` with a quality above zero.
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q") && v.trim().parse::<f32>() == Ok(0.0)
                })
            });
            media.eq_ignore_ascii_case(EVENT_STREAM) && !refused
        })
}

fn event(resp: &async_graphql::Response) -> Event {
    let json = serde_json::to_string(resp).unwrap_or_else(|e| {
        tracing::error!(error = %e, "serializing a GraphQL response");
        r#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}"#.to_owned()
    });
    Event::default().event("next").data(json)
}

/// Executes one operation (a subscription, or a query or mutation answered once) through the gate and streams its responses. A query in flight when the server shuts down is answered, like a `POST`; a subscription completes. A client that stops reading for [`SEND_TIMEOUT`] loses its stream and its connection.
pub fn respond(state: &AppState, caller: Arc<Caller>, request: async_graphql::Request) -> Response {
    let closer = caller.closer.clone();
    let mut responses = state
        .schema
        .execute_stream(request.data(caller).data(Lookups::default()), None);
    let (tx, mut rx) = mpsc::channel::<Event>(QUEUED);
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let mut resp = tokio::select! {
                next = responses.next() => match next {
                    Some(resp) => resp,
                    None => break,
                },
                // The client went away: the operation ends now.
                () = tx.closed() => return,
            };
            // Errors without a path on the first response: nothing was executed.
            let failed = first
                && resp.data == Value::Null
                && !resp.errors.is_empty()
                && resp.errors.iter().all(|e| e.path.is_empty());
            first = false;
            ensure_codes(&mut resp.errors, failed);
            match tokio::time::timeout(SEND_TIMEOUT, tx.send(event(&resp))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::warn!("an event-stream client stopped reading: dropped");
                    if let Some(closer) = &closer {
                        closer.close();
                    }
                    return;
                }
            }
        }
        let complete = Event::default().event("complete").data("");
        let _ = tokio::time::timeout(SEND_TIMEOUT, tx.send(complete)).await;
    });
    // A comment first: the client (and any proxy) sees the stream open at once, not at the
    // first event or keep-alive, which may be many seconds away for a subscription.
    let opened = futures_util::stream::once(async { Event::default().comment("ok") });
    let events = opened
        .chain(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
        .map(Ok::<_, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE))
        .into_response()
}
