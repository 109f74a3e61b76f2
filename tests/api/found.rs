//! Regression tests for the defects a review found (issue 7): NULLs under `not`, case
//! folding beyond ASCII, exact matches on MySQL's `_ci` collations, values taken as sent,
//! fragment fan-out, aggregate weights. Each failed before its fix.

use std::time::Duration;

use mj_tasks::service::Role;
use serde_json::{Value, json};

use crate::gql_filters::ids_for;
use crate::helpers::{Task, TestApp, TestUser, spawn_app};

/// A user with four tasks, one of which (`ids[3]`) has every nullable column NULL.
async fn with_null_row() -> (TestApp, TestUser, Vec<i64>) {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let mut ids = vec![
        app.task(Task::of(u.id).quota(10).prompt("Fox").mj("m-1"))
            .await,
        app.task(Task::of(u.id).quota(3).progress("50%").mj("m-2"))
            .await,
        app.task(Task::of(u.id).quota(0).image("https://i/x.png").mj("m-3"))
            .await,
    ];
    let nulled = app.task(Task::of(u.id)).await;
    app.sql(&format!(
        "UPDATE midjourneys SET code = NULL, action = NULL, mj_id = NULL, prompt = NULL, \
         submit_time = NULL, start_time = NULL, finish_time = NULL, image_url = NULL, \
         status = NULL, progress = NULL, fail_reason = NULL, channel_id = NULL, quota = NULL \
         WHERE id = {nulled}"
    ))
    .await;
    ids.push(nulled);
    ids.reverse();
    (app, u, ids)
}

#[tokio::test]
async fn not_treats_a_null_column_as_the_value_it_is_shown_as() {
    let (app, u, ids) = with_null_row().await;
    let nulled = ids[0];
    // Pairs of filters that mean the same for every row, NULL ones included.
    let pairs = [
        (
            json!({"not": {"quota": {"gt": 5}}}),
            json!({"quota": {"lte": 5}}),
        ),
        (
            json!({"not": {"finished": true}}),
            json!({"finished": false}),
        ),
        (
            json!({"not": {"hasImage": true}}),
            json!({"hasImage": false}),
        ),
        (
            json!({"not": {"mjId": {"eq": "m-1"}}}),
            json!({"mjId": {"ne": "m-1"}}),
        ),
        (
            json!({"not": {"prompt": {"contains": "fox"}}}),
            json!({"or": [{"prompt": {"isEmpty": true}}, {"not": {"prompt": {"startsWith": "f"}}}]}),
        ),
        (
            json!({"not": {"quota": {"in": [1, 3]}}}),
            json!({"quota": {"notIn": [1, 3]}}),
        ),
        (
            json!({"not": {"not": {"quota": {"lt": 1}}}}),
            json!({"quota": {"lt": 1}}),
        ),
    ];
    for (a, b) in pairs {
        let got_a = ids_for(&app, &u, a.clone()).await;
        let got_b = ids_for(&app, &u, b.clone()).await;
        assert_eq!(got_a, got_b, "{a} vs {b}");
        assert!(
            got_a.contains(&nulled) || b == json!({"quota": {"lt": 1}}) || got_a.is_empty(),
            "{a}: {got_a:?}"
        );
    }
    assert!(
        ids_for(&app, &u, json!({"not": {"quota": {"gt": 5}}}))
            .await
            .contains(&nulled)
    );
    assert!(
        ids_for(&app, &u, json!({"not": {"finished": true}}))
            .await
            .contains(&nulled)
    );
    assert!(
        ids_for(&app, &u, json!({"quota": {"lt": 1}}))
            .await
            .contains(&nulled)
    );
    // An empty sub-filter matches every row, so its negation matches none.
    assert_eq!(
        ids_for(&app, &u, json!({"not": {}})).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        ids_for(&app, &u, json!({"or": [{}, {"quota": {"gt": 5}}]})).await,
        ids
    );
}

