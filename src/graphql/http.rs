//! GraphQL over HTTP: `POST /graphql` (JSON, single or batched) and `GET /graphql?query=…`,
//! the playground for browsers, and the request limits (body size, batch size).

use std::sync::Arc;

use async_graphql::{BatchRequest, BatchResponse, Response as GqlResponse, Value};
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{self, AuthError};
use crate::error::Error;
use crate::graphql::context::RequestContext;
use crate::graphql::errors::{ensure_codes, server_error};
use crate::graphql::limits::OverGet;
use crate::graphql::{playground, sse, ws};
use crate::metrics::Outcome;
use crate::service::Lookups;
use crate::service::Role;
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

/// Whether `r` failed before execution (parsing, validation, a refused request): errors
/// only, none with a path. Such a result has no `data` entry at all.
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

/// `GET /graphql`: a WebSocket upgrade, the playground for browsers, else a query from the
/// query string (answered as Server-Sent Events when the client accepts them).
pub async fn get_graphql(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    if ws::is_upgrade(&parts.headers) {
        return ws::upgrade(state, &mut parts).await;
    }
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
        Ok(req) if accepts(&headers, sse::EVENT_STREAM) => {
            sse::respond(&state, &headers, req.data(OverGet)).await
        }
        Ok(req) => execute(&state, &headers, BatchRequest::Single(req.data(OverGet))).await,
        Err(e) => request_error(
            StatusCode::BAD_REQUEST,
            &e.to_string(),
            "BAD_REQUEST",
            &headers,
        ),
    }
}

/// `POST /graphql`: a JSON body holding one request or a batch of at most [`MAX_BATCH`].
pub async fn post_graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
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
        Ok(BatchRequest::Single(req)) if accepts(&headers, sse::EVENT_STREAM) => {
            sse::respond(&state, &headers, req).await
        }
        Ok(BatchRequest::Batch(_)) if accepts(&headers, sse::EVENT_STREAM) => request_error(
            StatusCode::BAD_REQUEST,
            "Server-Sent Events carry one operation, not a batch",
            "BAD_REQUEST",
            &headers,
        ),
        Ok(batch) => execute(&state, &headers, batch).await,
        Err(_) => request_error(
            StatusCode::BAD_REQUEST,
            "the body is not a GraphQL request (JSON with a \"query\" string) or a list of them",
            "BAD_REQUEST",
            &headers,
        ),
    }
}

/// The request's context: one user lookup per HTTP request, none without credentials (so
/// introspection costs no query).
pub(crate) async fn context(state: &AppState, headers: &HeaderMap) -> Arc<RequestContext> {
    let viewer = if auth::has_credentials(headers) {
        auth::authenticate(&state.service, headers, Role::Common).await
    } else {
        Err(AuthError::NoToken.into())
    };
    Arc::new(RequestContext {
        service: state.service.clone(),
        viewer,
        lang: auth::lang(headers),
        live: state.live.clone(),
        connection: Connection::default(),
    })
}

async fn execute(state: &AppState, headers: &HeaderMap, batch: BatchRequest) -> Response {
    let (requests, batched) = match batch {
        BatchRequest::Single(r) => (vec![r], false),
        BatchRequest::Batch(v) => (v, true),
    };
    if requests.is_empty() || requests.len() > MAX_BATCH {
        let msg = format!("a batch holds 1 to {MAX_BATCH} operations");
        return request_error(StatusCode::BAD_REQUEST, &msg, "BATCH_TOO_LARGE", headers);
    }
    // Documents by hash (persisted queries) are resolved first: a refused one costs no
    // parsing and, when all are refused, no user lookup either.
    let resolved: Vec<_> = requests
        .into_iter()
        .map(|mut r| match state.persisted.resolve(&mut r) {
            Ok(()) => Ok(r),
            Err(e) => Err((r.operation_name, e)),
        })
        .collect();
    let ctx = if resolved.iter().any(Result::is_ok) {
        Some(context(state, headers).await)
    } else {
        None
    };

    let mut responses = Vec::with_capacity(resolved.len());
    let mut all_failed = true;
    // A malformed request (no document, a malformed persistedQuery) is a 400 whatever the
    // media type, as before persisted queries.
    let mut malformed = false;
    for req in resolved {
        let req = match req {
            Ok(req) => req,
            Err((operation, refusal)) => {
                malformed |= refusal.code == "BAD_REQUEST";
                state.metrics.graphql(operation.as_deref(), Outcome::Failed);
                let error = server_error(refusal.message, refusal.code);
                responses.push(GqlResponse::from_errors(vec![error]));
                continue;
            }
        };
        // Some whenever a request was resolved.
        let Some(ctx) = ctx.clone() else { continue };
        let operation = req.operation_name.clone();
        let mut resp = state
            .schema
            .execute(req.data(ctx).data(Lookups::default()))
            .await;
        // Errors without a path come from parsing or validation: nothing was executed.
        let failed = not_executed(&resp);
        let outcome = match (resp.errors.is_empty(), resp.data == Value::Null) {
            (true, _) => Outcome::Ok,
            (false, false) => Outcome::Partial,
            (false, true) => Outcome::Failed,
        };
        state.metrics.graphql(operation.as_deref(), outcome);
        ensure_codes(&mut resp.errors, failed);
        all_failed &= failed;
        responses.push(resp);
    }
    // GraphQL-over-HTTP: with the new media type, a request that could not execute is 4xx.
    let status = if all_failed && (malformed || accepts(headers, GRAPHQL_RESPONSE)) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = if batched {
        BatchResponse::Batch(responses)
    } else {
        match responses.pop() {
            Some(r) => BatchResponse::Single(r),
            None => BatchResponse::Batch(Vec::new()),
        }
    };
    render(status, &body, headers)
}
