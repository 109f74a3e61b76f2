//! Attach mode: a database built with the DDL new-api's ORM writes for the backend (nullable
//! columns, extra `users` columns, `char(32)` tokens, a reserved `group` column, rows with
//! NULLs). The service attaches, migrates without touching existing rows or columns, serves
//! correct answers, and a second start changes nothing.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::helpers::{Backend, TestDb, spawn_app_with};

/// new-api's tables as gorm creates them on `backend`.
pub fn new_api_ddl(backend: Backend) -> Vec<&'static str> {
    match backend {
        Backend::Sqlite => vec![
            "CREATE TABLE `midjourneys` (`id` integer PRIMARY KEY AUTOINCREMENT,`code` integer,`user_id` integer,`action` varchar(40),`mj_id` text,`prompt` text,`prompt_en` text,`description` text,`state` text,`submit_time` integer,`start_time` integer,`finish_time` integer,`image_url` text,`video_url` text,`video_urls` text,`status` varchar(20),`progress` varchar(30),`fail_reason` text,`channel_id` integer,`quota` integer,`buttons` text,`properties` text,`token_id` integer DEFAULT 0,`billing_channel_id` integer DEFAULT 0)",
            "CREATE INDEX `idx_midjourneys_user_id` ON `midjourneys`(`user_id`)",
            "CREATE INDEX `idx_midjourneys_action` ON `midjourneys`(`action`)",
            "CREATE INDEX `idx_midjourneys_mj_id` ON `midjourneys`(`mj_id`)",
            "CREATE INDEX `idx_midjourneys_submit_time` ON `midjourneys`(`submit_time`)",
            "CREATE INDEX `idx_midjourneys_start_time` ON `midjourneys`(`start_time`)",
            "CREATE INDEX `idx_midjourneys_finish_time` ON `midjourneys`(`finish_time`)",
            "CREATE INDEX `idx_midjourneys_status` ON `midjourneys`(`status`)",
            "CREATE INDEX `idx_midjourneys_progress` ON `midjourneys`(`progress`)",
            "CREATE TABLE `users` (`id` integer PRIMARY KEY AUTOINCREMENT,`username` text UNIQUE,`password` text NOT NULL,`display_name` text,`role` integer DEFAULT 1,`status` integer DEFAULT 1,`email` text,`github_id` text,`access_token` char(32) UNIQUE,`quota` integer DEFAULT 0,`used_quota` integer DEFAULT 0,`request_count` integer DEFAULT 0,`group` varchar(64) DEFAULT 'default',`aff_code` varchar(32) UNIQUE,`inviter_id` integer,`deleted_at` datetime,`setting` text)",
            "CREATE INDEX `idx_users_deleted_at` ON `users`(`deleted_at`)",
            // new-api's generic task log, as gorm creates it (JSON columns declared `json`).
            "CREATE TABLE `tasks` (`id` integer PRIMARY KEY AUTOINCREMENT,`created_at` integer,`updated_at` integer,`task_id` varchar(191),`platform` varchar(30),`user_id` integer,`group` varchar(50),`channel_id` integer,`quota` integer,`action` varchar(40),`status` varchar(20),`fail_reason` text,`submit_time` integer,`start_time` integer,`finish_time` integer,`progress` varchar(20),`properties` json,`private_data` json,`data` json)",
            "CREATE INDEX `idx_tasks_created_at` ON `tasks`(`created_at`)",
            "CREATE INDEX `idx_tasks_task_id` ON `tasks`(`task_id`)",
            "CREATE INDEX `idx_tasks_platform` ON `tasks`(`platform`)",
            "CREATE INDEX `idx_tasks_user_id` ON `tasks`(`user_id`)",
            "CREATE INDEX `idx_tasks_channel_id` ON `tasks`(`channel_id`)",
            "CREATE INDEX `idx_tasks_action` ON `tasks`(`action`)",
            "CREATE INDEX `idx_tasks_status` ON `tasks`(`status`)",
            "CREATE INDEX `idx_tasks_submit_time` ON `tasks`(`submit_time`)",
            "CREATE INDEX `idx_tasks_start_time` ON `tasks`(`start_time`)",
            "CREATE INDEX `idx_tasks_finish_time` ON `tasks`(`finish_time`)",
            "CREATE INDEX `idx_tasks_progress` ON `tasks`(`progress`)",
        ],
        Backend::Postgres => vec![
            r#"CREATE TABLE "midjourneys" ("id" bigserial,"code" bigint,"user_id" bigint,"action" varchar(40),"mj_id" text,"prompt" text,"prompt_en" text,"description" text,"state" text,"submit_time" bigint,"start_time" bigint,"finish_time" bigint,"image_url" text,"video_url" text,"video_urls" text,"status" varchar(20),"progress" varchar(30),"fail_reason" text,"channel_id" bigint,"quota" bigint,"buttons" text,"properties" text,"token_id" bigint DEFAULT 0,"billing_channel_id" bigint DEFAULT 0,PRIMARY KEY ("id"))"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_midjourneys_user_id" ON "midjourneys" ("user_id")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_midjourneys_action" ON "midjourneys" ("action")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_midjourneys_mj_id" ON "midjourneys" ("mj_id")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_midjourneys_submit_time" ON "midjourneys" ("submit_time")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_midjourneys_start_time" ON "midjourneys" ("start_time")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_midjourneys_finish_time" ON "midjourneys" ("finish_time")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_midjourneys_status" ON "midjourneys" ("status")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_midjourneys_progress" ON "midjourneys" ("progress")"#,
            r#"CREATE TABLE "users" ("id" bigserial,"username" text UNIQUE,"password" text NOT NULL,"display_name" text,"role" bigint DEFAULT 1,"status" bigint DEFAULT 1,"email" text,"github_id" text,"access_token" char(32) UNIQUE,"quota" bigint DEFAULT 0,"used_quota" bigint DEFAULT 0,"request_count" bigint DEFAULT 0,"group" varchar(64) DEFAULT 'default',"aff_code" varchar(32) UNIQUE,"inviter_id" bigint,"deleted_at" timestamptz,"setting" text,PRIMARY KEY ("id"))"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_users_deleted_at" ON "users" ("deleted_at")"#,
            r#"CREATE TABLE "tasks" ("id" bigserial,"created_at" bigint,"updated_at" bigint,"task_id" varchar(191),"platform" varchar(30),"user_id" bigint,"group" varchar(50),"channel_id" bigint,"quota" bigint,"action" varchar(40),"status" varchar(20),"fail_reason" text,"submit_time" bigint,"start_time" bigint,"finish_time" bigint,"progress" varchar(20),"properties" json,"private_data" json,"data" json,PRIMARY KEY ("id"))"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_created_at" ON "tasks" ("created_at")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_task_id" ON "tasks" ("task_id")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_platform" ON "tasks" ("platform")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_user_id" ON "tasks" ("user_id")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_channel_id" ON "tasks" ("channel_id")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_action" ON "tasks" ("action")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_status" ON "tasks" ("status")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_submit_time" ON "tasks" ("submit_time")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_start_time" ON "tasks" ("start_time")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_finish_time" ON "tasks" ("finish_time")"#,
            r#"CREATE INDEX IF NOT EXISTS "idx_tasks_progress" ON "tasks" ("progress")"#,
        ],
        Backend::MySql => vec![
            "CREATE TABLE `midjourneys` (`id` bigint AUTO_INCREMENT,`code` bigint,`user_id` bigint,`action` varchar(40),`mj_id` varchar(191),`prompt` longtext,`prompt_en` longtext,`description` longtext,`state` longtext,`submit_time` bigint,`start_time` bigint,`finish_time` bigint,`image_url` longtext,`video_url` longtext,`video_urls` longtext,`status` varchar(20),`progress` varchar(30),`fail_reason` longtext,`channel_id` bigint,`quota` bigint,`buttons` longtext,`properties` longtext,`token_id` bigint DEFAULT 0,`billing_channel_id` bigint DEFAULT 0,PRIMARY KEY (`id`),INDEX `idx_midjourneys_user_id` (`user_id`),INDEX `idx_midjourneys_action` (`action`),INDEX `idx_midjourneys_mj_id` (`mj_id`),INDEX `idx_midjourneys_submit_time` (`submit_time`),INDEX `idx_midjourneys_start_time` (`start_time`),INDEX `idx_midjourneys_finish_time` (`finish_time`),INDEX `idx_midjourneys_status` (`status`),INDEX `idx_midjourneys_progress` (`progress`))",
            "CREATE TABLE `users` (`id` bigint AUTO_INCREMENT,`username` varchar(191) UNIQUE,`password` longtext NOT NULL,`display_name` longtext,`role` bigint DEFAULT 1,`status` bigint DEFAULT 1,`email` longtext,`github_id` longtext,`access_token` char(32) UNIQUE,`quota` bigint DEFAULT 0,`used_quota` bigint DEFAULT 0,`request_count` bigint DEFAULT 0,`group` varchar(64) DEFAULT 'default',`aff_code` varchar(32) UNIQUE,`inviter_id` bigint,`deleted_at` datetime(3) NULL,`setting` longtext,PRIMARY KEY (`id`),INDEX `idx_users_deleted_at` (`deleted_at`))",
            "CREATE TABLE `tasks` (`id` bigint AUTO_INCREMENT,`created_at` bigint,`updated_at` bigint,`task_id` varchar(191),`platform` varchar(30),`user_id` bigint,`group` varchar(50),`channel_id` bigint,`quota` bigint,`action` varchar(40),`status` varchar(20),`fail_reason` longtext,`submit_time` bigint,`start_time` bigint,`finish_time` bigint,`progress` varchar(20),`properties` json,`private_data` json,`data` json,PRIMARY KEY (`id`),INDEX `idx_tasks_created_at` (`created_at`),INDEX `idx_tasks_task_id` (`task_id`),INDEX `idx_tasks_platform` (`platform`),INDEX `idx_tasks_user_id` (`user_id`),INDEX `idx_tasks_channel_id` (`channel_id`),INDEX `idx_tasks_action` (`action`),INDEX `idx_tasks_status` (`status`),INDEX `idx_tasks_submit_time` (`submit_time`),INDEX `idx_tasks_start_time` (`start_time`),INDEX `idx_tasks_finish_time` (`finish_time`),INDEX `idx_tasks_progress` (`progress`))",
        ],
    }
}

