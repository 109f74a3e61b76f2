//! Paging rules of the legacy routes: `p`, `page_size` and its aliases, clamping, order.

use mj_tasks::service::Role;

use crate::helpers::{Task, TestApp, TestUser, spawn_app};

/// An app with one user owning `n` tasks (ids ascending in insertion order).
async fn with_tasks(n: usize) -> (TestApp, TestUser, Vec<i64>) {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(app.task(Task::of(u.id).submitted(1000 + i as i64)).await);
    }
    (app, u, ids)
}

#[tokio::test]
async fn default_page_size_is_20_newest_first() {
    let (app, u, ids) = with_tasks(25).await;
    let a = app.get_as(&u, "/api/mj/self").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["success"], true);
    assert_eq!(a.json["message"], "");
    assert_eq!(a.json["data"]["page"], 1);
    assert_eq!(a.json["data"]["page_size"], 20);
    assert_eq!(a.total(), 25);
    let expected: Vec<i64> = ids.iter().rev().take(20).copied().collect();
    assert_eq!(a.ids(), expected);
    let a = app.get_as(&u, "/api/mj/self?p=2").await;
    let expected: Vec<i64> = ids.iter().rev().skip(20).copied().collect();
    assert_eq!(a.ids(), expected);
    assert_eq!(a.json["data"]["page"], 2);
}

