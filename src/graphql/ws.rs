//! GraphQL over WebSocket on `GET /graphql`: the `graphql-transport-ws` protocol, and the
//! legacy `graphql-ws` (subscriptions-transport-ws) one, chosen by `Sec-WebSocket-Protocol`.
//!
//! A browser cannot set headers on a WebSocket, so the two auth headers travel in the
//! `connection_init` payload (`{"Authorization": "Bearer …", "New-Api-User": "2"}`, or the
//! same under `"headers"`); headers on the upgrade request are used for what the payload
//! leaves out. Close codes:
//!
//! | code | when |
//! | --- | --- |
//! | 4401 | missing or wrong credentials (the legacy message as reason) |
//! | 4403 | a banned user, or a role too low |
//! | 4408 | no `connection_init` within the init timeout |
//! | 4429 | a second `connection_init` |
//! | 1008 | a subscription fell too far behind (events were dropped), or the user already holds [`crate::service::live::MAX_SOCKETS_PER_USER`] sockets |
//! | 1001 | the server is shutting down, or the peer stopped answering pings |
//! | 1011 | the database could not be reached to authenticate |
//!
//! The server pings every [`KEEPALIVE`] with WebSocket ping frames (browsers answer them
//! without any code) and drops a peer silent for two intervals.
//!
//! `connection_init` only opens the socket: every operation on it then passes the GraphQL
//! gate ([`crate::graphql::gate`]) like a `POST`, its credentials authenticated again (a
//! ban or a demotion reaches an open socket), its document, rate, timeout and turn checked.
//! The socket keeps its place under `--max-connections` for as long as it is open.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket as GqlWebSocket, WsMessage};
use async_graphql::{Data, Executor};
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;

use crate::auth;
use crate::error::Error;
use crate::graphql::GatedSchema;
use crate::graphql::gate::Caller;
use crate::graphql::http::{MAX_BODY, credentials, peer, request_error};
use crate::server::ConnectionPermit;
use crate::service::Lookups;
use crate::service::Role;
use crate::service::live::Connection;
use crate::state::AppState;

/// Time between the server's pings.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// Longest a write to a client may take before the connection is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from a socket at a time.
const READ_BUFFER: usize = 4096;
/// Longest close reason a close frame carries, in bytes.
const MAX_REASON: usize = 123;
/// Longest the operations of a socket may take to end at shutdown before it is closed.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// WebSocket timeouts.
#[derive(Clone, Copy, Debug)]
pub struct WsSettings {
    /// Longest wait for `connection_init` after the upgrade.
    pub init_timeout: Duration,
    /// Time between pings.
    pub keepalive: Duration,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            init_timeout: Duration::from_secs(5),
            keepalive: KEEPALIVE,
        }
    }
}

/// Whether the request asks for a WebSocket.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Accepts the upgrade when the client offers one of the two protocols.
pub async fn upgrade(state: AppState, parts: &mut Parts) -> Response {
    let headers = parts.headers.clone();
    let ip = peer(&parts.extensions);
    let permit = parts.extensions.get::<ConnectionPermit>().cloned();
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.parse::<async_graphql::http::WebSocketProtocols>().ok());
    let Some(protocol) = offered else {
        return request_error(
            StatusCode::BAD_REQUEST,
            "offer the graphql-transport-ws (or legacy graphql-ws) WebSocket subprotocol",
            "BAD_REQUEST",
            &headers,
        );
    };
    let ws = match WebSocketUpgrade::from_request_parts(parts, &state).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.protocols(ALL_WEBSOCKET_PROTOCOLS)
        // Small buffers: most connections are idle subscribers (the defaults, 128 KiB each
        // way, cost 0.25 MiB per connection).
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_BODY)
        .max_frame_size(MAX_BODY)
        .on_upgrade(move |socket| async move {
            // Held until the socket closes.
            let _permit = permit;
            serve(socket, state, Upgrade { headers, ip }, protocol).await;
        })
}

/// Why a connection is closed: the close frame's code and reason.
#[derive(Clone, Debug)]
struct CloseReason {
    code: u16,
    reason: String,
}

/// The close reason chosen while authenticating `connection_init`.
type Rejection = Arc<Mutex<Option<CloseReason>>>;

/// What the upgrade request said about the client.
struct Upgrade {
    headers: HeaderMap,
    ip: Option<std::net::IpAddr>,
}

/// The headers `connection_init` carries, over those of the upgrade request.
fn init_headers(upgrade: &HeaderMap, payload: &serde_json::Value) -> HeaderMap {
    let mut headers = credentials(upgrade);
    let object = payload
        .get("headers")
        .and_then(|h| h.as_object())
        .or_else(|| payload.as_object());
    for (key, value) in object.into_iter().flatten() {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => continue,
        };
        let name = key.to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "authorization" | "new-api-user" | "accept-language"
        ) {
            continue;
        }
        // A value no header could hold (a control character) is malformed, as it would be
        // over HTTP: it reaches the checks as a value that fails them.
        let value =
            HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("malformed"));
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.insert(name, value);
        }
    }
    headers
}

