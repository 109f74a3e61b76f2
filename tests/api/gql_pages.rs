//! Ordering, offset pages, keyset cursor walks, limits checked before SQL, and the lazy
//! total.

use mj_tasks::service::Role;
use serde_json::{Value, json};

use crate::gql_filters::seeded;
use crate::helpers::{Task, TestApp, TestUser, spawn_app};

/// The ids in the order a query returns them, with `orderBy`.
async fn ordered(app: &TestApp, user: &TestUser, order: Value) -> Vec<i64> {
    let a = app
        .gql_vars(
            Some(user),
            "query($o: [MidjourneyTaskOrder!]) { midjourneyTasks(orderBy: $o, page: {offset: {pageSize: 100}}) { nodes { id } } }",
            json!({ "o": order }),
        )
        .await;
    assert!(a.json.get("errors").is_none(), "{}", a.text);
    a.node_ids()
}

#[tokio::test]
async fn each_order_field_in_both_directions() {
    let (app, admin, _u, _ids) = seeded().await;
    let conn = app.db.connect().await;
    use sea_orm::EntityTrait;
    let rows = entity::Midjourney::find().all(&conn).await.unwrap();
    let key = |field: &str, m: &entity::midjourney::Model| match field {
        "ID" => m.id,
        "SUBMIT_TIME" => m.submit_time.unwrap_or(0),
        "FINISH_TIME" => m.finish_time.unwrap_or(0),
        _ => m.quota.unwrap_or(0),
    };
    for field in ["ID", "SUBMIT_TIME", "FINISH_TIME", "QUOTA"] {
        for dir in ["ASC", "DESC"] {
            let mut want: Vec<(i64, i64)> = rows.iter().map(|m| (key(field, m), m.id)).collect();
            want.sort_unstable();
            if dir == "DESC" {
                want.reverse();
            }
            let want: Vec<i64> = want.into_iter().map(|(_, id)| id).collect();
            let got = ordered(&app, &admin, json!([{"field": field, "direction": dir}])).await;
            assert_eq!(got, want, "{field} {dir}");
        }
    }
    // Two keys: quota ascending, then submit time descending, then id.
    let mut want: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|m| (m.quota.unwrap_or(0), -m.submit_time.unwrap_or(0), m.id))
        .collect();
    want.sort_unstable();
    let want: Vec<i64> = want.into_iter().map(|(_, _, id)| id).collect();
    let got = ordered(
        &app,
        &admin,
        json!([{"field": "QUOTA", "direction": "ASC"}, {"field": "SUBMIT_TIME", "direction": "DESC"}]),
    )
    .await;
    assert_eq!(got, want);
    // Direction defaults to DESC.
    assert_eq!(
        ordered(&app, &admin, json!([{"field": "QUOTA"}])).await,
        ordered(
            &app,
            &admin,
            json!([{"field": "QUOTA", "direction": "DESC"}])
        )
        .await
    );
    conn.close().await.ok();
}

#[tokio::test]
async fn offset_pages_and_their_page_info() {
    let (app, admin, _u, ids) = seeded().await;
    let q = "{ midjourneyTasks(page: {offset: {page: 2, pageSize: 5}}) { nodes { id } pageInfo { hasNextPage hasPreviousPage page pageSize totalPages } totalCount } }";
    let a = app.gql(&admin, q).await;
    let mut all = ids.clone();
    all.reverse();
    assert_eq!(a.node_ids(), all[5..10].to_vec());
    assert_eq!(
        a.json["data"]["midjourneyTasks"]["pageInfo"],
        json!({"hasNextPage": true, "hasPreviousPage": true, "page": 2, "pageSize": 5, "totalPages": 3})
    );
    assert_eq!(a.json["data"]["midjourneyTasks"]["totalCount"], 12);
    let a = app
        .gql(&admin, "{ midjourneyTasks(page: {offset: {page: 3, pageSize: 5}}) { nodes { id } pageInfo { hasNextPage } } }")
        .await;
    assert_eq!(a.node_ids(), all[10..].to_vec());
    assert_eq!(
        a.json["data"]["midjourneyTasks"]["pageInfo"]["hasNextPage"],
        false
    );
    let a = app
        .gql(
            &admin,
            "{ midjourneyTasks { nodes { id } pageInfo { pageSize page } } }",
        )
        .await;
    assert_eq!(
        a.json["data"]["midjourneyTasks"]["pageInfo"],
        json!({"pageSize": 20, "page": 1})
    );
}

