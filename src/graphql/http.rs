//! GraphQL over HTTP: `POST /graphql` (JSON, single or batched) and `GET /graphql?query=…`,
//! the playground for browsers, and the request limits (body size, batch size).

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::{BatchRequest, BatchResponse, Response as GqlResponse, Value};
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::graphql::errors::{ensure_codes, server_error};
use crate::graphql::gate::Caller;
use crate::graphql::limits::OverGet;
use crate::graphql::{playground, sse, ws};
use crate::server::{ClientAddr, ConnectionCloser};
use crate::service::Lookups;
use crate::service::live::Connection;
use crate::state::AppState;

/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Most operations in one batched request.
pub const MAX_BATCH: usize = 5;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

pub(crate) fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains(media))
}

/// A response made of request-level errors only (no execution took place).
pub fn request_error(
    status: StatusCode,
    message: &str,
    code: &'static str,
    headers: &HeaderMap,
) -> Response {
    let body = GqlResponse::from_errors(vec![server_error(message, code)]);
    render(status, &BatchResponse::Single(body), headers)
}

/// Whether `r` failed before execution (parsing, validation, a refused request): errors only, none with a path. Such a result has no `data` entry at all.
fn not_executed(r: &GqlResponse) -> bool {
    r.data == Value::Null && !r.errors.is_empty() && r.errors.iter().all(|e| e.path.is_empty())
}

pub(crate) fn render(status: StatusCode, body: &BatchResponse, headers: &HeaderMap) -> Response {
    let content_type = if accepts(headers, GRAPHQL_RESPONSE) {
        "application/graphql-response+json; charset=utf-8"
    } else {
        "application/json"
    };
    let any_unexecuted = match body {
        BatchResponse::Single(r) => not_executed(r),
        BatchResponse::Batch(v) => v.iter().any(not_executed),
    };
    let bytes = if any_unexecuted {
        serde_json::to_value(body).and_then(|mut v| {
            match &mut v {
                serde_json::Value::Array(items) => items.iter_mut().for_each(drop_null_data),
                other => drop_null_data(other),
            }
            serde_json::to_vec(&v)
        })
    } else {
        serde_json::to_vec(body)
    };
    match bytes {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "serializing a GraphQL response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Removes `"data": null` from a result whose errors have no path (nothing was executed).
fn drop_null_data(result: &mut serde_json::Value) {
    let Some(map) = result.as_object_mut() else {
        return;
    };
    let pathless = map
        .get("errors")
        .and_then(|e| e.as_array())
        .is_some_and(|e| !e.is_empty() && e.iter().all(|e| e.get("path").is_none()));
    if pathless && map.get("data").is_some_and(serde_json::Value::is_null) {
        map.remove("data");
    }
}

/// `GET /graphql`: a WebSocket upgrade, the playground for browsers, else a query from the query string (answered as Server-Sent Events when the client accepts them).
pub async fn get_graphql(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    if ws::is_upgrade(&parts.headers) {
        return ws::upgrade(state, &mut parts).await;
    }
    let caller = caller(&state, &parts.headers, &parts.extensions);
    let headers = parts.headers;
    let query = parts.uri.query().unwrap_or_default().to_owned();
    if accepts(&headers, "text/html") {
        return playground::page().await.into_response();
    }
    if query.len() > MAX_BODY {
        return request_error(
            StatusCode::URI_TOO_LONG,
            "query string too long",
            "BAD_REQUEST",
            &headers,
        );
    }
    match async_graphql::http::parse_query_string(&query) {
        Ok(req) if sse::wanted(&headers) => sse::respond(&state, caller, req.data(OverGet)),
        Ok(req) => {
            let batch = BatchRequest::Single(req.data(OverGet));
            execute(&state, &headers, caller, batch).await
        }
        Err(e) => request_error(
            StatusCode::BAD_REQUEST,
            &e.to_string(),
            "BAD_REQUEST",
            &headers,
        ),
    }
}

/// `POST /graphql`: a JSON body holding one request or a batch of at most [`MAX_BATCH`].
pub async fn post_graphql(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !json {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request as Content-Type: application/json",
            "BAD_REQUEST",
            &headers,
        );
    }
    // A body trickling in is cut off at the body timeout (slowloris).
    let bytes = match tokio::time::timeout(state.body_timeout, to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return request_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body larger than 64 KiB",
                "BAD_REQUEST",
                &headers,
            );
        }
        Err(_) => {
            let e = Error::BodyTimeout;
            return request_error(
                StatusCode::REQUEST_TIMEOUT,
                &e.to_string(),
                e.code(),
                &headers,
            );
        }
    };
    // A list is a batch; anything else must be one request object (serde would read `[]`
    // as an empty request object).
    let is_list = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if is_list {
        serde_json::from_slice::<Vec<async_graphql::Request>>(&bytes).map(BatchRequest::Batch)
    } else {
        serde_json::from_slice::<async_graphql::Request>(&bytes).map(BatchRequest::Single)
    };
    match parsed {
        Ok(BatchRequest::Single(req)) if sse::wanted(&headers) => {
            sse::respond(&state, caller(&state, &headers, &parts.extensions), req)
        }
        Ok(BatchRequest::Batch(_)) if sse::wanted(&headers) => request_error(
            StatusCode::BAD_REQUEST,
            "Server-Sent Events carry one operation, not a batch",
            "BAD_REQUEST",
            &headers,
        ),
        Ok(batch) => {
            let caller = caller(&state, &headers, &parts.extensions);
            execute(&state, &headers, caller, batch).await
        }
        Err(_) => request_error(
            StatusCode::BAD_REQUEST,
            "the body is not a GraphQL request (JSON with a \"query\" string) or a list of them",
            "BAD_REQUEST",
            &headers,
        ),
    }
}

