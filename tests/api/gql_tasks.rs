//! `midjourneyTasks`: every filter operator, and/or/not, ordering, offset and cursor pages,
//! scoping, admin-only parts, the lazy total.

use mj_tasks::service::Role;
use serde_json::{Value, json};

use crate::helpers::{Task, TestApp, TestUser, spawn_app};

/// An admin and a user; the user owns ten varied tasks, the admin two. Returns the ids in
/// insertion order.
async fn seeded() -> (TestApp, TestUser, TestUser, Vec<i64>) {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let u = app.user("alice", Role::Common).await;
    let mut ids = Vec::new();
    let specs = [
        Task::of(u.id)
            .action("IMAGINE")
            .status("SUCCESS")
            .quota(100)
            .submitted(1000)
            .channel(1)
            .image("https://i/1.png")
            .prompt("A red fox"),
        Task::of(u.id)
            .action("UPSCALE")
            .status("SUCCESS")
            .quota(200)
            .submitted(2000)
            .channel(2)
            .image("https://i/2.png")
            .prompt("red_fox 100% real"),
        Task::of(u.id)
            .action("IMAGINE")
            .status("FAILURE")
            .progress("0%")
            .quota(0)
            .submitted(3000)
            .channel(1)
            .prompt("blue whale")
            .fail("Banned prompt: whale"),
        Task::of(u.id)
            .action("VIDEO")
            .status("IN_PROGRESS")
            .progress("45%")
            .quota(300)
            .submitted(4000)
            .channel(3)
            .prompt("a\\\\b path"),
        Task::of(u.id)
            .action("IMAGINE")
            .status("SUCCESS")
            .quota(100)
            .submitted(5000)
            .channel(2)
            .image("https://i/5.png")
            .prompt("Red panda"),
        Task::of(u.id)
            .action("REROLL")
            .status("SUBMITTED")
            .progress("0%")
            .quota(0)
            .submitted(6000)
            .channel(1)
            .prompt(""),
        Task::of(u.id)
            .action("IMAGINE")
            .status("SUCCESS")
            .quota(500)
            .submitted(7000)
            .channel(3)
            .image("https://i/7.png")
            .prompt("green forest"),
        Task::of(u.id)
            .action("BLEND")
            .status("FAILURE")
            .progress("0%")
            .quota(0)
            .submitted(8000)
            .channel(2)
            .prompt("x")
            .fail("timeout"),
        Task::of(u.id)
            .action("IMAGINE")
            .status("SUCCESS")
            .quota(200)
            .submitted(9000)
            .channel(1)
            .image("https://i/9.png")
            .prompt("fox_den"),
        Task::of(u.id)
            .action("CUSTOM_NEW")
            .status("MODAL")
            .progress("10%")
            .quota(50)
            .submitted(10_000)
            .channel(4)
            .prompt("new action"),
        Task::of(admin.id)
            .action("IMAGINE")
            .status("SUCCESS")
            .quota(1000)
            .submitted(1500)
            .channel(1)
            .prompt("admin fox"),
        Task::of(admin.id)
            .action("DESCRIBE")
            .status("SUCCESS")
            .quota(1000)
            .submitted(2500)
            .channel(5)
            .prompt("admin describe"),
    ];
    for t in specs {
        ids.push(app.task(t).await);
    }
    (app, admin, u, ids)
}

async fn ids_for(app: &TestApp, user: &TestUser, filter: Value) -> Vec<i64> {
    let a = app
        .gql_vars(
            Some(user),
            "query($f: MidjourneyTaskFilter) { midjourneyTasks(filter: $f, page: {offset: {pageSize: 100}}) { nodes { id } } }",
            json!({ "f": filter }),
        )
        .await;
    assert!(a.json.get("errors").is_none(), "{filter}: {}", a.text);
    a.node_ids()
}

/// Asserts that each filter returns the tasks at the given seed positions, newest first.
async fn check<const N: usize>(
    app: &TestApp,
    user: &TestUser,
    ids: &[i64],
    cases: [(Value, Vec<usize>); N],
) {
    for (filter, want) in cases {
        assert_eq!(
            ids_for(app, user, filter.clone()).await,
            pick(ids, &want),
            "{filter}"
        );
    }
}

