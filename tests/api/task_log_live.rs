//! Live progress of the generic task log: outside writes to `tasks` (insert, progress,
//! finish) reach a `taskEvents` subscriber within 2 s, in order and scoped, on the backend
//! under test; a subscription listing task ids completes when they have finished.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, TestUser, spawn_app_with};
use crate::live_client::{WITHIN, Ws};
use crate::task_log::{Row, insert, raw_user};

const TASK_EVENTS: &str = "subscription($f: TaskFilter, $ids: [String!], $snap: Boolean) { taskEvents(filter: $f, taskIds: $ids, initialSnapshot: $snap) { kind task { id taskId userId status progress resultUrl platform quota } } }";

async fn next_task_event(ws: &mut Ws, id: &str) -> Value {
    let payload = tokio::time::timeout(WITHIN, ws.next_of(id))
        .await
        .unwrap_or_else(|_| panic!("no event for {id} within {WITHIN:?}"))
        .unwrap_or_else(|| panic!("{id} completed"));
    assert!(payload["errors"].is_null(), "errors: {payload}");
    payload["data"]["taskEvents"].clone()
}

fn state(e: &Value) -> (String, i64, String, String) {
    (
        e["kind"].as_str().unwrap_or_default().to_owned(),
        e["task"]["id"].as_i64().unwrap_or_default(),
        e["task"]["status"].as_str().unwrap_or_default().to_owned(),
        e["task"]["progress"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn app_with_users() -> TestApp {
    let app = spawn_app_with(TestDb::new().await, |cfg| cfg.live.live_poll_ms = 200).await;
    raw_user(&app, 7, "alice", 1, "t7").await;
    raw_user(&app, 8, "bob", 1, "t8").await;
    app
}

fn alice() -> TestUser {
    TestUser {
        id: 7,
        token: "t7".into(),
    }
}

#[tokio::test]
async fn outside_writes_to_tasks_reach_a_subscriber_in_order_and_scoped() {
    let app = app_with_users().await;
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.init(&alice()).await;
    ws.subscribe("1", TASK_EVENTS, json!({ "snap": false }))
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Bob's task first: alice never hears of it.
    insert(
        &app,
        &[Row {
            status: Some("SUBMITTED"),
            progress: Some("0%"),
            ..Row::of(1, 8)
        }],
    )
    .await;
    insert(
        &app,
        &[Row {
            task_id: Some("task_a"),
            platform: Some("suno"),
            status: Some("SUBMITTED"),
            progress: Some("0%"),
            private_data: Some(r#"{"key":"LIVE-SECRET"}"#),
            ..Row::of(2, 7)
        }],
    )
    .await;
    let e = next_task_event(&mut ws, "1").await;
    assert_eq!(
        state(&e),
        ("CREATED".into(), 2, "SUBMITTED".into(), "0%".into()),
        "{e}"
    );
    app.sql(
        "UPDATE tasks SET status = 'IN_PROGRESS', progress = '40%', updated_at = 1 WHERE id = 2",
    )
    .await;
    let e = next_task_event(&mut ws, "1").await;
    assert_eq!(
        state(&e),
        ("UPDATED".into(), 2, "IN_PROGRESS".into(), "40%".into()),
        "{e}"
    );
    app.sql("UPDATE tasks SET progress = '40%', status = 'IN_PROGRESS' WHERE id = 1")
        .await;
    app.sql("UPDATE tasks SET status = 'SUCCESS', progress = '100%', fail_reason = 'https://v/2.mp4' WHERE id = 2").await;
    let e = next_task_event(&mut ws, "1").await;
    assert_eq!(
        state(&e),
        ("FINISHED".into(), 2, "SUCCESS".into(), "100%".into()),
        "{e}"
    );
    assert_eq!(e["task"]["resultUrl"], "https://v/2.mp4");
    assert!(!e.to_string().contains("LIVE-SECRET"));
    assert_eq!(e["task"]["userId"], 7);
}

#[tokio::test]
async fn a_subscription_to_listed_task_ids_starts_with_a_snapshot_and_completes() {
    let app = app_with_users().await;
    insert(
        &app,
        &[
            Row {
                task_id: Some("task_x"),
                status: Some("IN_PROGRESS"),
                progress: Some("10%"),
                ..Row::of(1, 7)
            },
            Row {
                task_id: Some("task_y"),
                status: Some("SUCCESS"),
                progress: Some("100%"),
                ..Row::of(2, 7)
            },
        ],
    )
    .await;
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.init(&alice()).await;
    ws.subscribe(
        "s",
        TASK_EVENTS,
        json!({ "ids": ["task_x", "task_y"], "snap": true }),
    )
    .await;
    let e = next_task_event(&mut ws, "s").await;
    assert_eq!(
        state(&e),
        ("SNAPSHOT".into(), 1, "IN_PROGRESS".into(), "10%".into()),
        "{e}"
    );
    app.sql("UPDATE tasks SET status = 'FAILURE', progress = '100%' WHERE id = 1")
        .await;
    let e = next_task_event(&mut ws, "s").await;
    assert_eq!(
        state(&e),
        ("FINISHED".into(), 1, "FAILURE".into(), "100%".into()),
        "{e}"
    );
    let done = tokio::time::timeout(WITHIN, ws.next_of("s"))
        .await
        .expect("completes");
    assert!(
        done.is_none(),
        "completed after every listed task finished: {done:?}"
    );
}

#[tokio::test]
async fn a_finished_task_stamped_again_is_sent_again_and_unstamped_rows_still_work() {
    let app = app_with_users().await;
    insert(
        &app,
        &[
            // Finished before the subscription: the poller does not watch it.
            Row {
                status: Some("SUCCESS"),
                progress: Some("100%"),
                quota: Some(100),
                updated_at: Some(1_700_000_000),
                ..Row::of(1, 7)
            },
            Row {
                status: Some("SUCCESS"),
                progress: Some("100%"),
                updated_at: Some(1_700_000_000),
                ..Row::of(2, 8)
            },
        ],
    )
    .await;
    let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
    ws.init(&alice()).await;
    ws.subscribe("1", TASK_EVENTS, json!({ "snap": false }))
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // new-api settles the quota after the task finished, stamping the row (bob's too).
    app.sql("UPDATE tasks SET quota = 60, updated_at = 1800000000 WHERE id IN (1, 2)")
        .await;
    let e = next_task_event(&mut ws, "1").await;
    assert_eq!(
        state(&e),
        ("FINISHED".into(), 1, "SUCCESS".into(), "100%".into()),
        "{e}"
    );
    assert_eq!(e["task"]["quota"], 60);
    // A legacy row without a stamp is still followed from its insert to its end.
    insert(
        &app,
        &[Row {
            status: Some("SUBMITTED"),
            progress: Some("0%"),
            ..Row::of(3, 7)
        }],
    )
    .await;
    let e = next_task_event(&mut ws, "1").await;
    assert_eq!(
        state(&e),
        ("CREATED".into(), 3, "SUBMITTED".into(), "0%".into()),
        "{e}"
    );
    app.sql("UPDATE tasks SET status = 'FAILURE', progress = '100%' WHERE id = 3")
        .await;
    let e = next_task_event(&mut ws, "1").await;
    assert_eq!(
        state(&e),
        ("FINISHED".into(), 3, "FAILURE".into(), "100%".into()),
        "{e}"
    );
    // Nothing else was sent in between: not bob's row, not row 1 again.
    let quiet = tokio::time::timeout(Duration::from_millis(700), ws.next_of("1")).await;
    assert!(quiet.is_err(), "no further event: {quiet:?}");
}
