//! The GraphiQL playground in a real headless Chromium, driven over WebDriver: it loads
//! with no internet access, runs a query with the two auth headers, and shows task data.
//!
//! `#[ignore]`d, so a plain `cargo test` lists it as not run; `.ci/run` installs Debian's
//! `chromium` and `chromium-driver` and runs it with `--ignored browser::`, where a missing
//! browser fails the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use mj_tasks::service::Role;
use serde_json::{Value, json};

use crate::helpers::{Task, TestApp, TestDb, TestUser, spawn_app, spawn_app_with};

struct Driver {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        // chromedriver is an external process: poll its status endpoint until it answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = driver
                .client
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && r.status().is_success()
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the browser session.
    async fn end(&self, sid: &str) {
        self.call(
            reqwest::Method::DELETE,
            &format!("/session/{sid}"),
            Value::Null,
        )
        .await;
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        let req = if body.is_null() { req } else { req.json(&body) };
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }
}

/// Polls `script` in the page until `done` accepts its result.
async fn wait_for(
    driver: &Driver,
    session: &str,
    script: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{session}/execute/sync"),
                json!({"script": script, "args": []}),
            )
            .await;
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {script} (last: {v})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A headless Chromium session with a profile of its own.
async fn new_session(driver: &Driver) -> (String, tempfile::TempDir) {
    let profile = tempfile::tempdir().unwrap();
    let session = driver
        .call(
            reqwest::Method::POST,
            "/session",
            json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1400,900", format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": profile.path().join("downloads").display().to_string(),
                    "download.prompt_for_download": false,
                }
            }}}}),
        )
        .await;
    let sid = session["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("session: {session}"))
        .to_owned();
    (sid, profile)
}

/// Opens `url` in the session.
async fn navigate(driver: &Driver, sid: &str, url: &str) {
    driver
        .call(
            reqwest::Method::POST,
            &format!("/session/{sid}/url"),
            json!({"url": url}),
        )
        .await;
}

/// A headless Chromium session with the playground open on `query`, the auth headers of
/// `user` filled in, its run button ready.
async fn open_playground(
    app: &TestApp,
    user: &TestUser,
    query: &str,
) -> (Driver, String, tempfile::TempDir) {
    let driver = Driver::start().await;
    let (sid, profile) = new_session(&driver).await;

    let headers = json!({"Authorization": format!("Bearer {}", user.token), "New-Api-User": user.id.to_string()})
        .to_string();
    let mut url = reqwest::Url::parse(&app.url("/graphql")).unwrap();
    url.query_pairs_mut()
        .append_pair("query", query)
        .append_pair("headers", &headers);
    driver
        .call(
            reqwest::Method::POST,
            &format!("/session/{sid}/url"),
            json!({"url": url.as_str()}),
        )
        .await;

    playground_ready(&driver, &sid).await;
    (driver, sid, profile)
}

/// Waits until the playground has rendered (its scripts came from the service itself).
async fn playground_ready(driver: &Driver, sid: &str) {
    wait_for(
        driver,
        sid,
        "return !!document.querySelector('.graphiql-execute-button');",
        |v| v == &json!(true),
    )
    .await;
}

async fn run(driver: &Driver, sid: &str) {
    driver
        .call(
            reqwest::Method::POST,
            &format!("/session/{sid}/execute/sync"),
            json!({"script": "document.querySelector('.graphiql-execute-button').click();", "args": []}),
        )
        .await;
}

