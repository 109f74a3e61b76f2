//! Live progress: subscriptions over WebSocket and SSE follow writes made to the table from
//! outside the service, scoped like every other door, with their limits and their ends.

use std::time::Duration;

use mj_tasks::service::Role;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::deployment::RedisServer;
use crate::helpers::{TestApp, TestDb, TestUser, spawn_app_with};
use crate::live_client::{EVENTS, Frame, Sse, WITHIN, Ws, init_payload};

/// A server polling every 200 ms.
async fn live_app() -> TestApp {
    spawn_app_with(TestDb::new().await, |cfg| cfg.live.live_poll_ms = 200).await
}

fn kind_and_state(e: &Value) -> (String, String, String) {
    (
        e["kind"].as_str().unwrap_or_default().to_owned(),
        e["task"]["status"].as_str().unwrap_or_default().to_owned(),
        e["task"]["progress"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn expect(e: &Value, kind: &str, status: &str, progress: &str) {
    assert_eq!(
        kind_and_state(e),
        (kind.into(), status.into(), progress.into()),
        "event {e}"
    );
}

/// Each write waits for its event, so order is checked step by step.
async fn lifecycle_over_ws(protocol: &'static str) {
    let app = live_app().await;
    let alice = app.user("alice", Role::Common).await;
    let mut ws = Ws::connect(app.addr, protocol).await;
    ws.init(&alice).await;
    ws.subscribe("1", EVENTS, json!({})).await;
    // The subscription is registered before the first write (its poller baseline too).
    tokio::time::sleep(Duration::from_millis(400)).await;

    app.db.submit(alice.id, "ok-1", 1).await;
    let e = ws.event("1").await;
    expect(&e, "CREATED", "SUBMITTED", "0%");
    assert_eq!(e["task"]["userId"], alice.id);
    app.db.progress("ok-1", "IN_PROGRESS", "45%").await;
    expect(&ws.event("1").await, "UPDATED", "IN_PROGRESS", "45%");
    app.db.succeed("ok-1").await;
    let e = ws.event("1").await;
    expect(&e, "FINISHED", "SUCCESS", "100%");
    assert_eq!(e["task"]["imageUrl"], "https://cdn.example/ok-1.png");
    assert_eq!(e["task"]["finished"], true);

    app.db.submit(alice.id, "bad-1", 1).await;
    expect(&ws.event("1").await, "CREATED", "SUBMITTED", "0%");
    app.db.fail("bad-1", "banned prompt").await;
    let e = ws.event("1").await;
    expect(&e, "FINISHED", "FAILURE", "100%");
    assert_eq!(e["task"]["failReason"], "banned prompt");
}

#[tokio::test]
async fn websocket_events_follow_outside_writes_in_order() {
    lifecycle_over_ws("graphql-transport-ws").await;
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_works_too() {
    lifecycle_over_ws("graphql-ws").await;
}

#[tokio::test]
async fn sse_events_follow_outside_writes_in_order() {
    let app = live_app().await;
    let bob = app.user("bob", Role::Common).await;
    let mut sse = Sse::open(&app, Some(&bob), EVENTS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    app.db.submit(bob.id, "s-1", 1).await;
    expect(&sse.event().await, "CREATED", "SUBMITTED", "0%");
    app.db.progress("s-1", "IN_PROGRESS", "10%").await;
    expect(&sse.event().await, "UPDATED", "IN_PROGRESS", "10%");
    app.db.progress("s-1", "IN_PROGRESS", "80%").await;
    expect(&sse.event().await, "UPDATED", "IN_PROGRESS", "80%");
    app.db.fail("s-1", "upstream timeout").await;
    expect(&sse.event().await, "FINISHED", "FAILURE", "100%");
}

#[tokio::test]
async fn queries_over_sse_answer_once_and_complete() {
    let app = live_app().await;
    let bob = app.user("bob", Role::Common).await;
    let mut sse = Sse::open(&app, Some(&bob), "{ viewer { id } }", json!({})).await;
    let answer = sse.next().await.expect("one answer");
    assert_eq!(answer["data"]["viewer"]["id"], bob.id);
    assert!(sse.next().await.is_none(), "then complete");
    // Without credentials, the error is the stream's only answer.
    let mut sse = Sse::open(&app, None, EVENTS, json!({})).await;
    let answer = sse.next().await.expect("an error answer");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert!(sse.next().await.is_none());
    // A subscription over plain HTTP is refused with a reason.
    let plain = app.gql(&bob, EVENTS).await;
    assert!(
        plain.text.contains("ubscription") && !plain.codes().is_empty(),
        "{}",
        plain.text
    );
}

/// Three users and an admin subscribe while every user's tasks move at once: each sees
/// exactly their own tasks, the admin's channel filter holds.
#[tokio::test]
async fn no_subscriber_ever_gets_another_users_task() {
    let app = live_app().await;
    let admin = app.user("boss", Role::Admin).await;
    let mut users = Vec::new();
    for name in ["ann", "ben", "cat"] {
        users.push(app.user(name, Role::Common).await);
    }
    let mut subs = Vec::new();
    for u in &users {
        let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
        ws.init(u).await;
        ws.subscribe("all", EVENTS, json!({})).await;
        subs.push(ws);
    }
    let mut boss = Ws::connect(app.addr, "graphql-transport-ws").await;
    boss.init(&admin).await;
    boss.subscribe("c2", EVENTS, json!({"filter": {"channelId": {"eq": 2}}}))
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Every user's tasks, written concurrently: 3 tasks each, alternating channels.
    let writers = users.iter().map(|u| {
        let app = &app;
        async move {
            for i in 0..3 {
                let mj = format!("u{}-{i}", u.id);
                app.db.submit(u.id, &mj, 1 + i % 2).await;
                app.db.progress(&mj, "IN_PROGRESS", "50%").await;
                app.db.succeed(&mj).await;
            }
        }
    });
    futures_util::future::join_all(writers).await;

    for (u, ws) in users.iter().zip(subs.iter_mut()) {
        let mut finished = Vec::new();
        while finished.len() < 3 {
            let e = ws.event("all").await;
            assert_eq!(e["task"]["userId"], u.id, "user {} got {e}", u.id);
            // Writes faster than a poll may show a task first as already finished.
            if e["task"]["finished"] == true {
                finished.push(e["task"]["mjId"].as_str().unwrap_or_default().to_owned());
            }
        }
        finished.sort();
        let mine: Vec<String> = (0..3).map(|i| format!("u{}-{i}", u.id)).collect();
        assert_eq!(finished, mine);
    }
    // The admin sees every user's channel-2 tasks (one per user) and nothing else.
    let mut finished = Vec::new();
    while finished.len() < 3 {
        let e = boss.event("c2").await;
        let mj = e["task"]["mjId"].as_str().unwrap_or_default().to_owned();
        assert!(
            mj.ends_with("-1"),
            "only channel 2 (the second task of each): {e}"
        );
        if e["task"]["finished"] == true {
            finished.push(mj);
        }
    }
    assert_eq!(finished.len(), 3);
}

#[tokio::test]
async fn credentials_are_checked_at_connection_init() {
    let app = spawn_app_with(TestDb::new().await, |cfg| {
        cfg.live.live_poll_ms = 200;
        cfg.live.ws_init_timeout_ms = 300;
    })
    .await;
    let alice = app.user("alice", Role::Common).await;
    let banned = app.user("banned", Role::Common).await;
    app.sql(&format!(
        "UPDATE users SET status = 2 WHERE id = {}",
        banned.id
    ))
    .await;

    let wrong = TestUser {
        id: alice.id,
        token: "x".repeat(32),
    };
    let other_id = TestUser {
        id: banned.id,
        token: alice.token.clone(),
    };
    let cases: [(Value, u16); 5] = [
        (json!({}), 4401),
        (init_payload(&wrong), 4401),
        (init_payload(&other_id), 4401),
        (
            json!({"headers": {"authorization": alice.token, "new-api-user": "abc"}}),
            4401,
        ),
        (init_payload(&banned), 4403),
    ];
    for (payload, code) in cases {
        let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
        match ws.init_with(payload.clone()).await {
            Frame::Close(c, reason) => {
                assert_eq!(c, code, "{payload}: {reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{payload}: expected a close, got {other:?}"),
        }
    }
    // The headers also work nested and with a numeric user id.
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    let nested = json!({"headers": {"authorization": format!("Bearer {}", alice.token), "New-Api-User": alice.id}});
    assert!(matches!(ws.init_with(nested).await, Frame::Json(v) if v["type"] == "connection_ack"));

    // No connection_init at all: closed after the init timeout.
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    match ws.recv(WITHIN).await {
        Frame::Close(4408, _) => {}
        other => panic!("expected 4408, got {other:?}"),
    }
    // Subscribing before init is refused by the protocol.
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.subscribe("1", EVENTS, json!({})).await;
    assert!(matches!(ws.recv(WITHIN).await, Frame::Close(..)));

    // An upgrade offering no GraphQL subprotocol is refused before any WebSocket exists.
    let resp = app
        .client
        .get(app.url("/graphql"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn admin_only_filters_and_fields_stay_admin_only() {
    let app = live_app().await;
    let alice = app.user("alice", Role::Common).await;
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.init(&alice).await;
    ws.subscribe("1", EVENTS, json!({"filter": {"channelId": {"eq": 1}}}))
        .await;
    let payload = ws.next_of("1").await.expect("an error");
    assert_eq!(payload["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(ws.next_of("1").await, None);

    ws.subscribe(
        "2",
        "subscription { midjourneyTaskEvents { task { id channelId } } }",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.db.submit(alice.id, "a-1", 3).await;
    let payload = ws.next_of("2").await.expect("an event");
    assert_eq!(payload["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert!(payload["data"]["midjourneyTaskEvents"]["task"]["id"].is_i64());
}

#[tokio::test]
async fn a_banned_or_deleted_user_stops_receiving_events_within_a_poll() {
    let app = live_app().await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    let mut a = Ws::connect(app.addr, "graphql-transport-ws").await;
    a.init(&alice).await;
    a.subscribe("1", EVENTS, json!({})).await;
    let mut b = Sse::open(&app, Some(&bob), EVENTS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.db.submit(alice.id, "before", 1).await;
    expect(&a.event("1").await, "CREATED", "SUBMITTED", "0%");

    app.sql(&format!(
        "UPDATE users SET status = 2 WHERE id = {}",
        alice.id
    ))
    .await;
    app.sql("UPDATE users SET deleted_at = CURRENT_TIMESTAMP WHERE username = 'bob'")
        .await;
    app.db.submit(alice.id, "after", 1).await;
    app.db.submit(bob.id, "after-b", 1).await;
    let payload = a.next_of("1").await.expect("the end, as an error");
    assert_eq!(
        payload["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{payload}"
    );
    assert_eq!(a.next_of("1").await, None, "then complete");
    let payload = b.next().await.expect("the end, as an error");
    assert_eq!(
        payload["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{payload}"
    );
    assert!(b.next().await.is_none());
}

#[tokio::test]
async fn an_mj_ids_subscription_completes_when_all_have_finished() {
    let app = live_app().await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    app.db.submit(alice.id, "j-1", 1).await;
    app.db.submit(alice.id, "j-done", 1).await;
    app.db.succeed("j-done").await;
    app.db.submit(bob.id, "j-bob", 1).await;

    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.init(&alice).await;
    let vars = json!({"mjIds": ["j-1", "j-2", "j-done", "j-bob"], "snap": true});
    ws.subscribe("1", EVENTS, vars).await;
    // The snapshot: the listed unfinished tasks alice may see.
    let e = ws.event("1").await;
    expect(&e, "SNAPSHOT", "SUBMITTED", "0%");
    assert_eq!(e["task"]["mjId"], "j-1");

    // j-bob is another user's: it never arrives, and it does not hold the subscription open
    // for alice beyond her own (bob's task reads as not there, like any other id).
    app.db.submit(alice.id, "j-other", 1).await;
    app.db.submit(alice.id, "j-2", 1).await;
    let e = ws.event("1").await;
    expect(&e, "CREATED", "SUBMITTED", "0%");
    assert_eq!(e["task"]["mjId"], "j-2");
    app.db.succeed("j-1").await;
    app.db.succeed("j-bob").await;
    let e = ws.event("1").await;
    expect(&e, "FINISHED", "SUCCESS", "100%");
    assert_eq!(e["task"]["mjId"], "j-1");
    app.db.fail("j-2", "no").await;
    let e = ws.event("1").await;
    expect(&e, "FINISHED", "FAILURE", "100%");
    // j-bob stays invisible, so the subscription waits for it as for an id not yet
    // submitted: it is still open.
    assert!(ws.silent_for(Duration::from_millis(800)).await);
    // Listing only her own: the subscription completes once they have finished.
    ws.subscribe("2", EVENTS, json!({"mjIds": ["j-3"]})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.db.submit(alice.id, "j-3", 1).await;
    expect(&ws.event("2").await, "CREATED", "SUBMITTED", "0%");
    app.db.succeed("j-3").await;
    expect(&ws.event("2").await, "FINISHED", "SUCCESS", "100%");
    assert_eq!(
        ws.next_of("2").await,
        None,
        "complete after the last one finished"
    );
}

#[tokio::test]
async fn an_mj_ids_subscription_of_finished_tasks_completes_at_once() {
    let app = live_app().await;
    let alice = app.user("alice", Role::Common).await;
    app.db.submit(alice.id, "f-1", 1).await;
    app.db.succeed("f-1").await;
    let mut sse = Sse::open(&app, Some(&alice), EVENTS, json!({"mjIds": ["f-1"]})).await;
    assert!(sse.next().await.is_none(), "complete at once");
}

#[tokio::test]
async fn nobody_subscribed_means_no_polling() {
    let app = live_app().await;
    let alice = app.user("alice", Role::Common).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(app.live.polls(), 0, "no subscriber yet");

    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.init(&alice).await;
    ws.subscribe("1", EVENTS, json!({})).await;
    ws.subscribe("2", EVENTS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let polled = app.live.polls();
    assert!(polled >= 2, "about one poll per 200 ms, got {polled}");
    assert_eq!(app.live.subscriptions(), 2);
    // One completed by the client, the other ended with the connection.
    ws.send(json!({"id": "1", "type": "complete"})).await;
    drop(ws);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.live.subscriptions() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.live.subscriptions(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped_at = app.live.polls();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        app.live.polls(),
        stopped_at,
        "polling stops with the last subscriber"
    );
}

#[tokio::test]
async fn subscription_limits_per_connection_and_per_user() {
    let app = spawn_app_with(TestDb::new().await, |cfg| {
        cfg.live.live_poll_ms = 200;
        cfg.live.live_max_per_user = 12;
    })
    .await;
    let alice = app.user("alice", Role::Common).await;
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.init(&alice).await;
    // 11 on one connection: one of them (whichever starts last) is refused.
    for i in 0..11 {
        ws.subscribe(&i.to_string(), EVENTS, json!({})).await;
    }
    let (refused, code) = ws.failed_operation().await;
    assert_eq!(code, "TOO_MANY_SUBSCRIPTIONS");
    assert_eq!(ws.next_of(&refused).await, None, "then complete");
    // 3 more on another connection: 12 per user, so one is refused.
    let mut other = Ws::connect(app.addr, "graphql-transport-ws").await;
    other.init(&alice).await;
    for i in 0..3 {
        other.subscribe(&i.to_string(), EVENTS, json!({})).await;
    }
    let (refused_too, code) = other.failed_operation().await;
    assert_eq!(code, "TOO_MANY_SUBSCRIPTIONS", "12 per user");
    assert_eq!(app.live.subscriptions(), 12);
    // The others still work.
    let kept = (0..11)
        .map(|i| i.to_string())
        .find(|i| *i != refused)
        .unwrap();
    let kept_too = (0..3)
        .map(|i| i.to_string())
        .find(|i| *i != refused_too)
        .unwrap();
    app.db.submit(alice.id, "l-1", 1).await;
    expect(&ws.event(&kept).await, "CREATED", "SUBMITTED", "0%");
    expect(&other.event(&kept_too).await, "CREATED", "SUBMITTED", "0%");
}

#[tokio::test]
async fn shutdown_ends_subscriptions_cleanly() {
    let app = live_app().await;
    let alice = app.user("alice", Role::Common).await;
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.init(&alice).await;
    ws.subscribe("1", EVENTS, json!({})).await;
    let mut sse = Sse::open(&app, Some(&alice), EVENTS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _db = app.into_db();
    // The WebSocket completes its subscription and closes with 1001; the SSE stream ends
    // with its complete event.
    let mut closed = None;
    while closed.is_none() {
        match ws.recv(WITHIN).await {
            Frame::Json(v) => assert_eq!(v["type"], "complete", "{v}"),
            Frame::Close(code, reason) => closed = Some((code, reason)),
            Frame::Gone => panic!("reset instead of a close"),
        }
    }
    assert_eq!(closed.map(|c| c.0), Some(1001));
    assert!(sse.next().await.is_none());
}

/// 1,000 open subscriptions (100 WebSockets × 10, 50 users) and a few unfinished tasks being
/// watched: each poll is still one query, whatever the number of subscribers.
#[tokio::test]
async fn a_thousand_idle_subscribers_cost_one_query_per_poll() {
    let app = live_app().await;
    let mut users = Vec::new();
    for i in 0..50 {
        users.push(app.user(&format!("idle{i}"), Role::Common).await);
    }
    for (i, u) in users.iter().take(5).enumerate() {
        app.db.submit(u.id, &format!("w-{i}"), 1).await;
    }
    let mut sockets = Vec::new();
    for i in 0..100 {
        let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
        ws.init(&users[i % 50]).await;
        for s in 0..10 {
            ws.subscribe(&s.to_string(), EVENTS, json!({})).await;
        }
        sockets.push(ws);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.live.subscriptions() < 1000 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.live.subscriptions(), 1000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (polls, queries) = (app.live.polls(), app.service.query_counts().live);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let polled = app.live.polls() - polls;
    let queried = app.service.query_counts().live - queries;
    println!("1,000 idle subscribers: {polled} polls, {queried} poll queries in 2 s");
    assert!(polled >= 5, "about one poll per 200 ms, got {polled}");
    // A poll under way at either reading may count its query and not yet itself.
    assert!(
        queried.abs_diff(polled) <= 1,
        "{queried} queries for {polled} polls"
    );
    // They are all alive: one change reaches each of the user's 20 subscriptions.
    app.db.progress("w-0", "IN_PROGRESS", "5%").await;
    for ws in sockets.iter_mut().step_by(50) {
        let mut ids = Vec::new();
        for (id, e) in ws.events(10).await {
            expect(&e, "UPDATED", "IN_PROGRESS", "5%");
            ids.push(id.parse::<u32>().unwrap());
        }
        ids.sort_unstable();
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
    }
}

/// A subscriber that stops reading falls behind by more than its buffer: it is told why
/// (SLOW_CONSUMER, then close 1008) when it reads again, and meanwhile another subscriber
/// keeps receiving every change on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_dropped_with_a_reason_and_never_slows_the_others() {
    let app = spawn_app_with(TestDb::new().await, |cfg| cfg.live.live_poll_ms = 20).await;
    let alice = app.user("alice", Role::Common).await;
    // Ten tasks with 60 KB prompts: every poll's events weigh 600 KB for a client that
    // selects the prompt, enough to fill the socket buffers in well under a second.
    let big = "x".repeat(60_000);
    for i in 0..10 {
        app.db.submit(alice.id, &format!("big-{i}"), 1).await;
    }
    app.db
        .write(&format!("UPDATE midjourneys SET prompt = '{big}'"))
        .await;
    let heavy = "subscription { midjourneyTaskEvents { kind task { mjId progress prompt } } }";
    let mut slow = Ws::connect(app.addr, "graphql-transport-ws").await;
    slow.init(&alice).await;
    slow.subscribe("slow", heavy, json!({})).await;
    let mut fast = Ws::connect(app.addr, "graphql-transport-ws").await;
    fast.init(&alice).await;
    fast.subscribe("fast", EVENTS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The fast subscriber reads all along, noting the last progress it saw.
    let reader = tokio::spawn(async move {
        let mut last = String::new();
        loop {
            match fast.recv(Duration::from_secs(10)).await {
                Frame::Json(v) if v["type"] == "next" => {
                    let t = &v["payload"]["data"]["midjourneyTaskEvents"]["task"];
                    if t["mjId"] == "big-0" {
                        last = t["progress"].as_str().unwrap_or_default().to_owned();
                        if last == "done" {
                            return (last, tokio::time::Instant::now());
                        }
                    }
                }
                Frame::Json(_) => {}
                other => panic!("the fast subscriber lost its connection: {other:?} after {last}"),
            }
        }
    });
    // Progress on all ten tasks before every poll, for 150 polls (over twice the buffer),
    // while the slow client reads nothing: whatever the machine's speed, it falls behind.
    // (Within the server's 10 s send timeout, past which a client that reads nothing at
    // all is cut off with no reason given.)
    let writer = app.db.connect().await;
    for n in 0..150 {
        let polled = app.live.polls();
        writer
            // Never "100%": a finished task is no longer watched.
            .execute_unprepared(&format!("UPDATE midjourneys SET progress = 'step {n}'"))
            .await
            .expect("update");
        let waited = tokio::time::Instant::now();
        while app.live.polls() == polled && waited.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    app.db
        .write("UPDATE midjourneys SET progress = 'done'")
        .await;
    let wrote = tokio::time::Instant::now();
    let (last, seen_at) = reader.await.expect("fast reader");
    assert_eq!(last, "done");
    let lag = seen_at.duration_since(wrote);
    assert!(
        lag < WITHIN,
        "the fast subscriber saw the last change {lag:?} late"
    );

    // The slow one reads again: what was sent, then why it ends, then the close.
    let mut events = 0;
    let mut ended = None;
    loop {
        match slow.recv(Duration::from_secs(20)).await {
            Frame::Json(v) if v["type"] == "next" => {
                let errors = &v["payload"]["errors"];
                if errors.is_null() {
                    events += 1;
                } else {
                    ended = errors[0]["extensions"]["code"].as_str().map(str::to_owned);
                }
            }
            Frame::Json(_) => {}
            Frame::Close(code, reason) => {
                assert_eq!(code, 1008, "{reason}");
                assert!(reason.contains("slow"), "{reason}");
                break;
            }
            Frame::Gone => panic!("dropped without a reason after {events} events"),
        }
    }
    assert_eq!(ended.as_deref(), Some("SLOW_CONSUMER"));
    println!(
        "slow subscriber: {events} events delivered before it was dropped; fast one {lag:?} behind"
    );
}

#[test]
fn the_readme_shows_the_snippet_the_browser_test_runs() {
    let readme = include_str!("../../README.md");
    assert!(readme.contains(crate::browser::README_SNIPPET));
}

/// Two instances on one database: each polls on its own and feeds its own subscribers.
#[tokio::test]
async fn every_instance_on_one_database_feeds_its_own_subscribers() {
    let first = live_app().await;
    let second = spawn_app_with(TestDb::borrowed(&first.db.url, first.db.backend), |cfg| {
        cfg.live.live_poll_ms = 200
    })
    .await;
    let alice = first.user("alice", Role::Common).await;
    let mut a = Ws::connect(first.addr, "graphql-transport-ws").await;
    a.init(&alice).await;
    a.subscribe("1", EVENTS, json!({})).await;
    let mut b = Sse::open(&second, Some(&alice), EVENTS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    first.db.submit(alice.id, "both", 1).await;
    expect(&a.event("1").await, "CREATED", "SUBMITTED", "0%");
    expect(&b.event().await, "CREATED", "SUBMITTED", "0%");
    assert!(first.live.polls() > 0 && second.live.polls() > 0);
}

/// The lookup budget belongs to each operation, not to the connection: a long-lived
/// WebSocket keeps answering `midjourneyTask` queries after more than 100 of them.
#[tokio::test]
async fn a_websocket_connection_runs_more_lookups_than_one_operations_budget() {
    let app = live_app().await;
    let alice = app.user("alice", Role::Common).await;
    app.db.submit(alice.id, "ws-lookup", 1).await;
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.init(&alice).await;
    let query = "query($m: String) { midjourneyTask(mjId: $m) { mjId } }";
    for i in 0..mj_tasks::service::MAX_LOOKUPS + 5 {
        let id = i.to_string();
        ws.subscribe(&id, query, json!({"m": "ws-lookup"})).await;
        let payload = ws.next_of(&id).await.expect("an answer");
        assert_eq!(
            payload["data"]["midjourneyTask"]["mjId"], "ws-lookup",
            "operation {i}: {payload}"
        );
        assert_eq!(ws.next_of(&id).await, None, "then complete");
    }
}

/// A change made the moment `subscribe` returns is an event, every time, on a poller that
/// has just started (regression: the poller took its baseline at its first round, which
/// could come after the subscription had returned and the row had changed; the baseline then
/// held the new state and the change was never sent). Each round starts a new live service,
/// so each subscription is its poller's first; with `redis`, each round is a new deployment
/// (its own key prefix), whose first leader starts afresh.
async fn a_change_the_moment_a_subscription_starts(redis: Option<&RedisServer>) {
    use mj_tasks::cluster::Cluster;
    use mj_tasks::service::live::{EventKind, Live, LiveConfig, LiveRequest};
    use mj_tasks::service::{Midjourneys, Service, TaskFilter, Viewer};

    let app = live_app().await;
    let alice = app.user("alice", Role::Common).await;
    let viewer = Viewer {
        id: alice.id,
        username: "alice".into(),
        role: Role::Common,
    };
    let writer = app.db.connect().await;
    for round in 0..5 {
        let mj_id = format!("race-{round}");
        app.db.submit(alice.id, &mj_id, 1).await;
        let cluster = match redis {
            None => None,
            Some(redis) => {
                let prefix = crate::testdb::unique_name();
                let cluster =
                    Cluster::new(&redis.url(), &prefix, Duration::from_secs(1)).expect("cluster");
                assert!(cluster.probe().await, "redis answers");
                Some(cluster)
            }
        };
        let live = Live::in_deployment(
            Service::new(app.db.connect().await, None),
            LiveConfig {
                interval: Duration::from_millis(200),
                ..LiveConfig::default()
            },
            cluster,
        );
        let request = LiveRequest::<Midjourneys> {
            filter: TaskFilter::default(),
            keys: None,
            snapshot: false,
        };
        let mut sub = live.subscribe(&viewer, request).await.expect("subscribe");
        writer
            .execute_unprepared(&format!(
                "UPDATE midjourneys SET status = 'IN_PROGRESS', progress = '{round}1%' \
                 WHERE mj_id = '{mj_id}'"
            ))
            .await
            .expect("update");
        let event = tokio::time::timeout(WITHIN, sub.next())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the change was lost (no event)"))
            .expect("open")
            .expect("event");
        assert_eq!(event.kind, EventKind::Updated, "round {round}");
        assert_eq!(event.task.mj_id, mj_id, "round {round}");
        assert_eq!(event.task.progress, format!("{round}1%"), "round {round}");
        live.shutdown();
    }
}

#[tokio::test]
async fn a_change_the_moment_a_subscription_starts_is_never_lost() {
    a_change_the_moment_a_subscription_starts(None).await;
}

#[tokio::test]
async fn a_change_the_moment_a_subscription_starts_is_never_lost_in_a_deployment() {
    let redis = RedisServer::start();
    a_change_the_moment_a_subscription_starts(Some(&redis)).await;
}