fn pick(ids: &[i64], positions: &[usize]) -> Vec<i64> {
    let mut v: Vec<i64> = positions.iter().map(|&p| ids[p]).collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

#[tokio::test]
async fn int_filter_operators() {
    let (app, _admin, u, ids) = seeded().await;
    let cases = [
        (json!({"quota": {"eq": 100}}), vec![0, 4]),
        (json!({"quota": {"ne": 0}}), vec![0, 1, 3, 4, 6, 8, 9]),
        (json!({"quota": {"gt": 200}}), vec![3, 6]),
        (json!({"quota": {"gte": 200}}), vec![1, 3, 6, 8]),
        (json!({"quota": {"lt": 100}}), vec![2, 5, 7, 9]),
        (json!({"quota": {"lte": 100}}), vec![0, 2, 4, 5, 7, 9]),
        (json!({"quota": {"in": [50, 500]}}), vec![6, 9]),
        (json!({"quota": {"notIn": [0, 100, 200]}}), vec![3, 6, 9]),
        (json!({"quota": {"in": []}}), vec![]),
        (json!({"quota": {"gte": 100, "lt": 300}}), vec![0, 1, 4, 8]),
        (json!({"id": {"eq": ids[3]}}), vec![3]),
        (json!({"id": {"in": [ids[0], ids[9], ids[10]]}}), vec![0, 9]),
    ];
    check(&app, &u, &ids, cases).await;
}

#[tokio::test]
async fn long_filter_operators_on_times() {
    let (app, _admin, u, ids) = seeded().await;
    let cases = [
        (json!({"submitTime": {"eq": 3000}}), vec![2]),
        (json!({"submitTime": {"gt": 8000}}), vec![8, 9]),
        (json!({"submitTime": {"gte": "8000"}}), vec![7, 8, 9]),
        (json!({"submitTime": {"lt": 2000}}), vec![0]),
        (
            json!({"submitTime": {"lte": 2000, "gte": 1000}}),
            vec![0, 1],
        ),
        (json!({"startTime": {"eq": 1010}}), vec![0]),
        (json!({"finishTime": {"gte": 9020}}), vec![8, 9]),
    ];
    check(&app, &u, &ids, cases).await;
}

#[tokio::test]
async fn string_filter_operators() {
    let (app, _admin, u, ids) = seeded().await;
    let cases = [
        (json!({"status": {"eq": "FAILURE"}}), vec![2, 7]),
        (json!({"status": {"ne": "SUCCESS"}}), vec![2, 3, 5, 7, 9]),
        (json!({"action": {"in": ["VIDEO", "BLEND"]}}), vec![3, 7]),
        (
            json!({"action": {"notIn": ["IMAGINE", "UPSCALE"]}}),
            vec![3, 5, 7, 9],
        ),
        (json!({"action": {"eq": "CUSTOM_NEW"}}), vec![9]),
        (json!({"status": {"eq": "success"}}), vec![]),
    ];
    for (filter, want) in cases {
        let got = ids_for(&app, &u, filter.clone()).await;
        if filter["status"]["eq"] == "success" {
            // Case sensitivity follows the backend's collation (MySQL ignores case).
            assert!(
                got.is_empty() || got == pick(&ids, &[0, 1, 4, 6, 8]),
                "{filter}"
            );
        } else {
            assert_eq!(got, pick(&ids, &want), "{filter}");
        }
    }
    let mj = app
        .gql(
            &u,
            &format!("{{ midjourneyTask(id: {}) {{ mjId }} }}", ids[4]),
        )
        .await;
    let mj_id = mj.json["data"]["midjourneyTask"]["mjId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        ids_for(&app, &u, json!({"mjId": {"eq": mj_id}})).await,
        vec![ids[4]]
    );
}

#[tokio::test]
async fn text_filters_are_case_insensitive_with_literal_wildcards() {
    let (app, _admin, u, ids) = seeded().await;
    let cases = [
        (json!({"prompt": {"contains": "fox"}}), vec![0, 1, 8]),
        (json!({"prompt": {"contains": "RED"}}), vec![0, 1, 4]),
        (json!({"prompt": {"startsWith": "red"}}), vec![1, 4]),
        (json!({"prompt": {"contains": "_"}}), vec![1, 8]),
        (json!({"prompt": {"contains": "%"}}), vec![1]),
        (json!({"prompt": {"contains": "\\"}}), vec![3]),
        (json!({"prompt": {"startsWith": "fox_"}}), vec![8]),
        (json!({"prompt": {"isEmpty": true}}), vec![5]),
        (json!({"failReason": {"isEmpty": false}}), vec![2, 7]),
        (json!({"failReason": {"contains": "whale"}}), vec![2]),
    ];
    check(&app, &u, &ids, cases).await;
}

#[tokio::test]
async fn finished_and_has_image_filters() {
    let (app, _admin, u, ids) = seeded().await;
    assert_eq!(
        ids_for(&app, &u, json!({"finished": true})).await,
        pick(&ids, &[0, 1, 4, 6, 8])
    );
    assert_eq!(
        ids_for(&app, &u, json!({"finished": false})).await,
        pick(&ids, &[2, 3, 5, 7, 9])
    );
    assert_eq!(
        ids_for(&app, &u, json!({"hasImage": true})).await,
        pick(&ids, &[0, 1, 4, 6, 8])
    );
    assert_eq!(
        ids_for(&app, &u, json!({"hasImage": false})).await,
        pick(&ids, &[2, 3, 5, 7, 9])
    );
}

#[tokio::test]
async fn and_or_not_combine() {
    let (app, _admin, u, ids) = seeded().await;
    let cases = [
        (
            json!({"and": [{"action": {"eq": "IMAGINE"}}, {"quota": {"gte": 200}}]}),
            vec![6, 8],
        ),
        (
            json!({"or": [{"action": {"eq": "VIDEO"}}, {"status": {"eq": "FAILURE"}}]}),
            vec![2, 3, 7],
        ),
        (
            json!({"not": {"action": {"eq": "IMAGINE"}}}),
            vec![1, 3, 5, 7, 9],
        ),
        (
            json!({"action": {"eq": "IMAGINE"}, "not": {"or": [{"quota": {"eq": 100}}, {"quota": {"eq": 0}}]}}),
            vec![6, 8],
        ),
        (
            json!({"or": [{"and": [{"finished": true}, {"quota": {"gt": 100}}]}, {"not": {"submitTime": {"lt": 10000}}}]}),
            vec![1, 6, 8, 9],
        ),
    ];
    check(&app, &u, &ids, cases).await;
}

#[tokio::test]
async fn user_and_channel_filters_are_for_admins_only() {
    let (app, admin, u, ids) = seeded().await;
    assert_eq!(
        ids_for(&app, &admin, json!({"channelId": {"eq": 1}})).await,
        pick(&ids, &[0, 2, 5, 8, 10])
    );
    assert_eq!(
        ids_for(&app, &admin, json!({"userId": {"eq": admin.id}})).await,
        pick(&ids, &[10, 11])
    );
    for filter in [
        json!({"channelId": {"eq": 1}}),
        json!({"userId": {"eq": u.id}}),
        json!({"or": [{"userId": {"eq": admin.id}}]}),
    ] {
        let a = app
            .gql_vars(
                Some(&u),
                "query($f: MidjourneyTaskFilter) { midjourneyTasks(filter: $f) { nodes { id } } }",
                json!({ "f": filter }),
            )
            .await;
        assert_eq!(a.codes(), ["FORBIDDEN"], "{filter}");
    }
}

#[tokio::test]
async fn a_user_never_reaches_another_users_task() {
    let (app, admin, u, ids) = seeded().await;
    let admins_task = ids[10];
    assert!(
        ids_for(&app, &u, json!({"id": {"eq": admins_task}}))
            .await
            .is_empty()
    );
    assert!(
        ids_for(
            &app,
            &u,
            json!({"or": [{"id": {"eq": admins_task}}, {"prompt": {"contains": "admin"}}]})
        )
        .await
        .is_empty()
    );
    let all = ids_for(&app, &u, json!({})).await;
    assert_eq!(all.len(), 10);
    let a = app
        .gql(
            &u,
            &format!("{{ midjourneyTask(id: {admins_task}) {{ id }} }}"),
        )
        .await;
    assert_eq!(a.json["data"]["midjourneyTask"], Value::Null);
    let mj = app
        .gql(
            &admin,
            &format!("{{ midjourneyTask(id: {admins_task}) {{ mjId }} }}"),
        )
        .await;
    let mj_id = mj.json["data"]["midjourneyTask"]["mjId"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = app
        .gql_vars(
            Some(&u),
            "query($m: String) { midjourneyTask(mjId: $m) { id } }",
            json!({"m": mj_id}),
        )
        .await;
    assert_eq!(a.json["data"]["midjourneyTask"], Value::Null);
    let a = app
        .gql(
            &u,
            "{ midjourneyTaskStats { count quotaSum byAction { key count } } }",
        )
        .await;
    assert_eq!(a.json["data"]["midjourneyTaskStats"]["count"], 10);
    assert_eq!(a.json["data"]["midjourneyTaskStats"]["quotaSum"], 1450);
    assert!(!a.text.contains("DESCRIBE"));
}

#[tokio::test]
async fn task_lookup_by_id_or_mj_id() {
    let (app, admin, u, ids) = seeded().await;
    let a = app
        .gql(&u, &format!("{{ midjourneyTask(id: {}) {{ id action progress progressPercent finished quota userId }} }}", ids[3]))
        .await;
    assert_eq!(
        a.json["data"]["midjourneyTask"],
        json!({"id": ids[3], "action": "VIDEO", "progress": "45%", "progressPercent": 45, "finished": false, "quota": 300, "userId": u.id})
    );
    for q in [
        "{ midjourneyTask { id } }",
        "{ midjourneyTask(id: 1, mjId: \"x\") { id } }",
    ] {
        assert_eq!(app.gql(&admin, q).await.codes(), ["BAD_FILTER"], "{q}");
    }
    let a = app
        .gql(&admin, "{ midjourneyTask(id: 999999) { id } }")
        .await;
    assert_eq!(a.json["data"]["midjourneyTask"], Value::Null);
}

#[tokio::test]
async fn channel_id_field_is_for_admins_only() {
    let (app, admin, u, ids) = seeded().await;
    let q = format!("{{ midjourneyTask(id: {}) {{ id channelId }} }}", ids[0]);
    let a = app.gql(&admin, &q).await;
    assert_eq!(a.json["data"]["midjourneyTask"]["channelId"], 1);
    let a = app.gql(&u, &q).await;
    assert_eq!(a.codes(), ["FORBIDDEN"]);
    // The rest of the response still arrives.
    assert_eq!(a.json["data"]["midjourneyTask"]["id"], ids[0]);
    assert_eq!(a.json["data"]["midjourneyTask"]["channelId"], Value::Null);
}

#[tokio::test]
async fn derived_task_fields() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let ms = app
        .task(
            Task::of(u.id)
                .submitted(1_700_000_000_000)
                .finished_at(1_700_000_090_000),
        )
        .await;
    let secs = app
        .task(
            Task::of(u.id)
                .submitted(1_700_000_000)
                .finished_at(1_700_000_030),
        )
        .await;
    let unset = app.task(Task::of(u.id).submitted(0).finished_at(0)).await;
    app.sql(&format!("UPDATE midjourneys SET video_urls = '[{{\"url\":\"https://v/1.mp4\"}},\"https://v/2.mp4\"]' WHERE id = {ms}")).await;
    app.sql(&format!(
        "UPDATE midjourneys SET video_urls = 'not json', progress = '7%' WHERE id = {secs}"
    ))
    .await;
    let q = "{ midjourneyTasks { nodes { id submitTime submittedAt finishedAt durationMs videoUrls progressPercent } } }";
    let a = app.gql(&u, q).await;
    let nodes = a.json["data"]["midjourneyTasks"]["nodes"]
        .as_array()
        .unwrap();
    let by_id = |id: i64| nodes.iter().find(|n| n["id"] == id).unwrap().clone();
    let n = by_id(ms);
    assert_eq!(n["submitTime"], 1_700_000_000_000i64);
    assert!(
        n["submittedAt"]
            .as_str()
            .unwrap()
            .starts_with("2023-11-14T22:13:20")
    );
    assert_eq!(n["durationMs"], 90_000);
    assert_eq!(
        n["videoUrls"],
        json!(["https://v/1.mp4", "https://v/2.mp4"])
    );
    let n = by_id(secs);
    assert!(
        n["submittedAt"]
            .as_str()
            .unwrap()
            .starts_with("2023-11-14T22:13:20")
    );
    assert_eq!(n["durationMs"], 30_000);
    assert_eq!(n["videoUrls"], json!([]));
    assert_eq!(n["progressPercent"], 7);
    let n = by_id(unset);
    assert_eq!(n["submittedAt"], Value::Null);
    assert_eq!(n["durationMs"], Value::Null);
}

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
