//! Filters of the legacy routes: `mj_id`, `channel_id`, the time window, empty values,
//! 400s, and scoping.

use mj_tasks::service::Role;

use crate::helpers::{Task, spawn_app};

#[tokio::test]
async fn mj_id_is_an_exact_match() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let hit = app.task(Task::of(u.id).mj("task-1")).await;
    app.task(Task::of(u.id).mj("task-10")).await;
    app.task(Task::of(u.id).mj("xtask-1")).await;
    let a = app.get_as(&u, "/api/mj/self?mj_id=task-1").await;
    assert_eq!(a.ids(), vec![hit]);
    assert_eq!(a.total(), 1);
}

#[tokio::test]
async fn mj_id_wildcards_are_literal() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let percent = app.task(Task::of(u.id).mj("a%c")).await;
    app.task(Task::of(u.id).mj("abc")).await;
    app.task(Task::of(u.id).mj("a_c-long")).await;
    let a = app.get_as(&u, "/api/mj/self?mj_id=a%25c").await;
    assert_eq!(a.ids(), vec![percent]);
    let a = app.get_as(&u, "/api/mj/self?mj_id=a_c").await;
    assert!(a.ids().is_empty());
    let a = app.get_as(&u, "/api/mj/self?mj_id=%25").await;
    assert!(a.ids().is_empty());
}

#[tokio::test]
async fn channel_id_filters_the_admin_route() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let u = app.user("alice", Role::Common).await;
    let c5 = app.task(Task::of(u.id).channel(5)).await;
    app.task(Task::of(u.id).channel(6)).await;
    let c5b = app.task(Task::of(admin.id).channel(5)).await;
    let a = app.get_as(&admin, "/api/mj/?channel_id=5").await;
    assert_eq!(a.ids(), vec![c5b, c5]);
    assert_eq!(a.total(), 2);
}

#[tokio::test]
async fn channel_id_is_ignored_on_the_self_route() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let a5 = app.task(Task::of(u.id).channel(5)).await;
    let a6 = app.task(Task::of(u.id).channel(6)).await;
    for q in ["channel_id=5", "channel_id=abc", "channel_id=1.5"] {
        let a = app.get_as(&u, &format!("/api/mj/self?{q}")).await;
        assert_eq!(a.status, 200, "{q}");
        assert_eq!(a.ids(), vec![a6, a5], "{q}");
    }
}

#[tokio::test]
async fn time_bounds_are_inclusive() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let t100 = app.task(Task::of(u.id).submitted(100)).await;
    let t200 = app.task(Task::of(u.id).submitted(200)).await;
    let t300 = app.task(Task::of(u.id).submitted(300)).await;
    let cases: [(&str, Vec<i64>); 5] = [
        ("start_timestamp=200", vec![t300, t200]),
        ("end_timestamp=200", vec![t200, t100]),
        ("start_timestamp=200&end_timestamp=200", vec![t200]),
        ("start_timestamp=101&end_timestamp=299", vec![t200]),
        ("start_timestamp=301", vec![]),
    ];
    for (q, ids) in cases {
        let a = app.get_as(&u, &format!("/api/mj/self?{q}")).await;
        assert_eq!(a.ids(), ids, "{q}");
        assert_eq!(a.total(), ids.len() as i64, "{q}");
    }
}

#[tokio::test]
async fn timestamps_are_compared_as_stored_without_unit_conversion() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let ms = app.task(Task::of(u.id).submitted(1_640_908_800_000)).await;
    // A window in seconds does not match a millisecond timestamp.
    let a = app
        .get_as(
            &u,
            "/api/mj/self?start_timestamp=1640908800&end_timestamp=1640995200",
        )
        .await;
    assert!(a.ids().is_empty());
    let a = app
        .get_as(
            &u,
            "/api/mj/self?start_timestamp=1640908800000&end_timestamp=1640995200000",
        )
        .await;
    assert_eq!(a.ids(), vec![ms]);
}

#[tokio::test]
async fn empty_values_mean_no_filter() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let a = app.task(Task::of(admin.id).channel(3).mj("x")).await;
    let b = app.task(Task::of(admin.id).channel(4).mj("y")).await;
    let q = "/api/mj/?p=&page_size=&mj_id=&channel_id=&start_timestamp=&end_timestamp=";
    let ans = app.get_as(&admin, q).await;
    assert_eq!(ans.status, 200);
    assert_eq!(ans.ids(), vec![b, a]);
}

#[tokio::test]
async fn non_integer_filter_values_are_400_naming_the_parameter() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let u = app.user("alice", Role::Common).await;
    for param in ["channel_id", "start_timestamp", "end_timestamp"] {
        for value in ["abc", "NaN", "1.5", "1e3", "0x10"] {
            let a = app
                .get_as(&admin, &format!("/api/mj/?{param}={value}"))
                .await;
            assert_eq!(a.status, 400, "{param}={value}");
            assert_eq!(a.json["success"], false);
            assert!(a.message().contains(param), "{param}: {}", a.message());
            assert_eq!(a.json.as_object().unwrap().len(), 2, "{}", a.text);
        }
    }
    for param in ["start_timestamp", "end_timestamp"] {
        let a = app.get_as(&u, &format!("/api/mj/self?{param}=NaN")).await;
        assert_eq!(a.status, 400);
        assert!(a.message().contains(param));
    }
}

#[tokio::test]
async fn unknown_parameters_are_ignored() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let t = app.task(Task::of(u.id)).await;
    let a = app
        .get_as(
            &u,
            "/api/mj/self?foo=bar&user_id=999&order=asc&status=FAILURE",
        )
        .await;
    assert_eq!(a.ids(), vec![t]);
}

#[tokio::test]
async fn self_route_hides_other_users_tasks() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    let mine = app.task(Task::of(alice.id).mj("shared").channel(1)).await;
    app.task(Task::of(bob.id).mj("shared").channel(1)).await;
    app.task(Task::of(bob.id).mj("bobs")).await;
    for q in [
        "",
        "?mj_id=shared",
        "?mj_id=bobs",
        "?user_id=2",
        "?channel_id=1",
        "?page_size=100",
    ] {
        let a = app.get_as(&alice, &format!("/api/mj/self{q}")).await;
        let expected = if q == "?mj_id=bobs" {
            vec![]
        } else {
            vec![mine]
        };
        assert_eq!(a.ids(), expected, "{q}");
        assert_eq!(a.total(), expected.len() as i64, "{q}");
    }
}

#[tokio::test]
async fn filters_combine_and_total_counts_the_same_rows() {
    let app = spawn_app().await;
    let admin = app.user("admin", Role::Admin).await;
    let mut expected = Vec::new();
    for i in 0..40i64 {
        let id = app
            .task(Task::of(admin.id).channel(i % 3).submitted(i * 10))
            .await;
        if i % 3 == 1 && (50..=300).contains(&(i * 10)) {
            expected.push(id);
        }
    }
    expected.reverse();
    let a = app
        .get_as(
            &admin,
            "/api/mj/?channel_id=1&start_timestamp=50&end_timestamp=300&page_size=3",
        )
        .await;
    assert_eq!(a.total(), expected.len() as i64);
    assert_eq!(a.ids(), expected[..3].to_vec());
}
