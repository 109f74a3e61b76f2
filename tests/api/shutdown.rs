//! Graceful shutdown of the server process under load: SIGTERM with a hundred requests on the
//! wire (some long, some still in the operating system's accept queue) answers every one in
//! full; draining shows on `/healthz` while requests are still served; subscriptions get a
//! proper close; a request still running at the end of the grace period gets a 503 envelope,
//! and the process exits within the grace period.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mj_tasks::app::App;
use mj_tasks::config::{DbConfig, ServeArgs};
use mj_tasks::service::Service;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use crate::helpers::{TestDb, TestUser, env_cases};
use crate::live_client::{EVENTS, Frame, Ws};
use crate::process::{RawResponse, ServerProcess, get_request, read_response};

const STATS: &str = "{ midjourneyTaskStats { count quotaSum successCount byStatus { key count } byAction { key count } byDay(days: 30) { start count } } }";

fn graphql_post(user: &TestUser, query: &str) -> Vec<u8> {
    let body = json!({ "query": query }).to_string();
    format!(
        "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAuthorization: {}\r\nNew-Api-User: {}\r\nContent-Length: {}\r\n\r\n{body}",
        user.token,
        user.id,
        body.len()
    )
    .into_bytes()
}

fn rest_get(user: &TestUser, path: &str) -> Vec<u8> {
    get_request(
        path,
        &[
            ("Authorization", &user.token),
            ("New-Api-User", &user.id.to_string()),
        ],
    )
}

