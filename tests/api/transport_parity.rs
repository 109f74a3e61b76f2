//! One gate, every transport: generated requests (credentials valid, banned, demoted or
//! replaced after the WebSocket was opened; listed and unlisted documents, sent in full or
//! by hash; introspection and `_service` with introspection off; over-limit documents;
//! bursts over the rate; operations stalled past the timeout) are sent over `POST`, `GET`,
//! Server-Sent Events (`POST` and `GET`) and a WebSocket, and every transport must give
//! the same verdict: the same data, or the same error codes. A rule added to one path and
//! not the others makes a case differ.

use std::collections::BTreeMap;
use std::time::Duration;

use mj_tasks::graphql::persisted::hash;
use mj_tasks::service::Role;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sea_orm::TransactionTrait;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, TestUser, env_cases, error_codes, runtime, spawn_app_with};
use crate::live_client::{Frame, Sse, Ws};

/// Requests a second per user in the parity server.
const RATE: u32 = 3;
/// The parity server's whole-operation limit.
const TIMEOUT_MS: u64 = 600;

/// The documents a case may send; all but `Unlisted` are trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Doc {
    Own,
    AdminOnly,
    Introspection,
    Service,
    TooManyScans,
    Unlisted,
}

impl Doc {
    fn text(self) -> String {
        match self {
            Doc::Own => "query Own { viewer { isAdmin } midjourneyTasks { totalCount } }".into(),
            Doc::AdminOnly => {
                "query AdminOnly { midjourneyTasks(filter: {channelId: {eq: 1}}) { totalCount } }"
                    .into()
            }
            Doc::Introspection => "query Schema { __schema { queryType { name } } }".into(),
            Doc::Service => "query Sdl { _service { sdl } }".into(),
            Doc::TooManyScans => {
                let aliases: Vec<String> = (0..11)
                    .map(|i| format!("c{i}: midjourneyTasks {{ totalCount }}"))
                    .collect();
                format!("query Scans {{ {} }}", aliases.join(" "))
            }
            // The same operation as `Own`, spelt differently: not the listed document.
            Doc::Unlisted => {
                "query Own { viewer { isAdmin }  midjourneyTasks { totalCount } }".into()
            }
        }
    }
}

/// What happened to the caller after the WebSocket was opened (and before any request).
#[derive(Clone, Copy, Debug)]
enum Who {
    Valid,
    Banned,
    /// An admin made a common user.
    Demoted,
    /// The token was replaced: the one presented no longer authenticates.
    Replaced,
    /// A common user made an admin.
    Promoted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Post,
    Get,
    SsePost,
    SseGet,
    Ws,
}

const TRANSPORTS: [Transport; 5] = [
    Transport::Post,
    Transport::Get,
    Transport::SsePost,
    Transport::SseGet,
    Transport::Ws,
];

#[derive(Clone, Debug)]
struct Case {
    who: Who,
    doc: Doc,
    by_hash: bool,
    /// Operations sent back to back (a burst over [`RATE`] is refused in part).
    burst: usize,
    /// The database pool is held by others while the operations run (they time out).
    stalled: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(Who::Valid),
            Just(Who::Banned),
            Just(Who::Demoted),
            Just(Who::Replaced),
            Just(Who::Promoted),
        ],
        prop_oneof![
            Just(Doc::Own),
            Just(Doc::AdminOnly),
            Just(Doc::Introspection),
            Just(Doc::Service),
            Just(Doc::TooManyScans),
            Just(Doc::Unlisted),
        ],
        any::<bool>(),
        1usize..=5,
        prop::bool::weighted(0.15),
    )
        .prop_map(|(who, doc, by_hash, burst, stalled)| Case {
            who,
            doc,
            by_hash,
            burst,
            stalled,
        })
}

/// A verdict: the data (null when none) and the error codes.
type Verdict = (Value, Vec<String>);

fn verdict(payload: &Value) -> Verdict {
    let mut codes = error_codes(payload);
    codes.sort();
    (payload.get("data").cloned().unwrap_or(Value::Null), codes)
}

