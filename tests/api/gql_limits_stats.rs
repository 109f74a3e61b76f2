//! Query depth and complexity limits (the playground's own introspection query included),
//! and statistics checked against direct SQL.

use mj_tasks::service::Role;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::{Task, TestApp, spawn_app};

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

/// A request that passed full validation runs without it the next time (the same document,
/// operation name and variables): its answers stay what full validation gives, and other
/// variables of the same document are validated in full again (a bad value is refused with
/// validation's own message, whichever came first).
#[tokio::test]
async fn a_request_validated_before_answers_as_full_validation_does() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    app.task(Task::of(admin.id)).await;
    app.task(Task::of(admin.id)).await;
    let doc = "query Q($size: Int!) { midjourneyTasks(page: {offset: {pageSize: $size}}) { totalCount nodes { id } } }";
    let bad = json!({ "size": "many" });
    let first_bad = app.gql_vars(Some(&admin), doc, bad.clone()).await;
    assert!(
        first_bad.text.contains("Invalid value for argument"),
        "{}",
        first_bad.text
    );
    for round in 0..3 {
        let ok = app.gql_vars(Some(&admin), doc, json!({ "size": 1 })).await;
        assert!(
            ok.json.get("errors").is_none(),
            "round {round}: {}",
            ok.text
        );
        assert_eq!(ok.json["data"]["midjourneyTasks"]["totalCount"], 2);
        assert_eq!(
            ok.json["data"]["midjourneyTasks"]["nodes"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        // Other variables of the validated document: validated in full, the same refusal.
        let again = app.gql_vars(Some(&admin), doc, bad.clone()).await;
        assert_eq!(again.text, first_bad.text, "round {round}");
        // A missing variable too.
        let missing = app.gql_vars(Some(&admin), doc, json!({})).await;
        assert!(
            missing.json.get("errors").is_some() && missing.json["data"].is_null(),
            "round {round}: {}",
            missing.text
        );
    }
}
