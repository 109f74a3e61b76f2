//! The authentication table of the REST contract, check by check.

use mj_tasks::service::Role;

use crate::helpers::{Task, TestUser, spawn_app};

const SELF: &str = "/api/mj/self";

#[tokio::test]
async fn missing_authorization_is_401_in_chinese_by_default() {
    let app = spawn_app().await;
    let a = app.get_with(SELF, &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json["success"], false);
    assert_eq!(a.message(), "无权进行此操作，未登录且未提供 access token");
    assert_eq!(
        a.text,
        r#"{"success":false,"message":"无权进行此操作，未登录且未提供 access token"}"#
    );
}

#[tokio::test]
async fn empty_authorization_is_401() {
    let app = spawn_app().await;
    for value in ["", "   ", "Bearer ", "bearer   "] {
        let a = app
            .get_with(SELF, &[("Authorization", value), ("New-Api-User", "1")])
            .await;
        assert_eq!(a.status, 401, "Authorization {value:?}");
        assert_eq!(a.message(), "无权进行此操作，未登录且未提供 access token");
    }
}

#[tokio::test]
async fn accept_language_en_gives_english_messages() {
    let app = spawn_app().await;
    let a = app
        .get_with(SELF, &[("Accept-Language", "en-US,en;q=0.9")])
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.message(),
        "Unauthorized, not logged in and no access token provided"
    );
    let a = app
        .get_with(
            SELF,
            &[("Accept-Language", "en"), ("Authorization", "Bearer nope")],
        )
        .await;
    assert_eq!(a.message(), "Unauthorized, invalid access token");
    let a = app
        .get_with(
            SELF,
            &[
                ("Accept-Language", "zh-CN"),
                ("Authorization", "Bearer nope"),
            ],
        )
        .await;
    assert_eq!(a.message(), "无权进行此操作，access token 无效");
}

#[tokio::test]
async fn unknown_token_answers_200_invalid_token() {
    let app = spawn_app().await;
    app.user("alice", Role::Common).await;
    let a = app
        .get_with(
            SELF,
            &[
                ("Authorization", "Bearer not-a-token"),
                ("New-Api-User", "1"),
            ],
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["success"], false);
    assert_eq!(a.message(), "无权进行此操作，access token 无效");
}

#[tokio::test]
async fn soft_deleted_user_token_is_invalid() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    assert_eq!(app.get_as(&u, SELF).await.json["success"], true);
    app.sql(&format!(
        "UPDATE users SET deleted_at = CURRENT_TIMESTAMP WHERE id = {}",
        u.id
    ))
    .await;
    let a = app.get_as(&u, SELF).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.message(), "无权进行此操作，access token 无效");
}

#[tokio::test]
async fn missing_new_api_user_is_401() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let auth = format!("Bearer {}", u.token);
    for headers in [
        vec![("Authorization", auth.as_str())],
        vec![("Authorization", auth.as_str()), ("New-Api-User", "")],
    ] {
        let a = app.get_with(SELF, &headers).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.message(), "无权进行此操作，未提供 New-Api-User");
    }
    let a = app
        .get_with(
            SELF,
            &[("Authorization", auth.as_str()), ("Accept-Language", "en")],
        )
        .await;
    assert_eq!(
        a.message(),
        "Unauthorized, New-Api-User header not provided"
    );
}

#[tokio::test]
async fn non_integer_new_api_user_is_401_format_error() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let auth = format!("Bearer {}", u.token);
    for bad in ["abc", "1.5", "Bearer x", "99999999999999999999999"] {
        let a = app
            .get_with(
                SELF,
                &[("Authorization", auth.as_str()), ("New-Api-User", bad)],
            )
            .await;
        assert_eq!(a.status, 401, "New-Api-User {bad:?}");
        assert_eq!(a.message(), "无权进行此操作，New-Api-User 格式错误");
    }
    let a = app
        .get_with(
            SELF,
            &[
                ("Authorization", auth.as_str()),
                ("New-Api-User", "x"),
                ("Accept-Language", "en"),
            ],
        )
        .await;
    assert_eq!(
        a.message(),
        "Unauthorized, New-Api-User header format error"
    );
}

#[tokio::test]
async fn new_api_user_of_another_user_is_401_mismatch() {
    let app = spawn_app().await;
    let alice = app.user("alice", Role::Common).await;
    let bob = app.user("bob", Role::Common).await;
    let auth = format!("Bearer {}", alice.token);
    let other = bob.id.to_string();
    let a = app
        .get_with(
            SELF,
            &[
                ("Authorization", auth.as_str()),
                ("New-Api-User", other.as_str()),
            ],
        )
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.message(), "无权进行此操作，New-Api-User 与登录用户不匹配");
    let a = app
        .get_with(
            SELF,
            &[
                ("Authorization", auth.as_str()),
                ("New-Api-User", other.as_str()),
                ("Accept-Language", "en"),
            ],
        )
        .await;
    assert_eq!(
        a.message(),
        "Unauthorized, New-Api-User does not match logged in user"
    );
}

#[tokio::test]
async fn documented_bearer_id_form_of_new_api_user_is_accepted() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    app.task(Task::of(u.id)).await;
    let auth = format!("Bearer {}", u.token);
    for claimed in [
        format!("Bearer {}", u.id),
        format!(" bearer {} ", u.id),
        u.id.to_string(),
    ] {
        let a = app
            .get_with(
                SELF,
                &[
                    ("Authorization", auth.as_str()),
                    ("New-Api-User", claimed.as_str()),
                ],
            )
            .await;
        assert_eq!(a.status, 200, "New-Api-User {claimed:?}");
        assert_eq!(a.json["success"], true);
        assert_eq!(a.total(), 1);
    }
}

