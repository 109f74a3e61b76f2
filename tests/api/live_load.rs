//! A load run of live progress on the server binary in its own process: 1,000 WebSocket
//! subscribers (100 users × 10 tabs) while 100 tasks change every second, written from
//! outside the service. Every subscriber must receive every change of its own user's tasks
//! and nothing else; the run prints the delivery delays and the server's memory. Timing is
//! reported, not asserted (`cargo test --release … live_load -- --ignored --nocapture` for
//! the figures). `LIVE_LOAD_SECS` sets the writing time (default 10).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mj_tasks::bench::http::memory;
use mj_tasks::service::{Role, Service};
use serde_json::json;

use crate::helpers::{TestDb, env_cases};
use crate::live_client::{EVENTS, Frame, Ws};
use crate::process::{free_port, percentile};

const USERS: usize = 100;
const TABS: usize = 10;
const TASKS_PER_USER: usize = 2;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load run (1,000 subscribers, a server process); figures with --release --nocapture"]
async fn a_thousand_subscribers_get_every_change_of_a_hundred_tasks_a_second() {
    let secs = env_cases("LIVE_LOAD_SECS", 10) as usize;
    let db = TestDb::new().await;
    let port = free_port();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_mj-tasks"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the server"),
    );
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let started = Instant::now();
    while client
        .get(&health)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let service = Service::new(db.connect().await, None);
    let mut users = Vec::new();
    for i in 0..USERS {
        let u = service
            .create_user(&format!("load{i}"), Role::Common)
            .await
            .expect("user");
        users.push(crate::helpers::TestUser {
            id: u.id,
            token: u.access_token,
        });
    }
    // Two unfinished tasks per user: the "a" ones change on even seconds, the "b" ones on
    // odd seconds, so each second 100 tasks change.
    for u in &users {
        for half in ["a", "b"].iter().take(TASKS_PER_USER) {
            db.submit(u.id, &format!("{half}-{}", u.id), 1).await;
        }
    }

    // Received (mj id, progress) → when, per subscriber; and anything foreign.
    type Log = Arc<Mutex<Vec<(String, String, Instant)>>>;
    let mut logs: Vec<(i64, Log)> = Vec::new();
    let mut readers = Vec::new();
    for i in 0..USERS * TABS {
        let user = users[i % USERS].clone();
        let mut ws = Ws::connect(addr, "graphql-transport-ws").await;
        ws.init(&user).await;
        ws.subscribe("1", EVENTS, json!({})).await;
        let log: Log = Arc::default();
        logs.push((user.id, log.clone()));
        readers.push(tokio::spawn(async move {
            loop {
                match ws.recv(Duration::from_secs(3600)).await {
                    Frame::Json(v) if v["type"] == "next" => {
                        let t = &v["payload"]["data"]["midjourneyTaskEvents"]["task"];
                        let entry = (
                            format!("{}|{}", t["userId"], t["mjId"].as_str().unwrap_or("")),
                            t["progress"].as_str().unwrap_or("").to_owned(),
                            Instant::now(),
                        );
                        log.lock().unwrap().push(entry);
                    }
                    Frame::Json(_) => {}
                    _ => return,
                }
            }
        }));
    }
    // Let every subscription start (and the poller take its baseline).
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Each second one half changes, at a random moment of the second (changes do not
    // arrive in step with the poller); a task changes at most once per poll.
    let mut written: HashMap<(String, String), Instant> = HashMap::new();
    let write_start = Instant::now();
    for s in 0..secs {
        let slot = write_start + Duration::from_secs(s as u64);
        let jitter = Duration::from_millis(rand::random_range(0..900));
        tokio::time::sleep_until((slot + jitter).into()).await;
        let half = if s % 2 == 0 { "a" } else { "b" };
        let progress = format!("{}%", s + 1);
        db.write(&format!(
            "UPDATE midjourneys SET status = 'IN_PROGRESS', progress = '{progress}' \
             WHERE mj_id LIKE '{half}-%'"
        ))
        .await;
        let at = Instant::now();
        for u in &users {
            written.insert((format!("{}|{half}-{}", u.id, u.id), progress.clone()), at);
        }
    }
    let wrote_for = write_start.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss, hwm) = memory(server.0.id());

    let mut delays = Vec::new();
    let (mut missing, mut foreign, mut delivered) = (0usize, 0usize, 0usize);
    for (user, log) in &logs {
        let log = log.lock().unwrap();
        let mine = format!("{user}|");
        foreign += log.iter().filter(|(k, _, _)| !k.starts_with(&mine)).count();
        let got: HashMap<(String, String), Instant> = log
            .iter()
            .map(|(k, p, at)| ((k.clone(), p.clone()), *at))
            .collect();
        delivered += log.len();
        for ((key, progress), at) in &written {
            if !key.starts_with(&mine) {
                continue;
            }
            match got.get(&(key.clone(), progress.clone())) {
                Some(received) => delays.push(received.saturating_duration_since(*at)),
                None => missing += 1,
            }
        }
    }
    delays.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\n| subscribers | changes/s | seconds | events delivered | missing | foreign | delay p50 | p99 | max | server RSS / peak |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} | {} | {:.1} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} / {:.1} MiB |",
        USERS * TABS,
        USERS,
        wrote_for.as_secs_f64(),
        delivered,
        missing,
        foreign,
        ms(percentile(&delays, 0.5)),
        ms(percentile(&delays, 0.99)),
        ms(percentile(&delays, 1.0)),
        rss,
        hwm
    );
    for r in readers {
        r.abort();
    }
    drop(server);
    assert_eq!(foreign, 0, "events of another user's task");
    assert_eq!(missing, 0, "changes a subscriber never received");
    assert_eq!(delays.len(), secs * USERS * TABS);
}