#[tokio::test]
async fn worked_example_of_the_contract() {
    let app = spawn_app().await;
    let u = app.user("user7", Role::Common).await;
    let other = app.user("other", Role::Common).await;
    let t3 = app.task(Task::of(u.id)).await;
    app.task(Task::of(other.id)).await;
    let t9 = app.task(Task::of(u.id)).await;
    let t12 = app.task(Task::of(u.id).mj("abc")).await;

    let a = app.get_as(&u, "/api/mj/self?p=1&page_size=2").await;
    assert_eq!(a.ids(), vec![t12, t9]);
    assert_eq!(a.total(), 3);
    assert_eq!(a.json["data"]["page"], 1);
    assert_eq!(a.json["data"]["page_size"], 2);

    let a = app
        .get_as(&u, "/api/mj/self?p=2&page_size=2&mj_id=abc")
        .await;
    assert!(a.ids().is_empty());
    assert_eq!(a.total(), 1);
    assert_eq!(a.json["data"]["page"], 2);
    assert!(a.text.contains(r#""items":[]"#), "{}", a.text);

    let a = app.get_as(&u, "/api/mj/self?channel_id=5").await;
    assert_eq!(a.ids(), vec![t12, t9, t3]);
}

#[tokio::test]
async fn page_size_above_100_is_clamped() {
    let (app, u, _) = with_tasks(105).await;
    let a = app.get_as(&u, "/api/mj/self?page_size=500").await;
    assert_eq!(a.items().len(), 100);
    assert_eq!(a.json["data"]["page_size"], 100);
    assert_eq!(a.total(), 105);
    let a = app.get_as(&u, "/api/mj/self?page_size=101&p=2").await;
    assert_eq!(a.items().len(), 5);
}

#[tokio::test]
async fn zero_negative_or_non_numeric_page_size_is_the_default() {
    let (app, u, _) = with_tasks(22).await;
    for q in [
        "page_size=0",
        "page_size=-3",
        "page_size=abc",
        "page_size=",
        "page_size=1.5",
    ] {
        let a = app.get_as(&u, &format!("/api/mj/self?{q}")).await;
        assert_eq!(a.json["data"]["page_size"], 20, "{q}");
        assert_eq!(a.items().len(), 20, "{q}");
    }
}

#[tokio::test]
async fn ps_then_size_are_read_when_page_size_is_missing_empty_or_zero() {
    let (app, u, _) = with_tasks(12).await;
    let cases = [
        ("ps=5", 5),
        ("size=4", 4),
        ("ps=5&size=4", 5),
        ("page_size=0&ps=3", 3),
        ("page_size=&ps=3", 3),
        ("page_size=0&ps=0&size=2", 2),
        ("page_size=&ps=&size=6", 6),
        ("page_size=7&ps=3&size=2", 7),
        ("ps=-1&size=2", 20),
        ("size=300", 100),
    ];
    for (q, size) in cases {
        let a = app.get_as(&u, &format!("/api/mj/self?{q}")).await;
        assert_eq!(a.json["data"]["page_size"], size, "{q}");
        assert_eq!(a.items().len() as i64, size.min(12), "{q}");
    }
}

#[tokio::test]
async fn missing_empty_invalid_or_small_p_is_page_1() {
    let (app, u, ids) = with_tasks(3).await;
    let newest = *ids.last().unwrap();
    for q in ["", "p=", "p=abc", "p=0", "p=-4", "p=1.5"] {
        let a = app
            .get_as(&u, &format!("/api/mj/self?page_size=1&{q}"))
            .await;
        assert_eq!(a.json["data"]["page"], 1, "{q}");
        assert_eq!(a.ids(), vec![newest], "{q}");
    }
}

#[tokio::test]
async fn huge_p_does_not_overflow_the_offset() {
    let (app, u, _) = with_tasks(3).await;
    for p in [
        "9223372036854775807",
        "92233720368547758",
        "4611686018427387904",
    ] {
        let a = app
            .get_as(&u, &format!("/api/mj/self?p={p}&page_size=100"))
            .await;
        assert_eq!(a.status, 200, "{p}: {}", a.text);
        assert_eq!(a.json["success"], true);
        assert!(a.ids().is_empty());
        assert_eq!(a.total(), 3);
        assert_eq!(a.json["data"]["page"].to_string(), p);
    }
    // Beyond i64: not an integer, so page 1.
    let a = app
        .get_as(&u, "/api/mj/self?p=99999999999999999999999")
        .await;
    assert_eq!(a.json["data"]["page"], 1);
    assert_eq!(a.items().len(), 3);
}

#[tokio::test]
async fn a_page_past_the_end_still_carries_the_exact_total() {
    // Page and total are one statement; an empty page carries no total, so it counts on
    // its own. Filters included, on both doors.
    let (app, u, _) = with_tasks(3).await;
    for (path, total) in [
        ("/api/mj/self?p=2&page_size=10", 3),
        ("/api/mj/self?p=1&page_size=2", 3),
        ("/api/mj/self?p=5&page_size=1", 3),
        ("/api/mj/self?p=2&page_size=10&mj_id=nothing-like-it", 0),
    ] {
        let a = app.get_as(&u, path).await;
        assert_eq!(a.json["success"], true, "{path}: {}", a.text);
        assert_eq!(a.total(), total, "{path}: {}", a.text);
    }
    let g = app
        .gql(
            &u,
            "{ midjourneyTasks(page: {offset: {page: 3, pageSize: 2}}) { totalCount nodes { id } } }",
        )
        .await;
    assert_eq!(
        g.json["data"]["midjourneyTasks"]["totalCount"], 3,
        "{}",
        g.text
    );
    assert_eq!(
        g.json["data"]["midjourneyTasks"]["nodes"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn admin_route_pages_over_every_users_tasks() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let a1 = app.user("a1", Role::Common).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let owner = if i % 2 == 0 { a1.id } else { admin.id };
        ids.push(app.task(Task::of(owner)).await);
    }
    ids.reverse();
    let a = app.get_as(&admin, "/api/mj/?p=2&page_size=7").await;
    assert_eq!(a.ids(), ids[7..14].to_vec());
    assert_eq!(a.total(), 30);
    // On /self even an admin sees only their own tasks.
    let a = app.get_as(&admin, "/api/mj/self?page_size=100").await;
    assert_eq!(a.total(), 15);
    // ids[29] is the first task (a1's); every other one after it is the admin's.
    let own: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| (id - ids[29]) % 2 == 1)
        .collect();
    assert_eq!(a.ids(), own);
}

/// Offset pages 1,000 rows deep and more find their ids first, then the rows: the same
/// rows, in the same order, as the plain query would give (REST newest first, and GraphQL
/// ordered by a column with ties).
#[tokio::test]
async fn deep_offset_pages_answer_the_same_rows_in_the_same_order() {
    use entity::midjourney;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let conn = app.db.connect().await;
    let rows: Vec<midjourney::ActiveModel> = (0..1_150)
        .map(|i| midjourney::ActiveModel {
            user_id: Set(Some(u.id)),
            mj_id: Set(Some(format!("deep-{i}"))),
            quota: Set(Some((i * 7) % 13)),
            ..Default::default()
        })
        .collect();
    for chunk in rows.chunks(200) {
        midjourney::Entity::insert_many(chunk.to_vec())
            .exec(&conn)
            .await
            .unwrap();
    }
    let stored: Vec<(i64, i64)> = midjourney::Entity::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m.quota.unwrap_or(0)))
        .collect();
    conn.close().await.ok();

    // REST: newest first, 20 per page; page 52 starts 1,020 rows deep.
    let mut newest: Vec<i64> = stored.iter().map(|(id, _)| *id).collect();
    newest.sort_unstable_by(|a, b| b.cmp(a));
    for p in [50, 51, 52, 58] {
        let a = app
            .get_as(&u, &format!("/api/mj/self?p={p}&page_size=20"))
            .await;
        let start = (p - 1) * 20;
        let want: Vec<i64> = newest.iter().skip(start).take(20).copied().collect();
        assert_eq!(a.ids(), want, "page {p}");
        assert_eq!(a.total(), 1_150);
    }
    // GraphQL: by quota (ties broken by id, descending), 1,000 to 1,100 rows deep.
    let mut by_quota = stored.clone();
    by_quota.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    for page in [11, 12] {
        let q = format!(
            "{{ midjourneyTasks(orderBy: [{{field: QUOTA, direction: DESC}}], page: {{offset: {{page: {page}, pageSize: 100}}}}) {{ nodes {{ id }} }} }}"
        );
        let a = app.gql(&u, &q).await;
        let want: Vec<i64> = by_quota
            .iter()
            .skip((page - 1) * 100)
            .take(100)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(a.node_ids(), want, "page {page}");
    }
}