/// The auth headers of a request (or of a WebSocket's `connection_init`): what the gate authenticates every operation with.
pub(crate) fn credentials(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in [header::AUTHORIZATION, header::ACCEPT_LANGUAGE] {
        if let Some(v) = headers.get(&name) {
            kept.insert(name, v.clone());
        }
    }
    if let Some(v) = headers.get("new-api-user") {
        kept.insert(HeaderName::from_static("new-api-user"), v.clone());
    }
    kept
}

/// What the gate needs to know about who sent a request's operations. No database work: the gate authenticates each operation.
pub(crate) fn caller(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Arc<Caller> {
    Arc::new(Caller {
        service: state.service.clone(),
        live: state.live.clone(),
        credentials: credentials(headers),
        ip: peer(extensions),
        connection: Connection::default(),
        closer: extensions.get::<ConnectionCloser>().cloned(),
    })
}

/// The client address the server attributed a request to (behind a trusted proxy, the
/// address it forwarded).
pub(crate) fn peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ClientAddr>().map(|c| c.0)
}

/// The status a response made only of refusals answers with: 429 (with `Retry-After`) or 504 when every operation was refused for that reason.
fn refusal_status(responses: &[GqlResponse]) -> Option<(StatusCode, Option<u64>)> {
    let code_of = |r: &GqlResponse| -> Option<(String, Option<u64>)> {
        let [e] = r.errors.as_slice() else {
            return None;
        };
        if r.data != Value::Null {
            return None;
        }
        let ext = e.extensions.as_ref()?;
        let code = match ext.get("code")? {
            Value::String(c) => c.clone(),
            _ => return None,
        };
        let retry = match ext.get("retryAfter") {
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        Some((code, retry))
    };
    let codes: Vec<_> = responses.iter().map(code_of).collect::<Option<_>>()?;
    if codes.is_empty() {
        return None;
    }
    if codes.iter().all(|(c, _)| c == "RATE_LIMITED") {
        let retry = codes.iter().filter_map(|(_, r)| *r).max();
        return Some((StatusCode::TOO_MANY_REQUESTS, retry));
    }
    if codes.iter().all(|(c, _)| c == "TIMEOUT") {
        return Some((StatusCode::GATEWAY_TIMEOUT, None));
    }
    None
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    caller: Arc<Caller>,
    batch: BatchRequest,
) -> Response {
    let (requests, batched) = match batch {
        BatchRequest::Single(r) => (vec![r], false),
        BatchRequest::Batch(v) => (v, true),
    };
    if requests.is_empty() || requests.len() > MAX_BATCH {
        let msg = format!("a batch holds 1 to {MAX_BATCH} operations");
        return request_error(StatusCode::BAD_REQUEST, &msg, "BATCH_TOO_LARGE", headers);
    }
    let mut responses = Vec::with_capacity(requests.len());
    let mut all_failed = true;
    // A malformed request (no document, a malformed persistedQuery) is a 400 whatever the
    // media type, as before persisted queries.
    let mut malformed = false;
    for req in requests {
        let mut resp = state
            .schema
            .execute(req.data(caller.clone()).data(Lookups::default()))
            .await;
        // Errors without a path come from the gate, parsing or validation: nothing was
        // executed.
        let failed = not_executed(&resp);
        malformed |= failed
            && resp.errors.iter().any(|e| {
                e.extensions
                    .as_ref()
                    .and_then(|x| x.get("code"))
                    .is_some_and(|c| *c == Value::from("BAD_REQUEST"))
            });
        ensure_codes(&mut resp.errors, failed);
        all_failed &= failed;
        responses.push(resp);
    }
    // A refusal of every operation for one reason answers with that reason's status;
    // otherwise GraphQL-over-HTTP: with the new media type, a request that could not
    // execute is 4xx.
    let (status, retry) = match refusal_status(&responses) {
        Some(refused) => refused,
        None if all_failed && (malformed || accepts(headers, GRAPHQL_RESPONSE)) => {
            (StatusCode::BAD_REQUEST, None)
        }
        None => (StatusCode::OK, None),
    };
    let body = if batched {
        BatchResponse::Batch(responses)
    } else {
        match responses.pop() {
            Some(r) => BatchResponse::Single(r),
            None => BatchResponse::Batch(Vec::new()),
        }
    };
    let mut response = render(status, &body, headers);
    if let Some(seconds) = retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
