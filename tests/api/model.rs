//! Model-based test: random data sets (NULLs, non-ASCII text, case and trailing-space
//! variants, equal sort keys, second and millisecond timestamps) and random filters, orders
//! and pages, answered by the real server over GraphQL and by a small in-memory model of
//! the documented semantics; every answer must be equal, rows, order and totals alike.
//! Runs on the backend `TEST_DATABASE_URL` names (SQLite by default). `MODEL_CASES` sets
//! the number of data sets (default 64, four queries and a cursor walk each). Shrunk
//! failures are kept in `tests/api/model.regressions` and replayed first.

use std::cell::Cell;
use std::cmp::Ordering;

use entity::midjourney;
use mj_tasks::service::Role;
use mj_tasks::service::fold::matches as folded_match;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::{Map, Value, json};

use crate::helpers::{TestApp, TestUser, env_cases, runtime, spawn_app};

const MJ_IDS: &[&str] = &["abc", "ABC", "abc ", "ábc", "", "a%c", "a_c"];
const STATUSES: &[&str] = &["SUCCESS", "success", "FAILURE", "", "SUCCESS "];
const PROGRESS: &[&str] = &["100%", "50%", "0%", "", "100% "];
const IMAGES: &[&str] = &["", "https://i/1.png", " "];
const TEXTS: &[&str] = &[
    "fox",
    "Fox",
    "FOX%",
    "a_b",
    "Ärger",
    "ärger",
    "ÄRGER im Büro",
    "ΟΔΟΣ",
    "οδος",
    "日本",
    "x\\y",
    "",
    " fox",
    "fox ",
    "Страх",
];
const PATTERNS: &[&str] = &[
    "fox",
    "FO",
    "%",
    "_",
    "ärg",
    "ÄRG",
    "büro",
    "οδ",
    "Σ",
    "日",
    "\\",
    " ",
    "x",
    "страх",
    "b",
];
const TIMES: &[i64] = &[0, 5, 1_700_000_000, 1_700_000_000_000, 1_700_000_000_001];

/// One stored task; `None` is SQL NULL.
#[derive(Clone, Debug)]
struct Row {
    owner: usize,
    mj_id: Option<&'static str>,
    status: Option<&'static str>,
    progress: Option<&'static str>,
    image_url: Option<&'static str>,
    prompt: Option<&'static str>,
    quota: Option<i64>,
    submit_time: Option<i64>,
    channel_id: Option<i64>,
}

fn pick(pool: &'static [&'static str]) -> proptest::sample::Select<&'static str> {
    proptest::sample::select(pool)
}

fn nullable<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![1 => Just(None), 4 => s.prop_map(Some)]
}

fn row() -> impl Strategy<Value = Row> {
    (
        (0usize..2, nullable(pick(MJ_IDS)), nullable(pick(STATUSES))),
        (
            nullable(pick(PROGRESS)),
            nullable(pick(IMAGES)),
            nullable(pick(TEXTS)),
        ),
        (
            nullable(-3i64..6),
            nullable(proptest::sample::select(TIMES)),
            nullable(1i64..4),
        ),
    )
        .prop_map(
            |(
                (owner, mj_id, status),
                (progress, image_url, prompt),
                (quota, submit_time, channel_id),
            )| Row {
                owner,
                mj_id,
                status,
                progress,
                image_url,
                prompt,
                quota,
                submit_time,
                channel_id,
            },
        )
}

fn int_filter(values: impl Strategy<Value = i64> + Clone + 'static) -> BoxedStrategy<Value> {
    let list = proptest::collection::vec(values.clone(), 0..3);
    prop_oneof![
        values.clone().prop_map(|v| json!({"eq": v})),
        values.clone().prop_map(|v| json!({"ne": v})),
        values.clone().prop_map(|v| json!({"gt": v})),
        values.clone().prop_map(|v| json!({"gte": v})),
        values.clone().prop_map(|v| json!({"lt": v})),
        (values.clone(), values).prop_map(|(a, b)| json!({"gte": a, "lte": b})),
        list.clone().prop_map(|l| json!({"in": l})),
        list.prop_map(|l| json!({"notIn": l})),
    ]
    .boxed()
}

fn string_filter(pool: &'static [&'static str]) -> BoxedStrategy<Value> {
    let list = proptest::collection::vec(pick(pool), 0..3);
    prop_oneof![
        pick(pool).prop_map(|v| json!({"eq": v})),
        pick(pool).prop_map(|v| json!({"ne": v})),
        list.clone().prop_map(|l| json!({"in": l})),
        list.prop_map(|l| json!({"notIn": l})),
    ]
    .boxed()
}