/// Rows as new-api leaves them: a 29-character token (padded by PostgreSQL's char(32)), a
/// soft-deleted user, a banned one, tasks with NULLs from before columns existed.
pub fn new_api_rows(backend: Backend) -> Vec<String> {
    let group = if backend == Backend::MySql {
        "`group`"
    } else {
        "\"group\""
    };
    vec![
        format!("INSERT INTO users (id, username, password, display_name, role, status, access_token, {group}, aff_code) VALUES (1, 'root', 'x', 'Root', 100, 1, 'rootrootrootrootrootrootroot1', 'default', 'a1')"),
        format!("INSERT INTO users (id, username, password, role, status, access_token, {group}) VALUES (2, 'alice', 'x', 1, 1, 'alicealicealicealicealicealic', 'vip')"),
        "INSERT INTO users (id, username, password, role, status, access_token, deleted_at) VALUES (3, 'gone', 'x', 1, 1, 'gonegonegonegonegonegonegone3', CURRENT_TIMESTAMP)".to_owned(),
        "INSERT INTO users (id, username, password, role, status, access_token) VALUES (4, 'banned', 'x', 1, 2, 'bannedbannedbannedbannedbann4')".to_owned(),
        "INSERT INTO midjourneys (id, code, user_id, action, mj_id, prompt, prompt_en, description, state, submit_time, start_time, finish_time, image_url, video_url, video_urls, status, progress, fail_reason, channel_id, quota, buttons, properties, token_id, billing_channel_id) VALUES (1, 1, 2, 'IMAGINE', 'mj-1', 'a cat', 'a cat', 'Submit success', '', 1700000000000, 1700000001000, 1700000002000, 'https://cdn/1.png', '', '[]', 'SUCCESS', '100%', '', 7, 500, '[]', '{}', 42, 9)".to_owned(),
        "INSERT INTO midjourneys (id, user_id, action, mj_id, status, progress, submit_time) VALUES (2, 2, 'UPSCALE', 'mj-2', 'IN_PROGRESS', '45%', 1700000003000)".to_owned(),
        "INSERT INTO midjourneys (id, user_id, mj_id) VALUES (3, 2, 'mj-3')".to_owned(),
        "INSERT INTO midjourneys (id, user_id, action, mj_id, channel_id) VALUES (4, 1, 'VIDEO', 'mj-4', 8)".to_owned(),
    ]
}