/// The number in the server's "stopped accepting" log line: connections the operating
/// system had queued that were taken after the signal.
fn queued(log: &str) -> Option<u64> {
    log.lines()
        .filter(|l| l.contains("stopped accepting"))
        .find_map(|l| l.split("queued=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_hundred_requests_on_the_wire_answers_every_one() {
    let tasks = env_cases("SHUTDOWN_TASKS", 50_000) as i64;
    let db = TestDb::new().await;
    let mut server = ServerProcess::start(&db.url, &[]).await;
    let service = Service::new(db.connect().await, None);
    let seeded = service.seed_bench(tasks as usize, 10).await.expect("seed");
    let admin = TestUser {
        id: seeded.admin.id,
        token: seeded.admin.access_token.clone(),
    };

    // 100 connections, each with its request written; every fifth a stats query over the
    // whole table, the others admin pages with their totals. The first 50 reach the service;
    // the other 50 are sent while the process is stopped (SIGSTOP), so at SIGTERM they sit
    // in the operating system's accept queue, accepted by the kernel but not by the service.
    let send = |i: usize, barrier: Arc<Barrier>| {
        let request = if i.is_multiple_of(5) {
            graphql_post(&admin, STATS)
        } else {
            rest_get(&admin, &format!("/api/mj/?p={}&page_size=20", i + 1))
        };
        let addr = server.addr;
        tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(&request).await.expect("send");
            barrier.wait().await;
            (i, read_response(&mut s).await)
        })
    };
    let mut clients = Vec::new();
    let in_service = Arc::new(Barrier::new(51));
    for i in 0..50 {
        clients.push(send(i, in_service.clone()));
    }
    in_service.wait().await;
    server.signal("STOP");
    let queued_up = Arc::new(Barrier::new(51));
    for i in 50..100 {
        clients.push(send(i, queued_up.clone()));
    }
    queued_up.wait().await;
    server.terminate();
    let signalled = Instant::now();
    server.signal("CONT");

    let mut complete = 0;
    let mut failures = Vec::new();
    for c in clients {
        let (i, answer) = c.await.expect("client");
        let full = |r: &RawResponse| {
            let v = r.json();
            if i.is_multiple_of(5) {
                v["data"]["midjourneyTaskStats"]["count"] == json!(tasks)
            } else {
                v["success"] == json!(true)
                    && v["data"]["total"] == json!(tasks)
                    && v["data"]["items"].as_array().map(Vec::len) == Some(20)
            }
        };
        match answer {
            Some(r) if r.status == 200 && full(&r) => complete += 1,
            Some(r) => failures.push(format!("request {i}: {} {}", r.status, r.body)),
            None => failures.push(format!("request {i}: no answer (reset or closed)")),
        }
    }
    let answered_after = signalled.elapsed();
    let exit = server.exited(Duration::from_secs(11)).await;
    let exited_after = signalled.elapsed();
    let log = server.log();
    println!(
        "SIGTERM with 100 requests on the wire (50 in the service, 50 sent while it was stopped, of which {} were still in the accept queue after the signal; 20 stats over {tasks} rows): {complete} answered in full, {} not; all answered {answered_after:?} after the signal; exited {exited_after:?} after it ({exit:?})",
        queued(&log).map_or("?".to_owned(), |q| q.to_string()),
        failures.len(),
    );
    assert!(failures.is_empty(), "{failures:#?}\n{log}");
    assert_eq!(complete, 100);
    assert!(exit.is_some_and(|s| s.success()), "exit: {exit:?}\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_then_closing_then_503_at_the_deadline() {
    let db = TestDb::new().await;
    let mut server = ServerProcess::start(
        &db.url,
        &[
            "--shutdown-drain-ms",
            "1500",
            "--shutdown-grace-ms",
            "3000",
            "--body-timeout-ms",
            "60000",
            "--request-timeout-ms",
            "0",
        ],
    )
    .await;
    let service = Service::new(db.connect().await, None);
    let u = service
        .create_user("drain", mj_tasks::service::Role::Common)
        .await
        .expect("user");
    let user = TestUser {
        id: u.id,
        token: u.access_token,
    };
    let mut ws = Ws::connect(server.addr, "graphql-transport-ws").await;
    ws.init(&user).await;
    ws.subscribe("1", EVENTS, json!({})).await;

    // A request that will still be running at the deadline: its body trickles in.
    let body = json!({ "query": "{ __typename }" }).to_string();
    let s = TcpStream::connect(server.addr).await.expect("connect");
    let (mut reader, mut writer) = s.into_split();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes()).await.expect("send");
    let trickling = tokio::spawn(async move {
        for b in body.bytes() {
            if writer.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let slow = tokio::spawn(async move { read_response(&mut reader).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.terminate();
    let signalled = Instant::now();
    // Draining: /healthz says so, requests on new connections are still served.
    let health = async {
        loop {
            let r = reqwest::get(server.url("/healthz")).await.expect("healthz");
            if r.status() == 503 {
                return r.json::<serde_json::Value>().await.expect("json");
            }
            assert!(
                signalled.elapsed() < Duration::from_secs(1),
                "never draining"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(health.await, json!({"status": "draining"}));
    let (_, served) = crate::process::exchange(server.addr, &rest_get(&user, "/api/mj/self")).await;
    assert_eq!(served.map(|r| r.status), Some(200), "served while draining");
    let drained_at = signalled.elapsed();
    assert!(drained_at < Duration::from_millis(1500));

    // Then the subscription completes and the WebSocket closes with 1001.
    let mut closed = None;
    while closed.is_none() {
        match ws.recv(Duration::from_secs(5)).await {
            Frame::Json(v) => assert_eq!(v["type"], "complete", "{v}"),
            Frame::Close(code, _) => closed = Some((code, signalled.elapsed())),
            Frame::Gone => panic!("reset instead of a close"),
        }
    }
    let (code, closed_at) = closed.expect("closed");
    assert_eq!(code, 1001);
    assert!(
        closed_at >= Duration::from_millis(1400),
        "closed during the drain"
    );

    // The trickling request is answered 503 at the deadline, and the process exits in time.
    let answer = slow.await.expect("client").expect("an answer, not a reset");
    let answered_at = signalled.elapsed();
    trickling.abort();
    let exit = server.exited(Duration::from_secs(5)).await;
    let exited_at = signalled.elapsed();
    println!(
        "drain 1.5 s, grace 3 s: /healthz draining and requests served at {drained_at:?}; WebSocket closed 1001 at {closed_at:?}; the running request answered {} at {answered_at:?}: {}; exited at {exited_at:?}",
        answer.status, answer.body
    );
    assert_eq!(answer.status, 503);
    assert_eq!(
        answer.json()["errors"][0]["extensions"]["code"],
        "SHUTTING_DOWN"
    );
    assert!(
        exit.is_some_and(|s| s.success()),
        "{exit:?}\n{}",
        server.log()
    );
    assert!(
        exited_at < Duration::from_millis(3500),
        "exited {exited_at:?} after the signal, grace 3 s"
    );
}

/// Connections the kernel accepted before the stop, that the service never picked up, are
/// still served: here the stop comes before the first accept, so every connection comes
/// through the step that empties the accept queue before the listener closes.
#[tokio::test]
async fn connections_the_kernel_queued_before_the_stop_are_served() {
    let db = TestDb::new().await;
    let cfg = ServeArgs::new(
        DbConfig::for_url(db.url.clone()),
        "127.0.0.1:0".parse().expect("address"),
    );
    let app = App::build(&cfg).await.expect("build");
    let addr = app.local_addr().expect("address");
    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(&get_request("/graphql?query={__typename}", &[]))
            .await
            .expect("send");
        streams.push(s);
    }
    let served = tokio::spawn(app.run_until(async {}));
    for s in &mut streams {
        let r = read_response(s).await.expect("an answer, not a reset");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["data"]["__typename"], "Query");
    }
    served.await.expect("join").expect("served");
}
