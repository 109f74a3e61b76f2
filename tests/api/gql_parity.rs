//! Parity between the doors: for a table of legacy REST queries, the GraphQL equivalent
//! returns the same rows in the same order, with the same total and field values.

use mj_tasks::service::Role;
use serde_json::{Value, json};

use crate::helpers::{Task, TestApp, TestUser, spawn_app};

/// REST query string → GraphQL filter/page with the same meaning.
fn graphql_equivalent(rest: &str) -> (Value, i64, i64) {
    let mut filter = serde_json::Map::new();
    let mut page = 1;
    let mut size = 20;
    let mut submit = serde_json::Map::new();
    for (k, v) in rest.split('&').filter_map(|kv| kv.split_once('=')) {
        match k {
            "p" => page = v.parse().unwrap(),
            "page_size" => size = v.parse().unwrap(),
            "mj_id" => {
                filter.insert("mjId".into(), json!({"eq": v}));
            }
            "channel_id" => {
                filter.insert("channelId".into(), json!({"eq": v.parse::<i64>().unwrap()}));
            }
            "start_timestamp" => {
                submit.insert("gte".into(), json!(v.parse::<i64>().unwrap()));
            }
            "end_timestamp" => {
                submit.insert("lte".into(), json!(v.parse::<i64>().unwrap()));
            }
            _ => unreachable!("{k}"),
        }
    }
    if !submit.is_empty() {
        filter.insert("submitTime".into(), Value::Object(submit));
    }
    (Value::Object(filter), page, size)
}

async fn parity(app: &TestApp, user: &TestUser, route: &str, cases: &[&str]) {
    for rest in cases {
        let r = app.get_as(user, &format!("{route}?{rest}")).await;
        assert_eq!(r.json["success"], true, "{rest}: {}", r.text);
        let (filter, page, size) = graphql_equivalent(rest);
        let g = app
            .gql_vars(
                Some(user),
                "query($f: MidjourneyTaskFilter, $p: Int!, $s: Int!) { midjourneyTasks(filter: $f, page: {offset: {page: $p, pageSize: $s}}) { totalCount nodes { id mjId action prompt promptEn status progress imageUrl videoUrl submitTime startTime finishTime failReason quota } } }",
                json!({"f": filter, "p": page, "s": size}),
            )
            .await;
        assert!(g.json.get("errors").is_none(), "{rest}: {}", g.text);
        assert_eq!(g.node_ids(), r.ids(), "{rest}");
        assert_eq!(
            g.json["data"]["midjourneyTasks"]["totalCount"],
            r.total(),
            "{rest}"
        );
        for (node, item) in g.json["data"]["midjourneyTasks"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .zip(r.items())
        {
            for (gf, rf) in [
                ("mjId", "mj_id"),
                ("action", "action"),
                ("prompt", "prompt"),
                ("promptEn", "prompt_en"),
                ("status", "status"),
                ("progress", "progress"),
                ("imageUrl", "image_url"),
                ("videoUrl", "video_url"),
                ("submitTime", "submit_time"),
                ("startTime", "start_time"),
                ("finishTime", "finish_time"),
                ("failReason", "fail_reason"),
                ("quota", "quota"),
            ] {
                assert_eq!(node[gf], item[rf], "{rest}: {gf}");
            }
        }
    }
}

#[tokio::test]
async fn rest_and_graphql_return_the_same_rows_for_the_same_inputs() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let u = app.user("alice", Role::Common).await;
    for i in 0..45i64 {
        let owner = if i % 3 == 0 { admin.id } else { u.id };
        let mj = format!("mj-{}", i % 9);
        app.task(
            Task::of(owner)
                .mj(&mj)
                .channel(i % 4)
                .submitted(1000 + i * 100)
                .quota(i),
        )
        .await;
    }
    let admin_cases = [
        "p=1",
        "p=2",
        "p=3&page_size=7",
        "page_size=100",
        "mj_id=mj-3",
        "mj_id=mj-3&p=2&page_size=2",
        "channel_id=2",
        "channel_id=2&page_size=5&p=2",
        "start_timestamp=2000",
        "end_timestamp=3000",
        "start_timestamp=2000&end_timestamp=3000",
        "channel_id=1&start_timestamp=1500&end_timestamp=4200",
        "mj_id=nope",
        "p=9&page_size=10",
    ];
    parity(&app, &admin, "/api/mj/", &admin_cases).await;
    let self_cases = [
        "p=1",
        "p=2&page_size=5",
        "page_size=100",
        "mj_id=mj-4",
        "start_timestamp=3000",
        "end_timestamp=2500",
        "start_timestamp=1500&end_timestamp=4000&page_size=3",
    ];
    parity(&app, &u, "/api/mj/self", &self_cases).await;
}
