//! Index builds on a live database: the service's first start builds its indexes on a
//! table of 262,144 tasks while a second connection keeps inserting and updating rows, as
//! new-api does, and no write waits longer than a second. An invalid index left by an
//! interrupted PostgreSQL build is dropped and built again. Needs a database server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::attach::new_api_ddl;
use crate::helpers::{Backend, TestDb, spawn_app_with};

/// Rows in the table when the service first starts (2^18).
const ROWS: usize = 262_144;

/// new-api's tables without any index on `midjourneys`, holding [`ROWS`] tasks.
async fn big_unindexed_table() -> TestDb {
    let db = TestDb::server().await;
    let conn = db.connect().await;
    for sql in new_api_ddl(db.backend) {
        let task_index = sql.starts_with("CREATE INDEX") && sql.contains("midjourneys");
        if !task_index {
            conn.execute_unprepared(&strip_task_indexes(sql))
                .await
                .unwrap();
        }
    }
    conn.execute_unprepared(
        "INSERT INTO midjourneys (user_id, action, mj_id, status, progress, submit_time, channel_id, quota) \
         VALUES (1, 'IMAGINE', 'seed', 'SUCCESS', '100%', 1700000000000, 1, 5)",
    )
    .await
    .unwrap();
    let mut rows = 1;
    while rows < ROWS {
        conn.execute_unprepared(
            "INSERT INTO midjourneys (user_id, action, mj_id, status, progress, submit_time, channel_id, quota) \
             SELECT (id * 7) % 97, action, mj_id, status, progress, submit_time + id, (id % 5) + 1, quota FROM midjourneys",
        )
        .await
        .unwrap();
        rows *= 2;
    }
    if db.backend == Backend::Postgres {
        conn.execute_unprepared("VACUUM ANALYZE midjourneys")
            .await
            .unwrap();
    }
    conn.close().await.ok();
    db
}

/// MySQL's CREATE TABLE declares its indexes inline: drop them from the statement.
fn strip_task_indexes(sql: &str) -> String {
    if !sql.contains("CREATE TABLE `midjourneys`") || !sql.contains(",INDEX") {
        return sql.to_owned();
    }
    let cut = sql.find(",INDEX").unwrap();
    format!("{})", &sql[..cut])
}

/// Inserts and progress updates in a loop until `stop`; returns the slowest one and how
/// many ran.
async fn write_like_new_api(conn: DatabaseConnection, stop: Arc<AtomicBool>) -> (Duration, usize) {
    let backend = conn.get_database_backend();
    let mut slowest = Duration::ZERO;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let insert = format!(
            "INSERT INTO midjourneys (user_id, action, mj_id, status, progress, submit_time) \
             VALUES (5, 'IMAGINE', 'live-{n}', 'SUBMITTED', '0%', {n})"
        );
        let update = format!(
            "UPDATE midjourneys SET progress = '{}%', status = 'IN_PROGRESS' WHERE id = {}",
            n % 100,
            (n * 7919) % ROWS + 1
        );
        for sql in [insert, update] {
            let t = Instant::now();
            conn.execute_raw(Statement::from_string(backend, sql))
                .await
                .unwrap();
            slowest = slowest.max(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (slowest, n)
}

async fn indexes(conn: &DatabaseConnection) -> Vec<(String, bool)> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
             WHERE t.relname = 'midjourneys' AND NOT i.indisprimary ORDER BY 1"
        }
        _ => {
            "SELECT DISTINCT index_name AS name, TRUE AS valid FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = 'midjourneys' AND index_name <> 'PRIMARY' ORDER BY 1"
        }
    };
    conn.query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let name: String = r.try_get("", "name").unwrap();
            let valid = r
                .try_get::<bool>("", "valid")
                .or_else(|_| r.try_get::<i64>("", "valid").map(|v| v == 1))
                .unwrap();
            (name, valid)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a database server: TEST_DATABASE_URL (run with --include-ignored)"]
async fn first_start_builds_indexes_without_blocking_new_apis_writes() {
    let db = big_unindexed_table().await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_like_new_api(db.connect().await, stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let app = spawn_app_with(db, |_| {}).await;
    let build = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (slowest, writes) = writer.await.unwrap();
    println!(
        "index build on {ROWS} rows: start took {build:?}; {writes} writer rounds, slowest write {slowest:?}"
    );
    assert!(writes > 10, "the writer made progress ({writes} rounds)");
    assert!(
        slowest < Duration::from_secs(1),
        "a write waited {slowest:?} while the indexes were built"
    );
    let conn = app.db.connect().await;
    let built = indexes(&conn).await;
    for (_, name, _) in migration::indexes::INDEXES
        .iter()
        .filter(|(table, _, _)| *table == "midjourneys")
    {
        assert!(
            built.iter().any(|(n, valid)| n == name && *valid),
            "{name} missing or invalid: {built:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs a database server: TEST_DATABASE_URL (run with --include-ignored)"]
async fn an_invalid_index_left_by_an_interrupted_build_is_built_again() {
    let db = TestDb::server().await;
    if db.backend != Backend::Postgres {
        // Only PostgreSQL's concurrent builds leave invalid indexes behind; on MySQL the
        // same start simply builds every index.
        let app = spawn_app_with(db, |_| {}).await;
        let conn = app.db.connect().await;
        let on_midjourneys = migration::indexes::INDEXES
            .iter()
            .filter(|(table, _, _)| *table == "midjourneys")
            .count();
        assert_eq!(indexes(&conn).await.len(), on_midjourneys);
        return;
    }
    let conn = db.connect().await;
    for sql in new_api_ddl(db.backend) {
        conn.execute_unprepared(sql).await.unwrap();
    }
    conn.execute_unprepared("INSERT INTO midjourneys (user_id) VALUES (1), (1)")
        .await
        .unwrap();
    // A unique build over duplicates fails half-way and leaves an invalid index behind,
    // under the name the service uses.
    let failed = conn
        .execute_unprepared(
            "CREATE UNIQUE INDEX CONCURRENTLY idx_midjourneys_user_id_id ON midjourneys (user_id)",
        )
        .await;
    assert!(failed.is_err());
    let before = indexes(&conn).await;
    assert!(
        before.contains(&("idx_midjourneys_user_id_id".to_owned(), false)),
        "{before:?}"
    );
    let app = spawn_app_with(db, |_| {}).await;
    let after = indexes(&conn).await;
    assert!(
        after.contains(&("idx_midjourneys_user_id_id".to_owned(), true)),
        "{after:?}"
    );
    let def = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_get_indexdef('idx_midjourneys_user_id_id'::regclass) AS d",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "d")
        .unwrap();
    assert!(
        def.contains("(user_id, id)") && !def.contains("UNIQUE"),
        "{def}"
    );
    drop(app);
}