#[tokio::test]
async fn text_filters_fold_case_in_any_language() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let mut ids = Vec::new();
    for p in [
        "Ärger im Büro",
        "KEIN ÄRGER",
        "ärger",
        "Arger ohne Umlaut",
        "Страх и ненависть",
        "СТРАХ",
        "ΟΔΟΣ",
        "日本の狐",
    ] {
        ids.push(app.task(Task::of(u.id).prompt(p)).await);
    }
    let pick = |positions: &[usize]| -> Vec<i64> {
        let mut v: Vec<i64> = positions.iter().map(|&p| ids[p]).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    };
    let cases: [(Value, Vec<i64>); 7] = [
        (json!({"prompt": {"contains": "Ärger"}}), pick(&[0, 1, 2])),
        (json!({"prompt": {"contains": "äRGER"}}), pick(&[0, 1, 2])),
        (json!({"prompt": {"startsWith": "ÄR"}}), pick(&[0, 2])),
        (json!({"prompt": {"contains": "страх"}}), pick(&[4, 5])),
        (json!({"prompt": {"startsWith": "οδοσ"}}), pick(&[6])),
        (json!({"prompt": {"contains": "büro"}}), pick(&[0])),
        (json!({"prompt": {"contains": "狐"}}), pick(&[7])),
    ];
    for (filter, want) in cases {
        assert_eq!(ids_for(&app, &u, filter.clone()).await, want, "{filter}");
    }
}

#[tokio::test]
async fn exact_matches_are_byte_for_byte_on_every_backend() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let u = app.user("alice", Role::Common).await;
    let lower = app.task(Task::of(u.id).mj("abc").status("success")).await;
    let upper = app.task(Task::of(u.id).mj("ABC").status("SUCCESS")).await;
    let spaced = app.task(Task::of(u.id).mj("abc ").status("SUCCESS ")).await;
    for (filter, want) in [
        (json!({"mjId": {"eq": "abc"}}), vec![lower]),
        (json!({"mjId": {"eq": "abc "}}), vec![spaced]),
        (json!({"mjId": {"in": ["ABC", "x"]}}), vec![upper]),
        (json!({"mjId": {"ne": "abc"}}), vec![spaced, upper]),
        (json!({"mjId": {"notIn": ["abc", "ABC"]}}), vec![spaced]),
        (json!({"status": {"eq": "success"}}), vec![lower]),
        (json!({"status": {"eq": "SUCCESS"}}), vec![upper]),
    ] {
        assert_eq!(ids_for(&app, &u, filter.clone()).await, want, "{filter}");
    }
    for (q, want) in [
        ("abc", vec![lower]),
        ("ABC", vec![upper]),
        ("abc%20", vec![spaced]),
    ] {
        let a = app.get_as(&u, &format!("/api/mj/self?mj_id={q}")).await;
        assert_eq!(a.ids(), want, "mj_id={q}");
    }
    // Statistics group and count byte for byte too.
    let stats = app
        .gql(
            &admin,
            "{ midjourneyTaskStats { successCount byStatus { key count } } }",
        )
        .await;
    assert_eq!(
        stats.json["data"]["midjourneyTaskStats"]["successCount"], 1,
        "{}",
        stats.text
    );
    assert_eq!(
        stats.json["data"]["midjourneyTaskStats"]["byStatus"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "{}",
        stats.text
    );
}

#[tokio::test]
async fn an_access_token_matches_only_in_its_exact_letter_case() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    assert_eq!(app.get_as(&u, "/api/mj/self").await.json["success"], true);
    let swapped: String = u
        .token
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    assert_ne!(swapped, u.token);
    let forged = TestUser {
        id: u.id,
        token: swapped,
    };
    let a = app
        .get_as_with(&forged, "/api/mj/self", &[("Accept-Language", "en")])
        .await;
    assert_eq!(a.json["success"], false, "{}", a.text);
    assert_eq!(a.message(), "Unauthorized, invalid access token");
    // One changed letter is as wrong as all of them.
    let mut one = u.token.clone().into_bytes();
    one[0] = if one[0].is_ascii_lowercase() {
        one[0].to_ascii_uppercase()
    } else if one[0].is_ascii_uppercase() {
        one[0].to_ascii_lowercase()
    } else {
        b'z'
    };
    let forged = TestUser {
        id: u.id,
        token: String::from_utf8(one).unwrap(),
    };
    assert_eq!(
        app.get_as(&forged, "/api/mj/self").await.json["success"],
        false
    );
}

