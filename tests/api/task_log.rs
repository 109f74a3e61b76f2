//! new-api's task log (`tasks`) through `GET /api/task/self` and `GET /api/task/`: every rule
//! of `../shared/spec/task-log-contract.md`, byte for byte, on the backend under test.

use serde_json::Value;

use crate::helpers::{Backend, TestApp, spawn_app};

/// A row of `tasks`, every column optional (NULL when unset).
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub id: i64,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub task_id: Option<&'static str>,
    pub platform: Option<&'static str>,
    pub user_id: Option<i64>,
    pub group: Option<&'static str>,
    pub channel_id: Option<i64>,
    pub quota: Option<i64>,
    pub action: Option<&'static str>,
    pub status: Option<&'static str>,
    pub fail_reason: Option<&'static str>,
    pub submit_time: Option<i64>,
    pub start_time: Option<i64>,
    pub finish_time: Option<i64>,
    pub progress: Option<&'static str>,
    pub properties: Option<&'static str>,
    pub private_data: Option<&'static str>,
    pub data: Option<&'static str>,
    /// SQLite: store the JSON columns as TEXT rather than new-api's BLOBs.
    pub json_as_text: bool,
}

/// A SQL string literal (MySQL also treats backslashes as escapes).
fn quote_for(backend: Backend, s: &str) -> String {
    let s = s.replace('\'', "''");
    if backend == Backend::MySql {
        format!("'{}'", s.replace('\\', "\\\\"))
    } else {
        format!("'{s}'")
    }
}

impl Row {
    pub fn of(id: i64, user: i64) -> Row {
        Row {
            id,
            user_id: Some(user),
            ..Default::default()
        }
    }

    /// The INSERT statement for `backend` (JSON columns as new-api's driver writes them).
    pub fn insert_sql(&self, backend: Backend) -> String {
        let group = if backend == Backend::MySql {
            "`group`"
        } else {
            "\"group\""
        };
        let quote = |s: &str| quote_for(backend, s);
        let num = |v: Option<i64>| v.map_or("NULL".to_owned(), |n| n.to_string());
        let text = |v: Option<&str>| v.map_or("NULL".to_owned(), quote);
        let json = |v: Option<&str>| match v {
            None => "NULL".to_owned(),
            Some(s) if backend == Backend::Sqlite && !self.json_as_text => {
                format!("CAST({} AS BLOB)", quote(s))
            }
            Some(s) => quote(s),
        };
        format!(
            "INSERT INTO tasks (id, created_at, updated_at, task_id, platform, user_id, {group}, channel_id, quota, action, status, fail_reason, submit_time, start_time, finish_time, progress, properties, private_data, data) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            self.id,
            num(self.created_at),
            num(self.updated_at),
            text(self.task_id),
            text(self.platform),
            num(self.user_id),
            text(self.group),
            num(self.channel_id),
            num(self.quota),
            text(self.action),
            text(self.status),
            text(self.fail_reason),
            num(self.submit_time),
            num(self.start_time),
            num(self.finish_time),
            text(self.progress),
            json(self.properties),
            json(self.private_data),
            json(self.data),
        )
    }
}

/// Stores `rows` in the app's `tasks` table (one connection).
pub async fn insert(app: &TestApp, rows: &[Row]) {
    use sea_orm::ConnectionTrait;
    let conn = app.db.connect().await;
    for r in rows {
        conn.execute_unprepared(&r.insert_sql(app.db.backend))
            .await
            .expect("insert task row");
    }
    conn.close().await.ok();
}

/// A user inserted with a chosen id and token (as new-api's own rows are).
pub async fn raw_user(app: &TestApp, id: i64, name: &str, role: i64, token: &str) {
    app.sql(&format!(
        "INSERT INTO users (id, username, password, role, status, access_token) VALUES ({id}, {}, '', {role}, 1, {})",
        quote_for(app.db.backend, name),
        quote_for(app.db.backend, token)
    ))
    .await;
}

fn auth(id: i64, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {token}")),
        ("New-Api-User", id.to_string()),
    ]
}

async fn get(app: &TestApp, path: &str, id: i64, token: &str) -> (u16, String) {
    let headers = auth(id, token);
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = app.get_with(path, &refs).await;
    (a.status, a.text)
}