/// The result pane's whole text (CodeMirror renders only the visible lines, so its
/// `innerText` would miss the rest of a long result).
const RESULT: &str = "const r = document.querySelector('.result-window'); if (!r) return ''; \
     const cm = r.querySelector('.CodeMirror'); return cm && cm.CodeMirror ? cm.CodeMirror.getValue() : r.innerText;";

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver (run with --ignored browser::)"]
async fn playground_runs_a_query_with_auth_headers_in_headless_chromium() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    app.task(
        Task::of(u.id)
            .mj("browser-visible-task")
            .prompt("a lighthouse at dawn"),
    )
    .await;
    let query = "{ midjourneyTasks { totalCount nodes { id mjId prompt status } } }";
    let (driver, sid, _profile) = open_playground(&app, &u, query).await;
    run(&driver, &sid).await;
    let result = wait_for(&driver, &sid, RESULT, |v| {
        v.as_str()
            .is_some_and(|s| s.contains("browser-visible-task"))
    })
    .await;
    let text = result.as_str().unwrap();
    assert!(text.contains("a lighthouse at dawn"), "{text}");
    assert!(text.contains("\"totalCount\": 1"), "{text}");

    let png = driver
        .call(
            reqwest::Method::GET,
            &format!("/session/{sid}/screenshot"),
            Value::Null,
        )
        .await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("graphiql-playground.png");
    std::fs::write(&path, &bytes).unwrap();
    println!(
        "playground screenshot: {} ({} bytes); result pane:\n{text}",
        path.display(),
        bytes.len()
    );
    driver.end(&sid).await;
}

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver (run with --ignored browser::)"]
async fn playground_runs_a_subscription_and_shows_events_as_rows_change() {
    let app = spawn_app_with(TestDb::new().await, |cfg| cfg.live.live_poll_ms = 200).await;
    let u = app.user("alice", Role::Common).await;
    let query = "subscription { midjourneyTaskEvents { kind task { mjId status progress } } }";
    let (driver, sid, _profile) = open_playground(&app, &u, query).await;
    run(&driver, &sid).await;
    // The subscription is open once the server counts it; then a row is written from
    // outside the service, as new-api writes it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.live.subscriptions() == 0 {
        assert!(
            Instant::now() < deadline,
            "the playground did not subscribe"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.db.submit(u.id, "browser-live-task", 1).await;
    let shown = wait_for(&driver, &sid, RESULT, |v| {
        v.as_str().is_some_and(|s| s.contains("browser-live-task"))
    })
    .await;
    let text = shown.as_str().unwrap();
    assert!(text.contains("CREATED"), "{text}");
    app.db
        .progress("browser-live-task", "IN_PROGRESS", "42%")
        .await;
    let shown = wait_for(&driver, &sid, RESULT, |v| {
        v.as_str().is_some_and(|s| s.contains("42%"))
    })
    .await;
    let text = shown.as_str().unwrap();
    assert!(text.contains("UPDATED"), "{text}");
    assert!(
        text.contains("CREATED"),
        "the earlier event stays listed: {text}"
    );
    println!("playground result pane after a progress update:\n{text}");

    // The README's browser snippet: a plain WebSocket (graphql-transport-ws), the auth
    // headers in connection_init.
    let snippet = format!(
        "{}\nwindow.__live = []; const s = subscribe((e) => window.__live.push(e));",
        README_SNIPPET
            .replace("<access token>", &u.token)
            .replace("\"<user id>\"", &format!("\"{}\"", u.id))
    );
    driver
        .call(
            reqwest::Method::POST,
            &format!("/session/{sid}/execute/sync"),
            json!({"script": snippet, "args": []}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.db.submit(u.id, "browser-ws-task", 1).await;
    let seen = wait_for(
        &driver,
        &sid,
        "return JSON.stringify(window.__live);",
        |v| v.as_str().is_some_and(|s| s.contains("browser-ws-task")),
    )
    .await;
    println!(
        "events through the README's WebSocket snippet: {}",
        seen.as_str().unwrap()
    );
    driver.end(&sid).await;
}

/// The browser snippet of the README's "Live progress" section, verbatim.
pub const README_SNIPPET: &str = r#"function subscribe(onEvent) {
  const ws = new WebSocket(`ws://${location.host}/graphql`, "graphql-transport-ws");
  ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload: {
    "Authorization": "Bearer <access token>", "New-Api-User": "<user id>" } }));
  ws.onmessage = ({ data }) => {
    const msg = JSON.parse(data);
    if (msg.type === "connection_ack") ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: {
      query: "subscription { midjourneyTaskEvents { kind task { id mjId status progress imageUrl } } }" } }));
    if (msg.type === "next") onEvent(msg.payload.data.midjourneyTaskEvents);
    if (msg.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
  };
  ws.onclose = (e) => console.log("closed", e.code, e.reason); // 4401/4403: credentials
  return ws;
}"#;