/// Authenticates `connection_init`: the connection's data (the credentials every operation is authenticated with again, and the user's socket slot), or its close code and reason.
async fn init(
    state: AppState,
    upgrade: &Upgrade,
    connection: Connection,
    payload: serde_json::Value,
) -> Result<Data, CloseReason> {
    let headers = init_headers(&upgrade.headers, &payload);
    let lang = auth::lang(&headers);
    let refused = |code: u16, e: Error| CloseReason {
        code,
        reason: e.message(lang),
    };
    let viewer = auth::authenticate(&state.service, &headers, Role::Common)
        .await
        .map_err(|e| match &e {
            Error::Auth(a) if a.is_forbidden() => refused(4403, e),
            Error::Auth(_) => refused(4401, e),
            _ => refused(1011, e),
        })?;
    let slot = state
        .live
        .open_socket(viewer.id)
        .map_err(|e| refused(1008, e))?;
    let mut data = Data::default();
    data.insert(Arc::new(Caller {
        service: state.service.clone(),
        live: state.live.clone(),
        credentials: headers,
        ip: upgrade.ip,
        connection,
        closer: None,
    }));
    data.insert(slot);
    Ok(data)
}

/// The schema, giving every operation of a connection a lookup budget of its own, and counting the connection's operations in flight (shutdown lets them complete).
#[derive(Clone)]
struct PerOperation {
    schema: GatedSchema,
    running: Arc<AtomicUsize>,
}

/// One operation in flight, counted until its stream is dropped.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Executor for PerOperation {
    fn execute(
        &self,
        request: async_graphql::Request,
    ) -> impl Future<Output = async_graphql::Response> + Send {
        self.schema.execute(request.data(Lookups::default()))
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> futures_util::stream::BoxStream<'static, async_graphql::Response> {
        self.running.fetch_add(1, Ordering::AcqRel);
        let running = Running(self.running.clone());
        self.schema
            .execute_stream(request.data(Lookups::default()), session_data)
            .map(move |r| {
                let _counted = &running;
                r
            })
            .boxed()
    }
}

/// `reason` cut to what a close frame holds, on a character boundary.
fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

async fn serve(
    socket: WebSocket,
    state: AppState,
    upgrade: Upgrade,
    protocol: async_graphql::http::WebSocketProtocols,
) {
    let settings = state.ws;
    let live = state.live.clone();
    let _tracked = live.track_connection();
    let connection = Connection::default();
    let (mut sink, incoming) = socket.split();
    let last_heard = Arc::new(Mutex::new(Instant::now()));
    let heard = last_heard.clone();
    let input = incoming
        .take_while(|m| std::future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_)))))
        .filter_map(move |m| {
            *heard.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
            std::future::ready(match m {
                Ok(Message::Text(t)) => Some(t.as_bytes().to_vec()),
                Ok(Message::Binary(b)) => Some(b.to_vec()),
                _ => None,
            })
        });
    let rejection: Rejection = Arc::default();
    let rejected = rejection.clone();
    let init_state = state.clone();
    let init_connection = connection.clone();
    let running = Arc::new(AtomicUsize::new(0));
    let executor = PerOperation {
        schema: state.schema.clone(),
        running: running.clone(),
    };
    let mut engine = GqlWebSocket::new(executor, input, protocol).on_connection_init(
        move |payload| async move {
            init(init_state, &upgrade, init_connection, payload)
                .await
                .map_err(|why| {
                    let message = why.reason.clone();
                    *rejected.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
                    async_graphql::Error::new(message)
                })
        },
    );

    let mut acked = false;
    let init_deadline = tokio::time::sleep(settings.init_timeout);
    tokio::pin!(init_deadline);
    let mut pings =
        tokio::time::interval_at(Instant::now() + settings.keepalive, settings.keepalive);
    let stopped = live.stopped();
    tokio::pin!(stopped);
    // At shutdown the operations in flight end (subscriptions complete, queries answer),
    // their `complete` messages are sent, then the socket closes with 1001.
    let mut closing: Option<Instant> = None;
    let closing_deadline = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(closing_deadline);
    let slow = connection.too_slow();
    tokio::pin!(slow);

    let last = loop {
        let out = tokio::select! {
            msg = engine.next() => match msg {
                Some(WsMessage::Text(text)) => {
                    acked |= text.starts_with(r#"{"type":"connection_ack""#);
                    Message::Text(text.into())
                }
                Some(WsMessage::Close(code, reason)) => {
                    let chosen = rejection.lock().unwrap_or_else(PoisonError::into_inner).take();
                    let (code, reason) = match chosen {
                        Some(why) => (why.code, why.reason),
                        // A subscribe before connection_init (graphql-transport-ws: 4401).
                        None if !acked && code == 1011 => (4401, "Unauthorized".to_owned()),
                        None => (code, reason),
                    };
                    break Some(close(code, &reason));
                }
                None => break None,
            },
            () = &mut init_deadline, if !acked => {
                break Some(close(4408, "Connection initialisation timeout"));
            }
            _ = pings.tick() => {
                let silent = last_heard.lock().unwrap_or_else(PoisonError::into_inner).elapsed();
                if silent > settings.keepalive * 2 {
                    break Some(close(1001, "no answer to pings"));
                }
                Message::Ping(Vec::new().into())
            }
            () = &mut slow => {
                break Some(close(1008, "slow consumer: events were dropped; reconnect"));
            }
            () = &mut stopped, if closing.is_none() => {
                let at = Instant::now() + SHUTDOWN_WAIT;
                closing = Some(at);
                closing_deadline.as_mut().reset(at);
                if running.load(Ordering::Acquire) == 0 {
                    break Some(close(1001, "server shutting down"));
                }
                continue;
            }
            () = &mut closing_deadline, if closing.is_some() => {
                break Some(close(1001, "server shutting down"));
            }
        };
        match tokio::time::timeout(SEND_TIMEOUT, sink.send(out)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        if closing.is_some() && running.load(Ordering::Acquire) == 0 {
            break Some(close(1001, "server shutting down"));
        }
    };
    if let Some(frame) = last {
        let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(frame)).await;
    }
    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
}