/// The auth headers of `alice` (user 2) in [`new_api_rows`], whose token PostgreSQL pads.
pub const NEW_API_ALICE: [(&str, &str); 2] = [
    ("Authorization", "Bearer alicealicealicealicealicealic"),
    ("New-Api-User", "2"),
];

/// Every column of the two tables with its declared type, and every row as text: what
/// must not change when the service attaches.
pub async fn snapshot(conn: &DatabaseConnection, backend: Backend) -> (Vec<String>, Vec<String>) {
    let columns = columns(conn, backend).await;
    let db = conn.get_database_backend();
    let mut rows = Vec::new();
    for (table, cols) in [("midjourneys", MIDJOURNEY_COLUMNS), ("users", USER_COLUMNS)] {
        let sql = format!(
            "SELECT {} AS r FROM {table} ORDER BY id",
            row_text(backend, cols)
        );
        for r in conn
            .query_all_raw(Statement::from_string(db, sql))
            .await
            .unwrap()
        {
            rows.push(r.try_get::<String>("", "r").unwrap());
        }
    }
    (columns, rows)
}

/// Every column of the two tables with its declared type, nullability and default.
pub async fn columns(conn: &DatabaseConnection, backend: Backend) -> Vec<String> {
    let columns_sql = match backend {
        Backend::Sqlite => {
            "SELECT m.name || '.' || p.name || ' ' || p.type || ' ' || p.\"notnull\" || ' ' || COALESCE(p.dflt_value, '') AS d FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.name IN ('midjourneys', 'users') ORDER BY d"
        }
        Backend::Postgres => {
            "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || COALESCE(character_maximum_length::text, '') || ' ' || is_nullable || ' ' || COALESCE(column_default, '') AS d FROM information_schema.columns WHERE table_schema = current_schema() AND table_name IN ('midjourneys', 'users') ORDER BY d"
        }
        Backend::MySql => {
            "SELECT CONCAT(table_name, '.', column_name, ' ', column_type, ' ', is_nullable, ' ', COALESCE(column_default, '')) AS d FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name IN ('midjourneys', 'users') ORDER BY d"
        }
    };
    conn.query_all_raw(Statement::from_string(
        conn.get_database_backend(),
        columns_sql,
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get::<String>("", "d").unwrap())
    .collect()
}

const MIDJOURNEY_COLUMNS: &[&str] = &[
    "id",
    "code",
    "user_id",
    "action",
    "mj_id",
    "prompt",
    "prompt_en",
    "description",
    "state",
    "submit_time",
    "start_time",
    "finish_time",
    "image_url",
    "video_url",
    "video_urls",
    "status",
    "progress",
    "fail_reason",
    "channel_id",
    "quota",
    "buttons",
    "properties",
    "token_id",
    "billing_channel_id",
];
const USER_COLUMNS: &[&str] = &[
    "id",
    "username",
    "password",
    "display_name",
    "role",
    "status",
    "email",
    "github_id",
    "access_token",
    "quota",
    "used_quota",
    "request_count",
    "group",
    "aff_code",
    "inviter_id",
    "deleted_at",
    "setting",
];

/// An SQL expression rendering a whole row as text, NULLs visible.
fn row_text(backend: Backend, cols: &[&str]) -> String {
    let parts: Vec<String> = cols
        .iter()
        .map(|c| match backend {
            Backend::MySql => format!("COALESCE(CAST(`{c}` AS CHAR), '<null>')"),
            _ => format!("COALESCE(CAST(\"{c}\" AS TEXT), '<null>')"),
        })
        .collect();
    match backend {
        Backend::MySql => format!("CONCAT_WS('|', {})", parts.join(", ")),
        _ => parts.join(" || '|' || "),
    }
}

/// The index names on `midjourneys`.
pub async fn indexes(conn: &DatabaseConnection, backend: Backend) -> Vec<String> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT name AS n FROM sqlite_master WHERE type = 'index' AND tbl_name = 'midjourneys' AND name NOT LIKE 'sqlite_%' ORDER BY n"
        }
        Backend::Postgres => {
            "SELECT indexname::text AS n FROM pg_indexes WHERE tablename = 'midjourneys' AND schemaname = current_schema() ORDER BY n"
        }
        Backend::MySql => {
            "SELECT DISTINCT index_name AS n FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'midjourneys' ORDER BY n"
        }
    };
    conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "n").unwrap())
        .collect()
}

