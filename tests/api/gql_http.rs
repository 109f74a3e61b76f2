//! GraphQL over HTTP: credentials, introspection, GET and POST, batches, malformed
//! requests, the committed SDL.

use mj_tasks::service::Role;
use serde_json::{Value, json};

use crate::helpers::{Task, TestDb, into_answer, spawn_app, spawn_app_with};

#[tokio::test]
async fn introspection_works_without_credentials_but_data_needs_them() {
    let app = spawn_app().await;
    let a = app
        .gql_vars(
            None,
            "{ __schema { queryType { name } } __type(name: \"MidjourneyTask\") { name } }",
            Value::Null,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["data"]["__schema"]["queryType"]["name"], "Query");
    assert!(a.json.get("errors").is_none(), "{}", a.text);

    for q in [
        "{ viewer { id } }",
        "{ midjourneyTasks { nodes { id } } }",
        "{ midjourneyTask(id: 1) { id } }",
        "{ midjourneyTaskStats { count } }",
    ] {
        let a = app.gql_vars(None, q, Value::Null).await;
        assert_eq!(a.codes(), ["UNAUTHENTICATED"], "{q}: {}", a.text);
    }
    let bad = app
        .client
        .post(app.url("/graphql"))
        .header("Authorization", "Bearer nope")
        .header("New-Api-User", "1")
        .header("Accept-Language", "en")
        .json(&json!({"query": "{ viewer { id } }"}))
        .send()
        .await
        .unwrap();
    let a = into_answer(bad).await;
    assert_eq!(a.codes(), ["UNAUTHENTICATED"]);
    assert_eq!(
        a.json["errors"][0]["message"],
        "Unauthorized, invalid access token"
    );
}

#[tokio::test]
async fn banned_users_and_guests_are_forbidden() {
    let app = spawn_app().await;
    let guest = app.user("guest", Role::Guest).await;
    assert_eq!(
        app.gql(&guest, "{ viewer { id } }").await.codes(),
        ["FORBIDDEN"]
    );
    let u = app.user("alice", Role::Common).await;
    app.sql(&format!("UPDATE users SET status = 2 WHERE id = {}", u.id))
        .await;
    assert_eq!(
        app.gql(&u, "{ viewer { id } }").await.codes(),
        ["FORBIDDEN"]
    );
}

#[tokio::test]
async fn viewer_describes_the_caller() {
    let app = spawn_app().await;
    let admin = app.user("boss", Role::Admin).await;
    let a = app
        .gql(&admin, "{ viewer { id username role isAdmin } }")
        .await;
    assert_eq!(
        a.json["data"]["viewer"],
        json!({"id": admin.id, "username": "boss", "role": "ADMIN", "isAdmin": true})
    );
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let app = spawn_app_with(TestDb::new().await, |c| c.no_introspection = true).await;
    let a = app
        .gql_vars(
            None,
            "{ __schema { queryType { name } } __type(name: \"Query\") { name } }",
            Value::Null,
        )
        .await;
    assert_eq!(a.json["data"]["__schema"], Value::Null, "{}", a.text);
    assert_eq!(a.json["data"]["__type"], Value::Null, "{}", a.text);
    assert!(!a.text.contains("midjourneyTasks"));
}

#[tokio::test]
async fn get_requests_execute_queries_but_never_mutations() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let t = app.task(Task::of(u.id)).await;
    let q = "{ midjourneyTasks { nodes { id } } }";
    let resp = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", q)])
        .header("Authorization", format!("Bearer {}", u.token))
        .header("New-Api-User", u.id.to_string())
        .send()
        .await
        .unwrap();
    let a = into_answer(resp).await;
    assert_eq!(a.node_ids(), vec![t]);
    let resp = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "mutation { anything }")])
        .send()
        .await
        .unwrap();
    let a = into_answer(resp).await;
    assert_eq!(a.codes(), ["METHOD_NOT_ALLOWED"], "{}", a.text);
}

