//! The GraphQL gate, item by item: each test is one way around a rule that used to work on
//! some transports (issue 18); `transport_parity` checks them all together on generated
//! requests.

use std::time::Duration;

use mj_tasks::graphql::persisted::hash;
use mj_tasks::service::Role;
use mj_tasks::service::live::MAX_SOCKETS_PER_USER;
use sea_orm::TransactionTrait;
use serde_json::{Value, json};

use crate::helpers::{Task, TestApp, TestDb, TestUser, spawn_app, spawn_app_with};
use crate::live_client::{Frame, Sse, WITHIN, Ws};

async fn socket(app: &TestApp, user: &TestUser) -> Ws {
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.init(user).await;
    ws
}

/// The first `next` payload of operation `id` (skipping other operations' messages).
async fn answer(ws: &mut Ws, id: &str) -> Value {
    ws.next_of(id)
        .await
        .unwrap_or_else(|| panic!("{id} completed without an answer"))
}

fn code(payload: &Value) -> &str {
    payload["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

/// Item 1: a socket's operations see the caller as they are now, not as they were at
/// `connection_init`.
#[tokio::test]
async fn a_user_banned_or_demoted_after_connection_init_is_refused_or_demoted_on_the_socket() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Admin).await;
    app.task(Task::of(alice.id).status("IN_PROGRESS").progress("50%"))
        .await;

    let mut ws = socket(&app, &alice).await;
    let mut admin_ws = socket(&app, &bob).await;
    ws.subscribe("before", "{ midjourneyTasks { totalCount } }", Value::Null)
        .await;
    assert_eq!(
        answer(&mut ws, "before").await["data"]["midjourneyTasks"]["totalCount"],
        1
    );

    app.sql(&format!(
        "UPDATE users SET status = 2 WHERE id = {}",
        alice.id
    ))
    .await;
    app.sql(&format!("UPDATE users SET role = 1 WHERE id = {}", bob.id))
        .await;

    ws.subscribe("query", "{ midjourneyTasks { totalCount } }", Value::Null)
        .await;
    let refused = answer(&mut ws, "query").await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    assert!(refused["data"].is_null(), "{refused}");

    // A subscription asked after the ban gets no snapshot of her tasks.
    ws.subscribe(
        "live",
        "subscription { midjourneyTaskEvents(initialSnapshot: true) { kind task { mjId } } }",
        Value::Null,
    )
    .await;
    let refused = answer(&mut ws, "live").await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    assert_eq!(ws.next_of("live").await, None, "then complete, no event");

    // The demoted admin is an ordinary user on the socket he opened as an admin.
    admin_ws
        .subscribe(
            "q",
            "{ viewer { isAdmin } midjourneyTasks { totalCount } }",
            Value::Null,
        )
        .await;
    let demoted = answer(&mut admin_ws, "q").await;
    assert_eq!(demoted["data"]["viewer"]["isAdmin"], false, "{demoted}");
    assert_eq!(
        demoted["data"]["midjourneyTasks"]["totalCount"], 0,
        "only his own tasks now: {demoted}"
    );
}

async fn trusted_app(
    listed: &[&str],
    tweak: impl FnOnce(&mut mj_tasks::config::ServeArgs),
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("trusted.json");
    let map: serde_json::Map<String, Value> = listed
        .iter()
        .map(|d| (hash(d), Value::String((*d).to_owned())))
        .collect();
    std::fs::write(&file, Value::Object(map).to_string()).expect("write");
    let app = spawn_app_with(TestDb::new().await, |c| {
        c.trusted_documents = Some(file);
        tweak(c);
    })
    .await;
    drop(dir);
    app
}