/// The contract's worked example: alice (7) owns rows 41 and 42; root (1) is an admin.
pub async fn worked_example() -> TestApp {
    let app = spawn_app().await;
    raw_user(&app, 2, "boss", 100, "troot").await;
    raw_user(&app, 7, "alice", 1, "t7").await;
    insert(
        &app,
        &[
            Row {
                created_at: Some(1735689700),
                updated_at: Some(1735690000),
                task_id: Some("task_Q7sP2mXv"),
                platform: Some("50"),
                group: Some("default"),
                channel_id: Some(3),
                quota: Some(50000),
                action: Some("generate"),
                status: Some("SUCCESS"),
                fail_reason: Some(""),
                submit_time: Some(1735689700),
                start_time: Some(1735689712),
                finish_time: Some(1735689990),
                progress: Some("100%"),
                properties: Some(
                    r#"{"origin_model_name":"kling-v1","input":"a <cat> & a dog","seconds":"5"}"#,
                ),
                private_data: Some(
                    r#"{"key":"AIza-secret","upstream_task_id":"8812","result_url":"https://cdn.example.com/v.mp4?a=1&b=2"}"#,
                ),
                data: Some("{ \"code\": 0,\n  \"message\": \"SUCCEED\",\n  \"note\": \"caf\\u00e9\" }"),
                ..Row::of(42, 7)
            },
            Row {
                task_id: Some("old-suno-1"),
                platform: Some("suno"),
                action: Some("MUSIC"),
                status: Some("FAILURE"),
                fail_reason: Some("upstream timeout"),
                submit_time: Some(1735600000),
                start_time: Some(0),
                finish_time: Some(0),
                progress: Some("100%"),
                ..Row::of(41, 7)
            },
        ],
    )
    .await;
    app
}

const ROW_42_SELF: &str = r#"{"id":42,"created_at":1735689700,"updated_at":1735690000,"task_id":"task_Q7sP2mXv","platform":"50","user_id":7,"group":"default","channel_id":0,"quota":50000,"action":"generate","status":"SUCCESS","fail_reason":"","result_url":"https://cdn.example.com/v.mp4?a=1\u0026b=2","submit_time":1735689700,"start_time":1735689712,"finish_time":1735689990,"progress":"100%","properties":{"input":"a \u003ccat\u003e \u0026 a dog","origin_model_name":"kling-v1"},"data":{"code":0,"message":"SUCCEED","note":"caf\u00e9"}}"#;
const ROW_41_SELF: &str = r#"{"id":41,"created_at":0,"updated_at":0,"task_id":"old-suno-1","platform":"suno","user_id":7,"group":"","channel_id":0,"quota":0,"action":"MUSIC","status":"FAILURE","fail_reason":"upstream timeout","result_url":"upstream timeout","submit_time":1735600000,"start_time":0,"finish_time":0,"progress":"100%","properties":{"input":""},"data":null}"#;