/// The script a frontend runs: GraphQL and REST with the two auth headers, by `fetch`.
fn frontend_calls(api: &str, user: &TestUser) -> String {
    format!(
        r#"const done = arguments[arguments.length - 1];
const h = {{"Authorization": "{token}", "New-Api-User": "{id}"}};
Promise.all([
  fetch("{api}/graphql", {{method: "POST", headers: {{...h, "Content-Type": "application/json"}},
    body: JSON.stringify({{query: "{{ midjourneyTasks {{ nodes {{ mjId }} }} }}"}})}}).then(r => r.json()),
  fetch("{api}/api/mj/self", {{headers: h}})
    .then(async r => ({{status: r.status, requestId: r.headers.get("x-request-id"), body: await r.json()}})),
]).then(v => done({{ok: v}}), e => done({{error: String(e)}}));"#,
        token = user.token,
        id = user.id,
    )
}

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver (run with --ignored browser::)"]
async fn a_page_from_an_allowed_origin_calls_graphql_and_rest_and_another_origin_is_refused() {
    // The frontend: a page served from an origin of its own.
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_port = site.local_addr().unwrap().port();
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html("<!doctype html><title>dashboard</title>")
        }),
    );
    tokio::spawn(async move { axum::serve(site, page).await });
    let allowed = format!("http://127.0.0.1:{site_port}");
    let origin = allowed.clone();
    let app = spawn_app_with(TestDb::new().await, move |c| {
        c.server.cors_origins = vec![origin];
    })
    .await;
    let user = app.user("alice", Role::Common).await;
    app.task(Task::of(user.id).mj("cors-task")).await;
    let api = format!("http://{}", app.addr);

    let driver = Driver::start().await;
    let (sid, _profile) = new_session(&driver).await;
    let call = |sid: String| {
        let script = frontend_calls(&api, &user);
        let driver = &driver;
        async move {
            driver
                .call(
                    reqwest::Method::POST,
                    &format!("/session/{sid}/execute/async"),
                    json!({"script": script, "args": []}),
                )
                .await
        }
    };
    navigate(&driver, &sid, &format!("{allowed}/")).await;
    let answer = call(sid.clone()).await;
    println!("from {allowed}: {answer}");
    assert_eq!(
        answer["ok"][0]["data"]["midjourneyTasks"]["nodes"][0]["mjId"], "cors-task",
        "{answer}"
    );
    assert_eq!(answer["ok"][1]["status"], 200);
    assert_eq!(answer["ok"][1]["body"]["success"], true);
    assert!(
        answer["ok"][1]["requestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );

    // The same page from an origin not in the list: the browser refuses to hand over the
    // answers.
    let other = format!("http://localhost:{site_port}");
    navigate(&driver, &sid, &format!("{other}/")).await;
    let refused = call(sid.clone()).await;
    println!("from {other}: {refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to fetch")),
        "{refused}"
    );
    driver.end(&sid).await;
}

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver (run with --ignored browser::)"]
async fn the_demo_prints_a_playground_link_that_runs_the_sample_with_one_click() {
    use std::io::BufRead;
    let port = crate::process::free_port();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_mj-tasks"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--tasks",
            "200",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo");
    let stdout = demo.stdout.take().expect("stdout");
    // Read on to the end: a closed pipe would make the demo's next line fail.
    let (found, link) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("http://") && line.contains("/graphql?query=") {
                let _ = found.send(line);
            }
        }
    });
    let link = tokio::task::spawn_blocking(move || link.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("reader")
        .expect("a playground link in the demo's output");
    println!("{link}");

    let driver = Driver::start().await;
    let (sid, _profile) = new_session(&driver).await;
    navigate(&driver, &sid, &link).await;
    playground_ready(&driver, &sid).await;
    run(&driver, &sid).await;
    let result = wait_for(&driver, &sid, RESULT, |v| {
        v.as_str().is_some_and(|s| s.contains("totalCount"))
    })
    .await;
    let text = result.as_str().unwrap_or_default();
    assert!(text.contains("\"username\": \"alice\""), "{text}");
    assert!(!text.contains("\"errors\""), "{text}");
    // Both logs: the Midjourney tasks and the generic log's Suno and video tasks.
    assert!(text.contains("\"mjId\""), "{text}");
    assert!(text.contains("\"taskId\": \"task_"), "{text}");
    // The link's document carries the live-progress sample too.
    let editor = wait_for(
        &driver,
        &sid,
        "const e = document.querySelector('.graphiql-query-editor .CodeMirror'); return e ? e.CodeMirror.getValue() : '';",
        |v| v.as_str().is_some_and(|s| !s.is_empty()),
    )
    .await;
    let editor = editor.as_str().unwrap_or_default();
    assert!(editor.contains("subscription LiveProgress"), "{editor}");
    // The same link with LiveProgress picked: the events stream in and stay listed.
    let live = link.replace("operationName=MyTasks", "operationName=LiveProgress");
    navigate(&driver, &sid, &live).await;
    playground_ready(&driver, &sid).await;
    run(&driver, &sid).await;
    let streamed = wait_for(&driver, &sid, RESULT, |v| {
        v.as_str()
            .is_some_and(|s| s.matches("\"kind\"").count() >= 3)
    })
    .await;
    let streamed = streamed.as_str().unwrap_or_default();
    println!(
        "the demo's LiveProgress in the playground: {} events listed",
        streamed.matches("\"kind\"").count()
    );
    driver.end(&sid).await;
    let _ = demo.kill();
    let _ = demo.wait();
}

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver (run with --ignored browser::)"]
async fn a_page_of_another_origin_gets_an_export_link_and_downloads_the_csv() {
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_port = site.local_addr().unwrap().port();
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html("<!doctype html><title>reports</title>")
        }),
    );
    tokio::spawn(async move { axum::serve(site, page).await });
    let allowed = format!("http://127.0.0.1:{site_port}");
    let origin = allowed.clone();
    let app = spawn_app_with(TestDb::new().await, move |c| {
        c.server.cors_origins = vec![origin];
    })
    .await;
    let user = app.user("alice", Role::Common).await;
    app.task(
        Task::of(user.id)
            .mj("export-1")
            .prompt("=HYPERLINK(\"http://evil\")"),
    )
    .await;
    app.task(
        Task::of(user.id)
            .submitted(1_700_000_060_000)
            .mj("export-2")
            .prompt("a quiet lake"),
    )
    .await;
    let api = format!("http://{}", app.addr);

    let driver = Driver::start().await;
    let (sid, profile) = new_session(&driver).await;
    navigate(&driver, &sid, &format!("{allowed}/")).await;
    // The frontend asks GraphQL for a link (with its headers), then fetches the file by the
    // plain link (no headers) and also starts a real download of it.
    let script = format!(
        r#"const done = arguments[arguments.length - 1];
fetch("{api}/graphql", {{method: "POST",
  headers: {{"Authorization": "{token}", "New-Api-User": "{id}", "Content-Type": "application/json"}},
  body: JSON.stringify({{query: "{{ midjourneyTaskExport(timeZone: \"Asia/Tokyo\") {{ url expiresAt }} }}"}})}})
  .then(r => r.json())
  .then(async j => {{
    const url = "{api}" + j.data.midjourneyTaskExport.url;
    const r = await fetch(url);
    const text = await r.text();
    const a = document.createElement("a");
    a.href = url; document.body.appendChild(a); a.click();
    done({{status: r.status, disposition: r.headers.get("content-disposition"), text}});
  }})
  .catch(e => done({{error: String(e)}}));"#,
        token = user.token,
        id = user.id,
    );
    let answer = driver
        .call(
            reqwest::Method::POST,
            &format!("/session/{sid}/execute/async"),
            json!({"script": script, "args": []}),
        )
        .await;
    println!("export from {allowed}: {answer}");
    assert_eq!(answer["status"], 200, "{answer}");
    assert!(
        answer["disposition"]
            .as_str()
            .is_some_and(|d| d.contains("midjourney-tasks-")),
        "{answer}"
    );
    let text = answer["text"].as_str().unwrap();
    assert!(text.starts_with("id,user_id,code,mj_id,"), "{text}");
    // The downloaded file: the same header and rows.
    let downloads = profile.path().join("downloads");
    let deadline = Instant::now() + Duration::from_secs(20);
    let file = loop {
        let done: Vec<_> = std::fs::read_dir(&downloads)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if let Some(f) = done
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == "csv"))
        {
            break f.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no download arrived in {}: {done:?}",
            downloads.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let saved = std::fs::read_to_string(&file).unwrap();
    println!("downloaded {} ({} bytes)", file.display(), saved.len());
    let mut reader = csv::Reader::from_reader(saved.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(&header[..4], ["id", "user_id", "code", "mj_id"]);
    let prompt = header.iter().position(|h| h == "prompt").unwrap();
    let iso = header.iter().position(|h| h == "submit_time_iso").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][3], "export-2");
    assert_eq!(
        &rows[1][prompt], "'=HYPERLINK(\"http://evil\")",
        "neutralised"
    );
    assert!(
        rows[0][iso].ends_with("+09:00"),
        "times in Tokyo: {}",
        &rows[0][iso]
    );
    driver.end(&sid).await;
}
