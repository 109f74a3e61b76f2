//! The token cache (a ban takes effect within `--auth-cache-ms`) and the count cache
//! (identical concurrent counts share one query; a freshness window bounds how old a total
//! may be).

use std::time::{Duration, Instant};

use mj_tasks::service::Role;

use crate::helpers::{Task, TestDb, spawn_app_with};

#[tokio::test]
async fn with_the_token_cache_a_ban_takes_effect_within_its_time() {
    let app = spawn_app_with(TestDb::new().await, |cfg| cfg.auth_cache_ms = 500).await;
    let u = app.user("alice", Role::Common).await;
    assert_eq!(app.get_as(&u, "/api/mj/self").await.json["success"], true);
    app.sql(&format!("UPDATE users SET status = 2 WHERE id = {}", u.id))
        .await;
    let banned_at = Instant::now();
    loop {
        // When the request was sent (a request sent just inside the window may be answered
        // just after it).
        let sent = banned_at.elapsed();
        let a = app.get_as(&u, "/api/mj/self").await;
        if a.json["success"] == false {
            assert_eq!(a.message(), "用户已被封禁");
            break;
        }
        assert!(
            sent < Duration::from_millis(500),
            "a request sent {sent:?} after the ban was still let in"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A wrong token is remembered as wrong too, and stays wrong.
    let wrong = crate::helpers::TestUser {
        id: u.id,
        token: "y".repeat(32),
    };
    for _ in 0..3 {
        assert_eq!(
            app.get_as(&wrong, "/api/mj/self").await.json["success"],
            false
        );
    }
}

#[tokio::test]
async fn concurrent_counts_stay_exact() {
    let app = spawn_app_with(TestDb::new().await, |_| {}).await;
    let admin = app.user("boss", Role::Admin).await;
    for _ in 0..30 {
        app.task(Task::of(admin.id)).await;
    }
    let before = app.service.query_counts();
    let answers = futures_util::future::join_all(
        (0..16).map(|_| app.get_as(&admin, "/api/mj/?p=1&page_size=5")),
    )
    .await;
    let counted = app.service.query_counts().aggregates - before.aggregates;
    for a in &answers {
        assert_eq!(a.total(), 30, "{}", a.text);
    }
    // How many ran depends on timing (the sharing itself is unit-tested in service::cache).
    println!("16 identical concurrent requests ran {counted} count queries");
    // Sequential requests each count: a new row shows at once (no freshness window).
    app.task(Task::of(admin.id)).await;
    assert_eq!(app.get_as(&admin, "/api/mj/?p=1").await.total(), 31);
}

#[tokio::test]
async fn a_freshness_window_reuses_a_total_for_at_most_its_time() {
    let app = spawn_app_with(TestDb::new().await, |cfg| cfg.count_freshness_ms = 400).await;
    let admin = app.user("boss", Role::Admin).await;
    app.task(Task::of(admin.id)).await;
    assert_eq!(app.get_as(&admin, "/api/mj/").await.total(), 1);
    let counted = Instant::now();
    app.task(Task::of(admin.id)).await;
    // Within the window the total may be the earlier one; the rows themselves are fresh.
    let a = app.get_as(&admin, "/api/mj/").await;
    assert_eq!(a.ids().len(), 2);
    if counted.elapsed() < Duration::from_millis(350) {
        assert_eq!(a.total(), 1, "reused within the window");
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        app.get_as(&admin, "/api/mj/").await.total(),
        2,
        "counted again after it"
    );
}

/// Parsed documents are kept by their text: a repeated one answers the same, and every
/// check still applies to it (a refused document is refused every time).
#[tokio::test]
async fn a_repeated_graphql_document_answers_the_same_and_keeps_its_limits() {
    let app = spawn_app_with(TestDb::new().await, |_| {}).await;
    let u = app.user("alice", Role::Common).await;
    app.task(Task::of(u.id).mj("p-1")).await;
    let q = "{ midjourneyTasks { totalCount nodes { mjId } } }";
    let first = app.gql(&u, q).await;
    let second = app.gql(&u, q).await;
    assert_eq!(first.text, second.text);
    assert!(first.text.contains("p-1"));
    let deep = format!("{{ viewer {} }}", "{ id ".repeat(20) + &"}".repeat(20));
    for _ in 0..2 {
        let a = app.gql(&u, &deep).await;
        assert_eq!(a.codes(), ["QUERY_TOO_COMPLEX"], "{}", a.text);
    }
    // A mutation over GET stays refused when the same text was seen before over POST.
    let m = "mutation { __typename }";
    let _ = app.gql(&u, m).await;
    let url = format!("/graphql?query={}", "mutation%20%7B%20__typename%20%7D");
    for _ in 0..2 {
        let a = app.get_as(&u, &url).await;
        assert!(
            a.text.contains("METHOD_NOT_ALLOWED") || a.text.contains("errors"),
            "{}",
            a.text
        );
    }
}