#[tokio::test]
async fn page_and_filter_limits_are_checked_before_any_sql() {
    let (app, admin, _u, _ids) = seeded().await;
    let many: Vec<i64> = (0..101).collect();
    let deep = json!({"and": [{"or": [{"not": {"quota": {"eq": 1}}}]}]});
    let eleven: Vec<Value> = (0..11).map(|i| json!({"quota": {"eq": i}})).collect();
    let long = "x".repeat(201);
    let cases: Vec<(String, Value, &str)> = vec![
        (
            "{offset: {pageSize: 101}}".into(),
            json!({}),
            "PAGE_TOO_LARGE",
        ),
        ("{cursor: {first: 101}}".into(), json!({}), "PAGE_TOO_LARGE"),
        ("{offset: {pageSize: 0}}".into(), json!({}), "BAD_FILTER"),
        ("{offset: {page: 0}}".into(), json!({}), "BAD_FILTER"),
        (
            "{offset: {page: 501, pageSize: 20}}".into(),
            json!({}),
            "OFFSET_TOO_DEEP",
        ),
        (
            "{offset: {page: 101, pageSize: 100}}".into(),
            json!({}),
            "OFFSET_TOO_DEEP",
        ),
        (
            "{cursor: {first: 5, last: 5}}".into(),
            json!({}),
            "BAD_FILTER",
        ),
        ("{cursor: {after: \"zz\"}}".into(), json!({}), "BAD_FILTER"),
        (
            "{offset: {}}".into(),
            json!({"id": {"in": many}}),
            "BAD_FILTER",
        ),
        (
            "{offset: {}}".into(),
            json!({"id": {"notIn": many}}),
            "BAD_FILTER",
        ),
        ("{offset: {}}".into(), json!({"or": eleven}), "BAD_FILTER"),
        ("{offset: {}}".into(), deep, "BAD_FILTER"),
        (
            "{offset: {}}".into(),
            json!({"prompt": {"contains": long}}),
            "BAD_FILTER",
        ),
        (
            "{offset: {}}".into(),
            json!({"prompt": {"startsWith": ""}}),
            "BAD_FILTER",
        ),
    ];
    let before = app.service.query_counts();
    for (page, filter, code) in cases {
        let q = format!(
            "query($f: MidjourneyTaskFilter) {{ midjourneyTasks(filter: $f, page: {page}) {{ nodes {{ id }} }} }}"
        );
        let a = app.gql_vars(Some(&admin), &q, json!({ "f": filter })).await;
        assert_eq!(a.codes(), [code], "{page} {filter}: {}", a.text);
    }
    let a = app
        .gql(&admin, "{ midjourneyTasks(orderBy: [{field: ID}, {field: QUOTA}, {field: SUBMIT_TIME}, {field: FINISH_TIME}]) { nodes { id } } }")
        .await;
    assert_eq!(a.codes(), ["BAD_FILTER"]);
    let a = app
        .gql(
            &admin,
            "{ midjourneyTaskStats { byDay(days: 0) { count } } }",
        )
        .await;
    assert_eq!(a.codes(), ["BAD_FILTER"]);
    assert_eq!(
        app.service.query_counts(),
        before,
        "no SQL ran for rejected requests"
    );
    // The limits themselves are allowed.
    let ok: Vec<i64> = (0..100).collect();
    let a = app
        .gql_vars(
            Some(&admin),
            "query($f: MidjourneyTaskFilter) { midjourneyTasks(filter: $f, page: {offset: {page: 100, pageSize: 100}}) { nodes { id } } }",
            json!({"f": {"id": {"in": ok}, "and": [{"or": [{"quota": {"gte": 0}}]}]}}),
        )
        .await;
    assert!(a.json.get("errors").is_none(), "{}", a.text);
}

