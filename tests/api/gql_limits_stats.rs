//! Query depth and complexity limits, statistics checked against direct SQL, and parity
//! between the legacy REST routes and GraphQL.

use mj_tasks::service::Role;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::{Task, TestApp, TestUser, spawn_app};

const TWENTY_FIELDS: &str = "id mjId action status progress progressPercent finished prompt promptEn failReason description imageUrl videoUrl videoUrls submitTime startTime finishTime submittedAt quota userId";

/// The query GraphiQL sends to load the schema, with its full `ofType` depth.
const GRAPHIQL_INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"#;

#[tokio::test]
async fn the_playgrounds_introspection_query_passes_the_limits() {
    let app = spawn_app().await;
    let a = app
        .gql_vars(None, GRAPHIQL_INTROSPECTION, Value::Null)
        .await;
    assert!(a.json.get("errors").is_none(), "{}", a.text);
    assert!(
        a.json["data"]["__schema"]["types"]
            .as_array()
            .unwrap()
            .len()
            > 10
    );
}

#[tokio::test]
async fn queries_nested_deeper_than_10_are_refused() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    // The schema itself is at most 4 levels deep, so deeper documents are made of unknown
    // fields: the depth limit (checked at parse time) answers before validation does.
    let ok = "{ midjourneyTasks { edges { node { id } } pageInfo { hasNextPage } } }";
    assert!(app.gql(&u, ok).await.json.get("errors").is_none());
    let deep = "{ a { b { c { d { e { f { g { h { i { j { k } } } } } } } } } } }";
    let a = app.gql(&u, deep).await;
    assert_eq!(a.codes(), ["QUERY_TOO_COMPLEX"], "{}", a.text);
    let ten = "{ a { b { c { d { e { f { g { h { i { j } } } } } } } } } }";
    let a = app.gql(&u, ten).await;
    assert_eq!(
        a.codes()[0],
        "GRAPHQL_VALIDATION_FAILED",
        "depth 10 passes the depth limit"
    );
    // Through fragments too.
    let via_fragments = "{ ...A } fragment A on Query { a { b { c { d { ...B } } } } } fragment B on Query { e { f { g { h { i { j { k } } } } } } }";
    assert_eq!(
        app.gql(&u, via_fragments).await.codes(),
        ["QUERY_TOO_COMPLEX"]
    );
}

#[tokio::test]
async fn complexity_scales_with_page_size() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    app.task(Task::of(admin.id)).await;
    let one = format!(
        "t0: midjourneyTasks(page: {{offset: {{pageSize: 100}}}}) {{ nodes {{ {TWENTY_FIELDS} }} }}"
    );
    let a = app.gql(&admin, &format!("{{ {one} }}")).await;
    assert!(a.json.get("errors").is_none(), "{}", a.text);
    assert_eq!(a.json["data"]["t0"]["nodes"].as_array().unwrap().len(), 1);
    let twenty: Vec<String> = (0..20)
        .map(|i| format!("t{i}: midjourneyTasks(page: {{offset: {{pageSize: 100}}}}) {{ nodes {{ {TWENTY_FIELDS} }} }}"))
        .collect();
    let before = app.service.query_counts();
    let a = app
        .gql(&admin, &format!("{{ {} }}", twenty.join(" ")))
        .await;
    assert_eq!(a.codes(), ["QUERY_TOO_COMPLEX"], "{}", a.text);
    assert_eq!(app.service.query_counts(), before, "refused before any SQL");
    // Small pages of the same twenty aliases fit.
    let small: Vec<String> = (0..20)
        .map(|i| format!("t{i}: midjourneyTasks(page: {{offset: {{pageSize: 5}}}}) {{ nodes {{ {TWENTY_FIELDS} }} }}"))
        .collect();
    let a = app.gql(&admin, &format!("{{ {} }}", small.join(" "))).await;
    assert!(a.json.get("errors").is_none(), "{}", a.text);
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let conn = app.db.connect().await;
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    conn.close().await.ok();
    row.try_get_by_index::<i64>(0)
        .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))
        .unwrap_or_else(|_| {
            let s: String = row.try_get_by_index(0).unwrap();
            s.trim().parse().unwrap()
        })
}

