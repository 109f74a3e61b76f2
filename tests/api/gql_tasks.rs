//! Scoping through every door (filters, lookups, stats), lookups by id and mjId,
//! admin-only fields, and the derived task fields.

use mj_tasks::service::Role;
use serde_json::{Value, json};

use crate::gql_filters::{ids_for, seeded};
use crate::helpers::{Task, spawn_app};

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

/// A page reads `description` and `channel_id` only when a field shows them: selected
/// (as nodes, as edges, through a fragment) they are there; not selected, the rest of the
/// task is the same.
#[tokio::test]
async fn a_page_reads_the_columns_its_fields_show() {
    let app = spawn_app().await;
    let admin = app.user("boss", Role::Admin).await;
    let id = app
        .task(Task::of(admin.id).mj("cols-1").channel(5).progress("40%"))
        .await;
    app.sql(&format!(
        "UPDATE midjourneys SET description = 'a cat', buttons = '[1]', properties = '{{}}' WHERE id = {id}"
    ))
    .await;
    let queries = [
        "{ midjourneyTasks { nodes { id mjId progress description channelId } } }",
        "{ midjourneyTasks { edges { node { id mjId progress description channelId } } } }",
        "{ midjourneyTasks { nodes { ...T } } } fragment T on MidjourneyTask { id mjId progress description channelId }",
    ];
    for q in queries {
        let a = app.gql(&admin, q).await;
        let data = &a.json["data"]["midjourneyTasks"];
        let node = if data["nodes"].is_array() {
            data["nodes"][0].clone()
        } else {
            data["edges"][0]["node"].clone()
        };
        assert_eq!(node["description"], "a cat", "{q}: {}", a.json);
        assert_eq!(node["channelId"], 5, "{q}: {}", a.json);
        assert_eq!(node["progress"], "40%", "{q}");
    }
    let lean = app
        .gql(&admin, "{ midjourneyTasks { nodes { id mjId progress } } }")
        .await;
    assert_eq!(
        lean.json["data"]["midjourneyTasks"]["nodes"][0],
        json!({"id": id, "mjId": "cols-1", "progress": "40%"})
    );
}
