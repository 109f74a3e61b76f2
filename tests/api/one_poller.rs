//! One live poller per deployment: three server processes sharing one database and one Redis
//! (a `redis-server` of the test's own), 300 WebSocket subscribers (100 users, one
//! subscription per user on each instance). Only the instance holding the lease polls the
//! database; the others read its batches from Redis and deliver them to their own
//! subscribers. A writer moves every task through ten steps, each once every subscriber
//! that can still hear has received the last (so every step is observable); right after one
//! step is written, the leader gets SIGKILL. Every subscriber on the surviving instances must
//! receive every step of each of its tasks exactly once, in order; the takeover time, the
//! live query counts of each instance and the time the first change after the kill reached
//! the subscribers are printed. Later, the new leader is frozen (SIGSTOP) past its lease
//! right after a step is written: the third instance takes over, and the frozen one, woken,
//! must not publish what it had read (its publication is fenced by the lease).
//! Ignored: server processes and 300 sockets (run with --ignored one_poller::).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::deployment::RedisServer;
use crate::helpers::{TestDb, TestUser, spawn_app_with, unique_name};
use crate::live_client::{Frame, Ws, init_payload};
use crate::process::ServerProcess;

const USERS: usize = 100;
const TASKS_PER_USER: usize = 2;
const STEPS: usize = 10;
/// The step after whose write the leader is killed.
const KILL_AFTER: usize = 4;
/// The step after whose write the next leader is frozen past its lease.
const PAUSE_AFTER: usize = 7;
const POLL_MS: u64 = 200;
/// The lease (three poll intervals, at least 2 s).
const LEASE: Duration = Duration::from_secs(2);

const SUBSCRIPTION: &str = "subscription { midjourneyTaskEvents { kind task { mjId progress } } }";

/// What one subscriber received, in order, and whether its connection ended.
#[derive(Default)]
struct Heard {
    events: Vec<(String, String, String)>,
    ended: bool,
    why: String,
    /// The code of the error that ended the subscription, if one did.
    error: String,
}