#[tokio::test]
async fn browsers_get_the_playground_with_its_assets_served_locally() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/graphql"))
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = resp.text().await.unwrap();
    assert!(page.contains("GraphiQL") && page.contains("New-Api-User"));
    assert!(!page.contains("https://"), "no external assets");
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
    ] {
        assert!(
            page.contains(&format!("/graphql/assets/{asset}")),
            "{asset} linked"
        );
        let resp = app
            .client
            .get(app.url(&format!("/graphql/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        assert!(
            resp.bytes().await.unwrap().len() > 1000,
            "{asset} has content"
        );
    }
}

#[tokio::test]
async fn malformed_requests_are_4xx() {
    let app = spawn_app().await;
    let post = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let a = into_answer(post("{not json", "application/json").await.unwrap()).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.codes(), ["BAD_REQUEST"]);
    let a = into_answer(post("{\"nope\": 1}", "application/json").await.unwrap()).await;
    assert_eq!(a.status, 400);
    let a = into_answer(post("{ viewer { id } }", "text/plain").await.unwrap()).await;
    assert_eq!(a.status, 415);
    let resp = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(resp.status(), 400, "GET without a query");

    // A syntax error: 200 with errors for application/json, 400 for the new media type.
    let a = app.gql_vars(None, "{ viewer { id ", Value::Null).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.codes(), ["GRAPHQL_VALIDATION_FAILED"]);
    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("Accept", "application/graphql-response+json")
        .json(&json!({"query": "{ viewer { id "}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/graphql-response+json")
    );
    let a = app.gql_vars(None, "{ noSuchField }", Value::Null).await;
    assert_eq!(a.codes(), ["GRAPHQL_VALIDATION_FAILED"]);
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused() {
    let app = spawn_app().await;
    let padding = " ".repeat(70 * 1024);
    let resp = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": format!("{{ __typename {padding}}}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let small = " ".repeat(60 * 1024);
    let resp = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": format!("{{ __typename {small}}}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn batches_hold_at_most_five_operations() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let op = json!({"query": "{ viewer { id } }"});
    let send = |n: usize| {
        app.client
            .post(app.url("/graphql"))
            .header("Authorization", format!("Bearer {}", u.token))
            .header("New-Api-User", u.id.to_string())
            .json(&Value::Array(vec![op.clone(); n]))
            .send()
    };
    let a = into_answer(send(5).await.unwrap()).await;
    assert_eq!(a.status, 200);
    let answers = a.json.as_array().expect("a batch answer");
    assert_eq!(answers.len(), 5);
    assert!(answers.iter().all(|r| r["data"]["viewer"]["id"] == u.id));
    let a = into_answer(send(6).await.unwrap()).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.codes(), ["BATCH_TOO_LARGE"]);
    let a = into_answer(send(0).await.unwrap()).await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn committed_sdl_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql is committed");
    let current = mj_tasks::graphql::sdl();
    assert!(
        committed == current,
        "schema.graphql differs from the code's schema: run `cargo run -- schema > schema.graphql` and review the diff"
    );
}

#[test]
fn sdl_descriptions_are_not_hard_wrapped() {
    // Inside a description, a line that follows another non-empty line must start a list
    // item (a paragraph is one line: a break mid-sentence shows in every docs viewer).
    let sdl = mj_tasks::graphql::sdl();
    let mut inside = false;
    let mut previous = String::new();
    let mut wrapped = Vec::new();
    for line in sdl.lines() {
        let text = line.trim();
        if text.starts_with("\"\"\"") {
            inside = !inside || text.len() > 3 && text.ends_with("\"\"\"");
            previous.clear();
            continue;
        }
        if inside {
            let list = text.starts_with("- ") || text.starts_with("* ") || text.starts_with('|');
            if !previous.is_empty() && !text.is_empty() && !list {
                wrapped.push(format!("{previous} / {text}"));
            }
            previous = text.to_owned();
        }
    }
    // async-graphql's own description of the federation `_Any` scalar is the one exception.
    wrapped.retain(|w| !w.contains("representations of entities"));
    assert!(
        wrapped.is_empty(),
        "hard-wrapped descriptions: {wrapped:#?}"
    );
}

#[tokio::test]
async fn every_type_field_and_argument_is_described() {
    let app = spawn_app().await;
    let q = "{ __schema { types { name description kind fields { name description args { name description } } inputFields { name description } enumValues { name description } } } }";
    let a = app.gql_vars(None, q, Value::Null).await;
    let mut missing = Vec::new();
    for t in a.json["data"]["__schema"]["types"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        // Introspection's and Apollo Federation's own types (`__…`, `_Any`, `_Entity`,
        // `_Service`) come from the library.
        if name.starts_with('_') || ["String", "Int", "Boolean", "Float", "ID"].contains(&name) {
            continue;
        }
        if t["description"].is_null() {
            missing.push(name.to_owned());
        }
        for list in ["fields", "inputFields", "enumValues"] {
            for f in t[list].as_array().into_iter().flatten() {
                if f["name"].as_str().is_some_and(|n| n.starts_with('_')) {
                    continue;
                }
                if f["description"].is_null() {
                    missing.push(format!("{name}.{}", f["name"]));
                }
                for arg in f["args"].as_array().into_iter().flatten() {
                    if arg["description"].is_null() {
                        missing.push(format!("{name}.{}({})", f["name"], arg["name"]));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "undescribed: {missing:?}");
}

#[tokio::test]
async fn committed_openapi_matches_the_code_and_is_served() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json is committed");
    assert!(
        committed == mj_tasks::rest::openapi::pretty(),
        "openapi.json differs from the code's document: run `cargo run -- openapi > openapi.json` and review the diff"
    );
    let app = spawn_app().await;
    let served = app.get_with("/openapi.json", &[]).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.text, committed);
    // The item schemas hold exactly the fields the routes answer with.
    let alice = app.user("alice", Role::Common).await;
    app.task(crate::helpers::Task::of(alice.id).mj("o-1")).await;
    let page = app.get_as(&alice, "/api/mj/self").await;
    let item = page.items()[0].as_object().expect("an item").clone();
    let doc: Value = serde_json::from_str(&committed).expect("json");
    let mut documented: Vec<&String> = doc["components"]["schemas"]["SelfItem"]["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .collect();
    let mut answered: Vec<&String> = item.keys().collect();
    documented.sort();
    answered.sort();
    assert_eq!(documented, answered);
    assert_eq!(doc["openapi"], "3.1.0");
}
