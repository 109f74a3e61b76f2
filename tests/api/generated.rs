//! Generated requests against the real server:
//!
//! - a scoping property: `SCOPE_CASES` (default 10,000) requests by several users over both
//!   doors (generated filters, lookups of other users' tasks, statistics, cursors taken from
//!   other users' pages, forged cursors, Relay `nodes(ids:)` of any row): no row of another
//!   user is ever answered, and `nodes` answers exactly the caller's own tasks;
//! - fuzzing of what a client controls (query strings, GraphQL documents and variables,
//!   forged cursors, headers): `FUZZ_CASES` (default 3,000) requests, with zero panics, zero 5xx,
//!   and every answer a documented envelope or error code.
//!
//! Both print their case counts, so a CI log shows what ran.

use std::cell::Cell;
use std::collections::HashMap;

use mj_tasks::service::Role;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{Answer, Task, TestApp, TestUser, env_cases, runtime, spawn_app};

/// Three users with twelve varied tasks each; task id → owner id. Each also owns eight rows
/// of the generic task log (see [`task_log_rows`]).
async fn three_users() -> (TestApp, Vec<TestUser>, HashMap<i64, i64>, Vec<String>) {
    let app = spawn_app().await;
    let mut users = Vec::new();
    let mut owner = HashMap::new();
    let mut mj_ids = Vec::new();
    for (n, name) in ["alice", "bob", "carol"].into_iter().enumerate() {
        let u = app.user(name, Role::Common).await;
        for i in 0..12i64 {
            let mj = format!("mj-{}", i % 4);
            let t = Task::of(u.id)
                .mj(&mj)
                .quota(i % 5)
                .channel(i % 3)
                .submitted(1_700_000_000_000 + i * 1000)
                .status(["SUCCESS", "FAILURE", "IN_PROGRESS"][(i % 3) as usize])
                .prompt(["Fox", "ärger", "cat"][n]);
            let id = app.task(t).await;
            owner.insert(id, u.id);
            mj_ids.push(mj);
        }
        users.push(u);
    }
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    crate::task_log::insert(&app, &task_log_rows(&ids)).await;
    (app, users, owner, mj_ids)
}

/// Eight task-log rows per user (row ids 1..), varied platforms, statuses and task ids.
fn task_log_rows(users: &[i64]) -> Vec<crate::task_log::Row> {
    let mut rows = Vec::new();
    for (n, u) in users.iter().enumerate() {
        for i in 0..8i64 {
            let k = (n as i64) * 8 + i;
            rows.push(crate::task_log::Row {
                task_id: Some(["task-0", "task-1", "task-2", "task-3"][(i % 4) as usize]),
                platform: Some(["suno", "50", "55"][(i % 3) as usize]),
                status: Some(["SUCCESS", "FAILURE", "IN_PROGRESS"][(i % 3) as usize]),
                progress: Some(if i % 3 == 2 { "50%" } else { "100%" }),
                quota: Some(i % 5),
                private_data: Some(r#"{"key":"GEN-SECRET"}"#),
                ..crate::task_log::Row::of(k + 1, *u)
            });
        }
    }
    rows
}

/// The owner of each task-log row [`task_log_rows`] made.
fn task_log_owners(users: &[TestUser]) -> HashMap<i64, i64> {
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    task_log_rows(&ids)
        .into_iter()
        .map(|r| (r.id, r.user_id.unwrap_or_default()))
        .collect()
}

/// One generated request by user `who` over either door.
#[derive(Clone, Debug)]
enum Req {
    Rest {
        who: usize,
        query: String,
    },
    List {
        who: usize,
        filter: Value,
        order: Option<(&'static str, bool)>,
        /// Index into the collected cursors (other users' and forged ones).
        cursor: Option<usize>,
        before: bool,
    },
    Lookup {
        who: usize,
        id: Option<i64>,
        mj_id: Option<String>,
    },
    Stats {
        who: usize,
        filter: Value,
    },
    /// Relay's `nodes(ids:)`, by global ids of any row (or of none).
    Nodes {
        who: usize,
        ids: Vec<i64>,
    },
    /// `/api/task/self` (the generic log).
    TaskRest {
        who: usize,
        query: String,
    },
    /// GraphQL `tasks`, possibly from a cursor of another user's page.
    TaskList {
        who: usize,
        filter: Value,
        cursor: Option<usize>,
    },
    /// GraphQL `task(id:)` / `task(taskId:)`.
    TaskLookup {
        who: usize,
        id: Option<i64>,
        task_id: Option<String>,
    },
    /// `nodes(ids:)` with ids of both logs: `(is a task-log id, row id)`.
    MixedNodes {
        who: usize,
        ids: Vec<(bool, i64)>,
    },
    TaskStats {
        who: usize,
        filter: Value,
    },
}

fn task_filter_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        (0i64..6).prop_map(|q| json!({"quota": {"gte": q}})),
        "task-[0-4]".prop_map(|t| json!({"taskId": {"eq": t}})),
        proptest::sample::select(&["suno", "50", "x"][..])
            .prop_map(|p| json!({"platform": {"eq": p}})),
        proptest::sample::select(&["SUCCESS", "FAILURE", "x"][..])
            .prop_map(|s| json!({"status": {"ne": s}})),
        any::<bool>().prop_map(|b| json!({"finished": b})),
        Just(json!({})),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|l| json!({"or": l})),
            inner.prop_map(|f| json!({"not": f})),
        ]
    })
    .boxed()
}