async fn subscriber(
    addr: std::net::SocketAddr,
    user: TestUser,
    heard: Arc<Mutex<Heard>>,
    stop: Arc<AtomicBool>,
) {
    let mut ws = Ws::connect(addr, "graphql-transport-ws").await;
    ws.send(json!({"type": "connection_init", "payload": init_payload(&user)}))
        .await;
    match ws.try_recv(Duration::from_secs(10)).await {
        Some(Frame::Json(v)) if v["type"] == "connection_ack" => {}
        other => panic!("no connection_ack: {other:?}"),
    }
    ws.subscribe("s", SUBSCRIPTION, Value::Null).await;
    while !stop.load(Ordering::Relaxed) {
        match ws.try_recv(Duration::from_millis(300)).await {
            None => continue,
            Some(Frame::Json(v)) if v["type"] == "next" && !v["payload"]["errors"].is_null() => {
                heard.lock().await.error = v["payload"]["errors"][0]["extensions"]["code"]
                    .as_str()
                    .unwrap_or("an error")
                    .to_owned();
            }
            Some(Frame::Json(v)) if v["type"] == "next" => {
                let event = &v["payload"]["data"]["midjourneyTaskEvents"];
                let task = &event["task"];
                heard.lock().await.events.push((
                    task["mjId"].as_str().unwrap_or_default().to_owned(),
                    task["progress"].as_str().unwrap_or_default().to_owned(),
                    event["kind"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            Some(other) => {
                let mut h = heard.lock().await;
                h.ended = true;
                h.why = format!("{other:?}");
                return;
            }
        }
    }
}

/// One sample of an instance's `/metrics`: whether it leads the Midjourney log, and its
/// live poller and user-check query counts.
async fn sample(client: &reqwest::Client, server: &ServerProcess) -> Option<(bool, u64, u64)> {
    let text = client
        .get(server.url("/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some((
        value("mj_tasks_live_leader{log=\"midjourneys\"} ")? == 1.0,
        value("mj_tasks_db_queries_total{kind=\"live\"} ")? as u64,
        value("mj_tasks_db_queries_total{kind=\"live_check\"} ")? as u64,
    ))
}

fn progress(step: usize) -> String {
    format!("{}%", step * 100 / STEPS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "server processes, Redis and 300 sockets (run with --ignored one_poller::)"]
async fn three_instances_share_one_poller_and_a_killed_leader_loses_no_change() {
    let redis = RedisServer::start();
    let seed = spawn_app_with(TestDb::new().await, |_| {}).await;
    let url = seed.db.url.clone();
    let seeded = seed
        .users_with_unfinished_tasks("one", USERS, TASKS_PER_USER)
        .await;
    let users: Vec<TestUser> = seeded.iter().map(|(u, _)| u.clone()).collect();
    let tasks: HashMap<i64, Vec<String>> = seeded.into_iter().map(|(u, mjs)| (u.id, mjs)).collect();

    let prefix = format!("one{}", unique_name());
    let redis_url = redis.url();
    let poll = POLL_MS.to_string();
    let args = [
        "--redis-url",
        redis_url.as_str(),
        "--redis-prefix",
        prefix.as_str(),
        "--live-poll-ms",
        poll.as_str(),
        "--no-migrate",
    ];
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(
            ServerProcess::start_logging(&url, &args, "warn,mj_tasks::service::live=info").await,
        );
    }

    // One subscription per user on each instance.
    let stop = Arc::new(AtomicBool::new(false));
    let mut heard = Vec::new();
    let mut subs = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        for user in &users {
            let h = Arc::new(Mutex::new(Heard::default()));
            heard.push((i, user.id, h.clone()));
            subs.push(tokio::spawn(subscriber(
                server.addr,
                user.clone(),
                h,
                stop.clone(),
            )));
        }
    }
    let client = reqwest::Client::new();
    // Every subscription open, and exactly one leader.
    let started = Instant::now();
    let leader = loop {
        let mut leaders = Vec::new();
        let mut open = 0;
        for (i, s) in servers.iter().enumerate() {
            if let Some((true, _, _)) = sample(&client, s).await {
                leaders.push(i);
            }
            let m = client.get(s.url("/metrics")).send().await.expect("metrics");
            let text = m.text().await.expect("metrics text");
            open += text
                .lines()
                .find_map(|l| l.strip_prefix("mj_tasks_live_subscriptions "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as usize;
        }
        if leaders.len() == 1 && open == USERS * 3 {
            break leaders[0];
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "after 30 s: leaders {leaders:?}, {open} subscriptions open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Let every instance's feed take its place in the stream.
    tokio::time::sleep(Duration::from_millis(3 * POLL_MS)).await;
    let before: Vec<(bool, u64, u64)> = {
        let mut v = Vec::new();
        for s in &servers {
            v.push(sample(&client, s).await.expect("metrics"));
        }
        v
    };

    // Two idle seconds with 300 subscribers, then the steps.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = seed.db.connect().await;
    let mut killed_at = None;
    let mut counts_at_kill = Vec::new();
    let mut first_after_kill = None;
    let mut takeover = None;
    let mut new_leader: Option<usize> = None;
    let mut third = None;
    let mut paused = None;
    for step in 1..=STEPS {
        let p = progress(step);
        let status = if step == STEPS {
            "SUCCESS"
        } else {
            "IN_PROGRESS"
        };
        use sea_orm::ConnectionTrait;
        db.execute_unprepared(&format!(
            "UPDATE midjourneys SET progress = '{p}', status = '{status}' WHERE mj_id LIKE 'one-%'"
        ))
        .await
        .expect("update");
        if step == KILL_AFTER {
            for s in &servers {
                counts_at_kill.push(sample(&client, s).await.expect("metrics"));
            }
            servers[leader].signal("KILL");
            killed_at = Some(Instant::now());
        }
        if step == PAUSE_AFTER {
            // The new leader freezes past its lease (SIGSTOP): the third instance takes
            // over; woken again (SIGCONT), the frozen one must publish nothing.
            let frozen: usize = new_leader.expect("a new leader before the pause");
            servers[frozen].signal("STOP");
            tokio::time::sleep(LEASE + Duration::from_millis(1500)).await;
            for (i, s) in servers.iter().enumerate() {
                if i != leader
                    && i != frozen
                    && let Some((true, _, _)) = sample(&client, s).await
                {
                    third = Some(i);
                }
            }
            servers[frozen].signal("CONT");
            paused = Some(frozen);
        }
        // Wait until every subscriber on a live instance has heard this step of every task.
        let waited = Instant::now();
        loop {
            let mut all = true;
            for (i, _, h) in &heard {
                if killed_at.is_some() && *i == leader {
                    continue;
                }
                let h = h.lock().await;
                if h.ended && paused == Some(*i) {
                    // Checked below: interrupted, and told so.
                    continue;
                }
                let got = h.events.iter().filter(|(_, pr, _)| *pr == p).count();
                all &= got >= TASKS_PER_USER;
            }
            if let Some(at) = killed_at {
                if takeover.is_none() {
                    for (i, s) in servers.iter().enumerate() {
                        if i != leader
                            && let Some((true, _, _)) = sample(&client, s).await
                        {
                            takeover = Some(at.elapsed());
                            new_leader = Some(i);
                        }
                    }
                }
                if all && first_after_kill.is_none() {
                    first_after_kill = Some(at.elapsed());
                }
            }
            if all {
                break;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "step {step} ({p}) did not reach every subscriber within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Anything sent twice would come now.
    tokio::time::sleep(Duration::from_millis(6 * POLL_MS)).await;
    let after: Vec<Option<(bool, u64, u64)>> = {
        let mut v = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            v.push(if i == leader {
                None
            } else {
                sample(&client, s).await
            });
        }
        v
    };
    stop.store(true, Ordering::Relaxed);
    for s in subs {
        let _ = s.await;
    }

    // Every subscriber on a surviving instance: each step of each task once, in order.
    let mut checked = 0;
    let mut frozen_interrupted = 0;
    for (i, user, h) in &heard {
        if *i == leader {
            continue;
        }
        let h = h.lock().await;
        let frozen = paused == Some(*i);
        if frozen && h.ended {
            // Its Redis calls timed out while it was frozen: it went back to its own poller
            // for a moment, and said so.
            assert_eq!(h.error, "FEED_INTERRUPTED", "{}", h.why);
            frozen_interrupted += 1;
        } else {
            assert!(
                !h.ended,
                "a subscriber on instance {i} was ended: {} {}",
                h.error, h.why
            );
        }
        for mj in &tasks[user] {
            let got: Vec<(String, String)> = h
                .events
                .iter()
                .filter(|(m, _, _)| m == mj)
                .map(|(_, p, k)| (p.clone(), k.clone()))
                .collect();
            let expected: Vec<(String, String)> = (1..=STEPS)
                .map(|s| {
                    let kind = if s == STEPS { "FINISHED" } else { "UPDATED" };
                    (progress(s), kind.to_owned())
                })
                .collect();
            if frozen && h.ended {
                assert_eq!(
                    got,
                    expected[..got.len().min(STEPS)],
                    "instance {i}, user {user}, task {mj}: a prefix, none twice"
                );
            } else {
                assert_eq!(got, expected, "instance {i}, user {user}, task {mj}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, USERS * 2);

    // The database saw one poller: before the kill only the leader polled, after it only
    // the new leader.
    let takeover = takeover.expect("another instance took the lease over");
    let new_leader = new_leader.expect("a new leader");
    println!(
        "one poller: 3 instances, {} subscribers, poll every {POLL_MS} ms, lease {} ms",
        USERS * 3,
        LEASE.as_millis()
    );
    println!(
        "| instance | role | live queries before the kill | live_check queries before the kill | live queries after the kill |"
    );
    println!("| --- | --- | ---: | ---: | ---: |");
    let mut live_sum = 0;
    for i in 0..3 {
        let role = if i == leader {
            "leader, SIGKILL after step 4"
        } else if i == new_leader {
            "took over; frozen (SIGSTOP) after step 7"
        } else if Some(i) == third {
            "took over from the frozen one"
        } else {
            "follower"
        };
        let live = counts_at_kill[i].1 - before[i].1;
        let check = counts_at_kill[i].2 - before[i].2;
        live_sum += live;
        let later = after[i].map_or("-".to_owned(), |a| (a.1 - counts_at_kill[i].1).to_string());
        println!("| {i} | {role} | {live} | {check} | {later} |");
        if i != leader {
            assert_eq!(live, 0, "instance {i} polled while not leading");
        }
    }
    assert!(live_sum > 0, "the leader polled");
    let after_sum: u64 = after
        .iter()
        .zip(&counts_at_kill)
        .filter_map(|(a, k)| a.map(|a| a.1 - k.1))
        .sum();
    println!("live queries summed over the survivors after the kill: {after_sum}");
    println!(
        "live queries summed over the instances before the kill: {live_sum} (the leader's alone; three pollers would have run about three times as many)"
    );
    println!(
        "takeover: a surviving instance held the lease {} ms after SIGKILL (at most two leases: {} ms); step {KILL_AFTER}, written just before the kill, reached every surviving subscriber {} ms after it",
        takeover.as_millis(),
        (2 * LEASE).as_millis(),
        first_after_kill.map_or(0, |d| d.as_millis()),
    );
    println!(
        "{} of the {} subscribers on the surviving instances received all {STEPS} steps of its {TASKS_PER_USER} tasks, in order, none twice (any other: on the frozen instance, told FEED_INTERRUPTED, below)",
        USERS * 2 - frozen_interrupted,
        USERS * 2
    );
    assert!(
        takeover <= 2 * LEASE + Duration::from_millis(POLL_MS),
        "the lease passed after {takeover:?}"
    );
    let third = third.expect("the third instance took over from the frozen leader");
    assert_eq!(paused, Some(new_leader));
    println!(
        "instance {new_leader} frozen {} ms (past its lease) after step {PAUSE_AFTER}: instance {third} held the lease meanwhile; woken, the frozen one published nothing twice; of its {USERS} subscribers {frozen_interrupted} ended with FEED_INTERRUPTED (a Redis call timed out while it was frozen) after hearing each earlier step once",
        (LEASE + Duration::from_millis(1500)).as_millis()
    );
    drop(redis);
}
