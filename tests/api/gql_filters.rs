//! `midjourneyTasks` filters: every operator of each filter type, finished/hasImage,
//! and/or/not, and the admin-only filters. Also the shared seed used by the other GraphQL
//! task tests.

use mj_tasks::service::Role;
use serde_json::{Value, json};

use crate::helpers::{Task, TestApp, TestUser, spawn_app};

/// An admin and a user; the user owns ten varied tasks, the admin two. Returns the ids in
/// insertion order.
pub async fn seeded() -> (TestApp, TestUser, TestUser, Vec<i64>) {
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

pub async fn ids_for(app: &TestApp, user: &TestUser, filter: Value) -> Vec<i64> {
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

pub fn pick(ids: &[i64], positions: &[usize]) -> Vec<i64> {
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
        // Exact on every backend, whatever the column's collation.
        (json!({"status": {"eq": "success"}}), vec![]),
    ];
    for (filter, want) in cases {
        let got = ids_for(&app, &u, filter.clone()).await;
        assert_eq!(got, pick(&ids, &want), "{filter}");
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
