//! One deployment, many instances: client addresses behind a trusted proxy, and rate
//! budgets shared through Redis (a `redis-server` of the test's own, on a free port, so it
//! can be stopped and started again), with the fallback while Redis is gone.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mj_tasks::service::Role;

use serde_json::Value;

use crate::helpers::{Task, TestApp, TestDb, TestUser, spawn_app_with, unique_name};
use crate::live_client::Ws;

/// A `redis-server` of the test's own (no persistence), killed on drop.
pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub(crate) fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = RedisServer { port, child: None };
        server.restart();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port) and waits until it answers.
    pub(crate) fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package) must be installed");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `n` instances on one database, sharing `redis` (when given) under one prefix.
async fn instances(
    n: usize,
    redis: Option<&RedisServer>,
    tweak: impl Fn(&mut mj_tasks::config::ServeArgs),
) -> Vec<TestApp> {
    let first_db = TestDb::new().await;
    let (url, backend) = (first_db.url.clone(), first_db.backend);
    let prefix = format!("deploy{}", unique_name());
    let configure = |c: &mut mj_tasks::config::ServeArgs| {
        if let Some(r) = redis {
            c.server.redis_url = Some(r.url());
            c.server.redis_prefix = prefix.clone();
        }
        tweak(c);
    };
    let mut apps = vec![spawn_app_with(first_db, configure).await];
    for _ in 1..n {
        apps.push(spawn_app_with(TestDb::borrowed(&url, backend), configure).await);
    }
    apps
}

/// Sends `n` requests as `user`, spread over `apps` in turn; how many were admitted.
async fn spread(apps: &[TestApp], user: &TestUser, n: usize) -> usize {
    let mut admitted = 0;
    for i in 0..n {
        let answer = apps[i % apps.len()]
            .get_as(user, "/api/mj/self?p=1&page_size=1")
            .await;
        assert!(
            matches!(answer.status, 200 | 429),
            "{} {}",
            answer.status,
            answer.text
        );
        admitted += usize::from(answer.status == 200);
    }
    admitted
}