fn task_request(task_cursors: usize) -> BoxedStrategy<Req> {
    let who = 0usize..3;
    let rest = (
        proptest::option::of(proptest::sample::select(&["suno", "50", "55", "SUNO"][..])),
        proptest::option::of("task-[0-4]"),
        proptest::option::of(-2i64..5),
        proptest::option::of(-1i64..30),
    )
        .prop_map(|(platform, task, p, size)| {
            // /self never reads channel_id, whatever its value.
            let mut q = vec!["channel_id=x".to_owned()];
            if let Some(v) = platform {
                q.push(format!("platform={v}"));
            }
            if let Some(v) = task {
                q.push(format!("task_id={v}"));
            }
            if let Some(v) = p {
                q.push(format!("p={v}"));
            }
            if let Some(v) = size {
                q.push(format!("page_size={v}"));
            }
            q.join("&")
        });
    prop_oneof![
        (who.clone(), rest).prop_map(|(who, query)| Req::TaskRest { who, query }),
        (
            who.clone(),
            task_filter_value(),
            proptest::option::of(0..task_cursors.max(1))
        )
            .prop_map(|(who, filter, cursor)| Req::TaskList {
                who,
                filter,
                cursor
            }),
        (
            who.clone(),
            proptest::option::of(0i64..30),
            proptest::option::of("task-[0-4]")
        )
            .prop_map(|(who, id, task_id)| Req::TaskLookup { who, id, task_id }),
        (
            who.clone(),
            proptest::collection::vec((any::<bool>(), 0i64..30), 0..6)
        )
            .prop_map(|(who, ids)| Req::MixedNodes { who, ids }),
        (who, task_filter_value()).prop_map(|(who, filter)| Req::TaskStats { who, filter }),
    ]
    .boxed()
}

fn small_filter() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        (0i64..6).prop_map(|q| json!({"quota": {"gte": q}})),
        "mj-[0-4]".prop_map(|m| json!({"mjId": {"eq": m}})),
        proptest::sample::select(&["SUCCESS", "FAILURE", "x"][..])
            .prop_map(|s| json!({"status": {"ne": s}})),
        proptest::sample::select(&["fox", "ÄR", "c"][..])
            .prop_map(|p| json!({"prompt": {"contains": p}})),
        any::<bool>().prop_map(|b| json!({"finished": b})),
        Just(json!({})),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|l| json!({"or": l})),
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|l| json!({"and": l})),
            inner.prop_map(|f| json!({"not": f})),
        ]
    })
    .boxed()
}

