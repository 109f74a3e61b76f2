//! A soak: the server process under steady mixed load — REST and GraphQL reads at a fixed
//! rate, 50 open subscriptions receiving the progress a writer makes — for `SOAK_SECS`
//! (default 60; 1,800 for the figures) at `SOAK_RATE` reads a second (default 100), after a
//! 3-second burst at concurrency 32 that brings the pool to its size. Zero errors; after the
//! warm-up (the first quarter, at most 5 minutes) resident memory grows
//! less than 10 %, and open file descriptors and pool connections stay flat. Prints a sample
//! every tenth of the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{TestDb, env_cases};
use crate::live_client::{EVENTS, Frame, Ws};
use crate::load::{closed_loop, open_loop, seed_readers};
use crate::process::ServerProcess;

const SUBSCRIBERS: usize = 50;

#[derive(Clone, Copy, Debug)]
struct Reading {
    at: Duration,
    rss: f64,
    fds: usize,
    /// Client connections open on the server's port (part of `fds`, driven by the clients).
    clients: usize,
    pool: u64,
}

impl Reading {
    /// Descriptors the server holds for itself: files, the listener, the pool.
    fn own_fds(&self) -> usize {
        self.fds.saturating_sub(self.clients)
    }
}

/// Established TCP connections whose local port is `port` (the server's side of them).
fn established_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3
                && cols[3] == "01"
                && cols[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        })
        .count()
}

async fn read_server(server: &ServerProcess, started: Instant) -> Reading {
    let health: serde_json::Value = reqwest::get(server.url("/healthz"))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    Reading {
        at: started.elapsed(),
        rss: server.rss_mib(),
        fds: server.fds(),
        clients: established_on(server.addr.port()),
        pool: health["pool"]["open"].as_u64().unwrap_or(0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timed soak of the server process (run with --ignored soak::)"]
async fn steady_mixed_load_leaks_nothing() {
    let secs = u64::from(env_cases("SOAK_SECS", 60));
    let rate = env_cases("SOAK_RATE", 100);
    let db = TestDb::new().await;
    let server = ServerProcess::start(&db.url, &[]).await;
    let (_, users) = seed_readers(&db, 20_000, 20).await;
    for u in &users {
        db.submit(u.id, &format!("soak-{}", u.id), 1).await;
    }

    // Subscribers: 5 WebSockets for each of 10 users, counting events and anything else.
    let events = Arc::new(AtomicU64::new(0));
    let faults = Arc::new(AtomicU64::new(0));
    let mut subscribers = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut ws = Ws::connect(server.addr, "graphql-transport-ws").await;
        ws.init(&users[i % 10]).await;
        ws.subscribe("1", EVENTS, json!({})).await;
        let (events, faults) = (events.clone(), faults.clone());
        subscribers.push(tokio::spawn(async move {
            loop {
                match ws.recv(Duration::from_secs(3600)).await {
                    Frame::Json(v) if v["type"] == "next" => {
                        events.fetch_add(1, Ordering::Relaxed);
                    }
                    Frame::Json(v) if v["type"] == "pong" || v["type"] == "ping" => {}
                    other => {
                        eprintln!("subscriber: {other:?}");
                        faults.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    // The writer: the users' tasks make progress, two changes a second each.
    let writing = {
        let db_url = db.url.clone();
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let until = Instant::now() + Duration::from_secs(secs);
        tokio::spawn(async move {
            let conn = sea_orm::Database::connect(db_url.as_str())
                .await
                .expect("writer");
            let mut n = 0u64;
            let mut ticks = tokio::time::interval(Duration::from_millis(500));
            while Instant::now() < until {
                ticks.tick().await;
                n += 1;
                let sql = format!(
                    "UPDATE midjourneys SET status = 'IN_PROGRESS', progress = '{}%' WHERE mj_id LIKE 'soak-%'",
                    n % 100
                );
                sea_orm::ConnectionTrait::execute_unprepared(&conn, &sql)
                    .await
                    .expect("progress");
            }
            n * ids.len() as u64
        })
    };

    // A burst first, so the pool and the allocator reach their working size before anything
    // is compared.
    let burst = closed_loop(&server.url(""), &users, 32, Duration::from_secs(3)).await;
    assert!(
        burst.errors.is_empty(),
        "{:?}",
        &burst.errors[..burst.errors.len().min(3)]
    );

    let started = Instant::now();
    let reading = {
        let base = server.url("");
        let users = users.clone();
        tokio::spawn(async move { open_loop(&base, &users, rate, Duration::from_secs(secs)).await })
    };
    let mut readings = Vec::new();
    let every = Duration::from_secs((secs / 10).max(1));
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(every).await;
        let r = read_server(&server, started).await;
        println!(
            "soak {:>5.0} s: RSS {:.1} MiB, {} fds ({} client connections), {} pool connections, {} events",
            r.at.as_secs_f64(),
            r.rss,
            r.fds,
            r.clients,
            r.pool,
            events.load(Ordering::Relaxed)
        );
        readings.push(r);
    }
    let mut tally = reading.await.expect("reads");
    let changes = writing.await.expect("writer");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = read_server(&server, started).await;
    let warm_until = Duration::from_secs((secs / 4).min(300));
    let warm = readings
        .iter()
        .find(|r| r.at >= warm_until)
        .copied()
        .unwrap_or(end);
    let growth = (end.rss - warm.rss) / warm.rss * 100.0;
    let delivered = events.load(Ordering::Relaxed);
    let faults = faults.load(Ordering::Relaxed);
    for s in subscribers {
        s.abort();
    }
    println!(
        "\n| backend | seconds | reads | read errors | p50 | p99 | subscribers | events | subscription faults | RSS after warm-up → end | fds (without client connections) | pool connections |"
    );
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    println!(
        "| {:?} | {secs} | {} | {} | {:.1} ms | {:.1} ms | {SUBSCRIBERS} | {delivered} | {faults} | {:.1} → {:.1} MiB ({growth:+.1} %) | {} → {} ({} → {}) | {} → {} |",
        db.backend,
        tally.requests(),
        tally.errors.len(),
        tally.ms(0.5),
        tally.ms(0.99),
        warm.rss,
        end.rss,
        warm.fds,
        end.fds,
        warm.own_fds(),
        end.own_fds(),
        warm.pool,
        end.pool,
    );
    let errors: Vec<&String> = tally.errors.iter().take(5).collect();
    assert!(errors.is_empty(), "read errors: {errors:?}");
    assert_eq!(faults, 0, "a subscription ended or failed");
    assert!(
        delivered > 0 && changes > 0,
        "subscribers received the writer's progress"
    );
    assert!(growth < 10.0, "RSS grew {growth:.1} % after the warm-up");
    // Flat: what the server holds for itself (the listener, the pool, the database files);
    // client connections come and go with the load.
    assert!(
        end.own_fds() <= warm.own_fds() + 2,
        "fds without client connections {} → {}",
        warm.own_fds(),
        end.own_fds()
    );
    assert!(
        end.pool <= warm.pool.max(1) + 2,
        "pool {} → {}",
        warm.pool,
        end.pool
    );
}
