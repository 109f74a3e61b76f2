//! The two item shapes: fields, order, types, NULLs, image forwarding.

use mj_tasks::service::Role;
use serde_json::Value;

use crate::helpers::{Task, TestDb, spawn_app, spawn_app_with};

const SELF_FIELDS: [&str; 15] = [
    "id",
    "mj_id",
    "action",
    "prompt",
    "prompt_en",
    "status",
    "progress",
    "image_url",
    "video_url",
    "video_urls",
    "submit_time",
    "start_time",
    "finish_time",
    "fail_reason",
    "quota",
];
const ADMIN_FIELDS: [&str; 22] = [
    "id",
    "user_id",
    "code",
    "mj_id",
    "action",
    "prompt",
    "prompt_en",
    "description",
    "state",
    "status",
    "progress",
    "image_url",
    "video_url",
    "video_urls",
    "buttons",
    "properties",
    "submit_time",
    "start_time",
    "finish_time",
    "fail_reason",
    "channel_id",
    "quota",
];
const NUMBERS: [&str; 8] = [
    "id",
    "user_id",
    "code",
    "submit_time",
    "start_time",
    "finish_time",
    "channel_id",
    "quota",
];

fn keys(item: &Value) -> Vec<&str> {
    item.as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn check_types(item: &Value) {
    for (k, v) in item.as_object().unwrap() {
        if NUMBERS.contains(&k.as_str()) {
            assert!(v.is_i64(), "{k} should be a number: {v}");
        } else {
            assert!(v.is_string(), "{k} should be a string: {v}");
        }
    }
}

#[tokio::test]
async fn self_items_have_the_15_documented_fields_in_order() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    app.task(
        Task::of(u.id)
            .channel(9)
            .submitted(1_640_908_800)
            .image("https://x/y.png"),
    )
    .await;
    let a = app.get_as(&u, "/api/mj/self").await;
    assert!(
        a.content_type.starts_with("application/json"),
        "{}",
        a.content_type
    );
    let data_keys: Vec<&str> = keys(&a.json["data"]);
    assert_eq!(data_keys, ["items", "total", "page", "page_size"]);
    assert_eq!(keys(&a.json), ["success", "message", "data"]);
    let item = &a.items()[0];
    assert_eq!(keys(item), SELF_FIELDS);
    check_types(item);
    assert_eq!(item["progress"], "100%");
    assert_eq!(item["video_urls"], "[]");
    assert_eq!(item["submit_time"], 1_640_908_800);
    assert_eq!(item["image_url"], "https://x/y.png");
    assert!(!a.text.contains("user_id") && !a.text.contains("channel_id"));
}

#[tokio::test]
async fn admin_items_have_every_public_column_in_order() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    app.task(Task::of(admin.id).channel(9)).await;
    let a = app.get_as(&admin, "/api/mj/").await;
    let item = &a.items()[0];
    assert_eq!(keys(item), ADMIN_FIELDS);
    check_types(item);
    assert_eq!(item["channel_id"], 9);
    assert_eq!(item["user_id"], admin.id);
    assert!(!a.text.contains("token_id") && !a.text.contains("billing_channel_id"));
}

#[tokio::test]
async fn null_columns_read_as_empty_strings_and_zeros() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let u = app.user("alice", Role::Common).await;
    app.sql(&format!(
        "INSERT INTO midjourneys (user_id) VALUES ({})",
        u.id
    ))
    .await;
    app.sql("INSERT INTO midjourneys (action) VALUES (NULL)")
        .await;

    let a = app.get_as(&u, "/api/mj/self").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let item = &a.items()[0];
    check_types(item);
    for f in SELF_FIELDS.iter().filter(|f| **f != "id") {
        let v = &item[*f];
        assert!(v == &Value::from("") || v == &Value::from(0), "{f}: {v}");
    }

    let a = app.get_as(&admin, "/api/mj/").await;
    assert_eq!(a.total(), 2);
    let all_null = &a.items()[0];
    check_types(all_null);
    assert_eq!(all_null["user_id"], 0);
    assert_eq!(all_null["channel_id"], 0);
    assert_eq!(all_null["mj_id"], "");
}

#[tokio::test]
async fn image_urls_are_forwarded_when_a_base_is_set() {
    let db = TestDb::new().await;
    let app = spawn_app_with(db, |c| {
        c.image_forward_base = Some("https://gw.example.com/".into());
    })
    .await;
    let u = app.user("alice", Role::Common).await;
    let empty = app.task(Task::of(u.id).mj("no-image")).await;
    let with = app
        .task(Task::of(u.id).mj("m1").image("https://upstream/secret.png"))
        .await;
    let a = app.get_as(&u, "/api/mj/self").await;
    assert_eq!(a.ids(), vec![with, empty]);
    assert_eq!(
        a.items()[0]["image_url"],
        "https://gw.example.com/mj/image/m1"
    );
    assert_eq!(a.items()[1]["image_url"], "");
}

#[tokio::test]
async fn image_urls_are_returned_as_stored_by_default() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    app.task(Task::of(u.id).mj("m1").image("https://upstream/a.png"))
        .await;
    let a = app.get_as(&u, "/api/mj/self").await;
    assert_eq!(a.items()[0]["image_url"], "https://upstream/a.png");
}