fn request(max_id: i64, cursors: usize) -> impl Strategy<Value = Req> {
    let who = 0usize..3;
    let rest_query = (
        proptest::option::of("mj-[0-4]"),
        proptest::option::of(-2i64..5),
        proptest::option::of(0i64..30),
        proptest::option::of(1_699_999_999_000i64..1_700_000_020_000),
    )
        .prop_map(|(mj, p, size, start)| {
            let mut q = Vec::new();
            if let Some(m) = mj {
                q.push(format!("mj_id={m}"));
            }
            if let Some(p) = p {
                q.push(format!("p={p}"));
            }
            if let Some(s) = size {
                q.push(format!("page_size={s}"));
            }
            if let Some(t) = start {
                q.push(format!("start_timestamp={t}"));
            }
            // /self ignores channel_id, whatever its value.
            q.push("channel_id=1".into());
            q.join("&")
        });
    let order = proptest::option::of((
        proptest::sample::select(&["ID", "QUOTA", "SUBMIT_TIME"][..]),
        any::<bool>(),
    ));
    prop_oneof![
        (who.clone(), rest_query).prop_map(|(who, query)| Req::Rest { who, query }),
        (
            who.clone(),
            small_filter(),
            order,
            proptest::option::of(0..cursors.max(1)),
            any::<bool>()
        )
            .prop_map(|(who, filter, order, cursor, before)| Req::List {
                who,
                filter,
                order,
                cursor,
                before,
            }),
        (
            who.clone(),
            proptest::option::of(0..max_id + 2),
            proptest::option::of("mj-[0-4]")
        )
            .prop_map(|(who, id, mj_id)| Req::Lookup { who, id, mj_id }),
        (who.clone(), small_filter()).prop_map(|(who, filter)| Req::Stats { who, filter }),
        (who, proptest::collection::vec(0..max_id + 2, 0..6))
            .prop_map(|(who, ids)| Req::Nodes { who, ids }),
    ]
}

/// Cursors a user could get hold of: from every user's pages (in several orders), and
/// forged ones carrying the real fingerprint with extreme key values.
async fn collect_cursors(app: &TestApp, users: &[TestUser]) -> Vec<String> {
    let mut out = Vec::new();
    for u in users {
        for order in ["[]", "[{field: QUOTA, direction: ASC}]"] {
            let a = app
                .gql(
                    u,
                    &format!(
                        "{{ midjourneyTasks(orderBy: {order}, page: {{cursor: {{first: 5}}}}) {{ edges {{ cursor }} }} }}"
                    ),
                )
                .await;
            for e in a.json["data"]["midjourneyTasks"]["edges"]
                .as_array()
                .unwrap()
            {
                out.push(e["cursor"].as_str().unwrap().to_owned());
            }
        }
    }
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let real = String::from_utf8(
        (0..out[0].len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&out[0][i..i + 2], 16).unwrap())
            .collect(),
    )
    .unwrap();
    let fp: Value = serde_json::from_str(&real).unwrap();
    let fp = fp["f"].as_str().unwrap();
    for k in [
        json!([i64::MAX]),
        json!([i64::MIN]),
        json!([0]),
        json!([1, 2, 3]),
        json!(["x"]),
    ] {
        out.push(hex(&json!({"f": fp, "k": k}).to_string()));
    }
    out.push("zz".into());
    out.push(String::new());
    out
}

/// Ids a GraphQL or REST answer returned anywhere in its data.
fn answered_ids(a: &Answer) -> Vec<i64> {
    let mut ids = Vec::new();
    let data = &a.json["data"];
    for list in [&data["items"], &data["midjourneyTasks"]["edges"]] {
        for item in list.as_array().into_iter().flatten() {
            let v = if item.get("node").is_some() {
                &item["node"]["id"]
            } else {
                &item["id"]
            };
            if let Some(id) = v.as_i64() {
                ids.push(id);
            }
        }
    }
    if let Some(id) = data["midjourneyTask"]["id"].as_i64() {
        ids.push(id);
    }
    for node in data["nodes"].as_array().into_iter().flatten() {
        if let Some(id) = node["id"].as_i64() {
            ids.push(id);
        }
    }
    ids
}

/// A global id made the way `graphql-relay` makes them.
fn global_id(id: i64) -> String {
    typed_global_id("MidjourneyTask", id)
}

fn typed_global_id(type_name: &str, id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{type_name}:{id}"))
}

