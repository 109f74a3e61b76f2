//! `mj-tasks bench --export`: a whole export and grouped statistics over HTTP, each beside
//! the database doing the same work by itself, in the same run.
//!
//! - Export: `GET /api/mj/export` (CSV, every row, as the admin) streamed to the end, rows
//!   and bytes counted, the server's RSS sampled every 20 ms; its floor on PostgreSQL is
//!   `COPY (SELECT <the same columns> ORDER BY id DESC) TO STDOUT WITH CSV` read to the end
//!   through the same driver, elsewhere the same `SELECT` read whole.
//! - Grouped statistics: GraphQL `groups(by: [STATUS, CHANNEL], bucket: DAY)` over the last
//!   30 days at each concurrency, against the statement the service runs for it sent
//!   straight to the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, DbBackend};

use super::{drive, gql, memory, seeded, start_server, viewer};
use crate::config::BenchArgs;
use crate::service::TaskQuery;
use crate::service::groups::{GroupKey, Grouping};
use crate::service::time_zone::Unit;

/// The columns of an admin's export (before its ISO time columns).
const COLUMNS: &str = "id, user_id, code, mj_id, action, prompt, prompt_en, description, state, status, progress, image_url, video_url, video_urls, buttons, properties, submit_time, start_time, finish_time, fail_reason, channel_id, quota";

