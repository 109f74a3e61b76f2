//! Slow and hostile clients against the server in its own process: slow headers and bodies
//! are cut off by timeouts while others are served, a connection over the cap gets a 503
//! envelope, oversized heads and bodies get their 431/413 answers, a request over the
//! whole-request limit gets 504, and idle keep-alive connections cost little memory.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestDb;
use crate::process::{RawResponse, ServerProcess, exchange, get_request, read_response};

const SMALL_QUERY: &[u8] = br#"{"query":"{ __typename }"}"#;

fn post_head(path: &str, length: usize) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// Sends a GraphQL POST whose body arrives a byte every `every`; returns the answer and when
/// it came.
async fn post_trickling(
    server: &ServerProcess,
    every: Duration,
) -> (Option<RawResponse>, Duration) {
    let s = TcpStream::connect(server.addr).await.expect("connect");
    let (mut reader, mut writer) = s.into_split();
    writer
        .write_all(&post_head("/graphql", SMALL_QUERY.len()))
        .await
        .expect("send");
    let sent = Instant::now();
    let writing = tokio::spawn(async move {
        for b in SMALL_QUERY {
            tokio::time::sleep(every).await;
            if writer.write_all(&[*b]).await.is_err() {
                return;
            }
        }
    });
    let answer = read_response(&mut reader).await;
    writing.abort();
    (answer, sent.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_while_others_are_served() {
    let db = TestDb::new().await;
    let server = ServerProcess::start(&db.url, &["--header-timeout-ms", "1000"]).await;

    // 200 connections sending their headers a byte every 200 ms, never finishing.
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let s = TcpStream::connect(server.addr).await.expect("connect");
        slow.push(tokio::spawn(async move {
            let (mut reader, mut writer) = s.into_split();
            let writing = tokio::spawn(async move {
                let _ = writer
                    .write_all(b"GET /api/mj/self HTTP/1.1\r\nHost: localhost\r\n")
                    .await;
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if writer.write_all(b"X").await.is_err() {
                        return;
                    }
                }
            });
            let mut buf = [0u8; 256];
            let closed = tokio::time::timeout(Duration::from_secs(10), async {
                while let Ok(n) = reader.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await
            .is_ok();
            writing.abort();
            closed.then(|| started.elapsed())
        }));
    }
    // Meanwhile a polite client is served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        let r = reqwest::get(server.url("/healthz")).await.expect("healthz");
        assert_eq!(r.status(), 200);
    }
    let mut closed = Vec::new();
    for h in slow {
        if let Some(at) = h.await.expect("slow client") {
            closed.push(at);
        }
    }
    let latest = closed.iter().max().copied().unwrap_or_default();
    println!(
        "slow headers: {} of 200 connections cut off, the last {latest:?} after they started (header timeout 1 s); 20 polite requests served meanwhile",
        closed.len()
    );
    assert_eq!(closed.len(), 200, "every slow-header connection is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408_and_a_slow_request_504() {
    let db = TestDb::new().await;
    let server = ServerProcess::start(
        &db.url,
        &["--body-timeout-ms", "800", "--request-timeout-ms", "0"],
    )
    .await;
    let (answer, after) = post_trickling(&server, Duration::from_millis(200)).await;
    let answer = answer.expect("an answer, not a reset");
    println!(
        "slow body: {} after {after:?}: {}",
        answer.status, answer.body
    );
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert_eq!(
        answer.json()["errors"][0]["extensions"]["code"],
        "BODY_TIMEOUT"
    );

    // The whole-request limit, shorter than the body timeout this time.
    let server = ServerProcess::start(
        &db.url,
        &["--body-timeout-ms", "60000", "--request-timeout-ms", "600"],
    )
    .await;
    let (answer, after) = post_trickling(&server, Duration::from_millis(200)).await;
    let answer = answer.expect("an answer, not a reset");
    println!(
        "slow request: {} after {after:?}: {}",
        answer.status, answer.body
    );
    assert_eq!(answer.status, 504, "{}", answer.body);
    let error = &answer.json()["errors"][0];
    assert_eq!(error["extensions"]["code"], "TIMEOUT");
    assert_eq!(error["message"], "the request took longer than 600 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_a_503_envelope_until_one_closes() {
    let db = TestDb::new().await;
    let server = ServerProcess::start(&db.url, &["--max-connections", "20"]).await;
    // /healthz's own connection has closed by now, or closes within the header timeout;
    // wait until 20 keep-alive connections are all being served.
    let mut open = Vec::new();
    while open.len() < 20 {
        let (s, r) = exchange(server.addr, &get_request("/healthz", &[])).await;
        match r {
            Some(r) if r.status == 200 => open.push(s),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let request = get_request("/api/mj/self", &[("Accept-Language", "en")]);
    let (_, refused) = exchange(server.addr, &request).await;
    let refused = refused.expect("an answer, not a reset");
    println!("connection 21: {} {}", refused.status, refused.body);
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    assert_eq!(
        refused.json(),
        serde_json::json!({"success": false, "message": "too many connections: try again shortly"})
    );
    // The open ones keep working, and a closed one frees a place.
    let mut first = open.remove(0);
    first
        .write_all(&get_request("/healthz", &[]))
        .await
        .expect("send");
    assert_eq!(read_response(&mut first).await.map(|r| r.status), Some(200));
    drop(first);
    let started = Instant::now();
    loop {
        let (_, r) = exchange(server.addr, &get_request("/healthz", &[])).await;
        if r.as_ref().map(|r| r.status) == Some(200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the freed place was never given to a new connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_bodies_get_their_envelopes() {
    let db = TestDb::new().await;
    let server = ServerProcess::start(&db.url, &[]).await;
    let big = "x".repeat(20 * 1024);
    let request = get_request(
        "/api/mj/self",
        &[("X-Big", &big), ("Accept-Language", "en")],
    );
    let (_, r) = exchange(server.addr, &request).await;
    let r = r.expect("an answer");
    assert_eq!(r.status, 431);
    assert_eq!(
        r.json(),
        serde_json::json!({"success": false, "message": "request headers larger than 16 KiB"})
    );
    let (_, r) = exchange(
        server.addr,
        &get_request("/graphql?query={__typename}", &[("X-Big", &big)]),
    )
    .await;
    let r = r.expect("an answer");
    assert_eq!(r.status, 431);
    assert_eq!(
        r.json()["errors"][0]["extensions"]["code"],
        "HEADERS_TOO_LARGE"
    );
    // Beyond the parser's buffer the HTTP parser refuses it itself (no body).
    let huge = "x".repeat(100 * 1024);
    let (_, r) = exchange(
        server.addr,
        &get_request("/api/mj/self", &[("X-Big", &huge)]),
    )
    .await;
    assert_eq!(r.map(|r| r.status), Some(431));

    let body = format!(
        r#"{{"query":"{{ __typename }}","x":"{}"}}"#,
        "y".repeat(100 * 1024)
    );
    let mut request = post_head("/graphql", body.len());
    request.extend_from_slice(body.as_bytes());
    let (_, r) = exchange(server.addr, &request).await;
    let r = r.expect("an answer, not a reset");
    assert_eq!(r.status, 413);
    assert_eq!(
        r.json()["errors"][0]["message"],
        "request body larger than 64 KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_keep_alive_connections_cost_less_than_50_mb() {
    let db = TestDb::new().await;
    let server = ServerProcess::start(&db.url, &[]).await;
    for _ in 0..50 {
        let (_, r) = exchange(server.addr, &get_request("/healthz", &[])).await;
        assert_eq!(r.map(|r| r.status), Some(200));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_before, fds_before) = (server.rss_mib(), server.fds());
    let mut open = Vec::new();
    for _ in 0..10 {
        let batch: Vec<_> = (0..100)
            .map(|_| {
                let addr = server.addr;
                tokio::spawn(async move { exchange(addr, &get_request("/healthz", &[])).await })
            })
            .collect();
        for h in batch {
            let (s, r) = h.await.expect("client");
            assert_eq!(r.map(|r| r.status), Some(200));
            open.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_after, fds_after) = (server.rss_mib(), server.fds());
    let grown = rss_after - rss_before;
    println!(
        "1,000 idle keep-alive connections: RSS {rss_before:.1} → {rss_after:.1} MiB (+{grown:.1} MiB, {:.1} KiB each), fds {fds_before} → {fds_after}",
        grown * 1024.0 / 1000.0
    );
    assert!(fds_after >= fds_before + 1000, "the connections are open");
    assert!(
        grown < 50.0 / 1.048_576,
        "1,000 idle connections cost {grown:.1} MiB"
    );
    // Every one of them is still served.
    for s in &mut open {
        s.write_all(&get_request("/healthz", &[]))
            .await
            .expect("send");
    }
    for s in &mut open {
        assert_eq!(read_response(s).await.map(|r| r.status), Some(200));
    }
}