/// Task-log row ids a task request's answer returned.
fn answered_task_ids(a: &Answer) -> Vec<i64> {
    let data = &a.json["data"];
    let mut ids = Vec::new();
    for list in [&data["items"], &data["tasks"]["nodes"]] {
        for item in list.as_array().into_iter().flatten() {
            if let Some(id) = item["id"].as_i64() {
                ids.push(id);
            }
        }
    }
    if let Some(id) = data["task"]["id"].as_i64() {
        ids.push(id);
    }
    for node in data["nodes"].as_array().into_iter().flatten() {
        if node["__typename"] == "Task"
            && let Some(id) = node["id"].as_i64()
        {
            ids.push(id);
        }
    }
    ids
}

/// Cursors of every user's task-log pages, and a forged one.
async fn collect_task_cursors(app: &TestApp, users: &[TestUser]) -> Vec<String> {
    let mut out = Vec::new();
    for u in users {
        let a = app
            .gql(
                u,
                "{ tasks(page: {cursor: {first: 4}}) { edges { cursor } } }",
            )
            .await;
        for e in a.json["data"]["tasks"]["edges"].as_array().unwrap() {
            out.push(e["cursor"].as_str().unwrap().to_owned());
        }
    }
    out.push("7b7d".into());
    out
}

async fn send(app: &TestApp, users: &[TestUser], cursors: &[String], req: &Req) -> (usize, Answer) {
    match req {
        Req::Rest { who, query } => (
            *who,
            app.get_as(&users[*who], &format!("/api/mj/self?{query}"))
                .await,
        ),
        Req::List {
            who,
            filter,
            order,
            cursor,
            before,
        } => {
            let order = order.map_or(
                json!([]),
                |(f, asc)| json!([{"field": f, "direction": if asc { "ASC" } else { "DESC" }}]),
            );
            let page = match cursor {
                Some(i) if *before => json!({"cursor": {"last": 5, "before": cursors[*i]}}),
                Some(i) => json!({"cursor": {"first": 5, "after": cursors[*i]}}),
                None => json!({"offset": {"page": 1, "pageSize": 50}}),
            };
            let q = "query($f: MidjourneyTaskFilter, $o: [MidjourneyTaskOrder!], $p: PageInput) { midjourneyTasks(filter: $f, orderBy: $o, page: $p) { edges { node { id } } } }";
            (
                *who,
                app.gql_vars(
                    Some(&users[*who]),
                    q,
                    json!({"f": filter, "o": order, "p": page}),
                )
                .await,
            )
        }
        Req::Lookup { who, id, mj_id } => {
            let q = "query($id: Int, $m: String) { midjourneyTask(id: $id, mjId: $m) { id } }";
            (
                *who,
                app.gql_vars(Some(&users[*who]), q, json!({"id": id, "m": mj_id}))
                    .await,
            )
        }
        Req::Stats { who, filter } => {
            let q = "query($f: MidjourneyTaskFilter) { midjourneyTaskStats(filter: $f) { count byStatus { count } } }";
            (
                *who,
                app.gql_vars(Some(&users[*who]), q, json!({"f": filter}))
                    .await,
            )
        }
        Req::Nodes { who, ids } => {
            let q = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on MidjourneyTask { id } } }";
            let ids: Vec<String> = ids.iter().map(|i| global_id(*i)).collect();
            (
                *who,
                app.gql_vars(Some(&users[*who]), q, json!({"ids": ids}))
                    .await,
            )
        }
        Req::TaskRest { who, query } => (
            *who,
            app.get_as(&users[*who], &format!("/api/task/self?{query}"))
                .await,
        ),
        Req::TaskList {
            who,
            filter,
            cursor,
        } => {
            let page = match cursor {
                Some(i) => json!({"cursor": {"first": 5, "after": cursors[*i]}}),
                None => json!({"offset": {"page": 1, "pageSize": 50}}),
            };
            let q = "query($f: TaskFilter, $p: PageInput) { tasks(filter: $f, page: $p) { nodes { id } } }";
            (
                *who,
                app.gql_vars(Some(&users[*who]), q, json!({"f": filter, "p": page}))
                    .await,
            )
        }
        Req::TaskLookup { who, id, task_id } => {
            let q = "query($id: Int, $t: String) { task(id: $id, taskId: $t) { id } }";
            (
                *who,
                app.gql_vars(Some(&users[*who]), q, json!({"id": id, "t": task_id}))
                    .await,
            )
        }
        Req::MixedNodes { who, ids } => {
            let q = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename ... on MidjourneyTask { id } ... on Task { id } } }";
            let ids: Vec<String> = ids
                .iter()
                .map(|(task, i)| typed_global_id(if *task { "Task" } else { "MidjourneyTask" }, *i))
                .collect();
            (
                *who,
                app.gql_vars(Some(&users[*who]), q, json!({"ids": ids}))
                    .await,
            )
        }
        Req::TaskStats { who, filter } => {
            let q =
                "query($f: TaskFilter) { taskStats(filter: $f) { count byPlatform { count } } }";
            (
                *who,
                app.gql_vars(Some(&users[*who]), q, json!({"f": filter}))
                    .await,
            )
        }
    }
}