/// The request body (or query string fields) of `case`.
fn body(case: &Case) -> Value {
    let text = case.doc.text();
    if case.by_hash {
        json!({"query": "", "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash(&text)}}})
    } else {
        json!({ "query": text })
    }
}

fn query_string(body: &Value) -> String {
    let mut pairs = vec![("query", body["query"].as_str().unwrap_or("").to_owned())];
    if let Some(ext) = body.get("extensions") {
        pairs.push(("extensions", ext.to_string()));
    }
    serde_urlencoded::to_string(pairs).expect("query string")
}

/// The credentials as the transports present them (the same bytes everywhere).
fn auth(user: &TestUser) -> [(&'static str, String); 2] {
    [
        ("Authorization", format!("Bearer {}", user.token)),
        ("New-Api-User", user.id.to_string()),
    ]
}

async fn over_http(app: &TestApp, t: Transport, user: &TestUser, body: &Value) -> Verdict {
    let mut req = match t {
        Transport::Post | Transport::SsePost => app.client.post(app.url("/graphql")).json(body),
        _ => app
            .client
            .get(app.url(&format!("/graphql?{}", query_string(body)))),
    };
    for (name, value) in auth(user) {
        req = req.header(name, value);
    }
    if matches!(t, Transport::SsePost | Transport::SseGet) {
        req = req.header("Accept", "text/event-stream");
        let resp = req.send().await.expect("request");
        let mut sse = Sse::from_response(resp);
        let first = sse.next().await.expect("a response before complete");
        assert!(sse.next().await.is_none(), "one response, then complete");
        return verdict(&first);
    }
    req = req.header("Accept", "application/json");
    let resp = req.send().await.expect("request");
    verdict(&resp.json::<Value>().await.expect("JSON answer"))
}

/// The verdicts of `case` on transport `t`, for a fresh user (its own rate budget), sorted
/// (a socket's operations pass the gate in no particular order).
async fn run(app: &TestApp, case: &Case, t: Transport) -> Vec<Verdict> {
    let role = match case.who {
        Who::Demoted => Role::Admin,
        _ => Role::Common,
    };
    let user = app.user(&crate::helpers::unique_name(), role).await;
    // The socket opens while the user is still as created.
    let mut ws = if t == Transport::Ws {
        let mut ws = Ws::connect(app.addr, "graphql-transport-ws").await;
        ws.init(&user).await;
        Some(ws)
    } else {
        None
    };
    let change = match case.who {
        Who::Valid => None,
        Who::Banned => Some(format!(
            "UPDATE users SET status = 2 WHERE id = {}",
            user.id
        )),
        Who::Demoted => Some(format!("UPDATE users SET role = 1 WHERE id = {}", user.id)),
        Who::Promoted => Some(format!("UPDATE users SET role = 10 WHERE id = {}", user.id)),
        Who::Replaced => {
            let fresh = format!("r{}", &crate::helpers::unique_name().replace('-', ""));
            let fresh: String = fresh.chars().take(32).collect();
            Some(format!(
                "UPDATE users SET access_token = '{fresh}' WHERE id = {}",
                user.id
            ))
        }
    };
    if let Some(sql) = change {
        app.sql(&sql).await;
    }
    // Every pool connection held elsewhere: any operation that needs the database waits
    // past the timeout.
    let mut held = Vec::new();
    if case.stalled {
        for _ in 0..2 {
            held.push(app.service.db().begin().await.expect("hold a connection"));
        }
    }
    let body = body(case);
    let mut out = Vec::new();
    match ws.as_mut() {
        Some(ws) => {
            for i in 0..case.burst {
                ws.send(json!({"id": i.to_string(), "type": "subscribe", "payload": body}))
                    .await;
            }
            let mut got = BTreeMap::new();
            while got.len() < case.burst {
                match ws.recv(Duration::from_secs(10)).await {
                    Frame::Json(v) if v["type"] == "next" => {
                        let id = v["id"].as_str().unwrap_or_default().to_owned();
                        got.insert(id, verdict(&v["payload"]));
                    }
                    Frame::Json(v) if v["type"] == "complete" => {}
                    other => panic!("{case:?}: unexpected {other:?}"),
                }
            }
            out.extend(got.into_values());
        }
        None => {
            // Sent at once, as a socket's operations are.
            let sent = (0..case.burst).map(|_| over_http(app, t, &user, &body));
            out.extend(futures_util::future::join_all(sent).await);
        }
    }
    for tx in held {
        tx.rollback().await.expect("release");
    }
    out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    out
}

async fn parity_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("trusted.json");
    let listed: serde_json::Map<String, Value> = [
        Doc::Own,
        Doc::AdminOnly,
        Doc::Introspection,
        Doc::Service,
        Doc::TooManyScans,
    ]
    .iter()
    .map(|d| (hash(&d.text()), Value::String(d.text())))
    .collect();
    std::fs::write(&file, Value::Object(listed).to_string()).expect("write trusted");
    let app = spawn_app_with(TestDb::new().await, |c| {
        c.trusted_documents = Some(file);
        c.no_introspection = true;
        c.server.rate_limit_per_user = RATE;
        c.server.request_timeout_ms = TIMEOUT_MS;
        c.db.db_max_connections = 2;
        c.db.db_acquire_timeout_ms = 5_000;
    })
    .await;
    // The file is read at start.
    drop(dir);
    app
}

#[test]
fn every_transport_gives_the_same_verdict_on_generated_requests() {
    let started = std::time::Instant::now();
    let rt = runtime();
    let app = rt.block_on(parity_app());
    let n = env_cases("TRANSPORT_PARITY_CASES", 24);
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    let seen: std::cell::RefCell<BTreeMap<String, usize>> = Default::default();
    let result = runner.run(&cases(), |case| {
        let verdicts: Vec<(Transport, Vec<Verdict>)> = rt.block_on(async {
            let mut all = Vec::new();
            for t in TRANSPORTS {
                all.push((t, run(&app, &case, t).await));
                // A fresh rate budget for the next transport's user is its own, but the
                // per-user turns and the pool are shared: let them settle.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            all
        });
        let (first_t, first) = &verdicts[0];
        for (t, v) in &verdicts[1..] {
            prop_assert_eq!(
                v,
                first,
                "{:?} answered differently from {:?} for {:?}",
                t,
                first_t,
                case
            );
        }
        for (_, codes) in first {
            let key = if codes.is_empty() {
                "data".to_owned()
            } else {
                codes.join("+")
            };
            *seen.borrow_mut().entry(key).or_default() += 1;
        }
        Ok::<(), TestCaseError>(())
    });
    println!(
        "transport parity: {n} generated cases over 5 transports in {:.1} s; verdicts seen: {:?}",
        started.elapsed().as_secs_f64(),
        seen.borrow()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