#[tokio::test]
async fn rest_takes_values_as_sent_and_the_first_of_a_repeated_parameter() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let plain = app
        .task(Task::of(u.id).mj("abc").channel(3).submitted(50))
        .await;
    // A leading space is part of the value: nothing has that mj_id.
    assert_eq!(
        app.get_as(&u, "/api/mj/self?mj_id=%20abc").await.ids(),
        Vec::<i64>::new()
    );
    assert_eq!(
        app.get_as(&u, "/api/mj/self?mj_id=abc").await.ids(),
        vec![plain]
    );
    // The first occurrence counts, as in the legacy gateway; an empty one means no filter.
    assert_eq!(
        app.get_as(&u, "/api/mj/self?mj_id=zzz&mj_id=abc")
            .await
            .ids(),
        Vec::<i64>::new()
    );
    assert_eq!(
        app.get_as(&u, "/api/mj/self?mj_id=abc&mj_id=zzz")
            .await
            .ids(),
        vec![plain]
    );
    assert_eq!(
        app.get_as(&u, "/api/mj/self?mj_id=&mj_id=zzz").await.ids(),
        vec![plain]
    );
    // An integer with spaces around it is not an integer.
    let a = app.get_as(&u, "/api/mj/self?start_timestamp=%2010").await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.message().contains("start_timestamp"), "{}", a.text);
    // NUL cannot be stored the same way on every backend: refused, not a 500.
    let a = app.get_as(&u, "/api/mj/self?mj_id=a%00b").await;
    assert_eq!(a.status, 400, "{}", a.text);
}

/// A document of about 1 KB whose fragments each spread the next one twice: 2^levels
/// field selections once expanded.
fn fan_out_document(levels: usize) -> String {
    let mut doc = String::from("query { ...F0 }\n");
    for i in 0..levels {
        doc.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    doc.push_str(&format!(
        "fragment F{levels} on Query {{ viewer {{ id }} }}\n"
    ));
    doc
}

// Several worker threads, so the timeout below can fire even if a request monopolises one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_fan_out_is_refused_without_expanding_it() {
    let app = spawn_app().await;
    let doc = fan_out_document(30);
    assert!(doc.len() < 2048);
    // Without credentials: the check must come before anything that costs.
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        app.gql_vars(None, &doc, Value::Null),
    )
    .await
    .expect("the fan-out document was answered within 30 s");
    assert_eq!(answer.codes(), vec!["QUERY_TOO_COMPLEX"], "{}", answer.text);
    // A few levels expand to a handful of fields and run.
    let u = app.user("alice", Role::Common).await;
    let small = app.gql(&u, &fan_out_document(3)).await;
    assert!(small.json.get("errors").is_none(), "{}", small.text);
    assert_eq!(small.json["data"]["viewer"]["id"], u.id);
}

#[tokio::test]
async fn operations_of_one_document_are_measured_together() {
    let app = spawn_app().await;
    // Each operation alone expands to 1,024 fields, under the limit; validation would walk
    // all 60 of them.
    let mut doc = fan_out_document(9).replace("query { ...F0 }\n", "");
    for i in 0..60 {
        doc.push_str(&format!("query q{i} {{ ...F0 }}\n"));
    }
    let a = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": doc, "operationName": "q1"}))
        .send()
        .await
        .unwrap();
    let a = crate::helpers::into_answer(a).await;
    assert_eq!(a.codes(), vec!["QUERY_TOO_COMPLEX"], "{}", a.text);
    // Refused by the linear measure, before validation walks the operations (the
    // complexity limit would refuse it too, but only after that walk).
    assert!(
        a.json["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fragments are expanded")),
        "{}",
        a.text
    );
}

#[tokio::test]
async fn hundreds_of_aliased_counts_are_refused_before_any_sql() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    app.task(Task::of(u.id)).await;
    let before = app.service.query_counts();
    let mut doc = String::from("{");
    for i in 0..200 {
        doc.push_str(&format!(
            " c{i}: midjourneyTasks(page: {{offset: {{pageSize: 1}}}}) {{ totalCount }}"
        ));
    }
    doc.push('}');
    let a = app.gql(&u, &doc).await;
    assert_eq!(a.codes(), vec!["QUERY_TOO_COMPLEX"], "{}", a.text);
    let mut stats = String::from("{");
    for i in 0..11 {
        stats.push_str(&format!(" s{i}: midjourneyTaskStats {{ count }}"));
    }
    stats.push('}');
    let a = app.gql(&u, &stats).await;
    assert_eq!(a.codes(), vec!["QUERY_TOO_COMPLEX"], "{}", a.text);
    assert_eq!(app.service.query_counts(), before, "no SQL ran");
    // A dashboard's worth still runs.
    let a = app
        .gql(
            &u,
            "{ midjourneyTasks { totalCount pageInfo { totalPages } nodes { id } } \
               midjourneyTaskStats { count quotaSum byStatus { key } byAction { key } byDay(days: 7) { count } } }",
        )
        .await;
    assert!(a.json.get("errors").is_none(), "{}", a.text);
}