/// Runs the export and grouped-statistics benchmark on the database at `url`.
pub async fn run(args: &BenchArgs, url: &str) -> anyhow::Result<()> {
    let (service, users) = seeded(args, url).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let (server, base) = start_server(url, &["--export-max-rows", "100000000"], &client).await?;
    let pid = server.0.id();
    let admin_auth = (
        format!("Bearer {}", users.admin.access_token),
        users.admin.id.to_string(),
    );
    let db = service.db().clone();
    let backend = db.get_database_backend();

    println!();
    println!(
        "| export (CSV, every row) | rows | MB | seconds | rows/s | MB/s | RSS before → peak MiB |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for round in 1..=2 {
        // The floor first: the database alone.
        let started = Instant::now();
        let (rows, bytes) = floor_export(&db, backend).await?;
        let floor = started.elapsed();
        println!(
            "| floor{} round {round} | {rows} | {:.1} | {:.2} | {:.0} | {:.1} | — |",
            if backend == DbBackend::Postgres {
                " (COPY … TO STDOUT WITH CSV)"
            } else {
                " (SELECT, read whole)"
            },
            bytes as f64 / 1e6,
            floor.as_secs_f64(),
            rows as f64 / floor.as_secs_f64(),
            bytes as f64 / 1e6 / floor.as_secs_f64(),
        );
        let (before, _) = memory(pid);
        let peak = Arc::new(std::sync::Mutex::new(before));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (rss, _) = memory(pid);
                    if let Ok(mut p) = peak.lock() {
                        *p = p.max(rss);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let started = Instant::now();
        let resp = client
            .get(format!("{base}/api/mj/export?format=csv"))
            .header("Authorization", &admin_auth.0)
            .header("New-Api-User", &admin_auth.1)
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "export: {}", resp.status());
        let expected: u64 = resp
            .headers()
            .get("x-export-rows")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let mut resp = resp;
        let (mut bytes, mut lines) = (0u64, 0u64);
        while let Some(chunk) = resp.chunk().await? {
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.await;
        let peak = peak.lock().map(|p| *p).unwrap_or(before);
        // Lines: the header, then one a row (CRLF ends; prompts hold no newlines here).
        let rows = lines.saturating_sub(1);
        anyhow::ensure!(
            rows == expected,
            "exported {rows} rows, promised {expected}"
        );
        println!(
            "| service round {round} | {rows} | {:.1} | {:.2} | {:.0} | {:.1} | {before:.1} → {peak:.1} (+{:.1}) |",
            bytes as f64 / 1e6,
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64(),
            bytes as f64 / 1e6 / took.as_secs_f64(),
            peak - before,
        );
        println!(
            "| ÷ floor (rows/s) round {round} | | | | {:.2} | | |",
            floor.as_secs_f64() / took.as_secs_f64()
        );
    }

    // Grouped statistics: day buckets over 30 days by status and channel.
    let now = Utc::now().timestamp_millis();
    let from = now - 30 * 86_400_000;
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339()
    };
    let document = gql(&format!(
        "{{ midjourneyTaskStats {{ groups(by: [STATUS, CHANNEL], bucket: DAY, from: \"{}\", to: \"{}\") {{ status channelId bucketStart count successRate quotaSum durationAvgMs durationP50Ms durationP95Ms durationMaxMs }} }} }}",
        at(from),
        at(now)
    ));
    let grouping = Grouping {
        by: vec![GroupKey::Status, GroupKey::Channel],
        bucket: Some(Unit::Day),
        tz: chrono_tz::Tz::UTC,
        from_ms: Some(from),
        to_ms: Some(now),
    };
    let admin = viewer(&users.admin);
    let (statement, _, _) = service
        .groups_statement(&admin, &TaskQuery::default(), &grouping, now)
        .map_err(|e| anyhow::anyhow!("groups: {e}"))?;
    println!();
    println!(
        "| grouped statistics (status × channel × 30 days) | conc. | req/s | p50 ms | p99 ms | errors (floor) | floor req/s | floor p99 ms | ÷ floor |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &c in &args.concurrency {
        let http = drive(args, c, {
            let (client, base, document, auth) = (
                client.clone(),
                base.clone(),
                document.clone(),
                admin_auth.clone(),
            );
            move |_| {
                let (client, base, document, auth) =
                    (client.clone(), base.clone(), document.clone(), auth.clone());
                async move {
                    let Ok(resp) = client
                        .post(format!("{base}/graphql"))
                        .header("Content-Type", "application/json")
                        .header("Authorization", auth.0)
                        .header("New-Api-User", auth.1)
                        .body(document)
                        .send()
                        .await
                    else {
                        return false;
                    };
                    let ok = resp.status() == 200;
                    let body = resp.bytes().await.unwrap_or_default();
                    ok && body.starts_with(br#"{"data":{"#)
                        && !body.windows(9).any(|w| w == br#""errors":"#)
                }
            }
        })
        .await;
        let floor = drive(args, c, {
            let (db, statement) = (db.clone(), statement.clone());
            move |_| {
                let (db, statement) = (db.clone(), statement.clone());
                async move {
                    db.query_all_raw(statement)
                        .await
                        .is_ok_and(|r| !r.is_empty())
                }
            }
        })
        .await;
        println!(
            "| groups | {c} | {:.1} | {:.1} | {:.1} | {} ({}) | {:.1} | {:.1} | {:.2} |",
            http.rate(),
            http.pct(0.5),
            http.pct(0.99),
            http.errors,
            floor.errors,
            floor.rate(),
            floor.pct(0.99),
            http.rate() / floor.rate().max(1e-9)
        );
        anyhow::ensure!(http.errors + floor.errors == 0, "grouped statistics failed");
    }
    drop(server);
    Ok(())
}

/// The database exporting the same rows by itself: rows and bytes.
async fn floor_export(
    db: &sea_orm::DatabaseConnection,
    backend: DbBackend,
) -> anyhow::Result<(u64, u64)> {
    let select = format!("SELECT {COLUMNS} FROM midjourneys ORDER BY id DESC");
    if backend == DbBackend::Postgres {
        use sea_orm::sqlx::postgres::PgPoolCopyExt;
        let pool = db.get_postgres_connection_pool();
        let mut stream = pool
            .copy_out_raw(&format!("COPY ({select}) TO STDOUT WITH CSV HEADER"))
            .await?;
        let (mut bytes, mut lines) = (0u64, 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        return Ok((lines.saturating_sub(1), bytes));
    }
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(backend, select))
        .await?;
    Ok((rows.len() as u64, 0))
}