#[tokio::test]
async fn token_without_scheme_or_with_any_case_scheme_is_accepted() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    let id = u.id.to_string();
    for auth in [
        u.token.clone(),
        format!("bearer {}", u.token),
        format!("BEARER  {} ", u.token),
    ] {
        let a = app
            .get_with(
                SELF,
                &[
                    ("Authorization", auth.as_str()),
                    ("New-Api-User", id.as_str()),
                ],
            )
            .await;
        assert_eq!(
            a.json["success"], true,
            "Authorization {auth:?}: {}",
            a.text
        );
    }
}

#[tokio::test]
async fn banned_user_gets_200_banned_and_the_ban_takes_effect_at_once() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    assert_eq!(app.get_as(&u, SELF).await.json["success"], true);
    app.sql(&format!("UPDATE users SET status = 2 WHERE id = {}", u.id))
        .await;
    let a = app.get_as(&u, SELF).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text, r#"{"success":false,"message":"用户已被封禁"}"#);
    let a = app
        .get_as_with(&u, SELF, &[("Accept-Language", "en")])
        .await;
    assert_eq!(a.message(), "User has been banned");
}

#[tokio::test]
async fn common_user_on_admin_route_gets_insufficient_privilege() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    for path in ["/api/mj/", "/api/mj", "/api/mj/?p=1"] {
        let a = app.get_as(&u, path).await;
        assert_eq!(a.status, 200);
        assert_eq!(
            a.text,
            r#"{"success":false,"message":"无权进行此操作，权限不足"}"#
        );
    }
}

#[tokio::test]
async fn guest_role_may_not_use_the_self_route() {
    let app = spawn_app().await;
    let g = app.user("guest", Role::Guest).await;
    let a = app.get_as(&g, SELF).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.message(), "无权进行此操作，权限不足");
}

#[tokio::test]
async fn role_change_takes_effect_on_the_next_request() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    assert_eq!(app.get_as(&u, "/api/mj/").await.json["success"], false);
    app.sql(&format!("UPDATE users SET role = 10 WHERE id = {}", u.id))
        .await;
    assert_eq!(app.get_as(&u, "/api/mj/").await.json["success"], true);
    app.sql(&format!("UPDATE users SET role = 1 WHERE id = {}", u.id))
        .await;
    assert_eq!(
        app.get_as(&u, "/api/mj/").await.message(),
        "无权进行此操作，权限不足"
    );
}

#[tokio::test]
async fn undefined_role_or_empty_username_is_invalid_user_info() {
    let app = spawn_app().await;
    let odd = app.user("odd", Role::Common).await;
    app.sql(&format!("UPDATE users SET role = 5 WHERE id = {}", odd.id))
        .await;
    let a = app.get_as(&odd, SELF).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.message(), "无权进行此操作，用户信息无效");

    let blank = app.user("blank", Role::Common).await;
    app.sql(&format!(
        "UPDATE users SET username = '' WHERE id = {}",
        blank.id
    ))
    .await;
    let a = app.get_as(&blank, SELF).await;
    assert_eq!(a.message(), "无权进行此操作，用户信息无效");
    let a = app
        .get_as_with(&blank, SELF, &[("Accept-Language", "en")])
        .await;
    assert_eq!(a.message(), "Unauthorized, invalid user info");
}

#[tokio::test]
async fn checks_run_in_the_documented_order() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    app.sql(&format!("UPDATE users SET status = 2 WHERE id = {}", u.id))
        .await;
    // A banned common user on the admin route, with a bad New-Api-User: the header check
    // (#4) comes before the ban (#6) and the role (#7).
    let auth = format!("Bearer {}", u.token);
    let a = app
        .get_with(
            "/api/mj/",
            &[("Authorization", auth.as_str()), ("New-Api-User", "x")],
        )
        .await;
    assert_eq!(a.message(), "无权进行此操作，New-Api-User 格式错误");
    // With a correct header the ban (#6) comes before the role (#7).
    let a = app.get_as(&u, "/api/mj/").await;
    assert_eq!(a.message(), "用户已被封禁");
    // An invalid token (#2) comes before a missing New-Api-User (#3).
    let a = app
        .get_with(SELF, &[("Authorization", "Bearer nope")])
        .await;
    assert_eq!(a.message(), "无权进行此操作，access token 无效");
}

#[tokio::test]
async fn failed_checks_never_touch_the_task_table() {
    let app = spawn_app().await;
    let u = app.user("alice", Role::Common).await;
    // Without the task table any task query would fail with 500.
    app.sql("DROP TABLE midjourneys").await;
    let a = app.get_as(&u, "/api/mj/").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.message(), "无权进行此操作，权限不足");
    let a = app
        .get_with(SELF, &[("Authorization", "Bearer nope")])
        .await;
    assert_eq!(a.message(), "无权进行此操作，access token 无效");
    // The control: an authorised request does reach the (missing) table.
    let a = app.get_as(&u, SELF).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.text, r#"{"success":false,"message":"internal error"}"#);
}

#[tokio::test]
async fn admin_and_root_may_use_the_admin_route() {
    let app = spawn_app().await;
    let owner = app.user("alice", Role::Common).await;
    app.task(Task::of(owner.id)).await;
    for (name, role) in [("admin", Role::Admin), ("root2", Role::Root)] {
        let user: TestUser = app.user(name, role).await;
        let a = app.get_as(&user, "/api/mj/").await;
        assert_eq!(a.json["success"], true, "{name}");
        assert_eq!(a.total(), 1);
    }
}
