//! Apollo Federation v2: the task type is an entity (keys `id` and `mjId`); a router's
//! `_service { sdl }` and `_entities` requests work, scoped like every lookup.

use mj_tasks::service::Role;
use serde_json::json;

use crate::helpers::{Task, spawn_app};

const ENTITIES: &str = "query($r: [_Any!]!) { _entities(representations: $r) { ... on MidjourneyTask { id mjId status userId } } }";

#[tokio::test]
async fn a_router_reads_the_subgraph_sdl_and_resolves_entities_within_scope() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    let admin = app.user("admin", Role::Admin).await;
    let mine = app
        .task(Task::of(alice.id).mj("fed-a").status("SUCCESS"))
        .await;
    let theirs = app.task(Task::of(bob.id).mj("fed-b")).await;

    // The router composes the supergraph from the subgraph's SDL.
    let sdl = app.gql(&alice, "{ _service { sdl } }").await;
    let sdl = sdl.json["data"]["_service"]["sdl"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        sdl.contains("extend schema @link(\n\turl: \"https://specs.apollo.dev/federation/v2."),
        "{sdl}"
    );
    assert!(
        sdl.contains(
            "type MidjourneyTask implements Node @key(fields: \"id\") @key(fields: \"mjId\")"
        ),
        "{sdl}"
    );

    // Entities by either key, with the client's headers forwarded: another user's task is
    // null, as in every lookup.
    let reps = json!({"r": [
        {"__typename": "MidjourneyTask", "id": mine},
        {"__typename": "MidjourneyTask", "mjId": "fed-a"},
        {"__typename": "MidjourneyTask", "id": theirs},
        {"__typename": "MidjourneyTask", "mjId": "fed-b"},
    ]});
    let a = app.gql_vars(Some(&alice), ENTITIES, reps.clone()).await;
    let e = &a.json["data"]["_entities"];
    assert_eq!(e[0]["mjId"], "fed-a", "{}", a.text);
    assert_eq!(e[1]["id"], json!(mine));
    assert!(e[2].is_null() && e[3].is_null(), "{}", a.text);
    assert!(a.json["errors"].is_null(), "{}", a.text);
    // The admin sees both; without credentials nothing resolves.
    let all = app.gql_vars(Some(&admin), ENTITIES, reps.clone()).await;
    assert_eq!(all.json["data"]["_entities"][3]["userId"], json!(bob.id));
    let anonymous = app.gql_vars(None, ENTITIES, reps).await;
    assert_eq!(anonymous.codes()[0], "UNAUTHENTICATED");

    // Representations are bounded like every lookup.
    let many: Vec<_> = (0..101)
        .map(|i| json!({"__typename": "MidjourneyTask", "id": i}))
        .collect();
    let capped = app
        .gql_vars(Some(&admin), ENTITIES, json!({"r": many}))
        .await;
    assert!(
        capped.codes().contains(&"BAD_FILTER".to_owned()),
        "{}",
        capped.text
    );
}