#[tokio::test]
async fn total_count_runs_only_when_selected() {
    let (app, admin, _u, _ids) = seeded().await;
    let before = app.service.query_counts();
    app.gql(
        &admin,
        "{ midjourneyTasks { nodes { id } pageInfo { hasNextPage } } }",
    )
    .await;
    let after = app.service.query_counts();
    assert_eq!(after.rows, before.rows + 1, "one rows query per page");
    assert_eq!(
        after.aggregates, before.aggregates,
        "no count without totalCount"
    );
    let a = app
        .gql(
            &admin,
            "{ midjourneyTasks { totalCount pageInfo { totalPages } } }",
        )
        .await;
    assert_eq!(a.json["data"]["midjourneyTasks"]["totalCount"], 12);
    let last = app.service.query_counts();
    assert_eq!(
        last.aggregates,
        after.aggregates + 1,
        "totalCount and totalPages share one count"
    );
}

/// Walks every page with cursors and returns the ids in order.
async fn walk(
    app: &TestApp,
    user: &TestUser,
    order: &Value,
    backwards: bool,
    size: i64,
) -> Vec<i64> {
    let (dir, cursor_arg, info) = if backwards {
        ("last", "before", "hasPreviousPage startCursor")
    } else {
        ("first", "after", "hasNextPage endCursor")
    };
    let q = format!(
        "query($o: [MidjourneyTaskOrder!], $c: String) {{ midjourneyTasks(orderBy: $o, page: {{cursor: {{{dir}: {size}, {cursor_arg}: $c}}}}) {{ edges {{ cursor node {{ id }} }} pageInfo {{ {info} }} }} }}"
    );
    let mut seen: Vec<i64> = Vec::new();
    let mut cursor = Value::Null;
    for _ in 0..1000 {
        let a = app
            .gql_vars(Some(user), &q, json!({"o": order, "c": cursor}))
            .await;
        assert!(a.json.get("errors").is_none(), "{}", a.text);
        let conn = &a.json["data"]["midjourneyTasks"];
        let mut page: Vec<i64> = conn["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_i64().unwrap())
            .collect();
        if backwards {
            page.reverse();
        }
        seen.extend(page);
        let (more, next) = if backwards {
            (
                conn["pageInfo"]["hasPreviousPage"].as_bool().unwrap(),
                conn["pageInfo"]["startCursor"].clone(),
            )
        } else {
            (
                conn["pageInfo"]["hasNextPage"].as_bool().unwrap(),
                conn["pageInfo"]["endCursor"].clone(),
            )
        };
        if !more {
            if backwards {
                seen.reverse();
            }
            return seen;
        }
        cursor = next;
    }
    panic!("cursor walk did not end");
}

#[tokio::test]
async fn cursor_walks_return_every_row_once_forwards_and_backwards() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    // 57 tasks sharing few sort-key values: many ties.
    for i in 0..57i64 {
        app.task(Task::of(admin.id).quota(i % 3 * 100).submitted(i % 4))
            .await;
    }
    let orders = [
        json!([]),
        json!([{"field": "QUOTA", "direction": "ASC"}]),
        json!([{"field": "QUOTA", "direction": "DESC"}, {"field": "SUBMIT_TIME", "direction": "ASC"}]),
        json!([{"field": "SUBMIT_TIME", "direction": "DESC"}, {"field": "ID", "direction": "ASC"}]),
    ];
    for order in orders {
        let expected = ordered(&app, &admin, order.clone()).await;
        assert_eq!(expected.len(), 57);
        for size in [1, 7, 100] {
            let forwards = walk(&app, &admin, &order, false, size).await;
            assert_eq!(forwards, expected, "forwards {order} by {size}");
            let backwards = walk(&app, &admin, &order, true, size).await;
            assert_eq!(backwards, expected, "backwards {order} by {size}");
        }
    }
}

