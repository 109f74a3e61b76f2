//! GraphQL over Server-Sent Events, the "distinct connections" mode of the GraphQL over SSE
//! protocol: a `POST /graphql` (or `GET /graphql?query=…`) with `Accept: text/event-stream`
//! is answered as an event stream of `next` events (each one GraphQL response) and a final
//! `complete` event. For clients and proxies that do not do WebSockets; the auth headers are
//! ordinary request headers.

use std::convert::Infallible;
use std::time::Duration;

use async_graphql::Value;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream;

use crate::graphql::errors::ensure_codes;
use crate::graphql::http::context;
use crate::service::Lookups;
use crate::state::AppState;

/// The media type that selects this transport.
pub const EVENT_STREAM: &str = "text/event-stream";
/// How often an idle stream carries a comment, so proxies keep it open.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// Executes one operation (a subscription, or a query or mutation answered once) and streams
/// its responses. The stream completes when the operation does, or when the server shuts
/// down.
pub async fn respond(
    state: &AppState,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    let ctx = context(state, headers).await;
    let mut first = true;
    let events = state
        .schema
        .execute_stream(request.data(ctx).data(Lookups::default()))
        .map(move |mut resp| {
            // Errors without a path on the first response: nothing was executed.
            let failed = first
                && resp.data == Value::Null
                && !resp.errors.is_empty()
                && resp.errors.iter().all(|e| e.path.is_empty());
            first = false;
            ensure_codes(&mut resp.errors, failed);
            let json = serde_json::to_string(&resp).unwrap_or_else(|e| {
                tracing::error!(error = %e, "serializing a GraphQL response");
                r#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}"#
                    .to_owned()
            });
            Ok::<_, Infallible>(Event::default().event("next").data(json))
        });
    let live = state.live.clone();
    let events = events
        .take_until(async move { live.stopped().await })
        .chain(stream::once(async {
            Ok(Event::default().event("complete").data(""))
        }));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE))
        .into_response()
}
