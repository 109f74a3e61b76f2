//! Test clients for live progress: a `graphql-transport-ws` (or legacy `graphql-ws`)
//! WebSocket client and a GraphQL-over-SSE client, plus writes to the tasks table from
//! outside the service, as new-api makes them.

use std::net::SocketAddr;
use std::time::Duration;

use sea_orm::ConnectionTrait;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{TestApp, TestDb, TestUser};

/// How long a test waits for an event it expects (the bound).
pub const WITHIN: Duration = Duration::from_secs(5);

/// What the server sent.
#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Close(u16, String),
    /// The connection ended without a close frame.
    Gone,
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: &'static str,
}

/// The two auth headers as a `connection_init` payload.
pub fn init_payload(user: &TestUser) -> Value {
    json!({"Authorization": format!("Bearer {}", user.token), "New-Api-User": user.id.to_string()})
}

impl Ws {
    /// Opens a WebSocket to `/graphql` on `addr` offering `protocol`, or says why not.
    pub async fn try_connect(addr: SocketAddr, protocol: &'static str) -> Option<Ws> {
        let mut req = format!("ws://{addr}/graphql").into_client_request().ok()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().ok()?);
        let (stream, _) = tokio_tungstenite::connect_async(req).await.ok()?;
        Some(Ws { stream, protocol })
    }

    /// The next frame within `within`, or `None` when nothing came.
    pub async fn try_recv(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            return Some(match msg {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Value>(&t) {
                    Ok(v) if v["type"] == "ka" => continue,
                    Ok(v) => Frame::Json(v),
                    Err(_) => Frame::Gone,
                },
                Some(Ok(Message::Close(frame))) => match frame {
                    Some(f) => Frame::Close(u16::from(f.code), f.reason.to_string()),
                    None => Frame::Close(1005, String::new()),
                },
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Frame::Gone,
            });
        }
    }

    /// Opens a WebSocket to `/graphql` on `addr` offering `protocol`.
    pub async fn connect(addr: SocketAddr, protocol: &'static str) -> Ws {
        let mut req = format!("ws://{addr}/graphql")
            .into_client_request()
            .expect("request");
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
        let (stream, resp) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket upgrade");
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol)
        );
        Ws { stream, protocol }
    }

    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    /// The next frame the server sends within `within` (pings are answered and skipped).
    pub async fn recv(&mut self, within: Duration) -> Frame {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("nothing from the server within {within:?}"));
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON message");
                    // Keep-alives of the legacy protocol.
                    if v["type"] == "ka" {
                        continue;
                    }
                    return Frame::Json(v);
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(f) => Frame::Close(u16::from(f.code), f.reason.to_string()),
                        None => Frame::Close(1005, String::new()),
                    };
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Frame::Gone,
            }
        }
    }

    /// Whether the server sends nothing (and keeps the connection) for `d`.
    pub async fn silent_for(&mut self, d: Duration) -> bool {
        loop {
            match tokio::time::timeout(d, self.stream.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(_) => return false,
            }
        }
    }

    /// The next JSON message (panics on a close).
    pub async fn json(&mut self) -> Value {
        match self.recv(WITHIN).await {
            Frame::Json(v) => v,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Sends `connection_init` with `payload` and returns the server's answer.
    pub async fn init_with(&mut self, payload: Value) -> Frame {
        self.send(json!({"type": "connection_init", "payload": payload}))
            .await;
        self.recv(WITHIN).await
    }

    /// Authenticates as `user` and expects the acknowledgement.
    pub async fn init(&mut self, user: &TestUser) {
        match self.init_with(init_payload(user)).await {
            Frame::Json(v) if v["type"] == "connection_ack" => {}
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    /// Starts operation `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.protocol == "graphql-ws" {
            "start"
        } else {
            "subscribe"
        };
        self.send(
            json!({"id": id, "type": kind, "payload": {"query": query, "variables": variables}}),
        )
        .await;
    }

    /// The next payload of operation `id`: `Some(payload)` for a `next`/`data` message,
    /// `None` for `complete`.
    pub async fn next_of(&mut self, id: &str) -> Option<Value> {
        loop {
            let v = self.json().await;
            if v["id"] != id {
                continue;
            }
            match v["type"].as_str() {
                Some("next" | "data") => return Some(v["payload"].clone()),
                Some("complete") => return None,
                _ => panic!("unexpected message {v}"),
            }
        }
    }

    /// The next `n` events of any operation, as `(operation id, event)`.
    pub async fn events(&mut self, n: usize) -> Vec<(String, Value)> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let v = self.json().await;
            assert_eq!(v["type"], "next", "{v}");
            assert!(v["payload"]["errors"].is_null(), "{v}");
            let id = v["id"].as_str().unwrap_or_default().to_owned();
            out.push((id, v["payload"]["data"]["midjourneyTaskEvents"].clone()));
        }
        out
    }

    /// Waits for the operation that failed with an error and returns its id and code (the
    /// server starts the operations of a connection in no particular order).
    pub async fn failed_operation(&mut self) -> (String, String) {
        loop {
            let v = self.json().await;
            let code = &v["payload"]["errors"][0]["extensions"]["code"];
            if let Some(code) = code.as_str() {
                return (
                    v["id"].as_str().unwrap_or_default().to_owned(),
                    code.to_owned(),
                );
            }
        }
    }

    /// The next event of operation `id` (panics on errors or completion).
    pub async fn event(&mut self, id: &str) -> Value {
        let payload = self
            .next_of(id)
            .await
            .unwrap_or_else(|| panic!("{id} completed"));
        assert!(payload["errors"].is_null(), "errors: {payload}");
        payload["data"]["midjourneyTaskEvents"].clone()
    }
}

