//! Relay's Global Object Identification: the `Node` interface, `node(id:)` and `nodes(ids:)`,
//! scoped like every lookup.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mj_tasks::service::Role;
use serde_json::{Value, json};

use crate::helpers::{Task, spawn_app};

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename nodeId ... on MidjourneyTask { id mjId userId } } }";
const NODES: &str =
    "query($ids: [ID!]!) { nodes(ids: $ids) { nodeId ... on MidjourneyTask { id mjId } } }";

/// A global id made the way `graphql-relay` makes them, independently of the server's code.
fn global(type_name: &str, id: i64) -> String {
    STANDARD.encode(format!("{type_name}:{id}"))
}

#[tokio::test]
async fn node_refetches_what_node_id_names_and_another_users_task_is_null() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    let admin = app.user("admin", Role::Admin).await;
    let mine = app.task(Task::of(alice.id).mj("relay-a")).await;
    let theirs = app.task(Task::of(bob.id).mj("relay-b")).await;

    // Every task carries its global id, wherever it is read.
    let list = app
        .gql(&alice, "{ midjourneyTasks { nodes { id nodeId } } }")
        .await;
    let node = &list.json["data"]["midjourneyTasks"]["nodes"][0];
    assert_eq!(node["id"], json!(mine), "{}", list.text);
    let my_id = node["nodeId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(my_id, global("MidjourneyTask", mine));
    let one = app
        .gql(
            &alice,
            &format!("{{ midjourneyTask(id: {mine}) {{ nodeId }} }}"),
        )
        .await;
    assert_eq!(one.json["data"]["midjourneyTask"]["nodeId"], json!(my_id));

    // node(id:) gives the same object back, with its type.
    let back = app
        .gql_vars(Some(&alice), NODE, json!({ "id": my_id }))
        .await;
    let n = &back.json["data"]["node"];
    assert_eq!(n["__typename"], "MidjourneyTask", "{}", back.text);
    assert_eq!(n["nodeId"], json!(my_id));
    assert_eq!(n["id"], json!(mine));
    assert_eq!(n["mjId"], "relay-a");

    // Another user's task reads as null, without an error; the admin reads it.
    let their_id = global("MidjourneyTask", theirs);
    let hidden = app
        .gql_vars(Some(&alice), NODE, json!({ "id": their_id }))
        .await;
    assert_eq!(hidden.json["data"]["node"], Value::Null, "{}", hidden.text);
    assert!(hidden.json["errors"].is_null(), "{}", hidden.text);
    let seen = app
        .gql_vars(Some(&admin), NODE, json!({ "id": their_id }))
        .await;
    assert_eq!(seen.json["data"]["node"]["userId"], json!(bob.id));

    // A well-formed id of no task is null too; without credentials nothing resolves.
    let absent = app
        .gql_vars(
            Some(&admin),
            NODE,
            json!({ "id": global("MidjourneyTask", theirs + 1000) }),
        )
        .await;
    assert_eq!(absent.json["data"]["node"], Value::Null, "{}", absent.text);
    let anonymous = app.gql_vars(None, NODE, json!({ "id": my_id })).await;
    assert_eq!(anonymous.codes(), ["UNAUTHENTICATED"], "{}", anonymous.text);
}

#[tokio::test]
async fn nodes_answers_in_the_order_asked_with_nulls_where_nothing_is_visible() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    let a1 = app.task(Task::of(alice.id).mj("n-a1")).await;
    let a2 = app.task(Task::of(alice.id).mj("n-a2")).await;
    let b1 = app.task(Task::of(bob.id).mj("n-b1")).await;
    let before = app.service.query_counts().rows;

    let ids = [a2, b1, a1, a2, b1 + 1000].map(|id| global("MidjourneyTask", id));
    let answer = app
        .gql_vars(Some(&alice), NODES, json!({ "ids": ids }))
        .await;
    let got = answer.json["data"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", answer.text))
        .iter()
        .map(|n| n["mjId"].as_str().map(str::to_owned))
        .collect::<Vec<_>>();
    let want = [Some("n-a2"), None, Some("n-a1"), Some("n-a2"), None];
    assert_eq!(got, want.map(|s| s.map(str::to_owned)), "{}", answer.text);
    // One query for the whole list.
    assert_eq!(app.service.query_counts().rows - before, 1);

    let empty = app
        .gql_vars(Some(&alice), NODES, json!({ "ids": [] }))
        .await;
    assert_eq!(empty.json["data"]["nodes"], json!([]), "{}", empty.text);
}

