//! Persisted queries: Apollo's automatic protocol (hash first, the document on a miss, by
//! POST and by GET) and trusted-documents mode, where only listed documents run and anything
//! else is refused before parsing.

use mj_tasks::graphql::persisted::hash;
use mj_tasks::service::Role;
use serde_json::{Value, json};

use crate::helpers::{Task, TestApp, TestDb, TestUser, spawn_app, spawn_app_with};

const DOC: &str = "query Mine { midjourneyTasks { totalCount nodes { mjId } } }";

async fn post(app: &TestApp, user: &TestUser, body: Value) -> Value {
    app.client
        .post(app.url("/graphql"))
        .header("Authorization", &user.token)
        .header("New-Api-User", user.id.to_string())
        .json(&body)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

fn by_hash(h: &str) -> Value {
    json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": h}}})
}

fn code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn automatic_persisted_queries_hash_first_then_the_document() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    app.task(Task::of(alice.id).mj("apq-1")).await;
    let h = hash(DOC);
    let miss = post(&app, &alice, by_hash(&h)).await;
    assert_eq!(code(&miss), "PERSISTED_QUERY_NOT_FOUND", "{miss}");
    assert_eq!(miss["errors"][0]["message"], "PersistedQueryNotFound");
    let mut full = by_hash(&h);
    full["query"] = DOC.into();
    let first = post(&app, &alice, full).await;
    assert_eq!(
        first["data"]["midjourneyTasks"]["nodes"][0]["mjId"], "apq-1",
        "{first}"
    );
    let hit = post(&app, &alice, by_hash(&h)).await;
    assert_eq!(hit, first);
    // By GET, as Apollo Client sends them.
    let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": h}}).to_string();
    let get: Value = app
        .client
        .get(app.url("/graphql"))
        .query(&[("extensions", ext.as_str())])
        .header("Authorization", &alice.token)
        .header("New-Api-User", alice.id.to_string())
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(get, first);
    // A document with someone else's hash is refused.
    let mut wrong = by_hash(&h);
    wrong["query"] = "{ __typename }".into();
    assert_eq!(
        code(&post(&app, &alice, wrong).await),
        "PERSISTED_QUERY_HASH_MISMATCH"
    );
    let mut bad = by_hash("xyz");
    bad["query"] = DOC.into();
    assert_eq!(code(&post(&app, &alice, bad).await), "BAD_REQUEST");
}

#[tokio::test]
async fn trusted_documents_mode_runs_only_listed_documents() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("trusted.json");
    std::fs::write(&file, json!({ hash(DOC): DOC }).to_string()).expect("write");
    let path = file.clone();
    let app = spawn_app_with(TestDb::new().await, move |c| {
        c.trusted_documents = Some(path);
    })
    .await;
    let alice = app.user("alice", Role::Common).await;
    app.task(Task::of(alice.id).mj("trusted-1")).await;
    let listed = post(&app, &alice, by_hash(&hash(DOC))).await;
    assert_eq!(
        listed["data"]["midjourneyTasks"]["totalCount"], 1,
        "{listed}"
    );
    let in_full = post(&app, &alice, json!({"query": DOC})).await;
    assert_eq!(in_full, listed);
    // Anything else is refused on its hash: even a document that would not parse gets the
    // refusal, not a parse error.
    let other = post(
        &app,
        &alice,
        json!({"query": "{ midjourneyTasks { totalCount } }"}),
    )
    .await;
    assert_eq!(code(&other), "PERSISTED_QUERY_NOT_ALLOWED", "{other}");
    let broken = post(&app, &alice, json!({"query": "{ this is not GraphQL"})).await;
    assert_eq!(code(&broken), "PERSISTED_QUERY_NOT_ALLOWED", "{broken}");
    let unknown = post(&app, &alice, by_hash(&hash("{ __typename }"))).await;
    assert_eq!(code(&unknown), "PERSISTED_QUERY_NOT_FOUND");
    // Registering a new document by sending it with its hash is not possible either.
    let mut register = by_hash(&hash("{ __typename }"));
    register["query"] = "{ __typename }".into();
    assert_eq!(
        code(&post(&app, &alice, register).await),
        "PERSISTED_QUERY_NOT_ALLOWED"
    );
}