/// A GraphQL-over-SSE response being read.
pub struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    /// POSTs `query` as `user` with `Accept: text/event-stream`.
    pub async fn open(
        app: &TestApp,
        user: Option<&TestUser>,
        query: &str,
        variables: Value,
    ) -> Sse {
        let mut req = app
            .client
            .post(app.url("/graphql"))
            .header("Accept", "text/event-stream")
            .json(&json!({"query": query, "variables": variables}));
        if let Some(u) = user {
            req = req
                .header("Authorization", format!("Bearer {}", u.token))
                .header("New-Api-User", u.id.to_string());
        }
        Sse::from_response(req.send().await.expect("request"))
    }

    /// Reads `resp`, which must be an event stream.
    pub fn from_response(resp: reqwest::Response) -> Sse {
        assert_eq!(resp.status(), 200);
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(ct.starts_with("text/event-stream"), "content type {ct}");
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event as `(name, data)` within `within`; `None` when the stream ended.
    pub async fn recv(&mut self, within: Duration) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                // Comment-only blocks are keep-alives.
                if block.lines().all(|l| l.starts_with(':') || l.is_empty()) {
                    continue;
                }
                return Some((name, data.join("\n")));
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {within:?}"))
                .expect("reading the stream");
            match chunk {
                Some(bytes) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// The next `next` payload; `None` at `complete`.
    pub async fn next(&mut self) -> Option<Value> {
        match self.recv(WITHIN).await {
            Some((name, data)) if name == "next" => {
                Some(serde_json::from_str(&data).expect("JSON"))
            }
            Some((name, _)) if name == "complete" => None,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The next event (panics on errors or completion).
    pub async fn event(&mut self) -> Value {
        let payload = self.next().await.expect("an event, not complete");
        assert!(payload["errors"].is_null(), "errors: {payload}");
        payload["data"]["midjourneyTaskEvents"].clone()
    }
}

/// The insert new-api makes when a task is submitted.
pub fn submit_sql(user: i64, mj_id: &str, channel: i64) -> String {
    format!(
        "INSERT INTO midjourneys (user_id, code, action, mj_id, prompt, prompt_en, description, \
         state, submit_time, start_time, finish_time, image_url, video_url, video_urls, status, \
         progress, fail_reason, channel_id, quota, buttons, properties) VALUES ({user}, 1, \
         'IMAGINE', '{mj_id}', 'a cat', 'a cat', 'Submit success', '', 1764000000000, 0, 0, '', \
         '', '[]', 'SUBMITTED', '0%', '', {channel}, 100, '[]', '{{}}')"
    )
}

/// Writes to the tasks table the way new-api does: plain SQL on a connection of its own.
impl TestDb {
    /// Runs one statement on a connection of its own.
    pub async fn write(&self, sql: &str) {
        let conn = self.connect().await;
        conn.execute_unprepared(sql).await.expect("sql");
        conn.close().await.ok();
    }

    /// Inserts a submitted task for `user` and returns its mj id.
    pub async fn submit(&self, user: i64, mj_id: &str, channel: i64) {
        self.write(&submit_sql(user, mj_id, channel)).await;
    }

    /// Moves task `mj_id` to `status` at `progress`.
    pub async fn progress(&self, mj_id: &str, status: &str, progress: &str) {
        self.write(&format!(
            "UPDATE midjourneys SET status = '{status}', progress = '{progress}', \
             start_time = 1764000001000 WHERE mj_id = '{mj_id}'"
        ))
        .await;
    }

    /// Finishes task `mj_id` successfully with an image.
    pub async fn succeed(&self, mj_id: &str) {
        self.write(&format!(
            "UPDATE midjourneys SET status = 'SUCCESS', progress = '100%', \
             image_url = 'https://cdn.example/{mj_id}.png', finish_time = 1764000030000 \
             WHERE mj_id = '{mj_id}'"
        ))
        .await;
    }

    /// Fails task `mj_id` as new-api does (progress 100%, a reason).
    pub async fn fail(&self, mj_id: &str, reason: &str) {
        self.write(&format!(
            "UPDATE midjourneys SET status = 'FAILURE', progress = '100%', fail_reason = '{reason}', \
             finish_time = 1764000030000 WHERE mj_id = '{mj_id}'"
        ))
        .await;
    }
}

/// The subscription most tests use.
pub const EVENTS: &str =
    "subscription($filter: MidjourneyTaskFilter, $mjIds: [String!], $snap: Boolean! = false) {
  midjourneyTaskEvents(filter: $filter, mjIds: $mjIds, initialSnapshot: $snap) {
    kind
    task { id userId mjId status progress finished imageUrl failReason }
  }
}";
