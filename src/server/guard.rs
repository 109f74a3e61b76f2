//! The guard every request passes: the header size limit, the rate limits, the whole-request
//! timeout and the shutdown deadline. A refusal is answered in the shape of the door the path
//! belongs to (each door says how: [`Door`]; the guard knows none of them), never by dropping
//! the connection.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::server::ClientAddr;
use crate::server::rate::RateLimits;
use crate::server::shutdown::{Phase, Shutdown};

/// Most bytes of request headers (names and values) answered normally; larger heads get 431.
/// (Heads beyond the parser's buffer, [`super::MAX_HEAD_BUFFER`], are refused by the HTTP
/// parser itself with a bare 431.)
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How one door (a group of routes) meets the guard: the shape of its refusals, and whether
/// it rate-limits a request's operations itself.
#[derive(Clone, Copy, Debug)]
pub struct Door {
    /// The paths it serves: exactly this, or beneath it; `""` for every other path.
    pub prefix: &'static str,
    /// A refusal in this door's shape.
    pub refuse: fn(Error, &HeaderMap) -> Response,
    /// Whether the door counts this request's operations against the rate limits itself
    /// (the guard then does not count the request).
    pub limits_itself: fn(&HeaderMap) -> bool,
}

impl Door {
    fn serves(&self, path: &str) -> bool {
        self.prefix.is_empty()
            || path == self.prefix
            || path
                .strip_prefix(self.prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// What the guard needs.
#[derive(Clone, Debug)]
pub struct Guard {
    pub shutdown: Shutdown,
    /// Longest a request may take; zero for no limit.
    pub request_timeout: Duration,
    /// Rate limits, when any are set.
    pub limits: Option<Arc<RateLimits>>,
    /// The doors, the most specific first; the last serves every other path.
    pub doors: Arc<[Door]>,
}

impl Guard {
    /// The door `path` belongs to.
    fn door(&self, path: &str) -> Option<&Door> {
        self.doors.iter().find(|d| d.serves(path))
    }

    /// Refuses `error` in the shape of the door `path` belongs to.
    pub fn refuse(&self, error: Error, path: &str, headers: &HeaderMap) -> Response {
        match self.door(path) {
            Some(door) => (door.refuse)(error, headers),
            None => StatusCode::from_u16(error.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
        }
    }
}

/// Paths no rate limit applies to (load balancers and scrapers poll them).
const UNLIMITED: [&str; 2] = ["/healthz", "/metrics"];

async fn rate_limited(
    guard: &Guard,
    limits: &RateLimits,
    path: &str,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<(), u64> {
    if UNLIMITED.contains(&path) {
        return Ok(());
    }
    // A door that counts its own operations (GraphQL: each operation, whatever carries it)
    // is not counted here too.
    if guard.door(path).is_some_and(|d| (d.limits_itself)(headers)) {
        return Ok(());
    }
    limits.admit(ip, auth::presented(headers)).await
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
        return guard.refuse(Error::HeadersTooLarge, &path, &headers);
    }
    if let Some(limits) = &guard.limits
        && let Err(seconds) = rate_limited(
            &guard,
            limits,
            &path,
            request.headers(),
            request.extensions().get::<ClientAddr>().map(|c| c.0),
        )
        .await
    {
        let mut response = guard.refuse(Error::RateLimited, &path, &headers);
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
            guard.refuse(Error::Timeout(guard.request_timeout.as_millis() as u64), &path, &headers)
        }
        () = guard.shutdown.reached(Phase::Deadline) => {
            tracing::warn!(path, "request still running at the shutdown deadline");
            guard.refuse(Error::ShuttingDown, &path, &headers)
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