/// Item 2: with `--trusted-documents`, an unlisted document is refused over SSE (POST and
/// GET) and as a WebSocket `subscribe`, as over a plain POST.
#[tokio::test]
async fn unlisted_documents_are_refused_over_sse_and_websockets() {
    let listed = "query Mine { midjourneyTasks { totalCount } }";
    let app = trusted_app(&[listed], |_| {}).await;
    let alice = app.user("alice", Role::Common).await;
    let unlisted = "{ midjourneyTasks { totalCount } }";

    let mut sse = Sse::open(&app, Some(&alice), unlisted, Value::Null).await;
    let first = sse.next().await.expect("an answer");
    assert_eq!(code(&first), "PERSISTED_QUERY_NOT_ALLOWED", "{first}");

    let query = serde_urlencoded::to_string([("query", unlisted)]).expect("qs");
    let resp = app
        .client
        .get(app.url(&format!("/graphql?{query}")))
        .header("Accept", "text/event-stream")
        .header("Authorization", format!("Bearer {}", alice.token))
        .header("New-Api-User", alice.id.to_string())
        .send()
        .await
        .expect("request");
    let first = Sse::from_response(resp).next().await.expect("an answer");
    assert_eq!(code(&first), "PERSISTED_QUERY_NOT_ALLOWED", "{first}");

    let mut ws = socket(&app, &alice).await;
    ws.subscribe("x", unlisted, Value::Null).await;
    let first = answer(&mut ws, "x").await;
    assert_eq!(code(&first), "PERSISTED_QUERY_NOT_ALLOWED", "{first}");
    let live = "subscription { midjourneyTaskEvents { kind } }";
    ws.subscribe("y", live, Value::Null).await;
    let first = answer(&mut ws, "y").await;
    assert_eq!(code(&first), "PERSISTED_QUERY_NOT_ALLOWED", "{first}");
    // The listed one runs.
    ws.subscribe("z", listed, Value::Null).await;
    assert!(answer(&mut ws, "z").await["errors"].is_null());
}