#[test]
fn no_generated_request_ever_answers_another_users_rows() {
    let cases = env_cases("SCOPE_CASES", 10_000);
    let rt = runtime();
    let (app, users, owner, _) = rt.block_on(three_users());
    let task_owner = task_log_owners(&users);
    let mj_cursors = rt.block_on(collect_cursors(&app, &users));
    let task_cursors = rt.block_on(collect_task_cursors(&app, &users));
    let max_id = owner.keys().copied().max().unwrap_or(0);
    let own_count: HashMap<i64, usize> = users
        .iter()
        .map(|u| (u.id, owner.values().filter(|o| **o == u.id).count()))
        .collect();
    let own_tasks: HashMap<i64, usize> = users
        .iter()
        .map(|u| (u.id, task_owner.values().filter(|o| **o == u.id).count()))
        .collect();
    let strategy = prop_oneof![
        3 => request(max_id, mj_cursors.len()),
        2 => task_request(task_cursors.len()),
    ];
    let rows_seen = Cell::new(0u64);
    let foreign = Cell::new(0u64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/api/scope.regressions",
        ))),
        ..Config::default()
    });
    let result = runner.run(&strategy, |req| {
        rt.block_on(async {
            let is_task = matches!(
                req,
                Req::TaskRest { .. }
                    | Req::TaskList { .. }
                    | Req::TaskLookup { .. }
                    | Req::MixedNodes { .. }
                    | Req::TaskStats { .. }
            );
            let cursors = if is_task { &task_cursors } else { &mj_cursors };
            let (who, a) = send(&app, &users, cursors, &req).await;
            let me = users[who].id;
            prop_assert!(a.status < 500, "{:?}: {} {}", req, a.status, a.text);
            prop_assert!(!a.text.contains("GEN-SECRET"), "{:?}: {}", req, a.text);
            let task_ids = if is_task {
                answered_task_ids(&a)
            } else {
                Vec::new()
            };
            for id in task_ids {
                rows_seen.set(rows_seen.get() + 1);
                if task_owner.get(&id) != Some(&me) {
                    foreign.set(foreign.get() + 1);
                    return Err(TestCaseError::fail(format!(
                        "user {me} got task-log row {id} of {:?}: {req:?} → {}",
                        task_owner.get(&id),
                        a.text
                    )));
                }
            }
            if let Req::TaskStats { .. } = req
                && let Some(n) = a.json["data"]["taskStats"]["count"].as_u64()
            {
                prop_assert!(n as usize <= own_tasks[&me], "{:?}: {}", req, a.text);
            }
            if let Req::MixedNodes { ids, .. } = &req {
                let want: Vec<Value> = ids
                    .iter()
                    .map(|(task, i)| {
                        let (map, name) = if *task {
                            (&task_owner, "Task")
                        } else {
                            (&owner, "MidjourneyTask")
                        };
                        match map.get(i) {
                            Some(o) if *o == me => json!({"__typename": name, "id": i}),
                            _ => Value::Null,
                        }
                    })
                    .collect();
                prop_assert_eq!(
                    &a.json["data"]["nodes"],
                    &json!(want),
                    "{:?}: {}",
                    req,
                    a.text
                );
            }
            if is_task {
                return Ok(());
            }
            for id in answered_ids(&a) {
                rows_seen.set(rows_seen.get() + 1);
                if owner.get(&id) != Some(&me) {
                    foreign.set(foreign.get() + 1);
                    return Err(TestCaseError::fail(format!(
                        "user {me} got task {id} of {:?}: {req:?} → {}",
                        owner.get(&id),
                        a.text
                    )));
                }
            }
            if let Req::Stats { .. } = req
                && let Some(n) = a.json["data"]["midjourneyTaskStats"]["count"].as_u64()
            {
                prop_assert!(n as usize <= own_count[&me], "{:?}: {}", req, a.text);
            }
            // nodes(ids:) answers exactly the model: each of the caller's own tasks, in the
            // order asked, and null for everything else.
            if let Req::Nodes { ids, .. } = &req {
                let want: Vec<Value> = ids
                    .iter()
                    .map(|i| match owner.get(i) {
                        Some(o) if *o == me => json!({"id": i}),
                        _ => Value::Null,
                    })
                    .collect();
                prop_assert_eq!(
                    &a.json["data"]["nodes"],
                    &json!(want),
                    "{:?}: {}",
                    req,
                    a.text
                );
            }
            Ok(())
        })
    });
    println!(
        "scoping property: {cases} generated requests by 3 users over both logs, {} rows answered, {} of another user",
        rows_seen.get(),
        foreign.get()
    );
    drop(app);
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        rows_seen.get() > u64::from(cases),
        "the requests answered rows"
    );
}

