//! A model-based property of the task log: generated requests through both doors
//! (`/api/task/self`, `/api/task/`, GraphQL `tasks`) by several users, each answer compared
//! with an in-memory model of the same rows (scoping, new-api's filters and NULL rules,
//! GraphQL's, GraphQL's orders, pages, totals); and no answer ever contains a `private_data` secret.
//! `TASK_LOG_CASES` (default 1,000) requests; the count is printed.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{TestApp, env_cases, runtime, spawn_app};
use crate::task_log::{Row, insert, raw_user};

const PLATFORMS: [Option<&str>; 4] = [Some("suno"), Some("50"), Some("SUNO"), None];
const STATUSES: [Option<&str>; 4] = [Some("SUCCESS"), Some("FAILURE"), Some("SUCCESS "), None];
const ACTIONS: [Option<&str>; 3] = [Some("MUSIC"), Some("generate"), None];
/// Users: 7 and 8 (common), 2 (admin); rows belong to 7, 8 and 9 (no such user).
const OWNERS: [i64; 3] = [7, 8, 9];

/// The secret every row's private data carries (with the row id).
fn secret(id: i64) -> String {
    format!("SECRET-KEY-{id:04}")
}

fn rows() -> Vec<(Row, String)> {
    (1..=60i64)
        .map(|id| {
            let k = id as usize;
            let private = format!(
                r#"{{"key":"{}","result_url":"https://r/{id}"}}"#,
                secret(id)
            );
            let row = Row {
                platform: PLATFORMS[k % 4],
                status: STATUSES[(k / 4) % 4],
                action: ACTIONS[(k / 2) % 3],
                channel_id: if k.is_multiple_of(5) {
                    None
                } else {
                    Some((k % 3) as i64)
                },
                quota: if k.is_multiple_of(4) {
                    None
                } else {
                    Some((k % 5) as i64)
                },
                submit_time: if k.is_multiple_of(7) {
                    None
                } else {
                    Some((k as i64 - 20) * 10)
                },
                json_as_text: k.is_multiple_of(2),
                ..Row::of(id, OWNERS[k % 3])
            };
            (row, private)
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Door {
    RestSelf,
    RestAll,
    Graphql,
}

#[derive(Clone, Debug)]
struct Req {
    door: Door,
    /// 0: user 7, 1: user 8, 2: admin 2.
    who: usize,
    platform: Option<&'static str>,
    status: Option<&'static str>,
    action: Option<&'static str>,
    channel: Option<i64>,
    start: Option<i64>,
    end: Option<i64>,
    page: i64,
    size: i64,
    /// GraphQL only: a sort key (`QUOTA` or `SUBMIT_TIME`) and whether it ascends.
    order: Option<(&'static str, bool)>,
}

fn request() -> impl Strategy<Value = Req> {
    let opt_str = |vals: &'static [&'static str]| {
        prop_oneof![Just(None), proptest::sample::select(vals).prop_map(Some)]
    };
    (
        prop_oneof![
            Just(Door::RestSelf),
            Just(Door::RestAll),
            Just(Door::Graphql)
        ],
        0usize..3,
        opt_str(&["suno", "50", "SUNO", "Suno", "x"]),
        opt_str(&["SUCCESS", "FAILURE", "SUCCESS ", "success"]),
        opt_str(&["MUSIC", "generate", "music"]),
        proptest::option::of(0i64..4),
        proptest::option::of(-250i64..450),
        proptest::option::of(-250i64..450),
        1i64..5,
        (
            1i64..25,
            proptest::option::of((
                proptest::sample::select(&["QUOTA", "SUBMIT_TIME"][..]),
                any::<bool>(),
            )),
        ),
    )
        .prop_map(
            |(door, who, platform, status, action, channel, start, end, page, (size, order))| {
                let graphql = matches!(door, Door::Graphql);
                Req {
                    door,
                    who,
                    platform,
                    status,
                    action,
                    channel,
                    // 0 means "no bound" on the REST routes: never generated as a bound.
                    start: start.filter(|v| *v != 0),
                    end: end.filter(|v| *v != 0),
                    page,
                    size,
                    order: order.filter(|_| graphql),
                }
            },
        )
}

/// The ids the model answers, newest first, and the total; `sql_nulls`: new-api's rule (a
/// NULL never matches a filter on it) rather than GraphQL's (NULL compares as 0 or "").
fn model(rows: &[Row], viewer: i64, sees_all: bool, req: &Req, sql_nulls: bool) -> Vec<i64> {
    let str_ok = |col: Option<&str>, want: Option<&str>| match want {
        None => true,
        Some(w) => match col {
            Some(c) => c == w,
            None => !sql_nulls && w.is_empty(),
        },
    };
    let num_ok = |col: Option<i64>, test: &dyn Fn(i64) -> bool| match col {
        Some(c) => test(c),
        None => !sql_nulls && test(0),
    };
    let channel = if sees_all { req.channel } else { None };
    let mut ids: Vec<i64> = rows
        .iter()
        .filter(|r| sees_all || r.user_id == Some(viewer))
        .filter(|r| str_ok(r.platform, req.platform))
        .filter(|r| str_ok(r.status, req.status))
        .filter(|r| str_ok(r.action, req.action))
        .filter(|r| channel.is_none_or(|c| num_ok(r.channel_id, &|v| v == c)))
        .filter(|r| req.start.is_none_or(|s| num_ok(r.submit_time, &|v| v >= s)))
        .filter(|r| req.end.is_none_or(|e| num_ok(r.submit_time, &|v| v <= e)))
        .map(|r| r.id)
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    if let Some((field, asc)) = req.order {
        // The key as the wire shows it (NULL as 0), then id in the same direction.
        let key = |id: i64| {
            let r = rows.iter().find(|r| r.id == id).expect("row");
            match field {
                "QUOTA" => r.quota.unwrap_or(0),
                _ => r.submit_time.unwrap_or(0),
            }
        };
        ids.sort_by(|a, b| {
            let by = (key(*a), *a).cmp(&(key(*b), *b));
            if asc { by } else { by.reverse() }
        });
    }
    ids
}

const TOKENS: [(i64, &str); 3] = [(7, "t7"), (8, "t8"), (2, "troot")];

async fn send(app: &TestApp, req: &Req) -> (u16, String, Value) {
    let (id, token) = TOKENS[req.who];
    let auth = format!("Bearer {token}");
    let uid = id.to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("New-Api-User", uid.as_str()),
    ];
    match req.door {
        Door::RestSelf | Door::RestAll => {
            let mut q = vec![format!("p={}", req.page), format!("page_size={}", req.size)];
            for (k, v) in [
                ("platform", req.platform),
                ("status", req.status),
                ("action", req.action),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", v.replace(' ', "%20")));
                }
            }
            if let Some(c) = req.channel {
                q.push(format!("channel_id={c}"));
            }
            if let Some(s) = req.start {
                q.push(format!("start_timestamp={s}"));
            }
            if let Some(e) = req.end {
                q.push(format!("end_timestamp={e}"));
            }
            let path = match req.door {
                Door::RestSelf => "/api/task/self",
                _ => "/api/task/",
            };
            let a = app
                .get_with(&format!("{path}?{}", q.join("&")), &headers)
                .await;
            (a.status, a.text, a.json)
        }
        Door::Graphql => {
            let mut filter = serde_json::Map::new();
            for (k, v) in [
                ("platform", req.platform),
                ("status", req.status),
                ("action", req.action),
            ] {
                if let Some(v) = v {
                    filter.insert(k.into(), json!({ "eq": v }));
                }
            }
            if req.who == 2
                && let Some(c) = req.channel
            {
                filter.insert("channelId".into(), json!({ "eq": c }));
            }
            let mut time = serde_json::Map::new();
            if let Some(s) = req.start {
                time.insert("gte".into(), json!(s.to_string()));
            }
            if let Some(e) = req.end {
                time.insert("lte".into(), json!(e.to_string()));
            }
            if !time.is_empty() {
                filter.insert("submitTime".into(), Value::Object(time));
            }
            let order = req.order.map_or(json!([]), |(field, asc)| {
                json!([{ "field": field, "direction": if asc { "ASC" } else { "DESC" } }])
            });
            let body = json!({
                "query": "query($f: TaskFilter, $p: PageInput, $o: [TaskOrder!]) { tasks(filter: $f, page: $p, orderBy: $o) { totalCount nodes { id userId taskId platform action status progress resultUrl input originModelName upstreamModelName group quota submitTime startTime finishTime createdAt updatedAt failReason data } } }",
                "variables": { "f": filter, "p": { "offset": { "page": req.page, "pageSize": req.size } }, "o": order },
            });
            let resp = app
                .client
                .post(app.url("/graphql"))
                .header("Authorization", auth.as_str())
                .header("New-Api-User", uid.as_str())
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            (status, text, json)
        }
    }
}

#[test]
fn both_doors_answer_the_task_log_as_the_model_does_and_never_a_secret() {
    let cases = env_cases("TASK_LOG_CASES", 1_000);
    let rt = runtime();
    let generated = rows();
    let app = rt.block_on(async {
        let app = spawn_app().await;
        raw_user(&app, 2, "boss", 100, "troot").await;
        raw_user(&app, 7, "alice", 1, "t7").await;
        raw_user(&app, 8, "bob", 1, "t8").await;
        let stored: Vec<Row> = generated.iter().map(|(r, _)| r.clone()).collect();
        insert(&app, &stored).await;
        for (r, private) in &generated {
            let value = match app.db.backend {
                crate::helpers::Backend::Sqlite if !r.json_as_text => {
                    format!("CAST('{private}' AS BLOB)")
                }
                _ => format!("'{private}'"),
            };
            app.sql(&format!(
                "UPDATE tasks SET private_data = {value} WHERE id = {}",
                r.id
            ))
            .await;
        }
        app
    });
    let stored: Vec<Row> = generated.iter().map(|(r, _)| r.clone()).collect();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/api/task_log_model.regressions",
        ))),
        ..Config::default()
    });
    let result = runner.run(&request(), |req| {
        rt.block_on(async {
            let (status, text, json) = send(&app, &req).await;
            prop_assert!(!text.contains("SECRET-KEY"), "{req:?}: {text}");
            let (viewer, admin) = (TOKENS[req.who].0, req.who == 2);
            let (sees_all, sql_nulls) = match req.door {
                Door::RestSelf => (false, true),
                Door::RestAll => (true, true),
                Door::Graphql => (admin, false),
            };
            if matches!(req.door, Door::RestAll) && !admin {
                // new-api refuses with 200 and its permission message.
                prop_assert_eq!(
                    text.as_str(),
                    r#"{"message":"无权进行此操作，权限不足","success":false}"#
                );
                return Ok(());
            }
            prop_assert_eq!(status, 200, "{:?}: {}", req, text);
            let want = model(&stored, viewer, sees_all, &req, sql_nulls);
            let (items, total) = match req.door {
                Door::Graphql => (
                    json["data"]["tasks"]["nodes"].clone(),
                    json["data"]["tasks"]["totalCount"].clone(),
                ),
                _ => (json["data"]["items"].clone(), json["data"]["total"].clone()),
            };
            let got: Vec<i64> = items
                .as_array()
                .unwrap_or(&Vec::new())
                .iter()
                .map(|i| i["id"].as_i64().unwrap_or(-1))
                .collect();
            let skip = ((req.page - 1) * req.size) as usize;
            let page: Vec<i64> = want
                .iter()
                .skip(skip)
                .take(req.size as usize)
                .copied()
                .collect();
            prop_assert_eq!(&got, &page, "{:?}: {}", req, text);
            prop_assert_eq!(total.as_u64(), Some(want.len() as u64), "{:?}", req);
            Ok(())
        })
    });
    println!("task log model: {cases} generated requests over both doors");
    if let Err(e) = result {
        panic!("{e}");
    }
}