#[tokio::test]
async fn texts_that_are_not_global_ids_and_too_many_ids_are_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let mine = app.task(Task::of(alice.id).mj("bad-ids")).await;

    for text in [
        "42".to_owned(),
        global("User", alice.id),
        global("MidjourneyTask", mine)
            .trim_end_matches('=')
            .to_owned(),
        STANDARD.encode(format!("MidjourneyTask:0{mine}")),
        "A".repeat(10_000),
    ] {
        let answer = app
            .gql_vars(Some(&alice), NODE, json!({ "id": text }))
            .await;
        assert_eq!(answer.codes(), ["BAD_FILTER"], "{text}: {}", answer.text);
        assert!(
            answer.text.contains("not a node id of this API"),
            "{}",
            answer.text
        );
    }
    // One bad id fails the list: the caller learns which input was wrong instead of a null.
    let mixed = app
        .gql_vars(
            Some(&alice),
            NODES,
            json!({ "ids": [global("MidjourneyTask", mine), "nope"] }),
        )
        .await;
    assert_eq!(mixed.codes(), ["BAD_FILTER"], "{}", mixed.text);

    // Ids count against the operation's 100 lookups, with midjourneyTask and node.
    let ids: Vec<String> = (0..60)
        .map(|i| global("MidjourneyTask", mine + i))
        .collect();
    let twice = app
        .gql_vars(
            Some(&alice),
            "query($ids: [ID!]!) { a: nodes(ids: $ids) { nodeId } b: nodes(ids: $ids) { nodeId } }",
            json!({ "ids": ids }),
        )
        .await;
    assert!(
        twice.codes().contains(&"BAD_FILTER".to_owned()),
        "{}",
        twice.text
    );
    let within = app
        .gql_vars(Some(&alice), NODES, json!({ "ids": &ids[..50] }))
        .await;
    assert!(within.json["errors"].is_null(), "{}", within.text);
}

#[tokio::test]
async fn the_schema_has_what_relay_asks_for() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    // The interface: one non-null ID field, implemented by both logs' task types.
    let node = app
        .gql(
            &alice,
            r#"{ __type(name: "Node") { kind fields { name type { kind ofType { name kind } } }
                 possibleTypes { name } } }"#,
        )
        .await;
    assert_eq!(
        node.json["data"]["__type"],
        json!({
            "kind": "INTERFACE",
            "fields": [{"name": "nodeId", "type": {"kind": "NON_NULL", "ofType": {"name": "ID", "kind": "SCALAR"}}}],
            "possibleTypes": [{"name": "MidjourneyTask"}, {"name": "Task"}]
        }),
        "{}",
        node.text
    );
    // The root field takes exactly one argument, a non-null ID named id.
    let root = app
        .gql(
            &alice,
            "{ __schema { queryType { fields { name args { name type { kind ofType { name } } } type { name } } } } }",
        )
        .await;
    let fields = root.json["data"]["__schema"]["queryType"]["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let node_field = fields
        .iter()
        .find(|f| f["name"] == "node")
        .unwrap_or_else(|| panic!("{}", root.text));
    assert_eq!(
        node_field["args"],
        json!([{"name": "id", "type": {"kind": "NON_NULL", "ofType": {"name": "ID"}}}])
    );
    assert_eq!(node_field["type"]["name"], "Node");
}