/// Codes a GraphQL error may carry (README "Errors").
const GRAPHQL_CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "BAD_FILTER",
    "PAGE_TOO_LARGE",
    "OFFSET_TOO_DEEP",
    "CURSOR_MISMATCH",
    "UNAVAILABLE",
    "INTERNAL",
    "QUERY_TOO_COMPLEX",
    "BATCH_TOO_LARGE",
    "BAD_REQUEST",
    "GRAPHQL_VALIDATION_FAILED",
    "METHOD_NOT_ALLOWED",
];

/// Pieces of GraphQL documents, valid and not, for the fuzzer to string together.
const GQL_TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    "...",
    "query",
    "mutation",
    "subscription",
    "fragment",
    "on",
    "Query",
    "midjourneyTasks",
    "midjourneyTask",
    "midjourneyTaskStats",
    "tasks",
    "task",
    "taskStats",
    "taskId",
    "platform",
    "byPlatform",
    "data",
    "viewer",
    "nodeId",
    "nodes",
    "edges",
    "node",
    "id",
    "mjId",
    "totalCount",
    "pageInfo",
    "endCursor",
    "filter",
    "page",
    "offset",
    "cursor",
    "first",
    "after",
    "pageSize",
    "orderBy",
    "field",
    "QUOTA",
    "not",
    "or",
    "and",
    "quota",
    "gt",
    "in",
    "\"x\"",
    "1",
    "-1",
    "99999999999",
    "$v",
    "@skip",
    "@include(if: true)",
    "__schema",
    "__typename",
    "byDay",
    "days",
    "F",
    "...F",
    "#",
    "\"\"\"",
    "true",
    "null",
    ",",
    "\u{0}",
    "é",
    "\\u0000",
];