/// Item 3: an open WebSocket keeps its place under `--max-connections`, and one user's
/// sockets are capped.
#[tokio::test]
async fn websockets_count_against_the_connection_cap_and_each_user_has_a_socket_cap() {
    let app = spawn_app_with(TestDb::new().await, |c| c.server.max_connections = 3).await;
    let alice = app.user("alice", Role::Common).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(socket(&app, &alice).await);
    }
    let fresh = reqwest::Client::new();
    let refused = fresh
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), 503, "three sockets fill a cap of three");
    drop(open.pop());
    let mut status = 0;
    for _ in 0..50 {
        status = reqwest::Client::new()
            .get(app.url("/healthz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200, "a closed socket frees its place");

    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let mut sockets = Vec::new();
    for _ in 0..MAX_SOCKETS_PER_USER {
        sockets.push(socket(&app, &alice).await);
    }
    let mut one_more = Ws::connect(app.addr, "graphql-transport-ws").await;
    match one_more
        .init_with(crate::live_client::init_payload(&alice))
        .await
    {
        Frame::Close(1008, reason) => assert!(reason.contains("WebSockets"), "{reason}"),
        other => panic!("expected a 1008 close, got {other:?}"),
    }
    drop(sockets.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    socket(&app, &alice).await;
}

/// Item 4: one user has one rate budget, however the user id is spelt, and every operation
/// on a socket spends from it.
#[tokio::test]
async fn one_user_has_one_rate_budget_whatever_the_spelling_and_the_transport() {
    let app = spawn_app_with(TestDb::new().await, |c| c.server.rate_limit_per_user = 3).await;
    let alice = app.user("alice", Role::Common).await;
    let id = alice.id;
    let mut statuses = Vec::new();
    for spelling in [
        format!("{id}"),
        format!("0{id}"),
        format!("+{id}"),
        format!("Bearer {id}"),
    ] {
        let a = app
            .get_with(
                "/api/mj/self",
                &[
                    ("Authorization", alice.token.as_str()),
                    ("New-Api-User", spelling.as_str()),
                ],
            )
            .await;
        statuses.push(a.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429], "one budget of three");

    let app = spawn_app_with(TestDb::new().await, |c| c.server.rate_limit_per_user = 2).await;
    let bob = app.user("bob", Role::Common).await;
    let mut ws = socket(&app, &bob).await;
    for i in 0..6 {
        ws.subscribe(&i.to_string(), "{ viewer { id } }", Value::Null)
            .await;
    }
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 6 {
        let v = ws.json().await;
        if v["type"] == "next" {
            answers.insert(v["id"].to_string(), code(&v["payload"]).to_owned());
        }
    }
    let limited = answers.values().filter(|c| *c == "RATE_LIMITED").count();
    assert!(limited >= 3, "{limited} of 6 refused with a budget of 2");
}

/// Item 5: `--no-introspection` keeps the schema private: `_service { sdl }` is refused,
/// however it is reached.
#[tokio::test]
async fn no_introspection_refuses_the_federation_sdl_too() {
    let app = spawn_app_with(TestDb::new().await, |c| c.no_introspection = true).await;
    for query in [
        "{ _service { sdl } }",
        "{ ... on Query { _service { sdl } } }",
        "query { ...S } fragment S on Query { _service { sdl } }",
    ] {
        let a = app.gql_vars(None, query, Value::Null).await;
        assert_eq!(a.codes(), ["INTROSPECTION_DISABLED"], "{query}: {}", a.text);
        assert!(!a.text.contains("midjourneyTasks"), "{}", a.text);
    }
    // With introspection on, the gateway can still read it.
    let app = spawn_app().await;
    let a = app
        .gql_vars(None, "{ _service { sdl } }", Value::Null)
        .await;
    assert!(a.text.contains("midjourneyTasks"), "{}", a.text);
}

/// Holds every connection of the server's pool (size 2 in these tests) until dropped.
async fn hold_pool(app: &TestApp) -> Vec<sea_orm::DatabaseTransaction> {
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(app.service.db().begin().await.expect("hold"));
    }
    held
}

/// Item 6: `--request-timeout-ms` bounds an operation over SSE and over a WebSocket as it
/// bounds a POST.
#[tokio::test]
async fn the_timeout_bounds_operations_over_sse_and_websockets() {
    let app = spawn_app_with(TestDb::new().await, |c| {
        c.server.request_timeout_ms = 300;
        c.db.db_max_connections = 2;
        c.db.db_acquire_timeout_ms = 10_000;
    })
    .await;
    let alice = app.user("alice", Role::Common).await;
    let mut ws = socket(&app, &alice).await;
    let held = hold_pool(&app).await;
    let started = std::time::Instant::now();
    let mut sse = Sse::open(
        &app,
        Some(&alice),
        "{ midjourneyTasks { totalCount } }",
        Value::Null,
    )
    .await;
    let first = sse.next().await.expect("an answer");
    assert_eq!(code(&first), "TIMEOUT", "{first}");
    ws.subscribe("slow", "{ midjourneyTasks { totalCount } }", Value::Null)
        .await;
    let first = answer(&mut ws, "slow").await;
    assert_eq!(code(&first), "TIMEOUT", "{first}");
    let post = app.gql(&alice, "{ midjourneyTasks { totalCount } }").await;
    assert_eq!(post.status, 504);
    assert_eq!(post.codes(), ["TIMEOUT"]);
    println!("three timed-out operations in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(held);
}

/// Item 10: at shutdown an SSE query in flight gets its answer (as a POST does), and a
/// WebSocket's subscriptions complete before the socket closes.
#[tokio::test]
async fn operations_in_flight_at_shutdown_answer_and_subscriptions_complete() {
    let mut app = spawn_app_with(TestDb::new().await, |c| {
        c.db.db_max_connections = 2;
        c.db.db_acquire_timeout_ms = 10_000;
        c.server.request_timeout_ms = 0;
    })
    .await;
    let alice = app.user("alice", Role::Common).await;
    app.task(Task::of(alice.id)).await;
    let mut ws = socket(&app, &alice).await;
    ws.subscribe(
        "live",
        "subscription { midjourneyTaskEvents { kind } }",
        Value::Null,
    )
    .await;
    assert!(ws.silent_for(Duration::from_millis(300)).await);
    let held = hold_pool(&app).await;
    let mut sse = Sse::open(
        &app,
        Some(&alice),
        "{ midjourneyTasks { totalCount } }",
        Value::Null,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for tx in held {
        tx.rollback().await.expect("release");
    }
    let answered = sse
        .next()
        .await
        .expect("the query's answer, not a bare complete");
    assert_eq!(
        answered["data"]["midjourneyTasks"]["totalCount"], 1,
        "{answered}"
    );
    assert_eq!(sse.next().await, None, "then complete");
    assert_eq!(ws.next_of("live").await, None, "the subscription completes");
    match ws.recv(WITHIN).await {
        Frame::Close(1001, _) => {}
        other => panic!("expected a 1001 close after complete, got {other:?}"),
    }
}

/// Item 12: anonymous clients cannot push a signed-in client's operation names out of the
/// metrics, nor evict the documents it registered by hash.
#[tokio::test]
async fn anonymous_clients_cannot_degrade_metrics_names_or_persisted_documents() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    for i in 0..105 {
        let body = json!({"query": format!("query Flood{i} {{ __typename }}"), "operationName": format!("Flood{i}")});
        app.client
            .post(app.url("/graphql"))
            .json(&body)
            .send()
            .await
            .expect("anonymous");
    }
    let doc = "query Dashboard { midjourneyTasks { totalCount } }";
    let registered = app
        .client
        .post(app.url("/graphql"))
        .header("Authorization", &alice.token)
        .header("New-Api-User", alice.id.to_string())
        .json(&json!({"query": doc, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash(doc)}}}))
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status(), 200);
    let metrics = app.get_with("/metrics", &[]).await.text;
    assert!(
        metrics
            .contains(r#"mj_tasks_graphql_operations_total{operation="Dashboard",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains("Flood"), "anonymous names are not kept");

    // 70 anonymous documents of ~60 KB each (more than the cache holds).
    for i in 0..70 {
        let big = format!("query Big{i} {{ __typename }} # {}", "x".repeat(60_000));
        app.client
            .post(app.url("/graphql"))
            .json(&json!({"query": big, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash(&big)}}}))
            .send()
            .await
            .expect("anonymous registration");
    }
    let by_hash = app
        .client
        .post(app.url("/graphql"))
        .header("Authorization", &alice.token)
        .header("New-Api-User", alice.id.to_string())
        .json(&json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash(doc)}}}))
        .send()
        .await
        .expect("by hash")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(
        by_hash["data"]["midjourneyTasks"]["totalCount"], 0,
        "alice's document is still known: {by_hash}"
    );
}