/// Waits until every instance's `/healthz` says `redis` is `state`; how long it took.
async fn redis_state(apps: &[TestApp], state: &str) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for app in apps {
            let health = app.get_with("/healthz", &[]).await;
            assert_eq!(health.status, 200, "Redis is not needed to serve");
            let expected = if state == "ok" { "ok" } else { "degraded" };
            all &= health.json["redis"] == state && health.json["status"] == expected;
        }
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the instances never reported redis {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn three_instances_share_one_rate_budget_through_redis_and_fall_back_without_it() {
    const RATE: u32 = 5;
    const SENT: usize = 15;
    let mut redis = RedisServer::start();
    let apps = instances(3, Some(&redis), |c| c.server.rate_limit_per_user = RATE).await;
    redis_state(&apps, "ok").await;
    let alice = apps[0].user("alice", Role::Common).await;
    let bob = apps[0].user("bob", Role::Common).await;
    let carol = apps[0].user("carol", Role::Common).await;

    // A burst of RATE, and perhaps one more refilled while the 15 requests ran (one every
    // 200 ms): the deployment's budget, not 3 × RATE.
    let shared = spread(&apps, &alice, SENT).await;
    println!("shared: {shared} of {SENT} admitted across 3 instances (rate {RATE}/s)");
    assert!(
        (RATE as usize..=RATE as usize + 1).contains(&shared),
        "{shared} admitted"
    );

    let metrics = apps[0].get_with("/metrics", &[]).await.text;
    assert!(metrics.contains("mj_tasks_redis_up 1"), "{metrics}");

    redis.stop();
    let noticed = redis_state(&apps, "unavailable").await;
    let metrics = apps[0].get_with("/metrics", &[]).await.text;
    assert!(metrics.contains("mj_tasks_redis_up 0"), "{metrics}");
    assert!(
        metrics.contains("mj_tasks_redis_outages_total 1"),
        "{metrics}"
    );
    let alone = spread(&apps, &bob, SENT).await;
    println!(
        "redis stopped: noticed within {} ms; {alone} of {SENT} admitted (each instance its own {RATE})",
        noticed.as_millis()
    );
    assert_eq!(alone, 3 * RATE as usize, "each instance limits on its own");

    redis.restart();
    let back = redis_state(&apps, "ok").await;
    let again = spread(&apps, &carol, SENT).await;
    println!(
        "redis back: shared again within {} ms; {again} of {SENT} admitted",
        back.as_millis()
    );
    assert!(
        (RATE as usize..=RATE as usize + 1).contains(&again),
        "{again} admitted"
    );
}

#[tokio::test]
async fn an_unreachable_redis_at_startup_leaves_the_instance_serving_degraded() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let app = spawn_app_with(TestDb::new().await, |c| {
        c.server.redis_url = Some(format!("redis://127.0.0.1:{port}"));
        c.server.rate_limit_per_user = 2;
    })
    .await;
    let health = app.get_with("/healthz", &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json["status"], "degraded");
    assert_eq!(health.json["redis"], "unavailable");
    let alice = app.user("alice", Role::Common).await;
    assert_eq!(spread(std::slice::from_ref(&app), &alice, 3).await, 2);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_address_budget() {
    let limited = |c: &mut mj_tasks::config::ServeArgs| c.server.rate_limit_per_ip = 2;
    let app = spawn_app_with(TestDb::new().await, |c| {
        limited(c);
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    async fn from(app: &TestApp, ip: &str) -> Vec<u16> {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(
                app.get_with("/api/mj/self", &[("X-Forwarded-For", ip)])
                    .await
                    .status,
            );
        }
        statuses
    }
    assert_eq!(from(&app, "198.51.100.1").await, [401, 401, 429]);
    assert_eq!(
        from(&app, "198.51.100.2").await,
        [401, 401, 429],
        "another client behind the same proxy"
    );
    // A client cannot pick its address: the proxy appends the real one, which counts.
    let forged = app
        .get_with(
            "/api/mj/self",
            &[("X-Forwarded-For", "203.0.113.9, 198.51.100.1")],
        )
        .await;
    assert_eq!(forged.status, 429, "the rightmost untrusted address counts");

    // Without trust, the header is ignored: everyone is the proxy's one address.
    let app = spawn_app_with(TestDb::new().await, limited).await;
    let mut statuses = Vec::new();
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        statuses.push(
            app.get_with("/api/mj/self", &[("X-Forwarded-For", ip)])
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 429]);
}

/// The Midjourney live poller's query count of each instance.
fn live_queries(apps: &[TestApp]) -> Vec<u64> {
    apps.iter().map(|a| a.service.query_counts().live).collect()
}

/// Updates `mj`'s progress from outside and expects every socket to hear it on `op`.
async fn step_heard(apps: &[TestApp], subs: &mut [Ws], op: &str, mj: &str, progress: &str) {
    apps[0]
        .sql(&format!(
            "UPDATE midjourneys SET progress = '{progress}' WHERE mj_id = '{mj}'"
        ))
        .await;
    for ws in subs.iter_mut() {
        let payload = ws.next_of(op).await.expect("an event");
        let event = &payload["data"]["midjourneyTaskEvents"];
        assert_eq!(event["task"]["progress"], progress, "{payload}");
        assert_eq!(event["kind"], "UPDATED", "{payload}");
    }
}

/// Expects operation `op` on every socket to end with `FEED_INTERRUPTED`, then complete.
async fn interrupted(subs: &mut [Ws], op: &str) {
    for ws in subs.iter_mut() {
        let payload = ws.next_of(op).await.expect("the end, as an error");
        assert_eq!(
            payload["errors"][0]["extensions"]["code"], "FEED_INTERRUPTED",
            "{payload}"
        );
        assert_eq!(ws.next_of(op).await, None, "then complete");
    }
}

/// Subscribes every socket (operation `op`), then gives the feeds a few polls to settle.
async fn subscribe_all(subs: &mut [Ws], op: &str) {
    for ws in subs.iter_mut() {
        ws.subscribe(op, LIVE, Value::Null).await;
    }
    tokio::time::sleep(Duration::from_millis(6 * LIVE_POLL_MS)).await;
}

const LIVE: &str = "subscription { midjourneyTaskEvents { kind task { mjId progress } } }";
const LIVE_POLL_MS: u64 = 100;

#[tokio::test]
async fn the_live_feed_is_one_poller_with_redis_each_instances_own_without_and_says_when_it_switches()
 {
    let mut redis = RedisServer::start();
    let apps = instances(2, Some(&redis), |c| c.live.live_poll_ms = LIVE_POLL_MS).await;
    redis_state(&apps, "ok").await;
    let alice = apps[0].user("alice", Role::Common).await;
    apps[0]
        .task(
            Task::of(alice.id)
                .mj("fb-1")
                .progress("0%")
                .status("IN_PROGRESS"),
        )
        .await;
    let mut subs = Vec::new();
    for app in &apps {
        let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
        ws.init(&alice).await;
        subs.push(ws);
    }
    subscribe_all(&mut subs, "1").await;

    // Shared: one instance leads, only it polls, both deliver.
    let leaders: Vec<bool> = apps.iter().map(|a| a.live.leading()[0].1).collect();
    assert_eq!(
        leaders.iter().filter(|l| **l).count(),
        1,
        "one leader: {leaders:?}"
    );
    let before = live_queries(&apps);
    step_heard(&apps, &mut subs, "1", "fb-1", "10%").await;
    tokio::time::sleep(Duration::from_millis(5 * LIVE_POLL_MS)).await;
    let after = live_queries(&apps);
    for (i, leads) in leaders.iter().enumerate() {
        if *leads {
            assert!(after[i] > before[i], "the leader polls");
        } else {
            assert_eq!(after[i], before[i], "a follower does not poll");
        }
    }
    println!("shared: live queries per instance {before:?} -> {after:?}");

    // Redis gone: each subscription ends, clearly; subscribed again, each instance polls.
    redis.stop();
    redis_state(&apps, "unavailable").await;
    interrupted(&mut subs, "1").await;
    subscribe_all(&mut subs, "2").await;
    let before = live_queries(&apps);
    step_heard(&apps, &mut subs, "2", "fb-1", "20%").await;
    let after = live_queries(&apps);
    assert!(
        before.iter().zip(&after).all(|(b, a)| a > b),
        "each instance polls on its own: {before:?} -> {after:?}"
    );
    assert!(apps.iter().all(|a| !a.live.leading()[0].1));
    println!("redis stopped: live queries per instance {before:?} -> {after:?}");

    // Redis back: the same again, then one poller.
    redis.restart();
    redis_state(&apps, "ok").await;
    interrupted(&mut subs, "2").await;
    subscribe_all(&mut subs, "3").await;
    step_heard(&apps, &mut subs, "3", "fb-1", "30%").await;
    let leaders = apps.iter().filter(|a| a.live.leading()[0].1).count();
    assert_eq!(leaders, 1, "one leader again");
    println!("redis back: one leader again; every step heard once on both instances");
}