#[derive(Clone, Debug)]
enum Fuzz {
    Rest {
        path: &'static str,
        query: String,
        headers: Vec<(&'static str, String)>,
    },
    Gql {
        body: String,
        content_type: &'static str,
        accept: &'static str,
        auth: bool,
    },
    GqlGet {
        query: String,
    },
}

fn header_value() -> BoxedStrategy<String> {
    prop_oneof![
        "[ -~]{0,40}",
        "Bearer [A-Za-z0-9]{0,40}",
        "[0-9]{1,25}",
        Just("-1".to_owned()),
        Just("Bearer ".to_owned()),
        "\\PC{0,8}".prop_map(|s| s.chars().filter(|c| !c.is_control()).collect()),
    ]
    .boxed()
}

fn fuzz_case(users: Vec<(String, String)>) -> impl Strategy<Value = Fuzz> {
    let keys = proptest::sample::select(
        &[
            "p",
            "page_size",
            "ps",
            "size",
            "mj_id",
            "channel_id",
            "start_timestamp",
            "end_timestamp",
            "platform",
            "task_id",
            "status",
            "action",
            "x",
            "",
        ][..],
    );
    let value = prop_oneof![
        "[ -~]{0,20}",
        "-?[0-9]{1,25}",
        "%[0-9A-Fa-f]{2}",
        Just("%".to_owned()),
        Just("%ZZ".to_owned()),
        Just("1e3".to_owned()),
    ];
    let query = proptest::collection::vec((keys, value), 0..5).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", v.replace([' ', '#', '&'], "+")))
            .collect::<Vec<_>>()
            .join("&")
    });
    let user = proptest::sample::select(users);
    let headers = (
        proptest::option::of(prop_oneof![
            user.clone().prop_map(|(t, _)| format!("Bearer {t}")),
            header_value()
        ]),
        proptest::option::of(prop_oneof![user.prop_map(|(_, id)| id), header_value()]),
        proptest::option::of(header_value()),
    )
        .prop_map(|(auth, id, lang)| {
            let mut h = Vec::new();
            if let Some(a) = auth {
                h.push(("Authorization", a));
            }
            if let Some(i) = id {
                h.push(("New-Api-User", i));
            }
            if let Some(l) = lang {
                h.push(("Accept-Language", l));
            }
            h
        });
    let doc = proptest::collection::vec(proptest::sample::select(GQL_TOKENS), 0..40)
        .prop_map(|t| t.join(" "));
    let variables = prop_oneof![
        Just(Value::Null),
        Just(json!({"v": 1})),
        Just(json!({"f": {"not": {"quota": {"gt": "x"}}}})),
        Just(json!([])),
        Just(json!("s")),
    ];
    let body = prop_oneof![
        (doc.clone(), variables).prop_map(|(q, v)| json!({"query": q, "variables": v}).to_string()),
        doc.clone()
            .prop_map(|q| json!([{"query": q}, {"query": "{ viewer { id } }"}]).to_string()),
        "[ -~]{0,60}",
        Just(String::new()),
        Just("{\"query\": 1}".to_owned()),
        // Cursors as a client could forge them: hex of anything, or not hex at all.
        prop_oneof!["[0-9a-f]{0,120}", "[ -~]{0,40}"].prop_map(|c| json!({
            "query": "query($c: String) { midjourneyTasks(page: {cursor: {first: 3, after: $c}}) { nodes { id } } }",
            "variables": {"c": c}
        })
        .to_string()),
    ];
    prop_oneof![
        (
            proptest::sample::select(
                &[
                    "/api/mj/self",
                    "/api/mj/",
                    "/api/mj",
                    "/api/task/self",
                    "/api/task/",
                    "/api/task",
                    "/healthz"
                ][..]
            ),
            query.clone(),
            headers
        )
            .prop_map(|(path, query, headers)| Fuzz::Rest {
                path,
                query,
                headers
            }),
        (
            body,
            proptest::sample::select(
                &["application/json", "text/plain", "application/graphql"][..]
            ),
            proptest::sample::select(
                &[
                    "application/json",
                    "application/graphql-response+json",
                    "*/*",
                    "text/html"
                ][..]
            ),
            any::<bool>()
        )
            .prop_map(|(body, content_type, accept, auth)| Fuzz::Gql {
                body,
                content_type,
                accept,
                auth
            }),
        doc.prop_map(|q| Fuzz::GqlGet { query: q }),
    ]
}