/// Suspected: `Accept: text/event-stream;q=0` says the client does not want an event stream.
#[tokio::test]
async fn an_event_stream_refused_with_q_0_is_not_chosen() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("Accept", "text/event-stream;q=0, application/json")
        .header("Authorization", format!("Bearer {}", alice.token))
        .header("New-Api-User", alice.id.to_string())
        .json(&json!({"query": "{ viewer { id } }"}))
        .send()
        .await
        .expect("request");
    let ct = resp.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
}

/// Item 7: an event-stream subscriber that never reads is dropped (its subscription freed,
/// its connection closed) once an event has waited 10 s for it, as on a WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_client_that_never_reads_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app_with(TestDb::new().await, |c| c.live.live_poll_ms = 50).await;
    let alice = app.user("alice", Role::Common).await;
    let body =
        json!({"query": "subscription { midjourneyTaskEvents { kind task { prompt promptEn } } }"})
            .to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {}\r\nNew-Api-User: {}\r\nContent-Length: {}\r\n\r\n{body}",
        alice.token,
        alice.id,
        body.len()
    );
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let mut stream = socket.connect(app.addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = [0u8; 256];
    let n = stream.read(&mut head).await.expect("the response head");
    assert!(String::from_utf8_lossy(&head[..n]).contains("200 OK"));
    // From here on the client reads nothing.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.live.subscriptions() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.live.subscriptions(), 1);
    // About 24 MB of events (each task's prompt twice).
    let prompt = "p".repeat(4000);
    for batch in 0..30 {
        let rows: Vec<String> = (0..100)
            .map(|i| {
                format!(
                    "({}, 'IMAGINE', 'big-{batch}-{i}', '{prompt}', '{prompt}', 1764000000000, 'SUBMITTED', '0%')",
                    alice.id
                )
            })
            .collect();
        app.sql(&format!(
            "INSERT INTO midjourneys (user_id, action, mj_id, prompt, prompt_en, submit_time, status, progress) VALUES {}",
            rows.join(", ")
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let started = std::time::Instant::now();
    while app.live.subscriptions() > 0 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "a client that stopped reading was dropped {:?} after the last write",
        started.elapsed()
    );
    assert_eq!(app.live.subscriptions(), 0, "the subscription was freed");
    drop(stream);
}
