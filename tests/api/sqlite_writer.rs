//! SQLite with a second process writing like new-api: inserts at 50/s and progress updates
//! at 200/s, each its own short transaction, while the server (its own process) serves reads
//! at concurrency 16. No busy/locked error may reach a client, and every row the writer
//! committed is visible afterwards; the run prints reader p50/p99 before and during the
//! writes. `SQLITE_WRITER_SECS` sets the writing time (default 10; 60 for the figures).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::json;

use crate::helpers::{TestDb, env_cases};
use crate::live_client::submit_sql;
use crate::load::{Tally, closed_loop, seed_readers};
use crate::process::ServerProcess;

const CONCURRENCY: usize = 16;

/// Inserts at 50/s for `secs`; returns the mj ids committed.
async fn insert_tasks(
    db: DatabaseConnection,
    users: Vec<i64>,
    secs: u64,
    busy: Arc<AtomicU64>,
) -> Vec<String> {
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut committed = Vec::new();
    let mut n = 0usize;
    while Instant::now() < until {
        ticks.tick().await;
        let mj_id = format!("w-{n}");
        let sql = submit_sql(users[n % users.len()], &mj_id, 1);
        match db.execute_unprepared(&sql).await {
            Ok(_) => committed.push(mj_id),
            Err(e) => {
                busy.fetch_add(1, Ordering::Relaxed);
                eprintln!("writer insert: {e}");
            }
        }
        n += 1;
    }
    committed
}

/// Progress updates at 200/s on the newest inserted tasks for `secs`; returns how many
/// committed.
async fn update_progress(db: DatabaseConnection, secs: u64, busy: Arc<AtomicU64>) -> u64 {
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut committed = 0;
    let mut n = 0u64;
    while Instant::now() < until {
        ticks.tick().await;
        let sql = format!(
            "UPDATE midjourneys SET status = 'IN_PROGRESS', progress = '{}%' \
             WHERE id = (SELECT MAX(id) FROM midjourneys) - {}",
            n % 100,
            n % 50
        );
        match db.execute_unprepared(&sql).await {
            Ok(_) => committed += 1,
            Err(e) => {
                busy.fetch_add(1, Ordering::Relaxed);
                eprintln!("writer update: {e}");
            }
        }
        n += 1;
    }
    committed
}

fn row(phase: &str, t: &mut Tally) -> String {
    format!(
        "| {phase} | {} | {} | {:.1} ms | {:.1} ms |",
        t.requests(),
        t.errors.len(),
        t.ms(0.5),
        t.ms(0.99)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timed run with a writer process on SQLite (run with --ignored sqlite_writer::)"]
async fn reads_stay_clean_while_another_process_writes() {
    let secs = u64::from(env_cases("SQLITE_WRITER_SECS", 10));
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db.url, &[]).await;
    let (admin, users) = seed_readers(&db, 20_000, 20).await;
    let base = server.url("");

    let mut idle = closed_loop(
        &base,
        &users,
        CONCURRENCY,
        Duration::from_secs(secs.min(10)),
    )
    .await;

    // The writer: a connection pool of its own (new-api's), plain SQL, autocommit.
    let writer = Database::connect(db.url.as_str()).await.expect("writer");
    let busy = Arc::new(AtomicU64::new(0));
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let inserting = tokio::spawn(insert_tasks(writer.clone(), ids, secs, busy.clone()));
    let updating = tokio::spawn(update_progress(writer.clone(), secs, busy.clone()));
    let mut during = closed_loop(&base, &users, CONCURRENCY, Duration::from_secs(secs)).await;
    let inserted = inserting.await.expect("inserts");
    let updated = updating.await.expect("updates");

    // Every committed row is visible through the service.
    let client = reqwest::Client::new();
    let total: serde_json::Value = client
        .get(server.url("/api/mj/?p=1&page_size=1"))
        .header("Authorization", &admin.token)
        .header("New-Api-User", admin.id.to_string())
        .send()
        .await
        .expect("admin page")
        .json()
        .await
        .expect("json");
    let mut missing = 0;
    for mj_id in &inserted {
        let q = json!({"query": "query($m: String) { midjourneyTask(mjId: $m) { id } }", "variables": {"m": mj_id}});
        let v: serde_json::Value = client
            .post(server.url("/graphql"))
            .header("Authorization", &admin.token)
            .header("New-Api-User", admin.id.to_string())
            .json(&q)
            .send()
            .await
            .expect("lookup")
            .json()
            .await
            .expect("json");
        if v["data"]["midjourneyTask"].is_null() {
            missing += 1;
        }
    }
    let p99_ratio = during.ms(0.99) / idle.ms(0.99).max(0.001);
    println!(
        "\nwriter for {secs} s: {} inserts and {updated} progress updates committed ({:.0}/s and {:.0}/s), {} writer errors",
        inserted.len(),
        inserted.len() as f64 / secs as f64,
        updated as f64 / secs as f64,
        busy.load(Ordering::Relaxed)
    );
    println!("| reads at concurrency {CONCURRENCY} | requests | errors | p50 | p99 |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!("{}", row("no writer", &mut idle));
    println!("{}", row("with the writer", &mut during));
    println!(
        "reader p99 with the writer / without: {p99_ratio:.2}; total after: {}; inserted rows missing: {missing}",
        total["data"]["total"]
    );
    let errors: Vec<&String> = idle.errors.iter().chain(&during.errors).take(5).collect();
    assert!(errors.is_empty(), "errors reached clients: {errors:?}");
    assert_eq!(missing, 0, "committed rows not visible");
    assert_eq!(total["data"]["total"], json!(20_000 + inserted.len()));
    assert!(
        inserted.len() as u64 >= secs * 40,
        "the writer kept its pace"
    );
}