/// A test database holding new-api's tables and rows.
pub async fn new_api_database() -> TestDb {
    let db = TestDb::new().await;
    let conn = db.connect().await;
    if !crate::testdb::new_api_shape() {
        for sql in new_api_ddl(db.backend) {
            conn.execute_unprepared(sql).await.unwrap();
        }
    }
    for sql in new_api_rows(db.backend) {
        conn.execute_unprepared(&sql).await.unwrap();
    }
    conn.close().await.ok();
    db
}

#[tokio::test]
async fn attaches_to_a_new_api_database_without_changing_it() {
    let db = new_api_database().await;
    let backend = db.backend;
    let conn = db.connect().await;
    let before = snapshot(&conn, backend).await;
    let indexes_before = indexes(&conn, backend).await;

    let app = spawn_app_with(db, |_| {}).await;
    let after_first = snapshot(&conn, backend).await;
    assert_eq!(
        before, after_first,
        "existing columns and rows must not change"
    );
    let indexes_first = indexes(&conn, backend).await;
    for wanted in [
        "idx_midjourneys_user_id_id",
        "idx_midjourneys_channel_id_id",
    ] {
        assert!(
            indexes_first.iter().any(|i| i == wanted),
            "{wanted} in {indexes_first:?}"
        );
    }
    for old in &indexes_before {
        assert!(indexes_first.contains(old), "{old} kept");
    }

    // Answers over the attached data: padded token, NULLs, the legacy shapes.
    let alice = NEW_API_ALICE;
    let a = app.get_with("/api/mj/self", &alice).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.ids(), vec![3, 2, 1]);
    assert_eq!(a.total(), 3);
    let null_row = &a.items()[0];
    assert_eq!(null_row["action"], "");
    assert_eq!(null_row["submit_time"], 0);
    assert_eq!(null_row["video_urls"], "");
    assert_eq!(a.items()[1]["progress"], "45%");
    assert_eq!(a.items()[2]["quota"], 500);

    let root = [
        ("Authorization", "rootrootrootrootrootrootroot1"),
        ("New-Api-User", "Bearer 1"),
    ];
    let a = app.get_with("/api/mj/?channel_id=8", &root).await;
    assert_eq!(a.ids(), vec![4]);
    let a = app.get_with("/api/mj/", &root).await;
    assert_eq!(a.total(), 4);
    assert!(!a.text.contains("token_id") && !a.text.contains("billing_channel_id"));
    assert_eq!(a.items()[1]["code"], 0);

    let gone = [
        ("Authorization", "Bearer gonegonegonegonegonegonegone3"),
        ("New-Api-User", "3"),
    ];
    assert_eq!(
        app.get_with("/api/mj/self", &gone).await.message(),
        "无权进行此操作，access token 无效"
    );
    let banned = [
        ("Authorization", "Bearer bannedbannedbannedbannedbann4"),
        ("New-Api-User", "4"),
    ];
    assert_eq!(
        app.get_with("/api/mj/self", &banned).await.message(),
        "用户已被封禁"
    );
    let db = app.into_db();

    // A second start changes nothing.
    let app = spawn_app_with(db, |_| {}).await;
    assert_eq!(snapshot(&conn, backend).await, before);
    assert_eq!(indexes(&conn, backend).await, indexes_first);
    assert_eq!(app.get_with("/api/mj/self", &alice).await.total(), 3);
    conn.close().await.ok();
}

