//! What an operator sees and sets: JSON log lines carrying a request id that is also
//! returned to the client, and rate limits.

use std::time::Duration;

use mj_tasks::service::Role;

use crate::helpers::{TestDb, spawn_app_with};
use crate::process::ServerProcess;

#[tokio::test]
async fn json_logs_carry_the_request_id_the_response_returns() {
    let db = TestDb::new().await;
    let server = ServerProcess::start_logging(&db.url, &["--log-format", "json"], "info").await;
    let client = reqwest::Client::new();
    // The client's own id is kept; without one, the service makes one.
    let given = client
        .get(server.url("/api/mj/self"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(given.status(), 401);
    assert_eq!(given.headers()["x-request-id"], "trace-abc-123");
    let made = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("request");
    let made_id = made.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(made_id.len(), 36, "a UUID: {made_id}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let finished = |id: &str| {
        lines.iter().find(|l| {
            l["span"]["request_id"] == id && l["fields"]["message"] == "finished processing request"
        })
    };
    let line = finished("trace-abc-123").unwrap_or_else(|| panic!("no line for the id:\n{log}"));
    println!("{line}");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["path"], "/api/mj/self");
    assert_eq!(line["fields"]["status"], 401);
    assert!(finished(&made_id).is_some(), "the made id is logged too");
    // Tokens never reach the log.
    assert!(!log.contains("Authorization") && !log.contains("authorization"));
}

#[tokio::test]
async fn rate_limits_per_user_and_per_ip_answer_429_with_retry_after() {
    let app = spawn_app_with(TestDb::new().await, |c| {
        c.server.rate_limit_per_user = 5;
    })
    .await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    for _ in 0..5 {
        assert_eq!(app.get_as(&alice, "/api/mj/self").await.status, 200);
    }
    let limited = app
        .client
        .get(app.url("/api/mj/self"))
        .header("Authorization", &alice.token)
        .header("New-Api-User", alice.id.to_string())
        .header("Accept-Language", "en")
        .send()
        .await
        .expect("request");
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(
        limited.text().await.expect("body"),
        r#"{"success":false,"message":"too many requests: slow down and retry after the time in Retry-After"}"#
    );
    let gql = app.gql(&alice, "{ midjourneyTasks { totalCount } }").await;
    assert_eq!(gql.status, 429);
    assert_eq!(gql.codes(), ["RATE_LIMITED"]);
    // Bob has a budget of his own; /healthz is never limited.
    assert_eq!(app.get_as(&bob, "/api/mj/self").await.status, 200);
    for _ in 0..20 {
        assert_eq!(app.get_with("/healthz", &[]).await.status, 200);
    }
    // A second later Alice may go on.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(app.get_as(&alice, "/api/mj/self").await.status, 200);

    let app = spawn_app_with(TestDb::new().await, |c| {
        c.server.rate_limit_per_ip = 3;
    })
    .await;
    let statuses = futures_statuses(&app, 5).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
}

/// Sends `n` anonymous requests one after another, returning their statuses.
async fn futures_statuses(app: &crate::helpers::TestApp, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(app.get_with("/api/mj/self", &[]).await.status);
    }
    statuses
}

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn metrics_count_requests_operations_reads_and_the_pool() {
    let app = spawn_app_with(TestDb::new().await, |_| {}).await;
    let alice = app.user("alice", Role::Common).await;
    for _ in 0..3 {
        assert_eq!(app.get_as(&alice, "/api/mj/self?p=1").await.status, 200);
    }
    assert_eq!(app.get_with("/api/mj/self", &[]).await.status, 401);
    let named = serde_json::json!({"query": "query Dashboard { midjourneyTasks { totalCount } }", "operationName": "Dashboard"});
    let r = app
        .client
        .post(app.url("/graphql"))
        .header("Authorization", &alice.token)
        .header("New-Api-User", alice.id.to_string())
        .json(&named)
        .send()
        .await
        .expect("graphql");
    assert_eq!(r.status(), 200);
    app.gql(&alice, "{ nope }").await;
    let r = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.expect("text");
    println!("{text}");
    let route = r#"route="/api/mj/self",status="200""#;
    assert_eq!(
        sample(
            &text,
            &format!("mj_tasks_http_request_duration_seconds_count{{{route}}}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"mj_tasks_http_request_duration_seconds_count{route="/api/mj/self",status="401"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("mj_tasks_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"mj_tasks_graphql_operations_total{operation="anonymous",outcome="failed"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"mj_tasks_graphql_operations_total{operation="Dashboard",outcome="ok"}"#
        ),
        Some(1.0)
    );
    assert!(sample(&text, r#"mj_tasks_db_queries_total{kind="rows"}"#).is_some_and(|n| n >= 3.0));
    assert!(sample(&text, "mj_tasks_db_read_duration_seconds_count").is_some_and(|n| n >= 6.0));
    assert_eq!(
        sample(&text, r#"mj_tasks_db_pool_connections{state="max"}"#),
        Some(10.0)
    );
    assert!(
        sample(&text, r#"mj_tasks_db_pool_connections{state="open"}"#).is_some_and(|n| n >= 1.0)
    );
    assert_eq!(
        sample(&text, r#"mj_tasks_db_pool_connections{state="waiting"}"#),
        Some(0.0)
    );
    assert!(text.contains("mj_tasks_build_info{version=\""));
}

async fn pool_waiting(app: &crate::helpers::TestApp) -> Option<f64> {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    sample(&text, r#"mj_tasks_db_pool_connections{state="waiting"}"#)
}

#[tokio::test]
#[ignore = "needs a database server: TEST_DATABASE_URL (run with --include-ignored)"]
async fn metrics_count_the_reads_waiting_for_a_pool_connection() {
    use crate::helpers::TestUser;
    use crate::testdb::UsersLock;
    use std::sync::Arc;

    let db = TestDb::server().await;
    let (url, backend) = (db.url.clone(), db.backend);
    let setup = spawn_app_with(db, |_| {}).await;
    let mut users: Vec<TestUser> = Vec::new();
    for name in ["wa", "wb", "wc"] {
        users.push(setup.user(name, Role::Common).await);
    }
    let app = Arc::new(
        spawn_app_with(TestDb::borrowed(&url, backend), |c| {
            c.db.db_max_connections = 1;
            c.db.db_acquire_timeout_ms = 20_000;
            c.db.db_statement_timeout_ms = 20_000;
        })
        .await,
    );
    assert_eq!(pool_waiting(&app).await, Some(0.0));

    // Another session locks the users table: the first request's user check blocks holding
    // the pool's only connection, and the other two wait for it.
    let lock = UsersLock::take(&url, backend).await;
    let requests: Vec<_> = users
        .iter()
        .map(|u| {
            let (app, u) = (app.clone(), u.clone());
            tokio::spawn(async move { app.get_as(&u, "/api/mj/self").await })
        })
        .collect();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let waiting = pool_waiting(&app).await;
        seen.push(waiting);
        if waiting == Some(2.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.last(), Some(&Some(2.0)), "waiting readings: {seen:?}");

    lock.release().await;
    for r in requests {
        let a = r.await.unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
    }
    assert_eq!(pool_waiting(&app).await, Some(0.0));
}
