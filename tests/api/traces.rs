//! Traces over OTLP: the server process sends its spans to a real OTLP/HTTP receiver (the
//! collector protocol's JSON encoding, decoded here); one request's spans continue the
//! caller's `traceparent` and nest request → GraphQL operation → database reads, with no
//! variables, tokens or SQL parameters in them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mj_tasks::service::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Task, spawn_app};
use crate::process::ServerProcess;

/// An OTLP/HTTP receiver on a free port: every `POST /v1/traces` body it gets.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = got.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 8192];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..head_end + length).skip(head_end).collect();
                    if head.starts_with("post /v1/traces")
                        && let Ok(v) = serde_json::from_slice::<Value>(&body)
                    {
                        store.lock().unwrap().push(v);
                    }
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, got)
}

/// Every span received: (name, its JSON).
fn spans(got: &[Value]) -> Vec<(String, Value)> {
    got.iter()
        .flat_map(|d| d["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
        .map(|s| (s["name"].as_str().unwrap_or_default().to_owned(), s))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_requests_spans_reach_the_collector_nested_under_the_callers_trace() {
    let (collector, got) = receiver().await;
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    app.task(Task::of(alice.id).mj("traced-1")).await;
    let mut server = ServerProcess::start(
        &app.db.url,
        &[
            "--otlp-endpoint",
            &collector,
            "--otlp-protocol",
            "http/json",
        ],
    )
    .await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let secret_prompt = "a-variable-value-never-traced";
    let answer: Value = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("Authorization", format!("Bearer {}", alice.token))
        .header("New-Api-User", alice.id.to_string())
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({
            "query": "query Traced($p: String!) { midjourneyTasks(filter: {prompt: {contains: $p}}) { totalCount nodes { mjId } } }",
            "variables": {"p": secret_prompt},
        }))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert!(answer["errors"].is_null(), "{answer}");
    // SIGTERM: the exit flushes the spans still buffered.
    server.terminate();
    assert!(server.exited(Duration::from_secs(15)).await.is_some());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while spans(&got.lock().unwrap()).len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = got.lock().unwrap().clone();
    let all = spans(&received);
    let ours: Vec<&(String, Value)> = all
        .iter()
        .filter(|(_, s)| s["traceId"] == trace_id)
        .collect();
    let names: Vec<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    println!("spans of the traced request: {names:?}");
    let find = |name: &str| {
        ours.iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("a {name:?} span among {names:?}"))
    };
    let request = find("POST /graphql");
    assert_eq!(
        request["parentSpanId"], caller_span,
        "continues the caller's span"
    );
    assert_eq!(request["kind"], 2, "a server span");
    let operation = find("Traced");
    assert_eq!(operation["parentSpanId"], request["spanId"]);
    for db in ["db user", "db rows", "db count"] {
        let span = find(db);
        let parent = &span["parentSpanId"];
        assert!(
            *parent == operation["spanId"] || *parent == request["spanId"],
            "{db} nests under the request: {span}"
        );
        assert_eq!(span["kind"], 3, "a client span");
    }
    let text = serde_json::to_string(&received).unwrap_or_default();
    assert!(
        !text.contains(secret_prompt),
        "no variable values in traces"
    );
    assert!(!text.contains(&alice.token), "no tokens in traces");
    assert!(
        text.contains("\"service.name\""),
        "the service names itself"
    );
}
