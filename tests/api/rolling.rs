//! A rolling restart behind HAProxy (Debian's): three server processes on one database,
//! HAProxy checking `/healthz` every 200 ms, a closed-loop load of REST and GraphQL
//! requests and 300 WebSocket subscribers through it. Each instance in turn gets SIGTERM
//! (its drain phase answers `/healthz` 503 `draining` so HAProxy stops sending before the
//! listener closes) and is started again on its port. No request may fail; every
//! subscriber whose instance went away reconnects through HAProxy, resumes with
//! `initialSnapshot`, and ends holding the final state of every one of its tasks.
//! Ignored: it needs `haproxy` (run with --ignored rolling::).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{TestDb, TestUser, spawn_app_with};
use crate::live_client::{Frame, Ws, init_payload};
use crate::load::{answer_kind, mixed_request};
use crate::process::{ServerProcess, free_port};

const USERS: usize = 10;
const SUBSCRIBERS_PER_USER: usize = 30;
const TASKS_PER_USER: usize = 4;
const SERVE_ARGS: [&str; 8] = [
    "--shutdown-drain-ms",
    "1000",
    "--shutdown-grace-ms",
    "5000",
    "--live-max-per-user",
    "100",
    "--live-poll-ms",
    "200",
];

/// HAProxy in front of `ports`, checking `/healthz`; killed on drop.
struct HaProxy {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl HaProxy {
    fn start(ports: &[u16]) -> HaProxy {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("    server s{i} 127.0.0.1:{p} check inter 200 fall 2 rise 2\n"))
            .collect();
        let config = format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n    timeout check 1s\n    retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response response-timeout\nfrontend api\n    bind 127.0.0.1:{port}\n    default_backend mj\nbackend mj\n    balance roundrobin\n    option httpchk GET /healthz\n    http-check expect status 200\n    option forwardfor\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (Debian's haproxy package) must be installed");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "haproxy did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        HaProxy {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one subscriber holds: each task's progress as last received, and its reconnects.
#[derive(Default)]
struct View {
    progress: HashMap<String, String>,
    reconnects: usize,
}

const SUBSCRIPTION: &str =
    "subscription { midjourneyTaskEvents(initialSnapshot: true) { kind task { mjId progress } } }";

/// Subscribes as `user` through `addr` until `stop`, reconnecting (and resuming with a
/// snapshot) whenever the connection or the subscription ends.
async fn subscriber(
    addr: std::net::SocketAddr,
    user: TestUser,
    view: Arc<Mutex<View>>,
    stop: Arc<AtomicBool>,
) {
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        if !first {
            view.lock().await.reconnects += 1;
        }
        first = false;
        let Some(mut ws) = Ws::try_connect(addr, "graphql-transport-ws").await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        ws.send(json!({"type": "connection_init", "payload": init_payload(&user)}))
            .await;
        match ws.try_recv(Duration::from_secs(5)).await {
            Some(Frame::Json(v)) if v["type"] == "connection_ack" => {}
            _ => continue,
        }
        ws.subscribe("s", SUBSCRIPTION, Value::Null).await;
        while !stop.load(Ordering::Relaxed) {
            match ws.try_recv(Duration::from_millis(500)).await {
                None => continue,
                Some(Frame::Json(v)) if v["type"] == "next" => {
                    let task = &v["payload"]["data"]["midjourneyTaskEvents"]["task"];
                    if let (Some(mj), Some(p)) = (task["mjId"].as_str(), task["progress"].as_str())
                    {
                        view.lock()
                            .await
                            .progress
                            .insert(mj.to_owned(), p.to_owned());
                    }
                }
                // `complete` (the server shuts down), a close, a lost connection: resume.
                Some(_) => break,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's haproxy (run with --ignored rolling::)"]
async fn a_rolling_restart_behind_haproxy_fails_no_request_and_loses_no_subscriber() {
    // The database, its users and their unfinished tasks (seeded by an in-process app).
    let seed = spawn_app_with(TestDb::new().await, |_| {}).await;
    let url = seed.db.url.clone();
    let seeded = seed
        .users_with_unfinished_tasks("roll", USERS, TASKS_PER_USER)
        .await;
    let users: Vec<TestUser> = seeded.iter().map(|(u, _)| u.clone()).collect();
    let tasks: Vec<(i64, String)> = seeded
        .iter()
        .flat_map(|(u, mjs)| mjs.iter().map(|mj| (u.id, mj.clone())))
        .collect();

    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut servers = Vec::new();
    for port in &ports {
        servers.push(ServerProcess::start_on(*port, &url, &SERVE_ARGS, "warn").await);
    }
    let proxy = HaProxy::start(&ports);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", proxy.port).parse().expect("addr");
    tokio::time::sleep(Duration::from_millis(600)).await;

    let stop = Arc::new(AtomicBool::new(false));
    // 300 subscribers, 30 per user, spread over the instances by HAProxy.
    let mut views = Vec::new();
    let mut subs = Vec::new();
    for user in &users {
        for _ in 0..SUBSCRIBERS_PER_USER {
            let view = Arc::new(Mutex::new(View::default()));
            views.push((user.id, view.clone()));
            subs.push(tokio::spawn(subscriber(
                addr,
                user.clone(),
                view,
                stop.clone(),
            )));
        }
    }
    // A closed loop of REST and GraphQL requests.
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for user in users.iter().take(4) {
        let (stop, sent, failed, user) = (stop.clone(), sent.clone(), failed.clone(), user.clone());
        let client = reqwest::Client::new();
        let base = format!("http://{addr}");
        load.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let answer = mixed_request(&client, &base, &user, i).await;
                sent.fetch_add(1, Ordering::Relaxed);
                match answer {
                    Ok((200, body))
                        if answer_kind(200, &body) == "200"
                            && !body.contains("\"success\":false") => {}
                    Ok((status, body)) => failed.lock().await.push(format!("{status} {body}")),
                    Err(e) => failed.lock().await.push(e.to_string()),
                }
                i += 1;
            }
        }));
    }
    // A writer moves every task's progress along, from outside the service.
    let writer_stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, db, tasks) = (writer_stop.clone(), seed.db.connect().await, tasks.clone());
        tokio::spawn(async move {
            use sea_orm::ConnectionTrait;
            let mut step = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (_, mj) = &tasks[step % tasks.len()];
                let progress = format!("{}%", 1 + (step / tasks.len()) % 98);
                db.execute_unprepared(&format!(
                    "UPDATE midjourneys SET progress = '{progress}' WHERE mj_id = '{mj}'"
                ))
                .await
                .expect("update");
                step += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            db
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The rolling restart.
    let mut rows = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let before = sent.load(Ordering::Relaxed);
        let started = Instant::now();
        servers[i].terminate();
        let status = servers[i].exited(Duration::from_secs(15)).await;
        let exited = started.elapsed();
        assert!(status.is_some(), "instance {i} did not exit after SIGTERM");
        servers[i] = ServerProcess::start_on(*port, &url, &SERVE_ARGS, "warn").await;
        let back = started.elapsed();
        // HAProxy counts it up after two checks.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let failures = failed.lock().await.len();
        rows.push(format!(
            "| {i} | {} ms | {} ms | {} | {failures} |",
            exited.as_millis(),
            back.as_millis(),
            sent.load(Ordering::Relaxed) - before,
        ));
    }

    // Every task finishes; every subscriber must end holding 100% for each of its tasks.
    let db = {
        writer_stop.store(true, Ordering::Relaxed);
        writer.await.expect("writer")
    };
    {
        use sea_orm::ConnectionTrait;
        db.execute_unprepared("UPDATE midjourneys SET progress = '100%', status = 'SUCCESS'")
            .await
            .expect("finish");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut behind = usize::MAX;
    while Instant::now() < deadline {
        behind = 0;
        for (uid, view) in &views {
            let v = view.lock().await;
            let own = tasks.iter().filter(|(u, _)| u == uid);
            if own
                .clone()
                .any(|(_, mj)| v.progress.get(mj).map(String::as_str) != Some("100%"))
            {
                behind += 1;
            }
        }
        if behind == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.expect("load");
    }
    for s in subs {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    let mut reconnects = Vec::new();
    for (_, view) in &views {
        reconnects.push(view.lock().await.reconnects);
    }
    let failed = failed.lock().await;
    println!(
        "| instance | SIGTERM to exit | SIGTERM to serving again | requests meanwhile | failed so far |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for row in &rows {
        println!("{row}");
    }
    println!(
        "{} requests, {} failed; {} subscribers, {} reconnections (each at least {}), {behind} without the final state of every task",
        sent.load(Ordering::Relaxed),
        failed.len(),
        views.len(),
        reconnects.iter().sum::<usize>(),
        reconnects.iter().min().copied().unwrap_or(0),
    );
    assert!(
        failed.is_empty(),
        "failed requests: {:?}",
        &failed[..failed.len().min(5)]
    );
    assert_eq!(behind, 0, "subscribers without every task's final state");
    assert!(
        reconnects.iter().all(|r| *r >= 1),
        "every subscriber's instance restarted once: each reconnected"
    );
    drop(proxy);
}