/// Checks an answer is documented: never 5xx (the database is up), JSON, and a legacy
/// envelope (REST) or a GraphQL response whose errors carry known codes.
fn documented(case: &Fuzz, status: u16, body: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{:?}: {} {}", case, status, body);
    let json: Value = serde_json::from_str(body)
        .map_err(|_| TestCaseError::fail(format!("{case:?}: not JSON: {status} {body}")))?;
    match case {
        Fuzz::Rest { path, .. } if *path == "/healthz" => {
            prop_assert_eq!(&json["status"], "ok");
        }
        Fuzz::Rest { .. } => {
            prop_assert!(json["success"].is_boolean(), "{:?}: {}", case, body);
            prop_assert!(json["message"].is_string(), "{:?}: {}", case, body);
            if json["success"] == true {
                prop_assert!(json["data"]["items"].is_array(), "{:?}: {}", case, body);
            }
        }
        _ => {
            let responses = match &json {
                Value::Array(list) => list.clone(),
                one => vec![one.clone()],
            };
            for r in responses {
                prop_assert!(
                    r.get("data").is_some() || r.get("errors").is_some(),
                    "{:?}: {}",
                    case,
                    body
                );
                for e in r["errors"].as_array().into_iter().flatten() {
                    let code = e["extensions"]["code"].as_str().unwrap_or("<none>");
                    prop_assert!(
                        GRAPHQL_CODES.contains(&code),
                        "{:?}: code {} in {}",
                        case,
                        code,
                        body
                    );
                    let msg = e["message"].as_str().unwrap_or("").to_lowercase();
                    for leak in [
                        "select ",
                        "sqlx",
                        "syntax error at",
                        "sqlite",
                        "mysql",
                        "postgres",
                    ] {
                        prop_assert!(!msg.contains(leak), "{:?}: leaks {}: {}", case, leak, body);
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn fuzzed_client_input_never_panics_nor_answers_5xx() {
    let cases = env_cases("FUZZ_CASES", 3_000);
    let rt = runtime();
    let (app, users) = rt.block_on(async {
        let app = spawn_app().await;
        let admin = app.user("admin", Role::Admin).await;
        let u = app.user("alice", Role::Common).await;
        for i in 0..5 {
            app.task(Task::of(u.id).quota(i)).await;
        }
        crate::task_log::insert(&app, &task_log_rows(&[u.id])).await;
        (app, vec![admin, u])
    });
    let creds: Vec<(String, String)> = users
        .iter()
        .map(|u| (u.token.clone(), u.id.to_string()))
        .collect();
    let statuses: std::cell::RefCell<HashMap<u16, u64>> = Default::default();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/api/fuzz.regressions",
        ))),
        ..Config::default()
    });
    let result = runner.run(&fuzz_case(creds), |case| {
        rt.block_on(async {
            let resp = match &case {
                Fuzz::Rest {
                    path,
                    query,
                    headers,
                } => {
                    let mut req = app.client.get(app.url(&format!("{path}?{query}")));
                    for (k, v) in headers {
                        req = req.header(*k, v.as_str());
                    }
                    req.send().await
                }
                Fuzz::Gql {
                    body,
                    content_type,
                    accept,
                    auth,
                } => {
                    let mut req = app
                        .client
                        .post(app.url("/graphql"))
                        .header("Content-Type", *content_type)
                        .header("Accept", *accept)
                        .body(body.clone());
                    if *auth {
                        req = req
                            .header("Authorization", format!("Bearer {}", users[1].token))
                            .header("New-Api-User", users[1].id.to_string());
                    }
                    req.send().await
                }
                Fuzz::GqlGet { query } => {
                    app.client
                        .get(app.url("/graphql"))
                        .query(&[("query", query.as_str())])
                        .header("Accept", "application/json")
                        .send()
                        .await
                }
            };
            let resp =
                resp.map_err(|e| TestCaseError::fail(format!("{case:?}: no answer: {e}")))?;
            let status = resp.status().as_u16();
            *statuses.borrow_mut().entry(status).or_default() += 1;
            let body = resp.text().await.unwrap_or_default();
            documented(&case, status, &body)
        })
    });
    let mut seen: Vec<_> = statuses.borrow().iter().map(|(s, n)| (*s, *n)).collect();
    seen.sort_unstable();
    let five = seen
        .iter()
        .filter(|(s, _)| *s >= 500)
        .map(|(_, n)| n)
        .sum::<u64>();
    println!("fuzzing: {cases} generated requests; statuses {seen:?}; 5xx: {five}");
    drop(app);
    if let Err(e) = result {
        panic!("{e}");
    }
}