#[tokio::test]
async fn the_worked_example_answers_byte_for_byte() {
    let app = worked_example().await;
    let (status, body) = get(&app, "/api/task/self", 7, "t7").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!(
            r#"{{"data":{{"page":1,"page_size":10,"total":2,"items":[{ROW_42_SELF},{ROW_41_SELF}]}},"message":"","success":true}}"#
        )
    );

    let admin_42 = ROW_42_SELF
        .replace(r#""channel_id":0"#, r#""channel_id":3"#)
        .replace(r#","data":{"#, r#","username":"alice","data":{"#);
    let admin_41 = ROW_41_SELF.replace(r#","data":null"#, r#","username":"alice","data":null"#);
    for path in ["/api/task/", "/api/task"] {
        let (status, body) = get(&app, path, 2, "troot").await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            body,
            format!(
                r#"{{"data":{{"page":1,"page_size":10,"total":2,"items":[{admin_42},{admin_41}]}},"message":"","success":true}}"#
            ),
            "{path}"
        );
    }

    let (status, body) = get(&app, "/api/task/self?status=failure&page_size=-5", 7, "t7").await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"data":{"page":1,"page_size":10,"total":0,"items":[]},"message":"","success":true}"#
        )
    );
    let (_, body) = get(&app, "/api/task/", 7, "t7").await;
    assert_eq!(
        body,
        r#"{"message":"无权进行此操作，权限不足","success":false}"#
    );
    let (status, body) = get(&app, "/api/task/?channel_id=x", 2, "troot").await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            r#"{"message":"invalid channel_id: expected an integer","success":false}"#
        )
    );
    // /self does not read channel_id at all.
    let (status, _) = get(&app, "/api/task/self?channel_id=x", 7, "t7").await;
    assert_eq!(status, 200);
    // The private data's secrets appear nowhere.
    for (path, id, token) in [("/api/task/self", 7, "t7"), ("/api/task/", 2, "troot")] {
        let (_, body) = get(&app, path, id, token).await;
        assert!(
            !body.contains("AIza-secret") && !body.contains("8812"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn the_content_type_and_errors_are_new_apis() {
    let app = worked_example().await;
    let a = app
        .get_with(
            "/api/task/self",
            &[("Authorization", "Bearer t7"), ("New-Api-User", "7")],
        )
        .await;
    assert_eq!(a.content_type, "application/json; charset=utf-8");
    let a = app.get_with("/api/task/self", &[]).await;
    assert_eq!(a.status, 401);
    assert!(
        a.text.starts_with(r#"{"message":""#) && a.text.ends_with(r#","success":false}"#),
        "{}",
        a.text
    );
    let a = app.get_with("/api/task/nope", &[]).await;
    assert_eq!(a.status, 404);
    assert!(a.text.starts_with(r#"{"message":""#), "{}", a.text);
    let r = app
        .client
        .post(app.url("/api/task/self"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let text = r.text().await.unwrap();
    assert!(
        text.starts_with(r#"{"message":""#) && text.ends_with(r#""success":false}"#),
        "{text}"
    );
    // The Midjourney routes keep their own envelope order.
    let a = app.get_with("/api/mj/self", &[]).await;
    assert!(a.text.starts_with(r#"{"success":false"#), "{}", a.text);
}

#[tokio::test]
async fn paging_follows_the_contract_table() {
    let app = spawn_app().await;
    raw_user(&app, 7, "alice", 1, "t7").await;
    // 105 rows: enough for the largest page.
    let rows: Vec<Row> = (1..=105).map(|id| Row::of(id, 7)).collect();
    insert(&app, &rows).await;
    let cases: &[(&str, u64, u64)] = &[
        ("", 1, 10),
        ("p=0", 1, 10),
        ("p=-3", 1, 10),
        ("p=abc", 1, 10),
        ("p=+2", 1, 10),
        ("p=99999999999999999999", 1, 10),
        ("p=%2B2", 2, 10),
        ("page_size=1000", 1, 100),
        ("page_size=-5", 1, 10),
        ("page_size=abc", 1, 10),
        ("page_size=", 1, 10),
        ("page_size=99999999999999999999", 1, 10),
        ("ps=5", 1, 5),
        ("size=6", 1, 6),
        ("page_size=0&ps=4&size=9", 1, 4),
        ("ps=-3&size=9", 1, 10),
        ("ps=99999999999999999999", 1, 100),
        ("p=2&p=3", 2, 10),
    ];
    for (query, page, size) in cases {
        let (status, body) = get(&app, &format!("/api/task/self?{query}"), 7, "t7").await;
        assert_eq!(status, 200, "{query}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["data"]["page"].as_u64(), v["data"]["page_size"].as_u64()),
            (Some(*page), Some(*size)),
            "{query}"
        );
        let ids: Vec<i64> = v["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect();
        let first = 105 - (page - 1) * size;
        let want: Vec<i64> = (0..*size)
            .map(|k| (first - k) as i64)
            .filter(|id| *id >= 1)
            .collect();
        assert_eq!(ids, want, "{query}");
        assert_eq!(v["data"]["total"], 105, "{query}");
    }
    let (_, body) = get(&app, "/api/task/self?p=99999999999999999", 7, "t7").await;
    assert_eq!(
        body,
        r#"{"data":{"page":99999999999999999,"page_size":10,"total":105,"items":[]},"message":"","success":true}"#
    );
}

#[tokio::test]
async fn filters_compare_exactly_and_nulls_never_match() {
    let app = spawn_app().await;
    raw_user(&app, 2, "boss", 100, "troot").await;
    raw_user(&app, 7, "alice", 1, "t7").await;
    insert(
        &app,
        &[
            Row {
                platform: Some("suno"),
                action: Some("MUSIC"),
                status: Some("SUCCESS"),
                task_id: Some("a_b"),
                channel_id: Some(0),
                submit_time: Some(100),
                ..Row::of(1, 7)
            },
            Row {
                platform: Some("SUNO"),
                action: Some("music"),
                status: Some("SUCCESS "),
                task_id: Some("axb"),
                channel_id: Some(3),
                submit_time: Some(-5),
                ..Row::of(2, 7)
            },
            // Every filtered column NULL.
            Row::of(3, 7),
            Row {
                platform: Some("50"),
                channel_id: Some(3),
                submit_time: Some(200),
                ..Row::of(4, 8)
            },
        ],
    )
    .await;
    let ids = |body: &str| -> Vec<i64> {
        let v: Value = serde_json::from_str(body).unwrap();
        v["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    let own: &[(&str, &[i64])] = &[
        ("platform=suno", &[1]),
        ("platform=SUNO", &[2]),
        ("status=SUCCESS", &[1]),
        ("status=SUCCESS%20", &[2]),
        ("status=success", &[]),
        ("action=MUSIC", &[1]),
        ("task_id=a_b", &[1]),
        ("task_id=a%25", &[]),
        ("status=", &[3, 2, 1]),
        ("start_timestamp=abc", &[3, 2, 1]),
        ("start_timestamp=1.5&end_timestamp=NaN", &[3, 2, 1]),
        ("start_timestamp=0", &[3, 2, 1]),
        ("start_timestamp=-1", &[1]),
        ("start_timestamp=-10", &[2, 1]),
        ("end_timestamp=99", &[2]),
        ("start_timestamp=99999999999999999999", &[]),
        ("end_timestamp=99999999999999999999", &[2, 1]),
        ("channel_id=3", &[3, 2, 1]),
    ];
    for (query, want) in own {
        let (status, body) = get(&app, &format!("/api/task/self?{query}"), 7, "t7").await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(ids(&body), *want, "/self?{query}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["total"], want.len(), "{query}");
    }
    let all: &[(&str, &[i64])] = &[
        ("channel_id=0", &[1]),
        ("channel_id=3", &[4, 2]),
        ("channel_id=%2B3", &[4, 2]),
        ("platform=50", &[4]),
        ("", &[4, 3, 2, 1]),
    ];
    for (query, want) in all {
        let (status, body) = get(&app, &format!("/api/task/?{query}"), 2, "troot").await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(ids(&body), *want, "/?{query}");
    }
}

#[tokio::test]
async fn items_rebuild_properties_and_read_only_result_url_from_private_data() {
    let app = spawn_app().await;
    raw_user(&app, 2, "boss", 100, "troot").await;
    raw_user(&app, 7, "alice", 1, "t7").await;
    raw_user(&app, 8, "", 1, "t8").await;
    app.sql("INSERT INTO users (id, username, password, role, status, access_token, deleted_at) VALUES (9, 'gone', '', 1, 1, 't9', CURRENT_TIMESTAMP)").await;
    let rows = [
        Row {
            properties: Some(r#"{"Input":"x","UPSTREAM_MODEL_NAME":"u","origin_model_name":null}"#),
            private_data: Some(r#"{"result_url":5,"key":"SECRET-1"}"#),
            fail_reason: Some("boom"),
            ..Row::of(1, 7)
        },
        Row {
            properties: Some(r#"{"input":"x","origin_model_name":7}"#),
            private_data: Some(r#"{"RESULT_URL":"https://r/2","key":"SECRET-2"}"#),
            data: Some(r#"[1, 2 ,"<a>"]"#),
            json_as_text: true,
            ..Row::of(2, 8)
        },
        Row {
            properties: Some("[]"),
            private_data: Some(r#"{"result_url":"","key":"SECRET-3"}"#),
            ..Row::of(3, 9)
        },
        Row {
            properties: Some("{}"),
            ..Row::of(4, 0)
        },
    ];
    insert(&app, &rows).await;
    let (status, body) = get(&app, "/api/task/", 2, "troot").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let items = v["data"]["items"].as_array().unwrap();
    let by_id = |id: i64| items.iter().find(|i| i["id"] == id).unwrap();
    assert_eq!(
        by_id(1)["properties"],
        serde_json::json!({"input":"x","upstream_model_name":"u"})
    );
    assert_eq!(by_id(1)["result_url"], "boom");
    assert_eq!(by_id(1)["username"], "alice");
    assert_eq!(by_id(2)["properties"], serde_json::json!({"input":""}));
    assert_eq!(by_id(2)["result_url"], "https://r/2");
    assert!(
        by_id(2).get("username").is_none(),
        "an empty username is absent"
    );
    assert!(body.contains(r#""data":[1,2,"\u003ca\u003e"]"#), "{body}");
    assert!(
        by_id(3).get("username").is_none(),
        "a deleted user's name is absent"
    );
    assert!(
        by_id(3).get("result_url").is_none(),
        "an empty result_url is absent"
    );
    assert!(by_id(4).get("username").is_none());
    for item in items {
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "id",
            "created_at",
            "updated_at",
            "task_id",
            "platform",
            "user_id",
            "group",
            "channel_id",
            "quota",
            "action",
            "status",
            "fail_reason",
            "result_url",
            "submit_time",
            "start_time",
            "finish_time",
            "progress",
            "properties",
            "username",
            "data",
        ];
        expected.retain(|k| item.get(*k).is_some());
        assert_eq!(keys, expected);
    }
    assert!(!body.contains("SECRET"), "{body}");
    let (_, own) = get(&app, "/api/task/self", 7, "t7").await;
    assert!(
        !own.contains("username") && !own.contains("SECRET"),
        "{own}"
    );
}

/// The worked example's users as GraphQL callers.
fn callers() -> (crate::helpers::TestUser, crate::helpers::TestUser) {
    use crate::helpers::TestUser;
    (
        TestUser {
            id: 7,
            token: "t7".into(),
        },
        TestUser {
            id: 2,
            token: "troot".into(),
        },
    )
}

#[tokio::test]
async fn graphql_lists_looks_up_and_pages_the_task_log_with_its_rules() {
    let app = worked_example().await;
    insert(
        &app,
        &[Row {
            task_id: Some("task_other"),
            platform: Some("55"),
            channel_id: Some(3),
            ..Row::of(43, 8)
        }],
    )
    .await;
    let (alice, admin) = callers();
    let q = "{ tasks { totalCount nodes { id nodeId taskId platform resultUrl input originModelName submitTime finishedAt data } } }";
    let a = app.gql(&alice, q).await;
    assert_eq!(a.json["data"]["tasks"]["totalCount"], 2, "{}", a.text);
    let nodes = a.json["data"]["tasks"]["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["id"], 42);
    assert_eq!(nodes[0]["input"], "a <cat> & a dog");
    assert_eq!(nodes[0]["originModelName"], "kling-v1");
    assert_eq!(
        nodes[0]["resultUrl"],
        "https://cdn.example.com/v.mp4?a=1&b=2"
    );
    assert_eq!(nodes[0]["submitTime"], 1735689700);
    assert_eq!(nodes[0]["finishedAt"], "2025-01-01T00:06:30+00:00");
    assert_eq!(
        nodes[0]["data"],
        serde_json::json!({"code":0,"message":"SUCCEED","note":"café"})
    );
    assert_eq!(nodes[1]["data"], Value::Null);
    assert!(!a.text.contains("AIza-secret"));
    // The admin sees all three; a user's channelId or channel filter is refused.
    let a = app
        .gql(&admin, "{ tasks { totalCount nodes { id channelId } } }")
        .await;
    assert_eq!(a.json["data"]["tasks"]["totalCount"], 3, "{}", a.text);
    let a = app.gql(&alice, "{ tasks { nodes { channelId } } }").await;
    assert_eq!(a.codes(), vec!["FORBIDDEN"; 2], "{}", a.text);
    let a = app
        .gql(
            &alice,
            "{ tasks(filter: {channelId: {eq: 3}}) { totalCount } }",
        )
        .await;
    assert_eq!(a.codes(), vec!["FORBIDDEN"], "{}", a.text);
    // GraphQL's NULL rule: a NULL channel compares as 0.
    let a = app
        .gql(
            &admin,
            "{ tasks(filter: {channelId: {eq: 0}}) { nodes { id } } }",
        )
        .await;
    assert_eq!(
        a.json["data"]["tasks"]["nodes"],
        serde_json::json!([{"id": 41}]),
        "{}",
        a.text
    );
    // The model names kept in the properties.
    let a = app
        .gql(&alice, r#"{ tasks(filter: {originModelName: {eq: "kling-v1"}}) { nodes { id } } a: tasks(filter: {upstreamModelName: {eq: ""}}) { totalCount } }"#)
        .await;
    assert_eq!(
        a.json["data"]["tasks"]["nodes"],
        serde_json::json!([{"id": 42}]),
        "{}",
        a.text
    );
    assert_eq!(a.json["data"]["a"]["totalCount"], 2, "{}", a.text);
    // Lookups: by id and taskId, scoped.
    let a = app
        .gql(&alice, r#"{ a: task(id: 42) { taskId } b: task(taskId: "task_other") { id } c: task(id: 43) { id } }"#)
        .await;
    assert_eq!(
        a.json["data"],
        serde_json::json!({"a": {"taskId": "task_Q7sP2mXv"}, "b": null, "c": null}),
        "{}",
        a.text
    );
    let a = app.gql(&alice, "{ task { id } }").await;
    assert_eq!(a.codes(), vec!["BAD_FILTER"], "{}", a.text);
    // Relay: a Task's node id reads it back; Midjourney and Task ids mix in one nodes call.
    let node_id = nodes[0]["nodeId"].as_str().unwrap().to_owned();
    let a = app
        .gql_vars(
            Some(&alice),
            "query($ids: [ID!]!) { nodes(ids: $ids) { __typename nodeId ... on Task { taskId } } }",
            serde_json::json!({ "ids": [node_id, "TWlkam91cm5leVRhc2s6NDI="] }),
        )
        .await;
    assert_eq!(
        a.json["data"]["nodes"][0]["taskId"], "task_Q7sP2mXv",
        "{}",
        a.text
    );
    assert_eq!(a.json["data"]["nodes"][1], Value::Null, "{}", a.text);
    // Federation: a Task entity by id, scoped.
    let a = app
        .gql(&alice, r#"{ _entities(representations: [{__typename: "Task", id: 42}, {__typename: "Task", id: 43}]) { ... on Task { taskId } } }"#)
        .await;
    assert_eq!(
        a.json["data"]["_entities"],
        serde_json::json!([{"taskId": "task_Q7sP2mXv"}, null]),
        "{}",
        a.text
    );
    // Keyset pages through the admin's view, oldest first.
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let a = app
            .gql_vars(
                Some(&admin),
                "query($after: String) { tasks(orderBy: [{field: ID, direction: ASC}], page: {cursor: {first: 2, after: $after}}) { nodes { id } pageInfo { hasNextPage endCursor } } }",
                serde_json::json!({ "after": after }),
            )
            .await;
        let t = &a.json["data"]["tasks"];
        seen.extend(
            t["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_i64().unwrap()),
        );
        if t["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = t["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, vec![41, 42, 43]);
}

#[tokio::test]
async fn graphql_statistics_of_the_task_log_are_scoped_and_grouped() {
    let app = worked_example().await;
    insert(
        &app,
        &[Row {
            platform: Some("55"),
            status: Some("SUCCESS"),
            quota: Some(7),
            ..Row::of(43, 8)
        }],
    )
    .await;
    let (alice, admin) = callers();
    let q = "{ taskStats { count quotaSum successCount failureCount byPlatform { key count quotaSum } byStatus { key count } byDay(days: 3) { count } } }";
    let a = app.gql(&admin, q).await;
    let s = &a.json["data"]["taskStats"];
    assert_eq!(
        (
            &s["count"],
            &s["quotaSum"],
            &s["successCount"],
            &s["failureCount"]
        ),
        (
            &serde_json::json!(3),
            &serde_json::json!(50007),
            &serde_json::json!(2),
            &serde_json::json!(1)
        ),
        "{}",
        a.text
    );
    assert_eq!(
        s["byPlatform"],
        serde_json::json!([
            {"key": "50", "count": 1, "quotaSum": 50000},
            {"key": "55", "count": 1, "quotaSum": 7},
            {"key": "suno", "count": 1, "quotaSum": 0},
        ]),
        "{}",
        a.text
    );
    assert_eq!(s["byDay"].as_array().map(Vec::len), Some(3));
    let a = app.gql(&alice, "{ taskStats(filter: {platform: {eq: \"55\"}}) { count } all: taskStats { count byStatus { key count } } }").await;
    assert_eq!(a.json["data"]["taskStats"]["count"], 0, "{}", a.text);
    assert_eq!(a.json["data"]["all"]["count"], 2, "{}", a.text);
    assert_eq!(
        a.json["data"]["all"]["byStatus"],
        serde_json::json!([{"key": "FAILURE", "count": 1}, {"key": "SUCCESS", "count": 1}])
    );
}

#[tokio::test]
async fn the_admin_routes_items_import_back_into_the_same_answer() {
    let app = worked_example().await;
    let headers = [("Authorization", "Bearer troot"), ("New-Api-User", "2")];
    let before = app.get_with("/api/task/", &headers).await;
    assert_eq!(before.status, 200);
    // The items exactly as served (escapes and number spellings kept), one per line.
    #[derive(serde::Deserialize)]
    struct Items<'a> {
        #[serde(borrow)]
        items: Vec<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        data: Items<'a>,
    }
    let body: Body = serde_json::from_str(&before.text).unwrap();
    let lines: String = body
        .data
        .items
        .iter()
        .map(|i| format!("{}\n", i.get()))
        .collect();

    let fresh = crate::helpers::TestDb::new().await;
    // The target database exists with the service's tables before the import.
    let out = crate::cli::mj_tasks(&fresh, &["migrate"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = crate::cli::mj_tasks(&fresh, &["import", "--log", "tasks", "-"], Some(&lines));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Imported 2 tasks"));
    let bad = crate::cli::mj_tasks(
        &fresh,
        &["import", "--log", "tasks", "-"],
        Some("{\"platform\":5}\n"),
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 1"));

    let copy = crate::helpers::spawn_app_with(fresh, |_| {}).await;
    raw_user(&copy, 2, "boss", 100, "troot").await;
    raw_user(&copy, 7, "alice", 1, "t7").await;
    let after = copy.get_with("/api/task/", &headers).await;
    assert_eq!(after.text, before.text);
}

#[tokio::test]
async fn data_is_read_only_when_selected_however_it_is_selected() {
    use mj_tasks::service::{Columns, PlatformTaskQuery, Role, Tasks, Viewer};
    let app = worked_example().await;
    let alice = Viewer {
        id: 7,
        username: "alice".into(),
        role: Role::Common,
    };
    let query = PlatformTaskQuery::default();
    let full = app.service.list::<Tasks>(&alice, &query).await.unwrap();
    let lean = app
        .service
        .list_columns::<Tasks>(&alice, &query, Columns::Lean)
        .await
        .unwrap();
    assert!(full.rows[0].data.is_some());
    assert_eq!(lean.rows[0].data, None, "the lean page does not read data");
    assert_eq!(lean.rows[0].result_url, full.rows[0].result_url);

    let (user, _) = callers();
    let want = serde_json::json!({"code": 0, "message": "SUCCEED", "note": "café"});
    for q in [
        "{ tasks { nodes { upstream: data } } }",
        "{ tasks { nodes { ...F } } } fragment F on Task { upstream: data }",
        "{ tasks { edges { node { ... on Task { upstream: data } } } } }",
    ] {
        let a = app.gql(&user, q).await;
        let t = &a.json["data"]["tasks"];
        let first = if t["nodes"].is_array() {
            &t["nodes"][0]
        } else {
            &t["edges"][0]["node"]
        };
        assert_eq!(first["upstream"], want, "{q}: {}", a.text);
    }
}