/// `[{key, count}]` as pairs.
fn buckets(v: &Value) -> Vec<(String, i64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap().to_owned(),
                b["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn pairs(app: &TestApp, sql: &str) -> Vec<(String, i64)> {
    let conn = app.db.connect().await;
    let rows = conn
        .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap();
    conn.close().await.ok();
    rows.iter()
        .map(|r| {
            (
                r.try_get_by_index::<String>(0).unwrap(),
                r.try_get_by_index::<i64>(1).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn stats_match_direct_sql() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let u = app.user("alice", Role::Common).await;
    let statuses = ["SUCCESS", "FAILURE", "IN_PROGRESS", "SUCCESS", "SUCCESS"];
    let actions = ["IMAGINE", "UPSCALE", "VIDEO"];
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..60i64 {
        let owner = if i % 4 == 0 { admin.id } else { u.id };
        app.task(
            Task::of(owner)
                .status(statuses[(i % 5) as usize])
                .action(actions[(i % 3) as usize])
                .quota(i * 10)
                .submitted(now - (i % 7) * 86_400_000),
        )
        .await;
    }
    // A row with NULL status and action counts under "".
    app.sql(&format!(
        "INSERT INTO midjourneys (user_id, quota) VALUES ({}, 5)",
        u.id
    ))
    .await;

    let q = "{ midjourneyTaskStats { count quotaSum successCount failureCount byStatus { key count quotaSum } byAction { key count quotaSum } byDay(days: 7) { start count quotaSum } } }";
    let a = app.gql(&u, q).await;
    assert!(a.json.get("errors").is_none(), "{}", a.text);
    let s = &a.json["data"]["midjourneyTaskStats"];
    let uid = u.id;
    assert_eq!(
        s["count"],
        scalar(
            &app,
            &format!("SELECT COUNT(*) FROM midjourneys WHERE user_id = {uid}")
        )
        .await
    );
    assert_eq!(
        s["quotaSum"],
        scalar(
            &app,
            &format!("SELECT CAST(SUM(quota) AS CHAR(20)) FROM midjourneys WHERE user_id = {uid}")
        )
        .await
    );
    assert_eq!(
        s["successCount"],
        scalar(
            &app,
            &format!(
                "SELECT COUNT(*) FROM midjourneys WHERE user_id = {uid} AND status = 'SUCCESS'"
            )
        )
        .await
    );
    assert_eq!(
        s["failureCount"],
        scalar(
            &app,
            &format!(
                "SELECT COUNT(*) FROM midjourneys WHERE user_id = {uid} AND status = 'FAILURE'"
            )
        )
        .await
    );

    let by_status = pairs(&app, &format!("SELECT COALESCE(status, '') AS k, COUNT(*) AS n FROM midjourneys WHERE user_id = {uid} GROUP BY COALESCE(status, '') ORDER BY n DESC, k ASC")).await;
    let got = buckets(&s["byStatus"]);
    assert_eq!(got, by_status);
    assert!(
        got.iter().any(|(k, _)| k.is_empty()),
        "NULL status grouped as \"\""
    );
    let by_action = pairs(&app, &format!("SELECT COALESCE(action, '') AS k, COUNT(*) AS n FROM midjourneys WHERE user_id = {uid} GROUP BY COALESCE(action, '') ORDER BY n DESC, k ASC")).await;
    let got = buckets(&s["byAction"]);
    assert_eq!(got, by_action);

    let days = s["byDay"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let day_ms = 86_400_000i64;
    let today = now.div_euclid(day_ms);
    for (i, d) in days.iter().enumerate() {
        let day = today - 6 + i as i64;
        let want = scalar(
            &app,
            &format!("SELECT COUNT(*) FROM midjourneys WHERE user_id = {uid} AND submit_time >= {} AND submit_time < {}", day * day_ms, (day + 1) * day_ms),
        )
        .await;
        assert_eq!(d["count"], want, "day {i}");
        let start = chrono::DateTime::from_timestamp_millis(day * day_ms).unwrap();
        let got = chrono::DateTime::parse_from_rfc3339(d["start"].as_str().unwrap()).unwrap();
        assert_eq!(got, start);
    }
    let total_in_days: i64 = days.iter().map(|d| d["count"].as_i64().unwrap()).sum();
    assert_eq!(
        total_in_days, 45,
        "every task of the user falls in the 7 days"
    );

    // A filter applies to stats like to lists.
    let a = app
        .gql(
            &admin,
            "{ midjourneyTaskStats(filter: {action: {eq: \"VIDEO\"}}) { count quotaSum } }",
        )
        .await;
    assert_eq!(
        a.json["data"]["midjourneyTaskStats"]["count"],
        scalar(
            &app,
            "SELECT COUNT(*) FROM midjourneys WHERE action = 'VIDEO'"
        )
        .await
    );
}

/// REST query string → GraphQL filter/page with the same meaning.
fn graphql_equivalent(rest: &str) -> (Value, i64, i64) {
    let mut filter = serde_json::Map::new();
    let mut page = 1;
    let mut size = 20;
    let mut submit = serde_json::Map::new();
    for (k, v) in rest.split('&').filter_map(|kv| kv.split_once('=')) {
        match k {
            "p" => page = v.parse().unwrap(),
            "page_size" => size = v.parse().unwrap(),
            "mj_id" => {
                filter.insert("mjId".into(), json!({"eq": v}));
            }
            "channel_id" => {
                filter.insert("channelId".into(), json!({"eq": v.parse::<i64>().unwrap()}));
            }
            "start_timestamp" => {
                submit.insert("gte".into(), json!(v.parse::<i64>().unwrap()));
            }
            "end_timestamp" => {
                submit.insert("lte".into(), json!(v.parse::<i64>().unwrap()));
            }
            _ => unreachable!("{k}"),
        }
    }
    if !submit.is_empty() {
        filter.insert("submitTime".into(), Value::Object(submit));
    }
    (Value::Object(filter), page, size)
}

async fn parity(app: &TestApp, user: &TestUser, route: &str, cases: &[&str]) {
    for rest in cases {
        let r = app.get_as(user, &format!("{route}?{rest}")).await;
        assert_eq!(r.json["success"], true, "{rest}: {}", r.text);
        let (filter, page, size) = graphql_equivalent(rest);
        let g = app
            .gql_vars(
                Some(user),
                "query($f: MidjourneyTaskFilter, $p: Int!, $s: Int!) { midjourneyTasks(filter: $f, page: {offset: {page: $p, pageSize: $s}}) { totalCount nodes { id mjId action prompt promptEn status progress imageUrl videoUrl submitTime startTime finishTime failReason quota } } }",
                json!({"f": filter, "p": page, "s": size}),
            )
            .await;
        assert!(g.json.get("errors").is_none(), "{rest}: {}", g.text);
        assert_eq!(g.node_ids(), r.ids(), "{rest}");
        assert_eq!(
            g.json["data"]["midjourneyTasks"]["totalCount"],
            r.total(),
            "{rest}"
        );
        for (node, item) in g.json["data"]["midjourneyTasks"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .zip(r.items())
        {
            for (gf, rf) in [
                ("mjId", "mj_id"),
                ("action", "action"),
                ("prompt", "prompt"),
                ("promptEn", "prompt_en"),
                ("status", "status"),
                ("progress", "progress"),
                ("imageUrl", "image_url"),
                ("videoUrl", "video_url"),
                ("submitTime", "submit_time"),
                ("startTime", "start_time"),
                ("finishTime", "finish_time"),
                ("failReason", "fail_reason"),
                ("quota", "quota"),
            ] {
                assert_eq!(node[gf], item[rf], "{rest}: {gf}");
            }
        }
    }
}

#[tokio::test]
async fn rest_and_graphql_return_the_same_rows_for_the_same_inputs() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let u = app.user("alice", Role::Common).await;
    for i in 0..45i64 {
        let owner = if i % 3 == 0 { admin.id } else { u.id };
        let mj = format!("mj-{}", i % 9);
        app.task(
            Task::of(owner)
                .mj(&mj)
                .channel(i % 4)
                .submitted(1000 + i * 100)
                .quota(i),
        )
        .await;
    }
    let admin_cases = [
        "p=1",
        "p=2",
        "p=3&page_size=7",
        "page_size=100",
        "mj_id=mj-3",
        "mj_id=mj-3&p=2&page_size=2",
        "channel_id=2",
        "channel_id=2&page_size=5&p=2",
        "start_timestamp=2000",
        "end_timestamp=3000",
        "start_timestamp=2000&end_timestamp=3000",
        "channel_id=1&start_timestamp=1500&end_timestamp=4200",
        "mj_id=nope",
        "p=9&page_size=10",
    ];
    parity(&app, &admin, "/api/mj/", &admin_cases).await;
    let self_cases = [
        "p=1",
        "p=2&page_size=5",
        "page_size=100",
        "mj_id=mj-4",
        "start_timestamp=3000",
        "end_timestamp=2500",
        "start_timestamp=1500&end_timestamp=4000&page_size=3",
    ];
    parity(&app, &u, "/api/mj/self", &self_cases).await;
}