#[tokio::test]
async fn no_migrate_serves_an_attached_database_and_creates_nothing() {
    let db = new_api_database().await;
    let backend = db.backend;
    let conn = db.connect().await;
    let indexes_before = indexes(&conn, backend).await;
    let app = spawn_app_with(db, |c| c.no_migrate = true).await;
    let a = app
        .get_with(
            "/api/mj/self",
            &[
                ("Authorization", "alicealicealicealicealicealic"),
                ("New-Api-User", "2"),
            ],
        )
        .await;
    assert_eq!(a.ids(), vec![3, 2, 1]);
    assert_eq!(indexes(&conn, backend).await, indexes_before);
    let has_migrations_table = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT * FROM seaql_migrations",
        ))
        .await
        .is_ok();
    assert!(!has_migrations_table, "--no-migrate must not create tables");
    conn.close().await.ok();
}

#[tokio::test]
async fn a_fresh_database_gets_both_tables_and_a_first_root_user() {
    let db = TestDb::new().await;
    let app = spawn_app_with(db, |_| {}).await;
    let conn = app.db.connect().await;
    let backend = app.db.backend;
    let columns = columns(&conn, backend).await;
    for col in [
        "midjourneys.mj_id",
        "midjourneys.video_urls",
        "users.access_token",
        "users.deleted_at",
    ] {
        assert!(
            columns.iter().any(|c| c.starts_with(&format!("{col} "))),
            "{col}"
        );
    }
    assert_eq!(app.service.count_users().await.unwrap(), 1);
    conn.close().await.ok();
}