fn text_filter() -> BoxedStrategy<Value> {
    prop_oneof![
        pick(PATTERNS).prop_map(|p| json!({"contains": p})),
        pick(PATTERNS).prop_map(|p| json!({"startsWith": p})),
        any::<bool>().prop_map(|b| json!({"isEmpty": b})),
    ]
    .boxed()
}

/// One field's condition (`admin`: the admin-only fields too).
fn leaf(admin: bool) -> BoxedStrategy<(String, Value)> {
    let times = proptest::sample::select(TIMES);
    let mut options = vec![
        int_filter(-3i64..6)
            .prop_map(|f| ("quota".to_owned(), f))
            .boxed(),
        prop_oneof![
            times.clone().prop_map(|v| json!({"eq": v})),
            times.clone().prop_map(|v| json!({"gt": v})),
            times.clone().prop_map(|v| json!({"lte": v})),
        ]
        .prop_map(|f| ("submitTime".to_owned(), f))
        .boxed(),
        string_filter(MJ_IDS)
            .prop_map(|f| ("mjId".to_owned(), f))
            .boxed(),
        string_filter(STATUSES)
            .prop_map(|f| ("status".to_owned(), f))
            .boxed(),
        text_filter().prop_map(|f| ("prompt".to_owned(), f)).boxed(),
        any::<bool>()
            .prop_map(|b| ("finished".to_owned(), json!(b)))
            .boxed(),
        any::<bool>()
            .prop_map(|b| ("hasImage".to_owned(), json!(b)))
            .boxed(),
    ];
    if admin {
        options.push(
            int_filter(0i64..4)
                .prop_map(|f| ("channelId".to_owned(), f))
                .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

/// A filter object nested at most `3 - level` levels deeper (the service allows 3).
fn filter(admin: bool, level: usize) -> BoxedStrategy<Value> {
    let fields = proptest::collection::vec(leaf(admin), 0..3).prop_map(|leaves| {
        let mut m = Map::new();
        for (k, v) in leaves {
            m.insert(k, v);
        }
        Value::Object(m)
    });
    if level >= 3 {
        return fields.boxed();
    }
    let sub = filter(admin, level + 1);
    prop_oneof![
        3 => fields,
        1 => proptest::collection::vec(sub.clone(), 0..3).prop_map(|l| json!({"and": l})),
        1 => proptest::collection::vec(sub.clone(), 0..3).prop_map(|l| json!({"or": l})),
        1 => sub.prop_map(|f| json!({"not": f})),
    ]
    .boxed()
}

/// A query: who asks (`true`: the admin; else the first owner), filter, order, page.
#[derive(Clone, Debug)]
struct Query {
    admin: bool,
    filter: Value,
    order: Vec<(&'static str, bool)>,
    page: (i64, i64),
}

fn query() -> impl Strategy<Value = Query> {
    let fields = proptest::sample::select(&["ID", "SUBMIT_TIME", "QUOTA", "FINISH_TIME"][..]);
    let order = proptest::collection::vec((fields, any::<bool>()), 0..3).prop_map(|keys| {
        let mut out: Vec<(&'static str, bool)> = Vec::new();
        for (f, asc) in keys {
            if !out.iter().any(|(g, _)| *g == f) {
                out.push((f, asc));
            }
        }
        out
    });
    any::<bool>()
        .prop_flat_map(move |admin| {
            (
                Just(admin),
                filter(admin, 1),
                order.clone(),
                (1i64..4, 1i64..8),
            )
        })
        .prop_map(|(admin, filter, order, page)| Query {
            admin,
            filter,
            order,
            page,
        })
}

fn int(v: Option<i64>) -> i64 {
    v.unwrap_or(0)
}

fn text(v: Option<&str>) -> &str {
    v.unwrap_or("")
}

/// The documented meaning of a filter on a row (NULL reads as `0` / `""`).
fn holds(f: &Value, r: &Row, owners: &[i64]) -> bool {
    let Some(obj) = f.as_object() else {
        return true;
    };
    obj.iter().all(|(k, v)| match k.as_str() {
        "quota" => num_holds(v, int(r.quota)),
        "submitTime" => num_holds(v, int(r.submit_time)),
        "channelId" => num_holds(v, int(r.channel_id)),
        "userId" => num_holds(v, owners[r.owner]),
        "mjId" => str_holds(v, text(r.mj_id)),
        "status" => str_holds(v, text(r.status)),
        "prompt" => text_holds(v, text(r.prompt)),
        "finished" => (text(r.progress) == "100%") == v.as_bool().unwrap_or(false),
        "hasImage" => text(r.image_url).is_empty() != v.as_bool().unwrap_or(false),
        "and" => v
            .as_array()
            .is_none_or(|l| l.iter().all(|g| holds(g, r, owners))),
        "or" => v
            .as_array()
            .is_none_or(|l| l.is_empty() || l.iter().any(|g| holds(g, r, owners))),
        "not" => !holds(v, r, owners),
        other => panic!("model has no field {other}"),
    })
}

fn num_holds(f: &Value, x: i64) -> bool {
    f.as_object().unwrap().iter().all(|(op, v)| {
        let list = || v.as_array().unwrap().iter().map(|n| n.as_i64().unwrap());
        match op.as_str() {
            "eq" => x == v.as_i64().unwrap(),
            "ne" => x != v.as_i64().unwrap(),
            "gt" => x > v.as_i64().unwrap(),
            "gte" => x >= v.as_i64().unwrap(),
            "lt" => x < v.as_i64().unwrap(),
            "lte" => x <= v.as_i64().unwrap(),
            "in" => list().any(|n| n == x),
            "notIn" => !list().any(|n| n == x),
            other => panic!("model has no operator {other}"),
        }
    })
}

fn str_holds(f: &Value, x: &str) -> bool {
    f.as_object().unwrap().iter().all(|(op, v)| {
        let mut list = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap());
        match op.as_str() {
            "eq" => x == v.as_str().unwrap(),
            "ne" => x != v.as_str().unwrap(),
            "in" => list.any(|s| s == x),
            "notIn" => !list.any(|s| s == x),
            other => panic!("model has no operator {other}"),
        }
    })
}

fn text_holds(f: &Value, x: &str) -> bool {
    f.as_object()
        .unwrap()
        .iter()
        .all(|(op, v)| match op.as_str() {
            "contains" => folded_match(x, v.as_str().unwrap(), false),
            "startsWith" => folded_match(x, v.as_str().unwrap(), true),
            "isEmpty" => x.is_empty() == v.as_bool().unwrap(),
            other => panic!("model has no operator {other}"),
        })
}

/// A row's value for an order field.
fn key(r: &Row, id: i64, field: &str) -> i64 {
    match field {
        "ID" => id,
        "SUBMIT_TIME" => int(r.submit_time),
        "QUOTA" => int(r.quota),
        // The fixture stores finish_time as submit_time + 20.
        "FINISH_TIME" => r.submit_time.map_or(0, |t| t + 20),
        other => panic!("model has no order field {other}"),
    }
}

/// Every row the query matches, in the documented order: the keys given (default `ID
/// DESC`), then id in the first key's direction.
fn model_rows(q: &Query, rows: &[(i64, Row)], owners: &[i64]) -> Vec<i64> {
    let mut keys = q.order.clone();
    if keys.is_empty() {
        keys.push(("ID", false));
    }
    if let Some(i) = keys.iter().position(|(f, _)| *f == "ID") {
        keys.truncate(i + 1);
    } else {
        keys.push(("ID", keys[0].1));
    }
    let mut hits: Vec<&(i64, Row)> = rows
        .iter()
        .filter(|(_, r)| q.admin || r.owner == 0)
        .filter(|(_, r)| holds(&q.filter, r, owners))
        .collect();
    hits.sort_by(|(ia, a), (ib, b)| {
        for (field, asc) in &keys {
            let o = key(a, *ia, field).cmp(&key(b, *ib, field));
            let o = if *asc { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    hits.into_iter().map(|(id, _)| *id).collect()
}

fn order_json(q: &Query) -> Value {
    Value::Array(
        q.order
            .iter()
            .map(|(f, asc)| json!({"field": f, "direction": if *asc { "ASC" } else { "DESC" }}))
            .collect(),
    )
}

/// Replaces the table's rows with `rows`, ids from `base + 1`.
async fn store(app: &TestApp, owners: &[i64], rows: &[Row], base: i64) -> Vec<(i64, Row)> {
    let conn = app.db.connect().await;
    midjourney::Entity::delete_many().exec(&conn).await.unwrap();
    let mut out = Vec::new();
    let models: Vec<midjourney::ActiveModel> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = base + 1 + i as i64;
            out.push((id, r.clone()));
            midjourney::ActiveModel {
                id: Set(id),
                user_id: Set(Some(owners[r.owner])),
                mj_id: Set(r.mj_id.map(str::to_owned)),
                status: Set(r.status.map(str::to_owned)),
                progress: Set(r.progress.map(str::to_owned)),
                image_url: Set(r.image_url.map(str::to_owned)),
                prompt: Set(r.prompt.map(str::to_owned)),
                quota: Set(r.quota),
                submit_time: Set(r.submit_time),
                finish_time: Set(r.submit_time.map(|t| t + 20)),
                channel_id: Set(r.channel_id),
                ..Default::default()
            }
        })
        .collect();
    if !models.is_empty() {
        midjourney::Entity::insert_many(models)
            .exec(&conn)
            .await
            .unwrap();
    }
    conn.close().await.ok();
    out
}

const PAGE_QUERY: &str = "query($f: MidjourneyTaskFilter, $o: [MidjourneyTaskOrder!], $p: PageInput) { \
    midjourneyTasks(filter: $f, orderBy: $o, page: $p) { totalCount nodes { id } pageInfo { hasNextPage endCursor } } }";

/// Checks one query against the model: an offset page with its total, then every row
/// through a walk of cursor pages.
async fn check(
    app: &TestApp,
    who: (&TestUser, &TestUser),
    owners: &[i64],
    rows: &[(i64, Row)],
    q: &Query,
) -> Result<(), TestCaseError> {
    let user = if q.admin { who.0 } else { who.1 };
    let want = model_rows(q, rows, owners);
    let (page, size) = q.page;
    let a = app
        .gql_vars(
            Some(user),
            PAGE_QUERY,
            json!({"f": q.filter, "o": order_json(q), "p": {"offset": {"page": page, "pageSize": size}}}),
        )
        .await;
    prop_assert!(a.json.get("errors").is_none(), "{:?}: {}", q, a.text);
    let from = ((page - 1) * size) as usize;
    let expected: Vec<i64> = want
        .iter()
        .skip(from)
        .take(size as usize)
        .copied()
        .collect();
    prop_assert_eq!(a.node_ids(), expected, "offset page of {:?}", q);
    prop_assert_eq!(
        a.json["data"]["midjourneyTasks"]["totalCount"].as_u64(),
        Some(want.len() as u64),
        "total of {:?}",
        q
    );
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..=want.len() {
        let a = app
            .gql_vars(
                Some(user),
                PAGE_QUERY,
                json!({"f": q.filter, "o": order_json(q), "p": {"cursor": {"first": size, "after": after}}}),
            )
            .await;
        prop_assert!(a.json.get("errors").is_none(), "{:?}: {}", q, a.text);
        walked.extend(a.node_ids());
        let info = &a.json["data"]["midjourneyTasks"]["pageInfo"];
        if info["hasNextPage"] != true {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_owned);
    }
    prop_assert_eq!(walked, want, "cursor walk of {:?}", q);
    Ok(())
}

#[test]
fn the_service_answers_as_the_model_on_generated_data_and_queries() {
    let cases = env_cases("MODEL_CASES", 64);
    let rt = runtime();
    let (app, admin, alice, bob) = rt.block_on(async {
        let app = spawn_app().await;
        let admin = app.user("admin", Role::Admin).await;
        let alice = app.user("alice", Role::Common).await;
        let bob = app.user("bob", Role::Common).await;
        (app, admin, alice, bob)
    });
    let owners = [alice.id, bob.id];
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/api/model.regressions",
        ))),
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(row(), 0..30),
        proptest::collection::vec(query(), 4),
    );
    let base = Cell::new(0i64);
    let queries = Cell::new(0u64);
    let result = runner.run(&strategy, |(rows, qs)| {
        base.set(base.get() + 1000);
        queries.set(queries.get() + qs.len() as u64);
        rt.block_on(async {
            let stored = store(&app, &owners, &rows, base.get()).await;
            for q in &qs {
                check(&app, (&admin, &alice), &owners, &stored, q).await?;
            }
            Ok(())
        })
    });
    println!(
        "model test on {:?}: {cases} data sets, {} queries (each an offset page and a cursor walk)",
        app.db.backend,
        queries.get()
    );
    drop(app);
    if let Err(e) = result {
        panic!("{e}");
    }
}