#[tokio::test]
async fn a_cursor_reused_with_another_order_or_filter_is_refused() {
    let (app, admin, _u, _ids) = seeded().await;
    let a = app
        .gql(&admin, "{ midjourneyTasks(orderBy: [{field: QUOTA}], page: {cursor: {first: 2}}) { pageInfo { endCursor } } }")
        .await;
    let cursor = a.json["data"]["midjourneyTasks"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let q = "query($c: String, $o: [MidjourneyTaskOrder!], $f: MidjourneyTaskFilter) { midjourneyTasks(orderBy: $o, filter: $f, page: {cursor: {first: 2, after: $c}}) { nodes { id } } }";
    let same = app
        .gql_vars(
            Some(&admin),
            q,
            json!({"c": cursor, "o": [{"field": "QUOTA"}]}),
        )
        .await;
    assert!(same.json.get("errors").is_none(), "{}", same.text);
    for (order, filter) in [
        (json!([{"field": "QUOTA", "direction": "ASC"}]), Value::Null),
        (json!([{"field": "SUBMIT_TIME"}]), Value::Null),
        (json!(null), Value::Null),
        (
            json!([{"field": "QUOTA"}]),
            json!({"status": {"eq": "SUCCESS"}}),
        ),
    ] {
        let a = app
            .gql_vars(
                Some(&admin),
                q,
                json!({"c": cursor, "o": order, "f": filter}),
            )
            .await;
        assert_eq!(a.codes(), ["CURSOR_MISMATCH"], "{order} {filter}");
    }
}

/// A first page whose filter pins rows by key (an `mj_id` lookup) and holds them all is its
/// own total, on both doors: no count runs. A full page still counts.
#[tokio::test]
async fn a_lookup_that_fits_its_first_page_is_its_own_total() {
    let app = spawn_app().await;
    let admin = app.user("boss", Role::Admin).await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    for mj in ["look-a", "look-b", "look-c"] {
        app.task(Task::of(alice.id).mj(mj)).await;
    }
    app.task(Task::of(bob.id).mj("look-a")).await;

    let before = app.service.query_counts();
    let rest = app.get_as(&alice, "/api/mj/self?mj_id=look-a").await;
    assert_eq!(rest.total(), 1, "{}", rest.text);
    let all = app.get_as(&admin, "/api/mj/?mj_id=look-a").await;
    assert_eq!(all.total(), 2, "{}", all.text);
    let none = app.get_as(&alice, "/api/mj/self?mj_id=missing").await;
    assert_eq!(none.total(), 0, "{}", none.text);
    let gql = app
        .gql(
            &alice,
            r#"{ midjourneyTasks(filter: {mjId: {eq: "look-b"}}) { totalCount nodes { mjId } } }"#,
        )
        .await;
    assert_eq!(
        gql.json["data"]["midjourneyTasks"]["totalCount"], 1,
        "{}",
        gql.text
    );
    let after = app.service.query_counts();
    assert_eq!(after.rows, before.rows + 4, "one page each");
    assert_eq!(after.aggregates, before.aggregates, "no count ran");

    // A full first page: the count runs, and says how many there are beyond it.
    let full = app
        .gql(
            &alice,
            r#"{ midjourneyTasks(filter: {mjId: {in: ["look-a", "look-b", "look-c"]}}, page: {offset: {page: 1, pageSize: 2}}) { totalCount nodes { mjId } } }"#,
        )
        .await;
    assert_eq!(
        full.json["data"]["midjourneyTasks"]["totalCount"], 3,
        "{}",
        full.text
    );
    assert_eq!(app.service.query_counts().aggregates, after.aggregates + 1);
    // Not a lookup: counted as before.
    let page = app.get_as(&alice, "/api/mj/self?p=1&page_size=10").await;
    assert_eq!(page.total(), 3, "{}", page.text);
    assert_eq!(app.service.query_counts().aggregates, after.aggregates + 2);
}
