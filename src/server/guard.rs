//! The guard every request passes: the header size limit, the rate limits, the whole-request
//! timeout and the shutdown deadline. A refusal is answered in the door's own shape (the legacy envelope on
//! the REST routes, a GraphQL error on `/graphql`), never by dropping the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth;
use crate::error::Error;
use crate::graphql;
use crate::metrics::Metrics;
use crate::rest::ApiError;
use crate::server::rate::RateLimits;
use crate::server::shutdown::{Phase, Shutdown};

/// Most bytes of request headers (names and values) answered normally; larger heads get 431.
/// (Heads beyond the parser's buffer, [`super::MAX_HEAD_BUFFER`], are refused by the HTTP
/// parser itself with a bare 431.)
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What the guard needs.
#[derive(Clone, Debug)]
pub struct Guard {
    pub shutdown: Shutdown,
    /// Longest a request may take; zero for no limit.
    pub request_timeout: Duration,
    /// Rate limits, when any are set.
    pub limits: Option<Arc<RateLimits>>,
}

/// Paths no rate limit applies to (load balancers and scrapers poll them).
const UNLIMITED: [&str; 2] = ["/healthz", "/metrics"];

fn rate_limited(limits: &RateLimits, request: &Request) -> Result<(), u64> {
    let path = request.uri().path();
    if UNLIMITED.contains(&path) {
        return Ok(());
    }
    // GraphQL operations are counted one by one by the GraphQL gate, whatever carries them
    // (a batch entry, an SSE request, a WebSocket message); a WebSocket upgrade is counted
    // here, as a request.
    if path == "/graphql" && !graphql::is_upgrade(request.headers()) {
        return Ok(());
    }
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    limits.admit(ip, auth::presented(request.headers()))
}

/// Refuses `error` in the shape of the door `path` belongs to.
pub fn refuse(error: Error, path: &str, headers: &HeaderMap) -> Response {
    if path == "/graphql" || path.starts_with("/graphql/") {
        let status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        graphql::error_response(status, &error.to_string(), error.code(), headers)
    } else {
        ApiError::new(error, auth::lang(headers)).into_response()
    }
}

/// What a refusal is shaped by (the response media type and the message language), kept
/// instead of a copy of every request header.
fn shaping(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in [header::ACCEPT, header::ACCEPT_LANGUAGE] {
        for value in headers.get_all(&name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// The middleware.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let headers = shaping(request.headers());
    if header_bytes(request.headers()) > MAX_HEADER_BYTES {
        return refuse(Error::HeadersTooLarge, &path, &headers);
    }
    if let Some(limits) = &guard.limits
        && let Err(seconds) = rate_limited(limits, &request)
    {
        let mut response = refuse(Error::RateLimited, &path, &headers);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        return response;
    }
    let timeout = async {
        if guard.request_timeout.is_zero() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(guard.request_timeout).await;
    };
    tokio::select! {
        response = next.run(request) => response,
        () = timeout => {
            tracing::warn!(path, timeout_ms = guard.request_timeout.as_millis() as u64, "request timed out");
            refuse(Error::Timeout(guard.request_timeout.as_millis() as u64), &path, &headers)
        }
        () = guard.shutdown.reached(Phase::Deadline) => {
            tracing::warn!(path, "request still running at the shutdown deadline");
            refuse(Error::ShuttingDown, &path, &headers)
        }
    }
}

/// Records each request's route, status and latency (the route pattern, not the path, so
/// the label set stays small; `unmatched` for everything else).
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.http(&route, response.status().as_u16(), started.elapsed());
    response
}
