//! Envelopes for wrong methods, unknown paths, an unreachable database and internal
//! failures; the slash variants; the health check.

use mj_tasks::service::Role;

use crate::helpers::{TestDb, into_answer, spawn_app, spawn_app_with};

#[tokio::test]
async fn other_methods_get_405_with_the_envelope() {
    let app = spawn_app().await;
    for path in ["/api/mj/self", "/api/mj/self/", "/api/mj/", "/api/mj"] {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let resp = app
                .client
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            let a = into_answer(resp).await;
            assert_eq!(a.status, 405, "{method} {path}");
            assert_eq!(
                a.text,
                r#"{"success":false,"message":"method not allowed"}"#
            );
        }
    }
}

#[tokio::test]
async fn unknown_paths_under_api_get_404_with_the_envelope() {
    let app = spawn_app().await;
    for path in ["/api/unknown", "/api/mj/self/extra", "/api/mj/x"] {
        let a = app.get_with(path, &[]).await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.text, r#"{"success":false,"message":"not found"}"#);
    }
}

#[tokio::test]
async fn both_spellings_of_each_path_answer_directly() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/api/mj/self", "/api/mj/self/", "/api/mj/", "/api/mj"] {
        let resp = client
            .get(app.url(path))
            .header("Authorization", format!("Bearer {}", admin.token))
            .header("New-Api-User", admin.id.to_string())
            .send()
            .await
            .unwrap();
        let a = into_answer(resp).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.json["success"], true, "{path}");
    }
}

#[tokio::test]
async fn unreachable_database_answers_503_without_driver_text() {
    // Nothing listens on port 1: every connection attempt fails.
    let mut db = TestDb::sqlite();
    db.url = "postgres://postgres@127.0.0.1:1/none".into();
    let app = spawn_app_with(db, |c| {
        c.no_migrate = true;
        c.db.db_acquire_timeout_ms = 500;
    })
    .await;
    let a = app
        .get_with(
            "/api/mj/self",
            &[("Authorization", "Bearer t"), ("New-Api-User", "1")],
        )
        .await;
    assert_eq!(a.status, 503);
    assert_eq!(
        a.text,
        r#"{"success":false,"message":"database unavailable"}"#
    );
    let health = app.get_with("/healthz", &[]).await;
    assert_eq!(health.status, 503);
}

#[tokio::test]
async fn internal_failures_answer_500_without_sql_text() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    app.sql("DROP TABLE midjourneys").await;
    let a = app.get_as(&admin, "/api/mj/").await;
    assert_eq!(a.status, 500);
    assert_eq!(a.text, r#"{"success":false,"message":"internal error"}"#);
}

#[tokio::test]
async fn healthz_reports_a_reachable_database() {
    let app = spawn_app().await;
    let a = app.get_with("/healthz", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["database"], "ok");
}

#[tokio::test]
async fn reads_keep_working_while_another_writer_holds_a_transaction() {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, TransactionTrait};
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    app.task(crate::helpers::Task::of(u.id)).await;
    // Another process (new-api, say) is in the middle of writing.
    let writer = app.db.connect().await;
    let txn = writer.begin().await.unwrap();
    entity::midjourney::ActiveModel {
        user_id: Set(Some(u.id)),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    let a = app.get_as(&u, "/api/mj/self").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.total(), 1, "uncommitted rows are not seen");
    txn.commit().await.unwrap();
    assert_eq!(app.get_as(&u, "/api/mj/self").await.total(), 2);
    if app.db.backend == crate::helpers::Backend::Sqlite {
        use sea_orm::{ConnectionTrait, Statement};
        let row = writer
            .query_one_raw(Statement::from_string(
                writer.get_database_backend(),
                "PRAGMA journal_mode",
            ))
            .await
            .unwrap()
            .unwrap();
        let mode: String = row.try_get_by_index(0).unwrap();
        assert_eq!(mode, "wal", "the server opens SQLite files in WAL mode");
    }
    writer.close().await.ok();
}

/// SQLite has no statement timeout of its own: the serving pool interrupts a statement that
/// runs longer than `--db-statement-timeout-ms`, and the connection serves on.
#[tokio::test]
async fn a_long_sqlite_statement_is_interrupted_at_the_statement_timeout() {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    let app = spawn_app_with(TestDb::sqlite(), |c| c.db.db_statement_timeout_ms = 300).await;
    let long = Statement::from_string(
        DatabaseBackend::Sqlite,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
         SELECT count(*) FROM (SELECT x FROM c LIMIT 2000000000)",
    );
    let started = std::time::Instant::now();
    let result = app.service.db().query_one_raw(long).await;
    let took = started.elapsed();
    println!("a runaway SQLite statement ended after {took:?}: {result:?}");
    let err = result.expect_err("interrupted");
    assert!(
        matches!(
            mj_tasks::error::Error::from(err),
            mj_tasks::error::Error::Unavailable
        ),
        "an interrupted statement answers 503, like a timeout elsewhere"
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "interrupted after {took:?}"
    );
    // Every pooled connection serves on.
    let alice = app.user("alice", Role::Common).await;
    for _ in 0..20 {
        assert_eq!(app.get_as(&alice, "/api/mj/self").await.status, 200);
    }
}
